// produce.hpp — writing generated ride-booking CDC messages to a Kafka topic (`eddy produce`).
//
// run_produce() drives a sample_generator into a kafka_producer: `count` messages (tombstones
// and malformed records included; 0 = until *stop), optionally paced to `rate` messages per
// second by sleeping until each message's slot on a fixed schedule (no busy waiting), then
// flushes and reports what was produced. The run stops at the first delivery failure. Errors are
// values: a failed run returns ok == false with *error set, and still reports the counts reached.
//
// Thread-safety: run_produce() blocks the calling thread; `stop` may be set from any thread
// (e.g. a signal-waiting thread) and is checked before every message.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "app/sample_data.hpp"

namespace eddy::app {

struct produce_options {
  std::string bootstrap;
  std::string topic = "business_postgres.public.business_ncr_ride_bookings";
  uint64_t count = 1000;  ///< Kafka messages in total; 0 = until *stop
  double rate = 0;        ///< messages per second; 0 = as fast as possible
  uint64_t seed = 42;
  sample_format format = sample_format::unwrapped;
  int64_t disorder_ms = 0;
  double bad_ratio = 0;
  std::string compression = "zstd";  ///< none, gzip, snappy, lz4, zstd
  int32_t partition = -1;            ///< -1 = by key hash (murmur2, as Java clients)
  int64_t start_time_us = sample_options{}.start_time_us;
  int64_t event_spacing_us = sample_options{}.event_spacing_us;  ///< event-time step per message
  int flush_timeout_ms = 60000;
  /// Extra librdkafka producer properties, applied last (e.g. {"linger.ms", "50"}). The
  /// defaults are partitioner=murmur2_random, linger.ms=5, message.timeout.ms=30000.
  std::vector<std::pair<std::string, std::string>> producer_config;
};

struct produce_result {
  bool ok = false;
  uint64_t produced = 0;         ///< messages acknowledged by the broker
  uint64_t delivery_errors = 0;  ///< messages the broker did not take
  sample_stats stats;            ///< what was generated and queued, by op
  double seconds = 0;            ///< wall time, including the final flush
  [[nodiscard]] double rate() const { return seconds > 0 ? produced / seconds : 0; }
};

[[nodiscard]] produce_result run_produce(const produce_options& options,
                                         const std::atomic<bool>* stop, std::string* error);

/// The one-line JSON summary `eddy produce` prints:
/// {"produced": N, "ops": {"c": .., "r": .., "u": .., "d": ..}, "tombstones": T, "bad": B,
///  "seconds": S, "rate": R} (plus "delivery_errors" when non-zero).
[[nodiscard]] std::string summary_json(const produce_result& result);

}  // namespace eddy::app
