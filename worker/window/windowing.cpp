#include "worker/window/windowing.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "model/time_format.hpp"
#include "worker/window/byte_codec.hpp"

// Implementation notes (the semantics are in windowing.hpp):
//
// * Group keys and primary keys are rows hashed with our own stable 64-bit hash (`hash_row`),
//   so `shard_of` is the same in every process and build. Doubles are canonicalised (-0.0 ->
//   +0.0, one NaN) for hashing and equality, so NaN keys still find their group.
// * Every group carries `rows`, the net number of contributions (adds − retractions), kept
//   here rather than read from accumulators: a group is emitted only while rows > 0.
// * Partition side: per shard, the partials since the last `take_partials` — a hash map
//   (window, key) → deltas; for sessions, per key an ordered map start → partial session,
//   merged on overlap (strict: s2 < e1) as rows arrive.
// * Shard side: `open_` is ordered by window (for tumbling/hopping/global that is also the
//   order of window ends), each window holding a hash map key → group. Sessions live per key
//   in an ordered map start → session, with a multimap end → (key, start) to close them in
//   order. Changed groups are remembered in `dirty_` (pointers into node-based containers,
//   which stay valid; the list is always drained before anything is erased).
// * Checkpoints are incremental: both stages remember what changed since the last checkpoint
//   and write only that, plus a meta key of scalars. Source side: flags in each changelog entry
//   (dirty, stored) and a set of deleted stored keys; shard side: `touched` (id -> whether the
//   checkpoint holds it). A group's `closed` flag is not stored: it is past(end) under the restored
//   closed_through. The key/value layout is described at "checkpoint encoding" below.

namespace eddy {

namespace {

constexpr int64_t min_time = std::numeric_limits<int64_t>::min();
constexpr int64_t max_time = std::numeric_limits<int64_t>::max();

/// a + b for b >= 0, saturating at INT64_MAX.
int64_t add_sat(int64_t a, int64_t b) {
  return a > max_time - b ? max_time : a + b;
}
/// a − b for b >= 0, saturating at INT64_MIN.
int64_t sub_sat(int64_t a, int64_t b) {
  return a < min_time + b ? min_time : a - b;
}

/// a mod b in [0, b), for b > 0 (no overflow: |a % b| < b).
int64_t pos_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

static_assert(min_event_time_us - 4 * max_duration_us > min_time / 2 &&
                  max_event_time_us + 4 * max_duration_us < max_time / 2,
              "window arithmetic on accepted event times must stay far from int64 overflow");

// ---- stable hashing and key equality ------------------------------------------------------

constexpr uint64_t map_seed = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t shard_seed = 0x51afd7ed558ccd2bULL;

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t combine(uint64_t h, uint64_t v) {
  return mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6)));
}

uint64_t hash_bytes(std::string_view s, uint64_t h) {
  h = combine(h, s.size());
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w = 0;
    for (int b = 0; b < 8; ++b)
      w |= static_cast<uint64_t>(static_cast<unsigned char>(s[i + b])) << (8 * b);
    h = combine(h, w);
  }
  uint64_t w = 0;
  for (int b = 0; i < s.size(); ++i, ++b) {
    w |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * b);
  }
  return combine(h, w);
}

uint64_t hash_value(const value& v, uint64_t h) {
  h = combine(h, v.index());
  switch (v.index()) {
    case 0:
      return h;
    case 1:
      return hash_bytes(std::get<std::string>(v), h);
    case 2:
      return combine(h, static_cast<uint64_t>(std::get<int64_t>(v)));
    case 3:
      return combine(h, std::bit_cast<uint64_t>(canonical_double(std::get<double>(v))));
    case 4:
      return combine(h, std::get<bool>(v) ? 1 : 0);
    case 5:
      return combine(h, static_cast<uint64_t>(std::get<timestamp>(v).micros));
    default:
      return h;
  }
}

uint64_t hash_row(const row& r, uint64_t seed) {
  uint64_t h = seed;
  for (const value& v : r) h = hash_value(v, h);
  return mix64(h ^ r.size());
}

bool value_eq(const value& a, const value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* d = std::get_if<double>(&a)) {
    return std::bit_cast<uint64_t>(canonical_double(*d)) ==
           std::bit_cast<uint64_t>(canonical_double(std::get<double>(b)));
  }
  return a == b;
}

struct row_hash {
  size_t operator()(const row& r) const { return static_cast<size_t>(hash_row(r, map_seed)); }
};
struct row_eq {
  bool operator()(const row& a, const row& b) const {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!value_eq(a[i], b[i])) return false;
    }
    return true;
  }
};

struct group_id {
  window_bounds window;
  row key;
};
struct group_id_hash {
  size_t operator()(const group_id& g) const {
    uint64_t h = combine(map_seed, static_cast<uint64_t>(g.window.start));
    h = combine(h, static_cast<uint64_t>(g.window.end));
    return static_cast<size_t>(hash_row(g.key, h));
  }
};
struct group_id_eq {
  bool operator()(const group_id& a, const group_id& b) const {
    return a.window == b.window && row_eq{}(a.key, b.key);
  }
};

// ---- plan helpers -------------------------------------------------------------------------

using acc_vector = std::vector<std::unique_ptr<accumulator>>;

acc_vector make_accs(const aggregation_plan& plan) {
  acc_vector accs;
  accs.reserve(plan.aggs.size());
  for (const agg_spec& spec : plan.aggs) accs.push_back(make_accumulator(spec));
  return accs;
}

void merge_accs(acc_vector& into, const acc_vector& from) {
  for (size_t i = 0; i < into.size() && i < from.size(); ++i) {
    if (from[i]) into[i]->merge(*from[i]);
  }
}

/// One row's contribution: what is added to (or retracted from) its windows.
struct contribution {
  int64_t time = 0;
  row key;     ///< group-by values
  row inputs;  ///< one value per aggregate (count(*) gets a non-null placeholder)
};

row project(const row& r, const std::vector<int>& indices) {
  row out;
  out.reserve(indices.size());
  for (int i : indices) {
    out.push_back(i >= 0 && static_cast<size_t>(i) < r.size() ? r[static_cast<size_t>(i)]
                                                              : value{});
  }
  return out;
}

/// The event time of `r` (event-time mode), nullopt when null.
std::optional<int64_t> row_time(const aggregation_plan& plan, const row& r) {
  const int i = plan.window.time_field_index;
  if (i < 0 || static_cast<size_t>(i) >= r.size()) return std::nullopt;
  if (const auto* t = std::get_if<timestamp>(&r[static_cast<size_t>(i)])) return t->micros;
  return std::nullopt;
}

contribution make_contribution(const aggregation_plan& plan, const row& r, int64_t t) {
  contribution c;
  c.time = t;
  c.key = project(r, plan.group_by);
  c.inputs.reserve(plan.aggs.size());
  for (const agg_spec& spec : plan.aggs) {
    if (spec.field < 0) {
      c.inputs.emplace_back(int64_t{1});
    } else {
      const auto i = static_cast<size_t>(spec.field);
      c.inputs.push_back(i < r.size() ? r[i] : value{});
    }
  }
  return c;
}

/// The windows of a row at `t` (not sessions), oldest first. Exact for accepted event times
/// (check_event_time); saturating (never overflowing) for any other.
void windows_of(const window_config& w, int64_t t, std::vector<window_bounds>& out) {
  out.clear();
  switch (w.kind) {
    case window_kind::tumbling: {
      const int64_t start = sub_sat(t, pos_mod(t, w.size_us));
      out.push_back({start, add_sat(start, w.size_us)});
      break;
    }
    case window_kind::hopping: {
      // every start = k*slide with start <= t < start + size: the last one and n-1 before it
      const int64_t last = sub_sat(t, pos_mod(t, w.slide_us));
      const int64_t n = w.size_us / w.slide_us;  // <= max_windows_per_row (from_config)
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t start = sub_sat(last, i * w.slide_us);  // i * slide < size: no overflow
        out.push_back({start, add_sat(start, w.size_us)});
      }
      break;
    }
    case window_kind::session:
    case window_kind::none:
    case window_kind::global:
      out.push_back({min_time, max_time});
      break;
  }
}

// ---- checkpoint encoding --------------------------------------------------------------------
//
// Keys: prefix + tag + body. Tags: 'm' meta (scalars, rewritten by every checkpoint), 'k'
// changelog state (row pk), 'w' window group (be64 start, be64 end, row key), 's' session (row
// key, be64 start). Rows are self-delimiting ([varint n][tag u8, payload]...; exact bits, so a
// key encodes the very row kept in memory), be64 is big-endian with the sign bit flipped, so
// windows scan in time order. Values start with a version byte.

constexpr uint8_t state_version = 1;
constexpr char tag_meta = 'm';
constexpr char tag_pk = 'k';
constexpr char tag_window = 'w';
constexpr char tag_session = 's';

using namespace byte_codec;

bool read_version(byte_reader& r) {
  uint8_t v = 0;
  return r.u8(&v) && v == state_version;
}

