#include "worker/debezium_decoder.hpp"

#include <gtest/gtest.h>

#include <string>

namespace eddy {
namespace {

field_config field(std::string name, std::string column, field_type t,
                   time_unit unit = time_unit::auto_detect) {
  field_config f;
  f.name = std::move(name);
  f.column = std::move(column);
  f.type = t;
  f.unit = unit;
  return f;
}

// The seed job's columns.
pipeline_config ride_config(message_format fmt = message_format::auto_detect) {
  pipeline_config cfg;
  cfg.source.topic = "business_postgres.public.business_ncr_ride_bookings";
  cfg.source.format = fmt;
  cfg.fields = {
      field("id", "id", field_type::int64),
      field("op", "$op", field_type::string),
      field("created_at_ts", "created_at", field_type::timestamp),
      field("booking_value", "ncr_ride_bookings.csv/booking+value", field_type::float64),
      field("ride_distance", "ncr_ride_bookings.csv/ride+distance", field_type::float64),
      field("booking_status", "ncr_ride_bookings.csv/booking+status", field_type::string),
  };
  cfg.fields[0].required = true;
  return cfg;
}

struct decode_fixture : ::testing::Test {
  pipeline_config cfg = ride_config();
  decoded_record out;
  std::string reason;

  decode_status decode(std::string_view value, const pipeline_config* c = nullptr,
                       bool before = false) {
    record_decoder d(c ? *c : cfg, before);
    raw_record r;
    r.topic = "t";
    r.partition = 3;
    r.offset = 42;
    r.key = "{\"id\": 1}";
    r.value = value;
    return d.decode(r, out, reason);
  }
  std::string dead_reason(std::string_view value) {
    EXPECT_EQ(decode(value), decode_status::dead_letter) << value.substr(0, 200);
    return reason;
  }
};

TEST_F(decode_fixture, decodes_the_seed_example_message) {
  const char* msg =
      R"({"id": 75204, "ncr_ride_bookings.csv/booking+value": "b'1138.0'", )"
      R"("ncr_ride_bookings.csv/ride+distance": "b'45.75'", "created_at": 1762514972953131, "__op": "r"})";
  ASSERT_EQ(decode(msg), decode_status::row) << reason;
  EXPECT_EQ(out.op, cdc_op::read);
  EXPECT_EQ(std::get<int64_t>(out.image[0]), 75204);
  EXPECT_EQ(std::get<std::string>(out.image[1]), "r");
  // 1762514972953131 µs is 2025-11-07 11:29:32.953131 UTC.
  EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, 1762514972953131);
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 1138.0);
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[4]), 45.75);
  EXPECT_TRUE(is_null(out.image[5]));  // absent column -> null
}

TEST_F(decode_fixture, strips_both_python_bytes_wrappers_and_casts_numeric_strings) {
  EXPECT_EQ(strip_bytes_wrapper("b'Completed'"), "Completed");
  EXPECT_EQ(strip_bytes_wrapper("b\"it's\""), "it's");
  EXPECT_EQ(strip_bytes_wrapper("bob"), "bob");
  EXPECT_EQ(strip_bytes_wrapper("b'"), "b'");
  ASSERT_EQ(decode(R"({"id": "b'7'", "ncr_ride_bookings.csv/booking+value": "b\"12.5\"",
                     "ncr_ride_bookings.csv/booking+status": "b' Completed '"})"),
            decode_status::row)
      << reason;
  EXPECT_EQ(std::get<int64_t>(out.image[0]), 7);
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 12.5);
  EXPECT_EQ(std::get<std::string>(out.image[5]), "Completed");
}

TEST_F(decode_fixture, python_none_and_empty_numeric_strings_are_null) {
  ASSERT_EQ(decode(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "b'None'",
                     "ncr_ride_bookings.csv/ride+distance": ""})"),
            decode_status::row)
      << reason;
  EXPECT_TRUE(is_null(out.image[3]));
  EXPECT_TRUE(is_null(out.image[4]));
}

TEST_F(decode_fixture, unwrapped_deleted_flag_means_delete) {
  ASSERT_EQ(decode(R"({"id": 1, "__op": "d", "__deleted": "true"})"), decode_status::row);
  EXPECT_EQ(out.op, cdc_op::del);
  ASSERT_EQ(decode(R"({"id": 1, "__deleted": "true"})"), decode_status::row);
  EXPECT_EQ(out.op, cdc_op::del);
  ASSERT_EQ(decode(R"({"id": 1, "__op": "u", "__source_ts_ms": 1700000000000})"),
            decode_status::row);
  EXPECT_EQ(out.op, cdc_op::update);
  EXPECT_EQ(out.source_ts_ms, 1700000000000);
}

