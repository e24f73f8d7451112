#include "host/cli/output_format.h"

#include <sys/stat.h>

#include "ckptio/ckptio.h"

namespace ckptio::cli {
namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool names_a_directory(const std::string& out) {
  if (!out.empty() && out.back() == '/') return true;
  struct stat st {};
  return ::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

OutputChoice format_from_output_name(const std::string& out) {
  if (names_a_directory(out))
    return {"safetensors", "a directory: Hugging Face safetensors shards"};
  if (ends_with(out, ".safetensors")) return {"safetensors", "the name ends in .safetensors"};
  for (const char* ext : {".pt", ".pth", ".bin", ".ckpt"})
    if (ends_with(out, ext)) return {"torch-zip", std::string("the name ends in ") + ext};
  throw Error(Code::kInvalidArgument,
              out + ": cannot tell the output format from its name (.safetensors, .pt, .pth, "
                    ".bin, .ckpt, or a directory); give --format");
}

}  // namespace ckptio::cli
