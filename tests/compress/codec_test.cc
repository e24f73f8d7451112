// Codec tests for formats/compress: byte grouping, the chunked zstd container, the zstd
// wrapper stream, and what they do with hostile input.
#include <gtest/gtest.h>
#include <libdeflate.h>
#include <zstd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "formats/compress/byte_group.h"
#include "formats/compress/chunked_zstd.h"
#include "formats/zip/crc32_combine.h"
#include "formats/compress/zstd_sequential_source.h"
#include "formats/compress/zstd_stream.h"
#include "formats/io.h"

namespace ckptio::compress {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Normal(0, 0.02) weights as bf16 (round to nearest even) or fp32 bytes.
std::vector<uint8_t> weights(size_t n_elems, bool bf16, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::vector<uint8_t> out(n_elems * (bf16 ? 2 : 4));
  for (size_t i = 0; i < n_elems; ++i) {
    float f = nd(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (bf16) {
      uint16_t h = uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16);
      std::memcpy(&out[2 * i], &h, 2);
    } else {
      std::memcpy(&out[4 * i], &u, 4);
    }
  }
  return out;
}

TEST(ByteGroup, InverseForEveryGrouping) {
  for (Grouping g : {Grouping::kNone, Grouping::kRot16, Grouping::kRot32}) {
    auto in = random_bytes(4096 + 64, 7);
    std::vector<uint8_t> grouped(in.size()), back(in.size());
    group_bytes(g, in.data(), in.size(), grouped.data());
    const unsigned p = plane_count(g);
    const uint8_t* planes[4];
    for (unsigned i = 0; i < p; ++i) planes[i] = grouped.data() + i * (in.size() / p);
    ungroup_bytes(g, planes, in.size(), back.data());
    EXPECT_EQ(in, back) << "grouping " << int(g);
  }
}

TEST(ByteGroup, Bf16ExponentLandsInFirstPlane) {
  // bf16 1.0 = 0x3F80: sign 0, exponent 127, mantissa 0; -2.0 = 0xC000: exponent 128.
  const uint16_t v[2] = {0x3F80, 0xC000};
  uint8_t g[4];
  group_bytes(Grouping::kRot16, reinterpret_cast<const uint8_t*>(v), 4, g);
  EXPECT_EQ(g[0], 127);
  EXPECT_EQ(g[1], 128);
  EXPECT_EQ(g[2], 0x00);  // mantissa 0, sign 0
  EXPECT_EQ(g[3], 0x01);  // mantissa 0, sign 1
  // fp32 -1.5f = 0xBFC00000: exponent 127, mantissa 0x400000, sign 1.
  const uint32_t f = 0xBFC00000u;
  uint8_t h[4];
  group_bytes(Grouping::kRot32, reinterpret_cast<const uint8_t*>(&f), 4, h);
  EXPECT_EQ(h[0], 127);
  EXPECT_EQ(h[1], 0x80);
  EXPECT_EQ(h[2], 0x00);
  EXPECT_EQ(h[3], 0x01);
}

TEST(ByteGroup, GroupingForDtypes) {
  EXPECT_EQ(grouping_for(DType::kBFloat16, 10), Grouping::kRot16);
  EXPECT_EQ(grouping_for(DType::kFloat16, 10), Grouping::kRot16);
  EXPECT_EQ(grouping_for(DType::kFloat32, 12), Grouping::kRot32);
  EXPECT_EQ(grouping_for(DType::kFloat32, 13), Grouping::kNone);
  EXPECT_EQ(grouping_for(DType::kInt64, 16), Grouping::kNone);
}

struct Case {
  Grouping g;
  std::vector<uint8_t> data;
};

std::string encode(const Case& c, uint32_t chunk, WorkerPool& pool, int level = kDefaultLevel) {
  ChunkedOptions o;
  o.chunk_size = chunk;
  o.level = level;
  auto r = encode_chunked(c.g, c.data.data(), c.data.size(), o, pool);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : std::string();
}

Status decode(const std::string& rec, uint64_t size, std::vector<uint8_t>& out, WorkerPool& pool,
              uint64_t off = 0, uint64_t n = UINT64_MAX) {
  MemorySource src(rec.data(), rec.size(), "m.pt");
  auto idx = parse_chunked(src, 0, rec.size(), size, "m.pt: record 'archive/data/0'");
  if (!idx.ok()) return idx.status();
  if (n == UINT64_MAX) n = size - off;
  out.assign(n, 0xEE);
  std::vector<ChunkDecoder> dec;
  return decode_chunked_range(src, idx.value(), off, n, out.data(), pool, dec);
}

TEST(Chunked, RoundTripsEveryShape) {
  WorkerPool pool(3);
  std::vector<Case> cases = {
      {Grouping::kRot16, weights(100000, true, 1)},
      {Grouping::kRot32, weights(50001, false, 2)},
      {Grouping::kNone, random_bytes(12345, 3)},
      {Grouping::kNone, std::vector<uint8_t>(70000, 0)},
      {Grouping::kRot32, {}},
      {Grouping::kRot16, {1, 2}},
      // Planes over 128 KiB: raw planes span several zstd blocks.
      {Grouping::kNone, random_bytes(300000, 11)},
      {Grouping::kRot32, weights(200000, false, 12)},
  };
  for (const Case& c : cases) {
    for (uint32_t chunk : {4096u, 65536u, 1u << 20}) {
      std::string rec = encode(c, chunk, pool);
      std::vector<uint8_t> out;
      Status st = decode(rec, c.data.size(), out, pool);
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(out, c.data) << "grouping " << int(c.g) << " chunk " << chunk;
      if (c.data.size() > 9000) {  // a range across chunk boundaries
        st = decode(rec, c.data.size(), out, pool, 4001, 5000);
        ASSERT_TRUE(st.ok()) << st.message();
        EXPECT_TRUE(std::equal(out.begin(), out.end(), c.data.begin() + 4001));
      }
    }
  }
}

TEST(Crc32Combine, EqualsTheCrcOfTheConcatenation) {
  auto data = random_bytes(200000, 13);
  const uint32_t whole = libdeflate_crc32(0, data.data(), data.size());
  for (size_t cut : {size_t(0), size_t(1), size_t(4096), size_t(131073), data.size()}) {
    const uint32_t a = libdeflate_crc32(0, data.data(), cut);
    const uint32_t b = libdeflate_crc32(0, data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc32_combine(a, b, data.size() - cut), whole) << "cut at " << cut;
  }
}

TEST(Chunked, RecordIsOneStandardZstdStreamOfTheGroupedChunks) {
  // What a zip tool that knows method 93 sees: libzstd's plain one-shot decoder (skipping
  // the index's skippable frame) yields each chunk's planes in order, and the encoder's
  // stream CRC is their CRC32, the value the zip directory carries.
  WorkerPool pool(2);
  for (const Case& c : {Case{Grouping::kRot32, weights(300000, false, 14)},
                        Case{Grouping::kRot16, weights(70001, true, 15)},
                        Case{Grouping::kNone, random_bytes(150000, 16)}}) {
    ChunkedOptions o;
    o.chunk_size = 1 << 18;
    ChunkedEncoder enc(c.g, c.data.size(), o, pool);
    ASSERT_TRUE(enc.write(c.data.data(), c.data.size()).ok());
    auto rec = enc.finish();
    ASSERT_TRUE(rec.ok()) << rec.status().message();
    std::vector<uint8_t> expect(c.data.size());
    for (size_t at = 0; at < c.data.size(); at += o.chunk_size) {
      const size_t n = std::min<size_t>(o.chunk_size, c.data.size() - at);
      group_bytes(c.g, c.data.data() + at, n, expect.data() + at);
    }
    std::vector<uint8_t> got(c.data.size() + 1);
    const size_t r = ZSTD_decompress(got.data(), got.size(), rec->data(), rec->size());
    ASSERT_FALSE(ZSTD_isError(r)) << ZSTD_getErrorName(r);
    got.resize(r);
    EXPECT_EQ(got, expect) << "grouping " << int(c.g);
    EXPECT_EQ(enc.stream_crc(), libdeflate_crc32(0, expect.data(), expect.size()));
  }
}

TEST(Chunked, CompressesWeights) {
  WorkerPool pool(1);
  Case bf{Grouping::kRot16, weights(1 << 19, true, 4)};
  Case f32{Grouping::kRot32, weights(1 << 18, false, 5)};
  const double rb = double(encode(bf, 1 << 20, pool).size()) / bf.data.size();
  const double rf = double(encode(f32, 1 << 20, pool).size()) / f32.data.size();
  EXPECT_LT(rb, 0.70);
  EXPECT_LT(rf, 0.86);
  // Random bytes are stored raw: the container costs only its table.
  Case rnd{Grouping::kNone, random_bytes(1 << 20, 6)};
  EXPECT_LT(encode(rnd, 1 << 18, pool).size(), rnd.data.size() + 200);
}

TEST(Chunked, CorruptChunkNamesRecordAndChunk) {
  WorkerPool pool(2);
  Case c{Grouping::kRot16, weights(200000, true, 8)};  // 400 000 bytes: 7 chunks of 64 KiB
  std::string rec = encode(c, 65536, pool);
  std::string bad = rec;
  bad[bad.size() - 1000] ^= 0x55;  // inside the last chunks
  std::vector<uint8_t> out;
  Status st = decode(bad, c.data.size(), out, pool);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("record 'archive/data/0' chunk 6 of 7"), std::string::npos)
      << st.message();
}

