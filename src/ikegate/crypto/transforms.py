"""The transform registry: PRF, integrity and encryption algorithms by IKEv2 transform ID.

``get_prf``, ``get_integ`` and ``get_encr`` turn the numbers of a negotiated proposal
into objects that know their sizes and do the work; ``is_supported`` tells the
configuration layer which algorithms of an ``ike=``/``esp=`` line we can actually do.
Everything runs on ``cryptography`` (and ``hmac``/``hashlib`` for HMAC); AES-XCBC, which
``cryptography`` lacks, is built on AES-ECB/CBC here (RFC 3566).

Sizes follow the RFCs: HMAC integrity truncation per RFC 2404 (SHA1-96), RFC 2403
(MD5-96) and RFC 4868 (SHA2); keying material of counter-mode and AEAD ciphers carries a
salt/nonce after the key (RFC 5930 and RFC 3686: 4 bytes for AES-CTR; RFC 5282 and
RFC 4106: 4 for AES-GCM; RFC 4309: 3 for AES-CCM; RFC 7634: 4 for ChaCha20-Poly1305).

``Encr.block_size`` is the padding unit of the IKE Encrypted payload: the cipher block
for CBC (16 for AES, 8 for 3DES), and 1 for counter mode and AEAD ciphers, which need no
padding.  That is what strongSwan does (the ``get_block_size`` of its gcm/ccm/chapoly
AEADs and OpenSSL's EVP block size for CTR are 1) and what RFC 7634 Appendix B shows
(pad length 0).  ESP aligns to at least 4 bytes on top of this (RFC 4303 2.4): that is
the ESP layer's business.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError, IntegrityError, UnsupportedAlgorithm
from ikegate.proposal import INTEG_NAMES, PRF_NAMES, encr_name
from ikegate.wire.constants import EncrId, EsnId, IntegId, PrfId, TransformType

__all__ = [
    "AeadEngine",
    "CipherEngine",
    "Encr",
    "Integ",
    "PreparedInteg",
    "Prf",
    "SUPPORTED_ENCR",
    "SUPPORTED_INTEG",
    "SUPPORTED_PRF",
    "get_encr",
    "get_integ",
    "get_prf",
    "is_supported",
]

_AES_BLOCK = 16
_ZERO_BLOCK = bytes(_AES_BLOCK)


# ---------------------------------------------------------------------------------------
# MAC primitives shared by PRFs and integrity algorithms
# ---------------------------------------------------------------------------------------


class _Mac(Protocol):
    """A keyed MAC: ``mac(data) -> full-length tag``."""

    def __call__(self, data: bytes) -> bytes: ...


def _hmac_keyed(hash_name: str, key: bytes) -> _Mac:
    """HMAC keyed once; every call copies the pre-keyed state (saves two hash blocks)."""
    base = hmac.new(key, digestmod=hash_name)

    def mac(data: bytes) -> bytes:
        h = base.copy()
        h.update(data)
        return h.digest()

    return mac


def _aes_ecb_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _xcbc_keyed(key: bytes) -> _Mac:
    """AES-XCBC-MAC (RFC 3566 4.1) with a 128-bit key; returns the full 128-bit tag."""
    if len(key) != _AES_BLOCK:
        raise CryptoError("AES-XCBC needs a 128-bit key")
    k1 = _aes_ecb_block(key, b"\x01" * 16)
    k2 = _aes_ecb_block(key, b"\x02" * 16)
    k3 = _aes_ecb_block(key, b"\x03" * 16)
    cbc_key = algorithms.AES(k1)

    def mac(data: bytes) -> bytes:
        tail = len(data) % _AES_BLOCK
        if data and tail == 0:  # complete last block: XOR with K2
            head, last = data[:-_AES_BLOCK], _xor(data[-_AES_BLOCK:], k2)
        else:  # incomplete (or empty) last block: 10* padding, XOR with K3
            cut = len(data) - tail
            padded = data[cut:] + b"\x80" + bytes(_AES_BLOCK - 1 - tail)
            head, last = data[:cut], _xor(padded, k3)
        encryptor = Cipher(cbc_key, modes.CBC(_ZERO_BLOCK)).encryptor()
        out = encryptor.update(head + last)
        return out[-_AES_BLOCK:]

    return mac


def _cmac_keyed(key: bytes) -> _Mac:
    """AES-CMAC (RFC 4493) with a 128-bit key, pre-keyed; full 128-bit tag."""
    if len(key) != _AES_BLOCK:
        raise CryptoError("AES-CMAC needs a 128-bit key")
    base = cmac.CMAC(algorithms.AES(key))

    def mac(data: bytes) -> bytes:
        c = base.copy()
        c.update(data)
        return c.finalize()

    return mac


def _xcbc_prf_key(key: bytes) -> bytes:
    """RFC 4434 2: a shorter key is zero-padded, a longer one is hashed with a zero key."""
    if len(key) == _AES_BLOCK:
        return key
    if len(key) < _AES_BLOCK:
        return key + bytes(_AES_BLOCK - len(key))
    return _xcbc_keyed(_ZERO_BLOCK)(key)


def _cmac_prf_key(key: bytes) -> bytes:
    """RFC 4615 3: any key that is not exactly 128 bits is first CMAC'd with a zero key."""
    if len(key) == _AES_BLOCK:
        return key
    return _cmac_keyed(_ZERO_BLOCK)(key)


