// The user's key=value settings checked against what the format's plugin declares
// (Registry::format_options), so that a typo fails naming the keys the format takes rather
// than passing silently; the CLI itself knows no format's keys. A plugin that declares
// nothing (built before declarations existed) gets its settings unchecked.
#pragma once

#include <string>
#include <vector>

#include "ckptio/ckptio.h"

namespace ckptio::cli {

enum class OptionUse { kRead, kWrite };

// Splits "key=value" items given with `flag` (e.g. "--option") into pairs and checks each
// against `format`'s declared options for `use`; with numbers_only (--limit), only the
// numeric read options (limits) qualify. Throws Error(kInvalidArgument) naming the item.
PluginOptions checked_options(const std::vector<std::string>& items, const std::string& flag,
                              const std::string& format, OptionUse use, bool numbers_only = false);

// The values the format declares for `ckptio inspect`'s view (read options with an inspect
// value), for keys not already set.
void add_inspect_values(const std::string& format, PluginOptions& options);

// `ckptio plugins`' lines for one format's options, indented by `indent`.
std::string describe_options(const std::string& format, const std::string& indent);

}  // namespace ckptio::cli
