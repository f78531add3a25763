// pipeline_e2e_test.cpp — the eddy binary end to end: `eddy broker`, `eddy produce`, `eddy run`
// and `eddy decode` as separate processes talking over loopback.
//
// Every test gets its own temporary directory and (where it needs one) its own broker, and bounds
// every wait with a timeout; child processes are killed when a test fails half-way.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"
#include "worker/kafka/consumer.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string k_eddy = EDDY_BINARY;
const fs::path k_source_dir = EDDY_SOURCE_DIR;

/// Generous bounds: a healthy run takes well under a second for each of these.

/// The result of a command run to its end.

struct pipeline_file {
  std::string topic;
  std::string format = "auto";
  std::string filter = "op != \"d\"";
  std::string sink_dir;
  std::string dead_letter_dir;
  std::string source_extra = "";  ///< more [source] lines
};

/// A pipeline file with the fields of deploy/pipelines/ncr_ride_bookings.toml plus the Kafka
/// partition and offset of every record, one file sink and a dead-letter directory.
std::string pipeline_toml(const pipeline_file& p) {
  std::string t;
  t += "[pipeline]\nname = \"e2e\"\ntrigger_interval_ms = 100\n\n";
  t += "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n";  // always overridden by --bootstrap
  t += "topic = \"" + p.topic + "\"\nformat = \"" + p.format + "\"\n" + p.source_extra;
  std::string select;
  t += ride_fields_toml(true, &select);
  t += "\n[query]\nfilter = '" + p.filter + "'\nselect = [" + select + "]\n";
  t += "\n[[sinks]]\ntype = \"file\"\npath = \"" + p.sink_dir + "\"\n";
  t += "\n[dead_letter]\npath = \"" + p.dead_letter_dir + "\"\n";
  return t;
}

class eddy_processes : public eddy_fixture {
 protected:
  eddy_processes() : eddy_fixture("eddy-e2e") {}

  /// `eddy produce` into the broker; returns its JSON summary line.
  std::optional<json::object> produce(const std::string& topic, int count,
                                      const std::string& format, double bad_ratio = 0.02) {
    auto summary = produce_with({"--topic", topic, "--count", std::to_string(count), "--format",
                                 format, "--bad-ratio", std::to_string(bad_ratio), "--seed", "7"});
    if (summary) {
      EXPECT_EQ(int_at(*summary, "produced"), count) << json::serialize(*summary);
    }
    return summary;
  }

  std::string write_pipeline(const pipeline_file& p, const std::string& name = "pipeline.toml") {
    const std::string path = dir_ / name;
    write_text_file(path, pipeline_toml(p));
    return path;
  }
};

// ---- 1. a full drain, per message format ---------------------------------------------------

class drain_test : public eddy_processes, public ::testing::WithParamInterface<std::string> {};

