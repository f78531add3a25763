#include "state/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/file_checksum.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace eddy::file_io {

namespace fs = std::filesystem;

std::string errno_text() {
  return std::generic_category().message(errno);
}

// ---- fd_guard ------------------------------------------------------------------------------

fd_guard::~fd_guard() {
  if (fd >= 0) ::close(fd);
}

std::string fd_guard::close(const fs::path& shown) {
  const int f = fd;
  fd = -1;
  if (f >= 0 && ::close(f) != 0) return "close " + shown.string() + ": " + errno_text();
  return {};
}

// ---- CRC32C --------------------------------------------------------------------------------

crc32c_hasher::crc32c_hasher()
    : gen_(rocksdb::GetFileChecksumGenCrc32cFactory()->CreateFileChecksumGenerator(
          rocksdb::FileChecksumGenContext{})) {}

crc32c_hasher::~crc32c_hasher() = default;

void crc32c_hasher::update(const char* data, std::size_t n) {
  gen_->Update(data, n);
}

std::string crc32c_hasher::finish_bytes() {
  gen_->Finalize();
  return gen_->GetChecksum();
}

std::string crc32c_hasher::finish() {
  return to_hex(finish_bytes());
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string crc32c_hex(std::string_view data) {
  crc32c_hasher h;
  h.update(data);
  return h.finish();
}

// ---- writing -------------------------------------------------------------------------------

std::string write_all(int fd, std::string_view data, const fs::path& shown) {
  for (std::size_t off = 0; off < data.size();) {
    const ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return "write " + shown.string() + ": " + errno_text();
    off += static_cast<std::size_t>(w);
  }
  return {};
}

std::optional<long> write_lock_holder(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
  ::close(fd);
  if (!held) return std::nullopt;
  return static_cast<long>(lk.l_pid);
}

std::string fsync_dir(const fs::path& dir) {
  fd_guard d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0) return "open " + dir.string() + ": " + errno_text();
  if (::fsync(d.fd) != 0) return "fsync " + dir.string() + ": " + errno_text();
  return {};
}

atomic_file::~atomic_file() {
  if (out_.fd < 0 && tmp_.empty()) return;
  (void)out_.close(tmp_);
  std::error_code ec;
  fs::remove(tmp_, ec);
}

std::string atomic_file::open(const fs::path& path) {
  path_ = path;
  tmp_ = path;
  tmp_ += ".tmp";
  out_.fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_.fd < 0) {
    const std::string err = "create " + tmp_.string() + ": " + errno_text();
    tmp_.clear();  // nothing to remove
    return err;
  }
  return {};
}

std::string atomic_file::write(std::string_view data) {
  return write_all(out_.fd, data, tmp_);
}

std::string atomic_file::commit(bool sync) {
  if (sync && ::fsync(out_.fd) != 0) return "fsync " + tmp_.string() + ": " + errno_text();
  if (std::string e = out_.close(tmp_); !e.empty()) return e;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return "rename " + tmp_.string() + " to " + path_.string() + ": " + errno_text();
  }
  tmp_.clear();  // renamed: nothing left to remove
  if (!sync) return {};
  return fsync_dir(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
}

std::string write_atomically(const fs::path& path, std::string_view content, bool sync) {
  atomic_file f;
  if (std::string e = f.open(path); !e.empty()) return e;
  if (std::string e = f.write(content); !e.empty()) return e;
  return f.commit(sync);
}

// ---- reading -------------------------------------------------------------------------------

std::optional<std::string> read_small_file(const fs::path& path, std::string* error) {
  fd_guard in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) {
    *error = "open " + path.string() + ": " + errno_text();
    return std::nullopt;
  }
  // Read in place into a buffer of the file's size (staged output files run to megabytes: no
  // reallocation, no second copy); a file that grows meanwhile is read to its end all the same.
  struct stat st {};
  std::size_t cap = ::fstat(in.fd, &st) == 0 && st.st_size > 0
                        ? static_cast<std::size_t>(st.st_size) + 1
                        : std::size_t{65536};
  std::string out;
  std::size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(std::max(cap, out.size() * 2));
    const ssize_t n = ::read(in.fd, out.data() + used, out.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "read " + path.string() + ": " + errno_text();
      return std::nullopt;
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  out.resize(used);
  return out;
}

}  // namespace eddy::file_io
