// torch.distributed.checkpoint (DCP) `.metadata`: the decoder of the pickle that indexes a DCP
// checkpoint directory. Pure: no LibTorch, no I/O, nothing executed. The installed torch is the
// arbiter (torch 2.13 torch/distributed/checkpoint/{metadata.py,filesystem.py,_extension.py};
// Debian's torch 1.13 torch/distributed/_shard/checkpoint/{metadata.py,filesystem.py} and
// _shard/sharded_tensor/metadata.py; /work/shared/docs/sharded-formats.md §2.4).
//
// A DCP checkpoint (FileSystemWriter) is a directory:
//
//   .metadata        pickle.dump(Metadata) by the coordinator, written last (tmp + rename)
//   __0_0.distcp     items of rank 0, back to back: each a complete torch.save zip archive
//   __1_0.distcp     (tensor chunk or BYTE_IO object), located only through storage_data
//
// `.metadata` is pickle protocol 4 (Python 3.8-3.13; 5 from 3.14; any of 2-5 is read) of the
// dataclasses below, each pickled as GLOBAL cls, EMPTY_TUPLE, NEWOBJ, state, BUILD:
//
//   Metadata               state_dict_metadata ({fqn: TensorStorageMetadata or
//                          BytesStorageMetadata}),
//                          planner_data (DefaultSavePlanner: {flat fqn: (path items: str | int)};
//                          1.13: None), storage_data ({MetadataIndex: _StorageInfo}),
//                          storage_meta (StorageMeta, 2.4+), version ("1.0.0", 2.9+)
//   TensorStorageMetadata  properties: TensorProperties, size: torch.Size (the global size),
//                          chunks: [ChunkStorageMetadata(offsets: torch.Size, sizes: torch.Size)]
//   BytesStorageMetadata   no state (NEWOBJ, no BUILD)
//   TensorProperties       __getstate__ -> the tuple (dtype, layout, requires_grad,
//                          memory-format enum, pin_memory); the enum member is pickled as
//                          ENUM(0|1|2) (Python 3.11.7) or builtins.getattr(ENUM,
//                          'TORCH_CONTIGUOUS_FORMAT') (Python 3.11.2: Debian's 1.13 files)
//   MetadataIndex (frozen) {'fqn', 'index'[, 'offset']}: offset is left out when None
//   _StorageInfo           {'relative_path', 'offset', 'length'[, 'transform_descriptors']}
//                          (2.7+ __getstate__ drops None values)
//   StorageMeta            {'checkpoint_id' (str or pathlib.PosixPath), 'save_id', 'load_id',
//                          'modules'}
//
// Module paths by version (each accepted, and nothing else, see dcp_metadata.cc):
//   1.13     torch.distributed._shard.checkpoint.{metadata,filesystem}; TensorProperties and
//            MEM_FORMAT_ENCODING from torch.distributed._shard.sharded_tensor.metadata
//   2.0-2.2  torch.distributed.checkpoint.metadata, ...checkpoint.filesystem; TensorProperties
//            still from _shard.sharded_tensor.metadata
//   2.3+     TensorProperties, _MEM_FORMAT_ENCODING: torch.distributed.checkpoint.metadata
// plus torch.Size, torch dtypes, torch.serialization._get_layout (layouts), pathlib.PosixPath /
// PurePosixPath (pathlib._local.* on Python 3.13, per sharded-formats.md §2.4.1; no 3.13 here
// to run), builtins.set / frozenset, collections.OrderedDict, and builtins.getattr only as
// getattr(<memory-format enum>, '<member>'). Not accepted, as no DCP writer pickles them:
// memory formats themselves (TensorProperties.__getstate__ exists because they "cannot be
// pickled"), torch.device, ShardMetadata / ShardedTensorMetadata, TreeSpec, _StoragePrefix
// (a plan's, never the metadata's), other storage layers' classes (hf_storage). Any other
// global is refused by name: "x/.metadata: pickle global 'os.system' is not a DCP metadata
// class (at ...)" (kForbidden).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "formats/dtype.h"
#include "formats/status.h"