TEST_P(drain_test, accounts_for_every_message_exactly_once) {
  const std::string format = GetParam();
  const std::string topic = "rides_" + format;
  constexpr int k_count = 20000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced = produce(topic, k_count, format);
  ASSERT_TRUE(produced.has_value());
  const int64_t tombstones = int_at(*produced, "tombstones");
  const int64_t deletes = int_at(produced->at("ops").as_object(), "d");
  const int64_t bad = int_at(*produced, "bad");
  ASSERT_GT(bad, 0);
  ASSERT_GT(deletes, 0);

  const fs::path out_dir = dir_ / "out";
  const fs::path dead_dir = dir_ / "dead";
  const std::string config = write_pipeline({.topic = topic,
                                             .format = format,
                                             .sink_dir = out_dir.string(),
                                             .dead_letter_dir = dead_dir.string()});
  const std::string summary_path = dir_ / "summary.json";
  auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                       "--summary-json", summary_path});
  ASSERT_TRUE(run.has_value());
  ASSERT_TRUE(run->status.ok()) << run->status.describe() << "; stderr: " << run->err;

  const json::object summary = parse_object(read_text_file(summary_path));
  EXPECT_TRUE(summary.at("ok").as_bool());
  EXPECT_EQ(int_at(summary, "late"), 0);
  const int64_t in = int_at(summary, "in");
  const int64_t out = int_at(summary, "out");
  const int64_t filtered = int_at(summary, "filtered");
  const int64_t dead_lettered = int_at(summary, "dead_lettered");
  EXPECT_EQ(in, k_count);
  EXPECT_EQ(dead_lettered, bad);
  EXPECT_EQ(filtered, tombstones + deletes);  // deletes fail op != "d"; tombstones are skipped
  EXPECT_EQ(in, out + filtered + dead_lettered);

  // Per partition: the counters add up, and `in` is the partition's end (it starts at 0).
  const json::object& partitions = summary.at("partitions").as_object();
  EXPECT_EQ(partitions.size(), 4u);
  std::map<int64_t, int64_t> end_offset;
  int64_t in_sum = 0;
  for (const auto& [name, value] : partitions) {
    const json::object& c = value.as_object();
    EXPECT_EQ(int_at(c, "in"),
              int_at(c, "out") + int_at(c, "filtered") + int_at(c, "dead_lettered"))
        << "partition " << name;
    end_offset[std::stoll(std::string(name))] = int_at(c, "in");
    in_sum += int_at(c, "in");
  }
  EXPECT_EQ(in_sum, in);

  const std::vector<json::object> rows = read_jsonl(out_dir, "part-");
  const std::vector<json::object> dead = read_jsonl(dead_dir, "dead-letter-");
  EXPECT_EQ(static_cast<int64_t>(rows.size()), out);
  EXPECT_EQ(static_cast<int64_t>(dead.size()), dead_lettered);

  // Output rows and dead letters are disjoint sets of (partition, offset), each below its
  // partition's end; the filtered records are the offsets left over.
  std::set<std::pair<int64_t, int64_t>> seen;
  std::map<int64_t, int64_t> out_by_partition, dead_by_partition;
  auto record = [&](int64_t partition, int64_t offset, const char* what) {
    EXPECT_TRUE(end_offset.contains(partition)) << what << " in unknown partition " << partition;
    EXPECT_GE(offset, 0) << what;
    EXPECT_LT(offset, end_offset[partition]) << what << " past the end of partition " << partition;
    EXPECT_TRUE(seen.emplace(partition, offset).second)
        << what << " at " << partition << "/" << offset << " was already seen";
  };
  for (const auto& row : rows) {
    record(int_at(row, "kafka_partition"), int_at(row, "kafka_offset"), "output row");
    ++out_by_partition[int_at(row, "kafka_partition")];
    EXPECT_NE(str_at(row, "op"), "d") << json::serialize(row);
    EXPECT_TRUE(row.at("id").is_int64()) << json::serialize(row);
  }
  for (const auto& d : dead) {
    record(int_at(d, "partition"), int_at(d, "offset"), "dead letter");
    ++dead_by_partition[int_at(d, "partition")];
    EXPECT_EQ(str_at(d, "topic"), topic);
    EXPECT_TRUE(d.at("reason").is_string()) << json::serialize(d);
    EXPECT_FALSE(str_at(d, "reason").empty()) << json::serialize(d);
    EXPECT_TRUE(d.contains("value") || d.contains("value_base64")) << json::serialize(d);
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), out + dead_lettered);
  for (const auto& [name, value] : partitions) {
    const int64_t p = std::stoll(std::string(name));
    EXPECT_EQ(out_by_partition[p], int_at(value.as_object(), "out")) << "partition " << p;
    EXPECT_EQ(dead_by_partition[p], int_at(value.as_object(), "dead_lettered"))
        << "partition " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(formats, drain_test, ::testing::Values("unwrapped", "envelope", "schema"),
                         [](const auto& info) { return info.param; });

// ---- backpressure: fetched input in flight stays within source.max_in_flight_mb --------------

TEST_F(eddy_processes, fetched_bytes_in_flight_stay_within_max_in_flight_mb) {
  const std::string topic = "rides_backpressure";
  constexpr int k_count = 60000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  ASSERT_TRUE(produce(topic, k_count, "unwrapped", 0.0).has_value());
  // Polls of up to 10000 messages (the default) of < 1 KiB: the poller must take from a poll only
  // what fits under the limit, not the whole poll.
  auto max_in_flight = [&](const std::string& name, const std::string& limit) -> int64_t {
    const std::string config = write_pipeline(
        {.topic = topic,
         .filter = "id is not null",  // every row goes to the file sink, the slow stage
         .sink_dir = dir_ / (name + "-out"),
         .dead_letter_dir = dir_ / (name + "-dead"),
         .source_extra = limit},
        name + ".toml");
    const std::string summary_path = dir_ / (name + ".json");
    auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                         "--summary-json", summary_path});
    EXPECT_TRUE(run.has_value() && run->status.ok())
        << (run ? run->status.describe() + "; stderr: " + run->err : "did not run");
    const json::object summary = parse_object(read_text_file(summary_path));
    EXPECT_EQ(int_at(summary, "in"), k_count) << name;
    return int_at(summary, "max_in_flight_bytes");
  };
  constexpr int64_t mib = 1 << 20;
  const int64_t bounded = max_in_flight("bounded", "max_in_flight_mb = 1\n");
  EXPECT_GT(bounded, 0);
  EXPECT_LE(bounded, mib + 1100) << "one message (< 1 KiB) past the 1 MiB limit at most";
  // The same run with the default limit (64 MiB) lets the poller get further ahead of the
  // sink, which is what the limit above held back (else this test would show nothing).
  const int64_t unbounded = max_in_flight("default", "");
  EXPECT_GT(unbounded, 2 * mib) << "the poller never got 2 MiB ahead; nothing to hold back";
}

