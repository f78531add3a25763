// reference_aggregation.hpp — a brute-force, single-threaded model of windowing.hpp's semantics.
//
// Given a plan and every event (its partition, op, images; the vector order is the arrival order
// within each partition), computes the exact final result rows with plain loops: per partition
// it tracks the max event time to judge lateness exactly as the contract says, keeps changelog
// state in an ordered map, then groups every contributing (signed) value per window and key and
// computes each aggregate straight from the value lists — sorted vectors for percentiles
// (nearest rank: the value at rank ceil(q*n)), counted maps for distinct/min/max, etc.
// It deliberately shares no code with windowing.cpp or aggregates.cpp (only the plan, the
// compiled `having` filter and the row types), so a bug cannot hide in both.
// approx_count_distinct is computed exactly here; tests compare it with the sketch's tolerance.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "worker/window/windowing.hpp"

namespace eddy::reference {

/// One input record as the runtime would see it after decoding and filtering.
struct ref_event {
  int32_t partition = 0;
  cdc_op op = cdc_op::create;
  row image;                  ///< after-image (c/r/u) or the deleted row (d)
  std::optional<row> before;  ///< before-image of an update, when present
  int64_t processing_time_us = 0;
};

struct ref_result {
  std::vector<row> rows;             ///< final result rows (having applied), unordered
  int64_t late = 0;                  ///< records counted late (policy drop or update)
  std::vector<size_t> dead_letters;  ///< indices of dead-lettered events, in input order
  int64_t contributed = 0;
};

namespace detail {

struct piece {
  int64_t start = 0;  ///< window (for sessions: the row's own [t, t+gap))
  int64_t end = 0;
  row key;
  int sign = 1;
  int64_t time = 0;
  row inputs;
};

struct kept_row {
  int64_t time = 0;
  row key;
  row inputs;
};

inline int64_t plus_sat(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

inline std::optional<double> as_number(const value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

inline value compute(const agg_spec& spec, const std::vector<const piece*>& ps, size_t slot) {
  // Net multiset of non-null values (+ the signed row count for count(*)).
  int64_t rows = 0;
  std::map<value, int64_t> counts;
  std::vector<std::pair<int64_t, value>> timed;  // append mode only (first/last)
  for (const piece* p : ps) {
    rows += p->sign;
    const value& v = p->inputs[slot];
    if (is_null(v)) continue;
    counts[v] += p->sign;
    if (p->sign > 0) timed.emplace_back(p->time, v);
  }
  int64_t n = 0;
  for (const auto& [v, c] : counts) n += c;
  switch (spec.fn) {
    case agg_fn::count:
      return spec.field < 0 ? rows : n;
    case agg_fn::sum:
    case agg_fn::avg: {
      if (n == 0) return value{};
      if (spec.input_type == field_type::int64 && spec.fn == agg_fn::sum) {
        int64_t total = 0;
        for (const auto& [v, c] : counts) total += std::get<int64_t>(v) * c;
        return total;
      }
      long double total = 0;
      for (const auto& [v, c] : counts) total += static_cast<long double>(*as_number(v)) * c;
      if (spec.fn == agg_fn::sum) return static_cast<double>(total);
      return static_cast<double>(total / static_cast<long double>(n));
    }
    case agg_fn::min:
      for (const auto& [v, c] : counts) {
        if (c > 0) return v;
      }
      return value{};
    case agg_fn::max:
      for (auto it = counts.rbegin(); it != counts.rend(); ++it) {
        if (it->second > 0) return it->first;
      }
      return value{};
    case agg_fn::count_distinct:
    case agg_fn::approx_count_distinct: {
      int64_t distinct = 0;
      for (const auto& [v, c] : counts) distinct += c > 0 ? 1 : 0;
      return distinct;
    }
    case agg_fn::percentile: {
      std::vector<double> xs;
      for (const auto& [v, c] : counts) {
        for (int64_t i = 0; i < c; ++i) xs.push_back(*as_number(v));
      }
      if (xs.empty()) return value{};
      std::sort(xs.begin(), xs.end());
      auto rank = static_cast<int64_t>(std::ceil(spec.q * static_cast<double>(xs.size())));
      rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(xs.size()));
      return xs[static_cast<size_t>(rank - 1)];
    }
    case agg_fn::first:
    case agg_fn::last: {
      if (timed.empty()) return value{};
      auto best = timed.front();
      for (const auto& tv : timed) {
        const bool better = spec.fn == agg_fn::first ? tv < best : best < tv;
        if (better) best = tv;
      }
      return best.second;
    }
  }
  return value{};
}

}  // namespace detail

/// The exact final result of `plan` over `events` (see the file comment).
inline ref_result reference_aggregate(const aggregation_plan& plan,
                                      const std::vector<ref_event>& events) {
  using detail::piece;
  const window_config& w = plan.window;
  ref_result res;
  std::map<int32_t, int64_t> max_time;                       // per partition
  std::map<int32_t, std::map<row, detail::kept_row>> state;  // changelog, per partition
  std::vector<piece> applied;

  auto pick = [](const row& r, const std::vector<int>& idx) {
    row out;
    for (int i : idx) out.push_back(r[static_cast<size_t>(i)]);
    return out;
  };
  auto kept_of = [&](const row& r, int64_t t) {
    detail::kept_row k;
    k.time = t;
    k.key = pick(r, plan.group_by);
    for (const agg_spec& s : plan.aggs) {
      k.inputs.push_back(s.field < 0 ? value{int64_t{1}} : r[static_cast<size_t>(s.field)]);
    }
    return k;
  };

  for (size_t idx = 0; idx < events.size(); ++idx) {
    const ref_event& ev = events[idx];
    const auto mt = max_time.find(ev.partition);
    const int64_t wm = mt == max_time.end() ? INT64_MIN : mt->second - w.max_out_of_orderness_us;
    auto time_of = [&](const row& r) -> std::optional<int64_t> {
      if (w.processing_time) return ev.processing_time_us;
      const value& v = r[static_cast<size_t>(w.time_field_index)];
      if (const auto* t = std::get_if<timestamp>(&v)) return t->micros;
      return std::nullopt;
    };

    std::optional<detail::kept_row> old_row;
    std::optional<detail::kept_row> new_row;
    row pk;
    if (!plan.changelog) {
      const auto t = time_of(ev.image);
      if (!t) {
        res.dead_letters.push_back(idx);
        continue;
      }
      new_row = kept_of(ev.image, *t);
    } else {
      pk = pick(ev.image, plan.primary_key);
      auto& st = state[ev.partition];
      if (auto it = st.find(pk); it != st.end()) {
        old_row = it->second;
      } else if (!w.processing_time) {
        const row* b = nullptr;
        if (ev.op == cdc_op::del) b = &ev.image;
        if (ev.op == cdc_op::update && ev.before) b = &*ev.before;
        if (b != nullptr) {
          if (const auto t = time_of(*b)) old_row = kept_of(*b, *t);
        }
      }
      if (ev.op != cdc_op::del) {
        const auto t = time_of(ev.image);
        if (!t) {
          res.dead_letters.push_back(idx);
          continue;
        }
        new_row = kept_of(ev.image, *t);
      } else if (!old_row && !time_of(ev.image)) {
        res.dead_letters.push_back(idx);
        continue;
      }
    }

    int total = 0;
    int late = 0;
    std::vector<std::pair<piece, bool>> pieces;  // piece, late
    auto split = [&](const detail::kept_row& k, int sign) {
      auto make = [&](int64_t s, int64_t e) {
        piece p;
        p.start = s;
        p.end = e;
        p.key = k.key;
        p.sign = sign;
        p.time = k.time;
        p.inputs = k.inputs;
        return p;
      };
      const int64_t t = k.time;
      switch (w.kind) {
        case window_kind::tumbling: {
          int64_t s = t - (((t % w.size_us) + w.size_us) % w.size_us);
          pieces.emplace_back(make(s, s + w.size_us),
                              wm >= detail::plus_sat(s + w.size_us, w.allowed_lateness_us));
          break;
        }
        case window_kind::hopping: {
          // Brute force: every multiple of slide in (t - size, t].
          int64_t s = t - (((t % w.slide_us) + w.slide_us) % w.slide_us);
          std::vector<int64_t> starts;
          for (; s > t - w.size_us; s -= w.slide_us) starts.push_back(s);
          std::reverse(starts.begin(), starts.end());
          for (int64_t st : starts) {
            pieces.emplace_back(make(st, st + w.size_us),
                                wm >= detail::plus_sat(st + w.size_us, w.allowed_lateness_us));
          }
          break;
        }
        case window_kind::session:
          pieces.emplace_back(make(t, t + w.gap_us),
                              wm != INT64_MIN && wm > detail::plus_sat(t, w.allowed_lateness_us));
          break;
        case window_kind::none:
        case window_kind::global:
          pieces.emplace_back(make(INT64_MIN, INT64_MAX), false);
          break;
      }
    };
    if (old_row) split(*old_row, -1);
    if (new_row) split(*new_row, +1);
    for (const auto& [p, is_late] : pieces) {
      ++total;
      late += is_late ? 1 : 0;
      if (!is_late || w.late == late_policy::update) applied.push_back(p);
    }
    // Watermark input and state.
    const int64_t et = w.processing_time ? ev.processing_time_us
                       : new_row         ? new_row->time
                       : old_row         ? old_row->time
                                         : INT64_MIN;
    auto& m = max_time.try_emplace(ev.partition, INT64_MIN).first->second;
    m = std::max(m, et);
    if (plan.changelog) {
      if (new_row) {
        state[ev.partition][pk] = *new_row;
      } else {
        state[ev.partition].erase(pk);
      }
    }
    if (total > 0 && late == total) {
      if (w.late == late_policy::dead_letter) {
        res.dead_letters.push_back(idx);
      } else {
        ++res.late;
      }
    } else {
      ++res.contributed;
    }
  }

  // Group the applied pieces per (window, key).
  std::map<std::pair<std::pair<int64_t, int64_t>, row>, std::vector<const piece*>> groups;
  if (w.kind == window_kind::session) {
    std::map<row, std::vector<const piece*>> per_key;
    for (const piece& p : applied) per_key[p.key].push_back(&p);
    for (auto& [key, ps] : per_key) {
      std::sort(ps.begin(), ps.end(),
                [](const piece* a, const piece* b) { return a->start < b->start; });
      size_t i = 0;
      while (i < ps.size()) {
        int64_t s = ps[i]->start;
        int64_t e = ps[i]->end;
        size_t j = i + 1;
        while (j < ps.size() && ps[j]->start < e) {
          e = std::max(e, ps[j]->end);
          ++j;
        }
        auto& g = groups[{{s, e}, key}];
        for (size_t k = i; k < j; ++k) g.push_back(ps[k]);
        i = j;
      }
    }
  } else {
    for (const piece& p : applied) groups[{{p.start, p.end}, p.key}].push_back(&p);
  }

  const bool global = w.kind == window_kind::global || w.kind == window_kind::none;
  for (const auto& [id, ps] : groups) {
    int64_t net = 0;
    for (const piece* p : ps) net += p->sign;
    if (net <= 0) continue;
    row r;
    if (!global) {
      r.emplace_back(timestamp{id.first.first});
      r.emplace_back(timestamp{id.first.second});
    }
    r.insert(r.end(), id.second.begin(), id.second.end());
    for (size_t a = 0; a < plan.aggs.size(); ++a) r.push_back(detail::compute(plan.aggs[a], ps, a));
    if (plan.having.matches(r)) res.rows.push_back(std::move(r));
  }
  return res;
}

}  // namespace eddy::reference
