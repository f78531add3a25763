// cluster_sinks_test.cpp — the PostgreSQL and Kafka sinks in a cluster, through a failover
// (issue 12).
//
// In a cluster the workers stage each epoch's rows for these sinks as JSON Lines under
// `<checkpoint.dir>/sinks/<kind>-<i>/`, and only the coordinator delivers a committed epoch's
// staged files (a transaction into the table, records produced into the topic). Each test runs
// `eddy coordinator` and three `eddy worker`s over one pipeline with three sinks — a file sink, a
// postgres sink and a Kafka sink — kills one worker with SIGKILL once all three committed an
// epoch together (while input remains), restarts it, and waits until the whole input is
// committed and published (the manifests, as in cluster_equality_test). Then:
// * the table holds exactly the reference's rows (no row missing, none twice), and
// * the output topic holds exactly the reference's rows, every record with its origin headers
//   and each (unit, epoch, sequence) once,
// where the reference is `eddy run --exit-at-end` over the same topic into a file sink.
//
// Pipelines: windowed (count, min, max per vehicle type and pickup location over 10 s windows:
// exact aggregates, so that rows merged in another order are equal to the bit) with
// `mode = "upsert"`, and cleaned rows (every field, partition and offset) with
// `mode = "append"`. A streaming cluster never closes its newest windows: as in
// cluster_equality_test, one record per partition dated a day after the data closes every window
// of the data, and the windowed rows are compared up to that time.
//
// One development broker and one throw-away PostgreSQL server (tests/support/pg_server.hpp;
// the tests are skipped when PostgreSQL's server binaries are missing) serve both tests. The
// password reaches every process through `password_env`.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "model/time_format.hpp"
#include "tests/cluster/cluster_harness.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/kafka_read.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"
#include "worker/kafka/consumer.hpp"

