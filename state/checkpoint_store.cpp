#include "state/checkpoint_store.hpp"
#include "state/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace eddy {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::string_view manifest_name = "manifest.json";
constexpr std::string_view latest_name = "LATEST";
constexpr std::string_view tmp_suffix = ".tmp";
/// Written into a task DB directory restored from (or first checkpointed into) a store.
constexpr std::string_view lineage_file = "EDDY-CHECKPOINT-LINEAGE";
constexpr int manifest_format = 1;

using file_io::crc32c_hasher;
using file_io::errno_text;
using file_io::fd_guard;
using file_io::fsync_dir;
using file_io::read_small_file;
using file_io::write_atomically;

/// Reads `src` computing its size and CRC32C; when `dst` is given, writes a copy there
/// (truncating) and fsyncs it when `sync`. Returns "" or the error.
std::string copy_or_hash(const fs::path& src, const fs::path* dst, bool sync, std::uint64_t* size,
                         std::string* crc) {
  fd_guard in{::open(src.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return "open " + src.string() + ": " + errno_text();
  fd_guard out;
  if (dst) {
    out.fd = ::open(dst->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out.fd < 0) return "create " + dst->string() + ": " + errno_text();
  }
  crc32c_hasher hasher;
  std::vector<char> buf(1 << 20);
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "read " + src.string() + ": " + errno_text();
    if (n == 0) break;
    hasher.update(buf.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
    if (dst) {
      const std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
      if (std::string e = file_io::write_all(out.fd, chunk, *dst); !e.empty()) return e;
    }
  }
  if (dst) {
    if (sync && ::fsync(out.fd) != 0) return "fsync " + dst->string() + ": " + errno_text();
    if (std::string e = out.close(*dst); !e.empty()) return e;
  }
  *size = total;
  *crc = hasher.finish();
  return {};
}

std::string fs_error(std::string_view what, const fs::path& p, const std::error_code& ec) {
  return std::string(what) + " " + p.string() + ": " + ec.message();
}

std::string random_lineage() {
  std::random_device rd;
  std::string out;
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    std::uint32_t v = rd();
    for (int j = 0; j < 4; ++j) {
      out += digits[(v >> (j * 8 + 4)) & 15];
      out += digits[(v >> (j * 8)) & 15];
    }
  }
  return out;
}

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_shared_file(const std::string& name) {
  // Immutable once written: table files and blob files.
  auto ends_with = [&](std::string_view s) { return name.ends_with(s); };
  return ends_with(".sst") || ends_with(".blob");
}

// ---- manifest.json (Boost.JSON) ------------------------------------------------------------
//
// Layout (format 1): one top-level member per line, one file entry per line, so that a manifest
// stays readable and diffable. Strings are written byte for byte (bytes >= 0x80 are not
// validated), and read back the same way.

std::string manifest_to_json(const epoch_info& m) {
  json::object metadata;
  for (const auto& [k, v] : m.metadata) metadata[k] = v;
  std::string out = "{\n  \"format\": " + std::to_string(manifest_format) +
                    ",\n  \"epoch\": " + std::to_string(m.epoch) +
                    ",\n  \"created_unix_ms\": " + std::to_string(m.created_unix_ms) +
                    ",\n  \"lineage\": " + json::serialize(json::string(m.lineage)) +
                    ",\n  \"metadata\": " + json::serialize(metadata) + ",\n  \"files\": [";
  bool first = true;
  for (const auto& f : m.files) {
    json::object o;
    o["name"] = f.name;
    o["path"] = f.path;
    o["size"] = f.size;
    o["crc32c"] = f.crc32c;
    o["added"] = f.added;
    out += first ? "\n    " : ",\n    ";
    first = false;
    out += json::serialize(o);
  }
  out += first ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

template <class Int>
bool to_int(const json::value* v, Int* out) {
  if (!v || !(v->is_int64() || v->is_uint64())) return false;
  std::error_code ec;
  *out = v->to_number<Int>(ec);
  return !ec;
}

void add_sizes(epoch_info* m) {
  m->file_count = m->files.size();
  m->total_bytes = m->new_bytes = m->shared_bytes = 0;
  for (const auto& f : m->files) {
    m->total_bytes += f.size;
    (f.added ? m->new_bytes : m->shared_bytes) += f.size;
  }
}

/// A manifest path is relative, without "..", and stays inside the checkpoint dir.
bool safe_relative(const std::string& p) {
  if (p.empty() || p.front() == '/') return false;
  for (const auto& part : fs::path(p))
    if (part == "..") return false;
  return true;
}

bool manifest_from_json(std::string_view text, epoch_info* m, std::string* error) {
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;  // metadata round-trips byte for byte
  std::error_code ec;
  const json::value parsed = json::parse(text, ec, {}, opts);
  if (ec) {
    *error = "invalid JSON: " + ec.message();
    return false;
  }
  const json::object* root = parsed.if_object();
  int format = 0;
  if (!root || !to_int(root->if_contains("format"), &format)) {
    *error = "not a manifest";
    return false;
  }
  if (format != manifest_format) {
    *error = "unsupported manifest format " + std::to_string(format);
    return false;
  }
  const json::value* lineage = root->if_contains("lineage");
  const json::value* metadata = root->if_contains("metadata");
  const json::value* files = root->if_contains("files");
  if (!to_int(root->if_contains("epoch"), &m->epoch) ||
      !to_int(root->if_contains("created_unix_ms"), &m->created_unix_ms) || !lineage ||
      !lineage->is_string() || !metadata || !metadata->is_object() || !files ||
      !files->is_array()) {
    *error = "manifest lacks epoch, created_unix_ms, lineage, metadata or files";
    return false;
  }
  m->lineage = std::string(lineage->as_string());
  for (const auto& [k, v] : metadata->as_object()) {
    if (!v.is_string()) {
      *error = "metadata value of " + std::string(k) + " is not a string";
      return false;
    }
    m->metadata[std::string(k)] = std::string(v.as_string());
  }
  for (const auto& item : files->as_array()) {
    const json::object* o = item.if_object();
    checkpoint_file f;
    const json::value* name = o ? o->if_contains("name") : nullptr;
    const json::value* path = o ? o->if_contains("path") : nullptr;
    const json::value* crc = o ? o->if_contains("crc32c") : nullptr;
    const json::value* added = o ? o->if_contains("added") : nullptr;
    if (!name || !name->is_string() || !path || !path->is_string() || !crc || !crc->is_string() ||
        !to_int(o->if_contains("size"), &f.size) ||
        !safe_relative(std::string(path->as_string())) ||
        name->as_string().find('/') != json::string::npos) {
      *error = "malformed file entry";
      return false;
    }
    f.name = std::string(name->as_string());
    f.path = std::string(path->as_string());
    f.crc32c = std::string(crc->as_string());
    f.added = added && added->is_bool() && added->as_bool();
    m->files.push_back(std::move(f));
  }
  add_sizes(m);
  return true;
}

// ---- the directory of epochs ---------------------------------------------------------------

struct epoch_entry {
  std::uint64_t epoch = 0;
  bool complete = false;  // manifest.json exists
};

/// Epoch directories under `epochs/`, oldest first; names that are not numbers are ignored.
std::vector<epoch_entry> scan_epochs(const fs::path& epochs_dir, std::string* error) {
  std::vector<epoch_entry> out;
  std::error_code ec;
  fs::directory_iterator it(epochs_dir, ec);
  if (ec) {
    *error = fs_error("list", epochs_dir, ec);
    return out;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::uint64_t e = 0;
    auto [p, perr] = std::from_chars(name.data(), name.data() + name.size(), e);
    if (perr != std::errc{} || p != name.data() + name.size()) continue;
    std::error_code ec2;
    out.push_back({e, fs::exists(it->path() / manifest_name, ec2)});
  }
  if (ec) *error = fs_error("list", epochs_dir, ec);
  std::sort(out.begin(), out.end(),
            [](const epoch_entry& a, const epoch_entry& b) { return a.epoch < b.epoch; });
  return out;
}

std::string epoch_rel(std::uint64_t e) {
  return "epochs/" + std::to_string(e);
}

bool load_manifest(const fs::path& root, std::uint64_t e, epoch_info* m, std::string* error) {
  fs::path path = root / epoch_rel(e) / manifest_name;
  auto text = read_small_file(path, error);
  if (!text) return false;
  if (!manifest_from_json(*text, m, error)) {
    *error = epoch_rel(e) + "/" + std::string(manifest_name) + ": " + *error;
    return false;
  }
  if (m->epoch != e) {
    *error = epoch_rel(e) + "/manifest.json: records epoch " + std::to_string(m->epoch);
    return false;
  }
  return true;
}

std::string problem(std::uint64_t e, std::string_view what) {
  return "checkpoint " + std::to_string(e) + ": " + std::string(what);
}

/// Checks one recorded file: "" when intact, else what is wrong. When `copy_to` is given, the file
/// is copied there while it is checked (restore reads each file once).
std::string check_file(const fs::path& root, const checkpoint_file& f, const fs::path* copy_to,
                       bool sync) {
  fs::path src = root / f.path;
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0) {
    return f.path + ": " + (errno == ENOENT ? std::string("missing") : errno_text());
  }
  if (static_cast<std::uint64_t>(st.st_size) != f.size) {
    return f.path + ": size " + std::to_string(st.st_size) + ", expected " + std::to_string(f.size);
  }
  std::uint64_t size = 0;
  std::string crc;
  std::string err = copy_or_hash(src, copy_to, sync, &size, &crc);
  if (!err.empty()) return f.path + ": " + err;
  if (size != f.size) {
    return f.path + ": size " + std::to_string(size) + ", expected " + std::to_string(f.size);
  }
  if (crc != f.crc32c) return f.path + ": checksum mismatch";
  return {};
}

}  // namespace

