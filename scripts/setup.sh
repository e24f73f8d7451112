#!/usr/bin/env bash
# Installs what ckptio needs to build and test on Debian 12 (also 13), skipping what is
# already there. Idempotent and quick when nothing is missing. Needs root (or sudo) only to
# install Debian's packages.
#   1. Debian's packages: compilers, libraries, and LibTorch + PyTorch 1.13 (the second
#      configuration: CKPTIO_LIBTORCH=system builds against it, /usr/bin/python3 runs it).
#   2. .venv in the repository, made from Python 3.11 (CKPTIO_VENV_PYTHON to choose another),
#      holding requirements.txt: torch 2.13 (whose LibTorch the default build uses), the
#      interop peers and the benchmark peers. Where no torch 2.13 wheel lies on the machine,
#      pip fetches PyPI's, a CUDA build of several GB.
set -euo pipefail
cd "$(dirname "$0")/.."

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
  python3-venv          # .venv (below) from Debian's own Python 3.11
  clang "$clang_rt" llvm  # libFuzzer targets with ASan/UBSan (scripts/fuzz.sh)
  shellcheck            # tests: bench/gpu/run.sh is checked without a GPU
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The virtual environment. A stamp of requirements.txt makes a second run a no-op.
venv_python=${CKPTIO_VENV_PYTHON:-$(command -v python3.11 || command -v python3)}
stamp=.venv/.ckptio-requirements
want="$("$venv_python" -c 'import sys; print(sys.version.split()[0])') $(sha256sum requirements.txt | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: making .venv from $venv_python and installing requirements.txt" >&2
rm -rf .venv
"$venv_python" -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt
echo "$want" >"$stamp"
