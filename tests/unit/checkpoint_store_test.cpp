#include "state/checkpoint_store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <thread>

namespace eddy {
namespace {

namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/eddy-ckpt-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path); }
};

std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key/%08d", i);
  return buf;
}

/// Puts keys [from, to) with value "<tag>-<i>" padded to ~100 bytes, in batches of 1000.
void put_range(kv_store& db, int from, int to, const std::string& tag) {
  std::vector<kv_op> ops;
  for (int i = from; i < to; ++i) {
    ops.emplace_back(key_of(i), tag + "-" + std::to_string(i) + std::string(90, 'v'));
    if (ops.size() == 1000) {
      ASSERT_TRUE(db.write_batch(ops, false).ok());
      ops.clear();
    }
  }
  if (!ops.empty()) {
    ASSERT_TRUE(db.write_batch(ops, false).ok());
  }
}

struct fixture {
  temp_dir tmp;
  fs::path db_dir = tmp.path / "task-db";
  fs::path ck_dir = tmp.path / "checkpoints";
  std::unique_ptr<kv_store> db;
  std::unique_ptr<checkpoint_store> store;

  explicit fixture(std::size_t retain = 3) {
    store_status st;
    db = kv_store::open(db_dir.string(), &st);
    EXPECT_TRUE(db) << st.error;
    store = checkpoint_store::open({ck_dir.string(), retain, true}, &st);
    EXPECT_TRUE(store) << st.error;
  }

  commit_report commit(std::uint64_t epoch, checkpoint_metadata md = {}) {
    commit_report report;
    store_status st = store->commit_epoch(*db, epoch, md, &report);
    EXPECT_TRUE(st.ok()) << st.error;
    EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();
    return report;
  }

  /// A stored file of `epoch` that is an SST added by that epoch (so no older epoch shares it).
  std::string added_sst_of(std::uint64_t epoch) {
    store_status st;
    auto info = store->inspect(epoch, &st);
    EXPECT_TRUE(info) << st.error;
    for (const auto& f : info->files)
      if (f.added && f.path.starts_with("sst/")) return f.path;
    ADD_FAILURE() << "epoch " << epoch << " added no SST";
    return {};
  }
};

