// file_io.hpp — the POSIX file helpers state/ shares: CRC32C, fsync of files and directories,
// atomic replacement of a file (temporary name + fsync + rename + fsync of the directory).
//
// For state/'s own code (checkpoint_store, epoch_log, unit_snapshot); not a general API. Every
// error is returned as a message naming the path and the operation ("" = ok, e.g.
// "fsync /a/b: Input/output error"); nothing throws. No CAF dependency.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rocksdb {
class FileChecksumGenerator;
}

namespace eddy::file_io {

/// The text of the current errno.
[[nodiscard]] std::string errno_text();

/// Owns a file descriptor: closes it on destruction (errors ignored: use close() to see them).
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int f) : fd(f) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard();
  /// Closes now; "" or "close <shown>: <reason>".
  [[nodiscard]] std::string close(const std::filesystem::path& shown);
};

/// Incremental CRC32C (RocksDB's file checksum generator, the checksum of checkpoint manifests).
class crc32c_hasher {
 public:
  crc32c_hasher();
  ~crc32c_hasher();  // not copyable: it owns its generator
  void update(const char* data, std::size_t n);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// The checksum as 4 raw bytes, big-endian. Call once.
  [[nodiscard]] std::string finish_bytes();
  /// The checksum as 8 lowercase hex digits. Call once (instead of finish_bytes).
  [[nodiscard]] std::string finish();

 private:
  std::unique_ptr<rocksdb::FileChecksumGenerator> gen_;
};

/// Lowercase hex of `bytes` (two digits a byte).
[[nodiscard]] std::string to_hex(std::string_view bytes);

/// CRC32C of `data`, 8 lowercase hex digits.
[[nodiscard]] std::string crc32c_hex(std::string_view data);

/// Writes all of `data` to `fd` (retrying short writes and EINTR); errors name `shown`.
[[nodiscard]] std::string write_all(int fd, std::string_view data,
                                    const std::filesystem::path& shown);

/// The pid of the process holding an fcntl write lock on `file` (RocksDB's LOCK file of an open
/// DB, a coordinator's lock), or nullopt: no such lock, or no such file.
[[nodiscard]] std::optional<long> write_lock_holder(const std::filesystem::path& file);

/// fsync of directory `dir`: makes creations, renames and deletions in it durable.
[[nodiscard]] std::string fsync_dir(const std::filesystem::path& dir);

/// A file written under `<path>.tmp` and renamed to `path` by commit(): readers of `path` see the
/// old file or the complete new one. Destroyed without a successful commit(), it removes the
/// temporary file.
class atomic_file {
 public:
  atomic_file() = default;
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;
  ~atomic_file();
  /// Creates (truncates) `<path>.tmp`. The directory of `path` must exist.
  [[nodiscard]] std::string open(const std::filesystem::path& path);
  /// Appends `data` to the temporary file.
  [[nodiscard]] std::string write(std::string_view data);
  /// With `sync`: fsync of the file; close; rename onto `path`; with `sync`: fsync of the
  /// directory, so that the new file survives a crash once this returns "".
  [[nodiscard]] std::string commit(bool sync);
  [[nodiscard]] const std::filesystem::path& tmp_path() const { return tmp_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  fd_guard out_;
};

/// Replaces `path` by a file holding `content`, atomically (atomic_file).
[[nodiscard]] std::string write_atomically(const std::filesystem::path& path,
                                           std::string_view content, bool sync);

/// The whole content of a (small) file; nullopt and `*error` when it cannot be read.
[[nodiscard]] std::optional<std::string> read_small_file(const std::filesystem::path& path,
                                                         std::string* error);

}  // namespace eddy::file_io
