// formats/torchscript without LibTorch: the unpickler's torchscript_objects option, class
// source parsing, detection, both views of the peer TorchScript fixtures (tests/data/peer),
// quantized and lite archives, and malformed archives (clean errors, never a crash).
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "formats/pickle/unpickler.h"
#include "formats/torchscript/torchscript.h"
#include "formats/zip/zip_reader.h"
#include "formats/zip/zip_writer.h"
#include "support/files.h"

namespace ckptio {
namespace {

using test_support::read_file;

std::string peer(const std::string& name) {
  return read_file(std::string(CKPTIO_TEST_DATA) + "/peer/" + name);
}

Result<DecodedFile> read(const std::string& bytes, TorchScriptView view = TorchScriptView::kStateDict,
                         const std::string& name = "test.pt") {
  MemorySource src(bytes.data(), bytes.size(), name);
  TorchScriptReadOptions o;
  o.view = view;
  return read_torchscript(src, o);
}

std::vector<std::string> keys(const ValuePtr& dict) {
  std::vector<std::string> out;
  for (const auto& [k, v] : dict->entries) out.push_back(k->s);
  return out;
}

// ---- unpickler option ---------------------------------------------------------------------

TEST(UnpicklerTorchScript, TorchClassesBecomeObjectsOnlyWithTheOption) {
  // GLOBAL '__torch__ Foo', EMPTY_TUPLE, NEWOBJ, {'training': True}, BUILD, STOP
  static const char kP[] = "\x80\x02" "c__torch__\nFoo\n" ")\x81" "}(X\x08\x00\x00\x00" "training"
                           "\x88u" "b.";
  const std::string p(kP, sizeof kP - 1);
  UnpickleOptions o;
  auto refused = unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kForbidden);
  EXPECT_NE(refused.status().message().find("__torch__.Foo"), std::string::npos);

  o.torchscript_objects = true;
  auto u = unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), o);
  ASSERT_TRUE(u.ok()) << u.status().message();
  const ValuePtr& v = u.value().value;
  ASSERT_EQ(v->kind, Kind::kObject);
  EXPECT_EQ(v->s, "__torch__.Foo");
  ASSERT_TRUE(v->state);
  ASSERT_TRUE(v->state->get("training"));
  EXPECT_TRUE(v->state->get("training")->b);
}

TEST(UnpicklerTorchScript, OtherGlobalsStayForbidden) {
  const std::string p = "\x80\x02" "cos\nsystem\n.";
  UnpickleOptions o;
  o.torchscript_objects = true;
  auto u = unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), o);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), Code::kForbidden);
  EXPECT_NE(u.status().message().find("os.system"), std::string::npos);
}

// ---- class source -------------------------------------------------------------------------

