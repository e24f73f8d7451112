// Registry internals shared by the loader, the detector and the host API table.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"
#include "formats/io.h"

namespace ckptio {
namespace host {
class CheckpointSource;
}

struct FormatEntry {
  // Whether the format's plugin reads directories (ABI 2's probe_directory).
  bool reads_directories() const;

  std::string name;
  const ckptio_plugin_api* api = nullptr;
  uint32_t index = 0;        // format index within the plugin
  std::string plugin_path;
  uint32_t caps = 0;
  std::optional<std::vector<FormatOption>> options;  // as declared; nullopt: not declared
};

struct Registry::Impl {
  mutable std::mutex mu;
  std::vector<PluginInfo> plugins;
  std::vector<FormatEntry> formats;
  std::vector<std::string> loaded_paths;  // canonical paths, to load each file once

  const FormatEntry* find(const std::string& name) const;
  // The plugin (or the named format, when `requested` is not empty) that reads `src`;
  // takes the lock.
  Result<FormatEntry> choose_format(const ByteSource& src, const std::string& requested);
  // The same for a checkpoint that may be a directory, which only formats with a directory
  // form (ckptio_plugin_api::probe_directory, ABI 2) read.
  Result<FormatEntry> choose_format(const host::CheckpointSource& src, const std::string& requested);
  std::string format_list_unlocked() const;  // "a, b" or a hint that none is loaded
  const ckptio_plugin_api* find_format_api(const std::string& name, uint32_t* index) const;
};

// The host table's find_format takes no context, and one plugin library serves every
// registry that loads it; yet a plugin that wraps another format must find it in the
// registry the load or save goes through, not always in the global one. So the host marks
// that registry on the calling thread for the length of each plugin call that may look
// formats up (open, save); find_format answers from it, and from the global registry when
// none is marked (a plugin calling from a thread of its own).
class CallingRegistry {
 public:
  explicit CallingRegistry(const Registry::Impl& registry);
  ~CallingRegistry();
  CallingRegistry(const CallingRegistry&) = delete;
  CallingRegistry& operator=(const CallingRegistry&) = delete;

  // The registry marked on this thread, or null.
  static const Registry::Impl* current();

 private:
  const Registry::Impl* previous_;
};

}  // namespace ckptio
