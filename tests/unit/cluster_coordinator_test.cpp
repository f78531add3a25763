// The cluster coordinator and the worker node under CAF's deterministic test scheduler: joins
// and refusals, assignments with growing generations, a lost worker's units moving, and a node
// dropping an assignment older than the newest it holds (the fence).
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "actors/version.hpp"
#include "coordinator/cluster_coordinator.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "worker/runtime/worker_node.hpp"

namespace eddy {
namespace {

struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.console", caf::atom("none"));
    register_message_types(*this);
  }
};

using assignments = std::vector<unit_assignment>;
using namespace std::chrono_literals;

/// What a stand-in worker of the epoch tests received.
struct worker_seen {
  caf::actor coordinator;  ///< where it sends its readies
  std::vector<unit_assignment> assignments;
  std::vector<std::pair<uint64_t, std::vector<caf::actor>>> starts;  ///< generation, shard table
  std::vector<std::pair<uint64_t, uint64_t>> checkpoints, commits;   ///< generation, epoch
  std::vector<std::pair<uint64_t, uint64_t>> finishes;               ///< generation, epoch
};

class cluster_actors : public ::testing::Test {
 protected:
  cluster_actors()
      : sys_(cfg_), sched_(dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler())) {
    state_dir_ = std::filesystem::temp_directory_path() /
                 ("eddy-cluster-actors-" + std::to_string(::getpid()));
    std::filesystem::create_directories(state_dir_);
  }
  ~cluster_actors() override {
    // The epoch tests' actors reference each other (the coordinator its members, the stand-ins
    // the coordinator) and pending timers reference the coordinator: end them, or the actor
    // system waits for them forever.
    for (const auto& h : spawned_) caf::anon_send_exit(h, caf::exit_reason::kill);
    sched_.run();
    std::filesystem::remove_all(state_dir_);
  }

  caf::actor spawn_coordinator(bool debug = false, bool exit_at_end = false) {
    cluster_coordinator_options o;
    o.exit_at_end = exit_at_end;
    for (int32_t p = 0; p < 6; ++p) o.end_offsets[p] = 100 + p;  // unit_ack_of's offsets
    o.pipeline_name = "p";
    o.pipeline_toml = "# the pipeline text";
    o.partitions = {0, 1, 2, 3, 4, 5};
    o.shards = 2;
    o.state_dir = state_dir_;
    if (!no_checkpoints_) o.checkpoint_dir = checkpoint_dir();
    o.checkpoint_interval_ms = 1000;
    o.epoch_timeout_ms = 30000;
    o.debug = debug;
    o.output_dirs = {(state_dir_ / "out").string()};
    o.log = &log_;
    // The publisher runs in step with the test scheduler, unless a test gives it a thread.
    o.publish_detached = publish_detached_;
    o.publish = publish_;
    return spawned_.emplace_back(spawn_cluster_coordinator(sys_, std::move(o)));
  }

  std::filesystem::path checkpoint_dir() const { return state_dir_ / "checkpoints"; }
  bool publish_detached_ = false;
  bool no_checkpoints_ = false;  ///< eddy run --as-cluster of a pipeline without [checkpoint]
  std::function<std::string(const std::vector<std::string>&, bool)> publish_;

  /// A stand-in worker that records the assignments it receives.
  caf::actor fake_worker(std::shared_ptr<assignments> got) {
    // The state travels as a spawn argument: CAF 0.17 binds a null reference (UBSan) when it
    // spawns a function actor without arguments.
    return sys_.spawn(
        [](caf::event_based_actor*, std::shared_ptr<assignments> got) -> caf::behavior {
          return {[got](assign_atom, const unit_assignment& a) { got->push_back(a); }};
        },
        std::move(got));
  }

  /// A stand-in worker for the epoch tests: records what the coordinator sends it; on
  /// `(ready_atom, g)` from the test it reports ready for generation g with the shards of its
  /// newest assignment, each with its own handle.
  caf::actor stand_in(std::shared_ptr<worker_seen> seen) {
    return spawned_.emplace_back(sys_.spawn(
        [](caf::event_based_actor* self, std::shared_ptr<worker_seen> seen) -> caf::behavior {
          return {
              [seen](assign_atom, const unit_assignment& a) { seen->assignments.push_back(a); },
              [self, seen](ready_atom, uint64_t generation) {
                const auto& shards = seen->assignments.back().shards;
                self->send(
                    seen->coordinator, ready_atom::value, generation, shards,
                    std::vector<caf::actor>(shards.size(), caf::actor_cast<caf::actor>(self)));
              },
              [seen](start_atom, uint64_t generation, const std::vector<caf::actor>& table) {
                seen->starts.emplace_back(generation, table);
              },
              [seen](checkpoint_atom, uint64_t generation, uint64_t epoch) {
                seen->checkpoints.emplace_back(generation, epoch);
              },
              [seen](commit_atom, uint64_t generation, uint64_t epoch) {
                seen->commits.emplace_back(generation, epoch);
              },
              [seen](finish_atom, uint64_t generation, uint64_t epoch) {
                seen->finishes.emplace_back(generation, epoch);
              },
          };
        },
        std::move(seen)));
  }

  /// Members "a" and "b" joined and ready for the generation that holds both: returns it.
  uint64_t two_started_members(bool exit_at_end = false) {
    coordinator_ = spawn_coordinator(false, exit_at_end);
    a_->coordinator = b_->coordinator = coordinator_;
    wa_ = stand_in(a_);
    wb_ = stand_in(b_);
    EXPECT_TRUE(join(coordinator_, {eddy_version, "a", 1, "h"}, wa_).accepted);
    EXPECT_TRUE(join(coordinator_, {eddy_version, "b", 1, "h"}, wb_).accepted);
    const uint64_t g = b_->assignments.back().generation;
    ready(wa_, g);
    ready(wb_, g);
    EXPECT_EQ(a_->starts.size(), 1u);
    EXPECT_EQ(b_->starts.size(), 1u);
    return g;
  }

  /// Members "a" and "b" leave (each answered); then the coordinator, which `self` monitors,
  /// has ended without an error.
  void expect_members_leave_and_the_coordinator_ends(caf::scoped_actor& self) {
    for (const char* name : {"a", "b"}) {
      auto req = self->request(coordinator_, caf::infinite, leave_atom::value, std::string(name));
      sched_.run();
      req.receive([] {}, [&](const caf::error& e) { ADD_FAILURE() << sys_.render(e); });
    }
    sched_.run();
    bool down = false;
    self->receive(
        [&](const caf::down_msg& dm) {
          down = true;
          EXPECT_FALSE(dm.reason) << sys_.render(dm.reason);
        },
        caf::after(std::chrono::seconds(0)) >> [] {});
    EXPECT_TRUE(down) << log_.str();
  }
  /// Whether the coordinator, which `self` monitors, has ended (its down message is there now);
  /// it must have ended with an error.
  bool ended_with_an_error(caf::scoped_actor& self) {
    bool down = false;
    self->receive(
        [&](const caf::down_msg& dm) {
          down = true;
          EXPECT_TRUE(dm.reason);
        },
        caf::after(std::chrono::seconds(0)) >> [] {});
    return down;
  }
  void ready(const caf::actor& worker, uint64_t generation) {
    caf::anon_send(worker, ready_atom::value, generation);
    sched_.run();
  }

  /// Advances the test clock by `d` and runs everything that became due.
  void advance(caf::timespan d) {
    sched_.advance_time(d);
    sched_.run();
  }

  void ack(const caf::actor& coordinator, unit_ack a) {
    caf::anon_send(coordinator, ack_atom::value, std::move(a));
    sched_.run();
  }

  /// The ack of `unit` for epoch `e` of generation `g`, with made-up offsets and snapshot.
  unit_ack unit_ack_of(const std::string& unit, uint64_t g, uint64_t e) const {
    unit_ack a;
    a.generation = g;
    a.epoch = e;
    a.unit = unit;
    if (unit.starts_with("sink:")) return a;
    if (unit.starts_with("p")) {
      a.next_offset = 100 + std::stoi(unit.substr(1));
      a.watermark = 5000;
      a.counters = {10, 7, 2, 1, 0};
    }
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.snap", static_cast<unsigned long long>(e));
    a.snapshot = (checkpoint_dir() / "cluster/units" / unit / name).string();
    a.snapshot_bytes = 42;
    a.snapshot_crc32c = "01234567";
    return a;
  }

  /// The 6 partitions' and 2 shards' units and the sinks of `members`, except `skip`.
  std::vector<std::string> all_units(const std::vector<std::string>& members,
                                     const std::set<std::string>& skip = {}) const {
    std::vector<std::string> out;
    for (int p = 0; p < 6; ++p) out.push_back("p" + std::to_string(p));
    for (int sh = 0; sh < 2; ++sh) out.push_back("s" + std::to_string(sh));
    for (const auto& m : members) out.push_back("sink:" + m);
    std::erase_if(out, [&](const std::string& u) { return skip.count(u) > 0; });
    return out;
  }

  boost::json::object assignment_json() const {
    std::ifstream in(state_dir_ / "assignment.json");
    std::stringstream text;
    text << in.rdbuf();
    return boost::json::parse(text.str()).as_object();
  }

  join_reply join(const caf::actor& coordinator, worker_hello hello, const caf::actor& worker) {
    caf::scoped_actor self{sys_};
    auto req = self->request(coordinator, caf::infinite, register_atom::value, hello, worker);
    sched_.run();
    join_reply out;
    req.receive([&](const join_reply& r) { out = r; },
                [&](const caf::error& e) { ADD_FAILURE() << sys_.render(e); });
    sched_.run();
    return out;
  }

  test_config cfg_;
  caf::actor_system sys_;
  caf::scheduler::test_coordinator& sched_;
  std::filesystem::path state_dir_;
  std::ostringstream log_;
  std::vector<caf::actor> spawned_;  ///< coordinators and stand-ins: ended by the destructor
  // The epoch tests' coordinator and stand-in workers (two_started_members).
  caf::actor coordinator_, wa_, wb_;
  std::shared_ptr<worker_seen> a_ = std::make_shared<worker_seen>(),
                               b_ = std::make_shared<worker_seen>();
};

