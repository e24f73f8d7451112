#include "host/io/file_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "host/abi/c_status.h"

namespace ckptio::host {

Result<std::shared_ptr<FileSource>> FileSource::open(const std::string& path,
                                                     const std::string& shown) {
  std::shared_ptr<FileSource> src(new FileSource());
  src->name_ = shown.empty() ? path : shown;
  const std::string& name = src->name_;
  src->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src->fd_ < 0)
    return Status(errno == ENOENT ? Code::kNotFound : Code::kIo,
                  name + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(src->fd_, &st) != 0)
    return Status(Code::kIo, name + ": cannot stat: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return Status(Code::kInvalidArgument, name + ": is a directory");
  src->size_ = static_cast<uint64_t>(st.st_size);
  if (S_ISREG(st.st_mode) && src->size_ > 0) {
    // Private and writable: zero-copy tensors that are written get copy-on-write pages,
    // so a write never reaches the file and never faults.
    void* p = mmap(nullptr, src->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, src->fd_, 0);
    if (p != MAP_FAILED) src->map_ = static_cast<const uint8_t*>(p);
    // else: pread fallback (e.g. a filesystem without mmap support)
  }
  return src;
}

void FileSource::advise_parsing(bool parsing) const {
  // Advice only: a kernel that refuses it leaves the default, which is correct, only slower.
  if (map_) madvise(const_cast<uint8_t*>(map_), size_, parsing ? MADV_RANDOM : MADV_NORMAL);
}

FileSource::~FileSource() {
  if (map_) munmap(const_cast<uint8_t*>(map_), size_);
  if (fd_ >= 0) ::close(fd_);
}

Status FileSource::read_at(uint64_t offset, void* dst, uint64_t n) const {
  if (offset > size_ || n > size_ - offset)
    return Status(Code::kCorrupt, name_ + ": truncated: wanted " + std::to_string(n) +
                                      " bytes at offset " + std::to_string(offset) +
                                      ", file has " + std::to_string(size_));
  // Small reads come from the mapping; large ones use pread, which copies from the page
  // cache without faulting in the source mapping page by page.
  if (map_ && n < (1u << 20)) {
    if (n) std::memcpy(dst, map_ + offset, n);
    return Status::Ok();
  }
  auto* out = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t got = pread(fd_, out, n > (1u << 30) ? (1u << 30) : n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status(Code::kIo, name_ + ": read failed: " + std::strerror(errno));
    if (got == 0) return Status(Code::kCorrupt, name_ + ": file shrank while reading");
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return Status::Ok();
}

namespace {
ckptio_status source_read_at(void* ctx, uint64_t offset, void* dst, uint64_t n) {
  return make_c_status(static_cast<const ByteSource*>(ctx)->read_at(offset, dst, n));
}
}  // namespace

ckptio_source c_source(const ByteSource& src) {
  ckptio_source s{};
  s.struct_size = sizeof s;
  s.ctx = const_cast<ByteSource*>(&src);
  s.name = src.name().c_str();
  s.size = src.size();
  s.data = src.data();
  s.read_at = source_read_at;
  return s;
}

}  // namespace ckptio::host
