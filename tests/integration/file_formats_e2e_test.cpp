// file_formats_e2e_test.cpp — the file sink's CSV format and dt= sub-folders end to end: `eddy
// broker`, `eddy produce` and `eddy run --exit-at-end` as processes, a windowed pipeline in a
// non-UTC zone whose windows straddle local midnight, written twice by one run: as CSV by date of
// window_start, and as plain JSON Lines (the reference). Checks the published tree, a header per
// file, the folder of every row, that both sinks hold the same rows, and the start-up lines.
//
// Every test gets its own temporary directory and broker and bounds every wait with a timeout.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/csv.hpp"
#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

/// Midnight of 2025-11-07 in Asia/Kolkata (+05:30) is 2025-11-06T18:30:00Z; the events (1 ms
/// apart, 6 s in all) start 3 s before it, so the 1-minute windows fall on both sides.
constexpr int64_t k_local_midnight_us = 1762453800LL * 1'000'000;
constexpr int64_t k_start_us = k_local_midnight_us - 3LL * 1'000'000;
constexpr int k_count = 6000;

const std::vector<std::string> k_columns = {"window_start", "window_end", "vehicle_type",
                                            "bookings", "avg_booking_value"};

std::string pipeline_toml(const std::string& topic, const fs::path& csv_out,
                          const fs::path& jsonl_out, const fs::path& dead,
                          const std::string& checkpoint, const std::string& window = "1m",
                          int rate = 4000) {
  std::string t =
      "[pipeline]\nname = \"formats\"\ntimezone = \"Asia/Kolkata\"\ntrigger_interval_ms = 100\n"
      // Results in steps of 3 rows (part files), input over ~1.5 s (several epochs).
      "max_rows_per_batch = 3\n"
      "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
      topic + "\"\nformat = \"auto\"\nmax_records_per_second = " + std::to_string(rate) + "\n" +
      ride_fields_toml(false) +
      "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
      "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
      "\n[[aggregates]]\nalias = \"avg_booking_value\"\nfunction = \"avg\"\n"
      "field = \"booking_value\"\n"
      "\n[aggregate]\ngroup_by = [\"vehicle_type\"]\nshards = 2\n"
      "\n[window]\ntype = \"tumbling\"\nsize = \"" +
      window +
      "\"\ntime_field = \"created_at_ts\"\n"
      "max_out_of_orderness = \"1s\"\n"
      "\n[[sinks]]\ntype = \"file\"\npath = \"" +
      csv_out.string() +
      "\"\nformat = \"csv\"\npartition_by = \"window_start\"\n"
      "\n[[sinks]]\ntype = \"file\"\npath = \"" +
      jsonl_out.string() + "\"\n\n[dead_letter]\npath = \"" + dead.string() + "\"\n";
  if (!checkpoint.empty()) t += "\n[checkpoint]\n" + checkpoint;
  return t;
}

/// A JSON value as the CSV sink writes it (same text for strings, ints and ISO timestamps;
/// doubles compared as numbers by the caller).
csv_field csv_text_of(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return std::string(v.as_string());
  return json::serialize(v);
}

