#include "model/pipeline_config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <system_error>
#include <utility>

#include <toml++/toml.h>

#include "model/filter_expr.hpp"

namespace eddy {

namespace {

using keys = std::initializer_list<std::string_view>;

const keys top_level_keys = {"pipeline",    "source", "fields",     "query",     "sinks",
                             "dead_letter", "window", "aggregates", "aggregate", "checkpoint"};
const keys pipeline_keys = {"name", "timezone", "trigger_interval_ms", "max_rows_per_batch"};
const keys source_keys = {
    "bootstrap_servers", "topic",  "starting_offsets",  "max_records_per_poll",
    "group_id",          "format", "max_message_bytes", "max_records_per_second",
    "max_in_flight_mb"};
const keys field_keys = {"name", "column",  "type", "unit", "scale", "strip_bytes_wrapper",
                         "trim", "required"};
const keys query_keys = {"filter", "select"};
const keys dead_letter_keys = {"path", "topic"};
const keys console_sink_keys = {"type", "truncate", "num_rows"};
const keys file_sink_keys = {"type", "path", "format", "partition_by"};
const keys kafka_sink_keys = {"type", "topic",        "bootstrap_servers",
                              "key",  "partitioning", "transactional"};
const keys postgres_sink_keys = {"type",   "dsn",  "host",         "port",
                                 "dbname", "user", "password_env", "password_file",
                                 "table",  "mode", "key",          "reconnect_timeout"};
const keys window_keys = {"type",
                          "size",
                          "slide",
                          "gap",
                          "time_field",
                          "time",
                          "emit",
                          "late",
                          "max_out_of_orderness",
                          "allowed_lateness",
                          "idle_timeout",
                          "max_event_time_skew"};
// The [window] keys a window type does not take.
const keys not_tumbling_keys = {"slide", "gap"};
const keys not_hopping_keys = {"gap"};
const keys not_session_keys = {"size", "slide"};
const keys not_global_keys = {"size",
                              "slide",
                              "gap",
                              "late",
                              "max_out_of_orderness",
                              "allowed_lateness",
                              "idle_timeout",
                              "max_event_time_skew"};
const keys checkpoint_keys = {
    "dir",           "interval", "retain", "local_dir", "block_cache_mb", "write_buffer_mb",
    "state_backend", "sync"};
const keys aggregates_keys = {"alias", "function", "field", "q"};
const keys aggregate_keys = {"group_by", "mode", "primary_key", "having", "shards"};
const keys aggregate_functions = {
    "count",      "sum", "avg", "min", "max", "count_distinct", "approx_count_distinct",
    "percentile", "p50", "p90", "p95", "p99", "first",          "last"};
/// Functions whose input must be an int or double field.
const keys numeric_aggregate_functions = {"sum", "avg", "percentile", "p50", "p90", "p95", "p99"};
/// Functions that can take back a contribution (aggregate.mode = "changelog").
const keys retractable_aggregate_functions = {"count", "sum", "avg",
                                              "min",   "max", "count_distinct"};
const keys pseudo_columns = {"$op",     "$source_ts", "$topic",    "$partition",
                             "$offset", "$key",       "$timestamp"};

bool contains(keys list, std::string_view word) {
  return std::find(list.begin(), list.end(), word) != list.end();
}

std::string join(keys list, std::string_view separator = ", ") {
  std::string out;
  for (const auto k : list) {
    if (!out.empty()) out += separator;
    out += k;
  }
  return out;
}

/// "\"a\", \"b\" or \"c\"".
std::string quoted_alternatives(keys list) {
  std::string out;
  std::size_t i = 0;
  for (const auto k : list) {
    if (i > 0) out += (i + 1 == list.size()) ? " or " : ", ";
    out += "\"" + std::string(k) + "\"";
    ++i;
  }
  return out;
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

int line_of(const toml::source_region& r) {
  return static_cast<int>(r.begin.line);
}
int line_of(const toml::node& n) {
  return line_of(n.source());
}

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  const auto first = static_cast<unsigned char>(s[0]);
  if (std::isalpha(first) == 0 && s[0] != '_') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
}

constexpr std::size_t max_pipeline_name = 128;

/// A safe path component (the default dead-letter directory is "dead-letter/" + name) and
/// group id: 1..128 letters, digits, '_', '-', '.', starting with a letter, digit or '_' (so
/// never "." or "..", a hidden name, or something that reads as an option).
bool is_valid_pipeline_name(std::string_view s) {
  if (s.empty() || s.size() > max_pipeline_name) return false;
  if (std::isalnum(static_cast<unsigned char>(s[0])) == 0 && s[0] != '_') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
}

/// "UTC", "+HH:MM" / "-HH:MM", or an IANA name present under /usr/share/zoneinfo.
bool is_valid_timezone(std::string_view z) {
  if (z == "UTC") return true;
  if (z.size() == 6 && (z[0] == '+' || z[0] == '-') && z[3] == ':') {
    auto digit = [&](std::size_t i) { return z[i] >= '0' && z[i] <= '9'; };
    if (!digit(1) || !digit(2) || !digit(4) || !digit(5)) return false;
    const int hours = (z[1] - '0') * 10 + (z[2] - '0');
    const int minutes = (z[4] - '0') * 10 + (z[5] - '0');
    return hours <= 18 && minutes < 60;
  }
  if (z.empty() || z.front() == '/' || z.find("..") != std::string_view::npos) return false;
  const bool plain = std::all_of(z.begin(), z.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '+' ||
           c == '/';
  });
  if (!plain) return false;
  std::error_code ec;
  return std::filesystem::is_regular_file(
      std::filesystem::path("/usr/share/zoneinfo") / std::string(z), ec);
}

/// `p` absolute (against the working directory) and lexically normal, without a final '/'.
std::filesystem::path comparable_path(const std::string& p) {
  std::error_code ec;
  std::filesystem::path out = std::filesystem::absolute(p, ec);
  if (ec) out = p;
  out = out.lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

/// True when `inner` is `outer` or lies below it (both from `comparable_path`).
bool is_within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

constexpr int64_t us_per_ms = 1000;
constexpr int64_t us_per_day = 86'400'000'000;
static_assert(max_duration_us == 3650 * us_per_day);
/// window.max_event_time_skew when the file does not say.
constexpr int64_t default_max_event_time_skew_us = 365 * us_per_day;

/// "250ms", "10s", "1m", "2h", "1d" (digits, then a unit) in microseconds; nullopt otherwise, with
/// *too_long set when the text is well-formed but longer than `max_duration_us`.
std::optional<int64_t> parse_duration_text(std::string_view text, bool* too_long) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  int64_t amount = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    amount = amount * 10 + (text[i] - '0');
    if (amount > max_duration_us) amount = max_duration_us + 1;  // saturate, stays "too long"
  }
  const std::string_view unit = text.substr(digits);
  int64_t unit_us = 0;
  if (unit == "ms") {
    unit_us = us_per_ms;
  } else if (unit == "s") {
    unit_us = 1000 * us_per_ms;
  } else if (unit == "m") {
    unit_us = 60'000 * us_per_ms;
  } else if (unit == "h") {
    unit_us = 3'600'000 * us_per_ms;
  } else if (unit == "d") {
    unit_us = us_per_day;
  } else {
    return std::nullopt;
  }
  if (amount > max_duration_us / unit_us) {
    *too_long = true;
    return std::nullopt;
  }
  return amount * unit_us;
}

}  // namespace

