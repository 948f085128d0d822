"""User-mode Linux guests for the end-to-end tests: a real kernel IPsec stack here.

This machine's kernel has no ESP, XFRM user interface or PF_KEY, so IKE clients that
need the kernel (openiked, libreswan) and ikegate's kernel data plane cannot run in
a plain namespace.  Debian's ``user-mode-linux`` package is a Linux 6.1 kernel that
runs as an ordinary process and brings those as modules (af_key, xfrm_user, esp4,
esp6, the crypto algorithms).  :class:`UmlGuest` boots one in a couple of seconds:

* **root file system**: the host's ``/``, read-only through hostfs, so every binary
  of the host (python3, ip, iked, ...) runs unchanged inside; overlays with a tmpfs
  upper layer make ``/etc``, ``/var`` and ``/usr`` writable (and tmpfs ``/run``,
  ``/tmp``) without touching the host (``scripts/uml/init``);
* **share directory** (``workdir/share``): mounted read-write at the *same path* in
  the guest, for configuration going in and logs coming out;
* **network**: a TAP device created in a test :class:`~.netns.Namespace` (optionally
  enslaved to a bridge there, e.g. a :class:`~.netns.Topology`'s ``br0``), which the
  guest sees as ``eth0``; the guest's addresses (IPv4 and IPv6, no DAD) and routes
  are configured before the first command runs;
* **commands**: a small agent (``scripts/uml/agent.py``, PID 1 of the guest) answers
  JSON requests on a serial line wired to a socketpair (``ssl0=fd:N``): no network
  traffic, no polling, several commands at once; :meth:`UmlGuest.run` mirrors
  :meth:`Namespace.run`, :meth:`UmlGuest.spawn` starts daemons;
* **shutdown**: the agent powers the guest off; if that fails the UML process
  group and any process left in its session are killed, and the TAP device is
  deleted, also when the test failed.  The namespace (``ikg-`` prefix) is swept by
  the interop conftest like any other.

For the kernel data plane (issue 10) ikegate itself and strongSwan with its
kernel-netlink plugin run in guests: :class:`GuestIkegate` (``ikegate start`` with the
repository's venv), :class:`GuestStrongSwanServer` (starter + charon serving a
configuration directory) and :class:`GuestStrongSwanClient` (charon + swanctl), on the
network of :class:`KernelLab` (a gateway guest and a client guest on one bridge, plus a
client namespace).

Libreswan conflicts with strongSwan's packages, so it is not installed on the host:
``scripts/uml/fetch-libreswan.sh`` unpacks the Debian package into a private tree
(:data:`LIBRESWAN_ROOT`), and :meth:`UmlGuest.install_tree` links that tree into the
guest's ``/usr`` and ``/etc`` overlays, where it sits at the paths compiled into it.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .netns import Command, Namespace, _argv, ping, socket_in, terminate

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "uml"
UML_BINARY = Path("/usr/bin/linux.uml")
UML_MODULES = Path("/usr/lib/uml/modules")
LIBRESWAN_ROOT = Path(os.environ.get("IKEGATE_LIBRESWAN_ROOT", "/opt/ikegate-interop/libreswan"))

# Loaded at boot; everything else (crypto algorithms, nf_tables, ...) is autoloaded
# by the guest kernel through modprobe on first use.
DEFAULT_MODULES = ("ipv6", "af_key", "xfrm_user", "esp4", "esp6")
GUEST_IFACE = "eth0"

# Flow control of the serial line (see scripts/uml/agent.py): requests longer than
# LINE_INLINE_MAX bytes go through a file; at most LINE_WINDOW bytes unacknowledged.
LINE_INLINE_MAX = 1024
LINE_WINDOW = 2048


class UmlError(RuntimeError):
    """The guest did not boot, died, or a command in it failed."""


def _guest_python() -> str:
    """The interpreter the agent runs with: the system one (stdlib only is needed)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def uml_missing() -> str | None:
    """Why user-mode Linux guests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "user-mode Linux guests need root (TAP devices in namespaces)"
    if not UML_BINARY.exists():
        return f"{UML_BINARY} missing (Debian package user-mode-linux)"
    if not any(UML_MODULES.glob("*/kernel/net/key/af_key.ko")):
        return f"UML kernel modules missing under {UML_MODULES}"
    if shutil.which("modprobe") is None:
        return "modprobe missing (Debian package kmod), needed inside the guest"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun missing"
    for script in ("init", "agent.py"):
        if not (SCRIPTS / script).exists():
            return f"{SCRIPTS / script} missing"
    if not os.access(SCRIPTS / "init", os.X_OK):
        return f"{SCRIPTS / 'init'} is not executable (the guest kernel runs it as init)"
    return None


def openiked_missing() -> str | None:
    if not Path("/usr/sbin/iked").exists():
        return "/usr/sbin/iked missing (Debian package openiked)"
    return None


def libreswan_missing(root: Path = LIBRESWAN_ROOT) -> str | None:
    if not (root / "usr/libexec/ipsec/pluto").exists():
        return (f"libreswan not unpacked in {root} (run scripts/uml/fetch-libreswan.sh; "
                "IKEGATE_LIBRESWAN_ROOT overrides the location)")
    if shutil.which("certutil") is None:
        return "certutil missing (Debian package libnss3-tools), needed for libreswan's NSS database"
    return None


class GuestProcess:
    """A background process in the guest (own session), started by :meth:`UmlGuest.spawn`."""

    def __init__(self, guest: "UmlGuest", pid: int, argv: list[str], log: Path | None) -> None:
        self.guest, self.pid, self.argv, self.log = guest, pid, argv, log

    def __repr__(self) -> str:
        return f"GuestProcess(pid={self.pid}, argv={self.argv!r})"

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.guest._request({"op": "poll", "pid": self.pid})["rc"]

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the process group of the process."""
        self.guest._request({"op": "signal", "pid": self.pid, "sig": int(sig)})

    def wait(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while (rc := self.poll()) is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.argv, timeout)
            time.sleep(0.05)
        return rc

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status (None if the guest
        is gone, which ends the process anyway)."""
        try:
            if self.poll() is not None:
                return self.poll()
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                return self.wait(timeout)
        except UmlError:
            return None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace") if self.log else ""
        except FileNotFoundError:
            return ""


class UmlGuest:
    """A user-mode Linux guest attached by a TAP device to namespace ``ns``.

    ``addresses`` (``"10.99.0.20/24"``, ``"fd00:99::20/64"``) go on the guest's
    ``eth0``; ``routes`` are argument strings of ``ip route add`` (``"default via
    10.99.0.1"``; ``ip -6`` is used when the string holds an IPv6 address).  The TAP
    device ``tap`` (default ``tap-<name>``) is created in ``ns`` and either enslaved
    to ``bridge`` or given ``tap_addresses``.  ``modules`` are loaded at boot,
    ``sysctls`` set and ``setup`` (shell lines) run before the first command.

    Use as a context manager, or :meth:`start`/:meth:`stop`.  :attr:`boot_time` is
    the seconds from starting the UML process to the agent's first answer.
    """

    def __init__(self, ns: Namespace, workdir: Path, *, name: str = "uml",
                 addresses: Iterable[str] = (), routes: Iterable[str] = (),
                 tap: str | None = None, bridge: str | None = None, tap_addresses: Iterable[str] = (),
                 mac: str | None = None, mtu: int | None = None, mem: str = "256M",
                 modules: Iterable[str] = DEFAULT_MODULES, sysctls: Mapping[str, str | int] | None = None,
                 setup: str = "") -> None:
        self.ns = ns
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.addresses = [str(ipaddress.ip_interface(a)) for a in addresses]
        self.routes = list(routes)
        self.tap = tap or f"tap-{name}"[:15]
        self.bridge = bridge
        self.tap_addresses = list(tap_addresses)
        self.mac = mac
        self.mtu = mtu
        self.mem = mem
        self.modules = list(modules)
        self.sysctls = dict(sysctls or {})
        self.setup = setup
        if any(c.isspace() or c == '"' for c in f"{self.workdir}{SCRIPTS}"):
            raise ValueError("the work directory and the repository path go on the kernel command line: "
                             "no whitespace or quotes allowed")
        self.share = self.workdir / "share"
        self.console_log = self.workdir / "console.log"
        self.boot_time: float | None = None
        self.guest_uptime_at_ready: float | None = None
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[int, Future] = {}
        self._pending_lock = threading.Lock()
        self._window = threading.Condition()  # flow control of the serial line
        self._in_flight = 0
        self._unacked: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._ready: Future = Future()
        self._dead = threading.Event()
        self._tap_created = False
        self._file_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"UmlGuest({self.name!r}, ns={self.ns.name!r})"

    # boot ------------------------------------------------------------------------
    def _setup_script(self) -> str:
        lines = [f"echo {shlex.quote(self.name)} > /proc/sys/kernel/hostname"]
        if self.modules:
            lines.append("modprobe -a " + " ".join(shlex.quote(m) for m in self.modules))
        sysctls = {}
        if "ipv6" in self.modules:
            # quiet IPv6: no DAD (addresses usable at once), no router solicitations
            for scope in ("all", "default", GUEST_IFACE):
                sysctls[f"net.ipv6.conf.{scope}.accept_dad"] = 0
                sysctls[f"net.ipv6.conf.{scope}.accept_ra"] = 0
                sysctls[f"net.ipv6.conf.{scope}.router_solicitations"] = 0
        sysctls.update(self.sysctls)
        for key, value in sysctls.items():
            lines.append(f"sysctl -q -w {shlex.quote(f'{key}={value}')}")
        lines.append("ip link set lo up")
        if self.mtu:
            lines.append(f"ip link set {GUEST_IFACE} mtu {int(self.mtu)}")
        for addr in self.addresses:
            nodad = " nodad" if ipaddress.ip_interface(addr).version == 6 else ""
            lines.append(f"ip addr add {addr} dev {GUEST_IFACE}{nodad}")
        lines.append(f"ip link set {GUEST_IFACE} up")
        for route in self.routes:
            family = "-6" if any(":" in word for word in route.split()) else "-4"
            lines.append(f"ip {family} route add {route}")
        if self.setup:
            lines.append(self.setup)
        return "\n".join(lines) + "\n"

    def _create_tap(self) -> None:
        self.ns.run(["ip", "tuntap", "add", "dev", self.tap, "mode", "tap"])
        self._tap_created = True
        if self.mtu:
            self.ns.run(["ip", "link", "set", self.tap, "mtu", str(self.mtu)])
        if self.bridge:
            self.ns.run(["ip", "link", "set", self.tap, "master", self.bridge])
        for addr in self.tap_addresses:
            cmd = ["ip", "addr", "add", addr, "dev", self.tap]
            if ipaddress.ip_interface(addr).version == 6:
                cmd.append("nodad")
            self.ns.run(cmd)
        self.ns.run(["ip", "link", "set", self.tap, "up"])

    def command_line(self, serial_fd: int) -> list[str]:
        net = f"{GUEST_IFACE}=tuntap,{self.tap}" + (f",{self.mac}" if self.mac else "")
        return [
            str(UML_BINARY), f"mem={self.mem}",
            "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro",
            f"init={SCRIPTS / 'init'}",
            # kernel messages to stdout (console.log); the agent on the serial line
            "con=null", "con0=null,fd:1", "ssl=null", f"ssl0=fd:{serial_fd}",
            net,
            # UML's pid file and mconsole socket go to the work directory
            f"uml_dir={self.workdir}", f"umid={self.name}",
            # unknown key=value parameters become init's environment
            f"IKG_SHARE={self.share}", f"IKG_AGENT={SCRIPTS / 'agent.py'}", f"IKG_PYTHON={_guest_python()}",
            f"IKG_REPO={REPO}",
        ]

    def start(self, timeout: float = 30.0) -> "UmlGuest":
        reason = uml_missing()
        if reason:
            raise UmlError(reason)
        if self.proc is not None:
            raise UmlError("guest already started")
        self.share.mkdir(parents=True, exist_ok=True)
        (self.share / "setup.sh").write_text(self._setup_script())
        ours, theirs = socket.socketpair()
        try:
            self._create_tap()
            started = time.monotonic()
            with open(self.console_log, "wb") as console:
                self.proc = self.ns.popen(self.command_line(theirs.fileno()), pass_fds=[theirs.fileno()],
                                          stdout=console, stderr=subprocess.STDOUT)
            theirs.close()
            self._sock = ours
            self._reader = threading.Thread(target=self._read_loop, name=f"uml-{self.name}", daemon=True)
            self._reader.start()
            ready = self._wait(self._ready, timeout, "the agent to start")
            self.boot_time = time.monotonic() - started
            self.guest_uptime_at_ready = ready.get("uptime")
            if ready.get("setup_rc"):
                raise UmlError(f"guest {self.name}: setup failed ({ready['setup_rc']}):\n{self.setup_log()}")
        except BaseException:
            theirs.close()
            if self._sock is None:
                ours.close()
            self.stop()
            raise
        return self

    def __enter__(self) -> "UmlGuest":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # the serial line ---------------------------------------------------------------
    def _read_loop(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._dispatch(line)
        except OSError:
            pass
        finally:
            self._dead.set()
            error = UmlError(f"guest {self.name} is gone\n{self.console_tail()}")
            if not self._ready.done():
                self._ready.set_exception(error)
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(error)

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return  # not ours (cannot happen on a raw serial line, but never crash the reader)
        if message.get("event") == "ready":
            if not self._ready.done():
                self._ready.set_result(message)
            return
        if "ack" in message:
            with self._window:
                self._in_flight -= self._unacked.pop(message["ack"], 0)
                self._window.notify_all()
            return
        with self._pending_lock:
            future = self._pending.pop(message.get("id"), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _wait(self, future: Future, timeout: float, what: object) -> dict:
        """The result of ``future``; fails early if the UML process died meanwhile
        (its helper processes may keep the serial line open, so no EOF comes)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(timeout=min(0.25, max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                self._dead.set()
                raise UmlError(f"guest {self.name} died (UML exit status {self.proc.returncode}) "
                               f"while waiting for {what}\n{self.console_tail()}")
            if time.monotonic() >= deadline:
                raise UmlError(f"guest {self.name}: no answer to {what} within {timeout}s")

    def _send(self, request_id: int, request: dict, timeout: float = 30.0) -> None:
        """Write one request line, keeping at most :data:`LINE_WINDOW` bytes
        unacknowledged on the serial line (UML's line stalls when the guest tty's
        4 KiB buffer overflows); a request longer than :data:`LINE_INLINE_MAX` goes
        through a file in the share directory."""
        data = (json.dumps({**request, "id": request_id}, ensure_ascii=True) + "\n").encode("ascii")
        if len(data) > LINE_INLINE_MAX:
            body = self.share / "requests" / f"{request_id}.json"
            body.parent.mkdir(exist_ok=True)
            body.write_text(json.dumps(request))
            data = (json.dumps({"id": request_id, "body_file": str(body)}) + "\n").encode("ascii")
        deadline = time.monotonic() + timeout
        with self._window:
            while self._in_flight + len(data) > LINE_WINDOW:
                if self._dead.is_set() or (self.proc is not None and self.proc.poll() is not None):
                    raise UmlError(f"guest {self.name} is gone")
                if time.monotonic() > deadline:
                    raise UmlError(f"guest {self.name}: serial line blocked for {timeout}s")
                self._window.wait(0.25)
            self._in_flight += len(data)
            self._unacked[request_id] = len(data)
            self._sock.sendall(data)

    def _request(self, request: dict, timeout: float = 30.0) -> dict:
        if self._sock is None or self._dead.is_set():
            raise UmlError(f"guest {self.name} is not running")
        request_id = next(self._ids)
        future: Future = Future()
        with self._pending_lock:
            self._pending[request_id] = future
        try:
            self._send(request_id, request)
            reply = self._wait(future, timeout, request.get("op"))
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)
        if reply.get("error"):
            raise UmlError(f"guest {self.name}: {request.get('op')} failed: {reply['error']}")
        return reply

    # commands --------------------------------------------------------------------
    def run(self, cmd: Command, *, check: bool = True, timeout: float = 30, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` (argv list, or a string for ``sh -c``) in the guest and wait.

        Like :meth:`Namespace.run`: raises :class:`UmlError` on a non-zero exit when
        ``check``, and :class:`subprocess.TimeoutExpired` (after killing the command's
        process group) when it takes longer than ``timeout``.  The command's output is
        collected until its stdout and stderr close, so start daemons with
        :meth:`spawn` (or redirect their output)."""
        argv = _argv(cmd)
        if argv and argv[0] == sys.executable:
            # the host's interpreter (a venv, maybe under /tmp, which the guest hides): the
            # guest's own, for the stdlib-only scripts helpers such as netns.ping run
            argv = [_guest_python(), *argv[1:]]
        reply = self._request({"op": "run", "argv": argv, "timeout": timeout, "input": input,
                               "env": dict(env or {})}, timeout=timeout + 15)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(argv, timeout, reply["stdout"], reply["stderr"])
        proc = subprocess.CompletedProcess(argv, reply["rc"], reply["stdout"], reply["stderr"])
        if check and proc.returncode != 0:
            raise UmlError(f"[{self.name}] {' '.join(argv)} -> {proc.returncode}: "
                           f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
        return proc

    def spawn(self, cmd: Command, *, log: Path | str | None = None,
              env: Mapping[str, str] | None = None) -> GuestProcess:
        """Start ``cmd`` in the background in its own session; stdout and stderr go to
        ``log`` (a file name in :attr:`share`, or a path), else nowhere.  Everything
        still running dies with the guest."""
        argv = _argv(cmd)
        log_path = None
        if log is not None:
            log_path = Path(log) if os.path.isabs(str(log)) else self.share / log
        reply = self._request({"op": "spawn", "argv": argv, "log": str(log_path) if log_path else None,
                               "env": dict(env or {})})
        return GuestProcess(self, reply["pid"], argv, log_path)

    def put(self, path: str, content: str | bytes | Path, mode: int = 0o644) -> None:
        """Place a file at absolute ``path`` in the guest (parents created), through
        the share directory.  Only the guest sees it (the overlays' upper layers)."""
        if not path.startswith("/"):
            raise ValueError("path must be absolute")
        if isinstance(content, Path):
            data = content.read_bytes()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        staged = self.share / "files" / f"{next(self._file_ids)}"
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(data)
        self.run(["install", "-D", "-m", f"{mode:o}", str(staged), path])

    def read_text(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def install_tree(self, root: Path, subdirs: Sequence[str] = ("usr", "etc")) -> None:
        """Make a package unpacked in ``root`` (``dpkg-deb -x``) appear at its own
        paths in the guest: symbolic links for each file of ``root/usr`` and
        ``root/etc`` in the writable overlays.  Files the tree shares with the host
        are replaced, for the guest only."""
        for sub in subdirs:
            if (Path(root) / sub).is_dir():
                self.run(["cp", "-rsf", f"{Path(root).resolve() / sub}/.", f"/{sub}/"])

    def ping(self, dst: str, *, count: int = 3, wait: float = 1.0, source: str | None = None) -> int:
        """ICMP(v6) echo requests from the guest (:func:`.netns.ping`'s script, run by
        the host's interpreter seen through hostfs); returns the replies seen."""
        return ping(self, dst, count=count, wait=wait, source=source)  # duck-typed: only .run is used

    # shutdown --------------------------------------------------------------------
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _session_pids(self) -> list[int]:
        """Host processes still in the UML process's session (its helper processes)."""
        if self.proc is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 3 and int(fields[3]) == self.proc.pid and fields[0] != "Z":
                pids.append(int(entry))
        return pids

    def stop(self, timeout: float = 10.0) -> None:
        """Power the guest off (kill the UML processes if it does not go), delete the
        TAP device.  Idempotent; safe after a failed :meth:`start`."""
        if self.proc is not None:
            if self.proc.poll() is None and self._sock is not None and not self._dead.is_set():
                try:
                    self._request({"op": "halt"}, timeout=5)
                    self.proc.wait(timeout=timeout)
                except (UmlError, subprocess.TimeoutExpired, OSError):
                    pass
            leftovers = self._session_pids()
            terminate(self.proc, timeout=5)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = [p for p in leftovers + self._session_pids() if os.path.exists(f"/proc/{p}")]
                if not pids:
                    break
                for pid in set(pids):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._tap_created and self.ns.created:
            self.ns.run(["ip", "link", "del", self.tap], check=False)
            self._tap_created = False

    # diagnostics -----------------------------------------------------------------
    def console_tail(self, chars: int = 3000) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def setup_log(self) -> str:
        try:
            return (self.share / "setup.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """Console and setup output (for failure reports, like the daemons' logs)."""
        return f"--- console ---\n{self.console_tail()}\n--- setup ---\n{self.setup_log()}"


# ----------------------------------------------------------------------------------
# IKE clients that need the guest's kernel

def _wait_for(predicate, timeout: float, what: str, details) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise UmlError(f"{what} within {timeout}s\n{details()}")
        time.sleep(0.1)


class OpenIked:
    """openiked (Debian's ``iked`` 7.2) in a guest, as configured by ``conf``.

    ``conf`` becomes /etc/iked.conf (mode 0600: iked refuses a configuration that
    others can read); it is syntax-checked (``iked -n``) before the daemon starts in
    the foreground (``-d``) with verbose logging to ``share/iked.log``.  An ``active``
    policy is initiated by iked itself a few seconds after start (its initiator
    timer; there is no initiate command).  Privilege separation works as packaged
    (user ``_iked``, chroot /var/lib/openiked/empty, both from the host).
    """

    CONF = "/etc/iked.conf"
    SOCKET = "/run/iked.sock"

    def __init__(self, guest: UmlGuest, conf: str, *, verbose: int = 1) -> None:
        self.guest, self.conf, self.verbose = guest, conf, verbose
        self.proc: GuestProcess | None = None

    def start(self, timeout: float = 20.0) -> "OpenIked":
        self.guest.put(self.CONF, self.conf, mode=0o600)
        self.guest.run(["iked", "-n", "-f", self.CONF])
        argv = ["iked", "-d", *(["-v"] * self.verbose), "-f", self.CONF]
        self.proc = self.guest.spawn(argv, log="iked.log")
        _wait_for(lambda: self.proc.poll() is not None
                  or self.guest.run(["test", "-S", self.SOCKET], check=False).returncode == 0,
                  timeout, "iked did not open its control socket", self.log_text)
        if self.proc.poll() is not None:
            raise UmlError(f"iked exited ({self.proc.poll()})\n{self.log_text()}")
        return self

    def wait_established(self, timeout: float = 30.0) -> str:
        """Wait for iked's ``established peer ...`` log line and return it."""
        def established() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise UmlError(f"iked exited ({self.proc.poll()})\n{self.log_text()}")
            return "established peer" in self.log_text()
        _wait_for(established, timeout, "iked did not establish an IKE SA", self.log_text)
        return next(line for line in self.log_text().splitlines() if "established peer" in line)

    def show_sa(self) -> str:
        return self.guest.run(["ikectl", "show", "sa"]).stdout

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""


class Libreswan:
    """libreswan's pluto (4.10, unpacked by ``scripts/uml/fetch-libreswan.sh``) in a guest.

    The private tree is linked into the guest at the paths compiled into it
    (/usr/sbin/ipsec, /usr/libexec/ipsec, /etc/ipsec.d); ``ipsec_conf`` and
    ``ipsec_secrets`` become /etc/ipsec.conf and /etc/ipsec.secrets; an empty NSS
    database is created in /var/lib/ipsec/nss (``ipsec initnss``); pluto runs in the
    foreground logging to ``share/pluto.log``.  Connections are loaded and brought up
    with :meth:`add` and :meth:`up` (``ipsec auto``).
    """

    CTL = "/run/pluto/pluto.ctl"

    def __init__(self, guest: UmlGuest, ipsec_conf: str, ipsec_secrets: str, *,
                 root: Path = LIBRESWAN_ROOT) -> None:
        self.guest, self.ipsec_conf, self.ipsec_secrets, self.root = guest, ipsec_conf, ipsec_secrets, Path(root)
        self.proc: GuestProcess | None = None

    def start(self, timeout: float = 20.0) -> "Libreswan":
        reason = libreswan_missing(self.root)
        if reason:
            raise UmlError(reason)
        self.guest.install_tree(self.root)
        self.guest.put("/etc/ipsec.conf", self.ipsec_conf)
        self.guest.put("/etc/ipsec.secrets", self.ipsec_secrets, mode=0o600)
        self.guest.run("mkdir -p /var/lib/ipsec/nss /run/pluto && ipsec initnss")
        self.proc = self.guest.spawn(["/usr/libexec/ipsec/pluto", "--config", "/etc/ipsec.conf",
                                      "--nofork", "--stderrlog"], log="pluto.log")
        _wait_for(lambda: self.proc.poll() is not None
                  or self.guest.run(["test", "-S", self.CTL], check=False).returncode == 0,
                  timeout, "pluto did not open its control socket", self.log_text)
        if self.proc.poll() is not None:
            raise UmlError(f"pluto exited ({self.proc.poll()})\n{self.log_text()}")
        return self

    def ipsec(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.guest.run(["ipsec", *args], check=check, timeout=timeout)

    def add(self, conn: str) -> str:
        return self.ipsec("auto", "--add", conn).stdout

    def up(self, conn: str, timeout: float = 30) -> tuple[bool, str]:
        """``ipsec auto --up``: (success, whack's output)."""
        proc = self.ipsec("auto", "--up", conn, check=False, timeout=timeout)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def down(self, conn: str) -> str:
        return self.ipsec("auto", "--down", conn, check=False).stdout

    def traffic_status(self) -> str:
        return self.ipsec("whack", "--trafficstatus").stdout

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""



# ----------------------------------------------------------------------------------
# strongSwan with its kernel-netlink plugin, and ikegate, in a guest (kernel ESP)

VENV_PYTHON = REPO / ".venv" / "bin" / "python"


class GuestStrongSwan:
    """strongSwan 5.9 (the host's binaries) in a guest, with ``kernel-netlink`` carrying
    ESP in the guest's kernel (native ESP, or ESP in UDP behind a NAT), unlike the
    namespaced daemons of :mod:`.strongswan` which need ``kernel-libipsec``.

    The guest's /etc and /run are its own, so no private mount namespace is needed:
    strongswan.conf (the harness's, same plugins as a stock installation minus
    ``kernel-libipsec``) goes to /etc, the log to ``share/<tag>.log``.  Subclasses
    write their configuration and say what to start and when it is ready.
    """

    plugins: tuple[str, ...] = ()

    def __init__(self, guest: UmlGuest, *, tag: str = "charon", charon_extra: str = "",
                 log_levels: Mapping[str, int] | None = None) -> None:
        from .strongswan import LOG_LEVELS

        self.guest, self.tag, self.charon_extra = guest, tag, charon_extra
        self.log_levels = dict(log_levels or LOG_LEVELS)
        self.log_path = guest.share / f"{tag}.log"
        self.proc: GuestProcess | None = None

    def _write_files(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> "GuestStrongSwan":
        from .strongswan import _strongswan_conf

        self._write_files()
        self.guest.put("/etc/strongswan.conf", _strongswan_conf(
            self.plugins, self.log_path, levels=self.log_levels, charon_extra=self.charon_extra))
        self.proc = self.guest.spawn(self._argv(), log=f"{self.tag}.out")

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise UmlError(f"{self.tag} exited ({self.proc.poll()})\n{self.proc.log_text()}\n{self.log_text()}")
            return self._ready()
        _wait_for(ready, timeout, f"{self.tag} was not ready", self.log_text)
        return self

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.guest.run(["swanctl", *args], check=check, timeout=timeout)

    def list_sas(self) -> list[dict]:
        """IKE_SAs as dicts (see :meth:`.strongswan._Daemon.list_sas`)."""
        from .strongswan import parse_vici_pretty

        sas = []
        for event, body in parse_vici_pretty(self.swanctl("--list-sas", "--pretty").stdout):
            if event == "list-sa event":
                sas.extend({"name": name, **fields} for name, fields in body.items() if isinstance(fields, dict))
        return sas

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (charon removes its SAs and policies), SIGKILL after ``timeout``."""
        if self.proc is not None:
            self.proc.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: the daemon dies without a word to its peer, its SAs stay."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class GuestStrongSwanClient(GuestStrongSwan):
    """A charon + swanctl road warrior in a guest (:class:`.strongswan.ClientConn`
    keywords, as :class:`.strongswan.StrongSwanClient`), ESP in the guest's kernel."""

    def __init__(self, guest: UmlGuest, *, ca_certs: Iterable[Path] = (), tag: str = "charon",
                 charon_extra: str = "", **conn_kwargs) -> None:
        from .strongswan import CLIENT_PLUGINS, ClientConn

        super().__init__(guest, tag=tag, charon_extra=charon_extra)
        self.plugins = tuple(p for p in CLIENT_PLUGINS if p not in ("kernel-libipsec", "resolve"))
        self.conn = ClientConn(**conn_kwargs)
        self.ca_certs = list(ca_certs)

    def _write_files(self) -> None:
        # an earlier charon's socket would pass for this one's
        self.guest.run("rm -f /run/charon.vici /run/charon.pid")
        self.guest.run("rm -rf /etc/swanctl && mkdir -p /etc/swanctl/x509ca /etc/swanctl/conf.d")
        for i, cert in enumerate(self.ca_certs):
            self.guest.put(f"/etc/swanctl/x509ca/ca{i}.pem", Path(cert))
        secrets = (f'secrets {{\n    eap-0 {{\n        id = {self.conn.eap_id}\n'
                   f'        secret = "{self.conn.password}"\n    }}\n}}\n')
        self.guest.put("/etc/swanctl/swanctl.conf",
                       "connections {\n" + self.conn.swanctl_section() + "}\n" + secrets, mode=0o600)

    def _argv(self) -> list[str]:
        return ["/usr/lib/ipsec/charon"]

    def _ready(self) -> bool:
        return self.swanctl("--stats", check=False).returncode == 0

    def start(self, timeout: float = 30.0) -> "GuestStrongSwanClient":
        super().start(timeout)
        self.swanctl("--load-all", "--noprompt")
        return self

    def initiate(self, timeout: float = 30) -> tuple[bool, str]:
        """``swanctl --initiate``: (success, output)."""
        proc = self.swanctl("--initiate", "--child", self.conn.child, "--ike", self.conn.name,
                            "--timeout", str(int(timeout)), check=False, timeout=timeout + 10)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def terminate(self, timeout: float = 10) -> tuple[bool, str]:
        proc = self.swanctl("--terminate", "--ike", self.conn.name, "--timeout", str(int(timeout)),
                            check=False, timeout=timeout + 10)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def virtual_ips(self) -> list[str]:
        """The virtual IPs of the (single) IKE_SA, as the client got them."""
        sas = self.list_sas()
        return list(sas[0].get("local-vips", [])) if sas else []


class GuestStrongSwanServer(GuestStrongSwan):
    """strongSwan's starter + charon serving a configuration directory in strongSwan's
    layout (ipsec.conf, ipsec.secrets, ipsec.d/) unchanged, as /etc of the guest.

    Paths inside ipsec.conf/ipsec.secrets (the seed's certificate, key and updown
    script) must be visible in the guest: keep ``confdir`` in the share directory."""

    def __init__(self, guest: UmlGuest, confdir: Path, *, tag: str = "charon-server",
                 charon_extra: str = "") -> None:
        from .strongswan import SERVER_PLUGINS

        super().__init__(guest, tag=tag, charon_extra=charon_extra)
        self.plugins = tuple(p for p in SERVER_PLUGINS if p != "kernel-libipsec")
        self.confdir = Path(confdir)
        self.conn_names = [line.split()[1] for line in (self.confdir / "ipsec.conf").read_text().splitlines()
                           if line.startswith("conn ") and line.split()[1] != "%default"]

    def _write_files(self) -> None:
        self.guest.run("rm -f /run/charon.ctl /run/charon.vici /run/charon.pid /run/starter.charon.pid")
        self.guest.run(f"rm -rf /etc/ipsec.d && cp -r {shlex.quote(str(self.confdir / 'ipsec.d'))} /etc/ipsec.d")
        self.guest.put("/etc/ipsec.conf", self.confdir / "ipsec.conf")
        self.guest.put("/etc/ipsec.secrets", self.confdir / "ipsec.secrets", mode=0o600)

    def _argv(self) -> list[str]:
        return ["/usr/lib/ipsec/starter", "--nofork"]

    def _ready(self) -> bool:
        if self.guest.run(["test", "-S", "/run/charon.ctl"], check=False).returncode != 0:
            return False
        log = self.log_text()
        return all(f"added configuration '{name}'" in log for name in self.conn_names)


class GuestIkegate:
    """``ikegate start --foreground`` in a guest, with the repository's venv (visible in
    the guest at its own path, see ``scripts/uml/init``).

    ``dataplane`` is the ``--dataplane`` choice (None: no flag, the daemon's default).
    ``confdir`` must be visible in the guest (the share directory); the run directory
    (control socket, pid file) is ``/run/ikegate-<tag>`` on the guest's tmpfs; the
    output goes to ``share/<tag>.log``.  Ready when the control socket answers."""

    def __init__(self, guest: UmlGuest, confdir: Path, *, dataplane: str | None = "kernel",
                 extra_args: Sequence[str] = (), tag: str = "ikegate") -> None:
        self.guest, self.confdir, self.dataplane, self.tag = guest, Path(confdir), dataplane, tag
        self.extra_args = list(extra_args)
        self.run_dir = f"/run/ikegate-{tag}"
        self.proc: GuestProcess | None = None
        self.ready_after: float | None = None

    def ikegate(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """``python -m ikegate ARGS`` in the guest (e.g. ``status --json``)."""
        # through env: UmlGuest.run swaps the host's sys.executable (this venv's python
        # when the tests run) for the system interpreter, which has no ikegate
        return self.guest.run(["env", str(VENV_PYTHON), "-m", "ikegate", *args], check=check, timeout=timeout)

    def start(self, timeout: float = 60.0) -> "GuestIkegate":
        started = time.monotonic()
        self.proc = self.guest.spawn([str(VENV_PYTHON), "-m", "ikegate", "start", "--foreground",
                                      "--confdir", str(self.confdir), "--run-dir", self.run_dir,
                                      *(["--dataplane", self.dataplane] if self.dataplane else []),
                                      *self.extra_args], log=f"{self.tag}.log")

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise UmlError(f"ikegate exited ({self.proc.poll()})\n{self.log_text()[-4000:]}")
            return self.ikegate("status", "--json", "--run-dir", self.run_dir, check=False).returncode == 0
        _wait_for(ready, timeout, "ikegate's control socket did not answer", lambda: self.log_text()[-4000:])
        self.ready_after = time.monotonic() - started
        return self

    def status(self) -> dict:
        return json.loads(self.ikegate("status", "--json", "--run-dir", self.run_dir).stdout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``: the exit status."""
        return self.proc.stop(timeout) if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL: a crash, leaving whatever it had put in the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""


def xfrm(guest: UmlGuest, what: str = "state") -> str:
    """``ip xfrm state`` (or ``policy``) in the guest."""
    return guest.run(["ip", "xfrm", what]).stdout


def capture_tap(guest: UmlGuest) -> socket.socket:
    """An AF_PACKET socket on the guest's TAP device in its namespace (IPv4 frames,
    0.5 s reads), for :func:`esp_from`; the caller closes it."""
    capture = socket_in(guest.ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    try:
        capture.bind((guest.tap, 0))
        capture.settimeout(0.5)
    except OSError:
        capture.close()
        raise
    return capture


def esp_from(capture: socket.socket, src: str, timeout: float, stop=None):
    """The first ESP packet from ``src`` read on ``capture`` (:func:`capture_tap`), as a
    scapy ``IP``; None after ``timeout`` seconds or once ``stop()`` says so."""
    from scapy.layers.inet import IP

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (stop is not None and stop()):
        try:
            frame = capture.recv(4096)
        except socket.timeout:
            continue
        packet = IP(frame[14:])
        if packet.proto == 50 and packet.src == src:
            return packet
    return None


def send_ip(ns: Namespace, packet, dst: str) -> None:
    """Send a whole IPv4 packet (bytes or scapy) from namespace ``ns`` over a raw socket."""
    sender = socket_in(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        sender.sendto(bytes(packet), (dst, 0))
    finally:
        sender.close()



class KernelLab:
    """The network of the kernel data-plane tests and bench: one L2 segment (bridge
    ``br0`` in namespace ``bridge``) with

    * the gateway guest (:attr:`gateway`, ``eth0`` :data:`LAB_GATEWAY`), which also
      holds the "inner" addresses :data:`LAB_INNER` on its loopback: the host behind
      the gateway that tunnelled traffic goes to (pings, iperf3);
    * optionally a client guest (:attr:`client_guest`, :data:`LAB_CLIENT_GUEST`), for
      strongSwan with kernel-netlink (native ESP);
    * optionally a client namespace (:attr:`client_ns`, :data:`LAB_CLIENT_NS`) for the
      namespaced strongSwan client (kernel-libipsec, always ESP in UDP);
    * with ``second_pair``, a second gateway guest (:attr:`gateway2`,
      :data:`LAB_GATEWAY2`, the same inner addresses on its loopback) and a second
      client guest (:attr:`client_guest2`, :data:`LAB_CLIENT_GUEST2`): two gateways
      measured side by side (the bench).

    No NAT anywhere.  Guests' work directories go under ``workdir``; :meth:`destroy`
    stops the guests and deletes the namespaces, also after a failed :meth:`build`.
    """

    def __init__(self, workdir: Path, *, client_guest: bool = True, client_ns: bool = True,
                 second_pair: bool = False, mem: str = "256M") -> None:
        self.workdir = Path(workdir)
        self.want_client_guest, self.want_client_ns, self.mem = client_guest, client_ns, mem
        self.want_second_pair = second_pair
        self.gateway2: UmlGuest | None = None
        self.client_guest2: UmlGuest | None = None
        self.bridge: Namespace | None = None
        self.client_ns: Namespace | None = None
        self.gateway: UmlGuest | None = None
        self.client_guest: UmlGuest | None = None

    def build(self) -> "KernelLab":
        from concurrent.futures import ThreadPoolExecutor

        from .netns import new_token, unique_name, veth

        token = new_token()
        try:
            self.bridge = Namespace(unique_name("kbr", token))
            self.bridge.create()
            for scope in ("all", "default"):
                self.bridge.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", 1)
            self.bridge.run(["ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
            self.bridge.run(["ip", "link", "set", "br0", "up"])
            if self.want_client_ns:
                self.client_ns = Namespace(unique_name("kcl", token))
                self.client_ns.create()
                for scope in ("all", "default"):
                    self.client_ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
                veth(self.bridge, self.client_ns, (), [f"{LAB_CLIENT_NS[0]}/24", f"{LAB_CLIENT_NS[1]}/64"],
                     name_a="p-cl", name_b="eth0")
                self.bridge.run(["ip", "link", "set", "p-cl", "master", "br0"])
            inner = (f"ip addr add {LAB_INNER[0]}/32 dev lo\n"
                     f"ip -6 addr add {LAB_INNER[1]}/128 dev lo nodad")
            jobs = {"gateway": lambda attempt: UmlGuest(
                self.bridge, self.workdir / f"gw{attempt}", name="kgw", bridge="br0", mem=self.mem,
                addresses=[f"{LAB_GATEWAY[0]}/24", f"{LAB_GATEWAY[1]}/64"], setup=inner)}
            if self.want_client_guest:
                jobs["client_guest"] = lambda attempt: UmlGuest(
                    self.bridge, self.workdir / f"cl{attempt}", name="kcl", bridge="br0", mem=self.mem,
                    addresses=[f"{LAB_CLIENT_GUEST[0]}/24", f"{LAB_CLIENT_GUEST[1]}/64"])
            if self.want_second_pair:
                jobs["gateway2"] = lambda attempt: UmlGuest(
                    self.bridge, self.workdir / f"gw2-{attempt}", name="kgw2", bridge="br0", mem=self.mem,
                    addresses=[f"{LAB_GATEWAY2[0]}/24", f"{LAB_GATEWAY2[1]}/64"], setup=inner)
                jobs["client_guest2"] = lambda attempt: UmlGuest(
                    self.bridge, self.workdir / f"cl2-{attempt}", name="kcl2", bridge="br0", mem=self.mem,
                    addresses=[f"{LAB_CLIENT_GUEST2[0]}/24", f"{LAB_CLIENT_GUEST2[1]}/64"])
            with ThreadPoolExecutor(len(jobs)) as pool:
                for future in [pool.submit(self._boot, attr, make) for attr, make in jobs.items()]:
                    future.result()
        except BaseException:
            self.destroy()
            raise
        return self

    def _boot(self, attr: str, make, attempts: int = 2) -> None:
        """Start the guest ``make(attempt)`` and keep it as ``self.<attr>``; a guest
        that dies while booting (seen now and then on a loaded machine, right after
        UML sets up its memory) is replaced by a new one once."""
        for attempt in range(attempts):
            guest = make(attempt)
            setattr(self, attr, guest)
            try:
                guest.start()
                return
            except UmlError:
                if attempt == attempts - 1:
                    raise

    def __enter__(self) -> "KernelLab":
        return self.build()

    def __exit__(self, *exc) -> None:
        self.destroy()

    def destroy(self) -> None:
        for guest in (self.client_guest2, self.gateway2, self.client_guest, self.gateway):
            if guest is not None:
                guest.stop()
        for ns in (self.client_ns, self.bridge):
            if ns is not None:
                ns.delete()

    def logs(self) -> str:
        """Everything the guests wrote to their share directories (for failure reports)."""
        parts = []
        for guest in (self.gateway, self.client_guest, self.gateway2, self.client_guest2):
            if guest is None:
                continue
            parts.append(f"===== guest {guest.name} =====\n{guest.log_text()}")
            for log in sorted(guest.share.glob("*.log")) + sorted(guest.share.glob("*.out")):
                parts.append(f"----- {guest.name}: {log.name} -----\n{log.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)


#: Addresses of :class:`KernelLab` (IPv4, IPv6).
LAB_GATEWAY = ("10.99.0.1", "fd00:99::1")
LAB_INNER = ("10.99.1.1", "fd00:99:1::1")
LAB_CLIENT_NS = ("10.99.0.10", "fd00:99::10")
LAB_CLIENT_GUEST = ("10.99.0.20", "fd00:99::20")
LAB_GATEWAY2 = ("10.99.0.2", "fd00:99::2")
LAB_CLIENT_GUEST2 = ("10.99.0.21", "fd00:99::21")


__all__ = ["DEFAULT_MODULES", "GUEST_IFACE", "GuestIkegate", "GuestProcess", "GuestStrongSwan",
           "GuestStrongSwanClient", "GuestStrongSwanServer", "KernelLab", "LAB_CLIENT_GUEST", "LAB_CLIENT_GUEST2",
           "LAB_CLIENT_NS", "LAB_GATEWAY", "LAB_GATEWAY2", "LAB_INNER", "LIBRESWAN_ROOT", "Libreswan", "OpenIked",
           "UmlError", "UmlGuest", "VENV_PYTHON", "libreswan_missing", "openiked_missing", "uml_missing",
           "xfrm"]
