"""SK and SKF framing: associated data, sealing, fragmentation and reassembly."""

from __future__ import annotations

import os

import pytest

from ikegate.crypto.errors import IntegrityError
from ikegate.crypto.sk import SkCipher
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.wire import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DecodeError,
    EapPayload,
    EncodeError,
    IdPayload,
    Message,
    NotifyPayload,
    SaPayload,
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TsPayload,
    decode_message,
    decode_payloads,
    decrypt_message,
    describe,
    encode_encrypted,
    encode_fragments,
    encode_message,
    encode_payloads,
    open_sealed,
    sealed_aad,
)
from ikegate.wire.constants import EncrId, ExchangeType, IntegId, NotifyType, PayloadType

from .ciphers import Rfc7634Cipher, ToyCipher, ToyIntegrityError


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 7634 Appendix B ("IKEv2 Example"): ChaCha20-Poly1305 protecting an INFORMATIONAL
# request with one Notify payload.  Values as transcribed in strongSwan's
# src/libstrongswan/plugins/test_vectors/test_vectors/chacha20poly1305.c
# ("IKEv2 example from RFC 7634"); the tests below also recompute the ciphertext with
# `cryptography`, so a transcription error could not pass unnoticed.
RFC7634_KEY = bytes(range(0x80, 0xA0))
RFC7634_SALT = h("a0a1a2a3")
RFC7634_IV = h("1011121314151617")
RFC7634_AAD = h(
    "c0c1c2c3c4c5c6c7 d0d1d2d3d4d5d6d7"  # SPIi, SPIr
    "2e 20 25 00 00000009 00000045"  # next SK, v2.0, INFORMATIONAL, flags 0, MID 9, length 69
    "29 00 0029"  # SK header: first inner payload Notify, length 41
)
RFC7634_PLAIN = h("00 00 000c 00 00 4001 0000000a 00")  # N(SET_WINDOW_SIZE 10) + Pad Length 0
RFC7634_SEALED = h(
    "61 03 94 70 1f 8d 01 7f 7c 12 92 48 89 6b 71 bf"
    "e2 52 36 ef d7 cd c6 70 66 90 63 15 b2"
)
RFC7634_MESSAGE = RFC7634_AAD + RFC7634_IV + RFC7634_SEALED
RFC7634_INNER = [NotifyPayload(notify_type=NotifyType.SET_WINDOW_SIZE, data=h("0000000a"))]


def rfc7634_header() -> Message:
    return Message(
        spi_i=h("c0c1c2c3c4c5c6c7"),
        spi_r=h("d0d1d2d3d4d5d6d7"),
        exchange=ExchangeType.INFORMATIONAL,
        message_id=9,
        initiator=False,
        response=False,
    )


def test_rfc7634_ikev2_example_is_built_byte_for_byte():
    cipher = Rfc7634Cipher(RFC7634_KEY, RFC7634_SALT, RFC7634_IV)
    assert encode_payloads(RFC7634_INNER) == (PayloadType.NOTIFY, RFC7634_PLAIN[:-1])
    assert encode_encrypted(rfc7634_header(), RFC7634_INNER, cipher) == RFC7634_MESSAGE


def test_rfc7634_ikev2_example_is_opened_and_decoded():
    msg = decode_message(RFC7634_MESSAGE)
    assert msg.payloads == [SkPayload(first_inner=PayloadType.NOTIFY, body=RFC7634_IV + RFC7634_SEALED)]
    assert sealed_aad(RFC7634_MESSAGE) == (RFC7634_AAD, RFC7634_IV + RFC7634_SEALED)
    cipher = Rfc7634Cipher(RFC7634_KEY, RFC7634_SALT, RFC7634_IV)
    inner = decrypt_message(RFC7634_MESSAGE, msg, cipher)
    assert inner == RFC7634_INNER
    assert describe(msg) == "INFORMATIONAL request 9 [ E ]"
    assert describe(msg, inner) == "INFORMATIONAL request 9 [ N(SET_WINSIZE) ]"


def test_rfc7634_ikev2_example_with_the_project_sk_cipher():
    # ikegate.crypto.sk uses the IV counter as the 8-byte IV; start it at the RFC's IV
    encr = get_encr(EncrId.CHACHA20_POLY1305, 256)
    cipher = SkCipher(encr, RFC7634_KEY + RFC7634_SALT, None, None, iv_start=int.from_bytes(RFC7634_IV, "big"))
    assert encode_encrypted(rfc7634_header(), RFC7634_INNER, cipher) == RFC7634_MESSAGE
    opener = SkCipher(encr, RFC7634_KEY + RFC7634_SALT, None, None)
    assert decrypt_message(RFC7634_MESSAGE, decode_message(RFC7634_MESSAGE), opener) == RFC7634_INNER


def ike_auth_header(mid: int = 1) -> Message:
    return Message(os.urandom(8), os.urandom(8), ExchangeType.IKE_AUTH, mid, initiator=True, response=False)


ALL_V4 = TrafficSelector()


