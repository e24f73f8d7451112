// read_torch_zip / write_torch_zip against real PyTorch: files torch.save wrote (incl. tied
// weights, views with offsets, empty tensors, re-zipped reordered or deflated), archives
// with lying or missing records, and our output loaded by torch.load(weights_only=True).
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "formats/zip/torch_zip.h"
#include "formats/zip/zip_writer.h"
#include "tests/formats/zip_test_helpers.h"

namespace ckptio {
namespace {

using testing::decoded_lines;
using testing::fixture;
using testing::fixture_lines;
using testing::UnmappedSource;

Result<DecodedFile> read_bytes(const std::string& bytes, const std::string& name,
                               const ZipReadOptions& options = {}) {
  MemorySource src(bytes.data(), bytes.size(), name);
  return read_torch_zip(src, options);
}

// Re-writes an archive's records through ZipWriter. `edit(name, bytes)` may change a
// record's bytes, or return false to drop it; `extra` records are appended, in place of any
// of the same name (torch 2.x's torch.save already writes a byteorder record).
using Edit = std::function<bool(const std::string& name, std::string& bytes)>;
std::string rewrite(const std::string& orig, const Edit& edit,
                    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  MemorySource src(orig.data(), orig.size(), "orig.pt");
  Result<ZipReader> zip = ZipReader::open(src);
  EXPECT_TRUE(zip.ok());
  StringSink out;
  ZipWriter w(out, zip->prefix());
  for (const ZipEntry& e : zip->entries()) {
    std::string name = e.name.substr(zip->prefix().size() + 1);
    bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const auto& x) { return x.first == name; });
    std::string bytes = *zip->read(e);
    if (!replaced && edit(name, bytes)) {
      EXPECT_TRUE(w.add(name, bytes.data(), bytes.size()).ok());
    }
  }
  for (const auto& [name, bytes] : extra) EXPECT_TRUE(w.add(name, bytes.data(), bytes.size()).ok());
  EXPECT_TRUE(w.finish().ok());
  return out.out;
}

void expect_error(const Result<DecodedFile>& r, Code code, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(TorchZip, ReadsRealTorchSaveFiles) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::pair<const char*, const char*> cases[] = {
      {"tensor_zip.pt", "tensor.txt"}, {"sd_zip.pt", "sd.txt"},      {"ckpt_zip.pt", "ckpt.txt"},
      {"sd_reversed.pt", "sd.txt"},    {"sd_deflated.pt", "sd.txt"},
  };
  for (const auto& [file, txt] : cases) {
    SCOPED_TRACE(file);
    const std::string bytes = fixture(file);
    const bool deflated = std::string(file) == "sd_deflated.pt";
    for (bool mapped : {true, false}) {
      MemorySource mem(bytes.data(), bytes.size(), file);
      UnmappedSource unmapped(bytes, file);
      const ByteSource& src = mapped ? static_cast<const ByteSource&>(mem) : unmapped;
      Result<DecodedFile> f = read_torch_zip(src, {});
      ASSERT_TRUE(f.ok()) << f.status().message();
      ASSERT_EQ(f->extents.size(), f->tree.storages.size());
      for (const StorageExtent& x : f->extents) {
        EXPECT_EQ(x.plain, !deflated);
        EXPECT_FALSE(x.byteswap);
        EXPECT_EQ(x.method, deflated ? 8 : 0);
        if (std::string(file) == "sd_zip.pt") {
          EXPECT_EQ(x.offset % 64, 0u);
        }
      }
      EXPECT_EQ(decoded_lines(*f, src), fixture_lines(txt));
    }
  }
}

TEST(TorchZip, TiedWeightsShareOneStorage) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string bytes = fixture("sd_zip.pt");
  Result<DecodedFile> f = read_bytes(bytes, "sd_zip.pt");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const ValuePtr a = f->tree.root->get("fc1.weight");
  const ValuePtr b = f->tree.root->get("tied.weight");
  const ValuePtr slice = f->tree.root->get("slice");
  ASSERT_TRUE(a && b && slice);
  EXPECT_EQ(a->tensor.storage, b->tensor.storage);
  EXPECT_EQ(slice->tensor.storage_offset, 3);
  EXPECT_EQ(f->tree.storages[slice->tensor.storage].nbytes, 80u);  // the whole 20 floats
}

TEST(TorchZip, VerifyCrcOption) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  std::string bytes = fixture("sd_zip.pt");
  ZipReadOptions check;
  check.verify_crc = true;
  ASSERT_TRUE(read_bytes(bytes, "sd_zip.pt", check).ok());
  MemorySource src(bytes.data(), bytes.size(), "x");
  const uint64_t at = ZipReader::open(src)->find("data/3")->data_offset;
  bytes[at] ^= 1;
  EXPECT_TRUE(read_bytes(bytes, "sd_zip.pt").ok());  // PyTorch does not check either
  expect_error(read_bytes(bytes, "sd_zip.pt", check), Code::kCorrupt, "'sd_zip/data/3'");
}

