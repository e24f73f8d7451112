// libckptio: load and save PyTorch checkpoints from C++ through runtime-loaded format
// plugins. No LibTorch here: tensors are views onto storages whose bytes a Checkpoint owns
// (or maps). libckptio_torch turns them into torch::Tensor.
//
// Ownership: a Checkpoint owns its storages' bytes. In zero-copy mode a storage may alias the
// private mapping of the file; the mapping lives as long as any StorageBytes referring to it
// (shared ownership). Writing through it is allowed and private: the touched pages are
// copied on write and never reach the file. The file must not be truncated meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// Found beside this header once installed (<prefix>/include/ckptio/formats/), and through
// the source root in the build tree.
#include "formats/export.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

// The C++ API's one exception type. what() is a one-line message naming the file, the
// record or key, and what is wrong.
class CKPTIO_API Error : public std::runtime_error {
 public:
  Error(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  explicit Error(const Status& st) : Error(st.code(), st.message()) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

struct PluginInfo {
  std::string path;  // the .so file
  std::string name;  // plugin's own name; empty when it failed to load
  std::string version;
  uint32_t abi_version = 0;
  std::vector<std::string> formats;
  std::string error;  // why it failed to load; empty when loaded
};

// An option a format's plugin declares (ckptio_option_info in the plugin ABI).
struct FormatOption {
  std::string key;            // "level"; with `prefix`, a prefix such as "meta."
  std::string meaning;        // one line
  std::string default_value;  // empty when it depends on the file
  std::string inspect_value;  // what `ckptio inspect` passes for a view meant for people
  bool read = false;
  bool write = false;
  bool number = false;        // the value is a non-negative decimal integer
  bool prefix = false;        // key is a prefix (meta.NAME)
  bool names_format = false;  // the value names a format whose options apply too
};

class CKPTIO_API Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry, discovered on first use.
  static Registry& global();

  // Plugin search order: each entry of CKPTIO_PLUGIN_PATH (colon-separated; a directory is
  // scanned for ckptio-*.so, a file is loaded as is), the directory of libckptio and its
  // ckptio/plugins subdirectory, then the installed plugin directory (the same place for an
  // installed libckptio; later for a build tree so that it never picks up older installed
  // plugins). A format already provided by an earlier plugin is not replaced.
  static std::vector<std::string> search_path();
  void discover();
  // Loads one plugin file. Failures are recorded in plugins(), never thrown.
  bool load_plugin(const std::string& path);

  const std::vector<PluginInfo>& plugins() const;
  std::vector<std::string> formats() const;  // formats of loaded plugins, in load order
  bool has_format(const std::string& name) const;
  bool can_write(const std::string& name) const;  // the format's plugin can save it
  // The options format `name` declares; nullopt when the format is unknown or its plugin
  // declares none (an older plugin: its settings pass through unchecked).
  std::optional<std::vector<FormatOption>> format_options(const std::string& name) const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct StorageBytes {
  const uint8_t* data = nullptr;  // null when the bytes were not loaded
  uint64_t size = 0;
  std::shared_ptr<const void> owner;  // keeps the buffer or the mapping alive
  bool mapped = false;                // aliases the file mapping (read-only)
};

struct Checkpoint {
  Tree tree;
  std::vector<StorageBytes> storages;  // parallel to tree.storages
  std::string path;                    // where it was loaded from
  std::string format;                  // "torch-zip"
  std::string plugin_path;             // the plugin that read it
};

// (done, total) in bytes; called from the loading thread only. One call's reports form one
// rising sequence with one total, ending at (total, total), however many reads it makes
// (torch::load to several devices, load_state_dict from a file: ckptio/torch.h).
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

using PluginOptions = std::vector<std::pair<std::string, std::string>>;

struct LoadOptions {
  std::string format;          // empty: detect from the file's head
  bool load_data = true;       // false: structure only, no storage bytes read
  bool zero_copy = false;      // alias plain, aligned storages in the file mapping
  // zero_copy aliases a plain storage whose place in the file is a multiple of this (a power
  // of two) and of its element size; others are copied. 64 keeps every storage 64-byte
  // aligned, as copies are. safetensors aligns its data to 8 bytes (its header is padded to
  // 8), so its files, Hugging Face shards among them, map with 8 or less.
  uint32_t zero_copy_alignment = 64;
  bool allow_objects = false;  // unknown pickle classes become opaque objects (never run)
  bool verify = false;         // check checksums (CRC32 of zip records)
  int threads = 0;             // storage reading threads; 0: one per core
  // Only these entries of the checkpoint's root dict (a state_dict's tensors): a key names
  // an entry, or ends in '.' to select every entry it begins ("model.layers.0."). The tree
  // holds the selection alone and only its storages are read; a checkpoint of several files
  // (Hugging Face shards) opens only the files holding it. Empty: everything. A key that
  // selects nothing fails, naming it.
  std::vector<std::string> keys;
  PluginOptions plugin_options;
  ProgressFn progress;
  Registry* registry = nullptr;  // null: Registry::global()
};

struct SaveOptions {
  std::string format = "torch-zip";
  bool fsync = true;  // make the file durable before it replaces the old one
  PluginOptions plugin_options;
  ProgressFn progress;
  Registry* registry = nullptr;
};

// An open checkpoint whose structure is known and whose storage bytes are read on demand:
// lazy and partial loading (one layer of a huge file costs memory for that layer only).
// Thread-safe. For open_buffer, the caller's buffer must outlive the Reader.
class CKPTIO_API Reader {
 public:
  static std::unique_ptr<Reader> open(const std::string& path, const LoadOptions& options = {});
  static std::unique_ptr<Reader> open_buffer(const void* data, uint64_t size,
                                             const std::string& name,
                                             const LoadOptions& options = {});
  ~Reader();

  const Tree& tree() const;
  const std::string& path() const;
  const std::string& format() const;
  const std::string& plugin_path() const;

  // The bytes of storage `index`, read on first use and then cached.
  StorageBytes storage(uint32_t index);
  // Reads several storages at once (in parallel); already cached ones are skipped.
  void read_storages(const std::vector<uint32_t>& indices);
  // The tree with every storage read so far (others have null data).
  Checkpoint checkpoint() const;

  // Reads bytes [offset, offset + n) of storage `index` into `dst` without caching them (for
  // callers that stage bytes elsewhere, e.g. pinned buffers on their way to a GPU). Plain
  // storages (see plain()) cost a read of just that range; others are decoded by the plugin,
  // which may decode the whole storage per call, so read those whole. Thread-safe; distinct
  // storages may be read concurrently, and ranges of a plain storage too.
  Status read_range(uint32_t index, uint64_t offset, void* dst, uint64_t n);
  // Whether storage `index` sits in the file unmodified (uncompressed, little-endian).
  bool plain(uint32_t index) const;
  // Reads the box [offsets, offsets + sizes) of `tensor` (a tensor of tree()) into `dst`,
  // dense and row-major: one rank's shard of a tensor, to reshard. Only the box's bytes are
  // read, as runs along the dimensions it spans whole (through read_range), and of a DCP
  // checkpoint only the chunks that overlap it, so memory and I/O follow the box.
  // kInvalidArgument when the box has the wrong rank or leaves the tensor.
  Status read_region(const TensorMeta& tensor, const std::vector<int64_t>& offsets,
                     const std::vector<int64_t>& sizes, void* dst);

  struct Impl;

 private:
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Which format the file is (the winning plugin's probe), or throws naming what was tried.
CKPTIO_API std::string detect_format(const std::string& path, Registry* registry = nullptr);

// The container layer of a file checked by its format's plugin (ckptio_plugin_api::verify):
// structure, bounds and every record's checksum, each problem listed rather than only the
// first. Uses options.format (else detects), options.registry and options.plugin_options.
// Throws only when the file cannot be opened or no plugin reads it.
struct ContainerCheck {
  std::string format;
  bool offered = false;    // false: the plugin has no container check (open with verify)
  uint64_t checksums = 0;  // checksums verified
  std::vector<std::string> problems;
};
CKPTIO_API ContainerCheck check_container(const std::string& path, const LoadOptions& options = {});

CKPTIO_API Checkpoint load(const std::string& path, const LoadOptions& options = {});
// `data` must outlive the call; the Checkpoint copies what it keeps (zero_copy is ignored).
CKPTIO_API Checkpoint load_buffer(const void* data, uint64_t size, const std::string& name,
                       const LoadOptions& options = {});

// Writes atomically: a temporary file beside `path` is written, flushed and renamed over it;
// on any failure the old file is untouched and the temporary is removed.
CKPTIO_API void save(const std::string& path, const Checkpoint& checkpoint, const SaveOptions& options = {});

// A consistent, independent copy of a checkpoint's bytes (one parallel pass): later changes
// to the original storages (e.g. tensors a builder aliased) do not reach it.
CKPTIO_API Checkpoint snapshot(const Checkpoint& checkpoint);

// Snapshots `checkpoint` before returning, then saves the snapshot on a background thread,
// so the caller may go on changing its tensors. Errors surface from future.get().
CKPTIO_API std::future<void> save_async(const std::string& path, const Checkpoint& checkpoint,
                             const SaveOptions& options = {});

// The state_dict of a whole-model pickle (torch.save(model), loaded with
// LoadOptions::allow_objects so that the model's classes are opaque objects), built without
// running any of the model's code: what model.state_dict() returns (dotted keys; parameters,
// persistent buffers, submodules; tied weights stay tied). Storages are shared with `ckpt`.
// Throws ckptio::Error naming the file and the path when the root is not a module.
CKPTIO_API Checkpoint extract_state_dict(const Checkpoint& ckpt);

}  // namespace ckptio