bool contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines)
    if (l.find(needle) != std::string::npos) return true;
  return false;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(checkpoint_store, retention_keeps_the_last_k_epochs_and_deletes_unreferenced_ssts) {
  fixture f(3);
  std::string first_sst;
  for (int e = 1; e <= 5; ++e) {
    // Each epoch rewrites every key and compacts: the DB then holds only SSTs of this epoch, so
    // the SSTs of epochs 1 and 2 are referenced by no kept epoch once 5 is committed.
    put_range(*f.db, 0, 2000, "e" + std::to_string(e));
    ASSERT_TRUE(f.db->compact_all().ok());
    f.commit(static_cast<std::uint64_t>(e));
    if (e == 1) first_sst = f.added_sst_of(1);
  }
  ASSERT_FALSE(first_sst.empty());
  EXPECT_FALSE(fs::exists(f.ck_dir / first_sst)) << first_sst << " outlived its epochs";
  store_status st;
  EXPECT_EQ(f.store->list(&st), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_FALSE(fs::exists(f.ck_dir / "epochs" / "1"));
  EXPECT_FALSE(fs::exists(f.ck_dir / "epochs" / "2"));

  // Every file in sst/ is referenced by a kept manifest, and every reference exists.
  std::set<std::string> referenced;
  for (std::uint64_t e : {3, 4, 5}) {
    auto info = f.store->inspect(e, &st);
    ASSERT_TRUE(info) << st.error;
    for (const auto& file : info->files) referenced.insert(file.path);
  }
  std::size_t in_sst = 0;
  for (const auto& entry : fs::directory_iterator(f.ck_dir / "sst")) {
    ++in_sst;
    EXPECT_TRUE(referenced.count("sst/" + entry.path().filename().string()))
        << entry.path() << " is not referenced by any kept epoch";
  }
  EXPECT_GT(in_sst, 0u);
  EXPECT_TRUE(f.store->verify(&st).empty());
  std::ifstream latest(f.ck_dir / "LATEST");
  std::string latest_epoch;
  latest >> latest_epoch;
  EXPECT_EQ(latest_epoch, "5");
}

TEST(checkpoint_store, an_epoch_after_a_small_change_adds_few_bytes) {
  fixture f;
  for (int part = 0; part < 4; ++part) {
    put_range(*f.db, part * 25'000, (part + 1) * 25'000, "base");
    ASSERT_TRUE(f.db->flush().ok());
  }
  // No background compaction may rewrite the base between the two commits.
  ASSERT_TRUE(f.db->compact_all().ok());
  commit_report first = f.commit(1);
  EXPECT_EQ(first.info.shared_bytes, 0u);
  EXPECT_GT(first.info.total_bytes, 1'000'000u);

  put_range(*f.db, 500, 600, "changed");
  commit_report second = f.commit(2);
  EXPECT_GT(second.info.shared_bytes, 0u);
  EXPECT_LT(second.info.new_bytes * 20, second.info.total_bytes)
      << "new " << second.info.new_bytes << " of " << second.info.total_bytes;
  EXPECT_EQ(second.info.new_bytes + second.info.shared_bytes, second.info.total_bytes);
  EXPECT_EQ(second.info.file_count, second.info.files.size());
}

TEST(checkpoint_store, restore_gives_exactly_the_keys_of_the_epoch) {
  fixture f;
  put_range(*f.db, 0, 5000, "a");
  f.commit(1);
  put_range(*f.db, 0, 100, "b");
  ASSERT_TRUE(f.db->write_batch({{key_of(200), std::nullopt}}, false).ok());
  f.commit(2, {{"offset/orders/0", "1234"}});
  // Written after the last commit: must not come back.
  put_range(*f.db, 5000, 6000, "late");
  put_range(*f.db, 0, 10, "late");

  fs::path restored = f.tmp.path / "restored";
  std::vector<std::string> warnings;
  store_status st;
  auto r = f.store->restore_latest(restored.string(), &warnings, &st);
  ASSERT_TRUE(r) << st.error;
  EXPECT_TRUE(warnings.empty()) << join(warnings);
  EXPECT_EQ(r->epoch, 2u);
  EXPECT_EQ(r->metadata.at("offset/orders/0"), "1234");

  auto db = kv_store::open(restored.string(), &st);
  ASSERT_TRUE(db) << st.error;
  auto all = db->scan("key/", &st);
  ASSERT_TRUE(st.ok()) << st.error;
  ASSERT_EQ(all.size(), 4999u);
  EXPECT_EQ(db->get(key_of(5), &st), "b-5" + std::string(90, 'v'));
  EXPECT_EQ(db->get(key_of(150), &st), "a-150" + std::string(90, 'v'));
  EXPECT_FALSE(db->get(key_of(200), &st).has_value());
  EXPECT_FALSE(db->get(key_of(5500), &st).has_value());

  // The restored DB continues the lineage: it can commit the next epoch incrementally.
  put_range(*db, 0, 10, "c");
  commit_report report;
  st = f.store->commit_epoch(*db, 3, {}, &report);
  ASSERT_TRUE(st.ok()) << st.error;
  EXPECT_GT(report.info.shared_bytes, 0u);
}

TEST(checkpoint_store, restore_into_a_non_empty_directory_is_refused) {
  fixture f;
  put_range(*f.db, 0, 10, "a");
  f.commit(1);
  std::vector<std::string> warnings;
  store_status st;
  EXPECT_FALSE(f.store->restore_latest(f.db_dir.string(), &warnings, &st));
  EXPECT_NE(st.error.find("not empty"), std::string::npos) << st.error;
}

/// Commits epochs 1 and 2 (epoch 2 adds its own SST), damages a file of epoch 2 with `damage`,
/// then expects restore to fall back to epoch 1 with a warning naming the file.
void expect_fallback_after(const std::function<void(const fs::path&)>& damage,
                           const std::string& expected_problem) {
  fixture f;
  put_range(*f.db, 0, 3000, "one");
  f.commit(1, {{"epoch", "one"}});
  put_range(*f.db, 3000, 4000, "two");
  f.commit(2, {{"epoch", "two"}});
  std::string victim = f.added_sst_of(2);
  ASSERT_FALSE(victim.empty());
  damage(f.ck_dir / victim);

  std::string expected = "checkpoint 2: " + victim + ": " + expected_problem;
  store_status st;
  auto problems = f.store->verify(&st);
  ASSERT_TRUE(st.ok()) << st.error;
  EXPECT_TRUE(contains(problems, expected)) << join(problems);
  EXPECT_FALSE(contains(problems, "checkpoint 1:")) << join(problems);

  std::vector<std::string> warnings;
  fs::path restored = f.tmp.path / "restored";
  auto r = f.store->restore_latest(restored.string(), &warnings, &st);
  ASSERT_TRUE(r) << st.error;
  EXPECT_EQ(r->epoch, 1u);
  EXPECT_EQ(r->metadata.at("epoch"), "one");
  EXPECT_TRUE(contains(warnings, expected)) << join(warnings);
  EXPECT_FALSE(fs::exists(f.tmp.path / "restored.restore-tmp"));
  auto db = kv_store::open(restored.string(), &st);
  ASSERT_TRUE(db) << st.error;
  EXPECT_EQ(db->scan("key/", &st).size(), 3000u);
}

TEST(checkpoint_store, a_flipped_byte_falls_back_to_the_previous_epoch) {
  expect_fallback_after(
      [](const fs::path& p) {
        std::fstream file(p, std::ios::in | std::ios::out | std::ios::binary);
        file.seekg(100);
        char c = 0;
        file.read(&c, 1);
        c = static_cast<char>(c ^ 0x5a);
        file.seekp(100);
        file.write(&c, 1);
      },
      "checksum mismatch");
}

TEST(checkpoint_store, a_truncated_file_falls_back_to_the_previous_epoch) {
  expect_fallback_after([](const fs::path& p) { fs::resize_file(p, fs::file_size(p) / 2); },
                        "size ");
}

TEST(checkpoint_store, a_missing_file_falls_back_to_the_previous_epoch) {
  expect_fallback_after([](const fs::path& p) { fs::remove(p); }, "missing");
}

TEST(checkpoint_store, an_incomplete_newest_epoch_is_skipped_with_a_warning) {
  fixture f;
  put_range(*f.db, 0, 100, "a");
  f.commit(1);
  put_range(*f.db, 0, 100, "b");
  f.commit(2);
  fs::remove(f.ck_dir / "epochs" / "2" / "manifest.json");  // as if the commit crashed before it
  store_status st;
  EXPECT_EQ(f.store->list(&st), (std::vector<std::uint64_t>{1}));
  std::vector<std::string> warnings;
  auto r = f.store->restore_latest((f.tmp.path / "restored").string(), &warnings, &st);
  ASSERT_TRUE(r) << st.error;
  EXPECT_EQ(r->epoch, 1u);
  EXPECT_TRUE(contains(warnings, "checkpoint 2: incomplete")) << join(warnings);
}

TEST(checkpoint_store, no_intact_epoch_is_an_error_not_a_fresh_start) {
  fixture f;
  put_range(*f.db, 0, 100, "a");
  f.commit(1);
  for (const auto& entry : fs::directory_iterator(f.ck_dir / "sst")) fs::remove(entry.path());
  std::vector<std::string> warnings;
  store_status st;
  auto r = f.store->restore_latest((f.tmp.path / "restored").string(), &warnings, &st);
  EXPECT_FALSE(r);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error.find("no intact checkpoint"), std::string::npos) << st.error;
  EXPECT_TRUE(contains(warnings, "checkpoint 1: sst/")) << join(warnings);
  EXPECT_FALSE(fs::exists(f.tmp.path / "restored"));
}

