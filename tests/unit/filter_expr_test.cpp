#include "model/filter_expr.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"

namespace eddy {
namespace {

field_config make_field(std::string name, field_type type) {
  field_config f;
  f.name = std::move(name);
  f.column = f.name;
  f.type = type;
  return f;
}

// Index:                 0      1     2         3         4         5
const std::vector<field_config>& fields() {
  static const std::vector<field_config> f = {
      make_field("id", field_type::int64),
      make_field("op", field_type::string),
      make_field("booking_value", field_type::float64),
      make_field("is_paid", field_type::boolean),
      make_field("created_at_ts", field_type::timestamp),
      make_field("ride_distance", field_type::float64),
  };
  return f;
}

row make_row(value id, value op, value booking_value, value is_paid = {}, value created = {},
             value distance = {}) {
  return row{std::move(id),      std::move(op),      std::move(booking_value),
             std::move(is_paid), std::move(created), std::move(distance)};
}

filter_expr compiled(std::string_view text) {
  std::string error;
  auto f = filter_expr::compile(text, fields(), &error);
  EXPECT_TRUE(f.has_value()) << text << ": " << error;
  return f ? *f : filter_expr{};
}

std::string compile_error(std::string_view text) {
  std::string error;
  auto f = filter_expr::compile(text, fields(), &error);
  EXPECT_FALSE(f.has_value()) << text << " compiled but should not";
  return error;
}

bool passes(std::string_view text, const row& r) {
  return compiled(text).matches(r);
}

timestamp iso(std::string_view s) {
  return *parse_iso_timestamp(s);
}

TEST(filter_expr, empty_text_keeps_every_row) {
  const auto f = compiled("   ");
  EXPECT_TRUE(f.always_true());
  EXPECT_TRUE(f.matches(make_row({}, {}, {})));
  EXPECT_TRUE(filter_expr{}.matches(row{}));
}

TEST(filter_expr, keeps_the_text_it_was_compiled_from) {
  EXPECT_EQ(compiled("id > 1").text(), "id > 1");
  EXPECT_FALSE(compiled("id > 1").always_true());
}

TEST(filter_expr, compares_int_fields_with_every_operator) {
  const row r = make_row(int64_t{5}, std::string("c"), 1.0);
  EXPECT_TRUE(passes("id = 5", r));
  EXPECT_TRUE(passes("id == 5", r));
  EXPECT_FALSE(passes("id = 6", r));
  EXPECT_TRUE(passes("id != 6", r));
  EXPECT_TRUE(passes("id <> 6", r));
  EXPECT_FALSE(passes("id <> 5", r));
  EXPECT_TRUE(passes("id < 6", r));
  EXPECT_FALSE(passes("id < 5", r));
  EXPECT_TRUE(passes("id <= 5", r));
  EXPECT_FALSE(passes("id <= 4", r));
  EXPECT_TRUE(passes("id > 4", r));
  EXPECT_FALSE(passes("id > 5", r));
  EXPECT_TRUE(passes("id >= 5", r));
  EXPECT_FALSE(passes("id >= 6", r));
  EXPECT_TRUE(passes("id > -3", r));
  EXPECT_TRUE(passes("5 = id", r));
  EXPECT_TRUE(passes("4 < id", r));
}

TEST(filter_expr, compares_int_and_double_numerically) {
  const row r = make_row(int64_t{5}, std::string("c"), 1000.5);
  EXPECT_TRUE(passes("id < 5.5", r));
  EXPECT_TRUE(passes("id = 5.0", r));
  EXPECT_TRUE(passes("booking_value > 1000", r));
  EXPECT_FALSE(passes("booking_value > 1e3 and booking_value < 1000.25", r));
  EXPECT_TRUE(passes("booking_value >= 1.0005e3", r));
  EXPECT_TRUE(passes("booking_value > id", r));
  EXPECT_TRUE(passes("booking_value != 1000", r));
  EXPECT_TRUE(passes("booking_value <= .5e4", r));
}

TEST(filter_expr, compares_strings_with_every_operator) {
  const row r = make_row(int64_t{1}, std::string("c"), 1.0);
  EXPECT_TRUE(passes("op = \"c\"", r));
  EXPECT_TRUE(passes("op = 'c'", r));
  EXPECT_FALSE(passes("op != 'c'", r));
  EXPECT_TRUE(passes("op <> 'd'", r));
  EXPECT_TRUE(passes("op < 'd'", r));
  EXPECT_TRUE(passes("op <= 'c'", r));
  EXPECT_TRUE(passes("op > 'b'", r));
  EXPECT_TRUE(passes("op >= 'c'", r));
  EXPECT_FALSE(passes("op > 'c'", r));
}

TEST(filter_expr, unescapes_string_literals) {
  EXPECT_TRUE(passes(R"(op = "a\"b")", make_row(int64_t{1}, std::string("a\"b"), 1.0)));
  EXPECT_TRUE(passes(R"(op = 'it\'s')", make_row(int64_t{1}, std::string("it's"), 1.0)));
  EXPECT_TRUE(passes(R"(op = "a\\b\n")", make_row(int64_t{1}, std::string("a\\b\n"), 1.0)));
  EXPECT_TRUE(passes(R"(op = "it's")", make_row(int64_t{1}, std::string("it's"), 1.0)));
}

TEST(filter_expr, compares_bools_with_equality_and_uses_a_bool_field_as_a_condition) {
  const row paid = make_row(int64_t{1}, std::string("c"), 1.0, true);
  const row unpaid = make_row(int64_t{1}, std::string("c"), 1.0, false);
  EXPECT_TRUE(passes("is_paid = true", paid));
  EXPECT_FALSE(passes("is_paid = true", unpaid));
  EXPECT_TRUE(passes("is_paid != TRUE", unpaid));
  EXPECT_TRUE(passes("is_paid", paid));
  EXPECT_FALSE(passes("is_paid", unpaid));
  EXPECT_TRUE(passes("not is_paid", unpaid));
  EXPECT_TRUE(passes("true", unpaid));
  EXPECT_FALSE(passes("false", unpaid));
}

TEST(filter_expr, compares_timestamps_with_iso_literals_and_other_timestamps) {
  const row r = make_row(int64_t{1}, std::string("c"), 1.0, {}, iso("2025-11-07T11:29:32.953131Z"));
  EXPECT_TRUE(passes(R"(created_at_ts >= "2025-11-07T00:00:00Z")", r));
  EXPECT_FALSE(passes(R"(created_at_ts < "2025-11-07T00:00:00Z")", r));
  EXPECT_TRUE(passes(R"(created_at_ts = "2025-11-07T11:29:32.953131Z")", r));
  EXPECT_TRUE(passes(R"(created_at_ts > '2025-11-07T12:00:00+01:00')", r));
  EXPECT_TRUE(passes(R"("2025-11-08" > created_at_ts)", r));
  EXPECT_TRUE(passes(R"(created_at_ts in ("2025-11-07T11:29:32.953131Z", "2020-01-01"))", r));
  EXPECT_TRUE(passes("created_at_ts = created_at_ts", r));
}

TEST(filter_expr, not_binds_tighter_than_and_which_binds_tighter_than_or) {
  const row r = make_row(int64_t{1}, std::string("c"), 1.0);
  // true or (false and false) = true; (true or false) and false would be false.
  EXPECT_TRUE(passes("id = 1 or id = 2 and id = 3", r));
  EXPECT_FALSE(passes("(id = 1 or id = 2) and id = 3", r));
  // (not false) and true; not (false and true) would also be true, so check the other way:
  EXPECT_FALSE(passes("not id = 1 and id = 1", r));   // (not true) and true = false
  EXPECT_TRUE(passes("not (id = 1 and id = 2)", r));  // not (true and false) = true
  EXPECT_TRUE(passes("not id = 2 or id = 3", r));     // (not false) or false = true
  EXPECT_FALSE(passes("not (id = 2 or id = 1)", r));
  EXPECT_TRUE(passes("NOT NOT id = 1", r));
}

TEST(filter_expr, accepts_symbolic_and_case_insensitive_operators) {
  const row r = make_row(int64_t{1}, std::string("c"), 1.0);
  EXPECT_TRUE(passes("id = 1 && op = 'c'", r));
  EXPECT_TRUE(passes("id = 2 || op = 'c'", r));
  EXPECT_TRUE(passes("!(id = 2)", r));
  EXPECT_TRUE(passes("id = 1 AND op = 'c' Or id = 7", r));
  EXPECT_TRUE(passes("((id = 1))", r));
}

TEST(filter_expr, treats_a_comparison_with_a_null_value_as_unknown) {
  const row r = make_row(int64_t{1}, value{}, value{});
  const auto gt = compiled("booking_value > 100");
  EXPECT_EQ(gt.evaluate(r), std::nullopt);
  EXPECT_FALSE(gt.matches(r));
  // not unknown is unknown: the row is still filtered out.
  const auto negated = compiled("not (booking_value > 100)");
  EXPECT_EQ(negated.evaluate(r), std::nullopt);
  EXPECT_FALSE(negated.matches(r));
  EXPECT_FALSE(passes("op != 'd'", r));
  EXPECT_FALSE(passes("booking_value = booking_value", r));
}

TEST(filter_expr, combines_unknown_with_three_valued_logic) {
  const row r = make_row(int64_t{1}, value{}, value{});
  EXPECT_EQ(compiled("op = 'c' and id = 2").evaluate(r), false);  // unknown and false
  EXPECT_EQ(compiled("op = 'c' and id = 1").evaluate(r), std::nullopt);
  EXPECT_EQ(compiled("op = 'c' or id = 1").evaluate(r), true);  // unknown or true
  EXPECT_EQ(compiled("op = 'c' or id = 2").evaluate(r), std::nullopt);
  EXPECT_TRUE(passes("op = 'c' or id = 1", r));
}

TEST(filter_expr, tests_for_null_with_is_null_and_is_not_null) {
  const row missing = make_row(int64_t{1}, value{}, value{});
  const row present = make_row(int64_t{1}, std::string("c"), 2.0);
  EXPECT_TRUE(passes("op is null", missing));
  EXPECT_FALSE(passes("op is null", present));
  EXPECT_TRUE(passes("op IS NOT NULL", present));
  EXPECT_FALSE(passes("op is not null", missing));
  EXPECT_TRUE(passes("booking_value is null or booking_value > 1", missing));
  EXPECT_TRUE(passes("booking_value is null or booking_value > 1", present));
}

TEST(filter_expr, reads_fields_missing_from_a_short_row_as_null) {
  EXPECT_TRUE(passes("ride_distance is null", row{int64_t{1}}));
  EXPECT_FALSE(passes("ride_distance > 1", row{}));
}

TEST(filter_expr, matches_in_and_not_in_lists) {
  const row r = make_row(int64_t{3}, std::string("u"), 2.5);
  EXPECT_TRUE(passes("op in ('c', 'u', 'r')", r));
  EXPECT_FALSE(passes("op in (\"d\")", r));
  EXPECT_TRUE(passes("op not in ('d')", r));
  EXPECT_FALSE(passes("op NOT IN ('u', 'd')", r));
  EXPECT_TRUE(passes("id in (1, 2, 3)", r));
  EXPECT_TRUE(passes("booking_value in (1, 2.5)", r));
  EXPECT_TRUE(passes("not op in ('d')", r));
  const row null_op = make_row(int64_t{3}, value{}, 2.5);
  EXPECT_FALSE(passes("op in ('c')", null_op));
  EXPECT_FALSE(passes("op not in ('c')", null_op));  // unknown either way
}

TEST(filter_expr, is_safe_to_copy_and_share) {
  const auto f = compiled("id > 1");
  filter_expr copy = f;  // NOLINT(performance-unnecessary-copy-initialization)
  filter_expr moved = std::move(copy);
  EXPECT_TRUE(moved.matches(make_row(int64_t{2}, {}, {})));
  EXPECT_TRUE(f.matches(make_row(int64_t{2}, {}, {})));
}

TEST(filter_expr, names_an_unknown_field_with_its_column_and_a_suggestion) {
  EXPECT_EQ(compile_error("bookng_value > 1000"),
            "unknown field 'bookng_value' at column 1; did you mean 'booking_value'?");
  const std::string e = compile_error("id > 1 and zzz = 2");
  EXPECT_NE(e.find("unknown field 'zzz' at column 12"), std::string::npos) << e;
  EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;
  EXPECT_NE(e.find("declared fields: id, op, booking_value"), std::string::npos) << e;
}

TEST(filter_expr, rejects_type_mismatches_with_the_column) {
  std::string e = compile_error("booking_value > 'abc'");
  EXPECT_NE(e.find("type mismatch at column 17"), std::string::npos) << e;
  EXPECT_NE(e.find("double field 'booking_value'"), std::string::npos) << e;
  e = compile_error("op = 1");
  EXPECT_NE(e.find("type mismatch at column 6"), std::string::npos) << e;
  EXPECT_NE(e.find("string field 'op'"), std::string::npos) << e;
  e = compile_error("is_paid = 1");
  EXPECT_NE(e.find("type mismatch"), std::string::npos) << e;
  e = compile_error("id = op");
  EXPECT_NE(e.find("cannot compare int field 'id' with string field 'op'"), std::string::npos) << e;
  e = compile_error("created_at_ts > 5");
  EXPECT_NE(e.find("ISO-8601"), std::string::npos) << e;
  e = compile_error("is_paid < true");
  EXPECT_NE(e.find("operator '<' at column 9 does not apply to bools"), std::string::npos) << e;
  e = compile_error("op in ('c', 2)");
  EXPECT_NE(e.find("type mismatch at column 13"), std::string::npos) << e;
}

TEST(filter_expr, rejects_a_malformed_timestamp_literal) {
  const std::string e = compile_error("created_at_ts > \"yesterday\"");
  EXPECT_NE(e.find("invalid timestamp \"yesterday\" at column 17"), std::string::npos) << e;
}

TEST(filter_expr, rejects_comparisons_with_the_null_literal) {
  const std::string e = compile_error("op = null");
  EXPECT_NE(e.find("at column 6"), std::string::npos) << e;
  EXPECT_NE(e.find("is null"), std::string::npos) << e;
}

TEST(filter_expr, rejects_a_non_bool_operand_used_as_a_condition) {
  const std::string e = compile_error("booking_value and id = 1");
  EXPECT_NE(e.find("expected a comparison at column 15"), std::string::npos) << e;
}

TEST(filter_expr, reports_syntax_errors_with_columns) {
  std::string e = compile_error("id > 1 and");
  EXPECT_NE(e.find("expected a field or a value at column 11"), std::string::npos) << e;
  EXPECT_NE(e.find("end of the expression"), std::string::npos) << e;
  e = compile_error("(id > 1");
  EXPECT_NE(e.find("expected ')' at column 8 to close the '(' at column 1"), std::string::npos)
      << e;
  e = compile_error("id > 1)");
  EXPECT_NE(e.find("unmatched ')' at column 7"), std::string::npos) << e;
  e = compile_error("op = 'abc");
  EXPECT_NE(e.find("unterminated string at column 6"), std::string::npos) << e;
  e = compile_error("id # 1");
  EXPECT_NE(e.find("unexpected character '#' at column 4"), std::string::npos) << e;
  e = compile_error("id > 1 & id < 3");
  EXPECT_NE(e.find("at column 8"), std::string::npos) << e;
  EXPECT_NE(e.find("'&&'"), std::string::npos) << e;
  e = compile_error("op is nul");
  EXPECT_NE(e.find("expected 'null' at column 7"), std::string::npos) << e;
  e = compile_error("op in 'c'");
  EXPECT_NE(e.find("expected '(' at column 7"), std::string::npos) << e;
  e = compile_error("id > 12abc");
  EXPECT_NE(e.find("malformed number '12abc' at column 6"), std::string::npos) << e;
  e = compile_error("id > 99999999999999999999");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  e = compile_error("op = 'a\\q'");
  EXPECT_NE(e.find("unknown escape '\\q' at column 8"), std::string::npos) << e;
  e = compile_error("id >");
  EXPECT_NE(e.find("at column 5"), std::string::npos) << e;
}

TEST(filter_expr, rejects_trailing_garbage) {
  std::string e = compile_error("id > 1 op = 'c'");
  EXPECT_NE(e.find("unexpected 'op' at column 8 after the end of the expression"),
            std::string::npos)
      << e;
  e = compile_error("id > 1 = 2");
  EXPECT_NE(e.find("unexpected '=' at column 8"), std::string::npos) << e;
}

TEST(filter_expr, rejects_absurd_nesting_instead_of_overflowing_the_stack) {
  const std::string deep = std::string(5000, '(') + "id = 1" + std::string(5000, ')');
  EXPECT_NE(compile_error(deep).find("nested too deeply"), std::string::npos);
  std::string chain = "id = 0";
  for (int i = 0; i < 20000; ++i) chain += " or id = 1";
  EXPECT_NE(compile_error(chain).find("expression too long"), std::string::npos);
}

TEST(filter_expr, accepts_back_quoted_field_names) {
  EXPECT_TRUE(passes("`id` = 1", make_row(int64_t{1}, {}, {})));
}

TEST(filter_expr, works_without_an_error_pointer) {
  EXPECT_FALSE(filter_expr::compile("nope", fields(), nullptr).has_value());
}

TEST(closest_name, suggests_only_close_candidates) {
  EXPECT_EQ(closest_name("topik", {"bootstrap_servers", "topic", "format"}), "topic");
  EXPECT_EQ(closest_name("TOPIC", {"topic"}), "topic");
  EXPECT_EQ(closest_name("ab", {"id"}), "");
  EXPECT_EQ(closest_name("completely_different", {"topic"}), "");
}

}  // namespace
}  // namespace eddy
