// kafka_exactly_once_test.cpp — the Kafka sink through `eddy run`, as processes.
//
// * A windowed and a cleaned-row pipeline, each with a file sink and a Kafka sink, run to the end
//   with checkpoints: the topic holds exactly the file sink's rows, each once, every record with
//   its origin headers and a distinct (unit, sequence).
// * Crash test: a cleaned-row pipeline writing to Kafka is killed with SIGKILL again and again
//   (random moments, and protocol points: mid-delivery of a staged file with half its records
//   acknowledged, after staging, during a checkpoint, right after a publish with that epoch's
//   state then damaged) and restarted on the same checkpoint directory; read back, every
//   (unit, epoch, sequence) is in the topic exactly once and the rows equal an uninterrupted
//   run's. Seeded: EDDY_CRASH_SEED reproduces a run.
// (A broker outage while publishing is tested in tests/unit/kafka_sink_test.cpp, where the
// development broker's brokers can be taken down and up.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/kafka_read.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string file_sink(const fs::path& out) {
  return "\n[[sinks]]\ntype = \"file\"\npath = \"" + out.string() + "\"\n";
}

std::string kafka_sink(const std::string& topic) {
  return "\n[[sinks]]\ntype = \"kafka\"\ntopic = \"" + topic + "\"\n";
}

/// A windowed pipeline (exact aggregates only) with `sinks`.
std::string windowed_toml(const std::string& topic, const std::string& sinks, const fs::path& dead,
                          const fs::path& cp) {
  return "[pipeline]\nname = \"kwin\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
         "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
         topic + "\"\nformat = \"auto\"\n" + ride_fields_toml(false) +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
         "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
         "\n[[aggregates]]\nalias = \"max_ride_distance\"\nfunction = \"max\"\n"
         "field = \"ride_distance\"\n"
         "\n[aggregate]\ngroup_by = [\"vehicle_type\", \"pickup_location\"]\nshards = 3\n"
         "\n[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"created_at_ts\"\n"
         "max_out_of_orderness = \"2s\"\nemit = \"on_close\"\n" +
         sinks + "\n[dead_letter]\npath = \"" + dead.string() + "\"\n\n[checkpoint]\ndir = \"" +
         cp.string() + "\"\ninterval = \"200ms\"\nsync = false\n";
}

/// A cleaned-row pipeline (partition, offset and id of every row) with `sinks`, in parts of
/// 100 rows; `extra_source` lands in [source].
std::string plain_toml(const std::string& topic, const std::string& sinks, const fs::path& dead,
                       const fs::path& cp, const std::string& extra_source = "") {
  return "[pipeline]\nname = \"kplain\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
         "max_rows_per_batch = 100\n\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
         topic + "\"\nformat = \"auto\"\n" + extra_source +
         "\n[[fields]]\nname = \"kafka_partition\"\ncolumn = \"$partition\"\ntype = \"int\"\n"
         "\n[[fields]]\nname = \"kafka_offset\"\ncolumn = \"$offset\"\ntype = \"int\"\n"
         "\n[[fields]]\nname = \"id\"\ncolumn = \"id\"\ntype = \"int\"\nrequired = true\n" +
         sinks + "\n[dead_letter]\npath = \"" + dead.string() + "\"\n\n[checkpoint]\ndir = \"" +
         cp.string() + "\"\ninterval = \"150ms\"\nsync = false\n";
}

std::vector<std::string> sorted_file_rows(const fs::path& dir) {
  std::vector<std::string> lines;
  for (const auto& f : jsonl_files(dir, "part-"))
    for (auto& l : split_lines(read_text_file(f))) lines.push_back(std::move(l));
  std::sort(lines.begin(), lines.end());
  return lines;
}

/// The values of `records`, sorted; fails the test for a record without origin headers or an
/// (unit, epoch, sequence) seen twice.
std::vector<std::string> checked_values(const std::vector<read_record>& records,
                                        const std::string& pipeline) {
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
  std::sort(values.begin(), values.end());
  return values;
}

