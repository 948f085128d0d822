"""IKEv2 payloads as plain data (RFC 7296 section 3).

These classes hold decoded values only: no keys, no policy.  Encoding and decoding
live in :mod:`ikegate.wire.codec`.  Every payload carries ``critical`` (the C bit as
received, or to send); the payload type of each class is its ``TYPE``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar, Union

from ikegate.wire.constants import (
    CertEncoding,
    CfgType,
    IdType,
    PayloadType,
    ProtocolId,
    TransformAttr,
    TsType,
)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass
class TransformAttribute:
    type: int
    value: int | bytes  # int for TV format (AF bit set), bytes for TLV format
    tv: bool = True


@dataclass
class Transform:
    type: int  # TransformType
    id: int
    attributes: list[TransformAttribute] = field(default_factory=list)

    @property
    def key_length(self) -> int | None:
        for attr in self.attributes:
            if attr.type == TransformAttr.KEY_LENGTH and isinstance(attr.value, int):
                return attr.value
        return None

    @classmethod
    def make(cls, type_: int, id_: int, key_length: int | None = None) -> "Transform":
        attrs = [TransformAttribute(TransformAttr.KEY_LENGTH, key_length)] if key_length else []
        return cls(int(type_), int(id_), attrs)


@dataclass
class SaProposal:
    number: int
    protocol: int  # ProtocolId
    spi: bytes = b""
    transforms: list[Transform] = field(default_factory=list)


@dataclass
class Payload:
    TYPE: ClassVar[int] = 0
    critical: bool = field(default=False, kw_only=True)

    @property
    def type(self) -> int:
        return self.TYPE


@dataclass
class SaPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.SA
    proposals: list[SaProposal] = field(default_factory=list)


@dataclass
class KePayload(Payload):
    TYPE: ClassVar[int] = PayloadType.KE
    group: int = 0
    data: bytes = b""


@dataclass
class NoncePayload(Payload):
    TYPE: ClassVar[int] = PayloadType.NONCE
    data: bytes = b""


@dataclass
class IdPayload(Payload):
    """IDi or IDr; ``responder`` selects the payload type (IDr when True)."""

    id_type: int = IdType.FQDN
    data: bytes = b""
    responder: bool = False

    @property
    def type(self) -> int:
        return PayloadType.IDr if self.responder else PayloadType.IDi


@dataclass
class CertPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.CERT
    encoding: int = CertEncoding.X509_SIGNATURE
    data: bytes = b""


@dataclass
class CertReqPayload(Payload):
    """CERTREQ; for X.509 the data is a concatenation of 20-byte SHA-1 SPKI hashes."""

    TYPE: ClassVar[int] = PayloadType.CERTREQ
    encoding: int = CertEncoding.X509_SIGNATURE
    data: bytes = b""

    @property
    def ca_hashes(self) -> list[bytes]:
        if self.encoding != CertEncoding.X509_SIGNATURE:
            return []
        return [self.data[i : i + 20] for i in range(0, len(self.data) - len(self.data) % 20, 20)]


@dataclass
class AuthPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.AUTH
    method: int = 0
    data: bytes = b""


@dataclass
class NotifyPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int = 0
    data: bytes = b""
    protocol: int = ProtocolId.NONE
    spi: bytes = b""


@dataclass
class DeletePayload(Payload):
    TYPE: ClassVar[int] = PayloadType.DELETE
    protocol: int = ProtocolId.IKE
    spi_size: int = 0
    spis: list[bytes] = field(default_factory=list)


@dataclass
class VendorIdPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.VENDOR_ID
    data: bytes = b""


@dataclass
class TrafficSelector:
    ts_type: int = TsType.IPV4_ADDR_RANGE
    ip_protocol: int = 0
    start_port: int = 0
    end_port: int = 65535
    start_addr: IPAddress | bytes = ipaddress.IPv4Address(0)
    end_addr: IPAddress | bytes = ipaddress.IPv4Address(0xFFFFFFFF)


@dataclass
class TsPayload(Payload):
    """TSi or TSr; ``responder`` selects the payload type (TSr when True)."""

    selectors: list[TrafficSelector] = field(default_factory=list)
    responder: bool = False

    @property
    def type(self) -> int:
        return PayloadType.TSr if self.responder else PayloadType.TSi


@dataclass
class CpAttribute:
    type: int
    value: bytes = b""


@dataclass
class CpPayload(Payload):
    TYPE: ClassVar[int] = PayloadType.CP
    cfg_type: int = CfgType.CFG_REQUEST
    attributes: list[CpAttribute] = field(default_factory=list)


@dataclass
class EapPayload(Payload):
    """The whole EAP packet (code, identifier, length, type, data) as bytes."""

    TYPE: ClassVar[int] = PayloadType.EAP
    data: bytes = b""


@dataclass
class SkPayload(Payload):
    """Encrypted and Authenticated payload, still sealed: IV | ciphertext | ICV."""

    TYPE: ClassVar[int] = PayloadType.SK
    first_inner: int = PayloadType.NONE  # the "next payload" field of the SK header
    body: bytes = b""


@dataclass
class SkfPayload(Payload):
    """Encrypted Fragment (RFC 7383 2.5), still sealed."""

    TYPE: ClassVar[int] = PayloadType.SKF
    first_inner: int = PayloadType.NONE  # non-zero only in fragment 1
    fragment_number: int = 1
    total_fragments: int = 1
    body: bytes = b""


@dataclass
class UnknownPayload(Payload):
    """A payload type we do not implement; kept so a message re-encodes unchanged."""

    payload_type: int = 0
    data: bytes = b""

    @property
    def type(self) -> int:
        return self.payload_type


AnyPayload = Union[
    SaPayload,
    KePayload,
    NoncePayload,
    IdPayload,
    CertPayload,
    CertReqPayload,
    AuthPayload,
    NotifyPayload,
    DeletePayload,
    VendorIdPayload,
    TsPayload,
    CpPayload,
    EapPayload,
    SkPayload,
    SkfPayload,
    UnknownPayload,
]
