// epoch_files_test.cpp — staging, publishing and crash recovery of per-epoch output files.
#include "worker/epoch_files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace eddy {
namespace {

namespace fs = std::filesystem;

class epoch_files : public ::testing::Test {
 protected:
  epoch_files()
      : dir_(fs::temp_directory_path() /
             ("eddy-epoch-files-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(dir_);
  }
  ~epoch_files() override { fs::remove_all(dir_); }

  /// Visible (published) files of the output directory, by name.
  std::set<std::string> published() const {
    std::set<std::string> out;
    if (!fs::exists(dir_)) return out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.is_regular_file()) out.insert(e.path().filename().string());
    return out;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(dir_ / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
};

TEST_F(epoch_files, staged_files_are_invisible_until_published) {
  ASSERT_EQ(stage_epoch_file(dir_, 3, "part-3.jsonl", "a\n"), "");
  ASSERT_EQ(stage_epoch_file(dir_, 3, "dead-3.jsonl", "d\n"), "");
  EXPECT_TRUE(published().empty());
  ASSERT_EQ(publish_epoch_files(dir_, 3), "");
  EXPECT_EQ(published(), (std::set<std::string>{"part-3.jsonl", "dead-3.jsonl"}));
  EXPECT_EQ(read("part-3.jsonl"), "a\n");
  EXPECT_FALSE(fs::exists(dir_ / "_staging")) << "an empty staging directory is removed";
  ASSERT_EQ(publish_epoch_files(dir_, 3), "") << "publishing again is a no-op";
  ASSERT_EQ(publish_epoch_files(dir_, 9), "") << "nothing staged: nothing to do";
}

TEST_F(epoch_files, recovery_publishes_complete_epochs_and_drops_incomplete_ones) {
  ASSERT_EQ(stage_epoch_file(dir_, 4, "part-4.jsonl", "four\n"), "");
  ASSERT_EQ(stage_epoch_file(dir_, 5, "part-5.jsonl", "five\n"), "");
  ASSERT_EQ(stage_epoch_file(dir_, 6, "part-6.jsonl", "six\n"), "");
  epoch_recovery r;
  ASSERT_EQ(recover_epoch_files(dir_, 5, &r), "");
  EXPECT_EQ(r.published, (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(r.discarded, (std::vector<uint64_t>{6}));
  EXPECT_EQ(published(), (std::set<std::string>{"part-4.jsonl", "part-5.jsonl"}));
  EXPECT_FALSE(fs::exists(dir_ / "_staging"));
}

TEST_F(epoch_files, recovery_finishes_a_publish_a_crash_interrupted) {
  ASSERT_EQ(stage_epoch_file(dir_, 7, "a-7.jsonl", "a\n"), "");
  ASSERT_EQ(stage_epoch_file(dir_, 7, "b-7.jsonl", "b\n"), "");
  // As if the process died after the first rename of the publish.
  const fs::path staged = dir_ / "_staging" / "00000000000000000007";
  fs::rename(staged / "a-7.jsonl", dir_ / "a-7.jsonl");
  ASSERT_EQ(recover_epoch_files(dir_, 7), "");
  EXPECT_EQ(published(), (std::set<std::string>{"a-7.jsonl", "b-7.jsonl"}));
}

TEST_F(epoch_files, a_rerun_epoch_replaces_its_file_instead_of_adding_one) {
  ASSERT_EQ(stage_epoch_file(dir_, 2, epoch_file_stem("part", 2) + ".jsonl", "first\n"), "");
  ASSERT_EQ(publish_epoch_files(dir_, 2), "");
  ASSERT_EQ(stage_epoch_file(dir_, 2, epoch_file_stem("part", 2) + ".jsonl", "again\n"), "");
  ASSERT_EQ(publish_epoch_files(dir_, 2), "");
  EXPECT_EQ(published(), (std::set<std::string>{"part-0000000002.jsonl"}));
  EXPECT_EQ(read("part-0000000002.jsonl"), "again\n");
}

TEST_F(epoch_files, a_half_written_temporary_is_never_published) {
  ASSERT_EQ(stage_epoch_file(dir_, 1, "part-1.jsonl", "x\n"), "");
  std::ofstream(dir_ / "_staging" / "00000000000000000001" / ".part-2.jsonl.tmp") << "partial";
  ASSERT_EQ(publish_epoch_files(dir_, 1), "");
  EXPECT_EQ(published(), (std::set<std::string>{"part-1.jsonl"}));
}

TEST_F(epoch_files, errors_name_the_path) {
  fs::create_directories(dir_.parent_path());
  std::ofstream(dir_) << "a file where the directory should be";
  const std::string err = stage_epoch_file(dir_, 1, "part-1.jsonl", "x\n");
  EXPECT_NE(err.find(dir_.string()), std::string::npos) << err;
  fs::remove(dir_);
}

}  // namespace
}  // namespace eddy
