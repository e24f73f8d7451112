// ZipReader on real torch.save archives (and the same records re-zipped by Python's zipfile,
// reordered or deflated), and on hostile variants of them: truncation at every length,
// lying end records / central directory / local header offsets, overlapping and duplicate
// records. Every failure must be a clean status, never a crash or a huge allocation.
#include "formats/zip/zip_reader.h"

#include <cstring>
#include <random>

#include "formats/zip/torch_zip.h"
#include "tests/formats/zip_test_helpers.h"

namespace ckptio {
namespace {

using testing::CmdResult;
using testing::fixture;
using testing::kPython;
using testing::pyzip_dir;
using testing::run_cmd;
using testing::split_lines;
using testing::UnmappedSource;

void put32(std::string& s, size_t at, uint32_t v) { std::memcpy(&s[at], &v, 4); }
void put64(std::string& s, size_t at, uint64_t v) { std::memcpy(&s[at], &v, 8); }
uint32_t get32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, &s[at], 4);
  return v;
}

Status open_status(const std::string& bytes, bool mapped = true) {
  if (mapped) {
    MemorySource src(bytes.data(), bytes.size(), "bad.pt");
    return ZipReader::open(src).status();
  }
  UnmappedSource src(bytes, "bad.pt");
  return ZipReader::open(src).status();
}

// Offset of the central directory entry for `name` (PK\1\2 ... name).
size_t cd_entry(const std::string& zip, const std::string& name) {
  size_t pos = 0;
  while ((pos = zip.find("PK\x01\x02", pos)) != std::string::npos) {
    uint16_t nlen;
    std::memcpy(&nlen, &zip[pos + 28], 2);
    if (zip.compare(pos + 46, nlen, name) == 0 && nlen == name.size()) return pos;
    pos += 4;
  }
  ADD_FAILURE() << "no central directory entry " << name;
  return 0;
}

TEST(ZipReader, MatchesPythonZipfileOnTorchFiles) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::vector<std::string> names = {"sd_zip.pt", "ckpt_zip.pt", "sd_reversed.pt",
                                          "sd_deflated.pt"};
  std::string cmd = std::string(kPython) + " " + pyzip_dir() + "/inspect_ckpt.py --no-torch";
  for (const std::string& n : names) cmd += " " + testing::torch_fixtures() + "/" + n;
  CmdResult r = run_cmd(cmd);
  ASSERT_EQ(r.status, 0);
  // Python's view: name -> "data_offset|size|method|crc" per file.
  std::map<std::string, std::map<std::string, std::string>> py;
  std::string file;
  for (const std::string& line : split_lines(r.out)) {
    if (line.rfind("FILE|", 0) == 0) file = line.substr(line.rfind('/') + 1);
    if (line.rfind("REC|", 0) != 0) continue;
    const size_t bar = line.find('|', 4);
    py[file][line.substr(4, bar - 4)] = line.substr(bar + 1);
  }
  for (const std::string& n : names) {
    SCOPED_TRACE(n);
    const std::string bytes = fixture(n);
    for (bool mapped : {true, false}) {
      MemorySource mem(bytes.data(), bytes.size(), n);
      UnmappedSource unmapped(bytes, n);
      const ByteSource& src = mapped ? static_cast<const ByteSource&>(mem) : unmapped;
      Result<ZipReader> zip = ZipReader::open(src);
      ASSERT_TRUE(zip.ok()) << zip.status().message();
      EXPECT_EQ(zip->prefix(), n == "ckpt_zip.pt" ? "ckpt_zip" : "sd_zip");
      ASSERT_EQ(zip->entries().size(), py[n].size());
      for (const ZipEntry& e : zip->entries()) {
        char crc[16];
        snprintf(crc, sizeof crc, "%08x", e.crc32);
        EXPECT_EQ(py[n][e.name], std::to_string(e.data_offset) + "|" +
                                     std::to_string(e.uncompressed_size) + "|" +
                                     std::to_string(e.method) + "|" + crc)
            << e.name;
        if (n == "sd_zip.pt") {
          EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
        }
        EXPECT_TRUE(zip->verify_crc(e).ok()) << e.name;
      }
    }
  }
  // Same record contents whatever the order or compression.
  const std::string orig = fixture("sd_zip.pt");
  MemorySource osrc(orig.data(), orig.size(), "sd_zip.pt");
  Result<ZipReader> ozip = ZipReader::open(osrc);
  ASSERT_TRUE(ozip.ok());
  for (const char* other : {"sd_reversed.pt", "sd_deflated.pt"}) {
    const std::string bytes = fixture(other);
    MemorySource src(bytes.data(), bytes.size(), other);
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok());
    for (const ZipEntry& e : ozip->entries()) {
      const ZipEntry* o = zip->find(e.name.substr(7));
      ASSERT_NE(o, nullptr) << e.name;
      EXPECT_EQ(*zip->read(*o), *ozip->read(e)) << other << " " << e.name;
    }
  }
  ASSERT_NE(ozip->find("data.pkl"), nullptr);
  EXPECT_EQ(ozip->find("nope"), nullptr);
}

