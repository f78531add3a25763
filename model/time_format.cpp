#include "model/time_format.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace eddy {
namespace {

constexpr int64_t micros_per_second = 1'000'000;
constexpr int64_t seconds_per_day = 86'400;

// ---- calendar arithmetic (Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms") ----

struct civil_date {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

/// Days since 1970-01-01 of the proleptic Gregorian date y-m-d.
constexpr int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);                 // [0, 399]
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// Inverse of days_from_civil.
constexpr civil_date civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);                    // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                       // [0, 11]
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;               // [1, 31]
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;                  // [1, 12]
  return {y + (m <= 2 ? 1 : 0), m, d};
}

static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);
static_assert(civil_from_days(-1).year == 1969 && civil_from_days(-1).day == 31);

constexpr bool is_leap(int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

constexpr unsigned days_in_month(int64_t y, unsigned m) {
  constexpr std::array<unsigned, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// 0 = Sunday.
constexpr unsigned weekday_from_days(int64_t z) {
  return static_cast<unsigned>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

static_assert(weekday_from_days(0) == 4);   // 1970-01-01 was a Thursday
static_assert(weekday_from_days(-1) == 3);  // 1969-12-31 was a Wednesday

constexpr int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// ---- POSIX TZ strings (the TZif footer, RFC 8536 section 3.3) ----

struct posix_rule {
  enum class kind : uint8_t { julian_no_leap, zero_based, month_week_day } k = kind::zero_based;
  int day = 0;          // Jn: 1..365, n: 0..365, M: weekday 0..6
  int month = 0;        // M only
  int week = 0;         // M only, 1..5
  int64_t time = 7200;  // seconds after local midnight, may be negative or > 24h
};

struct posix_tz {
  int64_t std_offset = 0;  // seconds east of UTC
  bool has_dst = false;
  int64_t dst_offset = 0;
  posix_rule start;
  posix_rule end;
};

class posix_parser {
 public:
  explicit posix_parser(std::string_view s) : s_(s) {}

  std::optional<posix_tz> parse() {
    posix_tz tz;
    if (!name()) return std::nullopt;
    auto off = hms(true);
    if (!off) return std::nullopt;
    tz.std_offset = -*off;  // POSIX offsets count west of UTC
    if (done()) return tz;
    if (!name()) return std::nullopt;
    tz.has_dst = true;
    tz.dst_offset = tz.std_offset + 3600;
    if (!done() && peek() != ',') {
      auto dst = hms(true);
      if (!dst) return std::nullopt;
      tz.dst_offset = -*dst;
    }
    if (done()) return std::nullopt;  // DST without rules: no default rule is assumed here
    if (!eat(',') || !rule(tz.start) || !eat(',') || !rule(tz.end) || !done()) return std::nullopt;
    return tz;
  }

 private:
  [[nodiscard]] bool done() const { return i_ >= s_.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool name() {
    if (eat('<')) {
      const size_t start = i_;
      while (!done() && peek() != '>') ++i_;
      const size_t len = i_ - start;
      return eat('>') && len >= 3;
    }
    const size_t start = i_;
    while (!done() && is_alpha(peek())) ++i_;
    return i_ - start >= 3;
  }

  std::optional<int64_t> number(int max_digits) {
    int64_t n = 0;
    int digits = 0;
    while (!done() && is_digit(peek()) && digits < max_digits) {
      n = n * 10 + (peek() - '0');
      ++i_;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    return n;
  }

  /// [+-]hh[:mm[:ss]]; hours up to 167 (RFC 8536 extension).
  std::optional<int64_t> hms(bool allow_sign) {
    int64_t sign = 1;
    if (allow_sign && (peek() == '+' || peek() == '-')) sign = s_[i_++] == '-' ? -1 : 1;
    auto h = number(3);
    if (!h || *h > 167) return std::nullopt;
    int64_t total = *h * 3600;
    if (eat(':')) {
      auto m = number(2);
      if (!m || *m > 59) return std::nullopt;
      total += *m * 60;
      if (eat(':')) {
        auto sec = number(2);
        if (!sec || *sec > 59) return std::nullopt;
        total += *sec;
      }
    }
    return sign * total;
  }

  bool rule(posix_rule& r) {
    if (eat('J')) {
      auto n = number(3);
      if (!n || *n < 1 || *n > 365) return false;
      r.k = posix_rule::kind::julian_no_leap;
      r.day = static_cast<int>(*n);
    } else if (eat('M')) {
      auto m = number(2);
      if (!m || *m < 1 || *m > 12 || !eat('.')) return false;
      auto w = number(1);
      if (!w || *w < 1 || *w > 5 || !eat('.')) return false;
      auto d = number(1);
      if (!d || *d > 6) return false;
      r.k = posix_rule::kind::month_week_day;
      r.month = static_cast<int>(*m);
      r.week = static_cast<int>(*w);
      r.day = static_cast<int>(*d);
    } else {
      auto n = number(3);
      if (!n || *n > 365) return false;
      r.k = posix_rule::kind::zero_based;
      r.day = static_cast<int>(*n);
    }
    if (eat('/')) {
      auto t = hms(true);
      if (!t) return false;
      r.time = *t;
    }
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

/// Local seconds since the epoch (in the zone's wall time) at which `r` fires in `year`.
int64_t rule_local_seconds(const posix_rule& r, int64_t year) {
  int64_t day = 0;
  switch (r.k) {
    case posix_rule::kind::julian_no_leap: {
      day = days_from_civil(year, 1, 1) + r.day - 1;
      if (is_leap(year) && r.day >= 60) ++day;
      break;
    }
    case posix_rule::kind::zero_based:
      day = days_from_civil(year, 1, 1) + r.day;
      break;
    case posix_rule::kind::month_week_day: {
      const auto month = static_cast<unsigned>(r.month);
      const int64_t first = days_from_civil(year, month, 1);
      const auto first_wd = static_cast<int>(weekday_from_days(first));
      int mday = 1 + (r.day - first_wd + 7) % 7 + 7 * (r.week - 1);
      while (mday > static_cast<int>(days_in_month(year, month))) mday -= 7;
      day = first + mday - 1;
      break;
    }
  }
  return day * seconds_per_day + r.time;
}

int64_t posix_offset(const posix_tz& tz, int64_t utc_seconds) {
  if (!tz.has_dst) return tz.std_offset;
  const int64_t year =
      civil_from_days(floor_div(utc_seconds + tz.std_offset, seconds_per_day)).year;
  const int64_t start = rule_local_seconds(tz.start, year) - tz.std_offset;  // std -> dst
  const int64_t end = rule_local_seconds(tz.end, year) - tz.dst_offset;      // dst -> std
  const bool in_dst = start < end ? (utc_seconds >= start && utc_seconds < end)
                                  : !(utc_seconds >= end && utc_seconds < start);
  return in_dst ? tz.dst_offset : tz.std_offset;
}

// ---- TZif files (RFC 8536) ----

struct tz_data {
  std::vector<int64_t> transitions;   // UTC seconds, ascending
  std::vector<uint8_t> type_of;       // local time type index per transition
  std::vector<int32_t> type_offsets;  // utoff per local time type
  std::optional<posix_tz> footer;     // rule for instants after the last transition

  [[nodiscard]] int64_t offset_at(int64_t utc_seconds) const {
    if (transitions.empty() || utc_seconds < transitions.front()) {
      if (transitions.empty() && footer) return posix_offset(*footer, utc_seconds);
      return type_offsets.empty() ? 0 : type_offsets.front();
    }
    if (utc_seconds >= transitions.back() && footer) return posix_offset(*footer, utc_seconds);
    const auto it = std::upper_bound(transitions.begin(), transitions.end(), utc_seconds);
    const auto i = static_cast<size_t>(std::distance(transitions.begin(), it)) - 1;
    return type_offsets[type_of[i]];
  }
};

class byte_reader {
 public:
  explicit byte_reader(std::string_view data) : d_(data) {}
  [[nodiscard]] bool has(size_t n) const { return d_.size() - i_ >= n; }
  [[nodiscard]] size_t pos() const { return i_; }
  void skip(size_t n) { i_ += n; }
  uint8_t u8() { return static_cast<uint8_t>(d_[i_++]); }
  uint32_t u32() {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = (v << 8) | u8();
    return v;
  }
  int64_t i64() {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | u8();
    return static_cast<int64_t>(v);
  }
  std::string_view rest() const { return d_.substr(i_); }

 private:
  std::string_view d_;
  size_t i_ = 0;
};

struct tzif_counts {
  uint32_t isut = 0, isstd = 0, leap = 0, time = 0, type = 0, chars = 0;
};

std::optional<tzif_counts> read_header(byte_reader& r, char* version) {
  if (!r.has(44)) return std::nullopt;
  if (r.u8() != 'T' || r.u8() != 'Z' || r.u8() != 'i' || r.u8() != 'f') return std::nullopt;
  *version = static_cast<char>(r.u8());
  r.skip(15);
  tzif_counts c;
  c.isut = r.u32();
  c.isstd = r.u32();
  c.leap = r.u32();
  c.time = r.u32();
  c.type = r.u32();
  c.chars = r.u32();
  if (c.type == 0 || c.type > 256 || c.time > 100'000 || c.chars > 100'000 || c.leap > 100'000 ||
      c.isut > 256 || c.isstd > 256) {
    return std::nullopt;
  }
  return c;
}

size_t data_block_size(const tzif_counts& c, size_t time_size) {
  return c.time * time_size + c.time + c.type * 6 + c.chars + c.leap * (time_size + 4) + c.isstd +
         c.isut;
}

std::optional<tz_data> parse_tzif(std::string_view bytes, std::string* error) {
  auto fail = [&](const char* what) -> std::optional<tz_data> {
    if (error) *error = what;
    return std::nullopt;
  };
  byte_reader r(bytes);
  char version = 0;
  auto c = read_header(r, &version);
  if (!c) return fail("not a TZif file");
  size_t time_size = 4;
  if (version >= '2') {
    // Skip the version 1 block; the version 2+ block that follows has 64-bit times.
    const size_t v1 = data_block_size(*c, 4);
    if (!r.has(v1)) return fail("truncated TZif file");
    r.skip(v1);
    c = read_header(r, &version);
    if (!c) return fail("bad TZif version 2 header");
    time_size = 8;
  }
  if (!r.has(data_block_size(*c, time_size))) return fail("truncated TZif file");

  tz_data tz;
  tz.transitions.reserve(c->time);
  for (uint32_t i = 0; i < c->time; ++i) {
    tz.transitions.push_back(time_size == 8 ? r.i64()
                                            : static_cast<int64_t>(static_cast<int32_t>(r.u32())));
  }
  if (!std::is_sorted(tz.transitions.begin(), tz.transitions.end())) {
    return fail("TZif transitions out of order");
  }
  tz.type_of.reserve(c->time);
  for (uint32_t i = 0; i < c->time; ++i) {
    const uint8_t t = r.u8();
    if (t >= c->type) return fail("TZif transition names an unknown type");
    tz.type_of.push_back(t);
  }
  for (uint32_t i = 0; i < c->type; ++i) {
    const auto utoff = static_cast<int32_t>(r.u32());
    r.skip(2);  // isdst, desigidx
    tz.type_offsets.push_back(utoff);
  }
  r.skip(c->chars + c->leap * (time_size + 4) + c->isstd + c->isut);

  if (time_size == 8) {
    const std::string_view rest = r.rest();
    if (rest.size() >= 2 && rest.front() == '\n') {
      const size_t end = rest.find('\n', 1);
      if (end != std::string_view::npos && end > 1) {
        tz.footer = posix_parser(rest.substr(1, end - 1)).parse();
      }
    }
  }
  return tz;
}

bool valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/') return false;
  size_t segment_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      const std::string_view seg = name.substr(segment_start, i - segment_start);
      if (seg.empty() || seg == "." || seg == "..") return false;
      segment_start = i + 1;
      continue;
    }
    const char ch = name[i];
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '+' || ch == '.';
    if (!ok) return false;
  }
  return true;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/// Reads exactly `n` digits at s[i...]; advances i.
std::optional<int> digits(std::string_view s, size_t& i, size_t n) {
  if (s.size() - i < n) return std::nullopt;
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!is_digit(s[i + k])) return std::nullopt;
    v = v * 10 + (s[i + k] - '0');
  }
  i += n;
  return v;
}

/// "+05:30", "-0800", "+05", "+00:09:21": seconds east of UTC; advances i past it.
std::optional<int64_t> parse_offset(std::string_view s, size_t& i) {
  if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return std::nullopt;
  const int64_t sign = s[i] == '-' ? -1 : 1;
  ++i;
  auto h = digits(s, i, 2);
  if (!h || *h > 23) return std::nullopt;
  int m = 0;
  int sec = 0;
  if (i < s.size()) {
    const bool extended = s[i] == ':';
    if (extended) ++i;
    auto mm = digits(s, i, 2);
    if (!mm || *mm > 59) return std::nullopt;
    m = *mm;
    if (i < s.size() && (extended ? s[i] == ':' : is_digit(s[i]))) {
      if (extended) ++i;
      auto ss = digits(s, i, 2);  // seconds, as format_iso prints for historical offsets
      if (!ss || *ss > 59) return std::nullopt;
      sec = *ss;
    }
  }
  return sign * (*h * 3600 + m * 60 + sec);
}

/// Appends non-negative `v` in decimal, zero-padded to at least `width` digits.
void append_padded(std::string& out, int64_t v, int width) {
  std::array<char, 24> buf{};
  size_t n = buf.size();
  do {
    buf[--n] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n > 0);
  while (buf.size() - n < static_cast<size_t>(width) && n > 0) buf[--n] = '0';
  out.append(buf.data() + n, buf.size() - n);
}

/// Whole seconds and the microseconds past them (in [0, 1e6)) of `t`, for every int64 (the
/// seconds, unlike the microseconds, leave room for an offset to be added).
struct split_time {
  int64_t secs;
  int64_t frac;
};
split_time split_seconds(timestamp t) {
  int64_t frac = t.micros % micros_per_second;
  if (frac < 0) frac += micros_per_second;
  return {floor_div(t.micros, micros_per_second), frac};
}

/// "yyyy-MM-dd<sep>HH:mm:ss[.ffffff]" of local time `secs` + `frac` µs, fraction trimmed.
void append_local(std::string& out, int64_t secs, int64_t frac, char sep) {
  const int64_t days = floor_div(secs, seconds_per_day);
  const int64_t sod = secs - days * seconds_per_day;
  const civil_date d = civil_from_days(days);
  if (d.year < 0) {
    out.push_back('-');
    append_padded(out, -d.year, 4);
  } else {
    append_padded(out, d.year, 4);
  }
  out.push_back('-');
  append_padded(out, d.month, 2);
  out.push_back('-');
  append_padded(out, d.day, 2);
  out.push_back(sep);
  append_padded(out, sod / 3600, 2);
  out.push_back(':');
  append_padded(out, sod / 60 % 60, 2);
  out.push_back(':');
  append_padded(out, sod % 60, 2);
  if (frac != 0) {
    int width = 6;
    while (frac % 10 == 0) {
      frac /= 10;
      --width;
    }
    out.push_back('.');
    append_padded(out, frac, width);
  }
}

}  // namespace

time_formatter::time_formatter() = default;

std::optional<time_formatter> time_formatter::for_zone(std::string_view zone, std::string* error) {
  time_formatter f;
  f.zone_ = std::string(zone);
  if (zone == "UTC" || zone == "Z" || zone == "utc") return f;
  if (!zone.empty() && (zone.front() == '+' || zone.front() == '-')) {
    size_t i = 0;
    auto off = parse_offset(zone, i);
    if (!off || i != zone.size()) {
      if (error) *error = "invalid time zone offset \"" + std::string(zone) + "\"";
      return std::nullopt;
    }
    f.fixed_offset_s_ = *off;
    return f;
  }
  if (!valid_zone_name(zone)) {
    if (error) *error = "unknown time zone \"" + std::string(zone) + "\"";
    return std::nullopt;
  }
  const std::string path = "/usr/share/zoneinfo/" + std::string(zone);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "unknown time zone \"" + std::string(zone) + "\" (no " + path + ")";
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string why;
  auto data = parse_tzif(buf.str(), &why);
  if (!data) {
    if (error) *error = "time zone \"" + std::string(zone) + "\": " + why + " (" + path + ")";
    return std::nullopt;
  }
  f.tz_ = std::make_shared<const tz_data>(std::move(*data));
  return f;
}

int64_t time_formatter::offset_seconds(timestamp t) const {
  if (!tz_) return fixed_offset_s_;
  return static_cast<const tz_data*>(tz_.get())->offset_at(floor_div(t.micros, micros_per_second));
}

void time_formatter::append_console(std::string& out, timestamp t) const {
  const split_time st = split_seconds(t);
  append_local(out, st.secs + offset_seconds(t), st.frac, ' ');
}

void time_formatter::append_iso(std::string& out, timestamp t) const {
  const int64_t off = offset_seconds(t);
  const split_time st = split_seconds(t);
  append_local(out, st.secs + off, st.frac, 'T');
  if (off == 0) {
    out.push_back('Z');
    return;
  }
  const int64_t a = off < 0 ? -off : off;
  out.push_back(off < 0 ? '-' : '+');
  append_padded(out, a / 3600, 2);
  out.push_back(':');
  append_padded(out, a / 60 % 60, 2);
  if (a % 60 != 0) {
    out.push_back(':');
    append_padded(out, a % 60, 2);
  }
}

std::string time_formatter::format_console(timestamp t) const {
  std::string out;
  out.reserve(26);
  append_console(out, t);
  return out;
}

std::string time_formatter::format_iso(timestamp t) const {
  std::string out;
  out.reserve(32);
  append_iso(out, t);
  return out;
}

std::optional<timestamp> parse_iso_timestamp(std::string_view s) {
  size_t i = 0;
  auto year = digits(s, i, 4);
  if (!year || i >= s.size() || s[i++] != '-') return std::nullopt;
  auto month = digits(s, i, 2);
  if (!month || *month < 1 || *month > 12 || i >= s.size() || s[i++] != '-') return std::nullopt;
  auto day = digits(s, i, 2);
  if (!day || *day < 1 || static_cast<unsigned>(*day) > days_in_month(*year, *month)) {
    return std::nullopt;
  }
  const int64_t days =
      days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  if (i == s.size()) return timestamp{days * seconds_per_day * micros_per_second};

  if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
  ++i;
  auto hour = digits(s, i, 2);
  if (!hour || *hour > 23 || i >= s.size() || s[i++] != ':') return std::nullopt;
  auto minute = digits(s, i, 2);
  if (!minute || *minute > 59) return std::nullopt;
  int second = 0;
  int64_t frac_micros = 0;
  if (i < s.size() && s[i] == ':') {
    ++i;
    auto sec = digits(s, i, 2);
    if (!sec || *sec > 59) return std::nullopt;
    second = *sec;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
      ++i;
      size_t n = 0;
      while (i < s.size() && is_digit(s[i])) {
        if (n < 6) frac_micros = frac_micros * 10 + (s[i] - '0');
        ++n;
        ++i;
      }
      if (n == 0 || n > 9) return std::nullopt;
      for (size_t k = n; k < 6; ++k) frac_micros *= 10;
    }
  }
  int64_t offset = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else {
      auto off = parse_offset(s, i);
      if (!off) return std::nullopt;
      offset = *off;
    }
  }
  if (i != s.size()) return std::nullopt;
  const int64_t secs = days * seconds_per_day + *hour * 3600 + *minute * 60 + second - offset;
  return timestamp{secs * micros_per_second + frac_micros};
}

}  // namespace eddy
