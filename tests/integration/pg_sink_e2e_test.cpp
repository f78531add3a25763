// pg_sink_e2e_test.cpp — the PostgreSQL sink through `eddy run`, against a throw-away server
// (tests/support/pg_server.hpp; skipped when PostgreSQL's server package is missing).
//
// * Equality: a windowed pipeline (upsert) and a cleaned-row pipeline (append), each writing a
//   file sink and a postgres sink in the same run, with checkpoints (exactly-once path) and
//   without (per batch): the table holds exactly the file sink's rows.
// * Crash: the same pipelines killed with SIGKILL at least 20 times each (at random moments,
//   and right after a staged file's transaction committed but before its staged copy was
//   removed), restarted each time: the final table equals an uninterrupted run's table, no row
//   twice, none missing.
// * Server restart: the server is stopped and started again while a run writes: the run goes
//   on, says so once per outage, and the table equals the file sink's rows.
// * Start: bad credentials end `eddy run` at once, exit 1, one line naming the cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "model/time_format.hpp"
#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string canonical_double(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

/// The rows of the file sink's published files `dir/part-*`, one canonical text per row (the
/// columns of `cols` in order, tab-separated): timestamps as epoch microseconds, doubles in
/// shortest form (read with strtod from the text; the key's first occurrence in the line, which
/// no string value of the test data contains), booleans t/f, NULL as \N. Sorted.
std::vector<std::string> file_rows(const fs::path& dir,
                                   const std::vector<std::pair<std::string, std::string>>& cols) {
  std::vector<std::string> out;
  std::vector<std::string> lines;
  for (const auto& f : jsonl_files(dir, "part-"))
    for (auto& l : split_lines(read_text_file(f))) lines.push_back(std::move(l));
  for (const auto& text : lines) {
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
        // From the text: Boost.JSON 1.81 parses doubles up to 1 ulp off; strtod is exact.
        const std::string key = "\"" + cols[i].first + "\":";
        const size_t at = text.find(key);
        line += canonical_double(std::strtod(text.c_str() + at + key.size(), nullptr));
      } else if (type == "boolean") {
        line += v->as_bool() ? "t" : "f";
      } else if (type == "bigint") {
        line += std::to_string(v->as_int64());
      } else {
        line += std::string(v->as_string());
      }
    }
    out.push_back(std::move(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The table's columns and their types, in order.
std::vector<std::pair<std::string, std::string>> columns_of(const pg_server& s,
                                                            const std::string& table) {
  std::vector<std::pair<std::string, std::string>> cols;
  for (auto& r : s.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                         "WHERE attrelid = '" +
                         table + "'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"))
    cols.emplace_back(r[0], r[1]);
  return cols;
}

/// The table's rows in the same canonical text as file_rows. Sorted.
std::vector<std::string> table_rows(const pg_server& s, const std::string& table) {
  const auto cols = columns_of(s, table);
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
  std::sort(out.begin(), out.end());
  return out;
}

/// Rows of `a` missing from `b` (multiset difference), at most 3.
std::vector<std::string> missing(const std::vector<std::string>& a,
                                 const std::vector<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  if (out.size() > 3) out.resize(3);
  return out;
}

class pg_sink_e2e : public eddy_fixture {
 protected:
  pg_sink_e2e() : eddy_fixture("eddy-pg") {}

  void SetUp() override {
    if (auto why = pg_server::missing(); !why.empty()) GTEST_SKIP() << why;
    auto err = server_.start();
    ASSERT_EQ(err, "") << err;
  }

  std::string pg_sink(const std::string& table, const std::string& mode,
                      const std::string& extra = "") const {
    return "\n[[sinks]]\ntype = \"postgres\"\ndsn = \"" + server_.dsn() +
           "\"\npassword_env = \"EDDY_TEST_PG_PASSWORD\"\ntable = \"" + table + "\"\nmode = \"" +
           mode + "\"\n" + extra;
  }

  /// A windowed pipeline (exact aggregates: count, avg, max by vehicle type and pickup location
  /// over tumbling windows of `size`), writing `sinks`.
  std::string windowed_toml(const std::string& topic, const std::string& sinks,
                            const std::string& rest, const std::string& size = "1m") const {
    return "[pipeline]\nname = \"pgw\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
           "max_rows_per_batch = 40\n\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
           topic + "\"\nformat = \"auto\"\n" + rest + ride_fields_toml(false) +
           "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
           "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
           "\n[[aggregates]]\nalias = \"avg_booking_value\"\nfunction = \"avg\"\n"
           "field = \"booking_value\"\n"
           "\n[[aggregates]]\nalias = \"max_ride_distance\"\nfunction = \"max\"\n"
           "field = \"ride_distance\"\n"
           "\n[aggregate]\ngroup_by = [\"vehicle_type\", \"pickup_location\"]\nshards = 2\n"
           "\n[window]\ntype = \"tumbling\"\nsize = \"" +
           size +
           "\"\ntime_field = \"created_at_ts\"\n"
           "max_out_of_orderness = \"2s\"\nemit = \"on_close\"\n" +
           sinks + "\n[dead_letter]\npath = \"" + (dir_ / "dead") + "\"\n";
  }

  /// A cleaned-row pipeline: every field of every record, its partition and offset.
  std::string cleaned_toml(const std::string& topic, const std::string& sinks,
                           const std::string& rest) const {
    return "[pipeline]\nname = \"pgc\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
           "max_rows_per_batch = 500\n\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
           topic + "\"\nformat = \"auto\"\n" + rest + ride_fields_toml(true) + sinks +
           "\n[dead_letter]\npath = \"" + (dir_ / "dead") + "\"\n";
  }

  std::string file_sink(const std::string& name) const {
    return "\n[[sinks]]\ntype = \"file\"\npath = \"" + (dir_ / name) + "\"\n";
  }

  std::string checkpoint(const std::string& name, const std::string& interval = "200ms") const {
    return "\n[checkpoint]\ndir = \"" + (dir_ / name) + "\"\ninterval = \"" + interval +
           "\"\nsync = false\n";
  }

  std::vector<std::string> args(const std::string& config, bool exit_at_end) const {
    std::vector<std::string> a = {EDDY_BINARY, "run", "-c", config, "--bootstrap", bootstrap_};
    if (exit_at_end) a.push_back("--exit-at-end");
    return a;
  }

  std::vector<std::string> env() const {
    return {"EDDY_TEST_PG_PASSWORD=" + pg_server::password()};
  }

  /// `eddy run --exit-at-end` to its end; its stderr (a test failure when it fails).
  std::string run_to_end(const std::string& config, std::chrono::seconds timeout = 120s) {
    const std::string base = dir_ / ("run" + std::to_string(++runs_));
    child_process proc({.argv = args(config, true),
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr"),
                        .env = env()});
    auto status = proc.wait_for(timeout);
    if (!status) proc.send_signal(SIGKILL);
    EXPECT_TRUE(status && status->ok()) << (status ? status->describe() : "timed out")
                                        << "; stderr: " << read_text_file(base + ".stderr");
    return read_text_file(base + ".stderr");
  }

  void produce(const std::string& topic, int count, int partitions = 3) {
    ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":" + std::to_string(partitions)));
    auto produced = produce_with({"--topic", topic, "--count", std::to_string(count), "--format",
                                  "unwrapped", "--disorder-ms", "3000", "--seed", "17"});
    ASSERT_TRUE(produced.has_value());
  }

  /// Kills `config`'s runs at least `kills` times (at least `min_at_point` of them at
  /// pg_delivered), then runs it to the end.
  void crash_repeatedly(const std::string& config, int kills, uint64_t seed, int min_at_point) {
    std::mt19937_64 rng(seed);
    int killed = 0, at_point = 0;
    for (int i = 0; killed < kills; ++i) {
      std::vector<std::string> e = env();
      std::chrono::milliseconds deadline(std::uniform_int_distribution<int>(300, 1500)(rng));
      // Early on, while input remains (later runs may find nothing left to deliver): right
      // after a transaction committed, before the staged copy is removed.
      const bool point = i % 2 == 1 && i < 12;
      if (point) {
        e.push_back("EDDY_CRASH_AT=pg_delivered:" +
                    std::to_string(std::uniform_int_distribution<int>(1, 2)(rng)));
        deadline = 8s;
      }
      const std::string base = dir_ / ("crash" + std::to_string(i));
      child_process proc({.argv = args(config, false),
                          .out = redirect::file(base + ".stdout"),
                          .err = redirect::file(base + ".stderr"),
                          .env = e});
      auto status = proc.wait_for(deadline);
      if (!status) {
        proc.send_signal(SIGKILL);
        status = proc.wait_for(10s);
        ASSERT_TRUE(status.has_value());
      } else if (point) {
        ++at_point;
      }
      ASSERT_FALSE(status->exited) << "run " << i << " ended by itself: " << status->describe()
                                   << "; stderr: " << read_text_file(base + ".stderr");
      ASSERT_EQ(status->signal, SIGKILL) << read_text_file(base + ".stderr");
      ++killed;
    }
    EXPECT_GE(at_point, min_at_point) << "kills at pg_delivered";
    run_to_end(config);
  }

  pg_server server_;
  int runs_ = 0;
};

