"""Hostile IKE input for the end-to-end tests: messages built with scapy, a prober that
sends them from a client namespace and collects the gateway's answers, a reader for
captured IKE traffic, and a fast flood of IKE_SA_INIT requests from spoofed sources.

scapy's IKEv2 layer (``scapy.contrib.ikev2``) is the encoder and decoder here: it
shares no code with ikegate, so a message that it builds and ikegate accepts (or an
answer from ikegate that it parses) is an independent check of the wire format.  The
malformed variants are scapy messages with one field or byte deliberately broken.

Answers are collected without sleeping: after each probe the :class:`Prober` sends a
*sentinel* from the same socket to the same port, an IKE_SA_INIT with major version 3
which the gateway always answers with INVALID_MAJOR_VERSION (RFC 7296 2.5).  The
gateway handles the datagrams of one socket in order (on port 4500 they pass through
the data plane's inbound worker, which keeps that order), so once the sentinel's answer
is in, every answer to the probe (and every log line about it) is in too.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Iterable, Sequence

from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Payload,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2NotifyMessageTypes,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet
from scapy.utils import rdpcap

from .netns import Namespace, socket_in
from .wireshark import udp_packet

IKE_PORT, NATT_PORT = 500, 4500
NON_ESP_MARKER = bytes(4)  # RFC 3948 2.2
NAT_KEEPALIVE = b"\xff"  # RFC 3948 2.3
MAX_UDP4_PAYLOAD = 65507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
IKE_HEADER_LEN = 28

# Notify message types by name, from scapy's own table (RFC 7296 3.10.1).
NOTIFY = {name: number for number, name in IKEv2NotifyMessageTypes.items()}

# Header flags (RFC 7296 3.1), as scapy names them.
INITIATOR, RESPONSE = "Initiator", "Response"

# Payload types (RFC 7296 3.2) of the payloads built here.
PT_SA, PT_KE, PT_NONCE, PT_NOTIFY = 33, 34, 40, 41
EXCHANGE = {"IKE_SA_INIT": 34, "IKE_AUTH": 35, "CREATE_CHILD_SA": 36, "INFORMATIONAL": 37}

# Public value lengths: MODP = prime size (RFC 3526), ECP-256 = x||y (RFC 5903 7).
KE_LENGTH = {"768MODPgr": 96, "1024MODPgr": 128, "2048MODPgr": 256, "3072MODPgr": 384, "256randECPgr": 64}

# A proposal the seed's ike= accepts (aes256-sha256-modp2048 is part of its product list).
ACCEPTABLE = (("Encryption", "AES-CBC", 256), ("PRF", "PRF_HMAC_SHA2_256"),
              ("Integrity", "SHA2-256-128"), ("GroupDesc", "2048MODPgr"))
# One the seed refuses: nothing of it is in aes256-...-sha1-modp3072-...-modp1024!
UNACCEPTABLE = (("Encryption", "3DES"), ("PRF", "PRF_HMAC_MD5"), ("Integrity", "HMAC-MD5-96"),
                ("GroupDesc", "768MODPgr"))


# ---------------------------------------------------------------------------------- building


def transform(ttype: str, tid: str, key_bits: int | None = None) -> IKEv2_Transform:
    if key_bits is None:
        return IKEv2_Transform(transform_type=ttype, transform_id=tid)
    return IKEv2_Transform(transform_type=ttype, transform_id=tid, length=12, key_length=key_bits)


def proposal(specs: Sequence[tuple], number: int = 1, proto: str = "IKE") -> IKEv2_Proposal:
    """One proposal of ``(type, id[, key bits])`` transforms, in the given order."""
    chain = reduce(lambda a, b: a / b, [transform(*s) for s in specs])
    return IKEv2_Proposal(proposal=number, proto=proto, trans_nb=len(specs), trans=chain)


def sa_payload(*proposals: IKEv2_Proposal) -> IKEv2_SA:
    return IKEv2_SA(prop=reduce(lambda a, b: a / b, proposals))


def ke_payload(group: str = "2048MODPgr", data: bytes | None = None) -> IKEv2_KE:
    """A KE payload of ``group`` with ``data``, or with a value that passes for a MODP
    public value (below every MODP prime, whose top 64 bits are ones: RFC 3526)."""
    if data is None:
        data = b"\x7f" + os.urandom(KE_LENGTH[group] - 1)
    return IKEv2_KE(group=group, ke=data)


def nonce_payload(data: bytes | None = None) -> IKEv2_Nonce:
    return IKEv2_Nonce(nonce=os.urandom(32) if data is None else data)


@dataclass
class Unknown:
    """A payload of a type scapy (and ikegate) does not know: the previous payload's
    Next Payload field must name it explicitly."""

    ptype: int
    critical: bool
    body: bytes = b"hostile"

    def packet(self) -> IKEv2_Payload:
        return IKEv2_Payload(flags="critical" if self.critical else 0, load=self.body)


def message(spi_i: bytes, spi_r: bytes = bytes(8), exchange: str = "IKE_SA_INIT", payloads: Sequence = (),
            *, mid: int = 0, flags: str = INITIATOR, version: int = 0x20) -> bytes:
    """An IKE message of scapy payloads (and :class:`Unknown` ones), encoded by scapy."""
    header = IKEv2(init_SPI=spi_i, resp_SPI=spi_r, exch_type=EXCHANGE[exchange], flags=flags, id=mid,
                   version=version)
    layers: list[Packet] = [header]
    for item in payloads:
        if isinstance(item, Unknown):
            layers[-1].next_payload = item.ptype
            layers.append(item.packet())
        else:
            layers.append(item)
    return bytes(reduce(lambda a, b: a / b, layers))


def sa_init(spi_i: bytes | None = None, *, proposals: Iterable[IKEv2_Proposal] | None = None,
            ke: IKEv2_KE | None = None, nonce: IKEv2_Nonce | None = None, extra: Sequence = (),
            omit: Iterable[str] = (), **kw) -> bytes:
    """An IKE_SA_INIT request (SA, KE, Nonce, then ``extra``) the seed would accept,
    unless told otherwise; ``omit`` drops any of "SA", "KE", "Nonce"."""
    omit = set(omit)
    payloads: list = []
    if "SA" not in omit:
        payloads.append(sa_payload(*(proposals or [proposal(ACCEPTABLE)])))
    if "KE" not in omit:
        payloads.append(ke or ke_payload())
    if "Nonce" not in omit:
        payloads.append(nonce or nonce_payload())
    payloads.extend(extra)
    return message(spi_i or new_spi(), payloads=payloads, **kw)


def new_spi() -> bytes:
    return os.urandom(8)


SENTINEL_SPI = b"sentinel"


def sentinel() -> bytes:
    """An IKE_SA_INIT with major version 3: always answered with INVALID_MAJOR_VERSION."""
    return sa_init(SENTINEL_SPI, version=0x30)


# ---------------------------------------------------------------------------------- decoding


@dataclass
class Answer:
    """One datagram from the gateway (non-ESP marker removed) and scapy's view of it."""

    data: bytes
    port: int  # the gateway port it came from

    @property
    def ike(self) -> IKEv2:
        return IKEv2(self.data)

    @property
    def payload_types(self) -> list[int]:
        pkt = self.ike
        types, layer, nxt = [], pkt.payload, pkt.next_payload
        while nxt and isinstance(layer, IKEv2_Payload):
            types.append(nxt)
            nxt, layer = layer.next_payload, layer.payload
        return types

    @property
    def notifies(self) -> list[tuple[int, bytes]]:
        """(type, data) of each Notify payload, in order."""
        found, layer = [], self.ike.payload
        while isinstance(layer, IKEv2_Payload):
            if isinstance(layer, IKEv2_Notify):
                found.append((int(layer.type), bytes(layer.notify)))
            layer = layer.payload
        return found

    def describe(self) -> str:
        pkt = self.ike
        names = [IKEv2NotifyMessageTypes.get(t, t) for t, _ in self.notifies]
        return (f"<{len(self.data)} bytes from port {self.port}: exchange {pkt.exch_type} flags {pkt.flags} "
                f"mid {pkt.id} version {pkt.version:#x} payloads {self.payload_types} notifies {names}>")


