// The plugin ABI seen from the host: deliberately broken plugins (tests/abi/test_plugins.cc)
// are each refused with a reason, recorded, listed by `ckptio plugins`, and never stop the
// host from working with the good ones.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../host/test_checkpoints.h"
#include "ckptio/ckptio.h"
#include "support/files.h"
#include "support/process.h"
#include "support/scratch.h"

namespace ckptio {
namespace {
namespace fs = std::filesystem;

const std::string kBroken = CKPTIO_ABI_PLUGIN_DIR;      // the test plugins
const std::string kBundled = CKPTIO_BUNDLED_PLUGIN_DIR;  // torch-zip, torch-legacy
const std::string kGood = CKPTIO_ABI_GOOD_PLUGIN;
const std::string kCli = CKPTIO_CLI;

struct Broken {
  const char* file;
  const char* reason;
};
const Broken kBrokenPlugins[] = {
    {"ckptio-no-entry.so", "not a ckptio plugin: no exported symbol ckptio_plugin_entry"},
    {"ckptio-entry-throws.so", "the entry function threw an exception"},
    {"ckptio-abi-too-new.so", "plugin speaks no ABI version in 1..1"},
    {"ckptio-abi-lies.so", "plugin answered ABI version 2, host speaks 1..1"},
    {"ckptio-abi-too-old.so", "plugin answered ABI version 0, host speaks 1..1"},
    {"ckptio-small-struct.so", "plugin table struct_size 40 is smaller than the"},
    {"ckptio-missing-dep.so", "libckptio-abi-dep.so: cannot open shared object file"},
};

using test_support::ScratchDir;

const PluginInfo* find_info(const Registry& reg, const std::string& file) {
  for (const auto& p : reg.plugins())
    if (fs::path(p.path).filename() == file) return &p;
  return nullptr;
}

// Registry with the probe-misbehaving plugins first (they would win a naive detection) and
// the bundled ones after.
void load_all(Registry& reg) {
  for (const char* f : {"ckptio-probe-throws.so", "ckptio-probe-nonsense.so"})
    EXPECT_TRUE(reg.load_plugin(kBroken + "/" + f)) << f;
  for (const Broken& b : kBrokenPlugins) reg.load_plugin(kBroken + "/" + b.file);
  EXPECT_TRUE(reg.load_plugin(kBundled + "/ckptio-torch-zip.so"));
  EXPECT_TRUE(reg.load_plugin(kBundled + "/ckptio-torch-legacy.so"));
}

struct RunResult {
  int rc;
  std::string out;  // stdout and stderr
};
RunResult run(const std::string& cmd) {
  test_support::RunResult r = test_support::run_shell(cmd + " 2>&1");
  return RunResult{r.exited ? r.exit_code : -1, r.out};
}

TEST(AbiPlugins, EachBrokenPluginIsRefusedWithItsReason) {
  Registry reg;
  for (const Broken& b : kBrokenPlugins) {
    SCOPED_TRACE(b.file);
    EXPECT_FALSE(reg.load_plugin(kBroken + "/" + b.file));
    const PluginInfo* info = find_info(reg, b.file);
    ASSERT_NE(info, nullptr);
    EXPECT_TRUE(info->name.empty());
    EXPECT_NE(info->error.find(b.reason), std::string::npos) << info->error;
    EXPECT_EQ(info->error.find('\n'), std::string::npos) << "one line: " << info->error;
    if (std::string(b.file) == "ckptio-missing-dep.so") {
      EXPECT_EQ(info->error.rfind("cannot load: ", 0), 0u) << info->error;
    }
  }
  EXPECT_TRUE(reg.formats().empty());
  // The host keeps working: the bundled plugins load after all of them.
  EXPECT_TRUE(reg.load_plugin(kBundled + "/ckptio-torch-zip.so"));
  EXPECT_TRUE(reg.has_format("torch-zip"));
}

TEST(AbiPlugins, ProbeThatThrowsOrReturnsNonsenseNeverWinsDetection) {
  Registry reg;
  load_all(reg);
  EXPECT_TRUE(reg.has_format("probe-high"));
  EXPECT_TRUE(reg.has_format("probe-throws"));
  ScratchDir dir("abi");
  for (const char* format : {"torch-zip", "torch-legacy"}) {
    SCOPED_TRACE(format);
    SaveOptions so;
    so.format = format;
    so.registry = &reg;
    save(dir / "a.pt", testing::small_checkpoint(), so);
    EXPECT_EQ(detect_format(dir / "a.pt", &reg), format);
    LoadOptions lo;
    lo.registry = &reg;
    Checkpoint c = load(dir / "a.pt", lo);
    EXPECT_EQ(c.format, format);
    EXPECT_EQ(c.tree.root->entries.size(), 4u);
  }
  // A file nobody reads: a clean error, not the plugin that claimed 1000.
  test_support::write_file(dir / "junk.bin", "not a checkpoint at all");
  try {
    detect_format(dir / "junk.bin", &reg);
    FAIL() << "junk was detected as a format";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("junk.bin"), std::string::npos) << e.what();
  }
}

TEST(AbiPlugins, WorkingPluginSurvivesRegistriesAndIsUsable) {
  // Built with -fno-gnu-unique: were the host to unload it while a table, a status or a
  // string of it is still referenced, this would crash instead of passing by luck.
  ScratchDir dir("abi");
  {
    Registry first;
    ASSERT_TRUE(first.load_plugin(kGood));
  }
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kGood));
  ASSERT_TRUE(reg.has_format("abi-good"));
  Checkpoint c;
  auto root = Value::dict();
  root->entries.emplace_back(Value::str("n"), Value::integer(1234));
  c.tree.root = root;
  SaveOptions so;
  so.format = "abi-good";
  so.registry = &reg;
  save(dir / "x.abigood", c, so);
  LoadOptions lo;
  lo.registry = &reg;
  Checkpoint back = load(dir / "x.abigood", lo);
  EXPECT_EQ(back.format, "abi-good");
  ASSERT_EQ(back.tree.root->entries.size(), 2u);
  EXPECT_EQ(back.tree.root->get("n")->i, 1234);
  EXPECT_EQ(back.tree.root->get("tag")->s, "abi-good");
}

