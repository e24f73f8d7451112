// `ckptio convert` without --format: the output format read from the output's name, and a
// directory output made a Hugging Face sharded one.
#pragma once

#include <string>
#include <vector>

namespace ckptio::cli {

// What a user's output name asks for (`why` says how it was chosen, for the message).
struct OutputChoice {
  std::string format;
  std::string why;
};

// ".safetensors" -> safetensors; ".pt", ".pth", ".bin", ".ckpt" -> torch-zip; an existing
// directory or a name ending in '/' -> safetensors shards. Throws ckptio::Error naming the
// output when the name says nothing.
OutputChoice format_from_output_name(const std::string& out);

// Whether the output is a directory (existing, or named with a trailing '/').
bool names_a_directory(const std::string& out);

// transformers' save_pretrained default shard size, used when a directory output of a
// format with a sharded form gets no max_shard_size.
constexpr const char* kDefaultMaxShardSize = "50GB";

}  // namespace ckptio::cli
