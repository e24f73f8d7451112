#!/usr/bin/env bash
# install_test.sh SOURCE_DIR BUILD_DIR WORK_DIR [CMAKE]
#
# Third-party plugin authoring, end to end, as a plugin author would do it:
#  1. `cmake --install` the build tree into a temporary prefix;
#  2. build sdk/examples/safetensors and tests/abi/consumer out of tree against that prefix
#     with find_package(ckptio) (nothing from the source tree but their own files);
#  3. the installed `ckptio` finds the plugin through CKPTIO_PLUGIN_PATH;
#  4. a real torch.save state_dict -> .safetensors -> torch-zip is bit-identical, an
#     independent strict reader accepts our .safetensors, torch.load agrees;
#  5. malformed .safetensors files each fail with exit 1 and one line naming the file;
#  6. the minimal plugin round-trips a vector as a file and two as a directory (ABI 2).
set -euo pipefail
src=$1 build=$2 work=$3 cmake=${4:-cmake}
# Real PyTorch: Debian's by default, not whatever python3 is on PATH (CTest passes its choice).
py=${CKPTIO_TEST_PYTHON:-/usr/bin/python3}
check=$src/tests/abi/safetensors_check.py

rm -rf "$work"
mkdir -p "$work/data"
prefix=$work/prefix
log=$work/log
step() { echo "== $*"; }
run_logged() {  # run a command, show its log only when it fails
  if ! "$@" >"$log" 2>&1; then cat "$log"; echo "FAILED: $*"; exit 1; fi
}

step "install into $prefix"
run_logged "$cmake" --install "$build" --prefix "$prefix"
for f in include/ckptio/plugin.h include/ckptio/plugin.hpp include/ckptio/ckptio.h \
         include/ckptio/formats/value.h lib/cmake/ckptio/ckptioConfig.cmake \
         lib/cmake/ckptio/CkptioPlugin.cmake lib/libckptio.so bin/ckptio \
         lib/ckptio/plugins/ckptio-torch-zip.so lib/ckptio/plugins/ckptio-torch-legacy.so; do
  [[ -e $prefix/$f ]] || { echo "FAILED: $prefix/$f was not installed"; exit 1; }
done

