"""The SA tables of the data-plane workers, and the plain specs the daemon sends them.

The daemon turns each :class:`~ikegate.ike.events.ChildSaInfo` into two
:class:`SaSpec` (one per direction: only the keys that direction needs) and pushes them to
the inbound and the outbound worker, which build the per-SA objects here:

* :class:`InboundSa`: the inbound :class:`~ikegate.esp.EspSa` and the anti-spoofing
  filter (the inner source must be one of the client's own addresses, the remote traffic
  selectors; the inner destination inside the local selectors).
* :class:`OutboundSa`: the outbound ``EspSa``, where and how to send (socket, address,
  source-address ancillary data) and the largest inner packet the SA can carry.

Lookups are dictionary hits on the packed addresses and SPI as they sit in the packet
(``bytes`` slices, no integer conversion): inbound by SPI, outbound by inner destination
address for host selectors (the client's /32 and /128 virtual IPs), with a short list of
ranges scanned only when the dictionary misses.  Traffic selectors are used as address
ranges (protocol and ports are not filtered: road-warrior selectors have none).

Tables are changed in place by the worker's control thread while the packet thread reads
them; each change is a single dictionary or attribute assignment, atomic under the GIL.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field

from ikegate.esp import EspSa
from ikegate.esp.algorithms import ENCRYPTION, INTEGRITY
from ikegate.esp.replay import DEFAULT_WINDOW

__all__ = [
    "InboundSa",
    "InboundTable",
    "OutboundSa",
    "OutboundTable",
    "SaSpec",
    "inner_mtu",
]

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)

Range = tuple[int, int, int]  # (IP version, first address, last address) as integers


@dataclass(slots=True)
class SaSpec:
    """One direction of a CHILD SA, as plain picklable data for a worker.

    ``spi`` is the SPI of this direction's ESP packets (ours inbound, the peer's
    outbound); ``spi_in`` identifies the CHILD SA in both workers.  ``remote`` is the
    peer's outer ``(host, port)``, ``local_host`` our outer address (the source of what
    we send).  ``remote_ts``/``local_ts`` are address ranges.  ``mtu`` is the largest
    inner packet the SA carries (outbound), ``slot`` its counter slot.
    """

    spi_in: int
    spi: int
    slot: int
    encr_id: int
    key_bits: int
    encr_key: bytes = field(repr=False)
    integ_id: int | None
    integ_key: bytes | None = field(repr=False)
    esn: bool
    remote_ts: tuple[Range, ...]
    local_ts: tuple[Range, ...]
    remote: tuple[str, int]
    local_host: str
    udp_encap: bool
    mtu: int
    replay_window: int = DEFAULT_WINDOW
    label: str = ""
    #: Set when a crashed worker is replaced: ``(sequence number, packets, bytes, last
    #: use, dropped)`` to go on from.  Outbound, the sequence number is the last one sent
    #: (plus a margin for what was sent after the last flush); inbound, the highest one
    #: accepted, with the whole window behind it taken as seen.
    resume: tuple[int, int, int, float | None, int] | None = None

    def build_esp(self, inbound: bool = False) -> EspSa:
        esp = EspSa(
            self.spi,
            self.encr_id,
            self.key_bits,
            self.encr_key,
            self.integ_id or None,
            self.integ_key or None,
            esn=self.esn,
            replay_window=self.replay_window,
        )
        if self.resume is not None:
            seq, packets, nbytes, last, _dropped = self.resume
            if inbound:
                for number in range(max(1, seq - self.replay_window + 1), seq + 1):
                    esp.replay.update(number)
                esp.packets_in, esp.bytes_in, esp.last_in = packets, nbytes, last
            else:
                esp.seq_out = seq
                esp.packets_out, esp.bytes_out = packets, nbytes
        return esp


def inner_mtu(path_mtu: int, outer_version: int, udp_encap: bool, encr_id: int,
              integ_id: int | None) -> int:
    """The largest inner packet whose ESP packet still fits ``path_mtu`` bytes.

    An ESP packet is SPI + sequence number (8) + IV + the payload with its padding, Pad
    Length and Next Header padded to the cipher's alignment + ICV (RFC 4303 2), behind the
    outer IP header and, with NAT traversal, a UDP header (RFC 3948).
    """
    algorithm = ENCRYPTION[encr_id]
    icv = algorithm.icv_len
    if not algorithm.aead and integ_id:
        icv = INTEGRITY[integ_id].icv_len
    room = (path_mtu - (20 if outer_version == 4 else 40) - (8 if udp_encap else 0) - 8
            - algorithm.iv_len - icv)
    align = algorithm.block_size
    return (room // align) * align - 2


def _packed(version: int, value: int) -> bytes:
    return value.to_bytes(4 if version == 4 else 16, "big")


def _split(ranges: tuple[Range, ...]) -> tuple[frozenset[bytes], tuple[Range, ...]]:
    """Host selectors as packed addresses (a set), the others as ranges."""
    hosts = frozenset(_packed(v, start) for v, start, end in ranges if start == end)
    return hosts, tuple(r for r in ranges if r[1] != r[2])


def _covers_all(ranges: tuple[Range, ...], version: int) -> bool:
    top = (1 << (32 if version == 4 else 128)) - 1
    return any(v == version and start == 0 and end == top for v, start, end in ranges)


def _in_ranges(ranges: tuple[Range, ...], version: int, packed: bytes) -> bool:
    value = int.from_bytes(packed, "big")
    for v, start, end in ranges:
        if v == version and start <= value <= end:
            return True
    return False


class InboundSa:
    """The receiving half of a CHILD SA in the inbound worker."""

    __slots__ = ("spi_in", "slot", "label", "esp", "src_hosts", "src_ranges", "dst_ranges",
                 "dst_any", "mss", "dropped", "flushed", "remote", "udp_encap", "moved_told")

    def __init__(self, spec: SaSpec) -> None:
        self.spi_in = spec.spi_in
        self.slot = spec.slot
        self.label = spec.label
        self.esp = spec.build_esp(inbound=True)
        self.src_hosts, self.src_ranges = _split(spec.remote_ts)
        self.dst_ranges = spec.local_ts
        # the usual case (leftsubnet=0.0.0.0/0,::/0): no destination check at all
        self.dst_any = (False, False, False, False, _covers_all(spec.local_ts, 4),
                        False, _covers_all(spec.local_ts, 6))
        # TCP MSS clamping limits, indexed by IP version like dst_any
        self.mss = (0, 0, 0, 0, spec.mtu - 40, 0, spec.mtu - 60)
        self.dropped = spec.resume[4] if spec.resume else 0
        self.flushed = (-1, -1)
        # where the peer's ESP-in-UDP is expected from; authenticated packets from elsewhere
        # are a NAT mapping change the IKE side must follow (the kernel's XFRM_MSG_MAPPING)
        self.remote = tuple(spec.remote)
        self.udp_encap = spec.udp_encap
        self.moved_told = 0.0

    def allows(self, inner: bytes, version: int) -> bool:
        """True if ``inner`` has a source the SA's remote selectors allow and a
        destination its local selectors allow (the anti-spoofing check)."""
        if version == 4:
            src, dst = inner[12:16], inner[16:20]
        else:
            src, dst = inner[8:24], inner[24:40]
        if src not in self.src_hosts and not (self.src_ranges and _in_ranges(self.src_ranges, version, src)):
            return False
        return self.dst_any[version] or _in_ranges(self.dst_ranges, version, dst)


class OutboundSa:
    """The sending half of a CHILD SA in the outbound worker."""

    __slots__ = ("spi_in", "slot", "label", "esp", "sendmsg", "ancillary", "address", "mtu",
                 "dropped", "last_out", "flushed", "remote_ts", "udp")

    def __init__(self, spec: SaSpec, sockets: dict[tuple[int, bool], socket.socket]) -> None:
        self.spi_in = spec.spi_in
        self.slot = spec.slot
        self.label = spec.label
        self.esp = spec.build_esp()
        self.remote_ts = spec.remote_ts
        self.dropped = spec.resume[4] if spec.resume else 0
        self.last_out: float | None = spec.resume[3] if spec.resume else None
        self.flushed = (-1, -1)
        self.retarget(spec, sockets)

    def retarget(self, spec: SaSpec, sockets: dict[tuple[int, bool], socket.socket]) -> None:
        """Point the SA at (new) outer addresses/encapsulation; keeps keys and sequence."""
        host, port = spec.remote
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = sockets.get((family, spec.udp_encap))
        self.sendmsg = sock.sendmsg if sock is not None else None
        self.address = (host, port if spec.udp_encap else 0)
        self.ancillary = _pktinfo(family, spec.local_host)
        self.mtu = spec.mtu
        self.udp = spec.udp_encap  # sent on a UDP socket: several packets per call (UDP GSO)


def _pktinfo(family: int, host: str) -> list:
    """Ancillary data that makes the kernel send from ``host`` (nothing if unspecified)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    if address.is_unspecified or address.version != (6 if family == socket.AF_INET6 else 4):
        return []
    if family == socket.AF_INET6:
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, address.packed + struct.pack("I", 0))]
    return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("I", 0) + address.packed + bytes(4))]


