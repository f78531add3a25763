#include "state/unit_snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <limits>
#include <system_error>
#include <vector>

#include "state/file_io.hpp"
#include "state/kv_op.hpp"

namespace eddy {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view magic = "EDDYUNIT";
constexpr std::string_view delta_magic = "EDDYDLTA";
constexpr std::uint32_t format_version = 1;
constexpr std::uint64_t header_fixed_bytes = 8 + 4 + 4;  // magic, version, prefix length
constexpr std::uint64_t trailer_bytes = 8 + 4;           // pair count, CRC32C
constexpr std::uint64_t max_length = std::numeric_limits<std::uint32_t>::max();
constexpr std::size_t io_chunk = std::size_t{1} << 20;
/// Key and value bytes per WriteBatch of a load.
constexpr std::size_t batch_bytes = std::size_t{4} << 20;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

/// kv_op::delete_prefix's condition: not empty, not all 0xff bytes.
bool valid_prefix(std::string_view prefix) {
  return std::any_of(prefix.begin(), prefix.end(),
                     [](char c) { return static_cast<unsigned char>(c) != 0xff; });
}

std::string shown_key(std::string_view key) {
  std::string out;
  for (const unsigned char c : key.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x" + file_io::to_hex(std::string_view(reinterpret_cast<const char*>(&c), 1));
    }
  }
  return key.size() > 64 ? out + "..." : out;
}

// ---- writing -------------------------------------------------------------------------------

/// Buffers the file's bytes and feeds both checksums: `body` (every byte before the trailer's
/// CRC) and `whole` (every byte).
class snapshot_writer {
 public:
  explicit snapshot_writer(file_io::atomic_file& file) : file_(file) { buf_.reserve(io_chunk); }

  void append(std::string_view bytes) {
    body_.update(bytes);
    whole_.update(bytes);
    buf_.append(bytes);
    size_ += bytes.size();
  }
  void append_u32(std::uint32_t v) {
    std::string b;
    put_u32(b, v);
    append(b);
  }
  void append_u64(std::uint64_t v) {
    std::string b;
    put_u64(b, v);
    append(b);
  }
  [[nodiscard]] std::string flush_if_full() { return buf_.size() >= io_chunk ? flush() : ""; }

  /// Appends the trailer's CRC and writes out the rest; returns "" or the error.
  [[nodiscard]] std::string finish(std::string* whole_crc) {
    const std::string crc = body_.finish_bytes();
    whole_.update(crc);
    buf_.append(crc);
    size_ += crc.size();
    *whole_crc = whole_.finish();
    return flush();
  }
  [[nodiscard]] std::uint64_t size() const { return size_; }

 private:
  std::string flush() {
    std::string e = file_.write(buf_);
    buf_.clear();
    return e;
  }

  file_io::atomic_file& file_;
  file_io::crc32c_hasher body_;
  file_io::crc32c_hasher whole_;
  std::string buf_;
  std::uint64_t size_ = 0;
};

// ---- reading -------------------------------------------------------------------------------

/// Reads a snapshot front to back in chunks, feeding the checksums as `snapshot_writer` does.
class snapshot_reader {
 public:
  snapshot_reader(int fd, std::uint64_t size) : fd_(fd), size_(size), buf_(io_chunk) {}

  [[nodiscard]] std::uint64_t pos() const { return pos_; }
  [[nodiscard]] std::uint64_t size() const { return size_; }

  /// Reads `n` bytes (the caller checked that they lie within the file) into `out`.
  [[nodiscard]] std::string read(std::size_t n, std::string* out) {
    out->clear();
    out->reserve(n);
    while (out->size() < n) {
      if (have_ == used_) {
        if (std::string e = fill(); !e.empty()) return e;
      }
      const std::size_t take = std::min(n - out->size(), have_ - used_);
      const std::string_view chunk(buf_.data() + used_, take);
      // Bytes before the trailer's CRC go into `body`; every byte into `whole`.
      const std::uint64_t body_end = size_ - 4;
      if (pos_ < body_end)
        body_.update(chunk.substr(0, std::min<std::uint64_t>(take, body_end - pos_)));
      whole_.update(chunk);
      out->append(chunk);
      used_ += take;
      pos_ += take;
    }
    return {};
  }
  [[nodiscard]] std::string body_crc() { return body_.finish_bytes(); }
  [[nodiscard]] std::string whole_crc() { return whole_.finish(); }

 private:
  std::string fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return "read: " + file_io::errno_text();
      if (n == 0) return "the file ended early (changed while it was read?)";
      have_ = static_cast<std::size_t>(n);
      used_ = 0;
      return {};
    }
  }

  int fd_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  std::vector<char> buf_;
  std::size_t have_ = 0;
  std::size_t used_ = 0;
  file_io::crc32c_hasher body_;
  file_io::crc32c_hasher whole_;
};

