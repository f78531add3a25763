// run_context.hpp — what every actor of one pipeline run shares (read-only after start, except
// the atomics), and the key layout of task state in the node-local RocksDB.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "actors/messages.hpp"
#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"
#include "state/kv_store.hpp"
#include "state/unit_snapshot.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/runtime/kv_state_reader.hpp"
#include "worker/runtime/pipeline_runtime.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {

struct run_context {
  const pipeline_config* cfg = nullptr;
  run_options opts;
  time_formatter fmt;
  std::optional<aggregation_plan> plan;  ///< set for aggregating pipelines
  std::atomic<bool> abort{false};        ///< a sink failed: drain and stop
  /// An actor of the run died (an exception escaped one of its handlers, or it ended with an
  /// error): the run cannot drain, it ends at once with fault_message(). run_pipeline's loop
  /// watches this flag.
  std::atomic<bool> faulted{false};
  /// Records a fault (the first one's message wins) and sets `faulted` and `abort`.
  void fault(const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(fault_mutex_);
      if (fault_message_.empty()) fault_message_ = message;
    }
    abort = true;
    faulted = true;
  }
  [[nodiscard]] std::string fault_message() const {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    return fault_message_;
  }
  /// Records why the run fails after its drain (the first reason wins), next to the failed_atom
  /// that carries it to run_pipeline: the drain's end can overtake that message, and the run
  /// must still report the failure.
  void note_failure(const std::string& message) {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    if (failure_message_.empty()) failure_message_ = message;
  }
  [[nodiscard]] std::string failure_message() const {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    return failure_message_;
  }
  /// Backpressure: bytes of fetched batches the sink has not taken yet (the poller adds a
  /// batch's in_flight_cost when it sends it, the sink subtracts it). The poller does not fetch
  /// while this is at or above source.max_in_flight_mb, so task and sink mailboxes stay bounded
  /// and a checkpoint barrier waits behind at most that much input.
  std::atomic<int64_t> in_flight_bytes{0};
  std::atomic<int64_t> max_in_flight_bytes{0};  ///< the highest in_flight_bytes (poller writes)
  /// Backpressure on results: rows shards have sent to the sink that the sink has not taken yet
  /// (a shard adds a result batch's rows.size() when it sends it, the sink subtracts it when it
  /// takes the batch). With window closes emitting at most cfg->max_rows_per_batch rows at a
  /// time, this tells a shard how far the sink is behind, so that the rows waiting in the sink's
  /// mailbox stay bounded too.
  std::atomic<int64_t> result_rows_in_flight{0};
  /// Flow control from shards to source tasks is by messages (worker/runtime/credits.hpp); these
  /// only count what it did, for the summary and the logs. `credit_waits`: times a task held
  /// input because a shard had not returned credit; `max_unreturned_partials`: the most partial
  /// batches one task had sent one shard without credit back (the window bounds it, give or take
  /// one checkpoint's partials).
  std::atomic<int64_t> credit_waits{0};
  std::atomic<int32_t> max_unreturned_partials{0};
  /// The cluster generation these actors belong to (0 in `eddy run`): shards stamp their credit
  /// grants with it and tasks drop grants of another generation.
  uint64_t generation = 0;
  /// Partials the shards dropped because their window had already closed (only possible after a
  /// partition idle beyond window.idle_timeout woke up behind it; shard_aggregator::
  /// dropped_after_close), since the pipeline started: a restored shard adds its checkpointed
  /// count. Their records are counted as out by their partition.
  std::atomic<int64_t> dropped_after_close{0};
  /// When set (eddy run --as-cluster's hosts), the sink adds one per output batch it flushes.
  std::shared_ptr<std::atomic<int64_t>> batches_out;

  /// What the sink has taken of one partition: cumulative counters (restored ones included) and
  /// the offset after the last record (-1: none taken in this run).
  struct partition_progress {
    record_counters counters;
    int64_t next_offset = -1;
    /// The poller saw the partition's end (EOF) in this run, having handed over the records
    /// before `end_fetched_to` (-1: none in this run); read to its end once the sink took them.
    bool reached_end = false;
    int64_t end_fetched_to = -1;
    [[nodiscard]] bool read_to_end() const {
      return reached_end && (end_fetched_to < 0 || next_offset >= end_fetched_to);
    }
  };
  /// The sink records every task result it takes here (one lock per batch), so that a run that
  /// ends without the sink's final report (a fault, an abandoned drain) still reports counters,
  /// and --exit-at-end can say how far each partition was read.
  void note_taken(int32_t partition, const record_counters& counters, int64_t next_offset) {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    auto& p = progress_[partition];
    p.counters += counters;
    if (next_offset >= 0) p.next_offset = next_offset;
  }
  void note_reached_end(int32_t partition, int64_t fetched_to) {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    progress_[partition].reached_end = true;
    progress_[partition].end_fetched_to = fetched_to;
  }
  [[nodiscard]] std::map<int32_t, partition_progress> progress() const {
    std::lock_guard<std::mutex> lock(fault_mutex_);
    return progress_;
  }

  // ---- checkpoints (cfg->checkpoint.enabled()) ----
  bool checkpointing = false;
  std::shared_ptr<kv_store> db;  ///< node-local task state, restored from the last epoch
  uint64_t restored_epoch = 0;   ///< 0 = a new pipeline
  /// A cluster worker's units: tasks and shards put their checkpoint writes into their acks
  /// (checkpoint_ack::changes), from which the unit host writes unit deltas.
  bool unit_deltas = false;
  bool unit_compress = true;  ///< unit files zstd-compressed (format 2); see unit_host.cpp
  /// The first epoch number this run takes (epochs are consecutive from there): the sink files
  /// the parts it stages before an epoch's barrier under it.
  uint64_t first_epoch = 1;
  /// Epochs to replay (state/epoch_log.hpp): the epoch log holds them, but the restored
  /// checkpoint is older (their state was damaged or never committed). Epoch -> partition ->
  /// end offset. Tasks cut these epochs at exactly those offsets, the coordinator starts them
  /// without waiting for the interval, and the sink writes none of their output (it was
  /// published, or staged and published by the restart, already).
  std::map<uint64_t, std::map<int32_t, int64_t>> replay;
  /// `db` as the aggregators' backing store: task and shard state lives there, memory holds
  /// only what changed since the last checkpoint (see windowing.hpp, "Backing store").
  kv_state_reader db_reader{&db};
  /// true: the input ended for good (--exit-at-end, or no checkpoints): close every window
  /// when the tasks end, like Flink's stop --drain. false (SIGTERM with checkpoints): keep
  /// windows open in the final checkpoint; the next run continues them.
  std::atomic<bool> drain{true};

 private:
  mutable std::mutex fault_mutex_;
  std::string fault_message_;
  std::string failure_message_;
  std::map<int32_t, partition_progress> progress_;
};

