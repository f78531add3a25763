// jsonl.hpp — small helpers shared by the integration tests: JSON summaries and JSON Lines
// output directories as written by eddy's file sink and dead-letter writer.
#pragma once

#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/process.hpp"

namespace eddy::test {

namespace json = boost::json;
namespace fs = std::filesystem;

/// A finished command: how it ended and what it printed.
struct finished {
  exit_status status;
  std::string out;
  std::string err;
};

inline json::object parse_object(std::string_view text) {
  json::value v = json::parse(text);
  return v.as_object();
}

inline int64_t int_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr)
    throw std::runtime_error("no \"" + std::string(key) + "\" in " + json::serialize(o));
  return v->to_number<int64_t>();
}

/// The string at `key`, or a description of what is there instead (for comparisons in tests).
inline std::string str_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return "<missing>";
  if (!v->is_string()) return "<not a string: " + json::serialize(*v) + ">";
  return std::string(v->as_string());
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

/// Files in `dir` named prefix*.jsonl (none when the directory does not exist yet).
inline std::vector<fs::path> jsonl_files(const fs::path& dir, std::string_view prefix) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(".jsonl")) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Every line of every prefix*.jsonl file in `dir`, each parsed as a JSON object.
inline std::vector<json::object> read_jsonl(const fs::path& dir, std::string_view prefix) {
  std::vector<json::object> rows;
  for (const auto& file : jsonl_files(dir, prefix)) {
    for (const auto& line : split_lines(read_text_file(file))) rows.push_back(parse_object(line));
  }
  return rows;
}

/// Newline-terminated lines in prefix*.jsonl files of `dir`. The sinks publish each file by
/// rename, so a file is either absent or complete.
inline size_t count_jsonl_lines(const fs::path& dir, std::string_view prefix) {
  size_t n = 0;
  for (const auto& file : jsonl_files(dir, prefix)) {
    const std::string text = read_text_file(file);
    n += static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  return n;
}

}  // namespace eddy::test