/// Lines of `a` missing from `b` (multiset difference), at most 3.
std::vector<std::string> missing(const std::vector<std::string>& a,
                                 const std::vector<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  if (out.size() > 3) out.resize(3);
  return out;
}

class kafka_exactly_once : public eddy_fixture {
 protected:
  kafka_exactly_once() : eddy_fixture("eddy-kafka-eo") {}

  std::vector<std::string> run_args(const std::string& config) {
    return {EDDY_BINARY, "run", "-c", config, "--bootstrap", bootstrap_};
  }

  void run_to_end(const std::string& config, std::string* err = nullptr) {
    auto r = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end"}, 120s);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
    if (err) *err = r->err;
  }
};

TEST_F(kafka_exactly_once, windowed_and_cleaned_rows_in_the_topic_equal_the_file_sinks_output) {
  const std::string topic = "rides_kafka_e2e";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", "20000", "--format", "unwrapped",
                            "--disorder-ms", "3000", "--seed", "11"})
                  .has_value());
  struct variant {
    std::string name, pipeline;
    bool windowed;
  };
  for (const variant& v : {variant{"win", "kwin", true}, variant{"plain", "kplain", false}}) {
    SCOPED_TRACE(v.name);
    const std::string out_topic = "out_" + v.name;
    const std::string sinks = file_sink(dir_ / (v.name + "-out")) + kafka_sink(out_topic);
    const std::string config = dir_ / (v.name + ".toml");
    write_text_file(
        config,
        v.windowed ? windowed_toml(topic, sinks, dir_ / (v.name + "-dead"), dir_ / (v.name + "-cp"))
                   : plain_toml(topic, sinks, dir_ / (v.name + "-dead"), dir_ / (v.name + "-cp")));
    std::string err;
    ASSERT_NO_FATAL_FAILURE(run_to_end(config, &err));
    const auto file_rows = sorted_file_rows(dir_ / (v.name + "-out"));
    ASSERT_GT(file_rows.size(), v.windowed ? 100u : 19000u);
    const auto records = read_topic(bootstrap_, out_topic);
    const auto values = checked_values(records, v.pipeline);
    EXPECT_EQ(values.size(), file_rows.size());
    EXPECT_EQ(missing(file_rows, values), std::vector<std::string>{}) << "rows missing";
    EXPECT_EQ(missing(values, file_rows), std::vector<std::string>{}) << "rows extra";
    // Keys: window bounds + group keys for results, the id for cleaned rows (default `key`).
    ASSERT_FALSE(records.empty());
    EXPECT_TRUE(records[0].key.starts_with(v.windowed ? "{\"window_start\":" : "{\"id\":"))
        << records[0].key;
    // Nothing left staged.
    EXPECT_FALSE(fs::exists(dir_ / (v.name + "-cp/sinks/kafka-1/_staging")));
  }
}

