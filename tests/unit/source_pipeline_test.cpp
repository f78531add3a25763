// source_pipeline: the per-record path of a source task, including changelog mode with a filter.
#include "worker/decode/source_pipeline.hpp"

#include <gtest/gtest.h>

namespace eddy {
namespace {

field_config field(std::string name, field_type t) {
  field_config f;
  f.name = name;
  f.column = name == "op" ? "$op" : name;
  f.type = t;
  return f;
}

// completed bookings per pickup location, changelog mode, status filtered in the query.
pipeline_config changelog_config(std::string filter) {
  pipeline_config cfg;
  cfg.source.topic = "t";
  cfg.fields = {field("id", field_type::int64), field("op", field_type::string),
                field("status", field_type::string), field("pickup", field_type::string)};
  cfg.filter = std::move(filter);
  cfg.window.kind = window_kind::global;
  cfg.window.processing_time = true;
  cfg.window.emit = emit_mode::on_update;
  aggregate_config n;
  n.alias = "n";
  n.function = "count";
  cfg.aggregates = {n};
  cfg.aggregation.mode = "changelog";
  cfg.aggregation.group_by = {"pickup"};
  cfg.aggregation.primary_key = {"id"};
  cfg.aggregation.shards = 1;
  return cfg;
}

struct harness {
  pipeline_config cfg;
  aggregation_plan plan;
  std::unique_ptr<source_pipeline> source;
  shard_aggregator shard;
  record_counters counters;
  std::vector<row> rows;
  std::vector<dead_letter> dead;
  int64_t offset = 0;