/// Wall clock in microseconds since the Unix epoch (processing time).
[[nodiscard]] inline int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Node-local RocksDB keys. Task of partition p: "t/<p, 10 digits>/" + "m" (offset, watermark,
/// counters) and "a/..." (partition_aggregator state). Shard s: "s/<s, 5 digits>/...".
[[nodiscard]] std::string task_prefix(int32_t partition);
[[nodiscard]] std::string shard_prefix(int shard);

/// The task meta value: "next_offset watermark in out filtered dead_lettered late".
[[nodiscard]] std::string encode_task_meta(int64_t next_offset, int64_t watermark,
                                           const record_counters& c);
[[nodiscard]] bool decode_task_meta(const std::string& text, int64_t* next_offset,
                                    int64_t* watermark, record_counters* c);

/// A task's or shard's checkpoint writes `ops` (applied): with ctx.unit_deltas (a cluster
/// worker) they go into `ack` as delta records for the unit host (checkpoint_ack::changes).
inline void attach_unit_changes(const run_context& ctx, const std::vector<kv_op>& ops,
                                checkpoint_ack& ack) {
  if (!ctx.unit_deltas) return;
  unit_changes changes;
  append_unit_changes(ops, changes);
  ack.changes = std::move(changes.records);
  ack.change_count = changes.count;
}

}  // namespace eddy
