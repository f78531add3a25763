// windowing_checkpoint_test.cpp — checkpoint()/restore() of the windowed-aggregation stages.
//
// The key property: a run that is checkpointed at random barriers (every partial cut and merged),
// its objects destroyed and rebuilt from the checkpointed key space, emits exactly the rows and
// per-record outcomes of the same run left alone. The key space is a std::map standing in for
// RocksDB (ops applied in order, scanned by prefix), accumulated over every checkpoint, so the
// incremental writes are what is being restored from. A third run keeps its objects backed by
// that map (set_backing): they drop what each checkpoint wrote and read it back on demand.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <malloc.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "state/kv_store.hpp"
#include "tests/support/reference_aggregation.hpp"
#include "tests/support/windowing_helpers.hpp"
#include "worker/runtime/kv_state_reader.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

using namespace eddy::test;  // windowing_helpers.hpp

using reference::ref_event;

// ---- configs and streams (the shapes of windowing_test.cpp) --------------------------------

// Fields: 0 id, 1 ts, 2 grp, 3 region, 4 amount, 5 qty, 6 status.

void all_aggregates(pipeline_config& cfg) {
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "sum_qty", "sum", "qty");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "avg_amount", "avg", "amount");
  add_agg(cfg, "min_qty", "min", "qty");
  add_agg(cfg, "max_status", "max", "status");
  add_agg(cfg, "distinct_qty", "count_distinct", "qty");
  add_agg(cfg, "approx_id", "approx_count_distinct", "id");
  add_agg(cfg, "p90_amount", "p90", "amount");
  add_agg(cfg, "first_amount", "first", "amount");
  add_agg(cfg, "last_status", "last", "status");
}

void retractable_aggregates(pipeline_config& cfg) {
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "n_amount", "count", "amount");
  add_agg(cfg, "sum_qty", "sum", "qty");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "min_qty", "min", "qty");
  add_agg(cfg, "max_status", "max", "status");
  add_agg(cfg, "distinct_qty", "count_distinct", "qty");
}

// ---- the key space ----------------------------------------------------------------------------

using key_space = std::map<std::string, std::string>;

/// As kv_store::write_batch: range deletes first, then the rest in order.
void apply_ops(key_space& ks, const std::vector<state_op>& ops) {
  for (const state_op& op : ops) {
    if (op.is_range()) ks.erase(ks.lower_bound(op.key), ks.lower_bound(op.range_end));
  }
  for (const state_op& op : ops) {
    if (op.is_range()) continue;
    if (op.value) {
      ks[op.key] = *op.value;
    } else {
      ks.erase(op.key);
    }
  }
}

std::vector<std::pair<std::string, std::string>> scan(const key_space& ks,
                                                      const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = ks.lower_bound(prefix); it != ks.end() && it->first.starts_with(prefix); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

/// The key space as the aggregators' backing store (what the runtime's RocksDB is to them).
class map_reader final : public state_reader {
 public:
  explicit map_reader(const key_space& ks) : ks_(ks) {}
  std::optional<std::string> get(std::string_view key, std::string* /*error*/) const override {
    ++gets;
    auto it = ks_.find(std::string(key));
    if (it == ks_.end()) return std::nullopt;
    return it->second;
  }
  bool scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& f,
            std::string* /*error*/) const override {
    ++scans;
    for (auto it = ks_.lower_bound(std::string(prefix));
         it != ks_.end() && it->first.starts_with(prefix); ++it) {
      if (!f(it->first, it->second)) break;
    }
    return true;
  }
  mutable int64_t gets = 0;
  mutable int64_t scans = 0;

 private:
  const key_space& ks_;
};

std::string partition_prefix(int p) {
  return "agg/p" + std::to_string(p) + "/";
}
std::string shard_prefix(int s) {
  return "agg/s" + std::to_string(s) + "/";
}

// ---- a runtime simulation with barriers -------------------------------------------------------

struct run_result {
  std::vector<std::vector<row>> emits;  ///< per emit()/finish() call, sorted (order within a
                                        ///< call follows hash maps, not the contract)
  std::vector<std::string> outcomes;    ///< per record: "index outcome reason"
  int64_t dropped_after_close = 0;
  int barriers = 0;
  int restores = 0;
  int64_t ops = 0;
  int64_t gets = 0;              ///< backed: reads of evicted entries
  int64_t scans = 0;             ///< backed: prefix scans (closing windows, purges, restores)
  int64_t unfinished_emits = 0;  ///< chunk: emit() calls that left closing rows due
};

struct run_options {
  bool interrupt = false;  ///< checkpoint (and sometimes restore) at every barrier
  bool backed = false;     ///< with interrupt: objects backed by the key space (set_backing)
  bool restore = true;     ///< with interrupt: sometimes rebuild the objects from the key space
  bool forget = false;     ///< sometimes forget() a record's key instead of adding it
  /// > 0: every emit()/finish() may return at most a random 1..chunk rows of closing windows
  /// (bounded close); the run ends by calling them until nothing is due.
  size_t chunk = 0;
};

