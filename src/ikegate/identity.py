"""IKE identities as strongSwan parses, prints, compares and matches them.

An :class:`Identity` is an ID type and its encoding, exactly what an IDi/IDr payload
carries.  The text rules are those of strongSwan 5.9.8's
``identification_create_from_string`` (src/libstrongswan/utils/identification.c),
which ipsec.conf (``leftid``, ``rightid``, ``eap_identity``...) and ipsec.secrets
selectors use:

* ``%any``, ``%any6``, ``*``, ``0.0.0.0``, ``::``, ``0::0`` and the empty string are
  ID_ANY (here ``id_type=0, data=b""``);
* a type prefix forces the type: ``ipv4:``, ``ipv6:``, ``ipv4net:``, ``ipv6net:``,
  ``ipv4range:``, ``ipv6range:``, ``rfc822:``/``email:``/``userfqdn:``, ``fqdn:``/``dns:``,
  ``asn1dn:``, ``asn1gn:``, ``keyid:`` (``prefix:#hex`` gives the raw bytes), or
  ``{N}:`` for a numeric type;
* text containing ``=`` is an X.501 distinguished name (``C=CH, O=org, CN=host`` or
  ``/C=CH/O=org/CN=host``) encoded as DER; an unknown attribute keyword makes it a
  KEY_ID holding the text, as in strongSwan;
* text with ``@``: ``@fqdn`` is ID_FQDN (without the ``@``), ``@#hex`` a KEY_ID,
  ``@@user`` an RFC822 name, anything else with ``@`` an RFC822 address;
* otherwise an IPv4 address/subnet/range, else ID_FQDN (``alice`` is an FQDN id),
  and text with ``:`` is an IPv6 address/subnet/range or else a KEY_ID.

Matching (:meth:`Identity.matches`) returns strongSwan's ``id_match_t`` levels: 0 no
match, 1 matched by ``%any``, 2..19 with wildcards (fewer is better), 20 perfect.
FQDN/RFC822 ids compare case-insensitively and a pattern may start with ``*``
(``*@example.org``, ``*.example.org``); DN patterns may use ``*`` as an RDN value;
IP ids match subnets and ranges.

Two deliberate differences from 5.9.8, because its behaviour can never be useful:
``ipv4:``/``ipv6:``/``asn1dn:`` followed by text (not ``#hex``) are parsed as an address
or DN here, where strongSwan stores the raw text as the encoding, which never matches
anything.  DNs are encoded by a small DER writer of our own rather than
``cryptography.x509.Name``, which refuses what strongSwan accepts and needs (``C=*``
wildcards, country names that are not two letters).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from ikegate.der import (
    BIT_STRING,
    OBJECT_IDENTIFIER,
    SEQUENCE,
    SET,
    DerError,
    decode_oid,
    encode_oid,
    encode_tlv,
    read_tlvs,
)

# strongSwan's id_type_t (identification.h).  1, 2, 3, 5, 9, 10, 11 are the IKEv2 ID
# types of the wire (ikegate.wire.constants.IdType); the others are private.
ID_ANY = 0
ID_IPV4_ADDR = 1
ID_FQDN = 2
ID_RFC822_ADDR = 3
ID_IPV4_ADDR_SUBNET = 4
ID_IPV6_ADDR = 5
ID_IPV6_ADDR_SUBNET = 6
ID_IPV4_ADDR_RANGE = 7
ID_IPV6_ADDR_RANGE = 8
ID_DER_ASN1_DN = 9
ID_DER_ASN1_GN = 10
ID_KEY_ID = 11
ID_DER_ASN1_GN_URI = 201

ID_TYPE_NAMES = {
    ID_ANY: "ID_ANY",
    ID_IPV4_ADDR: "ID_IPV4_ADDR",
    ID_FQDN: "ID_FQDN",
    ID_RFC822_ADDR: "ID_RFC822_ADDR",
    ID_IPV4_ADDR_SUBNET: "ID_IPV4_ADDR_SUBNET",
    ID_IPV6_ADDR: "ID_IPV6_ADDR",
    ID_IPV6_ADDR_SUBNET: "ID_IPV6_ADDR_SUBNET",
    ID_IPV4_ADDR_RANGE: "ID_IPV4_ADDR_RANGE",
    ID_IPV6_ADDR_RANGE: "ID_IPV6_ADDR_RANGE",
    ID_DER_ASN1_DN: "ID_DER_ASN1_DN",
    ID_DER_ASN1_GN: "ID_DER_ASN1_GN",
    ID_KEY_ID: "ID_KEY_ID",
    ID_DER_ASN1_GN_URI: "ID_DER_ASN1_GN_URI",
}

# id_match_t (identification.h)
MATCH_NONE = 0
MATCH_ANY = 1
MATCH_MAX_WILDCARDS = 2
MATCH_ONE_WILDCARD = 19
MATCH_PERFECT = 20

# ASN.1 string types used in DN values
_UTF8STRING = 0x0C
_PRINTABLESTRING = 0x13
_IA5STRING = 0x16

# x501rdns[] of identification.c: keyword, OID, preferred string type.  Keywords
# are matched case-insensitively; PrintableString falls back to UTF8String when the
# value has characters outside the PrintableString set.
_X501_RDNS: tuple[tuple[str, str, int], ...] = (
    ("ND", "0.2.262.1.10.7.20", _PRINTABLESTRING),
    ("UID", "0.9.2342.19200300.100.1.1", _PRINTABLESTRING),
    ("DC", "0.9.2342.19200300.100.1.25", _PRINTABLESTRING),
    ("CN", "2.5.4.3", _PRINTABLESTRING),
    ("SN", "2.5.4.4", _PRINTABLESTRING),
    ("serialNumber", "2.5.4.5", _PRINTABLESTRING),
    ("C", "2.5.4.6", _PRINTABLESTRING),
    ("L", "2.5.4.7", _PRINTABLESTRING),
    ("ST", "2.5.4.8", _PRINTABLESTRING),
    ("STREET", "2.5.4.9", _PRINTABLESTRING),
    ("O", "2.5.4.10", _PRINTABLESTRING),
    ("OU", "2.5.4.11", _PRINTABLESTRING),
    ("T", "2.5.4.12", _PRINTABLESTRING),
    ("D", "2.5.4.13", _PRINTABLESTRING),
    ("postalAddress", "2.5.4.16", _PRINTABLESTRING),
    ("postalCode", "2.5.4.17", _PRINTABLESTRING),
    ("N", "2.5.4.41", _PRINTABLESTRING),
    ("G", "2.5.4.42", _PRINTABLESTRING),
    ("I", "2.5.4.43", _PRINTABLESTRING),
    ("dnQualifier", "2.5.4.46", _PRINTABLESTRING),
    ("dmdName", "2.5.4.54", _PRINTABLESTRING),
    ("pseudonym", "2.5.4.65", _PRINTABLESTRING),
    ("ID", "2.5.4.45", _PRINTABLESTRING),
    ("EN", "2.16.840.1.113730.3.1.3", _PRINTABLESTRING),
    ("employeeNumber", "2.16.840.1.113730.3.1.3", _PRINTABLESTRING),
    ("E", "1.2.840.113549.1.9.1", _IA5STRING),
    ("Email", "1.2.840.113549.1.9.1", _IA5STRING),
    ("emailAddress", "1.2.840.113549.1.9.1", _IA5STRING),
    ("UN", "1.2.840.113549.1.9.2", _IA5STRING),
    ("unstructuredName", "1.2.840.113549.1.9.2", _IA5STRING),
    ("UA", "1.2.840.113549.1.9.8", _PRINTABLESTRING),
    ("unstructuredAddress", "1.2.840.113549.1.9.8", _PRINTABLESTRING),
    ("TCGID", "1.3.6.1.4.1.1201.1.1.2.2.75", _PRINTABLESTRING),
)
_X501_BY_KEYWORD = {name.lower(): (oid, tag) for name, oid, tag in _X501_RDNS}

# How strongSwan prints RDN types (names of src/libstrongswan/asn1/oid.txt).
_OID_PRINT_NAMES = {
    "0.2.262.1.10.7.20": "ND",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "T",
    "2.5.4.13": "D",
    "2.5.4.16": "postalAddress",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "N",
    "2.5.4.42": "G",
    "2.5.4.43": "I",
    "2.5.4.45": "ID",
    "2.5.4.46": "dnQualifier",
    "2.5.4.54": "dmdName",
    "2.5.4.65": "pseudonym",
    "2.5.4.72": "role",
    "1.2.840.113549.1.9.1": "E",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.8": "unstructuredAddress",
    "1.3.6.1.4.1.1201.1.1.2.2.75": "TCGID",
    "2.16.840.1.113730.3.1.3": "employeeNumber",
}
_EMAIL_OID = "1.2.840.113549.1.9.1"
_PRINTABLE_CHARSET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)
_RDN_MAX = 20

# create_from_string_with_prefix_type(): prefix -> type
_TYPE_PREFIXES: tuple[tuple[str, int], ...] = (
    ("ipv4:", ID_IPV4_ADDR),
    ("ipv6:", ID_IPV6_ADDR),
    ("ipv4net:", ID_IPV4_ADDR_SUBNET),
    ("ipv6net:", ID_IPV6_ADDR_SUBNET),
    ("ipv4range:", ID_IPV4_ADDR_RANGE),
    ("ipv6range:", ID_IPV6_ADDR_RANGE),
    ("rfc822:", ID_RFC822_ADDR),
    ("email:", ID_RFC822_ADDR),
    ("userfqdn:", ID_RFC822_ADDR),
    ("fqdn:", ID_FQDN),
    ("dns:", ID_FQDN),
    ("asn1dn:", ID_DER_ASN1_DN),
    ("asn1gn:", ID_DER_ASN1_GN),
    ("keyid:", ID_KEY_ID),
)
_ANY_STRINGS = frozenset({"", "%any", "%any6", "0.0.0.0", "*", "::", "0::0"})


# ---------------------------------------------------------------------------------
# Distinguished names in DER


def _oid_text(body: bytes) -> str | None:
    """The dotted form of an OID's contents octets, or None if they are malformed."""
    try:
        return decode_oid(body)
    except DerError:
        return None


