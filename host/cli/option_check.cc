#include "host/cli/option_check.h"

#include <optional>

namespace ckptio::cli {
namespace {

bool applies(const FormatOption& o, OptionUse use) {
  return use == OptionUse::kRead ? o.read : o.write;
}

bool matches(const FormatOption& o, const std::string& key) {
  return o.prefix ? key.size() > o.key.size() && key.compare(0, o.key.size(), o.key) == 0
                  : key == o.key;
}

std::string value_of(const PluginOptions& given, const std::string& key) {
  for (const auto& [k, v] : given)
    if (k == key) return v;
  return "";
}

// The declared option `key` of `format` for `use`, following options that name another
// format (zstd's inner) into that format's declarations. nullopt: not declared anywhere it
// can be looked up; an empty FormatOption: cannot be checked (a format that declares
// nothing, or an inner format known only from the file).
std::optional<FormatOption> lookup(const std::string& format, const std::string& key,
                                   OptionUse use, const PluginOptions& given, int depth = 0) {
  const auto declared = Registry::global().format_options(format);
  if (!declared || depth > 4) return FormatOption{};
  for (const FormatOption& o : *declared)
    if (applies(o, use) && matches(o, key)) return o;
  for (const FormatOption& o : *declared) {
    if (!applies(o, use) || !o.names_format) continue;
    std::string inner = value_of(given, o.key);
    if (inner.empty()) inner = o.default_value;
    if (inner.empty()) return FormatOption{};
    if (inner != format) return lookup(inner, key, use, given, depth + 1);
  }
  return std::nullopt;
}

std::string key_list(const std::string& format, OptionUse use, bool numbers_only) {
  std::string list;
  const auto declared = Registry::global().format_options(format);
  for (const FormatOption& o : declared.value_or(std::vector<FormatOption>{}))
    if (applies(o, use) && (!numbers_only || o.number))
      list += (list.empty() ? "" : ", ") + o.key + (o.prefix ? "KEY" : "");
  return list.empty() ? "none" : list;
}

bool is_number(const std::string& v) {
  return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

PluginOptions checked_options(const std::vector<std::string>& items, const std::string& flag,
                              const std::string& format, OptionUse use, bool numbers_only) {
  PluginOptions out;
  for (const auto& kv : items) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(Code::kInvalidArgument, flag + " '" + kv + "' is not key=value");
    out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  const char* what = numbers_only ? "limit" : use == OptionUse::kRead ? "read option" : "option";
  for (size_t i = 0; i < out.size(); ++i) {
    const auto& [key, value] = out[i];
    const std::optional<FormatOption> o = lookup(format, key, use, out);
    if (!o || (numbers_only && !o->key.empty() && !o->number))
      throw Error(Code::kInvalidArgument,
                  flag + " '" + items[i] + "': format '" + format + "' has no " + what + " '" +
                      key + "' (its " + what + "s: " + key_list(format, use, numbers_only) +
                      "; see `ckptio plugins`)");
    if ((o->number || numbers_only) && !is_number(value))
      throw Error(Code::kInvalidArgument,
                  flag + " '" + items[i] + "': the value must be a number");
  }
  return out;
}

void add_inspect_values(const std::string& format, PluginOptions& options) {
  const auto declared = Registry::global().format_options(format);
  for (const FormatOption& o : declared.value_or(std::vector<FormatOption>{}))
    if (o.read && !o.inspect_value.empty() && value_of(options, o.key).empty())
      options.emplace_back(o.key, o.inspect_value);
}

std::string describe_options(const std::string& format, const std::string& indent) {
  const auto declared = Registry::global().format_options(format);
  if (!declared) return indent + format + ": options not declared (passed on unchecked)\n";
  std::string out = indent + format + " options:" + (declared->empty() ? " none" : "") + "\n";
  for (const FormatOption& o : *declared) {
    std::string line = indent + "  " + (o.read && o.write ? "read/write" : o.read ? "read " : "write") +
                       "  " + o.key + (o.prefix ? "KEY" : "") + (o.number ? "=N" : "");
    line.resize(std::max<size_t>(line.size() + 1, indent.size() + 32), ' ');
    line += o.meaning;
    if (!o.default_value.empty()) line += " [default " + o.default_value + "]";
    if (!o.inspect_value.empty()) line += " [inspect: " + o.inspect_value + "]";
    out += line + "\n";
  }
  return out;
}

}  // namespace ckptio::cli