// ---- max_rows_per_batch: a trigger's rows written in batches of about that many --------------

TEST_F(eddy_processes, a_trigger_with_max_rows_per_batch_rows_is_written_before_its_tick) {
  const std::string topic = "rides_batches";
  constexpr int k_count = 5000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  ASSERT_TRUE(produce(topic, k_count, "unwrapped", 0.0).has_value());
  // No checkpoints, one trigger for the whole run (the tick is an hour away): the file sink
  // writes one file per batch. Polls of 100 messages: a task's result has at most 100 rows.
  struct files {
    int64_t out = 0;
    std::vector<size_t> rows;  ///< per file
  };
  auto run_with = [&](const std::string& name, const std::string& pipeline_keys) {
    std::string text = pipeline_toml({.topic = topic,
                                      .filter = "id is not null",
                                      .sink_dir = dir_ / (name + "-out"),
                                      .dead_letter_dir = dir_ / (name + "-dead"),
                                      .source_extra = "max_records_per_poll = 100\n"});
    const std::string trigger = "trigger_interval_ms = 100\n";
    text.replace(text.find(trigger), trigger.size(),
                 "trigger_interval_ms = 3600000\n" + pipeline_keys);
    const std::string config = dir_ / (name + ".toml");
    write_text_file(config, text);
    const std::string summary_path = dir_ / (name + ".json");
    auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                         "--summary-json", summary_path});
    EXPECT_TRUE(run.has_value() && run->status.ok())
        << (run ? run->status.describe() + "; stderr: " + run->err : "did not run");
    files f;
    const json::object summary = parse_object(read_text_file(summary_path));
    EXPECT_EQ(int_at(summary, "in"), k_count) << name;
    f.out = int_at(summary, "out");
    for (const auto& file : jsonl_files(dir_ / (name + "-out"), "part-"))
      f.rows.push_back(split_lines(read_text_file(file)).size());
    return f;
  };
  const files whole = run_with("default", "");
  ASSERT_GT(whole.out, 2000);
  EXPECT_EQ(whole.rows, std::vector<size_t>{static_cast<size_t>(whole.out)})
      << "the default writes the one trigger's rows as one batch";

  const files batched = run_with("batched", "max_rows_per_batch = 1000\n");
  EXPECT_EQ(batched.out, whole.out);
  size_t total = 0;
  for (size_t n : batched.rows) {
    total += n;
    EXPECT_LE(n, 1000u + 99u) << "a batch is written once 1000 rows wait (<= 100 per result)";
  }
  EXPECT_EQ(static_cast<int64_t>(total), batched.out);
  EXPECT_GE(static_cast<int64_t>(batched.rows.size()), batched.out / 1100)
      << "rows waited for the tick instead of going out in batches of about 1000";
}

