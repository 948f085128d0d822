"""Whole messages: header, hand-built datagrams, Message helpers and describe()."""

from __future__ import annotations

import ipaddress

import pytest

from ikegate.wire import (
    AuthPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DecodeError,
    DeletePayload,
    EapPayload,
    EncodeError,
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
    UnknownPayload,
    VendorIdPayload,
    decode_header,
    decode_message,
    describe,
    encode_message,
)
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# Vendor IDs a Windows client sends (/work/shared/spec/client-behaviour.md 1.2, from
# strongSwan's ike_vendor.c table and third-party logs).
MS_NT5_V9 = h("1e2b516905991c7d7c96fcbfb587e46100000009")
MS_NEG_DISCOVERY = h("fb1de3cdf341b7ea16b7e5be0855f120")
MS_VID_INITIAL_CONTACT = h("26244d38eddb61b3172a36e3d0cfb819")
MS_UNKNOWN = h("01528bbbc00696121849ab9a1c5b2a5100000002")

KE_DATA = bytes((i * 7 + 3) & 0xFF for i in range(128))  # a 1024-bit MODP public value's size
NONCE = bytes(range(0x40, 0x60))
NATD_S = h("0102030405060708090a0b0c0d0e0f1011121314")
NATD_D = h("f1f2f3f4f5f6f7f8f9fafbfcfdfeff0001020304")

# A Windows-like IKE_SA_INIT request, assembled field by field (RFC 7296 3.1-3.10):
# SA KE No N(FRAG_SUP) N(NATD_S_IP) N(NATD_D_IP) V V V V.
WINDOWS_SA_INIT = h(
    # IKE header
    "5f54c8a1b7e2093d"  # SPIi
    "0000000000000000"  # SPIr
    "21 20 22 08"  # next SA, version 2.0, IKE_SA_INIT, flags: Initiator
    "00000000"  # message ID 0
    "000001b8"  # length 440
    # SA payload, length 88
    "22 00 0058"
    "02 00 002c 01 01 00 04"  # proposal 1 (more follow), IKE, no SPI, 4 transforms
    "03 00 000c 01 00 000c 800e0100"  # ENCR AES_CBC 256
    "03 00 0008 03 00 0002"  # INTEG HMAC_SHA1_96
    "03 00 0008 02 00 0002"  # PRF HMAC_SHA1
    "00 00 0008 04 00 0002"  # DH MODP_1024
    "00 00 0028 02 01 00 04"  # proposal 2 (last), IKE, no SPI, 4 transforms
    "03 00 0008 01 00 0003"  # ENCR 3DES
    "03 00 0008 03 00 0002"  # INTEG HMAC_SHA1_96
    "03 00 0008 02 00 0002"  # PRF HMAC_SHA1
    "00 00 0008 04 00 0002"  # DH MODP_1024
    # KE payload, group 2, length 136
    "28 00 0088 0002 0000"
) + KE_DATA + h(
    "29 00 0024"  # Nonce payload, length 36
) + NONCE + h(
    "29 00 0008 00 00 402e"  # N(IKEV2_FRAGMENTATION_SUPPORTED)
    "29 00 001c 00 00 4004"  # N(NAT_DETECTION_SOURCE_IP)
) + NATD_S + h(
    "2b 00 001c 00 00 4005"  # N(NAT_DETECTION_DESTINATION_IP)
) + NATD_D + h("2b 00 0018") + MS_NT5_V9 + h("2b 00 0014") + MS_NEG_DISCOVERY + h(
    "2b 00 0014"
) + MS_VID_INITIAL_CONTACT + h("00 00 0018") + MS_UNKNOWN


