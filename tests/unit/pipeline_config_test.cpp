#include "model/pipeline_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "model/filter_expr.hpp"

namespace eddy {
namespace {

std::string example_path(std::string_view file = "ncr_ride_bookings.toml") {
  return (std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "deploy" / "pipelines" /
          file)
      .lexically_normal()
      .string();
}

/// A minimal valid pipeline; each line number is fixed for the tests below.
constexpr std::string_view minimal =
    "[pipeline]\n"           // 1
    "name = \"t\"\n"         // 2
    "\n"                     // 3
    "[source]\n"             // 4
    "topic = \"orders\"\n"   // 5
    "\n"                     // 6
    "[[fields]]\n"           // 7
    "name = \"id\"\n"        // 8
    "type = \"int\"\n"       // 9
    "\n"                     // 10
    "[[sinks]]\n"            // 11
    "type = \"console\"\n";  // 12

/// A minimal aggregating pipeline; each line number is fixed for the tests below.
constexpr std::string_view windowed =
    "[source]\n"              // 1
    "topic = \"orders\"\n"    // 2
    "[[fields]]\n"            // 3
    "name = \"id\"\n"         // 4
    "type = \"int\"\n"        // 5
    "[[fields]]\n"            // 6
    "name = \"ts\"\n"         // 7
    "type = \"timestamp\"\n"  // 8
    "[[fields]]\n"            // 9
    "name = \"kind\"\n"       // 10
    "[[fields]]\n"            // 11
    "name = \"amount\"\n"     // 12
    "type = \"double\"\n"     // 13
    "[[sinks]]\n"             // 14
    "type = \"console\"\n"    // 15
    "[[aggregates]]\n"        // 16
    "alias = \"n\"\n"         // 17
    "function = \"count\"\n"  // 18
    "[window]\n"              // 19
    "type = \"tumbling\"\n"   // 20
    "size = \"1m\"\n"         // 21
    "time_field = \"ts\"\n";  // 22

/// `base` with `extra` inserted after line `after_line` (1-based).
std::string inserted(std::string_view base, std::size_t after_line, std::string_view extra) {
  std::string text(base);
  std::size_t pos = 0;
  for (std::size_t i = 0; i < after_line; ++i) pos = text.find('\n', pos) + 1;
  text.insert(pos, std::string(extra) + "\n");
  return text;
}

/// `base` with the first `from` replaced by `to`.
std::string replaced_in(std::string_view base, std::string_view from, std::string_view to) {
  std::string text(base);
  text.replace(text.find(from), from.size(), to);
  return text;
}

/// `minimal` with `extra` inserted after line `after_line` (1-based).
std::string with_lines(std::size_t after_line, std::string_view extra) {
  return inserted(minimal, after_line, extra);
}

/// `minimal` with the first `from` replaced by `to`.
std::string replaced(std::string_view from, std::string_view to) {
  return replaced_in(minimal, from, to);
}

/// `windowed` with `extra` inserted after line `after_line` (1-based).
std::string windowed_with(std::size_t after_line, std::string_view extra) {
  return inserted(windowed, after_line, extra);
}

/// `windowed` with the first `from` replaced by `to`.
std::string windowed_replaced(std::string_view from, std::string_view to) {
  return replaced_in(windowed, from, to);
}

pipeline_config parsed(std::string_view text) {
  auto r = parse_pipeline_config(text, "t.toml");
  EXPECT_TRUE(r.config.has_value()) << r.error;
  EXPECT_EQ(r.error, "");
  return r.config ? *r.config : pipeline_config{};
}

std::string parse_error(std::string_view text) {
  auto r = parse_pipeline_config(text, "t.toml");
  EXPECT_FALSE(r.config.has_value()) << "parsed but should not:\n" << text;
  return r.error;
}

TEST(pipeline_config, parses_the_example_pipeline_file) {
  const auto r = load_pipeline_config(example_path());
  ASSERT_TRUE(r.config.has_value()) << r.error;
  const pipeline_config& c = *r.config;
  EXPECT_EQ(c.name, "ncr_ride_bookings");
  EXPECT_EQ(c.file_name, example_path());
  EXPECT_EQ(c.timezone, "UTC");
  EXPECT_EQ(c.trigger_interval_ms, 1000);
  EXPECT_EQ(c.source.bootstrap_servers, "127.0.0.1:9092");
  EXPECT_EQ(c.source.topic, "business_postgres.public.business_ncr_ride_bookings");
  EXPECT_EQ(c.source.starting_offsets, "earliest");
  EXPECT_EQ(c.source.format, message_format::auto_detect);

  ASSERT_GE(c.fields.size(), 11u);
  const auto& id = c.fields[static_cast<std::size_t>(c.field_index("id"))];
  EXPECT_EQ(id.type, field_type::int64);
  EXPECT_TRUE(id.required);
  EXPECT_EQ(c.fields[static_cast<std::size_t>(c.field_index("op"))].column, "$op");
  const auto& created = c.fields[static_cast<std::size_t>(c.field_index("created_at_ts"))];
  EXPECT_EQ(created.column, "created_at");
  EXPECT_EQ(created.type, field_type::timestamp);
  EXPECT_EQ(created.unit, time_unit::micros);
  const auto& value = c.fields[static_cast<std::size_t>(c.field_index("booking_value"))];
  EXPECT_EQ(value.column, "ncr_ride_bookings.csv/booking+value");
  EXPECT_EQ(value.type, field_type::float64);
  for (const char* name : {"updated_at_ts", "ride_distance", "booking_status", "vehicle_type",
                           "pickup_location", "customer_id", "source_ts"}) {
    EXPECT_GE(c.field_index(name), 0) << name;
  }
  EXPECT_EQ(c.fields[static_cast<std::size_t>(c.field_index("source_ts"))].column, "$source_ts");

  std::string error;
  const auto filter = filter_expr::compile(c.filter, c.fields, &error);
  ASSERT_TRUE(filter.has_value()) << error;
  EXPECT_FALSE(filter->always_true());
  row change(c.fields.size());
  change[static_cast<std::size_t>(c.field_index("op"))] = std::string("c");
  EXPECT_TRUE(filter->matches(change));
  change[static_cast<std::size_t>(c.field_index("op"))] = std::string("d");
  EXPECT_FALSE(filter->matches(change));

  for (const auto& name : c.select) EXPECT_GE(c.field_index(name), 0) << name;
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].kind, sink_kind::console);
  EXPECT_TRUE(c.sinks[0].truncate);
  EXPECT_EQ(c.sinks[0].num_rows, 20);
  EXPECT_EQ(c.dead_letter.path, "dead-letter/ncr_ride_bookings");
}

TEST(pipeline_config, fills_in_defaults) {
  const auto c = parsed(minimal);
  EXPECT_EQ(c.name, "t");
  EXPECT_EQ(c.file_name, "t.toml");
  EXPECT_EQ(c.timezone, "UTC");
  EXPECT_EQ(c.trigger_interval_ms, 1000);
  EXPECT_EQ(c.max_rows_per_batch, 100000);
  EXPECT_EQ(c.source.bootstrap_servers, "");
  EXPECT_EQ(c.source.starting_offsets, "earliest");
  EXPECT_EQ(c.source.max_records_per_poll, 10000);
  EXPECT_EQ(c.source.max_in_flight_mb, 64);
  EXPECT_EQ(c.source.group_id, "eddy-t");
  EXPECT_EQ(c.source.format, message_format::auto_detect);
  ASSERT_EQ(c.fields.size(), 1u);
  EXPECT_EQ(c.fields[0].column, "id");
  EXPECT_EQ(c.fields[0].unit, time_unit::auto_detect);
  EXPECT_FALSE(c.fields[0].scale.has_value());
  EXPECT_FALSE(c.fields[0].required);
  EXPECT_TRUE(c.fields[0].trim);
  EXPECT_TRUE(c.fields[0].strip_bytes_wrapper);
  EXPECT_EQ(c.fields[0].line, 7);
  EXPECT_EQ(c.filter, "");
  EXPECT_TRUE(c.select.empty());
  EXPECT_EQ(c.output_field_indices(), std::vector<int>{0});
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].kind, sink_kind::console);
  EXPECT_TRUE(c.sinks[0].truncate);
  EXPECT_EQ(c.sinks[0].num_rows, 20);
  EXPECT_EQ(c.sinks[0].line, 11);
  EXPECT_EQ(c.dead_letter.path, "dead-letter/t");
  EXPECT_EQ(c.dead_letter.topic, "");
}

TEST(pipeline_config, defaults_the_name_when_there_is_no_pipeline_table) {
  const auto c = parsed(std::string(minimal.substr(minimal.find("[source]"))));
  EXPECT_EQ(c.name, "pipeline");
  EXPECT_EQ(c.source.group_id, "eddy-pipeline");
  EXPECT_EQ(c.dead_letter.path, "dead-letter/pipeline");
}

TEST(pipeline_config, defaults_a_field_type_to_string) {
  const auto c = parsed(with_lines(12, "[[fields]]\nname = \"note\""));
  ASSERT_EQ(c.fields.size(), 2u);
  EXPECT_EQ(c.fields[1].type, field_type::string);
  EXPECT_EQ(c.fields[1].column, "note");
}

