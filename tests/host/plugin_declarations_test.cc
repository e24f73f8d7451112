// What plugins declare through the ABI's appended entries, seen through the real CLI and the
// real plugin .so files: option keys (listed by `ckptio plugins`, checked before the plugin
// runs, the inspect view) and the container check behind `ckptio verify`.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "ckptio/ckptio.h"
#include "support/files.h"
#include "support/process.h"
#include "support/scratch.h"
#include "test_checkpoints.h"

namespace ckptio {
namespace {
namespace fs = std::filesystem;

struct Output {
  int status;
  std::string out;
};

Output run(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(CKPTIO_CLI) + " " + args + " 2>&1";
  test_support::RunResult r = test_support::run_shell(cmd);
  return Output{r.shell_code(), r.out};
}

const std::string kExample =
    std::string(CKPTIO_SOURCE_DIR) + "/examples/data/example_checkpoint.pt";

using test_support::ScratchDir;

// A copy of a torch-zip file with one byte of record archive/data/0's data flipped: its
// CRC-32 no longer matches, while the structure still parses.
std::string with_flipped_record_byte(const std::string& file, const std::string& bad) {
  std::string bytes = test_support::read_file(file);
  const size_t at = bytes.find("archive/data/0");
  const size_t pad = at == std::string::npos ? at : bytes.find("ZZZZ", at);  // alignment padding
  if (pad == std::string::npos) return "";
  size_t i = pad;
  while (bytes[i] == 'Z') ++i;
  bytes[i] ^= 0x40;
  test_support::write_file(bad, bytes);
  return bad;
}

TEST(PluginDeclarations, PluginsListsEachFormatsOptions) {
  const Output o = run("plugins");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("torch-zip options:"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("alignment=N"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("[default 64]"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("meta.KEY"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("[inspect: modules]"), std::string::npos) << o.out;  // torchscript's view
}

TEST(PluginDeclarations, AnUndeclaredKeyFailsNamingTheKeysTheFormatTakes) {
  ScratchDir dir("decl");
  Output o = run("convert " + kExample + " " + dir / "out.pt" +
                 " --format torch-zip --option level=3");
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("--option 'level=3': format 'torch-zip' has no option 'level'"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("prefix, alignment"), std::string::npos) << o.out;
  EXPECT_FALSE(fs::exists(dir / "out.pt"));

  o = run("convert " + kExample + " " + dir / "out.pt" + " --format torch-zip --option alignment=big");
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("must be a number"), std::string::npos) << o.out;

  o = run("inspect " + kExample + " --read-option view=modules");  // torchscript's, not zip's
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("format 'torch-zip' has no read option 'view'"), std::string::npos)
      << o.out;
  o = run("inspect " + kExample + " --limit prefix=3");  // a write option is no limit
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("has no limit 'prefix'"), std::string::npos) << o.out;
  EXPECT_EQ(run("inspect " + kExample + " --limit max_memo=100000").status, 0);
}

// zstd's inner=NAME names a format whose own keys are accepted too, and only those.
TEST(PluginDeclarations, AWrappingFormatTakesTheInnerFormatsKeys) {
  ScratchDir dir("decl");
  Output o = run("convert " + kExample + " " + dir / "a.pt.zst" +
                 " --format zstd --option inner=torch-zip --option alignment=4096 --option level=1");
  ASSERT_EQ(o.status, 0) << o.out;
  o = run("convert " + kExample + " " + dir / "b.pt.zst" +
          " --format zstd --option inner=torch-legacy --option alignment=4096");
  EXPECT_EQ(o.status, 1) << o.out;  // torch-legacy has no alignment
  EXPECT_NE(o.out.find("has no option 'alignment'"), std::string::npos) << o.out;
  EXPECT_FALSE(fs::exists(dir / "b.pt.zst"));
  EXPECT_EQ(run("verify " + dir / "a.pt.zst").status, 0);
}

// The CLI with only some plugins: libckptio copied into a directory whose ckptio/plugins
// holds the chosen .so files (the CLI's RUNPATH yields to LD_LIBRARY_PATH).
class SomePlugins {
 public:
  explicit SomePlugins(const ScratchDir& dir, std::initializer_list<const char*> plugins)
      : lib_(dir / "lib") {
    fs::create_directories(lib_ + "/ckptio/plugins");
    fs::copy_file(CKPTIO_LIBCKPTIO, lib_ + "/" + fs::path(CKPTIO_LIBCKPTIO).filename().string(),
                  fs::copy_options::overwrite_existing);
    for (const char* p : plugins)
      fs::copy_file(std::string(CKPTIO_PLUGIN_DIR) + "/" + p, lib_ + "/ckptio/plugins/" + p,
                    fs::copy_options::overwrite_existing);
  }
  std::string env() const { return "CKPTIO_PLUGIN_PATH= LD_LIBRARY_PATH=" + lib_; }

