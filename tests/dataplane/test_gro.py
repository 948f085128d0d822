"""Coalescing of TCP segments written to the TUN (ikegate.dataplane.gro.TunWriter).

The writer writes into one end of a ``SOCK_SEQPACKET`` pair instead of a TUN, so each
``writev`` arrives as one message: the virtio-net header, then the packet.  scapy builds
the segments and parses what came out; the joined segment's TCP checksum is completed
the way the kernel completes a CHECKSUM_PARTIAL packet and then verified with scapy's
``in4_chksum``/``in6_chksum``.  (That the kernel accepts these packets is shown by
``test_gro_kernel.py`` and the end-to-end tests.)
"""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.packet import Raw, raw
from scapy.utils import checksum as scapy_checksum

from ikegate.dataplane.gro import VNET_HDR_LEN, VNET_NONE, TunWriter

VNET = struct.Struct("=BBHHHH")


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def _written(sock) -> list[tuple[tuple, bytes]]:
    out = []
    while True:
        try:
            data = sock.recv(1 << 17)
        except BlockingIOError:
            return out
        out.append((VNET.unpack(data[:VNET_HDR_LEN]), data[VNET_HDR_LEN:]))


def _segments(family: int, count: int, size: int = 1000, seq: int = 1000, *, last: int | None = None,
              sport: int = 40000, push_last: bool = True, **tcp) -> list[bytes]:
    ip = (IP(src="192.0.2.1", dst="10.98.1.2", flags="DF", ttl=63) if family == 4
          else IPv6(src="2001:db8::1", dst="fd00:98:1::2", hlim=63))
    packets = []
    for i in range(count):
        length = last if (last is not None and i == count - 1) else size
        flags = "PA" if (push_last and i == count - 1) else "A"
        payload = bytes((seq + j) & 0xFF for j in range(length))
        packets.append(raw(ip / TCP(sport=sport, dport=5201, seq=seq, ack=777, flags=flags, window=501,
                                    options=[("NOP", None), ("NOP", None), ("Timestamp", (10, 20))], **tcp)
                           / Raw(payload)))
        seq += length
    return packets


def _complete_partial(header, packet: bytes) -> bytes:
    """What the kernel does to a NEEDS_CSUM packet: sum from csum_start on (the field
    holds the pseudo-header sum) and store the complement at csum_start + csum_offset."""
    _flags, _gso, _hdr_len, _gso_size, start, offset = header
    field = start + offset
    value = scapy_checksum(packet[start:])
    return packet[:field] + struct.pack("!H", value) + packet[field + 2 :]


def _tcp_checksum_ok(packet: bytes) -> bool:
    if packet[0] >> 4 == 4:
        return in4_chksum(6, IP(packet), packet[20:]) == 0
    return in6_chksum(6, IPv6(packet), packet[40:]) == 0


@pytest.mark.parametrize("family", [4, 6])
def test_contiguous_segments_become_one(pair, family):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=True)
    segments = _segments(family, 6, last=300)
    for segment in segments:
        writer.add(segment)
    writer.flush()
    ((header, packet),) = _written(theirs)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = header
    ip_len = 20 if family == 4 else 40
    assert flags == 1 and gso_type == (1 if family == 4 else 4)
    assert (hdr_len, gso_size, csum_start, csum_offset) == (ip_len + 32, 1000, ip_len, 16)
    parsed = IP(packet) if family == 4 else IPv6(packet)
    assert raw(parsed[TCP].payload) == b"".join(raw(TCP(s[ip_len:]).payload) for s in segments)
    assert parsed[TCP].seq == 1000 and parsed[TCP].ack == 777 and parsed[TCP].flags == "PA"
    assert parsed[TCP].options == [("NOP", None), ("NOP", None), ("Timestamp", (10, 20))]
    if family == 4:
        assert parsed.len == len(packet) and scapy_checksum(packet[:20]) == 0 and parsed.flags == "DF"
    else:
        assert parsed.plen == len(packet) - 40
    assert _tcp_checksum_ok(_complete_partial(header, packet))
    assert writer.segments_joined == 6 and writer.packets_written == 1


