#include "worker/decode/debezium_decoder.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/time_format.hpp"

namespace json = boost::json;

namespace eddy {

namespace {

// ---- small text helpers ---------------------------------------------------------------------

std::string_view trim_ws(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool is_null_word(std::string_view s) {
  return s.empty() || s == "None" || s == "null" || s == "NULL";
}

std::optional<int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc{} && p == s.data() + s.size()) return v;
  // Integral decimals such as "12.0" or "12.000".
  double d = 0;
  auto [q, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc{} && q == s.data() + s.size() && std::isfinite(d) && d == std::floor(d) &&
      std::fabs(d) < 9.2e18)
    return static_cast<int64_t>(d);
  return std::nullopt;
}

// A finite double. std::from_chars also reads "nan", "inf" and "infinity", which no field
// takes: one NaN makes every aggregate over it NaN.
std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc{} && p == s.data() + s.size() && std::isfinite(v)) return v;
  return std::nullopt;
}

std::optional<bool> parse_bool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "t" || s == "1" || s == "yes") return true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "f" || s == "0" || s == "no")
    return false;
  return std::nullopt;
}

const char* kind_name(json::kind k) {
  switch (k) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "bool";
    case json::kind::int64:
    case json::kind::uint64:
      return "integer";
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "?";
}

std::string quoted_excerpt(std::string_view s) {
  std::string out = "\"";
  out.append(s.substr(0, 40));
  if (s.size() > 40) out += "...";
  out += '"';
  return out;
}

// Debezium logical types a column can carry in a "schema" message.
enum class logical : uint8_t {
  none,
  micro_timestamp,
  timestamp_ms,
  nano_timestamp,
  zoned_timestamp,
  date_days,
  time_ms,
  micro_time,
  nano_time,
  decimal,
  variable_decimal,
};

logical logical_from_name(std::string_view n) {
  if (n == "io.debezium.time.MicroTimestamp") return logical::micro_timestamp;
  if (n == "io.debezium.time.Timestamp") return logical::timestamp_ms;
  if (n == "io.debezium.time.NanoTimestamp") return logical::nano_timestamp;
  if (n == "io.debezium.time.ZonedTimestamp") return logical::zoned_timestamp;
  if (n == "io.debezium.time.Date" || n == "org.apache.kafka.connect.data.Date")
    return logical::date_days;
  if (n == "io.debezium.time.Time" || n == "org.apache.kafka.connect.data.Time")
    return logical::time_ms;
  if (n == "io.debezium.time.MicroTime") return logical::micro_time;
  if (n == "io.debezium.time.NanoTime") return logical::nano_time;
  if (n == "org.apache.kafka.connect.data.Decimal") return logical::decimal;
  if (n == "io.debezium.data.VariableScaleDecimal") return logical::variable_decimal;
  if (n == "org.apache.kafka.connect.data.Timestamp") return logical::timestamp_ms;
  return logical::none;
}

// A Decimal scale parameter that is present but not an int64 ("abc", 1e300, 2^64).
constexpr int64_t unreadable_scale = std::numeric_limits<int64_t>::min();

// A schema's "parameters.scale" value (a string in Kafka Connect, a number in some converters).
int64_t scale_from_text(std::string_view s) {
  auto v = parse_int(s);
  return v ? *v : unreadable_scale;
}

struct column_schema {
  logical type = logical::none;
  int64_t scale = 0;  // full range: decimal conversion bounds it, nothing truncates it
};

std::string format_time_of_day(int64_t micros) {
  int64_t day = 86'400'000'000LL;
  micros = ((micros % day) + day) % day;
  int64_t s = micros / 1'000'000, frac = micros % 1'000'000;
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                        static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  std::string out(buf, static_cast<size_t>(n));
  if (frac != 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(frac));
    std::string f = buf;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out;
}

constexpr int64_t max_timestamp_days =
    std::numeric_limits<int64_t>::max() / 86'400'000'000LL;  // 106,751,991

std::string format_date(int64_t days) {
  // civil_from_days (proleptic Gregorian).
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", static_cast<long long>(y),
                static_cast<long long>(m), static_cast<long long>(d));
  return buf;
}

int64_t scale_to_micros(int64_t v, time_unit u, bool* overflow) {
  int64_t factor = 1;
  switch (u) {
    case time_unit::seconds:
      factor = 1'000'000;
      break;
    case time_unit::millis:
      factor = 1'000;
      break;
    case time_unit::nanos:
      return v / 1'000;
    case time_unit::days:
      factor = 86'400'000'000LL;
      break;
    default:
      break;
  }
  int64_t r = 0;
  if (__builtin_mul_overflow(v, factor, &r)) {
    *overflow = true;
    return 0;
  }
  return r;
}

// The Debezium op letters c, r, u, d ('t' truncate is handled by the caller).
std::optional<cdc_op> op_from_char(char c) {
  switch (c) {
    case 'c':
      return cdc_op::create;
    case 'r':
      return cdc_op::read;
    case 'u':
      return cdc_op::update;
    case 'd':
      return cdc_op::del;
    default:
      return std::nullopt;
  }
}

// Why a message of the detected shape does not fit the configured `format`, or nullptr.
const char* format_mismatch(message_format fmt, bool has_schema, bool is_envelope) {
  switch (fmt) {
    case message_format::schema:
      return has_schema ? nullptr : "expected a {\"schema\", \"payload\"} message";
    case message_format::envelope:
      return is_envelope ? nullptr
                         : "expected a Debezium envelope with \"op\" and \"before\"/\"after\"";
    case message_format::unwrapped:
      return is_envelope || has_schema ? "expected an unwrapped row, got a Debezium envelope"
                                       : nullptr;
    case message_format::auto_detect:
      return nullptr;
  }
  return nullptr;
}

enum class pseudo : uint8_t { none, op, source_ts, topic, partition, offset, key, kafka_ts };

pseudo pseudo_from(std::string_view c) {
  if (c == "$op") return pseudo::op;
  if (c == "$source_ts") return pseudo::source_ts;
  if (c == "$topic") return pseudo::topic;
  if (c == "$partition") return pseudo::partition;
  if (c == "$offset") return pseudo::offset;
  if (c == "$key") return pseudo::key;
  if (c == "$timestamp") return pseudo::kafka_ts;
  return pseudo::none;
}

}  // namespace

// ---- exposed helpers --------------------------------------------------------------------------

std::string_view strip_bytes_wrapper(std::string_view s) {
  if (s.size() >= 3 && s[0] == 'b' && (s[1] == '\'' || s[1] == '"') && s.back() == s[1])
    return s.substr(2, s.size() - 3);
  return s;
}

