// formats/hf (hf_index.h, shard_plan.h): every refusal of parse_index, the head probe on
// index, safetensors, zip and garbage heads, the writer, and then the codec against the real
// huggingface_hub 2.4 and transformers 5.24 of CKPTIO_TEST_PYTHON, run at test time by the
// script below (cached per script and interpreter, as pickle_fixtures_test.cc does): its
// parse_size_to_int over ~800 strings, split_torch_state_dict_into_shards over CPU and meta
// tensors (shared storages, oversize tensors, zero-byte storages), json.dumps of tricky
// names, and real save_pretrained / save_torch_state_dict directories.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "formats/hf/hf_index.h"
#include "formats/hf/shard_plan.h"
#include "support/files.h"
#include "support/process.h"

namespace ckptio::hf {
namespace {

const char kPython[] = CKPTIO_TEST_PYTHON;

// usage: python cases.py OUT_DIR; writes OUT_DIR/cases.txt (tab-separated, strings as UTF-8
// hex) and the checkpoint directories it names.
const char kCasesScript[] = R"PY(
import json, os, random, sys
import torch
from huggingface_hub import save_torch_state_dict, split_torch_state_dict_into_shards
from huggingface_hub.serialization._base import parse_size_to_int
import huggingface_hub, transformers

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
lines = ["versions\t%s\t%s" % (huggingface_hub.__version__, transformers.__version__)]
h = lambda s: s.encode("utf-8").hex()

# 1. parse_size_to_int over hand-picked and random ASCII strings.
sizes = ["5GB", "2.5MB", "10KB", "1000", "5gb", "5Gb", "5gB", " 5 GB ", "5 GB", "1.5TB", "0GB",
         "-0GB", "-1GB", "-0.0000001KB", "-0.9KB", "1e3KB", "1E3kb", "1_000KB", "1__000KB",
         "_1KB", "1_KB", "1._5KB", "1_0.5_0KB", "1.KB", ".5KB", ".KB", "KB", "B", "5", "", "  ",
         "5GiB", "5MiB", "5KiB", "5G", "5b", "inf GB", "infGB", "-infGB", "nanGB", "NaNGB",
         "InfinityMB", "infinitykb", "1e400KB", "1e-400KB", "4e-13TB", "1e10TB",
         "18446744.073709551615TB", "18446744.073709551616TB", "18446744073709551615",
         "18446744073709551616", "0", "007", "0.1KB", "0.3KB", "0.7KB", "1.1GB", "2.3MB",
         "4.35MB", "9.95GB", "1.001KB", "123.456789KB", "0.000001KB", "+5GB", "++5GB", "5 5GB",
         "5\tGB", "\t5GB\n", "5GB\x1c", "\x1f5GB", "5\x0bGB", "5.0e-3MB", "1e1_0KB", "1e_10KB",
         "0x10KB", "1,5GB", "5GBGB", "GB5", "5e", "5eKB", "5e+KB", "5e+3KB", "5.5.5GB", "- 5GB",
         "5\x00GB", "9007199254740993KB", "1e15TB", "1.8446744073709552e7TB"]
rng = random.Random(20240611)
alphabet = "0123456789._eE+- \tkKmMgGtTbBi"
for _ in range(200):
    body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
    sizes.append(body + rng.choice(["", "B", "GB", "gb", "Kb", "MB", "TB", "tB", " KB", "kB "]))
def digits():
    d = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
    return d if rng.random() < 0.8 else d[:1] + "_" + d
for _ in range(400):  # mostly well-formed numbers: the rounding of value * unit
    num = rng.choice(["", "", "+", "-"]) + rng.choice([digits(), digits() + ".", "." + digits(),
                                                      digits() + "." + digits()])
    if rng.random() < 0.3:
        num += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 25))
    sizes.append(rng.choice(["", " "]) + num + rng.choice(["", " "]) + rng.choice(["TB", "GB", "MB", "KB", "kb", "Gb"]))
for s in sizes:
    try:
        v = parse_size_to_int(s)
        kind = "ok" if 0 <= v < 2**64 else ("neg" if v < 0 else "big")
        lines.append("size\t%s\t%s\t%d" % (h(s), kind, v))
    except Exception:
        lines.append("size\t%s\terr\t0" % h(s))

# 2. split_torch_state_dict_into_shards: (name, group, storage bytes, numel, device) specs.
#    Items of one CPU group are uint8 views of one storage; meta tensors have no storage id.
def split_case(name, max_size, specs):
    bases, sd = {}, {}
    for tname, group, nbytes, numel, device in specs:
        if device == "meta":
            sd[tname] = torch.empty(nbytes, dtype=torch.uint8, device="meta")[:numel]
            continue
        if group not in bases:
            bases[group] = torch.empty(nbytes, dtype=torch.uint8)
        sd[tname] = bases[group][:numel]
    split = split_torch_state_dict_into_shards(sd, max_shard_size=max_size)
    lines.append("split\t%s\t%d" % (name, max_size))
    for tname, group, nbytes, numel, device in specs:
        lines.append("item\t%s\t%d\t%d\t%d" % (h(tname), group, nbytes, numel))
    for fname, names in split.filename_to_tensors.items():
        lines.append("shard\t%s\t%s" % (h(fname), ",".join(h(n) for n in names)))
    lines.append("total\t%d" % split.metadata["total_size"])
    lines.append("end")

G = 10**9
split_case("docstring", 10 * G, [("t%d" % i, i, s * G, s * G, "meta")
                                 for i, s in enumerate([6, 6, 2, 6, 2, 2])])
split_case("oversize_first_of_shared", 100, [("a", 1, 50, 50, "cpu"), ("big", 2, 150, 150, "cpu"),
                                             ("b", 3, 60, 60, "cpu"), ("big_view", 2, 150, 10, "cpu"),
                                             ("c", 4, 40, 40, "cpu"), ("a_view", 1, 50, 5, "cpu")])
split_case("empties_follow_the_first", 5, [("e1", 1, 0, 0, "cpu"), ("x", 2, 10, 10, "cpu"),
                                          ("e2", 3, 0, 0, "cpu"), ("y", 4, 3, 3, "cpu"),
                                          ("z", 5, 3, 3, "cpu"), ("e3", 6, 0, 0, "cpu")])
