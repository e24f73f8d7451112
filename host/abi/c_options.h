// Plugin options as the C ABI's ckptio_options, over strings it owns.
#pragma once

#include <utility>
#include <vector>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"

namespace ckptio::host {

class COptions {
 public:
  explicit COptions(PluginOptions opts) : opts_(std::move(opts)) {
    for (const auto& [k, v] : opts_) items_.push_back(ckptio_option{k.c_str(), v.c_str()});
    c_.count = items_.size();
    c_.items = items_.data();
  }
  const ckptio_options* get() const { return &c_; }

 private:
  PluginOptions opts_;
  std::vector<ckptio_option> items_;
  ckptio_options c_{};
};

}  // namespace ckptio::host