/// Rows of a JSON Lines directory, as CSV-comparable records in `k_columns` order, sorted.
/// Doubles are written with the same shortest round-trip text in both formats, which
/// json::serialize does not reproduce: they are re-read from the line's own text.
std::vector<std::string> jsonl_records(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& f : jsonl_files(dir, "part-")) {
    for (const auto& line : split_lines(read_text_file(f))) {
      const json::object o = parse_object(line);
      csv_record r;
      for (const auto& c : k_columns) {
        const json::value& v = o.at(c);
        if (v.is_double()) {
          // The raw number text after "<column>":
          const std::string key = "\"" + c + "\":";
          const size_t at = line.find(key) + key.size();
          r.push_back(line.substr(at, line.find_first_of(",}", at) - at));
        } else {
          r.push_back(csv_text_of(v));
        }
      }
      out.push_back(record_text(r));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Reads a published CSV tree (dt=YYYY-MM-DD folders only, each holding part files named as
/// with or without checkpoints, each with the header and at least one row whose window_start
/// names its folder): its records, sorted, and the number of files per folder.
void read_csv_tree(const fs::path& csv_out, bool checkpointed, std::vector<std::string>* csv_rows,
                   std::map<std::string, int>* files_per_folder) {
  const std::regex part_name(checkpointed ? R"(part-\d{10}(-\d{5})?\.csv)"
                                          : R"(part-\d{8}-\d+-\d+\.csv)");
  for (const auto& e : fs::directory_iterator(csv_out)) {
    const std::string folder = e.path().filename().string();
    if (folder == "_staging") continue;  // not published (the callers check it is gone)
    ASSERT_TRUE(e.is_directory()) << "a file outside the dt= folders: " << e.path();
    ASSERT_TRUE(folder == "dt=2025-11-06" || folder == "dt=2025-11-07") << folder;
    for (const auto& f : fs::directory_iterator(e.path())) {
      const std::string name = f.path().filename().string();
      EXPECT_TRUE(std::regex_match(name, part_name)) << folder << "/" << name;
      ++(*files_per_folder)[folder];
      const auto records = parse_csv(read_text_file(f.path()));
      ASSERT_GE(records.size(), 2u) << "a header and at least one row: " << f.path();
      EXPECT_EQ(records[0], csv_record(k_columns.begin(), k_columns.end())) << f.path();
      for (size_t i = 1; i < records.size(); ++i) {
        const csv_record& r = records[i];
        ASSERT_EQ(r.size(), k_columns.size()) << f.path();
        ASSERT_TRUE(r[0].has_value());
        // window_start's local date names the folder; the text is in the pipeline's zone.
        EXPECT_EQ("dt=" + r[0]->substr(0, 10), folder) << *r[0];
        EXPECT_TRUE(r[0]->ends_with("+05:30")) << *r[0];
        csv_rows->push_back(record_text(r));
      }
    }
  }
  std::sort(csv_rows->begin(), csv_rows->end());
}

class file_formats_e2e : public eddy_fixture {
 protected:
  file_formats_e2e() : eddy_fixture("eddy-file-formats") {}

  /// Produces the topic, runs the pipeline to the end and checks the CSV tree against the JSON
  /// Lines copy; `checkpoint` is the [checkpoint] table's body ("" = none).
  void run_and_check(const std::string& checkpoint, const std::string& guarantee) {
    const std::string topic = "rides_formats";
    ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":3"));
    auto produced =
        produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format", "unwrapped",
                      "--seed", "11", "--start-time-us", std::to_string(k_start_us)});
    ASSERT_TRUE(produced.has_value());
    ASSERT_EQ(int_at(*produced, "produced"), k_count);

    const fs::path csv_out = dir_ / "by-day", jsonl_out = dir_ / "plain", dead = dir_ / "dead";
    const std::string config = dir_ / "pipeline.toml";
    write_text_file(config, pipeline_toml(topic, csv_out, jsonl_out, dead, checkpoint));
    auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end"});
    ASSERT_TRUE(run.has_value());
    ASSERT_TRUE(run->status.ok()) << run->status.describe() << "; stderr: " << run->err;

    // The start-up lines (README, "Checkpoints and recovery").
    const std::vector<std::string> err_lines = split_lines(run->err);
    const std::string line1 =
        "eddy: sink 1: file " + csv_out.string() + "/ (csv, by dt of window_start): " + guarantee;
    const std::string line2 =
        "eddy: sink 2: file " + jsonl_out.string() + "/ (jsonl): " + guarantee;
    EXPECT_NE(std::find(err_lines.begin(), err_lines.end(), line1), err_lines.end())
        << "want: " << line1 << "\nstderr: " << run->err;
    EXPECT_NE(std::find(err_lines.begin(), err_lines.end(), line2), err_lines.end())
        << "want: " << line2 << "\nstderr: " << run->err;

    // The tree: dt=YYYY-MM-DD folders only, each holding part files.
    std::map<std::string, int> files_per_folder;
    std::vector<std::string> csv_rows;
    ASSERT_NO_FATAL_FAILURE(
        read_csv_tree(csv_out, !checkpoint.empty(), &csv_rows, &files_per_folder));
    EXPECT_EQ(files_per_folder.size(), 2u) << "windows on both sides of local midnight";
    for (const auto& [folder, n] : files_per_folder)
      EXPECT_GE(n, 2) << folder << ": rows in steps of 3 make several files";
    EXPECT_FALSE(fs::exists(csv_out / "_staging"));

    // The same rows as the JSON Lines sink of the same run.
    const std::vector<std::string> reference = jsonl_records(jsonl_out);
    ASSERT_GT(reference.size(), 4u);
    EXPECT_EQ(csv_rows.size(), reference.size());
    EXPECT_TRUE(csv_rows == reference) << "CSV rows differ from the JSON Lines rows";
  }
};

TEST_F(file_formats_e2e, a_windowed_run_writes_csv_by_local_date_exactly_once_per_epoch) {
  run_and_check("dir = \"" + (dir_ / "checkpoints") + "\"\ninterval = \"200ms\"\n",
                "exactly-once (staged per epoch, published on commit)");
}

