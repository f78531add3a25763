// kafka_sink.hpp — output rows as JSON messages to a Kafka topic.
//
// Each row becomes one message whose value is the row as a JSON object (row_to_json) and whose
// key is null. A batch is complete when the broker acknowledged every message of it
// (write_batch flushes); a delivery failure fails the batch with the broker's reason. Delivery
// is at-least-once: a crash between produce and the next checkpoint can repeat a batch.
#pragma once

#include <memory>
#include <string>

#include "worker/sink/dead_letter_writer.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

/// nullptr with `error` set when the producer cannot be created. `default_bootstrap` is used
/// when the sink config names none.
[[nodiscard]] std::unique_ptr<sink> make_kafka_sink(const sink_config& cfg,
                                                    const std::string& default_bootstrap,
                                                    time_formatter fmt, std::string* error);

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
