"""Packet layout, every drop reason, and robustness against arbitrary input.

Hand-built packets (bad padding with a valid ICV, dummy packets) are sealed here with
``cryptography``/pycryptodome directly, not with the code under test.
"""

from __future__ import annotations

import hmac
import os
import time

import pytest
from Crypto.Cipher import AES as CryptoAES
from Crypto.Cipher import DES3 as CryptoDES3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.esp import (
    DROP_DUMMY,
    DROP_ICV,
    DROP_LENGTH,
    DROP_NEXT_HEADER,
    DROP_PADDING,
    DROP_REASONS,
    DROP_REPLAY,
    DROP_SEQ_OVERFLOW,
    DROP_SHORT,
    DROP_UNKNOWN_SPI,
    EspError,
    EspSa,
    next_header_for,
)
from ikegate.wire.constants import EncrId, IntegId

SPI = 0x0A0B0C0D

# id -> (encr_id, key_bits, encr key length, integ_id, integ key length, esn,
#        IV length, alignment, ICV length)
CONFIGS = {
    "gcm16-128": (EncrId.AES_GCM_16, 128, 20, None, 0, False, 8, 4, 16),
    "gcm8-256-esn": (EncrId.AES_GCM_8, 256, 36, None, 0, True, 8, 4, 8),
    "gcm12-192": (EncrId.AES_GCM_12, 192, 28, None, 0, False, 8, 4, 12),
    "chacha20-esn": (EncrId.CHACHA20_POLY1305, 256, 36, None, 0, True, 8, 4, 16),
    "cbc256-sha256": (EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_256_128, 32, False, 16, 16, 16),
    "cbc128-sha1-esn": (EncrId.AES_CBC, 128, 16, IntegId.HMAC_SHA1_96, 20, True, 16, 16, 12),
    "3des-sha512": (EncrId.TRIPLE_DES, 0, 24, IntegId.HMAC_SHA2_512_256, 64, False, 8, 8, 32),
}


def make_pair(name: str, **kwargs) -> tuple[EspSa, EspSa]:
    """Sender and receiver SA objects with the same fresh keys."""
    encr_id, key_bits, encr_len, integ_id, integ_len, esn, *_ = CONFIGS[name]
    encr_key = os.urandom(encr_len)
    integ_key = os.urandom(integ_len) if integ_id else None
    return tuple(
        EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key, esn=esn, **kwargs)
        for _ in range(2)
    )


def ipv4(size: int) -> bytes:
    return b"\x45" + os.urandom(size - 1)


def ipv6(size: int) -> bytes:
    return b"\x60" + os.urandom(size - 1)


def state(sa: EspSa):
    """Everything a dropped packet must leave alone."""
    return (sa.packets_in, sa.bytes_in, sa.last_in, sa.replay.top, sa.replay._bitmap)


def expect_drop(sa: EspSa, packet: bytes, reason: str) -> None:
    before = state(sa)
    with pytest.raises(EspError) as excinfo:
        sa.decapsulate(packet)
    assert excinfo.value.reason == reason
    assert state(sa) == before


# --- layout and round trips --------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_layout_and_round_trip(name):
    *_, esn, iv_len, align, icv_len = CONFIGS[name]
    sender, receiver = make_pair(name)
    ivs = set()
    for size in list(range(1, 70)) + [576, 1280, 1400, 1500]:
        for inner, next_header in ((ipv4(size), 4), (ipv6(size), 41)):
            packet = sender.encapsulate(inner, next_header)
            seq = sender.seq_out
            encrypted = len(packet) - 8 - iv_len - icv_len
            assert encrypted % align == 0
            assert 0 <= encrypted - (size + 2) < align  # minimal padding
            assert packet[:4] == SPI.to_bytes(4, "big")
            assert packet[4:8] == (seq & 0xFFFFFFFF).to_bytes(4, "big")
            iv = packet[8 : 8 + iv_len]
            if align == 4:  # AEAD: the IV is the 64-bit sequence number
                assert iv == seq.to_bytes(8, "big")
            ivs.add(iv)
            assert receiver.decapsulate(packet) == (inner, next_header)
    assert len(ivs) == sender.seq_out  # never an IV twice
    assert sender.packets_out == receiver.packets_in == sender.seq_out
    assert sender.bytes_out == receiver.bytes_in
    assert receiver.last_in is not None and receiver.last_in <= time.monotonic()