std::string pk_key(const std::string& prefix, const row& pk) {
  std::string k = prefix;
  k.push_back(tag_pk);
  put_row(k, pk);
  return k;
}

/// Bytes window_prefix() adds to the checkpoint prefix: the tag and two be64 bounds.
constexpr size_t window_prefix_bytes = 1 + 8 + 8;

/// The common prefix of every group key of window `w`.
std::string window_prefix(const std::string& prefix, const window_bounds& w) {
  std::string k = prefix;
  k.push_back(tag_window);
  put_be64(k, w.start);
  put_be64(k, w.end);
  return k;
}

std::string window_key(const std::string& prefix, const window_bounds& w, const row& key) {
  std::string k = window_prefix(prefix, w);
  put_row(k, key);
  return k;
}

std::string session_key(const std::string& prefix, const row& key, int64_t start) {
  std::string k = prefix;
  k.push_back(tag_session);
  put_row(k, key);
  put_be64(k, start);
  return k;
}

/// A group's value: [version][flags: bit 0 dirty][end (sessions only)][rows][accumulators].
std::string group_value(const std::optional<int64_t>& session_end, bool dirty, int64_t rows,
                        const std::vector<std::unique_ptr<accumulator>>& accs) {
  std::string v;
  put_u8(v, state_version);
  put_u8(v, dirty ? 1 : 0);
  if (session_end) put_svarint(v, *session_end);
  put_svarint(v, rows);
  for (const auto& a : accs) a->serialize(v);
  return v;
}

/// Parses the accumulators of `accs` (fresh ones, one per aggregate) from the rest of `r`.
bool read_accs(byte_reader& r, std::vector<std::unique_ptr<accumulator>>& accs) {
  for (auto& a : accs) {
    if (!a->deserialize(r.rest())) return false;
  }
  return r.done();
}

bool fail_restore(std::string* error, std::string msg) {
  if (error != nullptr) *error = std::move(msg);
  return false;
}

/// A changelog state value: [version][time][group key row][inputs row].
bool parse_contribution(std::string_view val, const aggregation_plan& plan, contribution* c) {
  byte_reader v(val);
  return read_version(v) && v.svarint(&c->time) && v.row_of(&c->key) && v.row_of(&c->inputs) &&
         v.done() && c->key.size() == plan.group_by.size() && c->inputs.size() == plan.aggs.size();
}

/// The `entries` of restore(prefix, entries, error) as a state_reader (scan ignores the prefix,
/// so that restore still sees and rejects keys outside it).
class entries_reader final : public state_reader {
 public:
  explicit entries_reader(const std::vector<std::pair<std::string, std::string>>& entries)
      : entries_(entries) {}
  std::optional<std::string> get(std::string_view key, std::string* /*error*/) const override {
    for (const auto& [k, v] : entries_) {
      if (k == key) return v;
    }
    return std::nullopt;
  }
  bool scan(std::string_view /*prefix*/,
            const std::function<bool(std::string_view, std::string_view)>& f,
            std::string* /*error*/) const override {
    for (const auto& [k, v] : entries_) {
      if (!f(k, v)) break;
    }
    return true;
  }

 private:
  const std::vector<std::pair<std::string, std::string>>& entries_;
};

/// Printable form of a state key for error messages.
std::string printable(std::string_view key) {
  static const char* const hex = "0123456789abcdef";
  std::string out;
  for (const char c : key.substr(0, 64)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xf]);
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

std::string iso(int64_t us) {
  static const time_formatter utc;
  if (us == min_time) return "-infinity";
  if (us == max_time) return "+infinity";
  return utc.format_iso(timestamp{us});
}

/// "<file>:<line>: " when known.
std::string where(const pipeline_config& cfg, int line) {
  if (line <= 0) return {};
  return (cfg.file_name.empty() ? std::string("pipeline.toml") : cfg.file_name) + ":" +
         std::to_string(line) + ": ";
}

std::string unknown_field(const pipeline_config& cfg, std::string_view key,
                          const std::string& name) {
  std::vector<std::string_view> names;
  for (const auto& f : cfg.fields) names.push_back(f.name);
  std::string msg = std::string(key) + ": unknown field '" + name + "'";
  const std::string hint = closest_name(name, names);
  if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
  return msg;
}

bool is_numeric(field_type t) {
  return t == field_type::int64 || t == field_type::float64;
}

}  // namespace

std::string check_event_time(const window_config& w, int64_t t, int64_t processing_time_us) {
  const std::string of = w.time_field.empty() ? std::string() : " (field '" + w.time_field + "')";
  if (t < min_event_time_us || t > max_event_time_us) {
    // Not printed as a date: the value may be beyond what a calendar can show.
    return "event time " + std::to_string(t) + " us since the epoch" + of +
           " is outside the supported range " + iso(min_event_time_us) + " to " +
           iso(max_event_time_us);
  }
  const int64_t skew = w.max_event_time_skew_us;
  if (skew > 0 && t > add_sat(processing_time_us, skew)) {
    return "event time " + iso(t) + of + " is more than " + format_duration(skew) +
           " ahead of the clock (" + iso(processing_time_us) + "; window.max_event_time_skew)";
  }
  return {};
}

// ---- aggregation_plan -----------------------------------------------------------------------

