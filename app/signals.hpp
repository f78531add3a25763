// signals.hpp — SIGINT/SIGTERM/SIGUSR1 for long-running commands, without async-signal hazards.
//
// `signal_watch` blocks the three signals in the calling thread (call it in main's thread before
// any other thread starts, so every thread inherits the mask) and waits for them with sigwait()
// on its own thread: SIGINT/SIGTERM set `stop` (a second one exits at once with status 130),
// SIGUSR1 sets `stats`. The destructor stops the waiting thread.
#pragma once

#include <atomic>
#include <thread>

namespace eddy::app {

class signal_watch {
 public:
  signal_watch();
  ~signal_watch();
  signal_watch(const signal_watch&) = delete;
  signal_watch& operator=(const signal_watch&) = delete;

  std::atomic<bool> stop{false};
  std::atomic<bool> stats{false};

  /// Blocks until SIGINT/SIGTERM arrived or `seconds` (> 0) elapsed; 0 waits only for signals.
  void wait(double seconds = 0);

 private:
  std::thread thread_;
};

}  // namespace eddy::app
