"""ikegate's ESP against independent implementations.

* scapy's ``scapy.layers.ipsec.SecurityAssociation`` (its own padding, ICV and AEAD
  code on top of ``cryptography``, a fresh cipher object per packet, random IVs) for every
  transform scapy has: AES-GCM-16, ChaCha20-Poly1305, AES-CBC and 3DES-CBC with each HMAC.
  Both directions, IPv4 and IPv6 inner packets, with and without ESN.
* pycryptodome's AES-GCM for the 8 and 12-byte ICVs, which scapy cannot produce (it always
  uses ``AESGCM``'s 16-byte tag).
"""

from __future__ import annotations

import os
import warnings

import pytest
from Crypto.Cipher import AES as CryptoAES
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.packet import Raw, raw

from ikegate.esp import EspSa
from ikegate.wire.constants import EncrId, IntegId

warnings.filterwarnings("ignore", module="scapy")

SPI = 0xC0FFEE01
TUNNEL = IP(src="192.0.2.1", dst="192.0.2.2")

# (id, encr_id, key_bits, encryption key material length, scapy crypt_algo,
#  integ_id, integ key length, scapy auth_algo)
TRANSFORMS = [
    ("gcm16-128", EncrId.AES_GCM_16, 128, 20, "AES-GCM", None, 0, None),
    ("gcm16-192", EncrId.AES_GCM_16, 192, 28, "AES-GCM", None, 0, None),
    ("gcm16-256", EncrId.AES_GCM_16, 256, 36, "AES-GCM", None, 0, None),
    ("chacha20", EncrId.CHACHA20_POLY1305, 256, 36, "CHACHA20-POLY1305", None, 0, None),
    ("cbc128-sha1", EncrId.AES_CBC, 128, 16, "AES-CBC", IntegId.HMAC_SHA1_96, 20, "HMAC-SHA1-96"),
    ("cbc128-md5", EncrId.AES_CBC, 128, 16, "AES-CBC", IntegId.HMAC_MD5_96, 16, "HMAC-MD5-96"),
    ("cbc192-sha256", EncrId.AES_CBC, 192, 24, "AES-CBC", IntegId.HMAC_SHA2_256_128, 32,
     "SHA2-256-128"),
    ("cbc256-sha256", EncrId.AES_CBC, 256, 32, "AES-CBC", IntegId.HMAC_SHA2_256_128, 32,
     "SHA2-256-128"),
    ("cbc256-sha384", EncrId.AES_CBC, 256, 32, "AES-CBC", IntegId.HMAC_SHA2_384_192, 48,
     "SHA2-384-192"),
    ("cbc256-sha512", EncrId.AES_CBC, 256, 32, "AES-CBC", IntegId.HMAC_SHA2_512_256, 64,
     "SHA2-512-256"),
    ("3des-sha1", EncrId.TRIPLE_DES, 192, 24, "3DES", IntegId.HMAC_SHA1_96, 20, "HMAC-SHA1-96"),
]

INNER = {
    "ipv4": (
        IP(src="10.10.0.2", dst="198.51.100.7") / UDP(sport=4242, dport=53) / Raw(b"q" * 37),
        4,
    ),
    "ipv6": (
        IPv6(src="2001:db8:1::2", dst="2001:db8:2::7") / UDP(sport=4242, dport=53)
        / Raw(b"z" * 90),
        41,
    ),
}

# (ESN?, high 32 bits, low 32 bits) of the first sequence number used.
SEQUENCES = {"no-esn": (False, 0, 7), "esn": (True, 0x1A2B3C4D, 0xFFFFFFF0)}


def _outer(packet: bytes) -> IP:
    """Our ESP packet behind an outer IPv4 header, parsed by scapy as IP / ESP."""
    return IP(raw(IP(src="192.0.2.1", dst="192.0.2.2", proto=50) / Raw(packet)))


def _pair(transform, esn):
    """(our SA, scapy's SA) sharing fresh random keys."""
    _, encr_id, key_bits, encr_len, crypt_algo, integ_id, integ_len, auth_algo = transform
    encr_key = os.urandom(encr_len)
    integ_key = os.urandom(integ_len) if integ_id else None
    ours = EspSa(SPI, encr_id, key_bits, encr_key, integ_id, integ_key, esn=esn)
    theirs = SecurityAssociation(
        ESP,
        spi=SPI,
        crypt_algo=crypt_algo,
        crypt_key=encr_key,
        auth_algo=auth_algo,
        auth_key=integ_key,
        tunnel_header=TUNNEL,
    )
    return ours, theirs


