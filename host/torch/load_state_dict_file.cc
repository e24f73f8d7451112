// load_state_dict straight from a file: the module is checked against the file's structure
// (meta tensors stand in for the checkpoint's, so nothing is read yet), then each tensor's
// bytes go from the file into the module's own memory. Loading a model this way needs no
// second copy of it in memory, and the module's pages are already faulted in, so the copy
// runs at read() speed rather than at the kernel's rate of handing out fresh pages.
// A CUDA module's tensors get the same treatment through libckptio_cuda (file -> pinned ring
// -> the parameter's device memory) when each covers a whole storage, as a module's own
// state_dict does; without it they would be read into host tensors and copied up.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "cuda_bridge.h"
#include "dtype_map.h"
#include "host/io/progress_concat.h"
#include "host/torch/load_state_dict_core.h"
#include "host/torch/torch_checkpoint_impl.h"

namespace ckptio::detail {
namespace {

constexpr uint64_t kPiece = 16u << 20;  // unit of parallel reading (as the host's loader)

// Whether the view covers numel() consecutive elements in row-major order.
bool dense_row_major(const TensorMeta& m) {
  int64_t expected = 1;
  for (size_t d = m.shape.size(); d-- > 0;) {
    if (m.shape[d] != 1 && m.strides[d] != expected) return false;
    expected *= m.shape[d];
  }
  return true;
}

enum class InPlace { kNo, kHost, kCuda };

// Whether the checkpoint bytes of `m` can be read straight into `dst` unchanged, and how.
InPlace in_place_route(const torch::Tensor& dst, c10::ScalarType src_type, const TensorMeta& m,
                       const Reader& reader) {
  bool same_bytes = dst.layout() == torch::kStrided && !dst.is_quantized() && !dst.is_inference() &&
                    dst.is_contiguous() && dst.scalar_type() == src_type &&
                    dst.numel() == m.numel() && !m.conj && !m.neg && dense_row_major(m) &&
                    reader.plain(m.storage);
  if (!same_bytes) return InPlace::kNo;
  if (dst.device().is_cpu()) return InPlace::kHost;
  // The GPU path moves whole storages.
  uint64_t nbytes = static_cast<uint64_t>(m.numel()) * dst.element_size();
  if (dst.is_cuda() && m.storage_offset == 0 &&
      reader.tree().storages.at(m.storage).nbytes == nbytes && torch_adapter::cuda_path_available())
    return InPlace::kCuda;
  return InPlace::kNo;
}

// Whether a tensor placed on `target` may skip staging there and go straight into `dst`:
// staging on the CPU or on dst's own device would change nothing but the cost. "cuda"
// without an index counts as dst's CUDA device: staged on the current one instead, the
// values copied into dst would be the same.
bool direct(const torch::Device& target, const torch::Tensor& dst) {
  if (target.is_cpu()) return true;
  const torch::Device& d = dst.device();
  return target.type() == d.type() && (!target.has_index() || target.index() == d.index());
}

struct Piece {
  size_t entry;  // index into the checkpoint entries (for messages)
  uint32_t storage;
  uint64_t offset;  // bytes into the storage
  uint8_t* dst;
  uint64_t n;
};

// Reads every piece on `threads` threads; the first failure is thrown naming its tensor.
// Progress (bytes of the pieces) is reported from the calling thread.
void read_pieces(Reader& reader, const std::vector<Piece>& pieces,
                 const std::vector<std::pair<std::string, ValuePtr>>& entries, int threads,
                 const ProgressFn& progress) {
  unsigned n = threads > 0 ? static_cast<unsigned>(threads)
                           : std::max(1u, std::thread::hardware_concurrency());
  n = static_cast<unsigned>(std::min<size_t>(n, pieces.size()));
  uint64_t total = 0;
  for (const Piece& p : pieces) total += p.n;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  size_t first_entry = 0;
  auto work = [&](bool reporter) {
    for (size_t k; (k = next.fetch_add(1)) < pieces.size() && !failed.load();) {
      const Piece& p = pieces[k];
      Status st = reader.read_range(p.storage, p.offset, p.dst, p.n);
      if (st.ok()) {
        uint64_t d = done.fetch_add(p.n) + p.n;
        if (reporter && progress) progress(d, total);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (first.ok()) {
        first = st;
        first_entry = p.entry;
      }
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(work, false);
  work(true);
  for (auto& t : pool) t.join();
  if (!first.ok())
    throw Error(first.code(), first.message() + " (reading '" + entries[first_entry].first +
                                  "' into the module, which may now be partly loaded)");
  if (progress && total) progress(total, total);
}

}  // namespace

LoadStateDictReport load_state_dict_from_file(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const std::string& path, const StateDictFileOptions& options) {
  const LoadStateDictOptions& rules = options.load_state_dict;
  auto impl = std::make_shared<TorchCheckpoint::Impl>();
  LoadOptions base = options.load.base;
  base.load_data = false;
  // The reads below (staged storages, pieces read in place, CUDA storages) each count from
  // zero; the user sees one sequence over all of them. The total is known once planned.
  auto progress = std::make_shared<host::ProgressConcat>(base.progress, 0);
  base.progress = host::ProgressConcat::forwarder(progress);
  impl->reader = Reader::open(path, base);
  impl->options = options.load;
  impl->options.base.progress = base.progress;
  // map_location says where storages are staged, as torch.load's does before PyTorch's
  // load_state_dict copies into the module; with assign that is where the module's tensors
  // end up. Without assign and without a mapping, the saved tags would only send bytes on a
  // detour through devices the module does not use (or fail for a GPU-saved file on a
  // CPU-only machine), so host memory stands in for them and the module's devices decide.
  bool keep_module_devices = !rules.assign && options.load.map_location.keeps_saved_tags();
  impl->placement = torch_adapter::PlacementPlan(
      keep_module_devices ? MapLocation("cpu") : options.load.map_location,
      impl->reader->tree().storages, path);
  TorchCheckpoint checkpoint(impl);
  const std::string& where = options.state_dict_path;
  ValuePtr root = checkpoint.find(where);
  if (!root) throw Error(Code::kNotFound, path + ": nothing at '" + where + "'");
  if (root->kind != Kind::kDict)
    throw Error(Code::kInvalidArgument,
                path + ": '" + where + "' is a " + kind_name(root->kind) + ", not a state_dict");
  bool filtered = !options.load.filter_glob.empty() || options.load.filter;
  std::vector<std::pair<std::string, ValuePtr>> entries;
  for (auto& e : impl->entries(root))
    if (!filtered || impl->keep(dotted_path(where, e.first))) entries.push_back(std::move(e));
  // Before the module is compared or written, as torch.load runs before load_state_dict.
  for (const auto& e : entries) impl->placement.device(e.second->tensor.storage);

  // The checkpoint's tensors as meta tensors: shapes and dtypes for the usual rules, no data.
  StateDict meta;
  for (const auto& [key, node] : entries) {
    const TensorMeta& m = node->tensor;
    c10::ScalarType st = torch_adapter::to_scalar_type(m.dtype, path);
    meta.insert(key, torch::empty_strided(m.shape, m.strides,
                                          torch::TensorOptions().dtype(st).device(torch::kMeta)));
  }
  std::vector<PlannedCopy> plan;
  LoadStateDictReport report = plan_state_dict_load(model, module_class, meta, rules, plan);

  std::vector<Piece> pieces;
  std::vector<uint32_t> cuda_storages;      // read whole into ...
  std::vector<torch::Tensor> cuda_targets;  // ... these CUDA tensors of the module
  std::vector<torch::Tensor> filled;        // module tensors written in place
  std::vector<const PlannedCopy*> staged;
  // Module tensors sharing memory (tied weights) are loaded one after another in the plan's
  // order, as PyTorch's copies are (the last one wins): only the first may be read in place,
  // in parallel with everything else; the rest are staged, and staged copies run after.
  std::unordered_set<const void*> memory_seen;
  for (const PlannedCopy& c : plan) {
    const TensorMeta& m = entries[c.state_index].second->tensor;
    bool shared = c.dst.has_storage() && !memory_seen.insert(c.dst.storage().data()).second;
    InPlace route = rules.assign || shared || !direct(impl->placement.device(m.storage), c.dst)
                        ? InPlace::kNo
                        : in_place_route(c.dst, c.src.scalar_type(), m, *impl->reader);
    if (route == InPlace::kNo) {
      staged.push_back(&c);
      continue;
    }
    filled.push_back(c.dst);
    report.read_in_place.push_back(c.key);
    if (route == InPlace::kCuda) {
      cuda_storages.push_back(m.storage);
      cuda_targets.push_back(c.dst);
      continue;
    }
    uint64_t elem = c.dst.element_size();
    uint64_t n = static_cast<uint64_t>(m.numel()) * elem;
    auto* dst = static_cast<uint8_t*>(c.dst.data_ptr());
    for (uint64_t o = 0; o < n; o += kPiece)
      pieces.push_back(Piece{c.state_index, m.storage,
                             static_cast<uint64_t>(m.storage_offset) * elem + o, dst + o,
                             std::min(kPiece, n - o)});
  }
  // Host-bound staged storages are read first, in parallel, so that one that fails to read
  // or decode (a corrupt compressed chunk, say) fails the load before the module is touched.
  // Those the placement sends to a device are left to materialize, which reads them straight
  // there; reading them here too would read them twice.
  const auto& infos = impl->reader->tree().storages;
  std::vector<uint32_t> staged_host, staged_device;
  for (const PlannedCopy* c : staged) {
    uint32_t index = entries[c->state_index].second->tensor.storage;
    bool to_host = impl->placement.device(index).is_cpu();
    (to_host ? staged_host : staged_device).push_back(index);
  }
  uint64_t total = 0;  // staged storages are read once each; the rest once per tensor
  for (auto* list : {&staged_host, &staged_device}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
    for (uint32_t index : *list) total += infos.at(index).nbytes;
  }
  for (uint32_t index : cuda_storages) total += infos.at(index).nbytes;
  for (const Piece& p : pieces) total += p.n;
  progress->set_total(total);
  // Every staged source is made before anything is written, those staged on a device too,
  // so that a storage failing there also leaves the module unchanged.
  std::vector<torch::Tensor> sources;
  try {
    if (!staged_host.empty()) impl->reader->read_storages(staged_host);
    std::lock_guard<std::mutex> lock(impl->mu);
    for (const PlannedCopy* c : staged)
      sources.push_back(impl->materialize(entries[c->state_index].second));
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (nothing was written to the module)");
  }
  read_pieces(*impl->reader, pieces, entries, base.threads, base.progress);
  if (!cuda_storages.empty()) {
    try {
      torch_adapter::read_storages_into_cuda(*impl->reader, cuda_storages, cuda_targets, base);
    } catch (const Error& e) {
      throw Error(e.code(),
                  std::string(e.what()) +
                      " (reading into the module's CUDA tensors, which may now be partly loaded)");
    }
  }
  // In-place writes bypass copy_, so advance the version counters as copy_ would (autograd
  // then refuses stale saved tensors).
  for (torch::Tensor& t : filled) t.unsafeGetTensorImpl()->bump_version();

  if (!staged.empty()) {
    bool written = !report.read_in_place.empty();
    for (size_t k = 0; k < staged.size(); ++k) {
      const PlannedCopy* c = staged[k];
      torch::Tensor src = sources[k];
      if (c->src.dim() == 0 && src.dim() == 1) src = src[0];  // PyTorch's 0-dim rule
      try {
        apply_planned_copy(PlannedCopy{c->dst, src, c->state_index, c->key}, rules.assign);
      } catch (const Error& e) {
        throw Error(e.code(), path + ": " + e.what() +
                                  (written ? " (the module may now be partly loaded)"
                                           : " (nothing was written to the module)"));
      }
      written = true;
    }
  }
  progress->finish();
  return report;
}

}  // namespace ckptio::detail
