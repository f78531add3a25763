// sample_data_test.cpp — the ride-booking CDC generator: determinism, shapes, op mix, bad records.
#include "app/sample_data.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace eddy::app {
namespace {

namespace json = boost::json;

constexpr std::string_view k_col = "ncr_ride_bookings.csv/";

std::vector<sample_message> generate(sample_options o, int n) {
  sample_generator g(o);
  std::vector<sample_message> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(g.next());
  return out;
}

sample_options with_format(sample_format f) {
  sample_options o;
  o.format = f;
  return o;
}

json::value parse_or_fail(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message() << " in " << text.substr(0, 200);
  return v;
}

int64_t key_id(const sample_message& m, sample_format f) {
  const json::value k = parse_or_fail(m.key);
  if (f == sample_format::schema) return k.at("payload").at("id").as_int64();
  return k.at("id").as_int64();
}

std::string col(std::string_view name) {
  return std::string(k_col) + std::string(name);
}

/// Checks one row image (the unwrapped value, or before/after of an envelope).
void expect_row(const json::object& row, bool plain) {
  ASSERT_TRUE(row.contains("id"));
  EXPECT_TRUE(row.at("id").is_int64());
  for (const char* c : {"time", "booking+id", "booking+status", "customer+id", "vehicle+type",
                        "pickup+location", "drop+location"}) {
    ASSERT_TRUE(row.contains(col(c))) << c;
    const json::string& s = row.at(col(c)).as_string();
    if (plain) {
      EXPECT_FALSE(s.starts_with("b'")) << s;
    } else {
      EXPECT_TRUE(s.starts_with("b'") && s.ends_with("'")) << s;
    }
  }
  if (plain) {
    EXPECT_TRUE(row.at(col("date")).is_int64());  // io.debezium.time.Date
  } else {
    EXPECT_EQ(row.at(col("date")).as_string().size(), std::string_view("b'2024-03-23'").size());
  }
  for (const char* c :
       {"booking+value", "ride+distance", "driver+ratings", "customer+rating", "payment+method"}) {
    ASSERT_TRUE(row.contains(col(c))) << c;
    EXPECT_TRUE(row.at(col(c)).is_null() || row.at(col(c)).is_string()) << c;
  }
  const std::string status(row.at(col("booking+status")).as_string());
  if (status.find("Completed") != std::string::npos) {
    EXPECT_FALSE(row.at(col("booking+value")).is_null());
    EXPECT_FALSE(row.at(col("customer+rating")).is_null());
  }
  if (status.find("Cancelled") != std::string::npos) {
    EXPECT_TRUE(row.at(col("booking+value")).is_null());
  }
  EXPECT_TRUE(row.at("created_at").is_int64());
  EXPECT_TRUE(row.at("updated_at").is_int64());
  EXPECT_LE(row.at("created_at").as_int64(), row.at("updated_at").as_int64());
}

TEST(sample_generator, same_seed_gives_a_byte_identical_stream) {
  for (auto f : {sample_format::unwrapped, sample_format::envelope, sample_format::schema}) {
    sample_options o = with_format(f);
    o.bad_ratio = 0.05;
    o.disorder_ms = 200;
    const auto a = generate(o, 3000);
    const auto b = generate(o, 3000);
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].key, b[i].key) << i;
      ASSERT_EQ(a[i].value, b[i].value) << i;
      ASSERT_EQ(a[i].timestamp_ms, b[i].timestamp_ms) << i;
      ASSERT_EQ(a[i].op, b[i].op) << i;
    }
    o.seed = 43;
    const auto c = generate(o, 3000);
    int differing = 0;
    for (size_t i = 0; i < a.size(); ++i) differing += a[i].value != c[i].value;
    EXPECT_GT(differing, 2500) << to_string(f);
  }
}

TEST(sample_generator, first_message_is_pinned) {
  // Guards the stream against accidental change: tests elsewhere may depend on seed 42.
  sample_generator g(sample_options{});
  const sample_message m = g.next();
  EXPECT_EQ(m.key, R"({"id":1})");
  EXPECT_EQ(m.op, 'c');
  EXPECT_EQ(m.timestamp_ms, 1762473600000);
  ASSERT_TRUE(m.value);
  EXPECT_NE(m.value->find(R"("created_at":1762473600000000,)"), std::string::npos) << *m.value;
  EXPECT_NE(m.value->find(R"("__op":"c","__source_ts_ms":1762473600000,"__deleted":"false"})"),
            std::string::npos)
      << *m.value;
}

