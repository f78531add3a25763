#include "worker/sink/dead_letter_writer.hpp"
#include "worker/sink/epoch_files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace eddy {
namespace {

namespace fs = std::filesystem;

dead_letter sample_letter() {
  dead_letter d;
  d.topic = "business_postgres.public.business_ncr_ride_bookings";
  d.partition = 3;
  d.offset = 42;
  d.timestamp_ms = 1762514972953;
  d.key = R"({"id":75204})";
  d.value = "{not json";
  d.reason = "invalid JSON: syntax error at byte 1";
  return d;
}

boost::json::object parse_object(const std::string& text) {
  boost::json::error_code ec;
  auto v = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message() << ": " << text.substr(0, 200);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

TEST(dead_letter_to_json, writes_source_position_reason_key_and_value) {
  EXPECT_EQ(
      dead_letter_to_json(sample_letter()),
      R"({"topic":"business_postgres.public.business_ncr_ride_bookings","partition":3,)"
      R"("offset":42,"timestamp":1762514972953,"reason":"invalid JSON: syntax error at byte 1",)"
      R"("key":"{\"id\":75204}","value":"{not json"})");
}

TEST(dead_letter_to_json, writes_a_missing_kafka_timestamp_as_null) {
  dead_letter d = sample_letter();
  d.timestamp_ms = -1;
  EXPECT_TRUE(parse_object(dead_letter_to_json(d)).at("timestamp").is_null());
}

TEST(dead_letter_to_json, writes_a_tombstone_value_as_null) {
  dead_letter d = sample_letter();
  d.value.clear();
  d.value_is_null = true;
  const auto o = parse_object(dead_letter_to_json(d));
  ASSERT_TRUE(o.contains("value"));
  EXPECT_TRUE(o.at("value").is_null());
  EXPECT_FALSE(o.contains("value_base64"));
}

TEST(dead_letter_to_json, distinguishes_an_empty_value_from_a_tombstone) {
  dead_letter d = sample_letter();
  d.value.clear();
  EXPECT_EQ(parse_object(dead_letter_to_json(d)).at("value").as_string(), "");
}

TEST(dead_letter_to_json, base64_encodes_values_and_keys_that_are_not_utf8) {
  dead_letter d = sample_letter();
  d.key = std::string("\x00\x01\xFF", 3);
  d.value = "caf\xE9";  // Latin-1, not UTF-8
  const std::string text = dead_letter_to_json(d);
  const auto o = parse_object(text);
  EXPECT_FALSE(o.contains("key"));
  EXPECT_FALSE(o.contains("value"));
  EXPECT_EQ(o.at("key_base64").as_string(), "AAH/");
  EXPECT_EQ(o.at("value_base64").as_string(), "Y2Fm6Q==");
}

TEST(dead_letter_to_json, escapes_control_characters_so_the_line_stays_one_json_value) {
  dead_letter d = sample_letter();
  d.reason = "bad\nline\t\"quoted\"\x01";
  d.value = std::string("{\"a\":\"\x1f\"}\r\n");
  const std::string text = dead_letter_to_json(d);
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_NE(text.find(R"("reason":"bad\nline\t\"quoted\"\u0001")"), std::string::npos) << text;
  const auto o = parse_object(text);
  EXPECT_EQ(o.at("reason").as_string(), d.reason);
  EXPECT_EQ(o.at("value").as_string(), d.value);
}

TEST(dead_letter_to_json, cuts_values_over_one_mebibyte_and_records_their_size) {
  dead_letter d = sample_letter();
  d.value = std::string(dead_letter_max_value_bytes + 1000, 'v');
  const auto o = parse_object(dead_letter_to_json(d));
  EXPECT_EQ(o.at("value").as_string().size(), dead_letter_max_value_bytes);
  EXPECT_EQ(o.at("value_truncated").as_bool(), true);
  EXPECT_EQ(o.at("value_size").as_int64(),
            static_cast<int64_t>(dead_letter_max_value_bytes + 1000));
}

TEST(dead_letter_to_json, keeps_a_value_of_exactly_one_mebibyte_whole) {
  dead_letter d = sample_letter();
  d.value = std::string(dead_letter_max_value_bytes, 'v');
  const auto o = parse_object(dead_letter_to_json(d));
  EXPECT_EQ(o.at("value").as_string().size(), dead_letter_max_value_bytes);
  EXPECT_FALSE(o.contains("value_truncated"));
  EXPECT_FALSE(o.contains("value_size"));
}

TEST(dead_letter_to_json, cuts_a_huge_utf8_value_on_a_code_point_boundary) {
  dead_letter d = sample_letter();
  // "€" is three bytes; 2^20 is not a multiple of 3, so the limit falls inside one.
  std::string euros;
  for (size_t i = 0; i < dead_letter_max_value_bytes / 3 + 10; ++i) euros += "\xE2\x82\xAC";
  d.value = euros;
  const auto o = parse_object(dead_letter_to_json(d));
  ASSERT_TRUE(o.contains("value")) << "a cut inside a code point must not turn text into base64";
  const auto& v = o.at("value").as_string();
  EXPECT_EQ(v.size(), dead_letter_max_value_bytes / 3 * 3);
  EXPECT_TRUE(is_valid_utf8(std::string_view(v.data(), v.size())));
  EXPECT_EQ(o.at("value_size").as_int64(), static_cast<int64_t>(euros.size()));
}

TEST(dead_letter_to_json, base64_encodes_the_first_mebibyte_of_a_huge_binary_value) {
  dead_letter d = sample_letter();
  d.value = std::string(dead_letter_max_value_bytes + 5, '\xFF');
  const auto o = parse_object(dead_letter_to_json(d));
  EXPECT_EQ(o.at("value_base64").as_string().size(), (dead_letter_max_value_bytes + 2) / 3 * 4);
  EXPECT_EQ(o.at("value_truncated").as_bool(), true);
  EXPECT_EQ(o.at("value_size").as_int64(), static_cast<int64_t>(dead_letter_max_value_bytes + 5));
}

TEST(is_valid_utf8, accepts_well_formed_text) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text that is longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(is_valid_utf8(std::string_view("\0", 1)));
}

TEST(is_valid_utf8, rejects_ill_formed_sequences) {
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("abcdefgh\x80"));             // lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xC3"));                     // truncated
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));                 // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));                 // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));             // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));             // UTF-16 surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x28\xA1"));             // bad continuation
  EXPECT_FALSE(is_valid_utf8("caf\xE9 au lait, longer"));  // Latin-1
}

