#!/usr/bin/env bash
# Builds ckptio and runs the whole test suite (unit, plugin/ABI, CLI, interop against the
# real Python torch at /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
