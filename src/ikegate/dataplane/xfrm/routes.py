"""Routes to the clients' virtual IPs for the kernel data plane, as strongSwan's kernel-netlink.

A packet to a client's virtual IP (forwarded, or answered by the gateway itself) needs a
route before the kernel's XFRM output lookup replaces it with the tunnel: without one,
a gateway with no default route towards the pool answers "network unreachable".  As
strongSwan does, the routes live in a table of their own (:data:`DEFAULT_TABLE` 220) that
an ``ip rule`` (priority 220, both families) consults before the main table:
``<virtual IP>/32 dev <interface towards the peer> proto 105 scope link
[src <our address>]``.  The interface is the one the kernel would use to reach the
peer's outer address.  A prefix that contains the peer's own outer address (a client
without a virtual IP, a site-to-site ``0.0.0.0/0``) is not routed: its ESP would loop.
Routes are reference-counted by inbound SPI (a rekeyed SA and its successor share
them).  Leftovers of a crashed run (protocol 105 in the table) are flushed at start; the
rule and the routes go at stop.

The rtnetlink messages are tiny and built here (``struct rtmsg``, ``struct
fib_rule_hdr`` and their attributes) on top of :mod:`.netlink`.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from ikegate.dataplane.routes import RTPROT_IKEGATE  # the protocol of every route ikegate adds
from ikegate.dataplane.xfrm.messages import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, Message, NetlinkError, RawAttr
from ikegate.dataplane.xfrm.netlink import NETLINK_ROUTE, NetlinkSocket
from ikegate.log import get_logger

__all__ = ["DEFAULT_PRIORITY", "DEFAULT_TABLE", "RTPROT_IKEGATE", "VirtualIpRoutes"]

log = get_logger("knl")

DEFAULT_TABLE = 220
DEFAULT_PRIORITY = 220

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWRULE, RTM_DELRULE = 32, 33
RTA_DST, RTA_OIF, RTA_PREFSRC, RTA_TABLE = 1, 4, 7, 15
FRA_PRIORITY, FRA_TABLE = 6, 15
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1
FR_ACT_TO_TBL = 1
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table protocol scope type flags
_RULE = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table res1 res2 action flags


@dataclass
class _Fixed:
    """A fixed message header given as bytes (rtmsg, fib_rule_hdr)."""

    data: bytes

    def pack(self) -> bytes:
        return self.data


def _u32(kind: int, value: int) -> RawAttr:
    return RawAttr(kind, struct.pack("=I", value))


def _parse_attrs(data: bytes) -> dict[int, bytes]:
    attrs, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        attrs.setdefault(kind & 0x3FFF, data[offset + 4:offset + length])
        offset += (length + 3) & ~3
    return attrs


class VirtualIpRoutes:
    """The routes of the kernel data plane (see the module docstring)."""

    def __init__(self, table: int = DEFAULT_TABLE, priority: int = DEFAULT_PRIORITY) -> None:
        self.table = table
        self.priority = priority
        self.sock: NetlinkSocket | None = None
        self.users: dict[str, set[int]] = {}  # prefix -> inbound SPIs that need it
        self.claims: dict[int, list[str]] = {}
        self.routes: dict[str, Message] = {}  # prefix -> the NEWROUTE that added it

    def start(self) -> int:
        """Open rtnetlink, add the rules, flush our leftover routes; the number flushed."""
        self.sock = NetlinkSocket(NETLINK_ROUTE)
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                self.sock.request(self._rule(RTM_NEWRULE, family, NLM_F_CREATE | NLM_F_EXCL))
            except NetlinkError as exc:
                if exc.errno != errno.EEXIST:
                    log.info("cannot add the routing rule for table %d (%s): %s", self.table,
                             "IPv6" if family == socket.AF_INET6 else "IPv4", exc)
        return self._flush()

    def stop(self) -> None:
        """Delete every route of ours and the rules."""
        if self.sock is None:
            return
        self.users.clear()
        self.claims.clear()
        self._flush()  # every route of ours in the table, those of the table's users included
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                self.sock.request(self._rule(RTM_DELRULE, family, 0))
            except NetlinkError:
                pass
        self.sock.close()
        self.sock = None

    def add(self, owner: int, prefixes: list[str], peer: str, local: str | None) -> list[str]:
        """Route ``prefixes`` towards ``peer`` for ``owner``; ``local`` becomes the preferred
        source where its family matches.  The prefixes routed (others: logged)."""
        claimed = self.claims.setdefault(owner, [])
        oif = self._interface_to(peer)
        for prefix in prefixes:
            network = ipaddress.ip_network(prefix)
            peer_address = ipaddress.ip_address(peer)
            if peer_address.version == network.version and peer_address in network:
                log.info("not routing %s: it contains the peer's own address %s", prefix, peer)
                continue
            users = self.users.setdefault(prefix, set())
            if owner in users:
                continue
            if not users:
                if oif is None:
                    log.info("no route to %s: %s not routed", peer, prefix)
                    del self.users[prefix]
                    continue
                src = local if local and (":" in local) == (network.version == 6) else None
                try:
                    self._add(network, oif, src)
                except NetlinkError as exc:
                    log.info("cannot route %s (table %d): %s", prefix, self.table, exc)
                    del self.users[prefix]
                    continue
            users.add(owner)
            claimed.append(prefix)
        return claimed

    def release(self, owner: int) -> None:
        for prefix in self.claims.pop(owner, ()):
            users = self.users.get(prefix)
            if users is None:
                continue
            users.discard(owner)
            if not users:
                del self.users[prefix]
                self._delete(prefix)

    # -- messages ------------------------------------------------------------------------

    def _rule(self, kind: int, family: int, flags: int) -> Message:
        header = _RULE.pack(family, 0, 0, 0, self.table if self.table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
        return Message(kind, _Fixed(header), [_u32(FRA_PRIORITY, self.priority), _u32(FRA_TABLE, self.table)],
                       flags=flags)

    def _interface_to(self, peer: str) -> int | None:
        family = socket.AF_INET6 if ":" in peer else socket.AF_INET
        header = _RTMSG.pack(family, 32 if family == socket.AF_INET else 128, 0, 0, 0, 0, 0, 0, 0)
        try:
            reply = self.sock.query(Message(RTM_GETROUTE, _Fixed(header),
                                            [RawAttr(RTA_DST, socket.inet_pton(family, peer))]))
        except NetlinkError as exc:
            log.info("route lookup for %s: %s", peer, exc)
            return None
        oif = _parse_attrs(bytes(reply.body)[_RTMSG.size:]).get(RTA_OIF)
        return struct.unpack("=I", oif)[0] if oif else None

    def _route(self, kind: int, network, oif: int | None, src: str | None, flags: int) -> Message:
        family = socket.AF_INET6 if network.version == 6 else socket.AF_INET
        header = _RTMSG.pack(family, network.prefixlen, 0, 0, self.table if self.table < 256 else 0,
                             RTPROT_IKEGATE, RT_SCOPE_LINK, RTN_UNICAST, 0)
        attrs = [RawAttr(RTA_DST, network.network_address.packed), _u32(RTA_TABLE, self.table)]
        if oif is not None:
            attrs.append(_u32(RTA_OIF, oif))
        if src:
            attrs.append(RawAttr(RTA_PREFSRC, socket.inet_pton(family, src)))
        return Message(kind, _Fixed(header), attrs, flags=flags)

    def _add(self, network, oif: int, src: str | None) -> None:
        try:
            self.sock.request(self._route(RTM_NEWROUTE, network, oif, src, NLM_F_CREATE | NLM_F_REPLACE))
        except NetlinkError as exc:
            if not src or exc.errno != errno.EINVAL:
                raise
            self.sock.request(self._route(RTM_NEWROUTE, network, oif, None, NLM_F_CREATE | NLM_F_REPLACE))

    def _delete(self, prefix: str) -> None:
        try:
            self.sock.request(self._route(RTM_DELROUTE, ipaddress.ip_network(prefix), None, None, 0))
        except NetlinkError as exc:
            log.debug("deleting route %s: %s", prefix, exc)

    def _flush(self) -> int:
        """Delete the routes of protocol 105 in our table (leftovers of an earlier run)."""
        count = 0
        for family in (socket.AF_INET, socket.AF_INET6):
            header = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
            try:
                replies = self.sock.dump(Message(RTM_GETROUTE, _Fixed(header)))
            except NetlinkError as exc:
                log.debug("listing routes: %s", exc)
                continue
            for reply in replies:
                if reply.type != RTM_NEWROUTE:
                    continue
                payload = bytes(reply.body)
                fam, dst_len, _sl, _tos, table, proto, _scope, _type, _flags = _RTMSG.unpack_from(payload)
                attrs = _parse_attrs(payload[_RTMSG.size:])
                if RTA_TABLE in attrs:
                    table = struct.unpack("=I", attrs[RTA_TABLE])[0]
                if table != self.table or proto != RTPROT_IKEGATE:
                    continue
                dst = attrs.get(RTA_DST, bytes(4 if fam == socket.AF_INET else 16))
                network = ipaddress.ip_network((ipaddress.ip_address(dst), dst_len))
                try:
                    self.sock.request(self._route(RTM_DELROUTE, network, None, None, 0))
                    count += 1
                except NetlinkError as exc:
                    log.debug("flushing route %s: %s", network, exc)
        return count
