// formats/dcp (dcp_metadata.h): the `.metadata` decoder against files that real torch writes
// at test time: torch 2.13 (CKPTIO_TEST_PYTHON) through torch.distributed.checkpoint.save in
// one process without a process group, and Debian's torch 1.13 (CKPTIO_TEST_PYTHON_113,
// /usr/bin/python3 by default) through torch.distributed._shard.checkpoint.save_state_dict(
// no_dist=True). Each script prints what Python's own pickle.load reads back from the same
// file, in the text form render() below writes, and the C++ result must match it line for
// line. Then Metadata objects built from the real torch classes (multi-chunk tensors,
// transform_descriptors) and hostile files (a forbidden global, bad chunks, bad paths,
// truncation), each refused with one line naming the file and the key.
#include "formats/dcp/dcp_metadata.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/process.h"

#ifndef CKPTIO_TEST_PYTHON_113
#define CKPTIO_TEST_PYTHON_113 "/usr/bin/python3"
#endif

namespace ckptio::dcp {
namespace {

const char kPython[] = CKPTIO_TEST_PYTHON;
const char kPython113[] = CKPTIO_TEST_PYTHON_113;

// Shared by both interpreters: the text form of a Metadata as Python reads it.
const char kRenderPy[] = R"PY(
import pickle, torch

def _ints(xs):
    return ",".join(str(int(x)) for x in xs)

def render(md):
    mf = {torch.contiguous_format: 0, torch.channels_last: 1, torch.preserve_format: 2}
    out = ["package\t" + type(md).__module__.rsplit(".", 1)[0]]
    v = getattr(md, "version", None)
    out.append("version\t" + ("-" if v is None else str(v)))
    for fqn, m in md.state_dict_metadata.items():
        if type(m).__name__ == "BytesStorageMetadata":
            out.append("item\t%s\tbytes" % fqn)
            continue
        p = m.properties
        out.append("item\t%s\ttensor\t%s\t%s\t%s\t%d\t%d\t%d" % (
            fqn, str(p.dtype)[6:], _ints(m.size), str(p.layout), p.requires_grad,
            mf[p.memory_format], p.pin_memory))
        for k, c in enumerate(m.chunks):
            out.append("chunk\t%s\t%d\t%s\t%s" % (fqn, k, _ints(c.offsets), _ints(c.sizes)))
    for idx, si in md.storage_data.items():
        td = getattr(si, "transform_descriptors", None)
        out.append("storage\t%s\t%s\t%s\t%s\t%d\t%d\t%s" % (
            idx.fqn, "-" if idx.offset is None else _ints(idx.offset),
            "-" if idx.index is None else str(idx.index), si.relative_path, si.offset, si.length,
            "-" if td is None else ",".join(td)))
    if md.planner_data is None:
        out.append("planner\t-")
    else:
        for fqn, path in md.planner_data.items():
            out.append("planner\t%s\t%s" % (fqn, "|".join(
                ("i:%d" % x) if isinstance(x, int) else ("s:" + x) for x in path)))
    sm = getattr(md, "storage_meta", None)
    if sm is None:
        out.append("storage_meta\t-")
    else:
        out.append("storage_meta\t%s\t%s\t%s\t%s" % (
            "-" if sm.checkpoint_id is None else str(sm.checkpoint_id),
            "-" if sm.save_id is None else sm.save_id, "-" if sm.load_id is None else sm.load_id,
            ",".join(getattr(sm, "modules", []))))
    return "\n".join(out) + "\n"

def write_expected(dirname):
    with open(dirname + "/.metadata", "rb") as f:
        md = pickle.load(f)
    with open(dirname + "/expected.txt", "w") as f:
        f.write(render(md))
)PY";

// usage: python gen213.py OUT_DIR (render.py beside it).
const char kGen213Py[] = R"PY(
import os, sys, pickle, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import (Metadata, TensorStorageMetadata,
    BytesStorageMetadata, ChunkStorageMetadata, TensorProperties, MetadataIndex, StorageMeta)
from torch.distributed.checkpoint.filesystem import _StorageInfo, FileSystemWriter
from render import write_expected
out = sys.argv[1]
with open(out + "/versions.txt", "w") as f:
    f.write(torch.__version__ + "\n")

def sd():
    torch.manual_seed(0)
    return {"w": torch.randn(4, 4), "b": torch.zeros(3, dtype=torch.bfloat16),
            "i": torch.arange(5), "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
            "param": torch.nn.Parameter(torch.ones(2, 2)), "t_view": torch.randn(3, 5).t(),
            "nested": {"a": torch.ones(2), "lst": [1, 2, "x"], "deep": {"h": torch.ones(1, dtype=torch.float16)}},
            "tensors": [torch.ones(1), torch.zeros(2, dtype=torch.int64)], "step": 7, "lr": 0.5}

# 1. Real saves in one process, no process group.
dcp.save(sd(), checkpoint_id=out + "/basic")
write_expected(out + "/basic")
dcp.save(sd(), storage_writer=FileSystemWriter(out + "/per_item", single_file_per_rank=False, thread_count=2))
write_expected(out + "/per_item")

# 2. Metadata built from the real classes: a 2x2-sharded tensor, a row-sharded one with
#    uneven chunks, a 0-dim tensor, transform descriptors.
def props(dtype=torch.float32):
    return TensorProperties(dtype=dtype)

def tensor_md(size, chunks, dtype=torch.float32):
    return TensorStorageMetadata(props(dtype), torch.Size(size),
        [ChunkStorageMetadata(torch.Size(o), torch.Size(s)) for o, s in chunks])

def storage_for(sdm, path="__0_0.distcp", descriptors=None):
    data, pos = {}, 0
    for fqn, m in sdm.items():
        if isinstance(m, BytesStorageMetadata):
            data[MetadataIndex(fqn)] = _StorageInfo(path, pos, 10, descriptors)
            pos += 10
            continue
        for k, c in enumerate(m.chunks):
            data[MetadataIndex(fqn, c.offsets, k)] = _StorageInfo(path, pos, 100, descriptors)
            pos += 100
    return data

def save_md(name, sdm, storage=None, planner=None, **kw):
    d = out + "/" + name
    os.makedirs(d, exist_ok=True)
    md = Metadata(sdm, planner_data=planner, storage_data=storage if storage is not None else storage_for(sdm), **kw)
    with open(d + "/.metadata", "wb") as f:
        pickle.dump(md, f)
    return d

rows = [((0,), (7,)), ((7,), (1,)), ((8,), (30,)), ((38,), (62,))]
sharded = {"grid": tensor_md([4, 6], [((0, 0), (2, 3)), ((0, 3), (2, 3)), ((2, 0), (2, 3)), ((2, 3), (2, 3))]),
           "rows": tensor_md([100], rows, torch.bfloat16),
           "zero_dim": tensor_md([], [((), ())], torch.int64),
           "empty": tensor_md([0, 5], [((0, 0), (0, 5))]),
           "blob": BytesStorageMetadata()}
write_expected(save_md("sharded", sharded, storage_for(sharded, "__1_0.distcp", ["stream.zstd/1"]),
                       planner={"grid": ("grid",), "rows": ("model", "layers", 0, "rows")},
                       storage_meta=StorageMeta(checkpoint_id="s3://bucket/x", save_id="id", modules=["m1", "m2"]),
                       version="1.0.0"))
for proto in (2, 3, 5):
    d = out + "/proto%d" % proto
    os.makedirs(d, exist_ok=True)
    with open(out + "/basic/.metadata", "rb") as f:
        md = pickle.load(f)
    with open(d + "/.metadata", "wb") as f:
        pickle.dump(md, f, protocol=proto)
    write_expected(d)

# Many chunks: a staircase partition of an [n, n+1] tensor (row i split at a distinct column)
# has 2n chunks and an n x (n+1) grid of boundary cells; a 3-D one of 3 chunks per slab has
# about n^3 cells, too many for the grid, so the pairwise check runs.
import random
def staircase(n):
    cols = random.Random(n).sample(range(1, n + 1), n)
    chunks = []
    for i, c in enumerate(cols):
        chunks += [((i, 0), (1, c)), ((i, c), (1, n + 1 - c))]
    return tensor_md([n, n + 1], chunks)
def slabs(n, overlap=False):
    r = random.Random(n)
    cs, es = r.sample(range(1, n + 1), n), r.sample(range(1, n + 1), n)
    k = n + 1
    chunks = []
    for i in range(n):
        c, e = cs[i], es[i]
        chunks += [((i, 0, 0), (1, c, k)), ((i, c, 0), (1, k - c, e)), ((i, c, e), (1, k - c, k - e))]
    if overlap:
        i, c, e = n // 2, cs[n // 2], es[n // 2]
        chunks[3 * i + 2] = ((i, c, e - 1), (1, k - c, k - e + 1))
    return tensor_md([n, k, k], chunks)
save_md("scale_grid", {"s": staircase(3000)})
save_md("scale_pairwise", {"s": slabs(450)})
save_md("scale_pairwise_overlap", {"s": slabs(450, overlap=True)})
save_md("scale_limit", {"s": staircase(9000)})

# 3. Hostile files: each one expected to be refused.
h = out + "/hostile"
os.makedirs(h, exist_ok=True)
def hostile(name, sdm, storage=None, planner=None):
    md = Metadata(sdm, planner_data=planner, storage_data=storage if storage is not None else storage_for(sdm))
    with open(h + "/" + name, "wb") as f:
        pickle.dump(md, f)
hostile("overlap", {"w": tensor_md([4, 4], [((0, 0), (4, 4)), ((2, 0), (2, 4))])})
hostile("out_of_bounds", {"w": tensor_md([4, 4], [((0, 0), (2, 4)), ((2, 0), (4, 4))])})
hostile("negative_offset", {"w": tensor_md([4, 4], [((-1, 0), (4, 4))])})
hostile("gap", {"w": tensor_md([4, 4], [((0, 0), (2, 4)), ((3, 0), (1, 4))])})
hostile("rank", {"w": tensor_md([4, 4], [((0,), (4,))])})
for name, path in (("dotdot", "../x"), ("absolute", "/etc/passwd"), ("inner_dotdot", "a/../../b")):
    s = {"w": tensor_md([4, 4], [((0, 0), (4, 4))])}
    hostile(name, s, storage_for(s, path))
s = {"w": tensor_md([4, 4], [((0, 0), (4, 4))])}
st = storage_for(s); next(iter(st.values())).offset = -5
hostile("negative_storage_offset", s, st)
st = storage_for(s); next(iter(st.values())).length = -1
hostile("negative_length", s, st)
hostile("missing_storage", s, {})
st = storage_for(s); st[MetadataIndex("nope")] = _StorageInfo("__0_0.distcp", 0, 1)
hostile("unknown_fqn", s, st)
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
hostile("evil_planner", s, planner={"w": Evil()})
class BadGetattr:
    def __reduce__(self):
        from torch.distributed.checkpoint.metadata import _MEM_FORMAT_ENCODING
        return (getattr, (_MEM_FORMAT_ENCODING, "mro"))
hostile("getattr", s, planner={"w": BadGetattr()})
hostile("device", s, planner={"w": torch.device("cpu")})  # in the torch allow-list, not DCP's
# Value globals the torch allow-list turns into plain values, which leave no trace in the tree:
# refused by name as they are read (UnpickleOptions::check_global).
class Codecs:
    def __reduce__(self):
        import _codecs
        return (_codecs.encode, ("abc", "latin1"))
hostile("codecs", s, planner={"w": Codecs()})
hostile("numpy_scalar", s, planner={"w": __import__("numpy").int64(3)})
dag = []
for _ in range(200):  # 2^200 paths, 200 nodes: each visited once
    dag = [dag, dag]
hostile("shared_dag", s, planner={"w": dag})
shared = tensor_md([20000], [((i,), (1,)) for i in range(20000)])  # one object, 2000 keys
hostile("memo_bomb", {"t%d" % i: shared for i in range(2000)}, storage={})
with open(h + "/os_system", "wb") as f:  # GLOBAL 'os system' + REDUCE, protocol 2
    f.write(b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.")
with open(out + "/basic/.metadata", "rb") as f:
    data = f.read()
with open(h + "/truncated", "wb") as f:
    f.write(data[: len(data) // 2])
with open(h + "/trailing", "wb") as f:
    f.write(data + b"\x00")
with open(h + "/not_pickle", "wb") as f:
    f.write(b"PK\x03\x04 not a pickle")
)PY";

// usage: python3 gen113.py OUT_DIR, with Debian's torch 1.13 on Python 3.11.
const char kGen113Py[] = R"PY(
import os, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch113_compat  # noqa: F401  (copied beside this script from tests/interop/py)
import torch
import torch.distributed._shard.checkpoint as dcp
from render import write_expected
out = sys.argv[1]
with open(out + "/versions.txt", "w") as f:
    f.write(torch.__version__ + "\n")
torch.manual_seed(0)
sd = {"w": torch.randn(4, 4), "b": torch.zeros(3, dtype=torch.bfloat16), "i": torch.arange(5),
      "scalar": torch.tensor(3.5), "nested": {"a": 1, "lst": [1, 2, "x"]}, "lst": [1.5, "y"],
      "step": 7}
dcp.save_state_dict(sd, dcp.FileSystemWriter(out + "/basic"), no_dist=True)
write_expected(out + "/basic")
)PY";

std::string ints(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The C++ result in the text form of render.py.
std::string render(const DcpMetadata& md) {
  std::ostringstream o;
  o << "package\t" << md.package << "\n";
  o << "version\t" << (md.version ? *md.version : "-") << "\n";
  for (const Item& it : md.items) {
    if (it.kind == Item::Kind::kBytes) {
      o << "item\t" << it.fqn << "\tbytes\n";
      continue;
    }
    const TensorProperties& p = it.properties;
    o << "item\t" << it.fqn << "\ttensor\t" << dtype_name(p.dtype) << "\t" << ints(it.size) << "\t"
      << p.layout << "\t" << p.requires_grad << "\t" << static_cast<int>(p.memory_format) << "\t"
      << p.pin_memory << "\n";
    for (size_t k = 0; k < it.chunks.size(); ++k)
      o << "chunk\t" << it.fqn << "\t" << k << "\t" << ints(it.chunks[k].offsets) << "\t"
        << ints(it.chunks[k].sizes) << "\n";
  }
  for (const StorageEntry& e : md.storage_data) {
    std::string td = "-";
    if (e.info.transform_descriptors) {
      td.clear();
      for (size_t i = 0; i < e.info.transform_descriptors->size(); ++i)
        td += (i ? "," : "") + (*e.info.transform_descriptors)[i];
    }
    o << "storage\t" << e.index.fqn << "\t" << (e.index.offset ? ints(*e.index.offset) : "-")
      << "\t" << (e.index.index ? std::to_string(*e.index.index) : "-") << "\t"
      << e.info.relative_path << "\t" << e.info.offset << "\t" << e.info.length << "\t" << td
      << "\n";
  }
  if (!md.planner_data) {
    o << "planner\t-\n";
  } else {
    for (const PlannerEntry& pe : *md.planner_data) {
      o << "planner\t" << pe.fqn << "\t";
      for (size_t i = 0; i < pe.path.size(); ++i) {
        if (i) o << "|";
        if (const auto* s = std::get_if<std::string>(&pe.path[i]))
          o << "s:" << *s;
        else
          o << "i:" << std::get<int64_t>(pe.path[i]);
      }
      o << "\n";
    }
  }
  if (!md.storage_meta) {
    o << "storage_meta\t-\n";
  } else {
    const StorageMeta& sm = *md.storage_meta;
    std::string mods;
    for (size_t i = 0; i < sm.modules.size(); ++i) mods += (i ? "," : "") + sm.modules[i];
    o << "storage_meta\t" << sm.checkpoint_id.value_or("-") << "\t" << sm.save_id.value_or("-")
      << "\t" << sm.load_id.value_or("-") << "\t" << mods << "\n";
  }
  return o.str();
}

Result<DcpMetadata> parse_file(const std::string& path) {
  const std::string bytes = test_support::read_file(path);
  return parse_dcp_metadata(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

// tests/interop/py/torch113_compat.py, which lets torch 1.13 import under Python 3.11.
const std::string& compat_py() {
  static const std::string text = test_support::read_file(CKPTIO_TORCH113_COMPAT_PY);
  return text;
}

struct Cases {
  std::string dir;  // empty: the interpreter cannot run the script
  std::string why;
};

// Generated once per script and interpreter (ctest may run each test in its own process, so
// the cache lives on disk; rename() makes concurrent generation safe).
Cases generate(const char* python, const char* script, const char* tag, const char* probe) {
  Cases c;
  const test_support::RunResult have = test_support::run({python, "-c", probe}, 120);
  if (have.exit_code != 0) {
    c.why = std::string(python) + " cannot run '" + probe +
            "': " + have.err.substr(have.err.size() > 300 ? have.err.size() - 300 : 0);
    return c;
  }
  const std::string d =
      "/tmp/ckptio_dcp_metadata_" + std::string(tag) + "_" + std::to_string(getuid()) + "_" +
      std::to_string(std::hash<std::string>{}(std::string(kRenderPy) + compat_py() + script + python));
  if (access((d + "/versions.txt").c_str(), R_OK) != 0) {
    const std::string tmp = d + ".tmp" + std::to_string(getpid());
    test_support::run({"/bin/rm", "-rf", tmp});
    test_support::run({"/bin/mkdir", "-p", tmp});
    test_support::write_file(tmp + "/render.py", kRenderPy);
    test_support::write_file(tmp + "/torch113_compat.py", compat_py());
    test_support::write_file(tmp + "/gen.py", script);
    const test_support::RunResult r = test_support::run({python, tmp + "/gen.py", tmp}, 600);
    if (r.exit_code != 0) {
      c.why = "case generation failed: " + r.describe();
      test_support::run({"/bin/rm", "-rf", tmp});
      return c;
    }
    if (rename(tmp.c_str(), d.c_str()) != 0) test_support::run({"/bin/rm", "-rf", tmp});
  }
  c.dir = d;
  return c;
}

const Cases& cases213() {
  static const Cases c = generate(kPython, kGen213Py, "213", "import torch.distributed.checkpoint");
  return c;
}
const Cases& cases113() {
  // The import the script needs besides torch113_compat's fix-up (see kGen113Py).
  static const Cases c = generate(kPython113, kGen113Py, "113",
                                  "import torch; assert torch.__version__.startswith('1.13')");
  return c;
}

#define REQUIRE(cases)                                                                \
  do {                                                                                \
    if ((cases).dir.empty()) {                                                        \
      if ((cases).why.rfind("case generation failed", 0) == 0) FAIL() << (cases).why; \
      GTEST_SKIP() << (cases).why;                                                    \
    }                                                                                 \
  } while (0)

void expect_matches_python(const std::string& dir) {
  SCOPED_TRACE(dir);
  Result<DcpMetadata> md = parse_file(dir + "/.metadata");
  ASSERT_TRUE(md.ok()) << md.status().message();
  EXPECT_EQ(render(*md), test_support::read_file(dir + "/expected.txt"));
}

TEST(DcpMetadataTorch213, VersionIsTheReference) {
  REQUIRE(cases213());
  EXPECT_EQ(test_support::read_file(cases213().dir + "/versions.txt").substr(0, 4), "2.13");
}

TEST(DcpMetadataTorch213, SaveMatchesPickleLoad) {
  REQUIRE(cases213());
  expect_matches_python(cases213().dir + "/basic");
  Result<DcpMetadata> md = parse_file(cases213().dir + "/basic/.metadata");
  ASSERT_TRUE(md.ok()) << md.status().message();
  EXPECT_EQ(md->package, "torch.distributed.checkpoint");
  EXPECT_EQ(md->version, std::optional<std::string>("1.0.0"));
  const Item* b = md->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->properties.dtype, DType::kBFloat16);
  const Item* i = md->find("i");
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->properties.dtype, DType::kInt64);
  const Item* s = md->find("scalar");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->size.empty());
  ASSERT_EQ(s->chunks.size(), 1u);
  EXPECT_TRUE(s->chunks[0].offsets.empty());
  const Item* step = md->find("step");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->kind, Item::Kind::kBytes);
  EXPECT_NE(md->find("nested.deep.h"), nullptr);  // the 2.4+ flattening
  EXPECT_NE(md->find("tensors.1"), nullptr);
  ASSERT_NE(md->find_storage("step", nullptr), nullptr);
  const std::vector<int64_t> zero{0, 0};
  const StorageEntry* w = md->find_storage("w", &zero);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->info.relative_path, "__0_0.distcp");
  ASSERT_TRUE(md->storage_meta);
  // A PosixPath, joined back: the directory the script saved to (before the cache's rename).
  const std::string id = md->storage_meta->checkpoint_id.value_or("");
  EXPECT_EQ(id.rfind("/tmp/ckptio_dcp_metadata_213_", 0), 0u) << id;
  EXPECT_EQ(id.substr(id.size() > 6 ? id.size() - 6 : 0), "/basic") << id;
}

