#include "worker/runtime/worker_node.hpp"

#include <iostream>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"

namespace eddy {

namespace {

struct node_state {
  worker_node_options opts;
  caf::actor coordinator;
  std::shared_ptr<worker_node_outcome> outcome;
  bool joined = false;
  static inline const char* name = "eddy.worker_node";
};

using node_ptr = caf::stateful_actor<node_state>*;

std::ostream& log_of(node_ptr self) {
  return self->state.opts.log ? *self->state.opts.log : std::cerr;
}

std::string join_list(char prefix, const std::vector<int32_t>& xs) {
  std::string out;
  for (int32_t x : xs) out += (out.empty() ? "" : ",") + std::string(1, prefix) + std::to_string(x);
  return out;
}

void finish(node_ptr self, worker_node_outcome::kind how, std::string detail) {
  auto& o = *self->state.outcome;
  if (o.how != worker_node_outcome::kind::running) return;
  o.how = how;
  o.detail = std::move(detail);
  self->quit();
}

caf::behavior worker_node(node_ptr self, caf::actor coordinator, worker_node_options opts,
                          std::shared_ptr<worker_node_outcome> outcome) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.coordinator = std::move(coordinator);
  st.outcome = std::move(outcome);
  self->monitor(st.coordinator);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != st.coordinator.address()) return;
    const std::string why = dm.reason == caf::exit_reason::remote_link_unreachable
                                ? std::string("connection dropped or heartbeats stopped")
                                : self->system().render(dm.reason);
    log_of(self) << "eddy worker " << st.opts.name << ": lost the coordinator "
                 << st.opts.coordinator_label << " (" << why << "); stopped "
                 << (st.outcome->partitions.size() + st.outcome->shards.size())
                 << " units, publishing nothing more\n";
    st.outcome->partitions.clear();
    st.outcome->shards.clear();
    finish(self, worker_node_outcome::kind::lost, why);
  });
  worker_hello hello{st.opts.version, st.opts.name, st.opts.slots, st.opts.host};
  self->request(st.coordinator, std::chrono::seconds(10), register_atom::value, hello,
                caf::actor_cast<caf::actor>(self))
      .then(
          [self](const join_reply& r) {
            auto& st = self->state;
            if (!r.accepted) {
              log_of(self) << "eddy worker " << st.opts.name << ": refused by the coordinator "
                           << st.opts.coordinator_label << ": " << r.refusal << "\n";
              finish(self, worker_node_outcome::kind::refused, r.refusal);
              return;
            }
            st.joined = true;
            log_of(self) << "eddy worker " << st.opts.name << ": joined the coordinator "
                         << st.opts.coordinator_label << " (pipeline " << r.pipeline_name << ", "
                         << st.opts.slots << (st.opts.slots == 1 ? " slot" : " slots") << ")\n";
          },
          [self](const caf::error& err) {
            finish(self, worker_node_outcome::kind::lost,
                   "no answer to the join request: " + self->system().render(err));
          });
  return {
      [self](assign_atom, const unit_assignment& a) {
        auto& o = *self->state.outcome;
        if (a.generation <= o.generation) return;  // fenced: older than what we hold
        o.generation = a.generation;
        o.partitions = a.partitions;
        o.shards = a.shards;
        std::string units = join_list('p', a.partitions);
        std::string shards = join_list('s', a.shards);
        if (!units.empty() && !shards.empty()) units += ",";
        units += shards;
        log_of(self) << "eddy worker " << self->state.opts.name << ": generation " << a.generation
                     << ": holds " << (units.empty() ? "no units" : units) << "\n";
      },
      [self](leave_atom, int timeout_ms) {
        auto& st = self->state;
        if (!st.joined) {
          finish(self, worker_node_outcome::kind::left, "");
          return;
        }
        self->demonitor(st.coordinator);
        self->request(st.coordinator, std::chrono::milliseconds(timeout_ms), leave_atom::value,
                      st.opts.name)
            .then([self] { finish(self, worker_node_outcome::kind::left, ""); },
                  [self](const caf::error&) {
                    finish(self, worker_node_outcome::kind::left, "no confirmation");
                  });
      },
  };
}

}  // namespace

caf::actor spawn_worker_node(caf::actor_system& sys, caf::actor coordinator,
                             worker_node_options opts,
                             std::shared_ptr<worker_node_outcome> outcome) {
  return sys.spawn(worker_node, std::move(coordinator), std::move(opts), std::move(outcome));
}

void leave_cluster(caf::actor_system& sys, const caf::actor& node, int timeout_ms) {
  caf::anon_send(node, leave_atom::value, timeout_ms);
  (void)sys;
}

}  // namespace eddy
