#include "worker/debezium_decoder.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <limits>

#include "worker/time_format.hpp"

namespace json = boost::json;

namespace eddy {

namespace {

// ---- small text helpers ---------------------------------------------------------------------

std::string_view trim_ws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' ||
                        s.front() == '\r'))
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

std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc{} && p == s.data() + s.size()) return v;
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
    case json::kind::null: return "null";
    case json::kind::bool_: return "bool";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
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

struct column_schema {
  logical type = logical::none;
  int scale = 0;
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
    case time_unit::seconds: factor = 1'000'000; break;
    case time_unit::millis: factor = 1'000; break;
    case time_unit::nanos: return v / 1'000;
    case time_unit::days: factor = 86'400'000'000LL; break;
    default: break;
  }
  int64_t r = 0;
  if (__builtin_mul_overflow(v, factor, &r)) {
    *overflow = true;
    return 0;
  }
  return r;
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

double decimal_from_bytes(std::string_view be, int scale) {
  if (be.empty()) return 0.0;
  // Two's complement, big-endian, arbitrary length: accumulate in long double.
  bool negative = (static_cast<unsigned char>(be[0]) & 0x80) != 0;
  long double acc = 0;
  for (char c : be) {
    unsigned char b = static_cast<unsigned char>(c);
    if (negative) b = static_cast<unsigned char>(~b);
    acc = acc * 256 + b;
  }
  if (negative) acc = -(acc + 1);
  // Exact for unscaled values below 2^64 (long double has a 64-bit mantissa on x86-64).
  long double p = 1;
  for (int i = 0; i < scale; ++i) p *= 10;
  for (int i = 0; i > scale; --i) p /= 10;
  return static_cast<double>(acc / p);
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
  json::monotonic_resource arena;
  json::parser parser;
  std::string scratch;

  impl(const pipeline_config& c, bool before)
      : cfg(c), with_before(before), arena(arena_buffer, sizeof arena_buffer), parser(make_parser()) {
    for (const auto& f : cfg.fields)
      plan.push_back({&f, pseudo_from(f.column), std::string_view(f.column)});
    col_schema.resize(plan.size());
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

    arena.release();
    parser.reset(json::storage_ptr(&arena));
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
    switch (cfg.source.format) {
      case message_format::schema:
        if (!schema_obj) return fail(reason, "expected a {\"schema\", \"payload\"} message");
        break;
      case message_format::envelope:
        if (!is_envelope)
          return fail(reason, "expected a Debezium envelope with \"op\" and \"before\"/\"after\"");
        break;
      case message_format::unwrapped:
        if (is_envelope || schema_obj)
          return fail(reason, "expected an unwrapped row, got a Debezium envelope");
        break;
      case message_format::auto_detect: break;
    }

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
      switch (op) {
        case 'c': out.op = cdc_op::create; break;
        case 'r': out.op = cdc_op::read; break;
        case 'u': out.op = cdc_op::update; break;
        case 'd': out.op = cdc_op::del; break;
        case 't':
          reason = "truncate event";
          return decode_status::skipped;
        default:
          return fail(reason, std::string("unknown op \"") + op + "\"");
      }
      const json::value* img = out.op == cdc_op::del ? before : after;
      if (!img || !img->is_object())
        return fail(reason, std::string("op \"") + op + "\" without " +
                                (out.op == cdc_op::del ? "a before" : "an after") + " image");
      image = &img->get_object();
      if (before && before->is_object()) before_image = &before->get_object();
      if (const json::value* src = top->if_contains("source"); src && src->is_object()) {
        if (const json::value* ts = src->get_object().if_contains("ts_ms"); ts && ts->is_number())
          out.source_ts_ms = ts->to_number<int64_t>(ec);
      }
    } else {
      image = top;
      out.op = cdc_op::create;
      if (const json::value* opv = top->if_contains("__op"); opv && !opv->is_null()) {
        if (!opv->is_string() || opv->get_string().size() != 1)
          return fail(reason, "column '__op' must be one of \"c\", \"r\", \"u\", \"d\"");
        switch (opv->get_string()[0]) {
          case 'c': out.op = cdc_op::create; break;
          case 'r': out.op = cdc_op::read; break;
          case 'u': out.op = cdc_op::update; break;
          case 'd': out.op = cdc_op::del; break;
          default: return fail(reason, "unknown op \"" + std::string(opv->get_string()) + "\"");
        }
      }
      if (const json::value* del = top->if_contains("__deleted"); del) {
        if ((del->is_string() && del->get_string() == "true") ||
            (del->is_bool() && del->get_bool()))
          out.op = cdc_op::del;
      }
      if (const json::value* ts = top->if_contains("__source_ts_ms"); ts && ts->is_number())
        out.source_ts_ms = ts->to_number<int64_t>(ec);
    }

    load_column_schema(schema_obj, is_envelope);
    if (auto st = convert_image(*image, in, out, out.image, reason); st != decode_status::row)
      return st;
    if (with_before && out.op == cdc_op::update && before_image) {
      if (!out.before) out.before.emplace();
      if (auto st = convert_image(*before_image, in, out, *out.before, reason);
          st != decode_status::row) {
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
            if (sc->is_string()) {
              if (auto v = parse_int(sc->get_string())) col_schema[i].scale = static_cast<int>(*v);
            } else if (sc->is_int64()) {
              col_schema[i].scale = static_cast<int>(sc->get_int64());
            }
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
        const json::value* v = img.if_contains(json::string_view(fp.column.data(), fp.column.size()));
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
        if (rec.source_ts_ms < 0) dst = std::monostate{};
        else return assign_number(rec.source_ts_ms, *fp.cfg, time_unit::millis, dst, reason);
        return true;
      case pseudo::kafka_ts:
        if (in.timestamp_ms < 0) dst = std::monostate{};
        else return assign_number(in.timestamp_ms, *fp.cfg, time_unit::millis, dst, reason);
        return true;
      case pseudo::topic: return assign_text(in.topic, *fp.cfg, {}, dst, reason);
      case pseudo::key: return assign_text(in.key, *fp.cfg, {}, dst, reason);
      case pseudo::partition:
        return assign_number(in.partition, *fp.cfg, time_unit::auto_detect, dst, reason);
      case pseudo::offset:
        return assign_number(in.offset, *fp.cfg, time_unit::auto_detect, dst, reason);
      case pseudo::none: break;
    }
    return true;
  }

  // An integer source value (JSON number or pseudo-column) into the field's type.
  bool assign_number(int64_t v, const field_config& f, time_unit unit_hint, value& dst,
                     std::string& reason) {
    switch (f.type) {
      case field_type::int64: dst = v; return true;
      case field_type::float64: dst = static_cast<double>(v); return true;
      case field_type::string: dst = std::to_string(v); return true;
      case field_type::boolean:
        if (v == 0 || v == 1) {
          dst = v == 1;
          return true;
        }
        reason = "cannot read " + std::to_string(v) + " as bool";
        return false;
      case field_type::timestamp: {
        time_unit u = f.unit != time_unit::auto_detect ? f.unit : unit_hint;
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
        if (auto* str = std::get_if<std::string>(&dst)) str->assign(s.data(), s.size());
        else dst = std::string(s);
        return true;
      case field_type::int64: {
        if (is_null_word(s)) {
          dst = std::monostate{};
          return true;
        }
        if (cs.type == logical::decimal || (f.scale && !parse_int(s))) {
          double d = 0;
          if (!decimal_text(s, cs.type == logical::decimal ? cs.scale : *f.scale, d, reason))
            return false;
          dst = static_cast<int64_t>(d);
          return true;
        }
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
        if (cs.type == logical::decimal || (f.scale && !parse_double(s))) {
          double d = 0;
          if (!decimal_text(s, cs.type == logical::decimal ? cs.scale : *f.scale, d, reason))
            return false;
          dst = d;
          return true;
        }
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
        time_unit u = f.unit;
        if (u == time_unit::auto_detect) {
          u = unit_from_logical(cs.type);
          if (u == time_unit::auto_detect) u = parse_int(s) ? time_unit::micros : time_unit::iso;
        }
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
      case logical::micro_time: return time_unit::micros;
      case logical::timestamp_ms:
      case logical::time_ms: return time_unit::millis;
      case logical::nano_timestamp:
      case logical::nano_time: return time_unit::nanos;
      case logical::zoned_timestamp: return time_unit::iso;
      case logical::date_days: return time_unit::days;
      default: return time_unit::auto_detect;
    }
  }

  bool decimal_text(std::string_view b64, int scale, double& out, std::string& reason) {
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
    out = decimal_from_bytes(*bytes, scale);
    return true;
  }

  bool convert(const json::value& v, const field_config& f, const column_schema& cs, value& dst,
               std::string& reason) {
    switch (v.kind()) {
      case json::kind::string:
        return assign_text(std::string_view(v.get_string().data(), v.get_string().size()), f, cs,
                           dst, reason);
      case json::kind::int64:
        if (f.type == field_type::string && cs.type == logical::date_days) {
          dst = format_date(v.get_int64());
          return true;
        }
        if (f.type == field_type::string &&
            (cs.type == logical::time_ms || cs.type == logical::micro_time ||
             cs.type == logical::nano_time)) {
          bool overflow = false;
          dst = format_time_of_day(scale_to_micros(v.get_int64(), unit_from_logical(cs.type), &overflow));
          return true;
        }
        return assign_number(v.get_int64(), f, unit_from_logical(cs.type), dst, reason);
      case json::kind::uint64:
        if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          if (f.type == field_type::float64) {
            dst = static_cast<double>(v.get_uint64());
            return true;
          }
          reason = "integer " + std::to_string(v.get_uint64()) + " out of range";
          return false;
        }
        return assign_number(static_cast<int64_t>(v.get_uint64()), f, unit_from_logical(cs.type),
                             dst, reason);
      case json::kind::double_: {
        double d = v.get_double();
        switch (f.type) {
          case field_type::float64: dst = d; return true;
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
          case field_type::boolean: dst = v.get_bool(); return true;
          case field_type::string: dst = std::string(v.get_bool() ? "true" : "false"); return true;
          case field_type::int64: dst = int64_t{v.get_bool() ? 1 : 0}; return true;
          default:
            reason = std::string("cannot read a bool as ") + std::string(to_string(f.type));
            return false;
        }
      case json::kind::object: {
        // VariableScaleDecimal: {"scale": n, "value": base64}.
        const auto& o = v.get_object();
        auto* sc = o.if_contains("scale");
        auto* val = o.if_contains("value");
        if (sc && val && sc->is_int64() && val->is_string() &&
            (f.type == field_type::float64 || f.type == field_type::int64 ||
             f.type == field_type::string)) {
          double d = 0;
          if (!decimal_text(std::string_view(val->get_string().data(), val->get_string().size()),
                            static_cast<int>(sc->get_int64()), d, reason))
            return false;
          if (f.type == field_type::float64) dst = d;
          else if (f.type == field_type::int64) dst = static_cast<int64_t>(d);
          else {
            char buf[64];
            auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
            dst = std::string(buf, p);
          }
          return true;
        }
        [[fallthrough]];
      }
      case json::kind::array:
        if (f.type == field_type::string) {
          dst = json::serialize(v);
          return true;
        }
        reason = std::string("expected ") + std::string(to_string(f.type)) + ", got " +
                 kind_name(v.kind());
        return false;
      case json::kind::null: dst = std::monostate{}; return true;
    }
    return true;
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
