// publish_dispatch_test.cpp — a committed epoch's staged paths reach the sink that staged them.
#include "worker/sink/publish_dispatch.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "worker/sink/epoch_files.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;

/// A sink that stages outside its output and records what it is asked to deliver.
class recording_sink : public sink {
 public:
  explicit recording_sink(std::string dir, std::string fail = {})
      : dir_(std::move(dir)), fail_(std::move(fail)) {}
  std::string write_batch(int64_t, const output_schema&, const std::vector<row>&) override {
    return {};
  }
  std::string staging_dir() const override { return dir_; }
  std::string publish_staged(const std::vector<std::string>& paths, bool) override {
    delivered.insert(delivered.end(), paths.begin(), paths.end());
    return fail_;
  }
  std::vector<std::string> delivered;

 private:
  std::string dir_, fail_;
};

class publish_dispatch : public ::testing::Test {
 protected:
  publish_dispatch()
      : root_(fs::temp_directory_path() / ("eddy-publish-dispatch-" + std::to_string(::getpid()))) {
    fs::remove_all(root_);
  }
  ~publish_dispatch() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(publish_dispatch, paths_go_to_the_sink_whose_staging_dir_holds_them_others_are_renamed) {
  const fs::path out = root_ / "out";
  ASSERT_EQ(stage_epoch_file(out.string(), 7, "part-0000000007-w1-g2.jsonl", "x\n", false), "");
  std::string err;
  auto file_paths = staged_epoch_paths(out.string(), 7, "", &err);
  ASSERT_EQ(err, "");
  ASSERT_EQ(file_paths.size(), 1u);

  std::vector<std::unique_ptr<sink>> sinks;
  sinks.push_back(nullptr);  // a sink without staging (console)
  sinks.push_back(std::make_unique<recording_sink>((root_ / "ck/sinks/postgres-1").string()));
  // A sibling whose name starts like the first one's must not take its files.
  sinks.push_back(std::make_unique<recording_sink>((root_ / "ck/sinks/postgres-10").string()));
  const std::string a = (root_ / "ck/sinks/postgres-1/_staging/00000000000000000007/a.jsonl");
  const std::string b = (root_ / "ck/sinks/postgres-10/_staging/00000000000000000007/b.jsonl");
  const std::string c = (root_ / "ck/sinks/postgres-1/_staging/00000000000000000007/c.jsonl");
  std::vector<std::string> paths{a, file_paths[0], b, c};

  EXPECT_EQ(publish_to_sinks(sinks, paths, false), "");
  auto* one = static_cast<recording_sink*>(sinks[1].get());
  auto* ten = static_cast<recording_sink*>(sinks[2].get());
  EXPECT_EQ(one->delivered, (std::vector<std::string>{a, c})) << "list order is kept";
  EXPECT_EQ(ten->delivered, (std::vector<std::string>{b}));
  EXPECT_TRUE(fs::exists(out / "part-0000000007-w1-g2.jsonl")) << "file output is renamed";
}

TEST_F(publish_dispatch, relative_and_absolute_spellings_match_and_errors_are_joined) {
  std::vector<std::unique_ptr<sink>> sinks;
  const fs::path dir = root_ / "ck" / "sinks" / "kafka-0";
  sinks.push_back(std::make_unique<recording_sink>((dir / ".." / "kafka-0" / "").string(),
                                                   "kafka: broker down"));
  const std::string p = (dir / "_staging/00000000000000000003/x.jsonl").string();
  const std::string missing = (root_ / "out/_staging/00000000000000000003/gone.jsonl").string();
  std::string err = publish_to_sinks(sinks, {p, missing}, false);
  EXPECT_NE(err.find("kafka: broker down"), std::string::npos) << err;
  EXPECT_NE(err.find("gone.jsonl"), std::string::npos) << "the rename's error is kept too: " << err;
  EXPECT_EQ(static_cast<recording_sink*>(sinks[0].get())->delivered, (std::vector<std::string>{p}));
}

}  // namespace
}  // namespace eddy
