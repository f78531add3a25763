#include "worker/window/aggregates.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace eddy {
namespace {

constexpr int64_t i64_max = std::numeric_limits<int64_t>::max();
constexpr int64_t i64_min = std::numeric_limits<int64_t>::min();
const double inf = std::numeric_limits<double>::infinity();
const double nan_value = std::numeric_limits<double>::quiet_NaN();

agg_spec spec_of(agg_fn fn, field_type t = field_type::int64, int field = 0, double q = 0.5) {
  agg_spec s;
  s.alias = std::string(to_string(fn));
  s.fn = fn;
  s.field = field;
  s.input_type = t;
  s.q = q;
  return s;
}

/// One input row: value and event time.
struct input {
  value v;
  int64_t t = 0;
};

std::unique_ptr<accumulator> fill(const agg_spec& spec, const std::vector<input>& in,
                                  int sign = 1) {
  auto acc = make_accumulator(spec);
  for (const auto& x : in) acc->add(x.v, x.t, sign);
  return acc;
}

std::string bytes_of(const accumulator& acc) {
  std::string out;
  acc.serialize(out);
  return out;
}

bool same_value(const value& a, const value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    return (std::isnan(*x) && std::isnan(y)) || *x == y;
  }
  return a == b;
}

std::string show(const value& v) {
  switch (v.index()) {
    case 0:
      return "null";
    case 1:
      return "'" + std::get<std::string>(v) + "'";
    case 2:
      return std::to_string(std::get<int64_t>(v));
    case 3:
      return std::to_string(std::get<double>(v));
    case 4:
      return std::get<bool>(v) ? "true" : "false";
    default:
      return "ts" + std::to_string(std::get<timestamp>(v).micros);
  }
}

/// Random values of one field type, with some nulls, duplicates and edge values.
value random_value(std::mt19937_64& rng, field_type t, int distinct) {
  std::uniform_int_distribution<int> pick(0, distinct - 1);
  if (rng() % 13 == 0) return std::monostate{};
  const int k = pick(rng);
  switch (t) {
    case field_type::string:
      return "s" + std::to_string(k) + std::string(static_cast<size_t>(k % 5) * 7, 'x');
    case field_type::int64:
      if (rng() % 50 == 0) return rng() % 2 ? i64_max : i64_min;
      return static_cast<int64_t>(k) - distinct / 2;
    case field_type::float64: {
      if (rng() % 97 == 0) return -0.0;
      const double mag = std::pow(10.0, static_cast<int>(rng() % 9) - 4);
      return (static_cast<double>(k) - distinct / 2.0) * mag * 1.37;
    }
    case field_type::boolean:
      return k % 2 == 0;
    case field_type::timestamp:
      return timestamp{1'700'000'000'000'000 + k * 1000};
  }
  return std::monostate{};
}

std::vector<input> random_inputs(std::mt19937_64& rng, field_type t, size_t n, int distinct) {
  std::vector<input> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back({random_value(rng, t, distinct), static_cast<int64_t>(rng() % 50)});
  }
  return out;
}

/// Splits `in` into random partials and merges them in a random tree order.
std::unique_ptr<accumulator> split_and_merge(const agg_spec& spec, const std::vector<input>& in,
                                             std::mt19937_64& rng, int sign = 1) {
  const size_t parts = 1 + rng() % 9;
  std::vector<std::unique_ptr<accumulator>> accs;
  for (size_t i = 0; i < parts; ++i) accs.push_back(make_accumulator(spec));
  for (const auto& x : in) accs[rng() % parts]->add(x.v, x.t, sign);
  // Sometimes round-trip a partial through its serialized form, as checkpoints do.
  for (auto& a : accs) {
    if (rng() % 3 != 0) continue;
    std::string bytes = bytes_of(*a);
    auto fresh = make_accumulator(spec);
    std::string_view view = bytes;
    EXPECT_TRUE(fresh->deserialize(view));
    EXPECT_TRUE(view.empty());
    a = std::move(fresh);
  }
  while (accs.size() > 1) {
    const size_t i = rng() % accs.size();
    size_t j = rng() % (accs.size() - 1);
    if (j >= i) ++j;
    auto other = accs[j]->clone();
    accs[i]->merge(*other);
    accs.erase(accs.begin() + static_cast<std::ptrdiff_t>(j));
  }
  return std::move(accs[0]);
}

/// Fraction-of-input interval [count(< x), count(<= x)] / n, and its distance from q.
double rank_error(const std::vector<double>& sorted, double x, double q) {
  const auto lo = std::lower_bound(sorted.begin(), sorted.end(), x) - sorted.begin();
  const auto hi = std::upper_bound(sorted.begin(), sorted.end(), x) - sorted.begin();
  const double n = static_cast<double>(sorted.size());
  const double rlo = static_cast<double>(lo) / n;
  const double rhi = static_cast<double>(hi) / n;
  if (q < rlo) return rlo - q;
  if (q > rhi) return q - rhi;
  return 0.0;
}

