// dead_letter_writer.hpp — writing dead letters (model/dead_letter.hpp): their JSON form and files.
//
// Nothing is dropped silently: every record the decoder or cleaner rejects becomes one
// dead_letter, written as one JSON Lines row per record to the dead-letter directory (and to a
// Kafka topic when configured). A writer is used from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/dead_letter.hpp"

namespace eddy {

/// One dead letter as a JSON object text: {"topic","partition","offset","timestamp","reason",
/// "key","value"} or "key_base64"/"value_base64" when the bytes are not valid UTF-8. Values
/// over 1 MiB are cut and flagged ("value_truncated": true, "value_size": N).
[[nodiscard]] std::string dead_letter_to_json(const dead_letter& d);

/// Values longer than this are cut in dead_letter_to_json.
inline constexpr size_t dead_letter_max_value_bytes = size_t{1} << 20;

/// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view s);

/// Standard base64 (RFC 4648 alphabet, '=' padding).
[[nodiscard]] std::string base64_encode(std::string_view bytes);

/// Appends dead letters as JSON Lines files `<dir>/dead-letter-<batch_id>-<unique>.jsonl`
/// (temporary name, then rename). "" on success, else an error message.
class dead_letter_file_writer {
 public:
  /// `name_tag` (dead_letter_config::name_tag, set by a cluster worker): staged files are named
  /// `dead-letter-<epoch>-<tag>.jsonl` (tagged_file_name); "" keeps the one-process names. An
  /// invalid tag (check_name_tag) makes every stage_epoch fail with the reason.
  explicit dead_letter_file_writer(std::string dir, std::string name_tag = {});
  [[nodiscard]] std::string write_batch(int64_t batch_id, const std::vector<dead_letter>& batch);
  /// With checkpoints: `dead-letter-<epoch>.jsonl` staged, published when the epoch completes
  /// (see epoch_files.hpp), so a crash neither loses nor repeats a dead letter.
  [[nodiscard]] std::string stage_epoch(uint64_t epoch, const std::vector<dead_letter>& batch,
                                        bool sync);
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string tag_;
  std::string tag_error_;
};

}  // namespace eddy
