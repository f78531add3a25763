#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;

constexpr int64_t sample_micros = 1762514972953131;  // 2025-11-07T11:29:32.953131Z

const output_schema rides_schema{{"id", "op", "created_at_ts", "fare", "paid", "note"},
                                 {field_type::int64, field_type::string, field_type::timestamp,
                                  field_type::float64, field_type::boolean, field_type::string}};

class file_sink_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("eddy-file-sink-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  sink_config config(const fs::path& dir) const {
    sink_config cfg;
    cfg.kind = sink_kind::file;
    cfg.path = dir.string();
    return cfg;
  }

  static std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::vector<std::string> lines_of(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  fs::path root_;
};

/// part-<8 digits>-<pid>-<counter>.jsonl
bool is_part_file_name(std::string_view name) {
  auto digits = [&](size_t min_count) {
    size_t n = 0;
    while (n < name.size() && name[n] >= '0' && name[n] <= '9') ++n;
    name.remove_prefix(n);
    return n >= min_count;
  };
  auto literal = [&](std::string_view text) {
    if (name.substr(0, text.size()) != text) return false;
    name.remove_prefix(text.size());
    return true;
  };
  return literal("part-") && digits(8) && literal("-") && digits(1) && literal("-") && digits(1) &&
         name == ".jsonl";
}

std::vector<row> sample_rows() {
  return {
      {int64_t{75204}, std::string("r"), timestamp{sample_micros}, 45.75, true,
       std::string("say \"hi\"\n\ttab \\ \x01 caf\xC3\xA9")},
      {int64_t{-3}, std::string("d"), std::monostate{}, 1138.0, false, std::monostate{}},
  };
}

TEST_F(file_sink_test, writes_one_complete_json_lines_file_per_batch) {
  auto s = make_file_sink(config(root_), time_formatter{});
  ASSERT_EQ(s->write_batch(7, rides_schema, sample_rows()), "");
  ASSERT_EQ(s->write_batch(8, rides_schema, sample_rows()), "");
  const auto names = names_in(root_);
  ASSERT_EQ(names.size(), 2u);
  for (const auto& name : names) EXPECT_TRUE(is_part_file_name(name)) << name;
  EXPECT_EQ(names[0].substr(0, 13), "part-00000007");
  EXPECT_EQ(names[1].substr(0, 13), "part-00000008");
  EXPECT_EQ(lines_of(root_ / names[0]).size(), 2u);
}

