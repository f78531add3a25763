// file_formats_test.cpp — the file sink's CSV format and its dt=YYYY-MM-DD sub-folders: quoting,
// a header per file, dates in the pipeline's zone, exactly-once staging and publishing (one
// process and the cluster's list) with sub-folders; the start-up line of each sink.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "model/time_format.hpp"
#include "tests/support/csv.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/sink.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;
using test::parse_csv;

constexpr int64_t us_per_s = 1'000'000;
constexpr int64_t sample_micros = 1762514972953131;  // 2025-11-07T11:29:32.953131Z

std::string csv_field(std::string_view s) {
  std::string out;
  append_csv_string(out, s);
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Every regular file under `dir` (outside `_staging`), as paths relative to it, sorted.
std::vector<std::string> published_under(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->path().filename() == "_staging") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- CSV text ----

TEST(csv, quotes_only_fields_that_need_it_and_doubles_quotes) {
  EXPECT_EQ(csv_field("plain text"), "plain text");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("\""), "\"\"\"\"");
  EXPECT_EQ(csv_field("line\nbreak"), "\"line\nbreak\"");
  EXPECT_EQ(csv_field("carriage\rreturn"), "\"carriage\rreturn\"");
  EXPECT_EQ(csv_field("crlf\r\n"), "\"crlf\r\n\"");
  EXPECT_EQ(csv_field(" spaces and\ttab "), " spaces and\ttab ") << "kept as they are";
  EXPECT_EQ(csv_field(""), "\"\"") << "an empty string is quoted: an empty field is null";
}

TEST(csv, keeps_unicode_and_replaces_ill_formed_bytes) {
  EXPECT_EQ(csv_field("caf\xC3\xA9 \xE2\x82\xB9 \xF0\x9F\x9A\x95"),
            "caf\xC3\xA9 \xE2\x82\xB9 \xF0\x9F\x9A\x95");
  EXPECT_EQ(csv_field("bad \xFF byte"), "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(csv_field("\xC3\xA9,\xC3"), "\"\xC3\xA9,\xEF\xBF\xBD\"") << "a cut sequence";
}

const output_schema every_type{{"id", "name", "at", "fare", "paid", "note"},
                               {field_type::int64, field_type::string, field_type::timestamp,
                                field_type::float64, field_type::boolean, field_type::string}};

TEST(csv, renders_each_type_as_the_json_sink_does_and_null_as_an_empty_field) {
  const row r = {int64_t{-75204}, std::string("a,\"b\"\nc"), timestamp{sample_micros}, 1138.0, true,
                 std::string()};
  EXPECT_EQ(row_to_csv(every_type, r, time_formatter{}),
            "-75204,\"a,\"\"b\"\"\nc\",2025-11-07T11:29:32.953131Z,1138.0,true,\"\"");
  const row nulls = {std::monostate{}, std::monostate{}, std::monostate{},
                     std::monostate{}, std::monostate{}, std::monostate{}};
  EXPECT_EQ(row_to_csv(every_type, nulls, time_formatter{}), ",,,,,");
  const row odd = {int64_t{1}, std::string("x"), timestamp{0}, 45.75, false};  // short row
  EXPECT_EQ(row_to_csv(every_type, odd, time_formatter{}), "1,x,1970-01-01T00:00:00Z,45.75,false,");
  const row nan = {int64_t{1}, std::string("x"), timestamp{0}, std::nan(""), false, std::string()};
  EXPECT_EQ(row_to_csv(every_type, nan, time_formatter{}), "1,x,1970-01-01T00:00:00Z,,false,\"\"")
      << "NaN is null, as in JSON";
  const auto kolkata = time_formatter::for_zone("Asia/Kolkata");
  ASSERT_TRUE(kolkata.has_value());
  const row ts = {int64_t{1}, std::string("x"), timestamp{sample_micros}, 0.1,
                  true,       std::string("n")};
  EXPECT_EQ(row_to_csv(every_type, ts, *kolkata),
            "1,x,2025-11-07T16:59:32.953131+05:30,0.1,true,n");
  EXPECT_EQ(
      row_to_json(every_type, ts, *kolkata).find("\"at\":\"2025-11-07T16:59:32.953131+05:30\""),
      std::string("{\"id\":1,\"name\":\"x\",").size())
      << "the same text as the JSON sink";
}