  explicit harness(pipeline_config c)
      : cfg(std::move(c)), plan(make_plan(cfg)), shard(plan, 0, {0}) {
    std::string err;
    source = source_pipeline::create(cfg, &plan, 0, &err);
    EXPECT_TRUE(source) << err;
  }
  static aggregation_plan make_plan(const pipeline_config& cfg) {
    std::string err;
    auto p = aggregation_plan::from_config(cfg, &err);
    EXPECT_TRUE(p) << err;
    return *p;
  }
  void feed(const std::string& json) {
    raw_record r;
    r.topic = "t";
    r.offset = offset++;
    r.value = json;
    source->process(r, 1'000'000 + offset, rows, dead, counters);
  }
  // The table after everything so far: last emitted count per pickup (absent = never emitted).
  std::map<std::string, int64_t> table() {
    std::vector<partial_batch> partials;
    source->take_partials(partials, 2'000'000);
    for (auto& p : partials) shard.merge(std::move(p));
    std::vector<row> out;
    shard.emit(out, 2'000'000);
    for (const auto& r : out) last[std::get<std::string>(r[0])] = std::get<int64_t>(r[1]);
    return last;
  }
  std::map<std::string, int64_t> last;
};

// count per 10 s tumbling window of event time `ts` (integer microseconds), late rows
// dead-lettered.
pipeline_config windowed_config() {
  pipeline_config cfg;
  cfg.source.topic = "t";
  cfg.fields = {field("id", field_type::int64), field("ts", field_type::timestamp)};
  cfg.fields[1].unit = time_unit::micros;
  cfg.window.kind = window_kind::tumbling;
  cfg.window.size_us = 10'000'000;
  cfg.window.time_field = "ts";
  cfg.window.late = late_policy::dead_letter;
  aggregate_config n;
  n.alias = "n";
  n.function = "count";
  cfg.aggregates = {n};
  cfg.aggregation.shards = 1;
  return cfg;
}

TEST(source_pipeline, a_hostile_event_time_is_dead_lettered_and_later_rows_are_on_time) {
  harness h(windowed_config());
  h.feed(R"({"id": 1, "ts": 25000000})");
  h.feed(R"({"id": 2, "ts": 9223372036854775807})");
  h.feed(R"({"id": 3, "ts": -9223372036854775808})");
  h.feed(R"({"id": 4, "ts": 26000000})");  // not late: the hostile rows moved no watermark
  EXPECT_EQ(h.counters.in, 4);
  EXPECT_EQ(h.counters.out, 2);
  EXPECT_EQ(h.counters.dead_lettered, 2);
  EXPECT_EQ(h.counters.late, 0);
  EXPECT_TRUE(h.counters.reconciles());
  ASSERT_EQ(h.dead.size(), 2u);
  EXPECT_EQ(h.dead[0].offset, 1);
  EXPECT_EQ(h.dead[1].offset, 2);
  for (const auto& d : h.dead) EXPECT_FALSE(d.reason.empty());
  std::vector<partial_batch> partials;
  h.source->take_partials(partials, 0);
  for (auto& p : partials) h.shard.merge(std::move(p));
  std::vector<row> out;
  h.shard.finish(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<timestamp>(out[0][0]).micros, 20'000'000);
  EXPECT_EQ(std::get<int64_t>(out[0][2]), 2);
}

TEST(source_pipeline, an_event_time_too_far_ahead_of_the_clock_is_dead_lettered) {
  pipeline_config cfg = windowed_config();
  cfg.window.max_event_time_skew_us = 60'000'000;  // the harness' clock is ~1 s
  harness h(cfg);
  h.feed(R"({"id": 1, "ts": 25000000})");
  h.feed(R"({"id": 2, "ts": 3600000000})");  // an hour ahead
  h.feed(R"({"id": 3, "ts": 26000000})");
  EXPECT_EQ(h.counters.out, 2);
  EXPECT_EQ(h.counters.dead_lettered, 1);
  EXPECT_EQ(h.counters.late, 0);
  EXPECT_TRUE(h.counters.reconciles());
  ASSERT_EQ(h.dead.size(), 1u);
  EXPECT_NE(h.dead[0].reason.find("is more than 1m ahead of the clock"), std::string::npos)
      << h.dead[0].reason;
}

TEST(source_pipeline, an_update_failing_the_filter_retracts_the_earlier_contribution) {
  harness h(changelog_config("status = \"Completed\""));
  h.feed(R"({"id": 1, "__op": "c", "status": "Completed", "pickup": "A"})");
  h.feed(R"({"id": 2, "__op": "c", "status": "Completed", "pickup": "A"})");
  EXPECT_EQ(h.table()["A"], 2);
  h.feed(R"({"id": 2, "__op": "u", "status": "Cancelled", "pickup": "A"})");  // leaves the table
  EXPECT_EQ(h.table()["A"], 1);
  h.feed(R"({"id": 2, "__op": "u", "status": "Completed", "pickup": "B"})");  // comes back, moved
  auto t = h.table();
  EXPECT_EQ(t["A"], 1);
  EXPECT_EQ(t["B"], 1);
  EXPECT_TRUE(h.counters.reconciles());
  EXPECT_EQ(h.counters.filtered, 1);
}

TEST(source_pipeline, a_before_image_that_failed_the_filter_is_not_retracted) {
  harness h(changelog_config("status = \"Completed\""));
  h.feed(R"({"id": 9, "__op": "c", "status": "Completed", "pickup": "A"})");
  // id 5 was never in the table (Incomplete); its update carries that before image.
  h.feed(R"({"before": {"id": 5, "status": "Incomplete", "pickup": "A"},
             "after": {"id": 5, "status": "Completed", "pickup": "A"}, "op": "u"})");
  EXPECT_EQ(h.table()["A"], 2);  // +1, nothing retracted for the never-counted before image
}

TEST(source_pipeline, deletes_retract_and_plain_pipelines_project_rows) {
  harness h(changelog_config(""));
  h.feed(R"({"id": 1, "__op": "c", "status": "Completed", "pickup": "A"})");
  h.feed(R"({"id": 3, "__op": "c", "status": "Completed", "pickup": "A"})");
  h.feed(R"({"id": 1, "__op": "d", "__deleted": "true", "status": "Completed", "pickup": "A"})");
  EXPECT_EQ(h.table()["A"], 1);
  EXPECT_TRUE(h.rows.empty());  // aggregating: no projected rows

  pipeline_config plain = changelog_config("");
  plain.aggregates.clear();
  plain.window = {};
  std::string err;
  auto p = source_pipeline::create(plain, nullptr, 0, &err);
  ASSERT_TRUE(p) << err;
  EXPECT_FALSE(p->aggregating());
  std::vector<row> rows;
  std::vector<dead_letter> dead;
  record_counters c;
  raw_record r;
  r.value = R"({"id": 1, "__op": "c", "status": "Completed", "pickup": "A"})";
  p->process(r, 0, rows, dead, c);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(std::get<int64_t>(rows[0][0]), 1);
}

}  // namespace
}  // namespace eddy
