// epoch_files.hpp — exactly-once file output: stage an epoch's files, publish them once the
// epoch is complete, and sort out what a crash left behind.
//
// Layout under an output directory D:
//   D/_staging/<epoch, 20 digits>/<name>   staged, invisible to readers (underscore prefix,
//                                           like Spark's _spark_metadata)
//   D/<name>                                published: renamed out of the staging directory
// `stage` writes and fsyncs a file (temporary name + rename inside the epoch's staging
// directory); `publish` renames every staged file of the epoch into D, fsyncs D and removes the
// staging directory. Both are idempotent, so `recover` can finish a publish a crash interrupted:
// staged epochs <= the last complete epoch are published, newer ones (never completed) are
// deleted. Names must be deterministic per epoch (e.g. "part-<epoch>-0.jsonl") so that a
// re-run of an epoch after a crash produces the same file, not a second copy.
//
// Errors are returned as messages naming the path ("" = ok); nothing throws. One writer per
// directory at a time. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

struct epoch_recovery {
  std::vector<uint64_t> published;  ///< staged epochs that were complete: now published
  std::vector<uint64_t> discarded;  ///< staged epochs that never completed: deleted
};

/// Writes `content` as `name` into epoch `epoch`'s staging directory of `dir` (created as
/// needed), durably (fsync of the file and of the staging directory).
[[nodiscard]] std::string stage_epoch_file(const std::string& dir, uint64_t epoch,
                                           const std::string& name, std::string_view content,
                                           bool sync = true);

/// Publishes every file staged for `epoch` in `dir` (no-op when nothing is staged).
[[nodiscard]] std::string publish_epoch_files(const std::string& dir, uint64_t epoch,
                                              bool sync = true);

/// After a restart: publishes staged epochs <= `last_complete` (oldest first) and deletes
/// staged epochs > `last_complete`. `last_complete` 0 = no epoch ever completed.
[[nodiscard]] std::string recover_epoch_files(const std::string& dir, uint64_t last_complete,
                                              epoch_recovery* out = nullptr, bool sync = true);

/// Names of the files staged for `epoch` in `dir`, sorted (empty when nothing is staged); the
/// epoch log records them before the epoch publishes. "" or the error in `error`.
[[nodiscard]] std::vector<std::string> staged_epoch_files(const std::string& dir, uint64_t epoch,
                                                          std::string* error);

/// fsync of directory `dir` (makes renames and creations in it durable); "" or a message.
[[nodiscard]] std::string sync_directory(const std::string& dir);

/// "part-0000000012" style prefix: `stem` + '-' + the epoch in 10 digits.
[[nodiscard]] std::string epoch_file_stem(std::string_view stem, uint64_t epoch);

}  // namespace eddy