TEST(csv, the_header_holds_the_column_names) {
  EXPECT_EQ(csv_header(every_type), "id,name,at,fare,paid,note");
  EXPECT_EQ(csv_header(output_schema{{"a,b", "c"}, {field_type::string, field_type::string}}),
            "\"a,b\",c");
}

// ---- dt= sub-folders ----

TEST(date_partition_folder, is_the_date_in_the_pipeline_zone) {
  const time_formatter utc;
  const auto kolkata = time_formatter::for_zone("+05:30");
  const auto la = time_formatter::for_zone("America/Los_Angeles");
  ASSERT_TRUE(kolkata && la);
  // 2025-11-06T18:30:00Z is midnight of 2025-11-07 in +05:30.
  const int64_t midnight_kolkata = 1762453800 * us_per_s;
  EXPECT_EQ(date_partition_folder(timestamp{midnight_kolkata - 1}, *kolkata), "dt=2025-11-06");
  EXPECT_EQ(date_partition_folder(timestamp{midnight_kolkata}, *kolkata), "dt=2025-11-07");
  EXPECT_EQ(date_partition_folder(timestamp{midnight_kolkata}, utc), "dt=2025-11-06");
  // 2025-11-07T08:00:00Z is midnight in Los Angeles (PST, -08:00); UTC says the 7th already.
  const int64_t midnight_la = 1762502400 * us_per_s;
  EXPECT_EQ(date_partition_folder(timestamp{midnight_la - 1}, *la), "dt=2025-11-06");
  EXPECT_EQ(date_partition_folder(timestamp{midnight_la}, *la), "dt=2025-11-07");
  EXPECT_EQ(date_partition_folder(timestamp{midnight_la - 1}, utc), "dt=2025-11-07");
  // Summer time: 2025-07-01T07:00:00Z is midnight in Los Angeles (PDT, -07:00).
  const int64_t summer_midnight_la = 1751353200 * us_per_s;
  EXPECT_EQ(date_partition_folder(timestamp{summer_midnight_la - 1}, *la), "dt=2025-06-30");
  EXPECT_EQ(date_partition_folder(timestamp{summer_midnight_la}, *la), "dt=2025-07-01");
  // Before 1970: a negative instant rounds down to its day.
  EXPECT_EQ(date_partition_folder(timestamp{-1}, utc), "dt=1969-12-31");
  EXPECT_EQ(date_partition_folder(timestamp{0}, utc), "dt=1970-01-01");
  EXPECT_EQ(date_partition_folder(std::nullopt, utc), "dt=__HIVE_DEFAULT_PARTITION__");
}

class file_formats : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("eddy-file-formats-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  sink_config config(file_format f, std::string partition_by = {}, std::string tag = {}) const {
    sink_config cfg;
    cfg.kind = sink_kind::file;
    cfg.path = root_.string();
    cfg.format = f;
    cfg.partition_by = std::move(partition_by);
    cfg.name_tag = std::move(tag);
    return cfg;
  }

  fs::path root_;
};

const output_schema windowed{
    {"window_start", "window_end", "city", "n"},
    {field_type::timestamp, field_type::timestamp, field_type::string, field_type::int64}};

/// 2025-11-06T18:00:00Z: 23:30 of the 6th in +05:30; each window 30 minutes.
constexpr int64_t six_pm_utc = 1762452000 * us_per_s;
constexpr int64_t half_hour = 1800 * us_per_s;

row window_row(int k, std::string city, int64_t n) {
  return {timestamp{six_pm_utc + k * half_hour}, timestamp{six_pm_utc + (k + 1) * half_hour},
          std::move(city), n};
}

