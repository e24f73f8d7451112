#!/usr/bin/env bash
# check_exports.sh [DIR_OR_SO...] [--no-unique SO...]
#
# Plugins (.so files, or ckptio-*.so in a directory) must define exactly one dynamic symbol
# besides the linker's own (_init, _fini, __bss_start, _edata, _end): the function
# ckptio_plugin_entry. Anything else leaks the plugin's C++ into the process's symbol space.
# Files after --no-unique must have no GNU_UNIQUE symbols (built with -fno-gnu-unique).
set -euo pipefail
bad=0 n=0 mode=exports
check() {
  local f=$1
  n=$((n + 1))
  [[ -f $f ]] || { echo "FAILED: $f does not exist"; bad=1; return; }
  if [[ $mode == exports ]]; then
    local syms
    syms=$(nm -D --defined-only "$f" |
           awk '$3 !~ /^(_init|_fini|__bss_start|_edata|_end)$/ {print $2, $3}')
    if [[ $syms != "T ckptio_plugin_entry" ]]; then
      echo "FAILED: $f exports more than the function ckptio_plugin_entry:"; echo "$syms"
      bad=1; return
    fi
  elif readelf -sW "$f" | grep -q ' UNIQUE '; then
    echo "FAILED: $f has GNU_UNIQUE symbols"; bad=1; return
  fi
  echo "ok ($mode)  $f"
}
for a in "$@"; do
  if [[ $a == --no-unique ]]; then mode=unique; continue; fi
  if [[ -d $a ]]; then
    for f in "$a"/ckptio-*.so; do check "$f"; done
  else
    check "$a"
  fi
done
(( n > 0 )) || { echo "FAILED: no plugins to check"; exit 1; }
exit $bad
