"""IKEv2 message codec: bytes <-> :mod:`ikegate.wire.payloads` objects.

Wire formats follow RFC 7296 section 3 (header, generic payload header, every IKEv2
payload), RFC 7383 section 2.5 (Encrypted Fragment payload) and MS-IKEE 2.2.8 (the
Microsoft configuration attributes, which are plain CP attributes on the wire).

What this module does and does not do:

* Decoding checks *format* only: every length field must fit its container, counts
  must match, substructure "last" flags must be consistent, the payload chain must end
  exactly at the end of the data, an SK/SKF payload must be the last payload.  Any
  violation raises :class:`DecodeError` (a ``ValueError``) with a short reason meant
  for logs; no other exception escapes a decode function.  Protocol rules (which
  payloads an exchange needs, nonce sizes, proposal SPI sizes per protocol, ...) are
  the IKE engine's business.
* The work done is linear in the input size and the number of objects is capped
  (:data:`MAX_PAYLOADS`, :data:`MAX_SUBSTRUCTURES`); nothing recurses.
* Encrypted payloads are kept sealed (:class:`SkPayload`, :class:`SkfPayload`).  The
  sealing itself is done by a *cipher* object supplied by the caller (see
  :class:`SealingCipher`); this module only lays out the bytes around it and computes
  the associated data, so it never sees a key.
* Re-encoding a decoded message gives the identical bytes as long as the received
  RESERVED fields, the reserved header flag bits and the R bit of CP attribute types
  were zero (RFC 7296 3.2: "MUST be sent as zero and MUST be ignored on receipt"; we
  accept non-zero values and send zero).  Critical bits, transform and attribute
  order, attribute formats (TV/TLV) and SPI sizes are all kept.

:func:`describe` renders a message the way strongSwan logs it
(``IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) ... ]``) so logs of both daemons can
be compared line by line.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence

from ikegate.wire.constants import (
    IKE_HEADER_LEN,
    IKE_VERSION,
    ExchangeType,
    HeaderFlag,
    PayloadType,
    TsType,
)
from ikegate.wire.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DeletePayload,
    EapPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TsPayload,
    UnknownPayload,
    VendorIdPayload,
)

__all__ = [
    "DecodeError",
    "EncodeError",
    "Header",
    "Message",
    "SealingCipher",
    "MAX_PAYLOADS",
    "MAX_SUBSTRUCTURES",
    "decode_header",
    "decode_message",
    "decode_payloads",
    "encode_payloads",
    "encode_message",
    "encode_encrypted",
    "encode_fragments",
    "sealed_aad",
    "open_sealed",
    "decrypt_message",
    "describe",
]

#: Most payloads accepted in one chain (a message, or one decrypted SK body).  Real
#: messages carry fewer than 30; Windows puts all its CA hashes in one CERTREQ.
MAX_PAYLOADS = 256
#: Most entries accepted in any one list inside a payload (proposals, transforms,
#: transform attributes, traffic selectors, CP attributes, Delete SPIs).
MAX_SUBSTRUCTURES = 256

_GENERIC_HEADER = struct.Struct("!BBH")  # next payload, C|RESERVED, payload length
_IKE_HEADER = struct.Struct("!8s8sBBBBII")
_CRITICAL = 0x80
_SKF_HEADER_LEN = 8  # generic header + Fragment Number + Total Fragments
_MAX_PAYLOAD_LEN = 0xFFFF

_IPV4_SELECTOR_LEN = 16
_IPV6_SELECTOR_LEN = 40

_PROPOSAL_MORE = 2  # "Last Substruc" value of a proposal that is not the last one
_TRANSFORM_MORE = 3  # ... of a transform that is not the last one


class DecodeError(ValueError):
    """Malformed input.  The only exception the decode functions raise."""


class EncodeError(ValueError):
    """A payload object cannot be put on the wire (value out of range, wrong type)."""


class SealingCipher(Protocol):
    """What the codec needs from the SK payload protection (``ikegate.crypto.sk``).

    ``overhead(n)`` is the length of the body ``seal`` produces for an ``n``-byte
    plaintext: IV + ciphertext of plaintext, padding and Pad Length + ICV (this is how
    :class:`ikegate.crypto.sk.SkCipher` defines it).  The codec needs it before
    sealing because the length fields are part of the associated data.  ``seal`` and
    ``open`` take that associated data: the bytes of the message before the IV
    (RFC 7296 3.14 / RFC 5282 5.1, RFC 7383 2.5).  ``open`` raises its own
    integrity error, which the codec lets propagate.
    """

    def overhead(self, plaintext_len: int) -> int: ...

    def seal(self, aad: bytes, plaintext: bytes) -> bytes: ...

    def open(self, aad: bytes, body: bytes) -> bytes: ...


# --------------------------------------------------------------------------- header


@dataclass
class Header:
    """The fixed 28-byte IKE header (RFC 7296 3.1), fields as on the wire."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int
    exchange: int
    flags: int
    message_id: int
    length: int

    @property
    def major_version(self) -> int:
        return self.version >> 4

    @property
    def initiator(self) -> bool:
        return bool(self.flags & HeaderFlag.INITIATOR)

    @property
    def response(self) -> bool:
        return bool(self.flags & HeaderFlag.RESPONSE)

    @property
    def version_flag(self) -> bool:
        return bool(self.flags & HeaderFlag.VERSION)


def decode_header(data: bytes) -> Header:
    """Decode the IKE header of a whole datagram (without the non-ESP marker).

    Checks only that the header is complete and that its Length field equals
    ``len(data)``; the version is *not* checked, so a caller can answer a higher
    major version with INVALID_MAJOR_VERSION (RFC 7296 2.5).
    """
    if len(data) < IKE_HEADER_LEN:
        raise DecodeError(f"truncated IKE header ({len(data)} bytes)")
    spi_i, spi_r, next_payload, version, exchange, flags, message_id, length = (
        _IKE_HEADER.unpack_from(data, 0)
    )
    if length != len(data):
        raise DecodeError(f"IKE header length {length} but datagram has {len(data)} bytes")
    return Header(spi_i, spi_r, next_payload, version, exchange, flags, message_id, length)


