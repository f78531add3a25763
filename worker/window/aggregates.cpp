#include "worker/window/aggregates.hpp"
#include "worker/window/byte_codec.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <utility>
#include <vector>

// Design notes (see also the contracts in aggregates.hpp):
//
// * Every accumulator keeps `rows_`, the net number of add() calls (nulls included, sign
//   applied). `empty()` is true only for the neutral element: no net rows and no net
//   contribution, so merging an empty accumulator never changes a result. Partials may hold
//   negative counts (a retraction whose addition arrived in an earlier batch); they cancel
//   when merged into the shard's accumulator.
// * Values are compared with a total order (`compare_values`): first by variant index, then by
//   value; doubles by IEEE total order after canonicalisation (-0.0 -> +0.0, every NaN -> one
//   quiet NaN, which sorts above +inf).
// * sum/avg over int input sum exactly in 128 bits (order-independent, retraction-exact); the
//   int64 result saturates at INT64_MIN/INT64_MAX. Over double input they use Neumaier
//   compensated summation (merge-order effects ~1e-16 relative to sum |x|); +inf, -inf and NaN
//   inputs are counted apart so retracting them works; a finite sum that overflows gives inf.
//   A double sum is empty() only when a multiset fingerprint (sum of a 64-bit mix of each
//   input's bits, mod 2^64) is back to 0, so "retract 5, add 7" in one delta is not empty.
//   Int mode is any input_type but float64 (bool -> 0/1, timestamp -> micros); strings are
//   ignored like nulls by sum/avg/percentile.
// * Non-retractable accumulators (approx_count_distinct, percentile, first, last) ignore
//   add(..., -1): the pipeline never sends it (it rejects such configs in changelog mode).
// * merge() of accumulators built for different specs is a no-op (programming error).
// * Serialized form: [version u8][fn u8][body]; integers are LEB128 varints (signed ones
//   zigzag), doubles and hashes 8 bytes little-endian. deserialize parses into a temporary and
//   only on success replaces the state and advances the input.

