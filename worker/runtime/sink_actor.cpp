#include "worker/runtime/sink_actor.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <iterator>
#include <utility>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/postgres/pg_sink.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/pipeline_runtime.hpp"
#include "worker/runtime/publisher_actor.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {
namespace {

// A sink that cannot write stops the pipeline: the poller ends every partition, what was read
// drains, and `eddy run` exits non-zero with the first error.
void fail(sink_ptr self, std::string error) {
  auto& st = self->state;
  if (st.error.empty()) st.error = std::move(error);
  st.ctx->abort = true;
}

// Aggregated rows come from several shards: show them in window, then key order. Stable, on the
// window and key columns only: two on_update rows of one group stay in emission order (one group
// lives in one shard, and CAF keeps one sender's messages in order).
void sort_rows(sink_ptr self, std::vector<row>& rows) {
  auto& st = self->state;
  if (!st.ctx->plan) return;
  const auto keys = static_cast<std::ptrdiff_t>(st.schema.names.size() - st.ctx->plan->aggs.size());
  std::stable_sort(rows.begin(), rows.end(), [keys](const row& a, const row& b) {
    return std::lexicographical_compare(a.begin(), a.begin() + keys, b.begin(), b.begin() + keys);
  });
}

void flush(sink_ptr self) {
  auto& st = self->state;
  if (st.pending_in == 0 && st.pending_rows.empty() && st.pending_dead.empty()) return;
  sort_rows(self, st.pending_rows);
  // A batch whose records were all filtered out still counts; an aggregating batch that closed
  // no window writes nothing (Spark prints empty tables; that is only noise).
  if (!st.pending_rows.empty() || !st.ctx->plan) {
    for (auto& s : st.sinks) {
      if (st.ctx->checkpointing && s->transactional()) continue;
      if (auto err = s->write_batch(st.batch_id, st.schema, st.pending_rows); !err.empty())
        fail(self, "sink: " + err);
    }
  }
  if (!st.pending_dead.empty()) {
    if (!st.ctx->checkpointing) {
      if (auto err = st.dead_file->write_batch(st.batch_id, st.pending_dead); !err.empty())
        fail(self, "dead-letter output: " + err);
    }
    if (st.dead_kafka) {
      if (auto err = st.dead_kafka->write(st.pending_dead); !err.empty())
        fail(self, "dead-letter topic: " + err);
    }
  }
  ++st.batch_id;
  if (st.ctx->batches_out) st.ctx->batches_out->fetch_add(1);
  st.pending_rows.clear();
  st.pending_dead.clear();
  st.pending_in = 0;
}

void report(sink_ptr self) {
  auto& st = self->state;
  worker_report r;
  for (const auto& [p, c] : st.counters) {
    r.partitions.push_back(p);
    r.counters.push_back(c);
  }
  r.error = st.error;
  self->send(st.listener, done_atom::value, std::move(r), st.batch_id);
}

void finish(sink_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  fault_point("sink_finish");
  st.finished = true;
  flush(self);
  for (auto& s : st.sinks)
    if (auto err = s->close(); !err.empty()) fail(self, "sink: " + err);
  report(self);
  self->quit();
}

void maybe_finish(sink_ptr self) {
  auto& st = self->state;
  if (st.ctx->checkpointing) return;  // the coordinator's final commit ends the sink
  if (st.ended.size() < st.expected.size() || st.ended_shards < st.expected_shards) return;
  finish(self);
}

/// The per-trigger rows reached max_rows_per_batch: write them as a batch now, not at the tick.
void flush_if_full(sink_ptr self) {
  auto& st = self->state;
  if (static_cast<int64_t>(st.pending_rows.size()) >= st.ctx->cfg->max_rows_per_batch) flush(self);
}

/// The current epoch's rows reached max_rows_per_batch: stage them now as the epoch's next part
/// (1, 2, ...), keeping its dead letters for the barrier. `next` is never spilled: it holds rows
/// only while a barrier is being aligned.
void spill_if_full(sink_ptr self) {
  auto& st = self->state;
  if (st.ctx->replay.contains(st.current_epoch)) {  // a replayed epoch: published already
    st.current.rows.clear();
    st.current.dead.clear();
    return;
  }
  if (!st.has_transactional || st.current_parts >= max_epoch_parts ||
      static_cast<int64_t>(st.current.rows.size()) < st.ctx->cfg->max_rows_per_batch)
    return;
  sort_rows(self, st.current.rows);
  ++st.current_parts;
  for (auto& s : st.sinks) {
    if (!s->transactional()) continue;
    auto err = s->stage_epoch(st.current_epoch, st.current_parts, st.schema, st.current.rows);
    if (!err.empty() && st.part_error.empty()) {
      st.part_error = "sink: " + err;
      fail(self, st.part_error);
    }
  }
  st.current.rows.clear();
}

/// Files rows and dead letters of one result batch from input `in`.
void take(sink_ptr self, int32_t in, std::vector<row>&& rows, std::vector<dead_letter>&& dead) {
  auto& st = self->state;
  if (!st.ctx->checkpointing) {
    std::move(rows.begin(), rows.end(), std::back_inserter(st.pending_rows));
    std::move(dead.begin(), dead.end(), std::back_inserter(st.pending_dead));
    flush_if_full(self);
    return;
  }
  epoch_bucket& b = st.aligner->blocked(in) ? st.next : st.current;
  if (st.has_per_trigger) {
    if (st.has_transactional)
      st.pending_rows.insert(st.pending_rows.end(), rows.begin(), rows.end());
    else
      std::move(rows.begin(), rows.end(), std::back_inserter(st.pending_rows));
  }
  if (st.has_transactional) std::move(rows.begin(), rows.end(), std::back_inserter(b.rows));
  if (st.dead_kafka) st.pending_dead.insert(st.pending_dead.end(), dead.begin(), dead.end());
  std::move(dead.begin(), dead.end(), std::back_inserter(b.dead));
  if (st.has_per_trigger) flush_if_full(self);
  spill_if_full(self);
}

void send_or_hold_ack(sink_ptr self, checkpoint_ack ack);

/// Every input's barrier of `epoch` is in: stage the epoch's output durably (what is left after
/// the parts staged before, as its last part), then ack.
void stage(sink_ptr self, uint64_t epoch) {
  auto& st = self->state;
  checkpoint_ack ack;
  ack.epoch = epoch;
  if (epoch != st.current_epoch)  // epochs are consecutive from ctx->first_epoch
    ack.error = "sink: barrier " + std::to_string(epoch) + " while expecting epoch " +
                std::to_string(st.current_epoch);
  if (!st.part_error.empty()) ack.error = st.part_error;
  // A sink that failed before (one that could not start stages nothing): the epoch must not
  // commit without its output.
  if (!st.error.empty() && ack.error.empty()) ack.error = st.error;
  // A replayed epoch (ctx->replay) published its output in an earlier run: not written again.
  if (!st.ctx->replay.contains(epoch)) {
    sort_rows(self, st.current.rows);
    const bool sync = st.ctx->cfg->checkpoint.sync;
    for (auto& s : st.sinks) {
      if (!s->transactional()) continue;
      if (auto err = s->stage_epoch(epoch, 0, st.schema, st.current.rows); !err.empty())
        ack.error = "sink: " + err;
    }
    if (auto err = st.dead_file->stage_epoch(epoch, st.current.dead, sync); !err.empty())
      ack.error = "dead-letter output: " + err;
  }
  crash_point("stage");
  st.current = std::move(st.next);
  st.next = {};
  st.current_epoch = epoch + 1;
  st.current_parts = 0;
  st.part_error.clear();
  if (!ack.error.empty()) fail(self, ack.error);
  send_or_hold_ack(self, std::move(ack));
}

/// Epochs committed but not published yet: with this many waiting, the sink holds its ack of
/// the next epoch (and so its commit) until the publisher has caught up. One epoch is delivered
/// while the next is processed; a slow database or broker slows the pipeline down instead of piling
/// up staged epochs on disk.
constexpr uint64_t max_unpublished_epochs = 2;

/// Acks `ack` now, or holds it while max_unpublished_epochs committed epochs are unpublished.
void send_or_hold_ack(sink_ptr self, checkpoint_ack ack) {
  auto& st = self->state;
  if (ack.error.empty() && st.publish_asked > st.published &&
      ack.epoch > st.published + max_unpublished_epochs) {
    st.held_ack = std::move(ack);
    return;
  }
  self->send(st.coordinator, std::move(ack));
}

/// The coordinator recorded `epoch` as complete: its staged output is published by the
/// publisher (publisher_actor.hpp), on its own thread, in commit order.
void publish(sink_ptr self, uint64_t epoch) {
  auto& st = self->state;
  if (!st.publisher) {
    publish_targets t;
    for (const auto& s : st.sinks)
      if (s->transactional()) t.sinks.push_back(s);
    t.dead_letter_dir = st.dead_file->dir();
    t.sync = st.ctx->cfg->checkpoint.sync;
    st.publisher = spawn_publisher(self, st.ctx, std::move(t));
  }
  st.publish_asked = epoch;
  self->send(st.publisher, publish_atom::value, epoch);
}

/// Nothing is being published: a final commit or a stop may end the sink now.
void maybe_end(sink_ptr self) {
  auto& st = self->state;
  if (st.publish_asked > st.published) return;
  if (st.final_committed || st.stopping) finish(self);
}

}  // namespace

