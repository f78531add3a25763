// windowing_test.cpp — the windowed-aggregation engine against a brute-force reference.
//
// Property tests feed random, disordered streams to the engine the way the runtime does (one
// partition_aggregator per partition, partials cut at random points, delivered to the shards in
// a random interleaving that keeps each partition's order, emits at random points, finish at the
// end) and compare the final rows with tests/support/reference_aggregation.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/reference_aggregation.hpp"
#include "tests/support/windowing_helpers.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

using namespace eddy::test;  // windowing_helpers.hpp

using reference::ref_event;

// Fields: 0 id, 1 ts, 2 grp, 3 region, 4 amount, 5 qty, 6 status.

void all_aggregates(pipeline_config& cfg) {
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "n_amount", "count", "amount");
  add_agg(cfg, "sum_qty", "sum", "qty");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "avg_amount", "avg", "amount");
  add_agg(cfg, "min_qty", "min", "qty");
  add_agg(cfg, "max_status", "max", "status");
  add_agg(cfg, "distinct_qty", "count_distinct", "qty");
  add_agg(cfg, "approx_id", "approx_count_distinct", "id");
  add_agg(cfg, "p90_amount", "p90", "amount");
  add_agg(cfg, "median_qty", "percentile", "qty", 0.5);
  add_agg(cfg, "first_amount", "first", "amount");
  add_agg(cfg, "last_status", "last", "status");
}

void retractable_aggregates(pipeline_config& cfg) {
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "n_amount", "count", "amount");
  add_agg(cfg, "sum_qty", "sum", "qty");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "avg_amount", "avg", "amount");
  add_agg(cfg, "min_qty", "min", "qty");
  add_agg(cfg, "max_status", "max", "status");
  add_agg(cfg, "distinct_qty", "count_distinct", "qty");
}

// ---- simulation of the runtime ------------------------------------------------------------

struct sim_result {
  std::vector<row> emitted;  ///< every emitted row, in emission order
  int64_t late = 0;
  std::vector<size_t> dead_letters;
  std::map<size_t, std::string> reasons;
  int64_t dropped_after_close = 0;
};

sim_result simulate(const aggregation_plan& plan, const std::vector<ref_event>& events,
                    int partitions, uint64_t seed) {
  std::mt19937_64 rng(seed);
  sim_result res;
  const int shards = plan.shard_count;
  std::vector<std::deque<size_t>> queues(static_cast<size_t>(partitions));
  for (size_t i = 0; i < events.size(); ++i) {
    queues[static_cast<size_t>(events[i].partition)].push_back(i);
  }
  std::vector<int32_t> ids;
  // Half the runs without change tracking (a run without checkpoints): the results must not
  // depend on it.
  const bool track = (seed % 2) == 0;
  std::vector<std::unique_ptr<partition_aggregator>> pas;
  for (int p = 0; p < partitions; ++p) {
    ids.push_back(p);
    pas.push_back(std::make_unique<partition_aggregator>(plan, p));
    pas.back()->track_changes(track);
  }
  std::vector<std::unique_ptr<shard_aggregator>> sas;
  for (int s = 0; s < shards; ++s) {
    sas.push_back(std::make_unique<shard_aggregator>(plan, s, ids));
    sas.back()->track_changes(track);
  }
  std::vector<std::deque<partial_batch>> inflight(static_cast<size_t>(partitions * shards));
  int64_t now = 1000 * sec;
  std::vector<partial_batch> out;
  auto cut = [&](int p) {
    pas[static_cast<size_t>(p)]->take_partials(out, now);
    EXPECT_EQ(out.size(), static_cast<size_t>(shards));
    for (int s = 0; s < shards; ++s) {
      EXPECT_EQ(out[static_cast<size_t>(s)].partition, p);
      inflight[static_cast<size_t>(p * shards + s)].push_back(
          std::move(out[static_cast<size_t>(s)]));
    }
  };
  auto deliver = [&](size_t q) {
    auto& d = inflight[q];
    sas[q % static_cast<size_t>(shards)]->merge(std::move(d.front()));
    d.pop_front();
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
      decoded_record rec;
      rec.op = events[i].op;
      rec.image = events[i].image;
      rec.before = events[i].before;
      switch (pas[p]->add(rec, events[i].processing_time_us, reason)) {
        case aggregate_outcome::contributed:
          break;
        case aggregate_outcome::late:
          ++res.late;
          break;
        case aggregate_outcome::dead_letter:
          res.dead_letters.push_back(i);
          res.reasons[i] = reason;
          break;
      }
    } else if (r < feed_pct + (100 - feed_pct) / 3) {
      cut(static_cast<int>(rng() % static_cast<uint64_t>(partitions)));
    } else if (r < 97) {
      std::vector<size_t> ready;
      for (size_t q = 0; q < inflight.size(); ++q) {
        if (!inflight[q].empty()) ready.push_back(q);
      }
      if (!ready.empty()) deliver(ready[rng() % ready.size()]);
    } else {
      sas[rng() % sas.size()]->emit(res.emitted, now);
    }
  }
  for (int p = 0; p < partitions; ++p) cut(p);
  for (;;) {
    std::vector<size_t> ready;
    for (size_t q = 0; q < inflight.size(); ++q) {
      if (!inflight[q].empty()) ready.push_back(q);
    }
    if (ready.empty()) break;
    deliver(ready[rng() % ready.size()]);
    if (rng() % 8 == 0) sas[rng() % sas.size()]->emit(res.emitted, now);
  }
  for (auto& s : sas) {
    s->emit(res.emitted, now);
    s->finish(res.emitted);
    res.dropped_after_close += s->dropped_after_close();
    EXPECT_EQ(s->open_groups(), 0u);
  }
  std::sort(res.dead_letters.begin(), res.dead_letters.end());
  return res;
}

// ---- comparing results --------------------------------------------------------------------

size_t id_columns(const aggregation_plan& plan) {
  return (plan.window.kind == window_kind::global ? 0 : 2) + plan.group_by.size();
}

row id_of(const aggregation_plan& plan, const row& r) {
  return row(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(id_columns(plan)));
}

