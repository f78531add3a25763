#include "coordinator/cluster_coordinator.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"
#include "actors/version.hpp"
#include "coordinator/assignment.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {

namespace {

namespace fs = std::filesystem;

/// Coordinator to itself: epoch `epoch` of `generation` is due to be complete.
using epoch_due_atom = caf::atom_constant<caf::atom("epochdue")>;

/// Manifests kept by retention.
constexpr size_t manifests_kept = 3;

struct member {
  caf::actor handle;
  uint32_t slots = 1;
  std::string host;
  std::chrono::steady_clock::time_point joined;
};

/// What a member reported ready for the current generation.
struct member_ready {
  std::vector<int32_t> shard_ids;
  std::vector<caf::actor> shard_handles;
};

/// The epoch in flight.
struct open_epoch {
  uint64_t epoch = 0;
  std::set<std::string> missing;         ///< units (and "sink:<name>") yet to ack
  std::map<std::string, unit_ack> acks;  ///< the acks so far, by unit
  std::chrono::steady_clock::time_point opened;
};

struct cluster_state {
  cluster_coordinator_options opts;
  /// The last member lost or gone and when that was seen: the next started generation's line
  /// says how long after it the units run again (the failover gap a drill reads from the log).
  std::string last_gone;
  std::string last_gone_event;  ///< the same for the workers' lines: "the loss of w1 was detected"
  std::chrono::steady_clock::time_point last_gone_at;
  /// Every unit's last owner, also for units that have none now (every worker gone): a unit
  /// assigned again counts as moved from it.
  unit_owners last_owner;
  std::vector<unit_id> units;
  std::map<std::string, member> members;
  unit_owners owners;
  uint64_t generation = 0;
  uint64_t last_complete = 0;                 ///< newest committed epoch (0 = none)
  uint64_t next_epoch = 1;                    ///< the next epoch number never used
  std::map<std::string, member_ready> ready;  ///< members ready for `generation`
  bool started = false;                       ///< start sent for `generation`
  std::optional<open_epoch> epoch;
  /// Scaling at an epoch boundary: workers accepted while a generation runs wait here (monitored,
  /// holding nothing) and members that asked to leave keep their units, until the next epoch
  /// commits; then one new generation takes them in / lets them go and restores from that very
  /// epoch, so no work is redone. An epoch that fails instead makes the change at once.
  std::map<std::string, member> joining;
  std::map<std::string, caf::response_promise> leaving;
  /// Partitions the topic gained while running (the metadata watch): units from the next
  /// boundary on.
  std::vector<int32_t> new_partitions;
  /// Publishing (cluster_publisher): committed epochs go to it in order; it answers each.
  caf::actor publisher;
  uint64_t publish_asked = 0;        ///< the newest epoch sent to the publisher
  uint64_t published = 0;            ///< the newest it answered for
  bool open_when_published = false;  ///< a tick found the publisher too far behind
  /// exit_at_end: the input is complete and committed; members are told to leave, then it quits
  /// (with `finish_error` as the reason when not empty).
  bool finished = false;
  std::string finish_error;
  /// exit_at_end: partitions whose task said its input ended, in this generation; once all have,
  /// the next epoch opens at once (as eddy run's final epoch) instead of at the next tick.
  std::set<int32_t> ended;
  bool final_epoch_due = false;  ///< all ended while an epoch was open: the next opens after it
  /// (stop_atom): the next epoch that commits is the last; then finish as when the input ended.
  bool stopping = false;
  /// Without checkpoint_dir: members whose sink drained this generation (drained_atom).
  std::set<std::string> drained;
  /// Units that failed before their generation started (a worker's (failed_atom, generation,
  /// why)): the restore of `last_complete` failed that many generations in a row. Its files do
  /// not change, so a damaged one fails every try: after restore_attempts the coordinator ends
  /// with the error instead of moving the units around forever.
  int restore_failures = 0;
  uint64_t restore_failed_generation = 0;  ///< counted once per generation
  static constexpr int restore_attempts = 3;
  static inline const char* name = "eddy.cluster_coordinator";
};

using cluster_ptr = caf::stateful_actor<cluster_state>*;

std::ostream& log_of(cluster_ptr self) {
  return self->state.opts.log ? *self->state.opts.log : std::cerr;
}

/// The membership lines' stream (cluster_coordinator_options::membership_log).
std::ostream& membership_log_of(cluster_ptr self) {
  return self->state.opts.membership_log ? *self->state.opts.membership_log : log_of(self);
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

std::string join_names(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

void persist(cluster_ptr self) {
  auto& st = self->state;
  if (st.opts.state_dir.empty()) return;
  boost::json::object doc;
  doc["generation"] = st.generation;
  doc["last_complete"] = st.last_complete;
  doc["next_epoch"] = st.next_epoch;
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

/// Ends the open epoch, if any, without completing it: its acks are dropped from now on and its
/// number is never used again. The generation is no longer started (a new one follows).
void abort_epoch(cluster_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.epoch)
    log_of(self) << "eddy coordinator: epoch " << st.epoch->epoch << " aborted: " << why << "\n";
  st.epoch.reset();
  st.started = false;
  st.ready.clear();
}

void rebalance(cluster_ptr self) {
  auto& st = self->state;
  // Membership changes that waited for an epoch boundary (or for this failure) take effect now.
  for (auto& [name, m] : st.joining) {
    log_of(self) << "eddy coordinator: worker " << name << " takes units from generation "
                 << st.generation + 1 << " on (after epoch " << st.last_complete << ")\n";
    st.members[name] = std::move(m);
  }
  st.joining.clear();
  for (auto& [name, rp] : st.leaving) {
    auto it = st.members.find(name);
    if (it != st.members.end()) {
      self->demonitor(it->second.handle);
      const auto up = std::chrono::steady_clock::now() - it->second.joined;
      st.members.erase(it);
      log_of(self) << "eddy coordinator: worker " << name << " left after epoch "
                   << st.last_complete << " (its units handed over), a member for "
                   << std::chrono::duration_cast<std::chrono::seconds>(up).count() << " s; "
                   << describe_members(st) << "\n";
    }
    rp.deliver(caf::unit);
  }
  st.leaving.clear();
  for (int32_t p : st.new_partitions) {
    st.opts.partitions.push_back(p);
    st.units.push_back(unit_id::partition(p));
  }
  if (!st.new_partitions.empty()) {
    std::sort(st.opts.partitions.begin(), st.opts.partitions.end());
    std::sort(st.units.begin(), st.units.end());
    log_of(self) << "eddy coordinator: the topic has " << st.opts.partitions.size()
                 << " partitions from generation " << st.generation + 1 << " on\n";
  }
  st.new_partitions.clear();
  std::vector<worker_capacity> caps;
  for (const auto& [name, m] : st.members) caps.push_back({name, m.slots});
  unit_owners next = assign_units(st.units, caps, st.owners);
  ++st.generation;
  st.epoch.reset();
  st.started = false;
  st.ready.clear();
  st.ended.clear();
  st.final_epoch_due = false;
  // One line per (from, to) pair of moved units.
  std::map<std::pair<std::string, std::string>, std::vector<unit_id>> moved;
  for (const auto& m : moves_between(st.owners, next)) moved[{m.from, m.to}].push_back(m.unit);
  size_t orphaned = 0;
  for (const auto& [u, w] : st.owners)
    if (!next.count(u)) ++orphaned;
  auto& log = membership_log_of(self);
  if (moved.empty() && orphaned == 0)
    log << "eddy coordinator: generation " << st.generation << ": no unit moves\n";
  for (const auto& [from_to, units] : moved)
    log << "eddy coordinator: generation " << st.generation << ": " << join_units(units) << " "
        << (from_to.first.empty() ? std::string("(unassigned)") : from_to.first) << " -> "
        << from_to.second << "\n";
  if (next.empty() && !st.units.empty())
    log << "eddy coordinator: generation " << st.generation << ": no workers; " << st.units.size()
        << " units wait for one to join\n";
  // Per member, the units it takes over from another worker (for the workers' resume lines).
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> moved_in;
  for (const auto& [u, w] : next) {
    auto held = st.owners.find(u);
    const std::string* from = held != st.owners.end() ? &held->second : nullptr;
    if (!from)
      if (auto last = st.last_owner.find(u); last != st.last_owner.end()) from = &last->second;
    if (from && *from != w) moved_in[w].emplace_back(u.to_string(), *from);
  }
  const int64_t since_change_ms = st.last_gone.empty()
                                      ? -1
                                      : std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - st.last_gone_at)
                                            .count();
  st.owners = std::move(next);
  for (const auto& [u, w] : st.owners) st.last_owner[u] = w;
  for (const auto& [name, m] : st.members) {
    unit_assignment a;
    for (const auto& [u, from] : moved_in[name]) {
      a.moved_units.push_back(u);
      a.moved_from.push_back(from);
    }
    a.since_change_ms = since_change_ms;
    if (since_change_ms >= 0) a.change = st.last_gone_event;
    a.exit_at_end = st.opts.exit_at_end;
    a.generation = st.generation;
    for (const auto& u : units_of(st.owners, name))
      (u.k == unit_id::kind::partition ? a.partitions : a.shards).push_back(u.index);
    a.restore_epoch = st.last_complete;
    a.first_epoch = st.next_epoch;
    a.all_partitions = st.opts.partitions;
    a.shard_count = st.opts.shards;
    self->send(m.handle, assign_atom::value, std::move(a));
  }
  persist(self);
}

/// An epoch failed (an ack with an error, a timeout, no manifest): abort it and restart the
/// generation with the same members, restoring from the last complete epoch.
void fail_epoch(cluster_ptr self, const std::string& why) {
  abort_epoch(self, why);
  rebalance(self);
}

void drop_member(cluster_ptr self, std::map<std::string, member>::iterator it,
                 const std::string& why) {
  auto& st = self->state;
  const auto up = std::chrono::steady_clock::now() - it->second.joined;
  const std::string name = it->first;
  st.members.erase(it);
  // "a member for N s": how long it was in the cluster, not how long detecting the loss took.
  membership_log_of(self) << "eddy coordinator: worker " << name << " " << why << ", a member for "
                          << std::chrono::duration_cast<std::chrono::seconds>(up).count() << " s; "
                          << describe_members(st) << "\n";
  st.last_gone = "worker " + name + (why == "left" ? " left" : " was lost");
  st.last_gone_event = why == "left" ? name + " left" : "the loss of " + name + " was detected";
  st.last_gone_at = std::chrono::steady_clock::now();
  abort_epoch(self, "worker " + name + " " + (why == "left" ? "left" : "lost"));
  rebalance(self);
}

void open_next_epoch(cluster_ptr self);

/// Every member is ready: send each the shard table and start the epoch ticks.
void start_generation(cluster_ptr self) {
  auto& st = self->state;
  st.restore_failures = 0;
  std::vector<caf::actor> table(static_cast<size_t>(std::max(st.opts.shards, 0)));
  for (const auto& [_, r] : st.ready)
    for (size_t i = 0; i < r.shard_ids.size(); ++i)
      table[static_cast<size_t>(r.shard_ids[i])] = r.shard_handles[i];
  for (const auto& [_, m] : st.members)
    self->send(m.handle, start_atom::value, st.generation, table);
  st.started = true;
  st.drained.clear();
  membership_log_of(self) << "eddy coordinator: generation " << st.generation
                          << " started: " << describe_members(st) << ", "
                          << (st.last_complete == 0
                                  ? std::string("starting fresh")
                                  : "restored from epoch " + std::to_string(st.last_complete));
  if (!st.last_gone.empty()) {
    membership_log_of(self) << ", "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - st.last_gone_at)
                                   .count()
                            << " ms after " << st.last_gone
                            << " (detection to every unit restored)";
    st.last_gone.clear();
  }
  membership_log_of(self) << "\n";
  if (st.stopping && !st.opts.checkpoint_dir.empty() && !st.epoch) open_next_epoch(self);
  if (!st.opts.checkpoint_dir.empty())
    self->delayed_send(self, std::chrono::milliseconds(st.opts.checkpoint_interval_ms),
                       tick_atom::value, st.generation);
}

/// A membership change (a join, a leave) waits for the next epoch boundary when a generation is
/// running and taking epochs: opens that epoch now unless one is open. false: make it at once.
bool wait_for_boundary(cluster_ptr self) {
  auto& st = self->state;
  if (!st.started || st.opts.checkpoint_dir.empty() || st.members.empty()) return false;
  if (!st.epoch) open_next_epoch(self);
  return true;
}

void open_next_epoch(cluster_ptr self) {
  auto& st = self->state;
  open_epoch ep;
  ep.epoch = st.next_epoch++;
  ep.opened = std::chrono::steady_clock::now();
  for (int32_t p : st.opts.partitions) ep.missing.insert(unit_id::partition(p).to_string());
  for (int32_t s = 0; s < st.opts.shards; ++s) ep.missing.insert(unit_id::shard(s).to_string());
  for (const auto& [name, _] : st.members) ep.missing.insert("sink:" + name);
  const uint64_t e = ep.epoch;
  st.epoch = std::move(ep);
  for (const auto& [_, m] : st.members)
    self->send(m.handle, checkpoint_atom::value, st.generation, e);
  self->delayed_send(self, std::chrono::milliseconds(st.opts.epoch_timeout_ms),
                     epoch_due_atom::value, st.generation, e);
}

/// The coordinator's publisher: publishes committed epochs' staged files in the order they come
/// (the commit order), off the coordinator's thread, and answers each with (published_atom, e).
struct cluster_publisher_state {
  std::function<std::string(const std::vector<std::string>&, bool)> publish;
  bool sync = true;
  std::vector<std::string> output_dirs;
  std::ostream* log = nullptr;
  /// Committed epochs whose files could not all be published: retried after every commit.
  std::map<uint64_t, std::vector<std::string>> unpublished;
  static inline const char* name = "eddy.cluster_publisher";
};

using publisher_ptr = caf::stateful_actor<cluster_publisher_state>*;

/// Publishes the staged files of committed epoch `e` (idempotent), then retries earlier epochs
/// whose publish failed. A failure is logged once per epoch and retried after the next commit.
/// Then deletes what stays in staging for epochs up to `e` and can never be published.
void publish_epoch(publisher_ptr self, uint64_t e, const std::vector<std::string>& files) {
  auto& st = self->state;
  std::ostream& log = st.log ? *st.log : std::cerr;
  auto publish_files = [&](const std::vector<std::string>& list) {
    return st.publish ? st.publish(list, st.sync) : publish_staged_files(list, st.sync);
  };
  if (std::string err = publish_files(files); !err.empty()) {
    log << "eddy coordinator: warning: epoch " << e << " is committed but publishing "
        << "its files failed (retried after every commit): " << err << "\n";
    st.unpublished[e] = files;
  }
  for (auto it = st.unpublished.begin(); it != st.unpublished.end();) {
    if (it->first != e && publish_files(it->second).empty()) {
      log << "eddy coordinator: the files of epoch " << it->first << " are published now\n";
      it = st.unpublished.erase(it);
    } else {
      ++it;
    }
  }
  // What stays in staging for epochs up to e will never be published: aborted epochs' files and
  // those of workers fenced after their generation ended. Epochs still waiting to be published
  // keep theirs (epochs after e are staged, not committed: untouched).
  // An epoch's list may name files staged under earlier, aborted epochs (a worker that kept its
  // units running across a generation change carries them): keep the staging directories the
  // unpublished lists name.
  std::set<uint64_t> keep;
  for (const auto& [u, list] : st.unpublished) {
    keep.insert(u);
    for (const auto& f : list)
      if (auto fe = staged_path_epoch(f)) keep.insert(*fe);
  }
  for (const auto& dir : st.output_dirs)
    if (std::string err = discard_stale_staged_epochs(dir, e, keep); !err.empty())
      log << "eddy coordinator: warning: cleaning staged files: " << err << "\n";
}

caf::behavior cluster_publisher(publisher_ptr self, cluster_coordinator_options opts) {
  auto& st = self->state;
  st.publish = std::move(opts.publish);
  st.sync = opts.output_sync;
  st.output_dirs = std::move(opts.output_dirs);
  st.log = opts.log;
  return {
      [self](publish_atom, uint64_t e, const std::vector<std::string>& files) {
        publish_epoch(self, e, files);
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), published_atom::value, e);
      },
  };
}

