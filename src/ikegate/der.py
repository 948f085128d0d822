"""A minimal DER (X.690) reader and writer for the few ASN.1 structures ikegate handles itself.

``cryptography`` parses and builds certificates, but three things need raw DER: the
RFC 7427 AlgorithmIdentifier of a signature AUTH payload (pki.signature), distinguished
names compared attribute by attribute as strongSwan does (pki.store, identity) and DNs
written from ipsec.conf text that ``x509.Name`` refuses (identity).  They share this
module so the length and OID rules are written once.

Only what those callers need: single-byte tags (no high-tag-number form), definite
lengths, OBJECT IDENTIFIERs and non-negative INTEGERs.  The reader checks structure, not
canonical form (a non-minimal length is accepted), like the readers it replaced.  Every
malformed input raises :class:`DerError`, a ``ValueError``.
"""

from __future__ import annotations

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
SET = 0x31


class DerError(ValueError):
    """Malformed DER: truncated, a bad length field or a bad OBJECT IDENTIFIER."""


# --------------------------------------------------------------------------
# Writing


def encode_tlv(tag: int, content: bytes) -> bytes:
    """``tag`` (one byte), the definite length of ``content`` in its shortest form, ``content``."""
    length = len(content)
    if length < 0x80:
        header = bytes([length])
    else:
        raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + header + content


def encode_oid(dotted: str) -> bytes:
    """The OBJECT IDENTIFIER TLV of a dotted string such as ``"2.5.4.3"`` (two arcs at least)."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in (40 * arcs[0] + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return encode_tlv(OBJECT_IDENTIFIER, bytes(body))


def encode_integer(value: int) -> bytes:
    """The INTEGER TLV of a non-negative ``value`` (a leading zero octet where the top bit is set)."""
    return encode_tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# --------------------------------------------------------------------------
# Reading


def read_tlvs(data: bytes, max_length_octets: int = 4) -> list[tuple[int, bytes]]:
    """Split a run of DER TLVs into ``(tag, value)`` pairs, in order.

    A long-form length may take 1 to ``max_length_octets`` octets.  Raises
    :class:`DerError` if a TLV is truncated or its length field is empty or too long.
    """
    items: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise DerError("truncated DER")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > max_length_octets or len(data) - pos < count:
                raise DerError("bad DER length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if len(data) - pos < length:
            raise DerError("truncated DER")
        items.append((tag, data[pos : pos + length]))
        pos += length
    return items


def decode_oid(body: bytes) -> str:
    """The dotted string of an OBJECT IDENTIFIER's contents octets (without tag and length).

    Raises :class:`DerError` if ``body`` is empty or ends inside an arc.
    """
    if not body or body[-1] & 0x80:
        raise DerError("bad OID")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))
