#include "worker/runtime/pipeline_runtime.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "coordinator/coordinator_actor.hpp"
#include "model/time_format.hpp"
#include "state/checkpoint_store.hpp"
#include "state/epoch_log.hpp"
#include "state/file_io.hpp"
#include "state/unit_snapshot.hpp"
#include "worker/checkpoint/checkpoint_compat.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/kafka/kafka_sink.hpp"
#include "worker/postgres/pg_sink.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/runtime/worker_actor.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/sink.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {

record_counters run_result::total() const {
  record_counters t;
  for (const auto& c : counters) t += c;
  return t;
}

void print_dropped_after_close(std::ostream& out, const run_result& result) {
  if (result.dropped_after_close == 0) return;
  out << "eddy: warning: " << result.dropped_after_close
      << " partial aggregate(s) reached windows that had already closed and were dropped: a "
         "partition idle for longer than window.idle_timeout woke up behind the watermark (their "
         "rows count as out above; a longer idle_timeout waits for such partitions)\n";
}

void print_incomplete(std::ostream& out, const run_result& result) {
  if (result.incomplete.empty()) return;
  for (const auto& s : result.incomplete)
    out << "eddy: partition " << s.partition << ": read to offset " << s.read_to
        << " of end offset " << s.end_offset << " (" << s.end_offset - s.read_to
        << " offsets not read)\n";
  out << "eddy: the run ended before reaching the end offsets it was asked for (--exit-at-end): "
      << result.incomplete.size() << " partition(s) not read to their end\n";
  out.flush();
}

void print_counters(std::ostream& out, const std::vector<int32_t>& partitions,
                    const std::vector<record_counters>& counters) {
  out << "partition          in         out    filtered  dead-lettered        late\n";
  record_counters total;
  auto line = [&](const std::string& name, const record_counters& c) {
    out << std::setw(9) << name << std::setw(12) << c.in << std::setw(12) << c.out << std::setw(12)
        << c.filtered << std::setw(15) << c.dead_lettered << std::setw(12) << c.late
        << (c.reconciles() ? "" : "   (does not reconcile!)") << "\n";
  };
  for (size_t i = 0; i < partitions.size(); ++i) {
    line(std::to_string(partitions[i]), counters[i]);
    total += counters[i];
  }
  line("total", total);
  out.flush();
}

bool end_actor_system(std::unique_ptr<caf::actor_system>& sys,
                      std::unique_ptr<caf::actor_system_config>& cfg, std::ostream& log) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sys->registry().running() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (const size_t left = sys->registry().running(); left > 0) {
    log << "eddy: " << left
        << " actor(s) of the run did not end within 5 s after it (blocked, e.g. in I/O); "
           "leaving them behind\n";
    (void)sys.release();
    (void)cfg.release();
    return true;
  }
  sys.reset();
  return false;
}