/// The rows a consumer ends up with: later rows for a (window, key) replace earlier ones; for
/// sessions, a later row replaces the earlier rows of its key whose windows it overlaps.
std::vector<row> final_view(const aggregation_plan& plan, const std::vector<row>& emitted) {
  const size_t ids = id_columns(plan);
  if (plan.window.kind == window_kind::session) {
    std::vector<row> kept;
    for (const row& r : emitted) {
      const auto s = std::get<timestamp>(r[0]).micros;
      const auto e = std::get<timestamp>(r[1]).micros;
      std::erase_if(kept, [&](const row& k) {
        if (!std::equal(k.begin() + 2, k.begin() + static_cast<std::ptrdiff_t>(ids), r.begin() + 2))
          return false;
        return std::get<timestamp>(k[0]).micros < e && s < std::get<timestamp>(k[1]).micros;
      });
      kept.push_back(r);
    }
    return kept;
  }
  std::map<row, row> last;
  for (const row& r : emitted) last[id_of(plan, r)] = r;
  std::vector<row> out;
  for (auto& [k, r] : last) out.push_back(r);
  return out;
}

bool close_enough(const agg_spec& spec, const value& got, const value& want, std::string& why) {
  if (spec.fn == agg_fn::approx_count_distinct && !is_null(want) && !is_null(got)) {
    const auto t = static_cast<double>(std::get<int64_t>(want));
    const auto g = static_cast<double>(std::get<int64_t>(got));
    if (std::abs(g - t) <= hll_relative_error * t + 1) return true;
    why = "approx " + show(got) + " vs " + show(want);
    return false;
  }
  if (std::holds_alternative<double>(want) && std::holds_alternative<double>(got)) {
    const double a = std::get<double>(got);
    const double b = std::get<double>(want);
    if (std::abs(a - b) <= 1e-9 * std::max({1.0, std::abs(a), std::abs(b)})) return true;
    why = "double " + show(got) + " vs " + show(want);
    return false;
  }
  if (got == want) return true;
  why = show(got) + " vs " + show(want);
  return false;
}

void expect_same_rows(const aggregation_plan& plan, std::vector<row> got, std::vector<row> want,
                      const std::string& context) {
  auto by_id = [&](const row& a, const row& b) { return id_of(plan, a) < id_of(plan, b); };
  std::sort(got.begin(), got.end(), by_id);
  std::sort(want.begin(), want.end(), by_id);
  ASSERT_EQ(got.size(), want.size()) << context;
  const size_t ids = id_columns(plan);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(id_of(plan, got[i]), id_of(plan, want[i]))
        << context << "\n got " << show(got[i]) << "\nwant " << show(want[i]);
    ASSERT_EQ(got[i].size(), want[i].size()) << context;
    for (size_t a = 0; a < plan.aggs.size(); ++a) {
      std::string why;
      EXPECT_TRUE(close_enough(plan.aggs[a], got[i][ids + a], want[i][ids + a], why))
          << context << " " << plan.aggs[a].alias << ": " << why << "\n got " << show(got[i])
          << "\nwant " << show(want[i]);
    }
  }
}

// ---- random streams -----------------------------------------------------------------------

struct run_stats {
  int runs = 0;
  int64_t late = 0;
  int64_t dead = 0;
  int64_t rows = 0;
  int64_t superseded = 0;  ///< emitted rows replaced by later ones (updates, corrections)
};

/// One random stream through the engine and the reference; returns false on a mismatch.
void check_one(const pipeline_config& cfg, const stream_options& so, uint64_t seed,
               run_stats& stats) {
  const aggregation_plan plan = plan_of(cfg);
  ASSERT_FALSE(plan.aggs.empty());
  std::mt19937_64 rng(seed);
  const auto events = random_stream(rng, so);
  const auto want = reference::reference_aggregate(plan, events);
  const auto got = simulate(plan, events, so.partitions, seed * 7919 + 1);
  std::ostringstream ctx;
  ctx << "seed " << seed << " kind " << kind_name(plan.window.kind) << " emit "
      << (plan.window.emit == emit_mode::on_close ? "on_close" : "on_update") << " late "
      << static_cast<int>(plan.window.late) << " partitions " << so.partitions << " shards "
      << plan.shard_count << " ooo " << plan.window.max_out_of_orderness_us << " lateness "
      << plan.window.allowed_lateness_us << (plan.changelog ? " changelog" : "");
  EXPECT_EQ(got.dead_letters, want.dead_letters) << ctx.str();
  EXPECT_EQ(got.late, want.late) << ctx.str();
  EXPECT_EQ(got.dropped_after_close, 0) << ctx.str();
  for (const auto& [i, reason] : got.reasons) {
    const bool null_time = reason == "null event time";
    const bool late = reason.rfind("late: ", 0) == 0;
    EXPECT_TRUE(null_time || late) << reason;
  }
  const bool once = plan.window.emit == emit_mode::on_close &&
                    plan.window.kind != window_kind::global &&
                    plan.window.late != late_policy::update;
  if (once) {
    // on_close: each (window, key) exactly once.
    std::set<row> seen;
    for (const row& r : got.emitted) {
      EXPECT_TRUE(seen.insert(id_of(plan, r)).second) << ctx.str() << " twice: " << show(r);
    }
  }
  std::vector<row> final_rows = final_view(plan, got.emitted);
  if (plan.changelog && !once) {
    // A group that became empty emits nothing in on_update: its last row stays behind.
    std::set<row> live;
    for (const row& r : want.rows) live.insert(id_of(plan, r));
    std::erase_if(final_rows, [&](const row& r) { return !live.contains(id_of(plan, r)); });
  }
  expect_same_rows(plan, final_rows, want.rows, ctx.str());
  ++stats.runs;
  stats.late += want.late;
  stats.dead += static_cast<int64_t>(want.dead_letters.size());
  stats.rows += static_cast<int64_t>(want.rows.size());
  if (plan.window.late == late_policy::update && plan.window.emit == emit_mode::on_close &&
      plan.window.kind != window_kind::global) {
    stats.superseded +=
        static_cast<int64_t>(got.emitted.size() - final_view(plan, got.emitted).size());
  }
}

constexpr int seeds = 30;
constexpr int partition_counts[] = {1, 2, 3, 8, 16};
constexpr int shard_counts[] = {1, 3, 4};

