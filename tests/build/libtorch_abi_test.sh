#!/usr/bin/env bash
# The configure-time C++ ABI check (cmake/CkptioLibTorch.cmake) against the LibTorch this
# build uses: configuring with the compiler's default ABI succeeds, and forcing the other
# one (-D_GLIBCXX_USE_CXX11_ABI=<not the LibTorch's>) fails with the one-line reason, before
# any link could fail on std::string symbols.
#   libtorch_abi_test.sh SOURCE_DIR WORK_DIR CKPTIO_LIBTORCH CKPTIO_PYTHON ABI_OF_LIBTORCH
set -euo pipefail
src=$1 work=$2 libtorch=$3 python=$4 abi=$5
other=$((1 - abi))
rm -rf "$work" && mkdir -p "$work"
configure() {
  cmake -S "$src/tests/build/libtorch_abi" -B "$work/$1" -DCKPTIO_SOURCE_DIR="$src" \
    -DCKPTIO_LIBTORCH="$libtorch" -DCKPTIO_PYTHON="$python" -DCMAKE_CXX_FLAGS="$2" >"$work/$1.log" 2>&1
}
configure same "" || { cat "$work/same.log"; echo "FAIL: the matching ABI was refused"; exit 1; }
grep -q "LibTorch .* at " "$work/same.log" || { echo "FAIL: no LibTorch found"; exit 1; }
if configure other "-D_GLIBCXX_USE_CXX11_ABI=$other"; then
  cat "$work/other.log"; echo "FAIL: _GLIBCXX_USE_CXX11_ABI=$other was accepted"; exit 1
fi
# CMake wraps its messages: compare with the line breaks as spaces.
tr -s ' \n' ' ' <"$work/other.log" |
  grep -q "built with _GLIBCXX_USE_CXX11_ABI=$abi, but this compiler" ||
  { cat "$work/other.log"; echo "FAIL: refused without the reason"; exit 1; }
echo "ok: ABI $abi accepted, $other refused with the reason"
