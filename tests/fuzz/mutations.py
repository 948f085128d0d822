"""Deterministic mutations driven by fuzz bytes.

A fuzzer (atheris, or hypothesis drawing ``bytes``) hands over one byte string; the
:class:`Reader` turns it into the choices a mutation needs, and keeps returning zeros
once the bytes run out, so every input means something and the same input always means
the same mutation (a crash reproduces from its input file).

Two kinds of mutation:

* :func:`edit_bytes`: byte-level edits (xor, set, insert, delete, truncate) of an encoded
  chain: reaches the decoder's length and count checks;
* :func:`mutate_payloads`: structure-aware edits of decoded payload objects (drop,
  duplicate, move, change a field, add a notify, an unknown or an out-of-place payload):
  the result still encodes, so it gets past the decoder into the engine's own checks.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress

from ikegate.wire.constants import CfgAttr, NotifyType, ProtocolId
from ikegate.wire.payloads import (
    AuthPayload,
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
    TrafficSelector,
    Transform,
    TsPayload,
    UnknownPayload,
    VendorIdPayload,
)

__all__ = ["Reader", "edit_bytes", "mutate_payloads", "mutate_value"]


class Reader:
    """A cursor over fuzz bytes; reads past the end give zeros / empty bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    @property
    def left(self) -> int:
        return max(0, len(self.data) - self.pos)

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        chunk = self.take(1)
        return chunk[0] if chunk else 0

    def u16(self) -> int:
        return int.from_bytes(self.take(2).ljust(2, b"\0"), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4).ljust(4, b"\0"), "big")

    def below(self, n: int) -> int:
        """A choice in ``range(n)`` (``n`` >= 1)."""
        return (self.u16() if n > 256 else self.u8()) % n

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def edit_bytes(data: bytes, reader: Reader, *, max_edits: int = 8) -> bytes:
    """Up to ``max_edits`` byte edits of ``data``, chosen by ``reader``."""
    out = bytearray(data)
    for _ in range(1 + reader.u8() % max_edits):
        if reader.left == 0:
            break
        op = reader.u8() % 6
        pos = reader.u16() % (len(out) + 1)
        value = reader.u8()
        if op == 0 and pos < len(out):
            out[pos] ^= value or 0x80
        elif op == 1 and pos < len(out):
            out[pos] = value
        elif op == 2:
            out[pos:pos] = bytes((value,)) * (1 + reader.u8() % 8)
        elif op == 3:
            del out[pos : pos + 1 + value % 16]
        elif op == 4:
            del out[pos:]
        elif op == 5 and pos + 2 <= len(out):  # a 16-bit field (lengths, counts, types)
            out[pos : pos + 2] = _INTERESTING_16[value % len(_INTERESTING_16)].to_bytes(2, "big")
    return bytes(out)


_INTERESTING_16 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
_INTERESTING_INT = (0, 1, 2, 3, 4, 8, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0xFFFFFFFF)

#: Notify types worth inserting (the engine looks for these), plus raw numbers.
_NOTIFIES = tuple(NotifyType)

#: Payloads to insert where they do not belong (or a second time).
_TEMPLATES = (
    SaPayload(proposals=[SaProposal(1, ProtocolId.ESP, b"\1\2\3\4", [Transform(1, 12, [])])]),
    SaPayload(proposals=[SaProposal(1, ProtocolId.IKE, b"", [Transform(1, 12, []), Transform(4, 2, [])])]),
    KePayload(group=2, data=bytes(128)),
    NoncePayload(data=bytes(32)),
    IdPayload(id_type=2, data=b"x"),
    IdPayload(id_type=1, data=bytes(4), responder=True),
    AuthPayload(method=2, data=bytes(20)),
    CertReqPayload(data=bytes(20)),
    DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=[b"\0\0\1\0"]),
    DeletePayload(protocol=ProtocolId.IKE),
    VendorIdPayload(data=b"fuzz"),
    TsPayload(selectors=[TrafficSelector()]),
    TsPayload(selectors=[TrafficSelector()], responder=True),
    CpPayload(cfg_type=1, attributes=[CpAttribute(CfgAttr.INTERNAL_IP4_ADDRESS)]),
    CpPayload(cfg_type=2, attributes=[CpAttribute(CfgAttr.INTERNAL_IP4_ADDRESS, bytes(4))]),
    EapPayload(data=bytes((2, 1, 0, 5, 1))),
    EapPayload(data=bytes((2, 1, 0, 4))),
)


