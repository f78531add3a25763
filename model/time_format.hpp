// time_format.hpp — printing and parsing instants in a configured time zone.
//
// A time_formatter is immutable after construction and safe to share between threads.
// Zones: "UTC" (default), fixed offsets "+05:30" / "-08:00", or IANA names ("Europe/Paris")
// resolved through the system's zoneinfo files (/usr/share/zoneinfo).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "model/row.hpp"

namespace eddy {

class time_formatter {
 public:
  /// UTC.
  time_formatter();
  /// nullopt (with `error` set) when the zone is unknown.
  [[nodiscard]] static std::optional<time_formatter> for_zone(std::string_view zone,
                                                              std::string* error = nullptr);

  /// "2025-11-07 11:29:32.953131" (Spark's console style; fraction trimmed of trailing zeros,
  /// omitted when zero); the zone's local time.
  [[nodiscard]] std::string format_console(timestamp t) const;
  /// ISO-8601 with offset: "2025-11-07T11:29:32.953131Z" in UTC, "...+05:30" elsewhere.
  [[nodiscard]] std::string format_iso(timestamp t) const;
  /// format_console / format_iso appending to `out` (no temporary string; for hot paths).
  void append_console(std::string& out, timestamp t) const;
  void append_iso(std::string& out, timestamp t) const;
  [[nodiscard]] const std::string& zone_name() const { return zone_; }

  /// Offset from UTC in seconds at instant t.
  [[nodiscard]] int64_t offset_seconds(timestamp t) const;

 private:
  std::string zone_ = "UTC";
  int64_t fixed_offset_s_ = 0;
  std::shared_ptr<const void> tz_;  // IANA zone data when not fixed
};

/// Parses ISO-8601 / RFC 3339 instants ("2025-11-07T11:29:32.953131Z", "+01:00" offsets,
/// a space instead of 'T', no zone = UTC, date only = midnight UTC). nullopt when malformed.
[[nodiscard]] std::optional<timestamp> parse_iso_timestamp(std::string_view text);

}  // namespace eddy
