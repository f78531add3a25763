// kafka_records.cpp — see kafka_records.hpp.
#include "worker/sink/kafka_records.hpp"

#include <charconv>

#include "worker/sink/sink.hpp"

namespace eddy {
namespace {

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_i64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

void skip_ws(std::string_view t, size_t& i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
}

/// A JSON string literal starting at t[i] ('"'); i ends after the closing quote.
bool scan_string(std::string_view t, size_t& i) {
  if (i >= t.size() || t[i] != '"') return false;
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;  // the escaped character (\uXXXX: its hex digits are plain characters)
      continue;
    }
    if (t[i] == '"') {
      ++i;
      return true;
    }
  }
  return false;
}

/// A scalar JSON value at t[i]: a string, or a run of number/literal characters.
bool scan_scalar(std::string_view t, size_t& i) {
  if (i < t.size() && t[i] == '"') return scan_string(t, i);
  const size_t start = i;
  while (i < t.size()) {
    const char c = t[i];
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
                    c == '.' || c == 'E';
    if (!ok) break;
    ++i;
  }
  return i > start;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> encode_origin(const record_origin& o) {
  return {{std::string(header_pipeline), o.pipeline},
          {std::string(header_unit), o.unit},
          {std::string(header_epoch), std::to_string(o.epoch)},
          {std::string(header_seq), std::to_string(o.seq)}};
}

std::optional<record_origin> decode_origin(
    const std::vector<std::pair<std::string_view, std::string_view>>& headers) {
  std::optional<std::string_view> pipeline, unit, epoch, seq;
  for (const auto& [name, value] : headers) {
    if (name == header_pipeline)
      pipeline = value;
    else if (name == header_unit)
      unit = value;
    else if (name == header_epoch)
      epoch = value;
    else if (name == header_seq)
      seq = value;
  }
  if (!pipeline || !unit || !epoch || !seq) return std::nullopt;
  record_origin o;
  o.pipeline = std::string(*pipeline);
  o.unit = std::string(*unit);
  if (!parse_u64(*epoch, &o.epoch) || !parse_u64(*seq, &o.seq)) return std::nullopt;
  return o;
}

bool split_flat_object(std::string_view t,
                       std::vector<std::pair<std::string_view, std::string_view>>* members) {
  members->clear();
  size_t i = 0;
  skip_ws(t, i);
  if (i >= t.size() || t[i] != '{') return false;
  ++i;
  skip_ws(t, i);
  if (i < t.size() && t[i] == '}') {
    ++i;
    skip_ws(t, i);
    return i == t.size();
  }
  for (;;) {
    skip_ws(t, i);
    const size_t name_start = i;
    if (!scan_string(t, i)) return false;
    const std::string_view name = t.substr(name_start, i - name_start);
    skip_ws(t, i);
    if (i >= t.size() || t[i] != ':') return false;
    ++i;
    skip_ws(t, i);
    const size_t value_start = i;
    if (!scan_scalar(t, i)) return false;
    members->emplace_back(name, t.substr(value_start, i - value_start));
    skip_ws(t, i);
    if (i >= t.size()) return false;
    if (t[i] == ',') {
      ++i;
      continue;
    }
    if (t[i] != '}') return false;
    ++i;
    skip_ws(t, i);
    return i == t.size();
  }
}

std::vector<std::string> json_names(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    std::string s;
    append_json_string(s, n);
    out.push_back(std::move(s));
  }
  return out;
}