TEST(sample_generator, op_mix_is_about_60_10_25_5) {
  sample_generator g(sample_options{});
  for (int i = 0; i < 100000; ++i) (void)g.next();
  const sample_stats& s = g.stats();
  EXPECT_EQ(s.messages, 100000u);
  EXPECT_EQ(s.tombstones, s.deletes);
  EXPECT_EQ(s.bad, 0u);
  const double events = static_cast<double>(s.creates + s.reads + s.updates + s.deletes);
  EXPECT_EQ(s.creates + s.reads + s.updates + s.deletes + s.tombstones, s.messages);
  EXPECT_NEAR(s.creates / events, 0.60, 0.015);
  EXPECT_NEAR(s.reads / events, 0.10, 0.01);
  EXPECT_NEAR(s.updates / events, 0.25, 0.015);
  EXPECT_NEAR(s.deletes / events, 0.05, 0.01);
}

TEST(sample_generator, unwrapped_messages_have_the_extract_new_record_state_shape) {
  const auto msgs = generate(with_format(sample_format::unwrapped), 5000);
  std::map<char, int> seen;
  for (const auto& m : msgs) {
    ++seen[m.op];
    if (m.op == 't') {
      EXPECT_FALSE(m.value);
      continue;
    }
    ASSERT_TRUE(m.value);
    const json::value v = parse_or_fail(*m.value);
    const json::object& row = v.as_object();
    expect_row(row, false);
    EXPECT_EQ(row.at("id").as_int64(), key_id(m, sample_format::unwrapped));
    EXPECT_EQ(row.at("__op").as_string(), std::string(1, m.op));
    EXPECT_EQ(row.at("__deleted").as_string(), m.op == 'd' ? "true" : "false");
    const int64_t source_ts_ms = row.at("__source_ts_ms").as_int64();
    EXPECT_EQ(source_ts_ms, m.timestamp_ms);  // no disorder asked for
    if (m.op == 'c' || m.op == 'r') {
      EXPECT_EQ(row.at("created_at").as_int64() / 1000, source_ts_ms);
    }
    if (m.op == 'u') {
      EXPECT_EQ(row.at("updated_at").as_int64() / 1000, source_ts_ms);
    }
  }
  for (char op : {'c', 'r', 'u', 'd', 't'}) EXPECT_GT(seen[op], 0) << op;
}

void expect_envelope(const json::object& env, char op, bool plain) {
  EXPECT_EQ(env.at("op").as_string(), std::string(1, op));
  const json::value& before = env.at("before");
  const json::value& after = env.at("after");
  switch (op) {
    case 'c':
    case 'r':
      EXPECT_TRUE(before.is_null());
      expect_row(after.as_object(), plain);
      break;
    case 'u':  // REPLICA IDENTITY FULL: the before image is there
      expect_row(before.as_object(), plain);
      expect_row(after.as_object(), plain);
      EXPECT_EQ(before.at("id"), after.at("id"));
      EXPECT_LT(before.at("updated_at").as_int64(), after.at("updated_at").as_int64());
      break;
    case 'd':
      expect_row(before.as_object(), plain);
      EXPECT_TRUE(after.is_null());
      break;
    default:
      ADD_FAILURE() << op;
  }
  const json::object& source = env.at("source").as_object();
  EXPECT_EQ(source.at("version").as_string(), "2.5.0.Final");
  EXPECT_EQ(source.at("connector").as_string(), "postgresql");
  EXPECT_EQ(source.at("name").as_string(), "business_postgres");
  EXPECT_EQ(source.at("db").as_string(), "business");
  EXPECT_EQ(source.at("schema").as_string(), "public");
  EXPECT_EQ(source.at("table").as_string(), "business_ncr_ride_bookings");
  EXPECT_TRUE(source.at("ts_ms").is_int64());
  EXPECT_TRUE(source.at("lsn").is_int64());
  EXPECT_LE(source.at("ts_ms").as_int64(), env.at("ts_ms").as_int64());
}