size_t units(const unit_assignment& a) {
  return a.partitions.size() + a.shards.size();
}

TEST_F(cluster_actors, joining_workers_get_disjoint_units_in_growing_generations) {
  auto coordinator = spawn_coordinator();
  auto a = std::make_shared<assignments>(), b = std::make_shared<assignments>();
  auto wa = fake_worker(a), wb = fake_worker(b);
  auto reply = join(coordinator, {eddy_version, "a", 1, "h"}, wa);
  EXPECT_TRUE(reply.accepted) << reply.refusal;
  EXPECT_EQ(reply.pipeline_toml, "# the pipeline text");
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ(units(a->back()), 8u);
  EXPECT_TRUE(join(coordinator, {eddy_version, "b", 1, "h"}, wb).accepted);
  ASSERT_EQ(a->size(), 2u);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_GT(a->back().generation, a->front().generation);
  EXPECT_EQ(a->back().generation, b->back().generation);
  std::vector<int32_t> parts = a->back().partitions;
  parts.insert(parts.end(), b->back().partitions.begin(), b->back().partitions.end());
  std::sort(parts.begin(), parts.end());
  EXPECT_EQ(parts, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(a->back().shards.size() + b->back().shards.size(), 2u);
  EXPECT_EQ(units(a->back()), 4u);
  EXPECT_NE(log_.str().find("worker b joined"), std::string::npos) << log_.str();
  EXPECT_TRUE(std::filesystem::exists(state_dir_ / "assignment.json"));
}

TEST_F(cluster_actors, a_lost_worker_s_units_move_to_the_survivor) {
  auto coordinator = spawn_coordinator();
  auto a = std::make_shared<assignments>(), b = std::make_shared<assignments>();
  auto wa = fake_worker(a), wb = fake_worker(b);
  ASSERT_TRUE(join(coordinator, {eddy_version, "a", 1, "h"}, wa).accepted);
  ASSERT_TRUE(join(coordinator, {eddy_version, "b", 1, "h"}, wb).accepted);
  const auto before = a->back().generation;
  // The first assignment moves nothing (no unit had an owner); b's join moves units from a,
  // named in b's assignment, with no loss to time them from.
  EXPECT_TRUE(a->front().moved_units.empty());
  const unit_assignment& joined = b->back();
  ASSERT_EQ(joined.moved_units.size(), units(joined));
  EXPECT_EQ(joined.moved_from, std::vector<std::string>(units(joined), "a"));
  EXPECT_EQ(joined.since_change_ms, -1);
  EXPECT_TRUE(a->back().moved_units.empty());  // a only lost units
  caf::anon_send_exit(wb, caf::exit_reason::kill);
  sched_.run();
  ASSERT_GT(a->back().generation, before);
  EXPECT_EQ(units(a->back()), 8u);
  EXPECT_NE(log_.str().find("worker b lost"), std::string::npos) << log_.str();
  // b's units, each named with b as where it comes from, timed from the loss's detection.
  std::vector<std::string> b_units;
  for (int32_t p : joined.partitions) b_units.push_back("p" + std::to_string(p));
  for (int32_t sh : joined.shards) b_units.push_back("s" + std::to_string(sh));
  std::vector<std::string> moved = a->back().moved_units;
  std::sort(moved.begin(), moved.end());
  std::sort(b_units.begin(), b_units.end());
  EXPECT_EQ(moved, b_units);
  EXPECT_EQ(a->back().moved_from, std::vector<std::string>(b_units.size(), "b"));
  EXPECT_GE(a->back().since_change_ms, 0);
  EXPECT_EQ(a->back().change, "the loss of b was detected");
}

TEST_F(cluster_actors,
       units_assigned_again_after_every_worker_was_lost_come_from_their_last_owner) {
  auto coordinator = spawn_coordinator();
  auto a = std::make_shared<assignments>(), b = std::make_shared<assignments>();
  auto wa = fake_worker(a);
  ASSERT_TRUE(join(coordinator, {eddy_version, "a", 1, "h"}, wa).accepted);
  caf::anon_send_exit(wa, caf::exit_reason::kill);
  sched_.run();
  ASSERT_TRUE(join(coordinator, {eddy_version, "b", 1, "h"}, fake_worker(b)).accepted);
  ASSERT_EQ(units(b->back()), 8u);
  EXPECT_EQ(b->back().moved_units.size(), 8u);
  EXPECT_EQ(b->back().moved_from, std::vector<std::string>(8, "a"));
  EXPECT_EQ(b->back().change, "the loss of a was detected");
}

TEST_F(cluster_actors, other_versions_and_taken_names_are_refused_with_the_reason) {
  auto coordinator = spawn_coordinator();
  auto a = std::make_shared<assignments>();
  auto wa = fake_worker(a);
  auto old = join(coordinator, {"0.0.1", "old", 1, "h"}, wa);
  EXPECT_FALSE(old.accepted);
  EXPECT_NE(old.refusal.find("0.0.1"), std::string::npos) << old.refusal;
  EXPECT_NE(old.refusal.find(eddy_version), std::string::npos) << old.refusal;
  EXPECT_TRUE(a->empty());
  ASSERT_TRUE(join(coordinator, {eddy_version, "a", 1, "h"}, wa).accepted);
  auto twin = join(coordinator, {eddy_version, "a", 1, "h"}, fake_worker(a));
  EXPECT_FALSE(twin.accepted);
  EXPECT_NE(twin.refusal.find("already a member"), std::string::npos) << twin.refusal;
}

TEST_F(cluster_actors, a_node_drops_an_assignment_older_than_the_newest_it_holds) {
  // A stand-in coordinator that accepts every join.
  auto coordinator = sys_.spawn(
      [](caf::event_based_actor*, std::string name) -> caf::behavior {
        return {[name](register_atom, const worker_hello&, const caf::actor&) {
          join_reply r;
          r.accepted = true;
          r.pipeline_name = name;
          return r;
        }};
      },
      std::string("p"));
  auto outcome = std::make_shared<worker_node_outcome>();
  worker_node_options o;
  o.name = "n";
  o.log = &log_;
  auto node = spawn_worker_node(sys_, coordinator, o, outcome);
  sched_.run();
  auto assignment = [](uint64_t generation, std::vector<int32_t> partitions,
                       std::vector<int32_t> shards) {
    unit_assignment a;
    a.generation = generation;
    a.partitions = std::move(partitions);
    a.shards = std::move(shards);
    return a;
  };
  caf::anon_send(node, assign_atom::value, assignment(5, {1, 2}, {0}));
  caf::anon_send(node, assign_atom::value, assignment(3, {3}, {}));
  sched_.run();
  EXPECT_EQ(outcome->generation, 5u);
  EXPECT_EQ(outcome->partitions, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(outcome->shards, (std::vector<int32_t>{0}));
  // Losing the coordinator ends the membership and drops the units.
  caf::anon_send_exit(coordinator, caf::exit_reason::kill);
  sched_.run();
  EXPECT_EQ(outcome->how, worker_node_outcome::kind::lost);
  EXPECT_TRUE(outcome->partitions.empty());
  EXPECT_NE(log_.str().find("lost the coordinator"), std::string::npos) << log_.str();
}

// ---- epochs ------------------------------------------------------------------------------------

TEST_F(cluster_actors, a_generation_starts_once_every_member_is_ready_with_the_full_shard_table) {
  coordinator_ = spawn_coordinator();
  a_->coordinator = b_->coordinator = coordinator_;
  wa_ = stand_in(a_);
  wb_ = stand_in(b_);
  ASSERT_TRUE(join(coordinator_, {eddy_version, "a", 1, "h"}, wa_).accepted);
  ASSERT_TRUE(join(coordinator_, {eddy_version, "b", 1, "h"}, wb_).accepted);
  const unit_assignment& aa = a_->assignments.back();
  const unit_assignment& ba = b_->assignments.back();
  const uint64_t g = ba.generation;
  ASSERT_EQ(aa.generation, g);
  for (const auto* x : {&aa, &ba}) {
    EXPECT_EQ(x->restore_epoch, 0u);  // nothing committed yet: start fresh
    EXPECT_EQ(x->first_epoch, 1u);
    EXPECT_EQ(x->all_partitions, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(x->shard_count, 2);
  }
  ASSERT_EQ(aa.shards.size(), 1u);
  ASSERT_EQ(ba.shards.size(), 1u);

  ready(wa_, g);
  ready(wb_, g - 1);  // a ready of an older generation counts for nothing
  EXPECT_TRUE(a_->starts.empty());
  EXPECT_TRUE(b_->starts.empty());
  // No epoch either, however long it waits.
  advance(5s);
  EXPECT_TRUE(a_->checkpoints.empty());

  ready(wb_, g);
  ASSERT_EQ(a_->starts.size(), 1u);
  ASSERT_EQ(b_->starts.size(), 1u);
  for (const auto& [gen, table] : {a_->starts[0], b_->starts[0]}) {
    EXPECT_EQ(gen, g);
    ASSERT_EQ(table.size(), 2u);
    EXPECT_EQ(table[static_cast<size_t>(aa.shards[0])], wa_);
    EXPECT_EQ(table[static_cast<size_t>(ba.shards[0])], wb_);
  }
  EXPECT_NE(log_.str().find("generation " + std::to_string(g) + " started"), std::string::npos)
      << log_.str();
}

TEST_F(cluster_actors, an_epoch_commits_only_with_every_ack_then_has_a_manifest_and_a_commit) {
  const uint64_t g = two_started_members();
  advance(999ms);
  EXPECT_TRUE(a_->checkpoints.empty());  // the interval has not passed
  advance(1ms);
  ASSERT_EQ(a_->checkpoints, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  ASSERT_EQ(b_->checkpoints, a_->checkpoints);

  // A staged file of b's sink, published once the epoch commits.
  const auto out = state_dir_ / "out";
  const std::string name = "part-1-0-b-g" + std::to_string(g) + ".jsonl";
  const auto staged = out / "_staging/00000000000000000001" / name;
  std::filesystem::create_directories(staged.parent_path());
  std::ofstream(staged) << "{\"x\":1}\n";

  for (const auto& u : all_units({"a", "b"}, {"sink:b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  // Not yet: sink:b is missing; a stale generation's or another epoch's ack does not count.
  ack(coordinator_, unit_ack_of("sink:b", g - 1, 1));
  ack(coordinator_, unit_ack_of("sink:b", g, 2));
  EXPECT_FALSE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_TRUE(a_->commits.empty());
  EXPECT_TRUE(b_->commits.empty());

  auto last = unit_ack_of("sink:b", g, 1);
  last.staged = {staged.string()};
  ack(coordinator_, last);
  std::string err;
  auto m = read_cluster_manifest(checkpoint_dir(), 1, &err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->generation, g);
  EXPECT_EQ(m->pipeline, "p");
  EXPECT_EQ(m->units.size(), 8u);  // 6 tasks, 2 shards; sinks are no units
  EXPECT_EQ(m->units.at("p4").next_offset, 104);
  EXPECT_EQ(m->units.at("p4").counters.out, 7);
  EXPECT_EQ(m->units.at("s1").bytes, 42u);
  std::set<std::string> held_by_a;
  for (int32_t p : a_->assignments.back().partitions) held_by_a.insert("p" + std::to_string(p));
  for (int32_t sh : a_->assignments.back().shards) held_by_a.insert("s" + std::to_string(sh));
  for (const auto& [unit, u] : m->units) EXPECT_EQ(u.owner, held_by_a.count(unit) ? "a" : "b");
  EXPECT_EQ(m->published, last.staged);
  EXPECT_TRUE(std::filesystem::exists(out / name));
  EXPECT_FALSE(std::filesystem::exists(out / "_staging"));
  EXPECT_EQ(a_->commits, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  EXPECT_EQ(b_->commits, a_->commits);
  EXPECT_EQ(assignment_json().at("last_complete").to_number<uint64_t>(), 1u);
  // Epochs are frequent: no line per epoch at the default level.
  EXPECT_EQ(log_.str().find("epoch 1"), std::string::npos) << log_.str();

  // The next interval opens epoch 2.
  advance(1s);
  EXPECT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
}

TEST_F(cluster_actors, a_commit_cleans_what_can_never_be_published_from_staging) {
  const uint64_t g = two_started_members();
  const auto out = state_dir_ / "out";
  auto stage = [&](const char* epoch_dir, const std::string& name) {
    const auto p = out / "_staging" / epoch_dir / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << "{\"x\":1}\n";
    return p;
  };
  // An aborted epoch's file (epoch 1 of an older generation never committed; numbers are not
  // reused, but a fenced worker may still write into it), one of the epoch that commits that no
  // sink listed (a fenced worker's), and a part already staged for the next epoch.
  const auto aborted = stage("00000000000000000001", "part-1-0-old-g0.jsonl");
  advance(1s);
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 1}));
  const auto listed = stage("00000000000000000001", "part-1-0-a-g" + std::to_string(g) + ".jsonl");
  const auto next = stage("00000000000000000002", "part-2-1-a-g" + std::to_string(g) + ".jsonl");
  for (const auto& u : all_units({"a", "b"})) {
    auto a = unit_ack_of(u, g, 1);
    if (u == "sink:a") a.staged = {listed.string()};
    ack(coordinator_, a);
  }
  ASSERT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_TRUE(std::filesystem::exists(out / listed.filename()));  // published
  EXPECT_FALSE(std::filesystem::exists(aborted));                 // never publishable: gone
  EXPECT_FALSE(std::filesystem::exists(out / aborted.filename()));
  EXPECT_TRUE(std::filesystem::exists(next));  // the next epoch's part stays
}

/// Publishing runs on the coordinator's publisher, off its thread: an epoch whose publish is
/// slow (a database, a broker) does not stop the next epoch from opening and committing; only
/// with 2 committed epochs unpublished does the next tick wait, and the publisher's catching up
/// opens it.
TEST_F(cluster_actors, a_slow_publish_holds_back_epochs_only_past_two_unpublished) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  publish_detached_ = true;  // a thread of its own: it blocks
  publish_ = [released, &calls](const std::vector<std::string>&, bool) {
    if (calls++ == 0) released.wait();  // epoch 1's publish hangs until released
    return std::string();
  };
  const uint64_t g = two_started_members();
  auto commit = [&](uint64_t e) {
    for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, e));
  };
  advance(1s);
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 1}));
  commit(1);
  ASSERT_EQ(a_->commits.size(), 1u);
  // Epoch 1 is being published (stuck): epoch 2 opens at its tick and commits all the same.
  advance(1s);
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
  commit(2);
  ASSERT_EQ(a_->commits.size(), 2u);
  // Two committed epochs unpublished: the next tick waits.
  advance(1s);
  EXPECT_EQ(a_->checkpoints.size(), 2u);
  advance(1s);
  EXPECT_EQ(a_->checkpoints.size(), 2u);
  // Released, the publisher answers for epoch 1 (from its thread): epoch 3 opens at once.
  release.set_value();
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (a_->checkpoints.size() < 3 && std::chrono::steady_clock::now() < until) {
    sched_.run();
    std::this_thread::sleep_for(1ms);  // waiting for the publisher thread's message
  }
  ASSERT_EQ(a_->checkpoints.size(), 3u) << "epoch 3 never opened after the publisher caught up";
  EXPECT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 3}));
  EXPECT_GE(calls.load(), 2);  // epoch 2 was published after epoch 1
}

