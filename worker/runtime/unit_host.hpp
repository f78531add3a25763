// unit_host.hpp — a cluster worker's units in one generation (docs/cluster.md, "Epochs").
//
// The worker node spawns one unit host per assignment it takes (and kills the previous one: a
// new generation restarts every unit from the last complete epoch), or keeps it (below).
// The host:
//   1. opens a fresh node-local RocksDB under `local_dir/g<generation>` and loads into it the
//      snapshot of each of its units from the epoch `restore_epoch` (the coordinator's global
//      manifest in checkpoint.dir/cluster/epochs names them);
//   2. spawns its sink (file names tagged `<worker>-g<generation>`) and its aggregator shards,
//      then answers the coordinator (ready_atom, generation, shard ids, shard handles) through
//      the node;
//   3. on (start_atom, generation, shard_table) spawns a source task per partition (partials and
//      barriers go to shard_table: shards on this or another worker) and a Kafka poller from the
//      restored offsets; each unit the assignment lists as moved to this worker logs one line
//      then ("unit p3 resumed from epoch 41 (moved from w1), 812 ms after the loss of w1 was
//      detected");
//   4. on (checkpoint_atom, generation, epoch) tells its tasks, which send barriers in-band; for
//      each local unit that acks it writes the unit's state to
//      checkpoint.dir/cluster/units/<unit>/<epoch>-g<generation>.snap and sends the coordinator a
//      unit_ack (tasks: offsets, watermark, counters; the sink: the files it staged). The
//      coordinator publishes staged files after its manifest commit: a host never publishes.
// A pipeline without aggregation may keep its host across a generation change: the node sends
// the new assignment as (assign_atom, unit_assignment, received_at ns) when it keeps every
// partition the host runs; the host's tasks go on, only partitions that moved in restore and
// start, and the sink's output since the last committed epoch goes with the new generation's
// first epoch (docs/cluster.md, "Keeping units across a generation").
// Messages of another generation are dropped. An actor of the host that fails (or an error in
// 1.) ends the host with the error: the node then ends its membership, so the coordinator sees
// the worker lost and restarts the generation without it.
// A detached actor: snapshots are disk I/O.
#pragma once

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "actors/cluster_messages.hpp"
#include "model/pipeline_config.hpp"
#include "worker/runtime/pipeline_runtime.hpp"
#include "worker/runtime/run_context.hpp"

namespace eddy {

/// What the hosts of one process report (eddy run --as-cluster): without checkpoints the counters
/// and offsets when the sink finished; in both modes the output batches and the flow-control
/// figures over every host the process ran (credit waits summed; the peaks and the cumulative
/// dropped_after_close their maximum). Hosts of two generations can
/// overlap briefly, so the figures are atomics.
struct unit_host_report {
  std::vector<int32_t> partitions;
  std::vector<record_counters> counters;    ///< per partition, same order
  std::map<int32_t, int64_t> next_offsets;  ///< per partition: after the last record read
  std::set<int32_t> read_to_end;            ///< partitions read to their end (exit_at_end)
  /// Output batches the hosts' sinks wrote (each sink adds one per batch it flushes).
  std::shared_ptr<std::atomic<int64_t>> batches = std::make_shared<std::atomic<int64_t>>(0);
  std::atomic<int64_t> max_in_flight_bytes{0}, credit_waits{0}, dropped_after_close{0};
  std::atomic<int32_t> max_unreturned_partials{0};

  /// The newest host's context (set when it starts): a run that ends without the sink's final
  /// report (a fault, an abandoned drain) reports what the sink had taken from it, as eddy run
  /// does.
  void set_live(std::shared_ptr<run_context> ctx) {
    std::lock_guard<std::mutex> lock(live_mutex_);
    live_ = std::move(ctx);
  }
  [[nodiscard]] std::shared_ptr<run_context> live() const {
    std::lock_guard<std::mutex> lock(live_mutex_);
    return live_;
  }

 private:
  mutable std::mutex live_mutex_;
  std::shared_ptr<run_context> live_;
};

struct unit_host_options {
  std::shared_ptr<const pipeline_config> cfg;  ///< the pipeline (from the coordinator)
  std::string worker_name;
  std::filesystem::path local_dir;  ///< the worker's --local-dir
  unit_assignment assignment;
  caf::actor coordinator;
  caf::actor node;  ///< the worker node: the ready message goes through it (the coordinator
                    ///< knows members by their node's handle)
  std::ostream* log = nullptr;  ///< nullptr = std::cerr
  /// In one process (eddy run --as-cluster): the run's options — console stream, SIGUSR1
  /// counters, --max-unreachable and, without checkpoints, the stop flag the poller drains on.
  /// nullptr in a worker process.
  const run_options* run = nullptr;
  /// Without checkpoints: what the sink reported when it finished (set before the host tells the
  /// node); the node reads it.
  std::shared_ptr<unit_host_report> report;
  /// When the node received `assignment`: the resume lines add the time since then to the
  /// coordinator's assignment.since_change_ms.
  std::chrono::steady_clock::time_point received_at = std::chrono::steady_clock::now();
};

/// Spawns the host (see above). It ends with an error reason when it cannot run its units.
[[nodiscard]] caf::actor spawn_unit_host(caf::actor_system& sys, unit_host_options opts);

}  // namespace eddy
