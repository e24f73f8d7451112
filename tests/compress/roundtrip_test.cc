// Round trips through the CLI between every pair of torch-zip, torch-legacy, zstd (inner
// torch-zip and torch-legacy) and torch-zip-zstd, on files real PyTorch writes at test
// time; the zstd tool and torch.load read what ckptio wrote; bad input fails cleanly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/process.h"
#include "support/scratch.h"

namespace fs = std::filesystem;

namespace {

struct CmdResult {
  int status;
  std::string out;  // stdout and stderr
};

CmdResult run(const std::string& cmd) {
  test_support::RunResult r = test_support::run_shell(cmd + " 2>&1");
  return CmdResult{r.exited ? r.exit_code : -1, r.out};
}

const std::string kCli = CKPTIO_CLI;
const std::string kPy = CKPTIO_TEST_PYTHON;
const std::string kPyDir = std::string(CKPTIO_SOURCE_DIR) + "/tests/compress/py";

class CompressRoundTrip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test_support::ScratchDir>("compress");
    CmdResult r = run(kPy + " " + kPyDir + "/make_compress_files.py " + dir_->path());
    ASSERT_EQ(r.status, 0) << r.out;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static std::string path(const std::string& name) { return dir_->file(name); }

  static nlohmann::json root(const std::string& file) {
    CmdResult r = run(kCli + " inspect --json " + file);
    EXPECT_EQ(r.status, 0) << r.out;
    if (r.status != 0) return nullptr;
    nlohmann::json j = nlohmann::json::parse(r.out)["root"];
    std::map<std::string, size_t> ids;
    normalize(j, ids);
    return j;
  }

  // Storage keys are the writer's choice (legacy: ids, zip: 0..N-1): replace each by its
  // order of first appearance, which keeps which tensors share a storage.
  static void normalize(nlohmann::json& j, std::map<std::string, size_t>& ids) {
    if (j.is_object()) {
      if (j.contains("tensor") && j["tensor"].contains("storage")) {
        auto& s = j["tensor"]["storage"];
        auto it = ids.emplace(s.get<std::string>(), ids.size()).first;
        s = it->second;
      }
      for (auto& [k, v] : j.items()) normalize(v, ids);
    } else if (j.is_array()) {
      for (auto& v : j) normalize(v, ids);
    }
  }

  static void convert(const std::string& in, const std::string& out, const std::string& fmt) {
    std::string f = fmt, extra;
    if (fmt == "zstd:legacy") f = "zstd", extra = " --option inner=torch-legacy";
    CmdResult r = run(kCli + " convert " + in + " " + out + " --format " + f + extra);
    ASSERT_EQ(r.status, 0) << in << " -> " << fmt << ": " << r.out;
  }

  static std::unique_ptr<test_support::ScratchDir> dir_;
};

std::unique_ptr<test_support::ScratchDir> CompressRoundTrip::dir_;

const std::vector<std::string> kFormats = {"torch-zip", "torch-legacy", "zstd", "zstd:legacy",
                                           "torch-zip-zstd"};

std::string tag(const std::string& f) {
  std::string t = f;
  for (char& c : t)
    if (c == ':') c = '_';
  return t;
}

TEST_F(CompressRoundTrip, EveryPairKeepsTensorsBitIdentical) {
  for (const std::string src : {"zip.pt", "legacy.pt"}) {
    const nlohmann::json want = root(path(src));
    ASSERT_FALSE(want.is_null());
    for (const auto& a : kFormats) {
      const std::string pa = path(src + "." + tag(a));
      convert(path(src), pa, a);
      ASSERT_EQ(root(pa), want) << src << " -> " << a;
      for (const auto& b : kFormats) {
        const std::string pb = pa + "." + tag(b);
        convert(pa, pb, b);
        EXPECT_EQ(root(pb), want) << src << " -> " << a << " -> " << b;
      }
    }
  }
}

TEST_F(CompressRoundTrip, ZstdToolAndTorchLoadReadOurZstdFiles) {
  std::string candidates;
  for (const std::string inner : {"zstd", "zstd:legacy"}) {
    const std::string z = path("tool." + tag(inner) + ".pt.zst");
    convert(path("zip.pt"), z, inner);
    const std::string plain = z + ".d.pt";
    CmdResult r = run("zstd -q -d -f " + z + " -o " + plain);
    ASSERT_EQ(r.status, 0) << r.out;
    candidates += " " + plain;
  }
  // Torch itself reads what torch-zip-zstd decodes back to.
  convert(path("zip.pt"), path("t.zzs"), "torch-zip-zstd");
  convert(path("t.zzs"), path("t.back.pt"), "torch-zip");
  candidates += " " + path("t.back.pt");
  CmdResult r = run(kPy + " " + kPyDir + "/check_load.py " + path("zip.pt") + candidates);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("OK 3"), std::string::npos) << r.out;
}

TEST_F(CompressRoundTrip, ReadsFilesCompressedByTheZstdTool) {
  for (const std::string src : {"zip.pt", "legacy.pt"}) {
    const std::string z = path(src + ".tool.zst");
    CmdResult r = run("zstd -q -f -3 " + path(src) + " -o " + z);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(root(z), root(path(src))) << src;
  }
}

using test_support::read_file;
using test_support::write_file;

