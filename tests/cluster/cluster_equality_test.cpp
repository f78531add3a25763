// cluster_equality_test.cpp — a cluster's output equals one process's (issue 11).
//
// One development broker per run of this binary holds a 16-partition topic: 200k ride-booking
// CDC events (3 s of disorder, 1% malformed), then one record per partition dated a day later
// (the flush records, below). The reference is `eddy run --exit-at-end` over that topic with the
// same pipeline text (its own checkpoint and output directories): the multiset of its published
// result rows and of its dead letters. A cluster — `eddy coordinator` and `eddy worker`s on
// loopback, sharing one output, dead-letter and checkpoint directory — must publish the same
// multisets while workers are killed (kill -9, ten times), paused past the heartbeat bound
// (SIGSTOP) and added or stopped (SIGTERM).
//
// The flush records: a streaming cluster never reaches the end of its input, so it never drains
// its open windows the way `--exit-at-end` does. The flush records move every partition's
// watermark a day past the data, which closes every window of the data in the cluster too; only
// the flush records' own windows stay open there. So for the windowed pipeline both sides are
// compared on the rows whose window ends at or before the flush time (the reference's rows after
// it are exactly the flush records' windows; the cluster must have none). The cleaned-row
// pipeline has no windows and is compared whole.
//
// Done: workers never exit at the end of the input. The cluster is done when a committed
// manifest (checkpoint.dir/cluster/epochs/) has every partition's next offset at its end offset
// and two newer manifests followed (the epoch after the input's last one may still carry rows of
// windows the last records closed; a manifest after that one means its publish finished).
//
// The harness is validated against `eddy run` alone (the tests named harness_...): references
// with other checkpoint intervals are equal, a streaming `eddy run` stopped after the flush
// records equals the cut reference, and the comparison finds a missing, a duplicated and a
// changed row. The cluster tests need the workers to run their units (PROTOCOL.md); until they
// do, they fail after 30 s without a committed manifest, printing the processes' logs.
//
// Every wait is a condition with a deadline; each cluster test has an overall bound. Every
// process is stopped and every temporary directory removed, also on failure
// (EDDY_KEEP_TEST_DIRS=1 keeps them). EDDY_CLUSTER_SEED reproduces the random choices.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "state/epoch_log.hpp"
#include "tests/cluster/cluster_harness.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ride_fields.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/credits.hpp"

