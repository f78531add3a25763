#include "worker/checkpoint/checkpoint_compat.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>
#include <vector>

namespace eddy {

namespace {

/// The components in the order messages list them (others follow in key order).
constexpr std::array<std::string_view, 8> component_order = {
    "topic", "shards", "window", "group_by", "aggregates", "mode", "primary_key", "fields"};

/// Components newer versions added that an older checkpoint may lack without harm (its state does
/// not depend on them). None yet; names without the "compat." prefix.
constexpr std::array<std::string_view, 0> ignorable_when_missing = {};

std::string key(std::string_view component) {
  return std::string(compat_prefix) + std::string(component);
}

std::string list_or_none(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

/// The shortest text that reads back as `q`: 0.95 -> "0.95".
std::string number_text(double q) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), q);
  if (ec != std::errc()) return "?";
  return std::string(buf.data(), end);
}

std::string window_text(const window_config& w) {
  std::string out;
  switch (w.kind) {
    case window_kind::none:
      out = "none";
      break;
    case window_kind::tumbling:
      out = "tumbling size=" + format_duration(w.size_us);
      break;
    case window_kind::hopping:
      out = "hopping size=" + format_duration(w.size_us) + " slide=" + format_duration(w.slide_us);
      break;
    case window_kind::session:
      out = "session gap=" + format_duration(w.gap_us);
      break;
    case window_kind::global:
      out = "global";
      break;
  }
  out += w.processing_time ? " time=processing" : " time_field=" + w.time_field;
  if (w.kind != window_kind::global) {
    out += " max_out_of_orderness=" + format_duration(w.max_out_of_orderness_us);
    out += " allowed_lateness=" + format_duration(w.allowed_lateness_us);
  }
  out += w.emit == emit_mode::on_close ? " emit=on_close" : " emit=on_update";
  if (w.kind != window_kind::global) {
    switch (w.late) {
      case late_policy::drop:
        out += " late=drop";
        break;
      case late_policy::dead_letter:
        out += " late=dead_letter";
        break;
      case late_policy::update:
        out += " late=update";
        break;
    }
  }
  return out;
}

std::string aggregates_text(const std::vector<aggregate_config>& aggregates) {
  std::string out;
  for (const auto& a : aggregates) {
    if (!out.empty()) out += ", ";
    out += a.alias + "=" + a.function + "(" + (a.field.empty() ? "*" : a.field);
    if (a.function == "percentile") out += ", q=" + number_text(a.q);
    out += ")";
  }
  return out;
}

/// "kind string, ts timestamp unit=micros column=created_at" for the fields the state uses, by
/// name (declaration order does not matter to the state).
std::string fields_text(const pipeline_config& cfg) {
  std::set<std::string> used(cfg.aggregation.group_by.begin(), cfg.aggregation.group_by.end());
  used.insert(cfg.aggregation.primary_key.begin(), cfg.aggregation.primary_key.end());
  for (const auto& a : cfg.aggregates) {
    if (!a.field.empty()) used.insert(a.field);
  }
  if (!cfg.window.processing_time && !cfg.window.time_field.empty()) {
    used.insert(cfg.window.time_field);
  }
  std::string out;
  for (const auto& name : used) {
    const int i = cfg.field_index(name);
    if (!out.empty()) out += ", ";
    if (i < 0) {  // not a validated config; still a stable text
      out += name + " undeclared";
      continue;
    }
    const field_config& f = cfg.fields[static_cast<std::size_t>(i)];
    out += f.name + " " + std::string(to_string(f.type));
    if (f.type == field_type::timestamp) out += " unit=" + std::string(to_string(f.unit));
    if (f.scale) out += " scale=" + std::to_string(*f.scale);
    if (f.column != f.name) out += " column=" + f.column;
  }
  return out.empty() ? "(none)" : out;
}

/// `"text"` with quotes and backslashes escaped, or `none` for a missing component.
std::string shown(const std::map<std::string, std::string>& m, const std::string& k) {
  const auto it = m.find(k);
  if (it == m.end()) return "none";
  std::string out = "\"";
  for (const char c : it->second) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool is_compat_key(const std::string& k) {
  return k.size() > compat_prefix.size() && k.compare(0, compat_prefix.size(), compat_prefix) == 0;
}

}  // namespace

std::map<std::string, std::string> compat_fingerprint(const pipeline_config& cfg) {
  std::map<std::string, std::string> out;
  out[key("topic")] = cfg.source.topic;
  if (cfg.aggregates.empty()) return out;
  const aggregation_config& a = cfg.aggregation;
  out[key("shards")] = std::to_string(a.shards);
  out[key("window")] = window_text(cfg.window);
  out[key("group_by")] = list_or_none(a.group_by);
  out[key("aggregates")] = aggregates_text(cfg.aggregates);
  out[key("mode")] = a.mode;
  out[key("primary_key")] = list_or_none(a.primary_key);
  out[key("fields")] = fields_text(cfg);
  return out;
}

std::string compat_check(const std::map<std::string, std::string>& then,
                         const std::map<std::string, std::string>& now, const std::string& dir,
                         std::string_view remedy) {
  // Every compat key of either side, the known components first in their order.
  std::vector<std::string> keys;
  for (const auto c : component_order) keys.push_back(key(c));
  std::set<std::string> others;
  for (const auto* m : {&then, &now}) {
    for (const auto& [k, v] : *m) {
      if (is_compat_key(k) && std::find(keys.begin(), keys.end(), k) == keys.end()) {
        others.insert(k);
      }
    }
  }
  keys.insert(keys.end(), others.begin(), others.end());

  std::string differences;
  for (const auto& k : keys) {
    const auto t = then.find(k);
    const auto n = now.find(k);
    if (t == then.end() && n == now.end()) continue;
    if (t != then.end() && n != now.end() && t->second == n->second) continue;
    const std::string_view component = std::string_view(k).substr(compat_prefix.size());
    if (t == then.end() && std::find(ignorable_when_missing.begin(), ignorable_when_missing.end(),
                                     component) != ignorable_when_missing.end()) {
      continue;
    }
    if (!differences.empty()) differences += "; ";
    differences += std::string(component) + ": checkpoint has " + shown(then, k) +
                   ", pipeline file has " + shown(now, k);
  }
  if (differences.empty()) return "";
  return "the pipeline changed incompatibly with its checkpoint in " + dir + ": " + differences +
         ". " + std::string(remedy);
}

}  // namespace eddy
