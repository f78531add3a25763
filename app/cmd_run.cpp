// eddy run — runs a pipeline file against Kafka until stopped (or the topic's end).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/commands.hpp"
#include "app/local_cluster.hpp"
#include "app/signals.hpp"
#include "model/pipeline_config.hpp"
#include "worker/runtime/pipeline_runtime.hpp"

namespace eddy::app {

namespace {

struct run_args {
  std::string config;
  std::string bootstrap;
  std::string summary_json;
  bool exit_at_end = false;
  bool reset = false;
  bool as_cluster = false;
  bool take_over_run = false;
  double stop_timeout = 60;
  double max_unreachable = 0;
};

/// `eddy run`'s exit status for a --exit-at-end run that ended before the end offsets.
constexpr int k_exit_incomplete = 3;

/// A JSON string literal of `s`.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

/// "" when --summary-json `path` can be written (checked before the run starts: a file in an
/// existing directory that we may create or write; a file created here is removed again),
/// otherwise why not.
std::string check_summary_path(const std::string& path) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return "--summary-json " + path + ": cannot write it: " + std::strerror(errno);
  ::close(fd);
  if (!existed) std::filesystem::remove(path, ec);
  return {};
}

/// Writes the summary; "" on success, otherwise why it failed.
std::string write_summary(const std::string& path, const run_result& r) {
  std::ofstream out(path);
  if (!out) return "--summary-json " + path + ": cannot write it: " + std::strerror(errno);
  auto t = r.total();
  out << "{\"ok\": " << (r.ok ? "true" : "false");
  if (!r.error.empty()) out << ", \"error\": " << json_string(r.error);
  if (!r.incomplete.empty()) {
    out << ", \"incomplete\": {";
    for (size_t i = 0; i < r.incomplete.size(); ++i)
      out << (i ? ", " : "") << "\"" << r.incomplete[i].partition
          << "\": {\"read_to\": " << r.incomplete[i].read_to
          << ", \"end_offset\": " << r.incomplete[i].end_offset << "}";
    out << "}";
  }
  out << ", \"batches\": " << r.batches << ", \"in\": " << t.in << ", \"out\": " << t.out
      << ", \"filtered\": " << t.filtered << ", \"dead_lettered\": " << t.dead_lettered
      << ", \"late\": " << t.late << ", \"max_in_flight_bytes\": " << r.max_in_flight_bytes
      << ", \"credit_waits\": " << r.credit_waits
      << ", \"max_unreturned_partials\": " << r.max_unreturned_partials
      << ", \"dropped_after_close\": " << r.dropped_after_close << ", \"partitions\": {";
  for (size_t i = 0; i < r.partitions.size(); ++i) {
    const auto& c = r.counters[i];
    out << (i ? ", " : "") << "\"" << r.partitions[i] << "\": {\"in\": " << c.in
        << ", \"out\": " << c.out << ", \"filtered\": " << c.filtered
        << ", \"dead_lettered\": " << c.dead_lettered << ", \"late\": " << c.late << "}";
  }
  out << "}}\n";
  out.close();
  if (!out) return "--summary-json " + path + ": writing it failed: " + std::strerror(errno);
  return {};
}

}  // namespace