split_case("one_shard", 1000, [("a", 1, 10, 10, "cpu"), ("b", 2, 20, 20, "cpu")])
split_case("max_zero", 0, [("a", 1, 10, 10, "cpu"), ("e", 2, 0, 0, "cpu"), ("b", 3, 20, 20, "cpu")])
split_case("exact_fit", 30, [("a", 1, 10, 10, "cpu"), ("b", 2, 20, 20, "cpu"), ("c", 3, 30, 30, "cpu"),
                             ("d", 4, 31, 31, "cpu"), ("e", 5, 1, 1, "cpu")])
split_case("past_4g", 5 * G, [("w%d" % i, i, s, s, "meta")
                              for i, s in enumerate([3 * G, 2 * G, 1, 6 * G, 4 * G + 7, 999_999_999])])
for c in range(60):
    n = rng.randint(1, 25)
    specs, groups = [], []
    for i in range(n):
        if groups and rng.random() < 0.25:
            g, nbytes = rng.choice(groups)
        else:
            g, nbytes = len(groups) + 1, rng.choice([0, 1, 7, rng.randint(0, 120)])
            groups.append((g, nbytes))
        specs.append(("p%d.w%d" % (c, i), g, nbytes, rng.randint(0, nbytes), "cpu"))
    split_case("random%d" % c, rng.choice([0, 1, 50, 100, 150, rng.randint(0, 300)]), specs)

# 3. json.dumps(index, indent=2, sort_keys=True) + "\n" for tricky names, given unsorted.
def dumps_case(name, entries, total_size, total_parameters):
    metadata = {"total_size": total_size}
    if total_parameters is not None:
        metadata = {"total_parameters": total_parameters, **metadata}
    text = json.dumps({"metadata": metadata, "weight_map": dict(entries)}, indent=2, sort_keys=True) + "\n"
    lines.append("dumps\t%s\t%d\t%s" % (name, total_size, "-" if total_parameters is None else total_parameters))
    for k, v in entries:
        lines.append("entry\t%s\t%s" % (h(k), h(v)))
    lines.append("bytes\t%s" % h(text))
    lines.append("end")

tricky = ['a"b', "back\\slash", "\x01ctl", "del\x7f", "\u00e9t\u00e9", "\u65e5\u672c", "\U0001F600",
          "tab\there", "nl\nx", "\b\f\r", "Z", "a", "a.b", "a.B", "", "\uffff", "\U00010000", "~", " ",
          "/", "<>&'"]
files = ["model-%05d-of-00003.safetensors" % (i % 3 + 1) for i in range(len(tricky))]
entries = list(zip(tricky, files))
rng.shuffle(entries)
dumps_case("tricky", entries, 123456789012, 42)
dumps_case("no_parameters", [("b", "model-00002-of-00002.safetensors"), ("a", "model-00001-of-00002.safetensors")],
           7, None)
dumps_case("empty", [], 0, 0)
dumps_case("big", [("w%d" % i, "model-%05d-of-00009.safetensors" % (i % 9 + 1)) for i in range(300)],
           2**64 - 1, 2**63)

# 4. save_pretrained of a tiny tied Llama, and huggingface_hub's save_torch_state_dict.
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_utils import remove_tied_weights_from_state_dict
cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg)
for name, max_size in [("sp_3KB", "3KB"), ("sp_int", 2500), ("sp_one", "50GB")]:
    d = os.path.join(out_dir, name)
    model.save_pretrained(d, max_shard_size=max_size)
    sd = remove_tied_weights_from_state_dict(model.state_dict(), model)
    lines.append("pretrained\t%s\t%s\t%d" % (name, h(str(max_size)), model.num_parameters()))
    for tname, t in sd.items():
        lines.append("item\t%s\t%d\t%d\t%d" % (h(tname), t.untyped_storage().data_ptr(),
                                                t.untyped_storage().nbytes(), t.numel()))
    lines.append("listing\t%s" % ",".join(h(f) for f in sorted(os.listdir(d))))
    lines.append("end")
sd = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
for name, safe in [("hub_st", True), ("hub_bin", False)]:
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    save_torch_state_dict(sd, d, max_shard_size=3000, safe_serialization=safe)
    lines.append("hub\t%s\t%d" % (name, int(safe)))
    lines.append("listing\t%s" % ",".join(h(f) for f in sorted(os.listdir(d))))
    lines.append("end")

