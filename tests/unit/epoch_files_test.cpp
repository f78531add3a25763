// epoch_files_test.cpp — staging, publishing and crash recovery of per-epoch output files.
#include "worker/sink/epoch_files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

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

/// Staging and publishing run at once (eddy run's publisher thread; the cluster coordinator's
/// process), and every publish ends by removing `_staging` when it is empty, which may come
/// between the stager's mkdir of `_staging` and of `_staging/<e>`. Here a thread does only that
/// removal, in a loop, while epochs are staged (and taken away, as a publish does): every stage
/// must still succeed.
TEST_F(epoch_files, staging_survives_a_concurrent_removal_of_the_empty_staging_dir) {
  constexpr uint64_t epochs = 2000;
  std::atomic<bool> done{false};
  std::thread tidier([&] {
    std::error_code ec;
    while (!done.load()) fs::remove(dir_ / "_staging", ec);  // only when empty, as publishes do
  });
  std::string error;
  uint64_t e = 1;
  for (; e <= epochs && error.empty(); ++e) {
    error = stage_epoch_file(dir_, e, "part.jsonl", "x\n", /*sync=*/false);
    std::error_code ec;
    char name[24];
    std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(e));
    fs::remove_all(dir_ / "_staging" / name, ec);  // published meanwhile
  }
  done = true;
  tidier.join();
  EXPECT_EQ(error, "") << "at epoch " << e - 1;
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

// ---- cluster: tagged names, publishing by list, discarding --------------------------------

TEST(name_tag, goes_before_the_extension_and_an_empty_tag_changes_nothing) {
  EXPECT_EQ(tagged_file_name("part-0000000012.jsonl", "w2-g3"), "part-0000000012-w2-g3.jsonl");
  EXPECT_EQ(tagged_file_name("part-0000000012-00004.jsonl", "w2-g3"),
            "part-0000000012-00004-w2-g3.jsonl");
  EXPECT_EQ(tagged_file_name("dead-letter-0000000001.jsonl", "host.a_1-g10"),
            "dead-letter-0000000001-host.a_1-g10.jsonl");
  EXPECT_EQ(tagged_file_name("noext", "t"), "noext-t");
  EXPECT_EQ(tagged_file_name("part-0000000012.jsonl", ""), "part-0000000012.jsonl");
}

TEST(name_tag, is_one_to_eighty_safe_characters) {
  EXPECT_EQ(check_name_tag("w2-g3"), "");
  EXPECT_EQ(check_name_tag("Host_1.example-42-g7"), "");
  EXPECT_EQ(check_name_tag(std::string(80, 'a')), "");
  for (const std::string& bad : std::vector<std::string>{"", std::string(81, 'a'), "w/1", "w 1",
                                                         "w\\1", "w:1", "\xc3\xa9"}) {
    const std::string err = check_name_tag(bad);
    EXPECT_NE(err.find("invalid name tag"), std::string::npos) << "[" << bad << "]: " << err;
  }
}

TEST_F(epoch_files, staged_paths_are_filtered_by_the_tag_before_the_extension) {
  for (const char* name : {"part-0000000005-w1-g3.jsonl", "part-0000000005-00001-w1-g3.jsonl",
                           "part-0000000005-w2-g3.jsonl", "part-0000000005-w1-g33.jsonl",
                           "part-0000000005-xw1-g3.jsonl", "dead-letter-0000000005-w1-g3.jsonl",
                           "part-0000000005.jsonl"})
    ASSERT_EQ(stage_epoch_file(dir_, 5, name, "x\n", false), "");
  ASSERT_EQ(stage_epoch_file(dir_, 6, "part-0000000006-w1-g3.jsonl", "x\n", false), "");
  std::ofstream(dir_ / "_staging" / "00000000000000000005" / ".part-0000000005-w1-g3.jsonl.tmp")
      << "half-written";
  const fs::path s5 = dir_ / "_staging" / "00000000000000000005";
  std::string err;
  EXPECT_EQ(staged_epoch_paths(dir_, 5, "w1-g3", &err),
            (std::vector<std::string>{(s5 / "dead-letter-0000000005-w1-g3.jsonl").string(),
                                      (s5 / "part-0000000005-00001-w1-g3.jsonl").string(),
                                      (s5 / "part-0000000005-w1-g3.jsonl").string()}));
  EXPECT_EQ(err, "");
  EXPECT_EQ(staged_epoch_paths(dir_, 5, "w2-g3", &err),
            std::vector<std::string>{(s5 / "part-0000000005-w2-g3.jsonl").string()});
  EXPECT_EQ(staged_epoch_paths(dir_, 5, "", &err).size(), 7u) << "no filter: every staged file";
  EXPECT_TRUE(staged_epoch_paths(dir_, 5, "w3-g3", &err).empty());
  EXPECT_TRUE(staged_epoch_paths(dir_, 7, "w1-g3", &err).empty()) << "nothing staged";
  EXPECT_EQ(err, "");
}

