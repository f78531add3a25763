#include "worker/sink/epoch_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iterator>
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

/// A sub-folder of an output directory that staged names may use: not hidden ('.'), not
/// internal ('_', like `_staging`).
bool is_sub_folder_name(std::string_view n) {
  return !n.empty() && n[0] != '.' && n[0] != '_' && n != "..";
}

/// `name` is "<file>" or "<sub-folder>/<file>": "" or why not.
std::string check_staged_name(std::string_view name) {
  const size_t slash = name.find('/');
  const std::string_view file = slash == std::string_view::npos ? name : name.substr(slash + 1);
  const bool ok = !file.empty() && file[0] != '.' && file.find('/') == std::string_view::npos &&
                  (slash == std::string_view::npos || is_sub_folder_name(name.substr(0, slash)));
  if (ok) return {};
  return "invalid staged file name \"" + std::string(name) +
         "\": a file name or <sub-folder>/<file name>, neither starting with '.' (nor the "
         "sub-folder with '_')";
}

/// `name`'s stem (before the last '.') ends with "-<tag>"; a sub-folder before the file name
/// is ignored.
bool carries_tag(std::string_view name, std::string_view tag) {
  if (const size_t slash = name.rfind('/'); slash != std::string_view::npos)
    name = name.substr(slash + 1);
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
  if (auto err = check_staged_name(name); !err.empty()) return err;
  // Temporary name + rename inside the epoch's staging directory (or its sub-folder), fsynced
  // when `sync`.
  const fs::path sdir = staging_dir(dir, epoch);
  const size_t slash = name.find('/');
  if (slash == std::string::npos) return write_file_atomically(sdir.string(), name, content, sync);
  const fs::path sub = sdir / name.substr(0, slash);
  std::error_code ec;
  const bool new_sub = !fs::exists(sub, ec);
  if (auto err = write_file_atomically(sub.string(), name.substr(slash + 1), content, sync);
      !err.empty())
    return err;
  // The sub-folder's own entry is durable too.
  return sync && new_sub ? sync_directory(sdir.string()) : std::string();
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
    if (n.starts_with(".")) continue;  // a half-written temporary
    std::error_code tec;
    if (!e.is_directory(tec)) {
      names.push_back(std::move(n));
      continue;
    }
    if (!is_sub_folder_name(n)) continue;  // not ours
    std::error_code sec;
    for (const auto& f : fs::directory_iterator(e.path(), sec)) {
      const std::string fn = f.path().filename().string();
      if (!fn.starts_with(".")) names.push_back(n + "/" + fn);
    }
    if (sec && error->empty())
      *error = "cannot list \"" + e.path().string() + "\": " + sec.message();
  }
  if (ec) *error = "cannot list \"" + sdir.string() + "\": " + ec.message();
  std::sort(names.begin(), names.end());
  return names;
}

