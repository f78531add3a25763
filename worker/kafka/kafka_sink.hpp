// kafka_sink.hpp — output rows as JSON messages to a Kafka topic; exactly-once with checkpoints.
//
// Each row becomes one record whose value is the row as a JSON object (row_to_json) and whose
// key is the JSON object of the sink's `key` fields (null when it has none); the partition is
// decided by eddy (kafka_records.hpp: murmur2 of the key like the Java client, or round robin
// by row index), and every record carries the headers eddy-pipeline, eddy-unit, eddy-epoch and
// eddy-seq. The producer is idempotent (enable.idempotence, enable.gapless.guarantee).
//
// With checkpoints (the sink has a staging directory, pipeline_config's sink_staging_dir) the
// sink is transactional in eddy's sense (sink.hpp): stage_epoch writes an epoch's part as JSON
// Lines into `<staging_dir>/_staging/<epoch>/part-<epoch>[-<part>][-<tag>].jsonl`, and
// publishing a staged file (a "unit") delivers its rows and then deletes it. Before the first
// record of a unit is produced, a marker `.<name>.publishing` next to it records the partition
// count and every partition's end offset; a unit whose marker exists may be half delivered (a
// crash, a failover, a failed attempt), so it is delivered again only after reading each
// partition back from the marker's offset to its end: the rows of this unit found there, up to
// the highest sequence per partition, are skipped. So every row is in the topic exactly once,
// without broker transactions. Not covered: a record the broker appends after the producer gave
// up on it (beyond librdkafka's request timeout), and other writers that delete records.
//
// `transactional = true` also wraps each unit in a Kafka transaction (transactional.id =
// "eddy-<pipeline>-sink<index>[-<tag>]"), so read_committed consumers never see a half-delivered
// unit; the read-back uses read_committed. The development broker only pretends to have
// transactions (every call succeeds, nothing is aborted), so this mode is not verified there.
//
// A broker outage while publishing: librdkafka keeps retrying within `message_timeout_ms`; the
// sink logs one line when deliveries stall on an unreachable broker and one when they resume. A
// unit whose attempt failed is retried (new producer, read-back) up to `attempts` times with a
// doubling backoff; then publishing fails with the last error, and so does the run.
//
// Without checkpoints, write_batch produces each batch and waits for every acknowledgement:
// at-least-once (a crash or a failed batch can repeat rows).
//
// Connects lazily (first publish or batch), so a process that only publishes (the cluster
// coordinator) can build the sink without a broker. Single thread, like every sink.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "worker/sink/dead_letter_writer.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

/// Tuning of the Kafka sink; the defaults are the production values, tests shorten them.
struct kafka_sink_options {
  int message_timeout_ms = 60'000;   ///< librdkafka message.timeout.ms: one attempt's limit
  int attempts = 5;                  ///< attempts per unit before publishing fails
  int backoff_ms = 1'000;            ///< wait after the first failed attempt, then doubled
  int max_backoff_ms = 30'000;       ///< ... up to this
  int readback_timeout_ms = 60'000;  ///< reading the partitions back, per attempt
  std::ostream* log = nullptr;       ///< outage and retry lines; nullptr = std::cerr
};

/// The Kafka sink of `p.sinks[index]` (which must be a kafka sink). Staged output goes to
/// sink_staging_dir(p, index) when checkpoints are on. nullptr with `error` set on an invalid
/// setting (nothing is connected here).
[[nodiscard]] std::unique_ptr<sink> make_kafka_sink(const pipeline_config& p, size_t index,
                                                    time_formatter fmt, std::string* error,
                                                    kafka_sink_options opts = {});

/// Dead letters to a Kafka topic: one message per dead letter, value = dead_letter_to_json(d),
/// key = the original key. write() waits for the broker's acknowledgement; "" or the error.
class kafka_dead_letter_writer {
 public:
  [[nodiscard]] static std::unique_ptr<kafka_dead_letter_writer> create(
      const std::string& bootstrap, std::string topic, std::string* error);
  ~kafka_dead_letter_writer();
  [[nodiscard]] std::string write(const std::vector<dead_letter>& batch);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace eddy
