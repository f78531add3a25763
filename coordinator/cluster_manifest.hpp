// cluster_manifest.hpp — the global epoch manifests of a multi-node cluster: writing one is the
// commit point of an epoch. Pure: no CAF, no librdkafka.
//
// Layout under the pipeline's checkpoint directory D (shared by every node):
//   D/cluster/epochs/<epoch, 20 digits>.json   one manifest per complete epoch
//   D/cluster/units/<unit>/<epoch, 20 digits>-g<generation>.snap    full unit snapshots and
//   D/cluster/units/<unit>/<epoch, 20 digits>-g<generation>.delta   unit deltas (state/), which
//                                                                   workers export
// A manifest holds (Boost.JSON):
//   {"epoch": E, "generation": G, "created_unix_ms": T, "pipeline": "name",
//    "units": {"p3": {"owner", "next_offset", "watermark", "counters": {"in", "out", "filtered",
//                     "dead_lettered", "late"}, "snapshot", "bytes", "crc32c",
//                     "deltas": [{"path", "bytes", "crc32c"}, ...]},
//              "s1": {"owner", "snapshot", "bytes", "crc32c", "deltas"}},
//    "published": ["<staged path>", ...],
//    "compat": {"compat.topic": "...", ...}}   (the fingerprint; absent in older manifests)
// Units named "p<partition>" are source tasks (offsets, watermark, counters); every other unit
// ("s<shard>") carries only its snapshot. A unit's state at the epoch is its snapshot with its
// deltas applied in order (state/unit_snapshot.hpp); "deltas" is absent when there are none
// (and in manifests of older versions). `published` lists the staged files the epoch publishes,
// as the sinks reported them. `compat` is what the state depends on (checkpoint_compat.hpp): a
// coordinator restarted with an incompatible pipeline refuses to continue from the manifest.
//
// Writes are atomic and durable (temporary file, fsync, rename, fsync of the directory:
// state/file_io.hpp). The latest complete epoch is the newest manifest that parses; damaged
// ones are skipped with a warning naming the file. Retention keeps the newest `keep` manifests
// that parse, deletes older manifest files, and deletes unit snapshot files (snapshots and deltas)
// that no kept manifest references, of epochs up to the newest kept one (newer snapshots may belong
// to an epoch in progress). A snapshot reference matches a file by its last two path components
// ("<unit>/<file>"), so absolute and relative spellings of the same snapshot both count.
//
// Errors are values naming the path ("" = ok); nothing throws. One writer (the coordinator) per
// checkpoint directory; readers may run at any time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/record_counters.hpp"
#include "model/unit_file_ref.hpp"

namespace eddy {

/// One unit's entry in a manifest.
struct cluster_manifest_unit {
  std::string owner;                  ///< the worker that held the unit in the epoch
  int64_t next_offset = -1;           ///< tasks: next offset of the partition after the epoch
  int64_t watermark = INT64_MIN;      ///< tasks
  record_counters counters;           ///< tasks: cumulative
  std::string snapshot;               ///< the unit's snapshot file, as the worker reported it
  uint64_t bytes = 0;                 ///< its size
  std::string crc32c;                 ///< its CRC32C, 8 hex digits
  std::vector<unit_file_ref> deltas;  ///< applied to the snapshot in order
};

struct cluster_manifest {
  uint64_t epoch = 0;
  uint64_t generation = 0;
  int64_t created_unix_ms = 0;
  std::string pipeline;
  std::map<std::string, cluster_manifest_unit> units;  ///< "p3", "s1" -> entry
  std::vector<std::string> published;                  ///< staged files the epoch publishes
  /// The pipeline's fingerprint (worker/checkpoint/checkpoint_compat.hpp: "compat.topic", ...):
  /// what the units' state depends on. Empty in manifests of older versions.
  std::map<std::string, std::string> compat;
};

/// True for a source task's unit name ("p3"); its entry carries offsets and counters.
[[nodiscard]] bool is_task_unit(const std::string& unit);

/// What a unit file holds: all of the unit's keys (.snap) or one epoch's writes to them (.delta).
enum class unit_file_kind { snapshot, delta };

/// Where a worker exports a unit file of `epoch`, written in `generation`:
/// D/cluster/units/<unit>/<epoch, 20 digits>-g<generation>.snap (or .delta).
[[nodiscard]] std::filesystem::path unit_file_path(const std::filesystem::path& dir,
                                                   const std::string& unit, uint64_t epoch,
                                                   uint64_t generation, unit_file_kind kind);

/// The epoch of a unit file's name as unit_file_path writes it (or "<20 digits>.snap" of older
/// versions); nullopt for any other name.
[[nodiscard]] std::optional<uint64_t> unit_file_epoch(const std::string& file_name);

/// D/cluster/epochs/<epoch, 20 digits>.json
[[nodiscard]] std::filesystem::path cluster_manifest_path(const std::filesystem::path& dir,
                                                          uint64_t epoch);

/// Writes `m` as the manifest of m.epoch (creating D/cluster/epochs as needed), atomically and,
/// with `sync`, durably. "" or the error.
[[nodiscard]] std::string write_cluster_manifest(const std::filesystem::path& dir,
                                                 const cluster_manifest& m, bool sync = true);

/// Reads the manifest of `epoch`: nullopt with `error` naming the file when it is missing,
/// unreadable or malformed (including an "epoch" that differs from the file name).
[[nodiscard]] std::optional<cluster_manifest> read_cluster_manifest(
    const std::filesystem::path& dir, uint64_t epoch, std::string* error);

/// Epochs that have a manifest file, oldest first (temporary files and other names ignored; a
/// missing directory is no manifest). Errors listing the directory go to `error`.
[[nodiscard]] std::vector<uint64_t> list_cluster_manifests(const std::filesystem::path& dir,
                                                           std::string* error);

/// The newest manifest that parses, or nullopt when none does (or there is none). Every damaged
/// manifest newer than it adds a warning naming the file and what is wrong.
[[nodiscard]] std::optional<cluster_manifest> latest_complete(const std::filesystem::path& dir,
                                                              std::vector<std::string>* warnings);

struct cluster_retention {
  std::vector<uint64_t> kept;               ///< manifests kept, oldest first
  std::vector<uint64_t> deleted_manifests;  ///< oldest first
  size_t deleted_snapshots = 0;
  std::vector<std::string> warnings;  ///< damaged manifests, failed deletions
};

/// Retention (see above): keeps the newest `keep` (>= 1) manifests that parse.
[[nodiscard]] cluster_retention prune_cluster_checkpoints(const std::filesystem::path& dir,
                                                          size_t keep = 3);

/// `eddy checkpoint verify` of a cluster's directory: every manifest parses, and every unit
/// file a manifest references (snapshot and deltas) exists with the recorded size and CRC32C.
struct cluster_verification {
  std::vector<uint64_t> manifests;    ///< epochs whose manifest parses, oldest first
  std::vector<std::string> problems;  ///< one line per problem, naming the file
};
[[nodiscard]] cluster_verification verify_cluster_checkpoints(const std::filesystem::path& dir);

/// Where a unit file a manifest names lives: relative names are under `dir`.
[[nodiscard]] std::filesystem::path unit_file_in(const std::filesystem::path& dir,
                                                 const std::string& name);

}  // namespace eddy
