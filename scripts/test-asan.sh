#!/usr/bin/env bash
# Builds ckptio with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/ and
# runs the test suite there. LibTorch is left out (CKPTIO_WITH_TORCH=OFF): it is not
# instrumented and would double a long build; everything else (codecs, plugins, host, CLI,
# interop against the real Python torch through the CLI) runs instrumented.
#
#   scripts/test-asan.sh            configure, build, run every test
#   scripts/test-asan.sh -R regex   extra arguments go to ctest
#
# Any sanitizer report fails the test that triggered it (halt_on_error, exitcode 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs="${CKPTIO_JOBS:-$(nproc)}"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCKPTIO_WITH_TORCH=OFF -DCKPTIO_WITH_CUDA=OFF -DCKPTIO_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1 $san" -DCMAKE_C_FLAGS="-O1 $san" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" \
  -DCMAKE_MODULE_LINKER_FLAGS="$san" >/dev/null
cmake --build build-asan -j "$jobs"

# Plugins are dlopen'ed from a process whose main binary already carries the ASan runtime.
# detect_leaks: a leak is a finding. The installed-SDK test builds uninstrumented consumers
# against the instrumented library, which cannot link: it runs in the main suite only.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^abi_installed_sdk$' "$@"