TEST_F(file_sink_test, leaves_no_temporary_files_behind) {
  auto s = make_file_sink(config(root_), time_formatter{});
  for (int64_t b = 0; b < 5; ++b) ASSERT_EQ(s->write_batch(b, rides_schema, sample_rows()), "");
  for (const auto& name : names_in(root_)) {
    EXPECT_NE(name.front(), '.') << name;
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
  EXPECT_EQ(names_in(root_).size(), 5u);
}

TEST_F(file_sink_test, writes_lines_that_parse_back_to_the_rows) {
  auto s = make_file_sink(config(root_), time_formatter{});
  ASSERT_EQ(s->write_batch(1, rides_schema, sample_rows()), "");
  const auto names = names_in(root_);
  ASSERT_EQ(names.size(), 1u);
  const auto lines = lines_of(root_ / names[0]);
  ASSERT_EQ(lines.size(), 2u);

  boost::json::error_code ec;
  const auto first = boost::json::parse(lines[0], ec);
  ASSERT_FALSE(ec) << lines[0];
  const auto& o = first.as_object();
  EXPECT_EQ(o.at("id").as_int64(), 75204);
  EXPECT_EQ(o.at("op").as_string(), "r");
  EXPECT_EQ(o.at("created_at_ts").as_string(), "2025-11-07T11:29:32.953131Z");
  EXPECT_EQ(o.at("fare").as_double(), 45.75);
  EXPECT_EQ(o.at("paid").as_bool(), true);
  EXPECT_EQ(o.at("note").as_string(), "say \"hi\"\n\ttab \\ \x01 caf\xC3\xA9");

  const auto second = boost::json::parse(lines[1], ec);
  ASSERT_FALSE(ec) << lines[1];
  EXPECT_TRUE(second.at("created_at_ts").is_null());
  EXPECT_TRUE(second.at("note").is_null());
  EXPECT_TRUE(second.at("fare").is_double()) << lines[1];  // 1138.0, not 1138
  EXPECT_EQ(second.at("fare").as_double(), 1138.0);
}

TEST_F(file_sink_test, skips_empty_batches) {
  auto s = make_file_sink(config(root_), time_formatter{});
  ASSERT_EQ(s->write_batch(1, rides_schema, {}), "");
  EXPECT_TRUE(!fs::exists(root_) || names_in(root_).empty());
}

TEST_F(file_sink_test, creates_missing_parent_directories) {
  const fs::path nested = root_ / "a" / "b" / "c";
  auto s = make_file_sink(config(nested), time_formatter{});
  ASSERT_EQ(s->write_batch(0, rides_schema, sample_rows()), "");
  EXPECT_EQ(names_in(nested).size(), 1u);
}

TEST_F(file_sink_test, reports_an_error_when_a_file_is_where_the_directory_should_be) {
  fs::create_directories(root_);
  const fs::path blocker = root_ / "not-a-dir";
  std::ofstream(blocker) << "x";
  auto s = make_file_sink(config(blocker / "out"), time_formatter{});
  const std::string error = s->write_batch(0, rides_schema, sample_rows());
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("not-a-dir"), std::string::npos) << error;
  auto direct = make_file_sink(config(blocker), time_formatter{});
  EXPECT_NE(direct->write_batch(0, rides_schema, sample_rows()), "");
}

TEST_F(file_sink_test, never_reuses_a_file_name_for_the_same_batch) {
  auto a = make_file_sink(config(root_), time_formatter{});
  auto b = make_file_sink(config(root_), time_formatter{});
  ASSERT_EQ(a->write_batch(4, rides_schema, sample_rows()), "");
  ASSERT_EQ(b->write_batch(4, rides_schema, sample_rows()), "");
  const auto names = names_in(root_);
  ASSERT_EQ(names.size(), 2u);
  const std::string pid = std::to_string(::getpid());
  for (const auto& name : names) {
    EXPECT_EQ(name.rfind("part-00000004-" + pid + "-", 0), 0u) << name;
  }
}

TEST_F(file_sink_test, writes_timestamps_in_the_configured_zone) {
  auto kolkata = time_formatter::for_zone("Asia/Kolkata");
  ASSERT_TRUE(kolkata.has_value());
  auto s = make_file_sink(config(root_), *kolkata);
  ASSERT_EQ(s->write_batch(0, rides_schema, sample_rows()), "");
  const auto lines = lines_of(root_ / names_in(root_).at(0));
  EXPECT_NE(lines.at(0).find("\"created_at_ts\":\"2025-11-07T16:59:32.953131+05:30\""),
            std::string::npos)
      << lines.at(0);
}

/// Rows whose ids are `ids`, otherwise like the second sample row.
std::vector<row> rows_with_ids(std::initializer_list<int64_t> ids) {
  std::vector<row> rows;
  for (int64_t id : ids)
    rows.push_back({id, std::string("c"), std::monostate{}, 1.5, true, std::monostate{}});
  return rows;
}

/// The "id" of each line of `file`.
std::vector<int64_t> ids_in(const fs::path& file) {
  std::vector<int64_t> ids;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    ids.push_back(boost::json::parse(line).as_object().at("id").as_int64());
  return ids;
}