/// Feeds `events` as the runtime would, with random barriers: at a barrier every partition cuts
/// its partials, every in-flight batch is merged, some shards emit; an interrupted run then
/// checkpoints every object and (half the time) rebuilds them all from the key space. Every
/// decision that shapes the output comes from `seed`, so both runs make the same calls.
run_result run(const aggregation_plan& plan, const std::vector<ref_event>& events, int partitions,
               uint64_t seed, const run_options& o) {
  std::mt19937_64 rng(seed);
  std::mt19937_64 crng(seed ^ 0x5eedULL);  // checkpoint-only decisions
  std::mt19937_64 brng(seed ^ 0xb0bULL);   // emit budgets (chunk)
  auto budget = [&]() { return o.chunk > 0 ? 1 + brng() % o.chunk : SIZE_MAX; };
  run_result res;
  const int shards = plan.shard_count;
  std::vector<std::deque<size_t>> queues(static_cast<size_t>(partitions));
  for (size_t i = 0; i < events.size(); ++i) {
    queues[static_cast<size_t>(events[i].partition)].push_back(i);
  }
  std::vector<int32_t> ids;
  for (int p = 0; p < partitions; ++p) ids.push_back(p);
  std::vector<std::unique_ptr<partition_aggregator>> pas;
  std::vector<std::unique_ptr<shard_aggregator>> sas;
  for (int p = 0; p < partitions; ++p)
    pas.push_back(std::make_unique<partition_aggregator>(plan, p));
  for (int s = 0; s < shards; ++s) sas.push_back(std::make_unique<shard_aggregator>(plan, s, ids));
  std::vector<std::deque<partial_batch>> inflight(static_cast<size_t>(partitions * shards));
  key_space ks;
  const map_reader reader(ks);
  if (o.backed) {
    for (int p = 0; p < partitions; ++p)
      pas[static_cast<size_t>(p)]->set_backing(&reader, partition_prefix(p));
    for (int s = 0; s < shards; ++s)
      sas[static_cast<size_t>(s)]->set_backing(&reader, shard_prefix(s));
  }
  int64_t now = 1000 * sec;
  std::vector<partial_batch> out;

  auto cut = [&](int p) {
    pas[static_cast<size_t>(p)]->take_partials(out, now);
    for (int s = 0; s < shards; ++s) {
      inflight[static_cast<size_t>(p * shards + s)].push_back(
          std::move(out[static_cast<size_t>(s)]));
    }
  };
  auto deliver_one = [&]() {
    std::vector<size_t> ready;
    for (size_t q = 0; q < inflight.size(); ++q) {
      if (!inflight[q].empty()) ready.push_back(q);
    }
    if (ready.empty()) return false;
    const size_t q = ready[rng() % ready.size()];
    sas[q % static_cast<size_t>(shards)]->merge(std::move(inflight[q].front()));
    inflight[q].pop_front();
    return true;
  };
  auto emit = [&](size_t s) {
    std::vector<row> rows;
    if (sas[s]->emit(rows, now, budget())) ++res.unfinished_emits;
    std::sort(rows.begin(), rows.end());
    res.emits.push_back(std::move(rows));
  };
  auto checkpoint_all = [&]() {
    for (int p = 0; p < partitions; ++p) {
      std::vector<state_op> ops;
      pas[static_cast<size_t>(p)]->checkpoint(partition_prefix(p), ops);
      for (const auto& op : ops) EXPECT_TRUE(op.key.starts_with(partition_prefix(p)));
      res.ops += static_cast<int64_t>(ops.size());
      apply_ops(ks, ops);
      // Nothing changed since: only the meta key is written again, unchanged.
      ops.clear();
      pas[static_cast<size_t>(p)]->checkpoint(partition_prefix(p), ops);
      ASSERT_EQ(ops.size(), 1u);
      EXPECT_EQ(ks[ops[0].key], ops[0].value.value_or("?"));
      EXPECT_EQ(pas[static_cast<size_t>(p)]->backing_error(), "");
      if (o.backed) {
        EXPECT_EQ(pas[static_cast<size_t>(p)]->resident_entries(), 0u);
      }
    }
    for (int s = 0; s < shards; ++s) {
      std::vector<state_op> ops;
      sas[static_cast<size_t>(s)]->checkpoint(shard_prefix(s), ops);
      for (const auto& op : ops) EXPECT_TRUE(op.key.starts_with(shard_prefix(s)));
      res.ops += static_cast<int64_t>(ops.size());
      apply_ops(ks, ops);
      ops.clear();
      sas[static_cast<size_t>(s)]->checkpoint(shard_prefix(s), ops);
      ASSERT_EQ(ops.size(), 1u);
      EXPECT_EQ(ks[ops[0].key], ops[0].value.value_or("?"));
      EXPECT_EQ(sas[static_cast<size_t>(s)]->backing_error(), "");
      if (plan.window.late != late_policy::update) {
        // Without kept closed windows the key space holds exactly the open groups (+ meta).
        EXPECT_EQ(scan(ks, shard_prefix(s)).size(), sas[static_cast<size_t>(s)]->open_groups() + 1);
      }
    }
  };
  auto restore_all = [&]() {
    std::string error;
    for (int p = 0; p < partitions; ++p) {
      pas[static_cast<size_t>(p)].reset();  // destroyed before its successor exists
      pas[static_cast<size_t>(p)] = std::make_unique<partition_aggregator>(plan, p);
      if (o.backed) {
        pas[static_cast<size_t>(p)]->set_backing(&reader, partition_prefix(p));
        ASSERT_TRUE(pas[static_cast<size_t>(p)]->restore(reader, partition_prefix(p), &error))
            << error;
        EXPECT_EQ(pas[static_cast<size_t>(p)]->resident_entries(), 0u);
        continue;
      }
      ASSERT_TRUE(pas[static_cast<size_t>(p)]->restore(partition_prefix(p),
                                                       scan(ks, partition_prefix(p)), &error))
          << error;
    }
    for (int s = 0; s < shards; ++s) {
      sas[static_cast<size_t>(s)].reset();
      sas[static_cast<size_t>(s)] = std::make_unique<shard_aggregator>(plan, s, ids);
      if (o.backed) {
        sas[static_cast<size_t>(s)]->set_backing(&reader, shard_prefix(s));
        ASSERT_TRUE(sas[static_cast<size_t>(s)]->restore(reader, shard_prefix(s), &error)) << error;
      } else {
        ASSERT_TRUE(sas[static_cast<size_t>(s)]->restore(shard_prefix(s), scan(ks, shard_prefix(s)),
                                                         &error))
            << error;
      }
      // A restored object is where its checkpoint left it: nothing to write but the meta key.
      std::vector<state_op> ops;
      sas[static_cast<size_t>(s)]->checkpoint(shard_prefix(s), ops);
      ASSERT_EQ(ops.size(), 1u);
      EXPECT_EQ(ks[ops[0].key], ops[0].value.value_or("?"));
    }
    ++res.restores;
  };
  auto barrier = [&]() {
    ++res.barriers;
    for (int p = 0; p < partitions; ++p) cut(p);
    while (deliver_one()) {
    }
    const uint64_t emits = rng() % 3;  // 0: checkpoint with groups still to emit
    for (size_t s = 0; s < sas.size(); ++s) {
      if (emits == 2 || (emits == 1 && rng() % 2 == 0)) emit(s);
    }
    if (!o.interrupt) return;
    checkpoint_all();
    if (crng() % 3 != 0 && o.restore) restore_all();
  };

  std::string reason;
  size_t remaining = events.size();
  const int feed_pct = 40 + static_cast<int>(rng() % 50);
  while (remaining > 0) {
    now += 1000;
    const int r = static_cast<int>(rng() % 100);
    if (r < feed_pct) {
      size_t p = rng() % queues.size();
      while (queues[p].empty()) p = (p + 1) % queues.size();
      const size_t i = queues[p].front();
      queues[p].pop_front();
      --remaining;
      if (o.forget && rng() % 10 == 0) {
        pas[p]->forget(events[i].image);
        res.outcomes.push_back(std::to_string(i) + " forgotten");
        continue;
      }
      decoded_record rec;
      rec.op = events[i].op;
      rec.image = events[i].image;
      rec.before = events[i].before;
      const auto outcome = pas[p]->add(rec, now, reason);
      std::string line = std::to_string(i) + " " + std::to_string(static_cast<int>(outcome));
      if (outcome == aggregate_outcome::dead_letter) line += " " + reason;
      res.outcomes.push_back(std::move(line));
    } else if (r < feed_pct + (100 - feed_pct) / 3) {
      cut(static_cast<int>(rng() % static_cast<uint64_t>(partitions)));
    } else if (r < 94) {
      deliver_one();
    } else if (r < 97) {
      emit(rng() % sas.size());
    } else {
      barrier();
      if (testing::Test::HasFatalFailure()) return res;
    }
  }
  barrier();
  for (int p = 0; p < partitions; ++p) cut(p);
  while (deliver_one()) {
  }
  for (auto& s : sas) {
    std::vector<row> rows;
    while (s->emit(rows, now, budget())) {
    }
    while (s->finish(rows, budget())) {
    }
    std::sort(rows.begin(), rows.end());
    res.emits.push_back(std::move(rows));
    res.dropped_after_close += s->dropped_after_close();
    EXPECT_EQ(s->open_groups(), 0u);
    EXPECT_EQ(s->backing_error(), "");
  }
  for (auto& p : pas) EXPECT_EQ(p->backing_error(), "");
  res.gets = reader.gets;
  res.scans = reader.scans;
  return res;
}

