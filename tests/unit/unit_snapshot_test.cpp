// unit_snapshot_test.cpp — exporting one unit's keys from a kv_store and importing them into
// another: round trips, the file format, and every kind of damage refused before the store
// changes.
#include "state/unit_snapshot.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <zstd.h>

#include "state/file_io.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;
using pairs = std::vector<std::pair<std::string, std::string>>;

const std::string unit = "t/0000000003/";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class unit_snapshot : public ::testing::Test {
 protected:
  unit_snapshot() {
    char tmpl[] = "/tmp/eddy-unit-snapshot-XXXXXX";
    root_ = ::mkdtemp(tmpl);
  }
  ~unit_snapshot() override { fs::remove_all(root_); }
  void SetUp() override {
    source_ = open("source");
    target_ = open("target");
  }
  void TearDown() override {  // the stores close before their directory goes
    source_.reset();
    target_.reset();
  }

  std::unique_ptr<kv_store> open(const std::string& name) {
    store_status st;
    auto db = kv_store::open((root_ / name).string(), &st);
    EXPECT_TRUE(db) << st.error;
    return db;
  }
  static void put(kv_store& db, const pairs& kvs) {
    std::vector<kv_op> ops;
    for (const auto& [k, v] : kvs) ops.emplace_back(k, v);
    ASSERT_TRUE(db.write_batch(ops, false).ok());
  }
  static pairs all(const kv_store& db, std::string_view prefix = "") {
    store_status st;
    pairs out = db.scan(prefix, &st);
    EXPECT_TRUE(st.ok()) << st.error;
    return out;
  }
  std::string snap_path(const std::string& name = "unit.snap") const {
    return (root_ / "units" / "p3" / name).string();
  }

  /// The unit's keys, with binary bytes, an empty value, and neighbours of the prefix that are
  /// not under it.
  void fill_source() {
    put(*source_, {{unit + "m", "12 -9223372036854775808 5 5 0 0 0"},
                   {unit + "a/" + std::string("\x00\xff", 2), std::string("v\x00\xff", 3)},
                   {unit + "a/empty", ""},
                   {unit + "a/k", std::string(3000, 'x')},
                   {"t/0000000002/m", "other task"},
                   {"t/0000000003", "no slash: not the unit"},
                   {"t/00000000030/m", "partition 30"},
                   {"s/00001/x", "shard"}});
  }
  /// What the target holds before a load: stale and changed keys under the unit, and others.
  void fill_target() {
    put(*target_, {{unit + "m", "old meta"},
                   {unit + "a/stale", "gone after the load"},
                   {"t/0000000002/m", "the target's own task 2"},
                   {"t/0000000003", "kept"},
                   {"t/00000000030/m", "kept too"},
                   {"s/00000/y", "a shard"}});
  }

  fs::path root_;
  std::unique_ptr<kv_store> source_;
  std::unique_ptr<kv_store> target_;
};

TEST_F(unit_snapshot, round_trip_replaces_exactly_the_units_prefix) {
  fill_source();
  fill_target();
  const pairs before = all(*target_);
  const unit_snapshot_result r = write_unit_snapshot(*source_, unit, snap_path(), true);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.keys, 4u);
  const std::string bytes = read_file(snap_path());
  EXPECT_EQ(r.bytes, bytes.size());
  EXPECT_EQ(r.crc32c, file_io::crc32c_hex(bytes)) << "the checksum of the whole file";
  EXPECT_EQ(r.crc32c.size(), 8u);
  EXPECT_FALSE(fs::exists(snap_path() + ".tmp"));

  ASSERT_EQ(load_unit_snapshot(snap_path(), r.crc32c, *target_), "");
  EXPECT_EQ(all(*target_, unit), all(*source_, unit));
  // Everything outside the prefix is as it was.
  pairs expected_rest;
  for (const auto& kv : before)
    if (!kv.first.starts_with(unit)) expected_rest.push_back(kv);
  pairs rest;
  for (const auto& kv : all(*target_))
    if (!kv.first.starts_with(unit)) rest.push_back(kv);
  EXPECT_EQ(rest, expected_rest);
  // Loading again changes nothing; an empty expected checksum skips only the external check.
  ASSERT_EQ(load_unit_snapshot(snap_path(), "", *target_), "");
  EXPECT_EQ(all(*target_, unit), all(*source_, unit));
}