/// Committed epochs waiting to be published, at most, before a tick opens the next epoch.
constexpr uint64_t max_unpublished_epochs = 2;

/// Sends committed epoch `e`'s staged files to the publisher.
void publish(cluster_ptr self, uint64_t e, const std::vector<std::string>& files) {
  auto& st = self->state;
  st.publish_asked = std::max(st.publish_asked, e);
  self->send(st.publisher, publish_atom::value, e, files);
}

/// exit_at_end, once finished: quits when the last member left.
void quit_if_alone(cluster_ptr self) {
  auto& st = self->state;
  if (!st.finished || !st.members.empty()) return;
  if (st.published < st.publish_asked) return;  // the last epochs are still being published
  membership_log_of(self) << "eddy coordinator: every worker left; done\n";
  if (st.finish_error.empty())
    self->quit();
  else
    self->quit(caf::make_error(caf::sec::runtime_error, st.finish_error));
}

/// exit_at_end: epoch `e` committed with every task's input ended before it, so its output is
/// the last: every member is told to leave.
void finish_input(cluster_ptr self, uint64_t e, const std::map<std::string, unit_ack>& acks) {
  auto& st = self->state;
  st.finished = true;
  std::string short_of;  // partitions that ended before the end they had at start
  for (int32_t p : st.opts.partitions) {
    if (st.stopping) break;  // stopped: the caller says where the partitions are
    auto end = st.opts.end_offsets.find(p);
    auto ack = acks.find(unit_id::partition(p).to_string());
    if (end == st.opts.end_offsets.end() || ack == acks.end()) continue;
    const int64_t next = ack->second.next_offset;
    if (next >= 0 && next < end->second)
      short_of += (short_of.empty() ? "" : ", ") + unit_id::partition(p).to_string() + " at " +
                  std::to_string(next) + " of " + std::to_string(end->second);
  }
  if (!short_of.empty()) {
    st.finish_error = "partitions ended before the end offsets they had at start: " + short_of;
    log_of(self) << "eddy coordinator: error: " << st.finish_error << "\n";
  }
  if (st.stopping)
    log_of(self) << "eddy coordinator: stopping: epoch " << e << " committed, the last; "
                 << describe_members(st) << " leave\n";
  else
    log_of(self) << "eddy coordinator: the input is complete: every partition reached its end "
                 << "and epoch " << e << " committed the output after it; " << describe_members(st)
                 << " leave\n";
  for (const auto& [_, m] : st.members) self->send(m.handle, finish_atom::value, st.generation, e);
  // Workers waiting for a boundary never took units: they go too (their leave is answered).
  for (const auto& [_, m] : st.joining) {
    self->demonitor(m.handle);
    self->send(m.handle, finish_atom::value, st.generation, e);
  }
  st.joining.clear();
  // Members that asked to leave (SIGTERM) waited for this boundary: their answer is due now.
  for (auto& [_, rp] : st.leaving) rp.deliver(caf::unit);
  st.leaving.clear();
  self->delayed_send(self, std::chrono::seconds(30), finish_atom::value, st.generation, e);
  quit_if_alone(self);
}

