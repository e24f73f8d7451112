// ZipWriter: PyTorch's exact layout (byte-identical to torch.save's container), 64-byte
// alignment of every record, Python's zipfile accepting the output (CRCs included), and the
// ZIP64 paths for records and offsets past 4 GiB.
#include "formats/zip/zip_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "formats/zip/zip_reader.h"
#include "tests/formats/zip_test_helpers.h"

namespace ckptio {
namespace {

using testing::CmdResult;
using testing::kPython;
using testing::pyzip_dir;
using testing::run_cmd;
using testing::split_lines;
using test_support::ScratchDir;

TEST(ZipLayout, MatchesPytorchPaddingFormula) {
  // The torch.save example: data.pkl of prefix "t_zip" at offset 0 gets 16 'Z' bytes.
  ZipLocalLayout l = zip_local_layout(0, 14, 100, 64);
  EXPECT_EQ(l.padding, 16);
  EXPECT_EQ(l.data_offset, 64u);
  EXPECT_EQ(l.zip64_extra_len, 0);

  const uint64_t k4g = 0xffffffffu;
  struct Case {
    uint64_t cursor, size;
    uint64_t extra;  // ZIP64 extra bytes the formula adds
  } cases[] = {
      {1000, 5, 0},           {k4g - 1, 5, 0},           {k4g, 5, 4 + 8},
      {1000, k4g - 1, 0},     {1000, k4g, 4 + 16},       {k4g + 77, k4g + 1, 4 + 16 + 8},
      {5ull << 32, 0, 4 + 8}, {123, 9ull << 32, 4 + 16},
  };
  for (const Case& c : cases) {
    for (uint64_t name_len : {1, 14, 63, 64, 65, 300}) {
      for (uint32_t align : {1u, 64u, 4096u}) {
        ZipLocalLayout z = zip_local_layout(c.cursor, name_len, c.size, align);
        const uint64_t start = c.cursor + 30 + name_len + 4 + c.extra;
        EXPECT_EQ(z.zip64_extra_len, c.extra) << c.cursor << " " << c.size;
        EXPECT_EQ(z.data_offset % align, 0u);
        EXPECT_EQ(z.data_offset, start + z.padding);
        EXPECT_LT(z.padding, align);
        EXPECT_EQ(z.zip64_size, c.size >= k4g);
        EXPECT_EQ(z.zip64_offset, c.cursor >= k4g);
      }
    }
  }
}

// Re-writing torch.save's own records in their order with ZipWriter reproduces the file
// byte for byte: headers, FB padding, descriptors, central directory, ZIP64 end records.
TEST(ZipWriter, ReproducesTorchSaveContainerByteForByte) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* name : {"tensor_zip.pt", "sd_zip.pt", "ckpt_zip.pt"}) {
    SCOPED_TRACE(name);
    const std::string original = testing::fixture(name);
    MemorySource src(original.data(), original.size(), name);
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok()) << zip.status().message();
    StringSink out;
    ZipWriter w(out, zip->prefix());
    bool saw_empty = false;
    for (const ZipEntry& e : zip->entries()) {
      Result<std::string> bytes = zip->read(e);
      ASSERT_TRUE(bytes.ok()) << bytes.status().message();
      saw_empty |= bytes->empty();
      ASSERT_TRUE(
          w.add(e.name.substr(zip->prefix().size() + 1), bytes->data(), bytes->size()).ok());
    }
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(w.bytes_written(), original.size());
    EXPECT_TRUE(out.out == original)
        << "first difference at byte "
        << std::mismatch(out.out.begin(), out.out.end(), original.begin(), original.end()).first -
               out.out.begin();
    if (std::string(name) == "sd_zip.pt") {
      EXPECT_TRUE(saw_empty) << "no zero-length record";
    }
  }
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng());
  return s;
}

