// assignment.hpp — which worker owns which unit. Pure functions, no CAF.
//
// A unit is what owns state and moves between workers: one Kafka partition's source task or one
// aggregator shard. Each worker has a number of slots (its share of the work). For each kind of
// unit separately, `assign_units` gives every unit exactly one worker such that:
//   - balanced by slots: a worker with s of the S slots holds floor(n*s/S) or ceil(n*s/S) of the n
//     units of that kind (exactly n*s/S when that is whole; a worker with 0 slots holds none);
//   - sticky with minimal moves: among all balanced assignments it keeps the most units with
//     their previous (live) owner, so a worker joining or leaving moves as few units as possible;
//   - deterministic: the same inputs in any order give the same answer.
// Cost: O((units + workers) log(units + workers)) — 11,000 units over 100 workers take about a
// millisecond (bench/assignment_bench.cpp).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace eddy {

/// One unit of state: a partition's source task or an aggregator shard.
struct unit_id {
  enum class kind : uint8_t { partition = 0, shard = 1 };
  kind k = kind::partition;
  int32_t index = 0;

  [[nodiscard]] static unit_id partition(int32_t p) { return {kind::partition, p}; }
  [[nodiscard]] static unit_id shard(int32_t s) { return {kind::shard, s}; }
  auto operator<=>(const unit_id&) const = default;
  /// "p3" or "s1": how logs and file names spell a unit.
  [[nodiscard]] std::string to_string() const;
};

/// A live worker and its slots (>= 0; 0 = takes no units, e.g. while it hands its units over).
struct worker_capacity {
  std::string name;
  uint32_t slots = 1;
};

/// unit -> worker name.
using unit_owners = std::map<unit_id, std::string>;

/// Assigns `units` (any order, duplicates ignored) to `workers` (names unique; any order).
/// `previous` is the last assignment: it may name dead workers and units no longer listed; both
/// are ignored. Empty when no worker has a slot.
[[nodiscard]] unit_owners assign_units(const std::vector<unit_id>& units,
                                       const std::vector<worker_capacity>& workers,
                                       const unit_owners& previous);

/// A unit whose owner changes from `from` ("" = it had no live owner) to `to`.
struct unit_move {
  unit_id unit;
  std::string from, to;
  bool operator==(const unit_move&) const = default;
};

/// The units whose owner differs between `before` and `after` (units only in `after` included,
/// with from = ""), in unit order.
[[nodiscard]] std::vector<unit_move> moves_between(const unit_owners& before,
                                                   const unit_owners& after);

/// The units `worker` owns in `owners`, in unit order.
[[nodiscard]] std::vector<unit_id> units_of(const unit_owners& owners, const std::string& worker);

// ---- partitions only (one slot per worker): the one-process runtime's view --------------------

/// partition -> worker name.
using partition_owners = std::map<int32_t, std::string>;

/// assign_units for partitions over workers of one slot each.
[[nodiscard]] partition_owners assign_partitions(const std::vector<int32_t>& partitions,
                                                 const std::vector<std::string>& workers,
                                                 const partition_owners& previous);

/// The partitions `worker` owns in `owners`, ascending.
[[nodiscard]] std::vector<int32_t> partitions_of(const partition_owners& owners,
                                                 const std::string& worker);

}  // namespace eddy