namespace eddy {

namespace {

constexpr uint8_t wire_version = 1;

__extension__ typedef __int128 int128;

// ---- value order, canonical form and hashing --------------------------------------------------

value canonical(const value& v) {
  if (const auto* d = std::get_if<double>(&v)) return canonical_double(*d);
  return v;
}

/// A signed integer whose order is the IEEE total order of `d`.
int64_t double_order_key(double d) {
  const auto b = std::bit_cast<uint64_t>(d);
  const uint64_t flip = static_cast<uint64_t>(static_cast<int64_t>(b) >> 63) >> 1;
  return static_cast<int64_t>(b ^ flip);
}

template <typename T>
int three_way(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

/// Total order on values: by type (variant index), then by value.
int compare_values(const value& a, const value& b) {
  if (a.index() != b.index()) return a.index() < b.index() ? -1 : 1;
  switch (a.index()) {
    case 0:
      return 0;
    case 1: {
      const int c = std::get<std::string>(a).compare(std::get<std::string>(b));
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case 2:
      return three_way(std::get<int64_t>(a), std::get<int64_t>(b));
    case 3:
      return three_way(double_order_key(std::get<double>(a)),
                       double_order_key(std::get<double>(b)));
    case 4:
      return three_way(std::get<bool>(a), std::get<bool>(b));
    case 5:
      return three_way(std::get<timestamp>(a).micros, std::get<timestamp>(b).micros);
    default:
      return 0;
  }
}

struct value_less {
  bool operator()(const value& a, const value& b) const { return compare_values(a, b) < 0; }
};

uint64_t load_le64(const unsigned char* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i) x = (x << 8) | p[i];
  return x;
}

/// MurmurHash64A over `len` bytes (little-endian reads, so the hash is platform-stable).
uint64_t murmur64a(const void* data, size_t len, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  uint64_t h = seed ^ (len * m);
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t blocks = len / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k = load_le64(p + i * 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const unsigned char* tail = p + blocks * 8;
  switch (len & 7) {
    case 7:
      h ^= static_cast<uint64_t>(tail[6]) << 48;
      [[fallthrough]];
    case 6:
      h ^= static_cast<uint64_t>(tail[5]) << 40;
      [[fallthrough]];
    case 5:
      h ^= static_cast<uint64_t>(tail[4]) << 32;
      [[fallthrough]];
    case 4:
      h ^= static_cast<uint64_t>(tail[3]) << 24;
      [[fallthrough]];
    case 3:
      h ^= static_cast<uint64_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint64_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= static_cast<uint64_t>(tail[0]);
      h *= m;
      break;
    default:
      break;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

/// Murmur3's 64-bit finalizer: a bijective mixer.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

/// Type-tagged 64-bit hash of a non-null value (1, 1.0, "1" and true all differ); never 0.
uint64_t hash_value(const value& v) {
  const uint64_t seed = 0x9e3779b97f4a7c15ULL * (v.index() + 1);
  uint64_t h = 0;
  if (const auto* s = std::get_if<std::string>(&v)) {
    h = murmur64a(s->data(), s->size(), seed);
  } else {
    uint64_t bits = 0;
    if (const auto* i = std::get_if<int64_t>(&v)) bits = static_cast<uint64_t>(*i);
    if (const auto* d = std::get_if<double>(&v))
      bits = std::bit_cast<uint64_t>(canonical_double(*d));
    if (const auto* b = std::get_if<bool>(&v)) bits = *b ? 1 : 0;
    if (const auto* t = std::get_if<timestamp>(&v)) bits = static_cast<uint64_t>(t->micros);
    h = murmur64a(&bits, sizeof bits, seed);  // bits are native; x86/ARM LE assumed
  }
  return h != 0 ? h : 1;
}

size_t value_heap_bytes(const value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return s->capacity() > 15 ? s->capacity() + 1 : 0;
  }
  return 0;
}

/// Numeric view of a value for sum/avg/percentile; false for null and strings.
bool as_double(const value& v, double* out) {
  if (const auto* d = std::get_if<double>(&v)) {
    *out = *d;
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    *out = static_cast<double>(*i);
  } else if (const auto* b = std::get_if<bool>(&v)) {
    *out = *b ? 1.0 : 0.0;
  } else if (const auto* t = std::get_if<timestamp>(&v)) {
    *out = static_cast<double>(t->micros);
  } else {
    return false;
  }
  return true;
}

/// Integer view for int-mode sum/avg; doubles (never expected there) truncate, saturating.
bool as_int(const value& v, int64_t* out) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    *out = *i;
  } else if (const auto* b = std::get_if<bool>(&v)) {
    *out = *b ? 1 : 0;
  } else if (const auto* t = std::get_if<timestamp>(&v)) {
    *out = t->micros;
  } else if (const auto* d = std::get_if<double>(&v); d != nullptr && !std::isnan(*d)) {
    constexpr double lim = 9223372036854775808.0;  // 2^63
    *out = *d >= lim   ? std::numeric_limits<int64_t>::max()
           : *d < -lim ? std::numeric_limits<int64_t>::min()
                       : static_cast<int64_t>(*d);
  } else {
    return false;
  }
  return true;
}

// ---- wire format: worker/window/byte_codec.hpp -----------------------------------------------

using namespace byte_codec;
using reader = byte_reader;

void put_header(std::string& out, agg_fn fn) {
  put_u8(out, wire_version);
  put_u8(out, static_cast<uint8_t>(fn));
}

bool read_header(reader& r, agg_fn fn) {
  uint8_t version = 0;
  uint8_t f = 0;
  return r.u8(&version) && version == wire_version && r.u8(&f) && f == static_cast<uint8_t>(fn);
}

/// Shared deserialize skeleton: parse into a copy, commit on success.
template <typename Acc>
bool deserialize_into(Acc& self, std::string_view& in, agg_fn fn) {
  reader r(in);
  Acc tmp(self.spec_copy());
  if (!read_header(r, fn) || !tmp.read_body(r)) return false;
  self = std::move(tmp);
  in = r.rest();
  return true;
}

// ---- count ------------------------------------------------------------------------------------

class count_acc final : public accumulator {
 public:
  explicit count_acc(const agg_spec& spec) : star_(spec.field < 0), field_(spec.field) {}

  void add(const value& v, int64_t /*event_time_us*/, int sign) override {
    rows_ += sign;
    if (!is_null(v)) nonnull_ += sign;
  }
  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const count_acc*>(&other);
    if (o == this) {
      const count_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr) return;
    rows_ += o->rows_;
    nonnull_ += o->nonnull_;
  }
  [[nodiscard]] value result() const override { return star_ ? rows_ : nonnull_; }
  [[nodiscard]] bool empty() const override { return rows_ == 0 && nonnull_ == 0; }
  [[nodiscard]] bool retractable() const override { return true; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<count_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, agg_fn::count);
    put_svarint(out, rows_);
    put_svarint(out, nonnull_);
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, agg_fn::count);
  }
  [[nodiscard]] size_t memory_bytes() const override { return sizeof(*this); }

  [[nodiscard]] agg_spec spec_copy() const {
    agg_spec s;
    s.fn = agg_fn::count;
    s.field = field_;
    return s;
  }
  bool read_body(reader& r) { return r.svarint(&rows_) && r.svarint(&nonnull_); }

 private:
  bool star_;
  int field_;
  int64_t rows_ = 0;
  int64_t nonnull_ = 0;
};

// ---- sum / avg --------------------------------------------------------------------------------

class sum_acc final : public accumulator {
 public:
  explicit sum_acc(const agg_spec& spec)
      : spec_(spec), int_mode_(spec.input_type != field_type::float64) {}