namespace eddy::test {
namespace {

using namespace cluster;

const std::string k_topic = "business_postgres.public.business_ncr_ride_bookings";
constexpr int k_partitions = 16;
constexpr int k_events = 200000;
constexpr int64_t k_data_start_us = 1762473600000000;  // produce's default: 2025-11-07T00:00:00Z
// The data's event times span 200 s (1 ms apart) minus up to 3 s of disorder. The flush records
// are dated a day after the first event (on a minute boundary, so their 10 s windows start at
// the flush time and end after it).
constexpr int64_t k_flush_us = k_data_start_us + 86'400'000'000;
// Read-rate caps (source.max_records_per_second) of the runs that must last while workers are
// killed, paused, added or stopped: 200k records at 4000/s take 50 s, at 8000/s 25 s (a third of
// that if a cluster applies the cap per worker).
constexpr int64_t k_kill_rate = 4000;
constexpr int64_t k_change_rate = 8000;
constexpr auto k_first_commit_bound = 30s;

enum class kind { windowed, cleaned };
const char* name_of(kind k) {
  return k == kind::windowed ? "windowed" : "cleaned";
}

struct run_paths {
  fs::path out, dead, checkpoint;
};

/// The pipeline text, absolute paths throughout (workers receive the text, not the file).
/// Windowed: deploy/pipelines/ncr_windowed.toml's shape (count, avg, p95 per vehicle type) with
/// pickup_location as a second key and 10 s windows, so that there are thousands of rows and
/// each group has < 1000 values (the p95 sketch is exact below that, so that its result does not
/// depend on how the rows were cut into partials; checked on the reference). Cleaned: the rows
/// of ncr_ride_bookings.toml plus their partition and offset.
std::string pipeline_toml(kind k, const std::string& name, const std::string& bootstrap,
                          const run_paths& p, const std::string& interval = "500ms",
                          int64_t max_records_per_second = 0) {
  std::string t = "[pipeline]\nname = \"" + name +
                  "\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n"
                  "\n[source]\nbootstrap_servers = \"" +
                  bootstrap + "\"\ntopic = \"" + k_topic +
                  "\"\nstarting_offsets = \"earliest\"\nformat = \"auto\"\n";
  if (max_records_per_second > 0)
    t += "max_records_per_second = " + std::to_string(max_records_per_second) + "\n";
  if (k == kind::windowed) {
    t += ride_fields_toml(false) +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
         "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
         "\n[[aggregates]]\nalias = \"avg_booking_value\"\nfunction = \"avg\"\n"
         "field = \"booking_value\"\n"
         "\n[[aggregates]]\nalias = \"p95_ride_distance\"\nfunction = \"p95\"\n"
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
  t += "\n[[sinks]]\ntype = \"file\"\npath = \"" + p.out.string() +
       "\"\n\n[dead_letter]\npath = \"" + p.dead.string() + "\"\n\n[checkpoint]\ndir = \"" +
       p.checkpoint.string() + "\"\ninterval = \"" + interval + "\"\n";
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
int64_t ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

struct reference_output {
  std::vector<std::string> rows, dead;
};

/// What every test of this binary shares: the broker with its topic, the references.
struct shared_input {
  std::unique_ptr<temp_dir> dir;
  std::unique_ptr<child_process> broker;
  std::string bootstrap;
  std::map<int32_t, int64_t> end_offsets;
  std::string error;  ///< set when building it failed: every later test fails with it
  std::map<kind, reference_output> references;
  int commands = 0;
};

const std::vector<std::string> k_three = {"w1", "w2", "w3"};

class cluster_equality : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    if (!shared_) return;
    if (shared_->broker) {
      const exit_status s = shared_->broker->terminate(10s);
      EXPECT_TRUE(s.ok()) << "eddy broker after SIGTERM: " << s.describe();
    }
    shared_.reset();
  }

  void SetUp() override {
    start_ = steady::now();
    ASSERT_NO_FATAL_FAILURE(ensure_input());
    dir_ = std::make_unique<temp_dir>("eddy-cluster-eq");
  }

  void TearDown() override {
    if (cluster_ && HasFailure())
      std::cerr << "=== " << (watch_ ? watch_->status() : std::string("no manifests watched"))
                << "\n"
                << cluster_->logs_tail();
    cluster_.reset();  // stops every process before the directories go
    watch_.reset();
    dir_.reset();
  }

  // ---- the shared input ------------------------------------------------------------------------

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

  /// Starts the broker and writes the topic, once per run of this binary.
  static std::string build_input() {
    shared_->dir = std::make_unique<temp_dir>("eddy-cluster-eq-input");
    shared_->broker = std::make_unique<child_process>(child_process::options{
        .argv = {EDDY_BINARY, "broker", "--topic", k_topic + ":" + std::to_string(k_partitions)},
        .out = redirect::pipe(),
        .err = redirect::file(*shared_->dir / "broker.stderr")});
    auto line = shared_->broker->read_stdout_line(20s);
    if (!line || !line->starts_with("bootstrap="))
      return "no bootstrap line from eddy broker; stderr: " +
             read_text_file(*shared_->dir / "broker.stderr");
    shared_->bootstrap = line->substr(std::string_view("bootstrap=").size());
    const auto t0 = steady::now();
    if (auto e = produce({"--count", std::to_string(k_events), "--disorder-ms", "3000",
                          "--bad-ratio", "0.01", "--seed", "11"});
        !e.empty())
      return e;
    const double data_s = seconds_since(t0);
    // The flush records: one per partition, a day after the data, never malformed. The first
    // message of a produce run is always a create or snapshot read, so each passes the filters.
    for (int p = 0; p < k_partitions; ++p)
      if (auto e = produce({"--count", "1", "--partition", std::to_string(p), "--start-time-us",
                            std::to_string(k_flush_us), "--bad-ratio", "0", "--seed",
                            std::to_string(1000 + p)});
          !e.empty())
        return e;
    std::string err;
    auto consumer = kafka_consumer::create(shared_->bootstrap, "cluster-eq-offsets", {}, &err);
    if (!consumer) return "kafka consumer: " + err;
    const auto partitions = consumer->partitions(k_topic, 10000, &err);
    if (partitions.size() != static_cast<size_t>(k_partitions))
      return "expected " + std::to_string(k_partitions) + " partitions: " + err;
    int64_t total = 0;
    for (int32_t p : partitions) {
      int64_t lo = 0, hi = 0;
      if (!consumer->watermarks(k_topic, p, &lo, &hi, 10000, &err)) return "watermarks: " + err;
      if (lo != 0) return "partition " + std::to_string(p) + " lost old data (broker retention)";
      shared_->end_offsets[p] = hi;
      total += hi;
    }
    if (total != k_events + k_partitions)
      return "the topic holds " + std::to_string(total) + " records, expected " +
             std::to_string(k_events + k_partitions);
    std::cerr << "input: " << total << " records over " << k_partitions
              << " partitions, produced in " << data_s
              << " s (+ flush records: " << seconds_since(t0) - data_s << " s)\n";
    return "";
  }

  static void ensure_input() {
    if (!shared_) {
      shared_ = std::make_unique<shared_input>();
      shared_->error = build_input();
    }
    ASSERT_EQ(shared_->error, "") << "building the shared input failed";
  }

  // ---- references ------------------------------------------------------------------------------

  /// `eddy run --exit-at-end` over the topic with the pipeline of kind `k`; its published rows
  /// and dead letters. `tag` names its directories; `interval` is its checkpoint interval.
  static std::optional<reference_output> run_reference(kind k, const std::string& tag,
                                                       const std::string& interval) {
    const fs::path base = *shared_->dir / ("ref-" + tag);
    const run_paths p{base / "out", base / "dead", base / "checkpoints"};
    fs::create_directories(base);
    const std::string config = (base / "pipeline.toml").string();
    write_text_file(config, pipeline_toml(k, "eq_ref_" + tag, shared_->bootstrap, p, interval));
    const auto t0 = steady::now();
    auto r = run_to_end(
        {"run", "-c", config, "--exit-at-end", "--summary-json", (base / "summary.json").string()},
        (base / "run").string(), 120s);
    if (!r) return std::nullopt;
    EXPECT_TRUE(r->status.ok()) << "reference " << tag << ": " << r->status.describe()
                                << "; stderr:\n"
                                << r->err;
    if (!r->status.ok()) return std::nullopt;
    const auto summary = parse_object(read_text_file(base / "summary.json"));
    EXPECT_EQ(int_at(summary, "in"), k_events + k_partitions) << tag;
    reference_output out{published_lines(p.out), published_lines(p.dead)};
    std::cerr << "reference " << tag << ": " << out.rows.size() << " rows, " << out.dead.size()
              << " dead letters in " << seconds_since(t0) << " s\n";
    return out;
  }

  /// The reference of kind `k` (checkpoint interval 500 ms), computed once per binary run.
  static const reference_output* reference(kind k) {
    if (auto it = shared_->references.find(k); it != shared_->references.end()) return &it->second;
    auto r = run_reference(k, name_of(k), "500ms");
    if (!r) return nullptr;
    return &(shared_->references[k] = std::move(*r));
  }

  // ---- one cluster per test --------------------------------------------------------------------

  /// Writes the pipeline and starts the coordinator; the test must end within `bound`.
  bool begin_cluster(kind k, const std::string& name, int64_t rate, std::chrono::seconds bound,
                     std::vector<std::string> timing_options = {},
                     std::vector<std::string> coordinator_options = {}) {
    kind_ = k;
    deadline_ = start_ + bound;
    bound_ = bound;
    paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
    const std::string config = *dir_ / "pipeline.toml";
    std::string text = pipeline_toml(k, name, shared_->bootstrap, paths_, "500ms", rate);
    if (edit_pipeline_) text = edit_pipeline_(text);
    write_text_file(config, text);
    worker_options_ = timing_options;
    cluster_ = std::make_unique<test_cluster>(fs::path(*dir_ / "cluster"), EDDY_BINARY, config,
                                              shared_->bootstrap);
    watch_ = std::make_unique<completion_watch>(paths_.checkpoint, shared_->end_offsets);
    coordinator_options.insert(coordinator_options.end(), timing_options.begin(),
                               timing_options.end());
    return cluster_->start_coordinator(coordinator_options);
  }

  void start_worker(const std::string& name, const std::vector<std::string>& env = {}) {
    cluster_->start_worker(name, worker_options_, env);
  }

  /// Polls the manifests until `ok` holds; false (with a failure saying `what`) at `limit` or
  /// at the test's bound, whichever comes first.
  bool wait_manifests(const std::function<bool()>& ok, const std::string& what,
                      std::chrono::milliseconds limit) {
    const auto until = std::min(deadline_, steady::now() + limit);
    for (;;) {
      watch_->poll();
      if (ok()) return true;
      if (steady::now() >= until) break;
      std::this_thread::sleep_for(10ms);  // polling files for a condition
    }
    ADD_FAILURE() << what << " within "
                  << (until == deadline_
                          ? "the test's bound of " + std::to_string(bound_.count()) + " s"
                          : std::to_string(limit.count() / 1000) + " s")
                  << "; " << watch_->status();
    return false;
  }

  /// The early check: some epoch commits within 30 s of the workers' start.
  bool wait_first_commit() {
    return wait_manifests(
        [&] { return watch_->any(); },
        "no epoch committed (no manifest in " + manifest_dir(paths_.checkpoint).string() + ")",
        k_first_commit_bound);
  }
  /// A manifest of generation `g` or newer.
  bool wait_commit_in(uint64_t g, const std::string& what) {
    return wait_manifests(
        [&] {
          return g == 0 ? watch_->any() : watch_->first_of_generation_after(g - 1).has_value();
        },
        "no epoch committed in generation " + std::to_string(g) + " or later (" + what + ")", 30s);
  }
  bool wait_done() {
    return wait_manifests([&] { return watch_->done(); },
                          "the input was not committed and published completely", bound_);
  }

  std::string percent_committed() {
    watch_->poll();
    return std::to_string(100 * watch_->committed() / std::max<int64_t>(1, watch_->total())) + "%";
  }

  /// The cluster's published output against the reference (see the file comment). `whole`: no
  /// cut at the flush time (a cluster that drained its windows at the end, --exit-at-end).
  void expect_output_equals_reference(bool whole = false) {
    const reference_output* ref = reference(kind_);
    ASSERT_NE(ref, nullptr);
    auto rows = published_lines(paths_.out);
    auto dead = published_lines(paths_.dead);
    std::vector<std::string> want = ref->rows;
    if (kind_ == kind::windowed && !whole) {
      const auto got = split_at_window_end(rows, k_flush_us);
      const auto ref_cut = split_at_window_end(ref->rows, k_flush_us);
      EXPECT_TRUE(got.bad.empty())
          << got.bad.size() << " rows without a window_end, e.g. " << got.bad.front();
      // A streaming cluster has no reason to close the flush records' windows: a row of one
      // means a window was closed before the watermark passed it (a drain on failover?).
      EXPECT_TRUE(got.after.empty()) << got.after.size() << " rows of windows ending after the "
                                     << "flush time, e.g. " << got.after.front();
      rows = got.kept;
      want = ref_cut.kept;
    }
    const row_diff d = compare_rows(want, rows);
    EXPECT_TRUE(d.equal()) << d.describe("result rows");
    const row_diff dl = compare_rows(ref->dead, dead);
    EXPECT_TRUE(dl.equal()) << dl.describe("dead letters");
    std::cerr << name_of(kind_) << ": " << rows.size() << " rows and " << dead.size()
              << " dead letters compared" << (d.inexact ? ", " : "")
              << (d.inexact ? std::to_string(d.inexact) + " equal within 1e-12 only" : "") << "\n";
  }

  /// `kills` times: kill -9 a random worker, wait for the coordinator's loss line and an epoch
  /// committed without it (the failover gap: kill -> that manifest's creation), restart it, wait
  /// for an epoch committed with all three again, a random 0-300 ms more, the next kill. After
  /// each kill every unit the victim held must be reported resumed by a survivor ("unit p3
  /// resumed from epoch E (moved from w1), N ms after the loss of w1 was detected"), E being the
  /// epoch the first generation after the loss restored; without aggregation the survivors must
  /// say they went on from where they were, and restore nothing.
  void kill9_loop(kind k, const std::string& name, int kills) {
    ASSERT_NE(reference(k), nullptr);
    start_ = steady::now();
    ASSERT_TRUE(begin_cluster(k, name, k_kill_rate, 180s));
    for (const auto& w : k_three) start_worker(w);
    ASSERT_TRUE(wait_first_commit());
    auto gen = rng();
    auto& coord = cluster_->coordinator_log();
    int mid_stream = 0;
    for (int kill = 1; kill <= kills; ++kill) {
      auto members_gen = cluster_->wait_for_members(k_three, deadline_);
      ASSERT_TRUE(members_gen) << "the three workers were not all members again";
      ASSERT_TRUE(
          wait_commit_in(*members_gen, "all three workers, before kill " + std::to_string(kill)));
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 300)(gen)));
      const std::string victim = k_three[std::uniform_int_distribution<size_t>(0, 2)(gen)];
      const auto a = cluster_->assignment();
      ASSERT_TRUE(a);
      const uint64_t gen_before = test_cluster::generation(*a);
      std::vector<std::string> victim_units;  // what the survivors must report resuming
      if (const auto* o = a->if_contains("owners"); o && o->is_object())
        for (const auto& [u, w] : o->as_object())
          if (w.is_string() && w.as_string() == victim) victim_units.emplace_back(u);
      ASSERT_FALSE(victim_units.empty()) << victim << " held no units before kill " << kill;
      std::map<std::string, size_t> survivor_from;
      for (const auto& w : k_three)
        if (w != victim) survivor_from[w] = cluster_->worker_log(w).size();
      const std::string done_before = percent_committed();
      mid_stream += watch_->committed() < watch_->total() ? 1 : 0;
      const size_t from = coord.size();