/// The process died during its very first checkpoint: no epoch was ever committed (so none
/// published anything), and the next start is a fresh one, naming the incomplete epoch, not a
/// refusal that only --reset gets past.
TEST(checkpoint_store, only_incomplete_epochs_are_a_fresh_start_with_a_warning) {
  fixture f;
  put_range(*f.db, 0, 100, "a");
  f.commit(1);
  fs::remove(f.ck_dir / "epochs" / "1" / "manifest.json");  // as if the commit crashed before it
  std::vector<std::string> warnings;
  store_status st;
  auto r = f.store->restore_latest((f.tmp.path / "restored").string(), &warnings, &st);
  EXPECT_FALSE(r);
  EXPECT_TRUE(st.ok()) << st.error;
  EXPECT_TRUE(contains(warnings, "checkpoint 1: incomplete")) << join(warnings);
  EXPECT_FALSE(fs::exists(f.tmp.path / "restored"));
}

TEST(checkpoint_store, an_empty_store_restores_nothing_without_error) {
  temp_dir tmp;
  store_status st;
  auto store = checkpoint_store::open({(tmp.path / "ck").string(), 3, true}, &st);
  ASSERT_TRUE(store) << st.error;
  std::vector<std::string> warnings;
  auto r = store->restore_latest((tmp.path / "db").string(), &warnings, &st);
  EXPECT_FALSE(r);
  EXPECT_TRUE(st.ok()) << st.error;
  EXPECT_TRUE(warnings.empty());
}

