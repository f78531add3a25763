#include "state/unit_snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <system_error>
#include <vector>

#include <zstd.h>

#include "state/file_io.hpp"
#include "state/kv_op.hpp"

namespace eddy {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view magic = "EDDYUNIT";
constexpr std::string_view delta_magic = "EDDYDLTA";
/// 1: pairs as stored; 2 (written since 2026-12-03): pairs zstd-compressed, their length in the
/// trailer. Both are read.
constexpr std::uint32_t format_version = 2;
constexpr std::uint64_t header_fixed_bytes = 8 + 4 + 4;  // magic, version, prefix length
constexpr std::uint64_t trailer_bytes = 8 + 4;           // v1: pair count, CRC32C
constexpr std::uint64_t trailer_bytes_v2 = 8 + 8 + 4;    // pair count, pairs' length, CRC32C
constexpr int zstd_level = 1;  // ~7x smaller state at a few hundred MB/s (state/README.md)
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
/// CRC) and `whole` (every byte). Between begin_compressed() and end_compressed() what is
/// appended goes through a zstd stream first (the checksums cover the compressed bytes).
class snapshot_writer {
 public:
  explicit snapshot_writer(file_io::atomic_file& file) : file_(file) { buf_.reserve(io_chunk); }
  ~snapshot_writer() { ZSTD_freeCCtx(cctx_); }
  snapshot_writer(const snapshot_writer&) = delete;
  snapshot_writer& operator=(const snapshot_writer&) = delete;

  void append(std::string_view bytes) {
    if (!cctx_) {
      emit(bytes);
      return;
    }
    raw_bytes_ += bytes.size();
    if (raw_.empty() && bytes.size() >= io_chunk) {
      compress(bytes, ZSTD_e_continue);
      return;
    }
    raw_.append(bytes);
    if (raw_.size() >= io_chunk) {
      compress(raw_, ZSTD_e_continue);
      raw_.clear();
    }
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
  [[nodiscard]] std::string flush_if_full() {
    if (!error_.empty()) return error_;
    return buf_.size() >= io_chunk ? flush() : "";
  }

  void begin_compressed() {
    cctx_ = ZSTD_createCCtx();
    if (!cctx_) {
      error_ = "zstd: out of memory";
      return;
    }
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, zstd_level);
    // The frame's own checksum of the pairs: damage the file's CRC32C cannot see (a file whose
    // CRC was made to match) is still refused.
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
  }
  /// Ends the compressed part; "" or the error. raw_bytes(): what went into it.
  [[nodiscard]] std::string end_compressed() {
    // Nothing appended: no frame at all (a reader takes no compressed bytes as no pairs).
    if (cctx_ && raw_bytes_ > 0) compress(raw_, ZSTD_e_end);
    raw_.clear();
    ZSTD_freeCCtx(cctx_);
    cctx_ = nullptr;
    return error_;
  }
  [[nodiscard]] std::uint64_t raw_bytes() const { return raw_bytes_; }

  /// Appends the trailer's CRC and writes out the rest; returns "" or the error.
  [[nodiscard]] std::string finish(std::string* whole_crc) {
    if (!error_.empty()) return error_;
    const std::string crc = body_.finish_bytes();
    whole_.update(crc);
    buf_.append(crc);
    size_ += crc.size();
    *whole_crc = whole_.finish();
    return flush();
  }
  [[nodiscard]] std::uint64_t size() const { return size_; }

