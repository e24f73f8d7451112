// The plugin ABI seen from the host: deliberately broken plugins (tests/abi/test_plugins.cc)
// are each refused with a reason, recorded, listed by `ckptio plugins`, and never stop the
// host from working with the good ones. Versions side by side: a plugin built against the
// frozen version-1 header (abi_v1_plugin.cc) and a version-2 one with a directory format
// (abi_dirfmt_plugin.cc) load into one host, and each reads (and writes) its format.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../host/test_checkpoints.h"
#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"
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
const std::string kV1 = CKPTIO_ABI_V1_PLUGIN;          // built against tests/abi/v1's header
const std::string kDirfmt = CKPTIO_ABI_DIRFMT_PLUGIN;  // ABI 2, a directory format

// The versions the host speaks, as its messages spell them: "1..2".
const std::string kHostRange = "1.." + std::to_string(CKPTIO_ABI_VERSION);
const std::string kTooNew = std::to_string(CKPTIO_ABI_VERSION + 1);

struct Broken {
  const char* file;
  std::string reason;
};
const Broken kBrokenPlugins[] = {
    {"ckptio-no-entry.so", "not a ckptio plugin: no exported symbol ckptio_plugin_entry"},
    {"ckptio-entry-throws.so", "the entry function threw an exception"},
    {"ckptio-abi-too-new.so", "plugin speaks no ABI version in " + kHostRange},
    {"ckptio-abi-lies.so",
     "plugin answered ABI version " + kTooNew + ", host speaks " + kHostRange},
    {"ckptio-abi-too-old.so", "plugin answered ABI version 0, host speaks " + kHostRange},
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
  // The bundled plugins are built against the current header.
  const std::string abi = "  (ABI " + std::to_string(CKPTIO_ABI_VERSION) + ")";
  EXPECT_NE(r.out.find("torch-zip 0.1.0" + abi), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("torch-legacy 0.1.0" + abi), std::string::npos) << r.out;
  // The good plugins beside the broken ones: each version, and every plugin still works.
  EXPECT_NE(r.out.find("abi-v1 1.0  (ABI 1)  " + kV1), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("abi-dirfmt 1.0  (ABI 2)  " + kDirfmt), std::string::npos) << r.out;

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

// ---- ABI versions side by side: a version-1 plugin and a version-2 directory format ----

std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> values_of(const Checkpoint& c, const std::string& key) {
  ValuePtr t = c.tree.root->get(key);
  EXPECT_TRUE(t && t->kind == Kind::kTensor) << key;
  if (!t || t->kind != Kind::kTensor) return {};
  const StorageBytes& b = c.storages.at(t->tensor.storage);
  EXPECT_NE(b.data, nullptr) << key;
  if (!b.data) return {};
  std::vector<float> v(b.size / sizeof(float));
  std::memcpy(v.data(), b.data, v.size() * sizeof(float));
  return v;
}

// The file /proc/self/maps says `p` lies in a mapping of (empty when none).
std::string mapped_file(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in >> std::ws, path);
    const size_t dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (at >= lo && at < hi) return path;
  }
  return "";
}

// The abi-v1 format: 64 header bytes, then float32 values.
void write_abi_v1(const std::string& path, const std::vector<float>& v) {
  std::string header(64, '\0');
  std::memcpy(header.data(), "ABIV1", 5);
  test_support::write_file(path, header + floats(v));
}

// A dirfmt checkpoint in `dir` (created): a and b in shard1.bin (at 0 and 64), c in
// shard2.bin, d in sub/d.bin.
void write_dirfmt(const std::string& dir) {
  fs::create_directories(dir + "/sub");
  std::vector<float> shard1(16 + 3, 0.0f);
  for (int i = 0; i < 4; ++i) shard1[i] = 1.0f + float(i);       // a: 1 2 3 4
  for (int i = 0; i < 3; ++i) shard1[16 + i] = -1.0f - float(i);  // b at byte 64: -1 -2 -3
  test_support::write_file(dir + "/shard1.bin", floats(shard1));
  test_support::write_file(dir + "/shard2.bin", floats({0.5f, 0.25f}));
  test_support::write_file(dir + "/sub/d.bin", floats({42.0f}));
  test_support::write_file(dir + "/dirfmt.manifest",
                           "DIRFMT 1\n"
                           "a shard1.bin 0 4\n"
                           "b shard1.bin 64 3\n"
                           "c shard2.bin 0 2\n"
                           "d sub/d.bin 0 1\n");
}

