#include "app/signals.hpp"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <string>

namespace eddy::app {

namespace {
sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);  // used only to wake the waiting thread on destruction
  return set;
}
}  // namespace

signal_watch::signal_watch() {
  sigset_t set = watched();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    std::chrono::steady_clock::time_point stopped_at{};
    for (;;) {
      std::chrono::milliseconds limit{0};
      {
        std::lock_guard<std::mutex> lock(mutex_);
        limit = limit_;
      }
      int sig = 0;
      if (stop.load() && limit.count() > 0) {
        // Stopping, with a backstop: wait for signals only until it expires.
        const auto left = stopped_at + limit - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
          const std::string msg =
              "eddy: still running " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) +
              " s after the stop signal; exiting now without a final report\n";
          [[maybe_unused]] auto n = ::write(2, msg.data(), msg.size());
          std::function<void()> expiry;
          {
            std::lock_guard<std::mutex> lock(mutex_);
            expiry = on_expiry_;
          }
          if (expiry) expiry();
          _exit(1);
        }
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        sig = sigtimedwait(&set, nullptr, &ts);
        if (sig < 0) continue;  // timed out (checked above) or interrupted
      } else if (sigwait(&set, &sig) != 0) {
        continue;
      }
      if (sig == SIGUSR2) return;
      if (sig == SIGUSR1) {
        stats = true;
      } else if (stop.exchange(true)) {
        _exit(130);  // second Ctrl-C: the user wants out now
      } else {
        stopped_at = std::chrono::steady_clock::now();
      }
    }
  });
}

signal_watch::~signal_watch() {
  pthread_kill(thread_.native_handle(), SIGUSR2);
  thread_.join();
}

void signal_watch::wait(double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!stop.load()) {
    if (seconds > 0 && std::chrono::steady_clock::now() >= until) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void signal_watch::exit_after_stop(std::chrono::milliseconds limit,
                                   std::function<void()> on_expiry) {
  std::lock_guard<std::mutex> lock(mutex_);
  limit_ = limit;
  on_expiry_ = std::move(on_expiry);
}

}  // namespace eddy::app