namespace ckptio::dcp {

// TensorProperties._MEM_FORMAT_ENCODING values (0, 1, 2).
enum class MemoryFormat { kContiguous = 0, kChannelsLast = 1, kPreserve = 2 };

struct TensorProperties {
  DType dtype = DType::kFloat32;
  std::string layout = "torch.strided";  // deprecated in 2.x; always strided in practice
  bool requires_grad = false;            // deprecated
  MemoryFormat memory_format =
      MemoryFormat::kContiguous;  // deprecated; DCP always saves contiguous
  bool pin_memory = false;        // deprecated
};

// One saved piece of a tensor: the box [offsets, offsets + sizes) of the global tensor.
struct Chunk {
  std::vector<int64_t> offsets;
  std::vector<int64_t> sizes;
};

// One entry of state_dict_metadata.
struct Item {
  enum class Kind { kTensor, kBytes };
  std::string fqn;
  Kind kind = Kind::kBytes;
  // kTensor only:
  TensorProperties properties;
  std::vector<int64_t> size;  // the global size; empty for a 0-dim tensor
  std::vector<Chunk> chunks;  // in bounds, disjoint, together exactly the whole tensor
};

// A key of storage_data: the item, and for a tensor chunk its offsets (None for bytes).
struct MetadataIndex {
  std::string fqn;
  std::optional<std::vector<int64_t>> offset;
  std::optional<int64_t> index;  // hint: the chunk's position in Item::chunks
};

// Where an item's bytes are: [offset, offset + length) of relative_path (a plain name inside
// the checkpoint directory: not absolute, no "..", no backslash, no NUL).
struct StorageInfo {
  std::string relative_path;
  int64_t offset = 0;
  int64_t length = 0;
  // Stream transforms applied at save, outermost first as torch lists them ("stream.zstd/1");
  // absent when the file has none (2.7+ omits the field then; older files never have it).
  std::optional<std::vector<std::string>> transform_descriptors;
};

struct StorageEntry {
  MetadataIndex index;
  StorageInfo info;
};

using PathComponent = std::variant<std::string, int64_t>;

struct PlannerEntry {
  std::string fqn;                  // the flattened key ("optim.state.fc.weight.exp_avg")
  std::vector<PathComponent> path;  // how to rebuild the nested state dict: ("optim", "state", ...)
};

struct StorageMeta {
  std::optional<std::string> checkpoint_id;  // a PosixPath is joined back ("/ckpt/step_10")
  std::optional<std::string> save_id;
  std::optional<std::string> load_id;
  std::vector<std::string> modules;
};

struct DcpMetadata {
  // "torch.distributed.checkpoint" (2.x) or "torch.distributed._shard.checkpoint" (1.13): the
  // module of the Metadata class.
  std::string package;
  std::vector<Item> items;                 // state_dict_metadata, in file order, fqns distinct
  std::vector<StorageEntry> storage_data;  // in file order; one per chunk and per bytes item
  std::optional<std::vector<PlannerEntry>> planner_data;  // nullopt: None (1.13)
  std::optional<StorageMeta> storage_meta;                // nullopt: absent or None (< 2.4)
  std::optional<std::string> version;                     // nullopt: absent or None (< 2.9)

  const Item* find(const std::string& fqn) const;  // null when absent (linear)
  // The storage entry of a bytes item (offsets null) or of a tensor chunk; null when absent.
  const StorageEntry* find_storage(const std::string& fqn,
                                   const std::vector<int64_t>* offsets) const;
};

// Decodes a `.metadata` file (its n bytes). `file` names it in messages. Refused, each with one
// line naming `file`, the fqn or storage key, and what is wrong:
//  - not a protocol 2-5 pickle, truncated or malformed pickle, bytes after STOP (kCorrupt);
//  - a pickle global outside the allow-list above, by name (kForbidden); tensors (kCorrupt);
//  - a root that is not a Metadata, fields of the wrong type, a dtype ckptio does not know;
//  - a tensor chunk whose rank differs from the tensor's, that is out of bounds (negative
//    offset or size, offset + size past the dim), that overlaps another chunk, or chunks that
//    do not cover the whole tensor (which fqn and which chunk);
//  - a storage_data key whose fqn is not in state_dict_metadata or whose offset is no chunk of
//    it, a repeated key, a chunk or bytes item with no storage entry;
//  - a relative_path that is empty, absolute, has a ".." component, a backslash or a NUL;
//    a negative offset or length, or offset + length past 2^63 - 1.
// Never executes anything; every count comes from bytes that exist (the unpickler allocates
// per opcode read); and work is bounded (kLimit): sizes of more than 64 dims, a file that
// reuses memo-shared objects far more than DCP does (more than ~4 decoded values per byte), a
// tensor whose overlap check would exceed kMaxChunkCheckWork, all checks together past
// kMaxChunkCheckWork + 16 per byte of the file.
Result<DcpMetadata> parse_dcp_metadata(const uint8_t* data, size_t n, const std::string& file);

// The overlap check's budget per tensor: grid cells (distinct chunk boundaries per dim,
// multiplied) or, where that grid is larger, pairwise chunk comparisons. DCP's own layouts
// (row, column, 2-D mesh sharding, uneven or not) need one cell per chunk.
constexpr uint64_t kMaxChunkCheckWork = uint64_t{1} << 26;

}  // namespace ckptio::dcp
