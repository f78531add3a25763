#include "coordinator/cluster_manifest.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <system_error>

#include "state/file_io.hpp"

namespace eddy {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr size_t epoch_digits = 20;

fs::path epochs_dir(const fs::path& dir) {
  return dir / "cluster" / "epochs";
}

fs::path units_dir(const fs::path& dir) {
  return dir / "cluster" / "units";
}

/// The epoch of "<20 digits><suffix>", or nullopt for any other name.
std::optional<uint64_t> epoch_of(const std::string& name, std::string_view suffix) {
  if (name.size() != epoch_digits + suffix.size() || !name.ends_with(suffix)) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < epoch_digits; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

/// Creates `target` and any missing parents; with `sync`, fsyncs the parent of each directory
/// it created so the new entries are durable.
std::string ensure_directory(const fs::path& target, bool sync) {
  std::vector<fs::path> missing;
  for (fs::path p = target; !p.empty(); p = p.parent_path()) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) break;
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    std::error_code ec;
    fs::create_directory(*it, ec);
    if (ec && !fs::is_directory(*it)) return "create " + it->string() + ": " + ec.message();
    if (sync && it->has_parent_path())
      if (std::string e = file_io::fsync_dir(it->parent_path()); !e.empty()) return e;
  }
  return {};
}

json::object to_json(const cluster_manifest& m) {
  json::object units;
  for (const auto& [name, u] : m.units) {
    json::object o;
    o["owner"] = u.owner;
    if (is_task_unit(name)) {
      o["next_offset"] = u.next_offset;
      o["watermark"] = u.watermark;
      o["counters"] = json::object{{"in", u.counters.in},
                                   {"out", u.counters.out},
                                   {"filtered", u.counters.filtered},
                                   {"dead_lettered", u.counters.dead_lettered},
                                   {"late", u.counters.late}};
    }
    o["snapshot"] = u.snapshot;
    o["bytes"] = u.bytes;
    o["crc32c"] = u.crc32c;
    if (!u.deltas.empty()) {
      json::array deltas;
      for (const auto& d : u.deltas)
        deltas.push_back(json::object{{"path", d.path}, {"bytes", d.bytes}, {"crc32c", d.crc32c}});
      o["deltas"] = std::move(deltas);
    }
    units[name] = std::move(o);
  }
  json::array published;
  for (const auto& p : m.published) published.emplace_back(p);
  json::object doc;
  doc["epoch"] = m.epoch;
  doc["generation"] = m.generation;
  doc["created_unix_ms"] = m.created_unix_ms;
  doc["pipeline"] = m.pipeline;
  doc["units"] = std::move(units);
  doc["published"] = std::move(published);
  json::object compat;
  for (const auto& [k, v] : m.compat) compat[k] = v;
  doc["compat"] = std::move(compat);
  return doc;
}

// ---- reading: every missing or mistyped field is named ---------------------------------------

struct reader {
  std::string error;

  const json::value* field(const json::object& o, std::string_view key, std::string_view where) {
    const json::value* v = o.if_contains(key);
    if (!v && error.empty()) error = "no \"" + std::string(key) + "\"" + std::string(where);
    return v;
  }
  std::string str(const json::object& o, std::string_view key, std::string_view where = "") {
    const json::value* v = field(o, key, where);
    if (v && !v->is_string() && error.empty())
      error = "\"" + std::string(key) + "\"" + std::string(where) + " is not a string";
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  }
  int64_t i64(const json::object& o, std::string_view key, std::string_view where = "") {
    const json::value* v = field(o, key, where);
    if (v && v->is_int64()) return v->as_int64();
    if (v && v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX))
      return static_cast<int64_t>(v->as_uint64());
    if (v && error.empty())
      error = "\"" + std::string(key) + "\"" + std::string(where) + " is not an int64";
    return 0;
  }
  uint64_t u64(const json::object& o, std::string_view key, std::string_view where = "") {
    const json::value* v = field(o, key, where);
    if (v && v->is_uint64()) return v->as_uint64();
    if (v && v->is_int64() && v->as_int64() >= 0) return static_cast<uint64_t>(v->as_int64());
    if (v && error.empty())
      error = "\"" + std::string(key) + "\"" + std::string(where) + " is not an unsigned integer";
    return 0;
  }
  const json::object* obj(const json::object& o, std::string_view key,
                          std::string_view where = "") {
    const json::value* v = field(o, key, where);
    if (v && !v->is_object() && error.empty())
      error = "\"" + std::string(key) + "\"" + std::string(where) + " is not an object";
    return v ? v->if_object() : nullptr;
  }
};

