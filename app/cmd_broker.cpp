// cmd_broker.cpp — `eddy broker`: runs the in-memory development Kafka broker until SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "app/cli_checks.hpp"
#include "app/commands.hpp"
#include "worker/kafka/dev_broker.hpp"

namespace eddy::app {
namespace {

struct broker_cli {
  int brokers = 1;
  std::vector<std::string> topics;
  int port = 0;
};

void run_broker(const broker_cli& o) {
  std::vector<topic_spec> topics;
  for (const auto& text : o.topics) {
    std::string error;
    auto spec = parse_topic_spec(text, &error);
    if (!spec) throw CLI::RuntimeError("--topic: " + error, 2);
    topics.push_back(std::move(*spec));
  }

  // Block the stop signals before any thread exists, so librdkafka's and the forwarder's threads
  // inherit the mask and the signals can only be taken by sigwait() below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);

  std::string error;
  auto broker = dev_broker::start(o.brokers, topics, o.port, &error);
  if (!broker) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw CLI::RuntimeError("broker: " + error, 1);
  }
  std::cout << "bootstrap=" << broker->bootstrap() << std::endl;
  std::cerr << "eddy broker: " << o.brokers << " in-memory broker(s) ready (development only); "
            << "SIGINT/SIGTERM stops it\n";

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  broker.reset();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace

void add_broker_command(CLI::App& root) {
  auto o = std::make_shared<broker_cli>();
  CLI::App* cmd = root.add_subcommand(
      "broker",
      "Run an in-memory Kafka broker for development, tests and demos (librdkafka's mock "
      "cluster). NOT for production: data lives only in memory, each partition keeps only about "
      "5 MiB (or 100k batches) and silently drops older messages, transactions are not real "
      "(nothing is ever aborted) and consumer-group rebalances are slow. Use a real Kafka cluster "
      "in production.");
  cmd->footer(
      "Prints one line `bootstrap=HOST:PORT,...` on stdout when ready, then serves until SIGINT "
      "or SIGTERM and exits 0.\n"
      "Brokers listen on random 127.0.0.1 ports (librdkafka 2.0.2 cannot choose them). --port "
      "adds a fixed bootstrap address on 127.0.0.1 that forwards to broker 1; clients learn the "
      "brokers' real ports from its metadata, so it works for clients on this host only.\n"
      "Topics not declared with --topic are created with 4 partitions when a producer first "
      "asks for them. Compress with zstd (`eddy produce --compression zstd`, the default) to fit "
      "about 10x more messages per partition.");
  cmd->add_option("--brokers", o->brokers, "Number of brokers (1..16)")
      ->check(int_range(1, dev_broker::max_brokers))
      ->capture_default_str();
  cmd->add_option("--topic", o->topics,
                  "Topic to create, as NAME:PARTITIONS (repeatable), e.g. "
                  "business_postgres.public.business_ncr_ride_bookings:8")
      ->type_name("NAME:PARTITIONS")
      ->check(CLI::Validator(
          [](std::string& text) {
            std::string error;
            return parse_topic_spec(text, &error) ? std::string() : error;
          },
          "", "topic_spec"));
  cmd->add_option("--port", o->port,
                  "Also accept bootstrap connections on 127.0.0.1:PORT (0 = only the random "
                  "broker ports)")
      ->check(int_range(0, 65535))
      ->capture_default_str();
  cmd->callback([o] { run_broker(*o); });
}

}  // namespace eddy::app
