// aggregates.hpp — aggregate functions as mergeable accumulators.
//
// An accumulator holds the running state of one aggregate (count, sum, avg, min, max,
// count_distinct, approx_count_distinct, percentile, first, last) for one (window, group key).
// Source tasks fill accumulators with `add` (partials), aggregator shards combine partials with
// `merge`; `result` reads the current value. Results must not depend on how the input was split
// into partials or in which order partials were merged (exactly, except the sketches, which stay
// within their documented error).
//
// Changelog mode retracts contributions: `add(v, t, -1)`. Only accumulators whose
// `retractable()` is true accept it (count, sum, avg, min, max, count_distinct); the pipeline file
// is rejected when changelog mode asks for another.
//
// `serialize`/`deserialize` give a compact, versioned byte form for checkpoints.
// Not thread-safe; plain values, owned by one actor at a time. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "model/row.hpp"

namespace eddy {

enum class agg_fn : uint8_t {
  count,                  ///< rows (or non-null values when a field is given); int
  sum,                    ///< int for int input, else double; null when no non-null input
  avg,                    ///< double; null when no non-null input
  min,                    ///< same type as input; null when empty
  max,                    ///< same type as input; null when empty
  count_distinct,         ///< exact number of distinct non-null values; int
  approx_count_distinct,  ///< HyperLogLog estimate; int
  percentile,             ///< quantile q of numeric input (sketch); double
  first,                  ///< value with the smallest event time (ties: smallest value)
  last,                   ///< value with the largest event time (ties: largest value)
};

/// Parses "count", "sum", "avg", "min", "max", "count_distinct", "approx_count_distinct",
/// "percentile", "p50", "p90", "p95", "p99", "first", "last". For "pNN", *q is set.
[[nodiscard]] std::optional<agg_fn> parse_agg_fn(std::string_view name, double* q);
[[nodiscard]] std::string_view to_string(agg_fn f);

/// One aggregate of a pipeline: `alias = fn(field)`.
struct agg_spec {
  std::string alias;
  agg_fn fn = agg_fn::count;
  int field = -1;  ///< index into the decoded row; -1 = count(*) (count only)
  field_type input_type = field_type::int64;  ///< type of that field
  double q = 0.5;                             ///< percentile only, in (0, 1)
};

/// The type `result()` returns for `spec`.
[[nodiscard]] field_type result_type(const agg_spec& spec);

class accumulator {
 public:
  virtual ~accumulator() = default;
  /// Adds (sign +1) or retracts (sign -1) one input value observed at `event_time_us`.
  /// Null values count only for count(*).
  virtual void add(const value& v, int64_t event_time_us, int sign) = 0;
  /// Folds `other` (same spec) into this one.
  virtual void merge(const accumulator& other) = 0;
  [[nodiscard]] virtual value result() const = 0;
  /// True when nothing (net) has been added: a retracted-to-empty group is not emitted.
  [[nodiscard]] virtual bool empty() const = 0;
  [[nodiscard]] virtual bool retractable() const = 0;
  [[nodiscard]] virtual std::unique_ptr<accumulator> clone() const = 0;
  /// Appends the state to `out`.
  virtual void serialize(std::string& out) const = 0;
  /// Replaces the state from `in` (advanced past what was read); false when malformed.
  [[nodiscard]] virtual bool deserialize(std::string_view& in) = 0;
  /// Approximate heap bytes held (for memory accounting).
  [[nodiscard]] virtual size_t memory_bytes() const = 0;
};

/// A fresh, empty accumulator for `spec`.
[[nodiscard]] std::unique_ptr<accumulator> make_accumulator(const agg_spec& spec);

/// Documented error bounds of the sketches, for tests and docs.
inline constexpr double hll_relative_error = 0.02;     ///< approx_count_distinct, ~2 sigma
inline constexpr double percentile_rank_error = 0.01;  ///< |rank(result) - q| <= this

}  // namespace eddy
