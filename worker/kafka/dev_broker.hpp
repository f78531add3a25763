// dev_broker.hpp — an in-process, in-memory Kafka cluster for development, tests and demos.
//
// dev_broker wraps librdkafka's mock cluster (rdkafka_mock.h): N brokers speaking the Kafka
// protocol on random 127.0.0.1 ports, with topics created up front. It is NOT a real Kafka:
// each partition keeps only ~5 MiB or 100k batches (older data is silently dropped; hard-coded
// in librdkafka 2.0.2), transactions are not real (every call succeeds, nothing is aborted),
// consumer groups work but rebalance slowly, and nothing is persisted. Production uses a real
// Kafka cluster.
//
// Fixed port: librdkafka 2.0.2 always binds its mock brokers to 127.0.0.1:0 (no API to choose a
// port). With `port` > 0, dev_broker also listens on 127.0.0.1:port and forwards each
// connection byte-for-byte to the first mock broker. That port is a stable *bootstrap* address:
// clients send their first Metadata request through it and then connect directly to the brokers'
// real (random) loopback ports that the metadata advertises. So it works for clients on this
// host (which is the only place the mock's loopback listeners are reachable anyway).
//
// Thread-safety: start() and the destructor from one thread; the accessors are const and safe
// to call concurrently. create_topic() and set_broker_up() may be called from any one thread at a
// time. The mock cluster runs on librdkafka's own threads; the forwarder on one thread of ours.
// Ownership: the dev_broker owns the mock cluster, its rd_kafka_t handle and the forwarder; the
// destructor stops all three (connected clients then see their connections closed).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

/// A topic to create: Kafka-legal name ([A-Za-z0-9._-], 1..249 chars, not "." or "..") and
/// 1..dev_broker::max_partitions partitions.
struct topic_spec {
  std::string name;
  int partitions = 1;
};

/// Parses "NAME:PARTITIONS" (e.g. "rides:8"); the last ':' separates the count. nullopt with
/// *error set (e.g. "expected NAME:PARTITIONS, got 'rides'") when malformed or out of range.
[[nodiscard]] std::optional<topic_spec> parse_topic_spec(std::string_view text, std::string* error);

/// Checks a topic spec; false with *error set when invalid.
[[nodiscard]] bool validate_topic_spec(const topic_spec& spec, std::string* error);

class dev_broker {
 public:
  static constexpr int max_brokers = 16;
  static constexpr int max_partitions = 10000;

  /// Starts `brokers` (1..max_brokers) mock brokers and creates `topics` (names unique).
  /// `port` 0 = random ports only; 1..65535 = also a forwarding bootstrap listener on
  /// 127.0.0.1:port (see above). nullptr with *error set on invalid arguments or when the port
  /// cannot be bound.
  [[nodiscard]] static std::unique_ptr<dev_broker> start(int brokers,
                                                         const std::vector<topic_spec>& topics,
                                                         int port, std::string* error);
  ~dev_broker();
  dev_broker(const dev_broker&) = delete;
  dev_broker& operator=(const dev_broker&) = delete;

  /// What clients put in bootstrap.servers: "127.0.0.1:port" when a fixed port was asked for,
  /// else the mock brokers' own list "127.0.0.1:p1,127.0.0.1:p2,...".
  [[nodiscard]] const std::string& bootstrap() const;
  /// The mock brokers' own listeners, "127.0.0.1:p1,...", in broker-id order (ids 1..N).
  [[nodiscard]] const std::string& broker_addresses() const;
  [[nodiscard]] int broker_count() const;

  /// Creates a topic while running; false with *error set if invalid or it already exists.
  [[nodiscard]] bool create_topic(const topic_spec& spec, std::string* error);
  /// Takes broker `broker_id` (1..N) down (closes its connections, refuses new ones) or up.
  [[nodiscard]] bool set_broker_up(int broker_id, bool up, std::string* error);

 private:
  struct impl;
  explicit dev_broker(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace eddy
