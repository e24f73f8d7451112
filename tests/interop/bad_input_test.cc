// The CLI on broken and hostile input: every failure is exit status 1 (never a signal, never
// a hang) with one line on stderr naming the file; convert never leaves a partial or
// temporary file and never damages an existing output; usage errors are exit status 2.
//
// py/make_bad_inputs.py writes a small real torch.save file in each format, the offsets of
// its structural boundaries, and hostile variants; it runs once (the prepare step).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

// A hang guard, not a performance threshold: these files are a few hundred bytes.
constexpr int kTimeoutS = 30;

std::string prepare(const std::string& dir) {
  RunResult r = run({kPython, py_script("make_bad_inputs.py"), dir}, 300);
  return r.exited && r.exit_code == 0 ? "" : r.describe();
}

std::string input(const std::string& name) { return work_dir() + "/" + name; }

// The failure contract of every ckptio command on bad input.
::testing::AssertionResult fails_cleanly(const RunResult& r, const std::string& path) {
  if (!r.exited || r.exit_code != 1)
    return ::testing::AssertionFailure() << "want exit 1: " << r.describe();
  if (count_lines(r.err) != 1 || r.err.back() != '\n')
    return ::testing::AssertionFailure() << "want exactly one line on stderr: " << r.describe();
  if (r.err.find(path) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message does not name " << path << ": " << r.describe();
  return ::testing::AssertionSuccess();
}

RunResult inspect(const std::string& path) {
  return run({cli(), "inspect", path, "--json"}, kTimeoutS);
}

class Truncated : public ::testing::TestWithParam<std::string> {};

// Cut the file at every structural boundary (inside each local header, every opcode of
// data.pkl, the central directory, the EOCD; each of the legacy stream's five pickles and
// storage blobs): inspect and convert must both fail cleanly.
TEST_P(Truncated, EveryBoundaryFailsCleanly) {
  const std::string fmt = GetParam();
  const std::string whole = read_file(input("small." + fmt + ".pt"));
  const json cuts = read_json(input("cuts.json"))[fmt];
  ASSERT_GT(cuts.size(), 50u);
  const std::string dir = scratch("truncated_" + fmt);
  for (const auto& cut : cuts) {
    size_t at = cut[0];
    std::string what = cut[1];
    std::string path = dir + "/cut_" + std::to_string(at) + ".pt";
    write_file(path, whole.substr(0, at));
    EXPECT_TRUE(fails_cleanly(inspect(path), path)) << "cut at " << at << " (" << what << ")";
    fs::remove(path);
  }
  // convert on a sample of the cuts (all of them would only repeat the reader's checks).
  for (size_t i = 0; i < cuts.size(); i += 7) {
    size_t at = cuts[i][0];
    std::string path = dir + "/cut_" + std::to_string(at) + ".pt";
    write_file(path, whole.substr(0, at));
    std::string out_dir = scratch("truncated_out_" + fmt);  // per format: ctest runs both at once
    RunResult r =
        run({cli(), "convert", path, out_dir + "/out.pt", "--format", "torch-zip"}, kTimeoutS);
    EXPECT_TRUE(fails_cleanly(r, path)) << "cut at " << at;
    EXPECT_EQ(list_dir(out_dir), std::vector<std::string>{}) << "convert left files";
    fs::remove(path);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, Truncated, ::testing::Values("zip", "legacy"),
                         [](const auto& info) { return info.param; });

TEST(BadInput, SmallFilesAreGood) {
  // The base of every variant loads: the failures below come from the damage alone.
  for (const char* f : {"small.zip.pt", "small.legacy.pt"}) {
    RunResult r = inspect(input(f));
    EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  }
}

TEST(BadInput, NotACheckpoint) {
  const std::string dir = scratch("not_a_checkpoint");
  const std::vector<std::pair<std::string, std::string>> files = {
      {"empty.pt", ""},
      {"text.pt", "hello, this is not a checkpoint\n"},
      {"zeros.pt", std::string(4096, '\0')},
      {"pk_only.pt", "PK\x03\x04"},
      {"pickle_only.pt", "\x80\x02]q\x00."},  // a pickle, but no legacy magic number
  };
  for (const auto& [name, data] : files) {
    std::string path = dir + "/" + name;
    write_file(path, data);
    EXPECT_TRUE(fails_cleanly(inspect(path), path)) << name;
  }
  std::string missing = dir + "/does_not_exist.pt";
  EXPECT_TRUE(fails_cleanly(inspect(missing), missing));
  EXPECT_TRUE(fails_cleanly(inspect(dir), dir)) << "a directory";
}

TEST(BadInput, WrongLegacyMagic) {
  std::string path = input("bad_magic.legacy.pt");
  EXPECT_TRUE(fails_cleanly(inspect(path), path));
}

// A pickle that would run os.system on load: refused by name, never executed.
TEST(BadInput, OsSystemGlobalRefused) {
  for (const char* f : {"evil_system.zip.pt", "evil_system.legacy.pt"}) {
    std::string path = input(f);
    RunResult r = inspect(path);
    ASSERT_TRUE(fails_cleanly(r, path)) << f;
    EXPECT_TRUE(r.err.find("posix.system") != std::string::npos ||
                r.err.find("os.system") != std::string::npos)
        << r.describe();
    // --allow-objects shows unknown classes as opaque objects; it must still not call them.
    run({cli(), "inspect", path, "--json", "--allow-objects"}, kTimeoutS);
    EXPECT_FALSE(fs::exists(input("ckptio_bad_input_executed"))) << "the pickle was executed";
  }
}

// data.pkl says the storage has 1000000 elements; data/0 holds 12.
TEST(BadInput, LyingNumelNamesTheRecord) {
  std::string path = input("lying_numel.zip.pt");
  RunResult r = inspect(path);
  ASSERT_TRUE(fails_cleanly(r, path));
  EXPECT_NE(r.err.find("data/0"), std::string::npos) << r.describe();
}

// The legacy blob header disagrees with the element count in the pickle.
TEST(BadInput, LyingLegacyCountFails) {
  std::string path = input("lying_count.legacy.pt");
  EXPECT_TRUE(fails_cleanly(inspect(path), path));
}

TEST(BadInput, MissingRecordNamed) {
  std::string path = input("missing_record.zip.pt");
  RunResult r = inspect(path);
  ASSERT_TRUE(fails_cleanly(r, path));
  EXPECT_NE(r.err.find("data/0"), std::string::npos) << r.describe();
}

const char* const kBadForConvert[] = {"evil_system.zip.pt",    "evil_system.legacy.pt",
                                      "lying_numel.zip.pt",    "lying_count.legacy.pt",
                                      "missing_record.zip.pt", "bad_magic.legacy.pt"};

TEST(BadInputConvert, LeavesNoOutputOrTemporaryFile) {
  for (const char* f : kBadForConvert)
    for (const char* fmt : {"torch-zip", "torch-legacy"}) {
      std::string dir = scratch("convert_new");
      RunResult r = run({cli(), "convert", input(f), dir + "/out.pt", "--format", fmt}, kTimeoutS);
      EXPECT_TRUE(fails_cleanly(r, input(f))) << f << " -> " << fmt;
      EXPECT_EQ(list_dir(dir), std::vector<std::string>{}) << f << " -> " << fmt;
    }
}

TEST(BadInputConvert, KeepsExistingOutputByteIdentical) {
  const std::string old = read_file(input("small.zip.pt"));
  for (const char* f : kBadForConvert)
    for (const char* fmt : {"torch-zip", "torch-legacy"}) {
      std::string dir = scratch("convert_existing");
      std::string out = dir + "/out.pt";
      write_file(out, old);
      RunResult r = run({cli(), "convert", input(f), out, "--format", fmt}, kTimeoutS);
      EXPECT_TRUE(fails_cleanly(r, input(f))) << f << " -> " << fmt;
      EXPECT_EQ(list_dir(dir), std::vector<std::string>{"out.pt"}) << f << " -> " << fmt;
      EXPECT_TRUE(read_file(out) == old) << "old " << out << " changed (" << f << ")";
    }
}

TEST(BadInputConvert, GoodInputStillConverts) {
  // The same commands succeed on the undamaged file, so the failures above are the input's.
  std::string dir = scratch("convert_good");
  for (const char* fmt : {"torch-zip", "torch-legacy"}) {
    RunResult r =
        run({cli(), "convert", input("small.zip.pt"), dir + "/out.pt", "--format", fmt}, kTimeoutS);
    EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{"out.pt"});
  }
}

TEST(Usage, ErrorsExitTwo) {
  const std::string good = input("small.zip.pt");
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"frobnicate", good},
      {"inspect"},
      {"convert", good},
      {"inspect", good, "--no-such-flag"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {cli()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = run(argv, kTimeoutS);
    EXPECT_TRUE(r.exited && r.exit_code == 2) << r.describe();
    EXPECT_NE(r.err, "") << r.describe();
  }
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
