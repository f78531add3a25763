#include "app/signals.hpp"

#include <pthread.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdlib>

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
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR2) return;
      if (sig == SIGUSR1) {
        stats = true;
      } else if (stop.exchange(true)) {
        _exit(130);  // second Ctrl-C: the user wants out now
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

}  // namespace eddy::app