// ---- 2.-3. run fails fast on a missing topic or a bad pipeline file ------------------------

TEST_F(eddy_processes, run_against_a_missing_topic_fails_naming_the_topic) {
  ASSERT_NO_FATAL_FAILURE(start_broker("present:2"));
  const std::string config = write_pipeline(
      {.topic = "no_such_topic", .sink_dir = dir_ / "out", .dead_letter_dir = dir_ / "dead"});
  auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end"}, 30s);
  ASSERT_TRUE(run.has_value());
  EXPECT_FALSE(run->status.ok()) << run->status.describe() << "; stderr: " << run->err;
  EXPECT_TRUE(run->status.exited) << run->status.describe();
  EXPECT_NE(run->err.find("no_such_topic"), std::string::npos) << run->err;
}

TEST_F(eddy_processes, a_pipeline_file_with_an_unknown_key_is_rejected_with_its_line) {
  std::string text =
      pipeline_toml({.topic = "t", .sink_dir = dir_ / "out", .dead_letter_dir = dir_ / "dead"});
  // Insert a misspelt key as line 4 (after "[pipeline]", "name", "trigger_interval_ms").
  const size_t third_newline = [&] {
    size_t pos = 0;
    for (int i = 0; i < 3; ++i) pos = text.find('\n', pos) + 1;
    return pos;
  }();
  text.insert(third_newline, "timezon = \"UTC\"\n");
  const std::string config = dir_ / "bad.toml";
  write_text_file(config, text);

  const std::vector<std::vector<std::string>> commands = {
      {"run", "-c", config, "--bootstrap", "127.0.0.1:1", "--exit-at-end"},
      {"decode", "-c", config}};
  for (const auto& args : commands) {
    const std::string& command = args.front();
    auto r = run_eddy(args, 30s);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->status.exited && r->status.code == 2)
        << command << ": " << r->status.describe() << "; stderr: " << r->err;
    EXPECT_NE(r->err.find(config + ":4"), std::string::npos) << command << ": " << r->err;
    EXPECT_NE(r->err.find("timezon"), std::string::npos) << command << ": " << r->err;
  }
}

// ---- 4. decode: the seed example --------------------------------------------------------

TEST_F(eddy_processes, decode_cleans_the_seed_example_and_dead_letters_a_truncated_line) {
  const std::string seed_line =
      R"({"id": 75204, "ncr_ride_bookings.csv/booking+value": "b'1138.0'", )"
      R"("ncr_ride_bookings.csv/ride+distance": "b'45.75'", "created_at": 1762514972953131, )"
      R"("__op": "r"})";
  const std::string input = dir_ / "input.jsonl";
  write_text_file(input, seed_line + "\n" + seed_line.substr(0, 40) + "\n");
  const std::string example = (k_source_dir / "deploy/pipelines/ncr_ride_bookings.toml").string();

  auto r = run_eddy({"decode", "-c", example}, 30s, redirect::file(input));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
  const auto lines = split_lines(r->out);
  ASSERT_EQ(lines.size(), 2u) << r->out;

  const json::object first = parse_object(lines[0]);
  EXPECT_EQ(int_at(first, "line"), 1);
  ASSERT_EQ(str_at(first, "outcome"), "out") << lines[0];
  const json::object& row = first.at("row").as_object();
  EXPECT_EQ(int_at(row, "id"), 75204);
  EXPECT_EQ(str_at(row, "op"), "r");
  EXPECT_DOUBLE_EQ(row.at("booking_value").to_number<double>(), 1138.0);
  EXPECT_DOUBLE_EQ(row.at("ride_distance").to_number<double>(), 45.75);
  EXPECT_EQ(str_at(row, "created_at_ts"), "2025-11-07T11:29:32.953131Z");

  const json::object second = parse_object(lines[1]);
  EXPECT_EQ(int_at(second, "line"), 2);
  EXPECT_EQ(str_at(second, "outcome"), "dead_letter") << lines[1];
  EXPECT_TRUE(second.at("reason").is_string()) << lines[1];
  EXPECT_FALSE(str_at(second, "reason").empty()) << lines[1];
}

