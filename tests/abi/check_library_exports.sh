#!/usr/bin/env bash
# check_library_exports.sh LIB SYMBOL --internal ARCHIVE...
#
# The public libraries (libckptio, libckptio_torch, libckptio_cuda) export what their
# installed headers mark CKPTIO_API and nothing else. LIB must export SYMBOL (a demangled
# name prefix, so that the check sees the API at all), no symbol of the host's internal
# namespaces, and no strong symbol that an internal archive defines (the codecs, the host's
# internal libraries): those are linked in privately. The value core's own objects
# (status, dtype, value), which libckptio compiles and exports itself, are not archived.
set -euo pipefail
lib=$1 want=$2
shift 2
[[ ${1:-} == --internal ]] && shift
[[ -f $lib ]] || { echo "FAILED: $lib does not exist"; exit 1; }
exports=$(nm -D --defined-only "$lib" | awk '{print $3}')
demangled=$(c++filt <<<"$exports")
grep -qF -- "$want" <<<"$demangled" || { echo "FAILED: $lib does not export $want"; exit 1; }

bad=0
leaked=$(grep -E '^ckptio::(host|torch_adapter|optim_codec|pickle_detail|detail_internal)::|\(anonymous namespace\)' <<<"$demangled" || true)
if [[ -n $leaked ]]; then
  echo "FAILED: $lib exports internal symbols:"; head -20 <<<"$leaked"; bad=1
fi
for archive in "$@"; do
  [[ -f $archive ]] || { echo "FAILED: $archive does not exist"; exit 1; }
  # Strong definitions only: weak template instantiations are emitted wherever they are used.
  internal=$(nm -g --defined-only "$archive" 2>/dev/null | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u)
  hits=$(comm -12 <(sort -u <<<"$exports") <(cat <<<"$internal"))
  if [[ -n $hits ]]; then
    echo "FAILED: $lib exports symbols of the internal archive $archive:"
    c++filt <<<"$hits" | head -20; bad=1
  fi
done
(( bad == 0 )) && echo "ok  $lib exports $(wc -l <<<"$exports") symbols, none internal"
exit $bad
