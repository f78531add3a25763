// cluster_manifest_test.cpp — the cluster's global epoch manifests: round trip, the newest
// manifest that parses as the latest complete epoch (damaged ones skipped with a warning naming
// the file), and retention of manifests and unit snapshot files.
#include "coordinator/cluster_manifest.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <string>

namespace eddy {
namespace {

namespace fs = std::filesystem;

class cluster_manifests : public ::testing::Test {
 protected:
  cluster_manifests()
      : dir_(fs::temp_directory_path() /
             ("eddy-cluster-manifest-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(dir_);
  }
  ~cluster_manifests() override { fs::remove_all(dir_); }

  /// Where a worker of generation 4 exports `unit`'s snapshot of `epoch` (unit_file_path).
  fs::path snap_path(const std::string& unit, uint64_t epoch) const {
    return unit_file_path(dir_, unit, epoch, 4, unit_file_kind::snapshot);
  }

  /// snap_path(unit, epoch), created with a few bytes.
  fs::path snapshot(const std::string& unit, uint64_t epoch) const {
    const fs::path p = snap_path(unit, epoch);
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "state of " << unit;
    return p;
  }

  /// A manifest of `epoch` whose units reference snapshots of epoch `snap_epoch` (created).
  cluster_manifest sample(uint64_t epoch, uint64_t snap_epoch) const {
    cluster_manifest m;
    m.epoch = epoch;
    m.generation = 4;
    m.created_unix_ms = 1'700'000'000'123;
    m.pipeline = "ncr \"windowed\"";
    cluster_manifest_unit p3;
    p3.owner = "w1";
    p3.next_offset = 9'000'000'000LL;
    p3.watermark = INT64_MIN;
    p3.counters = {10, 6, 2, 1, 1};
    p3.snapshot = snapshot("p3", snap_epoch).string();  // absolute
    p3.bytes = 12;
    p3.crc32c = "0a1b2c3d";
    m.units["p3"] = p3;
    cluster_manifest_unit s1;
    s1.owner = "w2";
    s1.snapshot = fs::relative(snapshot("s1", snap_epoch), dir_).string();  // relative
    s1.bytes = 8;
    s1.crc32c = "ffffffff";
    m.units["s1"] = s1;
    m.published = {"/out/part-" + std::to_string(epoch) + "-0-w1-g4.jsonl"};
    m.compat = {{"compat.topic", "rides"}, {"compat.window", "tumbling size=1m \"x\""}};
    return m;
  }

  const fs::path dir_;
};

TEST_F(cluster_manifests, a_manifest_reads_back_as_written) {
  auto m = sample(12, 12);
  m.units["p3"].deltas = {
      {"cluster/units/p3/00000000000000000013-g4.delta", 7, "89abcdef"},
      {(dir_ / "cluster/units/p3/00000000000000000014-g4.delta").string(), 0, "00000000"}};
  ASSERT_EQ(write_cluster_manifest(dir_, m), "");
  EXPECT_EQ(cluster_manifest_path(dir_, 12), dir_ / "cluster/epochs/00000000000000000012.json");
  std::string err;
  auto got = read_cluster_manifest(dir_, 12, &err);
  ASSERT_TRUE(got.has_value()) << err;
  EXPECT_EQ(got->epoch, 12u);
  EXPECT_EQ(got->generation, 4u);
  EXPECT_EQ(got->created_unix_ms, m.created_unix_ms);
  EXPECT_EQ(got->pipeline, m.pipeline);
  EXPECT_EQ(got->published, m.published);
  EXPECT_EQ(got->compat, m.compat);
  ASSERT_EQ(got->units.size(), 2u);
  const auto& p3 = got->units.at("p3");
  EXPECT_EQ(p3.owner, "w1");
  EXPECT_EQ(p3.next_offset, 9'000'000'000LL);
  EXPECT_EQ(p3.watermark, INT64_MIN);
  EXPECT_EQ(p3.counters.in, 10);
  EXPECT_EQ(p3.counters.out, 6);
  EXPECT_EQ(p3.counters.filtered, 2);
  EXPECT_EQ(p3.counters.dead_lettered, 1);
  EXPECT_EQ(p3.counters.late, 1);
  EXPECT_EQ(p3.snapshot, m.units.at("p3").snapshot);
  EXPECT_EQ(p3.bytes, 12u);
  EXPECT_EQ(p3.crc32c, "0a1b2c3d");
  const auto& s1 = got->units.at("s1");
  EXPECT_EQ(s1.owner, "w2");
  EXPECT_EQ(s1.snapshot, m.units.at("s1").snapshot);
  EXPECT_EQ(s1.bytes, 8u);
  EXPECT_EQ(s1.crc32c, "ffffffff");
  EXPECT_TRUE(s1.deltas.empty());
  EXPECT_EQ(p3.deltas, m.units.at("p3").deltas);
  ASSERT_EQ(p3.deltas.size(), 2u);
  // No temporary file is left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& f : fs::directory_iterator(dir_ / "cluster/epochs")) ++files;
  EXPECT_EQ(files, 1);
  EXPECT_EQ(list_cluster_manifests(dir_, &err), (std::vector<uint64_t>{12}));
}

/// Manifests written before the pipeline's fingerprint was kept read with an empty one; a
/// fingerprint that is not an object of strings is damage.
TEST_F(cluster_manifests, a_manifest_without_a_fingerprint_reads_with_an_empty_one) {
  fs::create_directories(dir_ / "cluster/epochs");
  const std::string base =
      R"({"epoch":3,"generation":1,"created_unix_ms":5,"pipeline":"p","units":{},"published":[])";
  std::ofstream(dir_ / "cluster/epochs/00000000000000000003.json") << base << "}";
  std::string err;
  auto got = read_cluster_manifest(dir_, 3, &err);
  ASSERT_TRUE(got) << err;
  EXPECT_TRUE(got->compat.empty());
  std::ofstream(dir_ / "cluster/epochs/00000000000000000003.json")
      << base << R"(,"compat":{"compat.topic":7}})";
  EXPECT_FALSE(read_cluster_manifest(dir_, 3, &err));
  EXPECT_NE(err.find("compat"), std::string::npos) << err;
}

TEST_F(cluster_manifests, no_manifest_is_no_complete_epoch) {
  std::vector<std::string> warnings;
  EXPECT_FALSE(latest_complete(dir_, &warnings).has_value());
  EXPECT_TRUE(warnings.empty());
  std::string err;
  EXPECT_FALSE(read_cluster_manifest(dir_, 3, &err).has_value());
  EXPECT_NE(err.find("00000000000000000003.json"), std::string::npos) << err;
}

TEST_F(cluster_manifests, the_latest_complete_epoch_skips_damaged_newer_manifests) {
  ASSERT_EQ(write_cluster_manifest(dir_, sample(5, 5)), "");
  ASSERT_EQ(write_cluster_manifest(dir_, sample(6, 6)), "");
  // Epoch 7 cut short, epoch 8 valid JSON missing a unit's fields, a temporary file and a
  // foreign name: none of them is a complete epoch.
  std::ofstream(cluster_manifest_path(dir_, 7)) << R"({"epoch": 7, "generation": 4, "uni)";
  std::ofstream(cluster_manifest_path(dir_, 8))
      << R"({"epoch":8,"generation":4,"created_unix_ms":1,"pipeline":"p",)"
      << R"("units":{"p0":{"owner":"w1"}},"published":[]})";
  std::ofstream(dir_ / "cluster/epochs/00000000000000000009.json.tmp") << "{";
  std::ofstream(dir_ / "cluster/epochs/notes.json") << "{}";
  std::vector<std::string> warnings;
  auto m = latest_complete(dir_, &warnings);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->epoch, 6u);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("00000000000000000008.json"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("next_offset"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("00000000000000000007.json"), std::string::npos) << warnings[1];
}

TEST_F(cluster_manifests, a_manifest_under_another_epoch_s_name_is_damaged) {
  ASSERT_EQ(write_cluster_manifest(dir_, sample(5, 5)), "");
  fs::copy_file(cluster_manifest_path(dir_, 5), cluster_manifest_path(dir_, 6));
  std::vector<std::string> warnings;
  auto m = latest_complete(dir_, &warnings);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->epoch, 5u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("holds epoch 5"), std::string::npos) << warnings[0];
}

TEST_F(cluster_manifests, retention_keeps_three_manifests_and_the_snapshots_they_reference) {
  // Epochs 1, 2, 3 and 5 complete with their own snapshots; epoch 6 complete, but its units did
  // not change since epoch 5, so it references epoch 5's snapshots. Epoch 4 was aborted (no
  // manifest) but left a snapshot; epoch 7 is in progress and has one already.
  for (uint64_t e : {1, 2, 3, 5}) ASSERT_EQ(write_cluster_manifest(dir_, sample(e, e)), "");
  ASSERT_EQ(write_cluster_manifest(dir_, sample(6, 5)), "");
  const fs::path aborted = snapshot("p3", 4), in_progress = snapshot("p3", 7);
  std::ofstream(dir_ / "cluster/units/p3/notes.txt") << "not a snapshot";

  auto r = prune_cluster_checkpoints(dir_, 3);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  EXPECT_EQ(r.kept, (std::vector<uint64_t>{3, 5, 6}));
  EXPECT_EQ(r.deleted_manifests, (std::vector<uint64_t>{1, 2}));
  std::string err;
  EXPECT_EQ(list_cluster_manifests(dir_, &err), (std::vector<uint64_t>{3, 5, 6}));
  for (const char* unit : {"p3", "s1"}) {
    EXPECT_FALSE(fs::exists(snap_path(unit, 1))) << unit;
    EXPECT_FALSE(fs::exists(snap_path(unit, 2))) << unit;
    EXPECT_TRUE(fs::exists(snap_path(unit, 3))) << unit;
    EXPECT_TRUE(fs::exists(snap_path(unit, 5))) << unit;  // epochs 5 and 6
  }
  EXPECT_FALSE(fs::exists(aborted));
  EXPECT_TRUE(fs::exists(in_progress));
  EXPECT_TRUE(fs::exists(dir_ / "cluster/units/p3/notes.txt"));
  EXPECT_EQ(r.deleted_snapshots, 5u);  // p3: 1, 2, 4; s1: 1, 2
}

TEST_F(cluster_manifests, retention_reads_the_names_workers_write_deltas_and_older_names) {
  // Before unit_file_epoch, retention matched "<20 digits>.snap" only: every file a worker wrote
  // ("...-g<generation>.snap") stayed for ever.
  EXPECT_EQ(unit_file_epoch("00000000000000000012-g7.snap"), 12u);
  EXPECT_EQ(unit_file_epoch("00000000000000000012-g7.delta"), 12u);
  EXPECT_EQ(unit_file_epoch("00000000000000000012.snap"), 12u);
  for (const char* odd : {"00000000000000000012-g.snap", "00000000000000000012-gx.delta",
                          "00000000000000000012-g7.snap.tmp", "00000000000000000012.delta",
                          "0000000000000000001-g7.snap", "notes.txt", "-g7.snap"})
    EXPECT_EQ(unit_file_epoch(odd), std::nullopt) << odd;

  for (uint64_t e : {1, 2, 3}) ASSERT_EQ(write_cluster_manifest(dir_, sample(e, e)), "");
  cluster_manifest m4 = sample(4, 3);
  // Epoch 4 references epoch 3's snapshot of p3 and its delta of epoch 4.
  const fs::path delta4 = unit_file_path(dir_, "p3", 4, 4, unit_file_kind::delta);
  std::ofstream(delta4) << "delta";
  m4.units["p3"].deltas.push_back({delta4.string(), 5, "00000000"});
  ASSERT_EQ(write_cluster_manifest(dir_, m4), "");
  const fs::path old_delta = unit_file_path(dir_, "p3", 2, 3, unit_file_kind::delta);
  const fs::path legacy = dir_ / "cluster/units/p3/00000000000000000001.snap";
  const fs::path odd = dir_ / "cluster/units/p3/00000000000000000001-g4.snap.tmp";
  for (const auto& p : {old_delta, legacy, odd}) std::ofstream(p) << "x";

  auto r = prune_cluster_checkpoints(dir_, 1);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  EXPECT_EQ(r.kept, (std::vector<uint64_t>{4}));
  EXPECT_TRUE(fs::exists(snap_path("p3", 3)));
  EXPECT_TRUE(fs::exists(delta4));
  for (const auto& p : {snap_path("p3", 1), snap_path("p3", 2), old_delta, legacy})
    EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(fs::exists(odd));
}

TEST_F(cluster_manifests, retention_counts_only_manifests_that_parse) {
  for (uint64_t e = 1; e <= 4; ++e) ASSERT_EQ(write_cluster_manifest(dir_, sample(e, e)), "");
  std::ofstream(cluster_manifest_path(dir_, 5)) << "{";  // damaged newest
  auto r = prune_cluster_checkpoints(dir_, 3);
  EXPECT_EQ(r.kept, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(r.deleted_manifests, (std::vector<uint64_t>{1}));
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("00000000000000000005.json"), std::string::npos) << r.warnings[0];
  EXPECT_TRUE(fs::exists(snap_path("p3", 2)));
  EXPECT_FALSE(fs::exists(snap_path("p3", 1)));
}

TEST_F(cluster_manifests, retention_without_a_readable_manifest_deletes_nothing) {
  snapshot("p3", 1);
  fs::create_directories(dir_ / "cluster/epochs");
  std::ofstream(dir_ / "cluster/epochs/00000000000000000002.json") << "{";
  auto r = prune_cluster_checkpoints(dir_, 3);
  EXPECT_TRUE(r.kept.empty());
  EXPECT_TRUE(fs::exists(snap_path("p3", 1)));
  EXPECT_TRUE(fs::exists(dir_ / "cluster/epochs/00000000000000000002.json"));
}

}  // namespace
}  // namespace eddy
