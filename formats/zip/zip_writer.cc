#include "formats/zip/zip_writer.h"

#include <algorithm>
#include <atomic>
#include <system_error>

#include "formats/worker_pool.h"
#include "formats/zip/crc32_combine.h"
#include "formats/zip/le.h"
#include "formats/zip/zip_reader.h"  // crc32_update

namespace ckptio {
namespace {

constexpr uint64_t kMax32 = 0xffffffffu;
constexpr uint16_t kFlagsDescriptor = 0x0808;  // bit 3: CRC/sizes follow; bit 11: UTF-8
constexpr uint16_t kFlagsEmpty = 0x0800;       // empty records get no data descriptor
constexpr uint64_t kLocalSize = 30;
constexpr uint64_t kFbHeader = 4;
constexpr uint16_t kVersionStored = 0;
constexpr uint16_t kVersionZstd = 63;  // APPNOTE 4.4.3.2: 6.3 for zstd (method 93)

uint16_t version_needed(uint16_t method) { return method == 0 ? kVersionStored : kVersionZstd; }

// The ZIP64 extra as miniz writes it: only the overflowing fields, sizes before the offset.
// Local headers carry [uncompressed size, 0] (the data descriptor has the real sizes);
// the central directory carries the real sizes.
std::string zip64_extra(bool with_sizes, uint64_t usize, uint64_t csize, bool with_offset,
                        uint64_t offset) {
  std::string x;
  if (!with_sizes && !with_offset) return x;
  le::put16(x, 0x0001);
  le::put16(x, uint16_t((with_sizes ? 16 : 0) + (with_offset ? 8 : 0)));
  if (with_sizes) {
    le::put64(x, usize);
    le::put64(x, csize);
  }
  if (with_offset) le::put64(x, offset);
  return x;
}

// Below this a write is checksummed inline: handing the CRC to the other thread (a wake-up,
// some microseconds) costs about what it saves. Above it the CRC is free: a 1 MiB record's
// CRC takes 70 us at 14 GB/s, its write() into the page cache about 150 us.
constexpr uint64_t kParallelCrcMin = 256u << 10;

// libdeflate_crc32 takes a size_t; feed it in pieces so 32-bit size_t would also work.
uint32_t crc_of(uint32_t crc, const uint8_t* p, uint64_t n) {
  for (uint64_t done = 0; done < n;) {
    const size_t k = size_t(std::min<uint64_t>(n - done, 1u << 30));
    crc = crc32_update(crc, p + done, k);
    done += k;
  }
  return crc;
}

}  // namespace

ZipLocalLayout zip_local_layout(uint64_t header_offset, uint64_t full_name_len, uint64_t size,
                                uint32_t alignment) {
  ZipLocalLayout l;
  uint64_t start = header_offset + kLocalSize + full_name_len + kFbHeader;
  l.zip64_size = size >= kMax32;
  l.zip64_offset = header_offset >= kMax32;
  if (l.zip64_size || l.zip64_offset) {
    l.zip64_extra_len = uint16_t(4 + (l.zip64_size ? 16 : 0) + (l.zip64_offset ? 8 : 0));
    start += l.zip64_extra_len;
  }
  const uint64_t a = alignment ? alignment : 1;
  l.padding = uint16_t((a - start % a) % a);
  l.data_offset = start + l.padding;
  return l;
}

ZipWriter::ZipWriter(ByteSink& sink, std::string prefix, uint32_t alignment)
    : sink_(sink), prefix_(std::move(prefix)), alignment_(alignment) {}

ZipWriter::~ZipWriter() = default;

WorkerPool* ZipWriter::crc_pool() {
  if (!crc_pool_ && !no_crc_thread_) {
    try {
      crc_pool_ = std::make_unique<WorkerPool>(2);
    } catch (const std::system_error&) {  // no thread to be had
      no_crc_thread_ = true;
    }
  }
  return crc_pool_.get();
}

Status ZipWriter::fail(Code code, const std::string& what) {
  if (error_.ok()) error_ = Status(code, "zip writer: " + what);
  return error_;
}

Status ZipWriter::emit(const void* data, uint64_t n) {
  Status st = sink_.write(data, n);
  if (!st.ok()) {
    if (error_.ok()) error_ = st;
    return st;
  }
  offset_ += n;
  return Status::Ok();
}

Status ZipWriter::add(const std::string& name, const void* data, uint64_t size) {
  CKPTIO_RETURN_IF_ERROR(begin(name, size));
  CKPTIO_RETURN_IF_ERROR(write(data, size));
  return end();
}

Status ZipWriter::add_encoded(const std::string& name, const void* data, uint64_t size,
                              const Coding& coding) {
  CKPTIO_RETURN_IF_ERROR(begin_record(name, size, &coding));
  CKPTIO_RETURN_IF_ERROR(write(data, size));
  return end();
}

Status ZipWriter::begin(const std::string& name, uint64_t size) {
  return begin_record(name, size, nullptr);
}

Status ZipWriter::begin_record(const std::string& name, uint64_t size, const Coding* coding) {
  if (!error_.ok()) return error_;
  if (finished_) return fail(Code::kInternal, "record '" + name + "' added after finish()");
  if (open_) return fail(Code::kInternal, "record '" + name + "' begun while another is open");
  // Padding must fit the FB extra's 16-bit length (and the whole extra field too).
  if (alignment_ == 0 || alignment_ > 0x8000)
    return fail(Code::kInvalidArgument,
                "alignment " + std::to_string(alignment_) + " is not in [1, 32768]");
  const std::string full = prefix_ + "/" + name;
  if (full.size() > 0xffff)
    return fail(Code::kInvalidArgument, "record name '" + full + "' is longer than 65535 bytes");

  const uint16_t method = coding ? coding->method : 0;
  const uint64_t usize = coding ? coding->uncompressed_size : size;
  if (method == 0 && usize != size)
    return fail(Code::kInternal, "stored record '" + full + "' with two different sizes");
  // ZIP64 sizes are needed when either size overflows; the local extra then carries
  // [uncompressed size, 0] like miniz's, the data descriptor has both.
  const ZipLocalLayout l =
      zip_local_layout(offset_, full.size(), std::max(size, usize), alignment_);
  const std::string z64 = zip64_extra(l.zip64_size, usize, 0, l.zip64_offset, offset_);
  std::string h;
  h.reserve(kLocalSize + full.size() + z64.size() + kFbHeader + l.padding);
  le::put32(h, 0x04034b50);
  le::put16(h, version_needed(method));
  le::put16(h, size ? kFlagsDescriptor : kFlagsEmpty);
  le::put16(h, method);
  le::put16(h, 0);  // mod time
  le::put16(h, 0);  // mod date
  le::put32(h, 0);  // CRC: in the data descriptor
  le::put32(h, 0);  // compressed size: in the data descriptor
  le::put32(h, 0);  // uncompressed size: in the data descriptor
  le::put16(h, uint16_t(full.size()));
  le::put16(h, uint16_t(z64.size() + kFbHeader + l.padding));
  h += full;
  h += z64;
  h += "FB";
  le::put16(h, l.padding);
  h.append(l.padding, 'Z');

  records_.push_back(Record{full, offset_, size, coding ? coding->crc : 0, method, usize});
  CKPTIO_RETURN_IF_ERROR(emit(h.data(), h.size()));
  open_ = true;
  open_written_ = 0;
  open_crc_ = 0;
  open_encoded_ = coding != nullptr;
  return Status::Ok();
}

Status ZipWriter::write(const void* data, uint64_t n) {
  if (!error_.ok()) return error_;
  if (!open_) return fail(Code::kInternal, "write() without an open record");
  const Record& r = records_.back();
  if (n > r.size - open_written_)
    return fail(Code::kInternal, "record '" + r.name + "' declared " + std::to_string(r.size) +
                                     " bytes but more were written");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (open_encoded_) {  // the caller gave the CRC
    CKPTIO_RETURN_IF_ERROR(emit(data, n));
    open_written_ += n;
    return Status::Ok();
  }
  // A large write: the CRC runs on a second core while this one writes the same bytes
  // (both only read them), so a save costs the write alone rather than CRC + write. The
  // pool's one background thread lives as long as the writer: no thread start per record.
  WorkerPool* pool = n >= kParallelCrcMin ? crc_pool() : nullptr;
  if (!pool) {
    open_crc_ = crc_of(open_crc_, p, n);
    CKPTIO_RETURN_IF_ERROR(emit(data, n));
    open_written_ += n;
    return Status::Ok();
  }
  // The write stays on the calling thread (worker 0), whose sink may expect it; the CRC goes
  // to whichever thread claims it first, so the caller does both if the other is late.
  Status st;
  uint32_t piece = 0;
  bool wrote = false;  // the caller's alone
  std::atomic<bool> crc_claimed{false};
  pool->run(2, [&](size_t, unsigned worker) {
    if (worker == 0 && !wrote) {
      wrote = true;
      st = emit(data, n);
    } else if (!crc_claimed.exchange(true)) {
      piece = crc_of(0, p, n);
    }
  });
  if (!wrote) st = emit(data, n);  // the other thread claimed both tasks
  CKPTIO_RETURN_IF_ERROR(st);
  open_crc_ = crc32_combine(open_crc_, piece, n);
  open_written_ += n;
  return Status::Ok();
}

Status ZipWriter::end() {
  if (!error_.ok()) return error_;
  if (!open_) return fail(Code::kInternal, "end() without an open record");
  Record& r = records_.back();
  if (open_written_ != r.size)
    return fail(Code::kInternal, "record '" + r.name + "' declared " + std::to_string(r.size) +
                                     " bytes but " + std::to_string(open_written_) +
                                     " were written");
  if (!open_encoded_) r.crc = open_crc_;
  open_ = false;
  if (r.size == 0) return Status::Ok();
  std::string d;
  le::put32(d, 0x08074b50);
  le::put32(d, r.crc);
  if (std::max(r.size, r.uncompressed_size) >= kMax32 || r.header_offset >= kMax32) {
    le::put64(d, r.size);
    le::put64(d, r.uncompressed_size);
  } else {
    le::put32(d, uint32_t(r.size));
    le::put32(d, uint32_t(r.uncompressed_size));
  }
  return emit(d.data(), d.size());
}

Status ZipWriter::finish() {
  if (!error_.ok()) return error_;
  if (open_)
    return fail(Code::kInternal, "finish() while record '" + records_.back().name + "' is open");
  if (finished_) return fail(Code::kInternal, "finish() called twice");
  finished_ = true;

  const uint64_t cd_offset = offset_;
  std::string cd;
  for (const Record& r : records_) {
    const bool big_size = std::max(r.size, r.uncompressed_size) >= kMax32;
    const bool big_offset = r.header_offset >= kMax32;
    const std::string z64 =
        zip64_extra(big_size, r.uncompressed_size, r.size, big_offset, r.header_offset);
    le::put32(cd, 0x02014b50);
    le::put16(cd, 0);  // version made by
    le::put16(cd, version_needed(r.method));
    le::put16(cd, r.size ? kFlagsDescriptor : kFlagsEmpty);
    le::put16(cd, r.method);
    le::put16(cd, 0);  // time
    le::put16(cd, 0);  // date
    le::put32(cd, r.crc);
    le::put32(cd, uint32_t(big_size ? kMax32 : r.size));
    le::put32(cd, uint32_t(big_size ? kMax32 : r.uncompressed_size));
    le::put16(cd, uint16_t(r.name.size()));
    le::put16(cd, uint16_t(z64.size()));
    le::put16(cd, 0);  // comment length
    le::put16(cd, 0);  // disk number
    le::put16(cd, 0);  // internal attributes
    le::put32(cd, 0);  // external attributes
    le::put32(cd, uint32_t(std::min(r.header_offset, kMax32)));
    cd += r.name;
    cd += z64;
    // Flush in pieces: a directory of many records should not sit whole in memory twice.
    if (cd.size() >= (1u << 20)) {
      CKPTIO_RETURN_IF_ERROR(emit(cd.data(), cd.size()));
      cd.clear();
    }
  }
  CKPTIO_RETURN_IF_ERROR(emit(cd.data(), cd.size()));
  const uint64_t cd_size = offset_ - cd_offset;
  const uint64_t n = records_.size();

  // PyTorch always writes the ZIP64 end record and locator (miniz MZ_ZIP_FLAG_WRITE_ZIP64).
  const uint64_t z64_offset = offset_;
  std::string e;
  le::put32(e, 0x06064b50);
  le::put64(e, 44);      // size of the rest of this record
  le::put16(e, 0x031e);  // version made by (as miniz)
  le::put16(e, 0x002d);  // version needed: 4.5 (ZIP64)
  le::put32(e, 0);       // this disk
  le::put32(e, 0);       // disk with the central directory
  le::put64(e, n);
  le::put64(e, n);
  le::put64(e, cd_size);
  le::put64(e, cd_offset);
  le::put32(e, 0x07064b50);
  le::put32(e, 0);  // disk with the ZIP64 end record
  le::put64(e, z64_offset);
  le::put32(e, 1);  // total disks
  le::put32(e, 0x06054b50);
  le::put16(e, 0);
  le::put16(e, 0);
  le::put16(e, uint16_t(std::min<uint64_t>(n, 0xffff)));
  le::put16(e, uint16_t(std::min<uint64_t>(n, 0xffff)));
  le::put32(e, uint32_t(std::min(cd_size, kMax32)));
  le::put32(e, uint32_t(std::min(cd_offset, kMax32)));
  le::put16(e, 0);  // comment length
  return emit(e.data(), e.size());
}

}  // namespace ckptio
