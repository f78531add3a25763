// epoch_log_test.cpp — the epoch log: write/read round trip, checksums, listing and retention.
#include "state/epoch_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace eddy {
namespace {

namespace fs = std::filesystem;

class epoch_log : public ::testing::Test {
 protected:
  epoch_log()
      : dir_(fs::temp_directory_path() /
             ("eddy-epoch-log-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(dir_);
  }
  ~epoch_log() override { fs::remove_all(dir_); }

  static epoch_log_entry sample(uint64_t epoch) {
    epoch_log_entry e;
    e.epoch = epoch;
    e.end_offsets = {{0, 1234}, {1, -1}, {7, 9'000'000'000LL}};
    e.files["/data/out"] = {"part-0000000012-00001.jsonl", "part-0000000012.jsonl"};
    e.files["/data/dead \"letters\""] = {"dead-letter-0000000012.jsonl"};
    return e;
  }

  std::string text(uint64_t epoch) const {
    std::ifstream in(epoch_log_path(dir_, epoch));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  const std::string dir_;
};

TEST_F(epoch_log, an_entry_reads_back_as_written) {
  ASSERT_EQ(write_epoch_log(dir_, sample(12)), "");
  EXPECT_EQ(epoch_log_path(dir_, 12), dir_ + "/epoch-log/00000000000000000012.json");
  std::string err;
  auto e = read_epoch_log(dir_, 12, &err);
  ASSERT_TRUE(e.has_value()) << err;
  EXPECT_EQ(*e, sample(12));
  // No temporary file is left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& f : fs::directory_iterator(dir_ + "/epoch-log")) ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(epoch_log, a_missing_entry_is_no_error) {
  std::string err = "x";
  EXPECT_FALSE(read_epoch_log(dir_, 3, &err).has_value());
  EXPECT_EQ(err, "");
  EXPECT_TRUE(list_epoch_log(dir_, &err).empty());
  EXPECT_EQ(err, "");
}

TEST_F(epoch_log, a_changed_byte_is_a_checksum_mismatch) {
  ASSERT_EQ(write_epoch_log(dir_, sample(5)), "");
  std::string t = text(5);
  const auto at = t.find("1234");
  ASSERT_NE(at, std::string::npos);
  t[at] = '2';  // still valid JSON, another offset
  std::ofstream(epoch_log_path(dir_, 5), std::ios::trunc) << t;
  std::string err;
  EXPECT_FALSE(read_epoch_log(dir_, 5, &err).has_value());
  EXPECT_EQ(err, "epoch-log/00000000000000000005.json: checksum mismatch");
}

TEST_F(epoch_log, a_truncated_entry_is_malformed_and_named) {
  ASSERT_EQ(write_epoch_log(dir_, sample(5)), "");
  fs::resize_file(epoch_log_path(dir_, 5), 10);
  std::string err;
  EXPECT_FALSE(read_epoch_log(dir_, 5, &err).has_value());
  EXPECT_TRUE(err.starts_with("epoch-log/00000000000000000005.json: malformed")) << err;
}

TEST_F(epoch_log, an_entry_under_another_epochs_name_is_malformed) {
  ASSERT_EQ(write_epoch_log(dir_, sample(5)), "");
  fs::rename(epoch_log_path(dir_, 5), epoch_log_path(dir_, 6));
  std::string err;
  EXPECT_FALSE(read_epoch_log(dir_, 6, &err).has_value());
  EXPECT_NE(err.find("malformed (epoch number)"), std::string::npos) << err;
}

TEST_F(epoch_log, lists_entries_oldest_first_and_prunes_older_than_the_oldest_kept) {
  for (uint64_t e : {9, 3, 12, 10, 11}) ASSERT_EQ(write_epoch_log(dir_, sample(e)), "");
  std::ofstream(dir_ + "/epoch-log/00000000000000000013.json.tmp") << "half";
  std::ofstream(dir_ + "/epoch-log/notes.txt") << "not ours";
  std::string err;
  EXPECT_EQ(list_epoch_log(dir_, &err), (std::vector<uint64_t>{3, 9, 10, 11, 12}));
  EXPECT_EQ(prune_epoch_log(dir_, 10), "");
  EXPECT_EQ(list_epoch_log(dir_, &err), (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_TRUE(fs::exists(dir_ + "/epoch-log/notes.txt"));
  EXPECT_EQ(prune_epoch_log(dir_, 1), "");
  EXPECT_EQ(list_epoch_log(dir_, &err).size(), 3u);
}

TEST_F(epoch_log, rewriting_an_epoch_replaces_its_entry) {
  ASSERT_EQ(write_epoch_log(dir_, sample(4)), "");
  epoch_log_entry e = sample(4);
  e.end_offsets[0] = 99;
  e.files.clear();
  ASSERT_EQ(write_epoch_log(dir_, e, /*sync=*/false), "");
  std::string err;
  auto back = read_epoch_log(dir_, 4, &err);
  ASSERT_TRUE(back.has_value()) << err;
  EXPECT_EQ(*back, e);
}

}  // namespace
}  // namespace eddy