 private:
  void emit(std::string_view bytes) {
    body_.update(bytes);
    whole_.update(bytes);
    buf_.append(bytes);
    size_ += bytes.size();
  }
  void compress(std::string_view in_bytes, ZSTD_EndDirective mode) {
    if (!cctx_ || !error_.empty()) return;
    ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
    out_.resize(ZSTD_CStreamOutSize());
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const std::size_t left = ZSTD_compressStream2(cctx_, &out, &in, mode);
      if (ZSTD_isError(left)) {
        error_ = std::string("zstd: ") + ZSTD_getErrorName(left);
        return;
      }
      emit(std::string_view(out_.data(), out.pos));
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return;
    }
  }
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
  ZSTD_CCtx* cctx_ = nullptr;
  std::string raw_;  ///< appended, not compressed yet
  std::vector<char> out_;
  std::uint64_t raw_bytes_ = 0;
  std::string error_;
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

/// The pairs' (or records') bytes of a unit file, with the position and end its length checks
/// use: as stored (format 1: file positions) or decompressed (format 2: positions in the
/// decompressed bytes, whose length the trailer records).
class body_reader {
 public:
  /// Format 1: the pairs are the file's bytes up to `stored_end`.
  body_reader(snapshot_reader& r, std::uint64_t stored_end) : r_(r), end_(stored_end) {}
  /// Format 2: the file's bytes up to `compressed_end` decompress to `raw_bytes` bytes.
  body_reader(snapshot_reader& r, std::uint64_t compressed_end, std::uint64_t raw_bytes)
      : r_(r), compressed_end_(compressed_end), end_(raw_bytes), dctx_(ZSTD_createDCtx()) {
    out_.resize(ZSTD_DStreamOutSize());
  }
  ~body_reader() { ZSTD_freeDCtx(dctx_); }
  body_reader(const body_reader&) = delete;
  body_reader& operator=(const body_reader&) = delete;

  [[nodiscard]] std::uint64_t pos() const { return compressed() ? pos_ : r_.pos(); }
  [[nodiscard]] std::uint64_t end() const { return end_; }

  /// Reads `n` bytes (the caller checked n <= end() - pos()) into `out`.
  [[nodiscard]] std::string read(std::size_t n, std::string* out) {
    if (!compressed()) return r_.read(n, out);
    out->clear();
    out->reserve(n);
    while (out->size() < n) {
      if (used_ == have_) {
        if (std::string e = inflate(); !e.empty()) return e;
      }
      const std::size_t take = std::min(n - out->size(), have_ - used_);
      out->append(out_.data() + used_, take);
      used_ += take;
      pos_ += take;
    }
    return {};
  }

  /// After the last pair: the rest of the compressed bytes decompress to nothing more, and the
  /// frame ends with them.
  [[nodiscard]] std::string finish() {
    if (!compressed()) return {};
    for (;;) {
      if (in_.pos == in_.size && r_.pos() >= compressed_end_) break;
      std::size_t produced = 0;
      if (std::string e = step(&produced); !e.empty()) return e;
      if (produced > 0) {
        return "corrupt: the pairs decompress to more than the " + std::to_string(end_) +
               " bytes the trailer records";
      }
    }
    if (frame_left_ != 0) return "corrupt: the compressed pairs end early";
    return {};
  }

 private:
  [[nodiscard]] bool compressed() const { return dctx_ != nullptr || compressed_end_ != 0; }

  /// Feeds the decompressor (reading more of the file when it took everything) once.
  std::string step(std::size_t* produced) {
    if (!dctx_) return "zstd: out of memory";
    if (in_.pos == in_.size) {
      if (r_.pos() >= compressed_end_) return "corrupt: the compressed pairs end early";
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(io_chunk, compressed_end_ - r_.pos()));
      if (std::string e = r_.read(n, &in_bytes_); !e.empty()) return e;
      in_ = ZSTD_inBuffer{in_bytes_.data(), in_bytes_.size(), 0};
    }
    ZSTD_outBuffer o{out_.data(), out_.size(), 0};
    const std::size_t ret = ZSTD_decompressStream(dctx_, &o, &in_);
    if (ZSTD_isError(ret)) return std::string("corrupt: zstd: ") + ZSTD_getErrorName(ret);
    frame_left_ = ret;
    *produced = o.pos;
    return {};
  }

