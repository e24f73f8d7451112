"""The workloads bench/run.py measures: which file, which kind of op (py/peer_ops.py's kinds,
shared by bench/timed_op.cc), warm or cold page cache, and the limits drawn beside them.
Every peer of a kind runs on a workload, each in its own format; ckptio's op of that kind is
the reference the ratios are taken against.
"""


class Workload:
    def __init__(self, key, title, file, kind, ckptio, cold=False, limits=(), peers=None):
        self.key, self.title, self.file, self.kind = key, title, file, kind
        self.ckptio = ckptio      # ckptio's op (bench/timed_op.cc)
        self.cold = cold          # evict the file's pages before each run
        self.limits = limits      # timed_op.cc limit ops, or the disk reads of py/limits.py
        self.peers = peers        # None: every op of `kind`; else only these


# Cold runs read from disk, so they take longest: only the loaders a user would pick for a
# first load of a big file, each once per round.
COLD_PEERS = ["torch.load", "safetensors load_file(backend='pread')",
              "tensorizer TensorDeserializer", "runai-model-streamer SafetensorsStreamer",
              "fastsafetensors (nogds)", "torch::load (tensor list)"]

WORKLOADS = [
    Workload("load_fp32", "Load the fp32 state_dict into fresh memory (page cache warm)",
             "fp32", "load", "ckptio load",
             limits=("fresh-memory limit", "read() limit", "memcpy limit")),
    Workload("load_bf16", "Load the bf16 state_dict into fresh memory (page cache warm)",
             "bf16", "load", "ckptio load",
             limits=("fresh-memory limit", "read() limit", "memcpy limit")),
    Workload("load_small", "Load the small tensors (page cache warm)",
             "small", "load", "ckptio load"),
    Workload("load_cold", "Load the fp32 state_dict from disk (cold: its pages evicted before each run)",
             "fp32", "load", "ckptio load", cold=True,
             limits=("disk sequential read", "disk read, 16 threads"),
             peers=COLD_PEERS),
    Workload("module", "Load the fp32 state_dict into an existing module (its memory touched)",
             "fp32", "module", "ckptio load_state_dict(module, file)",
             limits=("memcpy limit",)),
    Workload("lazy", "Zero-copy load of the fp32 state_dict (tensors alias a mapping of the file)",
             "fp32", "lazy", "ckptio load (zero_copy)"),
    Workload("save", "Save the fp32 tensors into the page cache (no fsync)",
             "fp32", "save", "ckptio save", limits=("write() limit",)),
    Workload("save_durable", "Durable save of the fp32 tensors (fsync included)",
             "fp32", "save_durable", "ckptio save + fsync",
             limits=("write() + fsync limit",)),
]
