#include "worker/decode/record_processor.hpp"

namespace eddy {

dead_letter make_dead_letter(const raw_record& in, std::string reason) {
  dead_letter d;
  d.topic = std::string(in.topic);
  d.partition = in.partition;
  d.offset = in.offset;
  d.timestamp_ms = in.timestamp_ms;
  d.key = std::string(in.key);
  d.value = std::string(in.value);
  d.value_is_null = in.value_is_null;
  d.reason = std::move(reason);
  return d;
}

std::unique_ptr<record_processor> record_processor::create(const pipeline_config& cfg,
                                                           std::string* error, bool project) {
  std::string err;
  auto filter = filter_expr::compile(cfg.filter, cfg.fields, &err);
  if (!filter) {
    if (error) *error = "query.filter: " + err;
    return nullptr;
  }
  return std::unique_ptr<record_processor>(new record_processor(cfg, std::move(*filter), project));
}

record_processor::record_processor(const pipeline_config& cfg, filter_expr filter, bool project)
    : cfg_(cfg),
      decoder_(cfg, cfg.aggregation.mode == "changelog"),
      filter_(std::move(filter)),
      project_(project) {
  if (cfg.select.empty()) {
    for (size_t i = 0; i < cfg.fields.size(); ++i) projection_.push_back(static_cast<int>(i));
  } else {
    for (const auto& name : cfg.select) projection_.push_back(cfg.field_index(name));
  }
  for (int i : projection_) {
    schema_.names.push_back(cfg.fields[static_cast<size_t>(i)].name);
    schema_.types.push_back(cfg.fields[static_cast<size_t>(i)].type);
  }
}

record_outcome record_processor::process(const raw_record& in, std::vector<row>& rows,
                                         std::vector<dead_letter>& dead,
                                         record_counters& counters) {
  ++counters.in;
  reason_.clear();
  rejected_by_filter_ = false;
  switch (decoder_.decode(in, decoded_, reason_)) {
    case decode_status::skipped:
      ++counters.filtered;
      return record_outcome::filtered;
    case decode_status::dead_letter: {
      ++counters.dead_lettered;
      dead.push_back(make_dead_letter(in, reason_));
      return record_outcome::dead_lettered;
    }
    case decode_status::row:
      break;
  }
  if (!filter_.matches(decoded_.image)) {
    ++counters.filtered;
    reason_ = "rejected by query.filter";
    rejected_by_filter_ = true;
    return record_outcome::filtered;
  }
  ++counters.out;
  if (!project_) return record_outcome::out;
  row& r = rows.emplace_back();
  r.reserve(projection_.size());
  for (int i : projection_) r.push_back(decoded_.image[static_cast<size_t>(i)]);
  return record_outcome::out;
}

}  // namespace eddy
