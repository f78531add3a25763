// coordinator_actor.hpp — membership and partition assignment for one pipeline.
//
// Workers register with `(register_atom, name, worker_handle)`; the coordinator monitors them,
// computes a balanced sticky assignment (assignment.hpp) and sends each worker whose partitions
// changed `(assign_atom, assignment)`, with a generation that grows on every change. A worker
// that goes down (process killed, node cut off with heartbeats on) is dropped and its partitions
// move to the survivors. `(stats_atom)` answers with the current owners as "p=worker" strings.
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace eddy {

/// Spawns the coordinator of `topic`, whose partitions are `partitions`.
[[nodiscard]] caf::actor spawn_coordinator(caf::actor_system& sys, std::string topic,
                                           std::vector<int32_t> partitions);

}  // namespace eddy