double nearest_rank(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double n = static_cast<double>(v.size());
  const auto r = static_cast<size_t>(std::clamp(std::ceil(q * n), 1.0, n));
  return v[r - 1];
}

const agg_fn all_fns[] = {
    agg_fn::count,
    agg_fn::sum,
    agg_fn::avg,
    agg_fn::min,
    agg_fn::max,
    agg_fn::count_distinct,
    agg_fn::approx_count_distinct,
    agg_fn::percentile,
    agg_fn::first,
    agg_fn::last,
};

// ---- names and types ----------------------------------------------------------------------------

TEST(agg_fn, parses_and_prints_every_name) {
  for (const agg_fn f : all_fns) {
    double q = -1;
    EXPECT_EQ(parse_agg_fn(to_string(f), &q), f);
    EXPECT_EQ(q, -1) << "plain names leave q alone";
  }
  double q = 0;
  EXPECT_EQ(parse_agg_fn("p50", &q), agg_fn::percentile);
  EXPECT_DOUBLE_EQ(q, 0.5);
  EXPECT_EQ(parse_agg_fn("p90", &q), agg_fn::percentile);
  EXPECT_DOUBLE_EQ(q, 0.9);
  EXPECT_EQ(parse_agg_fn("p95", &q), agg_fn::percentile);
  EXPECT_DOUBLE_EQ(q, 0.95);
  EXPECT_EQ(parse_agg_fn("p99", &q), agg_fn::percentile);
  EXPECT_DOUBLE_EQ(q, 0.99);
  EXPECT_EQ(parse_agg_fn("p99", nullptr), agg_fn::percentile);
  for (const char* bad : {"", "p", "p0", "p00", "p100", "p5x", "COUNT", "counts", "median"}) {
    EXPECT_FALSE(parse_agg_fn(bad, &q).has_value()) << bad;
  }
}

TEST(agg_fn, result_types) {
  EXPECT_EQ(result_type(spec_of(agg_fn::count, field_type::string, -1)), field_type::int64);
  EXPECT_EQ(result_type(spec_of(agg_fn::count_distinct, field_type::string)), field_type::int64);
  EXPECT_EQ(result_type(spec_of(agg_fn::approx_count_distinct, field_type::float64)),
            field_type::int64);
  EXPECT_EQ(result_type(spec_of(agg_fn::sum, field_type::int64)), field_type::int64);
  EXPECT_EQ(result_type(spec_of(agg_fn::sum, field_type::float64)), field_type::float64);
  EXPECT_EQ(result_type(spec_of(agg_fn::avg, field_type::int64)), field_type::float64);
  EXPECT_EQ(result_type(spec_of(agg_fn::percentile, field_type::int64)), field_type::float64);
  for (const auto t : {field_type::string, field_type::int64, field_type::float64,
                       field_type::boolean, field_type::timestamp}) {
    for (const auto f : {agg_fn::min, agg_fn::max, agg_fn::first, agg_fn::last}) {
      EXPECT_EQ(result_type(spec_of(f, t)), t);
    }
  }
}

TEST(agg_fn, retractable_ones) {
  for (const agg_fn f : all_fns) {
    const bool expected = f == agg_fn::count || f == agg_fn::sum || f == agg_fn::avg ||
                          f == agg_fn::min || f == agg_fn::max || f == agg_fn::count_distinct;
    EXPECT_EQ(make_accumulator(spec_of(f))->retractable(), expected) << to_string(f);
  }
}

TEST(agg_fn, result_values_have_the_result_type) {
  std::mt19937_64 rng(7);
  for (const auto t : {field_type::string, field_type::int64, field_type::float64,
                       field_type::boolean, field_type::timestamp}) {
    for (const agg_fn f : all_fns) {
      if (t == field_type::string &&
          (f == agg_fn::sum || f == agg_fn::avg || f == agg_fn::percentile)) {
        continue;
      }
      const auto spec = spec_of(f, t);
      auto acc = fill(spec, random_inputs(rng, t, 50, 10));
      const value r = acc->result();
      ASSERT_FALSE(is_null(r)) << to_string(f);
      const field_type rt = result_type(spec);
      const size_t expected_index = rt == field_type::string    ? 1
                                    : rt == field_type::int64   ? 2
                                    : rt == field_type::float64 ? 3
                                    : rt == field_type::boolean ? 4
                                                                : 5;
      EXPECT_EQ(r.index(), expected_index) << to_string(f) << " of " << to_string(t);
    }
  }
}

// ---- individual accumulators
// ----------------------------------------------------------------------

TEST(count, star_counts_nulls_field_does_not) {
  auto star = make_accumulator(spec_of(agg_fn::count, field_type::int64, -1));
  auto field = make_accumulator(spec_of(agg_fn::count, field_type::int64, 2));
  EXPECT_TRUE(star->empty());
  EXPECT_EQ(star->result(), value(int64_t{0}));
  for (const value& v : {value(int64_t{1}), value(), value(int64_t{3})}) {
    star->add(v, 0, 1);
    field->add(v, 0, 1);
  }
  EXPECT_EQ(star->result(), value(int64_t{3}));
  EXPECT_EQ(field->result(), value(int64_t{2}));
  star->add(value(), 0, -1);
  field->add(value(), 0, -1);
  EXPECT_EQ(star->result(), value(int64_t{2}));
  EXPECT_EQ(field->result(), value(int64_t{2}));
  EXPECT_FALSE(field->empty());
}

