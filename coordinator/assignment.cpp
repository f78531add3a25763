#include "coordinator/assignment.hpp"

#include <algorithm>
#include <tuple>

namespace eddy {

std::string unit_id::to_string() const {
  return (k == kind::partition ? "p" : "s") + std::to_string(index);
}

namespace {

// Places the units of one kind (sorted, unique) on `workers` (sorted by name, unique).
void assign_kind(const std::vector<unit_id>& units, const std::vector<worker_capacity>& workers,
                 uint64_t total_slots, const unit_owners& previous, unit_owners& out) {
  const uint64_t n = units.size();
  const size_t w = workers.size();
  auto worker_index = [&](const std::string& name) -> size_t {
    auto it =
        std::lower_bound(workers.begin(), workers.end(), name,
                         [](const worker_capacity& x, const std::string& v) { return x.name < v; });
    return it != workers.end() && it->name == name ? static_cast<size_t>(it - workers.begin()) : w;
  };

  // Each unit's previous owner, if that worker is still here.
  std::vector<size_t> prev_owner(units.size(), w);
  std::vector<uint64_t> prev_count(w, 0);
  for (size_t u = 0; u < units.size(); ++u) {
    auto it = previous.find(units[u]);
    if (it == previous.end()) continue;
    size_t i = worker_index(it->second);
    if (i == w) continue;
    prev_owner[u] = i;
    ++prev_count[i];
  }

  // Quotas: floor(n*s/S) each, and one more for `rest` of the workers with a fractional share —
  // first those that already hold more than their floor (each such +1 keeps one unit in place),
  // then the largest fractions, then those holding fewest units of the kinds placed before (so
  // the shards' round-ups go to other workers than the partitions'), then by name.
  std::vector<uint64_t> quota(w), frac(w), other(w, 0);
  uint64_t rest = n;
  for (size_t i = 0; i < w; ++i) {
    quota[i] = n * workers[i].slots / total_slots;
    frac[i] = n * workers[i].slots % total_slots;
    rest -= quota[i];
  }
  for (const auto& [_, owner] : out)
    if (size_t i = worker_index(owner); i < w) ++other[i];
  std::vector<size_t> candidates;
  for (size_t i = 0; i < w; ++i)
    if (frac[i] > 0) candidates.push_back(i);
  std::sort(candidates.begin(), candidates.end(), [&](size_t a, size_t b) {
    return std::make_tuple(prev_count[b] > quota[b], frac[b], other[a], a) <
           std::make_tuple(prev_count[a] > quota[a], frac[a], other[b], b);
  });
  for (size_t c = 0; c < rest; ++c) ++quota[candidates[c]];

  // Keep units with their previous owners up to the quota, lowest units first; then fill the
  // remaining quotas in worker-name order with the rest, in unit order.
  std::vector<uint64_t> held(w, 0);
  std::vector<unit_id> unplaced;
  for (size_t u = 0; u < units.size(); ++u) {
    size_t i = prev_owner[u];
    if (i < w && held[i] < quota[i]) {
      out.emplace(units[u], workers[i].name);
      ++held[i];
    } else {
      unplaced.push_back(units[u]);
    }
  }
  size_t next = 0;
  for (size_t i = 0; i < w; ++i)
    for (; held[i] < quota[i]; ++held[i]) out.emplace(unplaced[next++], workers[i].name);
}

}  // namespace

unit_owners assign_units(const std::vector<unit_id>& units,
                         const std::vector<worker_capacity>& workers, const unit_owners& previous) {
  unit_owners out;
  std::vector<worker_capacity> ws = workers;
  std::sort(ws.begin(), ws.end(),
            [](const worker_capacity& a, const worker_capacity& b) { return a.name < b.name; });
  ws.erase(std::unique(
               ws.begin(), ws.end(),
               [](const worker_capacity& a, const worker_capacity& b) { return a.name == b.name; }),
           ws.end());
  uint64_t total_slots = 0;
  for (const auto& x : ws) total_slots += x.slots;
  if (total_slots == 0) return out;

  std::vector<unit_id> us = units;
  std::sort(us.begin(), us.end());
  us.erase(std::unique(us.begin(), us.end()), us.end());
  auto shards_begin = std::find_if(us.begin(), us.end(),
                                   [](const unit_id& u) { return u.k == unit_id::kind::shard; });
  assign_kind(std::vector<unit_id>(us.begin(), shards_begin), ws, total_slots, previous, out);
  assign_kind(std::vector<unit_id>(shards_begin, us.end()), ws, total_slots, previous, out);
  return out;
}

std::vector<unit_move> moves_between(const unit_owners& before, const unit_owners& after) {
  std::vector<unit_move> out;
  for (const auto& [u, to] : after) {
    auto it = before.find(u);
    std::string from = it == before.end() ? std::string() : it->second;
    if (from != to) out.push_back(unit_move{u, std::move(from), to});
  }
  return out;
}

std::vector<unit_id> units_of(const unit_owners& owners, const std::string& worker) {
  std::vector<unit_id> out;
  for (const auto& [u, w] : owners)
    if (w == worker) out.push_back(u);
  return out;
}

partition_owners assign_partitions(const std::vector<int32_t>& partitions,
                                   const std::vector<std::string>& workers,
                                   const partition_owners& previous) {
  std::vector<unit_id> units;
  for (int32_t p : partitions) units.push_back(unit_id::partition(p));
  std::vector<worker_capacity> ws;
  for (const auto& name : workers) ws.push_back({name, 1});
  unit_owners prev;
  for (const auto& [p, w] : previous) prev.emplace(unit_id::partition(p), w);
  partition_owners out;
  for (const auto& [u, w] : assign_units(units, ws, prev)) out.emplace(u.index, w);
  return out;
}

std::vector<int32_t> partitions_of(const partition_owners& owners, const std::string& worker) {
  std::vector<int32_t> out;
  for (const auto& [p, w] : owners)
    if (w == worker) out.push_back(p);
  return out;
}

}  // namespace eddy
