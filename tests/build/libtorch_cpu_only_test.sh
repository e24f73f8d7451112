#!/usr/bin/env bash
# The CPU-libraries-only LibTorch (cmake/CkptioLibTorch.cmake, CKPTIO_LIBTORCH_CPU_ONLY), the
# path a CUDA torch wheel takes on a machine without a CUDA toolkit: forced on this build's
# wheel, a LibTorch program configures, builds and runs, and links libtorch_cpu and libc10
# but neither libtorch nor anything CUDA.
#   libtorch_cpu_only_test.sh SOURCE_DIR WORK_DIR CKPTIO_PYTHON
set -euo pipefail
src=$1 work=$2 python=$3
rm -rf "$work" && mkdir -p "$work"
cmake -S "$src/tests/build/libtorch_cpu_only" -B "$work" -G Ninja -DCKPTIO_SOURCE_DIR="$src" \
  -DCKPTIO_LIBTORCH=wheel -DCKPTIO_PYTHON="$python" -DCKPTIO_LIBTORCH_CPU_ONLY=ON \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; echo "FAIL: configure"; exit 1; }
grep -q "(wheel, CPU libraries only) at " "$work/configure.log" ||
  { cat "$work/configure.log"; echo "FAIL: the CPU-only path was not taken"; exit 1; }
cmake --build "$work" >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "FAIL: build"; exit 1; }
needed=$(readelf -d "$work/cpu_only_probe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in libtorch_cpu.so libc10.so; do
  grep -qx "$lib" <<<"$needed" || { echo "FAIL: $lib not linked: $needed"; exit 1; }
done
if grep -E '^libtorch\.so$|cuda' <<<"$needed"; then echo "FAIL: links more than the CPU libraries"; exit 1; fi
out=$("$work/cpu_only_probe")
[ "$out" = "sum=15 equal=1" ] || { echo "FAIL: the program printed '$out'"; exit 1; }
echo "ok: built and ran against $(grep -o 'LibTorch [^ ]*' "$work/configure.log" | head -1), CPU libraries only"