TEST(TorchZip, EveryTruncationIsCleanCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  for (const char* name : {"tensor_zip.pt", "sd_zip.pt"}) {
    const std::string bytes = fixture(name);
    for (size_t n = 0; n < bytes.size(); ++n) {
      Result<DecodedFile> r = read_bytes(bytes.substr(0, n), name);
      ASSERT_FALSE(r.ok()) << n;
      ASSERT_EQ(r.status().code(), Code::kCorrupt) << n << ": " << r.status().message();
    }
  }
}

TEST(TorchZip, MissingAndLyingRecords) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_zip.pt");
  auto drop = [](const char* which) {
    return [which](const std::string& n, std::string&) { return n != which; };
  };
  auto set = [](const char* which, std::string value) {
    return [which, value](const std::string& n, std::string& b) {
      if (n == which) b = value;
      return true;
    };
  };
  auto read = [](const std::string& b) { return read_bytes(b, "sd_zip.pt"); };
  const Edit keep_all = [](const std::string&, std::string&) { return true; };

  expect_error(read(rewrite(orig, drop("data/0"))), Code::kCorrupt,
               "sd_zip.pt: missing record 'sd_zip/data/0' for storage 0");
  expect_error(read(rewrite(orig,
                            [](const std::string& n, std::string& b) {
                              if (n == "data/1") b.resize(b.size() - 4);
                              return true;
                            })),
               Code::kCorrupt, "record 'sd_zip/data/1' holds 12 bytes but storage 1 needs 16");
  expect_error(read(rewrite(orig, drop("data.pkl"))), Code::kCorrupt, "'sd_zip/data.pkl'");
  expect_error(read(rewrite(orig, drop("version"))), Code::kCorrupt, "'sd_zip/version'");
  expect_error(read(rewrite(orig, set("version", "99\n"))), Code::kUnsupported, "version 99");
  expect_error(read(rewrite(orig, set("version", "0\n"))), Code::kUnsupported, "version 0");
  expect_error(read(rewrite(orig, set("version", "three"))), Code::kCorrupt, "'sd_zip/version'");
  EXPECT_TRUE(read(rewrite(orig, set("version", "10"))).ok());
  // 2.x TorchScript-style name, preferred when present.
  EXPECT_TRUE(read(rewrite(orig, drop("version"), {{".data/version", "6\n"}})).ok());
  expect_error(read(rewrite(orig, keep_all, {{"byteorder", "middle"}})), Code::kCorrupt,
               "'sd_zip/byteorder'");
  EXPECT_TRUE(read(rewrite(orig, keep_all, {{"byteorder", "little"}})).ok());
  expect_error(read(rewrite(orig, keep_all, {{"constants.pkl", ""}})), Code::kUnsupported,
               "is a TorchScript archive (torch.jit.save)");
  expect_error(read("PYTORCH1" + orig), Code::kUnsupported, "PYTORCH1");
}

// A file written on a big-endian host: data records in native (big) order plus
// byteorder=big. Swapping every element on read must give back the same tensors.
TEST(TorchZip, BigEndianRecordsAreSwapped) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("sd_zip.pt");
  Result<DecodedFile> f = read_bytes(orig, "sd_zip.pt");
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::map<std::string, DType> dtypes;
  for (const StorageInfo& s : f->tree.storages) dtypes["data/" + s.key] = s.dtype;
  const std::string big = rewrite(orig,
                                  [&](const std::string& n, std::string& b) {
                                    if (!dtypes.count(n)) return true;
                                    const DType d = dtypes[n];
                                    const bool complex =
                                        d == DType::kComplex64 || d == DType::kComplex128;
                                    const size_t unit = size_t(dtype_size(d)) / (complex ? 2 : 1);
                                    for (size_t i = 0; i + unit <= b.size(); i += unit)
                                      std::reverse(b.begin() + long(i), b.begin() + long(i + unit));
                                    return true;
                                  },
                                  {{"byteorder", "big"}});
  MemorySource src(big.data(), big.size(), "big.pt");
  Result<DecodedFile> g = read_torch_zip(src, {});
  ASSERT_TRUE(g.ok()) << g.status().message();
  for (size_t i = 0; i < g->extents.size(); ++i) {
    const bool multi = dtype_size(g->tree.storages[i].dtype) > 1;
    EXPECT_EQ(g->extents[i].byteswap, multi);
    EXPECT_EQ(g->extents[i].plain, !multi);
  }
  EXPECT_EQ(decoded_lines(*g, src), fixture_lines("sd.txt"));
}

