// eddy decode — a dry run of a pipeline's decoding and cleaning on messages from stdin.
#include <iostream>
#include <string>

#include "app/commands.hpp"
#include "worker/pipeline_config.hpp"
#include "worker/record_processor.hpp"
#include "worker/sink.hpp"

namespace eddy::app {

namespace {
std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}
}  // namespace

void add_decode_command(CLI::App& root) {
  auto config = std::make_shared<std::string>();
  CLI::App* cmd = root.add_subcommand(
      "decode",
      "Dry-run a pipeline's decoding, cleaning and filter on raw messages, one per line on\n"
      "stdin (e.g. `kcat -C -e -t TOPIC | eddy decode -c pipeline.toml`). Prints one JSON line\n"
      "per message: {\"line\":N,\"outcome\":\"out\",\"row\":{...}} or the filter/dead-letter\n"
      "reason. No Kafka needed. Exit status 0, or 2 for a bad pipeline file.");
  cmd->add_option("-c,--config", *config, "Pipeline file (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([config] {
    auto loaded = load_pipeline_config(*config);
    if (!loaded.config) throw CLI::RuntimeError(loaded.error, 2);
    const pipeline_config& cfg = *loaded.config;
    std::string err;
    auto fmt = time_formatter::for_zone(cfg.timezone, &err);
    if (!fmt) throw CLI::RuntimeError("pipeline.timezone: " + err, 2);
    auto processor = record_processor::create(cfg, &err);
    if (!processor) throw CLI::RuntimeError(err, 2);
    std::ios::sync_with_stdio(false);
    std::string line;
    int64_t n = 0;
    record_counters counters;
    std::vector<row> rows;
    std::vector<dead_letter> dead;
    while (std::getline(std::cin, line)) {
      ++n;
      raw_record r;
      r.topic = cfg.source.topic;
      r.offset = n - 1;
      r.value = line;
      rows.clear();
      dead.clear();
      auto outcome = processor->process(r, rows, dead, counters);
      std::cout << "{\"line\":" << n << ",\"outcome\":";
      switch (outcome) {
        case record_outcome::out:
          std::cout << "\"out\",\"row\":" << row_to_json(processor->schema(), rows.front(), *fmt);
          break;
        case record_outcome::filtered:
          std::cout << "\"filtered\",\"reason\":" << json_string(processor->last_reason());
          break;
        case record_outcome::dead_lettered:
          std::cout << "\"dead_letter\",\"reason\":" << json_string(processor->last_reason());
          break;
      }
      std::cout << "}\n";
    }
    std::cout.flush();
    std::cerr << "decoded " << counters.in << " messages: " << counters.out << " out, "
              << counters.filtered << " filtered, " << counters.dead_lettered << " dead-lettered\n";
  });
}

}  // namespace eddy::app
