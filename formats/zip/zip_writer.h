// Writes a zip the way PyTorch's PyTorchStreamWriter does: stored records whose data start
// at a multiple of `alignment` (FB padding extra field in the local header), data
// descriptors with the real CRC32, ZIP64 extras where a size or offset needs them, and a
// ZIP64 end record followed by the classic one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/status.h"

namespace ckptio {

class WorkerPool;

// Where one record's local header, extras and data go: PyTorch's detail::getOffset /
// getPadding (spec 2.3). Exposed so tests can check the ZIP64 cases without writing 4 GiB.
struct ZipLocalLayout {
  bool zip64_size = false;       // size >= 0xFFFFFFFF: ZIP64 extra holds both sizes
  bool zip64_offset = false;     // header offset >= 0xFFFFFFFF: ZIP64 extra holds it
  uint16_t zip64_extra_len = 0;  // whole ZIP64 extra field incl. its 4-byte header; 0 if none
  uint16_t padding = 0;          // 'Z' bytes in the FB extra (present even when 0)
  uint64_t data_offset = 0;      // a multiple of the alignment
};
ZipLocalLayout zip_local_layout(uint64_t header_offset, uint64_t full_name_len, uint64_t size,
                                uint32_t alignment);

class ZipWriter {
 public:
  ZipWriter(ByteSink& sink, std::string prefix, uint32_t alignment = 64);
  ~ZipWriter();

  // Writes a whole record "<prefix>/<name>".
  Status add(const std::string& name, const void* data, uint64_t size);
  // Streams a record of exactly `size` bytes: begin, write() until size bytes, end().
  Status begin(const std::string& name, uint64_t size);
  Status write(const void* data, uint64_t n);
  Status end();
  // Writes a whole record whose bytes are already encoded (e.g. zstd, method 93): `data`
  // is what the archive stores; the directory records `coding`'s method, the size and the
  // CRC32 of the bytes the record decodes to (which this writer cannot compute itself).
  struct Coding {
    uint16_t method = 0;
    uint64_t uncompressed_size = 0;
    uint32_t crc = 0;
  };
  Status add_encoded(const std::string& name, const void* data, uint64_t size,
                     const Coding& coding);
  // Central directory and end records. No record may be added after.
  Status finish();

  uint64_t bytes_written() const { return offset_; }

 private:
  struct Record {
    std::string name;
    uint64_t header_offset, size;  // size: stored (compressed) bytes
    uint32_t crc;
    uint16_t method = 0;
    uint64_t uncompressed_size = 0;  // == size for stored records
  };
  Status begin_record(const std::string& name, uint64_t size, const Coding* coding);
  Status emit(const void* data, uint64_t n);
  Status fail(Code code, const std::string& what);
  WorkerPool* crc_pool();

  ByteSink& sink_;
  std::string prefix_;
  uint32_t alignment_;
  uint64_t offset_ = 0;
  std::vector<Record> records_;
  bool open_ = false;
  uint64_t open_written_ = 0;
  uint32_t open_crc_ = 0;
  bool open_encoded_ = false;  // CRC given by add_encoded(), not computed
  bool finished_ = false;
  Status error_;                          // the first failure; every later call returns it
  std::unique_ptr<WorkerPool> crc_pool_;  // 2 threads: the caller writes, the other checksums
  bool no_crc_thread_ = false;            // none could be started: checksum inline
};

}  // namespace ckptio
