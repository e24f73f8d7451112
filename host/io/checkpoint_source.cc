#include "host/io/checkpoint_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "host/abi/c_status.h"
#include "host/io/file_source.h"

namespace ckptio::host {
namespace fs = std::filesystem;
namespace {

// A directory's entries are names, not bytes: a plugin that reads them anyway gets why not.
class DirectoryBytes final : public ByteSource {
 public:
  explicit DirectoryBytes(std::string name) : name_(std::move(name)) {}
  uint64_t size() const override { return 0; }
  Status read_at(uint64_t, void*, uint64_t n) const override {
    if (n == 0) return Status::Ok();
    return Status(Code::kInvalidArgument, name_ + ": is a directory, not a file (read its members)");
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
};

// Checkpoints with more files than this are refused rather than listed into memory.
constexpr size_t kMaxListing = 1'000'000;

Result<std::vector<std::string>> list_files(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return Status(Code::kIo, dir + ": cannot list the directory: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status(Code::kIo, dir + ": cannot list the directory: " + ec.message());
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks: open_member checks them
    if (names.size() == kMaxListing)
      return Status(Code::kLimit, dir + ": holds more than " + std::to_string(kMaxListing) +
                                      " files, more than a checkpoint may have");
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A Hugging Face hub cache keeps a snapshot's files as symlinks into the same repository's
// blobs (<repo>/snapshots/<revision>/model.safetensors -> ../../blobs/<hash>): for a
// checkpoint directory in a snapshot, that blob directory counts as inside.
bool in_hub_cache_blobs(const std::string& root, const std::string& real) {
  const fs::path r(root);
  if (r.parent_path().filename() != "snapshots") return false;
  const std::string blobs = (r.parent_path().parent_path() / "blobs").string() + "/";
  return real.size() > blobs.size() && real.compare(0, blobs.size(), blobs) == 0 &&
         real.find('/', blobs.size()) == std::string::npos;
}

// ckptio_plugin.h's rules for a member name, before the file system is asked anything.
std::string bad_member_name(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name.front() == '/') return "is absolute";
  if (name.find('\0') != std::string::npos) return "holds a NUL byte";
  size_t start = 0;
  for (;;) {
    size_t slash = name.find('/', start);
    std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty()) return "has an empty path component";
    if (part == "." || part == "..") return "has a '" + part + "' component";
    if (slash == std::string::npos) return "";
    start = slash + 1;
  }
}

ckptio_status c_open_member(void* ctx, const char* name, uint32_t* member,
                            const ckptio_source** out) {
  auto* self = static_cast<CheckpointSource*>(ctx);
  if (!name || !member || !out)
    return make_c_status(Status(Code::kInvalidArgument, self->name() + ": open_member without a name"));
  try {
    auto got = self->open_member(name);
    if (!got.ok()) return make_c_status(got.status());
    *member = got.value();
    *out = self->member_c_source(got.value());
    return nullptr;
  } catch (const std::bad_alloc&) {
    return make_c_status(Status(Code::kLimit, self->name() + ": out of memory opening a member"));
  }
}

ckptio_status c_forward_read_at(void* ctx, uint64_t offset, void* dst, uint64_t n) {
  return make_c_status(static_cast<CheckpointSource*>(ctx)->bytes().read_at(offset, dst, n));
}

}  // namespace

Result<std::shared_ptr<CheckpointSource>> CheckpointSource::open(const std::string& path) {
  std::shared_ptr<CheckpointSource> cs(new CheckpointSource());
  cs->name_ = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    cs->directory_ = true;
    auto names = list_files(path);
    if (!names.ok()) return names.status();
    cs->listing_ = std::move(names).value();
    cs->bytes_ = std::make_shared<DirectoryBytes>(path);
    std::error_code ec;
    cs->root_ = fs::canonical(path, ec).string();
    if (ec) return Status(Code::kIo, path + ": cannot resolve the directory: " + ec.message());
    cs->shown_root_ = path;
    while (cs->shown_root_.size() > 1 && cs->shown_root_.back() == '/') cs->shown_root_.pop_back();
  } else {
    auto file = FileSource::open(path);
    if (!file.ok()) return file.status();
    cs->file_ = file.value();
    cs->bytes_ = cs->file_;
    fs::path parent = fs::path(path).parent_path();
    std::error_code ec;
    cs->root_ = fs::canonical(parent.empty() ? fs::path(".") : parent, ec).string();
    if (ec) cs->root_.clear();  // no members then: the file itself still reads
    cs->shown_root_ = parent.string();
  }
  cs->make_c_source();
  return cs;
}

std::shared_ptr<CheckpointSource> CheckpointSource::over(std::shared_ptr<const ByteSource> bytes) {
  std::shared_ptr<CheckpointSource> cs(new CheckpointSource());
  cs->name_ = bytes->name();
  cs->bytes_ = std::move(bytes);
  cs->make_c_source();
  return cs;
}

CheckpointSource::~CheckpointSource() = default;

void CheckpointSource::make_c_source() {
  ckptio_source& s = c_source_;
  s.struct_size = sizeof s;
  s.name = name_.c_str();
  s.size = bytes_->size();
  s.data = bytes_->data();
  // One context for read_at and open_member: this object, which forwards reads.
  s.ctx = this;
  s.read_at = c_forward_read_at;
  s.kind = directory_ ? CKPTIO_SOURCE_DIRECTORY : CKPTIO_SOURCE_FILE;
  for (const std::string& n : listing_) listing_ptrs_.push_back(n.c_str());
  s.member_count = listing_ptrs_.size();
  s.members = listing_ptrs_.empty() ? nullptr : listing_ptrs_.data();
  s.open_member = root_.empty() ? nullptr : c_open_member;
}

Result<uint32_t> CheckpointSource::open_member(const std::string& name) {
  const std::string shown = (shown_root_.empty() ? "" : shown_root_ + "/") + name;
  if (root_.empty())
    return Status(Code::kUnsupported, name_ + ": has no directory to open member '" + name + "' in");
  if (std::string why = bad_member_name(name); !why.empty())
    return Status(Code::kForbidden, name_ + ": member name '" + name + "' " + why);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  if (members_.size() >= UINT32_MAX - 1)
    return Status(Code::kLimit, name_ + ": too many members");
  std::error_code ec;
  const fs::path resolved = fs::canonical(fs::path(root_) / name, ec);
  if (ec)
    return Status(ec == std::errc::no_such_file_or_directory ? Code::kNotFound : Code::kIo,
                  shown + ": cannot open member '" + name + "': " + ec.message());
  const std::string real = resolved.string();
  const bool inside = real.size() > root_.size() && real.compare(0, root_.size(), root_) == 0 &&
                      (root_ == "/" || real[root_.size()] == '/');
  if (!inside && !in_hub_cache_blobs(root_, real))
    return Status(Code::kForbidden, shown + ": member '" + name +
                                        "' resolves outside the checkpoint's directory " +
                                        (shown_root_.empty() ? "." : shown_root_));
  auto file = FileSource::open(real, shown);
  if (!file.ok()) return file.status();
  Member m;
  m.file = file.value();
  m.c = ckptio::host::c_source(*m.file);
  members_.push_back(std::move(m));
  const auto number = uint32_t(members_.size());
  by_name_.emplace(name, number);
  return number;
}

const ckptio_source* CheckpointSource::member_c_source(uint32_t member) const {
  std::lock_guard<std::mutex> lock(mu_);
  return member >= 1 && member <= members_.size() ? &members_[member - 1].c : nullptr;
}

size_t CheckpointSource::member_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return members_.size();
}

const ByteSource* CheckpointSource::member_bytes(uint32_t member) const {
  if (member == 0) return bytes_.get();
  std::lock_guard<std::mutex> lock(mu_);
  return member <= members_.size() ? members_[member - 1].file.get() : nullptr;
}

std::shared_ptr<const void> CheckpointSource::mapping_owner(uint32_t member) const {
  if (member == 0) return file_;
  std::lock_guard<std::mutex> lock(mu_);
  if (member > members_.size()) return nullptr;
  return members_[member - 1].file;
}

void CheckpointSource::advise_parsing(bool parsing) const {
  if (file_) file_->advise_parsing(parsing);
}

}  // namespace ckptio::host
