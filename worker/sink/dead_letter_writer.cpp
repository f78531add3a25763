// dead_letter.cpp — dead letters as JSON Lines: text when it is UTF-8, base64 when not.
#include "worker/sink/dead_letter_writer.hpp"
#include "worker/sink/epoch_files.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "worker/sink/sink.hpp"

namespace eddy {

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Fast path: eight ASCII bytes at a time.
    if (n - i >= 8) {
      uint64_t chunk = 0;
      std::memcpy(&chunk, p + i, 8);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
      if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // no overlong forms
      if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

namespace {

/// `,"<name>":"<text>"` when `bytes` is UTF-8, else `,"<name>_base64":"<base64>"`.
void append_bytes_field(std::string& out, std::string_view name, std::string_view text,
                        std::string_view raw) {
  out.append(",\"");
  out.append(name);
  if (is_valid_utf8(text)) {
    out.append("\":");
    append_json_string(out, text);
  } else {
    out.append("_base64\":\"");
    out.append(base64_encode(raw));
    out.push_back('"');
  }
}

}  // namespace

std::string dead_letter_to_json(const dead_letter& d) {
  std::string out;
  out.reserve(128 + d.reason.size() + d.key.size() +
              std::min(d.value.size(), dead_letter_max_value_bytes) * 4 / 3);
  out.append("{\"topic\":");
  append_json_string(out, d.topic);
  out.append(",\"partition\":");
  out.append(std::to_string(d.partition));
  out.append(",\"offset\":");
  out.append(std::to_string(d.offset));
  out.append(",\"timestamp\":");
  out.append(d.timestamp_ms < 0 ? std::string("null") : std::to_string(d.timestamp_ms));
  out.append(",\"reason\":");
  append_json_string(out, d.reason);
  append_bytes_field(out, "key", d.key, d.key);

  if (d.value_is_null) {
    out.append(",\"value\":null}");
    return out;
  }
  const std::string_view value = d.value;
  if (value.size() <= dead_letter_max_value_bytes) {
    append_bytes_field(out, "value", value, value);
    out.push_back('}');
    return out;
  }
  // Cut at 1 MiB; as text, step back to a code point boundary so a valid value stays valid.
  const std::string_view raw = value.substr(0, dead_letter_max_value_bytes);
  size_t cut = raw.size();
  for (int k = 0; k < 3 && cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80;
       ++k) {
    --cut;
  }
  append_bytes_field(out, "value", value.substr(0, cut), raw);
  out.append(",\"value_truncated\":true,\"value_size\":");
  out.append(std::to_string(value.size()));
  out.push_back('}');
  return out;
}

dead_letter_file_writer::dead_letter_file_writer(std::string dir, std::string name_tag)
    : dir_(std::move(dir)),
      tag_(std::move(name_tag)),
      tag_error_(tag_.empty() ? std::string() : check_name_tag(tag_)) {}

std::string dead_letter_file_writer::write_batch(int64_t batch_id,
                                                 const std::vector<dead_letter>& batch) {
  if (batch.empty()) return {};
  std::string text;
  for (const dead_letter& d : batch) {
    text.append(dead_letter_to_json(d));
    text.push_back('\n');
  }
  std::array<char, 24> id{};
  std::snprintf(id.data(), id.size(), "%08lld", static_cast<long long>(batch_id));
  const std::string name =
      "dead-letter-" + std::string(id.data()) + "-" + unique_file_suffix() + ".jsonl";
  auto err = write_file_atomically(dir_, name, text);
  return err.empty() ? err : "dead letters: " + err;
}

std::string dead_letter_file_writer::stage_epoch(uint64_t epoch,
                                                 const std::vector<dead_letter>& batch, bool sync) {
  if (!tag_error_.empty()) return "dead letters: " + tag_error_;
  if (batch.empty()) return {};
  std::string text;
  for (const dead_letter& d : batch) {
    text.append(dead_letter_to_json(d));
    text.push_back('\n');
  }
  const std::string name = tagged_file_name(epoch_file_stem("dead-letter", epoch) + ".jsonl", tag_);
  auto err = stage_epoch_file(dir_, epoch, name, text, sync);
  return err.empty() ? err : "dead letters: " + err;
}

}  // namespace eddy
