// The ckptio subcommands: their options (registered on a CLI11 app) and what they do.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "host/cli/bench_command.h"
#include "host/cli/verify_command.h"

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
  // --limit and --read-option, checked against the input format's declared options.
  PluginOptions read_settings(const std::string& format) const;
  void add_bench(CLI::App& app);
  void add_verify(CLI::App& app);

  CLI::App* plugins_ = nullptr;
  CLI::App* inspect_ = nullptr;
  CLI::App* convert_ = nullptr;
  CLI::App* bench_ = nullptr;
  BenchArgs bench_args_;
  CLI::App* verify_ = nullptr;
  VerifyArgs verify_args_;

  std::string in_, out_, format_, in_format_;
  bool json_ = false;
  bool allow_objects_ = false;
  std::vector<std::string> options_;
  std::vector<std::string> limits_;        // --limit key=value: reading limits (plugin options)
  std::vector<std::string> read_options_;  // --read-option key=value: other reading options
  std::vector<std::string> keys_;          // --key NAME: only these entries (LoadOptions::keys)
  bool extract_state_dict_ = false;        // convert --extract-state-dict
};

}  // namespace ckptio::cli
