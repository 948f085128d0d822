"""Fuzz target for :mod:`ikegate.wire.codec`.

The codec's promises (its module docstring), checked on every input:

* decoding raises :class:`~ikegate.wire.codec.DecodeError` and nothing else
  (``decode_header``, ``decode_message``, ``decode_payloads``, ``sealed_aad``, and
  ``decrypt_message`` with a real cipher, whose integrity error may also propagate);
* whatever decodes re-encodes without error, to the *identical* bytes except where the
  input had non-zero RESERVED fields, reserved header flag bits or the R bit of a CP
  attribute type: there the output has zeros ("MUST be sent as zero and MUST be ignored
  on receipt", RFC 7296 3.2) and every other bit is unchanged;
* the re-encoded message decodes to an equal message, and ``describe`` works on it.

:func:`reserved_mask` is the oracle for the first exception: an independent walk of the
RFC 7296 section 3 layouts that marks which bits are reserved, so a re-encoding that
changes any other bit (a length, an order, a flag, a type) is caught.

One input is used three ways: as a whole datagram, as an inner chain (first byte = type
of the first payload, the rest = the chain, as the plaintext of an SK payload) and, when
it is an encrypted message, opened with a fixed test key.
"""

from __future__ import annotations

import struct

from ikegate.crypto.errors import IntegrityError
from ikegate.crypto.sk import SkCipher
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.wire.codec import (
    DecodeError,
    decode_header,
    decode_message,
    decode_payloads,
    decrypt_message,
    describe,
    encode_message,
    encode_payloads,
    sealed_aad,
)
from ikegate.wire.constants import EncrId, IntegId, PayloadType

__all__ = ["check_codec", "check_chain", "check_message", "reserved_mask", "chain_reserved_mask"]

# RFC 7296 3.1: only the I (0x08), V (0x10) and R (0x20) flags are defined.
_HEADER_FLAG_RESERVED = 0xFF & ~0x38
# RFC 7296 3.2: the generic payload header's byte 1 is C (0x80) and 7 RESERVED bits.
_GENERIC_RESERVED = 0x7F

#: Reserved byte offsets in each payload's body (after the 4-byte generic header):
#: KE: group (2) RESERVED (2) (3.4); ID: type (1) RESERVED (3) (3.5); AUTH: method (1)
#: RESERVED (3) (3.8); TS: count (1) RESERVED (3) (3.13); CP: type (1) RESERVED (3) (3.15).
_BODY_RESERVED = {
    PayloadType.KE: (2, 3),
    PayloadType.IDi: (1, 2, 3),
    PayloadType.IDr: (1, 2, 3),
    PayloadType.AUTH: (1, 2, 3),
    PayloadType.TSi: (1, 2, 3),
    PayloadType.TSr: (1, 2, 3),
    PayloadType.CP: (1, 2, 3),
}


def _mark_body(mask: bytearray, data: bytes, ptype: int, start: int, end: int) -> None:
    for offset in _BODY_RESERVED.get(ptype, ()):
        if start + offset < end:
            mask[start + offset] = 0xFF
    if ptype == PayloadType.SA:
        _mark_sa(mask, data, start, end)
    elif ptype == PayloadType.CP:
        pos = start + 4
        while pos + 4 <= end:  # attributes: R bit | type (15), length (16), value (3.15.1)
            mask[pos] |= 0x80
            pos += 4 + struct.unpack_from("!H", data, pos + 2)[0]


def _mark_sa(mask: bytearray, data: bytes, start: int, end: int) -> None:
    """Proposal (3.3.1): last (1) RESERVED (1) ...; transform (3.3.2): last (1)
    RESERVED (1) length (2) type (1) RESERVED (1) ID (2)."""
    pos = start
    while pos + 8 <= end:
        length, spi_size, count = struct.unpack_from("!H", data, pos + 2)[0], data[pos + 6], data[pos + 7]
        mask[pos + 1] = 0xFF
        tpos, tend = pos + 8 + spi_size, pos + length
        for _ in range(count):
            if tpos + 8 > tend:
                break
            mask[tpos + 1] = 0xFF
            mask[tpos + 5] = 0xFF
            tpos += struct.unpack_from("!H", data, tpos + 2)[0]
        pos += max(length, 8)