LoadOptions with(Registry& reg) {
  LoadOptions lo;
  lo.registry = &reg;
  return lo;
}

TEST(AbiVersions, V1AndV2PluginsLoadSideBySide) {
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kV1));
  ASSERT_TRUE(reg.load_plugin(kDirfmt));
  ASSERT_TRUE(reg.load_plugin(kBundled + "/ckptio-torch-zip.so"));
  const PluginInfo* v1 = find_info(reg, "ckptio-abi-v1.so");
  const PluginInfo* v2 = find_info(reg, "ckptio-abi-dirfmt.so");
  ASSERT_TRUE(v1 && v2);
  EXPECT_EQ(v1->error, "");
  EXPECT_EQ(v2->error, "");
  EXPECT_EQ(v1->name, "abi-v1");
  EXPECT_EQ(v1->abi_version, 1u);
  EXPECT_EQ(v1->formats, std::vector<std::string>{"abi-v1"});
  EXPECT_EQ(v2->name, "abi-dirfmt");
  EXPECT_EQ(v2->abi_version, 2u);
  EXPECT_EQ(v2->formats, std::vector<std::string>{"abi-dirfmt"});
  EXPECT_TRUE(reg.can_write("abi-v1"));
  EXPECT_TRUE(reg.can_write("abi-dirfmt"));

  // The CLI lists both, with their versions, and reads each format.
  ScratchDir dir("abi");
  write_abi_v1(dir / "x.abiv1", {1, 2, 3});
  write_dirfmt(dir / "ckpt");
  const std::string env = "CKPTIO_PLUGIN_PATH='" + kV1 + ":" + kDirfmt + "' '" + kCli + "' ";
  RunResult r = run(env + "plugins");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("  abi-v1 1.0  (ABI 1)  " + kV1), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  abi-dirfmt 1.0  (ABI 2)  " + kDirfmt), std::string::npos) << r.out;
  r = run(env + "inspect '" + (dir / "x.abiv1") + "'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("format:   abi-v1"), std::string::npos) << r.out;
  r = run(env + "inspect '" + (dir / "ckpt") + "'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("format:   abi-dirfmt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("'d'"), std::string::npos) << r.out;
}

