// cluster_harness.hpp — what the cluster's output-equality tests share: reading published output,
// comparing row multisets, the window-end cut for streaming runs, the coordinator's epoch
// manifests, log files watched while processes write them, and a coordinator with workers run
// as processes.
//
// Contract, per part:
// * Output. `published_lines(dir)` is every line of every *.jsonl file directly in `dir`. Files
//   under `dir/_staging/` are staged, not published, and are never read. Sinks publish by rename,
//   so a file is either absent or complete.
// * Comparison. `compare_rows` compares two multisets of JSON Lines rows. Objects are compared
//   with their keys sorted; strings, bools and nulls exactly; numbers as doubles within a
//   relative tolerance (default 1e-12: a compensated sum merged in another order may differ in
//   its last bits; integers below 1e12 are still compared exactly). Rows that are equal only
//   within the tolerance are counted (`inexact`).
// * Window cut. A streaming cluster never closes its newest windows (an `--exit-at-end` run
//   drains them). `split_at_window_end(rows, cut)` keeps the rows whose `window_end` (UTC,
//   "YYYY-MM-DDTHH:MM:SS[.f]Z") is at or before `cut`.
// * Manifests. The coordinator commits epoch e by writing
//   `<checkpoint dir>/cluster/epochs/<e, 20 digits>.json` with "epoch", "generation",
//   "created_unix_ms", "units" ({"p3": {"next_offset": N, ...}, "s1": {...}}) and "published".
//   `completion_watch` polls that directory: the input is done once a manifest has every
//   partition's next_offset at its end offset and `newer_needed` manifests newer than that one
//   were seen (each newer manifest means the epochs before it finished publishing).
// * Logs. `log_file` reads a file a process appends to and remembers when this reader first saw
//   each line (steady clock), for gaps such as "kill -> loss logged".
// * Processes. `test_cluster` starts `eddy coordinator` (stdout and stderr to files; its
//   `listening=HOST:PORT` line is read from the stdout file) and named workers (each start of a
//   worker is a new incarnation with a log file of its own, on the same --local-dir); it kills,
//   pauses and stops them, and its destructor stops every process still running.
//
// Waits are conditions polled against a deadline. Not thread-safe. Test-only code (GoogleTest
// assertions are used); no CAF, no librdkafka.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"

namespace eddy::test::cluster {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// ---- published output -----------------------------------------------------------------------

/// Names of the published *.jsonl files directly in `dir` (none under _staging/), sorted.
inline std::vector<std::string> published_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& f : jsonl_files(dir, "")) names.push_back(f.filename().string());
  return names;
}

/// Every line of every published *.jsonl file directly in `dir`.
inline std::vector<std::string> published_lines(const fs::path& dir) {
  std::vector<std::string> lines;
  for (const auto& f : jsonl_files(dir, ""))
    for (auto& l : split_lines(read_text_file(f))) lines.push_back(std::move(l));
  return lines;
}

/// The worker and generation a cluster output file's name carries
/// (`part-<epoch>-<k>-<worker>-g<gen>.jsonl`); nullopt for other names.
struct output_tag {
  std::string worker;
  uint64_t generation = 0;
};
inline std::optional<output_tag> tag_of(std::string_view name) {
  if (!name.ends_with(".jsonl")) return std::nullopt;
  name.remove_suffix(6);
  const size_t g = name.rfind("-g");
  if (g == std::string_view::npos || g + 2 >= name.size()) return std::nullopt;
  output_tag t;
  const auto digits = name.substr(g + 2);
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), t.generation);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  const size_t w = name.rfind('-', g - 1);
  if (w == std::string_view::npos || w + 1 >= g) return std::nullopt;
  t.worker = std::string(name.substr(w + 1, g - w - 1));
  return t;
}

// ---- time -----------------------------------------------------------------------------------

/// Microseconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fraction]Z"; nullopt otherwise.
inline std::optional<int64_t> parse_utc_micros(std::string_view s) {
  auto num = [&](size_t at, size_t n, int64_t* out) {
    if (at + n > s.size()) return false;
    const auto [end, ec] = std::from_chars(s.data() + at, s.data() + at + n, *out);
    return ec == std::errc() && end == s.data() + at + n;
  };
  int64_t y, mo, d, h, mi, sec;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s.back() != 'Z' || !num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) ||
      !num(14, 2, &mi) || !num(17, 2, &sec))
    return std::nullopt;
  int64_t micros = 0;
  if (s.size() > 20) {
    if (s[19] != '.' || s.size() - 21 < 1 || s.size() - 21 > 9) return std::nullopt;
    const size_t digits = s.size() - 21;
    int64_t frac = 0;
    if (!num(20, digits, &frac)) return std::nullopt;
    for (size_t i = digits; i < 6; ++i) frac *= 10;
    for (size_t i = 6; i < digits; ++i) frac /= 10;
    micros = frac;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(static_cast<int>(y)),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 59) return std::nullopt;
  const int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return ((days * 24 + h) * 60 + mi) * 60'000'000 + sec * 1'000'000 + micros;
}

