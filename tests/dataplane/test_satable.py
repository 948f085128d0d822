"""The workers' SA tables (ikegate.dataplane.satable) and the shared counters.

* :func:`inner_mtu` is exact: an inner packet of that size makes an ESP packet that fits
  the path MTU, one byte more does not (checked with real :class:`~ikegate.esp.EspSa`
  output for every transform family, both outer IP versions, with and without UDP).
* Outbound lookup: host selectors by address, newest SA first, the previous one back
  when the newest goes; range selectors; retargeting keeps the sequence numbers.
* Inbound anti-spoofing: source inside the remote selectors, destination inside the
  local ones.
* :class:`CounterBoard`: what one mapping writes, another mapping of the same memfd
  reads (that is how the worker processes and the daemon share it).
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from ikegate.dataplane.counters import REASONS, CounterBoard, SlotAllocator
from ikegate.dataplane.satable import InboundSa, InboundTable, OutboundTable, SaSpec, inner_mtu
from ikegate.esp import EspSa
from ikegate.wire.constants import EncrId, IntegId

TRANSFORMS = [
    (EncrId.AES_GCM_16, 128, 20, None, 0),
    (EncrId.AES_GCM_8, 256, 36, None, 0),
    (EncrId.CHACHA20_POLY1305, 256, 36, None, 0),
    (EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_256_128, 32),
    (EncrId.AES_CBC, 128, 16, IntegId.HMAC_SHA1_96, 20),
    (EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_512_256, 64),
    (EncrId.TRIPLE_DES, 192, 24, IntegId.HMAC_SHA1_96, 20),
]


def _range(text: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(text)
    return net.version, int(net.network_address), int(net.broadcast_address)


def _spec(spi_in: int, remote_ts, *, local_ts=("0.0.0.0/0", "::/0"), remote=("10.98.0.2", 4500),
          udp=True, mtu=1400, spi=None) -> SaSpec:
    return SaSpec(spi_in=spi_in, spi=spi if spi is not None else spi_in, slot=spi_in % 100,
                  encr_id=EncrId.AES_GCM_16, key_bits=128, encr_key=os.urandom(20), integ_id=None,
                  integ_key=None, esn=False, remote_ts=tuple(_range(t) for t in remote_ts),
                  local_ts=tuple(_range(t) for t in local_ts), remote=remote, local_host="10.98.0.1",
                  udp_encap=udp, mtu=mtu)


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("outer", [4, 6])
@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: f"{t[0].name}-{t[1]}-{t[3]}")
def test_inner_mtu_is_exact(transform, outer, udp):
    encr_id, bits, key_len, integ_id, integ_len = transform
    sa = EspSa(1, encr_id, bits, os.urandom(key_len), integ_id, os.urandom(integ_len) if integ_id else None)
    outer_headers = (20 if outer == 4 else 40) + (8 if udp else 0)
    for path in (1280, 1400, 1500, 1501, 1502, 1503):
        mtu = inner_mtu(path, outer, udp, encr_id, integ_id)
        fits = sa.encapsulate(b"\x45" + bytes(mtu - 1), 4)
        assert len(fits) + outer_headers <= path
        too_big = sa.encapsulate(b"\x45" + bytes(mtu), 4)
        assert len(too_big) + outer_headers > path


def test_outbound_newest_sa_wins_and_the_previous_returns():
    senders = {}
    table = OutboundTable()
    vip = ipaddress.ip_address("192.0.2.1").packed
    old = table.install(_spec(1, ["192.0.2.1/32", "2001:db8::1/128"]), senders)
    assert table.hosts[vip] is old
    new = table.install(_spec(2, ["192.0.2.1/32", "2001:db8::1/128"]), senders)
    assert table.hosts[vip] is new
    assert table.hosts[ipaddress.ip_address("2001:db8::1").packed] is new
    table.remove(2)
    assert table.hosts[vip] is old
    table.remove(1)
    assert table.hosts == {} and table.by_id == {}


def test_outbound_ranges_and_retarget():
    table = OutboundTable()
    wide = table.install(_spec(1, ["10.20.0.0/16"]), {})
    narrow = table.install(_spec(2, ["10.20.30.0/24"]), {})
    address = ipaddress.ip_address("10.20.30.40").packed
    assert table.hosts.get(address) is None
    assert table.lookup_range(4, address) is narrow  # newest first
    assert table.lookup_range(4, ipaddress.ip_address("10.20.99.1").packed) is wide
    assert table.lookup_range(6, bytes(16)) is None
    narrow.esp.encapsulate(b"\x45" + bytes(39), 4)
    table.update(_spec(2, ["10.20.30.0/24"], remote=("fd00:98::2", 4500), mtu=1300), {})
    assert narrow.address == ("fd00:98::2", 4500) and narrow.mtu == 1300
    assert narrow.esp.seq_out == 1  # same SA object, same sequence numbers
    assert narrow.sendmsg is None  # no socket for IPv6/UDP in this table's senders
    table.remove(2)
    assert table.lookup_range(4, address) is wide


def test_outbound_uses_the_socket_of_the_family_and_encapsulation():
    udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        senders = {(socket.AF_INET, True): udp4, (socket.AF_INET6, True): udp6}
        table = OutboundTable()
        entry = table.install(_spec(1, ["192.0.2.1/32"], remote=("fd00:98::2", 4501)), senders)
        assert entry.sendmsg == udp6.sendmsg and entry.address == ("fd00:98::2", 4501) and entry.udp
        assert entry.ancillary == []  # an IPv4 source cannot be asked of an IPv6 socket
        entry = table.install(_spec(2, ["192.0.2.2/32"], remote=("10.98.0.2", 4500)), senders)
        assert entry.sendmsg == udp4.sendmsg
        assert entry.ancillary == [(socket.IPPROTO_IP, 8, bytes(4) + bytes([10, 98, 0, 1]) + bytes(4))]
        native = table.install(_spec(3, ["192.0.2.3/32"], remote=("10.98.0.2", 0), udp=False), senders)
        assert native.sendmsg is None and native.address == ("10.98.0.2", 0) and not native.udp
    finally:
        udp4.close()
        udp6.close()


def test_inbound_anti_spoofing():
    def packet(src: str, dst: str) -> bytes:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version == 4:
            return b"\x45" + bytes(11) + s.packed + d.packed
        return b"\x60" + bytes(7) + s.packed + d.packed

    host = InboundSa(_spec(1, ["192.0.2.1/32", "2001:db8::1/128"]))
    assert host.allows(packet("192.0.2.1", "10.98.1.2"), 4)
    assert host.allows(packet("2001:db8::1", "fd00::2"), 6)
    assert not host.allows(packet("192.0.2.2", "10.98.1.2"), 4)
    assert not host.allows(packet("2001:db8::2", "fd00::2"), 6)
    ranged = InboundSa(_spec(2, ["10.50.0.0/24"], local_ts=("10.98.1.0/24",)))
    assert ranged.allows(packet("10.50.0.77", "10.98.1.2"), 4)
    assert not ranged.allows(packet("10.50.1.77", "10.98.1.2"), 4)
    assert not ranged.allows(packet("10.50.0.77", "10.98.2.2"), 4)  # destination outside local_ts
    assert not ranged.allows(packet("2001:db8::1", "fd00::2"), 6)


def test_inbound_table_by_spi():
    table = InboundTable()
    entry = table.install(_spec(0x1234, ["192.0.2.1/32"], spi=0xC0FFEE01))
    assert table.by_spi[bytes.fromhex("c0ffee01")] is entry
    assert table.remove(0x1234) is entry and table.by_spi == {}
    assert table.remove(0x1234) is None


def test_counter_board_is_shared_through_the_memfd():
    board = CounterBoard(8)
    other = CounterBoard(8, fd=os.dup(board.fd))
    try:
        board.write_in(3, 10, 14000, 123.5, 2)
        board.write_out(3, 7, 9000, 124.25, 1)
        board.write_reasons("in", {"replay": 4, "icv": 1})
        board.write_reasons("out", {"no_sa": 2, "replay": 1})
        counters = other.read(3)
        assert (counters.packets_in, counters.bytes_in, counters.last_in) == (10, 14000, 123.5)
        assert (counters.packets_out, counters.bytes_out, counters.last_out) == (7, 9000, 124.25)
        assert counters.dropped == 3
        reasons = other.reasons()
        assert set(reasons) == set(REASONS)
        assert (reasons["replay"], reasons["icv"], reasons["no_sa"]) == (5, 1, 2)
        board.clear_in(3)
        assert other.read(3).packets_in == 0 and other.read(3).last_in is None
        with pytest.raises(IndexError):
            board.read(8)
    finally:
        other.close()
        board.close()


def test_slots_are_reused_last():
    slots = SlotAllocator(3)
    a, b = slots.take(), slots.take()
    slots.give_back(a)
    assert slots.take() not in (a, b)
    assert slots.take() == a
    with pytest.raises(RuntimeError):
        slots.take()
