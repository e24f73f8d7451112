// Saving and loading through the plugins from C++: round trips, sharing, zero copy,
// buffers, and atomic replacement when a save fails.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "ckptio/ckptio.h"
#include "support/scratch.h"
#include "test_checkpoints.h"

namespace ckptio {
namespace {
namespace fs = std::filesystem;

class SaveLoad : public ::testing::TestWithParam<std::string> {
 protected:
  std::string path(const std::string& name) { return dir_.file(name); }
  std::vector<std::string> leftovers() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path()))
      if (e.path().filename().string().find(".ckptio-tmp-") != std::string::npos)
        out.push_back(e.path().string());
    return out;
  }
  test_support::ScratchDir dir_{"saveload"};
};

TEST_P(SaveLoad, RoundTripKeepsValuesAndSharedStorage) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  EXPECT_EQ(detect_format(path("a.pt")), GetParam());

  Checkpoint c = load(path("a.pt"));
  EXPECT_EQ(c.format, GetParam());
  ASSERT_EQ(c.tree.storages.size(), 1u);  // w and w_t still share one storage
  ASSERT_EQ(c.tree.root->kind, Kind::kDict);
  EXPECT_TRUE(c.tree.root->ordered);
  ValuePtr w = c.tree.root->get("w");
  ValuePtr wt = c.tree.root->get("w_t");
  ASSERT_TRUE(w && wt);
  EXPECT_EQ(w->tensor.storage, wt->tensor.storage);
  EXPECT_EQ(wt->tensor.strides, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(c.tree.root->get("step")->i, 7);
  EXPECT_EQ(c.tree.root->get("name")->s, "\xcf\x80");
  const float* f = reinterpret_cast<const float*>(c.storages[0].data);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f[i], static_cast<float>(i));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.storages[0].data) % 64, 0u);
}

TEST_P(SaveLoad, ZeroCopyAliasesTheMappingOnlyWhenAligned) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  LoadOptions lo;
  lo.zero_copy = true;
  Checkpoint c = load(path("a.pt"), lo);
  // torch-zip aligns data to 64 bytes, so it maps; the legacy stream has no alignment.
  if (GetParam() == "torch-zip") {
    EXPECT_TRUE(c.storages[0].mapped);
  }
  const float* f = reinterpret_cast<const float*>(c.storages[0].data);
  EXPECT_EQ(f[5], 5.0f);
}

TEST_P(SaveLoad, LoadsFromAMemoryBuffer) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  std::string bytes = testing::read_file(path("a.pt"));
  Checkpoint c = load_buffer(bytes.data(), bytes.size(), "buffer");
  bytes.assign(bytes.size(), '\0');  // the checkpoint must not alias the buffer
  EXPECT_EQ(reinterpret_cast<const float*>(c.storages[0].data)[4], 4.0f);
}

TEST_P(SaveLoad, StructureOnlyLoadReadsNoBytes) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  LoadOptions lo;
  lo.load_data = false;
  Checkpoint c = load(path("a.pt"), lo);
  ASSERT_EQ(c.storages.size(), 1u);
  EXPECT_EQ(c.storages[0].data, nullptr);
  EXPECT_EQ(c.tree.storages[0].nbytes, 24u);
}

TEST_P(SaveLoad, FailedSaveLeavesOldFileAndNoTemporary) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  std::string before = testing::read_file(path("a.pt"));

  // Two tensors viewing one storage as different legacy dtypes cannot be pickled (torch.save
  // refuses too): the plugin fails after the sink was opened.
  Checkpoint bad = testing::small_checkpoint();
  bad.tree.root->get("w_t")->tensor.dtype = DType::kInt32;
  try {
    save(path("a.pt"), bad, so);
    FAIL() << "expected the save to fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.pt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(testing::read_file(path("a.pt")), before);
  EXPECT_TRUE(leftovers().empty());
}

// save() preallocates the storages' bytes plus a margin; the file must not keep the margin.
TEST_P(SaveLoad, SavedFileKeepsNoPreallocatedSpace) {
  SaveOptions so;
  so.format = GetParam();
  save(path("a.pt"), testing::small_checkpoint(), so);
  struct stat st {};
  ASSERT_EQ(::stat(path("a.pt").c_str(), &st), 0);
  EXPECT_LT(uint64_t(st.st_blocks) * 512, 64u << 10) << "file of " << st.st_size << " bytes";
  EXPECT_NO_THROW(load(path("a.pt")));
}