      const auto t_kill = steady::now();
      const int64_t kill_unix_ms = unix_ms_now();
      cluster_->kill9(victim);
      auto lost =
          coord.wait_for("worker " + victim + " lost", std::min(deadline_, t_kill + 10s), from);
      ASSERT_TRUE(lost) << "kill " << kill << ": no 'worker " << victim << " lost' within 10 s";
      const auto regen = coord.wait_for("generation ", std::min(deadline_, t_kill + 2s), *lost);
      ASSERT_TRUE(
          wait_commit_in(gen_before + 1, "after kill " + std::to_string(kill) + " of " + victim));
      const manifest m = *watch_->first_of_generation_after(gen_before);
      // Each of the victim's units resumed on a survivor, from the epoch the first generation
      // started after the loss restored, with the time since the loss was detected.
      auto started = coord.wait_for(" started: ", std::min(deadline_, steady::now() + 10s), *lost);
      ASSERT_TRUE(started) << "kill " << kill << ": no generation started after the loss";
      const std::string& started_line = coord.at(*started).text;
      const size_t ep_at = started_line.find("restored from epoch ");
      ASSERT_NE(ep_at, std::string::npos) << started_line;
      const std::string restored = std::to_string(
          std::stoull(started_line.substr(ep_at + std::strlen("restored from epoch "))));
      int64_t slowest_resume_ms = -1;
      for (const auto& u : victim_units) {
        const std::string needle =
            "unit " + u + " resumed from epoch " + restored + " (moved from " + victim + "), ";
        std::optional<std::string> line;
        for (const auto until = std::min(deadline_, steady::now() + 10s); !line;) {
          for (auto& [w, from] : survivor_from)
            if (auto i = cluster_->worker_log(w).find(needle, from))
              line = cluster_->worker_log(w).at(*i).text;
          if (line || steady::now() >= until) break;
          std::this_thread::sleep_for(5ms);  // polling logs for a condition
        }
        ASSERT_TRUE(line) << "kill " << kill << ": no survivor logged '" << needle << "...'";
        const std::string after = " ms after the loss of " + victim + " was detected";
        const size_t ms_end = line->find(after);
        ASSERT_NE(ms_end, std::string::npos) << *line;
        const size_t ms_at = line->rfind(", ", ms_end) + 2;
        const int64_t ms = std::stoll(line->substr(ms_at, ms_end - ms_at));
        EXPECT_GE(ms, 0) << *line;
        EXPECT_LT(ms, 10000) << *line;
        slowest_resume_ms = std::max(slowest_resume_ms, ms);
      }
      // Without aggregation the survivors go on from where they are: only the victim's
      // partitions rewind. With it every unit restarts from the restored epoch.
      for (auto& [w, from] : survivor_from) {
        auto& log = cluster_->worker_log(w);
        const auto kept = log.find("go on from where they are", from);
        if (k == kind::cleaned) {
          EXPECT_TRUE(kept) << "kill " << kill << ": survivor " << w << " did not keep its units";
          EXPECT_FALSE(log.find("restored its units from epoch", from))
              << "kill " << kill << ": survivor " << w << " rewound every unit";
        } else {
          EXPECT_FALSE(kept) << "kill " << kill << ": " << w << " kept shard state across a loss";
        }
      }
      std::cerr << "kill " << kill << ": " << victim << " in generation " << gen_before << ", "
                << done_before << " of the input committed; loss logged after "
                << ms_between(t_kill, coord.at(*lost).seen) << " ms, "
                << (regen ? "'" + coord.at(*regen).text.substr(0, 60) + "' after " +
                                std::to_string(ms_between(t_kill, coord.at(*regen).seen)) + " ms"
                          : std::string("no generation line"))
                << "; first epoch committed in a newer generation: " << m.epoch << " (generation "
                << m.generation << ") " << m.created_unix_ms - kill_unix_ms
                << " ms after the kill; " << victim_units.size()
                << " units resumed on the others from epoch " << restored << ", the last "
                << slowest_resume_ms << " ms after the loss was detected\n";
      start_worker(victim);
    }
    ASSERT_TRUE(cluster_->wait_for_members(k_three, deadline_));
    ASSERT_TRUE(wait_done());
    std::cerr << "done after " << seconds_since(start_) << " s; " << mid_stream << " of " << kills
              << " kills before the whole input was committed\n";
    EXPECT_GE(mid_stream, kills / 2)
        << "the input was committed too early for the kills to matter: "
           "lower k_kill_rate";
    expect_output_equals_reference();
  }

  /// A seeded generator; EDDY_CLUSTER_SEED overrides the seed.
  std::mt19937_64 rng() {
    uint64_t seed = 20261202;
    if (const char* s = std::getenv("EDDY_CLUSTER_SEED")) seed = std::strtoull(s, nullptr, 10);
    std::cerr << "seed " << seed << " (EDDY_CLUSTER_SEED reproduces the choices)\n";
    return std::mt19937_64(seed);
  }

  static inline std::unique_ptr<shared_input> shared_;
  steady::time_point start_;
  steady::time_point deadline_;
  std::chrono::seconds bound_{120};
  std::unique_ptr<temp_dir> dir_;
  kind kind_ = kind::windowed;
  run_paths paths_;
  std::vector<std::string> worker_options_;
  std::function<std::string(std::string)> edit_pipeline_;  ///< applied by begin_cluster if set
  std::unique_ptr<test_cluster> cluster_;
  std::unique_ptr<completion_watch> watch_;
};

// ---- the harness, validated against `eddy run` ------------------------------------------------

TEST_F(cluster_equality, harness_references_do_not_depend_on_the_checkpoint_interval) {
  for (kind k : {kind::windowed, kind::cleaned}) {
    SCOPED_TRACE(name_of(k));
    const reference_output* ref = reference(k);
    ASSERT_NE(ref, nullptr);
    auto other = run_reference(k, std::string(name_of(k)) + "-100ms", "100ms");
    ASSERT_TRUE(other.has_value());
    const row_diff d = compare_rows(ref->rows, other->rows);
    EXPECT_TRUE(d.equal()) << d.describe("rows");
    const row_diff dl = compare_rows(ref->dead, other->dead);
    EXPECT_TRUE(dl.equal()) << dl.describe("dead letters");
    if (d.inexact) std::cerr << d.inexact << " rows equal within 1e-12 only\n";

    // The premises of the comparison: ~1% malformed records and, windowed, late rows among the
    // dead letters; every p95 over fewer than 1000 values (exact, whatever the partials).
    size_t late = 0;
    for (const auto& l : ref->dead)
      late += str_at(parse_object(l), "reason").starts_with("late:") ? 1 : 0;
    EXPECT_GE(ref->dead.size() - late, size_t{k_events / 100});
    if (k == kind::windowed) {
      EXPECT_GT(late, 100u);
      EXPECT_GT(ref->rows.size(), 1000u);
      int64_t most = 0;
      for (const auto& l : ref->rows) most = std::max(most, int_at(parse_object(l), "bookings"));
      EXPECT_LT(most, 1000) << "a group with more values: its p95 is a sketch's estimate";
    } else {
      EXPECT_EQ(late, 0u);
      EXPECT_GT(ref->rows.size(), size_t{k_events / 2});
    }
  }
}

/// A streaming `eddy run` (no --exit-at-end) killed once it committed the whole input and two
/// more epochs: what a streaming cluster has published at that point. (Killed as soon as the
/// input's epoch is logged, without waiting for a newer one, thousands of rows are missing:
/// the wait matters.) Its rows must equal the reference's cut at
/// the flush time, and the reference's rows after the cut must be the flush records' windows.
TEST_F(cluster_equality, harness_a_streaming_run_after_the_flush_records_equals_the_cut_reference) {
  const reference_output* ref = reference(kind::windowed);
  ASSERT_NE(ref, nullptr);
  const run_paths p{fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"),
                    fs::path(*dir_ / "checkpoints")};
  const std::string config = *dir_ / "pipeline.toml";
  write_text_file(config, pipeline_toml(kind::windowed, "eq_streaming", shared_->bootstrap, p));
  child_process proc({.argv = {EDDY_BINARY, "run", "-c", config},
                      .out = redirect::file(*dir_ / "run.stdout"),
                      .err = redirect::file(*dir_ / "run.stderr")});
  // Done as for a cluster, from the epoch log instead of cluster manifests.
  auto covers = [&](uint64_t e) {
    std::string err;
    auto entry = read_epoch_log(p.checkpoint.string(), e, &err);
    if (!entry) return false;
    for (const auto& [part, end] : shared_->end_offsets)
      if (auto it = entry->end_offsets.find(part);
          it == entry->end_offsets.end() || it->second != end)
        return false;
    return true;
  };
  const auto deadline = steady::now() + 60s;
  std::optional<uint64_t> covering;
  int newer = 0;
  while (!(covering && newer >= 2) && steady::now() < deadline && proc.running()) {
    std::string err;
    const auto epochs = list_epoch_log(p.checkpoint.string(), &err);
    for (size_t i = 0; !covering && i < epochs.size(); ++i)
      if (covers(epochs[i])) covering = epochs[i];
    if (covering)
      newer = static_cast<int>(
          std::count_if(epochs.begin(), epochs.end(), [&](uint64_t e) { return e > *covering; }));
    std::this_thread::sleep_for(10ms);  // polling files for a condition
  }
  ASSERT_GE(newer, 2) << "the streaming run did not commit its whole input and two more epochs "
                         "within 60 s; stderr:\n"
                      << read_text_file(*dir_ / "run.stderr");
  // What is published now is what a cluster would show at this point: SIGKILL, not SIGTERM
  // (whose final epoch would publish more).
  proc.send_signal(SIGKILL);
  ASSERT_TRUE(proc.wait_for(10s));

  const auto streamed = split_at_window_end(published_lines(p.out), k_flush_us);
  const auto drained = split_at_window_end(ref->rows, k_flush_us);
  EXPECT_TRUE(streamed.bad.empty());
  EXPECT_TRUE(drained.bad.empty());
  EXPECT_TRUE(streamed.after.empty()) << "a streaming run closed a window after the flush time";
  const row_diff d = compare_rows(drained.kept, streamed.kept);
  EXPECT_TRUE(d.equal()) << d.describe("rows up to the flush time");
  EXPECT_GT(drained.kept.size(), 1000u);
  // The rows past the cut: the flush records' windows, which only a drain closes.
  ASSERT_FALSE(drained.after.empty());
  int64_t flush_bookings = 0;
  for (const auto& l : drained.after) {
    const auto o = parse_object(l);
    EXPECT_EQ(parse_utc_micros(str_at(o, "window_start")), k_flush_us) << l;
    flush_bookings += int_at(o, "bookings");
  }
  EXPECT_EQ(flush_bookings, k_partitions);
  const row_diff dl = compare_rows(ref->dead, published_lines(p.dead));
  EXPECT_TRUE(dl.equal()) << dl.describe("dead letters");
}

