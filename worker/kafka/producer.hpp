// producer.hpp — a thin librdkafka producer, and the one place librdkafka error codes become text.
//
// kafka_producer wraps one rd_kafka_t producer handle. Messages are copied into librdkafka on
// produce(); delivery happens in the background and is reported through poll()/flush(), which
// count delivered messages and delivery errors (the first error's text is kept). Keys are
// partitioned with "murmur2_random" (the Java client's partitioner: the same key lands on the
// same partition as with Kafka Connect / Debezium); null keys go to random partitions.
//
// Errors are values: create() returns nullptr and sets *error; produce() and flush() return
// false and set *error. Nothing throws.
//
// Thread-safety: not thread-safe. One thread calls produce/poll/flush; the destructor flushes
// for up to 5 s and then drops what is still queued.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eddy {

/// librdkafka's description of an rd_kafka_resp_err_t ("Local: Queue full", "Broker: Unknown
/// topic or partition", ...) followed by its symbolic name, e.g. "Local: Queue full
/// (_QUEUE_FULL)". The single translation point for librdkafka error codes in eddy.
[[nodiscard]] std::string kafka_error_text(int rd_kafka_resp_err);

/// librdkafka configuration properties, applied in order (later entries win).
using kafka_config = std::vector<std::pair<std::string, std::string>>;

class kafka_producer {
 public:
  /// A producer for `bootstrap` ("host:port,..."). `extra` overrides the defaults
  /// (partitioner=murmur2_random, linger.ms=5); e.g. {"compression.type", "zstd"}.
  /// nullptr with *error set on an invalid property or value.
  [[nodiscard]] static std::unique_ptr<kafka_producer> create(const std::string& bootstrap,
                                                              const kafka_config& extra,
                                                              std::string* error);
  ~kafka_producer();
  kafka_producer(const kafka_producer&) = delete;
  kafka_producer& operator=(const kafka_producer&) = delete;

  /// Queues one message (copied). `partition` -1 = chosen by the key hash. An empty `key` is
  /// sent as a null key. `value` nullopt = a tombstone (null value); an empty value stays empty.
  /// `timestamp_ms` 0 = now. When librdkafka's queue is full, polls for delivery reports and
  /// retries (blocking up to `queue_full_timeout_ms` in total). False with *error set when the
  /// message cannot be queued (unknown partition, message too large, queue stuck full).
  [[nodiscard]] bool produce(std::string_view topic, int32_t partition, std::string_view key,
                             std::optional<std::string_view> value, int64_t timestamp_ms,
                             std::string* error, int queue_full_timeout_ms = 60000);

  /// Serves delivery reports for up to timeout_ms (0 = don't wait).
  void poll(int timeout_ms = 0);

  /// Waits until every queued message is delivered or failed, up to timeout_ms. False with
  /// *error set when messages are still outstanding at the timeout. Delivery failures are not
  /// flush failures: check delivery_errors().
  [[nodiscard]] bool flush(int timeout_ms, std::string* error);

  /// Messages queued by produce() so far.
  [[nodiscard]] uint64_t queued() const;
  /// Messages acknowledged by the broker so far.
  [[nodiscard]] uint64_t delivered() const;
  /// Messages whose delivery failed so far.
  [[nodiscard]] uint64_t delivery_errors() const;
  /// Text of the first delivery failure; empty when none.
  [[nodiscard]] const std::string& first_delivery_error() const;
  /// Messages queued but not yet delivered or failed (librdkafka's out queue).
  [[nodiscard]] int outstanding() const;

 private:
  struct impl;
  explicit kafka_producer(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace eddy