# -------------------------------------------------------------------------- message


def _exchange_value(value: int) -> int:
    try:
        return ExchangeType(value)
    except ValueError:
        return value


@dataclass
class Message:
    """A decoded IKE message: header fields plus the payloads in wire order.

    For an encrypted message ``payloads`` ends with the still sealed
    :class:`SkPayload` / :class:`SkfPayload`; after :func:`decrypt_message` the caller
    works with the returned inner payload list.
    """

    spi_i: bytes
    spi_r: bytes
    exchange: int
    message_id: int
    initiator: bool
    response: bool
    payloads: list = field(default_factory=list)
    version: int = IKE_VERSION
    version_flag: bool = False

    def get(self, ptype: int):
        """First payload of type ``ptype``, or None."""
        for payload in self.payloads:
            if payload.type == ptype:
                return payload
        return None

    def get_all(self, ptype: int) -> list:
        return [payload for payload in self.payloads if payload.type == ptype]

    def notify(self, notify_type: int) -> NotifyPayload | None:
        for payload in self.payloads:
            if isinstance(payload, NotifyPayload) and payload.notify_type == notify_type:
                return payload
        return None

    def notifies(self) -> list[NotifyPayload]:
        return [payload for payload in self.payloads if isinstance(payload, NotifyPayload)]

    def unsupported_critical(self) -> list[int]:
        """Types of payloads we do not implement that the sender marked critical.

        RFC 7296 2.5: such a message must be rejected with UNSUPPORTED_CRITICAL_PAYLOAD
        carrying the (first) type.
        """
        return [p.payload_type for p in self.payloads if isinstance(p, UnknownPayload) and p.critical]

    @property
    def sealed(self) -> SkPayload | SkfPayload | None:
        """The trailing SK or SKF payload, if the message is encrypted."""
        if self.payloads and isinstance(self.payloads[-1], (SkPayload, SkfPayload)):
            return self.payloads[-1]
        return None

    @property
    def flags(self) -> int:
        return (
            (HeaderFlag.INITIATOR if self.initiator else 0)
            | (HeaderFlag.VERSION if self.version_flag else 0)
            | (HeaderFlag.RESPONSE if self.response else 0)
        )


def decode_message(data: bytes) -> Message:
    """Decode a whole IKEv2 datagram (RFC 7296 3.1; without the non-ESP marker).

    Raises :class:`DecodeError` for anything malformed, including a major version
    other than 2 (use :func:`decode_header` to look at such messages).
    """
    data = bytes(data)
    header = decode_header(data)
    if header.major_version != 2:
        raise DecodeError(f"unsupported IKE major version {header.major_version}")
    payloads = _decode_chain(header.next_payload, data, IKE_HEADER_LEN, len(data), allow_sealed=True)
    return Message(
        spi_i=header.spi_i,
        spi_r=header.spi_r,
        exchange=_exchange_value(header.exchange),
        message_id=header.message_id,
        initiator=header.initiator,
        response=header.response,
        payloads=payloads,
        version=header.version,
        version_flag=header.version_flag,
    )


def decode_payloads(first_type: int, data: bytes, *, allow_sealed: bool = False) -> list:
    """Decode a payload chain starting with a payload of type ``first_type``.

    Meant for the plaintext of an SK payload (or of reassembled SKF fragments), where
    another SK/SKF payload is never valid (RFC 7296 3.1): it is rejected unless
    ``allow_sealed`` is set.
    """
    data = bytes(data)
    return _decode_chain(first_type, data, 0, len(data), allow_sealed=allow_sealed)


def encode_payloads(payloads: Sequence) -> tuple[int, bytes]:
    """Encode a payload chain; returns (type of the first payload, chain bytes).

    An SK/SKF payload may only be the last element; its Next Payload field carries
    ``first_inner``.  An empty list gives ``(0, b"")``.
    """
    if not payloads:
        return PayloadType.NONE, b""
    parts = []
    last = len(payloads) - 1
    for index, payload in enumerate(payloads):
        sealed = isinstance(payload, (SkPayload, SkfPayload))
        if sealed:
            if index != last:
                raise EncodeError("SK/SKF payload must be the last payload")
            next_type = payload.first_inner
        else:
            next_type = payloads[index + 1].type if index < last else PayloadType.NONE
        body = _encode_body(payload)
        parts.append(_generic_header(next_type, payload.critical, len(body), payload) + body)
    return payloads[0].type, b"".join(parts)


def encode_message(msg: Message) -> bytes:
    """Encode header and payload chain (plaintext payloads, or one ending in SK/SKF)."""
    first, chain = encode_payloads(msg.payloads)
    return _encode_header(msg, first, IKE_HEADER_LEN + len(chain)) + chain


# ------------------------------------------------------------ encrypted payloads


def encode_encrypted(msg: Message, inner: Sequence, cipher: SealingCipher) -> bytes:
    """Build ``IKE header | SK header | cipher.seal(aad, inner chain)``.

    ``msg`` supplies the header fields only (its ``payloads`` are ignored).  The
    associated data is the IKE header plus the 4-byte SK generic header, whose length
    fields come from ``cipher.overhead`` (the sealed body length) before sealing
    (RFC 7296 3.14, RFC 5282 5.1).
    """
    first_inner, plaintext = encode_payloads(inner)
    body_len = cipher.overhead(len(plaintext))
    sk_len = 4 + body_len
    if sk_len > _MAX_PAYLOAD_LEN:
        raise EncodeError(f"SK payload of {sk_len} bytes does not fit the length field")
    aad = _encode_header(msg, PayloadType.SK, IKE_HEADER_LEN + sk_len) + _GENERIC_HEADER.pack(
        _byte(first_inner, "SK next payload"), 0, sk_len
    )
    return aad + _seal(cipher, aad, plaintext, body_len)