using pair_sink = std::function<std::string(std::string_view key, std::string_view value)>;

/// Reads and checks the whole snapshot at `path`, calling `on_pair` (when set) for every pair,
/// after the pair's lengths and prefix were checked; the trailer is checked last. "" or what is
/// wrong (without the path).
std::string walk(const std::string& path, std::string_view file_magic,
                 std::string_view expected_crc32c, std::string* prefix, const pair_sink& on_pair) {
  file_io::fd_guard in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return "open: " + file_io::errno_text();
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return "stat: " + file_io::errno_text();
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < header_fixed_bytes + trailer_bytes) {
    return "truncated: " + std::to_string(size) + " bytes, a snapshot has at least " +
           std::to_string(header_fixed_bytes + trailer_bytes);
  }
  snapshot_reader r(in.fd, size);
  const std::uint64_t pairs_end = size - trailer_bytes;
  std::string bytes;
  if (std::string e = r.read(header_fixed_bytes, &bytes); !e.empty()) return e;
  if (std::string_view(bytes).substr(0, file_magic.size()) != file_magic)
    return file_magic == magic ? "not a unit snapshot" : "not a unit delta";
  const std::uint64_t version = get_le(std::string_view(bytes).substr(8, 4));
  if (version != format_version) return "unsupported format version " + std::to_string(version);
  const std::uint64_t prefix_len = get_le(std::string_view(bytes).substr(12, 4));
  if (prefix_len > pairs_end - r.pos()) {
    return "corrupt: the prefix length " + std::to_string(prefix_len) + " runs past the end";
  }
  if (std::string e = r.read(prefix_len, prefix); !e.empty()) return e;
  if (!valid_prefix(*prefix)) return "corrupt: the prefix is empty or all 0xff bytes";

  std::uint64_t count = 0;
  std::string key;
  std::string value;
  // Reads a u32 length at the current position and checks that that many bytes follow before
  // the trailer: a corrupt length can neither allocate more than the file holds nor read past it.
  auto length = [&](const char* what, std::uint64_t* n) -> std::string {
    if (pairs_end - r.pos() < 4) {
      return "corrupt: pair " + std::to_string(count) + " is cut at byte " +
             std::to_string(r.pos());
    }
    if (std::string e = r.read(4, &bytes); !e.empty()) return e;
    *n = get_le(bytes);
    if (*n > pairs_end - r.pos()) {
      return "corrupt: the " + std::string(what) + " length " + std::to_string(*n) + " at byte " +
             std::to_string(r.pos() - 4) + " runs past the end";
    }
    return {};
  };
  while (r.pos() < pairs_end) {
    std::uint64_t n = 0;
    if (std::string e = length("key", &n); !e.empty()) return e;
    if (std::string e = r.read(n, &key); !e.empty()) return e;
    if (!key.starts_with(*prefix)) {
      return "corrupt: key \"" + shown_key(key) + "\" is not under the prefix \"" +
             shown_key(*prefix) + "\"";
    }
    if (std::string e = length("value", &n); !e.empty()) return e;
    if (std::string e = r.read(n, &value); !e.empty()) return e;
    ++count;
    if (on_pair) {
      if (std::string e = on_pair(key, value); !e.empty()) return e;
    }
  }
  if (std::string e = r.read(8, &bytes); !e.empty()) return e;
  const std::uint64_t recorded = get_le(bytes);
  if (recorded != count) {
    return "corrupt: " + std::to_string(count) + " pairs, the trailer says " +
           std::to_string(recorded);
  }
  const std::string computed = r.body_crc();
  if (std::string e = r.read(4, &bytes); !e.empty()) return e;
  if (bytes != computed) return "checksum mismatch";
  const std::string whole = r.whole_crc();
  if (!expected_crc32c.empty() && whole != expected_crc32c) {
    return "CRC32C " + whole + ", expected " + std::string(expected_crc32c);
  }
  return {};
}

// ---- deltas --------------------------------------------------------------------------------

/// The end of `prefix`'s key range (what kv_op::delete_prefix deletes up to).
std::string prefix_end(std::string_view prefix) {
  return kv_op::delete_prefix(std::string(prefix)).range_end;
}