TEST_F(eddy_processes, decode_treats_empty_lines_as_tombstones_and_bounds_long_lines) {
  const std::string seed_line =
      R"({"id": 75204, "ncr_ride_bookings.csv/booking+value": "b'1138.0'", "__op": "r"})";
  // A tombstone as kcat prints it (an empty line), a 2 MiB line (over the 1 MiB
  // max_message_bytes), then a good line without a final newline.
  const std::string input = dir_ / "input.jsonl";
  write_text_file(input, seed_line + "\n\n" + std::string(2 << 20, 'x') + "\n" + seed_line);
  const std::string example = (k_source_dir / "deploy/pipelines/ncr_ride_bookings.toml").string();

  auto r = run_eddy({"decode", "-c", example}, 30s, redirect::file(input));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
  const auto lines = split_lines(r->out);
  ASSERT_EQ(lines.size(), 4u) << r->out;
  EXPECT_EQ(str_at(parse_object(lines[0]), "outcome"), "out") << lines[0];
  const json::object tombstone = parse_object(lines[1]);
  EXPECT_EQ(str_at(tombstone, "outcome"), "filtered") << lines[1];
  EXPECT_EQ(str_at(tombstone, "reason"), "tombstone") << lines[1];
  const json::object big = parse_object(lines[2]);
  EXPECT_EQ(str_at(big, "outcome"), "dead_letter") << lines[2];
  EXPECT_EQ(str_at(big, "reason"),
            "message too large: 2097152 bytes > source.max_message_bytes = 1048576");
  EXPECT_EQ(str_at(parse_object(lines[3]), "outcome"), "out") << lines[3];
  EXPECT_NE(r->err.find("decoded 4 messages: 2 out, 1 filtered, 1 dead-lettered"),
            std::string::npos)
      << r->err;
}

TEST_F(eddy_processes, decode_refuses_binary_input_and_exits_non_zero) {
  const std::string example = (k_source_dir / "deploy/pipelines/ncr_ride_bookings.toml").string();
  // /dev/zero never ends and has no newline: it was read into memory without bound, and a
  // finite NUL-filled file was "decoded" with exit status 0.
  auto r = run_eddy({"decode", "-c", example}, 30s, redirect::file("/dev/zero"));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->status.exited && r->status.code == 1) << r->status.describe();
  EXPECT_NE(r->err.find("line 1: a NUL byte at byte 0: the input is not text"), std::string::npos)
      << r->err;

  const std::string input = dir_ / "binary.jsonl";
  write_text_file(input, std::string(R"({"id": 1})") + "\n" + std::string("{\"id\": 2\0}\n", 11));
  r = run_eddy({"decode", "-c", example}, 30s, redirect::file(input));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->status.exited && r->status.code == 1) << r->status.describe();
  EXPECT_EQ(split_lines(r->out).size(), 1u) << r->out;  // the text line before it was decoded
  EXPECT_NE(r->err.find("line 2: a NUL byte at byte 8"), std::string::npos) << r->err;
}

TEST_F(eddy_processes, decode_survives_many_large_messages_on_the_dom_path) {
  // 40 messages of ~100 KB with a VariableScaleDecimal (PostgreSQL NUMERIC without precision)
  // asked the decoder for a 32 GiB block: std::bad_alloc, exit 134.
  const std::string line =
      R"({"id": 1, "ncr_ride_bookings.csv/booking+status": ")" + std::string(100'000, 'x') +
      R"(", "ncr_ride_bookings.csv/booking+value": {"scale": 2, "value": "AQ=="}})";
  std::string text;
  for (int i = 0; i < 40; ++i) text += line + "\n";
  const std::string input = dir_ / "large.jsonl";
  write_text_file(input, text);
  const std::string example = (k_source_dir / "deploy/pipelines/ncr_ride_bookings.toml").string();
  auto r = run_eddy({"decode", "-c", example}, 60s, redirect::file(input));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
  const auto lines = split_lines(r->out);
  ASSERT_EQ(lines.size(), 40u);
  for (const auto& l : lines) {
    const json::object o = parse_object(l);
    ASSERT_EQ(str_at(o, "outcome"), "out") << l.substr(0, 300);
    EXPECT_DOUBLE_EQ(o.at("row").as_object().at("booking_value").to_number<double>(), 0.01);
  }
}

