#include "formats/decoded_file.h"

#include <libdeflate.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "formats/zip/le.h"

namespace ckptio {
namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

// Element unit to byte-swap: each element, or each real/imaginary half of a complex.
int swap_unit(DType dtype) {
  switch (dtype) {
    case DType::kComplex32:
    case DType::kComplex64:
    case DType::kComplex128:
      return dtype_size(dtype) / 2;
    default:
      return dtype_size(dtype);
  }
}

void byteswap(uint8_t* p, uint64_t n, int unit) {
  for (uint64_t i = 0; i + unit <= n; i += unit) std::reverse(p + i, p + i + unit);
}

}  // namespace

Status check_count_prefix(const ByteSource& src, const StorageExtent& extent, DType dtype) {
  if (!extent.count_prefixed) return Status::Ok();
  uint8_t count_le[8];
  if (extent.offset < 8) return corrupt(src, "storage header before offset 0");
  CKPTIO_RETURN_IF_ERROR(src.read_at(extent.offset - 8, count_le, 8));
  const uint64_t count = le::u64(count_le);
  uint64_t nbytes;
  if (__builtin_mul_overflow(count, uint64_t(dtype_size(dtype)), &nbytes) ||
      nbytes != extent.length)
    return corrupt(src, "storage at offset " + std::to_string(extent.offset) +
                            " has wrong byte size: the file holds " + std::to_string(count) +
                            " elements of " + std::string(dtype_name(dtype)) +
                            ", the object declares " + std::to_string(extent.length) + " bytes");
  return Status::Ok();
}

namespace {
// "deflated record 'archive/data/3'" for messages (the offset where no name is known).
std::string deflated_what(const StorageExtent& x) {
  return x.record.empty() ? "deflated storage at offset " + std::to_string(x.offset)
                          : "deflated record " + quote(x.record);
}
}  // namespace

Status read_storage_bytes(const ByteSource& src, const StorageExtent& extent, DType dtype,
                          void* dst) {
  if (extent.bytes) {  // held in memory since the pickle was read
    if (extent.bytes->size() != extent.length)
      return Status(Code::kInternal, src.name() + ": in-memory storage size mismatch");
    std::memcpy(dst, extent.bytes->data(), extent.length);
    return Status::Ok();
  }
  CKPTIO_RETURN_IF_ERROR(check_count_prefix(src, extent, dtype));
  uint8_t* out = static_cast<uint8_t*>(dst);
  if (extent.method == 0) {
    CKPTIO_RETURN_IF_ERROR(src.read_at(extent.offset, out, extent.length));
  } else if (extent.method == 8) {
    std::string buf;
    const uint8_t* in;
    if (extent.offset > src.size() || extent.compressed_length > src.size() - extent.offset)
      return corrupt(src, deflated_what(extent) + " runs past the end of the file");
    if (src.data()) {
      in = src.data() + extent.offset;
    } else {
      buf.resize(extent.compressed_length);
      CKPTIO_RETURN_IF_ERROR(src.read_at(extent.offset, buf.data(), buf.size()));
      in = reinterpret_cast<const uint8_t*>(buf.data());
    }
    std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
        libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
    if (!d) return Status(Code::kInternal, "out of memory allocating a deflate decompressor");
    if (libdeflate_deflate_decompress(d.get(), in, extent.compressed_length, out, extent.length,
                                      nullptr) != LIBDEFLATE_SUCCESS)
      return corrupt(src, deflated_what(extent) + " does not inflate to its " +
                              std::to_string(extent.length) + " bytes");
    // CRC 0 is what torch 2.x writes with set_crc32_options(False): nothing to check.
    if (const uint32_t crc = libdeflate_crc32(0, out, extent.length);
        extent.crc32 != 0 && crc != extent.crc32) {
      char got[9], want[9];
      std::snprintf(got, sizeof got, "%08x", crc);
      std::snprintf(want, sizeof want, "%08x", extent.crc32);
      return corrupt(src, deflated_what(extent) + " inflates to bytes with CRC32 " + got +
                              ", the zip directory says " + want);
    }
  } else {
    return Status(Code::kUnsupported, src.name() + ": storage compression method " +
                                          std::to_string(extent.method) + " is not supported");
  }
  if (extent.byteswap) {
    const int unit = swap_unit(dtype);
    if (unit > 1 && extent.length % unit != 0)
      return corrupt(src, "big-endian storage of " + std::to_string(extent.length) +
                              " bytes is not a whole number of " + std::string(dtype_name(dtype)) +
                              " elements");
    if (unit > 1) byteswap(out, extent.length, unit);
  }
  return Status::Ok();
}

}  // namespace ckptio
