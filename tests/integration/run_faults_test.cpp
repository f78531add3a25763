// run_faults_test.cpp — `eddy run` ends, within a bound and saying why, when something breaks:
// an exception in any of its actors (fault injection: EDDY_THROW_AT), a drain that hangs after
// SIGTERM (EDDY_HANG_AT), Kafka brokers that go away under --exit-at-end.
//
// Each test starts its own `eddy broker` and `eddy run` processes (tests/support) and waits on
// conditions with timeouts; a run that hangs is killed by the test and reported.
#include <signal.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

const std::string k_eddy = EDDY_BINARY;

/// How `eddy run` ended, and how long it took.
struct ended {
  exit_status status;
  std::string err;
  std::chrono::milliseconds took{0};
};

class run_faults : public eddy_fixture {
 protected:
  run_faults() : eddy_fixture("eddy-faults") {}

  /// A pipeline over `topic` with a file sink: plain (id and created_at), or aggregating (a count
  /// per 10 s window in 2 shards), with `source_extra` in [source] and `tail` appended.
  std::string write_pipeline(const std::string& topic, bool aggregating,
                             const std::string& source_extra = "", const std::string& tail = "") {
    std::string t =
        "[pipeline]\nname = \"faults\"\ntrigger_interval_ms = 50\n"
        "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
        topic + "\"\n" + source_extra +
        "\n[[fields]]\nname = \"id\"\ntype = \"int\"\n"
        "\n[[fields]]\nname = \"ts\"\ncolumn = \"created_at\"\ntype = \"timestamp\"\n"
        "unit = \"micros\"\n";
    if (aggregating)
      t += "\n[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n"
           "\n[aggregate]\nshards = 2\n"
           "\n[window]\ntype = \"tumbling\"\nsize = \"10s\"\ntime_field = \"ts\"\n";
    t += "\n[[sinks]]\ntype = \"file\"\npath = \"" + (dir_ / "out") +
         "\"\n\n[dead_letter]\npath = \"" + (dir_ / "dead") + "\"\n" + tail;
    const std::string path = dir_ / "pipeline.toml";
    write_text_file(path, t);
    return path;
  }

  /// Starts `eddy run ARGS...` with `env` added, stderr to a file.
  std::unique_ptr<child_process> start_run(const std::vector<std::string>& args,
                                           const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {k_eddy, "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<child_process>(child_process::options{
        .argv = argv,
        .out = redirect::file(dir_ / "run.stdout"),
        .err = redirect::file(err_path()),
        .env = env,
    });
  }

  /// Waits up to `timeout` for the run to end; nullopt (and the run killed) if it did not.
  std::optional<ended> wait_end(child_process& run, std::chrono::milliseconds timeout) {
    const auto start = clock::now();
    auto status = run.wait_for(timeout);
    if (!status) {
      run.terminate(1s);
      return std::nullopt;
    }
    return ended{*status, read_text_file(err_path()),
                 std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start)};
  }

  /// Waits up to `timeout` for `text` in the run's stderr.
  bool wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (clock::now() < deadline) {
      if (fs::exists(err_path()) && read_text_file(err_path()).find(text) != std::string::npos)
        return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  [[nodiscard]] std::string err_path() const { return dir_ / "run.stderr"; }
  [[nodiscard]] std::string summary_path() const { return dir_ / "summary.json"; }
};

// ---- an exception in any actor fails the run with its message ----------------------------------

struct fault_case {
  const char* point;   ///< EDDY_THROW_AT point
  const char* at;      ///< ... and how many passes
  const char* actor;   ///< how the message names the actor
  bool aggregating;    ///< shards exist only in aggregating pipelines
  bool checkpointing;  ///< the checkpoint coordinator only with [checkpoint]
};

class actor_fault : public run_faults, public ::testing::WithParamInterface<fault_case> {};

