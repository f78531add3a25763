// eddy checkpoint list|inspect|verify — look inside a checkpoint directory.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "app/cli_checks.hpp"
#include "app/commands.hpp"
#include "state/checkpoint_store.hpp"
#include "state/epoch_log.hpp"

namespace eddy::app {

namespace {

std::unique_ptr<checkpoint_store> open_existing(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(dir) / "epochs", ec))
    throw CLI::RuntimeError("--dir " + dir + ": not a checkpoint directory (no epochs/ in it)", 2);
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
      "their per-partition offsets, watermarks and state sizes, and a checksum verification.");
  cmd->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  auto epoch = std::make_shared<uint64_t>(0);
  auto files = std::make_shared<bool>(false);

  CLI::App* list = cmd->add_subcommand("list", "One line per complete epoch, oldest first");
  list->add_option("--dir", *dir, "Checkpoint directory")->required();
  list->callback([dir] {
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
