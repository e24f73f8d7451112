// Hugging Face checkpoints of several files (formats/hf/) for the plugins whose format they
// shard: safetensors (model-0000i-of-0000N.safetensors) and torch-zip (pytorch_model-...bin).
// Reading: a directory holding an index and its shards or one unsharded file, or the index
// file itself, becomes one flat state_dict (every shard's tensors, shards in the index's
// sorted order); each storage stays in its shard's file (ABI 2 members), so the host reads
// shards in parallel and maps each for zero-copy. Writing, with the write option
// max_shard_size: the tree split as transformers' save_pretrained splits it, one member per
// shard plus the index, into a directory that replaces the target as a whole.
#pragma once

#include <cstdint>
#include <string>

#include "ckptio/plugin.h"
#include "formats/decoded_file.h"
#include "formats/hf/hf_index.h"
#include "formats/io.h"
#include "plugins/common/decoded_plugin.h"

namespace ckptio::plugin {

struct ShardedForm {
  hf::ShardKind kind;
  // probe_directory's answers: a directory with the index, with only the single file.
  int32_t index_score;
  int32_t single_score;
};

using ShardDecodeFn = Result<DecodedFile> (*)(const ByteSource& src,
                                              const DecodedPluginOptions& common,
                                              const ckptio_options* options);
using ShardEncodeFn = Status (*)(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
                                 const std::string& context, const ckptio_options* options);

constexpr const char* kMaxShardSizeOption = "max_shard_size";

int32_t sharded_probe_directory(const ShardedForm& form, const char* const* names,
                                uint64_t count);
// Whether a file's head is an index of this form's shards (probe() answers 95 for it).
bool is_index_head(const ShardedForm& form, const uint8_t* head, size_t n);
// Whether open() must take the sharded path: a directory, or a file that is an index.
bool opens_sharded(const ShardedForm& form, const ckptio_source* source);
// Whether save() must write a directory: max_shard_size is set.
bool saves_sharded(const ckptio_options* options);

ckptio_status sharded_open(const ckptio_host_api* host, const ShardedForm& form,
                           ShardDecodeFn decode, const ckptio_source* source,
                           const ckptio_options* options, const ckptio_builder* builder,
                           ckptio_reader** out);
ckptio_status sharded_save(const ckptio_host_api* host, const ShardedForm& form,
                           ShardEncodeFn encode, const ckptio_tree* tree, const ckptio_sink* sink,
                           const ckptio_options* options);

}  // namespace ckptio::plugin
