// libckptio_cuda on a real device: file -> pinned ring -> device loads for every format, small
// rings that force slot reuse, device -> host saves. Every test skips, saying why, when no
// CUDA device is usable (this is the case on build machines and in CI).
#include "ckptio/cuda.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "ckptio/ckptio.h"
#include "support/scratch.h"

namespace ckptio::cuda {
namespace {

#define SKIP_WITHOUT_DEVICE()                              \
  do {                                                     \
    std::string why;                                       \
    if (!cuda_device_available(&why)) GTEST_SKIP() << why; \
  } while (0)

using test_support::ScratchDir;

Checkpoint byte_checkpoint(const std::vector<uint64_t>& sizes) {
  Checkpoint c;
  auto root = Value::dict(true);
  std::mt19937 rng(11);
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    c.tree.storages.push_back(StorageInfo{std::to_string(i), DType::kUInt8, sizes[i], "cuda:0"});
    auto bytes =
        std::shared_ptr<uint8_t>(new uint8_t[sizes[i] + 1], std::default_delete<uint8_t[]>());
    for (uint64_t k = 0; k < sizes[i]; ++k) bytes.get()[k] = static_cast<uint8_t>(rng());
    c.storages.push_back(StorageBytes{bytes.get(), sizes[i], bytes, false});
    TensorMeta m;
    m.dtype = DType::kUInt8;
    m.shape = {static_cast<int64_t>(sizes[i])};
    m.strides = {1};
    m.storage = i;
    root->entries.emplace_back(Value::str("t" + std::to_string(i)), Value::make_tensor(m));
  }
  c.tree.root = root;
  return c;
}

std::vector<uint8_t> to_host(const DeviceStorage& d) {
  std::vector<uint8_t> out(d.size);
  if (d.size) {
    EXPECT_EQ(cudaMemcpy(out.data(), d.ptr, d.size, cudaMemcpyDeviceToHost), cudaSuccess);
  }
  return out;
}

bool same(const std::vector<uint8_t>& got, const StorageBytes& want) {
  return got.size() == want.size &&
         (got.empty() || std::memcmp(got.data(), want.data, got.size()) == 0);
}

const std::vector<uint64_t> kSizes{0, 1, 300, 70000, 33u << 20, 4097, 5u << 20};

// Each storage's bytes copied into device memory of its own (freed with its owner).
std::vector<DeviceStorage> upload(const Checkpoint& c) {
  std::vector<DeviceStorage> dev;
  for (const StorageBytes& b : c.storages) {
    DeviceStorage d;
    d.size = b.size;
    if (b.size) {
      EXPECT_EQ(cudaMalloc(&d.ptr, b.size), cudaSuccess);
      d.owner = std::shared_ptr<void>(d.ptr, [](void* p) { cudaFree(p); });
      EXPECT_EQ(cudaMemcpy(d.ptr, b.data, b.size, cudaMemcpyHostToDevice), cudaSuccess);
    }
    dev.push_back(d);
  }
  return dev;
}

// A small ring: many slots and pieces; small storages share a slot, large ones span several.
CudaSaveOptions small_ring() {
  CudaSaveOptions o;
  o.ring_bytes = 1 << 20;
  o.chunk = 256 << 10;
  return o;
}

TEST(CudaAvailability, SaysWhyWhenUnavailable) {
  std::string why;
  bool ok = cuda_device_available(&why);
  if (ok) {
    EXPECT_GT(device_count(), 0);
  } else {
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(device_count(), 0);
  }
}

class LoadToDevice : public ::testing::TestWithParam<std::string> {};

TEST_P(LoadToDevice, EveryStorageArrivesIntact) {
  SKIP_WITHOUT_DEVICE();
  if (!Registry::global().has_format(GetParam())) GTEST_SKIP() << GetParam() << " not built";
  ScratchDir dir("cuda");
  Checkpoint c = byte_checkpoint(kSizes);
  SaveOptions so;
  so.format = GetParam();
  so.fsync = false;
  save(dir.file("m.pt"), c, so);
  auto r = Reader::open(dir.file("m.pt"));
  std::vector<uint32_t> all{0, 1, 2, 3, 4, 5, 6};
  for (uint64_t ring : {uint64_t(256) << 20, uint64_t(1) << 20}) {  // default, and forced reuse
    CudaLoadOptions o;
    o.ring_bytes = ring;
    o.chunk = ring >= (64u << 20) ? 16u << 20 : 256u << 10;
    uint64_t last = 0, total = 0;
    o.progress = [&](uint64_t d, uint64_t t) { last = d, total = t; };
    auto dev = load_to_device(*r, all, 0, o);
    ASSERT_EQ(dev.size(), all.size());
    for (size_t k = 0; k < all.size(); ++k) {
      EXPECT_EQ(dev[k].device, 0);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(dev[k].ptr) % 256, 0u);
      EXPECT_TRUE(same(to_host(dev[k]), c.storages[all[k]])) << "storage " << k << " ring " << ring;
    }
    EXPECT_EQ(last, total);
  }
  EXPECT_EQ(r->checkpoint().storages[4].data, nullptr) << "the GPU path must not cache host copies";
}

