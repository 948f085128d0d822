"""Why an ESP packet was dropped.

Every per-packet failure of :mod:`ikegate.esp` raises :class:`EspError` whose ``reason`` is
one of the ``DROP_*`` strings below.  The data plane counts drops by that string (and may
log it), so the strings are stable identifiers, not prose.
"""

from __future__ import annotations

__all__ = [
    "DROP_DUMMY",
    "DROP_ICV",
    "DROP_LENGTH",
    "DROP_NEXT_HEADER",
    "DROP_PADDING",
    "DROP_REPLAY",
    "DROP_SEQ_OVERFLOW",
    "DROP_SHORT",
    "DROP_UNKNOWN_SPI",
    "DROP_REASONS",
    "EspError",
]

#: Shorter than the smallest packet this SA can produce (header, IV, trailer, ICV).
DROP_SHORT = "short"
#: The ciphertext is not a whole number of cipher blocks (CBC).
DROP_LENGTH = "bad_length"
#: The SPI is not the one of the SA asked to decapsulate it.
DROP_UNKNOWN_SPI = "unknown_spi"
#: Sequence number already seen, older than the replay window, or zero (RFC 4303 3.4.3).
DROP_REPLAY = "replay"
#: Integrity check failed: HMAC mismatch or AEAD tag rejected (also: wrong key).
DROP_ICV = "icv"
#: Pad Length larger than the payload, or padding bytes other than 1, 2, 3, ... (RFC 4303 2.4).
DROP_PADDING = "padding"
#: Next Header not acceptable for the SA (tunnel mode: 4 with IPv4 inside, 41 with IPv6).
DROP_NEXT_HEADER = "next_header"
#: A traffic-flow-confidentiality dummy packet (Next Header 59, RFC 4303 2.6): discarded.
DROP_DUMMY = "dummy"
#: Outbound only: the sequence number space is exhausted; the SA must be rekeyed (RFC 4303 3.3.3).
DROP_SEQ_OVERFLOW = "seq_overflow"

DROP_REASONS = frozenset(
    {
        DROP_SHORT,
        DROP_LENGTH,
        DROP_UNKNOWN_SPI,
        DROP_REPLAY,
        DROP_ICV,
        DROP_PADDING,
        DROP_NEXT_HEADER,
        DROP_DUMMY,
        DROP_SEQ_OVERFLOW,
    }
)


class EspError(Exception):
    """An ESP packet could not be processed; ``reason`` is one of the ``DROP_*`` strings."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