TEST(sample_generator, envelope_messages_carry_before_after_source_op) {
  const auto msgs = generate(with_format(sample_format::envelope), 5000);
  for (const auto& m : msgs) {
    if (m.op == 't') continue;
    const json::value v = parse_or_fail(*m.value);
    expect_envelope(v.as_object(), m.op, false);
    const json::value& image = m.op == 'd' ? v.at("before") : v.at("after");
    EXPECT_EQ(image.at("id").as_int64(), key_id(m, sample_format::envelope));
    EXPECT_EQ(m.key, R"({"id":)" + std::to_string(image.at("id").as_int64()) + "}");
  }
}

TEST(sample_generator, schema_messages_wrap_the_envelope_with_a_connect_schema) {
  const auto msgs = generate(with_format(sample_format::schema), 2000);
  for (const auto& m : msgs) {
    if (m.op == 't') continue;
    const json::value v = parse_or_fail(*m.value);
    const json::object& schema = v.at("schema").as_object();
    EXPECT_EQ(schema.at("type").as_string(), "struct");
    EXPECT_EQ(schema.at("name").as_string(),
              "business_postgres.public.business_ncr_ride_bookings.Envelope");
    const json::array& fields = schema.at("fields").as_array();
    ASSERT_EQ(fields.size(), 5u);
    EXPECT_EQ(fields[0].at("field").as_string(), "before");
    EXPECT_EQ(fields[1].at("field").as_string(), "after");
    EXPECT_EQ(fields[2].at("field").as_string(), "source");
    EXPECT_EQ(fields[3].at("field").as_string(), "op");
    EXPECT_EQ(fields[4].at("field").as_string(), "ts_ms");
    std::map<std::string, json::object> row_fields;
    for (const auto& f : fields[1].at("fields").as_array()) {
      row_fields[std::string(f.at("field").as_string())] = f.as_object();
    }
    EXPECT_EQ(row_fields.at("id").at("type").as_string(), "int64");
    EXPECT_EQ(row_fields.at("id").at("optional").as_bool(), false);
    const json::object& value_field = row_fields.at(col("booking+value"));
    EXPECT_EQ(value_field.at("type").as_string(), "bytes");
    EXPECT_EQ(value_field.at("name").as_string(), "org.apache.kafka.connect.data.Decimal");
    EXPECT_EQ(value_field.at("parameters").at("scale").as_string(), "2");
    EXPECT_EQ(row_fields.at(col("ride+distance")).at("name").as_string(),
              "org.apache.kafka.connect.data.Decimal");
    EXPECT_EQ(row_fields.at(col("date")).at("name").as_string(), "io.debezium.time.Date");
    EXPECT_EQ(row_fields.at("created_at").at("name").as_string(),
              "io.debezium.time.MicroTimestamp");
    expect_envelope(v.at("payload").as_object(), m.op, true);
    EXPECT_EQ(key_id(m, sample_format::schema),
              (m.op == 'd' ? v.at("payload").at("before") : v.at("payload").at("after"))
                  .at("id")
                  .as_int64());
  }
}

