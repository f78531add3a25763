// pipeline_runtime.hpp — runs one pipeline in this process with eddy's actor structure.
//
// `run_pipeline` starts an actor system with a coordinator, one worker, a Kafka poller (a
// detached actor: polling blocks, so it has its own thread), one source-task actor per assigned
// partition and a sink actor. Records travel in batches: poller -> task (kafka_batch) -> sink
// (result_batch); the sink writes one output batch per trigger interval. It returns when the
// input is exhausted (`exit_at_end`), when `*stop` becomes true, or on a fatal error, after
// every record taken from Kafka has been written to a sink, filtered or dead-lettered.
// `eddy run` calls it only for pipelines with [checkpoint] (its own epochs and checkpoint
// layout); without one, and with --as-cluster, runs take the cluster's path
// (app/local_cluster.hpp). It still runs any pipeline (tests, benchmarks).
//
// Bounded ends: an actor that dies (an exception escapes one of its handlers, or it ends with an
// error) ends the run at once with that error: what was read but not yet written is not
// written (with checkpoints, the next run resumes from the last complete one). A stop (`*stop`)
// whose drain has not finished within `stop_timeout` is abandoned the same way. Actors that do
// not end within a few seconds after that (a thread blocked in I/O) are left running and
// run_result::threads_left says so: the caller must then end the process with std::_Exit.
//
// With `[checkpoint]` in the pipeline file the run takes epoch checkpoints with aligned
// barriers (docs/architecture.md): each source task writes {aggregator state, next offset,
// watermark, counters} and each shard its state in one RocksDB WriteBatch of a node-local DB,
// the sink stages the epoch's file output, and once all acked the DB is made durable in
// checkpoint.dir (checkpoint_store). A later run resumes from the newest intact epoch: sources
// seek to its offsets, state is restored, staged output of complete epochs is published and
// that of incomplete ones dropped. A pipeline changed incompatibly is refused.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "model/pipeline_config.hpp"
#include "worker/decode/record_processor.hpp"