# ---------------------------------------------------------------------------------------
# PRF
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prf:
    """A pseudo-random function (RFC 7296 3.3.2, transform type 2).

    ``key_size`` is the preferred key length (the length of SK_d, SK_pi and SK_pr);
    ``output_size`` the length of one output block (one prf+ round).  Any key length is
    accepted.  ``fixed_key`` marks the AES-based PRFs, for which RFC 7296 2.14 builds the
    SKEYSEED key from only the first 64 bits of each nonce.
    """

    id: int
    name: str
    key_size: int
    output_size: int
    fixed_key: bool = False
    _keyed: Callable[[bytes], _Mac] = field(repr=False, compare=False, default=None)

    def __call__(self, key: bytes, data: bytes) -> bytes:
        return self._keyed(key)(data)

    def prepared(self, key: bytes) -> Callable[[bytes], bytes]:
        """The PRF keyed once, for many calls with the same key (prf+)."""
        return self._keyed(key)


def _hmac_prf(prf_id: int, hash_name: str) -> Prf:
    size = hashlib.new(hash_name).digest_size

    def keyed(key: bytes) -> _Mac:
        return _hmac_keyed(hash_name, key)

    return Prf(prf_id, PRF_NAMES[prf_id], size, size, False, keyed)


_PRFS: dict[int, Prf] = {
    PrfId.HMAC_MD5: _hmac_prf(PrfId.HMAC_MD5, "md5"),
    PrfId.HMAC_SHA1: _hmac_prf(PrfId.HMAC_SHA1, "sha1"),
    PrfId.HMAC_SHA2_256: _hmac_prf(PrfId.HMAC_SHA2_256, "sha256"),
    PrfId.HMAC_SHA2_384: _hmac_prf(PrfId.HMAC_SHA2_384, "sha384"),
    PrfId.HMAC_SHA2_512: _hmac_prf(PrfId.HMAC_SHA2_512, "sha512"),
    PrfId.AES128_XCBC: Prf(
        PrfId.AES128_XCBC,
        PRF_NAMES[PrfId.AES128_XCBC],
        16,
        16,
        True,
        lambda key: _xcbc_keyed(_xcbc_prf_key(key)),
    ),
    PrfId.AES128_CMAC: Prf(
        PrfId.AES128_CMAC,
        PRF_NAMES[PrfId.AES128_CMAC],
        16,
        16,
        True,
        lambda key: _cmac_keyed(_cmac_prf_key(key)),
    ),
}


def get_prf(prf_id: int) -> Prf:
    """The PRF with this transform ID, or :class:`UnsupportedAlgorithm`."""
    try:
        return _PRFS[prf_id]
    except (KeyError, TypeError):
        raise UnsupportedAlgorithm(f"PRF {prf_id} is not supported") from None


# ---------------------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------------------


class PreparedInteg:
    """An integrity algorithm keyed once (one per SA and direction)."""

    __slots__ = ("_mac", "icv_size")

    def __init__(self, mac: _Mac, icv_size: int):
        self._mac = mac
        self.icv_size = icv_size

    def compute(self, data: bytes) -> bytes:
        """The truncated ICV of ``data``."""
        return self._mac(data)[: self.icv_size]

    def verify(self, data: bytes, icv: bytes) -> bool:
        """Whether ``icv`` is the ICV of ``data``; constant-time comparison."""
        return hmac.compare_digest(self.compute(data), bytes(icv))


