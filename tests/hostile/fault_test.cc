// Write faults on the real atomic file sink of the real `ckptio convert`: an LD_PRELOAD shim
// (fault_shim.c) makes the temporary file's write(2) fail with ENOSPC at each write in turn,
// write short, fail fsync(2) or rename(2). Each failure must end in exit status 1 with one
// line on stderr, the old output byte-identical and loadable, and no temporary file left.
// Then kill -9 loops: `ckptio convert` of a ~128 MB file killed at random moments, 50 times,
// leaves the output either the old file or the complete new one, never anything in between,
// and no temporary survives the next save: the sink's temporary is unnamed (O_TMPFILE), and
// where the file system refuses that (the shim's notmpfile) the next save sweeps the named
// temporaries whose writer is gone. The same loop for a sharded save (a checkpoint directory
// written as a temporary sibling directory and renamed into place): the directory is always
// the old checkpoint or the new one, and the next save sweeps killed writers' directories.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../interop/interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

constexpr int kTimeoutS = 120;

std::string prepare(const std::string& dir) {
  // mid.pt (~20 MB: several 4 MiB sink buffers, so several write calls), old.pt (what the
  // output holds before each save), big.pt (~128 MB, for the kill loop).
  const std::string code =
      "import torch, sys\n"
      "d = sys.argv[1]\n"
      "torch.manual_seed(0)\n"
      "torch.save({'w': torch.randn(5_000_000), 'b': torch.arange(1000)}, d + '/mid.pt')\n"
      "torch.save({'old': torch.ones(3)}, d + '/old.pt')\n"
      "torch.save({'a': torch.randn(16_000_000), 'b': torch.randn(16_000_000)}, d + '/big.pt')\n";
  RunResult r = run({kPython, "-c", code, dir}, 300);
  if (!r.exited || r.exit_code != 0) return r.describe();
  // The reference outputs: what a successful convert writes (the writer is deterministic).
  for (const char* f : {"mid", "big"}) {
    r = run({cli(), "convert", dir + "/" + f + ".pt", dir + "/" + f + ".ref.pt", "--format",
             "torch-zip"},
            300);
    if (!r.exited || r.exit_code != 0) return r.describe();
  }
  // The sharded reference: big.pt as safetensors shards (each 64 MB tensor its own shard).
  r = run({cli(), "convert", dir + "/big.pt", dir + "/big.ref.dir", "--format", "safetensors",
           "--option", "max_shard_size=40MB"},
          300);
  if (!r.exited || r.exit_code != 0) return r.describe();
  return "";
}

std::string input(const std::string& name) { return work_dir() + "/" + name; }

// `ckptio convert mid.pt DIR/out.pt` with the shim and CKPTIO_FAULT=fault; out.pt holds
// old.pt before.
RunResult convert_with_fault(const std::string& dir, const std::string& fault,
                             const std::string& log = "") {
  fs::copy_file(input("old.pt"), dir + "/out.pt", fs::copy_options::overwrite_existing);
  std::vector<std::string> argv = {
      "/usr/bin/env", std::string("LD_PRELOAD=") + CKPTIO_FAULT_SHIM, "CKPTIO_FAULT=" + fault,
      // An ASan build links its runtime dynamically; the shim then comes first on purpose.
      "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1"};
  if (!log.empty()) argv.push_back("CKPTIO_FAULT_LOG=" + log);
  for (const std::string& a : {cli(), std::string("convert"), input("mid.pt"), dir + "/out.pt",
                               std::string("--format"), std::string("torch-zip")})
    argv.push_back(a);
  return run(argv, kTimeoutS);
}