TEST(cluster_harness, the_comparison_finds_missing_duplicated_and_changed_rows) {
  const std::vector<std::string> base = {
      R"j({"window_end":"2025-11-07T00:00:10Z","vehicle_type":"Auto","bookings":3,"avg":2310.92})j",
      R"j({"window_end":"2025-11-07T00:00:10Z","vehicle_type":"Bike","bookings":2,"avg":0.1})j",
      R"j({"window_end":"2025-11-07T00:00:20Z","vehicle_type":"Auto","bookings":1,"avg":null})j",
      R"j({"topic":"t","partition":4,"offset":142,"reason":"late: window [a, b)"})j"};
  auto d = compare_rows(base, base);
  EXPECT_TRUE(d.equal());
  EXPECT_EQ(d.inexact, 0u);

  auto v = base;
  v.erase(v.begin() + 1);
  d = compare_rows(base, v);
  EXPECT_EQ(d.missing_count, 1u);
  EXPECT_EQ(d.extra_count, 0u);
  EXPECT_EQ(d.missing.at(0), base[1]);

  v = base;
  v.push_back(base[3]);
  d = compare_rows(base, v);
  EXPECT_EQ(d.missing_count, 0u);
  EXPECT_EQ(d.extra_count, 1u);

  v = base;  // a count off by one
  v[0] =
      R"j({"window_end":"2025-11-07T00:00:10Z","vehicle_type":"Auto","bookings":4,"avg":2310.92})j";
  d = compare_rows(base, v);
  EXPECT_EQ(d.missing_count, 1u);
  EXPECT_EQ(d.extra_count, 1u);

  v = base;  // an average off by 1e-9 relative: a real difference
  v[0] =
      R"j({"window_end":"2025-11-07T00:00:10Z","vehicle_type":"Auto","bookings":3,"avg":2310.9200023})j";
  EXPECT_FALSE(compare_rows(base, v).equal());

  v = base;  // an average off in its last bit (another summation order): equal, counted
  const double next = std::nextafter(2310.92, 1e9);
  v[0] = R"j({"window_end":"2025-11-07T00:00:10Z","vehicle_type":"Auto","bookings":3,"avg":)j" +
         json::serialize(json::value(next)) + "}";
  d = compare_rows(base, v);
  EXPECT_TRUE(d.equal()) << d.describe("rows");
  EXPECT_EQ(d.inexact, 1u);

  v = base;  // keys in another order, a string changed
  v[2] = R"j({"bookings":1,"avg":null,"vehicle_type":"Auto","window_end":"2025-11-07T00:00:20Z"})j";
  v[3] = R"j({"topic":"t","partition":4,"offset":142,"reason":"late: window [a, c)"})j";
  d = compare_rows(base, v);
  EXPECT_EQ(d.missing_count, 1u);
  EXPECT_EQ(d.extra_count, 1u);
  EXPECT_EQ(d.missing.at(0), base[3]);

  d = compare_rows(base, {"not json", base[0], base[1], base[2]});
  EXPECT_EQ(d.unparsable, 1u);
  EXPECT_EQ(d.extra_count, 1u);
  EXPECT_EQ(d.missing_count, 1u);
}

TEST(cluster_harness, the_window_cut_keeps_windows_ending_at_or_before_it) {
  const int64_t cut = *parse_utc_micros("2025-11-08T00:00:00Z");
  EXPECT_EQ(cut, k_flush_us);
  EXPECT_EQ(parse_utc_micros("2025-11-07T00:00:10.5Z"), k_data_start_us + 10'500'000);
  EXPECT_EQ(parse_utc_micros("2025-11-07T00:00:10.000001Z"), k_data_start_us + 10'000'001);
  EXPECT_FALSE(parse_utc_micros("2025-11-07 00:00:10"));
  EXPECT_FALSE(parse_utc_micros("2025-13-07T00:00:10Z"));
  const auto s = split_at_window_end(
      {R"j({"window_end":"2025-11-08T00:00:00Z"})j",
       R"j({"window_end":"2025-11-07T23:59:59.999999Z"})j",
       R"j({"window_end":"2025-11-08T00:00:00.000001Z"})j",
       R"j({"window_end":"2025-11-08T00:00:10Z"})j", R"j({"vehicle_type":"Auto"})j", "oops"},
      cut);
  EXPECT_EQ(s.kept.size(), 2u);
  EXPECT_EQ(s.after.size(), 2u);
  EXPECT_EQ(s.bad.size(), 2u);
}

TEST(cluster_harness, output_tags_and_completion_follow_the_protocol_s_names) {
  auto t = tag_of("part-00000000000000000012-3-w2-g7.jsonl");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->worker, "w2");
  EXPECT_EQ(t->generation, 7u);
  t = tag_of("dead-letter-00000000000000000012-0-host-a-g12.jsonl");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->worker, "a");  // names with '-' are not used by these tests
  EXPECT_FALSE(tag_of("part-0000000001.jsonl"));
  EXPECT_FALSE(tag_of("part-1-2-w1-gx.jsonl"));

  temp_dir dir("eddy-harness");
  const fs::path cp = dir.path();
  fs::create_directories(manifest_dir(cp));
  auto write = [&](uint64_t epoch, uint64_t gen, int64_t p0, int64_t p1) {
    json::object o{{"epoch", epoch},
                   {"generation", gen},
                   {"created_unix_ms", 1000 * epoch},
                   {"units",
                    {{"p0", {{"owner", "w1"}, {"next_offset", p0}}},
                     {"p1", {{"owner", "w2"}, {"next_offset", p1}}},
                     {"s0", {{"owner", "w1"}}}}},
                   {"published", json::array{"part-x-w1-g1.jsonl"}}};
    write_text_file(manifest_dir(cp) / (epoch_name(epoch) + ".json"), json::serialize(o));
  };
  completion_watch w(cp, {{0, 10}, {1, 20}});
  EXPECT_FALSE(w.poll());
  EXPECT_FALSE(w.any());
  write(3, 1, 5, 20);
  write(4, 2, 10, 20);                                                       // covers the input
  write_text_file(manifest_dir(cp) / "00000000000000000005.json.tmp", "{");  // not a manifest
  EXPECT_FALSE(w.poll());
  EXPECT_EQ(w.committed(), 30);
  write(5, 2, 10, 20);
  EXPECT_FALSE(w.poll());  // one newer: the covering epoch's publish is done, maybe not the next
  fs::remove(manifest_dir(cp) / (epoch_name(3) + ".json"));  // retention
  fs::remove(manifest_dir(cp) / (epoch_name(4) + ".json"));
  write(9, 4, 10, 20);
  EXPECT_TRUE(w.poll()) << w.status();
  ASSERT_TRUE(w.first_of_generation_after(1));
  EXPECT_EQ(w.first_of_generation_after(1)->epoch, 4u);
  EXPECT_EQ(w.first_of_generation_after(3)->epoch, 9u);
  EXPECT_FALSE(w.first_of_generation_after(4));
  EXPECT_EQ(w.newest()->published, std::vector<std::string>{"part-x-w1-g1.jsonl"});
}

// ---- the cluster ------------------------------------------------------------------------------

TEST_F(cluster_equality, three_workers_publish_the_windowed_reference) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();  // the bound covers the cluster, not the reference run
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_windowed_3", 0, 120s));
  for (const auto& w : k_three) start_worker(w);
  ASSERT_TRUE(wait_first_commit());
  ASSERT_TRUE(wait_done());
  std::cerr << "done after " << seconds_since(start_) << " s\n";
  expect_output_equals_reference();
}

TEST_F(cluster_equality, three_workers_publish_the_cleaned_rows_reference) {
  ASSERT_NE(reference(kind::cleaned), nullptr);
  start_ = steady::now();
  ASSERT_TRUE(begin_cluster(kind::cleaned, "eq_cleaned_3", 0, 120s));
  for (const auto& w : k_three) start_worker(w);
  ASSERT_TRUE(wait_first_commit());
  ASSERT_TRUE(wait_done());
  std::cerr << "done after " << seconds_since(start_) << " s\n";
  expect_output_equals_reference();
  // Each process says what the sink is and what it guarantees, as `eddy run` does.
  const std::string sink_line = "sink 1: file " + paths_.out.string() + "/ (jsonl): exactly-once";
  EXPECT_TRUE(cluster_->coordinator_log().find("eddy coordinator: " + sink_line))
      << "no '" << sink_line << "...' line from the coordinator";
  for (const auto& w : k_three)
    EXPECT_TRUE(cluster_->worker_log(w).find("eddy worker " + w + ": " + sink_line))
        << "no '" << sink_line << "...' line from " << w;
}

