#include "coordinator/assignment.hpp"

#include <algorithm>
#include <set>

namespace eddy {

partition_owners assign_partitions(const std::vector<int32_t>& partitions,
                                   const std::vector<std::string>& workers,
                                   const partition_owners& previous) {
  partition_owners out;
  if (workers.empty()) return out;
  std::vector<std::string> names = workers;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<int32_t> parts = partitions;
  std::sort(parts.begin(), parts.end());
  parts.erase(std::unique(parts.begin(), parts.end()), parts.end());

  const size_t n = names.size();
  const size_t base = parts.size() / n, extra = parts.size() % n;
  // Capacity per worker: the first `extra` workers (by name) may hold one more.
  std::map<std::string, size_t> cap, held;
  for (size_t i = 0; i < n; ++i) cap[names[i]] = base + (i < extra ? 1 : 0);

  std::vector<int32_t> unplaced;
  for (int32_t p : parts) {
    auto it = previous.find(p);
    if (it != previous.end() && cap.count(it->second) && held[it->second] < cap[it->second]) {
      out[p] = it->second;
      ++held[it->second];
    } else {
      unplaced.push_back(p);
    }
  }
  for (int32_t p : unplaced) {
    // The worker with the most spare capacity; ties to the first name.
    const std::string* best = nullptr;
    size_t best_spare = 0;
    for (const auto& name : names) {
      size_t spare = cap[name] - held[name];
      if (spare > best_spare) {
        best = &name;
        best_spare = spare;
      }
    }
    out[p] = *best;
    ++held[*best];
  }
  return out;
}

std::vector<int32_t> partitions_of(const partition_owners& owners, const std::string& worker) {
  std::vector<int32_t> out;
  for (const auto& [p, w] : owners)
    if (w == worker) out.push_back(p);
  return out;
}

}  // namespace eddy
