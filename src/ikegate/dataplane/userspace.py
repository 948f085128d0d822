"""The userspace ESP data plane: a TUN device, ESP in Python, one worker per direction.

Where the kernel has no ESP (no XFRM, as on the project's machines), ikegate carries the
traffic itself, like strongSwan's kernel-libipsec:

* **TUN** ``ipsec0`` (:mod:`.tun`), MTU 1400 by default (libipsec's), brought up here;
  forwarding sysctls are the admin's business.
* **Routes** (:mod:`.routes`): one route into the TUN per remote traffic selector of each
  installed CHILD SA - the clients' virtual IPs, /32 and /128 - reference-counted and
  removed with the last SA that needs it.  Per-SA routes rather than whole pool subnets:
  the data plane never sees the pools, an address nobody holds is not routed into the
  tunnel, and it is what kernel-libipsec does.  A selector that contains the peer's own
  outer address (a client without a virtual IP) is not routed: the ESP packets to it
  would loop into the TUN.  Routes carry protocol 105; leftovers of a crashed run are
  flushed at start (the TUN itself is not persistent and vanishes with its users).
* **Inbound**: ESP-in-UDP on the daemon's port-4500 sockets (the inbound worker reads
  them and hands IKE back to the daemon's loop) and native ESP on raw IP-protocol-50
  sockets, IPv4 and IPv6.  SPI lookup, decapsulation (:class:`~ikegate.esp.EspSa`),
  anti-spoofing (inner source inside the SA's remote selectors, destination inside its
  local ones), write to the TUN - TCP segments that arrived together joined into one
  GSO packet (:mod:`.gro`).
* **Outbound**: TUN read (batches), SA by destination address, encapsulation, send as
  ESP-in-UDP from the 4500 socket when the SA is UDP-encapsulated (consecutive packets to
  one peer in one ``sendmsg`` with UDP GSO), else as native ESP, from the SA's local
  address.
* **MTU**: per SA, the largest inner packet that still fits the path to the peer after
  ESP overhead; bigger packets get ICMP "fragmentation needed"/"packet too big" (DF or
  IPv6) or are fragmented before encryption (IPv4 without DF).  Packets bigger than the
  TUN MTU never reach us: the kernel answers those itself.  Optional TCP MSS clamping.
* **Counters** per SA and drop counters by reason, in shared memory (:mod:`.counters`):
  :meth:`UserspaceDataPlane.counters`, :meth:`UserspaceDataPlane.stats`.

Workers (:mod:`.workers`): by default each direction runs in a process of its own,
spawned at :meth:`UserspaceDataPlane.attach` with the TUN, socket and counter
descriptors passed down; SA changes are pushed to them over a socket.  The Python work of
the two directions and of the IKE daemon runs on different cores instead of taking turns
under one GIL, and the IKE loop only sees IKE.  A worker that dies is replaced, going on
from its last flushed sequence numbers.  ``workers="threads"`` runs the same workers as
threads of the daemon, ``workers="single"`` one process for both directions.  The
measurements behind these choices are in ``bench/throughput.py`` and the README's
performance section.

Threading: :meth:`install`, :meth:`update`, :meth:`remove`, :meth:`counters` and
:meth:`stop` are called from the daemon's loop thread only; the workers never share a
Python object with it (messages and shared memory only).
"""

from __future__ import annotations

import argparse
import errno
import itertools
import os
import pickle
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ikegate.dataplane.algorithms import userspace_esp_supported
from ikegate.dataplane.counters import CounterBoard, SlotAllocator
from ikegate.dataplane.interface import SaCounters
from ikegate.dataplane.routes import MAIN_TABLE, Netlink, RouteSet, path_mtu, selector_networks
from ikegate.dataplane.satable import SaSpec, inner_mtu
from ikegate.dataplane.tun import DEFAULT_MTU, DEFAULT_NAME, open_tun
from ikegate.dataplane.workers import InboundWorker, OutboundWorker, RAW, UDP, start_threads
from ikegate.esp.replay import DEFAULT_WINDOW
from ikegate.ike.events import ChildSaInfo, Endpoint
from ikegate.log import get_logger

__all__ = ["DataPlaneError", "UserspaceDataPlane", "add_arguments"]

log = get_logger("esp")