TEST(ZipReader, EveryTruncationIsCleanCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* name : {"tensor_zip.pt", "sd_zip.pt", "sd_deflated.pt"}) {
    const std::string bytes = fixture(name);
    for (size_t n = 0; n < bytes.size(); ++n) {
      const std::string cut = bytes.substr(0, n);
      Status st = open_status(cut, n % 3 != 0);
      ASSERT_EQ(st.code(), Code::kCorrupt) << name << " cut at " << n << ": " << st.message();
      ASSERT_NE(st.message().find("bad.pt"), std::string::npos);
    }
  }
}

// Random byte flips anywhere in the file: whatever happens, no crash, and every record the
// reader accepts can be read within the file.
TEST(ZipReader, RandomCorruptionNeverCrashes) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_deflated.pt");
  std::mt19937 rng(1);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = orig;
    for (int k = 0; k < 1 + iter % 4; ++k) bytes[rng() % bytes.size()] = char(rng());
    MemorySource src(bytes.data(), bytes.size(), "fuzz.pt");
    Result<ZipReader> zip = ZipReader::open(src);
    if (!zip.ok()) continue;
    for (const ZipEntry& e : zip->entries()) {
      Result<std::string> r = zip->read(e, 1 << 20);
      (void)zip->verify_crc(e);
      if (r.ok()) {
        EXPECT_EQ(r->size(), e.uncompressed_size);
      }
    }
  }
}

TEST(ZipReader, LyingEndRecordsAreCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_zip.pt");
  const size_t eocd = orig.rfind("PK\x05\x06");
  const size_t z64 = orig.rfind("PK\x06\x06");
  const size_t loc = orig.rfind("PK\x06\x07");
  ASSERT_TRUE(eocd != std::string::npos && z64 != std::string::npos && loc != std::string::npos);
  const uint64_t cd_offset = get32(orig, eocd + 16);

  struct Case {
    const char* what;
    size_t at;
    uint64_t value;
    bool wide;
  } cases[] = {
      {"cd offset +1", z64 + 48, cd_offset + 1, true},
      {"cd offset -1", z64 + 48, cd_offset - 1, true},
      {"cd offset huge", z64 + 48, ~0ull - 10, true},
      {"cd size huge", z64 + 40, ~0ull - 100, true},
      {"cd size short", z64 + 40, 40, true},
      {"entries huge", z64 + 32, 1ull << 40, true},
      {"entries too many", z64 + 24, 0, true},  // on-disk count != total
      {"locator past end", loc + 8, orig.size(), true},
      {"locator wrong", loc + 8, 0, true},
      {"zero entries", z64 + 32, 0, true},
  };
  for (const Case& c : cases) {
    std::string bytes = orig;
    if (c.wide) put64(bytes, c.at, c.value);
    if (std::string(c.what) == "zero entries") put64(bytes, z64 + 24, 0);
    Status st = open_status(bytes);
    EXPECT_FALSE(st.ok()) << c.what;
    EXPECT_TRUE(st.code() == Code::kCorrupt || st.code() == Code::kUnsupported)
        << c.what << ": " << st.message();
  }

  // A plain (non-ZIP64) zip from Python's zipfile: lie in the classic end record.
  const std::string py = fixture("sd_reversed.pt");
  ASSERT_EQ(py.find("PK\x06\x06"), std::string::npos);
  const size_t pe = py.rfind("PK\x05\x06");
  for (auto [at, value] : std::vector<std::pair<size_t, uint32_t>>{
           {pe + 16, 0xffffffffu}, {pe + 16, get32(py, pe + 16) + 3}, {pe + 12, 0x7fffffffu}}) {
    std::string bytes = py;
    put32(bytes, at, value);
    EXPECT_EQ(open_status(bytes).code(), Code::kCorrupt) << at;
  }
  // Comment length longer than the file: no end record accepted.
  std::string bytes = py;
  bytes[pe + 20] = char(0xff);
  EXPECT_EQ(open_status(bytes).code(), Code::kCorrupt);
  // Garbage and tiny inputs.
  EXPECT_EQ(open_status("").code(), Code::kCorrupt);
  EXPECT_EQ(open_status("PK\x03\x04").code(), Code::kCorrupt);
  EXPECT_EQ(open_status(std::string(100000, 'x')).code(), Code::kCorrupt);
}