// Storages of 4 MiB and more are read into mappings of their own, filled through userfaultfd
// where allowed (host/fresh_page_fill.h): a storage over several 16 MiB chunks with an odd
// tail, one just over the threshold, and a small one, loaded both ways and from a buffer.
TEST_P(SaveLoad, LargeStoragesLoadTheSameWithAndWithoutUserfaultfd) {
  const std::vector<uint64_t> sizes = {(37u << 20) + 333, (4u << 20) + 4, 1000};
  Checkpoint c;
  auto root = Value::dict(true);
  for (size_t i = 0; i < sizes.size(); ++i) {
    uint64_t n = sizes[i] / 4 * 4;
    c.tree.storages.push_back(StorageInfo{std::to_string(i), DType::kFloat32, n, "cpu"});
    auto bytes = std::shared_ptr<uint8_t>(new uint8_t[n], std::default_delete<uint8_t[]>());
    for (uint64_t j = 0; j < n; ++j)
      bytes.get()[j] = static_cast<uint8_t>(((j + 1) * 0x9E3779B97F4A7C15ull) >> 56) ^ i;
    c.storages.push_back(StorageBytes{bytes.get(), n, bytes, false});
    TensorMeta t;
    t.dtype = DType::kFloat32;
    t.shape = {int64_t(n / 4)};
    t.strides = {1};
    t.storage = static_cast<uint32_t>(i);
    root->entries.emplace_back(Value::str("t" + std::to_string(i)), Value::make_tensor(t));
  }
  c.tree.root = root;
  SaveOptions so;
  so.format = GetParam();
  save(path("big.pt"), c, so);

  auto expect_same = [&](const Checkpoint& got, const std::string& how) {
    ASSERT_EQ(got.storages.size(), c.storages.size()) << how;
    for (size_t i = 0; i < c.storages.size(); ++i) {
      ASSERT_EQ(got.storages[i].size, c.storages[i].size) << how << ", storage " << i;
      EXPECT_EQ(std::memcmp(got.storages[i].data, c.storages[i].data, c.storages[i].size), 0)
          << how << ", storage " << i;
    }
  };
  expect_same(load(path("big.pt")), "default");
  setenv("CKPTIO_USERFAULTFD", "0", 1);
  expect_same(load(path("big.pt")), "CKPTIO_USERFAULTFD=0");
  unsetenv("CKPTIO_USERFAULTFD");
  std::string bytes = testing::read_file(path("big.pt"));
  expect_same(load_buffer(bytes.data(), bytes.size(), "buffer"), "from a buffer");
  LoadOptions one_thread;
  one_thread.threads = 1;
  Checkpoint loaded = load(path("big.pt"), one_thread);
  expect_same(loaded, "1 thread");
  // The new pages are ordinary memory: writable, and they outlive the file.
  fs::remove(path("big.pt"));
  auto* p = const_cast<uint8_t*>(loaded.storages[0].data);
  p[loaded.storages[0].size - 1] ^= 0xff;
  EXPECT_NE(p[loaded.storages[0].size - 1], c.storages[0].data[c.storages[0].size - 1]);
}

TEST_P(SaveLoad, SaveIntoMissingDirectoryFailsCleanly) {
  SaveOptions so;
  so.format = GetParam();
  EXPECT_THROW(save(path("no/such/dir/a.pt"), testing::small_checkpoint(), so), Error);
  EXPECT_FALSE(fs::exists(path("no")));
}

