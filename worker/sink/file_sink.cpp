// file_sink.cpp — JSON Lines or CSV files per batch or epoch, optionally in dt=YYYY-MM-DD/
// sub-folders, published by rename; JSON and CSV text helpers.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <type_traits>
#include <variant>

#include "worker/sink/epoch_files.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

/// Length of the well-formed UTF-8 sequence at p (n bytes available, p[0] >= 0x80); 0 if none.
size_t utf8_sequence_length(const unsigned char* p, size_t n) {
  const unsigned char b0 = p[0];
  auto cont = [&](size_t k) { return k < n && (p[k] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (n < 2) return 0;
    if (b0 == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && p[1] >= 0xA0) return 0;  // surrogates
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (n < 2) return 0;
    if (b0 == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && p[1] >= 0x90) return 0;  // above U+10FFFF
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

std::string errno_message(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// `"name":` per column, escaped once per batch rather than once per row.
std::vector<std::string> json_keys(const output_schema& schema) {
  std::vector<std::string> keys;
  keys.reserve(schema.names.size());
  for (const std::string& name : schema.names) {
    std::string k;
    append_json_string(k, name);
    k.push_back(':');
    keys.push_back(std::move(k));
  }
  return keys;
}

void append_row(std::string& out, const std::vector<std::string>& keys, const row& r,
                const time_formatter& fmt) {
  out.push_back('{');
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i != 0) out.push_back(',');
    out.append(keys[i]);
    if (i >= r.size()) {
      out.append("null");
      continue;
    }
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
            out.append("null");
          } else if constexpr (std::is_same_v<T, std::string>) {
            append_json_string(out, v);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            std::array<char, 24> buf{};
            auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
            out.append(buf.data(), res.ptr);
          } else if constexpr (std::is_same_v<T, double>) {
            append_json_double(out, v);
          } else if constexpr (std::is_same_v<T, bool>) {
            out.append(v ? "true" : "false");
          } else if constexpr (std::is_same_v<T, timestamp>) {
            out.push_back('"');
            fmt.append_iso(out, v);  // digits, '-', ':', '.', 'T', 'Z', '+': nothing to escape
            out.push_back('"');
          }
        },
        r[i]);
  }
  out.push_back('}');
}

/// Appends one value as a CSV field: null (and NaN, infinities) -> nothing, strings via
/// append_csv_string, the rest as the JSON sink writes them (timestamps unquoted: ISO text
/// holds no comma, quote or line break).
void append_csv_value(std::string& out, const value& v, const time_formatter& fmt) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_csv_string(out, x);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          std::array<char, 24> buf{};
          auto res = std::to_chars(buf.data(), buf.data() + buf.size(), x);
          out.append(buf.data(), res.ptr);
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isfinite(x)) append_json_double(out, x);
        } else if constexpr (std::is_same_v<T, bool>) {
          out.append(x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, timestamp>) {
          fmt.append_iso(out, x);
        }
      },
      v);
}

void append_csv_row(std::string& out, size_t columns, const row& r, const time_formatter& fmt) {
  for (size_t i = 0; i < columns; ++i) {
    if (i != 0) out.push_back(',');
    if (i < r.size()) append_csv_value(out, r[i], fmt);
  }
}

/// "part-<epoch>" for an epoch's last part (0), "part-<epoch>-<part, 5 digits>" for the parts
/// staged before it: in name order those come first ('-' < '.'). A name tag goes before the
/// extension: "part-<epoch>-<part>-<tag>.jsonl".
std::string epoch_part_name(uint64_t epoch, int part, const std::string& tag,
                            std::string_view ext) {
  std::string name = epoch_file_stem("part", epoch);
  if (part != 0) {
    std::array<char, 16> k{};
    std::snprintf(k.data(), k.size(), "-%05d", part);
    name += k.data();
  }
  return tagged_file_name(name + "." + std::string(ext), tag);
}

class file_sink final : public sink {
 public:
  file_sink(const sink_config& cfg, time_formatter fmt)
      : dir_(cfg.path),
        tag_(cfg.name_tag),
        tag_error_(tag_.empty() ? std::string() : check_name_tag(tag_)),
        format_(cfg.format),
        ext_(to_string(cfg.format)),
        partition_by_(cfg.partition_by),
        fmt_(std::move(fmt)) {}

  std::string write_batch(int64_t batch_id, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (rows.empty()) return {};
    std::array<char, 24> id{};
    std::snprintf(id.data(), id.size(), "%08lld", static_cast<long long>(batch_id));
    const std::string name =
        "part-" + std::string(id.data()) + "-" + unique_file_suffix() + "." + ext_;
    return for_each_folder(schema, rows, [&](const std::string& sub, const std::string& text) {
      return write_file_atomically(sub.empty() ? dir_ : dir_ + "/" + sub, name, text);
    });
  }