@pytest.mark.parametrize("name", ["cbc256-sha256", "3des-sha512"])
def test_cbc_packets_stand_alone(name):
    """The chained CBC contexts must still produce ordinary CBC packets: each one decrypts
    on its own with a fresh context keyed by its IV, and the receiver takes them in any
    order within the window."""
    encr_id, key_bits, encr_len, integ_id, integ_len, _, iv_len, _, icv_len = CONFIGS[name]
    encr_key, integ_key = os.urandom(encr_len), os.urandom(integ_len)
    sender = EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key)
    receiver = EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key)
    inners = [ipv4(size) for size in (20, 333, 64, 1400, 100, 47)]
    packets = [sender.encapsulate(inner, 4) for inner in inners]
    module = CryptoAES if encr_id == EncrId.AES_CBC else CryptoDES3
    for inner, packet in zip(inners, packets):
        iv, body = packet[8 : 8 + iv_len], packet[8 + iv_len : -icv_len]
        plain = module.new(encr_key, module.MODE_CBC, iv=iv).decrypt(body)  # pycryptodome
        pad = plain[-2]
        assert plain == inner + bytes(range(1, pad + 1)) + bytes((pad, 4))
    for index in (3, 0, 5, 1, 4, 2):
        assert receiver.decapsulate(packets[index]) == (inners[index], 4)


# --- tampering -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_tampered_fields(name):
    *_, iv_len, _, icv_len = CONFIGS[name]
    sender, receiver = make_pair(name)
    inner = ipv4(120)
    sender.seq_out = 41
    packet = sender.encapsulate(inner, 4)

    def flip(offset: int, bit: int = 1) -> bytes:
        damaged = bytearray(packet)
        damaged[offset] ^= bit
        return bytes(damaged)

    expect_drop(receiver, flip(0), DROP_UNKNOWN_SPI)
    expect_drop(receiver, flip(3), DROP_UNKNOWN_SPI)
    expect_drop(receiver, flip(7, 0x04), DROP_ICV)  # seq 42 -> 46: in the window, not signed
    expect_drop(receiver, flip(8), DROP_ICV)  # IV
    expect_drop(receiver, flip(8 + iv_len + 5), DROP_ICV)  # ciphertext
    expect_drop(receiver, flip(len(packet) - icv_len - 1), DROP_ICV)  # last ciphertext byte
    expect_drop(receiver, flip(len(packet) - 1), DROP_ICV)  # ICV
    expect_drop(receiver, packet[:-1] + bytes((packet[-1] ^ 0xFF,)), DROP_ICV)  # whole last byte
    # The genuine packet still goes through, once.
    assert receiver.decapsulate(packet) == (inner, 4)
    expect_drop(receiver, packet, DROP_REPLAY)


@pytest.mark.parametrize("name", CONFIGS)
def test_truncated(name):
    sender, receiver = make_pair(name)
    packet = sender.encapsulate(ipv4(60), 4)
    minimum = receiver._min_len
    for cut in range(len(packet)):
        with pytest.raises(EspError) as excinfo:
            receiver.decapsulate(packet[:cut])
        reason = excinfo.value.reason
        if cut < minimum:
            assert reason == DROP_SHORT
        else:
            assert reason in (DROP_LENGTH, DROP_ICV)
    assert receiver.packets_in == 0 and receiver.replay.top == 0
    assert receiver.decapsulate(packet)[1] == 4