namespace eddy::test {
namespace {

using namespace cluster;

const std::string k_topic = "rides_cluster_sinks";
constexpr int k_partitions = 8;
constexpr int k_events = 40000;
constexpr int64_t k_data_start_us = 1762473600000000;  // produce's default: 2025-11-07T00:00:00Z
constexpr int64_t k_flush_us = k_data_start_us + 86'400'000'000;
// Per worker (each worker's poller applies the cap): with three workers the input takes ~7 s,
// long enough to kill one in the middle.
constexpr int64_t k_rate = 2000;
const std::string k_password_env = "EDDY_TEST_PG_PASSWORD";

enum class kind { windowed, cleaned };

struct run_paths {
  fs::path out, dead, checkpoint;
};

/// The pipeline text (absolute paths: workers receive the text). Sinks: [0] file into p.out,
/// then, when `table` is set, [1] postgres into `table` and [2] Kafka into `out_topic`.
std::string pipeline_toml(kind k, const std::string& name, const std::string& bootstrap,
                          const run_paths& p, int64_t rate, const std::string& pg_dsn = "",
                          const std::string& table = "", const std::string& out_topic = "") {
  std::string t = "[pipeline]\nname = \"" + name +
                  "\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\nmax_rows_per_batch = 500\n"
                  "\n[source]\nbootstrap_servers = \"" +
                  bootstrap + "\"\ntopic = \"" + k_topic +
                  "\"\nstarting_offsets = \"earliest\"\nformat = \"auto\"\n";
  if (rate > 0) t += "max_records_per_second = " + std::to_string(rate) + "\n";
  if (k == kind::windowed) {
    t += ride_fields_toml(false) +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
         "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
         "\n[[aggregates]]\nalias = \"min_booking_value\"\nfunction = \"min\"\n"
         "field = \"booking_value\"\n"
         "\n[[aggregates]]\nalias = \"max_ride_distance\"\nfunction = \"max\"\n"
         "field = \"ride_distance\"\n"
         "\n[aggregate]\ngroup_by = [\"vehicle_type\", \"pickup_location\"]\nmode = \"append\"\n"
         "shards = 4\n"
         "\n[window]\ntype = \"tumbling\"\nsize = \"10s\"\ntime_field = \"created_at_ts\"\n"
         "max_out_of_orderness = \"2s\"\nallowed_lateness = \"0s\"\nemit = \"on_close\"\n"
         "late = \"dead_letter\"\nidle_timeout = \"0s\"\n";
  } else {
    std::string select;
    t += ride_fields_toml(true, &select) + "\n[query]\nfilter = 'op != \"d\"'\nselect = [" +
         select + "]\n";
  }
  t += "\n[[sinks]]\ntype = \"file\"\npath = \"" + p.out.string() + "\"\n";
  if (!table.empty()) {
    t += "\n[[sinks]]\ntype = \"postgres\"\ndsn = \"" + pg_dsn + "\"\npassword_env = \"" +
         k_password_env + "\"\ntable = \"" + table + "\"\nmode = \"" +
         (k == kind::windowed ? "upsert" : "append") + "\"\n";
    t += "\n[[sinks]]\ntype = \"kafka\"\ntopic = \"" + out_topic + "\"\n";
  }
  t += "\n[dead_letter]\npath = \"" + p.dead.string() + "\"\n\n[checkpoint]\ndir = \"" +
       p.checkpoint.string() + "\"\ninterval = \"500ms\"\nsync = false\n";
  return t;
}

/// Runs `eddy ARGS...` to its end (stdout, stderr in files named after `base`).
std::optional<finished> run_to_end(std::vector<std::string> args, const std::string& base,
                                   std::chrono::milliseconds timeout) {
  args.insert(args.begin(), EDDY_BINARY);
  child_process proc({.argv = args,
                      .out = redirect::file(base + ".stdout"),
                      .err = redirect::file(base + ".stderr")});
  auto status = proc.wait_for(timeout);
  if (!status) {
    proc.terminate(1s);
    ADD_FAILURE() << "eddy " << args[1] << " did not finish within " << timeout.count()
                  << " ms; stderr:\n"
                  << read_text_file(base + ".stderr");
    return std::nullopt;
  }
  return finished{*status, read_text_file(base + ".stdout"), read_text_file(base + ".stderr")};
}

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

// ---- rows of a table and of JSON Lines, as one canonical text --------------------------------

using column_list = std::vector<std::pair<std::string, std::string>>;  // name, SQL type

std::string canonical_double(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

column_list columns_of(const pg_server& s, const std::string& table) {
  column_list cols;
  for (auto& r : s.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                         "WHERE attrelid = '" +
                         table + "'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"))
    cols.emplace_back(r[0], r[1]);
  return cols;
}

/// A JSON Lines row as the table's columns in order, tab-separated: timestamps as epoch
/// microseconds, doubles in shortest form (from the text with strtod: Boost.JSON 1.81 may be an
/// ulp off; the key's first occurrence, which no string value of the test data contains),
/// booleans t/f, NULL and absent keys as \N.
std::string canonical_row(const std::string& text, const column_list& cols) {
  const json::object o = parse_object(text);
  std::string line;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) line += '\t';
    const json::value* v = o.if_contains(cols[i].first);
    const std::string& type = cols[i].second;
    if (v == nullptr || v->is_null()) {
      line += "\\N";
    } else if (type == "timestamp with time zone") {
      line += std::to_string(parse_iso_timestamp(v->as_string().c_str())->micros);
    } else if (type == "double precision") {
      const std::string key = "\"" + cols[i].first + "\":";
      line += canonical_double(std::strtod(text.c_str() + text.find(key) + key.size(), nullptr));
    } else if (type == "boolean") {
      line += v->as_bool() ? "t" : "f";
    } else if (type == "bigint") {
      line += std::to_string(v->as_int64());
    } else {
      line += std::string(v->as_string());
    }
  }
  return line;
}

/// The table's rows in canonical_row's text.
std::vector<std::string> table_rows(const pg_server& s, const std::string& table,
                                    const column_list& cols) {
  std::string select;
  for (const auto& [name, type] : cols) {
    if (!select.empty()) select += ", ";
    if (type == "timestamp with time zone")
      select += "(extract(epoch from \"" + name + "\") * 1000000)::bigint";
    else
      select += "\"" + name + "\"";
  }
  std::vector<std::string> out;
  for (const auto& r : s.query("SELECT " + select + " FROM " + table)) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) line += '\t';
      if (cols[i].second == "double precision" && r[i] != "\\N")
        line += canonical_double(std::strtod(r[i].c_str(), nullptr));
      else
        line += r[i];
    }
    out.push_back(std::move(line));
  }
  return out;
}