class InboundTable:
    """Inbound SAs by the SPI bytes of the ESP header."""

    def __init__(self) -> None:
        self.by_spi: dict[bytes, InboundSa] = {}
        self.by_id: dict[int, InboundSa] = {}

    def install(self, spec: SaSpec) -> InboundSa:
        entry = InboundSa(spec)
        old = self.by_id.get(spec.spi_in)
        if old is not None:
            self.remove(spec.spi_in)
        self.by_id[spec.spi_in] = entry
        self.by_spi[struct.pack("!I", spec.spi)] = entry
        return entry

    def update(self, spec: SaSpec) -> None:
        """SAs are found by SPI; only the peer's expected outer endpoint changes."""
        entry = self.by_id.get(spec.spi_in)
        if entry is not None:
            entry.remote = tuple(spec.remote)
            entry.udp_encap = spec.udp_encap

    def remove(self, spi_in: int) -> InboundSa | None:
        entry = self.by_id.pop(spi_in, None)
        if entry is not None:
            key = struct.pack("!I", entry.esp.spi)
            if self.by_spi.get(key) is entry:
                del self.by_spi[key]
        return entry

    def entries(self) -> list[InboundSa]:
        return list(self.by_id.values())


class OutboundTable:
    """Outbound SAs by inner destination: host selectors in a dict, ranges in a list.

    Several SAs may cover one address (a rekeyed SA and its successor, duplicates): the
    newest installed wins, and the previous one takes over again if the newest goes.
    """

    def __init__(self) -> None:
        self.hosts: dict[bytes, OutboundSa] = {}  # packed destination -> SA
        self.ranges: list[tuple[int, int, int, OutboundSa]] = []  # newest first
        self.by_id: dict[int, OutboundSa] = {}
        self._claims: dict[bytes, list[OutboundSa]] = {}

    def install(self, spec: SaSpec, sockets) -> OutboundSa:
        if spec.spi_in in self.by_id:
            self.remove(spec.spi_in)
        entry = OutboundSa(spec, sockets)
        self.by_id[spec.spi_in] = entry
        hosts, ranges = _split(spec.remote_ts)
        for key in hosts:
            self._claims.setdefault(key, []).append(entry)
            self.hosts[key] = entry
        if ranges:
            self.ranges = [(v, s, e, entry) for v, s, e in ranges] + self.ranges
        return entry

    def update(self, spec: SaSpec, sockets) -> None:
        entry = self.by_id.get(spec.spi_in)
        if entry is not None:
            entry.retarget(spec, sockets)

    def remove(self, spi_in: int) -> OutboundSa | None:
        entry = self.by_id.pop(spi_in, None)
        if entry is None:
            return None
        hosts, ranges = _split(entry.remote_ts)
        for key in hosts:
            claims = self._claims.get(key, [])
            if entry in claims:
                claims.remove(entry)
            if claims:
                self.hosts[key] = claims[-1]
            else:
                self._claims.pop(key, None)
                self.hosts.pop(key, None)
        if ranges:
            self.ranges = [r for r in self.ranges if r[3] is not entry]
        return entry

    def lookup_range(self, version: int, packed: bytes) -> OutboundSa | None:
        """The newest SA whose remote range selectors contain ``packed`` (slow path)."""
        if not self.ranges:
            return None
        value = int.from_bytes(packed, "big")
        for v, start, end, entry in self.ranges:
            if v == version and start <= value <= end:
                return entry
        return None

    def entries(self) -> list[OutboundSa]:
        return list(self.by_id.values())
