"""EAP packet codec (RFC 3748 section 4).

::

    Code (1) | Identifier (1) | Length (2, whole packet) | Type (1, Request/Response only) | Type-Data

Inside IKEv2 the EAP payload carries exactly one EAP packet, so (like
strongSwan's ``eap_payload_t`` verify) the Length field must equal the number
of bytes received; there is no link-layer padding to skip.  Success and
Failure are exactly four octets; Request and Response need a Type octet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ikegate.wire.constants import EapCode, EapType

__all__ = ["EapDecodeError", "EapPacket", "decode", "HEADER_LEN"]

HEADER_LEN = 4
_HEADER = struct.Struct("!BBH")
#: Expanded Type (254): 3-octet Vendor-Id and 4-octet Vendor-Type follow (RFC 3748 5.7).
_EXPANDED_MIN_DATA = 7


class EapDecodeError(ValueError):
    """The bytes are not a well-formed EAP packet."""


@dataclass(frozen=True)
class EapPacket:
    """One EAP packet.

    ``type`` is an :class:`EapType` when known (else the raw number) and
    ``None`` for Success/Failure; ``data`` is the Type-Data after the type octet.
    """

    code: EapCode
    identifier: int
    type: EapType | int | None = None
    data: bytes = b""

    @classmethod
    def success(cls, identifier: int) -> EapPacket:
        return cls(EapCode.SUCCESS, identifier)

    @classmethod
    def failure(cls, identifier: int) -> EapPacket:
        return cls(EapCode.FAILURE, identifier)

    @property
    def has_type(self) -> bool:
        return self.code in (EapCode.REQUEST, EapCode.RESPONSE)

    def encode(self) -> bytes:
        """Serialise; raises ValueError for a packet that cannot be represented."""
        if not 0 <= self.identifier <= 0xFF:
            raise ValueError(f"EAP identifier {self.identifier} out of range")
        if self.has_type:
            if self.type is None or not 0 <= int(self.type) <= 0xFF:
                raise ValueError("EAP Request/Response needs a type in 0..255")
            body = bytes((int(self.type),)) + self.data
        elif self.code in (EapCode.SUCCESS, EapCode.FAILURE):
            if self.type is not None or self.data:
                raise ValueError("EAP Success/Failure carries no type or data")
            body = b""
        else:
            raise ValueError(f"unknown EAP code {self.code}")
        length = HEADER_LEN + len(body)
        if length > 0xFFFF:
            raise ValueError("EAP packet too long")
        return _HEADER.pack(int(self.code), self.identifier, length) + body


def decode(data: bytes) -> EapPacket:
    """Parse one EAP packet; raises :class:`EapDecodeError` (only) if malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EapDecodeError("EAP packet must be bytes")
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise EapDecodeError(f"EAP packet too short ({len(data)} bytes)")
    code_value, identifier, length = _HEADER.unpack_from(data)
    if length != len(data):
        raise EapDecodeError(f"EAP length field ({length}) does not match packet length ({len(data)})")
    try:
        code = EapCode(code_value)
    except ValueError:
        raise EapDecodeError(f"unknown EAP code {code_value}") from None
    if code in (EapCode.SUCCESS, EapCode.FAILURE):
        if length != HEADER_LEN:
            raise EapDecodeError(f"EAP {code.name} carries data")
        return EapPacket(code, identifier)
    if length < HEADER_LEN + 1:
        raise EapDecodeError(f"EAP {code.name} without a type")
    type_value = data[HEADER_LEN]
    try:
        eap_type: EapType | int = EapType(type_value)
    except ValueError:
        eap_type = type_value
    payload = data[HEADER_LEN + 1 :]
    if type_value == EapType.EXPANDED and len(payload) < _EXPANDED_MIN_DATA:
        raise EapDecodeError("truncated EAP expanded type")
    return EapPacket(code, identifier, eap_type, payload)