TEST(sum, int_sum_is_exact_internally_and_saturates) {
  auto acc = make_accumulator(spec_of(agg_fn::sum));
  EXPECT_TRUE(is_null(acc->result()));
  acc->add(value(i64_max), 0, 1);
  acc->add(value(i64_max), 0, 1);
  EXPECT_EQ(acc->result(), value(i64_max)) << "saturates";
  acc->add(value(i64_max), 0, -1);
  EXPECT_EQ(acc->result(), value(i64_max)) << "exact after coming back in range";
  acc->add(value(int64_t{-5}), 0, 1);
  EXPECT_EQ(acc->result(), value(i64_max - 5));
  for (int i = 0; i < 4; ++i) acc->add(value(i64_min), 0, 1);
  EXPECT_EQ(acc->result(), value(i64_min));
  acc->add(value(), 0, 1);  // nulls don't change the sum
  EXPECT_EQ(acc->result(), value(i64_min));
}

TEST(sum, null_only_input_gives_null_but_is_not_empty) {
  auto acc = make_accumulator(spec_of(agg_fn::sum));
  acc->add(value(), 0, 1);
  EXPECT_TRUE(is_null(acc->result()));
  EXPECT_FALSE(acc->empty()) << "the group has a row";
  acc->add(value(), 0, -1);
  EXPECT_TRUE(acc->empty());
}

TEST(sum, double_sum_is_compensated) {
  auto acc = make_accumulator(spec_of(agg_fn::sum, field_type::float64));
  acc->add(value(1e100), 0, 1);
  acc->add(value(1.0), 0, 1);
  acc->add(value(-1e100), 0, 1);
  EXPECT_EQ(acc->result(), value(1.0));
  auto tenths = make_accumulator(spec_of(agg_fn::sum, field_type::float64));
  for (int i = 0; i < 1'000'000; ++i) tenths->add(value(0.1), 0, 1);
  EXPECT_NEAR(std::get<double>(tenths->result()), 100000.0, 1e-9);
}

TEST(sum, non_finite_inputs_are_retractable) {
  auto acc = make_accumulator(spec_of(agg_fn::sum, field_type::float64));
  acc->add(value(2.5), 0, 1);
  acc->add(value(inf), 0, 1);
  EXPECT_EQ(acc->result(), value(inf));
  acc->add(value(-inf), 0, 1);
  EXPECT_TRUE(std::isnan(std::get<double>(acc->result())));
  acc->add(value(inf), 0, -1);
  EXPECT_EQ(acc->result(), value(-inf));
  acc->add(value(nan_value), 0, 1);
  EXPECT_TRUE(std::isnan(std::get<double>(acc->result())));
  acc->add(value(nan_value), 0, -1);
  acc->add(value(-inf), 0, -1);
  EXPECT_EQ(acc->result(), value(2.5));
  acc->add(value(2.5), 0, -1);
  EXPECT_TRUE(acc->empty());
}

TEST(sum, a_delta_with_zero_rows_but_a_changed_sum_is_not_empty) {
  // An update inside one batch: retract 5, add 7. Net rows 0, but merging it changes the sum.
  for (const auto t : {field_type::int64, field_type::float64}) {
    auto delta = make_accumulator(spec_of(agg_fn::sum, t));
    delta->add(t == field_type::int64 ? value(int64_t{5}) : value(5.0), 0, -1);
    delta->add(t == field_type::int64 ? value(int64_t{7}) : value(7.0), 0, 1);
    EXPECT_FALSE(delta->empty());
    auto total = make_accumulator(spec_of(agg_fn::sum, t));
    total->add(t == field_type::int64 ? value(int64_t{5}) : value(5.0), 0, 1);
    total->merge(*delta);
    EXPECT_EQ(total->result(), t == field_type::int64 ? value(int64_t{7}) : value(7.0));
  }
}

TEST(avg, is_sum_over_non_null_count) {
  auto acc = make_accumulator(spec_of(agg_fn::avg));
  EXPECT_TRUE(is_null(acc->result()));
  for (const int64_t x : {1, 2, 4}) acc->add(value(x), 0, 1);
  acc->add(value(), 0, 1);
  EXPECT_EQ(acc->result(), value(7.0 / 3.0));
  auto big = make_accumulator(spec_of(agg_fn::avg));
  big->add(value(i64_max), 0, 1);
  big->add(value(i64_max), 0, 1);
  EXPECT_EQ(big->result(), value(static_cast<double>(i64_max))) << "no overflow";
}

