// Writes a checkpoint directory atomically (ABI 2's multi-file saves): members are written
// into a temporary sibling directory ".<name>.ckptio-tmpdir-<pid>-<n>", which commit()
// fsyncs (every file, then the directory) and puts in place with one rename, exchanging it
// with an existing directory, which is then removed. Until commit an existing checkpoint is
// untouched; an uncommitted directory is removed on destruction, and one a killed writer left
// is removed by the next save to the same place (its writer's lock is gone, as for
// AtomicFileSink's named temporaries).
//
// The files of the directory being replaced that the save neither writes nor drops are
// carried into the new one (hard links, taken at commit), so a model's config.json beside
// its weights survives. A directory holding anything but regular files is refused: a save
// would not carry it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/io.h"

namespace ckptio::host {

class AtomicFileSink;

class AtomicDirectory {
 public:
  // The regular files of the directory at `path` (sorted), empty when there is none; an
  // error when `path` is something else or holds what a save cannot carry.
  static Result<std::vector<std::string>> existing_files(const std::string& path);

  static Result<std::unique_ptr<AtomicDirectory>> create(const std::string& path, bool fsync);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  // A new file `name` (a plain file name) in the directory; valid until commit or destruction.
  Result<ByteSink*> open_member(const std::string& name);
  // Leaves the existing file `name` out of the new directory.
  Status drop_existing(const std::string& name);
  Status commit();
  // Where the members are until commit (tests).
  const std::string& temp_path() const { return temp_; }

 private:
  AtomicDirectory() = default;
  Status carry_existing();

  std::string path_, parent_, name_, temp_;
  int temp_fd_ = -1;  // holds the writer's lock until commit
  bool fsync_ = true;
  bool committed_ = false;
  std::vector<std::string> existing_;
  std::map<std::string, bool> dropped_;
  std::map<std::string, std::unique_ptr<AtomicFileSink>> members_;
};

// Removes the temporary directories of saves to `path` whose writers are gone.
void remove_stale_temp_dirs(const std::string& parent, const std::string& name);

}  // namespace ckptio::host
