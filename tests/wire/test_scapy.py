"""Cross-checks with scapy's independent IKEv2 dissector (scapy.contrib.ikev2, test-only).

Our encoder's output must be read by scapy field for field, and messages built by scapy
must decode with our codec and re-encode to scapy's exact bytes.  Scapy gotchas
(/work/shared/spec/python-dependencies.md): a transform's Key Length attribute is only
built with ``length=12``; IDi of type IPv4 wants a dotted string; ``trans_nb`` is not
computed; and IPv6TrafficSelector's default ``length`` is 20, so it must be set to 40.
"""

from __future__ import annotations

import ipaddress

from scapy.contrib.ikev2 import (
    IKEv2,
    ConfigurationAttribute,
    IKEv2_AUTH,
    IKEv2_CERT,
    IKEv2_CERTREQ,
    IKEv2_CP,
    IKEv2_Delete,
    IKEv2_EAP,
    IKEv2_Encrypted,
    IKEv2_Encrypted_Fragment,
    IKEv2_IDi,
    IKEv2_IDr,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2_TSi,
    IKEv2_TSr,
    IKEv2_VendorID,
    IPv4TrafficSelector,
    IPv6TrafficSelector,
)
from scapy.packet import NoPayload, Raw

from ikegate.wire import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DeletePayload,
    EapPayload,
    IdPayload,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TsPayload,
    VendorIdPayload,
    decode_message,
    decode_payloads,
    describe,
    encode_message,
    encode_payloads,
)
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
SPI_I = bytes.fromhex("0011223344556677")
SPI_R = bytes.fromhex("8899aabbccddeeff")


def chain(layer) -> list:
    """The payload layers following ``layer`` (scapy nests each next payload)."""
    out = []
    layer = layer.payload if isinstance(layer, IKEv2) else layer
    while not isinstance(layer, (NoPayload, Raw)):
        out.append(layer)
        layer = layer.payload
    return out


def sub_chain(first) -> list:
    out = []
    while not isinstance(first, (NoPayload, Raw)):
        out.append(first)
        first = first.payload
    return out


# ------------------------------------------------------------- ours -> scapy


def test_our_ike_sa_init_response_reads_in_scapy():
    msg = Message(
        SPI_I,
        SPI_R,
        ExchangeType.IKE_SA_INIT,
        0,
        initiator=False,
        response=True,
        payloads=[
            SaPayload(proposals=[SaProposal(1, 1, b"", [Transform.make(1, 12, 256), Transform.make(3, 12), Transform.make(2, 5), Transform.make(4, 19)])]),
            KePayload(group=19, data=bytes(range(64))),
            NoncePayload(data=b"N" * 32),
            NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP, data=b"s" * 20),
            NotifyPayload(notify_type=NotifyType.NAT_DETECTION_DESTINATION_IP, data=b"d" * 20),
            CertReqPayload(data=b"h" * 20),
            NotifyPayload(notify_type=NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
            NotifyPayload(notify_type=NotifyType.SIGNATURE_HASH_ALGORITHMS, data=bytes.fromhex("000200030004")),
            VendorIdPayload(data=b"strongSwan-ish!!"),
        ],
    )
    wire = encode_message(msg)
    pkt = IKEv2(wire)
    assert (pkt.init_SPI, pkt.resp_SPI, pkt.exch_type, pkt.id, pkt.length, pkt.version) == (SPI_I, SPI_R, 34, 0, len(wire), 0x20)
    assert pkt.flags == 0x20 and pkt.next_payload == 33
    sa, ke, nonce, natd_s, natd_d, certreq, frag, hash_alg, vid = chain(pkt)
    assert isinstance(sa, IKEv2_SA)
    (proposal,) = sub_chain(sa.prop)
    assert (proposal.proposal, proposal.proto, proposal.SPIsize, proposal.trans_nb) == (1, 1, 0, 4)
    transforms = sub_chain(proposal.trans)
    assert [(t.transform_type, t.transform_id) for t in transforms] == [(1, 12), (3, 12), (2, 5), (4, 19)]
    assert transforms[0].key_length == 256 and transforms[0].length == 12
    assert isinstance(ke, IKEv2_KE) and ke.group == 19 and ke.ke == bytes(range(64))
    assert isinstance(nonce, IKEv2_Nonce) and nonce.nonce == b"N" * 32
    assert [n.type for n in (natd_s, natd_d, frag, hash_alg)] == [16388, 16389, 16430, 16431]
    assert natd_s.notify == b"s" * 20 and hash_alg.notify == bytes.fromhex("000200030004")
    assert isinstance(certreq, IKEv2_CERTREQ) and certreq.cert_encoding == 4 and certreq.cert_authority == b"h" * 20
    assert isinstance(vid, IKEv2_VendorID) and vid.vendorID == b"strongSwan-ish!!" and vid.next_payload == 0


