"""Test-only stand-ins for the SK payload protection (never used by the package).

:class:`ToyCipher` mimics the shape of a CBC+HMAC suite (16-byte IV, block padding,
16-byte ICV over aad | IV | ciphertext) with a SHA-256 keystream, so length and
associated-data handling of the codec can be tested without real keys.
:class:`Rfc7634Cipher` is ChaCha20-Poly1305 exactly as RFC 7634 section 3 uses it in
IKEv2 (nonce = 4-byte salt | 8-byte IV, no padding beyond the Pad Length byte), built
directly on ``cryptography`` so that the RFC 7634 Appendix B message is an independent
known answer for the codec's framing.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


class ToyIntegrityError(Exception):
    """Raised by the test ciphers when a body does not verify."""


class ToyCipher:
    BLOCK = 16
    IV = 16
    ICV = 16

    def __init__(self, key: bytes = b"wire-test-key"):
        self._key = key

    def _padded(self, n: int) -> int:
        return -(-(n + 1) // self.BLOCK) * self.BLOCK

    def overhead(self, plaintext_len: int) -> int:
        """Whole body length for a plaintext of that size (SkCipher's definition)."""
        return self.IV + self._padded(plaintext_len) + self.ICV

    def _stream(self, iv: bytes, size: int) -> bytes:
        out = bytearray()
        counter = 0
        while len(out) < size:
            out += hashlib.sha256(self._key + iv + counter.to_bytes(4, "big")).digest()
            counter += 1
        return bytes(out[:size])

    def _tag(self, aad: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        return hmac.new(self._key, aad + iv + ciphertext, hashlib.sha256).digest()[: self.ICV]

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        pad = self._padded(len(plaintext)) - len(plaintext) - 1
        padded = plaintext + bytes(pad) + bytes((pad,))
        iv = os.urandom(self.IV)
        ciphertext = bytes(a ^ b for a, b in zip(padded, self._stream(iv, len(padded))))
        return iv + ciphertext + self._tag(aad, iv, ciphertext)

    def open(self, aad: bytes, body: bytes) -> bytes:
        if len(body) < self.IV + self.BLOCK + self.ICV or (len(body) - self.IV - self.ICV) % self.BLOCK:
            raise ToyIntegrityError("bad body length")
        iv, ciphertext, tag = body[: self.IV], body[self.IV : -self.ICV], body[-self.ICV :]
        if not hmac.compare_digest(tag, self._tag(aad, iv, ciphertext)):
            raise ToyIntegrityError("bad ICV")
        padded = bytes(a ^ b for a, b in zip(ciphertext, self._stream(iv, len(ciphertext))))
        if padded[-1] + 1 > len(padded):
            raise ToyIntegrityError("bad padding")
        return padded[: len(padded) - padded[-1] - 1]


class Rfc7634Cipher:
    """ChaCha20-Poly1305 for IKEv2 (RFC 7634 sections 2 and 3) with a fixed IV."""

    def __init__(self, key: bytes, salt: bytes, iv: bytes):
        self._aead = ChaCha20Poly1305(key)
        self._salt = salt
        self._iv = iv

    def overhead(self, plaintext_len: int) -> int:
        return 8 + plaintext_len + 1 + 16  # IV | ciphertext incl. Pad Length byte | tag

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        return self._iv + self._aead.encrypt(self._salt + self._iv, plaintext + b"\x00", aad)

    def open(self, aad: bytes, body: bytes) -> bytes:
        try:
            padded = self._aead.decrypt(self._salt + body[:8], body[8:], aad)
        except InvalidTag:
            raise ToyIntegrityError("bad tag") from None
        return padded[: len(padded) - padded[-1] - 1]
