#!/usr/bin/env bash
# GPU benchmark and tests, on a CUDA host, in one go (about 5-8 minutes with 16 cores):
#   1. builds the GPU targets against the host's CUDA toolkit and its Python's LibTorch;
#   2. runs the GPU tests (cuda_pipeline_test, cuda_test, torch_cuda_test, and host_test's
#      command-line tests, which load to cuda:0 where a device is present);
#   3. makes ~2 GiB checkpoints with the host's torch (torch-zip and torch-legacy; also
#      torch-zip-zstd with GPU_BENCH_ZSTD=1);
#   4. runs bench/gpu/gpu_bench (cudaMemcpy pinned and pageable bandwidth, ckptio load to and
#      save from cuda:0, load_state_dict into a model on cuda:0) and Python's torch.load and
#      torch.save to and from cuda:0 (and into a model there) on the same files;
#   5. writes bench/results/gpu.md;
#   6. while time is left, runs the interop suites (no LibTorch in them) with the host's
#      Python and PyTorch (2.x there, where CI's is Debian's 1.13): its torch.save files read
#      by ckptio, ckptio's files read by its torch.load, weights_only=True included; then,
#      where ckptio_torch built, the LibTorch suites (adapter, optimizer, TorchScript); the
#      results are appended to gpu.md.
#
#   bench/gpu/run.sh            (from the repository root or anywhere)
#
# When $OUT names a directory (the device runner's), gpu.md and the logs are copied there as
# soon as each is written, so a run cut short still returns what it finished.
#
# Build dependencies the GPU host lacks (Boost headers, zstd, GoogleTest, Google Benchmark,
# CLI11, nlohmann-json, libdeflate) come from a bundle made on a build machine with
#   ../shared/tools/gpu-bundle.sh .bundle .
# and carried along; this script sources $CKPTIO_BUNDLE/env.sh (default .bundle/env.sh).
# Environment: GPU_BENCH_GIB (default 2), GPU_BENCH_REPS (3), GPU_BENCH_ZSTD (0), JOBS (nproc),
# BUILD (build-gpu), PYTHON (python3), GPU_INTEROP_UNTIL_S (stage 6 starts no suite after
# this many seconds of the run; default 480, the device runner stops a call at 600).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
START=$(date +%s)
log() { echo "[gpu-bench +$(( $(date +%s) - START ))s] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

COPY_TO=${OUT:-}  # the device runner's result directory, if any
PYTHON=${PYTHON:-python3}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
GIB=${GPU_BENCH_GIB:-2}
REPS=${GPU_BENCH_REPS:-3}
DATA=$BUILD/gpu-bench-data
RESULTS=bench/results/gpu.md
INTEROP_UNTIL=${GPU_INTEROP_UNTIL_S:-480}
# Copies files to $COPY_TO when there is one.
keep() { [ -n "$COPY_TO" ] && [ -d "$COPY_TO" ] && cp -f "$@" "$COPY_TO"/ 2>/dev/null; return 0; }

BUNDLE=${CKPTIO_BUNDLE:-.bundle}
if [ -f "$BUNDLE/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$BUNDLE/env.sh"
  log "bundle: $BUNDLE"
else
  log "no $BUNDLE/env.sh: using the system's build dependencies"
fi

# ---- 1. build -------------------------------------------------------------------------------
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "no nvcc (CUDA toolkit) found"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_ROOT=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
TORCH_CMAKE=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)') \
  || die "$PYTHON cannot import torch"
PYTHON_PATH=$(command -v "$PYTHON") || die "no $PYTHON"
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)')
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch has no CUDA device"' \
  || die "Python torch sees no CUDA device"
