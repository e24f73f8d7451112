// The host's implementation of ckptio_builder: rebuilds a Tree from a plugin's pre-order
// description, checking everything a buggy or hostile plugin could get wrong (counts,
// storage indices, tensor views, references to unfinished nodes) instead of trusting it.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ckptio/plugin.h"
#include "formats/value.h"

namespace ckptio::host {

class TreeBuilder {
 public:
  TreeBuilder();
  const ckptio_builder* c_builder() const { return &builder_; }

  // The finished tree, or what the plugin got wrong.
  Result<Tree> finish();
  // Per storage: file offset of plain bytes or CKPTIO_NOT_PLAIN.
  const std::vector<uint64_t>& file_offsets() const { return offsets_; }
  // Per storage: the member file its plain bytes lie in (0: the source open() was given).
  const std::vector<uint32_t>& members() const { return members_; }

 private:
  struct Frame {
    ValuePtr node;
    uint64_t expected;  // children still to come
    ValuePtr pending_key;
    int slot = 0;       // object: 0 args, 1 state
  };

  Status add_storage(const ckptio_storage_desc* d);
  Status add(ValuePtr v);
  Status begin(int32_t kind, uint64_t count, const char* name, size_t len, uint32_t flags);
  Status end();
  Status tensor(const ckptio_tensor_desc* d);
  Status share(uint64_t id);
  Status ref(uint64_t id);
  void register_shared(const ValuePtr& v);

  static ckptio_status cb_add_storage(void* ctx, const ckptio_storage_desc* d);
  static ckptio_status cb_scalar(void* ctx, int32_t kind, int64_t i, double f, const char* text,
                                 size_t len);
  static ckptio_status cb_begin(void* ctx, int32_t kind, uint64_t count, const char* name,
                                size_t len, uint32_t flags);
  static ckptio_status cb_end(void* ctx);
  static ckptio_status cb_tensor(void* ctx, const ckptio_tensor_desc* d);
  static ckptio_status cb_share(void* ctx, uint64_t id);
  static ckptio_status cb_ref(void* ctx, uint64_t id);

  ckptio_builder builder_{};
  Tree tree_;
  std::vector<uint64_t> offsets_;
  std::vector<uint32_t> members_;
  std::vector<Frame> stack_;
  std::unordered_map<uint64_t, ValuePtr> shared_;
  std::unordered_map<const Value*, bool> open_;  // containers not yet ended
  uint64_t pending_share_ = 0;
  bool root_set_ = false;
  Status error_;  // first error; later calls are refused
};

}  // namespace ckptio::host
