// remote_messages_test.cpp — the messages that cross worker processes, through CAF's middleman.
//
// Two actor systems in this process, each with register_message_types and the io middleman, talk
// over a loopback TCP port (127.0.0.1, port 0): one publishes a receiver, the other gets it with
// remote_actor and sends the data plane's and the epoch protocol's messages — partials_msg cut by
// a real partition_aggregator, (barrier_atom, epoch, partition), unit_ack, checkpoint_ack,
// unit_assignment, and the ready/start tuples. The receiver decodes the partials with its own
// plan; what it decoded re-encodes to the sender's bytes, and a shard fed the decoded batches
// emits the rows of one fed the originals. Structs are echoed back and compared field by field.
// Locally (one actor system) a partials_msg keeps its pointer and is never encoded.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "tests/support/windowing_helpers.hpp"
#include "worker/window/partial_codec.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

using namespace eddy::test;  // windowing_helpers.hpp

constexpr auto timeout = std::chrono::seconds(10);

struct node_config : caf::actor_system_config {
  node_config() {
    set("logger.console", caf::atom("none"));
    set("scheduler.max-threads", 2);
    register_message_types(*this);
    load<caf::io::middleman>();
  }
};

aggregation_plan test_plan() {
  pipeline_config cfg = base_config();  // tumbling 10 s on ts
  cfg.aggregation.group_by = {"grp", "status"};
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "avg_qty", "avg", "qty");
  add_agg(cfg, "min_status", "min", "status");
  add_agg(cfg, "max_amount", "max", "amount");
  add_agg(cfg, "distinct_qty", "count_distinct", "qty");
  add_agg(cfg, "approx_id", "approx_count_distinct", "id");
  add_agg(cfg, "p50_amount", "p50", "amount");
  add_agg(cfg, "first_status", "first", "status");
  add_agg(cfg, "last_amount", "last", "amount");
  return plan_of(cfg);
}

