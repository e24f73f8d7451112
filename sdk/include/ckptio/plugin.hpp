// Header-only C++ helpers for writing a ckptio plugin against plugin.h: turn exceptions into
// host statuses at the boundary, read key=value options, and declare the entry point.
// Optional: a plugin written in C uses plugin.h alone.
#pragma once

#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckptio/plugin.h"

namespace ckptio::sdk {

// Throw this inside a plugin to return a specific status code.
class PluginError : public std::runtime_error {
 public:
  PluginError(int32_t code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  int32_t code() const { return code_; }

 private:
  int32_t code_;
};

// Runs fn(); returns NULL on success or a host status for whatever it threw. Nothing
// escapes: the C boundary must never see a C++ exception.
template <class Fn>
ckptio_status guard(const ckptio_host_api* host, const char* what, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const PluginError& e) {
    return host->make_status(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return host->make_status(CKPTIO_LIMIT, (std::string(what) + ": out of memory").c_str());
  } catch (const std::exception& e) {
    return host->make_status(CKPTIO_INTERNAL, (std::string(what) + ": " + e.what()).c_str());
  } catch (...) {
    return host->make_status(CKPTIO_INTERNAL, (std::string(what) + ": unknown exception").c_str());
  }
}

// The value of option `key`, or `fallback` when absent.
inline std::string option(const ckptio_options* options, const char* key,
                          const std::string& fallback = "") {
  if (!options) return fallback;
  for (size_t i = 0; i < options->count; ++i)
    if (std::string(options->items[i].key) == key) return options->items[i].value;
  return fallback;
}

inline bool option_flag(const ckptio_options* options, const char* key, bool fallback = false) {
  std::string v = option(options, key, fallback ? "1" : "0");
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

inline unsigned long long option_uint(const ckptio_options* options, const char* key,
                                      unsigned long long fallback) {
  std::string v = option(options, key);
  if (v.empty()) return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (!end || *end != '\0')
    throw PluginError(CKPTIO_INVALID_ARGUMENT,
                      "option " + std::string(key) + "=" + v + " is not a non-negative integer");
  return n;
}

// The read option "select", one item per key, set by the host for LoadOptions::keys: the
// entries of the root dict the caller wants. A key names an entry, or ends in '.' to select
// every entry it begins. A plugin may leave out what holds none of them (a checkpoint of
// several files: the files); the host cuts the tree to the selection whatever it returns.
constexpr const char* kSelectOption = "select";

inline bool key_selects(const std::string& key, const std::string& name) {
  if (!key.empty() && key.back() == '.') return name.compare(0, key.size(), key) == 0;
  return name == key;
}

class KeySelection {
 public:
  explicit KeySelection(const ckptio_options* options) {
    for (size_t i = 0; options && i < options->count; ++i)
      if (std::string(options->items[i].key) == kSelectOption) keys_.push_back(options->items[i].value);
  }
  bool all() const { return keys_.empty(); }
  bool selects(const std::string& name) const {
    if (keys_.empty()) return true;
    for (const std::string& k : keys_)
      if (key_selects(k, name)) return true;
    return false;
  }

 private:
  std::vector<std::string> keys_;
};

}  // namespace ckptio::sdk

// Defines the exported entry symbol. `make_api` is a function
//   const ckptio_plugin_api* make_api(const ckptio_host_api* host)
// called once the ABI range check has passed.
#define CKPTIO_DEFINE_PLUGIN(make_api)                                                     \
  extern "C" CKPTIO_PLUGIN_EXPORT const ckptio_plugin_api* ckptio_plugin_entry(            \
      const ckptio_host_api* host, uint32_t min_abi, uint32_t max_abi) {                   \
    if (!host || min_abi > CKPTIO_ABI_VERSION || max_abi < CKPTIO_ABI_VERSION) return nullptr; \
    try {                                                                                  \
      return make_api(host);                                                               \
    } catch (...) {                                                                        \
      return nullptr;                                                                      \
    }                                                                                      \
  }