std::string format_duration(int64_t us) {
  if (us == 0) return "0s";
  struct unit {
    int64_t us;
    const char* name;
  };
  for (const unit u : {unit{us_per_day, "d"}, unit{3'600'000'000, "h"}, unit{60'000'000, "m"},
                       unit{1'000'000, "s"}, unit{us_per_ms, "ms"}}) {
    if (us % u.us == 0) return std::to_string(us / u.us) + u.name;
  }
  return std::to_string(us) + "us";
}

namespace {

/// Reads one pipeline document; the first problem found becomes `error_`.
class loader {
 public:
  explicit loader(std::string_view file_name) : file_(file_name) {}

  std::optional<pipeline_config> load(const toml::table& root) {
    pipeline_config cfg;
    cfg.file_name = file_;
    if (!check_keys(root, "", top_level_keys)) return std::nullopt;

    const toml::table* pipeline = table_at(root, "pipeline");
    if (!error_.empty()) return std::nullopt;
    if (pipeline != nullptr && !read_pipeline(*pipeline, cfg)) return std::nullopt;

    const toml::table* source = table_at(root, "source");
    if (!error_.empty()) return std::nullopt;
    if (source == nullptr) {
      return fail(0, "source.topic: required key is missing (add a [source] table)");
    }
    if (!read_source(*source, cfg)) return std::nullopt;

    if (!read_fields(root, cfg)) return std::nullopt;

    const toml::table* query = table_at(root, "query");
    if (!error_.empty()) return std::nullopt;
    if (query != nullptr && !read_query(*query, cfg)) return std::nullopt;

    if (!read_sinks(root, cfg)) return std::nullopt;

    cfg.dead_letter.path = "dead-letter/" + cfg.name;
    const toml::table* dead_letter = table_at(root, "dead_letter");
    if (!error_.empty()) return std::nullopt;
    if (dead_letter != nullptr && !read_dead_letter(*dead_letter, cfg)) return std::nullopt;

    if (!read_aggregation(root, cfg)) return std::nullopt;
    if (!check_partition_by(root, cfg)) return std::nullopt;
    if (!check_postgres_keys(cfg)) return std::nullopt;

    const toml::table* checkpoint = table_at(root, "checkpoint");
    if (!error_.empty()) return std::nullopt;
    if (checkpoint != nullptr && !read_checkpoint(*checkpoint, cfg)) return std::nullopt;
    if (!resolve_sink_keys(cfg)) return std::nullopt;
    return cfg;
  }

  const std::string& error() const { return error_; }

 private:
  /// Kafka sinks' `key`: listed fields must be output columns; absent = the default key.
  bool resolve_sink_keys(pipeline_config& cfg) {
    const std::vector<std::string> columns = output_column_names(cfg);
    auto is_column = [&](const std::string& n) {
      return std::find(columns.begin(), columns.end(), n) != columns.end();
    };
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
      sink_config& s = cfg.sinks[i];
      if (s.kind != sink_kind::kafka) continue;
      const std::string path = "sinks[" + std::to_string(i) + "].key";
      if (s.key_given) {
        for (const auto& name : s.key) {
          if (is_column(name)) continue;
          std::string list;
          for (const auto& c : columns) list += (list.empty() ? "" : ", ") + c;
          std::string message =
              path + ": '" + name + "' is not an output column (they are: " + list + ")";
          const std::string hint =
              closest_name(name, std::vector<std::string_view>(columns.begin(), columns.end()));
          if (!hint.empty()) message += "; did you mean '" + hint + "'?";
          fail(s.key_line, std::move(message));
          return false;
        }
        continue;
      }
      s.key.clear();
      if (!cfg.aggregates.empty()) {
        if (cfg.window.kind != window_kind::global && cfg.window.kind != window_kind::none)
          s.key = {"window_start", "window_end"};
        s.key.insert(s.key.end(), cfg.aggregation.group_by.begin(), cfg.aggregation.group_by.end());
      } else if (is_column("id")) {
        s.key = {"id"};
      }
    }
    return true;
  }

  /// Records the first error; `line` 0 = no line to name.
  std::nullopt_t fail(int line, std::string message) {
    if (error_.empty()) {
      error_ = file_ + ":";
      if (line > 0) error_ += std::to_string(line) + ":";
      error_ += " " + message;
    }
    return std::nullopt;
  }

  static std::string path_of(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    return std::string(parent) + "." + std::string(key);
  }

  /// Rejects keys of `t` outside `allowed`, naming the earliest one in the file.
  bool check_keys(const toml::table& t, std::string_view path, keys allowed) {
    const toml::key* worst = nullptr;
    const toml::node* worst_value = nullptr;
    for (auto&& [k, v] : t) {
      if (contains(allowed, k.str())) continue;
      if (worst == nullptr || line_of(k.source()) < line_of(worst->source())) {
        worst = &k;
        worst_value = &v;
      }
    }
    if (worst == nullptr) return true;
    std::string message = (path.empty() && worst_value->is_table())
                              ? "unknown table [" + std::string(worst->str()) + "]"
                              : "unknown key '" + path_of(path, worst->str()) + "'";
    const std::string hint = closest_name(worst->str(), std::vector<std::string_view>(allowed));
    if (!hint.empty()) {
      message += "; did you mean '" + hint + "'?";
    } else {
      message += " (known keys: " + join(allowed) + ")";
    }
    fail(line_of(worst->source()), std::move(message));
    return false;
  }

  bool type_error(const toml::node& n, std::string_view path, std::string_view expected) {
    fail(line_of(n), std::string(path) + ": expected " + std::string(expected) + ", got " +
                         std::string(type_name(n)));
    return false;
  }

  /// The table at `key` of `root`, nullptr when absent (or not a table: error set).
  const toml::table* table_at(const toml::table& root, std::string_view key) {
    const toml::node* n = root.get(key);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return t;
    type_error(*n, key, "a table ([" + std::string(key) + "])");
    return nullptr;
  }

  /// `out` keeps its value when the key is absent.
  bool get_string(const toml::table& t, std::string_view parent, std::string_view key,
                  std::string& out, bool non_empty = false) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const auto* s = n->as_string();
    if (s == nullptr) return type_error(*n, path_of(parent, key), "a string");
    if (non_empty && s->get().empty()) {
      fail(line_of(*n), path_of(parent, key) + ": must not be empty");
      return false;
    }
    out = s->get();
    return true;
  }

  template <typename Int>
  bool get_int(const toml::table& t, std::string_view parent, std::string_view key, Int& out,
               int64_t lo, int64_t hi) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const auto* i = n->as_integer();
    if (i == nullptr) return type_error(*n, path_of(parent, key), "an integer");
    const int64_t v = i->get();
    if (v < lo || v > hi) {
      fail(line_of(*n), path_of(parent, key) + ": must be between " + std::to_string(lo) + " and " +
                            std::to_string(hi) + ", got " + std::to_string(v));
      return false;
    }
    out = static_cast<Int>(v);
    return true;
  }

  bool get_bool(const toml::table& t, std::string_view parent, std::string_view key, bool& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const auto* b = n->as_boolean();
    if (b == nullptr) return type_error(*n, path_of(parent, key), "a boolean (true or false)");
    out = b->get();
    return true;
  }

  /// A duration: a string such as "500ms", "10s", "1m", "2h", "1d", or an integer number of
  /// milliseconds; stored in microseconds. `positive`: 0 is an error. Absent: untouched.
  bool get_duration(const toml::table& t, std::string_view parent, std::string_view key,
                    int64_t& out_us, bool positive = false) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const std::string path = path_of(parent, key);
    int64_t us = 0;
    if (const auto* i = n->as_integer()) {
      const int64_t ms = i->get();
      if (ms < 0) {
        fail(line_of(*n), path + ": must not be negative, got " + std::to_string(ms));
        return false;
      }
      if (ms > max_duration_us / us_per_ms) {
        fail(line_of(*n), path + ": must be at most " + format_duration(max_duration_us) +
                              ", got " + std::to_string(ms) + " (milliseconds)");
        return false;
      }
      us = ms * us_per_ms;
    } else if (const auto* s = n->as_string()) {
      bool too_long = false;
      const auto parsed = parse_duration_text(s->get(), &too_long);
      if (!parsed) {
        fail(line_of(*n), too_long
                              ? path + ": must be at most " + format_duration(max_duration_us) +
                                    ", got \"" + s->get() + "\""
                              : path +
                                    ": expected a duration such as \"1m\" or \"500ms\", "
                                    "got \"" +
                                    s->get() + "\"");
        return false;
      }
      us = *parsed;
    } else {
      return type_error(*n, path, "a duration such as \"1m\" or \"500ms\"");
    }
    if (positive && us == 0) {
      fail(line_of(*n), path + ": must be greater than 0s");
      return false;
    }
    out_us = us;
    return true;
  }

  /// An array of declared field names, each listed once, appended to `out`. Absent: untouched.
  bool get_field_list(const toml::table& t, std::string_view parent, std::string_view key,
                      const pipeline_config& cfg, std::vector<std::string>& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const std::string path = path_of(parent, key);
    const toml::array* list = n->as_array();
    if (list == nullptr) return type_error(*n, path, "an array of field names");
    for (const toml::node& item : *list) {
      const auto* s = item.as_string();
      if (s == nullptr) return type_error(item, path, "field names (strings)");
      const std::string& name = s->get();
      if (!check_field_name(cfg, name, path, line_of(item))) return false;
      if (std::find(out.begin(), out.end(), name) != out.end()) {
        fail(line_of(item), path + ": field '" + name + "' is listed twice");
        return false;
      }
      out.push_back(name);
    }
    return true;
  }

  /// False (error set) when no field is named `name`, with a did-you-mean hint.
  bool check_field_name(const pipeline_config& cfg, const std::string& name, std::string_view path,
                        int line) {
    if (cfg.field_index(name) >= 0) return true;
    std::vector<std::string_view> names;
    for (const auto& f : cfg.fields) names.push_back(f.name);
    std::string message = std::string(path) + ": unknown field '" + name + "'";
    const std::string hint = closest_name(name, names);
    if (!hint.empty()) message += "; did you mean '" + hint + "'?";
    fail(line, std::move(message));
    return false;
  }

  /// A string from a fixed set; `index` is its position in `allowed`. Absent: untouched.
  bool get_choice(const toml::table& t, std::string_view parent, std::string_view key, keys allowed,
                  std::size_t& index) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const auto* s = n->as_string();
    if (s == nullptr) return type_error(*n, path_of(parent, key), quoted_alternatives(allowed));
    const auto it = std::find(allowed.begin(), allowed.end(), std::string_view(s->get()));
    if (it == allowed.end()) {
      fail(line_of(*n), path_of(parent, key) + ": expected " + quoted_alternatives(allowed) +
                            ", got \"" + s->get() + "\"");
      return false;
    }
    index = static_cast<std::size_t>(it - allowed.begin());
    return true;
  }

  bool read_pipeline(const toml::table& t, pipeline_config& cfg) {
    if (!check_keys(t, "pipeline", pipeline_keys)) return false;
    if (!get_string(t, "pipeline", "name", cfg.name, true)) return false;
    if (!is_valid_pipeline_name(cfg.name)) {
      fail(line_of(*t.get("name")),
           "pipeline.name: \"" + cfg.name + "\" is not a valid name: use 1 to " +
               std::to_string(max_pipeline_name) +
               " letters, digits, '_', '-' and '.', starting with a letter, digit or '_' (it "
               "names the default dead-letter directory)");
      return false;
    }
    if (!get_string(t, "pipeline", "timezone", cfg.timezone)) return false;
    if (!is_valid_timezone(cfg.timezone)) {
      fail(line_of(*t.get("timezone")),
           "pipeline.timezone: unknown time zone \"" + cfg.timezone +
               "\" (use \"UTC\", an offset such as \"+05:30\", or an IANA name such as "
               "\"Asia/Kolkata\")");
      return false;
    }
    if (!get_int(t, "pipeline", "trigger_interval_ms", cfg.trigger_interval_ms, 10, 3'600'000))
      return false;
    return get_int(t, "pipeline", "max_rows_per_batch", cfg.max_rows_per_batch, 1, 100'000'000);
  }

  bool read_source(const toml::table& t, pipeline_config& cfg) {
    source_config& s = cfg.source;
    if (!check_keys(t, "source", source_keys)) return false;
    if (!get_string(t, "source", "bootstrap_servers", s.bootstrap_servers)) return false;
    if (t.get("topic") == nullptr) {
      fail(line_of(t), "source.topic: required key is missing");
      return false;
    }
    if (!get_string(t, "source", "topic", s.topic, true)) return false;
    std::size_t offsets = 0;
    if (!get_choice(t, "source", "starting_offsets", {"earliest", "latest"}, offsets)) return false;
    s.starting_offsets = offsets == 0 ? "earliest" : "latest";
    if (!get_int(t, "source", "max_records_per_poll", s.max_records_per_poll, 1, 1'000'000)) {
      return false;
    }
    if (!get_int(t, "source", "max_records_per_second", s.max_records_per_second, 0,
                 1'000'000'000)) {
      return false;
    }
    if (!get_int(t, "source", "max_in_flight_mb", s.max_in_flight_mb, 1, 1 << 20)) return false;
    s.group_id = "eddy-" + cfg.name;
    if (!get_string(t, "source", "group_id", s.group_id, true)) return false;
    std::size_t format = 0;
    if (!get_choice(t, "source", "format", {"auto", "unwrapped", "envelope", "schema"}, format)) {
      return false;
    }
    s.format = static_cast<message_format>(format);
    return get_int(t, "source", "max_message_bytes", s.max_message_bytes, 1024, int64_t{1} << 30);
  }

  bool read_fields(const toml::table& root, pipeline_config& cfg) {
    const toml::node* n = root.get("fields");
    if (n == nullptr) {
      fail(0, "fields: at least one [[fields]] table is required");
      return false;
    }
    const toml::array* list = n->as_array();
    if (list == nullptr) return type_error(*n, "fields", "an array of tables ([[fields]])");
    if (list->empty()) {
      fail(line_of(*n), "fields: at least one [[fields]] table is required");
      return false;
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& item = *list->get(i);
      const std::string path = "fields[" + std::to_string(i) + "]";
      const toml::table* t = item.as_table();
      if (t == nullptr) return type_error(item, path, "a table ([[fields]])");
      if (!check_keys(*t, path, field_keys)) return false;
      field_config f;
      f.line = line_of(*t);
      if (t->get("name") == nullptr) {
        fail(f.line, path + ".name: required key is missing");
        return false;
      }
      if (!get_string(*t, path, "name", f.name)) return false;
      const int name_line = line_of(*t->get("name"));
      if (!is_identifier(f.name)) {
        fail(name_line, path + ".name: \"" + f.name +
                            "\" is not an identifier (letters, digits and '_', not starting "
                            "with a digit)");
        return false;
      }
      for (const auto& other : cfg.fields) {
        if (other.name == f.name) {
          fail(name_line, path + ".name: duplicate field name '" + f.name +
                              "' (first declared at line " + std::to_string(other.line) + ")");
          return false;
        }
      }
      f.column = f.name;
      if (!get_string(*t, path, "column", f.column, true)) return false;
      if (f.column.front() == '$' && !contains(pseudo_columns, f.column)) {
        std::string message = path + ".column: unknown pseudo-column \"" + f.column + "\"";
        const std::string hint =
            closest_name(f.column, std::vector<std::string_view>(pseudo_columns));
        if (!hint.empty()) message += "; did you mean \"" + hint + "\"?";
        message += " (known: " + join(pseudo_columns) + ")";
        fail(line_of(*t->get("column")), std::move(message));
        return false;
      }
      std::size_t type = 0;
      if (!get_choice(*t, path, "type", {"string", "int", "double", "bool", "timestamp"}, type)) {
        return false;
      }
      f.type = static_cast<field_type>(type);
      if (const toml::node* unit = t->get("unit")) {
        if (f.type != field_type::timestamp) {
          fail(line_of(*unit), path + ".unit: only valid for timestamp fields ('" + f.name +
                                   "' is " + std::string(to_string(f.type)) + ")");
          return false;
        }
        std::size_t u = 0;
        if (!get_choice(*t, path, "unit",
                        {"auto", "seconds", "millis", "micros", "nanos", "days", "iso"}, u)) {
          return false;
        }
        f.unit = static_cast<time_unit>(u);
      }
      if (const toml::node* scale = t->get("scale")) {
        if (f.type != field_type::int64 && f.type != field_type::float64) {
          fail(line_of(*scale), path + ".scale: only valid for int and double fields ('" + f.name +
                                    "' is " + std::string(to_string(f.type)) + ")");
          return false;
        }
        int s = 0;
        if (!get_int(*t, path, "scale", s, 0, 38)) return false;
        f.scale = s;
      }
      if (!get_bool(*t, path, "strip_bytes_wrapper", f.strip_bytes_wrapper)) return false;
      if (!get_bool(*t, path, "trim", f.trim)) return false;
      if (!get_bool(*t, path, "required", f.required)) return false;
      cfg.fields.push_back(std::move(f));
    }
    return true;
  }

  bool read_query(const toml::table& t, pipeline_config& cfg) {
    if (!check_keys(t, "query", query_keys)) return false;
    if (!get_field_list(t, "query", "select", cfg, cfg.select)) return false;
    if (!get_string(t, "query", "filter", cfg.filter)) return false;
    std::string filter_error;
    if (!filter_expr::compile(cfg.filter, cfg.fields, &filter_error)) {
      fail(line_of(*t.get("filter")), "query.filter: " + filter_error);
      return false;
    }
    return true;
  }

  bool read_sinks(const toml::table& root, pipeline_config& cfg) {
    const toml::node* n = root.get("sinks");
    if (n == nullptr) {
      fail(0, "sinks: at least one [[sinks]] table is required");
      return false;
    }
    const toml::array* list = n->as_array();
    if (list == nullptr) return type_error(*n, "sinks", "an array of tables ([[sinks]])");
    if (list->empty()) {
      fail(line_of(*n), "sinks: at least one [[sinks]] table is required");
      return false;
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& item = *list->get(i);
      const std::string path = "sinks[" + std::to_string(i) + "]";
      const toml::table* t = item.as_table();
      if (t == nullptr) return type_error(item, path, "a table ([[sinks]])");
      sink_config s;
      s.line = line_of(*t);
      if (t->get("type") == nullptr) {
        fail(s.line, path +
                         ".type: required key is missing (\"console\", \"file\", \"kafka\" or "
                         "\"postgres\")");
        return false;
      }
      std::size_t kind = 0;
      if (!get_choice(*t, path, "type", {"console", "file", "kafka", "postgres"}, kind))
        return false;
      s.kind = static_cast<sink_kind>(kind);
      const keys allowed = s.kind == sink_kind::console ? console_sink_keys
                           : s.kind == sink_kind::file  ? file_sink_keys
                           : s.kind == sink_kind::kafka ? kafka_sink_keys
                                                        : postgres_sink_keys;
      const std::string kind_name = std::string(to_string(s.kind));
      // A key of another sink type gets a clearer message than "unknown key".
      for (auto&& [k, v] : *t) {
        const bool other_kind =
            contains(console_sink_keys, k.str()) || contains(file_sink_keys, k.str()) ||
            contains(kafka_sink_keys, k.str()) || contains(postgres_sink_keys, k.str());
        if (other_kind && !contains(allowed, k.str())) {
          fail(line_of(k.source()), path + "." + std::string(k.str()) + ": not an option of " +
                                        kind_name + " sinks (they take: " + join(allowed) + ")");
          return false;
        }
      }
      if (const toml::node* pw = t->get("password"); pw != nullptr) {
        fail(line_of(*pw),
             path +
                 ".password: a password is never read from the pipeline file (it would sit in "
                 "plain text next to the pipeline, in backups and version control): name an "
                 "environment variable that holds it with password_env, or a file with "
                 "password_file");
        return false;
      }
      if (!check_keys(*t, path, allowed)) return false;
      switch (s.kind) {
        case sink_kind::console:
          if (!get_bool(*t, path, "truncate", s.truncate)) return false;
          if (!get_int(*t, path, "num_rows", s.num_rows, 1, 1'000'000)) return false;
          break;
        case sink_kind::file:
          if (t->get("path") == nullptr) {
            fail(s.line,
                 path + ".path: required key is missing (the file sink's output directory)");
            return false;
          }
          if (!get_string(*t, path, "path", s.path, true)) return false;
          if (!read_file_format(*t, path, s)) return false;
          // partition_by names an output column: checked once the aggregates are read.
          if (!get_string(*t, path, "partition_by", s.partition_by, true)) return false;
          break;
        case sink_kind::kafka:
          if (t->get("topic") == nullptr) {
            fail(s.line, path + ".topic: required key is missing (the kafka sink's topic)");
            return false;
          }
          if (!get_string(*t, path, "topic", s.topic, true)) return false;
          s.bootstrap_servers = cfg.source.bootstrap_servers;
          if (!get_string(*t, path, "bootstrap_servers", s.bootstrap_servers, true)) return false;
          if (const toml::node* k = t->get("key")) {
            // Checked against the output columns once the query and aggregates are read.
            const toml::array* list = k->as_array();
            if (list == nullptr) return type_error(*k, path + ".key", "an array of field names");
            for (const toml::node& item : *list) {
              const auto* name = item.as_string();
              if (name == nullptr) return type_error(item, path + ".key", "field names (strings)");
              if (std::find(s.key.begin(), s.key.end(), name->get()) != s.key.end()) {
                fail(line_of(item), path + ".key: field '" + name->get() + "' is listed twice");
                return false;
              }
              s.key.push_back(name->get());
            }
            s.key_given = true;
            s.key_line = line_of(*k);
          }
          {
            std::size_t how = 0;
            if (!get_choice(*t, path, "partitioning", {"key", "round_robin"}, how)) return false;
            s.partitioning = how == 0 ? "key" : "round_robin";
          }
          if (!get_bool(*t, path, "transactional", s.transactional)) return false;
          break;
        case sink_kind::postgres:
          if (!read_postgres_sink(*t, path, cfg, s)) return false;
          break;
      }
      cfg.sinks.push_back(std::move(s));
    }
    return true;
  }

  bool read_file_format(const toml::table& t, const std::string& path, sink_config& s) {
    const toml::node* n = t.get("format");
    if (n == nullptr) return true;
    if (const auto* v = n->as_string(); v != nullptr && v->get() == "parquet") {
      fail(line_of(*n), path +
                            ".format: \"parquet\" is not supported: writing Parquet needs Apache "
                            "Arrow (libarrow/libparquet), which is not packaged in Debian 12 here; "
                            "use \"jsonl\" or \"csv\"");
      return false;
    }
    std::size_t format = 0;
    if (!get_choice(t, path, "format", {"jsonl", "csv"}, format)) return false;
    s.format = static_cast<file_format>(format);
    return true;
  }

  /// Each file sink's partition_by is a timestamp output column (known once the aggregates are).
  bool check_partition_by(const toml::table& root, const pipeline_config& cfg) {
    const std::vector<output_column> columns = output_columns(cfg);
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
      const sink_config& s = cfg.sinks[i];
      if (s.partition_by.empty()) continue;
      const toml::node* n = root["sinks"][i]["partition_by"].node();
      const int line = n != nullptr ? line_of(*n) : s.line;
      const std::string key = "sinks[" + std::to_string(i) + "].partition_by";
      const auto it = std::find_if(columns.begin(), columns.end(), [&](const output_column& c) {
        return c.name == s.partition_by;
      });
      std::string names;
      for (const auto& c : columns) {
        if (!names.empty()) names += ", ";
        names += c.name + " (" + std::string(to_string(c.type)) + ")";
      }
      if (it == columns.end()) {
        fail(line,
             key + ": '" + s.partition_by + "' is not an output column (they are: " + names + ")");
        return false;
      }
      if (it->type != field_type::timestamp) {
        fail(line, key + ": '" + s.partition_by + "' is " + std::string(to_string(it->type)) +
                       ", not timestamp: sub-folders are named by a timestamp's date (output "
                       "columns: " +
                       names + ")");
        return false;
      }
    }
    return true;
  }

  bool read_postgres_sink(const toml::table& t, const std::string& path, const pipeline_config& cfg,
                          sink_config& s) {
    if (t.get("table") == nullptr) {
      fail(s.line, path + ".table: required key is missing (the postgres sink's table)");
      return false;
    }
    if (!get_string(t, path, "table", s.table, true)) return false;
    if (auto why = check_table_name(s.table); !why.empty()) {
      fail(line_of(*t.get("table")), path + ".table: " + why);
      return false;
    }
    for (auto [key, out] : {std::pair{"dsn", &s.dsn},
                            {"host", &s.host},
                            {"dbname", &s.dbname},
                            {"user", &s.user},
                            {"password_env", &s.password_env},
                            {"password_file", &s.password_file}}) {
      if (!get_string(t, path, key, *out, true)) return false;
    }
    if (!get_int(t, path, "port", s.port, 1, 65535)) return false;
    if (t.get("password_env") != nullptr && t.get("password_file") != nullptr) {
      fail(line_of(*t.get("password_file")),
           path +
               ".password_file: give the password either by password_env or by "
               "password_file, not both");
      return false;
    }
    std::size_t mode = 0;
    if (!get_choice(t, path, "mode", {"append", "upsert"}, mode)) return false;
    s.upsert = mode == 1;
    if (!get_field_list(t, path, "key", cfg, s.key)) return false;
    if (t.get("key") != nullptr && s.key.empty()) {
      fail(line_of(*t.get("key")), path + ".key: must not be empty");
      return false;
    }
    return get_duration(t, path, "reconnect_timeout", s.reconnect_timeout_us, true);
  }

  /// Once the aggregation is known: the key columns of every postgres sink (`key` of a
  /// cleaned-row pipeline; window bounds and group_by of an aggregating one).
  bool check_postgres_keys(pipeline_config& cfg) {
    const std::vector<int> out = cfg.output_field_indices();
    for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
      sink_config& s = cfg.sinks[i];
      if (s.kind != sink_kind::postgres) continue;
      const std::string path = "sinks[" + std::to_string(i) + "]";
      if (!cfg.aggregates.empty()) {
        if (!s.key.empty()) {
          fail(s.line, path +
                           ".key: not used by an aggregating pipeline: its rows are identified "
                           "by window_start, window_end and aggregate.group_by");
          return false;
        }
        if (!s.upsert) continue;
        if (cfg.window.kind != window_kind::global) s.key = {"window_start", "window_end"};
        for (const auto& g : cfg.aggregation.group_by) s.key.push_back(g);
        if (s.key.empty()) {
          fail(s.line, path +
                           ".mode: \"upsert\" needs key columns, and a global window without "
                           "aggregate.group_by has none (its one row would be rewritten): use "
                           "mode = \"append\" or group_by");
          return false;
        }
        continue;
      }
      for (const auto& k : s.key) {
        const int idx = cfg.field_index(k);
        if (std::find(out.begin(), out.end(), idx) == out.end()) {
          fail(s.line, path + ".key: field '" + k +
                           "' is not an output column (it is not in query.select)");
          return false;
        }
      }
      if (!s.upsert && !s.key.empty()) {
        fail(s.line, path + ".key: only used with mode = \"upsert\"");
        return false;
      }
      if (s.upsert && s.key.empty()) {
        fail(s.line, path +
                         ".mode: \"upsert\" needs the fields that identify a row, and this "
                         "cleaned-row pipeline declares none: list them as key = [\"id\", ...] "
                         "in this [[sinks]] table, or use mode = \"append\"");
        return false;
      }
    }
    return true;
  }

  /// "" when `name` is "table" or "schema.table" of identifiers [A-Za-z_][A-Za-z0-9_$]* (at most
  /// 63 bytes each, PostgreSQL's limit); else why not.
  static std::string check_table_name(const std::string& name) {
    std::size_t start = 0;
    int parts = 0;
    while (true) {
      const std::size_t dot = name.find('.', start);
      const std::string part =
          name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      ++parts;
      const bool ok = !part.empty() && part.size() <= 63 &&
                      (std::isalpha(static_cast<unsigned char>(part[0])) || part[0] == '_') &&
                      std::all_of(part.begin(), part.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
                      });
      if (!ok || parts > 2)
        return "expected \"table\" or \"schema.table\" (letters, digits, '_' and '$', not "
               "starting with a digit, at most 63 each), got \"" +
               name + "\"";
      if (dot == std::string::npos) return {};
      start = dot + 1;
    }
  }

  bool read_dead_letter(const toml::table& t, pipeline_config& cfg) {
    if (!check_keys(t, "dead_letter", dead_letter_keys)) return false;
    if (!get_string(t, "dead_letter", "path", cfg.dead_letter.path, true)) return false;
    return get_string(t, "dead_letter", "topic", cfg.dead_letter.topic);
  }

  bool read_checkpoint(const toml::table& t, pipeline_config& cfg) {
    checkpoint_config& c = cfg.checkpoint;
    c.line = line_of(t);
    if (!check_keys(t, "checkpoint", checkpoint_keys)) return false;
    if (!get_string(t, "checkpoint", "dir", c.dir, true)) return false;
    int64_t interval_us = c.interval_ms * us_per_ms;
    if (!get_duration(t, "checkpoint", "interval", interval_us)) return false;
    constexpr int64_t min_interval_us = 10 * us_per_ms;
    constexpr int64_t max_interval_us = 3'600'000 * us_per_ms;
    if (interval_us < min_interval_us || interval_us > max_interval_us) {
      fail(line_of(*t.get("interval")),
           "checkpoint.interval: must be between " + format_duration(min_interval_us) + " and " +
               format_duration(max_interval_us) + ", got " + format_duration(interval_us));
      return false;
    }
    c.interval_ms = interval_us / us_per_ms;
    if (!get_int(t, "checkpoint", "retain", c.retain, 1, 1000)) return false;
    if (!get_string(t, "checkpoint", "local_dir", c.local_dir, true)) return false;
    if (c.local_dir.empty() && !c.dir.empty()) {
      c.local_dir = (std::filesystem::path(c.dir) / "local").string();
    }
    if (const toml::node* local = t.get("local_dir"); local != nullptr && !c.dir.empty()) {
      // The task DB directory is cleared when a run starts: it must neither contain the
      // checkpoint storage nor lie inside the store's own sst/ and epochs/ directories.
      const auto root = comparable_path(c.dir);
      const auto db = comparable_path(c.local_dir);
      if (is_within(root, db) || is_within(db, root / "sst") || is_within(db, root / "epochs")) {
        fail(line_of(*local), "checkpoint.local_dir: \"" + c.local_dir +
                                  "\" overlaps the checkpoint storage in checkpoint.dir \"" +
                                  c.dir +
                                  "\" (the local directory is cleared at every start); use a "
                                  "directory of its own, e.g. \"" +
                                  (std::filesystem::path(c.dir) / "local").string() + "\"");
        return false;
      }
    }
    if (!get_int(t, "checkpoint", "block_cache_mb", c.block_cache_mb, 1, 65536)) return false;
    if (!get_int(t, "checkpoint", "write_buffer_mb", c.write_buffer_mb, 1, 65536)) return false;
    std::size_t backend = 0;
    if (!get_choice(t, "checkpoint", "state_backend", {"memory", "rocksdb"}, backend)) return false;
    c.state_in_rocksdb = backend == 1;
    return get_bool(t, "checkpoint", "sync", c.sync);
  }

  /// `[window]`, `[[aggregates]]` and `[aggregate]`, and how they fit together.
  bool read_aggregation(const toml::table& root, pipeline_config& cfg) {
    const toml::node* aggregates = root.get("aggregates");
    const toml::array* aggregate_list = aggregates != nullptr ? aggregates->as_array() : nullptr;
    // Not an array: read_aggregates reports the type.
    const bool aggregating =
        aggregates != nullptr && (aggregate_list == nullptr || !aggregate_list->empty());

    const toml::table* window = table_at(root, "window");
    if (!error_.empty()) return false;
    const toml::table* aggregate = table_at(root, "aggregate");
    if (!error_.empty()) return false;
    if (!aggregating) {
      if (window != nullptr) {
        fail(line_of(*window), "window: a [window] needs at least one [[aggregates]]");
        return false;
      }
      if (aggregate != nullptr) {
        fail(line_of(*aggregate), "aggregate: an [aggregate] needs at least one [[aggregates]]");
        return false;
      }
      return true;
    }

    if (window != nullptr) {
      if (!read_window(*window, cfg)) return false;
    } else {
      cfg.window.kind = window_kind::global;
      cfg.window.emit = emit_mode::on_update;
      cfg.window.processing_time = true;
    }
    if (aggregate != nullptr && !read_aggregate(*aggregate, cfg)) return false;
    if (!read_aggregates(*aggregates, cfg)) return false;

    if (!cfg.select.empty()) {
      const toml::node* select = root["query"]["select"].node();
      fail(select != nullptr ? line_of(*select) : 0,
           "query.select: not used with [[aggregates]]: the output is window, group_by and "
           "aggregates");
      return false;
    }
    return true;
  }

  bool read_window(const toml::table& t, pipeline_config& cfg) {
    window_config& w = cfg.window;
    if (!check_keys(t, "window", window_keys)) return false;
    if (t.get("type") == nullptr) {
      fail(line_of(t),
           "window.type: required key is missing (\"tumbling\", \"hopping\", \"session\" or "
           "\"global\")");
      return false;
    }
    std::size_t kind = 0;
    if (!get_choice(t, "window", "type", {"tumbling", "hopping", "session", "global"}, kind)) {
      return false;
    }
    w.kind = static_cast<window_kind>(kind + 1);
    const keys excluded = w.kind == window_kind::tumbling  ? not_tumbling_keys
                          : w.kind == window_kind::hopping ? not_hopping_keys
                          : w.kind == window_kind::session ? not_session_keys
                                                           : not_global_keys;
    // A key of another window type: name the type (the earliest such key in the file).
    const toml::key* misplaced = nullptr;
    for (auto&& [k, v] : t) {
      if (!contains(excluded, k.str())) continue;
      if (misplaced == nullptr || line_of(k.source()) < line_of(misplaced->source())) {
        misplaced = &k;
      }
    }
    if (misplaced != nullptr) {
      std::string taken;
      for (const auto k : window_keys) {
        if (contains(excluded, k)) continue;
        if (!taken.empty()) taken += ", ";
        taken += k;
      }
      const std::string type = t.get("type")->as_string()->get();
      fail(line_of(misplaced->source()), "window." + std::string(misplaced->str()) +
                                             ": not an option of " + type +
                                             " windows (they take: " + taken + ")");
      return false;
    }

    if (w.kind == window_kind::tumbling || w.kind == window_kind::hopping) {
      if (t.get("size") == nullptr) {
        fail(line_of(t), "window.size: required key is missing (the window length, e.g. \"1m\")");
        return false;
      }
      if (!get_duration(t, "window", "size", w.size_us, true)) return false;
    }
    if (w.kind == window_kind::hopping) {
      if (t.get("slide") == nullptr) {
        fail(line_of(t),
             "window.slide: required key is missing (how often a window starts, e.g. \"10s\")");
        return false;
      }
      if (!get_duration(t, "window", "slide", w.slide_us, true)) return false;
      if (w.size_us % w.slide_us != 0) {
        fail(line_of(*t.get("slide")), "window.slide: " + format_duration(w.slide_us) +
                                           " does not divide window.size " +
                                           format_duration(w.size_us));
        return false;
      }
      if (w.size_us / w.slide_us > max_windows_per_row) {
        fail(line_of(*t.get("slide")),
             "window.slide: " + format_duration(w.slide_us) + " puts every row in " +
                 std::to_string(w.size_us / w.slide_us) + " windows of size " +
                 format_duration(w.size_us) + "; at most " + std::to_string(max_windows_per_row) +
                 " are allowed (size / slide <= " + std::to_string(max_windows_per_row) + ")");
        return false;
      }
    }
    if (w.kind == window_kind::session) {
      if (t.get("gap") == nullptr) {
        fail(line_of(t),
             "window.gap: required key is missing (the silence that ends a session, e.g. "
             "\"30m\")");
        return false;
      }
      if (!get_duration(t, "window", "gap", w.gap_us, true)) return false;
    }

    std::size_t time = 0;
    if (!get_choice(t, "window", "time", {"event", "processing"}, time)) return false;
    w.processing_time = time == 1;
    if (const toml::node* field = t.get("time_field")) {
      if (w.processing_time) {
        fail(line_of(*field), "window.time_field: not used with time = \"processing\"");
        return false;
      }
      if (!get_string(t, "window", "time_field", w.time_field, true)) return false;
      if (!check_field_name(cfg, w.time_field, "window.time_field", line_of(*field))) {
        return false;
      }
      w.time_field_index = cfg.field_index(w.time_field);
      const field_config& f = cfg.fields[static_cast<std::size_t>(w.time_field_index)];
      if (f.type != field_type::timestamp) {
        fail(line_of(*field), "window.time_field: '" + f.name + "' is " +
                                  std::string(to_string(f.type)) + ", not timestamp");
        return false;
      }
    } else if (!w.processing_time) {
      if (w.kind != window_kind::global) {
        fail(line_of(t),
             "window.time_field: required key is missing (a timestamp field, or time = "
             "\"processing\")");
        return false;
      }
      w.processing_time = true;  // a global window without a time field: arrival order
    }

    if (!get_duration(t, "window", "max_out_of_orderness", w.max_out_of_orderness_us)) {
      return false;
    }
    if (!get_duration(t, "window", "allowed_lateness", w.allowed_lateness_us)) return false;
    if (!get_duration(t, "window", "idle_timeout", w.idle_timeout_us)) return false;
    if (const toml::node* skew = t.get("max_event_time_skew"); skew && w.processing_time) {
      fail(line_of(*skew), "window.max_event_time_skew: not used with time = \"processing\"");
      return false;
    }
    if (w.kind != window_kind::global && !w.processing_time) {
      w.max_event_time_skew_us = default_max_event_time_skew_us;
      if (!get_duration(t, "window", "max_event_time_skew", w.max_event_time_skew_us)) {
        return false;
      }
    }

    w.emit = w.kind == window_kind::global ? emit_mode::on_update : emit_mode::on_close;
    std::size_t emit = static_cast<std::size_t>(w.emit);
    if (!get_choice(t, "window", "emit", {"on_close", "on_update"}, emit)) return false;
    w.emit = static_cast<emit_mode>(emit);
    if (w.kind == window_kind::global && w.emit == emit_mode::on_close) {
      fail(line_of(*t.get("emit")),
           "window.emit: a global window never closes; use \"on_update\" (the default)");
      return false;
    }
    std::size_t late = 0;
    if (!get_choice(t, "window", "late", {"drop", "dead_letter", "update"}, late)) return false;
    w.late = static_cast<late_policy>(late);
    return true;
  }

  bool read_aggregate(const toml::table& t, pipeline_config& cfg) {
    aggregation_config& a = cfg.aggregation;
    if (!check_keys(t, "aggregate", aggregate_keys)) return false;
    if (!get_field_list(t, "aggregate", "group_by", cfg, a.group_by)) return false;
    if (cfg.window.kind != window_kind::global) {
      for (const auto& name : a.group_by) {
        if (name == "window_start" || name == "window_end") {
          fail(line_of(*t.get("group_by")),
               "aggregate.group_by: '" + name + "' is the name of a window bounds column");
          return false;
        }
      }
    }
    std::size_t mode = 0;
    if (!get_choice(t, "aggregate", "mode", {"append", "changelog"}, mode)) return false;
    a.mode = mode == 0 ? "append" : "changelog";
    if (const toml::node* key = t.get("primary_key")) {
      if (mode == 0) {
        fail(line_of(*key), "aggregate.primary_key: only used with mode = \"changelog\"");
        return false;
      }
      if (!get_field_list(t, "aggregate", "primary_key", cfg, a.primary_key)) return false;
      if (a.primary_key.empty()) {
        fail(line_of(*key), "aggregate.primary_key: must not be empty");
        return false;
      }
    } else if (mode == 1) {
      if (cfg.field_index("id") < 0) {
        fail(line_of(*t.get("mode")),
             "aggregate.primary_key: required with mode = \"changelog\" (there is no field "
             "named 'id' to default to): list the fields that identify a source row");
        return false;
      }
      a.primary_key = {"id"};
    }
    if (!get_string(t, "aggregate", "having", a.having)) return false;
    return get_int(t, "aggregate", "shards", a.shards, 1, 256);
  }

  bool read_aggregates(const toml::node& n, pipeline_config& cfg) {
    const toml::array* list = n.as_array();
    if (list == nullptr) return type_error(n, "aggregates", "an array of tables ([[aggregates]])");
    const bool changelog = cfg.aggregation.mode == "changelog";
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& item = *list->get(i);
      const std::string path = "aggregates[" + std::to_string(i) + "]";
      const toml::table* t = item.as_table();
      if (t == nullptr) return type_error(item, path, "a table ([[aggregates]])");
      if (!check_keys(*t, path, aggregates_keys)) return false;
      aggregate_config a;
      a.line = line_of(*t);

      if (t->get("alias") == nullptr) {
        fail(a.line, path + ".alias: required key is missing (the name of the output column)");
        return false;
      }
      if (!get_string(*t, path, "alias", a.alias)) return false;
      const int alias_line = line_of(*t->get("alias"));
      if (!is_identifier(a.alias)) {
        fail(alias_line, path + ".alias: \"" + a.alias +
                             "\" is not an identifier (letters, digits and '_', not starting "
                             "with a digit)");
        return false;
      }
      for (const auto& other : cfg.aggregates) {
        if (other.alias == a.alias) {
          fail(alias_line, path + ".alias: duplicate alias '" + a.alias + "' (first used at line " +
                               std::to_string(other.line) + ")");
          return false;
        }
      }
      const auto& group_by = cfg.aggregation.group_by;
      if (std::find(group_by.begin(), group_by.end(), a.alias) != group_by.end()) {
        fail(alias_line, path + ".alias: '" + a.alias +
                             "' is also a group_by field; output columns need distinct names");
        return false;
      }
      if (a.alias == "window_start" || a.alias == "window_end") {
        fail(alias_line, path + ".alias: '" + a.alias + "' is reserved for the window bounds");
        return false;
      }

      if (t->get("function") == nullptr) {
        fail(a.line, path + ".function: required key is missing (one of " +
                         join(aggregate_functions) + ")");
        return false;
      }
      if (!get_string(*t, path, "function", a.function)) return false;
      const int function_line = line_of(*t->get("function"));
      if (!contains(aggregate_functions, a.function)) {
        std::string message = path + ".function: unknown function \"" + a.function + "\"";
        const std::string hint =
            closest_name(a.function, std::vector<std::string_view>(aggregate_functions));
        if (!hint.empty()) message += "; did you mean \"" + hint + "\"?";
        message += " (known: " + join(aggregate_functions) + ")";
        fail(function_line, std::move(message));
        return false;
      }
      if (changelog && !contains(retractable_aggregate_functions, a.function)) {
        fail(function_line, path + ".function: " + a.function +
                                " cannot take a row back, so it cannot be used with "
                                "aggregate.mode = \"changelog\" (these can: " +
                                join(retractable_aggregate_functions) + ")");
        return false;
      }

      const toml::node* q = t->get("q");
      if (a.function == "percentile") {
        if (q == nullptr) {
          fail(a.line, path +
                           ".q: required key is missing (the quantile, between 0 and 1, e.g. "
                           "0.95)");
          return false;
        }
        if (!q->is_number()) return type_error(*q, path + ".q", "a number between 0 and 1");
        a.q = q->is_integer() ? static_cast<double>(q->as_integer()->get())
                              : q->as_floating_point()->get();
        if (!(a.q > 0.0 && a.q < 1.0)) {
          std::ostringstream text;
          text << a.q;
          fail(line_of(*q), path + ".q: must be between 0 and 1 (exclusive), got " + text.str());
          return false;
        }
      } else if (q != nullptr) {
        fail(line_of(*q),
             path + ".q: only valid with function = \"percentile\", not \"" + a.function + "\"");
        return false;
      } else if (a.function.size() == 3 && a.function[0] == 'p') {  // p50, p90, p95, p99
        a.q = ((a.function[1] - '0') * 10 + (a.function[2] - '0')) / 100.0;
      }

      if (const toml::node* field = t->get("field")) {
        if (!get_string(*t, path, "field", a.field, true)) return false;
        if (!check_field_name(cfg, a.field, path + ".field", line_of(*field))) return false;
        const field_config& f = cfg.fields[static_cast<std::size_t>(cfg.field_index(a.field))];
        if (contains(numeric_aggregate_functions, a.function) && f.type != field_type::int64 &&
            f.type != field_type::float64) {
          fail(line_of(*field), path + ".field: " + a.function +
                                    " needs an int or double field ('" + f.name + "' is " +
                                    std::string(to_string(f.type)) + ")");
          return false;
        }
      } else if (a.function != "count") {
        fail(a.line, path + ".field: required key is missing (" + a.function +
                         " needs a field; only count works without one)");
        return false;
      }
      cfg.aggregates.push_back(std::move(a));
    }
    return true;
  }

  std::string file_;
  std::string error_;
};

}  // namespace

