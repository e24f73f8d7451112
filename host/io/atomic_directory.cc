#include "host/io/atomic_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <random>

#include "host/io/atomic_sink.h"

namespace ckptio::host {
namespace fs = std::filesystem;
namespace {

std::string temp_dir_prefix(const std::string& name) { return "." + name + ".ckptio-tmpdir-"; }

bool pid_may_live(long pid) { return pid == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH; }

std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

void fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);  // best effort: what it makes durable has already happened
  ::close(fd);
}

}  // namespace

void remove_stale_temp_dirs(const std::string& parent, const std::string& name) {
  const std::string prefix = temp_dir_prefix(name);
  DIR* d = ::opendir(parent.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = f.substr(prefix.size());
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash)
      continue;
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    if (pid <= 0 || pid_may_live(pid)) continue;
    const std::string path = parent + "/" + f;
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    // The writer's lock is on its directory: one we can take belongs to nobody alive.
    if (::fstat(fd, &st) == 0 && st.st_uid == ::getuid() && ::flock(fd, LOCK_EX | LOCK_NB) == 0)
      stale.push_back(path);
    ::close(fd);
  }
  ::closedir(d);
  for (const std::string& path : stale) {
    std::error_code ec;
    fs::remove_all(path, ec);  // best effort, like the single-file sweep
  }
}

Result<std::vector<std::string>> AtomicDirectory::existing_files(const std::string& path) {
  std::vector<std::string> names;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return names;
    return Status(Code::kIo, path + ": cannot stat: " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode))
    return Status(Code::kInvalidArgument,
                  path + ": exists and is not a directory, so a checkpoint directory cannot replace it");
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec))
      return Status(Code::kInvalidArgument,
                    path + ": holds '" + it->path().filename().string() +
                        "', which is not a regular file; a checkpoint save replaces the "
                        "directory and carries only its files (save elsewhere or move it)");
    names.push_back(it->path().filename().string());
  }
  if (ec) return Status(Code::kIo, path + ": cannot list the directory: " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::unique_ptr<AtomicDirectory>> AtomicDirectory::create(const std::string& path,
                                                                 bool fsync) {
  std::unique_ptr<AtomicDirectory> d(new AtomicDirectory());
  d->path_ = without_trailing_slashes(path);
  d->fsync_ = fsync;
  fs::path p(d->path_);
  d->parent_ = p.has_parent_path() ? p.parent_path().string() : ".";
  d->name_ = p.filename().string();
  if (!plain_file_name(d->name_))
    return Status(Code::kInvalidArgument, path + ": not a directory name a checkpoint can take");
  auto existing = existing_files(d->path_);
  if (!existing.ok()) return existing.status();
  d->existing_ = std::move(existing).value();
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 16 && d->temp_.empty(); ++attempt) {
    std::string t = d->parent_ + "/" + temp_dir_prefix(d->name_) + std::to_string(::getpid()) +
                    "-" + std::to_string(rng());
    if (::mkdir(t.c_str(), 0777) == 0) d->temp_ = std::move(t);
    else if (errno != EEXIST)
      return Status(Code::kIo, path + ": cannot create a temporary directory in " + d->parent_ +
                                   ": " + std::strerror(errno));
  }
  if (d->temp_.empty())
    return Status(Code::kIo, path + ": cannot create a temporary directory in " + d->parent_);
  d->temp_fd_ = ::open(d->temp_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->temp_fd_ < 0)
    return Status(Code::kIo, d->temp_ + ": cannot open: " + std::strerror(errno));
  (void)::flock(d->temp_fd_, LOCK_EX);  // held until commit: a sweeper leaves it alone
  remove_stale_temp_dirs(d->parent_, d->name_);
  return d;
}

AtomicDirectory::~AtomicDirectory() {
  members_.clear();  // each removes its own temporary
  if (!committed_ && !temp_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  if (temp_fd_ >= 0) ::close(temp_fd_);
}

Result<ByteSink*> AtomicDirectory::open_member(const std::string& name) {
  if (committed_) return Status(Code::kInternal, path_ + ": member opened after commit");
  if (!plain_file_name(name))
    return Status(Code::kInvalidArgument,
                  path_ + ": member name '" + name + "' is not a plain file name");
  if (members_.count(name))
    return Status(Code::kInvalidArgument, path_ + ": member '" + name + "' is written twice");
  auto sink = AtomicFileSink::create(temp_ + "/" + name, fsync_);
  if (!sink.ok()) return sink.status();
  ByteSink* out = sink.value().get();
  members_.emplace(name, std::move(sink).value());
  return out;
}

Status AtomicDirectory::drop_existing(const std::string& name) {
  dropped_[name] = true;
  return Status::Ok();
}

Status AtomicDirectory::carry_existing() {
  for (const std::string& name : existing_) {
    if (members_.count(name) || dropped_.count(name)) continue;
    const std::string from = path_ + "/" + name;
    if (::linkat(AT_FDCWD, from.c_str(), temp_fd_, name.c_str(), 0) == 0) continue;
    if (errno == ENOENT) continue;  // removed meanwhile: nothing to carry
    return Status(Code::kIo, from + ": cannot carry into the new checkpoint directory: " +
                                 std::strerror(errno));
  }
  return Status::Ok();
}

Status AtomicDirectory::commit() {
  if (committed_) return Status::Ok();
  for (auto& [name, sink] : members_) CKPTIO_RETURN_IF_ERROR(sink->commit());
  CKPTIO_RETURN_IF_ERROR(carry_existing());
  if (fsync_ && ::fsync(temp_fd_) != 0)
    return Status(Code::kIo, temp_ + ": fsync failed: " + std::strerror(errno));
  struct stat st {};
  const bool replacing = ::lstat(path_.c_str(), &st) == 0;
  if (!replacing) {
    if (::rename(temp_.c_str(), path_.c_str()) != 0)
      return Status(Code::kIo, path_ + ": cannot move the new checkpoint into place: " +
                                   std::strerror(errno));
  } else if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      return Status(Code::kIo, path_ + ": cannot exchange with the new checkpoint: " +
                                   std::strerror(errno));
    // No atomic exchange on this file system: move the old one aside, then the new one in.
    // A crash between the two renames leaves the old checkpoint at the temporary's name.
    const std::string aside = temp_ + "-old";
    if (::rename(path_.c_str(), aside.c_str()) != 0)
      return Status(Code::kIo, path_ + ": cannot move the old checkpoint aside: " +
                                   std::strerror(errno));
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      (void)::rename(aside.c_str(), path_.c_str());
      return Status(Code::kIo, path_ + ": cannot move the new checkpoint into place: " +
                                   std::strerror(err));
    }
    std::error_code ec;
    fs::remove_all(aside, ec);
  }
  committed_ = true;
  if (replacing) {  // the old checkpoint now sits at the temporary's name
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  if (fsync_) fsync_directory(parent_);
  ::close(temp_fd_);
  temp_fd_ = -1;
  return Status::Ok();
}

}  // namespace ckptio::host
