// Registry internals shared by the loader, the detector and the host API table.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"

namespace ckptio {

struct FormatEntry {
  std::string name;
  const ckptio_plugin_api* api = nullptr;
  uint32_t index = 0;        // format index within the plugin
  std::string plugin_path;
  uint32_t caps = 0;
};

struct Registry::Impl {
  mutable std::mutex mu;
  std::vector<PluginInfo> plugins;
  std::vector<FormatEntry> formats;
  std::vector<std::string> loaded_paths;  // canonical paths, to load each file once

  const FormatEntry* find(const std::string& name) const;
  const ckptio_plugin_api* find_format_api(const std::string& name, uint32_t* index) const;
};

}  // namespace ckptio