// Python's zipfile reads what we write (testzip checks every CRC), every record's data is
// aligned, and our reader gets the same bytes back.
TEST(ZipWriter, PythonZipfileAcceptsOutput) {
  if (!testing::have_python()) GTEST_SKIP() << "no " CKPTIO_TEST_PYTHON;
  ScratchDir dir("zip");
  std::map<std::string, std::string> records;
  std::vector<std::string> order;
  for (size_t n : {0, 1, 2, 63, 64, 65, 1000, 100000, 0, 3}) {
    std::string name = "rec/" + std::to_string(order.size()) + std::string(order.size(), 'n');
    records[name] = random_bytes(n, uint32_t(order.size()));
    order.push_back(name);
  }
  std::vector<std::string> files;
  for (uint32_t align : {64u, 4096u, 1u}) {
    StringSink out;
    ZipWriter w(out, "my.archive", align);
    for (const std::string& name : order) {
      const std::string& data = records[name];
      if (data.size() > 1000) {  // streamed in uneven pieces
        ASSERT_TRUE(w.begin(name, data.size()).ok());
        for (size_t done = 0; done < data.size();) {
          size_t k = std::min<size_t>(7777, data.size() - done);
          ASSERT_TRUE(w.write(data.data() + done, k).ok());
          done += k;
        }
        ASSERT_TRUE(w.end().ok());
      } else {
        ASSERT_TRUE(w.add(name, data.data(), data.size()).ok());
      }
    }
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(w.bytes_written(), out.out.size());

    MemorySource src(out.out.data(), out.out.size(), "ours.zip");
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok()) << zip.status().message();
    EXPECT_EQ(zip->prefix(), "my.archive");
    ASSERT_EQ(zip->entries().size(), order.size());
    for (const std::string& name : order) {
      const ZipEntry* e = zip->find(name);
      ASSERT_NE(e, nullptr) << name;
      EXPECT_EQ(e->data_offset % align, 0u) << name;
      EXPECT_TRUE(zip->verify_crc(*e).ok());
      Result<std::string> got = zip->read(*e);
      ASSERT_TRUE(got.ok());
      EXPECT_TRUE(*got == records[name]) << name;
    }
    files.push_back(dir.file("align" + std::to_string(align) + ".zip"));
    testing::write_file(files.back(), out.out);
  }

  std::string cmd = std::string(kPython) + " " + pyzip_dir() + "/inspect_ckpt.py --no-torch";
  for (const std::string& f : files) cmd += " " + f;
  CmdResult r = run_cmd(cmd);
  ASSERT_EQ(r.status, 0) << r.out;
  uint32_t align = 0;
  size_t recs = 0;
  for (const std::string& line : split_lines(r.out)) {
    if (line.rfind("FILE|", 0) == 0) {
      align = line.find("align64") != std::string::npos     ? 64
              : line.find("align4096") != std::string::npos ? 4096
                                                            : 1;
    } else if (line.rfind("ZIP|", 0) == 0) {
      EXPECT_EQ(line, "ZIP|testzip=None");
    } else if (line.rfind("REC|", 0) == 0) {
      // REC|name|data_offset|size|method|crc
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string part; std::getline(ss, part, '|');) f.push_back(part);
      ASSERT_EQ(f.size(), 6u) << line;
      const std::string name = f[1].substr(std::string("my.archive/").size());
      EXPECT_EQ(std::stoull(f[2]) % align, 0u) << line;
      EXPECT_EQ(std::stoull(f[3]), records[name].size()) << line;
      EXPECT_EQ(f[4], "0") << line;
      ++recs;
    }
  }
  EXPECT_EQ(recs, order.size() * files.size());
}

// A sink that keeps the bytes and notes every thread that wrote to it.
struct ThreadNotingSink final : ByteSink {
  Status write(const void* data, uint64_t n) override {
    out.append(static_cast<const char*>(data), n);
    threads.insert(std::this_thread::get_id());
    return Status::Ok();
  }
  std::string out;
  std::set<std::thread::id> threads;
};

