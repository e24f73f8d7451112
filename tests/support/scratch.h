// Scratch directories for tests: each one new and unique (mkdtemp under $TMPDIR, so parallel
// ctest processes and repeated instances never share one), removed with everything in it when
// the object goes away: at the end of the test, or of the process for a static one.
#pragma once

#include <string>

namespace test_support {

class ScratchDir {
 public:
  // `tag` goes into the name, to tell whose leftovers a crashed run left.
  explicit ScratchDir(const std::string& tag = "test");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string operator/(const std::string& name) const { return file(name); }  // as fs::path

 private:
  std::string path_;
};

// Empties `dir` (creating it and its parents when missing) and returns it.
std::string fresh_dir(const std::string& dir);

}  // namespace test_support
