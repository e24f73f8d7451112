#include "host/cli/commands.h"

#include <iostream>

#include "ckptio/ckptio.h"
#include "host/cli/option_check.h"
#include "host/cli/output_format.h"
#include "host/cli/progress.h"
#include "host/render/json_encode.h"
#include "host/render/tree_printer.h"

namespace ckptio::cli {
namespace {

bool declares_option(const std::string& format, const std::string& key) {
  auto declared = Registry::global().format_options(format);
  if (!declared) return false;
  for (const FormatOption& o : *declared)
    if (o.key == key && o.write) return true;
  return false;
}

bool has_option(const PluginOptions& options, const std::string& key) {
  for (const auto& [k, v] : options)
    if (k == key) return true;
  return false;
}

const char kLimitHelp[] =
    "Reading limit key=N (repeatable): the input format's numeric read options, e.g. "
    "max_depth, max_memo, max_string, max_size (`ckptio plugins` lists them)";

constexpr const char* kReadOptionHelp =
    "Input plugin option key=value (repeatable; `ckptio plugins` lists each format's), e.g. "
    "threads=N, or stream=0 to buffer a zstd-wrapped torch-legacy file instead of streaming it";

constexpr const char* kKeyHelp =
    "Only this entry of the state_dict (repeatable); a key ending in '.' takes every entry it "
    "begins, e.g. model.layers.0. (of a sharded checkpoint, only the shards holding them are read)";

}  // namespace

void Commands::add_all(CLI::App& app) {
  add_bench(app);
  add_verify(app);
  plugins_ = app.add_subcommand("plugins", "List the format plugins found, and why any failed");

  inspect_ = app.add_subcommand("inspect", "Print a checkpoint's format and value tree");
  inspect_->add_option("file", in_, "Checkpoint file, directory or index file")->required();
  inspect_->add_flag("--json", json_, "One JSON object (see docs/json.md)");
  inspect_->add_option("--input-format", in_format_, "Read as this format instead of detecting");
  inspect_->add_flag("--allow-objects", allow_objects_,
                     "Show unknown pickle classes as opaque objects (never executed)");
  inspect_->add_option("--limit", limits_, kLimitHelp);
  inspect_->add_option("--read-option", read_options_, kReadOptionHelp);
  inspect_->add_option("--key", keys_, kKeyHelp);

  convert_ = app.add_subcommand("convert", "Convert a checkpoint to another format");
  convert_->add_option("in", in_, "Input checkpoint")->required();
  convert_->add_option("out", out_,
                       "Output file, or directory for sharded formats (replaced atomically)")
      ->required();
  convert_->add_option("--format", format_,
                       "Output format, e.g. torch-zip, safetensors; default: from the output's "
                       "name (.safetensors, .pt/.pth/.bin/.ckpt, a directory: safetensors shards)");
  convert_->add_option("--input-format", in_format_, "Read as this format instead of detecting");
  convert_->add_option("--option", options_,
                       "Output plugin option key=value (repeatable; `ckptio plugins` lists "
                       "each format's), e.g. inner=torch-legacy for --format zstd");
  convert_->add_flag("--allow-objects", allow_objects_,
                     "Keep unknown pickle classes as opaque objects (never executed)");
  convert_->add_option("--limit", limits_, kLimitHelp);
  convert_->add_option("--read-option", read_options_, kReadOptionHelp);
  convert_->add_option("--key", keys_, kKeyHelp);
  convert_->add_flag("--extract-state-dict", extract_state_dict_,
                     "Write the state_dict of a whole-model pickle (torch.save(model)) read "
                     "with --allow-objects, without running any of its code");
}

void Commands::add_verify(CLI::App& app) {
  verify_ = app.add_subcommand(
      "verify", "Check structure, bounds and checksums; list every problem (exit 1) or say ok");
  verify_->add_option("file", verify_args_.file, "Checkpoint file, directory or index file")->required();
  verify_->add_option("--input-format", verify_args_.format, "Read as this format");
  verify_->add_flag("--allow-objects", verify_args_.allow_objects,
                    "Accept unknown pickle classes as opaque objects (never executed)");
  verify_->add_option("--limit", verify_args_.limits, kLimitHelp);
}

void Commands::add_bench(CLI::App& app) {
  bench_ = app.add_subcommand("bench", "Time loading a checkpoint into memory");
  bench_->add_option("file", bench_args_.file, "Checkpoint file")->required();
  bench_->add_option("--device", bench_args_.device,
                     "Where tensors go: cpu (default), cuda, cuda:N");
  bench_->add_option("--repeat", bench_args_.repeat, "Number of loads (default 5)");
  bench_->add_option("--threads", bench_args_.threads, "Reading threads (default: cores)");
  bench_->add_flag("--zero-copy", bench_args_.zero_copy, "Map aligned storages instead of copying");
  bench_->add_flag("--json", bench_args_.json,
                   "One JSON object {\"best_s\", \"median_s\", \"bytes\", \"gbps\"}");
}

int Commands::run() {
  if (plugins_->parsed()) return plugins();
  if (inspect_->parsed()) return inspect();
  if (convert_->parsed()) return convert();
  if (bench_->parsed()) return run_bench(bench_args_);
  if (verify_->parsed()) return run_verify(verify_args_);
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
    std::cout << "  " << p.name << " " << p.version << "  (ABI " << p.abi_version << ")  " << p.path
              << "\n          formats:";
    for (const auto& f : p.formats) std::cout << " " << f;
    std::cout << "\n";
    for (const auto& f : p.formats)
      if (reg.has_format(f)) std::cout << describe_options(f, "          ");
    if (!p.error.empty()) std::cout << "          note: " << p.error << "\n";
  }
  std::cout << "formats available:";
  for (const auto& f : reg.formats()) std::cout << " " << f;
  std::cout << "\nformats writable:";
  for (const auto& f : reg.formats())
    if (reg.can_write(f)) std::cout << " " << f;
  std::cout << "\n";
  return 0;
}

