// window_bench.cpp — per-record cost of eddy's windowed aggregation, one core, in memory.
//
// The plan is the example windowed pipeline, deploy/pipelines/ncr_windowed.toml (found relative
// to this file), read with parse_pipeline_config and turned into an aggregation_plan with
// aggregation_plan::from_config: group by vehicle_type; count(*), avg(booking_value),
// p95(ride_distance); tumbling 1-minute windows on created_at, 5 s out-of-orderness, late rows
// to the dead letter. The hopping and session variants edit only the [window] lines of the same
// text (type = "hopping", size = "5m", slide = "1m"; type = "session", gap = "30s").
//
// Rows: 200,000 rows decoded ONCE in setup by record_processor (the pipeline's fields and filter
// `op in ("c", "r")`) from app::sample_generator messages (seed 42, unwrapped, bad_ratio 0,
// event times 1 ms apart, in order: ~5 minutes of event time, 7 vehicle types). Cases:
//   partition_add/<window>   partition_aggregator::add per row — window assignment, lateness,
//                            pre-aggregation into (window, key) partial accumulators — with
//                            take_partials every 1,000 rows as a source task does after each
//                            Kafka batch (included: it is part of the per-row cost). items = rows.
//   take_merge               16 partition_aggregators (row -> partition by id % 16) cut partials
//                            every 1,000 rows of a partition; the timed part is take_partials +
//                            shard_aggregator::merge into the 4 shards (manual time; the adds are
//                            not timed). items = partial entries. The final finish() (emitting
//                            every window) is reported separately as the counter emit_us.
//   accumulator_add/<fn>/N   one accumulator's add per value, a fresh accumulator every N values
//                            (N = 100: a small group; 10,000: about one window x vehicle type of
//                            the 1M-message e2e run), values = the corpus' booking_value column
//                            (whole rupees 50..4,277 as doubles; 32% null: cancelled rides, skipped by
//                            all but count(*) — counter null_fraction). items = values.
// Reports items/s (CPU time; manual time for take_merge). After the run a custom main prints
// ns per item from the medians of this run's repetitions. On a shared machine run:
//   window_bench --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
//                --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "app/sample_data.hpp"
#include "model/pipeline_config.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/window/aggregates.hpp"
#include "worker/window/windowing.hpp"

namespace {

constexpr size_t kRows = 200'000;
constexpr size_t kBatchRows = 1'000;  // rows of one partition between take_partials calls
constexpr int kPartitions = 16;       // as in bench/e2e_windowed.sh
const std::string kTopic = "business_postgres.public.business_ncr_ride_bookings";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "window_bench: %s\n", what.c_str());
  std::exit(2);
}