TEST(WindowingProperty, AppendEveryWindowEmitAndLatePolicy) {
  run_stats stats;
  for (window_kind kind :
       {window_kind::tumbling, window_kind::hopping, window_kind::session, window_kind::global}) {
    for (emit_mode emit : {emit_mode::on_close, emit_mode::on_update}) {
      for (late_policy late : {late_policy::drop, late_policy::dead_letter, late_policy::update}) {
        for (int s = 0; s < seeds; ++s) {
          const auto seed =
              static_cast<uint64_t>(s * 1000 + static_cast<int>(kind) * 100 +
                                    static_cast<int>(emit) * 10 + static_cast<int>(late));
          std::mt19937_64 rng(seed ^ 0xabcdefULL);
          pipeline_config cfg = base_config();
          configure_window(cfg, kind, rng);
          cfg.window.emit = emit;
          cfg.window.late = late;
          cfg.aggregation.shards = shard_counts[rng() % 3];
          all_aggregates(cfg);
          stream_options so;
          so.partitions = partition_counts[rng() % 5];
          so.events = 100 + static_cast<int>(rng() % 200);
          so.quantum_us = (s % 2) ? 500'000 : 1;
          check_one(cfg, so, seed, stats);
          if (HasFatalFailure() || HasFailure()) return;
        }
      }
    }
  }
  EXPECT_EQ(stats.runs, 4 * 2 * 3 * seeds);
  EXPECT_GT(stats.late, 0);  // the streams do exercise lateness
  EXPECT_GT(stats.dead, 0);
  EXPECT_GT(stats.rows, 1000);
  EXPECT_GT(stats.superseded, 50);  // late policy update did emit corrected rows
}

TEST(WindowingProperty, ProcessingTimeAndHaving) {
  run_stats stats;
  for (int s = 0; s < seeds; ++s) {
    const auto seed = static_cast<uint64_t>(77000 + s);
    std::mt19937_64 rng(seed);
    pipeline_config cfg = base_config();
    configure_window(cfg, s % 2 ? window_kind::tumbling : window_kind::hopping, rng);
    cfg.window.processing_time = (s % 3) == 0;
    if (cfg.window.processing_time) cfg.window.time_field.clear();
    cfg.aggregation.shards = shard_counts[rng() % 3];
    all_aggregates(cfg);
    cfg.aggregation.having = "n >= 2 and grp != 'b'";
    stream_options so;
    so.partitions = partition_counts[rng() % 5];
    check_one(cfg, so, seed, stats);
    if (HasFailure()) return;
  }
  EXPECT_EQ(stats.runs, seeds);
}

TEST(WindowingProperty, ChangelogRandomStreams) {
  run_stats stats;
  for (window_kind kind : {window_kind::tumbling, window_kind::hopping, window_kind::global}) {
    for (emit_mode emit : {emit_mode::on_close, emit_mode::on_update}) {
      for (late_policy late : {late_policy::drop, late_policy::dead_letter, late_policy::update}) {
        for (int s = 0; s < seeds / 3; ++s) {
          const auto seed =
              static_cast<uint64_t>(500000 + s * 1000 + static_cast<int>(kind) * 100 +
                                    static_cast<int>(emit) * 10 + static_cast<int>(late));
          std::mt19937_64 rng(seed);
          pipeline_config cfg = base_config();
          configure_window(cfg, kind, rng);
          cfg.window.emit = emit;
          cfg.window.late = late;
          cfg.aggregation.mode = "changelog";
          cfg.aggregation.shards = shard_counts[rng() % 3];
          retractable_aggregates(cfg);
          stream_options so;
          so.changelog = true;
          so.partitions = partition_counts[rng() % 5];
          so.keys = 10 + static_cast<int>(rng() % 40);
          so.quantum_us = (s % 2) ? 500'000 : 1;
          check_one(cfg, so, seed, stats);
          if (HasFailure()) return;
        }
      }
    }
  }
  EXPECT_GT(stats.late, 0);
}

TEST(WindowingProperty, LargeGroupsStayWithinSketchBounds) {
  pipeline_config cfg = base_config();
  cfg.window.kind = window_kind::global;
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "p90", "p90", "amount");
  add_agg(cfg, "p30", "percentile", "qty", 0.3);
  add_agg(cfg, "approx", "approx_count_distinct", "id");
  cfg.aggregation.shards = 2;
  const aggregation_plan plan = plan_of(cfg);
  std::mt19937_64 rng(42);
  std::vector<ref_event> events;
  std::vector<double> amounts;
  std::vector<double> qtys;
  for (int i = 0; i < 20000; ++i) {
    ref_event ev;
    ev.partition = static_cast<int32_t>(rng() % 4);
    const double amount = static_cast<double>(rng() % 1000000) / 100.0;
    const auto qty = static_cast<int64_t>(rng() % 5000);
    ev.image = row{int64_t{i}, timestamp{i * sec}, std::string("g"), int64_t{0}, amount,
                   qty,        std::string("s")};
    amounts.push_back(amount);
    qtys.push_back(static_cast<double>(qty));
    events.push_back(std::move(ev));
  }
  const auto got = simulate(plan, events, 4, 9);
  const auto rows = final_view(plan, got.emitted);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], value{int64_t{20000}});
  auto rank_ok = [](std::vector<double> xs, double q, double r) {
    std::sort(xs.begin(), xs.end());
    const auto n = static_cast<double>(xs.size());
    const double lo =
        static_cast<double>(std::lower_bound(xs.begin(), xs.end(), r) - xs.begin()) / n;
    const double hi =
        static_cast<double>(std::upper_bound(xs.begin(), xs.end(), r) - xs.begin()) / n;
    return q >= lo - percentile_rank_error && q <= hi + percentile_rank_error;
  };
  EXPECT_TRUE(rank_ok(amounts, 0.9, std::get<double>(rows[0][1]))) << show(rows[0]);
  EXPECT_TRUE(rank_ok(qtys, 0.3, std::get<double>(rows[0][2]))) << show(rows[0]);
  const auto approx = static_cast<double>(std::get<int64_t>(rows[0][3]));
  EXPECT_LE(std::abs(approx - 20000), hll_relative_error * 20000 + 1) << approx;
}

// ---- changelog, scripted ------------------------------------------------------------------

struct table_run {
  aggregation_plan plan;
  partition_aggregator pa;
  shard_aggregator sa;
  std::vector<partial_batch> batches;
  std::string reason;
  explicit table_run(const aggregation_plan& p) : plan(p), pa(p, 0), sa(p, 0, {0}) {}

  aggregate_outcome feed(cdc_op op, row image, std::optional<row> before = std::nullopt) {
    decoded_record rec;
    rec.op = op;
    rec.image = std::move(image);
    rec.before = std::move(before);
    return pa.add(rec, 0, reason);
  }
  std::vector<row> emit() {
    pa.take_partials(batches, 0);
    for (auto& b : batches) sa.merge(std::move(b));
    std::vector<row> out;
    sa.emit(out, 0);
    std::sort(out.begin(), out.end());
    return out;
  }
};

