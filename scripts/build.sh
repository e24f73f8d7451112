#!/usr/bin/env bash
# Configures and builds ckptio into build/ (Release with debug info, Ninja). CKPTIO_WERROR=1
# (set by CI) makes compiler warnings errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCKPTIO_WERROR="$([ "${CKPTIO_WERROR:-0}" = 1 ] && echo ON || echo OFF)" "$@" >/dev/null
cmake --build build -j "$(nproc)"
