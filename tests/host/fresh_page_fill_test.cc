// FreshPageFiller: new pages get exactly the bytes read (the rest of the last page zero),
// from several threads at once; a failing read or a copy the kernel refuses leaves memory
// that is ordinary again once the filler is gone; it is not tried under a seccomp filter,
// and CKPTIO_USERFAULTFD=0 turns it off. The loader's use of it is covered in
// save_load_test.cc (LargeStoragesLoadTheSameWithAndWithoutUserfaultfd).
#include "host/io/fresh_page_fill.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace ckptio::host {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// A fresh anonymous mapping, unmapped at the end of the test.
struct Mapping {
  explicit Mapping(uint64_t n) : size(n) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  ~Mapping() {
    if (data) munmap(data, size);
  }
  uint8_t* data;
  uint64_t size;
};

uint8_t pattern(uint64_t i) { return static_cast<uint8_t>(i * 131 + 7); }

// Reads the pattern at `base` + offset, counting calls.
FreshPageFiller::ReadFn pattern_reader(uint64_t base, int* calls = nullptr) {
  return [base, calls](uint64_t offset, void* buf, uint64_t n) {
    if (calls) ++*calls;
    auto* out = static_cast<uint8_t*>(buf);
    for (uint64_t i = 0; i < n; ++i) out[i] = pattern(base + offset + i);
    return Status::Ok();
  };
}

#define SKIP_IF_UNAVAILABLE(filler) \
  if (!(filler)) GTEST_SKIP() << "userfaultfd is not allowed here (seccomp or old kernel)"

TEST(FreshPageFill, NewPagesHoldTheBytesReadAndZerosAfterThem) {
  auto filler = FreshPageFiller::open();
  SKIP_IF_UNAVAILABLE(filler);
  // Three pieces of 1 MiB and an odd tail, so that pieces and the last page are both partial.
  const uint64_t n = (3u << 20) + 5 * kPage + 123;
  Mapping m(n);
  ASSERT_NE(m.data, nullptr);
  ASSERT_TRUE(filler->adopt(m.data, n));
  bool filled = false;
  int calls = 0;
  ASSERT_TRUE(filler->fill(m.data, n, pattern_reader(0, &calls), filled).ok());
  EXPECT_TRUE(filled);
  EXPECT_EQ(calls, 4);
  filler.reset();
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(m.data[i], pattern(i)) << "byte " << i;
  uint64_t page_end = (n + kPage - 1) / kPage * kPage;
  for (uint64_t i = n; i < page_end; ++i) ASSERT_EQ(m.data[i], 0) << "byte " << i;
}

TEST(FreshPageFill, ThreadsFillDisjointRangesOfOneMapping) {
  auto filler = FreshPageFiller::open();
  SKIP_IF_UNAVAILABLE(filler);
  const uint64_t chunk = 2u << 20, n = 4 * chunk + 77;
  Mapping m(n);
  ASSERT_NE(m.data, nullptr);
  ASSERT_TRUE(filler->adopt(m.data, n));
  std::vector<std::thread> threads;
  std::vector<int> ok(5, 0);
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&, t] {
      uint64_t at = t * chunk, len = std::min(chunk, n - at);
      bool filled = false;
      ok[t] = filler->fill(m.data + at, len, pattern_reader(at), filled).ok() && filled;
    });
  for (auto& t : threads) t.join();
  filler.reset();
  for (int t = 0; t < 5; ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(m.data[i], pattern(i)) << "byte " << i;
}

