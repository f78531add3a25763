// dev_broker_test.cpp — the development broker round-trips messages produced by kafka_producer.
#include "worker/kafka/dev_broker.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "worker/kafka/consumer.hpp"
#include "worker/kafka/producer.hpp"

namespace eddy {
namespace {

struct consumed {
  uint64_t messages = 0;
  uint64_t tombstones = 0;
  std::map<std::string, std::set<int32_t>> partitions_by_key;
};

/// Reads every partition of `topic` from the beginning to its end with a plain assign()
/// consumer (no group rebalancing). Fails the test on errors or after 30 s.
consumed consume_all(const std::string& bootstrap, const std::string& topic, int partitions) {
  consumed out;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] :
       {std::pair{"bootstrap.servers", bootstrap.c_str()}, std::pair{"group.id", "dev-broker-test"},
        std::pair{"enable.partition.eof", "true"}, std::pair{"enable.auto.commit", "false"},
        std::pair{"fetch.wait.max.ms", "10"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr), RD_KAFKA_CONF_OK) << errstr;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!rk) {
    ADD_FAILURE() << errstr;
    return out;
  }
  rd_kafka_poll_set_consumer(rk);
  // Metadata first, so the "beginning" offset lookup does not wait on a retry timer.
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  EXPECT_EQ(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);

  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  EXPECT_EQ(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);

