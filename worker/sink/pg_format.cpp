// pg_format.cpp — SQL text, COPY encoding and connection parameters of the PostgreSQL sink.
#include "worker/sink/pg_format.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <type_traits>
#include <variant>

namespace eddy::pg {
namespace {

std::string join_quoted(const std::vector<std::string>& names, std::string_view prefix = {}) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += prefix;
    out += quote_ident(n);
  }
  return out;
}

void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out.append("\\N");
    return;
  }
  std::array<char, 32> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), res.ptr);
}

template <typename Int>
void append_int(std::string& out, Int v) {
  std::array<char, 24> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), res.ptr);
}

/// Splits a keyword=value connection string into pairs; values may be single-quoted with
/// backslash escapes. Malformed text yields what could be read.
struct kv_token {
  std::string key;
  size_t value_begin = 0, value_end = 0;  // raw span of the value in the text
};
std::vector<kv_token> keyword_tokens(std::string_view s) {
  std::vector<kv_token> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  while (true) {
    skip_ws();
    if (i >= s.size()) break;
    kv_token t;
    while (i < s.size() && s[i] != '=' && !std::isspace(static_cast<unsigned char>(s[i])))
      t.key.push_back(s[i++]);
    skip_ws();
    if (i >= s.size() || s[i] != '=') break;
    ++i;
    skip_ws();
    t.value_begin = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      while (i < s.size() && s[i] != '\'') i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
      if (i < s.size()) ++i;
    } else {
      while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
        i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
    }
    t.value_end = std::min(i, s.size());
    out.push_back(std::move(t));
  }
  return out;
}

bool is_uri(std::string_view dsn) {
  return dsn.starts_with("postgresql://") || dsn.starts_with("postgres://");
}

/// For a URI: the span of the password in "scheme://user:secret@host", if any.
bool uri_password_span(std::string_view dsn, size_t* begin, size_t* end) {
  const size_t start = dsn.find("://") + 3;
  const size_t at = dsn.find('@', start);
  const size_t slash = dsn.find_first_of("/?", start);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) return false;
  const size_t colon = dsn.find(':', start);
  if (colon == std::string_view::npos || colon > at) return false;
  *begin = colon + 1;
  *end = at;
  return true;
}

/// For a URI: spans of the values of "password=" query parameters.
std::vector<std::pair<size_t, size_t>> uri_query_password_spans(std::string_view dsn) {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t q = dsn.find('?');
  if (q == std::string_view::npos) return out;
  size_t i = q + 1;
  while (i <= dsn.size()) {
    size_t amp = dsn.find('&', i);
    if (amp == std::string_view::npos) amp = dsn.size();
    const std::string_view param = dsn.substr(i, amp - i);
    if (param.starts_with("password=")) out.emplace_back(i + 9, amp);
    i = amp + 1;
  }
  return out;
}

}  // namespace

std::string_view sql_type(field_type t) {
  switch (t) {
    case field_type::string:
      return "text";
    case field_type::int64:
      return "bigint";
    case field_type::float64:
      return "double precision";
    case field_type::boolean:
      return "boolean";
    case field_type::timestamp:
      return "timestamptz";
  }
  return "text";
}