row booking(int64_t id, const std::string& status, double amount, int64_t t = 0) {
  return row{id, timestamp{t}, std::string("a"), int64_t{0}, amount, int64_t{1}, status};
}

aggregation_plan table_plan() {
  pipeline_config cfg = base_config();
  cfg.window.kind = window_kind::global;
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"status"};
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "total", "sum", "amount");
  return plan_of(cfg);
}

row status_row(const std::string& s, int64_t n, double total) {
  return row{s, n, total};
}

TEST(WindowingChangelog, UpdateMovesBetweenGroupsWithoutBeforeImage) {
  table_run t(table_plan());
  t.feed(cdc_op::read, booking(1, "Incomplete", 10));
  t.feed(cdc_op::create, booking(2, "Incomplete", 20));
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Incomplete", 2, 30)}));
  t.feed(cdc_op::update, booking(1, "Completed", 15));
  // Both groups changed: Completed appears, Incomplete loses booking 1 — never counted twice.
  EXPECT_EQ(t.emit(),
            (std::vector<row>{status_row("Completed", 1, 15), status_row("Incomplete", 1, 20)}));
  t.feed(cdc_op::update, booking(1, "Completed", 17));
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Completed", 1, 17)}));
  // Delete retracts; the emptied group emits nothing.
  t.feed(cdc_op::del, booking(2, "Incomplete", 20));
  EXPECT_EQ(t.emit(), std::vector<row>{});
  std::vector<row> out;
  t.sa.finish(out);
  EXPECT_TRUE(out.empty());
}

TEST(WindowingChangelog, BeforeImagesGiveTheSameTable) {
  table_run t(table_plan());
  t.feed(cdc_op::create, booking(1, "Incomplete", 10));
  t.feed(cdc_op::create, booking(2, "Incomplete", 20));
  t.feed(cdc_op::update, booking(1, "Completed", 15), booking(1, "Incomplete", 10));
  t.feed(cdc_op::update, booking(2, "Completed", 25), booking(2, "Incomplete", 20));
  // Incomplete went back to empty: not emitted.
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Completed", 2, 40)}));
}

TEST(WindowingChangelog, UnknownKeysUseTheMessageImages) {
  table_run t(table_plan());
  t.feed(cdc_op::create, booking(8, "Cancelled", 2));
  t.feed(cdc_op::create, booking(9, "Cancelled", 4));
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Cancelled", 2, 6)}));
  // Booking 7 predates the stream: its update retracts the before-image the message carries.
  t.feed(cdc_op::update, booking(7, "Completed", 1), booking(7, "Cancelled", 1));
  EXPECT_EQ(t.emit(),
            (std::vector<row>{status_row("Cancelled", 1, 5), status_row("Completed", 1, 1)}));
  // A known key retracts exactly what was added (the state), whatever the delete image says.
  t.feed(cdc_op::del, booking(9, "Cancelled", 999));
  // (Cancelled nets to zero rows — booking 8 minus booking 7's before-image — so it is empty.)
  EXPECT_EQ(t.emit(), std::vector<row>{});
  // An unknown key's delete retracts the image it carries.
  t.feed(cdc_op::create, booking(11, "Completed", 3));
  t.feed(cdc_op::del, booking(10, "Completed", 0.5));
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Completed", 1, 3.5)}));
  // A re-read (snapshot) of a known key replaces its row instead of adding a second one.
  t.feed(cdc_op::read, booking(11, "Completed", 5));
  EXPECT_EQ(t.emit(), (std::vector<row>{status_row("Completed", 1, 5.5)}));
}

TEST(WindowingChangelog, UpdateMovesBetweenWindowsAndClosedGroupsStayClosed) {
  pipeline_config cfg = base_config();
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"status"};
  cfg.aggregation.shards = 2;
  add_agg(cfg, "n", "count", "");
  table_run t(plan_of(cfg));
  t.feed(cdc_op::create, booking(1, "Incomplete", 10, 1 * sec));
  t.feed(cdc_op::create, booking(2, "Incomplete", 10, 2 * sec));
  t.feed(cdc_op::update, booking(1, "Completed", 10, 12 * sec));  // moves to [10s, 20s)
  // Window [0, 10s) closes at watermark 12s with booking 2 only.
  EXPECT_EQ(t.emit(), (std::vector<row>{row{timestamp{0}, timestamp{10 * sec},
                                            std::string("Incomplete"), int64_t{1}}}));
  // A delete of booking 2 now is late for its closed window: counted late, nothing re-emitted.
  EXPECT_EQ(t.feed(cdc_op::del, booking(2, "Incomplete", 10, 2 * sec)), aggregate_outcome::late);
  EXPECT_TRUE(t.emit().empty());
  std::vector<row> out;
  t.sa.finish(out);
  EXPECT_EQ(out, (std::vector<row>{row{timestamp{10 * sec}, timestamp{20 * sec},
                                       std::string("Completed"), int64_t{1}}}));
}

// ---- late policies and reasons ------------------------------------------------------------

TEST(WindowingLate, DeadLetterReasonAndNullTime) {
  pipeline_config cfg = base_config();
  cfg.window.late = late_policy::dead_letter;
  add_agg(cfg, "n", "count", "");
  const auto plan = plan_of(cfg);
  partition_aggregator pa(plan, 0);
  std::string reason;
  decoded_record rec;
  rec.image = booking(1, "x", 1, 25 * sec);
  EXPECT_EQ(pa.add(rec, 0, reason), aggregate_outcome::contributed);
  EXPECT_EQ(pa.watermark(), 25 * sec);
  rec.image = booking(2, "x", 1, 3 * sec);
  EXPECT_EQ(pa.add(rec, 0, reason), aggregate_outcome::dead_letter);
  EXPECT_EQ(reason,
            "late: window [1970-01-01T00:00:00Z, 1970-01-01T00:00:10Z) closed at watermark "
            "1970-01-01T00:00:25Z");
  rec.image[1] = value{};
  EXPECT_EQ(pa.add(rec, 0, reason), aggregate_outcome::dead_letter);
  EXPECT_EQ(reason, "null event time");
}