  void add(const value& v, int64_t /*event_time_us*/, int sign) override {
    rows_ += sign;
    if (int_mode_) {
      int64_t x = 0;
      if (!as_int(v, &x)) return;
      n_ += sign;
      isum_ += sign >= 0 ? static_cast<int128>(x) : -static_cast<int128>(x);
      return;
    }
    double x = 0;
    if (!as_double(v, &x)) return;
    n_ += sign;
    add_double(x, sign);
  }

  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const sum_acc*>(&other);
    if (o == this) {
      const sum_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr || o->int_mode_ != int_mode_) return;
    rows_ += o->rows_;
    n_ += o->n_;
    isum_ += o->isum_;
    neumaier(o->dsum_);
    neumaier(o->dcomp_);
    pos_inf_ += o->pos_inf_;
    neg_inf_ += o->neg_inf_;
    nan_ += o->nan_;
    fingerprint_ += o->fingerprint_;
  }

  [[nodiscard]] value result() const override {
    if (n_ <= 0) return std::monostate{};
    if (spec_.fn == agg_fn::avg) return total_double() / static_cast<double>(n_);
    if (!int_mode_) return total_double();
    constexpr auto lo = std::numeric_limits<int64_t>::min();
    constexpr auto hi = std::numeric_limits<int64_t>::max();
    return static_cast<int64_t>(isum_ < lo ? lo : (isum_ > hi ? hi : isum_));
  }
  [[nodiscard]] bool empty() const override {
    return rows_ == 0 && n_ == 0 && isum_ == 0 && fingerprint_ == 0 && pos_inf_ == 0 &&
           neg_inf_ == 0 && nan_ == 0;
  }
  [[nodiscard]] bool retractable() const override { return true; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<sum_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, spec_.fn);
    put_u8(out, int_mode_ ? 1 : 0);
    put_svarint(out, rows_);
    put_svarint(out, n_);
    if (int_mode_) {
      put_svarint(out, static_cast<int64_t>(isum_ >> 64));
      put_u64(out, static_cast<uint64_t>(isum_));
      return;
    }
    put_f64(out, dsum_);
    put_f64(out, dcomp_);
    put_svarint(out, pos_inf_);
    put_svarint(out, neg_inf_);
    put_svarint(out, nan_);
    put_u64(out, fingerprint_);
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, spec_.fn);
  }
  [[nodiscard]] size_t memory_bytes() const override { return sizeof(*this); }

  [[nodiscard]] const agg_spec& spec_copy() const { return spec_; }
  bool read_body(reader& r) {
    uint8_t mode = 0;
    if (!r.u8(&mode) || mode != (int_mode_ ? 1 : 0)) return false;
    if (!r.svarint(&rows_) || !r.svarint(&n_)) return false;
    if (int_mode_) {
      int64_t hi = 0;
      uint64_t lo = 0;
      if (!r.svarint(&hi) || !r.u64(&lo)) return false;
      isum_ = static_cast<int128>(hi) * (static_cast<int128>(1) << 64) + static_cast<int128>(lo);
      return true;
    }
    return r.f64(&dsum_) && r.f64(&dcomp_) && r.svarint(&pos_inf_) && r.svarint(&neg_inf_) &&
           r.svarint(&nan_) && r.u64(&fingerprint_);
  }

 private:
  /// Adds (sign >= 0) or retracts input `x`.
  void add_double(double x, int sign) {
    // Multiset fingerprint: adding and retracting the same value cancels exactly.
    const uint64_t f = fmix64(std::bit_cast<uint64_t>(canonical_double(x)));
    fingerprint_ += sign >= 0 ? f : ~f + 1;
    if (std::isfinite(x)) return neumaier(sign >= 0 ? x : -x);
    const int64_t s = sign >= 0 ? 1 : -1;
    if (std::isnan(x)) {
      nan_ += s;
    } else if (x > 0) {
      pos_inf_ += s;
    } else {
      neg_inf_ += s;
    }
  }
  void neumaier(double x) {
    const double t = dsum_ + x;
    if (std::fabs(dsum_) >= std::fabs(x)) {
      dcomp_ += (dsum_ - t) + x;
    } else {
      dcomp_ += (x - t) + dsum_;
    }
    dsum_ = t;
  }
  [[nodiscard]] double total_double() const {
    if (int_mode_) return static_cast<double>(isum_);
    if (nan_ > 0 || (pos_inf_ > 0 && neg_inf_ > 0)) return std::numeric_limits<double>::quiet_NaN();
    if (pos_inf_ > 0) return std::numeric_limits<double>::infinity();
    if (neg_inf_ > 0) return -std::numeric_limits<double>::infinity();
    return dsum_ + dcomp_;
  }

  agg_spec spec_;
  bool int_mode_;
  int64_t rows_ = 0;
  int64_t n_ = 0;  ///< net non-null inputs
  int128 isum_ = 0;
  double dsum_ = 0;
  double dcomp_ = 0;
  int64_t pos_inf_ = 0;  ///< net +inf inputs
  int64_t neg_inf_ = 0;
  int64_t nan_ = 0;
  uint64_t fingerprint_ = 0;  ///< sum of fmix64(bits) of net double inputs, mod 2^64
};

// ---- min / max / count_distinct: a counted multiset -------------------------------------------

