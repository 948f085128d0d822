#!/bin/sh
# Installs what ikegate and its tests need on Debian 12 (run as root):
# Debian packages (strongSwan as the reference client, iperf3, tshark, nftables; user-mode
# Linux, openiked and libreswan's libraries for the kernel-bound clients; FreeRADIUS with
# radclient and sqlite3 for the RADIUS tests), libreswan unpacked
# into a private folder (it conflicts with strongSwan's packages), and a virtual environment in
# .venv with ikegate and its test extras.
set -eu
cd "$(dirname "$0")/.."

PKGS="python3 python3-venv python3-pip iproute2 nftables iperf3 tshark
strongswan-charon strongswan-swanctl strongswan-starter strongswan-pki
libcharon-extra-plugins libcharon-extauth-plugins libstrongswan-extra-plugins
user-mode-linux openiked kmod libnss3-tools libnss3 libnspr4 libcurl3-nss libevent-core-2.1-7
libevent-pthreads-2.1-7 libldns3 libunbound8 libldap-2.5-0
freeradius freeradius-utils sqlite3"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
fi
# Debian starts charon, iked and radiusd from these packages; our tests run their own
# (FreeRADIUS with a generated configuration in a test namespace).
DAEMONS="strongswan-starter strongswan openiked freeradius"
if [ -d /run/systemd/system ]; then
    systemctl disable --now $DAEMONS 2>/dev/null || true
else  # no systemd (containers): stop the SysV scripts and remove their rc links
    for s in $DAEMONS; do
        [ -x "/etc/init.d/$s" ] || continue
        service "$s" stop >/dev/null 2>&1 || true
        update-rc.d "$s" disable >/dev/null 2>&1 || true
    done
fi
# libreswan 4.10 for the user-mode Linux interop tests (idempotent)
sh scripts/uml/fetch-libreswan.sh

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
