// signals.hpp — SIGINT/SIGTERM/SIGUSR1 for long-running commands, without async-signal hazards.
//
// `signal_watch` blocks the three signals in the calling thread (call it in main's thread before
// any other thread starts, so every thread inherits the mask) and waits for them with sigwait()
// on its own thread: SIGINT/SIGTERM set `stop` (a second one exits at once with status 130),
// SIGUSR1 sets `stats`. The destructor stops the waiting thread.
//
// Backstop: with `exit_after_stop(limit, on_expiry)`, a process still running `limit` after the
// first SIGINT/SIGTERM is ended from the waiting thread: it prints why, calls `on_expiry` (which
// must be quick and must not wait for other threads, e.g. write a small file) and exits with
// status 1. Commands bound their own shutdown below that limit; this catches the cases they
// cannot (a main thread blocked in I/O).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
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

  /// Arms the backstop (see above). Call once, before the work starts.
  void exit_after_stop(std::chrono::milliseconds limit, std::function<void()> on_expiry);

 private:
  std::mutex mutex_;
  std::chrono::milliseconds limit_{0};
  std::function<void()> on_expiry_;
  std::thread thread_;
};

}  // namespace eddy::app