bool read_source_partitions(kafka_consumer& consumer, const pipeline_config& cfg, bool exit_at_end,
                            std::vector<int32_t>* partitions,
                            std::map<int32_t, std::pair<int64_t, int64_t>>* bounds,
                            std::string* error) {
  *partitions = consumer.partitions(cfg.source.topic, 10'000, error);
  if (partitions->empty()) return false;
  if (!exit_at_end) return true;
  auto w = consumer.watermarks(cfg.source.topic, *partitions, 10'000, error);
  if (!w) return false;
  *bounds = std::move(*w);
  return true;
}

std::string local_dir_of(const checkpoint_config& cc) {
  return cc.local_dir.empty() ? cc.dir + "/local" : cc.local_dir;
}

namespace {

std::string task_key_partition_digits(int32_t p) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%010d", p);
  return buf;
}

/// Opens checkpoint storage, restores the node-local DB from the newest intact epoch, checks the
/// pipeline against it and finishes or discards what sinks staged. "" or the error to stop with.
std::string prepare_checkpoints(const pipeline_config& cfg, const run_options& opts,
                                run_context& ctx, const std::vector<int32_t>& partitions,
                                restored_state& out) {
  namespace fs = std::filesystem;
  std::ostream& log = opts.log ? *opts.log : std::cerr;
  const checkpoint_config& cc = cfg.checkpoint;
  const std::string local = local_dir_of(cc);
  std::error_code ec;
  if (opts.reset) {
    fs::remove_all(cc.dir, ec);
    if (ec) return "--reset: cannot remove " + cc.dir + ": " + ec.message();
    fs::remove_all(local, ec);
    log << "eddy: --reset: removed the checkpoints in " << cc.dir
        << "; starting over as a new pipeline\n";
  }
  // A cluster's checkpoints (cluster/epochs/<e>.json): eddy run cannot continue them, and
  // starting over would read the input again and publish its output a second time.
  {
    uint64_t newest_cluster = 0;
    for (const auto& e : fs::directory_iterator(fs::path(cc.dir) / "cluster" / "epochs", ec)) {
      const std::string n = e.path().filename().string();
      if (n.size() == 25 && n.ends_with(".json") &&
          n.find_first_not_of("0123456789") == n.size() - 5)
        newest_cluster = std::max<uint64_t>(newest_cluster, std::stoull(n.substr(0, 20)));
    }
    ec.clear();
    if (newest_cluster > 0)
      return "checkpoint.dir " + cc.dir +
             " holds the checkpoints of a cluster (eddy coordinator; newest epoch " +
             std::to_string(newest_cluster) +
             "): eddy run cannot continue them, and starting over would read the input again "
             "and publish its output a second time. Continue them with eddy run --as-cluster "
             "(or a coordinator), use a new checkpoint.dir (and new sink paths), or --reset to "
             "drop them";
  }
  store_status s;
  std::shared_ptr<checkpoint_store> store = checkpoint_store::open(
      checkpoint_options{cc.dir, static_cast<size_t>(cc.retain), cc.sync}, &s);
  if (!store) return "checkpoint.dir: " + s.error;
  fs::remove_all(local, ec);  // may hold writes of an epoch that never completed
  if (ec) return "checkpoint.local_dir: cannot clear " + local + ": " + ec.message();
  std::vector<std::string> warnings;
  std::map<uint64_t, std::map<std::string, std::vector<std::string>>> replay_files;
  const auto restore_start = std::chrono::steady_clock::now();
  auto restored = store->restore_latest(local, &warnings, &s);
  const auto restore_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - restore_start)
                              .count();
  for (const auto& w : warnings) log << "eddy: warning: " << w << "\n";
  if (!s.ok())
    return "cannot recover from the checkpoints in " + cc.dir + ": " + s.error +
           " (eddy never starts over silently: run with --reset to drop them)";
  out.compat = compat_fingerprint(cfg);
  if (restored) {
    if (auto e = compat_check(restored->metadata, out.compat, cc.dir); !e.empty()) return e;
    ctx.restored_epoch = restored->epoch;
    for (const auto& [k, v] : restored->metadata) {
      if (!k.starts_with("partition.") || !k.ends_with(".offset")) continue;
      const int32_t p = std::stoi(k.substr(10));
      if (std::find(partitions.begin(), partitions.end(), p) == partitions.end())
        return "topic " + cfg.source.topic + " no longer has partition " + std::to_string(p) +
               ", which checkpoint " + std::to_string(restored->epoch) + " in " + cc.dir +
               " holds offsets for: a topic cannot shrink under a running pipeline";
    }
  }
  auto listed = store->list(&s);
  if (!s.ok()) return "checkpoint.dir: " + s.error;
  if (restored) {
    // Newer epochs were skipped as damaged: move them aside (kept for inspection), so that no
    // later commit mistakes their files for its own and the next epochs reuse their numbers
    // (and so their output file names) instead of duplicating their output.
    for (uint64_t e : listed) {
      if (e <= restored->epoch) continue;
      const fs::path from = fs::path(cc.dir) / "epochs" / std::to_string(e);
      const fs::path to = fs::path(cc.dir) / "epochs" /
                          ("damaged-" + std::to_string(e) + "-" + std::to_string(::getpid()));
      fs::rename(from, to, ec);
      if (ec)
        return "checkpoint.dir: cannot move damaged " + from.string() + " aside: " + ec.message();
      log << "eddy: warning: damaged checkpoint " << e << " moved aside to " << to.string() << "\n";
    }
    listed = store->list(&s);
    if (!s.ok()) return "checkpoint.dir: " + s.error;
  }
  out.next_epoch = listed.empty() ? 1 : listed.back() + 1;
  kv_options kvo;
  kvo.block_cache_bytes = static_cast<size_t>(cc.block_cache_mb) << 20;
  kvo.write_buffer_bytes = static_cast<size_t>(cc.write_buffer_mb) << 20;
  kvo.disable_wal = true;  // rebuilt from checkpoint storage after any crash: no WAL needed
  kvo.write_mostly = !cc.state_in_rocksdb;  // read only by the restore
  std::shared_ptr<kv_store> db = kv_store::open(local, kvo, &s);
  if (!db) return "checkpoint.local_dir: " + s.error;
  for (int32_t p : partitions) {
    auto meta = db->get(task_prefix(p) + "m", &s);
    if (!s.ok()) return "checkpoint.local_dir: " + s.error;
    int64_t off = -1, wm = 0;
    record_counters c;
    if (meta && decode_task_meta(*meta, &off, &wm, &c)) {
      out.offsets[p] = off;
      out.counters[p] = c;
    }
  }
  // Epochs the epoch log holds after the restored one (their state was damaged, or the process
  // died between the log and the state commit) may have published output: they are replayed to
  // their logged end offsets, and their output is not written again.
  if (restored || cfg.source.starting_offsets != "latest") {
    std::string lerr;
    const auto logged = list_epoch_log(cc.dir, &lerr);
    if (!lerr.empty()) return "checkpoint.dir: " + lerr;
    uint64_t expect = ctx.restored_epoch + 1;
    for (uint64_t e : logged) {
      if (e < expect) continue;
      if (e != expect) {
        log << "eddy: warning: the epoch log has no entry for epoch " << expect << " but one for "
            << e << ": epochs from " << expect
            << " on are not replayed, and output they published may be written again\n";
        break;
      }
      auto entry = read_epoch_log(cc.dir, e, &lerr);
      if (!entry) {
        log << "eddy: warning: epoch log of epoch " << e << ": " << lerr << ": epochs from " << e
            << " on are not replayed, and output they published may be written again\n";
        break;
      }
      ctx.replay[e] = std::move(entry->end_offsets);
      replay_files[e] = std::move(entry->files);
      ++expect;
    }
  }
  const uint64_t last_output = ctx.replay.empty() ? ctx.restored_epoch : ctx.replay.rbegin()->first;
  // Output staged by epochs that completed (or were logged) is published; that of epochs that did
  // not, dropped.
  epoch_recovery rec;
  for (size_t i = 0; i < cfg.sinks.size(); ++i) {
    const sink_config& sc = cfg.sinks[i];
    std::unique_ptr<sink> staged;
    if (sc.kind == sink_kind::file) {
      staged = make_file_sink(sc, ctx.fmt);
    } else if (sc.kind == sink_kind::kafka) {
      // Delivers (after reading back) what complete epochs staged; connects only if there is any.
      std::string kerr;
      kafka_sink_options kopts;
      kopts.log = &log;
      staged = make_kafka_sink(cfg, i, ctx.fmt, &kerr, kopts);
      if (!staged) return "kafka sink: " + kerr;
    } else if (sc.kind == sink_kind::postgres) {
      // Connects now (once): an unreachable server or bad credentials end the start here.
      std::string err;
      staged = make_postgres_sink(cfg, i, ctx.fmt, log, pg_start::connect, &err);
      if (!staged) return err;
    } else {
      continue;
    }
    staged->set_sync(cc.sync);
    if (auto e = staged->recover(last_output, &rec); !e.empty()) return e;
  }
  if (auto e = recover_epoch_files(cfg.dead_letter.path, last_output, &rec, cc.sync); !e.empty())
    return "dead-letter output: " + e;
  if (!ctx.replay.empty()) {
    // Their published files are recognised by name: the replay writes none of them again.
    size_t files = 0, absent = 0;
    std::set<std::string> delivered_elsewhere;  // staging of sinks that deliver, then delete
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i)
      if (auto d = sink_staging_dir(cfg, i); !d.empty()) delivered_elsewhere.insert(d);
    for (const auto& [e, dirs] : replay_files)
      for (const auto& [d, names] : dirs)
        for (const auto& n : names) {
          if (delivered_elsewhere.contains(d)) continue;  // their delivery records say so
          ++files;
          if (!fs::exists(fs::path(d) / n, ec)) {
            ++absent;
            log << "eddy: warning: " << (fs::path(d) / n).string() << ", published by epoch " << e
                << ", is missing (deleted?): the replay does not write it again\n";
          }
        }
    log << "eddy: warning: replaying epoch(s) " << ctx.replay.begin()->first << ".." << last_output
        << " from the epoch log to the offsets they ended at: their output (" << files - absent
        << " published file(s)) is kept and not written again";
    const window_config& w = cfg.window;
    if (w.kind != window_kind::none &&
        (w.processing_time || w.idle_timeout_us > 0 || w.emit == emit_mode::on_update))
      log << "; this pipeline's results depend on when rows arrive (processing time, "
             "idle_timeout or emit = on_update), so the replay may not reproduce them: rows of "
             "those epochs may be missing or repeated";
    log << "\n";
  }
  if (restored) {
    log << "eddy: resuming from checkpoint " << restored->epoch << " in " << cc.dir
        << " (restored in " << restore_ms << " ms)";
    if (!rec.published.empty())
      log << " (published the output of " << rec.published.size() << " complete epoch(s))";
    if (!rec.discarded.empty())
      log << " (discarded the staged output of " << rec.discarded.size() << " incomplete epoch(s))";
    log << "\n";
  } else {
    log << "eddy: new pipeline: checkpoints every " << cc.interval_ms << " ms in " << cc.dir
        << "\n";
  }
  log.flush();
  out.store = std::move(store);
  ctx.db = std::move(db);
  return {};
}

}  // namespace

