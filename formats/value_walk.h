// Implementation of for_each_tensor (header-only because it takes a callable).
#pragma once

#include <string>
#include <unordered_set>

namespace ckptio {
namespace detail {

std::string key_label(const Value& key);

template <class Fn>
void walk_tensors(const ValuePtr& v, std::string& path, std::unordered_set<const Value*>& seen,
                  Fn& fn) {
  if (!v || !seen.insert(v.get()).second) return;
  switch (v->kind) {
    case Kind::kTensor:
      fn(v, path);
      return;
    case Kind::kList:
    case Kind::kTuple:
      for (size_t i = 0; i < v->items.size(); ++i) {
        size_t n = path.size();
        path += "[" + std::to_string(i) + "]";
        walk_tensors(v->items[i], path, seen, fn);
        path.resize(n);
      }
      return;
    case Kind::kDict:
      for (const auto& [k, val] : v->entries) {
        size_t n = path.size();
        path += "[" + key_label(*k) + "]";
        walk_tensors(val, path, seen, fn);
        path.resize(n);
      }
      return;
    case Kind::kObject: {
      size_t n = path.size();
      path += ".args";
      walk_tensors(v->args, path, seen, fn);
      path.resize(n);
      path += ".state";
      walk_tensors(v->state, path, seen, fn);
      path.resize(n);
      return;
    }
    default:
      return;
  }
}

}  // namespace detail

template <class Fn>
void for_each_tensor(const ValuePtr& root, Fn&& fn) {
  std::string path;
  std::unordered_set<const Value*> seen;
  detail::walk_tensors(root, path, seen, fn);
}

}  // namespace ckptio
