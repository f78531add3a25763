#include "worker/decode/source_pipeline.hpp"

namespace eddy {

std::unique_ptr<source_pipeline> source_pipeline::create(const pipeline_config& cfg,
                                                         const aggregation_plan* plan,
                                                         int32_t partition, std::string* error) {
  auto p = std::unique_ptr<source_pipeline>(new source_pipeline());
  p->processor_ = record_processor::create(cfg, error, plan == nullptr);
  if (!p->processor_) return nullptr;
  if (plan) {
    p->aggregator_ = std::make_unique<partition_aggregator>(*plan, partition);
    p->changelog_ = plan->changelog;
  }
  return p;
}

void source_pipeline::process(const raw_record& in, int64_t now_us, std::vector<row>& rows,
                              std::vector<dead_letter>& dead, record_counters& counters) {
  record_outcome outcome = processor_->process(in, rows, dead, counters);
  if (!aggregator_) return;
  decoded_record& rec = processor_->last_decoded();
  if (changelog_) {
    if (outcome == record_outcome::filtered && processor_->last_rejected_by_filter())
      aggregator_->forget(rec.image);
    if (rec.before && !processor_->passes_filter(*rec.before)) rec.before.reset();
  }
  if (outcome != record_outcome::out) return;
  switch (aggregator_->add(rec, now_us, reason_)) {
    case aggregate_outcome::contributed:
      break;
    case aggregate_outcome::late:
      --counters.out;
      ++counters.late;
      break;
    case aggregate_outcome::dead_letter:
      --counters.out;
      ++counters.dead_lettered;
      dead.push_back(make_dead_letter(in, std::move(reason_)));
      break;
  }
}

void source_pipeline::take_partials(std::vector<partial_batch>& out, int64_t now_us) {
  if (aggregator_) aggregator_->take_partials(out, now_us);
}

}  // namespace eddy