class multiset_acc final : public accumulator {
 public:
  explicit multiset_acc(const agg_spec& spec) : spec_(spec) {}

  void add(const value& v, int64_t /*event_time_us*/, int sign) override {
    rows_ += sign;
    if (is_null(v) || sign == 0) return;
    if (const auto* d = std::get_if<double>(&v)) {
      bump(value(canonical_double(*d)), sign);
    } else {
      bump(v, sign);
    }
  }

  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const multiset_acc*>(&other);
    if (o == this) {
      const multiset_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr) return;
    rows_ += o->rows_;
    auto hint = counts_.begin();
    for (const auto& [v, c] : o->counts_) hint = bump_at(hint, v, c);
  }

  [[nodiscard]] value result() const override {
    switch (spec_.fn) {
      case agg_fn::count_distinct:
        return positive_;
      case agg_fn::min:
        for (const auto& [v, c] : counts_) {
          if (c > 0) return v;
        }
        return std::monostate{};
      default:
        for (auto it = counts_.rbegin(); it != counts_.rend(); ++it) {
          if (it->second > 0) return it->first;
        }
        return std::monostate{};
    }
  }
  [[nodiscard]] bool empty() const override { return rows_ == 0 && counts_.empty(); }
  [[nodiscard]] bool retractable() const override { return true; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<multiset_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, spec_.fn);
    put_svarint(out, rows_);
    put_varint(out, counts_.size());
    for (const auto& [v, c] : counts_) {
      put_value(out, v);
      put_svarint(out, c);
    }
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, spec_.fn);
  }
  [[nodiscard]] size_t memory_bytes() const override {
    // A red-black tree node: 3 pointers + colour, then the pair.
    constexpr size_t node = 4 * sizeof(void*) + sizeof(std::pair<const value, int64_t>);
    size_t bytes = sizeof(*this) + counts_.size() * node;
    if (spec_.input_type == field_type::string) {
      for (const auto& [v, c] : counts_) bytes += value_heap_bytes(v);
    }
    return bytes;
  }

  [[nodiscard]] const agg_spec& spec_copy() const { return spec_; }
  bool read_body(reader& r) {
    uint64_t n = 0;
    if (!r.svarint(&rows_) || !r.count(&n, 2)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      value v;
      int64_t c = 0;
      if (!r.val(&v) || !r.svarint(&c) || c == 0 || is_null(v)) return false;
      if (!counts_.empty() && !value_less{}(counts_.rbegin()->first, v)) return false;
      if (const auto* d = std::get_if<double>(&v)) {
        if (std::bit_cast<uint64_t>(canonical_double(*d)) != std::bit_cast<uint64_t>(*d)) {
          return false;
        }
      }
      counts_.emplace_hint(counts_.end(), std::move(v), c);
      if (c > 0) ++positive_;
    }
    return true;
  }

 private:
  using map_type = std::map<value, int64_t, value_less>;

  void bump(const value& v, int64_t delta) {
    auto it = counts_.lower_bound(v);
    bump_at(it, v, delta, true);
  }
  /// Adds `delta` to the count of `v`; `it` is a hint (the lower bound when `exact`).
  map_type::iterator bump_at(map_type::iterator it, const value& v, int64_t delta,
                             bool exact = false) {
    if (!exact) it = counts_.lower_bound(v);
    if (it != counts_.end() && compare_values(it->first, v) == 0) {
      const bool was_positive = it->second > 0;
      it->second += delta;
      const bool is_positive = it->second > 0;
      positive_ += static_cast<int64_t>(is_positive) - static_cast<int64_t>(was_positive);
      if (it->second == 0) return counts_.erase(it);
      return std::next(it);
    }
    it = counts_.emplace_hint(it, v, delta);
    if (delta > 0) ++positive_;
    return std::next(it);
  }

  agg_spec spec_;
  map_type counts_;
  int64_t rows_ = 0;
  int64_t positive_ = 0;  ///< keys with a positive count
};

// ---- approx_count_distinct: HyperLogLog -------------------------------------------------------

/// HyperLogLog with 2^14 registers (std. error 1.04/sqrt(2^14) ~ 0.81%), estimated with Ertl's
/// bias-free "improved raw estimator" (arXiv:1702.01284), no empirical tables. Below
/// `sparse_max` distinct hashes it keeps the hashes themselves (open addressing, grown
/// geometrically) and answers exactly; the dense registers (16 KiB) are allocated once, when
/// the sparse set outgrows `sparse_max`. The representation depends only on the set of hashes,
/// so results are independent of split and merge order. Dense add() never allocates.
class hll_acc final : public accumulator {
 public:
  static constexpr int p = 14;
  static constexpr size_t m = size_t{1} << p;
  static constexpr int q = 64 - p;  ///< bits left for the rank; register values 0..q+1
  static constexpr size_t sparse_max = 512;

  explicit hll_acc(const agg_spec& spec) : spec_(spec) {}

