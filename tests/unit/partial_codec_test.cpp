// partial_codec_test.cpp — encode_partial_batch / decode_partial_batch
// (worker/window/partial_codec.hpp).
//
// Round trips are checked field by field (window, key values bit for bit, rows, late_update,
// every accumulator's serialized state and result), by re-encoding, and by what a shard emits:
// a shard_aggregator fed the decoded batches emits exactly the rows of one fed the originals.
// Batches come from real partition_aggregators over a schema with every value type (nulls,
// strings with NUL bytes, NaN, infinities, -0.0, bools, timestamps), for every window kind and
// every aggregate function, in exact and sketch/dense forms. Malformed input: every truncation
// of a batch fails with an error (every offset; every 97th inside a 40 KB batch with a dense
// HLL); every single-byte corruption (3 masks at every offset of a batch in exact forms) either
// fails or decodes into a batch a shard merges and finishes without harm; plan mismatches,
// unknown versions and trailing bytes fail.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/support/windowing_helpers.hpp"
#include "worker/window/partial_codec.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

using namespace eddy::test;  // windowing_helpers.hpp: sec, add_agg, plan_of, show, kind_name

// Fields: 0 id, 1 ts, 2 grp, 3 flag, 4 amount, 5 qty, 6 status.
pipeline_config typed_config(window_kind kind, late_policy late) {
  pipeline_config cfg;
  auto field = [&](const char* name, field_type t) {
    field_config f;
    f.name = name;
    f.column = name;
    f.type = t;
    cfg.fields.push_back(f);
  };
  field("id", field_type::int64);
  field("ts", field_type::timestamp);
  field("grp", field_type::string);
  field("flag", field_type::boolean);
  field("amount", field_type::float64);
  field("qty", field_type::int64);
  field("status", field_type::string);
  cfg.window.kind = kind;
  cfg.window.size_us = 10 * sec;
  cfg.window.slide_us = 5 * sec;
  cfg.window.gap_us = 3 * sec;
  cfg.window.time_field = "ts";
  cfg.window.late = late;
  cfg.aggregation.group_by = {"grp", "flag"};
  add_agg(cfg, "n", "count", "");
  add_agg(cfg, "n_amount", "count", "amount");
  add_agg(cfg, "sum_qty", "sum", "qty");
  add_agg(cfg, "sum_amount", "sum", "amount");
  add_agg(cfg, "avg_amount", "avg", "amount");
  add_agg(cfg, "min_qty", "min", "qty");
  add_agg(cfg, "min_ts", "min", "ts");
  add_agg(cfg, "max_status", "max", "status");
  add_agg(cfg, "max_flag", "max", "flag");
  add_agg(cfg, "distinct_status", "count_distinct", "status");
  add_agg(cfg, "approx_id", "approx_count_distinct", "id");
  add_agg(cfg, "p90_amount", "p90", "amount");
  add_agg(cfg, "first_grp", "first", "grp");
  add_agg(cfg, "last_amount", "last", "amount");
  return cfg;
}

const std::vector<std::string>& groups() {
  static const std::vector<std::string> g = {"a", std::string("b\0c", 3), std::string(1, '\0'), ""};
  return g;
}

/// A random row of typed_config's schema; `hot` rows all go to group ("a", true).
row random_row(std::mt19937_64& rng, int64_t id, int64_t t, bool hot) {
  auto u = [&](uint64_t n) { return rng() % n; };
  static const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                                    std::numeric_limits<double>::infinity(),
                                    -std::numeric_limits<double>::infinity(), -0.0, 0.0};
  row r(7);
  r[0] = id;
  r[1] = timestamp{t};
  if (hot) {
    r[2] = std::string("a");
    r[3] = true;
  } else {
    r[2] = u(10) == 0 ? value{} : value{groups()[u(groups().size())]};
    r[3] = u(10) == 0 ? value{} : value{u(2) == 1};
  }
  if (u(20) == 0) {
    r[4] = specials[u(5)];
  } else {
    r[4] = u(10) == 0
               ? value{}
               : value{static_cast<double>(static_cast<int64_t>(u(200000)) - 100000) / 100.0};
  }
  r[5] = static_cast<int64_t>(u(40)) - 10;
  r[6] = u(8) == 0 ? value{} : value{std::string("s\0", 2) + std::to_string(u(30))};
  return r;
}

