#include "state/kv_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace eddy {
namespace {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/eddy-kv-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

TEST(kv_store, batch_writes_survive_reopening) {
  temp_dir dir;
  store_status st;
  {
    auto db = kv_store::open(dir.path / "db", &st);
    ASSERT_TRUE(db) << st.error;
    ASSERT_TRUE(
        db->write_batch({{"offset/0", "42"}, {"offset/1", "7"}, {"state/x", "v"}}, true).ok());
    ASSERT_TRUE(db->write_batch({{"state/x", std::nullopt}}, true).ok());
  }
  auto db = kv_store::open(dir.path / "db", &st);
  ASSERT_TRUE(db) << st.error;
  EXPECT_EQ(db->get("offset/0", &st), "42");
  EXPECT_FALSE(db->get("state/x", &st).has_value());
  EXPECT_TRUE(st.ok());
  auto offsets = db->scan("offset/", &st);
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[1].first, "offset/1");
  EXPECT_EQ(offsets[1].second, "7");
}

TEST(kv_store, prefix_delete_removes_exactly_the_prefix_and_applies_before_puts) {
  temp_dir dir;
  store_status st;
  auto db = kv_store::open(dir.path / "db", &st);
  ASSERT_TRUE(db) << st.error;
  const std::string p1 = std::string("w") + '\x01';
  const std::string p2 = std::string("w") + '\x02';
  const std::string ff = std::string("w") + "\xff\xff";  // ends in 0xff: its range ends at "x"
  ASSERT_TRUE(
      db->write_batch(
            {{p1 + "a", "1"}, {p1 + "b", "2"}, {p1, "3"}, {p2, "4"}, {ff + "z", "5"}, {"x", "6"}},
            false)
          .ok());
  // In the same batch, a put inside a deleted range stays: range deletes apply first.
  ASSERT_TRUE(db->write_batch({{p1 + "c", "7"}, kv_op::delete_prefix(p1)}, false).ok());
  std::vector<std::string> keys;
  for (const auto& [k, v] : db->scan("", &st)) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{p1 + "c", p2, ff + "z", "x"}));
  ASSERT_TRUE(db->write_batch({kv_op::delete_prefix(ff)}, false).ok());
  EXPECT_FALSE(db->get(ff + "z", &st).has_value());
  EXPECT_EQ(db->get("x", &st), "6");
  EXPECT_TRUE(st.ok());
}

TEST(kv_store, a_scan_resumes_from_a_key_and_stays_in_its_prefix) {
  temp_dir dir;
  store_status st;
  auto db = kv_store::open(dir.path / "db", &st);
  ASSERT_TRUE(db) << st.error;
  ASSERT_TRUE(
      db->write_batch({{"a/9", "0"}, {"b/1", "1"}, {"b/2", "2"}, {"b/3", "3"}, {"c/1", "4"}}, false)
          .ok());
  auto keys_from = [&](std::string_view from) {
    std::vector<std::string> keys;
    EXPECT_TRUE(db->scan_each(
                      "b/",
                      [&](std::string_view k, std::string_view) {
                        keys.emplace_back(k);
                        return true;
                      },
                      from)
                    .ok());
    return keys;
  };
  EXPECT_EQ(keys_from({}), (std::vector<std::string>{"b/1", "b/2", "b/3"}));
  EXPECT_EQ(keys_from("b/2"), (std::vector<std::string>{"b/2", "b/3"}));
  EXPECT_EQ(keys_from(std::string("b/2") + '\0'), (std::vector<std::string>{"b/3"}));
  EXPECT_EQ(keys_from("a/"), (std::vector<std::string>{"b/1", "b/2", "b/3"}));  // before prefix
  EXPECT_EQ(keys_from("b/4"), std::vector<std::string>{});  // past the last: nothing
}

TEST(kv_store, a_scan_sees_one_point_in_time_view_whatever_is_written_meanwhile) {
  temp_dir dir;
  for (const bool write_mostly : {false, true}) {
    SCOPED_TRACE(write_mostly ? "write_mostly" : "default memtable");
    store_status st;
    kv_options options;
    options.write_mostly = write_mostly;
    auto db = kv_store::open((dir.path / (write_mostly ? "wm" : "db")).string(), options, &st);
    ASSERT_TRUE(db) << st.error;
    ASSERT_TRUE(db->write_batch({{"u/1", "a"}, {"u/2", "b"}, {"u/3", "c"}}, false).ok());
    std::vector<std::pair<std::string, std::string>> seen;
    ASSERT_TRUE(
        db->scan_each("u/", [&](std::string_view k, std::string_view v) {
            if (seen.empty()) {
              // While the scan runs: a new key after the cursor, a deleted and a changed
              // one ahead of it.
              EXPECT_TRUE(
                  db->write_batch({{"u/4", "d"}, {"u/2", std::nullopt}, {"u/3", "changed"}}, false)
                      .ok());
            }
            seen.emplace_back(k, v);
            return true;
          }).ok());
    EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{
                        {"u/1", "a"}, {"u/2", "b"}, {"u/3", "c"}}));
    EXPECT_EQ(db->scan("u/", &st).size(), 3u);  // a new scan sees the writes: u/1, u/3, u/4
    EXPECT_EQ(db->get("u/3", &st), "changed");
  }
}