/// Every unit and sink acked the open epoch: commit it.
void complete_epoch(cluster_ptr self) {
  auto& st = self->state;
  const uint64_t e = st.epoch->epoch;
  std::map<std::string, std::string> owner_of;
  for (const auto& [u, w] : st.owners) owner_of[u.to_string()] = w;
  cluster_manifest m;
  m.epoch = e;
  m.generation = st.generation;
  m.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  m.pipeline = st.opts.pipeline_name;
  m.compat = st.opts.compat;
  for (const auto& [unit, ack] : st.epoch->acks) {
    if (unit.starts_with("sink:")) {
      m.published.insert(m.published.end(), ack.staged.begin(), ack.staged.end());
      continue;
    }
    cluster_manifest_unit u;
    u.owner = owner_of[unit];
    u.next_offset = ack.next_offset;
    u.watermark = ack.watermark;
    u.counters = ack.counters;
    u.snapshot = ack.snapshot;
    u.bytes = ack.snapshot_bytes;
    u.crc32c = ack.snapshot_crc32c;
    u.deltas = ack.deltas;
    m.units.emplace(unit, std::move(u));
  }
  // The commit point.
  if (std::string err = write_cluster_manifest(st.opts.checkpoint_dir, m, st.opts.output_sync);
      !err.empty()) {
    fail_epoch(self, "cannot write its manifest: " + err);
    return;
  }
  const auto took = std::chrono::steady_clock::now() - st.epoch->opened;
  bool input_complete = st.opts.exit_at_end && st.new_partitions.empty();
  for (const auto& [unit, ack] : st.epoch->acks)
    if (unit.starts_with("p") && !ack.input_ended) input_complete = false;
  if (st.stopping) input_complete = true;  // the last epoch: finish the same way
  std::map<std::string, unit_ack> acks;
  if (input_complete) acks = std::move(st.epoch->acks);
  st.epoch.reset();
  st.last_complete = e;
  publish(self, e, m.published);
  for (const auto& [_, mb] : st.members)
    self->send(mb.handle, commit_atom::value, st.generation, e);
  persist(self);
  // Manifests of epochs not published yet stay too: a restart publishes from them.
  const auto keep = std::max<uint64_t>(manifests_kept, st.last_complete - st.published + 1);
  auto kept = prune_cluster_checkpoints(st.opts.checkpoint_dir, static_cast<size_t>(keep));
  for (const auto& w : kept.warnings)
    log_of(self) << "eddy coordinator: warning: retention: " << w << "\n";
  if (st.opts.debug)
    log_of(self) << "eddy coordinator: epoch " << e << " complete in "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                 << " ms (generation " << st.generation << "): " << m.units.size() << " units, "
                 << m.published.size() << " files published\n";
  if (input_complete) {
    finish_input(self, e, acks);
    return;
  }
  if (!st.joining.empty() || !st.leaving.empty() || !st.new_partitions.empty()) {
    rebalance(self);  // the boundary they wait for
    return;
  }
  if (std::exchange(st.final_epoch_due, false)) open_next_epoch(self);
}

