// byte_codec.hpp — the compact binary encoding of eddy's persisted state: accumulators
// (aggregates.cpp) and window/changelog state keys and values (windowing.cpp) share it.
//
// Writers append to a std::string: u8, LEB128 varints, zig-zag signed varints, little-endian
// u64/f64, big-endian sign-flipped be64 (byte order == numeric order, for keys that must scan in
// time order), values ([tag = variant index][payload]) and rows ([varint n][value]...). Doubles
// keep their exact bits. `byte_reader` reads the same forms with bounds checks: every getter
// returns false on malformed input and never reads past the end. Header-only, no dependencies
// beyond row.hpp; not thread-safe (plain values).
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "model/row.hpp"

namespace eddy::byte_codec {

inline void put_u8(std::string& out, uint8_t b) {
  out.push_back(static_cast<char>(b));
}

inline void put_varint(std::string& out, uint64_t x) {
  while (x >= 0x80) {
    out.push_back(static_cast<char>((x & 0x7f) | 0x80));
    x >>= 7;
  }
  out.push_back(static_cast<char>(x));
}

inline void put_svarint(std::string& out, int64_t x) {
  put_varint(out, (static_cast<uint64_t>(x) << 1) ^ static_cast<uint64_t>(x >> 63));
}

inline void put_u64(std::string& out, uint64_t x) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((x >> (8 * i)) & 0xff);
  out.append(b, 8);  // one capacity check instead of eight
}

inline void put_f64(std::string& out, double d) {
  put_u64(out, std::bit_cast<uint64_t>(d));
}

/// Big-endian, sign bit flipped: byte order == numeric order.
inline void put_be64(std::string& out, int64_t x) {
  const uint64_t u = static_cast<uint64_t>(x) ^ (uint64_t{1} << 63);
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

inline void put_value(std::string& out, const value& v) {
  put_u8(out, static_cast<uint8_t>(v.index()));
  switch (v.index()) {
    case 1: {
      const auto& s = std::get<std::string>(v);
      put_varint(out, s.size());
      out.append(s);
      break;
    }
    case 2:
      put_svarint(out, std::get<int64_t>(v));
      break;
    case 3:
      put_f64(out, std::get<double>(v));
      break;
    case 4:
      put_u8(out, std::get<bool>(v) ? 1 : 0);
      break;
    case 5:
      put_svarint(out, std::get<timestamp>(v).micros);
      break;
    default:
      break;
  }
}

/// Self-delimiting: [varint n][value]...
inline void put_row(std::string& out, const row& r) {
  put_varint(out, r.size());
  for (const value& v : r) put_value(out, v);
}

/// Bounds-checked reader over a byte view; every getter returns false on malformed input.
class byte_reader {
 public:
  explicit byte_reader(std::string_view in) : in_(in) {}
  /// What is left; callers that decode further in place (accumulators) advance it.
  [[nodiscard]] std::string_view& rest() { return in_; }
  [[nodiscard]] size_t remaining() const { return in_.size(); }
  [[nodiscard]] bool done() const { return in_.empty(); }

  bool u8(uint8_t* b) {
    if (in_.empty()) return false;
    *b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool varint(uint64_t* x) {
    uint64_t r = 0;
    for (int i = 0; i < 10; ++i) {
      uint8_t b = 0;
      if (!u8(&b)) return false;
      if (i == 9 && b > 1) return false;  // overlong / overflowing
      r |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        *x = r;
        return true;
      }
    }
    return false;
  }
  bool svarint(int64_t* x) {
    uint64_t u = 0;
    if (!varint(&u)) return false;
    *x = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool u64(uint64_t* x) {
    if (in_.size() < 8) return false;
    uint64_t u = 0;
    for (int i = 7; i >= 0; --i)
      u = (u << 8) | static_cast<unsigned char>(in_[static_cast<size_t>(i)]);
    in_.remove_prefix(8);
    *x = u;
    return true;
  }
  bool f64(double* d) {
    uint64_t b = 0;
    if (!u64(&b)) return false;
    *d = std::bit_cast<double>(b);
    return true;
  }
  bool be64(int64_t* x) {
    if (in_.size() < 8) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i)
      u = (u << 8) | static_cast<unsigned char>(in_[static_cast<size_t>(i)]);
    in_.remove_prefix(8);
    *x = static_cast<int64_t>(u ^ (uint64_t{1} << 63));
    return true;
  }
  /// A count of items that each take at least `min_item_bytes`: rejects counts the remaining
  /// input cannot hold (so no huge allocation on garbage).
  bool count(uint64_t* n, size_t min_item_bytes) {
    if (!varint(n)) return false;
    return *n <= remaining() / (min_item_bytes > 0 ? min_item_bytes : 1);
  }
  bool bytes(size_t n, std::string_view* out) {
    if (in_.size() < n) return false;
    *out = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool val(value* v) {
    uint8_t tag = 0;
    if (!u8(&tag)) return false;
    switch (tag) {
      case 0:
        *v = std::monostate{};
        return true;
      case 1: {
        uint64_t n = 0;
        std::string_view s;
        if (!varint(&n) || n > remaining() || !bytes(static_cast<size_t>(n), &s)) return false;
        *v = std::string(s);
        return true;
      }
      case 2: {
        int64_t i = 0;
        if (!svarint(&i)) return false;
        *v = i;
        return true;
      }
      case 3: {
        double d = 0;
        if (!f64(&d)) return false;
        *v = d;
        return true;
      }
      case 4: {
        uint8_t b = 0;
        if (!u8(&b) || b > 1) return false;
        *v = b == 1;
        return true;
      }
      case 5: {
        int64_t t = 0;
        if (!svarint(&t)) return false;
        *v = timestamp{t};
        return true;
      }
      default:
        return false;
    }
  }
  bool row_of(row* r) {
    uint64_t n = 0;
    if (!count(&n, 1)) return false;  // every value takes >= 1 byte
    r->clear();
    r->reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      if (!val(&r->emplace_back())) return false;
    }
    return true;
  }

 private:
  std::string_view in_;
};

}  // namespace eddy::byte_codec