def test_windows_like_ike_sa_init_decodes_field_by_field():
    assert len(WINDOWS_SA_INIT) == 440
    msg = decode_message(WINDOWS_SA_INIT)
    assert msg.spi_i == h("5f54c8a1b7e2093d") and msg.spi_r == bytes(8)
    assert msg.exchange == ExchangeType.IKE_SA_INIT and isinstance(msg.exchange, ExchangeType)
    assert (msg.initiator, msg.response, msg.version_flag, msg.version, msg.message_id) == (True, False, False, 0x20, 0)
    assert [p.type for p in msg.payloads] == [33, 34, 40, 41, 41, 41, 43, 43, 43, 43]

    sa = msg.get(PayloadType.SA)
    assert [p.number for p in sa.proposals] == [1, 2]
    first, second = sa.proposals
    assert [(t.type, t.id, t.key_length) for t in first.transforms] == [(1, 12, 256), (3, 2, None), (2, 2, None), (4, 2, None)]
    assert [(t.type, t.id) for t in second.transforms] == [(1, 3), (3, 2), (2, 2), (4, 2)]
    assert msg.get(PayloadType.KE) == KePayload(group=2, data=KE_DATA)
    assert msg.get(PayloadType.NONCE).data == NONCE
    assert msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP).data == NATD_S
    assert msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP).data == NATD_D
    assert msg.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) == NotifyPayload(notify_type=16430)
    assert msg.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS) is None
    assert [n.notify_type for n in msg.notifies()] == [16430, 16388, 16389]
    assert [v.data for v in msg.get_all(PayloadType.VENDOR_ID)] == [
        MS_NT5_V9,
        MS_NEG_DISCOVERY,
        MS_VID_INITIAL_CONTACT,
        MS_UNKNOWN,
    ]
    assert msg.unsupported_critical() == [] and msg.sealed is None
    assert describe(msg) == "IKE_SA_INIT request 0 [ SA KE No N(FRAG_SUP) N(NATD_S_IP) N(NATD_D_IP) V V V V ]"


def test_windows_like_ike_sa_init_reencodes_identically():
    assert encode_message(decode_message(WINDOWS_SA_INIT)) == WINDOWS_SA_INIT


def test_built_message_matches_hand_built_bytes():
    msg = Message(
        spi_i=h("5f54c8a1b7e2093d"),
        spi_r=bytes(8),
        exchange=ExchangeType.IKE_SA_INIT,
        message_id=0,
        initiator=True,
        response=False,
        payloads=[
            SaPayload(
                proposals=[
                    SaProposal(1, ProtocolId.IKE, b"", [Transform.make(1, 12, 256), Transform.make(3, 2), Transform.make(2, 2), Transform.make(4, 2)]),
                    SaProposal(2, ProtocolId.IKE, b"", [Transform.make(1, 3), Transform.make(3, 2), Transform.make(2, 2), Transform.make(4, 2)]),
                ]
            ),
            KePayload(group=2, data=KE_DATA),
            NoncePayload(data=NONCE),
            NotifyPayload(notify_type=NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
            NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP, data=NATD_S),
            NotifyPayload(notify_type=NotifyType.NAT_DETECTION_DESTINATION_IP, data=NATD_D),
            VendorIdPayload(data=MS_NT5_V9),
            VendorIdPayload(data=MS_NEG_DISCOVERY),
            VendorIdPayload(data=MS_VID_INITIAL_CONTACT),
            VendorIdPayload(data=MS_UNKNOWN),
        ],
    )
    assert encode_message(msg) == WINDOWS_SA_INIT
    assert decode_message(WINDOWS_SA_INIT) == msg


def test_header_fields_and_flags():
    header = decode_header(WINDOWS_SA_INIT)
    assert (header.next_payload, header.version, header.exchange, header.flags, header.length) == (33, 0x20, 34, 0x08, 440)
    assert header.initiator and not header.response and header.major_version == 2
    response = Message(b"\x01" * 8, b"\x02" * 8, 37, 0xFFFFFFFF, initiator=False, response=True, version_flag=True)
    wire = encode_message(response)
    assert wire == h("0101010101010101 0202020202020202 00 20 25 30 ffffffff 0000001c")
    assert decode_message(wire) == response


