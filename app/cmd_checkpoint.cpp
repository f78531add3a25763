// eddy checkpoint list|inspect|verify — look inside a checkpoint directory.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "app/cli_checks.hpp"
#include "app/commands.hpp"
#include "coordinator/cluster_manifest.hpp"
#include "model/time_format.hpp"
#include "state/checkpoint_store.hpp"
#include "state/epoch_log.hpp"

namespace eddy::app {

namespace {

/// A cluster's checkpoint directory (eddy coordinator, eddy run --as-cluster): cluster/epochs/.
bool is_cluster_dir(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_directory(std::filesystem::path(dir) / "cluster" / "epochs", ec);
}

std::unique_ptr<checkpoint_store> open_existing(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(dir) / "epochs", ec))
    throw CLI::RuntimeError(
        "--dir " + dir + ": not a checkpoint directory (no epochs/ or cluster/epochs/ in it)", 2);
  store_status st;
  checkpoint_options opts;
  opts.dir = dir;
  auto store = checkpoint_store::open(opts, &st);
  if (!store) throw CLI::RuntimeError(st.error, 1);
  return store;
}

std::string utc(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print_epoch(std::ostream& out, const epoch_info& e, bool files) {
  out << "epoch " << e.epoch << "  created " << utc(e.created_unix_ms) << "  files " << e.file_count
      << "  total " << e.total_bytes << " B  new " << e.new_bytes << " B  shared " << e.shared_bytes
      << " B\n";
  for (const auto& [k, v] : e.metadata) out << "  " << k << " = " << v << "\n";
  if (!files) return;
  for (const auto& f : e.files)
    out << "  file " << std::left << std::setw(28) << f.path << std::right << std::setw(12)
        << f.size << "  crc32c " << f.crc32c << (f.added ? "  (new)" : "") << "\n";
}

/// One line per cluster manifest (`eddy checkpoint list` of a cluster's directory).
void print_cluster_epoch(std::ostream& out, const cluster_manifest& m) {
  uint64_t snapshots = 0, deltas = 0;
  size_t delta_files = 0;
  int64_t in = 0;
  for (const auto& [name, u] : m.units) {
    snapshots += u.bytes;
    for (const auto& d : u.deltas) deltas += d.bytes;
    delta_files += u.deltas.size();
    if (is_task_unit(name)) in += u.counters.in;
  }
  out << "epoch " << m.epoch << "  generation " << m.generation << "  created "
      << utc(m.created_unix_ms) << "  units " << m.units.size() << "  state " << snapshots + deltas
      << " B (snapshots " << snapshots << " B, " << delta_files << " deltas " << deltas
      << " B)  records in " << in << "  published " << m.published.size() << " file(s)\n";
}

/// `eddy checkpoint inspect` of a cluster's epoch: every unit's owner, position and files.
void print_cluster_units(std::ostream& out, const cluster_manifest& m, bool files) {
  if (!m.pipeline.empty()) out << "  pipeline = " << m.pipeline << "\n";
  for (const auto& [k, v] : m.compat) out << "  " << k << " = " << v << "\n";
  for (const auto& [name, u] : m.units) {
    out << "  unit " << name << "  owner " << u.owner;
    if (is_task_unit(name))
      out << "  next offset " << u.next_offset << "  watermark "
          << (u.watermark == INT64_MIN ? std::string("none")
                                       : time_formatter{}.format_iso(timestamp{u.watermark}))
          << "  in " << u.counters.in << " out " << u.counters.out << " filtered "
          << u.counters.filtered << " dead-lettered " << u.counters.dead_lettered << " late "
          << u.counters.late;
    uint64_t bytes = u.bytes;
    for (const auto& d : u.deltas) bytes += d.bytes;
    out << "  state " << bytes << " B (" << (u.snapshot.empty() ? 0 : 1) << " snapshot, "
        << u.deltas.size() << " deltas)\n";
    if (!files) continue;
    if (!u.snapshot.empty())
      out << "    file " << u.snapshot << "  " << u.bytes << " B  crc32c " << u.crc32c << "\n";
    for (const auto& d : u.deltas)
      out << "    file " << d.path << "  " << d.bytes << " B  crc32c " << d.crc32c << "\n";
  }
  out << "  published " << m.published.size() << " staged file(s)\n";
  if (files)
    for (const auto& p : m.published) out << "    " << p << "\n";
}

/// The epoch log's entry of `epoch` (state/epoch_log.hpp): where each partition ended and what
/// the epoch published (file names with `files`, else counts per directory).
void print_epoch_log(std::ostream& out, const std::string& dir, uint64_t epoch, bool files) {
  std::string err;
  auto entry = read_epoch_log(dir, epoch, &err);
  if (!entry) {
    out << "  epoch log: " << (err.empty() ? "no entry" : err) << "\n";
    return;
  }
  out << "  epoch log: end offsets";
  for (const auto& [p, off] : entry->end_offsets) out << " " << p << "=" << off;
  out << "\n";
  for (const auto& [d, names] : entry->files) {
    out << "  published " << names.size() << " file(s) in " << d << "\n";
    if (files)
      for (const auto& n : names) out << "    " << n << "\n";
  }
}

}  // namespace