struct totals {
  int runs = 0;
  int barriers = 0;
  int restores = 0;
  int64_t ops = 0;
  int64_t gets = 0;
  int64_t scans = 0;
  int64_t rows = 0;
  int64_t dropped_after_close = 0;
  int64_t unfinished_emits = 0;  ///< chunked runs: emit() calls that left closing rows due
};

/// Every row of a run, sorted (a chunked run spreads a close over several emit() calls).
std::vector<row> all_rows(const run_result& r) {
  std::vector<row> out;
  for (const auto& e : r.emits) out.insert(out.end(), e.begin(), e.end());
  std::sort(out.begin(), out.end());
  return out;
}

/// One stream, run uninterrupted and interrupted; both must emit and decide exactly the same.
void check_restart(const pipeline_config& cfg, const stream_options& so, const run_options& ro,
                   uint64_t seed, totals& t) {
  const aggregation_plan plan = plan_of(cfg);
  ASSERT_FALSE(plan.aggs.empty());
  std::mt19937_64 rng(seed);
  const auto events = random_stream(rng, so);
  std::ostringstream ctx;
  ctx << "seed " << seed << " kind " << kind_name(plan.window.kind) << " emit "
      << (plan.window.emit == emit_mode::on_close ? "on_close" : "on_update") << " late "
      << static_cast<int>(plan.window.late) << " partitions " << so.partitions << " shards "
      << plan.shard_count << " idle " << plan.window.idle_timeout_us
      << (plan.changelog ? " changelog" : "");
  run_options plain = ro;
  plain.interrupt = false;
  run_options cut = ro;
  cut.interrupt = true;
  run_options backed = cut;
  backed.backed = true;
  backed.restore = seed % 2 == 0;  // half the runs never rebuild their objects: only evict
  const run_result a = run(plan, events, so.partitions, seed * 31 + 7, plain);
  const run_result b = run(plan, events, so.partitions, seed * 31 + 7, cut);
  ASSERT_FALSE(testing::Test::HasFatalFailure()) << ctx.str();
  const run_result c = run(plan, events, so.partitions, seed * 31 + 7, backed);
  ASSERT_FALSE(testing::Test::HasFatalFailure()) << ctx.str() << " (backed)";
  // Bounded closes (a few rows per emit call), interrupted and backed: the same rows overall.
  run_options chunked = cut;
  chunked.chunk = 3;
  run_options chunked_backed = backed;
  chunked_backed.chunk = 3;
  const run_result d = run(plan, events, so.partitions, seed * 31 + 7, chunked);
  ASSERT_FALSE(testing::Test::HasFatalFailure()) << ctx.str() << " (chunked)";
  const run_result e = run(plan, events, so.partitions, seed * 31 + 7, chunked_backed);
  ASSERT_FALSE(testing::Test::HasFatalFailure()) << ctx.str() << " (chunked, backed)";
  const std::vector<row> want_rows = all_rows(a);
  for (const run_result* r : {&d, &e}) {
    const std::string variant = r == &d ? " (chunked)" : " (chunked, backed)";
    EXPECT_EQ(r->outcomes, a.outcomes) << ctx.str() << variant;
    EXPECT_EQ(r->dropped_after_close, a.dropped_after_close) << ctx.str() << variant;
    const std::vector<row> got_rows = all_rows(*r);
    if (got_rows != want_rows) {
      std::string got;
      std::string want;
      for (const row& x : got_rows) got += "\n  " + show(x);
      for (const row& x : want_rows) want += "\n  " + show(x);
      ADD_FAILURE() << ctx.str() << variant << ": rows differ after " << r->restores
                    << " restores\n got:" << got << "\nwant:" << want;
      return;
    }
  }
  for (const run_result* r : {&b, &c}) {
    const std::string variant = r == &b ? " (restored)" : " (backed)";
    EXPECT_EQ(r->outcomes, a.outcomes) << ctx.str() << variant;
    EXPECT_EQ(r->dropped_after_close, a.dropped_after_close) << ctx.str() << variant;
    ASSERT_EQ(r->emits.size(), a.emits.size()) << ctx.str() << variant;
    for (size_t i = 0; i < a.emits.size(); ++i) {
      if (r->emits[i] == a.emits[i]) continue;
      std::string got;
      std::string want;
      for (const row& x : r->emits[i]) got += "\n  " + show(x);
      for (const row& x : a.emits[i]) want += "\n  " + show(x);
      ADD_FAILURE() << ctx.str() << variant << ": emit call " << i << " of " << a.emits.size()
                    << " differs after " << r->restores << " restores\n got:" << got
                    << "\nwant:" << want;
      return;
    }
  }
  ++t.runs;
  t.barriers += b.barriers;
  t.restores += b.restores;
  t.ops += b.ops;
  t.gets += c.gets;
  t.scans += c.scans;
  t.dropped_after_close += a.dropped_after_close;
  t.unfinished_emits += d.unfinished_emits + e.unfinished_emits;
  for (const auto& x : a.emits) t.rows += static_cast<int64_t>(x.size());
}

