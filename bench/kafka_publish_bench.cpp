// kafka_publish_bench.cpp — the Kafka sink's publish step alone, for bench/kafka_sink.sh.
//
// Usage: kafka_publish_bench PIPELINE.toml ROWS.jsonl
// PIPELINE.toml has one sink, `type = "kafka"`, and a [checkpoint] dir (the exactly-once path).
// ROWS.jsonl holds that pipeline's output rows as the sink stages them (one JSON object per
// line, e.g. what a file sink wrote for the same pipeline). The rows are staged as epoch 1's one
// part, then published: what `eddy run` does once an epoch completes (the end offsets recorded,
// every row produced with its key, partition and four headers by the idempotent producer, every
// acknowledgement awaited, the staged copy removed). Prints "<rows> rows published in <s> s"
// (the publish only, not the staging). The reference, kcat -P of the same file, is the script's.
#include <chrono>
#include <cstdio>
#include <string>

#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"
#include "state/file_io.hpp"
#include "worker/kafka/kafka_sink.hpp"
#include "worker/sink/epoch_files.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PIPELINE.toml ROWS.jsonl\n", argv[0]);
    return 2;
  }
  auto loaded = eddy::load_pipeline_config(argv[1]);
  if (!loaded.config) {
    std::fprintf(stderr, "%s\n", loaded.error.c_str());
    return 2;
  }
  const eddy::pipeline_config& cfg = *loaded.config;
  std::string err;
  auto rows = eddy::file_io::read_small_file(argv[2], &err);
  if (!rows) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  auto sink = eddy::make_kafka_sink(cfg, 0, eddy::time_formatter(), &err);
  if (!sink || !sink->transactional()) {
    std::fprintf(stderr, "kafka sink: %s\n", sink ? "no [checkpoint] dir" : err.c_str());
    return 2;
  }
  sink->set_sync(cfg.checkpoint.sync);
  if (err = eddy::stage_epoch_file(sink->staging_dir(), 1, "part-0000000001.jsonl", *rows,
                                   cfg.checkpoint.sync);
      !err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  err = sink->publish_epoch(1);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  size_t n = 0;
  for (char c : *rows) n += c == '\n';
  std::printf("%zu rows published in %.3f s\n", n, s);
  return 0;
}
