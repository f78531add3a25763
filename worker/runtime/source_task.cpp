#include "worker/runtime/source_task.hpp"

#include <optional>
#include <string>

#include "worker/checkpoint/crash_point.hpp"
#include "worker/decode/debezium_decoder.hpp"
#include "worker/runtime/actor_faults.hpp"

namespace eddy {
namespace {

void send_partials(task_ptr self, bool end) {
  auto& st = self->state;
  st.pipeline->take_partials(st.partials, now_us());
  const int32_t peak = st.gate.peak_unreturned();
  for (size_t i = 0; i < st.shards.size() && i < st.partials.size(); ++i) {
    partials_msg m;
    m.batch = std::make_shared<partial_batch>(std::move(st.partials[i]));
    m.end = end;
    self->send(st.shards[i], std::move(m));
    st.gate.spend(i);
  }
  if (st.gate.peak_unreturned() > peak) {
    auto& max = st.ctx->max_unreturned_partials;
    int32_t seen = max.load(std::memory_order_relaxed);
    while (seen < st.gate.peak_unreturned() &&
           !max.compare_exchange_weak(seen, st.gate.peak_unreturned(), std::memory_order_relaxed)) {
    }
  }
}

/// Barrier for `epoch`: partials first, then the barrier to every shard and the sink, then the
/// task's state {aggregator state, next offset, watermark, counters} in one WriteBatch, then ack.
void task_checkpoint(task_ptr self, uint64_t epoch) {
  auto& st = self->state;
  if (st.pipeline->aggregating() && !st.ended) send_partials(self, false);
  for (const auto& shard : st.shards) self->send(shard, barrier_atom::value, epoch, st.partition);
  self->send(st.sink, barrier_atom::value, epoch, st.partition);
  checkpoint_ack ack;
  ack.epoch = epoch;
  ack.partition = st.partition;
  ack.next_offset = st.next_offset;
  ack.counters = st.totals;
  std::vector<state_op> ops;
  const std::string prefix = task_prefix(st.partition);
  if (auto* agg = st.pipeline->aggregator()) {
    agg->checkpoint(prefix + "a/", ops);
    ack.watermark = agg->watermark();
    if (const std::string& e = agg->backing_error(); !e.empty())
      ack.error = "partition " + std::to_string(st.partition) + ": reading its state: " + e;
  }
  ops.emplace_back(prefix + "m", encode_task_meta(st.next_offset, ack.watermark, st.totals));
  if (!ack.error.empty()) {
    // not written: the epoch fails
  } else if (auto s = st.ctx->db->write_batch(ops, false); !s.ok()) {
    ack.error = "partition " + std::to_string(st.partition) + ": " + s.error;
  } else {
    attach_unit_changes(*st.ctx, ops, ack);
  }
  self->send(st.coordinator, std::move(ack));
}

/// The end offset of the next replayed epoch for this partition (-1: it read nothing in that
/// epoch's run); nullopt when no replayed epoch is left.
std::optional<int64_t> cut_offset(task_ptr self) {
  auto& st = self->state;
  if (st.cut == st.ctx->replay.end()) return std::nullopt;
  auto it = st.cut->second.find(st.partition);
  return it == st.cut->second.end() ? -1 : it->second;
}

/// The input reached the next replayed epoch's end (or ended before it: a truncated topic).
bool at_cut(task_ptr self) {
  auto& st = self->state;
  const auto c = cut_offset(self);
  return !c || st.ended || !st.waiting.empty() || st.next_offset >= *c;
}

/// Keeps `b` from entry `from` on for after the next cut (in front of what waits already).
void hold(task_ptr self, kafka_batch&& b, size_t from, bool credited) {
  auto& st = self->state;
  if (!credited)  // waiting input must not stop the poller: other partitions need theirs
    st.ctx->in_flight_bytes.fetch_sub(b.in_flight_cost(), std::memory_order_relaxed);
  st.waiting.emplace_front(std::move(b), from);
}

/// Processes `b` from entry `from` on. Stops before the first record at or past the cut of a
/// replayed epoch the coordinator has not started yet and holds the rest; takes the barrier there
/// when it has. `credited`: the batch's in-flight bytes were given back already. Returns false
/// when it held input.
bool consume(task_ptr self, kafka_batch& b, size_t from, bool credited) {
  auto& st = self->state;
  result_batch out;
  out.partition = st.partition;
  if (!st.pipeline->aggregating()) out.rows.reserve(b.entries.size() - from);
  raw_record r;
  r.topic = b.topic;
  r.partition = b.partition;
  int64_t now = now_us();
  auto cut = cut_offset(self);
  // What was processed so far goes to the sink (before a barrier, or as the batch's result).
  auto send_out = [&](bool last) {
    if (!last && out.counters.in == 0 && out.rows.empty() && out.dead_letters.empty()) return;
    if (out.next_offset >= 0) st.next_offset = out.next_offset;
    st.totals += out.counters;
    out.end = last && b.end;
    out.credit = last && !credited ? b.in_flight_cost() : 0;
    if (st.pipeline->aggregating() && last) send_partials(self, b.end);
    self->send(st.sink, std::move(out));
    out = result_batch{};
    out.partition = st.partition;
  };
  for (size_t i = from; i < b.entries.size(); ++i) {
    const auto& e = b.entries[i];
    while (cut && e.offset >= *cut) {
      send_out(false);
      if (st.pending_cut == 0) {
        hold(self, std::move(b), i, credited);
        return false;
      }
      task_checkpoint(self, std::exchange(st.pending_cut, 0));
      ++st.cut;
      cut = cut_offset(self);
    }
    r.offset = e.offset;
    r.timestamp_ms = e.timestamp_ms;
    r.key = b.key(e);
    r.value = b.value(e);
    r.value_is_null = e.value_is_null;
    st.pipeline->process(r, now, out.rows, out.dead_letters, out.counters);
    out.next_offset = e.offset + 1;
  }
  // The end of input comes after every replayed epoch: a drain (--exit-at-end) must not emit
  // into an epoch whose output is not written again.
  while (b.end && cut) {
    send_out(false);
    if (st.pending_cut == 0) {
      hold(self, std::move(b), b.entries.size(), credited);
      return false;
    }
    task_checkpoint(self, std::exchange(st.pending_cut, 0));
    ++st.cut;
    cut = cut_offset(self);
  }
  send_out(true);
  if (b.end) {
    st.ended = true;
    // With checkpoints the task stays for the final epoch; the coordinator ends it.
    if (st.ctx->checkpointing)
      self->send(st.coordinator, ended_atom::value, st.partition);
    else
      self->quit();
  }
  if (st.pending_cut != 0 && at_cut(self)) {
    task_checkpoint(self, std::exchange(st.pending_cut, 0));
    ++st.cut;
  }
  return true;
}

/// Processes held input (`starved`) in order while every shard has credit. Input held at a
/// replayed epoch's cut moves what follows it to `waiting` (its in-flight bytes given back).
void drain_starved(task_ptr self) {
  auto& st = self->state;
  while (!st.starved.empty() && st.gate.open()) {
    task_state::starved_batch s = std::move(st.starved.front());
    st.starved.pop_front();
    if (consume(self, s.batch, s.from, s.credited)) continue;
    for (auto& rest : st.starved) {
      if (!rest.credited)
        st.ctx->in_flight_bytes.fetch_sub(rest.batch.in_flight_cost(), std::memory_order_relaxed);
      st.waiting.emplace_back(std::move(rest.batch), rest.from);
    }
    st.starved.clear();
    return;
  }
}

}  // namespace

caf::behavior source_task(task_ptr self, std::shared_ptr<run_context> ctx, int32_t partition,
                          caf::actor sink, std::vector<caf::actor> shards, caf::actor coordinator) {
  fail_run_on_exception(self, ctx, "source task of partition " + std::to_string(partition));
  auto& st = self->state;
  st.ctx = ctx;
  st.partition = partition;
  st.sink = std::move(sink);
  st.shards = std::move(shards);
  st.coordinator = std::move(coordinator);
  st.gate = credit_gate(st.shards.size());
  std::string err;  // the config was validated before any actor started
  st.pipeline =
      source_pipeline::create(*ctx->cfg, ctx->plan ? &*ctx->plan : nullptr, partition, &err);
  st.cut = ctx->replay.begin();
  auto* agg = st.pipeline->aggregator();
  if (agg && !ctx->checkpointing) agg->track_changes(false);
  // Changelog state lives in the node-local store; memory holds what changed since the barrier.
  if (ctx->checkpointing && ctx->cfg->checkpoint.state_in_rocksdb && agg)
    agg->set_backing(&ctx->db_reader, task_prefix(partition) + "a/");
  if (ctx->checkpointing && ctx->restored_epoch > 0) {
    const std::string prefix = task_prefix(partition);
    store_status s;
    auto meta = ctx->db->get(prefix + "m", &s);
    int64_t wm = 0;
    if (s.ok() && meta && !decode_task_meta(*meta, &st.next_offset, &wm, &st.totals))
      s.error = "malformed task state \"" + *meta + "\"";
    if (s.ok() && agg && !agg->restore(ctx->db_reader, prefix + "a/", &err)) s.error = err;
    if (!s.ok())
      self->send(
          st.coordinator, failed_atom::value,
          "partition " + std::to_string(partition) + ": cannot restore its state: " + s.error);
  }
  return {
      [self](kafka_batch& b) {
        fault_point("source_task");
        auto& st = self->state;
        if (!st.waiting.empty()) {  // behind input that waits for a replayed epoch's barrier
          st.ctx->in_flight_bytes.fetch_sub(b.in_flight_cost(), std::memory_order_relaxed);
          st.waiting.emplace_back(std::move(b), 0);
          return;
        }
        if (st.starved.empty() && st.gate.open()) {
          consume(self, b, 0, false);
          return;
        }
        // A shard has not returned credit: hold the input (the poller stops at the in-flight
        // limit) until it does.
        if (st.starved.empty()) st.ctx->credit_waits.fetch_add(1, std::memory_order_relaxed);
        st.starved.push_back({std::move(b), 0, false});
      },
      [self](credit_atom, uint64_t generation, int32_t shard, int32_t n) {
        auto& st = self->state;
        if (generation != st.ctx->generation || shard < 0) return;
        st.gate.grant(static_cast<size_t>(shard), n);
        if (st.waiting.empty()) drain_starved(self);
      },
      [self](checkpoint_atom, uint64_t epoch) {
        auto& st = self->state;
        if (st.cut == st.ctx->replay.end() || st.cut->first != epoch) {
          task_checkpoint(self, epoch);
          return;
        }
        // A replayed epoch: cut exactly at its logged end offset.
        st.pending_cut = epoch;
        if (!at_cut(self)) return;  // consume() takes it when the input gets there
        task_checkpoint(self, std::exchange(st.pending_cut, 0));
        ++st.cut;
        // What waited for this cut is processed now, as far as the shards' credit goes
        // (`starved` is empty while `waiting` holds input).
        for (auto& [b, from] : st.waiting) st.starved.push_back({std::move(b), from, true});
        st.waiting.clear();
        drain_starved(self);
      },
  };
}

}  // namespace eddy