TEST(FreshPageFill, AFailingReadIsReturnedAndTheMemoryIsUsableAfterwards) {
  auto filler = FreshPageFiller::open();
  SKIP_IF_UNAVAILABLE(filler);
  const uint64_t n = 3u << 20;
  Mapping m(n);
  ASSERT_NE(m.data, nullptr);
  ASSERT_TRUE(filler->adopt(m.data, n));
  auto fail_second_piece = [](uint64_t offset, void* buf, uint64_t len) {
    if (offset > 0) return Status(Code::kIo, "disk gone");
    std::memset(buf, 0xab, len);
    return Status::Ok();
  };
  bool filled = true;
  Status st = filler->fill(m.data, n, fail_second_piece, filled);
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_FALSE(filled);
  filler.reset();
  // The first piece was filled; the pages never filled are ordinary zero pages again (with
  // the filler alive, touching them would fail or wait for a fault handler).
  EXPECT_EQ(m.data[0], 0xab);
  EXPECT_EQ(m.data[n - 1], 0);
  m.data[n - 1] = 1;
  EXPECT_EQ(m.data[n - 1], 1);
}

TEST(FreshPageFill, ACopyTheKernelRefusesIsReportedNotFilled) {
  auto filler = FreshPageFiller::open();
  SKIP_IF_UNAVAILABLE(filler);
  const uint64_t n = 4 * kPage;
  Mapping m(n);
  ASSERT_NE(m.data, nullptr);
  m.data[2 * kPage] = 9;  // a page already present: UFFDIO_COPY refuses it (EEXIST)
  ASSERT_TRUE(filler->adopt(m.data, n));
  bool filled = true;
  EXPECT_TRUE(filler->fill(m.data, n, pattern_reader(0), filled).ok());
  EXPECT_FALSE(filled);
  filler.reset();
  EXPECT_EQ(m.data[2 * kPage], 9);  // left alone: the caller writes the range again
  std::memset(m.data, 1, n);        // and every page can be written
  EXPECT_EQ(m.data[n - 1], 1);
}

TEST(FreshPageFill, RefusesWhatItCannotTakeOver) {
  auto filler = FreshPageFiller::open();
  SKIP_IF_UNAVAILABLE(filler);
  Mapping m(2 * kPage);
  ASSERT_NE(m.data, nullptr);
  EXPECT_FALSE(filler->adopt(m.data + 1, kPage));  // not page-aligned
  EXPECT_FALSE(filler->adopt(m.data, 0));
  // A file's pages come from the file, not from fill().
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* file_map = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ASSERT_NE(file_map, MAP_FAILED);
  EXPECT_FALSE(filler->adopt(file_map, kPage));
  munmap(file_map, kPage);
}

// A seccomp filter that kills the process on userfaultfd, as an allow-list without it does.
void install_filter_killing_userfaultfd() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    _exit(3);
}

// Runs `child` in a forked process under that filter; returns its wait status.
template <typename Fn>
int run_under_filter(Fn child) {
  pid_t pid = fork();
  if (pid == 0) {
    install_filter_killing_userfaultfd();
    _exit(child());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(FreshPageFill, NotTriedUnderASeccompFilter) {
  // The filter does kill a process calling userfaultfd ...
  int direct = run_under_filter([] { return int(syscall(SYS_userfaultfd, O_CLOEXEC) < 0); });
  ASSERT_TRUE(WIFSIGNALED(direct) && WTERMSIG(direct) == SIGSYS) << "status " << direct;
  // ... and open() does not call it there: it returns null and the process lives on.
  int guarded = run_under_filter([] { return FreshPageFiller::open() ? 1 : 0; });
  EXPECT_TRUE(WIFEXITED(guarded) && WEXITSTATUS(guarded) == 0) << "status " << guarded;
}

TEST(FreshPageFill, EnvironmentVariableTurnsItOff) {
  const char* old = std::getenv("CKPTIO_USERFAULTFD");
  std::string saved = old ? old : "";
  setenv("CKPTIO_USERFAULTFD", "0", 1);
  EXPECT_EQ(FreshPageFiller::open(), nullptr);
  if (old)
    setenv("CKPTIO_USERFAULTFD", saved.c_str(), 1);
  else
    unsetenv("CKPTIO_USERFAULTFD");
}

}  // namespace
}  // namespace ckptio::host