/// Checks one delta record (its key is under the prefix already). "" or what is wrong.
std::string check_record(std::string_view end_of_prefix, std::string_view key,
                         std::string_view record) {
  // Built only for an error: this runs for every record of every delta.
  const auto at = [key] { return " (key \"" + shown_key(key) + "\")"; };
  if (record.empty()) return "corrupt: a record without a tag" + at();
  switch (record[0]) {
    case 'p':
      return {};
    case 'd':
      return record.size() == 1 ? std::string() : "corrupt: a delete with a payload" + at();
    case 'r': {
      const std::string_view end = record.substr(1);
      if (end <= key) return "corrupt: a range delete that ends at or before its start" + at();
      if (end > end_of_prefix) return "corrupt: a range delete past the unit's keys" + at();
      return {};
    }
    default:
      return "corrupt: unknown record tag " +
             std::to_string(static_cast<unsigned char>(record[0])) + at();
  }
}

/// Checks `changes` in memory as load_unit_delta checks a file's records.
std::string check_changes(std::string_view prefix, const unit_changes& changes) {
  const std::string end = prefix_end(prefix);
  const std::string_view r = changes.records;
  std::uint64_t pos = 0, count = 0;
  auto field = [&](std::string_view* out) {
    if (r.size() - pos < 4) return false;
    const std::uint64_t n = get_le(r.substr(pos, 4));
    if (n > r.size() - pos - 4) return false;
    *out = r.substr(pos + 4, n);
    pos += 4 + n;
    return true;
  };
  while (pos < r.size()) {
    std::string_view key, record;
    if (!field(&key) || !field(&record)) return "malformed records at byte " + std::to_string(pos);
    if (!key.starts_with(prefix)) {
      return "key \"" + shown_key(key) + "\" is not under the prefix \"" + shown_key(prefix) + "\"";
    }
    if (std::string e = check_record(end, key, record); !e.empty()) return e;
    ++count;
  }
  if (count != changes.count)
    return std::to_string(count) + " records, " + std::to_string(changes.count) + " counted";
  return {};
}

/// Writes a unit file atomically at `path` (creating its parent directories): the header
/// (`file_magic`, version, `prefix`), what `body` appends (it counts its pairs or records into
/// its second argument; "" or an error, and then nothing is written), the count and the CRC.
/// Errors start with `what` and the path.
unit_snapshot_result write_unit_file(
    std::string_view what, std::string_view file_magic, std::string_view prefix,
    const std::string& path, bool sync,
    const std::function<std::string(snapshot_writer&, std::uint64_t*)>& body) {
  auto failed = [&](const std::string& why) {
    unit_snapshot_result r;
    r.error = std::string(what) + path + ": " + why;
    return r;
  };
  if (!valid_prefix(prefix)) return failed("the prefix is empty or all 0xff bytes");
  if (prefix.size() > max_length) return failed("the prefix is too long");
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) return failed("create " + target.parent_path().string() + ": " + ec.message());
  }
  file_io::atomic_file file;  // removes the temporary file unless committed
  if (std::string e = file.open(target); !e.empty()) return failed(e);
  snapshot_writer w(file);
  w.append(file_magic);
  w.append_u32(format_version);
  w.append_u32(static_cast<std::uint32_t>(prefix.size()));
  w.append(prefix);
  std::uint64_t count = 0;
  if (std::string e = body(w, &count); !e.empty()) return failed(e);
  w.append_u64(count);
  unit_snapshot_result r;
  if (std::string e = w.finish(&r.crc32c); !e.empty()) return failed(e);
  if (std::string e = file.commit(sync); !e.empty()) return failed(e);
  r.bytes = w.size();
  r.keys = count;
  return r;
}
}  // namespace

unit_snapshot_result write_unit_snapshot(const kv_store& db, std::string_view prefix,
                                         const std::string& path, bool sync) {
  return write_unit_file(
      "unit snapshot ", magic, prefix, path, sync, [&](snapshot_writer& w, std::uint64_t* keys) {
        std::string error;
        const store_status st = db.scan_each(prefix, [&](std::string_view k, std::string_view v) {
          if (k.size() > max_length || v.size() > max_length) {
            error = "the pair of key \"" + shown_key(k) + "\" is larger than 4 GiB";
            return false;
          }
          w.append_u32(static_cast<std::uint32_t>(k.size()));
          w.append(k);
          w.append_u32(static_cast<std::uint32_t>(v.size()));
          w.append(v);
          ++*keys;
          error = w.flush_if_full();
          return error.empty();
        });
        return st.ok() ? error : st.error;
      });
}