/// Published part files of `dir` (not the _staging directory), in name order.
std::vector<std::string> part_files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(file_sink_test, stages_the_parts_of_an_epoch_so_that_name_order_is_arrival_order) {
  auto s = make_file_sink(config(root_), time_formatter{});
  s->set_sync(false);
  ASSERT_TRUE(s->transactional());
  ASSERT_EQ(s->stage_epoch(12, 1, rides_schema, rows_with_ids({1, 2})), "");
  ASSERT_EQ(s->stage_epoch(12, 2, rides_schema, rows_with_ids({3, 4})), "");
  ASSERT_EQ(s->stage_epoch(12, 0, rides_schema, rows_with_ids({5})), "");
  EXPECT_TRUE(part_files_in(root_).empty()) << "staged parts are invisible until published";
  ASSERT_EQ(s->publish_epoch(12), "");
  const auto names = part_files_in(root_);
  ASSERT_EQ(names,
            (std::vector<std::string>{"part-0000000012-00001.jsonl", "part-0000000012-00002.jsonl",
                                      "part-0000000012.jsonl"}));
  EXPECT_EQ(ids_in(root_ / names[0]), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ids_in(root_ / names[1]), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(ids_in(root_ / names[2]), (std::vector<int64_t>{5}));
}

TEST_F(file_sink_test, names_an_epoch_of_one_part_as_before_and_skips_empty_parts) {
  auto s = make_file_sink(config(root_), time_formatter{});
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(3, 0, rides_schema, rows_with_ids({7})), "");
  ASSERT_EQ(s->stage_epoch(4, 1, rides_schema, rows_with_ids({8})), "");
  ASSERT_EQ(s->stage_epoch(4, 0, rides_schema, {}), "");  // everything went into part 1
  ASSERT_EQ(s->publish_epoch(3), "");
  ASSERT_EQ(s->publish_epoch(4), "");
  EXPECT_EQ(part_files_in(root_),
            (std::vector<std::string>{"part-0000000003.jsonl", "part-0000000004-00001.jsonl"}));
}

TEST_F(file_sink_test, replaces_a_part_staged_again_for_the_same_epoch) {
  auto s = make_file_sink(config(root_), time_formatter{});
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(5, 1, rides_schema, rows_with_ids({1})), "");
  ASSERT_EQ(s->stage_epoch(5, 1, rides_schema, rows_with_ids({2, 3})), "");
  ASSERT_EQ(s->publish_epoch(5), "");
  const auto names = part_files_in(root_);
  ASSERT_EQ(names, std::vector<std::string>{"part-0000000005-00001.jsonl"});
  EXPECT_EQ(ids_in(root_ / names[0]), (std::vector<int64_t>{2, 3}));
}

