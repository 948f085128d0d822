"""Launcher for the gateway under test: ``python -m ikegate start`` in a namespace.

The daemon is ready when something in the namespace has bound UDP port 500
(checked with ``ss -uln`` there) and its control socket answers.  Its stdout and stderr go to a file in the run
directory; :meth:`IkegateGateway.stop` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from .netns import Namespace, NetnsError, terminate


def ikegate_daemon_missing() -> str | None:
    """Why the ikegate daemon cannot be started yet, or None."""
    try:
        spec = importlib.util.find_spec("ikegate.daemon.main")
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return "ikegate.daemon.main does not exist yet (the gateway daemon is not written)"
    return None


class IkegateGateway:
    """``<python> -m ikegate start --confdir DIR --run-dir RUN --foreground [extra]`` in ``ns``."""

    def __init__(self, ns: Namespace, confdir: Path, run_dir: Path, extra_args: Sequence[str] = (),
                 python: str = sys.executable) -> None:
        self.ns = ns
        self.confdir = Path(confdir)
        self.run_dir = Path(run_dir)
        self.extra_args = list(extra_args)
        self.python = python
        self.log_path = self.run_dir / "ikegate.stderr"
        self.proc: subprocess.Popen | None = None
        self.ready_after: float | None = None

    @property
    def argv(self) -> list[str]:
        return [self.python, "-m", "ikegate", "start", "--confdir", str(self.confdir),
                "--run-dir", str(self.run_dir), "--foreground", *self.extra_args]

    def start(self, timeout: float = 20.0) -> "IkegateGateway":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = self.ns.popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.ns.wait_udp_listening(500, timeout=timeout, proc=self.proc)
        except NetnsError as exc:
            self.stop()
            raise NetnsError(f"ikegate did not become ready: {exc}\n{self.log_text()[-3000:]}") from None
        # the control socket comes up after the data plane: wait until it answers (a file
        # left by a crashed daemon exists but does not)
        if not wait_for(lambda: self._answers() or not self.running(), timeout) or not self.running():
            self.stop()
            raise NetnsError(f"ikegate's control socket did not answer\n{self.log_text()[-3000:]}")
        self.ready_after = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        from ikegate.control.client import ControlError, request

        try:
            return bool(request(self.run_dir, "status", timeout=2).get("ok"))
        except (ControlError, OSError):
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc is None:
            return None
        return terminate(self.proc, timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def status(self) -> dict:
        """What ``ikegate status --json`` prints for this gateway (run in its namespace)."""
        out = self.ns.run([sys.executable, "-m", "ikegate", "status", "--json", "--run-dir", str(self.run_dir)])
        return json.loads(out.stdout)

    def __enter__(self) -> "IkegateGateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float, interval: float = 0.1):
    """Call ``predicate`` every ``interval`` seconds until it returns something true (returned)
    or ``timeout`` seconds have passed (then its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