// ---- 5. SIGTERM drains and reports ------------------------------------------------------

TEST_F(eddy_processes, sigterm_stops_a_running_pipeline_cleanly_with_its_counters) {
  const std::string topic = "rides";
  constexpr int k_count = 5000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced = produce(topic, k_count, "unwrapped");
  ASSERT_TRUE(produced.has_value());
  const int64_t expected_filtered =
      int_at(*produced, "tombstones") + int_at(produced->at("ops").as_object(), "d");
  const auto expected_written = static_cast<size_t>(k_count - expected_filtered);

  const fs::path out_dir = dir_ / "out";
  const fs::path dead_dir = dir_ / "dead";
  const std::string config = write_pipeline(
      {.topic = topic, .sink_dir = out_dir.string(), .dead_letter_dir = dead_dir.string()});
  const std::string summary_path = dir_ / "summary.json";
  const std::string err_path = dir_ / "run.stderr";
  child_process run({.argv = {k_eddy, "run", "-c", config, "--bootstrap", bootstrap_,
                              "--summary-json", summary_path},
                     .out = redirect::file(dir_ / "run.stdout"),
                     .err = redirect::file(err_path)});

  // Wait until every record that is not filtered is visible as an output row or dead letter.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  size_t written = 0;
  while (std::chrono::steady_clock::now() < deadline && run.running()) {
    written = count_jsonl_lines(out_dir, "part-") + count_jsonl_lines(dead_dir, "dead-letter-");
    if (written >= expected_written) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(run.running()) << "eddy run ended by itself: " << run.wait_for(0ms)->describe()
                             << "; stderr: " << read_text_file(err_path);
  ASSERT_EQ(written, expected_written) << "stderr: " << read_text_file(err_path);

  // SIGUSR1 prints the counters while the pipeline keeps running (at its next trigger).
  run.send_signal(SIGUSR1);
  const auto usr1_deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < usr1_deadline &&
         read_text_file(err_path).find("total") == std::string::npos)
    std::this_thread::sleep_for(20ms);
  const std::string on_usr1 = read_text_file(err_path);
  ASSERT_NE(on_usr1.find("dead-lettered"), std::string::npos) << "no counters on SIGUSR1";
  EXPECT_NE(on_usr1.find(std::to_string(k_count)), std::string::npos) << on_usr1;
  ASSERT_TRUE(run.running()) << "SIGUSR1 stopped the pipeline";

  run.send_signal(SIGTERM);
  auto status = run.wait_for(20s);
  ASSERT_TRUE(status.has_value()) << "eddy run ignored SIGTERM";
  EXPECT_TRUE(status->ok()) << status->describe() << "; stderr: " << read_text_file(err_path);

  const std::string err = read_text_file(err_path);
  for (const char* column : {"partition", "in", "out", "filtered", "dead-lettered", "total"}) {
    EXPECT_NE(err.find(column), std::string::npos) << column << " missing in: " << err;
  }
  const json::object summary = parse_object(read_text_file(summary_path));
  const int64_t in = int_at(summary, "in");
  const int64_t out = int_at(summary, "out");
  const int64_t dead_lettered = int_at(summary, "dead_lettered");
  EXPECT_EQ(in, k_count);
  EXPECT_EQ(int_at(summary, "filtered"), expected_filtered);
  EXPECT_EQ(dead_lettered, int_at(*produced, "bad"));
  EXPECT_EQ(in, out + int_at(summary, "filtered") + dead_lettered);
  EXPECT_EQ(count_jsonl_lines(out_dir, "part-"), static_cast<size_t>(out));
  EXPECT_EQ(count_jsonl_lines(dead_dir, "dead-letter-"), static_cast<size_t>(dead_lettered));
  // The totals line of the table carries the same numbers.
  EXPECT_NE(err.find(std::to_string(in)), std::string::npos) << err;
}