/// `eddy coordinator --exit-at-end`: the cluster reads every partition to the end it had at
/// start, closes every window (as `eddy run --exit-at-end`), commits that, and ends by itself:
/// the workers exit 0, then the coordinator. Its output equals the reference whole, the flush
/// records' windows included.
TEST_F(cluster_equality, three_workers_with_exit_at_end_end_by_themselves_equal_to_eddy_run) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_exit_at_end", 0, 120s, {}, {"--exit-at-end"}));
  for (const auto& w : k_three) start_worker(w);
  for (const auto& w : k_three) {
    auto status = cluster_->process(w).wait_for(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - steady::now()));
    ASSERT_TRUE(status) << w << " still runs at the test's bound";
    EXPECT_TRUE(status->ok()) << w << ": " << status->describe();
    EXPECT_TRUE(cluster_->worker_log(w).find("the run is complete")) << w;
  }
  auto status = cluster_->coordinator_process().wait_for(10s);
  ASSERT_TRUE(status) << "the coordinator still runs 10 s after its workers left";
  EXPECT_TRUE(status->ok()) << "eddy coordinator: " << status->describe();
  EXPECT_TRUE(cluster_->coordinator_log().find("eddy coordinator: the input is complete"));
  watch_->poll();
  EXPECT_EQ(watch_->committed(), watch_->total()) << watch_->status();
  std::cerr << "ended by itself after " << seconds_since(start_) << " s\n";
  expect_output_equals_reference(true);
}

/// `eddy run` of the windowed pipeline, stopped by SIGTERM part-way (its windows stay open in its
/// final checkpoint), then `eddy coordinator --take-over-run --exit-at-end` with two workers on
/// the same checkpoint.dir and sinks: the units start from eddy run's state and offsets, and the
/// output of both together equals one `eddy run` over the whole topic. Afterwards eddy run
/// refuses the directory.
TEST_F(cluster_equality, a_cluster_takes_over_eddy_run_s_checkpoints_and_the_output_stays_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  const run_paths p{fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"),
                    fs::path(*dir_ / "checkpoints")};
  const std::string run_config = *dir_ / "run.toml";
  write_text_file(run_config, pipeline_toml(kind::windowed, "eq_take_over", shared_->bootstrap, p,
                                            "500ms", k_change_rate));
  child_process run({.argv = {EDDY_BINARY, "run", "-c", run_config},
                     .out = redirect::file(*dir_ / "run.stdout"),
                     .err = redirect::file(*dir_ / "run.stderr")});
  // Two of eddy run's checkpoints, then SIGTERM: a final checkpoint, windows left open.
  const fs::path second = p.checkpoint / "epochs" / "2" / "manifest.json";
  for (const auto until = steady::now() + 60s; !fs::exists(second) && steady::now() < until;)
    std::this_thread::sleep_for(20ms);  // polling a file for a condition
  ASSERT_TRUE(fs::exists(second)) << "eddy run committed no second checkpoint in 60 s:\n"
                                  << read_text_file(*dir_ / "run.stderr");
  // A take-over while eddy run still runs is refused (it would clear eddy run's local DB).
  auto early = run_to_end({"coordinator", "-c", run_config, "--listen", "127.0.0.1:0",
                           "--state-dir", *dir_ / "early-state", "--take-over-run"},
                          *dir_ / "early", 30s);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status.code, 1) << early->status.describe();
  EXPECT_NE(early->err.find("is still running on"), std::string::npos) << early->err;
  ASSERT_TRUE(run.running()) << read_text_file(*dir_ / "run.stderr");
  run.send_signal(SIGTERM);
  auto run_status = run.wait_for(60s);
  ASSERT_TRUE(run_status) << "eddy run did not stop within 60 s of SIGTERM";
  ASSERT_TRUE(run_status->ok()) << run_status->describe() << read_text_file(*dir_ / "run.stderr");
  const size_t run_rows = published_lines(p.out).size();
  std::cerr << "eddy run stopped after " << seconds_since(start_) << " s with " << run_rows
            << " rows published\n";

  // Without --take-over-run the coordinator refuses the directory; with it, it goes on.
  auto refused = run_to_end({"coordinator", "-c", run_config, "--listen", "127.0.0.1:0",
                             "--state-dir", *dir_ / "refused-state"},
                            *dir_ / "refused", 30s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status.code, 2) << refused->status.describe();
  EXPECT_NE(refused->err.find("--take-over-run"), std::string::npos) << refused->err;
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_take_over", 0, 150s, {},
                            {"--exit-at-end", "--take-over-run"}));
  ASSERT_EQ(paths_.checkpoint, p.checkpoint);
  // The take-over ran under the coordinator's lock, and kept it.
  auto other = run_to_end({"coordinator", "-c", run_config, "--listen", "127.0.0.1:0",
                           "--state-dir", *dir_ / "other-state"},
                          *dir_ / "other", 30s);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status.code, 1) << other->status.describe();
  EXPECT_NE(other->err.find("is in use by another coordinator"), std::string::npos) << other->err;
  for (const std::string w : {"w1", "w2"}) start_worker(w);
  for (const std::string w : {"w1", "w2"}) {
    auto status = cluster_->process(w).wait_for(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - steady::now()));
    ASSERT_TRUE(status) << w << " still runs at the test's bound; " << watch_->status();
    EXPECT_TRUE(status->ok()) << w << ": " << status->describe();
  }
  auto status = cluster_->coordinator_process().wait_for(10s);
  ASSERT_TRUE(status) << "the coordinator still runs 10 s after its workers left";
  EXPECT_TRUE(status->ok()) << "eddy coordinator: " << status->describe();
  EXPECT_TRUE(cluster_->coordinator_log().find("took over eddy run's checkpoint"));
  watch_->poll();
  EXPECT_EQ(watch_->committed(), watch_->total()) << watch_->status();
  expect_output_equals_reference(true);

  auto again = run_to_end({"run", "-c", run_config}, *dir_ / "run-again", 60s);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->status.ok());
  EXPECT_NE(again->err.find("holds the checkpoints of a cluster"), std::string::npos) << again->err;
}