std::string take_over_run_checkpoints(const pipeline_config& cfg,
                                      const std::vector<int32_t>& partitions, std::ostream& log,
                                      uint64_t* epoch, size_t* units) {
  namespace fs = std::filesystem;
  const checkpoint_config& cc = cfg.checkpoint;
  std::string err;
  auto fmt = time_formatter::for_zone(cfg.timezone, &err);
  if (!fmt) return "pipeline.timezone: " + err;
  // A running eddy run holds RocksDB's lock (a POSIX record lock) on its local DB: taking over
  // would clear that directory under it and write the checkpoints it writes.
  const std::string local = local_dir_of(cc);
  if (auto pid = file_io::write_lock_holder(fs::path(local) / "LOCK"))
    return "eddy run (pid " + std::to_string(*pid) + ") is still running on " + cc.dir +
           ": stop it first (SIGTERM: it takes a final checkpoint)";
  run_context ctx;
  ctx.cfg = &cfg;
  ctx.fmt = *fmt;
  run_options opts;
  opts.log = &log;
  restored_state restored;
  if (auto e = prepare_checkpoints(cfg, opts, ctx, partitions, restored); !e.empty()) return e;
  const uint64_t e = ctx.restored_epoch;
  if (e == 0) return "checkpoint.dir " + cc.dir + " holds no complete checkpoint of eddy run";
  if (!ctx.replay.empty())
    return "eddy run's epoch log in " + cc.dir + " holds epoch(s) " +
           std::to_string(ctx.replay.begin()->first) + ".." +
           std::to_string(ctx.replay.rbegin()->first) + " after its newest checkpoint " +
           std::to_string(e) +
           " (their output was published, their state not): run eddy run on it until it takes "
           "its next checkpoint, stop it, then start the coordinator again";
  // The units: every partition's task, every shard; all the restored keys must be theirs.
  std::vector<std::pair<std::string, std::string>> unit_prefixes;  // unit, prefix
  for (int32_t p : partitions) unit_prefixes.emplace_back("p" + std::to_string(p), task_prefix(p));
  if (!cfg.aggregates.empty()) {
    auto plan = aggregation_plan::from_config(cfg, &err);
    if (!plan) return err;
    for (int s = 0; s < plan->shard_count; ++s)
      unit_prefixes.emplace_back("s" + std::to_string(s), shard_prefix(s));
  }
  size_t outside = 0;
  std::string first_outside;
  store_status st = ctx.db->scan_each("", [&](std::string_view k, std::string_view) {
    for (const auto& [_, prefix] : unit_prefixes)
      if (k.starts_with(prefix)) return true;
    if (outside++ == 0) first_outside = std::string(k.substr(0, 64));
    return true;
  });
  if (!st.ok()) return "checkpoint.local_dir: " + st.error;
  if (outside > 0)
    return "eddy run's checkpoint " + std::to_string(e) + " holds " + std::to_string(outside) +
           " key(s) of no partition or shard of this pipeline (the first: \"" + first_outside +
           "\"): it cannot be split into a cluster's units";
  cluster_manifest m;
  m.epoch = e;
  m.generation = 0;
  m.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  m.pipeline = cfg.name;
  m.compat = restored.compat;
  for (const auto& [unit, prefix] : unit_prefixes) {
    cluster_manifest_unit u;
    u.owner = "eddy run";
    if (is_task_unit(unit)) {
      const int32_t p = std::stoi(unit.substr(1));
      auto off = restored.offsets.find(p);
      if (off == restored.offsets.end()) continue;  // never read: a new unit for the cluster
      u.next_offset = off->second;
      u.counters = restored.counters[p];
      auto meta = ctx.db->get(prefix + "m", &st);
      int64_t next = -1, wm = INT64_MIN;
      record_counters c;
      if (meta && decode_task_meta(*meta, &next, &wm, &c)) u.watermark = wm;
    }
    const fs::path path = unit_file_path(cc.dir, unit, e, 0, unit_file_kind::snapshot);
    auto r = write_unit_snapshot(*ctx.db, prefix, path.string(), cc.sync);
    if (!r.ok()) return r.error;
    u.snapshot = fs::relative(path, cc.dir).string();
    u.bytes = r.bytes;
    u.crc32c = r.crc32c;
    m.units.emplace(unit, std::move(u));
  }
  // The commit point of the take-over: from here on the directory is a cluster's.
  if (auto werr = write_cluster_manifest(cc.dir, m, cc.sync); !werr.empty()) return werr;
  ctx.db.reset();
  std::error_code ec;
  fs::remove_all(local, ec);
  *epoch = e;
  *units = m.units.size();
  return {};
}

