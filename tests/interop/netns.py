"""Network namespaces for the end-to-end tests: thin helpers over the ``ip`` command.

Everything here creates and touches only namespaces it names itself
(``ikg-<token>-<role>``); nothing is ever configured in the host's own network
namespace: veth pairs are created directly inside the namespaces
(``ip -n A link add ... peer ... netns B``).

Each namespace records its owner (this process's pid) in :data:`OWNER_DIR`, so a
sweep (:func:`sweep`, run at the end of every pytest session) removes leftovers of
crashed runs without disturbing a concurrent test session that is still alive.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

PREFIX = "ikg-"
NETNS_DIR = Path("/run/netns")
OWNER_DIR = Path("/tmp/ikg-netns-owners")

# Outer (transport) addressing; none of it may overlap the gateway pools
# 192.0.2.0/24 and 2001:db8::/96 of the seed configuration.
OUTER_V4 = ipaddress.IPv4Network("10.99.0.0/24")
OUTER_V6 = ipaddress.IPv6Network("fd00:99::/64")
INNER_V4 = ipaddress.IPv4Network("10.99.1.0/24")
INNER_V6 = ipaddress.IPv6Network("fd00:99:1::/64")
FIRST_CLIENT_HOST = 10  # clients take host numbers from here on


class NetnsError(RuntimeError):
    """An ``ip`` (or other) command in a namespace failed."""


Command = Sequence[str] | str


def _argv(cmd: Command) -> list[str]:
    return ["sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]


def host_run(cmd: Command, *, check: bool = True, timeout: float = 30, input: str | None = None
             ) -> subprocess.CompletedProcess:
    """Run a command in the host namespaces (used only for ``ip netns`` management)."""
    argv = _argv(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def new_token() -> str:
    """A short random token shared by all namespaces of one topology."""
    return secrets.token_hex(3)


def unique_name(role: str, token: str | None = None) -> str:
    return f"{PREFIX}{token or new_token()}-{role}"


def existing_namespaces(prefix: str = PREFIX) -> list[str]:
    proc = host_run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Namespace:
    """One network namespace: created on ``create()``/``with``, deleted (after killing
    every process still inside it) on ``delete()``/exit, even if the body failed."""

    def __init__(self, name: str | None = None, *, role: str = "ns") -> None:
        self.name = name or unique_name(role)
        if not self.name.startswith(PREFIX):
            raise ValueError(f"namespace names must start with {PREFIX!r}: {self.name!r}")
        self.created = False
        self._procs: list[subprocess.Popen] = []

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # lifecycle -------------------------------------------------------------------
    def create(self) -> "Namespace":
        host_run(["ip", "netns", "add", self.name])
        self.created = True
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        (OWNER_DIR / self.name).write_text(str(os.getpid()))
        self.run(["ip", "link", "set", "lo", "up"])
        return self

    def __enter__(self) -> "Namespace":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()

    def delete(self) -> None:
        """Kill every process inside, then remove the namespace.  Idempotent."""
        for proc in self._procs:
            if proc.poll() is None:
                terminate(proc)
        self._procs.clear()
        delete_namespace(self.name)
        self.created = False

    # running commands ----------------------------------------------------------
    def exec_argv(self, cmd: Command) -> list[str]:
        return ["ip", "netns", "exec", self.name, *_argv(cmd)]

    def run(self, cmd: Command, *, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` (argv list, or a string for ``sh -c``) inside the namespace."""
        argv = self.exec_argv(cmd)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise NetnsError(f"[{self.name}] {' '.join(_argv(cmd))} -> {proc.returncode}: "
                             f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
        return proc

    def popen(self, cmd: Command, **kwargs) -> subprocess.Popen:
        """Start ``cmd`` in the namespace; it is killed when the namespace is deleted.

        The child gets its own process group (``start_new_session``) so it can be
        signalled as a group without touching the test process."""
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(self.exec_argv(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def sysctl(self, key: str, value: str | int) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def pids(self) -> list[int]:
        return namespace_pids(self.name)

    def udp_listening(self, port: int) -> bool:
        """True if some socket in the namespace is bound to UDP ``port``."""
        out = self.run(["ss", "-H", "-u", "-l", "-n"], check=False).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[3].rsplit(":", 1)[-1] == str(port):
                return True
        return False

    def wait_udp_listening(self, port: int, timeout: float = 10.0,
                           proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.udp_listening(port):
                return
            if proc is not None and proc.poll() is not None:
                raise NetnsError(f"[{self.name}] process exited ({proc.returncode}) before UDP {port} was bound")
            time.sleep(0.05)
        raise NetnsError(f"[{self.name}] nothing bound UDP port {port} within {timeout}s")


def terminate(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM the process group of ``proc``, then SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return proc.returncode
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def namespace_pids(name: str) -> list[int]:
    proc = host_run(["ip", "netns", "pids", name], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_namespace(name: str, timeout: float = 5.0) -> None:
    """Kill all processes in namespace ``name`` (TERM, then KILL) and delete it."""
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to delete a namespace we do not own: {name!r}")
    if (NETNS_DIR / name).exists():
        pids = [p for p in namespace_pids(name) if p != os.getpid()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if _pid_alive(p) and not _is_zombie(p)]
                if pids:
                    time.sleep(0.05)
            if not pids:
                break
        host_run(["ip", "netns", "delete", name], check=False)
    try:
        (OWNER_DIR / name).unlink()
    except FileNotFoundError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def sweep(prefix: str = PREFIX) -> list[str]:
    """Delete leftover namespaces with ``prefix`` whose owner process is gone (or this one).

    Namespaces owned by another live process (a concurrent test session) are kept."""
    removed = []
    for name in existing_namespaces(prefix):
        owner_file = OWNER_DIR / name
        try:
            owner = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is None or owner == os.getpid() or not _pid_alive(owner):
            delete_namespace(name)
            removed.append(name)
    return removed


# ----------------------------------------------------------------------------------
# sockets opened inside a namespace, used from the test process

CLONE_NEWNET = 0x40000000


def call_in(ns: Namespace, func: Callable[[], T]) -> T:
    """``func()``, called by a helper thread that switched itself into namespace ``ns``
    with setns(2) (which only affects the calling thread) and then exits.

    For what is created in a namespace and then used from any thread of the test process
    (sockets, TUN devices).  An exception of ``func`` (or of setns) is raised here."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict = {}

    def worker() -> None:
        try:
            with open(NETNS_DIR / ns.name, "rb") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            result["value"] = func()
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=worker, name=f"setns-{ns.name}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def socket_in(ns: Namespace, family: int, type_: int, proto: int = 0,
              bind: tuple | None = None) -> socket.socket:
    """Create (and optionally bind) a socket that lives in namespace ``ns``
    (:func:`call_in`); it can be used from any thread of the test process."""

    def make() -> socket.socket:
        sock = socket.socket(family, type_, proto)
        if bind is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(bind)
        return sock

    return call_in(ns, make)


class Capture:
    """``dumpcap`` on an interface of a namespace, writing a pcapng file."""

    def __init__(self, ns: Namespace, iface: str, path: Path, bpf: str = "") -> None:
        self.ns, self.iface, self.path, self.bpf = ns, iface, Path(path), bpf
        self.proc: subprocess.Popen | None = None
        self.summary = ""

    def start(self, timeout: float = 10.0) -> "Capture":
        cmd = ["dumpcap", "-q", "-i", self.iface, "-w", str(self.path)]
        if self.bpf:
            cmd += ["-f", self.bpf]
        self.proc = self.ns.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        seen = b""
        while b"File:" not in seen:  # dumpcap announces the file once capturing
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise NetnsError(f"dumpcap did not start: {seen.decode(errors='replace')}")
            seen += self.proc.stderr.readline()
        return self

    def stop(self, settle: float = 0.5) -> Path:
        """Let packets in flight reach the file, then stop dumpcap (SIGINT flushes)."""
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(settle)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                terminate(self.proc)
            self.summary = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        return self.path

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(settle=0 if exc[0] else 0.5)


# ----------------------------------------------------------------------------------
# ICMP echo ("ping" is not installed on the test machines): a raw-socket script run
# with this interpreter inside the namespace.  Prints the number of replies.
_PING_SCRIPT = r"""
import os, select, socket, struct, sys, time
dst, count, wait, src = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
v6 = ":" in dst
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
if v6:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); req, rep = 128, 129
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); req, rep = 8, 0
if src:
    sock.bind((src, 0))
ident = os.getpid() & 0xFFFF; got = 0
for seq in range(1, count + 1):
    body = struct.pack("!d", time.time()) + b"ikegate-interop-ping"
    hdr = struct.pack("!BBHHH", req, 0, 0, ident, seq)
    pkt = struct.pack("!BBHHH", req, 0, 0 if v6 else csum(hdr + body), ident, seq) + body
    sock.sendto(pkt, (dst, 0))
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        data = sock.recv(2048)
        if not v6:
            data = data[(data[0] & 0x0F) * 4:]
        if len(data) >= 8:
            t, _, _, i, s = struct.unpack("!BBHHH", data[:8])
            if t == rep and i == ident and s == seq:
                got += 1
                break
print(got)
"""


def ping(ns: Namespace, dst: str, *, count: int = 3, wait: float = 1.0, source: str | None = None) -> int:
    """Send ``count`` ICMP(v6) echo requests from ``ns`` to ``dst``; return the replies seen."""
    proc = ns.run([sys.executable, "-c", _PING_SCRIPT, dst, str(count), str(wait), source or ""],
                  timeout=count * wait + 10)
    return int(proc.stdout.strip() or 0)


# ----------------------------------------------------------------------------------
# links and addresses

def add_address(ns: Namespace, ifname: str, addr: str) -> None:
    """Add ``addr`` (``a.b.c.d/len`` or ``v6/len``); IPv6 addresses skip DAD."""
    iface = ipaddress.ip_interface(addr)
    cmd = ["ip", "addr", "add", str(iface), "dev", ifname]
    if iface.version == 6:
        cmd.append("nodad")
    ns.run(cmd)


def veth(ns_a: Namespace, ns_b: Namespace, addr_a: Iterable[str] = (), addr_b: Iterable[str] = (),
         *, name_a: str = "eth0", name_b: str = "eth0", mtu: int | None = None) -> tuple[str, str]:
    """Create a veth pair between two namespaces (never in the host namespace),
    give each end its addresses and bring both up.  Returns the interface names."""
    cmd = ["ip", "link", "add", name_a]
    if mtu:
        cmd += ["mtu", str(mtu)]
    cmd += ["type", "veth", "peer", "name", name_b, "netns", ns_b.name]
    ns_a.run(cmd)
    for ns, name, addrs in ((ns_a, name_a, addr_a), (ns_b, name_b, addr_b)):
        if mtu:
            ns.run(["ip", "link", "set", name, "mtu", str(mtu)])
        for addr in addrs:
            add_address(ns, name, addr)
        ns.run(["ip", "link", "set", name, "up"])
    return name_a, name_b


def _quiet_ipv6(ns: Namespace) -> None:
    """No DAD and no router solicitations for interfaces created later in ``ns``."""
    for scope in ("all", "default"):
        ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
        ns.sysctl(f"net.ipv6.conf.{scope}.router_solicitations", 0)
        ns.sysctl(f"net.ipv6.conf.{scope}.accept_ra", 0)


@dataclass
class Host:
    """A namespace of a topology with its outer addresses (without prefix length)."""

    ns: Namespace
    v4: list[str] = field(default_factory=list)
    v6: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.ns.name

    def run(self, cmd: Command, **kw) -> subprocess.CompletedProcess:
        return self.ns.run(cmd, **kw)

    def popen(self, cmd: Command, **kw) -> subprocess.Popen:
        return self.ns.popen(cmd, **kw)


class Topology:
    """A gateway and ``n_clients`` clients on one L2 segment (a bridge in its own
    namespace), plus an optional "inner" host behind the gateway.

    Outer addresses: gateway 10.99.0.1 / fd00:99::1; client i (0-based) gets
    ``addrs_per_client`` consecutive host numbers from 10 + i*addrs_per_client, in
    both families.  Inner: gateway 10.99.1.1 / fd00:99:1::1, inner host
    10.99.1.2 / fd00:99:1::2 with default routes via the gateway (which forwards).
    IPv6 is disabled in the bridge namespace, so its ports get no link-local
    addresses (which would otherwise show up as address changes to charon/MOBIKE).
    """

    def __init__(self, n_clients: int = 1, *, inner: bool = False, addrs_per_client: int = 1,
                 token: str | None = None) -> None:
        if n_clients < 0 or addrs_per_client < 1:
            raise ValueError("n_clients >= 0 and addrs_per_client >= 1 required")
        if FIRST_CLIENT_HOST + n_clients * addrs_per_client > 254:
            raise ValueError("too many client addresses for one /24")
        self.token = token or new_token()
        self.n_clients = n_clients
        self.addrs_per_client = addrs_per_client
        self.want_inner = inner
        self.namespaces: list[Namespace] = []
        self.bridge: Namespace | None = None
        self.gateway: Host | None = None
        self.clients: list[Host] = []
        self.inner: Host | None = None

    def _ns(self, role: str) -> Namespace:
        ns = Namespace(unique_name(role, self.token))
        self.namespaces.append(ns)  # before create(): cleaned up even if create fails half-way
        ns.create()
        return ns

    def _join_bridge(self, ns: Namespace, port: str, v4: list[str], v6: list[str]) -> None:
        addrs = [f"{a}/{OUTER_V4.prefixlen}" for a in v4] + [f"{a}/{OUTER_V6.prefixlen}" for a in v6]
        veth(self.bridge, ns, (), addrs, name_a=port, name_b="eth0")
        self.bridge.run(["ip", "link", "set", port, "master", "br0"])

    def build(self) -> "Topology":
        try:
            self.bridge = self._ns("br")
            for scope in ("all", "default"):
                self.bridge.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", 1)
            self.bridge.run(["ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
            self.bridge.run(["ip", "link", "set", "br0", "up"])

            gw = self._ns("gw")
            _quiet_ipv6(gw)
            self.gateway = Host(gw, [str(OUTER_V4[1])], [str(OUTER_V6[1])])
            self._join_bridge(gw, "p-gw", self.gateway.v4, self.gateway.v6)

            for i in range(self.n_clients):
                ns = self._ns(f"c{i + 1}")
                _quiet_ipv6(ns)
                first = FIRST_CLIENT_HOST + i * self.addrs_per_client
                hosts = range(first, first + self.addrs_per_client)
                client = Host(ns, [str(OUTER_V4[h]) for h in hosts], [str(OUTER_V6[h]) for h in hosts])
                self._join_bridge(ns, f"p-c{i + 1}", client.v4, client.v6)
                self.clients.append(client)

            if self.want_inner:
                ns = self._ns("in")
                _quiet_ipv6(ns)
                veth(gw, ns, [f"{INNER_V4[1]}/24", f"{INNER_V6[1]}/64"],
                     [f"{INNER_V4[2]}/24", f"{INNER_V6[2]}/64"], name_a="inner0", name_b="eth0")
                ns.run(["ip", "route", "add", "default", "via", str(INNER_V4[1])])
                ns.run(["ip", "-6", "route", "add", "default", "via", str(INNER_V6[1])])
                gw.sysctl("net.ipv4.ip_forward", 1)
                gw.sysctl("net.ipv6.conf.all.forwarding", 1)
                self.inner = Host(ns, [str(INNER_V4[2])], [str(INNER_V6[2])])
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        errors = []
        for ns in reversed(self.namespaces):
            try:
                ns.delete()
            except Exception as exc:  # keep deleting the others
                errors.append(exc)
        self.namespaces.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Topology":
        return self.build()

    def __exit__(self, *exc) -> None:
        self.destroy()