TEST(pipeline_config, reads_every_key) {
  const auto c = parsed(R"([pipeline]
name = "full"
timezone = "Asia/Kolkata"
trigger_interval_ms = 250
max_rows_per_batch = 500
[source]
bootstrap_servers = "b:1"
topic = "t1"
starting_offsets = "latest"
max_records_per_poll = 5
group_id = "g"
format = "envelope"
[[fields]]
name = "ts"
column = "$timestamp"
type = "timestamp"
unit = "millis"
required = true
[[fields]]
name = "amount"
column = "weird col/x+y"
type = "double"
scale = 2
trim = false
strip_bytes_wrapper = false
[[fields]]
name = "flag"
type = "bool"
[query]
filter = "amount > 1 and flag"
select = ["flag", "ts"]
[[sinks]]
type = "console"
truncate = false
num_rows = 3
[[sinks]]
type = "file"
path = "out/x"
[[sinks]]
type = "kafka"
topic = "results"
[[sinks]]
type = "kafka"
topic = "results2"
bootstrap_servers = "other:9"
[dead_letter]
path = "dl"
topic = "dlq"
)");
  EXPECT_EQ(c.timezone, "Asia/Kolkata");
  EXPECT_EQ(c.trigger_interval_ms, 250);
  EXPECT_EQ(c.max_rows_per_batch, 500);
  EXPECT_EQ(c.source.bootstrap_servers, "b:1");
  EXPECT_EQ(c.source.starting_offsets, "latest");
  EXPECT_EQ(c.source.max_records_per_poll, 5);
  EXPECT_EQ(c.source.group_id, "g");
  EXPECT_EQ(c.source.format, message_format::envelope);
  EXPECT_EQ(c.fields[0].column, "$timestamp");
  EXPECT_EQ(c.fields[0].unit, time_unit::millis);
  EXPECT_TRUE(c.fields[0].required);
  EXPECT_EQ(c.fields[1].column, "weird col/x+y");
  EXPECT_EQ(c.fields[1].scale, 2);
  EXPECT_FALSE(c.fields[1].trim);
  EXPECT_FALSE(c.fields[1].strip_bytes_wrapper);
  EXPECT_EQ(c.fields[2].type, field_type::boolean);
  EXPECT_EQ(c.filter, "amount > 1 and flag");
  EXPECT_EQ(c.select, (std::vector<std::string>{"flag", "ts"}));
  EXPECT_EQ(c.output_field_indices(), (std::vector<int>{2, 0}));
  ASSERT_EQ(c.sinks.size(), 4u);
  EXPECT_FALSE(c.sinks[0].truncate);
  EXPECT_EQ(c.sinks[0].num_rows, 3);
  EXPECT_EQ(c.sinks[1].kind, sink_kind::file);
  EXPECT_EQ(c.sinks[1].path, "out/x");
  EXPECT_EQ(c.sinks[2].kind, sink_kind::kafka);
  EXPECT_EQ(c.sinks[2].topic, "results");
  EXPECT_EQ(c.sinks[2].bootstrap_servers, "b:1");
  EXPECT_EQ(c.sinks[3].bootstrap_servers, "other:9");
  EXPECT_EQ(c.dead_letter.path, "dl");
  EXPECT_EQ(c.dead_letter.topic, "dlq");
}

TEST(pipeline_config, rejects_an_unknown_key_and_suggests_the_closest) {
  EXPECT_EQ(parse_error(with_lines(5, "topik = \"x\"")),
            "t.toml:6: unknown key 'source.topik'; did you mean 'topic'?");
  EXPECT_EQ(parse_error(with_lines(8, "colum = \"x\"")),
            "t.toml:9: unknown key 'fields[0].colum'; did you mean 'column'?");
  const std::string e = parse_error(with_lines(2, "banana = 1"));
  EXPECT_EQ(e.rfind("t.toml:3: unknown key 'pipeline.banana' (known keys: name, timezone", 0), 0u)
      << e;
}

TEST(pipeline_config, rejects_an_unknown_table) {
  EXPECT_EQ(parse_error(with_lines(12, "[sorce]\nx = 1")),
            "t.toml:13: unknown table [sorce]; did you mean 'source'?");
}

TEST(pipeline_config, rejects_a_value_of_the_wrong_toml_type) {
  EXPECT_EQ(parse_error(with_lines(5, "max_records_per_poll = \"10\"")),
            "t.toml:6: source.max_records_per_poll: expected an integer, got string");
  EXPECT_EQ(parse_error(with_lines(2, "trigger_interval_ms = 1.5")),
            "t.toml:3: pipeline.trigger_interval_ms: expected an integer, got float");
  EXPECT_EQ(parse_error(with_lines(9, "required = \"yes\"")),
            "t.toml:10: fields[0].required: expected a boolean (true or false), got string");
  EXPECT_EQ(parse_error(with_lines(12, "[query]\nselect = \"id\"")),
            "t.toml:14: query.select: expected an array of field names, got string");
  EXPECT_EQ(parse_error(with_lines(12, "[query]\nfilter = 3")),
            "t.toml:14: query.filter: expected a string, got integer");
  EXPECT_EQ(parse_error("source = 1\n"),
            "t.toml:1: source: expected a table ([source]), got integer");
  const std::string e = parse_error(
      "[source]\ntopic = \"t\"\n[fields]\nname = \"id\"\n[[sinks]]\ntype = \"console\"\n");
  EXPECT_EQ(e, "t.toml:3: fields: expected an array of tables ([[fields]]), got table");
}

TEST(pipeline_config, rejects_bad_enum_values_listing_the_allowed_ones) {
  EXPECT_EQ(
      parse_error(with_lines(5, "starting_offsets = \"first\"")),
      "t.toml:6: source.starting_offsets: expected \"earliest\" or \"latest\", got \"first\"");
  EXPECT_EQ(parse_error(with_lines(5, "format = \"json\"")),
            "t.toml:6: source.format: expected \"auto\", \"unwrapped\", \"envelope\" or "
            "\"schema\", got \"json\"");
  EXPECT_EQ(parse_error(replaced("type = \"int\"", "type = \"integer\"")),
            "t.toml:9: fields[0].type: expected \"string\", \"int\", \"double\", \"bool\" or "
            "\"timestamp\", got \"integer\"");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"s3\"")),
            "t.toml:14: sinks[1].type: expected \"console\", \"file\", \"kafka\" or "
            "\"postgres\", got \"s3\"");
}

TEST(pipeline_config, rejects_out_of_range_numbers) {
  EXPECT_EQ(parse_error(with_lines(2, "trigger_interval_ms = 5")),
            "t.toml:3: pipeline.trigger_interval_ms: must be between 10 and 3600000, got 5");
  EXPECT_EQ(parse_error(with_lines(5, "max_records_per_poll = 0")),
            "t.toml:6: source.max_records_per_poll: must be between 1 and 1000000, got 0");
  EXPECT_EQ(parse_error(with_lines(5, "max_in_flight_mb = 0")),
            "t.toml:6: source.max_in_flight_mb: must be between 1 and 1048576, got 0");
  EXPECT_EQ(parse_error(with_lines(12, "num_rows = 0")),
            "t.toml:13: sinks[0].num_rows: must be between 1 and 1000000, got 0");
}

TEST(pipeline_config, names_a_missing_required_key_at_its_table) {
  EXPECT_EQ(parse_error(replaced("topic = \"orders\"\n", "")),
            "t.toml:4: source.topic: required key is missing");

  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"")),
            "t.toml:13: sinks[1].path: required key is missing (the file sink's output directory)");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"kafka\"")),
            "t.toml:13: sinks[1].topic: required key is missing (the kafka sink's topic)");
  EXPECT_EQ(parse_error(with_lines(12, "[[fields]]\ntype = \"int\"")),
            "t.toml:13: fields[1].name: required key is missing");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\nnum_rows = 3")),
            "t.toml:13: sinks[1].type: required key is missing (\"console\", \"file\", "
            "\"kafka\" or \"postgres\")");
  EXPECT_EQ(parse_error(with_lines(5, "group_id = \"\"")),
            "t.toml:6: source.group_id: must not be empty");
}

TEST(pipeline_config, names_a_missing_required_table) {
  const std::string no_source = "[[fields]]\nname = \"id\"\n[[sinks]]\ntype = \"console\"\n";
  EXPECT_EQ(parse_error(no_source),
            "t.toml: source.topic: required key is missing (add a [source] table)");
  const std::string no_fields = "[source]\ntopic = \"t\"\n[[sinks]]\ntype = \"console\"\n";
  EXPECT_EQ(parse_error(no_fields), "t.toml: fields: at least one [[fields]] table is required");
  const std::string no_sinks = "[source]\ntopic = \"t\"\n[[fields]]\nname = \"id\"\n";
  EXPECT_EQ(parse_error(no_sinks), "t.toml: sinks: at least one [[sinks]] table is required");
  EXPECT_EQ(parse_error("fields = []\n[source]\ntopic = \"t\"\n[[sinks]]\ntype = \"console\"\n"),
            "t.toml:1: fields: at least one [[fields]] table is required");
}

TEST(pipeline_config, rejects_duplicate_field_names) {
  EXPECT_EQ(parse_error(with_lines(12, "[[fields]]\nname = \"id\"")),
            "t.toml:14: fields[1].name: duplicate field name 'id' (first declared at line 7)");
}

TEST(pipeline_config, requires_field_names_to_be_identifiers) {
  const std::string e = parse_error(with_lines(12, "[[fields]]\nname = \"booking value\""));
  EXPECT_EQ(e.rfind("t.toml:14: fields[1].name: \"booking value\" is not an identifier", 0), 0u)
      << e;
  EXPECT_NE(parse_error(with_lines(12, "[[fields]]\nname = \"1st\"")).find("not an identifier"),
            std::string::npos);
}

TEST(pipeline_config, accepts_known_pseudo_columns_and_rejects_others) {
  for (const char* column :
       {"$op", "$source_ts", "$topic", "$partition", "$offset", "$key", "$timestamp"}) {
    const auto c = parsed(
        with_lines(12, "[[fields]]\nname = \"p\"\ncolumn = \"" + std::string(column) + "\""));
    EXPECT_EQ(c.fields[1].column, column);
  }
  const std::string e = parse_error(with_lines(12, "[[fields]]\nname = \"p\"\ncolumn = \"$opp\""));
  EXPECT_EQ(e.rfind("t.toml:15: fields[1].column: unknown pseudo-column \"$opp\"; did you mean "
                    "\"$op\"?",
                    0),
            0u)
      << e;
}

