// Cluster membership across processes: `eddy coordinator` and `eddy worker`s on loopback with a
// development broker. Workers join and get balanced units; a killed worker is noticed from its
// dropped connection and a paused one from its missing heartbeats, and their units move; a
// paused worker that wakes up rejoins as a new member; SIGTERM leaves cleanly; a worker of another
// version is refused; a worker started before its coordinator joins once it is up.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "tests/support/eddy_fixture.hpp"

namespace eddy::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

const std::string k_topic = "business_postgres.public.business_ncr_ride_bookings";
const std::string k_example = std::string(EDDY_SOURCE_DIR) + "/deploy/pipelines/ncr_windowed.toml";

/// A process whose stderr lines are collected as they are read.
struct logged_process {
  std::unique_ptr<child_process> proc;
  std::vector<std::string> lines;

  /// Reads stderr until a line contains `needle` (true) or `timeout` passes (false).
  bool wait_for_line(const std::string& needle, std::chrono::milliseconds timeout) {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto line = proc->read_stderr_line(std::max(left, 1ms));
      if (!line) continue;
      lines.push_back(*line);
      if (line->find(needle) != std::string::npos) return true;
    }
    return false;
  }
  [[nodiscard]] std::string text() const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
};

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class cluster_membership : public eddy_fixture {
 protected:
  cluster_membership() : eddy_fixture("eddy-cluster") {
    // A cluster pipeline needs a [checkpoint] table: the windowed example with one.
    pipeline_ = dir_ / "ncr_windowed_cluster.toml";
    write_text_file(pipeline_, read_text_file(k_example) + "\n[checkpoint]\ndir = \"" +
                                   dir_ / "checkpoints" + "\"\ninterval = \"1s\"\n");
  }

  void start_coordinator(const std::string& listen = "127.0.0.1:0",
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        EDDY_BINARY,   "coordinator",        "-c",          pipeline_, "--listen", listen,
        "--state-dir", dir_ / "coordinator", "--bootstrap", bootstrap_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    coordinator_.proc = std::make_unique<child_process>(child_process::options{
        .argv = argv,
        .out = redirect::pipe(),
        .err = redirect::pipe(),
    });
    auto line = coordinator_.proc->read_stdout_line(20s);
    ASSERT_TRUE(line && line->starts_with("listening="))
        << (line ? *line : "no listening line") << "\n"
        << coordinator_.proc->read_stderr_to_end(1s);
    address_ = line->substr(std::string_view("listening=").size());
  }

  logged_process& start_worker(const std::string& name, int slots = 1,
                               std::vector<std::string> env = {}) {
    auto& w = workers_[name];
    w.lines.clear();
    w.proc = std::make_unique<child_process>(child_process::options{
        .argv = {EDDY_BINARY, "worker", "--join", address_, "--name", name, "--slots",
                 std::to_string(slots), "--local-dir", dir_ / ("local-" + name)},
        .err = redirect::pipe(),
        .env = std::move(env),
    });
    return w;
  }

  /// The coordinator's assignment.json once `done` holds for it, or null after `timeout`.
  json::object wait_for_assignment(const std::function<bool(const json::object&)>& done,
                                   std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    json::object last;
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        last = json::parse(read_text_file(dir_ / "coordinator/assignment.json")).as_object();
        if (done(last)) return last;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(20ms);  // polling a file for a condition, not a fixed wait
    }
    ADD_FAILURE() << "assignment.json never reached the expected state; last: "
                  << json::serialize(last) << "\ncoordinator log:\n"
                  << coordinator_.text();
    return {};
  }

  /// Units per worker; `kind` 'p' or 's' counts only partitions or shards (0: all).
  static std::map<std::string, int> units_per_worker(const json::object& a, char kind = 0) {
    std::map<std::string, int> out;
    for (const auto& [unit, owner] : a.at("owners").as_object())
      if (kind == 0 || (!unit.empty() && unit[0] == kind)) ++out[std::string(owner.as_string())];
    return out;
  }

  static bool members_are(const json::object& a, std::vector<std::string> names) {
    std::vector<std::string> got;
    for (const auto& m : a.at("members").as_array())
      got.emplace_back(m.as_object().at("name").as_string());
    std::sort(names.begin(), names.end());
    return got == names && a.at("owners").as_object().size() == 20;  // 16 partitions, 4 shards
  }

  void TearDown() override {
    for (auto& [_, w] : workers_)
      if (w.proc) w.proc->terminate(2s);
    if (coordinator_.proc) coordinator_.proc->terminate(5s);
    eddy_fixture::TearDown();
  }

  std::string pipeline_;
  logged_process coordinator_;
  std::map<std::string, logged_process> workers_;
  std::string address_;
};