constexpr int partition_counts[] = {1, 2, 3, 5};
constexpr int shard_counts[] = {1, 2, 3};

TEST(WindowingCheckpoint, RestoredAppendRunsEmitExactlyWhatUninterruptedRunsEmit) {
  totals t;
  constexpr int seeds = 10;
  for (window_kind kind :
       {window_kind::tumbling, window_kind::hopping, window_kind::session, window_kind::global}) {
    for (emit_mode emit : {emit_mode::on_close, emit_mode::on_update}) {
      for (late_policy late : {late_policy::drop, late_policy::dead_letter, late_policy::update}) {
        for (int s = 0; s < seeds; ++s) {
          const auto seed =
              static_cast<uint64_t>(900000 + s * 1000 + static_cast<int>(kind) * 100 +
                                    static_cast<int>(emit) * 10 + static_cast<int>(late));
          std::mt19937_64 rng(seed ^ 0xc0ffeeULL);
          pipeline_config cfg = base_config();
          configure_window(cfg, kind, rng, /*sometimes_idle=*/true);
          cfg.window.emit = emit;
          cfg.window.late = late;
          cfg.aggregation.shards = shard_counts[rng() % 3];
          all_aggregates(cfg);
          if (s == 3) cfg.aggregation.having = "n >= 2";
          stream_options so;
          so.partitions = partition_counts[rng() % 4];
          so.events = 150 + static_cast<int>(rng() % 200);
          so.quantum_us = (s % 2) ? 500'000 : 1;
          check_restart(cfg, so, run_options{}, seed, t);
          if (HasFailure()) return;
        }
      }
    }
  }
  EXPECT_EQ(t.runs, 4 * 2 * 3 * seeds);
  EXPECT_GT(t.restores, 4 * t.runs);  // several restores per run
  EXPECT_GT(t.rows, 2000);
  EXPECT_GT(t.dropped_after_close, 0);  // idle partitions did wake up behind closed windows
  EXPECT_GT(t.gets, 1000) << "evicted groups read back";
  EXPECT_GT(t.scans, 1000) << "closing windows scanned";
  EXPECT_GT(t.unfinished_emits, 500) << "windows closed over several emit calls";
  std::cout << "backed runs: " << t.gets << " gets, " << t.scans
            << " scans; chunked runs: " << t.unfinished_emits
            << " emit calls left closing rows due\n";
}

TEST(WindowingCheckpoint, RestoredChangelogRunsEmitExactlyWhatUninterruptedRunsEmit) {
  totals t;
  constexpr int seeds = 8;
  for (window_kind kind : {window_kind::tumbling, window_kind::hopping, window_kind::global}) {
    for (emit_mode emit : {emit_mode::on_close, emit_mode::on_update}) {
      for (late_policy late : {late_policy::drop, late_policy::dead_letter, late_policy::update}) {
        for (int s = 0; s < seeds; ++s) {
          const auto seed =
              static_cast<uint64_t>(700000 + s * 1000 + static_cast<int>(kind) * 100 +
                                    static_cast<int>(emit) * 10 + static_cast<int>(late));
          std::mt19937_64 rng(seed);
          pipeline_config cfg = base_config();
          configure_window(cfg, kind, rng, /*sometimes_idle=*/true);
          cfg.window.emit = emit;
          cfg.window.late = late;
          cfg.window.processing_time = s % 4 == 3;
          if (cfg.window.processing_time) cfg.window.time_field.clear();
          cfg.aggregation.mode = "changelog";
          cfg.aggregation.shards = shard_counts[rng() % 3];
          retractable_aggregates(cfg);
          stream_options so;
          so.changelog = true;
          so.partitions = partition_counts[rng() % 4];
          so.keys = 10 + static_cast<int>(rng() % 40);
          so.events = 150 + static_cast<int>(rng() % 200);
          so.quantum_us = (s % 2) ? 500'000 : 1;
          run_options ro;
          ro.forget = true;
          check_restart(cfg, so, ro, seed, t);
          if (HasFailure()) return;
        }
      }
    }
  }
  EXPECT_EQ(t.runs, 3 * 2 * 3 * seeds);
  EXPECT_GT(t.restores, 4 * t.runs);
  EXPECT_GT(t.rows, 1000);
  EXPECT_GT(t.gets, 1000) << "evicted keys and groups read back";
  EXPECT_GT(t.unfinished_emits, 200) << "windows closed over several emit calls";
  std::cout << "backed runs: " << t.gets << " gets, " << t.scans
            << " scans; chunked runs: " << t.unfinished_emits
            << " emit calls left closing rows due\n";
}

// ---- incremental writes -----------------------------------------------------------------------

struct pipeline {
  aggregation_plan plan;
  partition_aggregator pa;
  shard_aggregator sa;
  std::vector<partial_batch> batches;
  std::string reason;
  std::vector<row> rows;
  explicit pipeline(const aggregation_plan& p) : plan(p), pa(p, 0), sa(p, 0, {0}) {}