TEST(pipeline_config, allows_unit_only_on_timestamps_and_scale_only_on_numbers) {
  std::string e = parse_error(with_lines(9, "unit = \"micros\""));
  EXPECT_EQ(e, "t.toml:10: fields[0].unit: only valid for timestamp fields ('id' is int)");
  e = parse_error(with_lines(12, "[[fields]]\nname = \"s\"\ntype = \"string\"\nscale = 2"));
  EXPECT_EQ(e, "t.toml:16: fields[1].scale: only valid for int and double fields ('s' is string)");
  e = parse_error(with_lines(12, "[[fields]]\nname = \"ts\"\ntype = \"timestamp\"\nunit = \"ms\""));
  EXPECT_NE(e.find("t.toml:16: fields[1].unit: expected \"auto\", \"seconds\""), std::string::npos)
      << e;
  EXPECT_EQ(parse_error(with_lines(9, "scale = -1")),
            "t.toml:10: fields[0].scale: must be between 0 and 38, got -1");
  EXPECT_EQ(parsed(with_lines(9, "scale = 0")).fields[0].scale, 0);
}

TEST(pipeline_config, requires_select_to_name_declared_fields_once) {
  EXPECT_EQ(parse_error(with_lines(12, "[query]\nselect = [\"id\", \"idd\"]")),
            "t.toml:14: query.select: unknown field 'idd'; did you mean 'id'?");
  EXPECT_EQ(parse_error(with_lines(12, "[query]\nselect = [\"id\", \"id\"]")),
            "t.toml:14: query.select: field 'id' is listed twice");
}

TEST(pipeline_config, compiles_the_filter_and_reports_its_errors_at_the_filter_line) {
  EXPECT_EQ(parse_error(with_lines(12, "[query]\n\nfilter = 'idd > 3'")),
            "t.toml:15: query.filter: unknown field 'idd' at column 1; did you mean 'id'?");
  EXPECT_EQ(parse_error(with_lines(12, "[query]\nfilter = 'id > \"x\"'")),
            "t.toml:14: query.filter: type mismatch at column 6: cannot compare int field 'id' "
            "with a string");
  EXPECT_EQ(parsed(with_lines(12, "[query]\nfilter = 'id > 3'")).filter, "id > 3");
}

TEST(pipeline_config, reports_toml_syntax_errors_with_line_and_column) {
  const std::string e = parse_error(with_lines(5, "max_records_per_poll = = 3"));
  EXPECT_EQ(e.rfind("t.toml:6:", 0), 0u) << e;
  EXPECT_GT(e.size(), std::string("t.toml:6:23: ").size()) << e;
  const std::string e2 = parse_error("[source\ntopic = 1\n");
  EXPECT_EQ(e2.rfind("t.toml:1:", 0), 0u) << e2;
}

TEST(pipeline_config, validates_the_time_zone) {
  EXPECT_EQ(parsed(with_lines(2, "timezone = \"+05:30\"")).timezone, "+05:30");
  EXPECT_EQ(parsed(with_lines(2, "timezone = \"-08:00\"")).timezone, "-08:00");
  EXPECT_EQ(parsed(with_lines(2, "timezone = \"Europe/Paris\"")).timezone, "Europe/Paris");
  for (const char* bad :
       {"Mars/Olympus_Mons", "+5:30", "+05:75", "../../etc/passwd", "", "Europe"}) {
    const std::string e = parse_error(with_lines(2, "timezone = \"" + std::string(bad) + "\""));
    EXPECT_EQ(e.rfind("t.toml:3: pipeline.timezone: unknown time zone", 0), 0u) << bad << ": " << e;
  }
}

TEST(pipeline_config, rejects_bad_pipeline_names) {
  EXPECT_EQ(parse_error(replaced("\"t\"", "\"a b\"")),
            "t.toml:2: pipeline.name: \"a b\" is not a valid name: use 1 to 128 letters, digits, "
            "'_', '-' and '.', starting with a letter, digit or '_' (it names the default "
            "dead-letter directory)");
  EXPECT_EQ(parse_error(replaced("\"t\"", "\"\"")), "t.toml:2: pipeline.name: must not be empty");
  // ".." would make the default dead-letter directory "dead-letter/..", the working directory.
  for (const char* bad : {"..", ".", ".hidden", "-x", "a/b", "../x"}) {
    const std::string e = parse_error(replaced("\"t\"", "\"" + std::string(bad) + "\""));
    EXPECT_EQ(
        e.rfind("t.toml:2: pipeline.name: \"" + std::string(bad) + "\" is not a valid name", 0), 0u)
        << e;
  }
  EXPECT_NE(parse_error(replaced("\"t\"", "\"" + std::string(129, 'a') + "\"")).find("1 to 128"),
            std::string::npos);
  for (const char* good : {"orders", "a.b-c_d", "_x", "9lives", "v1.2"}) {
    const auto c = parsed(replaced("\"t\"", "\"" + std::string(good) + "\""));
    EXPECT_EQ(c.name, good);
    EXPECT_EQ(c.dead_letter.path, "dead-letter/" + std::string(good));
  }
  EXPECT_EQ(parsed(replaced("\"t\"", "\"" + std::string(128, 'a') + "\"")).name.size(), 128u);
}

TEST(pipeline_config, rejects_an_option_of_another_sink_type) {
  EXPECT_EQ(
      parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\ntruncate = true")),
      "t.toml:16: sinks[1].truncate: not an option of file sinks (they take: type, path, format, "
      "partition_by)");
  EXPECT_EQ(parse_error(with_lines(12, "pth = \"x\"")),
            "t.toml:13: unknown key 'sinks[0].pth' (known keys: type, truncate, num_rows)");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npth = \"o\"")),
            "t.toml:15: unknown key 'sinks[1].pth'; did you mean 'path'?");
}

TEST(pipeline_config, the_name_tag_of_staged_files_is_not_a_pipeline_file_key) {
  // Set by `eddy worker` only (sink_config::name_tag, dead_letter_config::name_tag).
  EXPECT_NE(
      parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nname_tag = \"w\""))
          .find("unknown key 'sinks[1].name_tag'"),
      std::string::npos);
  EXPECT_NE(parse_error(with_lines(12, "[dead_letter]\nname_tag = \"w\"")).find("name_tag"),
            std::string::npos);
  const pipeline_config cfg = parsed(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\""));
  EXPECT_EQ(cfg.sinks.at(1).name_tag, "");
  EXPECT_EQ(cfg.dead_letter.name_tag, "");
}

TEST(pipeline_config, reports_an_unreadable_file_by_path) {
  const auto r = load_pipeline_config("/nonexistent/dir/p.toml");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_NE(r.error.find("/nonexistent/dir/p.toml"), std::string::npos) << r.error;
}

TEST(pipeline_config, prints_enum_names_as_written_in_pipeline_files) {
  EXPECT_EQ(to_string(message_format::schema), "schema");
  EXPECT_EQ(to_string(time_unit::nanos), "nanos");
  EXPECT_EQ(to_string(sink_kind::kafka), "kafka");
}

// ---- source.max_message_bytes ----------------------------------------------------------------

TEST(pipeline_config, reads_max_message_bytes_within_its_range) {
  EXPECT_EQ(parsed(minimal).source.max_message_bytes, 1 << 20);
  EXPECT_EQ(parsed(with_lines(5, "max_message_bytes = 1024")).source.max_message_bytes, 1024);
  EXPECT_EQ(parsed(with_lines(5, "max_message_bytes = 1073741824")).source.max_message_bytes,
            int64_t{1} << 30);
  EXPECT_EQ(parse_error(with_lines(5, "max_message_bytes = 1023")),
            "t.toml:6: source.max_message_bytes: must be between 1024 and 1073741824, got 1023");
  EXPECT_EQ(parse_error(with_lines(5, "max_message_bytes = 1073741825")),
            "t.toml:6: source.max_message_bytes: must be between 1024 and 1073741824, got "
            "1073741825");
  EXPECT_EQ(parse_error(with_lines(5, "max_message_bytes = \"1MB\"")),
            "t.toml:6: source.max_message_bytes: expected an integer, got string");
}

TEST(pipeline_config, reads_max_rows_per_batch_within_its_range) {
  EXPECT_EQ(parsed(minimal).max_rows_per_batch, 100000);
  EXPECT_EQ(parsed(with_lines(2, "max_rows_per_batch = 1")).max_rows_per_batch, 1);
  EXPECT_EQ(parsed(with_lines(2, "max_rows_per_batch = 2500")).max_rows_per_batch, 2500);
  EXPECT_EQ(parsed(with_lines(2, "max_rows_per_batch = 100000000")).max_rows_per_batch,
            100'000'000);
  EXPECT_EQ(parse_error(with_lines(2, "max_rows_per_batch = 0")),
            "t.toml:3: pipeline.max_rows_per_batch: must be between 1 and 100000000, got 0");
  EXPECT_EQ(parse_error(with_lines(2, "max_rows_per_batch = 100000001")),
            "t.toml:3: pipeline.max_rows_per_batch: must be between 1 and 100000000, got "
            "100000001");
  EXPECT_EQ(parse_error(with_lines(2, "max_rows_per_batch = \"1k\"")),
            "t.toml:3: pipeline.max_rows_per_batch: expected an integer, got string");
}

// ---- aggregation: the example files ------------------------------------------------------------