::testing::AssertionResult failed_cleanly(const RunResult& r, const std::string& dir,
                                          const std::string& needle) {
  if (!r.exited || r.exit_code != 1)
    return ::testing::AssertionFailure() << "want exit 1: " << r.describe();
  if (count_lines(r.err) != 1 || r.err.find(needle) == std::string::npos ||
      r.err.find(dir + "/out.pt") == std::string::npos)
    return ::testing::AssertionFailure()
           << "want one line naming out.pt and '" << needle << "': " << r.describe();
  if (read_file(dir + "/out.pt") != read_file(input("old.pt")))
    return ::testing::AssertionFailure() << "the old output was changed";
  if (list_dir(dir) != std::vector<std::string>{"out.pt"})
    return ::testing::AssertionFailure() << "files left behind: " << list_dir(dir).size();
  RunResult load = run({cli(), "inspect", dir + "/out.pt"}, kTimeoutS);
  if (!load.exited || load.exit_code != 0)
    return ::testing::AssertionFailure() << "old output no longer loads: " << load.describe();
  return ::testing::AssertionSuccess();
}

// ENOSPC at the 1st, 2nd, ... write of the temporary file, until a save needs fewer writes.
TEST(WriteFaults, NoSpaceAtEachWrite) {
  const std::string dir = scratch("enospc");
  const std::string log = work_dir() + "/scratch/enospc.log";
  RunResult clean = convert_with_fault(dir, "none", log);
  ASSERT_TRUE(clean.exited && clean.exit_code == 0) << clean.describe();
  const std::string counted = read_file(log);
  const int writes = std::stoi(counted.substr(counted.find('=') + 1));
  ASSERT_GE(writes, 3) << "the save should take several writes";
  ASSERT_EQ(read_file(dir + "/out.pt"), read_file(input("mid.ref.pt")));
  for (int n = 1; n <= writes; ++n) {
    const std::string d = scratch("enospc_" + std::to_string(n));
    EXPECT_TRUE(failed_cleanly(convert_with_fault(d, "enospc:" + std::to_string(n)), d,
                               "No space left on device"))
        << "ENOSPC at write " << n << " of " << writes;
  }
}

// A short write followed by ENOSPC (a disk filling up mid-buffer).
TEST(WriteFaults, ShortWriteThenNoSpace) {
  for (int n : {1, 2}) {
    const std::string d = scratch("shortenospc_" + std::to_string(n));
    EXPECT_TRUE(failed_cleanly(convert_with_fault(d, "shortenospc:" + std::to_string(n)), d,
                               "No space left on device"));
  }
}

// Short writes and EINTR are not errors: the sink loops and the file is complete.
TEST(WriteFaults, ShortWritesAndInterruptsAreRetried) {
  for (const char* fault : {"short:100000", "short:4097", "eintr"}) {
    const std::string d = scratch(std::string("retry_") + fault[0] + fault[1]);
    RunResult r = convert_with_fault(d, fault);
    ASSERT_TRUE(r.exited && r.exit_code == 0) << fault << ": " << r.describe();
    EXPECT_EQ(read_file(d + "/out.pt"), read_file(input("mid.ref.pt"))) << fault;
    EXPECT_EQ(list_dir(d), std::vector<std::string>{"out.pt"}) << fault;
  }
}

TEST(WriteFaults, FsyncFailure) {
  const std::string d = scratch("fsync");
  EXPECT_TRUE(failed_cleanly(convert_with_fault(d, "fsync"), d, "fsync failed"));
}

TEST(WriteFaults, RenameFailure) {
  const std::string d = scratch("rename");
  EXPECT_TRUE(failed_cleanly(convert_with_fault(d, "rename"), d, "cannot replace"));
}