def encode_fragments(
    msg: Message,
    inner: Sequence,
    cipher: SealingCipher,
    max_datagram: int,
    *,
    ip_overhead: int,
) -> list[bytes]:
    """Split an encrypted message into Encrypted Fragment messages (RFC 7383 2.5).

    Every returned message plus ``ip_overhead`` (IP header + UDP header + the 4-byte
    non-ESP marker on port 4500, as the caller knows) is at most ``max_datagram``
    bytes, like strongSwan's ``charon.fragment_size``.  Fragment 1 carries the type of
    the first inner payload, the others 0; each fragment is sealed on its own with
    associated data = IKE header + SKF header including Fragment Number and Total
    Fragments (RFC 7383 2.5).  The receiver concatenates the opened fragment
    plaintexts in order and decodes them with :func:`decode_payloads`.
    """
    first_inner, plaintext = encode_payloads(inner)
    room = min(max_datagram - ip_overhead, IKE_HEADER_LEN + _MAX_PAYLOAD_LEN) - IKE_HEADER_LEN - _SKF_HEADER_LEN
    chunk = _largest_chunk(cipher, room)
    if chunk < 1:
        raise EncodeError(f"max_datagram {max_datagram} leaves no room for fragment content")
    total = max(1, -(-len(plaintext) // chunk))
    if total > 0xFFFF:
        raise EncodeError(f"message would need {total} fragments")
    messages = []
    for number in range(1, total + 1):
        piece = plaintext[(number - 1) * chunk : number * chunk]
        body_len = cipher.overhead(len(piece))
        skf_len = _SKF_HEADER_LEN + body_len
        aad = _encode_header(msg, PayloadType.SKF, IKE_HEADER_LEN + skf_len) + struct.pack(
            "!BBHHH", _byte(first_inner if number == 1 else 0, "SKF next payload"), 0, skf_len, number, total
        )
        messages.append(aad + _seal(cipher, aad, piece, body_len))
    return messages


def sealed_aad(data: bytes) -> tuple[bytes, bytes]:
    """Split a received encrypted message into (associated data, sealed body).

    The associated data is everything before the IV: IKE header, any unencrypted
    payloads, and the SK generic header (or the SKF header with Fragment Number and
    Total Fragments); the body is IV | ciphertext | ICV.  ``DecodeError`` if the last
    payload is not SK/SKF.
    """
    data = bytes(data)
    header = decode_header(data)
    ptype, pos, count = header.next_payload, IKE_HEADER_LEN, 0
    while True:
        if ptype == PayloadType.NONE:
            raise DecodeError("message has no SK or SKF payload")
        if count >= MAX_PAYLOADS:
            raise DecodeError(f"more than {MAX_PAYLOADS} payloads")
        next_type, _flags, length = _read_generic_header(data, pos, len(data), ptype)
        if ptype in (PayloadType.SK, PayloadType.SKF):
            if pos + length != len(data):
                raise DecodeError(f"{_error_name(ptype)} payload is not the last payload")
            header_len = 4 if ptype == PayloadType.SK else _SKF_HEADER_LEN
            if length < header_len:
                raise DecodeError(f"{_error_name(ptype)} payload too short ({length} bytes)")
            return data[: pos + header_len], data[pos + header_len :]
        pos += length
        ptype = next_type
        count += 1


def open_sealed(data: bytes, cipher: SealingCipher) -> bytes:
    """Plaintext of the SK/SKF payload of a received message (``cipher.open``).

    For SKF fragments this is one piece of the inner chain; the cipher's integrity
    error propagates unchanged.
    """
    aad, body = sealed_aad(data)
    return cipher.open(aad, body)


def decrypt_message(data: bytes, msg: Message, cipher: SealingCipher) -> list:
    """Open the SK payload of ``msg`` (decoded from ``data``) and decode its content.

    A lone SKF payload with Total Fragments = 1 is a complete message too.  Other
    fragments must be opened with :func:`open_sealed` and reassembled by the caller.
    The cipher's integrity error propagates; a malformed inner chain (including a
    nested SK/SKF payload) raises :class:`DecodeError`.
    """
    sealed = msg.sealed
    if sealed is None:
        raise DecodeError("message has no SK or SKF payload")
    if isinstance(sealed, SkfPayload) and sealed.total_fragments != 1:
        raise DecodeError(
            f"fragment {sealed.fragment_number}/{sealed.total_fragments} needs reassembly"
        )
    plaintext = open_sealed(data, cipher)
    return decode_payloads(sealed.first_inner, plaintext)


def _seal(cipher: SealingCipher, aad: bytes, plaintext: bytes, body_len: int) -> bytes:
    body = cipher.seal(aad, plaintext)
    if len(body) != body_len:
        raise EncodeError(f"cipher sealed {len(body)} bytes, overhead() announced {body_len}")
    return body


def _largest_chunk(cipher: SealingCipher, room: int) -> int:
    """Largest plaintext size n whose sealed body fits ``room`` bytes (0 if none).

    Binary search: the sealed size never shrinks when the plaintext grows.
    """
    low, high = 0, max(room, 0)
    if cipher.overhead(0) > room:
        return 0
    while low < high:
        mid = (low + high + 1) // 2
        if cipher.overhead(mid) <= room:
            low = mid
        else:
            high = mid - 1
    return low


# ------------------------------------------------------------------ chain decoding


def _read_generic_header(data: bytes, pos: int, end: int, ptype: int) -> tuple[int, int, int]:
    if end - pos < 4:
        raise DecodeError(f"truncated {_error_name(ptype)} payload header")
    next_type, flags, length = _GENERIC_HEADER.unpack_from(data, pos)
    if length < 4:
        raise DecodeError(f"{_error_name(ptype)} payload length {length} < 4")
    if length > end - pos:
        raise DecodeError(
            f"{_error_name(ptype)} payload length {length} exceeds the {end - pos} bytes left"
        )
    return next_type, flags, length


def _decode_chain(first: int, data: bytes, pos: int, end: int, *, allow_sealed: bool) -> list:
    payloads: list = []
    ptype = first
    while ptype != PayloadType.NONE:
        if len(payloads) >= MAX_PAYLOADS:
            raise DecodeError(f"more than {MAX_PAYLOADS} payloads")
        next_type, flags, length = _read_generic_header(data, pos, end, ptype)
        critical = bool(flags & _CRITICAL)
        body = data[pos + 4 : pos + length]
        if ptype in (PayloadType.SK, PayloadType.SKF):
            if not allow_sealed:
                raise DecodeError(f"nested {_error_name(ptype)} payload")
            if pos + length != end:
                raise DecodeError(f"{_error_name(ptype)} payload is not the last payload")
            payloads.append(_decode_sealed(ptype, next_type, body, critical))
            return payloads
        decoder = _DECODERS.get(ptype)
        if decoder is None:
            payload = UnknownPayload(payload_type=ptype, data=body, critical=critical)
        else:
            payload = decoder(ptype, body)
            payload.critical = critical
        payloads.append(payload)
        pos += length
        ptype = next_type
    if pos != end:
        raise DecodeError(f"{end - pos} bytes after the last payload")
    return payloads


def _decode_sealed(ptype: int, first_inner: int, body: bytes, critical: bool):
    if ptype == PayloadType.SK:
        return SkPayload(first_inner=first_inner, body=body, critical=critical)
    if len(body) < 4:
        raise DecodeError("truncated SKF payload")
    number, total = struct.unpack_from("!HH", body, 0)
    if number == 0 or total == 0 or number > total:
        raise DecodeError(f"SKF fragment number {number} of total {total}")
    return SkfPayload(
        first_inner=first_inner,
        fragment_number=number,
        total_fragments=total,
        body=body[4:],
        critical=critical,
    )


# ---------------------------------------------------------------- payload decoders


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise DecodeError(f"{what} payload too short ({len(body) + 4} bytes)")


def _decode_sa(ptype: int, body: bytes) -> SaPayload:
    """SA payload: a list of proposal substructures (RFC 7296 3.3.1)."""
    proposals = []
    pos, end, previous = 0, len(body), 1
    while pos < end:
        if len(proposals) >= MAX_SUBSTRUCTURES:
            raise DecodeError(f"SA with more than {MAX_SUBSTRUCTURES} proposals")
        if end - pos < 8:
            raise DecodeError("SA: truncated proposal")
        more, _reserved, length, number, protocol, spi_size, count = struct.unpack_from("!BBHBBBB", body, pos)
        if length < 8 + spi_size or length > end - pos:
            raise DecodeError(f"SA: proposal length {length} does not fit")
        _check_last(more, _PROPOSAL_MORE, pos + length == end, "proposal")
        # strongSwan accepts equal numbers (IKEv1 style); RFC 7296 wants +1 each.
        if number < previous:
            raise DecodeError(f"SA: proposal number {number} after {previous}")
        previous = number
        spi_end = pos + 8 + spi_size
        transforms = _decode_transforms(body, spi_end, pos + length, count)
        proposals.append(SaProposal(number, protocol, body[pos + 8 : spi_end], transforms))
        pos += length
    return SaPayload(proposals=proposals)


def _check_last(value: int, more: int, is_last: bool, what: str) -> None:
    if value not in (0, more):
        raise DecodeError(f"SA: {what} 'last substructure' value {value}")
    if (value == 0) != is_last:
        raise DecodeError(f"SA: {what} 'last substructure' value {value} does not match its position")


def _decode_transforms(body: bytes, pos: int, end: int, count: int) -> list[Transform]:
    transforms = []
    for index in range(count):
        if end - pos < 8:
            raise DecodeError(f"SA: {count} transforms announced, only {index} present")
        more, _r1, length, ttype, _r2, tid = struct.unpack_from("!BBHBBH", body, pos)
        if length < 8 or length > end - pos:
            raise DecodeError(f"SA: transform length {length} does not fit")
        _check_last(more, _TRANSFORM_MORE, index == count - 1, "transform")
        transforms.append(Transform(ttype, tid, _decode_attributes(body, pos + 8, pos + length)))
        pos += length
    if pos != end:
        raise DecodeError(f"SA: {end - pos} bytes after the {count} announced transforms")
    return transforms


def _decode_attributes(body: bytes, pos: int, end: int) -> list[TransformAttribute]:
    attributes = []
    while pos < end:
        if len(attributes) >= MAX_SUBSTRUCTURES:
            raise DecodeError(f"SA: more than {MAX_SUBSTRUCTURES} transform attributes")
        if end - pos < 4:
            raise DecodeError("SA: truncated transform attribute")
        atype, value = struct.unpack_from("!HH", body, pos)
        if atype & 0x8000:  # AF=1: TV format, value in the length field
            attributes.append(TransformAttribute(atype & 0x7FFF, value, True))
            pos += 4
        else:
            if value > end - pos - 4:
                raise DecodeError(f"SA: transform attribute length {value} does not fit")
            attributes.append(TransformAttribute(atype, body[pos + 4 : pos + 4 + value], False))
            pos += 4 + value
    return attributes


def _decode_ke(ptype: int, body: bytes) -> KePayload:
    _need(body, 4, "KE")
    (group,) = struct.unpack_from("!H", body, 0)
    return KePayload(group=group, data=body[4:])


def _decode_id(ptype: int, body: bytes) -> IdPayload:
    _need(body, 4, _error_name(ptype))
    return IdPayload(id_type=body[0], data=body[4:], responder=ptype == PayloadType.IDr)


def _decode_cert(ptype: int, body: bytes) -> CertPayload:
    _need(body, 1, "CERT")
    return CertPayload(encoding=body[0], data=body[1:])


def _decode_certreq(ptype: int, body: bytes) -> CertReqPayload:
    _need(body, 1, "CERTREQ")
    return CertReqPayload(encoding=body[0], data=body[1:])


def _decode_auth(ptype: int, body: bytes) -> AuthPayload:
    _need(body, 4, "AUTH")
    return AuthPayload(method=body[0], data=body[4:])


def _decode_nonce(ptype: int, body: bytes) -> NoncePayload:
    return NoncePayload(data=body)


def _decode_notify(ptype: int, body: bytes) -> NotifyPayload:
    _need(body, 4, "NOTIFY")
    protocol, spi_size, notify_type = struct.unpack_from("!BBH", body, 0)
    if 4 + spi_size > len(body):
        raise DecodeError(f"NOTIFY: SPI size {spi_size} exceeds the payload")
    return NotifyPayload(
        notify_type=notify_type,
        data=body[4 + spi_size :],
        protocol=protocol,
        spi=body[4 : 4 + spi_size],
    )


def _decode_delete(ptype: int, body: bytes) -> DeletePayload:
    _need(body, 4, "DELETE")
    protocol, spi_size, count = struct.unpack_from("!BBH", body, 0)
    if count > MAX_SUBSTRUCTURES:
        raise DecodeError(f"DELETE: more than {MAX_SUBSTRUCTURES} SPIs")
    if len(body) - 4 != spi_size * count:
        raise DecodeError(f"DELETE: {count} SPIs of {spi_size} bytes do not fill {len(body) - 4} bytes")
    spis = [body[4 + i * spi_size : 4 + (i + 1) * spi_size] for i in range(count)]
    return DeletePayload(protocol=protocol, spi_size=spi_size, spis=spis)


def _decode_vendor(ptype: int, body: bytes) -> VendorIdPayload:
    return VendorIdPayload(data=body)


def _decode_ts(ptype: int, body: bytes) -> TsPayload:
    """TSi/TSr (RFC 7296 3.13).  Non-IP selector types keep their raw bytes.

    For a type other than IPv4/IPv6 range, ``ip_protocol`` holds the second byte,
    the ports are 0, ``start_addr`` holds everything after the 4-byte selector header
    and ``end_addr`` is ``b""``; the encoder writes them back the same way.
    """
    what = _error_name(ptype)
    _need(body, 4, what)
    count = body[0]
    selectors = []
    pos, end = 4, len(body)
    for index in range(count):
        if end - pos < 4:
            raise DecodeError(f"{what}: {count} selectors announced, only {index} present")
        ts_type, protocol, length = struct.unpack_from("!BBH", body, pos)
        if length < 4 or length > end - pos:
            raise DecodeError(f"{what}: selector length {length} does not fit")
        if ts_type == TsType.IPV4_ADDR_RANGE or ts_type == TsType.IPV6_ADDR_RANGE:
            v4 = ts_type == TsType.IPV4_ADDR_RANGE
            expected = _IPV4_SELECTOR_LEN if v4 else _IPV6_SELECTOR_LEN
            if length != expected:
                raise DecodeError(f"{what}: IPv{4 if v4 else 6} selector length {length}, expected {expected}")
            start_port, end_port = struct.unpack_from("!HH", body, pos + 4)
            size = 4 if v4 else 16
            factory = ipaddress.IPv4Address if v4 else ipaddress.IPv6Address
            start = factory(body[pos + 8 : pos + 8 + size])
            stop = factory(body[pos + 8 + size : pos + 8 + 2 * size])
            selectors.append(TrafficSelector(ts_type, protocol, start_port, end_port, start, stop))
        else:
            selectors.append(TrafficSelector(ts_type, protocol, 0, 0, body[pos + 4 : pos + length], b""))
        pos += length
    if pos != end:
        raise DecodeError(f"{what}: {end - pos} bytes after the {count} announced selectors")
    return TsPayload(selectors=selectors, responder=ptype == PayloadType.TSr)


def _decode_cp(ptype: int, body: bytes) -> CpPayload:
    """CP (RFC 7296 3.15): any attribute type, value kept as raw bytes, R bit dropped."""
    _need(body, 4, "CP")
    attributes = []
    pos, end = 4, len(body)
    while pos < end:
        if len(attributes) >= MAX_SUBSTRUCTURES:
            raise DecodeError(f"CP: more than {MAX_SUBSTRUCTURES} attributes")
        if end - pos < 4:
            raise DecodeError("CP: truncated attribute")
        atype, length = struct.unpack_from("!HH", body, pos)
        if length > end - pos - 4:
            raise DecodeError(f"CP: attribute length {length} does not fit")
        attributes.append(CpAttribute(atype & 0x7FFF, body[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return CpPayload(cfg_type=body[0], attributes=attributes)


def _decode_eap(ptype: int, body: bytes) -> EapPayload:
    """EAP (RFC 7296 3.16): the EAP packet; its own Length must match (RFC 3748 4)."""
    _need(body, 4, "EAP")
    (eap_length,) = struct.unpack_from("!H", body, 2)
    if eap_length != len(body):
        raise DecodeError(f"EAP length {eap_length} but payload carries {len(body)} bytes")
    return EapPayload(data=body)


_DECODERS = {
    PayloadType.SA: _decode_sa,
    PayloadType.KE: _decode_ke,
    PayloadType.IDi: _decode_id,
    PayloadType.IDr: _decode_id,
    PayloadType.CERT: _decode_cert,
    PayloadType.CERTREQ: _decode_certreq,
    PayloadType.AUTH: _decode_auth,
    PayloadType.NONCE: _decode_nonce,
    PayloadType.NOTIFY: _decode_notify,
    PayloadType.DELETE: _decode_delete,
    PayloadType.VENDOR_ID: _decode_vendor,
    PayloadType.TSi: _decode_ts,
    PayloadType.TSr: _decode_ts,
    PayloadType.CP: _decode_cp,
    PayloadType.EAP: _decode_eap,
}


# ---------------------------------------------------------------- payload encoders


def _byte(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise EncodeError(f"{what} {value!r} is not a byte value")
    return value


def _u16(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} {value!r} is not a 16-bit value")
    return value


def _as_bytes(value, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise EncodeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _generic_header(next_type: int, critical: bool, body_len: int, payload) -> bytes:
    length = 4 + body_len
    if length > _MAX_PAYLOAD_LEN:
        raise EncodeError(f"{_error_name(payload.type)} payload of {length} bytes is too long")
    return _GENERIC_HEADER.pack(_byte(int(next_type), "next payload"), _CRITICAL if critical else 0, length)


def _encode_header(msg: Message, next_payload: int, length: int) -> bytes:
    spi_i = _as_bytes(msg.spi_i, "spi_i")
    spi_r = _as_bytes(msg.spi_r, "spi_r")
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise EncodeError("IKE SPIs must be 8 bytes")
    if not isinstance(msg.message_id, int) or not 0 <= msg.message_id <= 0xFFFFFFFF:
        raise EncodeError(f"message ID {msg.message_id} out of range")
    return _IKE_HEADER.pack(
        spi_i,
        spi_r,
        _byte(int(next_payload), "next payload"),
        _byte(int(msg.version), "version"),
        _byte(int(msg.exchange), "exchange type"),
        msg.flags,
        msg.message_id,
        length,
    )


def _encode_body(payload) -> bytes:
    encoder = _ENCODERS.get(type(payload))
    if encoder is None:
        for cls, candidate in _ENCODERS.items():
            if isinstance(payload, cls):
                encoder = candidate
                break
        else:
            raise EncodeError(f"cannot encode {type(payload).__name__}")
    try:
        return encoder(payload)
    except struct.error as exc:  # a field out of range that no explicit check caught
        raise EncodeError(f"{type(payload).__name__}: {exc}") from None


def _encode_sa(payload: SaPayload) -> bytes:
    parts = []
    last = len(payload.proposals) - 1
    for index, proposal in enumerate(payload.proposals):
        spi = _as_bytes(proposal.spi, "proposal SPI")
        transforms = b"".join(
            _encode_transform(transform, i == len(proposal.transforms) - 1)
            for i, transform in enumerate(proposal.transforms)
        )
        length = 8 + len(spi) + len(transforms)
        parts.append(
            struct.pack(
                "!BBHBBBB",
                0 if index == last else _PROPOSAL_MORE,
                0,
                _u16(length, "proposal length"),
                _byte(proposal.number, "proposal number"),
                _byte(int(proposal.protocol), "protocol ID"),
                _byte(len(spi), "SPI size"),
                _byte(len(proposal.transforms), "transform count"),
            )
            + spi
            + transforms
        )
    return b"".join(parts)


def _encode_transform(transform: Transform, is_last: bool) -> bytes:
    attributes = b"".join(_encode_transform_attribute(a) for a in transform.attributes)
    length = 8 + len(attributes)
    return (
        struct.pack(
            "!BBHBBH",
            0 if is_last else _TRANSFORM_MORE,
            0,
            _u16(length, "transform length"),
            _byte(int(transform.type), "transform type"),
            0,
            _u16(int(transform.id), "transform ID"),
        )
        + attributes
    )


def _encode_transform_attribute(attribute: TransformAttribute) -> bytes:
    atype = int(attribute.type)
    if not 0 <= atype <= 0x7FFF:
        raise EncodeError(f"transform attribute type {atype} out of range")
    if attribute.tv:
        if not isinstance(attribute.value, int):
            raise EncodeError("TV transform attribute needs an int value")
        return struct.pack("!HH", 0x8000 | atype, _u16(attribute.value, "attribute value"))
    value = _as_bytes(attribute.value, "TLV transform attribute value")
    return struct.pack("!HH", atype, _u16(len(value), "attribute length")) + value


def _encode_ke(payload: KePayload) -> bytes:
    return struct.pack("!HH", _u16(int(payload.group), "KE group"), 0) + _as_bytes(payload.data, "KE data")


def _encode_id(payload: IdPayload) -> bytes:
    return bytes((_byte(int(payload.id_type), "ID type"), 0, 0, 0)) + _as_bytes(payload.data, "ID data")


def _encode_cert(payload: CertPayload | CertReqPayload) -> bytes:
    return bytes((_byte(int(payload.encoding), "certificate encoding"),)) + _as_bytes(payload.data, "certificate data")


def _encode_auth(payload: AuthPayload) -> bytes:
    return bytes((_byte(int(payload.method), "AUTH method"), 0, 0, 0)) + _as_bytes(payload.data, "AUTH data")


def _encode_data(payload) -> bytes:
    return _as_bytes(payload.data, f"{type(payload).__name__} data")


def _encode_notify(payload: NotifyPayload) -> bytes:
    spi = _as_bytes(payload.spi, "notify SPI")
    return (
        struct.pack(
            "!BBH",
            _byte(int(payload.protocol), "notify protocol"),
            _byte(len(spi), "notify SPI size"),
            _u16(int(payload.notify_type), "notify type"),
        )
        + spi
        + _as_bytes(payload.data, "notify data")
    )


def _encode_delete(payload: DeletePayload) -> bytes:
    spis = [_as_bytes(spi, "delete SPI") for spi in payload.spis]
    if any(len(spi) != payload.spi_size for spi in spis):
        raise EncodeError(f"delete SPIs must all be {payload.spi_size} bytes")
    return (
        struct.pack(
            "!BBH",
            _byte(int(payload.protocol), "delete protocol"),
            _byte(payload.spi_size, "delete SPI size"),
            _u16(len(spis), "delete SPI count"),
        )
        + b"".join(spis)
    )


def _address(value, version: int):
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value)
        except ValueError as exc:
            raise EncodeError(str(exc)) from None
    if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) or value.version != version:
        raise EncodeError(f"traffic selector needs IPv{version} addresses, got {value!r}")
    return value.packed


def _encode_selector(ts: TrafficSelector) -> bytes:
    ts_type = _byte(int(ts.ts_type), "TS type")
    protocol = _byte(int(ts.ip_protocol), "TS IP protocol")
    if ts_type in (TsType.IPV4_ADDR_RANGE, TsType.IPV6_ADDR_RANGE):
        version = 4 if ts_type == TsType.IPV4_ADDR_RANGE else 6
        addresses = _address(ts.start_addr, version) + _address(ts.end_addr, version)
        return (
            struct.pack(
                "!BBHHH",
                ts_type,
                protocol,
                4 + 4 + len(addresses),
                _u16(ts.start_port, "TS start port"),
                _u16(ts.end_port, "TS end port"),
            )
            + addresses
        )
    raw = _as_bytes(ts.start_addr, "raw selector") + _as_bytes(ts.end_addr, "raw selector")
    return struct.pack("!BBH", ts_type, protocol, _u16(4 + len(raw), "selector length")) + raw


def _encode_ts(payload: TsPayload) -> bytes:
    selectors = b"".join(_encode_selector(ts) for ts in payload.selectors)
    return bytes((_byte(len(payload.selectors), "TS count"), 0, 0, 0)) + selectors


def _encode_cp(payload: CpPayload) -> bytes:
    parts = [bytes((_byte(int(payload.cfg_type), "CFG type"), 0, 0, 0))]
    for attribute in payload.attributes:
        atype = int(attribute.type)
        if not 0 <= atype <= 0x7FFF:
            raise EncodeError(f"CP attribute type {atype} out of range")
        value = _as_bytes(attribute.value, "CP attribute value")
        parts.append(struct.pack("!HH", atype, _u16(len(value), "CP attribute length")) + value)
    return b"".join(parts)


def _encode_sk(payload: SkPayload) -> bytes:
    return _as_bytes(payload.body, "SK body")


def _encode_skf(payload: SkfPayload) -> bytes:
    return (
        struct.pack(
            "!HH",
            _u16(payload.fragment_number, "fragment number"),
            _u16(payload.total_fragments, "total fragments"),
        )
        + _as_bytes(payload.body, "SKF body")
    )


_ENCODERS = {
    SaPayload: _encode_sa,
    KePayload: _encode_ke,
    IdPayload: _encode_id,
    CertPayload: _encode_cert,
    CertReqPayload: _encode_cert,
    AuthPayload: _encode_auth,
    NoncePayload: _encode_data,
    NotifyPayload: _encode_notify,
    DeletePayload: _encode_delete,
    VendorIdPayload: _encode_data,
    TsPayload: _encode_ts,
    CpPayload: _encode_cp,
    EapPayload: _encode_data,
    SkPayload: _encode_sk,
    SkfPayload: _encode_skf,
    UnknownPayload: _encode_data,
}


# ------------------------------------------------------------------------ describe
#
# Short names as strongSwan prints them in "parsed ..." / "generating ..." log lines
# (src/libcharon/encoding/message.c get_string(), payloads/payload.c
# payload_type_short_names, payloads/notify_payload.c notify_type_short_names,
# payloads/configuration_attribute.c, libstrongswan/eap/eap.c).  Values strongSwan
# has no name for print as "(<number>)", as its enum printer does.

_PAYLOAD_SHORT = {
    PayloadType.SA: "SA",
    PayloadType.KE: "KE",
    PayloadType.IDi: "IDi",
    PayloadType.IDr: "IDr",
    PayloadType.CERT: "CERT",
    PayloadType.CERTREQ: "CERTREQ",
    PayloadType.AUTH: "AUTH",
    PayloadType.NONCE: "No",
    PayloadType.NOTIFY: "N",
    PayloadType.DELETE: "D",
    PayloadType.VENDOR_ID: "V",
    PayloadType.TSi: "TSi",
    PayloadType.TSr: "TSr",
    PayloadType.SK: "E",
    PayloadType.CP: "CP",
    PayloadType.EAP: "EAP",
    PayloadType.GSPM: "GSPM",
    PayloadType.IDg: "IDg",
    PayloadType.GSA: "GSA",
    PayloadType.KD: "KD",
    PayloadType.SKF: "EF",
}

_NOTIFY_SHORT = {
    1: "CRIT",
    4: "INVAL_IKE_SPI",
    5: "INVAL_MAJOR",
    7: "INVAL_SYN",
    9: "INVAL_MID",
    11: "INVAL_SPI",
    13: "ATTR_UNSUP",
    14: "NO_PROP",
    16: "PLD_MAL",
    17: "INVAL_KE",
    18: "INVAL_ID",
    19: "INVAL_CERTEN",
    20: "INVAL_CERT",
    21: "CERT_UNSUP",
    22: "INVAL_CA",
    23: "INVAL_HASH",
    24: "AUTH_FAILED",
    34: "SINGLE_PAIR",
    35: "NO_ADD_SAS",
    36: "INT_ADDR_FAIL",
    37: "FAIL_CP_REQ",
    38: "TS_UNACCEPT",
    39: "INVAL_SEL",
    40: "UNACCEPT_ADDR",
    41: "UNEXPECT_NAT",
    42: "ASSIGNED_HoA",
    43: "TEMP_FAIL",
    44: "NO_CHILD_SA",
    47: "NO_STATE",
    48: "MAX_QUEUE",
    8192: "ME_CONN_FAIL",
    12345: "MS_STATUS",
    16384: "INIT_CONTACT",
    16385: "SET_WINSIZE",
    16386: "ADD_TS_POSS",
    16387: "IPCOMP_SUP",
    16388: "NATD_S_IP",
    16389: "NATD_D_IP",
    16390: "COOKIE",
    16391: "USE_TRANSP",
    16392: "HTTP_CERT_LOOK",
    16393: "REKEY_SA",
    16394: "ESP_TFC_PAD_N",
    16395: "NON_FIRST_FRAG",
    16396: "MOBIKE_SUP",
    16397: "ADD_4_ADDR",
    16398: "ADD_6_ADDR",
    16399: "NO_ADD_ADDR",
    16400: "UPD_SA_ADDR",
    16401: "COOKIE2",
    16402: "NO_NATS",
    16403: "AUTH_LFT",
    16404: "MULT_AUTH",
    16405: "AUTH_FOLLOWS",
    16406: "REDIR_SUP",
    16407: "REDIR",
    16408: "REDIR_FROM",
    16409: "TKT_LT_OPAK",
    16410: "TKT_REQ",
    16411: "TKT_ACK",
    16412: "TKT_NACK",
    16413: "TKT_OPAK",
    16414: "LINK_ID",
    16415: "WESP_MODE",
    16416: "ROHC_SUP",
    16417: "EAP_ONLY",
    16418: "CHDLESS_SUP",
    16419: "CRASH_DET",
    16420: "MSG_ID_SYN_SUP",
    16421: "RPL_CTR_SYN_SUP",
    16422: "MSG_ID_SYN",
    16423: "RPL_CTR_SYN",
    16424: "SEC_PASSWD",
    16425: "PSK_PST",
    16426: "PSK_CFM",
    16427: "ERX_SUP",
    16428: "IFOM_CAP",
    16429: "SENDER_REQ_ID",
    16430: "FRAG_SUP",
    16431: "HASH_ALG",
    16435: "USE_PPK",
    16436: "PPK_ID",
    16437: "NO_PPK",
    16438: "IKE_INT_SUP",
    16441: "ADD_KE",
    16442: "AGGFRAG",
    16444: "RES_INFO",
}

_CFG_ATTR_SHORT = {
    1: "ADDR",
    2: "MASK",
    3: "DNS",
    4: "NBNS",
    5: "EXP",
    6: "DHCP",
    7: "VER",
    8: "ADDR6",
    9: "MASK6",
    10: "DNS6",
    11: "NBNS6",
    12: "DHCP6",
    13: "SUBNET",
    14: "SUP",
    15: "SUBNET6",
    16: "MIP6HPFX",
    17: "LINK6",
    18: "PFX6",
    19: "HOA",
    20: "PCSCF4",
    21: "PCSCF6",
    22: "FTTKAT",
    23: "EXTSRC4",
    24: "DPD",
    25: "DOMAIN",
    26: "TA",
    23456: "SRV",
    23457: "SRV6",
}

_CFG_TYPE_PREFIX = {1: "RQ(", 2: "RP(", 3: "S(", 4: "A("}

_EAP_CODE_SHORT = {1: "REQ", 2: "RES", 3: "SUCC", 4: "FAIL"}

_EAP_TYPE_SHORT = {
    1: "ID",
    2: "NTF",
    3: "NAK",
    4: "MD5",
    5: "OTP",
    6: "GTC",
    13: "TLS",
    18: "SIM",
    21: "TTLS",
    23: "AKA",
    25: "PEAP",
    26: "MSCHAPV2",
    33: "MSTLV",
    38: "TNC",
    54: "PT",
    254: "EXP",
    255: "XP",
}

_PEN_SHORT = {0: "IETF", 2: "IBM", 311: "MS", 2312: "RH", 21911: "TCG", 36906: "ITA"}


def _named(table: dict, value: int) -> str:
    return table.get(int(value), f"({int(value)})")


def _short_name(ptype: int) -> str:
    return _named(_PAYLOAD_SHORT, ptype)


def _error_name(ptype: int) -> str:
    """Payload name for error messages (the RFC names, clearer in logs than E/EF)."""
    try:
        return PayloadType(ptype).name
    except ValueError:
        return f"type {int(ptype)}"


def _exchange_name(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return f"({int(exchange)})"


def _describe_payload(payload) -> str:
    if isinstance(payload, UnknownPayload):
        return f"UNKN({payload.payload_type})"
    name = _short_name(payload.type)
    if isinstance(payload, NotifyPayload):
        if payload.notify_type == 12345 and len(payload.data) == 4:
            status = int.from_bytes(payload.data, "big", signed=True)
            return f"{name}({_named(_NOTIFY_SHORT, payload.notify_type)}({status}))"
        return f"{name}({_named(_NOTIFY_SHORT, payload.notify_type)})"
    if isinstance(payload, EapPayload):
        return name + _describe_eap(payload.data)
    if isinstance(payload, CpPayload):
        if not payload.attributes:
            return name
        prefix = _CFG_TYPE_PREFIX.get(int(payload.cfg_type), "(")
        return name + prefix + " ".join(_named(_CFG_ATTR_SHORT, a.type) for a in payload.attributes) + ")"
    if isinstance(payload, SkfPayload):
        return f"{name}({payload.fragment_number}/{payload.total_fragments})"
    return name


def _describe_eap(data: bytes) -> str:
    if not data:
        return "/(0)"
    text = "/" + _named(_EAP_CODE_SHORT, data[0])
    if len(data) > 4 and data[4]:
        eap_type, vendor = data[4], 0
        if eap_type == 254:
            if len(data) < 12:
                return text
            vendor = int.from_bytes(data[5:8], "big")
            eap_type = int.from_bytes(data[8:12], "big")
        if vendor:
            text += f"/{eap_type}-{_named(_PEN_SHORT, vendor)}"
        elif eap_type:
            text += "/" + _named(_EAP_TYPE_SHORT, eap_type)
    return text


def describe(obj: Message | Iterable, payloads: Iterable | None = None) -> str:
    """strongSwan-style one-line summary of a message or of a payload list.

    ``describe(msg)`` gives ``IKE_AUTH request 1 [ E ]`` for a sealed message;
    ``describe(msg, inner)`` describes the decrypted ``inner`` payloads under msg's
    header (``IKE_AUTH request 1 [ IDi N(INIT_CONTACT) ... ]``), and
    ``describe(payload_list)`` gives just the bracketed part.
    """
    if isinstance(obj, Message):
        items = obj.payloads if payloads is None else payloads
        head = f"{_exchange_name(obj.exchange)} {'response' if obj.response else 'request'} {obj.message_id} "
    else:
        items, head = obj, ""
    return head + "[" + "".join(" " + _describe_payload(p) for p in items) + " ]"