TEST(WindowingLate, UpdatePolicyEmitsCorrectedRow) {
  pipeline_config cfg = base_config();
  cfg.window.late = late_policy::update;
  add_agg(cfg, "n", "count", "");
  cfg.aggregation.shards = 1;
  table_run t(plan_of(cfg));
  t.feed(cdc_op::create, booking(1, "x", 1, 1 * sec));
  t.feed(cdc_op::create, booking(2, "x", 1, 15 * sec));
  EXPECT_EQ(t.emit(), (std::vector<row>{row{timestamp{0}, timestamp{10 * sec}, int64_t{1}}}));
  EXPECT_EQ(t.feed(cdc_op::create, booking(3, "x", 1, 2 * sec)), aggregate_outcome::late);
  EXPECT_EQ(t.emit(), (std::vector<row>{row{timestamp{0}, timestamp{10 * sec}, int64_t{2}}}));
  EXPECT_EQ(t.sa.open_groups(), 1u);
}

// ---- idle partitions ----------------------------------------------------------------------

std::vector<row> idle_run(int64_t idle_timeout_us, std::vector<row>* after_timeout) {
  pipeline_config cfg = base_config();
  cfg.window.idle_timeout_us = idle_timeout_us;
  add_agg(cfg, "n", "count", "");
  cfg.aggregation.shards = 1;
  const auto plan = plan_of(cfg);
  partition_aggregator p0(plan, 0);
  partition_aggregator p1(plan, 1);  // silent
  shard_aggregator sa(plan, 0, {0, 1});
  std::string reason;
  std::vector<partial_batch> batches;
  std::vector<row> out;
  auto feed = [&](int64_t t, int64_t now) {
    decoded_record rec;
    rec.image = booking(1, "x", 1, t);
    p0.add(rec, now, reason);
  };
  auto cut = [&](int64_t now) {
    for (auto* p : {&p0, &p1}) {
      p->take_partials(batches, now);
      for (auto& b : batches) sa.merge(std::move(b));
    }
  };
  feed(1 * sec, 100 * sec);
  feed(12 * sec, 100 * sec);
  cut(100 * sec);
  sa.emit(out, 101 * sec);  // p1 not idle yet: it holds the watermark back
  EXPECT_TRUE(out.empty());
  feed(13 * sec, 105 * sec);  // p0 stays active
  cut(105 * sec);
  sa.emit(out, 106 * sec);  // p1 silent for 6 s
  *after_timeout = out;
  sa.finish(out);
  return out;
}

TEST(WindowingIdle, SilentPartitionIgnoredAfterIdleTimeout) {
  std::vector<row> early;
  const auto all = idle_run(5 * sec, &early);
  EXPECT_EQ(early, (std::vector<row>{row{timestamp{0}, timestamp{10 * sec}, int64_t{1}}}));
  EXPECT_EQ(all.size(), 2u);
}

TEST(WindowingIdle, SilentPartitionHoldsWatermarkWithoutTimeout) {
  std::vector<row> early;
  const auto all = idle_run(0, &early);
  EXPECT_TRUE(early.empty());
  EXPECT_EQ(all.size(), 2u);  // only finish() closes the windows
}

TEST(WindowingIdle, WokenPartitionCannotReopenClosedWindows) {
  pipeline_config cfg = base_config();
  cfg.window.idle_timeout_us = 5 * sec;
  add_agg(cfg, "n", "count", "");
  cfg.aggregation.shards = 1;
  const auto plan = plan_of(cfg);
  partition_aggregator p0(plan, 0);
  partition_aggregator p1(plan, 1);
  shard_aggregator sa(plan, 0, {0, 1});
  std::string reason;
  std::vector<partial_batch> batches;
  std::vector<row> out;
  auto feed = [&](partition_aggregator& p, int64_t t, int64_t now) {
    decoded_record rec;
    rec.image = booking(1, "x", 1, t);
    return p.add(rec, now, reason);
  };
  auto cut = [&](partition_aggregator& p, int64_t now) {
    p.take_partials(batches, now);
    for (auto& b : batches) sa.merge(std::move(b));
  };
  feed(p0, 1 * sec, 100 * sec);
  cut(p0, 100 * sec);
  cut(p1, 100 * sec);  // the shard's first observation: idleness is measured from here
  feed(p0, 22 * sec, 110 * sec);
  cut(p0, 110 * sec);
  cut(p1, 110 * sec);
  sa.emit(out, 110 * sec);  // p1 idle since 100 s: [0, 10) and [10, 20) close
  EXPECT_EQ(out.size(), 1u);
  // p1 wakes up with a row that is on time by its own watermark, for a closed window.
  EXPECT_EQ(feed(p1, 2 * sec, 111 * sec), aggregate_outcome::contributed);
  cut(p1, 111 * sec);
  sa.finish(out);
  EXPECT_EQ(out.size(), 2u);  // [0, 10) is not emitted twice; [20, 30) at finish
  EXPECT_EQ(sa.dropped_after_close(), 1);
}

// In a cluster the partials come from other hosts: idleness must not depend on their clocks.
// Partition 1's host runs an hour behind the shard's: its partition is busy (a record in every
// batch) but slow in event time, so it must keep holding the watermark back; measured against
// the shard's clock its records would look an hour old, i.e. idle, and windows would close.
TEST(WindowingIdle, IdlenessIsMeasuredOnTheShardsClockWhateverTheSendersClocks) {
  pipeline_config cfg = base_config();
  cfg.window.idle_timeout_us = 5 * sec;
  add_agg(cfg, "n", "count", "");
  cfg.aggregation.shards = 1;
  const auto plan = plan_of(cfg);
  const int64_t hour = 3600 * sec;
  partition_aggregator p0(plan, 0);
  partition_aggregator p1(plan, 1);
  shard_aggregator sa(plan, 0, {0, 1});
  std::string reason;
  std::vector<partial_batch> batches;
  std::vector<row> out;
  auto feed = [&](partition_aggregator& p, int64_t t, int64_t sender_now) {
    decoded_record rec;
    rec.image = booking(1, "x", 1, t);
    p.add(rec, sender_now, reason);
  };
  auto cut = [&](partition_aggregator& p, int64_t sender_now, int64_t shard_now) {
    p.take_partials(batches, sender_now);
    for (auto& b : batches) sa.merge(std::move(b), shard_now);
  };
  for (int64_t s : {100, 104, 108}) {  // shard clock, seconds
    feed(p0, (s - 70) * sec, s * sec);  // p0: same clock as the shard, event time ahead
    feed(p1, 2 * sec, s * sec - hour);  // p1: an hour behind, event time stuck at 2 s
    cut(p0, s * sec, s * sec);
    cut(p1, s * sec - hour, s * sec);
  }
  sa.emit(out, 108 * sec);
  EXPECT_TRUE(out.empty()) << "p1 sent a record 0 s ago on its own clock: it is not idle, and "
                              "its watermark (2 s) keeps every window open";
  // Now p1 falls silent: 6 s later on the shard's clock it is idle, whatever its clock says.
  feed(p0, 44 * sec, 114 * sec);
  cut(p0, 114 * sec, 114 * sec);
  sa.emit(out, 114 * sec);
  EXPECT_FALSE(out.empty());
}

