// eddy_fixture.hpp — the base of the integration tests that drive the `eddy` binary: a temp
// directory, an `eddy broker` started on demand (stopped with SIGTERM at the end, which must
// exit 0), and commands run to completion with a timeout and their output captured in files.
// Integration test executables define EDDY_BINARY (tests/CMakeLists.txt).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"

namespace eddy::test {

class eddy_fixture : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds broker_start_timeout{20};
  static constexpr std::chrono::seconds default_command_timeout{60};

  explicit eddy_fixture(std::string_view dir_prefix) : dir_(dir_prefix) {}

  void TearDown() override {
    if (!broker_) return;
    const exit_status s = broker_->terminate(std::chrono::seconds(10));
    EXPECT_TRUE(s.ok()) << "eddy broker after SIGTERM: " << s.describe();
  }

  /// Starts `eddy broker --topic SPEC` and reads its bootstrap line into bootstrap_.
  void start_broker(const std::string& topic_spec) {
    broker_ = std::make_unique<child_process>(child_process::options{
        .argv = {EDDY_BINARY, "broker", "--topic", topic_spec},
        .out = redirect::pipe(),
        .err = redirect::file(dir_ / "broker.stderr"),
    });
    auto line = broker_->read_stdout_line(broker_start_timeout);
    ASSERT_TRUE(line.has_value()) << "no bootstrap line from eddy broker; stderr: "
                                  << read_text_file(dir_ / "broker.stderr");
    ASSERT_TRUE(line->starts_with("bootstrap=")) << *line;
    bootstrap_ = line->substr(std::string_view("bootstrap=").size());
    ASSERT_FALSE(bootstrap_.empty());
  }

  /// Runs `eddy ARGS...` to its end with stdout/stderr in files; fails the test (and kills the
  /// command) if it takes longer than `timeout`.
  std::optional<finished> run_eddy(std::vector<std::string> args,
                                   std::chrono::milliseconds timeout = default_command_timeout,
                                   redirect in = redirect::null()) {
    const std::string base = dir_ / ("cmd" + std::to_string(++commands_));
    args.insert(args.begin(), EDDY_BINARY);
    child_process proc({.argv = args,
                        .in = std::move(in),
                        .out = redirect::file(base + ".stdout"),
                        .err = redirect::file(base + ".stderr")});
    auto status = proc.wait_for(timeout);
    if (!status) {
      proc.terminate(std::chrono::seconds(1));
      ADD_FAILURE() << "eddy " << args[1] << " did not finish within " << timeout.count()
                    << " ms; stderr: " << read_text_file(base + ".stderr");
      return std::nullopt;
    }
    return finished{*status, read_text_file(base + ".stdout"), read_text_file(base + ".stderr")};
  }

  /// `eddy produce --bootstrap B EXTRA...` into the broker; its JSON summary line.
  std::optional<json::object> produce_with(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"produce", "--bootstrap", bootstrap_};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_eddy(args);
    if (!r) return std::nullopt;
    EXPECT_TRUE(r->status.ok()) << r->status.describe() << "; stderr: " << r->err;
    const auto lines = split_lines(r->out);
    EXPECT_EQ(lines.size(), 1u) << r->out;
    if (!r->status.ok() || lines.size() != 1) return std::nullopt;
    return parse_object(lines.front());
  }

  temp_dir dir_;
  std::unique_ptr<child_process> broker_;
  std::string bootstrap_;
  int commands_ = 0;
};

}  // namespace eddy::test
