// Plugin discovery and loading through Boost.DLL, with the real plugin .so files.
#include <gtest/gtest.h>

#include <filesystem>

#include "ckptio/ckptio.h"
#include "support/files.h"
#include "support/scratch.h"
#include "test_checkpoints.h"

namespace ckptio {
namespace {
namespace fs = std::filesystem;

const std::string kPluginDir = CKPTIO_PLUGIN_DIR;

using test_support::ScratchDir;

TEST(Registry, LoadsBothBundledPlugins) {
  Registry reg;
  EXPECT_TRUE(reg.load_plugin(kPluginDir + "/ckptio-torch-zip.so"));
  EXPECT_TRUE(reg.load_plugin(kPluginDir + "/ckptio-torch-legacy.so"));
  EXPECT_TRUE(reg.has_format("torch-zip"));
  EXPECT_TRUE(reg.has_format("torch-legacy"));
  ASSERT_EQ(reg.plugins().size(), 2u);
  for (const auto& p : reg.plugins()) {
    EXPECT_TRUE(p.error.empty()) << p.error;
    EXPECT_EQ(p.abi_version, 2u);  // the bundled plugins speak the host's newest ABI
  }
}

TEST(Registry, GlobalRegistryFindsPluginsNextToLibckptio) {
  EXPECT_TRUE(Registry::global().has_format("torch-zip"));
  EXPECT_TRUE(Registry::global().has_format("torch-legacy"));
}

TEST(Registry, RemovingAPluginRemovesItsFormat) {
  // Write a legacy file with both plugins, then read it with only torch-zip present.
  ScratchDir dir;
  Registry full;
  full.load_plugin(kPluginDir + "/ckptio-torch-zip.so");
  full.load_plugin(kPluginDir + "/ckptio-torch-legacy.so");
  SaveOptions so;
  so.format = "torch-legacy";
  so.registry = &full;
  save(dir / "legacy.pt", testing::small_checkpoint(), so);

  ScratchDir only_zip;
  fs::copy_file(kPluginDir + "/ckptio-torch-zip.so", only_zip / "ckptio-torch-zip.so");
  setenv("CKPTIO_PLUGIN_PATH", only_zip.path().c_str(), 1);
  Registry reg;
  // Discovery also looks next to libckptio; load only the search path's first entry here.
  reg.load_plugin(only_zip / "ckptio-torch-zip.so");
  unsetenv("CKPTIO_PLUGIN_PATH");
  EXPECT_FALSE(reg.has_format("torch-legacy"));
  LoadOptions lo;
  lo.registry = &reg;
  try {
    load(dir / "legacy.pt", lo);
    FAIL() << "a legacy file must not load without the torch-legacy plugin";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("legacy.pt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("formats: torch-zip"), std::string::npos) << e.what();
  }
}

// A plugin that wraps another format (zstd) finds the inner one through the host's
// find_format, which must answer from the registry the load or save goes through: here a
// private one without torch-zip, while the global registry has it.
TEST(Registry, WrappedFormatIsLookedUpInTheCallersRegistry) {
  ASSERT_TRUE(Registry::global().has_format("torch-zip"));
  ScratchDir dir;
  SaveOptions zstd;
  zstd.format = "zstd";  // wraps torch-zip
  save(dir / "model.pt.zst", testing::small_checkpoint(), zstd);

  Registry only_zstd;
  ASSERT_TRUE(only_zstd.load_plugin(kPluginDir + "/ckptio-compressed.so"));
  ASSERT_FALSE(only_zstd.has_format("torch-zip"));
  LoadOptions lo;
  lo.registry = &only_zstd;
  try {
    load(dir / "model.pt.zst", lo);
    FAIL() << "torch-zip inside zstd must not load from a registry without torch-zip";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("inner format 'torch-zip'"), std::string::npos)
        << e.what();
  }
  SaveOptions so = zstd;
  so.registry = &only_zstd;
  try {
    save(dir / "out.pt.zst", testing::small_checkpoint(), so);
    FAIL() << "zstd must not find torch-zip to write in a registry without it";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner format 'torch-zip' is not available"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out.pt.zst"));

  Registry both;
  ASSERT_TRUE(both.load_plugin(kPluginDir + "/ckptio-compressed.so"));
  ASSERT_TRUE(both.load_plugin(kPluginDir + "/ckptio-torch-zip.so"));
  lo.registry = &both;
  EXPECT_EQ(load(dir / "model.pt.zst", lo).tree.storages.size(),
            testing::small_checkpoint().tree.storages.size());
}

TEST(Registry, SearchPathHonoursEnvironmentFirst) {
  setenv("CKPTIO_PLUGIN_PATH", "/a:/b", 1);
  auto dirs = Registry::search_path();
  unsetenv("CKPTIO_PLUGIN_PATH");
  ASSERT_GE(dirs.size(), 3u);
  EXPECT_EQ(dirs[0], "/a");
  EXPECT_EQ(dirs[1], "/b");
}

TEST(Registry, RecordsWhyAFileIsNotAPlugin) {
  ScratchDir dir;
  test_support::write_file(dir / "ckptio-garbage.so", "not an ELF file");
  Registry reg;
  EXPECT_FALSE(reg.load_plugin(dir / "ckptio-garbage.so"));
  // A real shared library without the entry symbol: libckptio itself.
  EXPECT_FALSE(reg.load_plugin(CKPTIO_LIBCKPTIO));
  ASSERT_EQ(reg.plugins().size(), 2u);
  EXPECT_NE(reg.plugins()[0].error.find("cannot load"), std::string::npos)
      << reg.plugins()[0].error;
  EXPECT_NE(reg.plugins()[1].error.find("ckptio_plugin_entry"), std::string::npos)
      << reg.plugins()[1].error;
  EXPECT_TRUE(reg.formats().empty());
}

TEST(Registry, AFormatAlreadyProvidedIsNotReplaced) {
  ScratchDir dir;
  fs::copy_file(kPluginDir + "/ckptio-torch-zip.so", dir / "ckptio-torch-zip-copy.so");
  Registry reg;
  EXPECT_TRUE(reg.load_plugin(kPluginDir + "/ckptio-torch-zip.so"));
  EXPECT_TRUE(reg.load_plugin(dir / "ckptio-torch-zip-copy.so"));
  EXPECT_EQ(reg.formats(), std::vector<std::string>{"torch-zip"});
  EXPECT_NE(reg.plugins()[1].error.find("already provided"), std::string::npos);
}

}  // namespace
}  // namespace ckptio
