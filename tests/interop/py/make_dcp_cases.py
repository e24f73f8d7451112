"""torch.distributed.checkpoint (DCP) checkpoints for tests/interop/dcp_read_test.cc, made at
test time with the real torch of the tests' Python (torch 2.13 in the venv).

  make_dcp_cases.py make OUT_DIR    writes the cases, the bad inputs and OUT_DIR/manifest.json

Cases (each a directory written by dcp.save, and beside it the torch.save file that
torch.distributed.checkpoint.format_utils.dcp_to_torch_save makes of it: the reference):
  single      one process, no process group: tensors of several dtypes (float32, bfloat16,
              float16, int64, bool, uint8, float64), a 0-dim tensor, an empty one, a
              transposed view (saved with its strides), a Parameter, nested dicts, a list of
              tensors, a list of ints and str, optimizer-like state keyed by int (which
              dcp_to_torch_save turns into a list), an int step, a float lr, None
  per_item    the same state dict through FileSystemWriter(single_file_per_rank=False,
              thread_count=2): one .distcp file per item
  ranks       2 real ranks (torch.multiprocessing, gloo on 127.0.0.1, a free port), a 1-D
              device mesh: DTensors sharded by rows (Shard(0), uneven: 5 rows over 2 ranks),
              by columns (Shard(1), bfloat16), a 3-D float64 one by its middle dim, a replicated one, plus plain tensors, an int
              and a nested dict; each rank writes its own __R_0.distcp
  torch113    Debian's torch 1.13 (CKPTIO_TEST_PYTHON_113, default /usr/bin/python3) through
              _shard.checkpoint.save_state_dict(no_dist=True): flat keys (no planner_data),
              one file per item; its reference is torch.save of the same state dict. Left
              out, saying why in "skipped_113", where that Python or its torch 1.13 is missing
  single_zstd, ranks_zstd
              the same with every item through the stream.zstd/1 transform (see zstd_copy);
              left out where there is no zstd command
Exits 3 with "no torch.distributed.checkpoint.format_utils" on stderr where the torch is older
than the cases need (Debian's 1.13 as CKPTIO_TEST_PYTHON), which the test turns into a skip.

Bad inputs (copies of a case with one thing broken; the one-line error must name the file
and the key): a relative_path with "..", a missing .distcp, an item offset past its file's
end, an item whose bytes are not a zip, an item whose archive holds another tensor (shape and
dtype mismatch), planner_data with a list index far past the items or two items at one
place, an item through an unknown stream transform, an item marked stream.zstd/1
that is no zstd stream.

manifest.json:
  "torch":  torch.__version__
  "cases":  [{"name", "dir", "pt" (the reference), "files" (sorted listing of dir),
              "chunks" ({fqn: number of chunks} of the tensors),
              "where" ({fqn: sorted names of the files holding its items}),
              "zstd" (true in the zstd cases only)}]
  "bad":    [{"name", "dir", "expect" (fragments of the one-line error)}]
  "skipped_113": why the torch113 case is missing ("" when it is there)
"""
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import warnings

warnings.simplefilter("ignore")

import torch  # noqa: E402

try:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.filesystem import FileSystemWriter
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    from torch.distributed.tensor import distribute_tensor  # noqa: F401 (2.5+)
except ImportError as e:
    print("no torch.distributed.checkpoint.format_utils or DTensor in torch %s (%s)"
          % (torch.__version__, e), file=sys.stderr)
    sys.exit(3)


def single_state_dict():
    torch.manual_seed(0)
    return {
        "w": torch.randn(4, 4),
        "b": torch.randn(3).to(torch.bfloat16),
        "h": torch.randn(2, 3).to(torch.float16),
        "d": torch.randn(3, dtype=torch.float64),
        "i": torch.arange(5),
        "mask": torch.tensor([True, False, True]),
        "u8": torch.arange(7, dtype=torch.uint8),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "t_view": torch.randn(3, 5).t(),
        "nested": {"a": torch.ones(2), "lst": [1, 2, "x"],
                   "deep": {"k": torch.full((1,), 2.0, dtype=torch.float16)}},
        "tensors": [torch.ones(1), torch.arange(2, dtype=torch.int64)],
        "param": torch.nn.Parameter(torch.randn(2, 2)),
        # optimizer-like state keyed by int: set_element makes a list of what int keys index
        "opt": {"state": {0: {"m": torch.randn(3), "step": torch.tensor(4.0)}},
                "param_groups": [{"lr": 0.1, "params": [0]}]},
        "step": 7,
        "lr": 0.5,
        "nothing": None,
    }


