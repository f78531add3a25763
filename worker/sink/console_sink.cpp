// console_sink.cpp — Spark's `show()` table per batch, as Spark's console sink prints it.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ostream>
#include <type_traits>
#include <variant>

#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

constexpr size_t truncate_width = 20;  // Spark's show() default
constexpr size_t min_column_width = 3;

/// Code points in `s` (bytes that do not continue a sequence); ill-formed bytes count as one.
size_t display_width(std::string_view s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

/// Byte length of the first `count` code points of `s`.
size_t prefix_bytes(std::string_view s, size_t count) {
  size_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == count) return i;
      ++seen;
    }
  }
  return s.size();
}

/// Spark's SchemaUtils.escapeMetaCharacters: keeps control characters from breaking the table.
std::string escape_meta(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\v':
        out.append("\\v");
        break;
      case '\a':
        out.append("\\a");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

/// Java's Double.toString as Spark prints it: "1138.0", "45.75", "1.0E10", "1.0E-4", "NaN".
std::string spark_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v < 0 ? "-Infinity" : "Infinity";
  std::array<char, 40> buf{};
  const double a = std::fabs(v);
  if (a == 0.0 || (a >= 1e-3 && a < 1e7)) {
    auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed);
    std::string s(buf.data(), res.ptr);
    if (s.find('.') == std::string::npos) s.append(".0");
    return s;
  }
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::scientific);
  const std::string_view sci(buf.data(), static_cast<size_t>(res.ptr - buf.data()));
  const size_t e = sci.find('e');
  std::string s(sci.substr(0, e));
  if (s.find('.') == std::string::npos) s.append(".0");
  s.push_back('E');
  std::string_view exp = sci.substr(e + 1);
  if (!exp.empty() && exp.front() == '-') {
    s.push_back('-');
    exp.remove_prefix(1);
  } else if (!exp.empty() && exp.front() == '+') {
    exp.remove_prefix(1);
  }
  while (exp.size() > 1 && exp.front() == '0') exp.remove_prefix(1);
  s.append(exp);
  return s;
}

class console_sink final : public sink {
 public:
  console_sink(const sink_config& cfg, std::ostream& out, time_formatter fmt)
      : truncate_(cfg.truncate),
        num_rows_(static_cast<size_t>(std::max(cfg.num_rows, 0))),
        out_(out),
        fmt_(std::move(fmt)) {}

  std::string write_batch(int64_t batch_id, const output_schema& schema,
                          const std::vector<row>& rows) override {
    std::string text = "-------------------------------------------\nBatch: ";
    text.append(std::to_string(batch_id));
    text.append("\n-------------------------------------------\n");
    append_table(text, schema, rows);
    text.push_back('\n');  // Spark's console sink println()s show()'s already-terminated text
    out_.write(text.data(), static_cast<std::streamsize>(text.size()));
    out_.flush();
    if (!out_) return "console sink: write to output stream failed";
    return {};
  }

 private:
  std::string cell(const value& v) const {
    std::string s = std::visit(
        [&](const auto& x) -> std::string {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            return "null";
          } else if constexpr (std::is_same_v<T, std::string>) {
            return escape_meta(x);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            return std::to_string(x);
          } else if constexpr (std::is_same_v<T, double>) {
            return spark_double(x);
          } else if constexpr (std::is_same_v<T, bool>) {
            return x ? "true" : "false";
          } else {
            static_assert(std::is_same_v<T, timestamp>);
            return fmt_.format_console(x);
          }
        },
        v);
    if (truncate_ && display_width(s) > truncate_width) {
      s.resize(prefix_bytes(s, truncate_width - 3));
      s.append("...");
    }
    return s;
  }

  void append_table(std::string& text, const output_schema& schema,
                    const std::vector<row>& rows) const {
    const size_t columns = schema.names.size();
    const size_t shown = std::min(rows.size(), num_rows_);
    // cells[0] is the header; widths are in code points.
    std::vector<std::vector<std::string>> cells;
    cells.reserve(shown + 1);
    cells.emplace_back();
    for (const std::string& name : schema.names) cells.back().push_back(escape_meta(name));
    for (size_t r = 0; r < shown; ++r) {
      cells.emplace_back();
      for (size_t c = 0; c < columns; ++c) {
        cells.back().push_back(c < rows[r].size() ? cell(rows[r][c]) : std::string("null"));
      }
    }
    std::vector<size_t> widths(columns, min_column_width);
    for (const auto& line : cells) {
      for (size_t c = 0; c < columns; ++c) widths[c] = std::max(widths[c], display_width(line[c]));
    }

    std::string sep = "+";
    for (const size_t w : widths) {
      sep.append(w, '-');
      sep.push_back('+');
    }
    sep.push_back('\n');

    auto append_line = [&](const std::vector<std::string>& line) {
      text.push_back('|');
      for (size_t c = 0; c < columns; ++c) {
        const size_t pad = widths[c] - display_width(line[c]);
        if (truncate_) text.append(pad, ' ');  // Spark right-aligns when truncating
        text.append(line[c]);
        if (!truncate_) text.append(pad, ' ');
        text.push_back('|');
      }
      text.push_back('\n');
    };

    text.append(sep);
    append_line(cells.front());
    text.append(sep);
    for (size_t r = 1; r < cells.size(); ++r) append_line(cells[r]);
    text.append(sep);
    if (rows.size() > num_rows_) {
      text.append("only showing top ");
      text.append(std::to_string(num_rows_));
      text.append(num_rows_ == 1 ? " row\n" : " rows\n");
    }
  }

  bool truncate_;
  size_t num_rows_;
  std::ostream& out_;
  time_formatter fmt_;
};

}  // namespace

std::unique_ptr<sink> make_console_sink(const sink_config& cfg, std::ostream& out,
                                        time_formatter fmt) {
  return std::make_unique<console_sink>(cfg, out, std::move(fmt));
}

}  // namespace eddy