TEST_F(decode_fixture, tombstones_are_skipped_not_dead_lettered) {
  record_decoder d(cfg);
  raw_record r;
  r.value_is_null = true;
  EXPECT_EQ(d.decode(r, out, reason), decode_status::skipped);
  EXPECT_EQ(reason, "tombstone");
  EXPECT_EQ(decode(R"({"schema": {"type": "struct"}, "payload": null})"), decode_status::skipped);
}

TEST_F(decode_fixture, envelope_create_update_delete_use_the_right_image) {
  ASSERT_EQ(decode(R"({"before": null, "after": {"id": 5, "ncr_ride_bookings.csv/booking+status":
      "Incomplete"}, "source": {"ts_ms": 1762514973000}, "op": "c", "ts_ms": 1762514973100})"),
            decode_status::row)
      << reason;
  EXPECT_EQ(out.op, cdc_op::create);
  EXPECT_EQ(out.source_ts_ms, 1762514973000);
  EXPECT_EQ(std::get<std::string>(out.image[5]), "Incomplete");
  EXPECT_EQ(std::get<std::string>(out.image[1]), "c");

  const char* update =
      R"({"before": {"id": 5, "ncr_ride_bookings.csv/booking+status": "Incomplete"},
      "after": {"id": 5, "ncr_ride_bookings.csv/booking+status": "Completed"},
      "source": {"ts_ms": 1}, "op": "u"})";
  ASSERT_EQ(decode(update, nullptr, true), decode_status::row) << reason;
  EXPECT_EQ(out.op, cdc_op::update);
  EXPECT_EQ(std::get<std::string>(out.image[5]), "Completed");
  ASSERT_TRUE(out.before.has_value());
  EXPECT_EQ(std::get<std::string>((*out.before)[5]), "Incomplete");

  ASSERT_EQ(decode(R"({"before": {"id": 5, "ncr_ride_bookings.csv/booking+status": "Completed"},
      "after": null, "op": "d"})"),
            decode_status::row)
      << reason;
  EXPECT_EQ(out.op, cdc_op::del);
  EXPECT_EQ(std::get<int64_t>(out.image[0]), 5);
  EXPECT_EQ(std::get<std::string>(out.image[1]), "d");
}

TEST_F(decode_fixture, envelope_truncate_is_skipped_and_unknown_op_dead_lettered) {
  EXPECT_EQ(decode(R"({"before": null, "after": null, "op": "t"})"), decode_status::skipped);
  EXPECT_NE(dead_reason(R"({"before": null, "after": {"id": 1}, "op": "x"})").find("unknown op"),
            std::string::npos);
  EXPECT_NE(dead_reason(R"({"before": null, "after": null, "op": "d"})").find("before image"),
            std::string::npos);
}

TEST_F(decode_fixture, schema_wrapper_decimal_and_time_logical_types) {
  pipeline_config c = ride_config();
  c.fields.push_back(field("ride_date", "date", field_type::string));
  c.fields.push_back(field("ride_day", "date", field_type::timestamp));
  c.fields.push_back(field("ride_time", "time", field_type::string));
  c.fields.push_back(field("zoned", "zoned", field_type::timestamp));
  c.fields.push_back(field("ms", "ms", field_type::timestamp));
  c.fields.push_back(field("ns", "ns", field_type::timestamp));
  c.fields.push_back(field("vsd", "vsd", field_type::float64));
  const char* msg = R"({"schema": {"type": "struct", "fields": [
      {"type": "struct", "field": "before", "fields": []},
      {"type": "struct", "field": "after", "fields": [
        {"type": "int64", "optional": false, "field": "id"},
        {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2"}, "field": "ncr_ride_bookings.csv/booking+value"},
        {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2"}, "field": "ncr_ride_bookings.csv/ride+distance"},
        {"type": "int64", "name": "io.debezium.time.MicroTimestamp", "field": "created_at"},
        {"type": "int32", "name": "io.debezium.time.Date", "field": "date"},
        {"type": "int64", "name": "io.debezium.time.MicroTime", "field": "time"},
        {"type": "string", "name": "io.debezium.time.ZonedTimestamp", "field": "zoned"},
        {"type": "int64", "name": "io.debezium.time.Timestamp", "field": "ms"},
        {"type": "int64", "name": "io.debezium.time.NanoTimestamp", "field": "ns"},
        {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "field": "vsd"}
      ]},
      {"type": "string", "field": "op"}]},
    "payload": {"before": null, "after": {"id": 75204,
      "ncr_ride_bookings.csv/booking+value": "AbyI", "ncr_ride_bookings.csv/ride+distance": "//8=",
      "created_at": 1762514972953131, "date": 19805, "time": 45000500000,
      "zoned": "2025-11-07T11:29:32.953131Z", "ms": 1762514972953, "ns": 1762514972953131999,
      "vsd": {"scale": 3, "value": "MDk="}},
      "source": {"ts_ms": 1762514973000}, "op": "r", "ts_ms": 1762514973001}})";
  ASSERT_EQ(decode(msg, &c), decode_status::row) << reason;
  EXPECT_EQ(std::get<int64_t>(out.image[0]), 75204);
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 1138.00);  // 0x01BC88 = 113800, scale 2
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[4]), -0.01);    // 0xFFFF = -1, scale 2
  EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, 1762514972953131);
  EXPECT_EQ(std::get<std::string>(out.image[6]), "2024-03-23");
  EXPECT_EQ(std::get<timestamp>(out.image[7]).micros, 19805LL * 86400 * 1000000);
  EXPECT_EQ(std::get<std::string>(out.image[8]), "12:30:00.5");
  EXPECT_EQ(std::get<timestamp>(out.image[9]).micros, 1762514972953131);
  EXPECT_EQ(std::get<timestamp>(out.image[10]).micros, 1762514972953000);
  EXPECT_EQ(std::get<timestamp>(out.image[11]).micros, 1762514972953131);
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[12]), 12.345);  // "MDk=" = 0x3039 = 12345
}

