"""The packet workers of the userspace data plane: one per direction.

* The **inbound** worker waits (epoll) on the daemon's UDP 4500 sockets and on the raw
  IP-protocol-50 sockets, IPv4 and IPv6, and reads up to :data:`BATCH` datagrams per
  socket and wakeup.  From port 4500 it hands IKE datagrams (non-ESP marker) to the
  daemon and counts NAT keepalives; every ESP packet is looked up by SPI, decapsulated,
  checked against the SA's selectors (anti-spoofing) and queued for the TUN, where the
  TCP segments of a batch are joined before they are written (:mod:`.gro`).
* The **outbound** worker reads the TUN until it is empty (sleeping in ``poll`` when it
  is), finds the SA by the packet's destination, encapsulates, and sends: ESP-in-UDP from
  the 4500 socket - consecutive packets for one peer in one ``sendmsg`` with UDP
  segmentation offload - or native ESP on the raw socket, from the SA's local address.
  Packets larger than the SA can carry get an ICMP "too big" (or, IPv4 without DF, are
  fragmented first).

Measured on the project's VM (see ``bench/throughput.py``), most of a packet's cost is
the kernel's, not Python's: system calls, wakeups, and the trip of every packet through
the forwarding path.  Hence batches, joined TCP segments and segmented UDP sends, which
cut the number of packets the kernel handles; the per-packet Python stays small.

Each worker has a *control thread* that applies SA changes pushed by the daemon over a
``SOCK_SEQPACKET`` socket (pickled tuples, see :data:`MESSAGES`) and copies the counters
into the shared :class:`~ikegate.dataplane.counters.CounterBoard`; the packet loop never
blocks on either.  The same :class:`InboundWorker`/:class:`OutboundWorker` run either in a
process of their own (``python -m ikegate.dataplane.workers``, the default) or as threads
of the daemon; :class:`DuplexWorker` does both directions in one loop.  An exception
while handling one packet costs that packet (counted as ``internal_error``), never the
worker.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque

from ikegate.dataplane.counters import (
    EVENT_PEER_MOVED,
    DROP_IKE_BACKLOG,
    DROP_INTERNAL,
    DROP_NO_SA,
    DROP_NOT_IP,
    DROP_SEND,
    DROP_SPOOFED,
    DROP_TOO_BIG,
    DROP_TUN_WRITE,
    EVENT_FRAGMENTED,
    EVENT_ICMP,
    EVENT_IKE,
    EVENT_KEEPALIVE,
    EVENT_WAKEUPS,
    FLUSH_INTERVAL,
    REASONS,
    CounterBoard,
)
from ikegate.dataplane.gro import VNET_HDR_LEN, TunWriter
from ikegate.dataplane.packets import (
    IPV6_MIN_MTU,
    clamp_mss,
    dont_fragment,
    fragment_ipv4,
    too_big_icmp,
)
from ikegate.dataplane.satable import InboundTable, OutboundTable, SaSpec
from ikegate.esp.errors import DROP_SHORT, DROP_UNKNOWN_SPI, EspError

__all__ = ["MESSAGES", "DuplexWorker", "InboundWorker", "OutboundWorker", "main"]

#: Daemon -> worker: ``("install", SaSpec)``, ``("update", SaSpec)``, ``("remove",
#: spi_in)``, ``("config", dict)``, ``("esp", datagram)`` (inbound: ESP the daemon read
#: itself), ``("sync", token)`` (answered once every earlier message is applied),
#: ``("stop",)``; to a worker doing both directions, ``("for", "in"|"out", message)`` says
#: which half a direction-specific message is for.
#: Worker -> daemon: ``("ready", role, pid)``, ``("ike", data, (src host, port), (dst host,
#: port))`` (inbound: an IKE datagram, non-ESP marker removed), ``("log", level, text)``,
#: ``("synced", token)``.
MESSAGES = ("install", "update", "remove", "config", "esp", "sync", "stop", "for", "ready", "ike", "log",
            "moved", "synced")

NON_ESP_MARKER = b"\x00\x00\x00\x00"
NAT_KEEPALIVE = b"\xff"
RECV_SIZE = 65535
READ_SIZE = 65535
CONTROL_SIZE = 1 << 18
BATCH = 64  # datagrams read from one socket per wakeup before looking at the others
ICMP_RATE = 100  # "too big" errors per second per worker, at most (RFC 4443 2.4 (f))
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
ANC_SIZE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(20)
SOL_UDP = 17
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS of Linux before 6.x
GSO_BYTES = 65000  # one UDP datagram's worth, with headers
GSO_GIVE_UP = 8  # segmented sends refused, none ever accepted: the kernel has no UDP GSO
_GSO_SIZE = struct.Struct("=H")
_IGNORED_RECV_ERRORS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EMSGSIZE)
_LOG_INFO = 20

# socket kinds (what a worker is given): UDP for ESP-in-UDP + IKE, raw for native ESP
UDP = "udp"
RAW = "raw"


class _Worker:
    """What both directions share: tables, counters, the control thread."""

    role = ""

    def __init__(self, control: socket.socket, board: CounterBoard, tun_fd: int, vnet: bool) -> None:
        self.control = control
        self.board = board
        self.tun_fd = tun_fd
        self.vnet = vnet  # the TUN carries a virtio_net_hdr before each packet
        self.tun = TunWriter(tun_fd, vnet)
        self.reasons = dict.fromkeys(REASONS, 0)
        self.mss_clamp = False
        self.gso = False  # the outbound worker sends with UDP segmentation offload
        self.stopping = False
        self.exit_on_stop = False  # processes exit from the control thread
        self._last_flush = 0.0
        self._send_lock = threading.Lock()

    # -- talking to the daemon -----------------------------------------------------------

    def tell(self, message: tuple, *, wait: bool = True) -> bool:
        """Send a message to the daemon (from any thread of the worker).  Without
        ``wait``, give up (False) rather than block when the daemon is behind."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            try:
                self.control.send(data, 0 if wait else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                pass  # the daemon is gone; the control thread notices the EOF
        return True

    def log(self, text: str, level: int = _LOG_INFO) -> None:
        self.tell(("log", level, text))

    def control_loop(self) -> None:
        """Apply the daemon's messages; flush counters every FLUSH_INTERVAL seconds."""
        control = self.control
        control.settimeout(FLUSH_INTERVAL)
        while not self.stopping:
            try:
                data = control.recv(CONTROL_SIZE)
            except socket.timeout:
                self.flush()
                continue
            except OSError:
                data = b""
            if not data:  # the daemon closed its end (or died): stop
                self.stop()
                break
            message = pickle.loads(data)  # only the daemon holds the other end
            try:
                self.handle(message)
            except Exception as exc:  # a bad SA must not kill the worker
                self.log(f"{self.role} worker: {message[0]} failed: {exc!r}")
            if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
                self.flush()
        self.flush()
        if self.exit_on_stop:
            os._exit(0)

    def handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "install":
            self.install(message[1])
        elif kind == "update":
            self.update(message[1])
        elif kind == "remove":
            self.remove(message[1])
        elif kind == "config":
            config = message[1]
            self.mss_clamp = bool(config.get("mss_clamp", False))
            if not config.get("udp_gso", True):
                self.gso = False
        elif kind == "esp":
            self.inject(message[1])
        elif kind == "sync":
            self.tell(("synced", message[1]))
        elif kind == "stop":
            self.stop()

    def stop(self) -> None:
        self.stopping = True

    def internal_error(self, exc: BaseException) -> None:
        """A packet raised an unexpected exception: count it, log the first few."""
        self.reasons[DROP_INTERNAL] += 1
        if self.reasons[DROP_INTERNAL] <= 10:
            import traceback

            self.log(f"{self.role} worker: packet dropped on an internal error: "
                     + "".join(traceback.format_exception(exc)).strip())

    def guarded(self, func, *args) -> None:
        try:
            func(*args)
        except Exception as exc:
            self.internal_error(exc)

    # -- to be provided by each direction -----------------------------------------------------

    def install(self, spec: SaSpec) -> None:
        raise NotImplementedError

    def update(self, spec: SaSpec) -> None:
        raise NotImplementedError

    def remove(self, spi_in: int) -> None:
        raise NotImplementedError

    def inject(self, datagram: bytes) -> None:
        """An ESP datagram the daemon read itself (inbound only)."""

    def flush(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError


class InboundWorker(_Worker):
    """Sockets -> ESP decapsulation -> TUN (see the module docstring)."""

    role = "in"

    def __init__(self, control, board, tun_fd, sockets: list[tuple[socket.socket, str]],
                 vnet: bool = False) -> None:
        super().__init__(control, board, tun_fd, vnet)
        self.table = InboundTable()
        self.sockets = sockets
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._injected: deque[bytes] = deque()

    # control thread ------------------------------------------------------------------------

    def install(self, spec: SaSpec) -> None:
        entry = self.table.install(spec)
        self._flush_entry(entry)  # zeros, or the counts it resumes from

    def update(self, spec: SaSpec) -> None:
        self.table.update(spec)

    def remove(self, spi_in: int) -> None:
        entry = self.table.remove(spi_in)
        if entry is not None:
            self._flush_entry(entry)

    def inject(self, datagram: bytes) -> None:
        # decapsulated by the packet thread: the SA's replay window has one user
        self._injected.append(datagram)
        self._wake()

    def stop(self) -> None:
        super().stop()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    def flush(self) -> None:
        for entry in self.table.entries():
            self._flush_entry(entry)
        self.board.write_reasons(self.role, self.reasons)
        self._last_flush = time.monotonic()

    def _flush_entry(self, entry) -> None:
        esp = entry.esp
        state = (esp.packets_in, entry.dropped)
        if state != entry.flushed:
            entry.flushed = state
            self.board.write_in(entry.slot, esp.packets_in, esp.bytes_in, esp.last_in, entry.dropped,
                                esp.replay.top)

    # packet thread ---------------------------------------------------------------------------

    def run(self) -> None:
        poller = select.epoll()
        handlers = {self._wake_r: self._on_wake}
        poller.register(self._wake_r, select.EPOLLIN)
        self._register_readers(poller, handlers)
        reasons = self.reasons
        try:
            while not self.stopping:
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                reasons[EVENT_WAKEUPS] += 1
                for fd, _ in events:
                    handlers[fd]()
        finally:
            poller.close()

    def _register_readers(self, poller: select.epoll, handlers: dict) -> None:
        """Make each socket non-blocking, register it with ``poller`` and put its reader
        (drains a batch of packets) in ``handlers`` under its file descriptor."""
        for sock, kind in self.sockets:
            sock.setblocking(False)
            handlers[sock.fileno()] = self._udp_reader(sock) if kind == UDP else self._raw_reader(sock)
            poller.register(sock.fileno(), select.EPOLLIN)

    def _on_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        while self._injected:
            self.guarded(self.esp, self._injected.popleft())
        self.flush_tun()

    def flush_tun(self) -> None:
        """Write what the batch left queued for the TUN (coalesced TCP segments)."""
        try:
            self.tun.flush()
        except OSError:
            self.reasons[DROP_TUN_WRITE] += 1
        except Exception as exc:
            self.internal_error(exc)

    def _udp_reader(self, sock: socket.socket):
        recvmsg = sock.recvmsg
        esp = self.esp
        flush = self.flush_tun
        family = sock.family
        port = sock.getsockname()[1]
        any_host = "::" if family == socket.AF_INET6 else "0.0.0.0"

        def read() -> None:
            try:
                batch()
            finally:
                flush()

        def batch() -> None:
            for _ in range(BATCH):
                try:
                    data, ancillary, _flags, source = recvmsg(RECV_SIZE, ANC_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    if exc.errno in _IGNORED_RECV_ERRORS:
                        continue
                    self.log(f"inbound worker: receive on port {port}: {exc}")
                    return
                if data[:4] == NON_ESP_MARKER:
                    # IKE for the daemon; dropped (and retransmitted by the peer) rather
                    # than stall the ESP behind it when the daemon falls behind (a flood)
                    destination = _pktinfo_destination(ancillary) or any_host
                    if self.tell(("ike", data[4:], (source[0].split("%", 1)[0], source[1]),
                                  (destination, port)), wait=False):
                        self.reasons[EVENT_IKE] += 1
                    else:
                        self.reasons[DROP_IKE_BACKLOG] += 1
                elif data == NAT_KEEPALIVE:
                    self.reasons[EVENT_KEEPALIVE] += 1
                else:
                    try:
                        esp(data, source)
                    except Exception as exc:  # a bug must cost one packet, not the worker
                        self.internal_error(exc)

        return read

    def _raw_reader(self, sock: socket.socket):
        recv = sock.recv
        esp = self.esp
        # an IPv4 raw socket returns the IP header too, an IPv6 one only the payload
        ipv4 = sock.family == socket.AF_INET
        family = "IPv4" if ipv4 else "IPv6"

        def read() -> None:
            try:
                batch()
            finally:
                self.flush_tun()

        def batch() -> None:
            for _ in range(BATCH):
                try:
                    data = recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    if exc.errno in _IGNORED_RECV_ERRORS:
                        continue
                    self.log(f"inbound worker: raw {family} receive: {exc}")
                    return
                try:
                    esp(data[(data[0] & 0x0F) << 2 :] if ipv4 else data)
                except Exception as exc:
                    self.internal_error(exc)

        return read

    def esp(self, packet: bytes, source: tuple | None = None) -> None:
        """Decapsulate one ESP packet (starting at the SPI) and write it to the TUN.
        ``source``: the UDP sender of ESP-in-UDP, to notice NAT mapping changes."""
        entry = self.table.by_spi.get(packet[:4])
        if entry is None:
            self.reasons[DROP_SHORT if len(packet) < 8 else DROP_UNKNOWN_SPI] += 1
            return
        try:
            inner, next_header = entry.esp.decapsulate(packet)
        except EspError as exc:
            entry.dropped += 1
            self.reasons[exc.reason] += 1
            return
        version = 4 if next_header == 4 else 6
        if not entry.allows(inner, version):
            entry.dropped += 1
            self.reasons[DROP_SPOOFED] += 1
            return
        if source is not None and entry.udp_encap:
            source = (source[0].split("%", 1)[0], source[1])
            if source != entry.remote:
                self._peer_moved(entry, source)
        if self.mss_clamp:
            inner = clamp_mss(inner, entry.mss[version])
        try:
            self.tun.add(inner)
        except OSError:
            self.reasons[DROP_TUN_WRITE] += 1


    def _peer_moved(self, entry, source: tuple) -> None:
        """Authenticated ESP from a new outer endpoint: tell the daemon (at most once a
        second per SA, until the IKE side updates the SA)."""
        now = time.monotonic()
        if now - entry.moved_told >= 1.0:
            entry.moved_told = now
            self.reasons[EVENT_PEER_MOVED] += 1
            self.tell(("moved", entry.spi_in, source), wait=False)


class OutboundWorker(_Worker):
    """TUN -> ESP encapsulation -> sockets (see the module docstring)."""

    role = "out"

    def __init__(self, control, board, tun_fd, sockets: list[tuple[socket.socket, str]],
                 vnet: bool = False) -> None:
        super().__init__(control, board, tun_fd, vnet)
        self.table = OutboundTable()
        # (family, udp_encap) -> socket to send from
        self.senders = {(sock.family, kind == UDP): sock for sock, kind in sockets}
        self.gso = True  # UDP_SEGMENT works until the kernel says otherwise
        self._gso_worked = False
        self._gso_failures = 0
        self._pending: list[bytes] = []  # ESP packets for one SA, sent together
        self._pending_entry = None
        self._pending_size = 0
        self._pending_bytes = 0
        self._icmp_tokens = float(ICMP_RATE)
        self._icmp_time = time.monotonic()

    # control thread ------------------------------------------------------------------------

    def install(self, spec: SaSpec) -> None:
        entry = self.table.install(spec, self.senders)
        if entry.sendmsg is None:
            entry.sendmsg = _unreachable
            self.log(f"outbound worker: no socket to send {spec.label} to {spec.remote[0]}"
                     f" ({'UDP' if spec.udp_encap else 'native ESP'})")
        self._flush_entry(entry, time.monotonic())  # zeros, or the counts it resumes from

    def update(self, spec: SaSpec) -> None:
        self.table.update(spec, self.senders)
        entry = self.table.by_id.get(spec.spi_in)
        if entry is not None and entry.sendmsg is None:
            entry.sendmsg = _unreachable

    def remove(self, spi_in: int) -> None:
        entry = self.table.remove(spi_in)
        if entry is not None:
            self._flush_entry(entry, time.monotonic())

    def flush(self) -> None:
        now = time.monotonic()
        for entry in self.table.entries():
            self._flush_entry(entry, now)
        self.board.write_reasons(self.role, self.reasons)
        self._last_flush = now

    def _flush_entry(self, entry, now: float) -> None:
        esp = entry.esp
        state = (esp.packets_out, entry.dropped)
        if state != entry.flushed:
            if esp.packets_out != entry.flushed[0] and entry.flushed[0] >= 0:
                entry.last_out = now  # to within one flush interval
            entry.flushed = state
            self.board.write_out(entry.slot, esp.packets_out, esp.bytes_out, entry.last_out, entry.dropped,
                                 esp.seq_out)

    # packet thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """Read the TUN until it is empty (or BATCH packets), send, sleep in poll().

        Reading ahead lets consecutive ESP packets to one peer leave in one system call
        (:meth:`_queue`).  The descriptor is made non-blocking: that flag belongs to the
        open file, shared with the inbound worker, whose TUN writes never block anyway.
        """
        os.set_blocking(self.tun_fd, False)
        poller = select.poll()
        poller.register(self.tun_fd, select.POLLIN)
        while not self.stopping:
            if not self.drain():
                return
            try:
                poller.poll()
            except InterruptedError:
                continue

    def drain(self) -> bool:
        """Read and send up to BATCH packets; False when the TUN is gone."""
        read = os.read
        fd = self.tun_fd
        packet_out = self.packet
        try:
            for _ in range(BATCH):
                try:
                    data = read(fd, READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError as exc:
                    if not self.stopping:
                        self.log(f"outbound worker: TUN read failed: {exc}; stopping")
                    return False
                if data:
                    try:
                        packet_out(data)
                    except Exception as exc:  # a bug must cost one packet, not the worker
                        self.internal_error(exc)
            return True
        finally:
            self._flush_sends()

    def packet(self, data: bytes) -> None:
        """Encapsulate and send one packet read from the TUN (after its virtio_net_hdr
        when the device has one: without offloads enabled it never asks for GSO or a
        checksum, so it is skipped unread)."""
        o = VNET_HDR_LEN if self.vnet else 0
        if len(data) <= o + 20:
            self.reasons[DROP_NOT_IP] += 1
            return
        version = data[o] >> 4
        if version == 4:
            key = data[o + 16 : o + 20]
            next_header = 4
        elif version == 6:
            key = data[o + 24 : o + 40]
            next_header = 41
        else:
            self.reasons[DROP_NOT_IP] += 1
            return
        entry = self.table.hosts.get(key)
        if entry is None:
            entry = self.table.lookup_range(version, key)
            if entry is None:
                self.reasons[DROP_NO_SA] += 1
                return
        packet = memoryview(data)[o:] if o else data
        if len(packet) > entry.mtu:
            self._too_big(entry, bytes(packet), version, next_header)
            return
        if self.mss_clamp:
            packet = clamp_mss(bytes(packet), entry.mtu - (40 if version == 4 else 60))
        try:
            esp = entry.esp.encapsulate(packet, next_header)
        except EspError as exc:
            entry.dropped += 1
            self.reasons[exc.reason] += 1
            return
        self._queue(entry, esp)

    def _queue(self, entry, esp: bytes) -> None:
        """Send ``esp`` now or with the next ESP packets for the same peer.

        UDP generic segmentation offload (``UDP_SEGMENT``, Linux 4.18): one ``sendmsg``
        with N buffers of equal size (the last may be shorter) leaves as N datagrams,
        and the kernel carries them as one packet as far as it can.  Consecutive packets
        of one SA are mostly equal-sized full segments of a TCP stream.
        """
        pending = self._pending
        if pending:
            if (entry is self._pending_entry and len(esp) <= self._pending_size
                    and len(pending) < GSO_SEGMENTS and self._pending_bytes + len(esp) <= GSO_BYTES):
                pending.append(esp)
                self._pending_bytes += len(esp)
                if len(esp) < self._pending_size:
                    self._flush_sends()  # a shorter packet must be the last
                return
            self._flush_sends()
        if entry.udp and self.gso:
            self._pending_entry = entry
            self._pending_size = len(esp)
            self._pending_bytes = len(esp)
            pending.append(esp)
            return
        try:
            entry.sendmsg((esp,), entry.ancillary, 0, entry.address)
        except OSError:
            entry.dropped += 1
            self.reasons[DROP_SEND] += 1

    def _flush_sends(self) -> None:
        pending = self._pending
        if not pending:
            return
        entry = self._pending_entry
        try:
            if len(pending) == 1:
                entry.sendmsg(pending, entry.ancillary, 0, entry.address)
            else:
                segment = [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(self._pending_size))]
                entry.sendmsg(pending, segment + entry.ancillary, 0, entry.address)
                self._gso_worked = True
        except OSError as exc:
            if len(pending) > 1:
                self._gso_refused(exc, entry, pending)
            else:
                entry.dropped += 1
                self.reasons[DROP_SEND] += 1
        pending.clear()
        self._pending_entry = None

    def _gso_refused(self, exc: OSError, entry, pending: list[bytes]) -> None:
        """A segmented send failed: send the packets one by one.  A kernel without UDP
        GSO says EINVAL/EIO/ENOPROTOOPT every time: after a few such failures without a
        single success, stop trying.  (EMSGSIZE and friends are about one path.)"""
        sent = 0
        for esp in pending:
            try:
                entry.sendmsg((esp,), entry.ancillary, 0, entry.address)
                sent += 1
            except OSError:
                entry.dropped += 1
                self.reasons[DROP_SEND] += 1
        if sent and exc.errno in (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
            self._gso_failures += 1
            if self._gso_failures >= GSO_GIVE_UP and not self._gso_worked:
                self.gso = False
                self.log(f"outbound worker: UDP segmentation offload refused ({exc}); not using it")

    def _too_big(self, entry, packet: bytes, version: int, next_header: int) -> None:
        """An inner packet larger than the SA's MTU.

        IPv4 without DF: fragmented before encryption.  IPv6 up to 1280 bytes (the IPv6
        minimum MTU, which every link must carry, RFC 8200 5): sent anyway, the outer
        packet is fragmented by our kernel.  Otherwise: ICMP "fragmentation needed" /
        "packet too big" with the SA's MTU back to the sender, and the packet is dropped.
        """
        if version == 4 and not dont_fragment(packet):
            self.reasons[EVENT_FRAGMENTED] += 1
            for piece in fragment_ipv4(packet, entry.mtu):
                self._send(entry, piece, next_header)
            return
        if version == 6 and len(packet) <= IPV6_MIN_MTU:
            self._send(entry, packet, next_header)
            return
        entry.dropped += 1
        self.reasons[DROP_TOO_BIG] += 1
        if not self._icmp_allowed():
            return
        # From the packet's destination: the kernel drops what comes out of the TUN with
        # one of its own addresses as source ("martian"), and the sender accepts the
        # error from anyone as long as it quotes its packet.
        error = too_big_icmp(packet, entry.mtu, None)
        if error is not None:
            try:
                self.tun.write(error)
                self.reasons[EVENT_ICMP] += 1
            except OSError:
                self.reasons[DROP_TUN_WRITE] += 1

    def _send(self, entry, packet: bytes, next_header: int) -> None:
        """Encapsulate and queue one packet (the slow path's version of :meth:`packet`)."""
        try:
            esp = entry.esp.encapsulate(packet, next_header)
        except EspError as exc:
            entry.dropped += 1
            self.reasons[exc.reason] += 1
            return
        self._queue(entry, esp)

    def _icmp_allowed(self) -> bool:
        now = time.monotonic()
        self._icmp_tokens = min(float(ICMP_RATE), self._icmp_tokens + (now - self._icmp_time) * ICMP_RATE)
        self._icmp_time = now
        if self._icmp_tokens < 1.0:
            return False
        self._icmp_tokens -= 1.0
        return True


class DuplexWorker(_Worker):
    """Both directions in one loop: epoll over the sockets *and* the TUN, each drained.

    Used for ``workers="single"``: one process, both directions.  A packet written to the
    TUN often makes the kernel queue an answer (a TCP ACK) on the TUN before the write
    returns, which this loop then reads without sleeping in between.
    """

    role = "in"  # its counters go to the "in" row; the outbound half writes the "out" row

    def __init__(self, control, board, tun_fd, sockets: list[tuple[socket.socket, str]],
                 vnet: bool = False) -> None:
        super().__init__(control, board, tun_fd, vnet)
        self.inbound = InboundWorker(control, board, tun_fd, sockets, vnet)
        self.outbound = OutboundWorker(control, board, tun_fd, sockets, vnet)
        self.outbound._send_lock = self.inbound._send_lock = self._send_lock

    def handle(self, message: tuple) -> None:
        if message[0] == "for":  # ("for", "in"|"out", message): one direction's message
            (self.inbound if message[1] == "in" else self.outbound).handle(message[2])
            return
        if message[0] == "sync":  # one answer for both halves
            self.tell(("synced", message[1]))
            return
        self.inbound.handle(message)
        self.outbound.handle(message)
        if message[0] == "stop":
            self.stop()

    def stop(self) -> None:
        super().stop()
        self.inbound.stop()
        self.outbound.stop()

    def flush(self) -> None:
        self.inbound.flush()
        self.outbound.flush()
        self._last_flush = time.monotonic()

    def run(self) -> None:
        os.set_blocking(self.tun_fd, False)
        inbound = self.inbound
        poller = select.epoll()
        handlers = {inbound._wake_r: inbound._on_wake}
        poller.register(inbound._wake_r, select.EPOLLIN)
        inbound._register_readers(poller, handlers)
        handlers[self.tun_fd] = self.outbound.drain
        poller.register(self.tun_fd, select.EPOLLIN)
        try:
            while not self.stopping:
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                inbound.reasons[EVENT_WAKEUPS] += 1
                for fd, _ in events:
                    if handlers[fd]() is False:
                        return
        finally:
            poller.close()


def _unreachable(*_args) -> None:
    raise OSError(errno.ENETUNREACH, "no socket for this SA's address family/encapsulation")


def _pktinfo_destination(ancillary) -> str | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntop(socket.AF_INET, data[8:12])
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(data) >= 16:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None


def start_threads(worker: _Worker) -> list[threading.Thread]:
    """Run ``worker`` as two daemon threads of this process (packet loop + control)."""
    threads = [
        threading.Thread(target=worker.run, name=f"ikegate-esp-{worker.role}", daemon=True),
        threading.Thread(target=worker.control_loop, name=f"ikegate-esp-{worker.role}-ctl", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


# -- worker process -------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when the daemon dies (no orphaned workers)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ikegate-esp-worker", description="ikegate data-plane worker")
    parser.add_argument("role", choices=("in", "out", "both"))
    parser.add_argument("--control", type=int, required=True, help="SOCK_SEQPACKET fd to the daemon")
    parser.add_argument("--tun", type=int, required=True, help="TUN device fd")
    parser.add_argument("--board", required=True, help="FD:CAPACITY of the counter block")
    parser.add_argument("--socket", action="append", default=[], help="FD:udp or FD:raw")
    parser.add_argument("--parent", type=int, required=True, help="pid of the daemon")
    parser.add_argument("--vnet", action="store_true", help="the TUN has IFF_VNET_HDR")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process (started by the daemon, never by hand)."""
    args = _parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.parent:  # the daemon died before the line above
        return 1
    # The daemon decides when we stop (a SIGTERM to its process group must let it delete
    # the SAs and routes first); if it dies, PR_SET_PDEATHSIG or the control EOF ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    control = socket.socket(fileno=args.control)
    board_fd, capacity = (int(x) for x in args.board.split(":"))
    board = CounterBoard(capacity, fd=board_fd)
    sockets = []
    for item in args.socket:
        fd, kind = item.split(":")
        sockets.append((socket.socket(fileno=int(fd)), kind))
    cls = {"in": InboundWorker, "out": OutboundWorker, "both": DuplexWorker}[args.role]
    worker = cls(control, board, args.tun, sockets, args.vnet)
    worker.exit_on_stop = True
    threading.Thread(target=worker.control_loop, name="control", daemon=True).start()
    gc.freeze()  # what was set up stays; per-packet garbage is young
    worker.tell(("ready", worker.role, os.getpid()))
    try:
        worker.run()
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