TEST_F(cluster_actors, a_failed_publish_is_logged_and_does_not_hold_back_later_epochs) {
  coordinator_ = spawn_coordinator();
  a_->coordinator = coordinator_;
  wa_ = stand_in(a_);
  ASSERT_TRUE(join(coordinator_, {eddy_version, "a", 1, "h"}, wa_).accepted);
  const uint64_t g = a_->assignments.back().generation;
  ready(wa_, g);
  const auto out = state_dir_ / "out";
  // Epoch 1's sink lists a file that is neither staged nor published.
  advance(1s);
  for (const auto& u : all_units({})) ack(coordinator_, unit_ack_of(u, g, 1));
  auto sink = unit_ack_of("sink:a", g, 1);
  sink.staged = {(out / "_staging/00000000000000000001/part-1-0-a-g1.jsonl").string()};
  ack(coordinator_, sink);
  EXPECT_EQ(a_->commits.size(), 1u);  // committed all the same: the manifest is written
  EXPECT_NE(log_.str().find("epoch 1 is committed but publishing its files failed"),
            std::string::npos)
      << log_.str();
  // Epoch 2's file is published although epoch 1's still cannot be.
  const auto staged = out / "_staging/00000000000000000002/part-2-0-a-g1.jsonl";
  std::filesystem::create_directories(staged.parent_path());
  std::ofstream(staged) << "{}\n";
  advance(1s);
  for (const auto& u : all_units({})) ack(coordinator_, unit_ack_of(u, g, 2));
  sink = unit_ack_of("sink:a", g, 2);
  sink.staged = {staged.string()};
  ack(coordinator_, sink);
  EXPECT_EQ(a_->commits.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(out / "part-2-0-a-g1.jsonl"));
  EXPECT_EQ(log_.str().find("epoch 2 is committed but"), std::string::npos) << log_.str();
}