TEST_F(unit_snapshot, a_prefix_without_keys_empties_the_unit_on_load) {
  fill_source();
  fill_target();
  const std::string empty_unit = "s/00007/";
  put(*target_, {{empty_unit + "w/1", "stale"}, {empty_unit + "w/2", "stale"}});
  const unit_snapshot_result r = write_unit_snapshot(*source_, empty_unit, snap_path(), false);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.keys, 0u);
  EXPECT_EQ(r.bytes, 8 + 4 + 4 + empty_unit.size() + 8 + 8 + 4);
  const pairs others = all(*target_, "t/");
  ASSERT_EQ(load_unit_snapshot(snap_path(), r.crc32c, *target_), "");
  EXPECT_TRUE(all(*target_, empty_unit).empty());
  EXPECT_EQ(all(*target_, "t/"), others);
  EXPECT_EQ(all(*target_, "s/00000/").size(), 1u);
}

TEST_F(unit_snapshot, the_writer_refuses_a_prefix_that_is_not_a_unit) {
  fill_source();
  for (const std::string& bad : {std::string(), std::string("\xff\xff", 2)}) {
    const unit_snapshot_result r = write_unit_snapshot(*source_, bad, snap_path(), false);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error.find(snap_path()), std::string::npos) << r.error;
    EXPECT_FALSE(fs::exists(snap_path()));
  }
}

TEST_F(unit_snapshot, one_hundred_thousand_keys_round_trip) {
  constexpr int n = 100'000;
  std::vector<kv_op> ops;
  for (int i = 0; i < n; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "%sa/%08d/window", unit.c_str(), i);
    ops.emplace_back(key, "count=" + std::to_string(i) + " sum=" + std::to_string(i * 7));
  }
  ops.emplace_back("t/0000000004/m", "not this unit");
  ASSERT_TRUE(source_->write_batch(ops, false).ok());
  put(*target_, {{unit + "a/99999999/stale", "x"}});

  const auto t0 = std::chrono::steady_clock::now();
  const unit_snapshot_result r = write_unit_snapshot(*source_, unit, snap_path(), true);
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(load_unit_snapshot(snap_path(), r.crc32c, *target_), "");
  const auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "[ measure  ] " << n << " keys, " << r.bytes << " bytes: write " << ms(t1 - t0)
            << " ms (fsynced), load " << ms(t2 - t1) << " ms\n";
  RecordProperty("write_ms", static_cast<int>(ms(t1 - t0)));
  RecordProperty("load_ms", static_cast<int>(ms(t2 - t1)));

  EXPECT_EQ(r.keys, static_cast<std::uint64_t>(n));
  const pairs got = all(*target_, unit);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(got, all(*source_, unit));
  EXPECT_TRUE(all(*target_, "t/0000000004/").empty());
}

/// Damage of every kind is refused before the store changes, with an error naming the file.
class damaged_snapshot : public unit_snapshot {
 protected:
  void SetUp() override {
    unit_snapshot::SetUp();
    put(*source_, {{unit + "m", "meta"}, {unit + "a/1", "one"}, {unit + "a/2", ""}});
    fill_target();
    const unit_snapshot_result r = write_unit_snapshot(*source_, unit, snap_path(), false);
    ASSERT_TRUE(r.ok()) << r.error;
    good_ = read_file(snap_path());
    crc_ = r.crc32c;
    before_ = all(*target_);
  }
  /// Loads `bytes` (written to a file of its own) and checks the refusal.
  void expect_refused(std::string_view bytes, std::string_view expected_crc, const char* what) {
    const std::string path = snap_path("damaged.snap");
    write_file(path, bytes);
    const std::string err = load_unit_snapshot(path, expected_crc, *target_);
    EXPECT_NE(err, "") << what << ": loaded";
    EXPECT_NE(err.find(path), std::string::npos) << what << ": " << err;
    EXPECT_EQ(all(*target_), before_) << what << ": the store changed";
  }

  std::string good_;
  std::string crc_;
  pairs before_;
};

TEST_F(damaged_snapshot, a_flipped_byte_anywhere_is_refused) {
  ASSERT_GT(good_.size(), 40u);
  for (std::size_t i = 0; i < good_.size(); ++i) {
    for (const unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string bad = good_;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      const std::string what = "byte " + std::to_string(i) + " ^ " + std::to_string(mask);
      expect_refused(bad, "", what.c_str());  // the file's own checks alone catch it
      expect_refused(bad, crc_, what.c_str());
    }
  }
}

