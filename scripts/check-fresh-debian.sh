#!/usr/bin/env bash
# Runs the README's Quick start (scripts/demo.sh, then scripts/test.sh) in a fresh, minimal
# Debian 12 made with debootstrap, from a clone of this repository's HEAD. A development
# machine accumulates packages; this shows that setup.sh installs everything the two commands
# need. As root, with Debian's mirror reachable; about 10 minutes on 2 cores, 5 GB of disk.
#   scripts/check-fresh-debian.sh [DIR]   (DIR: the chroot, default /tmp/ckptio-fresh-debian;
#                                          removed first, kept afterwards for inspection)
# CKPTIO_DEBIAN_SUITE=trixie does the same in Debian 13, whose LibTorch and PyTorch are 2.6:
# the whole suite against a torch 2.x without a GPU host (about 25 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${CKPTIO_DEBIAN_SUITE:-bookworm}
root=${1:-/tmp/ckptio-fresh-debian}
mirror=${CKPTIO_DEBIAN_MIRROR:-http://deb.debian.org/debian}

mounts=(proc sys dev dev/pts)
unmount() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    if mountpoint -q "$root/${mounts[i]}"; then umount "$root/${mounts[i]}"; fi
  done
}
trap unmount EXIT

command -v debootstrap >/dev/null || apt-get install -y debootstrap >/dev/null
if [ -e "$root" ]; then
  unmount
  rm -rf --one-file-system "$root"
fi
echo "== debootstrap $suite into $root"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
  { tail -20 "$root.debootstrap.log"; exit 1; }
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
cp /etc/resolv.conf "$root/etc/"
# Where this machine reaches PyPI through a TLS-inspecting proxy, its CA bundle (from the
# host's PIP_CERT, or the system bundle) goes into the chroot for pip; a user's own fresh
# machine needs none of this.
pip_cert=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
pip_cert_env=
if [ -f "$pip_cert" ]; then
  cp "$pip_cert" "$root/etc/ckptio-host-ca.crt"
  pip_cert_env=PIP_CERT=/etc/ckptio-host-ca.crt
fi
for m in "${mounts[@]}"; do mount --bind "/$m" "$root/$m"; done
git clone -q . "$root/root/ckptio"

in_chroot() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${pip_cert_env:+"$pip_cert_env"} \
    bash -c "cd /root/ckptio && $1"
}
echo "== ./scripts/demo.sh (log: $root.demo.log)"
in_chroot ./scripts/demo.sh >"$root.demo.log" 2>&1 || { tail -30 "$root.demo.log"; exit 1; }
tail -3 "$root.demo.log"
echo "== ./scripts/test.sh (log: $root.test.log)"
in_chroot ./scripts/test.sh >"$root.test.log" 2>&1 || { tail -30 "$root.test.log"; exit 1; }
grep -E "tests passed|tests failed" "$root.test.log"
echo "== the Quick start works on a fresh Debian $suite"