TEST_F(cluster_actors, with_debug_every_committed_epoch_is_logged) {
  coordinator_ = spawn_coordinator(/*debug=*/true);
  a_->coordinator = coordinator_;
  wa_ = stand_in(a_);
  ASSERT_TRUE(join(coordinator_, {eddy_version, "a", 1, "h"}, wa_).accepted);
  const uint64_t g = a_->assignments.back().generation;
  ready(wa_, g);
  advance(1s);
  for (const auto& u : all_units({"a"})) ack(coordinator_, unit_ack_of(u, g, 1));
  EXPECT_NE(log_.str().find("epoch 1 complete"), std::string::npos) << log_.str();
}

TEST_F(cluster_actors, a_lost_member_aborts_the_open_epoch_and_the_generation_restores_the_last) {
  const uint64_t g = two_started_members();
  advance(1s);
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  ASSERT_EQ(a_->commits.size(), 1u);
  advance(1s);
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
  for (const auto& u : all_units({"a", "b"}, {"p0", "sink:b"}))
    ack(coordinator_, unit_ack_of(u, g, 2));

  caf::anon_send_exit(wb_, caf::exit_reason::kill);
  sched_.run();
  EXPECT_NE(log_.str().find("epoch 2 aborted: worker b lost"), std::string::npos) << log_.str();
  const unit_assignment& next = a_->assignments.back();
  EXPECT_EQ(next.generation, g + 1);
  EXPECT_EQ(units(next), 8u);
  EXPECT_EQ(next.restore_epoch, 1u);
  EXPECT_EQ(next.first_epoch, 3u);  // 2 is never used again
  // The old generation's acks of epoch 2 complete nothing.
  ack(coordinator_, unit_ack_of("p0", g, 2));
  ack(coordinator_, unit_ack_of("sink:b", g, 2));
  EXPECT_FALSE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 2)));
  EXPECT_EQ(a_->commits.size(), 1u);
  // Nothing opens before the new generation started; then epoch 3.
  advance(3s);
  EXPECT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
  ready(wa_, g + 1);
  ASSERT_EQ(a_->starts.size(), 2u);
  EXPECT_EQ(a_->starts.back().second, (std::vector<caf::actor>{wa_, wa_}));
  advance(1s);
  EXPECT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g + 1, 3}));
  for (const auto& u : all_units({"a"})) ack(coordinator_, unit_ack_of(u, g + 1, 3));
  EXPECT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 3)));
  EXPECT_EQ(a_->commits.back(), (std::pair<uint64_t, uint64_t>{g + 1, 3}));
}

