// cluster_coordinator.hpp — membership, unit assignment and the epochs of a multi-process eddy
// cluster.
//
// One per pipeline (`eddy coordinator`). Workers join with a worker_hello (cluster_messages.hpp):
// a worker of another eddy version, or with the name of a live member, is refused with the
// reason. Accepted workers are monitored; the units (the topic's partitions and the pipeline's
// aggregator shards) are assigned with assign_units (balanced by slots, sticky, minimal moves).
// A member whose connection drops (killed: milliseconds) or whose heartbeats stop (hung or cut
// off: the middleman's connection timeout) is removed and its units move to the others; so does
// a member that leaves (SIGTERM).
//
// Generations (full restart): every change — a member joins, is lost or leaves; an epoch fails
// or times out — aborts the open epoch (its number is never used again), raises the generation
// and sends every member `(assign_atom, unit_assignment)`: its units, restore_epoch (the last
// complete epoch, 0 = none), first_epoch (the next epoch number never used), all partitions and
// the shard count. Each member answers `(ready_atom, generation, shard_ids, shard_handles)` from
// the actor it joined with; once every member is ready for the current generation, each gets
// `(start_atom, generation, shard_table)` (shard_table[s] = the handle of shard s, whoever holds
// it). Readies of other generations are ignored.
//
// Epochs (when `checkpoint_dir` is set): every `checkpoint_interval_ms` while the generation is
// started and no epoch is open, epoch e opens: every member gets `(checkpoint_atom, generation,
// e)`. The epoch completes when every task ("p<p>"), every shard ("s<s>") and every member's sink
// ("sink:<name>") sent `(ack_atom, unit_ack)` for it (acks of other generations or epochs are
// dropped). Then the coordinator writes the global manifest (cluster_manifest.hpp; the COMMIT
// POINT), publishes the staged files the sinks listed (worker/sink/epoch_files.hpp; a failure is
// logged and retried after every later commit), sends every member `(commit_atom,
// generation, e)`, records last_complete in assignment.json and applies retention (newest 3
// manifests). An ack with an error, a membership change while the epoch is open, or no
// completion within `epoch_timeout_ms` aborts the epoch ("epoch E aborted: <why>", naming the
// missing units for a timeout) and restarts the generation (failures: the same members, the same
// sticky assignment, restoring from the last complete epoch).
//
// At start, the newest manifest that parses in `checkpoint_dir` gives the last complete epoch
// (its staged files are published again: idempotent, finishes a publish a crash interrupted),
// and `state_dir/assignment.json`, when present, the generation and epoch numbers to continue
// from, so a restarted coordinator never reuses either.
//
// Logging (to `log`, one line each): every membership change, every reassignment (generation,
// which units moved from whom to whom), every generation start, every aborted epoch, warnings;
// completed epochs only with `debug` (they are frequent).
// Inputs that end: see cluster_coordinator_options::exit_at_end.
// Stopping (`eddy run --as-cluster` on SIGTERM): `(stop_atom)` makes the next epoch that commits
// the last (it opens at once when none is open; at the generation's start when none is
// started): after its commit the members are told to leave, as when the input ended, and the
// coordinator quits once they left and that epoch's output is published. No end offsets are
// checked (the caller knows where the run stopped).
// Without `checkpoint_dir` (eddy run --as-cluster of a pipeline without [checkpoint]) no epochs
// run: members write their output per trigger, and each reports `(drained_atom, generation)`
// once its sink wrote everything (its inputs ended: --exit-at-end, or its run's stop flag made
// its poller end them). Once every member has, they are told to leave ((finish_atom,
// generation, 0)) and the coordinator quits after them.
// Persistence: after every change and every completed epoch, `state_dir/assignment.json` is
// replaced (generation, last_complete, next_epoch, members with slots, unit -> owner).
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace eddy {

struct cluster_coordinator_options {
  std::string pipeline_name;
  /// The pipeline's fingerprint (checkpoint_compat.hpp), written into every manifest.
  std::map<std::string, std::string> compat;
  std::string pipeline_toml;        ///< sent to every worker that joins
  std::string bootstrap;            ///< Kafka brokers, sent with it
  std::vector<int32_t> partitions;  ///< the topic's partitions
  int32_t shards = 0;               ///< aggregator shards (0 without aggregation)
  std::filesystem::path state_dir;  ///< assignment.json goes here
  /// The pipeline's checkpoint.dir, shared by every node: manifests go to its cluster/epochs/,
  /// unit snapshots are in its cluster/units/. Empty: no epochs are run (generations still are).
  std::filesystem::path checkpoint_dir;
  int64_t checkpoint_interval_ms = 1000;  ///< checkpoint.interval: one epoch per interval
  int64_t epoch_timeout_ms = 30000;       ///< an epoch not complete after this is aborted
  bool output_sync = true;                ///< checkpoint.sync: fsync manifests and published files
  /// The output directories workers stage into (file sinks, dead letters): after each commit,
  /// what is left in their staging areas for that epoch or older (aborted epochs, files of fenced
  /// workers) is deleted.
  std::vector<std::string> output_dirs;
  /// Publishes the staged files a committed epoch lists (idempotent; "" or an error naming the
  /// file): app/ dispatches them to the pipeline's sinks (sink::publish_staged: a rename for
  /// file output, a delivery for PostgreSQL and Kafka). Unset: publish_staged_files (renames).
  std::function<std::string(const std::vector<std::string>& staged_paths, bool sync)> publish;
  /// Publishing runs on a publisher actor of the coordinator's, in commit order, so that a slow
  /// database or broker does not hold up membership, acks and the next epochs; 2 committed
  /// epochs waiting to be published hold back the next epoch's opening (at its tick).
  /// true: the publisher is detached (a thread of its own, as it blocks on I/O); false: scheduled
  /// like the coordinator (CAF's deterministic test scheduler runs it in step).
  bool publish_detached = true;
  /// --exit-at-end: workers end each partition at its end and close every window once all have
  /// ended (as `eddy run --exit-at-end`); each host reports (ended_atom, generation, partition)
  /// and once every partition has, the next epoch opens at once (not at the next interval). Once
  /// an epoch commits in which every task acked with
  /// its input ended, every member gets (finish_atom, generation, epoch) and leaves, and the
  /// coordinator quits (an error reason when a partition ended before `end_offsets`, the ends
  /// the partitions had at start; after 30 s it quits without members that did not leave).
  bool exit_at_end = false;
  std::map<int32_t, int64_t> end_offsets;
  bool debug = false;           ///< also log one line per completed epoch
  std::ostream* log = nullptr;  ///< nullptr = std::cerr
  /// Where the membership lines go (joins, leaves, losses, moves, a generation's start): nullptr
  /// = `log`. A one-process run without checkpoints, which has no membership to speak of, sends
  /// them nowhere.
  std::ostream* membership_log = nullptr;
  /// Called with "cluster coordinator failed: <what()>" when an exception escapes a handler,
  /// before the coordinator ends (so before anyone sees it gone); may be empty.
  std::function<void(const std::string&)> on_exception;
};

/// Spawns the coordinator; publish it with caf::io::publish for workers to join.
[[nodiscard]] caf::actor spawn_cluster_coordinator(caf::actor_system& sys,
                                                   cluster_coordinator_options opts);

}  // namespace eddy
