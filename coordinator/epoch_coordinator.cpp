#include "coordinator/epoch_coordinator.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "actors/messages.hpp"
#include "state/epoch_log.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {
namespace {

struct epoch_coordinator_state {
  std::shared_ptr<run_context> ctx;
  std::shared_ptr<checkpoint_store> store;
  std::unique_ptr<kafka_consumer> committer;  ///< offsets to Kafka (see commit_offsets)
  bool commit_warned = false;
  std::map<int32_t, caf::actor> tasks;
  std::vector<caf::actor> shards;
  caf::actor sink, poller, worker;
  checkpoint_metadata compat;
  uint64_t next_epoch = 1;
  uint64_t in_progress = 0;  ///< epoch being taken, 0 = none
  bool final_epoch = false, done = false;
  size_t acks = 0;
  checkpoint_metadata meta;
  std::vector<std::pair<int32_t, int64_t>> offsets;
  std::map<int32_t, int64_t> end_offsets;  ///< of every task (-1: read nothing yet), epoch log
  std::set<int32_t> ended;
  std::chrono::steady_clock::time_point started;
  static inline const char* name = "eddy.checkpoint_coordinator";
};

using coord_ptr = caf::stateful_actor<epoch_coordinator_state>*;

void end_run(coord_ptr self) {
  auto& st = self->state;
  st.done = true;
  for (const auto& [_, t] : st.tasks) self->send_exit(t, caf::exit_reason::user_shutdown);
  for (const auto& s : st.shards) self->send_exit(s, caf::exit_reason::user_shutdown);
  self->quit();
}

void coordinator_fail(coord_ptr self, const std::string& error) {
  auto& st = self->state;
  if (st.done) return;
  st.ctx->note_failure(error);
  self->send(st.worker, failed_atom::value, error);
  self->send(st.sink, stop_atom::value);
  end_run(self);
}

void start_epoch(coord_ptr self) {
  auto& st = self->state;
  if (st.in_progress != 0 || st.done) return;
  fault_point("checkpoint_coordinator");
  st.final_epoch = st.ended.size() == st.tasks.size();
  st.in_progress = st.next_epoch++;
  st.acks = 0;
  st.meta = st.compat;
  st.offsets.clear();
  st.end_offsets.clear();
  st.started = std::chrono::steady_clock::now();
  for (const auto& [_, t] : st.tasks) self->send(t, checkpoint_atom::value, st.in_progress);
}

/// The completed epoch's offsets to Kafka, for lag monitors only (eddy resumes from its
/// checkpoints). Through a consumer handle of its own that never fetches: commits on the
/// poller's consumer put their results into the queue it fetches from.
void commit_offsets(coord_ptr self, bool wait) {
  auto& st = self->state;
  std::ostream& log = st.ctx->opts.log ? *st.ctx->opts.log : std::cerr;
  std::string err;
  if (!st.committer) {
    st.committer = kafka_consumer::create(st.ctx->cfg->source.bootstrap_servers,
                                          st.ctx->cfg->source.group_id, {}, &err);
    if (!st.committer) {
      log << "eddy: warning: cannot commit offsets to Kafka: " << err << "\n";
      return;
    }
  }
  // Serve the results of earlier asynchronous commits (the handle is assigned nothing: this
  // fetches no message), then commit; only the final commit waits for the broker.
  bool ok = true;
  st.committer->poll(
      0, 16, [](const fetched_message&) {}, [](int32_t, int64_t) {}, &err, &ok);
  err = st.committer->commit(st.ctx->cfg->source.topic, st.offsets, wait);
  if (!err.empty() && !st.commit_warned) {
    log << "eddy: warning: " << err << " (lag monitors may show stale offsets)\n";
    st.commit_warned = true;
  }
}

/// Epoch `e`'s entry in the epoch log: every task's end offset and the files the sink staged for
/// it (it acked: they are all staged), per output directory.
epoch_log_entry epoch_log_of(coord_ptr self, uint64_t e) {
  auto& st = self->state;
  epoch_log_entry entry;
  entry.epoch = e;
  entry.end_offsets = st.end_offsets;
  for (const auto& d : staged_output_dirs(*st.ctx->cfg)) {
    std::string err;
    auto names = staged_epoch_files(d, e, &err);
    if (!names.empty()) entry.files[d] = std::move(names);
  }
  return entry;
}

void complete_epoch(coord_ptr self) {
  auto& st = self->state;
  const uint64_t e = st.in_progress;
  crash_point("checkpoint");  // every snapshot is written, the epoch is not complete yet
  const auto acked = std::chrono::steady_clock::now();
  std::ostream& log = st.ctx->opts.log ? *st.ctx->opts.log : std::cerr;
  const std::string& dir = st.store->options().dir;
  if (auto it = st.ctx->replay.find(e); it != st.ctx->replay.end()) {
    // A replayed epoch keeps its entry (and its published output).
    if (st.end_offsets != it->second)
      log << "eddy: warning: replayed epoch " << e
          << " ended at other offsets than the epoch log says (records deleted from the topic "
             "meanwhile?): its output may differ from what it published\n";
  } else if (auto err = write_epoch_log(dir, epoch_log_of(self, e), st.ctx->cfg->checkpoint.sync);
             !err.empty()) {
    // Written before the state commit: once an epoch's output may be published, the log
    // knows where it ended, so that a fallback past it replays it exactly.
    coordinator_fail(self, "checkpoint " + std::to_string(e) + " failed: epoch log: " + err);
    return;
  }
  st.meta["pipeline.name"] = st.ctx->cfg->name;
  commit_report report;
  if (auto s = st.store->commit_epoch(*st.ctx->db, e, st.meta, &report); !s.ok()) {
    coordinator_fail(self, "checkpoint " + std::to_string(e) + " failed: " + s.error);
    return;
  }
  for (const auto& w : report.warnings) log << "eddy: warning: " << w << "\n";
  // Retention: entries of every retained epoch and newer stay (a fallback to the oldest
  // retained epoch replays every newer one).
  store_status ls;
  if (auto listed = st.store->list(&ls); ls.ok() && !listed.empty())
    if (auto err = prune_epoch_log(dir, listed.front()); !err.empty())
      log << "eddy: warning: epoch log retention: " << err << "\n";
  st.in_progress = 0;
  if (st.final_epoch) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - st.started)
                        .count();
    log << "eddy: final checkpoint " << e << " written to " << st.store->options().dir << " ("
        << report.info.total_bytes << " bytes, " << ms << " ms: snapshots "
        << std::chrono::duration_cast<std::chrono::milliseconds>(acked - st.started).count()
        << " ms, storage "
        << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 acked)
               .count()
        << " ms)\n";
    commit_offsets(self, true);
    self->send(st.sink, commit_atom::value, e, true);
    end_run(self);
    return;
  }
  self->send(st.sink, commit_atom::value, e, false);
  commit_offsets(self, false);
  if (st.ended.size() == st.tasks.size() || st.ctx->replay.contains(st.next_epoch)) {
    start_epoch(self);  // the input ended meanwhile (the final epoch), or a replay: right away
    return;
  }
  self->delayed_send(self, std::chrono::milliseconds(st.ctx->cfg->checkpoint.interval_ms),
                     tick_atom::value);
}

