// kv_state_reader.hpp — the node-local RocksDB (kv_store) as the aggregators' backing store.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "state/kv_store.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {

/// Reads `*db` at every call (the pointer may be set after construction). Thread-safe as
/// kv_store is.
class kv_state_reader final : public state_reader {
 public:
  explicit kv_state_reader(const std::shared_ptr<kv_store>* db) : db_(db) {}

  std::optional<std::string> get(std::string_view key, std::string* error) const override {
    store_status s;
    auto v = (*db_)->get(key, &s);
    if (!s.ok()) *error = std::move(s.error);
    return v;
  }

  bool scan(std::string_view prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& f,
            std::string* error) const override {
    return scan_from(prefix, {}, f, error);
  }

  bool scan_from(std::string_view prefix, std::string_view from,
                 const std::function<bool(std::string_view key, std::string_view value)>& f,
                 std::string* error) const override {
    store_status s = (*db_)->scan_each(prefix, f, from);
    if (s.ok()) return true;
    *error = std::move(s.error);
    return false;
  }

 private:
  const std::shared_ptr<kv_store>* db_;
};

}  // namespace eddy