/// Multiset difference a - b (sorted inputs), at most 3 shown; the count in `n`.
std::vector<std::string> missing(const std::vector<std::string>& a,
                                 const std::vector<std::string>& b, size_t* n) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  *n = out.size();
  if (out.size() > 3) out.resize(3);
  return out;
}

// ---- the shared broker, server and references ------------------------------------------------

struct shared_input {
  std::unique_ptr<temp_dir> dir;
  std::unique_ptr<child_process> broker;
  std::string bootstrap;
  std::map<int32_t, int64_t> end_offsets;
  std::unique_ptr<pg_server> pg;
  std::string skip;   ///< set when PostgreSQL is missing
  std::string error;  ///< set when building the input failed
  std::map<kind, std::vector<std::string>> references;
  int commands = 0;
};

class cluster_sinks : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (!shared_) return;
    if (shared_->broker) shared_->broker->terminate(10s);
    shared_.reset();
  }

  void SetUp() override {
    if (!shared_) {
      shared_ = std::make_unique<shared_input>();
      shared_->skip = pg_server::missing();
      if (shared_->skip.empty()) shared_->error = build_input();
    }
    if (!shared_->skip.empty()) GTEST_SKIP() << shared_->skip;
    ASSERT_EQ(shared_->error, "") << "building the shared input failed";
    dir_ = std::make_unique<temp_dir>("eddy-cluster-sinks");
  }

  void TearDown() override {
    if (cluster_ && HasFailure())
      std::cerr << "=== " << (watch_ ? watch_->status() : std::string("no manifests watched"))
                << "\n"
                << cluster_->logs_tail();
    cluster_.reset();
    watch_.reset();
    dir_.reset();
  }

  static std::string produce(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"produce", "--bootstrap", shared_->bootstrap, "--topic",
                                     k_topic};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string base = *shared_->dir / ("produce" + std::to_string(++shared_->commands));
    auto r = run_to_end(args, base, 120s);
    if (!r) return "eddy produce timed out";
    if (!r->status.ok()) return "eddy produce: " + r->status.describe() + ": " + r->err;
    return "";
  }

  /// The broker with the topic (data, then one flush record per partition) and the server.
  static std::string build_input() {
    shared_->dir = std::make_unique<temp_dir>("eddy-cluster-sinks-input");
    shared_->pg = std::make_unique<pg_server>();
    if (auto e = shared_->pg->start(); !e.empty()) return "PostgreSQL: " + e;
    shared_->broker = std::make_unique<child_process>(child_process::options{
        .argv = {EDDY_BINARY, "broker", "--topic", k_topic + ":" + std::to_string(k_partitions)},
        .out = redirect::pipe(),
        .err = redirect::file(*shared_->dir / "broker.stderr")});
    auto line = shared_->broker->read_stdout_line(20s);
    if (!line || !line->starts_with("bootstrap="))
      return "no bootstrap line from eddy broker; stderr: " +
             read_text_file(*shared_->dir / "broker.stderr");
    shared_->bootstrap = line->substr(std::string_view("bootstrap=").size());
    if (auto e = produce({"--count", std::to_string(k_events), "--disorder-ms", "3000",
                          "--bad-ratio", "0.01", "--seed", "12"});
        !e.empty())
      return e;
    for (int p = 0; p < k_partitions; ++p)
      if (auto e = produce({"--count", "1", "--partition", std::to_string(p), "--start-time-us",
                            std::to_string(k_flush_us), "--bad-ratio", "0", "--seed",
                            std::to_string(2000 + p)});
          !e.empty())
        return e;
    std::string err;
    auto consumer = kafka_consumer::create(shared_->bootstrap, "cluster-sinks-offsets", {}, &err);
    if (!consumer) return "kafka consumer: " + err;
    for (int32_t p : consumer->partitions(k_topic, 10000, &err)) {
      int64_t lo = 0, hi = 0;
      if (!consumer->watermarks(k_topic, p, &lo, &hi, 10000, &err)) return "watermarks: " + err;
      shared_->end_offsets[p] = hi;
    }
    if (shared_->end_offsets.size() != static_cast<size_t>(k_partitions))
      return "expected " + std::to_string(k_partitions) + " partitions: " + err;
    return "";
  }

  /// `eddy run --exit-at-end` into a file sink: its rows (computed once per kind).
  static const std::vector<std::string>* reference(kind k) {
    if (auto it = shared_->references.find(k); it != shared_->references.end()) return &it->second;
    const std::string tag = k == kind::windowed ? "windowed" : "cleaned";
    const fs::path base = *shared_->dir / ("ref-" + tag);
    const run_paths p{base / "out", base / "dead", base / "checkpoints"};
    fs::create_directories(base);
    const std::string config = (base / "pipeline.toml").string();
    write_text_file(config, pipeline_toml(k, "ref_" + tag, shared_->bootstrap, p, 0));
    const auto t0 = steady::now();
    auto r = run_to_end({"run", "-c", config, "--exit-at-end"}, (base / "run").string(), 120s);
    if (!r) return nullptr;
    EXPECT_TRUE(r->status.ok()) << "reference " << tag << ": " << r->status.describe()
                                << "; stderr:\n"
                                << r->err;
    if (!r->status.ok()) return nullptr;
    auto rows = published_lines(p.out);
    std::cerr << "reference " << tag << ": " << rows.size() << " rows in " << seconds_since(t0)
              << " s\n";
    return &(shared_->references[k] = std::move(rows));
  }

  // ---- the cluster run -------------------------------------------------------------------------

  /// Coordinator and w1..w3 over pipeline `k` into `table` and `out_topic`; kills w2 (SIGKILL)
  /// once the three committed an epoch together, restarts it, waits until the input is committed
  /// and published. Bounded by 90 s.
  void run_cluster_with_a_kill(kind k, const std::string& name, const std::string& table,
                               const std::string& out_topic) {
    const auto start = steady::now();
    const auto deadline = start + 90s;
    paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
    const std::string config = *dir_ / "pipeline.toml";
    write_text_file(config, pipeline_toml(k, name, shared_->bootstrap, paths_, k_rate,
                                          shared_->pg->dsn(), table, out_topic));
    const std::vector<std::string> env = {k_password_env + "=" + pg_server::password()};
    cluster_ = std::make_unique<test_cluster>(fs::path(*dir_ / "cluster"), EDDY_BINARY, config,
                                              shared_->bootstrap);
    watch_ = std::make_unique<completion_watch>(paths_.checkpoint, shared_->end_offsets);
    ASSERT_TRUE(cluster_->start_coordinator({}, env));
    const std::vector<std::string> three = {"w1", "w2", "w3"};
    for (const auto& w : three) cluster_->start_worker(w, {}, env);

    auto wait = [&](const std::function<bool()>& ok, const std::string& what) {
      for (;;) {
        watch_->poll();
        if (ok()) return true;
        if (steady::now() >= deadline) break;
        std::this_thread::sleep_for(10ms);  // polling files for a condition
      }
      ADD_FAILURE() << what << " within 90 s of the start; " << watch_->status();
      return false;
    };
    auto members_gen = cluster_->wait_for_members(three, deadline);
    ASSERT_TRUE(members_gen) << "the three workers did not all become members";
    ASSERT_TRUE(
        wait([&] { return watch_->first_of_generation_after(*members_gen - 1).has_value(); },
             "no epoch committed by the three workers"));
    const auto a = cluster_->assignment();
    ASSERT_TRUE(a);
    const uint64_t gen_before = test_cluster::generation(*a);
    const int64_t committed = watch_->committed();
    EXPECT_LT(committed, watch_->total()) << "the input was committed before the kill: raise "
                                             "k_events or lower k_rate";
    auto& coord = cluster_->coordinator_log();
    const size_t from = coord.size();
    cluster_->kill9("w2");
    ASSERT_TRUE(coord.wait_for("worker w2 lost", std::min(deadline, steady::now() + 10s), from))
        << "no 'worker w2 lost' within 10 s of kill -9";
    ASSERT_TRUE(wait([&] { return watch_->first_of_generation_after(gen_before).has_value(); },
                     "no epoch committed after w2 was killed"));
    cluster_->start_worker("w2", {}, env);
    ASSERT_TRUE(cluster_->wait_for_members(three, deadline)) << "w2 did not rejoin";
    ASSERT_TRUE(wait([&] { return watch_->done(); },
                     "the input was not committed and published completely"));
    std::cerr << name << ": w2 killed with " << committed << " of " << watch_->total()
              << " input records committed; done after " << seconds_since(start) << " s\n";
  }

  /// The reference rows to compare with: all of them, or, windowed, those of windows ending at
  /// or before the flush time (a streaming cluster never closes the flush records' windows).
  std::vector<std::string> expected_rows(kind k) {
    const auto* ref = reference(k);
    if (!ref) return {};
    if (k == kind::cleaned) return *ref;
    const auto cut = split_at_window_end(*ref, k_flush_us);
    EXPECT_TRUE(cut.bad.empty());
    return cut.kept;
  }

  /// The cluster's file sink output equals the reference (if not, the sinks cannot either).
  void expect_file_output_equal(kind k, const std::vector<std::string>& want) {
    auto rows = published_lines(paths_.out);
    if (k == kind::windowed) rows = split_at_window_end(rows, k_flush_us).kept;
    const row_diff d = compare_rows(want, rows, 0.0);
    EXPECT_TRUE(d.equal()) << d.describe("the cluster's file sink rows");
  }

  /// The table's rows equal `want` exactly (as canonical text; windowed: no row after the cut).
  void expect_table_equal(kind k, const std::string& table, const std::vector<std::string>& want) {
    column_list cols;
    try {
      cols = columns_of(*shared_->pg, table);
    } catch (const std::exception& e) {
      FAIL() << "table " << table << ": " << e.what();
    }
    ASSERT_FALSE(cols.empty()) << "table " << table << " has no columns";
    std::vector<std::string> expected;
    for (const auto& l : want) expected.push_back(canonical_row(l, cols));
    std::vector<std::string> got = table_rows(*shared_->pg, table, cols);
    if (k == kind::windowed) {
      const auto after =
          shared_->pg->query("SELECT count(*) FROM " + table + " WHERE window_end > to_timestamp(" +
                             std::to_string(k_flush_us / 1000000) + ")");
      EXPECT_EQ(after.at(0).at(0), "0") << "rows of windows after the flush time in " << table;
    }
    std::sort(expected.begin(), expected.end());
    std::sort(got.begin(), got.end());
    size_t n_missing = 0, n_extra = 0;
    const auto m = missing(expected, got, &n_missing);
    const auto x = missing(got, expected, &n_extra);
    EXPECT_EQ(got.size(), expected.size()) << "rows in table " << table;
    EXPECT_EQ(m, std::vector<std::string>{}) << n_missing << " rows missing from " << table;
    EXPECT_EQ(x, std::vector<std::string>{}) << n_extra << " rows extra (or twice) in " << table;
    std::cerr << "table " << table << ": " << got.size() << " rows compared\n";
  }

  /// The topic's records equal `want` exactly, each (unit, epoch, seq) once.
  void expect_topic_equal(kind k, const std::string& topic, const std::string& pipeline,
                          const std::vector<std::string>& want) {
    const auto records = read_topic(shared_->bootstrap, topic);
    std::set<std::tuple<std::string, uint64_t, uint64_t>> origins;
    int without = 0, twice = 0, foreign = 0;
    std::vector<std::string> values;
    for (const auto& r : records) {
      values.push_back(r.value);
      if (!r.origin) {
        ++without;
        continue;
      }
      foreign += r.origin->pipeline != pipeline;
      twice += !origins.emplace(r.origin->unit, r.origin->epoch, r.origin->seq).second;
    }
    EXPECT_EQ(without, 0) << "records without origin headers";
    EXPECT_EQ(foreign, 0) << "records naming another pipeline";
    EXPECT_EQ(twice, 0) << "(unit, epoch, seq) delivered more than once";
    if (k == kind::windowed) {
      const auto cut = split_at_window_end(values, k_flush_us);
      EXPECT_TRUE(cut.after.empty()) << cut.after.size() << " records of windows after the flush";
      values = cut.kept;
    }
    const row_diff d = compare_rows(want, values, 0.0);
    EXPECT_TRUE(d.equal()) << d.describe("records in topic " + topic);
    std::cerr << "topic " << topic << ": " << records.size() << " records compared\n";
  }

  static inline std::unique_ptr<shared_input> shared_;
  std::unique_ptr<temp_dir> dir_;
  run_paths paths_;
  std::unique_ptr<test_cluster> cluster_;
  std::unique_ptr<completion_watch> watch_;
};

