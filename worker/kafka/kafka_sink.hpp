// kafka_sink.hpp — output rows as JSON messages to a Kafka topic.
//
// Each row becomes one message whose value is the row as a JSON object (row_to_json) and whose
// key is null. A batch is complete when the broker acknowledged every message of it
// (write_batch flushes); a delivery failure fails the batch with the broker's reason. Delivery
// is at-least-once: a crash between produce and the next checkpoint can repeat a batch.
#pragma once

#include <memory>
#include <string>

#include "worker/sink.hpp"

namespace eddy {

/// nullptr with `error` set when the producer cannot be created. `default_bootstrap` is used
/// when the sink config names none.
[[nodiscard]] std::unique_ptr<sink> make_kafka_sink(const sink_config& cfg,
                                                    const std::string& default_bootstrap,
                                                    time_formatter fmt, std::string* error);

}  // namespace eddy
