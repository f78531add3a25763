#include "worker/decode/debezium_decoder.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>
#include <vector>

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
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\xff\xff", 2), 2), -0.01);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x80", 1), 0), -128);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x00\x80", 2), 0), 128);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9), 0),
                   18446744073709551616.0);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x30\x39", 2), -3), 12345000.0);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x01", 1), 300), 1e-300);
  EXPECT_DOUBLE_EQ(*decimal_from_bytes(std::string("\x01", 1), -308), 1e308);
  EXPECT_EQ(*decimal_from_bytes(std::string(), 400), 0.0);
}

TEST(decimal, rejects_what_a_double_cannot_hold_and_out_of_range_scales) {
  const std::string one("\x01", 1);
  EXPECT_FALSE(decimal_from_bytes(one, 400).has_value());   // 1e-400 underflows to 0
  EXPECT_FALSE(decimal_from_bytes(one, -309).has_value());  // 1e309 overflows
  EXPECT_FALSE(decimal_from_bytes(one, max_decimal_scale + 1).has_value());
  EXPECT_FALSE(decimal_from_bytes(one, -max_decimal_scale - 1).has_value());
  EXPECT_FALSE(decimal_from_bytes(one, 2147483647).has_value());
  EXPECT_FALSE(decimal_from_bytes(one, std::numeric_limits<int64_t>::min()).has_value());
  EXPECT_FALSE(decimal_from_bytes(std::string(17, '\x01'), 0).has_value());
  EXPECT_TRUE(decimal_from_bytes(std::string(16, '\x7f'), 0).has_value());
}

TEST(decimal, converts_to_int64_exactly_and_rejects_what_does_not_fit) {
  EXPECT_EQ(*decimal_to_int64(std::string("\x30\x39", 2), 2), 123);   // 123.45 truncated
  EXPECT_EQ(*decimal_to_int64(std::string("\xcf\xc7", 2), 2), -123);  // -123.45 truncated
  EXPECT_EQ(*decimal_to_int64(std::string("\x30\x39", 2), -2), 1234500);
  EXPECT_EQ(*decimal_to_int64(std::string("\x30\x39", 2), 400), 0);
  // 2^63 - 1 and -2^63 fit; one more does not.
  EXPECT_EQ(*decimal_to_int64(std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8), 0),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*decimal_to_int64(std::string("\x80\x00\x00\x00\x00\x00\x00\x00", 8), 0),
            std::numeric_limits<int64_t>::min());
  EXPECT_FALSE(
      decimal_to_int64(std::string("\x00\x80\x00\x00\x00\x00\x00\x00\x00", 9), 0).has_value());
  EXPECT_FALSE(decimal_to_int64(std::string("\x01", 1), -19).has_value());  // 10^19
  EXPECT_FALSE(decimal_to_int64(std::string("\x01", 1), -39).has_value());
  EXPECT_FALSE(decimal_to_int64(std::string(16, '\x7f'), 0).has_value());
  EXPECT_FALSE(decimal_to_int64(std::string("\x01", 1), 401).has_value());
}

// ---- issue 10: hostile and out-of-range values ------------------------------------------

// A row whose only wide column is a long string, and a VariableScaleDecimal (PostgreSQL NUMERIC
// without precision), which the streaming decoder hands to the DOM decoder.
std::string large_fallback_message(size_t string_bytes) {
  return R"({"id": 1, "ncr_ride_bookings.csv/booking+status": ")" + std::string(string_bytes, 'x') +
         R"(", "ncr_ride_bookings.csv/booking+value": {"scale": 2, "value": "AQ=="}})";
}

TEST_F(decode_fixture, many_large_messages_on_the_dom_path_decode_in_bounded_memory) {
  // Each message overflows the decoder's 64 KiB arena. A reused monotonic_resource doubled its
  // next block with each one and asked for 32 GiB by about the 30th (std::bad_alloc).
  const std::string msg = large_fallback_message(100'000);
  record_decoder d(cfg);
  raw_record r;
  r.value = msg;
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(d.decode(r, out, reason), decode_status::row) << "message " << i << ": " << reason;
    EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 0.01);
    EXPECT_EQ(std::get<std::string>(out.image[5]).size(), 100'000u);
  }
}

// A schema message whose booking_value column is a Decimal with the given scale parameter.
std::string decimal_schema_message(std::string_view scale_json, std::string_view value_b64) {
  return std::string(R"({"schema": {"type": "struct", "fields": [
      {"type": "int64", "field": "id"},
      {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
       "parameters": {"scale": )") +
         std::string(scale_json) + R"(}, "field": "ncr_ride_bookings.csv/booking+value"}]},
    "payload": {"id": 1, "ncr_ride_bookings.csv/booking+value": ")" +
         std::string(value_b64) + R"("}})";
}