/// The "n" column of a CSV file with `windowed`'s header.
std::vector<int64_t> counts_in(const fs::path& file) {
  const auto records = parse_csv(read_file(file));
  std::vector<int64_t> out;
  EXPECT_FALSE(records.empty()) << file;
  if (records.empty()) return out;
  EXPECT_EQ(records[0].size(), 4u);
  EXPECT_EQ(records[0][0], std::optional<std::string>("window_start")) << "header first";
  for (size_t i = 1; i < records.size(); ++i) out.push_back(std::stoll(*records[i].at(3)));
  return out;
}

TEST_F(file_formats, every_csv_file_has_its_own_header_and_parses_back) {
  auto s = make_file_sink(config(file_format::csv), time_formatter{});
  const std::vector<row> rows = {
      {timestamp{0}, timestamp{half_hour}, std::string("a,\"b\"\r\nc"), int64_t{1}},
      {timestamp{0}, std::monostate{}, std::string(), int64_t{2}},
      {timestamp{0}, timestamp{half_hour}, std::monostate{}, int64_t{3}},
  };
  ASSERT_EQ(s->write_batch(1, windowed, rows), "");
  ASSERT_EQ(s->write_batch(2, windowed, {window_row(0, "x", 4)}), "");
  const auto files = published_under(root_);
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    EXPECT_TRUE(f.ends_with(".csv")) << f;
    EXPECT_TRUE(f.starts_with("part-0000000")) << f;
  }
  const auto first = parse_csv(read_file(root_ / files[0]));
  ASSERT_EQ(first.size(), 4u);
  using field = std::optional<std::string>;
  EXPECT_EQ(first[0], (std::vector<field>{"window_start", "window_end", "city", "n"}));
  EXPECT_EQ(first[1], (std::vector<field>{"1970-01-01T00:00:00Z", "1970-01-01T00:30:00Z",
                                          "a,\"b\"\r\nc", "1"}));
  EXPECT_EQ(first[2], (std::vector<field>{"1970-01-01T00:00:00Z", std::nullopt, "", "2"}))
      << "null is an empty field, the empty string a quoted one";
  EXPECT_EQ(first[3], (std::vector<field>{"1970-01-01T00:00:00Z", "1970-01-01T00:30:00Z",
                                          std::nullopt, "3"}));
  EXPECT_EQ(counts_in(root_ / files[1]), std::vector<int64_t>{4});

  // With checkpoints: every staged part is a file with a header.
  fs::remove_all(root_);
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(7, 1, windowed, {window_row(0, "x", 1)}), "");
  ASSERT_EQ(s->stage_epoch(7, 0, windowed, {window_row(0, "y", 2)}), "");
  ASSERT_EQ(s->publish_epoch(7), "");
  EXPECT_EQ(published_under(root_),
            (std::vector<std::string>{"part-0000000007-00001.csv", "part-0000000007.csv"}));
  EXPECT_EQ(counts_in(root_ / "part-0000000007-00001.csv"), std::vector<int64_t>{1});
  EXPECT_EQ(counts_in(root_ / "part-0000000007.csv"), std::vector<int64_t>{2});
}

TEST_F(file_formats, jsonl_stays_the_default_without_headers) {
  sink_config cfg = config(file_format::jsonl);
  auto s = make_file_sink(cfg, time_formatter{});
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(3, 0, windowed, {window_row(0, "x", 1)}), "");
  ASSERT_EQ(s->publish_epoch(3), "");
  EXPECT_EQ(published_under(root_), std::vector<std::string>{"part-0000000003.jsonl"});
  EXPECT_EQ(read_file(root_ / "part-0000000003.jsonl"),
            "{\"window_start\":\"2025-11-06T18:00:00Z\",\"window_end\":\"2025-11-06T18:30:00Z\","
            "\"city\":\"x\",\"n\":1}\n");
}