TEST(WindowingIdle, PipelineWatermarkIsMinOfPartitions) {
  pipeline_config cfg = base_config();
  add_agg(cfg, "n", "count", "");
  const auto plan = plan_of(cfg);
  shard_aggregator sa(plan, 0, {0, 1});
  EXPECT_EQ(sa.pipeline_watermark(0), INT64_MIN);
  partial_batch b;
  b.partition = 0;
  b.watermark = 50;
  sa.merge(std::move(b));
  EXPECT_EQ(sa.pipeline_watermark(0), INT64_MIN);
  partial_batch c;
  c.partition = 1;
  c.watermark = 30;
  sa.merge(std::move(c));
  EXPECT_EQ(sa.pipeline_watermark(0), 30);
}

// ---- sessions, shards ---------------------------------------------------------------------

TEST(WindowingSession, PartialSessionsFromPartitionsMerge) {
  pipeline_config cfg = base_config();
  cfg.window.kind = window_kind::session;
  cfg.window.gap_us = 5 * sec;
  cfg.window.max_out_of_orderness_us = 100 * sec;
  add_agg(cfg, "n", "count", "");
  cfg.aggregation.shards = 1;
  const auto plan = plan_of(cfg);
  partition_aggregator p0(plan, 0);
  partition_aggregator p1(plan, 1);
  shard_aggregator sa(plan, 0, {0, 1});
  std::string reason;
  auto feed = [&](partition_aggregator& p, int64_t t) {
    decoded_record rec;
    rec.image = booking(1, "x", 1, t);
    EXPECT_EQ(p.add(rec, 0, reason), aggregate_outcome::contributed);
  };
  feed(p0, 0);
  feed(p0, 8 * sec);   // [0,5) and [8,13): separate in p0
  feed(p0, 18 * sec);  // [18,23)
  feed(p1, 4 * sec);   // [4,9) bridges [0,5) and [8,13)
  feed(p1, 13 * sec);  // [13,18) only touches its neighbours (half-open): separate sessions
  std::vector<partial_batch> batches;
  for (auto* p : {&p0, &p1}) {
    p->take_partials(batches, 0);
    for (auto& b : batches) sa.merge(std::move(b));
  }
  EXPECT_EQ(sa.open_groups(), 3u);
  std::vector<row> out;
  sa.finish(out);
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (std::vector<row>{row{timestamp{0}, timestamp{13 * sec}, int64_t{3}},
                                   row{timestamp{13 * sec}, timestamp{18 * sec}, int64_t{1}},
                                   row{timestamp{18 * sec}, timestamp{23 * sec}, int64_t{1}}}));
}

TEST(WindowingShards, ShardOfIsStableAndSpreads) {
  std::vector<int> hits(4);
  for (int i = 0; i < 400; ++i) {
    const row key{std::string("k") + std::to_string(i), int64_t{i}};
    const int s = shard_of(key, 4);
    ASSERT_GE(s, 0);
    ASSERT_LT(s, 4);
    EXPECT_EQ(s, shard_of(key, 4));
    ++hits[static_cast<size_t>(s)];
  }
  for (int h : hits) EXPECT_GT(h, 60);
  EXPECT_EQ(shard_of(row{0.0}, 8), shard_of(row{-0.0}, 8));
  EXPECT_EQ(shard_of(row{std::string("x")}, 1), 0);
}

// ---- plan errors --------------------------------------------------------------------------

std::string plan_error(const pipeline_config& cfg) {
  std::string error;
  auto plan = aggregation_plan::from_config(cfg, &error);
  EXPECT_FALSE(plan.has_value());
  return error;
}

TEST(WindowingPlan, SchemaAndDefaults) {
  pipeline_config cfg = base_config();
  cfg.aggregation.group_by = {"grp", "region"};
  all_aggregates(cfg);
  const auto plan = plan_of(cfg);
  ASSERT_EQ(plan.schema.names.size(), 4u + 13u);
  EXPECT_EQ(plan.schema.names[0], "window_start");
  EXPECT_EQ(plan.schema.types[1], field_type::timestamp);
  EXPECT_EQ(plan.schema.names[2], "grp");
  EXPECT_EQ(plan.schema.types[3], field_type::int64);
  EXPECT_EQ(plan.schema.names[4], "n");
  EXPECT_EQ(plan.schema.types[6], field_type::int64);    // sum of int
  EXPECT_EQ(plan.schema.types[7], field_type::float64);  // sum of double
  EXPECT_EQ(plan.group_by, (std::vector<int>{2, 3}));
  EXPECT_EQ(plan.shard_count, 4);
  EXPECT_DOUBLE_EQ(plan.aggs[9].q, 0.9);

  pipeline_config table = base_config();
  table.window.kind = window_kind::none;
  table.window.time_field.clear();
  table.aggregation.mode = "changelog";
  add_agg(table, "n", "count", "");
  const auto tp = plan_of(table);
  EXPECT_EQ(tp.window.kind, window_kind::global);
  EXPECT_EQ(tp.primary_key, std::vector<int>{0});
  EXPECT_EQ(tp.schema.names, std::vector<std::string>{"n"});
}