  aggregate_outcome feed(cdc_op op, row image) {
    decoded_record rec;
    rec.op = op;
    rec.image = std::move(image);
    return pa.add(rec, 0, reason);
  }
  void round(int64_t now = 0) {
    pa.take_partials(batches, now);
    for (auto& b : batches) sa.merge(std::move(b));
    sa.emit(rows, now);
  }
  std::vector<state_op> checkpoint_partition() {
    std::vector<state_op> ops;
    pa.checkpoint("p/", ops);
    return ops;
  }
  std::vector<state_op> checkpoint_shard() {
    std::vector<state_op> ops;
    sa.checkpoint("s/", ops);
    return ops;
  }
};

row booking(int64_t id, const std::string& grp, int64_t t, double amount = 1.0) {
  return row{id, timestamp{t}, grp, int64_t{0}, amount, int64_t{1}, std::string("Completed")};
}

size_t puts(const std::vector<state_op>& ops) {
  return static_cast<size_t>(std::count_if(
      ops.begin(), ops.end(), [](const state_op& op) { return op.value.has_value(); }));
}

TEST(WindowingCheckpoint, SecondCheckpointWritesOnlyTheTouchedGroup) {
  pipeline_config cfg = base_config();
  cfg.window.kind = window_kind::global;
  cfg.window.emit = emit_mode::on_update;
  cfg.aggregation.group_by = {"id"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "total", "sum", "amount");
  pipeline pl(plan_of(cfg));
  for (int64_t id = 0; id < 1000; ++id) pl.feed(cdc_op::create, booking(id, "a", id * sec));
  pl.round();
  EXPECT_EQ(pl.rows.size(), 1000u);
  EXPECT_EQ(pl.checkpoint_partition().size(), 1u);  // append mode: the meta key only
  EXPECT_EQ(puts(pl.checkpoint_shard()), 1001u);    // every group + meta
  pl.feed(cdc_op::create, booking(7, "a", 2000 * sec));
  pl.round();
  EXPECT_EQ(pl.checkpoint_partition().size(), 1u);
  const auto ops = pl.checkpoint_shard();
  EXPECT_EQ(ops.size(), 2u);  // group 7 + meta
  EXPECT_EQ(puts(ops), 2u);
  EXPECT_EQ(pl.checkpoint_shard().size(), 1u);
}

TEST(WindowingCheckpoint, ChangelogCheckpointWritesOnlyTheUpdatedKey) {
  pipeline_config cfg = base_config();
  cfg.window.kind = window_kind::global;
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"grp"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  pipeline pl(plan_of(cfg));
  for (int64_t id = 0; id < 1000; ++id) pl.feed(cdc_op::create, booking(id, "a", id * sec));
  pl.round();
  EXPECT_EQ(puts(pl.checkpoint_partition()), 1001u);  // every primary key + meta
  EXPECT_EQ(puts(pl.checkpoint_shard()), 2u);         // group "a" + meta
  pl.feed(cdc_op::update, booking(7, "b", 7 * sec));  // moves from group a to b
  pl.feed(cdc_op::del, booking(8, "a", 8 * sec));
  pl.round();
  const auto pops = pl.checkpoint_partition();
  EXPECT_EQ(pops.size(), 3u);  // key 7 rewritten, key 8 deleted, meta
  EXPECT_EQ(puts(pops), 2u);
  EXPECT_EQ(puts(pl.checkpoint_shard()), 3u);  // groups a, b + meta
  // A key created and deleted between two checkpoints never reaches the key space.
  pl.feed(cdc_op::create, booking(5000, "a", 9 * sec));
  pl.feed(cdc_op::del, booking(5000, "a", 9 * sec));
  pl.round();
  EXPECT_EQ(pl.checkpoint_partition().size(), 1u);
}

TEST(WindowingCheckpoint, ClosedWindowsAreDeletedAndShortLivedGroupsNeverWritten) {
  pipeline_config cfg = base_config();
  cfg.aggregation.group_by = {"grp"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  pipeline pl(plan_of(cfg));
  key_space ks;
  for (const char* g : {"a", "b", "c"}) pl.feed(cdc_op::create, booking(1, g, 1 * sec));
  pl.round();
  apply_ops(ks, pl.checkpoint_shard());
  EXPECT_EQ(scan(ks, "s/").size(), 4u);
  // Window [10s, 20s) opens and closes between two checkpoints; [0, 10s) closes too.
  pl.feed(cdc_op::create, booking(2, "d", 12 * sec));
  pl.feed(cdc_op::create, booking(3, "e", 25 * sec));
  pl.round();
  EXPECT_EQ(pl.rows.size(), 4u);
  const auto ops = pl.checkpoint_shard();
  EXPECT_EQ(ops.size(), 5u);  // 3 deletes, group e, meta
  EXPECT_EQ(puts(ops), 2u);
  apply_ops(ks, ops);
  EXPECT_EQ(scan(ks, "s/").size(), 2u);
}

// ---- restore edge cases -----------------------------------------------------------------------

/// A checkpointed run with changelog state, windows kept closed and dirty groups.
key_space sample_state(const aggregation_plan& plan) {
  pipeline pl(plan);
  key_space ks;
  for (int64_t id = 0; id < 20; ++id) {
    pl.feed(cdc_op::create,
            booking(id, id % 2 ? "a" : "b", id * sec, 0.5 * static_cast<double>(id)));
  }
  pl.round();
  pl.feed(cdc_op::update, booking(3, "c", 31 * sec));
  pl.feed(cdc_op::update, booking(4, "c", 2 * sec));  // late: a correction
  pl.pa.take_partials(pl.batches, 0);
  for (auto& b : pl.batches) pl.sa.merge(std::move(b));  // not emitted: dirty groups
  apply_ops(ks, pl.checkpoint_partition());
  apply_ops(ks, pl.checkpoint_shard());
  return ks;
}

aggregation_plan sample_plan() {
  pipeline_config cfg = base_config();
  cfg.window.emit = emit_mode::on_update;
  cfg.window.late = late_policy::update;
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"grp"};
  cfg.aggregation.shards = 1;
  retractable_aggregates(cfg);
  return plan_of(cfg);
}