GEN=Ninja; command -v ninja >/dev/null || GEN="Unix Makefiles"
# The interop suites of stage 6 link no LibTorch: they cost seconds here. (The compressed
# formats' round trips are left out: they need the zstd and bsdtar tools, which a host
# without a package registry may lack; their Python side is one torch.load.)
INTEROP_TESTS="interop_test peer_fixtures_test bad_input_test formats_test"
# After them, where ckptio_torch built: the LibTorch suites, with this LibTorch and this torch
# writing and reading their files (CI's pair is Debian's 1.13 for both).
TORCH_TESTS="torch_adapter_test torch_optim_test torchscript_script_test"
TARGETS="ckptio_cli torch-zip torch-legacy compressed torchscript cuda_pipeline_test cuda_test"
TARGETS+=" host_test gpu_bench $INTEROP_TESTS"
# configure_and_build DIR ON|OFF: ON builds against the host's LibTorch as well.
configure_and_build() {
  local dir=$1 with_torch=$2 targets=$TARGETS
  [ "$with_torch" = ON ] && targets+=" torch_cuda_test $TORCH_TESTS"
  log "configure $dir ($GEN; CUDA at $CUDA_ROOT; LibTorch $with_torch, from $TORCH_CMAKE)"
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -G "$GEN" -DCMAKE_BUILD_TYPE=Release \
    -DCKPTIO_LIBTORCH=wheel -DCKPTIO_PYTHON="$PYTHON_PATH" \
    ${CMAKE_PREFIX_PATH:+-DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH"} \
    -DCUDAToolkit_ROOT="$CUDA_ROOT" -DCMAKE_CUDA_COMPILER="$NVCC" \
    -DCKPTIO_WITH_CUDA=ON -DCKPTIO_WITH_TORCH="$with_torch" -DCKPTIO_TEST_PYTHON="$PYTHON_PATH" \
    ${BUNDLE_CMAKE_ARGS:-} >"$dir.configure.log" 2>&1 \
    || { tail -30 "$dir.configure.log" >&2; keep "$dir.configure.log"; return 1; }
  grep -q "GPU data path on" "$dir.configure.log" || die "CMake did not find the CUDA toolkit"
  log "build $dir ($JOBS jobs): $targets"
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$JOBS" --target $targets >"$dir.build.log" 2>&1 \
    || { grep -E "error|Error" "$dir.build.log" | head -30 >&2; keep "$dir.build.log"; return 1; }
}
# ckptio_torch has been built against the CPU LibTorch 1.13 and 2.6 of Debian 12 and 13 (and
# compiled against 2.14's headers), never a CUDA one. If it does not build against this
# host's LibTorch, the run goes on without it (no torch_cuda_test, no LibTorch columns in
# gpu_bench) rather than measuring nothing; gpu.md says so.
BUILD_NOTE=""
WITH_TORCH=ON
if ! configure_and_build "$BUILD" ON; then
  BUILD_NOTE="Building against LibTorch $TORCH_VERSION FAILED (log: $BUILD.configure.log, $BUILD.build.log); this run is without LibTorch."
  log "$BUILD_NOTE"
  BUILD=$BUILD-notorch
  WITH_TORCH=OFF
  configure_and_build "$BUILD" OFF || die "build without LibTorch too (log: $BUILD.build.log)"
fi
BIN=$BUILD/bin

# ---- 2. tests -------------------------------------------------------------------------------
TESTS_MD=""
# binary[:gtest filter]; host_test's Cli tests include `ckptio bench --device cuda:0`.
SPECS=(cuda_pipeline_test cuda_test 'host_test:Cli.*')
[ "$WITH_TORCH" = ON ] && SPECS+=(torch_cuda_test)
for spec in "${SPECS[@]}"; do
  t=${spec%%:*}
  filter='*'; [ "$spec" != "$t" ] && filter=${spec#*:}
  log "test: $t ($filter)"
  if "$BIN/$t" --gtest_brief=1 --gtest_filter="$filter" >"$BUILD/$t.log" 2>&1; then
    status=passed
  else
    status=FAILED
  fi
  summary=$(grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$BUILD/$t.log" | tr '\n' ' ')
  log "$t: $status; $summary"
  [ "$status" = FAILED ] && grep -E "Failure|FAILED|error" "$BUILD/$t.log" | head -20 >&2
  TESTS_MD+="- \`$t\`: $status ($summary)"$'\n'
  keep "$BUILD/$t.log"
done

# ---- 3. files -------------------------------------------------------------------------------
mkdir -p "$DATA"
log "make ~${GIB} GiB checkpoints with $("$PYTHON" -c 'import torch; print("torch", torch.__version__)')"
"$PYTHON" - "$DATA" "$GIB" <<'PY' || die "making checkpoints"
import collections, os, sys, torch
out, gib = sys.argv[1], float(sys.argv[2])
target = int(gib * (1 << 30))
d, vocab = 2048, 32000
g = torch.Generator(device="cuda").manual_seed(0)
def randn(*shape):  # on the GPU: seconds instead of a minute for 2 GiB
    return (torch.randn(*shape, generator=g, device="cuda") * 0.02).cpu()
sd = collections.OrderedDict()
sd["embed.weight"] = randn(vocab, d)
used, layer = vocab * d * 4, 0
per_layer = (12 * d * d + 4 * d) * 4
while used + per_layer <= target:
    p = f"layers.{layer}."
    for n in ("q", "k", "v", "o"):
        sd[p + f"attn.{n}.weight"] = randn(d, d)
    sd[p + "mlp.up.weight"] = randn(4 * d, d)
    sd[p + "mlp.down.weight"] = randn(d, 4 * d)
    for n in ("ln1", "ln2"):
        sd[p + n + ".weight"] = torch.ones(d)
        sd[p + n + ".bias"] = torch.zeros(d)
    used += per_layer
    layer += 1
for name, legacy in (("zip.pt", False), ("legacy.pt", True)):
    path = os.path.join(out, name)
    if os.path.exists(path) and abs(os.path.getsize(path) - used) < (64 << 20):
        continue
    torch.save(sd, path + ".tmp", _use_new_zipfile_serialization=not legacy)
    os.replace(path + ".tmp", path)
print(f"{layer} layers, {used / 2**30:.2f} GiB of tensors", file=sys.stderr)
PY
FILES=("torch-zip=$DATA/zip.pt" "torch-legacy=$DATA/legacy.pt")
if [ "${GPU_BENCH_ZSTD:-0}" = 1 ]; then
  [ -f "$DATA/zstd.pt" ] || "$BIN/ckptio" convert --format torch-zip-zstd "$DATA/zip.pt" "$DATA/zstd.pt" \
    || die "converting to torch-zip-zstd"
  FILES+=("torch-zip-zstd=$DATA/zstd.pt")
fi
for f in "${FILES[@]}"; do cat "${f#*=}" >/dev/null; done  # into the page cache

# ---- 4. benchmarks --------------------------------------------------------------------------
mkdir -p bench/results
log "gpu_bench (${REPS} runs each)"
"$BIN/gpu_bench" --reps "$REPS" --out "$BUILD/gpu_bench.md" --tmp "$DATA" "${FILES[@]}" \
  >"$BUILD/gpu_bench.out" 2>"$BUILD/gpu_bench.err" \
  || { cat "$BUILD/gpu_bench.err"; die "gpu_bench"; }
cat "$BUILD/gpu_bench.err" >&2
RATIO=$(awk '$1 == "RATIO" && $2 == "torch-zip" {print $3}' "$BUILD/gpu_bench.out")
log "ckptio bench --device cuda:0 (the command line's quick check)"
CLI_JSON=$("$BIN/ckptio" bench "$DATA/zip.pt" --device cuda:0 --repeat "$REPS" --json 2>&1) \
  || log "ckptio bench --device cuda:0 failed: $CLI_JSON"

log "Python torch.load / torch.save to and from cuda:0"
PEER=$("$PYTHON" - "$REPS" "$DATA" "${FILES[@]}" <<'PY'
import os, sys, time, torch
reps, data, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
rows = []
for spec in files:
    name, path = spec.split("=", 1)
    if name.endswith("zstd"):
        continue  # not a torch format
    def best(fn):
        fn(); t = 1e30
        for _ in range(reps):
            t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); t = min(t, time.perf_counter() - t0)
        return t
    box = {}
    def load():
        box.clear()
        box["sd"] = torch.load(path, map_location="cuda:0", weights_only=True)
    tl = best(load)
    nbytes = sum(t.untyped_storage().nbytes() for t in box["sd"].values())
    # An existing model on cuda:0: what model.load_state_dict(torch.load(...)) moves.
    model = {k: v.clone() for k, v in box["sd"].items()}
    def into_model():
        sd = torch.load(path, map_location="cuda:0", weights_only=True)
        with torch.no_grad():
            for k, v in sd.items():
                model[k].copy_(v)
    tm = best(into_model)
    del model
    out = os.path.join(data, "peer_save.pt")
    ts = best(lambda: torch.save(box["sd"], out, _use_new_zipfile_serialization=not name.endswith("legacy")))
    os.remove(out)
    rows.append(f"| {name} | {nbytes / tl / 1e9:.2f} | {nbytes / tm / 1e9:.2f} | {nbytes / ts / 1e9:.2f} |")
print("\n".join(rows))
PY
) || { log "Python peer failed (table left out)"; PEER=""; }

# ---- 5. results -----------------------------------------------------------------------------
{
  echo "# GPU results"
  echo
  echo "Made by \`bench/gpu/run.sh\` on $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "($(nproc) cores; $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)');" \
       "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo 'GPU ?'))."
  echo
  echo "## ckptio"
  echo
  cat "$BUILD/gpu_bench.md"
  echo
  if [ -n "$PEER" ]; then
    echo "## Python torch on the same files"
    echo
    echo "| file | torch.load(map_location=\"cuda:0\") GB/s | that + copy_ into a cuda:0 model GB/s | torch.save from cuda:0 GB/s |"
    echo "|---|---:|---:|---:|"
    echo "$PEER"
    echo
  fi
  echo "## \`ckptio bench zip.pt --device cuda:0 --repeat $REPS --json\`"
  echo
  echo "    $CLI_JSON"
  echo
  echo "## Target"
  echo
  if [ -n "$RATIO" ]; then
    verdict=$(awk -v r="$RATIO" 'BEGIN { print (r >= 0.8) ? "met" : "NOT met" }')
    echo "Loading torch-zip to cuda:0 at ${RATIO}x the pinned host-to-device bandwidth (target >= 0.8x): $verdict."
  else
    echo "No torch-zip ratio measured."
  fi
  echo
  echo "## GPU tests"
  echo
  [ -n "$BUILD_NOTE" ] && printf '%s\n\n' "$BUILD_NOTE"
  printf '%s' "$TESTS_MD"
} >"$RESULTS"
log "wrote $RESULTS"
keep "$RESULTS"

# ---- 6. interop with this host's PyTorch ------------------------------------------------------
INTEROP_MD=""
SUITES=$INTEROP_TESTS
[ "$WITH_TORCH" = ON ] && SUITES+=" $TORCH_TESTS"
for t in $SUITES; do
  left=$(( INTEROP_UNTIL + 60 - ($(date +%s) - START) ))
  if [ $(( $(date +%s) - START )) -ge "$INTEROP_UNTIL" ]; then
    INTEROP_MD+="- \`$t\`: not run (the run had used ${INTEROP_UNTIL} s)"$'\n'
    continue
  fi
  log "interop with torch $TORCH_VERSION: $t (up to ${left}s)"
  timeout "$left" "$BIN/$t" --gtest_brief=1 >"$BUILD/$t.log" 2>&1
  rc=$?
  # --gtest_brief prints each failure's name, and only the count of those that passed.
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\.$/\1/p' "$BUILD/$t.log")
  failed=$(grep -E "^\[  FAILED  \] [A-Za-z]" "$BUILD/$t.log" \
           | sed 's/^\[  FAILED  \] //; s/,.*//; s/ ([0-9]* ms)$//' | sort -u)
  nfailed=$(printf '%s' "$failed" | grep -c .)
  case $rc in 0) status=passed ;; 124) status="TIMED OUT" ;; *) status=FAILED ;; esac
  summary="${passed:-0} passed, $nfailed failed"
  log "$t: $status; $summary"
  INTEROP_MD+="- \`$t\`: $status ($summary)"
  [ "$nfailed" -gt 0 ] && INTEROP_MD+="; failed: $(printf '%s' "$failed" | head -12 | tr '\n' ' ')"
  INTEROP_MD+=$'\n'
  keep "$BUILD/$t.log"
done
{
  echo
  echo "## Interop with this host's PyTorch ($TORCH_VERSION)"
  echo
  echo "The interop suites run with \`-DCKPTIO_TEST_PYTHON=$PYTHON_PATH\` (CI runs them with"
  echo "Debian's torch 1.13): this torch's torch.save files read by ckptio, and ckptio's"
  echo "files read by this torch's torch.load, with weights_only=True wherever torch's own file"
  echo "loads so. Where ckptio_torch built, the LibTorch suites follow (this LibTorch against"
  echo "this torch). Logs: \`$BUILD/<suite>.log\`."
  echo
  printf '%s' "$INTEROP_MD"
} >>"$RESULTS"
keep "$RESULTS"
cat "$RESULTS"
