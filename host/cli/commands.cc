#include "host/cli/commands.h"

#include <iostream>

#include "ckptio/ckptio.h"
#include "host/cli/progress.h"
#include "host/json_encode.h"
#include "host/tree_printer.h"

namespace ckptio::cli {

void Commands::add_all(CLI::App& app) {
  plugins_ = app.add_subcommand("plugins", "List the format plugins found, and why any failed");

  inspect_ = app.add_subcommand("inspect", "Print a checkpoint's format and value tree");
  inspect_->add_option("file", in_, "Checkpoint file")->required();
  inspect_->add_flag("--json", json_, "One JSON object (see README: JSON encoding)");
  inspect_->add_option("--input-format", in_format_, "Read as this format instead of detecting");
  inspect_->add_flag("--allow-objects", allow_objects_,
                     "Show unknown pickle classes as opaque objects (never executed)");

  convert_ = app.add_subcommand("convert", "Convert a checkpoint to another format");
  convert_->add_option("in", in_, "Input checkpoint")->required();
  convert_->add_option("out", out_, "Output file (replaced atomically)")->required();
  convert_->add_option("--format", format_, "Output format, e.g. torch-zip, torch-legacy")
      ->required();
  convert_->add_option("--input-format", in_format_, "Read as this format instead of detecting");
  convert_->add_option("--option", options_, "Output plugin option key=value (repeatable)");
  convert_->add_option("--inner", inner_,
                       "For --format zstd: the format inside the zstd stream (default "
                       "torch-zip); same as --option inner=NAME");
  convert_->add_flag("--allow-objects", allow_objects_,
                     "Keep unknown pickle classes as opaque objects (never executed)");
}

int Commands::run() {
  if (plugins_->parsed()) return plugins();
  if (inspect_->parsed()) return inspect();
  if (convert_->parsed()) return convert();
  return 2;
}

int Commands::plugins() {
  Registry& reg = Registry::global();
  std::cout << "plugin search path:\n";
  for (const auto& d : Registry::search_path()) std::cout << "  " << d << "\n";
  if (reg.plugins().empty()) {
    std::cout << "no plugins found: no format can be read or written\n";
    return 0;
  }
  std::cout << "plugins:\n";
  for (const PluginInfo& p : reg.plugins()) {
    if (p.name.empty()) {
      std::cout << "  FAILED  " << p.path << "\n          " << p.error << "\n";
      continue;
    }
    std::cout << "  " << p.name << " " << p.version << "  (ABI " << p.abi_version << ")  "
              << p.path << "\n          formats:";
    for (const auto& f : p.formats) std::cout << " " << f;
    std::cout << "\n";
    if (!p.error.empty()) std::cout << "          note: " << p.error << "\n";
  }
  std::cout << "formats available:";
  for (const auto& f : reg.formats()) std::cout << " " << f;
  std::cout << "\n";
  return 0;
}

int Commands::inspect() {
  LoadOptions opts;
  opts.format = in_format_;
  opts.allow_objects = allow_objects_;
  opts.load_data = json_;  // tensor hashes need the bytes; the tree alone does not
  // A TorchScript archive is shown as its module tree (parameters, buffers, submodules,
  // attributes, methods, constants, extra files); `convert` keeps the plugin's default view,
  // the state_dict that Python's load_state_dict accepts.
  if ((in_format_.empty() ? detect_format(in_) : in_format_) == "torchscript")
    opts.plugin_options.emplace_back("view", "modules");
  opts.zero_copy = true;
  Progress progress("reading");
  opts.progress = [&](uint64_t d, uint64_t t) { progress.update(d, t); };
  Checkpoint ckpt = load(in_, opts);
  if (json_)
    std::cout << host::inspect_json(ckpt, false) << "\n";
  else
    host::print_tree(std::cout, ckpt);
  return 0;
}

int Commands::convert() {
  SaveOptions save_opts;
  save_opts.format = format_;
  for (const auto& kv : options_) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(Code::kInvalidArgument, "--option '" + kv + "' is not key=value");
    save_opts.plugin_options.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  if (!inner_.empty()) save_opts.plugin_options.emplace_back("inner", inner_);
  if (!Registry::global().has_format(format_)) {
    std::string list;
    for (const auto& f : Registry::global().formats()) list += (list.empty() ? "" : ", ") + f;
    throw Error(Code::kInvalidArgument, "unknown output format '" + format_ +
                                            "'; available: " + (list.empty() ? "none" : list));
  }
  LoadOptions opts;
  opts.format = in_format_;
  opts.allow_objects = allow_objects_;
  opts.zero_copy = true;  // the mapping outlives the save below; nothing is copied twice
  Checkpoint ckpt;
  {
    Progress progress("reading");
    opts.progress = [&](uint64_t d, uint64_t t) { progress.update(d, t); };
    ckpt = load(in_, opts);
  }
  Progress progress("writing");
  save_opts.progress = [&](uint64_t d, uint64_t t) { progress.update(d, t); };
  save(out_, ckpt, save_opts);
  return 0;
}

}  // namespace ckptio::cli
