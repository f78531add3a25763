// epoch_files.hpp — exactly-once file output: stage an epoch's files, publish them once the
// epoch is complete, and sort out what a crash left behind.
//
// Layout under an output directory D:
//   D/_staging/<epoch, 20 digits>/<name>   staged, invisible to readers (underscore prefix,
//                                           like Spark's _spark_metadata)
//   D/<name>                                published: renamed out of the staging directory
// A name may carry one sub-folder level, "<sub-folder>/<file>" (a partitioned file sink's
// "dt=2025-11-07/part-....csv"): staged as D/_staging/<epoch>/<sub-folder>/<file>, published as
// D/<sub-folder>/<file> (the sub-folder created as needed). Sub-folder names start with neither
// '.' nor '_'; file names not with '.' (temporaries).
// `stage` writes and fsyncs a file (temporary name + rename inside the epoch's staging
// directory); `publish` renames every staged file of the epoch into D, fsyncs D and removes the
// staging directory. Both are idempotent, so `recover` can finish a publish a crash interrupted:
// staged epochs <= the last complete epoch are published, newer ones (never completed) are
// deleted. Names must be deterministic per epoch (e.g. "part-<epoch>-0.jsonl") so that a
// re-run of an epoch after a crash produces the same file, not a second copy.
//
// In a cluster several workers stage into one output directory, and only the coordinator
// publishes, by an explicit list: a worker's names carry a name tag ("<worker>-g<generation>",
// `tagged_file_name`), it reports the files it staged (`staged_epoch_paths` with its tag), and
// the coordinator publishes exactly the listed files (`publish_staged_files`), never a whole
// staging directory; a worker drops what never completed with `discard_staged_epochs`.
//
// Errors are returned as messages naming the path ("" = ok); nothing throws. One writer per
// directory at a time. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

struct epoch_recovery {
  std::vector<uint64_t> published;  ///< staged epochs that were complete: now published
  std::vector<uint64_t> discarded;  ///< staged epochs that never completed: deleted
};

/// Writes `content` as `name` ("<file>" or "<sub-folder>/<file>") into epoch `epoch`'s staging
/// directory of `dir` (created as needed), durably (fsync of the file and of the directory
/// holding it, and of the epoch's staging directory when the sub-folder is new). A name of
/// another shape is an error.
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

/// Names of the files staged for `epoch` in `dir`, sorted, relative to the staging directory
/// ("part-....jsonl", "dt=2025-11-07/part-....csv"; empty when nothing is staged): their
/// published paths relative to `dir`. The epoch log records them before the epoch publishes. "" or
/// the error in `error`.
[[nodiscard]] std::vector<std::string> staged_epoch_files(const std::string& dir, uint64_t epoch,
                                                          std::string* error);

/// Full paths (`<dir>/_staging/<epoch, 20 digits>/[<sub-folder>/]<name>`) of the files staged
/// for `epoch` in `dir`, sorted, whose file name carries `-<tag_filter>` right before its
/// extension (the part from the last '.'): what a cluster sink reports. An empty `tag_filter` takes
/// every staged file. Half-written temporaries are never listed. A tag that ends with '-' + another
/// tag (worker "a-w1" and worker "w1") matches the other's files too; tags of one generation name
/// one epoch's files only, so this can only list files that the epoch publishes anyway.
[[nodiscard]] std::vector<std::string> staged_epoch_paths(const std::string& dir, uint64_t epoch,
                                                          std::string_view tag_filter,
                                                          std::string* error);

/// Full paths of the files staged in `dir` for every epoch in (`after`, `up_to`], sorted, that
/// one writer with name tag `tag` stages: file names (a sub-folder before them allowed) exactly
/// "<stem>-<epoch, as epoch_file_stem>[-<part, 5 digits>]-<tag>.<ext>". Unlike staged_epoch_paths, the
/// tag of another writer whose tag ends with '-' + `tag` never matches (a worker named
/// "<5 digits>-<name>" is refused for that reason). What a cluster sink that kept running across
/// a generation change reports: its staged output since the last committed epoch.
[[nodiscard]] std::vector<std::string> staged_paths_of_writer(const std::string& dir,
                                                              uint64_t after, uint64_t up_to,
                                                              std::string_view tag,
                                                              std::string* error);

/// The epoch of a staged path `<dir>/_staging/<epoch, 20 digits>/[<sub-folder>/]<name>`;
/// nullopt when it is not shaped so.
[[nodiscard]] std::optional<uint64_t> staged_path_epoch(const std::string& path);

/// Publishes exactly the listed staged files: each `D/_staging/<epoch>/<name>` (absolute, or
/// relative to the working directory) is renamed to `D/<name>`, and each
/// `D/_staging/<epoch>/<sub-folder>/<name>` to `D/<sub-folder>/<name>` (created as needed).
/// Idempotent: a file already published (staged copy gone, target present) is fine; neither
/// present, or a path not shaped like a staged file, is an error naming it (files before it in
/// the list are published by then; publishing the list again finishes the job). With `sync`,
/// each affected directory (a sub-folder, then D) is fsynced once, after the renames. Staging
/// directories left empty are removed (sub-folder, epoch, then `D/_staging`); other files staged
/// for the epoch stay where they are.
[[nodiscard]] std::string publish_staged_files(const std::vector<std::string>& staged_paths,
                                               bool sync = true);

/// Deletes the staged files of every epoch > `newer_than` in `dir` (epochs that never completed:
/// a worker joining a new generation drops what it and others staged after the last complete
/// epoch), appending those epochs to `discarded`. Epochs <= `newer_than` are left alone (unlike
/// recover_epoch_files, nothing is published): only the coordinator publishes, by list.
[[nodiscard]] std::string discard_staged_epochs(const std::string& dir, uint64_t newer_than,
                                                std::vector<uint64_t>* discarded = nullptr);

/// Deletes the staged files of every epoch <= `up_to` in `dir` except those in `keep`: what a
/// cluster leaves in staging once an epoch committed and its list was published (files of
/// aborted epochs, and of a worker that staged after it was fenced), never to be published.
/// Appends the epochs removed to `discarded`.
[[nodiscard]] std::string discard_stale_staged_epochs(const std::string& dir, uint64_t up_to,
                                                      const std::set<uint64_t>& keep,
                                                      std::vector<uint64_t>* discarded = nullptr);

/// A name tag is 1 to 80 characters of [A-Za-z0-9_.-]: "" or why `tag` is not one.
[[nodiscard]] std::string check_name_tag(std::string_view tag);

/// `name` with "-<tag>" inserted before its extension (the part from the last '.', if any):
/// ("part-0000000012.jsonl", "w2-g3") -> "part-0000000012-w2-g3.jsonl". An empty tag returns
/// `name` unchanged (the names of a single process).
[[nodiscard]] std::string tagged_file_name(std::string_view name, std::string_view tag);

/// fsync of directory `dir` (makes renames and creations in it durable); "" or a message.
[[nodiscard]] std::string sync_directory(const std::string& dir);

/// "part-0000000012" style prefix: `stem` + '-' + the epoch in 10 digits.
[[nodiscard]] std::string epoch_file_stem(std::string_view stem, uint64_t epoch);

}  // namespace eddy