// ---- checkpoint_store ----------------------------------------------------------------------

checkpoint_store::checkpoint_store(checkpoint_options options) : options_(std::move(options)) {
  if (options_.retain < 1) options_.retain = 1;
}

std::unique_ptr<checkpoint_store> checkpoint_store::open(checkpoint_options options,
                                                         store_status* status) {
  *status = {};
  if (options.dir.empty()) {
    *status = {"checkpoint dir is not set"};
    return nullptr;
  }
  fs::path root(options.dir);
  for (const fs::path& d : {root, root / "sst", root / "epochs"}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) {
      *status = {fs_error("create", d, ec)};
      return nullptr;
    }
  }
  return std::unique_ptr<checkpoint_store>(new checkpoint_store(std::move(options)));
}

store_status checkpoint_store::commit_epoch(kv_store& db, std::uint64_t epoch,
                                            const checkpoint_metadata& metadata,
                                            commit_report* report) {
  const fs::path root(options_.dir);
  const bool sync = options_.sync;
  std::string err;
  std::vector<epoch_entry> epochs = scan_epochs(root / "epochs", &err);
  if (!err.empty()) return {err};

  // What the store already holds: (name, size) -> stored file, from every readable manifest.
  std::map<std::pair<std::string, std::uint64_t>, checkpoint_file> stored;
  std::string store_lineage;
  bool have_complete = false;
  for (auto it = epochs.rbegin(); it != epochs.rend(); ++it) {
    if (!it->complete) continue;
    if (!have_complete && epoch <= it->epoch) {
      return {"checkpoint " + std::to_string(epoch) + ": not newer than the complete epoch " +
              std::to_string(it->epoch) + " in " + options_.dir};
    }
    have_complete = true;
    epoch_info m;
    std::string merr;
    if (!load_manifest(root, it->epoch, &m, &merr)) continue;
    if (store_lineage.empty()) store_lineage = m.lineage;
    if (m.lineage != store_lineage) continue;
    for (auto& f : m.files)
      if (is_shared_file(f.name)) stored.emplace(std::pair{f.name, f.size}, f);
  }
  if (have_complete && store_lineage.empty()) {
    return {"checkpoint " + std::to_string(epoch) + ": " + options_.dir +
            " holds epochs but no readable manifest; reset the checkpoint dir"};
  }

  // The task DB must descend from these checkpoints, or SST names could collide.
  const fs::path db_dir(db.path());
  std::string db_lineage;
  {
    std::string ignored;
    if (auto text = read_small_file(db_dir / lineage_file, &ignored)) db_lineage = *text;
  }
  if (!store_lineage.empty() && db_lineage != store_lineage) {
    return {"checkpoint " + std::to_string(epoch) + ": task DB " + db.path() +
            " was not restored from " + options_.dir +
            " (lineage differs); restore it first or reset the checkpoint dir"};
  }
  const std::string lineage = !store_lineage.empty()
                                  ? store_lineage
                                  : (!db_lineage.empty() ? db_lineage : random_lineage());

  // 1. A RocksDB checkpoint next to the task DB (same file system: SSTs are hard-linked).
  fs::path snap = db_dir;
  snap += ".checkpoint-tmp";
  std::error_code ec;
  fs::remove_all(snap, ec);
  if (ec) return {fs_error("remove", snap, ec)};
  if (store_status s = db.checkpoint_to(snap.string()); !s.ok()) return s;
  struct snap_cleanup {
    fs::path p;
    ~snap_cleanup() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } cleanup{snap};

  // 2. A fresh epoch directory (a leftover of a crashed commit of the same number is replaced).
  const fs::path epoch_dir = root / epoch_rel(epoch);
  fs::remove_all(epoch_dir, ec);
  if (ec) return {fs_error("remove", epoch_dir, ec)};
  fs::create_directories(epoch_dir / "db", ec);
  if (ec) return {fs_error("create", epoch_dir / "db", ec)};

  epoch_info info;
  info.epoch = epoch;
  info.created_unix_ms = now_unix_ms();
  info.lineage = lineage;
  info.metadata = metadata;

  std::vector<fs::path> snap_files;
  for (fs::directory_iterator it(snap, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file()) snap_files.push_back(it->path());
  }
  if (ec) return {fs_error("list", snap, ec)};
  std::sort(snap_files.begin(), snap_files.end());

  // 3. Shared files go to sst/ unless already there; small files are copied per epoch.
  bool wrote_shared = false;
  for (const auto& src : snap_files) {
    checkpoint_file f;
    f.name = src.filename().string();
    std::uint64_t size = fs::file_size(src, ec);
    if (ec) return {fs_error("stat", src, ec)};
    if (is_shared_file(f.name)) {
      f.path = "sst/" + f.name;
      auto known = stored.find({f.name, size});
      if (known != stored.end()) {
        // Reuse it when the stored copy is still there with its size (checked on verify).
        std::error_code sec;
        if (known->second.path == f.path && fs::file_size(root / f.path, sec) == size && !sec) {
          f = known->second;
          f.added = false;
          info.files.push_back(std::move(f));
          continue;
        }
      }
      fs::path tmp = root / f.path;
      tmp += tmp_suffix;
      if (std::string e = copy_or_hash(src, &tmp, sync, &f.size, &f.crc32c); !e.empty()) {
        return {"checkpoint " + std::to_string(epoch) + ": " + e};
      }
      if (::rename(tmp.c_str(), (root / f.path).c_str()) != 0) {
        return {"checkpoint " + std::to_string(epoch) + ": rename " + tmp.string() + ": " +
                errno_text()};
      }
      wrote_shared = true;
    } else {
      f.path = epoch_rel(epoch) + "/db/" + f.name;
      fs::path dst = root / f.path;
      if (std::string e = copy_or_hash(src, &dst, sync, &f.size, &f.crc32c); !e.empty()) {
        return {"checkpoint " + std::to_string(epoch) + ": " + e};
      }
    }
    f.added = true;
    info.files.push_back(std::move(f));
  }
  add_sizes(&info);

  // 4. Everything the manifest names is durable before the manifest is.
  if (sync) {
    for (const fs::path& d : {root / "sst", epoch_dir / "db", epoch_dir, root / "epochs"}) {
      if (d == root / "sst" && !wrote_shared) continue;
      if (std::string e = fsync_dir(d); !e.empty()) return {e};
    }
  }

  // 5. The commit point: manifest.json renamed into place.
  if (std::string e = write_atomically(epoch_dir / manifest_name, manifest_to_json(info), sync);
      !e.empty()) {
    return {"checkpoint " + std::to_string(epoch) + ": " + e};
  }

  commit_report local;
  commit_report& out = report ? *report : local;
  out = {};
  // After the commit point nothing fails the commit: problems become warnings.
  if (std::string e = write_atomically(root / latest_name, std::to_string(epoch) + "\n", sync);
      !e.empty()) {
    out.warnings.push_back(problem(epoch, e));
  }
  if (db_lineage.empty()) {
    if (std::string e = write_atomically(db_dir / lineage_file, lineage, sync); !e.empty()) {
      out.warnings.push_back(problem(epoch, e));
    }
  }
  auto retention = apply_retention();
  out.warnings.insert(out.warnings.end(), retention.begin(), retention.end());
  out.info = std::move(info);
  return {};
}

