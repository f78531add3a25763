// sample_data.cpp — see sample_data.hpp.
#include "app/sample_data.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <vector>

namespace eddy::app {
namespace {

// ---- deterministic randomness ---------------------------------------------------------------

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// splitmix64: tiny, fast, and the same on every platform.
class rng {
 public:
  explicit rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }
  /// Uniform in [0, n); n > 0. The modulo bias is irrelevant for sample data.
  uint64_t below(uint64_t n) { return next() % n; }
  /// Uniform in [lo, hi].
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  /// Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Index drawn with the given integer weights.
  template <size_t N>
  size_t weighted(const std::array<int, N>& weights) {
    int total = 0;
    for (int w : weights) total += w;
    int x = static_cast<int>(below(static_cast<uint64_t>(total)));
    for (size_t i = 0; i < N; ++i) {
      if (x < weights[i]) return i;
      x -= weights[i];
    }
    return N - 1;
  }

 private:
  uint64_t state_;
};

// ---- the table's vocabulary -----------------------------------------------------------------

constexpr std::array<std::string_view, 5> k_statuses = {
    "Completed", "Cancelled by Driver", "Cancelled by Customer", "Incomplete", "No Driver Found"};
constexpr std::array<int, 5> k_status_weights = {62, 18, 7, 6, 7};
enum : uint8_t { completed = 0, cancelled_by_driver, cancelled_by_customer, incomplete, no_driver };

constexpr std::array<std::string_view, 7> k_vehicles = {
    "Auto", "Go Mini", "Go Sedan", "Bike", "Premier Sedan", "eBike", "Uber XL"};
constexpr std::array<int, 7> k_vehicle_weights = {25, 20, 18, 15, 12, 7, 3};

constexpr std::array<std::string_view, 32> k_locations = {"Palam Vihar",
                                                          "Jhilmil",
                                                          "Khandsa",
                                                          "Central Secretariat",
                                                          "Ghitorni Village",
                                                          "AIIMS",
                                                          "Vaishali",
                                                          "Mayur Vihar",
                                                          "Noida Sector 62",
                                                          "Rajouri Garden",
                                                          "Saket",
                                                          "Dwarka Mor",
                                                          "Cyber Hub",
                                                          "Connaught Place",
                                                          "Lajpat Nagar",
                                                          "Karol Bagh",
                                                          "Hauz Khas",
                                                          "Nehru Place",
                                                          "Indirapuram",
                                                          "Sohna Road",
                                                          "MG Road",
                                                          "Huda City Centre",
                                                          "Chhatarpur",
                                                          "Greater Kailash",
                                                          "Janakpuri",
                                                          "Pitampura",
                                                          "Rohini",
                                                          "Vasant Kunj",
                                                          "Kashmere Gate",
                                                          "Noida Sector 18",
                                                          "Ashok Vihar",
                                                          "Okhla"};

constexpr std::array<std::string_view, 5> k_payments = {"UPI", "Cash", "Uber Wallet", "Credit Card",
                                                        "Debit Card"};
constexpr std::array<int, 5> k_payment_weights = {45, 25, 12, 10, 8};

constexpr int32_t k_days_2024_01_01 = 19723;

constexpr std::string_view k_col_prefix = "ncr_ride_bookings.csv/";

// ---- rows -----------------------------------------------------------------------------------

/// What update/delete targets remember of a live row; the rest is re-derived from the id.
struct live_row {
  int64_t id = 0;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  uint32_t version = 0;
  uint8_t status = completed;
};

/// A full row image. Negative numbers stand for SQL NULL.
struct row_image {
  int64_t id = 0;
  int32_t date_days = 0;
  int32_t time_s = 0;
  int32_t booking_no = 0;
  int32_t customer_no = 0;
  uint8_t status = completed;
  uint8_t vehicle = 0;
  uint8_t pickup = 0;
  uint8_t drop = 0;
  int8_t payment = -1;
  int32_t value_rupees = -1;
  int32_t distance_cents = -1;
  int32_t driver_rating_tenths = -1;
  int32_t customer_rating_tenths = -1;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

row_image make_image(uint64_t seed, const live_row& r) {
  rng g(mix64(seed ^ mix64(static_cast<uint64_t>(r.id) * 0x9e3779b97f4a7c15ULL)));
  row_image img;
  img.id = r.id;
  img.date_days = k_days_2024_01_01 + static_cast<int32_t>(g.below(366));
  img.time_s = static_cast<int32_t>(g.below(86400));
  img.booking_no = static_cast<int32_t>(g.between(1000000, 9999999));
  img.customer_no = static_cast<int32_t>(g.between(1000000, 9999999));
  img.vehicle = static_cast<uint8_t>(g.weighted(k_vehicle_weights));
  img.pickup = static_cast<uint8_t>(g.below(k_locations.size()));
  img.drop =
      static_cast<uint8_t>((img.pickup + 1 + g.below(k_locations.size() - 1)) % k_locations.size());
  const int8_t payment = static_cast<int8_t>(g.weighted(k_payment_weights));
  const int32_t value = static_cast<int32_t>(g.between(50, 4277));
  const int32_t distance = static_cast<int32_t>(g.between(100, 5000));
  const int32_t driver_rating = static_cast<int32_t>(g.between(30, 50));
  int32_t customer_rating = static_cast<int32_t>(g.between(30, 50));
  if (r.version > 0) {  // a later update re-rated the ride
    rng v(mix64(seed ^ mix64(static_cast<uint64_t>(r.id)) ^ r.version));
    customer_rating = static_cast<int32_t>(v.between(30, 50));
  }
  img.status = r.status;
  switch (r.status) {
    case completed:
      img.payment = payment;
      img.value_rupees = value;
      img.distance_cents = distance;
      img.driver_rating_tenths = driver_rating;
      img.customer_rating_tenths = customer_rating;
      break;
    case incomplete:
      img.payment = payment;
      img.value_rupees = value;
      img.distance_cents = distance;
      break;
    default:  // cancelled or no driver: no ride, no money
      break;
  }
  img.created_us = r.created_us;
  img.updated_us = r.updated_us;
  return img;
}

// ---- text helpers ---------------------------------------------------------------------------

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

void append_padded(std::string& out, int64_t v, int width) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  for (int n = static_cast<int>(res.ptr - buf); n < width; ++n) out.push_back('0');
  out.append(buf, res.ptr);
}

/// YYYY-MM-DD of a day number (days since 1970-01-01), proleptic Gregorian.
std::string format_date(int32_t days) {
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  std::string s;
  append_padded(s, y, 4);
  s.push_back('-');
  append_padded(s, m, 2);
  s.push_back('-');
  append_padded(s, d, 2);
  return s;
}

std::string format_time(int32_t secs) {
  std::string s;
  append_padded(s, secs / 3600, 2);
  s.push_back(':');
  append_padded(s, secs / 60 % 60, 2);
  s.push_back(':');
  append_padded(s, secs % 60, 2);
  return s;
}

/// Python's str(float) of a value with at most two decimals: 45.75, 45.7, 45.0.
std::string format_cents(int32_t cents) {
  std::string s;
  append_int(s, cents / 100);
  s.push_back('.');
  const int32_t frac = cents % 100;
  if (frac % 10 == 0) {
    append_int(s, frac / 10);
  } else {
    append_padded(s, frac, 2);
  }
  return s;
}

std::string format_tenths(int32_t tenths) {
  std::string s;
  append_int(s, tenths / 10);
  s.push_back('.');
  append_int(s, tenths % 10);
  return s;
}

/// How a malformed record breaks its row.
enum class mutation : uint8_t { none, id_string, id_missing, bad_utf8, bad_value };

constexpr std::string_view k_schema_row_fields =
    R"([{"type":"int64","optional":false,"field":"id"},)"
    R"({"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"ncr_ride_bookings.csv/date"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/time"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/booking+id"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/booking+status"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/customer+id"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/vehicle+type"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/pickup+location"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/drop+location"},)"
    R"({"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"ncr_ride_bookings.csv/booking+value"},)"
    R"({"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"6"},"field":"ncr_ride_bookings.csv/ride+distance"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/driver+ratings"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/customer+rating"},)"
    R"({"type":"string","optional":true,"field":"ncr_ride_bookings.csv/payment+method"},)"
    R"({"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"created_at"},)"
    R"({"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"}])";

