// The ckptio subcommands: their options (registered on a CLI11 app) and what they do.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace ckptio::cli {

class Commands {
 public:
  void add_all(CLI::App& app);
  // Runs the subcommand that was parsed; returns the exit status.
  int run();

 private:
  int plugins();
  int inspect();
  int convert();

  CLI::App* plugins_ = nullptr;
  CLI::App* inspect_ = nullptr;
  CLI::App* convert_ = nullptr;

  std::string in_, out_, format_, in_format_;
  bool json_ = false;
  bool allow_objects_ = false;
  std::vector<std::string> options_;
  std::string inner_;  // convert --inner: plugin option inner=NAME (zstd)
};

}  // namespace ckptio::cli
