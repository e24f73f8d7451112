// formats/dcp (dcp_writer.h): a one-rank DCP checkpoint written by ckptio from a state dict
// that real torch 2.13 saved with torch.save, then read by torch 2.13 itself, at test time:
// torch.distributed.checkpoint.load into a template of the same structure, and
// format_utils.dcp_to_torch_save, each compared with the original value by value. The
// .metadata also reads back through ckptio's own decoder; state dicts DCP cannot express are
// refused naming the entry.
#include "formats/dcp/dcp_writer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/zip/torch_zip.h"
#include "support/files.h"
#include "support/process.h"
#include "support/scratch.h"

namespace ckptio::dcp {
namespace {

const char kPython[] = CKPTIO_TEST_PYTHON;
const char kCheckPy[] = CKPTIO_DCP_CHECK_PY;  // tests/interop/py/dcp_check.py


struct Written {
  std::string dir;
  DcpMetadata metadata;
};

class DcpWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = scratch_ / "ref.pt";
    const test_support::RunResult r = test_support::run({kPython, kCheckPy, "make", ref_}, 300);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    bytes_ = test_support::read_file(ref_);
    src_ = std::make_unique<MemorySource>(bytes_.data(), bytes_.size(), ref_);
    auto f = read_torch_zip(*src_, ZipReadOptions{});
    ASSERT_TRUE(f.ok()) << f.status().message();
    file_ = std::move(f).value();
  }

  StorageWriter storage_bytes() const {
    return [this](uint32_t i, ByteSink& out) {
      const StorageExtent& e = file_.extents.at(i);
      return out.write(bytes_.data() + e.offset, e.length);
    };
  }

  // ckptio's DCP checkpoint of `tree` in a new directory of the scratch.
  Written write(const Tree& tree, const std::string& name) {
    Written w;
    w.dir = scratch_ / name;
    test_support::fresh_dir(w.dir);
    StringSink data;
    auto md = write_dcp_items(data, tree, storage_bytes(), kRankZeroDataFile, w.dir);
    EXPECT_TRUE(md.ok()) << md.status().message();
    if (!md.ok()) return w;
    auto pickled = write_dcp_metadata(md.value());
    EXPECT_TRUE(pickled.ok()) << pickled.status().message();
    if (!pickled.ok()) return w;
    test_support::write_file(w.dir + "/" + kRankZeroDataFile, data.out);
    test_support::write_file(w.dir + "/" + kMetadataFile, pickled.value());
    w.metadata = std::move(md).value();
    return w;
  }

  test_support::ScratchDir scratch_{"dcp_writer"};
  std::string ref_, bytes_;
  std::unique_ptr<MemorySource> src_;
  DecodedFile file_;
};

TEST_F(DcpWriter, TorchLoadsWhatCkptioWrites) {
  const Written w = write(file_.tree, "ckpt");
  ASSERT_FALSE(w.metadata.items.empty());
  const test_support::RunResult r =
      test_support::run({kPython, kCheckPy, "check", w.dir, ref_}, 300);
  EXPECT_EQ(r.exit_code, 0) << r.describe() << "\n" << r.out;
  std::printf("  %s", r.out.c_str());
}

TEST_F(DcpWriter, MetadataReadsBackThroughTheDecoder) {
  const Written w = write(file_.tree, "ckpt");
  const std::string text = test_support::read_file(w.dir + "/" + kMetadataFile);
  auto md = parse_dcp_metadata(reinterpret_cast<const uint8_t*>(text.data()), text.size(),
                               w.dir + "/.metadata");
  ASSERT_TRUE(md.ok()) << md.status().message();
  ASSERT_EQ(md->items.size(), w.metadata.items.size());
  const Item* layer = md->find("model.layers.1.w");
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->kind, Item::Kind::kTensor);
  EXPECT_EQ(layer->properties.dtype, DType::kBFloat16);
  EXPECT_EQ(layer->size, (std::vector<int64_t>{4, 4}));
  ASSERT_EQ(layer->chunks.size(), 1u);
  const Item* transposed = md->find("model.transposed");
  ASSERT_NE(transposed, nullptr);
  EXPECT_EQ(transposed->size, (std::vector<int64_t>{8, 6}));
  const Item* step = md->find("step");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->kind, Item::Kind::kBytes);
  ASSERT_NE(md->find("optim.state.0.exp_avg"), nullptr);  // int keys as str(key)
  // Lists of tensors and dicts are walked (indices as ints), lists of numbers are leaves.
  ASSERT_TRUE(md->planner_data.has_value());
  bool saw_layer_path = false, saw_milestones = false;
  for (const PlannerEntry& e : *md->planner_data) {
    if (e.fqn == "model.layers.1.w") {
      saw_layer_path = e.path == std::vector<PathComponent>{std::string("model"), std::string("layers"),
                                                            int64_t{1}, std::string("w")};
    }
    if (e.fqn == "milestones") saw_milestones = e.path.size() == 1;
  }
  EXPECT_TRUE(saw_layer_path);
  EXPECT_TRUE(saw_milestones);
  EXPECT_EQ(md->version, std::optional<std::string>("1.0.0"));
  for (const StorageEntry& e : md->storage_data) EXPECT_EQ(e.info.relative_path, kRankZeroDataFile);
}

TEST_F(DcpWriter, RefusesWhatDcpCannotHoldNamingTheEntry) {
  auto expect_refused = [&](const Tree& tree, const std::string& part) {
    StringSink data;
    auto md = write_dcp_items(data, tree, storage_bytes(), kRankZeroDataFile, "out_dir");
    ASSERT_FALSE(md.ok());
    EXPECT_EQ(md.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(md.status().message().rfind("out_dir: ", 0), 0u) << md.status().message();
    EXPECT_NE(md.status().message().find(part), std::string::npos) << md.status().message();
  };
  Tree list_root = file_.tree;
  list_root.root = Value::list({Value::integer(1)});
  expect_refused(list_root, "a DCP checkpoint's state dict is a dict");

  Tree float_key = file_.tree;
  float_key.root = std::make_shared<Value>(*file_.tree.root);
  float_key.root->entries.emplace_back(Value::floating(1.5), Value::integer(1));
  expect_refused(float_key, "a key under '' is a float");

  Tree clash = file_.tree;
  clash.root = std::make_shared<Value>(*file_.tree.root);
  clash.root->entries.emplace_back(Value::str("model.norm.weight"), Value::integer(1));
  expect_refused(clash, "two entries flatten to the key 'model.norm.weight'");

  Tree tuple = file_.tree;
  tuple.root = std::make_shared<Value>(*file_.tree.root);
  const ValuePtr embed = file_.tree.root->get("model")->get("embed.weight");
  tuple.root->entries.emplace_back(Value::str("pair"), Value::tuple({embed, embed}));
  expect_refused(tuple, "'pair' is a tuple holding tensors");
}

}  // namespace
}  // namespace ckptio::dcp
