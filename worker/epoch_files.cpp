#include "worker/epoch_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "worker/crash_point.hpp"
#include "worker/sink.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

fs::path staging_root(const std::string& dir) {
  return fs::path(dir) / "_staging";
}

fs::path staging_dir(const std::string& dir, uint64_t epoch) {
  char name[24];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(epoch));
  return staging_root(dir) / name;
}

}  // namespace

std::string sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return "cannot open \"" + dir + "\" to sync it: " + errno_text(errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return "cannot sync \"" + dir + "\": " + errno_text(err);
  return {};
}

std::string epoch_file_stem(std::string_view stem, uint64_t epoch) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%010llu", static_cast<unsigned long long>(epoch));
  return std::string(stem) + "-" + digits;
}

std::string stage_epoch_file(const std::string& dir, uint64_t epoch, const std::string& name,
                             std::string_view content, bool sync) {
  // Temporary name + rename inside the epoch's staging directory, fsynced when `sync`.
  return write_file_atomically(staging_dir(dir, epoch).string(), name, content, sync);
}

std::vector<std::string> staged_epoch_files(const std::string& dir, uint64_t epoch,
                                            std::string* error) {
  error->clear();
  std::vector<std::string> names;
  std::error_code ec;
  const fs::path sdir = staging_dir(dir, epoch);
  if (!fs::exists(sdir, ec)) return names;
  for (const auto& e : fs::directory_iterator(sdir, ec)) {
    std::string n = e.path().filename().string();
    if (!n.starts_with(".")) names.push_back(std::move(n));  // not a half-written temporary
  }
  if (ec) *error = "cannot list \"" + sdir.string() + "\": " + ec.message();
  std::sort(names.begin(), names.end());
  return names;
}

std::string publish_epoch_files(const std::string& dir, uint64_t epoch, bool sync) {
  std::error_code ec;
  const fs::path sdir = staging_dir(dir, epoch);
  if (!fs::exists(sdir, ec)) return {};
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(sdir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(".")) continue;  // a half-written temporary: never staged
    files.push_back(e.path());
  }
  if (ec) return "cannot list \"" + sdir.string() + "\": " + ec.message();
  std::sort(files.begin(), files.end());
  bool first = true;
  for (const fs::path& f : files) {
    const fs::path target = fs::path(dir) / f.filename();
    fs::rename(f, target, ec);
    if (ec)
      return "cannot publish \"" + f.string() + "\" as \"" + target.string() +
             "\": " + ec.message();
    if (first) crash_point("publish");  // between two renames of one sink commit
    first = false;
  }
  if (sync) {
    if (auto err = sync_directory(dir); !err.empty()) return err;
  }
  fs::remove_all(sdir, ec);
  if (ec) return "cannot remove \"" + sdir.string() + "\": " + ec.message();
  fs::remove(staging_root(dir), ec);  // only when empty: readers see a tidy directory
  return {};
}

std::string recover_epoch_files(const std::string& dir, uint64_t last_complete, epoch_recovery* out,
                                bool sync) {
  std::error_code ec;
  const fs::path root = staging_root(dir);
  if (!fs::exists(root, ec)) return {};
  std::vector<uint64_t> epochs;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    char* end = nullptr;
    const unsigned long long v = std::strtoull(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0') continue;  // not ours
    epochs.push_back(v);
  }
  if (ec) return "cannot list \"" + root.string() + "\": " + ec.message();
  std::sort(epochs.begin(), epochs.end());
  for (uint64_t e : epochs) {
    if (e <= last_complete) {
      if (auto err = publish_epoch_files(dir, e, sync); !err.empty()) return err;
      if (out) out->published.push_back(e);
    } else {
      fs::remove_all(staging_dir(dir, e), ec);
      if (ec) return "cannot remove \"" + staging_dir(dir, e).string() + "\": " + ec.message();
      if (out) out->discarded.push_back(e);
    }
  }
  fs::remove(root, ec);  // only when empty
  return {};
}

}  // namespace eddy
