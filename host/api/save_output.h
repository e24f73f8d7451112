// Where a save's plugin writes: the C sink whose first use decides the output's shape. Bytes
// written to the sink itself make one file (AtomicFileSink); members opened through it (ABI 2)
// make a directory (AtomicDirectory). Both commit only after the plugin succeeded.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/plugin.h"
#include "formats/io.h"
#include "formats/status.h"

namespace ckptio::host {

class AtomicFileSink;
class AtomicDirectory;

class SaveOutput {
 public:
  // `reserve`: the file's expected size (a preallocation hint). Fails when `path` is a
  // directory that a checkpoint directory could not replace (AtomicDirectory::existing_files).
  static Result<std::unique_ptr<SaveOutput>> create(const std::string& path, bool fsync,
                                                    uint64_t reserve);
  ~SaveOutput();
  SaveOutput(const SaveOutput&) = delete;
  SaveOutput& operator=(const SaveOutput&) = delete;

  const ckptio_sink* c_sink() const { return &sink_; }
  // Makes what the plugin wrote the checkpoint at the path.
  Status commit();

 private:
  struct Member {
    ckptio_sink c{};
    std::string name;
    ByteSink* sink = nullptr;
  };
  SaveOutput() = default;
  Status write(const void* data, uint64_t n);
  Status open_member(const std::string& name, const ckptio_sink** out);

  static ckptio_status c_write(void* ctx, const void* data, uint64_t n);
  static ckptio_status c_open_member(void* ctx, const char* name, const ckptio_sink** out);
  static ckptio_status c_member_write(void* ctx, const void* data, uint64_t n);
  static ckptio_status c_drop_existing(void* ctx, const char* name);

  std::string path_;
  bool fsync_ = true;
  uint64_t reserve_ = 0;
  bool target_is_directory_ = false;
  std::vector<std::string> existing_;
  std::vector<const char*> existing_ptrs_;
  std::vector<std::string> dropped_;
  ckptio_sink sink_{};
  std::unique_ptr<AtomicFileSink> file_;
  std::unique_ptr<AtomicDirectory> dir_;
  std::deque<Member> members_;  // a deque: member sinks keep their addresses
};

}  // namespace ckptio::host
