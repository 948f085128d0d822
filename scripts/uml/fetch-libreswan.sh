#!/bin/sh
# Unpacks Debian's libreswan into a private tree for the user-mode Linux interop tests
# (tests/interop/uml.py links it into a guest's /usr and /etc overlays).
#
# libreswan conflicts with strongSwan's packages (charon, starter), which the tests
# need on the host, so it is never installed: `apt-get download` + `dpkg-deb -x`.
# Its shared libraries come from ordinary packages that scripts/install.sh installs
# (libnss3-tools libevent-pthreads-2.1-7 libldns3 libunbound8 libcurl3-nss ...);
# this script checks that pluto finds them all.
#
# Usage (as root): sh scripts/uml/fetch-libreswan.sh [DEST]
#   DEST defaults to $IKEGATE_LIBRESWAN_ROOT or /opt/ikegate-interop/libreswan.
set -eu
dest=${1:-${IKEGATE_LIBRESWAN_ROOT:-/opt/ikegate-interop/libreswan}}

if [ ! -x "$dest/usr/libexec/ipsec/pluto" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # apt's download sandbox user must be able to write there
    chmod 755 "$tmp"
    chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download -q libreswan)
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest.new"
    dpkg-deb -x "$tmp"/libreswan_*.deb "$dest.new"
    rm -rf "$dest"
    mv "$dest.new" "$dest"
fi

missing=$(ldd "$dest/usr/libexec/ipsec/pluto" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
    echo "libreswan in $dest: libraries not installed: $missing" >&2
    exit 1
fi
echo "libreswan $(sed -n 's/^export IPSEC_VERSION="\(.*\)"/\1/p' "$dest/usr/sbin/ipsec") in $dest"
