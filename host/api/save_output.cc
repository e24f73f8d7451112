#include "host/api/save_output.h"

#include <sys/stat.h>

#include "host/abi/c_status.h"
#include "host/io/atomic_directory.h"
#include "host/io/atomic_sink.h"

namespace ckptio::host {

Result<std::unique_ptr<SaveOutput>> SaveOutput::create(const std::string& path, bool fsync,
                                                       uint64_t reserve) {
  std::unique_ptr<SaveOutput> out(new SaveOutput());
  out->path_ = path;
  out->fsync_ = fsync;
  out->reserve_ = reserve;
  // Only a directory at the path must be one a checkpoint directory can replace.
  struct stat st {};
  out->target_is_directory_ = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  if (out->target_is_directory_) {
    auto existing = AtomicDirectory::existing_files(path);
    if (!existing.ok()) return existing.status();
    out->existing_ = std::move(existing).value();
  }
  for (const std::string& n : out->existing_) out->existing_ptrs_.push_back(n.c_str());
  ckptio_sink& s = out->sink_;
  s.struct_size = sizeof s;
  s.ctx = out.get();
  s.name = out->path_.c_str();
  s.write = c_write;
  s.open_member = c_open_member;
  s.existing_count = out->existing_ptrs_.size();
  s.existing = out->existing_ptrs_.empty() ? nullptr : out->existing_ptrs_.data();
  s.drop_existing = c_drop_existing;
  return out;
}

SaveOutput::~SaveOutput() = default;

Status SaveOutput::write(const void* data, uint64_t n) {
  if (dir_)
    return Status(Code::kInternal,
                  path_ + ": plugin wrote the output file after opening directory members");
  if (!file_) {
    if (target_is_directory_)
      return Status(Code::kInvalidArgument,
                    path_ + ": is a directory, and this save writes a single file (name a file, "
                            "or choose a format option that writes a directory)");
    auto sink = AtomicFileSink::create(path_, fsync_);
    if (!sink.ok()) return sink.status();
    file_ = std::move(sink).value();
    file_->reserve(reserve_);
  }
  return file_->write(data, n);
}

Status SaveOutput::open_member(const std::string& name, const ckptio_sink** out) {
  if (file_)
    return Status(Code::kInternal,
                  path_ + ": plugin opened directory member '" + name + "' after writing a file");
  if (!dir_) {
    auto dir = AtomicDirectory::create(path_, fsync_);
    if (!dir.ok()) return dir.status();
    dir_ = std::move(dir).value();
    for (const std::string& d : dropped_) CKPTIO_RETURN_IF_ERROR(dir_->drop_existing(d));
  }
  auto sink = dir_->open_member(name);
  if (!sink.ok()) return sink.status();
  Member& m = members_.emplace_back();
  m.name = name;
  m.sink = sink.value();
  m.c.struct_size = sizeof m.c;
  m.c.ctx = m.sink;
  m.c.name = m.name.c_str();
  m.c.write = c_member_write;  // a member is one file: no members of its own
  *out = &m.c;
  return Status::Ok();
}

Status SaveOutput::commit() {
  if (dir_) return dir_->commit();
  if (!file_) CKPTIO_RETURN_IF_ERROR(write(nullptr, 0));  // an empty output is still a file
  return file_->commit();
}

ckptio_status SaveOutput::c_write(void* ctx, const void* data, uint64_t n) {
  try {
    return make_c_status(static_cast<SaveOutput*>(ctx)->write(data, n));
  } catch (const std::bad_alloc&) {
    return make_c_status(Status(Code::kLimit, "out of memory writing the output"));
  }
}

ckptio_status SaveOutput::c_open_member(void* ctx, const char* name, const ckptio_sink** out) {
  auto* self = static_cast<SaveOutput*>(ctx);
  if (!name || !out)
    return make_c_status(Status(Code::kInvalidArgument, self->path_ + ": open_member without a name"));
  try {
    return make_c_status(self->open_member(name, out));
  } catch (const std::bad_alloc&) {
    return make_c_status(Status(Code::kLimit, self->path_ + ": out of memory opening a member"));
  }
}

ckptio_status SaveOutput::c_member_write(void* ctx, const void* data, uint64_t n) {
  return make_c_status(static_cast<ByteSink*>(ctx)->write(data, n));
}

ckptio_status SaveOutput::c_drop_existing(void* ctx, const char* name) {
  auto* self = static_cast<SaveOutput*>(ctx);
  if (!name) return nullptr;
  try {
    // Remembered until the directory exists (a plugin may drop before opening members).
    self->dropped_.emplace_back(name);
    if (self->dir_) return make_c_status(self->dir_->drop_existing(name));
    return nullptr;
  } catch (const std::bad_alloc&) {
    return make_c_status(Status(Code::kLimit, self->path_ + ": out of memory"));
  }
}

}  // namespace ckptio::host
