// CRC32 of a zip record stored with method 93 (zstd), by streaming it through a zstd
// decoder with bounded memory: what `ckptio verify` checks against the zip directory for
// torch-zip-zstd storage records, as any zip tool that knows method 93 would.
#pragma once

#include "formats/io.h"
#include "formats/status.h"
#include "formats/zip/zip_reader.h"

namespace ckptio::compress {

// Decodes the entry's zstd stream and compares its size and CRC32 with the directory's;
// kCorrupt naming the file and record on any mismatch or bad frame.
Status verify_zstd_record_crc(const ByteSource& src, const ZipEntry& entry);

}  // namespace ckptio::compress