caf::behavior checkpoint_coordinator(coord_ptr self, std::shared_ptr<run_context> ctx,
                                     std::shared_ptr<checkpoint_store> store,
                                     checkpoint_metadata compat, uint64_t next_epoch,
                                     caf::actor worker) {
  fail_run_on_exception(self, ctx, "checkpoint coordinator");
  auto& st = self->state;
  st.ctx = ctx;
  st.store = std::move(store);
  st.compat = std::move(compat);
  st.next_epoch = next_epoch;
  st.worker = std::move(worker);
  return {
      [self](assign_atom, const std::vector<int32_t>& partitions,
             const std::vector<caf::actor>& tasks, const std::vector<caf::actor>& shards,
             const caf::actor& sink, const caf::actor& poller) {
        auto& st = self->state;
        for (size_t i = 0; i < partitions.size(); ++i) st.tasks[partitions[i]] = tasks[i];
        st.shards = shards;
        st.sink = sink;
        st.poller = poller;
        if (st.ctx->replay.contains(st.next_epoch))
          start_epoch(self);  // replayed epochs end at their logged offsets, not by time
        else
          self->delayed_send(self, std::chrono::milliseconds(st.ctx->cfg->checkpoint.interval_ms),
                             tick_atom::value);
      },
      [self](tick_atom) { start_epoch(self); },
      [self](ended_atom, int32_t partition) {
        auto& st = self->state;
        st.ended.insert(partition);
        if (st.ended.size() == st.tasks.size()) start_epoch(self);  // no-op while one runs
      },
      [self](checkpoint_ack& ack) {
        auto& st = self->state;
        if (st.done || ack.epoch != st.in_progress) return;
        if (!ack.error.empty()) {
          coordinator_fail(self,
                           "checkpoint " + std::to_string(ack.epoch) + " failed: " + ack.error);
          return;
        }
        if (ack.partition >= 0) {
          const std::string p = "partition." + std::to_string(ack.partition);
          st.meta[p + ".offset"] = std::to_string(ack.next_offset);
          if (ack.watermark != INT64_MIN)
            st.meta[p + ".watermark"] = st.ctx->fmt.format_iso(timestamp{ack.watermark});
          const auto& c = ack.counters;
          st.meta[p + ".counters"] = "in=" + std::to_string(c.in) +
                                     " out=" + std::to_string(c.out) +
                                     " filtered=" + std::to_string(c.filtered) +
                                     " dead_lettered=" + std::to_string(c.dead_lettered) +
                                     " late=" + std::to_string(c.late);
          if (ack.next_offset >= 0) st.offsets.emplace_back(ack.partition, ack.next_offset);
          st.end_offsets[ack.partition] = ack.next_offset;
        }
        if (++st.acks == st.tasks.size() + st.shards.size() + 1) complete_epoch(self);
      },
      [self](failed_atom, const std::string& error) { coordinator_fail(self, error); },
  };
}

}  // namespace

caf::actor spawn_checkpoint_coordinator(caf::actor_system& sys, std::shared_ptr<run_context> ctx,
                                        std::shared_ptr<checkpoint_store> store,
                                        checkpoint_metadata compat, uint64_t next_epoch,
                                        caf::actor worker) {
  return sys.spawn<caf::detached>(checkpoint_coordinator, std::move(ctx), std::move(store),
                                  std::move(compat), next_epoch, std::move(worker));
}

}  // namespace eddy