std::optional<aggregation_plan> aggregation_plan::from_config(const pipeline_config& cfg,
                                                              std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<aggregation_plan> {
    if (error != nullptr) *error = std::move(msg);
    return std::nullopt;
  };
  aggregation_plan plan;
  plan.window = cfg.window;
  window_config& w = plan.window;
  if (w.kind == window_kind::none) w.kind = window_kind::global;
  const bool global = w.kind == window_kind::global;

  if (cfg.aggregates.empty())
    return fail("aggregates: at least one [[aggregates]] entry is required");

  // time
  w.time_field_index = -1;
  if (!w.processing_time) {
    if (w.time_field.empty()) {
      if (!global) {
        return fail(
            "window.time_field: required (a declared timestamp field, or time = \"processing\")");
      }
      w.processing_time = true;  // a global window without a time field: arrival order
    } else {
      const int i = cfg.field_index(w.time_field);
      if (i < 0) return fail(unknown_field(cfg, "window.time_field", w.time_field));
      const field_type t = cfg.fields[static_cast<size_t>(i)].type;
      if (t != field_type::timestamp) {
        return fail("window.time_field: '" + w.time_field + "' is " + std::string(to_string(t)) +
                    ", expected a timestamp field");
      }
      w.time_field_index = i;
    }
  }
  switch (w.kind) {
    case window_kind::tumbling:
      if (w.size_us <= 0) return fail("window.size: must be positive");
      break;
    case window_kind::hopping:
      if (w.size_us <= 0) return fail("window.size: must be positive");
      if (w.slide_us <= 0) return fail("window.slide: must be positive");
      if (w.size_us % w.slide_us != 0)
        return fail("window.slide: size must be a multiple of slide");
      if (w.size_us / w.slide_us > max_windows_per_row) {
        return fail("window.slide: size / slide must be at most " +
                    std::to_string(max_windows_per_row) + " (windows per row), got " +
                    std::to_string(w.size_us / w.slide_us));
      }
      break;
    case window_kind::session:
      if (w.gap_us <= 0) return fail("window.gap: must be positive");
      break;
    case window_kind::none:
    case window_kind::global:
      break;
  }
  if (w.max_out_of_orderness_us < 0)
    return fail("window.max_out_of_orderness: must not be negative");
  if (w.allowed_lateness_us < 0) return fail("window.allowed_lateness: must not be negative");
  if (w.idle_timeout_us < 0) return fail("window.idle_timeout: must not be negative");
  if (w.max_event_time_skew_us < 0) return fail("window.max_event_time_skew: must not be negative");
  for (const auto& [name, us] : {std::pair<const char*, int64_t>{"size", w.size_us},
                                 {"slide", w.slide_us},
                                 {"gap", w.gap_us},
                                 {"max_out_of_orderness", w.max_out_of_orderness_us},
                                 {"allowed_lateness", w.allowed_lateness_us},
                                 {"idle_timeout", w.idle_timeout_us},
                                 {"max_event_time_skew", w.max_event_time_skew_us}}) {
    if (us > max_duration_us) {
      return fail(std::string("window.") + name + ": must be at most " +
                  format_duration(max_duration_us));
    }
  }

  // output columns
  std::vector<field_config> result_fields;
  auto add_column = [&](const std::string& name, field_type t) {
    field_config f;
    f.name = name;
    f.type = t;
    result_fields.push_back(std::move(f));
    plan.schema.names.push_back(name);
    plan.schema.types.push_back(t);
  };
  auto taken = [&](const std::string& name) {
    return std::find(plan.schema.names.begin(), plan.schema.names.end(), name) !=
           plan.schema.names.end();
  };
  if (!global) {
    add_column("window_start", field_type::timestamp);
    add_column("window_end", field_type::timestamp);
  }

  const aggregation_config& ac = cfg.aggregation;
  for (size_t i = 0; i < ac.group_by.size(); ++i) {
    const std::string key = "aggregate.group_by[" + std::to_string(i) + "]";
    const std::string& name = ac.group_by[i];
    const int idx = cfg.field_index(name);
    if (idx < 0) return fail(unknown_field(cfg, key, name));
    if (taken(name)) return fail(key + ": '" + name + "' is already an output column");
    plan.group_by.push_back(idx);
    add_column(name, cfg.fields[static_cast<size_t>(idx)].type);
  }

  if (ac.mode == "changelog") {
    plan.changelog = true;
  } else if (ac.mode != "append") {
    return fail("aggregate.mode: expected \"append\" or \"changelog\", got \"" + ac.mode + "\"");
  }

  for (size_t i = 0; i < cfg.aggregates.size(); ++i) {
    const aggregate_config& a = cfg.aggregates[i];
    const std::string key = where(cfg, a.line) + "aggregates[" + std::to_string(i) + "]";
    agg_spec spec;
    double q = 0.5;
    const auto fn = parse_agg_fn(a.function, &q);
    if (!fn) {
      return fail(key + ".function: unknown function '" + a.function +
                  "'; expected count, sum, avg, min, max, count_distinct, approx_count_distinct, "
                  "percentile, p50, p90, p95, p99, first or last");
    }
    spec.fn = *fn;
    if (spec.fn == agg_fn::percentile) {
      if (a.function == "percentile") q = a.q;
      if (!(q > 0.0 && q < 1.0)) return fail(key + ".q: must be between 0 and 1 (exclusive)");
      spec.q = q;
    }
    if (a.field.empty()) {
      if (spec.fn != agg_fn::count) {
        return fail(key + ".field: required for " + a.function + " (only count may omit it)");
      }
      spec.field = -1;
    } else {
      const int idx = cfg.field_index(a.field);
      if (idx < 0) return fail(unknown_field(cfg, key + ".field", a.field));
      spec.field = idx;
      spec.input_type = cfg.fields[static_cast<size_t>(idx)].type;
      const bool needs_number =
          spec.fn == agg_fn::sum || spec.fn == agg_fn::avg || spec.fn == agg_fn::percentile;
      if (needs_number && !is_numeric(spec.input_type)) {
        return fail(key + ".field: " + a.function + " needs a numeric field, '" + a.field +
                    "' is " + std::string(to_string(spec.input_type)));
      }
    }
    spec.alias = a.alias;
    if (spec.alias.empty()) {
      spec.alias = a.field.empty() ? a.function : a.function + "_" + a.field;
    }
    if (taken(spec.alias)) {
      return fail(key + ".alias: '" + spec.alias + "' is already an output column");
    }
    if (plan.changelog && !make_accumulator(spec)->retractable()) {
      return fail(key + ".function: " + a.function + " cannot be retracted in changelog mode");
    }
    add_column(spec.alias, result_type(spec));
    plan.aggs.push_back(std::move(spec));
  }

  if (plan.changelog) {
    if (w.kind == window_kind::session) {
      return fail("window.type: session windows cannot be used in changelog mode");
    }
    std::vector<std::string> pk = ac.primary_key;
    if (pk.empty()) {
      if (cfg.field_index("id") < 0) {
        return fail("aggregate.primary_key: required in changelog mode (no field named 'id')");
      }
      pk.emplace_back("id");
    }
    for (size_t i = 0; i < pk.size(); ++i) {
      const int idx = cfg.field_index(pk[i]);
      if (idx < 0) {
        return fail(unknown_field(cfg, "aggregate.primary_key[" + std::to_string(i) + "]", pk[i]));
      }
      plan.primary_key.push_back(idx);
    }
  }

  if (ac.shards < 1 || ac.shards > 256) {
    return fail("aggregate.shards: expected 1..256, got " + std::to_string(ac.shards));
  }
  plan.shard_count = ac.shards;

  std::string having_error;
  auto having = filter_expr::compile(ac.having, result_fields, &having_error);
  if (!having) return fail("aggregate.having: " + having_error);
  plan.having = std::move(*having);
  return plan;
}

int shard_of(const row& group_key, int shard_count) {
  if (shard_count <= 1) return 0;
  return static_cast<int>(hash_row(group_key, shard_seed) % static_cast<uint64_t>(shard_count));
}

// ---- partition_aggregator -----------------------------------------------------------------

namespace {

struct partial_group {
  acc_vector accs;
  int64_t rows = 0;
  bool late_update = false;
};

struct partial_session {
  int64_t end = 0;
  partial_group g;
};

using session_map = std::map<int64_t, partial_session>;  // start -> session

/// Finds the sessions of `m` overlapping [start, end) (strictly), merges them and the new
/// bounds into one entry, and returns it. `make` creates empty accumulators.
template <typename Session, typename Merge>
typename std::map<int64_t, Session>::iterator merge_sessions(std::map<int64_t, Session>& m,
                                                             int64_t start, int64_t end,
                                                             Merge&& merge_into) {
  auto it = m.lower_bound(start);
  if (it != m.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > start) it = prev;
  }
  // [it, last) overlap [start, end): s < end and e > start (sorted, disjoint).
  auto last = it;
  while (last != m.end() && last->first < end && last->second.end > start) ++last;
  if (it == last) return m.end();
  const int64_t new_start = std::min(start, it->first);
  int64_t new_end = end;
  for (auto j = it; j != last; ++j) new_end = std::max(new_end, j->second.end);
  // Keep the first overlapping session as the survivor, fold the others into it.
  Session survivor = std::move(it->second);
  for (auto j = std::next(it); j != last; ++j) merge_into(survivor, j->second);
  m.erase(it, last);
  survivor.end = new_end;
  return m.emplace(new_start, std::move(survivor)).first;
}

}  // namespace

struct partition_aggregator::impl {
  aggregation_plan plan;
  int32_t partition = 0;
  int64_t max_event_time = min_time;
  int64_t last_record_us = min_time;

  struct pending {
    std::unordered_map<group_id, partial_group, group_id_hash, group_id_eq> groups;
    std::unordered_map<row, session_map, row_hash, row_eq> sessions;
  };
  std::vector<pending> shards;
  /// A primary key's changelog state. The change tracking lives in the entry itself (one hash
  /// lookup per record instead of a second map): `dirty` = changed since the last checkpoint,
  /// `stored` = the last checkpoint holds this key (under this very row: an entry's key never
  /// changes while it lives).
  struct slot {
    contribution c;
    bool dirty = false;
    bool stored = false;
  };
  /// Changelog state: primary key -> the contribution last added for it. Unbacked: every key.
  /// Backed: only the keys read or changed since the last checkpoint (the rest is in the store).
  using state_map = std::unordered_map<row, slot, row_hash, row_eq>;
  state_map state;
  const state_reader* backing = nullptr;
  std::string backing_prefix;
  std::string backing_error;
  /// Keys the last checkpoint holds that were deleted since (each once, the row as stored).
  /// Backed: also what must not be read back from the store.
  std::unordered_set<row, row_hash, row_eq> deleted;
  bool tracking = true;  ///< track_changes: off when the run takes no checkpoints
  std::vector<window_bounds> scratch;

  /// Sets the state of `pk` (`known`: its entry from lookup, or state.end()) to `c`.
  void put(state_map::iterator known, row&& pk, contribution&& c) {
    if (known == state.end()) known = state.try_emplace(std::move(pk)).first;
    known->second.c = std::move(c);
    known->second.dirty = true;
  }
  /// Deletes the entry `known` (from lookup; state.end(): nothing to delete).
  void erase(state_map::iterator known) {
    if (known == state.end()) return;
    if (tracking && known->second.stored) {
      deleted.insert(std::move(state.extract(known).key()));
    } else {
      state.erase(known);
    }
  }

  /// The changelog entry of `pk`, read from the backing store into `state` when it is not in
  /// memory; state.end() when there is none. A key in `deleted` and absent from `state` was
  /// deleted since the checkpoint.
  state_map::iterator lookup(const row& pk) {
    if (auto it = state.find(pk); it != state.end()) return it;
    if (backing == nullptr || deleted.find(pk) != deleted.end()) return state.end();
    std::string err;
    const std::string key = pk_key(backing_prefix, pk);
    const auto val = backing->get(key, &err);
    if (!err.empty()) {
      if (backing_error.empty()) backing_error = std::move(err);
      return state.end();
    }
    if (!val) return state.end();
    slot sl;
    if (!parse_contribution(*val, plan, &sl.c)) {
      if (backing_error.empty())
        backing_error = "malformed changelog row in key '" + printable(key) + "'";
      return state.end();
    }
    sl.stored = true;
    return state.emplace(pk, std::move(sl)).first;
  }

  /// Backed: drops every clean entry (all of them right after a checkpoint).
  void evict() {
    if (backing == nullptr) return;
    for (auto it = state.begin(); it != state.end();) {
      it = it->second.dirty ? std::next(it) : state.erase(it);
    }
  }

