// Implementation of for_each_tensor (header-only because it takes a callable).
#pragma once

#include <string>
#include <unordered_set>

#include "export.h"
#include "value.h"  // value.h includes this file at its end; either order works

namespace ckptio {
namespace detail {

// Paths into a tree, as every walk and message writes them: [i] for a list or tuple item,
// [key] for a dict entry (key_label: 'str' quoted and escaped, numbers, True, None), and
// .args, .state (an object's parts) or .__dict__ (a dict's attributes).
CKPTIO_API std::string key_label(const Value& key);
CKPTIO_API void append_key_label(std::string& out, const Value& key);

// Appends "[i]" without a temporary string.
inline void append_index(std::string& path, size_t i) {
  char buf[24];
  char* p = buf + sizeof buf;
  *--p = ']';
  do {
    *--p = static_cast<char>('0' + i % 10);
    i /= 10;
  } while (i);
  *--p = '[';
  path.append(p, buf + sizeof buf);
}

template <class Fn>
void walk_tensors(const ValuePtr& v, std::string& path, std::unordered_set<const Value*>& seen,
                  Fn& fn) {
  if (!v) return;
  // A node owned by one pointer only is reached through that pointer alone, and its owner is
  // visited at most once, so only nodes with several owners need the visited set (a state
  // dict's tensors and keys usually have one, and the set was most of the walk's cost).
  if (v.use_count() > 1 && !seen.insert(v.get()).second) return;
  switch (v->kind) {
    case Kind::kTensor:
      fn(v, path);
      return;
    case Kind::kList:
    case Kind::kTuple:
      for (size_t i = 0; i < v->items.size(); ++i) {
        size_t n = path.size();
        append_index(path, i);
        walk_tensors(v->items[i], path, seen, fn);
        path.resize(n);
      }
      return;
    case Kind::kDict:
      for (const auto& [k, val] : v->entries) {
        size_t n = path.size();
        path += '[';
        append_key_label(path, *k);
        path += ']';
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