# torch 1.13 (Debian's /usr/bin/python3): torch.distributed._shard.checkpoint, no planner_data
# (flat keys), one file per item; the reference is torch.save of the same state dict (1.13
# has no format_utils). torch113_compat (beside this script, argv[2]) lets it import.
GEN_113 = r"""
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[2])
import torch113_compat  # noqa: F401
import torch
if not torch.__version__.startswith("1.13"):
    print("torch " + torch.__version__ + ", not 1.13", file=sys.stderr)
    sys.exit(3)
import torch.distributed._shard.checkpoint as dcp
out = sys.argv[1]
torch.manual_seed(0)
sd = {"w": torch.randn(4, 4), "b": torch.randn(3).to(torch.bfloat16), "i": torch.arange(5),
      "scalar": torch.tensor(3.5), "nested": {"a": 1, "lst": [1, 2, "x"]}, "lst": [1.5, "y"],
      "step": 7}
dcp.save_state_dict(sd, dcp.FileSystemWriter(out), no_dist=True)
torch.save(sd, out + ".pt")
"""


def make_113(out):
    """The torch 1.13 case, or (None, why not)."""
    python = os.environ.get("CKPTIO_TEST_PYTHON_113", "/usr/bin/python3")
    if not os.path.exists(python):
        return None, python + " does not exist"
    d = os.path.join(out, "torch113")
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([python, "-c", GEN_113, d, here], capture_output=True, text=True,
                       timeout=240)
    if r.returncode != 0:
        return None, "%s: exit %d: %s" % (python, r.returncode, r.stderr.strip()[-300:])
    with open(os.path.join(d, ".metadata"), "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = pickle.load(f)  # the venv's torch reads the 1.13 classes (its _shard alias)
    chunks = {fqn: len(m.chunks) for fqn, m in md.state_dict_metadata.items()
              if hasattr(m, "chunks")}
    return {"name": "torch113", "dir": d, "pt": d + ".pt", "files": sorted(os.listdir(d)),
            "chunks": chunks, "planner_data": md.planner_data is not None}, ""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world, port, out):
    warnings.simplefilter("ignore")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        torch.manual_seed(1)  # the same full tensors on every rank
        rows = torch.randn(5, 4)
        cols = torch.randn(3, 6).to(torch.bfloat16)
        rep = torch.arange(6, dtype=torch.int32).reshape(2, 3)
        ids = torch.arange(7, dtype=torch.int64) * 3
        cube = torch.randn(2, 5, 3, dtype=torch.float64)
        sd = {
            "rows": distribute_tensor(rows, mesh, [Shard(0)]),
            "cols": distribute_tensor(cols, mesh, [Shard(1)]),
            "rep": distribute_tensor(rep, mesh, [Replicate()]),
            "cube": distribute_tensor(cube, mesh, [Shard(1)]),
            "model": {"ids": distribute_tensor(ids, mesh, [Shard(0)]),
                      "bias": torch.linspace(0, 1, 4)},
            "step": 11,
        }
        dcp.save(sd, checkpoint_id=out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def describe(out, name, d):
    with open(os.path.join(d, ".metadata"), "rb") as f:
        md = pickle.load(f)
    chunks = {fqn: len(m.chunks) for fqn, m in md.state_dict_metadata.items()
              if isinstance(m, TensorStorageMetadata)}
    where = {}
    for idx, info in md.storage_data.items():
        where.setdefault(idx.fqn, set()).add(info.relative_path)
    pt = d + ".pt"
    dcp_to_torch_save(d, pt)
    return {"name": name, "dir": d, "pt": pt, "files": sorted(os.listdir(d)), "chunks": chunks,
            "where": {k: sorted(v) for k, v in where.items()}}


def load_md(d):
    with open(os.path.join(d, ".metadata"), "rb") as f:
        return pickle.load(f)


def save_md(d, md):
    with open(os.path.join(d, ".metadata"), "wb") as f:
        pickle.dump(md, f)


def chunk_index(md, fqn):
    for idx in md.storage_data:
        if idx.fqn == fqn:
            return idx
    raise KeyError(fqn)


def zstd_copy(src_case, name, out):
    """src_case's directory with every item through the stream.zstd/1 transform, as
    FileSystemWriter(_extensions=[ZStandard()]) writes it: each item's bytes a zstd stream
    (here from the zstd command, reading a pipe, so the frame declares no size, as Python's
    zstandard stream_writer leaves it) and transform_descriptors ["stream.zstd/1"]. The venv
    has neither zstandard nor pyzstd, which torch's extension needs. The values are the
    source case's: its reference serves."""
    zstd = shutil.which("zstd")
    if not zstd:
        return None
    d = os.path.join(out, name)
    os.makedirs(d)
    md = load_md(src_case["dir"])
    files = {}
    for idx, info in sorted(md.storage_data.items(), key=lambda kv: (kv[1].relative_path,
                                                                     kv[1].offset)):
        with open(os.path.join(src_case["dir"], info.relative_path), "rb") as f:
            f.seek(info.offset)
            raw = f.read(info.length)
        packed = subprocess.run([zstd, "-q", "-c", "-3"], input=raw, capture_output=True,
                                check=True).stdout
        blob = files.setdefault(info.relative_path, bytearray())
        info.offset, info.length = len(blob), len(packed)
        info.transform_descriptors = ["stream.zstd/1"]
        blob += packed
    for rel, blob in files.items():
        with open(os.path.join(d, rel), "wb") as f:
            f.write(blob)
    save_md(d, md)
    case = dict(src_case)
    case.update({"name": name, "dir": d, "files": sorted(os.listdir(d)), "zstd": True})
    return case


def make_bad(out, ranks_dir, single_dir):
    bad = []

    def copy(name, src):
        d = os.path.join(out, "bad", name)
        shutil.copytree(src, d)
        return d

    def broken_metadata(name, change, expect):
        """A copy of the single-process case whose .metadata change(md, dir) breaks."""
        d = copy(name, single_dir)
        md = load_md(d)
        change(md, d)
        save_md(d, md)
        bad.append({"name": name, "dir": d, "expect": expect})

    def info(md, fqn):
        return md.storage_data[chunk_index(md, fqn)]

    # relative_path with "..": the metadata decoder refuses it before any file is opened.
    def dotdot(md, d):
        info(md, "w").relative_path = "../single/__0_0.distcp"
    broken_metadata("dotdot", dotdot, [".metadata", "'w'", "'..'"])

    # A rank's file is missing.
    d = copy("missing_distcp", ranks_dir)
    os.remove(os.path.join(d, "__1_0.distcp"))
    bad.append({"name": "missing_distcp", "dir": d, "expect": ["__1_0.distcp", ".metadata"]})

    # An item that starts past the end of its file.
    def past_end(md, d):
        i = info(md, "i")
        i.offset = os.path.getsize(os.path.join(d, i.relative_path)) + 100
    broken_metadata("offset_past_end", past_end, ["__0_0.distcp", "'i'", "past the file's end"])

    # An item whose bytes are not a zip archive (zeroed in place).
    d = copy("not_zip", single_dir)
    h = info(load_md(d), "h")
    with open(os.path.join(d, h.relative_path), "r+b") as f:
        f.seek(h.offset)
        f.write(b"\0" * h.length)
    bad.append({"name": "not_zip", "dir": d, "expect": ["__0_0.distcp", "'h'"]})

    # The chunk of "w" (float32 [4, 4]) points at the archive of "i" (int64 [5]).
    def wrong_tensor(md, d):
        md.storage_data[chunk_index(md, "w")] = info(md, "i")
    broken_metadata("wrong_tensor", wrong_tensor, ["__0_0.distcp", "'w'", "chunk 0", "shape"])

    # planner_data that rebuilds no tree: a list index far past the items, two items at one
    # place.
    def huge_index(md, d):
        md.planner_data["tensors.1"] = ("tensors", 10 ** 12)
    broken_metadata("huge_list_index", huge_index,
                    [".metadata", "'tensors.1'", "list index 1000000000000"])

    def same_place(md, d):
        md.planner_data["b"] = ("w",)
    broken_metadata("same_place", same_place, [".metadata", "'b'", "already taken"])

    # A stream transform other than stream.zstd/1: not read yet.
    def other_transform(md, d):
        info(md, "b").transform_descriptors = ["stream.lz4/1"]
    broken_metadata("other_transform", other_transform,
                    [".metadata", "'b'", "stream.lz4/1", "not supported yet"])

    # stream.zstd/1 on an item whose bytes are no zstd stream.
    def not_zstd(md, d):
        info(md, "d").transform_descriptors = ["stream.zstd/1"]
    broken_metadata("not_zstd", not_zstd, ["__0_0.distcp", "'d'", "stream.zstd/1"])
    return bad


def make(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = []

    d = os.path.join(out, "single")
    dcp.save(single_state_dict(), checkpoint_id=d)
    cases.append(describe(out, "single", d))

    d = os.path.join(out, "per_item")
    dcp.save(single_state_dict(),
             storage_writer=FileSystemWriter(d, single_file_per_rank=False, thread_count=2))
    cases.append(describe(out, "per_item", d))

    d = os.path.join(out, "ranks")
    torch.multiprocessing.spawn(rank_main, args=(2, free_port(), d), nprocs=2, join=True)
    cases.append(describe(out, "ranks", d))

    for src in list(cases):
        if src["name"] in ("single", "ranks"):
            z = zstd_copy(src, src["name"] + "_zstd", out)
            if z:
                cases.append(z)

    case_113, why_not = make_113(out)
    if case_113:
        cases.append(case_113)

    bad = make_bad(out, os.path.join(out, "ranks"), os.path.join(out, "single"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases, "bad": bad,
                   "skipped_113": why_not}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    make(sys.argv[2])
