// decode_bench.cpp — how much eddy's Debezium decoding costs over bare JSON parsing.
//
// All cases run over the same N seed-shaped messages from app::sample_generator (seed 42,
// bad_ratio 0, tombstones skipped), in each of the three value shapes:
//   bare_parse     boost::json::parse(value) — a fresh parse with the default allocator
//   reused_parser  one boost::json::parser reset onto a monotonic_resource over a stack buffer
//   sax_null       boost::json::basic_parser with a handler that does nothing: tokenizing and
//                  validating only, no DOM — a lower bound for any Boost.JSON-based decoder
//   decode         eddy::record_decoder::decode with the example pipeline's [[fields]]
//   process        eddy::record_processor::process: decode + filter (op != "d") + projection
// The pipeline is deploy/pipelines/ncr_ride_bookings.toml (found relative to this file).
// Each case reports items/s and bytes/s (of CPU time, Google Benchmark's default). After the
// run, a custom main prints the ratios decode / bare_parse etc., per shape, from the medians of
// this same run. On a shared machine run:
//   decode_bench --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
//                --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app/sample_data.hpp"
#include "model/pipeline_config.hpp"
#include "worker/decode/debezium_decoder.hpp"
#include "worker/decode/record_processor.hpp"

namespace {

constexpr size_t kMessages = 10000;
const std::string kTopic = "business_postgres.public.business_ncr_ride_bookings";

struct corpus {
  std::vector<eddy::app::sample_message> messages;  // all with a value
  size_t bytes = 0;
};

const corpus& messages_for(eddy::app::sample_format f) {
  static std::map<eddy::app::sample_format, corpus> cache;
  auto it = cache.find(f);
  if (it != cache.end()) return it->second;
  eddy::app::sample_options o;
  o.format = f;
  o.bad_ratio = 0;
  eddy::app::sample_generator gen(o);
  corpus c;
  c.messages.reserve(kMessages);
  while (c.messages.size() < kMessages) {
    auto m = gen.next();
    if (!m.value) continue;  // tombstone
    c.bytes += m.value->size();
    c.messages.push_back(std::move(m));
  }
  return cache.emplace(f, std::move(c)).first->second;
}

const eddy::pipeline_config& example_pipeline() {
  static const eddy::pipeline_config cfg = [] {
    auto path = std::filesystem::path(__FILE__).parent_path() /
                "../deploy/pipelines/ncr_ride_bookings.toml";
    auto r = eddy::load_pipeline_config(path.lexically_normal().string());
    if (!r.config) {
      std::fprintf(stderr, "decode_bench: %s\n", r.error.c_str());
      std::exit(2);
    }
    return std::move(*r.config);
  }();
  return cfg;
}

eddy::raw_record raw_of(const eddy::app::sample_message& m, int64_t offset) {
  eddy::raw_record r;
  r.topic = kTopic;
  r.partition = 0;
  r.offset = offset;
  r.timestamp_ms = m.timestamp_ms;
  r.key = m.key;
  r.value = *m.value;
  return r;
}

void finish(benchmark::State& state, const corpus& c) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c.messages.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(c.bytes));
}

// One iteration = one pass over all N messages.

void BM_bare_parse(benchmark::State& state, eddy::app::sample_format f) {
  const corpus& c = messages_for(f);
  for (auto _ : state) {
    for (const auto& m : c.messages) {
      boost::json::value v = boost::json::parse(*m.value);
      benchmark::DoNotOptimize(v);
    }
  }
  finish(state, c);
}

void BM_reused_parser(benchmark::State& state, eddy::app::sample_format f) {
  const corpus& c = messages_for(f);
  alignas(16) static unsigned char buffer[64 * 1024];
  boost::json::parser p;
  boost::json::error_code ec;
  size_t errors = 0;
  for (auto _ : state) {
    for (const auto& m : c.messages) {
      boost::json::monotonic_resource mr(buffer, sizeof buffer);
      p.reset(&mr);
      p.write(*m.value, ec);
      if (ec) {
        ++errors;
        continue;
      }
      boost::json::value v = p.release();
      benchmark::DoNotOptimize(v);
    }
  }
  if (errors) state.SkipWithError("parse error");
  finish(state, c);
}

/// A basic_parser handler that accepts everything and keeps nothing.
struct null_handler {
  using ec_t = boost::json::error_code;
  using sv = boost::json::string_view;
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  size_t keys = 0;
  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t, ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t, ec_t&) { return true; }
  bool on_string_part(sv, std::size_t, ec_t&) { return true; }
  bool on_string(sv, std::size_t, ec_t&) { return true; }
  bool on_key_part(sv, std::size_t, ec_t&) { return true; }
  bool on_key(sv, std::size_t, ec_t&) {
    ++keys;
    return true;
  }
  bool on_number_part(sv, ec_t&) { return true; }
  bool on_int64(int64_t, sv, ec_t&) { return true; }
  bool on_uint64(uint64_t, sv, ec_t&) { return true; }
  bool on_double(double, sv, ec_t&) { return true; }
  bool on_bool(bool, ec_t&) { return true; }
  bool on_null(ec_t&) { return true; }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }
};

