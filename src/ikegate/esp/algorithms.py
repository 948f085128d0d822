"""The ESP transforms ikegate implements, with the sizes the packet code needs.

Numbers come from :mod:`ikegate.wire.constants`; sizes from the RFCs that define each
transform for ESP:

* AES-CBC: RFC 3602 (16-byte block and IV; 128/192/256-bit keys).
* 3DES-CBC: RFC 2451 (8-byte block and IV; 192-bit key).
* AES-GCM with an 8, 12 or 16-byte ICV: RFC 4106 (8-byte explicit IV; the key material is
  the AES key followed by a 4-byte salt, section 8.1).
* ChaCha20-Poly1305: RFC 7634 (8-byte IV, 16-byte tag, 32-byte key + 4-byte salt).
* HMAC-MD5-96 (RFC 2403), HMAC-SHA1-96 (RFC 2404), HMAC-SHA2-256-128, -384-192, -512-256
  (RFC 4868 2.1: key as long as the hash output, ICV truncated to half of it).

``block_size`` is the unit the ESP payload, padding, Pad Length and Next Header are padded
to: the cipher block for CBC, and 4 bytes for the AEAD (stream-like) ciphers, because RFC
4303 2.4 wants the ICV to start on a 4-byte boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from ikegate.wire.constants import EncrId, IntegId

__all__ = ["ENCRYPTION", "INTEGRITY", "EncrAlgorithm", "IntegAlgorithm"]


@dataclass(frozen=True, slots=True)
class EncrAlgorithm:
    """Sizes of one ESP encryption transform."""

    encr_id: EncrId
    key_bits: tuple[int, ...]  # acceptable key lengths; the first is the default
    salt_len: int  # bytes of salt after the key in the key material (AEAD)
    block_size: int  # padding alignment of the encrypted part
    iv_len: int
    icv_len: int  # AEAD tag length; 0 for ciphers that need an integrity transform
    aead: bool
    fixed_key: bool = False  # key length is implied (IKE sends no Key Length attribute)


@dataclass(frozen=True, slots=True)
class IntegAlgorithm:
    """Sizes of one ESP integrity transform."""

    integ_id: IntegId
    hash: type[hashes.HashAlgorithm]
    key_len: int
    icv_len: int


_AES_BITS = (128, 192, 256)

ENCRYPTION: dict[int, EncrAlgorithm] = {
    EncrId.AES_CBC: EncrAlgorithm(EncrId.AES_CBC, _AES_BITS, 0, 16, 16, 0, aead=False),
    EncrId.TRIPLE_DES: EncrAlgorithm(
        EncrId.TRIPLE_DES, (192,), 0, 8, 8, 0, aead=False, fixed_key=True
    ),
    EncrId.AES_GCM_8: EncrAlgorithm(EncrId.AES_GCM_8, _AES_BITS, 4, 4, 8, 8, aead=True),
    EncrId.AES_GCM_12: EncrAlgorithm(EncrId.AES_GCM_12, _AES_BITS, 4, 4, 8, 12, aead=True),
    EncrId.AES_GCM_16: EncrAlgorithm(EncrId.AES_GCM_16, _AES_BITS, 4, 4, 8, 16, aead=True),
    EncrId.CHACHA20_POLY1305: EncrAlgorithm(
        EncrId.CHACHA20_POLY1305, (256,), 4, 4, 8, 16, aead=True, fixed_key=True
    ),
}

INTEGRITY: dict[int, IntegAlgorithm] = {
    IntegId.HMAC_MD5_96: IntegAlgorithm(IntegId.HMAC_MD5_96, hashes.MD5, 16, 12),
    IntegId.HMAC_SHA1_96: IntegAlgorithm(IntegId.HMAC_SHA1_96, hashes.SHA1, 20, 12),
    IntegId.HMAC_SHA2_256_128: IntegAlgorithm(IntegId.HMAC_SHA2_256_128, hashes.SHA256, 32, 16),
    IntegId.HMAC_SHA2_384_192: IntegAlgorithm(IntegId.HMAC_SHA2_384_192, hashes.SHA384, 48, 24),
    IntegId.HMAC_SHA2_512_256: IntegAlgorithm(IntegId.HMAC_SHA2_512_256, hashes.SHA512, 64, 32),
}