  void add(const value& v, int64_t /*event_time_us*/, int sign) override {
    if (sign < 0) return;
    rows_ += sign;
    if (is_null(v) || sign == 0) return;
    insert_hash(hash_value(v));
  }

  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const hll_acc*>(&other);
    if (o == this) {
      const hll_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr) return;
    rows_ += o->rows_;
    if (o->dense()) {
      if (!dense()) to_dense();
      for (size_t i = 0; i < m; ++i) registers_[i] = std::max(registers_[i], o->registers_[i]);
      return;
    }
    for (const uint64_t h : o->table_) {
      if (h != 0) insert_hash(h);
    }
  }

  [[nodiscard]] value result() const override {
    if (!dense()) return static_cast<int64_t>(sparse_count_);
    return static_cast<int64_t>(std::llround(estimate()));
  }
  [[nodiscard]] bool empty() const override { return rows_ == 0; }
  [[nodiscard]] bool retractable() const override { return false; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<hll_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, agg_fn::approx_count_distinct);
    put_svarint(out, rows_);
    put_u8(out, dense() ? 1 : 0);
    if (dense()) {
      out.append(reinterpret_cast<const char*>(registers_.data()), m);
      return;
    }
    std::vector<uint64_t> hashes;
    hashes.reserve(sparse_count_);
    for (const uint64_t h : table_) {
      if (h != 0) hashes.push_back(h);
    }
    std::sort(hashes.begin(), hashes.end());
    put_varint(out, hashes.size());
    for (const uint64_t h : hashes) put_u64(out, h);
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, agg_fn::approx_count_distinct);
  }
  [[nodiscard]] size_t memory_bytes() const override {
    return sizeof(*this) + registers_.capacity() + table_.capacity() * sizeof(uint64_t);
  }

  [[nodiscard]] const agg_spec& spec_copy() const { return spec_; }
  bool read_body(reader& r) {
    uint8_t mode = 0;
    if (!r.svarint(&rows_) || rows_ < 0 || !r.u8(&mode) || mode > 1) return false;
    if (mode == 1) {
      std::string_view regs;
      if (!r.bytes(m, &regs)) return false;
      registers_.assign(regs.begin(), regs.end());
      return std::all_of(registers_.begin(), registers_.end(),
                         [](uint8_t x) { return x <= q + 1; });
    }
    uint64_t n = 0;
    if (!r.count(&n, 8) || n > sparse_max) return false;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t h = 0;
      if (!r.u64(&h) || h <= prev) return false;  // strictly increasing, non-zero
      insert_hash(h);
      prev = h;
    }
    return true;
  }

 private:
  [[nodiscard]] bool dense() const { return !registers_.empty(); }

  void insert_hash(uint64_t h) {
    if (dense()) return set_register(h);
    if (table_.empty()) table_.assign(16, 0);
    const size_t mask = table_.size() - 1;
    for (size_t i = fmix64(h) & mask;; i = (i + 1) & mask) {
      if (table_[i] == h) return;
      if (table_[i] == 0) {
        table_[i] = h;
        break;
      }
    }
    if (++sparse_count_ > sparse_max) return to_dense();
    if (sparse_count_ * 2 > table_.size()) rehash(table_.size() * 2);
  }

  void rehash(size_t slots) {
    std::vector<uint64_t> old(slots, 0);
    old.swap(table_);
    const size_t mask = slots - 1;
    for (const uint64_t h : old) {
      if (h == 0) continue;
      size_t i = fmix64(h) & mask;
      while (table_[i] != 0) i = (i + 1) & mask;
      table_[i] = h;
    }
  }

  void to_dense() {
    registers_.assign(m, 0);
    for (const uint64_t h : table_) {
      if (h != 0) set_register(h);
    }
    std::vector<uint64_t>().swap(table_);
    sparse_count_ = 0;
  }

  void set_register(uint64_t h) {
    const size_t idx = h >> q;
    const uint64_t w = h << p;
    const auto rank = static_cast<uint8_t>(w == 0 ? q + 1 : std::countl_zero(w) + 1);
    registers_[idx] = std::max(registers_[idx], rank);
  }

  [[nodiscard]] double estimate() const {
    std::array<uint32_t, q + 2> hist{};
    for (const uint8_t r : registers_) ++hist[r];
    const double md = static_cast<double>(m);
    double z = md * tau(1.0 - hist[q + 1] / md);
    for (int k = q; k >= 1; --k) z = 0.5 * (z + hist[k]);
    z += md * sigma(hist[0] / md);
    constexpr double alpha_inf = 0.5 / std::numbers::ln2;
    return alpha_inf * md * md / z;
  }
  static double sigma(double x) {
    if (x == 1.0) return std::numeric_limits<double>::infinity();
    double y = 1;
    double z = x;
    for (;;) {
      x *= x;
      const double z_old = z;
      z += x * y;
      y += y;
      if (z == z_old) return z;
    }
  }
  static double tau(double x) {
    if (x == 0.0 || x == 1.0) return 0.0;
    double y = 1.0;
    double z = 1 - x;
    for (;;) {
      x = std::sqrt(x);
      const double z_old = z;
      y *= 0.5;
      z -= (1 - x) * (1 - x) * y;
      if (z == z_old) return z / 3;
    }
  }

  agg_spec spec_;
  int64_t rows_ = 0;
  std::vector<uint64_t> table_;     ///< sparse: open-addressed hash set, 0 = free slot
  size_t sparse_count_ = 0;         ///< hashes in table_
  std::vector<uint8_t> registers_;  ///< dense: m registers (empty while sparse)
};

