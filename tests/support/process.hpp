// process.hpp — child processes and temporary directories for integration tests.
//
// child_process starts a program (fork + execv, no shell) with stdin from /dev/null or a file and
// stdout/stderr each going to /dev/null, a file or a pipe. The child gets SIGKILL when the test
// process dies (PR_SET_PDEATHSIG), so even a crashed or timed-out test leaves nothing behind. Lines
// of a piped stdout/stderr are read with a timeout (e.g. `eddy broker`'s `bootstrap=...` line), the
// exit is awaited with a timeout, and terminate() sends SIGTERM, then SIGKILL after a grace period.
// The destructor kills and reaps a child that is still running, so a failing test never leaks
// processes.
//
// temp_dir makes a fresh directory under /tmp (mkdtemp) and removes it with everything in it
// when it goes out of scope; set EDDY_KEEP_TEST_DIRS=1 to keep it for a post-mortem.
//
// Thread-safety: none; use an object from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eddy::test {

/// Where one of the child's standard streams goes (or, for stdin, comes from).
struct redirect {
  enum class kind { null, file, pipe };
  kind how = kind::null;
  std::string path;  ///< kind::file only; output files are created or truncated

  static redirect null() { return {}; }
  static redirect file(std::string p) { return {kind::file, std::move(p)}; }
  static redirect pipe() { return {kind::pipe, {}}; }
};

/// How a finished child ended.
struct exit_status {
  bool exited = false;  ///< true: normal exit with `code`; false: killed by `signal`
  int code = -1;
  int signal = 0;

  [[nodiscard]] bool ok() const { return exited && code == 0; }
  /// "exit code 2" or "killed by signal 9 (Killed)", for test messages.
  [[nodiscard]] std::string describe() const;
};

class child_process {
 public:
  struct options {
    std::vector<std::string> argv;   ///< argv[0] is the program's path (not searched in PATH)
    redirect in = redirect::null();  ///< null or file (a stdin pipe is not supported)
    redirect out = redirect::null();
    redirect err = redirect::null();
    std::vector<std::string> env = {};  ///< "NAME=VALUE" added to (or replacing in) the environment
  };

  /// Starts the child; throws std::runtime_error when it cannot be started.
  explicit child_process(const options& opts);
  /// Kills (SIGKILL) and reaps the child if it still runs; closes the pipes.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// The next line (without '\n') of the piped stdout, or nullopt when none arrived in time or
  /// the stream ended. Requires options::out = redirect::pipe().
  std::optional<std::string> read_stdout_line(std::chrono::milliseconds timeout);
  /// The same for a piped stderr.
  std::optional<std::string> read_stderr_line(std::chrono::milliseconds timeout);
  /// Everything left on the piped stream until it ends (the child closed it, usually by
  /// exiting), or what arrived until the timeout.
  std::string read_stdout_to_end(std::chrono::milliseconds timeout);
  std::string read_stderr_to_end(std::chrono::milliseconds timeout);

  /// Waits for the child to end; nullopt if it still runs after `timeout`. Once it ended, the
  /// status is remembered and returned again by later calls.
  std::optional<exit_status> wait_for(std::chrono::milliseconds timeout);
  /// True while the child has not ended (reaps it if it just did).
  [[nodiscard]] bool running();
  /// Sends `sig` if the child still runs.
  void send_signal(int sig);
  /// SIGTERM, then SIGKILL if it still runs after `grace`; returns how it ended.
  exit_status terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  struct stream {
    int fd = -1;
    std::string buffer;  ///< read but not yet returned
    bool eof = false;
  };
  std::optional<std::string> read_line(stream& s, std::chrono::milliseconds timeout);
  std::string read_to_end(stream& s, std::chrono::milliseconds timeout);
  bool try_reap();

  pid_t pid_ = -1;
  std::optional<exit_status> status_;
  stream out_;
  stream err_;
};

class temp_dir {
 public:
  /// Creates /tmp/<prefix>-XXXXXX; throws std::runtime_error on failure.
  explicit temp_dir(std::string_view prefix = "eddy-test");
  /// Removes the directory tree (unless EDDY_KEEP_TEST_DIRS is set).
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  /// path() / name, as a string.
  [[nodiscard]] std::string operator/(std::string_view name) const;

 private:
  std::filesystem::path path_;
};

/// The whole content of a file; throws std::runtime_error when it cannot be read.
[[nodiscard]] std::string read_text_file(const std::filesystem::path& path);
/// Writes (creates or truncates) a file; throws std::runtime_error on failure.
void write_text_file(const std::filesystem::path& path, std::string_view text);

}  // namespace eddy::test
