// kafka_records_test.cpp — the Kafka sink's pure parts: keys, partitions, headers, the
// read-back "skip up to the highest sequence" rule and the publish marker.
#include "worker/sink/kafka_records.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "model/row.hpp"
#include "model/time_format.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

using header_list = std::vector<std::pair<std::string_view, std::string_view>>;

header_list as_views(const std::vector<std::pair<std::string, std::string>>& h) {
  header_list out;
  for (const auto& [n, v] : h) out.emplace_back(n, v);
  return out;
}

TEST(kafka_records, origin_headers_round_trip) {
  const record_origin o{"rides", "part-0000000012-00003-w1-g2.jsonl", 12, 4711};
  const auto h = encode_origin(o);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"eddy-pipeline", "rides"}));
  EXPECT_EQ(h[2], (std::pair<std::string, std::string>{"eddy-epoch", "12"}));
  EXPECT_EQ(h[3], (std::pair<std::string, std::string>{"eddy-seq", "4711"}));
  auto back = decode_origin(as_views(h));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, o);
}

TEST(kafka_records, origin_needs_all_four_headers_with_numbers) {
  const auto encoded = encode_origin({"p", "u", 1, 2});
  const auto h = as_views(encoded);
  EXPECT_FALSE(decode_origin({h[0], h[1], h[2]}).has_value());  // no seq
  EXPECT_FALSE(decode_origin({}).has_value());
  header_list bad = h;
  bad[3].second = "12x";
  EXPECT_FALSE(decode_origin(bad).has_value());
  bad[3].second = "";
  EXPECT_FALSE(decode_origin(bad).has_value());
  bad[3].second = "-1";
  EXPECT_FALSE(decode_origin(bad).has_value());
  // Other headers are ignored; the last of a name wins (Kafka's lastHeader).
  header_list more = h;
  more.emplace_back("traceparent", "00-ab");
  more.emplace_back("eddy-seq", "9");
  auto o = decode_origin(more);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->seq, 9u);
}

TEST(kafka_records, splits_flat_objects_into_raw_members) {
  std::vector<std::pair<std::string_view, std::string_view>> m;
  ASSERT_TRUE(split_flat_object(
      R"({"a":1,"b":"x, \"y\": }","c":null,"d":-1.5e+20,"e":true,"f":"\\"})", &m));
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0].first, "\"a\"");
  EXPECT_EQ(m[0].second, "1");
  EXPECT_EQ(m[1].second, R"("x, \"y\": }")");
  EXPECT_EQ(m[2].second, "null");
  EXPECT_EQ(m[3].second, "-1.5e+20");
  EXPECT_EQ(m[4].second, "true");
  EXPECT_EQ(m[5].second, R"("\\")");
  EXPECT_TRUE(split_flat_object("{}", &m));
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(split_flat_object(R"( { "a" : 1 } )", &m));
  for (const char* bad : {"", "[1]", R"({"a":1)", R"({"a":{"b":1}})", R"({"a":1,})", R"({"a" 1})",
                          R"({"a":"x)", R"({"a":1} x)"})
    EXPECT_FALSE(split_flat_object(bad, &m)) << bad;
}

TEST(kafka_records, key_is_the_json_object_of_the_key_fields_in_key_order) {
  const std::string row =
      R"({"window_start":"2024-01-01T00:00:00Z","window_end":"2024-01-01T00:01:00Z","vehicle_type":"Auto","bookings":3})";
  std::string err;
  EXPECT_EQ(record_key(row, json_names({"vehicle_type", "window_start"}), &err),
            R"({"vehicle_type":"Auto","window_start":"2024-01-01T00:00:00Z"})");
  EXPECT_EQ(err, "");
  EXPECT_EQ(record_key(row, {}, &err), "");  // no key fields: a null key
  EXPECT_EQ(err, "");
  EXPECT_EQ(record_key(row, json_names({"nope"}), &err), "");
  EXPECT_NE(err.find("\"nope\""), std::string::npos) << err;
  EXPECT_EQ(record_key("not json", json_names({"a"}), &err), "");
  EXPECT_NE(err.find("not a flat JSON object"), std::string::npos) << err;
}

TEST(kafka_records, key_bytes_are_the_rows_own_value_bytes) {
  // The key is cut from row_to_json's output: doubles, escapes and nulls stay as the row has them.
  output_schema schema{
      {"id", "name", "price", "gone"},
      {field_type::int64, field_type::string, field_type::float64, field_type::string}};
  const row r{int64_t{42}, std::string("a \"b\"\n"), 1138.0, std::monostate{}};
  const std::string json = row_to_json(schema, r, time_formatter{});
  std::string err;
  EXPECT_EQ(record_key(json, json_names({"price", "name", "gone", "id"}), &err),
            R"({"price":1138.0,"name":"a \"b\"\n","gone":null,"id":42})")
      << err;
}

