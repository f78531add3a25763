// csv.hpp — an RFC 4180 reader for the tests of the file sink's CSV output, written apart from
// the sink's writer so that a test checks one against the other.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace eddy::test {

/// One CSV field: nullopt when it was empty and unquoted (what the file sink writes for null),
/// "" when quoted and empty.
using csv_field = std::optional<std::string>;
using csv_record = std::vector<csv_field>;

/// Parses RFC 4180 text: records end with LF or CRLF (a CR or LF inside quotes is data), fields
/// are separated by ',', a quoted field doubles its quotes. A last record without a line end
/// counts too.
inline std::vector<csv_record> parse_csv(const std::string& text) {
  std::vector<csv_record> records;
  csv_record record;
  std::string field;
  bool quoted = false, in_quotes = false, any = false;
  auto end_field = [&] {
    record.push_back(quoted || !field.empty() ? csv_field(field) : std::nullopt);
    field.clear();
    quoted = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    any = true;
    if (in_quotes) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      in_quotes = quoted = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
      if (c == '\r') ++i;
      end_field();
      records.push_back(std::move(record));
      record.clear();
      any = false;
    } else {
      field.push_back(c);
    }
  }
  if (any) {
    end_field();
    records.push_back(std::move(record));
  }
  return records;
}

/// A record as one comparable text: fields separated by '\x1f', null as '\x1e'.
inline std::string record_text(const csv_record& r) {
  std::string out;
  for (size_t i = 0; i < r.size(); ++i) {
    if (i != 0) out.push_back('\x1f');
    out += r[i] ? *r[i] : std::string(1, '\x1e');
  }
  return out;
}

}  // namespace eddy::test