int pipeline_config::field_index(std::string_view name) const {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<int> pipeline_config::output_field_indices() const {
  std::vector<int> out;
  if (select.empty()) {
    out.reserve(fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i) out.push_back(static_cast<int>(i));
  } else {
    out.reserve(select.size());
    for (const auto& name : select) out.push_back(field_index(name));
  }
  return out;
}

config_result parse_pipeline_config(std::string_view toml_text, std::string_view file_name) {
  config_result result;
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    result.error = std::string(file_name) + ":" + std::to_string(where.line) + ":" +
                   std::to_string(where.column) + ": " + std::string(e.description());
    return result;
  } catch (const std::exception& e) {  // e.g. std::bad_alloc: never let it escape
    result.error = std::string(file_name) + ": " + e.what();
    return result;
  }
  loader l(file_name);
  result.config = l.load(root);
  if (!result.config) result.error = l.error();
  return result;
}

config_result load_pipeline_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec(errno, std::generic_category());
    config_result result;
    result.error = "cannot read pipeline file '" + path + "': " + ec.message();
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    config_result result;
    result.error = "cannot read pipeline file '" + path + "'";
    return result;
  }
  return parse_pipeline_config(text.str(), path);
}

std::string_view to_string(message_format f) {
  switch (f) {
    case message_format::auto_detect:
      return "auto";
    case message_format::unwrapped:
      return "unwrapped";
    case message_format::envelope:
      return "envelope";
    case message_format::schema:
      return "schema";
  }
  return "?";
}

