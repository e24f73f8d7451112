// Running a command from a test: no shell unless asked, stdout and stderr captured, and a hang
// guard. A child still running at its deadline is killed (with everything it started), so a
// hang costs one test its timeout instead of stalling the suite; inside a running test that
// is also a test failure naming the command, whatever the test then asserts about the result.
#pragma once

#include <string>
#include <vector>

namespace test_support {

constexpr int kDefaultTimeoutS = 300;

struct RunResult {
  std::vector<std::string> argv;
  bool exited = false;  // ended by exit(), not by a signal or the hang guard
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string out, err;

  // "exit 1", "signal 11 (Segmentation fault)", "timed out", "did not start".
  std::string status() const;
  // The command, its status and its stderr, for assertion messages.
  std::string describe() const;
  // The exit code; 128 + the signal when killed (as a shell reports it); -1 when it timed
  // out or did not start.
  int shell_code() const;
};

// Runs argv[0] (a path: no PATH lookup) with stdin from /dev/null.
RunResult run(const std::vector<std::string>& argv, int timeout_s = kDefaultTimeoutS);

// Runs `command` with /bin/sh -c, for tests whose commands use redirections or variables.
RunResult run_shell(const std::string& command, int timeout_s = kDefaultTimeoutS);

}  // namespace test_support
