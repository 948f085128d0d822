"""Running as a service: the shipped systemd unit is valid and its commands are ikegate's;
``--pidfile`` holds the daemon's pid while it runs; under systemd (``JOURNAL_STREAM``) the
log lines carry journald's priority prefix."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ikegate.cli import build_parser

from .gateway import wait_for
from .netns import Namespace, terminate

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "ikegate.service"


def unit_commands(text: str) -> dict[str, list[list[str]]]:
    commands: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("ExecStart", "ExecReload", "ExecStop"):
            commands.setdefault(key, []).append(shlex.split(value))
    return commands


def test_unit_commands_are_ikegate_commands():
    commands = unit_commands(UNIT.read_text())
    assert len(commands["ExecStart"]) == 1
    parser = build_parser()
    for argv in commands["ExecStart"] + commands["ExecReload"]:
        assert argv[0] == "/usr/local/bin/ikegate"
        args = parser.parse_args([a.replace("${IKEGATE_CONFDIR}", "/etc") for a in argv[1:]])
        assert args.run_dir == "/run/ikegate"
    start = parser.parse_args([a.replace("${IKEGATE_CONFDIR}", "/etc") for a in commands["ExecStart"][0][1:]])
    assert start.command == "start" and start.foreground and start.pidfile == "/run/ikegate/ikegate.pid"
    assert [c[1] for c in commands["ExecReload"]] == ["reload", "reload-secrets"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze(tmp_path):
    ikegate = Path(sys.executable).with_name("ikegate")
    assert ikegate.exists(), "the ikegate console script is installed next to the interpreter"
    unit = tmp_path / "ikegate.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/ikegate", str(ikegate)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ikegate.service" not in proc.stderr, proc.stderr  # no warning about our unit


def test_pidfile_and_journal_format(tmp_path):
    run_dir, pidfile, log = tmp_path / "run", tmp_path / "pid" / "ikegate.pid", tmp_path / "stderr"
    pidfile.parent.mkdir()
    from ikegate.pki.example import write_example

    confdir = write_example(tmp_path / "conf").directory
    with Namespace(role="svc") as ns, open(log, "wb") as out:
        env = dict(os.environ, JOURNAL_STREAM="8:12345")
        proc = ns.popen([sys.executable, "-m", "ikegate", "start", "--confdir", str(confdir), "--run-dir",
                         str(run_dir), "--pidfile", str(pidfile), "--foreground", "--dataplane", "none"],
                        stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            assert wait_for(lambda: pidfile.exists() or proc.poll() is not None, 20), log.read_text()
            assert int(pidfile.read_text()) == proc.pid  # `ip netns exec` execs the daemon itself
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            terminate(proc)
    assert not pidfile.exists()
    lines = log.read_text().splitlines()
    assert any(line.startswith("<6>00[DMN] ikegate ready") for line in lines), lines
    assert all(line.startswith("<") and line[1].isdigit() for line in lines), lines


def test_second_instance_refused(topology, seed_setup, ikegate_gateway):
    """A second daemon on the same run directory would share UDP 500/4500 (SO_REUSEADDR) and
    take over the control socket: it refuses to start, and the first keeps serving."""
    first = ikegate_gateway(topology.gateway, seed_setup.confdir, ["--dataplane", "none"])
    proc = topology.gateway.ns.run([sys.executable, "-m", "ikegate", "start", "--confdir", str(seed_setup.confdir),
                                    "--run-dir", str(first.run_dir), "--foreground", "--dataplane", "none"],
                                   check=False, timeout=30)
    assert proc.returncode == 1
    assert f"already running with run directory {first.run_dir}" in proc.stderr
    assert first.running()
    assert first.status() == {"ok": True, "sas": []}
