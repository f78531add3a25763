#include "worker/runtime/shard_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <string>
#include <thread>
#include <utility>

#include "actors/messages.hpp"
#include "worker/checkpoint/barrier_aligner.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/credits.hpp"
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
  /// A window close (or the final drain) is emitting in steps of max_rows_per_batch rows; the
  /// next step is a `more` message to self, so input and barriers get in between.
  bool closing = false, finishing = false;
  /// Barriers that came in during the final drain: taken when it is done, so that the final
  /// checkpoint follows every final row.
  std::vector<std::pair<uint64_t, int32_t>> deferred_barriers;
  /// Every input's barrier of this epoch is in, but a close due at the barrier is still being
  /// emitted: the snapshot follows its last step (0 = none waits).
  uint64_t snapshot_after_close = 0;
  std::string restore_error;
  int64_t reported_dropped = 0;  ///< of aggregator->dropped_after_close(), added to the context
  credit_ledger credits;         ///< credit owed to each sending task (credits.hpp)
  /// Test only (EDDY_TEST_SHARD_MERGE_DELAY_US): sleep this long per merged partial batch, and
  /// log the mailbox's peak length at every snapshot; 0 otherwise.
  int64_t test_merge_delay_us = 0;
  size_t test_mailbox_peak = 0;
  uint64_t test_merged = 0;
  static inline const char* name = "eddy.shard";
};

using shard_ptr = caf::stateful_actor<shard_state>*;

void on_barrier(shard_ptr self, uint64_t epoch, int32_t partition);
void snapshot_and_release(shard_ptr self, uint64_t epoch);

/// One step of output: due rows, at most max_rows_per_batch of a closing window. When more are
/// due, the next step follows as soon as the sink has taken about a step's worth of rows
/// (result_rows_in_flight), so neither this shard nor the sink's mailbox holds a whole window.
void emit(shard_ptr self, bool finish) {
  auto& st = self->state;
  const auto max_rows = static_cast<size_t>(st.ctx->cfg->max_rows_per_batch);
  result_batch out;
  out.shard = st.shard;
  const bool more = finish ? st.aggregator->finish(out.rows, max_rows)
                           : st.aggregator->emit(out.rows, now_us(), max_rows);
  out.end = finish && !more;
  if (!out.rows.empty() || out.end) {
    st.ctx->result_rows_in_flight.fetch_add(static_cast<int64_t>(out.rows.size()),
                                            std::memory_order_relaxed);
    self->send(st.sink, std::move(out));
  }
  st.closing = more;
  st.finishing = finish && more;
  if (more) {
    self->send(self, more_atom::value);
    return;
  }
  if (st.snapshot_after_close != 0)
    snapshot_and_release(self, std::exchange(st.snapshot_after_close, 0));
  if (!finish) return;
  st.finished = true;
  for (const auto& [epoch, partition] : std::exchange(st.deferred_barriers, {}))
    on_barrier(self, epoch, partition);
  if (!st.ctx->checkpointing) self->quit();
}

/// The next step of a close, once the sink has caught up (else a little later).
void continue_close(shard_ptr self) {
  auto& st = self->state;
  if (!st.closing) return;
  if (st.ctx->result_rows_in_flight.load(std::memory_order_relaxed) >=
      st.ctx->cfg->max_rows_per_batch) {
    self->delayed_send(self, std::chrono::milliseconds(1), more_atom::value);
    return;
  }
  emit(self, st.finishing);
}

/// Adds what the aggregator dropped since the last call to run_context::dropped_after_close.
void report_dropped(shard_ptr self) {
  auto& st = self->state;
  const int64_t now = st.aggregator->dropped_after_close();
  if (now == st.reported_dropped) return;
  st.ctx->dropped_after_close.fetch_add(now - st.reported_dropped, std::memory_order_relaxed);
  st.reported_dropped = now;
}