@pytest.mark.parametrize("family", [4, 6])
def test_what_is_not_joined(pair, family):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=True)
    a = _segments(family, 3, seq=1000, push_last=False)
    gap = _segments(family, 2, seq=1000 + 3000 + 1, push_last=False)  # a hole in the sequence
    for segment in a + gap:
        writer.add(segment)
    writer.flush()
    out = _written(theirs)
    assert [h[1] for h, _ in out] == [1 if family == 4 else 4] * 2  # two runs of GSO packets
    assert [h[3] for h, _ in out] == [1000, 1000]

    # different ACK number: not the same run
    b1 = _segments(family, 1, seq=5000, push_last=False)[0]
    b2 = _segments(family, 1, seq=6000, push_last=False, )[0]
    b2 = (IP(b2) if family == 4 else IPv6(b2))
    b2[TCP].ack = 778
    del b2[TCP].chksum
    writer.add(b1)
    writer.add(raw(b2))
    writer.flush()
    out = _written(theirs)
    assert [h for h, _ in out] == [VNET.unpack(VNET_NONE)] * 2

    # a SYN, a bare ACK, a UDP datagram: written as they come, unchanged
    ip = IP(src="192.0.2.1", dst="10.98.1.2") if family == 4 else IPv6(src="2001:db8::1", dst="fd00::2")
    singles = [raw(ip / TCP(flags="S")), raw(ip / TCP(flags="A")), raw(ip / UDP() / Raw(b"x" * 100))]
    for packet in singles:
        writer.add(packet)
    writer.flush()
    assert _written(theirs) == [(VNET.unpack(VNET_NONE), p) for p in singles]


def test_flows_are_kept_apart_and_in_order(pair):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=True)
    one = _segments(4, 3, seq=100, sport=1111, push_last=False)
    two = _segments(4, 3, seq=9000, sport=2222, push_last=False)
    for a, b in zip(one, two):
        writer.add(a)
        writer.add(b)
    fin = raw(IP(one[0])[IP].copy())
    fin_packet = IP(fin)
    fin_packet[TCP].flags = "FA"
    fin_packet[TCP].seq = 3100
    fin_packet[TCP].remove_payload()
    del fin_packet[TCP].chksum
    del fin_packet.len
    del fin_packet.chksum
    writer.add(raw(fin_packet))  # flow one's FIN: its run goes first, then the FIN
    writer.flush()
    out = _written(theirs)
    ports = [IP(p)[TCP].sport for _, p in out]
    assert ports == [1111, 1111, 2222]
    assert IP(out[0][1])[TCP].seq == 100 and len(IP(out[0][1])[TCP].payload) == 3000
    assert IP(out[1][1])[TCP].flags == "FA"
    assert IP(out[2][1])[TCP].seq == 9000 and len(IP(out[2][1])[TCP].payload) == 3000


def test_size_limit_and_short_segments(pair):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=True)
    for segment in _segments(4, 80, size=1400, push_last=False):  # 112 000 bytes
        writer.add(segment)
    writer.flush()
    out = _written(theirs)
    assert len(out) == 2 and all(len(p) <= 65535 for _, p in out)
    assert sum(len(IP(p)[TCP].payload) for _, p in out) == 80 * 1400
    # a short segment ends a run; a longer one after it starts a new one
    sizes = [1000, 1000, 500, 1000, 1000]
    seq, packets = 1, []
    for size in sizes:
        packets += _segments(4, 1, size=size, seq=seq, push_last=False)
        seq += size
    for packet in packets:
        writer.add(packet)
    writer.flush()
    out = _written(theirs)
    assert [len(IP(p)[TCP].payload) for _, p in out] == [2500, 2000]


def test_without_vnet_header_everything_is_written_as_is(pair):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=False)
    segments = _segments(4, 4)
    for segment in segments:
        writer.add(segment)
    writer.flush()
    got = []
    while True:
        try:
            got.append(theirs.recv(1 << 17))
        except BlockingIOError:
            break
    assert got == segments


def test_icmp_and_fragments_pass_through(pair):
    ours, theirs = pair
    writer = TunWriter(ours.fileno(), vnet=True)
    packets = [raw(IP(src="192.0.2.1", dst="10.0.0.1") / ICMP() / Raw(b"p" * 50)),
               raw(IP(src="192.0.2.1", dst="10.0.0.1", flags="MF", proto=6) / Raw(bytes(1000)))]
    for packet in packets:
        writer.add(packet)
    writer.flush()
    assert [p for _, p in _written(theirs)] == packets