std::string load_unit_snapshot(const std::string& path, std::string_view expected_crc32c,
                               kv_store& db) {
  const std::string shown = "unit snapshot " + path + ": ";
  // Pass 1: check everything; the store is not touched.
  std::string prefix;
  if (std::string e = walk(path, magic, expected_crc32c, &prefix, nullptr); !e.empty())
    return shown + e;

  // Pass 2: replace the prefix, in batches of bounded size (the first one deletes the prefix).
  std::vector<kv_op> batch;
  batch.push_back(kv_op::delete_prefix(prefix));
  std::size_t bytes = 0;
  auto write = [&]() -> std::string {
    const store_status st = db.write_batch(batch, /*sync=*/false);
    batch.clear();
    bytes = 0;
    return st.error;
  };
  const pair_sink add = [&](std::string_view key, std::string_view value) -> std::string {
    // Only keys under the prefix checked (and deleted) in pass 1, even if the file changed.
    if (!key.starts_with(prefix)) return "changed while it was loaded";
    batch.emplace_back(std::string(key), std::string(value));
    bytes += key.size() + value.size();
    return bytes >= batch_bytes ? write() : std::string();
  };
  std::string again;
  if (std::string e = walk(path, magic, expected_crc32c, &again, add); !e.empty()) {
    return shown + e + " (on the second read: the unit's keys may be partly replaced)";
  }
  if (std::string e = write(); !e.empty()) return shown + e;
  return {};
}

void append_unit_changes(const std::vector<kv_op>& ops, unit_changes& changes) {
  for (const kv_op& op : ops) {
    put_u32(changes.records, static_cast<std::uint32_t>(op.key.size()));
    changes.records += op.key;
    const std::string& payload = op.is_range() ? op.range_end
                                 : op.value    ? *op.value
                                               : std::string();
    put_u32(changes.records, static_cast<std::uint32_t>(1 + payload.size()));
    changes.records += op.is_range() ? 'r' : op.value ? 'p' : 'd';
    changes.records += payload;
    ++changes.count;
  }
}

unit_snapshot_result write_unit_delta(std::string_view prefix, const unit_changes& changes,
                                      const std::string& path, bool sync) {
  return write_unit_file("unit delta ", delta_magic, prefix, path, sync,
                         [&](snapshot_writer& w, std::uint64_t* records) {
                           if (std::string e = check_changes(prefix, changes); !e.empty()) return e;
                           w.append(changes.records);
                           *records = changes.count;
                           return std::string();
                         });
}

std::string load_unit_delta(const std::string& path, std::string_view expected_crc32c,
                            std::string_view expected_prefix, kv_store& db) {
  const std::string shown = "unit delta " + path + ": ";
  // Pass 1: check everything; the store is not touched.
  std::string prefix, end;
  const pair_sink check = [&](std::string_view key, std::string_view record) {
    return check_record(end, key, record);
  };
  {
    // The prefix is known only once the header is read: check records against it lazily.
    const pair_sink first = [&](std::string_view key, std::string_view record) {
      if (end.empty()) end = prefix_end(prefix);
      return check(key, record);
    };
    if (std::string e = walk(path, delta_magic, expected_crc32c, &prefix, first); !e.empty())
      return shown + e;
  }
  if (!expected_prefix.empty() && prefix != expected_prefix) {
    return shown + "it holds the keys of \"" + shown_key(prefix) + "\", not of \"" +
           shown_key(expected_prefix) + "\"";
  }
  end = prefix_end(prefix);

  // Pass 2: the range deletes; pass 3: puts and deletes in file order (one write_batch of the
  // original ops applies range deletes first, then the rest in order).
  std::vector<kv_op> batch;
  std::size_t bytes = 0;
  auto write = [&]() -> std::string {
    if (batch.empty()) return {};
    const store_status st = db.write_batch(batch, /*sync=*/false);
    batch.clear();
    bytes = 0;
    return st.error;
  };
  for (const bool ranges : {true, false}) {
    const pair_sink apply = [&](std::string_view key, std::string_view record) -> std::string {
      // Checked again: the file may have changed since pass 1.
      if (!key.starts_with(prefix) || !check(key, record).empty())
        return "changed while it was loaded";
      if ((record[0] == 'r') != ranges) return {};
      kv_op op(std::string(key), std::nullopt);
      if (record[0] == 'r') op.range_end = std::string(record.substr(1));
      if (record[0] == 'p') op.value = std::string(record.substr(1));
      bytes += key.size() + record.size();
      batch.push_back(std::move(op));
      return bytes >= batch_bytes ? write() : std::string();
    };
    std::string again;
    if (std::string e = walk(path, delta_magic, expected_crc32c, &again, apply); !e.empty())
      return shown + e + " (on a later read: the unit's keys may be partly changed)";
    if (again != prefix) return shown + "changed while it was loaded";
    if (std::string e = write(); !e.empty()) return shown + e;
  }
  return {};
}

}  // namespace eddy
