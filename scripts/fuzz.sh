#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan into build-fuzz/ and runs
# each for SECONDS (default 60). Fails on any finding: a crash, sanitizer report, leak,
# timeout (-timeout per input) or out-of-memory (-rss_limit_mb, -malloc_limit_mb).
#
#   scripts/fuzz.sh                  every target, 60 s each
#   scripts/fuzz.sh 3600             a longer run (an hour each)
#   scripts/fuzz.sh 600 fuzz_unpickle   one target
#
# Seeds are generated into build-fuzz/seeds/ (fuzz/make_seeds.py); what the fuzzers find
# accumulates in build-fuzz/corpus/ across runs; a finding is written to
# build-fuzz/artifacts/<target>/ and can be replayed with `build-fuzz/fuzz/<target> FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
scripts/setup.sh
jobs="${CKPTIO_JOBS:-$(nproc)}"
b=build-fuzz
CC=clang CXX=clang++ cmake -S fuzz -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$b" -j "$jobs" --target fuzz_all

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_unpickle fuzz_zip_reader fuzz_torch_zip fuzz_torch_legacy fuzz_zstd_stream
           fuzz_chunked_zstd fuzz_torchscript fuzz_safetensors fuzz_hf_index
           fuzz_dcp_metadata fuzz_plugins)
fi
rm -rf "$b/seeds"
/usr/bin/python3 fuzz/make_seeds.py . "$b/seeds" "$b/bin/ckptio" >/dev/null

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:handle_abort=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$b/corpus/$t" "$b/artifacts/$t"
  echo "fuzz: $t for ${seconds}s" >&2
  if ! "$b/fuzz/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2560 -malloc_limit_mb=1024 -print_final_stats=1 \
      -artifact_prefix="$b/artifacts/$t/" "$b/corpus/$t" "$b/seeds/$t" \
      >"$b/artifacts/$t/log.txt" 2>&1; then
    echo "fuzz: $t FAILED; log: $b/artifacts/$t/log.txt" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$b/artifacts/$t/log.txt" | head -20 >&2 || true
    failed+=("$t")
  else
    grep -E "^stat::number_of_executed_units|^Done" "$b/artifacts/$t/log.txt" | tr '\n' ' ' >&2
    echo >&2
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings (${#targets[@]} targets, ${seconds}s each)" >&2
