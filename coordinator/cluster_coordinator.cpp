#include "coordinator/cluster_coordinator.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "actors/version.hpp"
#include "coordinator/assignment.hpp"

namespace eddy {

namespace {

struct member {
  caf::actor handle;
  uint32_t slots = 1;
  std::string host;
  std::chrono::steady_clock::time_point joined;
};

struct cluster_state {
  cluster_coordinator_options opts;
  std::vector<unit_id> units;
  std::map<std::string, member> members;
  unit_owners owners;
  uint64_t generation = 0;
  static inline const char* name = "eddy.cluster_coordinator";
};

using cluster_ptr = caf::stateful_actor<cluster_state>*;

std::ostream& log_of(cluster_ptr self) {
  return self->state.opts.log ? *self->state.opts.log : std::cerr;
}

std::string describe_members(const cluster_state& st) {
  uint32_t slots = 0;
  for (const auto& [_, m] : st.members) slots += m.slots;
  return std::to_string(st.members.size()) + (st.members.size() == 1 ? " worker, " : " workers, ") +
         std::to_string(slots) + (slots == 1 ? " slot" : " slots");
}

// "p3,p7" — a comma-separated list of units.
std::string join_units(const std::vector<unit_id>& units) {
  std::string out;
  for (const auto& u : units) out += (out.empty() ? "" : ",") + u.to_string();
  return out.empty() ? "-" : out;
}

void persist(cluster_ptr self) {
  auto& st = self->state;
  if (st.opts.state_dir.empty()) return;
  boost::json::object doc;
  doc["generation"] = st.generation;
  boost::json::array members;
  for (const auto& [name, m] : st.members)
    members.push_back(boost::json::object{{"name", name}, {"slots", m.slots}, {"host", m.host}});
  doc["members"] = std::move(members);
  boost::json::object owners;
  for (const auto& [u, w] : st.owners) owners[u.to_string()] = w;
  doc["owners"] = std::move(owners);
  const auto path = st.opts.state_dir / "assignment.json";
  const auto tmp = st.opts.state_dir / "assignment.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << boost::json::serialize(doc) << "\n";
    if (!out) {
      log_of(self) << "eddy coordinator: warning: cannot write " << tmp.string() << "\n";
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    log_of(self) << "eddy coordinator: warning: cannot replace " << path.string() << ": "
                 << ec.message() << "\n";
}

void rebalance(cluster_ptr self) {
  auto& st = self->state;
  std::vector<worker_capacity> caps;
  for (const auto& [name, m] : st.members) caps.push_back({name, m.slots});
  unit_owners next = assign_units(st.units, caps, st.owners);
  ++st.generation;
  // One line per (from, to) pair of moved units.
  std::map<std::pair<std::string, std::string>, std::vector<unit_id>> moved;
  for (const auto& m : moves_between(st.owners, next)) moved[{m.from, m.to}].push_back(m.unit);
  size_t orphaned = 0;
  for (const auto& [u, w] : st.owners)
    if (!next.count(u)) ++orphaned;
  auto& log = log_of(self);
  if (moved.empty() && orphaned == 0)
    log << "eddy coordinator: generation " << st.generation << ": no unit moves\n";
  for (const auto& [from_to, units] : moved)
    log << "eddy coordinator: generation " << st.generation << ": " << join_units(units) << " "
        << (from_to.first.empty() ? std::string("(unassigned)") : from_to.first) << " -> "
        << from_to.second << "\n";
  if (next.empty() && !st.units.empty())
    log << "eddy coordinator: generation " << st.generation << ": no workers; " << st.units.size()
        << " units wait for one to join\n";
  st.owners = std::move(next);
  for (const auto& [name, m] : st.members) {
    unit_assignment a;
    a.generation = st.generation;
    for (const auto& u : units_of(st.owners, name))
      (u.k == unit_id::kind::partition ? a.partitions : a.shards).push_back(u.index);
    self->send(m.handle, assign_atom::value, std::move(a));
  }
  persist(self);
}

void drop_member(cluster_ptr self, std::map<std::string, member>::iterator it,
                 const std::string& why) {
  auto& st = self->state;
  const auto up = std::chrono::steady_clock::now() - it->second.joined;
  const std::string name = it->first;
  st.members.erase(it);
  // "a member for N s": how long it was in the cluster, not how long detecting the loss took.
  log_of(self) << "eddy coordinator: worker " << name << " " << why << ", a member for "
               << std::chrono::duration_cast<std::chrono::seconds>(up).count() << " s; "
               << describe_members(st) << "\n";
  rebalance(self);
}

caf::behavior cluster_coordinator(cluster_ptr self, cluster_coordinator_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  for (int32_t p : st.opts.partitions) st.units.push_back(unit_id::partition(p));
  for (int32_t s = 0; s < st.opts.shards; ++s) st.units.push_back(unit_id::shard(s));
  persist(self);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& ms = self->state.members;
    for (auto it = ms.begin(); it != ms.end(); ++it)
      if (it->second.handle.address() == dm.source) {
        drop_member(self, it,
                    dm.reason == caf::exit_reason::remote_link_unreachable
                        ? std::string("lost (connection dropped or heartbeats stopped)")
                        : "lost (" + self->system().render(dm.reason) + ")");
        return;
      }
  });
  return {
      [self](register_atom, const worker_hello& hello, const caf::actor& handle) -> join_reply {
        auto& st = self->state;
        join_reply reply;
        if (hello.version != eddy_version) {
          reply.refusal = "worker " + hello.name + " runs eddy " + hello.version +
                          ", the coordinator eddy " + eddy_version +
                          ": run the same version on every node";
        } else if (st.members.count(hello.name)) {
          reply.refusal = "a worker named " + hello.name +
                          " is already a member: give each worker its own --name";
        } else if (hello.slots == 0) {
          reply.refusal = "worker " + hello.name + " has no slots";
        }
        if (!reply.refusal.empty()) {
          log_of(self) << "eddy coordinator: refused worker " << hello.name << " from "
                       << hello.host << ": " << reply.refusal << "\n";
          return reply;
        }
        self->monitor(handle);
        st.members[hello.name] =
            member{handle, hello.slots, hello.host, std::chrono::steady_clock::now()};
        log_of(self) << "eddy coordinator: worker " << hello.name << " joined from " << hello.host
                     << " (" << hello.slots << (hello.slots == 1 ? " slot" : " slots") << "); "
                     << describe_members(st) << "\n";
        reply.accepted = true;
        reply.pipeline_name = st.opts.pipeline_name;
        reply.pipeline_toml = st.opts.pipeline_toml;
        reply.bootstrap = st.opts.bootstrap;
        // The assignment follows the reply (same sender, same receiver: CAF keeps the order).
        self->send(self, assign_atom::value);
        return reply;
      },
      [self](assign_atom) { rebalance(self); },
      [self](leave_atom, const std::string& name) {
        auto& ms = self->state.members;
        auto it = ms.find(name);
        if (it == ms.end()) return;
        self->demonitor(it->second.handle);
        drop_member(self, it, "left");
      },
  };
}

}  // namespace

caf::actor spawn_cluster_coordinator(caf::actor_system& sys, cluster_coordinator_options opts) {
  return sys.spawn(cluster_coordinator, std::move(opts));
}

}  // namespace eddy
