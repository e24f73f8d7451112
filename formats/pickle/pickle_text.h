// Private to formats/pickle: conversions between pickle's byte encodings and the value
// tree's text (Python ints of any size, Python 2 strings, protocol-0 escaped literals).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckptio {
namespace pickle_detail {

// LONG1/LONG4 payload: little-endian two's complement, n bytes (n = 0 means 0).
bool twos_complement_to_int64(const uint8_t* p, size_t n, int64_t* out);
std::string twos_complement_to_decimal(const uint8_t* p, size_t n);

// Minimal little-endian two's complement encoding, as Python's encode_long (0 -> "").
std::string int64_to_twos_complement(int64_t v);
// From a decimal text ("-123"); nullopt when the text is not an optional sign + digits.
std::optional<std::string> decimal_to_twos_complement(std::string_view decimal);

// Canonical decimal text: no '+', no leading zeros, "0" not "-0". nullopt when malformed.
std::optional<std::string> normalize_decimal(std::string_view text);
// Parses a canonical decimal that fits int64.
bool decimal_to_int64(std::string_view decimal, int64_t* out);

// UTF-8 validity. `allow_surrogates` accepts encoded U+D800..DFFF, which Python writes for
// lone surrogates (its pickle codec uses 'surrogatepass').
bool is_valid_utf8(std::string_view s, bool allow_surrogates);
std::string latin1_to_utf8(std::string_view s);
// Each code point must be < 256; nullopt otherwise (or when the UTF-8 is malformed).
std::optional<std::string> utf8_to_latin1(std::string_view s);
// A Python 2 str as torch.load decodes it: UTF-8 if valid, else latin-1.
std::string py2_str_to_utf8(std::string_view s);

// STRING's argument: a quoted Python 2 literal with backslash escapes (codecs.escape_decode).
std::optional<std::string> decode_string_literal(std::string_view quoted);
// UNICODE's argument: raw-unicode-escape (\uXXXX, \UXXXXXXXX; other bytes are latin-1).
std::optional<std::string> decode_raw_unicode_escape(std::string_view s);
// Appends the UTF-8 encoding of a code point (surrogates encoded as-is).
void append_utf8(std::string& out, uint32_t cp);

}  // namespace pickle_detail
}  // namespace ckptio