@pytest.mark.parametrize("name", ["cbc256-sha256", "3des-sha512"])
def test_cbc_misaligned_length(name):
    sender, receiver = make_pair(name)
    packet = sender.encapsulate(ipv4(100), 4)
    expect_drop(receiver, packet[:30] + packet[31:], DROP_LENGTH)
    expect_drop(receiver, packet[:30] + b"\x00" + packet[30:], DROP_LENGTH)


@pytest.mark.parametrize("name", CONFIGS)
def test_wrong_keys(name):
    sender, _ = make_pair(name)
    _, stranger = make_pair(name)  # same algorithms, other keys
    expect_drop(stranger, sender.encapsulate(ipv4(80), 4), DROP_ICV)


def test_esn_mismatch_fails_icv():
    """With ESN the high 32 bits are authenticated although not sent (RFC 4303 2.2.1)."""
    for name in ("cbc128-sha1-esn", "chacha20-esn", "gcm8-256-esn"):
        encr_id, key_bits, encr_len, integ_id, integ_len, *_ = CONFIGS[name]
        encr_key = os.urandom(encr_len)
        integ_key = os.urandom(integ_len) if integ_id else None
        sender = EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key, esn=True)
        plain = EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key, esn=False)
        sender.seq_out = (1 << 32) + 10
        expect_drop(plain, sender.encapsulate(ipv4(50), 4), DROP_ICV)


# --- padding and next header, with valid ICVs ---------------------------------------------


def _gcm_packet(keymat: bytes, seq: int, plaintext: bytes) -> bytes:
    """An ESP packet sealed by hand with cryptography's AESGCM (RFC 4106, no ESN)."""
    header = SPI.to_bytes(4, "big") + seq.to_bytes(4, "big")
    iv = os.urandom(8)
    return header + iv + AESGCM(keymat[:-4]).encrypt(keymat[-4:] + iv, plaintext, header)


def _cbc_packet(key: bytes, mac_key: bytes, seq: int, plaintext: bytes) -> bytes:
    """An AES-CBC/HMAC-SHA2-256-128 ESP packet built by hand (RFC 3602, RFC 4868)."""
    header = SPI.to_bytes(4, "big") + seq.to_bytes(4, "big")
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = header + iv + encryptor.update(plaintext) + encryptor.finalize()
    return body + hmac.digest(mac_key, body, "sha256")[:16]


BAD_TRAILERS = [
    # (plaintext after a 20-byte IPv4 inner packet, reason)
    (b"\x01\x01\x02\x04", DROP_PADDING),  # padding 1, 1 instead of 1, 2
    (b"\x00\x00\x02\x04", DROP_PADDING),  # zero padding (pvpn's bug)
    (b"\x02\x01\x02\x04", DROP_PADDING),  # 2, 1
    (b"\x01\x02\xfe\x04", DROP_PADDING),  # pad length beyond the payload
    (b"\x01\x02\x16\x04", DROP_PADDING),  # 22 = 20 + 2: pad length eats the whole packet
    (b"\x01\x02\x02\x3b", DROP_DUMMY),  # next header 59: TFC dummy packet
    (b"\x01\x02\x02\x29", DROP_NEXT_HEADER),  # 41 but an IPv4 packet inside
    (b"\x01\x02\x02\x11", DROP_NEXT_HEADER),  # UDP in tunnel mode
]


@pytest.mark.parametrize("trailer,reason", BAD_TRAILERS)
def test_bad_trailer_gcm(trailer, reason):
    keymat = os.urandom(20)
    receiver = EspSa(SPI, EncrId.AES_GCM_16, 128, keymat, None, None)
    expect_drop(receiver, _gcm_packet(keymat, 3, ipv4(20) + trailer), reason)
    good = ipv4(20)
    assert receiver.decapsulate(_gcm_packet(keymat, 3, good + b"\x01\x02\x02\x04")) == (good, 4)


