#!/usr/bin/env bash
# Builds ckptio against LibTorch 2.13 (the torch wheel in .venv, made by setup.sh) and runs
# the whole test suite (unit, plugin/ABI, CLI, LibTorch adapter, optimizers, TorchScript,
# interop against the venv's real Python torch 2.13). scripts/test-torch113.sh does the
# same for the torch-version suites against Debian's LibTorch and PyTorch 1.13.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
