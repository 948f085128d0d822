"""IKEv2 key derivation: prf+, SKEYSEED and the IKE SA keys, CHILD SA keying material.

Formulas of RFC 7296: 2.13 (prf+), 2.14 (SKEYSEED and SK_d/ai/ar/ei/er/pi/pr), 2.17
(KEYMAT of a CHILD SA) and 2.18 (SKEYSEED of a rekeyed IKE SA).  Key lengths: SK_d, SK_pi
and SK_pr have the PRF's preferred key size, SK_a* the integrity key size (nothing for
AEAD ciphers), SK_e* the encryption keying material including any salt.  The key objects
never show key bytes in their repr.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ikegate.crypto.errors import CryptoError
from ikegate.crypto.transforms import Encr, Integ, Prf

__all__ = [
    "ChildKeys",
    "IkeKeys",
    "derive_child_keys",
    "derive_ike_keys",
    "derive_ike_rekey_keys",
    "prf_plus",
]

_MAX_PRF_PLUS_BLOCKS = 255


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (RFC 7296 2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), cut to
    ``length`` bytes.  The counter is one byte, so at most 255 blocks can be made."""
    if length < 0:
        raise CryptoError("prf+ length must not be negative")
    blocks = -(-length // prf.output_size)
    if blocks > _MAX_PRF_PLUS_BLOCKS:
        raise CryptoError(f"prf+ cannot produce {length} bytes with {prf.name}")
    mac = prf.prepared(key)
    out = bytearray()
    previous = b""
    for counter in range(1, blocks + 1):
        previous = mac(previous + seed + bytes((counter,)))
        out += previous
    return bytes(out[:length])


def _sizes_repr(obj) -> str:
    sizes = ", ".join(f"{f.name}={len(getattr(obj, f.name))}B" for f in fields(obj))
    return f"{type(obj).__name__}(<{sizes}>)"


@dataclass(frozen=True, repr=False)
class IkeKeys:
    """The seven keys of an IKE SA (RFC 7296 2.14).  ``sk_ai``/``sk_ar`` are empty for
    AEAD ciphers."""

    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes

    def __repr__(self) -> str:
        return _sizes_repr(self)


@dataclass(frozen=True, repr=False)
class ChildKeys:
    """The keys of a CHILD SA pair (RFC 7296 2.17).  ``*_i`` protect traffic from the
    initiator to the responder (the responder's inbound SA), ``*_r`` the other way.
    Integrity keys are empty for AEAD ciphers; encryption keys include the salt."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return _sizes_repr(self)


def _split(material: bytes, sizes: list[int]) -> list[bytes]:
    parts, offset = [], 0
    for size in sizes:
        parts.append(material[offset : offset + size])
        offset += size
    return parts


def _ike_keys_from(
    prf: Prf, encr: Encr, integ: Integ | None, skeyseed: bytes, seed: bytes
) -> IkeKeys:
    integ_size = integ.key_size if integ is not None else 0
    prf_size, encr_size = prf.key_size, encr.key_size
    sizes = [prf_size, integ_size, integ_size, encr_size, encr_size, prf_size, prf_size]
    material = prf_plus(prf, skeyseed, seed, sum(sizes))
    return IkeKeys(*_split(material, sizes))


def _check_integ(encr: Encr, integ: Integ | None) -> None:
    if encr.aead and integ is not None:
        raise CryptoError("an AEAD cipher takes no integrity algorithm")
    if not encr.aead and integ is None:
        raise CryptoError(f"{encr.name} needs an integrity algorithm")


def derive_ike_keys(
    prf: Prf,
    encr: Encr,
    integ: Integ | None,
    nonce_i: bytes,
    nonce_r: bytes,
    shared: bytes,
    spi_i: bytes,
    spi_r: bytes,
) -> tuple[bytes, IkeKeys]:
    """SKEYSEED = prf(Ni | Nr, g^ir) and {SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr}
    = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 2.14).

    For the fixed-key PRFs (AES-XCBC, AES-CMAC) the SKEYSEED key is the first 64 bits of
    Ni followed by the first 64 bits of Nr, as 2.14 requires.  ``integ`` is None for AEAD
    ciphers.  Returns (SKEYSEED, keys).
    """
    _check_integ(encr, integ)
    if prf.fixed_key:
        seed_key = bytes(nonce_i[:8]) + bytes(nonce_r[:8])
    else:
        seed_key = bytes(nonce_i) + bytes(nonce_r)
    skeyseed = prf(seed_key, shared)
    seed = bytes(nonce_i) + bytes(nonce_r) + bytes(spi_i) + bytes(spi_r)
    return skeyseed, _ike_keys_from(prf, encr, integ, skeyseed, seed)


def derive_ike_rekey_keys(
    old_prf: Prf,
    old_sk_d: bytes,
    new_prf: Prf,
    encr: Encr,
    integ: Integ | None,
    shared: bytes,
    nonce_i: bytes,
    nonce_r: bytes,
    spi_i: bytes,
    spi_r: bytes,
) -> tuple[bytes, IkeKeys]:
    """Keys of an IKE SA made by rekeying (RFC 7296 2.18): SKEYSEED = prf_old(SK_d_old,
    g^ir (new) | Ni | Nr), then prf+ with the new SA's PRF over Ni | Nr | SPIi | SPIr of
    the new SA (nonces of the CREATE_CHILD_SA exchange).  Returns (SKEYSEED, keys)."""
    _check_integ(encr, integ)
    skeyseed = old_prf(old_sk_d, bytes(shared) + bytes(nonce_i) + bytes(nonce_r))
    seed = bytes(nonce_i) + bytes(nonce_r) + bytes(spi_i) + bytes(spi_r)
    return skeyseed, _ike_keys_from(new_prf, encr, integ, skeyseed, seed)


def derive_child_keys(
    prf: Prf,
    sk_d: bytes,
    nonce_i: bytes,
    nonce_r: bytes,
    encr: Encr,
    integ: Integ | None,
    shared: bytes | None = None,
) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (RFC 7296 2.17), split in the order
    encryption key then integrity key for initiator-to-responder, then the same for
    responder-to-initiator."""
    _check_integ(encr, integ)
    integ_size = integ.key_size if integ is not None else 0
    sizes = [encr.key_size, integ_size, encr.key_size, integ_size]
    seed = (bytes(shared) if shared else b"") + bytes(nonce_i) + bytes(nonce_r)
    return ChildKeys(*_split(prf_plus(prf, sk_d, seed, sum(sizes)), sizes))
