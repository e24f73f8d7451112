#!/usr/bin/env bash
# Installs what ckptio needs to build and test on Debian 12 (also 13), skipping what is
# already there. Idempotent and quick when nothing is missing. Needs root (or sudo) only to
# install.
set -euo pipefail

# clang's sanitizer and libFuzzer runtime comes versioned with the distribution's clang.
# shellcheck disable=SC1091
VERSION_ID=$( . /etc/os-release && echo "${VERSION_ID:-}")
case "$VERSION_ID" in
  13) clang_rt=libclang-rt-19-dev ;;
  *) clang_rt=libclang-rt-14-dev ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev          # LibTorch (1.13; 2.6 on Debian 13): the torch adapter, tensor tests
  libboost-dev          # Boost.DLL (header-only) loads the plugins
  libzstd-dev zstd      # compressed formats
  libarchive-tools      # bsdtar: an independent zip reader for method-93 records in tests
  time                  # GNU time: peak memory of a streamed load in tests
  libdeflate-dev        # fast CRC32 and raw inflate for zip records
  libssl-dev            # SHA-256 of tensors in inspect --json
  libcli11-dev          # the ckptio command line
  nlohmann-json3-dev    # JSON output
  googletest libgtest-dev libgmock-dev  # unit and interop tests
  libbenchmark-dev      # benchmarks
  python3-torch         # real PyTorch (same version) for interop tests and benchmarks
  python3-matplotlib    # the benchmark chart
  clang "$clang_rt" llvm  # libFuzzer targets with ASan/UBSan (scripts/fuzz.sh)
  shellcheck            # tests: bench/gpu/run.sh is checked without a GPU
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