std::string_view catalog_type(field_type t) {
  return t == field_type::timestamp ? "timestamp with time zone" : sql_type(t);
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string table_name::quoted() const {
  return schema.empty() ? quote_ident(name) : quote_ident(schema) + "." + quote_ident(name);
}

std::string table_name::display() const {
  return schema.empty() ? name : schema + "." + name;
}

table_name parse_table_name(std::string_view text) {
  table_name t;
  if (const size_t dot = text.find('.'); dot != std::string_view::npos) {
    t.schema = std::string(text.substr(0, dot));
    t.name = std::string(text.substr(dot + 1));
  } else {
    t.name = std::string(text);
  }
  return t;
}

table_name progress_table_of(const table_name& target) {
  return table_name{target.schema, "eddy_sink_progress"};
}

std::string create_table_sql(const table_name& t, const output_schema& schema,
                             const std::vector<std::string>& key, bool key_never_null) {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + t.quoted() + " (";
  for (size_t i = 0; i < schema.names.size(); ++i) {
    if (i != 0) sql += ", ";
    sql += quote_ident(schema.names[i]) + " " + std::string(sql_type(schema.types[i]));
  }
  if (!key.empty()) {
    sql += key_never_null ? ", PRIMARY KEY (" : ", UNIQUE NULLS NOT DISTINCT (";
    sql += join_quoted(key) + ")";
  }
  sql += ")";
  return sql;
}

std::string create_progress_sql(const table_name& progress) {
  return "CREATE TABLE IF NOT EXISTS " + progress.quoted() +
         " (pipeline text NOT NULL, target text NOT NULL, unit text NOT NULL, epoch bigint NOT "
         "NULL, row_count bigint NOT NULL, delivered_at timestamptz NOT NULL DEFAULT now(), "
         "PRIMARY KEY (pipeline, target, unit))";
}

std::string check_columns(const table_name& t, const output_schema& schema,
                          const std::vector<column_info>& existing) {
  std::vector<std::string> problems;
  for (size_t i = 0; i < schema.names.size(); ++i) {
    const std::string& name = schema.names[i];
    const std::string expected(catalog_type(schema.types[i]));
    auto it = std::find_if(existing.begin(), existing.end(),
                           [&](const column_info& c) { return c.name == name; });
    if (it == existing.end()) {
      problems.push_back("column \"" + name + "\" is missing (expected " + expected + ")");
    } else if (it->type != expected) {
      problems.push_back("column \"" + name + "\" is " + it->type + ", expected " + expected);
    }
  }
  if (problems.empty()) return {};
  std::string msg = "table " + t.display() + " does not fit the pipeline's output: ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
  return msg + " (alter or drop the table, or name another one)";
}

std::string check_unique_key(const table_name& t, const std::vector<std::string>& key,
                             const std::vector<std::vector<std::string>>& unique_keys) {
  const std::set<std::string> want(key.begin(), key.end());
  for (const auto& u : unique_keys)
    if (std::set<std::string>(u.begin(), u.end()) == want) return {};
  std::string cols;
  for (const auto& k : key) cols += (cols.empty() ? "" : ", ") + k;
  return "table " + t.display() + " has no primary key or unique index on exactly (" + cols +
         "), which mode = \"upsert\" merges on: add one (ALTER TABLE ... ADD PRIMARY KEY (" + cols +
         ")) or name another table";
}

bool key_never_null(const pipeline_config& cfg, const std::vector<std::string>& key) {
  for (const auto& k : key) {
    if (!cfg.aggregates.empty() && (k == "window_start" || k == "window_end")) continue;
    const int idx = cfg.field_index(k);
    if (idx < 0 || !cfg.fields[static_cast<size_t>(idx)].required) return false;
  }
  return true;
}

std::string create_stage_sql(std::string_view stage, const output_schema& schema) {
  std::string sql =
      "CREATE TEMP TABLE IF NOT EXISTS " + quote_ident(stage) + " (eddy_ord bigserial";
  for (size_t i = 0; i < schema.names.size(); ++i)
    sql += ", " + quote_ident(schema.names[i]) + " " + std::string(sql_type(schema.types[i]));
  sql += ") ON COMMIT DELETE ROWS";
  return sql;
}

std::string copy_sql(std::string_view quoted_table, const output_schema& schema, bool binary) {
  return "COPY " + std::string(quoted_table) + " (" + join_quoted(schema.names) + ") FROM STDIN" +
         (binary ? " WITH (FORMAT binary)" : "");
}

namespace {

constexpr std::string_view copy_binary_signature{"PGCOPY\n\377\r\n\0", 11};
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
constexpr int64_t pg_epoch_micros = 946'684'800'000'000;

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_be(std::string_view b) {
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

}  // namespace

void append_copy_binary_header(std::string& out) {
  out.append(copy_binary_signature);
  put_be(out, 0, 4);  // flags
  put_be(out, 0, 4);  // header extension length
}

void append_copy_binary_trailer(std::string& out) {
  put_be(out, 0xffff, 2);
}

bool append_copy_binary_row(std::string& out, const row& r, const output_schema& schema) {
  const size_t start = out.size();
  const size_t columns = schema.names.size();
  put_be(out, columns, 2);
  for (size_t i = 0; i < columns; ++i) {
    const value* v = i < r.size() ? &r[i] : nullptr;
    const field_type t = schema.types[i];
    bool fits = true;
    if (v == nullptr || is_null(*v)) {
      put_be(out, 0xffffffffu, 4);
    } else if (t == field_type::int64 && std::holds_alternative<int64_t>(*v)) {
      put_be(out, 8, 4);
      put_be(out, static_cast<uint64_t>(std::get<int64_t>(*v)), 8);
    } else if (t == field_type::float64 && std::holds_alternative<double>(*v)) {
      const double d = std::get<double>(*v);
      if (!std::isfinite(d)) {
        put_be(out, 0xffffffffu, 4);
      } else {
        put_be(out, 8, 4);
        put_be(out, std::bit_cast<uint64_t>(d), 8);
      }
    } else if (t == field_type::boolean && std::holds_alternative<bool>(*v)) {
      put_be(out, 1, 4);
      out.push_back(std::get<bool>(*v) ? 1 : 0);
    } else if (t == field_type::timestamp && std::holds_alternative<timestamp>(*v)) {
      put_be(out, 8, 4);
      put_be(out, static_cast<uint64_t>(std::get<timestamp>(*v).micros - pg_epoch_micros), 8);
    } else if (t == field_type::string && std::holds_alternative<std::string>(*v)) {
      const std::string& text = std::get<std::string>(*v);
      const size_t at = out.size();
      put_be(out, 0, 4);
      size_t n = 0;
      for (size_t from = 0; from < text.size();) {  // NUL characters dropped, runs copied
        const size_t nul = text.find('\0', from);
        const size_t end = nul == std::string::npos ? text.size() : nul;
        out.append(text, from, end - from);
        n += end - from;
        from = end + 1;
      }
      if (n > 0x7fffffffu) fits = false;
      for (int k = 0; k < 4; ++k)
        out[at + static_cast<size_t>(k)] = static_cast<char>((n >> (8 * (3 - k))) & 0xff);
    } else {
      fits = false;
    }
    if (!fits) {
      out.resize(start);
      return false;
    }
  }
  return true;
}

std::string check_copy_binary(std::string_view data, size_t columns, size_t* rows) {
  const size_t head = copy_binary_signature.size() + 8;
  if (data.size() < head + 2 ||
      data.substr(0, copy_binary_signature.size()) != copy_binary_signature)
    return "not a binary COPY file (no PGCOPY header)";
  const uint64_t ext = get_be(data.substr(copy_binary_signature.size() + 4, 4));
  if (ext > data.size() - head) return "the header extension runs past the end";
  size_t pos = head + static_cast<size_t>(ext);
  size_t count = 0;
  for (;;) {
    if (data.size() - pos < 2) return "cut after " + std::to_string(count) + " rows";
    const uint64_t n = get_be(data.substr(pos, 2));
    pos += 2;
    if (n == 0xffff) break;
    if (n != columns) {
      return "row " + std::to_string(count) + " has " + std::to_string(n) + " columns, not " +
             std::to_string(columns);
    }
    for (size_t c = 0; c < columns; ++c) {
      if (data.size() - pos < 4) return "cut in row " + std::to_string(count);
      const uint64_t len = get_be(data.substr(pos, 4));
      pos += 4;
      if (len == 0xffffffffu) continue;
      if (len > data.size() - pos) return "cut in row " + std::to_string(count);
      pos += static_cast<size_t>(len);
    }
    ++count;
  }
  if (pos != data.size()) return "bytes after the trailer";
  *rows = count;
  return {};
}

std::string merge_sql(const table_name& target, std::string_view stage, const output_schema& schema,
                      const std::vector<std::string>& key) {
  const std::string cols = join_quoted(schema.names);
  const std::string keys = join_quoted(key);
  std::string sql = "INSERT INTO " + target.quoted() + " (" + cols + ") SELECT DISTINCT ON (" +
                    keys + ") " + cols + " FROM " + quote_ident(stage) + " ORDER BY " + keys +
                    ", eddy_ord DESC ON CONFLICT (" + keys + ") DO ";
  std::string set;
  for (const auto& n : schema.names) {
    if (std::find(key.begin(), key.end(), n) != key.end()) continue;
    if (!set.empty()) set += ", ";
    set += quote_ident(n) + " = EXCLUDED." + quote_ident(n);
  }
  sql += set.empty() ? "NOTHING" : "UPDATE SET " + set;
  return sql;
}

void append_copy_text(std::string& out, std::string_view s) {
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const char* esc = nullptr;
    switch (c) {
      case '\\':
        esc = "\\\\";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      case '\0':
        esc = "";
        break;
      default:
        continue;
    }
    out.append(s.data() + run, i - run);
    out.append(esc);
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
}

void append_copy_row(std::string& out, const row& r, size_t columns, const time_formatter& fmt) {
  for (size_t i = 0; i < columns; ++i) {
    if (i != 0) out.push_back('\t');
    if (i >= r.size()) {
      out.append("\\N");
      continue;
    }
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            out.append("\\N");
          } else if constexpr (std::is_same_v<T, std::string>) {
            append_copy_text(out, v);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            append_int(out, v);
          } else if constexpr (std::is_same_v<T, double>) {
            append_double(out, v);
          } else if constexpr (std::is_same_v<T, bool>) {
            out.push_back(v ? 't' : 'f');
          } else if constexpr (std::is_same_v<T, timestamp>) {
            fmt.append_iso(out, v);
          }
        },
        r[i]);
  }
  out.push_back('\n');
}

