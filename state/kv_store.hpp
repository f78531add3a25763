// kv_store.hpp — a node-local RocksDB key-value store: the home of task state and offsets.
//
// Thin and value-typed: every RocksDB status is translated to a `store_status` here and only
// here. Writes that must be atomic together go through one `write_batch` (one RocksDB
// WriteBatch, WAL on). Thread-safe as RocksDB is (concurrent reads and writes are fine); the
// store owns its DB handle and closes it on destruction. No CAF dependency.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "state/kv_op.hpp"

namespace eddy {

/// "" = ok; otherwise the reason, naming the path and the operation.
struct store_status {
  std::string error;
  [[nodiscard]] bool ok() const { return error.empty(); }
};

/// Memory budget of one store (`[checkpoint] block_cache_mb` / `write_buffer_mb`). Values below
/// 1 MiB are treated as 1 MiB.
struct kv_options {
  /// One LRU cache for the store's data, index and filter blocks (index and filter blocks are
  /// charged to it, so table readers stay within the budget).
  std::size_t block_cache_bytes = std::size_t{64} << 20;
  /// Memtables of all column families together (a WriteBufferManager): a memtable is flushed at
  /// half of it, and at most two exist at a time.
  std::size_t write_buffer_bytes = std::size_t{32} << 20;
  /// Write without the write-ahead log: for a DB that is only ever made durable through
  /// checkpoint_to() (which flushes the memtables first) and is rebuilt from a checkpoint after a
  /// crash — the task DB of eddy's checkpoints. A crash loses every write since the last flush.
  bool disable_wal = false;
  /// The store is written, not read, while it is open (except by scans before the first write):
  /// memtables are plain vectors sorted once at flush, instead of skip lists kept sorted on every
  /// insert, and write_batch() does not sort its ops. Reads stay correct but sort the memtable.
  /// For the task DB when aggregation state lives in memory (state_backend = "memory").
  bool write_mostly = false;
};

class kv_store {
 public:
  /// Opens (creating when missing) the store at `path`, with the default `kv_options`.
  [[nodiscard]] static std::unique_ptr<kv_store> open(const std::string& path,
                                                      store_status* status);
  /// Opens (creating when missing) the store at `path` within the memory budget of `options`.
  /// Besides the budget: SST files target 4 MiB and level sizes are dynamic, so a compaction
  /// rewrites (and the next incremental checkpoint re-copies) less.
  [[nodiscard]] static std::unique_ptr<kv_store> open(const std::string& path,
                                                      const kv_options& options,
                                                      store_status* status);
  ~kv_store();

  /// Applies all puts, deletes and range deletes (kv_op.hpp) atomically; `sync` waits for the
  /// disk.
  [[nodiscard]] store_status write_batch(const std::vector<kv_op>& ops, bool sync);

  /// The value of `key`, nullopt when absent (status set only on a real error).
  [[nodiscard]] std::optional<std::string> get(std::string_view key, store_status* status) const;

  /// All (key, value) pairs whose key starts with `prefix`, in key order, from one consistent
  /// point-in-time view (like scan_each).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> scan(std::string_view prefix,
                                                                      store_status* status) const;

  /// Calls `f(key, value)` for every pair whose key starts with `prefix`, in key order, until
  /// `f` returns false; nothing is collected (the views are valid during the call only). With
  /// `from`, the scan starts at the first key >= `from` (one seek, for resuming a scan).
  /// One call sees one consistent point-in-time view of the store (a RocksDB iterator pins the
  /// state it was created on): writes made while it runs, even by `f` or other threads, are not
  /// seen. A scan resumed with `from` is a new view.
  [[nodiscard]] store_status scan_each(
      std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view value)>& f,
      std::string_view from = {}) const;

  /// Writes the memtable to SST files (waits for it). Useful to shape tests and benchmarks; a
  /// checkpoint flushes on its own.
  [[nodiscard]] store_status flush();

  /// Compacts the whole key range into the last level (waits for it): afterwards the DB consists
  /// of new SST files only. For maintenance and to make tests independent of background timing.
  [[nodiscard]] store_status compact_all();

  /// Writes an openable, consistent copy of the current state into `dir`, which must not exist
  /// and should be on the same file system as the store: the memtable is flushed first, SST files
  /// are hard-linked (they are immutable), the small files (MANIFEST, CURRENT, OPTIONS, WAL) are
  /// copied. Safe to call while other threads write.
  [[nodiscard]] store_status checkpoint_to(const std::string& dir);

  /// Approximate bytes of memory the store uses: memtables (active, immutable and pinned), block
  /// cache usage, and table readers outside the cache.
  [[nodiscard]] std::uint64_t approximate_memory_bytes() const;

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  struct impl;
  kv_store(std::unique_ptr<impl> p, std::string path);
  std::unique_ptr<impl> impl_;
  std::string path_;
};

}  // namespace eddy
