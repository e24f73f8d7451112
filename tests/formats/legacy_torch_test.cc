// The legacy torch.save stream against real PyTorch: files written with
// _use_new_zipfile_serialization=False (protocols 1, 2 and 4; a pickle larger than the first
// read window), hostile variants (truncation at every length, bad magic, wrong protocol
// version, wrong counts, unknown keys, tar), and our output loaded by torch.load.
#include <cstring>
#include <vector>

#include "formats/legacy/torch_legacy.h"
#include "tests/formats/zip_test_helpers.h"

namespace ckptio {
namespace {

using testing::decoded_lines;
using testing::fixture;
using testing::fixture_lines;
using testing::UnmappedSource;

Result<DecodedFile> read_bytes(const std::string& bytes, const std::string& name) {
  MemorySource src(bytes.data(), bytes.size(), name);
  return read_torch_legacy(src, {});
}

void expect_error(const Result<DecodedFile>& r, Code code, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

bool looks(const std::string& head) {
  return looks_like_torch_legacy(reinterpret_cast<const uint8_t*>(head.data()), head.size());
}

TEST(TorchLegacy, ReadsRealTorchSaveFiles) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::pair<const char*, const char*> cases[] = {
      {"tensor_legacy.pt", "tensor.txt"},    {"sd_legacy.pt", "sd.txt"},
      {"ckpt_legacy.pt", "ckpt.txt"},        {"sd_legacy_p4.pt", "sd.txt"},
      {"tensor_legacy_p1.pt", "tensor.txt"}, {"bigpickle_legacy.pt", "bigpickle.txt"},
  };
  for (const auto& [file, txt] : cases) {
    SCOPED_TRACE(file);
    const std::string bytes = fixture(file);
    for (bool mapped : {true, false}) {
      MemorySource mem(bytes.data(), bytes.size(), file);
      UnmappedSource unmapped(bytes, file);
      const ByteSource& src = mapped ? static_cast<const ByteSource&>(mem) : unmapped;
      Result<DecodedFile> f = read_torch_legacy(src, {});
      ASSERT_TRUE(f.ok()) << f.status().message();
      ASSERT_EQ(f->extents.size(), f->tree.storages.size());
      for (const StorageExtent& x : f->extents) {
        EXPECT_TRUE(x.plain);
        EXPECT_FALSE(x.byteswap);
      }
      EXPECT_EQ(decoded_lines(*f, src), fixture_lines(txt));
    }
  }
}

TEST(TorchLegacy, Detection) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* file :
       {"tensor_legacy.pt", "sd_legacy_p4.pt", "tensor_legacy_p1.pt", "bigpickle_legacy.pt"}) {
    const std::string head = fixture(file).substr(0, 64);
    EXPECT_TRUE(looks(head)) << file;
    EXPECT_TRUE(looks(head.substr(0, 8))) << file;  // a short head still matches
  }
  EXPECT_FALSE(looks(fixture("tensor_zip.pt").substr(0, 64)));
  EXPECT_FALSE(looks(fixture("ancient.tar").substr(0, 64)));
  EXPECT_FALSE(looks(std::string("\x80\x02K\x05.", 5)));  // a pickle, not torch's magic
  EXPECT_FALSE(looks("L123L\n."));
  EXPECT_FALSE(looks(""));
}

TEST(TorchLegacy, EveryTruncationIsCleanCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* name : {"tensor_legacy.pt", "sd_legacy.pt"}) {
    const std::string bytes = fixture(name);
    for (size_t n = 0; n < bytes.size(); ++n) {
      const std::string cut = bytes.substr(0, n);
      Result<DecodedFile> r = read_bytes(cut, name);
      ASSERT_FALSE(r.ok()) << n;
      ASSERT_EQ(r.status().code(), Code::kCorrupt) << n << ": " << r.status().message();
      ASSERT_NE(r.status().message().find(name), std::string::npos) << r.status().message();
      if (n % 7 == 0) {  // the windowed (unmapped) path too
        UnmappedSource src(cut, name);
        ASSERT_EQ(read_torch_legacy(src, {}).status().code(), Code::kCorrupt) << n;
      }
    }
  }
}

