// broker_watch_test.cpp — the lines eddy logs about unreachable Kafka brokers, and when.
#include "worker/kafka/broker_watch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

namespace eddy {
namespace {

using namespace std::chrono_literals;
using clock = broker_watch::clock;

TEST(broker_watch, says_nothing_while_the_brokers_are_reachable) {
  broker_watch w;
  const auto t0 = clock::time_point{} + 1h;
  EXPECT_EQ(w.update(false, "", t0), std::nullopt);
  EXPECT_EQ(w.update(false, "", t0 + 30s), std::nullopt);
  EXPECT_FALSE(w.down());
  EXPECT_EQ(w.down_for(t0 + 30s), clock::duration::zero());
}

TEST(broker_watch, one_line_when_they_go_down_then_one_every_ten_seconds_then_one_when_back) {
  broker_watch w;
  const auto t0 = clock::time_point{} + 1h;
  EXPECT_EQ(w.update(true, "b1: Connection refused", t0),
            "Kafka brokers unreachable (b1: Connection refused); retrying");
  EXPECT_TRUE(w.down());
  // Polls every 100 ms say nothing more until 10 s have passed.
  for (auto t = t0 + 100ms; t < t0 + 10s; t += 100ms)
    EXPECT_EQ(w.update(true, "", t), std::nullopt) << (t - t0).count();
  EXPECT_EQ(w.update(true, "", t0 + 10s),
            "Kafka brokers unreachable for 10 s (b1: Connection refused); retrying");
  EXPECT_EQ(w.update(true, "", t0 + 15s), std::nullopt);
  // The latest reason is shown; a poll that comes late still gives one line, on the schedule.
  EXPECT_EQ(w.update(true, "b1: timed out", t0 + 20s + 700ms),
            "Kafka brokers unreachable for 20 s (b1: timed out); retrying");
  EXPECT_EQ(w.update(true, "", t0 + 29s), std::nullopt);
  EXPECT_EQ(w.down_for(t0 + 29s), 29s);
  EXPECT_EQ(w.update(false, "", t0 + 34s + 200ms), "Kafka brokers reachable again after 34 s");
  EXPECT_FALSE(w.down());
  EXPECT_EQ(w.down_for(t0 + 35s), clock::duration::zero());
  EXPECT_EQ(w.update(false, "", t0 + 40s), std::nullopt);
}

TEST(broker_watch, a_second_outage_starts_over_with_its_own_reason) {
  broker_watch w(2s);
  const auto t0 = clock::time_point{} + 1h;
  ASSERT_TRUE(w.update(true, "first", t0).has_value());
  ASSERT_TRUE(w.update(false, "", t0 + 1s).has_value());
  EXPECT_EQ(w.update(true, "", t0 + 5s), "Kafka brokers unreachable; retrying");
  EXPECT_EQ(w.update(true, "", t0 + 7s), "Kafka brokers unreachable for 2 s; retrying");
  EXPECT_EQ(w.down_for(t0 + 7s), 2s);
}

}  // namespace
}  // namespace eddy
