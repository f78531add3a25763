// row.hpp — the typed values and rows that flow from the decoder to filters and sinks.
//
// A row is a vector of values, one per field declared in the pipeline file, in declaration
// order. A value is null (std::monostate) or one of the five field types. Plain data: no
// synchronisation, copy or move freely. No CAF or librdkafka here.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace eddy {

/// An instant, as microseconds since the Unix epoch (UTC).
struct timestamp {
  int64_t micros = 0;
  auto operator<=>(const timestamp&) const = default;
};

/// The types a declared field may have (`type = "..."` in the pipeline file).
enum class field_type : uint8_t { string, int64, float64, boolean, timestamp };

/// Name used in pipeline files and messages: "string", "int", "double", "bool", "timestamp".
[[nodiscard]] std::string_view to_string(field_type t);

/// A field's value; std::monostate is SQL NULL.
using value = std::variant<std::monostate, std::string, int64_t, double, bool, timestamp>;

/// One row of declared fields, in declaration order.
using row = std::vector<value>;

[[nodiscard]] inline bool is_null(const value& v) {
  return std::holds_alternative<std::monostate>(v);
}

/// One representation per double value for hashing, equality and ordering: every NaN becomes
/// the quiet NaN, -0.0 becomes 0.0.
[[nodiscard]] double canonical_double(double d);

/// Debezium change operations.
enum class cdc_op : char { create = 'c', read = 'r', update = 'u', del = 'd' };

}  // namespace eddy
