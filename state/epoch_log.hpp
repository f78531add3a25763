// epoch_log.hpp — the epoch log: what each epoch covered and published, kept apart from the
// state checkpoints so that a fallback past a published epoch can replay it exactly.
//
/// What: one small JSON file per epoch, `<checkpoint dir>/epoch-log/<epoch, 20 digits>.json`,
/// holding every partition's end offset (the next offset after the epoch) and the names of the
/// files the epoch published, per output directory. The runtime writes it after every input,
/// shard and the sink acked the epoch (its output is staged) and before the state commit
/// (`checkpoint_store::commit_epoch`), so it is durable before the epoch's output is published.
/// After a restart that restores epoch K although epochs K+1..L were logged (their state was
/// damaged or never committed), the runtime replays K+1..L to the logged offsets and does not
/// write their output again: it is published (or staged, and published on restart) already.
///
/// Format: `{"entry": {"epoch": E, "end_offsets": {"<partition>": N, ...},
/// "files": {"<output dir>": ["name", ...], ...}}, "crc32c": "<8 hex digits>"}`, the checksum
/// over the serialised "entry" value. A file is written to a temporary name, fsynced, renamed and
/// its directory fsynced (`sync`).
///
/// Errors are values ("" = ok; messages name the path); nothing throws. One writer per checkpoint
/// directory; readers (`eddy checkpoint inspect`) may run at any time. No CAF dependency.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace eddy {

struct epoch_log_entry {
  std::uint64_t epoch = 0;
  /// Next offset per partition after the epoch (-1: the partition had read nothing yet).
  std::map<std::int32_t, std::int64_t> end_offsets;
  /// Output directory -> names of the files the epoch published there (sorted).
  std::map<std::string, std::vector<std::string>> files;
  bool operator==(const epoch_log_entry&) const = default;
};

/// `dir`/epoch-log/<epoch, 20 digits>.json
[[nodiscard]] std::string epoch_log_path(const std::string& dir, std::uint64_t epoch);

/// Writes `entry` durably (temporary name, fsync, rename, fsync of the directory when `sync`),
/// replacing an older entry of the same epoch. "" or the error.
[[nodiscard]] std::string write_epoch_log(const std::string& dir, const epoch_log_entry& entry,
                                          bool sync = true);

/// Reads the entry of `epoch`: nullopt with `error` "" when there is none; nullopt with `error`
/// set ("epoch-log/...json: checksum mismatch", "...: malformed ...") when it is damaged.
[[nodiscard]] std::optional<epoch_log_entry> read_epoch_log(const std::string& dir,
                                                            std::uint64_t epoch,
                                                            std::string* error);

/// Epochs that have an entry, oldest first (temporary files and foreign names are ignored).
[[nodiscard]] std::vector<std::uint64_t> list_epoch_log(const std::string& dir, std::string* error);

/// Retention: deletes the entries of epochs older than `oldest_kept`. "" or the error.
[[nodiscard]] std::string prune_epoch_log(const std::string& dir, std::uint64_t oldest_kept);

}  // namespace eddy