TEST(min_max, retracting_the_current_extreme) {
  auto mn = make_accumulator(spec_of(agg_fn::min));
  auto mx = make_accumulator(spec_of(agg_fn::max));
  for (const int64_t x : {5, 3, 9, 3}) {
    mn->add(value(x), 0, 1);
    mx->add(value(x), 0, 1);
  }
  EXPECT_EQ(mn->result(), value(int64_t{3}));
  EXPECT_EQ(mx->result(), value(int64_t{9}));
  mn->add(value(int64_t{3}), 0, -1);
  EXPECT_EQ(mn->result(), value(int64_t{3})) << "3 was added twice";
  mn->add(value(int64_t{3}), 0, -1);
  EXPECT_EQ(mn->result(), value(int64_t{5}));
  mx->add(value(int64_t{9}), 0, -1);
  EXPECT_EQ(mx->result(), value(int64_t{5}));
}

TEST(min_max, every_type_and_double_edge_values) {
  auto strings = fill(spec_of(agg_fn::min, field_type::string),
                      {{value("b"), 0}, {value("ab"), 0}, {value("abc"), 0}});
  EXPECT_EQ(strings->result(), value("ab"));
  auto bools =
      fill(spec_of(agg_fn::max, field_type::boolean), {{value(false), 0}, {value(true), 0}});
  EXPECT_EQ(bools->result(), value(true));
  auto times = fill(spec_of(agg_fn::min, field_type::timestamp),
                    {{value(timestamp{5}), 0}, {value(timestamp{-2}), 0}});
  EXPECT_EQ(times->result(), value(timestamp{-2}));
  auto zeros = fill(spec_of(agg_fn::min, field_type::float64), {{value(0.0), 0}, {value(-0.0), 0}});
  EXPECT_FALSE(std::signbit(std::get<double>(zeros->result()))) << "-0.0 is folded into 0.0";
  auto with_nan = fill(spec_of(agg_fn::max, field_type::float64),
                       {{value(1.0), 0}, {value(nan_value), 0}, {value(inf), 0}});
  EXPECT_TRUE(std::isnan(std::get<double>(with_nan->result()))) << "NaN sorts above +inf";
  auto mn = fill(spec_of(agg_fn::min, field_type::float64),
                 {{value(1.0), 0}, {value(nan_value), 0}, {value(-inf), 0}});
  EXPECT_EQ(mn->result(), value(-inf));
}

TEST(min_max, negative_partials_cancel_on_merge) {
  // Batch 1 adds 1 and 2; batch 2 (a separate partial) retracts 1.
  auto total = fill(spec_of(agg_fn::min), {{value(int64_t{1}), 0}, {value(int64_t{2}), 0}});
  auto delta = fill(spec_of(agg_fn::min), {{value(int64_t{1}), 0}}, -1);
  EXPECT_FALSE(delta->empty());
  EXPECT_TRUE(is_null(delta->result()));
  total->merge(*delta);
  EXPECT_EQ(total->result(), value(int64_t{2}));
}

TEST(count_distinct, exact_with_retraction) {
  auto acc = make_accumulator(spec_of(agg_fn::count_distinct, field_type::string));
  for (const char* s : {"a", "b", "a", "c"}) acc->add(value(s), 0, 1);
  acc->add(value(), 0, 1);
  EXPECT_EQ(acc->result(), value(int64_t{3}));
  acc->add(value("a"), 0, -1);
  EXPECT_EQ(acc->result(), value(int64_t{3}));
  acc->add(value("a"), 0, -1);
  EXPECT_EQ(acc->result(), value(int64_t{2}));
  const size_t before = acc->memory_bytes();
  for (int i = 0; i < 100; ++i) acc->add(value("value number " + std::to_string(i)), 0, 1);
  EXPECT_GT(acc->memory_bytes(), before + 100 * 64);
}

TEST(approx_count_distinct, values_are_type_tagged) {
  auto acc = make_accumulator(spec_of(agg_fn::approx_count_distinct));
  for (const value& v : {value(int64_t{1}), value(1.0), value("1"), value(true),
                         value(timestamp{1}), value(int64_t{1}), value(0.0), value(-0.0)}) {
    acc->add(v, 0, 1);
  }
  acc->add(value(), 0, 1);
  EXPECT_EQ(acc->result(), value(int64_t{6}));
}

