// source_pipeline.hpp — everything one source task does with a record, as pure code.
//
// decode → clean → filter → (project | pre-aggregate). For plain pipelines a record becomes an
// output row; for aggregating ones it feeds a partition_aggregator, whose partials the task
// ships to the shards. In changelog mode the filter decides which rows are in the aggregated
// table: a row whose new image fails it leaves the table (its earlier contribution is retracted),
// and a before image is used only if it passed the filter. Counters always reconcile:
// in = out + filtered + dead_lettered + late. One per source task; not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/decode/record_processor.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {

class source_pipeline {
 public:
  /// `plan` (aggregating pipelines) must outlive the object, as must `cfg`. nullptr with
  /// `error` when the filter does not compile.
  [[nodiscard]] static std::unique_ptr<source_pipeline> create(const pipeline_config& cfg,
                                                               const aggregation_plan* plan,
                                                               int32_t partition,
                                                               std::string* error);

  /// Processes one record at wall-clock `now_us` (processing-time windows).
  void process(const raw_record& in, int64_t now_us, std::vector<row>& rows,
               std::vector<dead_letter>& dead, record_counters& counters);

  /// Aggregating pipelines: the partials since the last call, one batch per shard.
  void take_partials(std::vector<partial_batch>& out, int64_t now_us);

  [[nodiscard]] bool aggregating() const { return aggregator_ != nullptr; }
  /// The partition aggregator (aggregating pipelines), for checkpoints; nullptr otherwise.
  [[nodiscard]] partition_aggregator* aggregator() { return aggregator_.get(); }

 private:
  std::unique_ptr<record_processor> processor_;
  std::unique_ptr<partition_aggregator> aggregator_;
  bool changelog_ = false;
  std::string reason_;
};

}  // namespace eddy
