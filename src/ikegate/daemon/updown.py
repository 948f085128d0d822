"""``leftupdown`` scripts, run as strongSwan's updown plugin runs them.

Once per (local TS, remote TS) pair when a CHILD SA comes up or goes down, via
``/bin/sh -c "2>&1 <cmdline>"`` with an environment built from scratch: PATH plus
strongSwan's ``PLUTO_*`` variables (src/libcharon/plugins/updown/updown_listener.c).
Verbs: ``up-client``/``down-client`` (``up-host``/``down-host`` when our selector is
exactly our own address), ``-v6`` for IPv6.  Scripts run one after another in event
order on a thread of their own, each with a time limit; their output is logged line by
line; a failure is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import queue
import subprocess
import threading

from ikegate.ike.events import ChildSaInfo
from ikegate.log import get_logger

log = get_logger("chd")
SCRIPT_TIMEOUT = 30.0
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def updown_environment(info: ChildSaInfo, conn, verb: str, local_ts, remote_ts) -> dict[str, str]:
    """The PLUTO_* environment for one selector pair."""
    env = {
        "PATH": PATH,
        "PLUTO_VERSION": "1.1",
        "PLUTO_VERB": verb,
        "PLUTO_CONNECTION": info.conn,
        "PLUTO_INTERFACE": info.interface or "unknown",
        "PLUTO_REQID": str(info.reqid),
        "PLUTO_PROTO": "esp",
        "PLUTO_UNIQUEID": str(info.ike_unique_id),
        "PLUTO_ME": info.local.host,
        "PLUTO_MY_ID": info.local_id,
        "PLUTO_MY_CLIENT": local_ts.to_subnet(),
        "PLUTO_MY_PORT": _port(local_ts),
        "PLUTO_MY_PROTOCOL": str(local_ts.protocol),
        "PLUTO_PEER": info.remote.host,
        "PLUTO_PEER_ID": info.remote_id,
        "PLUTO_PEER_CLIENT": remote_ts.to_subnet(),
        "PLUTO_PEER_PORT": _port(remote_ts),
        "PLUTO_PEER_PROTOCOL": str(remote_ts.protocol),
    }
    if info.eap_id:
        env["PLUTO_XAUTH_ID"] = info.eap_id
    counts = {4: 0, 6: 0}
    for index, vip in enumerate(info.virtual_ips):
        version = ipaddress.ip_address(vip).version
        counts[version] += 1
        if index == 0:
            env["PLUTO_PEER_SOURCEIP"] = vip
        env[f"PLUTO_PEER_SOURCEIP{version}_{counts[version]}"] = vip
    if info.udp_encap:
        env["PLUTO_UDP_ENC"] = str(info.remote.port)
    if info.mark_in:
        env["PLUTO_MARK_IN"] = f"{info.mark_in}/0xffffffff"
    if info.mark_out:
        env["PLUTO_MARK_OUT"] = f"{info.mark_out}/0xffffffff"
    if conn is not None and getattr(conn.local, "hostaccess", False):
        env["PLUTO_HOST_ACCESS"] = "1"
    return env


def _port(ts) -> str:
    if (ts.start_port, ts.end_port) == (0, 65535):
        return "0"
    if ts.start_port == ts.end_port:
        return str(ts.start_port)
    return f"{ts.start_port}:{ts.end_port}"


def _verb(up: bool, info: ChildSaInfo, local_ts) -> str:
    host = local_ts.is_host() and local_ts.contains_address(info.local.host)
    verb = ("up" if up else "down") + ("-host" if host else "-client")
    return verb + ("-v6" if local_ts.version == 6 else "")


class UpdownRunner:
    """Runs updown scripts in event order, one at a time, on a thread of its own.

    A plain thread with ``subprocess`` rather than asyncio's subprocess transports: those
    cost the event loop ~3 ms per script (a child-watcher thread each, pipe transports),
    which at hundreds of connects a second is most of the loop's time.  The daemon's loop
    only queues the job; the thread waits for the script and logs its output."""

    def __init__(self, timeout: float = SCRIPT_TIMEOUT) -> None:
        self.timeout = timeout
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def child_up(self, info: ChildSaInfo, conn) -> None:
        self._enqueue(True, info, conn)

    def child_down(self, info: ChildSaInfo, conn) -> None:
        self._enqueue(False, info, conn)

    def _enqueue(self, up: bool, info: ChildSaInfo, conn) -> None:
        command = getattr(conn.local, "updown", None) if conn is not None else None
        if not command:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="ikegate-updown", daemon=True)
            self._thread.start()
        for local_ts in info.local_ts:
            for remote_ts in info.remote_ts:
                if local_ts.version != remote_ts.version:
                    continue
                verb = _verb(up, info, local_ts)
                self._queue.put((command, updown_environment(info, conn, verb, local_ts, remote_ts)))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._run(*job)
            except Exception:  # a script must never take the gateway down
                log.exception("updown: running the script failed")
            finally:
                self._queue.task_done()

    def _run(self, command: str, env: dict[str, str]) -> None:
        self.runs += 1
        verb = env["PLUTO_VERB"]
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", f"2>&1 {command}"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            log.info("updown: could not run '%s' for %s: %s", command, verb, exc)
            return
        try:
            output, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.communicate()
            log.info("updown: '%s' %s killed after %ds", command, verb, int(self.timeout))
            return
        for line in output.decode(errors="replace").splitlines():
            log.info("updown: %s", line)
        if proc.returncode:
            log.info("updown: '%s' %s exited with status %d", command, verb, proc.returncode)

    def wait(self, timeout: float) -> bool:
        """Block until every queued script has run (True) or ``timeout`` passed (False)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    async def drain(self, timeout: float = 10.0) -> None:
        """Let queued scripts (e.g. down-client on shutdown) finish, then stop the thread."""
        if self._thread is None:
            return
        finished = await asyncio.get_running_loop().run_in_executor(None, self.wait, timeout)
        if not finished:
            log.info("updown: scripts still running at shutdown")
        self._queue.put(None)