std::optional<cluster_manifest> from_json(const json::value& v, std::string* error) {
  const json::object* doc = v.if_object();
  if (!doc) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  reader r;
  cluster_manifest m;
  m.epoch = r.u64(*doc, "epoch");
  m.generation = r.u64(*doc, "generation");
  m.created_unix_ms = r.i64(*doc, "created_unix_ms");
  m.pipeline = r.str(*doc, "pipeline");
  if (const json::object* units = r.obj(*doc, "units")) {
    for (const auto& kv : *units) {
      const std::string name(kv.key());
      const std::string where = " in unit " + name;
      const json::object* uo = kv.value().if_object();
      if (!uo) {
        if (r.error.empty()) r.error = "unit " + name + " is not an object";
        break;
      }
      cluster_manifest_unit u;
      u.owner = r.str(*uo, "owner", where);
      if (is_task_unit(name)) {
        u.next_offset = r.i64(*uo, "next_offset", where);
        u.watermark = r.i64(*uo, "watermark", where);
        if (const json::object* c = r.obj(*uo, "counters", where)) {
          u.counters.in = r.i64(*c, "in", where);
          u.counters.out = r.i64(*c, "out", where);
          u.counters.filtered = r.i64(*c, "filtered", where);
          u.counters.dead_lettered = r.i64(*c, "dead_lettered", where);
          u.counters.late = r.i64(*c, "late", where);
        }
      }
      u.snapshot = r.str(*uo, "snapshot", where);
      u.bytes = r.u64(*uo, "bytes", where);
      u.crc32c = r.str(*uo, "crc32c", where);
      if (const json::value* dv = uo->if_contains("deltas")) {
        const json::array* a = dv->if_array();
        if (!a && r.error.empty()) r.error = "\"deltas\"" + where + " is not an array";
        for (size_t i = 0; a && i < a->size(); ++i) {
          const json::object* d = (*a)[i].if_object();
          if (!d) {
            if (r.error.empty()) r.error = "\"deltas\"" + where + " holds a non-object";
            break;
          }
          const std::string dwhere = " in delta " + std::to_string(i) + where;
          unit_file_ref f;
          f.path = r.str(*d, "path", dwhere);
          f.bytes = r.u64(*d, "bytes", dwhere);
          f.crc32c = r.str(*d, "crc32c", dwhere);
          u.deltas.push_back(std::move(f));
        }
      }
      m.units.emplace(name, std::move(u));
    }
  }
  if (const json::value* pub = r.field(*doc, "published", "")) {
    const json::array* a = pub->if_array();
    if (!a && r.error.empty()) r.error = "\"published\" is not an array";
    for (size_t i = 0; a && i < a->size(); ++i) {
      if (!(*a)[i].is_string()) {
        if (r.error.empty()) r.error = "\"published\" holds a non-string";
        break;
      }
      m.published.emplace_back((*a)[i].as_string());
    }
  }
  if (const json::value* c = doc->if_contains("compat")) {  // absent before compat was kept
    const json::object* co = c->if_object();
    if (!co && r.error.empty()) r.error = "\"compat\" is not an object";
    for (const auto& kv : co ? *co : json::object{}) {
      if (!kv.value().is_string()) {
        if (r.error.empty()) r.error = "\"compat\" holds a non-string";
        break;
      }
      m.compat.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
    }
  }
  if (!r.error.empty()) {
    *error = r.error;
    return std::nullopt;
  }
  return m;
}

/// "<unit>/<file>": how retention matches snapshot files with the references in manifests.
std::string snapshot_key(const fs::path& p) {
  return (p.parent_path().filename() / p.filename()).string();
}

}  // namespace