TEST_F(decode_fixture, explicit_units_override_the_default_micros) {
  pipeline_config c = ride_config();
  c.fields[2].unit = time_unit::millis;
  ASSERT_EQ(decode(R"({"id": 1, "created_at": 1762514972953})", &c), decode_status::row);
  EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, 1762514972953000);
  c.fields[2].unit = time_unit::seconds;
  ASSERT_EQ(decode(R"({"id": 1, "created_at": "b'1762514972'"})", &c), decode_status::row);
  EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, 1762514972000000);
  c.fields[2].unit = time_unit::iso;
  ASSERT_EQ(decode(R"({"id": 1, "created_at": "2025-11-07 11:29:32.5+01:00"})", &c),
            decode_status::row)
      << reason;
  EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, 1762511372500000);
}

TEST_F(decode_fixture, decimal_without_schema_uses_the_declared_scale) {
  pipeline_config c = ride_config();
  c.fields[3].scale = 2;
  ASSERT_EQ(decode(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "AbyI"})", &c),
            decode_status::row)
      << reason;
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 1138.0);
}

TEST_F(decode_fixture, pseudo_columns_expose_kafka_metadata) {
  pipeline_config c = ride_config();
  c.fields.push_back(field("p", "$partition", field_type::int64));
  c.fields.push_back(field("o", "$offset", field_type::int64));
  c.fields.push_back(field("k", "$key", field_type::string));
  c.fields.push_back(field("tp", "$topic", field_type::string));
  ASSERT_EQ(decode(R"({"id": 1})", &c), decode_status::row) << reason;
  EXPECT_EQ(std::get<int64_t>(out.image[6]), 3);
  EXPECT_EQ(std::get<int64_t>(out.image[7]), 42);
  EXPECT_EQ(std::get<std::string>(out.image[8]), "{\"id\": 1}");
  EXPECT_EQ(std::get<std::string>(out.image[9]), "t");
}

TEST_F(decode_fixture, fixed_format_rejects_other_shapes) {
  pipeline_config c = ride_config(message_format::envelope);
  EXPECT_EQ(decode(R"({"id": 1})", &c), decode_status::dead_letter);
  EXPECT_NE(reason.find("envelope"), std::string::npos);
  c.source.format = message_format::unwrapped;
  EXPECT_EQ(decode(R"({"before": null, "after": {"id": 1}, "op": "c"})", &c),
            decode_status::dead_letter);
  c.source.format = message_format::schema;
  EXPECT_EQ(decode(R"({"id": 1})", &c), decode_status::dead_letter);
}

// ---- malformed input: each kind gets a reason, none crashes --------------------------------

TEST_F(decode_fixture, truncated_json_is_dead_lettered_with_position) {
  auto r = dead_reason(R"({"id": 75204, "ncr_ride_bookings.csv/booking+val)");
  EXPECT_NE(r.find("invalid JSON at byte"), std::string::npos) << r;
}