const std::string& pipeline_text() {
  static const std::string text = [] {
    auto path =
        (std::filesystem::path(__FILE__).parent_path() / "../deploy/pipelines/ncr_windowed.toml")
            .lexically_normal();
    std::ifstream in(path);
    if (!in) die("cannot read " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }();
  return text;
}

/// Replaces the whole line starting with `key` (first occurrence) by `with`.
std::string replace_line(std::string text, const std::string& key, const std::string& with) {
  size_t at = text.find("\n" + key);
  if (at == std::string::npos) die("ncr_windowed.toml: no line starting with " + key);
  size_t end = text.find('\n', at + 1);
  return text.replace(at + 1, end - at - 1, with);
}

enum class variant { tumbling, hopping, session };

eddy::pipeline_config config_for(variant v) {
  std::string text = pipeline_text();
  if (v == variant::hopping) {
    text = replace_line(text, "type = \"tumbling\"", "type = \"hopping\"");
    text = replace_line(text, "size = ", "size = \"5m\"\nslide = \"1m\"");
  } else if (v == variant::session) {
    text = replace_line(text, "type = \"tumbling\"", "type = \"session\"");
    text = replace_line(text, "size = ", "gap = \"30s\"");
  }
  auto r = eddy::parse_pipeline_config(text, "ncr_windowed.toml");
  if (!r.config) die(r.error);
  return std::move(*r.config);
}

const eddy::aggregation_plan& plan_for(variant v) {
  static std::map<variant, eddy::aggregation_plan> cache;
  if (auto it = cache.find(v); it != cache.end()) return it->second;
  std::string err;
  auto plan = eddy::aggregation_plan::from_config(config_for(v), &err);
  if (!plan) die("aggregation_plan::from_config: " + err);
  return cache.emplace(v, std::move(*plan)).first->second;
}

struct corpus {
  eddy::pipeline_config cfg;
  std::vector<eddy::decoded_record> rows;  // passed the filter
};

const corpus& rows() {
  static const corpus c = [] {
    corpus out;
    out.cfg = config_for(variant::tumbling);
    std::string err;
    auto proc = eddy::record_processor::create(out.cfg, &err, /*project=*/false);
    if (!proc) die(err);
    eddy::app::sample_options so;  // seed 42, unwrapped, in order, no malformed records
    eddy::app::sample_generator gen(so);
    std::vector<eddy::row> sink;
    std::vector<eddy::dead_letter> dead;
    eddy::record_counters counters;
    eddy::raw_record r;
    r.topic = kTopic;
    out.rows.reserve(kRows);
    for (int64_t offset = 0; out.rows.size() < kRows; ++offset) {
      auto m = gen.next();
      if (!m.value) continue;  // tombstone
      r.offset = offset;
      r.timestamp_ms = m.timestamp_ms;
      r.key = m.key;
      r.value = *m.value;
      if (proc->process(r, sink, dead, counters) == eddy::record_outcome::out)
        out.rows.push_back(proc->last_decoded());
    }
    if (!dead.empty()) die("dead letters while decoding the corpus");
    return out;
  }();
  return c;
}

// ---- (a), (b): partition_aggregator::add per row ----------------------------------------------

void BM_partition_add(benchmark::State& state, variant v) {
  const corpus& c = rows();
  const eddy::aggregation_plan& plan = plan_for(v);
  std::string reason;
  std::vector<eddy::partial_batch> partials;
  int64_t contributed = 0, late = 0, dead = 0, entries = 0;
  for (auto _ : state) {
    eddy::partition_aggregator agg(plan, 0);
    for (size_t i = 0; i < c.rows.size(); ++i) {
      switch (agg.add(c.rows[i], 0, reason)) {
        case eddy::aggregate_outcome::contributed:
          ++contributed;
          break;
        case eddy::aggregate_outcome::late:
          ++late;
          break;
        case eddy::aggregate_outcome::dead_letter:
          ++dead;
          break;
      }
      if (i % kBatchRows == kBatchRows - 1) {
        agg.take_partials(partials, 0);
        for (const auto& b : partials) entries += static_cast<int64_t>(b.entries.size());
      }
    }
    agg.take_partials(partials, 0);
    for (const auto& b : partials) entries += static_cast<int64_t>(b.entries.size());
    benchmark::DoNotOptimize(partials.data());
  }
  const auto n = static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(c.rows.size());
  if (late + dead) state.SkipWithError("late rows in an in-order corpus");
  state.SetItemsProcessed(n);
  state.counters["contributed"] = static_cast<double>(contributed) / static_cast<double>(n);
  state.counters["rows/entry"] =
      entries ? static_cast<double>(n) / static_cast<double>(entries) : 0;
}
BENCHMARK_CAPTURE(BM_partition_add, tumbling_1m, variant::tumbling)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_partition_add, hopping_5m_1m, variant::hopping)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_partition_add, session_30s, variant::session)->Unit(benchmark::kMillisecond);

// ---- (c): take_partials + shard_aggregator::merge per partial entry ----------------------------