TEST_F(file_formats, a_batch_goes_into_dt_folders_of_its_rows_local_dates) {
  const auto kolkata = time_formatter::for_zone("+05:30");
  ASSERT_TRUE(kolkata.has_value());
  auto s = make_file_sink(config(file_format::csv, "window_start"), *kolkata);
  // Windows starting 23:30 on the 6th, 00:00 and 00:30 on the 7th (+05:30), and a null start.
  std::vector<row> rows = {window_row(0, "a", 1), window_row(1, "b", 2), window_row(0, "c", 3),
                           window_row(2, "d", 4)};
  rows.push_back({std::monostate{}, timestamp{0}, std::string("e"), int64_t{5}});
  ASSERT_EQ(s->write_batch(9, windowed, rows), "");
  const auto files = published_under(root_);
  ASSERT_EQ(files.size(), 3u) << "one file per folder";
  const std::string name = fs::path(files[0]).filename().string();
  EXPECT_TRUE(name.starts_with("part-00000009-") && name.ends_with(".csv")) << name;
  EXPECT_EQ(files, (std::vector<std::string>{"dt=2025-11-06/" + name, "dt=2025-11-07/" + name,
                                             "dt=__HIVE_DEFAULT_PARTITION__/" + name}));
  EXPECT_EQ(counts_in(root_ / files[0]), (std::vector<int64_t>{1, 3})) << "arrival order";
  EXPECT_EQ(counts_in(root_ / files[1]), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(counts_in(root_ / files[2]), (std::vector<int64_t>{5}));
  const auto first = parse_csv(read_file(root_ / files[0]));
  EXPECT_EQ(first.at(1).at(0), std::optional<std::string>("2025-11-06T23:30:00+05:30"))
      << "the folder is the date of the text written";
}

TEST_F(file_formats, partitioned_epochs_stage_in_sub_folders_and_publish_on_commit) {
  const auto kolkata = time_formatter::for_zone("+05:30");
  ASSERT_TRUE(kolkata.has_value());
  auto s = make_file_sink(config(file_format::csv, "window_start"), *kolkata);
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(12, 1, windowed, {window_row(0, "a", 1), window_row(1, "b", 2)}), "");
  ASSERT_EQ(s->stage_epoch(12, 0, windowed, {window_row(1, "c", 3)}), "");
  std::string err;
  EXPECT_EQ(staged_epoch_files(root_.string(), 12, &err),
            (std::vector<std::string>{"dt=2025-11-06/part-0000000012-00001.csv",
                                      "dt=2025-11-07/part-0000000012-00001.csv",
                                      "dt=2025-11-07/part-0000000012.csv"}));
  EXPECT_EQ(err, "");
  EXPECT_TRUE(fs::exists(root_ / "_staging" / "00000000000000000012" / "dt=2025-11-07" /
                         "part-0000000012.csv"));
  EXPECT_TRUE(published_under(root_).empty()) << "invisible until published";
  ASSERT_EQ(s->publish_epoch(12), "");
  EXPECT_EQ(published_under(root_),
            (std::vector<std::string>{"dt=2025-11-06/part-0000000012-00001.csv",
                                      "dt=2025-11-07/part-0000000012-00001.csv",
                                      "dt=2025-11-07/part-0000000012.csv"}));
  EXPECT_FALSE(fs::exists(root_ / "_staging"));
  EXPECT_EQ(counts_in(root_ / "dt=2025-11-07" / "part-0000000012-00001.csv"),
            std::vector<int64_t>{2});
  ASSERT_EQ(s->publish_epoch(12), "") << "idempotent";
}

TEST_F(file_formats, a_part_staged_again_replaces_its_files_in_every_folder) {
  auto s = make_file_sink(config(file_format::csv, "window_start"), time_formatter{});
  s->set_sync(false);
  // Day 1 and day 2 first; staged again with rows of day 2 only.
  const int64_t day = 86400 * us_per_s;
  auto at = [&](int64_t t, int64_t n) {
    return row{timestamp{t}, timestamp{t + half_hour}, std::string("x"), n};
  };
  ASSERT_EQ(s->stage_epoch(5, 1, windowed, {at(0, 1), at(day, 2)}), "");
  ASSERT_EQ(s->stage_epoch(5, 1, windowed, {at(day, 3)}), "");
  ASSERT_EQ(s->publish_epoch(5), "");
  EXPECT_EQ(published_under(root_),
            std::vector<std::string>{"dt=1970-01-02/part-0000000005-00001.csv"});
  EXPECT_EQ(counts_in(root_ / "dt=1970-01-02" / "part-0000000005-00001.csv"),
            std::vector<int64_t>{3});
}