def big_ike_auth() -> list:
    """An IKE_AUTH request the size of a certificate-bearing one (about 4.5 kB)."""
    return [
        IdPayload(id_type=9, data=os.urandom(90)),
        CertPayload(data=os.urandom(1800)),
        CertReqPayload(data=os.urandom(20 * 41)),  # Windows sends dozens of CA hashes
        NotifyPayload(notify_type=NotifyType.INITIAL_CONTACT),
        AuthPayload(method=1, data=os.urandom(256)),
        CpPayload(attributes=[CpAttribute(t) for t in (1, 3, 4, 23456, 8, 10, 23457)]),
        SaPayload(proposals=[SaProposal(i, 3, os.urandom(4), [Transform.make(1, 12, 256), Transform.make(3, 12), Transform.make(5, 0)]) for i in range(1, 40)]),
        TsPayload(selectors=[ALL_V4]),
        TsPayload(selectors=[ALL_V4], responder=True),
        NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED),
    ]


def test_encrypted_round_trip_and_aad():
    cipher = ToyCipher()
    inner = big_ike_auth()[:4]
    header = ike_auth_header()
    wire = encode_encrypted(header, inner, cipher)
    msg = decode_message(wire)
    (sk,) = msg.payloads
    assert isinstance(sk, SkPayload) and sk.first_inner == PayloadType.IDi
    assert len(sk.body) == cipher.overhead(len(encode_payloads(inner)[1]))
    aad, body = sealed_aad(wire)
    assert aad == wire[:32] and body == sk.body
    assert decrypt_message(wire, msg, cipher) == inner
    assert (msg.spi_i, msg.spi_r, msg.message_id, msg.initiator) == (header.spi_i, header.spi_r, 1, True)


def test_unencrypted_payloads_before_sk_are_part_of_the_aad():
    cipher = ToyCipher()
    sealed_part = encode_encrypted(ike_auth_header(), [EapPayload(data=h("03 01 0004"))], cipher)
    msg = decode_message(sealed_part)
    msg.payloads.insert(0, NotifyPayload(notify_type=NotifyType.COOKIE, data=b"c" * 8))
    wire = encode_message(msg)  # the SK body no longer matches its AAD, but the split must
    aad, body = sealed_aad(wire)
    assert aad == wire[: 28 + 16 + 4] and body == msg.payloads[-1].body
    with pytest.raises(ToyIntegrityError):
        open_sealed(wire, cipher)


@pytest.mark.parametrize("where", [0, 17, 20, 28, 29, 40, -1])  # not the length fields
def test_tampering_raises_the_cipher_error_not_decode_error(where):
    cipher = ToyCipher()
    wire = bytearray(encode_encrypted(ike_auth_header(), big_ike_auth()[:3], cipher))
    wire[where] ^= 0x01
    msg = decode_message(bytes(wire))  # still well-formed
    with pytest.raises(ToyIntegrityError):
        decrypt_message(bytes(wire), msg, cipher)


def test_decrypt_errors():
    cipher = ToyCipher()
    plain = encode_message(Message(bytes(8), bytes(8), 37, 0, True, False, [NotifyPayload(notify_type=16384)]))
    with pytest.raises(DecodeError, match="no SK or SKF"):
        decrypt_message(plain, decode_message(plain), cipher)
    with pytest.raises(DecodeError, match="no SK or SKF"):
        sealed_aad(plain)

    class Garbage(ToyCipher):
        def open(self, aad, body):
            return h("00 00 0010 01")  # announced 16 bytes, has 5

    wire = encode_encrypted(ike_auth_header(), [NotifyPayload(notify_type=16384)], cipher)
    with pytest.raises(DecodeError, match="exceeds"):
        decrypt_message(wire, decode_message(wire), Garbage())

    class Nested(ToyCipher):
        def open(self, aad, body):
            return h("00 00 0008 aabbccdd")

    msg = decode_message(wire)
    msg.payloads[-1].first_inner = PayloadType.SK
    with pytest.raises(DecodeError, match="nested SK"):
        decrypt_message(wire, msg, Nested())


def test_cipher_that_breaks_its_overhead_promise_is_caught():
    class Liar(ToyCipher):
        def seal(self, aad, plaintext):
            return super().seal(aad, plaintext) + b"x"

    with pytest.raises(EncodeError, match="overhead"):
        encode_encrypted(ike_auth_header(), [NotifyPayload(notify_type=16384)], Liar())


