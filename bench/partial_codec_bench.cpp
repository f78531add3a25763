// partial_codec_bench.cpp — what partials cost when they cross processes, one core, in memory.
//
// Partials: the example windowed pipeline (deploy/pipelines/ncr_windowed.toml: group by
// vehicle_type; count(*), avg(booking_value), p95(ride_distance); tumbling 1-minute windows),
// 200,000 rows decoded once from app::sample_generator (seed 42, event times 1 ms apart; the
// processing time passed to add() is the wall clock, as max_event_time_skew needs),
// spread over 16 partition_aggregators by id % 16 and cut every 1,000 rows of a partition, as
// source tasks do (bench/window_bench.cpp's take_merge): every cut batch of every shard, empty
// ones included, is the workload. Cases (items = partial entries, except json_parse):
//   encode        encode_partial_batch of every batch
//   decode        decode_partial_batch of every batch's bytes with the plan
//   caf_remote    the serialization of a remote send, both ends: partials_msg through
//                 caf::binary_serializer (inspect() encodes), caf::binary_deserializer, then
//                 partials_msg::get (decodes)
//   json_parse/<shape>   boost::json::parse of one sample Debezium message (10,000 messages of
//                 app::sample_generator, seed 42, no malformed ones); items = messages
// After the run a custom main prints ns per item (medians of this run) and the ratio
// (encode + decode per entry) / (json_parse per message), and the same per input row (rows per
// entry of this workload). On a shared machine run:
//   partial_codec_bench --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
//                       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "app/sample_data.hpp"
#include "model/pipeline_config.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/window/partial_codec.hpp"
#include "worker/window/windowing.hpp"

namespace {

constexpr size_t kRows = 200'000;
constexpr size_t kBatchRows = 1'000;
constexpr int kPartitions = 16;
constexpr size_t kMessages = 10'000;
const std::string kTopic = "business_postgres.public.business_ncr_ride_bookings";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "partial_codec_bench: %s\n", what.c_str());
  std::exit(2);
}

struct workload {
  eddy::pipeline_config cfg;
  eddy::aggregation_plan plan;
  std::vector<eddy::partial_batch> batches;
  std::vector<std::string> encoded;
  size_t entries = 0;
  size_t bytes = 0;
};

const workload& partials() {
  static const workload w = [] {
    workload out;
    auto path =
        (std::filesystem::path(__FILE__).parent_path() / "../deploy/pipelines/ncr_windowed.toml")
            .lexically_normal();
    auto loaded = eddy::load_pipeline_config(path.string());
    if (!loaded.config) die(loaded.error);
    out.cfg = std::move(*loaded.config);
    std::string err;
    auto plan = eddy::aggregation_plan::from_config(out.cfg, &err);
    if (!plan) die("aggregation_plan::from_config: " + err);
    out.plan = std::move(*plan);
    auto proc = eddy::record_processor::create(out.cfg, &err, /*project=*/false);
    if (!proc) die(err);
    std::vector<std::unique_ptr<eddy::partition_aggregator>> parts;
    for (int p = 0; p < kPartitions; ++p)
      parts.push_back(std::make_unique<eddy::partition_aggregator>(out.plan, p));
    std::vector<size_t> pending(kPartitions, 0);
    std::vector<eddy::partial_batch> cut;
    auto take = [&](int p) {
      parts[static_cast<size_t>(p)]->take_partials(cut, 0);
      for (auto& b : cut) out.batches.push_back(std::move(b));
      pending[static_cast<size_t>(p)] = 0;
    };
    eddy::app::sample_options so;  // seed 42, unwrapped, in order, no malformed records
    eddy::app::sample_generator gen(so);
    std::vector<eddy::row> sink;
    std::vector<eddy::dead_letter> dead;
    eddy::record_counters counters;
    eddy::raw_record r;
    r.topic = kTopic;
    std::string reason;
    const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    size_t rows = 0;
    for (int64_t offset = 0; rows < kRows; ++offset) {
      auto m = gen.next();
      if (!m.value) continue;  // tombstone
      r.offset = offset;
      r.timestamp_ms = m.timestamp_ms;
      r.key = m.key;
      r.value = *m.value;
      if (proc->process(r, sink, dead, counters) != eddy::record_outcome::out) continue;
      const auto& rec = proc->last_decoded();
      const int p = static_cast<int>(std::get<int64_t>(rec.image[0]) % kPartitions);
      // Processing time = now: the pipeline's max_event_time_skew (365d) is measured from it.
      if (parts[static_cast<size_t>(p)]->add(rec, now, reason) !=
          eddy::aggregate_outcome::contributed) {
        die("a row was not aggregated: " + reason);
      }
      ++rows;
      if (++pending[static_cast<size_t>(p)] == kBatchRows) take(p);
    }
    for (int p = 0; p < kPartitions; ++p) take(p);
    for (const auto& b : out.batches) {
      out.entries += b.entries.size();
      out.encoded.push_back(eddy::encode_partial_batch(b));
      out.bytes += out.encoded.back().size();
    }
    if (out.entries == 0) die("no partial entries");
    return out;
  }();
  return w;
}