TEST(kv_store, a_write_mostly_store_applies_unsorted_batches_like_a_sorted_one) {
  temp_dir dir;
  store_status st;
  kv_options options;
  options.write_mostly = true;  // vector memtable; write_batch does not sort
  auto db = kv_store::open(dir.path / "db", options, &st);
  ASSERT_TRUE(db) << st.error;
  ASSERT_TRUE(
      db->write_batch({{"k/3", "3"}, {"k/1", "1"}, {"r/b", "x"}, {"k/2", "2"}}, false).ok());
  // Out of key order; a delete then a put of one key (the put wins), a put then a delete of
  // another (the delete wins), a range delete (applied before the puts of its batch).
  ASSERT_TRUE(db->write_batch({{"k/9", "9"},
                               {"k/1", std::nullopt},
                               {"k/1", "one"},
                               {"k/2", "two"},
                               {"k/2", std::nullopt},
                               {"r/c", "y"},
                               kv_op::delete_prefix("r/")},
                              false)
                  .ok());
  auto all = [&]() {
    std::vector<std::string> kv;
    for (const auto& [k, v] : db->scan("", &st)) kv.push_back(k + "=" + v);
    return kv;
  };
  const std::vector<std::string> want = {"k/1=one", "k/3=3", "k/9=9", "r/c=y"};
  EXPECT_EQ(all(), want);  // read from the (unsorted) memtable
  EXPECT_EQ(db->get("k/1", &st), "one");
  EXPECT_FALSE(db->get("k/2", &st).has_value());
  ASSERT_TRUE(db->flush().ok());
  EXPECT_EQ(all(), want);  // and from the SST it was sorted into
  EXPECT_TRUE(st.ok());
}

TEST(kv_store, open_failure_is_an_error_naming_the_path) {
  temp_dir dir;
  std::filesystem::path file = dir.path / "not-a-dir";
  {
    FILE* f = fopen(file.c_str(), "w");
    fclose(f);
  }
  store_status st;
  auto db = kv_store::open((file / "db").string(), &st);
  EXPECT_FALSE(db);
  EXPECT_NE(st.error.find("not-a-dir"), std::string::npos) << st.error;
}

TEST(kv_store, opens_within_a_memory_budget_and_round_trips) {
  temp_dir dir;
  store_status st;
  kv_options options;
  options.block_cache_bytes = std::size_t{8} << 20;
  options.write_buffer_bytes = std::size_t{2} << 20;
  const std::string value(1000, 'v');
  {
    auto db = kv_store::open((dir.path / "db").string(), options, &st);
    ASSERT_TRUE(db) << st.error;
    const std::uint64_t empty = db->approximate_memory_bytes();
    // ~6 MB in batches of 100 keys: more than the write budget, so memtables get flushed.
    for (int b = 0; b < 60; ++b) {
      std::vector<kv_op> ops;
      for (int i = 0; i < 100; ++i) {
        ops.emplace_back("state/" + std::to_string(100000 + b * 100 + i), value);
      }
      ASSERT_TRUE(db->write_batch(ops, false).ok());
    }
    EXPECT_GT(db->approximate_memory_bytes(), empty);
    EXPECT_EQ(db->get("state/100042", &st), value);
    ASSERT_TRUE(db->flush().ok());
    ASSERT_TRUE(db->compact_all().ok());
    EXPECT_EQ(db->scan("state/", &st).size(), 6000u);
    EXPECT_TRUE(st.ok()) << st.error;
    // Reads after compaction go through the block cache; usage stays near the budget.
    EXPECT_EQ(db->get("state/105999", &st), value);
    EXPECT_LT(db->approximate_memory_bytes(), std::uint64_t{8 + 2 + 4} << 20);
  }
  auto db = kv_store::open((dir.path / "db").string(), options, &st);
  ASSERT_TRUE(db) << st.error;
  EXPECT_EQ(db->get("state/100000", &st), value);
  EXPECT_EQ(db->scan("state/", &st).size(), 6000u);
  // The default-options overload opens the same store.
  db.reset();
  db = kv_store::open((dir.path / "db").string(), &st);
  ASSERT_TRUE(db) << st.error;
  EXPECT_EQ(db->get("state/105999", &st), value);
}

}  // namespace
}  // namespace eddy
