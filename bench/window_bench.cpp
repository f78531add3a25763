// window_bench — per-record cost of windowed aggregation, one core, in memory.
//
// Rows: 200k seed-shaped messages from app::sample_generator (creates and reads only, as the
// example's filter keeps), decoded once in setup with the example windowed pipeline
// (deploy/pipelines/ncr_windowed.toml: group by vehicle_type; count, avg(booking_value),
// p95(ride_distance)). Cases:
//   partition_add/<window>    partition_aggregator::add per row (window assignment, lateness,
//                             pre-aggregation), then take_partials once per 10k rows
//   shard_merge               shard_aggregator::merge + emit per partial entry
//   accumulator_add/<fn>      one accumulator's add per value
// Run: build/bench/window_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/sample_data.hpp"
#include "worker/aggregates.hpp"
#include "worker/record_processor.hpp"
#include "worker/windowing.hpp"

namespace {

std::string pipeline_path() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/../deploy/pipelines/ncr_windowed.toml";
}

struct corpus {
  eddy::pipeline_config cfg;
  std::vector<eddy::decoded_record> rows;
};

const corpus& rows() {
  static corpus c = [] {
    corpus out;
    auto loaded = eddy::load_pipeline_config(pipeline_path());
    if (!loaded.config) throw std::runtime_error(loaded.error);
    out.cfg = *loaded.config;
    std::string err;
    auto proc = eddy::record_processor::create(out.cfg, &err, false);
    eddy::app::sample_options so;
    eddy::app::sample_generator gen(so);
    std::vector<eddy::row> sink;
    std::vector<eddy::dead_letter> dead;
    eddy::record_counters counters;
    while (out.rows.size() < 200'000) {
      auto m = gen.next();
      if (!m.value) continue;
      eddy::raw_record r;
      r.value = *m.value;
      if (proc->process(r, sink, dead, counters) == eddy::record_outcome::out)
        out.rows.push_back(proc->last_decoded());
    }
    return out;
  }();
  return c;
}

eddy::aggregation_plan plan_for(eddy::window_kind kind) {
  eddy::pipeline_config cfg = rows().cfg;
  cfg.window.kind = kind;
  if (kind == eddy::window_kind::hopping) {
    cfg.window.size_us = 5 * 60'000'000LL;
    cfg.window.slide_us = 60'000'000LL;
  } else if (kind == eddy::window_kind::session) {
    cfg.window.gap_us = 30'000'000LL;
  }
  std::string err;
  auto plan = eddy::aggregation_plan::from_config(cfg, &err);
  if (!plan) throw std::runtime_error(err);
  return *plan;
}

void partition_add(benchmark::State& state, eddy::window_kind kind) {
  const auto& c = rows();
  const auto plan = plan_for(kind);
  std::string reason;
  std::vector<eddy::partial_batch> partials;
  for (auto _ : state) {
    eddy::partition_aggregator agg(plan, 0);
    for (size_t i = 0; i < c.rows.size(); ++i) {
      benchmark::DoNotOptimize(agg.add(c.rows[i], 0, reason));
      if (i % 10'000 == 9'999) agg.take_partials(partials, 0);
    }
    agg.take_partials(partials, 0);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(c.rows.size()));
}
BENCHMARK_CAPTURE(partition_add, tumbling, eddy::window_kind::tumbling)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(partition_add, hopping_5m_1m, eddy::window_kind::hopping)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(partition_add, session_30s, eddy::window_kind::session)->Unit(benchmark::kMillisecond);

void shard_merge(benchmark::State& state) {
  const auto& c = rows();
  const auto plan = plan_for(eddy::window_kind::tumbling);
  std::string reason;
  // Partials as 8 partitions would send them, cut every 1000 rows.
  int64_t entries = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::unique_ptr<eddy::partition_aggregator>> parts;
    std::vector<std::vector<eddy::partial_batch>> batches;
    for (int p = 0; p < 8; ++p) parts.push_back(std::make_unique<eddy::partition_aggregator>(plan, p));
    for (size_t i = 0; i < c.rows.size(); ++i) {
      auto& agg = *parts[i % 8];
      (void)agg.add(c.rows[i], 0, reason);
      if (i % 1000 == 999) {
        std::vector<eddy::partial_batch> out;
        agg.take_partials(out, 0);
        batches.push_back(std::move(out));
      }
    }
    std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5, 6, 7};
    std::vector<std::unique_ptr<eddy::shard_aggregator>> shards;
    for (int s = 0; s < plan.shard_count; ++s)
      shards.push_back(std::make_unique<eddy::shard_aggregator>(plan, s, ids));
    int64_t n = 0;
    for (auto& b : batches)
      for (auto& pb : b) n += static_cast<int64_t>(pb.entries.size());
    entries += n;
    std::vector<eddy::row> out;
    state.ResumeTiming();
    for (auto& b : batches)
      for (size_t s = 0; s < b.size(); ++s) shards[s]->merge(std::move(b[s]));
    for (auto& s : shards) s->emit(out, 0);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(entries);
  state.counters["entries/iteration"] =
      static_cast<double>(entries) / static_cast<double>(state.iterations());
}
BENCHMARK(shard_merge)->Unit(benchmark::kMillisecond);

void accumulator_add(benchmark::State& state, const char* fn) {
  double q = 0.5;
  eddy::agg_spec spec;
  spec.fn = *eddy::parse_agg_fn(fn, &q);
  spec.q = q;
  spec.field = 0;
  spec.input_type = eddy::field_type::float64;
  std::vector<eddy::value> values;
  for (int i = 0; i < 100'000; ++i) values.emplace_back(static_cast<double>((i * 7919) % 100'003) / 7.0);
  for (auto _ : state) {
    auto acc = eddy::make_accumulator(spec);
    for (size_t i = 0; i < values.size(); ++i) acc->add(values[i], static_cast<int64_t>(i), 1);
    benchmark::DoNotOptimize(acc->result());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(values.size()));
}
BENCHMARK_CAPTURE(accumulator_add, count, "count");
BENCHMARK_CAPTURE(accumulator_add, sum, "sum");
BENCHMARK_CAPTURE(accumulator_add, avg, "avg");
BENCHMARK_CAPTURE(accumulator_add, min, "min");
BENCHMARK_CAPTURE(accumulator_add, max, "max");
BENCHMARK_CAPTURE(accumulator_add, count_distinct, "count_distinct");
BENCHMARK_CAPTURE(accumulator_add, approx_count_distinct, "approx_count_distinct");
BENCHMARK_CAPTURE(accumulator_add, p95, "p95");

}  // namespace

BENCHMARK_MAIN();