void per_entry(benchmark::State& state, const workload& w) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(w.entries));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(w.bytes));
  state.counters["entries/batch"] =
      static_cast<double>(w.entries) / static_cast<double>(w.batches.size());
  state.counters["bytes/entry"] = static_cast<double>(w.bytes) / static_cast<double>(w.entries);
  state.counters["rows/entry"] = static_cast<double>(kRows) / static_cast<double>(w.entries);
}

void BM_encode(benchmark::State& state) {
  const workload& w = partials();
  for (auto _ : state) {
    for (const auto& b : w.batches) {
      std::string bytes = eddy::encode_partial_batch(b);
      benchmark::DoNotOptimize(bytes.data());
    }
  }
  per_entry(state, w);
}
BENCHMARK(BM_encode)->Unit(benchmark::kMillisecond);

void BM_decode(benchmark::State& state) {
  const workload& w = partials();
  std::string err;
  for (auto _ : state) {
    for (const auto& bytes : w.encoded) {
      eddy::partial_batch b;
      if (!eddy::decode_partial_batch(bytes, w.plan, &b, &err)) die(err);
      benchmark::DoNotOptimize(b.entries.data());
    }
  }
  per_entry(state, w);
}
BENCHMARK(BM_decode)->Unit(benchmark::kMillisecond);

struct bench_config : caf::actor_system_config {
  bench_config() {
    set("logger.console", caf::atom("none"));
    eddy::register_message_types(*this);
  }
};

void BM_caf_remote(benchmark::State& state) {
  const workload& w = partials();
  bench_config cfg;
  caf::actor_system sys{cfg};
  // Shared copies of the batches (re-made from their bytes: accumulators are not copyable).
  std::vector<std::shared_ptr<eddy::partial_batch>> shared;
  std::string err;
  for (const auto& bytes : w.encoded) {
    auto b = std::make_shared<eddy::partial_batch>();
    if (!eddy::decode_partial_batch(bytes, w.plan, b.get(), &err)) die(err);
    shared.push_back(std::move(b));
  }
  std::vector<char> buf;
  for (auto _ : state) {
    for (const auto& b : shared) {
      buf.clear();
      eddy::partials_msg out;
      out.batch = b;
      caf::binary_serializer sink{sys, buf};
      if (auto e = sink(out)) die(sys.render(e));
      eddy::partials_msg in;
      caf::binary_deserializer source{sys, buf};
      if (auto e = source(in)) die(sys.render(e));
      if (in.get(w.plan, &err) == nullptr) die(err);
      benchmark::DoNotOptimize(in.batch.get());
    }
  }
  per_entry(state, w);
}
BENCHMARK(BM_caf_remote)->Unit(benchmark::kMillisecond);