@pytest.mark.parametrize(
    "wire, reason",
    [
        (b"", "truncated IKE header"),
        (WINDOWS_SA_INIT[:27], "truncated IKE header"),
        (WINDOWS_SA_INIT[:-1], "length 440 but datagram has 439"),
        (WINDOWS_SA_INIT + b"\x00", "length 440 but datagram has 441"),
    ],
)
def test_header_errors(wire, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_header(wire)
    with pytest.raises(DecodeError, match=reason):
        decode_message(wire)


def test_other_major_versions_are_left_to_decode_header():
    wire = bytearray(WINDOWS_SA_INIT)
    wire[17] = 0x30  # version 3.0
    with pytest.raises(DecodeError, match="major version 3"):
        decode_message(bytes(wire))
    assert decode_header(bytes(wire)).major_version == 3
    wire[17] = 0x21  # minor versions are ignored (RFC 7296 3.1)
    assert decode_message(bytes(wire)).version == 0x21


def test_reserved_flag_bits_are_ignored():
    wire = bytearray(WINDOWS_SA_INIT)
    wire[19] |= 0xC7
    msg = decode_message(bytes(wire))
    assert msg.initiator and not msg.response and not msg.version_flag


def test_unknown_exchange_types_are_kept_as_int():
    msg = Message(bytes(8), bytes(8), 99, 3, initiator=True, response=False)
    decoded = decode_message(encode_message(msg))
    assert decoded.exchange == 99 and not isinstance(decoded.exchange, ExchangeType)
    assert describe(decoded) == "(99) request 3 [ ]"


def test_sk_must_be_last_in_a_message():
    msg = Message(b"\x01" * 8, b"\x02" * 8, 35, 1, True, False, [NoncePayload(data=b"n"), SkPayload(first_inner=35, body=b"x" * 20)])
    wire = encode_message(msg)
    decoded = decode_message(wire)
    assert decoded == msg and decoded.sealed == msg.payloads[-1]
    assert describe(decoded) == "IKE_AUTH request 1 [ No E ]"
    # an SK payload followed by more bytes: not the last payload
    body = h("23 00 0008 aabbccdd") + h("00 00 0004")
    bad = h("0101010101010101 0202020202020202 2e 20 23 08 00000001") + (28 + len(body)).to_bytes(4, "big") + body
    with pytest.raises(DecodeError, match="SK payload is not the last payload"):
        decode_message(bad)
    with pytest.raises(EncodeError, match="must be the last"):
        encode_message(Message(bytes(8), bytes(8), 35, 1, True, False, [SkPayload(), NoncePayload()]))


def test_critical_unknown_payloads_are_reported():
    msg = Message(
        bytes(8),
        bytes(8),
        37,
        7,
        False,
        True,
        [UnknownPayload(payload_type=60, data=b"a"), UnknownPayload(payload_type=61, critical=True), NotifyPayload(notify_type=16396, critical=True)],
    )
    decoded = decode_message(encode_message(msg))
    assert decoded.unsupported_critical() == [61]
    assert decoded.get(60) == UnknownPayload(payload_type=60, data=b"a")
    assert describe(decoded) == "INFORMATIONAL response 7 [ UNKN(60) UNKN(61) N(MOBIKE_SUP) ]"


def test_encode_rejects_bad_header_fields():
    with pytest.raises(EncodeError):
        encode_message(Message(bytes(7), bytes(8), 34, 0, True, False))
    with pytest.raises(EncodeError):
        encode_message(Message(bytes(8), bytes(8), 34, 1 << 32, True, False))
    with pytest.raises(EncodeError):
        encode_message(Message(bytes(8), bytes(8), 300, 0, True, False))


# ---------------------------------------------------------------- describe()

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
ALL_V4 = TrafficSelector(7, 0, 0, 65535, V4("0.0.0.0"), V4("255.255.255.255"))


def _msg(exchange, mid=1, response=False):
    return Message(bytes(8), bytes(8), exchange, mid, initiator=not response, response=response)


def test_describe_strongswan_ike_auth_request():
    # strongSwan client with certificate auth: the line from the task brief
    inner = [
        IdPayload(id_type=2, data=b"carol"),
        NotifyPayload(notify_type=NotifyType.INITIAL_CONTACT),
        CertReqPayload(data=bytes(20)),
        IdPayload(id_type=2, data=b"moon", responder=True),
        AuthPayload(method=1, data=b"sig"),
        CpPayload(attributes=[CpAttribute(1), CpAttribute(8), CpAttribute(3), CpAttribute(10)]),
        SaPayload(proposals=[SaProposal(1, 3, b"abcd", [Transform.make(1, 20, 128)])]),
        TsPayload(selectors=[ALL_V4]),
        TsPayload(selectors=[ALL_V4], responder=True),
        NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED),
    ]
    assert (
        describe(_msg(ExchangeType.IKE_AUTH), inner)
        == "IKE_AUTH request 1 [ IDi N(INIT_CONTACT) CERTREQ IDr AUTH CPRQ(ADDR ADDR6 DNS DNS6) SA TSi TSr N(MOBIKE_SUP) ]"
    )
    assert describe(inner).startswith("[ IDi N(INIT_CONTACT) CERTREQ IDr AUTH CPRQ(")


