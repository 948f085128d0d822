"""Inner-packet helpers of the data plane: "too big" ICMP errors, fragments, MSS clamping.

Pure functions over ``bytes`` (the IP packets read from and written to the TUN), used on
the rare paths: an inner packet larger than its SA can carry, and TCP SYNs when MSS
clamping is on.  The per-packet fast path never calls them for ordinary traffic.

* :func:`too_big_icmp` builds the ICMP "fragmentation needed" (RFC 792/1191) or ICMPv6
  "packet too big" (RFC 4443 3.2) that tells the sender the MTU it must use.
* :func:`fragment_ipv4` splits an IPv4 packet without DF (RFC 791), for the case where the
  sender allowed fragmentation: better than fragmenting the outer ESP packet, which many
  NATs and firewalls drop.
* :func:`clamp_mss` lowers the MSS option of a TCP SYN (RFC 879/6691 style clamping)
  and fixes the checksum incrementally (RFC 1624).
"""

from __future__ import annotations

import struct

__all__ = [
    "ICMP6_PTB_MAX",
    "ICMP_PTB_MAX",
    "checksum",
    "clamp_mss",
    "dont_fragment",
    "fragment_ipv4",
    "inner_addresses",
    "is_icmp_error",
    "too_big_icmp",
]

ICMP_PTB_MAX = 576  # RFC 1812 4.3.2.3: an ICMP error fits in 576 bytes
ICMP6_PTB_MAX = 1280  # RFC 4443 2.4 (c): as much of the packet as fits the minimum MTU
IPV6_MIN_MTU = 1280
IPV4_MIN_MTU = 68

_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_IPV6_HEADER = struct.Struct("!IHBB16s16s")
_DF = 0x4000
_MF = 0x2000
_OFFSET = 0x1FFF
_PROTO_ICMP = 1
_PROTO_TCP = 6
_PROTO_ICMPV6 = 58
_TCP_SYN = 0x02
# ICMPv6 error types are 0..127; ICMPv4 errors: unreachable, source quench, redirect,
# time exceeded, parameter problem.
_ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``.

    The one's-complement sum of 16-bit words equals the big-endian integer value of the
    data modulo 0xFFFF (2^16 is 1 modulo 0xFFFF), which ``int.from_bytes`` computes in C.
    """
    if len(data) & 1:
        data = bytes(data) + b"\0"
    value = int.from_bytes(data, "big")
    folded = value % 0xFFFF
    if folded == 0 and value:
        folded = 0xFFFF
    return ~folded & 0xFFFF


def inner_addresses(packet: bytes) -> tuple[int, bytes, bytes] | None:
    """``(version, source, destination)`` (packed addresses) of an IP packet, or None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        return 4, packet[12:16], packet[16:20]
    if version == 6 and len(packet) >= 40:
        return 6, packet[8:24], packet[24:40]
    return None


def is_icmp_error(packet: bytes) -> bool:
    """True for ICMP/ICMPv6 error messages (which must never trigger another error)."""
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        return packet[9] == _PROTO_ICMP and len(packet) > ihl and packet[ihl] in _ICMP4_ERRORS
    return len(packet) > 40 and packet[6] == _PROTO_ICMPV6 and packet[40] < 128