  std::string inflate() {
    for (;;) {
      std::size_t produced = 0;
      if (std::string e = step(&produced); !e.empty()) return e;
      if (produced > 0) {
        if (produced > end_ - produced_) {
          return "corrupt: the pairs decompress to more than the " + std::to_string(end_) +
                 " bytes the trailer records";
        }
        produced_ += produced;
        have_ = produced;
        used_ = 0;
        return {};
      }
    }
  }

  snapshot_reader& r_;
  std::uint64_t compressed_end_ = 0;
  std::uint64_t end_;
  ZSTD_DCtx* dctx_ = nullptr;
  std::vector<char> out_;
  std::size_t have_ = 0, used_ = 0;
  std::uint64_t pos_ = 0, produced_ = 0;
  std::string in_bytes_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  std::size_t frame_left_ = 0;
};

/// Format 2: checks the whole file's checksums (the trailer's, and `expected_crc32c` unless
/// empty) before anything else reads it, so that the lengths the decompression relies on are
/// the ones written. "" or what is wrong.
std::string check_checksums(int fd, std::uint64_t size, std::string_view expected_crc32c) {
  if (::lseek(fd, 0, SEEK_SET) != 0) return "seek: " + file_io::errno_text();
  snapshot_reader c(fd, size);
  std::string bytes;
  for (std::uint64_t left = size - 4; left > 0;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(io_chunk, left));
    if (std::string e = c.read(n, &bytes); !e.empty()) return e;
    left -= n;
  }
  const std::string computed = c.body_crc();
  if (std::string e = c.read(4, &bytes); !e.empty()) return e;
  if (bytes != computed) return "checksum mismatch";
  const std::string whole = c.whole_crc();
  if (!expected_crc32c.empty() && whole != expected_crc32c) {
    return "CRC32C " + whole + ", expected " + std::string(expected_crc32c);
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) return "seek: " + file_io::errno_text();
  return {};
}