void add_checkpoint_command(CLI::App& root) {
  CLI::App* cmd = root.add_subcommand(
      "checkpoint",
      "Look inside a pipeline's checkpoint directory (checkpoint.dir): the complete epochs,\n"
      "their per-partition offsets, watermarks and state sizes, and a checksum verification.\n"
      "Reads eddy run's checkpoints and a cluster's (eddy coordinator, eddy run --as-cluster).");
  cmd->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  auto epoch = std::make_shared<uint64_t>(0);
  auto files = std::make_shared<bool>(false);

  CLI::App* list = cmd->add_subcommand("list", "One line per complete epoch, oldest first");
  list->add_option("--dir", *dir, "Checkpoint directory")->required();
  list->callback([dir] {
    if (is_cluster_dir(*dir)) {
      std::string err;
      const auto epochs = list_cluster_manifests(*dir, &err);
      if (!err.empty()) throw CLI::RuntimeError(err, 1);
      if (epochs.empty()) std::cout << "no complete epochs in " << *dir << "\n";
      for (uint64_t e : epochs) {
        std::string why;
        if (auto m = read_cluster_manifest(*dir, e, &why))
          print_cluster_epoch(std::cout, *m);
        else
          std::cout << "epoch " << e << "  unreadable: " << why << "\n";
      }
      return;
    }
    auto store = open_existing(*dir);
    store_status st;
    auto epochs = store->list(&st);
    if (!st.ok()) throw CLI::RuntimeError(st.error, 1);
    if (epochs.empty()) std::cout << "no complete epochs in " << *dir << "\n";
    for (uint64_t e : epochs) {
      auto info = store->inspect(e, &st);
      if (!info) {
        std::cout << "epoch " << e << "  unreadable: " << st.error << "\n";
        continue;
      }
      print_epoch(std::cout, *info, false);
    }
  });

  CLI::App* inspect = cmd->add_subcommand(
      "inspect", "Metadata, sizes and files of one epoch, and its epoch log entry");
  inspect->add_option("--dir", *dir, "Checkpoint directory")->required();
  inspect->add_option("--epoch", *epoch, "Epoch (default: the newest complete one)")
      ->check(int_range<uint64_t>(0, UINT64_MAX));
  inspect->add_flag("--files", *files, "List every file with its size and checksum");
  inspect->callback([dir, epoch, files] {
    if (is_cluster_dir(*dir)) {
      std::string err;
      uint64_t e = *epoch;
      if (e == 0) {
        const auto epochs = list_cluster_manifests(*dir, &err);
        if (!err.empty()) throw CLI::RuntimeError(err, 1);
        if (epochs.empty()) throw CLI::RuntimeError("no complete epochs in " + *dir, 1);
        e = epochs.back();
      }
      auto m = read_cluster_manifest(*dir, e, &err);
      if (!m) throw CLI::RuntimeError(err, 1);
      print_cluster_epoch(std::cout, *m);
      print_cluster_units(std::cout, *m, *files);
      return;
    }
    auto store = open_existing(*dir);
    store_status st;
    uint64_t e = *epoch;
    if (e == 0) {
      auto epochs = store->list(&st);
      if (!st.ok()) throw CLI::RuntimeError(st.error, 1);
      if (epochs.empty()) throw CLI::RuntimeError("no complete epochs in " + *dir, 1);
      e = epochs.back();
    }
    auto info = store->inspect(e, &st);
    if (!info) throw CLI::RuntimeError(st.error, 1);
    print_epoch(std::cout, *info, *files);
    print_epoch_log(std::cout, *dir, e, *files);
  });

  CLI::App* verify = cmd->add_subcommand(
      "verify",
      "Check every file of every complete epoch against its recorded size and checksum;\n"
      "exit status 1 and one line per problem when anything is damaged or missing");
  verify->add_option("--dir", *dir, "Checkpoint directory")->required();
  verify->callback([dir] {
    if (is_cluster_dir(*dir)) {
      const cluster_verification v = verify_cluster_checkpoints(*dir);
      for (const auto& p : v.problems) std::cout << "damaged: " << p << "\n";
      if (!v.problems.empty())
        throw CLI::RuntimeError(std::to_string(v.problems.size()) + " problem(s) in " + *dir, 1);
      std::cout << "ok: " << v.manifests.size() << " complete epoch(s) in " << *dir
                << " (a cluster's), every unit file matches its size and checksum\n";
      return;
    }
    auto store = open_existing(*dir);
    store_status st;
    auto problems = store->verify(&st);
    if (!st.ok()) throw CLI::RuntimeError(st.error, 1);
    std::string err;
    for (uint64_t e : list_epoch_log(*dir, &err))
      if (std::string lerr; !read_epoch_log(*dir, e, &lerr) && !lerr.empty())
        problems.push_back(lerr);
    if (!err.empty()) problems.push_back(err);
    auto epochs = store->list(&st);
    for (const auto& p : problems) std::cout << "damaged: " << p << "\n";
    if (!problems.empty())
      throw CLI::RuntimeError(std::to_string(problems.size()) + " problem(s) in " + *dir, 1);
    std::cout << "ok: " << epochs.size() << " complete epoch(s) in " << *dir
              << ", every file matches its checksum\n";
  });
}

}  // namespace eddy::app