// The 2.x dtypes (float8, uint16/32/64) round-trip through torch-zip. torch-legacy refuses
// them, naming the file and the dtype: torch.load cannot read them from that format, though
// torch.save writes them there.
TEST_P(SaveLoad, NewerDtypesRoundTripOrAreRefusedByName) {
  Checkpoint c;
  const uint8_t raw[8] = {0x38, 0x40, 0xc0, 0x7e, 1, 0, 2, 0};
  auto bytes = std::shared_ptr<uint8_t>(new uint8_t[8], std::default_delete<uint8_t[]>());
  std::memcpy(bytes.get(), raw, 8);
  c.tree.storages.push_back(StorageInfo{"0", DType::kFloat8_e4m3fn, 4, "cpu"});
  c.tree.storages.push_back(StorageInfo{"1", DType::kUInt16, 4, "cpu"});
  c.storages.push_back(StorageBytes{bytes.get(), 4, bytes, false});
  c.storages.push_back(StorageBytes{bytes.get() + 4, 4, bytes, false});
  TensorMeta f8;
  f8.dtype = DType::kFloat8_e4m3fn;
  f8.shape = {4};
  f8.strides = {1};
  TensorMeta u16 = f8;
  u16.dtype = DType::kUInt16;
  u16.shape = {2};
  u16.storage = 1;
  auto root = Value::dict(true);
  root->entries.emplace_back(Value::str("f8"), Value::make_tensor(f8));
  root->entries.emplace_back(Value::str("u16"), Value::make_tensor(u16));
  c.tree.root = root;
  SaveOptions so;
  so.format = GetParam();
  if (GetParam() == "torch-legacy") {
    try {
      save(path("new.pt"), c, so);
      FAIL() << "torch-legacy should refuse float8_e4m3fn";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kUnsupported);
      const std::string m = e.what();
      EXPECT_NE(m.find(path("new.pt")), std::string::npos) << m;
      EXPECT_NE(m.find("float8_e4m3fn"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_FALSE(fs::exists(path("new.pt")));
    EXPECT_TRUE(leftovers().empty());
    return;
  }
  save(path("new.pt"), c, so);
  Checkpoint back = load(path("new.pt"));
  EXPECT_EQ(back.tree.root->get("f8")->tensor.dtype, DType::kFloat8_e4m3fn);
  EXPECT_EQ(back.tree.root->get("u16")->tensor.dtype, DType::kUInt16);
  const auto& t = back.tree.root->get("u16")->tensor;
  ASSERT_EQ(back.storages.at(t.storage).size, 4u);
  EXPECT_EQ(std::memcmp(back.storages.at(t.storage).data, raw + 4, 4), 0);
  const auto& f = back.tree.root->get("f8")->tensor;
  EXPECT_EQ(std::memcmp(back.storages.at(f.storage).data, raw, 4), 0);
}

// One depth limit (kMaxTreeDepth) for the writers, the host's tree builder and every walk:
// a tree just inside it is written and read back (with the pickle reader's own limit
// raised), one just past it is refused naming the limit, before anything is written.
TEST_P(SaveLoad, OneTreeDepthLimitForWritingAndReading) {
  auto nested = [](size_t depth) {
    ValuePtr v = Value::integer(7);
    for (size_t i = 1; i < depth; ++i) v = Value::list({v});
    Checkpoint c;
    c.tree.root = v;
    return c;
  };
  SaveOptions so;
  so.format = GetParam();
  save(path("deep.pt"), nested(kMaxTreeDepth - 8), so);
  LoadOptions lo;
  lo.plugin_options.emplace_back("max_depth", std::to_string(2 * kMaxTreeDepth));
  Checkpoint back = load(path("deep.pt"), lo);
  size_t depth = 1;
  for (ValuePtr v = back.tree.root; v->kind == Kind::kList; v = v->items.at(0)) ++depth;
  EXPECT_EQ(depth, kMaxTreeDepth - 8);

  try {
    save(path("deeper.pt"), nested(kMaxTreeDepth + 8), so);
    FAIL() << "a tree deeper than kMaxTreeDepth was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(kMaxTreeDepth)), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(path("deeper.pt")));
  EXPECT_TRUE(leftovers().empty());
}

INSTANTIATE_TEST_SUITE_P(Formats, SaveLoad, ::testing::Values("torch-zip", "torch-legacy"));

TEST(Load, MissingFileAndUnknownFormatAreClearErrors) {
  try {
    load("/nonexistent/x.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.pt"), std::string::npos);
  }
  SaveOptions so;
  so.format = "no-such-format";
  try {
    save("/tmp/x.pt", testing::small_checkpoint(), so);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("torch-zip"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ckptio