std::optional<std::string> decode_base64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = sextet(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

namespace {

__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

// The unscaled value of a Decimal's big-endian two's-complement bytes (at most 16).
std::optional<int128> decimal_unscaled(std::string_view be) {
  if (be.size() > 16) return std::nullopt;
  if (be.empty()) return int128{0};
  const bool negative = (static_cast<unsigned char>(be[0]) & 0x80) != 0;
  uint128 acc = negative ? ~uint128{0} : uint128{0};  // sign extension
  for (char c : be) acc = (acc << 8) | static_cast<unsigned char>(c);
  return static_cast<int128>(acc);
}

// 10^0 .. 10^max_decimal_scale as long doubles (exact up to 10^27), built once.
const std::array<long double, max_decimal_scale + 1>& pow10_long_double() {
  static const auto table = [] {
    std::array<long double, max_decimal_scale + 1> t{};
    long double p = 1;
    for (auto& e : t) {
      e = p;
      p *= 10;
    }
    return t;
  }();
  return table;
}

// 10^0 .. 10^38: every power of ten an int128 holds.
const std::array<int128, 39>& pow10_int128() {
  static const auto table = [] {
    std::array<int128, 39> t{};
    int128 p = 1;
    for (auto& e : t) {
      e = p;
      if (&e != &t.back()) p *= 10;
    }
    return t;
  }();
  return table;
}

bool scale_in_range(int64_t scale) {
  return scale >= -max_decimal_scale && scale <= max_decimal_scale;
}

}  // namespace

std::optional<double> decimal_from_bytes(std::string_view be, int64_t scale) {
  auto unscaled = decimal_unscaled(be);
  if (!unscaled || !scale_in_range(scale)) return std::nullopt;
  if (*unscaled == 0) return 0.0;
  // long double: a 64-bit mantissa (exact for unscaled values below 2^64) and a range to 1e4932,
  // so neither the quotient nor the product can overflow before the range check below.
  const auto& p10 = pow10_long_double();
  const long double acc = static_cast<long double>(*unscaled);
  const long double v =
      scale >= 0 ? acc / p10[static_cast<size_t>(scale)] : acc * p10[static_cast<size_t>(-scale)];
  if (!(std::fabs(v) <= static_cast<long double>(std::numeric_limits<double>::max())))
    return std::nullopt;
  const double d = static_cast<double>(v);
  if (d == 0) return std::nullopt;  // a non-zero value that underflows
  return d;
}

std::optional<int64_t> decimal_to_int64(std::string_view be, int64_t scale) {
  auto unscaled = decimal_unscaled(be);
  if (!unscaled || !scale_in_range(scale)) return std::nullopt;
  const auto& p10 = pow10_int128();
  int128 v = 0;
  if (scale >= 0) {
    // |unscaled| < 2^127 < 10^39: any larger divisor leaves 0.
    v = scale < static_cast<int64_t>(p10.size()) ? *unscaled / p10[static_cast<size_t>(scale)] : 0;
  } else if (*unscaled != 0) {
    if (-scale >= static_cast<int64_t>(p10.size())) return std::nullopt;
    if (__builtin_mul_overflow(*unscaled, p10[static_cast<size_t>(-scale)], &v))
      return std::nullopt;
  }
  if (v < std::numeric_limits<int64_t>::min() || v > std::numeric_limits<int64_t>::max())
    return std::nullopt;
  return static_cast<int64_t>(v);
}

// ---- the decoder ------------------------------------------------------------------------------

struct record_decoder::impl {
  struct field_plan {
    const field_config* cfg;
    pseudo pseudo_column;
    std::string_view column;
  };

  const pipeline_config& cfg;
  bool with_before;
  std::vector<field_plan> plan;
  std::vector<column_schema> col_schema;  // per field; filled from the message's schema
  alignas(16) unsigned char arena_buffer[64 * 1024];
  // Constructed afresh for every DOM parse: monotonic_resource::release() keeps the doubled
  // next-block size (Boost 1.81), so a reused one asks for 2^k-sized blocks after k large messages.
  std::optional<json::monotonic_resource> arena;
  json::parser parser;
  std::string scratch;

  impl(const pipeline_config& c, bool before)
      : cfg(c), with_before(before), parser(make_parser()), sax(parse_opts(), this) {
    for (const auto& f : cfg.fields)
      plan.push_back({&f, pseudo_from(f.column), std::string_view(f.column)});
    col_schema.resize(plan.size());
    build_columns();
  }

  static json::parser make_parser() {
    json::parse_options opt;
    opt.max_depth = 64;
    opt.allow_invalid_utf8 = false;
    return json::parser(json::storage_ptr(), opt);
  }

  decode_status fail(std::string& reason, std::string text) {
    reason = std::move(text);
    return decode_status::dead_letter;
  }

  // The DOM decoder: parses the whole message into a boost::json::value, then reads it. Used
  // for the rare messages the streaming decoder (decode, below) hands back: duplicate keys,
  // objects or arrays where a declared column is expected, a schema after its payload.
  decode_status decode_dom(const raw_record& in, decoded_record& out, std::string& reason) {
    if (in.value_is_null) {
      reason = "tombstone";
      return decode_status::skipped;
    }
    if (in.value.empty()) return fail(reason, "empty message value");
    if (static_cast<int64_t>(in.value.size()) > cfg.source.max_message_bytes)
      return fail(reason, "message too large: " + std::to_string(in.value.size()) +
                              " bytes > source.max_message_bytes = " +
                              std::to_string(cfg.source.max_message_bytes));

    parser.reset();  // drops what the last parse left while its arena still exists
    arena.reset();
    arena.emplace(arena_buffer, sizeof arena_buffer);
    parser.reset(json::storage_ptr(&*arena));
    boost::system::error_code ec;
    size_t used = parser.write_some(in.value.data(), in.value.size(), ec);
    if (!ec && used < in.value.size()) {
      // write_some stops after one complete value; anything but whitespace after it is garbage.
      if (!trim_ws(in.value.substr(used)).empty())
        return fail(reason, "invalid JSON at byte " + std::to_string(used) +
                                ": unexpected data after the JSON value");
    }
    if (ec) {
      std::string msg = ec.message();
      if (ec == json::error::too_deep) msg = "nesting deeper than 64 levels";
      return fail(reason, "invalid JSON at byte " + std::to_string(used) + ": " + msg);
    }
    json::value doc = parser.release();
    if (!doc.is_object())
      return fail(reason, std::string("expected a JSON object, got ") + kind_name(doc.kind()));
    const json::object* top = &doc.get_object();

    // Shape detection.
    const json::object* schema_obj = nullptr;
    const json::value* sch = top->if_contains("schema");
    const json::value* payload = top->if_contains("payload");
    if (sch && payload) {
      if (payload->is_null()) {
        reason = "tombstone";
        return decode_status::skipped;
      }
      if (!payload->is_object())
        return fail(reason, std::string("schema message: payload is ") +
                                kind_name(payload->kind()) + ", expected an object");
      schema_obj = sch->if_object();
      top = &payload->get_object();
    }
    bool is_envelope = top->contains("op") && (top->contains("after") || top->contains("before"));
    if (const char* mismatch =
            format_mismatch(cfg.source.format, schema_obj != nullptr, is_envelope))
      return fail(reason, mismatch);

    const json::object* image = nullptr;
    const json::object* before_image = nullptr;
    out.source_ts_ms = -1;
    if (is_envelope) {
      const json::value& opv = top->at("op");
      if (!opv.is_string() || opv.get_string().size() != 1)
        return fail(reason, "envelope field \"op\" must be one of \"c\", \"r\", \"u\", \"d\"");
      char op = opv.get_string()[0];
      const json::value* after = top->if_contains("after");
      const json::value* before = top->if_contains("before");
      if (op == 't') {
        reason = "truncate event";
        return decode_status::skipped;
      }
      if (auto o = op_from_char(op))
        out.op = *o;
      else
        return fail(reason, std::string("unknown op \"") + op + "\"");
      const json::value* img = out.op == cdc_op::del ? before : after;
      if (!img || !img->is_object())
        return fail(reason, std::string("op \"") + op + "\" without " +
                                (out.op == cdc_op::del ? "a before" : "an after") + " image");
      image = &img->get_object();
      if (before && before->is_object()) before_image = &before->get_object();
      if (const json::value* src = top->if_contains("source"); src && src->is_object()) {
        if (const json::value* ts = src->get_object().if_contains("ts_ms"); ts && ts->is_number()) {
          boost::system::error_code nec;
          out.source_ts_ms = ts->to_number<int64_t>(nec);
          if (nec) return fail(reason, bad_source_ts("source.ts_ms", *ts));
        }
      }
    } else {
      image = top;
      out.op = cdc_op::create;
      if (const json::value* opv = top->if_contains("__op"); opv && !opv->is_null()) {
        if (!opv->is_string() || opv->get_string().size() != 1)
          return fail(reason, "column '__op' must be one of \"c\", \"r\", \"u\", \"d\"");
        if (auto o = op_from_char(opv->get_string()[0]))
          out.op = *o;
        else
          return fail(reason, "unknown op \"" + std::string(opv->get_string()) + "\"");
      }
      if (const json::value* del = top->if_contains("__deleted"); del) {
        if ((del->is_string() && del->get_string() == "true") ||
            (del->is_bool() && del->get_bool()))
          out.op = cdc_op::del;
      }
      if (const json::value* ts = top->if_contains("__source_ts_ms"); ts && ts->is_number()) {
        boost::system::error_code nec;
        out.source_ts_ms = ts->to_number<int64_t>(nec);
        if (nec) return fail(reason, bad_source_ts("__source_ts_ms", *ts));
      }
    }

    load_column_schema(schema_obj, is_envelope);
    return convert_images(image, before_image, out, reason, [&](const json::object& img, row& dst) {
      return convert_image(img, in, out, dst, reason);
    });
  }

  // Why a source timestamp that is a JSON number but no int64 (1e300, 1.5, 2^64) is unusable.
  static std::string bad_source_ts(std::string_view key, const json::value& v) {
    return std::string(key) + ": cannot read " + json::serialize(v) + " as integer milliseconds";
  }

  // The record's image into out.image and, for updates in changelog mode, its before image into
  // out.before; `convert(image, destination)` does one of them. Shared by both decode paths.
  template <class Image, class Convert>
  decode_status convert_images(Image* image, Image* before_image, decoded_record& out,
                               std::string& reason, Convert convert) {
    if (auto st = convert(*image, out.image); st != decode_status::row) return st;
    if (with_before && out.op == cdc_op::update && before_image) {
      if (!out.before) out.before.emplace();
      if (auto st = convert(*before_image, *out.before); st != decode_status::row) {
        reason = "before image: " + reason;
        return st;
      }
    } else {
      out.before.reset();
    }
    return decode_status::row;
  }

  // Fills col_schema from a JsonConverter schema: for envelopes the "after" struct's fields.
  void load_column_schema(const json::object* schema, bool envelope) {
    for (auto& c : col_schema) c = {};
    if (!schema) return;
    const json::object* row_schema = schema;
    if (envelope) {
      row_schema = nullptr;
      if (auto* fs = schema->if_contains("fields"); fs && fs->is_array()) {
        for (const auto& f : fs->get_array()) {
          if (!f.is_object()) continue;
          auto* name = f.get_object().if_contains("field");
          if (name && name->is_string() &&
              (name->get_string() == "after" || name->get_string() == "before")) {
            row_schema = &f.get_object();
            if (name->get_string() == "after") break;
          }
        }
      }
      if (!row_schema) return;
    }
    auto* fs = row_schema->if_contains("fields");
    if (!fs || !fs->is_array()) return;
    for (const auto& f : fs->get_array()) {
      if (!f.is_object()) continue;
      const auto& fo = f.get_object();
      auto* name = fo.if_contains("field");
      auto* lname = fo.if_contains("name");
      if (!name || !name->is_string() || !lname || !lname->is_string()) continue;
      for (size_t i = 0; i < plan.size(); ++i) {
        if (plan[i].column != std::string_view(name->get_string())) continue;
        col_schema[i].type = logical_from_name(lname->get_string());
        if (auto* params = fo.if_contains("parameters"); params && params->is_object()) {
          if (auto* sc = params->get_object().if_contains("scale"); sc) {
            if (sc->is_string())
              col_schema[i].scale = scale_from_text(sc->get_string());
            else if (sc->is_number())
              col_schema[i].scale = sc->is_int64() ? sc->get_int64() : unreadable_scale;
          }
        }
      }
    }
  }

  decode_status convert_image(const json::object& img, const raw_record& in,
                              const decoded_record& rec, row& out_row, std::string& reason) {
    out_row.resize(plan.size());
    for (size_t i = 0; i < plan.size(); ++i) {
      const field_plan& fp = plan[i];
      value& dst = out_row[i];
      if (fp.pseudo_column != pseudo::none) {
        if (!pseudo_value(fp, in, rec, dst, reason)) return decode_status::dead_letter;
      } else {
        const json::value* v =
            img.if_contains(json::string_view(fp.column.data(), fp.column.size()));
        if (!v || v->is_null()) {
          dst = std::monostate{};
        } else if (!convert(*v, *fp.cfg, col_schema[i], dst, reason)) {
          reason = "column '" + fp.cfg->column + "' (field '" + fp.cfg->name + "'): " + reason;
          return decode_status::dead_letter;
        }
      }
      if (fp.cfg->required && is_null(dst)) {
        reason = "missing required field '" + fp.cfg->name + "' (column '" + fp.cfg->column + "')";
        return decode_status::dead_letter;
      }
    }
    return decode_status::row;
  }

  bool pseudo_value(const field_plan& fp, const raw_record& in, const decoded_record& rec,
                    value& dst, std::string& reason) {
    switch (fp.pseudo_column) {
      case pseudo::op: {
        char c = static_cast<char>(rec.op);
        return assign_text(std::string_view(&c, 1), *fp.cfg, column_schema{}, dst, reason);
      }
      case pseudo::source_ts:
        if (rec.source_ts_ms < 0)
          dst = std::monostate{};
        else
          return assign_number(rec.source_ts_ms, *fp.cfg, time_unit::millis, dst, reason);
        return true;
      case pseudo::kafka_ts:
        if (in.timestamp_ms < 0)
          dst = std::monostate{};
        else
          return assign_number(in.timestamp_ms, *fp.cfg, time_unit::millis, dst, reason);
        return true;
      case pseudo::topic:
        return assign_text(in.topic, *fp.cfg, {}, dst, reason);
      case pseudo::key:
        return assign_text(in.key, *fp.cfg, {}, dst, reason);
      case pseudo::partition:
        return assign_number(in.partition, *fp.cfg, time_unit::auto_detect, dst, reason);
      case pseudo::offset:
        return assign_number(in.offset, *fp.cfg, time_unit::auto_detect, dst, reason);
      case pseudo::none:
        break;
    }
    return true;
  }

  // An integer source value (JSON number or pseudo-column) into the field's type.
  bool assign_number(int64_t v, const field_config& f, time_unit unit_hint, value& dst,
                     std::string& reason) {
    switch (f.type) {
      case field_type::int64:
        dst = v;
        return true;
      case field_type::float64:
        dst = static_cast<double>(v);
        return true;
      case field_type::string:
        dst = std::to_string(v);
        return true;
      case field_type::boolean:
        if (v == 0 || v == 1) {
          dst = v == 1;
          return true;
        }
        reason = "cannot read " + std::to_string(v) + " as bool";
        return false;
      case field_type::timestamp: {
        // The value's own unit (its schema's logical type, or a pseudo-column's) wins; the
        // declared unit is for values that carry none.
        time_unit u = unit_hint != time_unit::auto_detect ? unit_hint : f.unit;
        if (u == time_unit::auto_detect) u = time_unit::micros;
        if (u == time_unit::iso) {
          reason = "expected an ISO-8601 string, got the number " + std::to_string(v);
          return false;
        }
        bool overflow = false;
        int64_t us = scale_to_micros(v, u, &overflow);
        if (overflow) {
          reason = "timestamp " + std::to_string(v) + " out of range";
          return false;
        }
        dst = timestamp{us};
        return true;
      }
    }
    return true;
  }

  // Text (after unwrapping) into the field's type.
  bool assign_text(std::string_view s, const field_config& f, const column_schema& cs, value& dst,
                   std::string& reason) {
    if (f.strip_bytes_wrapper) s = strip_bytes_wrapper(s);
    if (f.trim) s = trim_ws(s);
    switch (f.type) {
      case field_type::string:
        if (auto* str = std::get_if<std::string>(&dst))
          str->assign(s.data(), s.size());
        else
          dst = std::string(s);
        return true;
      case field_type::int64: {
        if (is_null_word(s)) {
          dst = std::monostate{};
          return true;
        }
        if (cs.type == logical::decimal || (f.scale && !parse_int(s)))
          return decimal_text(s, cs.type == logical::decimal ? cs.scale : *f.scale, f.type, dst,
                              reason);
        if (auto v = parse_int(s)) {
          dst = *v;
          return true;
        }
        reason = "cannot read " + quoted_excerpt(s) + " as int";
        return false;
      }
      case field_type::float64: {
        if (is_null_word(s)) {
          dst = std::monostate{};
          return true;
        }
        if (cs.type == logical::decimal || (f.scale && !parse_double(s)))
          return decimal_text(s, cs.type == logical::decimal ? cs.scale : *f.scale, f.type, dst,
                              reason);
        if (auto v = parse_double(s)) {
          dst = *v;
          return true;
        }
        reason = "cannot read " + quoted_excerpt(s) + " as double";
        return false;
      }
      case field_type::boolean: {
        if (is_null_word(s)) {
          dst = std::monostate{};
          return true;
        }
        if (auto v = parse_bool(s)) {
          dst = *v;
          return true;
        }
        reason = "cannot read " + quoted_excerpt(s) + " as bool";
        return false;
      }
      case field_type::timestamp: {
        if (is_null_word(s)) {
          dst = std::monostate{};
          return true;
        }
        // As in assign_number: the schema's logical type, else the declared unit, else a guess.
        time_unit u = unit_from_logical(cs.type);
        if (u == time_unit::auto_detect) u = f.unit;
        if (u == time_unit::auto_detect) u = parse_int(s) ? time_unit::micros : time_unit::iso;
        if (u == time_unit::iso) {
          if (auto t = parse_iso_timestamp(s)) {
            dst = *t;
            return true;
          }
          reason = "cannot read " + quoted_excerpt(s) + " as an ISO-8601 timestamp";
          return false;
        }
        if (auto v = parse_int(s)) return assign_number(*v, f, u, dst, reason);
        reason = "cannot read " + quoted_excerpt(s) + " as a timestamp";
        return false;
      }
    }
    return true;
  }

  static time_unit unit_from_logical(logical l) {
    switch (l) {
      case logical::micro_timestamp:
      case logical::micro_time:
        return time_unit::micros;
      case logical::timestamp_ms:
      case logical::time_ms:
        return time_unit::millis;
      case logical::nano_timestamp:
      case logical::nano_time:
        return time_unit::nanos;
      case logical::zoned_timestamp:
        return time_unit::iso;
      case logical::date_days:
        return time_unit::days;
      default:
        return time_unit::auto_detect;
    }
  }

  // A base64 Decimal into an int field (truncated toward zero, exactly), a double field, or a
  // string field (the double, printed). Each check is O(1) in the scale: the scale comes from
  // the message and may be anything.
  bool decimal_text(std::string_view b64, int64_t scale, field_type type, value& dst,
                    std::string& reason) {
    // Kafka Connect writes Decimal bytes as padded standard base64 (Java's Base64 encoder).
    auto bytes = b64.size() % 4 == 0 ? decode_base64(b64) : std::nullopt;
    if (!bytes) {
      reason = "cannot read " + quoted_excerpt(b64) + " as a base64 Decimal";
      return false;
    }
    if (bytes->size() > 16) {
      reason = "Decimal wider than 128 bits";
      return false;
    }
    if (scale == unreadable_scale) {
      reason = "Decimal scale is not an integer";
      return false;
    }
    if (scale < -max_decimal_scale || scale > max_decimal_scale) {
      reason = "Decimal scale " + std::to_string(scale) + " out of range (|scale| at most " +
               std::to_string(max_decimal_scale) + ")";
      return false;
    }
    if (type == field_type::int64) {
      if (auto v = decimal_to_int64(*bytes, scale)) {
        dst = *v;
        return true;
      }
      reason = "Decimal " + quoted_excerpt(b64) + " with scale " + std::to_string(scale) +
               " out of range for int";
      return false;
    }
    auto d = decimal_from_bytes(*bytes, scale);
    if (!d) {
      reason = "Decimal " + quoted_excerpt(b64) + " with scale " + std::to_string(scale) +
               " out of range for double";
      return false;
    }
    if (type == field_type::string) {
      char buf[64];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, *d);
      dst = std::string(buf, p);
    } else {
      dst = *d;
    }
    return true;
  }

  // One JSON scalar, as the DOM holds it or as a basic_parser event delivers it.
  struct scalar {
    json::kind k = json::kind::null;
    std::string_view s;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    bool b = false;
  };

  bool convert(const json::value& v, const field_config& f, const column_schema& cs, value& dst,
               std::string& reason) {
    if (v.is_object()) {
      // VariableScaleDecimal: {"scale": n, "value": base64}.
      const auto& o = v.get_object();
      auto* sc = o.if_contains("scale");
      auto* val = o.if_contains("value");
      if (sc && val && (sc->is_number() || sc->is_string()) && val->is_string() &&
          (f.type == field_type::float64 || f.type == field_type::int64 ||
           f.type == field_type::string)) {
        int64_t scale = unreadable_scale;
        if (sc->is_int64())
          scale = sc->get_int64();
        else if (sc->is_string())
          scale = scale_from_text(sc->get_string());
        return decimal_text(std::string_view(val->get_string().data(), val->get_string().size()),
                            scale, f.type, dst, reason);
      }
    }
    if (v.is_object() || v.is_array()) {
      if (f.type == field_type::string) {
        dst = json::serialize(v);
        return true;
      }
      reason = std::string("expected ") + std::string(to_string(f.type)) + ", got " +
               kind_name(v.kind());
      return false;
    }
    scalar s;
    s.k = v.kind();
    switch (v.kind()) {
      case json::kind::string:
        s.s = std::string_view(v.get_string().data(), v.get_string().size());
        break;
      case json::kind::int64:
        s.i = v.get_int64();
        break;
      case json::kind::uint64:
        s.u = v.get_uint64();
        break;
      case json::kind::double_:
        s.d = v.get_double();
        break;
      case json::kind::bool_:
        s.b = v.get_bool();
        break;
      default:
        break;
    }
    return convert_scalar(s, f, cs, dst, reason);
  }

  // A scalar JSON value into the field's type (objects and arrays are handled by convert).
  bool convert_scalar(const scalar& v, const field_config& f, const column_schema& cs, value& dst,
                      std::string& reason) {
    switch (v.k) {
      case json::kind::string:
        return assign_text(v.s, f, cs, dst, reason);
      case json::kind::int64:
        if (f.type == field_type::string && cs.type == logical::date_days) {
          // The days a timestamp can hold (±292,000 years); beyond, the date arithmetic overflows.
          if (v.i < -max_timestamp_days || v.i > max_timestamp_days) {
            reason = "Date " + std::to_string(v.i) + " days out of range";
            return false;
          }
          dst = format_date(v.i);
          return true;
        }
        if (f.type == field_type::string &&
            (cs.type == logical::time_ms || cs.type == logical::micro_time ||
             cs.type == logical::nano_time)) {
          bool overflow = false;
          const int64_t us = scale_to_micros(v.i, unit_from_logical(cs.type), &overflow);
          if (overflow) {
            reason = "time " + std::to_string(v.i) + " out of range";
            return false;
          }
          dst = format_time_of_day(us);
          return true;
        }
        return assign_number(v.i, f, unit_from_logical(cs.type), dst, reason);
      case json::kind::uint64:
        if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          if (f.type == field_type::float64) {
            dst = static_cast<double>(v.u);
            return true;
          }
          reason = "integer " + std::to_string(v.u) + " out of range";
          return false;
        }
        return assign_number(static_cast<int64_t>(v.u), f, unit_from_logical(cs.type), dst, reason);
      case json::kind::double_: {
        double d = v.d;
        if (!std::isfinite(d)) {  // a JSON number beyond a double's range, such as 1e400
          reason = "number out of range for a double";
          return false;
        }
        switch (f.type) {
          case field_type::float64:
            dst = d;
            return true;
          case field_type::string: {
            char buf[64];
            auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
            dst = std::string(buf, p);
            return true;
          }
          case field_type::int64:
          case field_type::timestamp:
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18)
              return assign_number(static_cast<int64_t>(d), f, unit_from_logical(cs.type), dst,
                                   reason);
            reason = "cannot read " + std::to_string(d) + " as " + std::string(to_string(f.type));
            return false;
          case field_type::boolean:
            reason = "cannot read " + std::to_string(d) + " as bool";
            return false;
        }
        return false;
      }
      case json::kind::bool_:
        switch (f.type) {
          case field_type::boolean:
            dst = v.b;
            return true;
          case field_type::string:
            dst = std::string(v.b ? "true" : "false");
            return true;
          case field_type::int64:
            dst = int64_t{v.b ? 1 : 0};
            return true;
          default:
            reason = std::string("cannot read a bool as ") + std::string(to_string(f.type));
            return false;
        }
      case json::kind::null:
        dst = std::monostate{};
        return true;
      case json::kind::object:
      case json::kind::array:
        break;
    }
    return true;
  }

  // ---- the streaming decoder --------------------------------------------------------------
  //
  // decode() runs a boost::json::basic_parser over the message and converts the declared
  // columns straight from the parser's events, without building a DOM. The shape is not known
  // until the end (keys come in any order), so every place a row image can live is decoded into
  // its own scratch row: the top-level object itself (unwrapped), its "after" and "before"
  // objects (envelope), and the same three under "payload" (schema messages, whose column
  // schema must precede the payload). The final step makes the same decisions, in the same
  // order, as decode_dom does on the DOM, and swaps the chosen scratch row into the output.
  // Anything unusual (see decode_dom) stops the parse and falls back to decode_dom, which then
  // also produces any JSON error exactly as before.

  // Keys with a meaning in some object of the message.
  enum meta_key : uint8_t {
    mk_none,
    mk_op,
    mk_after,
    mk_before,
    mk_source,
    mk_uop,
    mk_deleted,
    mk_srcts,
    mk_schema,
    mk_payload,
    mk_ts_ms,
    mk_fields,
    mk_field,
    mk_name,
    mk_parameters,
    mk_scale,
  };
  static constexpr uint32_t bit(meta_key k) { return uint32_t{1} << k; }

  static meta_key classify(std::string_view k) {
    switch (k.size()) {
      case 2:
        return k == "op" ? mk_op : mk_none;
      case 4:
        if (k == "__op") return mk_uop;
        return k == "name" ? mk_name : mk_none;
      case 5:
        if (k == "after") return mk_after;
        if (k == "field") return mk_field;
        if (k == "ts_ms") return mk_ts_ms;
        return k == "scale" ? mk_scale : mk_none;
      case 6:
        if (k == "before") return mk_before;
        if (k == "source") return mk_source;
        if (k == "schema") return mk_schema;
        return k == "fields" ? mk_fields : mk_none;
      case 7:
        return k == "payload" ? mk_payload : mk_none;
      case 9:
        return k == "__deleted" ? mk_deleted : mk_none;
      case 10:
        return k == "parameters" ? mk_parameters : mk_none;
      case 14:
        return k == "__source_ts_ms" ? mk_srcts : mk_none;
      default:
        return mk_none;
    }
  }

  enum class ft : uint8_t {
    top,            // the message object: unwrapped row + envelope/schema keys
    payload,        // "payload" of a schema message: unwrapped row + envelope keys
    image,          // "after" / "before" of an envelope
    source,         // envelope "source"
    schema_root,    // "schema" object
    schema_fields,  // schema "fields" array
    schema_entry,   // one element of it: a column (unwrapped) or a before/after struct
    struct_fields,  // a struct's "fields" array
    coldesc,        // one element of it: a column
    params_entry,   // "parameters" of a schema_entry
    params_col,     // "parameters" of a coldesc
  };
  static uint32_t allowed_keys(ft t) {
    constexpr uint32_t env = bit(mk_op) | bit(mk_after) | bit(mk_before) | bit(mk_source) |
                             bit(mk_uop) | bit(mk_deleted) | bit(mk_srcts);
    switch (t) {
      case ft::top:
        return env | bit(mk_schema) | bit(mk_payload);
      case ft::payload:
        return env;
      case ft::source:
        return bit(mk_ts_ms);
      case ft::schema_root:
        return bit(mk_fields);
      case ft::schema_entry:
        return bit(mk_field) | bit(mk_name) | bit(mk_parameters) | bit(mk_fields);
      case ft::coldesc:
        return bit(mk_field) | bit(mk_name) | bit(mk_parameters);
      case ft::params_entry:
      case ft::params_col:
        return bit(mk_scale);
      default:
        return 0;
    }
  }

  struct frame {
    ft type;
    int8_t row;     // scratch row whose columns this object holds, -1 if none
    uint8_t c;      // container: 0 = the message object, 1 = "payload"
    uint32_t seen;  // meta keys seen (duplicates fall back)
  };

  // Per-container facts, for the final decisions.
  struct meta_facts {
    uint32_t seen = 0;
    json::kind op_kind = json::kind::null, uop_kind = json::kind::null;
    size_t op_len = 0, uop_len = 0;
    char op_ch = 0, uop_ch = 0;
    json::kind after_kind = json::kind::null, before_kind = json::kind::null,
               source_kind = json::kind::null, schema_kind = json::kind::null,
               payload_kind = json::kind::null;
    bool deleted = false;
    bool srcts_num = false, ts_num = false;
    int64_t srcts = 0, ts = 0;
    std::optional<json::value> srcts_bad, ts_bad;  // a number that is no int64
  };

  // A column descriptor in the schema: {"field": ..., "name": ..., "parameters": {"scale"}}.
  struct descriptor {
    bool field_str = false, name_str = false, has_scale = false;
    int64_t scale = 0;
    std::string field, name;  // name is mapped to a logical type only for declared columns
    void reset() {
      field_str = name_str = has_scale = false;
      scale = 0;
      field.clear();
      name.clear();
    }
  };

  struct scratch_row {
    row vals;
    std::vector<uint8_t> state;  // 0 absent, 1 converted, 2 null, 3 conversion failed
    int err = -1;                // lowest failing field index
    std::string err_reason;
    const std::vector<column_schema>* cs = nullptr;
  };
  enum : uint8_t { st_absent, st_set, st_null, st_failed };

  struct column_entry {
    std::string name;
    std::vector<uint16_t> fields;  // plan indices reading this column
  };

  struct sax_handler {
    static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
    using ec_t = json::error_code;
    using sv = json::string_view;
    impl* d;
    explicit sax_handler(impl* i) : d(i) {}
    static std::string_view v(sv s) { return {s.data(), s.size()}; }
    bool on_document_begin(ec_t&) { return true; }
    bool on_document_end(ec_t&) { return true; }
    bool on_object_begin(ec_t& ec) { return d->on_begin(true, ec); }
    bool on_object_end(std::size_t, ec_t&) { return d->on_end(); }
    bool on_array_begin(ec_t& ec) { return d->on_begin(false, ec); }
    bool on_array_end(std::size_t, ec_t&) { return d->on_end(); }
    bool on_key_part(sv s, std::size_t, ec_t&) {
      if (d->skip_depth == 0) {
        d->keybuf.append(s.data(), s.size());
        d->key_split = true;
      }
      return true;
    }
    bool on_key(sv s, std::size_t, ec_t& ec) {
      if (d->skip_depth != 0) return true;
      std::string_view k = v(s);
      if (d->key_split) {
        d->keybuf.append(s.data(), s.size());
        k = d->keybuf;
      }
      bool ok = d->on_key(k, ec);
      d->keybuf.clear();
      d->key_split = false;
      return ok;
    }
    bool on_string_part(sv s, std::size_t, ec_t&) {
      if (d->wants_value()) {
        d->strbuf.append(s.data(), s.size());
        d->str_split = true;
      }
      return true;
    }
    bool on_string(sv s, std::size_t, ec_t& ec) {
      scalar x;
      x.k = json::kind::string;
      x.s = v(s);
      if (d->str_split) {
        d->strbuf.append(s.data(), s.size());
        x.s = d->strbuf;
      }
      bool ok = d->on_scalar(x, ec);
      d->strbuf.clear();
      d->str_split = false;
      return ok;
    }
    bool on_number_part(sv, ec_t&) { return true; }
    bool on_int64(int64_t i, sv, ec_t& ec) {
      scalar x;
      x.k = json::kind::int64;
      x.i = i;
      return d->on_scalar(x, ec);
    }
    bool on_uint64(uint64_t u, sv, ec_t& ec) {
      scalar x;
      x.k = json::kind::uint64;
      x.u = u;
      return d->on_scalar(x, ec);
    }
    bool on_double(double f, sv, ec_t& ec) {
      scalar x;
      x.k = json::kind::double_;
      x.d = f;
      return d->on_scalar(x, ec);
    }
    bool on_bool(bool b, ec_t& ec) {
      scalar x;
      x.k = json::kind::bool_;
      x.b = b;
      return d->on_scalar(x, ec);
    }
    bool on_null(ec_t& ec) {
      scalar x;
      return d->on_scalar(x, ec);
    }
    bool on_comment_part(sv, ec_t&) { return true; }
    bool on_comment(sv, ec_t&) { return true; }
  };

  // Streaming state, reset per record.
  static constexpr int kMaxFrames = 8;  // interesting containers nest at most 7 deep
  frame stack[kMaxFrames];
  int depth = 0;
  int skip_depth = 0;  // > 0 inside a subtree nobody reads
  int col = -1;        // column entry of the current key, -1 if none
  meta_key mkey = mk_none;
  json::kind root_kind = json::kind::null;
  bool fallback = false;
  bool schema_seen = false, payload_seen = false;
  meta_facts meta[2];
  scratch_row rows[6];  // container * 3 + {0 row, 1 after, 2 before}
  std::string keybuf, strbuf, conv_reason;
  bool key_split = false, str_split = false;

  // Column schema candidates.
  std::vector<column_schema> cs_none, cs_top, cs_after, cs_before, cs_tmp, cs_env;
  bool after_found = false, before_found = false;
  descriptor d_entry, d_col;

  // Declared columns: open-addressing hash of column name -> column entry.
  std::vector<column_entry> columns;
  std::vector<int16_t> col_table;
  size_t col_mask = 0;

  json::basic_parser<sax_handler> sax;

  static json::parse_options parse_opts() {
    json::parse_options opt;
    opt.max_depth = 64;
    opt.allow_invalid_utf8 = false;
    return opt;
  }

  static size_t hash_key(std::string_view k) {
    uint64_t a = 0, b = 0;
    size_t n = k.size();
    if (n >= 8) {
      std::memcpy(&a, k.data(), 8);
      std::memcpy(&b, k.data() + n - 8, 8);
    } else {
      std::memcpy(&a, k.data(), n);
    }
    uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (b + n) * 0xC2B2AE3D27D4EB4FULL;
    return static_cast<size_t>(h ^ (h >> 29));
  }

  void build_columns() {
    for (size_t i = 0; i < plan.size(); ++i) {
      if (plan[i].pseudo_column != pseudo::none) continue;
      auto it = std::find_if(columns.begin(), columns.end(),
                             [&](const column_entry& e) { return e.name == plan[i].column; });
      if (it == columns.end()) {
        columns.push_back({std::string(plan[i].column), {}});
        it = columns.end() - 1;
      }
      it->fields.push_back(static_cast<uint16_t>(i));
    }
    size_t size = 16;
    while (size < columns.size() * 4) size *= 2;
    col_table.assign(size, -1);
    col_mask = size - 1;
    for (size_t c = 0; c < columns.size(); ++c) {
      size_t h = hash_key(columns[c].name) & col_mask;
      while (col_table[h] >= 0) h = (h + 1) & col_mask;
      col_table[h] = static_cast<int16_t>(c);
    }
    for (auto* cs : {&cs_none, &cs_top, &cs_after, &cs_before, &cs_tmp, &cs_env})
      cs->assign(plan.size(), column_schema{});
    for (auto& r : rows) {
      r.vals.resize(plan.size());
      r.state.assign(plan.size(), st_absent);
      r.cs = &cs_none;
    }
  }

  int find_column(std::string_view k) const {
    size_t h = hash_key(k) & col_mask;
    for (int16_t c; (c = col_table[h]) >= 0; h = (h + 1) & col_mask)
      if (columns[static_cast<size_t>(c)].name == k) return c;
    return -1;
  }

  bool give_up(json::error_code& ec) {
    fallback = true;
    ec = json::error::syntax;  // any error: stops the parse; decode() then uses decode_dom
    return false;
  }

  bool wants_value() const { return skip_depth == 0 && (col >= 0 || mkey != mk_none); }

  void reset_stream() {
    depth = 0;
    skip_depth = 0;
    col = -1;
    mkey = mk_none;
    root_kind = json::kind::null;
    fallback = false;
    schema_seen = payload_seen = false;
    meta[0] = meta_facts{};
    meta[1] = meta_facts{};
    keybuf.clear();
    strbuf.clear();
    key_split = str_split = false;
    after_found = before_found = false;
    for (auto& r : rows) {
      r.vals.resize(plan.size());
      std::fill(r.state.begin(), r.state.end(), st_absent);
      r.err = -1;
    }
  }

  bool push(ft type, int row, uint8_t c) {
    if (depth == kMaxFrames) {  // cannot happen with the frame types above; be safe
      skip_depth = 1;
      return true;
    }
    stack[depth++] = frame{type, static_cast<int8_t>(row), c, 0};
    col = -1;
    mkey = mk_none;
    return true;
  }

  bool on_key(std::string_view k, json::error_code& ec) {
    frame& f = stack[depth - 1];
    col = -1;
    mkey = mk_none;
    if (f.row >= 0 && !columns.empty()) col = find_column(k);
    uint32_t allowed = allowed_keys(f.type);
    if (allowed != 0) {
      meta_key m = classify(k);
      if (m != mk_none && (allowed & bit(m))) {
        uint32_t& seen = (f.type == ft::top || f.type == ft::payload) ? meta[f.c].seen : f.seen;
        if (seen & bit(m)) return give_up(ec);  // duplicate key
        seen |= bit(m);
        mkey = m;
      }
    }
    return true;
  }

  bool on_begin(bool is_object, json::error_code& ec) {
    if (skip_depth != 0) {
      ++skip_depth;
      return true;
    }
    const json::kind k = is_object ? json::kind::object : json::kind::array;
    if (depth == 0) {
      root_kind = k;
      if (is_object) return push(ft::top, 0, 0);
      skip_depth = 1;
      return true;
    }
    const frame p = stack[depth - 1];
    if (col >= 0) return give_up(ec);  // an object or array where a column is expected
    meta_facts& m = meta[p.c];
    switch (p.type) {
      case ft::top:
      case ft::payload:
        switch (mkey) {
          case mk_op:
            m.op_kind = k;
            break;
          case mk_uop:
            m.uop_kind = k;
            break;
          case mk_after:
            m.after_kind = k;
            if (is_object) return push(ft::image, p.c * 3 + 1, p.c);
            break;
          case mk_before:
            m.before_kind = k;
            if (is_object) return push(ft::image, p.c * 3 + 2, p.c);
            break;
          case mk_source:
            m.source_kind = k;
            if (is_object) return push(ft::source, -1, p.c);
            break;
          case mk_schema:
            if (!note_schema(k, ec)) return false;
            if (is_object) return push(ft::schema_root, -1, 0);
            break;
          case mk_payload:
            m.payload_kind = k;
            payload_seen = true;
            if (is_object && schema_seen) {
              start_payload();
              return push(ft::payload, 3, 1);
            }
            break;
          default:
            break;
        }
        break;
      case ft::schema_root:
        if (mkey == mk_fields && !is_object) return push(ft::schema_fields, -1, 0);
        break;
      case ft::schema_fields:
        if (is_object) {
          d_entry.reset();
          std::fill(cs_tmp.begin(), cs_tmp.end(), column_schema{});
          return push(ft::schema_entry, -1, 0);
        }
        break;
      case ft::schema_entry:
        if (mkey == mk_fields && !is_object) return push(ft::struct_fields, -1, 0);
        if (mkey == mk_parameters && is_object) return push(ft::params_entry, -1, 0);
        break;
      case ft::struct_fields:
        if (is_object) {
          d_col.reset();
          return push(ft::coldesc, -1, 0);
        }
        break;
      case ft::coldesc:
        if (mkey == mk_parameters && is_object) return push(ft::params_col, -1, 0);
        break;
      default:
        break;
    }
    skip_depth = 1;
    return true;
  }

  bool note_schema(json::kind k, json::error_code& ec) {
    if (payload_seen) return give_up(ec);  // the payload was read without its schema
    meta[0].schema_kind = k;
    schema_seen = true;
    for (auto* cs : {&cs_top, &cs_after, &cs_before})
      std::fill(cs->begin(), cs->end(), column_schema{});
    return true;
  }

  // The schema is complete: pick the column schemas the payload's images convert with.
  void start_payload() {
    const auto& env = after_found ? cs_after : before_found ? cs_before : cs_none;
    std::copy(env.begin(), env.end(), cs_env.begin());
    rows[3].cs = &cs_top;
    rows[4].cs = &cs_env;
    rows[5].cs = &cs_env;
  }

  void apply_descriptor(const descriptor& d, std::vector<column_schema>& target) {
    if (!d.field_str || !d.name_str || columns.empty()) return;
    int c = find_column(d.field);
    if (c < 0) return;
    const logical lt = logical_from_name(d.name);
    for (uint16_t i : columns[static_cast<size_t>(c)].fields) {
      target[i].type = lt;
      if (d.has_scale) target[i].scale = d.scale;
    }
  }

  bool on_end() {
    if (skip_depth != 0) {
      --skip_depth;
      return true;
    }
    const frame f = stack[--depth];
    col = -1;
    mkey = mk_none;
    if (f.type == ft::schema_entry) {
      apply_descriptor(d_entry, cs_top);
      if (d_entry.field_str && !after_found) {
        if (d_entry.field == "after") {
          cs_after = cs_tmp;
          after_found = true;
        } else if (d_entry.field == "before") {
          cs_before = cs_tmp;
          before_found = true;
        }
      }
    } else if (f.type == ft::coldesc) {
      apply_descriptor(d_col, cs_tmp);
    }
    return true;
  }

  // The scalar as a json::value (numbers only; for to_number and messages).
  static json::value number_value(const scalar& x) {
    if (x.k == json::kind::int64) return json::value(x.i);
    if (x.k == json::kind::uint64) return json::value(x.u);
    return json::value(x.d);
  }
  // json::value::to_number<int64_t> semantics: false when not exactly representable.
  static bool to_int64(const scalar& x, int64_t& out) {
    boost::system::error_code ec;
    out = number_value(x).to_number<int64_t>(ec);
    return !ec;
  }
  static bool is_num(json::kind k) {
    return k == json::kind::int64 || k == json::kind::uint64 || k == json::kind::double_;
  }

  bool on_scalar(const scalar& x, json::error_code& ec) {
    if (skip_depth != 0) return true;
    if (depth == 0) {
      root_kind = x.k;
      return true;
    }
    const frame& p = stack[depth - 1];
    if (col >= 0 && !assign_column(p.row, x, ec)) return false;
    if (mkey == mk_none) return true;
    meta_facts& m = meta[p.c];
    switch (p.type) {
      case ft::top:
      case ft::payload:
        switch (mkey) {
          case mk_op:
            m.op_kind = x.k;
            if (x.k == json::kind::string) {
              m.op_len = x.s.size();
              m.op_ch = x.s.empty() ? '\0' : x.s[0];
            }
            break;
          case mk_uop:
            m.uop_kind = x.k;
            if (x.k == json::kind::string) {
              m.uop_len = x.s.size();
              m.uop_ch = x.s.empty() ? '\0' : x.s[0];
            }
            break;
          case mk_deleted:
            m.deleted =
                (x.k == json::kind::string && x.s == "true") || (x.k == json::kind::bool_ && x.b);
            break;
          case mk_srcts:
            if (is_num(x.k)) {
              m.srcts_num = true;
              if (!to_int64(x, m.srcts)) m.srcts_bad = number_value(x);
            }
            break;
          case mk_after:
            m.after_kind = x.k;
            break;
          case mk_before:
            m.before_kind = x.k;
            break;
          case mk_source:
            m.source_kind = x.k;
            break;
          case mk_schema:
            return note_schema(x.k, ec);
          case mk_payload:
            m.payload_kind = x.k;
            payload_seen = true;
            break;
          default:
            break;
        }
        break;
      case ft::source:
        if (is_num(x.k)) {
          m.ts_num = true;
          if (!to_int64(x, m.ts)) m.ts_bad = number_value(x);
        }
        break;
      case ft::schema_entry:
      case ft::coldesc: {
        descriptor& d = p.type == ft::schema_entry ? d_entry : d_col;
        if (x.k != json::kind::string) break;
        if (mkey == mk_field) {
          d.field_str = true;
          d.field.assign(x.s.data(), x.s.size());
        } else if (mkey == mk_name) {
          d.name_str = true;
          d.name.assign(x.s.data(), x.s.size());
        }
        break;
      }
      case ft::params_entry:
      case ft::params_col: {
        descriptor& d = p.type == ft::params_entry ? d_entry : d_col;
        if (x.k == json::kind::string) {
          d.has_scale = true;
          d.scale = scale_from_text(x.s);
        } else if (is_num(x.k)) {
          d.has_scale = true;
          d.scale = x.k == json::kind::int64 ? x.i : unreadable_scale;
        }
        break;
      }
      default:
        break;
    }
    return true;
  }

  bool assign_column(int row_index, const scalar& x, json::error_code& ec) {
    scratch_row& r = rows[row_index];
    const auto& fields = columns[static_cast<size_t>(col)].fields;
    if (r.state[fields.front()] != st_absent) return give_up(ec);  // duplicate key
    for (uint16_t i : fields) {
      if (x.k == json::kind::null) {
        r.state[i] = st_null;
        continue;
      }
      if (convert_scalar(x, *plan[i].cfg, (*r.cs)[i], r.vals[i], conv_reason)) {
        r.state[i] = st_set;
      } else {
        r.state[i] = st_failed;
        if (r.err < 0 || static_cast<int>(i) < r.err) {
          r.err = static_cast<int>(i);
          r.err_reason = conv_reason;
        }
      }
    }
    return true;
  }

  decode_status decode(const raw_record& in, decoded_record& out, std::string& reason) {
    if (in.value_is_null) {
      reason = "tombstone";
      return decode_status::skipped;
    }
    if (in.value.empty()) return fail(reason, "empty message value");
    if (static_cast<int64_t>(in.value.size()) > cfg.source.max_message_bytes)
      return fail(reason, "message too large: " + std::to_string(in.value.size()) +
                              " bytes > source.max_message_bytes = " +
                              std::to_string(cfg.source.max_message_bytes));

    reset_stream();
    sax.reset();
    boost::system::error_code ec;
    size_t used = sax.write_some(false, in.value.data(), in.value.size(), ec);
    if (fallback) return decode_dom(in, out, reason);
    if (!ec && used < in.value.size()) {
      // write_some stops after one complete value; anything but whitespace after it is garbage.
      if (!trim_ws(in.value.substr(used)).empty())
        return fail(reason, "invalid JSON at byte " + std::to_string(used) +
                                ": unexpected data after the JSON value");
    }
    if (ec) {
      std::string msg = ec.message();
      if (ec == json::error::too_deep) msg = "nesting deeper than 64 levels";
      return fail(reason, "invalid JSON at byte " + std::to_string(used) + ": " + msg);
    }
    if (root_kind != json::kind::object)
      return fail(reason, std::string("expected a JSON object, got ") + kind_name(root_kind));

    // Shape detection, as in decode_dom.
    int c = 0;
    bool schema_obj = false;
    const meta_facts& top = meta[0];
    if ((top.seen & bit(mk_schema)) && (top.seen & bit(mk_payload))) {
      if (top.payload_kind == json::kind::null) {
        reason = "tombstone";
        return decode_status::skipped;
      }
      if (top.payload_kind != json::kind::object)
        return fail(reason, std::string("schema message: payload is ") +
                                kind_name(top.payload_kind) + ", expected an object");
      schema_obj = top.schema_kind == json::kind::object;
      c = 1;
    }
    const meta_facts& m = meta[c];
    bool is_envelope = (m.seen & bit(mk_op)) && (m.seen & (bit(mk_after) | bit(mk_before)));
    if (const char* mismatch = format_mismatch(cfg.source.format, schema_obj, is_envelope))
      return fail(reason, mismatch);

    scratch_row* image = nullptr;
    scratch_row* before_image = nullptr;
    out.source_ts_ms = -1;
    if (is_envelope) {
      if (m.op_kind != json::kind::string || m.op_len != 1)
        return fail(reason, "envelope field \"op\" must be one of \"c\", \"r\", \"u\", \"d\"");
      char op = m.op_ch;
      if (op == 't') {
        reason = "truncate event";
        return decode_status::skipped;
      }
      if (auto o = op_from_char(op))
        out.op = *o;
      else
        return fail(reason, std::string("unknown op \"") + op + "\"");
      bool del = out.op == cdc_op::del;
      bool img_present = (m.seen & bit(del ? mk_before : mk_after)) != 0;
      json::kind img_kind = del ? m.before_kind : m.after_kind;
      if (!img_present || img_kind != json::kind::object)
        return fail(reason, std::string("op \"") + op + "\" without " +
                                (del ? "a before" : "an after") + " image");
      image = &rows[c * 3 + (del ? 2 : 1)];
      if ((m.seen & bit(mk_before)) && m.before_kind == json::kind::object)
        before_image = &rows[c * 3 + 2];
      if ((m.seen & bit(mk_source)) && m.source_kind == json::kind::object && m.ts_num) {
        if (m.ts_bad) return fail(reason, bad_source_ts("source.ts_ms", *m.ts_bad));
        out.source_ts_ms = m.ts;
      }
    } else {
      image = &rows[c * 3];
      out.op = cdc_op::create;
      if ((m.seen & bit(mk_uop)) && m.uop_kind != json::kind::null) {
        if (m.uop_kind != json::kind::string || m.uop_len != 1)
          return fail(reason, "column '__op' must be one of \"c\", \"r\", \"u\", \"d\"");
        if (auto o = op_from_char(m.uop_ch))
          out.op = *o;
        else
          return fail(reason, "unknown op \"" + std::string(1, m.uop_ch) + "\"");
      }
      if (m.deleted) out.op = cdc_op::del;
      if (m.srcts_num) {
        if (m.srcts_bad) return fail(reason, bad_source_ts("__source_ts_ms", *m.srcts_bad));
        out.source_ts_ms = m.srcts;
      }
    }

    return convert_images(image, before_image, out, reason, [&](scratch_row& img, row& dst) {
      return finish_image(img, in, out, dst, reason);
    });
  }

  // convert_image for a scratch row: pseudo-columns, absent columns, the first conversion
  // error and required checks in declaration order; then the row becomes `out_row`.
  decode_status finish_image(scratch_row& r, const raw_record& in, const decoded_record& rec,
                             row& out_row, std::string& reason) {
    for (size_t i = 0; i < plan.size(); ++i) {
      const field_plan& fp = plan[i];
      value& dst = r.vals[i];
      if (fp.pseudo_column != pseudo::none) {
        if (!pseudo_value(fp, in, rec, dst, reason)) return decode_status::dead_letter;
      } else if (r.state[i] == st_failed) {
        reason = "column '" + fp.cfg->column + "' (field '" + fp.cfg->name + "'): " + r.err_reason;
        return decode_status::dead_letter;
      } else if (r.state[i] != st_set) {
        dst = std::monostate{};
      }
      if (fp.cfg->required && is_null(dst)) {
        reason = "missing required field '" + fp.cfg->name + "' (column '" + fp.cfg->column + "')";
        return decode_status::dead_letter;
      }
    }
    out_row.swap(r.vals);
    return decode_status::row;
  }
};

record_decoder::record_decoder(const pipeline_config& cfg, bool with_before_image)
    : impl_(std::make_unique<impl>(cfg, with_before_image)) {}

record_decoder::~record_decoder() = default;

decode_status record_decoder::decode(const raw_record& in, decoded_record& out,
                                     std::string& reason) {
  return impl_->decode(in, out, reason);
}

}  // namespace eddy
