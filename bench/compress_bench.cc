// Google Benchmark suite for the compressed formats (formats/compress, plugins/compressed):
//
//   compress_bench [benchmark flags] FILE.pt...     (torch-zip files; see
//                                                    bench/py/make_compress_bench.py)
//
// For each file and thread count: the chunked codec alone (encode, decode; GB/s over the
// storages' raw bytes, and the size ratio), whole-file loads of torch-zip-zstd and zstd
// conversions of the file next to the plain torch-zip load, and the size of each file as a
// fraction of the torch-zip file. Figures go into bench/results/compress.md.
#include <benchmark/benchmark.h>

#include <time.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "formats/compress/chunked_zstd.h"

namespace {

using namespace ckptio;
using namespace ckptio::compress;

struct Input {
  std::string path;
  Checkpoint ckpt;
  uint64_t raw = 0;
};

std::vector<std::unique_ptr<Input>> g_inputs;

// CPU seconds of the whole process (all threads): on a shared machine, throughput per
// CPU-second is the figure that other users' load does not distort.
double process_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

void per_core(benchmark::State& state, uint64_t bytes, double cpu_s) {
  state.counters["GBps_per_cpu_s"] = double(bytes) * double(state.iterations()) / cpu_s / 1e9;
}

Input& input(const std::string& path) {
  for (auto& in : g_inputs)
    if (in->path == path) return *in;
  auto in = std::make_unique<Input>();
  in->path = path;
  in->ckpt = load(path);
  for (const auto& s : in->ckpt.tree.storages) in->raw += s.nbytes;
  g_inputs.push_back(std::move(in));
  return *g_inputs.back();
}

void encode_all(const Input& in, WorkerPool& pool, std::vector<std::string>& out, int level) {
  out.clear();
  ChunkedOptions o;
  o.level = level;
  for (size_t i = 0; i < in.ckpt.storages.size(); ++i) {
    const auto& s = in.ckpt.tree.storages[i];
    auto r = encode_chunked(grouping_for(s.dtype, s.nbytes), in.ckpt.storages[i].data, s.nbytes,
                            o, pool);
    if (!r.ok()) throw Error(r.status());
    out.push_back(std::move(r).value());
  }
}

void codec_encode(benchmark::State& state, const std::string& path, int threads, int level) {
  Input& in = input(path);
  WorkerPool pool(threads);
  std::vector<std::string> enc;
  const double c0 = process_cpu_s();
  for (auto _ : state) encode_all(in, pool, enc, level);
  per_core(state, in.raw, process_cpu_s() - c0);
  uint64_t packed = 0;
  for (const auto& e : enc) packed += e.size();
  state.SetBytesProcessed(int64_t(state.iterations() * in.raw));
  state.counters["ratio"] = double(packed) / double(in.raw);
  state.counters["threads"] = threads;
}

void codec_decode(benchmark::State& state, const std::string& path, int threads) {
  Input& in = input(path);
  WorkerPool pool(threads);
  std::vector<std::string> enc;
  encode_all(in, pool, enc, kDefaultLevel);
  std::vector<ChunkedRecord> recs;
  std::vector<std::unique_ptr<MemorySource>> srcs;
  for (size_t i = 0; i < enc.size(); ++i) {
    srcs.push_back(std::make_unique<MemorySource>(enc[i].data(), enc[i].size(), "bench"));
    auto r = parse_chunked(*srcs.back(), 0, enc[i].size(), in.ckpt.tree.storages[i].nbytes,
                           "record");
    if (!r.ok()) throw Error(r.status());
    recs.push_back(std::move(r).value());
  }
  std::vector<uint8_t> dst(in.raw);
  for (auto& b : dst) b = 0;  // pre-faulted: measure decoding, not page faults
  std::vector<ChunkDecoder> dec;
  const double c0 = process_cpu_s();
  for (auto _ : state) {
    uint64_t off = 0;
    for (size_t i = 0; i < recs.size(); ++i) {
      Status st = decode_chunked_range(*srcs[i], recs[i], 0, recs[i].total_size, dst.data() + off,
                                       pool, dec);
      if (!st.ok()) throw Error(st);
      off += recs[i].total_size;
    }
    benchmark::DoNotOptimize(dst.data());
  }
  per_core(state, in.raw, process_cpu_s() - c0);
  state.SetBytesProcessed(int64_t(state.iterations() * in.raw));
  state.counters["threads"] = threads;
}

// Whole-file load through the plugins; `format` empty: the torch-zip file itself.
void file_load(benchmark::State& state, const std::string& path, const std::string& format,
               int threads) {
  Input& in = input(path);
  std::string file = path;
  if (!format.empty()) {
    file = path + "." + format + ".bench";
    if (!std::filesystem::exists(file)) {
      SaveOptions so;
      so.format = format;
      so.fsync = false;
      save(file, in.ckpt, so);
    }
  }
  LoadOptions lo;
  lo.threads = threads;
  lo.plugin_options.emplace_back("threads", std::to_string(threads));
  const double c0 = process_cpu_s();
  for (auto _ : state) {
    Checkpoint c = load(file, lo);
    benchmark::DoNotOptimize(c.storages.data());
  }
  per_core(state, in.raw, process_cpu_s() - c0);
  const double size = double(std::filesystem::file_size(file));
  state.SetBytesProcessed(int64_t(state.iterations() * in.raw));
  state.counters["size_vs_torch_zip"] = size / double(std::filesystem::file_size(path));
  // Seconds the plain torch-zip file takes to read from a 1 GB/s disk.
  state.counters["zip_at_1GBps_s"] = double(std::filesystem::file_size(path)) / 1e9;
  state.counters["threads"] = threads;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1};
  for (int t = 2; t <= hw; t *= 2) thread_counts.push_back(t);
  if (thread_counts.back() != hw) thread_counts.push_back(hw);
  for (int i = 1; i < argc; ++i) {
    const std::string path = argv[i];
    const std::string name = std::filesystem::path(path).filename().string();
    for (int t : thread_counts) {
      benchmark::RegisterBenchmark(("encode/" + name + "/threads:" + std::to_string(t)).c_str(),
                                   codec_encode, path, t, kDefaultLevel)
          ->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
      benchmark::RegisterBenchmark(("decode/" + name + "/threads:" + std::to_string(t)).c_str(),
                                   codec_decode, path, t)
          ->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
    }
    for (int level : {1, 3})
      benchmark::RegisterBenchmark(("encode_level" + std::to_string(level) + "/" + name).c_str(),
                                   codec_encode, path, 1, level)
          ->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
    for (const std::string fmt : {"", "torch-zip-zstd", "zstd"})
      for (int t : {1, hw})
        benchmark::RegisterBenchmark(
            ("load/" + name + "/" + (fmt.empty() ? "torch-zip" : fmt) + "/threads:" +
             std::to_string(t)).c_str(),
            file_load, path, fmt, t)
            ->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (int i = 1; i < argc; ++i)
    for (const char* fmt : {"torch-zip-zstd", "zstd"})
      std::filesystem::remove(std::string(argv[i]) + "." + fmt + ".bench");
  return 0;
}