TEST(Chunked, TableChecksumAndSizesAreChecked) {
  WorkerPool pool(1);
  Case c{Grouping::kRot32, weights(40000, false, 9)};
  std::string rec = encode(c, 65536, pool);
  std::vector<uint8_t> out;
  // Declared total that disagrees with the storage.
  Status st = decode(rec, c.data.size() + 4, out, pool);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("decodes to"), std::string::npos) << st.message();
  // A lying total size (1 PiB) in the header: refused before any allocation.
  std::string lie = rec;
  const uint64_t huge = 1ull << 50;
  std::memcpy(&lie[8 + 16], &huge, 8);  // after the skippable frame header
  MemorySource src(lie.data(), lie.size(), "m.pt");
  auto idx = parse_chunked(src, 0, lie.size(), huge, "m.pt: record 'archive/data/0'");
  ASSERT_FALSE(idx.ok());
  EXPECT_EQ(idx.status().code(), Code::kCorrupt);
  // Truncated record.
  st = decode(rec.substr(0, rec.size() - 10), c.data.size(), out, pool);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_FALSE(decode(rec.substr(0, 20), c.data.size(), out, pool).ok());
}

TEST(Chunked, FrameLyingAboutItsSizeIsRefused) {
  // A hand-made container whose one zstd plane declares 2^40 bytes.
  WorkerPool pool(1);
  Case c{Grouping::kNone, std::vector<uint8_t>(8192, 1)};
  std::string rec = encode(c, 8192, pool);
  // The plane's frame starts after the skippable frame header (8 bytes), the 32-byte index
  // header and the 8-byte table entry.
  ASSERT_EQ(rec.compare(48, 4, "\x28\xb5\x2f\xfd"), 0);
  // Rebuild the frame header with an 8-byte content size of 2^40 (FHD 0xC0 + window byte).
  std::string lie = rec.substr(0, 48);
  std::string hdr("\x28\xb5\x2f\xfd\xc0\x58", 6);
  uint64_t huge = 1ull << 40;
  hdr.append(reinterpret_cast<const char*>(&huge), 8);
  hdr.append("\x01\x00\x00", 3);  // last block, raw, empty
  // Keep the table's stored size consistent with the new plane.
  lie += hdr;
  uint32_t stored = uint32_t(hdr.size());
  std::memcpy(&lie[44], &stored, 4);
  // Fix the table CRC so that the lie reaches the frame check.
  uint32_t crc = libdeflate_crc32(0, lie.data() + 8, 24);
  crc = libdeflate_crc32(crc, lie.data() + 40, 8);
  std::memcpy(&lie[32], &crc, 4);
  std::vector<uint8_t> out;
  Status st = decode(lie, c.data.size(), out, pool);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_NE(st.message().find("declares 1099511627776 bytes"), std::string::npos) << st.message();
}

