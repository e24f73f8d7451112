#include "host/io/atomic_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

namespace ckptio::host {
namespace {
constexpr size_t kBufferSize = 1u << 20;       // small writes (headers, pickles) are batched
constexpr size_t kDirectWriteMin = 64u << 10;  // larger ones are written as they come

std::string temp_prefix(const std::string& name) { return "." + name + ".ckptio-tmp-"; }

// Whether the process named in a temporary's name may still be writing it.
bool pid_may_live(long pid) { return pid == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH; }

// Removes the temporaries of the same destination that no live writer holds: a writer keeps
// an exclusive flock on its temporary from creation to rename, so a lock we can take means
// its writer died (kill -9, OOM, power loss) whatever its age. A pid that still runs here
// keeps its file too: between creating its temporary and locking it, a writer holds no lock
// yet. Writers in another PID namespace are protected by the lock alone. Best effort: errors
// leave the file where it is.
void remove_stale_temps(const std::string& dir, const std::string& name) {
  const std::string prefix = temp_prefix(name);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = f.substr(prefix.size());
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash)
      continue;
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    if (pid <= 0 || pid_may_live(pid)) continue;
    const std::string path = dir + "/" + f;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::getuid() &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0)
      ::unlink(path.c_str());
    ::close(fd);
  }
  ::closedir(d);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(::getpid()) + "-" + std::to_string(rng());
}

// Gives the unnamed temporary `fd` the name `named` (a sibling of the destination). The
// /proc link needs no privilege; AT_EMPTY_PATH is the way without /proc.
bool link_unnamed(int fd, const std::string& named) {
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, named.c_str(), AT_SYMLINK_FOLLOW) == 0)
    return true;
  if (errno == EEXIST) return false;
  return ::linkat(fd, "", AT_FDCWD, named.c_str(), AT_EMPTY_PATH) == 0;
}
}  // namespace

Result<std::unique_ptr<AtomicFileSink>> AtomicFileSink::create(const std::string& path,
                                                               bool fsync) {
  std::unique_ptr<AtomicFileSink> sink(new AtomicFileSink());
  sink->path_ = path;
  sink->fsync_ = fsync;
  std::filesystem::path p(path);
  sink->dir_ = p.has_parent_path() ? p.parent_path().string() : ".";
  sink->name_ = p.filename().string();
  mode_t mode = 0666;
  struct stat existing {};
  bool keep_mode = ::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode);
  if (keep_mode) mode = existing.st_mode & 07777;
  // An unnamed file first: a writer killed before commit leaves nothing, the kernel frees
  // it. Where the file system has no O_TMPFILE, a named sibling that a later save sweeps.
  sink->fd_ = ::open(sink->dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
  for (int attempt = 0; attempt < 16 && sink->fd_ < 0; ++attempt) {
    sink->temp_ = sink->dir_ + "/" + temp_prefix(sink->name_) + random_suffix();
    sink->fd_ = ::open(sink->temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (sink->fd_ < 0 && errno != EEXIST) break;
  }
  if (sink->fd_ < 0) {
    sink->temp_.clear();
    return Status(Code::kIo, path + ": cannot create temporary file in " + sink->dir_ + ": " +
                                 std::strerror(errno));
  }
  (void)::flock(sink->fd_, LOCK_EX);  // held until the rename: a sweeper leaves it alone
  if (keep_mode) (void)::fchmod(sink->fd_, mode);  // umask must not narrow an existing mode
  remove_stale_temps(sink->dir_, sink->name_);
  sink->buffer_.reserve(kBufferSize);
  return sink;
}

std::string AtomicFileSink::temp_path() const {
  return temp_.empty() && fd_ >= 0 ? "/proc/self/fd/" + std::to_string(fd_) : temp_;
}

AtomicFileSink::~AtomicFileSink() {
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
  if (fd_ >= 0) ::close(fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status AtomicFileSink::write_fully(const void* data, uint64_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n > (1u << 30) ? (1u << 30) : n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status(Code::kIo, path_ + ": write failed: " + std::strerror(errno));
    if (w == 0) return Status(Code::kIo, path_ + ": write made no progress");
    p += w;
    n -= static_cast<uint64_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status AtomicFileSink::flush_buffer() {
  if (buffer_.empty()) return Status::Ok();
  Status st = write_fully(buffer_.data(), buffer_.size());
  buffer_.clear();
  return st;
}

Status AtomicFileSink::write(const void* data, uint64_t n) {
  if (fd_ < 0 || committed_) return Status(Code::kInternal, path_ + ": write after commit");
  // Storage bytes go straight to write(2): copying a 1 MiB record through the buffer first
  // cost a bf16 save (320 MiB in such records) a tenth of its time.
  if (n >= kDirectWriteMin) {
    CKPTIO_RETURN_IF_ERROR(flush_buffer());
    return write_fully(data, n);
  }
  if (buffer_.size() + n > kBufferSize) CKPTIO_RETURN_IF_ERROR(flush_buffer());
  const auto* p = static_cast<const uint8_t*>(data);
  buffer_.insert(buffer_.end(), p, p + n);
  return Status::Ok();
}

void AtomicFileSink::reserve(uint64_t bytes) {
  if (fd_ < 0 || committed_ || bytes <= written_ + buffer_.size() || bytes > uint64_t(INT64_MAX))
    return;
  // The fallocate system call, not posix_fallocate: where the file system cannot preallocate,
  // glibc's fallback writes zeros, which costs what preallocation was meant to save.
  // KEEP_SIZE: until commit the file is exactly what was written. Errors (EOPNOTSUPP, ENOSPC
  // for a hint larger than a compressed output needs) leave ordinary writes to do the work;
  // a failed call may still have allocated some blocks, so commit trims either way.
  reserved_ = bytes;
  (void)::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, off_t(bytes));
}

Status AtomicFileSink::commit() {
  CKPTIO_RETURN_IF_ERROR(flush_buffer());
  // Blocks preallocated past the end stay allocated until a truncate, even one to the same
  // size; a save whose output came out smaller than the hint (compression) frees them here.
  if (reserved_ > written_ && ::ftruncate(fd_, off_t(written_)) != 0)
    return Status(Code::kIo, path_ + ": cannot trim preallocated space: " + std::strerror(errno));
  if (fsync_ && ::fsync(fd_) != 0)
    return Status(Code::kIo, path_ + ": fsync failed: " + std::strerror(errno));
  if (temp_.empty()) {  // unnamed: name it beside the destination, then rename as below
    for (int attempt = 0; attempt < 16 && temp_.empty(); ++attempt) {
      std::string named = dir_ + "/" + temp_prefix(name_) + random_suffix();
      if (link_unnamed(fd_, named)) temp_ = std::move(named);
      else if (errno != EEXIST) break;
    }
    if (temp_.empty())
      return Status(Code::kIo, path_ + ": cannot link the temporary file into " + dir_ + ": " +
                                   std::strerror(errno));
  }
  // The lock lives on the open file: a duplicate keeps it through close() and the rename.
  lock_fd_ = ::dup(fd_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Status(Code::kIo, path_ + ": close failed: " + std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    return Status(Code::kIo, path_ + ": cannot replace: " + std::strerror(errno));
  committed_ = true;
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  if (fsync_) {
    int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);  // best effort: the rename itself has happened
      ::close(dfd);
    }
  }
  return Status::Ok();
}

}  // namespace ckptio::host