TEST(DcpMetadataTorch213, OneFilePerItemMatchesPickleLoad) {
  REQUIRE(cases213());
  expect_matches_python(cases213().dir + "/per_item");
}

TEST(DcpMetadataTorch213, ShardedChunksDescriptorsAndStorageMeta) {
  REQUIRE(cases213());
  expect_matches_python(cases213().dir + "/sharded");
}

TEST(DcpMetadataTorch213, PicklesOfProtocols2To5) {
  REQUIRE(cases213());
  for (int p : {2, 3, 5}) expect_matches_python(cases213().dir + "/proto" + std::to_string(p));
}

TEST(DcpMetadataTorch113, SaveStateDictMatchesPickleLoad) {
  REQUIRE(cases113());
  EXPECT_EQ(test_support::read_file(cases113().dir + "/versions.txt").substr(0, 4), "1.13");
  expect_matches_python(cases113().dir + "/basic");
  Result<DcpMetadata> md = parse_file(cases113().dir + "/basic/.metadata");
  ASSERT_TRUE(md.ok()) << md.status().message();
  EXPECT_EQ(md->package, "torch.distributed._shard.checkpoint");
  EXPECT_FALSE(md->planner_data);
  EXPECT_FALSE(md->storage_meta);
  EXPECT_FALSE(md->version);
  const Item* n = md->find("nested");  // 1.13: no flattening, one bytes item
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->kind, Item::Kind::kBytes);
}