// kill -9 at random moments of real saves, 50 times while one runs: the output is the old file or the whole
// new one, and once a save has run undisturbed, nothing else is in the directory. With
// `shim_fault`, the save runs under the fault shim (notmpfile: named temporaries only).
void kill_loop(const std::string& dir, const std::string& shim_fault) {
  const std::string out = dir + "/out.pt";
  const std::string old_bytes = read_file(input("old.pt"));
  const std::string new_bytes = read_file(input("big.ref.pt"));
  const std::string c = cli(), in = input("big.pt");
  const std::string preload = std::string("LD_PRELOAD=") + CKPTIO_FAULT_SHIM;
  const std::string fault = "CKPTIO_FAULT=" + shim_fault;
  // As in convert_with_fault: an ASan build's runtime then need not come first.
  const std::string asan = "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1";
  auto spawn = [&]() {
    pid_t pid = fork();
    if (pid == 0) {
      if (!shim_fault.empty()) {
        putenv(const_cast<char*>(preload.c_str()));
        putenv(const_cast<char*>(fault.c_str()));
        putenv(const_cast<char*>(asan.c_str()));
      }
      execl(c.c_str(), c.c_str(), "convert", in.c_str(), out.c_str(), "--format", "torch-zip",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  // Whether `pid` has its temporary open: a named one in `dir`, or an unnamed one, which
  // /proc shows as "DIR/#INODE (deleted)".
  const std::string real_dir = fs::canonical(dir).string();
  auto writing = [&](pid_t pid) {
    for (const auto& name : list_dir(dir))
      if (name.find(".ckptio-tmp-") != std::string::npos) return true;
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
      const std::string target = fs::read_symlink(fd.path(), ec).string();
      if (target.rfind(real_dir + "/#", 0) == 0) return true;
    }
    return false;
  };
  // Waits until the save's temporary exists (or the process ended).
  auto wait_for_temp = [&](pid_t pid) {
    for (int waited = 0; waited < 40000; ++waited) {
      if (writing(pid) || waitpid(pid, nullptr, WNOHANG) != 0) return;
      std::this_thread::sleep_for(std::chrono::microseconds(250));
    }
  };
  // How long an undisturbed save writes (temporary created -> process done), to spread the
  // kills over that window.
  fs::copy_file(input("old.pt"), out, fs::copy_options::overwrite_existing);
  pid_t ref = spawn();
  ASSERT_GE(ref, 0);
  wait_for_temp(ref);
  auto t0 = std::chrono::steady_clock::now();
  int ref_status = 0;
  waitpid(ref, &ref_status, 0);
  const double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(ref_status) && WEXITSTATUS(ref_status) == 0);
  ASSERT_EQ(read_file(out), new_bytes);
  ASSERT_EQ(list_dir(dir), std::vector<std::string>{"out.pt"});

  // 50 kills that land while the save runs. A loaded machine makes saves slower or faster
  // than the reference, so the window the kill moment is drawn from narrows after a save
  // that finished first and widens again after a kill that landed.
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double window = full * 0.7;
  int killed_running = 0, old_seen = 0, new_seen = 0, left_named = 0;
  std::vector<pid_t> killed;
  for (int i = 0; i < 200 && killed_running < 50; ++i) {
    fs::copy_file(input("old.pt"), out, fs::copy_options::overwrite_existing);
    pid_t pid = spawn();
    ASSERT_GE(pid, 0);
    wait_for_temp(pid);
    std::this_thread::sleep_for(std::chrono::duration<double>(unit(rng) * window));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    killed_running += WIFSIGNALED(status);
    window = WIFSIGNALED(status) ? std::min(window * 1.1, full) : window * 0.7;
    const std::string now = read_file(out);
    if (now == old_bytes) {
      ++old_seen;
    } else {
      ASSERT_EQ(now.size(), new_bytes.size()) << "iteration " << i << ": a partial output";
      ASSERT_TRUE(now == new_bytes) << "iteration " << i << ": output differs from a full save";
      ++new_seen;
    }
    // What a killed writer may leave is its own named temporary. A save removes those of
    // dead writers right after making its own, so they pile up only while saves are killed
    // before that (often under a sanitizer); the undisturbed save below removes them all.
    killed.push_back(pid);
    for (const auto& name : list_dir(dir)) {
      if (name == "out.pt") continue;
      const bool ours = std::any_of(killed.begin(), killed.end(), [&](pid_t p) {
        return name.rfind(".out.pt.ckptio-tmp-" + std::to_string(p) + "-", 0) == 0;
      });
      EXPECT_TRUE(ours) << "iteration " << i << ": " << name << " is no killed writer's";
      left_named += name.rfind(".out.pt.ckptio-tmp-" + std::to_string(pid) + "-", 0) == 0;
    }
  }
  pid_t last = spawn();
  ASSERT_GE(last, 0);
  int last_status = 0;
  waitpid(last, &last_status, 0);
  ASSERT_TRUE(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 0);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"out.pt"}) << "a temporary survived a save";
  RunResult v = run({cli(), "verify", out}, kTimeoutS);
  EXPECT_TRUE(v.exited && v.exit_code == 0) << v.describe();
  EXPECT_EQ(killed_running, 50) << "kills that landed while the save ran";
  std::printf("kill -9 loop%s: %d killed mid-run, %d old outputs, %d complete new outputs, "
              "%d named temporaries left for the next save\n",
              shim_fault.empty() ? "" : " (named temporaries)", killed_running, old_seen,
              new_seen, left_named);
}