TEST(kafka_records, murmur2_matches_the_java_clients_values) {
  // Kafka's own test vectors for org.apache.kafka.common.utils.Utils.murmur2.
  EXPECT_EQ(kafka_murmur2("21"), -973932308);
  EXPECT_EQ(kafka_murmur2("foobar"), -790332482);
  EXPECT_EQ(kafka_murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(kafka_murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(kafka_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(kafka_murmur2("abc"), 479470107);
}

TEST(kafka_records, partitions_by_key_hash_or_by_sequence) {
  const std::string key = R"({"id":7})";
  const int32_t p = (kafka_murmur2(key) & 0x7fffffff) % 8;
  for (uint64_t seq : {0u, 1u, 99u})
    EXPECT_EQ(record_partition(kafka_partitioning::key, key, seq, 8), p);  // same key, same p
  // No key, or round robin: the sequence spreads rows evenly, deterministically.
  std::vector<int> counts(4);
  for (uint64_t seq = 0; seq < 400; ++seq) {
    ++counts[record_partition(kafka_partitioning::round_robin, key, seq, 4)];
    EXPECT_EQ(record_partition(kafka_partitioning::key, "", seq, 4),
              record_partition(kafka_partitioning::round_robin, key, seq, 4));
  }
  EXPECT_EQ(counts, (std::vector<int>{100, 100, 100, 100}));
  EXPECT_EQ(record_partition(kafka_partitioning::key, key, 5, 1), 0);
}

TEST(kafka_records, skips_rows_up_to_the_highest_sequence_read_back_per_partition) {
  // An interrupted attempt delivered unit U's rows 0..9 over partitions by seq % 3, but only a
  // prefix of each partition's share arrived: p0 got 0,3 (not 6,9), p1 got 1,4,7, p2 nothing.
  // The read-back tail also holds other units' and other pipelines' records.
  delivered_tail tail("rides", "U");
  tail.observe(0, {"rides", "U", 5, 0});
  tail.observe(1, {"rides", "U", 5, 1});
  tail.observe(0, {"rides", "OTHER", 5, 8});  // another unit
  tail.observe(2, {"billing", "U", 5, 8});    // another pipeline with a unit of that name
  tail.observe(0, {"rides", "U", 5, 3});
  tail.observe(1, {"rides", "U", 5, 4});
  tail.observe(1, {"rides", "U", 5, 7});
  EXPECT_EQ(tail.seen(), 5u);
  std::vector<uint64_t> resent;
  for (uint64_t seq = 0; seq < 10; ++seq)
    if (!tail.delivered(static_cast<int32_t>(seq % 3), seq)) resent.push_back(seq);
  EXPECT_EQ(resent, (std::vector<uint64_t>{2, 5, 6, 8, 9}));
  // Each row ends up in the topic exactly once.
  std::multiset<uint64_t> topic = {0, 1, 3, 4, 7};
  topic.insert(resent.begin(), resent.end());
  for (uint64_t seq = 0; seq < 10; ++seq) EXPECT_EQ(topic.count(seq), 1u) << seq;
  EXPECT_EQ(tail.highest(), (std::map<int32_t, uint64_t>{{0, 3}, {1, 7}}));
  // Records may be read back in any order.
  delivered_tail t2("rides", "U");
  t2.observe(0, {"rides", "U", 5, 6});
  t2.observe(0, {"rides", "U", 5, 3});
  EXPECT_TRUE(t2.delivered(0, 6));
  EXPECT_TRUE(t2.delivered(0, 3));
  EXPECT_FALSE(t2.delivered(0, 7));
  EXPECT_FALSE(t2.delivered(1, 0));
}

TEST(kafka_records, a_gap_below_the_highest_sequence_is_refilled_not_skipped) {
  // A message that timed out (seq 4) while a later one got through (seq 8): the highest sequence
  // alone would skip 4 and lose it.
  delivered_tail tail("rides", "U");
  for (uint64_t seq : {0u, 8u}) tail.observe(0, {"rides", "U", 5, seq});
  EXPECT_EQ(tail.highest().at(0), 8u);
  EXPECT_TRUE(tail.delivered(0, 0));
  EXPECT_FALSE(tail.delivered(0, 4));
  EXPECT_TRUE(tail.delivered(0, 8));
}

TEST(kafka_records, publish_marker_round_trips_and_rejects_truncation) {
  publish_marker m;
  m.partitions = 3;
  m.start_offsets = {{0, 10}, {1, 0}, {2, 123456789012}};
  const std::string text = encode_marker(m);
  std::string err;
  auto back = decode_marker(text, &err);
  ASSERT_TRUE(back.has_value()) << err;
  EXPECT_EQ(*back, m);
  EXPECT_FALSE(decode_marker(text.substr(0, text.size() - 4), &err).has_value());
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  EXPECT_FALSE(decode_marker("", &err).has_value());
  EXPECT_FALSE(decode_marker("eddy-kafka-publish 1\npartitions 2\n5 1\nend\n", &err).has_value());
  EXPECT_EQ(marker_name("part-0000000001.jsonl"), ".part-0000000001.jsonl.publishing");
}

}  // namespace
}  // namespace eddy