  std::set<int32_t> at_eof;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (static_cast<int>(at_eof.size()) < partitions) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "timed out; " << at_eof.size() << " partition(s) at EOF";
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_eof.insert(m->partition);
    } else if (m->err) {
      ADD_FAILURE() << kafka_error_text(m->err);
    } else {
      at_eof.erase(m->partition);
      ++out.messages;
      if (!m->payload) ++out.tombstones;
      if (m->key) {
        out.partitions_by_key[std::string(static_cast<const char*>(m->key), m->key_len)].insert(
            m->partition);
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

/// A loopback port that was free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  ::close(fd);
  return ntohs(sin.sin_port);
}

void produce_n(kafka_producer& producer, const std::string& topic, int n, int distinct_keys) {
  std::string error;
  for (int i = 0; i < n; ++i) {
    const std::string key = "{\"id\":" + std::to_string(i % distinct_keys) + "}";
    const std::string value = "{\"n\":" + std::to_string(i) + "}";
    std::optional<std::string_view> v = value;
    if (i % 10 == 9) v.reset();  // every tenth is a tombstone
    ASSERT_TRUE(producer.produce(topic, -1, key, v, 0, &error)) << error;
  }
}

TEST(dev_broker, round_trips_messages_on_two_topics) {
  std::string error;
  auto broker = dev_broker::start(1, {{"alpha", 4}, {"beta", 2}}, 0, &error);
  ASSERT_TRUE(broker) << error;
  EXPECT_NE(broker->bootstrap().find("127.0.0.1:"), std::string::npos);
  EXPECT_EQ(broker->bootstrap(), broker->broker_addresses());

  auto producer =
      kafka_producer::create(broker->bootstrap(), {{"compression.type", "zstd"}}, &error);
  ASSERT_TRUE(producer) << error;
  produce_n(*producer, "alpha", 600, 50);
  produce_n(*producer, "beta", 400, 50);
  ASSERT_TRUE(producer->flush(10000, &error)) << error;
  EXPECT_EQ(producer->queued(), 1000u);
  EXPECT_EQ(producer->delivered(), 1000u);
  EXPECT_EQ(producer->delivery_errors(), 0u) << producer->first_delivery_error();

  const consumed alpha = consume_all(broker->bootstrap(), "alpha", 4);
  const consumed beta = consume_all(broker->bootstrap(), "beta", 2);
  EXPECT_EQ(alpha.messages, 600u);
  EXPECT_EQ(alpha.tombstones, 60u);
  EXPECT_EQ(beta.messages, 400u);
  EXPECT_EQ(beta.tombstones, 40u);
  // The key-hash partitioner keeps every key on one partition, and spreads keys over several.
  std::set<int32_t> used;
  for (const auto& [key, parts] : alpha.partitions_by_key) {
    EXPECT_EQ(parts.size(), 1u) << key;
    used.insert(parts.begin(), parts.end());
  }
  EXPECT_GT(used.size(), 1u);
}

/// A cluster host kept across a generation change adds the partitions that moved to it to its
/// running consumer: those are read from their given offsets, and the partitions it had go on
/// where they were (nothing re-read, nothing skipped).
TEST(kafka_consumer, adding_partitions_keeps_the_assigned_ones_where_they_are) {
  std::string error;
  auto broker = dev_broker::start(1, {{"gamma", 2}}, 0, &error);
  ASSERT_TRUE(broker) << error;
  auto producer = kafka_producer::create(broker->bootstrap(), {}, &error);
  ASSERT_TRUE(producer) << error;
  for (int32_t p : {0, 1})
    for (int i = 0; i < 100; ++i)
      ASSERT_TRUE(producer->produce("gamma", p, "k", std::string_view("v"), 0, &error)) << error;
  ASSERT_TRUE(producer->flush(10000, &error)) << error;
  auto consumer = kafka_consumer::create(broker->bootstrap(), "eddy-test", {}, &error);
  ASSERT_TRUE(consumer) << error;
  ASSERT_EQ(consumer->partitions("gamma", 10000, &error).size(), 2u) << error;
  ASSERT_TRUE(consumer->assign("gamma", {{0, 0}}, &error)) << error;
  std::map<int32_t, std::vector<int64_t>> seen;
  auto poll_until = [&](const std::function<bool()>& done) {
    bool ok = true;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         !done() && std::chrono::steady_clock::now() < until;) {
      consumer->poll(
          100, 30, [&](const fetched_message& m) { seen[m.partition].push_back(m.offset); },
          [](int32_t, int64_t) {}, &error, &ok, 1 << 20, 0);
      ASSERT_TRUE(ok) << error;
    }
  };
  poll_until([&] { return seen[0].size() >= 30; });
  ASSERT_GE(seen[0].size(), 30u);
  ASSERT_LT(seen[0].size(), 100u) << "partition 0 was read to its end before the addition";
  ASSERT_TRUE(consumer->add_partitions("gamma", {{1, 50}}, &error)) << error;
  poll_until([&] { return seen[0].size() >= 100 && seen[1].size() >= 50; });
  std::vector<int64_t> want0(100), want1(50);
  for (int i = 0; i < 100; ++i) want0[i] = i;
  for (int i = 0; i < 50; ++i) want1[i] = 50 + i;
  EXPECT_EQ(seen[0], want0);
  EXPECT_EQ(seen[1], want1);
}

