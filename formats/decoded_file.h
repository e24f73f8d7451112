// A single-file checkpoint decoded up front: its value tree, and where each storage's bytes
// lie in the file (StorageExtent). torch-zip, torch-legacy, TorchScript and safetensors
// decode into it, and plugins/common serves the host from it; the storages' bytes are read
// later, on demand, with read_storage_bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "formats/io.h"
#include "formats/status.h"
#include "formats/value.h"

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
  // Which file of a checkpoint of several files holds the bytes: 0 the one decoded, else
  // the number its opener gave the file (the plugin ABI's member numbers).
  uint32_t member = 0;
};

struct DecodedFile {
  Tree tree;
  std::vector<StorageExtent> extents;  // one per tree.storages entry
};

// Copies one storage's bytes (swapping when extent.byteswap) into dst (extent.length bytes).
Status read_storage_bytes(const ByteSource& src, const StorageExtent& extent, DType dtype,
                          void* dst);
// For a count_prefixed extent: reads the element count before it and checks it against the
// extent's length (kCorrupt naming the file and offset); Ok for any other extent.
Status check_count_prefix(const ByteSource& src, const StorageExtent& extent, DType dtype);

// Writes bytes of storage `index` (all tree.storages[index].nbytes of them) into `out`.
using StorageWriter = std::function<Status(uint32_t index, ByteSink& out)>;

}  // namespace ckptio