// A view that reaches past its storage (numel in the persistent id lowered, record shrunk).
TEST(TorchZip, ViewPastStorageIsCorrupt) {
  CKPTIO_REQUIRE_TORCH_FIXTURES();
  const std::string orig = fixture("tensor_zip.pt");
  bool patched = false;
  const std::string bad = rewrite(orig, [&](const std::string& n, std::string& b) {
    if (n == "data/0") b.resize(20);
    if (n == "data.pkl") {
      // ('storage', FloatStorage, '0', 'cpu', 6): BININT1 6 follows the 'cpu' string.
      const size_t cpu = b.find("cpu");
      const size_t six = b.find("K\x06", cpu);
      if (cpu != std::string::npos && six != std::string::npos && six < cpu + 8) {
        b[six + 1] = 5;
        patched = true;
      }
    }
    return true;
  });
  ASSERT_TRUE(patched);
  expect_error(read_bytes(bad, "t.pt"), Code::kCorrupt, "tensor view needs 24 bytes but storage");
}

TEST(TorchZip, WrittenFileLoadsInTorchAndBack) {
  const testing::SampleTree s = testing::sample_tree();
  StringSink out;
  ZipWriteOptions o;
  o.prefix = "sample";
  o.context = "sample.pt";
  Status st = write_torch_zip(out, s.tree, testing::sample_writer(s), o);
  ASSERT_TRUE(st.ok()) << st.message();

  MemorySource src(out.out.data(), out.out.size(), "sample.pt");
  ZipReadOptions check;
  check.verify_crc = true;
  Result<DecodedFile> f = read_torch_zip(src, check);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(testing::describe(f->tree.root), s.describe);
  EXPECT_EQ(decoded_lines(*f, src), testing::sample_lines(s));
  Result<ZipReader> zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok());
  std::vector<std::string> names;
  for (const ZipEntry& e : zip->entries()) {
    names.push_back(e.name);
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  }
  std::vector<std::string> want = {"sample/data.pkl", "sample/.format_version",
                                   "sample/.storage_alignment", "sample/byteorder"};
  for (size_t k = 0; k < s.tree.storages.size(); ++k)
    want.push_back("sample/data/" + std::to_string(k));
  want.push_back("sample/version");
  EXPECT_EQ(names, want);
  EXPECT_EQ(*zip->read(*zip->find("version")), "3\n");
  EXPECT_EQ(*zip->read(*zip->find("byteorder")), "little");
  EXPECT_EQ(*zip->read(*zip->find(".format_version")), "1");
  EXPECT_EQ(*zip->read(*zip->find(".storage_alignment")), "64");

  if (testing::torch_fixtures().empty()) GTEST_SKIP() << "no Debian torch to load it";
  test_support::ScratchDir dir("zip");
  const std::string path = dir.file("sample.pt");
  testing::write_file(path, out.out);
  // Also a float-free variant that torch 1.13 loads with weights_only=True.
  const testing::SampleTree nf = testing::sample_tree_without_float();
  StringSink nf_out;
  ASSERT_TRUE(write_torch_zip(nf_out, nf.tree, testing::sample_writer(nf), o).ok());
  const std::string nf_path = dir.file("sample_nofloat.pt");
  testing::write_file(nf_path, nf_out.out);

  const std::vector<std::string> all = testing::inspect_with_torch({path, nf_path});
  for (const std::string& p : {path, nf_path}) {
    const std::vector<std::string> py = testing::section(all, p);
    ASSERT_GE(py.size(), 2u) << p;
    EXPECT_EQ(py[0], "ZIP|testzip=None");
    for (const std::string& l : py) {
      if (l.rfind("REC|", 0) == 0) {
        const size_t at = l.find('|', 4) + 1;
        EXPECT_EQ(std::stoull(l.substr(at, l.find('|', at) - at)) % 64, 0u) << l;
      }
    }
  }
  testing::expect_torch_loads_sample(testing::section(all, path), s, s.describe, true);
  testing::expect_torch_loads_sample(testing::section(all, nf_path), nf, nf.describe, false);
}

TEST(TorchZip, WriterChecksStorageByteCounts) {
  const testing::SampleTree s = testing::sample_tree();
  StringSink out;
  ZipWriteOptions o;
  o.context = "short.pt";
  StorageWriter short_writer = [&s](uint32_t i, ByteSink& sink) {
    return sink.write(s.bytes[i].data(), s.bytes[i].size() / 2);
  };
  Status st = write_torch_zip(out, s.tree, short_writer, o);
  EXPECT_EQ(st.code(), Code::kInternal) << st.message();
  EXPECT_NE(st.message().find("short.pt"), std::string::npos) << st.message();

  StringSink out2;
  StorageWriter long_writer = [&s](uint32_t i, ByteSink& sink) {
    CKPTIO_RETURN_IF_ERROR(sink.write(s.bytes[i].data(), s.bytes[i].size()));
    return sink.write("x", 1);
  };
  EXPECT_EQ(write_torch_zip(out2, s.tree, long_writer, o).code(), Code::kInternal);

  o.prefix = "a/b";
  EXPECT_EQ(write_torch_zip(out2, s.tree, testing::sample_writer(s), o).code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace ckptio
