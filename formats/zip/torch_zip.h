// The torch.save zip format (PyTorch 1.6+): <prefix>/data.pkl, <prefix>/data/<key>,
// <prefix>/version, byteorder, and 2.x's informational records.
// Byte-level spec: SPEC.md beside this file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"
#include "formats/zip/zip_reader.h"

namespace ckptio {

struct ZipReadOptions {
  PickleLimits limits;
  bool allow_objects = false;
  bool verify_crc = false;  // check CRC32 of every data record (slow; `ckptio verify`)
  // Optional hook for archives whose data records are not the storages' bytes (the
  // compressed torch-zip-zstd format): called for every storage with its record, instead
  // of the size and method checks; returns the storage's extent (plain = false).
  std::function<Result<StorageExtent>(const ZipEntry& record, const StorageInfo& storage)>
      locate_record;
  // Optional: called once the zip directory is parsed, before data.pkl, so that a format
  // built on this layout checks its own records without parsing the directory again.
  std::function<Status(const ZipReader& zip)> check_archive;
};

// True when the archive is a TorchScript archive (has <prefix>/constants.pkl).
bool is_torchscript_archive(const ZipReader& zip);

// Parses data.pkl and locates every storage record. Every tensor view is checked against
// its storage, and every storage against its record's size (kCorrupt naming the record).
Result<DecodedFile> read_torch_zip(const ByteSource& src, const ZipReadOptions& options);

struct ZipWriteOptions {
  std::string prefix = "archive";  // torch.save uses the file's stem
  uint32_t alignment = 64;
  std::string context;  // the output file, for messages
  // Optional, for formats built on this layout (torch-zip-zstd): records written first,
  // before data.pkl (name after the prefix, bytes), so that a probe sees them in the head.
  std::vector<std::pair<std::string, std::string>> leading_records;
  // Optional: storage `index`'s record encoded (e.g. zstd, method 93) instead of its raw
  // bytes. The record's directory entry gets `method`, the storage's size as the
  // uncompressed size and `crc` (CRC32 of the bytes the record decodes to).
  struct EncodedRecord {
    std::string bytes;
    uint16_t method = 0;
    uint32_t crc = 0;
  };
  std::function<Result<EncodedRecord>(uint32_t index, const StorageInfo& storage,
                                      const StorageWriter& storage_bytes)>
      encode_record;
};

// Writes data.pkl, .format_version ("1"), .storage_alignment (options.alignment in
// decimal), byteorder ("little"), data/0..N-1 in numeric order, version ("3\n"), as
// torch.save 2.7+ does, without its informational .data/serialization_id (a hash of
// torch's own; no reader needs it). With encode_record the two dot records are left out.
Status write_torch_zip(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                       const ZipWriteOptions& options);

}  // namespace ckptio
