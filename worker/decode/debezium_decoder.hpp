// debezium_decoder.hpp — Debezium JSON messages to typed, cleaned rows.
//
// A record_decoder turns one Kafka message value into a `decoded_record`: the change's op, the
// row image it carries (after-image for c/r/u, before-image for d) converted to the declared
// fields, and the source timestamp. It understands the three shapes Debezium writes to Kafka
// (ExtractNewRecordState "unwrapped" rows, the {before, after, source, op} envelope, and the
// JsonConverter {"schema", "payload"} wrapper), Debezium's logical types (Micro/Nano/plain
// Timestamp, ZonedTimestamp, Date, Time types, Decimal, VariableScaleDecimal), and the seed
// job's quirks (b'...' wrappers, numeric strings, odd column names mapped by the pipeline file).
//
// Errors are values: a record that cannot be used yields decode_status::dead_letter and a
// human-readable reason; nothing throws. A decoder reuses one Boost.JSON parser and a 64 KiB
// arena buffer across records (the DOM fallback puts a fresh monotonic_resource over it per
// message, so memory stays bounded by the largest message), so steady-state decoding does not
// allocate per record beyond the strings it stores in rows. Not thread-safe: one decoder per
// source task.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/pipeline_config.hpp"
#include "model/row.hpp"

namespace eddy {

/// One Kafka message as the decoder sees it. Views only: the caller keeps the bytes alive.
struct raw_record {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;  ///< Kafka message timestamp, -1 when absent
  std::string_view key;
  std::string_view value;
  bool value_is_null = false;  ///< a tombstone
};

enum class decode_status : uint8_t {
  row,          ///< `out` holds a row
  skipped,      ///< a tombstone or a truncate event: carries no row (counted as filtered)
  dead_letter,  ///< unusable; `reason` says why
};

struct decoded_record {
  cdc_op op = cdc_op::create;
  row image;                  ///< declared fields, in declaration order
  std::optional<row> before;  ///< the before-image of an update, when asked for and present
  int64_t source_ts_ms = -1;  ///< source.ts_ms / __source_ts_ms, -1 when absent
};

class record_decoder {
 public:
  /// The config must outlive the decoder. `with_before_image` also decodes the before-image
  /// of updates (changelog mode).
  explicit record_decoder(const pipeline_config& cfg, bool with_before_image = false);
  ~record_decoder();
  record_decoder(const record_decoder&) = delete;
  record_decoder& operator=(const record_decoder&) = delete;

  /// Decodes and cleans `in` into `out` (reusing its storage). On dead_letter, `reason` is set
  /// (e.g. "invalid JSON at byte 17: syntax error", "column 'id': cannot read \"abc\" as int").
  /// On skipped, `reason` says what was skipped ("tombstone").
  [[nodiscard]] decode_status decode(const raw_record& in, decoded_record& out,
                                     std::string& reason);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// ---- cleaning helpers, exposed for tests -----------------------------------------------------

/// Strips one Python bytes wrapper: b'...' or b"..." -> ...; other text is returned unchanged.
[[nodiscard]] std::string_view strip_bytes_wrapper(std::string_view s);

/// Decodes standard base64 (with or without padding); nullopt when malformed.
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view text);

/// Largest |scale| a Decimal may carry. Beyond it no unscaled value of at most 128 bits is a
/// finite non-zero double (10^-400 underflows, 10^309 overflows), so such a message is
/// dead-lettered instead of costing a loop of `scale` steps.
inline constexpr int64_t max_decimal_scale = 400;

/// Value of a Debezium Decimal: big-endian two's-complement unscaled bytes (at most 16), divided
/// by 10^scale. nullopt when there are more than 16 bytes, |scale| > max_decimal_scale, or the
/// value is not a finite double (overflow, or a non-zero value that rounds to 0). O(bytes).
[[nodiscard]] std::optional<double> decimal_from_bytes(std::string_view big_endian, int64_t scale);

/// The same Decimal truncated toward zero, computed exactly in integers; nullopt when there are
/// more than 16 bytes, |scale| > max_decimal_scale, or the result is outside int64.
[[nodiscard]] std::optional<int64_t> decimal_to_int64(std::string_view big_endian, int64_t scale);

}  // namespace eddy
