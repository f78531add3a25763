#include "worker/runtime/pipeline_runtime.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "coordinator/coordinator_actor.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/kafka/kafka_sink.hpp"
#include "worker/sink.hpp"
#include "worker/source_pipeline.hpp"
#include "worker/time_format.hpp"

namespace eddy {

record_counters run_result::total() const {
  record_counters t;
  for (const auto& c : counters) t += c;
  return t;
}

void print_counters(std::ostream& out, const std::vector<int32_t>& partitions,
                    const std::vector<record_counters>& counters) {
  out << "partition          in         out    filtered  dead-lettered        late\n";
  record_counters total;
  auto line = [&](const std::string& name, const record_counters& c) {
    out << std::setw(9) << name << std::setw(12) << c.in << std::setw(12) << c.out << std::setw(12)
        << c.filtered << std::setw(15) << c.dead_lettered << std::setw(12) << c.late
        << (c.reconciles() ? "" : "   (does not reconcile!)") << "\n";
  };
  for (size_t i = 0; i < partitions.size(); ++i) {
    line(std::to_string(partitions[i]), counters[i]);
    total += counters[i];
  }
  line("total", total);
  out.flush();
}

namespace {

// Shared, read-only context of one pipeline run.
struct run_context {
  const pipeline_config* cfg;
  run_options opts;
  time_formatter fmt;
  std::optional<aggregation_plan> plan;  ///< set for aggregating pipelines
  std::atomic<bool> abort{false};        ///< a sink failed: drain and stop
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- sink actor -------------------------------------------------------------------------------

struct sink_state {
  std::shared_ptr<run_context> ctx;
  std::vector<std::unique_ptr<sink>> sinks;
  std::unique_ptr<dead_letter_file_writer> dead_file;
  std::unique_ptr<kafka_dead_letter_writer> dead_kafka;
  output_schema schema;
  std::vector<row> pending_rows;
  std::vector<dead_letter> pending_dead;
  int64_t pending_in = 0;
  std::map<int32_t, record_counters> counters;
  std::map<int32_t, int64_t> next_offsets;
  std::set<int32_t> expected, ended;
  int expected_shards = 0, ended_shards = 0;
  int64_t batch_id = 0;
  caf::actor listener;
  std::string error;
  bool finished = false;
  static inline const char* name = "eddy.sink";
};

// A sink that cannot write stops the pipeline: the poller ends every partition, what was read
// drains, and `eddy run` exits non-zero with the first error.
void fail(caf::stateful_actor<sink_state>* self, std::string error) {
  auto& st = self->state;
  if (st.error.empty()) st.error = std::move(error);
  st.ctx->abort = true;
}

void flush(caf::stateful_actor<sink_state>* self) {
  auto& st = self->state;
  if (st.pending_in == 0 && st.pending_rows.empty() && st.pending_dead.empty()) return;
  if (st.ctx->plan) {
    // Aggregated rows come from several shards: show them in window, then key order. Stable, on
    // the window and key columns only: two on_update rows of one group stay in emission order
    // (one group lives in one shard, and CAF keeps one sender's messages in order).
    const auto keys =
        static_cast<std::ptrdiff_t>(st.schema.names.size() - st.ctx->plan->aggs.size());
    std::stable_sort(st.pending_rows.begin(), st.pending_rows.end(),
                     [keys](const row& a, const row& b) {
                       return std::lexicographical_compare(a.begin(), a.begin() + keys, b.begin(),
                                                           b.begin() + keys);
                     });
  }
  // A batch whose records were all filtered out still counts; an aggregating batch that closed
  // no window writes nothing (Spark prints empty tables; that is only noise).
  if (!st.pending_rows.empty() || !st.ctx->plan) {
    for (auto& s : st.sinks) {
      if (auto err = s->write_batch(st.batch_id, st.schema, st.pending_rows); !err.empty())
        fail(self, "sink: " + err);
    }
  }
  if (!st.pending_dead.empty()) {
    if (auto err = st.dead_file->write_batch(st.batch_id, st.pending_dead); !err.empty())
      fail(self, "dead-letter output: " + err);
    if (st.dead_kafka) {
      if (auto err = st.dead_kafka->write(st.pending_dead); !err.empty())
        fail(self, "dead-letter topic: " + err);
    }
  }
  ++st.batch_id;
  st.pending_rows.clear();
  st.pending_dead.clear();
  st.pending_in = 0;
}

void report(caf::stateful_actor<sink_state>* self) {
  auto& st = self->state;
  worker_report r;
  for (const auto& [p, c] : st.counters) {
    r.partitions.push_back(p);
    r.counters.push_back(c);
  }
  r.error = st.error;
  self->send(st.listener, done_atom::value, std::move(r), st.batch_id);
}

void maybe_finish(caf::stateful_actor<sink_state>* self) {
  auto& st = self->state;
  if (st.finished || st.ended.size() < st.expected.size() || st.ended_shards < st.expected_shards)
    return;
  st.finished = true;
  flush(self);
  for (auto& s : st.sinks)
    if (auto err = s->close(); !err.empty()) fail(self, "sink: " + err);
  report(self);
  self->quit();
}

caf::behavior sink_actor(caf::stateful_actor<sink_state>* self, std::shared_ptr<run_context> ctx,
                         output_schema schema, caf::actor listener) {
  auto& st = self->state;
  st.ctx = ctx;
  st.schema = std::move(schema);
  st.listener = std::move(listener);
  std::ostream& console = ctx->opts.console ? *ctx->opts.console : std::cout;
  for (const auto& sc : ctx->cfg->sinks) {
    switch (sc.kind) {
      case sink_kind::console:
        st.sinks.push_back(make_console_sink(sc, console, ctx->fmt));
        break;
      case sink_kind::file:
        st.sinks.push_back(make_file_sink(sc, ctx->fmt));
        break;
      case sink_kind::kafka: {
        std::string err;
        auto k = make_kafka_sink(sc, ctx->cfg->source.bootstrap_servers, ctx->fmt, &err);
        if (!k)
          fail(self, "kafka sink: " + err);
        else
          st.sinks.push_back(std::move(k));
        break;
      }
    }
  }
  st.dead_file = std::make_unique<dead_letter_file_writer>(ctx->cfg->dead_letter.path);
  if (!ctx->cfg->dead_letter.topic.empty()) {
    std::string err;
    st.dead_kafka = kafka_dead_letter_writer::create(ctx->cfg->source.bootstrap_servers,
                                                     ctx->cfg->dead_letter.topic, &err);
    if (!st.dead_kafka) fail(self, "dead-letter topic: " + err);
  }
  self->delayed_send(self, std::chrono::milliseconds(ctx->cfg->trigger_interval_ms),
                     tick_atom::value);
  return {
      [self](assign_atom, const std::vector<int32_t>& partitions, int shards) {
        self->state.expected_shards = shards;
        for (int32_t p : partitions) {
          self->state.expected.insert(p);
          self->state.counters[p];  // partitions with no records still show up
        }
      },
      [self](result_batch& b) {
        auto& st = self->state;
        if (b.shard >= 0) {
          std::move(b.rows.begin(), b.rows.end(), std::back_inserter(st.pending_rows));
          if (b.end) ++st.ended_shards;
          maybe_finish(self);
          return;
        }
        st.counters[b.partition] += b.counters;
        st.pending_in += b.counters.in;
        if (b.next_offset >= 0) st.next_offsets[b.partition] = b.next_offset;
        std::move(b.rows.begin(), b.rows.end(), std::back_inserter(st.pending_rows));
        std::move(b.dead_letters.begin(), b.dead_letters.end(),
                  std::back_inserter(st.pending_dead));
        if (b.end) st.ended.insert(b.partition);
        maybe_finish(self);
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

// ---- source task: one per partition -----------------------------------------------------------

struct task_state {
  std::shared_ptr<run_context> ctx;
  std::unique_ptr<source_pipeline> pipeline;
  std::vector<caf::actor> shards;
  std::vector<partial_batch> partials;
  caf::actor sink;
  int32_t partition = 0;
  static inline const char* name = "eddy.source_task";
};

caf::behavior source_task(caf::stateful_actor<task_state>* self, std::shared_ptr<run_context> ctx,
                          int32_t partition, caf::actor sink, std::vector<caf::actor> shards) {
  auto& st = self->state;
  st.ctx = ctx;
  st.partition = partition;
  st.sink = std::move(sink);
  st.shards = std::move(shards);
  std::string err;  // the config was validated before any actor started
  st.pipeline =
      source_pipeline::create(*ctx->cfg, ctx->plan ? &*ctx->plan : nullptr, partition, &err);
  return {
      [self](const kafka_batch& b) {
        auto& st = self->state;
        result_batch out;
        out.partition = st.partition;
        out.end = b.end;
        if (!st.pipeline->aggregating()) out.rows.reserve(b.entries.size());
        raw_record r;
        r.topic = b.topic;
        r.partition = b.partition;
        int64_t now = now_us();
        for (const auto& e : b.entries) {
          r.offset = e.offset;
          r.timestamp_ms = e.timestamp_ms;
          r.key = b.key(e);
          r.value = b.value(e);
          r.value_is_null = e.value_is_null;
          st.pipeline->process(r, now, out.rows, out.dead_letters, out.counters);
          out.next_offset = e.offset + 1;
        }
        if (st.pipeline->aggregating()) {
          st.pipeline->take_partials(st.partials, now);
          for (size_t i = 0; i < st.shards.size() && i < st.partials.size(); ++i) {
            partials_msg m;
            m.batch = std::make_shared<partial_batch>(std::move(st.partials[i]));
            m.end = b.end;
            self->send(st.shards[i], std::move(m));
          }
        }
        self->send(st.sink, std::move(out));
        if (b.end) self->quit();
      },
  };
}

// ---- aggregator shard: merges partials of every partition, emits windows --------------------

struct shard_state {
  std::shared_ptr<run_context> ctx;
  std::unique_ptr<shard_aggregator> aggregator;
  caf::actor sink;
  int shard = 0;
  size_t partitions = 0, ended = 0;
  static inline const char* name = "eddy.shard";
};

void shard_emit(caf::stateful_actor<shard_state>* self, bool finish) {
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

caf::behavior shard_actor(caf::stateful_actor<shard_state>* self, std::shared_ptr<run_context> ctx,
                          int shard, std::vector<int32_t> partitions, caf::actor sink) {
  auto& st = self->state;
  st.ctx = ctx;
  st.shard = shard;
  st.sink = std::move(sink);
  st.partitions = partitions.size();
  st.aggregator = std::make_unique<shard_aggregator>(*ctx->plan, shard, std::move(partitions));
  self->delayed_send(self, std::chrono::milliseconds(ctx->cfg->trigger_interval_ms),
                     tick_atom::value);
  return {
      [self](partials_msg& m) {
        auto& st = self->state;
        st.aggregator->merge(std::move(*m.batch));
        if (m.end && ++st.ended == st.partitions) {
          // Every partition ended: close all windows (like Flink's stop --drain) and finish.
          shard_emit(self, true);
          self->quit();
        }
      },
      [self](tick_atom) {
        shard_emit(self, false);
        self->delayed_send(self,
                           std::chrono::milliseconds(self->state.ctx->cfg->trigger_interval_ms),
                           tick_atom::value);
      },
  };
}

// ---- Kafka poller: a detached actor, since polling blocks --------------------------------------

struct poller_state {
  std::shared_ptr<run_context> ctx;
  std::shared_ptr<kafka_consumer> consumer;
  std::map<int32_t, caf::actor> tasks;
  std::set<int32_t> at_end;
  caf::actor worker;
  bool stopping = false;
  static inline const char* name = "eddy.poller";
};

void end_partitions(caf::stateful_actor<poller_state>* self, const std::set<int32_t>& which) {
  auto& st = self->state;
  for (int32_t p : which) {
    auto it = st.tasks.find(p);
    if (it == st.tasks.end()) continue;
    kafka_batch b;
    b.topic = st.ctx->cfg->source.topic;
    b.partition = p;
    b.end = true;
    self->send(it->second, std::move(b));
    st.tasks.erase(it);
  }
}

caf::behavior poller_actor(caf::stateful_actor<poller_state>* self,
                           std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor worker) {
  auto& st = self->state;
  st.ctx = ctx;
  st.consumer = std::move(consumer);
  st.worker = std::move(worker);
  return {
      [self](assign_atom, const std::vector<int32_t>& partitions,
             const std::vector<caf::actor>& tasks) {
        auto& st = self->state;
        std::vector<std::pair<int32_t, int64_t>> start;
        int64_t from =
            st.ctx->cfg->source.starting_offsets == "latest" ? offset_end : offset_beginning;
        for (size_t i = 0; i < partitions.size(); ++i) {
          st.tasks[partitions[i]] = tasks[i];
          start.emplace_back(partitions[i], from);
        }
        std::string err;
        if (!st.consumer->assign(st.ctx->cfg->source.topic, start, &err)) {
          self->send(st.worker, failed_atom::value, err);
          return;
        }
        self->send(self, poll_atom::value);
      },
      [self](poll_atom) {
        auto& st = self->state;
        if (st.tasks.empty()) return;
        if ((st.ctx->opts.stop && st.ctx->opts.stop->load()) || st.ctx->abort.load()) {
          std::set<int32_t> all;
          for (const auto& [p, _] : st.tasks) all.insert(p);
          end_partitions(self, all);
          return;
        }
        const std::string& topic = st.ctx->cfg->source.topic;
        std::map<int32_t, kafka_batch> batches;
        std::set<int32_t> eof;
        std::string err;
        bool ok = true;
        st.consumer->poll(
            100, static_cast<size_t>(st.ctx->cfg->source.max_records_per_poll),
            [&](const fetched_message& m) {
              auto& b = batches[m.partition];
              if (b.entries.empty()) {
                b.topic = topic;
                b.partition = m.partition;
              }
              b.add(m.offset, m.timestamp_ms, std::string_view(m.key ? m.key : "", m.key_size),
                    m.value, m.value_size);
            },
            [&](int32_t p, int64_t) { eof.insert(p); }, &err, &ok);
        for (auto& [p, b] : batches) {
          auto it = st.tasks.find(p);
          if (it != st.tasks.end()) self->send(it->second, std::move(b));
        }
        if (!ok) {
          self->send(st.worker, failed_atom::value, err);
          std::set<int32_t> all;
          for (const auto& [p, _] : st.tasks) all.insert(p);
          end_partitions(self, all);
          return;
        }
        if (st.ctx->opts.exit_at_end && !eof.empty()) end_partitions(self, eof);
        if (!st.tasks.empty()) self->send(self, poll_atom::value);
      },
  };
}

// ---- worker: hosts the tasks of the partitions the coordinator gives it -----------------------

struct worker_state {
  std::shared_ptr<run_context> ctx;
  caf::actor sink, poller, listener;
  std::shared_ptr<kafka_consumer> consumer;
  output_schema schema;
  bool assigned = false;
  static inline const char* name = "eddy.worker";
};

caf::behavior worker_actor(caf::stateful_actor<worker_state>* self,
                           std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor coordinator,
                           caf::actor listener, output_schema schema) {
  auto& st = self->state;
  st.ctx = ctx;
  st.consumer = std::move(consumer);
  st.listener = listener;
  st.schema = std::move(schema);
  self->send(coordinator, register_atom::value, std::string("worker-1"),
             caf::actor_cast<caf::actor>(self));
  return {
      [self](assign_atom, const assignment& a) {
        auto& st = self->state;
        if (st.assigned) return;  // reassignment needs checkpoints (not in this single-node run)
        st.assigned = true;
        st.sink = self->spawn(sink_actor, st.ctx, st.schema, st.listener);
        int shard_count = st.ctx->plan ? st.ctx->plan->shard_count : 0;
        self->send(st.sink, assign_atom::value, a.partitions, shard_count);
        std::vector<caf::actor> shards;
        for (int i = 0; i < shard_count; ++i)
          shards.push_back(self->spawn(shard_actor, st.ctx, i, a.partitions, st.sink));
        std::vector<caf::actor> tasks;
        for (int32_t p : a.partitions)
          tasks.push_back(self->spawn(source_task, st.ctx, p, st.sink, shards));
        st.poller = self->spawn<caf::detached>(poller_actor, st.ctx, st.consumer,
                                               caf::actor_cast<caf::actor>(self));
        self->send(st.poller, assign_atom::value, a.partitions, tasks);
      },
      [self](failed_atom, const std::string& err) {
        self->send(self->state.listener, failed_atom::value, err);
      },
  };
}

}  // namespace

run_result run_pipeline(const pipeline_config& cfg, const run_options& opts) {
  run_result result;
  auto ctx = std::make_shared<run_context>();
  ctx->cfg = &cfg;
  ctx->opts = opts;
  std::string err;
  auto fmt = time_formatter::for_zone(cfg.timezone, &err);
  if (!fmt) {
    result.error = "pipeline.timezone: " + err;
    return result;
  }
  ctx->fmt = *fmt;
  auto probe = record_processor::create(cfg, &err);
  if (!probe) {
    result.error = err;
    return result;
  }
  output_schema schema = probe->schema();
  if (!cfg.aggregates.empty()) {
    ctx->plan = aggregation_plan::from_config(cfg, &err);
    if (!ctx->plan) {
      result.error = err;
      return result;
    }
    schema = ctx->plan->schema;
  }
  // Metadata first: assign() before it makes the "beginning" lookup wait on a retry timer.
  std::shared_ptr<kafka_consumer> consumer =
      kafka_consumer::create(cfg.source.bootstrap_servers, cfg.source.group_id, {}, &err);
  if (!consumer) {
    result.error = err;
    return result;
  }
  std::vector<int32_t> partitions = consumer->partitions(cfg.source.topic, 10'000, &err);
  if (partitions.empty()) {
    result.error = err;
    return result;
  }

  caf::actor_system_config sys_cfg;
  if (opts.scheduler_threads > 0) sys_cfg.set("scheduler.max-threads", opts.scheduler_threads);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  register_message_types(sys_cfg);
  caf::actor_system sys{sys_cfg};
  {
    caf::scoped_actor self{sys};
    auto coordinator = spawn_coordinator(sys, cfg.source.topic, partitions);
    auto worker = sys.spawn(worker_actor, ctx, consumer, coordinator,
                            caf::actor_cast<caf::actor>(self), schema);
    bool running = true, failed = false;
    auto on_done = [&](done_atom, worker_report& r, int64_t batches) {
      result.partitions = std::move(r.partitions);
      result.counters = std::move(r.counters);
      result.batches = batches;
      if (!r.error.empty() && result.error.empty()) result.error = r.error;
      running = false;
    };
    auto on_failed = [&](failed_atom, const std::string& e) {
      // The poller ends every partition after a fatal error; keep waiting (bounded) for the sink
      // so that what was read is still written.
      if (result.error.empty()) result.error = e;
      failed = true;
    };
    while (running) {
      if (!failed) {
        self->receive(on_done, on_failed);
      } else {
        self->receive(
            on_done, on_failed, caf::after(std::chrono::seconds(10)) >> [&] { running = false; });
      }
    }
    self->send_exit(worker, caf::exit_reason::user_shutdown);
    self->send(coordinator, stop_atom::value);
  }
  result.ok = result.error.empty();
  return result;
}

}  // namespace eddy
