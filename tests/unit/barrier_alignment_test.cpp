// barrier_alignment_test.cpp — the aggregator shard's aligned barriers, driven message by
// message with CAF's deterministic test scheduler (scheduler.policy = testing).
//
// Two source tasks (partitions 0 and 1) feed one shard. Partition 0's barrier arrives first;
// what partition 0 sends after it must wait until partition 1's barrier is in, so that the
// snapshot of epoch 1 holds exactly what came before both barriers. The snapshot is read back
// from the node-local RocksDB into a fresh shard_aggregator and its windows are closed to see
// what it held. The same holds for partials that arrive as bytes (from a task in another
// process: partials_msg with `bytes` and `partition`, no batch), and undecodable bytes fail the
// run with a message naming the shard and the partition.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <unistd.h>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "state/kv_store.hpp"
#include "worker/checkpoint/barrier_aligner.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/runtime/shard_actor.hpp"

namespace eddy {
namespace {

constexpr int64_t sec = 1'000'000;

pipeline_config shard_config() {
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
  cfg.aggregation.shards = 1;
  cfg.trigger_interval_ms = 3'600'000;  // no emission ticks during the test
  cfg.checkpoint.dir = "unused";
  return cfg;
}

/// What the probe (standing in for the sink and the checkpoint coordinator) received.
struct probe_log {
  std::vector<std::string> events;
};

caf::behavior probe(caf::event_based_actor*, std::shared_ptr<probe_log> log) {
  return {
      [log](barrier_atom, uint64_t epoch, int32_t input) {
        log->events.push_back("barrier " + std::to_string(epoch) + " from " +
                              std::to_string(input));
      },
      [log](const checkpoint_ack& ack) {
        log->events.push_back("ack " + std::to_string(ack.epoch) + " shard " +
                              std::to_string(ack.shard) +
                              (ack.error.empty() ? "" : ": " + ack.error));
      },
      [log](const result_batch& b) {
        log->events.push_back("rows " + std::to_string(b.rows.size()));
      },
      [log](failed_atom, const std::string& e) { log->events.push_back("failed: " + e); },
  };
}

/// A fresh directory under the system temp dir, removed at the end.
struct scratch_dir {
  std::filesystem::path path;
  scratch_dir() {
    path = std::filesystem::temp_directory_path() /
           ("eddy-barrier-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

class barrier_alignment : public ::testing::Test {
 protected:
  barrier_alignment() {
    cfg_ = shard_config();
    std::string err;
    ctx_ = std::make_shared<run_context>();
    ctx_->cfg = &cfg_;
    ctx_->plan = aggregation_plan::from_config(cfg_, &err);
    EXPECT_TRUE(ctx_->plan) << err;
    ctx_->checkpointing = true;
    store_status s;
    ctx_->db = kv_store::open(dir_ / "db", &s);
    EXPECT_TRUE(ctx_->db) << s.error;
    sys_cfg_.set("scheduler.policy", caf::atom("testing"));
    sys_cfg_.set("logger.verbosity", caf::atom("quiet"));
    register_message_types(sys_cfg_);
    sys_ = std::make_unique<caf::actor_system>(sys_cfg_);
    sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
  }

  ~barrier_alignment() override { sys_.reset(); }

  /// A partial batch of partition `p` holding one row of group `grp` at `t` seconds.
  std::shared_ptr<partial_batch> partial(int32_t p, const std::string& grp, int64_t t) {
    partition_aggregator agg(*ctx_->plan, p);
    decoded_record rec;
    rec.image = row{value{grp}, value{timestamp{t * sec}}};
    std::string reason;
    EXPECT_EQ(agg.add(rec, 0, reason), aggregate_outcome::contributed) << reason;
    std::vector<partial_batch> out;
    agg.take_partials(out, 0);
    return std::make_shared<partial_batch>(std::move(out.at(0)));
  }

  /// Sends a partial of partition `p`: by pointer, or (`as_bytes`) as a task in another process
  /// does, i.e. as CAF delivers it there: encoded bytes and the partition, no batch.
  void send_partial(const caf::actor& shard, int32_t p, const std::string& grp, int64_t t,
                    bool as_bytes = false) {
    partials_msg m;
    if (as_bytes) {
      m.bytes = encode_partial_batch(*partial(p, grp, t));
      m.partition = p;
    } else {
      m.batch = partial(p, grp, t);
    }
    caf::anon_send(shard, std::move(m));
  }

  /// The groups (grp=count) of the shard's last snapshot, read back from RocksDB.
  std::string snapshot_groups() {
    shard_aggregator restored(*ctx_->plan, 0, {0, 1});
    store_status s;
    auto entries = ctx_->db->scan(shard_prefix(0), &s);
    EXPECT_TRUE(s.ok()) << s.error;
    std::string err;
    EXPECT_TRUE(restored.restore(shard_prefix(0), entries, &err)) << err;
    std::vector<row> rows;
    restored.finish(rows);
    std::map<std::string, int64_t> groups;
    for (const row& r : rows) groups[std::get<std::string>(r.at(2))] += std::get<int64_t>(r.at(3));
    std::string text;
    for (const auto& [g, n] : groups)
      text += (text.empty() ? "" : " ") + g + "=" + std::to_string(n);
    return text;
  }

  scratch_dir dir_;
  pipeline_config cfg_;
  std::shared_ptr<run_context> ctx_;
  caf::actor_system_config sys_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
};

TEST_F(barrier_alignment, holds_back_a_task_whose_barrier_came_first_until_all_barriers_are_in) {
  auto log = std::make_shared<probe_log>();
  auto sink = sys_->spawn(probe, log);
  auto shard = spawn_shard(*sys_, ctx_, 0, {0, 1}, sink, sink);
  sched_->run();

  send_partial(shard, 0, "a", 1);  // epoch 1, partition 0
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{0});
  send_partial(shard, 0, "b", 2);  // after partition 0's barrier: epoch 2
  send_partial(shard, 1, "a", 3);  // epoch 1, partition 1
  sched_->run();
  EXPECT_TRUE(log->events.empty()) << "no snapshot before partition 1's barrier";

  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{1});
  sched_->run();
  ASSERT_EQ(log->events, (std::vector<std::string>{"barrier 1 from -1", "ack 1 shard 0"}));
  // Epoch 1 holds both partitions' rows from before their barriers, not partition 0's "b".
  EXPECT_EQ(snapshot_groups(), "a=2");

  // The held-back partial was merged after the snapshot: epoch 2 has it.
  caf::anon_send(shard, barrier_atom::value, uint64_t{2}, int32_t{1});
  caf::anon_send(shard, barrier_atom::value, uint64_t{2}, int32_t{0});
  sched_->run();
  ASSERT_EQ(log->events.size(), 4u);
  EXPECT_EQ(log->events[3], "ack 2 shard 0");
  EXPECT_EQ(snapshot_groups(), "a=2 b=1");
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  sched_->run();
}

TEST_F(barrier_alignment, holds_back_and_merges_partials_received_as_bytes_alike) {
  auto log = std::make_shared<probe_log>();
  auto sink = sys_->spawn(probe, log);
  auto shard = spawn_shard(*sys_, ctx_, 0, {0, 1}, sink, sink);
  sched_->run();

  send_partial(shard, 0, "a", 1, true);
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{0});
  send_partial(shard, 0, "b", 2, true);  // held back: partition 0's barrier is in
  send_partial(shard, 1, "a", 3, true);
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{1});
  sched_->run();
  ASSERT_EQ(log->events, (std::vector<std::string>{"barrier 1 from -1", "ack 1 shard 0"}));
  EXPECT_EQ(snapshot_groups(), "a=2");
  caf::anon_send(shard, barrier_atom::value, uint64_t{2}, int32_t{1});
  caf::anon_send(shard, barrier_atom::value, uint64_t{2}, int32_t{0});
  sched_->run();
  ASSERT_EQ(log->events.size(), 4u);
  EXPECT_EQ(snapshot_groups(), "a=2 b=1");
  EXPECT_FALSE(ctx_->faulted.load());
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  sched_->run();
}

TEST_F(barrier_alignment, undecodable_partials_fail_the_run) {
  auto log = std::make_shared<probe_log>();
  auto sink = sys_->spawn(probe, log);
  auto shard = spawn_shard(*sys_, ctx_, 0, {0, 1}, sink, sink);
  sched_->run();
  std::string bytes = encode_partial_batch(*partial(1, "a", 1));
  bytes.pop_back();  // truncated
  partials_msg m;
  m.bytes = bytes;
  m.partition = 1;
  caf::anon_send(shard, std::move(m));
  sched_->run();
  EXPECT_TRUE(ctx_->faulted.load());
  const std::string fault = ctx_->fault_message();
  EXPECT_EQ(fault.rfind("aggregation shard 0 failed: undecodable partials from partition 1: "
                        "partial batch: entry 0 of 1: malformed or truncated aggregate 'n'",
                        0),
            0u)
      << fault;
  // The shard is gone: a barrier reaches nobody, no ack comes.
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{0});
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{1});
  sched_->run();
  EXPECT_TRUE(log->events.empty());
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  sched_->run();
}

