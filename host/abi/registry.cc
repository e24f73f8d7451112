// Plugin discovery and loading with Boost.DLL. The host knows no format: everything it can
// read or write comes from the plugins found here.
#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "host/abi/c_status.h"
#include "host/abi/registry_impl.h"
#include "host/io/checkpoint_source.h"

#ifndef CKPTIO_INSTALL_PLUGIN_DIR
#define CKPTIO_INSTALL_PLUGIN_DIR ""
#endif

namespace ckptio {
namespace fs = std::filesystem;

namespace {

// Plugins stay loaded until process exit (the ABI promises it): the libraries live here and
// are never destroyed, so no static destructor can unload code that is still referenced.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libs = new std::vector<boost::dll::shared_library>();
  return *libs;
}

std::string validate(const ckptio_plugin_api* api) {
  // The smallest plugin table this host can use: everything up to and including close().
  if (!CKPTIO_HAS_FIELD(api, ckptio_plugin_api, close))
    return "plugin table struct_size " + std::to_string(api->struct_size) +
           " is smaller than the " +
           std::to_string(offsetof(ckptio_plugin_api, close) + sizeof api->close) +
           " bytes ABI version 1 needs";
  if (api->abi_version < 1 || api->abi_version > CKPTIO_ABI_VERSION)
    return "plugin answered ABI version " + std::to_string(api->abi_version) + ", host speaks 1.." +
           std::to_string(CKPTIO_ABI_VERSION);
  if (!api->name || !api->formats || api->format_count == 0)
    return "plugin table has no name or no formats";
  if (!api->probe || !api->open || !api->read_storage || !api->close)
    return "plugin table lacks probe, open, read_storage or close";
  for (uint32_t i = 0; i < api->format_count; ++i)
    if (!api->formats[i].name || !*api->formats[i].name) return "a format has no name";
  return "";
}

// Boost.DLL wraps the dynamic loader's text ("... (dlerror system message: X): Bad file
// descriptor"); the loader's own words (X) are what tells the user what is missing.
std::string loader_message(const std::string& what) {
  const std::string marker = "dlerror system message: ";
  auto start = what.find(marker);
  if (start == std::string::npos) return what;
  start += marker.size();
  auto end = what.rfind(')');
  if (end == std::string::npos || end <= start) return what.substr(start);
  return what.substr(start, end - start);
}

// The options a format declares, copied out of the plugin's table; nullopt when it
// declares none. A bad declaration (no key) drops the whole list rather than trust half.
std::optional<std::vector<FormatOption>> declared_options(const ckptio_plugin_api* api,
                                                          uint32_t format) {
  if (!CKPTIO_HAS_FIELD(api, ckptio_plugin_api, options) || !api->options) return std::nullopt;
  uint32_t count = 0;
  const ckptio_option_info* infos = api->options(format, &count);
  if (!infos) return std::nullopt;
  std::vector<FormatOption> out;
  for (uint32_t i = 0; i < count; ++i) {
    const ckptio_option_info& o = infos[i];
    if (!CKPTIO_HAS_FIELD(&o, ckptio_option_info, inspect_value) || !o.key || !*o.key)
      return std::nullopt;
    FormatOption f;
    f.key = o.key;
    f.meaning = o.meaning ? o.meaning : "";
    f.default_value = o.default_value ? o.default_value : "";
    f.inspect_value = o.inspect_value ? o.inspect_value : "";
    f.read = o.flags & CKPTIO_OPTION_READ;
    f.write = o.flags & CKPTIO_OPTION_WRITE;
    f.number = o.flags & CKPTIO_OPTION_NUMBER;
    f.prefix = o.flags & CKPTIO_OPTION_PREFIX;
    f.names_format = o.flags & CKPTIO_OPTION_NAMES_FORMAT;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

const FormatEntry* Registry::Impl::find(const std::string& name) const {
  for (const auto& f : formats)
    if (f.name == name) return &f;
  return nullptr;
}

const ckptio_plugin_api* Registry::Impl::find_format_api(const std::string& name,
                                                         uint32_t* index) const {
  std::lock_guard<std::mutex> lock(mu);
  const FormatEntry* f = find(name);
  if (!f) return nullptr;
  if (index) *index = f->index;
  return f->api;
}

std::string Registry::Impl::format_list_unlocked() const {
  std::string list;
  for (const auto& f : formats) list += (list.empty() ? "" : ", ") + f.name;
  return list.empty() ? "none (no plugins found; see `ckptio plugins`)" : list;
}

Result<FormatEntry> Registry::Impl::choose_format(const ByteSource& src,
                                                  const std::string& requested) {
  std::lock_guard<std::mutex> lock(mu);
  if (!requested.empty()) {
    const FormatEntry* f = find(requested);
    if (!f)
      return Status(Code::kInvalidArgument, "unknown format '" + requested +
                                                "'; available: " + format_list_unlocked());
    return *f;
  }
  uint8_t head[4096];
  uint64_t n = std::min<uint64_t>(sizeof head, src.size());
  CKPTIO_RETURN_IF_ERROR(src.read_at(0, head, n));
  const FormatEntry* best = nullptr;
  int32_t best_score = 0;
  for (const auto& f : formats) {
    if (!(f.caps & CKPTIO_CAN_READ)) continue;
    // A plugin's score is its claim, not trusted: the contract is 0..100, and an answer
    // outside it comes from a broken plugin and claims nothing (clamping 1000 to 100 would
    // let it tie with a real match and win by load order, e.g. from CKPTIO_PLUGIN_PATH).
    int32_t score = 0;
    try {
      score = f.api->probe(f.index, head, n, src.size());
    } catch (...) {
      // Plugins must catch everything at the C boundary; one that does not (built with the
      // same C++ runtime, so the exception does reach us) just does not claim the file.
      score = 0;
    }
    if (score < 0 || score > 100) score = 0;
    if (score > best_score) {
      best = &f;
      best_score = score;
    }
  }
  if (!best)
    return Status(Code::kUnsupported,
                  src.name() + ": not a checkpoint any loaded plugin reads (formats: " +
                      format_list_unlocked() + ")");
  return *best;
}

bool FormatEntry::reads_directories() const {
  return api->abi_version >= 2 && CKPTIO_HAS_FIELD(api, ckptio_plugin_api, probe_directory) &&
         api->probe_directory && (caps & CKPTIO_CAN_READ);
}

Result<FormatEntry> Registry::Impl::choose_format(const host::CheckpointSource& src,
                                                  const std::string& requested) {
  if (!src.is_directory()) return choose_format(src.bytes(), requested);
  std::lock_guard<std::mutex> lock(mu);
  if (!requested.empty()) {
    const FormatEntry* f = find(requested);
    if (!f)
      return Status(Code::kInvalidArgument, "unknown format '" + requested +
                                                "'; available: " + format_list_unlocked());
    if (!f->reads_directories())
      return Status(Code::kUnsupported, src.name() + ": is a directory, and format '" +
                                            requested + "' reads single files only");
    return *f;
  }
  std::vector<const char*> names;
  names.reserve(src.listing().size());
  for (const std::string& n : src.listing()) names.push_back(n.c_str());
  const FormatEntry* best = nullptr;
  int32_t best_score = 0;
  std::string directory_formats;
  for (const auto& f : formats) {
    if (!f.reads_directories()) continue;
    directory_formats += (directory_formats.empty() ? "" : ", ") + f.name;
    int32_t score = 0;
    try {
      score = f.api->probe_directory(f.index, names.data(), names.size());
    } catch (...) {
      score = 0;  // as in probe(): a plugin that throws claims nothing
    }
    if (score < 0 || score > 100) score = 0;
    if (score > best_score) {
      best = &f;
      best_score = score;
    }
  }
  if (!best)
    return Status(Code::kUnsupported,
                  src.name() + ": is a directory that no loaded plugin reads as a checkpoint " +
                      "(formats with a directory form: " +
                      (directory_formats.empty() ? std::string("none") : directory_formats) + ")");
  return *best;
}

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Registry& Registry::global() {
  static Registry* registry = [] {
    auto* r = new Registry();  // leaked on purpose: plugins outlive static destruction
    r->discover();
    return r;
  }();
  return *registry;
}

std::vector<std::string> Registry::search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("CKPTIO_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) dirs.push_back(item);
  }
  // Next to libckptio before the install directory: for an installed library they are the
  // same place, and a build tree must not pick up older installed plugins.
  boost::dll::fs::error_code ec;
  fs::path self = boost::dll::this_line_location(ec);
  if (!ec) {
    dirs.push_back(self.parent_path().string());
    dirs.push_back((self.parent_path() / "ckptio" / "plugins").string());
  }
  if (*CKPTIO_INSTALL_PLUGIN_DIR) dirs.push_back(CKPTIO_INSTALL_PLUGIN_DIR);
  return dirs;
}

void Registry::discover() {
  for (const std::string& entry : search_path()) {
    std::error_code ec;
    if (fs::is_regular_file(entry, ec)) {
      load_plugin(entry);
      continue;
    }
    if (!fs::is_directory(entry, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& de : fs::directory_iterator(entry, ec)) {
      std::string name = de.path().filename().string();
      if (name.rfind("ckptio-", 0) == 0 && de.path().extension() == ".so")
        files.push_back(de.path());
    }
    std::sort(files.begin(), files.end());  // deterministic order
    for (const auto& f : files) load_plugin(f.string());
  }
}

bool Registry::load_plugin(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec).string();
  if (ec) canonical = path;
  for (const auto& p : impl_->loaded_paths)
    if (p == canonical) return true;
  impl_->loaded_paths.push_back(canonical);

  PluginInfo info;
  info.path = canonical;
  auto fail = [&](std::string why) {
    info.error = std::move(why);
    impl_->plugins.push_back(info);
    return false;
  };
  boost::dll::shared_library lib;
  try {
    lib.load(boost::dll::fs::path(canonical),
             boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return fail("cannot load: " + loader_message(e.what()));
  }
  if (!lib.has(CKPTIO_ENTRY_SYMBOL))
    return fail("not a ckptio plugin: no exported symbol " CKPTIO_ENTRY_SYMBOL);
  auto entry = lib.get<const ckptio_plugin_api*(const ckptio_host_api*, uint32_t, uint32_t)>(
      CKPTIO_ENTRY_SYMBOL);
  const ckptio_plugin_api* api = nullptr;
  try {
    api = entry(host::host_api(), 1, CKPTIO_ABI_VERSION);
  } catch (...) {
    return fail("the entry function threw an exception");
  }
  if (!api) return fail("plugin speaks no ABI version in 1.." + std::to_string(CKPTIO_ABI_VERSION));
  if (std::string why = validate(api); !why.empty()) return fail(why);

  info.name = api->name;
  info.version = api->version ? api->version : "";
  info.abi_version = api->abi_version;
  std::vector<std::string> shadowed;
  for (uint32_t i = 0; i < api->format_count; ++i) {
    const ckptio_format_info& f = api->formats[i];
    info.formats.push_back(f.name);
    if (impl_->find(f.name)) {
      shadowed.push_back(f.name);
      continue;
    }
    impl_->formats.push_back(
        FormatEntry{f.name, api, i, canonical, f.caps, declared_options(api, i)});
  }
  if (!shadowed.empty()) {
    std::string list;
    for (const auto& s : shadowed) list += (list.empty() ? "" : ", ") + s;
    info.error = "loaded, but format(s) " + list + " already provided by an earlier plugin";
  }
  impl_->plugins.push_back(info);
  loaded_libraries().push_back(std::move(lib));
  return true;
}

const std::vector<PluginInfo>& Registry::plugins() const { return impl_->plugins; }

std::vector<std::string> Registry::formats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& f : impl_->formats) out.push_back(f.name);
  return out;
}

std::optional<std::vector<FormatOption>> Registry::format_options(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const FormatEntry* f = impl_->find(name);
  if (!f) return std::nullopt;
  return f->options;
}

bool Registry::can_write(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const FormatEntry* f = impl_->find(name);
  return f && (f->caps & CKPTIO_CAN_WRITE) && CKPTIO_HAS_FIELD(f->api, ckptio_plugin_api, save) &&
         f->api->save;
}

bool Registry::has_format(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->find(name) != nullptr;
}

}  // namespace ckptio