std::string_view to_string(time_unit u) {
  switch (u) {
    case time_unit::auto_detect:
      return "auto";
    case time_unit::seconds:
      return "seconds";
    case time_unit::millis:
      return "millis";
    case time_unit::micros:
      return "micros";
    case time_unit::nanos:
      return "nanos";
    case time_unit::days:
      return "days";
    case time_unit::iso:
      return "iso";
  }
  return "?";
}

std::string_view to_string(sink_kind k) {
  switch (k) {
    case sink_kind::console:
      return "console";
    case sink_kind::file:
      return "file";
    case sink_kind::kafka:
      return "kafka";
    case sink_kind::postgres:
      return "postgres";
  }
  return "?";
}

std::string_view to_string(file_format f) {
  switch (f) {
    case file_format::jsonl:
      return "jsonl";
    case file_format::csv:
      return "csv";
  }
  return "?";
}

std::vector<output_column> output_columns(const pipeline_config& cfg) {
  std::vector<output_column> out;
  auto type_of = [&](const std::string& name) {
    const int i = cfg.field_index(name);
    return i < 0 ? field_type::string : cfg.fields[static_cast<std::size_t>(i)].type;
  };
  if (cfg.aggregates.empty()) {
    for (int i : cfg.output_field_indices()) {
      if (i < 0) continue;
      const field_config& f = cfg.fields[static_cast<std::size_t>(i)];
      out.push_back({f.name, f.type});
    }
    return out;
  }
  if (cfg.window.kind != window_kind::global) {
    out.push_back({"window_start", field_type::timestamp});
    out.push_back({"window_end", field_type::timestamp});
  }
  for (const auto& g : cfg.aggregation.group_by) out.push_back({g, type_of(g)});
  for (const auto& a : cfg.aggregates) {
    const std::string& fn = a.function;
    field_type t = field_type::float64;  // avg, percentile, p50 ... p99
    if (fn == "count" || fn == "count_distinct" || fn == "approx_count_distinct") {
      t = field_type::int64;
    } else if (fn == "sum") {
      t = type_of(a.field) == field_type::float64 ? field_type::float64 : field_type::int64;
    } else if (fn == "min" || fn == "max" || fn == "first" || fn == "last") {
      t = type_of(a.field);
    }
    out.push_back({a.alias, t});
  }
  return out;
}