  bool transactional() const override { return true; }

  std::string stage_epoch(uint64_t epoch, int part, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (!tag_error_.empty()) return "file sink: " + tag_error_;
    if (rows.empty()) return {};
    const std::string name = epoch_part_name(epoch, part, tag_, ext_);
    std::set<std::string> written;
    auto err = for_each_folder(schema, rows, [&](const std::string& sub, const std::string& text) {
      written.insert(sub.empty() ? name : sub + "/" + name);
      return stage_epoch_file(dir_, epoch, sub.empty() ? name : sub + "/" + name, text, sync_);
    });
    if (!err.empty() || partition_by_.empty()) return err;
    // The part staged again replaces it whole: its file in a folder these rows do not reach goes.
    namespace fs = std::filesystem;
    for (const std::string& p : staged_epoch_paths(dir_, epoch, "", &err)) {
      const fs::path staged(p);
      const std::string rel =
          staged.parent_path().filename().string() + "/" + staged.filename().string();
      if (staged.filename() != name || written.contains(rel)) continue;
      std::error_code ec;
      fs::remove(staged, ec);
      if (ec) return "file sink: cannot remove \"" + p + "\": " + ec.message();
    }
    return err.empty() ? err : "file sink: " + err;
  }

  std::string publish_epoch(uint64_t epoch) override {
    auto err = publish_epoch_files(dir_, epoch, sync_);
    return err.empty() ? err : "file sink: " + err;
  }

  std::string recover(uint64_t last_complete, epoch_recovery* out) override {
    auto err = recover_epoch_files(dir_, last_complete, out, sync_);
    return err.empty() ? err : "file sink: " + err;
  }

  void set_sync(bool sync) override { sync_ = sync; }

 private:
  /// Renders `rows` into one text per sub-folder ("" without partition_by; folders in name
  /// order, rows in arrival order within each) and hands each to `write(sub, text)`; the first
  /// error stops it.
  template <class Write>
  std::string for_each_folder(const output_schema& schema, const std::vector<row>& rows,
                              Write write) const {
    std::string err;
    if (partition_by_.empty()) {
      err = write(std::string(), render(schema, rows.begin(), rows.end()));
      return err.empty() ? err : "file sink: " + err;
    }
    const auto it = std::find(schema.names.begin(), schema.names.end(), partition_by_);
    if (it == schema.names.end())
      return "file sink: partition_by column '" + partition_by_ + "' is not in the output";
    const size_t col = static_cast<size_t>(it - schema.names.begin());
    std::map<std::string, std::vector<const row*>> folders;
    for (const row& r : rows) {
      std::optional<timestamp> t;
      if (col < r.size()) {
        if (const auto* ts = std::get_if<timestamp>(&r[col])) t = *ts;
      }
      folders[date_partition_folder(t, fmt_)].push_back(&r);
    }
    for (const auto& [sub, members] : folders) {
      err = write(sub, render(schema, members.begin(), members.end()));
      if (!err.empty()) return "file sink: " + err;
    }
    return {};
  }

  /// The file's text: one JSON object per line, or a CSV header and one record per line.
  /// [first, last) iterate rows or row pointers.
  template <class It>
  std::string render(const output_schema& schema, It first, It last) const {
    auto at = [&](It i) -> const row& {
      if constexpr (std::is_pointer_v<typename std::iterator_traits<It>::value_type>) {
        return **i;
      } else {
        return *i;
      }
    };
    const size_t n = static_cast<size_t>(std::distance(first, last));
    std::string text;
    if (format_ == file_format::csv) {
      text = csv_header(schema);
      text.push_back('\n');
      text.reserve(text.size() + n * (16 + 16 * schema.names.size()));
      for (It i = first; i != last; ++i) {
        append_csv_row(text, schema.names.size(), at(i), fmt_);
        text.push_back('\n');
      }
      return text;
    }
    const std::vector<std::string> keys = json_keys(schema);
    text.reserve(n * (32 + 24 * keys.size()));
    for (It i = first; i != last; ++i) {
      append_row(text, keys, at(i), fmt_);
      text.push_back('\n');
    }
    return text;
  }