TEST_F(file_sink_test, a_name_tag_goes_before_the_extension_of_every_staged_part) {
  sink_config cfg = config(root_);
  cfg.name_tag = "w2-g3";
  auto tagged = make_file_sink(cfg, time_formatter{});
  auto plain = make_file_sink(config(root_), time_formatter{});  // another writer, no tag
  for (auto* s : {tagged.get(), plain.get()}) {
    s->set_sync(false);
    ASSERT_EQ(s->stage_epoch(12, 1, rides_schema, rows_with_ids({1, 2})), "");
    ASSERT_EQ(s->stage_epoch(12, 0, rides_schema, rows_with_ids({3})), "");
  }
  std::string err;
  const fs::path staging = root_ / "_staging" / "00000000000000000012";
  EXPECT_EQ(
      staged_epoch_files(root_.string(), 12, &err),
      (std::vector<std::string>{"part-0000000012-00001-w2-g3.jsonl", "part-0000000012-00001.jsonl",
                                "part-0000000012-w2-g3.jsonl", "part-0000000012.jsonl"}));
  const auto paths = staged_epoch_paths(root_.string(), 12, "w2-g3", &err);
  ASSERT_EQ(err, "");
  ASSERT_EQ(paths,
            (std::vector<std::string>{(staging / "part-0000000012-00001-w2-g3.jsonl").string(),
                                      (staging / "part-0000000012-w2-g3.jsonl").string()}));
  ASSERT_EQ(publish_staged_files(paths, false), "");
  EXPECT_EQ(part_files_in(root_), (std::vector<std::string>{"part-0000000012-00001-w2-g3.jsonl",
                                                            "part-0000000012-w2-g3.jsonl"}));
  EXPECT_EQ(ids_in(root_ / "part-0000000012-00001-w2-g3.jsonl"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ids_in(root_ / "part-0000000012-w2-g3.jsonl"), (std::vector<int64_t>{3}));
}

TEST_F(file_sink_test, an_invalid_name_tag_fails_every_stage) {
  for (const std::string& bad : std::vector<std::string>{"w/1", "w 1", std::string(81, 'w')}) {
    sink_config cfg = config(root_);
    cfg.name_tag = bad;
    auto s = make_file_sink(cfg, time_formatter{});
    const std::string err = s->stage_epoch(1, 0, rides_schema, rows_with_ids({1}));
    EXPECT_NE(err.find("invalid name tag"), std::string::npos) << bad << ": " << err;
    EXPECT_FALSE(fs::exists(root_)) << bad;
  }
}

TEST(row_to_json, renders_every_type_compactly_in_schema_order) {
  const row r = {int64_t{75204}, std::string("r"), timestamp{sample_micros}, 45.75,
                 true,           std::monostate{}};
  EXPECT_EQ(row_to_json(rides_schema, r, time_formatter{}),
            R"({"id":75204,"op":"r","created_at_ts":"2025-11-07T11:29:32.953131Z",)"
            R"("fare":45.75,"paid":true,"note":null})");
}

TEST(row_to_json, writes_non_finite_doubles_as_null_and_whole_doubles_with_a_fraction) {
  const output_schema schema{{"a", "b", "c", "d", "e"},
                             {field_type::float64, field_type::float64, field_type::float64,
                              field_type::float64, field_type::float64}};
  const row r = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                 1138.0, 0.1, 1e300};
  EXPECT_EQ(row_to_json(schema, r, time_formatter{}),
            R"({"a":null,"b":null,"c":1138.0,"d":0.1,"e":1e+300})");
}

TEST(row_to_json, fills_missing_trailing_values_with_null) {
  const output_schema schema{{"a", "b"}, {field_type::int64, field_type::int64}};
  EXPECT_EQ(row_to_json(schema, row{int64_t{1}}, time_formatter{}), R"({"a":1,"b":null})");
}

TEST(append_json_string, escapes_quotes_backslashes_and_control_characters) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c\n\r\t\b\f\x01\x1f\x7f", 13));
  EXPECT_EQ(out, R"("a\"b\\c\n\r\t\b\f\u0001\u001f)"
                 "\x7f\"");
  out.clear();
  append_json_string(out, std::string_view("nul\0!", 5));
  EXPECT_EQ(out, R"("nul\u0000!")");
}

TEST(append_json_string, keeps_valid_utf8_and_replaces_ill_formed_bytes) {
  std::string out;
  append_json_string(out, "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(out, "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
  out.clear();
  append_json_string(out,
                     "a\xFF"
                     "b\xC3");  // stray byte, truncated sequence
  EXPECT_EQ(out,
            "\"a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\"");
  out.clear();
  append_json_string(out, "\xED\xA0\x80");  // a UTF-16 surrogate: three replacements
  EXPECT_EQ(out, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  boost::json::error_code ec;
  (void)boost::json::parse(out, ec);
  EXPECT_FALSE(ec);
}

TEST(write_file_atomically, publishes_the_content_under_the_final_name_only) {
  const fs::path dir = fs::temp_directory_path() / ("eddy-atomic-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ASSERT_EQ(write_file_atomically(dir.string(), "x.txt", "hello\n"), "");
  std::ifstream in(dir / "x.txt");
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "hello\n");
  EXPECT_FALSE(fs::exists(dir / ".x.txt.tmp"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace eddy
