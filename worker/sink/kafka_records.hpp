// kafka_records.hpp — the pure parts of the exactly-once Kafka sink (kafka_sink.hpp): record
// keys, partitions, headers, the read-back "already delivered" rule and the publish marker.
//
// A staged file (a "unit": its file name, unique per epoch, part and worker tag) is delivered as
// one record per line; record i carries the headers eddy-pipeline, eddy-unit, eddy-epoch and
// eddy-seq = i (0-based row index in the file). The partition of every record is decided here,
// deterministically from the row (key hash or sequence), so that a re-delivery sends each row to
// the partition an earlier attempt sent it to. Within a partition an idempotent producer keeps the
// records of one attempt in order (the broker checks its sequence numbers), so what an interrupted
// attempt left in partition p is a prefix of the unit's rows for p: the highest sequence read back
// per partition says where to continue. `delivered_tail` skips exactly the rows it read back
// (every row at or below that highest sequence when the prefix has no gap); a gap, which
// librdkafka can leave when a message times out and a later one still gets through, is refilled
// rather than skipped.
//
// No CAF, no librdkafka; nothing throws: errors are returned as messages ("" = ok).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eddy {

/// Header names carried by every record of the Kafka sink.
inline constexpr std::string_view header_pipeline = "eddy-pipeline";
inline constexpr std::string_view header_unit = "eddy-unit";
inline constexpr std::string_view header_epoch = "eddy-epoch";
inline constexpr std::string_view header_seq = "eddy-seq";

/// What a record's headers say about where it came from.
struct record_origin {
  std::string pipeline;
  std::string unit;  ///< the staged file's name ("batch-<pid>-<id>" without checkpoints)
  uint64_t epoch = 0;
  uint64_t seq = 0;  ///< row index in the unit, from 0
  bool operator==(const record_origin&) const = default;
};

/// The four headers (name, value), values as decimal text for epoch and seq.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> encode_origin(
    const record_origin& o);

/// The origin of a record from its headers (the last header of each name wins, as in Kafka's
/// lastHeader); nullopt when one of the four is missing or epoch/seq are not decimal numbers.
[[nodiscard]] std::optional<record_origin> decode_origin(
    const std::vector<std::pair<std::string_view, std::string_view>>& headers);

/// Splits a flat JSON object text as row_to_json writes it ({"a":1,"b":"x",...}: values are
/// strings, numbers, true, false or null, never nested) into (name, raw value text) pairs: the
/// name as written (quotes and escapes included), the value's exact source bytes. False when the
/// text is not such an object.
[[nodiscard]] bool split_flat_object(
    std::string_view text, std::vector<std::pair<std::string_view, std::string_view>>* members);

/// The key of a row: the JSON object of the `key_fields` (in that order) with the row's own value
/// bytes, e.g. {"window_start":"2024-01-01T00:00:00Z","vehicle_type":"Auto"}; "" (a null key)
/// when `key_fields` is empty. `key_names` are the fields' names as JSON string literals (see
/// json_names). An error (in `error`) when the row lacks one of them or does not parse.
[[nodiscard]] std::string record_key(std::string_view row_json,
                                     const std::vector<std::string>& key_names, std::string* error);

/// Names as JSON string literals ("\"name\""), as they appear in row_to_json's output.
[[nodiscard]] std::vector<std::string> json_names(const std::vector<std::string>& names);

/// Kafka's murmur2 (the Java client's Utils.murmur2, seed 0x9747b28c), as a signed 32-bit value.
[[nodiscard]] int32_t kafka_murmur2(std::string_view data);

/// How records are spread over partitions.
enum class kafka_partitioning : uint8_t {
  key,          ///< murmur2(key) like the Java client and librdkafka's murmur2_random; rows
                ///< without a key: by sequence, as round_robin
  round_robin,  ///< sequence modulo the partition count: even spread, no key order
};

/// The partition (0..partitions-1) of the row with sequence `seq` and key `key` ("" = null).
[[nodiscard]] int32_t record_partition(kafka_partitioning how, std::string_view key, uint64_t seq,
                                       int32_t partitions);

/// What the output partitions already hold of one unit: the sequences read back per partition.
class delivered_tail {
 public:
  delivered_tail(std::string pipeline, std::string unit)
      : pipeline_(std::move(pipeline)), unit_(std::move(unit)) {}
  /// Takes one read-back record of `partition` (others' units and pipelines are ignored).
  void observe(int32_t partition, const record_origin& o);
  /// Whether the row `seq` bound for `partition` is there already (read back from that
  /// partition: without gaps, every sequence at or below the highest one read back).
  [[nodiscard]] bool delivered(int32_t partition, uint64_t seq) const;
  /// Records of this unit seen so far (a record read twice counts twice).
  [[nodiscard]] uint64_t seen() const { return seen_; }
  /// The highest sequence read back per partition.
  [[nodiscard]] std::map<int32_t, uint64_t> highest() const;

 private:
  std::string pipeline_;
  std::string unit_;
  std::map<int32_t, std::set<uint64_t>> seqs_;
  uint64_t seen_ = 0;
};

/// Written next to a staged file (`.<name>.publishing`) before its first record is produced:
/// the partition count the rows were spread over and each partition's end offset before the
/// first attempt. Its presence means "an attempt may have delivered part of the file"; a
/// re-delivery reads each partition back from its offset here to the end.
struct publish_marker {
  int32_t partitions = 0;
  std::map<int32_t, int64_t> start_offsets;
  bool operator==(const publish_marker&) const = default;
};
[[nodiscard]] std::string encode_marker(const publish_marker& m);
/// nullopt with `error` set when `text` is not a complete marker.
[[nodiscard]] std::optional<publish_marker> decode_marker(std::string_view text,
                                                          std::string* error);
/// The marker's file name for staged file `name`.
[[nodiscard]] std::string marker_name(std::string_view name);

}  // namespace eddy
