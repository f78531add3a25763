// cluster_coordinator.hpp — membership and unit assignment of a multi-process eddy cluster.
//
// One per pipeline (`eddy coordinator`). Workers join with a worker_hello (cluster_messages.hpp):
// a worker of another eddy version, or with the name of a live member, is refused with the
// reason. Accepted workers are monitored; the units (the topic's partitions and the pipeline's
// aggregator shards) are assigned with assign_units (balanced by slots, sticky, minimal moves)
// and every change raises the generation and sends each member its unit_assignment. A member
// whose connection drops (killed: milliseconds) or whose heartbeats stop (hung or cut off: the
// middleman's connection timeout) is removed and its units move to the others; so does a member
// that leaves (SIGTERM).
//
// Logging (to `log`, one line each): every membership change (who, why, members and slots
// after it) and every reassignment (generation, which units moved from whom to whom).
// Persistence: after every change `state_dir/assignment.json` is replaced atomically (generation,
// members with slots, unit -> owner), so an operator (and, later, a restarted coordinator) can
// read who owned what.
//
// Scope today: membership, failure detection and assignment. The units are not yet run on the
// workers (see docs/cluster.md): `eddy run` is the way to process a pipeline.
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace eddy {

struct cluster_coordinator_options {
  std::string pipeline_name;
  std::string pipeline_toml;        ///< sent to every worker that joins
  std::string bootstrap;            ///< Kafka brokers, sent with it
  std::vector<int32_t> partitions;  ///< the topic's partitions
  int32_t shards = 0;               ///< aggregator shards (0 without aggregation)
  std::filesystem::path state_dir;  ///< assignment.json goes here
  std::ostream* log = nullptr;      ///< nullptr = std::cerr
};

/// Spawns the coordinator; publish it with caf::io::publish for workers to join.
[[nodiscard]] caf::actor spawn_cluster_coordinator(caf::actor_system& sys,
                                                   cluster_coordinator_options opts);

}  // namespace eddy