/// What a cluster sink kept across a generation change reports: its own files of every epoch
/// after the last committed one, and never another worker's whose tag ends with its own.
TEST_F(epoch_files, a_writer_s_staged_paths_span_epochs_and_match_its_tag_exactly) {
  for (const char* name : {"part-0000000005-w1-g3.jsonl", "part-0000000005-00002-w1-g3.jsonl",
                           "dead-letter-0000000005-w1-g3.jsonl", "part-0000000005-a-w1-g3.jsonl",
                           "part-0000000005-12-w1-g3.jsonl", "part-0000000005-w2-g3.jsonl"})
    ASSERT_EQ(stage_epoch_file(dir_, 5, name, "x\n", false), "");
  ASSERT_EQ(stage_epoch_file(dir_, 4, "part-0000000004-w1-g3.jsonl", "x\n", false), "");
  ASSERT_EQ(stage_epoch_file(dir_, 7, "dt=2025-11-07/part-0000000007-w1-g3.csv", "x\n", false), "");
  ASSERT_EQ(stage_epoch_file(dir_, 7, "part-0000000005-w1-g3.jsonl", "x\n", false), "")
      << "another epoch's name in this epoch's directory: not this writer's";
  ASSERT_EQ(stage_epoch_file(dir_, 9, "part-0000000009-w1-g3.jsonl", "x\n", false), "");
  const fs::path s5 = dir_ / "_staging" / "00000000000000000005";
  const fs::path s7 = dir_ / "_staging" / "00000000000000000007";
  std::string err;
  EXPECT_EQ(
      staged_paths_of_writer(dir_, 4, 8, "w1-g3", &err),
      (std::vector<std::string>{(s5 / "dead-letter-0000000005-w1-g3.jsonl").string(),
                                (s5 / "part-0000000005-00002-w1-g3.jsonl").string(),
                                (s5 / "part-0000000005-w1-g3.jsonl").string(),
                                (s7 / "dt=2025-11-07" / "part-0000000007-w1-g3.csv").string()}))
      << "epochs 5..8 only; a-w1-g3 and 12-w1-g3 are other writers";
  EXPECT_EQ(err, "");
  EXPECT_EQ(staged_paths_of_writer(dir_, 4, 8, "a-w1-g3", &err),
            std::vector<std::string>{(s5 / "part-0000000005-a-w1-g3.jsonl").string()});
  EXPECT_TRUE(staged_paths_of_writer(dir_, 9, 20, "w2-g3", &err).empty());
  EXPECT_TRUE(staged_paths_of_writer(dir_ / "nothing", 0, 20, "w1-g3", &err).empty());
  EXPECT_EQ(err, "");
}

TEST(staged_path_epoch, reads_the_epoch_directory_with_or_without_a_sub_folder) {
  EXPECT_EQ(staged_path_epoch("/o/_staging/00000000000000000012/part-0000000012-w1-g3.jsonl"), 12u);
  EXPECT_EQ(staged_path_epoch("o/_staging/00000000000000000007/dt=2025-11-07/part.csv"), 7u);
  EXPECT_EQ(staged_path_epoch("/o/_staging/12/part.jsonl"), std::nullopt) << "not 20 digits";
  EXPECT_EQ(staged_path_epoch("/o/x/00000000000000000012/part.jsonl"), std::nullopt);
  EXPECT_EQ(staged_path_epoch("/o/_staging/00000000000000000012/.part.jsonl.tmp"), std::nullopt);
}

