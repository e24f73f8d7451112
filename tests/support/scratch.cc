#include "support/scratch.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace test_support {
namespace fs = std::filesystem;

ScratchDir::ScratchDir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("ckptio-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string fresh_dir(const std::string& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace test_support
