"""Secrets and private keys that others may read are refused (issue 8 item 5).

:mod:`ikegate.config.permissions` on files, on a loaded ipsec.secrets (its includes and
key files), and at the daemon's edge: ``ikegate start`` exits 1 naming the file and the
fix, ``reload``, ``reload-secrets`` and SIGHUP refuse and keep the running secrets (a
real daemon with ``--dataplane none`` on ephemeral ports, no namespace needed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ikegate.config.permissions import FileProblem, check_file, check_secrets, secret_files
from ikegate.config.secrets import load_secrets

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


def _file(tmp_path: Path, mode: int, name: str = "ipsec.secrets") -> Path:
    path = tmp_path / name
    path.write_text('user1 : EAP "password1"\n')
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o200])
def test_private_modes_pass(tmp_path, mode):
    assert check_file(_file(tmp_path, mode)) is None


@pytest.mark.parametrize("mode, described", [
    (0o644, "readable by its group and others"),
    (0o640, "readable by its group"),
    (0o604, "readable by others"),
    (0o660, "readable and writable by its group"),
    (0o602, "writable by others"),
    (0o610, "executable by its group"),
    (0o666, "readable and writable by its group and others"),
    (0o624, "writable by its group, readable by others"),
])
def test_loose_modes_are_refused_with_the_fix(tmp_path, mode, described):
    path = _file(tmp_path, mode)
    problem = check_file(path, "secrets file")
    assert isinstance(problem, FileProblem)
    assert problem.path == str(path) and problem.fix == f"chmod 600 {path}"
    assert str(problem) == (f"{path}: secrets file is {described} (mode {mode:04o}): refused, only its owner may "
                            f"have access to it (fix: chmod 600 {path})")


def test_a_file_that_is_gone_is_left_to_the_loader(tmp_path):
    assert check_file(tmp_path / "missing") is None


@as_root
def test_owner_must_be_root_or_the_gateway_user(tmp_path):
    path = _file(tmp_path, 0o600)
    os.chown(path, 65534, 65534)
    problem = check_file(path, "private key", owners={0})
    assert problem is not None and problem.fix == f"chown root {path}"
    assert "private key belongs to" in problem.message and "uid 65534" in problem.message
    assert check_file(path, owners={0, 65534}) is None  # e.g. the --user account
    problem = check_file(path, owners={0, 1234}, owner_hint="vpn")
    assert problem is not None and problem.fix == f"chown vpn {path}"


def test_loaded_secrets_name_every_file_they_came_from(tmp_path, seed_dir):
    """ipsec.secrets, the file it includes and the key it loads: the loose ones, by name."""
    confdir = seed_dir.confdir
    main, included, key = confdir / "ipsec.secrets", confdir / "ipsec.d/secrets/myvpn", seed_dir.key_path
    for path in (main, included, key):
        path.chmod(0o600)
    secrets = load_secrets(main)
    assert secret_files(secrets) == [(str(main), "secrets file"), (str(included), "secrets file"),
                                     (str(key), "private key")]
    assert check_secrets(secrets) == []
    included.chmod(0o644)
    key.chmod(0o640)
    problems = check_secrets(secrets)
    assert [(p.path, p.fix) for p in problems] == [(str(included), f"chmod 600 {included}"),
                                                   (str(key), f"chmod 600 {key}")]
    assert "private key is readable by its group" in str(problems[1])


def test_a_key_that_did_not_load_is_not_listed(tmp_path):
    (tmp_path / "ipsec.secrets").write_text(": RSA missing.key\n")
    (tmp_path / "ipsec.secrets").chmod(0o600)
    secrets = load_secrets(tmp_path / "ipsec.secrets")
    assert secret_files(secrets) == [(str(tmp_path / "ipsec.secrets"), "secrets file")]


# ---------------------------------------------------------------------------------------
# the daemon's edge


def _start(confdir: Path, run_dir: Path, output: Path) -> subprocess.Popen:
    """The daemon on ephemeral ports, its output (log and messages) to ``output``."""
    argv = [sys.executable, "-m", "ikegate", "start", "--confdir", str(confdir), "--run-dir", str(run_dir),
            "--foreground", "--dataplane", "none", "--ike-port", "0", "--natt-port", "0"]
    with open(output, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _control(run_dir: Path, command: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "ikegate", command, "--json", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, json.loads(proc.stdout)


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def private_seed(seed_dir):
    for path in (seed_dir.confdir / "ipsec.secrets", seed_dir.confdir / "ipsec.d/secrets/myvpn", seed_dir.key_path):
        path.chmod(0o600)
    return seed_dir


def test_start_refuses_loose_secrets(tmp_path, private_seed):
    included = private_seed.confdir / "ipsec.d/secrets/myvpn"
    included.chmod(0o644)
    private_seed.key_path.chmod(0o604)
    proc = _start(private_seed.confdir, tmp_path / "run", tmp_path / "out")
    proc.wait(timeout=30)
    out = (tmp_path / "out").read_text()
    assert proc.returncode == 1, out
    assert (f"ikegate: {included}: secrets file is readable by its group and others (mode 0644): refused, only "
            f"its owner may have access to it (fix: chmod 600 {included})") in out
    assert f"{private_seed.key_path}: private key is readable by others" in out
    assert f"(fix: chmod 600 {private_seed.key_path})" in out
    assert "not starting" in out
    assert not (tmp_path / "run" / "ikegate.ctl").exists()


def test_reloads_refuse_loose_secrets_and_keep_the_running_ones(tmp_path, private_seed):
    run_dir = tmp_path / "run"
    confdir = private_seed.confdir
    output = tmp_path / "out"
    proc = _start(confdir, run_dir, output)
    try:
        assert _wait(lambda: (run_dir / "ikegate.ctl").exists() or proc.poll() is not None)
        assert proc.poll() is None
        code, reply = _control(run_dir, "reload-secrets")
        assert code == 0 and reply["ok"] and reply["users"] == 4

        # a new user in a world-readable ipsec.secrets: refused, the running secrets kept
        secrets = confdir / "ipsec.secrets"
        secrets.write_text(secrets.read_text() + 'dave : EAP "dave-password"\n')
        secrets.chmod(0o644)
        for command in ("reload-secrets", "reload"):
            code, reply = _control(run_dir, command)
            assert code == 1 and reply["ok"] is False, (command, reply)
            assert reply["errors"] == [f"{secrets}: secrets file is readable by its group and others (mode 0644): "
                                       f"refused, only its owner may have access to it (fix: chmod 600 {secrets})"]
        # SIGHUP: the same, in the log
        proc.send_signal(signal.SIGHUP)
        refused = f"configuration reload refused, the running configuration is kept: {secrets}: secrets file is "
        assert _wait(lambda: refused in output.read_text()), output.read_text()
        secrets.chmod(0o600)
        private_seed.key_path.chmod(0o640)
        code, reply = _control(run_dir, "reload")
        assert code == 1 and reply["errors"] == [
            f"{private_seed.key_path}: private key is readable by its group (mode 0640): refused, only its owner "
            f"may have access to it (fix: chmod 600 {private_seed.key_path})"]
        private_seed.key_path.chmod(0o600)
        code, reply = _control(run_dir, "reload-secrets")
        assert code == 0 and reply["ok"] and reply["users"] == 5  # fixed: dave is in
        code, reply = _control(run_dir, "reload")
        assert code == 0 and reply["ok"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, output.read_text()
