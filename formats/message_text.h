// Pieces of one-line error messages, shared by the codecs, the plugins and the host: a name
// from a file shown so that it cannot break the line or forge another quote, and a list of
// dims or offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ckptio {

// `s` in single quotes: ' and \ after a backslash, control bytes and DEL as \xNN, cut after
// 160 bytes with "...".
std::string quoted_text(const std::string& s);

// "[2, 3]"; past `max_shown` items, "..." in place of the rest.
std::string ints_text(const std::vector<int64_t>& v,
                      size_t max_shown = std::numeric_limits<size_t>::max());

}  // namespace ckptio
