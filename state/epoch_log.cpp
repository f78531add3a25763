#include "state/epoch_log.hpp"
#include "state/file_io.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace eddy {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using file_io::crc32c_hex;

fs::path log_dir(const std::string& dir) {
  return fs::path(dir) / "epoch-log";
}

std::string file_name(std::uint64_t epoch) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.json", static_cast<unsigned long long>(epoch));
  return name;
}

json::object to_json(const epoch_log_entry& e) {
  json::object offsets;
  for (const auto& [p, off] : e.end_offsets) offsets[std::to_string(p)] = off;
  json::object files;
  for (const auto& [d, names] : e.files) {
    json::array a;
    for (const auto& n : names) a.emplace_back(n);
    files[d] = std::move(a);
  }
  json::object o;
  o["epoch"] = e.epoch;
  o["end_offsets"] = std::move(offsets);
  o["files"] = std::move(files);
  return o;
}

}  // namespace

std::string epoch_log_path(const std::string& dir, std::uint64_t epoch) {
  return (log_dir(dir) / file_name(epoch)).string();
}

std::string write_epoch_log(const std::string& dir, const epoch_log_entry& entry, bool sync) {
  const fs::path d = log_dir(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) return "cannot create " + d.string() + ": " + ec.message();
  const json::value body = to_json(entry);
  const std::string body_text = json::serialize(body);
  json::object file;
  file["entry"] = body;
  file["crc32c"] = crc32c_hex(body_text);
  const std::string text = json::serialize(file) + "\n";
  return file_io::write_atomically(d / file_name(entry.epoch), text, sync);
}

std::optional<epoch_log_entry> read_epoch_log(const std::string& dir, std::uint64_t epoch,
                                              std::string* error) {
  error->clear();
  const fs::path path = log_dir(dir) / file_name(epoch);
  const std::string shown = "epoch-log/" + file_name(epoch);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    *error = shown + ": cannot read it";
    return std::nullopt;
  }
  auto malformed = [&](const std::string& what) {
    *error = shown + ": malformed (" + what + ")";
    return std::nullopt;
  };
  json::value v = json::parse(text.str(), ec);
  if (ec) return malformed(ec.message());
  const json::object* file = v.if_object();
  if (!file) return malformed("not an object");
  const json::value* body = file->if_contains("entry");
  const json::value* crc = file->if_contains("crc32c");
  if (!body || !body->is_object() || !crc || !crc->is_string())
    return malformed("no entry or crc32c");
  if (crc32c_hex(json::serialize(*body)) != crc->as_string()) {
    *error = shown + ": checksum mismatch";
    return std::nullopt;
  }
  epoch_log_entry e;
  const json::object& o = body->as_object();
  const json::value* ep = o.if_contains("epoch");
  const json::value* offsets = o.if_contains("end_offsets");
  const json::value* files = o.if_contains("files");
  if (!ep || !ep->is_number() || !offsets || !offsets->is_object() || !files || !files->is_object())
    return malformed("epoch, end_offsets or files missing");
  e.epoch = ep->to_number<std::uint64_t>(ec);
  if (ec || e.epoch != epoch) return malformed("epoch number");
  for (const auto& [k, off] : offsets->as_object()) {
    std::int32_t p = 0;
    const auto r = std::from_chars(k.data(), k.data() + k.size(), p);
    if (r.ec != std::errc{} || r.ptr != k.data() + k.size() || !off.is_int64())
      return malformed("end offset of \"" + std::string(k) + "\"");
    e.end_offsets[p] = off.as_int64();
  }
  for (const auto& [d, names] : files->as_object()) {
    if (!names.is_array()) return malformed("files of \"" + std::string(d) + "\"");
    auto& out = e.files[std::string(d)];
    for (const auto& n : names.as_array()) {
      if (!n.is_string()) return malformed("a file name in \"" + std::string(d) + "\"");
      out.emplace_back(n.as_string());
    }
  }
  return e;
}

std::vector<std::uint64_t> list_epoch_log(const std::string& dir, std::string* error) {
  error->clear();
  std::vector<std::uint64_t> out;
  const fs::path d = log_dir(dir);
  std::error_code ec;
  if (!fs::exists(d, ec)) return out;
  for (const auto& f : fs::directory_iterator(d, ec)) {
    const std::string n = f.path().filename().string();
    if (n.size() != 25 || !n.ends_with(".json")) continue;
    std::uint64_t e = 0;
    const auto r = std::from_chars(n.data(), n.data() + 20, e);
    if (r.ec != std::errc{} || r.ptr != n.data() + 20) continue;
    out.push_back(e);
  }
  if (ec) *error = "cannot list " + d.string() + ": " + ec.message();
  std::sort(out.begin(), out.end());
  return out;
}

std::string prune_epoch_log(const std::string& dir, std::uint64_t oldest_kept) {
  std::string err;
  for (std::uint64_t e : list_epoch_log(dir, &err)) {
    if (e >= oldest_kept) break;
    std::error_code ec;
    fs::remove(log_dir(dir) / file_name(e), ec);
    if (ec) return "cannot delete " + (log_dir(dir) / file_name(e)).string() + ": " + ec.message();
  }
  return err;
}

}  // namespace eddy
