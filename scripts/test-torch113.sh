#!/usr/bin/env bash
# The second configuration: builds against Debian's LibTorch 1.13 (CKPTIO_LIBTORCH=system)
# into build-torch113/ and runs the suites where the torch version matters against Debian's
# Python torch 1.13 (/usr/bin/python3): file interop both ways, bad input and peer files,
# the LibTorch adapter, optimizer resume and TorchScript. The main suite (scripts/test.sh)
# runs the same tests against 2.13; this keeps 1.13 from breaking silently.
#
#   scripts/test-torch113.sh            configure, build those suites, run them
#   scripts/test-torch113.sh -R regex   extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
suites=(interop_test peer_fixtures_test bad_input_test torch_adapter_test torch_optim_test
  torchscript_script_test torchscript_codec_test formats_test)
cmake -S . -B build-torch113 -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCKPTIO_LIBTORCH=system -DCKPTIO_TEST_PYTHON=/usr/bin/python3 \
  -DCKPTIO_WITH_CUDA=OFF -DCKPTIO_BUILD_BENCH=OFF \
  -DCKPTIO_WERROR="$([ "${CKPTIO_WERROR:-0}" = 1 ] && echo ON || echo OFF)" >/dev/null
cmake --build build-torch113 -j "${CKPTIO_JOBS:-$(nproc)}" --target "${suites[@]}"
# Their tests carry the label torch-version (tests/CMakeLists.txt).
ctest --test-dir build-torch113 --output-on-failure -j "${CKPTIO_JOBS:-$(nproc)}" -L torch-version "$@"