inline int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- the window-end cut -----------------------------------------------------------------------

struct window_split {
  std::vector<std::string> kept;   ///< window_end <= cut
  std::vector<std::string> after;  ///< window_end > cut
  std::vector<std::string> bad;    ///< no parsable window_end
};

/// Splits the rows of a windowed pipeline at `cut_us` by their window_end.
inline window_split split_at_window_end(const std::vector<std::string>& rows, int64_t cut_us) {
  window_split out;
  for (const auto& line : rows) {
    std::optional<int64_t> end;
    try {
      const json::value v = json::parse(line);
      if (const auto* o = v.if_object())
        if (const auto* e = o->if_contains("window_end"); e && e->is_string())
          end = parse_utc_micros(e->as_string());
    } catch (const std::exception&) {
    }
    (!end ? out.bad : *end <= cut_us ? out.kept : out.after).push_back(line);
  }
  return out;
}

// ---- row comparison ---------------------------------------------------------------------------

struct row_diff {
  size_t expected = 0, actual = 0;
  size_t missing_count = 0, extra_count = 0;
  std::vector<std::string> missing;  ///< expected rows absent from actual (the first few)
  std::vector<std::string> extra;    ///< actual rows not expected (the first few)
  size_t inexact = 0;                ///< rows matched only within the tolerance
  size_t unparsable = 0;             ///< lines that are not JSON (compared as text)

  [[nodiscard]] bool equal() const { return missing_count == 0 && extra_count == 0; }
  /// "rows: expected 4474, got 4473; 1 missing, e.g. ...; 0 extra".
  [[nodiscard]] std::string describe(std::string_view what) const {
    std::ostringstream o;
    o << what << ": expected " << expected << ", got " << actual << "; " << missing_count
      << " missing, " << extra_count << " extra (more than once or never expected)";
    if (inexact > 0) o << "; " << inexact << " equal only within the tolerance";
    if (unparsable > 0) o << "; " << unparsable << " not JSON";
    for (const auto& m : missing) o << "\n  missing: " << m.substr(0, 400);
    for (const auto& e : extra) o << "\n  extra:   " << e.substr(0, 400);
    return o.str();
  }
};

namespace detail {

/// The row without its numbers (keys sorted, numbers as '#'), and its numbers in that order.
inline void canonical(const json::value& v, std::string& key, std::vector<double>& numbers) {
  switch (v.kind()) {
    case json::kind::object: {
      std::vector<std::pair<std::string_view, const json::value*>> items;
      for (const auto& kv : v.as_object()) items.emplace_back(kv.key(), &kv.value());
      std::sort(items.begin(), items.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      key += '{';
      for (const auto& [k, val] : items) {
        key += json::serialize(json::string(k));
        key += ':';
        canonical(*val, key, numbers);
        key += ',';
      }
      key += '}';
      break;
    }
    case json::kind::array:
      key += '[';
      for (const auto& e : v.as_array()) {
        canonical(e, key, numbers);
        key += ',';
      }
      key += ']';
      break;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      key += '#';
      numbers.push_back(v.to_number<double>());
      break;
    default:
      key += json::serialize(v);
  }
}

inline bool numbers_close(const std::vector<double>& a, const std::vector<double>& b, double tol,
                          bool* exact) {
  if (a.size() != b.size()) return false;
  *exact = true;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    *exact = false;
    if (std::abs(a[i] - b[i]) > tol * std::max(std::abs(a[i]), std::abs(b[i]))) return false;
  }
  return true;
}

}  // namespace detail