TEST(pipeline_config, parses_the_windowed_example_pipeline_file) {
  const auto r = load_pipeline_config(example_path("ncr_windowed.toml"));
  ASSERT_TRUE(r.config.has_value()) << r.error;
  const pipeline_config& c = *r.config;
  EXPECT_EQ(c.name, "ncr_windowed");
  EXPECT_EQ(c.source.max_message_bytes, 1 << 20);
  EXPECT_TRUE(c.select.empty());
  EXPECT_EQ(c.filter, "op in (\"c\", \"r\")");

  // The same fields as the first example.
  const auto first = load_pipeline_config(example_path());
  ASSERT_TRUE(first.config.has_value()) << first.error;
  ASSERT_EQ(c.fields.size(), first.config->fields.size());
  for (std::size_t i = 0; i < c.fields.size(); ++i) {
    EXPECT_EQ(c.fields[i].name, first.config->fields[i].name);
    EXPECT_EQ(c.fields[i].column, first.config->fields[i].column);
    EXPECT_EQ(c.fields[i].type, first.config->fields[i].type);
    EXPECT_EQ(c.fields[i].unit, first.config->fields[i].unit);
    EXPECT_EQ(c.fields[i].required, first.config->fields[i].required);
  }

  const window_config& w = c.window;
  EXPECT_EQ(w.kind, window_kind::tumbling);
  EXPECT_EQ(w.size_us, 60'000'000);
  EXPECT_EQ(w.time_field, "created_at_ts");
  EXPECT_EQ(w.time_field_index, c.field_index("created_at_ts"));
  EXPECT_FALSE(w.processing_time);
  EXPECT_EQ(w.max_out_of_orderness_us, 5'000'000);
  EXPECT_EQ(w.allowed_lateness_us, 0);
  EXPECT_EQ(w.idle_timeout_us, 0);
  EXPECT_EQ(w.emit, emit_mode::on_close);
  EXPECT_EQ(w.late, late_policy::dead_letter);

  ASSERT_EQ(c.aggregates.size(), 3u);
  EXPECT_EQ(c.aggregates[0].alias, "bookings");
  EXPECT_EQ(c.aggregates[0].function, "count");
  EXPECT_EQ(c.aggregates[0].field, "");
  EXPECT_EQ(c.aggregates[1].alias, "avg_booking_value");
  EXPECT_EQ(c.aggregates[1].function, "avg");
  EXPECT_EQ(c.aggregates[1].field, "booking_value");
  EXPECT_EQ(c.aggregates[2].alias, "p95_ride_distance");
  EXPECT_EQ(c.aggregates[2].function, "p95");
  EXPECT_EQ(c.aggregates[2].field, "ride_distance");
  EXPECT_DOUBLE_EQ(c.aggregates[2].q, 0.95);

  EXPECT_EQ(c.aggregation.group_by, std::vector<std::string>{"vehicle_type"});
  EXPECT_EQ(c.aggregation.mode, "append");
  EXPECT_TRUE(c.aggregation.primary_key.empty());
  EXPECT_EQ(c.aggregation.having, "");
  EXPECT_EQ(c.aggregation.shards, 4);
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].kind, sink_kind::console);
}

TEST(pipeline_config, parses_the_changelog_example_pipeline_file) {
  const auto r = load_pipeline_config(example_path("ncr_changelog.toml"));
  ASSERT_TRUE(r.config.has_value()) << r.error;
  const pipeline_config& c = *r.config;
  EXPECT_EQ(c.name, "ncr_changelog");
  EXPECT_EQ(c.filter, "");
  EXPECT_TRUE(c.select.empty());
  EXPECT_EQ(c.window.kind, window_kind::global);
  EXPECT_EQ(c.window.emit, emit_mode::on_update);
  EXPECT_TRUE(c.window.processing_time);
  EXPECT_EQ(c.window.time_field_index, -1);
  ASSERT_EQ(c.aggregates.size(), 2u);
  EXPECT_EQ(c.aggregates[0].alias, "completed");
  EXPECT_EQ(c.aggregates[0].function, "count");
  EXPECT_EQ(c.aggregates[1].function, "avg");
  EXPECT_EQ(c.aggregation.mode, "changelog");
  EXPECT_EQ(c.aggregation.group_by,
            (std::vector<std::string>{"pickup_location", "booking_status"}));
  EXPECT_EQ(c.aggregation.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(c.aggregation.having, "booking_status = \"Completed\"");
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].kind, sink_kind::console);
}

// ---- aggregation: defaults and every key -------------------------------------------------------

TEST(pipeline_config, is_not_aggregating_without_aggregates) {
  const auto c = parsed(minimal);
  EXPECT_EQ(c.window.kind, window_kind::none);
  EXPECT_TRUE(c.aggregates.empty());
}

TEST(pipeline_config, defaults_to_a_global_window_updated_in_place_when_only_aggregates_are_given) {
  const auto c = parsed(with_lines(12, "[[aggregates]]\nalias = \"n\"\nfunction = \"count\""));
  EXPECT_EQ(c.window.kind, window_kind::global);
  EXPECT_EQ(c.window.emit, emit_mode::on_update);
  EXPECT_TRUE(c.window.processing_time);
  EXPECT_EQ(c.window.time_field, "");
  EXPECT_EQ(c.window.time_field_index, -1);
  EXPECT_EQ(c.window.late, late_policy::drop);
  ASSERT_EQ(c.aggregates.size(), 1u);
  EXPECT_EQ(c.aggregates[0].alias, "n");
  EXPECT_EQ(c.aggregates[0].function, "count");
  EXPECT_EQ(c.aggregates[0].field, "");
  EXPECT_EQ(c.aggregates[0].line, 13);
  EXPECT_TRUE(c.aggregation.group_by.empty());
  EXPECT_EQ(c.aggregation.mode, "append");
  EXPECT_TRUE(c.aggregation.primary_key.empty());
  EXPECT_EQ(c.aggregation.having, "");
  EXPECT_EQ(c.aggregation.shards, 4);
}

TEST(pipeline_config, fills_in_window_defaults) {
  const auto c = parsed(windowed);
  EXPECT_EQ(c.window.kind, window_kind::tumbling);
  EXPECT_EQ(c.window.size_us, 60'000'000);
  EXPECT_EQ(c.window.slide_us, 0);
  EXPECT_EQ(c.window.gap_us, 0);
  EXPECT_EQ(c.window.time_field, "ts");
  EXPECT_EQ(c.window.time_field_index, 1);
  EXPECT_FALSE(c.window.processing_time);
  EXPECT_EQ(c.window.max_out_of_orderness_us, 0);
  EXPECT_EQ(c.window.allowed_lateness_us, 0);
  EXPECT_EQ(c.window.idle_timeout_us, 0);
  EXPECT_EQ(c.window.emit, emit_mode::on_close);
  EXPECT_EQ(c.window.late, late_policy::drop);
}

TEST(pipeline_config, reads_every_window_and_aggregation_key) {
  const auto c = parsed(R"([source]
topic = "t"
[[fields]]
name = "ts"
type = "timestamp"
[[fields]]
name = "k"
[[fields]]
name = "v"
type = "int"
[[sinks]]
type = "console"
[window]
type = "hopping"
size = "10m"
slide = "2m"
time_field = "ts"
time = "event"
max_out_of_orderness = "30s"
allowed_lateness = 1500
idle_timeout = "1h"
emit = "on_update"
late = "update"
[[aggregates]]
alias = "total"
function = "sum"
field = "v"
[[aggregates]]
alias = "top"
function = "max"
field = "v"
[[aggregates]]
alias = "seen"
function = "count"
field = "k"
[aggregate]
group_by = ["k"]
mode = "changelog"
primary_key = ["k", "ts"]
having = "top > 3"
shards = 256
)");
  EXPECT_EQ(c.window.kind, window_kind::hopping);
  EXPECT_EQ(c.window.size_us, 600'000'000);
  EXPECT_EQ(c.window.slide_us, 120'000'000);
  EXPECT_EQ(c.window.time_field_index, 0);
  EXPECT_EQ(c.window.max_out_of_orderness_us, 30'000'000);
  EXPECT_EQ(c.window.allowed_lateness_us, 1'500'000);
  EXPECT_EQ(c.window.idle_timeout_us, 3'600'000'000);
  EXPECT_EQ(c.window.emit, emit_mode::on_update);
  EXPECT_EQ(c.window.late, late_policy::update);
  ASSERT_EQ(c.aggregates.size(), 3u);
  EXPECT_EQ(c.aggregates[0].alias, "total");
  EXPECT_EQ(c.aggregates[0].function, "sum");
  EXPECT_EQ(c.aggregates[0].field, "v");
  EXPECT_EQ(c.aggregates[0].line, 24);
  EXPECT_EQ(c.aggregates[1].function, "max");
  EXPECT_EQ(c.aggregates[2].function, "count");
  EXPECT_EQ(c.aggregates[2].field, "k");
  EXPECT_EQ(c.aggregation.group_by, std::vector<std::string>{"k"});
  EXPECT_EQ(c.aggregation.mode, "changelog");
  EXPECT_EQ(c.aggregation.primary_key, (std::vector<std::string>{"k", "ts"}));
  EXPECT_EQ(c.aggregation.having, "top > 3");
  EXPECT_EQ(c.aggregation.shards, 256);
}

TEST(pipeline_config, reads_session_and_processing_time_windows) {
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"", "type = \"session\"")),
            "t.toml:21: window.size: not an option of session windows (they take: type, gap, "
            "time_field, time, emit, late, max_out_of_orderness, allowed_lateness, "
            "idle_timeout, max_event_time_skew)");
  auto c = parsed(
      windowed_replaced("type = \"tumbling\"\nsize = \"1m\"", "type = \"session\"\ngap = \"30m\""));
  EXPECT_EQ(c.window.kind, window_kind::session);
  EXPECT_EQ(c.window.gap_us, 1'800'000'000);

  c = parsed(windowed_replaced("time_field = \"ts\"", "time = \"processing\""));
  EXPECT_TRUE(c.window.processing_time);
  EXPECT_EQ(c.window.time_field_index, -1);
}