// ---- percentile: exact below a threshold, then a KLL sketch ------------------------------------

/// Up to `exact_max` values the accumulator keeps them all and answers exactly (nearest rank:
/// the value at 1-based rank ceil(q*n) of the sorted input, rank clamped to [1, n]). Beyond
/// that it is a KLL sketch (Karnin, Lang, Liberty 2016; the compactor scheme of Liberty's
/// reference kll.py with c = 2/3) with k = `kll_k`: about 3k doubles (~10 KiB) at any n.
/// Compaction coins come from a seeded, serialized PRNG, so a given input sequence is
/// deterministic. The same nearest-rank rule is applied to the weighted sample. Measured
/// rank error in tests: see aggregates_test.cpp (bound: percentile_rank_error). NaN inputs
/// are ignored.
class percentile_acc final : public accumulator {
 public:
  static constexpr size_t exact_max = 1000;
  static constexpr uint32_t kll_k = 400;
  static constexpr double kll_c = 2.0 / 3.0;
  static constexpr size_t max_levels = 60;

  explicit percentile_acc(const agg_spec& spec) : spec_(spec) {}

  void add(const value& v, int64_t /*event_time_us*/, int sign) override {
    if (sign < 0) return;
    rows_ += sign;
    double x = 0;
    if (sign == 0 || !as_double(v, &x) || std::isnan(x)) return;
    insert(x);
  }

  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const percentile_acc*>(&other);
    if (o == this) {
      const percentile_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr) return;
    rows_ += o->rows_;
    if (!o->sketch_mode_) {
      if (o->levels_.empty()) return;
      for (const double x : o->levels_[0]) insert(x);
      return;
    }
    if (!sketch_mode_) to_sketch();
    n_ += o->n_;
    rng_ = fmix64(rng_ ^ (o->rng_ + 0x9e3779b97f4a7c15ULL));
    while (levels_.size() < o->levels_.size()) add_level();
    for (size_t h = 0; h < o->levels_.size(); ++h) {
      levels_[h].insert(levels_[h].end(), o->levels_[h].begin(), o->levels_[h].end());
    }
    update_sizes();
    while (size_ >= max_size_) compress();
  }

  [[nodiscard]] value result() const override {
    if (n_ == 0) return std::monostate{};
    const auto target = static_cast<uint64_t>(std::clamp<double>(
        std::ceil(spec_.q * static_cast<double>(n_)), 1.0, static_cast<double>(n_)));
    if (!sketch_mode_) {
      std::vector<double> v = levels_[0];
      std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(target - 1), v.end());
      return v[target - 1];
    }
    std::vector<std::pair<double, uint64_t>> items;
    items.reserve(size_);
    for (size_t h = 0; h < levels_.size(); ++h) {
      for (const double x : levels_[h]) items.emplace_back(x, uint64_t{1} << h);
    }
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    uint64_t cum = 0;
    for (const auto& [x, w] : items) {
      cum += w;
      if (cum >= target) return x;
    }
    return items.back().first;
  }
  [[nodiscard]] bool empty() const override { return rows_ == 0; }
  [[nodiscard]] bool retractable() const override { return false; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<percentile_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, agg_fn::percentile);
    put_svarint(out, rows_);
    put_u8(out, sketch_mode_ ? 1 : 0);
    put_varint(out, n_);
    if (sketch_mode_) {
      put_varint(out, kll_k);
      put_u64(out, rng_);
      put_varint(out, levels_.size());
    }
    for (const auto& level : levels_) {
      if (sketch_mode_) put_varint(out, level.size());
      for (const double x : level) put_f64(out, x);
    }
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, agg_fn::percentile);
  }
  [[nodiscard]] size_t memory_bytes() const override {
    size_t bytes = sizeof(*this) + levels_.capacity() * sizeof(std::vector<double>) +
                   caps_.capacity() * sizeof(size_t);
    for (const auto& level : levels_) bytes += level.capacity() * sizeof(double);
    return bytes;
  }

  [[nodiscard]] const agg_spec& spec_copy() const { return spec_; }
  bool read_body(reader& r) {
    uint8_t mode = 0;
    if (!r.svarint(&rows_) || rows_ < 0 || !r.u8(&mode) || mode > 1 || !r.varint(&n_)) {
      return false;
    }
    const auto read_level = [&r](uint64_t count, std::vector<double>* level) {
      level->reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        double x = 0;
        if (!r.f64(&x) || std::isnan(x)) return false;
        level->push_back(x);
      }
      return true;
    };
    if (mode == 0) {
      if (n_ > exact_max || n_ > r.remaining() / 8) return false;
      if (n_ == 0) return true;
      levels_.emplace_back();
      return read_level(n_, &levels_[0]);
    }
    sketch_mode_ = true;
    uint64_t k = 0;
    uint64_t nlevels = 0;
    if (n_ <= exact_max || !r.varint(&k) || k != kll_k || !r.u64(&rng_) || !r.count(&nlevels, 1) ||
        nlevels == 0 || nlevels > max_levels) {
      return false;
    }
    levels_.resize(nlevels);
    uint64_t weight = 0;
    for (size_t h = 0; h < nlevels; ++h) {
      uint64_t count = 0;
      if (!r.count(&count, 8) || !read_level(count, &levels_[h])) return false;
      if (count > (std::numeric_limits<uint64_t>::max() - weight) >> h) return false;
      weight += count << h;
    }
    if (weight != n_) return false;
    update_sizes();
    while (size_ >= max_size_) compress();
    return true;
  }

 private:
  void insert(double x) {
    ++n_;
    if (levels_.empty()) levels_.emplace_back();
    levels_[0].push_back(x);
    if (!sketch_mode_) {
      if (n_ > exact_max) to_sketch();
      return;
    }
    if (++size_ >= max_size_) compress();
  }

  void to_sketch() {
    sketch_mode_ = true;
    if (levels_.empty()) levels_.emplace_back();
    update_sizes();
    while (size_ >= max_size_) compress();
  }

  [[nodiscard]] size_t capacity(size_t h) const { return caps_[h]; }

  /// Recomputes the per-level capacities (they depend on the level count) and the sizes.
  void update_sizes() {
    caps_.resize(levels_.size());
    size_ = 0;
    max_size_ = 0;
    for (size_t h = 0; h < levels_.size(); ++h) {
      const auto depth = static_cast<int>(levels_.size() - h - 1);
      caps_[h] = static_cast<size_t>(std::ceil(kll_k * std::pow(kll_c, depth))) + 1;
      size_ += levels_[h].size();
      max_size_ += caps_[h];
    }
  }

  /// Adds a level on top; releases the excess buffer space of the levels below, whose
  /// capacities just shrank (so memory stays ~3k doubles).
  void add_level() {
    levels_.emplace_back();
    update_sizes();
    for (size_t h = 0; h + 1 < levels_.size(); ++h) {
      auto& level = levels_[h];
      if (level.capacity() > 2 * caps_[h] + 8) {
        std::vector<double> shrunk;
        shrunk.reserve(std::max(caps_[h] + 1, level.size()));
        shrunk.assign(level.begin(), level.end());
        level.swap(shrunk);
      }
    }
  }

  /// Compacts the lowest full level(s) until the sketch is below its size limit again.
  void compress() {
    for (size_t h = 0; h < levels_.size(); ++h) {
      if (levels_[h].size() < capacity(h)) continue;
      if (h + 1 >= levels_.size()) {
        if (levels_.size() >= max_levels) return;
        add_level();
      }
      auto& level = levels_[h];
      std::sort(level.begin(), level.end());
      rng_ = fmix64(rng_ + 0x9e3779b97f4a7c15ULL);
      const size_t offset = rng_ & 1;
      // Keep an odd leftover (the smallest) at this level; promote every other of the rest.
      const size_t start = level.size() % 2;
      auto& up = levels_[h + 1];
      const size_t promoted = (level.size() - start) / 2;
      for (size_t i = start + offset; i < level.size(); i += 2) up.push_back(level[i]);
      size_ -= level.size() - start - promoted;
      level.resize(start);
      // Lazy compaction lets a level overshoot its capacity for a while; give the excess back
      // so memory tracks the ~3k items held, not every level's historic peak.
      if (level.capacity() > 2 * (caps_[h] + 16)) {
        std::vector<double> trimmed;
        trimmed.reserve(caps_[h] + 16);
        trimmed.assign(level.begin(), level.end());
        level.swap(trimmed);
      }
      if (size_ < max_size_) return;
    }
  }

  agg_spec spec_;
  int64_t rows_ = 0;
  uint64_t n_ = 0;                           ///< non-null inputs (total weight)
  bool sketch_mode_ = false;                 ///< false: levels_[0] holds every input exactly
  std::vector<std::vector<double>> levels_;  ///< level h items weigh 2^h
  std::vector<size_t> caps_;                 ///< sketch: capacity of each level
  size_t size_ = 0;                          ///< sketch: items held
  size_t max_size_ = 0;                      ///< sketch: sum of caps_
  uint64_t rng_ = 0x5eed5eed5eed5eedULL;
};

