// record_processor.hpp — one source task's pure per-record work: decode, clean, filter, project.
//
// Every record that enters leaves exactly one way — as an output row, as filtered (the filter
// rejected it, or it carried no row: tombstones, truncate events), or as a dead letter with a
// reason — and the counters say which, so `in == out + filtered + dead_lettered + late` always
// holds. Not thread-safe: one processor per source task. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/dead_letter.hpp"
#include "model/filter_expr.hpp"
#include "model/pipeline_config.hpp"
#include "model/record_counters.hpp"
#include "worker/decode/debezium_decoder.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

enum class record_outcome : uint8_t { out, filtered, dead_lettered };

/// A dead letter for `in` (bytes copied) with `reason`.
[[nodiscard]] dead_letter make_dead_letter(const raw_record& in, std::string reason);

class record_processor {
 public:
  /// nullptr with `error` set when the config's filter does not compile. With `project` false
  /// (aggregating pipelines) no output rows are made: the caller reads `last_decoded()`.
  [[nodiscard]] static std::unique_ptr<record_processor> create(const pipeline_config& cfg,
                                                                std::string* error,
                                                                bool project = true);

  /// Processes one record: appends a projected row to `rows`, or a dead letter to `dead`, and
  /// counts it. The returned outcome says which; `last_reason()` says why for the others.
  record_outcome process(const raw_record& in, std::vector<row>& rows,
                         std::vector<dead_letter>& dead, record_counters& counters);

  /// The decoded record of the last call that returned `out` (before projection).
  [[nodiscard]] const decoded_record& last_decoded() const { return decoded_; }
  [[nodiscard]] decoded_record& last_decoded() { return decoded_; }
  /// True when the last call returned `filtered` because the filter rejected a decoded row
  /// (not a tombstone); `last_decoded()` then holds that row.
  [[nodiscard]] bool last_rejected_by_filter() const { return rejected_by_filter_; }
  /// Evaluates the pipeline's filter on a decoded row (e.g. a before image).
  [[nodiscard]] bool passes_filter(const row& image) const { return filter_.matches(image); }
  [[nodiscard]] const std::string& last_reason() const { return reason_; }
  [[nodiscard]] const output_schema& schema() const { return schema_; }

 private:
  record_processor(const pipeline_config& cfg, filter_expr filter, bool project);

  const pipeline_config& cfg_;
  record_decoder decoder_;
  filter_expr filter_;
  bool project_;
  std::vector<int> projection_;  // indices into the decoded row
  output_schema schema_;
  decoded_record decoded_;
  std::string reason_;
  bool rejected_by_filter_ = false;
};

}  // namespace eddy