TEST_F(cluster_actors, a_joining_member_takes_units_when_the_open_epoch_commits) {
  const uint64_t g = two_started_members();
  advance(1s);  // epoch 1 is open
  auto c = std::make_shared<worker_seen>();
  c->coordinator = coordinator_;
  ASSERT_TRUE(join(coordinator_, {eddy_version, "c", 1, "h"}, stand_in(c)).accepted);
  // Nothing changes while the epoch runs: no abort, no assignment for c, same generation.
  EXPECT_EQ(log_.str().find("aborted"), std::string::npos) << log_.str();
  EXPECT_NE(log_.str().find("worker c joined from h (1 slot); it takes units at the next epoch"),
            std::string::npos)
      << log_.str();
  EXPECT_TRUE(c->assignments.empty());
  EXPECT_EQ(a_->assignments.back().generation, g);
  // The epoch commits with a's and b's acks only; then the generation that includes c restores
  // from it: no work is redone.
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  EXPECT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  ASSERT_EQ(c->assignments.size(), 1u);
  EXPECT_EQ(c->assignments.back().generation, g + 1);
  EXPECT_EQ(c->assignments.back().restore_epoch, 1u);
  EXPECT_EQ(c->assignments.back().first_epoch, 2u);
  EXPECT_GT(units(c->assignments.back()), 0u);
  EXPECT_EQ(
      units(a_->assignments.back()) + units(b_->assignments.back()) + units(c->assignments.back()),
      8u);
}