TEST(approx_count_distinct, error_within_bound_over_many_cardinalities) {
  double worst = 0;
  for (const int64_t n : {100, 512, 513, 1000, 5000, 20'000, 40'000, 80'000, 200'000, 1'000'000}) {
    for (uint64_t seed = 1; seed <= (n >= 200'000 ? 1u : 3u); ++seed) {
      auto acc = make_accumulator(spec_of(agg_fn::approx_count_distinct));
      std::mt19937_64 rng(seed);
      const int64_t base = static_cast<int64_t>(rng() >> 8);
      for (int64_t i = 0; i < n; ++i) {
        acc->add(value(base + i), 0, 1);
        if (i % 3 == 0) acc->add(value(base + i), 0, 1);  // duplicates don't count
      }
      const auto est = static_cast<double>(std::get<int64_t>(acc->result()));
      const double err = std::fabs(est - static_cast<double>(n)) / static_cast<double>(n);
      worst = std::max(worst, err);
      EXPECT_LE(err, hll_relative_error) << "n=" << n << " estimate=" << est;
      if (n <= 512) {
        EXPECT_EQ(est, static_cast<double>(n)) << "exact while sparse";
      }
    }
  }
  RecordProperty("hll_worst_relative_error", std::to_string(worst));
  std::printf("[ info     ] HLL worst relative error: %.4f\n", worst);
}

TEST(approx_count_distinct, strings_and_merge_equals_union) {
  auto a = make_accumulator(spec_of(agg_fn::approx_count_distinct, field_type::string));
  auto b = make_accumulator(spec_of(agg_fn::approx_count_distinct, field_type::string));
  auto both = make_accumulator(spec_of(agg_fn::approx_count_distinct, field_type::string));
  for (int i = 0; i < 60'000; ++i) {
    const value v = "user-" + std::to_string(i);
    (i % 3 == 0 ? a : b)->add(v, 0, 1);
    both->add(v, 0, 1);
    if (i % 5 == 0) {  // overlap
      a->add(v, 0, 1);
      both->add(v, 0, 1);
    }
  }
  a->merge(*b);
  EXPECT_EQ(bytes_of(*a), bytes_of(*both)) << "register max is exact";
  const auto est = static_cast<double>(std::get<int64_t>(a->result()));
  EXPECT_NEAR(est, 60'000.0, 60'000.0 * hll_relative_error);
}

TEST(percentile, exact_nearest_rank_for_small_inputs) {
  std::mt19937_64 rng(3);
  for (const size_t n : {size_t{1}, size_t{2}, size_t{10}, size_t{999}, size_t{1000}}) {
    for (const double q : {0.01, 0.25, 0.5, 0.9, 0.99}) {
      std::vector<double> xs;
      auto acc = make_accumulator(spec_of(agg_fn::percentile, field_type::float64, 0, q));
      for (size_t i = 0; i < n; ++i) {
        xs.push_back(std::normal_distribution<double>(0, 10)(rng));
        acc->add(value(xs.back()), 0, 1);
      }
      EXPECT_EQ(acc->result(), value(nearest_rank(xs, q))) << "n=" << n << " q=" << q;
    }
  }
  auto ints =
      fill(spec_of(agg_fn::percentile, field_type::int64, 0, 0.5), {{value(int64_t{1}), 0},
                                                                    {value(int64_t{2}), 0},
                                                                    {value(), 0},
                                                                    {value(int64_t{3}), 0},
                                                                    {value(int64_t{4}), 0}});
  EXPECT_EQ(ints->result(), value(2.0)) << "rank ceil(0.5*4) = 2";
  auto empty = make_accumulator(spec_of(agg_fn::percentile));
  EXPECT_TRUE(is_null(empty->result()));
}

/// Fills one sketch (directly, or as merged random partials), then reads many quantiles from
/// it by loading its state into accumulators with other q (q is spec, not state). Returns the
/// worst rank error.
double check_percentiles(const std::vector<double>& data, const char* name, std::mt19937_64& rng,
                         bool merged) {
  std::vector<double> sorted = data;
  std::sort(sorted.begin(), sorted.end());
  const agg_spec base = spec_of(agg_fn::percentile, field_type::float64);
  std::unique_ptr<accumulator> acc;
  if (merged) {
    std::vector<input> in;
    in.reserve(data.size());
    for (const double x : data) in.push_back({value(x), 0});
    acc = split_and_merge(base, in, rng);
  } else {
    acc = make_accumulator(base);
    for (const double x : data) acc->add(value(x), 0, 1);
  }
  const std::string state = bytes_of(*acc);
  double worst = 0;
  for (const double q : {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999}) {
    auto at_q = make_accumulator(spec_of(agg_fn::percentile, field_type::float64, 0, q));
    std::string_view view = state;
    EXPECT_TRUE(at_q->deserialize(view));
    const double err = rank_error(sorted, std::get<double>(at_q->result()), q);
    worst = std::max(worst, err);
    EXPECT_LE(err, percentile_rank_error) << name << " q=" << q << (merged ? " merged" : "");
  }
  return worst;
}

TEST(percentile, rank_error_on_a_million_values) {
  std::mt19937_64 rng(11);
  const size_t n = 1'000'000;
  std::vector<std::pair<const char*, std::vector<double>>> sets;
  std::vector<double> v(n);
  for (auto& x : v) x = std::uniform_real_distribution<double>(0, 1)(rng);
  sets.emplace_back("uniform", v);
  std::sort(v.begin(), v.end());
  sets.emplace_back("sorted", v);
  std::reverse(v.begin(), v.end());
  sets.emplace_back("reverse", v);
  for (auto& x : v) x = std::exponential_distribution<double>(1)(rng);
  sets.emplace_back("exponential", v);
  for (auto& x : v) x = static_cast<double>(rng() % 20);
  sets.emplace_back("20 distinct", v);
  for (auto& x : v) x = std::lognormal_distribution<double>(0, 3)(rng);
  sets.emplace_back("lognormal", v);
  double worst = 0;
  for (const auto& [name, data] : sets) {
    worst = std::max(worst, check_percentiles(data, name, rng, false));
    worst = std::max(worst, check_percentiles(data, name, rng, true));
  }
  std::printf("[ info     ] percentile worst rank error at n=1e6: %.5f\n", worst);
}

TEST(percentile, sketch_memory_stays_bounded) {
  auto acc = make_accumulator(spec_of(agg_fn::percentile, field_type::float64));
  for (int i = 0; i < 2'000'000; ++i) acc->add(value(static_cast<double>(i)), 0, 1);
  EXPECT_LT(acc->memory_bytes(), 64u * 1024u);
  std::string bytes = bytes_of(*acc);
  EXPECT_LT(bytes.size(), 16u * 1024u);
}

TEST(first_last, by_event_time_ties_by_value) {
  auto first = make_accumulator(spec_of(agg_fn::first, field_type::string));
  auto last = make_accumulator(spec_of(agg_fn::last, field_type::string));
  for (const input& x : {input{value("m"), 10}, input{value("z"), 5}, input{value("a"), 5},
                         input{value(), 1}, input{value("q"), 20}, input{value("b"), 20}}) {
    first->add(x.v, x.t, 1);
    last->add(x.v, x.t, 1);
  }
  EXPECT_EQ(first->result(), value("a"));
  EXPECT_EQ(last->result(), value("q"));
  auto nulls = make_accumulator(spec_of(agg_fn::first));
  nulls->add(value(), 0, 1);
  EXPECT_TRUE(is_null(nulls->result()));
  EXPECT_FALSE(nulls->empty());
}

// ---- properties over every accumulator ----------------------------------------------------------

struct case_spec {
  agg_fn fn;
  field_type type;
  int field;
};

std::vector<case_spec> all_cases() {
  std::vector<case_spec> cases;
  const field_type types[] = {field_type::string, field_type::int64, field_type::float64,
                              field_type::boolean, field_type::timestamp};
  for (const agg_fn f : all_fns) {
    for (const field_type t : types) {
      const bool numeric_only = f == agg_fn::sum || f == agg_fn::avg || f == agg_fn::percentile;
      if (numeric_only && t != field_type::int64 && t != field_type::float64) continue;
      cases.push_back({f, t, 0});
    }
  }
  cases.push_back({agg_fn::count, field_type::int64, -1});
  return cases;
}

bool exact_fn(agg_fn f, field_type t) {
  return f != agg_fn::percentile &&
         !((f == agg_fn::sum || f == agg_fn::avg) && t == field_type::float64);
}

/// Compares a merged result with the single-accumulator one, within each function's error.
void expect_equivalent(const case_spec& c, const accumulator& merged, const accumulator& single,
                       const std::vector<input>& in, const std::string& what, double q = 0.5) {
  const value a = merged.result();
  const value b = single.result();
  EXPECT_EQ(merged.empty(), single.empty()) << what;
  if (exact_fn(c.fn, c.type)) {
    EXPECT_TRUE(same_value(a, b)) << what << ": " << show(a) << " vs " << show(b);
    if (c.fn != agg_fn::approx_count_distinct || in.size() < 20'000) {
      EXPECT_EQ(bytes_of(merged), bytes_of(single)) << what << ": canonical state";
    }
    return;
  }
  ASSERT_EQ(a.index(), b.index()) << what;
  if (is_null(a)) return;
  const double x = std::get<double>(a);
  const double y = std::get<double>(b);
  if (c.fn == agg_fn::percentile) {
    std::vector<double> sorted;
    for (const auto& i : in) {
      if (const auto* d = std::get_if<double>(&i.v)) sorted.push_back(*d);
      if (const auto* d = std::get_if<int64_t>(&i.v)) sorted.push_back(static_cast<double>(*d));
    }
    std::sort(sorted.begin(), sorted.end());
    if (sorted.size() <= 1000) {
      EXPECT_EQ(x, y) << what << ": exact below 1000 values";
    } else {
      EXPECT_LE(rank_error(sorted, x, q), percentile_rank_error) << what;
    }
    return;
  }
  double scale = 0;
  for (const auto& i : in) {
    if (const auto* d = std::get_if<double>(&i.v)) scale += std::fabs(*d);
  }
  if (c.fn == agg_fn::avg) scale /= static_cast<double>(std::max<size_t>(in.size(), 1));
  EXPECT_NEAR(x, y, 1e-12 * scale + 1e-300) << what;
}

TEST(properties, merge_is_split_and_order_independent) {
  std::mt19937_64 rng(20240601);
  for (const case_spec& c : all_cases()) {
    for (const size_t n : {size_t{0}, size_t{1}, size_t{37}, size_t{900}, size_t{3000}}) {
      for (int round = 0; round < 3; ++round) {
        const int distinct = round == 0 ? 5 : (round == 1 ? 200 : 100'000);
        const auto in = random_inputs(rng, c.type, n, distinct);
        const agg_spec spec = spec_of(c.fn, c.type, c.field, 0.37);
        const auto single = fill(spec, in);
        const auto merged = split_and_merge(spec, in, rng);
        expect_equivalent(c, *merged, *single, in,
                          std::string(to_string(c.fn)) + "/" + std::string(to_string(c.type)) +
                              " n=" + std::to_string(n) + " distinct=" + std::to_string(distinct),
                          spec.q);
      }
    }
  }
}

TEST(properties, hll_merge_of_large_partials_is_exact) {
  std::mt19937_64 rng(99);
  const case_spec c{agg_fn::approx_count_distinct, field_type::int64, 0};
  std::vector<input> in;
  for (int i = 0; i < 100'000; ++i) in.push_back({value(static_cast<int64_t>(rng() % 70'000)), 0});
  const auto spec = spec_of(c.fn, c.type);
  const auto single = fill(spec, in);
  const auto merged = split_and_merge(spec, in, rng);
  EXPECT_EQ(bytes_of(*merged), bytes_of(*single));
}

