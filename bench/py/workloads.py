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
        # None: every op of `kind`; else only these, which may include ops of other kinds
        # (the sharded workloads' single-file peers)
        self.peers = peers


# Cold runs read from disk, so they take longest: only the loaders a user would pick for a
# first load of a big file, each once per round.
COLD_PEERS = ["torch.load", "safetensors load_file(backend='pread')",
              "tensorizer TensorDeserializer", "runai-model-streamer SafetensorsStreamer",
              "fastsafetensors (nogds)", "torch::load (tensor list)"]

# Hugging Face sharded checkpoints: the bf16 model as one .safetensors file and as the 4
# shards huggingface_hub's save_torch_state_dict writes. ckptio's sharded op is the reference;
# its single-file op and safetensors' own single-file call show what the shards cost.
SHARDED_LOAD_PEERS = ["ckptio load (one .safetensors)", "safetensors load_file(backend='pread')",
                      "transformers shard load (backend='pread', its Windows/MPS path)",
                      "transformers shard load (disable_mmap, its hf-mount path)",
                      "load_file(backend='pread') per shard, merged"]
SHARDED_LAZY_PEERS = ["ckptio load (zero_copy, one .safetensors)", "safetensors load_file (mmap)",
                      "transformers shard load (mmap, its Linux path)",
                      "load_file (mmap) per shard, merged"]
SHARDED_SAVE_PEERS = ["ckptio save (one .safetensors)", "safetensors save_file",
                      "transformers save_pretrained(max_shard_size)",
                      "huggingface_hub save_torch_state_dict(max_shard_size)"]

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
    Workload("sharded_load", "Copy load of the bf16 model as 4 Hugging Face shards and as one "
             ".safetensors file (page cache warm)",
             "bf16", "load_sharded", "ckptio load (shards)", peers=SHARDED_LOAD_PEERS),
    Workload("sharded_lazy", "Zero-copy load of the bf16 model as 4 Hugging Face shards and as "
             "one .safetensors file (tensors alias mappings of the files)",
             "bf16", "lazy_sharded", "ckptio load (zero_copy, shards)", peers=SHARDED_LAZY_PEERS),
    Workload("sharded_save", "Save the bf16 tensors as 4 Hugging Face shards and as one "
             ".safetensors file (page cache, no fsync)",
             "bf16", "save_sharded", "ckptio save (shards, max_shard_size)",
             peers=SHARDED_SAVE_PEERS),
]