TEST_F(cluster_membership, workers_get_balanced_units_and_a_killed_worker_s_units_move_at_once) {
  start_broker(k_topic + ":16");
  // A long heartbeat bound: the kill must be seen from the dropped connection, long before it.
  start_coordinator("127.0.0.1:0", {"--connection-timeout-ms", "30000"});
  for (const char* n : {"w1", "w2", "w3"}) start_worker(n);
  auto a = wait_for_assignment([](const json::object& a) {
    return members_are(a, {"w1", "w2", "w3"});
  });
  // Balanced per kind (16 partitions: 5 or 6 each; 4 shards: 1 or 2 each). Workers that join
  // one after the other can leave both round-ups with the first one (stickiness wins over the
  // balance of totals: 6 + 2), so the totals are not asserted.
  for (const auto& [w, n] : units_per_worker(a, 'p'))
    EXPECT_TRUE(n == 5 || n == 6) << w << " " << n;
  for (const auto& [w, n] : units_per_worker(a, 's'))
    EXPECT_TRUE(n == 1 || n == 2) << w << " " << n;
  const auto gen = a.at("generation").as_int64();
  EXPECT_TRUE(workers_["w2"].wait_for_line("generation " + std::to_string(gen) + ": holds", 5s))
      << workers_["w2"].text();

  workers_["w2"].proc->send_signal(SIGKILL);
  ASSERT_TRUE(coordinator_.wait_for_line("worker w2 lost", 10s)) << coordinator_.text();
  a = wait_for_assignment([](const json::object& a) { return members_are(a, {"w1", "w3"}); });
  for (const auto& [w, n] : units_per_worker(a)) EXPECT_EQ(n, 10) << w;
  EXPECT_TRUE(coordinator_.wait_for_line("w2 -> w1", 2s)) << coordinator_.text();
  EXPECT_TRUE(coordinator_.wait_for_line("w2 -> w3", 2s)) << coordinator_.text();
}

TEST_F(cluster_membership,
       a_paused_worker_is_lost_after_the_heartbeat_bound_and_rejoins_when_it_wakes) {
  start_broker(k_topic + ":16");
  start_coordinator();
  start_worker("w1");
  auto& w2 = start_worker("w2");
  wait_for_assignment([](const json::object& a) { return members_are(a, {"w1", "w2"}); });

  w2.proc->send_signal(SIGSTOP);
  ASSERT_TRUE(coordinator_.wait_for_line("worker w2 lost", 6s)) << coordinator_.text();
  auto a = wait_for_assignment([](const json::object& a) { return members_are(a, {"w1"}); });
  const auto fenced_generation = a.at("generation").as_int64();

  w2.proc->send_signal(SIGCONT);
  ASSERT_TRUE(w2.wait_for_line("lost the coordinator", 10s)) << w2.text();
  EXPECT_TRUE(w2.wait_for_line("stopped", 1s)) << w2.text();
  ASSERT_TRUE(w2.wait_for_line("joined the coordinator", 10s)) << w2.text();
  a = wait_for_assignment([&](const json::object& a) {
    return members_are(a, {"w1", "w2"}) && a.at("generation").as_int64() > fenced_generation;
  });
  for (const auto& [w, n] : units_per_worker(a)) EXPECT_EQ(n, 10) << w;
}

TEST_F(cluster_membership, sigterm_leaves_cleanly_and_hands_the_units_to_the_others) {
  start_broker(k_topic + ":16");
  start_coordinator();
  start_worker("w1");
  auto& w2 = start_worker("w2");
  wait_for_assignment([](const json::object& a) { return members_are(a, {"w1", "w2"}); });
  const auto status = w2.proc->terminate(10s);
  EXPECT_TRUE(status.ok()) << status.describe();
  EXPECT_TRUE(coordinator_.wait_for_line("worker w2 left", 5s)) << coordinator_.text();
  auto a = wait_for_assignment([](const json::object& a) { return members_are(a, {"w1"}); });
  EXPECT_EQ(units_per_worker(a)["w1"], 20);
}

TEST_F(cluster_membership, a_worker_of_another_version_is_refused_with_both_versions_named) {
  start_broker(k_topic + ":4");
  start_coordinator();
  auto& w = start_worker("old", 1, {"EDDY_TEST_VERSION=0.0.9"});
  auto status = w.proc->wait_for(20s);
  ASSERT_TRUE(status.has_value()) << "the refused worker kept running";
  EXPECT_EQ(status->code, 1) << status->describe();
  const std::string err = w.proc->read_stderr_to_end(2s);
  EXPECT_NE(err.find("0.0.9"), std::string::npos) << err;
  EXPECT_NE(err.find("the coordinator eddy 0.1.0"), std::string::npos) << err;
  EXPECT_TRUE(coordinator_.wait_for_line("refused worker old", 5s)) << coordinator_.text();
}

