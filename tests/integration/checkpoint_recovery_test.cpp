// checkpoint_recovery_test.cpp — exactly-once recovery through `eddy run`, as processes.
//
// * Crash test: a windowed pipeline over 200k events (3 s disorder, 1% malformed, late rows to
//   the dead letter) is killed with SIGKILL again and again — at random moments, and at named
//   protocol points through EDDY_CRASH_AT (after every snapshot is written but before the epoch
//   is recorded complete; after the sink staged an epoch; between two renames of a sink
//   commit) — and restarted each time on the same checkpoint directory. The published file
//   output and dead letters must equal an uninterrupted run's line for line (none twice, none
//   missing), and the final counters must account for every message exactly once. Seeded: the
//   seed is printed and EDDY_CRASH_SEED reproduces a run.
// * Fallback past a published epoch: the newest epoch's state is damaged after its output was
//   published (also inside the crash test); the restart replays it to the offsets the epoch log
//   recorded, and the output still equals an uninterrupted run's.
// * Corruption: damaged files in the newest checkpoint make the run fall back to the previous
//   one with a warning naming the file; with no intact checkpoint it refuses to start (and
//   says --reset), never silently starting over.
// * A pipeline changed incompatibly is refused with what differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "state/epoch_log.hpp"
#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

/// A windowed pipeline writing files (exact aggregates only: the sketches' results depend on how
/// rows were cut into partials, which differs between any two runs, crashed or not); `extra_source`
/// lands in [source], `checkpoint` is the body of [checkpoint], `extra_pipeline` lands in
/// [pipeline].
std::string crash_toml(const std::string& topic, const fs::path& out, const fs::path& dead,
                       const std::string& checkpoint, const std::string& extra_source = "",
                       const std::string& window_size = "1m",
                       const std::string& extra_pipeline = "") {
  return "[pipeline]\nname = \"crash\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n" +
         extra_pipeline + "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" + topic +
         "\"\nformat = \"auto\"\n" + extra_source + ride_fields_toml(false) +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
         "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
         "\n[[aggregates]]\nalias = \"avg_booking_value\"\nfunction = \"avg\"\n"
         "field = \"booking_value\"\n"
         "\n[[aggregates]]\nalias = \"max_ride_distance\"\nfunction = \"max\"\n"
         "field = \"ride_distance\"\n"
         "\n[[aggregates]]\nalias = \"pickup_locations\"\nfunction = \"count_distinct\"\n"
         "field = \"pickup_location\"\n"
         "\n[aggregate]\ngroup_by = [\"vehicle_type\", \"pickup_location\"]\nshards = 3\n"
         "\n[window]\ntype = \"tumbling\"\nsize = \"" +
         window_size +
         "\"\ntime_field = \"created_at_ts\"\n"
         "max_out_of_orderness = \"2s\"\nemit = \"on_close\"\nlate = \"dead_letter\"\n"
         "\n[[sinks]]\ntype = \"file\"\npath = \"" +
         out.string() + "\"\n\n[dead_letter]\npath = \"" + dead.string() + "\"\n" +
         "\n[checkpoint]\n" + checkpoint;
}

/// A plain pipeline (partition, offset and id of every row) writing files in parts of 100 rows.
std::string plain_toml(const std::string& topic, const fs::path& out, const fs::path& dead,
                       const std::string& checkpoint, const std::string& extra_source = "") {
  return "[pipeline]\nname = \"replay\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
         "max_rows_per_batch = 100\n\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
         topic + "\"\nformat = \"auto\"\n" + extra_source +
         "\n[[fields]]\nname = \"kafka_partition\"\ncolumn = \"$partition\"\ntype = \"int\"\n"
         "\n[[fields]]\nname = \"kafka_offset\"\ncolumn = \"$offset\"\ntype = \"int\"\n"
         "\n[[fields]]\nname = \"id\"\ncolumn = \"id\"\ntype = \"int\"\nrequired = true\n"
         "\n[[sinks]]\ntype = \"file\"\npath = \"" +
         out.string() + "\"\n\n[dead_letter]\npath = \"" + dead.string() + "\"\n" +
         "\n[checkpoint]\n" + checkpoint;
}

