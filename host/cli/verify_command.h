// `ckptio verify FILE [--input-format NAME] [--allow-objects]`: checks a checkpoint's
// structure, bounds and checksums without moving tensors anywhere, and reports every
// problem found, one line each (exit 1), or one "ok" line (exit 0).
//
// What is checked:
//  - the container, by the format's plugin where it offers a check (ckptio_plugin_api::
//    verify; the zip formats: the directory's bounds, overlaps and duplicates, and the CRC32
//    of every record — all of them, each bad one on its own line);
//  - the plugin's own reading of the structure (pickle, allow-list, every tensor view
//    against its storage, every storage against its record or blob);
//  - every storage's bytes, read one storage at a time into a scratch buffer: bounds for
//    plain storages, full decoding for compressed ones (chunk CRC32s of torch-zip-zstd,
//    zstd frames, deflate), each failing storage on its own line.
// When the structure itself cannot be read, storages cannot be located: that is reported
// along with the record checksums, which do not depend on it.
#pragma once

#include <string>
#include <vector>

namespace ckptio::cli {

struct VerifyArgs {
  std::string file;
  std::string format;  // --input-format
  bool allow_objects = false;
  std::vector<std::string> limits;  // --limit key=value (plugin read options)
};

// Problems found, each a one-line message naming the file and the record or storage.
std::vector<std::string> verify_checkpoint(const VerifyArgs& args, std::string* summary);

// Runs the command: prints the problems (or the summary) on stdout; returns 0 or 1.
int run_verify(const VerifyArgs& args);

}  // namespace ckptio::cli
