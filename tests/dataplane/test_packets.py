"""Inner-packet helpers (ikegate.dataplane.packets), checked against scapy's own code.

scapy builds the packets and is the independent judge: its ``checksum``, its parsing of
ICMP/ICMPv6 errors (and recomputation of their checksums), its IPv4 reassembly
(``defragment``), its TCP option parsing and checksum computation.
"""

from __future__ import annotations

import os
import random

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, defragment, in4_chksum
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPerror6, IPv6, in6_chksum
from scapy.packet import Raw, raw
from scapy.utils import checksum as scapy_checksum

from ikegate.dataplane.packets import (
    checksum,
    clamp_mss,
    dont_fragment,
    fragment_ipv4,
    inner_addresses,
    is_icmp_error,
    too_big_icmp,
)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 20, 21, 1399, 1400, 9000])
def test_checksum_matches_scapy(size):
    rng = random.Random(size)
    for _ in range(20):
        data = rng.randbytes(size)
        assert checksum(data) == scapy_checksum(data)
    assert checksum(b"\xff\xff" * 8) == scapy_checksum(b"\xff\xff" * 8)
    assert checksum(bytes(8)) == scapy_checksum(bytes(8))


def _sums_to_zero(data: bytes) -> bool:
    """Every checksum of the IP packet ``data`` verifies (scapy's functions): the IPv4
    header's, and the ICMP / ICMPv6 / TCP / UDP one over its pseudo-header."""
    if data[0] >> 4 == 4:
        ihl = (data[0] & 0x0F) * 4
        if scapy_checksum(data[:ihl]) != 0:
            return False
        proto, body = data[9], data[ihl:]
        if proto == 1:
            return scapy_checksum(body) == 0
        return in4_chksum(proto, IP(data), body) == 0
    body = data[40:]
    return in6_chksum(data[6], IPv6(data), body) == 0


def test_ipv4_fragmentation_needed():
    original = IP(src="10.98.1.2", dst="192.0.2.1", flags="DF", id=7) / UDP(sport=1, dport=9) / Raw(bytes(1372))
    error = too_big_icmp(raw(original), 1346, None)
    parsed = IP(error)
    assert parsed.src == "192.0.2.1" and parsed.dst == "10.98.1.2" and parsed.proto == 1
    assert parsed[ICMP].type == 3 and parsed[ICMP].code == 4 and parsed[ICMP].nexthopmtu == 1346
    assert len(error) <= 576
    quoted = error[28:]  # after the IPv4 and ICMP headers
    assert raw(original).startswith(quoted) and len(quoted) == 576 - 28
    assert _sums_to_zero(error)
    assert is_icmp_error(error)


def test_ipv4_error_from_a_chosen_source():
    original = IP(src="10.98.1.2", dst="192.0.2.1", flags="DF") / UDP() / Raw(bytes(100))
    parsed = IP(too_big_icmp(raw(original), 1300, bytes([10, 98, 1, 1])))
    assert parsed.src == "10.98.1.1"
    assert parsed_error_payload(parsed) == raw(original)  # short packets are quoted whole


def parsed_error_payload(parsed) -> bytes:
    return raw(parsed)[28:]


def test_ipv6_packet_too_big():
    original = IPv6(src="fd00:98:1::2", dst="2001:db8::1") / UDP(sport=1, dport=9) / Raw(bytes(1352))
    error = too_big_icmp(raw(original), 1346, None)
    parsed = IPv6(error)
    assert parsed.src == "2001:db8::1" and parsed.dst == "fd00:98:1::2" and parsed.nh == 58
    assert parsed[ICMPv6PacketTooBig].mtu == 1346
    assert len(error) <= 1280
    assert _sums_to_zero(error)
    assert IPerror6 in parsed and parsed[IPerror6].dst == "2001:db8::1"
    # IPv6's minimum MTU is the least that may be announced (RFC 8200 5)
    assert IPv6(too_big_icmp(raw(original), 1000, None))[ICMPv6PacketTooBig].mtu == 1280