@pytest.mark.parametrize("trailer,reason", BAD_TRAILERS)
def test_bad_trailer_cbc(trailer, reason):
    key, mac_key = os.urandom(32), os.urandom(32)
    receiver = EspSa(SPI, EncrId.AES_CBC, 256, key, IntegId.HMAC_SHA2_256_128, mac_key)
    fill = bytes(range(1, 9))  # align 20 + 4 to 32 with 8 more payload bytes
    inner = ipv4(20) + fill
    expect_drop(receiver, _cbc_packet(key, mac_key, 3, inner + trailer), reason)
    good = ipv4(28) + b"\x01\x02\x02\x04"
    assert receiver.decapsulate(_cbc_packet(key, mac_key, 3, good)) == (good[:28], 4)


def test_cbc_pad_length_into_the_iv_block():
    """A pad length reaching back into the (dropped) resynchronisation block is bad."""
    key, mac_key = os.urandom(16), os.urandom(32)
    receiver = EspSa(
        SPI, EncrId.AES_CBC, 128, key, IntegId.HMAC_SHA2_256_128, mac_key, tunnel=False
    )
    plaintext = bytes(range(1, 15)) + b"\x0e\x04"  # 16 bytes: padding 1..14, pad length 14
    assert receiver.decapsulate(_cbc_packet(key, mac_key, 1, plaintext)) == (b"", 4)  # empty,
    plaintext = bytes(range(1, 15)) + b"\x0f\x04"  # ... but 15 would reach the IV block
    expect_drop(receiver, _cbc_packet(key, mac_key, 2, plaintext), DROP_PADDING)


def test_next_header_rules():
    sender, receiver = make_pair("gcm16-128")
    expect_drop(receiver, sender.encapsulate(ipv6(40), 4), DROP_NEXT_HEADER)
    expect_drop(receiver, sender.encapsulate(ipv4(40), 41), DROP_NEXT_HEADER)
    expect_drop(receiver, sender.encapsulate(b"", 4), DROP_NEXT_HEADER)
    expect_drop(receiver, sender.encapsulate(ipv4(40), 59), DROP_DUMMY)
    # Transport mode accepts any protocol but 59, and an empty payload.
    sender, receiver = make_pair("cbc256-sha256", tunnel=False)
    udp = os.urandom(30)
    assert receiver.decapsulate(sender.encapsulate(udp, 17)) == (udp, 17)
    assert receiver.decapsulate(sender.encapsulate(b"", 6)) == (b"", 6)
    expect_drop(receiver, sender.encapsulate(udp, 59), DROP_DUMMY)


def test_next_header_for():
    assert next_header_for(ipv4(20)) == 4
    assert next_header_for(ipv6(40)) == 41
    for bad, reason in ((b"", DROP_SHORT), (b"\x50" + bytes(19), DROP_NEXT_HEADER)):
        with pytest.raises(EspError) as excinfo:
            next_header_for(bad)
        assert excinfo.value.reason == reason


# --- sequence numbers and configuration -----------------------------------------------------


