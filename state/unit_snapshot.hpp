// unit_snapshot.hpp — the state of one unit (a source task or an aggregator shard) exported from
// a worker's node-local kv_store alone, and imported into another worker's store.
//
/// What: a unit's state is every key under its prefix (task of partition p: task_prefix(p) =
/// "t/<p, 10 digits>/"; shard s: shard_prefix(s) = "s/<s, 5 digits>/"). `write_unit_snapshot`
/// writes those pairs, read from one consistent view of the store, to a single file;
/// `load_unit_snapshot` replaces the same prefix of another store with the file's pairs. This is
/// how a unit moves between workers in the cluster (PROTOCOL.md: unit snapshots per epoch).
///
/// File format 2 (integers little-endian; see state/README.md):
///   header   "EDDYUNIT" (8 bytes), u32 format version (2), u32 prefix length, prefix bytes
///   pairs    one zstd frame (with its content checksum; absent when there are no pairs) of:
///            u32 key length, key, u32 value length, value — every key under the prefix, in key
///            order; each key starts with the prefix
///   trailer  u64 number of pairs, u64 the pairs' decompressed length, then the CRC32C of every
///            byte before it (4 bytes, big-endian)
/// Format 1 (what eddy wrote before; still read): the pairs uncompressed, the trailer without
/// their length.
/// The checksum reported (`unit_snapshot_result::crc32c`, what a manifest records) is the CRC32C
/// of the whole file, 8 lowercase hex digits, like checkpoint_store's file checksums.
///
/// Atomicity: the writer writes `<path>.tmp`, fsyncs it (`sync`), renames it to `path` and fsyncs
/// the directory, so `path` is absent or complete. The loader checks the whole file (magic,
/// version, the trailer's CRC and the expected CRC (format 2: before it decompresses), every
/// length against the file's size or the decompressed length, the zstd frame, the count) before
/// it changes the store; only then does it delete the prefix and write the pairs, in
/// batches of bounded size. That import is not atomic: if it fails part-way (an I/O error of the
/// store, the file changed while it was read), the prefix holds part of the snapshot, and the
/// caller must not use the unit until a load succeeds. The loader does not sync the store: the
/// store's own durability rules apply (a worker restores its units after a crash anyway).
///
/// Deltas: a unit's state can also move as its snapshot of some epoch plus the writes of each
/// later epoch, in order (a task's or shard's checkpoint writes only what changed: windowing.hpp).
/// `append_unit_changes` encodes one checkpoint's kv_ops (the WriteBatch a task or shard applies
/// to the store) as records; `write_unit_delta` writes them to a delta file; `load_unit_delta`
/// applies one to a store that holds the state the delta was taken on (its snapshot and the
/// deltas before it), with exactly the effect of the original write_batch: range deletes first,
/// then puts and deletes in their order.
///   delta file: the snapshot's layout (either format) with magic "EDDYDLTA" and records in
///            place of pairs:
///            u32 key length, key, u32 length, then one tag byte and its payload:
///            'p' value (a put), 'd' nothing (a delete), 'r' end key (a range delete [key, end))
///   every key starts with the prefix; a range's end is after its key and not past the prefix's
///   range. Atomicity, verification before any change, bounded memory and errors: as above.
///
/// Errors are values and name the file; nothing throws. Memory stays bounded by the largest
/// pair plus one batch, whatever the file's size or content. No CAF dependency.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "state/kv_op.hpp"
#include "state/kv_store.hpp"

namespace eddy {

struct unit_snapshot_result {
  std::uint64_t bytes = 0;  ///< size of the file written
  std::uint64_t raw_bytes =
      0;                   ///< its pairs' (records') bytes before compression (format 1: = bytes)
  std::uint64_t keys = 0;  ///< pairs in it
  std::string crc32c;      ///< CRC32C of the whole file, 8 lowercase hex digits
  std::string error;       ///< "" = ok; else what failed, naming the file
  [[nodiscard]] bool ok() const { return error.empty(); }
};

/// Writes every pair of `db` whose key starts with `prefix` (non-empty, not all 0xff bytes) to
/// `path`, atomically (creates the parent directories). A prefix without keys gives a valid,
/// empty snapshot. `sync`: fsync the file and its directory (off only in tests and benchmarks).
/// `compress` = false writes format 1 (benchmarks' reference: EDDY_UNIT_UNCOMPRESSED=1).
[[nodiscard]] unit_snapshot_result write_unit_snapshot(const kv_store& db, std::string_view prefix,
                                                       const std::string& path, bool sync,
                                                       bool compress = true);

/// Verifies the snapshot at `path` (and, when `expected_crc32c` is not empty, that its whole-file
/// CRC32C equals it), then replaces every key of `db` under the snapshot's prefix by its pairs;
/// keys outside the prefix are not touched. "" or the error, naming `path`; when verification
/// fails, `db` is unchanged.
[[nodiscard]] std::string load_unit_snapshot(const std::string& path,
                                             std::string_view expected_crc32c, kv_store& db);

/// One checkpoint's writes to one unit's keys, encoded as a delta file's records (see above).
struct unit_changes {
  std::string records;
  std::uint64_t count = 0;  ///< records in `records`
};

/// Appends `ops`, in order, to `changes`.
void append_unit_changes(const std::vector<kv_op>& ops, unit_changes& changes);

/// Writes `changes` as a delta file of the unit under `prefix` at `path`, atomically (as
/// write_unit_snapshot). Fails, writing nothing, when a record is malformed or a key is not
/// under `prefix`. `keys` in the result counts records.
[[nodiscard]] unit_snapshot_result write_unit_delta(std::string_view prefix,
                                                    const unit_changes& changes,
                                                    const std::string& path, bool sync,
                                                    bool compress = true);

/// Verifies the delta at `path` (whole-file CRC32C = `expected_crc32c` unless empty; its
/// prefix = `expected_prefix` unless empty), then applies it to `db`. "" or the error, naming
/// `path`; when verification fails, `db` is unchanged.
[[nodiscard]] std::string load_unit_delta(const std::string& path, std::string_view expected_crc32c,
                                          std::string_view expected_prefix, kv_store& db);

}  // namespace eddy
