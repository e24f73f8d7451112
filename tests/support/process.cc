#include "support/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace test_support {

std::string RunResult::status() const {
  if (timed_out) return "timed out";
  if (exited) return "exit " + std::to_string(exit_code);
  if (signal) return "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "did not start";
}

std::string RunResult::describe() const {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return "`" + cmd + "` -> " + status() + "\nstderr: " + err.substr(0, 4000);
}

int RunResult::shell_code() const {
  if (exited) return exit_code;
  if (signal) return 128 + signal;
  return -1;
}

RunResult run(const std::vector<std::string>& argv, int timeout_s) {
  RunResult r;
  r.argv = argv;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + strerror(errno);
    return r;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: other threads may exist. Its own
    // process group, so the hang guard also kills what a shell or a script started.
    setpgid(0, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.err = std::string("fork: ") + strerror(errno);
    return r;
  }
  setpgid(pid, pid);  // also here: the guard may fire before the child ran setpgid
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (r.timed_out) {
    // Outside a test (a '.prepare' step) the result records it; the tests reading it fail.
    if (::testing::UnitTest::GetInstance()->current_test_info())
      ADD_FAILURE() << "hang guard: killed after " << timeout_s << " s: " << r.describe();
  } else {
    r.exited = WIFEXITED(status);
    if (r.exited) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  }
  return r;
}

RunResult run_shell(const std::string& command, int timeout_s) {
  return run({"/bin/sh", "-c", command}, timeout_s);
}

}  // namespace test_support
