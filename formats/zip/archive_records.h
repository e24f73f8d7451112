// The small records every PyTorch zip archive holds, torch.save's and torch.jit.save's alike:
// `version` (`.data/version` from 1.x's later releases on) and 2.x's `byteorder`.
#pragma once

#include <cstdint>

#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/status.h"
#include "formats/zip/zip_reader.h"

namespace ckptio {

// The archive format version (1 to 10, the range PyTorch's readers accept); kCorrupt when
// the record is missing or not decimal, kUnsupported outside the range.
Result<uint64_t> read_archive_version(const ByteSource& src, const ZipReader& zip);

// Where storage `storage` lies in `record`: the record must hold exactly its bytes, stored
// (method 0) or deflated (8), and a deflated one may not claim more than DEFLATE can expand
// to (~1032:1), since the host allocates the storage before inflating it. kCorrupt or
// kUnsupported naming the record.
Result<StorageExtent> storage_extent(const ByteSource& src, const ZipEntry& record,
                                     const StorageInfo& storage, bool big_endian);

// True for a big-endian writer; false when `byteorder` says little or is absent (1.x never
// wrote it); kCorrupt for anything else.
Result<bool> read_archive_big_endian(const ByteSource& src, const ZipReader& zip);

}  // namespace ckptio
