// consumer.hpp — one librdkafka consumer per worker process, with manual partition assignment.
//
// eddy assigns partitions itself (the coordinator decides), so the consumer never joins a
// consumer-group rebalance: `assign()` takes explicit partitions and start offsets. Messages of
// all assigned partitions are fetched in batches from the consumer queue; partition EOF and
// poll timeouts are not errors. Offsets may be committed for lag monitoring tools, but they are
// not eddy's source of truth. Not thread-safe: use one consumer from one thread (the poller).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace eddy {

/// Start positions for `assign()`, besides concrete offsets.
inline constexpr int64_t offset_beginning = -2;  // RD_KAFKA_OFFSET_BEGINNING
inline constexpr int64_t offset_end = -1;        // RD_KAFKA_OFFSET_END

/// One fetched message, valid only during the callback that receives it.
struct fetched_message {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;
  const char* key = nullptr;
  size_t key_size = 0;
  const char* value = nullptr;  ///< nullptr for a tombstone
  size_t value_size = 0;
};

/// librdkafka properties that bound its prefetch queue by eddy's `source.max_in_flight_mb`
/// (`max_in_flight_mb` MiB): queued.max.messages.kbytes = the same bytes (payload of fetched
/// messages not yet polled, over all assigned partitions), and queued.min.messages = one message
/// per 256 bytes of it (1000 .. 200000), since librdkafka keeps a few hundred bytes per queued
/// message besides its payload that the byte limit does not count. fetch.max.bytes follows
/// librdkafka's own rule (min(50 MB, the queue limit), at least message.max.bytes). So the
/// fetched input in memory is about twice the setting: the prefetch queue plus eddy's in-flight
/// batches, plus one fetch response.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> consumer_queue_properties(
    int64_t max_in_flight_mb);

class kafka_consumer {
 public:
  /// Connects lazily; `extra` are librdkafka properties (name, value) applied last.
  [[nodiscard]] static std::unique_ptr<kafka_consumer> create(
      const std::string& bootstrap, const std::string& group_id,
      const std::vector<std::pair<std::string, std::string>>& extra, std::string* error);
  ~kafka_consumer();

  /// Partition ids of `topic`, from broker metadata. Empty with `error` set when the topic does
  /// not exist or the brokers cannot be reached within `timeout_ms`.
  [[nodiscard]] std::vector<int32_t> partitions(const std::string& topic, int timeout_ms,
                                                std::string* error);

  /// [low, high) offsets of a partition; false with `error` on failure.
  [[nodiscard]] bool watermarks(const std::string& topic, int32_t partition, int64_t* low,
                                int64_t* high, int timeout_ms, std::string* error);

  /// [low, high) of each of `partitions` (what --exit-at-end reads to); nullopt with `error`
  /// naming the first partition that failed.
  [[nodiscard]] std::optional<std::map<int32_t, std::pair<int64_t, int64_t>>> watermarks(
      const std::string& topic, const std::vector<int32_t>& partitions, int timeout_ms,
      std::string* error);

  /// Replaces the assignment: consume `topic` partitions from the given offsets.
  [[nodiscard]] bool assign(const std::string& topic,
                            const std::vector<std::pair<int32_t, int64_t>>& start,
                            std::string* error);

  /// Adds `topic` partitions, from the given offsets, to the assignment; the partitions already
  /// assigned go on untouched (their fetched and held messages stay valid).
  [[nodiscard]] bool add_partitions(const std::string& topic,
                                    const std::vector<std::pair<int32_t, int64_t>>& start,
                                    std::string* error);

  /// Waits up to `timeout_ms` for messages, then hands up to `max` of them to `on_message`
  /// and partition-EOF events to `on_eof`. Returns the number of messages handed over;
  /// fatal consumer errors are reported through `error` (and a false `*ok`).
  /// Byte budget: once the messages handed over in this call cost `max_bytes` or more (key and
  /// value bytes plus `bytes_per_message` each), the rest of what was fetched stays held in this
  /// consumer, in order, and comes first in the next call; so a call hands over at most
  /// `max_bytes` plus one message. Held messages are at most one fetched batch (`max`).
  size_t poll(int timeout_ms, size_t max,
              const std::function<void(const fetched_message&)>& on_message,
              const std::function<void(int32_t partition, int64_t next_offset)>& on_eof,
              std::string* error, bool* ok, size_t max_bytes = SIZE_MAX,
              size_t bytes_per_message = 0);

  /// Whether the brokers can be reached, as far as this consumer knows: `all_down` is set when
  /// librdkafka reports that every broker is down (RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, served
  /// by poll() before it hands over messages) and cleared only by a probe_brokers() that
  /// succeeds (messages handed over after the report may have been fetched before it).
  /// `reason` is librdkafka's last connection error text.
  struct broker_state {
    bool all_down = false;
    std::string reason;
  };
  [[nodiscard]] broker_state brokers() const;
  /// Asks a broker for `topic`'s metadata (waits up to `timeout_ms`); true and `all_down`
  /// cleared when one answered.
  bool probe_brokers(const std::string& topic, int timeout_ms);
  /// Other errors librdkafka reported through its error callback since the last call (at most
  /// 16 kept), as text; connection errors are in brokers() instead.
  [[nodiscard]] std::vector<std::string> take_errors();

  /// Commits `offset` (the next to read) per partition for lag monitoring: asynchronously, or
  /// waiting for the broker's answer when `wait` ("" or the error), but at most 5 s (librdkafka
  /// itself would wait for good while no broker can be reached).
  std::string commit(const std::string& topic,
                     const std::vector<std::pair<int32_t, int64_t>>& offsets, bool wait = false);

  /// The group's committed offsets of `partitions` (-1001 = none), from the broker.
  [[nodiscard]] std::vector<std::pair<int32_t, int64_t>> committed(
      const std::string& topic, const std::vector<int32_t>& partitions, int timeout_ms,
      std::string* error);

 private:
  struct impl;
  explicit kafka_consumer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace eddy