def only_notify(answers: list[Answer]) -> tuple[int, bytes]:
    """The single Notify of the single answer (an error answer carries nothing else)."""
    if len(answers) != 1:
        raise AssertionError(f"expected one answer, got {[a.describe() for a in answers]}")
    notifies = answers[0].notifies
    if len(notifies) != 1 or answers[0].payload_types != [PT_NOTIFY]:
        raise AssertionError(f"expected a single Notify payload, got {answers[0].describe()}")
    return notifies[0]


# ---------------------------------------------------------------------------------- probing


def endpoint_text(host: str, port: int) -> str:
    """How the gateway's log names an endpoint (charon style)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}[{port}]"


class Prober:
    """A UDP socket in ``ns`` bound to ``host`` (ephemeral port), talking to ``gateway``.

    Its port is its own, so the gateway's log lines about its datagrams can be told
    apart by :attr:`endpoint`."""

    def __init__(self, ns: Namespace, host: str, gateway: str) -> None:
        self.host, self.gateway = host, gateway
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket_in(ns, self.family, socket.SOCK_DGRAM, bind=(host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.port = self.sock.getsockname()[1]

    @property
    def endpoint(self) -> str:
        return endpoint_text(self.host, self.port)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, port: int = IKE_PORT, *, marker: bool = False) -> None:
        self.sock.sendto((NON_ESP_MARKER if marker else b"") + data, (self.gateway, port))

    def _read(self, timeout: float) -> Answer | None:
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        data, addr = self.sock.recvfrom(70000)
        port = addr[1]
        if port == NATT_PORT:
            if data[:4] != NON_ESP_MARKER:
                raise AssertionError(f"answer on port 4500 without non-ESP marker: {data[:16].hex()}")
            data = data[4:]
        return Answer(data, port)

    def drain(self) -> None:
        while self._read(0) is not None:
            pass

    def exchange(self, data: bytes | Sequence[bytes], port: int = IKE_PORT, *, marker: bool | None = None,
                 timeout: float = 10.0) -> list[Answer]:
        """Send ``data`` (one datagram or several) and return every answer to it.

        On port 4500 the non-ESP marker is prepended unless ``marker=False``; the
        sentinel that ends the wait always carries it there (it must reach IKE)."""
        if marker is None:
            marker = port == NATT_PORT
        self.drain()
        for item in [data] if isinstance(data, (bytes, bytearray)) else data:
            self.send(bytes(item), port, marker=marker)
        self.send(sentinel(), port, marker=port == NATT_PORT)
        answers: list[Answer] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            answer = self._read(left)
            if answer is None:
                break
            if answer.data[:8] == SENTINEL_SPI:
                return answers
            answers.append(answer)
        raise AssertionError(f"no answer to the sentinel within {timeout}s (is the gateway alive?); "
                             f"answers so far: {[a.describe() for a in answers]}")


class LogMark:
    """The gateway's log from a point on."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.offset = len(gateway.log_text())

    def text(self) -> str:
        return self.gateway.log_text()[self.offset:]


