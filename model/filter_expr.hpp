// filter_expr.hpp — the `[query] filter` language, compiled once and evaluated per row.
//
// Grammar (keywords case-insensitive):
//   expr      := or_expr
//   or_expr   := and_expr (("or" | "||") and_expr)*
//   and_expr  := not_expr (("and" | "&&") not_expr)*
//   not_expr  := ("not" | "!") not_expr | predicate
//   predicate := "(" expr ")"
//              | operand (cmp_op operand)?                 -- a bare operand must be bool
//              | operand "is" ["not"] "null"
//              | operand ["not"] "in" "(" literal ("," literal)* ")"
//   cmp_op    := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//   operand   := field | literal
//   field     := identifier [A-Za-z_][A-Za-z0-9_]* | `back-quoted name`
//   literal   := integer | decimal (1.5, 1e3, -2) | "string" | 'string' | true | false
// Precedence: not > and > or. Strings take backslash escapes \\ \" \' \n \t \r.
//
// Types are checked at compile time: numbers compare with int/double fields (mixed int/double
// compares numerically), strings with string fields, bools with bool fields (= and != only),
// timestamps with timestamp fields, and a string literal compared with a timestamp field is
// parsed as ISO-8601 ("2025-11-07T00:00:00Z"). Two fields compare when their types do.
// `null` is only valid in `is [not] null`: a comparison with the null literal is rejected,
// since SQL makes it unknown for every row.
//
// NULL semantics are SQL's three-valued logic: a comparison or `in` with a null operand is
// unknown; `not unknown` is unknown; `false and unknown` is false; `true or unknown` is true.
// A row passes only when the whole expression is true: unknown filters the row out, so
// `not (x > 1)` drops rows where x is null, exactly like Spark's `filter`.
//
// Errors name the 1-based column of the problem in the expression text, e.g.
//   "unknown field 'bookng_value' at column 1; did you mean 'booking_value'?".
//
// A compiled filter_expr is immutable: copies share the program, and it is safe to evaluate
// from many threads at once. Evaluation does no parsing and no name lookups.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/row.hpp"

namespace eddy {

struct field_config;

class filter_expr {
 public:
  /// A filter that keeps every row (the same as compiling "").
  filter_expr() = default;

  /// Compiles `text` against the declared fields (a field's index in `fields` is its index in
  /// the rows later given to `matches`). Empty or all-blank text = always true. On failure
  /// returns nullopt and, when `error` is not null, sets it to a message naming the column.
  [[nodiscard]] static std::optional<filter_expr> compile(std::string_view text,
                                                          const std::vector<field_config>& fields,
                                                          std::string* error);

  /// True when the row passes: the expression is true (not false, not unknown). A row shorter
  /// than the declared fields reads the missing ones as null.
  [[nodiscard]] bool matches(const row& r) const;

  /// The three-valued result: true, false, or nullopt for SQL's unknown.
  [[nodiscard]] std::optional<bool> evaluate(const row& r) const;

  /// True when the filter keeps every row without looking at it (empty text).
  [[nodiscard]] bool always_true() const { return program_ == nullptr; }

  /// The text this filter was compiled from ("" for always true).
  [[nodiscard]] std::string_view text() const;

 private:
  struct program;  // the compiled node tree and source text; defined in filter_expr.cpp
  std::shared_ptr<const program> program_;
};

/// The candidate closest to `word` (case-insensitive Levenshtein distance, at most
/// `max_distance`), or "" when none is that close. Used for "did you mean ...?" hints.
[[nodiscard]] std::string closest_name(std::string_view word,
                                       const std::vector<std::string_view>& candidates,
                                       std::size_t max_distance = 2);

}  // namespace eddy