TEST(TorchLegacy, HeaderPicklesAreChecked) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("tensor_legacy.pt");
  ASSERT_EQ(orig.substr(15, 6), std::string("\x80\x02M\xe9\x03.", 6));  // BININT2 1001

  std::string b = orig;
  b[5] ^= 1;  // inside the LONG1 magic
  expect_error(read_bytes(b, "m.pt"), Code::kCorrupt, "m.pt: Invalid magic number; corrupt file?");

  b = orig;
  b[18] = char(0xea);  // 1002
  expect_error(read_bytes(b, "v.pt"), Code::kUnsupported, "1002");

  std::string p1 = fixture("tensor_legacy_p1.pt");
  p1[3] = '8';  // L118...
  expect_error(read_bytes(p1, "m.pt"), Code::kCorrupt, "Invalid magic number");

  const std::string tar = fixture("ancient.tar");
  expect_error(read_bytes(tar, "old.tar"), Code::kUnsupported,
               "ancient tar-format checkpoint (PyTorch < 0.4) is not supported");
}

TEST(TorchLegacy, BlobCountsAndKeysAreChecked) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_legacy.pt");
  Result<DecodedFile> f = read_bytes(orig, "sd_legacy.pt");
  ASSERT_TRUE(f.ok()) << f.status().message();
  uint64_t first_blob = UINT64_MAX;
  for (const StorageExtent& x : f->extents) first_blob = std::min(first_blob, x.offset);

  // Element count of the first blob off by one.
  std::string b = orig;
  b[first_blob - 8] += 1;
  expect_error(read_bytes(b, "c.pt"), Code::kCorrupt, "has wrong byte size");

  // A key in the key list that the object never used (and one the object used, unlisted).
  const std::string& key = f->tree.storages[0].key;
  const size_t at = orig.rfind(key, first_blob - 8);
  ASSERT_NE(at, std::string::npos);
  b = orig;
  b[at] = 'x';
  expect_error(read_bytes(b, "k.pt"), Code::kCorrupt, "'x" + key.substr(1) + "'");

  // Trailing bytes after the last blob are ignored, as torch does.
  EXPECT_TRUE(read_bytes(orig + "junk", "t.pt").ok());
}

TEST(TorchLegacy, DeferredStorageHeadersAreCheckedWhenRead) {
  // defer_storage_headers (a zstd-streamed legacy file): open reads no storage header, the
  // extents match the eager ones, a bad element count fails when that storage is read,
  // and truncation still fails at open.
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_legacy.pt");
  LegacyReadOptions deferred;
  deferred.defer_storage_headers = true;
  MemorySource src(orig.data(), orig.size(), "sd_legacy.pt");
  Result<DecodedFile> eager = read_torch_legacy(src, {});
  Result<DecodedFile> lazy = read_torch_legacy(src, deferred);
  ASSERT_TRUE(eager.ok() && lazy.ok()) << lazy.status().message();
  ASSERT_EQ(eager->extents.size(), lazy->extents.size());
  for (size_t i = 0; i < eager->extents.size(); ++i) {
    EXPECT_EQ(eager->extents[i].offset, lazy->extents[i].offset) << i;
    EXPECT_TRUE(lazy->extents[i].count_prefixed);
    std::vector<uint8_t> a(eager->extents[i].length), b(a.size());
    const DType dt = eager->tree.storages[i].dtype;
    ASSERT_TRUE(read_storage_bytes(src, eager->extents[i], dt, a.data()).ok());
    ASSERT_TRUE(read_storage_bytes(src, lazy->extents[i], dt, b.data()).ok());
    EXPECT_EQ(a, b);
  }
  uint64_t first_blob = UINT64_MAX;
  size_t first = 0;
  for (size_t i = 0; i < lazy->extents.size(); ++i)
    if (lazy->extents[i].offset < first_blob) first_blob = lazy->extents[i].offset, first = i;
  std::string bad = orig;
  bad[first_blob - 8] += 1;
  MemorySource bsrc(bad.data(), bad.size(), "c.pt");
  Result<DecodedFile> opened = read_torch_legacy(bsrc, deferred);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  std::vector<uint8_t> out(opened->extents[first].length);
  Status st = read_storage_bytes(bsrc, opened->extents[first], opened->tree.storages[first].dtype,
                                 out.data());
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("has wrong byte size"), std::string::npos) << st.message();
  MemorySource cut(orig.data(), orig.size() - 1, "cut.pt");
  EXPECT_EQ(read_torch_legacy(cut, deferred).status().code(), Code::kCorrupt);
}

