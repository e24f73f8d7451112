// The legacy torch.save stream (_use_new_zipfile_serialization=False, and every file
// before 1.6): five pickles (magic number, protocol version 1001, sys_info, the object,
// the sorted storage keys), then for each key an int64 element count and the raw bytes.
#pragma once

#include "formats/io.h"
#include "formats/status.h"
#include "formats/value.h"
#include "formats/zip/torch_zip.h"  // DecodedFile, StorageExtent, StorageWriter

namespace ckptio {

struct LegacyReadOptions {
  PickleLimits limits;
  bool allow_objects = false;
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