  [[nodiscard]] int64_t watermark() const {
    return max_event_time == min_time
               ? min_time
               : sub_sat(max_event_time, plan.window.max_out_of_orderness_us);
  }

  partial_group new_group() const {
    partial_group g;
    g.accs = make_accs(plan);
    return g;
  }

  void add_to(partial_group& g, const contribution& c, int sign, bool late) {
    for (size_t i = 0; i < g.accs.size(); ++i) g.accs[i]->add(c.inputs[i], c.time, sign);
    g.rows += sign;
    g.late_update = g.late_update || late;
  }

  /// Applies one contribution to its windows, judging lateness against `wm`.
  /// Counts windows and late windows; `late_reason` describes the last late one.
  void apply(const contribution& c, int sign, int64_t wm, int& windows, int& late_windows,
             std::string& late_reason) {
    const window_config& w = plan.window;
    const bool update = w.late == late_policy::update;
    pending& p = shards[static_cast<size_t>(shard_of(c.key, plan.shard_count))];
    if (w.kind == window_kind::session) {
      ++windows;
      // A session row is late when the watermark is past the row's own time (+ lateness).
      const bool late = wm != min_time && wm > add_sat(c.time, w.allowed_lateness_us);
      if (late) {
        ++late_windows;
        late_reason = "late: event at " + iso(c.time) + " is behind watermark " + iso(wm) +
                      " (session window)";
        if (!update) return;
      }
      session_map& m = p.sessions[c.key];
      const int64_t end = add_sat(c.time, w.gap_us);
      auto it = merge_sessions(m, c.time, end, [](partial_session& a, partial_session& b) {
        merge_accs(a.g.accs, b.g.accs);
        a.g.rows += b.g.rows;
        a.g.late_update = a.g.late_update || b.g.late_update;
      });
      if (it == m.end()) it = m.emplace(c.time, partial_session{end, new_group()}).first;
      add_to(it->second.g, c, sign, late);
      return;
    }
    windows_of(w, c.time, scratch);
    for (const window_bounds& wb : scratch) {
      ++windows;
      const bool late = wm != min_time && wm >= add_sat(wb.end, w.allowed_lateness_us);
      if (late) {
        ++late_windows;
        late_reason = "late: window [" + iso(wb.start) + ", " + iso(wb.end) +
                      ") closed at watermark " + iso(wm);
        if (!update) continue;
      }
      auto [it, fresh] = p.groups.try_emplace(group_id{wb, c.key});
      if (fresh) it->second = new_group();
      add_to(it->second, c, sign, late);
    }
  }
};

partition_aggregator::partition_aggregator(const aggregation_plan& plan, int32_t partition)
    : impl_(std::make_unique<impl>()) {
  impl_->plan = plan;
  impl_->partition = partition;
  impl_->shards.resize(static_cast<size_t>(std::max(1, plan.shard_count)));
}

partition_aggregator::~partition_aggregator() = default;

int64_t partition_aggregator::watermark() const {
  return impl_->watermark();
}

aggregate_outcome partition_aggregator::add(const decoded_record& rec, int64_t processing_time_us,
                                            std::string& reason) {
  impl& s = *impl_;
  const aggregation_plan& plan = s.plan;
  s.last_record_us = processing_time_us;
  const bool proc = plan.window.processing_time;
  auto time_of = [&](const row& r) -> std::optional<int64_t> {
    return proc ? std::optional<int64_t>(processing_time_us) : row_time(plan, r);
  };

  std::optional<contribution> retract;
  std::optional<contribution> add;
  std::optional<row> pk;
  auto known = s.state.end();         // the entry of pk (changelog), still valid after apply()
  bool retract_from_message = false;  // retract comes from the message's before-image
  if (!plan.changelog) {
    const auto t = time_of(rec.image);
    if (!t) {
      reason = "null event time";
      return aggregate_outcome::dead_letter;
    }
    add = make_contribution(plan, rec.image, *t);
  } else {
    pk = project(rec.image, plan.primary_key);
    known = s.lookup(*pk);
    if (known != s.state.end()) {
      retract = known->second.c;  // exactly what this partition added for the key
    } else {
      // Unknown key: only what the message itself says about the previous row.
      const row* before = rec.op == cdc_op::del                      ? &rec.image
                          : (rec.op == cdc_op::update && rec.before) ? &*rec.before
                                                                     : nullptr;
      if (before != nullptr && !proc) {
        if (const auto t = row_time(plan, *before)) {
          retract = make_contribution(plan, *before, *t);
          retract_from_message = true;
        }
      }
    }
    if (rec.op != cdc_op::del) {
      const auto t = time_of(rec.image);
      if (!t) {
        reason = "null event time";
        return aggregate_outcome::dead_letter;
      }
      add = make_contribution(plan, rec.image, *t);
    } else if (!retract && !time_of(rec.image)) {
      reason = "null event time";
      return aggregate_outcome::dead_letter;
    }
  }

  // Event times the windows cannot take: dead-lettered before anything moves (watermark,
  // windows, state). A retraction of what state holds was checked when it was added.
  if (!proc) {
    if (add) {
      reason = check_event_time(plan.window, add->time, processing_time_us);
      if (!reason.empty()) return aggregate_outcome::dead_letter;
    }
    if (retract && retract_from_message) {
      reason = check_event_time(plan.window, retract->time, processing_time_us);
      if (!reason.empty()) {
        reason = (rec.op == cdc_op::del ? "deleted row: " : "before image: ") + reason;
        return aggregate_outcome::dead_letter;
      }
    }
  }

  const int64_t wm = s.watermark();  // the partition's watermark at the row's arrival
  int windows = 0;
  int late_windows = 0;
  std::string late_reason;
  if (retract) s.apply(*retract, -1, wm, windows, late_windows, late_reason);
  if (add) s.apply(*add, +1, wm, windows, late_windows, late_reason);

  const int64_t event_time = proc      ? processing_time_us
                             : add     ? add->time
                             : retract ? retract->time
                                       : min_time;
  s.max_event_time = std::max(s.max_event_time, event_time);
  if (plan.changelog) {
    if (add) {
      s.put(known, std::move(*pk), std::move(*add));
    } else {
      s.erase(known);
    }
  }

  if (windows > 0 && late_windows == windows) {
    if (plan.window.late == late_policy::dead_letter) {
      reason = std::move(late_reason);
      return aggregate_outcome::dead_letter;
    }
    return aggregate_outcome::late;
  }
  return aggregate_outcome::contributed;
}

void partition_aggregator::forget(const row& image) {
  impl& s = *impl_;
  if (!s.plan.changelog) return;
  const row pk = project(image, s.plan.primary_key);
  const auto known = s.lookup(pk);
  if (known == s.state.end()) return;
  int windows = 0, late_windows = 0;
  std::string late_reason;
  s.apply(known->second.c, -1, s.watermark(), windows, late_windows, late_reason);
  s.erase(known);
}

void partition_aggregator::take_partials(std::vector<partial_batch>& out,
                                         int64_t processing_time_us) {
  impl& s = *impl_;
  out.resize(s.shards.size());
  const int64_t wm = s.watermark();
  for (size_t i = 0; i < s.shards.size(); ++i) {
    partial_batch& b = out[i];
    b.partition = s.partition;
    b.watermark = wm;
    b.processing_time_us = processing_time_us;
    b.last_record_us = s.last_record_us;
    b.entries.clear();
    auto& groups = s.shards[i].groups;
    b.entries.reserve(groups.size());
    while (!groups.empty()) {
      auto node = groups.extract(groups.begin());
      partial_batch::entry e;
      e.window = node.key().window;
      e.key = std::move(node.key().key);
      e.accs = std::move(node.mapped().accs);
      e.rows = node.mapped().rows;
      e.late_update = node.mapped().late_update;
      b.entries.push_back(std::move(e));
    }
    auto& sessions = s.shards[i].sessions;
    while (!sessions.empty()) {
      auto node = sessions.extract(sessions.begin());
      for (auto& [start, ps] : node.mapped()) {
        partial_batch::entry e;
        e.window = {start, ps.end};
        e.key = node.key();
        e.accs = std::move(ps.g.accs);
        e.rows = ps.g.rows;
        e.late_update = ps.g.late_update;
        b.entries.push_back(std::move(e));
      }
    }
  }
}

void partition_aggregator::checkpoint(const std::string& prefix, std::vector<state_op>& ops) {
  impl& s = *impl_;
  // Deletes first: a key deleted and added again (maybe equal but not bit for bit) is deleted,
  // then written (kv_store::write_batch keeps the order of ops on one key).
  for (const row& pk : s.deleted) ops.emplace_back(pk_key(prefix, pk), std::nullopt);
  s.deleted.clear();
  for (auto& [pk, sl] : s.state) {  // unbacked: every key (a pass over memory); backed: few
    if (!sl.dirty) continue;
    std::string v;
    v.reserve(64);
    put_u8(v, state_version);
    put_svarint(v, sl.c.time);
    put_row(v, sl.c.key);
    put_row(v, sl.c.inputs);
    ops.emplace_back(pk_key(prefix, pk), std::move(v));
    sl.dirty = false;
    sl.stored = true;
  }
  s.evict();  // the caller applies `ops` before the next access
  std::string meta;
  put_u8(meta, state_version);
  put_svarint(meta, s.partition);
  put_svarint(meta, s.max_event_time);
  put_svarint(meta, s.last_record_us);
  ops.emplace_back(prefix + tag_meta, std::move(meta));
}