namespace eddy {

struct run_options {
  bool exit_at_end = false;                      ///< stop once every partition reached its end
  const std::atomic<bool>* stop = nullptr;       ///< polled; true = drain and stop
  std::atomic<bool>* stats_requested = nullptr;  ///< when true: print counters, reset to false
  std::ostream* console = nullptr;               ///< console sink output (default std::cout)
  std::ostream* log = nullptr;                   ///< progress and counters (default std::cerr)
  int scheduler_threads = 0;                     ///< 0 = CAF's default
  bool reset = false;  ///< drop the checkpoints (checkpoint.dir) and start as a new pipeline
  /// How long the drain after a stop may take before the run is abandoned (run_result::error).
  std::chrono::milliseconds stop_timeout{std::chrono::seconds(60)};
  /// > 0: fail the run when the Kafka brokers have been unreachable this long (else eddy keeps
  /// retrying, saying so every 10 s).
  std::chrono::milliseconds max_unreachable{0};
};

/// --exit-at-end: a partition the run did not read to the end it had when the run started.
struct partition_shortfall {
  int32_t partition = 0;
  int64_t read_to = 0;     ///< the offset after the last record read (or where reading started)
  int64_t end_offset = 0;  ///< the partition's end (high watermark) when the run started
};

struct run_result {
  bool ok = false;
  std::string error;                      ///< why it failed, "" when ok
  std::vector<int32_t> partitions;        ///< partitions consumed
  std::vector<record_counters> counters;  ///< per partition, same order
  int64_t batches = 0;                    ///< output batches written
  /// The most fetched bytes that were ever in flight at once (source.max_in_flight_mb bounds it,
  /// give or take one poll).
  int64_t max_in_flight_bytes = 0;
  /// Flow control between source tasks and shards (worker/runtime/credits.hpp): times a task
  /// held input because a shard had not returned credit, and the most partial batches one task
  /// ever had unreturned at one shard.
  int64_t credit_waits = 0;
  int32_t max_unreturned_partials = 0;
  /// Partial aggregates that reached a window the shards had already closed, so their rows (counted
  /// as out) are in no result: a partition idle for longer than window.idle_timeout woke up
  /// behind the pipeline watermark. Since the pipeline started (checkpoints included).
  int64_t dropped_after_close = 0;
  /// exit_at_end only: partitions not read to the end offsets they had when the run started (it
  /// was stopped, or failed, first). Not empty makes `ok` false even when `error` is empty.
  std::vector<partition_shortfall> incomplete;
  /// Some actor threads did not end after the run was abandoned (one blocked in I/O, say): the
  /// actor system was left running, and the caller must end the process with std::_Exit (normal
  /// exit would destroy objects those threads still use).
  bool threads_left = false;
  [[nodiscard]] record_counters total() const;
};

/// Runs `cfg` until done (see above). Never throws; errors come back in the result.
[[nodiscard]] run_result run_pipeline(const pipeline_config& cfg, const run_options& opts);

/// `eddy coordinator --take-over-run`: continues the checkpoints `eddy run` left in
/// cfg.checkpoint.dir as a cluster's. Recovers them exactly as `eddy run` would on start (the
/// newest intact epoch E restored into checkpoint.local_dir, output staged by complete epochs
/// published and by incomplete ones dropped, the pipeline's fingerprint checked), then writes
/// each unit's state (the task of every partition, every aggregator shard) as a unit snapshot of
/// epoch E and the cluster manifest of epoch E (offsets, watermarks, counters; owner
/// "eddy run"): the coordinator goes on from there, and `eddy run` refuses the directory from then
/// on. Refused (an error, nothing written) when epochs after E still need replaying from the
/// epoch log (their output was published without their state: `eddy run` must take its next
/// checkpoint first), or when the restored state holds keys outside every unit. `eddy run` must
/// not be running. Sets *epoch to E and *units to the number of units written. "" or the error.
[[nodiscard]] std::string take_over_run_checkpoints(const pipeline_config& cfg,
                                                    const std::vector<int32_t>& partitions,
                                                    std::ostream& log, uint64_t* epoch,
                                                    size_t* units);

/// The end of a run's actor system, once every actor was told to stop: waits up to 5 s for all
/// to end, then destroys the system. One still running (blocked, e.g. in I/O) would hang that:
/// then says so on `log` and leaves the system and its config behind, returning true (the
/// caller must end the process with std::_Exit: run_result::threads_left).
[[nodiscard]] bool end_actor_system(std::unique_ptr<caf::actor_system>& sys,
                                    std::unique_ptr<caf::actor_system_config>& cfg,
                                    std::ostream& log);

class kafka_consumer;

/// The source topic's partitions, and with `exit_at_end` each one's [low, high) offsets now (the
/// ends an --exit-at-end run reads to), for eddy run and eddy run --as-cluster. False, with
/// `*error` set, when a lookup fails or the topic has no partitions.
[[nodiscard]] bool read_source_partitions(kafka_consumer& consumer, const pipeline_config& cfg,
                                          bool exit_at_end, std::vector<int32_t>* partitions,
                                          std::map<int32_t, std::pair<int64_t, int64_t>>* bounds,
                                          std::string* error);

/// Where the node-local state of a run lives: checkpoint.local_dir, by default
/// <checkpoint.dir>/local.
[[nodiscard]] std::string local_dir_of(const checkpoint_config& cc);

/// The counters table printed at exit and on SIGUSR1.
void print_counters(std::ostream& out, const std::vector<int32_t>& partitions,
                    const std::vector<record_counters>& counters);

/// At exit, after the counters (--exit-at-end): "eddy: partition 3: read to offset X of end
/// offset Y (N not read)" per partition in result.incomplete, then a line saying the run ended
/// short. Nothing when it is empty.
void print_incomplete(std::ostream& out, const run_result& result);

/// At exit, after the counters: a line explaining result.dropped_after_close when it is not 0.
void print_dropped_after_close(std::ostream& out, const run_result& result);

}  // namespace eddy
