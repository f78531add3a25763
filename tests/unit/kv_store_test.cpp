#include "state/kv_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>

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

}  // namespace
}  // namespace eddy
