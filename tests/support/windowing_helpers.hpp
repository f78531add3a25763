// windowing_helpers.hpp — what the windowing unit tests share: the test schema (fields id, ts,
// grp, region, amount, qty, status), aggregate and plan helpers, and value printing.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/reference_aggregation.hpp"
#include "worker/window/windowing.hpp"

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

/// A random window of `kind` (10 s size; slide, lateness, out-of-orderness and grouping drawn
/// from `rng`). `sometimes_idle`: also draw an idle timeout (20 ms in a third of the cases), for
/// drivers whose clock advances 1 ms per step; otherwise `rng` is not drawn for it.
inline void configure_window(pipeline_config& cfg, window_kind kind, std::mt19937_64& rng,
                             bool sometimes_idle = false) {
  cfg.window.kind = kind;
  cfg.window.size_us = 10 * sec;
  cfg.window.slide_us = (rng() % 2) ? 5 * sec : 2 * sec;
  cfg.window.gap_us = 3 * sec;
  cfg.window.max_out_of_orderness_us = static_cast<int64_t>(rng() % 3) * sec;
  cfg.window.allowed_lateness_us = (rng() % 2) ? 0 : 2 * sec;
  if (sometimes_idle) cfg.window.idle_timeout_us = (rng() % 3 == 0) ? 20'000 : 0;
  cfg.aggregation.group_by = (rng() % 3 == 0) ? std::vector<std::string>{"grp", "region"}
                                              : std::vector<std::string>{"grp"};
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

/// Random append or changelog streams over the test schema, for the property tests.
struct stream_options {
  int partitions = 1;
  int events = 200;
  int64_t disorder_us = 15 * sec;  ///< occasional disorder, beyond max_out_of_orderness
  bool null_times = true;
  bool changelog = false;
  int keys = 40;           ///< primary keys (changelog)
  int64_t quantum_us = 1;  ///< event times are multiples of this (ties, touching sessions)
};

inline std::vector<reference::ref_event> random_stream(std::mt19937_64& rng,
                                                       const stream_options& o) {
  static const char* const groups[] = {"a", "b", "c", "d"};
  static const char* const statuses[] = {"Completed", "Incomplete", "Cancelled"};
  std::vector<reference::ref_event> out;
  std::map<int64_t, row> table;  // changelog: current rows
  int64_t base = 0;
  int64_t proc = 5000 * sec;
  auto u = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  for (int i = 0; i < o.events; ++i) {
    base += u(700'000);
    proc += u(300'000);
    int64_t t = base;
    if (u(100) < 25) t -= u(o.disorder_us);
    t -= ((t % o.quantum_us) + o.quantum_us) % o.quantum_us;
    reference::ref_event ev;
    ev.processing_time_us = proc;
    const int64_t id = o.changelog ? u(o.keys) : i;
    ev.partition = static_cast<int32_t>(o.changelog ? id % o.partitions : u(o.partitions));
    row r(7);
    r[0] = id;
    r[1] = (o.null_times && u(100) < 2) ? value{} : value{timestamp{t}};
    r[2] = std::string(groups[u(4)]);
    r[3] = u(3);
    r[4] = u(100) < 10 ? value{} : value{static_cast<double>(u(100000)) / 100.0};
    r[5] = u(20) - 5;
    r[6] = std::string(statuses[u(3)]);
    if (o.changelog) {
      auto it = table.find(id);
      if (it == table.end()) {
        ev.op = u(2) ? cdc_op::create : cdc_op::read;
      } else if (u(100) < 25) {
        ev.op = cdc_op::del;
        r = it->second;
      } else {
        ev.op = cdc_op::update;
        if (u(2)) ev.before = it->second;
      }
      if (ev.op == cdc_op::del) {
        table.erase(id);
      } else {
        table[id] = r;
      }
    }
    ev.image = std::move(r);
    out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace eddy::test
