// The cluster coordinator and the worker node under CAF's deterministic test scheduler: joins
// and refusals, assignments with growing generations, a lost worker's units moving, and a node
// dropping an assignment older than the newest it holds (the fence).
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <sstream>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "actors/version.hpp"
#include "coordinator/cluster_coordinator.hpp"
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

class cluster_actors : public ::testing::Test {
 protected:
  cluster_actors()
      : sys_(cfg_), sched_(dynamic_cast<caf::scheduler::test_coordinator&>(sys_.scheduler())) {
    state_dir_ = std::filesystem::temp_directory_path() /
                 ("eddy-cluster-actors-" + std::to_string(::getpid()));
    std::filesystem::create_directories(state_dir_);
  }
  ~cluster_actors() override { std::filesystem::remove_all(state_dir_); }

  caf::actor spawn_coordinator() {
    cluster_coordinator_options o;
    o.pipeline_name = "p";
    o.pipeline_toml = "# the pipeline text";
    o.partitions = {0, 1, 2, 3, 4, 5};
    o.shards = 2;
    o.state_dir = state_dir_;
    o.log = &log_;
    return spawn_cluster_coordinator(sys_, std::move(o));
  }

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
  caf::anon_send_exit(wb, caf::exit_reason::kill);
  sched_.run();
  ASSERT_GT(a->back().generation, before);
  EXPECT_EQ(units(a->back()), 8u);
  EXPECT_NE(log_.str().find("worker b lost"), std::string::npos) << log_.str();
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

}  // namespace
}  // namespace eddy