step "installed headers are self-contained: <prefix>/include is the only include path"
for h in "$prefix"/include/ckptio/*.h "$prefix"/include/ckptio/*.hpp "$prefix"/include/ckptio/formats/*.h; do
  rel=${h#"$prefix/include/"}
  case $rel in ckptio/torch.h | ckptio/script.h | ckptio/optim.h) continue ;; esac  # need LibTorch's
  echo "#include <$rel>" | run_logged c++ -std=c++17 -fsyntax-only -Wall -Werror -I"$prefix/include" -x c++ -
done

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
step "build sdk/examples/safetensors out of tree"
run_logged "$cmake" -S "$src/sdk/examples/safetensors" -B "$work/st" "${gen[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
run_logged "$cmake" --build "$work/st" -j 2
step "build sdk/examples/minimal (the README's walk-through) out of tree"
run_logged "$cmake" -S "$src/sdk/examples/minimal" -B "$work/minimal" "${gen[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
run_logged "$cmake" --build "$work/minimal" -j 2
step "build the libckptio consumer out of tree"
run_logged "$cmake" -S "$src/tests/abi/consumer" -B "$work/consumer" "${gen[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
run_logged "$cmake" --build "$work/consumer" -j 2

ck=$prefix/bin/ckptio
export CKPTIO_PLUGIN_PATH=$work/st:$work/minimal
# The plugin ABI of the installed header: what plugins built against it answer.
abi=$(sed -n 's/^#define CKPTIO_ABI_VERSION \([0-9]*\)u$/\1/p' "$prefix/include/ckptio/plugin.h")
[[ -n $abi ]] || { echo "FAILED: no CKPTIO_ABI_VERSION in the installed plugin.h"; exit 1; }
step "ckptio plugins"
"$ck" plugins | tee "$log"
grep -q "^  safetensors-example 0.1.0  (ABI $abi)  $work/st/ckptio-safetensors-example.so" "$log" ||
  { echo "FAILED: the safetensors example plugin is not listed"; exit 1; }
grep -q "^formats available:.* safetensors-example" "$log" || { echo "FAILED: no safetensors-example format"; exit 1; }
# The bundled plugin is installed too, and keeps its name beside the example's.
grep -q "^  safetensors 0.1.0  (ABI $abi)  $prefix/lib/ckptio/plugins/ckptio-safetensors.so" "$log" ||
  { echo "FAILED: the bundled safetensors plugin is not listed"; exit 1; }
grep -q "torch-zip" "$log" || { echo "FAILED: bundled plugins not found next to libckptio"; exit 1; }
grep -q "^  f32raw 1.0  (ABI 2)  $work/minimal/ckptio-f32raw.so" "$log" ||
  { echo "FAILED: the minimal plugin is not listed with ABI 2"; exit 1; }

d=$work/data
step "round trip a torch.save state_dict"
"$py" "$check" make "$d"
"$ck" convert "$d/model.pt" "$d/model.safetensors" --format safetensors-example
"$ck" inspect "$d/model.safetensors" --input-format safetensors-example
# Detection picks the bundled plugin (probe 90 against the example's 80); both read the
# example's file into the same tree.
[[ $("$ck" inspect --json "$d/model.safetensors" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["format"])') == safetensors ]] ||
  { echo "FAILED: model.safetensors not detected as safetensors"; exit 1; }
"$ck" inspect --json "$d/model.safetensors" --input-format safetensors-example --read-option metadata=1 >"$d/st_example.json"
"$ck" inspect --json "$d/model.safetensors" >"$d/st_bundled.json"
"$py" -c 'import json,sys; a,b=(json.load(open(f))["root"] for f in sys.argv[1:])
assert a == b, "the bundled plugin reads the example'"'"'s file differently"' "$d/st_example.json" "$d/st_bundled.json"
"$ck" convert "$d/model.safetensors" "$d/back.pt" --format torch-zip --input-format safetensors-example
"$ck" inspect --json "$d/model.pt" >"$d/model.json"
"$ck" inspect --json "$d/back.pt" >"$d/back.json"
"$py" "$check" same_json "$d/model.json" "$d/back.json"
"$py" "$check" check "$d/model.pt" "$d/model.safetensors"
"$py" "$check" same_torch "$d/model.pt" "$d/back.pt"
# safetensors -> safetensors is byte-identical (deterministic writer).
"$ck" convert "$d/model.safetensors" "$d/again.safetensors" --format safetensors-example \
  --input-format safetensors-example
cmp "$d/model.safetensors" "$d/again.safetensors"

step "metadata options; the plugin exports only its entry"
"$ck" convert "$d/model.pt" "$d/meta.safetensors" --format safetensors-example --option meta.note=hi
"$py" -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
assert json.loads(b[8:8+n])["__metadata__"] == {"format": "pt", "note": "hi"}' "$d/meta.safetensors"
if "$ck" convert "$d/model.pt" "$d/x.safetensors" --format safetensors-example --option level=3 2>"$log"; then
  echo "FAILED: an unknown option was accepted"; exit 1
fi
grep -q "unknown safetensors option 'level'" "$log" || { cat "$log"; exit 1; }
# Wrapped in the bundled zstd plugin: zstd's own options stay with it, the rest reach the
# (strict) safetensors writer, and `zstd -d` gives a safetensors file back.
"$ck" convert "$d/model.pt" "$d/model.safetensors.zst" --format zstd --option inner=safetensors-example \
  --option level=5 --option meta.note=zst
"$ck" convert "$d/model.safetensors.zst" "$d/back_zst.pt" --format torch-zip
"$py" "$check" same_torch "$d/model.pt" "$d/back_zst.pt"
zstd -q -d -f "$d/model.safetensors.zst" -o "$d/unzst.safetensors"
"$py" -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
assert json.loads(b[8:8+n])["__metadata__"] == {"format": "pt", "note": "zst"}' "$d/unzst.safetensors"
"$src/tests/abi/check_exports.sh" "$work/st/ckptio-safetensors-example.so"

step "libckptio consumer reads both"
"$work/consumer/consumer" "$d/model.pt" | head -1 | grep -qx "torch-zip 13 ok"  # the tied tensor is one node
"$work/consumer/consumer" "$d/model.safetensors" | head -1 | grep -qx "safetensors 14 ok"  # written twice
# The state_dict of a torch.save(model) file, through the installed API, without its classes.
"$work/consumer/consumer" --extract-state-dict "$d/whole_model.pt" >"$log"
grep -qx "torch-zip 4 ok" <(head -1 "$log") || { cat "$log"; echo "FAILED: extract_state_dict"; exit 1; }
grep -qxF "['0.weight'] float32 12" "$log" && grep -qxF "['2.bias'] float32 2" "$log" ||
  { cat "$log"; echo "FAILED: extract_state_dict keys"; exit 1; }

step "the minimal plugin round-trips a vector, and two as a directory"
"$ck" convert "$d/vector.pt" "$d/vector.f32" --format f32raw
"$ck" convert "$d/vector.f32" "$d/vector_back.pt" --format torch-zip
"$ck" inspect --json "$d/vector.pt" >"$d/vector.json"
"$ck" inspect --json "$d/vector_back.pt" >"$d/vector_back.json"
"$py" "$check" same_json "$d/vector.json" "$d/vector_back.json"
# Its directory form (ABI 2 members): one <key>.f32 per tensor; saving over the directory
# keeps a file beside them (config.json) and drops a stale .f32 the save does not write.
"$ck" convert "$d/vectors.pt" "$d/vectors" --format f32raw --option dir=1
[[ $(ls "$d/vectors") == $'a.f32\nb.f32' ]] || { ls -la "$d/vectors"; echo "FAILED: dir=1 members"; exit 1; }
echo '{}' >"$d/vectors/config.json"
cp "$d/vectors/a.f32" "$d/vectors/stale.f32"
"$ck" convert "$d/vectors.pt" "$d/vectors" --format f32raw --option dir=1
[[ $(ls "$d/vectors") == $'a.f32\nb.f32\nconfig.json' ]] ||
  { ls -la "$d/vectors"; echo "FAILED: saving over the directory"; exit 1; }
if ls -A "$d" | grep -q ckptio-tmp; then ls -la "$d"; echo "FAILED: a temporary is left"; exit 1; fi
"$ck" convert "$d/vectors" "$d/vectors_back.pt" --format torch-zip  # detected: probe_directory
"$ck" inspect --json "$d/vectors.pt" >"$d/vectors.json"
"$ck" inspect --json "$d/vectors_back.pt" >"$d/vectors_back.json"
"$py" "$check" same_json "$d/vectors.json" "$d/vectors_back.json"
"$src/tests/abi/check_exports.sh" "$work/minimal/ckptio-f32raw.so"

step "nested dicts flatten with '.'; non-tensor entries are refused by name"
"$ck" convert "$d/nested.pt" "$d/nested.safetensors" --format safetensors-example
"$ck" inspect "$d/nested.safetensors" --input-format safetensors-example | grep -q "'dec.b': tensor float32 \[1\]"
set +e
"$ck" convert "$d/general.pt" "$d/general.safetensors" --format safetensors-example 2>"$log"
rc=$?
set -e
cat "$log"
[[ $rc == 1 && $(wc -l <"$log") == 1 ]] && grep -q "'epoch' is an int, not a tensor" "$log" &&
  [[ ! -e $d/general.safetensors ]] || { echo "FAILED: general checkpoint not refused cleanly"; exit 1; }

step "malformed files"
bad=0
while IFS=$'\t' read -r name expect; do
  set +e
  "$ck" inspect "$d/$name" --input-format safetensors-example >/dev/null 2>"$log"
  rc=$?
  set -e
  msg=$(cat "$log")
  if [[ $rc != 1 || $(wc -l <"$log") != 1 || $msg != *"$d/$name"* || $msg != *"$expect"* ]]; then
    echo "FAILED: $name: exit $rc, wanted 1 and one line naming the file with '$expect': $msg"
    bad=1
  else
    echo "ok   $msg"
  fi
done < <("$py" "$check" malformed "$d")
[[ $bad == 0 ]]
# Detection: a truncated header is not claimed by the safetensors probe.
set +e
"$ck" inspect "$d/bad_hdr_past_end.safetensors" 2>"$log"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "not a checkpoint any loaded plugin reads" "$log" ||
  { cat "$log"; echo "FAILED: a broken header was detected as some format"; exit 1; }
echo "PASS"