TEST(ZipWriter, LargeWritesGetTheSameCrcAsSmallOnes) {
  // Writes of 256 KiB and more are checksummed on a second thread and combined; the record's
  // CRC must be the CRC of its bytes whatever the mix of large and small writes, and every
  // write reaches the sink from the calling thread.
  const std::string data = random_bytes(13u << 20, 7);
  const uint32_t want = crc32_update(0, data.data(), data.size());
  const size_t k = 256u << 10;
  for (const std::vector<size_t>& pieces :
       {std::vector<size_t>{data.size()},
        {100, 5u << 20, 1000, data.size() - (5u << 20) - 1100},
        {k - 1, k, k + 1, 4u << 20, data.size() - (4u << 20) - 3 * k}}) {
    ThreadNotingSink out;
    ZipWriter w(out, "archive");
    ASSERT_TRUE(w.begin("data/0", data.size()).ok());
    size_t at = 0;
    for (size_t n : pieces) {
      ASSERT_TRUE(w.write(data.data() + at, n).ok());
      at += n;
    }
    ASSERT_TRUE(w.end().ok());
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(out.threads, std::set<std::thread::id>{std::this_thread::get_id()});
    MemorySource src(out.out.data(), out.out.size(), "big.zip");
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok());
    const ZipEntry* e = zip->find("data/0");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->crc32, want) << pieces.size() << " pieces";
    EXPECT_TRUE(zip->verify_crc(*e).ok());
  }
}

// Many records of about the parallel threshold, as a bf16 transformer's: each record's CRC
// is its own, with the one background thread reused across records.
TEST(ZipWriter, ManyMidSizedRecordsEachGetTheirOwnCrc) {
  ThreadNotingSink out;
  ZipWriter w(out, "archive");
  std::vector<std::string> records;
  for (int i = 0; i < 40; ++i) {
    records.push_back(random_bytes((192u << 10) + i * (16u << 10), 100 + i));
    ASSERT_TRUE(
        w.add("data/" + std::to_string(i), records.back().data(), records.back().size()).ok());
  }
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(out.threads.size(), 1u);
  MemorySource src(out.out.data(), out.out.size(), "many.zip");
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok());
  for (int i = 0; i < 40; ++i) {
    const ZipEntry* e = zip->find("data/" + std::to_string(i));
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->crc32, crc32_update(0, records[i].data(), records[i].size())) << i;
  }
}

TEST(ZipWriter, EncodedRecordsCarryMethodSizeAndCrc) {
  // add_encoded() (torch-zip-zstd's method-93 records): the directory and the data
  // descriptor say the method, the decoded size and the CRC given, the data is the encoded
  // bytes, aligned like any record, and stored records around it are unaffected.
  StringSink out;
  ZipWriter w(out, "archive");
  const std::string before = random_bytes(100, 1), encoded = random_bytes(777, 2);
  ASSERT_TRUE(w.add("a", before.data(), before.size()).ok());
  ASSERT_TRUE(w.add_encoded("data/0", encoded.data(), encoded.size(),
                            ZipWriter::Coding{93, 123456, 0xdeadbeef})
                  .ok());
  ASSERT_TRUE(w.add("b", before.data(), before.size()).ok());
  ASSERT_TRUE(w.finish().ok());
  MemorySource src(out.out.data(), out.out.size(), "enc.zip");
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok()) << zip.status().message();
  const ZipEntry* e = zip->find("data/0");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->method, 93);
  EXPECT_EQ(e->compressed_size, encoded.size());
  EXPECT_EQ(e->uncompressed_size, 123456u);
  EXPECT_EQ(e->crc32, 0xdeadbeefu);
  EXPECT_EQ(e->data_offset % 64, 0u);
  EXPECT_EQ(out.out.substr(e->data_offset, encoded.size()), encoded);
  // Local header: version needed 63 (zstd), method 93.
  const auto* h = reinterpret_cast<const uint8_t*>(out.out.data()) + e->local_header_offset;
  EXPECT_EQ(h[4] | h[5] << 8, 63);
  EXPECT_EQ(h[8] | h[9] << 8, 93);
  // The data descriptor after the data: signature, CRC, compressed and uncompressed sizes.
  const auto* d = reinterpret_cast<const uint8_t*>(out.out.data()) + e->data_offset + 777;
  auto u32 = [](const uint8_t* p) {
    return uint32_t(p[0] | p[1] << 8 | p[2] << 16) | uint32_t(p[3]) << 24;
  };
  EXPECT_EQ(u32(d), 0x08074b50u);
  EXPECT_EQ(u32(d + 4), 0xdeadbeefu);
  EXPECT_EQ(u32(d + 8), 777u);
  EXPECT_EQ(u32(d + 12), 123456u);
  for (const char* name : {"a", "b"}) {
    const ZipEntry* s = zip->find(name);
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(zip->verify_crc(*s).ok()) << name;
    EXPECT_EQ(*zip->read(*s), before);
  }
  // A stored record cannot claim two sizes.
  StringSink out2;
  ZipWriter w2(out2, "archive");
  EXPECT_FALSE(
      w2.add_encoded("x", encoded.data(), encoded.size(), ZipWriter::Coding{0, 5, 0}).ok());
}