def test_our_ike_auth_response_chain_reads_in_scapy():
    inner = [
        IdPayload(id_type=2, data=b"vpn.example.org", responder=True),
        CertPayload(data=b"\x30\x82" + bytes(40)),
        AuthPayload(method=1, data=b"S" * 256),
        CpPayload(
            cfg_type=2,
            attributes=[
                CpAttribute(1, V4("10.10.0.2").packed),
                CpAttribute(3, V4("8.8.8.8").packed),
                CpAttribute(8, V6("fd00::2").packed + b"\x40"),
                CpAttribute(10, V6("2001:4860:4860::8888").packed),
                CpAttribute(23456, V4("10.0.0.1").packed),
            ],
        ),
        SaPayload(proposals=[SaProposal(1, 3, bytes.fromhex("c1c2c3c4"), [Transform.make(1, 20, 256), Transform.make(5, 0)])]),
        TsPayload(selectors=[TrafficSelector(7, 0, 0, 65535, V4("10.10.0.2"), V4("10.10.0.2")), TrafficSelector(8, 0, 0, 65535, V6("fd00::2"), V6("fd00::2"))]),
        TsPayload(selectors=[TrafficSelector(7, 6, 80, 443, V4("0.0.0.0"), V4("255.255.255.255"))], responder=True),
        NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED),
    ]
    first, data = encode_payloads(inner)
    assert first == PayloadType.IDr
    idr, cert, auth, cp, sa, tsi, tsr, mobike = sub_chain(IKEv2_IDr(data))
    assert idr.IDtype == 2 and idr.ID == b"vpn.example.org"
    assert isinstance(cert, IKEv2_CERT) and cert.cert_encoding == 4
    assert isinstance(auth, IKEv2_AUTH) and auth.auth_type == 1 and auth.load == b"S" * 256
    assert isinstance(cp, IKEv2_CP) and cp.CFGType == 2
    assert [(a.type, a.length) for a in cp.attributes] == [(1, 4), (3, 4), (8, 17), (10, 16), (23456, 4)]
    assert cp.attributes[0].value == "10.10.0.2" and cp.attributes[3].value == "2001:4860:4860::8888"
    assert cp.attributes[2].value == V6("fd00::2").packed + b"\x40"
    (proposal,) = sub_chain(sa.prop)
    assert (proposal.proto, proposal.SPIsize, proposal.SPI, proposal.trans_nb) == (3, 4, bytes.fromhex("c1c2c3c4"), 2)
    assert isinstance(tsi, IKEv2_TSi) and tsi.number_of_TSs == 2
    v4, v6 = tsi.traffic_selector
    assert (v4.starting_address_v4, v4.ending_address_v4, v4.start_port, v4.end_port) == ("10.10.0.2", "10.10.0.2", 0, 65535)
    assert (v6.length, v6.starting_address_v6, v6.ending_address_v6) == (40, "fd00::2", "fd00::2")
    (sel,) = tsr.traffic_selector
    assert isinstance(tsr, IKEv2_TSr) and (sel.IP_protocol_ID, sel.start_port, sel.end_port) == (6, 80, 443)
    assert mobike.type == 16396 and mobike.next_payload == 0


