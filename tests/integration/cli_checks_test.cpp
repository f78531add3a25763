// The numeric options of every command and `run --summary-json` are checked before anything
// runs: a bad value is a usage error (exit 2) whose message names the option and a readable
// range. Fast: only the --summary-json write failure starts a broker.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/eddy_fixture.hpp"

namespace eddy::test {
namespace {

using namespace std::chrono_literals;

class cli_checks : public eddy_fixture {
 protected:
  cli_checks() : eddy_fixture("eddy-cli-checks") {}

  /// Runs `eddy ARGS...`, expects exit 2 and returns stderr.
  std::string usage_error(const std::vector<std::string>& args) {
    auto r = run_eddy(args, 20s);
    if (!r) return {};
    EXPECT_TRUE(r->status.exited && r->status.code == 2)
        << r->status.describe() << "; stderr: " << r->err;
    return r->err;
  }

  /// A plain pipeline reading topic `t` (console sink, dead letters under the temp dir).
  std::string write_pipeline(const std::string& name = "p") {
    const std::string path = dir_ / (name + ".toml");
    write_text_file(path, "[pipeline]\nname = \"" + name +
                              "\"\n[source]\ntopic = \"t\"\n[[fields]]\nname = \"id\"\n"
                              "type = \"int\"\n[[sinks]]\ntype = \"console\"\n[dead_letter]\n"
                              "path = \"" +
                              dir_ / "dead" + "\"\n");
    return path;
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(cli_checks, negative_counts_and_seeds_are_rejected_not_wrapped) {
  // CLI11 read "-1" into an unsigned option as 2^64-1: `produce --count -1` ran unbounded.
  const std::string e = usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--count", "-1"});
  EXPECT_TRUE(contains(e, "--count: must be an integer from 0 to 18446744073709551615, got '-1'"))
      << e;
  EXPECT_TRUE(contains(usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--seed", "-3"}),
                       "--seed: must be an integer from 0 to"));
  EXPECT_TRUE(contains(
      usage_error({"checkpoint", "inspect", "--dir", dir_.path().string(), "--epoch", "-1"}),
      "--epoch: must be an integer from 0 to"));
}

TEST_F(cli_checks, range_errors_name_their_bounds_readably) {
  // CLI::NonNegativeNumber printed DBL_MAX as a 309-digit number.
  const std::string rate = usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--rate", "-1"});
  EXPECT_TRUE(contains(rate, "--rate: must be a number from 0 to 1e+09, got '-1'")) << rate;
  EXPECT_FALSE(contains(rate, "179769")) << rate;
  EXPECT_LT(rate.size(), 300u) << rate;
  const std::string disorder =
      usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--disorder-ms", "-5"});
  EXPECT_TRUE(contains(disorder, "--disorder-ms: must be an integer from 0 to 315360000000"))
      << disorder;
  EXPECT_TRUE(contains(usage_error({"demo", "--duration", "-1"}),
                       "--duration: must be a number from 0 to 1e+09, got '-1'"));
  // NaN passed CLI::Range (every comparison with it is false).
  EXPECT_TRUE(contains(usage_error({"demo", "--speedup", "nan"}),
                       "--speedup: must be a number from 1 to 100000, got 'nan'"));
  EXPECT_TRUE(contains(usage_error({"demo", "--bad-ratio", "inf"}), "--bad-ratio:"));
  EXPECT_TRUE(contains(usage_error({"broker", "--port", "70000"}),
                       "--port: must be an integer from 0 to 65535, got '70000'"));
  EXPECT_TRUE(contains(usage_error({"broker", "--brokers", "0"}),
                       "--brokers: must be an integer from 1 to 16, got '0'"));
  EXPECT_TRUE(contains(usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--partition", "-2"}),
                       "--partition: must be an integer from -1 to 1048576, got '-2'"));
}

TEST_F(cli_checks, start_times_outside_what_windows_accept_are_rejected) {
  // The generator's time arithmetic overflowed (UBSan) from 9223372036854775807.
  for (const char* t : {"9223372036854775807", "-9223372036854775808", "99999999999999999999"}) {
    const std::string e =
        usage_error({"produce", "--bootstrap", "127.0.0.1:1", "--start-time-us", t});
    EXPECT_TRUE(contains(e,
                         "--start-time-us: must be an integer from -62135596800000000 to "
                         "253402300799999999, got '" +
                             std::string(t) + "'"))
        << e;
  }
}

TEST_F(cli_checks, an_unwritable_summary_json_stops_the_run_before_it_starts) {
  const std::string config = write_pipeline();
  fs::create_directories(dir_ / "a-dir");
  for (const auto& [path, why] :
       {std::pair<std::string, std::string>{dir_ / "a-dir", "Is a directory"},
        {dir_ / "no-such-dir/s.json", "No such file or directory"}}) {
    // The broker address is never contacted: the check comes first.
    const std::string e = usage_error({"run", "-c", config, "--bootstrap", "127.0.0.1:1",
                                       "--exit-at-end", "--summary-json", path});
    EXPECT_TRUE(contains(e, "--summary-json " + path + ": cannot write it: " + why)) << e;
  }
}

TEST_F(cli_checks, a_summary_json_that_fails_at_the_end_fails_the_run) {
  start_broker("t:1");
  const std::string config = write_pipeline();
  // /dev/full opens fine (the check at start passes) and fails every write.
  auto r = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                     "--summary-json", "/dev/full"},
                    60s);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status.exited && r->status.code == 1) << r->status.describe() << r->err;
  EXPECT_TRUE(contains(r->err, "--summary-json /dev/full: writing it failed")) << r->err;

  // And a writable one is written.
  r = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end", "--summary-json",
                dir_ / "s.json"},
               60s);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status.ok()) << r->status.describe() << r->err;
  EXPECT_TRUE(contains(read_text_file(dir_ / "s.json"), "\"ok\": true"));
}

TEST_F(cli_checks, a_pipeline_named_dot_dot_is_rejected) {
  const std::string config = dir_ / "dots.toml";
  write_text_file(config,
                  "[pipeline]\nname = \"..\"\n[source]\ntopic = \"t\"\n[[fields]]\nname = \"id\"\n"
                  "type = \"int\"\n[[sinks]]\ntype = \"console\"\n");
  const std::string e = usage_error({"run", "-c", config, "--bootstrap", "127.0.0.1:1"});
  EXPECT_TRUE(contains(e, "dots.toml:2: pipeline.name: \"..\" is not a valid name")) << e;
}

}  // namespace
}  // namespace eddy::test
