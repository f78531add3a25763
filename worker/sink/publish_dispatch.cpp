// publish_dispatch.cpp — see publish_dispatch.hpp.
#include "worker/sink/publish_dispatch.hpp"

#include <filesystem>
#include <system_error>

namespace eddy {
namespace fs = std::filesystem;

namespace {

/// `p` absolute and lexically normal, with no trailing separator ("" when that fails).
std::string normal(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  if (ec) return {};
  std::string s = a.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool inside(const std::string& path, const std::string& dir) {
  return !dir.empty() && path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

}  // namespace

std::string publish_to_sinks(const std::vector<std::unique_ptr<sink>>& sinks,
                             const std::vector<std::string>& staged_paths, bool sync) {
  std::vector<std::string> dirs(sinks.size());
  for (size_t i = 0; i < sinks.size(); ++i)
    if (sinks[i] && !sinks[i]->staging_dir().empty()) dirs[i] = normal(sinks[i]->staging_dir());
  std::vector<std::vector<std::string>> per_sink(sinks.size());
  std::vector<std::string> renamed;
  for (const auto& p : staged_paths) {
    const std::string n = normal(p);
    size_t owner = sinks.size();
    for (size_t i = 0; i < sinks.size() && owner == sinks.size(); ++i)
      if (inside(n, dirs[i])) owner = i;
    (owner < sinks.size() ? per_sink[owner] : renamed).push_back(p);
  }
  std::string errors;
  auto note = [&](std::string err) {
    if (err.empty()) return;
    if (!errors.empty()) errors += "; ";
    errors += err;
  };
  if (!renamed.empty()) note(publish_staged_files(renamed, sync));
  for (size_t i = 0; i < sinks.size(); ++i)
    if (!per_sink[i].empty()) note(sinks[i]->publish_staged(per_sink[i], sync));
  return errors;
}

}  // namespace eddy