void BM_take_merge(benchmark::State& state, variant v) {
  const corpus& c = rows();
  const eddy::aggregation_plan& plan = plan_for(v);
  std::vector<int32_t> ids;
  for (int p = 0; p < kPartitions; ++p) ids.push_back(p);
  std::string reason;
  std::vector<eddy::partial_batch> partials;
  std::vector<eddy::row> out;
  int64_t entries = 0, batches = 0, result_rows = 0;
  double emit_seconds = 0;
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    std::vector<std::unique_ptr<eddy::partition_aggregator>> parts;
    for (int32_t p : ids) parts.push_back(std::make_unique<eddy::partition_aggregator>(plan, p));
    std::vector<std::unique_ptr<eddy::shard_aggregator>> shards;
    for (int s = 0; s < plan.shard_count; ++s)
      shards.push_back(std::make_unique<eddy::shard_aggregator>(plan, s, ids));
    std::vector<size_t> pending(kPartitions, 0);
    clock::duration timed{};
    auto cut = [&](int p) {
      auto t0 = clock::now();
      parts[p]->take_partials(partials, 0);
      for (size_t s = 0; s < partials.size(); ++s) {
        entries += static_cast<int64_t>(partials[s].entries.size());
        shards[s]->merge(std::move(partials[s]));
      }
      timed += clock::now() - t0;
      ++batches;
      pending[p] = 0;
    };
    for (const auto& rec : c.rows) {
      int p = static_cast<int>(std::get<int64_t>(rec.image[0]) % kPartitions);  // field 0 = id
      (void)parts[p]->add(rec, 0, reason);
      if (++pending[p] == kBatchRows) cut(p);
    }
    for (int p = 0; p < kPartitions; ++p) cut(p);
    auto t0 = clock::now();
    out.clear();
    for (auto& s : shards) s->finish(out);
    emit_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    result_rows += static_cast<int64_t>(out.size());
    state.SetIterationTime(std::chrono::duration<double>(timed).count());
  }
  const auto it = static_cast<double>(state.iterations());
  state.SetItemsProcessed(entries);
  state.counters["entries/batch"] = static_cast<double>(entries) / static_cast<double>(batches);
  state.counters["rows/entry"] =
      it * static_cast<double>(c.rows.size()) / static_cast<double>(entries);
  state.counters["result_rows"] = static_cast<double>(result_rows) / it;
  state.counters["emit_us"] = emit_seconds * 1e6 / it;  // finish(): every window, all shards
}
BENCHMARK_CAPTURE(BM_take_merge, tumbling_1m, variant::tumbling)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_take_merge, hopping_5m_1m, variant::hopping)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_take_merge, session_30s, variant::session)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---- (d): one accumulator's add per value ---------------------------------------------------

const std::vector<eddy::value>& booking_values() {
  static const std::vector<eddy::value> v = [] {
    const corpus& c = rows();
    int idx = c.cfg.field_index("booking_value");
    if (idx < 0) die("no field booking_value");
    std::vector<eddy::value> out;
    out.reserve(c.rows.size());
    for (const auto& r : c.rows) out.push_back(r.image[static_cast<size_t>(idx)]);
    return out;
  }();
  return v;
}

void BM_accumulator_add(benchmark::State& state, const char* fn, double q) {
  const auto& values = booking_values();
  const auto per_acc = static_cast<size_t>(state.range(0));
  eddy::agg_spec spec;
  spec.alias = "a";
  double pq = q;
  auto parsed = eddy::parse_agg_fn(fn, &pq);
  if (!parsed) die(std::string("unknown function ") + fn);
  spec.fn = *parsed;
  spec.q = pq;
  spec.field = 0;
  spec.input_type = eddy::field_type::float64;
  int64_t adds = 0;
  for (auto _ : state) {
    for (size_t base = 0; base + per_acc <= values.size(); base += per_acc) {
      auto acc = eddy::make_accumulator(spec);
      for (size_t i = base; i < base + per_acc; ++i)
        acc->add(values[i], static_cast<int64_t>(i), 1);
      benchmark::DoNotOptimize(acc.get());
      adds += static_cast<int64_t>(per_acc);
    }
  }
  state.SetItemsProcessed(adds);
  state.counters["null_fraction"] =
      static_cast<double>(std::count_if(values.begin(), values.end(), eddy::is_null)) /
      static_cast<double>(values.size());
}
#define EDDY_ACC(name, fn, q) \
  BENCHMARK_CAPTURE(BM_accumulator_add, name, fn, q)->Arg(100)->Arg(10000)