TEST_F(cluster_membership, a_worker_started_before_its_coordinator_joins_once_it_is_up) {
  start_broker(k_topic + ":4");
  address_ = "127.0.0.1:" + std::to_string(free_port());
  auto& w = start_worker("early");
  ASSERT_TRUE(w.wait_for_line("not reachable", 10s)) << w.text();
  start_coordinator(address_);
  EXPECT_TRUE(w.wait_for_line("joined the coordinator", 15s)) << w.text();
  EXPECT_TRUE(w.wait_for_line("holds p0,p1,p2,p3", 5s)) << w.text();
}

/// A cluster cannot continue `eddy run`'s checkpoints, nor eddy run a cluster's: starting over
/// would read the input again and publish its output twice, so each refuses the other's
/// checkpoint.dir. A coordinator restarted with a pipeline whose state no longer fits its
/// newest manifest refuses too, naming the difference (as eddy run does).
TEST_F(cluster_membership, the_other_kind_s_checkpoints_and_an_incompatible_pipeline_are_refused) {
  start_broker(k_topic + ":2");
  auto coordinator = [&](const std::string& pipeline) {
    return run_eddy({"coordinator", "-c", pipeline, "--listen", "127.0.0.1:0", "--state-dir",
                     dir_ / "c", "--bootstrap", bootstrap_},
                    20s);
  };
  // eddy run's checkpoints in the pipeline's checkpoint.dir.
  auto r = run_eddy({"run", "-c", pipeline_, "--bootstrap", bootstrap_, "--exit-at-end"}, 60s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  r = coordinator(pipeline_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2) << r->err;
  EXPECT_NE(r->err.find("holds the checkpoints of `eddy run`"), std::string::npos) << r->err;

  // A cluster's manifest (as a coordinator writes it) in another checkpoint.dir.
  const std::string cdir = dir_ / "cluster-checkpoints";
  const std::string pipeline2 = dir_ / "cluster.toml";
  write_text_file(pipeline2, read_text_file(k_example) + "\n[checkpoint]\ndir = \"" + cdir +
                                 "\"\ninterval = \"1s\"\n");
  std::filesystem::create_directories(cdir + "/cluster/epochs");
  auto manifest = [&](const std::string& topic) {
    write_text_file(cdir + "/cluster/epochs/00000000000000000007.json",
                    "{\"epoch\":7,\"generation\":2,\"created_unix_ms\":0,\"pipeline\":"
                    "\"ncr_windowed\",\"units\":{},\"published\":[],\"compat\":{"
                    "\"compat.topic\":\"" +
                        topic + "\"}}");
  };
  manifest("another_topic");
  r = run_eddy({"run", "-c", pipeline2, "--bootstrap", bootstrap_, "--exit-at-end"}, 60s);
  ASSERT_TRUE(r);
  EXPECT_NE(r->status.code, 0);
  EXPECT_NE(r->err.find("holds the checkpoints of a cluster"), std::string::npos) << r->err;
  EXPECT_FALSE(std::filesystem::exists(cdir + "/epochs")) << "eddy run wrote a checkpoint there";
  r = coordinator(pipeline2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2) << r->err;
  EXPECT_NE(r->err.find("changed incompatibly"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("another_topic"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("delete its cluster/ directory"), std::string::npos) << r->err;
}

/// A take-over is refused, and changes nothing, while eddy run's epoch log holds epochs after
/// its newest intact checkpoint (their output was published, their state not): eddy run replays
/// them on its next start; a cluster could not.
TEST_F(cluster_membership, a_take_over_with_epochs_left_to_replay_is_refused_and_changes_nothing) {
  start_broker(k_topic + ":2");
  ASSERT_TRUE(produce_with({"--count", "4000", "--seed", "3"}));
  const std::filesystem::path cp = dir_ / "replay-checkpoints";
  const std::string pipeline = dir_ / "replay.toml";
  std::string text = read_text_file(k_example);
  const std::string at = "[source]\n";
  text.replace(text.find(at), at.size(), at + "max_records_per_second = 4000\n");
  write_text_file(pipeline, text + "\n[checkpoint]\ndir = \"" + cp.string() +
                                "\"\ninterval = \"100ms\"\nretain = 20\n");
  auto r = run_eddy({"run", "-c", pipeline, "--bootstrap", bootstrap_, "--exit-at-end"}, 60s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  uint64_t newest = 0, count = 0;
  for (const auto& e : std::filesystem::directory_iterator(cp / "epochs"))
    if (std::filesystem::exists(e.path() / "manifest.json")) {
      newest = std::max<uint64_t>(newest, std::stoull(e.path().filename().string()));
      ++count;
    }
  ASSERT_GE(count, 2u) << "eddy run took fewer than two checkpoints";
  {  // the newest checkpoint's state is damaged: a restore falls back to the one before
    std::fstream io(cp / "epochs" / std::to_string(newest) / "db" / "CURRENT",
                    std::ios::in | std::ios::out | std::ios::binary);
    char c = 0;
    io.read(&c, 1);
    io.seekp(0);
    c = static_cast<char>(c ^ 0x5A);
    io.write(&c, 1);
  }
  r = run_eddy({"coordinator", "-c", pipeline, "--listen", "127.0.0.1:0", "--state-dir", dir_ / "c",
                "--bootstrap", bootstrap_, "--take-over-run"},
               30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 1) << r->status.describe() << r->err;
  EXPECT_NE(r->err.find("epoch log"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find(".." + std::to_string(newest) + " after its newest checkpoint"),
            std::string::npos)
      << r->err;
  EXPECT_FALSE(std::filesystem::exists(cp / "cluster" / "epochs")) << "a manifest was written";
  // eddy run can still go on: it replays the logged epoch.
  r = run_eddy({"run", "-c", pipeline, "--bootstrap", bootstrap_, "--exit-at-end"}, 60s);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  EXPECT_NE(r->err.find("replaying epoch(s) " + std::to_string(newest)), std::string::npos)
      << r->err;
}

/// A unit file of the newest committed epoch damaged on the shared storage: every worker that
/// restores it fails, and after three generations in a row the coordinator ends (exit 1) with
/// the file named, instead of moving the units between the workers for ever.
TEST_F(cluster_membership, a_damaged_unit_file_ends_the_coordinator_with_the_file_named) {
  start_broker(k_topic + ":2");
  ASSERT_TRUE(produce_with({"--count", "3000", "--seed", "5"}));
  auto r = run_eddy(
      {"run", "-c", pipeline_, "--bootstrap", bootstrap_, "--as-cluster", "--exit-at-end"}, 60s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  std::string snap;  // the newest snapshot of shard s1
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "checkpoints/cluster/units/s1"))
    if (e.path().extension() == ".snap" && e.path().string() > snap) snap = e.path().string();
  ASSERT_FALSE(snap.empty());
  std::string bytes = read_text_file(snap);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x40);
  write_text_file(snap, bytes);

  start_coordinator();
  start_worker("w1");
  start_worker("w2");
  EXPECT_TRUE(coordinator_.wait_for_line("could not be restored in 3 generations in a row", 60s))
      << coordinator_.text();
  auto status = coordinator_.proc->wait_for(10s);
  ASSERT_TRUE(status) << "the coordinator kept going:\n" << coordinator_.text();
  EXPECT_EQ(status->code, 1) << status->describe();
  const std::string log = coordinator_.text();
  EXPECT_NE(log.find(snap + ": checksum mismatch"), std::string::npos) << log;
  EXPECT_NE(log.find("eddy checkpoint verify --dir"), std::string::npos) << log;
}

TEST_F(cluster_membership, bad_addresses_and_options_are_named) {
  start_broker(k_topic + ":1");
  auto r = run_eddy({"worker", "--join", "localhost", "--local-dir", dir_ / "l"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("--join: expected HOST:PORT"), std::string::npos) << r->err;
  r = run_eddy({"worker", "--join", "127.0.0.1:1", "--local-dir", dir_ / "l", "--name", "a/b"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("a worker name is 1-60 of the characters"), std::string::npos) << r->err;
  r = run_eddy(
      {"worker", "--join", "127.0.0.1:1", "--local-dir", dir_ / "l", "--name", "00012-w1"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("must not start with five digits"), std::string::npos) << r->err;
  r = run_eddy({"worker", "--join", "127.0.0.1:70000", "--local-dir", dir_ / "l"});
  ASSERT_TRUE(r);
  EXPECT_NE(r->err.find("port must be 1..65535"), std::string::npos) << r->err;
  r = run_eddy({"coordinator", "-c", pipeline_, "--listen", "127.0.0.1:0", "--state-dir",
                dir_ / "c", "--bootstrap", bootstrap_, "--heartbeat-ms", "1000",
                "--connection-timeout-ms", "500"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("--connection-timeout-ms must be larger"), std::string::npos) << r->err;
  // The example without a [checkpoint] table: the coordinator has nowhere to commit epochs.
  r = run_eddy({"coordinator", "-c", k_example, "--listen", "127.0.0.1:0", "--state-dir",
                dir_ / "c", "--bootstrap", bootstrap_});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("needs a [checkpoint] table"), std::string::npos) << r->err;
  r = run_eddy({"coordinator", "-c", pipeline_, "--listen", "127.0.0.1:0", "--state-dir",
                dir_ / "c", "--bootstrap", bootstrap_, "--epoch-timeout-ms", "5"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, 2);
  EXPECT_NE(r->err.find("--epoch-timeout-ms"), std::string::npos) << r->err;
}

}  // namespace
}  // namespace eddy::test