TEST(AbiVersions, V1PluginReadsAndWritesThroughTheV2Host) {
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kV1));
  ASSERT_TRUE(reg.load_plugin(kDirfmt));
  ASSERT_TRUE(reg.load_plugin(kBundled + "/ckptio-torch-zip.so"));
  ScratchDir dir("abi");
  const std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 8.0f};
  write_abi_v1(dir / "in.abiv1", v);
  EXPECT_EQ(detect_format(dir / "in.abiv1", &reg), "abi-v1");

  // Its version-1 storage descriptors (no member field; the bytes after them are 0xFF) read
  // as storages of the file itself: plain, mapped at offset 64, or made by read_storage.
  for (bool zero_copy : {false, true}) {
    SCOPED_TRACE(zero_copy ? "zero_copy" : "copied");
    LoadOptions lo = with(reg);
    lo.zero_copy = zero_copy;
    Checkpoint c = load(dir / "in.abiv1", lo);
    EXPECT_EQ(c.format, "abi-v1");
    ASSERT_EQ(c.tree.storages.size(), 2u);
    EXPECT_EQ(values_of(c, "values"), v);
    std::vector<float> doubled;
    for (float f : v) doubled.push_back(2 * f);
    EXPECT_EQ(values_of(c, "doubled"), doubled);
    EXPECT_EQ(c.tree.root->get("abi")->i, 1);
    if (zero_copy) {
      EXPECT_TRUE(c.storages[0].mapped);
      EXPECT_EQ(fs::path(mapped_file(c.storages[0].data)), fs::canonical(dir / "in.abiv1"));
      EXPECT_FALSE(c.storages[1].mapped);
    }
  }
  auto reader = Reader::open(dir / "in.abiv1", with(reg));
  EXPECT_TRUE(reader->plain(0));
  EXPECT_FALSE(reader->plain(1));
  float got[2] = {};
  ASSERT_TRUE(reader->read_range(0, 4, got, 8).ok());
  EXPECT_EQ(got[0], -2.0f);
  EXPECT_EQ(got[1], 3.25f);
  ASSERT_TRUE(reader->read_range(1, 8, got, 8).ok());
  EXPECT_EQ(got[0], 6.5f);
  EXPECT_EQ(got[1], 0.0f);

  // Writes through the host's sink: abi-v1 -> torch-zip -> abi-v1 keeps the bytes.
  SaveOptions so;
  so.registry = &reg;
  so.format = "torch-zip";
  save(dir / "mid.pt", load(dir / "in.abiv1", with(reg)), so);
  so.format = "abi-v1";
  save(dir / "out.abiv1", load(dir / "mid.pt", with(reg)), so);
  EXPECT_EQ(test_support::read_file(dir / "out.abiv1"), test_support::read_file(dir / "in.abiv1"));

  // A version-1 plugin never sees a directory: not by detection, not when named.
  write_dirfmt(dir / "ckpt");
  Registry only_v1;
  ASSERT_TRUE(only_v1.load_plugin(kV1));
  try {
    load(dir / "ckpt", with(only_v1));
    FAIL() << "a directory was read without a directory format";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir / "ckpt"), std::string::npos) << e.what();
  }
  LoadOptions named = with(reg);
  named.format = "abi-v1";
  try {
    load(dir / "ckpt", named);
    FAIL() << "abi-v1 was given a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("abi-v1"), std::string::npos) << e.what();
  }
}

TEST(AbiVersions, V2PluginReadsADirectoryFromItsMembers) {
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kV1));
  ASSERT_TRUE(reg.load_plugin(kDirfmt));
  ScratchDir dir("abi");
  const std::string ckpt = dir / "ckpt";
  write_dirfmt(ckpt);
  EXPECT_EQ(detect_format(ckpt, &reg), "abi-dirfmt");
  // The manifest is also a checkpoint: its members lie beside it.
  EXPECT_EQ(detect_format(ckpt + "/dirfmt.manifest", &reg), "abi-dirfmt");

  const std::string files[] = {"shard1.bin", "shard1.bin", "shard2.bin", "sub/d.bin"};
  for (const std::string& path : {ckpt, ckpt + "/dirfmt.manifest"}) {
    for (bool zero_copy : {false, true}) {
      SCOPED_TRACE(path + (zero_copy ? " zero_copy" : " copied"));
      LoadOptions lo = with(reg);
      lo.zero_copy = zero_copy;
      Checkpoint c = load(path, lo);
      EXPECT_EQ(c.format, "abi-dirfmt");
      ASSERT_EQ(c.tree.root->entries.size(), 4u);
      ASSERT_EQ(c.tree.storages.size(), 4u);
      EXPECT_EQ(values_of(c, "a"), (std::vector<float>{1, 2, 3, 4}));
      EXPECT_EQ(values_of(c, "b"), (std::vector<float>{-1, -2, -3}));
      EXPECT_EQ(values_of(c, "c"), (std::vector<float>{0.5f, 0.25f}));
      EXPECT_EQ(values_of(c, "d"), (std::vector<float>{42}));
      for (size_t i = 0; i < 4; ++i) {
        SCOPED_TRACE(files[i]);
        EXPECT_EQ(c.storages[i].mapped, zero_copy);
        // Zero-copy: each storage aliases the mapping of its own member (offsets 0 and 64
        // are 64-byte aligned); copied: it lies in no file mapping.
        const std::string in = mapped_file(c.storages[i].data);
        if (zero_copy) {
          EXPECT_EQ(fs::path(in), fs::canonical(ckpt + "/" + files[i]));
        } else {
          EXPECT_NE(in.rfind(fs::canonical(ckpt).string(), 0), 0u) << in;
        }
      }
      if (zero_copy) {
        EXPECT_EQ(c.storages[0].data + 64, c.storages[1].data);  // one mapping of shard1.bin
      }
    }
  }

  // Lazily: each storage is plain in its member, and a range read comes from that member.
  auto reader = Reader::open(ckpt, with(reg));
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(reader->plain(i)) << i;
  float got[2] = {};
  ASSERT_TRUE(reader->read_range(1, 4, got, 8).ok());
  EXPECT_EQ(got[0], -2.0f);
  EXPECT_EQ(got[1], -3.0f);
  ASSERT_TRUE(reader->read_range(3, 0, got, 4).ok());
  EXPECT_EQ(got[0], 42.0f);
  EXPECT_EQ(reader->storage(2).size, 8u);

  // Structure only: no member is read for bytes, but each is still opened and bounds-checked.
  LoadOptions structure = with(reg);
  structure.load_data = false;
  Checkpoint s = load(ckpt, structure);
  EXPECT_EQ(s.tree.storages[1].nbytes, 12u);
  EXPECT_EQ(s.storages[1].data, nullptr);
}