TEST_F(pg_sink_e2e, windowed_upsert_and_cleaned_append_equal_the_file_sink) {
  const std::string topic = "rides_pg_eq";
  ASSERT_NO_FATAL_FAILURE(produce(topic, 20000));
  struct variant {
    std::string name;
    bool windowed;
    bool checkpoints;
  };
  for (const variant& v : {variant{"w_cp", true, true}, variant{"c_cp", false, true},
                           variant{"w_nocp", true, false}, variant{"c_nocp", false, false}}) {
    SCOPED_TRACE(v.name);
    const std::string sinks =
        file_sink("out_" + v.name) + pg_sink(v.name, v.windowed ? "upsert" : "append");
    const std::string config = dir_ / (v.name + ".toml");
    std::string text =
        v.windowed ? windowed_toml(topic, sinks, "") : cleaned_toml(topic, sinks, "");
    if (v.checkpoints) text += checkpoint("cp_" + v.name);
    write_text_file(config, text);
    const std::string err = run_to_end(config);
    EXPECT_NE(err.find(v.checkpoints ? "exactly-once" : "at-least-once"), std::string::npos) << err;
    const auto expected = file_rows(dir_ / ("out_" + v.name), columns_of(server_, v.name));
    const auto got = table_rows(server_, v.name);
    ASSERT_GT(expected.size(), v.windowed ? 50u : 19000u);
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_EQ(missing(expected, got), std::vector<std::string>{}) << "rows missing";
    EXPECT_EQ(missing(got, expected), std::vector<std::string>{}) << "rows extra";
  }
  // Upsert made a primary key of the window and group keys (window bounds are never NULL, but
  // the group keys may be: UNIQUE NULLS NOT DISTINCT instead).
  EXPECT_EQ(server_.query("SELECT count(*) FROM pg_index WHERE indrelid = 'w_cp'::regclass AND "
                          "indisunique"),
            (std::vector<std::vector<std::string>>{{"1"}}));
}