def test_our_informational_and_fragment_read_in_scapy():
    msg = Message(
        SPI_I,
        SPI_R,
        ExchangeType.INFORMATIONAL,
        4,
        initiator=True,
        response=False,
        payloads=[
            DeletePayload(protocol=3, spi_size=4, spis=[b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"]),
            DeletePayload(protocol=1),
            NotifyPayload(notify_type=NotifyType.REKEY_SA, protocol=3, spi=b"\xaa\xbb\xcc\xdd"),
            EapPayload(data=bytes.fromhex("0101000501")),
            SkfPayload(first_inner=0, fragment_number=2, total_fragments=5, body=b"B" * 48),
        ],
    )
    pkt = IKEv2(encode_message(msg))
    d_esp, d_ike, rekey, eap, skf = chain(pkt)
    assert isinstance(d_esp, IKEv2_Delete) and (d_esp.proto, d_esp.SPIsize, d_esp.SPInum) == (3, 4, 2)
    assert d_esp.SPI == [b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"]
    assert (d_ike.proto, d_ike.SPIsize, d_ike.SPInum, d_ike.length) == (1, 0, 0, 8)
    assert (rekey.proto, rekey.SPIsize, rekey.SPI, rekey.type) == (3, 4, b"\xaa\xbb\xcc\xdd", 16393)
    assert isinstance(eap, IKEv2_EAP) and eap.load == bytes.fromhex("0101000501")
    assert isinstance(skf, IKEv2_Encrypted_Fragment)
    assert (skf.frag_number, skf.frag_total, skf.load, skf.next_payload) == (2, 5, b"B" * 48, 0)


# ------------------------------------------------------------- scapy -> ours


def test_scapy_strongswan_like_ike_sa_init_decodes():
    def transform(ttype, tid, key_length=None):
        if key_length:
            return IKEv2_Transform(transform_type=ttype, transform_id=tid, length=12, key_length=key_length)
        return IKEv2_Transform(transform_type=ttype, transform_id=tid)

    p1 = IKEv2_Proposal(
        proposal=1,
        proto=1,
        trans_nb=5,
        trans=transform(1, 12, 128) / transform(1, 12, 256) / transform(3, 12) / transform(2, 5) / transform(4, 31),
    )
    p2 = IKEv2_Proposal(proposal=2, proto=1, trans_nb=3, trans=transform(1, 20, 128) / transform(2, 5) / transform(4, 31))
    pkt = (
        IKEv2(init_SPI=SPI_I, resp_SPI=bytes(8), exch_type=34, flags="Initiator", id=0)
        / IKEv2_SA(prop=p1 / p2)
        / IKEv2_KE(group=31, ke=bytes(range(32)))
        / IKEv2_Nonce(nonce=b"n" * 32)
        / IKEv2_Notify(type=16388, notify=b"s" * 20)
        / IKEv2_Notify(type=16389, notify=b"d" * 20)
        / IKEv2_Notify(type=16430)
        / IKEv2_Notify(type=16431, notify=bytes.fromhex("0002000300040005"))
        / IKEv2_Notify(type=16406)
    )
    wire = bytes(pkt)
    msg = decode_message(wire)
    assert (msg.spi_i, msg.spi_r, msg.exchange, msg.initiator, msg.response) == (SPI_I, bytes(8), 34, True, False)
    sa = msg.get(PayloadType.SA)
    assert [p.number for p in sa.proposals] == [1, 2]
    assert [(t.type, t.id, t.key_length) for t in sa.proposals[0].transforms] == [
        (1, 12, 128),
        (1, 12, 256),
        (3, 12, None),
        (2, 5, None),
        (4, 31, None),
    ]
    assert [(t.type, t.id, t.key_length) for t in sa.proposals[1].transforms] == [(1, 20, 128), (2, 5, None), (4, 31, None)]
    assert msg.get(PayloadType.KE) == KePayload(group=31, data=bytes(range(32)))
    assert msg.notify(16431).data == bytes.fromhex("0002000300040005")
    assert describe(msg) == "IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]"
    assert encode_message(msg) == wire


def test_scapy_windows_like_ike_auth_chain_decodes():
    tsi = IKEv2_TSi(
        traffic_selector=[
            IPv4TrafficSelector(IP_protocol_ID=0, starting_address_v4="0.0.0.0", ending_address_v4="255.255.255.255"),
            IPv6TrafficSelector(IP_protocol_ID=0, length=40, starting_address_v6="::", ending_address_v6="ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ]
    )
    tsr = IKEv2_TSr(traffic_selector=[IPv4TrafficSelector(IP_protocol_ID=0, starting_address_v4="0.0.0.0", ending_address_v4="255.255.255.255")])
    esp = IKEv2_Proposal(
        proposal=1,
        proto=3,
        SPI=b"\xc0\xff\xee\x01",
        trans_nb=3,
        trans=IKEv2_Transform(transform_type=1, transform_id=12, length=12, key_length=256)
        / IKEv2_Transform(transform_type=3, transform_id=2)
        / IKEv2_Transform(transform_type=5, transform_id=0),
    )
    attrs = [ConfigurationAttribute(type=t) for t in (1, 3, 4, 23456, 8, 10, 23457)]
    inner = (
        IKEv2_IDi(IDtype=1, ID="192.0.2.10")
        / IKEv2_CERTREQ(cert_encoding=4, cert_authority=b"A" * 20 + b"B" * 20)
        / IKEv2_Notify(type=16396)
        / IKEv2_CP(CFGType=1, attributes=attrs)
        / IKEv2_SA(prop=esp)
        / tsi
        / tsr
    )
    data = bytes(inner)
    payloads = decode_payloads(PayloadType.IDi, data)
    idi, certreq, mobike, cp, sa, ts_i, ts_r = payloads
    assert idi == IdPayload(id_type=1, data=V4("192.0.2.10").packed)
    assert certreq.ca_hashes == [b"A" * 20, b"B" * 20]
    assert mobike.notify_type == NotifyType.MOBIKE_SUPPORTED
    assert cp == CpPayload(cfg_type=1, attributes=[CpAttribute(t) for t in (1, 3, 4, 23456, 8, 10, 23457)])
    assert sa.proposals[0].spi == b"\xc0\xff\xee\x01" and sa.proposals[0].protocol == 3
    assert [(t.type, t.id, t.key_length) for t in sa.proposals[0].transforms] == [(1, 12, 256), (3, 2, None), (5, 0, None)]
    assert ts_i.selectors == [
        TrafficSelector(7, 0, 0, 65535, V4("0.0.0.0"), V4("255.255.255.255")),
        TrafficSelector(8, 0, 0, 65535, V6("::"), V6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
    ]
    assert ts_r.responder and not ts_i.responder
    assert describe(payloads) == "[ IDi CERTREQ N(MOBIKE_SUP) CPRQ(ADDR DNS NBNS SRV ADDR6 DNS6 SRV6) SA TSi TSr ]"
    assert encode_payloads(payloads) == (PayloadType.IDi, data)


def test_scapy_encrypted_and_fragment_payloads_decode():
    sk = IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, exch_type=35, flags="Initiator", id=1) / IKEv2_Encrypted(next_payload=35, load=b"E" * 64)
    wire = bytes(sk)
    msg = decode_message(wire)
    assert msg.payloads == [SkPayload(first_inner=35, body=b"E" * 64)]
    assert encode_message(msg) == wire

    skf = IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, exch_type=35, flags="Initiator", id=1) / IKEv2_Encrypted_Fragment(
        next_payload=35, frag_number=1, frag_total=3, load=b"F" * 80
    )
    wire = bytes(skf)
    msg = decode_message(wire)
    assert msg.payloads == [SkfPayload(first_inner=35, fragment_number=1, total_fragments=3, body=b"F" * 80)]
    assert describe(msg) == "IKE_AUTH request 1 [ EF(1/3) ]"
    assert encode_message(msg) == wire


def test_scapy_informational_decodes():
    pkt = (
        IKEv2(init_SPI=SPI_I, resp_SPI=SPI_R, exch_type=37, flags="Response", id=9)
        / IKEv2_Delete(proto=3, SPI=[b"\x01\x02\x03\x04"], SPInum=1)
        / IKEv2_Notify(proto=3, SPI=b"\x0a\x0b\x0c\x0d", type=16393)
        / IKEv2_EAP(load=bytes.fromhex("03070004"))
    )
    wire = bytes(pkt)
    msg = decode_message(wire)
    assert msg.payloads == [
        DeletePayload(protocol=3, spi_size=4, spis=[b"\x01\x02\x03\x04"]),
        NotifyPayload(notify_type=16393, protocol=3, spi=b"\x0a\x0b\x0c\x0d"),
        EapPayload(data=bytes.fromhex("03070004")),
    ]
    assert describe(msg) == "INFORMATIONAL response 9 [ D N(REKEY_SA) EAP/SUCC ]"
    assert encode_message(msg) == wire
