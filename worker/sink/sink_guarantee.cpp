// sink_guarantee.cpp — what `eddy run` says about each sink at start-up: what it is and what
// it guarantees after a crash.
#include <ostream>
#include <string>

#include "worker/sink/sink.hpp"

namespace eddy {

std::string describe_sink(const pipeline_config& cfg, size_t index) {
  const sink_config& s = cfg.sinks.at(index);
  std::string line = "sink " + std::to_string(index + 1) + ": ";
  switch (s.kind) {
    case sink_kind::console:
      line += "console";
      break;
    case sink_kind::file:
      line += "file " + s.path + (s.path.ends_with('/') ? "" : "/") + " (" +
              std::string(to_string(s.format));
      if (!s.partition_by.empty()) line += ", by dt of " + s.partition_by;
      line += ")";
      break;
    case sink_kind::kafka:
      line += "kafka topic " + s.topic;
      break;
    case sink_kind::postgres: {
      line += "postgres table " + s.table + " (";
      if (s.upsert) {
        line += "upsert on ";
        for (size_t i = 0; i < s.key.size(); ++i) line += (i ? ", " : "") + s.key[i];
      } else {
        line += "append";
      }
      line += ")";
      break;
    }
  }
  line += ": ";
  if (!cfg.checkpoint.enabled()) {
    line += "per batch, no checkpoints: ";
    if (s.kind == sink_kind::file) line += "each file appears whole (written, then renamed); ";
    if (cfg.source.starting_offsets == "latest") {
      line +=
          "a run after a crash starts over at the latest offsets, so rows that arrived in "
          "between are never written (at-most-once)";
    } else {
      line +=
          "a run after a crash starts over at the earliest offsets, so rows written before are "
          "written again (at-least-once)";
    }
    return line;
  }
  switch (s.kind) {
    case sink_kind::file:
      line += "exactly-once (staged per epoch, published on commit)";
      break;
    case sink_kind::console:
      line +=
          "at-least-once (written per trigger; after a crash, what followed the last complete "
          "checkpoint is written again)";
      break;
    case sink_kind::kafka:
      line +=
          "exactly-once (staged per epoch, delivered with an idempotent producer after the epoch "
          "commits, read back before any re-delivery";
      if (s.transactional) line += ", in Kafka transactions";
      line += ")";
      break;
    case sink_kind::postgres:
      line +=
          "exactly-once (each staged part of an epoch in one transaction with its row in "
          "eddy_sink_progress)";
      break;
  }
  return line;
}

void write_sink_lines(std::ostream& out, const pipeline_config& cfg, std::string_view prefix) {
  for (size_t i = 0; i < cfg.sinks.size(); ++i) out << prefix << describe_sink(cfg, i) << "\n";
}

}  // namespace eddy