namespace {

/// A cursor over one staged JSON line. Numbers are kept as their text: Boost.JSON 1.81 parses
/// doubles up to 1 ulp off (not correctly rounded), so the server parses them instead.
struct json_line {
  std::string_view s;
  size_t i = 0;

  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t* v) {
    if (i + 4 > s.size()) return false;
    *v = 0;
    for (int k = 0; k < 4; ++k) {
      const int h = hex(s[i++]);
      if (h < 0) return false;
      *v = *v * 16 + static_cast<uint32_t>(h);
    }
    return true;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  /// A JSON string (at the opening quote), unescaped into `out`.
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (i < s.size()) {
      const char c = s[i++];
      if (c == '"') return true;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i >= s.size()) return false;
      const char e = s[i++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            uint32_t lo = 0;
            if (!hex4(&lo)) return false;
            cp = (lo >= 0xDC00 && lo < 0xE000) ? 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                                               : 0xFFFD;
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;
          }
          utf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  /// A scalar value, appended to `out` in COPY text form. False when malformed (or an
  /// array/object, which staged rows never hold).
  bool value_to_copy(std::string& out) {
    ws();
    if (i >= s.size()) return false;
    const char c = s[i];
    if (c == '"') {
      std::string text;
      if (!string(text)) return false;
      append_copy_text(out, text);
      return true;
    }
    for (const auto& [word, copy] : {std::pair<std::string_view, std::string_view>{"null", "\\N"},
                                     {"true", "t"},
                                     {"false", "f"}}) {
      if (s.substr(i, word.size()) == word) {
        i += word.size();
        out.append(copy);
        return true;
      }
    }
    const size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '-' ||
                            s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E'))
      ++i;
    if (i == start) return false;
    out.append(s.substr(start, i - start));
    return true;
  }
  /// Skips a value of a key the schema does not have.
  bool skip_value() {
    std::string ignored;
    return value_to_copy(ignored);
  }
};

}  // namespace