PluginOptions Commands::read_settings(const std::string& format) const {
  PluginOptions out = checked_options(limits_, "--limit", format, OptionUse::kRead, true);
  PluginOptions more = checked_options(read_options_, "--read-option", format, OptionUse::kRead);
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

int Commands::inspect() {
  LoadOptions opts;
  opts.allow_objects = allow_objects_;
  opts.format = in_format_.empty() ? detect_format(in_) : in_format_;  // detected once
  opts.plugin_options = read_settings(opts.format);
  opts.load_data = json_;  // tensor hashes need the bytes; the tree alone does not
  opts.keys = keys_;
  // The view a format declares for people (a TorchScript archive's module tree) rather
  // than the one `convert` keeps (its state_dict).
  add_inspect_values(opts.format, opts.plugin_options);
  opts.zero_copy = true;
  opts.zero_copy_alignment = 1;  // bytes only hashed: any element-aligned storage maps
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
  if (format_.empty()) {
    const OutputChoice choice = format_from_output_name(out_);
    format_ = choice.format;
    std::cerr << "ckptio: writing " << format_ << " (" << choice.why << "; --format to choose)\n";
  }
  SaveOptions save_opts;
  save_opts.format = format_;
  if (!Registry::global().has_format(format_)) {
    std::string list;
    for (const auto& f : Registry::global().formats()) list += (list.empty() ? "" : ", ") + f;
    throw Error(Code::kInvalidArgument, "unknown output format '" + format_ +
                                            "'; available: " + (list.empty() ? "none" : list));
  }
  save_opts.plugin_options = checked_options(options_, "--option", format_, OptionUse::kWrite);
  // A directory output of a format with a sharded form is sharded, as save_pretrained shards.
  if (names_a_directory(out_) && declares_option(format_, "max_shard_size") &&
      !has_option(save_opts.plugin_options, "max_shard_size")) {
    save_opts.plugin_options.emplace_back("max_shard_size", kDefaultMaxShardSize);
    std::cerr << "ckptio: " << out_ << " is a directory: writing shards of at most "
              << kDefaultMaxShardSize << " (--option max_shard_size=SIZE to choose)\n";
  }
  if (extract_state_dict_ && !allow_objects_)
    throw Error(Code::kInvalidArgument,
                "--extract-state-dict reads a whole-model pickle: it needs --allow-objects");
  LoadOptions opts;
  opts.allow_objects = allow_objects_;
  opts.format = in_format_.empty() ? detect_format(in_) : in_format_;  // detected once
  opts.plugin_options = read_settings(opts.format);
  opts.zero_copy = true;  // the mapping outlives the save below; nothing is copied twice
  opts.zero_copy_alignment = 1;  // the writer only reads the bytes: no alignment needed
  opts.keys = keys_;
  Checkpoint ckpt;
  {
    Progress progress("reading");
    opts.progress = [&](uint64_t d, uint64_t t) { progress.update(d, t); };
    ckpt = load(in_, opts);
  }
  if (extract_state_dict_) ckpt = extract_state_dict(ckpt);
  Progress progress("writing");
  save_opts.progress = [&](uint64_t d, uint64_t t) { progress.update(d, t); };
  save(out_, ckpt, save_opts);
  return 0;
}

}  // namespace ckptio::cli
