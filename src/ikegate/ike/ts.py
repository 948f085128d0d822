"""Traffic selectors as address/port ranges, and the responder's narrowing.

strongSwan's responder intersects each configured selector with each one the peer
proposed, configured order first (traffic_selector_list.c ``select_``); an empty result
means TS_UNACCEPTABLE.  ``%dynamic`` remote selectors stand for the peer's virtual IPs (or
its IKE address when it has none).

Beyond strongSwan, :func:`narrow_to_virtual_ips` lets a client that asked for a virtual
address and proposes a single host standing for "myself" (openiked's ``from dynamic``
sends ``0.0.0.0/32``/``::/128``; libreswan sends its own outer address) have its assigned
address back as TSi: strongSwan intersects such a TSi with the virtual IP and refuses it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ikegate.wire.constants import TsType
from ikegate.wire.payloads import TrafficSelector


@dataclass(frozen=True, slots=True)
class Selector:
    version: int  # 4 or 6
    start: int
    end: int
    protocol: int = 0
    start_port: int = 0
    end_port: int = 65535

    # -- constructors ---------------------------------------------------------------

    @classmethod
    def from_network(cls, network, protocol: int = 0, start_port: int = 0, end_port: int = 65535) -> "Selector":
        net = ipaddress.ip_network(network, strict=False)
        return cls(net.version, int(net.network_address), int(net.broadcast_address), protocol, start_port, end_port)

    @classmethod
    def from_address(cls, address) -> "Selector":
        addr = ipaddress.ip_address(address)
        return cls(addr.version, int(addr), int(addr))

    @classmethod
    def from_wire(cls, ts: TrafficSelector) -> "Selector | None":
        """None for selector types we cannot use (Fibre Channel)."""
        if ts.ts_type == TsType.IPV4_ADDR_RANGE:
            version = 4
        elif ts.ts_type == TsType.IPV6_ADDR_RANGE:
            version = 6
        else:
            return None
        start, end = ts.start_addr, ts.end_addr
        if not isinstance(start, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return None
        return cls(version, int(start), int(end), ts.ip_protocol, ts.start_port, ts.end_port)

    def to_wire(self) -> TrafficSelector:
        cls_ = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        return TrafficSelector(
            ts_type=TsType.IPV4_ADDR_RANGE if self.version == 4 else TsType.IPV6_ADDR_RANGE,
            ip_protocol=self.protocol,
            start_port=self.start_port,
            end_port=self.end_port,
            start_addr=cls_(self.start),
            end_addr=cls_(self.end),
        )

    # -- queries --------------------------------------------------------------------

    @property
    def start_address(self):
        return ipaddress.ip_address(self.start) if self.version == 4 else ipaddress.IPv6Address(self.start)

    @property
    def end_address(self):
        return ipaddress.ip_address(self.end) if self.version == 4 else ipaddress.IPv6Address(self.end)

    def is_host(self) -> bool:
        return self.start == self.end

    def contains_address(self, address) -> bool:
        addr = ipaddress.ip_address(address)
        return addr.version == self.version and self.start <= int(addr) <= self.end

    def to_subnet(self) -> str:
        """``addr/prefix`` of the smallest network holding the range (PLUTO_*_CLIENT style)."""
        bits = 32 if self.version == 4 else 128
        diff = self.start ^ self.end
        prefix = bits - diff.bit_length()
        cls_ = ipaddress.IPv4Network if self.version == 4 else ipaddress.IPv6Network
        mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
        return str(cls_((self.start & mask, prefix)))

    def intersect(self, other: "Selector") -> "Selector | None":
        if self.version != other.version:
            return None
        if self.protocol and other.protocol and self.protocol != other.protocol:
            return None
        start, end = max(self.start, other.start), min(self.end, other.end)
        if start > end:
            return None
        sport, eport = max(self.start_port, other.start_port), min(self.end_port, other.end_port)
        if sport > eport:
            return None
        return Selector(self.version, start, end, self.protocol or other.protocol, sport, eport)

    def __str__(self) -> str:
        text = self.to_subnet() if self._is_subnet() else f"{self.start_address}..{self.end_address}"
        if self.protocol or self.start_port != 0 or self.end_port != 65535:
            ports = "0" if (self.start_port, self.end_port) == (0, 65535) else (
                str(self.start_port) if self.start_port == self.end_port else f"{self.start_port}-{self.end_port}"
            )
            text += f"[{self.protocol}/{ports}]"
        return text

    def _is_subnet(self) -> bool:
        size = self.end - self.start + 1
        return size > 0 and size & (size - 1) == 0 and self.start % size == 0  # a peer may send end < start


def narrow(configured: Iterable[Selector], proposed: Iterable[Selector]) -> list[Selector]:
    """Intersections of every configured selector with every proposed one, configured
    order first, duplicates removed (strongSwan's responder narrowing)."""
    proposed = list(proposed)
    result: list[Selector] = []
    for mine in configured:
        for theirs in proposed:
            common = mine.intersect(theirs)
            if common is not None and common not in result:
                result.append(common)
    return result


def _unspecified(sel: Selector) -> bool:
    return sel.is_host() and sel.start == 0


def narrow_to_virtual_ips(vips: Iterable, proposed: Iterable[Selector], *, peer_hosts: Iterable = (),
                          any_host: bool = False) -> list[Selector]:
    """The client's side of a CHILD SA whose remote end is ``%dynamic`` and whose client
    holds virtual IPs ``vips``: the usual narrowing of the virtual IPs against the
    proposed TSi, and for each virtual IP that narrowing left out, the virtual IP itself
    (with the proposal's protocol and ports) if the client proposed a single host of its
    family that stands for the client: the unspecified address (``0.0.0.0/32``,
    ``::/128``), one of ``peer_hosts`` (the address its IKE messages come from), or, with
    ``any_host`` (the client is behind a NAT, so its own address is hidden from us), any
    host.  The client only ever gets addresses assigned to it, so this widens nothing."""
    proposed = list(proposed)
    configured = [Selector.from_address(v) for v in vips]
    result = narrow(configured, proposed)
    own = {(a.version, int(a)) for a in (ipaddress.ip_address(h) for h in peer_hosts)}
    for vip in configured:
        if any(r.version == vip.version and r.start <= vip.start <= r.end for r in result):
            continue
        for theirs in proposed:
            if theirs.version != vip.version or not theirs.is_host():
                continue
            if _unspecified(theirs) or (theirs.version, theirs.start) in own or any_host:
                lenient = Selector(vip.version, vip.start, vip.end, theirs.protocol, theirs.start_port,
                                   theirs.end_port)
                if lenient not in result:
                    result.append(lenient)
                break
    return result
