#include "model/time_format.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace eddy {
namespace {

constexpr int64_t sample_micros = 1762514972953131;  // 2025-11-07T11:29:32.953131Z

time_formatter zone(std::string_view name) {
  std::string error;
  auto f = time_formatter::for_zone(name, &error);
  EXPECT_TRUE(f.has_value()) << error;
  return f.value_or(time_formatter{});
}

timestamp at(std::string_view iso) {
  auto t = parse_iso_timestamp(iso);
  EXPECT_TRUE(t.has_value()) << iso;
  return t.value_or(timestamp{});
}

TEST(time_formatter, formats_utc_in_spark_console_style) {
  time_formatter utc;
  EXPECT_EQ(utc.zone_name(), "UTC");
  EXPECT_EQ(utc.format_console(timestamp{sample_micros}), "2025-11-07 11:29:32.953131");
}

TEST(time_formatter, formats_utc_as_iso_with_z) {
  EXPECT_EQ(time_formatter{}.format_iso(timestamp{sample_micros}), "2025-11-07T11:29:32.953131Z");
}

TEST(time_formatter, trims_trailing_zeros_of_the_fraction_and_omits_a_zero_fraction) {
  time_formatter utc;
  EXPECT_EQ(utc.format_console(timestamp{1762514972500000}), "2025-11-07 11:29:32.5");
  EXPECT_EQ(utc.format_console(timestamp{1762514972000000}), "2025-11-07 11:29:32");
  EXPECT_EQ(utc.format_iso(timestamp{1762514972000100}), "2025-11-07T11:29:32.0001Z");
  EXPECT_EQ(utc.format_iso(timestamp{0}), "1970-01-01T00:00:00Z");
}

TEST(time_formatter, formats_instants_before_1970) {
  time_formatter utc;
  EXPECT_EQ(utc.format_console(timestamp{-1}), "1969-12-31 23:59:59.999999");
  EXPECT_EQ(utc.format_console(timestamp{-1'500'000}), "1969-12-31 23:59:58.5");
  EXPECT_EQ(utc.format_iso(timestamp{-86'400'000'000}), "1969-12-31T00:00:00Z");
  EXPECT_EQ(utc.format_iso(timestamp{-2'208'988'800'000'000}), "1900-01-01T00:00:00Z");
  EXPECT_EQ(utc.format_iso(timestamp{-62'135'596'800'000'000}), "0001-01-01T00:00:00Z");
}

TEST(time_formatter, formats_the_whole_int64_range_in_any_zone) {
  // A timestamp is any int64 of microseconds (an updated_at of INT64_MIN is a valid row value).
  // Adding the offset in microseconds overflowed: UB, and year -290308 for a +14:00 zone.
  constexpr timestamp max{std::numeric_limits<int64_t>::max()};
  constexpr timestamp min{std::numeric_limits<int64_t>::min()};
  time_formatter utc;
  EXPECT_EQ(utc.format_iso(max), "294247-01-10T04:00:54.775807Z");
  EXPECT_EQ(utc.format_console(max), "294247-01-10 04:00:54.775807");
  EXPECT_EQ(utc.format_iso(min), "-290308-12-21T19:59:05.224192Z");
  EXPECT_EQ(utc.format_console(min), "-290308-12-21 19:59:05.224192");
  EXPECT_EQ(zone("+14:00").format_iso(max), "294247-01-10T18:00:54.775807+14:00");
  EXPECT_EQ(zone("-12:00").format_iso(min), "-290308-12-21T07:59:05.224192-12:00");
  EXPECT_EQ(zone("-12:00").format_console(max), "294247-01-09 16:00:54.775807");
  EXPECT_EQ(zone("+14:00").format_console(min), "-290308-12-22 09:59:05.224192");
  // IANA zones: the POSIX rule far in the future, the first offset (LMT) far in the past.
  EXPECT_EQ(zone("Europe/Paris").format_iso(max), "294247-01-10T05:00:54.775807+01:00");
  EXPECT_EQ(zone("Europe/Paris").format_iso(min), "-290308-12-21T20:08:26.224192+00:09:21");
}

TEST(time_formatter, applies_a_fixed_offset) {
  auto minus8 = zone("-08:00");
  EXPECT_EQ(minus8.zone_name(), "-08:00");
  EXPECT_EQ(minus8.offset_seconds(timestamp{sample_micros}), -8 * 3600);
  EXPECT_EQ(minus8.format_iso(timestamp{sample_micros}), "2025-11-07T03:29:32.953131-08:00");
  EXPECT_EQ(minus8.format_console(timestamp{sample_micros}), "2025-11-07 03:29:32.953131");
  EXPECT_EQ(zone("+0530").format_iso(timestamp{sample_micros}), "2025-11-07T16:59:32.953131+05:30");
}

TEST(time_formatter, resolves_asia_kolkata_to_plus_five_thirty) {
  auto kolkata = zone("Asia/Kolkata");
  EXPECT_EQ(kolkata.offset_seconds(timestamp{sample_micros}), 5 * 3600 + 1800);
  EXPECT_EQ(kolkata.format_iso(timestamp{sample_micros}), "2025-11-07T16:59:32.953131+05:30");
  EXPECT_EQ(kolkata.format_console(timestamp{sample_micros}), "2025-11-07 16:59:32.953131");
}

TEST(time_formatter, follows_europe_paris_summer_and_winter_time) {
  auto paris = zone("Europe/Paris");
  EXPECT_EQ(paris.format_iso(at("2025-07-01T12:00:00Z")), "2025-07-01T14:00:00+02:00");
  EXPECT_EQ(paris.format_iso(at("2025-01-15T12:00:00Z")), "2025-01-15T13:00:00+01:00");
  EXPECT_EQ(paris.format_console(timestamp{sample_micros}), "2025-11-07 12:29:32.953131");
}

TEST(time_formatter, switches_offset_exactly_at_a_dst_transition) {
  auto paris = zone("Europe/Paris");
  EXPECT_EQ(paris.format_iso(at("2025-03-30T00:59:59Z")), "2025-03-30T01:59:59+01:00");
  EXPECT_EQ(paris.format_iso(at("2025-03-30T01:00:00Z")), "2025-03-30T03:00:00+02:00");
  EXPECT_EQ(paris.format_iso(at("2025-10-26T00:59:59Z")), "2025-10-26T02:59:59+02:00");
  EXPECT_EQ(paris.format_iso(at("2025-10-26T01:00:00Z")), "2025-10-26T02:00:00+01:00");
}

TEST(time_formatter, uses_the_zone_rule_after_the_last_listed_transition) {
  // The zoneinfo tables stop in 2037; later instants follow the file's POSIX TZ footer.
  auto paris = zone("Europe/Paris");
  EXPECT_EQ(paris.format_iso(at("2050-07-01T12:00:00Z")), "2050-07-01T14:00:00+02:00");
  EXPECT_EQ(paris.format_iso(at("2050-12-01T12:00:00Z")), "2050-12-01T13:00:00+01:00");
  EXPECT_EQ(paris.format_iso(at("2050-03-27T00:59:59Z")), "2050-03-27T01:59:59+01:00");
  EXPECT_EQ(paris.format_iso(at("2050-03-27T01:00:00Z")), "2050-03-27T03:00:00+02:00");
  auto sydney = zone("Australia/Sydney");  // southern hemisphere: DST spans the new year
  EXPECT_EQ(sydney.format_iso(at("2050-01-15T00:00:00Z")), "2050-01-15T11:00:00+11:00");
  EXPECT_EQ(sydney.format_iso(at("2050-07-15T00:00:00Z")), "2050-07-15T10:00:00+10:00");
}

TEST(time_formatter, formats_historical_instants_in_an_iana_zone) {
  auto new_york = zone("America/New_York");
  EXPECT_EQ(new_york.format_iso(at("1960-06-01T12:00:00Z")), "1960-06-01T08:00:00-04:00");
  EXPECT_EQ(new_york.format_iso(at("1960-01-01T12:00:00Z")), "1960-01-01T07:00:00-05:00");
  // Paris Mean Time, +00:09:21, until 1911: offsets with seconds keep them.
  EXPECT_EQ(zone("Europe/Paris").format_iso(at("1900-01-01T00:00:00Z")),
            "1900-01-01T00:09:21+00:09:21");
}

TEST(time_formatter, rejects_unknown_zones_with_a_message) {
  std::string error;
  EXPECT_FALSE(time_formatter::for_zone("Mars/Olympus_Mons", &error).has_value());
  EXPECT_NE(error.find("Mars/Olympus_Mons"), std::string::npos) << error;
  EXPECT_FALSE(time_formatter::for_zone("../../etc/passwd").has_value());
  EXPECT_FALSE(time_formatter::for_zone("/etc/localtime").has_value());
  EXPECT_FALSE(time_formatter::for_zone("+25:00").has_value());
  EXPECT_FALSE(time_formatter::for_zone("+05:3").has_value());
  EXPECT_FALSE(time_formatter::for_zone("").has_value());
  error.clear();
  EXPECT_FALSE(time_formatter::for_zone("iso3166.tab", &error).has_value());  // not TZif
  EXPECT_FALSE(error.empty());
}

TEST(time_formatter, is_safe_to_share_between_threads) {
  const auto paris = zone("Europe/Paris");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 2000; ++i) {
        if (paris.format_iso(timestamp{sample_micros}) != "2025-11-07T12:29:32.953131+01:00") {
          ++mismatches[static_cast<size_t>(k)];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(parse_iso_timestamp, reads_rfc3339_with_z) {
  auto t = parse_iso_timestamp("2025-11-07T11:29:32.953131Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->micros, sample_micros);
}

TEST(parse_iso_timestamp, reads_offsets_spaces_and_missing_zones) {
  EXPECT_EQ(at("2025-11-07 11:29:32.953131").micros, sample_micros);
  EXPECT_EQ(at("2025-11-07T12:29:32.953131+01:00").micros, sample_micros);
  EXPECT_EQ(at("2025-11-07T12:29:32.953131+0100").micros, sample_micros);
  EXPECT_EQ(at("2025-11-07T03:29:32.953131-08:00").micros, sample_micros);
  EXPECT_EQ(at("2025-11-07t11:29:32,953131z").micros, sample_micros);
}

TEST(parse_iso_timestamp, truncates_nanoseconds_to_microseconds) {
  EXPECT_EQ(at("2025-11-07T11:29:32.953131999Z").micros, sample_micros);
  EXPECT_EQ(at("2025-11-07T11:29:32.9Z").micros, 1762514972900000);
  EXPECT_EQ(at("1969-12-31T23:59:59.9999999Z").micros, -1);
}

TEST(parse_iso_timestamp, reads_date_only_and_minutes_only_forms) {
  EXPECT_EQ(at("2025-11-07").micros, 1762473600000000);
  EXPECT_EQ(at("2025-11-07T11:29Z").micros, 1762514940000000);
  EXPECT_EQ(at("1970-01-01").micros, 0);
  EXPECT_EQ(at("1969-12-31").micros, -86'400'000'000);
}

TEST(parse_iso_timestamp, accepts_leap_days_only_in_leap_years) {
  EXPECT_TRUE(parse_iso_timestamp("2024-02-29").has_value());
  EXPECT_TRUE(parse_iso_timestamp("2000-02-29").has_value());
  EXPECT_FALSE(parse_iso_timestamp("2023-02-29").has_value());
  EXPECT_FALSE(parse_iso_timestamp("1900-02-29").has_value());
}

TEST(parse_iso_timestamp, rejects_malformed_text) {
  for (const char* bad : {"",
                          "2025",
                          "25-11-07",
                          "2025/11/07",
                          "2025-1-07",
                          "2025-13-01",
                          "2025-00-10",
                          "2025-11-00",
                          "2025-11-31",
                          "2025-11-07T",
                          "2025-11-07X11:29:32",
                          "2025-11-07T24:00:00Z",
                          "2025-11-07T11:60:00Z",
                          "2025-11-07T11:29:61Z",
                          "2025-11-07T11:29:32.Z",
                          "2025-11-07T11:29:32.1234567890Z",
                          "2025-11-07T11:29:32+1",
                          "2025-11-07T11:29:32+01:",
                          "2025-11-07T11:29:32+24:00",
                          "2025-11-07T11:29:32Zjunk",
                          "2025-11-07T11:29:32 ",
                          " 2025-11-07",
                          "2025-11-07T11",
                          "2025-11-07T1:29:32Z",
                          "２０２５-11-07",
                          "not a time"}) {
    EXPECT_FALSE(parse_iso_timestamp(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(parse_iso_timestamp, round_trips_format_iso_in_every_kind_of_zone) {
  const std::vector<int64_t> instants = {0, 1, -1, sample_micros, -2'208'988'800'000'000 + 123456,
                                         951'782'400'000'000,
                                         // DST edges in Paris, 2025
                                         1743296399000000, 1743296400000000, 1761440399999999,
                                         1761440400000000, 4'102'444'800'000'001};
  for (const char* name : {"UTC", "-08:00", "+05:30", "Asia/Kolkata", "Europe/Paris"}) {
    const auto f = zone(name);
    for (const int64_t micros : instants) {
      const std::string text = f.format_iso(timestamp{micros});
      auto back = parse_iso_timestamp(text);
      ASSERT_TRUE(back.has_value()) << name << ' ' << text;
      EXPECT_EQ(back->micros, micros) << name << ' ' << text;
    }
  }
}

}  // namespace
}  // namespace eddy