/// The same damage inside the compressed pairs, with the file's CRC32C made to match again (as
/// a crafted file would): zstd's own frame checksum and the pairs' length in the trailer still
/// refuse it before the store changes, unless the change is one the decoder never reads (a
/// padding bit): then exactly the written pairs load.
TEST_F(damaged_snapshot, damaged_compressed_pairs_are_refused_even_with_a_matching_crc) {
  const std::size_t head = 16 + unit.size(), tail = 20;
  ASSERT_GT(good_.size(), head + tail);
  auto with_crc = [](std::string f) {
    file_io::crc32c_hasher h;
    h.update(std::string_view(f).substr(0, f.size() - 4));
    return f.substr(0, f.size() - 4) + h.finish_bytes();
  };
  const std::string path = snap_path("damaged.snap");
  int refused = 0, same = 0;
  for (std::size_t i = head; i < good_.size() - 4; ++i) {
    for (const unsigned char mask : {0x01, 0x80}) {
      std::string bad = good_;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      const std::string what = "byte " + std::to_string(i) + " ^ " + std::to_string(mask);
      write_file(path, with_crc(bad));
      if (!load_unit_snapshot(path, "", *target_).empty()) {
        ++refused;
        EXPECT_EQ(all(*target_), before_) << what << ": the store changed";
        continue;
      }
      ++same;
      EXPECT_EQ(all(*target_, unit), all(*source_, unit)) << what << ": loaded other pairs";
      std::vector<kv_op> undo{kv_op::delete_prefix(unit)};
      for (const auto& [k, v] : before_)
        if (k.starts_with(unit)) undo.emplace_back(k, v);
      ASSERT_TRUE(target_->write_batch(undo, false).ok());
    }
  }
  std::cout << "[ measure  ] " << refused << " damaged files refused, " << same
            << " decoded to the written pairs\n";
  EXPECT_GT(refused, 10 * same);
}

TEST_F(damaged_snapshot, truncation_at_every_length_is_refused) {
  for (std::size_t n = 0; n < good_.size(); ++n) {
    const std::string what = "cut to " + std::to_string(n) + " bytes";
    expect_refused(std::string_view(good_).substr(0, n), "", what.c_str());
  }
  std::string longer = good_ + "x";
  expect_refused(longer, "", "a byte appended");
}

TEST_F(damaged_snapshot, a_wrong_expected_checksum_is_refused) {
  std::string wrong = crc_;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  expect_refused(good_, wrong, "another expected checksum");
  expect_refused(good_, "not-hex", "a malformed expected checksum");
  // The intact file with its checksum loads.
  ASSERT_EQ(load_unit_snapshot(snap_path(), crc_, *target_), "");
  EXPECT_EQ(all(*target_, unit), all(*source_, unit));
}

TEST_F(damaged_snapshot, a_missing_file_is_an_error_naming_it) {
  const std::string missing = snap_path("never-written.snap");
  const std::string err = load_unit_snapshot(missing, "", *target_);
  EXPECT_NE(err.find(missing), std::string::npos) << err;
  EXPECT_NE(err.find("No such file"), std::string::npos) << err;
  EXPECT_EQ(all(*target_), before_);
}

// ---- the format, as state/README.md documents it --------------------------------------------

