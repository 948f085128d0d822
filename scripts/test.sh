#!/bin/sh
# Installs everything the tests need, then runs the whole suite (as root: the
# end-to-end tests build network namespaces and run real strongSwan clients).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
exec .venv/bin/python -m pytest "$@"