bool partition_aggregator::restore(const std::string& prefix,
                                   const std::vector<std::pair<std::string, std::string>>& entries,
                                   std::string* error) {
  return restore(entries_reader(entries), prefix, error);
}

bool partition_aggregator::restore(const state_reader& reader, const std::string& prefix,
                                   std::string* error) {
  auto fresh = std::make_unique<impl>();
  fresh->plan = impl_->plan;
  fresh->partition = impl_->partition;
  fresh->shards.resize(impl_->shards.size());
  fresh->backing = impl_->backing;
  fresh->backing_prefix = impl_->backing_prefix;
  fresh->tracking = impl_->tracking;
  impl& s = *fresh;
  const bool backed = s.backing != nullptr;
  bool have_meta = false;
  bool any = false;
  std::string failure;
  auto fail = [&](std::string msg) {
    failure = std::move(msg);
    return false;
  };
  std::string read_error;
  const bool read_ok = reader.scan(
      prefix,
      [&](std::string_view key, std::string_view val) {
        any = true;
        if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) {
          return fail("state key '" + printable(key) + "' lacks prefix '" + printable(prefix) +
                      "'");
        }
        const char tag = key[prefix.size()];
        byte_reader k(key.substr(prefix.size() + 1));
        byte_reader v(val);
        const std::string where = " in partition state key '" + printable(key) + "'";
        if (tag == tag_meta && k.done()) {
          int64_t partition = 0;
          if (!read_version(v) || !v.svarint(&partition) || !v.svarint(&s.max_event_time) ||
              !v.svarint(&s.last_record_us) || !v.done()) {
            return fail("malformed meta value" + where);
          }
          if (partition != s.partition) {
            return fail("state of partition " + std::to_string(partition) +
                        " restored into partition " + std::to_string(s.partition) + where);
          }
          have_meta = true;
        } else if (tag == tag_pk) {
          if (!s.plan.changelog) return fail("changelog state in append mode" + where);
          row pk;
          impl::slot sl;
          if (!k.row_of(&pk) || !k.done() || pk.size() != s.plan.primary_key.size()) {
            return fail("malformed primary key" + where);
          }
          if (!parse_contribution(val, s.plan, &sl.c)) {
            return fail("malformed changelog row" + where);
          }
          sl.stored = true;
          // Backed: checked here, read again when the key is next seen.
          if (!backed && !s.state.emplace(std::move(pk), std::move(sl)).second) {
            return fail("duplicate primary key" + where);
          }
        } else {
          return fail("unknown partition state key '" + printable(key) + "'");
        }
        return true;
      },
      &read_error);
  if (!read_ok) return fail_restore(error, read_error);
  if (!failure.empty()) return fail_restore(error, std::move(failure));
  if (any && !have_meta) {
    return fail_restore(error, "partition state under '" + printable(prefix) + "' has no meta key");
  }
  impl_ = std::move(fresh);
  return true;
}

void partition_aggregator::track_changes(bool on) {
  impl_->tracking = on;
}

void partition_aggregator::set_backing(const state_reader* reader, const std::string& prefix) {
  impl_->backing = reader;
  impl_->backing_prefix = prefix;
  impl_->evict();
}

const std::string& partition_aggregator::backing_error() const {
  return impl_->backing_error;
}

size_t partition_aggregator::resident_entries() const {
  return impl_->state.size();
}

// ---- shard_aggregator -----------------------------------------------------------------------

namespace {

struct group_state {
  acc_vector accs;
  int64_t rows = 0;
  bool dirty = false;
  bool closed = false;
  bool touched = false;  ///< in shard_aggregator::impl::touched (changed since the checkpoint)
};

using key_map = std::unordered_map<row, group_state, row_hash, row_eq>;

struct session_state {
  int64_t end = 0;
  group_state g;
};

}  // namespace

struct shard_aggregator::impl {
  aggregation_plan plan;
  int shard = 0;
  bool on_update = false;
  bool keep_closed = false;

  struct partition_info {
    int64_t watermark = min_time;
    int64_t last_record_us = min_time;
  };
  std::map<int32_t, partition_info> partitions;
  int64_t first_seen_us = min_time;   ///< first processing time observed (idleness origin)
  int64_t closed_through = min_time;  ///< windows with end + lateness <= this are closed

  std::map<window_bounds, key_map> open;    ///< not sessions
  std::map<window_bounds, key_map> closed;  ///< late policy update: closed windows kept
  std::unordered_map<row, std::map<int64_t, session_state>, row_hash, row_eq> sessions;
  std::multimap<int64_t, std::pair<const row*, int64_t>> session_ends;  ///< open sessions by end
  size_t open_sessions = 0;

  /// A group to emit at the next emit(). Non-session groups are referenced directly (hash-map
  /// nodes never move); sessions by (key, start), looked up again, since merging replaces them.
  struct dirty_ref {
    window_bounds window;
    const row* key;
    group_state* g;  ///< null for sessions
  };
  std::vector<dirty_ref> dirty;
  int64_t dropped_after_close = 0;

  // Backing store (not sessions: they always live in memory). A window's entry in open/closed
  // stays while it has groups in the store, even when none is in memory.
  const state_reader* backing = nullptr;
  std::string backing_prefix;
  std::string backing_error;
  std::map<window_bounds, int64_t> evicted;  ///< per window: stored groups not in memory
  std::set<window_bounds> purge;  ///< freed at close: the next checkpoint deletes their groups

  // Bounded close (chunked_close()): windows past closed_through stay in `open` until all their
  // groups are emitted, oldest first. The oldest one's resident groups are emitted and freed
  // first (memory copies are newer than stored ones), then its stored groups in key order; the
  // cursor is the last stored key (after the window prefix) emitted.
  int64_t emitted_through = min_time;  ///< windows with end + lateness <= this are all emitted
  std::optional<window_bounds> cursor_window;  ///< the window `cursor` belongs to
  std::string cursor;

  /// on_close windows freed at close (not sessions, not kept closed) are emitted in bounded steps.
  [[nodiscard]] bool chunked_close() const {
    return !on_update && !keep_closed && !sessions_kind();
  }
  [[nodiscard]] bool past_emitted(int64_t end) const {
    return emitted_through != min_time &&
           add_sat(end, plan.window.allowed_lateness_us) <= emitted_through;
  }

  void fail_backing(std::string msg) {
    if (backing_error.empty()) backing_error = std::move(msg);
  }

  /// Parses a group value (see group_value) into fresh `g`; sessions also read `w.end`.
  bool read_group(std::string_view val, window_bounds& w, group_state& g) const {
    byte_reader v(val);
    uint8_t flags = 0;
    g.accs = make_accs(plan);
    if (!read_version(v) || !v.u8(&flags) || flags > 1 || (sessions_kind() && !v.svarint(&w.end)) ||
        !v.svarint(&g.rows) || !read_accs(v, g.accs) || w.end < w.start) {
      return false;
    }
    g.dirty = (flags & 1) != 0;
    return true;
  }

  /// Backed: the stored group `key` of window `w`, read into `groups` (w's resident groups),
  /// or groups.end() when the store has none.
  key_map::iterator load_group(const window_bounds& w, const row& key, key_map& groups) {
    const auto ev = evicted.find(w);
    if (backing == nullptr || ev == evicted.end() || ev->second <= 0) return groups.end();
    std::string err;
    const std::string k = window_key(backing_prefix, w, key);
    const auto val = backing->get(k, &err);
    if (!err.empty()) {
      fail_backing(std::move(err));
      return groups.end();
    }
    if (!val) return groups.end();
    window_bounds wb = w;
    group_state g;
    if (!read_group(*val, wb, g)) {
      fail_backing("malformed group value in shard state key '" + printable(k) + "'");
      return groups.end();
    }
    g.dirty = false;  // dirty groups are never evicted
    g.closed = past(w.end);
    --ev->second;
    return groups.emplace(key, std::move(g)).first;
  }

  /// Backed: calls f(stored key, group key, value) for the stored groups of window `w` in key
  /// order, those after group key suffix `after` only (when not empty), until f returns false.
  void scan_window(const window_bounds& w, std::string_view after,
                   const std::function<bool(std::string_view, row&, std::string_view)>& f) {
    const std::string wp = window_prefix(backing_prefix, w);
    // The first key after `after` is `after` + one zero byte.
    const std::string from = after.empty() ? wp : wp + std::string(after) + std::string(1, '\0');
    std::string err;
    row key;
    const bool ok = backing->scan_from(
        wp, from,
        [&](std::string_view k, std::string_view v) {
          byte_reader r(k.substr(wp.size()));
          if (!r.row_of(&key) || !r.done()) {
            fail_backing("malformed key in shard state key '" + printable(k) + "'");
            return false;
          }
          return f(k, key, v);
        },
        &err);
    if (!ok) fail_backing(std::move(err));
  }

