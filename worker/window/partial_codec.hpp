// partial_codec.hpp — partial_batch as bytes, for partials that cross processes (a source task
// on one worker, its aggregator shard on another).
//
// The encoding reuses the state encodings: rows and scalars in byte_codec's forms (as the
// windowing checkpoint keys and values), each accumulator in its own serialize() form (as in a
// checkpointed group value). Layout:
//   [version u8 = 1][svarint partition][svarint watermark][svarint processing_time_us]
//   [svarint last_record_us][varint n] then n entries of
//   [svarint window start][svarint window end][row key][svarint rows]
//   [u8 flags: bit 0 late_update, bit 1 some accumulator is null][varint accumulator count]
//   and per accumulator (with flag bit 1: [u8 present] first) its serialize() bytes.
// The bytes carry no plan: the receiver decodes with its own, which must be the sender's (the
// accumulator count, the group key width and each accumulator's function are checked).
//
// decode_partial_batch never trusts its input: every read is bounds-checked, counts are checked
// against the bytes left before anything is allocated, and malformed, truncated or trailing
// bytes give false with a message. A null accumulator (take_partials never makes one) decodes
// as a fresh, empty accumulator of the plan's function (merging it changes nothing).
// Pure functions, thread-safe. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "worker/window/windowing.hpp"

namespace eddy {

/// The bytes of `batch` (its entries' accumulators are read, not moved).
[[nodiscard]] std::string encode_partial_batch(const partial_batch& batch);

/// Parses bytes of encode_partial_batch into `*out` (replaced on success, untouched on failure),
/// with the accumulators of `plan`. false with `*error` (when not null) on malformed input or
/// input that does not fit `plan`.
[[nodiscard]] bool decode_partial_batch(std::string_view bytes, const aggregation_plan& plan,
                                        partial_batch* out, std::string* error);

// What actors/messages.hpp's partials_msg needs of a batch it holds by pointer (it declares
// these too, without including this header).

/// `batch.partition`.
[[nodiscard]] int32_t partial_batch_partition(const partial_batch& batch);
/// `batch.entries.size()`.
[[nodiscard]] uint64_t partial_batch_entries(const partial_batch& batch);
/// decode_partial_batch into a new batch, which must be of `partition`: nullptr with `*error`
/// (when not null) on malformed bytes, bytes that do not fit `plan`, or another partition.
[[nodiscard]] std::shared_ptr<partial_batch> decode_partial_batch_of(std::string_view bytes,
                                                                     const aggregation_plan& plan,
                                                                     int32_t partition,
                                                                     std::string* error);

}  // namespace eddy
