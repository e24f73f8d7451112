// Hostile input through the real `ckptio` CLI: shared sub-objects that would expand
// exponentially, reading limits, a lying deflate record, the allow-list and its opt-in
// (--allow-objects) on a real whole-model torch.save(model), state_dict extraction from it
// checked by PyTorch's own load_state_dict, and `ckptio verify` on clean and corrupted files.
//
// py/make_hostile.py writes the inputs with real PyTorch 1.13 once (the prepare step).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "../interop/interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

constexpr int kTimeoutS = 60;  // a hang guard; the "quickly" checks below are tighter

std::string hostile_py() {
  return std::string(CKPTIO_SOURCE_DIR) + "/tests/hostile/py/make_hostile.py";
}

std::string prepare(const std::string& dir) {
  RunResult r = run({kPython, hostile_py(), "prepare", dir}, 300);
  return r.exited && r.exit_code == 0 ? "" : r.describe();
}

std::string input(const std::string& name) { return work_dir() + "/" + name; }

::testing::AssertionResult fails_cleanly(const RunResult& r, const std::string& path,
                                         const std::string& needle) {
  if (!r.exited || r.exit_code != 1)
    return ::testing::AssertionFailure() << "want exit 1: " << r.describe();
  if (count_lines(r.err) != 1)
    return ::testing::AssertionFailure() << "want one line on stderr: " << r.describe();
  if (r.err.find(path) == std::string::npos || r.err.find(needle) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message should name " << path << " and say '" << needle << "': " << r.describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult succeeds(const RunResult& r) {
  if (r.exited && r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.describe();
}

// Runs and returns the wall time in seconds through `secs`.
RunResult timed(const std::vector<std::string>& argv, double* secs) {
  auto t0 = std::chrono::steady_clock::now();
  RunResult r = run(argv, kTimeoutS);
  *secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ---------------------------------------------------------------- shared sub-objects

// [x, x] nested 40 times: 2^40 leaves if expanded. The tree printer shows references.
TEST(SharedSubObjects, InspectPrintsReferencesQuickly) {
  for (const char* f : {"bomb_list.pt", "bomb_dict.pt", "bomb_dict.legacy.pt"}) {
    double secs = 0;
    RunResult r = timed({cli(), "inspect", input(f)}, &secs);
    ASSERT_TRUE(succeeds(r)) << f;
    EXPECT_NE(r.out.find("<same object as"), std::string::npos) << f << "\n" << r.out;
    EXPECT_LT(r.out.size(), 64u * 1024) << f;
    EXPECT_LT(secs, 10) << f;
  }
}

// JSON has no references: it refuses, before building anything, with a clear message.
TEST(SharedSubObjects, JsonRefusesQuicklyWithAClearMessage) {
  for (const char* f : {"bomb_list.pt", "bomb_dict.pt", "bomb_dict.legacy.pt"}) {
    double secs = 0;
    RunResult r = timed({cli(), "inspect", "--json", input(f)}, &secs);
    EXPECT_TRUE(fails_cleanly(r, input(f), "expands to more than")) << f;
    EXPECT_LT(secs, 10) << f;
  }
}

// Converting keeps the DAG shared (the pickler's memo): the output stays small, and the
// result is the same DAG again.
TEST(SharedSubObjects, ConvertKeepsThemShared) {
  const std::string dir = scratch("bomb_convert");
  for (const char* fmt : {"torch-zip", "torch-legacy"}) {
    const std::string out = dir + "/out_" + fmt + ".pt";
    double secs = 0;
    RunResult r = timed({cli(), "convert", input("bomb_dict.pt"), out, "--format", fmt}, &secs);
    ASSERT_TRUE(succeeds(r)) << fmt;
    EXPECT_LT(fs::file_size(out), 64u * 1024) << fmt;
    EXPECT_LT(secs, 10) << fmt;
    EXPECT_TRUE(fails_cleanly(run({cli(), "inspect", "--json", out}, kTimeoutS), out,
                              "expands to more than"));
  }
}

// ---------------------------------------------------------------- limits

TEST(Limits, ConfigurableFromTheCommandLine) {
  const std::string f = input("clean.pt");
  ASSERT_TRUE(succeeds(run({cli(), "inspect", f, "--limit", "max_depth=50"}, kTimeoutS)));
  // The storage class name ("FloatStorage"...) alone is longer than 4 bytes.
  RunResult r = run({cli(), "inspect", f, "--limit", "max_string=4"}, kTimeoutS);
  EXPECT_TRUE(fails_cleanly(r, f, "limit")) << r.describe();
  r = run({cli(), "inspect", f, "--limit", "max_depth=1"}, kTimeoutS);
  EXPECT_TRUE(fails_cleanly(r, f, "more than 1 open MARKs")) << r.describe();
  r = run({cli(), "inspect", input("bomb_list.pt"), "--limit", "max_memo=10"}, kTimeoutS);
  EXPECT_TRUE(fails_cleanly(r, input("bomb_list.pt"), "memo")) << r.describe();
  r = run({cli(), "inspect", f, "--limit", "max_speed=3"}, kTimeoutS);
  EXPECT_TRUE(r.exited && r.exit_code == 1 && r.err.find("max_speed") != std::string::npos)
      << r.describe();
  r = run({cli(), "inspect", f, "--limit", "max_depth=lots"}, kTimeoutS);
  EXPECT_TRUE(r.exited && r.exit_code == 1 && r.err.find("number") != std::string::npos)
      << r.describe();
}

// A deflated record whose directory claims ~4 GiB from a few dozen bytes (more than
// DEFLATE's 1032:1) is refused from the directory alone, before the storage is allocated.
TEST(Limits, LyingDeflateRecordRefusedBeforeAllocating) {
  const std::string f = input("deflate_lie.pt");
  double secs = 0;
  RunResult r = timed({cli(), "inspect", "--json", f}, &secs);
  EXPECT_TRUE(fails_cleanly(r, f, "deflated bytes")) << r.describe();
  EXPECT_LT(secs, 10);
}

// Storage keys are names inside the archive, never paths: "../../../../tmp/x", "/tmp/x" and
// "a/./b\\c" read as the records of those exact names (as torch.load does), nothing outside
// is touched, and a converted file names its records data/0.. again.
TEST(PathLikeKeys, AreNamesNotPaths) {
  const std::string f = input("path_keys.pt");
  fs::remove("/tmp/ckptio_evil_0");
  fs::remove("/tmp/ckptio_evil_1");
  RunResult r = run({cli(), "inspect", "--json", f}, kTimeoutS);
  ASSERT_TRUE(succeeds(r));
  EXPECT_NE(r.out.find("\"storage\":\"../../../../tmp/ckptio_evil_0\""), std::string::npos)
      << r.out;
  const std::string dir = scratch("path_keys");
  for (const char* fmt : {"torch-zip", "torch-legacy"}) {
    const std::string out = dir + "/out_" + fmt + ".pt";
    ASSERT_TRUE(succeeds(run({cli(), "convert", f, out, "--format", fmt}, kTimeoutS)));
    EXPECT_EQ(read_file(out).find("ckptio_evil"), std::string::npos) << fmt;
    ASSERT_TRUE(succeeds(run({cli(), "verify", out}, kTimeoutS)));
  }
  EXPECT_FALSE(fs::exists("/tmp/ckptio_evil_0"));
  EXPECT_FALSE(fs::exists("/tmp/ckptio_evil_1"));
  EXPECT_EQ(fs::directory_iterator(dir) == fs::directory_iterator(), false);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2);
}

// Bad zstd streams around a good checkpoint: truncated, flipped, garbage after the magic,
// trailing garbage, a skippable frame alone. Each is one clean error, never a crash.
TEST(BadZstdFrames, FailCleanly) {
  const std::string dir = scratch("zstd_frames");
  const std::string good = dir + "/good.pt.zst";
  ASSERT_TRUE(
      succeeds(run({cli(), "convert", input("clean.pt"), good, "--format", "zstd"}, kTimeoutS)));
  ASSERT_TRUE(succeeds(run({cli(), "verify", good}, kTimeoutS)));
  const std::string bytes = read_file(good);
  ASSERT_GT(bytes.size(), 200u);
  std::vector<std::pair<std::string, std::string>> bad;
  for (size_t cut : {size_t(5), size_t(30), bytes.size() / 2, bytes.size() - 1})
    bad.emplace_back("cut_" + std::to_string(cut), bytes.substr(0, cut));
  std::string flipped = bytes;
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 8; ++i) flipped[i] = char(~flipped[i]);
  bad.emplace_back("flipped", flipped);
  bad.emplace_back("trailing", bytes + "garbage!garbage!");
  bad.emplace_back("garbage", std::string("\x28\xb5\x2f\xfd", 4) + std::string(100, '\xff'));
  // A skippable frame naming torch-zip, and nothing after it.
  std::string skip("\x50\x2a\x4d\x18\x16\x00\x00\x00", 8);
  skip += "ckptio-inner=torch-zip\n";
  skip.resize(8 + 22);
  bad.emplace_back("skippable_only", skip);
  for (const auto& [name, data] : bad) {
    const std::string path = dir + "/" + name + ".pt.zst";
    write_file(path, data);
    RunResult r = run({cli(), "inspect", "--input-format", "zstd", path}, kTimeoutS);
    EXPECT_TRUE(fails_cleanly(r, path, "")) << name << ": " << r.describe();
    r = run({cli(), "verify", path, "--input-format", "zstd"}, kTimeoutS);
    EXPECT_TRUE(r.exited && r.exit_code == 1) << name << ": " << r.describe();
  }
}

// ---------------------------------------------------------------- allow-list and opt-in

TEST(AllowObjects, WholeModelRefusedByDefaultNamingTheClass) {
  for (const char* f : {"model_full.pt", "model_full.legacy.pt"}) {
    RunResult r = run({cli(), "inspect", input(f)}, kTimeoutS);
    EXPECT_TRUE(fails_cleanly(r, input(f), "__main__.Net")) << r.describe();
    r = run({cli(), "convert", input(f), work_dir() + "/never.pt", "--format", "torch-zip"},
            kTimeoutS);
    EXPECT_TRUE(fails_cleanly(r, input(f), "__main__.Net")) << r.describe();
    EXPECT_FALSE(fs::exists(work_dir() + "/never.pt"));
  }
}

TEST(AllowObjects, OptInShowsOpaqueObjects) {
  for (const char* f : {"model_full.pt", "model_full.legacy.pt"}) {
    RunResult r = run({cli(), "inspect", input(f), "--allow-objects"}, kTimeoutS);
    ASSERT_TRUE(succeeds(r)) << f;
    EXPECT_NE(r.out.find("__main__.Net"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("torch.nn.modules.conv.Conv2d"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("_parameters"), std::string::npos) << r.out;
    r = run({cli(), "inspect", "--json", input(f), "--allow-objects"}, kTimeoutS);
    ASSERT_TRUE(succeeds(r)) << f;
    EXPECT_NE(r.out.find("{\"object\":\"__main__.Net\""), std::string::npos);
  }
}

// The state_dict of a whole-model pickle, without running any of its code; PyTorch's own
// load_state_dict(strict=True) on a fresh Net accepts it, and it equals model.state_dict().
TEST(AllowObjects, ExtractStateDictLoadsIntoTheModel) {
  const std::string dir = scratch("extract");
  for (const char* in : {"model_full.pt", "model_full.legacy.pt"}) {
    for (const char* fmt : {"torch-zip", "torch-legacy"}) {
      const std::string out = dir + "/sd_" + std::string(fmt) + "_" + in;
      RunResult r = run({cli(), "convert", input(in), out, "--format", fmt, "--allow-objects",
                         "--extract-state-dict"},
                        kTimeoutS);
      ASSERT_TRUE(succeeds(r)) << in << " -> " << fmt;
      r = run({kPython, hostile_py(), "check", out, input("model_sd_ref.pt")}, 120);
      EXPECT_TRUE(succeeds(r)) << in << " -> " << fmt;
    }
  }
}

TEST(AllowObjects, ExtractStateDictNeedsAModel) {
  const std::string dir = scratch("extract_bad");
  RunResult r = run({cli(), "convert", input("model_full.pt"), dir + "/o.pt", "--format",
                     "torch-zip", "--extract-state-dict"},
                    kTimeoutS);
  EXPECT_TRUE(r.exited && r.exit_code == 1 && r.err.find("--allow-objects") != std::string::npos)
      << r.describe();
  r = run({cli(), "convert", input("model_sd_ref.pt"), dir + "/o.pt", "--format", "torch-zip",
           "--allow-objects", "--extract-state-dict"},
          kTimeoutS);
  EXPECT_TRUE(fails_cleanly(r, input("model_sd_ref.pt"), "not a torch.nn.Module object"));
  EXPECT_FALSE(fs::exists(dir + "/o.pt"));
}

// ---------------------------------------------------------------- verify

std::string flip_at(const std::string& name, const std::vector<uint64_t>& offsets,
                    const std::string& dir) {
  std::string bytes = read_file(input(name));
  for (uint64_t o : offsets) bytes[o] = char(bytes[o] ^ 0x5a);
  const std::string out = dir + "/flipped_" + name;
  write_file(out, bytes);
  return out;
}

uint64_t record_offset(const std::string& record, uint64_t into = 3) {
  json facts = read_json(input("facts.json"));
  return facts["clean_records"][record][0].get<uint64_t>() + into;
}

uint32_t le(const std::string& b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | uint8_t(b[at + i]);
  return v;
}

// (data offset, stored size) of the record whose name ends with `suffix`, from the central
// directory (no ZIP64 here: the files are small).
std::pair<size_t, size_t> zip_record(const std::string& b, const std::string& suffix) {
  for (size_t p = b.find(std::string("PK\x01\x02", 4)); p != std::string::npos;
       p = b.find(std::string("PK\x01\x02", 4), p + 4)) {
    const uint32_t nlen = le(b, p + 28, 2);
    const std::string name = b.substr(p + 46, nlen);
    if (name.size() < suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix))
      continue;
    const size_t lh = le(b, p + 42, 4);
    return {lh + 30 + le(b, lh + 26, 2) + le(b, lh + 28, 2), le(b, p + 20, 4)};
  }
  return {0, 0};
}

TEST(Verify, CleanFilesAreOk) {
  for (const char* f : {"clean.pt", "clean.legacy.pt", "model_sd_ref.pt"}) {
    RunResult r = run({cli(), "verify", input(f)}, kTimeoutS);
    ASSERT_TRUE(succeeds(r)) << r.describe();
    EXPECT_EQ(count_lines(r.out), 1u) << r.out;
    EXPECT_NE(r.out.find(": ok ("), std::string::npos) << r.out;
  }
  RunResult r = run({cli(), "verify", input("model_full.pt"), "--allow-objects"}, kTimeoutS);
  EXPECT_TRUE(succeeds(r)) << r.describe();
}

// A flipped byte in a data record still loads (nothing checks CRCs on a plain load), but
// verify names the record; two bad records give two lines.
TEST(Verify, EveryBadRecordCrcIsListed) {
  const std::string dir = scratch("verify_crc");
  const std::string one = flip_at("clean.pt", {record_offset("clean/data/1")}, dir);
  ASSERT_TRUE(succeeds(run({cli(), "inspect", one}, kTimeoutS)));
  RunResult r = run({cli(), "verify", one}, kTimeoutS);
  ASSERT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_EQ(count_lines(r.out), 1u) << r.out;
  EXPECT_NE(r.out.find("'clean/data/1'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CRC32 mismatch"), std::string::npos) << r.out;

  const std::string two =
      flip_at("clean.pt", {record_offset("clean/data/0"), record_offset("clean/data/2", 40)}, dir);
  r = run({cli(), "verify", two}, kTimeoutS);
  ASSERT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_EQ(count_lines(r.out), 2u) << r.out;
  EXPECT_NE(r.out.find("'clean/data/0'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'clean/data/2'"), std::string::npos) << r.out;
}

// torch-zip-zstd: the record CRC and the chunk's own checksum or frame check both see it.
TEST(Verify, CompressedChunksAreDecodedAndChecked) {
  const std::string dir = scratch("verify_zstd");
  const std::string z = dir + "/clean.zstd.pt";
  ASSERT_TRUE(succeeds(
      run({cli(), "convert", input("clean.pt"), z, "--format", "torch-zip-zstd"}, kTimeoutS)));
  ASSERT_TRUE(succeeds(run({cli(), "verify", z}, kTimeoutS)));
  // Flip a byte in the middle of the first storage record's chunk payload.
  std::string bytes = read_file(z);
  auto [offset, size] = zip_record(bytes, "/data/0");
  ASSERT_GT(size, 100u);
  bytes[offset + size - 20] = char(bytes[offset + size - 20] ^ 0x5a);
  const std::string bad = dir + "/bad.zstd.pt";
  write_file(bad, bytes);
  RunResult r = run({cli(), "verify", bad}, kTimeoutS);
  ASSERT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_NE(r.out.find("CRC32 mismatch"), std::string::npos) << r.out;
  EXPECT_GE(count_lines(r.out), 2u) << "the decoded storage should fail too:\n" << r.out;
}

// Central-directory entry of the record whose name ends with `suffix` (offset of "PK\1\2").
size_t central_entry(const std::string& b, const std::string& suffix) {
  for (size_t p = b.find(std::string("PK\x01\x02", 4)); p != std::string::npos;
       p = b.find(std::string("PK\x01\x02", 4), p + 4)) {
    const std::string name = b.substr(p + 46, le(b, p + 28, 2));
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return p;
  }
  return std::string::npos;
}

void put_le32(std::string& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = char(v >> (8 * i));
}

// torch-zip-zstd records whose directory sizes disagree with their zstd data: verify decodes
// each record and names it with what is wrong, and a load of the same file fails in one line
// (never a crash, never a short tensor).
TEST(Verify, CompressedRecordSizesThatLieAreNamed) {
  const std::string dir = scratch("verify_zstd_sizes");
  const std::string z = dir + "/clean.zstd.pt";
  ASSERT_TRUE(succeeds(
      run({cli(), "convert", input("clean.pt"), z, "--format", "torch-zip-zstd"}, kTimeoutS)));
  const std::string clean = read_file(z);
  const size_t cd = central_entry(clean, "/data/0");
  ASSERT_NE(cd, std::string::npos);
  ASSERT_EQ(le(clean, cd + 10, 2), 93u) << "data/0 should be a zstd (method 93) record";
  const uint32_t packed = le(clean, cd + 20, 4), unpacked = le(clean, cd + 24, 4);
  ASSERT_GT(packed, 16u);
  struct Lie {
    const char* name;
    size_t field;  // in the central-directory entry: +20 compressed, +24 uncompressed size
    uint32_t value;
    const char* verify_says;
    const char* load_says;
  };
  const Lie lies[] = {
      {"short_output", 24, unpacked - 1, "decodes to more than the",
       "directory says it decodes to"},
      {"long_output", 24, unpacked + 1, "the directory claims", "directory says it decodes to"},
      {"cut_input", 20, packed - 1, "truncated zstd frame", "runs past the end of the record"},
  };
  for (const Lie& lie : lies) {
    std::string bytes = clean;
    put_le32(bytes, cd + lie.field, lie.value);
    const std::string bad = dir + "/" + lie.name + ".pt";
    write_file(bad, bytes);
    RunResult r = run({cli(), "verify", bad}, kTimeoutS);
    ASSERT_TRUE(r.exited && r.exit_code == 1) << lie.name << ": " << r.describe();
    EXPECT_NE(r.out.find("/data/0'"), std::string::npos) << lie.name << ":\n" << r.out;
    EXPECT_NE(r.out.find(lie.verify_says), std::string::npos) << lie.name << ":\n" << r.out;
    RunResult load =
        run({cli(), "convert", bad, dir + "/out.pt", "--format", "torch-zip"}, kTimeoutS);
    EXPECT_TRUE(fails_cleanly(load, bad, lie.load_says)) << lie.name;
    EXPECT_FALSE(fs::exists(dir + "/out.pt")) << lie.name;
  }
}

TEST(Verify, BrokenStructureIsReported) {
  const std::string dir = scratch("verify_broken");
  std::string bytes = read_file(input("clean.legacy.pt"));
  const std::string cut = dir + "/cut.legacy.pt";
  write_file(cut, bytes.substr(0, bytes.size() - 100));
  RunResult r = run({cli(), "verify", cut}, kTimeoutS);
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_GE(count_lines(r.out), 1u);
  EXPECT_NE(r.out.find(cut), std::string::npos) << r.out;
  RunResult missing = run({cli(), "verify", dir + "/nope.pt"}, kTimeoutS);
  EXPECT_TRUE(missing.exited && missing.exit_code == 1) << missing.describe();
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