def mutate_payloads(payloads: list, reader: Reader, *, max_ops: int = 4) -> list:
    """A mutated deep copy of a payload list (up to ``max_ops`` operations)."""
    out = copy.deepcopy(list(payloads))
    for _ in range(1 + reader.u8() % max_ops):
        op = reader.u8() % 8
        index = reader.below(len(out)) if out else 0
        if op == 0 and out:
            del out[index]
        elif op == 1 and out:
            out.insert(reader.below(len(out) + 1), copy.deepcopy(out[index]))
        elif op == 2 and out:
            out.insert(reader.below(len(out)), out.pop(index))
        elif op in (3, 4) and out:
            out[index] = mutate_value(out[index], reader)
        elif op == 5:
            notify_type = _NOTIFIES[reader.below(len(_NOTIFIES))] if reader.u8() & 1 else reader.u16()
            spi = reader.take(reader.u8() % 9)
            out.insert(reader.below(len(out) + 1), NotifyPayload(
                notify_type=notify_type, protocol=reader.u8() % 5, spi=spi, data=reader.take(reader.u8() % 40)))
        elif op == 6:
            ptype = reader.u8()
            out.insert(reader.below(len(out) + 1), UnknownPayload(
                payload_type=ptype, data=reader.take(reader.u8() % 16), critical=bool(reader.u8() & 1)))
        elif op == 7:
            template = copy.deepcopy(_TEMPLATES[reader.below(len(_TEMPLATES))])
            out.insert(reader.below(len(out) + 1), template)
    return out


def mutate_value(value, reader: Reader, depth: int = 0):
    """A changed version of ``value`` (a payload, a field of one, or a list of them)."""
    if depth > 6:
        return value
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        choice = reader.u8() % 5
        if choice == 0:
            return _INTERESTING_INT[reader.below(len(_INTERESTING_INT))]
        if choice == 1:
            return value + 1
        if choice == 2:
            return max(0, value - 1)
        if choice == 3:
            return reader.u8()
        return reader.u16()
    if isinstance(value, (bytes, bytearray)):
        choice = reader.u8() % 5
        if choice == 0:
            return b""
        if choice == 1:
            return bytes(value[: reader.below(len(value) + 1)])
        if choice == 2:
            return bytes(value) + reader.take(1 + reader.u8() % 64)
        if choice == 3:
            return edit_bytes(bytes(value), reader, max_edits=3)
        return reader.take(reader.u8())
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        choice = reader.u8() % 6
        if choice == 0:
            return ipaddress.IPv6Address(reader.take(16).ljust(16, b"\0"))
        if choice == 1:
            return ipaddress.IPv4Address(reader.take(4).ljust(4, b"\0"))
        top = (1 << value.max_prefixlen) - 1
        number = (int(value) + 1, int(value) - 1, 0, top)[choice - 2] & top  # neighbours and ends
        return type(value)(number)
    if isinstance(value, TrafficSelector) and reader.u8() % 4 == 0:
        # ranges turned around (end below start), or one wide: what narrowing must refuse
        choice = reader.u8() % 3
        if choice == 0:
            value.start_addr, value.end_addr = value.end_addr, value.start_addr
        elif choice == 1:
            value.start_port, value.end_port = value.end_port, value.start_port
        elif isinstance(value.start_addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            top = (1 << value.start_addr.max_prefixlen) - 1
            value.end_addr = type(value.start_addr)((int(value.start_addr) - 1) & top)
        return value
    if isinstance(value, list):
        items = list(value)
        choice = reader.u8() % 5
        if choice == 0 or not items:
            return [] if items else items
        index = reader.below(len(items))
        if choice == 1:
            del items[index]
        elif choice == 2:
            items.insert(index, copy.deepcopy(items[index]))
        else:
            items[index] = mutate_value(items[index], reader, depth + 1)
        return items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        if not names:
            return value
        name = names[reader.below(len(names))]
        setattr(value, name, mutate_value(getattr(value, name), reader, depth + 1))
        return value
    return value