TEST(properties, retraction_equals_adding_the_remainder) {
  std::mt19937_64 rng(4242);
  for (const case_spec& c : all_cases()) {
    const agg_spec spec = spec_of(c.fn, c.type, c.field);
    if (!make_accumulator(spec)->retractable()) continue;
    for (const size_t n : {size_t{1}, size_t{50}, size_t{2000}}) {
      for (const int distinct : {3, 1000}) {
        const auto in = random_inputs(rng, c.type, n, distinct);
        std::vector<input> kept;
        std::vector<input> removed;
        for (const auto& x : in) (rng() % 3 == 0 ? removed : kept).push_back(x);
        const std::string what = std::string(to_string(c.fn)) + "/" +
                                 std::string(to_string(c.type)) + " n=" + std::to_string(n);
        // One accumulator: add everything, retract the removed ones in a random order.
        auto acc = fill(spec, in);
        std::shuffle(removed.begin(), removed.end(), rng);
        for (const auto& x : removed) acc->add(x.v, x.t, -1);
        expect_equivalent(c, *acc, *fill(spec, kept), kept, what);
        // Retractions as separate partials (negative deltas), merged in random order.
        auto adds = split_and_merge(spec, in, rng);
        auto retracts = split_and_merge(spec, removed, rng, -1);
        if (rng() % 2 == 0) {
          adds->merge(*retracts);
          expect_equivalent(c, *adds, *fill(spec, kept), kept, what + " (partials)");
        } else {
          retracts->merge(*adds);
          expect_equivalent(c, *retracts, *fill(spec, kept), kept, what + " (partials)");
        }
        // Retract everything: empty.
        for (const auto& x : kept) acc->add(x.v, x.t, -1);
        EXPECT_TRUE(acc->empty()) << what;
        EXPECT_EQ(acc->memory_bytes(), make_accumulator(spec)->memory_bytes()) << what;
      }
    }
  }
}