TEST(KillDuringSave, OutputIsOldOrCompleteAndNothingIsLeft) { kill_loop(scratch("kill"), ""); }

// Every file of a directory, name -> bytes.
std::map<std::string, std::string> directory_bytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& name : list_dir(dir)) out[name] = read_file(dir + "/" + name);
  return out;
}

// kill -9 during sharded saves into a checkpoint directory, 50 times while one runs: the
// directory is the old checkpoint (one shard and the config.json beside it) or the whole new
// one (two shards, the index, the config.json carried over), and once a save has run
// undisturbed, nothing but the directory is left beside it.
TEST(KillDuringSave, ShardedSaveLeavesTheOldOrTheNewDirectory) {
  const std::string dir = scratch("kill_sharded");
  const std::string out = dir + "/out";
  const std::string c = cli(), in = input("big.pt");
  auto make_old = [&]() {
    std::error_code ec;
    fs::remove_all(out, ec);
    RunResult r = run({c, "convert", input("old.pt"), out, "--format", "safetensors", "--option",
                       "max_shard_size=40MB"},
                      kTimeoutS);
    write_file(out + "/config.json", "{\"model_type\": \"test\"}\n");
    return r;
  };
  RunResult made = make_old();
  ASSERT_TRUE(made.exited && made.exit_code == 0) << made.describe();
  const auto old_files = directory_bytes(out);
  ASSERT_EQ(old_files.size(), 2u) << "model.safetensors and config.json";
  auto new_files = directory_bytes(input("big.ref.dir"));
  new_files["config.json"] = old_files.at("config.json");
  ASSERT_EQ(new_files.size(), 4u) << "two shards, the index and config.json";
  auto spawn = [&]() {
    pid_t pid = fork();
    if (pid == 0) {
      execl(c.c_str(), c.c_str(), "convert", in.c_str(), out.c_str(), "--format", "safetensors",
            "--option", "max_shard_size=40MB", static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  auto temp_dirs = [&]() {
    std::vector<std::string> temps;
    for (const auto& name : list_dir(dir))
      if (name != "out") temps.push_back(name);
    return temps;
  };
  auto wait_for_temp = [&](pid_t pid) {
    for (int waited = 0; waited < 40000; ++waited) {
      for (const auto& name : temp_dirs())
        if (name.rfind(".out.ckptio-tmpdir-" + std::to_string(pid) + "-", 0) == 0) return;
      if (waitpid(pid, nullptr, WNOHANG) != 0) return;
      std::this_thread::sleep_for(std::chrono::microseconds(250));
    }
  };
  pid_t ref = spawn();
  ASSERT_GE(ref, 0);
  wait_for_temp(ref);
  auto t0 = std::chrono::steady_clock::now();
  int ref_status = 0;
  waitpid(ref, &ref_status, 0);
  const double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(ref_status) && WEXITSTATUS(ref_status) == 0);
  ASSERT_EQ(directory_bytes(out), new_files);
  ASSERT_TRUE(temp_dirs().empty());

  std::mt19937 rng(54321);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double window = full * 0.7;
  int killed_running = 0, old_seen = 0, new_seen = 0;
  std::vector<pid_t> killed;
  for (int i = 0; i < 200 && killed_running < 50; ++i) {
    made = make_old();
    ASSERT_TRUE(made.exited && made.exit_code == 0) << made.describe();
    pid_t pid = spawn();
    ASSERT_GE(pid, 0);
    wait_for_temp(pid);
    std::this_thread::sleep_for(std::chrono::duration<double>(unit(rng) * window));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    killed_running += WIFSIGNALED(status);
    window = WIFSIGNALED(status) ? std::min(window * 1.1, full) : window * 0.7;
    const auto now = directory_bytes(out);
    if (now == old_files) {
      ++old_seen;
    } else {
      ASSERT_TRUE(now == new_files) << "iteration " << i << ": the directory is neither the old "
                                    << "checkpoint nor the whole new one (" << now.size()
                                    << " files)";
      ++new_seen;
    }
    killed.push_back(pid);
    for (const auto& name : temp_dirs()) {
      const bool ours = std::any_of(killed.begin(), killed.end(), [&](pid_t p) {
        return name.rfind(".out.ckptio-tmpdir-" + std::to_string(p) + "-", 0) == 0;
      });
      EXPECT_TRUE(ours) << "iteration " << i << ": " << name << " is no killed writer's";
    }
  }
  made = make_old();
  ASSERT_TRUE(made.exited && made.exit_code == 0) << made.describe();
  pid_t last = spawn();
  ASSERT_GE(last, 0);
  int last_status = 0;
  waitpid(last, &last_status, 0);
  ASSERT_TRUE(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 0);
  EXPECT_EQ(directory_bytes(out), new_files);
  EXPECT_TRUE(temp_dirs().empty()) << "a killed writer's directory survived a save: "
                                   << (temp_dirs().empty() ? "" : temp_dirs()[0]);
  RunResult v = run({c, "verify", out}, kTimeoutS);
  EXPECT_TRUE(v.exited && v.exit_code == 0) << v.describe();
  EXPECT_EQ(killed_running, 50) << "kills that landed while the save ran";
  std::printf("sharded kill -9 loop: %d killed mid-run, %d old directories, %d complete new ones\n",
              killed_running, old_seen, new_seen);
}

// The same where the file system has no O_TMPFILE: named temporaries, swept by the next save.
TEST(KillDuringSave, NamedTemporariesOfKilledWritersGoAtTheNextSave) {
  kill_loop(scratch("kill_named"), "notmpfile");
}

// A later save to the same output removes the temporaries no live writer holds (each writer
// keeps a lock on its own), whatever their age; a locked one, or another output's, is kept.
TEST(KillDuringSave, LaterSaveRemovesStaleTemporaries) {
  const std::string dir = scratch("stale");
  pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  const std::string stale = ".out.pt.ckptio-tmp-" + std::to_string(dead) + "-1";
  const std::string stale_old = ".out.pt.ckptio-tmp-" + std::to_string(dead) + "-2";
  const std::string locked = ".out.pt.ckptio-tmp-" + std::to_string(dead) + "-3";
  const std::string live_pid = ".out.pt.ckptio-tmp-" + std::to_string(getpid()) + "-4";
  const std::string other = ".other.pt.ckptio-tmp-" + std::to_string(dead) + "-5";
  for (const auto& f : {stale, stale_old, locked, live_pid, other})
    write_file(dir + "/" + f, "partial");
  fs::last_write_time(dir + "/" + stale_old,
                      fs::file_time_type::clock::now() - std::chrono::minutes(10));
  // A writer in another PID namespace: its pid means nothing here, its lock does.
  const int held = ::open((dir + "/" + locked).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  RunResult r = run({cli(), "convert", input("old.pt"), dir + "/out.pt", "--format", "torch-zip"},
                    kTimeoutS);
  ::close(held);
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  std::vector<std::string> want = {locked, live_pid, other, "out.pt"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(dir), want);
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