TEST(TorchLegacy, WrittenFileLoadsInTorchAndBack) {
  const testing::SampleTree s = testing::sample_tree();
  StringSink out;
  LegacyWriteOptions o;
  o.context = "sample_legacy.pt";
  Status st = write_torch_legacy(out, s.tree, testing::sample_writer(s), o);
  ASSERT_TRUE(st.ok()) << st.message();
  // Parts A and B exactly as torch writes them (spec 1.1).
  EXPECT_EQ(out.out.substr(0, 21),
            std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"
                        "\x80\x02M\xe9\x03.",
                        21));
  EXPECT_TRUE(looks(out.out.substr(0, 32)));

  MemorySource src(out.out.data(), out.out.size(), "sample_legacy.pt");
  Result<DecodedFile> f = read_torch_legacy(src, {});
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(testing::describe(f->tree.root), s.describe);
  EXPECT_EQ(decoded_lines(*f, src), testing::sample_lines(s));
  // Blobs follow in lexicographic key order: "0", "1", "10", "11", "2", ...
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (size_t i = 0; i < f->extents.size(); ++i)
    by_offset.emplace_back(f->extents[i].offset, f->tree.storages[i].key);
  std::sort(by_offset.begin(), by_offset.end());
  std::vector<std::string> keys;
  for (const auto& [off, key] : by_offset) keys.push_back(key);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(keys, sorted);
  EXPECT_EQ(f->extents.back().offset + f->extents.back().length <= out.out.size(), true);

  if (testing::torch_fixtures().empty()) GTEST_SKIP() << "no Debian torch to load it";
  test_support::ScratchDir dir("legacy");
  const std::string path = dir.file("sample_legacy.pt");
  testing::write_file(path, out.out);
  // Also a float-free variant that torch 1.13 loads with weights_only=True.
  const testing::SampleTree nf = testing::sample_tree_without_float();
  StringSink nf_out;
  ASSERT_TRUE(write_torch_legacy(nf_out, nf.tree, testing::sample_writer(nf), o).ok());
  const std::string nf_path = dir.file("sample_legacy_nofloat.pt");
  testing::write_file(nf_path, nf_out.out);

  const std::vector<std::string> all = testing::inspect_with_torch({path, nf_path});
  testing::expect_torch_loads_sample(testing::section(all, path), s, s.describe, true);
  testing::expect_torch_loads_sample(testing::section(all, nf_path), nf, nf.describe, false);
}

TEST(TorchLegacy, WriterChecksStorageByteCounts) {
  const testing::SampleTree s = testing::sample_tree();
  StringSink out;
  StorageWriter long_writer = [&s](uint32_t i, ByteSink& sink) {
    CKPTIO_RETURN_IF_ERROR(sink.write(s.bytes[i].data(), s.bytes[i].size()));
    return sink.write("x", 1);
  };
  EXPECT_EQ(write_torch_legacy(out, s.tree, long_writer, {}).code(), Code::kInternal);
  StringSink out2;
  StorageWriter short_writer = [](uint32_t, ByteSink&) { return Status::Ok(); };
  EXPECT_EQ(write_torch_legacy(out2, s.tree, short_writer, {}).code(), Code::kInternal);
}

}  // namespace
}  // namespace ckptio
