#include "worker/runtime/unit_host.hpp"

#include <caf/all.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "actors/messages.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "state/unit_snapshot.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/credits.hpp"
#include "worker/runtime/poller_actor.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/runtime/shard_actor.hpp"
#include "worker/runtime/sink_actor.hpp"
#include "worker/runtime/source_task.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {

namespace fs = std::filesystem;

namespace {

/// A unit's exported state since its last full snapshot: the snapshot and the deltas written
/// after it (paths relative to checkpoint.dir). An ack lists them all.
struct unit_chain {
  unit_file_ref base;
  std::vector<unit_file_ref> deltas;
  uint64_t delta_bytes = 0;  ///< the deltas' bytes before compression
  uint64_t base_bytes = 0;   ///< the snapshot's, before compression (files are zstd-compressed)
};

/// A unit writes a full snapshot again after this many deltas, or once its deltas would add up
/// to more bytes than its snapshot (both before compression: a restore applies at most about
/// twice the unit's state).
constexpr size_t max_deltas_per_snapshot = 15;

struct host_state {
  unit_host_options opts;
  std::shared_ptr<run_context> ctx;
  output_schema schema;
  std::string tag;  ///< output name tag: <worker>-g<generation>
  std::map<int32_t, int64_t> offsets;
  std::map<int32_t, record_counters> counters;
  caf::actor sink, poller;
  std::map<int32_t, caf::actor> tasks;
  std::map<int32_t, caf::actor> shards;  ///< local shards by id
  std::map<caf::actor_addr, std::string> children;
  std::set<int32_t> ended;  ///< exit_at_end: partitions whose input ended (their task said so)
  std::vector<caf::actor> handles;
  bool started = false;
  uint64_t open_epoch = 0;
  /// Kept across a generation change (adopt): the partitions that moved in with it, to start,
  /// and the last committed epoch: until an epoch after it commits, the sink's ack lists every
  /// file it staged after it (aborted epochs' included), not only the acked epoch's.
  std::vector<int32_t> moved_in;
  bool adopted = false;
  std::optional<uint64_t> carry_from;
  /// Per unit ("p3", "s1"): what its acks reference. A unit without one (new here, after a
  /// generation change or after an error) writes a full snapshot next.
  std::map<std::string, unit_chain> chains;
  bool figures_reported = false;    ///< this host's flow figures are in opts.report
  int64_t credit_waits_logged = 0;  ///< run_context::credit_waits at the last backpressure line
  std::chrono::steady_clock::time_point credit_logged_at{};
  static inline const char* name = "eddy.unit_host";
};

using host_ptr = caf::stateful_actor<host_state>*;

std::ostream& log_of(host_ptr self) {
  return self->state.opts.log ? *self->state.opts.log : std::cerr;
}

std::string prefix_of(const std::string& unit) {
  return unit[0] == 'p' ? task_prefix(std::stoi(unit.substr(1)))
                        : shard_prefix(std::stoi(unit.substr(1)));
}

/// Adds this host's flow-control figures to the process's report (once; eddy run --as-cluster).
void report_flow_figures(host_ptr self) {
  auto& st = self->state;
  auto& out = st.opts.report;
  if (!out || !st.ctx || st.figures_reported) return;
  st.figures_reported = true;
  auto raise = [](auto& to, auto v) {
    for (auto cur = to.load(); v > cur && !to.compare_exchange_weak(cur, v);) {
    }
  };
  raise(out->max_in_flight_bytes, st.ctx->max_in_flight_bytes.load());
  raise(out->max_unreturned_partials, st.ctx->max_unreturned_partials.load());
  out->credit_waits += st.ctx->credit_waits.load();
  // Counted since the pipeline started (restored shards add their checkpointed count): the
  // newest host's count is the run's.
  raise(out->dropped_after_close, st.ctx->dropped_after_close.load());
}

/// Ends the host and every actor it started (they are not linked to it: a unit that fails must
/// reach the down handler with its reason).
void stop_host(host_ptr self, caf::error reason) {
  report_flow_figures(self);
  for (const auto& child : self->state.handles) self->send_exit(child, caf::exit_reason::kill);
  self->state.handles.clear();
  self->quit(std::move(reason));
}

void adopt(host_ptr self, const caf::actor& child, std::string what) {
  self->monitor(child);
  self->state.children.emplace(child.address(), std::move(what));
  self->state.handles.push_back(child);
}

/// Loads into the local DB the snapshots of `units` ("p3", "s1") of the assignment's restore
/// epoch (the coordinator's manifest names them). "" or the error.
std::string load_snapshots(host_ptr self, const std::vector<std::string>& units) {
  auto& st = self->state;
  const auto& a = st.opts.assignment;
  const checkpoint_config& cc = st.ctx->cfg->checkpoint;
  if (a.restore_epoch == 0 || units.empty()) return {};
  std::string err;
  auto manifest = read_cluster_manifest(cc.dir, a.restore_epoch, &err);
  if (!manifest) return err;
  auto in_dir = [&cc](const std::string& p) {
    fs::path path(p);
    return (path.is_relative() ? fs::path(cc.dir) / path : path).string();
  };
  for (const auto& u : units) {
    auto it = manifest->units.find(u);
    if (it == manifest->units.end() || it->second.snapshot.empty()) continue;  // a new unit
    if (auto e = load_unit_snapshot(in_dir(it->second.snapshot), it->second.crc32c, *st.ctx->db);
        !e.empty())
      return "unit " + u + ": " + e;
    for (const auto& d : it->second.deltas)
      if (auto e = load_unit_delta(in_dir(d.path), d.crc32c, prefix_of(u), *st.ctx->db); !e.empty())
        return "unit " + u + ": " + e;
  }
  return {};
}

/// Opens the local DB and loads the units' snapshots of the restore epoch. "" or the error.
std::string restore_units(host_ptr self) {
  auto& st = self->state;
  const auto& a = st.opts.assignment;
  const checkpoint_config& cc = st.ctx->cfg->checkpoint;
  const fs::path local = st.opts.local_dir / ("g" + std::to_string(a.generation));
  std::error_code ec;
  // Older generations' DBs: their actors are gone or going (files stay valid while open). Never
  // a newer one: hosts are detached, and a host the node already replaced may get here after
  // its successor opened its DB.
  for (const auto& e : fs::directory_iterator(st.opts.local_dir, ec)) {
    const std::string n = e.path().filename().string();
    uint64_t g = 0;
    if (n.size() > 1 && n[0] == 'g' &&
        std::from_chars(n.data() + 1, n.data() + n.size(), g).ptr == n.data() + n.size() &&
        g < a.generation)
      fs::remove_all(e.path(), ec);
  }
  kv_options kvo;
  kvo.block_cache_bytes = static_cast<size_t>(cc.block_cache_mb) << 20;
  kvo.write_buffer_bytes = static_cast<size_t>(cc.write_buffer_mb) << 20;
  kvo.disable_wal = true;  // rebuilt from checkpoint storage after any crash
  // Not write_mostly (a vector memtable) even with state in memory, as eddy run's task DB is:
  // full unit snapshots scan the DB while tasks keep writing, and every scan of a vector
  // memtable sorts it whole. With skip lists the changelog example's first epoch completed in
  // ~0.75 s instead of ~1.9 s (docs/benchmarks.md §6, "One process").
  kvo.write_mostly = false;
  store_status s;
  std::shared_ptr<kv_store> db = kv_store::open(local.string(), kvo, &s);
  if (!db) return "--local-dir: " + s.error;
  st.ctx->db = db;
  std::vector<std::string> mine;
  for (int32_t p : a.partitions) mine.push_back("p" + std::to_string(p));
  for (int32_t sh : a.shards) mine.push_back("s" + std::to_string(sh));
  return load_snapshots(self, mine);
}

/// Reads the restored offset and counters of each of `partitions` from the local DB.
std::string read_task_meta(host_ptr self, const std::vector<int32_t>& partitions) {
  auto& st = self->state;
  for (int32_t p : partitions) {
    store_status s;
    auto meta = st.ctx->db->get(task_prefix(p) + "m", &s);
    if (!s.ok()) return "--local-dir: " + s.error;
    int64_t off = -1, wm = 0;
    record_counters c;
    if (meta && decode_task_meta(*meta, &off, &wm, &c)) {
      st.offsets[p] = off;
      st.counters[p] = c;
    }
  }
  return {};
}

void send_ack(host_ptr self, unit_ack ack) {
  auto& st = self->state;
  ack.generation = st.opts.assignment.generation;
  self->send(st.opts.coordinator, ack_atom::value, std::move(ack));
}

/// Exports `unit`'s state of `in.epoch`: a delta of the epoch's writes (in.changes) when the
/// unit has a snapshot here and its chain is short, else a full snapshot; updates the unit's
/// chain. "" or the error (the caller then drops the chain). Takes in.changes.
std::string export_unit(host_ptr self, const std::string& unit, checkpoint_ack& in) {
  auto& st = self->state;
  const auto& cc = st.ctx->cfg->checkpoint;
  auto it = st.chains.find(unit);
  const bool delta = st.ctx->unit_deltas && it != st.chains.end() &&
                     it->second.deltas.size() < max_deltas_per_snapshot &&
                     it->second.delta_bytes + in.changes.size() <= it->second.base_bytes;
  const fs::path path = unit_file_path(cc.dir, unit, in.epoch, st.opts.assignment.generation,
                                       delta ? unit_file_kind::delta : unit_file_kind::snapshot);
  const unit_snapshot_result r =
      delta
          ? write_unit_delta(prefix_of(unit), unit_changes{std::move(in.changes), in.change_count},
                             path.string(), cc.sync, st.ctx->unit_compress)
          : write_unit_snapshot(*st.ctx->db, prefix_of(unit), path.string(), cc.sync,
                                st.ctx->unit_compress);
  if (!r.ok()) return r.error;
  unit_file_ref f{fs::relative(path, cc.dir).string(), r.bytes, r.crc32c};
  if (delta) {
    it->second.delta_bytes += r.raw_bytes;
    it->second.deltas.push_back(std::move(f));
  } else {
    st.chains[unit] = unit_chain{std::move(f), {}, 0, r.raw_bytes};
  }
  return {};
}

void on_local_ack(host_ptr self, checkpoint_ack& in) {
  auto& st = self->state;
  // An epoch cut before this host was kept across a generation change: it was aborted (its
  // output is carried into the new generation's first epoch, see adopt_assignment).
  if (in.epoch < st.opts.assignment.first_epoch) return;
  unit_ack ack;
  ack.epoch = in.epoch;
  ack.error = in.error;
  if (in.partition >= 0 || in.shard >= 0) {
    ack.unit =
        in.partition >= 0 ? "p" + std::to_string(in.partition) : "s" + std::to_string(in.shard);
    ack.next_offset = in.next_offset;
    ack.watermark = in.watermark;
    ack.counters = in.counters;
    // A task says it ended before it acks any later barrier (same sender, same receiver).
    ack.input_ended = in.partition >= 0 && st.ended.count(in.partition) > 0;
    if (ack.error.empty()) {
      if (auto e = export_unit(self, ack.unit, in); !e.empty()) {
        ack.error = "unit " + ack.unit + ": " + e;
      } else {
        const unit_chain& c = st.chains.at(ack.unit);
        ack.snapshot = c.base.path;
        ack.snapshot_bytes = c.base.bytes;
        ack.snapshot_crc32c = c.base.crc32c;
        ack.deltas = c.deltas;
      }
    }
    if (!ack.error.empty()) st.chains.erase(ack.unit);  // writes may be missing: full next
  } else {
    ack.unit = "sink:" + st.opts.worker_name;
    for (const auto& d : staged_output_dirs(*st.ctx->cfg)) {
      std::string err;
      auto paths = st.carry_from ? staged_paths_of_writer(d, *st.carry_from, in.epoch, st.tag, &err)
                                 : staged_epoch_paths(d, in.epoch, st.tag, &err);
      if (!err.empty() && ack.error.empty()) ack.error = "sink: " + err;
      for (auto& p : paths) ack.staged.push_back(std::move(p));
    }
  }
  send_ack(self, std::move(ack));
}

/// At most every 10 s, when this worker's source tasks held input for lack of shard credit
/// since the last line: says so, with the most partial batches one task had unreturned at one
/// shard and the most input bytes in flight (what the credits and the in-flight limit bound).
void log_backpressure(host_ptr self) {
  auto& st = self->state;
  const int64_t waits = st.ctx->credit_waits.load(std::memory_order_relaxed);
  const auto now = std::chrono::steady_clock::now();
  if (waits == st.credit_waits_logged || now - st.credit_logged_at < std::chrono::seconds(10))
    return;
  log_of(self) << "eddy worker " << st.opts.worker_name << ": generation "
               << st.opts.assignment.generation << ": backpressure: source tasks waited "
               << waits - st.credit_waits_logged << " times for shard credit; at most "
               << st.ctx->max_unreturned_partials.load(std::memory_order_relaxed)
               << " partial batches unreturned at one shard (window " << partial_credit_window
               << "), at most " << st.ctx->max_in_flight_bytes.load(std::memory_order_relaxed)
               << " input bytes in flight (limit " << (st.ctx->cfg->source.max_in_flight_mb << 20)
               << ")\n";
  st.credit_waits_logged = waits;
  st.credit_logged_at = now;
}

/// One line per unit that moved here: it resumes now, at its restored state and offset (tasks:
/// their poller is assigned the restored offsets; shards: the generation started).
void log_resumed_units(host_ptr self) {
  const auto& st = self->state;
  const auto& a = st.opts.assignment;
  const auto here = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - st.opts.received_at)
                        .count();
  for (size_t i = 0; i < a.moved_units.size() && i < a.moved_from.size(); ++i) {
    std::string line = "eddy worker " + st.opts.worker_name + ": unit " + a.moved_units[i] +
                       " resumed " +
                       (a.restore_epoch == 0 ? std::string("from the start (no epoch complete yet)")
                                             : "from epoch " + std::to_string(a.restore_epoch)) +
                       " (moved from " + a.moved_from[i] + ")";
    if (a.since_change_ms >= 0)
      line += ", " + std::to_string(a.since_change_ms + here) + " ms after " + a.change;
    log_of(self) << line + "\n";  // one write: other actors log to the same stream
  }
}

