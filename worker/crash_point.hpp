// crash_point.hpp — fault injection for crash tests: die at a named point of the protocol.
//
// `crash_point("publish")` kills the process with SIGKILL when the environment variable
// EDDY_CRASH_AT is "publish:N" and this is the N-th time (1-based) the point is reached in this
// process; otherwise it does nothing (one string compare once the variable is parsed).
// It exists so tests can kill eddy exactly "during a checkpoint" or "during a sink commit",
// which random kills reach only by luck. The points are listed in docs/architecture.md.
// Thread-safe. Header-only (no library to link). No CAF, no librdkafka.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

namespace eddy {

namespace detail {
struct crash_spec {
  std::string name;
  long at = 0;
  std::atomic<long> seen{0};
};
inline crash_spec* crash_spec_from_env() {
  static crash_spec* s = [] {
    const char* env = std::getenv("EDDY_CRASH_AT");
    if (!env || !*env) return static_cast<crash_spec*>(nullptr);
    const std::string text(env);
    const auto colon = text.rfind(':');
    auto* c = new crash_spec;  // lives as long as the process
    c->name = text.substr(0, colon);
    c->at = colon == std::string::npos ? 1 : std::strtol(text.c_str() + colon + 1, nullptr, 10);
    return c;
  }();
  return s;
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

}  // namespace eddy