std::string task_prefix(int32_t partition) {
  return "t/" + task_key_partition_digits(partition) + "/";
}

std::string shard_prefix(int shard) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", shard);
  return std::string("s/") + buf + "/";
}

std::string encode_task_meta(int64_t next_offset, int64_t watermark, const record_counters& c) {
  return std::to_string(next_offset) + " " + std::to_string(watermark) + " " +
         std::to_string(c.in) + " " + std::to_string(c.out) + " " + std::to_string(c.filtered) +
         " " + std::to_string(c.dead_lettered) + " " + std::to_string(c.late);
}

bool decode_task_meta(const std::string& text, int64_t* next_offset, int64_t* watermark,
                      record_counters* c) {
  std::istringstream in(text);
  return static_cast<bool>(in >> *next_offset >> *watermark >> c->in >> c->out >> c->filtered >>
                           c->dead_lettered >> c->late);
}

run_result run_pipeline(const pipeline_config& cfg, const run_options& opts) {
  run_result result;
  auto ctx = std::make_shared<run_context>();
  ctx->cfg = &cfg;
  ctx->opts = opts;
  std::string err;
  auto fmt = time_formatter::for_zone(cfg.timezone, &err);
  if (!fmt) {
    result.error = "pipeline.timezone: " + err;
    return result;
  }
  ctx->fmt = *fmt;
  auto probe = record_processor::create(cfg, &err);
  if (!probe) {
    result.error = err;
    return result;
  }
  output_schema schema = probe->schema();
  if (!cfg.aggregates.empty()) {
    ctx->plan = aggregation_plan::from_config(cfg, &err);
    if (!ctx->plan) {
      result.error = err;
      return result;
    }
    schema = ctx->plan->schema;
  }
  {
    // What each sink is and what it guarantees (README "Checkpoints and recovery").
    std::ostream& out = opts.log ? *opts.log : std::cerr;
    write_sink_lines(out, cfg, "eddy: ");
    out.flush();
  }
  // Metadata first: assign() before it makes the "beginning" lookup wait on a retry timer.
  std::shared_ptr<kafka_consumer> consumer =
      kafka_consumer::create(cfg.source.bootstrap_servers, cfg.source.group_id,
                             consumer_queue_properties(cfg.source.max_in_flight_mb), &err);
  if (!consumer) {
    result.error = err;
    return result;
  }
  // --exit-at-end reads to the ends the partitions have now: a run that stops short says so.
  std::vector<int32_t> partitions;
  std::map<int32_t, std::pair<int64_t, int64_t>> bounds;  // [low, high) per partition
  if (!read_source_partitions(*consumer, cfg, opts.exit_at_end, &partitions, &bounds, &err)) {
    result.error = err;
    return result;
  }

  restored_state restored;
  if (cfg.checkpoint.enabled()) {
    // A cluster's coordinator (eddy coordinator, eddy run --as-cluster) running on this
    // directory. Here, not in prepare_checkpoints: a take-over runs that under the coordinator's
    // own lock, and opening and closing the lock file in its process would release it.
    if (auto pid = file_io::write_lock_holder(std::filesystem::path(cfg.checkpoint.dir) /
                                              "cluster" / "coordinator.lock")) {
      result.error = "checkpoint.dir " + cfg.checkpoint.dir +
                     " is in use by a cluster's coordinator (pid " + std::to_string(*pid) +
                     "; eddy coordinator or eddy run --as-cluster)";
      return result;
    }
    ctx->checkpointing = true;
    if (auto e = prepare_checkpoints(cfg, opts, *ctx, partitions, restored); !e.empty()) {
      result.error = e;
      return result;
    }
    ctx->first_epoch = restored.next_epoch;  // the coordinator starts there, too
  }
  const std::map<int32_t, int64_t> resumed_offsets = restored.offsets;

  // On the heap: a run abandoned with a thread still blocked leaves them running (threads_left).
  auto sys_cfg = std::make_unique<caf::actor_system_config>();
  if (opts.scheduler_threads > 0) sys_cfg->set("scheduler.max-threads", opts.scheduler_threads);
  sys_cfg->set("logger.verbosity", caf::atom("quiet"));
  register_message_types(*sys_cfg);
  auto sys = std::make_unique<caf::actor_system>(*sys_cfg);
  std::ostream& log = opts.log ? *opts.log : std::cerr;
  bool reported = false;
  {
    caf::scoped_actor self{*sys};
    auto coordinator = spawn_coordinator(*sys, cfg.source.topic, partitions);
    auto worker = sys->spawn(worker_actor, ctx, consumer, coordinator,
                             caf::actor_cast<caf::actor>(self), schema, std::move(restored));
    self->monitor(worker);
    self->monitor(coordinator);
    bool running = true;
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> failed_at, stop_at;
    auto on_done = [&](done_atom, worker_report& r, int64_t batches) {
      result.partitions = std::move(r.partitions);
      result.counters = std::move(r.counters);
      result.batches = batches;
      if (!r.error.empty() && result.error.empty()) result.error = r.error;
      running = false;
      reported = true;
    };
    auto on_failed = [&](failed_atom, const std::string& e) {
      // The poller ends every partition after a fatal error; keep waiting (bounded) for the sink
      // so that what was read is still written.
      if (result.error.empty()) result.error = e;
      if (!failed_at) failed_at = clock::now();
    };
    auto on_down = [&](caf::down_msg& dm) {
      if (is_fault(dm.reason))
        ctx->fault(std::string(dm.source == worker.address() ? "the worker" : "the coordinator") +
                   " ended with an error: " + sys->render(dm.reason));
    };
    // Wakes every 50 ms to watch for faults and for a drain that takes too long.
    while (running) {
      self->receive(
          on_done, on_failed, on_down, caf::after(std::chrono::milliseconds(50)) >> [] {});
      if (!running) break;
      const auto now = clock::now();
      if (ctx->faulted.load()) {
        // An actor died: the drain cannot complete (its input or output is gone). End now.
        const std::string fault = ctx->fault_message();
        result.error = result.error.empty() ? fault : result.error + "; " + fault;
        break;
      }
      if (!stop_at && opts.stop && opts.stop->load()) stop_at = now;
      if (stop_at && now - *stop_at >= opts.stop_timeout) {
        const std::string timeout =
            "the drain after the stop signal did not finish within " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(opts.stop_timeout).count()) +
            " s (--stop-timeout), so it was abandoned: records read but not yet written were "
            "not written" +
            (ctx->checkpointing ? " (the next run resumes from the last complete checkpoint)" : "");
        result.error = result.error.empty() ? timeout : result.error + "; " + timeout;
        break;
      }
      if (failed_at && now - *failed_at >= std::chrono::seconds(10)) break;
    }
    self->send_exit(worker, caf::exit_reason::user_shutdown);  // takes every actor of the run
    self->send(coordinator, stop_atom::value);
  }
  if (result.error.empty()) result.error = ctx->failure_message();
  // Every actor should end promptly now (the worker killed them).
  result.threads_left = end_actor_system(sys, sys_cfg, log);
  if (!reported) {
    // No final report from the sink: what it had taken, as far as it got.
    for (const auto& [p, progress] : ctx->progress()) {
      result.partitions.push_back(p);
      result.counters.push_back(progress.counters);
    }
  }
  if (opts.exit_at_end) {
    const auto progress = ctx->progress();
    for (int32_t p : partitions) {
      const auto [low, high] = bounds[p];
      auto it = progress.find(p);
      if (it != progress.end() && it->second.read_to_end()) continue;
      int64_t read_to = low;  // where reading started, if nothing was read
      if (it != progress.end() && it->second.next_offset >= 0)
        read_to = it->second.next_offset;
      else if (auto r = resumed_offsets.find(p); r != resumed_offsets.end() && r->second >= 0)
        read_to = r->second;
      else if (ctx->restored_epoch == 0 && cfg.source.starting_offsets == "latest")
        read_to = high;
      if (read_to < high) result.incomplete.push_back({p, read_to, high});
    }
  }
  result.max_in_flight_bytes = ctx->max_in_flight_bytes.load();
  result.credit_waits = ctx->credit_waits.load();
  result.max_unreturned_partials = ctx->max_unreturned_partials.load();
  result.dropped_after_close = ctx->dropped_after_close.load();
  result.ok = result.error.empty() && result.incomplete.empty();
  return result;
}

}  // namespace eddy
