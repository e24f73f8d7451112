// The host's implementation of ckptio_tree: a read-only view of a Checkpoint that a plugin
// walks to write it. Node handles are the Value pointers, so sharing is visible.
#pragma once

#include <functional>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.h"

namespace ckptio::host {

class TreeView {
 public:
  // `on_bytes` is told how many storage bytes the plugin has pulled (progress).
  TreeView(const Checkpoint& ckpt, std::function<void(uint64_t)> on_bytes);
  const ckptio_tree* c_tree() const { return &tree_; }

 private:
  static void storage(void* ctx, uint32_t i, ckptio_storage_desc* out);
  static const void* storage_data(void* ctx, uint32_t i);
  static ckptio_status read_storage(void* ctx, uint32_t i, uint64_t off, void* dst, uint64_t n);
  static int32_t kind(void* ctx, ckptio_node n);
  static uint32_t flags(void* ctx, ckptio_node n);
  static int64_t int_value(void* ctx, ckptio_node n);
  static double float_value(void* ctx, ckptio_node n);
  static const char* text(void* ctx, ckptio_node n, size_t* len);
  static size_t child_count(void* ctx, ckptio_node n);
  static ckptio_node child(void* ctx, ckptio_node n, size_t i);
  static void tensor(void* ctx, ckptio_node n, ckptio_tensor_desc* out);

  const Checkpoint& ckpt_;
  std::function<void(uint64_t)> on_bytes_;
  ckptio_tree tree_{};
};

}  // namespace ckptio::host