  /// Appends the result row of the stored group `v` (key `k`) of window `w`; false when the
  /// value is malformed (backing_error set).
  bool emit_stored(const window_bounds& w, std::string_view k, const row& key, std::string_view v,
                   std::vector<row>& out) {
    window_bounds wb = w;
    group_state g;
    if (!read_group(v, wb, g)) {
      fail_backing("malformed group value in shard state key '" + printable(k) + "'");
      return false;
    }
    result_row(w, key, g, out);
    return true;
  }

  /// Backed: drops the groups that are neither changed since the checkpoint nor to be emitted.
  void evict() {
    if (backing == nullptr || sessions_kind()) return;
    for (auto* windows : {&open, &closed}) {
      for (auto& [w, groups] : *windows) {
        int64_t n = 0;
        for (auto it = groups.begin(); it != groups.end();) {
          if (it->second.touched || it->second.dirty) {
            ++it;
          } else {
            it = groups.erase(it);
            ++n;
          }
        }
        if (n > 0) evicted[w] += n;
      }
    }
  }

  /// Groups changed since the last checkpoint, by id (sessions: window {start, 0}) -> whether
  /// the checkpoint holds the id. A live group is in here iff its `touched` flag is set; an id
  /// without a live group is in here only when the checkpoint holds it (to be deleted).
  std::unordered_map<group_id, bool, group_id_hash, group_id_eq> touched;
  bool tracking = true;  ///< track_changes: off when the run takes no checkpoints

  [[nodiscard]] bool sessions_kind() const { return plan.window.kind == window_kind::session; }

  /// Call when group `g` (id `w`, `key`) changed; `fresh`: it was just created.
  void touch(const window_bounds& w, const row& key, group_state& g, bool fresh) {
    if (!tracking || g.touched) return;
    g.touched = true;
    touched.try_emplace(group_id{w, key}, !fresh);  // kept when the id was stored and freed
  }

  /// Call before group `g` is erased.
  void untouch(const window_bounds& w, const row& key, group_state& g) {
    if (!tracking) return;
    if (!g.touched) {
      touched.emplace(group_id{w, key}, true);  // untouched since the checkpoint: stored there
      return;
    }
    auto it = touched.find(group_id{w, key});
    if (it != touched.end() && !it->second) touched.erase(it);
  }

  [[nodiscard]] bool past(int64_t end) const {
    return closed_through != min_time &&
           add_sat(end, plan.window.allowed_lateness_us) <= closed_through;
  }

  void mark(const window_bounds& w, const row* key, group_state& g, bool session) {
    if (g.dirty) return;
    if (on_update || g.closed) {
      g.dirty = true;
      dirty.push_back({w, key, session ? nullptr : &g});
    }
  }

  void result_row(const window_bounds& w, const row& key, const group_state& g,
                  std::vector<row>& out) const {
    if (g.rows <= 0) return;
    row r;
    r.reserve(plan.schema.names.size());
    if (plan.window.kind != window_kind::global) {
      r.emplace_back(timestamp{w.start});
      r.emplace_back(timestamp{w.end});
    }
    r.insert(r.end(), key.begin(), key.end());
    for (const auto& a : g.accs) r.push_back(a->result());
    if (plan.having.matches(r)) out.push_back(std::move(r));
  }

  void drain_dirty(std::vector<row>& out) {
    for (const dirty_ref& d : dirty) {
      group_state* g = d.g;
      window_bounds w = d.window;
      if (g == nullptr) {
        auto& m = sessions.find(*d.key)->second;
        auto it = m.find(w.start);
        if (it == m.end()) continue;  // merged into another session, which has its own entry
        g = &it->second.g;
        w.end = it->second.end;
      }
      if (!g->dirty) continue;  // already emitted
      g->dirty = false;
      touch(d.g == nullptr ? window_bounds{w.start, 0} : w, *d.key, *g, false);
      result_row(w, *d.key, *g, out);
    }
    dirty.clear();
  }

  void merge_entry(partial_batch::entry& e) {
    if (plan.window.kind == window_kind::session) {
      merge_session(e);
      return;
    }
    const bool after_close = past(e.window.end);
    if (after_close && !keep_closed) {
      ++dropped_after_close;
      return;
    }
    auto wit = (after_close ? closed : open).try_emplace(e.window).first;
    key_map& groups = wit->second;
    auto it = groups.find(e.key);
    if (it == groups.end()) it = load_group(wit->first, e.key, groups);
    const bool fresh = it == groups.end();
    if (fresh) it = groups.try_emplace(std::move(e.key)).first;
    group_state& g = it->second;
    if (fresh) {
      g.accs = std::move(e.accs);
    } else {
      merge_accs(g.accs, e.accs);
    }
    g.rows += e.rows;
    g.closed = after_close;
    mark(wit->first, &it->first, g, false);
    // A window's group is never created twice (after its close, partials are dropped or it is
    // kept), so a fresh group is not in the checkpoint.
    touch(wit->first, it->first, g, fresh);
  }

  void unindex(const row* key, int64_t start, int64_t end) {
    auto [lo, hi] = session_ends.equal_range(end);
    for (auto i = lo; i != hi; ++i) {
      if (i->second.first == key && i->second.second == start) {
        session_ends.erase(i);
        return;
      }
    }
  }

  void merge_session(partial_batch::entry& e) {
    auto kit = sessions.find(e.key);
    if (kit == sessions.end()) {
      // A lone session that is already closed: nothing can hold it unless we keep closed ones.
      if (past(e.window.end) && !keep_closed) {
        ++dropped_after_close;
        return;
      }
      kit = sessions.try_emplace(std::move(e.key)).first;
    }
    const row* key = &kit->first;
    auto& m = kit->second;
    // Remove the index entries of the sessions about to be merged.
    {
      auto it = m.lower_bound(e.window.start);
      if (it != m.begin() && std::prev(it)->second.end > e.window.start) --it;
      for (; it != m.end() && it->first < e.window.end && it->second.end > e.window.start; ++it) {
        if (!it->second.g.closed) {
          unindex(key, it->first, it->second.end);
          --open_sessions;
        }
        it->second.g.dirty = false;  // the merged session is (re)marked below
        untouch({it->first, 0}, *key, it->second.g);
      }
    }
    auto merged =
        merge_sessions(m, e.window.start, e.window.end, [](session_state& a, session_state& b) {
          merge_accs(a.g.accs, b.g.accs);
          a.g.rows += b.g.rows;
        });
    if (merged == m.end()) {
      if (past(e.window.end) && !keep_closed) {
        ++dropped_after_close;
        if (m.empty()) sessions.erase(kit);
        return;
      }
      session_state st;
      st.end = e.window.end;
      st.g.accs = std::move(e.accs);
      st.g.rows = e.rows;
      merged = m.emplace(e.window.start, std::move(st)).first;
    } else {
      merge_accs(merged->second.g.accs, e.accs);
      merged->second.g.rows += e.rows;
    }
    group_state& g = merged->second.g;
    g.closed = past(merged->second.end);
    if (!g.closed) {
      session_ends.emplace(merged->second.end, std::make_pair(key, merged->first));
      ++open_sessions;
    }
    mark({merged->first, merged->second.end}, key, g, true);
    g.touched = false;  // a new session (the survivor's flag belonged to its old id)
    touch({merged->first, 0}, *key, g, true);
  }

  /// Closes everything with end + lateness <= wm: emits at most `budget` rows of chunked
  /// windows (see chunked_close), all other rows at once. true while rows are still due. Dirty
  /// groups must be drained first.
  bool close_through(int64_t wm, std::vector<row>& out, size_t budget) {
    closed_through = std::max(closed_through, wm);
    if (plan.window.kind == window_kind::session) {
      while (!session_ends.empty() && past(session_ends.begin()->first)) {
        auto node = session_ends.begin();
        const row* key = node->second.first;
        const int64_t start = node->second.second;
        session_ends.erase(node);
        --open_sessions;
        auto kit = sessions.find(*key);
        auto sit = kit->second.find(start);
        if (!on_update) result_row({start, sit->second.end}, *key, sit->second.g, out);
        if (keep_closed) {
          sit->second.g.closed = true;  // derived from closed_through in checkpoints
        } else {
          untouch({start, 0}, *key, sit->second.g);
          kit->second.erase(sit);
          if (kit->second.empty()) sessions.erase(kit);
        }
      }
      emitted_through = closed_through;
      return false;
    }
    while (!open.empty() && past(open.begin()->first.end)) {
      if (!chunked_close()) {
        close_at_once(out);
      } else if (!close_step(out, budget)) {
        return true;
      }
    }
    emitted_through = closed_through;
    return false;
  }