// The overlap check stays exact and bounded with thousands of chunks.
TEST(DcpMetadataTorch213, ManyChunks) {
  REQUIRE(cases213());
  Result<DcpMetadata> grid = parse_file(cases213().dir + "/scale_grid/.metadata");
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  EXPECT_EQ(grid->items.at(0).chunks.size(), 6000u);
  EXPECT_EQ(grid->storage_data.size(), 6000u);
  Result<DcpMetadata> pairwise = parse_file(cases213().dir + "/scale_pairwise/.metadata");
  ASSERT_TRUE(pairwise.ok()) << pairwise.status().message();
  EXPECT_EQ(pairwise->items.at(0).chunks.size(), 1350u);
  Result<DcpMetadata> bad = parse_file(cases213().dir + "/scale_pairwise_overlap/.metadata");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'s' chunk 677"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("overlaps chunk 676"), std::string::npos)
      << bad.status().message();
  Result<DcpMetadata> limit = parse_file(cases213().dir + "/scale_limit/.metadata");
  ASSERT_FALSE(limit.ok());
  EXPECT_EQ(limit.status().code(), Code::kLimit) << limit.status().message();
  EXPECT_NE(limit.status().message().find("'s' has 18000 irregular chunks"), std::string::npos)
      << limit.status().message();
}