@pytest.mark.parametrize("seq_name", SEQUENCES)
@pytest.mark.parametrize("family", INNER)
@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t[0])
def test_scapy_decrypts_ours(transform, family, seq_name):
    esn, high, low = SEQUENCES[seq_name]
    inner, next_header = INNER[family]
    ours, theirs = _pair(transform, esn)
    ours.seq_out = ((high << 32) | low) - 1
    for _ in range(3):  # several packets: the CBC context chains across them
        packet = ours.encapsulate(raw(inner), next_header)
        seq = ours.seq_out
        wire = _outer(packet)
        assert wire[ESP].spi == SPI and wire[ESP].seq == seq & 0xFFFFFFFF
        decrypted = theirs.decrypt(wire, esn_en=esn, esn=seq >> 32)
        assert raw(decrypted) == raw(inner)


@pytest.mark.parametrize("seq_name", SEQUENCES)
@pytest.mark.parametrize("family", INNER)
@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: t[0])
def test_we_decrypt_scapys(transform, family, seq_name):
    esn, high, low = SEQUENCES[seq_name]
    inner, next_header = INNER[family]
    ours, theirs = _pair(transform, esn)
    first = (high << 32) | low
    if first > 1:
        ours.replay.update(first - 1)
    for seq in range(first, first + 3):
        encrypted = theirs.encrypt(
            inner, seq_num=seq & 0xFFFFFFFF, esn_en=esn, esn=seq >> 32
        )
        packet = raw(encrypted[ESP])
        assert ours.decapsulate(packet) == (raw(inner), next_header)
    assert ours.packets_in == 3 and ours.replay.top == first + 2


def test_scapy_esn_wraps_low_bits():
    """A sender crossing 2^32 with ESN: packets ...fffffffe, ...ffffffff, next subspace 0, 1."""
    transform = TRANSFORMS[0]
    ours_tx, theirs = _pair(transform, True)
    ours_rx = EspSa(SPI, EncrId.AES_GCM_16, 128, theirs.crypt_key + theirs.crypt_salt,
                    None, None, esn=True)
    ours_tx.seq_out = (5 << 32) | 0xFFFFFFFD
    ours_rx.replay.update(ours_tx.seq_out)
    inner, next_header = INNER["ipv4"]
    for expected in ((5 << 32) | 0xFFFFFFFE, (5 << 32) | 0xFFFFFFFF, 6 << 32, (6 << 32) | 1):
        packet = ours_tx.encapsulate(raw(inner), next_header)
        assert ours_tx.seq_out == expected
        wire = _outer(packet)
        assert raw(theirs.decrypt(wire, esn_en=True, esn=expected >> 32)) == raw(inner)
        assert ours_rx.decapsulate(packet) == (raw(inner), next_header)
        assert ours_rx.replay.top == expected


# --- AES-GCM with 8 and 12-byte ICVs against pycryptodome ---------------------------------


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("key_bits", [128, 256])
@pytest.mark.parametrize("encr_id,icv_len", [(EncrId.AES_GCM_8, 8), (EncrId.AES_GCM_12, 12)])
def test_truncated_gcm_against_pycryptodome(encr_id, icv_len, key_bits, esn):
    keymat = os.urandom(key_bits // 8 + 4)
    key, salt = keymat[:-4], keymat[-4:]
    sender = EspSa(SPI, encr_id, key_bits, keymat, None, None, esn=esn)
    receiver = EspSa(SPI, encr_id, key_bits, keymat, None, None, esn=esn)
    inner = raw(INNER["ipv4"][0])
    seq = (3 << 32) | 9 if esn else 9
    sender.seq_out = seq - 1
    receiver.replay.update(seq - 1)

    # Ours -> pycryptodome: RFC 4106 layout, ICV = first icv_len bytes of the GCM tag.
    packet = sender.encapsulate(inner, 4)
    spi_seq, iv, body, icv = packet[:8], packet[8:16], packet[16:-icv_len], packet[-icv_len:]
    aad = spi_seq[:4] + seq.to_bytes(8, "big") if esn else spi_seq
    cipher = CryptoAES.new(key, CryptoAES.MODE_GCM, nonce=salt + iv, mac_len=icv_len)
    cipher.update(aad)
    plain = cipher.decrypt_and_verify(body, icv)
    assert plain[: len(inner)] == inner and plain[-1] == 4 and len(plain) % 4 == 0

    # pycryptodome -> ours, a hand-built packet with the next sequence number.
    seq += 1
    iv = os.urandom(8)
    header = SPI.to_bytes(4, "big") + (seq & 0xFFFFFFFF).to_bytes(4, "big")
    aad = header[:4] + seq.to_bytes(8, "big") if esn else header
    cipher = CryptoAES.new(key, CryptoAES.MODE_GCM, nonce=salt + iv, mac_len=icv_len)
    cipher.update(aad)
    pad = -(len(inner) + 2) % 4
    body, icv = cipher.encrypt_and_digest(inner + bytes(range(1, pad + 1)) + bytes((pad, 4)))
    assert receiver.decapsulate(header + iv + body + icv) == (inner, 4)
    assert receiver.decapsulate(packet) == (inner, 4)  # older, still in the window
