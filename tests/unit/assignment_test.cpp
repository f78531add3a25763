#include "coordinator/assignment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace eddy {
namespace {

std::vector<int32_t> range(int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

void expect_balanced(const partition_owners& owners, const std::vector<int32_t>& parts,
                     const std::vector<std::string>& workers) {
  ASSERT_EQ(owners.size(), parts.size());
  size_t lo = SIZE_MAX, hi = 0;
  for (const auto& w : workers) {
    size_t n = partitions_of(owners, w).size();
    lo = std::min(lo, n);
    hi = std::max(hi, n);
  }
  EXPECT_LE(hi - lo, 1u);
  for (const auto& [p, w] : owners)
    EXPECT_NE(std::find(workers.begin(), workers.end(), w), workers.end());
}

TEST(assignment, every_partition_gets_exactly_one_live_worker_and_counts_differ_by_at_most_one) {
  for (int n_parts : {1, 3, 8, 13, 64}) {
    for (int n_workers : {1, 2, 3, 5}) {
      std::vector<std::string> ws;
      for (int i = 0; i < n_workers; ++i) ws.push_back("w" + std::to_string(i));
      auto owners = assign_partitions(range(n_parts), ws, {});
      expect_balanced(owners, range(n_parts), ws);
    }
  }
}

TEST(assignment, no_workers_means_no_owners) {
  EXPECT_TRUE(assign_partitions(range(4), {}, {}).empty());
}

TEST(assignment, a_leaving_worker_moves_only_its_own_partitions) {
  auto parts = range(12);
  auto before = assign_partitions(parts, {"a", "b", "c"}, {});
  auto after = assign_partitions(parts, {"a", "b"}, before);
  expect_balanced(after, parts, {"a", "b"});
  for (const auto& [p, w] : before)
    if (w != "c") {
      EXPECT_EQ(after.at(p), w) << "partition " << p << " moved needlessly";
    }
}

TEST(assignment, a_joining_worker_takes_only_what_balance_requires) {
  auto parts = range(12);
  auto before = assign_partitions(parts, {"a", "b"}, {});
  auto after = assign_partitions(parts, {"a", "b", "c"}, before);
  expect_balanced(after, parts, {"a", "b", "c"});
  int moved = 0;
  for (const auto& [p, w] : before) moved += after.at(p) != w;
  EXPECT_EQ(moved, 4);  // c gets 4 of 12, nothing else moves
}

TEST(assignment, is_deterministic_whatever_the_input_order) {
  auto a = assign_partitions({5, 1, 3, 2, 4, 0}, {"y", "x"}, {});
  auto b = assign_partitions({0, 1, 2, 3, 4, 5}, {"x", "y"}, {});
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace eddy