# ---------------------------------------------------------------------------------- captures


@dataclass
class Datagram:
    """One captured IKE message and where it went."""

    src: str
    sport: int
    dst: str
    dport: int
    data: bytes  # the IKE message, non-ESP marker removed

    @property
    def ike(self) -> IKEv2:
        return IKEv2(self.data)

    @property
    def response(self) -> bool:
        return bool(self.data[19] & 0x20)

    @property
    def exchange(self) -> int:
        return self.data[18]

    @property
    def message_id(self) -> int:
        return struct.unpack_from("!I", self.data, 20)[0]


def ike_datagrams(pcap: Path) -> list[Datagram]:
    """The IKE messages of a capture, in order (ESP and NAT keepalives left out)."""
    found = []
    for pkt in rdpcap(str(pcap)):
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        udp = pkt.getlayer(UDP)
        ports = (udp.sport, udp.dport) if udp is not None else ()
        if ip is None or (IKE_PORT not in ports and NATT_PORT not in ports):
            continue
        data = bytes(udp.payload)
        if NATT_PORT in ports:
            if data[:4] != NON_ESP_MARKER:
                continue
            data = data[4:]
        if len(data) >= IKE_HEADER_LEN:
            found.append(Datagram(ip.src, udp.sport, ip.dst, udp.dport, data))
    return found


def flip_bit(data: bytes, offset: int, bit: int = 0) -> bytes:
    """``data`` with one bit inverted."""
    buf = bytearray(data)
    buf[offset] ^= 1 << bit
    return bytes(buf)


def with_header(data: bytes, *, exchange: int | None = None, flags: int | None = None,
                mid: int | None = None) -> bytes:
    """``data`` with header fields replaced (nothing else changed)."""
    buf = bytearray(data)
    if exchange is not None:
        buf[18] = exchange
    if flags is not None:
        buf[19] = flags
    if mid is not None:
        struct.pack_into("!I", buf, 20, mid)
    return bytes(buf)


# ---------------------------------------------------------------------------------- the flood


@dataclass
class FloodResult:
    """What a :class:`Flood` sent and what came back."""

    sent: int = 0
    seconds: float = 0.0
    answers: int = 0
    cookies: int = 0
    other: dict = field(default_factory=dict)  # any other answer, by kind -> count
    first_cookie_at: float | None = None  # seconds after the start
    cookie_sample: bytes = field(default=b"", repr=False)  # the first COOKIE answer