/// Complete epochs in checkpoint directory `cp`, oldest first (not the "damaged-..." ones).
std::vector<uint64_t> complete_epochs(const fs::path& cp) {
  std::vector<uint64_t> out;
  for (const auto& e : fs::directory_iterator(cp / "epochs"))
    if (const std::string n = e.path().filename().string();
        fs::exists(e.path() / "manifest.json") && !n.empty() &&
        n.find_first_not_of("0123456789") == std::string::npos)
      out.push_back(std::stoull(n));
  std::sort(out.begin(), out.end());
  return out;
}

/// Flips one bit pattern in the first byte of `f`.
void flip_first_byte(const fs::path& f) {
  std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
  char c = 0;
  io.read(&c, 1);
  io.seekp(0);
  c = static_cast<char>(c ^ 0x5A);
  io.write(&c, 1);
}

/// Every line of the published files `prefix`*.jsonl in `dir`, sorted.
std::vector<std::string> published_lines(const fs::path& dir, std::string_view prefix) {
  std::vector<std::string> lines;
  for (const auto& f : jsonl_files(dir, prefix))
    for (auto& l : split_lines(read_text_file(f))) lines.push_back(std::move(l));
  std::sort(lines.begin(), lines.end());
  return lines;
}

/// Lines of `a` missing from `b` (multiset difference), at most `limit` of them.
std::vector<std::string> missing(const std::vector<std::string>& a,
                                 const std::vector<std::string>& b, size_t limit = 3) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  if (out.size() > limit) out.resize(limit);
  return out;
}

class checkpoint_recovery : public eddy_fixture {
 protected:
  checkpoint_recovery() : eddy_fixture("eddy-recovery") {}

  std::vector<std::string> run_args(const std::string& config, bool exit_at_end) {
    std::vector<std::string> a = {EDDY_BINARY, "run", "-c", config, "--bootstrap", bootstrap_};
    if (exit_at_end) a.push_back("--exit-at-end");
    return a;
  }

  /// `eddy run --exit-at-end` to its end; the summary JSON (test failure when it fails).
  std::optional<json::object> run_to_end(const std::string& config, std::string* err = nullptr) {
    const std::string summary = dir_ / ("summary" + std::to_string(++runs_) + ".json");
    auto r = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                       "--summary-json", summary},
                      120s);
    if (!r) return std::nullopt;
    if (err) *err = r->err;
    EXPECT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
    if (!r->status.ok()) return std::nullopt;
    return parse_object(read_text_file(summary));
  }

  int runs_ = 0;

  /// `eddy run --exit-at-end` with EDDY_CRASH_AT=`crash_at`: it must kill itself there. Its
  /// stderr.
  std::string run_until_crash(const std::string& config, const std::string& crash_at) {
    const std::string base = dir_ / ("crashed" + std::to_string(++runs_));
    child_process proc({.argv = run_args(config, /*exit_at_end=*/true),
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr"),
                        .env = {"EDDY_CRASH_AT=" + crash_at}});
    auto status = proc.wait_for(60s);
    if (!status) {
      proc.send_signal(SIGKILL);
      status = proc.wait_for(10s);
      ADD_FAILURE() << "never reached " << crash_at
                    << "; stderr: " << read_text_file(base + ".stderr");
    } else {
      EXPECT_TRUE(!status->exited && status->signal == SIGKILL)
          << crash_at << ": " << status->describe()
          << "; stderr: " << read_text_file(base + ".stderr");
    }
    return read_text_file(base + ".stderr");
  }

  void crash_and_compare(const std::string& state_backend);
  void replay_after_fallback(bool windowed);
};

TEST_F(checkpoint_recovery, a_fallback_past_a_published_epoch_replays_it_without_duplicates) {
  replay_after_fallback(false);
}

TEST_F(checkpoint_recovery, a_windowed_fallback_past_published_epochs_replays_them_exactly) {
  replay_after_fallback(true);
}