TEST_F(file_formats, recovery_publishes_complete_partitioned_epochs_and_drops_the_rest) {
  auto s = make_file_sink(config(file_format::csv, "window_end"), time_formatter{});
  s->set_sync(false);
  ASSERT_EQ(s->stage_epoch(4, 0, windowed, {window_row(0, "a", 1), window_row(20, "b", 2)}), "");
  ASSERT_EQ(s->stage_epoch(5, 0, windowed, {window_row(0, "c", 3)}), "");
  // A crash in the middle of epoch 4's publish: one of its files is out already.
  const fs::path staged4 = root_ / "_staging" / "00000000000000000004";
  fs::create_directories(root_ / "dt=2025-11-06");
  fs::rename(staged4 / "dt=2025-11-06" / "part-0000000004.csv",
             root_ / "dt=2025-11-06" / "part-0000000004.csv");
  // Restart: epoch 4 completed, 5 did not.
  auto restarted = make_file_sink(config(file_format::csv, "window_end"), time_formatter{});
  restarted->set_sync(false);
  epoch_recovery rec;
  ASSERT_EQ(restarted->recover(4, &rec), "");
  EXPECT_EQ(rec.published, std::vector<uint64_t>{4});
  EXPECT_EQ(rec.discarded, std::vector<uint64_t>{5});
  EXPECT_EQ(published_under(root_),
            (std::vector<std::string>{"dt=2025-11-06/part-0000000004.csv",
                                      "dt=2025-11-07/part-0000000004.csv"}));
  EXPECT_FALSE(fs::exists(root_ / "_staging"));
  EXPECT_EQ(counts_in(root_ / "dt=2025-11-07" / "part-0000000004.csv"), std::vector<int64_t>{2});
}

TEST_F(file_formats, a_cluster_publishes_tagged_partitioned_files_by_list) {
  const auto kolkata = time_formatter::for_zone("+05:30");
  ASSERT_TRUE(kolkata.has_value());
  auto w1 = make_file_sink(config(file_format::csv, "window_start", "w1-g2"), *kolkata);
  auto w2 = make_file_sink(config(file_format::csv, "window_start", "w2-g2"), *kolkata);
  for (auto* s : {w1.get(), w2.get()}) s->set_sync(false);
  ASSERT_EQ(w1->stage_epoch(8, 0, windowed, {window_row(0, "a", 1), window_row(1, "b", 2)}), "");
  ASSERT_EQ(w2->stage_epoch(8, 1, windowed, {window_row(1, "c", 3)}), "");
  ASSERT_EQ(w2->stage_epoch(9, 0, windowed, {window_row(0, "d", 4)}), "");  // an aborted epoch
  std::string err;
  const fs::path staging = root_ / "_staging" / "00000000000000000008";
  const auto list1 = staged_epoch_paths(root_.string(), 8, "w1-g2", &err);
  EXPECT_EQ(list1, (std::vector<std::string>{
                       (staging / "dt=2025-11-06" / "part-0000000008-w1-g2.csv").string(),
                       (staging / "dt=2025-11-07" / "part-0000000008-w1-g2.csv").string()}));
  const auto list2 = staged_epoch_paths(root_.string(), 8, "w2-g2", &err);
  EXPECT_EQ(list2, std::vector<std::string>{
                       (staging / "dt=2025-11-07" / "part-0000000008-00001-w2-g2.csv").string()});
  EXPECT_EQ(err, "");
  // The coordinator publishes worker 1's list (twice: idempotent), then worker 2's.
  ASSERT_EQ(publish_staged_files(list1, true), "");
  EXPECT_TRUE(fs::exists(staging / "dt=2025-11-07" / "part-0000000008-00001-w2-g2.csv"))
      << "another worker's file stays staged";
  EXPECT_FALSE(fs::exists(staging / "dt=2025-11-06")) << "an emptied sub-folder goes";
  ASSERT_EQ(publish_staged_files(list1, true), "");
  ASSERT_EQ(publish_staged_files(list2, true), "");
  EXPECT_FALSE(fs::exists(staging)) << "the emptied epoch directory goes";
  EXPECT_EQ(published_under(root_),
            (std::vector<std::string>{"dt=2025-11-06/part-0000000008-w1-g2.csv",
                                      "dt=2025-11-07/part-0000000008-00001-w2-g2.csv",
                                      "dt=2025-11-07/part-0000000008-w1-g2.csv"}));
  // What an aborted epoch staged in sub-folders is cleaned up, never published.
  std::vector<uint64_t> discarded;
  ASSERT_EQ(discard_stale_staged_epochs(root_.string(), 9, {}, &discarded), "");
  EXPECT_EQ(discarded, std::vector<uint64_t>{9});
  EXPECT_FALSE(fs::exists(root_ / "_staging"));
  EXPECT_EQ(published_under(root_).size(), 3u);
}

