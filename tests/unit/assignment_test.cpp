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

// ---- units (partitions and shards) over workers with slots: property tests -------------------

namespace eddy {
namespace {

struct scenario {
  std::vector<unit_id> units;
  std::vector<worker_capacity> workers;
  unit_owners previous;
};

scenario random_scenario(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  scenario s;
  int parts = pick(0, 40), shards = pick(0, 12);
  for (int p = 0; p < parts; ++p) s.units.push_back(unit_id::partition(p));
  for (int x = 0; x < shards; ++x) s.units.push_back(unit_id::shard(x));
  std::shuffle(s.units.begin(), s.units.end(), rng);
  int n_workers = pick(1, 6);
  for (int i = 0; i < n_workers; ++i)
    s.workers.push_back({"w" + std::to_string(pick(0, 99)) + "-" + std::to_string(i),
                         static_cast<uint32_t>(pick(0, 4))});
  // Previous owners: live workers, a dead one, and units that no longer exist.
  for (int p = 0; p < parts + 4; ++p) {
    int who = pick(-1, n_workers);
    if (who < 0) continue;
    s.previous[unit_id::partition(p)] =
        who == n_workers ? "dead" : s.workers[static_cast<size_t>(who)].name;
  }
  for (int x = 0; x < shards + 2; ++x) {
    int who = pick(-1, n_workers);
    if (who < 0) continue;
    s.previous[unit_id::shard(x)] =
        who == n_workers ? "dead" : s.workers[static_cast<size_t>(who)].name;
  }
  return s;
}

// The most units any slot-balanced assignment can leave with their previous owner, by trying
// every choice of which workers round up — independent of assign_units' greedy choice.
size_t best_kept(const scenario& s, unit_id::kind k) {
  uint64_t n = 0, total = 0;
  for (const auto& u : s.units) n += u.k == k;
  for (const auto& w : s.workers) total += w.slots;
  const size_t w = s.workers.size();
  std::vector<uint64_t> lo(w), prev(w, 0);
  uint64_t rest = n;
  std::vector<size_t> fractional;
  for (size_t i = 0; i < w; ++i) {
    lo[i] = n * s.workers[i].slots / total;
    rest -= lo[i];
    if (n * s.workers[i].slots % total) fractional.push_back(i);
    for (const auto& [u, owner] : s.previous)
      if (u.k == k && owner == s.workers[i].name &&
          std::find(s.units.begin(), s.units.end(), u) != s.units.end())
        ++prev[i];
  }
  size_t best = 0;
  for (uint32_t mask = 0; mask < (1u << fractional.size()); ++mask) {
    if (static_cast<uint64_t>(__builtin_popcount(mask)) != rest) continue;
    std::vector<uint64_t> q = lo;
    for (size_t c = 0; c < fractional.size(); ++c)
      if (mask & (1u << c)) ++q[fractional[c]];
    size_t kept = 0;
    for (size_t i = 0; i < w; ++i) kept += std::min(prev[i], q[i]);
    best = std::max(best, kept);
  }
  return best;
}

TEST(unit_assignment, is_balanced_by_slots_and_keeps_the_most_units_possible_in_place) {
  std::mt19937 rng(20261202);
  int checked = 0;
  for (int round = 0; round < 3000; ++round) {
    scenario s = random_scenario(rng);
    uint64_t total = 0;
    for (const auto& w : s.workers) total += w.slots;
    auto owners = assign_units(s.units, s.workers, s.previous);
    if (total == 0) {
      EXPECT_TRUE(owners.empty());
      continue;
    }
    ASSERT_EQ(owners.size(), s.units.size()) << "round " << round;
    for (auto k : {unit_id::kind::partition, unit_id::kind::shard}) {
      uint64_t n = 0;
      for (const auto& u : s.units) n += u.k == k;
      size_t kept = 0;
      for (const auto& w : s.workers) {
        uint64_t held = 0;
        for (const auto& u : units_of(owners, w.name)) {
          if (u.k != k) continue;
          ++held;
          auto it = s.previous.find(u);
          kept += it != s.previous.end() && it->second == w.name;
        }
        uint64_t lo = n * w.slots / total, hi = lo + (n * w.slots % total ? 1 : 0);
        EXPECT_GE(held, lo) << "round " << round << " worker " << w.name;
        EXPECT_LE(held, hi) << "round " << round << " worker " << w.name;
      }
      EXPECT_EQ(kept, best_kept(s, k)) << "round " << round << ": needless moves";
      ++checked;
    }
    for (const auto& [u, w] : owners)
      EXPECT_NE(std::find_if(s.workers.begin(), s.workers.end(),
                             [&](const worker_capacity& x) { return x.name == w; }),
                s.workers.end());
  }
  EXPECT_GT(checked, 4000);
}

TEST(unit_assignment, is_stable_and_deterministic) {
  std::mt19937 rng(7);
  for (int round = 0; round < 500; ++round) {
    scenario s = random_scenario(rng);
    auto owners = assign_units(s.units, s.workers, s.previous);
    // Assigning again from the result changes nothing.
    EXPECT_EQ(assign_units(s.units, s.workers, owners), owners);
    EXPECT_TRUE(moves_between(owners, assign_units(s.units, s.workers, owners)).empty());
    // The order of the inputs does not matter.
    auto units = s.units;
    auto workers = s.workers;
    std::reverse(units.begin(), units.end());
    std::shuffle(workers.begin(), workers.end(), rng);
    EXPECT_EQ(assign_units(units, workers, s.previous), owners);
  }
}

TEST(unit_assignment, a_worker_with_twice_the_slots_gets_twice_the_units_of_each_kind) {
  std::vector<unit_id> units;
  for (int p = 0; p < 12; ++p) units.push_back(unit_id::partition(p));
  for (int x = 0; x < 6; ++x) units.push_back(unit_id::shard(x));
  auto owners = assign_units(units, {{"big", 2}, {"small", 1}}, {});
  auto big = units_of(owners, "big");
  EXPECT_EQ(std::count_if(big.begin(), big.end(),
                          [](const unit_id& u) { return u.k == unit_id::kind::partition; }),
            8);
  EXPECT_EQ(std::count_if(big.begin(), big.end(),
                          [](const unit_id& u) { return u.k == unit_id::kind::shard; }),
            4);
}

TEST(unit_assignment, a_lost_worker_moves_only_its_units_and_a_new_one_only_takes_units) {
  std::vector<unit_id> units;
  for (int p = 0; p < 16; ++p) units.push_back(unit_id::partition(p));
  for (int x = 0; x < 4; ++x) units.push_back(unit_id::shard(x));
  auto three = assign_units(units, {{"a", 1}, {"b", 1}, {"c", 1}}, {});
  auto two = assign_units(units, {{"a", 1}, {"b", 1}}, three);
  for (const auto& m : moves_between(three, two)) EXPECT_EQ(m.from, "c") << m.unit.to_string();
  EXPECT_EQ(moves_between(three, two).size(), units_of(three, "c").size());
  auto back = assign_units(units, {{"a", 1}, {"b", 1}, {"c", 1}}, two);
  for (const auto& m : moves_between(two, back)) EXPECT_EQ(m.to, "c") << m.unit.to_string();
  // c takes the floor of its share (5 of 16 partitions, 1 of 4 shards): the rounding up goes to
  // workers that already hold more, which keeps more units in place.
  EXPECT_EQ(units_of(back, "c").size(), 6u);
}

TEST(unit_assignment, a_worker_with_no_slots_hands_everything_over) {
  std::vector<unit_id> units{unit_id::partition(0), unit_id::partition(1), unit_id::shard(0)};
  auto before = assign_units(units, {{"a", 1}, {"b", 1}}, {});
  auto after = assign_units(units, {{"a", 0}, {"b", 1}}, before);
  EXPECT_TRUE(units_of(after, "a").empty());
  EXPECT_EQ(units_of(after, "b").size(), 3u);
  EXPECT_TRUE(assign_units(units, {{"a", 0}}, {}).empty());
}

TEST(unit_assignment, the_shards_round_up_on_other_workers_than_the_partitions) {
  std::vector<unit_id> units;
  for (int p = 0; p < 16; ++p) units.push_back(unit_id::partition(p));
  for (int x = 0; x < 4; ++x) units.push_back(unit_id::shard(x));
  auto owners = assign_units(units, {{"a", 1}, {"b", 1}, {"c", 1}}, {});
  for (const char* w : {"a", "b", "c"}) {
    const size_t n = units_of(owners, w).size();
    EXPECT_TRUE(n == 6 || n == 7) << w << " holds " << n << " of 20 units";
  }
}

TEST(unit_assignment, units_print_as_p_and_s_with_their_index) {
  EXPECT_EQ(unit_id::partition(12).to_string(), "p12");
  EXPECT_EQ(unit_id::shard(3).to_string(), "s3");
}

}  // namespace
}  // namespace eddy