std::string jsonl_to_copy(std::string_view jsonl, const output_schema& schema, std::string& out,
                          size_t* rows) {
  const size_t n = schema.names.size();
  std::vector<std::string> cells(n);
  std::vector<bool> seen(n);
  std::string key;
  size_t line_no = 0, pos = 0;
  while (pos < jsonl.size()) {
    size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    json_line p{jsonl.substr(pos, end - pos)};
    pos = end + 1;
    ++line_no;
    p.ws();
    if (p.i == p.s.size()) continue;
    auto bad = [&] { return "line " + std::to_string(line_no) + ": not a JSON object of scalars"; };
    if (!p.eat('{')) return bad();
    std::fill(seen.begin(), seen.end(), false);
    size_t next = 0;  // row_to_json writes the columns in schema order: try that one first
    if (!p.eat('}')) {
      do {
        key.clear();
        if (!p.string(key) || !p.eat(':')) return bad();
        size_t col = n;
        if (next < n && key == schema.names[next]) {
          col = next;
        } else {
          for (size_t j = 0; j < n; ++j)
            if (key == schema.names[j]) col = j;
        }
        if (col == n) {
          if (!p.skip_value()) return bad();
        } else {
          cells[col].clear();
          if (!p.value_to_copy(cells[col])) return bad();
          seen[col] = true;
          next = col + 1;
        }
      } while (p.eat(','));
      if (!p.eat('}')) return bad();
    }
    for (size_t c = 0; c < n; ++c) {
      if (c != 0) out.push_back('\t');
      if (seen[c])
        out.append(cells[c]);
      else
        out.append("\\N");
    }
    out.push_back('\n');
    ++*rows;
  }
  return {};
}