/// The partials of one partition_aggregator fed `n` rows (a fraction `hot` to one group, some
/// of them late), cut once.
std::vector<partial_batch> make_partials(const aggregation_plan& plan, uint64_t seed, int n,
                                         double hot) {
  std::mt19937_64 rng(seed);
  partition_aggregator pa(plan, 3);
  int64_t t = 1000 * sec;
  std::string reason;
  for (int i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % 2'000);  // ~1 ms apart: few windows
    int64_t at = t;
    if (rng() % 50 == 0) at -= 30 * sec;  // late for its windows
    decoded_record rec;
    rec.op = cdc_op::create;
    rec.image = random_row(rng, i, at, static_cast<double>(rng() % 1000) < hot * 1000);
    pa.add(rec, 5000 * sec + i, reason);
  }
  std::vector<partial_batch> out;
  pa.take_partials(out, 6000 * sec);
  return out;
}

bool same_value(const value& a, const value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* d = std::get_if<double>(&a))
    return std::bit_cast<uint64_t>(*d) == std::bit_cast<uint64_t>(std::get<double>(b));
  return a == b;
}

bool same_row(const row& a, const row& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!same_value(a[i], b[i])) return false;
  }
  return true;
}

std::string acc_bytes(const accumulator& a) {
  std::string s;
  a.serialize(s);
  return s;
}

void expect_same_batch(const partial_batch& a, const partial_batch& b) {
  EXPECT_EQ(a.partition, b.partition);
  EXPECT_EQ(a.watermark, b.watermark);
  EXPECT_EQ(a.processing_time_us, b.processing_time_us);
  EXPECT_EQ(a.last_record_us, b.last_record_us);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const auto& x = a.entries[i];
    const auto& y = b.entries[i];
    SCOPED_TRACE("entry " + std::to_string(i) + " key " + show(x.key));
    EXPECT_EQ(x.window, y.window);
    EXPECT_TRUE(same_row(x.key, y.key)) << show(y.key);
    EXPECT_EQ(x.rows, y.rows);
    EXPECT_EQ(x.late_update, y.late_update);
    ASSERT_EQ(x.accs.size(), y.accs.size());
    for (size_t k = 0; k < x.accs.size(); ++k) {
      ASSERT_TRUE(x.accs[k] && y.accs[k]);
      EXPECT_EQ(acc_bytes(*x.accs[k]), acc_bytes(*y.accs[k])) << "aggregate " << k;
      EXPECT_TRUE(same_value(x.accs[k]->result(), y.accs[k]->result()))
          << "aggregate " << k << ": " << show(x.accs[k]->result()) << " vs "
          << show(y.accs[k]->result());
    }
  }
}

/// Every row a fresh shard emits after merging `batches` and finishing, printed.
std::vector<std::string> shard_rows(const aggregation_plan& plan, int shard,
                                    std::vector<partial_batch>&& batches) {
  shard_aggregator s(plan, shard, {3});
  for (auto& b : batches) s.merge(std::move(b));
  std::vector<row> rows;
  s.emit(rows, 6000 * sec);
  s.finish(rows);
  std::vector<std::string> out;
  for (const row& r : rows) out.push_back(show(r));
  return out;
}

struct variant {
  window_kind kind;
  late_policy late;
};

class partial_codec_round_trip : public ::testing::TestWithParam<variant> {};