TEST(pipeline_config, reads_a_global_window) {
  auto c = parsed(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"", "type = \"global\""));
  EXPECT_EQ(c.window.kind, window_kind::global);
  EXPECT_EQ(c.window.emit, emit_mode::on_update);
  EXPECT_FALSE(c.window.processing_time);  // it has a time field (for first / last)
  EXPECT_EQ(c.window.time_field_index, 1);

  c = parsed(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"\ntime_field = \"ts\"",
                               "type = \"global\""));
  EXPECT_TRUE(c.window.processing_time);
  EXPECT_EQ(c.window.emit, emit_mode::on_update);

  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"", "type = \"global\"")),
            "t.toml:21: window.size: not an option of global windows (they take: type, "
            "time_field, time, emit)");
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"global\"\nlate = \"update\"")),
            "t.toml:21: window.late: not an option of global windows (they take: type, "
            "time_field, time, emit)");
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"global\"\nemit = \"on_close\"")),
            "t.toml:21: window.emit: a global window never closes; use \"on_update\" (the "
            "default)");
}

// ---- durations ---------------------------------------------------------------------------------

TEST(pipeline_config, reads_durations_as_integer_and_unit_or_as_milliseconds) {
  const std::pair<const char*, int64_t> cases[] = {
      {"\"250ms\"", 250'000},     {"\"10s\"", 10'000'000},
      {"\"1m\"", 60'000'000},     {"\"2h\"", 7'200'000'000},
      {"\"1d\"", 86'400'000'000}, {"\"90s\"", 90'000'000},
      {"1500", 1'500'000},        {"\"3650d\"", 3650 * 86'400'000'000},
  };
  for (const auto& [text, us] : cases) {
    const auto c = parsed(windowed_replaced("size = \"1m\"", std::string("size = ") + text));
    EXPECT_EQ(c.window.size_us, us) << text;
  }
  EXPECT_EQ(
      parsed(windowed_with(22, "max_out_of_orderness = \"0s\"")).window.max_out_of_orderness_us, 0);
  EXPECT_EQ(parsed(windowed_with(22, "idle_timeout = 0")).window.idle_timeout_us, 0);
}

TEST(pipeline_config, rejects_malformed_durations_naming_the_key) {
  EXPECT_EQ(parse_error(windowed_replaced("size = \"1m\"", "size = \"1 minute\"")),
            "t.toml:21: window.size: expected a duration such as \"1m\" or \"500ms\", got \"1 "
            "minute\"");
  for (const char* bad : {"1.5s", "10", "-1s", "1S", "", "1mm", "s", " 1s", "1s ", "+1s", "1us"}) {
    EXPECT_EQ(
        parse_error(windowed_replaced("size = \"1m\"", "size = \"" + std::string(bad) + "\"")),
        "t.toml:21: window.size: expected a duration such as \"1m\" or \"500ms\", got \"" +
            std::string(bad) + "\"")
        << bad;
  }
  EXPECT_EQ(parse_error(windowed_replaced("size = \"1m\"", "size = 1.5")),
            "t.toml:21: window.size: expected a duration such as \"1m\" or \"500ms\", got float");
  EXPECT_EQ(parse_error(windowed_with(22, "allowed_lateness = -5")),
            "t.toml:23: window.allowed_lateness: must not be negative, got -5");
  EXPECT_EQ(parse_error(windowed_with(22, "idle_timeout = \"3651d\"")),
            "t.toml:23: window.idle_timeout: must be at most 3650d, got \"3651d\"");
  EXPECT_EQ(parse_error(windowed_with(22, "idle_timeout = \"99999999999999999999999ms\"")),
            "t.toml:23: window.idle_timeout: must be at most 3650d, got "
            "\"99999999999999999999999ms\"");
  EXPECT_EQ(parse_error(windowed_with(22, "idle_timeout = 315360000001")),
            "t.toml:23: window.idle_timeout: must be at most 3650d, got 315360000001 "
            "(milliseconds)");
  EXPECT_EQ(parse_error(windowed_replaced("size = \"1m\"", "size = \"0s\"")),
            "t.toml:21: window.size: must be greater than 0s");
  EXPECT_EQ(parse_error(windowed_replaced("size = \"1m\"", "size = 0")),
            "t.toml:21: window.size: must be greater than 0s");
}

// ---- [window] errors ---------------------------------------------------------------------------

TEST(pipeline_config, rejects_window_keys_that_are_unknown_or_of_another_window_type) {
  EXPECT_EQ(parse_error(windowed_with(22, "siz = \"1m\"")),
            "t.toml:23: unknown key 'window.siz'; did you mean 'size'?");
  EXPECT_EQ(parse_error(windowed_with(22, "gap = \"1m\"")),
            "t.toml:23: window.gap: not an option of tumbling windows (they take: type, size, "
            "time_field, time, emit, late, max_out_of_orderness, allowed_lateness, "
            "idle_timeout, max_event_time_skew)");
  EXPECT_EQ(parse_error(windowed_with(22, "slide = \"1m\"")),
            "t.toml:23: window.slide: not an option of tumbling windows (they take: type, size, "
            "time_field, time, emit, late, max_out_of_orderness, allowed_lateness, "
            "idle_timeout, max_event_time_skew)");
  EXPECT_EQ(parse_error(windowed_with(18, "[windows]\ntype = \"global\"")),
            "t.toml:19: unknown table [windows]; did you mean 'window'?");
}

TEST(pipeline_config, requires_the_keys_of_each_window_type) {
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\n", "")),
            "t.toml:19: window.type: required key is missing (\"tumbling\", \"hopping\", "
            "\"session\" or \"global\")");
  EXPECT_EQ(parse_error(windowed_replaced("\"tumbling\"", "\"sliding\"")),
            "t.toml:20: window.type: expected \"tumbling\", \"hopping\", \"session\" or "
            "\"global\", got \"sliding\"");
  EXPECT_EQ(parse_error(windowed_replaced("size = \"1m\"\n", "")),
            "t.toml:19: window.size: required key is missing (the window length, e.g. \"1m\")");
  EXPECT_EQ(parse_error(windowed_replaced("\"tumbling\"", "\"hopping\"")),
            "t.toml:19: window.slide: required key is missing (how often a window starts, e.g. "
            "\"10s\")");
  EXPECT_EQ(
      parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"", "type = \"session\"")),
      "t.toml:19: window.gap: required key is missing (the silence that ends a session, e.g. "
      "\"30m\")");
}

TEST(pipeline_config, requires_the_hop_to_divide_the_window) {
  const auto c = parsed(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"1m\"\nslide = \"15s\""));
  EXPECT_EQ(c.window.slide_us, 15'000'000);
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"5m\"\nslide = \"2m\"")),
            "t.toml:22: window.slide: 2m does not divide window.size 5m");
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"1m\"\nslide = \"2m\"")),
            "t.toml:22: window.slide: 2m does not divide window.size 1m");
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"1m\"\nslide = 7000")),
            "t.toml:22: window.slide: 7s does not divide window.size 1m");
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"1m\"\nslide = \"0ms\"")),
            "t.toml:22: window.slide: must be greater than 0s");
}

TEST(pipeline_config, bounds_the_windows_a_hopping_row_falls_in) {
  // 1d / 1ms would put every row in 86.4M windows (bad_alloc on the first record).
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"1d\"\nslide = \"1ms\"")),
            "t.toml:22: window.slide: 1ms puts every row in 86400000 windows of size 1d; at most "
            "10000 are allowed (size / slide <= 10000)");
  const auto c = parsed(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"10000s\"\nslide = \"1s\""));
  EXPECT_EQ(c.window.size_us / c.window.slide_us, max_windows_per_row);
  EXPECT_EQ(parse_error(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"",
                                          "type = \"hopping\"\nsize = \"10001s\"\nslide = \"1s\""))
                .rfind("t.toml:22: window.slide: 1s puts every row in 10001 windows", 0),
            0u);
}

