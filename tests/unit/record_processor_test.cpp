// The generator and the pipeline cross-check each other: every well-formed message the sample
// generator writes, in every Debezium shape, must come out as a row with the generator's op; every
// malformed one must be dead-lettered with a reason; counters must reconcile.
#include "worker/decode/record_processor.hpp"

#include <gtest/gtest.h>

#include "app/sample_data.hpp"

namespace eddy {
namespace {

std::string example_pipeline_path() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/../../deploy/pipelines/ncr_ride_bookings.toml";
}

pipeline_config example_config(message_format fmt) {
  auto loaded = load_pipeline_config(example_pipeline_path());
  EXPECT_TRUE(loaded.config) << loaded.error;
  pipeline_config cfg = *loaded.config;
  cfg.source.format = fmt;
  cfg.filter.clear();
  cfg.select.clear();
  return cfg;
}

class every_shape : public ::testing::TestWithParam<app::sample_format> {};

TEST_P(every_shape, generated_messages_decode_or_dead_letter_and_counters_reconcile) {
  app::sample_options so;
  so.format = GetParam();
  so.bad_ratio = 0.05;
  so.seed = 7;
  app::sample_generator gen(so);
  message_format fmt = GetParam() == app::sample_format::unwrapped  ? message_format::unwrapped
                       : GetParam() == app::sample_format::envelope ? message_format::envelope
                                                                    : message_format::schema;
  pipeline_config cfg = example_config(fmt);
  std::string err;
  auto proc = record_processor::create(cfg, &err);
  ASSERT_TRUE(proc) << err;
  int id_index = cfg.field_index("id"), op_index = cfg.field_index("op");
  int value_index = cfg.field_index("booking_value");
  ASSERT_GE(id_index, 0);
  ASSERT_GE(op_index, 0);

  record_counters counters;
  std::vector<row> rows;
  std::vector<dead_letter> dead;
  int64_t expected_rows = 0, expected_dead = 0, expected_skipped = 0, with_value = 0;
  for (int i = 0; i < 5000; ++i) {
    app::sample_message m = gen.next();
    raw_record r;
    r.topic = cfg.source.topic;
    r.offset = i;
    r.key = m.key;
    r.value_is_null = !m.value.has_value();
    if (m.value) r.value = *m.value;
    rows.clear();
    dead.clear();
    record_outcome got = proc->process(r, rows, dead, counters);
    if (m.op == 'x') {
      ++expected_dead;
      EXPECT_EQ(got, record_outcome::dead_lettered) << "bad record decoded: " << *m.value;
      if (got == record_outcome::dead_lettered) {
        EXPECT_FALSE(dead.front().reason.empty());
        EXPECT_EQ(dead.front().offset, i);
      }
    } else if (m.op == 't') {
      ++expected_skipped;
      EXPECT_EQ(got, record_outcome::filtered);
    } else {
      ++expected_rows;
      ASSERT_EQ(got, record_outcome::out) << proc->last_reason() << "\n" << *m.value;
      const row& out = rows.front();
      EXPECT_TRUE(std::holds_alternative<int64_t>(out[static_cast<size_t>(id_index)]));
      EXPECT_EQ(std::get<std::string>(out[static_cast<size_t>(op_index)]), std::string(1, m.op));
      if (std::holds_alternative<double>(out[static_cast<size_t>(value_index)])) ++with_value;
    }
  }
  EXPECT_EQ(counters.in, 5000);
  EXPECT_EQ(counters.out, expected_rows);
  EXPECT_EQ(counters.dead_lettered, expected_dead);
  EXPECT_EQ(counters.filtered, expected_skipped);
  EXPECT_TRUE(counters.reconciles());
  EXPECT_GT(expected_dead, 100);
  EXPECT_GT(with_value, expected_rows / 2);  // most rides have a booking value
}

INSTANTIATE_TEST_SUITE_P(shapes, every_shape,
                         ::testing::Values(app::sample_format::unwrapped,
                                           app::sample_format::envelope,
                                           app::sample_format::schema));

TEST(record_processor, filter_and_projection_apply_to_decoded_rows) {
  pipeline_config cfg = example_config(message_format::auto_detect);
  cfg.filter = "booking_value > 1000 and op != \"d\"";
  cfg.select = {"id", "booking_value"};
  std::string err;
  auto proc = record_processor::create(cfg, &err);
  ASSERT_TRUE(proc) << err;
  EXPECT_EQ(proc->schema().names, (std::vector<std::string>{"id", "booking_value"}));
  record_counters c;
  std::vector<row> rows;
  std::vector<dead_letter> dead;
  raw_record r;
  r.value = R"({"id": 1, "ncr_ride_bookings.csv/booking+value": "b'1138.0'", "__op": "r"})";
  EXPECT_EQ(proc->process(r, rows, dead, c), record_outcome::out);
  r.value = R"({"id": 2, "ncr_ride_bookings.csv/booking+value": "b'999.0'", "__op": "r"})";
  EXPECT_EQ(proc->process(r, rows, dead, c), record_outcome::filtered);
  r.value = R"({"id": 3, "ncr_ride_bookings.csv/booking+value": "b'5000.0'", "__op": "d"})";
  EXPECT_EQ(proc->process(r, rows, dead, c), record_outcome::filtered);
  r.value = R"({"id": 4, "ncr_ride_bookings.csv/booking+value": null, "__op": "c"})";
  EXPECT_EQ(proc->process(r, rows, dead, c), record_outcome::filtered);  // null > 1000 is unknown
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (row{int64_t{1}, 1138.0}));
  EXPECT_EQ(c.in, 4);
  EXPECT_EQ(c.out, 1);
  EXPECT_EQ(c.filtered, 3);
  EXPECT_TRUE(c.reconciles());
}

}  // namespace
}  // namespace eddy
