// A checkpoint as the host opens it for a plugin: one file, or a directory and its listing,
// plus the member files the plugin opens by name (ABI 2). Every member is opened as a single
// file is (mapped, bounds-checked reads) and must lie inside the checkpoint's directory: the
// directory itself, or the one holding the file (an index beside its shards).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckptio/plugin.h"
#include "formats/io.h"

namespace ckptio::host {

class FileSource;

class CheckpointSource {
 public:
  // A file or a directory at `path`.
  static Result<std::shared_ptr<CheckpointSource>> open(const std::string& path);
  // The caller's bytes: no directory, no members, nothing to map.
  static std::shared_ptr<CheckpointSource> over(std::shared_ptr<const ByteSource> bytes);
  ~CheckpointSource();
  CheckpointSource(const CheckpointSource&) = delete;
  CheckpointSource& operator=(const CheckpointSource&) = delete;

  bool is_directory() const { return directory_; }
  const std::string& name() const { return name_; }
  // A directory's regular files (and symlinks to them), sorted bytewise.
  const std::vector<std::string>& listing() const { return listing_; }
  // The file's bytes; a directory's are empty and fail to read.
  const ByteSource& bytes() const { return *bytes_; }
  // The C view handed to the plugin: valid as long as this object.
  const ckptio_source* c_source() const { return &c_source_; }

  // Opens member `name` (rules in plugin.h, ckptio_source::open_member): its number, 1, 2, ...
  Result<uint32_t> open_member(const std::string& name);
  size_t member_count() const;
  // The C view of an opened member (null for another number).
  const ckptio_source* member_c_source(uint32_t member) const;
  // The bytes storages of `member` lie in (0: bytes()), and what keeps its mapping alive for
  // zero-copy storages (null: the bytes are the caller's and must be copied).
  const ByteSource* member_bytes(uint32_t member) const;
  std::shared_ptr<const void> mapping_owner(uint32_t member) const;

  // Page-fault advice for the file while a plugin parses it (FileSource::advise_parsing).
  void advise_parsing(bool parsing) const;

 private:
  struct Member {
    std::shared_ptr<FileSource> file;
    ckptio_source c{};
  };
  CheckpointSource() = default;
  void make_c_source();

  std::string name_;
  bool directory_ = false;
  std::vector<std::string> listing_;
  std::vector<const char*> listing_ptrs_;
  std::shared_ptr<const ByteSource> bytes_;
  std::shared_ptr<FileSource> file_;  // set for a file on disk
  std::string root_;      // the checkpoint's directory, canonical; empty: no members
  std::string shown_root_;  // as the user named it, for member names in messages
  ckptio_source c_source_{};
  mutable std::mutex mu_;
  std::deque<Member> members_;  // a deque: members' C views keep their addresses
  std::map<std::string, uint32_t> by_name_;
};

}  // namespace ckptio::host