IPPROTO_ESP = 50
DEFAULT_CAPACITY = 1 << 16  # CHILD SAs; the counter block is sparse, unused slots cost nothing
DEFAULT_TXQUEUELEN = 1000
DEFAULT_PATH_MTU = 1500  # when the route to a peer cannot be looked up
SOCKET_BUFFER = 4 << 20
READY_TIMEOUT = 30.0
RESTART_LIMIT = 3  # worker restarts within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 60.0
RESUME_MARGIN = 1 << 20  # outbound sequence numbers skipped by a restarted worker
WORKER_MODES = ("processes", "threads", "single")


class DataPlaneError(RuntimeError):
    """The userspace data plane could not start (TUN, sockets or workers)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the userspace data plane (for ``ikegate start``)."""
    group = parser.add_argument_group("userspace data plane")
    group.add_argument("--tun-name", default=DEFAULT_NAME, help="TUN device name (default %(default)s)")
    group.add_argument("--tun-mtu", type=int, default=DEFAULT_MTU, help="TUN MTU (default %(default)s)")
    group.add_argument("--esp-workers", choices=WORKER_MODES, default="processes",
                       help="one process per direction (default), one thread per direction,"
                            " or one process for both")
    group.add_argument("--mss-clamp", action="store_true",
                       help="clamp the MSS of TCP SYNs through the tunnel to the SA's MTU")
    group.add_argument("--no-native-esp", action="store_true",
                       help="do not open raw IP-protocol-50 sockets (ESP-in-UDP only)")
    group.add_argument("--route-table", type=int, default=MAIN_TABLE,
                       help="routing table for the routes into the TUN (default main)")
    group.add_argument("--no-tun-offload", action="store_true",
                       help="no virtio-net header on the TUN: no coalescing of TCP segments")


@dataclass
class _Installed:
    """What the daemon side remembers of one installed CHILD SA."""

    info: ChildSaInfo
    slot: int
    spec_in: SaSpec
    spec_out: SaSpec
    networks: list[str] = field(default_factory=list)