std::string mask_dsn(std::string_view dsn) {
  std::string out(dsn);
  std::vector<std::pair<size_t, size_t>> spans;
  if (is_uri(dsn)) {
    size_t b = 0, e = 0;
    if (uri_password_span(dsn, &b, &e)) spans.emplace_back(b, e);
    for (auto s : uri_query_password_spans(dsn)) spans.push_back(s);
  } else {
    for (const auto& t : keyword_tokens(dsn))
      if (t.key == "password") spans.emplace_back(t.value_begin, t.value_end);
  }
  std::sort(spans.begin(), spans.end());
  for (auto it = spans.rbegin(); it != spans.rend(); ++it)
    out.replace(it->first, it->second - it->first, "***");
  return out;
}

bool dsn_has_password(std::string_view dsn) {
  return mask_dsn(dsn) != dsn;
}

std::string read_password(const sink_config& cfg, std::string* error) {
  if (!cfg.password_env.empty()) {
    const char* v = std::getenv(cfg.password_env.c_str());
    if (v == nullptr) {
      *error = "password_env: the environment variable " + cfg.password_env + " is not set";
      return {};
    }
    return v;
  }
  if (!cfg.password_file.empty()) {
    std::ifstream in(cfg.password_file, std::ios::binary);
    std::string line;
    if (!in || !std::getline(in, line)) {
      *error = "password_file: cannot read \"" + cfg.password_file + "\"";
      return {};
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty())
      *error = "password_file: the first line of \"" + cfg.password_file +
               "\" is empty (it should hold the password)";
    return line;
  }
  return {};
}

std::vector<std::pair<std::string, std::string>> connection_params(const sink_config& cfg,
                                                                   const std::string& password) {
  std::vector<std::pair<std::string, std::string>> p = {{"connect_timeout", "10"},
                                                        {"application_name", "eddy"}};
  if (!cfg.dsn.empty()) p.emplace_back("dbname", cfg.dsn);
  if (!cfg.host.empty()) p.emplace_back("host", cfg.host);
  if (cfg.port != 0) p.emplace_back("port", std::to_string(cfg.port));
  if (!cfg.dbname.empty()) p.emplace_back("dbname", cfg.dbname);
  if (!cfg.user.empty()) p.emplace_back("user", cfg.user);
  if (!password.empty()) p.emplace_back("password", password);
  p.emplace_back("client_encoding", "UTF8");
  return p;
}

std::string describe_target(const sink_config& cfg) {
  std::string out;
  if (!cfg.dsn.empty()) out = "\"" + mask_dsn(cfg.dsn) + "\"";
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out += " ";
    out += std::string(k) + "=" + v;
  };
  add("host", cfg.host);
  add("port", cfg.port ? std::to_string(cfg.port) : std::string());
  add("dbname", cfg.dbname);
  add("user", cfg.user);
  return out.empty() ? "the PG* environment defaults" : out;
}

std::string check_sink_config(const sink_config& cfg) {
  if (dsn_has_password(cfg.dsn))
    return "dsn: holds a password, which is never read from the pipeline file: remove it from "
           "the DSN and name an environment variable holding it with password_env (or a file "
           "with password_file)";
  return {};
}

}  // namespace eddy::pg