TEST_F(cluster_sinks, windowed_upsert_table_and_kafka_topic_equal_the_reference_after_a_kill9) {
  const auto want = expected_rows(kind::windowed);
  ASSERT_GT(want.size(), 500u);
  ASSERT_NO_FATAL_FAILURE(
      run_cluster_with_a_kill(kind::windowed, "cs_windowed", "win_upsert", "out_windowed"));
  cluster_->stop_all();  // nothing is delivered after this point
  expect_file_output_equal(kind::windowed, want);
  expect_table_equal(kind::windowed, "win_upsert", want);
  expect_topic_equal(kind::windowed, "out_windowed", "cs_windowed", want);
}

TEST_F(cluster_sinks, cleaned_append_table_and_kafka_topic_equal_the_reference_after_a_kill9) {
  const auto want = expected_rows(kind::cleaned);
  ASSERT_GT(want.size(), size_t{k_events / 2});
  ASSERT_NO_FATAL_FAILURE(
      run_cluster_with_a_kill(kind::cleaned, "cs_cleaned", "cleaned_append", "out_cleaned"));
  cluster_->stop_all();
  expect_file_output_equal(kind::cleaned, want);
  expect_table_equal(kind::cleaned, "cleaned_append", want);
  expect_topic_equal(kind::cleaned, "out_cleaned", "cs_cleaned", want);
}

