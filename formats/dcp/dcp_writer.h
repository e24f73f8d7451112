// Writing a torch.distributed.checkpoint (DCP) checkpoint of one rank, as torch 2.x's
// FileSystemWriter writes it with the default save planner and no stream transforms (the
// reading side and the format: dcp_metadata.h; torch 2.13 torch/distributed/checkpoint/
// {filesystem.py _write_item, default_planner.py, _nested_dict.py, _traverse.py}). Pure: the
// caller gives the tree and its storages' bytes and the two sinks.
//
//   __0_0.distcp  every item back to back: a tensor as torch.save(contiguous copy of it) (a
//                 zip archive), any other leaf as torch.save(value) (BYTE_IO), in state_dict
//                 order; each item's [offset, offset + length) goes into storage_data
//   .metadata     the Metadata pickle (write_dcp_metadata), written last by the caller
//
// The state dict is flattened as flatten_state_dict does (traverse_state_dict): a dict is
// walked, each key as str(key) (strings and ints); a list is walked, its indices as ints, when
// it holds a tensor, a dict or a list that is walked, and is a leaf otherwise; every other
// value (tuples included) is a leaf. fqn = ".".join(path); planner_data maps fqn -> path.
// Each tensor is one chunk: the whole tensor, offsets 0.
//
// Module paths, for the widest range of releases to load the result: Metadata,
// TensorStorageMetadata, BytesStorageMetadata, ChunkStorageMetadata and MetadataIndex from
// torch.distributed.checkpoint.metadata and _StorageInfo from ...checkpoint.filesystem (2.0 and
// later), and TensorProperties with its MEM_FORMAT_ENCODING from
// torch.distributed._shard.sharded_tensor.metadata, where 2.0-2.2 have it and where 2.3 and
// later keep it beside their own copy. So torch 2.0 and later read the files (2.13 tested:
// dcp.load, dcp_to_torch_save); 1.13's DCP (torch.distributed._shard.checkpoint) does not.
#pragma once

#include <string>

#include "formats/decoded_file.h"
#include "formats/dcp/dcp_metadata.h"
#include "formats/io.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio::dcp {

constexpr const char* kMetadataFile = ".metadata";
constexpr const char* kRankZeroDataFile = "__0_0.distcp";  // rank 0, the first file

// Writes every item of `tree` into `data` (the file `data_file` of the checkpoint) and returns
// the metadata that indexes them. Refused, naming the entry (kInvalidArgument): a root that is
// not a dict, a key that is neither a str nor an int, two paths that flatten to one fqn, a
// leaf other than a tensor that holds tensors (DCP would pickle them inside one object).
// `context` (the output) prefixes messages.
Result<DcpMetadata> write_dcp_items(ByteSink& data, const Tree& tree, const StorageWriter& bytes,
                                    const std::string& data_file, const std::string& context);

// The .metadata pickle of `md` (protocol 2, which every DCP reader takes), with the module
// paths above and version "1.0.0", as 2.13 writes it.
Result<std::string> write_dcp_metadata(const DcpMetadata& md);

}  // namespace ckptio::dcp
