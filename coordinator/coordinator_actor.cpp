#include "coordinator/coordinator_actor.hpp"

#include <map>

#include "actors/messages.hpp"
#include "coordinator/assignment.hpp"

namespace eddy {

namespace {

struct coordinator_state {
  std::string topic;
  std::vector<int32_t> partitions;
  std::map<std::string, caf::actor> workers;
  partition_owners owners;
  uint64_t generation = 0;
  static inline const char* name = "eddy.coordinator";
};

void rebalance(caf::stateful_actor<coordinator_state>* self) {
  auto& st = self->state;
  std::vector<std::string> names;
  for (const auto& [n, _] : st.workers) names.push_back(n);
  partition_owners next = assign_partitions(st.partitions, names, st.owners);
  ++st.generation;
  for (const auto& [n, handle] : st.workers) {
    auto mine = partitions_of(next, n);
    if (mine == partitions_of(st.owners, n) && st.generation > 1) continue;
    self->send(handle, assign_atom::value, assignment{st.generation, st.topic, std::move(mine)});
  }
  st.owners = std::move(next);
}

caf::behavior coordinator(caf::stateful_actor<coordinator_state>* self, std::string topic,
                          std::vector<int32_t> partitions) {
  self->state.topic = std::move(topic);
  self->state.partitions = std::move(partitions);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& ws = self->state.workers;
    for (auto it = ws.begin(); it != ws.end(); ++it) {
      if (it->second.address() == dm.source) {
        ws.erase(it);
        rebalance(self);
        return;
      }
    }
  });
  return {
      [self](register_atom, const std::string& name, const caf::actor& worker) {
        self->monitor(worker);
        self->state.workers[name] = worker;
        rebalance(self);
      },
      [self](stats_atom) {
        std::vector<std::string> out;
        for (const auto& [p, w] : self->state.owners) out.push_back(std::to_string(p) + "=" + w);
        return out;
      },
      [self](stop_atom) { self->quit(); },
  };
}

}  // namespace

caf::actor spawn_coordinator(caf::actor_system& sys, std::string topic,
                             std::vector<int32_t> partitions) {
  return sys.spawn(coordinator, std::move(topic), std::move(partitions));
}

}  // namespace eddy