TEST_F(epoch_files, publishing_a_list_moves_exactly_its_files_and_is_idempotent) {
  // Two workers staged into one directory; the coordinator publishes only w1's files.
  for (const char* name : {"part-0000000008-w1-g2.jsonl", "part-0000000008-00001-w1-g2.jsonl",
                           "part-0000000008-w2-g2.jsonl"})
    ASSERT_EQ(stage_epoch_file(dir_, 8, name, std::string(name) + "\n", false), "");
  std::string err;
  const auto w1 = staged_epoch_paths(dir_, 8, "w1-g2", &err);
  ASSERT_EQ(w1.size(), 2u);
  ASSERT_EQ(publish_staged_files(w1), "");
  EXPECT_EQ(published(), (std::set<std::string>{"part-0000000008-w1-g2.jsonl",
                                                "part-0000000008-00001-w1-g2.jsonl"}));
  EXPECT_EQ(read("part-0000000008-w1-g2.jsonl"), "part-0000000008-w1-g2.jsonl\n");
  EXPECT_EQ(staged_epoch_files(dir_, 8, &err),
            std::vector<std::string>{"part-0000000008-w2-g2.jsonl"})
      << "the other worker's file stays staged";

  ASSERT_EQ(publish_staged_files(w1), "") << "publishing the same list again is fine";
  EXPECT_EQ(published().size(), 2u);

  // A list that names a file twice, and one already published: fine too.
  const auto w2 = staged_epoch_paths(dir_, 8, "w2-g2", &err);
  ASSERT_EQ(publish_staged_files({w2[0], w1[0], w2[0]}), "");
  EXPECT_EQ(published().size(), 3u);
  EXPECT_FALSE(fs::exists(dir_ / "_staging")) << "the emptied staging directories are removed";
}

TEST_F(epoch_files, publishing_names_a_file_that_is_neither_staged_nor_published) {
  ASSERT_EQ(stage_epoch_file(dir_, 2, "part-0000000002-w1-g1.jsonl", "a\n", false), "");
  const fs::path s2 = dir_ / "_staging" / "00000000000000000002";
  const std::string missing = (s2 / "part-0000000002-w9-g1.jsonl").string();
  std::string err = publish_staged_files({missing});
  EXPECT_NE(err.find(missing), std::string::npos) << err;
  EXPECT_NE(err.find("neither"), std::string::npos) << err;
  for (const std::string& odd : {(dir_ / "part-0000000002-w1-g1.jsonl").string(),
                                 (dir_ / "_staging" / "2" / "part-2.jsonl").string(),
                                 (s2 / ".part-0000000002-w1-g1.jsonl.tmp").string()}) {
    err = publish_staged_files({odd});
    EXPECT_NE(err.find("not a staged file"), std::string::npos) << odd << ": " << err;
  }
  EXPECT_TRUE(published().empty());
}

TEST_F(epoch_files, one_list_may_publish_into_several_directories) {
  const fs::path other = dir_ / "dead";
  ASSERT_EQ(stage_epoch_file(dir_, 4, "part-0000000004-w1-g1.jsonl", "p\n", false), "");
  ASSERT_EQ(stage_epoch_file(other, 4, "dead-letter-0000000004-w1-g1.jsonl", "d\n", false), "");
  std::string err;
  std::vector<std::string> list = staged_epoch_paths(dir_, 4, "w1-g1", &err);
  for (auto& p : staged_epoch_paths(other, 4, "w1-g1", &err)) list.push_back(p);
  ASSERT_EQ(publish_staged_files(list, true), "");
  EXPECT_TRUE(fs::exists(dir_ / "part-0000000004-w1-g1.jsonl"));
  EXPECT_TRUE(fs::exists(other / "dead-letter-0000000004-w1-g1.jsonl"));
  EXPECT_FALSE(fs::exists(other / "_staging"));
}

TEST_F(epoch_files, discarding_drops_only_epochs_newer_than_the_last_complete_and_publishes_none) {
  for (uint64_t e : {3, 4, 5}) {
    ASSERT_EQ(stage_epoch_file(dir_, e, epoch_file_stem("part", e) + "-w1-g1.jsonl", "a", false),
              "");
    ASSERT_EQ(stage_epoch_file(dir_, e, epoch_file_stem("part", e) + "-w2-g1.jsonl", "b", false),
              "");
  }
  std::vector<uint64_t> discarded;
  ASSERT_EQ(discard_staged_epochs(dir_, 3, &discarded), "");
  EXPECT_EQ(discarded, (std::vector<uint64_t>{4, 5}));
  EXPECT_TRUE(published().empty()) << "nothing is published";
  std::string err;
  EXPECT_EQ(staged_epoch_files(dir_, 3, &err).size(), 2u) << "epoch 3 (complete) stays staged";
  EXPECT_TRUE(staged_epoch_files(dir_, 4, &err).empty());
  EXPECT_TRUE(staged_epoch_files(dir_, 5, &err).empty());
  ASSERT_EQ(discard_staged_epochs(dir_, 0), "");
  EXPECT_FALSE(fs::exists(dir_ / "_staging"));
  EXPECT_EQ(discard_staged_epochs(dir_ / "never-created", 0), "");
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