@dataclass(frozen=True)
class Integ:
    """An integrity algorithm (transform type 3): a MAC truncated to ``icv_size`` bytes,
    keyed with exactly ``key_size`` bytes (SK_ai/SK_ar, or ESP's integrity keys)."""

    id: int
    name: str
    key_size: int
    icv_size: int
    _keyed: Callable[[bytes], _Mac] = field(repr=False, compare=False, default=None)

    def prepared(self, key: bytes) -> PreparedInteg:
        """Key the algorithm once for many messages."""
        if len(key) != self.key_size:
            raise CryptoError(f"{self.name} needs a {self.key_size}-byte key")
        return PreparedInteg(self._keyed(bytes(key)), self.icv_size)

    def compute(self, key: bytes, data: bytes) -> bytes:
        return self.prepared(key).compute(data)

    def verify(self, key: bytes, data: bytes, icv: bytes) -> bool:
        return self.prepared(key).verify(data, icv)


def _hmac_integ(integ_id: int, hash_name: str, icv_size: int) -> Integ:
    key_size = hashlib.new(hash_name).digest_size

    def keyed(key: bytes) -> _Mac:
        return _hmac_keyed(hash_name, key)

    return Integ(integ_id, INTEG_NAMES[integ_id], key_size, icv_size, keyed)


_INTEGS: dict[int, Integ] = {
    IntegId.HMAC_MD5_96: _hmac_integ(IntegId.HMAC_MD5_96, "md5", 12),  # RFC 2403
    IntegId.HMAC_SHA1_96: _hmac_integ(IntegId.HMAC_SHA1_96, "sha1", 12),  # RFC 2404
    IntegId.HMAC_SHA2_256_128: _hmac_integ(IntegId.HMAC_SHA2_256_128, "sha256", 16),
    IntegId.HMAC_SHA2_384_192: _hmac_integ(IntegId.HMAC_SHA2_384_192, "sha384", 24),
    IntegId.HMAC_SHA2_512_256: _hmac_integ(IntegId.HMAC_SHA2_512_256, "sha512", 32),
    IntegId.AES_XCBC_96: Integ(  # RFC 3566
        IntegId.AES_XCBC_96, INTEG_NAMES[IntegId.AES_XCBC_96], 16, 12, _xcbc_keyed
    ),
    IntegId.AES_CMAC_96: Integ(  # RFC 4494
        IntegId.AES_CMAC_96, INTEG_NAMES[IntegId.AES_CMAC_96], 16, 12, _cmac_keyed
    ),
}


def get_integ(integ_id: int) -> Integ:
    """The integrity algorithm with this transform ID, or :class:`UnsupportedAlgorithm`.

    ``NONE`` (0) is not an algorithm: AEAD ciphers simply have no integrity object.
    """
    try:
        return _INTEGS[integ_id]
    except (KeyError, TypeError):
        raise UnsupportedAlgorithm(f"integrity algorithm {integ_id} is not supported") from None


# ---------------------------------------------------------------------------------------
# Encryption
# ---------------------------------------------------------------------------------------


class CipherEngine(Protocol):
    """A keyed non-AEAD cipher.  ``iv`` is the IV as carried on the wire."""

    def encrypt(self, iv: bytes, data: bytes) -> bytes: ...

    def decrypt(self, iv: bytes, data: bytes) -> bytes: ...


class AeadEngine(Protocol):
    """A keyed AEAD cipher.  ``iv`` is the 8-byte wire IV (the salt is added inside);
    ``seal`` returns ciphertext | tag, ``open`` takes it back or raises IntegrityError."""

    def seal(self, iv: bytes, aad: bytes, plaintext: bytes) -> bytes: ...

    def open(self, iv: bytes, aad: bytes, data: bytes) -> bytes: ...


class _CbcEngine:
    __slots__ = ("_algorithm",)

    def __init__(self, algorithm):
        self._algorithm = algorithm

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return encryptor.update(data) + encryptor.finalize()

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        decryptor = Cipher(self._algorithm, modes.CBC(iv)).decryptor()
        return decryptor.update(data) + decryptor.finalize()


class _CtrEngine:
    """AES-CTR as in RFC 3686 4 / RFC 5930: counter block = nonce | IV | 32-bit counter
    starting at 1."""

    __slots__ = ("_algorithm", "_nonce")

    def __init__(self, key: bytes, nonce: bytes):
        self._algorithm = algorithms.AES(key)
        self._nonce = nonce

    def _crypt(self, iv: bytes, data: bytes) -> bytes:
        block = self._nonce + iv + b"\x00\x00\x00\x01"
        ctx = Cipher(self._algorithm, modes.CTR(block)).encryptor()
        return ctx.update(data) + ctx.finalize()

    encrypt = _crypt
    decrypt = _crypt


