#!/bin/sh
# Installs ikegate, writes the bundled example (the seed guide's configuration with a
# generated demo PKI and users) to ./example, and runs the gateway on it in the foreground.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
[ -f example/ipsec.conf ] || .venv/bin/ikegate example --dir "$PWD/example"
exec .venv/bin/ikegate start --confdir "$PWD/example" --run-dir "$PWD/example/run" --foreground "$@"