TEST_F(decode_fixture, a_hostile_decimal_scale_is_dead_lettered_in_microseconds) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {decimal_schema_message("\"2147483647\"", "AQ=="), "Decimal scale 2147483647 out of range"},
      {decimal_schema_message("\"-2147483648\"", "AQ=="), "Decimal scale -2147483648 out of range"},
      {decimal_schema_message("1762514972953131", "AQ=="),
       "Decimal scale 1762514972953131 out of range"},
      // Would have been static_cast<int> to 2 (2^32 + 2): a hostile scale passing as a small one.
      {decimal_schema_message("\"4294967298\"", "AQ=="), "Decimal scale 4294967298 out of range"},
      {decimal_schema_message("\"99999999999999999999\"", "AQ=="),
       "Decimal scale is not an integer"},
      {decimal_schema_message("1e300", "AQ=="), "Decimal scale is not an integer"},
      {R"({"id": 1, "ncr_ride_bookings.csv/booking+value": {"scale": 1762514972953131, "value": "AQ=="}})",
       "Decimal scale 1762514972953131 out of range"},
      {R"({"id": 1, "ncr_ride_bookings.csv/booking+value": {"scale": 4294967298, "value": "AQ=="}})",
       "Decimal scale 4294967298 out of range"},
      {R"({"id": 1, "ncr_ride_bookings.csv/booking+value": {"scale": 2.5, "value": "AQ=="}})",
       "Decimal scale is not an integer"},
  };
  for (const auto& [msg, want] : cases) {
    const auto start = std::chrono::steady_clock::now();
    const std::string why = dead_reason(msg);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_NE(why.find("field 'booking_value'"), std::string::npos) << why;
    EXPECT_NE(why.find(want), std::string::npos) << why;
    // Was 3-9 s of CPU each (Release); the bound leaves room for sanitizer builds on a busy box.
    EXPECT_LT(took, std::chrono::milliseconds(500)) << msg;
  }
  // In range, both ways, and the schema's scale as a number.
  ASSERT_EQ(decode(decimal_schema_message("\"-3\"", "MDk=")), decode_status::row) << reason;
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 12345000.0);
  ASSERT_EQ(decode(decimal_schema_message("30", "AQ==")), decode_status::row) << reason;
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 1e-30);
  // Representable scale, unrepresentable value: 1e-400 is not 0.
  EXPECT_NE(dead_reason(decimal_schema_message("\"400\"", "AQ==")).find("out of range for double"),
            std::string::npos);
}

TEST_F(decode_fixture, a_decimal_outside_int64_for_an_int_field_is_dead_lettered) {
  pipeline_config c = ride_config();
  c.fields.push_back(field("big", "big", field_type::int64));
  // 2^63 as a Decimal (9 bytes) and as a VariableScaleDecimal; 10^19 from a negative scale.
  const std::string two_63 = "AIAAAAAAAAAA";  // 00 80 00 00 00 00 00 00 00
  for (const std::string& msg :
       {R"({"schema": {"type": "struct", "fields": [
            {"type": "int64", "field": "id"},
            {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
             "parameters": {"scale": "0"}, "field": "big"}]},
          "payload": {"id": 1, "big": ")" +
            two_63 + R"("}})",
        R"({"id": 1, "big": {"scale": 0, "value": ")" + two_63 + R"("}})",
        std::string(R"({"id": 1, "big": {"scale": -19, "value": "AQ=="}})")}) {
    ASSERT_EQ(decode(msg, &c), decode_status::dead_letter) << msg;
    EXPECT_NE(reason.find("field 'big'"), std::string::npos) << reason;
    EXPECT_NE(reason.find("out of range for int"), std::string::npos) << reason;
  }
  // The required id, from a VariableScaleDecimal: was -9223372036854775808.
  EXPECT_NE(dead_reason(R"({"id": {"scale": 0, "value": "AIAAAAAAAAAA"}})").find("field 'id'"),
            std::string::npos);
  ASSERT_EQ(decode(R"({"id": 1, "big": {"scale": 0, "value": "f/////////8="}})", &c),
            decode_status::row)
      << reason;
  EXPECT_EQ(std::get<int64_t>(out.image[6]), std::numeric_limits<int64_t>::max());
}

