#include <gtest/gtest.h>

#include <limits>
#include <sstream>

#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

constexpr int64_t sample_micros = 1762514972953131;  // 2025-11-07T11:29:32.953131Z

const output_schema rides_schema{{"id", "op", "created_at_ts"},
                                 {field_type::int64, field_type::string, field_type::timestamp}};

sink_config console_config(bool truncate, int num_rows = 20) {
  sink_config cfg;
  cfg.kind = sink_kind::console;
  cfg.truncate = truncate;
  cfg.num_rows = num_rows;
  return cfg;
}

std::string show(const sink_config& cfg, int64_t batch_id, const output_schema& schema,
                 const std::vector<row>& rows, time_formatter fmt = {}) {
  std::ostringstream out;
  auto s = make_console_sink(cfg, out, std::move(fmt));
  EXPECT_EQ(s->write_batch(batch_id, schema, rows), "");
  return out.str();
}

TEST(console_sink, prints_a_batch_like_spark_with_right_aligned_truncated_cells) {
  const std::vector<row> rows = {{int64_t{75204}, std::string("r"), timestamp{sample_micros}}};
  EXPECT_EQ(show(console_config(true), 3, rides_schema, rows),
            "-------------------------------------------\n"
            "Batch: 3\n"
            "-------------------------------------------\n"
            "+-----+---+--------------------+\n"
            "|   id| op|       created_at_ts|\n"
            "+-----+---+--------------------+\n"
            "|75204|  r|2025-11-07 11:29:...|\n"
            "+-----+---+--------------------+\n"
            "\n");
}

TEST(console_sink, left_aligns_full_values_when_truncate_is_off) {
  const std::vector<row> rows = {{int64_t{75204}, std::string("r"), timestamp{sample_micros}},
                                 {int64_t{7}, std::string("update"), timestamp{0}}};
  EXPECT_EQ(show(console_config(false), 0, rides_schema, rows),
            "-------------------------------------------\n"
            "Batch: 0\n"
            "-------------------------------------------\n"
            "+-----+------+--------------------------+\n"
            "|id   |op    |created_at_ts             |\n"
            "+-----+------+--------------------------+\n"
            "|75204|r     |2025-11-07 11:29:32.953131|\n"
            "|7    |update|1970-01-01 00:00:00       |\n"
            "+-----+------+--------------------------+\n"
            "\n");
}

TEST(console_sink, shows_at_most_num_rows_and_says_so) {
  const output_schema schema{{"n"}, {field_type::int64}};
  const std::vector<row> rows = {{int64_t{1}}, {int64_t{2}}, {int64_t{3}}};
  EXPECT_EQ(show(console_config(true, 2), 1, schema, rows),
            "-------------------------------------------\n"
            "Batch: 1\n"
            "-------------------------------------------\n"
            "+---+\n"
            "|  n|\n"
            "+---+\n"
            "|  1|\n"
            "|  2|\n"
            "+---+\n"
            "only showing top 2 rows\n"
            "\n");
  const std::string one = show(console_config(true, 1), 1, schema, rows);
  EXPECT_NE(one.find("|  1|\n+---+\nonly showing top 1 row\n"), std::string::npos) << one;
  const std::string all = show(console_config(true, 3), 1, schema, rows);
  EXPECT_EQ(all.find("only showing"), std::string::npos) << all;
}

TEST(console_sink, prints_nulls_booleans_and_doubles_like_spark) {
  const output_schema schema{
      {"name", "fare", "ok", "at"},
      {field_type::string, field_type::float64, field_type::boolean, field_type::timestamp}};
  const std::vector<row> rows = {
      {std::monostate{}, 1138.0, true, std::monostate{}},
      {std::string("b"), 45.75, false, timestamp{-1}},
      {std::string("c"), std::monostate{}, std::monostate{}, timestamp{sample_micros}},
  };
  EXPECT_EQ(show(console_config(false), 5, schema, rows),
            "-------------------------------------------\n"
            "Batch: 5\n"
            "-------------------------------------------\n"
            "+----+------+-----+--------------------------+\n"
            "|name|fare  |ok   |at                        |\n"
            "+----+------+-----+--------------------------+\n"
            "|null|1138.0|true |null                      |\n"
            "|b   |45.75 |false|1969-12-31 23:59:59.999999|\n"
            "|c   |null  |null |2025-11-07 11:29:32.953131|\n"
            "+----+------+-----+--------------------------+\n"
            "\n");
}