class Flood:
    """``count`` IKE_SA_INIT requests, each from its own address of ``network``.

    The packets (IPv4, UDP 500 -> 500) are built in advance from one scapy template,
    each with its own SPIi, and written with a raw socket (IP_HDRINCL) in ``ns``, in
    bursts, at about ``rate`` per second, from a thread.  For the answers to come back
    the gateway's namespace must route ``network`` to ``ns`` and ``ns`` must take it
    as local (``ip route add local NETWORK dev lo``); a UDP socket on port 500 there
    counts them by kind, and keeps the first COOKIE answer for a closer look.
    """

    def __init__(self, ns: Namespace, network: str, gateway: str, count: int = 10_000, *,
                 rate: float = 4000.0, burst: int = 100, template: bytes | None = None) -> None:
        self.ns, self.gateway, self.count, self.rate, self.burst = ns, gateway, count, rate, burst
        self.network = ipaddress.IPv4Network(network)
        if count > self.network.num_addresses - 2:
            raise ValueError(f"{network} has fewer than {count} host addresses")
        self.template = template or sa_init(bytes(8))
        self.result = FloodResult()
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stop_sending = threading.Event()
        self._stop_receiving = threading.Event()
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None

    def sources(self) -> list[str]:
        hosts = self.network.hosts()
        return [str(next(hosts)) for _ in range(self.count)]

    def packets(self) -> list[bytes]:
        """The raw IPv4 packets, SPIi = b"flood" + 3-byte counter."""
        out = []
        for i, src in enumerate(self.sources()):
            ike = b"flood" + i.to_bytes(3, "big") + self.template[8:]
            out.append(udp_packet(src, self.gateway, IKE_PORT, IKE_PORT, ike))
        return out

    def start(self) -> "Flood":
        packets = self.packets()
        self._receiver = socket_in(self.ns, socket.AF_INET, socket.SOCK_DGRAM, bind=("0.0.0.0", IKE_PORT))
        self._receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sender = socket_in(self.ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self._t0 = self._last_answer = time.monotonic()
        self._threads = [threading.Thread(target=self._send, args=(packets,), daemon=True, name="flood-send"),
                         threading.Thread(target=self._receive, daemon=True, name="flood-recv")]
        for t in self._threads:
            t.start()
        return self

    def _send(self, packets: list[bytes]) -> None:
        sendto, dst = self._sender.sendto, (self.gateway, 0)
        interval = self.burst / self.rate
        next_at = time.monotonic()
        for i in range(0, len(packets), self.burst):
            if self._stop_sending.is_set():
                break
            for pkt in packets[i:i + self.burst]:
                try:
                    sendto(pkt, dst)
                    self.result.sent += 1
                except BlockingIOError:
                    pass
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.result.seconds = time.monotonic() - self._t0
        self.done.set()

    def _receive(self) -> None:
        sock, result = self._receiver, self.result
        sock.settimeout(0.2)
        while not self._stop_receiving.is_set():
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if data[:5] != b"flood":
                continue
            self._last_answer = time.monotonic()
            result.answers += 1
            # an error/COOKIE answer is header + one Notify: type at offset 28 + 6
            if data[16] == PT_NOTIFY and len(data) >= 36:
                ntype = struct.unpack_from("!H", data, 34)[0]
                if ntype == NOTIFY["COOKIE"]:
                    result.cookies += 1
                    if result.first_cookie_at is None:
                        result.first_cookie_at = time.monotonic() - self._t0
                        result.cookie_sample = data
                    continue
                key = IKEv2NotifyMessageTypes.get(ntype, ntype)
            else:
                key = "SA_INIT response" if data[16] == PT_SA else f"first payload {data[16]}"
            result.other[key] = result.other.get(key, 0) + 1

    def wait(self, timeout: float) -> FloodResult:
        self.done.wait(timeout)
        return self.result

    def stop(self, quiet: float = 0.5, limit: float = 20.0) -> FloodResult:
        """Stop sending, count answers until none came for ``quiet`` seconds (a busy
        gateway may still be working through its socket buffer; at most ``limit``
        seconds), close the sockets.  Idempotent."""
        if self._stop_receiving.is_set():
            return self.result
        self._stop_sending.set()
        self._threads[0].join(timeout=10)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and time.monotonic() - self._last_answer < quiet:
            time.sleep(0.05)
        self._stop_receiving.set()
        self._threads[1].join(timeout=2)
        for sock in (self._sender, self._receiver):
            if sock is not None:
                sock.close()
        return self.result

    def __enter__(self) -> "Flood":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(quiet=0)
