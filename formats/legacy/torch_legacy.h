// The legacy torch.save stream (_use_new_zipfile_serialization=False, and every file
// before 1.6): five pickles (magic number, protocol version 1001, sys_info, the object,
// the sorted storage keys), then for each key an int64 element count and the raw bytes.
// Byte-level spec: SPEC.md beside this file.
#pragma once

#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

struct LegacyReadOptions {
  PickleLimits limits;
  bool allow_objects = false;
  // For sources that are costly to skip through (a zstd stream read front to back): storage
  // extents come from the sizes the pickle declares, checked against the file's size,
  // without reading each storage's 8-byte element count; extents are count_prefixed and
  // read_storage_bytes checks the count when it reads the bytes. Only for callers that
  // read every storage through read_storage_bytes (the plain offsets skip the check).
  bool defer_storage_headers = false;
};

// True when the head looks like the legacy magic pickle (any protocol, incl. protocol 1's
// text LONG form "L119547037146038801333356L\n").
bool looks_like_torch_legacy(const uint8_t* head, size_t n);

// Parses the pickles and walks the storage blob headers; every count is checked against
// the declared storage size and the file size. Extents are plain (data is little-endian).
Result<DecodedFile> read_torch_legacy(const ByteSource& src, const LegacyReadOptions& options);

struct LegacyWriteOptions {
  std::string context;
};

Status write_torch_legacy(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                          const LegacyWriteOptions& options);

}  // namespace ckptio