/// Restores `entries` under "p/" or "s/" into fresh objects; true when it was accepted.
bool restore_into_fresh(const aggregation_plan& plan, const key_space& ks, std::string* error) {
  partition_aggregator pa(plan, 0);
  shard_aggregator sa(plan, 0, {0});
  const bool ok =
      pa.restore("p/", scan(ks, "p/"), error) && sa.restore("s/", scan(ks, "s/"), error);
  if (!ok) {
    EXPECT_FALSE(error->empty());
    EXPECT_EQ(sa.open_groups(), 0u);  // left fresh
  }
  return ok;
}

TEST(WindowingCheckpoint, MalformedStateFailsRestoreWithAnError) {
  const aggregation_plan plan = sample_plan();
  const key_space good = sample_state(plan);
  std::string error;
  ASSERT_TRUE(restore_into_fresh(plan, good, &error)) << error;
  ASSERT_GT(good.size(), 8u);
  int cases = 0;
  for (const auto& [key, val] : good) {
    for (size_t len = 0; len < val.size(); ++len) {  // every truncation of every value
      key_space bad = good;
      bad[key] = val.substr(0, len);
      error.clear();
      EXPECT_FALSE(restore_into_fresh(plan, bad, &error)) << key << " cut at " << len;
      ++cases;
    }
    key_space bad = good;
    bad[key] = val + "x";  // trailing garbage
    EXPECT_FALSE(restore_into_fresh(plan, bad, &error)) << key;
    bad[key] = val;
    bad[key][0] = static_cast<char>(99);  // unknown version
    EXPECT_FALSE(restore_into_fresh(plan, bad, &error)) << key;
    for (size_t len = 2; len < key.size(); ++len) {  // every truncation under the prefix
      key_space cut = good;
      cut.erase(key);
      cut[key.substr(0, len)] = val;
      EXPECT_FALSE(restore_into_fresh(plan, cut, &error)) << key << " key cut at " << len;
      ++cases;
    }
  }
  EXPECT_GT(cases, 200);
  // Random byte flips: accepted or rejected, never a crash.
  std::mt19937_64 rng(4242);
  for (int i = 0; i < 2000; ++i) {
    key_space bad = good;
    auto it = std::next(bad.begin(), static_cast<std::ptrdiff_t>(rng() % bad.size()));
    if (it->second.empty()) continue;
    it->second[rng() % it->second.size()] ^= static_cast<char>(1 + rng() % 255);
    (void)restore_into_fresh(plan, bad, &error);
  }
  // Unknown keys and missing meta keys.
  key_space extra = good;
  extra["s/zzz"] = "1";
  EXPECT_FALSE(restore_into_fresh(plan, extra, &error));
  key_space no_meta = good;
  no_meta.erase("s/m");
  EXPECT_FALSE(restore_into_fresh(plan, no_meta, &error));
  EXPECT_NE(error.find("meta"), std::string::npos) << error;
}

TEST(WindowingCheckpoint, RestoreRejectsStateOfAnotherShardOrPartition) {
  const aggregation_plan plan = sample_plan();
  const key_space ks = sample_state(plan);
  std::string error;
  partition_aggregator pa(plan, 1);
  EXPECT_FALSE(pa.restore("p/", scan(ks, "p/"), &error));
  EXPECT_NE(error.find("partition 0"), std::string::npos) << error;
  shard_aggregator sa(plan, 2, {0});
  EXPECT_FALSE(sa.restore("s/", scan(ks, "s/"), &error));
  EXPECT_NE(error.find("shard 0"), std::string::npos) << error;
  // Nothing stored: a fresh start.
  partition_aggregator fresh(plan, 3);
  EXPECT_TRUE(fresh.restore("p/", {}, &error));
}

TEST(WindowingCheckpoint, RestoredGroupsStillEmitTheirPendingRows) {
  const aggregation_plan plan = sample_plan();
  const key_space ks = sample_state(plan);
  // The same run, uninterrupted, then emitted.
  pipeline a(plan);
  for (int64_t id = 0; id < 20; ++id) {
    a.feed(cdc_op::create,
           booking(id, id % 2 ? "a" : "b", id * sec, 0.5 * static_cast<double>(id)));
  }
  a.round();
  a.feed(cdc_op::update, booking(3, "c", 31 * sec));
  a.feed(cdc_op::update, booking(4, "c", 2 * sec));
  a.rows.clear();
  a.round();
  ASSERT_FALSE(a.rows.empty());
  pipeline b(plan);
  std::string error;
  ASSERT_TRUE(b.pa.restore("p/", scan(ks, "p/"), &error)) << error;
  ASSERT_TRUE(b.sa.restore("s/", scan(ks, "s/"), &error)) << error;
  b.round();
  std::sort(a.rows.begin(), a.rows.end());
  std::sort(b.rows.begin(), b.rows.end());
  EXPECT_EQ(b.rows, a.rows);
}

TEST(WindowingCheckpoint, RestoreIntoAShardWithANewPartitionStartsItFresh) {
  pipeline_config cfg = base_config();
  cfg.aggregation.group_by = {"grp"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  const aggregation_plan plan = plan_of(cfg);
  key_space ks;
  {
    pipeline pl(plan);
    pl.feed(cdc_op::create, booking(1, "a", 1 * sec));
    pl.feed(cdc_op::create, booking(2, "a", 2 * sec));
    pl.feed(cdc_op::create, booking(3, "a", 8 * sec));
    pl.round();
    EXPECT_TRUE(pl.rows.empty());  // watermark 8s
    apply_ops(ks, pl.checkpoint_partition());
    apply_ops(ks, pl.checkpoint_shard());
  }
  std::string error;
  partition_aggregator p0(plan, 0);
  partition_aggregator p1(plan, 1);
  ASSERT_TRUE(p0.restore("p/", scan(ks, "p/"), &error)) << error;
  ASSERT_TRUE(p1.restore("q/", scan(ks, "q/"), &error)) << error;  // nothing stored
  shard_aggregator sa(plan, 0, {0, 1});
  ASSERT_TRUE(sa.restore("s/", scan(ks, "s/"), &error)) << error;
  EXPECT_EQ(sa.open_groups(), 1u);
  EXPECT_EQ(sa.pipeline_watermark(0), INT64_MIN);  // partition 1 holds it back
  std::vector<partial_batch> batches;
  std::vector<row> rows;
  std::string reason;
  decoded_record rec;
  rec.image = booking(4, "a", 31 * sec);
  p0.add(rec, 0, reason);
  p0.take_partials(batches, 0);
  for (auto& b : batches) sa.merge(std::move(b));
  sa.emit(rows, 0);
  EXPECT_TRUE(rows.empty());
  rec.image = booking(5, "b", 25 * sec);
  p1.add(rec, 0, reason);
  p1.take_partials(batches, 0);
  for (auto& b : batches) sa.merge(std::move(b));
  sa.emit(rows, 0);  // pipeline watermark 25s: [0, 10s) closes
  const std::string a = "a";
  EXPECT_EQ(rows, (std::vector<row>{row{timestamp{0}, timestamp{10 * sec}, a, int64_t{3}}}));
  rows.clear();
  sa.finish(rows);
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows, (std::vector<row>{row{timestamp{20 * sec}, timestamp{30 * sec}, "b", int64_t{1}},
                                    row{timestamp{30 * sec}, timestamp{40 * sec}, a, int64_t{1}}}));
  // A partition of the checkpoint missing from the constructor is dropped.
  shard_aggregator only1(plan, 0, {1});
  ASSERT_TRUE(only1.restore("s/", scan(ks, "s/"), &error)) << error;
  EXPECT_EQ(only1.pipeline_watermark(0), INT64_MIN);
}