TEST(AbiPlugins, CliListsEachFailureAndKeepsWorking) {
  std::string env = "CKPTIO_PLUGIN_PATH='" + kBroken + "' ";
  RunResult r = run(env + "'" + kCli + "' plugins");
  EXPECT_EQ(r.rc, 0) << r.out;
  for (const Broken& b : kBrokenPlugins) {
    // "  FAILED  <path>" and the reason on the next line.
    std::string head = "  FAILED  " + kBroken + "/" + b.file + "\n          ";
    size_t at = r.out.find(head);
    ASSERT_NE(at, std::string::npos) << b.file << " in:\n" << r.out;
    std::string reason = r.out.substr(at + head.size());
    reason = reason.substr(0, reason.find('\n'));
    EXPECT_NE(reason.find(b.reason), std::string::npos) << reason;
  }
  EXPECT_NE(r.out.find("formats: probe-high probe-negative"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("torch-zip 0.1.0  (ABI 1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("torch-legacy 0.1.0  (ABI 1)"), std::string::npos) << r.out;

  // Converting (with detection) works with all of them present.
  ScratchDir dir("abi");
  Registry reg;
  reg.load_plugin(kBundled + "/ckptio-torch-zip.so");
  SaveOptions so;
  so.registry = &reg;
  save(dir / "in.pt", testing::small_checkpoint(), so);
  r = run(env + "'" + kCli + "' convert '" + (dir / "in.pt") + "' '" + (dir / "out.pt") +
          "' --format torch-legacy");
  EXPECT_EQ(r.rc, 0) << r.out;
  r = run(env + "'" + kCli + "' inspect '" + (dir / "out.pt") + "'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("format:   torch-legacy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'step': 7"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ckptio