def too_big_icmp(packet: bytes, mtu: int, source: bytes | None) -> bytes | None:
    """The ICMP error telling the sender of ``packet`` to use ``mtu``, or None.

    ``source`` is the packed address the error comes from (an address of the gateway);
    None uses the packet's destination, so the error seems to come from the far end.
    Returns None where no error may be sent: ICMP errors, non-first IPv4 fragments,
    unspecified or multicast senders.
    """
    if len(packet) < 20 or is_icmp_error(packet):
        return None
    version = packet[0] >> 4
    if version == 4:
        (_vihl, _tos, _total, _ident, frag, _ttl, _proto, _csum, src, dst) = _IPV4_HEADER.unpack_from(packet)
        if frag & _OFFSET or src == bytes(4) or src[0] >= 224:
            return None
        if source is None or len(source) != 4:
            source = dst
        quoted = packet[: ICMP_PTB_MAX - 28]
        icmp = struct.pack("!BBHHH", 3, 4, 0, 0, max(IPV4_MIN_MTU, min(mtu, 0xFFFF))) + quoted
        icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
        header = _IPV4_HEADER.pack(0x45, 0xC0, 20 + len(icmp), 0, 0, 64, _PROTO_ICMP, 0, source, src)
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return header + icmp
    if version == 6 and len(packet) >= 40:
        src, dst = packet[8:24], packet[24:40]
        if src == bytes(16) or src[0] == 0xFF:
            return None
        if source is None or len(source) != 16:
            source = dst
        quoted = packet[: ICMP6_PTB_MAX - 48]
        icmp = struct.pack("!BBHI", 2, 0, 0, max(IPV6_MIN_MTU, mtu)) + quoted
        pseudo = source + src + struct.pack("!I3xB", len(icmp), _PROTO_ICMPV6)
        icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
        header = _IPV6_HEADER.pack(0x60000000, len(icmp), _PROTO_ICMPV6, 64, source, src)
        return header + icmp
    return None


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """Split an IPv4 packet (DF clear) into fragments of at most ``mtu`` bytes.

    The first fragment keeps the header options; later ones carry a plain 20-byte header
    (options are only *required* to be copied when their "copied" flag is set, and the
    options that have it - source routes, security labels - have no use through a
    road-warrior tunnel).  An already fragmented packet is split further correctly
    (offsets and the MF flag of the last piece are kept).
    """
    ihl = (packet[0] & 0x0F) * 4
    (vihl, tos, _total, ident, frag, ttl, proto, _csum, src, dst) = _IPV4_HEADER.unpack_from(packet)
    payload = packet[ihl:]
    base_offset = (frag & _OFFSET) * 8
    last_mf = frag & _MF
    fragments = []
    position = 0
    header_len = ihl
    options = packet[20:ihl]
    while position < len(payload):
        room = (mtu - header_len) & ~7
        if room <= 0:
            raise ValueError(f"MTU {mtu} too small to fragment")
        piece = payload[position : position + room]
        more = position + len(piece) < len(payload)
        flags = _MF if (more or last_mf) else 0
        offset = (base_offset + position) // 8
        header = _IPV4_HEADER.pack(
            0x40 | (header_len // 4), tos, header_len + len(piece), ident, flags | offset, ttl,
            proto, 0, src, dst,
        ) + (options if header_len == ihl else b"")
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        fragments.append(header + piece)
        position += len(piece)
        header_len, options = 20, b""
    return fragments


def dont_fragment(packet: bytes) -> bool:
    """True if the packet may not be fragmented on its way: IPv6, or IPv4 with DF."""
    if packet[0] >> 4 != 4:
        return True
    return bool(packet[6] & 0x40)


def clamp_mss(packet: bytes, limit: int) -> bytes:
    """``packet`` with the MSS option of a TCP SYN lowered to ``limit`` if it is larger.

    Anything else (not TCP, not a SYN, no MSS option, a later fragment, IPv6 extension
    headers before TCP) is returned unchanged.
    """
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != _PROTO_TCP or (struct.unpack_from("!H", packet, 6)[0] & _OFFSET):
            return packet
        tcp = ihl
    elif version == 6:
        if len(packet) < 40 or packet[6] != _PROTO_TCP:
            return packet
        tcp = 40
    else:
        return packet
    if len(packet) < tcp + 20 or not packet[tcp + 13] & _TCP_SYN:
        return packet
    end = min(len(packet), tcp + (packet[tcp + 12] >> 4) * 4)
    pos = tcp + 20
    while pos < end:
        kind = packet[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end:
            break
        length = packet[pos + 1]
        if length < 2:
            break
        if kind == 2 and length == 4 and pos + 4 <= end:
            mss = struct.unpack_from("!H", packet, pos + 2)[0]
            if mss <= limit:
                return packet
            old_sum = struct.unpack_from("!H", packet, tcp + 16)[0]
            old_word, new_word = mss, limit
            if (pos + 2 - tcp) & 1:  # the value straddles two 16-bit words: byte-swapped sum
                old_word = ((mss & 0xFF) << 8) | (mss >> 8)
                new_word = ((limit & 0xFF) << 8) | (limit >> 8)
            # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
            total = (~old_sum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            new_sum = ~total & 0xFFFF
            out = bytearray(packet)
            struct.pack_into("!H", out, pos + 2, limit)
            struct.pack_into("!H", out, tcp + 16, new_sum)
            return bytes(out)
        pos += length
    return packet