TEST(ZipWriter, MisuseIsReported) {
  StringSink out;
  ZipWriter w(out, "p");
  ASSERT_TRUE(w.begin("a", 4).ok());
  EXPECT_EQ(w.write("12345", 5).code(), Code::kInternal);  // more than declared
  EXPECT_EQ(w.finish().code(), Code::kInternal);           // sticky

  StringSink out2;
  ZipWriter w2(out2, "p");
  ASSERT_TRUE(w2.begin("a", 4).ok());
  ASSERT_TRUE(w2.write("12", 2).ok());
  EXPECT_EQ(w2.end().code(), Code::kInternal);  // fewer than declared

  StringSink out3;
  ZipWriter w3(out3, "p");
  ASSERT_TRUE(w3.add("a", "x", 1).ok());
  ASSERT_TRUE(w3.finish().ok());
  EXPECT_EQ(w3.add("b", "y", 1).code(), Code::kInternal);  // after finish

  StringSink out4;
  ZipWriter w4(out4, "p", 0);
  EXPECT_EQ(w4.add("a", "x", 1).code(), Code::kInvalidArgument);
}

// Keeps the headers a writer emits and only counts the (zero) payload chunks, so a > 4 GiB
// archive can be built, parsed and handed to Python without writing 4 GiB anywhere.
class SparseSink final : public ByteSink {
 public:
  explicit SparseSink(const void* skip) : skip_(skip) {}
  Status write(const void* data, uint64_t n) override {
    if (data != skip_ && n) segments[offset] = std::string(static_cast<const char*>(data), n);
    offset += n;
    return Status::Ok();
  }
  std::map<uint64_t, std::string> segments;  // everything else is zero
  uint64_t offset = 0;

 private:
  const void* skip_;
};

class SparseSource final : public ByteSource {
 public:
  SparseSource(const SparseSink& s, std::string name)
      : segments_(s.segments), size_(s.offset), name_(std::move(name)) {}
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override {
    if (offset > size_ || n > size_ - offset) return Status(Code::kCorrupt, name_ + ": truncated");
    uint8_t* out = static_cast<uint8_t*>(dst);
    std::memset(out, 0, n);
    for (const auto& [at, bytes] : segments_) {
      const uint64_t lo = std::max(at, offset), hi = std::min(at + bytes.size(), offset + n);
      if (lo < hi) std::memcpy(out + (lo - offset), bytes.data() + (lo - at), hi - lo);
    }
    return Status::Ok();
  }
  const std::string& name() const override { return name_; }

 private:
  std::map<uint64_t, std::string> segments_;
  uint64_t size_;
  std::string name_;
};