std::string read_at(int fd, std::uint64_t offset, std::size_t n, std::string* out) {
  out->assign(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t k = ::pread(fd, out->data() + got, n - got, static_cast<off_t>(offset + got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return "read: " + file_io::errno_text();
    if (k == 0) return "the file ended early (changed while it was read?)";
    got += static_cast<std::size_t>(k);
  }
  return {};
}

using pair_sink = std::function<std::string(std::string_view key, std::string_view value)>;

/// Reads and checks the whole unit file at `path` (format 1 or 2), calling `on_pair` (when set)
/// for every pair, after the pair's lengths and prefix were checked; format 1's trailer is
/// checked last, format 2's checksums first. "" or what is wrong (without the path).
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
  std::string bytes;
  if (std::string e = read_at(in.fd, 0, header_fixed_bytes, &bytes); !e.empty()) return e;
  if (std::string_view(bytes).substr(0, file_magic.size()) != file_magic)
    return file_magic == magic ? "not a unit snapshot" : "not a unit delta";
  const std::uint64_t version = get_le(std::string_view(bytes).substr(8, 4));
  if (version != 1 && version != 2) return "unsupported format version " + std::to_string(version);
  const bool v2 = version == 2;
  const std::uint64_t trailer = v2 ? trailer_bytes_v2 : trailer_bytes;
  if (size < header_fixed_bytes + trailer) {
    return "truncated: " + std::to_string(size) + " bytes, a snapshot has at least " +
           std::to_string(header_fixed_bytes + trailer);
  }
  std::uint64_t raw_bytes = 0;
  if (v2) {
    if (std::string e = check_checksums(in.fd, size, expected_crc32c); !e.empty()) return e;
    if (std::string e = read_at(in.fd, size - trailer + 8, 8, &bytes); !e.empty()) return e;
    raw_bytes = get_le(bytes);
  }
  snapshot_reader r(in.fd, size);
  const std::uint64_t pairs_end = size - trailer;
  if (std::string e = r.read(header_fixed_bytes, &bytes); !e.empty()) return e;
  const std::uint64_t prefix_len = get_le(std::string_view(bytes).substr(12, 4));
  if (prefix_len > pairs_end - r.pos()) {
    return "corrupt: the prefix length " + std::to_string(prefix_len) + " runs past the end";
  }
  if (std::string e = r.read(prefix_len, prefix); !e.empty()) return e;
  if (!valid_prefix(*prefix)) return "corrupt: the prefix is empty or all 0xff bytes";

  std::optional<body_reader> body;
  if (v2)
    body.emplace(r, pairs_end, raw_bytes);
  else
    body.emplace(r, pairs_end);
  body_reader& b = *body;
  std::uint64_t count = 0;
  std::string key;
  std::string value;
  // Reads a u32 length at the current position and checks that that many bytes follow before
  // the end: a corrupt length can neither allocate more than the file holds nor read past it.
  auto length = [&](const char* what, std::uint64_t* n) -> std::string {
    if (b.end() - b.pos() < 4) {
      return "corrupt: pair " + std::to_string(count) + " is cut at byte " +
             std::to_string(b.pos());
    }
    if (std::string e = b.read(4, &bytes); !e.empty()) return e;
    *n = get_le(bytes);
    if (*n > b.end() - b.pos()) {
      return "corrupt: the " + std::string(what) + " length " + std::to_string(*n) + " at byte " +
             std::to_string(b.pos() - 4) + " runs past the end";
    }
    return {};
  };
  while (b.pos() < b.end()) {
    std::uint64_t n = 0;
    if (std::string e = length("key", &n); !e.empty()) return e;
    if (std::string e = b.read(n, &key); !e.empty()) return e;
    if (!key.starts_with(*prefix)) {
      return "corrupt: key \"" + shown_key(key) + "\" is not under the prefix \"" +
             shown_key(*prefix) + "\"";
    }
    if (std::string e = length("value", &n); !e.empty()) return e;
    if (std::string e = b.read(n, &value); !e.empty()) return e;
    ++count;
    if (on_pair) {
      if (std::string e = on_pair(key, value); !e.empty()) return e;
    }
  }
  if (std::string e = b.finish(); !e.empty()) return e;
  if (std::string e = r.read(8, &bytes); !e.empty()) return e;
  const std::uint64_t recorded = get_le(bytes);
  if (recorded != count) {
    return "corrupt: " + std::to_string(count) + " pairs, the trailer says " +
           std::to_string(recorded);
  }
  if (v2) {
    if (std::string e = r.read(8, &bytes); !e.empty()) return e;
    if (get_le(bytes) != raw_bytes) return "changed while it was read";
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
    const std::string& path, bool sync, bool compress,
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
  w.append_u32(compress ? format_version : 1);
  w.append_u32(static_cast<std::uint32_t>(prefix.size()));
  w.append(prefix);
  std::uint64_t count = 0;
  if (compress) w.begin_compressed();
  if (std::string e = body(w, &count); !e.empty()) return failed(e);
  if (std::string e = w.end_compressed(); !e.empty()) return failed(e);
  w.append_u64(count);
  if (compress) w.append_u64(w.raw_bytes());
  unit_snapshot_result r;
  if (std::string e = w.finish(&r.crc32c); !e.empty()) return failed(e);
  if (std::string e = file.commit(sync); !e.empty()) return failed(e);
  r.bytes = w.size();
  r.raw_bytes = compress ? w.raw_bytes() : w.size();
  r.keys = count;
  return r;
}
}  // namespace

unit_snapshot_result write_unit_snapshot(const kv_store& db, std::string_view prefix,
                                         const std::string& path, bool sync, bool compress) {
  return write_unit_file(
      "unit snapshot ", magic, prefix, path, sync, compress,
      [&](snapshot_writer& w, std::uint64_t* keys) {
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
                                      const std::string& path, bool sync, bool compress) {
  return write_unit_file("unit delta ", delta_magic, prefix, path, sync, compress,
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