/// Compares `actual` with `expected` as multisets of rows (see the contract above).
inline row_diff compare_rows(const std::vector<std::string>& expected,
                             const std::vector<std::string>& actual, double rel_tol = 1e-12,
                             size_t examples = 5) {
  struct entry {
    std::vector<double> numbers;
    const std::string* line;
  };
  using groups = std::map<std::string, std::vector<entry>>;
  row_diff d;
  d.expected = expected.size();
  d.actual = actual.size();
  auto group = [&](const std::vector<std::string>& lines) {
    groups g;
    for (const auto& l : lines) {
      std::string key;
      entry e{{}, &l};
      try {
        detail::canonical(json::parse(l), key, e.numbers);
      } catch (const std::exception&) {
        key = "text:" + l;
        e.numbers.clear();
        ++d.unparsable;
      }
      g[key].push_back(std::move(e));
    }
    for (auto& [_, v] : g)
      std::sort(v.begin(), v.end(),
                [](const entry& a, const entry& b) { return a.numbers < b.numbers; });
    return g;
  };
  const groups want = group(expected);
  const groups got = group(actual);
  auto note = [&](std::vector<std::string>& list, size_t& count, const std::string& line) {
    ++count;
    if (list.size() < examples) list.push_back(line);
  };
  auto w = want.begin();
  auto g = got.begin();
  while (w != want.end() || g != got.end()) {
    if (g == got.end() || (w != want.end() && w->first < g->first)) {
      for (const auto& e : w->second) note(d.missing, d.missing_count, *e.line);
      ++w;
    } else if (w == want.end() || g->first < w->first) {
      for (const auto& e : g->second) note(d.extra, d.extra_count, *e.line);
      ++g;
    } else {
      // The same row shape: match the sorted number vectors pairwise, in merge order.
      size_t i = 0, j = 0;
      const auto& a = w->second;
      const auto& b = g->second;
      while (i < a.size() || j < b.size()) {
        bool exact = false;
        if (i < a.size() && j < b.size() &&
            detail::numbers_close(a[i].numbers, b[j].numbers, rel_tol, &exact)) {
          if (!exact) ++d.inexact;
          ++i;
          ++j;
        } else if (j == b.size() || (i < a.size() && a[i].numbers < b[j].numbers)) {
          note(d.missing, d.missing_count, *a[i++].line);
        } else {
          note(d.extra, d.extra_count, *b[j++].line);
        }
      }
      ++w;
      ++g;
    }
  }
  return d;
}

// ---- manifests --------------------------------------------------------------------------------

struct manifest {
  uint64_t epoch = 0;
  uint64_t generation = 0;
  int64_t created_unix_ms = 0;
  std::map<int32_t, int64_t> next_offsets;  ///< partition -> next offset ("p<N>" units)
  std::vector<std::string> published;
};

inline fs::path manifest_dir(const fs::path& checkpoint_dir) {
  return checkpoint_dir / "cluster" / "epochs";
}

