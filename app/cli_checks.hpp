// cli_checks.hpp — CLI11 validators for the numeric options of every `eddy` command.
//
// CLI11 2.1's own checks let bad values through or print them badly: an unsigned option takes
// "-1" as 2^64-1 (strtoull), an overflowing integer silently becomes INT64_MAX, "nan" passes
// every Range, and NonNegativeNumber names DBL_MAX in its error as a 300-digit number. These
// parse the text themselves (decimal only, the whole text, no overflow, finite numbers) and name
// the accepted range readably: "--count: must be an integer from 0 to 18446744073709551615, got
// '-1'". Header-only; used only by app/cmd_*.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>

namespace eddy::app {

/// An integer in [lo, hi], written in decimal (an optional '-', then digits only).
template <typename Int>
CLI::Validator int_range(Int lo, Int hi) {
  const std::string range = std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        Int v{};
        const char* end = text.data() + text.size();
        const auto [p, ec] = std::from_chars(text.data(), end, v);
        if (ec == std::errc() && p == end && v >= lo && v <= hi) return {};
        return "must be an integer from " + range + ", got '" + text + "'";
      },
      "INT in [" + range + "]", "int_range");
}

/// "%g" of `x`: 1e+06, 0.5, 100000.
inline std::string short_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

/// A finite number in [lo, hi] (no "nan", no "inf").
inline CLI::Validator number_range(double lo, double hi) {
  const std::string range = short_number(lo) + " to " + short_number(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        double v = 0;
        if (CLI::detail::lexical_cast(text, v) && std::isfinite(v) && v >= lo && v <= hi) return {};
        return "must be a number from " + range + ", got '" + text + "'";
      },
      "NUMBER in [" + range + "]", "number_range");
}

}  // namespace eddy::app
