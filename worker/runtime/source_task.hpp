// source_task.hpp — a source task: one per partition, turns its Kafka input into results.
//
// Messages:
//   kafka_batch               from the poller: processed (decode, filter, project or partial
//                             aggregates); rows, dead letters and counters go to the sink as a
//                             result_batch, partials to the shards (partials_msg). `end` = the
//                             partition's input ended
//                             Processed only while every shard has credit for this task
//                             (worker/runtime/credits.hpp); otherwise held, unprocessed, with
//                             its in-flight bytes still counted (so the poller stops fetching)
//   (credit_atom, generation, shard, n)  from a shard: n more partial batches may go to it;
//                             held input is processed again. Another generation's: dropped
//   (checkpoint_atom, epoch)  from the checkpoint coordinator: partials to the shards, then
//                             (barrier_atom, epoch, partition) to every shard and the sink, then
//                             the task's state in one WriteBatch of ctx->db, then checkpoint_ack
//                             to the coordinator. A replayed epoch (ctx->replay) is cut exactly
//                             at its logged end offset: input past it waits until then.
//                             Never waits for credit: the barrier follows what was processed
// Sends: (failed_atom, error) to the coordinator when its restored state cannot be read;
// (ended_atom, partition) to it when the input ended (with checkpoints).
// Ends: itself at the end of its input without checkpoints; with checkpoints the checkpoint
// coordinator ends it after the final epoch. The worker kills it when it is shut down.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "actors/messages.hpp"
#include "worker/decode/source_pipeline.hpp"
#include "worker/runtime/credits.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {

struct task_state {
  std::shared_ptr<run_context> ctx;
  std::unique_ptr<source_pipeline> pipeline;
  std::vector<caf::actor> shards;
  std::vector<partial_batch> partials;
  caf::actor sink, coordinator;
  int32_t partition = 0;
  int64_t next_offset = -1;  ///< after the last record processed (or restored)
  record_counters totals;    ///< cumulative over the pipeline's life (restored + this run)
  bool ended = false;
  /// Replay (ctx->replay): the next replayed epoch this task has not cut yet. Input from its
  /// logged end offset on waits in `waiting` (its in-flight bytes given back) until the
  /// coordinator starts that epoch; `pending_cut`: the coordinator started it before the input
  /// got there.
  std::map<uint64_t, std::map<int32_t, int64_t>>::const_iterator cut;
  std::deque<std::pair<kafka_batch, size_t>> waiting;  ///< batch, first entry not processed
  uint64_t pending_cut = 0;
  /// Credit for partial batches per shard (credits.hpp).
  credit_gate gate{0};
  /// Input not processed yet because a shard had no credit: batch, first entry not processed,
  /// and whether its in-flight bytes were given back already (input that waited in `waiting`).
  /// Processed in order once every shard has credit. Empty while `waiting` is not.
  struct starved_batch {
    kafka_batch batch;
    size_t from = 0;
    bool credited = false;
  };
  std::deque<starved_batch> starved;
  static inline const char* name = "eddy.source_task";
};

using task_ptr = caf::stateful_actor<task_state>*;

/// The task of `partition`: its results go to `sink` and `shards` (shard i of the plan),
/// its acks to `coordinator` (none without checkpoints). Restores its state from ctx->db when
/// the run resumes from a checkpoint.
caf::behavior source_task(task_ptr self, std::shared_ptr<run_context> ctx, int32_t partition,
                          caf::actor sink, std::vector<caf::actor> shards, caf::actor coordinator);

}  // namespace eddy