std::optional<std::string> base64_decode(std::string_view s) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : s) {
    if (ch == '=') break;
    const size_t pos = alphabet.find(ch);
    if (pos == std::string::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

int64_t unscaled_of(const std::string& be) {
  int64_t v = static_cast<int8_t>(be[0]);
  for (size_t i = 1; i < be.size(); ++i) v = v * 256 + static_cast<uint8_t>(be[i]);
  return v;
}

TEST(sample_data, decimal_bytes_are_minimal_big_endian_twos_complement) {
  EXPECT_EQ(encode_base64(decimal_bytes(113800)), "AbyI");  // 1138.00 at scale 2
  EXPECT_EQ(decimal_bytes(113800), std::string("\x01\xBC\x88", 3));
  EXPECT_EQ(decimal_bytes(0), std::string(1, '\0'));
  EXPECT_EQ(decimal_bytes(127), "\x7f");
  EXPECT_EQ(decimal_bytes(128), std::string("\x00\x80", 2));
  EXPECT_EQ(decimal_bytes(-1), "\xff");
  EXPECT_EQ(decimal_bytes(-128), "\x80");
  EXPECT_EQ(decimal_bytes(-129), "\xff\x7f");
  EXPECT_EQ(encode_base64(""), "");
  EXPECT_EQ(encode_base64("f"), "Zg==");
  EXPECT_EQ(encode_base64("fo"), "Zm8=");
  EXPECT_EQ(encode_base64("foo"), "Zm9v");
}

TEST(sample_generator, schema_decimals_match_the_text_values_of_the_same_rows) {
  // The format only changes serialisation: the same seed yields the same rows.
  const auto text = generate(with_format(sample_format::unwrapped), 3000);
  const auto schema = generate(with_format(sample_format::schema), 3000);
  int checked = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    ASSERT_EQ(text[i].op, schema[i].op);
    if (text[i].op != 'c' && text[i].op != 'r') continue;
    const json::value t = parse_or_fail(*text[i].value);
    const json::value s = parse_or_fail(*schema[i].value);
    const json::object& after = s.at("payload").at("after").as_object();
    for (const char* c : {"booking+value", "ride+distance"}) {
      const json::value& tv = t.at(col(c));
      const json::value& sv = after.at(col(c));
      ASSERT_EQ(tv.is_null(), sv.is_null());
      if (tv.is_null()) continue;
      std::string txt(tv.as_string());
      txt = txt.substr(2, txt.size() - 3);  // b'...'
      const auto bytes = base64_decode(sv.as_string());
      ASSERT_TRUE(bytes);
      EXPECT_EQ(unscaled_of(*bytes), std::llround(std::stod(txt) * 100)) << txt;
      ++checked;
    }
    EXPECT_EQ(after.at(col("booking+status")).as_string(),
              t.at(col("booking+status"))
                  .as_string()
                  .subview(2, t.at(col("booking+status")).as_string().size() - 3));
  }
  EXPECT_GT(checked, 1000);
}

TEST(sample_generator, deletes_are_followed_by_a_tombstone_with_the_same_key) {
  for (auto f : {sample_format::unwrapped, sample_format::envelope, sample_format::schema}) {
    const auto msgs = generate(with_format(f), 5000);
    int deletes = 0;
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (msgs[i].op == 't') {
        ASSERT_GT(i, 0u);
        EXPECT_EQ(msgs[i - 1].op, 'd');
      }
      if (msgs[i].op != 'd' || i + 1 == msgs.size()) continue;
      ++deletes;
      EXPECT_EQ(msgs[i + 1].op, 't');
      EXPECT_FALSE(msgs[i + 1].value);
      EXPECT_EQ(msgs[i + 1].key, msgs[i].key);
      EXPECT_EQ(msgs[i + 1].timestamp_ms, msgs[i].timestamp_ms);
    }
    EXPECT_GT(deletes, 100);
  }
}

TEST(sample_generator, updates_and_deletes_refer_to_live_ids) {
  for (int id_space : {100000, 50}) {
    sample_options o;
    o.id_space = id_space;
    sample_generator g(o);
    std::set<int64_t> alive;
    int64_t max_id = 0;
    for (int i = 0; i < 50000; ++i) {
      const sample_message m = g.next();
      if (m.op == 't' || m.op == 'x') continue;
      const int64_t id = key_id(m, sample_format::unwrapped);
      switch (m.op) {
        case 'c':
        case 'r':
          EXPECT_EQ(id, max_id + 1);  // ids increase from 1
          max_id = id;
          EXPECT_TRUE(alive.insert(id).second);
          break;
        case 'u':
          EXPECT_TRUE(alive.count(id)) << id;
          break;
        case 'd':
          EXPECT_EQ(alive.erase(id), 1u) << id;
          break;
      }
    }
  }
}

