// `eddy checkpoint list|inspect|verify` over a checkpoint directory written by checkpoint_store.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "coordinator/cluster_manifest.hpp"
#include "state/checkpoint_store.hpp"
#include "state/epoch_log.hpp"
#include "state/unit_snapshot.hpp"
#include "tests/support/process.hpp"

namespace eddy::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct result {
  exit_status status;
  std::string out, err;
};

result run_eddy(const temp_dir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), EDDY_BINARY);
  child_process p({.argv = args,
                   .out = redirect::file(dir / "cmd.out"),
                   .err = redirect::file(dir / "cmd.err")});
  auto st = p.wait_for(30s);
  EXPECT_TRUE(st.has_value()) << "eddy checkpoint did not finish";
  return {st.value_or(exit_status{}), read_text_file(dir / "cmd.out"),
          read_text_file(dir / "cmd.err")};
}

class checkpoint_cli : public ::testing::Test {
 protected:
  void SetUp() override {
    store_status st;
    auto db = kv_store::open(dir_ / "task-db", &st);
    ASSERT_TRUE(db) << st.error;
    checkpoint_options opts;
    opts.dir = dir_ / "checkpoints";
    opts.sync = false;
    auto store = checkpoint_store::open(opts, &st);
    ASSERT_TRUE(store) << st.error;
    for (uint64_t epoch = 1; epoch <= 2; ++epoch) {
      std::vector<kv_op> ops;
      for (int i = 0; i < 1000; ++i)
        ops.emplace_back("k" + std::to_string(epoch) + "-" + std::to_string(i),
                         std::string(100, 'v'));
      ASSERT_TRUE(db->write_batch(ops, false).ok());
      checkpoint_metadata md{{"offset/0", std::to_string(epoch * 100)},
                             {"watermark/0", "2025-11-07T11:29:32Z"}};
      ASSERT_TRUE(store->commit_epoch(*db, epoch, md).ok());
    }
  }
  temp_dir dir_{"eddy-ckpt-cli"};
};