EDDY_ACC(count, "count", 0.5);
EDDY_ACC(sum, "sum", 0.5);
EDDY_ACC(avg, "avg", 0.5);
EDDY_ACC(min, "min", 0.5);
EDDY_ACC(max, "max", 0.5);
EDDY_ACC(count_distinct, "count_distinct", 0.5);
EDDY_ACC(approx_count_distinct, "approx_count_distinct", 0.5);
EDDY_ACC(percentile_q95, "percentile", 0.95);
#undef EDDY_ACC

// ---- summary from this run ---------------------------------------------------------------------

/// Console output as usual, plus items/s kept by benchmark name: every repetition's, or the
/// library's median aggregate when only aggregates are reported.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  explicit collecting_reporter(OutputOptions opts) : ConsoleReporter(opts) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      auto it = r.counters.find("items_per_second");
      if (it == r.counters.end()) continue;
      std::string name = r.run_name.str();
      if (r.run_type == Run::RT_Iteration)
        rates_[name].push_back(it->second.value);
      else if (r.aggregate_name == "median")
        medians_[name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  double median(const std::string& name) const {
    if (auto m = medians_.find(name); m != medians_.end()) return m->second;
    auto it = rates_.find(name);
    if (it == rates_.end() || it->second.empty()) return 0;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  /// Every name seen, in registration order (the run order is random when interleaved).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, _] : rates_) out.push_back(n);
    for (const auto& [n, _] : medians_)
      if (!rates_.count(n)) out.push_back(n);
    auto rank = [](const std::string& n) {
      static const char* const order[] = {"BM_partition_add/tumbling",
                                          "BM_partition_add/hopping",
                                          "BM_partition_add/session",
                                          "BM_take_merge/tumbling",
                                          "BM_take_merge/hopping",
                                          "BM_take_merge/session",
                                          "/count/",
                                          "/sum/",
                                          "/avg/",
                                          "/min/",
                                          "/max/",
                                          "/count_distinct/",
                                          "/approx_count_distinct/",
                                          "/percentile"};
      for (size_t i = 0; i < std::size(order); ++i)
        if (n.find(order[i]) != std::string::npos) return i;
      return std::size(order);
    };
    std::stable_sort(out.begin(), out.end(), [&](const std::string& a, const std::string& b) {
      auto ra = rank(a), rb = rank(b);
      if (ra != rb) return ra < rb;
      return a.size() != b.size() ? a.size() < b.size() : a < b;  // /100 before /10000
    });
    return out;
  }

 private:
  std::map<std::string, std::vector<double>> rates_;
  std::map<std::string, double> medians_;
};

void print_summary(const collecting_reporter& rep) {
  std::printf("\nMedians of this run's repetitions:\n%-48s %14s %12s\n", "case", "items/s",
              "ns/item");
  for (const auto& name : rep.names()) {
    double r = rep.median(name);
    if (r > 0) std::printf("%-48s %14.0f %12.1f\n", name.c_str(), r, 1e9 / r);
  }
  double tumbling = rep.median("BM_partition_add/tumbling_1m");
  for (const char* other : {"BM_partition_add/hopping_5m_1m", "BM_partition_add/session_30s"}) {
    double o = rep.median(other);
    if (tumbling > 0 && o > 0)
      std::printf("%s / tumbling_1m (rows/s): %.3f\n", other, o / tumbling);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  collecting_reporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                     : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_summary(reporter);
  benchmark::Shutdown();
  return 0;
}
