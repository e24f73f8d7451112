// Small checkpoints built in C++ for host tests (no Python needed): a value tree with a few
// tensors over storages whose bytes the test owns.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "support/files.h"

namespace ckptio::testing {

// {"w": float32[2,3] (storage 0), "w_t": its transpose (same storage), "step": 7,
//  "name": "π"} with element values 0..5.
inline Checkpoint small_checkpoint() {
  Checkpoint c;
  c.tree.storages.push_back(StorageInfo{"0", DType::kFloat32, 6 * 4, "cpu"});
  auto bytes = std::shared_ptr<float>(new float[6], std::default_delete<float[]>());
  for (int i = 0; i < 6; ++i) bytes.get()[i] = static_cast<float>(i);
  c.storages.push_back(
      StorageBytes{reinterpret_cast<const uint8_t*>(bytes.get()), 24, bytes, false});
  TensorMeta w;
  w.dtype = DType::kFloat32;
  w.shape = {2, 3};
  w.strides = {3, 1};
  TensorMeta wt = w;
  wt.shape = {3, 2};
  wt.strides = {1, 3};
  auto root = Value::dict(true);
  root->entries.emplace_back(Value::str("w"), Value::make_tensor(w));
  root->entries.emplace_back(Value::str("w_t"), Value::make_tensor(wt));
  root->entries.emplace_back(Value::str("step"), Value::integer(7));
  root->entries.emplace_back(Value::str("name"), Value::str("\xcf\x80"));
  c.tree.root = root;
  return c;
}

using test_support::read_file;

}  // namespace ckptio::testing