TEST_P(actor_fault, fails_the_run_at_once_with_the_exception_message) {
  const fault_case& c = GetParam();
  const std::string topic = "rides";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", "20000", "--seed", "7"}).has_value());
  // Slowed to 20000 records/s, so that the run is still reading when the fault strikes.
  const std::string config =
      write_pipeline(topic, c.aggregating, "max_records_per_second = 20000\n",
                     c.checkpointing ? "\n[checkpoint]\ndir = \"" + (dir_ / "checkpoints") +
                                           "\"\ninterval = \"100ms\"\nsync = false\n"
                                     : "");
  auto run = start_run(
      {"-c", config, "--bootstrap", bootstrap_, "--exit-at-end", "--summary-json", summary_path()},
      {std::string("EDDY_THROW_AT=") + c.point + ":" + c.at});
  // Without the fault the run takes about a second; a dead actor used to leave it hanging.
  auto end = wait_end(*run, 30s);
  ASSERT_TRUE(end.has_value()) << "eddy run hung after the fault in the " << c.actor
                               << "; stderr: " << read_text_file(err_path());
  EXPECT_LT(end->took, 10s);
  EXPECT_TRUE(end->status.exited && end->status.code == 1)
      << end->status.describe() << "; stderr: " << end->err;
  // "eddy: <actor> failed: <what()>" (the actor's name may end in its partition or shard).
  const std::string what =
      std::string(" failed: EDDY_THROW_AT: injected fault at point ") + c.point;
  const size_t at = end->err.find(what);
  ASSERT_NE(at, std::string::npos) << end->err;
  const size_t line = end->err.rfind('\n', at) + 1;  // npos + 1 = 0: the first line
  EXPECT_EQ(end->err.substr(line, at - line).rfind(std::string("eddy: ") + c.actor, 0), 0u)
      << end->err;
  EXPECT_EQ(end->err.find("unreachable"), std::string::npos) << end->err;
  const json::object summary = parse_object(read_text_file(summary_path()));
  EXPECT_FALSE(summary.at("ok").as_bool());
  EXPECT_NE(str_at(summary, "error").find(what), std::string::npos) << str_at(summary, "error");
  EXPECT_EQ(str_at(summary, "error").rfind(c.actor, 0), 0u) << str_at(summary, "error");
}

INSTANTIATE_TEST_SUITE_P(
    actors, actor_fault,
    ::testing::Values(fault_case{"source_task", "3", "source task of partition ", false, false},
                      fault_case{"sink", "5", "sink", false, false},
                      fault_case{"poller", "20", "Kafka poller", false, false},
                      fault_case{"shard", "5", "aggregation shard ", true, false},
                      fault_case{"checkpoint_coordinator", "2", "checkpoint coordinator", true,
                                 true},
                      fault_case{"publisher", "2", "publisher", false, true},
                      // eddy run without [checkpoint] runs the cluster's actors in one process.
                      fault_case{"cluster_coordinator", "1", "cluster coordinator", false, false},
                      fault_case{"unit_host", "1", "unit host", true, false}),
    [](const auto& info) { return std::string(info.param.point); });

// ---- SIGTERM ends a run within a bound, whatever its drain does --------------------------------

TEST_F(run_faults, sigterm_during_a_hung_drain_ends_the_run_after_the_stop_timeout) {
  const std::string topic = "rides";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", "2000", "--seed", "7"}).has_value());
  const std::string config = write_pipeline(topic, false);
  // The sink blocks its thread for good when the drain reaches it (a sink stuck in I/O).
  auto run = start_run({"-c", config, "--bootstrap", bootstrap_, "--summary-json", summary_path(),
                        "--stop-timeout", "2"},
                       {"EDDY_HANG_AT=sink_finish:1"});
  // Running, with every record written (2000 messages: about 1900 rows and 100 tombstones).
  const auto deadline = clock::now() + 30s;
  while (clock::now() < deadline && count_jsonl_lines(dir_ / "out", "part-") < 1800)
    std::this_thread::sleep_for(20ms);
  ASSERT_GE(count_jsonl_lines(dir_ / "out", "part-"), 1800u) << read_text_file(err_path());
  ASSERT_TRUE(run->running());

  run->send_signal(SIGTERM);
  auto end = wait_end(*run, 30s);
  ASSERT_TRUE(end.has_value()) << "eddy run ignored SIGTERM during a hung drain";
  // The bound: --stop-timeout (2 s) for the drain, then at most 5 s for the actors to end.
  EXPECT_LT(end->took, 12s);
  EXPECT_GE(end->took, 2s) << "the drain was not given its --stop-timeout";
  EXPECT_TRUE(end->status.exited && end->status.code == 1)
      << end->status.describe() << "; stderr: " << end->err;
  EXPECT_NE(end->err.find("did not finish within 2 s (--stop-timeout)"), std::string::npos)
      << end->err;
  const json::object summary = parse_object(read_text_file(summary_path()));
  EXPECT_FALSE(summary.at("ok").as_bool());
  EXPECT_GE(int_at(summary, "in"), 2000) << "the counters of what the sink took are reported";
}

