#include "formats/pickle/pickle_text.h"

#include <vector>

namespace ckptio {
namespace pickle_detail {
namespace {

// Drops redundant sign-extension bytes from a little-endian two's complement number.
void minimize(std::string& b) {
  while (!b.empty()) {
    uint8_t top = static_cast<uint8_t>(b.back());
    if (b.size() == 1) {
      if (top == 0) b.pop_back();  // 0 is the empty encoding
      break;
    }
    uint8_t next = static_cast<uint8_t>(b[b.size() - 2]);
    if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
      b.pop_back();
    else
      break;
  }
}

// Negates a little-endian two's complement byte string in place.
void negate(std::vector<uint8_t>& b) {
  unsigned carry = 1;
  for (auto& x : b) {
    unsigned v = static_cast<uint8_t>(~x) + carry;
    x = static_cast<uint8_t>(v);
    carry = v >> 8;
  }
}

}  // namespace

bool twos_complement_to_int64(const uint8_t* p, size_t n, int64_t* out) {
  if (n == 0) {
    *out = 0;
    return true;
  }
  bool neg = p[n - 1] & 0x80;
  if (n > 8) {
    uint8_t ext = neg ? 0xff : 0x00;
    for (size_t i = 8; i < n; ++i)
      if (p[i] != ext) return false;
    if (((p[7] & 0x80) != 0) != neg) return false;
  }
  uint64_t u = neg ? ~uint64_t{0} : 0;
  for (size_t i = 0; i < n && i < 8; ++i) {
    u &= ~(uint64_t{0xff} << (8 * i));
    u |= uint64_t{p[i]} << (8 * i);
  }
  *out = static_cast<int64_t>(u);
  return true;
}

std::string twos_complement_to_decimal(const uint8_t* p, size_t n) {
  if (n == 0) return "0";
  std::vector<uint8_t> mag(p, p + n);
  bool neg = p[n - 1] & 0x80;
  if (neg) negate(mag);
  // Base 2^32 limbs, least significant first.
  std::vector<uint32_t> limbs((n + 3) / 4, 0);
  for (size_t i = 0; i < n; ++i) limbs[i / 4] |= uint32_t{mag[i]} << (8 * (i % 4));
  while (!limbs.empty() && limbs.back() == 0) limbs.pop_back();
  if (limbs.empty()) return "0";
  std::string digits;  // reversed
  while (!limbs.empty()) {
    uint64_t rem = 0;
    for (size_t i = limbs.size(); i-- > 0;) {
      uint64_t cur = (rem << 32) | limbs[i];
      limbs[i] = static_cast<uint32_t>(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    while (!limbs.empty() && limbs.back() == 0) limbs.pop_back();
    for (int k = 0; k < 9; ++k) {
      digits.push_back(static_cast<char>('0' + rem % 10));
      rem /= 10;
      if (limbs.empty() && rem == 0) break;
    }
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (neg) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

std::string int64_to_twos_complement(int64_t v) {
  std::string b(8, '\0');
  uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(u >> (8 * i));
  minimize(b);
  return b;
}

std::optional<std::string> decimal_to_twos_complement(std::string_view decimal) {
  auto canon = normalize_decimal(decimal);
  if (!canon) return std::nullopt;
  std::string_view d = *canon;
  bool neg = !d.empty() && d[0] == '-';
  if (neg) d.remove_prefix(1);
  std::vector<uint32_t> limbs;  // magnitude, base 2^32, least significant first
  for (char c : d) {
    uint64_t carry = static_cast<uint64_t>(c - '0');
    for (auto& l : limbs) {
      uint64_t cur = uint64_t{l} * 10 + carry;
      l = static_cast<uint32_t>(cur);
      carry = cur >> 32;
    }
    if (carry) limbs.push_back(static_cast<uint32_t>(carry));
  }
  std::vector<uint8_t> bytes;
  for (uint32_t l : limbs)
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(l >> (8 * i)));
  bytes.push_back(0);  // room for the sign bit
  if (neg) negate(bytes);
  std::string out(bytes.begin(), bytes.end());
  minimize(out);
  return out;
}

std::optional<std::string> normalize_decimal(std::string_view t) {
  bool neg = false;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
    neg = t[0] == '-';
    t.remove_prefix(1);
  }
  if (t.empty()) return std::nullopt;
  for (char c : t)
    if (c < '0' || c > '9') return std::nullopt;
  while (t.size() > 1 && t[0] == '0') t.remove_prefix(1);
  if (t == "0") return std::string("0");
  return (neg ? "-" : "") + std::string(t);
}

bool decimal_to_int64(std::string_view d, int64_t* out) {
  bool neg = !d.empty() && d[0] == '-';
  if (neg) d.remove_prefix(1);
  if (d.empty() || d.size() > 19) return false;
  uint64_t u = 0;
  for (char c : d) {
    if (c < '0' || c > '9') return false;
    u = u * 10 + static_cast<uint64_t>(c - '0');  // <= 19 digits cannot overflow uint64
  }
  if (neg) {
    if (u > uint64_t{1} << 63) return false;
    *out = static_cast<int64_t>(0 - u);
  } else {
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
  }
  return true;
}

bool is_valid_utf8(std::string_view s, bool allow_surrogates) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff)
      return false;
    if (!allow_surrogates && cp >= 0xd800 && cp <= 0xdfff) return false;
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) append_utf8(out, static_cast<uint8_t>(c));
  return out;
}

std::optional<std::string> utf8_to_latin1(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    if (p[i] < 0x80) {
      out.push_back(static_cast<char>(p[i++]));
    } else if ((p[i] & 0xe0) == 0xc0 && i + 1 < s.size() && (p[i + 1] & 0xc0) == 0x80) {
      uint32_t cp = ((p[i] & 0x1fu) << 6) | (p[i + 1] & 0x3fu);
      if (cp < 0x80 || cp > 0xff) return std::nullopt;
      out.push_back(static_cast<char>(cp));
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string py2_str_to_utf8(std::string_view s) {
  if (is_valid_utf8(s, false)) return std::string(s);
  return latin1_to_utf8(s);
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<std::string> decode_string_literal(std::string_view q) {
  if (q.size() < 2 || (q[0] != '\'' && q[0] != '"') || q.back() != q[0]) return std::nullopt;
  std::string_view s = q.substr(1, q.size() - 2);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= s.size()) return std::nullopt;
    char e = s[i];
    switch (e) {
      case '\n':
        break;  // line continuation
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x': {
        if (i + 2 >= s.size()) return std::nullopt;
        int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
        if (h < 0 || l < 0) return std::nullopt;
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k)
            v = v * 8 + (s[++i] - '0');
          out.push_back(static_cast<char>(v & 0xff));
        } else {
          out.push_back('\\');  // unknown escapes are kept verbatim, as Python does
          out.push_back(e);
        }
    }
  }
  return out;
}

std::optional<std::string> decode_raw_unicode_escape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
      size_t digits = s[i + 1] == 'u' ? 4 : 8;
      if (s.size() - (i + 2) < digits) return std::nullopt;
      uint32_t cp = 0;
      for (size_t k = 0; k < digits; ++k) {
        int h = hex_value(s[i + 2 + k]);
        if (h < 0) return std::nullopt;
        cp = cp * 16 + static_cast<uint32_t>(h);
      }
      if (cp > 0x10ffff) return std::nullopt;
      append_utf8(out, cp);
      i += 1 + digits;
    } else {
      append_utf8(out, c);
    }
  }
  return out;
}

}  // namespace pickle_detail
}  // namespace ckptio