@pytest.mark.parametrize(
    "max_datagram, ip_overhead",
    [
        (1280, 20 + 8 + 4),  # strongSwan's default fragment_size, IPv4 on port 4500
        (1280, 40 + 8 + 4),  # IPv6 on port 4500
        (576, 20 + 8),  # IPv4 minimum on port 500
        (300, 28),
    ],
)
def test_fragments_fit_and_reassemble(max_datagram, ip_overhead):
    cipher = ToyCipher()
    inner = big_ike_auth()
    header = ike_auth_header(mid=1)
    fragments = encode_fragments(header, inner, cipher, max_datagram, ip_overhead=ip_overhead)
    total = len(fragments)
    assert total > 1
    pieces = []
    for number, wire in enumerate(fragments, start=1):
        assert len(wire) + ip_overhead <= max_datagram
        msg = decode_message(wire)
        (skf,) = msg.payloads
        assert isinstance(skf, SkfPayload)
        assert (skf.fragment_number, skf.total_fragments) == (number, total)
        assert skf.first_inner == (PayloadType.IDi if number == 1 else 0)
        assert (msg.spi_i, msg.message_id, msg.exchange) == (header.spi_i, 1, ExchangeType.IKE_AUTH)
        assert describe(msg) == f"IKE_AUTH request 1 [ EF({number}/{total}) ]"
        aad, _ = sealed_aad(wire)
        assert aad == wire[:36]  # IKE header + SKF header with Fragment Number / Total
        pieces.append(open_sealed(wire, cipher))
    # fragments are as large as allowed: one more plaintext byte would not have fitted
    room = max_datagram - ip_overhead - 36
    chunk = len(pieces[0])
    assert cipher.overhead(chunk) <= room < cipher.overhead(chunk + 1)
    assert all(len(p) == chunk for p in pieces[:-1]) and 0 < len(pieces[-1]) <= chunk
    first = decode_message(fragments[0]).payloads[0].first_inner
    assert decode_payloads(first, b"".join(pieces)) == inner


def test_fragment_header_fields_are_authenticated():
    cipher = ToyCipher()
    fragments = encode_fragments(ike_auth_header(), big_ike_auth(), cipher, 1280, ip_overhead=32)
    wire = bytearray(fragments[1])
    assert wire[32:34] == b"\x00\x02"
    wire[33] = 0x03  # claim to be fragment 3: still well-formed, must not verify
    decode_message(bytes(wire))
    with pytest.raises(ToyIntegrityError):
        open_sealed(bytes(wire), cipher)


def test_single_fragment_message_and_reassembly_guard():
    cipher = ToyCipher()
    inner = [NotifyPayload(notify_type=NotifyType.INITIAL_CONTACT)]
    (only,) = encode_fragments(ike_auth_header(), inner, cipher, 1280, ip_overhead=28)
    msg = decode_message(only)
    assert describe(msg) == "IKE_AUTH request 1 [ EF(1/1) ]"
    assert decrypt_message(only, msg, cipher) == inner
    several = encode_fragments(ike_auth_header(), big_ike_auth(), cipher, 1280, ip_overhead=28)
    with pytest.raises(DecodeError, match="needs reassembly"):
        decrypt_message(several[0], decode_message(several[0]), cipher)


def test_fragmentation_limits():
    cipher = ToyCipher()
    with pytest.raises(EncodeError, match="no room"):
        encode_fragments(ike_auth_header(), big_ike_auth(), cipher, 100, ip_overhead=28)
    # one byte of payload chain per fragment is still legal ...
    aead = Rfc7634Cipher(RFC7634_KEY, RFC7634_SALT, RFC7634_IV)  # overhead(n) = n + 25
    tiny = 28 + 36 + aead.overhead(1)
    inner = [NotifyPayload(notify_type=16384)]
    fragments = encode_fragments(ike_auth_header(), inner, aead, tiny, ip_overhead=28)
    assert len(fragments) == 8 and {len(f) for f in fragments} == {tiny - 28}
    assert decode_payloads(PayloadType.NOTIFY, b"".join(open_sealed(f, aead) for f in fragments)) == inner
    # ... but Total Fragments is a 16-bit field
    huge = [CertPayload(data=bytes(40000)), CertPayload(data=bytes(40000))]
    with pytest.raises(EncodeError, match="80010 fragments"):
        encode_fragments(ike_auth_header(), huge, aead, tiny, ip_overhead=28)


@pytest.mark.parametrize(
    "encr_id, key_bits, integ_id",
    [
        (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
        (EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
        (EncrId.AES_GCM_16, 256, None),
        (EncrId.CHACHA20_POLY1305, 256, None),
    ],
)
def test_project_sk_cipher_with_messages_and_fragments(encr_id, key_bits, integ_id):
    encr = get_encr(encr_id, key_bits)
    integ = get_integ(integ_id) if integ_id else None
    key, integ_key = os.urandom(encr.key_size), os.urandom(integ.key_size) if integ else None
    cipher = SkCipher(encr, key, integ, integ_key)
    inner = big_ike_auth()
    wire = encode_encrypted(ike_auth_header(), inner, cipher)
    assert decrypt_message(wire, decode_message(wire), cipher) == inner
    fragments = encode_fragments(ike_auth_header(), inner, cipher, 1280, ip_overhead=52)
    assert all(len(f) + 52 <= 1280 for f in fragments)
    plaintext = b"".join(open_sealed(f, cipher) for f in fragments)
    assert decode_payloads(PayloadType.IDi, plaintext) == inner
    tampered = bytearray(fragments[0])
    tampered[-1] ^= 0x80
    with pytest.raises(IntegrityError):
        open_sealed(bytes(tampered), cipher)