TEST(sample_generator, bad_ratio_is_honored_and_bad_records_are_unusable) {
  for (auto f : {sample_format::unwrapped, sample_format::envelope, sample_format::schema}) {
    sample_options o = with_format(f);
    o.bad_ratio = 0.1;
    sample_generator g(o);
    int deep = 0;
    std::map<std::string, int> kinds;
    for (int i = 0; i < 20000; ++i) {
      const sample_message m = g.next();
      if (m.op != 'x') continue;
      ASSERT_TRUE(m.value);
      const std::string& v = *m.value;
      if (v.size() >= 100000 && v.find_first_not_of('[') == std::string::npos) {
        ++deep;
        continue;
      }
      json::error_code ec;
      const json::value parsed = json::parse(v, ec);
      if (ec) {
        ++kinds[v.empty() ? "empty" : "unparsable"];
        continue;
      }
      if (parsed.is_array()) {
        ++kinds["array"];
        continue;
      }
      const json::object& root = parsed.as_object();
      const json::object* row = &root;
      if (f == sample_format::envelope) row = &root.at("after").as_object();
      if (f == sample_format::schema) row = &root.at("payload").at("after").as_object();
      if (!row->contains("id")) {
        ++kinds["missing id"];
      } else if (!row->at("id").is_int64()) {
        ++kinds["id type"];
      } else {
        const std::string bv(row->at(col("booking+value")).as_string());
        EXPECT_NE(bv.find("12x"), std::string::npos) << bv;
        ++kinds["bad value"];
      }
    }
    const sample_stats& s = g.stats();
    EXPECT_NEAR(static_cast<double>(s.bad) / static_cast<double>(s.messages), 0.1, 0.001);
    EXPECT_GE(deep, 1);
    EXPECT_LE(deep, static_cast<int>(s.bad / 50) + 1);
    // unparsable = truncated + invalid UTF-8
    for (const char* k : {"empty", "unparsable", "array", "missing id", "id type", "bad value"}) {
      EXPECT_GT(kinds[k], 0) << to_string(f) << ": " << k;
    }
  }
}

TEST(sample_generator, zero_and_full_bad_ratios) {
  sample_options o;
  o.bad_ratio = 0;
  sample_generator none(o);
  for (int i = 0; i < 1000; ++i) EXPECT_NE(none.next().op, 'x');
  o.bad_ratio = 1;
  sample_generator all(o);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(all.next().op, 'x');
}

TEST(sample_generator, disorder_moves_event_times_back_within_the_bound) {
  sample_options o;
  o.disorder_ms = 500;
  sample_generator g(o);
  int64_t last_ts = 0;
  int moved = 0;
  for (int i = 0; i < 20000; ++i) {
    const sample_message m = g.next();
    EXPECT_GE(m.timestamp_ms, last_ts);  // the Kafka timestamp stays in order
    last_ts = m.timestamp_ms;
    if (m.op == 't') continue;
    const json::value v = parse_or_fail(*m.value);
    const int64_t lag = m.timestamp_ms - v.at("__source_ts_ms").as_int64();
    EXPECT_GE(lag, 0);
    EXPECT_LE(lag, 501);
    moved += lag > 100;
  }
  EXPECT_GT(moved, 10000);
}

TEST(sample_generator, event_time_starts_and_advances_as_configured) {
  sample_options o;
  o.start_time_us = 1'000'000'000'000'000;
  o.event_spacing_us = 10'000;
  sample_generator g(o);
  EXPECT_EQ(g.next().timestamp_ms, 1'000'000'000'000);
  EXPECT_EQ(g.next().timestamp_ms, 1'000'000'000'010);
}

TEST(sample_generator, event_times_saturate_at_the_int64_bounds) {
  // `produce --start-time-us 9223372036854775807` was signed overflow (UBSan) here.
  sample_options o;
  o.start_time_us = std::numeric_limits<int64_t>::max();
  o.disorder_ms = std::numeric_limits<int64_t>::max();
  o.event_spacing_us = std::numeric_limits<int64_t>::max();
  sample_generator g(o);
  for (int i = 0; i < 200; ++i) {
    const sample_message m = g.next();
    EXPECT_EQ(m.timestamp_ms, std::numeric_limits<int64_t>::max() / 1000);
    if (m.op == 't') continue;
    const json::value v = parse_or_fail(*m.value);
    if (m.op == 'x') continue;
    const json::object& row = v.as_object();
    EXPECT_LE(row.at("created_at").as_int64(), row.at("updated_at").as_int64());
  }
  o.start_time_us = std::numeric_limits<int64_t>::min();
  o.disorder_ms = 1;
  o.event_spacing_us = 0;
  sample_generator low(o);
  for (int i = 0; i < 50; ++i) EXPECT_LE(low.next().timestamp_ms, 0);
}

TEST(sample_format, names_round_trip) {
  for (auto f : {sample_format::unwrapped, sample_format::envelope, sample_format::schema}) {
    EXPECT_EQ(parse_sample_format(to_string(f)), f);
  }
  EXPECT_FALSE(parse_sample_format("avro"));
}

}  // namespace
}  // namespace eddy::app