TEST_P(partial_codec_round_trip, equals_the_original_field_by_field_and_in_shard_output) {
  const variant v = GetParam();
  const aggregation_plan plan = plan_of(typed_config(v.kind, v.late));
  ASSERT_EQ(plan.aggs.size(), 14u);
  // Hot group: > 1000 rows (percentile sketch mode) of > 512 distinct ids (dense HLL).
  std::vector<partial_batch> originals = make_partials(plan, 7, 6000, 0.5);
  std::vector<partial_batch> decoded(originals.size());
  size_t entries = 0;
  size_t late_updates = 0;
  for (size_t s = 0; s < originals.size(); ++s) {
    const std::string bytes = encode_partial_batch(originals[s]);
    std::string error;
    ASSERT_TRUE(decode_partial_batch(bytes, plan, &decoded[s], &error)) << error;
    EXPECT_TRUE(error.empty());
    expect_same_batch(originals[s], decoded[s]);
    EXPECT_EQ(encode_partial_batch(decoded[s]), bytes);
    entries += originals[s].entries.size();
    for (const auto& e : originals[s].entries) late_updates += e.late_update ? 1 : 0;
  }
  EXPECT_GT(entries, 0u);
  if (v.late == late_policy::update && v.kind != window_kind::global) {
    EXPECT_GT(late_updates, 0u) << "the stream should produce late_update entries";
  }
  for (size_t s = 0; s < originals.size(); ++s) {
    SCOPED_TRACE("shard " + std::to_string(s));
    std::vector<partial_batch> a, b;
    a.push_back(std::move(originals[s]));
    b.push_back(std::move(decoded[s]));
    const auto want = shard_rows(plan, static_cast<int>(s), std::move(a));
    EXPECT_EQ(shard_rows(plan, static_cast<int>(s), std::move(b)), want);
  }
}

INSTANTIATE_TEST_SUITE_P(every_window_kind, partial_codec_round_trip,
                         ::testing::Values(variant{window_kind::tumbling, late_policy::drop},
                                           variant{window_kind::tumbling, late_policy::update},
                                           variant{window_kind::hopping, late_policy::drop},
                                           variant{window_kind::hopping, late_policy::update},
                                           variant{window_kind::session, late_policy::drop},
                                           variant{window_kind::session, late_policy::update},
                                           variant{window_kind::global, late_policy::drop},
                                           variant{window_kind::none, late_policy::drop}),
                         [](const ::testing::TestParamInfo<variant>& info) {
                           return std::string(kind_name(info.param.kind)) +
                                  (info.param.late == late_policy::update ? "_late_update"
                                                                          : "_late_drop");
                         });

TEST(partial_codec, the_hot_group_uses_the_sketch_and_dense_forms) {
  // Guards the round-trip test's coverage: its hot group really leaves the exact forms.
  const aggregation_plan plan = plan_of(typed_config(window_kind::global, late_policy::drop));
  std::vector<partial_batch> batches = make_partials(plan, 7, 6000, 0.5);
  const row hot = {value{std::string("a")}, value{true}};
  bool found = false;
  for (const auto& b : batches) {
    for (const auto& e : b.entries) {
      if (!same_row(e.key, hot)) continue;
      found = true;
      EXPECT_GT(e.rows, 1000);
      // approx_count_distinct (index 10): dense registers are 16 KiB.
      EXPECT_GT(acc_bytes(*e.accs[10]).size(), size_t{16384});
    }
  }
  EXPECT_TRUE(found);
}

partial_batch hand_built_batch(const aggregation_plan& plan) {
  partial_batch b;
  b.partition = -7;
  b.watermark = std::numeric_limits<int64_t>::min();
  b.processing_time_us = std::numeric_limits<int64_t>::max();
  b.last_record_us = -1;
  const std::vector<row> keys = {
      {value{}, value{}},
      {value{std::string("x\0y\0", 4)}, value{false}},
      {value{std::string()}, value{true}},
  };
  int64_t i = 0;
  for (const row& k : keys) {
    partial_batch::entry e;
    e.window = {i * 10 * sec, (i + 1) * 10 * sec};
    e.key = k;
    e.rows = i == 1 ? -3 : i + 1;  // retractions net negative
    e.late_update = i == 2;
    for (const agg_spec& spec : plan.aggs) {
      auto a = make_accumulator(spec);
      a->add(value{std::string("z\0z", 3)}, i, 1);
      a->add(value{int64_t{-5}}, i, 1);
      a->add(value{std::nan("")}, i, 1);
      a->add(value{timestamp{-1}}, i, 1);
      a->add(value{true}, i, 1);
      a->add(value{}, i, 1);
      e.accs.push_back(std::move(a));
    }
    b.entries.push_back(std::move(e));
    ++i;
  }
  return b;
}