/// Partials of partition 5 over a few windows, cut once: one batch per shard.
std::vector<partial_batch> cut_partials(const aggregation_plan& plan) {
  std::mt19937_64 rng(5);
  partition_aggregator pa(plan, 5);
  std::string reason;
  for (int i = 0; i < 3000; ++i) {
    decoded_record rec;
    rec.image = {value{int64_t{i}},
                 value{timestamp{100 * sec + i * 10'000}},
                 value{std::string(i % 3 == 0 ? std::string("g\0", 2) : std::string("h"))},
                 value{int64_t{1}},
                 i % 7 == 0 ? value{} : value{static_cast<double>(rng() % 10'000) / 7.0},
                 value{static_cast<int64_t>(rng() % 50)},
                 value{std::string(i % 2 == 0 ? "Completed" : "Cancelled")}};
    pa.add(rec, 0, reason);
  }
  std::vector<partial_batch> out;
  pa.take_partials(out, 123);
  return out;
}

/// What the receiving node saw.
struct received {
  std::mutex mutex;
  std::vector<partial_batch> batches;  ///< decoded, in arrival order
  std::vector<bool> ends;
};

/// The receiving node's actor: decodes partials with `plan` (replying "" or why not) and echoes
/// the protocol's messages.
caf::behavior receiver(caf::event_based_actor*, std::shared_ptr<received> got,
                       std::shared_ptr<const aggregation_plan> plan) {
  return {
      [got, plan](partials_msg& m) -> std::string {
        if (m.batch != nullptr) return "arrived as a pointer: the message was not serialized";
        if (m.bytes.empty()) return "arrived without bytes";
        std::string err;
        partial_batch* b = m.get(*plan, &err);
        if (b == nullptr) return "undecodable: " + err;
        std::lock_guard<std::mutex> lock(got->mutex);
        got->batches.push_back(std::move(*b));
        got->ends.push_back(m.end);
        return "";
      },
      [](barrier_atom, uint64_t epoch, int32_t partition) {
        return "barrier " + std::to_string(epoch) + " from " + std::to_string(partition);
      },
      [](ack_atom, const unit_ack& a) { return a; },
      [](const checkpoint_ack& a) { return a; },
      [](assign_atom, const unit_assignment& a) { return a; },
      [](ready_atom, uint64_t generation, const std::vector<int32_t>& ids,
         const std::vector<caf::actor>& handles) {
        return caf::make_message(generation, ids, static_cast<uint64_t>(handles.size()));
      },
      [](start_atom, uint64_t generation, const std::vector<caf::actor>& table) {
        return caf::make_message(generation, static_cast<uint64_t>(table.size()));
      },
  };
}

class remote_messages : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = std::make_shared<const aggregation_plan>(test_plan());
    receiver_ = receiving_.spawn(receiver, got_, plan_);
    auto port = caf::io::publish(receiver_, 0, "127.0.0.1");
    ASSERT_TRUE(port) << receiving_.render(port.error());
    auto remote = sending_.middleman().remote_actor("127.0.0.1", *port);
    ASSERT_TRUE(remote) << sending_.render(remote.error());
    remote_ = *remote;
  }
  void TearDown() override {
    caf::anon_send_exit(receiver_, caf::exit_reason::user_shutdown);
    remote_ = nullptr;
  }

  /// Sends `xs...` from the sending node as a request and hands the reply to `on_reply` (a
  /// reply of another type, an error or no reply within `timeout` fails the test; callers check
  /// that `on_reply` ran).
  template <class F, class... Ts>
  void ask(F on_reply, Ts&&... xs) {
    caf::scoped_actor self{sending_};
    self->request(remote_, timeout, std::forward<Ts>(xs)...).receive(on_reply, [&](caf::error& e) {
      ADD_FAILURE() << sending_.render(e);
    });
  }

  node_config receiving_cfg_, sending_cfg_;
  caf::actor_system receiving_{receiving_cfg_};
  caf::actor_system sending_{sending_cfg_};
  std::shared_ptr<received> got_ = std::make_shared<received>();
  std::shared_ptr<const aggregation_plan> plan_;
  caf::actor receiver_, remote_;
};

std::vector<std::string> shard_rows(const aggregation_plan& plan, int shard,
                                    std::vector<partial_batch>&& batches) {
  shard_aggregator s(plan, shard, {5});
  for (auto& b : batches) s.merge(std::move(b));
  std::vector<row> rows;
  s.finish(rows);
  std::vector<std::string> out;
  for (const row& r : rows) out.push_back(show(r));
  return out;
}

TEST_F(remote_messages, partials_cross_as_bytes_and_decode_to_the_originals) {
  std::vector<partial_batch> originals = cut_partials(*plan_);
  ASSERT_EQ(originals.size(), static_cast<size_t>(plan_->shard_count));
  originals.push_back(partial_batch{});  // a watermark-only batch (no entries)
  originals.back().partition = 5;
  originals.back().watermark = 42 * sec;
  std::vector<std::string> sent_bytes;
  size_t entries = 0;
  for (size_t i = 0; i < originals.size(); ++i) {
    sent_bytes.push_back(encode_partial_batch(originals[i]));
    entries += originals[i].entries.size();
    // The sender's side, as a source task builds it: the batch by pointer, nothing else.
    auto shared = std::make_shared<partial_batch>(std::move(originals[i]));
    partials_msg m;
    m.batch = shared;
    m.end = i + 1 == originals.size();
    std::optional<std::string> reply;
    ask([&](std::string& r) { reply = std::move(r); }, std::move(m));
    ASSERT_TRUE(reply.has_value()) << "batch " << i;
    EXPECT_EQ(*reply, "") << "batch " << i;
    originals[i] = std::move(*shared);  // untouched by the send
  }
  ASSERT_GT(entries, 10u);
  std::vector<partial_batch> decoded;
  std::vector<bool> ends;
  {
    std::lock_guard<std::mutex> lock(got_->mutex);
    decoded = std::move(got_->batches);
    ends = got_->ends;
  }
  ASSERT_EQ(decoded.size(), originals.size());
  for (size_t i = 0; i < decoded.size(); ++i) {
    SCOPED_TRACE("batch " + std::to_string(i));
    EXPECT_EQ(encode_partial_batch(decoded[i]), sent_bytes[i]);
    EXPECT_EQ(encode_partial_batch(originals[i]), sent_bytes[i]);
    EXPECT_EQ(ends[i], i + 1 == decoded.size());
  }
  EXPECT_EQ(decoded.back().watermark, 42 * sec);
  EXPECT_TRUE(decoded.back().entries.empty());
  for (int s = 0; s < plan_->shard_count; ++s) {
    SCOPED_TRACE("shard " + std::to_string(s));
    std::vector<partial_batch> a, b;
    a.push_back(std::move(originals[static_cast<size_t>(s)]));
    b.push_back(std::move(decoded[static_cast<size_t>(s)]));
    const auto want = shard_rows(*plan_, s, std::move(a));
    EXPECT_FALSE(want.empty() && s == 0);
    EXPECT_EQ(shard_rows(*plan_, s, std::move(b)), want);
  }
}

TEST_F(remote_messages, barriers_and_acks_cross_intact) {
  std::optional<std::string> barrier;
  ask([&](std::string& r) { barrier = std::move(r); }, barrier_atom::value, uint64_t{7},
      int32_t{3});
  EXPECT_EQ(barrier, "barrier 7 from 3");

  unit_ack a;
  a.generation = 4;
  a.epoch = 19;
  a.unit = "p3";
  a.next_offset = 123456789012;
  a.watermark = -5;
  a.counters = {10, 6, 2, 1, 1};
  a.snapshot = "cluster/units/p3/00000000000000000019.snap";
  a.snapshot_bytes = 4096;
  a.snapshot_crc32c = "1a2b3c4d";
  a.staged = {"_staging/x/part-19-0-w1-g4.jsonl", std::string("odd\0name", 8)};
  std::optional<unit_ack> b;
  ask([&](unit_ack& r) { b = std::move(r); }, ack_atom::value, a);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->generation, a.generation);
  EXPECT_EQ(b->epoch, a.epoch);
  EXPECT_EQ(b->unit, a.unit);
  EXPECT_EQ(b->next_offset, a.next_offset);
  EXPECT_EQ(b->watermark, a.watermark);
  EXPECT_EQ(b->counters.in, 10);
  EXPECT_EQ(b->counters.out, 6);
  EXPECT_EQ(b->counters.filtered, 2);
  EXPECT_EQ(b->counters.dead_lettered, 1);
  EXPECT_EQ(b->counters.late, 1);
  EXPECT_EQ(b->snapshot, a.snapshot);
  EXPECT_EQ(b->snapshot_bytes, a.snapshot_bytes);
  EXPECT_EQ(b->snapshot_crc32c, a.snapshot_crc32c);
  EXPECT_EQ(b->staged, a.staged);
  EXPECT_EQ(b->error, "");

  unit_ack defaults;  // next_offset -1, watermark INT64_MIN
  defaults.error = "shard 1: disk full";
  b.reset();
  ask([&](unit_ack& r) { b = std::move(r); }, ack_atom::value, defaults);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->next_offset, -1);
  EXPECT_EQ(b->watermark, INT64_MIN);
  EXPECT_EQ(b->error, "shard 1: disk full");

  checkpoint_ack c;
  c.epoch = 3;
  c.partition = -1;
  c.shard = 2;
  c.next_offset = 77;
  c.watermark = INT64_MIN;
  c.counters = {5, 4, 1, 0, 0};
  c.error = "e";
  std::optional<checkpoint_ack> d;
  ask([&](checkpoint_ack& r) { d = std::move(r); }, c);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->epoch, 3u);
  EXPECT_EQ(d->partition, -1);
  EXPECT_EQ(d->shard, 2);
  EXPECT_EQ(d->next_offset, 77);
  EXPECT_EQ(d->watermark, INT64_MIN);
  EXPECT_EQ(d->counters.in, 5);
  EXPECT_EQ(d->counters.out, 4);
  EXPECT_EQ(d->counters.filtered, 1);
  EXPECT_EQ(d->error, "e");
}