void merge(shard_ptr self, partials_msg& m) {
  fault_point("shard");
  auto& st = self->state;
  if (st.finished) return;
  // Partials from another process arrive as bytes: decoded here, with this shard's plan.
  std::string err;
  partial_batch* batch = m.get(*st.ctx->plan, &err);
  if (batch == nullptr) {
    st.ctx->fault("aggregation shard " + std::to_string(st.shard) +
                  " failed: undecodable partials from partition " +
                  std::to_string(m.source_partition()) + ": " + err);
    self->quit(caf::sec::runtime_error);
    return;
  }
  // This shard's clock: idleness must not depend on the sending worker's clock agreeing.
  st.aggregator->merge(std::move(*batch), now_us());
  report_dropped(self);
  if (st.test_merge_delay_us > 0) {
    ++st.test_merged;
    std::this_thread::sleep_for(std::chrono::microseconds(st.test_merge_delay_us));
  }
  if (m.end && ++st.ended == st.partitions) {
    if (st.ctx->drain.load()) {
      // Every partition ended for good: close all windows (like Flink's stop --drain), in steps
      // (emit() quits without checkpoints once the last one is out). A close under way goes on
      // as the drain.
      if (st.closing)
        st.finishing = true;
      else
        emit(self, true);
      return;
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
  } else {
    attach_unit_changes(*st.ctx, ops, ack);
  }
  // In-band: the sink sees this after every row the shard emitted before the snapshot.
  self->send(st.sink, barrier_atom::value, epoch, -1 - st.shard);
  self->send(st.coordinator, std::move(ack));
  if (st.test_merge_delay_us > 0) {
    std::ostream& log = st.ctx->opts.log ? *st.ctx->opts.log : std::cerr;
    log << "eddy: test: shard " << st.shard << " (merge delay " << st.test_merge_delay_us
        << " us): epoch " << epoch << ", " << st.test_merged
        << " partial batches merged, mailbox peak " << st.test_mailbox_peak << " messages\n";
    log.flush();
  }
}

/// Returns credit to the task that sent the partial batch being handled (credits.hpp), in
/// chunks: for every batch taken from the mailbox, merged or held back while aligning.
void return_credit(shard_ptr self, int32_t partition) {
  auto& st = self->state;
  const int32_t n = st.credits.took(partition);
  if (n == 0) return;
  if (const auto& sender = self->current_sender())
    self->send(caf::actor_cast<caf::actor>(sender), credit_atom::value, st.ctx->generation,
               int32_t{st.shard}, n);
}

void on_barrier(shard_ptr self, uint64_t epoch, int32_t partition) {
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
  // Everything due at the barrier is emitted before the snapshot, in steps as usual (held input
  // waits meanwhile): an epoch's results then depend only on its input, not on when the trigger
  // ticked, so a replay of the epoch after a fallback (state/epoch_log.hpp) reproduces them.
  // (A close in progress in an older checkpoint is still continued by the restore.)
  if (!st.finished && !st.closing) emit(self, false);
  if (st.closing) {
    st.snapshot_after_close = epoch;
    return;
  }
  snapshot_and_release(self, epoch);
}

void snapshot_and_release(shard_ptr self, uint64_t epoch) {
  auto& st = self->state;
  snapshot(self, epoch);
  st.aligner->release();
  while (!st.held.empty()) {
    partials_msg m = std::move(st.held.front());
    st.held.pop_front();
    merge(self, m);
  }
}

caf::behavior shard_actor(shard_ptr self, std::shared_ptr<run_context> ctx, int shard,
                          std::vector<int32_t> partitions, caf::actor sink,
                          caf::actor coordinator) {
  fail_run_on_exception(self, ctx, "aggregation shard " + std::to_string(shard));
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
    report_dropped(self);
  }
  if (const char* delay = std::getenv("EDDY_TEST_SHARD_MERGE_DELAY_US"))
    st.test_merge_delay_us = std::max<int64_t>(0, std::strtoll(delay, nullptr, 10));
  self->delayed_send(self, std::chrono::milliseconds(ctx->cfg->trigger_interval_ms),
                     tick_atom::value);
  return {
      [self](partials_msg& m) {
        auto& st = self->state;
        if (st.test_merge_delay_us > 0)
          st.test_mailbox_peak = std::max(st.test_mailbox_peak, self->mailbox().size() + 1);
        const int32_t partition = m.source_partition();
        if (st.aligner->blocked(partition))
          st.held.push_back(std::move(m));
        else
          merge(self, m);
        return_credit(self, partition);
      },
      [self](barrier_atom, uint64_t epoch, int32_t partition) {
        auto& st = self->state;
        if (st.finishing) {
          st.deferred_barriers.emplace_back(epoch, partition);
          return;
        }
        on_barrier(self, epoch, partition);
      },
      [self](more_atom) { continue_close(self); },
      [self](tick_atom) {
        auto& st = self->state;
        if (!st.finished && !st.closing) emit(self, false);
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