/// Epochs with a manifest (names of exactly 20 digits + ".json"), oldest first.
inline std::vector<uint64_t> manifest_epochs(const fs::path& checkpoint_dir) {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(manifest_dir(checkpoint_dir), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() != 25 || !n.ends_with(".json") || n.find_first_not_of("0123456789") != 20)
      continue;
    out.push_back(std::stoull(n.substr(0, 20)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string epoch_name(uint64_t epoch) {
  std::string digits = std::to_string(epoch);
  return std::string(20 - std::min<size_t>(20, digits.size()), '0') + digits;
}

/// The manifest of `epoch`; nullopt with `error` set when it is missing or malformed.
inline std::optional<manifest> read_manifest(const fs::path& checkpoint_dir, uint64_t epoch,
                                             std::string* error) {
  const fs::path path = manifest_dir(checkpoint_dir) / (epoch_name(epoch) + ".json");
  try {
    const json::object o = parse_object(read_text_file(path));
    manifest m;
    m.epoch = o.at("epoch").to_number<uint64_t>();
    m.generation = o.at("generation").to_number<uint64_t>();
    if (const auto* c = o.if_contains("created_unix_ms"))
      m.created_unix_ms = c->to_number<int64_t>();
    for (const auto& [unit, v] : o.at("units").as_object()) {
      if (unit.size() < 2 || unit[0] != 'p') continue;
      int32_t p = 0;
      const auto [end, ec] = std::from_chars(unit.data() + 1, unit.data() + unit.size(), p);
      if (ec != std::errc() || end != unit.data() + unit.size()) continue;
      m.next_offsets[p] = v.as_object().at("next_offset").to_number<int64_t>();
    }
    if (const auto* p = o.if_contains("published"))
      for (const auto& f : p->as_array()) m.published.emplace_back(f.as_string());
    return m;
  } catch (const std::exception& e) {
    if (error) *error = path.string() + ": " + e.what();
    return std::nullopt;
  }
}

/// Records `covered` of `total` input messages, summed over partitions (next offsets capped at
/// the end offsets; a partition missing from the manifest counts 0).
inline int64_t committed_records(const manifest& m, const std::map<int32_t, int64_t>& end) {
  int64_t n = 0;
  for (const auto& [p, e] : end)
    if (auto it = m.next_offsets.find(p); it != m.next_offsets.end())
      n += std::clamp<int64_t>(it->second, 0, e);
  return n;
}

/// Follows a cluster's manifests (see the contract above). poll() reads the directory again.
class completion_watch {
 public:
  completion_watch(fs::path checkpoint_dir, std::map<int32_t, int64_t> end_offsets,
                   int newer_needed = 2)
      : dir_(std::move(checkpoint_dir)), end_(std::move(end_offsets)), newer_needed_(newer_needed) {
    for (const auto& [_, e] : end_) total_ += e;
  }

  /// Reads manifests not seen yet; returns done().
  bool poll() {
    for (uint64_t e : manifest_epochs(dir_)) {
      if (seen_.contains(e)) continue;
      std::string err;
      auto m = read_manifest(dir_, e, &err);
      if (!m) {
        last_error_ = err;  // retention may delete it between listing and reading
        continue;
      }
      seen_[e] = *m;
      if (covers_input(*m) && (!covering_ || e < *covering_)) covering_ = e;
    }
    return done();
  }

  [[nodiscard]] bool covers_input(const manifest& m) const {
    for (const auto& [p, e] : end_) {
      auto it = m.next_offsets.find(p);
      if (it == m.next_offsets.end() || it->second != e) return false;
    }
    return true;
  }
  [[nodiscard]] bool done() const {
    if (!covering_) return false;
    int newer = 0;
    for (auto it = seen_.upper_bound(*covering_); it != seen_.end(); ++it) ++newer;
    return newer >= newer_needed_;
  }
  [[nodiscard]] bool any() const { return !seen_.empty(); }
  [[nodiscard]] const std::map<uint64_t, manifest>& seen() const { return seen_; }
  [[nodiscard]] std::optional<manifest> newest() const {
    if (seen_.empty()) return std::nullopt;
    return seen_.rbegin()->second;
  }
  /// The first manifest (oldest epoch) with generation > g, if seen.
  [[nodiscard]] std::optional<manifest> first_of_generation_after(uint64_t g) const {
    for (const auto& [_, m] : seen_)
      if (m.generation > g) return m;
    return std::nullopt;
  }
  [[nodiscard]] int64_t total() const { return total_; }
  /// Input committed by the newest manifest, 0..total().
  [[nodiscard]] int64_t committed() const {
    return seen_.empty() ? 0 : committed_records(seen_.rbegin()->second, end_);
  }
  [[nodiscard]] std::string status() const {
    std::ostringstream o;
    o << seen_.size() << " manifests seen";
    if (auto n = newest())
      o << ", newest epoch " << n->epoch << " (generation " << n->generation << ", "
        << committed_records(*n, end_) << " of " << total_ << " input records committed)";
    if (covering_) o << ", input covered by epoch " << *covering_;
    if (!last_error_.empty()) o << "; last read error: " << last_error_;
    return o.str();
  }

 private:
  fs::path dir_;
  std::map<int32_t, int64_t> end_;
  int newer_needed_;
  int64_t total_ = 0;
  std::map<uint64_t, manifest> seen_;
  std::optional<uint64_t> covering_;
  std::string last_error_;
};

// ---- log files --------------------------------------------------------------------------------

class log_file {
 public:
  struct line {
    std::string text;
    steady::time_point seen;  ///< when this reader first saw it
  };

  explicit log_file(fs::path path) : path_(std::move(path)) {}

  /// Reads what was appended since the last call; returns every complete line so far.
  const std::vector<line>& refresh() {
    std::error_code ec;
    const auto size = fs::file_size(path_, ec);
    if (!ec && size > offset_) {
      std::ifstream in(path_, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(offset_));
      std::string chunk(size - offset_, '\0');
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk.resize(static_cast<size_t>(in.gcount()));
      offset_ += chunk.size();
      partial_ += chunk;
      const auto now = steady::now();
      for (size_t nl; (nl = partial_.find('\n')) != std::string::npos;) {
        lines_.push_back({partial_.substr(0, nl), now});
        partial_.erase(0, nl + 1);
      }
    }
    return lines_;
  }
  [[nodiscard]] size_t size() { return refresh().size(); }

  /// The index of the first line at or after `from` containing `needle`.
  std::optional<size_t> find(std::string_view needle, size_t from = 0) {
    refresh();
    for (size_t i = from; i < lines_.size(); ++i)
      if (lines_[i].text.find(needle) != std::string::npos) return i;
    return std::nullopt;
  }
  /// find(), polled until `deadline`.
  std::optional<size_t> wait_for(std::string_view needle, steady::time_point deadline,
                                 size_t from = 0) {
    for (;;) {
      if (auto i = find(needle, from)) return i;
      if (steady::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);  // polling a file for a condition
    }
  }
  [[nodiscard]] const line& at(size_t i) const { return lines_.at(i); }

  /// The last `n` lines, each prefixed with "  ".
  std::string tail(size_t n) {
    refresh();
    std::string out;
    for (size_t i = lines_.size() > n ? lines_.size() - n : 0; i < lines_.size(); ++i)
      out += "  " + lines_[i].text + "\n";
    if (!partial_.empty()) out += "  " + partial_ + " [no newline yet]\n";
    return out;
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  uintmax_t offset_ = 0;
  std::string partial_;
  std::vector<line> lines_;
};

// ---- coordinator and workers as processes ----------------------------------------------------

class test_cluster {
 public:
  /// Processes started by this object log into `dir` (created if needed).
  test_cluster(fs::path dir, std::string eddy_binary, std::string pipeline_file,
               std::string bootstrap)
      : dir_(std::move(dir)),
        eddy_(std::move(eddy_binary)),
        pipeline_(std::move(pipeline_file)),
        bootstrap_(std::move(bootstrap)) {
    fs::create_directories(dir_);
  }
  ~test_cluster() { stop_all(); }
  test_cluster(const test_cluster&) = delete;
  test_cluster& operator=(const test_cluster&) = delete;

  /// Starts the coordinator (`env`, "NAME=VALUE", added to its environment) and waits (20 s) for
  /// its `listening=` line; false (with a test failure naming its log) when it does not come.
  /// restart_coordinator() starts it again on the address it had (after it was killed).
  bool start_coordinator(const std::vector<std::string>& extra = {},
                         const std::vector<std::string>& env = {}) {
    return launch_coordinator(extra, env, "127.0.0.1:0");
  }

  /// Starts the coordinator again, on the same HOST:PORT, state dir and options, logging to a
  /// new file (coordinator_log() is then the new one); the old process must have ended.
  bool restart_coordinator() {
    if (coordinator_ && coordinator_->running())
      throw std::logic_error("the coordinator is still running");
    return launch_coordinator(coordinator_extra_, coordinator_env_, address_);
  }

 private:
  bool launch_coordinator(const std::vector<std::string>& extra,
                          const std::vector<std::string>& env, const std::string& listen) {
    coordinator_extra_ = extra;
    coordinator_env_ = env;
    ++coordinator_incarnation_;
    std::vector<std::string> argv = {
        eddy_,         "coordinator", "-c",          pipeline_,
        "--listen",    listen,        "--state-dir", (dir_ / "coordinator-state").string(),
        "--bootstrap", bootstrap_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const std::string n = coordinator_incarnation_ == 1
                              ? std::string()
                              : "." + std::to_string(coordinator_incarnation_);
    const fs::path out = dir_ / ("coordinator" + n + ".stdout");
    coordinator_log_ = std::make_unique<log_file>(dir_ / ("coordinator" + n + ".log"));
    coordinator_ = std::make_unique<child_process>(
        child_process::options{.argv = argv,
                               .out = redirect::file(out.string()),
                               .err = redirect::file(coordinator_log_->path().string()),
                               .env = env});
    log_file stdout_lines(out);
    const auto deadline = steady::now() + 20s;
    while (steady::now() < deadline && coordinator_->running()) {
      if (auto i = stdout_lines.find("listening=")) {
        address_ = stdout_lines.at(*i).text.substr(std::string_view("listening=").size());
        return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "eddy coordinator printed no listening= line within 20 s"
                  << (coordinator_->running() ? "" : " (it exited)") << "\n"
                  << logs_tail();
    return false;
  }

 public:
  /// Starts worker `name` (a new incarnation when it ran before) with `extra` options and `env`
  /// ("NAME=VALUE") added to its environment.
  void start_worker(const std::string& name, const std::vector<std::string>& extra = {},
                    const std::vector<std::string>& env = {}) {
    worker& w = workers_[name];
    if (w.proc && w.proc->running()) throw std::logic_error("worker " + name + " is still running");
    ++w.incarnation;
    std::vector<std::string> argv = {
        eddy_,    "worker", "--join",      address_,
        "--name", name,     "--local-dir", (dir_ / ("local-" + name)).string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    w.log =
        std::make_unique<log_file>(dir_ / (name + "." + std::to_string(w.incarnation) + ".log"));
    w.logs.push_back(w.log->path());
    w.proc = std::make_unique<child_process>(child_process::options{
        .argv = argv, .err = redirect::file(w.log->path().string()), .env = env});
  }

  child_process& process(const std::string& name) { return *workers_.at(name).proc; }
  child_process& coordinator_process() { return *coordinator_; }
  log_file& worker_log(const std::string& name) { return *workers_.at(name).log; }
  log_file& coordinator_log() { return *coordinator_log_; }
  [[nodiscard]] fs::path assignment_file() const {
    return dir_ / "coordinator-state" / "assignment.json";
  }
  [[nodiscard]] std::vector<std::string> worker_names() const {
    std::vector<std::string> names;
    for (const auto& [n, _] : workers_) names.push_back(n);
    return names;
  }

  /// The coordinator's assignment.json, or null when it cannot be read (yet).
  std::optional<json::object> assignment() const {
    try {
      return parse_object(read_text_file(assignment_file()));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  /// Member names in assignment.json, sorted; its generation.
  static std::vector<std::string> members(const json::object& a) {
    std::vector<std::string> names;
    if (const auto* m = a.if_contains("members"); m && m->is_array())
      for (const auto& e : m->as_array())
        if (const auto* o = e.if_object())
          if (const auto* n = o->if_contains("name"); n && n->is_string())
            names.emplace_back(n->as_string());
    std::sort(names.begin(), names.end());
    return names;
  }
  static uint64_t generation(const json::object& a) {
    const auto* g = a.if_contains("generation");
    return g ? g->to_number<uint64_t>() : 0;
  }

  /// Waits until assignment.json lists exactly `names`; its generation, or nullopt.
  std::optional<uint64_t> wait_for_members(std::vector<std::string> names,
                                           steady::time_point deadline) {
    std::sort(names.begin(), names.end());
    for (;;) {
      if (auto a = assignment(); a && members(*a) == names) return generation(*a);
      if (steady::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(10ms);  // polling a file for a condition
    }
  }

  /// Sends `sig` to worker `name`.
  void signal(const std::string& name, int sig) { workers_.at(name).proc->send_signal(sig); }

  /// SIGKILL and reap worker `name`.
  void kill9(const std::string& name) {
    auto& p = *workers_.at(name).proc;
    p.send_signal(SIGCONT);  // a paused process dies from SIGKILL too, but be explicit
    p.send_signal(SIGKILL);
    p.wait_for(10s);
  }

  /// The last `n` lines of the coordinator's log and of every worker's current log, the last
  /// n/4 of the logs of earlier incarnations.
  std::string logs_tail(size_t n = 40) {
    std::ostringstream o;
    if (coordinator_log_) o << "--- coordinator log (tail):\n" << coordinator_log_->tail(n);
    for (auto& [name, w] : workers_)
      for (const auto& path : w.logs) {
        log_file l(path);
        o << "--- " << path.filename().string() << " (tail):\n"
          << l.tail(path == w.logs.back() ? n : n / 4);
      }
    return o.str();
  }

  /// SIGTERM to every worker and then the coordinator (SIGKILL after a short grace).
  void stop_all() {
    for (auto& [_, w] : workers_)
      if (w.proc) {
        w.proc->send_signal(SIGCONT);
        w.proc->terminate(3s);
      }
    if (coordinator_) coordinator_->terminate(5s);
  }

 private:
  struct worker {
    std::unique_ptr<child_process> proc;
    std::unique_ptr<log_file> log;
    std::vector<fs::path> logs;  ///< every incarnation's log, the current one last
    int incarnation = 0;
  };
  fs::path dir_;
  std::string eddy_, pipeline_, bootstrap_;
  std::unique_ptr<child_process> coordinator_;
  std::unique_ptr<log_file> coordinator_log_;
  std::vector<std::string> coordinator_extra_, coordinator_env_;
  int coordinator_incarnation_ = 0;
  std::string address_;
  std::map<std::string, worker> workers_;
};

}  // namespace eddy::test::cluster