caf::behavior sink_actor(sink_ptr self, std::shared_ptr<run_context> ctx, output_schema schema,
                         caf::actor listener, std::map<int32_t, record_counters> counters) {
  fail_run_on_exception(self, ctx, "sink");
  auto& st = self->state;
  st.ctx = ctx;
  st.schema = std::move(schema);
  st.listener = std::move(listener);
  st.counters = std::move(counters);
  for (const auto& [p, c] : st.counters) ctx->note_taken(p, c, -1);
  st.current_epoch = ctx->first_epoch;
  std::ostream& console = ctx->opts.console ? *ctx->opts.console : std::cout;
  for (std::size_t i = 0; i < ctx->cfg->sinks.size(); ++i) {
    const sink_config& sc = ctx->cfg->sinks[i];
    switch (sc.kind) {
      case sink_kind::console:
        st.sinks.push_back(make_console_sink(sc, console, ctx->fmt));
        break;
      case sink_kind::file:
        st.sinks.push_back(make_file_sink(sc, ctx->fmt));
        break;
      case sink_kind::kafka: {
        std::string err;
        auto k = make_kafka_sink(*ctx->cfg, i, ctx->fmt, &err);
        if (!k)
          fail(self, "kafka sink: " + err);
        else
          st.sinks.push_back(std::move(k));
        break;
      }
      case sink_kind::postgres: {
        // Connects now: bad credentials, a missing database or an unreachable server end the
        // run at its start with one line, not at the first epoch.
        std::string err;
        auto p =
            make_postgres_sink(*ctx->cfg, i, ctx->fmt, ctx->opts.log ? *ctx->opts.log : std::cerr,
                               pg_start::connect, &err);
        if (!p)
          fail(self, err);
        else
          st.sinks.push_back(std::move(p));
        break;
      }
    }
  }
  for (auto& s : st.sinks) {
    s->set_sync(ctx->cfg->checkpoint.sync);
    (s->transactional() ? st.has_transactional : st.has_per_trigger) = true;
  }
  st.dead_file = std::make_unique<dead_letter_file_writer>(ctx->cfg->dead_letter.path,
                                                           ctx->cfg->dead_letter.name_tag);
  if (!ctx->cfg->dead_letter.topic.empty()) {
    std::string err;
    st.dead_kafka = kafka_dead_letter_writer::create(ctx->cfg->source.bootstrap_servers,
                                                     ctx->cfg->dead_letter.topic, &err);
    if (!st.dead_kafka) fail(self, "dead-letter topic: " + err);
  }
  self->delayed_send(self, std::chrono::milliseconds(ctx->cfg->trigger_interval_ms),
                     tick_atom::value);
  return {
      [self](assign_atom, const std::vector<int32_t>& partitions,
             const std::vector<int32_t>& shards, const caf::actor& coordinator) {
        auto& st = self->state;
        st.expected_shards = static_cast<int>(shards.size());
        st.coordinator = coordinator;
        std::vector<int32_t> inputs;
        for (int32_t p : partitions) {
          st.expected.insert(p);
          st.counters[p];  // partitions with no records still show up
          st.ctx->note_taken(p, {}, -1);
          inputs.push_back(p);
        }
        for (int32_t s : shards) inputs.push_back(-1 - s);
        st.aligner = std::make_unique<barrier_aligner>(std::move(inputs));
      },
      [self](result_batch& b) {
        fault_point("sink");
        auto& st = self->state;
        if (b.shard >= 0) {
          st.ctx->result_rows_in_flight.fetch_sub(static_cast<int64_t>(b.rows.size()),
                                                  std::memory_order_relaxed);
          take(self, -1 - b.shard, std::move(b.rows), {});
          if (b.end) ++st.ended_shards;
          maybe_finish(self);
          return;
        }
        st.ctx->in_flight_bytes.fetch_sub(b.credit, std::memory_order_relaxed);
        st.counters[b.partition] += b.counters;
        st.ctx->note_taken(b.partition, b.counters, b.next_offset);
        st.pending_in += b.counters.in;
        take(self, b.partition, std::move(b.rows), std::move(b.dead_letters));
        if (b.end) st.ended.insert(b.partition);
        maybe_finish(self);
      },
      // A cluster host kept its units running across a generation change (unit_host.hpp): the
      // epoch that was open is aborted, so every row since the last committed epoch belongs to
      // `first_epoch`, the new generation's first; partitions moved here (`added`, with their
      // restored counters) become inputs too. Parts staged for aborted epochs stay staged: the
      // host reports them with first_epoch's files.
      [self](assign_atom, uint64_t first_epoch, const std::vector<int32_t>& added,
             const std::vector<record_counters>& counters) {
        auto& st = self->state;
        if (!st.part_error.empty())  // rows of an aborted epoch were not staged: cannot carry
          throw std::runtime_error("sink: " + st.part_error);
        auto& cur = st.current;
        std::move(st.next.rows.begin(), st.next.rows.end(), std::back_inserter(cur.rows));
        std::move(st.next.dead.begin(), st.next.dead.end(), std::back_inserter(cur.dead));
        st.next = {};
        if (first_epoch != st.current_epoch) st.current_parts = 0;
        st.current_epoch = first_epoch;
        st.stale_below = first_epoch;
        st.held_ack.reset();
        for (size_t i = 0; i < added.size(); ++i) {
          const record_counters c = i < counters.size() ? counters[i] : record_counters{};
          st.expected.insert(added[i]);
          st.counters[added[i]] = c;
          st.ctx->note_taken(added[i], c, -1);
        }
        st.aligner = std::make_unique<barrier_aligner>(
            std::vector<int32_t>(st.expected.begin(), st.expected.end()));
        spill_if_full(self);
      },
      [self](barrier_atom, uint64_t epoch, int32_t input) {
        auto& st = self->state;
        if (epoch < st.stale_below) return;  // cut before the generation change: aborted
        std::string err;
        if (st.aligner->on_barrier(input, epoch, &err)) {
          stage(self, epoch);
          st.aligner->release();
        } else if (!err.empty()) {
          checkpoint_ack ack;
          ack.epoch = epoch;
          ack.error = "sink: " + err;
          self->send(st.coordinator, std::move(ack));
        }
      },
      [self](commit_atom, uint64_t epoch, bool final_epoch) {
        publish(self, epoch);
        if (final_epoch) self->state.final_committed = true;
      },
      [self](published_atom, uint64_t epoch, const std::string& error) {
        auto& st = self->state;
        st.published = epoch;
        if (!error.empty()) fail(self, error);
        if (st.held_ack && (st.published >= st.publish_asked ||
                            st.held_ack->epoch <= st.published + max_unpublished_epochs)) {
          self->send(st.coordinator, std::move(*st.held_ack));
          st.held_ack.reset();
        }
        maybe_end(self);
      },
      // A cluster worker leaves cleanly (its host stops next): write the per-trigger rows held.
      [self](finish_atom, uint64_t, uint64_t) { flush(self); },
      [self](stop_atom) {  // the coordinator gave up (checkpoint failure)
        self->state.stopping = true;
        maybe_end(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        flush(self);
        if (st.ctx->opts.stats_requested && st.ctx->opts.stats_requested->exchange(false)) {
          std::vector<int32_t> ps;
          std::vector<record_counters> cs;
          for (const auto& [p, c] : st.counters) {
            ps.push_back(p);
            cs.push_back(c);
          }
          print_counters(st.ctx->opts.log ? *st.ctx->opts.log : std::cerr, ps, cs);
        }
        self->delayed_send(self, std::chrono::milliseconds(st.ctx->cfg->trigger_interval_ms),
                           tick_atom::value);
      },
  };
}

}  // namespace eddy