fs::path unit_file_path(const fs::path& dir, const std::string& unit, uint64_t epoch,
                        uint64_t generation, unit_file_kind kind) {
  char name[64];
  std::snprintf(name, sizeof name, "%020llu-g%llu%s", static_cast<unsigned long long>(epoch),
                static_cast<unsigned long long>(generation),
                kind == unit_file_kind::snapshot ? ".snap" : ".delta");
  return units_dir(dir) / unit / name;
}

std::optional<uint64_t> unit_file_epoch(const std::string& file_name) {
  if (auto e = epoch_of(file_name, ".snap")) return e;  // older versions: no generation
  std::string_view rest =
      std::string_view(file_name).substr(std::min(file_name.size(), epoch_digits));
  std::string_view suffix;
  for (std::string_view s : {std::string_view(".snap"), std::string_view(".delta")})
    if (rest.ends_with(s)) suffix = s;
  if (suffix.empty() || !rest.starts_with("-g")) return std::nullopt;
  const std::string_view gen = rest.substr(2, rest.size() - 2 - suffix.size());
  if (gen.empty() || gen.size() > 20 ||
      !std::all_of(gen.begin(), gen.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return epoch_of(file_name.substr(0, epoch_digits) + ".snap", ".snap");
}

bool is_task_unit(const std::string& unit) {
  return unit.size() > 1 && unit[0] == 'p';
}

fs::path cluster_manifest_path(const fs::path& dir, uint64_t epoch) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.json", static_cast<unsigned long long>(epoch));
  return epochs_dir(dir) / name;
}

std::string write_cluster_manifest(const fs::path& dir, const cluster_manifest& m, bool sync) {
  if (std::string e = ensure_directory(epochs_dir(dir), sync); !e.empty()) return e;
  return file_io::write_atomically(cluster_manifest_path(dir, m.epoch),
                                   json::serialize(to_json(m)) + "\n", sync);
}

std::optional<cluster_manifest> read_cluster_manifest(const fs::path& dir, uint64_t epoch,
                                                      std::string* error) {
  const fs::path path = cluster_manifest_path(dir, epoch);
  std::string read_error;
  auto text = file_io::read_small_file(path, &read_error);
  if (!text) {
    *error = read_error;
    return std::nullopt;
  }
  boost::system::error_code ec;
  json::value v = json::parse(*text, ec);
  if (ec) {
    *error = path.string() + ": not JSON: " + ec.message();
    return std::nullopt;
  }
  std::string what;
  auto m = from_json(v, &what);
  if (!m) {
    *error = path.string() + ": malformed: " + what;
    return std::nullopt;
  }
  if (m->epoch != epoch) {
    *error = path.string() + ": holds epoch " + std::to_string(m->epoch);
    return std::nullopt;
  }
  return m;
}

std::vector<uint64_t> list_cluster_manifests(const fs::path& dir, std::string* error) {
  std::vector<uint64_t> out;
  const fs::path d = epochs_dir(dir);
  std::error_code ec;
  if (!fs::exists(d, ec)) return out;
  for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec))
    if (auto e = epoch_of(it->path().filename().string(), ".json")) out.push_back(*e);
  if (ec && error) *error = "list " + d.string() + ": " + ec.message();
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<cluster_manifest> latest_complete(const fs::path& dir,
                                                std::vector<std::string>* warnings) {
  std::string error;
  const auto epochs = list_cluster_manifests(dir, &error);
  if (!error.empty() && warnings) warnings->push_back(error);
  for (auto it = epochs.rbegin(); it != epochs.rend(); ++it) {
    std::string why;
    if (auto m = read_cluster_manifest(dir, *it, &why)) return m;
    if (warnings) warnings->push_back(why + "; skipped");
  }
  return std::nullopt;
}