TEST_F(file_formats, staged_names_have_at_most_one_sub_folder_level) {
  const std::string dir = root_.string();
  for (const std::string bad :
       {"a/b/c.csv", ".hidden.csv", "_meta/x.csv", "dt=x/.tmp", "/x.csv", "dt=x/", "../x.csv"}) {
    const std::string err = stage_epoch_file(dir, 1, bad, "x\n", false);
    EXPECT_NE(err.find("invalid staged file name"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_FALSE(fs::exists(root_ / "_staging"));
  ASSERT_EQ(stage_epoch_file(dir, 1, "dt=2025-01-01/x.csv", "x\n", false), "");
  const fs::path epoch_dir = root_ / "_staging" / "00000000000000000001";
  for (const fs::path& bad : {epoch_dir / "_meta" / "x.csv", epoch_dir / "a" / "b" / "x.csv",
                              epoch_dir / "dt=2025-01-01" / ".x.csv.tmp"}) {
    const std::string err = publish_staged_files({bad.string()}, false);
    EXPECT_NE(err.find("not a staged file"), std::string::npos) << bad << ": " << err;
  }
  std::string err;
  const auto paths = staged_epoch_paths(dir, 1, "", &err);
  ASSERT_EQ(paths, std::vector<std::string>{(epoch_dir / "dt=2025-01-01" / "x.csv").string()});
  ASSERT_EQ(publish_staged_files(paths, true), "");
  EXPECT_EQ(read_file(root_ / "dt=2025-01-01" / "x.csv"), "x\n");
  EXPECT_EQ(publish_staged_files(paths, true), "") << "published already: fine";
  fs::remove(root_ / "dt=2025-01-01" / "x.csv");
  EXPECT_NE(publish_staged_files(paths, true).find("neither it nor"), std::string::npos);
}

// ---- partition_by is checked against the windowing plan's own columns ----

TEST(output_columns, are_the_columns_of_the_windowing_plan) {
  const std::string head =
      "[source]\ntopic = \"t\"\n"
      "[[fields]]\nname = \"id\"\ntype = \"int\"\n"
      "[[fields]]\nname = \"ts\"\ntype = \"timestamp\"\n"
      "[[fields]]\nname = \"city\"\n"
      "[[fields]]\nname = \"fare\"\ntype = \"double\"\n"
      "[[fields]]\nname = \"ok\"\ntype = \"bool\"\n"
      "[[sinks]]\ntype = \"console\"\n"
      "[aggregate]\ngroup_by = [\"city\", \"ok\"]\n";
  std::string aggs;
  int k = 0;
  for (const char* fn : {"count", "sum", "avg", "min", "max", "count_distinct",
                         "approx_count_distinct", "p50", "p90", "p95", "p99", "first", "last"}) {
    for (const char* field : {"id", "ts", "city", "fare", "ok"}) {
      const std::string f = fn;
      const bool numeric_only = f == "sum" || f == "avg" || f[0] == 'p';
      if (numeric_only && std::string(field) != "id" && std::string(field) != "fare") continue;
      aggs += "[[aggregates]]\nalias = \"a" + std::to_string(k++) + "\"\nfunction = \"" + f +
              "\"\nfield = \"" + field + "\"\n";
    }
  }
  aggs += "[[aggregates]]\nalias = \"q\"\nfunction = \"percentile\"\nfield = \"fare\"\nq = 0.3\n";
  for (const std::string window :
       {"[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"ts\"\n",
        "[window]\ntype = \"session\"\ngap = \"1m\"\ntime_field = \"ts\"\n", ""}) {
    auto loaded = parse_pipeline_config(head + aggs + window, "t.toml");
    ASSERT_TRUE(loaded.config) << loaded.error;
    std::string err;
    auto plan = aggregation_plan::from_config(*loaded.config, &err);
    ASSERT_TRUE(plan) << err;
    std::vector<std::string> names;
    std::vector<field_type> types;
    for (const auto& c : output_columns(*loaded.config)) {
      names.push_back(c.name);
      types.push_back(c.type);
    }
    EXPECT_EQ(names, plan->schema.names) << window;
    EXPECT_EQ(types, plan->schema.types) << window;
  }
}

// ---- what `eddy run` says about each sink ----

pipeline_config with_sinks(std::vector<sink_config> sinks, bool checkpoints,
                           std::string starting_offsets = "earliest") {
  pipeline_config cfg;
  cfg.sinks = std::move(sinks);
  if (checkpoints) cfg.checkpoint.dir = "ck";
  cfg.source.starting_offsets = std::move(starting_offsets);
  return cfg;
}

TEST(describe_sink, names_each_sink_and_its_guarantee) {
  sink_config file;
  file.kind = sink_kind::file;
  file.path = "out";
  file.format = file_format::csv;
  file.partition_by = "window_start";
  sink_config console;
  sink_config kafka;
  kafka.kind = sink_kind::kafka;
  kafka.topic = "results";
  sink_config plain = file;
  plain.path = "/data/rides/";
  plain.format = file_format::jsonl;
  plain.partition_by.clear();
  const auto cfg = with_sinks({file, console, kafka, plain}, true);
  EXPECT_EQ(describe_sink(cfg, 0),
            "sink 1: file out/ (csv, by dt of window_start): exactly-once (staged per epoch, "
            "published on commit)");
  EXPECT_EQ(describe_sink(cfg, 1),
            "sink 2: console: at-least-once (written per trigger; after a crash, what followed "
            "the last complete checkpoint is written again)");
  EXPECT_EQ(describe_sink(cfg, 2),
            "sink 3: kafka topic results: exactly-once (staged per epoch, delivered with an "
            "idempotent producer after the epoch commits, read back before any re-delivery)");
  EXPECT_EQ(describe_sink(cfg, 3),
            "sink 4: file /data/rides/ (jsonl): exactly-once (staged per epoch, published on "
            "commit)");
}

TEST(describe_sink, says_what_a_crash_means_without_checkpoints) {
  sink_config file;
  file.kind = sink_kind::file;
  file.path = "out";
  EXPECT_EQ(describe_sink(with_sinks({file}, false), 0),
            "sink 1: file out/ (jsonl): per batch, no checkpoints: each file appears whole "
            "(written, then renamed); a run after a crash starts over at the earliest offsets, so "
            "rows written before are written again (at-least-once)");
  EXPECT_EQ(describe_sink(with_sinks({sink_config{}}, false, "latest"), 0),
            "sink 1: console: per batch, no checkpoints: a run after a crash starts over at the "
            "latest offsets, so rows that arrived in between are never written (at-most-once)");
}

}  // namespace
}  // namespace eddy