TEST(ZstdStream, RoundTripsWithMarkerAndBoundsOutput) {
  auto data = weights(300000, true, 10);
  StringSink out;
  ZstdWriteOptions o;
  o.inner = "torch-legacy";
  {
    ZstdCompressSink z(out, o);
    ASSERT_TRUE(z.write(data.data(), 1000).ok());
    ASSERT_TRUE(z.write(data.data() + 1000, data.size() - 1000).ok());
    ASSERT_TRUE(z.finish().ok());
  }
  const auto* head = reinterpret_cast<const uint8_t*>(out.out.data());
  EXPECT_TRUE(looks_like_zstd(head, out.out.size()));
  EXPECT_EQ(inner_format_from_head(head, out.out.size()), "torch-legacy");
  MemorySource src(out.out.data(), out.out.size(), "x.pt.zst");
  auto buf = zstd_decompress_bounded(src, 1ull << 30);
  ASSERT_TRUE(buf.ok()) << buf.status().message();
  ASSERT_EQ(buf.value().size(), data.size());
  EXPECT_EQ(std::memcmp(buf.value().data(), data.data(), data.size()), 0);
  // Output larger than the limit: kLimit.
  auto small = zstd_decompress_bounded(src, 100000);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), Code::kLimit);
  // Truncated: kCorrupt, clean.
  for (size_t cut : {out.out.size() - 1, out.out.size() / 2, size_t(40)}) {
    MemorySource t(out.out.data(), cut, "x.pt.zst");
    auto r = zstd_decompress_bounded(t, 1ull << 30);
    ASSERT_FALSE(r.ok()) << cut;
    EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().message();
  }
}