/// Starts source tasks for `partitions` from their restored offsets, and a Kafka poller for
/// them: every partition at a generation's start; for a host kept across a generation change,
/// the partitions that moved to it, added to its running poller.
void start_units(host_ptr self, const std::vector<int32_t>& partitions,
                 const std::vector<caf::actor>& shard_table) {
  auto& st = self->state;
  st.started = true;
  const auto& cfg = *st.ctx->cfg;
  if (partitions.empty()) {
    log_resumed_units(self);  // shards only: they take input from now on
    return;
  }
  // One source task per partition, sending partials and barriers to `shard_table`.
  auto spawn_tasks = [&] {
    std::vector<caf::actor> tasks;
    for (int32_t p : partitions) {
      auto t = self->spawn(source_task, st.ctx, p, st.sink, shard_table,
                           caf::actor_cast<caf::actor>(self));
      adopt(self, t, "source task of partition " + std::to_string(p));
      st.tasks[p] = t;
      tasks.push_back(t);
    }
    return tasks;
  };
  if (st.adopted && st.poller) {  // kept across a generation change: its poller takes them too
    const std::vector<caf::actor> tasks = spawn_tasks();
    std::vector<int64_t> offsets;
    for (int32_t p : partitions) {
      auto it = st.offsets.find(p);
      offsets.push_back(it == st.offsets.end() ? -1 : it->second);
    }
    self->send(st.poller, assign_atom::value, partitions, tasks, offsets);
    log_resumed_units(self);
    return;
  }
  std::string err;
  std::shared_ptr<kafka_consumer> consumer =
      kafka_consumer::create(cfg.source.bootstrap_servers, cfg.source.group_id,
                             consumer_queue_properties(cfg.source.max_in_flight_mb), &err);
  if (!consumer) {
    stop_host(self, caf::make_error(caf::sec::runtime_error, "Kafka consumer: " + err));
    return;
  }
  // Metadata first (as eddy run does): assigning before the topic's metadata is known makes the
  // offset lookup wait on librdkafka's retry timer (~500 ms more per generation start).
  if (consumer->partitions(cfg.source.topic, 10'000, &err).empty())
    log_of(self) << "eddy worker " << st.opts.worker_name << ": warning: metadata of "
                 << cfg.source.topic << ": " << err << "\n";
  const std::vector<caf::actor> tasks = spawn_tasks();
  st.poller = self->spawn<caf::detached>(poller_actor, st.ctx, consumer,
                                         caf::actor_cast<caf::actor>(self), st.offsets);
  adopt(self, st.poller, "Kafka poller");
  self->send(st.poller, assign_atom::value, partitions, tasks);
  log_resumed_units(self);  // after the consumer's metadata: the tasks run from here on
}

/// The node keeps this host across a generation change (worker_node.hpp: a pipeline without
/// aggregation whose new assignment keeps every partition this host runs): its tasks go on
/// from where they are instead of rewinding to the last committed epoch; only the partitions
/// that moved here restore (from that epoch) and start when the generation starts. The epoch
/// that was open is aborted, so the sink files everything since the last committed epoch under
/// the new generation's first epoch, and until an epoch commits the sink's acks list what it
/// staged for the aborted epochs too (their names stay unique: the host keeps its tag).
void adopt_assignment(host_ptr self, const unit_assignment& a, int64_t received_at_ns) {
  auto& st = self->state;
  if (st.ctx->abort.load()) {  // its sink failed: a new host starts the sinks again
    stop_host(self, caf::make_error(caf::sec::runtime_error,
                                    "a sink failed in generation " +
                                        std::to_string(st.opts.assignment.generation)));
    return;
  }
  std::set<int32_t> held;
  for (const auto& [p, _] : st.tasks) held.insert(p);
  st.moved_in.clear();
  std::vector<std::string> units;
  for (int32_t p : a.partitions)
    if (!held.contains(p)) {
      st.moved_in.push_back(p);
      units.push_back("p" + std::to_string(p));
    }
  st.opts.assignment = a;
  st.opts.received_at = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(std::chrono::nanoseconds(received_at_ns)));
  st.ctx->generation = a.generation;
  st.ctx->restored_epoch = a.restore_epoch;  // the moved partitions' tasks restore from it
  st.started = false;
  st.adopted = true;
  st.carry_from = a.restore_epoch;
  st.open_epoch = 0;
  // Files are named after the new generation from here on: every unit starts a new chain.
  st.chains.clear();
  if (auto e = load_snapshots(self, units); !e.empty()) {
    stop_host(self, caf::make_error(caf::sec::runtime_error, e));
    return;
  }
  if (auto e = read_task_meta(self, st.moved_in); !e.empty()) {
    stop_host(self, caf::make_error(caf::sec::runtime_error, e));
    return;
  }
  std::vector<record_counters> counters;
  for (int32_t p : st.moved_in) counters.push_back(st.counters[p]);
  self->send(st.sink, assign_atom::value, a.first_epoch, st.moved_in, counters);
  self->send(st.opts.node, ready_atom::value, a.generation, std::vector<int32_t>{},
             std::vector<caf::actor>{});
}

caf::behavior unit_host(host_ptr self, unit_host_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  // An exception ends the host with its message: its worker leaves, and a run in one process
  // ends with it.
  end_with_exception_message(self, "unit host");
  fault_point("unit_host");
  const auto& a = st.opts.assignment;
  // This generation's copy of the pipeline: staged output names carry <worker>-g<generation>.
  st.tag = st.opts.worker_name + "-g" + std::to_string(a.generation);
  auto cfg = std::make_shared<pipeline_config>(*st.opts.cfg);
  for (auto& sc : cfg->sinks) sc.name_tag = st.tag;
  cfg->dead_letter.name_tag = st.tag;
  st.opts.cfg = cfg;
  // The units' context owns that copy: a unit actor may still run after the host ended (its
  // units are killed, not joined) and reads ctx->cfg (ASan: a shard read the freed config when
  // only the host's state owned it).
  struct owned_context {
    std::shared_ptr<const pipeline_config> cfg;
    run_context ctx;
  };
  auto owned = std::make_shared<owned_context>();
  owned->cfg = cfg;
  st.ctx = std::shared_ptr<run_context>(owned, &owned->ctx);
  auto& ctx = *st.ctx;
  ctx.cfg = st.opts.cfg.get();
  ctx.opts.log = st.opts.log;
  // Without [checkpoint] only in one process (eddy run --as-cluster; a coordinator refuses such
  // a pipeline): no epochs, output per trigger, the end is the sink's (drained_atom).
  ctx.checkpointing = ctx.cfg->checkpoint.enabled();
  if (st.opts.report) {
    ctx.batches_out = st.opts.report->batches;
    st.opts.report->set_live(st.ctx);
  }
  if (const run_options* run = st.opts.run) {
    ctx.opts.console = run->console;
    ctx.opts.stats_requested = run->stats_requested;
    ctx.opts.max_unreachable = run->max_unreachable;
    // With checkpoints a stop is the coordinator's (its last epoch); without, the poller ends
    // every partition and the units drain, as in eddy run.
    if (!ctx.checkpointing) ctx.opts.stop = run->stop;
  }
  // EDDY_UNIT_FULL_SNAPSHOTS=1 (benchmarks only): a full snapshot every epoch, no deltas — how
  // units were exported before deltas, the reference of bench/cluster_bench.py's part 6.
  const char* full = std::getenv("EDDY_UNIT_FULL_SNAPSHOTS");
  ctx.unit_deltas = !(full && std::string_view(full) == "1");
  // EDDY_UNIT_UNCOMPRESSED=1 (benchmarks only): unit files in format 1, as before compression.
  const char* raw = std::getenv("EDDY_UNIT_UNCOMPRESSED");
  ctx.unit_compress = !(raw && std::string_view(raw) == "1");
  ctx.restored_epoch = a.restore_epoch;
  ctx.first_epoch = a.first_epoch;
  ctx.generation = a.generation;         // credit grants carry it (worker/runtime/credits.hpp)
  ctx.opts.exit_at_end = a.exit_at_end;  // the poller ends partitions at their end
  auto fail_now = [self](const std::string& e) -> caf::behavior {
    self->quit(caf::make_error(caf::sec::runtime_error, e));
    return {};
  };
  std::string err;
  auto fmt = time_formatter::for_zone(ctx.cfg->timezone, &err);
  if (!fmt) return fail_now("pipeline.timezone: " + err);
  ctx.fmt = *fmt;
  auto probe = record_processor::create(*ctx.cfg, &err);
  if (!probe) return fail_now(err);
  st.schema = probe->schema();
  if (!ctx.cfg->aggregates.empty()) {
    ctx.plan = aggregation_plan::from_config(*ctx.cfg, &err);
    if (!ctx.plan) return fail_now(err);
    st.schema = ctx.plan->schema;
  }
  const auto restore_started = std::chrono::steady_clock::now();
  if (ctx.checkpointing) {
    if (auto e = restore_units(self); !e.empty()) return fail_now(e);
    if (auto e = read_task_meta(self, a.partitions); !e.empty()) return fail_now(e);
  }
  if (a.restore_epoch > 0)
    log_of(self) << "eddy worker " << st.opts.worker_name << ": generation " << a.generation
                 << ": restored its units from epoch " << a.restore_epoch << " in "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - restore_started)
                        .count()
                 << " ms\n";

  // A unit that fails fails the host (and so this worker's membership).
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!is_fault(dm.reason)) return;
    auto it = st.children.find(dm.source);
    const std::string what = it == st.children.end() ? "an actor" : it->second;
    // An exception's message, as the actor's exception handler recorded it (actor_faults.hpp).
    std::string fault = st.ctx->faulted.load() ? st.ctx->fault_message() : std::string();
    if (fault.empty()) fault = what + " failed: " + reason_text(self->system(), dm.reason);
    stop_host(self, caf::make_error(caf::sec::runtime_error, std::move(fault)));
  });
  // The node ends a generation with user_shutdown (exit_reason::kill cannot be trapped, and the
  // units must go with the host).
  self->set_exit_handler([self](caf::exit_msg& m) { stop_host(self, std::move(m.reason)); });
  st.sink =
      self->spawn(sink_actor, st.ctx, st.schema, caf::actor_cast<caf::actor>(self), st.counters);
  adopt(self, st.sink, "sink");
  self->send(st.sink, assign_atom::value, a.partitions, a.shards,
             caf::actor_cast<caf::actor>(self));
  std::vector<int32_t> ids;
  std::vector<caf::actor> handles;
  for (int32_t s : a.shards) {
    auto h = spawn_shard(self->system(), st.ctx, s, a.all_partitions, st.sink,
                         caf::actor_cast<caf::actor>(self));
    adopt(self, h, "aggregation shard " + std::to_string(s));
    st.shards[s] = h;
    ids.push_back(s);
    handles.push_back(h);
  }
  self->send(st.opts.node, ready_atom::value, a.generation, ids, handles);
  return {
      [self](start_atom, uint64_t generation, const std::vector<caf::actor>& shard_table) {
        auto& st = self->state;
        if (generation != st.opts.assignment.generation || st.started) return;
        start_units(self, st.adopted ? st.moved_in : st.opts.assignment.partitions, shard_table);
      },
      [self](checkpoint_atom, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        if (generation != st.opts.assignment.generation || !st.started) return;
        st.open_epoch = epoch;
        log_backpressure(self);
        for (const auto& [_, t] : st.tasks) self->send(t, checkpoint_atom::value, epoch);
        // A sink without inputs never sees a barrier: it has nothing to stage.
        if (st.tasks.empty() && st.shards.empty()) {
          unit_ack ack;
          ack.epoch = epoch;
          ack.unit = "sink:" + st.opts.worker_name;
          send_ack(self, std::move(ack));
        }
      },
      [self](checkpoint_ack& ack) { on_local_ack(self, ack); },
      [self](commit_atom, uint64_t generation, uint64_t epoch) {
        auto& st = self->state;
        // The coordinator published that epoch's list, carried files included.
        if (generation == st.opts.assignment.generation && epoch >= st.opts.assignment.first_epoch)
          st.carry_from.reset();
      },
      [self](assign_atom, const unit_assignment& a, int64_t received_at_ns) {
        adopt_assignment(self, a, received_at_ns);
      },
      [self](ended_atom, int32_t p) {  // exit_at_end only
        auto& st = self->state;
        st.ended.insert(p);
        self->send(st.opts.coordinator, ended_atom::value, st.opts.assignment.generation, p);
      },
      [self](failed_atom, const std::string& e) {
        stop_host(self, caf::make_error(caf::sec::runtime_error, e));
      },
      [self](finish_atom a, uint64_t generation, uint64_t epoch) {  // leaving cleanly
        self->send(self->state.sink, a, generation, epoch);
      },
      // The sink finished: only without checkpoints (every input ended or drained).
      [self](done_atom, const worker_report& r, int64_t) {
        auto& st = self->state;
        if (st.ctx->checkpointing) return;
        if (auto& out = st.opts.report) {
          out->partitions = r.partitions;
          out->counters = r.counters;
          for (const auto& [p, progress] : st.ctx->progress()) {
            out->next_offsets[p] = progress.next_offset;
            if (progress.read_to_end()) out->read_to_end.insert(p);
          }
          report_flow_figures(self);
        }
        if (!r.error.empty()) {
          stop_host(self, caf::make_error(caf::sec::runtime_error, r.error));
          return;
        }
        self->send(st.opts.node, drained_atom::value, st.opts.assignment.generation);
      },
  };
}

}  // namespace

caf::actor spawn_unit_host(caf::actor_system& sys, unit_host_options opts) {
  return sys.spawn<caf::detached>(unit_host, std::move(opts));
}

}  // namespace eddy
