// The torch.save zip format (PyTorch 1.6+): <prefix>/data.pkl, <prefix>/data/<key>,
// <prefix>/version, byteorder, and 2.x's informational records.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"
#include "formats/zip/zip_reader.h"

namespace ckptio {

// Where one storage's bytes are in the file.
struct StorageExtent {
  uint64_t offset = 0;    // file offset of the first byte
  uint64_t length = 0;    // == StorageInfo::nbytes
  bool plain = true;      // stored, little-endian: the bytes can be copied or mapped as is
  bool byteswap = false;  // big-endian file: swap each element (complex: each half) on read
  // Zip records re-compressed by other tools: method 8 (deflate) means `compressed_length`
  // deflated bytes at `offset` that inflate to `length` bytes (plain is then false).
  uint16_t method = 0;
  uint64_t compressed_length = 0;
  // Method 8: the record's CRC-32 from the zip directory, checked on the inflated bytes (a
  // corrupt deflate stream can inflate to the right length; the CRC costs little next to
  // inflating); 0, as writers that skip CRCs leave it, is not checked. Stored records are
  // checked only with verify: torch.load checks none.
  uint32_t crc32 = 0;
  std::string record;  // the zip record's name, for messages (empty: a legacy file's storage)
  // torch-legacy read with deferred storage headers: the 8-byte element count just before
  // `offset` was not read when the file was opened; it is checked when the bytes are read.
  bool count_prefixed = false;
  // A storage whose bytes are not in the file's records but inside the pickle (a numpy
  // array, StorageTable::add_inline): held here, little-endian, `length` of them; the other
  // fields are unused and plain is false.
  std::shared_ptr<const std::string> bytes;
};

struct DecodedFile {
  Tree tree;
  std::vector<StorageExtent> extents;  // one per tree.storages entry
};

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

// Copies one storage's bytes (swapping when extent.byteswap) into dst (extent.length bytes).
Status read_storage_bytes(const ByteSource& src, const StorageExtent& extent, DType dtype,
                          void* dst);
// For a count_prefixed extent: reads the element count before it and checks it against the
// extent's length (kCorrupt naming the file and offset); Ok for any other extent.
Status check_count_prefix(const ByteSource& src, const StorageExtent& extent, DType dtype);

// Writes bytes of storage `index` (all tree.storages[index].nbytes of them) into `out`.
using StorageWriter = std::function<Status(uint32_t index, ByteSink& out)>;

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