// A source that hides its bytes' address, like a file read with pread.
class UnmappedSource final : public ByteSource {
 public:
  explicit UnmappedSource(const ByteSource& s) : s_(s) {}
  uint64_t size() const override { return s_.size(); }
  Status read_at(uint64_t o, void* d, uint64_t n) const override { return s_.read_at(o, d, n); }
  const std::string& name() const override { return s_.name(); }

 private:
  const ByteSource& s_;
};

std::string zstd_of(const std::vector<uint8_t>& data, bool size_trailer = true) {
  StringSink out;
  ZstdWriteOptions o;
  o.inner = "torch-legacy";
  o.size_trailer = size_trailer;
  ZstdCompressSink z(out, o);
  EXPECT_TRUE(z.write(data.data(), data.size()).ok());
  EXPECT_TRUE(z.finish().ok());
  return out.out;
}

TEST(ZstdSequential, ReadsForwardAndRestartsOnlyWhenGoingBack) {
  auto data = weights(3000000, false, 20);  // 12 MB: several zstd blocks and windows
  const std::string z = zstd_of(data);
  const std::string bare = zstd_of(data, false);  // no size trailer
  MemorySource mem(z.data(), z.size(), "s.pt.zst"), bare_mem(bare.data(), bare.size(), "b.zst");
  UnmappedSource unmapped(mem);
  UnmappedSource bare_unmapped(bare_mem);  // size known only by a counting pass
  EXPECT_EQ(declared_size_from_trailer(mem), data.size());
  EXPECT_EQ(declared_size_from_trailer(bare_mem), UINT64_MAX);
  for (const ByteSource* src :
       {static_cast<const ByteSource*>(&mem), static_cast<const ByteSource*>(&unmapped),
        static_cast<const ByteSource*>(&bare_unmapped)}) {
    auto seq = ZstdSequentialSource::open(*src, 1ull << 30);
    ASSERT_TRUE(seq.ok()) << seq.status().message();
    ZstdSequentialSource& s = **seq;
    ASSERT_EQ(s.size(), data.size());
    EXPECT_EQ(s.data(), nullptr);
    std::vector<uint8_t> got(100000);
    for (uint64_t at : {uint64_t(0), uint64_t(100005), uint64_t(4000000), uint64_t(11000000)}) {
      ASSERT_TRUE(s.read_at(at, got.data(), got.size()).ok()) << at;
      EXPECT_EQ(std::memcmp(got.data(), data.data() + at, got.size()), 0) << at;
    }
    EXPECT_EQ(s.restarts(), 0u);
    ASSERT_TRUE(s.read_at(1000, got.data(), got.size()).ok());  // behind: starts over
    EXPECT_EQ(std::memcmp(got.data(), data.data() + 1000, got.size()), 0);
    EXPECT_EQ(s.restarts(), 1u);
    Status past = s.read_at(data.size() - 10, got.data(), 11);
    EXPECT_EQ(past.code(), Code::kCorrupt) << past.message();
    auto head = ZstdSequentialSource::decode_head(*src, 4096, 1ull << 30);
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(std::memcmp(head->data(), data.data(), 4096), 0);
  }
  // The limit holds with and without declared sizes; a cut stream is a clean error.
  EXPECT_EQ(ZstdSequentialSource::open(unmapped, 1 << 20).status().code(), Code::kLimit);
  EXPECT_EQ(ZstdSequentialSource::open(bare_unmapped, 1 << 20).status().code(), Code::kLimit);
  // A trailer that claims more than the stream holds: reads past the real end fail cleanly.
  std::string liar = z;
  const uint64_t more = data.size() + 1000;
  std::memcpy(&liar[liar.size() - 8], &more, 8);
  MemorySource liar_src(liar.data(), liar.size(), "liar.zst");
  auto l = ZstdSequentialSource::open(liar_src, 1ull << 30);
  ASSERT_TRUE(l.ok());
  std::vector<uint8_t> tail(2000);
  EXPECT_EQ((*l)->read_at(data.size() - 1000, tail.data(), tail.size()).code(), Code::kCorrupt);
  MemorySource cut(z.data(), z.size() / 2, "cut.pt.zst");
  UnmappedSource cut_unmapped(cut);
  EXPECT_EQ(ZstdSequentialSource::open(cut_unmapped, 1ull << 30).status().code(), Code::kCorrupt);
}