void BM_sax_null(benchmark::State& state, eddy::app::sample_format f) {
  const corpus& c = messages_for(f);
  boost::json::basic_parser<null_handler> p{boost::json::parse_options{}};
  boost::json::error_code ec;
  size_t errors = 0;
  for (auto _ : state) {
    for (const auto& m : c.messages) {
      p.reset();
      p.write_some(false, m.value->data(), m.value->size(), ec);
      if (ec) ++errors;
    }
    benchmark::DoNotOptimize(p.handler().keys);
  }
  if (errors) state.SkipWithError("parse error");
  finish(state, c);
}

void BM_decode(benchmark::State& state, eddy::app::sample_format f) {
  const corpus& c = messages_for(f);
  eddy::record_decoder decoder(example_pipeline());
  eddy::decoded_record out;
  std::string reason;
  size_t not_rows = 0;
  for (auto _ : state) {
    int64_t offset = 0;
    for (const auto& m : c.messages) {
      auto s = decoder.decode(raw_of(m, offset++), out, reason);
      if (s != eddy::decode_status::row) ++not_rows;
      benchmark::DoNotOptimize(out);
    }
  }
  if (not_rows) state.SkipWithError(("not a row: " + reason).c_str());
  finish(state, c);
}

void BM_process(benchmark::State& state, eddy::app::sample_format f) {
  const corpus& c = messages_for(f);
  std::string err;
  auto proc = eddy::record_processor::create(example_pipeline(), &err);
  if (!proc) {
    state.SkipWithError(err.c_str());
    return;
  }
  std::vector<eddy::row> rows;
  std::vector<eddy::dead_letter> dead;
  eddy::record_counters counters;
  rows.reserve(c.messages.size());
  for (auto _ : state) {
    int64_t offset = 0;
    for (const auto& m : c.messages) proc->process(raw_of(m, offset++), rows, dead, counters);
    benchmark::DoNotOptimize(rows.data());
    rows.clear();  // as the sink does after writing a batch
    dead.clear();
  }
  if (counters.dead_lettered) state.SkipWithError("dead letters");
  state.counters["out_fraction"] =
      counters.in ? static_cast<double>(counters.out) / static_cast<double>(counters.in) : 0;
  finish(state, c);
}

using eddy::app::sample_format;
BENCHMARK_CAPTURE(BM_bare_parse, unwrapped, sample_format::unwrapped);
BENCHMARK_CAPTURE(BM_reused_parser, unwrapped, sample_format::unwrapped);
BENCHMARK_CAPTURE(BM_sax_null, unwrapped, sample_format::unwrapped);
BENCHMARK_CAPTURE(BM_decode, unwrapped, sample_format::unwrapped);
BENCHMARK_CAPTURE(BM_process, unwrapped, sample_format::unwrapped);
BENCHMARK_CAPTURE(BM_bare_parse, envelope, sample_format::envelope);
BENCHMARK_CAPTURE(BM_reused_parser, envelope, sample_format::envelope);
BENCHMARK_CAPTURE(BM_sax_null, envelope, sample_format::envelope);
BENCHMARK_CAPTURE(BM_decode, envelope, sample_format::envelope);
BENCHMARK_CAPTURE(BM_bare_parse, schema, sample_format::schema);
BENCHMARK_CAPTURE(BM_reused_parser, schema, sample_format::schema);
BENCHMARK_CAPTURE(BM_sax_null, schema, sample_format::schema);
BENCHMARK_CAPTURE(BM_decode, schema, sample_format::schema);

// ---- ratios from this run ----------------------------------------------------------------------

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
      if (r.run_type == Run::RT_Iteration)
        rates_[r.run_name.str()].push_back(it->second.value);
      else if (r.aggregate_name == "median")  // --benchmark_report_aggregates_only
        medians_[r.run_name.str()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  /// Median items/s of `name`, 0 when it did not run.
  double median(const std::string& name) const {
    if (auto m = medians_.find(name); m != medians_.end()) return m->second;
    auto it = rates_.find(name);
    if (it == rates_.end() || it->second.empty()) return 0;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

 private:
  std::map<std::string, std::vector<double>> rates_;
  std::map<std::string, double> medians_;  // the library's own median aggregates, when reported
};

void print_ratios(const collecting_reporter& rep) {
  std::printf(
      "\nMedians of this run's repetitions (msg/s) and ratios A/B of them (0 = not run):\n");
  std::printf("%-10s %12s %12s %12s %12s %12s %9s %9s %9s %9s\n", "shape", "bare msg/s",
              "reused msg/s", "sax msg/s", "decode msg/s", "proc msg/s", "dec/bare", "dec/reuse",
              "dec/sax", "proc/bare");
  for (const char* shape : {"unwrapped", "envelope", "schema"}) {
    auto get = [&](const char* bm) { return rep.median(std::string(bm) + "/" + shape); };
    double bare = get("BM_bare_parse"), reused = get("BM_reused_parser"), sax = get("BM_sax_null"),
           dec = get("BM_decode"), proc = get("BM_process");
    if (bare == 0 && dec == 0) continue;
    auto ratio = [](double a, double b) { return b > 0 && a > 0 ? a / b : 0.0; };
    std::printf("%-10s %12.0f %12.0f %12.0f %12.0f %12.0f %9.3f %9.3f %9.3f %9.3f\n", shape, bare,
                reused, sax, dec, proc, ratio(dec, bare), ratio(dec, reused), ratio(dec, sax),
                ratio(proc, bare));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Colour only on a terminal (the library's own --benchmark_color flag does not reach a
  // reporter constructed here).
  collecting_reporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                     : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_ratios(reporter);
  benchmark::Shutdown();
  return 0;
}
