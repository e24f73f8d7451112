// Hugging Face safetensors (https://github.com/huggingface/safetensors), read and written
// into the same DecodedFile / StorageWriter model as torch-zip, so that the host maps or
// reads each tensor's bytes itself (zero-copy where 64-byte aligned, parallel copies).
//
// Byte spec (the reference implementation is the arbiter: safetensors 0.8.0, its Rust
// tensor.rs and safetensors/torch.py; /work/shared/docs/sharded-formats.md §4):
//
//   offset 0      u64 little-endian N, the header length; N <= 100,000,000
//   offset 8      N bytes: a UTF-8 JSON object (the writer starts it with '{' and pads it
//                 with spaces to a multiple of 8 so that the data start 8-aligned; the
//                 reference reader also takes blanks before the '{', and so does this)
//   offset 8+N    the data buffer: every tensor's elements, little-endian, row-major
//
// The object maps each tensor name to {"dtype": NAME, "shape": [d, ...], "data_offsets":
// [BEGIN, END]} (END exclusive, relative to the data buffer; other fields are ignored, as
// the reference reader ignores them), plus an optional "__metadata__": {str: str} (null
// reads as none). No tensor name, and no field of a tensor, appears twice (the reference
// refuses both); a repeated metadata key keeps its last value, as the reference does.
// Sorted by (BEGIN, END), the ranges tile the buffer: the first begins at 0, each begins
// where the previous ended, the last ends at the end of the file; END - BEGIN is exactly
// the tensor's byte size (numel * bits / 8, a whole number of bytes). Empty (a 0
// dimension) and 0-dim tensors are allowed. At most 64 dimensions (the host's limit).
//
// dtype NAME -> ckptio dtype (torch's), the reference's whole enum:
//   BOOL bool, U8 uint8, I8 int8, U16 uint16, I16 int16, F16 float16, BF16 bfloat16,
//   U32 uint32, I32 int32, F32 float32, U64 uint64, I64 int64, F64 float64, C64 complex64,
//   F8_E5M2 float8_e5m2, F8_E4M3 float8_e4m3fn, F8_E8M0 float8_e8m0fnu,
//   F8_E4M3FNUZ float8_e4m3fnuz, F8_E5M2FNUZ float8_e5m2fnuz,
//   F4 float4_e2m1fn_x2 (4-bit elements, two per byte: the last dimension, which must be
//      even, is halved as safetensors.torch does; writing doubles it back),
//   F6_E2M3, F6_E3M2: refused by name (6-bit elements; torch has no such dtype).
// Any other name is refused as unknown.
//
// Mapping to the value tree:
//  - read: a plain dict name -> tensor in data order (sorted by (BEGIN, END), header order
//    among equal ranges; safetensors.torch.load_file's order), each tensor the whole of its
//    own storage (key: the tensor's name; device "cpu"). When the header has
//    "__metadata__", it is kept as the last root entry "__metadata__" -> dict of str -> str
//    in header order, so that `inspect` shows it and safetensors -> safetensors keeps it.
//  - write: the root is a dict with str keys; nested dicts are flattened with '.'; a root
//    entry "__metadata__" (str -> str) is merged into the metadata; any other value is
//    refused naming its key. Tensors are written in the reference writer's order (dtype
//    rank descending, then name), each contiguous (strided views gathered row-major), after
//    a header whose "__metadata__" comes first and holds "format": "pt" unless given,
//    with keys sorted (deterministic output; the reference's order is its hash map's).
//    Tensors whose byte ranges overlap in one storage are refused by name (as save_file
//    does), or with `dedup` reduced to one name as safetensors.torch.save_model does: see
//    safetensors_dedup.h.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;  // the reference's MAX_HEADER_SIZE

// Reads the header and locates every tensor. Every violation of the rules above is one
// error naming the file and, where there is one, the tensor.
Result<DecodedFile> read_safetensors(const ByteSource& src);

struct SafetensorsWriteOptions {
  std::string context;  // the output file, for messages
  // Added to (or replacing) the metadata, in this order: meta.KEY=VALUE options.
  std::vector<std::pair<std::string, std::string>> metadata;
  bool dedup = false;  // save_model's duplicate-name removal instead of refusing
};

Status write_safetensors(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                         const SafetensorsWriteOptions& options);

}  // namespace ckptio