TEST(console_sink, prints_large_small_and_special_doubles_as_java_does) {
  const output_schema schema{{"x"}, {field_type::float64}};
  const std::vector<row> rows = {{1e10},
                                 {-2.5e-5},
                                 {0.0},
                                 {std::numeric_limits<double>::quiet_NaN()},
                                 {-std::numeric_limits<double>::infinity()},
                                 {1234567.0}};
  EXPECT_EQ(show(console_config(false), 0, schema, rows),
            "-------------------------------------------\n"
            "Batch: 0\n"
            "-------------------------------------------\n"
            "+---------+\n"
            "|x        |\n"
            "+---------+\n"
            "|1.0E10   |\n"
            "|-2.5E-5  |\n"
            "|0.0      |\n"
            "|NaN      |\n"
            "|-Infinity|\n"
            "|1234567.0|\n"
            "+---------+\n"
            "\n");
}

TEST(console_sink, measures_and_truncates_unicode_by_code_points) {
  const output_schema schema{{"city"}, {field_type::string}};
  std::string e17;
  for (int i = 0; i < 17; ++i) e17 += "\xC3\xA9";                    // é
  const std::vector<row> rows = {{std::string("S\xC3\xA3o Paulo")},  // São Paulo, 9 code points
                                 {std::string("\xE6\x9D\xB1\xE4\xBA\xAC")},    // 東京, 2
                                 {e17 + "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"}};  // 21 × é
  EXPECT_EQ(show(console_config(true), 2, schema, rows),
            "-------------------------------------------\n"
            "Batch: 2\n"
            "-------------------------------------------\n"
            "+--------------------+\n"
            "|                city|\n"
            "+--------------------+\n"
            "|           S\xC3\xA3o Paulo|\n"
            "|                  \xE6\x9D\xB1\xE4\xBA\xAC|\n"
            "|" +
                e17 +
                "...|\n"
                "+--------------------+\n"
                "\n");
}

TEST(console_sink, keeps_values_of_exactly_twenty_characters_whole) {
  const output_schema schema{{"s"}, {field_type::string}};
  const std::vector<row> rows = {{std::string(20, 'x')}, {std::string(21, 'y')}};
  const std::string text = show(console_config(true), 0, schema, rows);
  EXPECT_NE(text.find("|" + std::string(20, 'x') + "|"), std::string::npos) << text;
  EXPECT_NE(text.find("|" + std::string(17, 'y') + "...|"), std::string::npos) << text;
}

TEST(console_sink, escapes_line_breaks_so_the_table_stays_intact) {
  const output_schema schema{{"s"}, {field_type::string}};
  const std::vector<row> rows = {{std::string("a\nb\tc")}};
  const std::string text = show(console_config(true), 0, schema, rows);
  EXPECT_NE(text.find("|a\\nb\\tc|\n"), std::string::npos) << text;
}

TEST(console_sink, prints_the_header_and_an_empty_table_for_an_empty_batch) {
  EXPECT_EQ(show(console_config(true), 9, rides_schema, {}),
            "-------------------------------------------\n"
            "Batch: 9\n"
            "-------------------------------------------\n"
            "+---+---+-------------+\n"
            "| id| op|created_at_ts|\n"
            "+---+---+-------------+\n"
            "+---+---+-------------+\n"
            "\n");
}

TEST(console_sink, formats_timestamps_in_the_configured_zone) {
  const std::vector<row> rows = {{int64_t{1}, std::string("c"), timestamp{sample_micros}}};
  auto kolkata = time_formatter::for_zone("Asia/Kolkata");
  ASSERT_TRUE(kolkata.has_value());
  const std::string text = show(console_config(false), 0, rides_schema, rows, *kolkata);
  EXPECT_NE(text.find("|2025-11-07 16:59:32.953131|"), std::string::npos) << text;
}

TEST(console_sink, reports_a_failed_stream_instead_of_throwing) {
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  auto s = make_console_sink(console_config(true), out, time_formatter{});
  EXPECT_NE(s->write_batch(0, rides_schema, {}), "");
}

}  // namespace
}  // namespace eddy
