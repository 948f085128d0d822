"""Command agent of the user-mode Linux test guests (``tests/interop/uml.py``).

Started by ``scripts/uml/init`` as PID 1 of the guest, with the standard library only
(it runs under the host's ``/usr/bin/python3`` seen through hostfs).  It forks:

* the parent stays PID 1: it reaps every orphan (daemons that double-fork, such as
  pluto or iked, are re-parented to it) and powers the guest off when the server
  child ends;
* the child serves requests on a serial line (``/dev/ttyS0``, wired by the host to
  one end of a socketpair with ``ssl0=fd:N``).

Protocol: one JSON object per line in each direction, ASCII only (``json.dumps``
escapes everything else, so the raw tty passes it unchanged).  Requests carry an
``id`` and an ``op``; each is handled on its own thread, so a slow command does not
hold up the others, and the answer echoes the ``id``.  Every request line is
acknowledged (``{"ack": id}``) as soon as it is read: UML's serial line stalls for
good once more than the tty's 4 KiB buffer is queued towards the guest, so the host
keeps less than that unacknowledged, and passes larger requests as a file
(``body_file``, a JSON object merged into the request, then deleted).

``run``     argv, [input, env, cwd, timeout]  -> rc, stdout, stderr, timed_out
            (waits for stdout/stderr to close: start daemons with ``spawn``)
``spawn``   argv, [log, env, cwd]             -> pid  (a background process, own session)
``poll``    pid                               -> rc (null while running)
``signal``  pid, sig                          -> ok  (to the process group of pid)
``halt``                                      -> ok, then sync and power off

Output is decoded with ``surrogateescape`` so no byte is lost.  On start the agent
sends ``{"event": "ready", ...}`` with the guest's uptime and the exit status of the
setup script (``IKG_SETUP_RC``, set by init).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import tty

SERIAL = "/dev/ttyS0"
RB_POWER_OFF = 0x4321FEDC


class Server:
    """Reads requests from the serial line and answers them, one thread each."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.write_lock = threading.Lock()
        self.procs: dict[int, subprocess.Popen] = {}
        self.halting = threading.Event()

    def send(self, message: dict) -> None:
        data = (json.dumps(message, ensure_ascii=True) + "\n").encode("ascii")
        with self.write_lock:
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]

    def serve(self) -> None:
        self.send({"event": "ready", "uptime": _uptime(), "setup_rc": int(os.environ.get("IKG_SETUP_RC", "0"))})
        buffer = b""
        while not self.halting.is_set():
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    self.dispatch(line)

    def dispatch(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError as exc:
            self.send({"id": None, "error": f"bad request: {exc}"})
            return
        # flow control: the host keeps few bytes unacknowledged on the line
        self.send({"ack": request.get("id")})
        body_file = request.pop("body_file", None)
        if body_file:  # a large request, passed through the share directory
            try:
                with open(body_file, "rb") as f:
                    request.update(json.load(f))
                os.unlink(body_file)
            except (OSError, ValueError) as exc:
                self.send({"id": request.get("id"), "error": f"bad request file {body_file}: {exc}"})
                return
        if request.get("op") == "halt":
            self.send({"id": request.get("id"), "ok": True})
            self.halting.set()
            return
        threading.Thread(target=self.handle, args=(request,), daemon=True).start()

    def handle(self, request: dict) -> None:
        reply: dict = {"id": request.get("id")}
        try:
            reply.update(getattr(self, "op_" + str(request.get("op")))(request))
        except AttributeError:
            reply["error"] = f"unknown op {request.get('op')!r}"
        except Exception as exc:  # reported to the host, which raises it there
            reply["error"] = f"{type(exc).__name__}: {exc}"
        self.send(reply)

    # operations ------------------------------------------------------------------
    @staticmethod
    def _env(request: dict) -> dict:
        env = dict(os.environ)
        env.update(request.get("env") or {})
        return env

    def op_run(self, request: dict) -> dict:
        data = request.get("input")
        proc = subprocess.Popen(
            request["argv"], stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(request),
            cwd=request.get("cwd"), start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(
                data.encode("utf-8", "surrogateescape") if data is not None else None,
                timeout=request.get("timeout"))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                # a daemon that left the process group still holds the pipes
                for pipe in (proc.stdout, proc.stderr):
                    pipe.close()
                proc.wait()
                out, err = b"", b""
        return {"rc": proc.returncode, "timed_out": timed_out,
                "stdout": out.decode("utf-8", "surrogateescape"),
                "stderr": err.decode("utf-8", "surrogateescape")}

    def op_spawn(self, request: dict) -> dict:
        log = request.get("log")
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(request["argv"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=self._env(request),
                                    cwd=request.get("cwd"), start_new_session=True)
        finally:
            if log:
                out.close()
        self.procs[proc.pid] = proc
        return {"pid": proc.pid}

    def op_poll(self, request: dict) -> dict:
        proc = self.procs.get(int(request["pid"]))
        if proc is None:
            raise KeyError(f"no spawned process {request['pid']}")
        return {"rc": proc.poll()}

    def op_signal(self, request: dict) -> dict:
        _kill_group(int(request["pid"]), int(request.get("sig", signal.SIGTERM)))
        return {"ok": True}


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _power_off() -> None:
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(RB_POWER_OFF)
    os._exit(1)  # only reached if reboot(2) failed


def main() -> None:
    fd = os.open(SERIAL, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    server_pid = os.fork()
    if server_pid == 0:
        try:
            Server(fd).serve()
        finally:
            os._exit(0)
    os.close(fd)
    if os.getpid() != 1:  # run by hand for debugging: just wait for the server
        os.waitpid(server_pid, 0)
        return
    while True:  # PID 1: reap everything until the server is gone
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            break
        if pid == server_pid:
            break
    _power_off()


if __name__ == "__main__":
    sys.exit(main())