std::vector<std::string> checkpoint_store::apply_retention() {
  std::vector<std::string> warnings;
  const fs::path root(options_.dir);
  std::string err;
  std::vector<epoch_entry> epochs = scan_epochs(root / "epochs", &err);
  if (!err.empty()) return {err};
  std::size_t complete = 0;
  for (const auto& e : epochs) complete += e.complete ? 1 : 0;

  std::error_code ec;
  std::vector<std::uint64_t> kept;
  for (const auto& e : epochs) {
    fs::path dir = root / epoch_rel(e.epoch);
    if (e.complete && complete > options_.retain) {
      // Un-complete it first (one unlink), so a crash mid-delete leaves no half epoch behind.
      --complete;
      fs::remove(dir / manifest_name, ec);
      if (ec) {
        warnings.push_back(problem(e.epoch, fs_error("remove", dir / manifest_name, ec)));
        continue;
      }
    } else if (e.complete) {
      kept.push_back(e.epoch);
      continue;
    }
    // Dropped by retention, or an incomplete leftover of a crashed commit (one writer per dir).
    fs::remove_all(dir, ec);
    if (ec) warnings.push_back(problem(e.epoch, fs_error("remove", dir, ec)));
  }
  if (options_.sync) {
    if (std::string e = fsync_dir(root / "epochs"); !e.empty()) warnings.push_back(e);
  }

  // Files in sst/ that no kept manifest references (or temp leftovers) go.
  std::set<std::string> referenced;
  for (std::uint64_t e : kept) {
    epoch_info m;
    std::string merr;
    if (!load_manifest(root, e, &m, &merr)) {
      warnings.push_back(problem(e, merr + " (unreferenced SST files kept)"));
      return warnings;
    }
    for (const auto& f : m.files) referenced.insert(f.path);
  }
  fs::path sst = root / "sst";
  for (fs::directory_iterator it(sst, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string rel = "sst/" + it->path().filename().string();
    if (referenced.count(rel)) continue;
    std::error_code rec;
    fs::remove(it->path(), rec);
    if (rec) warnings.push_back(fs_error("remove", it->path(), rec));
  }
  if (ec) warnings.push_back(fs_error("list", sst, ec));
  return warnings;
}

std::optional<restore_result> checkpoint_store::restore_latest(const std::string& target_db_dir,
                                                               std::vector<std::string>* warnings,
                                                               store_status* status) {
  *status = {};
  const fs::path root(options_.dir);
  std::string err;
  std::vector<epoch_entry> epochs = scan_epochs(root / "epochs", &err);
  if (!err.empty()) {
    *status = {err};
    return std::nullopt;
  }
  if (epochs.empty()) return std::nullopt;  // nothing was ever committed: a fresh start
  if (std::none_of(epochs.begin(), epochs.end(), [](const epoch_entry& x) { return x.complete; })) {
    // Only epochs that never completed (the process died during its first checkpoints): nothing
    // was committed, so nothing was published either: a fresh start is exact, not a loss.
    for (auto it = epochs.rbegin(); it != epochs.rend(); ++it)
      warnings->push_back(problem(it->epoch, "incomplete (no manifest.json), skipped"));
    return std::nullopt;
  }

  const fs::path target(target_db_dir);
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_empty(target, ec)) {
    *status = {"restore target " + target_db_dir + " exists and is not empty"};
    return std::nullopt;
  }
  fs::path tmp = target;
  tmp += ".restore-tmp";

  for (auto it = epochs.rbegin(); it != epochs.rend(); ++it) {
    const std::uint64_t e = it->epoch;
    if (!it->complete) {
      warnings->push_back(problem(e, "incomplete (no manifest.json), skipped"));
      continue;
    }
    epoch_info m;
    if (!load_manifest(root, e, &m, &err)) {
      warnings->push_back(problem(e, err));
      continue;
    }
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) {
      *status = {fs_error("create", tmp, ec)};
      return std::nullopt;
    }
    std::string bad;
    for (const auto& f : m.files) {
      fs::path dst = tmp / f.name;
      bad = check_file(root, f, &dst, options_.sync);
      if (!bad.empty()) break;
    }
    if (bad.empty() && !m.lineage.empty()) {
      bad = write_atomically(tmp / lineage_file, m.lineage, options_.sync);
      if (!bad.empty()) {
        *status = {bad};
        fs::remove_all(tmp, ec);
        return std::nullopt;
      }
    }
    if (!bad.empty()) {
      warnings->push_back(problem(e, bad));
      fs::remove_all(tmp, ec);
      continue;
    }
    if (options_.sync) {
      if (std::string s = fsync_dir(tmp); !s.empty()) {
        *status = {s};
        return std::nullopt;
      }
    }
    fs::remove(target, ec);  // an empty directory, if any
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      *status = {"rename " + tmp.string() + " to " + target_db_dir + ": " + errno_text()};
      return std::nullopt;
    }
    if (options_.sync) {
      fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
      if (std::string s = fsync_dir(parent); !s.empty()) warnings->push_back(s);
    }
    return restore_result{e, std::move(m.metadata)};
  }
  *status = {"no intact checkpoint in " + options_.dir + " (" + std::to_string(epochs.size()) +
             " epochs, all damaged or incomplete); start over only with --reset"};
  return std::nullopt;
}

