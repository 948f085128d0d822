"""Protection of the IKE Encrypted payload (SK, and SKF fragments).

Body layout (RFC 7296 3.14): IV | encrypted(payloads | padding | pad length) | ICV.

* CBC and CTR ciphers with an integrity algorithm: for CBC a fresh random IV per message
  (it must be unpredictable, RFC 7296 3.14), for CTR a counter as for AEAD below (it must
  be unique, RFC 5930 2); minimal padding to the cipher block with zero bytes,
  ICV = integ(aad | IV | ciphertext), where ``aad`` is everything of the message before
  the IV (IKE header, SK payload header, and for SKF the fragment number/total).  On
  receipt the ICV is checked, in constant time, before anything is decrypted.
* AEAD ciphers (RFC 5282 for AES-GCM/CCM, RFC 7634 for ChaCha20-Poly1305): the same
  ``aad`` is the associated data (RFC 5282 5.1, RFC 7383 2.5), the ICV is the AEAD tag,
  and the 8-byte IV is a per-:class:`SkCipher` 64-bit counter, so an IV never repeats
  under one key (nonce = salt | IV).  The counter starts at a random value: should a
  caller ever build two SkCiphers for the same key, their IVs still will not collide in
  practice.  No padding beyond the pad-length byte is needed.

Every failure on receipt is an :class:`IntegrityError` (short body, bad ICV/tag, bad
padding), which the engine answers by dropping the message.
"""

from __future__ import annotations

import os
import secrets

from ikegate.crypto.errors import CryptoError, IntegrityError
from ikegate.crypto.keys import IkeKeys
from ikegate.crypto.transforms import Encr, Integ, get_encr, get_integ

__all__ = ["SkCipher", "make_sk_ciphers"]

_IV_LIMIT = 1 << 64


class SkCipher:
    """Seals and opens Encrypted payload bodies for one direction of one IKE SA."""

    def __init__(
        self,
        encr: Encr,
        encr_key: bytes,
        integ: Integ | None,
        integ_key: bytes | None,
        *,
        iv_start: int | None = None,
    ):
        """``integ``/``integ_key`` are None for AEAD ciphers.  ``iv_start`` fixes the
        first IV of AEAD and CTR ciphers (known-answer tests only); by default it is
        random."""
        if encr.aead:
            if integ is not None:
                raise CryptoError("an AEAD cipher takes no integrity algorithm")
            self._mac = None
            self.icv_size = encr.icv_size
        else:
            if integ is None or integ_key is None:
                raise CryptoError(f"{encr.name} needs an integrity algorithm and key")
            self._mac = integ.prepared(integ_key)
            self.icv_size = integ.icv_size
        if iv_start is None:
            iv_start = secrets.randbits(64)
        if not 0 <= iv_start < _IV_LIMIT:
            raise CryptoError("IV counter start out of range")
        self.encr = encr
        self.integ = integ
        self._engine = encr.keyed(encr_key)
        self._iv_next = iv_start
        self._ivs_left = _IV_LIMIT  # every 64-bit value once, wrapping around
        # CBC (block size > 1) wants unpredictable IVs, CTR and AEAD (block size 1) unique ones
        self._random_iv = encr.block_size > 1
        self._min_ciphertext = encr.block_size

    def __repr__(self) -> str:
        integ = self.integ.name if self.integ is not None else "AEAD"
        return f"<SkCipher {self.encr.name}/{integ}>"

    @property
    def iv_size(self) -> int:
        return self.encr.iv_size

    def _padded_length(self, plaintext_len: int) -> int:
        """Payloads + padding + pad-length byte, rounded up to the block size."""
        block = self.encr.block_size
        return -(-(plaintext_len + 1) // block) * block

    def overhead(self, plaintext_len: int) -> int:
        """The body length (IV + padded ciphertext incl. pad-length byte + ICV) that
        :meth:`seal` produces for a plaintext of ``plaintext_len`` bytes."""
        return self.encr.iv_size + self._padded_length(plaintext_len) + self.icv_size

    def _next_iv(self) -> bytes:
        if self._random_iv:
            return os.urandom(self.encr.iv_size)
        if self._ivs_left == 0:
            raise CryptoError("IV space of this key is exhausted; rekey")
        value = self._iv_next
        self._iv_next = (value + 1) % _IV_LIMIT
        self._ivs_left -= 1
        return value.to_bytes(self.encr.iv_size, "big")

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext`` (the inner payloads); returns the body
        IV | ciphertext | ICV.  ``aad`` is the message up to the IV."""
        pad = self._padded_length(len(plaintext)) - len(plaintext) - 1
        padded = bytes(plaintext) + bytes(pad) + bytes((pad,))
        iv = self._next_iv()
        if self.encr.aead:
            return iv + self._engine.seal(iv, bytes(aad), padded)
        ciphertext = self._engine.encrypt(iv, padded)
        return iv + ciphertext + self._mac.compute(bytes(aad) + iv + ciphertext)

    def open(self, aad: bytes, body: bytes) -> bytes:
        """Check and decrypt a body; returns the inner payloads without padding.

        Raises :class:`IntegrityError` on any failure."""
        body = bytes(body)
        iv_size, icv_size = self.encr.iv_size, self.icv_size
        if len(body) < iv_size + self._min_ciphertext + icv_size:
            raise IntegrityError("encrypted payload too short")
        iv = body[:iv_size]
        if self.encr.aead:
            padded = self._engine.open(iv, bytes(aad), body[iv_size:])
        else:
            ciphertext = body[iv_size:-icv_size]
            if len(ciphertext) % self.encr.block_size:
                raise IntegrityError("ciphertext is not a whole number of blocks")
            if not self._mac.verify(bytes(aad) + iv + ciphertext, body[-icv_size:]):
                raise IntegrityError("integrity check value mismatch")
            padded = self._engine.decrypt(iv, ciphertext)
        pad = padded[-1]
        if pad + 1 > len(padded):
            raise IntegrityError("invalid pad length")
        return padded[: len(padded) - pad - 1]


def make_sk_ciphers(proposal, keys: IkeKeys, *, initiator: bool) -> tuple[SkCipher, SkCipher]:
    """(inbound, outbound) SK ciphers for our side of an IKE SA.

    ``proposal`` is the selected :class:`ikegate.proposal.Proposal` (one algorithm per
    type).  The initiator sends with SK_ei/SK_ai and receives with SK_er/SK_ar; the
    responder the other way round.
    """
    encr_alg = proposal.encr_alg
    if encr_alg is None:
        raise CryptoError("proposal has no encryption algorithm")
    encr = get_encr(*encr_alg)
    integ = None
    if not encr.aead:
        if proposal.integ_alg is None:
            raise CryptoError("proposal has no integrity algorithm")
        integ = get_integ(proposal.integ_alg)
    from_initiator = SkCipher(encr, keys.sk_ei, integ, keys.sk_ai if integ else None)
    from_responder = SkCipher(encr, keys.sk_er, integ, keys.sk_ar if integ else None)
    if initiator:
        return from_responder, from_initiator
    return from_initiator, from_responder