/// `eddy run --as-cluster` runs the cluster's code path in one process (a coordinator and one
/// worker node), so its checkpoint.dir is a cluster's: one stopped by SIGTERM is continued by a
/// coordinator with two workers (scale out, no conversion), that cluster, stopped, by `eddy run
/// --as-cluster --exit-at-end` (scale in), and the output of the three equals one
/// `eddy run --exit-at-end`, row for row and dead letter for dead letter.
TEST_F(cluster_equality, eddy_run_as_cluster_and_a_cluster_continue_each_other_output_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  const std::string name = "eq_as_cluster";
  const run_paths p{fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"),
                    fs::path(*dir_ / "checkpoints")};
  const std::string config = *dir_ / "pipeline.toml";  // begin_cluster writes the same text
  write_text_file(
      config, pipeline_toml(kind::windowed, name, shared_->bootstrap, p, "500ms", k_change_rate));
  auto manifests = [&] { return manifest_epochs(p.checkpoint); };
  // `count` epochs committed after epoch `after`, and more than `rows` rows published.
  auto wait_epochs_after = [&](uint64_t after, int count, size_t rows, const std::string& what) {
    for (const auto until = steady::now() + 60s; steady::now() < until;) {
      auto es = manifests();
      if (std::count_if(es.begin(), es.end(), [&](uint64_t e) { return e > after; }) >= count &&
          published_lines(p.out).size() > rows)
        return true;
      std::this_thread::sleep_for(20ms);  // polling files for a condition
    }
    ADD_FAILURE() << "no " << count << " epochs committed after epoch " << after
                  << " with more than " << rows << " rows published by " << what << " within 60 s";
    return false;
  };

  // 1. eddy run --as-cluster: two committed epochs, then SIGTERM (a last epoch, exit 0).
  {
    child_process run({.argv = {EDDY_BINARY, "run", "-c", config, "--as-cluster"},
                       .out = redirect::file(*dir_ / "run1.stdout"),
                       .err = redirect::file(*dir_ / "run1.stderr")});
    ASSERT_TRUE(wait_epochs_after(0, 2, 0, "eddy run --as-cluster"))
        << read_text_file(*dir_ / "run1.stderr");
    // One coordinator per checkpoint directory: a second one, or eddy run, is refused meanwhile.
    auto second = run_to_end({"coordinator", "-c", config, "--listen", "127.0.0.1:0", "--state-dir",
                              *dir_ / "second-state"},
                             *dir_ / "second", 30s);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status.code, 1) << second->status.describe();
    EXPECT_NE(second->err.find("is in use by another coordinator (pid " +
                               std::to_string(run.pid()) + ")"),
              std::string::npos)
        << second->err;
    auto plain = run_to_end({"run", "-c", config}, *dir_ / "plain-run", 30s);
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->status.code, 1) << plain->status.describe();
    EXPECT_NE(plain->err.find("is in use by a cluster's coordinator"), std::string::npos)
        << plain->err;
    run.send_signal(SIGTERM);
    auto status = run.wait_for(60s);
    ASSERT_TRUE(status) << "eddy run --as-cluster did not stop within 60 s of SIGTERM";
    const std::string err = read_text_file(*dir_ / "run1.stderr");
    ASSERT_TRUE(status->ok()) << status->describe() << err;
    EXPECT_NE(err.find("eddy coordinator: stopping: epoch"), std::string::npos) << err;
  }
  const uint64_t run_last = manifests().back();
  const size_t run_rows = published_lines(p.out).size();
  std::cerr << "eddy run --as-cluster stopped after epoch " << run_last << " with " << run_rows
            << " rows published\n";
  // eddy run on its own path refuses a cluster's directory, naming --as-cluster.
  auto refused = run_to_end({"run", "-c", config}, *dir_ / "refused", 60s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status.code, 1) << refused->status.describe();
  EXPECT_NE(refused->err.find("--as-cluster"), std::string::npos) << refused->err;

  // 2. A coordinator and two workers continue it (no --take-over-run: it is a cluster's).
  ASSERT_TRUE(begin_cluster(kind::windowed, name, k_change_rate, 170s));
  ASSERT_EQ(paths_.checkpoint, p.checkpoint);
  for (const std::string w : {"w1", "w2"}) start_worker(w);
  ASSERT_TRUE(wait_epochs_after(run_last, 2, run_rows, "the cluster")) << cluster_->logs_tail();
  EXPECT_TRUE(cluster_->coordinator_log().find("restored from epoch " + std::to_string(run_last)))
      << cluster_->logs_tail();
  watch_->poll();
  const auto newest = watch_->newest();
  ASSERT_TRUE(newest);
  EXPECT_LT(watch_->committed(), watch_->total()) << "the cluster read the whole input before "
                                                     "it was stopped: nothing is left for step 3";
  // Stopped at once: the workers lose the coordinator and publish nothing more.
  cluster_->coordinator_process().terminate(10s);
  cluster_->stop_all();
  const uint64_t cluster_last = manifests().back();
  EXPECT_GT(cluster_last, run_last);

  // 3. eddy run --as-cluster --exit-at-end takes the rest.
  auto last = run_to_end({"run", "-c", config, "--as-cluster", "--exit-at-end", "--summary-json",
                          *dir_ / "summary.json"},
                         *dir_ / "run3", 120s);
  ASSERT_TRUE(last);
  ASSERT_TRUE(last->status.ok()) << last->status.describe() << last->err;
  EXPECT_NE(last->err.find("restored from epoch " + std::to_string(cluster_last)),
            std::string::npos)
      << last->err;
  const auto summary = parse_object(read_text_file(*dir_ / "summary.json"));
  EXPECT_EQ(int_at(summary, "in"), k_events + k_partitions);  // cumulative, every partition
  EXPECT_TRUE(summary.at("ok").as_bool());
  // This process's own figures, as eddy run reports them: it wrote batches and read input.
  EXPECT_GE(int_at(summary, "batches"), 1);
  EXPECT_GT(int_at(summary, "max_in_flight_bytes"), 0);
  EXPECT_GE(int_at(summary, "max_unreturned_partials"), 1);  // windowed: partials to shards
  expect_output_equals_reference(true);
}

