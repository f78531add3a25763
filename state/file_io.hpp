// file_io.hpp — the POSIX file helpers state/ shares: fsync of directories, atomic replacement of
// a file (temporary name + fsync + rename + fsync of the directory), reading a small file.
//
// STAND-IN on branch clusterepochs: branch unitstate extracts these helpers (and more) into
// state/file_io.{hpp,cpp} with the same names and signatures; on merging, take unitstate's files
// and drop this one (the definitions here live in checkpoint_store.cpp).
//
// Every error is returned as a message naming the path and the operation ("" = ok); nothing
// throws. No CAF dependency.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace eddy::file_io {

/// fsync of directory `dir`: makes creations, renames and deletions in it durable.
[[nodiscard]] std::string fsync_dir(const std::filesystem::path& dir);

/// Replaces `path` by a file holding `content`, atomically: written under `<path>.tmp`, fsynced,
/// renamed onto `path`, the directory fsynced (the fsyncs only with `sync`). The directory of
/// `path` must exist.
[[nodiscard]] std::string write_atomically(const std::filesystem::path& path,
                                           std::string_view content, bool sync);

/// The whole content of a (small) file; nullopt and `*error` when it cannot be read.
[[nodiscard]] std::optional<std::string> read_small_file(const std::filesystem::path& path,
                                                         std::string* error);

}  // namespace eddy::file_io