TEST_F(kafka_exactly_once, after_repeated_sigkills_every_row_is_in_the_topic_exactly_once) {
  const std::string topic = "rides_kafka_crash";
  constexpr int k_count = 60000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format",
                            "unwrapped", "--seed", "29"})
                  .has_value());
  // The uninterrupted reference: the same pipeline into files.
  const std::string ref_config = dir_ / "ref.toml";
  write_text_file(ref_config, plain_toml(topic, file_sink(dir_ / "ref-out"), dir_ / "ref-dead",
                                         dir_ / "ref-cp"));
  ASSERT_NO_FATAL_FAILURE(run_to_end(ref_config));
  const auto ref_rows = sorted_file_rows(dir_ / "ref-out");
  ASSERT_GT(ref_rows.size(), static_cast<size_t>(k_count) * 9 / 10);  // less the deletes

  const fs::path cp = dir_ / "cp";
  const std::string config = dir_ / "crash.toml";
  write_text_file(config, plain_toml(topic, kafka_sink("crash_out"), dir_ / "dead", cp,
                                     "max_records_per_second = 4000\n"));
  uint64_t seed = 20261207;
  if (const char* s = std::getenv("EDDY_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("EDDY_CRASH_SEED=" + std::to_string(seed));
  std::cerr << "kafka crash test seed: " << seed << " (EDDY_CRASH_SEED reproduces it)\n";
  const char* points[] = {"kafka_publish", "stage", "published", "checkpoint"};
  std::map<std::string, int> kills;
  int total = 0;
  for (int i = 0; i < 22; ++i) {
    std::vector<std::string> env;
    std::string how = "random";
    auto deadline = std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 1200)(rng));
    if (i % 2 == 1) {
      how = points[(i / 2) % 4];
      env.push_back("EDDY_CRASH_AT=" + how + ":" +
                    std::to_string(std::uniform_int_distribution<int>(1, 3)(rng)));
      deadline = 10s;
    }
    const std::string base = dir_ / ("crash" + std::to_string(i));
    child_process proc({.argv = run_args(config),
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr"),
                        .env = env});
    auto status = proc.wait_for(deadline);
    if (!status) {
      how = "random";
      proc.send_signal(SIGKILL);
      status = proc.wait_for(10s);
      ASSERT_TRUE(status.has_value());
    }
    ASSERT_FALSE(status->exited) << "run " << i << " (" << how
                                 << ") ended by itself: " << status->describe()
                                 << "; stderr: " << read_text_file(base + ".stderr");
    ASSERT_EQ(status->signal, SIGKILL) << read_text_file(base + ".stderr");
    ++kills[how];
    ++total;
    if (how == "published") {
      // Its state is damaged: the next run falls back past a published epoch and replays it.
      std::vector<uint64_t> epochs;
      for (const auto& e : fs::directory_iterator(cp / "epochs"))
        if (const std::string n = e.path().filename().string();
            fs::exists(e.path() / "manifest.json") &&
            n.find_first_not_of("0123456789") == std::string::npos)
          epochs.push_back(std::stoull(n));
      ASSERT_FALSE(epochs.empty());
      // With only one complete epoch there is nothing to fall back to: eddy would rightly refuse
      // to start (it never starts over silently), so only a later epoch is damaged.
      if (epochs.size() < 2) continue;
      const fs::path current = cp / "epochs" /
                               std::to_string(*std::max_element(epochs.begin(), epochs.end())) /
                               "db/CURRENT";
      std::fstream io(current, std::ios::in | std::ios::out | std::ios::binary);
      char c = 0;
      io.read(&c, 1);
      io.seekp(0);
      c = static_cast<char>(c ^ 0x5A);
      io.write(&c, 1);
    }
  }
  EXPECT_GE(total, 20);
  for (const char* p : points) EXPECT_GE(kills[p], 2) << p;

  std::string err;
  ASSERT_NO_FATAL_FAILURE(run_to_end(config, &err));
  const auto values = checked_values(read_topic(bootstrap_, "crash_out"), "kplain");
  EXPECT_EQ(values.size(), ref_rows.size());
  EXPECT_EQ(missing(ref_rows, values), std::vector<std::string>{}) << "rows missing after crashes";
  EXPECT_EQ(missing(values, ref_rows), std::vector<std::string>{}) << "rows extra after crashes";
  EXPECT_FALSE(fs::exists(cp / "sinks/kafka-0/_staging") &&
               !fs::is_empty(cp / "sinks/kafka-0/_staging"));
  // At least one restart found a half-delivered file and completed it.
  bool completed = false;
  for (int i = 0; i < 22; ++i)
    completed = completed || read_text_file(dir_ / ("crash" + std::to_string(i) + ".stderr"))
                                     .find("was partly delivered before") != std::string::npos;
  completed = completed || err.find("was partly delivered before") != std::string::npos;
  EXPECT_TRUE(completed) << "no run ever completed a half-delivered file";
}

}  // namespace
}  // namespace eddy::test