// ---------------------------------------------------------------------------------------
// Refusals: one line, naming the file and the key.

void expect_refused(const std::string& name, Code code, const std::vector<std::string>& parts) {
  const std::string path = cases213().dir + "/hostile/" + name;
  SCOPED_TRACE(name);
  Result<DcpMetadata> md = parse_file(path);
  ASSERT_FALSE(md.ok());
  const std::string& m = md.status().message();
  EXPECT_EQ(md.status().code(), code) << m;
  EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  for (const std::string& p : parts)
    EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
}

TEST(DcpMetadataHostile, ForbiddenGlobals) {
  REQUIRE(cases213());
  // Refused as the pickle names them, before anything is built: the message says where.
  expect_refused("os_system", Code::kForbidden,
                 {"pickle global 'os.system' is not a DCP metadata class at offset 2"});
  expect_refused("device", Code::kForbidden,
                 {"pickle global 'torch.device' is not a DCP metadata class at offset"});
  // os.system pickles as posix.system.
  expect_refused("evil_planner", Code::kForbidden,
                 {"pickle global 'posix.system' is not a DCP metadata class at offset"});
  expect_refused("codecs", Code::kForbidden,
                 {"pickle global '_codecs.encode' is not a DCP metadata class at offset"});
  expect_refused("numpy_scalar", Code::kForbidden, {"pickle global 'numpy.", "is not a DCP metadata class"});
  // A global of the allow-list used the wrong way: refused in the tree, naming the key.
  expect_refused(
      "getattr", Code::kForbidden,
      {"'builtins.getattr' is accepted only as getattr(<memory-format enum>", "planner_data['w']"});
}