TEST(ZstdSequential, ConcurrentReadsOfConsecutiveRangesAreAllCorrect) {
  // The host's loader threads read storages concurrently; every read must get its bytes
  // whatever order they arrive in (the source serializes them).
  auto data = weights(2000000, true, 21);
  const std::string z = zstd_of(data);
  MemorySource mem(z.data(), z.size(), "c.pt.zst");
  auto seq = ZstdSequentialSource::open(mem, 1ull << 30);
  ASSERT_TRUE(seq.ok());
  const uint64_t piece = data.size() / 8;
  std::vector<uint64_t> starts;
  for (int i = 0; i < 8; ++i) starts.push_back(piece * i);
  (*seq)->expect_reads_at(starts);
  std::vector<std::vector<uint8_t>> got(8, std::vector<uint8_t>(piece));
  std::vector<Status> st(8);
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i; (i = next.fetch_add(1)) < 8;)
      st[i] = (*seq)->read_at(starts[i], got[i].data(), piece);
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(st[i].ok()) << st[i].message();
    EXPECT_EQ(std::memcmp(got[i].data(), data.data() + starts[i], piece), 0) << i;
  }
}

TEST(ZstdStream, BufferedDecodeAllocatesTheTrailersSizeOnce) {
  auto data = weights(3000000, false, 21);
  std::string z = zstd_of(data);
  MemorySource mem(z.data(), z.size(), "s.pt.zst");
  UnmappedSource unmapped(mem);  // not addressable: the frames' sizes are not summed
  auto r = zstd_decompress_bounded(unmapped, 1ull << 30);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), data.size());
  EXPECT_EQ(std::memcmp(r->data(), data.data(), data.size()), 0);
  EXPECT_EQ(r->capacity(), (data.size() + 1 + 4095) / 4096 * 4096);  // exact, no regrowth

  // A trailer that lies low only costs regrowth: every byte is still decoded.
  std::string lying = z;
  uint64_t small = 1000;
  std::memcpy(&lying[lying.size() - 8], &small, 8);
  MemorySource lying_mem(lying.data(), lying.size(), "lying.zst");
  UnmappedSource lying_unmapped(lying_mem);
  auto l = zstd_decompress_bounded(lying_unmapped, 1ull << 30);
  ASSERT_TRUE(l.ok()) << l.status().message();
  ASSERT_EQ(l->size(), data.size());
  EXPECT_EQ(std::memcmp(l->data(), data.data(), data.size()), 0);
}

TEST(ZstdStream, DeclaredSizeOverLimitIsRefusedBeforeAllocation) {
  std::string frame("\x28\xb5\x2f\xfd\xc0\x58", 6);
  uint64_t huge = 1ull << 50;
  frame.append(reinterpret_cast<const char*>(&huge), 8);
  frame.append("\x01\x00\x00", 3);
  MemorySource src(frame.data(), frame.size(), "bomb.zst");
  auto r = zstd_decompress_bounded(src, 1ull << 30);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kLimit);
  EXPECT_NE(r.status().message().find("declare"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ckptio::compress