TEST(WindowingPlan, ErrorsNameTheKey) {
  auto with = [](auto edit) {
    pipeline_config cfg = base_config();
    add_agg(cfg, "n", "count", "");
    add_agg(cfg, "total", "sum", "amount");
    edit(cfg);
    return plan_error(cfg);
  };
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregates[1].field = "amout"; }),
            "aggregates[1].field: unknown field 'amout'; did you mean 'amount'?");
  EXPECT_EQ(with([](pipeline_config& c) {
              add_agg(c, "p", "p95", "amount");
              c.aggregation.mode = "changelog";
            }),
            "aggregates[2].function: p95 cannot be retracted in changelog mode");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregates[1].function = "median";
            }).rfind("aggregates[1].function: unknown function 'median'", 0),
            0u);
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregates[1].field = "status";
              c.aggregates[1].function = "percentile";
            }),
            "aggregates[1].field: percentile needs a numeric field, 'status' is string");
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregates[1].field = ""; }),
            "aggregates[1].field: required for sum (only count may omit it)");
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregates[1].alias = "n"; }),
            "aggregates[1].alias: 'n' is already an output column");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregates[1].function = "percentile";
              c.aggregates[1].q = 1.5;
            }),
            "aggregates[1].q: must be between 0 and 1 (exclusive)");
  EXPECT_EQ(with([](pipeline_config& c) { c.window.time_field = "qty"; }),
            "window.time_field: 'qty' is int, expected a timestamp field");
  EXPECT_EQ(with([](pipeline_config& c) { c.window.time_field = "tss"; }),
            "window.time_field: unknown field 'tss'; did you mean 'ts'?");
  EXPECT_EQ(with([](pipeline_config& c) { c.window.time_field.clear(); }),
            "window.time_field: required (a declared timestamp field, or time = \"processing\")");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregation.group_by = {"grp", "nope"};
            }),
            "aggregate.group_by[1]: unknown field 'nope'");
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregation.shards = 0; }),
            "aggregate.shards: expected 1..256, got 0");
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregation.shards = 257; }),
            "aggregate.shards: expected 1..256, got 257");
  EXPECT_EQ(with([](pipeline_config& c) { c.aggregation.mode = "upsert"; }),
            "aggregate.mode: expected \"append\" or \"changelog\", got \"upsert\"");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregation.having = "totl > 3";
            }).rfind("aggregate.having: unknown field 'totl'", 0),
            0u);
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregation.mode = "changelog";
              c.fields[0].name = "booking_id";
            }),
            "aggregate.primary_key: required in changelog mode (no field named 'id')");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.aggregation.mode = "changelog";
              c.window.kind = window_kind::session;
              c.window.gap_us = sec;
            }),
            "window.type: session windows cannot be used in changelog mode");
  EXPECT_EQ(with([](pipeline_config& c) {
              c.window.kind = window_kind::hopping;
              c.window.slide_us = 3 * sec;
            }),
            "window.slide: size must be a multiple of slide");
  // A known line is prefixed.
  EXPECT_EQ(with([](pipeline_config& c) {
              c.file_name = "p.toml";
              c.aggregates[1].line = 12;
              c.aggregates[1].field = "zzzzzz";
            }),
            "p.toml:12: aggregates[1].field: unknown field 'zzzzzz'");
}

// ---- event-time range and skew ------------------------------------------------------------

constexpr int64_t i64_max = std::numeric_limits<int64_t>::max();
constexpr int64_t i64_min = std::numeric_limits<int64_t>::min();

/// One partition and one shard of `cfg` (count per window), fed rows at event times.
struct time_run {
  aggregation_plan plan;
  partition_aggregator pa;
  shard_aggregator sa;
  std::string reason;
  int64_t id = 0;
  explicit time_run(const pipeline_config& cfg)
      : plan(plan_of(cfg)), pa(plan, 0), sa(plan, 0, {0}) {}

  aggregate_outcome feed(int64_t t, int64_t now = 0) {
    decoded_record rec;
    rec.image = booking(++id, "x", 1, t);
    reason.clear();
    return pa.add(rec, now, reason);
  }
  /// Every row at the end (finish), sorted.
  std::vector<row> finish() {
    std::vector<partial_batch> batches;
    pa.take_partials(batches, 0);
    for (auto& b : batches) sa.merge(std::move(b));
    std::vector<row> out;
    sa.finish(out);
    std::sort(out.begin(), out.end());
    return out;
  }
};

pipeline_config count_config(window_kind kind) {
  pipeline_config cfg = base_config();
  cfg.window.kind = kind;
  cfg.window.slide_us = 5 * sec;
  cfg.window.gap_us = 3 * sec;
  cfg.window.late = late_policy::dead_letter;
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  return cfg;
}

TEST(WindowingEventTime, HostileTimesAreDeadLetteredAndLeaveTheWatermark) {
  for (const window_kind kind :
       {window_kind::tumbling, window_kind::hopping, window_kind::session, window_kind::global}) {
    SCOPED_TRACE(kind_name(kind));
    time_run r(count_config(kind));
    ASSERT_EQ(r.feed(25 * sec), aggregate_outcome::contributed);
    const int64_t wm = r.pa.watermark();
    for (const int64_t hostile : {i64_max, i64_min, i64_max - 1, i64_min + 1}) {
      EXPECT_EQ(r.feed(hostile), aggregate_outcome::dead_letter) << hostile;
      EXPECT_EQ(r.reason, "event time " + std::to_string(hostile) +
                              " us since the epoch (field 'ts') is outside the supported range "
                              "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z");
      EXPECT_EQ(r.pa.watermark(), wm);
    }
    // A later valid row is on time: the hostile ones moved nothing.
    EXPECT_EQ(r.feed(26 * sec), aggregate_outcome::contributed) << r.reason;
    const auto rows = r.finish();
    int64_t total = 0;
    for (const row& x : rows) total += std::get<int64_t>(x.back());
    // Each valid row counts once per window it falls in (hopping: 2 windows each).
    EXPECT_EQ(total, kind == window_kind::hopping ? 4 : 2);
  }
}

TEST(WindowingEventTime, TimesAtTheBoundsAreWindowedExactly) {
  constexpr int64_t ten_years = max_duration_us;
  for (const window_kind kind :
       {window_kind::tumbling, window_kind::hopping, window_kind::session}) {
    SCOPED_TRACE(kind_name(kind));
    pipeline_config cfg = count_config(kind);
    // The longest durations a pipeline file allows, so every sum is at its largest.
    cfg.window.size_us = ten_years;
    cfg.window.slide_us = ten_years / 2;
    cfg.window.gap_us = ten_years;
    cfg.window.max_out_of_orderness_us = ten_years;
    cfg.window.allowed_lateness_us = ten_years;
    time_run lo(cfg);
    EXPECT_EQ(lo.feed(min_event_time_us - 1), aggregate_outcome::dead_letter);
    EXPECT_EQ(lo.feed(min_event_time_us), aggregate_outcome::contributed) << lo.reason;
    EXPECT_EQ(lo.pa.watermark(), min_event_time_us - ten_years);
    const auto lo_rows = lo.finish();
    ASSERT_FALSE(lo_rows.empty());
    for (const row& x : lo_rows) {
      const int64_t start = std::get<timestamp>(x[0]).micros;
      const int64_t end = std::get<timestamp>(x[1]).micros;
      EXPECT_LE(start, min_event_time_us);
      EXPECT_GT(end, min_event_time_us);
      if (kind != window_kind::session) {
        EXPECT_EQ(end - start, ten_years);
        EXPECT_EQ(start % cfg.window.slide_us, 0);  // aligned to the epoch, not saturated
      }
    }
    time_run hi(cfg);
    EXPECT_EQ(hi.feed(max_event_time_us + 1), aggregate_outcome::dead_letter);
    EXPECT_EQ(hi.feed(max_event_time_us), aggregate_outcome::contributed) << hi.reason;
    const auto hi_rows = hi.finish();
    ASSERT_FALSE(hi_rows.empty());
    for (const row& x : hi_rows) {
      EXPECT_LE(std::get<timestamp>(x[0]).micros, max_event_time_us);
      EXPECT_GT(std::get<timestamp>(x[1]).micros, max_event_time_us);
      EXPECT_LT(std::get<timestamp>(x[1]).micros, i64_max);  // a real end, not "+infinity"
    }
  }
}