class _AeadObjectEngine:
    """AES-GCM-16, AES-CCM and ChaCha20-Poly1305 through ``cryptography``'s AEAD classes
    (one object per key, reused).  nonce = salt | IV."""

    __slots__ = ("_aead", "_salt")

    def __init__(self, aead, salt: bytes):
        self._aead = aead
        self._salt = salt

    def seal(self, iv: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, iv: bytes, aad: bytes, data: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, data, aad)
        except InvalidTag:
            raise IntegrityError("AEAD authentication failed") from None


class _ShortTagGcmEngine:
    """AES-GCM with an 8- or 12-byte ICV (RFC 4106/5282): ``AESGCM`` only does 16."""

    __slots__ = ("_algorithm", "_salt", "_tag")

    def __init__(self, key: bytes, salt: bytes, tag: int):
        self._algorithm = algorithms.AES(key)
        self._salt = salt
        self._tag = tag

    def seal(self, iv: bytes, aad: bytes, plaintext: bytes) -> bytes:
        encryptor = Cipher(self._algorithm, modes.GCM(self._salt + iv)).encryptor()
        encryptor.authenticate_additional_data(aad)
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        return ciphertext + encryptor.tag[: self._tag]

    def open(self, iv: bytes, aad: bytes, data: bytes) -> bytes:
        if len(data) < self._tag:
            raise IntegrityError("AEAD data shorter than its tag")
        ciphertext, tag = data[: -self._tag], data[-self._tag :]
        mode = modes.GCM(self._salt + iv, tag, min_tag_length=self._tag)
        decryptor = Cipher(self._algorithm, mode).decryptor()
        decryptor.authenticate_additional_data(aad)
        plaintext = decryptor.update(ciphertext)
        try:
            return plaintext + decryptor.finalize()
        except InvalidTag:
            raise IntegrityError("AEAD authentication failed") from None


@dataclass(frozen=True)
class Encr:
    """An encryption algorithm (transform type 1) with its key length.

    ``key_size`` is the number of bytes to take from prf+ (key, then ``salt_size`` bytes
    of salt/nonce); ``block_size`` the padding unit of the IKE Encrypted payload;
    ``iv_size`` the IV on the wire; ``icv_size`` the AEAD tag (0 for non-AEAD ciphers).
    ``keyed(keymat)`` returns a :class:`CipherEngine` or, when ``aead``, an
    :class:`AeadEngine`.
    """

    id: int
    name: str
    key_bits: int
    aead: bool
    key_size: int
    block_size: int
    iv_size: int
    icv_size: int
    salt_size: int = 0
    _factory: Callable[[bytes, bytes], object] = field(repr=False, compare=False, default=None)

    def keyed(self, keymat: bytes) -> CipherEngine | AeadEngine:
        keymat = bytes(keymat)
        if len(keymat) != self.key_size:
            raise CryptoError(f"{self.name} needs {self.key_size} bytes of keying material")
        split = self.key_size - self.salt_size
        return self._factory(keymat[:split], keymat[split:])


def _aes_cbc(key: bytes, _salt: bytes) -> CipherEngine:
    return _CbcEngine(algorithms.AES(key))


def _tdes_cbc(key: bytes, _salt: bytes) -> CipherEngine:
    return _CbcEngine(TripleDES(key))


def _aes_gcm(tag: int, key: bytes, salt: bytes) -> AeadEngine:
    if tag == 16:
        return _AeadObjectEngine(AESGCM(key), salt)
    return _ShortTagGcmEngine(key, salt, tag)


def _aes_ccm(tag: int, key: bytes, salt: bytes) -> AeadEngine:
    return _AeadObjectEngine(AESCCM(key, tag_length=tag), salt)


def _chacha20_poly1305(key: bytes, salt: bytes) -> AeadEngine:
    return _AeadObjectEngine(ChaCha20Poly1305(key), salt)


@dataclass(frozen=True)
class _EncrSpec:
    """Everything about one encryption transform ID except the key length.

    ``fixed_bits`` is the key length of ciphers without a Key Length attribute (0 for
    AES, which must carry one); ``factory(key, salt)`` makes the keyed engine."""

    bits: tuple[int, ...]
    fixed_bits: int
    aead: bool
    block_size: int
    iv_size: int
    icv_size: int
    salt_size: int
    factory: Callable[[bytes, bytes], object]