TEST_F(cluster_actors, a_joining_member_opens_an_epoch_at_once_when_none_is_open) {
  const uint64_t g = two_started_members();
  auto c = std::make_shared<worker_seen>();
  c->coordinator = coordinator_;
  ASSERT_TRUE(join(coordinator_, {eddy_version, "c", 1, "h"}, stand_in(c)).accepted);
  // No wait for the interval: the boundary epoch opens now.
  ASSERT_EQ(a_->checkpoints, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  // It fails: c is taken in at once, the generation restarts from the last complete (none).
  ack(coordinator_, [&] {
    auto a = unit_ack_of("p0", g, 1);
    a.error = "disk full";
    return a;
  }());
  ASSERT_EQ(c->assignments.size(), 1u);
  EXPECT_EQ(c->assignments.back().generation, g + 1);
  EXPECT_EQ(c->assignments.back().restore_epoch, 0u);
}

TEST_F(cluster_actors, partitions_added_to_the_topic_become_units_at_the_next_epoch_boundary) {
  const uint64_t g = two_started_members();
  // The same partitions again: nothing happens.
  caf::anon_send(coordinator_, parts_atom::value, std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  sched_.run();
  EXPECT_TRUE(a_->checkpoints.empty());
  caf::anon_send(coordinator_, parts_atom::value, std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  sched_.run();
  EXPECT_NE(log_.str().find("the topic gained partition(s) p6,p7"), std::string::npos)
      << log_.str();
  // The boundary epoch opens at once; it commits with the old units only.
  ASSERT_EQ(a_->checkpoints, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  EXPECT_EQ(a_->assignments.back().generation, g);
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  ASSERT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  const unit_assignment& next = a_->assignments.back();
  EXPECT_EQ(next.generation, g + 1);
  EXPECT_EQ(next.restore_epoch, 1u);
  EXPECT_EQ(next.all_partitions, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(units(next) + units(b_->assignments.back()), 10u);
  // The next epoch waits for the new partitions' tasks too.
  ready(wa_, g + 1);
  ready(wb_, g + 1);
  advance(1s);
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g + 1, 2}));
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g + 1, 2));
  EXPECT_FALSE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 2)));
  ack(coordinator_, unit_ack_of("p6", g + 1, 2));
  ack(coordinator_, unit_ack_of("p7", g + 1, 2));
  EXPECT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 2)));
}

TEST_F(cluster_actors, a_leaving_member_hands_its_units_over_after_the_next_epoch) {
  const uint64_t g = two_started_members();
  caf::scoped_actor self{sys_};
  auto req = self->request(coordinator_, caf::infinite, leave_atom::value, std::string("b"));
  sched_.run();
  EXPECT_NE(log_.str().find("worker b is leaving"), std::string::npos) << log_.str();
  // b keeps its units while the boundary epoch (opened at once) runs; no answer yet.
  ASSERT_EQ(b_->checkpoints, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  EXPECT_EQ(a_->assignments.back().generation, g);
  bool answered = false;
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  req.receive([&] { answered = true; },
              [&](const caf::error& e) { ADD_FAILURE() << sys_.render(e); });
  EXPECT_TRUE(answered);
  EXPECT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_NE(log_.str().find("worker b left after epoch 1 (its units handed over)"),
            std::string::npos)
      << log_.str();
  const unit_assignment& next = a_->assignments.back();
  EXPECT_EQ(next.generation, g + 1);
  EXPECT_EQ(units(next), 8u);
  EXPECT_EQ(next.restore_epoch, 1u);                // the epoch b committed: nothing redone
  EXPECT_EQ(b_->assignments.back().generation, g);  // b is no member any more
}

TEST_F(cluster_actors, a_timed_out_epoch_is_aborted_naming_the_missing_units_and_restarts) {
  const uint64_t g = two_started_members();
  const unit_assignment before = a_->assignments.back();
  advance(1s);
  for (const auto& u : all_units({"a", "b"}, {"p3", "s1"})) ack(coordinator_, unit_ack_of(u, g, 1));
  advance(29999ms);
  EXPECT_EQ(log_.str().find("aborted"), std::string::npos) << log_.str();
  EXPECT_EQ(a_->assignments.back().generation, g);
  advance(1ms);
  EXPECT_NE(log_.str().find("epoch 1 aborted: timed out after 30000 ms waiting for p3,s1"),
            std::string::npos)
      << log_.str();
  const unit_assignment& next = a_->assignments.back();
  EXPECT_EQ(next.generation, g + 1);
  EXPECT_EQ(next.partitions, before.partitions);  // the same members keep their units
  EXPECT_EQ(next.shards, before.shards);
  EXPECT_EQ(next.restore_epoch, 0u);
  EXPECT_EQ(next.first_epoch, 2u);
  EXPECT_EQ(b_->assignments.back().generation, g + 1);
  // The late acks complete nothing.
  ack(coordinator_, unit_ack_of("p3", g, 1));
  ack(coordinator_, unit_ack_of("s1", g, 1));
  EXPECT_FALSE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_TRUE(a_->commits.empty());
}

TEST_F(cluster_actors, an_ack_with_an_error_aborts_the_epoch_and_restarts_the_generation) {
  const uint64_t g = two_started_members();
  advance(1s);
  auto bad = unit_ack_of("p2", g, 1);
  bad.error = "cannot export p2: No space left on device";
  ack(coordinator_, bad);
  EXPECT_NE(log_.str().find("epoch 1 aborted: p2: cannot export p2: No space left on device"),
            std::string::npos)
      << log_.str();
  EXPECT_EQ(a_->assignments.back().generation, g + 1);
  EXPECT_EQ(b_->assignments.back().first_epoch, 2u);
  for (const auto& u : all_units({"a", "b"}, {"p2"})) ack(coordinator_, unit_ack_of(u, g, 1));
  EXPECT_FALSE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_TRUE(a_->commits.empty());
}

TEST_F(cluster_actors, a_restarted_coordinator_continues_after_the_last_committed_epoch) {
  cluster_manifest m;
  m.epoch = 7;
  m.generation = 3;
  m.pipeline = "p";
  ASSERT_EQ(write_cluster_manifest(checkpoint_dir(), m), "");
  coordinator_ = spawn_coordinator();
  a_->coordinator = coordinator_;
  wa_ = stand_in(a_);
  ASSERT_TRUE(join(coordinator_, {eddy_version, "a", 1, "h"}, wa_).accepted);
  EXPECT_EQ(a_->assignments.back().restore_epoch, 7u);
  EXPECT_EQ(a_->assignments.back().first_epoch, 8u);
  // Aborted epochs' numbers and the generation survive a restart through assignment.json.
  const uint64_t g = a_->assignments.back().generation;
  ready(wa_, g);
  advance(1s);
  advance(30s);  // epoch 8 times out: next_epoch 9
  ASSERT_NE(log_.str().find("epoch 8 aborted"), std::string::npos) << log_.str();
  caf::anon_send_exit(coordinator_, caf::exit_reason::kill);
  sched_.run();
  auto again = spawn_coordinator();
  auto c = std::make_shared<worker_seen>();
  ASSERT_TRUE(join(again, {eddy_version, "c", 1, "h"}, stand_in(c)).accepted);
  EXPECT_EQ(c->assignments.back().restore_epoch, 7u);
  EXPECT_EQ(c->assignments.back().first_epoch, 9u);
  EXPECT_GT(c->assignments.back().generation, g + 1);
}

}  // namespace
}  // namespace eddy