const std::vector<std::string>& messages(eddy::app::sample_format f) {
  static std::map<eddy::app::sample_format, std::vector<std::string>> cache;
  if (auto it = cache.find(f); it != cache.end()) return it->second;
  eddy::app::sample_options o;
  o.format = f;
  o.bad_ratio = 0;
  eddy::app::sample_generator gen(o);
  std::vector<std::string> out;
  while (out.size() < kMessages) {
    auto m = gen.next();
    if (m.value) out.push_back(std::move(*m.value));
  }
  return cache.emplace(f, std::move(out)).first->second;
}

void BM_json_parse(benchmark::State& state, eddy::app::sample_format f) {
  const auto& ms = messages(f);
  size_t bytes = 0;
  for (const auto& m : ms) bytes += m.size();
  for (auto _ : state) {
    for (const auto& m : ms) {
      boost::json::value v = boost::json::parse(m);
      benchmark::DoNotOptimize(v);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(ms.size()));
  state.counters["bytes/message"] = static_cast<double>(bytes) / static_cast<double>(ms.size());
}
BENCHMARK_CAPTURE(BM_json_parse, unwrapped, eddy::app::sample_format::unwrapped)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_json_parse, envelope, eddy::app::sample_format::envelope)
    ->Unit(benchmark::kMillisecond);

/// Console output as usual, plus the median items/s of each case (of its repetitions, or the
/// library's median aggregate when only aggregates are reported).
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  explicit collecting_reporter(OutputOptions opts) : ConsoleReporter(opts) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      auto it = r.counters.find("items_per_second");
      if (it == r.counters.end()) continue;
      const std::string name = r.run_name.str();
      if (r.run_type == Run::RT_Iteration)
        rates_[name].push_back(it->second.value);
      else if (r.aggregate_name == "median")
        medians_[name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  /// ns per item of `name`, 0 when it did not run.
  double ns(const std::string& name) const {
    double rate = 0;
    if (auto m = medians_.find(name); m != medians_.end()) {
      rate = m->second;
    } else if (auto it = rates_.find(name); it != rates_.end() && !it->second.empty()) {
      std::vector<double> v = it->second;
      std::sort(v.begin(), v.end());
      const size_t n = v.size();
      rate = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
    return rate > 0 ? 1e9 / rate : 0;
  }

 private:
  std::map<std::string, std::vector<double>> rates_;
  std::map<std::string, double> medians_;
};

void print_summary(const collecting_reporter& rep) {
  const workload& w = partials();
  const double rows_per_entry = static_cast<double>(kRows) / static_cast<double>(w.entries);
  std::printf(
      "\nWorkload: %zu batches, %zu entries (%.1f per batch), %.1f bytes and %.1f input "
      "rows per entry\n",
      w.batches.size(), w.entries,
      static_cast<double>(w.entries) / static_cast<double>(w.batches.size()),
      static_cast<double>(w.bytes) / static_cast<double>(w.entries), rows_per_entry);
  std::printf("Medians of this run:\n%-30s %12s\n", "case", "ns/item");
  for (const char* name : {"BM_encode", "BM_decode", "BM_caf_remote", "BM_json_parse/unwrapped",
                           "BM_json_parse/envelope"}) {
    if (const double v = rep.ns(name); v > 0) std::printf("%-30s %12.1f\n", name, v);
  }
  const double codec = rep.ns("BM_encode") + rep.ns("BM_decode");
  const double remote = rep.ns("BM_caf_remote");
  for (const char* shape : {"unwrapped", "envelope"}) {
    const double parse = rep.ns(std::string("BM_json_parse/") + shape);
    if (parse <= 0 || codec <= 0) continue;
    std::printf(
        "(encode + decode per entry) / json_parse/%s per message: %.3f; per input row: "
        "%.5f\n",
        shape, codec / parse, codec / rows_per_entry / parse);
    if (remote > 0) {
      std::printf("caf_remote per entry / json_parse/%s per message: %.3f; per input row: %.5f\n",
                  shape, remote / parse, remote / rows_per_entry / parse);
    }
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