// ---- first / last -----------------------------------------------------------------------------

class first_last_acc final : public accumulator {
 public:
  explicit first_last_acc(const agg_spec& spec) : spec_(spec), last_(spec.fn == agg_fn::last) {}

  void add(const value& v, int64_t event_time_us, int sign) override {
    if (sign < 0) return;
    rows_ += sign;
    if (sign == 0 || is_null(v)) return;
    offer(v, event_time_us);
  }
  void merge(const accumulator& other) override {
    const auto* o = dynamic_cast<const first_last_acc*>(&other);
    if (o == this) {
      const first_last_acc copy(*this);
      return merge(copy);
    }
    if (o == nullptr) return;
    rows_ += o->rows_;
    if (!is_null(o->best_)) offer(o->best_, o->time_);
  }
  [[nodiscard]] value result() const override { return best_; }
  [[nodiscard]] bool empty() const override { return rows_ == 0; }
  [[nodiscard]] bool retractable() const override { return false; }
  [[nodiscard]] std::unique_ptr<accumulator> clone() const override {
    return std::make_unique<first_last_acc>(*this);
  }
  void serialize(std::string& out) const override {
    put_header(out, spec_.fn);
    put_svarint(out, rows_);
    put_svarint(out, time_);
    put_value(out, best_);
  }
  [[nodiscard]] bool deserialize(std::string_view& in) override {
    return deserialize_into(*this, in, spec_.fn);
  }
  [[nodiscard]] size_t memory_bytes() const override {
    return sizeof(*this) + value_heap_bytes(best_);
  }

