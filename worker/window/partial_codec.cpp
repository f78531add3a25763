#include "worker/window/partial_codec.hpp"

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "worker/window/byte_codec.hpp"

namespace eddy {

namespace {

using namespace byte_codec;

constexpr uint8_t codec_version = 1;
constexpr uint8_t flag_late_update = 1;
constexpr uint8_t flag_null_accs = 2;
/// The fewest bytes an entry takes: start, end, key row, rows, flags, accumulator count.
constexpr size_t min_entry_bytes = 6;

bool fail(std::string* error, std::string msg) {
  if (error != nullptr) *error = "partial batch: " + std::move(msg);
  return false;
}

bool fits_int32(int64_t x) {
  return x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max();
}

}  // namespace

std::string encode_partial_batch(const partial_batch& batch) {
  std::string out;
  put_u8(out, codec_version);
  put_svarint(out, batch.partition);
  put_svarint(out, batch.watermark);
  put_svarint(out, batch.processing_time_us);
  put_svarint(out, batch.last_record_us);
  put_varint(out, batch.entries.size());
  for (const partial_batch::entry& e : batch.entries) {
    put_svarint(out, e.window.start);
    put_svarint(out, e.window.end);
    put_row(out, e.key);
    put_svarint(out, e.rows);
    bool null_accs = false;
    for (const auto& a : e.accs) null_accs = null_accs || a == nullptr;
    put_u8(out, static_cast<uint8_t>((e.late_update ? flag_late_update : 0) |
                                     (null_accs ? flag_null_accs : 0)));
    put_varint(out, e.accs.size());
    for (const auto& a : e.accs) {
      if (null_accs) put_u8(out, a ? 1 : 0);
      if (a) a->serialize(out);
    }
  }
  return out;
}

bool decode_partial_batch(std::string_view bytes, const aggregation_plan& plan, partial_batch* out,
                          std::string* error) {
  byte_reader r(bytes);
  uint8_t version = 0;
  if (!r.u8(&version)) return fail(error, "empty");
  if (version != codec_version) return fail(error, "unknown version " + std::to_string(version));
  partial_batch b;
  int64_t partition = 0;
  uint64_t n = 0;
  if (!r.svarint(&partition) || !r.svarint(&b.watermark) || !r.svarint(&b.processing_time_us) ||
      !r.svarint(&b.last_record_us) || !r.count(&n, min_entry_bytes)) {
    return fail(error, "malformed or truncated header");
  }
  if (!fits_int32(partition)) return fail(error, "partition " + std::to_string(partition));
  b.partition = static_cast<int32_t>(partition);
  b.entries.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    const auto at = [&] {
      return "entry " + std::to_string(i) + " of " + std::to_string(n) + ": ";
    };
    partial_batch::entry& e = b.entries.emplace_back();
    uint8_t flags = 0;
    uint64_t n_accs = 0;
    if (!r.svarint(&e.window.start) || !r.svarint(&e.window.end) || !r.row_of(&e.key) ||
        !r.svarint(&e.rows) || !r.u8(&flags) || !r.varint(&n_accs)) {
      return fail(error, at() + "malformed or truncated");
    }
    if (flags > (flag_late_update | flag_null_accs)) {
      return fail(error, at() + "unknown flags " + std::to_string(flags));
    }
    if (e.window.start >= e.window.end) {
      return fail(error, at() + "empty window [" + std::to_string(e.window.start) + ", " +
                             std::to_string(e.window.end) + ")");
    }
    if (e.key.size() != plan.group_by.size()) {
      return fail(error, at() + "group key of " + std::to_string(e.key.size()) +
                             " values, the plan groups by " + std::to_string(plan.group_by.size()));
    }
    if (n_accs != plan.aggs.size()) {
      return fail(error, at() + std::to_string(n_accs) + " aggregates, the plan has " +
                             std::to_string(plan.aggs.size()));
    }
    e.late_update = (flags & flag_late_update) != 0;
    e.accs.reserve(plan.aggs.size());
    for (const agg_spec& spec : plan.aggs) {
      auto& a = e.accs.emplace_back(make_accumulator(spec));
      uint8_t present = 1;
      if ((flags & flag_null_accs) != 0 && (!r.u8(&present) || present > 1)) {
        return fail(error, at() + "malformed or truncated aggregate '" + spec.alias + "'");
      }
      if (present == 1 && !a->deserialize(r.rest())) {
        return fail(error, at() + "malformed or truncated aggregate '" + spec.alias + "' (" +
                               std::string(to_string(spec.fn)) + ")");
      }
    }
  }
  if (!r.done()) {
    return fail(error, std::to_string(r.remaining()) + " bytes after the last entry");
  }
  *out = std::move(b);
  return true;
}

int32_t partial_batch_partition(const partial_batch& batch) {
  return batch.partition;
}

uint64_t partial_batch_entries(const partial_batch& batch) {
  return batch.entries.size();
}

std::shared_ptr<partial_batch> decode_partial_batch_of(std::string_view bytes,
                                                       const aggregation_plan& plan,
                                                       int32_t partition, std::string* error) {
  auto decoded = std::make_shared<partial_batch>();
  if (!decode_partial_batch(bytes, plan, decoded.get(), error)) return nullptr;
  if (decoded->partition != partition) {
    if (error != nullptr) {
      *error = "partial batch of partition " + std::to_string(decoded->partition) +
               " sent as partition " + std::to_string(partition);
    }
    return nullptr;
  }
  return decoded;
}

}  // namespace eddy