/// At start: continue from the newest complete epoch in the checkpoint directory and from the
/// generation and epoch numbers the last run recorded.
void recover(cluster_ptr self) {
  auto& st = self->state;
  auto& log = log_of(self);
  if (!st.opts.checkpoint_dir.empty()) {
    std::vector<std::string> warnings;
    auto latest = latest_complete(st.opts.checkpoint_dir, &warnings);
    for (const auto& w : warnings) log << "eddy coordinator: warning: " << w << "\n";
    if (latest) {
      st.last_complete = latest->epoch;
      st.next_epoch = latest->epoch + 1;
      // Another coordinator's state dir may have written it (eddy run --as-cluster, or this
      // one's assignment.json lost): never reuse its generation either.
      st.generation = std::max(st.generation, latest->generation);
      log << "eddy coordinator: last complete epoch " << latest->epoch << " (generation "
          << latest->generation << ") in " << st.opts.checkpoint_dir.string() << "\n";
      // Idempotent: finishes the publishes a crash after the commit point interrupted, of every
      // manifest kept (the publisher may have been up to max_unpublished_epochs behind).
      std::string lerr;
      for (uint64_t e : list_cluster_manifests(st.opts.checkpoint_dir, &lerr)) {
        if (e > latest->epoch) break;
        std::string rerr;
        if (auto m = e == latest->epoch ? latest
                                        : read_cluster_manifest(st.opts.checkpoint_dir, e, &rerr))
          publish(self, e, m->published);
        else
          log << "eddy coordinator: warning: " << rerr << "\n";
      }
    }
  }
  if (st.opts.state_dir.empty()) return;
  std::error_code ec;
  const fs::path path = st.opts.state_dir / "assignment.json";
  if (!fs::exists(path, ec)) return;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code jec;
  auto doc = boost::json::parse(text.str(), jec);
  const auto* o = jec ? nullptr : doc.if_object();
  if (!o) {
    log << "eddy coordinator: warning: " << path.string()
        << " is not readable JSON; generations start at 1\n";
    return;
  }
  auto number = [o](const char* key) -> uint64_t {
    const auto* v = o->if_contains(key);
    if (v && v->is_uint64()) return v->as_uint64();
    if (v && v->is_int64() && v->as_int64() > 0) return static_cast<uint64_t>(v->as_int64());
    return 0;
  };
  st.generation = std::max(st.generation, number("generation"));
  st.next_epoch = std::max(st.next_epoch, number("next_epoch"));
}