/// `eddy run --as-cluster --exit-at-end` from scratch, with a console sink next to the file
/// sink: the files equal `eddy run --exit-at-end`'s, and the console shows every row too. A
/// cluster worker leaving at the end writes what its per-trigger sinks hold before its units
/// stop (they held the drain's rows, which were lost before).
TEST_F(cluster_equality, eddy_run_as_cluster_to_the_end_writes_files_and_console_like_eddy_run) {
  const reference_output* ref = reference(kind::windowed);
  ASSERT_NE(ref, nullptr);
  start_ = steady::now();
  kind_ = kind::windowed;
  paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
  std::string text = pipeline_toml(kind::windowed, "eq_as_cluster_end", shared_->bootstrap, paths_);
  const std::string sinks = "\n[[sinks]]\n";
  text.replace(text.find(sinks), sinks.size(),
               sinks + "type = \"console\"\nnum_rows = 1000000\ntruncate = false\n" + sinks);
  const std::string config = *dir_ / "pipeline.toml";
  write_text_file(config, text);
  auto r = run_to_end({"run", "-c", config, "--as-cluster", "--exit-at-end"}, *dir_ / "run", 120s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  expect_output_equals_reference(true);
  // Console rows: "|2025-11-07 00:00:00|2025-11-07 00:00:10|Auto |..." (the data's year).
  const std::string console = read_text_file(*dir_ / "run.stdout");
  size_t rows = 0;
  for (size_t at = 0; (at = console.find("\n|20", at)) != std::string::npos; ++at) ++rows;
  EXPECT_EQ(rows, ref->rows.size())
      << "console rows; stdout tail:\n"
      << console.substr(console.size() - std::min<size_t>(console.size(), 2000));
}

/// kill -9 of `eddy run --as-cluster` (the coordinator and the worker die together: a
/// coordinator restart each time) at random moments, 10 times, restarting it each time; then
/// `--exit-at-end`: the output equals one `eddy run --exit-at-end`, nothing lost and nothing
/// twice. Each restart must go on from a committed epoch (its "restored from epoch" line) once
/// one exists.
TEST_F(cluster_equality, ten_kill9s_of_eddy_run_as_cluster_leave_the_output_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  kind_ = kind::windowed;
  paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
  const std::string config = *dir_ / "pipeline.toml";
  write_text_file(config, pipeline_toml(kind::windowed, "eq_as_cluster_kill9", shared_->bootstrap,
                                        paths_, "500ms", k_kill_rate));
  auto gen = rng();
  int restored = 0;
  for (int kill = 1; kill <= 10; ++kill) {
    const std::string log = *dir_ / ("run" + std::to_string(kill) + ".stderr");
    child_process run({.argv = {EDDY_BINARY, "run", "-c", config, "--as-cluster"},
                       .out = redirect::file(*dir_ / "run.stdout"),
                       .err = redirect::file(log)});
    // Alive for 0.3-2.3 s: sometimes before its first commit, mostly between or in epochs.
    const auto alive = std::chrono::milliseconds(300 + gen() % 2000);
    auto early = run.wait_for(alive);
    ASSERT_FALSE(early) << "eddy run --as-cluster ended by itself: " << early->describe() << "\n"
                        << read_text_file(log);
    run.send_signal(SIGKILL);
    ASSERT_TRUE(run.wait_for(10s));
    if (read_text_file(log).find("restored from epoch") != std::string::npos) ++restored;
  }
  EXPECT_GE(restored, 5) << "fewer than 5 of the 10 runs restored a committed epoch";
  const auto committed = manifest_epochs(paths_.checkpoint);
  ASSERT_FALSE(committed.empty()) << "no epoch committed in 10 runs";
  std::string err;
  const auto newest = read_manifest(paths_.checkpoint, committed.back(), &err);
  ASSERT_TRUE(newest) << err;
  int64_t total = 0;
  for (const auto& [_, e] : shared_->end_offsets) total += e;
  const int64_t done = committed_records(*newest, shared_->end_offsets);
  std::cerr << "after 10 kills: " << done << " of " << total << " input records committed\n";
  EXPECT_LT(done, total) << "the input was committed before the last kill: lower k_kill_rate";
  // The rest without the read-rate cap (not part of the pipeline's fingerprint).
  const std::string uncapped = *dir_ / "pipeline-end.toml";
  write_text_file(uncapped,
                  pipeline_toml(kind::windowed, "eq_as_cluster_kill9", shared_->bootstrap, paths_));
  auto last =
      run_to_end({"run", "-c", uncapped, "--as-cluster", "--exit-at-end"}, *dir_ / "last", 120s);
  ASSERT_TRUE(last);
  ASSERT_TRUE(last->status.ok()) << last->status.describe() << last->err;
  expect_output_equals_reference(true);
}

/// kill -9 of the coordinator while three workers run, then the coordinator started again on
/// the same address and state directory: the workers lose it (they stop their units and publish
/// nothing more) and join it again as new members, and the run goes on from the last committed
/// epoch; the output equals `eddy run`'s, nothing lost and nothing twice.
TEST_F(cluster_equality,
       a_coordinator_killed_and_restarted_under_running_workers_leaves_the_output_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_coordinator_restart", k_change_rate, 150s));
  for (const auto& w : k_three) start_worker(w);
  ASSERT_TRUE(wait_first_commit());
  ASSERT_TRUE(cluster_->wait_for_members(k_three, deadline_));
  watch_->poll();
  const auto before = watch_->newest();
  ASSERT_TRUE(before);
  EXPECT_LT(watch_->committed(), watch_->total()) << "the input was committed before the kill";
  cluster_->coordinator_process().send_signal(SIGKILL);
  ASSERT_TRUE(cluster_->coordinator_process().wait_for(10s));
  ASSERT_TRUE(cluster_->restart_coordinator());
  EXPECT_TRUE(cluster_->wait_for_members(k_three, deadline_))
      << "the workers did not all join the restarted coordinator; " << cluster_->logs_tail();
  ASSERT_TRUE(wait_done());
  EXPECT_TRUE(cluster_->coordinator_log().find("last complete epoch")) << cluster_->logs_tail();
  for (const auto& w : k_three)
    EXPECT_TRUE(cluster_->worker_log(w).find("lost the coordinator")) << w;
  watch_->poll();
  EXPECT_GT(watch_->newest()->generation, before->generation);
  expect_output_equals_reference();
}

/// `eddy run` of a pipeline without [checkpoint] runs the cluster's code path (a coordinator and
/// one worker node in one process; run_faults_test's cluster_coordinator and unit_host faults
/// show it): no epochs, output per trigger, the run ends once the worker's sink drained (every
/// partition read to its end, every window closed), and it says nothing about membership. The
/// files and the counters equal those of `eddy run --exit-at-end` with checkpoints (eddy run's
/// own epochs).
TEST_F(cluster_equality, eddy_run_without_checkpoints_equals_eddy_run_with_them) {
  const reference_output* ref = reference(kind::windowed);
  ASSERT_NE(ref, nullptr);
  start_ = steady::now();
  kind_ = kind::windowed;
  paths_ = {fs::path(*dir_ / "out"), fs::path(*dir_ / "dead"), fs::path(*dir_ / "checkpoints")};
  std::string text =
      pipeline_toml(kind::windowed, "eq_as_cluster_plain", shared_->bootstrap, paths_);
  text.erase(text.find("\n[checkpoint]\n"));  // the last table
  const std::string config = *dir_ / "pipeline.toml";
  write_text_file(config, text);
  auto r =
      run_to_end({"run", "-c", config, "--exit-at-end", "--summary-json", *dir_ / "summary.json"},
                 *dir_ / "run", 120s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  EXPECT_EQ(r->err.find("eddy coordinator:"), std::string::npos) << r->err;
  EXPECT_EQ(r->err.find("eddy worker local:"), std::string::npos) << r->err;
  EXPECT_FALSE(fs::exists(paths_.checkpoint));
  const auto summary = parse_object(read_text_file(*dir_ / "summary.json"));
  EXPECT_EQ(int_at(summary, "in"), k_events + k_partitions);
  EXPECT_EQ(int_at(summary, "dead_lettered") + int_at(summary, "filtered") +
                int_at(summary, "out") + int_at(summary, "late"),
            int_at(summary, "in"));
  EXPECT_GE(int_at(summary, "batches"), 1);
  expect_output_equals_reference(true);
}

/// Ten kill -9s of random workers running the windowed pipeline (every unit restarts from the
/// last committed epoch after each: kill9_loop).
TEST_F(cluster_equality, ten_kill9s_of_random_workers_leave_the_output_equal) {
  kill9_loop(kind::windowed, "eq_kill9", 10);
}

/// Five kill -9s of random workers running the cleaned-row pipeline: the survivors keep their
/// partitions running, only the victim's rewind, and the output stays equal.
TEST_F(cluster_equality, kill9s_under_cleaned_rows_rewind_only_the_moved_partitions) {
  kill9_loop(kind::cleaned, "eq_kill9_cleaned", 5);
}

/// The epoch number in an output file's name ("part-0000000012-00001-w1-g3.jsonl" -> 12; a path
/// before it is ignored); 0 when there is none.
uint64_t epoch_in_name(std::string_view name) {
  if (const size_t slash = name.rfind('/'); slash != std::string_view::npos)
    name.remove_prefix(slash + 1);
  const size_t at = name.find_first_of("0123456789");
  if (at == std::string_view::npos || at == 0 || name[at - 1] != '-') return 0;
  uint64_t e = 0;
  std::from_chars(name.data() + at, name.data() + name.size(), e);
  return e;
}

/// An epoch that a loss aborts after the survivors staged it: w2's sink hangs (EDDY_HANG_AT), so
/// the open epoch cannot complete while w1 and w3 stage theirs; then w2 is killed. Without
/// aggregation the survivors keep running and their output since the last committed epoch,
/// the aborted epoch's staged files included, is committed with the new generation's first
/// epoch: that manifest lists files named after an older epoch, and the output stays equal.
TEST_F(cluster_equality, an_epoch_aborted_by_a_loss_carries_the_survivors_staged_output) {
  ASSERT_NE(reference(kind::cleaned), nullptr);
  start_ = steady::now();
  // Small output parts: a sink stages its rows every 200 while an epoch is open, so the
  // survivors' output shows in staging even when the stalled epoch holds none of their rows (on
  // a slow machine, e.g. under ASan, they may start reading only after it began).
  edit_pipeline_ = [](std::string t) {
    const std::string at = "trigger_interval_ms = 100\n";
    return t.replace(t.find(at), at.size(), at + "max_rows_per_batch = 200\n");
  };
  ASSERT_TRUE(begin_cluster(kind::cleaned, "eq_carry", k_kill_rate, 150s));
  start_worker("w1");
  start_worker("w3");
  start_worker("w2", {"EDDY_HANG_AT=sink:300"});
  ASSERT_TRUE(wait_first_commit());
  ASSERT_TRUE(cluster_->wait_for_members(k_three, deadline_));
  // w2's sink hangs after 300 results: no epoch commits from then on. Waits until the epoch
  // after the newest committed one is stalled (nothing committed for 1.5 s) and both survivors
  // staged output for it (on a slow machine, e.g. under ASan, they may lag behind their input).
  std::optional<manifest> stalled;
  // Both survivors staged output after `committed` (in its next epoch, or as parts of a later
  // one still open): output the loss will have to carry.
  auto survivors_staged = [&](uint64_t committed) {
    std::set<std::string> workers;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(paths_.out / "_staging", ec)) {
      uint64_t e = 0;
      const std::string name = d.path().filename().string();
      if (std::from_chars(name.data(), name.data() + name.size(), e).ec != std::errc() ||
          e <= committed)
        continue;
      std::error_code fec;
      for (const auto& f : fs::directory_iterator(d.path(), fec))
        if (auto t = tag_of(f.path().filename().string())) workers.insert(t->worker);
    }
    return workers.contains("w1") && workers.contains("w3");
  };
  for (const auto until = std::min(deadline_, steady::now() + 60s); steady::now() < until;) {
    watch_->poll();
    const auto n = watch_->newest();
    if (n && n->generation > 0 && unix_ms_now() - n->created_unix_ms > 1500 &&
        survivors_staged(n->epoch)) {
      stalled = n;
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling the manifests and staging for a condition
  }
  ASSERT_TRUE(stalled) << "the epochs never stalled on w2's hung sink with w1 and w3 staged: "
                       << watch_->status();
  ASSERT_LT(watch_->committed(), watch_->total()) << "w2 hung only after the input was committed";
  const auto a = cluster_->assignment();
  ASSERT_TRUE(a);
  const uint64_t gen_before = test_cluster::generation(*a);
  std::map<std::string, size_t> survivor_from;
  for (const std::string w : {"w1", "w3"}) survivor_from[w] = cluster_->worker_log(w).size();
  cluster_->kill9("w2");
  ASSERT_TRUE(wait_commit_in(gen_before + 1, "after w2 was killed"));
  const manifest m = *watch_->first_of_generation_after(gen_before);
  std::vector<std::string> carried;
  for (const auto& f : m.published)
    if (const uint64_t e = epoch_in_name(f); e > stalled->epoch && e < m.epoch)
      carried.push_back(f);
  EXPECT_FALSE(carried.empty()) << "epoch " << m.epoch << ", the first after epoch "
                                << stalled->epoch << " and the loss, published no file staged "
                                << "for the aborted epoch between them";
  for (auto& [w, from] : survivor_from)
    EXPECT_TRUE(cluster_->worker_log(w).find("go on from where they are", from))
        << w << " did not keep its units";
  std::cerr << "epoch " << stalled->epoch << " committed before w2 hung; epoch " << m.epoch
            << " published " << carried.size() << " files of the aborted epoch(s) between\n";
  start_worker("w2");
  ASSERT_TRUE(cluster_->wait_for_members(k_three, deadline_));
  ASSERT_TRUE(wait_done());
  expect_output_equals_reference();
}

/// SIGSTOP a worker past the heartbeat bound (1 s, heartbeats every 200 ms): the coordinator
/// declares it lost and goes on without it; after SIGCONT it notices, rejoins, and nothing it
/// staged in its old generation is ever published.
TEST_F(cluster_equality, a_paused_worker_is_fenced_and_the_output_stays_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_pause", k_change_rate, 120s,
                            {"--heartbeat-ms", "200", "--connection-timeout-ms", "1000"}));
  for (const auto& w : k_three) start_worker(w);
  ASSERT_TRUE(wait_first_commit());
  auto members_gen = cluster_->wait_for_members(k_three, deadline_);
  ASSERT_TRUE(members_gen);
  ASSERT_TRUE(wait_commit_in(*members_gen, "all three workers"));
  auto gen = rng();
  const std::string victim = k_three[std::uniform_int_distribution<size_t>(0, 2)(gen)];
  std::vector<std::string> others;
  for (const auto& w : k_three)
    if (w != victim) others.push_back(w);
  auto& coord = cluster_->coordinator_log();
  const size_t from = coord.size();
  std::cerr << "pausing " << victim << " with " << percent_committed()
            << " of the input committed\n";

  const auto t_stop = steady::now();
  cluster_->signal(victim, SIGSTOP);
  auto lost = coord.wait_for("worker " + victim + " lost", std::min(deadline_, t_stop + 10s), from);
  ASSERT_TRUE(lost) << "no 'worker " << victim << " lost' within 10 s of SIGSTOP";
  std::cerr << "loss logged " << ms_between(t_stop, coord.at(*lost).seen) << " ms after SIGSTOP\n";
  // What of the victim's was published when it was declared lost; nothing of its generations up
  // to the loss may be published after.
  std::set<std::string> before;
  for (const auto* d : {&paths_.out, &paths_.dead})
    for (auto& n : published_names(*d))
      if (auto t = tag_of(n); t && t->worker == victim) before.insert(n);
  const auto lost_gen = cluster_->wait_for_members(others, deadline_);
  ASSERT_TRUE(lost_gen) << "assignment.json never dropped " << victim;
  ASSERT_TRUE(wait_commit_in(*lost_gen, "by the two others while " + victim + " is paused"));

  cluster_->signal(victim, SIGCONT);
  auto& vlog = cluster_->worker_log(victim);
  auto noticed = vlog.wait_for("lost the coordinator", std::min(deadline_, steady::now() + 15s));
  ASSERT_TRUE(noticed) << victim << " did not notice it lost the coordinator within 15 s";
  ASSERT_TRUE(
      vlog.wait_for("joined the coordinator", std::min(deadline_, steady::now() + 15s), *noticed))
      << victim << " did not rejoin within 15 s";
  auto back_gen = cluster_->wait_for_members(k_three, deadline_);
  ASSERT_TRUE(back_gen);
  ASSERT_TRUE(wait_commit_in(*back_gen, "with " + victim + " back"));
  ASSERT_TRUE(wait_done());
  std::cerr << "done after " << seconds_since(start_) << " s\n";

  std::vector<std::string> fenced_but_published;
  for (const auto* d : {&paths_.out, &paths_.dead})
    for (auto& n : published_names(*d))
      if (auto t = tag_of(n);
          t && t->worker == victim && !before.contains(n) && t->generation <= *lost_gen)
        fenced_but_published.push_back(n);
  EXPECT_EQ(fenced_but_published, std::vector<std::string>{})
      << "published after " << victim << " was declared lost in generation " << *lost_gen;
  expect_output_equals_reference();
}

