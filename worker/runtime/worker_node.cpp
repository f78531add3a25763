#include "worker/runtime/worker_node.hpp"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <set>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/unit_host.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

namespace {

struct node_state {
  worker_node_options opts;
  caf::actor coordinator;
  std::shared_ptr<worker_node_outcome> outcome;
  bool joined = false;
  std::shared_ptr<const pipeline_config> pipeline;  ///< from the join reply
  caf::actor host;                                  ///< this generation's units
  uint64_t host_generation = 0;
  std::vector<int32_t> host_partitions;  ///< what the host runs
  bool host_started = false;             ///< the host's generation started
  static inline const char* name = "eddy.worker_node";
};

using node_ptr = caf::stateful_actor<node_state>*;

std::ostream& log_of(node_ptr self) {
  return self->state.opts.log ? *self->state.opts.log : std::cerr;
}

/// The membership lines' stream (worker_node_options::membership_log).
std::ostream& membership_log_of(node_ptr self) {
  return self->state.opts.membership_log ? *self->state.opts.membership_log : log_of(self);
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
  // A clean leave: the host's per-trigger sinks (console) write what they hold first (the
  // at-least-once sinks would lose rows of committed epochs otherwise). Not after a loss: a
  // fenced member writes nothing more.
  if (self->state.host && how == worker_node_outcome::kind::left)
    self->send(self->state.host, finish_atom::value, self->state.host_generation, uint64_t{0});
  // user_shutdown, not kill: the host traps it to take its units along (kill is untrappable).
  if (self->state.host) self->send_exit(self->state.host, caf::exit_reason::user_shutdown);
  self->quit();
}

/// A pipeline without aggregation has no state shared between partitions: when a worker was lost
/// or left and the new assignment keeps every partition the running host has, the host goes on
/// from where it is and only the partitions that moved to it rewind (unit_host.hpp, adopt).
/// Otherwise a new host restores every unit from the last committed epoch. --exit-at-end runs
/// restart too (a task that ended says so once, to its generation).
bool keeps_host(node_ptr self, const unit_assignment& a) {
  const auto& st = self->state;
  // Only when the generation answers a worker lost or gone (since_change_ms set): an epoch that
  // failed or timed out may have been stuck in this very host (a hung sink), which a new host
  // replaces; a join waits for an epoch boundary anyway, so a new host redoes nothing.
  if (!st.host || !st.host_started || !st.pipeline->aggregates.empty() || a.exit_at_end ||
      !a.shards.empty() || st.host_partitions.empty() || a.since_change_ms < 0)
    return false;
  const std::set<int32_t> next(a.partitions.begin(), a.partitions.end());
  return std::all_of(st.host_partitions.begin(), st.host_partitions.end(),
                     [&](int32_t p) { return next.contains(p); });
}

caf::behavior worker_node(node_ptr self, caf::actor coordinator, worker_node_options opts,
                          std::shared_ptr<worker_node_outcome> outcome) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.coordinator = std::move(coordinator);
  st.outcome = std::move(outcome);
  end_with_exception_message(self, "worker node");
  self->monitor(st.coordinator);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (st.host && dm.source == st.host.address()) {
      if (!is_fault(dm.reason)) return;
      const std::string why = reason_text(self->system(), dm.reason);
      membership_log_of(self) << "eddy worker " << st.opts.name << ": generation "
                              << st.host_generation << ": its units failed (" << why
                              << "); leaving so that the others take over\n";
      // Why, for the coordinator: a restore that fails in every generation ends the run there.
      if (st.coordinator) self->send(st.coordinator, failed_atom::value, st.host_generation, why);
      st.outcome->units_error = why;
      finish(self, worker_node_outcome::kind::lost, "units failed: " + why);
      return;
    }
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
            if (!st.opts.local_dir.empty() && st.opts.pipeline) {
              st.pipeline = st.opts.pipeline;
            } else if (!st.opts.local_dir.empty()) {
              auto parsed = parse_pipeline_config(r.pipeline_toml, "pipeline from the coordinator");
              if (!parsed.config) {
                const std::string e =
                    "the coordinator's pipeline does not parse here: " + parsed.error;
                log_of(self) << "eddy worker " << st.opts.name << ": " << e << "\n";
                finish(self, worker_node_outcome::kind::refused, e);
                return;
              }
              apply_bootstrap_override(*parsed.config, r.bootstrap);
              st.pipeline = std::make_shared<const pipeline_config>(std::move(*parsed.config));
            }
            membership_log_of(self)
                << "eddy worker " << st.opts.name << ": joined the coordinator "
                << st.opts.coordinator_label << " (pipeline " << r.pipeline_name << ", "
                << st.opts.slots << (st.opts.slots == 1 ? " slot" : " slots") << ")\n";
            // Once per process: what each sink is and what it guarantees, as `eddy run` says it.
            // In one process (eddy run --as-cluster) the run has said it already.
            static std::atomic<bool> sinks_described{false};  // a rejoin is a new node actor
            if (st.pipeline && !st.opts.run && !sinks_described.exchange(true))
              write_sink_lines(log_of(self), *st.pipeline, "eddy worker " + st.opts.name + ": ");
          },
          [self](const caf::error& err) {
            finish(self, worker_node_outcome::kind::lost,
                   "no answer to the join request: " + reason_text(self->system(), err));
          });
  return {
      [self](assign_atom, const unit_assignment& a) {
        const auto received_at = std::chrono::steady_clock::now();
        auto& o = *self->state.outcome;
        if (a.generation <= o.generation) return;  // fenced: older than what we hold
        o.generation = a.generation;
        o.partitions = a.partitions;
        o.shards = a.shards;
        std::string units = join_list('p', a.partitions);
        std::string shards = join_list('s', a.shards);
        if (!units.empty() && !shards.empty()) units += ",";
        units += shards;
        membership_log_of(self) << "eddy worker " << self->state.opts.name << ": generation "
                                << a.generation << ": holds "
                                << (units.empty() ? "no units" : units) << "\n";
        auto& st = self->state;
        if (!st.pipeline) return;
        if (keeps_host(self, a)) {
          log_of(self) << "eddy worker " << st.opts.name << ": generation " << a.generation << ": "
                       << join_list('p', st.host_partitions)
                       << " go on from where they are (no aggregation: only partitions that "
                          "moved restore from epoch "
                       << a.restore_epoch << ")\n";
          st.host_generation = a.generation;
          st.host_partitions = a.partitions;
          st.host_started = false;
          self->send(st.host, assign_atom::value, a,
                     static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              received_at.time_since_epoch())
                                              .count()));
          return;
        }
        if (st.host) {
          self->demonitor(st.host);
          self->send_exit(st.host, caf::exit_reason::user_shutdown);
        }
        unit_host_options h;
        h.cfg = st.pipeline;
        h.worker_name = st.opts.name;
        h.local_dir = st.opts.local_dir;
        h.assignment = a;
        h.coordinator = st.coordinator;
        h.node = caf::actor_cast<caf::actor>(self);
        h.log = st.opts.log;
        h.run = st.opts.run;
        h.report = st.opts.report;
        h.received_at = received_at;
        st.host = spawn_unit_host(self->system(), std::move(h));
        st.host_generation = a.generation;
        st.host_partitions = a.partitions;
        st.host_started = false;
        self->monitor(st.host);
      },
      [self](ready_atom a, uint64_t generation, const std::vector<int32_t>& ids,
             const std::vector<caf::actor>& handles) {
        auto& st = self->state;
        if (st.host && generation == st.host_generation)
          self->send(st.coordinator, a, generation, ids, handles);
      },
      [self](start_atom a, uint64_t generation, const std::vector<caf::actor>& table) {
        auto& st = self->state;
        if (!st.host || generation != st.host_generation) return;
        st.host_started = true;
        self->send(st.host, a, generation, table);
      },
      [self](checkpoint_atom a, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        if (st.host && generation == st.host_generation) self->send(st.host, a, generation, epoch);
      },
      [self](commit_atom a, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        if (st.host && generation == st.host_generation) self->send(st.host, a, generation, epoch);
      },
      [self](drained_atom a, uint64_t generation) {  // from the host, without checkpoints
        auto& st = self->state;
        if (st.host && generation == st.host_generation) self->send(st.coordinator, a, generation);
      },
      [self](finish_atom, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        if (generation < st.outcome->generation) return;  // fenced
        if (epoch == 0)  // without checkpoints: every member's sink drained
          membership_log_of(self) << "eddy worker " << st.opts.name
                                  << ": the run is complete; leaving\n";
        else
          log_of(self) << "eddy worker " << st.opts.name << ": the run is complete (epoch " << epoch
                       << " committed its last output); leaving\n";
        self->send(self, leave_atom::value, 10000);
      },
      [self](leave_atom, int timeout_ms) {
        auto& st = self->state;
        if (!st.joined) {
          finish(self, worker_node_outcome::kind::left, "");
          return;
        }
        // Still monitored: a coordinator lost meanwhile ends the wait at once.
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