std::vector<std::uint64_t> checkpoint_store::list(store_status* status) const {
  std::string err;
  std::vector<epoch_entry> epochs = scan_epochs(fs::path(options_.dir) / "epochs", &err);
  *status = {err};
  std::vector<std::uint64_t> out;
  for (const auto& e : epochs)
    if (e.complete) out.push_back(e.epoch);
  return out;
}

std::optional<epoch_info> checkpoint_store::inspect(std::uint64_t epoch,
                                                    store_status* status) const {
  epoch_info m;
  std::string err;
  if (!load_manifest(fs::path(options_.dir), epoch, &m, &err)) {
    *status = {problem(epoch, err)};
    return std::nullopt;
  }
  *status = {};
  return m;
}

std::vector<std::string> checkpoint_store::verify(store_status* status) const {
  const fs::path root(options_.dir);
  std::vector<std::string> problems;
  std::string err;
  std::vector<epoch_entry> epochs = scan_epochs(root / "epochs", &err);
  *status = {err};
  if (!err.empty()) return problems;
  // A file shared by several epochs is read once; its verdict is reported for each epoch.
  std::unordered_map<std::string, std::string> verdicts;
  for (const auto& e : epochs) {
    if (!e.complete) continue;
    epoch_info m;
    if (!load_manifest(root, e.epoch, &m, &err)) {
      problems.push_back(problem(e.epoch, err));
      continue;
    }
    for (const auto& f : m.files) {
      std::string key = f.path + "\n" + std::to_string(f.size) + "\n" + f.crc32c;
      auto it = verdicts.find(key);
      if (it == verdicts.end())
        it = verdicts.emplace(key, check_file(root, f, nullptr, false)).first;
      if (!it->second.empty()) problems.push_back(problem(e.epoch, it->second));
    }
  }
  return problems;
}

}  // namespace eddy
