// dead_letter.hpp — a record the pipeline could not use, with the reason and where it came from.
//
// Nothing is dropped silently: every record the decoder or cleaner rejects becomes one
// dead_letter (the source task makes it, the sink writes it: worker/sink/dead_letter_writer.hpp
// for its JSON form and files, worker/kafka/kafka_sink.hpp for a Kafka topic). Plain data.
// No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <string>

namespace eddy {

struct dead_letter {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;   ///< the Kafka message timestamp, -1 when absent
  std::string key;             ///< raw key bytes
  std::string value;           ///< raw value bytes (may be invalid UTF-8 or huge)
  bool value_is_null = false;  ///< a tombstone
  std::string reason;          ///< why it was rejected, e.g. "invalid JSON: ... at byte 17"
};

}  // namespace eddy