TEST(WindowingEventTime, OldDataStillWorks) {
  time_run r(count_config(window_kind::tumbling));
  EXPECT_EQ(r.feed(-1), aggregate_outcome::contributed);  // 1969-12-31T23:59:59.999999Z
  EXPECT_EQ(r.feed(0), aggregate_outcome::contributed);   // the epoch
  EXPECT_EQ(r.finish(), (std::vector<row>{row{timestamp{-10 * sec}, timestamp{0}, int64_t{1}},
                                          row{timestamp{0}, timestamp{10 * sec}, int64_t{1}}}));
}

TEST(WindowingEventTime, MaxEventTimeSkewBoundsTimesAheadOfTheClock) {
  pipeline_config cfg = count_config(window_kind::tumbling);
  cfg.window.max_event_time_skew_us = 3600 * sec;
  time_run r(cfg);
  const int64_t now = 1'762'473'600 * sec;  // 2025-11-07T00:00:00Z
  EXPECT_EQ(r.feed(now - 3600 * sec, now), aggregate_outcome::contributed);
  EXPECT_EQ(r.feed(now + 3600 * sec, now), aggregate_outcome::contributed);  // exactly at the bound
  const int64_t wm = r.pa.watermark();
  EXPECT_EQ(r.feed(now + 3600 * sec + 1, now), aggregate_outcome::dead_letter);
  EXPECT_EQ(r.reason,
            "event time 2025-11-07T01:00:00.000001Z (field 'ts') is more than 1h ahead of the "
            "clock (2025-11-07T00:00:00Z; window.max_event_time_skew)");
  EXPECT_EQ(r.feed(max_event_time_us, now), aggregate_outcome::dead_letter);
  EXPECT_EQ(r.pa.watermark(), wm);
  // The clock moved on: the same time is fine now.
  EXPECT_EQ(r.feed(now + 3600 * sec + 1, now + sec), aggregate_outcome::contributed);
  // Off (0): only the supported range applies.
  cfg.window.max_event_time_skew_us = 0;
  time_run off(cfg);
  EXPECT_EQ(off.feed(max_event_time_us, now), aggregate_outcome::contributed);
}

TEST(WindowingEventTime, ChangelogImagesAreCheckedAndStateIsLeftAlone) {
  pipeline_config cfg = base_config();
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.shards = 1;
  add_agg(cfg, "n", "count", "");
  table_run t(plan_of(cfg));
  EXPECT_EQ(t.feed(cdc_op::create, booking(1, "x", 1, 5 * sec)), aggregate_outcome::contributed);
  // A new image out of range: dead-lettered, key 1 keeps its row.
  EXPECT_EQ(t.feed(cdc_op::update, booking(1, "x", 1, i64_max)), aggregate_outcome::dead_letter);
  EXPECT_EQ(t.reason.rfind("event time 9223372036854775807 us since the epoch", 0), 0u) << t.reason;
  // Unknown key 2: its before-image (update) or deleted image is what is retracted: checked too.
  EXPECT_EQ(t.feed(cdc_op::update, booking(2, "x", 1, 6 * sec), booking(2, "x", 1, i64_min)),
            aggregate_outcome::dead_letter);
  EXPECT_EQ(t.reason.rfind("before image: event time -9223372036854775808", 0), 0u) << t.reason;
  EXPECT_EQ(t.feed(cdc_op::del, booking(3, "x", 1, i64_max)), aggregate_outcome::dead_letter);
  EXPECT_EQ(t.reason.rfind("deleted row: event time 9223372036854775807", 0), 0u) << t.reason;
  EXPECT_EQ(t.pa.watermark(), 5 * sec);
  // Key 1's update retracts the row kept in state (window [0, 10s)) and adds the new one.
  EXPECT_EQ(t.feed(cdc_op::update, booking(1, "x", 1, 15 * sec)), aggregate_outcome::contributed);
  std::vector<row> out;
  std::vector<partial_batch> batches;
  t.pa.take_partials(batches, 0);
  for (auto& b : batches) t.sa.merge(std::move(b));
  t.sa.finish(out);
  EXPECT_EQ(out, (std::vector<row>{row{timestamp{10 * sec}, timestamp{20 * sec}, int64_t{1}}}));
}

TEST(WindowingEventTime, HoppingWindowsPerRowAreBounded) {
  pipeline_config cfg = count_config(window_kind::hopping);
  cfg.window.size_us = 86'400 * sec;
  cfg.window.slide_us = 1000;  // 1ms: 86.4M windows per row
  EXPECT_EQ(plan_error(cfg),
            "window.slide: size / slide must be at most 10000 (windows per row), got 86400000");
  cfg.window.slide_us = cfg.window.size_us / max_windows_per_row;
  time_run r(cfg);
  EXPECT_EQ(r.feed(25 * sec), aggregate_outcome::contributed);
  EXPECT_EQ(r.finish().size(), static_cast<size_t>(max_windows_per_row));
}

TEST(WindowingEventTime, DurationsAreBounded) {
  pipeline_config cfg = count_config(window_kind::tumbling);
  cfg.window.allowed_lateness_us = max_duration_us + 1;
  EXPECT_EQ(plan_error(cfg), "window.allowed_lateness: must be at most 3650d");
  cfg.window.allowed_lateness_us = 0;
  cfg.window.max_event_time_skew_us = -1;
  EXPECT_EQ(plan_error(cfg), "window.max_event_time_skew: must not be negative");
}

}  // namespace
}  // namespace eddy