 private:
  std::string lib_;
};

TEST(PluginDeclarations, RemovingAPluginRemovesItsFormatFromEveryCommand) {
  const fs::path installed = fs::path(CKPTIO_INSTALL_PLUGIN_DIR) / "ckptio-torch-zip.so";
  if (fs::exists(installed))
    GTEST_SKIP() << installed << " is installed: the CLI would find torch-zip there";
  ScratchDir dir("decl");
  const std::string file = dir / "model.pt";
  save(file, testing::small_checkpoint());  // torch-zip

  SomePlugins legacy_only(dir, {"ckptio-torch-legacy.so"});
  Output o = run("plugins", legacy_only.env());
  ASSERT_NE(o.out.find("formats available: torch-legacy\n"), std::string::npos) << o.out;
  o = run("verify " + file, legacy_only.env());
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("not a checkpoint any loaded plugin reads"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("CRC32"), std::string::npos) << o.out;
  // Not even the zip layer is checked without the plugin: one problem, not a CRC mismatch.
  const std::string bad = with_flipped_record_byte(file, dir / "bad.pt");
  ASSERT_FALSE(bad.empty());
  o = run("verify " + bad, legacy_only.env());
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find(": 1 problem found"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("CRC"), std::string::npos) << o.out;
  o = run("verify --input-format torch-zip " + file, legacy_only.env());
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("unknown format 'torch-zip'"), std::string::npos) << o.out;
  // Reading, converting, timing and writing the format are gone with it too.
  const std::string convert = "convert " + file + " " + dir / "out.pt" + " --format torch-legacy";
  for (const std::string& cmd : {"inspect " + file, "inspect --json " + file, convert,
                                 "bench " + file}) {
    o = run(cmd, legacy_only.env());
    EXPECT_EQ(o.status, 1) << cmd << ": " << o.out;
    EXPECT_NE(o.out.find("not a checkpoint any loaded plugin reads"), std::string::npos)
        << cmd << ": " << o.out;
  }
  SaveOptions as_legacy;
  as_legacy.format = "torch-legacy";
  const std::string legacy_file = dir / "legacy.pt";
  save(legacy_file, testing::small_checkpoint(), as_legacy);
  o = run("convert " + legacy_file + " " + dir / "zip.pt" + " --format torch-zip",
          legacy_only.env());
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("unknown output format 'torch-zip'"), std::string::npos) << o.out;
  EXPECT_FALSE(fs::exists(dir / "zip.pt"));
  o = run("inspect " + legacy_file, legacy_only.env());
  EXPECT_EQ(o.status, 0) << o.out;  // the remaining plugin still reads its own format

  SomePlugins with_zip(dir, {"ckptio-torch-legacy.so", "ckptio-torch-zip.so"});
  o = run("verify " + file, with_zip.env());
  EXPECT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("record CRC32s checked"), std::string::npos) << o.out;
  o = run("verify " + bad, with_zip.env());
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("CRC"), std::string::npos) << o.out;
}

// The library call behind it, on a private registry.
TEST(PluginDeclarations, CheckContainerAsksTheFormatsPlugin) {
  ScratchDir dir("decl");
  const std::string file = dir / "model.pt";
  save(file, testing::small_checkpoint());
  Registry legacy;
  ASSERT_TRUE(legacy.load_plugin(std::string(CKPTIO_PLUGIN_DIR) + "/ckptio-torch-legacy.so"));
  LoadOptions lo;
  lo.registry = &legacy;
  EXPECT_THROW(check_container(file, lo), Error);

  Registry zip;
  ASSERT_TRUE(zip.load_plugin(std::string(CKPTIO_PLUGIN_DIR) + "/ckptio-torch-zip.so"));
  lo.registry = &zip;
  ContainerCheck c = check_container(file, lo);
  EXPECT_TRUE(c.offered);
  EXPECT_EQ(c.format, "torch-zip");
  EXPECT_GT(c.checksums, 0u);
  EXPECT_TRUE(c.problems.empty());

  // A flipped byte inside a record's data: the container check names the record.
  const std::string bad = with_flipped_record_byte(file, dir / "bad.pt");
  ASSERT_FALSE(bad.empty());
  c = check_container(bad, lo);
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_NE(c.problems[0].find("archive/data/0"), std::string::npos) << c.problems[0];
}

}  // namespace
}  // namespace ckptio