namespace eddy {
namespace {

// ---- --exit-at-end -----------------------------------------------------------------------------

TEST_F(cluster_actors,
       without_checkpoints_no_epoch_runs_and_the_run_ends_once_every_member_drained) {
  no_checkpoints_ = true;
  const uint64_t g = two_started_members(true);
  caf::scoped_actor self{sys_};
  self->monitor(coordinator_);
  advance(5s);
  EXPECT_TRUE(a_->checkpoints.empty());  // no ticks, no epochs
  for (int32_t p = 0; p < 6; ++p) caf::anon_send(coordinator_, ended_atom::value, g, p);
  caf::anon_send(coordinator_, stop_atom::value);  // the drain is the members' own
  sched_.run();
  EXPECT_TRUE(a_->checkpoints.empty());
  self->send(coordinator_, drained_atom::value, g);             // not a member: ignored
  caf::send_as(wa_, coordinator_, drained_atom::value, g - 1);  // another generation's
  caf::send_as(wa_, coordinator_, drained_atom::value, g);
  sched_.run();
  EXPECT_TRUE(a_->finishes.empty()) << "b has not drained yet";
  caf::send_as(wb_, coordinator_, drained_atom::value, g);
  sched_.run();
  EXPECT_EQ(a_->finishes, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 0}}));
  EXPECT_EQ(b_->finishes, a_->finishes);
  EXPECT_NE(log_.str().find("every worker drained its units"), std::string::npos) << log_.str();
  expect_members_leave_and_the_coordinator_ends(self);
  EXPECT_FALSE(std::filesystem::exists(checkpoint_dir()));
}

TEST_F(cluster_actors, a_stop_makes_the_next_commit_the_last_then_all_leave_without_end_checks) {
  // Without exit_at_end, and with inputs that did not end: a stop still ends the cluster after
  // one more committed epoch, and no partition is called short (the end offsets are not asked).
  const uint64_t g = two_started_members(false);
  caf::scoped_actor self{sys_};
  self->monitor(coordinator_);
  advance(1s);  // epoch 1 opens at the tick
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 1}));
  caf::anon_send(coordinator_, stop_atom::value);
  sched_.run();
  EXPECT_NE(log_.str().find("stopping: the next epoch to commit is the last"), std::string::npos);
  EXPECT_EQ(a_->checkpoints.size(), 1u);  // the open epoch is the last one
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  ASSERT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_EQ(a_->finishes, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  EXPECT_EQ(b_->finishes, a_->finishes);
  EXPECT_NE(log_.str().find("stopping: epoch 1 committed, the last"), std::string::npos)
      << log_.str();
  advance(1s);
  EXPECT_EQ(a_->checkpoints.size(), 1u);  // no epoch after the last
  expect_members_leave_and_the_coordinator_ends(self);
}

TEST_F(cluster_actors, a_stop_between_epochs_opens_the_last_epoch_at_once) {
  const uint64_t g = two_started_members(false);
  caf::anon_send(coordinator_, stop_atom::value);
  sched_.run();
  // No tick has passed: the stop opened the epoch itself.
  ASSERT_EQ(a_->checkpoints, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  for (const auto& u : all_units({"a", "b"})) ack(coordinator_, unit_ack_of(u, g, 1));
  EXPECT_EQ(a_->finishes, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
}

TEST_F(cluster_actors, with_exit_at_end_the_epoch_after_every_input_ended_commits_then_all_leave) {
  const uint64_t g = two_started_members(true);
  EXPECT_TRUE(a_->assignments.back().exit_at_end);
  caf::scoped_actor self{sys_};
  self->monitor(coordinator_);
  advance(1s);
  // Epoch 1: p5's input has not ended; committed, and the cluster goes on.
  for (const auto& u : all_units({"a", "b"})) {
    auto x = unit_ack_of(u, g, 1);
    x.input_ended = u.starts_with("p") && u != "p5";
    ack(coordinator_, x);
  }
  ASSERT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 1)));
  EXPECT_TRUE(a_->finishes.empty());
  // The workers report each partition's end; once all have, the next epoch opens at once.
  for (int32_t p = 0; p < 5; ++p) caf::anon_send(coordinator_, ended_atom::value, g, p);
  caf::anon_send(coordinator_, ended_atom::value, g - 1, int32_t{5});  // another generation's
  sched_.run();
  EXPECT_EQ(a_->checkpoints.size(), 1u);
  caf::anon_send(coordinator_, ended_atom::value, g, int32_t{5});
  sched_.run();
  ASSERT_EQ(a_->checkpoints.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
  // Epoch 2: every task ended before it: committed, then every member is told to leave.
  for (const auto& u : all_units({"a", "b"})) {
    auto x = unit_ack_of(u, g, 2);
    x.input_ended = u.starts_with("p");
    ack(coordinator_, x);
  }
  ASSERT_TRUE(std::filesystem::exists(cluster_manifest_path(checkpoint_dir(), 2)));
  EXPECT_EQ(a_->commits.back(), (std::pair<uint64_t, uint64_t>{g, 2}));
  EXPECT_EQ(a_->finishes, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 2}}));
  EXPECT_EQ(b_->finishes, a_->finishes);
  EXPECT_NE(log_.str().find("the input is complete"), std::string::npos) << log_.str();
  advance(1s);
  EXPECT_EQ(a_->checkpoints.size(), 2u);  // no epoch after the end
  // A joiner is refused now; the members leave; the coordinator ends, normally.
  auto late =
      join(coordinator_, {eddy_version, "c", 1, "h"}, stand_in(std::make_shared<worker_seen>()));
  EXPECT_FALSE(late.accepted);
  expect_members_leave_and_the_coordinator_ends(self);
}