TEST_F(pg_sink_e2e, windowed_upsert_after_sigkills_equals_an_uninterrupted_run) {
  const std::string topic = "rides_pg_crash_w";
  ASSERT_NO_FATAL_FAILURE(produce(topic, 20000));
  const std::string ref = dir_ / "ref.toml";
  write_text_file(ref,
                  windowed_toml(topic, pg_sink("ref", "upsert"), "", "10s") + checkpoint("cp_ref"));
  run_to_end(ref);
  const std::string config = dir_ / "crash.toml";
  write_text_file(config, windowed_toml(topic, pg_sink("out", "upsert"),
                                        "max_records_per_second = 3000\n", "10s") +
                              checkpoint("cp", "150ms"));
  ASSERT_NO_FATAL_FAILURE(crash_repeatedly(config, 21, 20261201, 2));
  const auto expected = table_rows(server_, "ref");
  const auto got = table_rows(server_, "out");
  ASSERT_GT(expected.size(), 50u);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_EQ(missing(expected, got), std::vector<std::string>{}) << "rows missing";
  EXPECT_EQ(missing(got, expected), std::vector<std::string>{}) << "rows extra";
  EXPECT_FALSE(fs::exists(dir_ / "cp/sinks/postgres-0/_staging"));
}

TEST_F(pg_sink_e2e, cleaned_append_after_sigkills_equals_an_uninterrupted_run) {
  const std::string topic = "rides_pg_crash_c";
  ASSERT_NO_FATAL_FAILURE(produce(topic, 20000));
  const std::string ref = dir_ / "ref.toml";
  write_text_file(ref, cleaned_toml(topic, pg_sink("ref", "append"), "") + checkpoint("cp_ref"));
  run_to_end(ref);
  const std::string config = dir_ / "crash.toml";
  write_text_file(config,
                  cleaned_toml(topic, pg_sink("out", "append"), "max_records_per_second = 3000\n") +
                      checkpoint("cp", "150ms"));
  ASSERT_NO_FATAL_FAILURE(crash_repeatedly(config, 21, 20261202, 3));
  const auto expected = table_rows(server_, "ref");
  const auto got = table_rows(server_, "out");
  ASSERT_GT(expected.size(), 19000u);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_EQ(missing(expected, got), std::vector<std::string>{}) << "rows missing";
  EXPECT_EQ(missing(got, expected), std::vector<std::string>{}) << "rows twice";
}