/// The publisher (publishing committed epochs on its own thread) stuck in I/O, e.g. a database
/// that stopped answering: the pipeline stops completing epochs once 2 committed ones wait, and
/// SIGTERM still ends the run within --stop-timeout, exit 1.
TEST_F(run_faults, sigterm_with_a_hung_publisher_ends_the_run_after_the_stop_timeout) {
  const std::string topic = "rides";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", "2000", "--seed", "7"}).has_value());
  const std::string config = write_pipeline(topic, false, "",
                                            "\n[checkpoint]\ndir = \"" + (dir_ / "checkpoints") +
                                                "\"\ninterval = \"100ms\"\nsync = false\n");
  auto run = start_run({"-c", config, "--bootstrap", bootstrap_, "--summary-json", summary_path(),
                        "--stop-timeout", "2"},
                       {"EDDY_HANG_AT=publisher:2"});
  ASSERT_TRUE(wait_for_stderr("EDDY_HANG_AT reached", 30s)) << read_text_file(err_path());
  ASSERT_TRUE(run->running()) << read_text_file(err_path());
  run->send_signal(SIGTERM);
  auto end = wait_end(*run, 30s);
  ASSERT_TRUE(end.has_value()) << "eddy run ignored SIGTERM with its publisher hung";
  EXPECT_LT(end->took, 12s);
  EXPECT_TRUE(end->status.exited && end->status.code == 1)
      << end->status.describe() << "; stderr: " << end->err;
  EXPECT_NE(end->err.find("did not finish within 2 s (--stop-timeout)"), std::string::npos)
      << end->err;
  EXPECT_FALSE(parse_object(read_text_file(summary_path())).at("ok").as_bool());
}

TEST_F(run_faults, a_second_sigterm_during_a_hung_drain_exits_at_once) {
  const std::string topic = "rides";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", "2000", "--seed", "7"}).has_value());
  const std::string config = write_pipeline(topic, false);
  auto run = start_run({"-c", config, "--bootstrap", bootstrap_, "--stop-timeout", "60"},
                       {"EDDY_HANG_AT=sink_finish:1"});
  const auto deadline = clock::now() + 30s;
  while (clock::now() < deadline && count_jsonl_lines(dir_ / "out", "part-") < 1800)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(run->running()) << read_text_file(err_path());
  run->send_signal(SIGTERM);
  ASSERT_TRUE(wait_for_stderr("EDDY_HANG_AT reached", 10s)) << read_text_file(err_path());
  ASSERT_TRUE(run->running());
  run->send_signal(SIGTERM);
  auto end = wait_end(*run, 5s);
  ASSERT_TRUE(end.has_value()) << "a second SIGTERM did not end the run";
  EXPECT_TRUE(end->status.exited && end->status.code == 130) << end->status.describe();
}

// ---- --exit-at-end: brokers gone, then SIGTERM: not a success -----------------------------------