TEST(partial_codec, hand_built_extremes_round_trip) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::update));
  const partial_batch b = hand_built_batch(plan);
  const std::string bytes = encode_partial_batch(b);
  partial_batch d;
  std::string error;
  ASSERT_TRUE(decode_partial_batch(bytes, plan, &d, &error)) << error;
  expect_same_batch(b, d);
}

TEST(partial_codec, a_batch_without_entries_carries_the_watermark) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::drop));
  for (const int64_t wm : {std::numeric_limits<int64_t>::min(), int64_t{0}, 1234 * sec,
                           std::numeric_limits<int64_t>::max()}) {
    partial_batch b;
    b.partition = 11;
    b.watermark = wm;
    b.processing_time_us = 99;
    b.last_record_us = wm;
    const std::string bytes = encode_partial_batch(b);
    partial_batch d;
    d.entries.resize(2);  // replaced
    std::string error;
    ASSERT_TRUE(decode_partial_batch(bytes, plan, &d, &error)) << error;
    expect_same_batch(b, d);
    EXPECT_TRUE(d.entries.empty());
  }
  // Also what take_partials cuts for a shard that got no rows.
  partition_aggregator pa(plan, 4);
  std::vector<partial_batch> cut;
  pa.take_partials(cut, 5);
  ASSERT_FALSE(cut.empty());
  partial_batch d;
  std::string error;
  ASSERT_TRUE(decode_partial_batch(encode_partial_batch(cut[0]), plan, &d, &error)) << error;
  expect_same_batch(cut[0], d);
}

TEST(partial_codec, a_null_accumulator_decodes_as_an_empty_one) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::drop));
  partial_batch b = hand_built_batch(plan);
  b.entries[1].accs[2].reset();
  partial_batch d;
  std::string error;
  ASSERT_TRUE(decode_partial_batch(encode_partial_batch(b), plan, &d, &error)) << error;
  ASSERT_TRUE(d.entries[1].accs[2] != nullptr);
  EXPECT_TRUE(d.entries[1].accs[2]->empty());
  EXPECT_EQ(acc_bytes(*d.entries[1].accs[2]), acc_bytes(*make_accumulator(plan.aggs[2])));
  EXPECT_EQ(acc_bytes(*d.entries[1].accs[3]), acc_bytes(*b.entries[1].accs[3]));
}

/// The largest encoded batch of make_partials(plan, 11, n, hot) and its entry count.
std::string sample_bytes(const aggregation_plan& plan, int n, double hot,
                         size_t* entries = nullptr) {
  std::string best;
  for (const partial_batch& b : make_partials(plan, 11, n, hot)) {
    std::string bytes = encode_partial_batch(b);
    if (bytes.size() <= best.size()) continue;
    best = std::move(bytes);
    if (entries != nullptr) *entries = b.entries.size();
  }
  return best;
}

/// Every prefix of `bytes` at `step` (and the last 64 offsets) fails with an error and leaves
/// the output alone.
void expect_truncations_fail(const std::string& bytes, const aggregation_plan& plan, size_t step) {
  for (size_t k = 0; k < bytes.size(); k += (k + 64 >= bytes.size() ? 1 : step)) {
    partial_batch d;
    d.partition = 42;
    std::string error;
    ASSERT_FALSE(decode_partial_batch(std::string_view(bytes).substr(0, k), plan, &d, &error))
        << "prefix of " << k << " of " << bytes.size() << " bytes decoded";
    ASSERT_FALSE(error.empty()) << k;
    ASSERT_EQ(d.partition, 42) << "output touched on failure";
  }
}