TEST_F(remote_messages, the_generation_protocol_crosses_intact) {
  unit_assignment a;
  a.generation = 9;
  a.partitions = {0, 3};
  a.shards = {1};
  a.restore_epoch = 41;
  a.first_epoch = 42;
  a.all_partitions = {0, 1, 2, 3};
  a.shard_count = 2;
  std::optional<unit_assignment> b;
  ask([&](unit_assignment& r) { b = std::move(r); }, assign_atom::value, a);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->generation, 9u);
  EXPECT_EQ(b->partitions, a.partitions);
  EXPECT_EQ(b->shards, a.shards);
  EXPECT_EQ(b->restore_epoch, 41u);
  EXPECT_EQ(b->first_epoch, 42u);
  EXPECT_EQ(b->all_partitions, a.all_partitions);
  EXPECT_EQ(b->shard_count, 2);

  // Shard handles of the sending node travel as actor handles (proxies on the other side).
  caf::scoped_actor self{sending_};
  const std::vector<caf::actor> handles = {caf::actor_cast<caf::actor>(self),
                                           caf::actor_cast<caf::actor>(self)};
  bool ready = false;
  ask(
      [&](uint64_t generation, std::vector<int32_t>& ids, uint64_t n_handles) {
        ready = true;
        EXPECT_EQ(generation, 9u);
        EXPECT_EQ(ids, (std::vector<int32_t>{1, 0}));
        EXPECT_EQ(n_handles, 2u);
      },
      ready_atom::value, uint64_t{9}, std::vector<int32_t>{1, 0}, handles);
  EXPECT_TRUE(ready);
  bool started = false;
  ask(
      [&](uint64_t generation, uint64_t n_handles) {
        started = true;
        EXPECT_EQ(generation, 9u);
        EXPECT_EQ(n_handles, 2u);
      },
      start_atom::value, uint64_t{9}, handles);
  EXPECT_TRUE(started);
}

