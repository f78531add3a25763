// assignment_bench.cpp — time to assign 10,000 partitions and 1,000 shards over 100 workers.
//
// Reference in the same run: copying the previous assignment (a std::map of 11,000 units), the
// least any assignment must do to produce its answer. Cases:
//   fresh          no previous assignment (a cluster's first start);
//   worker_lost    from a balanced assignment over 100 workers to the 99 survivors;
//   worker_joined  from 99 workers to 100 (the new one takes ~1% of the units);
//   copy_previous  the reference: a copy of the previous assignment.
// Slots 1..4 per worker (worker i has 1 + i % 4). items = units. Run:
//   assignment_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "coordinator/assignment.hpp"

namespace {

using namespace eddy;

std::vector<unit_id> all_units() {
  std::vector<unit_id> units;
  for (int p = 0; p < 10000; ++p) units.push_back(unit_id::partition(p));
  for (int s = 0; s < 1000; ++s) units.push_back(unit_id::shard(s));
  return units;
}

std::vector<worker_capacity> workers(int n) {
  std::vector<worker_capacity> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"worker-" + std::to_string(i), static_cast<uint32_t>(1 + i % 4)});
  return out;
}

void fresh(benchmark::State& state) {
  auto units = all_units();
  auto ws = workers(100);
  for (auto _ : state) benchmark::DoNotOptimize(assign_units(units, ws, {}));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * units.size()));
}

void worker_lost(benchmark::State& state) {
  auto units = all_units();
  auto before = assign_units(units, workers(100), {});
  auto survivors = workers(100);
  survivors.erase(survivors.begin() + 37);
  for (auto _ : state) benchmark::DoNotOptimize(assign_units(units, survivors, before));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * units.size()));
  state.counters["moved"] =
      static_cast<double>(moves_between(before, assign_units(units, survivors, before)).size());
}

void worker_joined(benchmark::State& state) {
  auto units = all_units();
  auto before = assign_units(units, workers(99), {});
  auto ws = workers(100);
  for (auto _ : state) benchmark::DoNotOptimize(assign_units(units, ws, before));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * units.size()));
  state.counters["moved"] =
      static_cast<double>(moves_between(before, assign_units(units, ws, before)).size());
}

void copy_previous(benchmark::State& state) {
  auto units = all_units();
  auto before = assign_units(units, workers(100), {});
  for (auto _ : state) {
    unit_owners copy = before;
    benchmark::DoNotOptimize(copy);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * units.size()));
}

BENCHMARK(fresh)->Unit(benchmark::kMillisecond);
BENCHMARK(worker_lost)->Unit(benchmark::kMillisecond);
BENCHMARK(worker_joined)->Unit(benchmark::kMillisecond);
BENCHMARK(copy_previous)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
