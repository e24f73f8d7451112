#include "host/cli/verify_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "ckptio/ckptio.h"
#include "formats/compress/zip_zstd_crc.h"
#include "formats/zip/zip_reader.h"

namespace ckptio::cli {
namespace {

constexpr uint64_t kPiece = 64u << 20;  // plain storages are read in pieces of this size

// The file through pread, for the zip checks (the plugins get the host's own source).
class PreadSource final : public ByteSource {
 public:
  static Result<std::unique_ptr<PreadSource>> open(const std::string& path) {
    std::unique_ptr<PreadSource> s(new PreadSource(path));
    s->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (s->fd_ < 0 || ::fstat(s->fd_, &st) != 0)
      return Status(Code::kNotFound, path + ": cannot open: " + std::strerror(errno));
    s->size_ = uint64_t(st.st_size);
    return s;
  }
  ~PreadSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override {
    if (offset > size_ || n > size_ - offset)
      return Status(Code::kCorrupt, name_ + ": truncated: wanted " + std::to_string(n) +
                                        " bytes at offset " + std::to_string(offset) +
                                        ", file has " + std::to_string(size_));
    auto* p = static_cast<uint8_t*>(dst);
    while (n > 0) {
      ssize_t r = ::pread(fd_, p, n, off_t(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Status(Code::kIo, name_ + ": read failed: " + std::strerror(errno));
      p += r, offset += uint64_t(r), n -= uint64_t(r);
    }
    return Status::Ok();
  }
  const std::string& name() const override { return name_; }

 private:
  explicit PreadSource(std::string name) : name_(std::move(name)) {}
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string name_;
};

// The zip layer, checked here rather than by a plugin so that every bad record is listed
// (a plugin stops at the first error). Returns the number of records whose CRC was checked.
size_t check_zip(const ByteSource& src, std::vector<std::string>& problems) {
  auto zip = ZipReader::open(src);
  if (!zip.ok()) {
    problems.push_back(zip.status().message());
    return 0;
  }
  size_t checked = 0;
  for (const ZipEntry& e : zip->entries()) {
    // Method 93 is torch-zip-zstd's storage records: their CRC is of the zstd stream's
    // output, so they are decoded (streaming) like any zip tool would.
    Status st = e.method == 93 ? compress::verify_zstd_record_crc(src, e) : zip->verify_crc(e);
    if (!st.ok()) problems.push_back(st.message());
    checked += e.crc32 != 0;
  }
  return checked;
}

std::string with_file(const std::string& msg, const std::string& file) {
  return msg.rfind(file, 0) == 0 ? msg : file + ": " + msg;
}

}  // namespace

std::vector<std::string> verify_checkpoint(const VerifyArgs& a, std::string* summary) {
  std::vector<std::string> problems;
  auto src = PreadSource::open(a.file);
  if (!src.ok()) return {src.status().message()};
  const ByteSource& file = *src.value();

  uint8_t head[4] = {};
  const bool is_zip =
      file.size() >= 4 && file.read_at(0, head, 4).ok() && std::memcmp(head, "PK\x03\x04", 4) == 0;
  size_t crcs = is_zip ? check_zip(file, problems) : 0;
  const size_t zip_problems = problems.size();

  LoadOptions o;
  o.format = a.format;
  o.allow_objects = a.allow_objects;
  o.load_data = false;
  o.verify = !is_zip;  // zip CRCs were checked above, each record on its own
  o.threads = 1;
  for (const auto& kv : a.limits) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(Code::kInvalidArgument, "--limit '" + kv + "' is not key=value");
    o.plugin_options.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::unique_ptr<Reader> r;
  try {
    r = Reader::open(a.file, o);
  } catch (const Error& e) {
    // A CRC error the plugin also saw (it verifies when asked) is already listed.
    std::string msg = e.what();
    bool dup = false;
    for (size_t i = 0; i < zip_problems; ++i)
      dup |=
          msg.find(problems[i]) != std::string::npos || problems[i].find(msg) != std::string::npos;
    if (!dup) problems.push_back(with_file(msg, a.file));
    return problems;
  }

  const auto& storages = r->tree().storages;
  uint64_t bytes = 0;
  std::vector<uint8_t> scratch;
  for (uint32_t i = 0; i < storages.size(); ++i) {
    const uint64_t n = storages[i].nbytes;
    // Plain storages in pieces (bounds only); others whole, as their plugin decodes them.
    const uint64_t piece = r->plain(i) ? std::min(n, kPiece) : n;
    try {
      if (scratch.size() < piece) scratch.resize(piece);
      Status st;
      for (uint64_t off = 0; off < n && st.ok(); off += piece)
        st = r->read_range(i, off, scratch.data(), std::min(piece, n - off));
      if (!st.ok()) {
        problems.push_back(with_file(st.message(), a.file) + " (storage '" + storages[i].key +
                           "')");
        continue;
      }
    } catch (const std::bad_alloc&) {
      problems.push_back(a.file + ": storage '" + storages[i].key + "' of " + std::to_string(n) +
                         " bytes: out of memory decoding it");
      continue;
    }
    bytes += n;
  }
  if (summary)
    *summary = a.file + ": ok (" + r->format() + ", " + std::to_string(storages.size()) +
               " storages, " + std::to_string(bytes) + " bytes read" +
               (is_zip ? ", " + std::to_string(crcs) + " record CRC32s checked" : "") + ")";
  return problems;
}

int run_verify(const VerifyArgs& a) {
  std::string summary;
  std::vector<std::string> problems = verify_checkpoint(a, &summary);
  if (problems.empty()) {
    std::cout << summary << "\n";
    return 0;
  }
  for (const auto& p : problems) std::cout << p << "\n";
  std::cerr << "ckptio: " << a.file << ": " << problems.size()
            << (problems.size() == 1 ? " problem" : " problems") << " found\n";
  return 1;
}

}  // namespace ckptio::cli
