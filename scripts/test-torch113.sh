#!/usr/bin/env bash
# The second configuration: builds against Debian's LibTorch 1.13 (CKPTIO_LIBTORCH=system)
# into build-torch113/ and runs the suites where the torch version matters against Debian's
# Python torch 1.13 (/usr/bin/python3): file interop both ways (compressed formats too), bad
# input and peer files, the LibTorch adapter, optimizer resume and TorchScript. The main suite (scripts/test.sh)
# runs the same tests against 2.13; this keeps 1.13 from breaking silently. Everything else
# that includes LibTorch (examples, benchmarks, the CUDA bridge where a toolkit is found) is
# built too, so it keeps compiling against 1.13.
#
#   scripts/test-torch113.sh            configure, build, run those suites
#   scripts/test-torch113.sh -R regex   extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-torch113 -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCKPTIO_LIBTORCH=system -DCKPTIO_TEST_PYTHON=/usr/bin/python3 \
  -DCKPTIO_WERROR="$([ "${CKPTIO_WERROR:-0}" = 1 ] && echo ON || echo OFF)" >/dev/null
cmake --build build-torch113 -j "${CKPTIO_JOBS:-$(nproc)}"
# Those suites' tests carry the label torch-version (tests/CMakeLists.txt).
ctest --test-dir build-torch113 --output-on-failure -j "${CKPTIO_JOBS:-$(nproc)}" -L torch-version "$@"