def test_no_error_about_errors_fragments_or_multicast():
    icmp_error = IP(src="10.0.0.1", dst="192.0.2.1") / ICMP(type=3, code=1) / Raw(bytes(60))
    assert too_big_icmp(raw(icmp_error), 1300, None) is None
    later_fragment = IP(src="10.0.0.1", dst="192.0.2.1", frag=100) / Raw(bytes(1400))
    assert too_big_icmp(raw(later_fragment), 1300, None) is None
    multicast = IP(src="224.0.0.5", dst="192.0.2.1") / UDP() / Raw(bytes(1400))
    assert too_big_icmp(raw(multicast), 1300, None) is None
    v6_error = IPv6(src="fd00::1", dst="2001:db8::1") / ICMPv6PacketTooBig() / Raw(bytes(100))
    assert too_big_icmp(raw(v6_error), 1300, None) is None
    echo = IP(src="10.0.0.1", dst="192.0.2.1") / ICMP(type=8) / Raw(bytes(1400))
    assert too_big_icmp(raw(echo), 1300, None) is not None


@pytest.mark.parametrize("options", [b"", b"\x94\x04\x00\x00"])  # none / Router Alert
def test_fragment_ipv4_reassembles(options):
    payload = os.urandom(3000)
    original = IP(src="10.98.1.2", dst="192.0.2.1", id=0x4242, options=options) / UDP(sport=5, dport=9) / Raw(payload)
    data = raw(original)
    assert not dont_fragment(data)
    pieces = fragment_ipv4(data, 1346)
    assert len(pieces) == 3 and all(len(p) <= 1346 for p in pieces)
    parsed = [IP(p) for p in pieces]
    for piece, p in zip(pieces, parsed):
        assert scapy_checksum(piece[: p.ihl * 4]) == 0  # header checksums
        assert p.id == 0x4242
    assert [p.flags.MF for p in parsed] == [1, 1, 0]
    assert all(p.frag * 8 % 8 == 0 for p in parsed)
    (whole,) = defragment(parsed)
    assert raw(whole[UDP].payload) == payload


def test_fragment_ipv4_of_a_fragment_keeps_more_fragments():
    first = IP(src="10.0.0.1", dst="192.0.2.1", flags="MF", id=9) / Raw(bytes(2000))
    pieces = [IP(p) for p in fragment_ipv4(raw(first), 1000)]
    assert all(p.flags.MF for p in pieces)  # the original was not the last fragment
    assert [p.frag for p in pieces] == [0, 122, 244]


def test_dont_fragment():
    assert dont_fragment(raw(IP(flags="DF") / UDP()))
    assert not dont_fragment(raw(IP() / UDP()))
    assert dont_fragment(raw(IPv6() / UDP()))


@pytest.mark.parametrize("leading_nop", [True, False], ids=["odd-offset", "even-offset"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_clamp_mss(family, leading_nop):
    ip = IP(src="192.0.2.1", dst="10.98.1.2") if family == "ipv4" else IPv6(src="2001:db8::1", dst="fd00::2")
    options = [("NOP", None)] * leading_nop + [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    syn = ip / TCP(sport=40000, dport=80, flags="S", options=options)
    clamped = clamp_mss(raw(syn), 1300)
    parsed = syn.__class__(clamped)
    assert dict(parsed[TCP].options)["MSS"] == 1300
    assert _sums_to_zero(clamped)  # the incremental checksum update is right
    assert clamp_mss(clamped, 1360) == clamped  # already small enough
    ack = ip / TCP(sport=40000, dport=80, flags="A") / Raw(b"x" * 10)
    assert clamp_mss(raw(ack), 1000) == raw(ack)  # not a SYN
    udp = ip / UDP() / Raw(b"\x02\x04\x05\xb4" * 10)
    assert clamp_mss(raw(udp), 1000) == raw(udp)


def test_inner_addresses():
    assert inner_addresses(raw(IP(src="1.2.3.4", dst="5.6.7.8"))) == (4, bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8]))
    v6 = inner_addresses(raw(IPv6(src="::1", dst="::2")))
    assert v6[0] == 6 and v6[1][-1] == 1 and v6[2][-1] == 2
    assert inner_addresses(b"") is None and inner_addresses(b"\x45" + bytes(10)) is None