class _WorkerHandle:
    """The daemon's end of one worker: control socket, and the process if it is one."""

    def __init__(self, role: str, control: socket.socket, process: subprocess.Popen | None) -> None:
        self.role = role
        self.control = control
        self.process = process

    def send(self, message: tuple) -> None:
        try:
            self.control.send(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            log.info("ESP %s worker unreachable: %s", self.role, exc)

    def receive(self, *, block: bool = False, timeout: float | None = None) -> tuple | None:
        """One message, None if none is waiting; raises EOFError when the worker is gone."""
        if block:
            self.control.settimeout(timeout)
            try:
                data = self.control.recv(1 << 18)
            except socket.timeout:
                return None
            finally:
                self.control.settimeout(None)
        else:
            try:
                data = self.control.recv(1 << 18, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionResetError:
                data = b""
        if not data:
            raise EOFError(self.role)
        return pickle.loads(data)  # only our worker holds the other end


class UserspaceDataPlane:
    """ESP in userspace through a TUN device (the :class:`~ikegate.dataplane.interface.DataPlane`
    named ``"userspace"``; see the module docstring)."""

    name = "userspace"
    description = "userspace ESP over TUN"  # for ikegate statusall

    def __init__(
        self,
        tun_name: str = DEFAULT_NAME,
        mtu: int = DEFAULT_MTU,
        *,
        workers: str = "processes",
        native_esp: bool = True,
        mss_clamp: bool = False,
        route_table: int = MAIN_TABLE,
        txqueuelen: int = DEFAULT_TXQUEUELEN,
        replay_window: int = DEFAULT_WINDOW,
        capacity: int = DEFAULT_CAPACITY,
        offload: bool = True,
        udp_gso: bool = True,
    ) -> None:
        if workers not in WORKER_MODES:
            raise ValueError(f"workers must be one of {WORKER_MODES}, not {workers!r}")
        if not 576 <= mtu <= 65535:
            raise ValueError(f"TUN MTU {mtu} out of range 576..65535")
        self.tun_name = tun_name
        self.mtu = mtu
        self.worker_mode = workers
        self.native_esp = native_esp
        self.mss_clamp = mss_clamp
        self.route_table = route_table
        self.txqueuelen = txqueuelen
        self.replay_window = replay_window
        self.capacity = capacity
        self.offload = offload
        self.udp_gso = udp_gso
        self.tun_fd: int | None = None
        self.tun_index: int | None = None
        self.raw_sockets: list[socket.socket] = []
        self.udp_sockets: list[socket.socket] = []
        self.board: CounterBoard | None = None
        self.slots: SlotAllocator | None = None
        self.netlink: Netlink | None = None
        self.routes: RouteSet | None = None
        self.installed: dict[int, _Installed] = {}
        self.workers: dict[str, _WorkerHandle] = {}
        self.daemon = None
        self.loop = None
        self._stopping = False
        self._restarts: list[float] = []
        self._syncs: dict[int, tuple[set[str], object]] = {}  # token -> (parts still to answer, callback)
        self._sync_ids = itertools.count(1)

    @staticmethod
    def esp_supported(ttype: int, alg: int, bits: int) -> bool:
        """Can this backend carry ESP with this transform?  (what :mod:`ikegate.esp` implements,
        :func:`~ikegate.dataplane.algorithms.userspace_esp_supported`)"""
        return userspace_esp_supported(ttype, alg, bits)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "UserspaceDataPlane":
        """Build from the options of :func:`add_arguments` (missing ones: defaults)."""
        return cls(
            getattr(args, "tun_name", DEFAULT_NAME),
            getattr(args, "tun_mtu", DEFAULT_MTU),
            workers=getattr(args, "esp_workers", "processes"),
            native_esp=not getattr(args, "no_native_esp", False),
            mss_clamp=getattr(args, "mss_clamp", False),
            route_table=getattr(args, "route_table", MAIN_TABLE),
            offload=not getattr(args, "no_tun_offload", False),
        )

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the TUN device, flush our leftover routes, open the raw ESP sockets."""
        self.netlink = Netlink()
        try:
            self.tun_fd, self.tun_name = open_tun(self.tun_name, vnet_hdr=self.offload)
            self.tun_index = self.netlink.link_index(self.tun_name)
            if self.tun_index is None:
                raise DataPlaneError(f"TUN device {self.tun_name} has no interface index")
            self.netlink.setup_link(self.tun_index, self.mtu, self.txqueuelen)
            flushed = self.netlink.flush_routes(self.route_table)
            if flushed:
                log.info("removed %d route(s) left by an earlier run", flushed)
            self.routes = RouteSet(self.netlink, self.tun_index, self.route_table)
            if self.native_esp:
                self.raw_sockets = _open_raw_sockets()
            self.board = CounterBoard(self.capacity)
            self.slots = SlotAllocator(self.capacity)
        except Exception:
            self.stop()
            raise
        kinds = ", ".join("IPv6" if s.family == socket.AF_INET6 else "IPv4" for s in self.raw_sockets)
        log.info("userspace data plane: %s up (MTU %d), native ESP on %s, %s workers", self.tun_name,
                 self.mtu, kinds or "no raw socket", self.worker_mode)

    def attach(self, daemon) -> None:
        """Take over reading the daemon's port-4500 sockets and start the workers.

        The inbound worker reads those sockets from now on (ESP is decapsulated there, IKE
        comes back to :meth:`daemon.ike_received` in the loop's thread), so the daemon's
        own reader on them is removed.
        """
        self.daemon = daemon
        self.loop = daemon.loop
        self.udp_sockets = [s.sock for s in daemon.sockets if s.natt]
        for ike_socket in daemon.sockets:
            if ike_socket.natt:
                self.loop.remove_reader(ike_socket.fileno())
        restart = list(self.workers)  # started early by an install(): without the UDP sockets
        for role in restart:
            handle = self.workers.pop(role)
            handle.send(("stop",))
            if handle.process is not None:
                handle.process.wait(timeout=5)
            handle.control.close()
        self._start_workers()
        for role in restart:
            self._restore(role)

    def stop(self) -> None:
        """Stop the workers, remove our routes and the TUN device, close everything."""
        self._stopping = True
        for handle in self.workers.values():
            handle.send(("stop",))
        if self.routes is not None:
            self.routes.clear()
        for handle in self.workers.values():
            if self.loop is not None:
                try:
                    self.loop.remove_reader(handle.control.fileno())
                except (ValueError, OSError):
                    pass
            if handle.process is not None:
                try:
                    handle.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    handle.process.kill()
                    handle.process.wait(timeout=2)
        if self.netlink is not None and self.tun_index is not None and self.worker_mode == "threads":
            # wakes a thread blocked in read() on the TUN (the reader gets an error)
            self.netlink.delete_link(self.tun_index)
        for handle in self.workers.values():
            handle.control.close()
        self.workers.clear()
        for sock in self.raw_sockets:
            sock.close()
        self.raw_sockets = []
        if self.tun_fd is not None:
            os.close(self.tun_fd)
            self.tun_fd = None
        if self.netlink is not None:
            self.netlink.close()
            self.netlink = None
        if self.board is not None and self.worker_mode != "threads":  # threads may still flush
            self.board.close()
            self.board = None
        self.installed.clear()

    # -- CHILD SAs ---------------------------------------------------------------------------

    def install(self, info: ChildSaInfo) -> None:
        """Install both directions of ``info`` and route its remote selectors into the TUN."""
        if not self.workers:
            self._start_workers()
        if info.spi_in in self.installed:
            self.remove(self.installed[info.spi_in].info)
        slot = self.slots.take()
        spec_in, spec_out = self._specs(info, slot)
        networks = self._networks(info)
        self.installed[info.spi_in] = _Installed(info, slot, spec_in, spec_out, networks)
        self._send("in", ("install", spec_in))
        self._send("out", ("install", spec_out))
        self.routes.add(info.spi_in, networks)
        log.info("installed CHILD SA %s{%d} %08x_i %08x_o (%s, inner MTU %d) for %s", info.conn,
                 info.child_unique_id, info.spi_in, info.spi_out,
                 "ESP-in-UDP" if info.udp_encap else "native ESP", spec_out.mtu,
                 ", ".join(networks) or "no route")

    def when_ready(self, callback) -> bool:
        """Call ``callback`` on the loop once the workers and the routes have applied every
        install so far (each answers a ``sync`` queued behind them), so the daemon can
        send the IKE_AUTH response only when its CHILD SA carries traffic both ways.
        False (and no call) when there is nothing to wait for."""
        if self.loop is None or not self.workers or self.netlink is None:
            return False
        token = next(self._sync_ids)
        self._syncs[token] = ({*self.workers, "routes"}, callback)
        for handle in self.workers.values():
            handle.send(("sync", token))
        loop = self.loop
        self.netlink.after_queued(lambda: loop.call_soon_threadsafe(self._synced, token, "routes"))
        return True

    def _synced(self, token: int, part: str) -> None:
        entry = self._syncs.get(token)
        if entry is None:
            return
        waiting, callback = entry
        waiting.discard(part)
        if not waiting:
            del self._syncs[token]
            callback()

    def update(self, info: ChildSaInfo) -> None:
        """New outer addresses/ports or encapsulation (MOBIKE, NAT): keys, sequence numbers
        and the replay window stay."""
        installed = self.installed.get(info.spi_in)
        if installed is None:
            self.install(info)
            return
        spec_in, spec_out = self._specs(info, installed.slot)
        installed.info, installed.spec_in, installed.spec_out = info, spec_in, spec_out
        self._send("out", ("update", spec_out))
        log.info("updated CHILD SA %s{%d}: peer %s, %s", info.conn, info.child_unique_id, info.remote,
                 "ESP-in-UDP" if info.udp_encap else "native ESP")

    def remove(self, info: ChildSaInfo) -> None:
        installed = self.installed.pop(info.spi_in, None)
        if installed is None:
            return
        self.routes.release(info.spi_in)
        for handle in self.workers.values():
            handle.send(("remove", info.spi_in))
        self.slots.give_back(installed.slot)

    def counters(self, spi_in: int) -> SaCounters | None:
        """Traffic counters of an installed SA (at most ~0.1 s old)."""
        installed = self.installed.get(spi_in)
        if installed is None or self.board is None:
            return None
        return self.board.read(installed.slot)

    def stats(self) -> dict[str, int]:
        """Global counters by reason: drops (``unknown_spi``, ``replay``, ``icv``,
        ``padding``, ``spoofed``, ``no_sa``, ``too_big`` ...) and events (``keepalive``,
        ``ike_forwarded``, ``icmp_too_big_sent``, ``fragmented``)."""
        return self.board.reasons() if self.board is not None else {}

    def esp_in_udp(self, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        """An ESP-in-UDP datagram the daemon read itself (before :meth:`attach`)."""
        self._send("in", ("esp", bytes(data)))

    # -- internals -------------------------------------------------------------------------

    def _send(self, role: str, message: tuple) -> None:
        """To the worker of ``role`` (the single worker takes both roles' messages)."""
        handle = self.workers.get(role)
        if handle is not None:
            handle.send(message)
        elif "both" in self.workers:
            self.workers["both"].send(("for", role, message))

    def _specs(self, info: ChildSaInfo, slot: int) -> tuple[SaSpec, SaSpec]:
        outer_version = 6 if ":" in info.remote.host else 4
        path = path_mtu(info.remote.host) or DEFAULT_PATH_MTU
        mtu = min(self.mtu, inner_mtu(path, outer_version, info.udp_encap, info.encr_id, info.integ_id))
        integ_id = info.integ_id or None
        common = dict(
            spi_in=info.spi_in,
            slot=slot,
            encr_id=info.encr_id,
            key_bits=info.encr_key_bits,
            integ_id=integ_id,
            esn=info.esn,
            remote_ts=_ranges(info.remote_ts),
            local_ts=_ranges(info.local_ts),
            remote=(info.remote.host, info.remote.port),
            local_host=info.local.host,
            udp_encap=info.udp_encap,
            mtu=mtu,
            replay_window=self.replay_window,
            label=f"{info.conn}{{{info.child_unique_id}}}",
        )
        spec_in = SaSpec(spi=info.spi_in, encr_key=bytes(info.key_in_encr),
                         integ_key=bytes(info.key_in_integ) if integ_id else None, **common)
        spec_out = SaSpec(spi=info.spi_out, encr_key=bytes(info.key_out_encr),
                          integ_key=bytes(info.key_out_integ) if integ_id else None, **common)
        # fail here, in the daemon, on keys or algorithms the workers could not use
        spec_in.build_esp()
        return spec_in, spec_out

    def _networks(self, info: ChildSaInfo) -> list[str]:
        """Prefixes to route into the TUN for ``info``'s remote selectors."""
        networks = []
        for selector in info.remote_ts:
            if selector.contains_address(info.remote.host):
                log.info("not routing %s into %s: it contains the peer's own address %s", selector,
                         self.tun_name, info.remote.host)
                continue
            networks.extend(selector_networks(selector.version, selector.start, selector.end))
        return networks

    def _start_workers(self) -> None:
        if self.tun_fd is None:
            raise DataPlaneError("start() was not called")
        sockets = [(s, UDP) for s in self.udp_sockets] + [(s, RAW) for s in self.raw_sockets]
        roles = ("both",) if self.worker_mode == "single" else ("in", "out")
        for role in roles:
            self._start_worker(role, sockets)
        log.info("ESP workers running (%s)", ", ".join(
            f"{role}: pid {h.process.pid}" if h.process else f"{role}: thread" for role, h in self.workers.items()))

    def _start_worker(self, role: str, sockets: list[tuple[socket.socket, str]]) -> None:
        handle = (self._thread(role, sockets) if self.worker_mode == "threads"
                  else self._spawn(role, sockets))
        self.workers[role] = handle
        try:
            message = handle.receive(block=True, timeout=READY_TIMEOUT)
        except EOFError:
            message = None
        if not message or message[0] != "ready":
            raise DataPlaneError(f"ESP {role} worker did not start")
        handle.send(("config", {"mss_clamp": self.mss_clamp, "udp_gso": self.udp_gso}))
        if self.loop is not None:
            self.loop.add_reader(handle.control.fileno(), self._from_worker, handle)

    def _spawn(self, role: str, sockets: list[tuple[socket.socket, str]]) -> _WorkerHandle:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        argv = [sys.executable, "-m", "ikegate.dataplane.workers", role,
                "--control", str(theirs.fileno()), "--tun", str(self.tun_fd),
                "--board", f"{self.board.fd}:{self.capacity}", "--parent", str(os.getpid())]
        if self.offload:
            argv.append("--vnet")
        fds = [theirs.fileno(), self.tun_fd, self.board.fd]
        for sock, kind in sockets:
            argv += ["--socket", f"{sock.fileno()}:{kind}"]
            fds.append(sock.fileno())
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            process = subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        return _WorkerHandle(role, ours, process)

    def _thread(self, role: str, sockets: list[tuple[socket.socket, str]]) -> _WorkerHandle:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cls = InboundWorker if role == "in" else OutboundWorker
        worker = cls(theirs, self.board, self.tun_fd, sockets, self.offload)
        start_threads(worker)
        worker.tell(("ready", role, os.getpid()))
        return _WorkerHandle(role, ours, None)

    def _from_worker(self, handle: _WorkerHandle) -> None:
        """Loop callback: messages from a worker (IKE datagrams, log lines)."""
        for _ in range(64):
            try:
                message = handle.receive()
            except EOFError:
                self._worker_died(handle)
                return
            if message is None:
                return
            kind = message[0]
            if kind == "ike":
                _, data, src, dst = message
                if self.daemon is not None:
                    try:
                        self.daemon.ike_received(data, Endpoint(*src), Endpoint(*dst))
                    except Exception as exc:  # the daemon's problem: keep reading the workers
                        log.info("IKE datagram from %s raised %r", Endpoint(*src), exc)
            elif kind == "moved":
                _, spi_in, src = message
                mover = getattr(self.daemon, "esp_peer_moved", None)
                if mover is not None:
                    mover(spi_in, Endpoint(*src))
            elif kind == "log":
                log.log(message[1], "%s", message[2])
            elif kind == "synced":
                self._synced(message[1], handle.role)

    def _worker_died(self, handle: _WorkerHandle) -> None:
        """A worker exited on its own (a bug, the OOM killer, kill -9): start another one
        with every SA, going on from the flushed sequence numbers and counters."""
        self.loop.remove_reader(handle.control.fileno())
        handle.control.close()
        status = None
        if handle.process is not None:
            try:
                status = handle.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                handle.process.kill()
        if self._stopping or self.workers.get(handle.role) is not handle:
            return
        del self.workers[handle.role]
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
        if len(self._restarts) >= RESTART_LIMIT or handle.process is None:
            log.info("ESP %s worker exited (status %s): not restarted, traffic in that direction"
                     " stops", handle.role, status)
            return
        self._restarts.append(now)
        log.info("ESP %s worker exited (status %s): restarting it with %d SA(s)", handle.role, status,
                 len(self.installed))
        sockets = [(s, UDP) for s in self.udp_sockets] + [(s, RAW) for s in self.raw_sockets]
        try:
            self._start_worker(handle.role, sockets)
        except Exception as exc:
            log.info("cannot restart the ESP %s worker: %s", handle.role, exc)
            return
        self._restore(handle.role)

    def _restore(self, role: str) -> None:
        """Install every SA into a new worker of ``role``, going on from the sequence
        numbers and counters its predecessor last flushed."""
        directions = ("in", "out") if role == "both" else (role,)
        for installed in self.installed.values():
            for direction in directions:
                inbound = direction == "in"
                packets, nbytes, last, dropped, seq = self.board.half(installed.slot, inbound)
                if not inbound and seq:
                    seq += RESUME_MARGIN  # what went out after the last flush is not known
                spec = installed.spec_in if inbound else installed.spec_out
                self._send(direction, ("install", replace(spec, resume=(seq, packets, nbytes, last, dropped))))

    def workers_pids(self) -> dict[str, int | None]:
        """The process id of each worker (None for threads)."""
        return {role: (h.process.pid if h.process else None) for role, h in self.workers.items()}


def _ranges(selectors) -> tuple[tuple[int, int, int], ...]:
    return tuple((s.version, s.start, s.end) for s in selectors)


def _open_raw_sockets() -> list[socket.socket]:
    """Raw IP-protocol-50 sockets, IPv4 and (where available) IPv6, for native ESP."""
    sockets = []
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_ESP)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                continue
            for s in sockets:
                s.close()
            raise DataPlaneError(f"cannot open a raw ESP socket: {exc}") from None
        for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                break
            except OSError:
                continue
        sock.setblocking(False)
        sockets.append(sock)
    return sockets