TEST(pipeline_config, reads_max_event_time_skew) {
  EXPECT_EQ(parsed(windowed).window.max_event_time_skew_us, 365 * 86'400'000'000);  // default
  EXPECT_EQ(parsed(windowed_with(22, "max_event_time_skew = \"1h\"")).window.max_event_time_skew_us,
            3'600'000'000);
  EXPECT_EQ(parsed(windowed_with(22, "max_event_time_skew = \"0s\"")).window.max_event_time_skew_us,
            0);  // off
  EXPECT_EQ(parse_error(windowed_with(22, "max_event_time_skew = \"soon\"")),
            "t.toml:23: window.max_event_time_skew: expected a duration such as \"1m\" or "
            "\"500ms\", got \"soon\"");
  EXPECT_EQ(parse_error(windowed_replaced("time_field = \"ts\"",
                                          "time = \"processing\"\nmax_event_time_skew = \"1h\"")),
            "t.toml:23: window.max_event_time_skew: not used with time = \"processing\"");
  EXPECT_EQ(parsed(windowed_replaced("time_field = \"ts\"", "time = \"processing\""))
                .window.max_event_time_skew_us,
            0);
  const auto global =
      parsed(windowed_replaced("type = \"tumbling\"\nsize = \"1m\"", "type = \"global\""));
  EXPECT_EQ(global.window.max_event_time_skew_us, 0);  // no watermark to protect
}

TEST(pipeline_config, requires_an_event_time_field_that_is_a_timestamp) {
  EXPECT_EQ(parse_error(windowed_replaced("time_field = \"ts\"\n", "")),
            "t.toml:19: window.time_field: required key is missing (a timestamp field, or time = "
            "\"processing\")");
  EXPECT_EQ(parse_error(windowed_replaced("time_field = \"ts\"", "time_field = \"tss\"")),
            "t.toml:22: window.time_field: unknown field 'tss'; did you mean 'ts'?");
  EXPECT_EQ(parse_error(windowed_replaced("time_field = \"ts\"", "time_field = \"id\"")),
            "t.toml:22: window.time_field: 'id' is int, not timestamp");
  EXPECT_EQ(parse_error(windowed_with(22, "time = \"processing\"")),
            "t.toml:22: window.time_field: not used with time = \"processing\"");
  EXPECT_EQ(parse_error(windowed_with(22, "time = \"ingest\"")),
            "t.toml:23: window.time: expected \"event\" or \"processing\", got \"ingest\"");
}

TEST(pipeline_config, rejects_bad_emit_and_late_values) {
  EXPECT_EQ(parse_error(windowed_with(22, "emit = \"on_closed\"")),
            "t.toml:23: window.emit: expected \"on_close\" or \"on_update\", got \"on_closed\"");
  EXPECT_EQ(parse_error(windowed_with(22, "late = \"keep\"")),
            "t.toml:23: window.late: expected \"drop\", \"dead_letter\" or \"update\", got "
            "\"keep\"");
}

// ---- how the tables fit together ---------------------------------------------------------------

TEST(pipeline_config, requires_aggregates_for_a_window_or_an_aggregate_table) {
  EXPECT_EQ(parse_error(with_lines(12, "[window]\ntype = \"global\"")),
            "t.toml:13: window: a [window] needs at least one [[aggregates]]");
  EXPECT_EQ(parse_error(with_lines(0, "aggregates = []") + "[window]\ntype = \"global\"\n"),
            "t.toml:14: window: a [window] needs at least one [[aggregates]]");
  EXPECT_EQ(parse_error(with_lines(12, "[aggregate]\ngroup_by = [\"id\"]")),
            "t.toml:13: aggregate: an [aggregate] needs at least one [[aggregates]]");
  EXPECT_EQ(parse_error(with_lines(12, "[aggregates]\nalias = \"n\"")),
            "t.toml:13: aggregates: expected an array of tables ([[aggregates]]), got table");
}

TEST(pipeline_config, rejects_select_in_an_aggregating_pipeline) {
  EXPECT_EQ(parse_error(windowed_with(15, "[query]\nselect = [\"id\"]")),
            "t.toml:17: query.select: not used with [[aggregates]]: the output is window, "
            "group_by and aggregates");
  const auto c = parsed(windowed_with(15, "[query]\nselect = []\nfilter = \"amount > 1\""));
  EXPECT_EQ(c.filter, "amount > 1");
  EXPECT_EQ(c.aggregates.size(), 1u);
}

// ---- [[aggregates]] errors ---------------------------------------------------------------------

TEST(pipeline_config, requires_each_aggregate_to_have_a_unique_identifier_alias) {
  EXPECT_EQ(parse_error(windowed_replaced("alias = \"n\"\n", "")),
            "t.toml:16: aggregates[0].alias: required key is missing (the name of the output "
            "column)");
  const std::string e = parse_error(windowed_replaced("\"n\"", "\"row count\""));
  EXPECT_EQ(e.rfind("t.toml:17: aggregates[0].alias: \"row count\" is not an identifier", 0), 0u)
      << e;
  EXPECT_EQ(parse_error(windowed_with(18, "[[aggregates]]\nalias = \"n\"\nfunction = \"max\"")),
            "t.toml:20: aggregates[1].alias: duplicate alias 'n' (first used at line 16)");
  EXPECT_EQ(parse_error(windowed_replaced("\"n\"", "\"window_start\"")),
            "t.toml:17: aggregates[0].alias: 'window_start' is reserved for the window bounds");
  EXPECT_EQ(parse_error(windowed_replaced("\"n\"", "\"window_end\"")),
            "t.toml:17: aggregates[0].alias: 'window_end' is reserved for the window bounds");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\ngroup_by = [\"kind\"]") +
                        "[[aggregates]]\nalias = \"kind\"\nfunction = \"count\"\n"),
            "t.toml:26: aggregates[1].alias: 'kind' is also a group_by field; output columns "
            "need distinct names");
  EXPECT_EQ(parse_error(windowed_with(17, "alia = \"x\"")),
            "t.toml:18: unknown key 'aggregates[0].alia'; did you mean 'alias'?");
}

TEST(pipeline_config, requires_a_known_aggregate_function) {
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"\n", "")),
            "t.toml:16: aggregates[0].function: required key is missing (one of count, sum, avg, "
            "min, max, count_distinct, approx_count_distinct, percentile, p50, p90, p95, p99, "
            "first, last)");
  EXPECT_EQ(parse_error(windowed_replaced("\"count\"", "\"cnt\"")),
            "t.toml:18: aggregates[0].function: unknown function \"cnt\"; did you mean "
            "\"count\"? (known: count, sum, avg, min, max, count_distinct, "
            "approx_count_distinct, percentile, p50, p90, p95, p99, first, last)");
  const std::string e = parse_error(windowed_replaced("\"count\"", "\"median\""));
  EXPECT_EQ(e.rfind("t.toml:18: aggregates[0].function: unknown function \"median\" (known: ", 0),
            0u)
      << e;
  EXPECT_EQ(parse_error(windowed_replaced("\"count\"", "3")),
            "t.toml:18: aggregates[0].function: expected a string, got integer");
  for (const char* fn : {"count", "min", "max", "count_distinct", "approx_count_distinct", "first",
                         "last", "sum", "avg", "p50", "p90", "p95", "p99"}) {
    const auto c = parsed(windowed_replaced(
        "function = \"count\"", "function = \"" + std::string(fn) + "\"\n" + "field = \"amount\""));
    EXPECT_EQ(c.aggregates[0].function, fn);
    EXPECT_EQ(c.aggregates[0].field, "amount");
  }
}

TEST(pipeline_config, requires_a_declared_field_except_for_count) {
  EXPECT_EQ(parse_error(windowed_replaced("\"count\"", "\"sum\"")),
            "t.toml:16: aggregates[0].field: required key is missing (sum needs a field; only "
            "count works without one)");
  EXPECT_EQ(parse_error(windowed_with(18, "field = \"amont\"")),
            "t.toml:19: aggregates[0].field: unknown field 'amont'; did you mean 'amount'?");
  EXPECT_EQ(parse_error(windowed_with(18, "field = \"\"")),
            "t.toml:19: aggregates[0].field: must not be empty");
  EXPECT_EQ(parse_error(
                windowed_replaced("function = \"count\"", "function = \"avg\"\nfield = \"kind\"")),
            "t.toml:19: aggregates[0].field: avg needs an int or double field ('kind' is "
            "string)");
  EXPECT_EQ(
      parse_error(windowed_replaced("function = \"count\"", "function = \"p95\"\nfield = \"ts\"")),
      "t.toml:19: aggregates[0].field: p95 needs an int or double field ('ts' is "
      "timestamp)");
  EXPECT_EQ(parsed(windowed_replaced("function = \"count\"",
                                     "function = \"count_distinct\"\nfield = \"kind\""))
                .aggregates[0]
                .field,
            "kind");
}

TEST(pipeline_config, requires_q_with_percentile_and_only_there) {
  const std::string percentile = "function = \"percentile\"\nfield = \"amount\"";
  auto c = parsed(windowed_replaced("function = \"count\"", percentile + "\nq = 0.25"));
  EXPECT_DOUBLE_EQ(c.aggregates[0].q, 0.25);
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"", percentile)),
            "t.toml:16: aggregates[0].q: required key is missing (the quantile, between 0 and 1, "
            "e.g. 0.95)");
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"", percentile + "\nq = 1.5")),
            "t.toml:20: aggregates[0].q: must be between 0 and 1 (exclusive), got 1.5");
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"", percentile + "\nq = 0.0")),
            "t.toml:20: aggregates[0].q: must be between 0 and 1 (exclusive), got 0");
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"", percentile + "\nq = 1")),
            "t.toml:20: aggregates[0].q: must be between 0 and 1 (exclusive), got 1");
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"", percentile + "\nq = \"p95\"")),
            "t.toml:20: aggregates[0].q: expected a number between 0 and 1, got string");
  EXPECT_EQ(parse_error(windowed_with(18, "q = 0.5")),
            "t.toml:19: aggregates[0].q: only valid with function = \"percentile\", not "
            "\"count\"");
  c = parsed(windowed_replaced("function = \"count\"", "function = \"p99\"\nfield = \"amount\""));
  EXPECT_DOUBLE_EQ(c.aggregates[0].q, 0.99);
  c = parsed(windowed_replaced("function = \"count\"", "function = \"p50\"\nfield = \"amount\""));
  EXPECT_DOUBLE_EQ(c.aggregates[0].q, 0.5);
}

// ---- [aggregate] errors ------------------------------------------------------------------------

TEST(pipeline_config, requires_group_by_to_name_declared_fields_once) {
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\ngroup_by = [\"knd\"]")),
            "t.toml:24: aggregate.group_by: unknown field 'knd'; did you mean 'kind'?");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\ngroup_by = [\"kind\", \"kind\"]")),
            "t.toml:24: aggregate.group_by: field 'kind' is listed twice");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\ngroup_by = \"kind\"")),
            "t.toml:24: aggregate.group_by: expected an array of field names, got string");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\ngroupby = [\"kind\"]")),
            "t.toml:24: unknown key 'aggregate.groupby'; did you mean 'group_by'?");
  // A group_by field may not take the name of a window bounds column (a global window has none).
  const std::string bounds_field = "[[fields]]\nname = \"window_start\"";
  EXPECT_EQ(
      parse_error(windowed_with(13, bounds_field) + "[aggregate]\ngroup_by = [\"window_start\"]\n"),
      "t.toml:26: aggregate.group_by: 'window_start' is the name of a window bounds column");
  const auto c =
      parsed(with_lines(12, bounds_field + "\n[[aggregates]]\nalias = \"n\"\nfunction = \"count\""
                                           "\n[aggregate]\ngroup_by = [\"window_start\"]"));
  EXPECT_EQ(c.aggregation.group_by, std::vector<std::string>{"window_start"});
}