def test_sequence_number_exhaustion():
    sender, receiver = make_pair("gcm16-128")
    sender.seq_out = 0xFFFFFFFE
    receiver.replay.update(0xFFFFFFFE)
    assert receiver.decapsulate(sender.encapsulate(ipv4(20), 4))[1] == 4
    with pytest.raises(EspError) as excinfo:
        sender.encapsulate(ipv4(20), 4)
    assert excinfo.value.reason == DROP_SEQ_OVERFLOW
    assert sender.seq_out == 0xFFFFFFFF and sender.packets_out == 1
    # With ESN the same sender just moves into the next 2^32 subspace ...
    sender, receiver = make_pair("chacha20-esn")
    sender.seq_out = 0xFFFFFFFF
    receiver.replay.update(0xFFFFFFFE)
    packet = sender.encapsulate(ipv4(20), 4)
    assert packet[4:8] == bytes(4) and receiver.decapsulate(packet)[1] == 4
    assert receiver.replay.top == 1 << 32
    # ... and stops at 2^64 - 1.
    sender.seq_out = (1 << 64) - 1
    with pytest.raises(EspError) as excinfo:
        sender.encapsulate(ipv4(20), 4)
    assert excinfo.value.reason == DROP_SEQ_OVERFLOW


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((1, 99, 128, bytes(16), None, None), {}),  # unknown cipher
        ((1, EncrId.AES_CTR, 128, bytes(20), IntegId.HMAC_SHA1_96, bytes(20)), {}),
        ((1, EncrId.AES_GCM_16, 128, bytes(16), None, None), {}),  # salt missing
        ((1, EncrId.AES_GCM_16, 512, bytes(68), None, None), {}),
        ((1, EncrId.AES_GCM_16, 128, bytes(20), IntegId.HMAC_SHA1_96, bytes(20)), {}),
        ((1, EncrId.CHACHA20_POLY1305, 128, bytes(20), None, None), {}),
        ((1, EncrId.AES_CBC, 128, bytes(16), None, None), {}),  # no integrity
        ((1, EncrId.AES_CBC, 128, bytes(16), IntegId.HMAC_SHA1_96, bytes(16)), {}),
        ((1, EncrId.AES_CBC, 128, bytes(16), IntegId.AES_XCBC_96, bytes(16)), {}),
        ((1, EncrId.TRIPLE_DES, 0, bytes(16), IntegId.HMAC_SHA1_96, bytes(20)), {}),
        ((1 << 32, EncrId.AES_GCM_16, 128, bytes(20), None, None), {}),
        ((1, EncrId.AES_GCM_16, 128, bytes(20), None, None), {"replay_window": 16}),
    ],
)
def test_bad_configuration(args, kwargs):
    with pytest.raises(ValueError):
        EspSa(*args, **kwargs)


def test_repr_shows_no_keys():
    key, mac_key = b"K" * 32, b"M" * 32
    sa = EspSa(SPI, EncrId.AES_CBC, 256, key, IntegId.HMAC_SHA2_256_128, mac_key)
    text = repr(sa)
    assert "0a0b0c0d" in text and "AES_CBC-256" in text
    assert "KKKK" not in text and "MMMM" not in text and key.hex() not in text


# --- arbitrary input -----------------------------------------------------------------------


FUZZ_SAS = {name: make_pair(name) for name in CONFIGS}
FUZZ_SAS["cbc-no-integrity"] = tuple(
    EspSa(SPI, EncrId.AES_CBC, 128, b"k" * 16, None, None, tunnel=False, allow_no_integrity=True)
    for _ in range(2)
)


def _only_esp_errors(sa: EspSa, data: bytes) -> None:
    try:
        sa.decapsulate(data)
    except EspError as error:
        assert error.reason in DROP_REASONS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(FUZZ_SAS)), data=st.binary(max_size=200))
def test_random_bytes_only_raise_esp_error(name, data):
    _only_esp_errors(FUZZ_SAS[name][1], data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(FUZZ_SAS)),
    seq=st.integers(min_value=0, max_value=0xFFFFFFFF),
    data=st.binary(max_size=200),
)
def test_random_bytes_behind_a_valid_header(name, seq, data):
    """Right SPI and any sequence number: the checks behind the header run too (without
    integrity, random ciphertext reaches the padding and next-header checks)."""
    _only_esp_errors(FUZZ_SAS[name][1], SPI.to_bytes(4, "big") + seq.to_bytes(4, "big") + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Not the SA without integrity: a flipped sequence number would be accepted there.
    name=st.sampled_from(sorted(CONFIGS)),
    size=st.integers(min_value=1, max_value=300),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=4),
)
def test_damaged_packets_then_a_good_one(name, size, flips):
    sender, receiver = FUZZ_SAS[name]
    inner = ipv4(size)
    packet = bytearray(sender.encapsulate(inner, 4))
    for offset, mask in flips:
        packet[offset % len(packet)] ^= mask
    if flips:
        _only_esp_errors(receiver, bytes(packet))
    # Whatever came before, a genuine packet is still accepted (the CBC contexts and the
    # replay window were not disturbed by the garbage).
    good = sender.encapsulate(inner, 4)
    assert receiver.decapsulate(good) == (inner, 4)