TEST(ZipWriter, Zip64RecordAndOffsetPast4GiB) {
  const auto t0 = std::chrono::steady_clock::now();
  static const std::string zeros(16 << 20, '\0');
  const uint64_t big = (1ull << 32) + 12345;  // > 0xFFFFFFFF
  SparseSink sink(zeros.data());
  ZipWriter w(sink, "big");
  ASSERT_TRUE(w.add("small", "head", 4).ok());
  ASSERT_TRUE(w.begin("data/0", big).ok());
  for (uint64_t done = 0; done < big;) {
    const uint64_t k = std::min<uint64_t>(zeros.size(), big - done);
    ASSERT_TRUE(w.write(zeros.data(), k).ok());
    done += k;
  }
  ASSERT_TRUE(w.end().ok());
  ASSERT_TRUE(w.add("after", "tail!", 5).ok());  // local header offset > 4 GiB
  ASSERT_TRUE(w.add("empty", nullptr, 0).ok());
  ASSERT_TRUE(w.finish().ok());

  SparseSource src(sink, "big.zip");
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok()) << zip.status().message();
  const ZipEntry* e = zip->find("data/0");
  const ZipEntry* after = zip->find("after");
  ASSERT_TRUE(e && after);
  EXPECT_EQ(e->uncompressed_size, big);
  EXPECT_EQ(e->compressed_size, big);
  EXPECT_EQ(e->data_offset % 64, 0u);
  // Data, then a 24-byte (ZIP64) data descriptor, then the next header.
  EXPECT_EQ(after->local_header_offset, e->data_offset + big + 24);
  EXPECT_GT(after->local_header_offset, 0xffffffffu);
  EXPECT_EQ(after->data_offset % 64, 0u);
  Result<std::string> tail = zip->read(*after);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, "tail!");
  EXPECT_TRUE(zip->verify_crc(*after).ok());
  // Local ZIP64 extras as PyTorch writes them: [usize, 0] for the big record, [offset] after.
  std::string lh(64, '\0');
  ASSERT_TRUE(src.read_at(e->local_header_offset, lh.data(), 64).ok());
  const uint8_t* p = reinterpret_cast<const uint8_t*>(lh.data()) + 30 + 10;  // "big/data/0"
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[2], 16);
  uint64_t usize = 0, csize = 1;
  std::memcpy(&usize, p + 4, 8);
  std::memcpy(&csize, p + 12, 8);
  EXPECT_EQ(usize, big);
  EXPECT_EQ(csize, 0u);
  ASSERT_TRUE(src.read_at(after->local_header_offset, lh.data(), 64).ok());
  p = reinterpret_cast<const uint8_t*>(lh.data()) + 30 + 9;  // "big/after"
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[2], 8);
  uint64_t off = 0;
  std::memcpy(&off, p + 4, 8);
  EXPECT_EQ(off, after->local_header_offset);

  // Python's zipfile parses the ZIP64 directory of the same bytes as a sparse file.
  if (testing::have_python()) {
    ScratchDir dir("zip");
    const std::string path = dir.file("big.zip");
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    bool sparse_ok = ::ftruncate(fd, off_t(sink.offset)) == 0;
    for (const auto& [at, bytes] : sink.segments)
      sparse_ok =
          sparse_ok && ::pwrite(fd, bytes.data(), bytes.size(), off_t(at)) == ssize_t(bytes.size());
    ::close(fd);
    if (sparse_ok) {
      CmdResult r = run_cmd(std::string(kPython) + " " + pyzip_dir() +
                            "/inspect_ckpt.py --no-torch --no-testzip " + path);
      ASSERT_EQ(r.status, 0) << r.out;
      EXPECT_NE(r.out.find("ZIP|testzip=small-ok"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("REC|big/data/0|" + std::to_string(e->data_offset) + "|" +
                           std::to_string(big) + "|0|"),
                std::string::npos)
          << r.out;
      EXPECT_NE(r.out.find("REC|big/after|" + std::to_string(after->data_offset) + "|5|0|"),
                std::string::npos)
          << r.out;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 10.0);
}

}  // namespace
}  // namespace ckptio
