// cluster_messages.hpp — what coordinator and worker processes say to each other.
//
// Every type here crosses processes: each has an inspect() overload and is registered on every
// node by register_message_types (type_registry.hpp). Membership protocol:
//   worker -> coordinator  (register_atom, worker_hello, worker handle)  => join_reply
//   coordinator -> worker  (assign_atom, unit_assignment)  after every change of the assignment
//   worker -> coordinator  (leave_atom, name)  => ok: a clean leave (SIGTERM)
// Epoch protocol (generations, ready/start, checkpoint/ack/commit): unit_assignment's epoch
// fields, ready_atom, start_atom and unit_ack below; the atoms assign, checkpoint, ack and
// commit and the data plane's partials_msg and barriers are in messages.hpp.
// The coordinator monitors each member: a killed worker is seen at once (dropped connection), a
// hung or cut-off one when the middleman heartbeats time out. Generations order assignments: a
// worker drops an assignment older than the newest it has seen.
// Compatibility: a type's inspect() order is its wire form, and nodes only talk when their eddy
// versions are equal (worker_hello, checked at registration, never changes shape); a change to
// any other type here ships with the version it belongs to. New fields go last.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "model/unit_file_ref.hpp"

namespace eddy {

using leave_atom = caf::atom_constant<caf::atom("leave")>;
/// worker -> coordinator: (ready_atom, uint64_t generation, std::vector<int32_t> shard_ids,
/// std::vector<caf::actor> shard_handles), the worker's units of that generation are up.
using ready_atom = caf::atom_constant<caf::atom("ready")>;
/// coordinator -> worker: (start_atom, uint64_t generation, std::vector<caf::actor> shard_table),
/// every member is ready; index = shard id.
using start_atom = caf::atom_constant<caf::atom("start")>;
/// the coordinator process's metadata watch -> coordinator: (parts_atom, std::vector<int32_t>
/// every partition the topic has now); new ones become units at the next epoch boundary.
using parts_atom = caf::atom_constant<caf::atom("parts")>;
/// coordinator -> worker: (finish_atom, uint64_t generation, uint64_t epoch): the run is over —
/// with --exit-at-end every partition reached its end and epoch `epoch` committed (and published)
/// the output after it; after a (stop_atom) to the coordinator `epoch` was the last to commit.
/// The worker stops its units and leaves (leave_atom), then exits 0.
using finish_atom = caf::atom_constant<caf::atom("finish")>;
/// worker -> coordinator, only without checkpoints (eddy run --as-cluster of a pipeline without
/// [checkpoint]): (drained_atom, uint64_t generation), the worker's sink wrote everything its
/// units will ever send it (their input ended, or the run was stopped and drained).
using drained_atom = caf::atom_constant<caf::atom("drained")>;
// worker -> coordinator, --exit-at-end: (ended_atom, uint64_t generation, int32_t partition), the
// partition's task reached its end (ended_atom is in messages.hpp).

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

/// The units one worker owns in `generation`: partitions (source tasks) and aggregator shards,
/// and what the generation restores and starts from (docs: the cluster protocol, "Generations").
struct unit_assignment {
  uint64_t generation = 0;
  std::vector<int32_t> partitions;      ///< this member's task units
  std::vector<int32_t> shards;          ///< this member's shard units
  uint64_t restore_epoch = 0;           ///< the last complete epoch (0 = none: start fresh)
  uint64_t first_epoch = 0;             ///< the first epoch number this generation will use
  std::vector<int32_t> all_partitions;  ///< every partition of the topic
  int32_t shard_count = 0;              ///< aggregator shards of the pipeline (0: none)
  /// Of this member's units, those another worker held before this generation ("p3", "s1";
  /// units that never had an owner are not listed), and who held each (index-aligned). The
  /// worker logs one line per such unit when it resumes.
  std::vector<std::string> moved_units;
  std::vector<std::string> moved_from;
  /// The change these moves answer when it is a worker lost or gone: milliseconds from its
  /// detection to the sending of this assignment, measured on the coordinator's clock (the worker
  /// adds its own time since receipt, so no two clocks are compared), and what it was, for logs
  /// ("the loss of w1 was detected", "w1 left"). -1 and "": a join or a failed epoch.
  int64_t since_change_ms = -1;
  std::string change;
  /// --exit-at-end: source tasks end their partition at its end (as `eddy run --exit-at-end`
  /// does), shards close every window once all partitions ended, and task acks say so.
  bool exit_at_end = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unit_assignment& x) {
  return f(caf::meta::type_name("unit_assignment"), x.generation, x.partitions, x.shards,
           x.restore_epoch, x.first_epoch, x.all_partitions, x.shard_count, x.moved_units,
           x.moved_from, x.since_change_ms, x.change, x.exit_at_end);
}

/// A unit's snapshot or delta file (model/unit_file_ref.hpp) inside a unit_ack.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unit_file_ref& x) {
  return f(caf::meta::type_name("unit_file_ref"), x.path, x.bytes, x.crc32c);
}

/// A unit's answer to epoch `epoch` of `generation`, worker -> coordinator as
/// (ack_atom, unit_ack). `unit` is "p<partition>" (a source task), "s<shard>" (an aggregator
/// shard) or "sink:<worker name>" (a member's sink). A non-empty `error` fails the epoch.
struct unit_ack {
  uint64_t generation = 0;
  uint64_t epoch = 0;
  std::string unit;
  int64_t next_offset = -1;       ///< tasks: the partition's offset after the epoch
  int64_t watermark = INT64_MIN;  ///< tasks: the partition's watermark
  record_counters counters;       ///< tasks: cumulative
  std::string snapshot;           ///< tasks, shards: the unit's exported state file
  uint64_t snapshot_bytes = 0;
  std::string snapshot_crc32c;
  /// tasks, shards: the deltas to apply to `snapshot`, in order (state/unit_snapshot.hpp)
  std::vector<unit_file_ref> deltas;
  std::vector<std::string> staged;  ///< sink: paths of the files it staged for this epoch
  std::string error;
  bool input_ended = false;  ///< tasks, exit_at_end: the partition's input ended before this epoch
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unit_ack& x) {
  return f(caf::meta::type_name("unit_ack"), x.generation, x.epoch, x.unit, x.next_offset,
           x.watermark, x.counters, x.snapshot, x.snapshot_bytes, x.snapshot_crc32c, x.deltas,
           x.staged, x.error, x.input_ended);
}

}  // namespace eddy
