// Human-readable, indented rendering of a value tree for `ckptio inspect`. A shared
// sub-object is printed once; later occurrences point back to its first path.
#pragma once

#include <ostream>

#include "ckptio/ckptio.h"

namespace ckptio::host {

void print_tree(std::ostream& out, const Checkpoint& ckpt);

// "1.5 MiB"
std::string human_bytes(uint64_t n);

}  // namespace ckptio::host
