// sample_data.hpp — a deterministic generator of ride-booking CDC messages, as Debezium writes
// them to Kafka for the table public.business_ncr_ride_bookings (topic
// business_postgres.public.business_ncr_ride_bookings).
//
// A sample_generator yields one Kafka message (key, value or tombstone, timestamp) per call to
// next(): creates ('c'), snapshot reads ('r'), updates of live rows ('u'), deletes ('d') each
// followed by a tombstone ('t'), and, at a configurable ratio, malformed records ('x') that a
// decoder must send to the dead-letter path. Three value shapes are supported:
// ExtractNewRecordState
// ("unwrapped"), the plain {before, after, source, op, ts_ms} envelope, and JsonConverter's
// {"schema", "payload"} wrapper with Decimal/MicroTimestamp/Date logical types.
//
// Pure and deterministic: no I/O, no clocks, no librdkafka. The same seed and options give a
// byte-identical stream on every platform (own PRNG; no std distributions). Memory is bounded by
// `id_space` (the number of live rows remembered as update/delete targets).
//
// Thread-safety: none; one generator per thread. Values are owned by the returned messages.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace eddy::app {

/// The value shape Debezium produces, depending on the connector's converter and SMTs.
enum class sample_format : uint8_t {
  unwrapped,  ///< ExtractNewRecordState, add.fields=op,source.ts_ms, delete.handling.mode=rewrite
  envelope,   ///< {before, after, source, op, ts_ms}; JsonConverter schemas.enable=false
  schema,     ///< {"schema": ..., "payload": envelope}; JsonConverter schemas.enable=true
};

/// "unwrapped", "envelope", "schema".
[[nodiscard]] std::string_view to_string(sample_format f);
/// Inverse of to_string; nullopt for an unknown name.
[[nodiscard]] std::optional<sample_format> parse_sample_format(std::string_view name);

struct sample_options {
  uint64_t seed = 42;
  sample_format format = sample_format::unwrapped;
  /// Event time of the first message, microseconds since the epoch (2025-11-07T00:00:00Z).
  /// Event times saturate at the int64 bounds: any value is safe, though windows accept only
  /// years 0001..9999 (eddy::min_event_time_us..max_event_time_us).
  int64_t start_time_us = 1762473600000000;
  /// Event time advances by this much per message (tombstones share their delete's time).
  int64_t event_spacing_us = 1000;
  /// Each event time (created_at / updated_at / source ts_ms) is moved back by a uniform
  /// amount in [0, disorder_ms] milliseconds; the Kafka timestamp stays in order.
  int64_t disorder_ms = 0;
  /// Fraction of messages, in [0, 1], that are malformed records (op 'x').
  double bad_ratio = 0;
  /// At most this many live rows are remembered as targets of updates and deletes; beyond it a
  /// random remembered row is forgotten (it stays alive but is never touched again).
  int id_space = 100000;
};

/// One Kafka message.
struct sample_message {
  std::string key;
  std::optional<std::string> value;  ///< nullopt: a tombstone
  int64_t timestamp_ms = 0;          ///< Kafka message timestamp (non-decreasing)
  char op = 'c';                     ///< 'c', 'r', 'u', 'd', 't' (tombstone) or 'x' (malformed)
};

/// Counts of what next() has returned so far.
struct sample_stats {
  uint64_t messages = 0;
  uint64_t creates = 0;     ///< op c
  uint64_t reads = 0;       ///< op r
  uint64_t updates = 0;     ///< op u
  uint64_t deletes = 0;     ///< op d
  uint64_t tombstones = 0;  ///< null values, one after each delete
  uint64_t bad = 0;         ///< malformed records (op x)
};

class sample_generator {
 public:
  explicit sample_generator(const sample_options& options);
  ~sample_generator();
  sample_generator(sample_generator&&) noexcept;
  sample_generator& operator=(sample_generator&&) noexcept;
  sample_generator(const sample_generator&) = delete;
  sample_generator& operator=(const sample_generator&) = delete;

  /// The next message of the stream. Never fails.
  [[nodiscard]] sample_message next();
  [[nodiscard]] const sample_stats& stats() const;
  [[nodiscard]] const sample_options& options() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// ---- helpers, exposed for tests -----------------------------------------------------------

/// Standard base64 (with padding) of `bytes`.
[[nodiscard]] std::string encode_base64(std::string_view bytes);
/// Minimal big-endian two's-complement bytes of `unscaled`, as Kafka Connect's Decimal stores
/// BigInteger.toByteArray() (113800 -> 01 BC 88; -1 -> FF; 0 -> 00).
[[nodiscard]] std::string decimal_bytes(int64_t unscaled);

}  // namespace eddy::app
