"""Exceptions of the crypto layer.

The IKE engine maps them to protocol reactions: :class:`IntegrityError` means "drop the
message silently" (RFC 7296 2.21.2), :class:`InvalidKeyExchange` means a bad KE payload
(INVALID_SYNTAX or a failed negotiation), :class:`UnsupportedAlgorithm` means the
transform can't be offered or accepted here.  No message carries key material.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by :mod:`ikegate.crypto`."""


class IntegrityError(CryptoError):
    """A protected payload failed its check: bad ICV or tag, bad length or bad padding."""


class UnsupportedAlgorithm(CryptoError):
    """A transform ID (or key length) that this implementation cannot do."""


class InvalidKeyExchange(CryptoError):
    """The peer's key exchange value is unusable: wrong length, out of range, not on
    the curve, or it leads to a degenerate (all-zero) shared secret."""