std::string le(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

/// A snapshot built from the documented layout, independently of the writer.
std::string build_snapshot(const std::string& prefix, const pairs& kvs) {
  std::string f = "EDDYUNIT" + le(1, 4) + le(prefix.size(), 4) + prefix;
  for (const auto& [k, v] : kvs) f += le(k.size(), 4) + k + le(v.size(), 4) + v;
  f += le(kvs.size(), 8);
  file_io::crc32c_hasher h;
  h.update(f);
  return f + h.finish_bytes();
}

/// A format-2 file (what the writer writes) as the format-1 file of the same pairs: checks the
/// header, the trailer (count, the pairs' length, the CRC of every byte before it) and that the
/// middle is one zstd frame of the pairs, then rebuilds the documented format-1 layout around
/// the decompressed pairs, to compare with build_snapshot / build_delta.
std::string as_format_1(const std::string& f) {
  const std::size_t prefix_len = static_cast<unsigned char>(f[12]);  // < 256 here
  const std::size_t head = 16 + prefix_len;
  EXPECT_GE(f.size(), head + 20);
  if (f.size() < head + 20) return {};
  EXPECT_EQ(f.substr(8, 4), le(2, 4)) << "format version";
  file_io::crc32c_hasher h;
  h.update(std::string_view(f).substr(0, f.size() - 4));
  EXPECT_EQ(f.substr(f.size() - 4), h.finish_bytes()) << "trailer CRC";
  std::uint64_t raw = 0;
  for (int i = 7; i >= 0; --i)
    raw = (raw << 8) | static_cast<unsigned char>(f[f.size() - 12 + static_cast<std::size_t>(i)]);
  const std::string frame = f.substr(head, f.size() - 20 - head);
  std::string pairs(raw, '\0');
  if (raw > 0) {
    EXPECT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), raw);
    EXPECT_EQ(ZSTD_decompress(pairs.data(), pairs.size(), frame.data(), frame.size()), raw);
  } else {
    EXPECT_TRUE(frame.empty()) << "no pairs, no frame";
  }
  std::string v1 =
      f.substr(0, 8) + le(1, 4) + f.substr(12, 4 + prefix_len) + pairs + f.substr(f.size() - 20, 8);
  file_io::crc32c_hasher h1;
  h1.update(v1);
  return v1 + h1.finish_bytes();
}

TEST_F(unit_snapshot, the_file_is_laid_out_as_documented) {
  put(*source_, {{unit + "a", "1"}, {unit + "b", "22"}});
  const unit_snapshot_result r = write_unit_snapshot(*source_, unit, snap_path(), false);
  ASSERT_TRUE(r.ok()) << r.error;
  const std::string written = read_file(snap_path());
  EXPECT_EQ(written.substr(0, 8), "EDDYUNIT");
  EXPECT_EQ(as_format_1(written), build_snapshot(unit, {{unit + "a", "1"}, {unit + "b", "22"}}));
}

TEST_F(unit_snapshot, state_compresses_and_format_1_files_still_load) {
  // Aggregation state is repetitive (keys share the unit's prefix, values are counters): the
  // file is several times smaller than its pairs.
  pairs kvs;
  for (int i = 0; i < 5000; ++i)
    kvs.emplace_back(unit + "a/" + std::to_string(1000000 + i),
                     "count " + std::to_string(i % 97) + " sum " + std::to_string(i * 3.25));
  put(*source_, kvs);
  const unit_snapshot_result r = write_unit_snapshot(*source_, unit, snap_path(), false);
  ASSERT_TRUE(r.ok()) << r.error;
  const std::string v1 = build_snapshot(unit, all(*source_, unit));
  EXPECT_LT(r.bytes * 3, v1.size()) << r.bytes << " bytes compressed, " << v1.size() << " not";
  EXPECT_EQ(r.raw_bytes, v1.size() - 16 - unit.size() - 12);  // the pairs, uncompressed
  EXPECT_EQ(as_format_1(read_file(snap_path())), v1);
  // compress = false (the benchmarks' reference) writes format 1 itself.
  const auto r1 = write_unit_snapshot(*source_, unit, snap_path("v1.snap"), false, false);
  ASSERT_TRUE(r1.ok()) << r1.error;
  EXPECT_EQ(read_file(snap_path("v1.snap")), v1);
  EXPECT_EQ(r1.bytes, v1.size());
  // A format-1 file (written before compression) loads as before.
  fill_target();
  const std::string path = snap_path("old.snap");
  write_file(path, v1);
  ASSERT_EQ(load_unit_snapshot(path, "", *target_), "");
  EXPECT_EQ(all(*target_, unit), all(*source_, unit));
}

TEST_F(unit_snapshot, a_well_formed_file_with_a_key_outside_its_prefix_is_refused) {
  fill_target();
  const pairs before = all(*target_);
  const std::string path = snap_path("crafted.snap");
  fs::create_directories(fs::path(path).parent_path());
  write_file(path, build_snapshot(unit, {{unit + "a", "1"}, {"s/00000/y", "overwritten?"}}));
  const std::string err = load_unit_snapshot(path, "", *target_);
  EXPECT_NE(err.find("not under the prefix"), std::string::npos) << err;
  EXPECT_EQ(all(*target_), before);
  // A version this build does not know is refused by number.
  std::string v3 = build_snapshot(unit, {});
  v3[8] = 3;
  write_file(path, v3);
  EXPECT_NE(load_unit_snapshot(path, "", *target_).find("unsupported format version 3"),
            std::string::npos);
}

