"""Limits on reassembling IKE fragments (RFC 7383 5: the receiver must bound what it
keeps): fragment counts over ``max_fragments``, messages over ``charon.max_packet``, a
flood of forged fragments and fragments that never complete all cost nothing lasting."""

from __future__ import annotations

import os
import struct

from ikegate.wire.codec import Message, encode_fragments
from ikegate.wire.constants import ExchangeType
from ikegate.wire.payloads import VendorIdPayload

from .initiator import WINDOWS10


def _up(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    assert client.established
    return client


def _fragments(client, payloads, fragment_size):
    ike = client.ike
    header = Message(ike.spi_i, ike.spi_r, ExchangeType.INFORMATIONAL, ike.next_mid, initiator=True, response=False)
    return encode_fragments(header, payloads, ike.sk_out, fragment_size, ip_overhead=32)


def test_too_many_fragments_are_refused(net):
    client = _up(net)
    big = [VendorIdPayload(data=os.urandom(8000))]
    frags = _fragments(client, big, 200)  # more than max_fragments (64)
    assert len(frags) > net.runtime.settings.max_fragments
    assert net.send(client, frags) == []
    sa = net.sa_of(client)
    assert sa.state == "ESTABLISHED" and sa.reassembly is None


def test_message_over_max_packet_is_dropped(net):
    client = _up(net)
    net.runtime.settings.max_packet = 4000
    frags = _fragments(client, [VendorIdPayload(data=os.urandom(6000))], 1280)
    assert len(frags) <= net.runtime.settings.max_fragments
    assert net.send(client, frags) == []
    reassembly = net.sa_of(client).reassembly
    assert reassembly is None or (reassembly.refused and not reassembly.pieces)
    net.send(client, frags[:2])  # retransmitted pieces of the refused message are ignored too
    assert net.sa_of(client).reassembly.pieces == {}


def test_flood_of_forged_fragments(net):
    """Fragments that fail integrity are dropped one by one; nothing accumulates."""
    client = _up(net)
    genuine = _fragments(client, [VendorIdPayload(data=os.urandom(1500))], 400)
    for i in range(2000):
        forged = bytearray(genuine[i % len(genuine)])
        forged[-1 - (i % 16)] ^= 0x5A
        net.send(client, [bytes(forged)])
    sa = net.sa_of(client)
    assert sa.state == "ESTABLISHED"
    assert sa.reassembly is None or len(sa.reassembly.pieces) == 0
    assert net.send(client, genuine)  # the genuine message still goes through, answered


def test_incomplete_message_expires(net):
    client = _up(net)
    frags = _fragments(client, [VendorIdPayload(data=os.urandom(2000))], 400)
    net.send(client, frags[:-1])
    assert len(net.sa_of(client).reassembly.pieces) == len(frags) - 1
    net.advance(31)
    # after the reassembly timeout the old pieces are gone: the last piece alone completes nothing
    assert net.send(client, frags[-1:]) == []
    sa = net.sa_of(client)
    assert sa.reassembly is not None and len(sa.reassembly.pieces) == 1
    assert struct.unpack(">I", frags[0][20:24])[0] == sa.reassembly.message_id
