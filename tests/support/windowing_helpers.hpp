// windowing_helpers.hpp — what the windowing unit tests share: the test schema (fields id, ts,
// grp, region, amount, qty, status), aggregate and plan helpers, and value printing.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "worker/windowing.hpp"

namespace eddy::test {

inline constexpr int64_t sec = 1'000'000;

inline pipeline_config base_config() {
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
  field("region", field_type::int64);
  field("amount", field_type::float64);
  field("qty", field_type::int64);
  field("status", field_type::string);
  cfg.window.kind = window_kind::tumbling;
  cfg.window.size_us = 10 * sec;
  cfg.window.time_field = "ts";
  return cfg;
}

inline void add_agg(pipeline_config& cfg, const std::string& alias, const std::string& fn,
                    const std::string& field, double q = 0.5) {
  aggregate_config a;
  a.alias = alias;
  a.function = fn;
  a.field = field;
  a.q = q;
  cfg.aggregates.push_back(a);
}

inline aggregation_plan plan_of(const pipeline_config& cfg) {
  std::string error;
  auto plan = aggregation_plan::from_config(cfg, &error);
  EXPECT_TRUE(plan.has_value()) << error;
  return plan ? std::move(*plan) : aggregation_plan{};
}

inline std::string show(const value& v) {
  std::ostringstream os;
  os.precision(17);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          os << "null";
        } else if constexpr (std::is_same_v<T, timestamp>) {
          os << "@" << x.micros;
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << '"' << x << '"';
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

inline std::string show(const row& r) {
  std::string s = "[";
  for (size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + show(r[i]);
  return s + "]";
}

inline const char* kind_name(window_kind k) {
  switch (k) {
    case window_kind::tumbling:
      return "tumbling";
    case window_kind::hopping:
      return "hopping";
    case window_kind::session:
      return "session";
    case window_kind::global:
      return "global";
    case window_kind::none:
      return "none";
  }
  return "?";
}

}  // namespace eddy::test