TEST_F(pg_sink_e2e, a_server_restart_during_a_run_loses_nothing_and_writes_nothing_twice) {
  const std::string topic = "rides_pg_restart";
  ASSERT_NO_FATAL_FAILURE(produce(topic, 30000));
  const std::string config = dir_ / "restart.toml";
  write_text_file(config, cleaned_toml(topic, file_sink("out") + pg_sink("t", "append"),
                                       "max_records_per_second = 5000\n") +
                              checkpoint("cp"));
  const std::string base = dir_ / "restart";
  child_process proc({.argv = args(config, true),
                      .out = redirect::file(base + ".stdout"),
                      .err = redirect::file(base + ".stderr"),
                      .env = env()});
  // Once rows arrive, stop the server for a while, then start it again.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (server_.query("SELECT count(*) FROM t")[0][0] != "0") break;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(server_.stop("fast"), "");
  std::this_thread::sleep_for(1500ms);  // an outage of known length, not a wait for a condition
  ASSERT_EQ(server_.start_again(), "") << server_.log();
  auto status = proc.wait_for(60s);
  ASSERT_TRUE(status.has_value()) << read_text_file(base + ".stderr");
  const std::string err = read_text_file(base + ".stderr");
  EXPECT_TRUE(status->ok()) << status->describe() << "; stderr: " << err;
  size_t lost = 0, back = 0;
  for (const auto& l : split_lines(err)) {
    if (l.find("lost the connection") != std::string::npos) ++lost;
    if (l.find("back after") != std::string::npos) ++back;
  }
  EXPECT_EQ(lost, 1u) << err;
  EXPECT_EQ(back, 1u) << err;
  const auto expected = file_rows(dir_ / "out", columns_of(server_, "t"));
  const auto got = table_rows(server_, "t");
  ASSERT_GT(expected.size(), 25000u);  // the generator's deletes and tombstones are not rows
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_EQ(missing(expected, got), std::vector<std::string>{}) << "rows missing";
  EXPECT_EQ(missing(got, expected), std::vector<std::string>{}) << "rows twice";
}

TEST_F(pg_sink_e2e, bad_credentials_end_the_run_at_its_start_with_one_line) {
  const std::string topic = "rides_pg_auth";
  ASSERT_NO_FATAL_FAILURE(produce(topic, 100, 1));
  for (bool cp : {false, true}) {
    SCOPED_TRACE(cp ? "with checkpoints" : "without checkpoints");
    const std::string config = dir_ / (cp ? "auth_cp.toml" : "auth.toml");
    write_text_file(config, cleaned_toml(topic, pg_sink("t", "append"), "") +
                                (cp ? checkpoint("cp_auth") : ""));
    const std::string base = dir_ / (cp ? "auth_cp" : "auth");
    child_process proc({.argv = args(config, false),  // would run forever if it started
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr"),
                        .env = {"EDDY_TEST_PG_PASSWORD=not-it"}});
    auto status = proc.wait_for(30s);
    ASSERT_TRUE(status.has_value())
        << "still running; stderr: " << read_text_file(base + ".stderr");
    EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
    const std::string err = read_text_file(base + ".stderr");
    size_t mentions = 0;
    for (const auto& l : split_lines(err))
      if (l.find("password authentication failed") != std::string::npos) ++mentions;
    EXPECT_EQ(mentions, 1u) << err;
    EXPECT_EQ(err.find("not-it"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace eddy::test