TEST(checkpoint_store, metadata_round_trips) {
  fixture f;
  put_range(*f.db, 0, 10, "a");
  checkpoint_metadata md = {{"offset/orders/0", "42"},
                            {"watermark", "1700000000000"},
                            {"fingerprint", "quote\" backslash\\ newline\n tab\t nul"},
                            {"utf8", "d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac"},
                            {"control", std::string("\x01\x1f", 2)},
                            {"", "empty key"}};
  md["nul"] = std::string("a\0b", 3);
  f.commit(7, md);
  store_status st;
  auto info = f.store->inspect(7, &st);
  ASSERT_TRUE(info) << st.error;
  EXPECT_EQ(info->metadata, md);
  EXPECT_EQ(info->epoch, 7u);
  EXPECT_GT(info->created_unix_ms, 0);
  std::vector<std::string> warnings;
  auto r = f.store->restore_latest((f.tmp.path / "restored").string(), &warnings, &st);
  ASSERT_TRUE(r) << st.error;
  EXPECT_EQ(r->metadata, md);
}

TEST(checkpoint_store, epochs_must_increase) {
  fixture f;
  put_range(*f.db, 0, 10, "a");
  f.commit(5);
  store_status st = f.store->commit_epoch(*f.db, 5, {});
  EXPECT_FALSE(st.ok());
  st = f.store->commit_epoch(*f.db, 4, {});
  EXPECT_NE(st.error.find("not newer"), std::string::npos) << st.error;
  EXPECT_EQ(f.store->list(&st), (std::vector<std::uint64_t>{5}));
}

TEST(checkpoint_store, a_db_started_from_scratch_cannot_commit_into_old_checkpoints) {
  fixture f;
  put_range(*f.db, 0, 10, "a");
  f.commit(1);
  store_status st;
  auto fresh = kv_store::open((f.tmp.path / "fresh-db").string(), &st);
  ASSERT_TRUE(fresh) << st.error;
  put_range(*fresh, 0, 10, "z");
  st = f.store->commit_epoch(*fresh, 2, {});
  EXPECT_NE(st.error.find("lineage"), std::string::npos) << st.error;
  EXPECT_EQ(f.store->list(&st), (std::vector<std::uint64_t>{1}));
}

TEST(checkpoint_store, inspect_of_an_unknown_epoch_is_an_error) {
  fixture f;
  store_status st;
  EXPECT_FALSE(f.store->inspect(99, &st));
  EXPECT_NE(st.error.find("checkpoint 99"), std::string::npos) << st.error;
}