_AES_BITS = (128, 192, 256)
_ENCR_SPECS: dict[int, _EncrSpec] = {
    EncrId.AES_CBC: _EncrSpec(_AES_BITS, 0, False, 16, 16, 0, 0, _aes_cbc),  # RFC 3602
    EncrId.AES_CTR: _EncrSpec(_AES_BITS, 0, False, 1, 8, 0, 4, _CtrEngine),  # RFC 5930
    EncrId.TRIPLE_DES: _EncrSpec((192,), 192, False, 8, 8, 0, 0, _tdes_cbc),  # RFC 2451
    EncrId.AES_GCM_8: _EncrSpec(_AES_BITS, 0, True, 1, 8, 8, 4, partial(_aes_gcm, 8)),  # RFC 5282
    EncrId.AES_GCM_12: _EncrSpec(_AES_BITS, 0, True, 1, 8, 12, 4, partial(_aes_gcm, 12)),
    EncrId.AES_GCM_16: _EncrSpec(_AES_BITS, 0, True, 1, 8, 16, 4, partial(_aes_gcm, 16)),
    EncrId.AES_CCM_8: _EncrSpec(_AES_BITS, 0, True, 1, 8, 8, 3, partial(_aes_ccm, 8)),  # RFC 5282
    EncrId.AES_CCM_12: _EncrSpec(_AES_BITS, 0, True, 1, 8, 12, 3, partial(_aes_ccm, 12)),
    EncrId.AES_CCM_16: _EncrSpec(_AES_BITS, 0, True, 1, 8, 16, 3, partial(_aes_ccm, 16)),
    EncrId.CHACHA20_POLY1305: _EncrSpec((256,), 256, True, 1, 8, 16, 4, _chacha20_poly1305),  # RFC 7634
}
_ENCR_CACHE: dict[tuple[int, int], Encr] = {}


def get_encr(encr_id: int, key_bits: int) -> Encr:
    """The encryption algorithm with this transform ID and key length (bits, as in the
    Key Length attribute; 0 for 3DES/ChaCha20-Poly1305, which have a fixed key), or
    :class:`UnsupportedAlgorithm`.  AES needs an explicit 128, 192 or 256."""
    cache_key = (encr_id, key_bits)
    encr = _ENCR_CACHE.get(cache_key)
    if encr is not None:
        return encr
    if not isinstance(encr_id, int) or not isinstance(key_bits, int):
        raise UnsupportedAlgorithm(f"encryption algorithm {encr_id!r}/{key_bits!r} is not supported")
    spec = _ENCR_SPECS.get(encr_id)
    bits = key_bits or (spec.fixed_bits if spec is not None else 0)
    if spec is None or bits not in spec.bits:
        name = encr_name(encr_id, key_bits)
        raise UnsupportedAlgorithm(f"encryption algorithm {name} is not supported")
    name = encr_name(encr_id, 0 if encr_id == EncrId.TRIPLE_DES else bits)
    encr = Encr(
        encr_id, name, bits, spec.aead, bits // 8 + spec.salt_size, spec.block_size, spec.iv_size,
        spec.icv_size, spec.salt_size, spec.factory,
    )
    _ENCR_CACHE[cache_key] = encr
    return encr


# ---------------------------------------------------------------------------------------
# What we support
# ---------------------------------------------------------------------------------------

SUPPORTED_PRF = frozenset(_PRFS)
SUPPORTED_INTEG = frozenset(_INTEGS)
# (transform ID, key bits) pairs; get_encr also takes 0 for the fixed-key ciphers
SUPPORTED_ENCR = frozenset(
    (encr_id, bits) for encr_id, spec in _ENCR_SPECS.items() for bits in spec.bits
)


def is_supported(ttype: int, alg_id: int, key_bits: int = 0) -> bool:
    """Whether we can do transform ``alg_id`` of type ``ttype`` (a TransformType).

    INTEG NONE counts as supported (the integrity choice of AEAD proposals); every ESN
    value is; DH/KE methods are checked against :func:`ikegate.crypto.dh.get_group`.
    """
    try:
        if ttype == TransformType.ENCR:
            get_encr(alg_id, key_bits)
        elif ttype == TransformType.PRF:
            get_prf(alg_id)
        elif ttype == TransformType.INTEG:
            if alg_id != IntegId.NONE:
                get_integ(alg_id)
        elif ttype == TransformType.DH:
            if alg_id != 0:
                get_group(alg_id)
        elif ttype == TransformType.ESN:
            return alg_id in (EsnId.NO_EXT_SEQ, EsnId.EXT_SEQ)
        else:
            return False
    except UnsupportedAlgorithm:
        return False
    return True
