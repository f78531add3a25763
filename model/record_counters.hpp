// record_counters.hpp — how many records of a partition went which way.
//
// Every record that enters a source task leaves exactly one way: as an output row (`out`), as
// filtered, as a dead letter, or as late (dropped by a window's late policy), so
// `in == out + filtered + dead_lettered + late` always holds (`reconciles()`). Plain data, summed
// with `+=`; carried in actor messages (inspect() in actors/messages.hpp) and in checkpoint
// manifests. No CAF, no librdkafka.
#pragma once

#include <cstdint>

namespace eddy {

/// Record counts of one partition (or a sum of partitions).
struct record_counters {
  int64_t in = 0;
  int64_t out = 0;
  int64_t filtered = 0;
  int64_t dead_lettered = 0;
  int64_t late = 0;

  [[nodiscard]] bool reconciles() const { return in == out + filtered + dead_lettered + late; }
  record_counters& operator+=(const record_counters& o) {
    in += o.in;
    out += o.out;
    filtered += o.filtered;
    dead_lettered += o.dead_lettered;
    late += o.late;
    return *this;
  }
};

}  // namespace eddy