/// The crash test for CSV in dt= folders (as checkpoint_recovery's for JSON Lines): SIGKILLs at
/// random times and at the protocol points (an epoch staged; between two renames of a publish,
/// which here spans folders; right after a publish), each run restarting from the checkpoints,
/// then a run to the end. 1-second windows close while the input flows (800 records/s: ~7.5 s
/// of it), so rows are staged and published between kills. The published tree must hold exactly the
/// rows of an uninterrupted run, in the same folders: no row twice, none missing, no file
/// half-written at any kill.
TEST_F(file_formats_e2e, csv_by_date_after_repeated_sigkills_equals_an_uninterrupted_run) {
  const std::string topic = "rides_formats";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":3"));
  ASSERT_TRUE(
      produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format", "unwrapped",
                    "--seed", "11", "--start-time-us", std::to_string(k_start_us)})
          .has_value());
  auto config_in = [&](const std::string& name) {
    const fs::path d = fs::path(dir_ / name);
    const std::string config = d / "pipeline.toml";
    fs::create_directories(d);
    write_text_file(config, pipeline_toml(topic, d / "by-day", d / "plain", d / "dead",
                                          "dir = \"" + (d / "checkpoints").string() +
                                              "\"\ninterval = \"150ms\"\nsync = false\n",
                                          "1s", 800));
    return config;
  };
  // The reference: one uninterrupted run.
  const std::string reference_config = config_in("reference");
  auto ref =
      run_eddy({"run", "-c", reference_config, "--bootstrap", bootstrap_, "--exit-at-end"}, 120s);
  ASSERT_TRUE(ref.has_value());
  ASSERT_TRUE(ref->status.ok()) << ref->status.describe() << "; stderr: " << ref->err;
  std::vector<std::string> reference;
  std::map<std::string, int> ref_files;
  ASSERT_NO_FATAL_FAILURE(
      read_csv_tree(fs::path(dir_ / "reference") / "by-day", true, &reference, &ref_files));
  ASSERT_GT(reference.size(), 4u);

  const std::string config = config_in("crashed");
  const fs::path csv_out = fs::path(dir_ / "crashed") / "by-day";
  uint64_t seed = 20261203;
  if (const char* e = std::getenv("EDDY_CRASH_SEED")) seed = std::strtoull(e, nullptr, 10);
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("EDDY_CRASH_SEED=" + std::to_string(seed));
  const char* points[] = {"stage", "publish", "published"};
  int kills = 0;
  for (int i = 0; i < 12; ++i) {
    std::vector<std::string> env;
    std::chrono::milliseconds deadline;
    if (i % 2 == 1) {
      env.push_back(std::string("EDDY_CRASH_AT=") + points[(i / 2) % 3] + ":" +
                    std::to_string(std::uniform_int_distribution<int>(1, 3)(rng)));
      deadline = 10s;  // it gets there within a few epochs while input flows
    } else {
      deadline = std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 900)(rng));
    }
    const std::string base = dir_ / ("crash" + std::to_string(i));
    child_process proc({.argv = {EDDY_BINARY, "run", "-c", config, "--bootstrap", bootstrap_},
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr"),
                        .env = env});
    auto status = proc.wait_for(deadline);
    if (!status) {
      proc.send_signal(SIGKILL);
      status = proc.wait_for(10s);
      ASSERT_TRUE(status.has_value());
    }
    ASSERT_FALSE(status->exited) << "run " << i << " ended by itself: " << status->describe()
                                 << "; stderr: " << read_text_file(base + ".stderr");
    ASSERT_EQ(status->signal, SIGKILL) << read_text_file(base + ".stderr");
    ++kills;
    // Nothing half-written is ever visible: every published file parses, with its header.
    if (fs::exists(csv_out)) {
      std::vector<std::string> seen;
      std::map<std::string, int> files;
      ASSERT_NO_FATAL_FAILURE(read_csv_tree(csv_out, true, &seen, &files)) << "after kill " << i;
      std::cerr << "kill " << i << (env.empty() ? " (random)" : " (" + env[0] + ")") << ": "
                << seen.size() << " rows published\n";
    }
  }
  auto last = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end"}, 120s);
  ASSERT_TRUE(last.has_value());
  ASSERT_TRUE(last->status.ok()) << last->status.describe() << "; stderr: " << last->err;
  std::vector<std::string> rows;
  std::map<std::string, int> files;
  ASSERT_NO_FATAL_FAILURE(read_csv_tree(csv_out, true, &rows, &files));
  EXPECT_FALSE(fs::exists(csv_out / "_staging"));
  EXPECT_EQ(kills, 12);
  EXPECT_EQ(rows.size(), reference.size());
  std::vector<std::string> missing, extra;
  std::set_difference(reference.begin(), reference.end(), rows.begin(), rows.end(),
                      std::back_inserter(missing));
  std::set_difference(rows.begin(), rows.end(), reference.begin(), reference.end(),
                      std::back_inserter(extra));
  EXPECT_TRUE(missing.empty()) << missing.size() << " row(s) missing, e.g. " << missing.front();
  EXPECT_TRUE(extra.empty()) << extra.size() << " row(s) too many (twice?), e.g. " << extra.front();
}

TEST_F(file_formats_e2e, without_checkpoints_each_batch_writes_one_csv_file_per_folder) {
  run_and_check("",
                "per batch, no checkpoints: each file appears whole (written, then renamed); a "
                "run after a crash starts over at the earliest offsets, so rows written before "
                "are written again (at-least-once)");
}

}  // namespace
}  // namespace eddy::test
