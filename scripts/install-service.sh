#!/bin/sh
# Install ikegate as a systemd service: the project's ikegate (in .venv, made by
# scripts/install.sh) linked to /usr/local/bin, the unit in /etc/systemd/system.
# Then: systemctl enable --now ikegate
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/ikegate ] || ./scripts/install.sh
ln -sf "$(pwd)/.venv/bin/ikegate" /usr/local/bin/ikegate
install -m 0644 contrib/systemd/ikegate.service /etc/systemd/system/ikegate.service
install -d /usr/local/share/doc/ikegate && install -m 0644 README.md /usr/local/share/doc/ikegate/README.md
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "installed: systemctl enable --now ikegate (configuration in /etc/ipsec.conf, /etc/ipsec.secrets)"
else
    echo "installed the unit; systemd is not running here, start it with: ikegate start --confdir /etc"
fi