void apply_bootstrap_override(pipeline_config& cfg, const std::string& bootstrap) {
  if (bootstrap.empty()) return;
  for (auto& sink : cfg.sinks)
    if (sink.kind == sink_kind::kafka && sink.bootstrap_servers == cfg.source.bootstrap_servers)
      sink.bootstrap_servers = bootstrap;
  cfg.source.bootstrap_servers = bootstrap;
}

std::vector<std::string> staged_output_dirs(const pipeline_config& cfg) {
  std::vector<std::string> dirs;
  for (std::size_t i = 0; i < cfg.sinks.size(); ++i) {
    if (cfg.sinks[i].kind == sink_kind::file) dirs.push_back(cfg.sinks[i].path);
    if (auto d = sink_staging_dir(cfg, i); !d.empty()) dirs.push_back(std::move(d));
  }
  dirs.push_back(cfg.dead_letter.path);
  return dirs;
}

std::string sink_staging_dir(const pipeline_config& cfg, std::size_t index) {
  if (!cfg.checkpoint.enabled() || index >= cfg.sinks.size()) return {};
  const sink_kind k = cfg.sinks[index].kind;
  if (k != sink_kind::postgres && k != sink_kind::kafka) return {};
  return cfg.checkpoint.dir + "/sinks/" + std::string(to_string(k)) + "-" + std::to_string(index);
}

std::vector<std::string> output_column_names(const pipeline_config& cfg) {
  std::vector<std::string> names;
  for (auto& c : output_columns(cfg)) names.push_back(std::move(c.name));
  return names;
}

}  // namespace eddy