class brokers_gone : public run_faults {
 protected:
  /// A 1-partition topic of 20000 messages read at 2000 a second with 1 MiB in flight (so
  /// librdkafka cannot have prefetched it all), the run started, then the broker killed.
  void start_and_kill_broker(const std::vector<std::string>& extra_args = {},
                             const std::string& pipeline_tail = "") {
    ASSERT_NO_FATAL_FAILURE(start_broker("rides:1"));
    ASSERT_TRUE(produce_with({"--topic", "rides", "--count", "20000", "--seed", "7"}).has_value());
    const std::string config = write_pipeline(
        "rides", false, "max_records_per_second = 2000\nmax_in_flight_mb = 1\n", pipeline_tail);
    std::vector<std::string> args = {
        "-c", config, "--bootstrap", bootstrap_, "--exit-at-end", "--summary-json", summary_path()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    run_ = start_run(args);
    const auto deadline = clock::now() + 30s;
    while (clock::now() < deadline && count_jsonl_lines(dir_ / "out", "part-") < 500)
      std::this_thread::sleep_for(20ms);
    ASSERT_GE(count_jsonl_lines(dir_ / "out", "part-"), 500u) << read_text_file(err_path());
    EXPECT_EQ(read_text_file(err_path()).find("unreachable"), std::string::npos)
        << "brokers reported unreachable while they were up: " << read_text_file(err_path());
    broker_->send_signal(SIGKILL);
    ASSERT_TRUE(broker_->wait_for(10s).has_value());
    broker_.reset();  // nothing for TearDown to stop
  }

  std::unique_ptr<child_process> run_;
};

TEST_F(brokers_gone, sigterm_before_the_end_offsets_exits_3_naming_what_is_missing) {
  ASSERT_NO_FATAL_FAILURE(start_and_kill_broker());
  ASSERT_TRUE(wait_for_stderr("eddy: Kafka brokers unreachable", 30s))
      << "no eddy line about the brokers: " << read_text_file(err_path());
  ASSERT_TRUE(run_->running()) << read_text_file(err_path());

  run_->send_signal(SIGTERM);
  auto end = wait_end(*run_, 30s);
  ASSERT_TRUE(end.has_value()) << "eddy run ignored SIGTERM";
  EXPECT_TRUE(end->status.exited && end->status.code == 3)
      << end->status.describe() << "; stderr: " << end->err;
  const json::object summary = parse_object(read_text_file(summary_path()));
  EXPECT_FALSE(summary.at("ok").as_bool());
  const int64_t in = int_at(summary, "in");
  EXPECT_GT(in, 0);
  EXPECT_LT(in, 20000);
  const json::object& missing = summary.at("incomplete").as_object();
  ASSERT_TRUE(missing.contains("0")) << read_text_file(summary_path());
  EXPECT_EQ(int_at(missing.at("0").as_object(), "read_to"), in);
  EXPECT_EQ(int_at(missing.at("0").as_object(), "end_offset"), 20000);
  EXPECT_NE(end->err.find("eddy: partition 0: read to offset " + std::to_string(in) +
                          " of end offset 20000"),
            std::string::npos)
      << end->err;
}

TEST_F(brokers_gone, with_checkpoints_sigterm_ends_the_run_without_waiting_for_the_offset_commit) {
  // The final checkpoint commits offsets to Kafka and waits for the answer; with no broker to
  // answer, that wait must not hold the run until --stop-timeout abandons it.
  ASSERT_NO_FATAL_FAILURE(start_and_kill_broker(
      {"--stop-timeout", "40"},
      "\n[checkpoint]\ndir = \"" + (dir_ / "checkpoints") + "\"\ninterval = \"200ms\"\n"));
  ASSERT_TRUE(wait_for_stderr("eddy: Kafka brokers unreachable", 30s))
      << read_text_file(err_path());
  run_->send_signal(SIGTERM);
  auto end = wait_end(*run_, 60s);
  ASSERT_TRUE(end.has_value()) << "eddy run ignored SIGTERM";
  EXPECT_LT(end->took, 25s) << end->err;
  EXPECT_TRUE(end->status.exited && end->status.code == 3)
      << end->status.describe() << "; stderr: " << end->err;
  EXPECT_NE(end->err.find("eddy: final checkpoint"), std::string::npos) << end->err;
  EXPECT_NE(end->err.find("offset commit: no answer within 5 s"), std::string::npos) << end->err;
}

TEST_F(brokers_gone, max_unreachable_fails_the_run_once_they_were_down_that_long) {
  ASSERT_NO_FATAL_FAILURE(start_and_kill_broker({"--max-unreachable", "2"}));
  auto end = wait_end(*run_, 30s);
  ASSERT_TRUE(end.has_value()) << "eddy run kept retrying: " << read_text_file(err_path());
  EXPECT_TRUE(end->status.exited && end->status.code == 1)
      << end->status.describe() << "; stderr: " << end->err;
  EXPECT_NE(end->err.find("s (--max-unreachable 2)"), std::string::npos) << end->err;
  EXPECT_NE(end->err.find("eddy: partition 0: read to offset"), std::string::npos) << end->err;
  EXPECT_FALSE(parse_object(read_text_file(summary_path())).at("ok").as_bool());
}

}  // namespace
}  // namespace eddy::test