// ---- 6. broker argument checking --------------------------------------------------------

TEST_F(eddy_processes, broker_rejects_a_malformed_topic_spec_naming_the_option) {
  auto r = run_eddy({"broker", "--topic", "bad-spec"}, 30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->status.exited) << r->status.describe();
  EXPECT_NE(r->status.code, 0) << r->err;
  EXPECT_NE(r->err.find("--topic"), std::string::npos) << r->err;
  EXPECT_EQ(r->out.find("bootstrap="), std::string::npos) << r->out;
}

// ---- 7. Kafka output: rows and dead letters to topics --------------------------------------

/// Every message value of `topic` (all partitions, from the beginning to the current end).
std::vector<std::string> read_topic(const std::string& bootstrap, const std::string& topic) {
  std::string err;
  auto consumer = eddy::kafka_consumer::create(bootstrap, "e2e-reader", {}, &err);
  EXPECT_TRUE(consumer) << err;
  if (!consumer) return {};
  auto parts = consumer->partitions(topic, 10'000, &err);
  EXPECT_FALSE(parts.empty()) << err;
  std::vector<std::pair<int32_t, int64_t>> start;
  for (int32_t p : parts) start.emplace_back(p, eddy::offset_beginning);
  EXPECT_TRUE(consumer->assign(topic, start, &err)) << err;
  std::vector<std::string> values;
  std::set<int32_t> at_end;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (at_end.size() < parts.size() && std::chrono::steady_clock::now() < deadline) {
    bool ok = true;
    consumer->poll(
        100, 10'000,
        [&](const eddy::fetched_message& m) { values.emplace_back(m.value, m.value_size); },
        [&](int32_t p, int64_t) { at_end.insert(p); }, &err, &ok);
    EXPECT_TRUE(ok) << err;
  }
  EXPECT_EQ(at_end.size(), parts.size()) << "topic " << topic << " not read to its end";
  return values;
}

TEST_F(eddy_processes, kafka_sink_and_dead_letter_topic_receive_every_row_and_dead_letter) {
  start_broker("rides:2");
  ASSERT_FALSE(HasFatalFailure());
  auto summary = produce("rides", 3000, "envelope", 0.03);
  ASSERT_TRUE(summary);
  pipeline_file p;
  p.topic = "rides";
  p.sink_dir = dir_ / "out";
  p.dead_letter_dir = dir_ / "dlq";
  // [dead_letter] is the file's last table: add its topic, then a Kafka sink whose brokers
  // default to the source's (which --bootstrap overrides).
  std::string toml = pipeline_toml(p) + "topic = \"rides.dead-letter\"\n\n" +
                     "[[sinks]]\ntype = \"kafka\"\ntopic = \"rides.cleaned\"\n";
  write_text_file(dir_ / "kafka.toml", toml);
  auto r = run_eddy({"run", "-c", dir_ / "kafka.toml", "--bootstrap", bootstrap_, "--exit-at-end",
                     "--summary-json", dir_ / "summary.json"});
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
  json::object s = parse_object(read_text_file(dir_ / "summary.json"));
  ASSERT_GT(int_at(s, "dead_lettered"), 0);

  auto rows = read_topic(bootstrap_, "rides.cleaned");
  EXPECT_EQ(static_cast<int64_t>(rows.size()), int_at(s, "out"));
  EXPECT_EQ(rows.size(), count_jsonl_lines(dir_ / "out", "part-"));  // same rows as the file sink
  for (const auto& v : rows) EXPECT_TRUE(parse_object(v).contains("booking_status")) << v;

  auto dead = read_topic(bootstrap_, "rides.dead-letter");
  EXPECT_EQ(static_cast<int64_t>(dead.size()), int_at(s, "dead_lettered"));
  for (const auto& v : dead) {
    json::object d = parse_object(v);  // the dead letter itself, not wrapped
    EXPECT_FALSE(str_at(d, "reason").empty()) << v;
    EXPECT_EQ(str_at(d, "topic"), "rides");
    EXPECT_GE(int_at(d, "offset"), 0);
  }
}

}  // namespace
}  // namespace eddy::test