TEST_F(cluster_actors, with_exit_at_end_workers_waiting_for_the_last_boundary_are_answered_too) {
  const uint64_t g = two_started_members(true);
  advance(1s);  // epoch 1 opens
  caf::scoped_actor self{sys_};
  auto leave = self->request(coordinator_, caf::infinite, leave_atom::value, std::string("b"));
  sched_.run();
  EXPECT_NE(log_.str().find("worker b is leaving"), std::string::npos) << log_.str();
  auto c = std::make_shared<worker_seen>();
  c->coordinator = coordinator_;
  ASSERT_TRUE(join(coordinator_, {eddy_version, "c", 1, "h"}, stand_in(c)).accepted);
  EXPECT_NE(log_.str().find("it takes units at the next epoch boundary"), std::string::npos);
  for (const auto& u : all_units({"a", "b"})) {
    auto x = unit_ack_of(u, g, 1);
    x.input_ended = u.starts_with("p");
    ack(coordinator_, x);
  }
  EXPECT_EQ(a_->finishes, (std::vector<std::pair<uint64_t, uint64_t>>{{g, 1}}));
  EXPECT_EQ(c->finishes, a_->finishes);
  EXPECT_TRUE(c->assignments.empty());  // no generation for it: the input is done
  EXPECT_EQ(a_->assignments.back().generation, g);
  bool answered = false;  // b's SIGTERM leave, answered at the boundary it waited for
  ASSERT_FALSE(self->mailbox().empty()) << "b's leave request was not answered";  // no hang
  leave.receive([&] { answered = true; },
                [&](const caf::error& e) { ADD_FAILURE() << sys_.render(e); });
  EXPECT_TRUE(answered);
}

TEST_F(cluster_actors, with_exit_at_end_a_partition_ending_short_of_its_start_end_fails_the_run) {
  const uint64_t g = two_started_members(true);
  caf::scoped_actor self{sys_};
  self->monitor(coordinator_);
  advance(1s);
  for (const auto& u : all_units({"a", "b"})) {
    auto x = unit_ack_of(u, g, 1);
    x.input_ended = u.starts_with("p");
    if (u == "p2") x.next_offset = 50;  // its end at start was 102
    ack(coordinator_, x);
  }
  EXPECT_EQ(a_->finishes.size(), 1u);
  EXPECT_NE(log_.str().find("p2 at 50 of 102"), std::string::npos) << log_.str();
  // Members that never leave: the coordinator ends without them after 30 s, with the error.
  advance(30s);
  EXPECT_TRUE(ended_with_an_error(self)) << log_.str();
  EXPECT_NE(log_.str().find("did not leave within 30 s"), std::string::npos) << log_.str();
}

/// A restore that fails in every generation (a damaged unit file: the same committed files fail
/// every try) ends the coordinator with the error after three generations in a row, instead of
/// moving the units around for ever; a failure after the generation started does not count,
/// and a generation that starts resets the count.
TEST_F(cluster_actors, units_that_fail_to_restore_in_three_generations_in_a_row_end_the_run) {
  const uint64_t g = two_started_members();
  caf::scoped_actor self{sys_};
  self->monitor(coordinator_);
  auto fail = [&](uint64_t generation) {
    caf::anon_send(coordinator_, failed_atom::value, generation,
                   std::string("unit s1: unit snapshot X.snap: checksum mismatch"));
    sched_.run();
  };
  auto ended = [&] { return ended_with_an_error(self); };
  fail(g);  // after the start: a runtime failure, retried as before
  // Two generations whose restore fails, then one that starts: no end.
  for (int round = 0; round < 2; ++round) {
    const uint64_t before = a_->assignments.back().generation;
    fail(before);                                      // not counted: started
    caf::anon_send(coordinator_, assign_atom::value);  // a new generation (as after a failure)
    sched_.run();
    const uint64_t gn = a_->assignments.back().generation;
    ASSERT_GT(gn, before);
    fail(gn);
    fail(gn);  // two reports of one generation: still its one try
  }
  EXPECT_FALSE(ended()) << log_.str();
  uint64_t gn = a_->assignments.back().generation;
  ready(wa_, gn);
  ready(wb_, gn);
  ASSERT_EQ(a_->starts.back().first, gn);  // started: the count starts again
  for (int round = 0; round < 3; ++round) {
    caf::anon_send(coordinator_, assign_atom::value);
    sched_.run();
    gn = a_->assignments.back().generation;
    EXPECT_FALSE(ended()) << "round " << round << ": " << log_.str();
    fail(gn);
  }
  EXPECT_TRUE(ended()) << log_.str();
  EXPECT_NE(log_.str().find("could not start in 3 generations in a row; the last error: unit s1: "
                            "unit snapshot X.snap: checksum mismatch; ending"),
            std::string::npos)
      << log_.str();
}

}  // namespace
}  // namespace eddy
