// assignment.hpp — which worker owns which partition. Pure functions, no CAF.
//
// Balanced and sticky: every partition goes to exactly one live worker; owners' partition
// counts differ by at most one; a partition stays with its previous owner whenever that owner
// is alive and balance allows, so a worker joining or leaving moves as few partitions as
// possible. Deterministic: the same inputs always give the same answer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace eddy {

/// partition -> worker name.
using partition_owners = std::map<int32_t, std::string>;

/// Assigns `partitions` to `workers` (names, any order). `previous` is the last assignment
/// (may name dead workers or unknown partitions; both are ignored). Empty when no workers.
[[nodiscard]] partition_owners assign_partitions(const std::vector<int32_t>& partitions,
                                                 const std::vector<std::string>& workers,
                                                 const partition_owners& previous);

/// The partitions `worker` owns in `owners`, ascending.
[[nodiscard]] std::vector<int32_t> partitions_of(const partition_owners& owners,
                                                 const std::string& worker);

}  // namespace eddy
