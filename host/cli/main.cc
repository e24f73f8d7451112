// The ckptio command: list plugins, inspect a checkpoint, convert between formats.
// Exit status: 0 success, 1 bad input or failed operation (one-line message), 2 usage.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"
#include "host/cli/commands.h"

// `ckptio --version`: ckptio's version, the plugin ABI versions this host loads, and the
// LibTorch the build's libckptio_torch was compiled against (the command itself needs none).
std::string version_text() {
  std::string libtorch = CKPTIO_LIBTORCH_VERSION;
  return std::string("ckptio ") + CKPTIO_VERSION + "\nplugin ABI: 1 to " +
         std::to_string(CKPTIO_ABI_VERSION) + "\n" +
         (libtorch.empty() ? "built without LibTorch" : "built with LibTorch " + libtorch);
}

int main(int argc, char** argv) {
  CLI::App app{"ckptio: read, write and convert PyTorch checkpoints without Python"};
  app.set_version_flag("--version", version_text(), "Print ckptio's version, plugin ABI and LibTorch");
  app.require_subcommand(1);
  ckptio::cli::Commands commands;
  commands.add_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
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