TEST(ZipReader, LyingEntriesAreCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_zip.pt");
  MemorySource osrc(orig.data(), orig.size(), "sd_zip.pt");
  Result<ZipReader> ozip = ZipReader::open(osrc);
  ASSERT_TRUE(ozip.ok());
  const ZipEntry& pkl = *ozip->find("data.pkl");
  const ZipEntry& d0 = *ozip->find("data/0");
  const ZipEntry& d1 = *ozip->find("data/1");
  const size_t c0 = cd_entry(orig, "sd_zip/data/0");
  const size_t c1 = cd_entry(orig, "sd_zip/data/1");

  auto expect_corrupt = [&](const std::string& bytes, const char* what, const char* needle) {
    Status st = open_status(bytes);
    EXPECT_EQ(st.code(), Code::kCorrupt) << what << ": " << st.message();
    EXPECT_NE(st.message().find(needle), std::string::npos) << what << ": " << st.message();
    EXPECT_EQ(open_status(bytes, false).code(), st.code()) << what;
  };

  std::string b = orig;
  put32(b, c1 + 42, uint32_t(d0.local_header_offset));  // points at data/0's header
  expect_corrupt(b, "offset to another header", "names a different record");

  b = orig;
  put32(b, c1 + 42, uint32_t(orig.size() - 10));
  expect_corrupt(b, "offset past the data", "outside the data area");

  b = orig;
  put32(b, c1 + 42, uint32_t(d1.local_header_offset + 1));
  expect_corrupt(b, "offset inside a header", "no local header");

  // Sizes that run into the next record or into the central directory.
  b = orig;
  const uint32_t longer = uint32_t(d1.local_header_offset - d0.data_offset + 1);
  put32(b, c0 + 20, longer);
  put32(b, c0 + 24, longer);
  expect_corrupt(b, "overlap", "overlap");

  b = orig;
  const uint32_t huge = uint32_t(orig.size());
  put32(b, c0 + 20, huge);
  put32(b, c0 + 24, huge);
  expect_corrupt(b, "into the central directory", "central directory");

  b = orig;
  put32(b, c0 + 24, uint32_t(d0.uncompressed_size + 1));
  expect_corrupt(b, "stored sizes differ", "compressed size");

  // Saturated sizes without the ZIP64 extra that must then carry them.
  b = orig;
  put32(b, c0 + 20, 0xffffffffu);
  put32(b, c0 + 24, 0xffffffffu);
  expect_corrupt(b, "missing zip64 extra", "ZIP64");

  // Duplicate names: data/1 renamed data/0 in the directory.
  b = orig;
  b[c1 + 46 + std::string("sd_zip/data/").size()] = '0';
  expect_corrupt(b, "duplicate", "twice");

  // First record outside any directory: no archive prefix.
  b = orig;
  for (size_t pos = 0; (pos = b.find("sd_zip/data.pkl", pos)) != std::string::npos;)
    b[pos + 6] = '_';
  expect_corrupt(b, "no prefix", "not in a subdirectory");

  // Bad central directory signature.
  b = orig;
  b[c0 + 1] = 'X';
  expect_corrupt(b, "cd signature", "signature");

  // Encrypted records are refused.
  b = orig;
  b[c0 + 8] |= 1;
  EXPECT_EQ(open_status(b).code(), Code::kUnsupported);

  // An unknown compression method opens, but reading names the record and method.
  b = orig;
  b[c0 + 10] = 12;  // bzip2
  MemorySource src(b.data(), b.size(), "m.pt");
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok()) << zip.status().message();
  Status st = zip->read(*zip->find("data/0")).status();
  EXPECT_EQ(st.code(), Code::kUnsupported);
  EXPECT_NE(st.message().find("'sd_zip/data/0'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("method 12"), std::string::npos) << st.message();

  // Size limit on read.
  EXPECT_EQ(ozip->read(pkl, 10).status().code(), Code::kLimit);
}

TEST(ZipReader, CrcChecks) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* name : {"sd_zip.pt", "sd_deflated.pt"}) {
    SCOPED_TRACE(name);
    const std::string orig = fixture(name);
    MemorySource osrc(orig.data(), orig.size(), name);
    Result<ZipReader> ozip = ZipReader::open(osrc);
    ASSERT_TRUE(ozip.ok());
    const ZipEntry e = *ozip->find("data.pkl");
    std::string b = orig;
    b[e.data_offset + 5] ^= 0x40;
    for (bool mapped : {true, false}) {
      MemorySource mem(b.data(), b.size(), name);
      UnmappedSource unmapped(b, name);
      const ByteSource& src = mapped ? static_cast<const ByteSource&>(mem) : unmapped;
      Result<ZipReader> zip = ZipReader::open(src);
      ASSERT_TRUE(zip.ok());
      Status st = zip->verify_crc(*zip->find("data.pkl"));
      EXPECT_EQ(st.code(), Code::kCorrupt);
      EXPECT_NE(st.message().find("data.pkl"), std::string::npos) << st.message();
    }
    // CRC 0 means "not computed" (2.x option): accepted.
    std::string z = b;
    put32(z, cd_entry(z, e.name) + 16, 0);
    MemorySource src(z.data(), z.size(), name);
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok());
    EXPECT_TRUE(zip->verify_crc(*zip->find("data.pkl")).ok());
  }
  EXPECT_EQ(crc32_update(0, "123456789", 9), 0xcbf43926u);  // the CRC-32 check value
  EXPECT_EQ(crc32_update(crc32_update(0, "12345", 5), "6789", 4), 0xcbf43926u);
}