  [[nodiscard]] const agg_spec& spec_copy() const { return spec_; }
  bool read_body(reader& r) {
    return r.svarint(&rows_) && rows_ >= 0 && r.svarint(&time_) && r.val(&best_);
  }

 private:
  void offer(const value& v, int64_t t) {
    if (!is_null(best_)) {
      const int by_time = three_way(t, time_);
      const int c = by_time != 0 ? by_time : compare_values(canonical(v), best_);
      if (last_ ? c <= 0 : c >= 0) return;
    }
    best_ = canonical(v);
    time_ = t;
  }

  agg_spec spec_;
  bool last_;
  int64_t rows_ = 0;
  int64_t time_ = 0;
  value best_;  ///< null until a non-null value arrives
};

}  // namespace

std::optional<agg_fn> parse_agg_fn(std::string_view name, double* q) {
  static constexpr std::pair<std::string_view, agg_fn> names[] = {
      {"count", agg_fn::count},
      {"sum", agg_fn::sum},
      {"avg", agg_fn::avg},
      {"min", agg_fn::min},
      {"max", agg_fn::max},
      {"count_distinct", agg_fn::count_distinct},
      {"approx_count_distinct", agg_fn::approx_count_distinct},
      {"percentile", agg_fn::percentile},
      {"first", agg_fn::first},
      {"last", agg_fn::last},
  };
  for (const auto& [n, f] : names) {
    if (n == name) return f;
  }
  // "pNN": two digits, 01..99 (p50, p90, p95, p99, ...).
  if (name.size() == 3 && name[0] == 'p' && name[1] >= '0' && name[1] <= '9' && name[2] >= '0' &&
      name[2] <= '9') {
    const int pct = (name[1] - '0') * 10 + (name[2] - '0');
    if (pct == 0) return std::nullopt;
    if (q != nullptr) *q = pct / 100.0;
    return agg_fn::percentile;
  }
  return std::nullopt;
}

std::string_view to_string(agg_fn f) {
  switch (f) {
    case agg_fn::count:
      return "count";
    case agg_fn::sum:
      return "sum";
    case agg_fn::avg:
      return "avg";
    case agg_fn::min:
      return "min";
    case agg_fn::max:
      return "max";
    case agg_fn::count_distinct:
      return "count_distinct";
    case agg_fn::approx_count_distinct:
      return "approx_count_distinct";
    case agg_fn::percentile:
      return "percentile";
    case agg_fn::first:
      return "first";
    case agg_fn::last:
      return "last";
  }
  return "?";
}

field_type result_type(const agg_spec& spec) {
  switch (spec.fn) {
    case agg_fn::count:
    case agg_fn::count_distinct:
    case agg_fn::approx_count_distinct:
      return field_type::int64;
    case agg_fn::sum:
      return spec.input_type == field_type::float64 ? field_type::float64 : field_type::int64;
    case agg_fn::avg:
    case agg_fn::percentile:
      return field_type::float64;
    case agg_fn::min:
    case agg_fn::max:
    case agg_fn::first:
    case agg_fn::last:
      return spec.input_type;
  }
  return field_type::int64;
}

std::unique_ptr<accumulator> make_accumulator(const agg_spec& spec) {
  switch (spec.fn) {
    case agg_fn::count:
      return std::make_unique<count_acc>(spec);
    case agg_fn::sum:
    case agg_fn::avg:
      return std::make_unique<sum_acc>(spec);
    case agg_fn::min:
    case agg_fn::max:
    case agg_fn::count_distinct:
      return std::make_unique<multiset_acc>(spec);
    case agg_fn::approx_count_distinct:
      return std::make_unique<hll_acc>(spec);
    case agg_fn::percentile:
      return std::make_unique<percentile_acc>(spec);
    case agg_fn::first:
    case agg_fn::last:
      return std::make_unique<first_last_acc>(spec);
  }
  return nullptr;
}

}  // namespace eddy