TEST_F(decode_fixture, non_finite_numbers_are_dead_lettered_never_read_as_doubles) {
  for (const char* text : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "Infinity", "1e400"}) {
    const std::string msg =
        std::string(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "b')") + text + R"('"})";
    const std::string why = dead_reason(msg);
    EXPECT_NE(why.find("field 'booking_value'"), std::string::npos) << why;
    EXPECT_NE(why.find("as double"), std::string::npos) << why;
  }
  // JSON numbers that overflow a double, on every field type and on both decode paths.
  pipeline_config c = ride_config();
  c.fields.push_back(field("as_text", "big", field_type::string));
  for (const char* msg : {R"({"id": 1, "ncr_ride_bookings.csv/booking+value": 1e400})",
                          R"({"id": 1, "ncr_ride_bookings.csv/booking+value": -1e400, "id": 1})",
                          R"({"id": 1, "big": 1e400})"}) {
    ASSERT_EQ(decode(msg, &c), decode_status::dead_letter) << msg;
    EXPECT_NE(reason.find("number out of range for a double"), std::string::npos) << reason;
  }
  // Finite values still pass, including the largest.
  ASSERT_EQ(decode(R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "b'1.7e308'"})"),
            decode_status::row)
      << reason;
  EXPECT_DOUBLE_EQ(std::get<double>(out.image[3]), 1.7e308);
}

TEST_F(decode_fixture, dates_and_times_beyond_a_timestamp_on_string_fields_are_dead_lettered) {
  pipeline_config c = ride_config();
  c.fields.push_back(field("day", "day", field_type::string));
  c.fields.push_back(field("tod", "tod", field_type::string));
  auto msg = [](std::string_view day, std::string_view tod) {
    return std::string(R"({"schema": {"type": "struct", "fields": [
        {"type": "int64", "field": "id"},
        {"type": "int32", "name": "io.debezium.time.Date", "field": "day"},
        {"type": "int64", "name": "io.debezium.time.Time", "field": "tod"}]},
      "payload": {"id": 1, "day": )") +
           std::string(day) + R"(, "tod": )" + std::string(tod) + "}}";
  };
  ASSERT_EQ(decode(msg("9223372036854775807", "0"), &c), decode_status::dead_letter);
  EXPECT_NE(reason.find("Date 9223372036854775807 days out of range"), std::string::npos) << reason;
  ASSERT_EQ(decode(msg("-9223372036854775808", "0"), &c), decode_status::dead_letter);
  ASSERT_EQ(decode(msg("0", "9223372036854775807"), &c), decode_status::dead_letter);
  EXPECT_NE(reason.find("time 9223372036854775807 out of range"), std::string::npos) << reason;
  ASSERT_EQ(decode(msg("106751991", "45000500"), &c), decode_status::row) << reason;
  EXPECT_EQ(std::get<std::string>(out.image[6]), "294247-01-10");
  EXPECT_EQ(std::get<std::string>(out.image[7]), "12:30:00.5");
}

TEST_F(decode_fixture, a_source_timestamp_that_is_no_integer_is_dead_lettered) {
  pipeline_config c = ride_config();
  c.fields.push_back(field("src", "$source_ts", field_type::timestamp));
  for (const char* msg : {
           R"({"id": 1, "__source_ts_ms": 1e300})", R"({"id": 1, "__source_ts_ms": 1.5})",
           R"({"id": 1, "__source_ts_ms": 18446744073709551615})",
           R"({"id": 1, "__source_ts_ms": 1e300, "id": 1})",  // the DOM path
       }) {
    ASSERT_EQ(decode(msg, &c), decode_status::dead_letter) << msg;
    EXPECT_NE(reason.find("__source_ts_ms: cannot read"), std::string::npos) << reason;
  }
  for (
      const char* msg : {
          R"({"before": null, "after": {"id": 1}, "source": {"ts_ms": 1e300}, "op": "c"})",
          R"({"before": null, "after": {"id": 1}, "source": {"ts_ms": 1e300}, "op": "c", "op": "c"})",
      }) {
    ASSERT_EQ(decode(msg, &c), decode_status::dead_letter) << msg;
    EXPECT_NE(reason.find("source.ts_ms: cannot read 1E300 as integer milliseconds"),
              std::string::npos)
        << reason;
  }
  ASSERT_EQ(decode(R"({"id": 1, "__source_ts_ms": 1762514973000.0})", &c), decode_status::row)
      << reason;
  EXPECT_EQ(out.source_ts_ms, 1762514973000);
}

// ---- issue 10 (8): the schema's logical type wins over a declared unit -------------------

struct time_case {
  const char* logical_name;
  const char* json_type;
  const char* value;  // JSON
  int64_t micros;     // the instant it denotes
};

