// What the C++ API's entry points share: the registry a call goes through and errors that
// name the file.
#pragma once

#include <string>

#include "ckptio/ckptio.h"

namespace ckptio::host {

inline Registry& registry_of(Registry* r) { return r ? *r : Registry::global(); }

[[noreturn]] inline void fail(const Status& st) { throw Error(st); }

// Plugins are asked to name the file; make sure every message does.
inline Status with_file(const Status& st, const std::string& name) {
  if (st.ok() || st.message().rfind(name, 0) == 0) return st;
  return st.with_context(name);
}

}  // namespace ckptio::host
