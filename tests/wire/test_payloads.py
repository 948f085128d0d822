"""Payload-level encoding and decoding against hand-built bytes (RFC 7296 section 3).

Every case gives the wire bytes, written field by field from the RFC 7296 / RFC 7383 /
MS-IKEE figures, and the payload object they stand for; both directions must agree.
"""

from __future__ import annotations

import ipaddress

import pytest

from ikegate.wire import (
    MAX_PAYLOADS,
    MAX_SUBSTRUCTURES,
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DecodeError,
    DeletePayload,
    EapPayload,
    EncodeError,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TsPayload,
    UnknownPayload,
    VendorIdPayload,
    decode_payloads,
    encode_payloads,
)
from ikegate.wire.constants import (
    AuthMethod,
    CertEncoding,
    CfgAttr,
    CfgType,
    DhId,
    EncrId,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
    TsType,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def h(text: str) -> bytes:
    """Hex with spaces/newlines allowed, so fields can be written one by one."""
    return bytes.fromhex("".join(text.split()))


NONCE16 = bytes(range(0x10, 0x20))
HASH20 = bytes(range(0xA0, 0xB4))
CA1 = bytes(range(20))
CA2 = bytes(range(100, 120))

# (name, payload type, wire bytes of a one-payload chain, payload object)
CASES = [
    (
        "SA IKE aes256-sha1-prfsha1-modp2048",
        PayloadType.SA,
        h(
            "00 00 0030"  # generic header: next none, not critical, length 48
            "00 00 002c 01 01 00 04"  # proposal: last, len 44, #1, IKE, SPI size 0, 4 transforms
            "03 00 000c 01 00 000c 800e0100"  # ENCR AES_CBC, Key Length (TV) 256
            "03 00 0008 03 00 0002"  # INTEG HMAC_SHA1_96
            "03 00 0008 02 00 0002"  # PRF HMAC_SHA1
            "00 00 0008 04 00 000e"  # DH MODP_2048, last transform
        ),
        SaPayload(
            proposals=[
                SaProposal(
                    1,
                    ProtocolId.IKE,
                    b"",
                    [
                        Transform.make(TransformType.ENCR, EncrId.AES_CBC, 256),
                        Transform.make(TransformType.INTEG, IntegId.HMAC_SHA1_96),
                        Transform.make(TransformType.PRF, PrfId.HMAC_SHA1),
                        Transform.make(TransformType.DH, DhId.MODP_2048),
                    ],
                )
            ]
        ),
    ),
    (
        "SA two ESP proposals with SPI, ESN and a TLV attribute",
        PayloadType.SA,
        h(
            "00 00 0052"
            "02 00 0020 01 03 04 02 11223344"  # more, len 32, #1, ESP, SPI size 4, 2 transforms
            "03 00 000c 01 00 0014 800e0080"  # ENCR AES_GCM_16, key length 128
            "00 00 0008 05 00 0000"  # ESN none
            "00 00 002e 02 03 04 03 11223344"  # last, len 46, #2, ESP, 3 transforms
            "03 00 0012 01 00 000c 800e0080 0011 0002 abcd"  # AES_CBC 128 + TLV attr 17
            "03 00 0008 03 00 000c"  # INTEG HMAC_SHA2_256_128
            "00 00 0008 05 00 0000"  # ESN none
        ),
        SaPayload(
            proposals=[
                SaProposal(
                    1,
                    ProtocolId.ESP,
                    h("11223344"),
                    [Transform.make(1, EncrId.AES_GCM_16, 128), Transform.make(5, 0)],
                ),
                SaProposal(
                    2,
                    ProtocolId.ESP,
                    h("11223344"),
                    [
                        Transform(
                            1,
                            EncrId.AES_CBC,
                            [TransformAttribute(14, 128), TransformAttribute(17, h("abcd"), tv=False)],
                        ),
                        Transform.make(3, IntegId.HMAC_SHA2_256_128),
                        Transform.make(5, 0),
                    ],
                ),
            ]
        ),
    ),
    (
        "KE curve25519",
        PayloadType.KE,
        h("00 00 0028 001f 0000") + bytes(range(32)),
        KePayload(group=DhId.CURVE_25519, data=bytes(range(32))),
    ),
    ("Nonce", PayloadType.NONCE, h("00 00 0014") + NONCE16, NoncePayload(data=NONCE16)),
    (
        "IDi FQDN",
        PayloadType.IDi,
        h("00 00 0017 02 000000") + b"vpn.example.org",
        IdPayload(id_type=IdType.FQDN, data=b"vpn.example.org"),
    ),
    (
        "IDr IPv4",
        PayloadType.IDr,
        h("00 00 000c 01 000000 c0000201"),
        IdPayload(id_type=IdType.IPV4_ADDR, data=V4("192.0.2.1").packed, responder=True),
    ),
    (
        "CERT X.509",
        PayloadType.CERT,
        h("00 00 000a 04 3082000102"),
        CertPayload(encoding=CertEncoding.X509_SIGNATURE, data=h("3082000102")),
    ),
    (
        "CERTREQ two CA hashes",
        PayloadType.CERTREQ,
        h("00 00 002d 04") + CA1 + CA2,
        CertReqPayload(encoding=CertEncoding.X509_SIGNATURE, data=CA1 + CA2),
    ),
    (
        "AUTH shared key",
        PayloadType.AUTH,
        h("00 00 001c 02 000000") + HASH20,
        AuthPayload(method=AuthMethod.SHARED_KEY_MIC, data=HASH20),
    ),
    (
        "N(NATD_S_IP)",
        PayloadType.NOTIFY,
        h("00 00 001c 00 00 4004") + HASH20,
        NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP, data=HASH20),
    ),
    (
        "N(REKEY_SA) with ESP SPI",
        PayloadType.NOTIFY,
        h("00 00 000c 03 04 4009 aabbccdd"),
        NotifyPayload(notify_type=NotifyType.REKEY_SA, protocol=ProtocolId.ESP, spi=h("aabbccdd")),
    ),
    (
        "N(INVALID_KE_PAYLOAD) group 14",
        PayloadType.NOTIFY,
        h("00 00 000a 00 00 0011 000e"),
        NotifyPayload(notify_type=NotifyType.INVALID_KE_PAYLOAD, data=h("000e")),
    ),
    ("D IKE", PayloadType.DELETE, h("00 00 0008 01 00 0000"), DeletePayload(protocol=ProtocolId.IKE)),
    (
        "D two ESP SPIs",
        PayloadType.DELETE,
        h("00 00 0010 03 04 0002 11111111 22222222"),
        DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=[h("11111111"), h("22222222")]),
    ),
    (
        "V MS-Negotiation Discovery Capable",
        PayloadType.VENDOR_ID,
        h("00 00 0014 fb1de3cdf341b7ea16b7e5be0855f120"),
        VendorIdPayload(data=h("fb1de3cdf341b7ea16b7e5be0855f120")),
    ),
    (
        "TSi IPv4 and IPv6 everything",
        PayloadType.TSi,
        h(
            "00 00 0040 02 000000"
            "07 00 0010 0000 ffff 00000000 ffffffff"
            "08 00 0028 0000 ffff" + "00" * 16 + "ff" * 16
        ),
        TsPayload(
            selectors=[
                TrafficSelector(TsType.IPV4_ADDR_RANGE, 0, 0, 65535, V4("0.0.0.0"), V4("255.255.255.255")),
                TrafficSelector(TsType.IPV6_ADDR_RANGE, 0, 0, 65535, V6("::"), V6("ffff:" * 7 + "ffff")),
            ]
        ),
    ),
    (
        "TSr TCP 443 to 10.0.0.0/24",
        PayloadType.TSr,
        h("00 00 0018 01 000000 07 06 0010 01bb 01bb 0a000000 0a0000ff"),
        TsPayload(
            selectors=[TrafficSelector(7, 6, 443, 443, V4("10.0.0.0"), V4("10.0.0.255"))],
            responder=True,
        ),
    ),
    (
        "TSi with a non-IP selector type kept raw",
        PayloadType.TSi,
        h("00 00 000e 01 000000 0a 00 0006 abcd"),
        TsPayload(selectors=[TrafficSelector(10, 0, 0, 0, h("abcd"), b"")]),
    ),
    (
        "CPRQ as Windows sends it (ADDR DNS NBNS SRV ADDR6 DNS6 SRV6)",
        PayloadType.CP,
        h(
            "00 00 0024 01 000000"
            "0001 0000 0003 0000 0004 0000 5ba0 0000"
            "0008 0000 000a 0000 5ba1 0000"
        ),
        CpPayload(
            cfg_type=CfgType.CFG_REQUEST,
            attributes=[
                CpAttribute(t)
                for t in (
                    CfgAttr.INTERNAL_IP4_ADDRESS,
                    CfgAttr.INTERNAL_IP4_DNS,
                    CfgAttr.INTERNAL_IP4_NBNS,
                    CfgAttr.INTERNAL_IP4_SERVER,
                    CfgAttr.INTERNAL_IP6_ADDRESS,
                    CfgAttr.INTERNAL_IP6_DNS,
                    CfgAttr.INTERNAL_IP6_SERVER,
                )
            ],
        ),
    ),
    (
        "CPRP with values incl. MS-IKEE SRV/SRV6",
        PayloadType.CP,
        h(
            "00 00 0049 02 000000"
            "0001 0004 0a0a0002"
            "0008 0011 fd000000000000000000000000000002 40"
            "0003 0004 08080808"
            "5ba0 0004 0a000001"
            "5ba1 0010 fd000000000000000000000000000001"
        ),
        CpPayload(
            cfg_type=CfgType.CFG_REPLY,
            attributes=[
                CpAttribute(1, V4("10.10.0.2").packed),
                CpAttribute(8, V6("fd00::2").packed + b"\x40"),
                CpAttribute(3, V4("8.8.8.8").packed),
                CpAttribute(23456, V4("10.0.0.1").packed),
                CpAttribute(23457, V6("fd00::1").packed),
            ],
        ),
    ),
    ("EAP request identity", PayloadType.EAP, h("00 00 0009 01 01 0005 01"), EapPayload(data=h("01 01 0005 01"))),
    (
        "EAP response identity",
        PayloadType.EAP,
        h("00 00 000e 02 01 000a 01") + b"alice",
        EapPayload(data=h("02 01 000a 01") + b"alice"),
    ),
    ("EAP success", PayloadType.EAP, h("00 00 0008 03 02 0004"), EapPayload(data=h("03 02 0004"))),
    ("SK sealed", PayloadType.SK, h("29 00 0018") + bytes(20), SkPayload(first_inner=PayloadType.NOTIFY, body=bytes(20))),
    (
        "SKF fragment 1 of 3",
        PayloadType.SKF,
        h("23 00 0010 0001 0003") + bytes(8),
        SkfPayload(first_inner=PayloadType.IDi, fragment_number=1, total_fragments=3, body=bytes(8)),
    ),
    (
        "SKF fragment 3 of 3",
        PayloadType.SKF,
        h("00 00 000a 0003 0003 cafe"),
        SkfPayload(first_inner=0, fragment_number=3, total_fragments=3, body=h("cafe")),
    ),
    ("unknown type 99", 99, h("00 00 0007 aabbcc"), UnknownPayload(payload_type=99, data=h("aabbcc"))),
    (
        "unknown type 200 critical",
        200,
        h("00 80 0004"),
        UnknownPayload(payload_type=200, data=b"", critical=True),
    ),
    ("KE marked critical", PayloadType.KE, h("00 80 000a 0002 0000 abcd"), KePayload(group=2, data=h("abcd"), critical=True)),
]