TEST(base64_encode, matches_the_rfc_4648_test_vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string_view("\xFB\xFF\xBF", 3)), "+/+/");
}

class dead_letter_file_writer_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("eddy-dead-letter-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    return names;
  }

  fs::path root_;
};

TEST_F(dead_letter_file_writer_test, writes_one_json_line_per_dead_letter) {
  dead_letter_file_writer w((root_ / "dl").string());
  EXPECT_EQ(w.dir(), (root_ / "dl").string());
  dead_letter binary = sample_letter();
  binary.value = "\xFF\xFE";
  dead_letter tombstone = sample_letter();
  tombstone.value_is_null = true;
  ASSERT_EQ(w.write_batch(12, {sample_letter(), binary, tombstone}), "");

  const auto names = names_in(root_ / "dl");
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].rfind("dead-letter-00000012-" + std::to_string(::getpid()) + "-", 0), 0u)
      << names[0];
  EXPECT_EQ(names[0].substr(names[0].size() - 6), ".jsonl");

  std::ifstream in(root_ / "dl" / names[0]);
  std::vector<boost::json::object> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(parse_object(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].at("value").as_string(), "{not json");
  EXPECT_EQ(rows[1].at("value_base64").as_string(), "//4=");
  EXPECT_TRUE(rows[2].at("value").is_null());
}

TEST_F(dead_letter_file_writer_test, writes_nothing_for_an_empty_batch) {
  dead_letter_file_writer w(root_.string());
  EXPECT_EQ(w.write_batch(1, {}), "");
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(dead_letter_file_writer_test, leaves_no_temporary_files_and_never_overwrites) {
  dead_letter_file_writer w(root_.string());
  ASSERT_EQ(w.write_batch(1, {sample_letter()}), "");
  ASSERT_EQ(w.write_batch(1, {sample_letter()}), "");
  const auto names = names_in(root_);
  EXPECT_EQ(names.size(), 2u);
  for (const auto& name : names) EXPECT_NE(name.front(), '.') << name;
}

TEST_F(dead_letter_file_writer_test, stages_an_epochs_file_under_a_name_with_the_tag_if_any) {
  dead_letter_file_writer plain(root_.string());
  dead_letter_file_writer tagged(root_.string(), "w1-g7");
  ASSERT_EQ(plain.stage_epoch(9, {sample_letter()}, false), "");
  ASSERT_EQ(tagged.stage_epoch(9, {sample_letter(), sample_letter()}, false), "");
  std::string err;
  EXPECT_EQ(staged_epoch_files(root_.string(), 9, &err),
            (std::vector<std::string>{"dead-letter-0000000009-w1-g7.jsonl",
                                      "dead-letter-0000000009.jsonl"}));
  EXPECT_EQ(staged_epoch_paths(root_.string(), 9, "w1-g7", &err),
            std::vector<std::string>{
                (root_ / "_staging" / "00000000000000000009" / "dead-letter-0000000009-w1-g7.jsonl")
                    .string()});
  dead_letter_file_writer bad(root_.string(), "w1/g7");
  EXPECT_NE(bad.stage_epoch(10, {sample_letter()}, false).find("invalid name tag"),
            std::string::npos);
}

TEST_F(dead_letter_file_writer_test, reports_an_unwritable_directory_as_an_error) {
  fs::create_directories(root_);
  std::ofstream(root_ / "file") << "x";
  dead_letter_file_writer w((root_ / "file").string());
  const std::string error = w.write_batch(1, {sample_letter()});
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("file"), std::string::npos) << error;
}

}  // namespace
}  // namespace eddy