// ---- deltas ---------------------------------------------------------------------------------

/// One random checkpoint batch on the unit: puts (new and overwritten keys), deletes, range
/// deletes of sub-prefixes, several ops on one key, and a range delete with puts inside it.
std::vector<kv_op> random_batch(std::mt19937& rng) {
  std::vector<kv_op> ops;
  auto key = [&] {
    return unit + "a/" + std::to_string(rng() % 8) + "/" + std::to_string(rng() % 20);
  };
  const int n = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < n; ++i) {
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2:
        ops.emplace_back(key(), std::string(rng() % 50, static_cast<char>('a' + rng() % 26)));
        break;
      case 3:
        ops.emplace_back(key(), std::nullopt);
        break;
      case 4:
        ops.push_back(kv_op::delete_prefix(unit + "a/" + std::to_string(rng() % 8) + "/"));
        break;
      default: {  // the same key twice: the last one wins
        const std::string k = key();
        ops.emplace_back(k, "first");
        ops.emplace_back(k, rng() % 2 ? std::optional<std::string>("second") : std::nullopt);
      }
    }
  }
  ops.emplace_back(unit + "m", "meta " + std::to_string(rng()));
  return ops;
}

TEST_F(unit_snapshot, a_snapshot_and_the_later_deltas_rebuild_the_state_the_batches_made) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TearDown();
    fs::remove_all(root_ / "source");
    fs::remove_all(root_ / "target");
    fs::remove_all(root_ / "units");
    SetUp();
    std::mt19937 rng(seed);
    fill_source();
    fill_target();
    for (int e = 0; e < 3; ++e) ASSERT_TRUE(source_->write_batch(random_batch(rng), false).ok());
    const auto base = write_unit_snapshot(*source_, unit, snap_path("base.snap"), false);
    ASSERT_TRUE(base.ok()) << base.error;
    std::vector<std::pair<std::string, std::string>> deltas;  // path, crc
    for (int e = 0; e < 8; ++e) {
      const auto ops = random_batch(rng);
      ASSERT_TRUE(source_->write_batch(ops, false).ok());
      unit_changes c;
      append_unit_changes(ops, c);
      EXPECT_EQ(c.count, ops.size());
      const std::string path = snap_path(std::to_string(e) + ".delta");
      const auto r = write_unit_delta(unit, c, path, false);
      ASSERT_TRUE(r.ok()) << r.error;
      EXPECT_EQ(r.keys, ops.size());
      EXPECT_EQ(r.crc32c, file_io::crc32c_hex(read_file(path)));
      deltas.emplace_back(path, r.crc32c);
    }
    const pairs others = all(*target_, "t/0000000002/");
    ASSERT_EQ(load_unit_snapshot(snap_path("base.snap"), base.crc32c, *target_), "");
    for (const auto& [path, crc] : deltas)
      ASSERT_EQ(load_unit_delta(path, crc, unit, *target_), "");
    EXPECT_EQ(all(*target_, unit), all(*source_, unit));
    EXPECT_EQ(all(*target_, "t/0000000002/"), others);
    EXPECT_EQ(all(*target_, "t/00000000030"), (pairs{{"t/00000000030/m", "kept too"}}));
    store_status st;
    EXPECT_EQ(target_->get("t/0000000003", &st), "kept");
  }
}

TEST_F(unit_snapshot, the_delta_writer_refuses_records_outside_the_unit) {
  const std::vector<std::vector<kv_op>> bad = {
      {kv_op("t/0000000002/m", "another unit")},
      {kv_op::delete_prefix("t/0000000003")},  // ends past the unit's keys
      {kv_op::delete_prefix("t/")}};
  for (const auto& ops : bad) {
    unit_changes c;
    append_unit_changes(ops, c);
    const auto r = write_unit_delta(unit, c, snap_path("bad.delta"), false);
    EXPECT_FALSE(r.ok()) << ops.front().key;
    EXPECT_NE(r.error.find(snap_path("bad.delta")), std::string::npos) << r.error;
    EXPECT_FALSE(fs::exists(snap_path("bad.delta")));
  }
  unit_changes miscounted;
  append_unit_changes({kv_op(unit + "m", "x")}, miscounted);
  miscounted.count = 2;
  EXPECT_FALSE(write_unit_delta(unit, miscounted, snap_path("bad.delta"), false).ok());
}