def chain_reserved_mask(first: int, data: bytes, pos: int = 0, mask: bytearray | None = None) -> bytearray:
    """Reserved bits of a payload chain starting at ``pos`` (for a chain that decoded)."""
    mask = bytearray(len(data)) if mask is None else mask
    ptype = first
    while ptype != PayloadType.NONE and pos + 4 <= len(data):
        next_type, _flags, length = struct.unpack_from("!BBH", data, pos)
        mask[pos + 1] = _GENERIC_RESERVED
        if ptype in (PayloadType.SK, PayloadType.SKF):
            break  # the sealed body is opaque
        _mark_body(mask, data, ptype, pos + 4, pos + length)
        pos += max(length, 4)
        ptype = next_type
    return mask


def reserved_mask(data: bytes) -> bytearray:
    """Reserved bits of a whole IKE message (header and unencrypted payloads)."""
    mask = bytearray(len(data))
    mask[19] = _HEADER_FLAG_RESERVED
    return chain_reserved_mask(data[16], data, 28, mask)


def _same_but_reserved(original: bytes, encoded: bytes, mask: bytearray, what: str) -> None:
    if len(encoded) != len(original):
        raise AssertionError(f"{what}: re-encoded to {len(encoded)} bytes, decoded from {len(original)}")
    for i, (a, b, m) in enumerate(zip(original, encoded, mask)):
        if (a ^ b) & ~m & 0xFF or b & m:
            raise AssertionError(
                f"{what}: byte {i} re-encoded as {b:#04x}, received {a:#04x} (reserved bits {m:#04x})"
            )


def check_message(data: bytes):
    """Decode a datagram and check the round trip; the Message, or None if malformed."""
    try:
        header = decode_header(data)
    except DecodeError:
        header = None
    try:
        msg = decode_message(data)
    except DecodeError:
        return None
    if header is None:
        raise AssertionError("decode_message accepted what decode_header refused")
    encoded = encode_message(msg)
    _same_but_reserved(data, encoded, reserved_mask(data), "message")
    again = decode_message(encoded)
    if again != msg:
        raise AssertionError(f"re-decoded message differs: {again} != {msg}")
    if encode_message(again) != encoded:
        raise AssertionError("encoding is not stable")
    describe(msg)
    return msg


def check_chain(first: int, chain: bytes) -> list | None:
    """Decode an inner payload chain (an SK plaintext) and check the round trip."""
    try:
        payloads = decode_payloads(first, chain)
    except DecodeError:
        return None
    encoded_first, encoded = encode_payloads(payloads)
    if payloads and encoded_first != first:
        raise AssertionError(f"chain re-encoded with first type {encoded_first}, decoded from {first}")
    _same_but_reserved(chain, encoded, chain_reserved_mask(first, chain), "chain")
    if decode_payloads(encoded_first, encoded) != payloads:
        raise AssertionError("re-decoded chain differs")
    describe(payloads)
    return payloads


# A fixed test key: AES-CBC-128 + HMAC-SHA1-96, the same both ways.
_CIPHER = SkCipher(get_encr(EncrId.AES_CBC, 128), bytes(range(16)), get_integ(IntegId.HMAC_SHA1_96), bytes(range(20)))


def check_codec(data: bytes) -> None:
    """One fuzz input through every decode entry point of the codec."""
    data = bytes(data)
    msg = check_message(data)
    if data:
        check_chain(data[0], data[1:])
    try:
        aad, body = sealed_aad(data)
    except DecodeError:
        aad = None
    if aad is not None and aad + body != data:
        raise AssertionError("sealed_aad does not split the message")
    if msg is not None and msg.sealed is not None:
        try:
            decrypt_message(data, msg, _CIPHER)
        except (DecodeError, IntegrityError):
            pass


def cipher() -> SkCipher:
    """The fixed test cipher ``check_codec`` opens SK payloads with (for seeds)."""
    return _CIPHER