constexpr std::string_view k_value_schema_name =
    "business_postgres.public.business_ncr_ride_bookings";

std::string make_value_schema() {
  std::string s = R"({"type":"struct","fields":[)";
  for (std::string_view field : {"before", "after"}) {
    s += R"({"type":"struct","fields":)";
    s += k_schema_row_fields;
    s += R"(,"optional":true,"name":")";
    s += k_value_schema_name;
    s += R"(.Value","field":")";
    s += field;
    s += R"("},)";
  }
  s +=
      R"({"type":"struct","fields":[)"
      R"({"type":"string","optional":false,"field":"version"},)"
      R"({"type":"string","optional":false,"field":"connector"},)"
      R"({"type":"string","optional":false,"field":"name"},)"
      R"({"type":"int64","optional":false,"field":"ts_ms"},)"
      R"({"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},)"
      R"({"type":"string","optional":false,"field":"db"},)"
      R"({"type":"string","optional":false,"field":"schema"},)"
      R"({"type":"string","optional":false,"field":"table"},)"
      R"({"type":"int64","optional":true,"field":"txId"},)"
      R"({"type":"int64","optional":true,"field":"lsn"}],)"
      R"("optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},)"
      R"({"type":"string","optional":false,"field":"op"},)"
      R"({"type":"int64","optional":true,"field":"ts_ms"}],)"
      R"("optional":false,"name":")";
  s += k_value_schema_name;
  s += R"(.Envelope"})";
  return s;
}