TEST(partial_codec, every_truncation_fails_with_an_error) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::drop));
  // Exact forms, every offset.
  size_t entries = 0;
  const std::string exact = sample_bytes(plan, 300, 0, &entries);
  ASSERT_GT(entries, 3u);
  expect_truncations_fail(exact, plan, 1);
  // With the hot group's dense HLL (16 KiB of registers) and percentile sketch: every 97th
  // offset (as aggregates_test does for large states) and the last 64.
  const std::string dense = sample_bytes(plan, 2500, 0.6, &entries);
  ASSERT_GT(dense.size(), size_t{16384});
  expect_truncations_fail(dense, plan, 97);
}

TEST(partial_codec, trailing_bytes_unknown_versions_and_plan_mismatches_fail) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::drop));
  const std::string bytes = sample_bytes(plan, 300, 0);
  partial_batch d;
  std::string error;
  EXPECT_FALSE(decode_partial_batch(bytes + std::string(1, '\0'), plan, &d, &error));
  EXPECT_NE(error.find("after the last entry"), std::string::npos) << error;

  std::string v2 = bytes;
  v2[0] = 2;
  EXPECT_FALSE(decode_partial_batch(v2, plan, &d, &error));
  EXPECT_NE(error.find("unknown version 2"), std::string::npos) << error;

  pipeline_config fewer = typed_config(window_kind::tumbling, late_policy::drop);
  fewer.aggregates.pop_back();
  EXPECT_FALSE(decode_partial_batch(bytes, plan_of(fewer), &d, &error));
  EXPECT_NE(error.find("14 aggregates, the plan has 13"), std::string::npos) << error;

  pipeline_config other_fn = typed_config(window_kind::tumbling, late_policy::drop);
  other_fn.aggregates[2].function = "avg";  // sum_qty -> avg
  EXPECT_FALSE(decode_partial_batch(bytes, plan_of(other_fn), &d, &error));
  EXPECT_NE(error.find("'sum_qty'"), std::string::npos) << error;

  pipeline_config wider = typed_config(window_kind::tumbling, late_policy::drop);
  wider.aggregation.group_by.push_back("qty");
  EXPECT_FALSE(decode_partial_batch(bytes, plan_of(wider), &d, &error));
  EXPECT_NE(error.find("group key of 2 values, the plan groups by 3"), std::string::npos) << error;

  EXPECT_FALSE(decode_partial_batch("", plan, &d, &error));
  EXPECT_FALSE(error.empty());
}

TEST(partial_codec, a_corrupted_byte_anywhere_fails_or_decodes_into_a_mergeable_batch) {
  const aggregation_plan plan = plan_of(typed_config(window_kind::tumbling, late_policy::drop));
  // Exact forms only (every byte of a dense HLL is a register: most flips there decode).
  size_t entries = 0;
  const std::string bytes = sample_bytes(plan, 300, 0, &entries);
  ASSERT_GT(entries, 3u);
  size_t failed = 0;
  size_t decoded = 0;
  for (size_t k = 0; k < bytes.size(); ++k) {
    for (const uint8_t mask : {uint8_t{0xff}, uint8_t{0x80}, uint8_t{0x01}}) {
      std::string bad = bytes;
      bad[k] = static_cast<char>(static_cast<uint8_t>(bad[k]) ^ mask);
      partial_batch d;
      std::string error;
      if (!decode_partial_batch(bad, plan, &d, &error)) {
        ASSERT_FALSE(error.empty()) << k;
        ++failed;
        continue;
      }
      ++decoded;
      // Whatever decodes is a batch the shard takes without harm.
      shard_aggregator s(plan, 0, {d.partition});
      s.merge(std::move(d));
      std::vector<row> rows;
      s.finish(rows);
    }
  }
  EXPECT_GT(failed, 0u);
  EXPECT_GT(decoded, 0u);  // e.g. a flipped bit inside a register or a double
}

}  // namespace
}  // namespace eddy
