// eddy run — runs a pipeline file against Kafka until stopped (or the topic's end).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/commands.hpp"
#include "app/signals.hpp"
#include "worker/pipeline_config.hpp"
#include "worker/runtime/pipeline_runtime.hpp"

namespace eddy::app {

namespace {

struct run_args {
  std::string config;
  std::string bootstrap;
  std::string summary_json;
  bool exit_at_end = false;
  bool reset = false;
};

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
  out << "{\"ok\": " << (r.ok ? "true" : "false") << ", \"batches\": " << r.batches
      << ", \"in\": " << t.in << ", \"out\": " << t.out << ", \"filtered\": " << t.filtered
      << ", \"dead_lettered\": " << t.dead_lettered << ", \"late\": " << t.late
      << ", \"max_in_flight_bytes\": " << r.max_in_flight_bytes
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
      "Ctrl-C/SIGTERM (draining what was read first) or, with --exit-at-end, until every\n"
      "partition reached the end it had when eddy started. SIGUSR1 prints the counters.\n"
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
  cmd->add_option("--summary-json", args->summary_json,
                  "Write the final counters as JSON to this file (checked before the run starts:\n"
                  "exit 2 when it cannot be written; exit 1 when writing it at the end fails)");
  cmd->callback([args] {
    auto loaded = load_pipeline_config(args->config);
    if (!loaded.config) throw CLI::RuntimeError(loaded.error, 2);
    pipeline_config cfg = std::move(*loaded.config);
    if (!args->bootstrap.empty()) {
      // Kafka sinks that defaulted to the source's brokers follow the override too.
      for (auto& sink : cfg.sinks)
        if (sink.kind == sink_kind::kafka && sink.bootstrap_servers == cfg.source.bootstrap_servers)
          sink.bootstrap_servers = args->bootstrap;
      cfg.source.bootstrap_servers = args->bootstrap;
    }
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
    run_result r = run_pipeline(cfg, opts);
    if (!r.partitions.empty()) print_counters(std::cerr, r.partitions, r.counters);
    print_dropped_after_close(std::cerr, r);
    std::string summary_error;
    if (!args->summary_json.empty()) summary_error = write_summary(args->summary_json, r);
    if (!r.ok) {
      if (!summary_error.empty()) std::cerr << "eddy: " << summary_error << "\n";
      throw CLI::RuntimeError(r.error, 1);
    }
    if (!summary_error.empty()) throw CLI::RuntimeError(summary_error, 1);
  });
}

}  // namespace eddy::app
