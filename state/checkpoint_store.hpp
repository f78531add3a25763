// checkpoint_store.hpp — durable, incremental epoch checkpoints of a task's RocksDB.
//
/// What: `checkpoint_store` keeps completed epochs of a node-local `kv_store` under one directory
/// (`checkpoint.dir`, typically a shared file system another node can read). Committing an epoch
/// takes a RocksDB checkpoint of the task DB, copies into a content store `sst/` only the SST
/// files it does not hold yet (SST files are immutable: name + size identify them), copies the
/// small files (MANIFEST, CURRENT, OPTIONS, WAL) per epoch, and finally renames
/// `epochs/<e>/manifest.json` into place. That rename is the commit point: epoch `e` is complete
/// exactly when its manifest exists. Every file carries a CRC32C, checked on restore and verify.
/// Layout on disk: see state/README.md.
///
/// History is linear: a committed epoch must be newer than every complete epoch in the store, and
/// the task DB must descend from the store's checkpoints (a lineage id is kept in the manifests and
/// in the DB directory), so a DB started from scratch cannot mix its files with older checkpoints.
///
/// Errors are values (`store_status`, optional results); nothing throws. Problems that do not stop
/// an operation (a damaged epoch skipped on restore, retention that could not delete a file) are
/// returned as human-readable warnings of the form "checkpoint 12: sst/000123.sst: checksum
/// mismatch".
///
/// Thread-safety and ownership: one writer per directory. A `checkpoint_store` object is not
/// synchronised; one owner (the task) calls `commit_epoch`. Read-only calls (`list`, `inspect`,
/// `verify`) may run from another process while a commit is in progress; they see the epoch once
/// its manifest is renamed, and a file removed by retention meanwhile shows up as missing. The
/// store never holds the task DB: `commit_epoch` borrows it for the call. No CAF dependency.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "state/kv_store.hpp"

namespace eddy {

/// User metadata stored with an epoch: per-partition offsets, watermarks, pipeline fingerprint.
using checkpoint_metadata = std::map<std::string, std::string>;

struct checkpoint_options {
  /// Root of the checkpoint storage (`checkpoint.dir`); created when missing.
  std::string dir;
  /// Number of complete epochs kept; older ones and the SST files only they reference are deleted
  /// after each commit. Values below 1 are treated as 1.
  std::size_t retain = 3;
  /// fsync files and directories before the commit point; off only for tests and benchmarks.
  bool sync = true;
};

/// One file of an epoch, as recorded in its manifest.
struct checkpoint_file {
  std::string name;  ///< file name inside the RocksDB directory, e.g. "000123.sst"
  std::string path;  ///< where it is stored, relative to the checkpoint dir, e.g. "sst/000123.sst"
  std::uint64_t size = 0;
  std::string crc32c;  ///< 8 lowercase hex digits
  bool added = false;  ///< written by this epoch's commit (false: shared with an earlier epoch)
};

/// What one complete epoch holds.
struct epoch_info {
  std::uint64_t epoch = 0;
  std::int64_t created_unix_ms = 0;
  std::string lineage;
  checkpoint_metadata metadata;
  std::vector<checkpoint_file> files;
  std::size_t file_count = 0;
  std::uint64_t total_bytes = 0;   ///< sum of all file sizes: what a restore copies
  std::uint64_t new_bytes = 0;     ///< bytes this epoch's commit wrote (excluding manifest.json)
  std::uint64_t shared_bytes = 0;  ///< bytes reused from files earlier epochs had stored
};

/// Outcome of a successful commit.
struct commit_report {
  epoch_info info;
  /// Non-fatal problems after the commit point (retention could not delete something).
  std::vector<std::string> warnings;
};

/// Outcome of a successful restore.
struct restore_result {
  std::uint64_t epoch = 0;
  checkpoint_metadata metadata;
};

class checkpoint_store {
 public:
  /// Opens (creating `dir`, `dir/sst` and `dir/epochs` when missing) the store.
  [[nodiscard]] static std::unique_ptr<checkpoint_store> open(checkpoint_options options,
                                                              store_status* status);

  /// Makes the current state of `db` durable as epoch `epoch` with `metadata`, then applies
  /// retention. Fails (and leaves no complete epoch `epoch`) when `epoch` is not newer than the
  /// newest complete epoch, when `db` does not descend from this store's checkpoints, or on I/O
  /// errors. `report` (optional) receives sizes and warnings.
  [[nodiscard]] store_status commit_epoch(kv_store& db, std::uint64_t epoch,
                                          const checkpoint_metadata& metadata,
                                          commit_report* report = nullptr);

  /// Materialises the newest intact complete epoch into `target_db_dir` (which must not exist or
  /// be an empty directory; it appears atomically, by rename, once every file was copied and
  /// checked). Newer epochs that are incomplete or damaged are skipped, each with a warning naming
  /// the file. Returns nullopt with an ok status when the store holds no complete epoch at all
  /// (a fresh start: none was ever committed; incomplete ones are named in `warnings`); an error
  /// when complete epochs exist but none is intact (the caller may offer --reset).
  [[nodiscard]] std::optional<restore_result> restore_latest(const std::string& target_db_dir,
                                                             std::vector<std::string>* warnings,
                                                             store_status* status);

  /// Complete epochs (those with a manifest), oldest first.
  [[nodiscard]] std::vector<std::uint64_t> list(store_status* status) const;

  /// The manifest of complete epoch `epoch`, with its sizes; nullopt and an error when absent or
  /// unreadable.
  [[nodiscard]] std::optional<epoch_info> inspect(std::uint64_t epoch, store_status* status) const;

  /// Reads every file of every complete epoch and checks its size and checksum. Returns the
  /// problems found (empty: all intact); `status` is set only when the store cannot be listed.
  [[nodiscard]] std::vector<std::string> verify(store_status* status) const;

  [[nodiscard]] const checkpoint_options& options() const { return options_; }

 private:
  explicit checkpoint_store(checkpoint_options options);
  std::vector<std::string> apply_retention();
  checkpoint_options options_;
};

}  // namespace eddy
