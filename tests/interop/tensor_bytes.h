// A loaded tensor's elements, for the interop tests that compare values byte for byte.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"

namespace interop {

// The tensor's elements in row-major order, gathered through its strides; nullopt when its
// storage was not read.
inline std::optional<std::string> tensor_bytes(const ckptio::Checkpoint& c,
                                               const ckptio::TensorMeta& t) {
  if (t.storage >= c.storages.size() || t.storage >= c.tree.storages.size()) return std::nullopt;
  const ckptio::StorageBytes& s = c.storages[t.storage];
  const int es = ckptio::dtype_size(t.dtype);
  const int64_t n = t.numel();
  if (n == 0) return std::string();
  if (!s.data || !ckptio::tensor_view_fits(t, s.size)) return std::nullopt;
  std::string out;
  out.reserve(static_cast<size_t>(n * es));
  const size_t dims = t.shape.size();
  std::vector<int64_t> idx(dims, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = t.storage_offset;
    for (size_t d = 0; d < dims; ++d) off += idx[d] * t.strides[d];
    out.append(reinterpret_cast<const char*>(s.data) + off * es, static_cast<size_t>(es));
    for (size_t d = dims; d-- > 0;) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace interop
