// crash_point.hpp — fault injection for crash tests: die at a named point of the protocol.
//
// `crash_point("publish")` kills the process with SIGKILL when the environment variable
// EDDY_CRASH_AT is "publish:N" and this is the N-th time (1-based) the point is reached in this
// process; otherwise it does nothing (one string compare once the variable is parsed).
// It exists so tests can kill eddy exactly "during a checkpoint" or "during a sink commit",
// which random kills reach only by luck. The points are listed in docs/architecture.md.
//
// `fault_point("sink")` does the same for faults that are not crashes: EDDY_THROW_AT="sink:N"
// throws std::runtime_error the N-th time, EDDY_HANG_AT="sink:N" blocks the calling thread for
// good from the N-th time on (a sink stuck on I/O, say). Tests use them to check that any
// actor's exception fails the run and that a stop signal ends a run whose drain hangs.
// Thread-safe. Header-only (no library to link). No CAF, no librdkafka.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace eddy {

namespace detail {
struct crash_spec {
  std::string name;
  long at = 0;
  std::atomic<long> seen{0};
};
inline crash_spec* parse_crash_spec(const char* variable) {
  const char* env = std::getenv(variable);
  if (!env || !*env) return nullptr;
  const std::string text(env);
  const auto colon = text.rfind(':');
  auto* c = new crash_spec;  // lives as long as the process
  c->name = text.substr(0, colon);
  c->at = colon == std::string::npos ? 1 : std::strtol(text.c_str() + colon + 1, nullptr, 10);
  return c;
}
inline crash_spec* crash_spec_from_env() {
  static crash_spec* s = parse_crash_spec("EDDY_CRASH_AT");
  return s;
}
/// True when `s` names `name` and this is its N-th (`at`-th) or, with `from_then_on`, a later
/// passage.
inline bool reached(crash_spec* s, std::string_view name, bool from_then_on = false) {
  if (!s || s->name != name) return false;
  const long n = s->seen.fetch_add(1) + 1;
  return from_then_on ? n >= s->at : n == s->at;
}
}  // namespace detail

inline void crash_point(std::string_view name) {
  detail::crash_spec* s = detail::crash_spec_from_env();
  if (!s || s->name != name) return;
  if (s->seen.fetch_add(1) + 1 == s->at) {
    static const char msg[] = "eddy: EDDY_CRASH_AT reached, killing the process\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::kill(::getpid(), SIGKILL);
  }
}

inline void fault_point(std::string_view name) {
  static detail::crash_spec* throw_at = detail::parse_crash_spec("EDDY_THROW_AT");
  static detail::crash_spec* hang_at = detail::parse_crash_spec("EDDY_HANG_AT");
  if (detail::reached(throw_at, name))
    throw std::runtime_error("EDDY_THROW_AT: injected fault at point " + std::string(name));
  if (detail::reached(hang_at, name, true)) {
    static const char msg[] = "eddy: EDDY_HANG_AT reached, blocking this thread for good\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    for (;;) ::pause();
  }
}

}  // namespace eddy