/// Replayed epochs that cover the whole input must not swallow the final drain: the run was
/// killed after two epochs had read everything (no drain: no --exit-at-end), the epochs from the
/// first of those on are damaged, and the restart with --exit-at-end replays them; the drain's
/// rows (every window still open) belong to the new final epoch, not to a replayed one, whose
/// output is not written.
TEST_F(checkpoint_recovery, the_drain_after_a_replayed_epoch_is_published) {
  const std::string topic = "rides_replay_drain";
  constexpr int k_count = 20000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  ASSERT_TRUE(produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format",
                            "unwrapped", "--disorder-ms", "3000", "--seed", "5"})
                  .has_value());
  auto write_config = [&](const std::string& name) {
    const std::string config = dir_ / (name + ".toml");
    write_text_file(config, crash_toml(topic, dir_ / (name + "-out"), dir_ / (name + "-dead"),
                                       "dir = \"" + (dir_ / (name + "-cp")) +
                                           "\"\ninterval = \"100ms\"\nretain = 20\n",
                                       "", "1m"));
    return config;
  };
  ASSERT_TRUE(run_to_end(write_config("ref")).has_value());
  const auto ref_rows = published_lines(dir_ / "ref-out", "part-");
  ASSERT_GT(ref_rows.size(), 100u);

  const std::string config = write_config("run");
  const std::string cp = dir_ / "run-cp";
  const std::string base = dir_ / "endless";
  child_process proc({.argv = run_args(config, /*exit_at_end=*/false),
                      .out = redirect::file(base + ".stdout"),
                      .err = redirect::file(base + ".stderr")});
  // Wait until two complete epochs after the last one that had not read everything ended at the
  // end of the input (each with an epoch log entry).
  auto read_everything = [&](uint64_t e) {
    std::string err;
    auto entry = read_epoch_log(cp, e, &err);
    int64_t sum = 0;
    if (entry)
      for (const auto& [p, off] : entry->end_offsets) sum += off;
    return sum == k_count;
  };
  auto full_after_partial = [&](const std::vector<uint64_t>& epochs, uint64_t* partial) {
    size_t full = 0;
    for (size_t i = epochs.size(); i-- > 0;) {
      if (!read_everything(epochs[i])) {
        *partial = epochs[i];
        return full;
      }
      ++full;
    }
    return size_t{0};  // the partial epoch is not known (yet)
  };
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  uint64_t partial = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(fs::path(cp) / "epochs") &&
        full_after_partial(complete_epochs(cp), &partial) >= 2)
      break;
    std::this_thread::sleep_for(5ms);
  }
  proc.send_signal(SIGKILL);
  ASSERT_TRUE(proc.wait_for(10s).has_value());
  const auto epochs = complete_epochs(cp);
  ASSERT_GE(full_after_partial(epochs, &partial), 2u) << read_text_file(base + ".stderr");
  const uint64_t newest = epochs.back();
  for (uint64_t e = partial + 1; e <= newest; ++e)
    flip_first_byte(fs::path(cp) / "epochs" / std::to_string(e) / "db/CURRENT");

  std::string err;
  ASSERT_TRUE(run_to_end(config, &err).has_value());
  EXPECT_NE(
      err.find("replaying epoch(s) " + std::to_string(partial + 1) + ".." + std::to_string(newest)),
      std::string::npos)
      << err;
  const auto rows = published_lines(dir_ / "run-out", "part-");
  EXPECT_EQ(rows.size(), ref_rows.size());
  EXPECT_EQ(missing(ref_rows, rows), std::vector<std::string>{}) << "rows missing";
  EXPECT_EQ(missing(rows, ref_rows), std::vector<std::string>{}) << "rows twice";
}

