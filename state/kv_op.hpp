// kv_op.hpp — one write of a key-value batch (kv_store::write_batch), in a header of its own so
// that pure logic (the aggregators' checkpoint()) can produce writes without depending on
// RocksDB or the store.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace eddy {

/// A put (`value` set), a delete (no value), or a range delete (`range_end` non-empty: every key
/// k with key <= k < range_end is deleted; `value` unused). Within one batch, range deletes
/// apply first, then puts and deletes, in key order (the order of the batch for one key).
struct kv_op {
  std::string key;
  std::optional<std::string> value;
  std::string range_end;

  kv_op(std::string k, std::optional<std::string> v) : key(std::move(k)), value(std::move(v)) {}

  /// Deletes every key that starts with `prefix` (a non-empty prefix that is not all 0xff).
  static kv_op delete_prefix(std::string prefix) {
    std::string end = prefix;
    while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
    if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
    kv_op op(std::move(prefix), std::nullopt);
    op.range_end = std::move(end);
    return op;
  }
  [[nodiscard]] bool is_range() const { return !range_end.empty(); }
};

}  // namespace eddy