constexpr std::string_view k_key_schema =
    R"({"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"business_postgres.public.business_ncr_ride_bookings.Key"})";

/// Writes the row's columns (no braces) in the given shape. `plain` = schema shape (plain
/// strings, Decimal bytes, Date days); otherwise the b'...' text shape of the seed table.
void append_row_fields(std::string& out, const row_image& r, bool plain, mutation m) {
  auto text_col = [&](std::string_view col, std::string_view v, bool null) {
    out += ",\"";
    out += k_col_prefix;
    out += col;
    out += "\":";
    if (null) {
      out += "null";
    } else if (plain) {
      out += '"';
      out += v;
      out += '"';
    } else {
      out += "\"b'";
      out += v;
      out += "'\"";
    }
  };
  auto decimal_col = [&](std::string_view col, int64_t unscaled, bool null, std::string_view text) {
    if (!plain) return text_col(col, text, null);
    out += ",\"";
    out += k_col_prefix;
    out += col;
    out += "\":";
    if (null) {
      out += "null";
    } else {
      out += '"';
      out += encode_base64(decimal_bytes(unscaled));
      out += '"';
    }
  };

  // Every column after id is written with a leading comma; without id the first one is erased.
  const size_t start = out.size();
  if (m == mutation::id_string) {
    out += R"("id":"abc")";
  } else if (m != mutation::id_missing) {
    out += "\"id\":";
    append_int(out, r.id);
  }
  if (plain) {
    out += ",\"";
    out += k_col_prefix;
    out += "date\":";
    append_int(out, r.date_days);
  } else {
    text_col("date", format_date(r.date_days), false);
  }
  text_col("time", format_time(r.time_s), false);
  std::string booking = "CNR";
  append_int(booking, r.booking_no);
  text_col("booking+id", booking, false);
  text_col("booking+status", k_statuses[r.status], false);
  std::string customer = "CID";
  append_int(customer, r.customer_no);
  text_col("customer+id", customer, false);
  text_col("vehicle+type", k_vehicles[r.vehicle], false);
  if (m == mutation::bad_utf8) {
    text_col("pickup+location", "Palam \xC3\x28Vihar\xFF", false);
  } else {
    text_col("pickup+location", k_locations[r.pickup], false);
  }
  text_col("drop+location", k_locations[r.drop], false);
  if (m == mutation::bad_value) {
    text_col("booking+value", "12x", false);  // "b'12x'", or "12x" (not base64) in schema shape
  } else {
    decimal_col("booking+value", int64_t{r.value_rupees} * 100, r.value_rupees < 0,
                format_tenths(r.value_rupees * 10));
  }
  decimal_col("ride+distance", r.distance_cents, r.distance_cents < 0,
              format_cents(r.distance_cents));
  text_col("driver+ratings", format_tenths(r.driver_rating_tenths), r.driver_rating_tenths < 0);
  text_col("customer+rating", format_tenths(r.customer_rating_tenths),
           r.customer_rating_tenths < 0);
  text_col("payment+method", r.payment < 0 ? std::string_view{} : k_payments[r.payment],
           r.payment < 0);
  out += ",\"created_at\":";
  append_int(out, r.created_us);
  out += ",\"updated_at\":";
  append_int(out, r.updated_us);
  if (m == mutation::id_missing) out.erase(start, 1);
}

}  // namespace