INSTANTIATE_TEST_SUITE_P(Formats, LoadToDevice,
                         ::testing::Values("torch-zip", "torch-legacy", "torch-zip-zstd", "zstd"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(LoadIntoDevice, CallerMemoryAndErrors) {
  SKIP_WITHOUT_DEVICE();
  ScratchDir dir("cuda");
  Checkpoint c = byte_checkpoint({1000, 2000});
  SaveOptions so;
  so.fsync = false;
  save(dir.file("m.pt"), c, so);
  auto r = Reader::open(dir.file("m.pt"));
  void* a = nullptr;
  ASSERT_EQ(cudaMalloc(&a, 4096), cudaSuccess);
  load_into_device(*r, {1, 0}, {a, static_cast<uint8_t*>(a) + 2048}, 0);
  std::vector<uint8_t> got(4096);
  ASSERT_EQ(cudaMemcpy(got.data(), a, 4096, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::memcmp(got.data(), c.storages[1].data, 2000), 0);
  EXPECT_EQ(std::memcmp(got.data() + 2048, c.storages[0].data, 1000), 0);
  EXPECT_THROW(load_into_device(*r, {0}, {}, 0), Error);
  EXPECT_THROW(load_into_device(*r, {7}, {a}, 0), Error);
  EXPECT_THROW(load_to_device(*r, {0}, device_count() + 3), Error);
  cudaFree(a);
}

TEST(SaveFromDevice, RoundTripsThroughEveryFormat) {
  SKIP_WITHOUT_DEVICE();
  ScratchDir dir("cuda");
  Checkpoint c = byte_checkpoint(kSizes);
  std::vector<DeviceStorage> dev = upload(c);
  Checkpoint host = host_checkpoint_from_device(c.tree, dev, small_ring());
  for (size_t i = 0; i < kSizes.size(); ++i)
    EXPECT_TRUE(host.storages[i].size == 0 ||
                std::memcmp(host.storages[i].data, c.storages[i].data, kSizes[i]) == 0)
        << i;
  for (std::string format : {"torch-zip", "torch-legacy"}) {
    SaveOptions so;
    so.format = format;
    so.fsync = false;
    save_from_device(dir.file(format), c.tree, dev, so);
    Checkpoint back = load(dir.file(format));
    for (size_t i = 0; i < kSizes.size(); ++i)
      EXPECT_TRUE(back.storages[i].size == kSizes[i] &&
                  (kSizes[i] == 0 ||
                   std::memcmp(back.storages[i].data, c.storages[i].data, kSizes[i]) == 0))
          << format << " storage " << i;
  }
  dev.pop_back();
  EXPECT_THROW(host_checkpoint_from_device(c.tree, dev), Error);
  release_staging_buffers();
}

// Argument errors are found before any CUDA call, so they are checked on every host.
TEST(CopyToHost, RefusesMismatchedOrMissingMemory) {
  uint8_t host[16];
  DeviceStorage no_memory;
  no_memory.size = 16;
  EXPECT_THROW(copy_to_host({no_memory}, {}), Error);      // one storage, no destination
  EXPECT_THROW(copy_to_host({no_memory}, {host}), Error);  // no device memory
  DeviceStorage empty;
  copy_to_host({empty}, {nullptr});  // empty storages need neither
}

TEST(CopyToHost, CallerHostMemory) {
  SKIP_WITHOUT_DEVICE();
  Checkpoint c = byte_checkpoint(kSizes);
  std::vector<DeviceStorage> dev = upload(c);
  std::vector<std::vector<uint8_t>> host;
  host.reserve(c.storages.size());  // dst keeps pointers into it
  std::vector<void*> dst;
  for (const StorageBytes& b : c.storages) {
    host.emplace_back(b.size);
    dst.push_back(host.back().data());
  }
  copy_to_host(dev, dst, small_ring());
  for (size_t i = 0; i < kSizes.size(); ++i) EXPECT_TRUE(same(host[i], c.storages[i])) << i;
}

}  // namespace
}  // namespace ckptio::cuda