TEST_F(CompressRoundTrip, StorageRecordsAreZipMethod93ThatStandardToolsDecode) {
  // bsdtar (libarchive) and the zstd tool decode each storage record, the zip CRC checks,
  // and a numpy re-implementation of SPEC.md's grouping reproduces what they decode to:
  // with the default 1 MiB chunks and with 4 KiB chunks (many chunks per record).
  for (const std::string opt : {"", " --option chunk_size=4096"}) {
    const std::string out = path("m93" + std::to_string(opt.size()) + ".zzs");
    CmdResult c =
        run(kCli + " convert " + path("zip.pt") + " " + out + " --format torch-zip-zstd" + opt);
    ASSERT_EQ(c.status, 0) << c.out;
    CmdResult r =
        run(kPy + " " + kPyDir + "/check_zip_zstd_records.py " + path("zip.pt") + " " + out);
    EXPECT_EQ(r.status, 0) << opt << ": " << r.out;
  }
}

// Peak resident memory of a command, in KiB (GNU time's %M).
long peak_kib(const std::string& cmd, const std::string& report) {
  CmdResult r = run("/usr/bin/time -f %M -o " + report + " " + cmd);
  EXPECT_EQ(r.status, 0) << r.out;
  std::ifstream f(report);
  long kib = -1;
  f >> kib;
  return kib;
}

TEST_F(CompressRoundTrip, InnerTorchLegacyIsStreamedNotBuffered) {
  // 64 MiB of tensors in a zstd-wrapped legacy file. Loading every tensor (inspect --json
  // hashes them) from the stream must not also hold the decompressed file: its peak is at
  // least 48 MiB under the same load with the stream buffered (option stream=0), and the
  // tensors are the same.
  const std::string z = path("big_legacy.pt.zst");
  convert(path("big_legacy.pt"), z, "zstd:legacy");
  const std::string json = " inspect --json " + z;
  const long streamed =
      peak_kib(kCli + json + " > " + path("streamed.json"), path("streamed.peak"));
  const long buffered = peak_kib(kCli + json + " --read-option stream=0 > " + path("buffered.json"),
                                 path("buffered.peak"));
  ASSERT_GT(streamed, 0);
  EXPECT_LT(streamed + 48 * 1024, buffered)
      << "streamed " << streamed << " KiB, buffered " << buffered << " KiB";
  CmdResult same = run("cmp " + path("streamed.json") + " " + path("buffered.json"));
  EXPECT_EQ(same.status, 0) << same.out;
  EXPECT_EQ(root(z), root(path("big_legacy.pt")));
}

TEST_F(CompressRoundTrip, WriterOptionsLevelAndThreadsAreHonoured) {
  // torch-zip-zstd's plugin options: a valid level and thread count round-trip the same
  // tensors; a level outside zstd's range is refused by name.
  const std::string out = path("opts.zzs");
  CmdResult c = run(kCli + " convert " + path("zip.pt") + " " + out +
                    " --format torch-zip-zstd --option level=5 --option threads=1");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_EQ(root(out), root(path("zip.pt")));
  CmdResult bad = run(kCli + " convert " + path("zip.pt") + " " + path("bad.zzs") +
                      " --format torch-zip-zstd --option level=99");
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("zstd level 99"), std::string::npos) << bad.out;
}

TEST_F(CompressRoundTrip, CorruptChunkNamesRecordAndChunk) {
  const std::string good = path("c.zzs");
  convert(path("zip.pt"), good, "torch-zip-zstd");
  std::string bytes = read_file(good);
  // The first storage record: after its local header, a chunked zstd record; flip a byte of its
  // payload (past the 32-byte header and the table).
  size_t at = bytes.find("CKZ2");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 100] ^= 0x20;
  const std::string bad = path("c.bad.zzs");
  write_file(bad, bytes);
  CmdResult r = run(kCli + " inspect --json " + bad);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("record 'archive/data/0' chunk 0 of 1"), std::string::npos) << r.out;
}

// The marker record names the container version: another version is refused by name, and a
// file without the record is not taken for torch-zip-zstd.
TEST_F(CompressRoundTrip, CodecRecordOfAnotherVersionIsRefusedByName) {
  const std::string good = path("v.zzs");
  convert(path("zip.pt"), good, "torch-zip-zstd");
  std::string bytes = read_file(good);
  const std::string marker = "ckptio-chunked-zstd 2\n";
  size_t at = bytes.find(marker);
  ASSERT_NE(at, std::string::npos);
  bytes[at + marker.size() - 2] = '7';
  const std::string future = path("v.future.zzs");
  write_file(future, bytes);
  CmdResult r = run(kCli + " inspect --json --input-format torch-zip-zstd " + future);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(
      r.out.find("v.future.zzs: record 'archive/.data/ckptio_codec' says 'ckptio-chunked-zstd 7'; "
                 "this reader knows 'ckptio-chunked-zstd 2'"),
      std::string::npos)
      << r.out;

  const std::string plain = path("v.plain.pt");
  convert(path("zip.pt"), plain, "torch-zip");
  r = run(kCli + " inspect --json --input-format torch-zip-zstd " + plain);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("no record 'archive/.data/ckptio_codec' (not a torch-zip-zstd file?)"),
            std::string::npos)
      << r.out;
}

TEST_F(CompressRoundTrip, TruncatedZstdIsACleanError) {
  const std::string z = path("trunc.pt.zst");
  convert(path("zip.pt"), z, "zstd");
  std::string bytes = read_file(z);
  for (size_t keep : {bytes.size() - 3, bytes.size() / 2}) {
    const std::string t = path("trunc.cut.pt.zst");
    write_file(t, bytes.substr(0, keep));
    CmdResult r = run(kCli + " inspect --json " + t);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("trunc"), std::string::npos) << r.out;
  }
}

}  // namespace
