// barrier_aligner.hpp — aligned checkpoint barriers for an operator with several inputs.
//
// An aggregator shard (inputs: the source tasks) or the sink (inputs: tasks and shards) takes
// its snapshot for epoch e once every input has delivered barrier(e). Between an input's
// barrier and the alignment, that input's messages belong to epoch e+1: a shard holds them
// back (buffers), the sink files them under the next epoch. One epoch is aligned at a time
// (the coordinator starts e+1 only after e completed), so two buckets are enough.
// Pure and single-threaded: owned by one actor. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace eddy {

class barrier_aligner {
 public:
  /// `inputs`: ids of every input (partition numbers, or any distinct ids).
  explicit barrier_aligner(std::vector<int32_t> inputs) : inputs_(inputs.begin(), inputs.end()) {}

  /// Input `in` delivered barrier(`epoch`). Returns true when this completes the alignment of
  /// `epoch` (every input delivered it): snapshot, forward the barrier, then call release().
  /// A barrier of an unknown input, an epoch other than the one being aligned, or a second
  /// barrier of one input is a protocol error: false with `error` set.
  bool on_barrier(int32_t in, uint64_t epoch, std::string* error = nullptr) {
    auto fail = [&](std::string msg) {
      if (error) *error = std::move(msg);
      return false;
    };
    if (!inputs_.contains(in)) return fail("barrier from unknown input " + std::to_string(in));
    if (epoch_ == 0) {
      epoch_ = epoch;
    } else if (epoch != epoch_) {
      return fail("barrier " + std::to_string(epoch) + " from input " + std::to_string(in) +
                  " while aligning " + std::to_string(epoch_));
    }
    if (!arrived_.insert(in).second)
      return fail("second barrier " + std::to_string(epoch) + " from input " + std::to_string(in));
    return arrived_.size() == inputs_.size();
  }

  /// True when `in` already delivered the barrier being aligned: its messages are epoch e+1's.
  [[nodiscard]] bool blocked(int32_t in) const { return epoch_ != 0 && arrived_.contains(in); }

  /// Ends an alignment: every input is unblocked.
  void release() {
    epoch_ = 0;
    arrived_.clear();
  }

  /// The epoch being aligned, 0 when none.
  [[nodiscard]] uint64_t aligning() const { return epoch_; }
  [[nodiscard]] std::size_t input_count() const { return inputs_.size(); }

 private:
  std::set<int32_t> inputs_;
  std::set<int32_t> arrived_;
  uint64_t epoch_ = 0;
};

}  // namespace eddy