  /// Closes the oldest window (past closed_through) in one go.
  void close_at_once(std::vector<row>& out) {
    auto node = open.extract(open.begin());
    int64_t stored = 0;  // groups only in the backing store
    if (auto ev = evicted.find(node.key()); ev != evicted.end()) {
      stored = ev->second;
      if (!keep_closed) evicted.erase(ev);
    }
    if (!on_update) {
      for (const auto& [key, g] : node.mapped()) result_row(node.key(), key, g, out);
      if (stored > 0) {
        const key_map& resident = node.mapped();
        scan_window(node.key(), {}, [&](std::string_view k, row& key, std::string_view v) {
          if (resident.find(key) != resident.end()) return true;  // the memory copy is newer
          return emit_stored(node.key(), k, key, v, out);
        });
      }
    }
    if (!keep_closed) {
      for (auto& [key, g] : node.mapped()) untouch(node.key(), key, g);
      if (stored > 0) purge.insert(node.key());
    }
    if (keep_closed) {
      // `closed` is derived from closed_through in checkpoints: no write needed.
      for (auto& [key, g] : node.mapped()) g.closed = true;
      key_map& into = closed[node.key()];
      if (into.empty()) {
        into = std::move(node.mapped());
      } else {
        for (auto& [key, g] : node.mapped()) {
          auto [it, fresh] = into.try_emplace(key);
          if (fresh) {
            it->second = std::move(g);
          } else {
            merge_accs(it->second.accs, g.accs);
            it->second.rows += g.rows;
            it->second.touched = it->second.touched || g.touched;  // same id
            touch(node.key(), it->first, it->second, false);
          }
        }
      }
    }
  }

  /// Continues closing the oldest window (past closed_through) with at most `budget` more rows
  /// (budget is decremented); true when the window is done and gone.
  bool close_step(std::vector<row>& out, size_t& budget) {
    auto wit = open.begin();
    const window_bounds w = wit->first;
    key_map& groups = wit->second;
    while (!groups.empty()) {
      if (budget == 0) return false;
      auto it = groups.begin();
      result_row(w, it->first, it->second, out);
      --budget;
      untouch(w, it->first, it->second);  // a stored copy is deleted at the next checkpoint
      groups.erase(it);
    }
    auto ev = evicted.find(w);
    if (backing != nullptr && ev != evicted.end() && ev->second > 0) {
      if (cursor_window != w) cursor.clear();
      cursor_window = w;
      bool more = false;
      // A fresh copy: scan_window reads `cursor` to seek while the callback moves it.
      scan_window(w, std::string(cursor), [&](std::string_view k, row& key, std::string_view v) {
        if (budget == 0) {
          more = true;
          return false;
        }
        cursor.assign(k.substr(backing_prefix.size() + window_prefix_bytes));
        // Emitted from memory above; the stored copy's delete waits for the checkpoint.
        if (tracking && touched.find(group_id{w, key}) != touched.end()) return true;
        if (!emit_stored(w, k, key, v, out)) return false;
        --budget;
        return true;
      });
      if (more && backing_error.empty()) return false;
      purge.insert(w);
    }
    if (ev != evicted.end()) evicted.erase(ev);
    open.erase(wit);
    cursor_window.reset();
    cursor.clear();
    emitted_through = std::max(emitted_through, add_sat(w.end, plan.window.allowed_lateness_us));
    return true;
  }

  [[nodiscard]] int64_t pipeline_watermark(int64_t now) const {
    if (partitions.empty()) return min_time;
    const int64_t timeout = plan.window.idle_timeout_us;
    const int64_t origin = first_seen_us == min_time ? now : first_seen_us;
    int64_t lo = max_time;
    int64_t hi = min_time;
    bool any_active = false;
    for (const auto& [p, info] : partitions) {
      hi = std::max(hi, info.watermark);
      const int64_t active = std::max(info.last_record_us, origin);
      if (timeout > 0 && now > add_sat(active, timeout)) continue;  // idle
      any_active = true;
      lo = std::min(lo, info.watermark);
    }
    return any_active ? lo : hi;
  }

  void observe(int64_t now) {
    if (first_seen_us == min_time || now < first_seen_us) first_seen_us = now;
  }
};

shard_aggregator::shard_aggregator(const aggregation_plan& plan, int shard,
                                   std::vector<int32_t> partitions)
    : impl_(std::make_unique<impl>()) {
  impl_->plan = plan;
  impl_->shard = shard;
  impl_->on_update =
      plan.window.emit == emit_mode::on_update || plan.window.kind == window_kind::global;
  impl_->keep_closed = plan.window.late == late_policy::update;
  for (int32_t p : partitions) impl_->partitions.try_emplace(p);
}

shard_aggregator::~shard_aggregator() = default;

void shard_aggregator::merge(partial_batch&& batch, int64_t received_us) {
  impl& s = *impl_;
  const bool own_clock = received_us != INT64_MIN;
  const int64_t now = own_clock ? received_us : batch.processing_time_us;
  s.observe(now);
  auto& info = s.partitions[batch.partition];
  info.watermark = std::max(info.watermark, batch.watermark);
  int64_t last = batch.last_record_us;
  if (own_clock && last != min_time) {  // how long before the cut, moved to this clock
    // Both are the sender's clock, any values (a negative last_record_us made sub_sat overflow:
    // UBSan): the difference saturates, and a record "after" the cut counts as at it.
    int64_t age = 0;
    if (__builtin_sub_overflow(batch.processing_time_us, last, &age))
      age = batch.processing_time_us > last ? max_time : 0;
    last = sub_sat(now, std::max<int64_t>(0, age));
  }
  info.last_record_us = std::max(info.last_record_us, last);
  for (auto& e : batch.entries) s.merge_entry(e);
  batch.entries.clear();
}

bool shard_aggregator::emit(std::vector<row>& out, int64_t processing_time_us, size_t max_rows) {
  impl& s = *impl_;
  s.observe(processing_time_us);
  s.drain_dirty(out);
  return s.close_through(s.pipeline_watermark(processing_time_us), out, max_rows);
}

bool shard_aggregator::finish(std::vector<row>& out, size_t max_rows) {
  impl& s = *impl_;
  s.drain_dirty(out);
  return s.close_through(max_time, out, max_rows);
}

int64_t shard_aggregator::pipeline_watermark(int64_t processing_time_us) const {
  return impl_->pipeline_watermark(processing_time_us);
}

size_t shard_aggregator::open_groups() const {
  size_t n = impl_->open_sessions;
  for (const auto& [w, keys] : impl_->open) {
    n += keys.size();
    if (auto ev = impl_->evicted.find(w); ev != impl_->evicted.end())
      n += static_cast<size_t>(ev->second);
  }
  return n;
}

size_t shard_aggregator::resident_entries() const {
  size_t n = 0;
  for (const auto* windows : {&impl_->open, &impl_->closed}) {
    for (const auto& [w, keys] : *windows) n += keys.size();
  }
  for (const auto& [key, m] : impl_->sessions) n += m.size();
  return n;
}

void shard_aggregator::track_changes(bool on) {
  impl_->tracking = on;
}

void shard_aggregator::set_backing(const state_reader* reader, const std::string& prefix) {
  impl_->backing = reader;
  impl_->backing_prefix = prefix;
  impl_->evict();
}

const std::string& shard_aggregator::backing_error() const {
  return impl_->backing_error;
}

int64_t shard_aggregator::dropped_after_close() const {
  return impl_->dropped_after_close;
}

void shard_aggregator::checkpoint(const std::string& prefix, std::vector<state_op>& ops) {
  impl& s = *impl_;
  const bool sessions = s.sessions_kind();
  for (const auto& [id, stored] : s.touched) {
    std::string old_key = sessions ? session_key(prefix, id.key, id.window.start)
                                   : window_key(prefix, id.window, id.key);
    const row* live_key = nullptr;
    group_state* g = nullptr;
    std::optional<int64_t> end;
    if (sessions) {
      if (auto kit = s.sessions.find(id.key); kit != s.sessions.end()) {
        if (auto sit = kit->second.find(id.window.start); sit != kit->second.end()) {
          live_key = &kit->first;
          g = &sit->second.g;
          end = sit->second.end;
        }
      }
    } else {
      for (auto* windows : {&s.open, &s.closed}) {
        if (auto wit = windows->find(id.window); wit != windows->end()) {
          if (auto it = wit->second.find(id.key); it != wit->second.end()) {
            live_key = &it->first;
            g = &it->second;
            break;
          }
        }
      }
    }
    if (g == nullptr) {
      if (stored) ops.emplace_back(std::move(old_key), std::nullopt);
      continue;
    }
    std::string key = sessions ? session_key(prefix, *live_key, id.window.start)
                               : window_key(prefix, id.window, *live_key);
    if (stored && key != old_key) ops.emplace_back(std::move(old_key), std::nullopt);
    ops.emplace_back(std::move(key), group_value(end, g->dirty, g->rows, g->accs));
    g->touched = false;
  }
  // Windows freed at close whose groups the store still holds: one range delete each, so the
  // groups are neither read again nor listed one by one.
  for (const window_bounds& w : s.purge)
    ops.push_back(kv_op::delete_prefix(window_prefix(prefix, w)));
  s.purge.clear();
  s.touched.clear();
  s.evict();  // the caller applies `ops` before the next access
  std::string meta;
  put_u8(meta, state_version);
  put_varint(meta, static_cast<uint64_t>(s.shard));
  put_varint(meta, static_cast<uint64_t>(s.plan.shard_count));
  put_svarint(meta, s.first_seen_us);
  put_svarint(meta, s.closed_through);
  put_svarint(meta, s.dropped_after_close);
  put_varint(meta, s.partitions.size());
  for (const auto& [p, info] : s.partitions) {
    put_svarint(meta, p);
    put_svarint(meta, info.watermark);
    put_svarint(meta, info.last_record_us);
  }
  // Bounded close in progress: how far it got.
  put_svarint(meta, s.emitted_through);
  put_u8(meta, s.cursor_window ? 1 : 0);
  if (s.cursor_window) {
    put_svarint(meta, s.cursor_window->start);
    put_svarint(meta, s.cursor_window->end);
    put_varint(meta, s.cursor.size());
    meta += s.cursor;
  }
  ops.emplace_back(prefix + tag_meta, std::move(meta));
}