caf::behavior cluster_coordinator(cluster_ptr self, cluster_coordinator_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  // An exception ends the coordinator with its message (a run in one process prints it).
  end_with_exception_message(self, "cluster coordinator", st.opts.on_exception);
  for (int32_t p : st.opts.partitions) st.units.push_back(unit_id::partition(p));
  for (int32_t s = 0; s < st.opts.shards; ++s) st.units.push_back(unit_id::shard(s));
  // Linked: it goes when the coordinator goes (after the publish it is in, if any).
  st.publisher = st.opts.publish_detached
                     ? self->spawn<caf::detached + caf::linked>(cluster_publisher, st.opts)
                     : self->spawn<caf::linked>(cluster_publisher, st.opts);
  recover(self);
  persist(self);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& js = self->state.joining;
    for (auto it = js.begin(); it != js.end(); ++it)
      if (it->second.handle.address() == dm.source) {
        log_of(self) << "eddy coordinator: worker " << it->first << " lost before it took units\n";
        js.erase(it);
        return;
      }
    self->state.leaving.erase([&] {  // a leaving member that dies: handled as lost
      for (const auto& [name, m] : self->state.members)
        if (m.handle.address() == dm.source) return name;
      return std::string();
    }());
    auto& ms = self->state.members;
    for (auto it = ms.begin(); it != ms.end(); ++it)
      if (it->second.handle.address() == dm.source) {
        if (self->state.finished) {  // nothing left to move
          log_of(self) << "eddy coordinator: worker " << it->first
                       << " went after the input was complete\n";
          ms.erase(it);
          quit_if_alone(self);
          return;
        }
        drop_member(self, it,
                    dm.reason == caf::exit_reason::remote_link_unreachable
                        ? std::string("lost (connection dropped or heartbeats stopped)")
                        : "lost (" + self->system().render(dm.reason) + ")");
        return;
      }
  });
  return {
      [self](register_atom, const worker_hello& hello, const caf::actor& handle) -> join_reply {
        fault_point("cluster_coordinator");
        auto& st = self->state;
        join_reply reply;
        if (hello.version != eddy_version) {
          reply.refusal = "worker " + hello.name + " runs eddy " + hello.version +
                          ", the coordinator eddy " + eddy_version +
                          ": run the same version on every node";
        } else if (st.members.count(hello.name) || st.joining.count(hello.name)) {
          reply.refusal = "a worker named " + hello.name +
                          " is already a member: give each worker its own --name";
        } else if (hello.slots == 0) {
          reply.refusal = "worker " + hello.name + " has no slots";
        } else if (st.finished) {
          reply.refusal =
              "the pipeline's input is complete (--exit-at-end): the coordinator is "
              "ending";
        }
        if (!reply.refusal.empty()) {
          log_of(self) << "eddy coordinator: refused worker " << hello.name << " from "
                       << hello.host << ": " << reply.refusal << "\n";
          return reply;
        }
        self->monitor(handle);
        member m{handle, hello.slots, hello.host, std::chrono::steady_clock::now()};
        reply.accepted = true;
        reply.pipeline_name = st.opts.pipeline_name;
        reply.pipeline_toml = st.opts.pipeline_toml;
        reply.bootstrap = st.opts.bootstrap;
        if (wait_for_boundary(self)) {
          // It takes units when the running generation's next epoch commits (rebalance).
          st.joining[hello.name] = std::move(m);
          membership_log_of(self) << "eddy coordinator: worker " << hello.name << " joined from "
                                  << hello.host << " (" << hello.slots
                                  << (hello.slots == 1 ? " slot" : " slots")
                                  << "); it takes units at the next epoch boundary\n";
          return reply;
        }
        st.members[hello.name] = std::move(m);
        membership_log_of(self) << "eddy coordinator: worker " << hello.name << " joined from "
                                << hello.host << " (" << hello.slots
                                << (hello.slots == 1 ? " slot" : " slots") << "); "
                                << describe_members(st) << "\n";
        // No epoch may open or complete before the new generation: it includes the new member.
        abort_epoch(self, "worker " + hello.name + " joined");
        // The assignment follows the reply (same sender, same receiver: CAF keeps the order).
        self->send(self, assign_atom::value);
        return reply;
      },
      [self](assign_atom) { rebalance(self); },
      [self](parts_atom, const std::vector<int32_t>& now) {
        auto& st = self->state;
        if (st.finished) return;
        std::vector<int32_t> added;
        for (int32_t p : now)
          if (std::find(st.opts.partitions.begin(), st.opts.partitions.end(), p) ==
                  st.opts.partitions.end() &&
              std::find(st.new_partitions.begin(), st.new_partitions.end(), p) ==
                  st.new_partitions.end())
            added.push_back(p);
        if (added.empty()) return;  // Kafka topics never shrink; nothing new
        std::string list;
        for (int32_t p : added) list += (list.empty() ? "p" : ",p") + std::to_string(p);
        log_of(self) << "eddy coordinator: the topic gained partition(s) " << list
                     << "; they are assigned at the next epoch boundary\n";
        st.new_partitions.insert(st.new_partitions.end(), added.begin(), added.end());
        if (!wait_for_boundary(self)) {
          abort_epoch(self, "the topic gained partitions");
          rebalance(self);
        }
      },
      [self](leave_atom, const std::string& name) -> caf::result<void> {
        auto& st = self->state;
        if (st.finished) {  // told to leave: the input is complete
          if (auto it = st.members.find(name); it != st.members.end()) {
            self->demonitor(it->second.handle);
            st.members.erase(it);
            membership_log_of(self)
                << "eddy coordinator: worker " << name << " left: the run is complete\n";
            quit_if_alone(self);
          }
          return caf::unit;
        }
        if (auto j = st.joining.find(name); j != st.joining.end()) {  // never held units
          self->demonitor(j->second.handle);
          st.joining.erase(j);
          log_of(self) << "eddy coordinator: worker " << name << " left before it took units; "
                       << describe_members(st) << "\n";
          return caf::unit;
        }
        auto it = st.members.find(name);
        if (it == st.members.end() || st.leaving.count(name)) return caf::unit;
        if (!wait_for_boundary(self)) {
          self->demonitor(it->second.handle);
          drop_member(self, it, "left");
          return caf::unit;
        }
        // It keeps its units until the next epoch commits, then hands them over (rebalance);
        // the answer to this request is its cue to exit.
        log_of(self) << "eddy coordinator: worker " << name
                     << " is leaving: it hands its units over at the next epoch boundary\n";
        auto rp = self->make_response_promise();
        st.leaving.emplace(name, rp);
        return rp;
      },
      [self](ready_atom, uint64_t generation, const std::vector<int32_t>& shard_ids,
             const std::vector<caf::actor>& shard_handles) {
        auto& st = self->state;
        if (generation != st.generation || st.started) return;  // an older generation's
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        auto it = std::find_if(st.members.begin(), st.members.end(), [&](const auto& kv) {
          return kv.second.handle.address() == sender;
        });
        if (it == st.members.end()) return;  // not (or no longer) a member
        std::vector<int32_t> held;
        for (const auto& u : units_of(st.owners, it->first))
          if (u.k == unit_id::kind::shard) held.push_back(u.index);
        std::vector<int32_t> got = shard_ids;
        std::sort(got.begin(), got.end());
        const bool handles_ok = shard_handles.size() == shard_ids.size() &&
                                std::none_of(shard_handles.begin(), shard_handles.end(),
                                             [](const caf::actor& h) { return !h; });
        if (got != held || !handles_ok) {
          log_of(self) << "eddy coordinator: warning: worker " << it->first
                       << " reported ready for generation " << generation
                       << " with shards that are not the ones it holds (or without their "
                          "handles): ignored\n";
          return;
        }
        st.ready[it->first] = member_ready{shard_ids, shard_handles};
        if (st.ready.size() == st.members.size()) start_generation(self);
      },
      [self](tick_atom, uint64_t generation) {
        auto& st = self->state;
        if (generation != st.generation || !st.started || st.finished) return;  // older, or done
        self->delayed_send(self, std::chrono::milliseconds(st.opts.checkpoint_interval_ms),
                           tick_atom::value, generation);
        if (st.epoch) return;
        if (st.publish_asked >= st.published + max_unpublished_epochs) {
          st.open_when_published = true;  // the publisher is behind: it opens once it caught up
          return;
        }
        open_next_epoch(self);
      },
      [self](published_atom, uint64_t epoch) {
        auto& st = self->state;
        st.published = std::max(st.published, epoch);
        if (st.open_when_published && st.publish_asked < st.published + max_unpublished_epochs) {
          st.open_when_published = false;
          if (st.started && !st.finished && !st.epoch) open_next_epoch(self);
        }
        quit_if_alone(self);
      },
      [self](drained_atom, uint64_t generation) {
        auto& st = self->state;
        if (!st.opts.checkpoint_dir.empty() || generation != st.generation || st.finished) return;
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        for (const auto& [name, m] : st.members)
          if (m.handle.address() == sender) st.drained.insert(name);
        if (st.drained.size() < st.members.size()) return;
        // Every member's sink wrote all it will get: the run is complete.
        st.finished = true;
        membership_log_of(self) << "eddy coordinator: every worker drained its units; "
                                << describe_members(st) << " leave\n";
        for (const auto& [_, m] : st.members)
          self->send(m.handle, finish_atom::value, st.generation, uint64_t{0});
        quit_if_alone(self);
      },
      [self](ended_atom, uint64_t generation, int32_t partition) {
        auto& st = self->state;
        if (!st.opts.exit_at_end || generation != st.generation || !st.started || st.finished ||
            st.opts.checkpoint_dir.empty())  // without epochs the units drain on their own
          return;
        st.ended.insert(partition);
        for (int32_t p : st.opts.partitions)
          if (!st.ended.count(p)) return;
        if (!st.epoch)
          open_next_epoch(self);  // the final epoch, at once
        else
          st.final_epoch_due = true;
      },
      [self](ack_atom, const unit_ack& ack) {
        auto& st = self->state;
        if (!st.epoch || ack.generation != st.generation || ack.epoch != st.epoch->epoch) return;
        if (!ack.error.empty()) {
          fail_epoch(self, ack.unit + ": " + ack.error);
          return;
        }
        auto it = st.epoch->missing.find(ack.unit);
        if (it == st.epoch->missing.end()) {
          if (!st.epoch->acks.count(ack.unit))
            log_of(self) << "eddy coordinator: warning: an ack of epoch " << ack.epoch
                         << " from unknown unit '" << ack.unit << "': ignored\n";
          return;
        }
        st.epoch->missing.erase(it);
        st.epoch->acks[ack.unit] = ack;
        if (st.epoch->missing.empty()) complete_epoch(self);
      },
      [self](stop_atom) {
        auto& st = self->state;
        // Without epochs a stop is the members' drain (their pollers end every partition).
        if (st.finished || st.stopping || st.opts.checkpoint_dir.empty()) return;
        st.stopping = true;
        log_of(self) << "eddy coordinator: stopping: the next epoch to commit is the last\n";
        if (!st.started) return;  // start_generation opens it
        if (!st.epoch)
          open_next_epoch(self);
        else
          st.final_epoch_due = true;
      },
      [self](finish_atom, uint64_t, uint64_t) {  // the deadline for members to leave
        auto& st = self->state;
        if (!st.finished || st.members.empty()) return;
        std::set<std::string> names;
        for (const auto& [name, _] : st.members) names.insert(name);
        log_of(self) << "eddy coordinator: warning: " << join_names(names)
                     << " did not leave within 30 s of the input's end; ending without them\n";
        st.members.clear();
        quit_if_alone(self);
      },
      // A member's units failed (it leaves next, and is dropped as lost). Before the generation
      // started that is its restore: the same committed files fail every try.
      [self](failed_atom, uint64_t generation, const std::string& why) {
        auto& st = self->state;
        if (generation != st.generation || st.started || st.finished ||
            generation == st.restore_failed_generation)
          return;
        st.restore_failed_generation = generation;
        if (++st.restore_failures < cluster_state::restore_attempts) return;
        const std::string what =
            st.last_complete == 0
                ? std::string("the units could not start")
                : "epoch " + std::to_string(st.last_complete) + " could not be restored";
        log_of(self) << "eddy coordinator: " << what << " in " << st.restore_failures
                     << " generations in a row; the last error: " << why
                     << "; ending (the files do not change by retrying: check them with `eddy "
                        "checkpoint verify --dir "
                     << st.opts.checkpoint_dir.string() << "`)\n";
        self->quit(caf::make_error(caf::sec::runtime_error, what + ": " + why));
      },
      [self](epoch_due_atom, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        if (!st.epoch || generation != st.generation || epoch != st.epoch->epoch) return;
        fail_epoch(self, "timed out after " + std::to_string(st.opts.epoch_timeout_ms) +
                             " ms waiting for " + join_names(st.epoch->missing));
      },
  };
}

}  // namespace

caf::actor spawn_cluster_coordinator(caf::actor_system& sys, cluster_coordinator_options opts) {
  return sys.spawn(cluster_coordinator, std::move(opts));
}

}  // namespace eddy