TEST_F(barrier_alignment, reports_a_protocol_error_instead_of_snapshotting) {
  auto log = std::make_shared<probe_log>();
  auto sink = sys_->spawn(probe, log);
  auto shard = spawn_shard(*sys_, ctx_, 0, {0, 1}, sink, sink);
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{0});
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{0});  // twice from one task
  caf::anon_send(shard, barrier_atom::value, uint64_t{1}, int32_t{7});  // not an input
  sched_->run();
  ASSERT_EQ(log->events.size(), 2u);
  EXPECT_EQ(log->events[0], "ack 1 shard 0: shard 0: second barrier 1 from input 0");
  EXPECT_EQ(log->events[1], "ack 1 shard 0: shard 0: barrier from unknown input 7");
  caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  sched_->run();
}

TEST(barrier_aligner_unit, aligns_once_every_input_delivered_the_epoch) {
  barrier_aligner a({3, 5});
  EXPECT_FALSE(a.blocked(3));
  EXPECT_FALSE(a.on_barrier(3, 1));
  EXPECT_TRUE(a.blocked(3));
  EXPECT_FALSE(a.blocked(5));
  std::string err;
  EXPECT_FALSE(a.on_barrier(5, 2, &err));
  EXPECT_EQ(err, "barrier 2 from input 5 while aligning 1");
  EXPECT_TRUE(a.on_barrier(5, 1));
  a.release();
  EXPECT_FALSE(a.blocked(3));
  EXPECT_EQ(a.aligning(), 0u);
}

}  // namespace
}  // namespace eddy
