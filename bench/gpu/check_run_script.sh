#!/usr/bin/env bash
# check_run_script.sh BUILD_DIR: what can be checked of bench/gpu/run.sh without a GPU, so
# that a lent GPU host (minutes of device time) is not spent on a typo: the script parses,
# the shellcheck linter (where installed) finds nothing, and every target it builds exists in BUILD_DIR
# (a build with the CUDA toolkit, LibTorch and benchmarks, as run.sh configures).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: check_run_script.sh BUILD_DIR}
script=$here/run.sh

bash -n "$script"
if command -v shellcheck >/dev/null; then
  shellcheck "$script"
else
  echo "shellcheck not installed: syntax checked only"
fi

# The target lists, as run.sh assigns them (plain assignments, no expansions but their own).
# shellcheck disable=SC2034  # INTEROP_TESTS: read by the eval'd lines
INTEROP_TESTS="" TORCH_TESTS="" TARGETS=""
eval "$(grep -E '^(INTEROP_TESTS|TORCH_TESTS|TARGETS)\+?=' "$script")"
[ -n "$TARGETS" ] || { echo "no TARGETS in $script"; exit 1; }
known=$(cmake --build "$build" --target help 2>/dev/null)
missing=()
for t in $TARGETS torch_cuda_test $TORCH_TESTS; do
  grep -qE "(^|[ .:])$t(:| |$)" <<<"$known" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh builds targets that $build does not have: ${missing[*]}"
  exit 1
fi
echo "run.sh: syntax ok, $(wc -w <<<"$TARGETS torch_cuda_test $TORCH_TESTS") targets present in $build"