// 2025-11-07T11:29:32.953131Z in every Debezium and Kafka Connect time type.
const std::vector<time_case> time_cases = {
    {"io.debezium.time.Timestamp", "int64", "1762514972953", 1762514972953000},
    {"org.apache.kafka.connect.data.Timestamp", "int64", "1762514972953", 1762514972953000},
    {"io.debezium.time.MicroTimestamp", "int64", "1762514972953131", 1762514972953131},
    {"io.debezium.time.NanoTimestamp", "int64", "1762514972953131000", 1762514972953131},
    {"io.debezium.time.ZonedTimestamp", "string", "\"2025-11-07T11:29:32.953131Z\"",
     1762514972953131},
    {"io.debezium.time.ZonedTimestamp", "string", "\"2025-11-07T12:29:32.953131+01:00\"",
     1762514972953131},
    {"io.debezium.time.Date", "int32", "20399", 20399LL * 86'400'000'000},
    {"org.apache.kafka.connect.data.Date", "int32", "20399", 20399LL * 86'400'000'000},
    {"io.debezium.time.Time", "int32", "41372953", 41372953000},
    {"org.apache.kafka.connect.data.Time", "int32", "41372953", 41372953000},
    {"io.debezium.time.MicroTime", "int64", "41372953131", 41372953131},
    {"io.debezium.time.NanoTime", "int64", "41372953131000", 41372953131},
};

const std::vector<time_unit> all_units = {
    time_unit::auto_detect, time_unit::seconds, time_unit::millis, time_unit::micros,
    time_unit::nanos,       time_unit::days,    time_unit::iso};

std::string unwrapped_schema_message(const time_case& t) {
  return std::string(R"({"schema": {"type": "struct", "fields": [
      {"type": "int64", "field": "id"},
      {"type": ")") +
         t.json_type + R"(", "name": ")" + t.logical_name + R"(", "field": "created_at"}]},
    "payload": {"id": 1, "created_at": )" +
         t.value + "}}";
}

std::string envelope_schema_message(const time_case& t, bool duplicate_op) {
  const std::string cols = std::string(R"([{"type": "int64", "field": "id"}, {"type": ")") +
                           t.json_type + R"(", "name": ")" + t.logical_name +
                           R"(", "field": "created_at"}])";
  return R"({"schema": {"type": "struct", "fields": [
      {"type": "struct", "field": "before", "fields": )" +
         cols + R"(}, {"type": "struct", "field": "after", "fields": )" + cols +
         R"(}, {"type": "string", "field": "op"}]},
    "payload": {"before": null, "after": {"id": 1, "created_at": )" +
         t.value + R"(}, "op": "u")" + (duplicate_op ? R"(, "op": "u")" : "") + "}}";
}

TEST_F(decode_fixture, every_time_type_decodes_to_its_instant_whatever_unit_is_declared) {
  // The README example declares unit = "micros"; a JsonConverter message with
  // io.debezium.time.Timestamp (ms) became 1970-01-21, and a ZonedTimestamp was dead-lettered.
  for (const time_unit unit : all_units) {
    pipeline_config c = ride_config();
    c.fields[2].unit = unit;
    for (const time_case& t : time_cases) {
      const std::vector<std::pair<const char*, std::string>> shapes = {
          {"unwrapped schema", unwrapped_schema_message(t)},
          {"envelope schema", envelope_schema_message(t, false)},
          {"envelope schema, DOM path", envelope_schema_message(t, true)},
      };
      for (const auto& [shape, msg] : shapes) {
        SCOPED_TRACE(std::string(t.logical_name) + " " + t.value + ", unit " +
                     std::string(to_string(unit)) + ", " + shape);
        ASSERT_EQ(decode(msg, &c), decode_status::row) << reason;
        EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, t.micros);
      }
    }
  }
}

TEST_F(decode_fixture, a_declared_unit_applies_to_schemaless_values) {
  const std::vector<std::tuple<time_unit, const char*, int64_t>> cases = {
      {time_unit::auto_detect, "1762514972953131", 1762514972953131},
      {time_unit::auto_detect, "\"2025-11-07T11:29:32.953131Z\"", 1762514972953131},
      {time_unit::seconds, "1762514972", 1762514972000000},
      {time_unit::millis, "1762514972953", 1762514972953000},
      {time_unit::micros, "1762514972953131", 1762514972953131},
      {time_unit::nanos, "1762514972953131000", 1762514972953131},
      {time_unit::days, "20399", 20399LL * 86'400'000'000},
      {time_unit::iso, "\"2025-11-07T11:29:32.953131Z\"", 1762514972953131},
  };
  for (const auto& [unit, value, micros] : cases) {
    pipeline_config c = ride_config();
    c.fields[2].unit = unit;
    const std::string msg = std::string(R"({"id": 1, "created_at": )") + value + "}";
    ASSERT_EQ(decode(msg, &c), decode_status::row) << msg << ": " << reason;
    EXPECT_EQ(std::get<timestamp>(out.image[2]).micros, micros) << msg;
  }
}

}  // namespace
}  // namespace eddy