TEST_F(checkpoint_cli, list_shows_every_complete_epoch_with_its_offsets) {
  auto r = run_eddy(dir_, {"checkpoint", "list", "--dir", dir_ / "checkpoints"});
  ASSERT_TRUE(r.status.ok()) << r.status.describe() << r.err;
  EXPECT_NE(r.out.find("epoch 1 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 2 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("offset/0 = 200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("watermark/0 = 2025-11-07T11:29:32Z"), std::string::npos) << r.out;
}

TEST_F(checkpoint_cli, inspect_lists_the_files_of_the_newest_epoch) {
  auto r = run_eddy(dir_, {"checkpoint", "inspect", "--dir", dir_ / "checkpoints", "--files"});
  ASSERT_TRUE(r.status.ok()) << r.status.describe() << r.err;
  EXPECT_EQ(r.out.rfind("epoch 2 ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(".sst"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("crc32c "), std::string::npos) << r.out;
}

TEST_F(checkpoint_cli, verify_passes_then_names_a_damaged_file) {
  auto ok = run_eddy(dir_, {"checkpoint", "verify", "--dir", dir_ / "checkpoints"});
  ASSERT_TRUE(ok.status.ok()) << ok.status.describe() << ok.err;
  EXPECT_NE(ok.out.find("ok: 2 complete epoch(s)"), std::string::npos) << ok.out;

  fs::path victim;
  for (const auto& e : fs::directory_iterator(dir_.path() / "checkpoints" / "sst"))
    victim = e.path();
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x5a');
  }
  auto bad = run_eddy(dir_, {"checkpoint", "verify", "--dir", dir_ / "checkpoints"});
  EXPECT_TRUE(bad.status.exited);
  EXPECT_EQ(bad.status.code, 1);
  EXPECT_NE(bad.out.find(victim.filename().string()), std::string::npos) << bad.out;
}

TEST_F(checkpoint_cli, inspect_shows_the_epoch_log_entry_and_verify_checks_it) {
  epoch_log_entry e;
  e.epoch = 2;
  e.end_offsets = {{0, 200}, {1, -1}};
  e.files["/data/out"] = {"part-0000000002-00001.jsonl", "part-0000000002.jsonl"};
  ASSERT_EQ(write_epoch_log(dir_ / "checkpoints", e, false), "");
  auto r = run_eddy(dir_, {"checkpoint", "inspect", "--dir", dir_ / "checkpoints", "--files"});
  ASSERT_TRUE(r.status.ok()) << r.status.describe() << r.err;
  EXPECT_NE(r.out.find("epoch log: end offsets 0=200 1=-1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("published 2 file(s) in /data/out\n    part-0000000002-00001.jsonl\n"),
            std::string::npos)
      << r.out;
  auto one =
      run_eddy(dir_, {"checkpoint", "inspect", "--dir", dir_ / "checkpoints", "--epoch", "1"});
  EXPECT_NE(one.out.find("epoch log: no entry"), std::string::npos) << one.out;
  auto ok = run_eddy(dir_, {"checkpoint", "verify", "--dir", dir_ / "checkpoints"});
  EXPECT_TRUE(ok.status.ok()) << ok.out;

  {
    std::fstream f(epoch_log_path(dir_ / "checkpoints", 2),
                   std::ios::in | std::ios::out | std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto at = text.find("200");
    ASSERT_NE(at, std::string::npos);
    f.seekp(static_cast<std::streamoff>(at));
    f.put('3');
  }
  auto bad = run_eddy(dir_, {"checkpoint", "verify", "--dir", dir_ / "checkpoints"});
  EXPECT_EQ(bad.status.code, 1);
  EXPECT_NE(bad.out.find("damaged: epoch-log/00000000000000000002.json: checksum mismatch"),
            std::string::npos)
      << bad.out;
}

TEST_F(checkpoint_cli, a_directory_that_is_not_a_checkpoint_is_an_error) {
  auto r = run_eddy(dir_, {"checkpoint", "list", "--dir", dir_ / "task-db"});
  EXPECT_EQ(r.status.code, 2);
  EXPECT_NE(r.err.find("not a checkpoint directory"), std::string::npos) << r.err;
}

/// A cluster's directory (eddy coordinator, eddy run --as-cluster): two manifests, each unit with
/// a snapshot, the second with a delta too, as the workers write them.
TEST(checkpoint_cli_cluster, list_inspect_and_verify_read_a_cluster_s_manifests_and_unit_files) {
  temp_dir dir{"eddy-ckpt-cli-cluster"};
  const fs::path ck = dir / "checkpoints";
  store_status st;
  auto db = kv_store::open(dir / "db", &st);
  ASSERT_TRUE(db) << st.error;
  std::vector<kv_op> ops;
  for (int i = 0; i < 100; ++i) ops.emplace_back("t/p0/" + std::to_string(i), std::string(50, 'v'));
  ASSERT_TRUE(db->write_batch(ops, false).ok());
  const fs::path snap = unit_file_path(ck, "p0", 1, 1, unit_file_kind::snapshot);
  fs::create_directories(snap.parent_path());
  const auto s1 = write_unit_snapshot(*db, "t/p0/", snap.string(), false);
  ASSERT_TRUE(s1.ok()) << s1.error;
  unit_changes changes;
  append_unit_changes({kv_op("t/p0/x", "y")}, changes);
  const fs::path delta = unit_file_path(ck, "p0", 2, 1, unit_file_kind::delta);
  const auto d1 = write_unit_delta("t/p0/", changes, delta.string(), false);
  ASSERT_TRUE(d1.ok()) << d1.error;
  for (uint64_t e = 1; e <= 2; ++e) {
    cluster_manifest m;
    m.epoch = e;
    m.generation = 1;
    m.pipeline = "cli";
    m.compat = {{"compat.topic", "t"}};
    cluster_manifest_unit u;
    u.owner = "w1";
    u.next_offset = 100 * static_cast<int64_t>(e);
    u.counters.in = 100 * static_cast<int64_t>(e);
    u.counters.out = u.counters.in;
    u.snapshot = fs::relative(snap, ck).string();
    u.bytes = s1.bytes;
    u.crc32c = s1.crc32c;
    if (e == 2) u.deltas.push_back({fs::relative(delta, ck).string(), d1.bytes, d1.crc32c});
    m.units["p0"] = u;
    ASSERT_EQ(write_cluster_manifest(ck, m, false), "");
  }

  auto list = run_eddy(dir, {"checkpoint", "list", "--dir", ck});
  ASSERT_TRUE(list.status.ok()) << list.err;
  EXPECT_NE(list.out.find("epoch 1  generation 1"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("epoch 2  generation 1"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("1 deltas " + std::to_string(d1.bytes) + " B)  records in 200"),
            std::string::npos)
      << list.out;
  auto inspect = run_eddy(dir, {"checkpoint", "inspect", "--dir", ck, "--files"});
  ASSERT_TRUE(inspect.status.ok()) << inspect.err;
  EXPECT_NE(inspect.out.find("unit p0  owner w1  next offset 200"), std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("file " + fs::relative(delta, ck).string()), std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("compat.topic = t"), std::string::npos) << inspect.out;
  auto ok = run_eddy(dir, {"checkpoint", "verify", "--dir", ck});
  EXPECT_TRUE(ok.status.ok()) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("ok: 2 complete epoch(s)"), std::string::npos) << ok.out;

  {  // one flipped byte in the delta
    std::fstream f(delta, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x7f');
  }
  fs::remove(snap);
  auto bad = run_eddy(dir, {"checkpoint", "verify", "--dir", ck});
  EXPECT_EQ(bad.status.code, 1);
  EXPECT_NE(bad.out.find("damaged: " + delta.string() + ": CRC32C"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("damaged: " + snap.string() + ": "), std::string::npos) << bad.out;
  EXPECT_NE(bad.err.find("2 problem(s)"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace eddy::test