def dn_rdns(der: bytes) -> list[tuple[bytes, int, bytes]] | None:
    """The attributes of a DER DN in order as (OID body, string tag, value), or None
    if the DER is not a well-formed Name (strongSwan's ``is_valid_dn``)."""
    rdns: list[tuple[bytes, int, bytes]] = []
    try:
        outer = read_tlvs(der)
        if len(outer) != 1 or outer[0][0] != SEQUENCE:
            return None
        for set_tag, set_body in read_tlvs(outer[0][1]):
            seqs = read_tlvs(set_body)
            if set_tag != SET or not seqs:
                return None
            for seq_tag, seq_body in seqs:
                parts = read_tlvs(seq_body)
                if seq_tag != SEQUENCE or len(parts) != 2 or parts[0][0] != OBJECT_IDENTIFIER:
                    return None
                rdns.append((parts[0][1], parts[1][0], parts[1][1]))
    except DerError:
        return None
    return rdns


def _is_printable_string(value: bytes) -> bool:
    return all(b in _PRINTABLE_CHARSET for b in value)


def _printable(data: bytes) -> str:
    """chunk_printable(): every byte that is not isprint() in the C locale becomes '?'."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in data)


def _atodn(text: str) -> bytes | None:
    """strongSwan's atodn(): LDAP-style text to DER, or None if not a usable DN.

    A small state machine: the separator is ',' unless the text starts with '/';
    keywords are looked up case-insensitively; blanks around keywords are skipped
    and trailing blanks of values are dropped; any number of '=' may follow a
    keyword; an empty value is allowed.
    """
    src = text.encode("utf-8")
    sep: int | None = None
    state = "search_oid"
    oid_start = oid_len = 0
    name_start = name_len = whitespace = 0
    entry: tuple[str, int] | None = None
    rdns: list[bytes] = []
    ok = True
    for i in range(len(src) + 1):
        c = src[i] if i < len(src) else 0
        if state == "search_oid":
            if sep is None and c == ord("/"):
                sep = ord("/")
                continue
            if c not in (ord(" "), 0):
                if sep is None:
                    sep = ord(",")
                oid_start, oid_len = i, 1
                state = "read_oid"
        elif state == "read_oid":
            if c not in (ord(" "), ord("=")):
                oid_len += 1
            else:
                keyword = src[oid_start : oid_start + oid_len].decode("utf-8", "replace")
                entry = _X501_BY_KEYWORD.get(keyword.lower())
                if entry is None:
                    ok = False
                    state = "unknown_oid"
                else:
                    state = "search_name"
        elif state in ("search_name", "read_name"):
            if state == "search_name":
                if c in (ord(" "), ord("=")):
                    continue
                if c != sep and c != 0:
                    name_start, name_len, whitespace = i, 1, 0
                    state = "read_name"
                    continue
                name_start, name_len, whitespace = i, 0, 0
                state = "read_name"
            if c != sep and c != 0:
                name_len += 1
                whitespace = whitespace + 1 if c == ord(" ") else 0
            else:
                value = src[name_start : name_start + name_len - whitespace]
                oid, tag = entry if entry is not None else ("", 0)  # set in read_oid
                if tag == _PRINTABLESTRING and not _is_printable_string(value):
                    tag = _UTF8STRING
                if len(rdns) >= _RDN_MAX:
                    ok = False
                else:
                    rdns.append(encode_tlv(SET, encode_tlv(SEQUENCE, encode_oid(oid) + encode_tlv(tag, value))))
                state = "search_oid"
    if state == "read_oid":
        ok = False
    if not ok:
        return None
    return encode_tlv(SEQUENCE, b"".join(rdns))


def _dn_to_text(der: bytes) -> str:
    """dntoa(): 'C=CH, O=strongSwan, CN=moon'; unknown OIDs as colon-separated hex."""
    rdns = dn_rdns(der)
    if rdns is None:
        return "(invalid ID_DER_ASN1_DN)"
    parts = []
    for oid_body, _tag, value in rdns:
        dotted = _oid_text(oid_body)
        name = _OID_PRINT_NAMES.get(dotted or "")
        if name is None:
            name = ":".join(f"{b:02x}" for b in oid_body)
        parts.append(f"{name}={_printable(value)}")
    return ", ".join(parts)


def _rdn_equals(oid: bytes, a_tag: int, a: bytes, b_tag: int, b: bytes) -> bool:
    """rdn_equals(): PrintableString and IA5 emailAddress values ignore case."""
    if a_tag == b_tag and (
        a_tag == _PRINTABLESTRING or (a_tag == _IA5STRING and _oid_text(oid) == _EMAIL_OID)
    ):
        return a.lower() == b.lower()
    return a == b


def _compare_dn(concrete: bytes, pattern: bytes, wildcards: bool) -> tuple[bool, int]:
    """compare_dn(): same RDNs in the same order; with ``wildcards`` a '*' value in
    ``pattern`` matches any value.  Returns (match, number of wildcards used)."""
    if concrete == pattern:
        return True, 0
    if not wildcards and len(concrete) != len(pattern):
        return False, 0
    t_rdns, o_rdns = dn_rdns(concrete), dn_rdns(pattern)
    if t_rdns is None or o_rdns is None or len(t_rdns) != len(o_rdns):
        return False, 0
    count = 0
    for (t_oid, t_tag, t_val), (o_oid, o_tag, o_val) in zip(t_rdns, o_rdns):
        if t_oid != o_oid:
            return False, 0
        if wildcards and o_val == b"*":
            count += 1
            continue
        if len(t_val) != len(o_val) or not _rdn_equals(t_oid, t_tag, t_val, o_tag, o_val):
            return False, 0
    return True, count


# ---------------------------------------------------------------------------------
# IP addresses, subnets and ranges


def _ip_from_string(text: str, v4: bool) -> tuple[int, bytes] | None:
    """create_ip_address_from_string(): address, 'addr/bits' or 'from-to'."""
    family = ipaddress.IPv4Address if v4 else ipaddress.IPv6Address
    size = 4 if v4 else 16
    if "%" in text:  # inet_pton() knows no IPv6 scope ids
        return None
    try:
        if "/" in text:
            addr_text, bits_text = text.split("/", 1)
            address = family(addr_text).packed
            bits = _atoi(bits_text)
            if bits > 8 * size:
                return None
            bits = max(bits, 0)
            mask = ((1 << (8 * size)) - 1) ^ ((1 << (8 * size - bits)) - 1)
            mask_bytes = mask.to_bytes(size, "big")
            network = bytes(a & m for a, m in zip(address, mask_bytes))
            return (ID_IPV4_ADDR_SUBNET if v4 else ID_IPV6_ADDR_SUBNET), network + mask_bytes
        if "-" in text:
            low_text, high_text = text.split("-", 1)
            low, high = family(low_text).packed, family(high_text).packed
            if low > high:
                return None
            return (ID_IPV4_ADDR_RANGE if v4 else ID_IPV6_ADDR_RANGE), low + high
        return (ID_IPV4_ADDR if v4 else ID_IPV6_ADDR), family(text).packed
    except ValueError:
        return None


def _atoi(text: str) -> int:
    """C atoi(): leading blanks, optional sign, digits; 0 if there are none."""
    text = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def _hex_bytes(text: str) -> bytes:
    """chunk_from_hex(): optional 0x, ':' separators ignored, odd length padded with a
    leading zero.  Unlike strongSwan (which reads junk as 0) invalid digits raise
    ValueError."""
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    text = text.replace(":", "")
    if len(text) % 2:
        text = "0" + text
    return bytes.fromhex(text)


def _netmask_bits(mask: bytes) -> int:
    bits = 0
    for byte in mask:
        if byte == 0:
            break
        if byte == 0xFF:
            bits += 8
            continue
        while byte & 0x80:
            bits += 1
            byte = (byte << 1) & 0xFF
    return bits


# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An IKE identity: ``id_type`` (IdType / strongSwan id_type_t) and its encoding.

    Instances compare (``==``, ``hash``) by exact type and bytes; use :meth:`key` for
    dictionary keys that follow strongSwan's equality (case-insensitive FQDN/RFC822,
    attribute-wise DNs) and :meth:`matches` for policy decisions.
    """

    id_type: int
    data: bytes = b""

    ANY: ClassVar["Identity"]

    # -- construction --------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | None) -> "Identity":
        """An identity from configuration text, per identification_create_from_string.

        Never fails: text that fits no other rule becomes an FQDN or KEY_ID, exactly
        as strongSwan does.  Raises ValueError only for a ``#hex`` part that is not
        hexadecimal.
        """
        if text is None:
            return cls.ANY
        lowered = text.lower()
        for prefix, id_type in _TYPE_PREFIXES:
            if lowered.startswith(prefix):
                return cls._from_prefixed(id_type, text[len(prefix) :])
        numeric = cls._from_numeric_prefix(text)
        if numeric is not None:
            return numeric
        if "=" in text:
            der = _atodn(text)
            if der is not None:
                return cls(ID_DER_ASN1_DN, der)
            return cls(ID_KEY_ID, text.encode("utf-8"))
        if "@" not in text:
            if text in _ANY_STRINGS:
                return cls.ANY
            if ":" not in text:
                parsed = _ip_from_string(text, v4=True)
                if parsed is None:
                    return cls(ID_FQDN, text.encode("utf-8"))
                return cls(*parsed)
            parsed = _ip_from_string(text, v4=False)
            if parsed is None:
                return cls(ID_KEY_ID, text.encode("utf-8"))
            return cls(*parsed)
        if text.startswith("@#"):
            return cls(ID_KEY_ID, _hex_bytes(text[2:]))
        if text.startswith("@@"):
            return cls(ID_RFC822_ADDR, text[2:].encode("utf-8"))
        if text.startswith("@"):
            return cls(ID_FQDN, text[1:].encode("utf-8"))
        return cls(ID_RFC822_ADDR, text.encode("utf-8"))

    @classmethod
    def _from_prefixed(cls, id_type: int, rest: str) -> "Identity":
        if rest.startswith("#"):
            return cls(id_type, _hex_bytes(rest[1:]))
        if id_type in (ID_IPV4_ADDR, ID_IPV6_ADDR):
            parsed = _ip_from_string(rest, v4=id_type == ID_IPV4_ADDR)
            if parsed is not None and parsed[0] == id_type:
                return cls(*parsed)
        elif id_type == ID_DER_ASN1_DN:
            der = _atodn(rest)
            if der is not None:
                return cls(ID_DER_ASN1_DN, der)
        return cls(id_type, rest.encode("utf-8"))

    @classmethod
    def _from_numeric_prefix(cls, text: str) -> "Identity | None":
        """The ``{N}:value`` form (numeric identity type)."""
        if not text.startswith("{"):
            return None
        close = text.find("}:")
        if close < 2:
            return None
        number = text[1:close]
        try:
            id_type = int(number, 0)
        except ValueError:
            return None
        rest = text[close + 2 :]
        if rest.startswith("#"):
            return cls(id_type, _hex_bytes(rest[1:]))
        return cls(id_type, rest.encode("utf-8"))

    @classmethod
    def from_wire(cls, id_type: int, data: bytes) -> "Identity":
        """The identity of an ID payload (type and data as received)."""
        return cls(int(id_type), bytes(data))

    @classmethod
    def from_dn_der(cls, der: bytes) -> "Identity":
        """A DER_ASN1_DN identity, e.g. from ``cert.subject.public_bytes()``."""
        return cls(ID_DER_ASN1_DN, bytes(der))

    def to_wire(self) -> tuple[int, bytes]:
        """(ID type, ID data) for an ID payload.  ID_ANY yields (0, b''), which is not
        a valid payload type: the caller must not send it."""
        return self.id_type, self.data

    # -- properties ------------------------------------------------------------------

    @property
    def is_any(self) -> bool:
        return self.id_type == ID_ANY

    @property
    def type_name(self) -> str:
        return ID_TYPE_NAMES.get(self.id_type, f"ID_{self.id_type}")

    @property
    def contains_wildcards(self) -> bool:
        """strongSwan's contains_wildcards(): ANY; '*' anywhere in an FQDN/RFC822; a
        '*' RDN value in a DN."""
        if self.id_type == ID_ANY:
            return True
        if self.id_type in (ID_FQDN, ID_RFC822_ADDR):
            return b"*" in self.data
        if self.id_type == ID_DER_ASN1_DN:
            return any(value == b"*" for _o, _t, value in dn_rdns(self.data) or ())
        return False

    # -- text ------------------------------------------------------------------------

    def __str__(self) -> str:
        """As strongSwan's %Y prints it (computed once: identities are immutable and
        printed or compared as text on every lookup)."""
        text = self.__dict__.get("_text")
        if text is None:
            text = self._format()
            object.__setattr__(self, "_text", text)
        return text

    def _format(self) -> str:
        t, data = self.id_type, self.data
        if t == ID_ANY:
            return "%any"
        if t in (ID_IPV4_ADDR, ID_IPV6_ADDR):
            size = 4 if t == ID_IPV4_ADDR else 16
            if len(data) < size:
                return f"(invalid {self.type_name})"
            return str(ipaddress.ip_address(data[:size]))
        if t in (ID_IPV4_ADDR_SUBNET, ID_IPV6_ADDR_SUBNET):
            size = 4 if t == ID_IPV4_ADDR_SUBNET else 16
            if len(data) < 2 * size:
                return f"(invalid {self.type_name})"
            return f"{ipaddress.ip_address(data[:size])}/{_netmask_bits(data[size:2 * size])}"
        if t in (ID_IPV4_ADDR_RANGE, ID_IPV6_ADDR_RANGE):
            size = 4 if t == ID_IPV4_ADDR_RANGE else 16
            if len(data) < 2 * size:
                return f"(invalid {self.type_name})"
            return f"{ipaddress.ip_address(data[:size])}-{ipaddress.ip_address(data[size:2 * size])}"
        if t in (ID_FQDN, ID_RFC822_ADDR, ID_DER_ASN1_GN_URI):
            return _printable(data)
        if t == ID_DER_ASN1_DN:
            return _dn_to_text(data)
        if t == ID_DER_ASN1_GN:
            return "(ASN.1 general name)"
        if t == ID_KEY_ID:
            if all(0x20 <= b < 0x7F for b in data) and len(data) != 20:
                return data.decode("ascii")
            return ":".join(f"{b:02x}" for b in data)
        return f"(unknown ID type: {t})"

    def __repr__(self) -> str:
        return f"Identity({self.type_name}, {str(self)!r})"

    # -- comparison ------------------------------------------------------------------

    def key(self) -> tuple:
        """A normalised hashable form: equal keys for ids strongSwan considers equal
        (FQDN/RFC822 case-insensitive, DNs attribute-wise with PrintableString and
        emailAddress values case-insensitive)."""
        if self.id_type == ID_ANY:
            return (ID_ANY, b"")
        if self.id_type in (ID_FQDN, ID_RFC822_ADDR):
            return (self.id_type, self.data.lower())
        if self.id_type == ID_DER_ASN1_DN:
            rdns = dn_rdns(self.data)
            if rdns is None:
                return (self.id_type, self.data)
            normal = []
            for oid, tag, value in rdns:
                caseless = tag == _PRINTABLESTRING or (tag == _IA5STRING and _oid_text(oid) == _EMAIL_OID)
                normal.append((oid, value.lower() if caseless else value))
            return (self.id_type, tuple(normal))
        return (self.id_type, self.data)

    def equals(self, other: "Identity") -> bool:
        """strongSwan's equals(): type-specific equality (no wildcards)."""
        if self.id_type != other.id_type:
            return False
        if self.id_type == ID_ANY:
            return True
        if self.id_type in (ID_FQDN, ID_RFC822_ADDR):
            return (
                len(self.data) == len(other.data)
                and b"\0" not in self.data
                and b"\0" not in other.data
                and self.data.lower() == other.data.lower()
            )
        if self.id_type == ID_DER_ASN1_DN:
            return _compare_dn(self.data, other.data, wildcards=False)[0]
        return self.data == other.data

    def matches(self, other: "Identity") -> int:
        """How well this (concrete) identity matches ``other`` (a pattern).

        strongSwan's ``this->matches(this, other)``: MATCH_ANY (1) if ``other`` is
        %any, MATCH_PERFECT (20) for equality, 19..2 for wildcard matches (a DN with
        n '*' RDN values gives 20 - n, at least 3), MATCH_NONE (0) otherwise.
        """
        if other.id_type == ID_ANY:
            return MATCH_ANY
        t = self.id_type
        if t == ID_ANY:
            return MATCH_NONE
        if t in (ID_FQDN, ID_RFC822_ADDR):
            return self._matches_string(other)
        if t == ID_DER_ASN1_DN:
            if other.id_type != ID_DER_ASN1_DN:
                return MATCH_NONE
            matched, wildcards = _compare_dn(self.data, other.data, wildcards=True)
            if not matched:
                return MATCH_NONE
            return MATCH_PERFECT - min(wildcards, MATCH_ONE_WILDCARD - MATCH_MAX_WILDCARDS)
        if t in (ID_IPV4_ADDR, ID_IPV6_ADDR):
            return self._matches_range(other)
        if t == other.id_type and self.data == other.data:
            return MATCH_PERFECT
        return MATCH_NONE

    def _matches_string(self, other: "Identity") -> int:
        if self.id_type != other.id_type:
            return MATCH_NONE
        if self.equals(other):
            return MATCH_PERFECT
        pattern = other.data
        if not pattern or len(self.data) < len(pattern):
            return MATCH_NONE
        if pattern[:1] == b"*":
            if len(pattern) == 1:
                return MATCH_ANY
            tail = pattern[1:]
            if self.data[len(self.data) - len(tail) :].lower() == tail.lower():
                return MATCH_ONE_WILDCARD
        return MATCH_NONE

    def _matches_range(self, other: "Identity") -> int:
        if self.id_type == other.id_type and self.data == other.data:
            return MATCH_PERFECT
        size = 4 if self.id_type == ID_IPV4_ADDR else 16
        subnet_type = ID_IPV4_ADDR_SUBNET if size == 4 else ID_IPV6_ADDR_SUBNET
        range_type = ID_IPV4_ADDR_RANGE if size == 4 else ID_IPV6_ADDR_RANGE
        if other.id_type not in (subnet_type, range_type):
            return MATCH_NONE
        if len(self.data) != size or len(other.data) != 2 * size:
            return MATCH_NONE
        address = self.data
        if other.id_type == subnet_type:
            network, mask = other.data[:size], other.data[size:]
            bits = _netmask_bits(mask)
            if bits == 0:
                return MATCH_MAX_WILDCARDS
            if bits == 8 * size:
                return MATCH_PERFECT if address == network else MATCH_NONE
            for a, n, m in zip(address, network, mask):
                if (a ^ n) & m:
                    return MATCH_NONE
            return MATCH_ONE_WILDCARD
        low, high = other.data[:size], other.data[size:]
        if high < low or address < low or address > high:
            return MATCH_NONE
        return MATCH_ONE_WILDCARD if low != high else MATCH_PERFECT

    # -- certificates ----------------------------------------------------------------

    def key_id_matches_cert(self, cert) -> bool:
        """For a KEY_ID: does it name ``cert`` (subjectKeyIdentifier, or SHA-1 of the
        public key's BIT STRING or of the whole SubjectPublicKeyInfo)?"""
        if self.id_type != ID_KEY_ID:
            return False
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        candidates = []
        try:
            candidates.append(cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
        except (x509.ExtensionNotFound, ValueError):
            pass
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        candidates.append(hashlib.sha1(spki).digest())
        try:
            outer = read_tlvs(spki)
            inner = read_tlvs(outer[0][1]) if outer and outer[0][0] == SEQUENCE else []
        except DerError:
            inner = []
        if len(inner) == 2 and inner[1][0] == BIT_STRING and inner[1][1]:
            candidates.append(hashlib.sha1(inner[1][1][1:]).digest())
        return self.data in candidates


Identity.ANY = Identity(ID_ANY, b"")


def cert_identities(cert) -> list[Identity]:
    """The identities an X.509 certificate vouches for: subject DN, then its
    subjectAltNames (dNSName, rfc822Name, iPAddress, directoryName, URI)."""
    from cryptography import x509

    ids = [Identity.from_dn_der(cert.subject.public_bytes())]
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ids
    for name in names:
        if isinstance(name, x509.DNSName):
            ids.append(Identity(ID_FQDN, name.value.encode("utf-8")))
        elif isinstance(name, x509.RFC822Name):
            ids.append(Identity(ID_RFC822_ADDR, name.value.encode("utf-8")))
        elif isinstance(name, x509.IPAddress):
            value = name.value
            if isinstance(value, ipaddress.IPv4Address):
                ids.append(Identity(ID_IPV4_ADDR, value.packed))
            elif isinstance(value, ipaddress.IPv6Address):
                ids.append(Identity(ID_IPV6_ADDR, value.packed))
        elif isinstance(name, x509.DirectoryName):
            ids.append(Identity.from_dn_der(name.value.public_bytes()))
        elif isinstance(name, x509.UniformResourceIdentifier):
            ids.append(Identity(ID_DER_ASN1_GN_URI, name.value.encode("utf-8")))
    return ids


def cert_has_identity(cert, identity: Identity) -> int:
    """strongSwan's x509 ``has_subject()``: the best match level of ``identity`` (a
    possibly wildcarded pattern) against the certificate's subject and SANs, or a
    KEY_ID naming its key; 0 if the certificate does not contain it."""
    if identity.id_type == ID_KEY_ID and identity.key_id_matches_cert(cert):
        return MATCH_PERFECT
    return max((own.matches(identity) for own in cert_identities(cert)), default=MATCH_NONE)