TEST_F(decode_fixture, wrong_types_name_the_column) {
  auto r = dead_reason(R"({"id": "abc"})");
  EXPECT_NE(r.find("column 'id'"), std::string::npos) << r;
  EXPECT_NE(r.find("as int"), std::string::npos) << r;
  r = dead_reason(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "b'12x'"})");
  EXPECT_NE(r.find("booking+value"), std::string::npos) << r;
  r = dead_reason(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": [1, 2]})");
  EXPECT_NE(r.find("got array"), std::string::npos) << r;
  r = dead_reason(R"({"id": 1.5})");
  EXPECT_NE(r.find("as int"), std::string::npos) << r;
}

TEST_F(decode_fixture, missing_required_field_is_dead_lettered) {
  auto r = dead_reason(R"({"ncr_ride_bookings.csv/booking+value": "b'1.0'"})");
  EXPECT_NE(r.find("missing required field 'id'"), std::string::npos) << r;
  r = dead_reason(R"({"id": null})");
  EXPECT_NE(r.find("missing required field 'id'"), std::string::npos) << r;
}

TEST_F(decode_fixture, nesting_100k_deep_is_dead_lettered_not_a_stack_overflow) {
  std::string deep(100000, '[');
  auto r = dead_reason(deep);
  EXPECT_NE(r.find("nesting deeper"), std::string::npos) << r;
  std::string deep_obj = "{\"id\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  r = dead_reason(deep_obj);
  EXPECT_NE(r.find("nesting deeper"), std::string::npos) << r;
}

TEST_F(decode_fixture, ten_megabyte_message_is_dead_lettered_as_too_large) {
  std::string big = R"({"id": 1, "pad": ")" + std::string(10 << 20, 'x') + "\"}";
  auto r = dead_reason(big);
  EXPECT_NE(r.find("message too large"), std::string::npos) << r;
  EXPECT_NE(r.find("max_message_bytes"), std::string::npos) << r;
  pipeline_config c = ride_config();
  c.source.max_message_bytes = 16 << 20;  // allowed when configured
  EXPECT_EQ(decode(big, &c), decode_status::row) << reason;
}

TEST_F(decode_fixture, invalid_utf8_is_dead_lettered) {
  std::string bad = "{\"id\": 1, \"ncr_ride_bookings.csv/booking+status\": \"\xff\xfe\"}";
  auto r = dead_reason(bad);
  EXPECT_NE(r.find("invalid JSON"), std::string::npos) << r;
}

TEST_F(decode_fixture, empty_and_non_object_values_are_dead_lettered) {
  EXPECT_EQ(dead_reason(""), "empty message value");
  EXPECT_NE(dead_reason("[1,2,3]").find("expected a JSON object, got array"), std::string::npos);
  EXPECT_NE(dead_reason("42").find("got integer"), std::string::npos);
  EXPECT_NE(dead_reason(R"({"id": 1} trailing)").find("unexpected data"), std::string::npos);
  EXPECT_NE(dead_reason("   ").find("invalid JSON"), std::string::npos);
}

TEST_F(decode_fixture, decoder_is_reusable_after_errors) {
  record_decoder d(cfg);
  raw_record r;
  for (int i = 0; i < 3; ++i) {
    r.value = "{\"id\": ";
    EXPECT_EQ(d.decode(r, out, reason), decode_status::dead_letter);
    r.value = R"({"id": 9})";
    ASSERT_EQ(d.decode(r, out, reason), decode_status::row) << reason;
    EXPECT_EQ(std::get<int64_t>(out.image[0]), 9);
  }
}

TEST(base64, decodes_standard_and_url_alphabets_and_rejects_garbage) {
  EXPECT_EQ(*decode_base64("AbyI"), std::string("\x01\xbc\x88", 3));
  EXPECT_EQ(*decode_base64("MDk="), std::string("09"));
  EXPECT_EQ(*decode_base64("MDk"), std::string("09"));
  EXPECT_FALSE(decode_base64("M").has_value());
  EXPECT_FALSE(decode_base64("ab$c").has_value());
}

TEST(decimal, decodes_negative_and_wide_values) {
  EXPECT_DOUBLE_EQ(decimal_from_bytes(std::string("\xff\xff", 2), 2), -0.01);
  EXPECT_DOUBLE_EQ(decimal_from_bytes(std::string("\x80", 1), 0), -128);
  EXPECT_DOUBLE_EQ(decimal_from_bytes(std::string("\x00\x80", 2), 0), 128);
  EXPECT_DOUBLE_EQ(decimal_from_bytes(std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9), 0),
                   18446744073709551616.0);
}

}  // namespace
}  // namespace eddy