TEST(properties, non_retractable_ones_ignore_retractions) {
  for (const agg_fn f :
       {agg_fn::approx_count_distinct, agg_fn::percentile, agg_fn::first, agg_fn::last}) {
    auto acc = make_accumulator(spec_of(f));
    acc->add(value(int64_t{4}), 1, 1);
    const std::string before = bytes_of(*acc);
    acc->add(value(int64_t{4}), 1, -1);
    acc->add(value(int64_t{9}), 0, -1);
    EXPECT_EQ(bytes_of(*acc), before) << to_string(f);
  }
}

// ---- serialization
// --------------------------------------------------------------------------------

std::vector<std::pair<agg_spec, std::string>> sample_states() {
  std::mt19937_64 rng(5);
  std::vector<std::pair<agg_spec, std::string>> states;
  for (const case_spec& c : all_cases()) {
    const agg_spec spec = spec_of(c.fn, c.type, c.field, 0.9);
    for (const size_t n : {size_t{0}, size_t{3}, size_t{400}, size_t{5000}}) {
      auto acc = fill(spec, random_inputs(rng, c.type, n, n == 5000 ? 1'000'000 : 50));
      if (acc->retractable() && n == 3) acc->add(random_value(rng, c.type, 50), 0, -1);
      states.emplace_back(spec, bytes_of(*acc));
    }
  }
  return states;
}

TEST(serialization, round_trips_exactly) {
  for (const auto& [spec, bytes] : sample_states()) {
    auto acc = make_accumulator(spec);
    std::string input = bytes + "tail";
    std::string_view view = input;
    ASSERT_TRUE(acc->deserialize(view)) << to_string(spec.fn);
    EXPECT_EQ(view, "tail") << "advanced past exactly its own bytes";
    EXPECT_EQ(bytes_of(*acc), bytes) << to_string(spec.fn);
    EXPECT_EQ(bytes[0], 1) << "version byte";
    EXPECT_EQ(static_cast<uint8_t>(bytes[1]), static_cast<uint8_t>(spec.fn));
    // A deserialized accumulator behaves like the original: clone and compare after an add.
    auto copy = acc->clone();
    acc->add(value(int64_t{1}), 0, 1);
    copy->add(value(int64_t{1}), 0, 1);
    EXPECT_EQ(bytes_of(*acc), bytes_of(*copy));
  }
}

