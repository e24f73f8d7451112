// torch-zip-zstd: the torch.save zip layout whose data records are chunked-zstd containers
// (chunked_zstd.h) of byte-grouped storages; data.pkl, byteorder and version stay plain
// records, and a first record `<prefix>/.data/ckptio_codec` marks the format
// (formats/compress/SPEC.md, section 1). Built on formats/zip/torch_zip through its
// locate_record / encode_record / leading_records hooks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/compress/chunked_zstd.h"
#include "formats/io.h"
#include "formats/status.h"
#include "formats/zip/torch_zip.h"

namespace ckptio::compress {

constexpr const char kCodecRecord[] = ".data/ckptio_codec";
constexpr const char kCodecText[] = "ckptio-chunked-zstd 2\n";
constexpr uint16_t kZipMethodZstd = 93;  // APPNOTE 4.4.5

// True when the head is a zip whose first record is the codec marker.
bool looks_like_torch_zip_zstd(const uint8_t* head, size_t n);

struct TorchZipZstdFile {
  DecodedFile file;                    // extents: plain = false, method 93
  std::vector<ChunkedRecord> records;  // one per storage
};

// Reads the structure and every record's chunk index. The sum of the storages' decoded
// sizes must not exceed max_total (kLimit, before anything is allocated for them).
Result<TorchZipZstdFile> read_torch_zip_zstd(const ByteSource& src, const ZipReadOptions& options,
                                             uint64_t max_total);

struct TorchZipZstdWriteOptions {
  ZipWriteOptions zip;
  ChunkedOptions chunked;
};

Status write_torch_zip_zstd(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                            const TorchZipZstdWriteOptions& options, WorkerPool& pool);

}  // namespace ckptio::compress