TEST(dev_broker, serves_several_brokers_behind_a_fixed_bootstrap_port) {
  std::string error;
  const int port = free_port();
  auto broker = dev_broker::start(3, {{"rides", 6}}, port, &error);
  ASSERT_TRUE(broker) << error;
  EXPECT_EQ(broker->bootstrap(), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(broker->broker_count(), 3);

  auto producer = kafka_producer::create(broker->bootstrap(), {}, &error);
  ASSERT_TRUE(producer) << error;
  produce_n(*producer, "rides", 1000, 1000);
  ASSERT_TRUE(producer->flush(10000, &error)) << error;
  EXPECT_EQ(producer->delivery_errors(), 0u) << producer->first_delivery_error();
  EXPECT_EQ(consume_all(broker->bootstrap(), "rides", 6).messages, 1000u);
}

TEST(dev_broker, refuses_a_port_already_in_use) {
  std::string error;
  const int port = free_port();
  auto first = dev_broker::start(1, {}, port, &error);
  ASSERT_TRUE(first) << error;
  auto second = dev_broker::start(1, {}, port, &error);
  EXPECT_FALSE(second);
  EXPECT_NE(error.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << error;
}

TEST(dev_broker, rejects_invalid_arguments_with_an_error) {
  std::string error;
  EXPECT_FALSE(dev_broker::start(1, {{"ok", 0}}, 0, &error));
  EXPECT_NE(error.find("partitions"), std::string::npos) << error;
  EXPECT_FALSE(dev_broker::start(1, {{"bad name", 1}}, 0, &error));
  EXPECT_NE(error.find("bad name"), std::string::npos) << error;
  EXPECT_FALSE(dev_broker::start(1, {{"", 1}}, 0, &error));
  EXPECT_FALSE(dev_broker::start(1, {{"t", 1}, {"t", 2}}, 0, &error));
  EXPECT_NE(error.find("twice"), std::string::npos) << error;
  EXPECT_FALSE(dev_broker::start(0, {}, 0, &error));
  EXPECT_FALSE(dev_broker::start(17, {}, 0, &error));
  EXPECT_FALSE(dev_broker::start(1, {}, 70000, &error));
}

TEST(dev_broker, creates_topics_while_running_and_refuses_duplicates) {
  std::string error;
  auto broker = dev_broker::start(2, {{"a", 1}}, 0, &error);
  ASSERT_TRUE(broker) << error;
  EXPECT_TRUE(broker->create_topic({"b", 3}, &error)) << error;
  EXPECT_FALSE(broker->create_topic({"a", 1}, &error));
  EXPECT_NE(error.find("TOPIC_ALREADY_EXISTS"), std::string::npos) << error;
  EXPECT_TRUE(broker->set_broker_up(2, false, &error)) << error;
  EXPECT_TRUE(broker->set_broker_up(2, true, &error)) << error;
  EXPECT_FALSE(broker->set_broker_up(3, false, &error));
}

TEST(topic_spec, parses_name_colon_partitions) {
  std::string error;
  auto spec = parse_topic_spec("business_postgres.public.business_ncr_ride_bookings:8", &error);
  ASSERT_TRUE(spec) << error;
  EXPECT_EQ(spec->name, "business_postgres.public.business_ncr_ride_bookings");
  EXPECT_EQ(spec->partitions, 8);
  for (const char* bad :
       {"rides", "rides:", ":3", "rides:x", "rides:3x", "rides:0", "r s:1", "rides:-1"}) {
    EXPECT_FALSE(parse_topic_spec(bad, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST(kafka_producer, reports_invalid_configuration) {
  std::string error;
  EXPECT_FALSE(kafka_producer::create("127.0.0.1:1", {{"compression.type", "brotli"}}, &error));
  EXPECT_NE(error.find("compression"), std::string::npos) << error;
  EXPECT_FALSE(kafka_producer::create("127.0.0.1:1", {{"no.such.property", "1"}}, &error));
}

TEST(kafka_producer, rejects_a_partition_that_does_not_exist) {
  std::string error;
  auto broker = dev_broker::start(1, {{"one", 1}}, 0, &error);
  ASSERT_TRUE(broker) << error;
  auto producer = kafka_producer::create(broker->bootstrap(), {}, &error);
  ASSERT_TRUE(producer) << error;
  ASSERT_TRUE(producer->produce("one", 0, "k", "v", 0, &error)) << error;
  ASSERT_TRUE(producer->flush(10000, &error)) << error;
  // Once metadata is known, an out-of-range partition fails at produce() time.
  EXPECT_FALSE(producer->produce("one", 5, "k", "v", 0, &error));
  EXPECT_NE(error.find("_UNKNOWN_PARTITION"), std::string::npos) << error;
}

TEST(kafka_error_text, names_the_code) {
  EXPECT_EQ(kafka_error_text(RD_KAFKA_RESP_ERR__QUEUE_FULL), "Local: Queue full (_QUEUE_FULL)");
}

}  // namespace
}  // namespace eddy