TEST(ScriptClass, ParsesParametersBuffersAndMethods) {
  const std::string src =
      "class Other(Module):\n  __parameters__ = [\"x\", ]\n  def forward(self) -> None:\n"
      "    pass\n"
      "class BatchNorm1d(Module):\n"
      "  __parameters__ = [\"weight\", \"bias\", ]\n"
      "  __buffers__ = [\"running_mean\", \"running_var\", \"num_batches_tracked\", ]\n"
      "  weight : Tensor\n"
      "  def forward(self: __torch__.BatchNorm1d,\n    input: Tensor) -> Tensor:\n"
      "    return input\n"
      "  def _check_input_dim(self: __torch__.BatchNorm1d) -> NoneType:\n    return None\n"
      "def helper(x: int) -> int:\n  return x\n";
  ScriptClassInfo c = parse_script_class(src, "BatchNorm1d");
  EXPECT_TRUE(c.found);
  EXPECT_TRUE(c.is_module);
  EXPECT_EQ(c.parameters, (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(c.buffers,
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(c.methods, (std::vector<std::string>{"forward", "_check_input_dim"}));
  EXPECT_FALSE(parse_script_class(src, "Batch").found);
  EXPECT_FALSE(parse_script_class("class Point:\n  x : int\n", "Point").is_module);
}

// ---- detection ----------------------------------------------------------------------------

TEST(TorchScriptProbe, ClaimsTorchScriptAboveTorchZip) {
  for (const char* f : {"tch/foo.pt", "rtorch/linear.pt", "torchsharp/scripted.script.dat",
                        "djl/identity.pt", "android/vit4mnist.ptl", "text/jit_pipeline.pt"}) {
    std::string b = peer(f);
    EXPECT_GT(torchscript_probe(reinterpret_cast<const uint8_t*>(b.data()),
                                std::min<size_t>(b.size(), 4096)),
              60)
        << f;
  }
  for (const char* f : {"burn/checkpoint.pt", "rtorch/state_dict.pth"}) {
    std::string b = peer(f);
    EXPECT_EQ(torchscript_probe(reinterpret_cast<const uint8_t*>(b.data()),
                                std::min<size_t>(b.size(), 4096)),
              0)
        << f;
  }
}

// ---- peer fixtures ------------------------------------------------------------------------

TEST(TorchScriptPeer, StateDictViews) {
  struct Case {
    const char* file;
    std::vector<std::string> keys;
  };
  for (const Case& c : std::vector<Case>{
           {"rtorch/linear.pt", {"weight", "bias"}},
           {"rtorch/linear_2021.pt", {"weight", "bias"}},
           {"tch/foo.pt", {"value"}},
           {"torchsharp/scripted.script.dat", {"weight", "linear.weight", "linear.bias"}},
           {"djl/identity.pt", {}},
           {"text/jit_pipeline.pt", {}},
           {"android/vit4mnist.ptl", {}},  // frozen: weights are constants, not state
       }) {
    auto r = read(peer(c.file), TorchScriptView::kStateDict, c.file);
    ASSERT_TRUE(r.ok()) << c.file << ": " << r.status().message();
    const ValuePtr& root = r.value().tree.root;
    ASSERT_EQ(root->kind, Kind::kDict);
    EXPECT_TRUE(root->ordered);
    EXPECT_EQ(keys(root), c.keys) << c.file;
    EXPECT_EQ(r.value().tree.storages.size(), c.keys.size()) << c.file;
    for (const auto& [k, v] : root->entries) {
      ASSERT_EQ(v->kind, Kind::kTensor);
      EXPECT_EQ(v->tensor.dtype, DType::kFloat32);
      EXPECT_FALSE(v->tensor.is_parameter);
    }
  }
}

TEST(TorchScriptPeer, ModulesViewOfAScriptedModule) {
  auto r = read(peer("torchsharp/scripted.script.dat"), TorchScriptView::kModules);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ValuePtr& root = r.value().tree.root;
  EXPECT_EQ(keys(root),
            (std::vector<std::string>{"module", "constants", "extra_files", "archive"}));
  ValuePtr m = root->get("module");
  EXPECT_EQ(m->get("class")->s, "__torch__.MyModule");
  EXPECT_EQ(keys(m->get("parameters")), (std::vector<std::string>{"weight"}));
  EXPECT_TRUE(m->get("parameters")->get("weight")->tensor.is_parameter);
  ValuePtr lin = m->get("submodules")->get("linear");
  ASSERT_TRUE(lin);
  EXPECT_EQ(keys(lin->get("parameters")), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_TRUE(lin->get("attributes")->get("training"));
  ASSERT_FALSE(m->get("methods")->items.empty());
  EXPECT_EQ(root->get("archive")->get("prefix")->s, "foo");
  EXPECT_FALSE(root->get("archive")->get("lite")->b);
}

TEST(TorchScriptPeer, BufferOfTch) {
  auto r = read(peer("tch/foo.pt"), TorchScriptView::kModules);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ValuePtr m = r.value().tree.root->get("module");
  EXPECT_EQ(keys(m->get("buffers")), (std::vector<std::string>{"value"}));
  EXPECT_TRUE(m->get("parameters")->entries.empty());
}

TEST(TorchScriptPeer, LiteArchiveWithQuantizedPackedParams) {
  auto r = read(peer("android/vit4mnist.ptl"), TorchScriptView::kModules);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ValuePtr& root = r.value().tree.root;
  ValuePtr archive = root->get("archive");
  EXPECT_TRUE(archive->get("lite")->b);
  ASSERT_TRUE(archive->get("bytecode_version"));
  EXPECT_EQ(archive->get("bytecode_version")->i, 7);
  EXPECT_FALSE(root->get("constants")->items.empty());
  // The qint8 weights inside the packed params are readable integer tensors.
  int qtensors = 0, qint8 = 0;
  for_each_tensor(root, [&](const ValuePtr& t, const std::string& path) {
    if (t->tensor.dtype == DType::kQInt8) ++qint8;
  });
  std::vector<ValuePtr> todo{root};
  std::set<const Value*> seen;
  while (!todo.empty()) {
    ValuePtr v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v.get()).second) continue;
    if (v->kind == Kind::kObject && v->s == "torch._utils._rebuild_qtensor") ++qtensors;
    for (auto& c : v->items) todo.push_back(c);
    for (auto& [k, c] : v->entries) todo.push_back(c);
    todo.push_back(v->args);
    todo.push_back(v->state);
  }
  EXPECT_EQ(qtensors, 27);
  EXPECT_EQ(qint8, 27);
  // Every storage the view references is a constants/ record.
  for (const auto& s : r.value().tree.storages) EXPECT_EQ(s.key.rfind("constants/", 0), 0u);
}

// ---- malformed archives -------------------------------------------------------------------

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  StringSink sink;
  ZipWriter zip(sink, "bad");
  for (const auto& [name, data] : records) EXPECT_TRUE(zip.add(name, data.data(), data.size()).ok());
  EXPECT_TRUE(zip.finish().ok());
  return sink.out;
}

TEST(TorchScriptMalformed, MissingConstantsWithCode) {
  std::string z = make_zip({{"data.pkl", "\x80\x02N."},
                            {"code/__torch__.py", "class A(Module):\n  __parameters__ = []\n"},
                            {"version", "3\n"}});
  auto r = read(z);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("bad/constants.pkl"), std::string::npos)
      << r.status().message();
}