TEST(DcpMetadataHostile, BadChunks) {
  REQUIRE(cases213());
  expect_refused("overlap", Code::kCorrupt, {"'w' chunk 1", "overlaps chunk 0"});
  expect_refused("out_of_bounds", Code::kCorrupt, {"'w' chunk 1", "out of bounds", "dim 0"});
  expect_refused("negative_offset", Code::kCorrupt, {"'w' chunk 0", "out of bounds"});
  expect_refused("gap", Code::kCorrupt, {"'w'", "do not cover", "element [2, 0]"});
  expect_refused("rank", Code::kCorrupt, {"'w' chunk 0", "offsets of rank 1", "has rank 2"});
}

TEST(DcpMetadataHostile, BadStorageEntries) {
  REQUIRE(cases213());
  expect_refused("dotdot", Code::kCorrupt, {"storage_data['w' offset [0, 0]]", "'../x'", "'..'"});
  expect_refused("inner_dotdot", Code::kCorrupt, {"storage_data['w'", "'a/../../b'", "'..'"});
  expect_refused("absolute", Code::kCorrupt, {"storage_data['w'", "'/etc/passwd' is absolute"});
  expect_refused("negative_storage_offset", Code::kCorrupt,
                 {"storage_data['w'", "offset -5 is negative"});
  expect_refused("negative_length", Code::kCorrupt, {"storage_data['w'", "length -1 is negative"});
  expect_refused("missing_storage", Code::kCorrupt, {"'w' chunk 0", "no storage_data entry"});
  expect_refused("unknown_fqn", Code::kCorrupt,
                 {"storage_data['nope']", "not in state_dict_metadata"});
}

