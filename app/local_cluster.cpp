#include "app/local_cluster.hpp"

#include <caf/all.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "actors/messages.hpp"
#include "actors/type_registry.hpp"
#include "app/cluster_common.hpp"
#include "coordinator/cluster_coordinator.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "model/time_format.hpp"
#include "worker/checkpoint/checkpoint_compat.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/runtime/worker_node.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/publish_dispatch.hpp"
#include "worker/window/windowing.hpp"

namespace eddy::app {

namespace {

namespace fs = std::filesystem;

/// The partitions and their cumulative counters in the newest committed manifest (none: empty).
void counters_of_last_commit(const pipeline_config& cfg, std::vector<int32_t>* partitions,
                             std::vector<record_counters>* counters,
                             std::map<int32_t, int64_t>* next_offsets) {
  std::vector<std::string> warnings;
  auto m = latest_complete(cfg.checkpoint.dir, &warnings);
  if (!m) return;
  std::map<int32_t, const cluster_manifest_unit*> tasks;
  for (const auto& [name, u] : m->units)
    if (is_task_unit(name)) tasks[std::stoi(name.substr(1))] = &u;
  for (const auto& [p, u] : tasks) {
    partitions->push_back(p);
    counters->push_back(u->counters);
    if (next_offsets) (*next_offsets)[p] = u->next_offset;
  }
}

/// Swallows what is written to it (the membership lines of a run without checkpoints).
class null_buffer : public std::streambuf {
 protected:
  int_type overflow(int_type c) override { return traits_type::not_eof(c); }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

}  // namespace

run_result run_as_cluster(const pipeline_config& cfg, const std::string& config_path,
                          const run_options& opts, bool take_over) {
  run_result result;
  std::ostream& log = opts.log ? *opts.log : std::cerr;
  const checkpoint_config& cc = cfg.checkpoint;
  const bool checkpointed = cc.enabled();
  // The checks eddy run makes before it starts (the worker node would fail on them later).
  std::string err;
  if (!time_formatter::for_zone(cfg.timezone, &err)) {
    result.error = "pipeline.timezone: " + err;
    return result;
  }
  if (!record_processor::create(cfg, &err)) {
    result.error = err;
    return result;
  }
  int32_t shards = 0;
  if (!cfg.aggregates.empty()) {
    auto plan = aggregation_plan::from_config(cfg, &err);
    if (!plan) {
      result.error = err;
      return result;
    }
    shards = plan->shard_count;
  }
  if (checkpointed) lock_cluster_checkpoints(cfg);  // before --reset removes another's files
  write_sink_lines(log, cfg, "eddy: ");
  const fs::path local = checkpointed ? fs::path(local_dir_of(cc)) : fs::path();
  std::error_code ec;
  if (opts.reset && checkpointed) {
    fs::remove_all(cc.dir, ec);
    if (ec) {
      result.error = "--reset: cannot remove " + cc.dir + ": " + ec.message();
      return result;
    }
    fs::remove_all(local, ec);
    log << "eddy: --reset: removed the checkpoints in " << cc.dir
        << "; starting over as a new pipeline\n";
    lock_cluster_checkpoints(cfg);  // the lock file went with the directory
  }
  const auto compat = compat_fingerprint(cfg);
  // Throws for a directory it cannot continue.
  const bool convert = checkpointed && check_checkpoint_dir(cfg, compat, take_over);

  auto consumer =
      kafka_consumer::create(cfg.source.bootstrap_servers, cfg.source.group_id, {}, &err);
  std::vector<int32_t> partitions;
  std::map<int32_t, std::pair<int64_t, int64_t>> bounds;  // --exit-at-end: [low, high)
  if (!consumer ||
      !read_source_partitions(*consumer, cfg, opts.exit_at_end, &partitions, &bounds, &err)) {
    result.error = err;
    return result;
  }
  std::map<int32_t, int64_t> end_offsets;
  for (const auto& [p, range] : bounds) end_offsets[p] = range.second;
  consumer.reset();
  if (convert) {
    uint64_t epoch = 0;
    size_t units = 0;
    if (auto e = take_over_run_checkpoints(cfg, partitions, log, &epoch, &units); !e.empty()) {
      result.error = "--take-over-run: " + e;
      return result;
    }
    log << "eddy: took over eddy run's checkpoint " << epoch << " as " << units << " units\n";
  }
  // Without checkpoints the node needs a local dir only to run units at all: nothing goes there.
  const fs::path state_dir = checkpointed ? local / "coordinator" : fs::path();
  fs::path worker_dir = checkpointed ? local / "worker" : fs::path();
  std::unique_ptr<fs::path, void (*)(fs::path*)> scratch(nullptr, [](fs::path* d) {
    std::error_code rec;
    fs::remove_all(*d, rec);
    delete d;
  });
  if (!checkpointed) {
    std::string tmpl = (fs::temp_directory_path(ec) / "eddy-run-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      result.error = "cannot create a temporary directory " + tmpl + ": " + std::strerror(errno);
      return result;
    }
    scratch.reset(new fs::path(tmpl));
    worker_dir = tmpl;
  }
  for (const auto& d : {state_dir, worker_dir}) {
    if (d.empty()) continue;
    fs::create_directories(d, ec);
    if (ec) {
      result.error = "checkpoint.local_dir: cannot create " + d.string() + ": " + ec.message();
      return result;
    }
  }
  // The node takes `cfg` as it is (overrides included); the text is what a joining worker of
  // another process would get (none join here).
  std::ostringstream text;
  if (!config_path.empty()) text << std::ifstream(config_path).rdbuf();

  // On the heap: a run abandoned with a thread still blocked leaves them running (threads_left).
  auto sys_cfg = std::make_unique<caf::actor_system_config>();
  if (opts.scheduler_threads > 0) sys_cfg->set("scheduler.max-threads", opts.scheduler_threads);
  sys_cfg->set("logger.verbosity", caf::atom("quiet"));
  register_message_types(*sys_cfg);
  auto sys = std::make_unique<caf::actor_system>(*sys_cfg);

  cluster_coordinator_options copts;
  copts.pipeline_name = cfg.name;
  copts.compat = compat;
  copts.pipeline_toml = text.str();
  copts.bootstrap = cfg.source.bootstrap_servers;
  copts.partitions = partitions;
  copts.shards = shards;
  copts.state_dir = state_dir;
  copts.checkpoint_dir = checkpointed ? fs::path(cc.dir) : fs::path();
  copts.checkpoint_interval_ms = cc.interval_ms;
  copts.output_sync = cc.sync;
  copts.output_dirs = staged_output_dirs(cfg);
  auto publishers = std::make_shared<std::vector<std::unique_ptr<sink>>>(publishing_sinks(cfg));
  copts.publish = [publishers](const std::vector<std::string>& paths, bool sync) {
    return publish_to_sinks(*publishers, paths, sync);
  };
  copts.exit_at_end = opts.exit_at_end;
  copts.end_offsets = end_offsets;
  copts.log = &log;
  // The coordinator's exception, recorded before its end reaches anyone: the node may see it
  // first (its join request answered with the coordinator's exit reason), and it is the run's.
  auto coordinator_fault = std::make_shared<std::pair<std::mutex, std::string>>();
  copts.on_exception = [coordinator_fault](const std::string& why) {
    std::lock_guard<std::mutex> lock(coordinator_fault->first);
    if (coordinator_fault->second.empty()) coordinator_fault->second = why;
  };
  auto coordinator_exception = [coordinator_fault] {
    std::lock_guard<std::mutex> lock(coordinator_fault->first);
    return coordinator_fault->second;
  };
  // Without checkpoints one process has no membership to speak of: no generations, no epochs.
  // One stream per actor (each writes from its own thread); static: an actor left blocked at
  // the end (threads_left) may still write.
  static null_buffer nothing;
  static std::ostream coordinator_quiet(&nothing), node_quiet(&nothing);
  if (!checkpointed) copts.membership_log = &coordinator_quiet;
  worker_node_options nopts;
  nopts.name = "local";
  nopts.host = this_host();
  nopts.coordinator_label = "in this process";
  nopts.local_dir = worker_dir;
  nopts.log = &log;
  nopts.run = &opts;
  nopts.pipeline = std::make_shared<const pipeline_config>(cfg);
  if (!checkpointed) nopts.membership_log = &node_quiet;
  auto report = std::make_shared<unit_host_report>();
  nopts.report = report;
  auto outcome = std::make_shared<worker_node_outcome>();

  using clock = std::chrono::steady_clock;
  {
    caf::scoped_actor self{*sys};
    auto coordinator = spawn_cluster_coordinator(*sys, std::move(copts));
    auto node = spawn_worker_node(*sys, coordinator, std::move(nopts), outcome);
    self->monitor(coordinator);
    self->monitor(node);
    bool node_done = false, coordinator_done = false;
    std::optional<clock::time_point> stop_at, coordinator_done_at;
    while (!(node_done && coordinator_done)) {
      self->receive(
          [&](caf::down_msg& dm) {
            if (dm.source == node.address()) {
              node_done = true;
              // An exception in the node (its own message, worker_node.cpp).
              if (is_fault(dm.reason) && outcome->how == worker_node_outcome::kind::running &&
                  result.error.empty())
                result.error = reason_text(*sys, dm.reason);
              return;
            }
            coordinator_done = true;
            if (dm.reason) {
              // An exception names the coordinator itself ("cluster coordinator failed: ...").
              std::string e = coordinator_exception();
              result.error = !e.empty() ? e
                                        : "the coordinator ended with an error: " +
                                              reason_text(*sys, dm.reason);
            }
          },
          caf::after(std::chrono::milliseconds(50)) >> [] {});
      if (node_done && outcome->how != worker_node_outcome::kind::left) {
        if (std::string e = coordinator_exception(); !e.empty()) result.error = e;
        // A unit's failure is the run's, as eddy run says it ("sink failed: ...").
        if (result.error.empty())
          result.error = !outcome->units_error.empty()
                             ? outcome->units_error
                             : "the worker ended: " +
                                   (outcome->detail.empty() ? "no reason given" : outcome->detail);
        break;
      }
      if (coordinator_done && !result.error.empty()) break;
      const auto now = clock::now();
      // The coordinator quits once the node's leave is answered: the node's end follows.
      if (coordinator_done && !coordinator_done_at) coordinator_done_at = now;
      if (coordinator_done && !node_done && now - *coordinator_done_at > std::chrono::seconds(5)) {
        result.error = "the worker did not end within 5 s after the coordinator ended";
        break;
      }
      if (!stop_at && opts.stop && opts.stop->load()) {
        stop_at = now;
        // With checkpoints the coordinator's last epoch; without, the poller drains by itself.
        if (checkpointed) self->send(coordinator, stop_atom::value);
      }
      if (stop_at && now - *stop_at >= opts.stop_timeout) {
        result.error =
            "the stop did not finish within " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(opts.stop_timeout).count()) +
            " s (--stop-timeout), so it was abandoned: the next run resumes from the last "
            "committed epoch";
        break;
      }
      // SIGUSR1 (opts.stats_requested): the sink prints its counters at its next trigger.
    }
    self->send_exit(node, caf::exit_reason::user_shutdown);
    self->send_exit(coordinator, caf::exit_reason::user_shutdown);
  }
  // As eddy run: every actor should end promptly now; one blocked in I/O is left behind.
  result.threads_left = end_actor_system(sys, sys_cfg, log);
  std::map<int32_t, int64_t> next_offsets;
  std::set<int32_t> read_to_end;
  if (checkpointed) {
    counters_of_last_commit(cfg, &result.partitions, &result.counters, &next_offsets);
  } else if (!report->partitions.empty()) {  // the sink's final report
    result.partitions = report->partitions;
    result.counters = report->counters;
    next_offsets = report->next_offsets;
    read_to_end = report->read_to_end;
  } else if (auto ctx = report->live()) {
    // No final report (a fault, an abandoned drain): what the sink had taken, as far as it got.
    for (const auto& [p, progress] : ctx->progress()) {
      result.partitions.push_back(p);
      result.counters.push_back(progress.counters);
      next_offsets[p] = progress.next_offset;
      if (progress.read_to_end()) read_to_end.insert(p);
    }
  }
  // This process's figures (eddy run's are its process's too), whatever the counters' source.
  result.batches = report->batches->load();
  result.max_in_flight_bytes = report->max_in_flight_bytes.load();
  result.credit_waits = report->credit_waits.load();
  result.max_unreturned_partials = report->max_unreturned_partials.load();
  result.dropped_after_close = report->dropped_after_close.load();
  if (opts.exit_at_end)
    for (int32_t p : partitions) {
      if (read_to_end.count(p)) continue;
      const auto [low, high] = bounds[p];
      int64_t read_to = low;
      if (auto it = next_offsets.find(p); it != next_offsets.end() && it->second >= 0)
        read_to = it->second;
      else if (cfg.source.starting_offsets == "latest")
        read_to = high;
      if (read_to < high) result.incomplete.push_back({p, read_to, high});
    }
  result.ok = result.error.empty() && result.incomplete.empty();
  return result;
}

run_result run_in_process(const pipeline_config& cfg, const std::string& config_path,
                          const run_options& opts, bool as_cluster, bool take_over) {
  // Without [checkpoint] there is no layout to keep: every run takes the cluster's code path.
  if (as_cluster || !cfg.checkpoint.enabled())
    return run_as_cluster(cfg, config_path, opts, take_over);
  return run_pipeline(cfg, opts);
}

}  // namespace eddy::app