TEST(pipeline_config, checks_mode_primary_key_having_and_shards) {
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nmode = \"upsert\"")),
            "t.toml:24: aggregate.mode: expected \"append\" or \"changelog\", got \"upsert\"");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nprimary_key = [\"id\"]")),
            "t.toml:24: aggregate.primary_key: only used with mode = \"changelog\"");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nmode = \"changelog\"\nprimary_key = []")),
            "t.toml:25: aggregate.primary_key: must not be empty");
  EXPECT_EQ(parse_error(windowed_with(22,
                                      "[aggregate]\nmode = \"changelog\"\n"
                                      "primary_key = [\"idd\"]")),
            "t.toml:25: aggregate.primary_key: unknown field 'idd'; did you mean 'id'?");
  auto c = parsed(windowed_with(22, "[aggregate]\nmode = \"changelog\""));
  EXPECT_EQ(c.aggregation.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(parse_error(replaced_in(windowed_with(22, "[aggregate]\nmode = \"changelog\""),
                                    "name = \"id\"", "name = \"key\"")),
            "t.toml:24: aggregate.primary_key: required with mode = \"changelog\" (there is no "
            "field named 'id' to default to): list the fields that identify a source row");
  c = parsed(windowed_with(22, "[aggregate]\nhaving = 'n > 3 and whatever(\"x\")'"));
  EXPECT_EQ(c.aggregation.having, "n > 3 and whatever(\"x\")");  // compiled later, not here
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nhaving = 3")),
            "t.toml:24: aggregate.having: expected a string, got integer");
  EXPECT_EQ(parsed(windowed_with(22, "[aggregate]\nshards = 1")).aggregation.shards, 1);
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nshards = 0")),
            "t.toml:24: aggregate.shards: must be between 1 and 256, got 0");
  EXPECT_EQ(parse_error(windowed_with(22, "[aggregate]\nshards = 257")),
            "t.toml:24: aggregate.shards: must be between 1 and 256, got 257");
}

TEST(pipeline_config, allows_only_retractable_aggregates_in_changelog_mode) {
  for (const char* fn : {"count", "sum", "avg", "min", "max", "count_distinct"}) {
    const auto c =
        parsed(windowed_replaced("function = \"count\"", "function = \"" + std::string(fn) +
                                                             "\"\n" + "field = \"amount\"") +
               "[aggregate]\nmode = \"changelog\"\n");
    EXPECT_EQ(c.aggregates[0].function, fn);
  }
  EXPECT_EQ(parse_error(windowed_replaced("function = \"count\"",
                                          "function = \"p95\"\nfield = \"amount\"") +
                        "[aggregate]\nmode = \"changelog\"\n"),
            "t.toml:18: aggregates[0].function: p95 cannot take a row back, so it cannot be used "
            "with aggregate.mode = \"changelog\" (these can: count, sum, avg, min, max, "
            "count_distinct)");
}

// ---- [checkpoint] ------------------------------------------------------------------------------

/// `minimal` followed by a `[checkpoint]` table (at line 13) with `body` (from line 14).
std::string with_checkpoint(std::string_view body) {
  return std::string(minimal) + "[checkpoint]\n" + std::string(body) + "\n";
}

TEST(pipeline_config, has_checkpoints_off_without_a_checkpoint_table) {
  const auto c = parsed(minimal);
  EXPECT_FALSE(c.checkpoint.enabled());
  EXPECT_EQ(c.checkpoint.dir, "");
  EXPECT_EQ(c.checkpoint.local_dir, "");
  EXPECT_EQ(c.checkpoint.interval_ms, 1000);
  EXPECT_EQ(c.checkpoint.retain, 3);
  EXPECT_EQ(c.checkpoint.block_cache_mb, 64);
  EXPECT_EQ(c.checkpoint.write_buffer_mb, 32);
  EXPECT_TRUE(c.checkpoint.sync);
  EXPECT_EQ(c.checkpoint.line, 0);
}

TEST(pipeline_config, fills_in_checkpoint_defaults) {
  const auto c = parsed(with_checkpoint("dir = \"ckpt/orders\""));
  EXPECT_TRUE(c.checkpoint.enabled());
  EXPECT_EQ(c.checkpoint.dir, "ckpt/orders");  // relative: kept as written
  EXPECT_EQ(c.checkpoint.local_dir, "ckpt/orders/local");
  EXPECT_EQ(c.checkpoint.interval_ms, 1000);
  EXPECT_EQ(c.checkpoint.retain, 3);
  EXPECT_EQ(c.checkpoint.block_cache_mb, 64);
  EXPECT_EQ(c.checkpoint.write_buffer_mb, 32);
  EXPECT_TRUE(c.checkpoint.sync);
  EXPECT_EQ(c.checkpoint.line, 13);
  EXPECT_EQ(parsed(with_checkpoint("dir = \"/mnt/c/\"")).checkpoint.local_dir, "/mnt/c/local");
}

TEST(pipeline_config, reads_the_checkpoint_state_backend) {
  EXPECT_FALSE(parsed(with_checkpoint("dir = \"c\"")).checkpoint.state_in_rocksdb);
  EXPECT_FALSE(parsed(with_checkpoint("dir = \"c\"\nstate_backend = \"memory\""))
                   .checkpoint.state_in_rocksdb);
  EXPECT_TRUE(parsed(with_checkpoint("dir = \"c\"\nstate_backend = \"rocksdb\""))
                  .checkpoint.state_in_rocksdb);
  const auto r = parse_pipeline_config(with_checkpoint("dir = \"c\"\nstate_backend = \"disk\""));
  ASSERT_FALSE(r.config.has_value());
  EXPECT_NE(r.error.find(":15: checkpoint.state_backend"), std::string::npos) << r.error;
}

TEST(pipeline_config, a_checkpoint_table_without_dir_is_off_but_still_checked) {
  const auto c = parsed(with_checkpoint("interval = \"5s\""));
  EXPECT_FALSE(c.checkpoint.enabled());
  EXPECT_EQ(c.checkpoint.local_dir, "");
  EXPECT_EQ(c.checkpoint.interval_ms, 5000);
  EXPECT_EQ(parse_error(with_checkpoint("retain = 0")),
            "t.toml:14: checkpoint.retain: must be between 1 and 1000, got 0");
}

TEST(pipeline_config, reads_every_checkpoint_key) {
  const auto c = parsed(with_checkpoint(R"(dir = "/shared/ckpt"
interval = "200ms"
retain = 10
local_dir = "/var/lib/eddy/t"
block_cache_mb = 512
write_buffer_mb = 128
sync = false)"));
  EXPECT_EQ(c.checkpoint.dir, "/shared/ckpt");
  EXPECT_EQ(c.checkpoint.interval_ms, 200);
  EXPECT_EQ(c.checkpoint.retain, 10);
  EXPECT_EQ(c.checkpoint.local_dir, "/var/lib/eddy/t");
  EXPECT_EQ(c.checkpoint.block_cache_mb, 512);
  EXPECT_EQ(c.checkpoint.write_buffer_mb, 128);
  EXPECT_FALSE(c.checkpoint.sync);
}

TEST(pipeline_config, reads_the_checkpoint_interval_as_a_duration_or_milliseconds) {
  const std::pair<const char*, int64_t> cases[] = {
      {"\"10ms\"", 10}, {"\"1s\"", 1000}, {"\"90s\"", 90'000},    {"\"1h\"", 3'600'000},
      {"2500", 2500},   {"10", 10},       {"\"60m\"", 3'600'000},
  };
  for (const auto& [text, ms] : cases) {
    EXPECT_EQ(parsed(with_checkpoint(std::string("dir = \"c\"\ninterval = ") + text))
                  .checkpoint.interval_ms,
              ms)
        << text;
  }
}

TEST(pipeline_config, rejects_bad_checkpoint_values_naming_key_and_line) {
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\ninterval = \"5ms\"")),
            "t.toml:15: checkpoint.interval: must be between 10ms and 1h, got 5ms");
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\ninterval = \"61m\"")),
            "t.toml:15: checkpoint.interval: must be between 10ms and 1h, got 61m");
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\ninterval = 0")),
            "t.toml:15: checkpoint.interval: must be between 10ms and 1h, got 0s");
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\ninterval = \"1 s\"")),
            "t.toml:15: checkpoint.interval: expected a duration such as \"1m\" or \"500ms\", got "
            "\"1 s\"");
  EXPECT_EQ(parse_error(with_checkpoint("interval = -1")),
            "t.toml:14: checkpoint.interval: must not be negative, got -1");
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"\"")),
            "t.toml:14: checkpoint.dir: must not be empty");
  EXPECT_EQ(parse_error(with_checkpoint("dir = 3")),
            "t.toml:14: checkpoint.dir: expected a string, got integer");
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\nlocal_dir = \"\"")),
            "t.toml:15: checkpoint.local_dir: must not be empty");
  EXPECT_EQ(parse_error(with_checkpoint("retain = 1001")),
            "t.toml:14: checkpoint.retain: must be between 1 and 1000, got 1001");
  EXPECT_EQ(parse_error(with_checkpoint("retain = \"3\"")),
            "t.toml:14: checkpoint.retain: expected an integer, got string");
  EXPECT_EQ(parse_error(with_checkpoint("block_cache_mb = 0")),
            "t.toml:14: checkpoint.block_cache_mb: must be between 1 and 65536, got 0");
  EXPECT_EQ(parse_error(with_checkpoint("write_buffer_mb = 65537")),
            "t.toml:14: checkpoint.write_buffer_mb: must be between 1 and 65536, got 65537");
  EXPECT_EQ(parse_error(with_checkpoint("sync = \"no\"")),
            "t.toml:14: checkpoint.sync: expected a boolean (true or false), got string");
  EXPECT_EQ(parse_error("checkpoint = \"c\"\n" + std::string(minimal)),
            "t.toml:1: checkpoint: expected a table ([checkpoint]), got string");
}

