// eddy demo — everything in one process: a development broker, sample ride-booking CDC data
// produced at a steady rate, and the example pipeline printing results on screen.
#include <chrono>
#include <iostream>
#include <thread>

#include <unistd.h>

#include "app/cli_checks.hpp"
#include "app/commands.hpp"
#include "app/demo_pipeline.hpp"
#include "app/local_cluster.hpp"
#include "app/produce.hpp"
#include "app/signals.hpp"
#include "model/pipeline_config.hpp"
#include "worker/kafka/dev_broker.hpp"
#include "worker/runtime/pipeline_runtime.hpp"

namespace eddy::app {

namespace {
struct demo_args {
  std::string pipeline = "windowed";
  double speedup = 12;
  double duration = 0;
  double rate = 50;
  int partitions = 4;
  std::string format = "unwrapped";
  double bad_ratio = 0.01;
  std::string output_dir;
};
}  // namespace

void add_demo_command(CLI::App& root) {
  auto args = std::make_shared<demo_args>();
  CLI::App* cmd = root.add_subcommand(
      "demo",
      "Run the example pipeline (deploy/pipelines/ncr_ride_bookings.toml) end to end in one\n"
      "process: an in-memory development broker, sample ride-booking CDC messages produced at\n"
      "a steady rate, and the pipeline's console output. Stops on Ctrl-C or after --duration.");
  cmd->add_option("--pipeline", args->pipeline,
                  "Example to run: windowed (count, avg booking value, p95 distance by vehicle\n"
                  "type per 1-minute window), changelog (completed bookings by pickup location,\n"
                  "updates retracting), clean (the cleaned rows themselves)")
      ->check(CLI::IsMember({"windowed", "changelog", "clean"}));
  cmd->add_option("--speedup", args->speedup,
                  "Event time runs this many times faster than the wall clock (default 12: a\n"
                  "1-minute window closes every 5 seconds)")
      ->check(number_range(1, 100000));
  cmd->add_option("--duration", args->duration, "Seconds to run (0 = until Ctrl-C)")
      ->check(number_range(0, 1e9));
  cmd->add_option("--rate", args->rate, "Sample messages per second")->check(number_range(1, 1e6));
  cmd->add_option("--partitions", args->partitions, "Partitions of the demo topic")
      ->check(int_range(1, 64));
  cmd->add_option("--format", args->format, "Message shape: unwrapped|envelope|schema")
      ->check(CLI::IsMember({"unwrapped", "envelope", "schema"}));
  cmd->add_option("--bad-ratio", args->bad_ratio, "Share of malformed messages (dead letters)")
      ->check(number_range(0, 1));
  cmd->add_option("--output-dir", args->output_dir,
                  "Where dead letters go (default: a fresh directory under /tmp)");
  cmd->callback([args] {
    signal_watch signals;
    const char* text = args->pipeline == "clean"       ? example_clean_toml
                       : args->pipeline == "changelog" ? example_changelog_toml
                                                       : example_windowed_toml;
    std::string file =
        args->pipeline == "clean" ? "ncr_ride_bookings.toml" : "ncr_" + args->pipeline + ".toml";
    auto parsed = parse_pipeline_config(text, file);
    if (!parsed.config) throw CLI::RuntimeError("built-in example pipeline: " + parsed.error, 1);
    pipeline_config cfg = std::move(*parsed.config);
    // Event time runs --speedup times faster than the clock: it is meant to run ahead of it.
    cfg.window.max_event_time_skew_us = 0;

    std::string err;
    auto broker = dev_broker::start(1, {{cfg.source.topic, args->partitions}}, 0, &err);
    if (!broker) throw CLI::RuntimeError("development broker: " + err, 1);
    cfg.source.bootstrap_servers = broker->bootstrap();
    std::string out_dir = args->output_dir;
    if (out_dir.empty()) out_dir = "/tmp/eddy-demo-" + std::to_string(::getpid());
    cfg.dead_letter.path = out_dir + "/dead-letter";
    for (auto& s : cfg.sinks)
      if (s.kind == sink_kind::file) s.path = out_dir + "/" + s.path;

    std::cerr << "eddy demo: pipeline deploy/pipelines/" << file << ", development broker at "
              << broker->bootstrap() << ", topic " << cfg.source.topic << " (" << args->partitions
              << " partitions), " << args->rate << " msg/s, event time " << args->speedup
              << "x faster than the clock, dead letters in " << cfg.dead_letter.path << "\n"
              << "Ctrl-C to stop; SIGUSR1 prints counters.\n";

    produce_options po;
    po.bootstrap = broker->bootstrap();
    po.topic = cfg.source.topic;
    po.count = 0;
    po.rate = args->rate;
    po.format = *parse_sample_format(args->format);
    po.bad_ratio = args->bad_ratio;
    po.start_time_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    po.event_spacing_us = static_cast<int64_t>(1e6 * args->speedup / args->rate);
    std::atomic<bool> producer_stop{false};
    std::string produce_error;
    std::thread producer([&] { (void)run_produce(po, &producer_stop, &produce_error); });
    std::thread timer;
    if (args->duration > 0)
      timer = std::thread([&] {
        signals.wait(args->duration);
        signals.stop = true;
      });

    run_options opts;
    opts.stop = &signals.stop;
    opts.stats_requested = &signals.stats;
    run_result r = run_in_process(cfg, std::string(), opts, false, false);
    signals.stop = true;
    producer_stop = true;
    producer.join();
    if (timer.joinable()) timer.join();
    if (!r.partitions.empty()) print_counters(std::cerr, r.partitions, r.counters);
    print_dropped_after_close(std::cerr, r);
    if (!r.ok) throw CLI::RuntimeError(r.error, 1);
    if (!produce_error.empty()) throw CLI::RuntimeError("producer: " + produce_error, 1);
  });
}

}  // namespace eddy::app