with open(os.path.join(out_dir, "cases.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
)PY";

using test_support::read_file;

// ---------------------------------------------------------------------------------------
// Helpers.

Result<Index> parse(const std::string& text, const std::string& file = "idx.json") {
  return parse_index(text.data(), text.size(), file);
}

// `text` is refused with `code`, in one line that starts with the file and holds `part`.
void expect_refused(const std::string& text, const std::string& part, Code code = Code::kCorrupt) {
  SCOPED_TRACE(text.substr(0, 200));
  const Result<Index> r = parse(text);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_EQ(r.status().message().rfind("idx.json: ", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
}

std::optional<ShardKind> probe(const std::string& head) {
  return probe_index_head(reinterpret_cast<const uint8_t*>(head.data()), head.size());
}

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (;;) {
    const size_t end = s.find(sep, begin);
    out.push_back(s.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

std::string u64le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

const char kTransformersIndex[] =
    "{\n"
    "  \"metadata\": {\n"
    "    \"total_parameters\": 5712,\n"
    "    \"total_size\": 22848\n"
    "  },\n"
    "  \"weight_map\": {\n"
    "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
    "    \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",\n"
    "    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"\n"
    "  }\n"
    "}\n";

// ---------------------------------------------------------------------------------------
// Names.

TEST(HfNames, FileNames) {
  EXPECT_STREQ(single_file_name(ShardKind::kSafetensors), "model.safetensors");
  EXPECT_STREQ(single_file_name(ShardKind::kBin), "pytorch_model.bin");
  EXPECT_STREQ(index_file_name(ShardKind::kSafetensors), "model.safetensors.index.json");
  EXPECT_STREQ(index_file_name(ShardKind::kBin), "pytorch_model.bin.index.json");
  EXPECT_EQ(shard_file_name(ShardKind::kSafetensors, 0, 4), "model-00001-of-00004.safetensors");
  EXPECT_EQ(shard_file_name(ShardKind::kBin, 3, 4), "pytorch_model-00004-of-00004.bin");
}

TEST(HfNames, ShardNumbersPadToFiveDigitsAndGrowPastThem) {
  EXPECT_EQ(shard_file_name(ShardKind::kSafetensors, 99998, 100000),
            "model-99999-of-100000.safetensors");  // Python's {:05d}
  EXPECT_EQ(shard_file_name(ShardKind::kBin, 123455, 123456), "pytorch_model-123456-of-123456.bin");
}

// ---------------------------------------------------------------------------------------
// parse_index: what it reads.

TEST(HfParseIndex, ReadsTransformersIndex) {
  const Result<Index> r = parse(kTransformersIndex);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::vector<std::pair<std::string, std::string>> map = {
      {"lm_head.weight", "model-00002-of-00002.safetensors"},
      {"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
      {"model.norm.weight", "model-00002-of-00002.safetensors"}};
  EXPECT_EQ(r->weight_map, map);
  EXPECT_EQ(r->shards, (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(r->metadata, (std::vector<std::pair<std::string, std::string>>{
                             {"total_parameters", "5712"}, {"total_size", "22848"}}));
  ASSERT_TRUE(r->total_size.has_value());
  EXPECT_EQ(*r->total_size, 22848u);
}

TEST(HfParseIndex, KeepsFileOrderAndSortsShardsByCodePoint) {
  const Result<Index> r = parse(
      R"({"weight_map": {"z": "b.bin", "a": "\u00e9.bin", "m": "B.bin", "k": "b.bin"}})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->weight_map[0].first, "z");
  EXPECT_EQ(r->weight_map[1].second, "\xc3\xa9.bin");
  EXPECT_EQ(r->shards, (std::vector<std::string>{"B.bin", "b.bin", "\xc3\xa9.bin"}));
  EXPECT_TRUE(r->metadata.empty());  // no "metadata": huggingface_hub's loader takes that
  EXPECT_FALSE(r->total_size.has_value());
}

TEST(HfParseIndex, MetadataEntriesAsText) {
  const Result<Index> r = parse(
      R"({"metadata": {"s": "pt", "u": 18446744073709551615, "n": -3, "huge": 123456789012345678901234567890,
          "f": 1.50, "e": 2E3, "t": true, "z": null, "o": {"k": [1, "x\"y", {}], "j": []}, "total_size": -1},
          "weight_map": {"a": "model.safetensors"}})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::vector<std::pair<std::string, std::string>> meta = {
      {"s", "pt"},   {"u", "18446744073709551615"}, {"n", "-3"},
      {"huge", "123456789012345678901234567890"},    {"f", "1.50"},
      {"e", "2E3"},  {"t", "true"},                  {"z", "null"},
      {"o", R"({"k":[1,"x\"y",{}],"j":[]})"},        {"total_size", "-1"}};
  EXPECT_EQ(r->metadata, meta);
  EXPECT_FALSE(r->total_size.has_value());  // -1 is no size
}

TEST(HfParseIndex, AcceptsRelativeShardNamesAndIgnoresOtherKeys) {
  const Result<Index> r = parse(
      R"( {"format": ["x", {"weight_map": 5}], "weight_map": {"a": "sub/dir/m.safetensors", "b": "...x",
           "c": "a..b", "d": "./m.bin", "": "xy.bin", "e": "a/.../b"}, "extra": null} )");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->weight_map.size(), 6u);
  EXPECT_EQ(r->weight_map[4].first, "");
}

// ---------------------------------------------------------------------------------------
// parse_index: every refusal.

TEST(HfParseIndex, RefusesTextOver64MiB) {
  std::string big = R"({"weight_map": {"a": "m.bin"}, "pad": ")";
  big += std::string(kMaxIndexBytes - big.size() - 2, 'x') + "\"}";
  ASSERT_EQ(big.size(), kMaxIndexBytes);
  EXPECT_TRUE(parse(big).ok());
  big.insert(big.size() - 1, " ");
  expect_refused(big, "over the 64 MiB", Code::kLimit);
}

TEST(HfParseIndex, RefusesWhatIsNotJson) {
  expect_refused("", "not a JSON object (it is blank)");
  expect_refused(" \n\t", "not a JSON object (it is blank)");
  expect_refused(R"({"weight_map": {"a": "m.bin"})", "is not valid JSON");
  expect_refused(R"({"weight_map": {"a": "m.bin"}} x)", "is not valid JSON");
  expect_refused(R"({"weight_map": {"a": "m.bin",}})", "is not valid JSON");
  expect_refused(R"({"weight_map": {'a': "m.bin"}})", "is not valid JSON");
  expect_refused(R"({"weight_map": {"a": "m.bin"}, "x": NaN})", "is not valid JSON");
  expect_refused("{\"weight_map\": {\"a\": \"m\xff.bin\"}}", "is not valid JSON");  // not UTF-8
  expect_refused(R"({"weight_map": {"a": "\ud800.bin"}})", "is not valid JSON");  // lone surrogate
  expect_refused("{\"weight_map\": {\"a\": \"m\n.bin\"}}", "is not valid JSON");   // raw control
  expect_refused(std::string("{\"weight_map\": {\"a\": \"m.bin\"}}\0", 31), "is not valid JSON");
}

TEST(HfParseIndex, RefusesWhatIsNotAnObject) {
  expect_refused(R"([{"weight_map": {"a": "m.bin"}}])", "is not a JSON object");
  expect_refused(R"("weight_map")", "is not a JSON object");
  expect_refused("5", "is not a JSON object");
  expect_refused("null", "is not a JSON object");
}

TEST(HfParseIndex, RefusesByteOrderMark) {
  expect_refused(std::string("\xef\xbb\xbf") + kTransformersIndex, "byte-order mark");
}

TEST(HfParseIndex, RefusesDuplicateKeysAnywhere) {
  expect_refused(R"({"weight_map": {"a": "m.bin"}, "weight_map": {"b": "m.bin"}})",
                 "key 'weight_map' appears twice in the index object");
  expect_refused(R"({"weight_map": {"a": "m.bin", "b": "m.bin", "a": "n.bin"}})",
                 "key 'a' appears twice in weight_map");
  expect_refused(R"({"weight_map": {"a": "m.bin", "\u0061": "m.bin"}})",
                 "key 'a' appears twice in weight_map");  // equal once decoded
  expect_refused(R"({"metadata": {"total_size": 1, "total_size": 2}, "weight_map": {"a": "m.bin"}})",
                 "key 'total_size' appears twice in metadata");
  expect_refused(R"({"metadata": {"o": {"k": 1, "k": 2}}, "weight_map": {"a": "m.bin"}})",
                 "key 'k' appears twice in the object under 'o'");
  expect_refused(R"({"x": [{"k": 1, "k": 2}], "weight_map": {"a": "m.bin"}})",
                 "key 'k' appears twice in an object in an array");
  expect_refused(R"({"metadata": {}, "metadata": {}, "weight_map": {"a": "m.bin"}})",
                 "key 'metadata' appears twice");
}

TEST(HfParseIndex, RefusesMissingEmptyOrWrongWeightMap) {
  expect_refused(R"({})", "has no weight_map");
  expect_refused(R"({"metadata": {"total_size": 1}})", "has no weight_map");
  expect_refused(R"({"x": {"weight_map": {"a": "m.bin"}}})", "has no weight_map");  // not top-level
  expect_refused(R"({"weight_map": {}})", "weight_map is empty");
  expect_refused(R"({"weight_map": []})", "weight_map is an array, not an object");
  expect_refused(R"({"weight_map": 5})", "weight_map is 5, not an object");
  expect_refused(R"({"weight_map": null})", "weight_map is null, not an object");
  expect_refused(R"({"weight_map": "m.bin"})", "weight_map is the string 'm.bin', not an object");
}

TEST(HfParseIndex, RefusesValuesThatAreNotStrings) {
  const Result<Index> r = parse(R"({"weight_map": {"a.b": 5}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "idx.json: weight_map['a.b'] is 5, not a shard file name");
  expect_refused(R"({"weight_map": {"a": "m.bin", "b": null}})", "weight_map['b'] is null, not a shard");
  expect_refused(R"({"weight_map": {"a": true}})", "weight_map['a'] is true, not a shard");
  expect_refused(R"({"weight_map": {"a": 1.5}})", "weight_map['a'] is 1.5, not a shard");
  expect_refused(R"({"weight_map": {"a": ["m.bin"]}})", "weight_map['a'] is an array, not a shard");
  expect_refused(R"({"weight_map": {"a": {"f": "m.bin"}}})", "weight_map['a'] is an object, not a");
  expect_refused(R"({"weight_map": {"a\nb": 1}})", "weight_map['a\\x0ab'] is 1");  // one line
}

TEST(HfParseIndex, RefusesBadShardFileNames) {
  const std::pair<const char*, const char*> cases[] = {
      {R"("")", "names shard file '', which is empty"},
      {R"("/etc/m.bin")", "'/etc/m.bin', which is absolute"},
      {R"("//server/share/m.bin")", "which is absolute"},
      {R"("..")", "which has a '..' component"},
      {R"("../m.bin")", "'../m.bin', which has a '..' component"},
      {R"("a/../../m.bin")", "which has a '..' component"},
      {R"("a/..")", "which has a '..' component"},
      {R"("..\\m.bin")", "'..\\\\m.bin', which holds a backslash"},
      {R"("a\\b.bin")", "which holds a backslash"},
      {R"("m\u0000.bin")", "'m\\x00.bin', which holds a NUL byte"},
      {R"("C:m.bin")", "'C:m.bin', which starts with a drive"},
      {R"("c:/m.bin")", "which starts with a drive"},
      {R"("\u00e9:m.bin")", "which starts with a drive"},
  };
  for (const auto& [value, part] : cases) {
    const std::string text = std::string(R"({"weight_map": {"ok": "m.bin", "t.w": )") + value + "}}";
    expect_refused(text, "weight_map['t.w'] names shard file ");
    expect_refused(text, part);
  }
}

TEST(HfParseIndex, RefusesMetadataThatIsNotAnObject) {
  expect_refused(R"({"metadata": null, "weight_map": {"a": "m.bin"}})", "metadata is null, not an object");
  expect_refused(R"({"metadata": [], "weight_map": {"a": "m.bin"}})", "metadata is an array, not an object");
  expect_refused(R"({"metadata": "x", "weight_map": {"a": "m.bin"}})", "metadata is the string 'x'");
}

TEST(HfParseIndex, RefusesDeepNesting) {
  const auto nested = [](size_t depth) {  // depth levels, the root included
    return R"({"weight_map": {"a": "m.bin"}, "x": )" + std::string(depth - 1, '[') +
           std::string(depth - 1, ']') + "}";
  };
  EXPECT_TRUE(parse(nested(kMaxIndexDepth)).ok());
  expect_refused(nested(kMaxIndexDepth + 1), "nested deeper than 128 levels", Code::kLimit);
  expect_refused(nested(1'000'000), "nested deeper than 128 levels", Code::kLimit);
}

TEST(HfParseIndex, CheckShardKindRefusesTheOtherExtension) {
  const Result<Index> r = parse(R"({"weight_map": {"a": "m.safetensors", "b": "p.bin", "c": "q.SAFETENSORS"}})");
  ASSERT_TRUE(r.ok());
  const Status st = check_shard_kind(*r, ShardKind::kSafetensors, "idx.json");
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_EQ(st.message(),
            "idx.json: weight_map['b'] names shard file 'p.bin', which does not end in "
            ".safetensors as the index's name does");
  EXPECT_FALSE(check_shard_kind(*r, ShardKind::kBin, "idx.json").ok());
  const Result<Index> good = parse(kTransformersIndex);
  EXPECT_TRUE(check_shard_kind(*good, ShardKind::kSafetensors, "idx.json").ok());
  EXPECT_FALSE(check_shard_kind(*good, ShardKind::kBin, "idx.json").ok());
}

// ---------------------------------------------------------------------------------------
// probe_index_head.

TEST(HfProbe, IndexHeads) {
  EXPECT_EQ(probe(kTransformersIndex), ShardKind::kSafetensors);
  EXPECT_EQ(probe(R"({"weight_map":{"a":"pytorch_model-00001-of-00002.bin"}})"), ShardKind::kBin);
  EXPECT_EQ(probe(" \r\n\t{ \"metadata\" : {\"total_size\": 1e3, \"k\": [1, {\"a\": \"}\"}], \"b\": "
                  "true, \"c\": null}, \"weight_map\" : { \"x\" : \"m.safetensors\" , \"y\": 5"),
            ShardKind::kSafetensors);  // the head may stop after the first value
  EXPECT_EQ(probe(R"({"weight\u005fmap": {"\"": "m.\u0062in"}})"), ShardKind::kBin);  // escapes
  EXPECT_EQ(probe(R"({"x": "\ud83d\ude00", "weight_map": {"a": "s/m.safetensors"}})"),
            ShardKind::kSafetensors);
}

TEST(HfProbe, EveryPrefixIsUndecidedOrRight) {
  const std::string text = kTransformersIndex;
  const size_t decided_at = text.find(".safetensors\"") + 13;  // the closing quote read
  for (size_t n = 0; n <= text.size(); ++n) {
    const auto k = probe(text.substr(0, n));
    if (n < decided_at) {
      EXPECT_FALSE(k.has_value()) << n;
    } else {
      EXPECT_EQ(k, ShardKind::kSafetensors) << n;
    }
  }
}

TEST(HfProbe, ObjectsThatAreNotIndexes) {
  const char* cases[] = {
      "{}",
      R"({"metadata": {"total_size": 1}})",
      R"({"weight_map": {}})",
      R"({"weight_map": []})",
      R"({"weight_map": "m.safetensors"})",
      R"({"weight_map": {"a": 5, "b": "m.safetensors"}})",
      R"({"weight_map": {"a": "m.json"}})",
      R"({"weight_map": {"a": "m.SAFETENSORS"}})",
      R"({"weight_map": {"a": "m.safetensors.tmp"}})",
      R"({"x": {"weight_map": {"a": "m.bin"}}})",
      R"({"a": 1 "weight_map": {"a": "m.bin"}})",
      R"({"a": }, "weight_map": {"a": "m.bin"}})",
      R"({"a": [}, "weight_map": {"a": "m.bin"}})",
      R"({"a": "\x", "weight_map": {"a": "m.bin"}})",
      R"({"a": "\udc00", "weight_map": {"a": "m.bin"}})",
      R"([{"weight_map": {"a": "m.bin"}}])",
      R"("weight_map")",
      "\xef\xbb\xbf{\"weight_map\": {\"a\": \"m.bin\"}}",  // parse_index refuses the BOM too
      "{\"weight_map\": {\"a\": \"m\x01.bin\"}}",
      "{\"weight_map\": {\"a\n\": \"m.bin\"}}",
  };
  for (const char* c : cases) EXPECT_FALSE(probe(c).has_value()) << c;
  EXPECT_FALSE(probe_index_head(nullptr, 0).has_value());
  EXPECT_FALSE(probe_index_head(nullptr, 10).has_value());
}

TEST(HfProbe, SafetensorsFileHeadsAreNotIndexes) {
  // A safetensors file whose header is itself an index-looking object, with lengths whose
  // low byte is a JSON blank or '{' (the only ones that get past the first byte).
  const std::string header = R"({"weight_map":{"a":"m.safetensors"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  for (const uint64_t low : {uint64_t{' '}, uint64_t{'\t'}, uint64_t{'\n'}, uint64_t{'\r'}, uint64_t{'{'}}) {
    for (const uint64_t len : {low, low + 0x100, low + 0x2000, low + 0x7b7b00, low + 0x7b7b7b7b00}) {
      std::string file = u64le(len) + header;
      file += std::string(len > header.size() ? std::min<uint64_t>(len - header.size(), 4096) : 0, ' ');
      file += std::string(4, '\0');
      EXPECT_FALSE(probe(file).has_value()) << len;
    }
  }
  EXPECT_FALSE(probe(u64le(header.size()) + header).has_value());
}

TEST(HfProbe, ZipAndGarbageHeadsAreNotIndexes) {
  EXPECT_FALSE(probe(std::string("PK\x03\x04\x14\x00\x00\x00\x08\x00", 10) + "archive/data.pkl").has_value());
  EXPECT_FALSE(probe(std::string("PK\x05\x06", 4) + std::string(18, '\0')).has_value());
  EXPECT_FALSE(probe("\x80\x02}q\x00(X\x0a\x00\x00\x00weight_map").has_value());  // a pickle
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string g(rng() % 64, '\0');
    for (char& c : g) c = static_cast<char>(rng());
    if (i % 2) g = "{\"" + g;
    EXPECT_FALSE(probe(g).has_value()) << i;
  }
}

TEST(HfProbe, AgreesWithParseIndexOnMutations) {
  // Whatever parse_index accepts, the probe (given the whole text) decides by its first shard.
  const std::string seed = std::string(kTransformersIndex).insert(
      std::string(kTransformersIndex).find("\"total_size\""),
      "\"x\": [1.5e-3, {\"y\": null, \"z\": \"}]\\\"\"}, false],\n    ");
  std::mt19937 rng(11);
  const std::string alphabet = "{}[],:\" \\ubn0-e.\n";
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string t = seed;
    for (int m = 0, k = 1 + static_cast<int>(rng() % 3); m < k; ++m) {
      const size_t at = rng() % t.size();
      switch (rng() % 3) {
        case 0: t[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: t.erase(at, 1 + rng() % 4); break;
        default: t.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
      if (t.empty()) t = "{";
    }
    const Result<Index> r = parse(t);
    if (!r.ok()) continue;
    ++accepted;
    const std::string& first = r->weight_map[0].second;
    const auto want = first.size() >= 12 && first.compare(first.size() - 12, 12, ".safetensors") == 0
                          ? std::optional<ShardKind>(ShardKind::kSafetensors)
                      : first.size() >= 4 && first.compare(first.size() - 4, 4, ".bin") == 0
                          ? std::optional<ShardKind>(ShardKind::kBin)
                          : std::nullopt;
    EXPECT_EQ(probe(t), want) << t;
  }
  EXPECT_GT(accepted, 500);
}

// ---------------------------------------------------------------------------------------
// write_index and entry_file.

TEST(HfWriteIndex, TransformersLayout) {
  const std::vector<std::pair<std::string, std::string>> map = {
      {"model.norm.weight", "model-00002-of-00002.safetensors"},
      {"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
      {"lm_head.weight", "model-00002-of-00002.safetensors"}};
  IndexMetadata meta;
  meta.total_size = 22848;
  meta.total_parameters = 5712;
  EXPECT_EQ(write_index(map, meta), kTransformersIndex);
  meta.total_parameters.reset();
  EXPECT_EQ(write_index({{"a", "b"}}, meta),
            "{\n  \"metadata\": {\n    \"total_size\": 22848\n  },\n  \"weight_map\": {\n"
            "    \"a\": \"b\"\n  }\n}\n");
}

TEST(HfWriteIndex, EmptyRepeatedAndInvalidNames) {
  EXPECT_EQ(write_index({}, IndexMetadata{}),
            "{\n  \"metadata\": {\n    \"total_size\": 0\n  },\n  \"weight_map\": {}\n}\n");
  const std::string out =
      write_index({{"a", "1"}, {"b", "x"}, {"a", "2"}, {"a", "3"}, {"\xff\xc3(", "y"}}, IndexMetadata{});
  EXPECT_NE(out.find("\"a\": \"3\",\n    \"b\": \"x\",\n    \"\\ufffd\\ufffd(\": \"y\"\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("\"1\""), std::string::npos);
}

TEST(HfWriteIndex, ReadsBackWithParseIndex) {
  std::vector<std::pair<std::string, std::string>> map;
  for (int i = 0; i < 50; ++i)
    map.emplace_back("layer." + std::to_string(i) + (i % 7 ? "" : "\xe2\x82\xac\"\\\t") + ".w",
                     shard_file_name(ShardKind::kBin, static_cast<size_t>(i % 4), 4));
  const std::string text = write_index(map, IndexMetadata{77, 88});
  const Result<Index> r = parse(text);
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto sorted = map;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(r->weight_map, sorted);
  EXPECT_EQ(r->shards.size(), 4u);
  EXPECT_EQ(r->total_size, 77u);
  EXPECT_EQ(probe(text), ShardKind::kBin);
}

TEST(HfEntryFile, IndexThenSingleFile) {
  using V = std::vector<std::string>;
  const V sharded = {"config.json", "model-00001-of-00002.safetensors",
                     "model-00002-of-00002.safetensors", "model.safetensors.index.json"};
  EXPECT_EQ(entry_file(ShardKind::kSafetensors, sharded), "model.safetensors.index.json");
  EXPECT_EQ(entry_file(ShardKind::kBin, sharded), std::nullopt);
  EXPECT_EQ(entry_file(ShardKind::kSafetensors, V{"model.safetensors", "config.json"}), "model.safetensors");
  EXPECT_EQ(entry_file(ShardKind::kSafetensors, V{"model.safetensors", "model.safetensors.index.json"}),
            "model.safetensors.index.json");
  EXPECT_EQ(entry_file(ShardKind::kBin, V{"pytorch_model.bin"}), "pytorch_model.bin");
  EXPECT_EQ(entry_file(ShardKind::kBin, V{"pytorch_model.bin.index.json", "pytorch_model.bin"}),
            "pytorch_model.bin.index.json");
  EXPECT_EQ(entry_file(ShardKind::kSafetensors,
                       V{"model.fp16.safetensors", "model.fp16.safetensors.index.json",
                         "adapter_model.safetensors", "Model.safetensors"}),
            std::nullopt);
  EXPECT_EQ(entry_file(ShardKind::kSafetensors, V{}), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// parse_size and plan_shards, by hand.

TEST(HfParseSize, Examples) {
  const std::pair<const char*, uint64_t> ok[] = {
      {"5GB", 5'000'000'000},  {"2.5MB", 2'500'000}, {"1000", 1000},   {"10KB", 10'000},
      {"50GB", kTransformersDefaultMaxShardSize},     {" 1.5 tb ", 1'500'000'000'000},
      {"0.1KB", 100},          {"-0.0KB", 0},        {"1_000kB", 1'000'000}, {"1e-400KB", 0},
      {"18446744073709551615", UINT64_MAX},          {"18446744.07370954TB", 18446744073709539328u}};
  for (const auto& [text, want] : ok) {
    const Result<uint64_t> r = parse_size(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(*r, want) << text;
  }
  EXPECT_EQ(*parse_size("5GB"), kHubDefaultMaxShardSize);
}

TEST(HfParseSize, RefusalsNameTheText) {
  const std::pair<const char*, const char*> bad[] = {
      {"5GiB", "size '5GiB': unit 'IB' is not one of TB, GB, MB, KB"},
      {"5.", "size '5.': unit '5.' is not one of"},
      {"", "size '': unit '' is not one of"},
      {" 1000 ", "unit '00' is not one of"},
      {"GB", "size 'GB': '' is not a number"},
      {"1.2.3MB", "'1.2.3' is not a number"},
      {"1__0KB", "'1__0' is not a number"},
      {"infGB", "infinite"},
      {"1e400KB", "infinite"},
      {"nanKB", "nan"},
      {"-1KB", "negative"},
      {"18446744073709551616", "over 2^64 - 1"},
      {"1e8TB", "over 2^64 - 1"},
      {"5\xd9\xa5GB", "non-ASCII"},
      {"5\nGB\x01", "size '5\\x0aGB\\x01': unit 'B\\x01' is not one of"},
  };
  for (const auto& [text, part] : bad) {
    const Result<uint64_t> r = parse_size(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  }
}

std::vector<ShardItem> items_of(const std::vector<uint64_t>& sizes) {
  std::vector<ShardItem> items;
  for (size_t i = 0; i < sizes.size(); ++i)
    items.push_back({"t" + std::to_string(i), i + 1, sizes[i], sizes[i] / 2});
  return items;
}

TEST(HfPlanShards, DocstringExample) {
  // [6, 6, 2, 6, 2, 2] GB at 10GB -> [6], [6+2], [6+2+2].
  const uint64_t G = 1'000'000'000;
  const std::vector<ShardItem> items = items_of({6 * G, 6 * G, 2 * G, 6 * G, 2 * G, 2 * G});
  const ShardPlan p = plan_shards(items, 10 * G);
  EXPECT_EQ(p.shards, (std::vector<std::vector<size_t>>{{0}, {1, 2}, {3, 4, 5}}));
  EXPECT_EQ(p.meta.total_size, 24 * G);
  EXPECT_EQ(p.meta.total_parameters, 12 * G);
  const auto map = plan_weight_map(items, p, ShardKind::kSafetensors);
  ASSERT_EQ(map.size(), 6u);
  EXPECT_EQ(map[2], (std::pair<std::string, std::string>{"t2", "model-00002-of-00003.safetensors"}));
}

TEST(HfPlanShards, OversizeSharedAndZeroByteStorages) {
  std::vector<ShardItem> items = {
      {"a", 1, 50, 50}, {"big", 2, 150, 150}, {"e1", 3, 0, 0}, {"b", 4, 60, 60},
      {"big.view", 2, 150, 10}, {"e2", 5, 0, 0}, {"a.view", 1, 50, 5}};
  const ShardPlan p = plan_shards(items, 100);
  // big's own shard comes first; e2 follows e1 (both data_ptr 0), the views their storage.
  EXPECT_EQ(p.shards, (std::vector<std::vector<size_t>>{{1, 4}, {0, 2, 6, 5}, {3}}));
  EXPECT_EQ(p.meta.total_size, 260u);
  EXPECT_EQ(p.meta.total_parameters, 275u);
}

TEST(HfPlanShards, EdgeCases) {
  EXPECT_TRUE(plan_shards({}, 100).shards.empty());
  EXPECT_EQ(plan_shards({}, 100).meta.total_size, 0u);
  const ShardPlan one = plan_shards(items_of({10, 20}), 1000);
  EXPECT_EQ(one.shards, (std::vector<std::vector<size_t>>{{0, 1}}));
  EXPECT_EQ(plan_weight_map(items_of({10, 20}), one, ShardKind::kBin)[1].second, "pytorch_model.bin");
  EXPECT_EQ(plan_shards(items_of({10, 0, 20}), 0).shards,
            (std::vector<std::vector<size_t>>{{0}, {2}, {1}}));
  EXPECT_EQ(plan_shards(items_of({UINT64_MAX - 1, 1, UINT64_MAX}), UINT64_MAX).shards,
            (std::vector<std::vector<size_t>>{{0, 1}, {2}}));
}

// ---------------------------------------------------------------------------------------
// Against the real huggingface_hub and transformers.

struct Cases {
  std::string dir;   // empty: the interpreter lacks the packages
  std::string why;   // then: what it said
  std::vector<std::vector<std::string>> lines;  // cases.txt, split on tabs
};

// Generated once per version of the script and interpreter (ctest runs each test in its own
// process, so the cache lives on disk; rename() makes concurrent generation safe).
const Cases& cases() {
  static const Cases c = [] {
    Cases c;
    const test_support::RunResult have = test_support::run(
        {kPython, "-c", "import torch, transformers, huggingface_hub"}, 120);
    if (have.exit_code != 0) {
      c.why = std::string(kPython) + " cannot import torch, transformers and huggingface_hub: " +
              have.err.substr(have.err.size() > 300 ? have.err.size() - 300 : 0);
      return c;
    }
    const std::string d = "/tmp/ckptio_hf_index_cases_" + std::to_string(getuid()) + "_" +
                          std::to_string(std::hash<std::string>{}(std::string(kCasesScript) + kPython));
    if (access((d + "/cases.txt").c_str(), R_OK) != 0) {
      const std::string tmp = d + ".tmp" + std::to_string(getpid());
      test_support::run({"/bin/rm", "-rf", tmp});
      test_support::run({"/bin/mkdir", "-p", tmp});
      test_support::write_file(tmp + "/cases.py", kCasesScript);
      const test_support::RunResult r = test_support::run({kPython, tmp + "/cases.py", tmp}, 600);
      if (r.exit_code != 0) ADD_FAILURE() << "case generation failed: " << r.describe();
      if (r.exit_code != 0 || rename(tmp.c_str(), d.c_str()) != 0) test_support::run({"/bin/rm", "-rf", tmp});
    }
    c.dir = d;
    std::istringstream in(read_file(d + "/cases.txt"));
    for (std::string line; std::getline(in, line);) c.lines.push_back(split(line, '\t'));
    return c;
  }();
  return c;
}

#define REQUIRE_CASES()                                   \
  do {                                                    \
    if (cases().dir.empty()) GTEST_SKIP() << cases().why; \
    ASSERT_FALSE(cases().lines.empty());                  \
  } while (0)

TEST(HfPython, VersionsAreTheReference) {
  REQUIRE_CASES();
  const auto& v = cases().lines.at(0);
  ASSERT_EQ(v.at(0), "versions");
  // The facts the codec states are those of these releases; a newer one must be re-read.
  EXPECT_EQ(v.at(1), "2.4.0") << "huggingface_hub";
  EXPECT_EQ(v.at(2), "5.24.0") << "transformers";
}

TEST(HfPython, ParseSizeMatchesParseSizeToInt) {
  REQUIRE_CASES();
  int compared = 0;
  for (const auto& l : cases().lines) {
    if (l[0] != "size") continue;
    const std::string text = unhex(l.at(1));
    const Result<uint64_t> r = parse_size(text);
    ++compared;
    const bool all_digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    if (all_digits) {  // the int form, which parse_size_to_int itself refuses
      EXPECT_EQ(l[2], "err") << text;
      const size_t digit = text.find_first_not_of('0');
      if (r.ok()) {
        EXPECT_EQ(std::to_string(*r), digit == std::string::npos ? "0" : text.substr(digit)) << text;
      }
      continue;
    }
    if (l[2] == "ok") {
      ASSERT_TRUE(r.ok()) << "'" << text << "': " << r.status().message();
      EXPECT_EQ(std::to_string(*r), l.at(3)) << "'" << text << "'";
    } else {
      EXPECT_FALSE(r.ok()) << "'" << text << "' (" << l[2] << " " << l[3] << ") read as " << *r;
    }
  }
  EXPECT_GT(compared, 600);
}

TEST(HfPython, PlanShardsMatchesSplitTorchStateDictIntoShards) {
  REQUIRE_CASES();
  const auto& L = cases().lines;
  int compared = 0;
  for (size_t i = 0; i < L.size(); ++i) {
    if (L[i][0] != "split") continue;
    const std::string name = L[i].at(1);
    const uint64_t max = std::stoull(L[i].at(2));
    std::vector<ShardItem> items;
    std::vector<std::string> want_shards;  // "file: names"
    uint64_t want_total = 0;
    for (++i; L.at(i)[0] != "end"; ++i) {
      const auto& l = L[i];
      if (l[0] == "item")
        items.push_back({unhex(l.at(1)), std::stoull(l.at(2)), std::stoull(l.at(3)), std::stoull(l.at(4))});
      if (l[0] == "shard") {
        std::string s = unhex(l.at(1)) + ":";
        for (const std::string& n : split(l.at(2), ',')) s += " " + unhex(n);
        want_shards.push_back(s);
      }
      if (l[0] == "total") want_total = std::stoull(l.at(1));
    }
    const ShardPlan p = plan_shards(items, max);
    const auto map = plan_weight_map(items, p, ShardKind::kSafetensors);
    std::vector<std::string> got_shards;
    size_t k = 0;
    for (const auto& shard : p.shards) {
      std::string s = map.at(k).second + ":";
      for (size_t j = 0; j < shard.size(); ++j, ++k) s += " " + map.at(k).first;
      got_shards.push_back(s);
    }
    EXPECT_EQ(got_shards, want_shards) << name;
    EXPECT_EQ(p.meta.total_size, want_total) << name;
    uint64_t numel = 0;
    for (const ShardItem& it : items) numel += it.numel;
    EXPECT_EQ(p.meta.total_parameters, numel) << name;
    ++compared;
  }
  EXPECT_GE(compared, 60);
}

TEST(HfPython, WriteIndexMatchesJsonDumps) {
  REQUIRE_CASES();
  const auto& L = cases().lines;
  int compared = 0;
  for (size_t i = 0; i < L.size(); ++i) {
    if (L[i][0] != "dumps") continue;
    const std::string name = L[i].at(1);
    IndexMetadata meta;
    meta.total_size = std::stoull(L[i].at(2));
    if (L[i].at(3) != "-") meta.total_parameters = std::stoull(L[i].at(3));
    std::vector<std::pair<std::string, std::string>> map;
    std::string want;
    for (++i; L.at(i)[0] != "end"; ++i) {
      if (L[i][0] == "entry") map.emplace_back(unhex(L[i].at(1)), unhex(L[i].at(2)));
      if (L[i][0] == "bytes") want = unhex(L[i].at(1));
    }
    EXPECT_EQ(write_index(map, meta), want) << name;
    std::reverse(map.begin(), map.end());
    EXPECT_EQ(write_index(map, meta), want) << name << " (reversed)";
    if (!map.empty() && name != "tricky") {
      EXPECT_EQ(probe(want), ShardKind::kSafetensors) << name;
    }
    ++compared;
  }
  EXPECT_EQ(compared, 4);
}

// The directory a case names, its listing (from Python) and its lines.
struct DirCase {
  std::string dir;
  std::vector<std::string> listing;
  std::vector<std::vector<std::string>> lines;
};

std::vector<DirCase> dir_cases(const char* tag) {
  std::vector<DirCase> out;
  const auto& L = cases().lines;
  for (size_t i = 0; i < L.size(); ++i) {
    if (L[i][0] != tag) continue;
    DirCase c;
    c.lines.push_back(L[i]);
    c.dir = cases().dir + "/" + L[i].at(1);
    for (++i; L.at(i)[0] != "end"; ++i) {
      if (L[i][0] == "listing")
        for (const std::string& n : split(L[i].at(1), ',')) c.listing.push_back(unhex(n));
      c.lines.push_back(L[i]);
    }
    out.push_back(std::move(c));
  }
  return out;
}

TEST(HfPython, SavePretrainedIndexIsPlannedAndWrittenTheSame) {
  REQUIRE_CASES();
  const std::vector<DirCase> all = dir_cases("pretrained");
  ASSERT_EQ(all.size(), 3u);
  for (const DirCase& c : all) {
    SCOPED_TRACE(c.dir);
    const Result<uint64_t> max = parse_size(unhex(c.lines[0].at(2)));
    ASSERT_TRUE(max.ok()) << max.status().message();
    const uint64_t num_parameters = std::stoull(c.lines[0].at(3));
    std::vector<ShardItem> items;
    for (const auto& l : c.lines)
      if (l[0] == "item")
        items.push_back({unhex(l.at(1)), std::stoull(l.at(2)), std::stoull(l.at(3)), std::stoull(l.at(4))});
    const ShardPlan plan = plan_shards(items, *max);
    EXPECT_EQ(plan.meta.total_parameters, num_parameters);  // no persistent buffers, tie dropped
    const auto entry = entry_file(ShardKind::kSafetensors, c.listing);
    ASSERT_TRUE(entry.has_value());
    if (plan.shards.size() == 1) {  // one shard: model.safetensors and no index
      EXPECT_EQ(*entry, "model.safetensors");
      EXPECT_EQ(std::count(c.listing.begin(), c.listing.end(), "model.safetensors.index.json"), 0);
      continue;
    }
    ASSERT_EQ(*entry, "model.safetensors.index.json");
    const std::string text = read_file(c.dir + "/" + *entry);
    auto map = plan_weight_map(items, plan, ShardKind::kSafetensors);
    EXPECT_EQ(write_index(map, plan.meta), text);  // byte for byte
    std::reverse(map.begin(), map.end());
    EXPECT_EQ(write_index(map, plan.meta), text);
    const Result<Index> idx = parse_index(text.data(), text.size(), *entry);
    ASSERT_TRUE(idx.ok()) << idx.status().message();
    EXPECT_TRUE(check_shard_kind(*idx, ShardKind::kSafetensors, *entry).ok());
    EXPECT_EQ(idx->total_size, plan.meta.total_size);
    std::vector<std::string> shard_files;
    for (const std::string& f : c.listing)
      if (f.size() > 12 && f.compare(f.size() - 12, 12, ".safetensors") == 0) shard_files.push_back(f);
    EXPECT_EQ(idx->shards, shard_files);
    EXPECT_EQ(idx->shards.size(), plan.shards.size());
    EXPECT_EQ(probe(text.substr(0, 200)), ShardKind::kSafetensors);
    const std::string shard = read_file(c.dir + "/" + idx->shards[0]);
    EXPECT_FALSE(probe(shard.substr(0, 4096)).has_value());
  }
}

TEST(HfPython, HubSaveTorchStateDictIndexes) {
  REQUIRE_CASES();
  const std::vector<DirCase> all = dir_cases("hub");
  ASSERT_EQ(all.size(), 2u);
  for (const DirCase& c : all) {
    SCOPED_TRACE(c.dir);
    const ShardKind kind = c.lines[0].at(2) == "1" ? ShardKind::kSafetensors : ShardKind::kBin;
    const auto entry = entry_file(kind, c.listing);
    ASSERT_EQ(entry, std::string(index_file_name(kind)));
    EXPECT_EQ(entry_file(kind == ShardKind::kBin ? ShardKind::kSafetensors : ShardKind::kBin, c.listing),
              std::nullopt);
    const std::string text = read_file(c.dir + "/" + *entry);
    EXPECT_NE(text.back(), '\n');  // json.dump(indent=2), unsorted, no newline
    const Result<Index> idx = parse_index(text.data(), text.size(), *entry);
    ASSERT_TRUE(idx.ok()) << idx.status().message();
    EXPECT_TRUE(check_shard_kind(*idx, kind, *entry).ok());
    EXPECT_EQ(idx->metadata.size(), 1u);
    EXPECT_EQ(probe(text.substr(0, 512)), kind);
    std::vector<std::string> shard_files;
    for (const std::string& f : c.listing)
      if (f != *entry) shard_files.push_back(f);
    EXPECT_EQ(idx->shards, shard_files);
    // Rewritten transformers' way it is the same map, sorted.
    IndexMetadata meta;
    meta.total_size = *idx->total_size;
    const Result<Index> again = parse(write_index(idx->weight_map, meta));
    ASSERT_TRUE(again.ok());
    auto sorted = idx->weight_map;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(again->weight_map, sorted);
    const std::string shard = read_file(c.dir + "/" + idx->shards[0]);
    EXPECT_FALSE(probe(shard.substr(0, 4096)).has_value());  // a safetensors or zip head
  }
}

}  // namespace
}  // namespace ckptio::hf