  bool sync_ = true;
  std::string dir_;
  std::string tag_;
  std::string tag_error_;  ///< an invalid tag: every stage_epoch fails with it
  file_format format_;
  std::string ext_;           ///< "jsonl" or "csv"
  std::string partition_by_;  ///< "" = no sub-folders
  time_formatter fmt_;
};

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(p + i, n - i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(hex_digits[c >> 4]);
          out.push_back(hex_digits[c & 0xF]);
        } else {
          out.append("\xEF\xBF\xBD");  // U+FFFD for an ill-formed byte
        }
    }
    ++i;
    run = i;
  }
  out.append(s.data() + run, n - run);
  out.push_back('"');
}

void append_json_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out.append("null");
    return;
  }
  std::array<char, 32> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  const std::string_view text(buf.data(), static_cast<size_t>(res.ptr - buf.data()));
  out.append(text);
  if (text.find_first_of(".e") == std::string_view::npos) out.append(".0");
}

void append_csv_string(std::string& out, std::string_view s) {
  const bool quote = s.empty() || s.find_first_of(",\"\r\n") != std::string_view::npos;
  if (quote) out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c != '"' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = utf8_sequence_length(p + i, n - i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    out.append(c == '"' ? "\"\"" : "\xEF\xBF\xBD");  // a doubled quote; U+FFFD for a bad byte
    ++i;
    run = i;
  }
  out.append(s.data() + run, n - run);
  if (quote) out.push_back('"');
}

std::string csv_header(const output_schema& schema) {
  std::string out;
  for (size_t i = 0; i < schema.names.size(); ++i) {
    if (i != 0) out.push_back(',');
    append_csv_string(out, schema.names[i]);
  }
  return out;
}

std::string row_to_csv(const output_schema& schema, const row& r, const time_formatter& fmt) {
  std::string out;
  append_csv_row(out, schema.names.size(), r, fmt);
  return out;
}

std::string date_partition_folder(std::optional<timestamp> t, const time_formatter& fmt) {
  if (!t) return "dt=__HIVE_DEFAULT_PARTITION__";
  std::string local = "dt=";
  fmt.append_console(local, *t);  // "YYYY-MM-DD hh:mm:ss...": the local date comes first
  local.resize(local.find(' '));
  return local;
}

std::string row_to_json(const output_schema& schema, const row& r, const time_formatter& fmt) {
  std::string out;
  append_row(out, json_keys(schema), r, fmt);
  return out;
}

void append_json_lines(std::string& out, const output_schema& schema, const std::vector<row>& rows,
                       const time_formatter& fmt) {
  const std::vector<std::string> keys = json_keys(schema);
  for (const row& r : rows) {
    append_row(out, keys, r, fmt);
    out.push_back('\n');
  }
}

std::string unique_file_suffix() {
  static std::atomic<uint64_t> counter{0};
  return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

std::string write_file_atomically(const std::string& dir, const std::string& name,
                                  std::string_view content, bool sync) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path final_path = fs::path(dir) / name;
  const fs::path tmp_path = fs::path(dir) / ("." + name + ".tmp");
  // A publisher (another thread, or the coordinator's process) removes `_staging` once it is
  // empty; between our mkdir of it and of the epoch's folder in it, that makes the second mkdir
  // (or the open) fail with ENOENT. The folders are simply created again (each attempt takes
  // microseconds; the bound only stops a directory that keeps vanishing for another reason).
  int fd = -1;
  for (int attempt = 1;; ++attempt) {
    fs::create_directories(dir, ec);
    if (ec && (ec != std::errc::no_such_file_or_directory || attempt == 1000))
      return "cannot create directory \"" + dir + "\": " + ec.message();
    if (ec) continue;
    fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) break;
    if (errno != ENOENT || attempt == 1000)
      return "cannot create \"" + tmp_path.string() + "\": " + errno_message(errno);
  }
  auto fail = [&](const std::string& what, int err) {
    fs::remove(tmp_path, ec);
    return what + " \"" + tmp_path.string() + "\": " + errno_message(err);
  };
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail("cannot write", err);
    }
    done += static_cast<size_t>(w);
  }
  if (sync && ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("cannot sync", err);
  }
  if (::close(fd) != 0) return fail("cannot close", errno);
  fs::rename(tmp_path, final_path, ec);
  if (ec) {
    const std::string msg = "cannot rename \"" + tmp_path.string() + "\" to \"" +
                            final_path.string() + "\": " + ec.message();
    fs::remove(tmp_path, ec);
    return msg;
  }
  return sync ? sync_directory(dir) : std::string();
}

std::unique_ptr<sink> make_file_sink(const sink_config& cfg, time_formatter fmt) {
  return std::make_unique<file_sink>(cfg, std::move(fmt));
}

}  // namespace eddy