bool shard_aggregator::restore(const std::string& prefix,
                               const std::vector<std::pair<std::string, std::string>>& entries,
                               std::string* error) {
  return restore(entries_reader(entries), prefix, error);
}

bool shard_aggregator::restore(const state_reader& reader, const std::string& prefix,
                               std::string* error) {
  auto fresh = std::make_unique<impl>();
  fresh->plan = impl_->plan;
  fresh->shard = impl_->shard;
  fresh->on_update = impl_->on_update;
  fresh->keep_closed = impl_->keep_closed;
  fresh->backing = impl_->backing;
  fresh->backing_prefix = impl_->backing_prefix;
  for (const auto& [p, info] : impl_->partitions) fresh->partitions.try_emplace(p);
  impl& s = *fresh;
  const bool sessions = s.sessions_kind();
  const bool backed = s.backing != nullptr && !sessions;

  // The meta key first: closed_through says which groups are closed.
  const std::string meta_key = prefix + tag_meta;
  std::string read_error;
  const auto meta = reader.get(meta_key, &read_error);
  if (!read_error.empty()) return fail_restore(error, read_error);
  if (!meta) {
    bool any = false;
    if (!reader.scan(
            prefix, [&](std::string_view, std::string_view) { return !(any = true); },
            &read_error)) {
      return fail_restore(error, read_error);
    }
    if (!any) {
      impl_ = std::move(fresh);
      return true;
    }
    return fail_restore(error, "shard state under '" + printable(prefix) + "' has no meta key");
  }
  {
    byte_reader v(*meta);
    uint64_t shard = 0;
    uint64_t shard_count = 0;
    uint64_t n = 0;
    if (!read_version(v) || !v.varint(&shard) || !v.varint(&shard_count) ||
        !v.svarint(&s.first_seen_us) || !v.svarint(&s.closed_through) ||
        !v.svarint(&s.dropped_after_close) || !v.varint(&n)) {
      return fail_restore(error,
                          "malformed meta value in shard state key '" + printable(meta_key) + "'");
    }
    if (shard != static_cast<uint64_t>(s.shard) ||
        shard_count != static_cast<uint64_t>(s.plan.shard_count)) {
      return fail_restore(error, "state of shard " + std::to_string(shard) + " of " +
                                     std::to_string(shard_count) + " restored into shard " +
                                     std::to_string(s.shard) + " of " +
                                     std::to_string(s.plan.shard_count));
    }
    for (uint64_t i = 0; i < n; ++i) {
      int64_t p = 0;
      impl::partition_info info;
      if (!v.svarint(&p) || !v.svarint(&info.watermark) || !v.svarint(&info.last_record_us) ||
          p < std::numeric_limits<int32_t>::min() || p > std::numeric_limits<int32_t>::max()) {
        return fail_restore(
            error, "malformed partition list in shard state key '" + printable(meta_key) + "'");
      }
      // Partitions no longer in the topic are dropped; new ones stay fresh.
      if (auto it = s.partitions.find(static_cast<int32_t>(p)); it != s.partitions.end()) {
        it->second = info;
      }
    }
    {
      uint8_t has_cursor = 0;
      uint64_t n_cursor = 0;
      std::string_view cursor;
      window_bounds cw;
      if (!v.svarint(&s.emitted_through) || !v.u8(&has_cursor) || has_cursor > 1 ||
          (has_cursor == 1 && (!v.svarint(&cw.start) || !v.svarint(&cw.end) ||
                               !v.varint(&n_cursor) || !v.bytes(n_cursor, &cursor))) ||
          s.emitted_through > s.closed_through) {
        return fail_restore(
            error, "malformed meta value in shard state key '" + printable(meta_key) + "'");
      }
      if (has_cursor == 1) {
        s.cursor_window = cw;
        s.cursor.assign(cursor);
      }
    }
    if (!v.done()) {
      return fail_restore(error,
                          "malformed meta value in shard state key '" + printable(meta_key) + "'");
    }
  }

  std::string failure;
  auto fail = [&](std::string msg) {
    failure = std::move(msg);
    return false;
  };
  const bool read_ok = reader.scan(
      prefix,
      [&](std::string_view key, std::string_view val) {
        if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) {
          return fail("state key '" + printable(key) + "' lacks prefix '" + printable(prefix) +
                      "'");
        }
        if (key == meta_key) return true;
        const char tag = key[prefix.size()];
        byte_reader k(key.substr(prefix.size() + 1));
        const std::string where = " in shard state key '" + printable(key) + "'";
        row group_key;
        window_bounds w;
        if (tag == tag_window && !sessions) {
          if (!k.be64(&w.start) || !k.be64(&w.end) || !k.row_of(&group_key) || !k.done()) {
            return fail("malformed key" + where);
          }
        } else if (tag == tag_session && sessions) {
          if (!k.row_of(&group_key) || !k.be64(&w.start) || !k.done()) {
            return fail("malformed key" + where);
          }
        } else {
          return fail("unexpected shard state key '" + printable(key) + "'");
        }
        if (group_key.size() != s.plan.group_by.size()) {
          return fail("group key of the wrong width" + where);
        }
        group_state g;
        if (!s.read_group(val, w, g)) return fail("malformed group value" + where);
        g.closed = s.past(w.end);
        // A window past closed_through but not all emitted is still being closed (bounded
        // close): its groups up to the cursor were emitted, the others are still due.
        // (Backed, they stay in the store like every other group: the resumed scan starts
        // after the cursor.)
        const bool emitted =
            s.past_emitted(w.end) || (!backed && s.cursor_window == w &&
                                      key.substr(prefix.size() + window_prefix_bytes) <= s.cursor);
        if (emitted && !s.keep_closed) {
          // Freed at close under this late policy (a checkpoint of another policy): delete it at
          // the next checkpoint (a backed window with the rest of its range; sessions are keyed
          // by group key, not by window, and are deleted one by one).
          if (backed && !sessions) {
            s.purge.insert(w);
          } else {
            s.touched.emplace(
                group_id{sessions ? window_bounds{w.start, 0} : w, std::move(group_key)}, true);
          }
          return true;
        }
        if (sessions) {
          auto kit = s.sessions.try_emplace(std::move(group_key)).first;
          auto& m = kit->second;
          auto next = m.lower_bound(w.start);
          const bool overlaps = (next != m.end() && next->first < w.end) ||
                                (next != m.begin() && std::prev(next)->second.end > w.start);
          if (overlaps) return fail("overlapping sessions" + where);
          const row* kp = &kit->first;
          const bool closed = g.closed;
          const bool dirty = g.dirty;
          session_state st;
          st.end = w.end;
          st.g = std::move(g);
          m.emplace(w.start, std::move(st));
          if (!closed) {
            s.session_ends.emplace(w.end, std::make_pair(kp, w.start));
            ++s.open_sessions;
          }
          if (dirty) s.dirty.push_back({w, kp, nullptr});
        } else {
          auto& windows = (g.closed && s.keep_closed ? s.closed : s.open)[w];
          if (backed && !g.dirty) {
            ++s.evicted[w];  // stays in the store
            return true;
          }
          auto [it, inserted] = windows.try_emplace(std::move(group_key), std::move(g));
          if (!inserted) return fail("duplicate group" + where);
          if (it->second.dirty) s.dirty.push_back({w, &it->first, &it->second});
        }
        return true;
      },
      &read_error);
  if (!read_ok) return fail_restore(error, read_error);
  if (!failure.empty()) return fail_restore(error, std::move(failure));
  if (s.cursor_window && (s.open.empty() || s.open.begin()->first != *s.cursor_window)) {
    s.cursor_window.reset();  // nothing of that window is left to emit
    s.cursor.clear();
  }
  impl_ = std::move(fresh);
  return true;
}

}  // namespace eddy
