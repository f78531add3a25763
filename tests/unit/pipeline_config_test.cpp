#include "worker/pipeline_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "worker/filter_expr.hpp"

namespace eddy {
namespace {

std::string example_path() {
  return (std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "deploy" / "pipelines" /
          "ncr_ride_bookings.toml")
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

/// `minimal` with `extra` inserted after line `after_line` (1-based).
std::string with_lines(std::size_t after_line, std::string_view extra) {
  std::string text(minimal);
  std::size_t pos = 0;
  for (std::size_t i = 0; i < after_line; ++i) pos = text.find('\n', pos) + 1;
  text.insert(pos, std::string(extra) + "\n");
  return text;
}

/// `minimal` with the first `from` replaced by `to`.
std::string replaced(std::string_view from, std::string_view to) {
  std::string text(minimal);
  text.replace(text.find(from), from.size(), to);
  return text;
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
  EXPECT_EQ(c.source.bootstrap_servers, "");
  EXPECT_EQ(c.source.starting_offsets, "earliest");
  EXPECT_EQ(c.source.max_records_per_poll, 10000);
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
            "t.toml:14: sinks[1].type: expected \"console\", \"file\" or \"kafka\", got \"s3\"");
}

TEST(pipeline_config, rejects_out_of_range_numbers) {
  EXPECT_EQ(parse_error(with_lines(2, "trigger_interval_ms = 5")),
            "t.toml:3: pipeline.trigger_interval_ms: must be between 10 and 3600000, got 5");
  EXPECT_EQ(parse_error(with_lines(5, "max_records_per_poll = 0")),
            "t.toml:6: source.max_records_per_poll: must be between 1 and 1000000, got 0");
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
            "t.toml:13: sinks[1].type: required key is missing (\"console\", \"file\" or "
            "\"kafka\")");
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
            "t.toml:2: pipeline.name: \"a b\" may only use letters, digits, '_', '-' and '.'");
  EXPECT_EQ(parse_error(replaced("\"t\"", "\"\"")), "t.toml:2: pipeline.name: must not be empty");
}

TEST(pipeline_config, rejects_an_option_of_another_sink_type) {
  EXPECT_EQ(
      parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npath = \"o\"\ntruncate = true")),
      "t.toml:16: sinks[1].truncate: not an option of file sinks (they take: type, path)");
  EXPECT_EQ(parse_error(with_lines(12, "pth = \"x\"")),
            "t.toml:13: unknown key 'sinks[0].pth' (known keys: type, truncate, num_rows)");
  EXPECT_EQ(parse_error(with_lines(12, "[[sinks]]\ntype = \"file\"\npth = \"o\"")),
            "t.toml:15: unknown key 'sinks[1].pth'; did you mean 'path'?");
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

}  // namespace
}  // namespace eddy
