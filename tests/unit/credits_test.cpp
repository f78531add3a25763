// credits_test.cpp — credit-based flow control between source tasks and aggregator shards
// (worker/runtime/credits.hpp), driven message by message with CAF's deterministic test
// scheduler (scheduler.policy = testing).
//
// * The pure parts: a task's credit_gate (opens only with credit for every shard, may be
//   overdrawn) and a shard's credit_ledger (returns in chunks).
// * A real source task feeding two stand-in shards, one of which returns no credit: the task
//   sends that shard exactly a window of partial batches, holds the rest of its input
//   unprocessed with its in-flight bytes still counted (what stops the poller), still cuts a
//   checkpoint barrier to both shards at once, drops a grant of another generation, and resumes
//   when the shard returns credit.
// * A real shard returns credit for what it merges and for what it holds back while aligning a
//   barrier, stamped with its generation, to the task that sent it.
// * A real task and a real shard: 100 batches go through a window of 16 by credits alone.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "state/kv_store.hpp"
#include "worker/runtime/credits.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/runtime/shard_actor.hpp"
#include "worker/runtime/source_task.hpp"

namespace eddy {
namespace {

constexpr int64_t sec = 1'000'000;
constexpr int32_t W = partial_credit_window;

// ---- the pure parts ---------------------------------------------------------------------------

TEST(credit_gate, opens_only_with_credit_for_every_shard) {
  credit_gate g(2, 3);
  EXPECT_TRUE(g.open());
  for (int i = 0; i < 3; ++i) g.spend(0);
  EXPECT_FALSE(g.open()) << "shard 0 has no credit left";
  EXPECT_EQ(g.unreturned(0), 3);
  EXPECT_EQ(g.unreturned(1), 0);
  g.spend(0);  // a checkpoint's partials go out without credit
  EXPECT_EQ(g.unreturned(0), 4);
  EXPECT_EQ(g.peak_unreturned(), 4);
  g.grant(0, 1);
  EXPECT_FALSE(g.open()) << "overdrawn by one: one credit only pays it back";
  g.grant(0, 1);
  EXPECT_TRUE(g.open());
  g.grant(5, 10);  // unknown shard: ignored
  g.grant(1, -3);  // nonsense: ignored
  EXPECT_EQ(g.unreturned(1), 0);
  EXPECT_TRUE(credit_gate(0).open()) << "no shards (no aggregation): never waits";
}

TEST(credit_ledger, returns_credit_in_chunks_per_sender) {
  credit_ledger l(4);
  std::vector<int32_t> back;
  for (int i = 0; i < 9; ++i) back.push_back(l.took(7));
  EXPECT_EQ(back, (std::vector<int32_t>{0, 0, 0, 4, 0, 0, 0, 4, 0}));
  EXPECT_EQ(l.took(8), 0) << "owed per sender";
}

/// The no-deadlock argument, exhaustively for small windows: a sender that sends while its gate
/// is open and a receiver that takes everything sent end with the gate open.
TEST(credit_gate, a_receiver_that_took_everything_leaves_the_sender_open) {
  for (int32_t window = 1; window <= 8; ++window)
    for (int32_t chunk = 1; chunk <= window; ++chunk)
      for (int extra = 0; extra <= 2; ++extra) {  // checkpoint partials sent without credit
        credit_gate g(1, window);
        credit_ledger l(chunk);
        int sent = 0;
        while (g.open()) {
          g.spend(0);
          ++sent;
        }
        for (int i = 0; i < extra; ++i, ++sent) g.spend(0);
        for (int i = 0; i < sent; ++i) g.grant(0, l.took(0));
        EXPECT_TRUE(g.open()) << "window " << window << ", chunk " << chunk << ", extra " << extra;
      }
}

// ---- actors -----------------------------------------------------------------------------------

pipeline_config two_shard_config() {
  pipeline_config cfg;
  field_config grp;
  grp.name = grp.column = "grp";
  grp.type = field_type::string;
  field_config ts;
  ts.name = ts.column = "ts";
  ts.type = field_type::timestamp;
  cfg.fields = {grp, ts};
  cfg.window.kind = window_kind::tumbling;
  cfg.window.size_us = 10 * sec;
  cfg.window.time_field = "ts";
  aggregate_config n;
  n.alias = "n";
  n.function = "count";
  cfg.aggregates = {n};
  cfg.aggregation.group_by = {"grp"};
  cfg.aggregation.shards = 2;
  cfg.trigger_interval_ms = 3'600'000;  // no emission ticks during the test
  cfg.checkpoint.dir = "unused";
  return cfg;
}

/// What the stand-ins received, in order: "partials", "barrier E", "rows", "ack E", ...
struct events {
  std::vector<std::string> seen;
  [[nodiscard]] int count(const std::string& what) const {
    return static_cast<int>(std::count(seen.begin(), seen.end(), what));
  }
};

/// A stand-in shard: records partial batches and barriers; returns one credit per partial batch
/// when `generous`, none otherwise.
caf::behavior stand_in_shard(caf::event_based_actor* self, std::shared_ptr<events> log,
                             int32_t shard, bool generous) {
  return {
      [=](const partials_msg&) {
        log->seen.emplace_back("partials");
        if (generous)
          self->send(caf::actor_cast<caf::actor>(self->current_sender()), credit_atom::value,
                     uint64_t{0}, shard, int32_t{1});
      },
      [=](barrier_atom, uint64_t epoch, int32_t) {
        log->seen.push_back("barrier " + std::to_string(epoch));
      },
  };
}

/// Stands in for the sink and the checkpoint coordinator.
caf::behavior probe(caf::event_based_actor*, std::shared_ptr<events> log) {
  return {
      [log](const result_batch& b) {
        log->seen.emplace_back(b.shard >= 0 ? "shard rows" : "rows");
      },
      [log](barrier_atom, uint64_t epoch, int32_t) {
        log->seen.push_back("barrier " + std::to_string(epoch));
      },
      [log](const checkpoint_ack& a) {
        log->seen.push_back("ack " + std::to_string(a.epoch) + (a.error.empty() ? "" : ": ") +
                            a.error +
                            (a.partition >= 0 ? " next " + std::to_string(a.next_offset) : ""));
      },
      [log](failed_atom, const std::string& e) { log->seen.push_back("failed: " + e); },
  };
}

/// A stand-in task of `partition`: (poll_atom, n) sends n partial batches made by `make` to
/// `shard`, (barrier_atom, epoch) its barrier; records the credit grants it receives.
struct grants {
  std::vector<std::tuple<uint64_t, int32_t, int32_t>> got;  ///< generation, shard, n
  [[nodiscard]] int32_t total() const {
    int32_t n = 0;
    for (const auto& g : got) n += std::get<2>(g);
    return n;
  }
};
caf::behavior stand_in_task(caf::event_based_actor* self, caf::actor shard, int32_t partition,
                            std::function<partials_msg()> make, std::shared_ptr<grants> log) {
  return {
      [=](poll_atom, int32_t n) {
        for (int32_t i = 0; i < n; ++i) self->send(shard, make());
      },
      [=](barrier_atom, uint64_t epoch) {
        self->send(shard, barrier_atom::value, epoch, partition);
      },
      [=](credit_atom, uint64_t generation, int32_t s, int32_t n) {
        log->got.emplace_back(generation, s, n);
      },
  };
}

class credits : public ::testing::Test {
 protected:
  credits() {
    dir_ = std::filesystem::temp_directory_path() /
           ("eddy-credits-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    cfg_ = two_shard_config();
    std::string err;
    ctx_ = std::make_shared<run_context>();
    ctx_->cfg = &cfg_;
    ctx_->plan = aggregation_plan::from_config(cfg_, &err);
    EXPECT_TRUE(ctx_->plan) << err;
    ctx_->checkpointing = true;
    store_status s;
    ctx_->db = kv_store::open((dir_ / "db").string(), &s);
    EXPECT_TRUE(ctx_->db) << s.error;
    sys_cfg_.set("scheduler.policy", caf::atom("testing"));
    sys_cfg_.set("logger.verbosity", caf::atom("quiet"));
    register_message_types(sys_cfg_);
    sys_ = std::make_unique<caf::actor_system>(sys_cfg_);
    sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
  }
  ~credits() override {
    for (const auto& a : spawned_) caf::anon_send_exit(a, caf::exit_reason::kill);
    sched_->run();
    spawned_.clear();
    sys_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  template <class... Ts>
  caf::actor spawn(Ts&&... xs) {
    return spawned_.emplace_back(sys_->spawn(std::forward<Ts>(xs)...));
  }

  /// One record of partition 0 at `offset`, handed to `task` as the poller does (its in-flight
  /// bytes counted).
  void poll_one(const caf::actor& task, int64_t offset) {
    kafka_batch b;
    b.topic = "t";
    b.partition = 0;
    const std::string v = R"({"grp": "a", "ts": 1000000})";
    b.add(offset, 0, "", v.data(), v.size());
    cost_ = b.in_flight_cost();
    ctx_->in_flight_bytes += cost_;
    caf::anon_send(task, std::move(b));
  }

  /// A partial batch of partition `p` with one row of group "a".
  partials_msg partial(int32_t p) {
    partition_aggregator agg(*ctx_->plan, p);
    decoded_record rec;
    rec.image = row{value{std::string("a")}, value{timestamp{sec}}};
    std::string reason;
    EXPECT_EQ(agg.add(rec, 0, reason), aggregate_outcome::contributed) << reason;
    std::vector<partial_batch> out;
    agg.take_partials(out, 0);
    partials_msg m;
    m.batch = std::make_shared<partial_batch>(
        std::move(out.at(shard_of(row{value{std::string("a")}}, 2))));
    return m;
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  pipeline_config cfg_;
  std::shared_ptr<run_context> ctx_;
  caf::actor_system_config sys_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::vector<caf::actor> spawned_;
  int64_t cost_ = 0;
};

TEST_F(credits, a_task_stops_sending_to_a_shard_without_credit_and_resumes_when_it_returns) {
  auto stingy = std::make_shared<events>(), generous = std::make_shared<events>();
  auto sink = std::make_shared<events>();
  auto s0 = spawn(stand_in_shard, stingy, int32_t{0}, false);
  auto s1 = spawn(stand_in_shard, generous, int32_t{1}, true);
  auto probe_actor = spawn(probe, sink);
  auto task = spawn(source_task, ctx_, int32_t{0}, probe_actor, std::vector<caf::actor>{s0, s1},
                    probe_actor);
  sched_->run();

  for (int64_t off = 0; off < W + 3; ++off) poll_one(task, off);
  sched_->run();
  // A window's worth went out to both shards (each batch sends to every shard); the rest is
  // held unprocessed, its in-flight bytes still counted, so that the poller stops fetching.
  EXPECT_EQ(stingy->count("partials"), W);
  EXPECT_EQ(generous->count("partials"), W);
  EXPECT_EQ(sink->count("rows"), W);
  EXPECT_EQ(ctx_->in_flight_bytes.load(), (W + 3) * cost_) << "the sink probe gives none back";
  EXPECT_EQ(ctx_->credit_waits.load(), 1);
  EXPECT_EQ(ctx_->max_unreturned_partials.load(), W);

  // A checkpoint is not held behind credits: partials, then the barrier, to both shards at
  // once, cut after what was processed (offsets 0..W-1).
  caf::anon_send(task, checkpoint_atom::value, uint64_t{1});
  sched_->run();
  ASSERT_EQ(stingy->seen.size(), static_cast<size_t>(W + 2));
  EXPECT_EQ(stingy->seen[W], "partials");
  EXPECT_EQ(stingy->seen[W + 1], "barrier 1");
  EXPECT_EQ(generous->seen.back(), "barrier 1");
  EXPECT_EQ(sink->seen.back(), "ack 1 next " + std::to_string(W));
  EXPECT_EQ(sink->count("barrier 1"), 1);

  // A grant of another generation (an old generation's shard) is dropped.
  caf::anon_send(task, credit_atom::value, uint64_t{7}, int32_t{0}, int32_t{W});
  sched_->run();
  EXPECT_EQ(stingy->count("partials"), W + 1);

  // Two credits back: the checkpoint's partials overdrew the window by one, so one batch more.
  caf::anon_send(task, credit_atom::value, uint64_t{0}, int32_t{0}, int32_t{2});
  sched_->run();
  EXPECT_EQ(stingy->count("partials"), W + 2);
  EXPECT_EQ(sink->count("rows"), W + 1);
  // Enough for the rest: every held batch is processed, in order.
  caf::anon_send(task, credit_atom::value, uint64_t{0}, int32_t{0}, int32_t{W});
  sched_->run();
  EXPECT_EQ(stingy->count("partials"), W + 4);
  EXPECT_EQ(generous->count("partials"), W + 4);
  EXPECT_EQ(sink->count("rows"), W + 3);
  caf::anon_send(task, checkpoint_atom::value, uint64_t{2});
  sched_->run();
  EXPECT_EQ(sink->seen.back(), "ack 2 next " + std::to_string(W + 3));
  EXPECT_EQ(ctx_->credit_waits.load(), 1);
}

TEST_F(credits, a_shard_returns_credit_for_what_it_merges_and_what_it_holds_while_aligning) {
  ctx_->generation = 5;
  auto sink = std::make_shared<events>();
  auto probe_actor = spawn(probe, sink);
  const int shard = shard_of(row{value{std::string("a")}}, 2);
  auto s = spawn_shard(*sys_, ctx_, shard, {0, 1}, probe_actor, probe_actor);
  spawned_.push_back(s);
  auto g0 = std::make_shared<grants>(), g1 = std::make_shared<grants>();
  auto t0 = spawn(stand_in_task, s, int32_t{0},
                  std::function<partials_msg()>([this] { return partial(0); }), g0);
  auto t1 = spawn(stand_in_task, s, int32_t{1},
                  std::function<partials_msg()>([this] { return partial(1); }), g1);
  sched_->run();

  caf::anon_send(t0, poll_atom::value, int32_t{2 * partial_credit_chunk});
  sched_->run();
  EXPECT_EQ(g0->total(), 2 * partial_credit_chunk);
  ASSERT_FALSE(g0->got.empty());
  EXPECT_EQ(std::get<0>(g0->got[0]), 5u) << "grants carry the generation";
  EXPECT_EQ(std::get<1>(g0->got[0]), shard);
  EXPECT_EQ(g1->total(), 0) << "credit goes to the sender only";

  // Task 0's barrier is in, task 1's is not: task 0's partials are held back, not merged, and
  // still earn credit, so task 0 is not stuck behind task 1's barrier.
  caf::anon_send(t0, barrier_atom::value, uint64_t{1});
  caf::anon_send(t0, poll_atom::value, int32_t{W});
  sched_->run();
  EXPECT_EQ(sink->count("ack 1"), 0) << "no snapshot before task 1's barrier";
  EXPECT_EQ(g0->total(), 2 * partial_credit_chunk + W);

  caf::anon_send(t1, poll_atom::value, int32_t{partial_credit_chunk - 1});
  caf::anon_send(t1, barrier_atom::value, uint64_t{1});
  sched_->run();
  EXPECT_EQ(sink->count("ack 1"), 1);
  EXPECT_EQ(g1->total(), 0) << "fewer than a chunk: still owed";
}

TEST_F(credits, a_task_and_a_shard_pass_many_batches_through_a_small_window) {
  auto sink = std::make_shared<events>();
  auto probe_actor = spawn(probe, sink);
  std::vector<caf::actor> shards;
  for (int i = 0; i < 2; ++i) {
    shards.push_back(spawn_shard(*sys_, ctx_, i, {0}, probe_actor, probe_actor));
    spawned_.push_back(shards.back());
  }
  auto task = spawn(source_task, ctx_, int32_t{0}, probe_actor, shards, probe_actor);
  sched_->run();
  for (int64_t off = 0; off < 100; ++off) poll_one(task, off);
  sched_->run();
  EXPECT_EQ(sink->count("rows"), 100);
  EXPECT_LE(ctx_->max_unreturned_partials.load(), W);
  caf::anon_send(task, checkpoint_atom::value, uint64_t{1});
  sched_->run();
  EXPECT_EQ(sink->count("ack 1 next 100"), 1);
  EXPECT_EQ(sink->count("ack 1"), 2) << "both shards";
}

}  // namespace
}  // namespace eddy