def test_describe_windows_ike_auth_request():
    # client-behaviour.md 1.2: "IDi CERTREQ N(MOBIKE_SUP) CPRQ(ADDR DNS NBNS SRV ADDR6 DNS6 SRV6) SA TSi TSr"
    inner = [
        IdPayload(id_type=1, data=V4("192.0.2.10").packed),
        CertReqPayload(data=bytes(40)),
        NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED),
        CpPayload(attributes=[CpAttribute(t) for t in (1, 3, 4, 23456, 8, 10, 23457)]),
        SaPayload(),
        TsPayload(selectors=[ALL_V4]),
        TsPayload(selectors=[ALL_V4], responder=True),
    ]
    assert describe(inner) == "[ IDi CERTREQ N(MOBIKE_SUP) CPRQ(ADDR DNS NBNS SRV ADDR6 DNS6 SRV6) SA TSi TSr ]"


@pytest.mark.parametrize(
    "payloads, text",
    [
        ([SkfPayload(fragment_number=1, total_fragments=5)], "[ EF(1/5) ]"),
        ([EapPayload(data=h("01 01 0005 01"))], "[ EAP/REQ/ID ]"),
        ([EapPayload(data=h("02 01 000a 01") + b"alice")], "[ EAP/RES/ID ]"),
        ([EapPayload(data=h("01 02 0006 1a 01"))], "[ EAP/REQ/MSCHAPV2 ]"),
        ([EapPayload(data=h("02 02 0006 1a 02"))], "[ EAP/RES/MSCHAPV2 ]"),
        ([EapPayload(data=h("02 02 0006 03 1a"))], "[ EAP/RES/NAK ]"),
        ([EapPayload(data=h("03 03 0004"))], "[ EAP/SUCC ]"),
        ([EapPayload(data=h("04 03 0004"))], "[ EAP/FAIL ]"),
        ([EapPayload(data=h("01 04 000c fe 000137 00000021"))], "[ EAP/REQ/33-MS ]"),
        ([EapPayload(data=h("01 04 000c fe 000000 0000001a"))], "[ EAP/REQ/MSCHAPV2 ]"),
        ([EapPayload(data=h("01 04 0006 63 00"))], "[ EAP/REQ/(99) ]"),
        ([AuthPayload(method=2), EapPayload(data=h("03 03 0004"))], "[ AUTH EAP/SUCC ]"),
        ([CpPayload(cfg_type=2, attributes=[CpAttribute(1), CpAttribute(8), CpAttribute(25), CpAttribute(4000)])], "[ CPRP(ADDR ADDR6 DOMAIN (4000)) ]"),
        ([CpPayload(cfg_type=3, attributes=[CpAttribute(1)]), CpPayload(cfg_type=4, attributes=[CpAttribute(1)])], "[ CPS(ADDR) CPA(ADDR) ]"),
        ([CpPayload(cfg_type=9, attributes=[CpAttribute(2)]), CpPayload()], "[ CP(MASK) CP ]"),
        ([DeletePayload()], "[ D ]"),
        ([NotifyPayload(notify_type=45)], "[ N((45)) ]"),
        ([NotifyPayload(notify_type=12345, data=h("000035e9"))], "[ N(MS_STATUS(13801)) ]"),
        (
            [NotifyPayload(notify_type=t) for t in (14, 17, 24, 36, 38, 16390, 16393, 16394, 16395, 16399, 16417, 16420, 16431)],
            "[ N(NO_PROP) N(INVAL_KE) N(AUTH_FAILED) N(INT_ADDR_FAIL) N(TS_UNACCEPT) N(COOKIE) N(REKEY_SA)"
            " N(ESP_TFC_PAD_N) N(NON_FIRST_FRAG) N(NO_ADD_ADDR) N(EAP_ONLY) N(MSG_ID_SYN_SUP) N(HASH_ALG) ]",
        ),
        ([NotifyPayload(notify_type=t) for t in (16397, 16398, 16400, 16401, 16406, 16407)], "[ N(ADD_4_ADDR) N(ADD_6_ADDR) N(UPD_SA_ADDR) N(COOKIE2) N(REDIR_SUP) N(REDIR) ]"),
        ([SkPayload()], "[ E ]"),
        ([], "[ ]"),
    ],
)
def test_describe_short_names(payloads, text):
    assert describe(payloads) == text


def test_describe_headers():
    assert describe(_msg(ExchangeType.INFORMATIONAL, 5, response=True)) == "INFORMATIONAL response 5 [ ]"
    rekey = [NotifyPayload(notify_type=NotifyType.REKEY_SA, protocol=3, spi=b"abcd"), SaPayload(), NoncePayload(), TsPayload(), TsPayload(responder=True)]
    assert describe(_msg(ExchangeType.CREATE_CHILD_SA, 2), rekey) == "CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]"