/// Issue 10, point 7: the newest epoch L published its files, then its state is damaged; the
/// restart falls back to L-1 and (slower, so that a re-cut epoch L would cover fewer offsets than
/// the published one) is killed mid-replay, restarted, killed after new epochs published, and
/// finished. The output must equal an uninterrupted run's: no row twice, none missing, in the
/// files and the dead letters alike. The windowed variant damages the two newest epochs.
void checkpoint_recovery::replay_after_fallback(bool windowed) {
  const std::string topic = windowed ? "rides_replay_windowed" : "rides_replay";
  constexpr int k_count = 100000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced =
      produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format", "unwrapped",
                    "--disorder-ms", "3000", "--bad-ratio", "0.01", "--seed", "31"});
  ASSERT_TRUE(produced.has_value());
  auto write_config = [&](const std::string& name, const std::string& extra_source) {
    const std::string config = dir_ / (name + ".toml");
    const std::string cp = "dir = \"" + (dir_ / (name + "-cp")) + "\"\ninterval = \"200ms\"\n";
    write_text_file(config, windowed
                                ? crash_toml(topic, dir_ / (name + "-out"), dir_ / (name + "-dead"),
                                             cp, extra_source, "1s", "max_rows_per_batch = 100\n")
                                : plain_toml(topic, dir_ / (name + "-out"), dir_ / (name + "-dead"),
                                             cp, extra_source));
    return config;
  };
  auto ref_summary = run_to_end(write_config("ref", ""));
  ASSERT_TRUE(ref_summary.has_value());
  const auto ref_rows = published_lines(dir_ / "ref-out", "part-");
  const auto ref_dead = published_lines(dir_ / "ref-dead", "dead-letter-");
  ASSERT_GT(ref_rows.size(), windowed ? 100u : 90000u);
  ASSERT_GT(ref_dead.size(), 100u);

  // (1) 5000 records/s; killed right after the 6th epoch published its files.
  const fs::path cp = fs::path(dir_ / "run-cp"), out = fs::path(dir_ / "run-out");
  std::string config = write_config("run", "max_records_per_second = 5000\n");
  run_until_crash(config, "published:6");
  const auto epochs = complete_epochs(cp);
  ASSERT_GE(epochs.size(), 3u);
  const uint64_t newest = epochs.back();
  const size_t parts = jsonl_files(out, epoch_file_stem("part", newest)).size();
  if (!windowed) {
    EXPECT_GE(parts, 3u) << "epoch " << newest << " published few parts";
  }
  // (2) Its state is damaged (the windowed variant: also the one before).
  const uint64_t restored = windowed ? newest - 2 : newest - 1;
  for (uint64_t e = restored + 1; e <= newest; ++e)
    flip_first_byte(cp / "epochs" / std::to_string(e) / "db/CURRENT");
  const std::string replaying =
      "replaying epoch(s) " + std::to_string(restored + 1) + ".." + std::to_string(newest);
  // (3) 500 records/s: killed mid-replay (every snapshot of the first epoch written), then again
  // after two epochs published.
  config = write_config("run", "max_records_per_second = 500\n");
  std::string err = run_until_crash(config, "checkpoint:1");
  EXPECT_NE(err.find("checkpoint " + std::to_string(newest) + ": epochs/" + std::to_string(newest) +
                     "/db/CURRENT: checksum mismatch"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("resuming from checkpoint " + std::to_string(restored)), std::string::npos)
      << err;
  EXPECT_NE(err.find(replaying), std::string::npos) << err;
  err = run_until_crash(config, "published:" + std::to_string(newest - restored + 2));
  EXPECT_NE(err.find("resuming from checkpoint " + std::to_string(restored)), std::string::npos)
      << err;
  EXPECT_NE(err.find(replaying), std::string::npos) << err;
  EXPECT_GT(complete_epochs(cp).back(), newest + 1);
  // (4) To the end, without a cap.
  auto summary = run_to_end(write_config("run", ""));
  ASSERT_TRUE(summary.has_value());

  const auto rows = published_lines(out, "part-");
  const auto dead = published_lines(dir_ / "run-dead", "dead-letter-");
  EXPECT_EQ(rows.size(), ref_rows.size());
  EXPECT_EQ(missing(ref_rows, rows), std::vector<std::string>{}) << "rows missing";
  EXPECT_EQ(missing(rows, ref_rows), std::vector<std::string>{}) << "rows twice";
  EXPECT_TRUE(rows == ref_rows);
  EXPECT_EQ(dead.size(), ref_dead.size());
  EXPECT_EQ(missing(ref_dead, dead), std::vector<std::string>{}) << "dead letters missing";
  EXPECT_EQ(missing(dead, ref_dead), std::vector<std::string>{}) << "dead letters twice";
  for (const char* k : {"in", "out", "filtered", "dead_lettered", "late"})
    EXPECT_EQ(int_at(*summary, k), int_at(*ref_summary, k)) << k;
}

