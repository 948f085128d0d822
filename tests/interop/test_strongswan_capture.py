"""Capture a real strongSwan 5.9.8 IKE_SA_INIT request and check ikegate's codec on it.

A strongSwan client in its namespace initiates toward a plain UDP socket of the
test (bound to port 500 inside the gateway namespace, which never answers).  The
datagram it receives must decode completely with ``ikegate.wire.codec``, re-encode to
the same bytes, be rendered by ``describe`` exactly as strongSwan logs it, and agree
field by field with Wireshark's independent ISAKMP dissector (tshark), both for the
frame captured on the wire (dumpcap in the gateway namespace) and for a pcap of our
re-encoding.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import struct

import pytest

from .netns import Capture, socket_in
from .wireshark import isakmp_details, isakmp_fields, tshark, udp_packet, write_pcap

codec = pytest.importorskip("ikegate.wire.codec", reason="ikegate.wire.codec not written yet")
from ikegate.proposal import Proposal  # noqa: E402
try:  # strongSwan 5.9.8's own rendering (names differ from Proposal's for ChaCha20, KE none)
    from ikegate.config.proposals import strongswan_text
except ImportError:  # pragma: no cover - until the config layer exists
    strongswan_text = str
from ikegate.wire.constants import (  # noqa: E402
    DhId,
    ExchangeType,
    HashAlgorithm,
    NotifyType,
    PayloadType,
    ProtocolId,
    TransformType,
)
from ikegate.wire.payloads import KePayload, NoncePayload, NotifyPayload, SaPayload  # noqa: E402

# The IKE proposal of Windows 10's built-in client as one strongSwan proposal string.
WIN10_IKE = "aes256-aes128-3des-sha1-sha256-sha384-modp1024"
# What strongSwan makes of it (one PRF per integrity algorithm is added: strongswan-semantics.md 2.9).
WIN10_EXPECTED = ("IKE:AES_CBC_256/AES_CBC_128/3DES_CBC/HMAC_SHA1_96/HMAC_SHA2_256_128/HMAC_SHA2_384_192/"
                  "PRF_HMAC_SHA1/PRF_HMAC_SHA2_256/PRF_HMAC_SHA2_384/MODP_1024")

# Public value lengths: MODP groups = prime size (RFC 2409 6.2, RFC 3526), ECP = x||y
# (RFC 5903 7), Curve25519/448 = 32/56 bytes (RFC 8031 2).
KE_LENGTH = {DhId.MODP_1024: 128, DhId.MODP_1536: 192, DhId.MODP_2048: 256, DhId.MODP_3072: 384,
             DhId.MODP_4096: 512, DhId.ECP_256: 64, DhId.ECP_384: 96, DhId.ECP_521: 132,
             DhId.CURVE_25519: 32, DhId.CURVE_448: 56}

# tshark's transform-id field per transform type
TF_ID_FIELDS = {TransformType.ENCR: "isakmp.tf.id.encr", TransformType.PRF: "isakmp.tf.id.prf",
                TransformType.INTEG: "isakmp.tf.id.integ", TransformType.DH: "isakmp.tf.id.dh",
                TransformType.ESN: "isakmp.tf.id.esn"}

EXPECTED_ORDER = [PayloadType.SA, PayloadType.KE, PayloadType.NONCE] + [PayloadType.NOTIFY] * 5
EXPECTED_NOTIFIES = [NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP,
                     NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, NotifyType.SIGNATURE_HASH_ALGORITHMS,
                     NotifyType.REDIRECT_SUPPORTED]


def check_proposal_names(ours: list[str], strongswan: list[str]) -> str | None:
    """Assert our rendering of proposals equals strongSwan's log text.

    Until ``ikegate.config.proposals.strongswan_text`` exists, one known difference is
    tolerated and reported (the test then ends as xfail after all its other checks):
    ``str(Proposal)`` names ChaCha20-Poly1305 ``CHACHA20_POLY1305_256`` while strongSwan
    5.9.8 prints ``CHACHA20_POLY1305`` (it keeps key size 0 for this fixed-key cipher)."""
    if ours == strongswan:
        return None
    patched = [p.replace("CHACHA20_POLY1305_256", "CHACHA20_POLY1305") for p in ours]
    assert patched == strongswan
    return ("str(Proposal) renders CHACHA20_POLY1305_256 where strongSwan 5.9.8 logs "
            "CHACHA20_POLY1305 (no key size), and ikegate.config.proposals.strongswan_text is missing")


def natd_hash(spi_i: bytes, spi_r: bytes, addr: str, port: int) -> bytes:
    """RFC 7296 2.23: SHA-1(SPIi | SPIr | IP address | port)."""
    return hashlib.sha1(spi_i + spi_r + ipaddress.ip_address(addr).packed + struct.pack("!H", port)).digest()


def capture_ike_sa_init(topology, strongswan_client_factory, tmp_path, *, family: int, proposals: str):
    """Let a strongSwan client initiate toward a silent UDP socket; return
    (datagram, client address, gateway address, client, pcap path)."""
    gw = topology.gateway
    gw_addr = gw.v4[0] if family == socket.AF_INET else gw.v6[0]
    sink = socket_in(gw.ns, family, socket.SOCK_DGRAM, bind=("::" if family == socket.AF_INET6 else "0.0.0.0", 500))
    sink.settimeout(10)
    pcap = tmp_path / "ike_sa_init.pcapng"
    try:
        with Capture(gw.ns, "eth0", pcap, "udp port 500"):
            client = strongswan_client_factory(topology.clients[0], gw_addr, proposals=proposals)
            client.initiate_nowait()  # nobody will answer
            data, addr = sink.recvfrom(65535)
    finally:
        sink.close()
    return data, addr[0], gw_addr, client, pcap


@pytest.mark.parametrize("family,proposals", [
    (socket.AF_INET, "default"),
    (socket.AF_INET, WIN10_IKE),
    (socket.AF_INET6, "default"),
], ids=["ipv4-default", "ipv4-win10", "ipv6-default"])
def test_ike_sa_init_from_strongswan(topology, strongswan_client_factory, tmp_path, family, proposals):
    data, client_addr, gw_addr, client, pcap = capture_ike_sa_init(
        topology, strongswan_client_factory, tmp_path, family=family, proposals=proposals)
    expected_client = topology.clients[0].v4[0] if family == socket.AF_INET else topology.clients[0].v6[0]
    assert client_addr == expected_client

    msg = codec.decode_message(data)

    # header
    assert msg.exchange == ExchangeType.IKE_SA_INIT
    assert msg.message_id == 0 and msg.initiator and not msg.response
    assert len(msg.spi_i) == 8 and msg.spi_i != bytes(8) and msg.spi_r == bytes(8)

    # every payload decoded, in strongSwan's order, rendered as strongSwan logs it
    assert [p.type for p in msg.payloads] == EXPECTED_ORDER
    assert [n.notify_type for n in msg.notifies()] == EXPECTED_NOTIFIES
    logged = re.search(r"generating (IKE_SA_INIT request 0 \[.*\])", client.log_text())
    assert logged, client.log_text()
    assert codec.describe(msg) == logged.group(1)

    # SA: the proposals strongSwan offers for this configuration
    sa = msg.get(PayloadType.SA)
    assert isinstance(sa, SaPayload)
    offered = [Proposal.from_wire(p) for p in sa.proposals]
    assert all(p.protocol == ProtocolId.IKE and p.spi == b"" for p in offered)
    assert [p.number for p in sa.proposals] == list(range(1, len(sa.proposals) + 1))
    # strongSwan logs what it offers ("configured proposals:" of the initiator)
    configured = re.search(r"configured proposals: (IKE:.*)", client.log_text())
    assert configured, client.log_text()
    known_gap = check_proposal_names([strongswan_text(p) for p in offered], configured.group(1).split(", "))
    if proposals == WIN10_IKE:
        assert [str(p) for p in offered] == [WIN10_EXPECTED]
    else:
        # strongSwan's default: one classic proposal, then one AEAD proposal (no INTEG)
        assert len(offered) == 2
        classic, aead = offered
        assert classic.integ and classic.prf and classic.dh and not classic.is_aead
        assert aead.is_aead and not aead.integ and aead.prf and aead.dh

    # KE: the first group of the first proposal, with the group's public value length
    ke = msg.get(PayloadType.KE)
    assert isinstance(ke, KePayload)
    assert ke.group == offered[0].dh[0]
    assert len(ke.data) == KE_LENGTH[ke.group]

    # Nonce: RFC 7296 3.9 bounds (strongSwan sends 32 bytes)
    nonce = msg.get(PayloadType.NONCE)
    assert isinstance(nonce, NoncePayload) and 16 <= len(nonce.data) <= 256

    # NAT detection: the destination hash is the real one (RFC 7296 2.23); the source
    # hash is not, because kernel-libipsec can only do UDP-encapsulated ESP and charon
    # then fakes NATD_S_IP to force encapsulation.  Our gateway will see every such
    # client as "behind NAT".
    natd_s = msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP)
    natd_d = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    assert natd_d.data == natd_hash(msg.spi_i, msg.spi_r, gw_addr, 500)
    assert len(natd_s.data) == 20
    assert natd_s.data != natd_hash(msg.spi_i, msg.spi_r, client_addr, 500)

    # status notifies without data, and the RFC 7427 hash list
    for ntype in (NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, NotifyType.REDIRECT_SUPPORTED):
        n = msg.notify(ntype)
        assert isinstance(n, NotifyPayload) and n.data == b"" and n.protocol == 0 and n.spi == b""
    hash_alg = msg.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS).data
    assert hash_alg and len(hash_alg) % 2 == 0
    hashes = [int.from_bytes(hash_alg[i:i + 2], "big") for i in range(0, len(hash_alg), 2)]
    assert set(hashes) <= {h.value for h in HashAlgorithm} and HashAlgorithm.SHA2_256 in hashes

    # byte-exact round trip
    reencoded = codec.encode_message(msg)
    assert reencoded == data

    # the captured frame is the datagram we received
    wire_hex = tshark("-r", str(pcap), "-Y", "frame.number == 1", "-T", "fields", "-e", "udp.payload").split()
    assert wire_hex and bytes.fromhex(wire_hex[0]) == data

    # Wireshark decodes the captured frame and a pcap of our re-encoding identically ...
    ours = write_pcap(tmp_path / "reencoded.pcap", [udp_packet(client_addr, gw_addr, 500, 500, reencoded)])
    assert isakmp_details(ours) == isakmp_details(pcap)
    assert "Malformed" not in isakmp_details(pcap)

    # ... and agrees with our decoding, field by field
    fields = isakmp_fields(pcap, ["isakmp.typepayload", "isakmp.exchangetype", "isakmp.prop.number",
                                  "isakmp.tf.type", *TF_ID_FIELDS.values(), "isakmp.ike2.attr.key_length",
                                  "isakmp.key_exchange.dh_group", "isakmp.key_exchange.data",
                                  "isakmp.nonce", "isakmp.notify.msgtype"])
    assert [int(v) for v in fields["isakmp.exchangetype"]] == [msg.exchange]
    # tshark also lists the proposal (2) and transform (3) substructures as "payloads"
    assert [int(v) for v in fields["isakmp.typepayload"] if int(v) not in (2, 3)] == [p.type for p in msg.payloads]
    assert [int(v) for v in fields["isakmp.prop.number"]] == [p.number for p in sa.proposals]
    transforms = [t for p in sa.proposals for t in p.transforms]
    assert [int(v) for v in fields["isakmp.tf.type"]] == [t.type for t in transforms]
    for ttype, name in TF_ID_FIELDS.items():
        assert [int(v) for v in fields[name]] == [t.id for t in transforms if t.type == ttype]
    assert [int(v) for v in fields["isakmp.ike2.attr.key_length"]] == [
        t.key_length for t in transforms if t.key_length is not None]
    assert {TransformType.ENCR, TransformType.PRF, TransformType.DH} <= {t.type for t in transforms}
    assert [int(v) for v in fields["isakmp.key_exchange.dh_group"]] == [ke.group]
    assert bytes.fromhex(fields["isakmp.key_exchange.data"][0].replace(":", "")) == ke.data
    assert bytes.fromhex(fields["isakmp.nonce"][0].replace(":", "")) == nonce.data
    assert [int(v) for v in fields["isakmp.notify.msgtype"]] == [n.notify_type for n in msg.notifies()]
    if known_gap:
        pytest.xfail(known_gap)
