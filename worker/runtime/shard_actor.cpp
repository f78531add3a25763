#include "worker/runtime/shard_actor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <deque>

#include "actors/messages.hpp"
#include "worker/barrier_aligner.hpp"
#include "worker/runtime/run_context.hpp"

namespace eddy {
namespace {

struct shard_state {
  std::shared_ptr<run_context> ctx;
  std::unique_ptr<shard_aggregator> aggregator;
  std::unique_ptr<barrier_aligner> aligner;
  std::deque<partials_msg> held;  ///< from tasks whose barrier is in, while aligning
  caf::actor sink, coordinator;
  int shard = 0;
  size_t partitions = 0, ended = 0;
  bool finished = false;
  std::string restore_error;
  static inline const char* name = "eddy.shard";
};

using shard_ptr = caf::stateful_actor<shard_state>*;

void emit(shard_ptr self, bool finish) {
  auto& st = self->state;
  result_batch out;
  out.shard = st.shard;
  if (finish)
    st.aggregator->finish(out.rows);
  else
    st.aggregator->emit(out.rows, now_us());
  out.end = finish;
  if (!out.rows.empty() || finish) self->send(st.sink, std::move(out));
}

void merge(shard_ptr self, partials_msg& m) {
  auto& st = self->state;
  if (st.finished) return;
  st.aggregator->merge(std::move(*m.batch));
  if (m.end && ++st.ended == st.partitions) {
    if (st.ctx->drain.load()) {
      // Every partition ended for good: close all windows (like Flink's stop --drain).
      emit(self, true);
      st.finished = true;
    }
    if (!st.ctx->checkpointing) self->quit();
  }
}

void snapshot(shard_ptr self, uint64_t epoch) {
  auto& st = self->state;
  checkpoint_ack ack;
  ack.epoch = epoch;
  ack.shard = st.shard;
  std::vector<state_op> ops;
  st.aggregator->checkpoint(shard_prefix(st.shard), ops);
  if (const std::string& e = st.aggregator->backing_error(); !e.empty()) {
    ack.error = "shard " + std::to_string(st.shard) + ": reading its state: " + e;
  } else if (auto s = st.ctx->db->write_batch(ops, false); !s.ok()) {
    ack.error = "shard " + std::to_string(st.shard) + ": " + s.error;
  }
  // In-band: the sink sees this after every row the shard emitted before the snapshot.
  self->send(st.sink, barrier_atom::value, epoch, -1 - st.shard);
  self->send(st.coordinator, std::move(ack));
}

caf::behavior shard_actor(shard_ptr self, std::shared_ptr<run_context> ctx, int shard,
                          std::vector<int32_t> partitions, caf::actor sink,
                          caf::actor coordinator) {
  auto& st = self->state;
  st.ctx = ctx;
  st.shard = shard;
  st.sink = std::move(sink);
  st.coordinator = std::move(coordinator);
  st.partitions = partitions.size();
  st.aligner = std::make_unique<barrier_aligner>(partitions);
  st.aggregator = std::make_unique<shard_aggregator>(*ctx->plan, shard, std::move(partitions));
  if (!ctx->checkpointing) st.aggregator->track_changes(false);
  // Group state lives in the node-local store; memory holds what changed since the barrier.
  if (ctx->checkpointing && ctx->cfg->checkpoint.state_in_rocksdb)
    st.aggregator->set_backing(&ctx->db_reader, shard_prefix(shard));
  if (ctx->checkpointing && ctx->restored_epoch > 0) {
    std::string err;
    if (!st.aggregator->restore(ctx->db_reader, shard_prefix(shard), &err))
      st.restore_error = "shard " + std::to_string(shard) + ": cannot restore its state: " + err;
    if (!st.restore_error.empty()) self->send(st.coordinator, failed_atom::value, st.restore_error);
  }
  self->delayed_send(self, std::chrono::milliseconds(ctx->cfg->trigger_interval_ms),
                     tick_atom::value);
  return {
      [self](partials_msg& m) {
        auto& st = self->state;
        if (st.aligner->blocked(m.batch->partition)) {
          st.held.push_back(std::move(m));
          return;
        }
        merge(self, m);
      },
      [self](barrier_atom, uint64_t epoch, int32_t partition) {
        auto& st = self->state;
        std::string err;
        if (!st.aligner->on_barrier(partition, epoch, &err)) {
          if (!err.empty()) {
            checkpoint_ack ack;
            ack.epoch = epoch;
            ack.shard = st.shard;
            ack.error = "shard " + std::to_string(st.shard) + ": " + err;
            self->send(st.coordinator, std::move(ack));
          }
          return;
        }
        snapshot(self, epoch);
        st.aligner->release();
        while (!st.held.empty()) {
          partials_msg m = std::move(st.held.front());
          st.held.pop_front();
          merge(self, m);
        }
      },
      [self](tick_atom) {
        auto& st = self->state;
        if (!st.finished) emit(self, false);
        self->delayed_send(self, std::chrono::milliseconds(st.ctx->cfg->trigger_interval_ms),
                           tick_atom::value);
      },
  };
}

}  // namespace

caf::actor spawn_shard(caf::actor_system& sys, std::shared_ptr<run_context> ctx, int shard,
                       std::vector<int32_t> partitions, caf::actor sink, caf::actor coordinator) {
  return sys.spawn(shard_actor, std::move(ctx), shard, std::move(partitions), std::move(sink),
                   std::move(coordinator));
}

}  // namespace eddy