// A deflated storage record is checked against its CRC-32 when it is inflated (a corrupt
// stream can still inflate to the right length): a mismatch is refused, naming the offset.
TEST(ZipReader, InflatedStorageIsCheckedAgainstItsCrc) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  std::string b = fixture("sd_deflated.pt");
  MemorySource osrc(b.data(), b.size(), "d.pt");
  Result<DecodedFile> of = read_torch_zip(osrc, {});
  ASSERT_TRUE(of.ok()) << of.status().message();
  ASSERT_FALSE(of->extents.empty());
  const StorageExtent x = of->extents[0];
  const DType dtype = of->tree.storages[0].dtype;
  ASSERT_EQ(x.method, 8);
  std::vector<uint8_t> out(x.length);
  ASSERT_TRUE(read_storage_bytes(osrc, x, dtype, out.data()).ok());

  Result<ZipReader> zip = ZipReader::open(osrc);
  ASSERT_TRUE(zip.ok());
  std::string name;
  for (const ZipEntry& e : zip->entries())
    if (e.data_offset == x.offset) name = e.name;
  ASSERT_FALSE(name.empty());
  const size_t c = cd_entry(b, name);
  uint32_t crc;
  std::memcpy(&crc, &b[c + 16], 4);
  put32(b, c + 16, crc ^ 0x10u);
  MemorySource src(b.data(), b.size(), "d.pt");
  Result<DecodedFile> f = read_torch_zip(src, {});
  ASSERT_TRUE(f.ok()) << "without verify the directory's CRCs are not read at open";
  Status st = read_storage_bytes(src, f->extents[0], dtype, out.data());
  EXPECT_EQ(st.code(), Code::kCorrupt) << st.message();
  EXPECT_NE(st.message().find("CRC32"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("deflated record '" + name + "'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("d.pt"), std::string::npos) << st.message();
  // CRC 0 (torch 2.x with set_crc32_options(False)) means not computed: accepted.
  put32(b, c + 16, 0);
  MemorySource zero(b.data(), b.size(), "d.pt");
  Result<DecodedFile> z = read_torch_zip(zero, {});
  ASSERT_TRUE(z.ok()) << z.status().message();
  EXPECT_TRUE(read_storage_bytes(zero, z->extents[0], dtype, out.data()).ok());
}

TEST(ZipReader, CorruptDeflateStreamIsCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_deflated.pt");
  MemorySource osrc(orig.data(), orig.size(), "d.pt");
  Result<ZipReader> ozip = ZipReader::open(osrc);
  ASSERT_TRUE(ozip.ok());
  const ZipEntry e = *ozip->find("data.pkl");
  ASSERT_EQ(e.method, 8);
  int corrupt = 0;
  for (uint64_t i = 0; i < e.compressed_size; ++i) {
    std::string b = orig;
    b[e.data_offset + i] ^= 0xff;
    MemorySource src(b.data(), b.size(), "d.pt");
    Result<ZipReader> zip = ZipReader::open(src);
    ASSERT_TRUE(zip.ok());
    Result<std::string> r = zip->read(*zip->find("data.pkl"));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().message();
      ++corrupt;
    } else {
      EXPECT_EQ(r->size(), e.uncompressed_size);
    }
  }
  EXPECT_GT(corrupt, 0);
  // A size claim far beyond what deflate can expand to is refused before allocating.
  std::string b = orig;
  const size_t c = cd_entry(b, e.name);
  put32(b, c + 24, 0xfffffff0u);
  MemorySource src(b.data(), b.size(), "d.pt");
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ(zip->read(*zip->find("data.pkl"), ~0ull).status().code(), Code::kCorrupt);
}

}  // namespace
}  // namespace ckptio