void add_run_command(CLI::App& root) {
  auto args = std::make_shared<run_args>();
  CLI::App* cmd = root.add_subcommand(
      "run",
      "Run a pipeline: read the Kafka topic named in the pipeline file, decode and clean each\n"
      "Debezium record, filter, and write results to the configured sinks. Runs until\n"
      "Ctrl-C/SIGTERM (draining what was read first, for at most --stop-timeout; a second\n"
      "signal exits at once) or, with --exit-at-end, until every partition reached the end it\n"
      "had when eddy started (stopped before that: exit status 3). SIGUSR1 prints the counters.\n"
      "A failing actor ends the run with its error (exit status 1).\n"
      "With a [checkpoint] table, state and offsets are checkpointed every interval and a\n"
      "restarted run resumes from the last complete checkpoint (file output exactly once).");
  cmd->add_option("-c,--config", args->config, "Pipeline file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--bootstrap", args->bootstrap,
                  "Kafka bootstrap servers, overriding source.bootstrap_servers");
  cmd->add_flag("--exit-at-end", args->exit_at_end,
                "Stop when every partition reached its end (like kcat -e)");
  cmd->add_flag("--reset", args->reset,
                "Delete the pipeline's checkpoints (checkpoint.dir) and start over as a new\n"
                "pipeline: state, offsets and staged output are dropped; published output stays");
  auto as_cluster = cmd->add_flag(
      "--as-cluster", args->as_cluster,
      "Run on the cluster's code path: the coordinator and one worker of `eddy coordinator`\n"
      "and `eddy worker` in this process, no network. With [checkpoint] its checkpoint.dir\n"
      "is a cluster's, which a coordinator with workers can continue (and the reverse), and\n"
      "Ctrl-C/SIGTERM makes the next epoch to commit the last (what was read after it is read\n"
      "again by the next run). A pipeline without [checkpoint] always runs this way");
  cmd->add_flag("--take-over-run", args->take_over_run,
                "With --as-cluster: checkpoint.dir holds the checkpoints of `eddy run` (stopped):\n"
                "continue from its newest one on the cluster's path (as eddy coordinator\n"
                "--take-over-run); eddy run without --as-cluster refuses the directory afterwards")
      ->needs(as_cluster);
  cmd->add_option("--summary-json", args->summary_json,
                  "Write the final counters as JSON to this file (checked before the run starts:\n"
                  "exit 2 when it cannot be written; exit 1 when writing it at the end fails)");
  cmd->add_option("--stop-timeout", args->stop_timeout,
                  "Seconds the drain after Ctrl-C/SIGTERM may take; then the run is abandoned\n"
                  "(exit status 1, what was read but not written is not written)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  cmd->add_option("--max-unreachable", args->max_unreachable,
                  "Fail the run (exit status 1) when the Kafka brokers have been unreachable this\n"
                  "many seconds (0 = keep retrying; eddy says every 10 s that they are down)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  cmd->callback([args] {
    auto loaded = load_pipeline_config(args->config);
    if (!loaded.config) throw CLI::RuntimeError(loaded.error, 2);
    pipeline_config cfg = std::move(*loaded.config);
    apply_bootstrap_override(cfg, args->bootstrap);
    if (cfg.source.bootstrap_servers.empty())
      throw CLI::RuntimeError("no Kafka bootstrap servers: set source.bootstrap_servers in " +
                                  args->config + " or pass --bootstrap",
                              2);
    if (!args->summary_json.empty()) {
      if (std::string e = check_summary_path(args->summary_json); !e.empty())
        throw CLI::RuntimeError(e, 2);
    }
    signal_watch signals;
    run_options opts;
    opts.exit_at_end = args->exit_at_end;
    opts.reset = args->reset;
    if (args->reset && !cfg.checkpoint.enabled())
      throw CLI::RuntimeError(
          "--reset: " + args->config + " has no [checkpoint] dir, so there is nothing to reset", 2);
    opts.stop = &signals.stop;
    opts.stats_requested = &signals.stats;
    opts.stop_timeout = std::chrono::milliseconds(static_cast<int64_t>(args->stop_timeout * 1000));
    opts.max_unreachable =
        std::chrono::milliseconds(static_cast<int64_t>(args->max_unreachable * 1000));
    // The run bounds its own shutdown (stop_timeout, then 5 s for its threads); this is for a
    // main thread stuck elsewhere (a restore blocked in I/O, say).
    signals.exit_after_stop(opts.stop_timeout + std::chrono::seconds(15),
                            [path = args->summary_json] {
                              if (path.empty()) return;
                              std::ofstream(path) << "{\"ok\": false, \"error\": "
                                                     "\"still running after the stop signal\"}\n";
                            });
    if (args->take_over_run && !cfg.checkpoint.enabled())
      throw CLI::RuntimeError("--take-over-run: " + args->config +
                                  " has no [checkpoint] dir, so there is nothing to take over",
                              2);
    run_result r = run_in_process(cfg, args->config, opts, args->as_cluster, args->take_over_run);
    if (!r.partitions.empty()) print_counters(std::cerr, r.partitions, r.counters);
    print_dropped_after_close(std::cerr, r);
    print_incomplete(std::cerr, r);
    std::string summary_error;
    if (!args->summary_json.empty()) summary_error = write_summary(args->summary_json, r);
    int status = !r.error.empty() ? 1 : !r.incomplete.empty() ? k_exit_incomplete : 0;
    if (status == 0 && !summary_error.empty()) status = 1;
    if (r.threads_left) {
      // Actor threads are still running (blocked): exit without destroying what they use.
      if (!r.error.empty()) std::cerr << "eddy: " << r.error << "\n";
      if (!summary_error.empty()) std::cerr << "eddy: " << summary_error << "\n";
      std::cerr.flush();
      std::cout.flush();
      std::_Exit(status);
    }
    if (!r.error.empty()) {
      if (!summary_error.empty()) std::cerr << "eddy: " << summary_error << "\n";
      throw CLI::RuntimeError(r.error, 1);
    }
    if (!summary_error.empty()) throw CLI::RuntimeError(summary_error, 1);
    if (status != 0) throw CLI::RuntimeError("", status);
  });
}

}  // namespace eddy::app
