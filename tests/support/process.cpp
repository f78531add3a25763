// process.cpp — child processes and temporary directories for integration tests.
#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace eddy::test {

namespace {

using steady = std::chrono::steady_clock;

std::string errno_text(int err) {
  return std::strerror(err);
}

[[noreturn]] void throw_errno(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + errno_text(err));
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll().
int remaining_ms(steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

/// What the forked child does with one standard stream, prepared before fork() so that the
/// child only makes async-signal-safe calls.
struct child_stream {
  int target = -1;             ///< 0, 1 or 2
  const char* path = nullptr;  ///< open this (file or /dev/null) ...
  int flags = 0;
  int pipe_fd = -1;  ///< ... or dup2 this pipe end
};

[[noreturn]] void child_fail(int report_fd, int err) {
  // The parent reads errno from the close-on-exec pipe; nothing else is safe to do here.
  ssize_t ignored = ::write(report_fd, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

void setup_child_stream(const child_stream& s, int report_fd) {
  int fd = s.pipe_fd;
  if (s.path != nullptr) {
    fd = ::open(s.path, s.flags, 0644);
    if (fd < 0) child_fail(report_fd, errno);
  }
  if (::dup2(fd, s.target) < 0) child_fail(report_fd, errno);
  if (s.path != nullptr) ::close(fd);
}

}  // namespace

std::string exit_status::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

child_process::child_process(const options& opts) {
  if (opts.argv.empty()) throw std::runtime_error("child_process: empty argv");
  if (opts.in.how == redirect::kind::pipe)
    throw std::runtime_error("child_process: a stdin pipe is not supported");

  std::vector<char*> argv;
  for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int report[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {out_pipe, err_pipe, report}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  auto make_pipe = [&](int* fds, const char* what) {
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      const int err = errno;
      close_all();
      throw_errno(std::string("child_process: pipe for ") + what, err);
    }
  };
  if (opts.out.how == redirect::kind::pipe) make_pipe(out_pipe, "stdout");
  if (opts.err.how == redirect::kind::pipe) make_pipe(err_pipe, "stderr");
  make_pipe(report, "exec status");

  auto prepare = [](const redirect& r, int target, int pipe_write_end) {
    child_stream s;
    s.target = target;
    const int out_flags = O_WRONLY | O_CREAT | O_TRUNC;
    switch (r.how) {
      case redirect::kind::null:
        s.path = "/dev/null";
        s.flags = target == 0 ? O_RDONLY : O_WRONLY;
        break;
      case redirect::kind::file:
        s.path = r.path.c_str();
        s.flags = target == 0 ? O_RDONLY : out_flags;
        break;
      case redirect::kind::pipe:
        s.pipe_fd = pipe_write_end;
        break;
    }
    return s;
  };
  const child_stream streams[3] = {prepare(opts.in, 0, -1), prepare(opts.out, 1, out_pipe[1]),
                                   prepare(opts.err, 2, err_pipe[1])};
  const pid_t parent = ::getpid();
  // The child's environment, built before fork (nothing in the child may allocate).
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& extra : opts.env)
      replaced = replaced || extra.substr(0, extra.find('=')) == name;
    if (!replaced) env_text.push_back(entry);
  }
  env_text.insert(env_text.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    close_all();
    throw_errno("child_process: fork", err);
  }
  if (pid == 0) {
    // The child: die with the test process, default signal handling, then exec.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report[1], errno);
    if (::getppid() != parent) ::_exit(127);  // the parent is already gone
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) ::signal(sig, SIG_DFL);
    for (const child_stream& s : streams) setup_child_stream(s, report[1]);
    ::execve(argv[0], argv.data(), envp.data());
    child_fail(report[1], errno);
  }

  pid_ = pid;
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(report[1]);
  out_.fd = out_pipe[0];
  err_.fd = err_pipe[0];
  // The report pipe closes on a successful exec; it carries errno if the child failed before.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close_fd(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    close_fd(out_.fd);
    close_fd(err_.fd);
    throw_errno("child_process: cannot start " + opts.argv[0], child_errno);
  }
}

child_process::~child_process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int ws = 0;
    while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(out_.fd);
  close_fd(err_.fd);
}

bool child_process::try_reap() {
  if (status_) return true;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  exit_status s;
  if (r < 0) {  // not our child any more (should not happen); report it as an odd exit
    s.exited = true;
    s.code = -1;
  } else if (WIFEXITED(ws)) {
    s.exited = true;
    s.code = WEXITSTATUS(ws);
  } else {
    s.signal = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
  }
  status_ = s;
  return true;
}

std::optional<exit_status> child_process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  // Poll the child's state with a short, growing interval; a process exit has no fd to wait on
  // without pidfd, and the intervals are tiny next to the timeouts used.
  auto interval = std::chrono::milliseconds(1);
  while (!try_reap()) {
    if (steady::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(
        std::min(interval, std::chrono::milliseconds(remaining_ms(deadline) + 1)));
    interval = std::min(interval * 2, std::chrono::milliseconds(20));
  }
  return status_;
}

bool child_process::running() {
  return !try_reap();
}

void child_process::send_signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

exit_status child_process::terminate(std::chrono::milliseconds grace) {
  send_signal(SIGTERM);
  if (auto s = wait_for(grace)) return *s;
  send_signal(SIGKILL);
  // SIGKILL cannot be caught; the exit follows promptly.
  while (!try_reap()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return *status_;
}

std::optional<std::string> child_process::read_line(stream& s, std::chrono::milliseconds timeout) {
  if (s.fd < 0 && !s.eof) throw std::logic_error("child_process: the stream is not a pipe");
  const auto deadline = steady::now() + timeout;
  for (;;) {
    const size_t nl = s.buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = s.buffer.substr(0, nl);
      s.buffer.erase(0, nl + 1);
      return line;
    }
    if (s.eof) {
      if (s.buffer.empty()) return std::nullopt;
      return std::exchange(s.buffer, {});  // the last line had no '\n'
    }
    pollfd p{s.fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw_errno("child_process: poll", errno);
    if (ready == 0) return std::nullopt;  // timed out
    char buf[4096];
    const ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      s.eof = true;
      close_fd(s.fd);
    } else {
      s.buffer.append(buf, static_cast<size_t>(n));
    }
  }
}

std::string child_process::read_to_end(stream& s, std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  std::string all;
  while (auto line = read_line(s, std::chrono::milliseconds(remaining_ms(deadline)))) {
    all += *line;
    all += '\n';
  }
  all += std::exchange(s.buffer, {});  // a partial line left when the time ran out
  return all;
}

std::optional<std::string> child_process::read_stdout_line(std::chrono::milliseconds timeout) {
  return read_line(out_, timeout);
}
std::optional<std::string> child_process::read_stderr_line(std::chrono::milliseconds timeout) {
  return read_line(err_, timeout);
}
std::string child_process::read_stdout_to_end(std::chrono::milliseconds timeout) {
  return read_to_end(out_, timeout);
}
std::string child_process::read_stderr_to_end(std::chrono::milliseconds timeout) {
  return read_to_end(err_, timeout);
}

// ---- temp_dir -------------------------------------------------------------------------------

temp_dir::temp_dir(std::string_view prefix) {
  std::string templ = "/tmp/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw_errno("mkdtemp " + templ, errno);
  path_ = templ;
}

temp_dir::~temp_dir() {
  if (const char* keep = std::getenv("EDDY_KEEP_TEST_DIRS"); keep != nullptr && *keep != '\0') {
    std::cerr << "keeping test directory " << path_.string() << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::operator/(std::string_view name) const {
  return (path_ / name).string();
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace eddy::test