TEST(AbiVersions, V2PluginMembersOutsideTheDirectoryAreForbidden) {
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kDirfmt));
  ScratchDir dir("abi");
  const std::string outside = dir / "outside.bin";
  test_support::write_file(outside, floats({7, 7}));
  fs::create_directories(dir / "elsewhere");
  test_support::write_file(dir / "elsewhere/x.bin", floats({7, 7}));

  struct Bad {
    std::string member;  // as the manifest names it
    std::string symlink_target;  // when not empty: the checkpoint's `member` is a symlink to it
  };
  const Bad bad[] = {
      {outside, ""},                                 // absolute
      {"../outside.bin", ""},                        // ".." first
      {"sub/../../outside.bin", ""},                 // ".." inside
      {"sub/../shard.bin", ""},                      // ".." even where it stays inside
      {"escape.bin", "../outside.bin"},              // a symlink out (relative)
      {"escape_abs.bin", outside},                   // a symlink out (absolute)
      {"linked_dir/x.bin", dir / "elsewhere"},       // through a symlinked directory
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.member);
    const std::string ckpt = dir / ("ckpt" + std::to_string(&b - bad));
    fs::create_directories(ckpt + "/sub");
    test_support::write_file(ckpt + "/shard.bin", floats({1, 2}));
    if (!b.symlink_target.empty()) {
      const std::string link = ckpt + "/" + b.member.substr(0, b.member.find('/'));
      fs::create_symlink(b.symlink_target, link);
    }
    test_support::write_file(ckpt + "/dirfmt.manifest",
                             "DIRFMT 1\nok shard.bin 0 2\nbad " + b.member + " 0 2\n");
    for (const std::string& path : {ckpt, ckpt + "/dirfmt.manifest"}) {
      try {
        load(path, with(reg));
        FAIL() << path << ": member " << b.member << " was opened";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kForbidden) << e.what();
        EXPECT_NE(std::string(e.what()).find(b.member), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      }
    }
  }

  // A symlink that stays inside the directory is a member like any other; a missing member
  // is not found, by name.
  const std::string ckpt = dir / "fine";
  fs::create_directories(ckpt);
  test_support::write_file(ckpt + "/shard.bin", floats({1, 2}));
  fs::create_symlink("shard.bin", ckpt + "/alias.bin");
  test_support::write_file(ckpt + "/dirfmt.manifest",
                           "DIRFMT 1\nx shard.bin 0 2\ny alias.bin 4 1\n");
  Checkpoint c = load(ckpt, with(reg));
  EXPECT_EQ(values_of(c, "y"), std::vector<float>{2});
  test_support::write_file(ckpt + "/dirfmt.manifest", "DIRFMT 1\nx gone.bin 0 2\n");
  try {
    load(ckpt, with(reg));
    FAIL() << "a missing member was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("gone.bin"), std::string::npos) << e.what();
  }
}

