#include "worker/sink/epoch_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "worker/checkpoint/crash_point.hpp"
#include "worker/sink/sink.hpp"

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

/// The staged epochs of `dir`, oldest first (directories of `_staging` named by a number).
std::string list_staged_epochs(const std::string& dir, std::vector<uint64_t>* epochs) {
  std::error_code ec;
  const fs::path root = staging_root(dir);
  if (!fs::exists(root, ec)) return {};
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    char* end = nullptr;
    const unsigned long long v = std::strtoull(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0') continue;  // not ours
    epochs->push_back(v);
  }
  if (ec) return "cannot list \"" + root.string() + "\": " + ec.message();
  std::sort(epochs->begin(), epochs->end());
  return {};
}

/// A staging directory's name: the epoch in 20 digits.
bool is_epoch_dir_name(const std::string& n) {
  return n.size() == 20 &&
         std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// `name`'s stem (before the last '.') ends with "-<tag>".
bool carries_tag(std::string_view name, std::string_view tag) {
  const size_t dot = name.rfind('.');
  const std::string_view stem = name.substr(0, dot);  // npos: the whole name
  return stem.size() > tag.size() && stem.ends_with(tag) &&
         stem[stem.size() - tag.size() - 1] == '-';
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
  std::vector<uint64_t> epochs;
  if (auto err = list_staged_epochs(dir, &epochs); !err.empty()) return err;
  for (uint64_t e : epochs) {
    if (e > last_complete) break;
    if (auto err = publish_epoch_files(dir, e, sync); !err.empty()) return err;
    if (out) out->published.push_back(e);
  }
  return discard_staged_epochs(dir, last_complete, out ? &out->discarded : nullptr);
}

namespace {

/// Removes the staging directories of the epochs `drop` picks.
template <class Pick>
std::string discard_staged_where(const std::string& dir, Pick drop,
                                 std::vector<uint64_t>* discarded) {
  std::vector<uint64_t> epochs;
  if (auto err = list_staged_epochs(dir, &epochs); !err.empty()) return err;
  std::error_code ec;
  for (uint64_t e : epochs) {
    if (!drop(e)) continue;
    fs::remove_all(staging_dir(dir, e), ec);
    if (ec) return "cannot remove \"" + staging_dir(dir, e).string() + "\": " + ec.message();
    if (discarded) discarded->push_back(e);
  }
  fs::remove(staging_root(dir), ec);  // only when empty
  return {};
}

}  // namespace

std::string discard_staged_epochs(const std::string& dir, uint64_t newer_than,
                                  std::vector<uint64_t>* discarded) {
  return discard_staged_where(dir, [&](uint64_t e) { return e > newer_than; }, discarded);
}

std::string discard_stale_staged_epochs(const std::string& dir, uint64_t up_to,
                                        const std::set<uint64_t>& keep,
                                        std::vector<uint64_t>* discarded) {
  return discard_staged_where(
      dir, [&](uint64_t e) { return e <= up_to && !keep.contains(e); }, discarded);
}

std::vector<std::string> staged_epoch_paths(const std::string& dir, uint64_t epoch,
                                            std::string_view tag_filter, std::string* error) {
  std::vector<std::string> paths;
  const fs::path sdir = staging_dir(dir, epoch);
  for (std::string& n : staged_epoch_files(dir, epoch, error)) {
    if (tag_filter.empty() || carries_tag(n, tag_filter)) paths.push_back((sdir / n).string());
  }
  return paths;
}

std::string publish_staged_files(const std::vector<std::string>& staged_paths, bool sync) {
  std::vector<fs::path> out_dirs;  // each once, in first-seen order
  std::vector<fs::path> epoch_dirs;
  bool first = true;
  for (const std::string& p : staged_paths) {
    const fs::path staged(p);
    const fs::path edir = staged.parent_path();
    const fs::path root = edir.parent_path();
    const std::string name = staged.filename().string();
    if (name.empty() || name.starts_with(".") || !is_epoch_dir_name(edir.filename().string()) ||
        root.filename() != "_staging") {
      return "cannot publish \"" + p + "\": not a staged file (<dir>/_staging/<epoch>/<name>)";
    }
    const fs::path out = root.has_parent_path() ? root.parent_path() : fs::path(".");
    const fs::path target = out / name;
    std::error_code ec;
    if (fs::exists(staged, ec)) {
      fs::rename(staged, target, ec);
      if (ec) return "cannot publish \"" + p + "\" as \"" + target.string() + "\": " + ec.message();
      if (first) crash_point("publish");  // between two renames of one publish
      first = false;
    } else if (ec || !fs::exists(target, ec)) {
      return "cannot publish \"" + p +
             "\": " + (ec ? ec.message() : "neither it nor \"" + target.string() + "\" exists");
    }
    if (std::find(out_dirs.begin(), out_dirs.end(), out) == out_dirs.end()) out_dirs.push_back(out);
    if (std::find(epoch_dirs.begin(), epoch_dirs.end(), edir) == epoch_dirs.end())
      epoch_dirs.push_back(edir);
  }
  if (sync) {
    for (const fs::path& d : out_dirs)
      if (auto err = sync_directory(d.string()); !err.empty()) return err;
  }
  for (const fs::path& d : epoch_dirs) {
    std::error_code ec;
    fs::remove(d, ec);                // only when empty: other workers' files stay staged
    fs::remove(d.parent_path(), ec);  // _staging, only when empty
  }
  return {};
}

std::string check_name_tag(std::string_view tag) {
  constexpr size_t max_tag = 80;
  const bool ok =
      !tag.empty() && tag.size() <= max_tag && std::all_of(tag.begin(), tag.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
      });
  if (ok) return {};
  return "invalid name tag \"" + std::string(tag.substr(0, max_tag)) +
         (tag.size() > max_tag ? "..." : "") + "\": 1 to 80 characters of A-Z a-z 0-9 _ . -";
}

std::string tagged_file_name(std::string_view name, std::string_view tag) {
  if (tag.empty()) return std::string(name);
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return std::string(name) + "-" + std::string(tag);
  return std::string(name.substr(0, dot)) + "-" + std::string(tag) + std::string(name.substr(dot));
}

}  // namespace eddy
