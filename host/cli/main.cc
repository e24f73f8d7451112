// The ckptio command: list plugins, inspect a checkpoint, convert between formats.
// Exit status: 0 success, 1 bad input or failed operation (one-line message), 2 usage.
#include <CLI/CLI.hpp>
#include <iostream>

#include "ckptio/ckptio.h"
#include "host/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ckptio: read, write and convert PyTorch checkpoints without Python"};
  app.require_subcommand(1);
  ckptio::cli::Commands commands;
  commands.add_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "ckptio: " << e.what() << " (see ckptio --help)\n";
    return 2;
  }
  try {
    return commands.run();
  } catch (const ckptio::Error& e) {
    std::cerr << "ckptio: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "ckptio: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ckptio: " << e.what() << "\n";
    return 1;
  }
}