/// `eddy run --as-cluster` (the coordinator and its worker in one process) killed with SIGKILL
/// at random moments, 8 times, then run to the end: the append table and the topic equal the
/// reference, no row twice — a coordinator that dies while delivering to PostgreSQL or Kafka
/// delivers again on its next start, and the progress rows and the read-back skip what arrived.
TEST_F(cluster_sinks,
       cleaned_append_table_and_topic_stay_exact_through_kill9s_of_eddy_run_as_cluster) {
  const auto want = expected_rows(kind::cleaned);
  ASSERT_GT(want.size(), size_t{k_events / 2});
  paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
  const std::string name = "cs_as_cluster", table = "as_cluster_append", topic = "out_as_cluster";
  const std::string config = *dir_ / "pipeline.toml";
  // One worker reads at 3 x k_rate: the input takes ~5 s, the kills come within it.
  write_text_file(config, pipeline_toml(kind::cleaned, name, shared_->bootstrap, paths_, 3 * k_rate,
                                        shared_->pg->dsn(), table, topic));
  const std::vector<std::string> env = {k_password_env + "=" + pg_server::password()};
  std::mt19937_64 rng(20261203);
  int restored = 0;
  for (int kill = 1; kill <= 8; ++kill) {
    const std::string log = *dir_ / ("run" + std::to_string(kill) + ".stderr");
    child_process run({.argv = {EDDY_BINARY, "run", "-c", config, "--as-cluster"},
                       .err = redirect::file(log),
                       .env = env});
    const auto alive = std::chrono::milliseconds(300 + rng() % 1200);
    auto early = run.wait_for(alive);
    ASSERT_FALSE(early) << "eddy run --as-cluster ended by itself: " << early->describe() << "\n"
                        << read_text_file(log);
    run.send_signal(SIGKILL);
    ASSERT_TRUE(run.wait_for(10s));
    restored += read_text_file(log).find("restored from epoch") != std::string::npos;
  }
  EXPECT_GE(restored, 4) << "fewer than 4 of the 8 runs restored a committed epoch";
  std::string err;
  const auto epochs = manifest_epochs(paths_.checkpoint);
  ASSERT_FALSE(epochs.empty());
  const auto newest = read_manifest(paths_.checkpoint, epochs.back(), &err);
  ASSERT_TRUE(newest) << err;
  int64_t total = 0;
  for (const auto& [_, e] : shared_->end_offsets) total += e;
  EXPECT_LT(committed_records(*newest, shared_->end_offsets), total)
      << "the input was committed before the last kill";
  child_process last({.argv = {EDDY_BINARY, "run", "-c", config, "--as-cluster", "--exit-at-end"},
                      .err = redirect::file(*dir_ / "last.stderr"),
                      .env = env});
  auto status = last.wait_for(120s);
  ASSERT_TRUE(status) << "the last run did not end within 120 s";
  ASSERT_TRUE(status->ok()) << status->describe() << read_text_file(*dir_ / "last.stderr");
  expect_file_output_equal(kind::cleaned, want);
  expect_table_equal(kind::cleaned, table, want);
  expect_topic_equal(kind::cleaned, topic, name, want);
}

}  // namespace
}  // namespace eddy::test