TEST(pipeline_config, keeps_the_task_db_out_of_the_checkpoint_storage) {
  // The local directory is cleared at start: it must not hold or sit in checkpoint storage.
  for (const char* local :
       {"c", "c/", "./c", "c/sst", "c/epochs/", "c/x/../sst", "c/sst/db", "c/epochs/7", "."}) {
    EXPECT_EQ(
        parse_error(with_checkpoint("dir = \"c\"\nlocal_dir = \"" + std::string(local) + "\"")),
        "t.toml:15: checkpoint.local_dir: \"" + std::string(local) +
            "\" overlaps the checkpoint storage in checkpoint.dir \"c\" (the local directory is "
            "cleared at every start); use a directory of its own, e.g. \"c/local\"")
        << local;
  }
  for (const char* local : {"/", "/mnt", "/mnt/ckpt"}) {
    EXPECT_NE(parse_error(with_checkpoint("dir = \"/mnt/ckpt/p1\"\nlocal_dir = \"" +
                                          std::string(local) + "\""))
                  .find("overlaps the checkpoint storage"),
              std::string::npos)
        << local;
  }
  // Relative and absolute spellings of the same directory are compared as such.
  const std::string cwd = std::filesystem::current_path().string();
  EXPECT_NE(parse_error(with_checkpoint("dir = \"c\"\nlocal_dir = \"" + cwd + "/c\""))
                .find("overlaps the checkpoint storage"),
            std::string::npos);
  for (const char* local : {"c/state", "c/local", "c/sstx", "other", "/var/lib/eddy"}) {
    EXPECT_EQ(parsed(with_checkpoint("dir = \"c\"\nlocal_dir = \"" + std::string(local) + "\""))
                  .checkpoint.local_dir,
              local);
  }
}

TEST(pipeline_config, rejects_an_unknown_checkpoint_key_and_suggests_the_closest) {
  EXPECT_EQ(parse_error(with_checkpoint("dir = \"c\"\nintervall = \"1s\"")),
            "t.toml:15: unknown key 'checkpoint.intervall'; did you mean 'interval'?");
  EXPECT_EQ(parse_error(with_checkpoint("write_bufer_mb = 8")),
            "t.toml:14: unknown key 'checkpoint.write_bufer_mb'; did you mean 'write_buffer_mb'?");
  EXPECT_EQ(parse_error(with_checkpoint("path = \"c\"")),
            "t.toml:14: unknown key 'checkpoint.path' (known keys: dir, interval, retain, "
            "local_dir, block_cache_mb, write_buffer_mb, state_backend, sync)");
  EXPECT_EQ(parse_error(std::string(minimal) + "[checkpiont]\ndir = \"c\"\n"),
            "t.toml:13: unknown table [checkpiont]; did you mean 'checkpoint'?");
}

}  // namespace
}  // namespace eddy

namespace eddy {
namespace {

// ---- file sink: format and partition_by ----

TEST(pipeline_config, a_file_sink_writes_json_lines_unless_told_csv) {
  const auto jsonl = parsed(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\""));
  EXPECT_EQ(jsonl.sinks[1].format, file_format::jsonl);
  EXPECT_EQ(jsonl.sinks[1].partition_by, "");
  const auto csv =
      parsed(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nformat = \"csv\""));
  EXPECT_EQ(csv.sinks[1].format, file_format::csv);
  EXPECT_EQ(to_string(csv.sinks[1].format), "csv");
  EXPECT_EQ(parsed(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nformat = \"jsonl\""))
                .sinks[1]
                .format,
            file_format::jsonl);
}

TEST(pipeline_config, refuses_parquet_saying_why_and_what_to_use) {
  EXPECT_EQ(
      parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nformat = \"parquet\"")),
      "t.toml:16: sinks[1].format: \"parquet\" is not supported: writing Parquet needs "
      "Apache Arrow (libarrow/libparquet), which is not packaged in Debian 12 here; use "
      "\"jsonl\" or \"csv\"");
}

TEST(pipeline_config, an_unknown_file_format_lists_the_allowed_ones) {
  EXPECT_EQ(
      parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nformat = \"xml\"")),
      "t.toml:16: sinks[1].format: expected \"jsonl\" or \"csv\", got \"xml\"");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\nformat = 1")),
            "t.toml:16: sinks[1].format: expected \"jsonl\" or \"csv\", got integer");
  EXPECT_EQ(parse_error(with_lines(12, "format = \"csv\"")),
            "t.toml:13: sinks[0].format: not an option of console sinks (they take: type, "
            "truncate, num_rows)");
}

/// `windowed` (sink at line 14-15) with a file sink instead of the console one.
std::string windowed_file_sink(std::string_view options) {
  return windowed_replaced("type = \"console\"\n",
                           "type = \"file\"\npath = \"o\"\n" + std::string(options) + "\n");
}

TEST(pipeline_config, partition_by_takes_a_timestamp_output_column) {
  const auto windowed_cfg = parsed(windowed_file_sink("partition_by = \"window_start\""));
  EXPECT_EQ(windowed_cfg.sinks[0].partition_by, "window_start");
  EXPECT_EQ(parsed(windowed_file_sink("partition_by = \"window_end\"")).sinks[0].partition_by,
            "window_end");
  // A min/max/first/last of a timestamp field is a timestamp output column too.
  const auto latest =
      parsed(inserted(windowed_file_sink("partition_by = \"latest\""), 20,
                      "[[aggregates]]\nalias = \"latest\"\nfunction = \"max\"\nfield = \"ts\""));
  EXPECT_EQ(latest.sinks[0].partition_by, "latest");
  // Without aggregates: a selected timestamp field.
  const std::string rows =
      with_lines(12,
                 "[[fields]]\nname = \"ts\"\ntype = \"timestamp\"\n[[sinks]]\ntype = \"file\"\n"
                 "path = \"o\"\nformat = \"csv\"\npartition_by = \"ts\"");
  EXPECT_EQ(parsed(rows).sinks[1].partition_by, "ts");
}

TEST(pipeline_config, rejects_a_partition_by_that_is_no_timestamp_output_column) {
  // Line 17: the key's own line.
  EXPECT_EQ(parse_error(windowed_file_sink("partition_by = \"ts\"")),
            "t.toml:17: sinks[0].partition_by: 'ts' is not an output column (they are: "
            "window_start (timestamp), window_end (timestamp), n (int))");
  EXPECT_EQ(parse_error(windowed_file_sink("partition_by = \"n\"")),
            "t.toml:17: sinks[0].partition_by: 'n' is int, not timestamp: sub-folders are named "
            "by a timestamp's date (output columns: window_start (timestamp), window_end "
            "(timestamp), n (int))");
  EXPECT_EQ(parse_error(windowed_file_sink("partition_by = \"\"")),
            "t.toml:17: sinks[0].partition_by: must not be empty");
  // A global window has no window bounds.
  const std::string global =
      replaced_in(windowed_file_sink("partition_by = \"window_start\""),
                  "[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"ts\"\n", "");
  EXPECT_EQ(parse_error(global),
            "t.toml:17: sinks[0].partition_by: 'window_start' is not an output column (they "
            "are: n (int))");
  // A declared timestamp field left out by select.
  const std::string unselected =
      with_lines(12,
                 "[[fields]]\nname = \"ts\"\ntype = \"timestamp\"\n[query]\nselect = [\"id\"]\n"
                 "[[sinks]]\ntype = \"file\"\npath = \"o\"\npartition_by = \"ts\"");
  EXPECT_EQ(parse_error(unselected),
            "t.toml:21: sinks[1].partition_by: 'ts' is not an output column (they are: id "
            "(int))");
  EXPECT_EQ(parse_error(with_lines(12, "partition_by = \"id\"")),
            "t.toml:13: sinks[0].partition_by: not an option of console sinks (they take: type, "
            "truncate, num_rows)");
}

TEST(pipeline_config, output_columns_are_the_projection_or_window_group_and_aggregates) {
  const auto rows = parsed(with_lines(12, "[query]\nselect = [\"id\"]"));
  ASSERT_EQ(output_columns(rows).size(), 1u);
  EXPECT_EQ(output_columns(rows)[0].name, "id");
  EXPECT_EQ(output_columns(rows)[0].type, field_type::int64);
  const auto agg =
      parsed(windowed_with(18,
                           "[aggregate]\ngroup_by = [\"kind\"]\n[[aggregates]]\nalias = \"total\"\n"
                           "function = \"sum\"\nfield = \"amount\""));
  std::vector<std::string> names;
  std::vector<field_type> types;
  for (const auto& c : output_columns(agg)) {
    names.push_back(c.name);
    types.push_back(c.type);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"window_start", "window_end", "kind", "n", "total"}));
  EXPECT_EQ(types,
            (std::vector<field_type>{field_type::timestamp, field_type::timestamp,
                                     field_type::string, field_type::int64, field_type::float64}));
}

}  // namespace
}  // namespace eddy