// ---- memory bounded by what an epoch touched -------------------------------------------------

/// VmRSS or VmHWM of this process in MiB.
double proc_mib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field))
      return std::strtod(line.c_str() + std::strlen(field) + 1, nullptr) / 1024.0;
  }
  return 0;
}

struct many_keys_stats {
  double feed_s = 0;
  double close_s = 0;
  size_t peak_resident = 0;
  size_t close_ops = 0;  ///< writes of the checkpoint after the window closed
};

/// `n` distinct primary keys (= group keys) in one window [0, 10s), changelog mode, fed in
/// epochs of `epoch` records with a checkpoint (applied by `apply`) after each: memory holds
/// one epoch's keys at most; then updates of a few keys, and the window closes with all `n`.
many_keys_stats many_keys(int n, int epoch, const state_reader& reader,
                          const std::function<void(const std::vector<state_op>&)>& apply) {
  pipeline_config cfg = base_config();
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"id"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "total", "sum", "qty");
  const aggregation_plan plan = plan_of(cfg);
  partition_aggregator pa(plan, 0);
  shard_aggregator sa(plan, 0, {0});
  pa.set_backing(&reader, "p/");
  sa.set_backing(&reader, "s/");
  std::vector<partial_batch> batches;
  std::vector<row> rows;
  std::string reason;
  many_keys_stats st;
  auto checkpoint = [&]() {
    pa.take_partials(batches, 0);
    for (auto& b : batches) sa.merge(std::move(b));
    sa.emit(rows, 0);
    st.peak_resident = std::max(st.peak_resident, pa.resident_entries() + sa.resident_entries());
    std::vector<state_op> ops;
    pa.checkpoint("p/", ops);
    sa.checkpoint("s/", ops);
    apply(ops);
    EXPECT_EQ(pa.resident_entries(), 0u);
    EXPECT_EQ(sa.resident_entries(), 0u);
  };
  auto feed = [&](cdc_op op, int64_t id, int64_t t, int64_t qty) {
    decoded_record rec;
    rec.op = op;
    rec.image =
        row{id, timestamp{t}, std::string("a"), int64_t{0}, 1.0, qty, std::string("Completed")};
    EXPECT_EQ(pa.add(rec, 0, reason), aggregate_outcome::contributed);
  };
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    feed(cdc_op::create, i, (i * 7919) % (10 * sec), i % 7);
    if ((i + 1) % epoch == 0) checkpoint();
  }
  checkpoint();
  EXPECT_EQ(sa.open_groups(), static_cast<size_t>(n));
  // Updates of evicted keys: read back, retracted, re-added (and moved by 1 in qty).
  for (int64_t i = 0; i < n; i += 1000) feed(cdc_op::update, i, (i * 7919) % (10 * sec), i % 7 + 1);
  checkpoint();
  const auto t1 = std::chrono::steady_clock::now();
  feed(cdc_op::create, n, 25 * sec, 0);  // watermark 25s: [0, 10s) closes
  pa.take_partials(batches, 0);
  for (auto& b : batches) sa.merge(std::move(b));
  EXPECT_TRUE(rows.empty());
  sa.emit(rows, 0);
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(rows.size(), static_cast<size_t>(n));
  int64_t count = 0;
  int64_t total = 0;
  for (const row& r : rows) {
    count += std::get<int64_t>(r[3]);
    total += std::get<int64_t>(r[4]);
  }
  int64_t want = 0;
  for (int64_t i = 0; i < n; ++i) want += i % 7 + (i % 1000 == 0 ? 1 : 0);
  EXPECT_EQ(count, n);
  EXPECT_EQ(total, want);
  std::vector<state_op> ops;
  sa.checkpoint("s/", ops);  // deletes every group of the closed window
  st.close_ops = ops.size();
  apply(ops);
  EXPECT_EQ(sa.open_groups(), 1u);
  EXPECT_EQ(pa.backing_error(), "");
  EXPECT_EQ(sa.backing_error(), "");
  st.feed_s = std::chrono::duration<double>(t1 - t0).count();
  st.close_s = std::chrono::duration<double>(t2 - t1).count();
  return st;
}