/// A delta built from the documented layout, independently of the writer.
std::string build_delta(const std::string& prefix,
                        const std::vector<std::pair<std::string, std::string>>& records) {
  std::string f = "EDDYDLTA" + le(1, 4) + le(prefix.size(), 4) + prefix;
  for (const auto& [k, r] : records) f += le(k.size(), 4) + k + le(r.size(), 4) + r;
  f += le(records.size(), 8);
  file_io::crc32c_hasher h;
  h.update(f);
  return f + h.finish_bytes();
}

TEST_F(unit_snapshot, a_delta_is_laid_out_as_documented_and_applies_ranges_first) {
  put(*target_, {{unit + "a/1/x", "old"}, {unit + "a/2/y", "kept"}, {unit + "m", "old meta"}});
  // In one batch a range delete applies before the puts, wherever it stands.
  const std::vector<kv_op> ops = {kv_op(unit + "a/1/z", "new"), kv_op(unit + "m", std::nullopt),
                                  kv_op::delete_prefix(unit + "a/1/")};
  unit_changes c;
  append_unit_changes(ops, c);
  const auto r = write_unit_delta(unit, c, snap_path("x.delta"), false);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(as_format_1(read_file(snap_path("x.delta"))),
            build_delta(unit, {{unit + "a/1/z", "pnew"},
                               {unit + "m", "d"},
                               {unit + "a/1/", "r" + unit + "a/10"}}));
  ASSERT_EQ(load_unit_delta(snap_path("x.delta"), r.crc32c, unit, *target_), "");
  EXPECT_EQ(all(*target_, unit), (pairs{{unit + "a/1/z", "new"}, {unit + "a/2/y", "kept"}}));
}

TEST_F(unit_snapshot, a_damaged_or_foreign_delta_is_refused_before_the_store_changes) {
  fill_target();
  const pairs before = all(*target_);
  const std::string good =
      build_delta(unit, {{unit + "a/1", "pone"}, {unit + "a/", "r" + unit + "a0"}});
  const std::string path = snap_path("d.delta");
  fs::create_directories(fs::path(path).parent_path());
  auto refused = [&](std::string_view bytes, std::string_view crc, std::string_view prefix,
                     const std::string& what) {
    write_file(path, bytes);
    const std::string err = load_unit_delta(path, crc, prefix, *target_);
    EXPECT_NE(err, "") << what;
    EXPECT_NE(err.find(path), std::string::npos) << what << ": " << err;
    EXPECT_EQ(all(*target_), before) << what;
  };
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    refused(bad, "", unit, "byte " + std::to_string(i));
  }
  for (std::size_t n = 0; n < good.size(); ++n)
    refused(std::string_view(good).substr(0, n), "", unit, "cut to " + std::to_string(n));
  refused(good, "00000000", unit, "another checksum");
  refused(good, "", "t/0000000002/", "another unit's prefix expected");
  refused(build_snapshot(unit, {{unit + "a/1", "one"}}), "", unit, "a snapshot");
  for (const auto& rec : std::vector<std::pair<std::string, std::string>>{
           {unit + "a", ""},                // no tag
           {unit + "a", "dx"},              // a delete with a payload
           {unit + "a", "q"},               // unknown tag
           {unit + "b", "r" + unit + "a"},  // a range ending before it starts
           {unit + "a", "r" + unit + "b"},  // fine alone ...
           {unit + "a", "rt/0000000004"}})  // ... but this one ends past the unit
    if (rec.second != "r" + unit + "b")
      refused(build_delta(unit, {{unit + "m", "pm"}, rec}), "", unit, "record " + rec.second);
  write_file(path, good);
  ASSERT_EQ(load_unit_delta(path, "", unit, *target_), "");  // a/stale goes, m stays
  EXPECT_EQ(all(*target_, unit), (pairs{{unit + "a/1", "one"}, {unit + "m", "old meta"}}));
}

}  // namespace
}  // namespace eddy
