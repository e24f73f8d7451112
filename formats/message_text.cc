#include "formats/message_text.h"

namespace ckptio {

std::string quoted_text(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  constexpr size_t kMaxShown = 160;
  std::string out = "'";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == kMaxShown) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string ints_text(const std::vector<int64_t>& v, size_t max_shown) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    if (i == max_shown) {
      s += "...";
      break;
    }
    s += std::to_string(v[i]);
  }
  return s + "]";
}

}  // namespace ckptio
