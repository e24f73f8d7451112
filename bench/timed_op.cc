// Times one operation of ckptio or of LibTorch on one file, the way bench/py/timed_op.py
// times the Python peers, for bench/run.py: one JSON line per timed run,
//   {"op", "file", "run", "seconds", "peak_bytes"}
// peak_bytes is what the run added to the process's resident set at its peak (peak_rss.h);
// pages of a file mapping count too (page cache a mapping made resident in the process).
//
//   timed_op OP FILE [REPEAT]     (FILE: the op's input in its format (--list): a torch.save
//                                 state_dict as Python wrote it, whose torch:: ops read or
//                                 write FILE + their suffix; or the .safetensors file, or the
//                                 directory of Hugging Face shards, made from the same tensors)
//   timed_op --prepare FILE       writes the LibTorch-format copies of FILE's tensors that
//                                 the torch:: ops read (FILE.libtorch_*.pt), if missing
//   timed_op --list               the ops, one per line: name, kind, file suffix, format
//
// bench/run.py starts one process per timed run, so each load goes into fresh memory, and
// evicts or warms the file first. Untimed: loading the plugins, each op's preparation (the
// module to load into, the tensors to save), freeing the result, and before a save removing
// the previous output and flushing dirty pages (sync), as the Python side does.
#include <fcntl.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ckptio/torch.h"
#include "limit_ops.h"
#include "mirror_module.h"
#include "peak_rss.h"

namespace {

// What a run returns is kept alive until its time is taken (freeing it is not timed).
using Result = std::shared_ptr<void>;
template <class T>
Result keep(T value) {
  return std::make_shared<T>(std::move(value));
}

struct Op {
  // load | lazy | module | save | save_durable | load_sharded | lazy_sharded | save_sharded
  // (as py/peer_ops.py), or limit | limit_save
  std::string kind;
  std::string suffix;  // appended to FILE: the file this op reads ("" = FILE itself)
  // Untimed, once: returns the state the timed run needs (may be null).
  std::function<std::shared_ptr<void>(const std::string& file)> prepare;
  std::function<Result(const std::string& path, void* state)> run;
  // Which of the benchmark files FILE is (py/make_bench_files.py's keys): pt, safetensors,
  // or shards (a directory of Hugging Face shards with model.safetensors.index.json).
  std::string fmt = "pt";
};

ckptio::TorchLoadOptions cpu_load(bool zero_copy = false) {
  ckptio::TorchLoadOptions o;
  o.map_location = "cpu";
  o.base.zero_copy = zero_copy;
  return o;
}

ckptio::StateDict load_sd(const std::string& file) {
  return ckptio::load(file, cpu_load()).state_dict();
}

std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void fsync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) throw std::runtime_error("cannot fsync " + path);
  ::close(fd);
}

// LibTorch's own formats for the same tensors: its pickle (torch::pickle_save of a
// str -> tensor dict), its serialize archive (torch::save of the tensor list) and a
// TorchScript module holding them as parameters (torch::jit::Module::save; dots in names
// become '_', which attribute names cannot hold).
const char* const kPickleSuffix = ".libtorch_pickle.pt";
const char* const kArchiveSuffix = ".libtorch_archive.pt";
const char* const kJitSuffix = ".libtorch_jit.pt";

c10::impl::GenericDict as_dict(const ckptio::StateDict& sd) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : sd) dict.insert(item.key(), item.value());
  return dict;
}

