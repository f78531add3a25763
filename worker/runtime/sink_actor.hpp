// sink_actor.hpp — the sink actor: takes every result of the run and writes the sinks.
//
// Without checkpoints every sink is written once per trigger interval. With checkpoints, the
// transactional sinks (file) and the dead-letter directory get one staged file per epoch: rows
// are filed under the epoch their input's barrier says, staged when every input's barrier is
// in (then the sink acks), and published when the coordinator says the epoch is complete.
// Console and Kafka outputs stay per trigger (at-least-once).
//
// Memory: the sink holds at most about `[pipeline] max_rows_per_batch` result rows (plus what
// one result batch brings). A trigger's rows that reach it are written as a batch right away;
// an epoch's rows that reach it are staged right away as a part of the epoch (sink::stage_epoch:
// parts 1, 2, ..., then the rest as part 0 at the barrier).
//
// Messages:
//   (assign_atom, partitions, shards, coordinator)  from the worker: the inputs to expect (one
//                                  per partition, one per shard id: the shards that send their
//                                  rows here) and where checkpoint acks go
//   result_batch                   from a source task (shard < 0: rows, dead letters, counters,
//                                  the in-flight credit it gives back) or a shard (shard >= 0:
//                                  rows); `end` marks that input's last batch
//   (barrier_atom, epoch, input)   from a task (input = partition) or a shard (-1 - shard): once
//                                  every input's barrier of the epoch is in, stages the epoch's
//                                  output and sends a checkpoint_ack to the coordinator
//   (commit_atom, epoch, final)    from the checkpoint coordinator: publishes the epoch's staged
//                                  output; after the final epoch the sink ends
//   stop_atom                      from the checkpoint coordinator (a checkpoint failed): ends
//   (finish_atom, gen, epoch)      from a cluster worker's unit host leaving cleanly (the run
//                                  is complete, or SIGTERM): writes the per-trigger rows held
//   tick_atom                      to itself every trigger interval: writes the per-trigger
//                                  batch, prints the counters when asked (stats_requested)
// Sends: checkpoint_ack to the coordinator; when it ends, (done_atom, worker_report, batches) to
// `listener`. Ends itself: without checkpoints once every partition and shard ended, with
// checkpoints on the final commit or a stop; the worker kills it when it is shut down.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "model/row.hpp"
#include "worker/checkpoint/barrier_aligner.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/kafka/kafka_sink.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/sink/dead_letter_writer.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

struct epoch_bucket {
  std::vector<row> rows;
  std::vector<dead_letter> dead;
};

struct sink_state {
  std::shared_ptr<run_context> ctx;
  std::vector<std::shared_ptr<sink>> sinks;  ///< shared with the publisher
  std::unique_ptr<dead_letter_file_writer> dead_file;
  std::unique_ptr<kafka_dead_letter_writer> dead_kafka;
  output_schema schema;
  std::vector<row> pending_rows;  ///< for the per-trigger sinks
  std::vector<dead_letter> pending_dead;
  int64_t pending_in = 0;
  std::map<int32_t, record_counters> counters;
  std::set<int32_t> expected, ended;
  int expected_shards = 0, ended_shards = 0;
  int64_t batch_id = 0;
  caf::actor listener, coordinator;
  std::string error;
  bool finished = false;
  // checkpoints
  bool has_transactional = false, has_per_trigger = false;
  std::unique_ptr<barrier_aligner> aligner;
  epoch_bucket current, next;
  uint64_t current_epoch = 0;  ///< the epoch `current` belongs to (ctx->first_epoch, then +1)
  int current_parts = 0;       ///< parts of current_epoch staged before its barrier
  uint64_t stale_below = 0;    ///< barriers of older epochs are dropped (aborted: see adopt)
  std::string part_error;      ///< staging one of those failed: the epoch must fail
  // publishing (publisher_actor.hpp): committed epochs are published on another thread
  caf::actor publisher;                    ///< spawned at the first commit
  uint64_t publish_asked = 0;              ///< the newest epoch sent to the publisher
  uint64_t published = 0;                  ///< the newest epoch it answered for
  std::optional<checkpoint_ack> held_ack;  ///< staged, acked once the publisher catches up
  bool final_committed = false;            ///< the final epoch is committed: finish once published
  bool stopping = false;  ///< stop_atom came: finish once nothing is being published
  static inline const char* name = "eddy.sink";
};

using sink_ptr = caf::stateful_actor<sink_state>*;

/// The sink of one run: writes `ctx->cfg->sinks` and the dead letters, starting from the
/// restored per-partition `counters`; reports to `listener` when it ends.
caf::behavior sink_actor(sink_ptr self, std::shared_ptr<run_context> ctx, output_schema schema,
                         caf::actor listener, std::map<int32_t, record_counters> counters);

}  // namespace eddy