TEST(TorchScriptMalformed, RootThatIsNotAModule) {
  std::string z = make_zip({{"data.pkl", "\x80\x02N."},
                            {"constants.pkl", "\x80\x02)."},
                            {"code/__torch__.py", ""},
                            {"version", "3\n"}});
  auto r = read(z);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("not a TorchScript module object"), std::string::npos);
}

TEST(TorchScriptMalformed, MissingStorageRecord) {
  // foo.pt without its data/0 record.
  std::string b = peer("tch/foo.pt");
  MemorySource src(b.data(), b.size(), "foo.pt");
  auto zip = ZipReader::open(src);
  ASSERT_TRUE(zip.ok());
  std::vector<std::pair<std::string, std::string>> records;
  for (const ZipEntry& e : zip.value().entries()) {
    std::string name = e.name.substr(e.name.find('/') + 1);
    if (name == "data/0") continue;
    records.emplace_back(name, zip.value().read(e).value());
  }
  auto r = read(make_zip(records));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("missing record 'bad/data/0'"), std::string::npos)
      << r.status().message();
}

TEST(TorchScriptMalformed, TruncationsNeverCrash) {
  std::string b = peer("torchsharp/scripted.script.dat");
  for (size_t n = 0; n < b.size(); n += 97) {
    for (auto view : {TorchScriptView::kStateDict, TorchScriptView::kModules}) {
      auto r = read(b.substr(0, n), view);
      EXPECT_FALSE(r.ok()) << n;
    }
  }
  // Flipped bytes: any status is fine, a crash is not.
  for (size_t i = 0; i < b.size(); i += 13) {
    std::string c = b;
    c[i] = static_cast<char>(c[i] ^ 0x5a);
    (void)read(c, TorchScriptView::kModules);
  }
}

}  // namespace
}  // namespace ckptio