std::string publish_epoch_files(const std::string& dir, uint64_t epoch, bool sync) {
  std::error_code ec;
  const fs::path sdir = staging_dir(dir, epoch);
  if (!fs::exists(sdir, ec)) return {};
  std::string err;
  const std::vector<std::string> names = staged_epoch_files(dir, epoch, &err);  // sorted
  if (!err.empty()) return err;
  std::vector<std::string> synced{dir};  // D, then each sub-folder renamed into
  bool first = true;
  for (const std::string& n : names) {
    const fs::path target = fs::path(dir) / n;
    if (const size_t slash = n.find('/'); slash != std::string::npos) {
      const fs::path sub = fs::path(dir) / n.substr(0, slash);
      fs::create_directories(sub, ec);
      if (ec) return "cannot create directory \"" + sub.string() + "\": " + ec.message();
      if (std::find(synced.begin(), synced.end(), sub.string()) == synced.end())
        synced.push_back(sub.string());
    }
    fs::rename(sdir / n, target, ec);
    if (ec)
      return "cannot publish \"" + (sdir / n).string() + "\" as \"" + target.string() +
             "\": " + ec.message();
    if (first) crash_point("publish");  // between two renames of one sink commit
    first = false;
  }
  if (sync) {
    // Sub-folders first, then D (which holds their entries).
    for (auto it = synced.rbegin(); it != synced.rend(); ++it)
      if (auto e = sync_directory(*it); !e.empty()) return e;
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
  return discard_staged_where(
      dir, [&](uint64_t e) { return e > newer_than; }, discarded);
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

namespace {

/// `name` (a sub-folder before it ignored) is "<stem>-<epoch>[-<5 digits>]-<tag>.<ext>", the
/// epoch as epoch_file_stem writes it.
bool written_by(std::string_view name, uint64_t epoch, std::string_view tag) {
  if (const size_t slash = name.rfind('/'); slash != std::string_view::npos)
    name = name.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string_view stem = name.substr(0, dot);
  if (!carries_tag(stem, tag)) return false;
  stem.remove_suffix(tag.size() + 1);
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (stem.size() > 6 && stem[stem.size() - 6] == '-' && digits(stem.substr(stem.size() - 5)))
    stem.remove_suffix(6);                           // the part number
  const std::string e = epoch_file_stem("", epoch);  // "-<epoch, 10 digits at least>"
  return stem.size() > e.size() && stem.ends_with(e);
}

}  // namespace

std::vector<std::string> staged_paths_of_writer(const std::string& dir, uint64_t after,
                                                uint64_t up_to, std::string_view tag,
                                                std::string* error) {
  error->clear();
  std::vector<std::string> paths;
  std::vector<uint64_t> epochs;
  if (std::string err = list_staged_epochs(dir, &epochs); !err.empty()) {
    *error = err;
    return paths;
  }
  for (uint64_t e : epochs) {
    if (e <= after || e > up_to) continue;
    std::string err;
    const fs::path sdir = staging_dir(dir, e);
    for (const std::string& n : staged_epoch_files(dir, e, &err))
      if (written_by(n, e, tag)) paths.push_back((sdir / n).string());
    if (!err.empty() && error->empty()) *error = err;
  }
  return paths;
}

std::optional<uint64_t> staged_path_epoch(const std::string& path) {
  const fs::path staged(path);
  const std::string name = staged.filename().string();
  if (name.empty() || name.starts_with(".")) return std::nullopt;
  fs::path edir = staged.parent_path();
  if (!is_epoch_dir_name(edir.filename().string())) edir = edir.parent_path();  // a sub-folder
  if (!is_epoch_dir_name(edir.filename().string()) || edir.parent_path().filename() != "_staging")
    return std::nullopt;
  return std::stoull(edir.filename().string());
}

std::string publish_staged_files(const std::vector<std::string>& staged_paths, bool sync) {
  std::vector<fs::path> out_dirs;    // each once, in first-seen order; sub-folders before D
  std::vector<fs::path> empty_dirs;  // staging directories to remove when left empty
  auto once = [](std::vector<fs::path>& v, const fs::path& d) {
    if (std::find(v.begin(), v.end(), d) == v.end()) v.push_back(d);
  };
  bool first = true;
  for (const std::string& p : staged_paths) {
    const fs::path staged(p);
    const std::string name = staged.filename().string();
    // <D>/_staging/<epoch>/<name>, or <D>/_staging/<epoch>/<sub-folder>/<name>
    fs::path edir = staged.parent_path();
    std::string sub;
    if (!(is_epoch_dir_name(edir.filename().string()) &&
          edir.parent_path().filename() == "_staging")) {
      sub = edir.filename().string();
      edir = edir.parent_path();
    }
    const fs::path root = edir.parent_path();
    if (name.empty() || name.starts_with(".") || !is_epoch_dir_name(edir.filename().string()) ||
        root.filename() != "_staging" || (!sub.empty() && !is_sub_folder_name(sub))) {
      return "cannot publish \"" + p +
             "\": not a staged file (<dir>/_staging/<epoch>/[<sub-folder>/]<name>)";
    }
    const fs::path base = root.has_parent_path() ? root.parent_path() : fs::path(".");
    const fs::path out = sub.empty() ? base : base / sub;
    const fs::path target = out / name;
    std::error_code ec;
    if (fs::exists(staged, ec)) {
      if (!sub.empty()) {
        fs::create_directories(out, ec);
        if (ec) return "cannot create directory \"" + out.string() + "\": " + ec.message();
      }
      fs::rename(staged, target, ec);
      if (ec) return "cannot publish \"" + p + "\" as \"" + target.string() + "\": " + ec.message();
      if (first) crash_point("publish");  // between two renames of one publish
      first = false;
    } else if (ec || !fs::exists(target, ec)) {
      return "cannot publish \"" + p +
             "\": " + (ec ? ec.message() : "neither it nor \"" + target.string() + "\" exists");
    }
    once(out_dirs, out);
    if (!sub.empty()) {
      once(out_dirs, base);  // holds the sub-folder's entry
      once(empty_dirs, staged.parent_path());
    }
    once(empty_dirs, edir);
    once(empty_dirs, root);
  }
  if (sync) {
    // A sub-folder before the directory holding it.
    std::stable_sort(out_dirs.begin(), out_dirs.end(), [](const fs::path& a, const fs::path& b) {
      return std::distance(a.begin(), a.end()) > std::distance(b.begin(), b.end());
    });
    for (const fs::path& d : out_dirs)
      if (auto err = sync_directory(d.string()); !err.empty()) return err;
  }
  // Deepest first, each only when empty: other workers' files stay staged.
  std::stable_sort(empty_dirs.begin(), empty_dirs.end(), [](const fs::path& a, const fs::path& b) {
    return std::distance(a.begin(), a.end()) > std::distance(b.begin(), b.end());
  });
  for (const fs::path& d : empty_dirs) {
    std::error_code ec;
    fs::remove(d, ec);
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