/// One worker, then three (two join mid-run), then two (SIGTERM: exit 0, 'left').
TEST_F(cluster_equality, scaling_out_1_to_3_and_in_3_to_2_leaves_the_output_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_scale", k_change_rate, 120s));
  start_worker("w1");
  ASSERT_TRUE(wait_first_commit());
  std::cerr << "w1 alone committed an epoch; " << percent_committed() << " of the input\n";
  start_worker("w2");
  start_worker("w3");
  // Joining a running cluster: units at the next epoch boundary, not at once.
  EXPECT_TRUE(cluster_->coordinator_log().wait_for("it takes units at the next epoch boundary",
                                                   std::min(deadline_, steady::now() + 20s), 0));
  auto three = cluster_->wait_for_members(k_three, deadline_);
  ASSERT_TRUE(three) << "w2 and w3 did not both become members";
  ASSERT_TRUE(wait_commit_in(*three, "after scaling out to three"));
  std::cerr << "three workers committed an epoch; " << percent_committed() << " of the input\n";
  EXPECT_LT(watch_->committed(), watch_->total()) << "scaled out only after the input's end";

  auto& coord = cluster_->coordinator_log();
  const size_t from = coord.size();
  cluster_->signal("w2", SIGTERM);
  auto status = cluster_->process("w2").wait_for(30s);
  ASSERT_TRUE(status) << "w2 still runs 30 s after SIGTERM";
  EXPECT_TRUE(status->ok()) << "w2 after SIGTERM: " << status->describe();
  // Handed over at an epoch boundary: the generation without w2 restores from the very epoch
  // w2 took part in last, so nothing it did is redone.
  auto left =
      coord.wait_for("worker w2 left after epoch ", std::min(deadline_, steady::now() + 10s), from);
  ASSERT_TRUE(left) << "no 'worker w2 left after epoch' line";
  const std::string& left_line = coord.at(*left).text;
  const std::string epoch =
      left_line.substr(left_line.find("after epoch ") + 12,
                       left_line.find(" (its units") - (left_line.find("after epoch ") + 12));
  auto restarted = coord.wait_for("started: ", std::min(deadline_, steady::now() + 10s), *left);
  ASSERT_TRUE(restarted);
  const std::string& started = coord.at(*restarted).text;
  const size_t at = started.find("restored from epoch " + epoch);
  const size_t after = at + 20 + epoch.size();
  EXPECT_TRUE(
      at != std::string::npos &&
      (after == started.size() || !std::isdigit(static_cast<unsigned char>(started[after]))))
      << started << " (w2 left after epoch " << epoch << ")";
  auto two = cluster_->wait_for_members({"w1", "w3"}, deadline_);
  ASSERT_TRUE(two);
  ASSERT_TRUE(wait_commit_in(*two, "after w2 left"));
  std::cerr << "two workers committed an epoch; " << percent_committed() << " of the input\n";
  ASSERT_TRUE(wait_done());
  std::cerr << "done after " << seconds_since(start_) << " s\n";
  expect_output_equals_reference();
}

/// Credits between nodes (worker/runtime/credits.hpp): w2's shards merge slowly (a test-only
/// delay per partial batch), so the source tasks on w1 and w3 outrun them. Without flow control
/// their partials pile up in w2's shard mailboxes (~1,300 messages with a window of 2^20, where
/// every task sends each shard a partial batch per 50-record poll); with credits each task holds
/// its input once a window of partial batches is unreturned, its worker's poller stops at the
/// in-flight limit (1 MiB here), and a slow shard's mailbox holds at most about a window per
/// task (~200 messages). Measured from
/// the logs, not by timing: w2's shards log their mailbox peak at each snapshot (test only), and
/// the senders' workers log their backpressure (partial batches unreturned at one shard, input
/// bytes in flight). The output must still equal the reference.
TEST_F(cluster_equality,
       a_slow_remote_shard_holds_its_senders_back_by_credits_and_output_stays_equal) {
  ASSERT_NE(reference(kind::windowed), nullptr);
  start_ = steady::now();
  edit_pipeline_ = [](std::string t) {
    const std::string at = "starting_offsets = \"earliest\"\n";
    return t.replace(t.find(at), at.size(),
                     at + "max_records_per_poll = 50\nmax_in_flight_mb = 1\n");
  };
  ASSERT_TRUE(begin_cluster(kind::windowed, "eq_credits", 0, 120s));
  start_worker("w1");
  start_worker("w2", {"EDDY_TEST_SHARD_MERGE_DELAY_US=2000"});
  start_worker("w3");
  ASSERT_TRUE(wait_first_commit());
  ASSERT_TRUE(wait_done());
  std::cerr << "done after " << seconds_since(start_) << " s\n";
  expect_output_equals_reference();

  // The number after `key` in `line` (the first one), or -1.
  auto number_after = [](const std::string& line, const std::string& key) -> int64_t {
    const size_t at = line.find(key);
    if (at == std::string::npos) return -1;
    return std::strtoll(line.c_str() + at + key.size(), nullptr, 10);
  };
  // w2: its shards took partial batches slowly, and their mailboxes stayed small.
  int64_t mailbox_peak = -1, merged = 0;
  for (const auto& l : cluster_->worker_log("w2").refresh()) {
    if (l.text.find("eddy: test: shard ") == std::string::npos) continue;
    mailbox_peak = std::max(mailbox_peak, number_after(l.text, "mailbox peak "));
    merged = std::max(merged, number_after(l.text, ", "));
  }
  ASSERT_GE(mailbox_peak, 0) << "w2's shards logged no snapshot line (is the test delay read?)";
  EXPECT_GT(merged, 500) << "w2's shards merged few partial batches: the test shows little";
  // Per sending task: a window, what a checkpoint cuts, its barrier; a few ticks of its own.
  const int64_t bound = k_partitions * (partial_credit_window + partial_credit_chunk + 1) + 8;
  EXPECT_LE(mailbox_peak, bound) << "a slow shard's mailbox grew past what credits allow";
  std::cerr << "w2's slow shards: mailbox peak " << mailbox_peak << " messages (bound " << bound
            << "), up to " << merged << " partial batches merged by one\n";

  // The senders on the other workers waited for credit, with at most a window (and what
  // checkpoints cut) unreturned, and their input in flight stayed under the 1 MiB limit (give or
  // take one poll of 50 records).
  int remote_senders = 0;
  for (const std::string w : {"w1", "w3"}) {
    for (const auto& l : cluster_->worker_log(w).refresh()) {
      if (l.text.find(": backpressure: source tasks waited ") == std::string::npos) continue;
      ++remote_senders;
      const int64_t unreturned = number_after(l.text, "; at most ");
      const int64_t in_flight = number_after(l.text, "), at most ");
      EXPECT_GT(unreturned, 0) << l.text;
      EXPECT_LE(unreturned, partial_credit_window + partial_credit_chunk) << l.text;
      EXPECT_GT(in_flight, 0) << l.text;
      EXPECT_LE(in_flight, (1 << 20) + 50 * 1024) << l.text;
      std::cerr << w << ": " << l.text << "\n";
      break;
    }
  }
  EXPECT_GE(remote_senders, 1) << "neither w1 nor w3 waited for w2's shards' credit";
}

}  // namespace
}  // namespace eddy::test