TEST(DcpMetadataHostile, DamagedPickles) {
  REQUIRE(cases213());
  expect_refused("truncated", Code::kCorrupt, {"truncated"});
  expect_refused("trailing", Code::kCorrupt, {"1 bytes after the pickle's STOP"});
  expect_refused("not_pickle", Code::kCorrupt, {"not a pickle of protocol 2-5"});
  // Shared sub-lists are walked once: a quick refusal, not 2^200 steps.
  expect_refused("shared_dag", Code::kCorrupt, {"planner_data['w']", "not a str or int"});
  // One TensorStorageMetadata of 20000 chunks under 2000 keys: 4e7 chunk copies from ~1 MB.
  expect_refused("memo_bomb", Code::kLimit, {"memo bomb"});
}

// Every prefix of a real file, and every single-byte change of its head: refused or read,
// never a crash (ASan/UBSan builds make this a memory check).
TEST(DcpMetadataHostile, PrefixesAndMutationsNeverCrash) {
  REQUIRE(cases213());
  const std::string data = test_support::read_file(cases213().dir + "/sharded/.metadata");
  for (size_t n = 0; n < data.size(); ++n) {
    Result<DcpMetadata> md =
        parse_dcp_metadata(reinterpret_cast<const uint8_t*>(data.data()), n, "x");
    EXPECT_FALSE(md.ok()) << n;
  }
  for (size_t i = 0; i < data.size(); ++i) {
    for (uint8_t delta : {1, 0x40, 0xff}) {
      std::string m = data;
      m[i] = static_cast<char>(static_cast<uint8_t>(m[i]) + delta);
      Result<DcpMetadata> md =
          parse_dcp_metadata(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "x");
      if (!md.ok()) {
        EXPECT_EQ(md.status().message().rfind("x: ", 0), 0u) << md.status().message();
        EXPECT_EQ(md.status().message().find('\n'), std::string::npos) << md.status().message();
      }
    }
  }
}

}  // namespace
}  // namespace ckptio::dcp