Checkpoint vectors(const std::vector<std::pair<std::string, std::vector<float>>>& entries) {
  Checkpoint c;
  auto root = Value::dict();
  for (const auto& [key, v] : entries) {
    const auto n = uint64_t(v.size() * sizeof(float));
    auto bytes = std::shared_ptr<uint8_t>(new uint8_t[n], std::default_delete<uint8_t[]>());
    std::memcpy(bytes.get(), v.data(), n);
    TensorMeta t;
    t.dtype = DType::kFloat32;
    t.storage = uint32_t(c.tree.storages.size());
    t.shape = {int64_t(v.size())};
    t.strides = {1};
    c.tree.storages.push_back(StorageInfo{key, DType::kFloat32, n, "cpu"});
    c.storages.push_back(StorageBytes{bytes.get(), n, bytes, false});
    root->entries.emplace_back(Value::str(key), Value::make_tensor(t));
  }
  c.tree.root = root;
  return c;
}

TEST(AbiVersions, V2PluginWritesADirectoryThatReplacesTheOldOneWhole) {
  Registry reg;
  ASSERT_TRUE(reg.load_plugin(kDirfmt));
  ASSERT_TRUE(reg.load_plugin(kV1));
  ScratchDir dir("abi");
  const std::string out = dir / "out";
  SaveOptions so;
  so.registry = &reg;
  so.format = "abi-dirfmt";
  save(out, vectors({{"p", {1, 2}}, {"q", {3}}}), so);
  EXPECT_EQ(test_support::list_dir(out),
            (std::vector<std::string>{"dirfmt.manifest", "p.bin", "q.bin"}));
  Checkpoint c = load(out, with(reg));
  EXPECT_EQ(values_of(c, "p"), (std::vector<float>{1, 2}));
  EXPECT_EQ(values_of(c, "q"), (std::vector<float>{3}));

  // Saving over it: files beside the checkpoint stay (existing), the stale shard the plugin
  // drops goes (drop_existing), and nothing else is left in the parent.
  test_support::write_file(out + "/config.json", "{}");
  save(out, vectors({{"p", {5, 6}}, {"r", {7}}}), so);
  EXPECT_EQ(test_support::list_dir(out),
            (std::vector<std::string>{"config.json", "dirfmt.manifest", "p.bin", "r.bin"}));
  EXPECT_EQ(test_support::read_file(out + "/config.json"), "{}");
  c = load(out, with(reg));
  EXPECT_EQ(values_of(c, "p"), (std::vector<float>{5, 6}));
  EXPECT_EQ(c.tree.root->get("q"), nullptr);

  // A save that fails after writing members leaves the old directory whole, and no
  // temporary beside it.
  Checkpoint bad = vectors({{"p", {9, 9}}, {"s", {1}}});
  bad.tree.root->entries.emplace_back(Value::str("step"), Value::integer(3));
  try {
    save(out, bad, so);
    FAIL() << "a non-tensor entry was written";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("'step'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test_support::list_dir(out),
            (std::vector<std::string>{"config.json", "dirfmt.manifest", "p.bin", "r.bin"}));
  EXPECT_EQ(values_of(load(out, with(reg)), "p"), (std::vector<float>{5, 6}));
  EXPECT_EQ(test_support::list_dir(dir.path()), std::vector<std::string>{"out"});

  // A version-1 plugin's save still makes one file, and a directory is no place for it.
  so.format = "abi-v1";
  save(dir / "one.abiv1", vectors({{"values", {1}}}), so);
  EXPECT_TRUE(fs::is_regular_file(dir / "one.abiv1"));
  EXPECT_THROW(save(out, vectors({{"values", {1}}}), so), Error);
  EXPECT_TRUE(fs::is_directory(out));
}

}  // namespace
}  // namespace ckptio