@pytest.mark.parametrize("ptype, wire, payload", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decode_matches_hand_built_bytes(ptype, wire, payload):
    allow = ptype in (PayloadType.SK, PayloadType.SKF)
    assert decode_payloads(ptype, wire, allow_sealed=allow) == [payload]


@pytest.mark.parametrize("ptype, wire, payload", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_encode_gives_hand_built_bytes(ptype, wire, payload):
    assert encode_payloads([payload]) == (ptype, wire)


def test_chain_links_next_payload_fields():
    payloads = [payload for _, ptype, _, payload in CASES if ptype not in (PayloadType.SK, PayloadType.SKF)]
    payloads.append(SkPayload(first_inner=PayloadType.IDi, body=b"sealed"))
    first, chain = encode_payloads(payloads)
    assert first == PayloadType.SA
    assert decode_payloads(first, chain, allow_sealed=True) == payloads
    # walk the generic headers by hand: each Next Payload names the following payload
    pos, types = 0, []
    for payload in payloads:
        types.append(chain[pos])
        pos += int.from_bytes(chain[pos + 2 : pos + 4], "big")
    assert pos == len(chain)
    assert types == [p.type for p in payloads[1:]] + [PayloadType.IDi]


def test_decoded_types_and_helpers():
    (ts,) = decode_payloads(PayloadType.TSr, CASES[16][2])
    assert ts.type == PayloadType.TSr and ts.responder
    assert isinstance(ts.selectors[0].start_addr, ipaddress.IPv4Address)
    (sa,) = decode_payloads(PayloadType.SA, CASES[0][2])
    assert sa.proposals[0].transforms[0].key_length == 256
    (certreq,) = decode_payloads(PayloadType.CERTREQ, CASES[7][2])
    assert certreq.ca_hashes == [CA1, CA2]


def test_cp_attribute_r_bit_is_masked():
    # RFC 7296 3.15.1: R bit reserved; received set, ignored, sent as zero
    wire = h("00 00 0014 01 000000 8001 0000 dba0 0004 0a000001")
    (cp,) = decode_payloads(PayloadType.CP, wire)
    assert cp.attributes == [CpAttribute(1, b""), CpAttribute(23456, h("0a000001"))]
    assert encode_payloads([cp])[1] == h("00 00 0014 01 000000 0001 0000 5ba0 0004 0a000001")


def test_reserved_fields_are_ignored_and_sent_as_zero():
    wire = h("00 7f 000a 0002 ffff abcd")  # reserved flag bits and KE reserved set
    (ke,) = decode_payloads(PayloadType.KE, wire)
    assert ke == KePayload(group=2, data=h("abcd"))
    assert encode_payloads([ke])[1] == h("00 00 000a 0002 0000 abcd")


def test_all_cp_attribute_types_round_trip():
    attributes = [CpAttribute(int(attr), bytes([int(attr) & 0xFF]) * (int(attr) % 5)) for attr in CfgAttr]
    attributes.append(CpAttribute(0x7FFF, b"private"))
    for cfg_type in CfgType:
        cp = CpPayload(cfg_type=cfg_type, attributes=attributes)
        first, chain = encode_payloads([cp])
        assert decode_payloads(first, chain) == [cp]


@pytest.mark.parametrize(
    "ptype, wire, reason",
    [
        (PayloadType.NONCE, h("00 00"), "truncated"),
        (PayloadType.NONCE, h("00 00 0003 00"), "< 4"),
        (PayloadType.NONCE, h("00 00 0010 aabb"), "exceeds"),
        (PayloadType.NONCE, h("00 00 0005 aa 00"), "after the last payload"),
        (PayloadType.NONCE, h("29 00 0005 aa"), "truncated NOTIFY payload header"),
        (PayloadType.SA, h("00 00 000a 00 00 0008 01 01"), "truncated proposal"),
        (PayloadType.SA, h("00 00 0010 02 00 000c 01 01 00 00 00 00 00 00"), "does not match its position"),
        (PayloadType.SA, h("00 00 0014 00 00 0008 01 01 00 00 00 00 0008 02 01 00 00"), "position"),
        (PayloadType.SA, h("00 00 000c 01 00 0008 01 01 00 00"), "'last substructure' value 1"),
        (PayloadType.SA, h("00 00 000c 00 00 0008 00 01 00 00"), "proposal number 0"),
        (PayloadType.SA, h("00 00 0014 02 00 0008 02 01 00 00 00 00 0008 01 01 00 00"), "proposal number 1 after 2"),
        (PayloadType.SA, h("00 00 000c 00 00 0010 01 01 00 00"), "proposal length"),
        (PayloadType.SA, h("00 00 000c 00 00 0008 01 01 04 00"), "proposal length"),
        (PayloadType.SA, h("00 00 0014 00 00 0010 01 01 00 02 03 00 0008 01 00 000c"), "only 1 present"),
        (PayloadType.SA, h("00 00 0014 00 00 0010 01 01 00 00 00 00 0008 01 00 000c"), "after the 0 announced"),
        (PayloadType.SA, h("00 00 0014 00 00 0010 01 01 00 01 03 00 0008 01 00 000c"), "'last substructure' value 3"),
        (PayloadType.SA, h("00 00 0014 00 00 0010 01 01 00 01 00 00 0007 01 00 000c"), "transform length"),
        (PayloadType.SA, h("00 00 0016 00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e"), "truncated transform attribute"),
        (PayloadType.SA, h("00 00 0018 00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0011 0001"), "attribute length"),
        (PayloadType.KE, h("00 00 0006 0002"), "KE payload too short"),
        (PayloadType.IDi, h("00 00 0006 0100"), "IDi payload too short"),
        (PayloadType.CERT, h("00 00 0004"), "CERT payload too short"),
        (PayloadType.AUTH, h("00 00 0007 02 0000"), "AUTH payload too short"),
        (PayloadType.NOTIFY, h("00 00 000a 03 04 4009 aabb"), "SPI size 4"),
        (PayloadType.DELETE, h("00 00 000c 03 04 0002 11111111"), "do not fill"),
        (PayloadType.DELETE, h("00 00 0008 01 00 0101"), "more than 256 SPIs"),
        (PayloadType.TSi, h("00 00 0018 01 000000 07 00 0014 0000 ffff 00000000 ffffffff"), "selector length 20 does not fit"),
        (PayloadType.TSi, h("00 00 0020 01 000000 07 00 0018 0000 ffff 00000000 ffffffff 0000000000000000"), "IPv4 selector length 24"),
        (PayloadType.TSi, h("00 00 0018 01 000000 08 00 0010 0000 ffff 00000000 ffffffff"), "IPv6 selector length 16"),
        (PayloadType.TSi, h("00 00 0018 02 000000 07 00 0010 0000 ffff 00000000 ffffffff"), "only 1 present"),
        (PayloadType.TSi, h("00 00 0018 00 000000 07 00 0010 0000 ffff 00000000 ffffffff"), "after the 0 announced"),
        (PayloadType.TSi, h("00 00 000c 01 000000 0a 00 0002"), "selector length 2"),
        (PayloadType.CP, h("00 00 000a 01 000000 0001"), "truncated attribute"),
        (PayloadType.CP, h("00 00 000c 01 000000 0001 0004"), "attribute length 4"),
        (PayloadType.EAP, h("00 00 0007 01 01 00"), "EAP payload too short"),
        (PayloadType.EAP, h("00 00 0009 01 01 0006 01"), "EAP length 6"),
        (PayloadType.SKF, h("00 00 0006 0001"), "truncated SKF"),
        (PayloadType.SKF, h("00 00 0008 0000 0001"), "fragment number 0"),
        (PayloadType.SKF, h("00 00 0008 0004 0003"), "fragment number 4 of total 3"),
        (PayloadType.SKF, h("00 00 0008 0001 0000"), "total 0"),
        (PayloadType.SK, h("00 00 0004 2b 00 0004"), "not the last payload"),
    ],
)
def test_malformed_payloads_raise_decode_error(ptype, wire, reason):
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(")):
        decode_payloads(ptype, wire, allow_sealed=True)


def test_nested_sk_is_rejected_in_inner_chains():
    wire = h("00 00 0008 aabbccdd")
    with pytest.raises(DecodeError, match="nested SK"):
        decode_payloads(PayloadType.SK, wire)
    with pytest.raises(DecodeError, match="nested SKF"):
        decode_payloads(PayloadType.SKF, h("00 00 0008 0001 0001"))
    assert decode_payloads(PayloadType.SK, wire, allow_sealed=True) == [SkPayload(first_inner=0, body=h("aabbccdd"))]


def test_payload_count_is_capped():
    vid = h("2b 00 0004")
    assert len(decode_payloads(PayloadType.VENDOR_ID, vid * (MAX_PAYLOADS - 1) + h("00 00 0004"))) == MAX_PAYLOADS
    with pytest.raises(DecodeError, match="more than 256 payloads"):
        decode_payloads(PayloadType.VENDOR_ID, vid * MAX_PAYLOADS + h("00 00 0004"))


def test_substructure_count_is_capped():
    attrs = h("0003 0000") * (MAX_SUBSTRUCTURES + 1)
    wire = (8 + len(attrs)).to_bytes(4, "big") + h("01 000000") + attrs
    with pytest.raises(DecodeError, match="more than 256 attributes"):
        decode_payloads(PayloadType.CP, wire)
    tv = h("800e 0080") * (MAX_SUBSTRUCTURES + 1)
    transform = h("00 00") + (8 + len(tv)).to_bytes(2, "big") + h("01 00 000c") + tv
    proposal = h("00 00") + (8 + len(transform)).to_bytes(2, "big") + h("01 01 00 01") + transform
    sa = (4 + len(proposal)).to_bytes(4, "big") + proposal
    with pytest.raises(DecodeError, match="more than 256 transform attributes"):
        decode_payloads(PayloadType.SA, sa)


def test_empty_chain():
    assert decode_payloads(PayloadType.NONE, b"") == []
    assert encode_payloads([]) == (PayloadType.NONE, b"")
    with pytest.raises(DecodeError):
        decode_payloads(PayloadType.NONE, b"\x00")


@pytest.mark.parametrize(
    "payloads",
    [
        [SkPayload(body=b""), NoncePayload(data=b"x")],
        [KePayload(group=70000)],
        [NoncePayload(data=bytes(65532))],
        [NoncePayload(data="text")],
        [TsPayload(selectors=[TrafficSelector(start_addr=V6("::"))])],
        [TsPayload(selectors=[TrafficSelector(start_addr="not an address")])],
        [TsPayload(selectors=[TrafficSelector(start_port=-1)])],
        [DeletePayload(protocol=3, spi_size=4, spis=[b"abc"])],
        [SaPayload(proposals=[SaProposal(1, 1, b"", [Transform(1, 12, [TransformAttribute(14, b"\x01\x00")])])])],
        [SaPayload(proposals=[SaProposal(256, 1, b"", [])])],
        [CpPayload(attributes=[CpAttribute(0x8001)])],
        [NotifyPayload(notify_type=16384, spi=b"x" * 256)],
        [object()],
    ],
)
def test_unencodable_objects_raise_encode_error(payloads):
    with pytest.raises(EncodeError):
        encode_payloads(payloads)


def test_string_addresses_are_accepted_when_encoding():
    ts = TsPayload(selectors=[TrafficSelector(8, 0, 0, 65535, "fd00::", "fd00::ffff")])
    (decoded,) = decode_payloads(*encode_payloads([ts]))
    assert decoded.selectors[0].end_addr == V6("fd00::ffff")