// ---- public helpers -------------------------------------------------------------------------

std::string_view to_string(sample_format f) {
  switch (f) {
    case sample_format::unwrapped:
      return "unwrapped";
    case sample_format::envelope:
      return "envelope";
    case sample_format::schema:
      return "schema";
  }
  return "unwrapped";
}

std::optional<sample_format> parse_sample_format(std::string_view name) {
  if (name == "unwrapped") return sample_format::unwrapped;
  if (name == "envelope") return sample_format::envelope;
  if (name == "schema") return sample_format::schema;
  return std::nullopt;
}

std::string encode_base64(std::string_view bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                       uint32_t{static_cast<uint8_t>(bytes[i + 2])};
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += k_alphabet[(n >> 6) & 63];
    out += k_alphabet[n & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) n |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += rest == 2 ? k_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string decimal_bytes(int64_t unscaled) {
  // Big-endian two's complement, dropping leading bytes that only repeat the sign.
  std::string be(8, '\0');
  auto u = static_cast<uint64_t>(unscaled);
  for (int i = 7; i >= 0; --i) {
    be[static_cast<size_t>(i)] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  size_t start = 0;
  while (start < 7) {
    const auto b = static_cast<uint8_t>(be[start]);
    const auto next = static_cast<uint8_t>(be[start + 1]);
    if ((b == 0x00 && (next & 0x80) == 0) || (b == 0xff && (next & 0x80) != 0)) {
      ++start;
    } else {
      break;
    }
  }
  return be.substr(start);
}

// ---- the generator --------------------------------------------------------------------------

namespace {

constexpr int64_t max_i64 = std::numeric_limits<int64_t>::max();
constexpr int64_t min_i64 = std::numeric_limits<int64_t>::min();

/// a + b, saturating at the int64 bounds.
int64_t add_sat(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? max_i64 : min_i64;
  return r;
}
/// n * b for b >= 0, saturating at INT64_MAX.
int64_t mul_sat(uint64_t n, int64_t b) {
  int64_t r = 0;
  if (n > static_cast<uint64_t>(max_i64) || __builtin_mul_overflow(static_cast<int64_t>(n), b, &r))
    return max_i64;
  return r;
}

}  // namespace

struct sample_generator::impl {
  sample_options opt;
  sample_stats stats;
  rng r;
  std::string value_schema;
  std::vector<live_row> live;
  int64_t next_id = 1;
  uint64_t events = 0;    // messages other than tombstones
  double bad_credit = 0;  // error diffusion: exact bad ratio over the whole stream
  std::optional<sample_message> pending_tombstone;

  explicit impl(const sample_options& o) : opt(o), r(mix64(o.seed) ^ 0x5eed5eed5eed5eedULL) {
    if (opt.id_space < 1) opt.id_space = 1;
    if (opt.event_spacing_us < 0) opt.event_spacing_us = 0;
    if (opt.disorder_ms < 0) opt.disorder_ms = 0;
    if (opt.disorder_ms > max_i64 / 1000) opt.disorder_ms = max_i64 / 1000;
    if (!(opt.bad_ratio > 0)) opt.bad_ratio = 0;  // also maps NaN to 0
    if (opt.bad_ratio > 1) opt.bad_ratio = 1;
    if (opt.format == sample_format::schema) value_schema = make_value_schema();
  }

  std::string make_key(int64_t id) const {
    std::string k;
    if (opt.format == sample_format::schema) {
      k = R"({"schema":)";
      k += k_key_schema;
      k += R"(,"payload":{"id":)";
      append_int(k, id);
      k += "}}";
    } else {
      k = R"({"id":)";
      append_int(k, id);
      k += '}';
    }
    return k;
  }

  /// The message value for a change. `before`/`after` may be null per op.
  std::string make_value(char op, const row_image* before, const row_image* after,
                         int64_t source_ts_ms, int64_t ts_ms, mutation m) const {
    std::string v;
    v.reserve(opt.format == sample_format::schema ? value_schema.size() + 1200 : 600);
    if (opt.format == sample_format::unwrapped) {
      const row_image* img = after ? after : before;
      v += '{';
      append_row_fields(v, *img, false, m);
      v += R"(,"__op":")";
      v += op;
      v += R"(","__source_ts_ms":)";
      append_int(v, source_ts_ms);
      v += R"(,"__deleted":")";
      v += op == 'd' ? "true" : "false";
      v += "\"}";
      return v;
    }
    const bool plain = opt.format == sample_format::schema;
    if (plain) {
      v += R"({"schema":)";
      v += value_schema;
      v += R"(,"payload":)";
    }
    v += R"({"before":)";
    if (before) {
      v += '{';
      append_row_fields(v, *before, plain, op == 'd' ? m : mutation::none);
      v += '}';
    } else {
      v += "null";
    }
    v += R"(,"after":)";
    if (after) {
      v += '{';
      append_row_fields(v, *after, plain, m);
      v += '}';
    } else {
      v += "null";
    }
    v +=
        R"(,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"business_postgres","ts_ms":)";
    append_int(v, source_ts_ms);
    v += R"(,"snapshot":")";
    v += op == 'r' ? "true" : "false";
    v += R"(","db":"business","schema":"public","table":"business_ncr_ride_bookings","txId":)";
    append_int(v, 1000 + static_cast<int64_t>(events));
    v += R"(,"lsn":)";
    append_int(v, 33554432 + static_cast<int64_t>(events) * 264);
    v += R"(},"op":")";
    v += op;
    v += R"(","ts_ms":)";
    append_int(v, ts_ms);
    v += '}';
    if (plain) v += '}';
    return v;
  }

  void remember(const live_row& row) {
    if (live.size() < static_cast<size_t>(opt.id_space)) {
      live.push_back(row);
    } else {
      live[r.below(live.size())] = row;  // forget a random remembered row
    }
  }

  sample_message bad_record(int64_t nominal_ms, int64_t event_us) {
    const uint64_t n = stats.bad;  // index of this bad record
    sample_message msg;
    msg.op = 'x';
    msg.timestamp_ms = nominal_ms;
    msg.key = make_key(next_id);
    const int64_t source_ts_ms = event_us / 1000;
    if (n % 50 == 49) {  // rare: a 100k-deep nesting bomb
      msg.value = std::string(100000, '[');
      return msg;
    }
    live_row lr{next_id, event_us, event_us, 0, completed};
    const row_image img = make_image(opt.seed, lr);
    auto good = [&](mutation m) {
      return make_value('c', nullptr, &img, source_ts_ms, nominal_ms, m);
    };
    switch (n % 7) {
      case 0: {
        std::string v = good(mutation::none);
        v.resize(v.size() / 2);
        msg.value = std::move(v);
        break;
      }
      case 1:
        msg.value = good(mutation::id_string);
        break;
      case 2:
        msg.value = good(mutation::id_missing);
        break;
      case 3:
        msg.value = good(mutation::bad_utf8);
        break;
      case 4:
        msg.value = std::string();
        break;
      case 5:
        msg.value = "[" + good(mutation::none) + "]";
        break;
      default:
        msg.value = good(mutation::bad_value);
        break;
    }
    return msg;
  }

  sample_message next() {
    if (pending_tombstone) {
      sample_message t = std::move(*pending_tombstone);
      pending_tombstone.reset();
      bad_credit += opt.bad_ratio;  // the ratio holds over all messages, tombstones included
      ++stats.messages;
      ++stats.tombstones;
      return t;
    }
    const int64_t nominal_us = add_sat(opt.start_time_us, mul_sat(events, opt.event_spacing_us));
    const int64_t nominal_ms = nominal_us / 1000;
    const int64_t jitter_us =
        opt.disorder_ms > 0 ? r.between(0, opt.disorder_ms * 1000) : int64_t{0};
    const int64_t event_us = add_sat(nominal_us, -jitter_us);
    const int64_t source_ts_ms = event_us / 1000;

    bad_credit += opt.bad_ratio;
    if (bad_credit >= 1.0) {
      bad_credit -= 1.0;
      sample_message m = bad_record(nominal_ms, event_us);
      ++events;
      ++stats.messages;
      ++stats.bad;
      return m;
    }

    static constexpr std::array<int, 4> k_op_weights = {60, 10, 25, 5};  // c r u d
    size_t op_index = r.weighted(k_op_weights);
    if (op_index >= 2 && live.empty()) op_index = 0;

    sample_message msg;
    msg.timestamp_ms = nominal_ms;
    switch (op_index) {
      case 0:
      case 1: {
        live_row row{next_id++, event_us, event_us, 0,
                     static_cast<uint8_t>(r.weighted(k_status_weights))};
        remember(row);
        const row_image img = make_image(opt.seed, row);
        msg.op = op_index == 0 ? 'c' : 'r';
        msg.key = make_key(row.id);
        msg.value = make_value(msg.op, nullptr, &img, source_ts_ms, nominal_ms, mutation::none);
        ++(op_index == 0 ? stats.creates : stats.reads);
        break;
      }
      case 2: {
        live_row& row = live[r.below(live.size())];
        const row_image before = make_image(opt.seed, row);
        switch (row.status) {
          case incomplete:
            row.status = completed;
            break;
          case no_driver:
            row.status = cancelled_by_customer;
            break;
          default:
            break;  // re-rating a completed ride, or touching a cancelled one
        }
        ++row.version;
        row.updated_us = std::max(event_us, add_sat(row.updated_us, 1));
        const row_image after = make_image(opt.seed, row);
        msg.op = 'u';
        msg.key = make_key(row.id);
        msg.value = make_value('u', &before, &after, source_ts_ms, nominal_ms, mutation::none);
        ++stats.updates;
        break;
      }
      default: {
        const size_t slot = r.below(live.size());
        const live_row row = live[slot];
        live[slot] = live.back();
        live.pop_back();
        const row_image img = make_image(opt.seed, row);
        msg.op = 'd';
        msg.key = make_key(row.id);
        msg.value = make_value('d', &img, nullptr, source_ts_ms, nominal_ms, mutation::none);
        ++stats.deletes;
        sample_message t;
        t.op = 't';
        t.key = msg.key;
        t.timestamp_ms = nominal_ms;
        pending_tombstone = std::move(t);
        break;
      }
    }
    ++events;
    ++stats.messages;
    return msg;
  }
};

sample_generator::sample_generator(const sample_options& options)
    : impl_(std::make_unique<impl>(options)) {}
sample_generator::~sample_generator() = default;
sample_generator::sample_generator(sample_generator&&) noexcept = default;
sample_generator& sample_generator::operator=(sample_generator&&) noexcept = default;

sample_message sample_generator::next() {
  return impl_->next();
}
const sample_stats& sample_generator::stats() const {
  return impl_->stats;
}
const sample_options& sample_generator::options() const {
  return impl_->opt;
}

}  // namespace eddy::app
