// huggingface_hub's shard split and size parser (shard_plan.h), step for step.
#include "formats/hf/shard_plan.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

namespace ckptio::hf {
namespace {

// Text for a message: control and non-ASCII bytes as \xNN, cut after 80 characters.
std::string shown(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
    if (out.size() > 80) {
      out += "...";
      break;
    }
  }
  return out;
}

Status bad_size(const std::string& text, const std::string& why) {
  return Status(Code::kInvalidArgument, "size '" + shown(text) + "': " + why);
}

// str.strip() over ASCII: Python's str.isspace() also holds \x1c-\x1f.
std::string py_strip(const std::string& s) {
  const auto blank = [](char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
  };
  size_t b = 0, e = s.size();
  while (b < e && blank(s[b])) ++b;
  while (e > b && blank(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// digitpart: digit (["_"] digit)*, appended to *clean without the underscores.
bool digit_part(const std::string& s, size_t* i, std::string* clean) {
  if (*i >= s.size() || !is_digit(s[*i])) return false;
  clean->push_back(s[(*i)++]);
  while (*i < s.size()) {
    if (is_digit(s[*i])) {
      clean->push_back(s[(*i)++]);
    } else if (s[*i] == '_' && *i + 1 < s.size() && is_digit(s[*i + 1])) {
      clean->push_back(s[*i + 1]);
      *i += 2;
    } else {
      break;
    }
  }
  return true;
}

bool equals_lower(const std::string& s, size_t from, const char* word) {
  size_t k = 0;
  for (; word[k]; ++k)
    if (from + k >= s.size() || (s[from + k] | 0x20) != word[k]) return false;
  return from + k == s.size();
}

enum class FloatKind { kNumber, kInfinite, kNan, kInvalid };

// Python's float(str) grammar for the ASCII text `s` (already stripped):
// [sign] (inf | infinity | nan | digitpart ["." [digitpart]] [exp] | "." digitpart [exp]).
// *clean gets the number without '+' and '_'; *order the decimal order of its first nonzero
// digit (10^order <= |value| < 10^(order+1)), used when from_chars says out of range.
FloatKind python_float(const std::string& s, std::string* clean, long long* order) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') clean->push_back('-');
    ++i;
  }
  if (equals_lower(s, i, "inf") || equals_lower(s, i, "infinity")) return FloatKind::kInfinite;
  if (equals_lower(s, i, "nan")) return FloatKind::kNan;
  std::string int_digits, frac_digits;
  const bool has_int = digit_part(s, &i, &int_digits);
  bool has_frac = false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    has_frac = digit_part(s, &i, &frac_digits);
  }
  if (!has_int && !has_frac) return FloatKind::kInvalid;
  *clean += int_digits;
  if (!frac_digits.empty()) *clean += "." + frac_digits;
  long long exp = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    std::string e;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) e.push_back(s[i++]);
    std::string digits;
    if (!digit_part(s, &i, &digits)) return FloatKind::kInvalid;
    *clean += "e" + e + digits;
    for (const char d : digits) exp = std::min(exp * 10 + (d - '0'), 1'000'000'000LL);
    if (e == "-") exp = -exp;
  }
  if (i != s.size()) return FloatKind::kInvalid;
  const std::string all = int_digits + frac_digits;
  const size_t nz = all.find_first_not_of('0');
  *order = nz == std::string::npos
               ? -1'000'000'000'000LL  // zero
               : static_cast<long long>(int_digits.size()) - 1 - static_cast<long long>(nz) + exp;
  return FloatKind::kNumber;
}

}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
  for (const char c : text)
    if (static_cast<unsigned char>(c) >= 0x80)
      return bad_size(text, "holds a non-ASCII byte (sizes are read as ASCII)");
  // The int form (save_pretrained(max_shard_size=1000)): decimal digits alone.
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size())
      return bad_size(text, "is over 2^64 - 1 bytes");
    return v;
  }
  const std::string s = py_strip(text);
  // unit = size_as_str[-2:].upper(): the whole text when it is shorter.
  std::string unit = s.size() >= 2 ? s.substr(s.size() - 2) : s;
  for (char& c : unit)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  uint64_t multiplier = 0;
  if (unit == "TB") multiplier = 1'000'000'000'000;
  if (unit == "GB") multiplier = 1'000'000'000;
  if (unit == "MB") multiplier = 1'000'000;
  if (unit == "KB") multiplier = 1'000;
  if (multiplier == 0)
    return bad_size(text, "unit '" + shown(unit) + "' is not one of TB, GB, MB, KB (decimal units)");
  const std::string number = py_strip(s.substr(0, s.size() - 2));
  std::string clean;
  long long order = 0;
  switch (python_float(number, &clean, &order)) {
    case FloatKind::kInvalid:
      return bad_size(text, "'" + number + "' is not a number");
    case FloatKind::kInfinite:
      return bad_size(text, "the size is infinite");
    case FloatKind::kNan:
      return bad_size(text, "the size is not a number (nan)");
    case FloatKind::kNumber:
      break;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), value);
  if (end != clean.data() + clean.size()) return bad_size(text, "'" + number + "' is not a number");
  if (ec == std::errc::result_out_of_range) {
    // Past double's range: Python's float is inf (refused below) or a value whose product
    // with the unit is below 1 (int() makes it 0).
    if (order > 0) return bad_size(text, "the size is infinite");
    value = 0;
  } else if (ec != std::errc()) {
    return bad_size(text, "'" + number + "' is not a number");
  }
  const double bytes = value * static_cast<double>(multiplier);  // int(value * multiplier)
  if (!std::isfinite(bytes)) return bad_size(text, "the size is infinite");
  if (bytes <= -1.0) return bad_size(text, "the size is negative");
  if (bytes >= 18446744073709551616.0) return bad_size(text, "is over 2^64 - 1 bytes");
  return bytes < 1.0 ? uint64_t{0} : static_cast<uint64_t>(bytes);
}

