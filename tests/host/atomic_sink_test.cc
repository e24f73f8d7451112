// AtomicFileSink's preallocation: reserve() allocates blocks without changing what the file
// holds, and commit() leaves exactly the written bytes, whether the hint was too large (a
// compressed save) or too small.
#include "host/io/atomic_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "support/files.h"
#include "support/scratch.h"

namespace ckptio::host {
namespace {
namespace fs = std::filesystem;

class AtomicSink : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }
  // Whether this directory's file system preallocates at all (tmpfs and ext4 do; some
  // network and overlay file systems refuse, and then reserve() is rightly a no-op).
  bool can_preallocate() const {
    const std::string probe = path("probe");
    int fd = ::open(probe.c_str(), O_RDWR | O_CREAT, 0644);
    const bool ok = fd >= 0 && ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20) == 0;
    if (fd >= 0) ::close(fd);
    fs::remove(probe);
    return ok;
  }
  static uint64_t allocated_bytes(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return uint64_t(st.st_blocks) * 512;
  }
  static std::string contents(const std::string& p) { return test_support::read_file(p); }
  test_support::ScratchDir dir_{"sink"};
};

TEST_F(AtomicSink, ReserveAllocatesAndCommitFreesWhatWasNotWritten) {
  if (!can_preallocate()) GTEST_SKIP() << "file system cannot preallocate";
  auto sink = AtomicFileSink::create(path("a.bin"), /*fsync=*/false);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  sink.value()->reserve(8u << 20);
  const std::string temp = sink.value()->temp_path();
  EXPECT_GE(allocated_bytes(temp), 8u << 20);
  EXPECT_EQ(fs::file_size(temp), 0u);  // KEEP_SIZE: the file holds only what was written
  ASSERT_TRUE(sink.value()->write("0123456789", 10).ok());
  ASSERT_TRUE(sink.value()->commit().ok());
  EXPECT_EQ(contents(path("a.bin")), "0123456789");
  EXPECT_LT(allocated_bytes(path("a.bin")), 64u << 10);
}

TEST_F(AtomicSink, WritesPastTheReservationAreKept) {
  auto sink = AtomicFileSink::create(path("b.bin"), /*fsync=*/false);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  sink.value()->reserve(100);
  std::string big(9u << 20, '\0');  // larger than the sink's buffer: written straight through
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 131 % 251);
  ASSERT_TRUE(sink.value()->write("head", 4).ok());
  ASSERT_TRUE(sink.value()->write(big.data(), big.size()).ok());
  ASSERT_TRUE(sink.value()->commit().ok());
  EXPECT_EQ(contents(path("b.bin")), "head" + big);
}

TEST_F(AtomicSink, AnUncommittedReservedSinkLeavesNothing) {
  std::string temp;
  {
    auto sink = AtomicFileSink::create(path("c.bin"), /*fsync=*/false);
    ASSERT_TRUE(sink.ok()) << sink.status().message();
    sink.value()->reserve(4u << 20);
    ASSERT_TRUE(sink.value()->write("x", 1).ok());
    temp = sink.value()->temp_path();
    EXPECT_TRUE(fs::exists(temp));
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(path("c.bin")));
}

// Where the file system has O_TMPFILE, the temporary has no name until commit: a writer
// killed before then leaves nothing in the directory (tests/hostile kills real saves).
TEST_F(AtomicSink, TheTemporaryIsUnnamedUntilCommit) {
  const int probe = ::open(dir_.path().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (probe < 0) GTEST_SKIP() << dir_.path() << ": no O_TMPFILE on this file system";
  ::close(probe);
  auto sink = AtomicFileSink::create(path("d.bin"), /*fsync=*/true);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  ASSERT_TRUE(sink.value()->write("abc", 3).ok());
  EXPECT_EQ(sink.value()->temp_path().rfind("/proc/self/fd/", 0), 0u) << sink.value()->temp_path();
  EXPECT_EQ(test_support::list_dir(dir_.path()), std::vector<std::string>{});
  ASSERT_TRUE(sink.value()->commit().ok());
  EXPECT_EQ(test_support::list_dir(dir_.path()), std::vector<std::string>{"d.bin"});
  EXPECT_EQ(contents(path("d.bin")), "abc");
}

}  // namespace
}  // namespace ckptio::host
