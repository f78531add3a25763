// cluster_messages.hpp — what coordinator and worker processes say to each other.
//
// Every type here crosses processes: each has an inspect() overload and is registered on every
// node by register_message_types (type_registry.hpp). Membership protocol:
//   worker -> coordinator  (register_atom, worker_hello, worker handle)  => join_reply
//   coordinator -> worker  (assign_atom, unit_assignment)  after every change of the assignment
//   worker -> coordinator  (leave_atom, name)  => ok: a clean leave (SIGTERM)
// The coordinator monitors each member: a killed worker is seen at once (dropped connection), a
// hung or cut-off one when the middleman heartbeats time out. Generations order assignments: a
// worker drops an assignment older than the newest it has seen.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace eddy {

using leave_atom = caf::atom_constant<caf::atom("leave")>;

/// A worker asking to join: its eddy version (refused unless equal to the coordinator's), its
/// unique name, its share of the work (slots >= 1) and the host it runs on (for logs).
struct worker_hello {
  std::string version;
  std::string name;
  uint32_t slots = 1;
  std::string host;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_hello& x) {
  return f(caf::meta::type_name("worker_hello"), x.version, x.name, x.slots, x.host);
}

/// The coordinator's answer: accepted with the pipeline (file text, so worker hosts need no
/// pipeline file), or refused with the reason.
struct join_reply {
  bool accepted = false;
  std::string refusal;
  std::string pipeline_name;
  std::string pipeline_toml;
  std::string
      bootstrap;  ///< the Kafka brokers the coordinator uses (its --bootstrap or the file's)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_reply& x) {
  return f(caf::meta::type_name("join_reply"), x.accepted, x.refusal, x.pipeline_name,
           x.pipeline_toml, x.bootstrap);
}

/// The units one worker owns in `generation`: partitions (source tasks) and aggregator shards.
struct unit_assignment {
  uint64_t generation = 0;
  std::vector<int32_t> partitions;
  std::vector<int32_t> shards;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unit_assignment& x) {
  return f(caf::meta::type_name("unit_assignment"), x.generation, x.partitions, x.shards);
}

}  // namespace eddy