// Measurement, not a test: run with --gtest_also_run_disabled_tests.
// 1M keys with 100-byte values (half random hex, so Snappy cannot shrink them to nothing),
// 1% of keys rewritten per epoch, 12 incremental epochs, retention 3, fsync on.
TEST(checkpoint_store, DISABLED_measure_1m_keys_1pct_per_epoch) {
  fixture f(3);
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::mt19937_64 rng(42);
  auto value = [&] {
    static constexpr char digits[] = "0123456789abcdef";
    std::string v(100, 'v');
    for (int i = 0; i < 50; i += 16) {
      std::uint64_t r = rng();
      for (int j = 0; j < 16 && i + j < 50; ++j) v[i + j] = digits[(r >> (4 * j)) & 15];
    }
    return v;
  };
  auto write = [&](const std::vector<int>& keys) {
    std::vector<kv_op> ops;
    for (int k : keys) {
      ops.emplace_back(key_of(k), value());
      if (ops.size() == 1000) {
        ASSERT_TRUE(f.db->write_batch(ops, false).ok());
        ops.clear();
      }
    }
  };
  std::vector<int> all(1'000'000);
  for (int i = 0; i < 1'000'000; ++i) all[i] = i;
  auto t0 = clock::now();
  write(all);
  auto t1 = clock::now();
  commit_report r = f.commit(1);
  auto t2 = clock::now();
  std::printf("load 1M keys: %.0f ms; epoch 1 (full): %.0f ms, %.1f MB written, %zu files\n",
              ms(t1 - t0), ms(t2 - t1), static_cast<double>(r.info.new_bytes) / 1e6,
              r.info.file_count);
  std::uniform_int_distribution<int> pick(0, 999'999);
  double total_ms = 0, total_mb = 0;
  // EDDY_MEASURE_EPOCHS / EDDY_MEASURE_PAUSE_MS: more epochs and a pause between them (the time
  // a pipeline spends processing) let background compactions run, whose output the next epoch
  // must store.
  const char* env_epochs = std::getenv("EDDY_MEASURE_EPOCHS");
  const char* env_pause = std::getenv("EDDY_MEASURE_PAUSE_MS");
  const int epochs = env_epochs ? std::atoi(env_epochs) : 12;
  const int pause_ms = env_pause ? std::atoi(env_pause) : 0;
  for (int e = 2; e <= epochs + 1; ++e) {
    std::vector<int> keys(10'000);
    for (int& k : keys) k = pick(rng);
    write(keys);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    auto c0 = clock::now();
    r = f.commit(static_cast<std::uint64_t>(e));
    auto c1 = clock::now();
    total_ms += ms(c1 - c0);
    total_mb += static_cast<double>(r.info.new_bytes) / 1e6;
    std::printf("epoch %d: commit %.1f ms, written %.2f MB (new) of %.1f MB total, %zu files\n", e,
                ms(c1 - c0), static_cast<double>(r.info.new_bytes) / 1e6,
                static_cast<double>(r.info.total_bytes) / 1e6, r.info.file_count);
  }
  std::printf("mean over %d incremental epochs: commit %.1f ms, written %.2f MB\n", epochs,
              total_ms / epochs, total_mb / epochs);
  store_status st;
  auto v0 = clock::now();
  auto problems = f.store->verify(&st);
  auto v1 = clock::now();
  EXPECT_TRUE(problems.empty());
  std::vector<std::string> warnings;
  auto rs = f.store->restore_latest((f.tmp.path / "restored").string(), &warnings, &st);
  auto v2 = clock::now();
  ASSERT_TRUE(rs) << st.error;
  auto db = kv_store::open((f.tmp.path / "restored").string(), &st);
  auto v3 = clock::now();
  ASSERT_TRUE(db) << st.error;
  EXPECT_EQ(db->scan("key/", &st).size(), 1'000'000u);
  std::printf("verify (3 epochs): %.0f ms; restore 1M keys: %.0f ms (+ open %.0f ms)\n",
              ms(v1 - v0), ms(v2 - v1), ms(v3 - v2));
}

}  // namespace
}  // namespace eddy