ShardPlan plan_shards(const std::vector<ShardItem>& items, uint64_t max_shard_size) {
  // storage_id_to_tensors, in first-seen order. Zero-byte storages are one (data_ptr 0).
  struct Storage {
    std::vector<size_t> items;  // the first one is placed; the others follow it
  };
  std::vector<Storage> storages;
  std::unordered_map<uint64_t, size_t> by_id;
  size_t zero_bytes = SIZE_MAX;  // the storage every zero-byte item belongs to

  ShardPlan plan;
  std::vector<size_t> current;
  uint64_t current_size = 0;
  std::vector<size_t> shard_of(items.size(), SIZE_MAX);  // for placed items; SIZE_MAX: current
  const auto close_current = [&] {
    for (const size_t i : current) shard_of[i] = plan.shards.size();
    plan.shards.push_back(std::move(current));
    current.clear();
    current_size = 0;
  };

  uint64_t total_parameters = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const ShardItem& item = items[i];
    total_parameters += item.numel;
    size_t* slot = nullptr;
    if (item.storage_bytes == 0) {
      slot = &zero_bytes;
    } else {
      auto it = by_id.find(item.storage_id);
      if (it == by_id.end()) it = by_id.emplace(item.storage_id, SIZE_MAX).first;
      slot = &it->second;
    }
    if (*slot != SIZE_MAX) {  // shares a storage seen before: placed at the end
      storages[*slot].items.push_back(i);
      continue;
    }
    *slot = storages.size();
    storages.push_back({{i}});

    const uint64_t size = item.storage_bytes;
    plan.meta.total_size += size;
    if (size > max_shard_size) {  // its own shard, at once
      shard_of[i] = plan.shards.size();
      plan.shards.push_back({i});
      continue;
    }
    // current_size + size > max, without overflow (both are at most max here).
    if (current_size > max_shard_size - size) close_current();
    current.push_back(i);
    current_size += size;
  }
  if (!current.empty()) close_current();

  for (const Storage& s : storages) {
    const size_t shard = shard_of[s.items[0]];
    for (size_t k = 1; k < s.items.size(); ++k) plan.shards[shard].push_back(s.items[k]);
  }
  plan.meta.total_parameters = total_parameters;
  return plan;
}

std::vector<std::pair<std::string, std::string>> plan_weight_map(
    const std::vector<ShardItem>& items, const ShardPlan& plan, ShardKind kind) {
  std::vector<std::pair<std::string, std::string>> map;
  for (size_t s = 0; s < plan.shards.size(); ++s) {
    const std::string file = plan.shards.size() == 1 ? std::string(single_file_name(kind))
                                                     : shard_file_name(kind, s, plan.shards.size());
    for (const size_t i : plan.shards[s]) map.emplace_back(items[i].name, file);
  }
  return map;
}

}  // namespace ckptio::hf