TEST(local_partials, keep_their_pointer_and_are_never_encoded) {
  node_config cfg;
  caf::actor_system sys{cfg};
  auto batch = std::make_shared<partial_batch>();
  batch->partition = 2;
  auto echo = sys.spawn(
      [](caf::event_based_actor*, std::shared_ptr<partial_batch> sent) {
        return caf::behavior{[sent](partials_msg& m) {
          return m.batch.get() == sent.get() && m.bytes.empty() && m.source_partition() == 2;
        }};
      },
      batch);
  caf::scoped_actor self{sys};
  partials_msg m;
  m.batch = batch;
  bool same = false;
  self->request(echo, timeout, std::move(m))
      .receive([&](bool ok) { same = ok; }, [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
  EXPECT_TRUE(same);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST(partials_msg_serialization, saves_the_encoding_and_loads_bytes_that_get_decodes) {
  node_config cfg;
  caf::actor_system sys{cfg};
  const aggregation_plan plan = test_plan();
  std::vector<partial_batch> cut = cut_partials(plan);
  const std::string want = encode_partial_batch(cut[0]);
  partials_msg m;
  m.batch = std::make_shared<partial_batch>(std::move(cut[0]));
  m.end = true;
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(m));
  partials_msg in;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(in));
  EXPECT_EQ(in.batch, nullptr);
  EXPECT_EQ(in.bytes, want);
  EXPECT_EQ(in.partition, 5);
  EXPECT_TRUE(in.end);
  std::string err;
  partial_batch* b = in.get(plan, &err);
  ASSERT_NE(b, nullptr) << err;
  EXPECT_EQ(encode_partial_batch(*b), want);
  EXPECT_TRUE(in.bytes.empty());
  EXPECT_EQ(in.get(plan, &err), b);  // decoded once

  // Bytes that do not decode, or carry another partition than the label: nullptr, an error.
  partials_msg bad;
  bad.partition = 5;
  bad.bytes = want.substr(0, want.size() / 2);
  EXPECT_EQ(bad.get(plan, &err), nullptr);
  EXPECT_NE(err.find("partial batch:"), std::string::npos) << err;
  partials_msg relabelled;
  relabelled.partition = 6;
  relabelled.bytes = want;
  EXPECT_EQ(relabelled.get(plan, &err), nullptr);
  EXPECT_NE(err.find("partition 5 sent as partition 6"), std::string::npos) << err;
}

}  // namespace
}  // namespace eddy