std::vector<torch::Tensor> as_list(const ckptio::StateDict& sd) {
  std::vector<torch::Tensor> list;
  for (const auto& item : sd) list.push_back(item.value());
  return list;
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

torch::jit::Module as_jit_module(const ckptio::StateDict& sd) {
  torch::jit::Module m("__torch__.Weights");
  for (const auto& item : sd) {
    std::string name = item.key();
    for (char& c : name)
      if (c == '.') c = '_';
    m.register_parameter(name, item.value(), false);
  }
  return m;
}

void prepare_libtorch_files(const std::string& file) {
  ckptio::StateDict sd = load_sd(file);
  auto missing = [&](const char* suffix) { return !std::filesystem::exists(file + suffix); };
  if (missing(kPickleSuffix))
    write_bytes(file + kPickleSuffix, torch::pickle_save(c10::IValue(as_dict(sd))));
  if (missing(kArchiveSuffix)) torch::save(as_list(sd), file + kArchiveSuffix);
  if (missing(kJitSuffix)) as_jit_module(sd).save(file + kJitSuffix);
}

std::shared_ptr<void> module_for(const std::string& file) {
  return ckptio_bench::mirror_module(load_sd(file));
}
std::shared_ptr<void> tensors_of(const std::string& file) {
  return std::make_shared<ckptio::StateDict>(load_sd(file));
}

// The tensors of the .pt beside a peer-format FILE ("x.safetensors", "x.shards" -> "x.pt"),
// as the Python savers take theirs: every saver starts from the same tensors.
std::shared_ptr<void> tensors_of_source(const std::string& file) {
  return tensors_of(std::filesystem::path(file).replace_extension(".pt").string());
}

// max_shard_size for the sharded saves, the rule of py/peer_ops.py's shard_limit: 28% of the
// tensor bytes in decimal MB, which is 300MB for the 1 GiB model and 4 shards at the --quick
// size too.
std::string shard_limit(const ckptio::StateDict& sd) {
  double bytes = 0;
  for (const auto& item : sd) bytes += double(item.value().nbytes());
  return std::to_string(std::max<long long>(1, std::llround(bytes * 0.28 / 1e6))) + "MB";
}

// ---- the timed runs: `path` is the file to read, or the output to write -------------------

Result ckptio_load(const std::string& path, void*) {
  return keep(ckptio::load(path, cpu_load()).state_dict());
}

// The core API alone (storages and the value tree, no LibTorch tensors): separates parsing
// from tensor construction, for small tensors especially.
Result ckptio_load_core(const std::string& path, void*) {
  return keep(ckptio::load(path, ckptio::LoadOptions{}));
}

// Tensors aligned to their element size, as safe_open's and torch.load(mmap=True)'s are
// (safetensors aligns its data to 8 bytes only; torch.save files are 64-byte aligned anyway).
Result ckptio_load_zero_copy(const std::string& path, void*) {
  ckptio::TorchLoadOptions o = cpu_load(true);
  o.base.zero_copy_alignment = 1;
  return keep(ckptio::load(path, o).state_dict());
}

Result ckptio_load_state_dict_file(const std::string& path, void* module) {
  ckptio::load_state_dict(*static_cast<torch::nn::Module*>(module), path);
  return nullptr;
}

Result ckptio_load_then_load_state_dict(const std::string& path, void* module) {
  ckptio::load_state_dict(*static_cast<torch::nn::Module*>(module), load_sd(path));
  return nullptr;
}

template <bool kDurable>
Result ckptio_save(const std::string& path, void* sd) {
  ckptio::SaveOptions so;
  so.fsync = kDurable;  // durable: fsync of the temporary, rename, fsync of the directory
  ckptio::save(path, *static_cast<ckptio::StateDict*>(sd), so);
  return nullptr;
}

// A Hugging Face sharded checkpoint as transformers' save_pretrained writes it (shards of at
// most max_shard_size, the index beside them), or with `kSharded` false one .safetensors file.
template <bool kSharded>
Result ckptio_save_safetensors(const std::string& path, void* state) {
  const auto& sd = *static_cast<ckptio::StateDict*>(state);
  ckptio::SaveOptions so;
  so.format = "safetensors";
  so.fsync = false;  // as the Hugging Face savers, which do not fsync
  if (kSharded) so.plugin_options = {{"max_shard_size", shard_limit(sd)}};
  ckptio::save(path, sd, so);
  return nullptr;
}

Result libtorch_pickle_load(const std::string& path, void*) {
  std::vector<char> bytes = read_all(path);  // pickle_load takes the bytes in memory
  return keep(torch::pickle_load(bytes));
}

Result libtorch_archive_load(const std::string& path, void*) {
  std::vector<torch::Tensor> list;
  torch::load(list, path);
  return keep(std::move(list));
}

Result libtorch_jit_load(const std::string& path, void*) { return keep(torch::jit::load(path)); }

template <bool kDurable>
Result libtorch_pickle_save(const std::string& path, void* sd) {
  write_bytes(path, torch::pickle_save(c10::IValue(as_dict(*static_cast<ckptio::StateDict*>(sd)))));
  if (kDurable) fsync_file(path);
  return nullptr;
}

template <bool kDurable>
Result libtorch_archive_save(const std::string& path, void* sd) {
  torch::save(as_list(*static_cast<ckptio::StateDict*>(sd)), path);
  if (kDurable) fsync_file(path);
  return nullptr;
}

std::shared_ptr<void> nothing(const std::string&) { return nullptr; }

// ---- the limits (limit_ops.h), one run each, on as many bytes as the file's storages ---------

uint64_t storage_bytes(const std::string& file) {
  ckptio::LoadOptions lo;
  lo.load_data = false;
  uint64_t n = 0;
  for (const auto& s : ckptio::load(file, lo).tree.storages) n += s.nbytes;
  return n;
}

// Pre-faulted buffers of the storage bytes (`b` is only used by memcpy), and the file's size.
struct Buffers {
  std::vector<char> a, b;
  uint64_t file_bytes = 0;
};

std::shared_ptr<void> buffers_for(const std::string& file) {
  auto bufs = std::make_shared<Buffers>();
  bufs->a.assign(storage_bytes(file), 1);
  bufs->b.assign(bufs->a.size(), 0);
  bufs->file_bytes = std::filesystem::file_size(file);
  return bufs;
}

std::shared_ptr<void> read_buffer_for(const std::string& file) {
  auto bufs = std::make_shared<Buffers>();
  bufs->file_bytes = std::filesystem::file_size(file);
  bufs->a.assign(bufs->file_bytes, 0);
  return bufs;
}

std::shared_ptr<void> size_of(const std::string& file) {
  return std::make_shared<uint64_t>(storage_bytes(file));
}

Result limit_memcpy(const std::string&, void* state) {
  auto& bufs = *static_cast<Buffers*>(state);
  std::memcpy(bufs.b.data(), bufs.a.data(), bufs.a.size());
  return nullptr;
}

Result limit_read(const std::string& path, void* state) {
  auto& bufs = *static_cast<Buffers*>(state);
  if (!ckptio_bench::read_into(path, bufs.a.data(), bufs.file_bytes))
    throw std::runtime_error("cannot read " + path);
  return nullptr;
}

// By ckptio's own method: userfaultfd where allowed, else zeroed pages then read.
Result limit_fresh_copy(const std::string& path, void* state) {
  const uint64_t n = *static_cast<uint64_t*>(state);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  uint8_t* p = ckptio_bench::fresh_copy(fd, n, true, threads);
  if (!p) p = ckptio_bench::fresh_copy(fd, n, false, threads);
  ::close(fd);
  if (!p) throw std::runtime_error("cannot read " + path);
  return std::shared_ptr<void>(p, [n](void* q) { munmap(q, n); });
}

template <bool kDurable>
Result limit_write(const std::string& path, void* state) {
  auto& bufs = *static_cast<Buffers*>(state);
  if (!ckptio_bench::write_file(path, bufs.a.data(), bufs.a.size(), true, kDurable))
    throw std::runtime_error("cannot write " + path);
  return nullptr;
}

std::map<std::string, Op> ops() {
  return {
      {"ckptio load", {"load", "", nothing, ckptio_load}},
      {"ckptio load (core API, no torch tensors)", {"load", "", nothing, ckptio_load_core}},
      {"ckptio load (zero_copy)", {"lazy", "", nothing, ckptio_load_zero_copy}},
      {"ckptio load_state_dict(module, file)",
       {"module", "", module_for, ckptio_load_state_dict_file}},
      {"ckptio load + load_state_dict(module, sd)",
       {"module", "", module_for, ckptio_load_then_load_state_dict}},
      {"ckptio save", {"save", "", tensors_of, ckptio_save<false>}},
      {"ckptio save + fsync", {"save_durable", "", tensors_of, ckptio_save<true>}},
      {"torch::pickle_load", {"load", kPickleSuffix, nothing, libtorch_pickle_load}},
      {"torch::load (tensor list)", {"load", kArchiveSuffix, nothing, libtorch_archive_load}},
      {"torch::jit::load", {"load", kJitSuffix, nothing, libtorch_jit_load}},
      {"torch::pickle_save", {"save", kPickleSuffix, tensors_of, libtorch_pickle_save<false>}},
      {"torch::pickle_save + fsync",
       {"save_durable", kPickleSuffix, tensors_of, libtorch_pickle_save<true>}},
      {"torch::save (tensor list)",
       {"save", kArchiveSuffix, tensors_of, libtorch_archive_save<false>}},
      {"torch::save (tensor list) + fsync",
       {"save_durable", kArchiveSuffix, tensors_of, libtorch_archive_save<true>}},
      // Hugging Face sharded checkpoints (bf16; py/workloads.py's sharded_* workloads): the
      // same tensors as one .safetensors file and as shards, loaded and saved by ckptio.
      {"ckptio load (shards)", {"load_sharded", "", nothing, ckptio_load, "shards"}},
      {"ckptio load (one .safetensors)",
       {"load_sharded", "", nothing, ckptio_load, "safetensors"}},
      {"ckptio load (zero_copy, shards)",
       {"lazy_sharded", "", nothing, ckptio_load_zero_copy, "shards"}},
      {"ckptio load (zero_copy, one .safetensors)",
       {"lazy_sharded", "", nothing, ckptio_load_zero_copy, "safetensors"}},
      {"ckptio save (shards, max_shard_size)",
       {"save_sharded", "", tensors_of_source, ckptio_save_safetensors<true>, "shards"}},
      {"ckptio save (one .safetensors)",
       {"save_sharded", "", tensors_of_source, ckptio_save_safetensors<false>, "safetensors"}},
      {"memcpy limit", {"limit", "", buffers_for, limit_memcpy}},
      {"read() limit", {"limit", "", read_buffer_for, limit_read}},
      {"fresh-memory limit", {"limit", "", size_of, limit_fresh_copy}},
      {"write() limit", {"limit_save", "", buffers_for, limit_write<false>}},
      {"write() + fsync limit", {"limit_save", "", buffers_for, limit_write<true>}},
  };
}

// "x.pt" -> "x.bench-out.pt" ("x.shards" -> "x.bench-out.shards", a directory): saves write
// beside their input, never over it.
std::string out_path(const std::string& path) {
  std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + ".bench-out" + p.extension().string())).string();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) try {
  const std::map<std::string, Op> table = ops();
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& [name, op] : table)
      std::cout << name << '\t' << op.kind << '\t' << op.suffix << '\t' << op.fmt << '\n';
    return 0;
  }
  if (argc == 3 && std::string(argv[1]) == "--prepare") {
    prepare_libtorch_files(argv[2]);
    return 0;
  }
  if (argc < 3 || !table.count(argv[1])) {
    std::cerr << "usage: timed_op OP FILE [REPEAT] | --prepare FILE | --list\n";
    return 2;
  }
  const std::string name = argv[1], file = argv[2];
  const int repeat = argc > 3 ? std::stoi(argv[3]) : 1;
  const Op& op = table.at(name);
  ckptio::Registry::global();  // plugins loaded once per process, before timing
  std::shared_ptr<void> state = op.prepare(file);
  const bool saving = op.kind.find("save") != std::string::npos;
  const std::string path = saving ? out_path(file + op.suffix) : file + op.suffix;
  for (int i = 0; i < repeat; ++i) {
    if (saving) {
      std::filesystem::remove_all(path);
      ::sync();
    }
    const uint64_t rss0 = ckptio_bench::start_peak();
    auto t0 = std::chrono::steady_clock::now();
    Result r = op.run(path, state.get());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t peak = ckptio_bench::peak_since(rss0);
    r.reset();
    std::printf(
        "{\"op\": %s, \"file\": %s, \"run\": %d, \"seconds\": %.9f, \"peak_bytes\": %lld}\n",
        json_string(name).c_str(), json_string(file).c_str(), i, seconds,
        static_cast<long long>(peak));
    std::fflush(stdout);
  }
  if (saving) std::filesystem::remove_all(path);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "timed_op: " << e.what() << '\n';
  return 1;
}
