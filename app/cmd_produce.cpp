// cmd_produce.cpp — `eddy produce`: writes generated ride-booking CDC messages to Kafka.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/cli_checks.hpp"
#include "app/commands.hpp"
#include "app/produce.hpp"
#include "worker/window/windowing.hpp"

namespace eddy::app {
namespace {

/// --disorder-ms at most ten years (the generator works in microseconds).
constexpr int64_t max_disorder_ms = 3650LL * 86'400'000;

struct produce_cli {
  produce_options options;
  std::string format = "unwrapped";
  std::vector<std::string> properties;
};

/// Sets `stop` on SIGINT/SIGTERM for as long as it lives. The signals are blocked in every
/// thread started while it lives and taken by one thread in sigwait().
class stop_on_signal {
 public:
  explicit stop_on_signal(std::atomic<bool>& stop) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
    waiter_ = std::thread([this, &stop] {
      int sig = 0;
      while (sigwait(&signals_, &sig) != 0) {
      }
      done_.store(true);
      stop.store(true);
    });
  }
  ~stop_on_signal() {
    if (!done_.exchange(true)) {
      // Wake the waiter with a signal only it can take (blocked everywhere else).
      pthread_kill(waiter_.native_handle(), SIGTERM);
    }
    waiter_.join();
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  stop_on_signal(const stop_on_signal&) = delete;
  stop_on_signal& operator=(const stop_on_signal&) = delete;

 private:
  sigset_t signals_{};
  sigset_t previous_{};
  std::atomic<bool> done_{false};
  std::thread waiter_;
};

void run(produce_cli& cli) {
  // IsMember has already checked the name.
  cli.options.format = parse_sample_format(cli.format).value_or(sample_format::unwrapped);
  for (const auto& p : cli.properties) {  // KEY=VALUE, checked by the option's validator
    const size_t eq = p.find('=');
    cli.options.producer_config.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  std::atomic<bool> stop{false};
  produce_result result;
  std::string error;
  {
    stop_on_signal guard(stop);
    result = run_produce(cli.options, &stop, &error);
  }
  std::cout << summary_json(result) << std::endl;
  if (!result.ok) throw CLI::RuntimeError("produce: " + error, 1);
}

}  // namespace

void add_produce_command(CLI::App& root) {
  auto cli = std::make_shared<produce_cli>();
  produce_options& o = cli->options;
  CLI::App* cmd = root.add_subcommand(
      "produce",
      "Write generated ride-booking change events to a Kafka topic, shaped as Debezium writes "
      "them for public.business_ncr_ride_bookings (creates, snapshot reads, updates, deletes "
      "followed by tombstones, and optionally malformed records). The stream is deterministic "
      "for a given --seed and options.");
  cmd->footer(
      "Prints one JSON line on stdout at the end: {\"produced\": N, \"ops\": {\"c\": .., \"r\": "
      ".., \"u\": .., \"d\": ..}, \"tombstones\": T, \"bad\": B, \"seconds\": S, \"rate\": R}.\n"
      "SIGINT/SIGTERM stops early; what was produced so far is still flushed and reported.");
  cmd->add_option("--bootstrap", o.bootstrap, "Kafka bootstrap servers, HOST:PORT[,...]")
      ->required();
  cmd->add_option("--topic", o.topic, "Topic to write to")->capture_default_str();
  cmd->add_option("--count", o.count,
                  "Kafka messages to write, tombstones and malformed records included "
                  "(0 = until SIGINT/SIGTERM)")
      ->check(int_range<uint64_t>(0, UINT64_MAX))
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "Messages per second (0 = as fast as possible)")
      ->check(number_range(0, 1e9))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the generated stream")
      ->check(int_range<uint64_t>(0, UINT64_MAX))
      ->capture_default_str();
  cmd->add_option("--format", cli->format,
                  "Value shape: unwrapped (ExtractNewRecordState), envelope (before/after/"
                  "source/op), schema (JsonConverter schemas.enable=true)")
      ->check(CLI::IsMember({"unwrapped", "envelope", "schema"}))
      ->capture_default_str();
  cmd->add_option("--disorder-ms", o.disorder_ms,
                  "Move each event time back by a random 0..N ms (out-of-order events; at most "
                  "3650 days)")
      ->check(int_range<int64_t>(0, max_disorder_ms))
      ->capture_default_str();
  cmd->add_option("--bad-ratio", o.bad_ratio,
                  "Fraction of messages (0..1) that are malformed records for the dead-letter "
                  "path")
      ->check(number_range(0, 1))
      ->capture_default_str();
  cmd->add_option("--compression", o.compression, "Producer compression codec")
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}))
      ->capture_default_str();
  cmd->add_option("--partition", o.partition,
                  "Write every message to this partition (-1 = by key hash, as Debezium)")
      ->check(int_range<int32_t>(-1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--start-time-us", o.start_time_us,
                  "Event time of the first message, microseconds since the epoch, within what "
                  "windows accept (years 0001 to 9999)")
      ->check(int_range<int64_t>(min_event_time_us, max_event_time_us))
      ->capture_default_str();
  cmd->add_option("-X,--producer-property", cli->properties,
                  "Extra librdkafka producer property KEY=VALUE (repeatable), e.g. linger.ms=50")
      ->type_name("KEY=VALUE")
      ->check(CLI::Validator(
          [](std::string& kv) {
            const size_t eq = kv.find('=');
            return eq == std::string::npos || eq == 0 ? "expected KEY=VALUE, got '" + kv + "'"
                                                      : std::string();
          },
          "", "property"));
  cmd->callback([cli] { run(*cli); });
}

}  // namespace eddy::app