cluster_retention prune_cluster_checkpoints(const fs::path& dir, size_t keep) {
  cluster_retention out;
  keep = std::max<size_t>(keep, 1);
  std::string error;
  const auto epochs = list_cluster_manifests(dir, &error);
  if (!error.empty()) {
    out.warnings.push_back(error);
    return out;
  }
  std::set<std::string> referenced;
  for (auto it = epochs.rbegin(); it != epochs.rend() && out.kept.size() < keep; ++it) {
    std::string why;
    auto m = read_cluster_manifest(dir, *it, &why);
    if (!m) {
      out.warnings.push_back(why);
      continue;
    }
    out.kept.insert(out.kept.begin(), *it);
    for (const auto& [_, u] : m->units) {
      if (!u.snapshot.empty()) referenced.insert(snapshot_key(u.snapshot));
      for (const auto& d : u.deltas) referenced.insert(snapshot_key(d.path));
    }
  }
  if (out.kept.empty()) return out;  // nothing parses: delete nothing
  const uint64_t oldest_kept = out.kept.front(), newest_kept = out.kept.back();
  for (uint64_t e : epochs) {
    if (e >= oldest_kept) break;
    std::error_code ec;
    const fs::path p = cluster_manifest_path(dir, e);
    if (fs::remove(p, ec))
      out.deleted_manifests.push_back(e);
    else if (ec)
      out.warnings.push_back("delete " + p.string() + ": " + ec.message());
  }
  const fs::path units = units_dir(dir);
  std::error_code ec;
  if (!fs::exists(units, ec)) return out;
  for (fs::directory_iterator u(units, ec), end; !ec && u != end; u.increment(ec)) {
    if (!u->is_directory()) continue;
    std::error_code fec;
    for (fs::directory_iterator f(u->path(), fec); !fec && f != end; f.increment(fec)) {
      const auto e = unit_file_epoch(f->path().filename().string());
      if (!e || *e > newest_kept || referenced.count(snapshot_key(f->path()))) continue;
      std::error_code rec;
      if (fs::remove(f->path(), rec))
        ++out.deleted_snapshots;
      else if (rec)
        out.warnings.push_back("delete " + f->path().string() + ": " + rec.message());
    }
    if (fec) out.warnings.push_back("list " + u->path().string() + ": " + fec.message());
  }
  if (ec) out.warnings.push_back("list " + units.string() + ": " + ec.message());
  return out;
}

fs::path unit_file_in(const fs::path& dir, const std::string& name) {
  const fs::path p(name);
  return p.is_relative() ? dir / p : p;
}

cluster_verification verify_cluster_checkpoints(const fs::path& dir) {
  cluster_verification out;
  std::string error;
  const auto epochs = list_cluster_manifests(dir, &error);
  if (!error.empty()) out.problems.push_back(error);
  std::set<std::string> checked;  // a file referenced by several manifests is read once
  auto check = [&](const std::string& name, uint64_t bytes, const std::string& crc) {
    const fs::path path = unit_file_in(dir, name);
    if (!checked.insert(path.string()).second) return;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) {
      out.problems.push_back(path.string() + ": " + ec.message());
      return;
    }
    if (size != bytes) {
      out.problems.push_back(path.string() + ": " + std::to_string(size) + " bytes, the manifest " +
                             "says " + std::to_string(bytes));
      return;
    }
    if (crc.empty()) return;
    std::ifstream in(path, std::ios::binary);
    file_io::crc32c_hasher h;
    std::string buf(1 << 20, '\0');
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      h.update(buf.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) {
      out.problems.push_back(path.string() + ": read failed");
      return;
    }
    if (const std::string got = h.finish(); got != crc)
      out.problems.push_back(path.string() + ": CRC32C " + got + ", the manifest says " + crc);
  };
  for (uint64_t e : epochs) {
    std::string why;
    auto m = read_cluster_manifest(dir, e, &why);
    if (!m) {
      out.problems.push_back(why);
      continue;
    }
    out.manifests.push_back(e);
    for (const auto& [_, u] : m->units) {
      if (!u.snapshot.empty()) check(u.snapshot, u.bytes, u.crc32c);
      for (const auto& d : u.deltas) check(d.path, d.bytes, d.crc32c);
    }
  }
  return out;
}

}  // namespace eddy