std::string record_key(std::string_view row_json, const std::vector<std::string>& key_names,
                       std::string* error) {
  error->clear();
  if (key_names.empty()) return {};
  // One row's members, reused row after row (the publish loop calls this per record).
  thread_local std::vector<std::pair<std::string_view, std::string_view>> members;
  members.clear();
  if (!split_flat_object(row_json, &members)) {
    *error = "not a flat JSON object: " + std::string(row_json.substr(0, 80));
    return {};
  }
  std::string key = "{";
  for (size_t k = 0; k < key_names.size(); ++k) {
    const std::string& name = key_names[k];
    const std::pair<std::string_view, std::string_view>* found = nullptr;
    for (const auto& m : members)
      if (m.first == name) found = &m;
    if (found == nullptr) {
      *error = "row has no key field " + name;
      return {};
    }
    if (k != 0) key.push_back(',');
    key.append(name);
    key.push_back(':');
    key.append(found->second);
  }
  key.push_back('}');
  return key;
}

int32_t kafka_murmur2(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const uint32_t n = static_cast<uint32_t>(data.size());
  constexpr uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28cu ^ n;
  const uint32_t blocks = n / 4;
  for (uint32_t b = 0; b < blocks; ++b) {
    uint32_t k = uint32_t{p[4 * b]} | (uint32_t{p[4 * b + 1]} << 8) |
                 (uint32_t{p[4 * b + 2]} << 16) | (uint32_t{p[4 * b + 3]} << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char* tail = p + 4 * blocks;
  switch (n % 4) {
    case 3:
      h ^= uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      h ^= uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      h ^= uint32_t{tail[0]};
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

int32_t record_partition(kafka_partitioning how, std::string_view key, uint64_t seq,
                         int32_t partitions) {
  if (partitions <= 1) return 0;
  if (how == kafka_partitioning::key && !key.empty())
    return (kafka_murmur2(key) & 0x7fffffff) % partitions;
  return static_cast<int32_t>(seq % static_cast<uint64_t>(partitions));
}

void delivered_tail::observe(int32_t partition, const record_origin& o) {
  if (o.pipeline != pipeline_ || o.unit != unit_) return;
  ++seen_;
  seqs_[partition].insert(o.seq);
}

bool delivered_tail::delivered(int32_t partition, uint64_t seq) const {
  auto it = seqs_.find(partition);
  return it != seqs_.end() && it->second.contains(seq);
}

std::map<int32_t, uint64_t> delivered_tail::highest() const {
  std::map<int32_t, uint64_t> out;
  for (const auto& [p, s] : seqs_)
    if (!s.empty()) out[p] = *s.rbegin();
  return out;
}

std::string encode_marker(const publish_marker& m) {
  std::string s = "eddy-kafka-publish 1\npartitions " + std::to_string(m.partitions) + "\n";
  for (const auto& [p, off] : m.start_offsets)
    s += std::to_string(p) + " " + std::to_string(off) + "\n";
  s += "end\n";
  return s;
}

std::optional<publish_marker> decode_marker(std::string_view text, std::string* error) {
  publish_marker m;
  auto bad = [&](const std::string& why) {
    *error = "publish marker: " + why;
    return std::nullopt;
  };
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return bad("truncated (no final newline)");
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  if (lines.size() < 3 || lines[0] != "eddy-kafka-publish 1") return bad("not a marker");
  if (lines.back() != "end") return bad("truncated (no end line)");
  uint64_t parts = 0;
  if (!lines[1].starts_with("partitions ") || !parse_u64(lines[1].substr(11), &parts) ||
      parts == 0 || parts > 1'000'000)
    return bad("bad partition count");
  m.partitions = static_cast<int32_t>(parts);
  for (size_t i = 2; i + 1 < lines.size(); ++i) {
    const size_t sp = lines[i].find(' ');
    uint64_t p = 0;
    int64_t off = 0;
    if (sp == std::string_view::npos || !parse_u64(lines[i].substr(0, sp), &p) ||
        !parse_i64(lines[i].substr(sp + 1), &off) || p >= parts)
      return bad("bad offset line '" + std::string(lines[i]) + "'");
    m.start_offsets[static_cast<int32_t>(p)] = off;
  }
  return m;
}

std::string marker_name(std::string_view name) {
  return "." + std::string(name) + ".publishing";
}

}  // namespace eddy