TEST(serialization, rejects_truncated_input_and_keeps_state) {
  for (const auto& [spec, bytes] : sample_states()) {
    auto acc = make_accumulator(spec);
    acc->add(value(int64_t{77}), 3, 1);
    const std::string before = bytes_of(*acc);
    const size_t step = bytes.size() > 3000 ? 97 : 1;
    for (size_t len = 0; len < bytes.size(); len += step) {
      std::string_view view(bytes.data(), len);
      EXPECT_FALSE(acc->deserialize(view)) << to_string(spec.fn) << " len=" << len;
      EXPECT_EQ(view.size(), len) << "input not consumed on failure";
    }
    EXPECT_EQ(bytes_of(*acc), before);
  }
}

TEST(serialization, overflowed_double_sum_round_trips) {
  auto acc =
      fill(spec_of(agg_fn::sum, field_type::float64), {{value(1e308), 0}, {value(1e308), 0}});
  const std::string bytes = bytes_of(*acc);
  auto back = make_accumulator(spec_of(agg_fn::sum, field_type::float64));
  std::string_view view = bytes;
  ASSERT_TRUE(back->deserialize(view));
  EXPECT_EQ(bytes_of(*back), bytes);
}

TEST(merge, merging_with_itself_doubles) {
  for (const agg_fn f : all_fns) {
    auto acc = make_accumulator(spec_of(f));
    acc->add(value(int64_t{3}), 1, 1);
    acc->add(value(int64_t{5}), 2, 1);
    auto twice = acc->clone();
    twice->merge(*acc);
    acc->merge(*acc);
    EXPECT_EQ(bytes_of(*acc), bytes_of(*twice)) << to_string(f);
  }
}

TEST(serialization, rejects_wrong_version_or_function) {
  auto sum = fill(spec_of(agg_fn::sum), {{value(int64_t{1}), 0}});
  std::string bytes = bytes_of(*sum);
  auto count = make_accumulator(spec_of(agg_fn::count));
  std::string_view view = bytes;
  EXPECT_FALSE(count->deserialize(view));
  auto double_sum = make_accumulator(spec_of(agg_fn::sum, field_type::float64));
  EXPECT_FALSE(double_sum->deserialize(view)) << "int-mode state into a double sum";
  bytes[0] = 2;
  auto other = make_accumulator(spec_of(agg_fn::sum));
  view = bytes;
  EXPECT_FALSE(other->deserialize(view));
}

TEST(serialization, random_and_mutated_bytes_never_crash) {
  std::mt19937_64 rng(123);
  const auto states = sample_states();
  size_t accepted = 0;
  for (int i = 0; i < 20'000; ++i) {
    const auto& [spec, bytes] = states[rng() % states.size()];
    std::string garbage;
    if (i % 2 == 0) {
      garbage.resize(rng() % 64);
      for (auto& ch : garbage) ch = static_cast<char>(rng());
      if (!garbage.empty() && rng() % 2) garbage[0] = 1;
      if (garbage.size() > 1 && rng() % 2) garbage[1] = static_cast<char>(spec.fn);
    } else {
      garbage = bytes;
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4) && !garbage.empty(); ++k) {
        garbage[rng() % garbage.size()] ^= static_cast<char>(1 << (rng() % 8));
      }
    }
    auto acc = make_accumulator(spec);
    std::string_view view = garbage;
    if (acc->deserialize(view)) {
      ++accepted;
      // Whatever was accepted must be usable.
      (void)acc->result();
      acc->add(value(int64_t{1}), 0, 1);
      acc->merge(*make_accumulator(spec));
      (void)acc->memory_bytes();
      std::string again;
      acc->serialize(again);
    }
  }
  std::printf("[ info     ] accepted %zu of 20000 random/mutated inputs\n", accepted);
}

// ---- speed smoke test (loose bounds; prints the measured numbers)
// ---------------------------------

TEST(performance, add_is_cheap) {
  const int n = 5'000'000;
  for (const agg_fn f : {agg_fn::count, agg_fn::sum, agg_fn::avg, agg_fn::approx_count_distinct,
                         agg_fn::percentile}) {
    for (const field_type t : {field_type::int64, field_type::float64}) {
      auto acc = make_accumulator(spec_of(f, t));
      std::vector<value> vals;
      for (int i = 0; i < 1024; ++i) {
        if (t == field_type::int64) {
          vals.emplace_back(int64_t{i * 7919});
        } else {
          vals.emplace_back(i * 0.37);
        }
      }
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) acc->add(vals[static_cast<size_t>(i) & 1023], i, 1);
      const auto ns =
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
              .count() /
          n;
      std::printf("[ info     ] %s(%s) add: %.1f ns\n", std::string(to_string(f)).c_str(),
                  std::string(to_string(t)).c_str(), ns);
      EXPECT_FALSE(acc->empty());
      EXPECT_LT(ns, 1000.0);  // generous: shared CI cores
    }
  }
}

}  // namespace
}  // namespace eddy