TEST(WindowingCheckpoint, ManyKeysLiveInTheBackingStoreNotInMemory) {
  key_space ks;
  const map_reader reader(ks);
  const auto st = many_keys(200'000, 50'000, reader, [&](const auto& ops) { apply_ops(ks, ops); });
  EXPECT_LE(st.peak_resident, 2u * 50'000u + 10u);  // one epoch: its keys and their groups
  size_t groups = 0;
  for (const auto& [k, v] : ks) groups += k.starts_with("s/w") ? 1 : 0;
  EXPECT_EQ(groups, 1u);  // the closed window's groups were deleted; the open one remains
  // ... by one range delete (beside the new group and the meta key), not one delete per group.
  EXPECT_EQ(st.close_ops, 3u);
  std::cout << "200k keys: feed " << st.feed_s << " s, close " << st.close_s << " s\n";
}

/// A window of `n` groups, most of them only in the store and some changed since (memory copy
/// newer), closed `max_rows` rows at a time with a checkpoint after every call and a restore
/// into a fresh shard after every third (into an unbacked one once `switch_to_memory` calls in,
/// as when a run changes state_backend). Every group is emitted exactly once, with its newest
/// value, no call emits more than `max_rows`, and the window's groups leave the store.
void close_in_steps(int n, size_t max_rows, int switch_to_memory) {
  pipeline_config cfg = base_config();
  cfg.aggregation.group_by = {"id"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "total", "sum", "qty");
  const aggregation_plan plan = plan_of(cfg);
  key_space ks;
  const map_reader reader(ks);
  partition_aggregator pa(plan, 0);
  auto sa = std::make_unique<shard_aggregator>(plan, 0, std::vector<int32_t>{0});
  bool backed = true;
  sa->set_backing(&reader, "s/");
  std::vector<partial_batch> batches;
  std::vector<row> rows;
  std::string reason;
  auto checkpoint = [&]() {
    std::vector<state_op> ops;
    sa->checkpoint("s/", ops);
    apply_ops(ks, ops);
  };
  auto feed = [&](int64_t id, int64_t t, int64_t qty) {
    decoded_record rec;
    rec.op = cdc_op::create;
    rec.image =
        row{id, timestamp{t}, std::string("a"), int64_t{0}, 1.0, qty, std::string("Completed")};
    EXPECT_EQ(pa.add(rec, 0, reason), aggregate_outcome::contributed);
  };
  auto deliver = [&]() {
    pa.take_partials(batches, 0);
    for (auto& b : batches) sa->merge(std::move(b));
  };
  for (int64_t i = 0; i < n; ++i) {
    feed(i, (i * 7919) % (10 * sec), 1);
    if ((i + 1) % 5000 == 0) {
      deliver();
      checkpoint();
    }
  }
  for (int64_t i = 0; i < n; i += 7) feed(i, (i * 7919) % (10 * sec), 10);  // newer in memory
  feed(n, 25 * sec, 1);  // watermark 25s: [0, 10s) closes
  deliver();
  ASSERT_GT(sa->resident_entries(), 0u);
  std::vector<int> seen(static_cast<size_t>(n), 0);
  int calls = 0;
  bool more = true;
  while (more) {
    rows.clear();
    more = sa->emit(rows, 0, max_rows);
    ++calls;
    EXPECT_LE(rows.size(), max_rows);
    for (const row& r : rows) {
      const int64_t id = std::get<int64_t>(r[2]);
      ASSERT_TRUE(id >= 0 && id < n) << show(r);
      ++seen[static_cast<size_t>(id)];
      const bool refed = id % 7 == 0;
      EXPECT_EQ(std::get<int64_t>(r[3]), refed ? 2 : 1) << show(r);
      EXPECT_EQ(std::get<int64_t>(r[4]), refed ? 11 : 1) << show(r);
    }
    checkpoint();
    if (calls % 3 == 0) {
      std::string error;
      sa = std::make_unique<shard_aggregator>(plan, 0, std::vector<int32_t>{0});
      if (calls == switch_to_memory) backed = false;
      if (backed) {
        sa->set_backing(&reader, "s/");
        ASSERT_TRUE(sa->restore(reader, "s/", &error)) << error;
      } else {
        ASSERT_TRUE(sa->restore("s/", scan(ks, "s/"), &error)) << error;
      }
    }
    ASSERT_LT(calls, 10 * n / static_cast<int>(max_rows) + 10);
  }
  EXPECT_GE(calls, n / static_cast<int>(max_rows));
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << "id " << i;
  size_t groups = 0;
  for (const auto& [k, v] : ks) groups += k.starts_with("s/w") ? 1 : 0;
  EXPECT_EQ(groups, 1u);  // only the group of the next window
  EXPECT_EQ(sa->open_groups(), 1u);
  EXPECT_EQ(sa->backing_error(), "");
}

TEST(WindowingCheckpoint, ABigWindowClosesInBoundedStepsAcrossCheckpointsAndRestores) {
  close_in_steps(20'000, 1000, /*switch_to_memory=*/0);
}

TEST(WindowingCheckpoint, ABoundedCloseContinuesAfterARestoreWithoutBackingStore) {
  close_in_steps(20'000, 1000, /*switch_to_memory=*/12);
}

/// The same with 1M keys in a real RocksDB (run with --gtest_also_run_disabled_tests): prints
/// time and RSS. EDDY_MANY_KEYS overrides the key count.
TEST(WindowingCheckpoint, DISABLED_MillionKeysInRocksDb) {
  const char* env = std::getenv("EDDY_MANY_KEYS");
  const int n = env != nullptr ? std::atoi(env) : 1'000'000;
  char tmpl[] = "/tmp/eddy-many-XXXXXX";
  const std::filesystem::path dir = mkdtemp(tmpl);
  {
    store_status status;
    kv_options options;
    options.block_cache_bytes = std::size_t{32} << 20;
    options.write_buffer_bytes = std::size_t{32} << 20;
    std::shared_ptr<kv_store> db = kv_store::open((dir / "db").string(), options, &status);
    ASSERT_TRUE(db) << status.error;
    const kv_state_reader reader(&db);
    double peak_rss = 0;
    const auto st = many_keys(n, 100'000, reader, [&](const auto& ops) {
      ASSERT_TRUE(db->write_batch(ops, false).ok());
      malloc_trim(0);  // what is live, not what the allocator keeps
      peak_rss = std::max(peak_rss, proc_mib("VmRSS:"));
    });
    std::cout << n << " keys (epochs of 100k): feed+checkpoints " << st.feed_s << " s, close "
              << st.close_s << " s, peak resident entries " << st.peak_resident
              << ", max RSS after a checkpoint " << peak_rss << " MiB, VmHWM " << proc_mib("VmHWM:")
              << " MiB, RocksDB " << (db->approximate_memory_bytes() >> 20) << " MiB\n";
  }
  malloc_trim(0);
  std::cout << "RSS after closing the store: " << proc_mib("VmRSS:") << " MiB\n";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace eddy