TEST_F(checkpoint_recovery, output_after_repeated_sigkills_equals_an_uninterrupted_run) {
  crash_and_compare("memory");
}

TEST_F(checkpoint_recovery,
       with_state_in_rocksdb_output_after_sigkills_equals_an_uninterrupted_run) {
  crash_and_compare("rocksdb");
}

void checkpoint_recovery::crash_and_compare(const std::string& state_backend) {
  const std::string topic = "rides_crash";
  constexpr int k_count = 200000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced =
      produce_with({"--topic", topic, "--count", std::to_string(k_count), "--format", "unwrapped",
                    "--disorder-ms", "3000", "--bad-ratio", "0.01", "--seed", "23"});
  ASSERT_TRUE(produced.has_value());
  ASSERT_EQ(int_at(*produced, "produced"), k_count);

  // The uninterrupted reference run (checkpoints on too, never killed).
  const fs::path ref_out = dir_ / "ref-out", ref_dead = dir_ / "ref-dead";
  const std::string ref_config = dir_ / "reference.toml";
  write_text_file(ref_config, crash_toml(topic, ref_out, ref_dead,
                                         "dir = \"" + (dir_ / "ref-checkpoints") +
                                             "\"\ninterval = \"200ms\"\n"));
  auto ref_summary = run_to_end(ref_config);
  ASSERT_TRUE(ref_summary.has_value());
  const auto ref_rows = published_lines(ref_out, "part-");
  const auto ref_dead_letters = published_lines(ref_dead, "dead-letter-");
  ASSERT_GT(ref_rows.size(), 10u);
  ASSERT_GT(ref_dead_letters.size(), 100u);

  // The same pipeline, throttled so that kills land mid-stream, killed at least 20 times. It
  // emits and writes one row at a time (max_rows_per_batch = 1): every window closes over
  // several steps, kills land mid-close (a checkpoint waits for the close to finish), and every
  // row is a part file.
  const fs::path out = dir_ / "out", dead = dir_ / "dead";
  const std::string config = dir_ / "crash.toml";
  write_text_file(
      config,
      crash_toml(topic, out, dead,
                 "dir = \"" + (dir_ / "checkpoints") +
                     "\"\ninterval = \"150ms\"\nstate_backend = \"" + state_backend + "\"\n",
                 "max_records_per_second = 20000\n", "1m", "max_rows_per_batch = 1\n"));
  uint64_t seed = 20261125;
  if (const char* s = std::getenv("EDDY_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("EDDY_CRASH_SEED=" + std::to_string(seed));
  std::cerr << "crash test seed: " << seed << " (EDDY_CRASH_SEED reproduces it)\n";

  // "published": killed right after an epoch published its output; then its state is damaged
  // (a flipped byte in its CURRENT), so that the next run falls back past a published epoch and
  // must replay it exactly.
  const char* points[] = {"checkpoint", "stage", "publish", "published"};
  std::map<std::string, int> kills;
  int total_kills = 0;
  for (int i = 0; i < 24; ++i) {
    std::vector<std::string> env;
    std::string how;
    std::chrono::milliseconds deadline;
    if (i % 2 == 1) {
      // At a protocol point: the process kills itself there (the n-th time it gets there).
      const std::string point = points[(i / 2) % 4];
      const int nth = std::uniform_int_distribution<int>(1, 4)(rng);
      env.push_back("EDDY_CRASH_AT=" + point + ":" + std::to_string(nth));
      how = point;
      // It gets there within a few epochs while input flows; once the input is consumed and no
      // window closes (no drain), a publish point may never come: then the deadline kills it,
      // and that kill counts as a random one.
      deadline = 10s;
    } else {
      how = "random";
      deadline = std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 1400)(rng));
    }
    const std::string base = dir_ / ("crash" + std::to_string(i));
    child_process proc({.argv = run_args(config, /*exit_at_end=*/false),
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
    ++total_kills;
    if (how == "published") {
      const auto epochs = complete_epochs(fs::path(dir_ / "checkpoints"));
      ASSERT_FALSE(epochs.empty());
      // With one complete epoch there is nothing to fall back to (eddy rightly refuses to start
      // over silently): only a later epoch is damaged.
      if (epochs.size() >= 2)
        flip_first_byte(fs::path(dir_ / "checkpoints") / "epochs" / std::to_string(epochs.back()) /
                        "db/CURRENT");
    }
    // Nothing half-written is ever visible.
    for (const auto& f : jsonl_files(out, "part-")) EXPECT_GT(fs::file_size(f), 0u);
  }
  EXPECT_GE(total_kills, 20);
  for (const char* p : points) EXPECT_GE(kills[p], 3) << p;

  // Progress was made across the kills (the checkpoints moved forward).
  auto final_summary = run_to_end(config);
  ASSERT_TRUE(final_summary.has_value());
  EXPECT_FALSE(fs::exists(out / "_staging") && !fs::is_empty(out / "_staging"));

  const auto rows = published_lines(out, "part-");
  const auto dead_letters = published_lines(dead, "dead-letter-");
  EXPECT_EQ(rows.size(), ref_rows.size());
  EXPECT_EQ(missing(ref_rows, rows), std::vector<std::string>{}) << "rows missing after crashes";
  EXPECT_EQ(missing(rows, ref_rows), std::vector<std::string>{}) << "rows extra after crashes";
  EXPECT_TRUE(rows == ref_rows);
  EXPECT_EQ(dead_letters.size(), ref_dead_letters.size());
  EXPECT_EQ(missing(ref_dead_letters, dead_letters), std::vector<std::string>{});
  EXPECT_EQ(missing(dead_letters, ref_dead_letters), std::vector<std::string>{});

  // Counters are checkpointed with the offsets: every message counted exactly once overall.
  for (const char* k : {"in", "out", "filtered", "dead_lettered", "late"})
    EXPECT_EQ(int_at(*final_summary, k), int_at(*ref_summary, k)) << k;
  EXPECT_EQ(int_at(*final_summary, "in"), k_count);
}

/// Runs `config` to the end twice with new data in between, so that the checkpoint directory
/// holds several complete epochs; returns them, oldest first.
class checkpoint_corruption : public checkpoint_recovery {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(start_broker(topic_ + ":2"));
    config_ = dir_ / "p.toml";
    write_text_file(config_, crash_toml(topic_, dir_ / "out", dir_ / "dead",
                                        "dir = \"" + (dir_ / "cp") +
                                            "\"\ninterval = \"50ms\"\n"
                                            "retain = 5\n"));
    for (int round = 0; round < 2; ++round) {
      ASSERT_TRUE(produce_with({"--topic", topic_, "--count", "20000", "--seed",
                                std::to_string(round + 1), "--rate", "40000"})
                      .has_value());
      ASSERT_TRUE(run_to_end(config_).has_value());
    }
  }

  std::vector<uint64_t> epochs() {
    std::vector<uint64_t> out;
    for (const auto& e : fs::directory_iterator(dir_ / "cp/epochs"))
      if (const std::string n = e.path().filename().string();
          fs::exists(e.path() / "manifest.json") && !n.empty() &&
          n.find_first_not_of("0123456789") == std::string::npos)
        out.push_back(std::stoull(n));  // not the "damaged-..." directories moved aside
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Files (relative to the checkpoint dir) the manifest of `epoch` lists.
  std::vector<std::string> files_of(uint64_t epoch) {
    const json::object o = parse_object(
        read_text_file(dir_ / ("cp/epochs/" + std::to_string(epoch) + "/manifest.json")));
    std::vector<std::string> files;
    for (const auto& f : o.at("files").as_array())
      files.push_back(std::string(f.as_object().at("path").as_string()));
    return files;
  }

  const std::string topic_ = "rides_corrupt";
  std::string config_;
};

TEST_F(checkpoint_corruption, a_flipped_byte_in_the_newest_checkpoint_falls_back_to_the_previous) {
  const auto before = epochs();
  ASSERT_GE(before.size(), 2u);
  const uint64_t newest = before.back();
  const auto files = files_of(newest);
  ASSERT_FALSE(files.empty());
  // A file only the newest epoch has (its own MANIFEST copy is always per epoch).
  std::string victim;
  for (const auto& f : files)
    if (f.starts_with("epochs/")) victim = f;
  ASSERT_FALSE(victim.empty());
  {
    std::fstream io(dir_ / "cp/" + victim, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(0);
    char c = 0;
    io.read(&c, 1);
    io.seekp(0);
    c = static_cast<char>(c ^ 0x5A);
    io.write(&c, 1);
  }
  std::string err;
  ASSERT_TRUE(run_to_end(config_, &err).has_value());
  EXPECT_NE(err.find("warning: checkpoint " + std::to_string(newest) + ": " + victim),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("resuming from checkpoint " + std::to_string(before[before.size() - 2])),
            std::string::npos)
      << err;
  // The damaged epoch was moved aside; the run went on with fresh epochs after the restored one.
  EXPECT_NE(err.find("damaged checkpoint " + std::to_string(newest) + " moved aside"),
            std::string::npos)
      << err;
  bool aside = false;
  for (const auto& e : fs::directory_iterator(dir_ / "cp/epochs"))
    aside = aside || e.path().filename().string().starts_with("damaged-" + std::to_string(newest));
  EXPECT_TRUE(aside);
  auto verify = run_eddy({"checkpoint", "verify", "--dir", dir_ / "cp"});
  ASSERT_TRUE(verify.has_value());
  EXPECT_TRUE(verify->status.ok()) << verify->out << verify->err;
}

TEST_F(checkpoint_corruption,
       a_truncated_file_falls_back_and_no_intact_checkpoint_refuses_to_start) {
  const auto before = epochs();
  ASSERT_GE(before.size(), 2u);
  const uint64_t newest = before.back();
  std::string victim;
  for (const auto& f : files_of(newest))
    if (f.starts_with("epochs/")) victim = f;
  ASSERT_FALSE(victim.empty());
  fs::resize_file(dir_ / "cp/" + victim, 1);
  std::string err;
  ASSERT_TRUE(run_to_end(config_, &err).has_value());
  EXPECT_NE(err.find("warning: checkpoint " + std::to_string(newest) + ": " + victim),
            std::string::npos)
      << err;

  // Damage every epoch: eddy refuses, naming --reset, rather than starting over.
  for (uint64_t e : epochs())
    for (const auto& f : files_of(e))
      if (f.starts_with("epochs/")) fs::resize_file(dir_ / "cp/" + f, 0);
  auto r = run_eddy({"run", "-c", config_, "--bootstrap", bootstrap_, "--exit-at-end"});
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->status.ok());
  EXPECT_NE(r->err.find("--reset"), std::string::npos) << r->err;

  // --reset starts over on purpose.
  auto reset =
      run_eddy({"run", "-c", config_, "--bootstrap", bootstrap_, "--exit-at-end", "--reset"});
  ASSERT_TRUE(reset.has_value());
  EXPECT_TRUE(reset->status.ok()) << reset->err;
  EXPECT_NE(reset->err.find("--reset: removed the checkpoints"), std::string::npos) << reset->err;
}

TEST_F(checkpoint_corruption, commits_the_checkpointed_offsets_to_kafka_for_lag_monitors) {
  std::string err;
  // group.id defaults to "eddy-" + the pipeline name.
  auto consumer = kafka_consumer::create(bootstrap_, "eddy-crash", {}, &err);
  ASSERT_NE(consumer, nullptr) << err;
  auto offsets = consumer->committed(topic_, {0, 1}, 10'000, &err);
  ASSERT_EQ(offsets.size(), 2u) << err;
  int64_t total = 0;
  for (const auto& [p, off] : offsets) {
    EXPECT_GT(off, 0) << "partition " << p;
    total += off;
  }
  EXPECT_EQ(total, 40000);  // both runs read to the end: every message's offset is committed
}

TEST_F(checkpoint_corruption, an_incompatible_pipeline_change_is_refused_with_what_differs) {
  write_text_file(config_, crash_toml(topic_, dir_ / "out", dir_ / "dead",
                                      "dir = \"" + (dir_ / "cp") + "\"\n", "", "5m"));
  auto r = run_eddy({"run", "-c", config_, "--bootstrap", bootstrap_, "--exit-at-end"});
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->status.ok());
  EXPECT_NE(r->err.find("window"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("--reset"), std::string::npos) << r->err;
}

}  // namespace
}  // namespace eddy::test
