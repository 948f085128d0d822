"""RADIUS packets: encoding, decoding and the authenticators that protect them.

The wire format (RFC 2865 section 3)::

    Code (1) | Identifier (1) | Length (2) | Authenticator (16) | Attributes ...
    Attribute: Type (1) | Length (1, includes these 2 octets) | Value (0..253)

Which authenticator a packet carries depends on its code:

* Access-Request: 16 random octets (the Request Authenticator, RFC 2865 section 3);
  ikegate always adds a Message-Authenticator (RFC 3579 section 3.2: HMAC-MD5 keyed with
  the shared secret over the whole packet with the attribute's value zeroed), which EAP
  requires and which protects against forged answers (the "Blast-RADIUS" attack).
* Accounting-Request (RFC 2866 section 3), Disconnect-Request and CoA-Request (RFC 5176
  section 3.1): MD5(Code | Identifier | Length | 16 zero octets | Attributes | Secret).
  A Message-Authenticator in such a request is computed with the authenticator field
  zeroed (RFC 5176 section 3.1), before the authenticator.
* Every answer: the Response Authenticator MD5(Code | Identifier | Length | Request
  Authenticator | Attributes | Secret); a Message-Authenticator in it is computed over
  the answer with the Request Authenticator in the authenticator field (RFC 3579
  section 3.2).

Also here: Vendor-Specific attributes (RFC 2865 section 5.26), User-Password hiding
(section 5.2), the MS-MPPE-Send/Recv-Key decryption of RFC 2548 section 2.4 (the MSK of
an EAP method run on the RADIUS server) and EAP-Message splitting (RFC 3579 section 3.1).

MD5 and HMAC-MD5 come from ``cryptography``; authenticators are compared in constant
time.  Nothing here logs, and :class:`Packet`'s repr shows attribute types and sizes
only (values may be secrets: hidden passwords, MPPE keys, EAP).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

__all__ = [
    "AUTHENTICATOR_SIZE",
    "MAX_PACKET",
    "MICROSOFT",
    "AcctStatusType",
    "Attr",
    "Code",
    "ErrorCause",
    "MsAttr",
    "Packet",
    "RadiusError",
    "TerminateCause",
    "decode",
    "decrypt_mppe_key",
    "eap_attributes",
    "encode",
    "encode_request",
    "encode_response",
    "encrypt_mppe_key",
    "hide_password",
    "join_eap",
    "unhide_password",
    "verify_request",
    "verify_response",
]

AUTHENTICATOR_SIZE = 16
HEADER_SIZE = 20
MAX_PACKET = 4096  # RFC 2865 section 3: "The maximum length is 4096."
MAX_VALUE = 253
#: the Vendor-Id of Microsoft (RFC 2548)
MICROSOFT = 311


class RadiusError(ValueError):
    """A malformed RADIUS packet or attribute, or one whose authenticator is wrong."""


class Code(IntEnum):
    """RADIUS packet codes (RFC 2865 section 3, RFC 2866 section 3, RFC 5176 section 3)."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


#: the requests whose authenticator is computed (not random)
COMPUTED_REQUESTS = frozenset({Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST})
#: the answers each request code expects
ANSWERS = {
    Code.ACCESS_REQUEST: frozenset({Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE}),
    Code.STATUS_SERVER: frozenset({Code.ACCESS_ACCEPT, Code.ACCOUNTING_RESPONSE}),
    Code.ACCOUNTING_REQUEST: frozenset({Code.ACCOUNTING_RESPONSE}),
    Code.DISCONNECT_REQUEST: frozenset({Code.DISCONNECT_ACK, Code.DISCONNECT_NAK}),
    Code.COA_REQUEST: frozenset({Code.COA_ACK, Code.COA_NAK}),
}


class Attr(IntEnum):
    """Attribute types (RFC 2865 section 5, RFC 2866 section 5, RFC 2869, RFC 3162,
    RFC 3579, RFC 4818, RFC 5176, RFC 6911)."""

    USER_NAME = 1
    USER_PASSWORD = 2
    CHAP_PASSWORD = 3
    NAS_IP_ADDRESS = 4
    NAS_PORT = 5
    SERVICE_TYPE = 6
    FRAMED_PROTOCOL = 7
    FRAMED_IP_ADDRESS = 8
    FRAMED_IP_NETMASK = 9
    FRAMED_ROUTING = 10
    FILTER_ID = 11
    FRAMED_MTU = 12
    REPLY_MESSAGE = 18
    FRAMED_ROUTE = 22
    STATE = 24
    CLASS = 25
    VENDOR_SPECIFIC = 26
    SESSION_TIMEOUT = 27
    IDLE_TIMEOUT = 28
    TERMINATION_ACTION = 29
    CALLED_STATION_ID = 30
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    ACCT_STATUS_TYPE = 40
    ACCT_DELAY_TIME = 41
    ACCT_INPUT_OCTETS = 42
    ACCT_OUTPUT_OCTETS = 43
    ACCT_SESSION_ID = 44
    ACCT_AUTHENTIC = 45
    ACCT_SESSION_TIME = 46
    ACCT_INPUT_PACKETS = 47
    ACCT_OUTPUT_PACKETS = 48
    ACCT_TERMINATE_CAUSE = 49
    ACCT_MULTI_SESSION_ID = 50
    ACCT_LINK_COUNT = 51
    ACCT_INPUT_GIGAWORDS = 52
    ACCT_OUTPUT_GIGAWORDS = 53
    EVENT_TIMESTAMP = 55
    NAS_PORT_TYPE = 61
    PORT_LIMIT = 62
    TUNNEL_TYPE = 64
    TUNNEL_MEDIUM_TYPE = 65
    TUNNEL_CLIENT_ENDPOINT = 66
    TUNNEL_SERVER_ENDPOINT = 67
    CONNECT_INFO = 77
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80
    TUNNEL_PRIVATE_GROUP_ID = 81
    ACCT_INTERIM_INTERVAL = 85
    NAS_PORT_ID = 87
    FRAMED_POOL = 88
    CHARGEABLE_USER_IDENTITY = 89
    NAS_IPV6_ADDRESS = 95
    FRAMED_INTERFACE_ID = 96
    FRAMED_IPV6_PREFIX = 97
    FRAMED_IPV6_POOL = 100
    ERROR_CAUSE = 101
    FRAMED_IPV6_ADDRESS = 168
    DNS_SERVER_IPV6_ADDRESS = 169


class MsAttr(IntEnum):
    """Microsoft vendor attributes (vendor 311, RFC 2548 section 2)."""

    MS_CHAP_ERROR = 2
    MS_MPPE_ENCRYPTION_POLICY = 7
    MS_MPPE_ENCRYPTION_TYPES = 8
    MS_CHAP_DOMAIN = 10
    MS_CHAP_CHALLENGE = 11
    MS_MPPE_SEND_KEY = 16
    MS_MPPE_RECV_KEY = 17
    MS_CHAP2_RESPONSE = 25
    MS_CHAP2_SUCCESS = 26
    MS_PRIMARY_DNS_SERVER = 28
    MS_SECONDARY_DNS_SERVER = 29
    MS_PRIMARY_NBNS_SERVER = 30
    MS_SECONDARY_NBNS_SERVER = 31


class AcctStatusType(IntEnum):
    """Acct-Status-Type values (RFC 2866 section 5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


class TerminateCause(IntEnum):
    """Acct-Terminate-Cause values (RFC 2866 section 5.10)."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    PORT_UNNEEDED = 12
    PORT_PREEMPTED = 13
    PORT_SUSPENDED = 14
    SERVICE_UNAVAILABLE = 15
    CALLBACK = 16
    USER_ERROR = 17
    HOST_REQUEST = 18


class ErrorCause(IntEnum):
    """Error-Cause values (RFC 5176 section 3.5)."""

    RESIDUAL_SESSION_CONTEXT_REMOVED = 201
    INVALID_EAP_PACKET = 202
    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    UNSUPPORTED_EXTENSION = 406
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    REQUEST_NOT_ROUTABLE = 502
    SESSION_CONTEXT_NOT_FOUND = 503
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    OTHER_PROXY_PROCESSING_ERROR = 505
    RESOURCES_UNAVAILABLE = 506
    REQUEST_INITIATED = 507
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508


AttrValue = bytes | str | int | ipaddress.IPv4Address | ipaddress.IPv6Address


def _value_bytes(value: AttrValue) -> bytes:
    """The wire form of an attribute value: bytes as they are, text as UTF-8, an int as
    a 32-bit unsigned integer, an IPv4 address as 4 octets, an IPv6 address as 16."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise RadiusError("a bool is not a RADIUS attribute value")
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise RadiusError(f"integer attribute value {value} out of range")
        return struct.pack("!I", value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value.packed
    raise RadiusError(f"cannot encode a {type(value).__name__} as a RADIUS attribute value")


@dataclass
class Packet:
    """One RADIUS packet: code, identifier, authenticator and attributes in order.

    ``attributes`` holds (type, value) pairs with raw values; the helpers convert the
    common value types.  The repr leaves values out (they may be secret)."""

    code: int
    identifier: int = 0
    authenticator: bytes = b""
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    def __repr__(self) -> str:
        try:
            code = Code(self.code).name
        except ValueError:
            code = str(self.code)
        types = ", ".join(f"{t}({len(v)})" for t, v in self.attributes)
        return f"Packet({code}, id={self.identifier}, attributes=[{types}])"

    # -- reading ---------------------------------------------------------------------------

    def get(self, attr_type: int) -> bytes | None:
        """The value of the first attribute of this type, None if there is none."""
        for t, value in self.attributes:
            if t == attr_type:
                return value
        return None

    def get_all(self, attr_type: int) -> list[bytes]:
        """The values of every attribute of this type, in packet order."""
        return [value for t, value in self.attributes if t == attr_type]

    def get_int(self, attr_type: int) -> int | None:
        """The first attribute of this type as a 32-bit integer (None if absent or not
        4 octets long)."""
        value = self.get(attr_type)
        return struct.unpack("!I", value)[0] if value is not None and len(value) == 4 else None

    def get_str(self, attr_type: int) -> str | None:
        """The first attribute of this type as text (UTF-8, undecodable octets escaped)."""
        value = self.get(attr_type)
        return value.decode("utf-8", "backslashreplace") if value is not None else None

    def vendor_attrs(self, vendor: int, vendor_type: int) -> list[bytes]:
        """The values of the vendor attributes (``vendor``, ``vendor_type``) in every
        Vendor-Specific attribute, in the format RFC 2865 section 5.26 recommends
        (vendor type, vendor length, value; several may share one Vendor-Specific).
        Vendor-Specific attributes of other vendors or in another format are skipped."""
        out = []
        for value in self.get_all(Attr.VENDOR_SPECIFIC):
            if len(value) < 4 or struct.unpack_from("!I", value)[0] != vendor:
                continue
            for vtype, vvalue in _sub_attributes(value[4:]) or ():
                if vtype == vendor_type:
                    out.append(vvalue)
        return out

    # -- building --------------------------------------------------------------------------

    def add(self, attr_type: int, value: AttrValue) -> None:
        """Append an attribute (see :func:`_value_bytes` for the value types)."""
        data = _value_bytes(value)
        if len(data) > MAX_VALUE:
            raise RadiusError(f"attribute {attr_type}: value of {len(data)} octets (at most {MAX_VALUE})")
        if not 0 < int(attr_type) < 256:
            raise RadiusError(f"attribute type {attr_type} out of range")
        self.attributes.append((int(attr_type), data))

    def add_vendor(self, vendor: int, vendor_type: int, value: AttrValue) -> None:
        """Append a Vendor-Specific attribute holding one vendor attribute."""
        data = _value_bytes(value)
        if len(data) > MAX_VALUE - 6:
            raise RadiusError(f"vendor attribute {vendor}/{vendor_type}: value of {len(data)} octets")
        self.add(Attr.VENDOR_SPECIFIC, struct.pack("!IBB", vendor, vendor_type, len(data) + 2) + data)


def _sub_attributes(data: bytes) -> list[tuple[int, bytes]] | None:
    """Vendor sub-attributes (type, length, value)*; None if they do not fill ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            return None
        vtype, vlen = data[pos], data[pos + 1]
        if vlen < 2 or pos + vlen > len(data):
            return None
        out.append((vtype, data[pos + 2 : pos + vlen]))
        pos += vlen
    return out


# -- raw encoding ------------------------------------------------------------------------


def _encode_attributes(attributes: list[tuple[int, bytes]]) -> bytes:
    parts = []
    for attr_type, value in attributes:
        if len(value) > MAX_VALUE:
            raise RadiusError(f"attribute {attr_type}: value of {len(value)} octets (at most {MAX_VALUE})")
        parts.append(struct.pack("!BB", attr_type, len(value) + 2) + value)
    return b"".join(parts)


def encode(packet: Packet) -> bytes:
    """The packet as it is, authenticator and attributes unchanged (no computation)."""
    if len(packet.authenticator) != AUTHENTICATOR_SIZE:
        raise RadiusError("the authenticator must be 16 octets")
    if not 0 <= packet.identifier <= 255:
        raise RadiusError(f"identifier {packet.identifier} out of range")
    attributes = _encode_attributes(packet.attributes)
    length = HEADER_SIZE + len(attributes)
    if length > MAX_PACKET:
        raise RadiusError(f"packet of {length} octets (at most {MAX_PACKET})")
    return struct.pack("!BBH", packet.code, packet.identifier, length) + packet.authenticator + attributes


def decode(data: bytes) -> Packet:
    """Parse a RADIUS packet.  Raises :class:`RadiusError` if it is malformed: shorter
    than its header, a Length field below 20, above 4096 or beyond the datagram, an
    attribute running past the end or shorter than 2 octets, a Message-Authenticator
    not 16 octets long, or an unknown code.  Octets after Length are padding (ignored,
    RFC 2865 section 3)."""
    if len(data) < HEADER_SIZE:
        raise RadiusError(f"packet of {len(data)} octets is shorter than the RADIUS header")
    code, identifier, length = struct.unpack_from("!BBH", data)
    if length < HEADER_SIZE or length > MAX_PACKET or length > len(data):
        raise RadiusError(f"bad Length {length} in a datagram of {len(data)} octets")
    try:
        code = Code(code)
    except ValueError:
        raise RadiusError(f"unknown RADIUS code {code}") from None
    attributes = []
    pos = HEADER_SIZE
    while pos < length:
        if pos + 2 > length:
            raise RadiusError("truncated attribute header")
        attr_type, attr_len = data[pos], data[pos + 1]
        if attr_len < 2 or pos + attr_len > length:
            raise RadiusError(f"attribute {attr_type} with bad length {attr_len}")
        value = bytes(data[pos + 2 : pos + attr_len])
        if attr_type == Attr.MESSAGE_AUTHENTICATOR and len(value) != AUTHENTICATOR_SIZE:
            raise RadiusError(f"Message-Authenticator of {len(value)} octets")
        attributes.append((attr_type, value))
        pos += attr_len
    return Packet(code, identifier, bytes(data[4:HEADER_SIZE]), attributes)


# -- authenticators ----------------------------------------------------------------------


def _secret(secret: bytes | str) -> bytes:
    data = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not data:
        raise RadiusError("empty RADIUS shared secret")
    return data


def _md5(*parts: bytes) -> bytes:
    digest = hashes.Hash(hashes.MD5())
    for part in parts:
        digest.update(part)
    return digest.finalize()


def _hmac_md5(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.MD5())
    mac.update(data)
    return mac.finalize()


def _message_authenticator_offset(data: bytes) -> int | None:
    """Offset of the Message-Authenticator value in an encoded packet, None without one."""
    length = struct.unpack_from("!H", data, 2)[0]
    pos = HEADER_SIZE
    while pos + 2 <= length:
        attr_type, attr_len = data[pos], data[pos + 1]
        if attr_type == Attr.MESSAGE_AUTHENTICATOR and attr_len == 18:
            return pos + 2
        if attr_len < 2:
            return None
        pos += attr_len
    return None


def _message_authenticator(data: bytes, authenticator: bytes, secret: bytes) -> bytes | None:
    """HMAC-MD5 of ``data`` (Length bytes of it) with ``authenticator`` in the header and
    the Message-Authenticator value zeroed (RFC 3579 section 3.2); None without one."""
    offset = _message_authenticator_offset(data)
    if offset is None:
        return None
    length = struct.unpack_from("!H", data, 2)[0]
    blank = (bytes(data[:4]) + authenticator + bytes(data[HEADER_SIZE:offset]) + bytes(AUTHENTICATOR_SIZE)
             + bytes(data[offset + AUTHENTICATOR_SIZE : length]))
    return _hmac_md5(secret, blank)


def _with_message_authenticator(data: bytes, authenticator: bytes, secret: bytes) -> bytes:
    """``data`` with its Message-Authenticator (if any) filled in."""
    mac = _message_authenticator(data, authenticator, secret)
    if mac is None:
        return data
    offset = _message_authenticator_offset(data)
    return data[:offset] + mac + data[offset + AUTHENTICATOR_SIZE :]


def _placeholder_mac(packet: Packet) -> list[tuple[int, bytes]]:
    """The attributes with any Message-Authenticator zeroed (filled in later)."""
    return [(t, bytes(AUTHENTICATOR_SIZE) if t == Attr.MESSAGE_AUTHENTICATOR else v) for t, v in packet.attributes]


def encode_request(packet: Packet, secret: bytes | str) -> bytes:
    """A request ready to send, authenticators computed with the shared secret.

    Access-Request (and Status-Server): the authenticator is 16 random octets unless the
    packet already has 16 (``packet.authenticator`` is set to the one used, for checking
    the answer), and a Message-Authenticator is always included.  Accounting-,
    Disconnect- and CoA-Request: the authenticator is computed (RFC 2866 section 3,
    RFC 5176 section 3.1), after a Message-Authenticator if the packet has one."""
    key = _secret(secret)
    code = packet.code
    if code in (Code.ACCESS_REQUEST, Code.STATUS_SERVER):
        if len(packet.authenticator) != AUTHENTICATOR_SIZE:
            packet.authenticator = os.urandom(AUTHENTICATOR_SIZE)
        if packet.get(Attr.MESSAGE_AUTHENTICATOR) is None:
            packet.attributes.append((int(Attr.MESSAGE_AUTHENTICATOR), bytes(AUTHENTICATOR_SIZE)))
        data = encode(Packet(code, packet.identifier, packet.authenticator, _placeholder_mac(packet)))
        return _with_message_authenticator(data, packet.authenticator, key)
    if code in COMPUTED_REQUESTS:
        zero = bytes(AUTHENTICATOR_SIZE)
        data = encode(Packet(code, packet.identifier, zero, _placeholder_mac(packet)))
        data = _with_message_authenticator(data, zero, key)
        authenticator = _md5(data, key)
        packet.authenticator = authenticator
        return data[:4] + authenticator + data[HEADER_SIZE:]
    raise RadiusError(f"{packet.code} is not a request code")


def encode_response(packet: Packet, request: Packet | bytes, secret: bytes | str) -> bytes:
    """An answer to ``request`` (the decoded request or its bytes): the identifier is the
    request's, a Message-Authenticator in ``packet`` is computed with the Request
    Authenticator, then the Response Authenticator."""
    key = _secret(secret)
    identifier, request_auth = _request_header(request)
    data = encode(Packet(packet.code, identifier, request_auth, _placeholder_mac(packet)))
    data = _with_message_authenticator(data, request_auth, key)
    authenticator = _md5(data, key)
    packet.identifier = identifier
    packet.authenticator = authenticator
    return data[:4] + authenticator + data[HEADER_SIZE:]


def _request_header(request: Packet | bytes) -> tuple[int, bytes]:
    if isinstance(request, Packet):
        identifier, authenticator = request.identifier, request.authenticator
    else:
        if len(request) < HEADER_SIZE:
            raise RadiusError("request shorter than the RADIUS header")
        identifier, authenticator = request[1], bytes(request[4:HEADER_SIZE])
    if len(authenticator) != AUTHENTICATOR_SIZE:
        raise RadiusError("the request has no 16-octet authenticator")
    return identifier, authenticator


def verify_response(data: bytes, request: Packet | bytes, secret: bytes | str, *,
                    require_message_authenticator: bool | None = None) -> Packet:
    """Decode an answer to ``request`` and check it: an answer code for the request's
    code, the same identifier, the Response Authenticator, and the Message-Authenticator.
    A Message-Authenticator is required when ``require_message_authenticator`` says so;
    by default when the request carried an EAP-Message (RFC 3579 section 3.2).  Raises
    :class:`RadiusError` if anything is wrong."""
    key = _secret(secret)
    request_packet = request if isinstance(request, Packet) else decode(request)
    identifier, request_auth = _request_header(request_packet)
    packet = decode(data)
    allowed = ANSWERS.get(request_packet.code, frozenset())
    if packet.code not in allowed:
        raise RadiusError(f"{Code(packet.code).name} is no answer to {Code(request_packet.code).name}")
    if packet.identifier != identifier:
        raise RadiusError(f"identifier {packet.identifier} does not match the request's {identifier}")
    length = struct.unpack_from("!H", data, 2)[0]
    body = bytes(data[:length])
    expected = _md5(body[:4], request_auth, body[HEADER_SIZE:], key)
    if not hmac.compare_digest(expected, packet.authenticator):
        raise RadiusError("bad Response Authenticator (wrong shared secret?)")
    if require_message_authenticator is None:
        require_message_authenticator = request_packet.get(Attr.EAP_MESSAGE) is not None
    _check_message_authenticator(body, packet, request_auth, key, require_message_authenticator)
    return packet


def verify_request(data: bytes, secret: bytes | str, *, require_message_authenticator: bool = False) -> Packet:
    """Decode a request sent to us and check its authenticators: the computed Request
    Authenticator of Accounting-, Disconnect- and CoA-Requests, and the
    Message-Authenticator if present (or required).  For an Access-Request only the
    Message-Authenticator can be checked.  Raises :class:`RadiusError`."""
    key = _secret(secret)
    packet = decode(data)
    length = struct.unpack_from("!H", data, 2)[0]
    body = bytes(data[:length])
    if packet.code in COMPUTED_REQUESTS:
        zero = bytes(AUTHENTICATOR_SIZE)
        expected = _md5(body[:4], zero, body[HEADER_SIZE:], key)
        if not hmac.compare_digest(expected, packet.authenticator):
            raise RadiusError("bad Request Authenticator (wrong shared secret?)")
        _check_message_authenticator(body, packet, zero, key, require_message_authenticator)
    elif packet.code in (Code.ACCESS_REQUEST, Code.STATUS_SERVER):
        _check_message_authenticator(body, packet, packet.authenticator, key,
                                     require_message_authenticator or packet.get(Attr.EAP_MESSAGE) is not None)
    else:
        raise RadiusError(f"{Code(packet.code).name} is not a request")
    return packet


def _check_message_authenticator(body: bytes, packet: Packet, authenticator: bytes, key: bytes,
                                 required: bool) -> None:
    received = packet.get_all(Attr.MESSAGE_AUTHENTICATOR)
    if not received:
        if required:
            raise RadiusError("Message-Authenticator missing")
        return
    if len(received) > 1:
        raise RadiusError("more than one Message-Authenticator")
    expected = _message_authenticator(body, authenticator, key)
    if expected is None or not hmac.compare_digest(expected, received[0]):
        raise RadiusError("bad Message-Authenticator (wrong shared secret?)")


# -- hidden values -----------------------------------------------------------------------


def hide_password(password: bytes | str, secret: bytes | str, authenticator: bytes) -> bytes:
    """The User-Password value (RFC 2865 section 5.2): the password padded with zeros to
    a multiple of 16 octets, each block XORed with MD5(secret | previous block), the
    first previous block being the Request Authenticator."""
    key = _secret(secret)
    data = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    if len(data) > 128:
        raise RadiusError("User-Password longer than 128 octets")
    data = data + bytes(-len(data) % 16) if data else bytes(16)  # padded to 16-octet blocks
    out = bytearray()
    previous = authenticator
    for i in range(0, len(data), 16):
        pad = _md5(key, previous)
        block = bytes(a ^ b for a, b in zip(data[i : i + 16], pad))
        out += block
        previous = block
    return bytes(out)


def unhide_password(value: bytes, secret: bytes | str, authenticator: bytes) -> bytes:
    """The password in a User-Password value (trailing zero padding removed)."""
    key = _secret(secret)
    if not value or len(value) % 16 or len(value) > 128:
        raise RadiusError(f"User-Password of {len(value)} octets")
    out = bytearray()
    previous = authenticator
    for i in range(0, len(value), 16):
        pad = _md5(key, previous)
        block = value[i : i + 16]
        out += bytes(a ^ b for a, b in zip(block, pad))
        previous = block
    return bytes(out).rstrip(b"\x00")


def decrypt_mppe_key(value: bytes, secret: bytes | str, request_authenticator: bytes) -> bytes:
    """The key in an MS-MPPE-Send-Key or MS-MPPE-Recv-Key value (RFC 2548 section 2.4.2,
    2.4.3): Salt (2 octets, high bit set) then String, where String is (Key-Length, Key,
    padding) in 16-octet blocks, each XORed with b(1) = MD5(secret | Request
    Authenticator | Salt), b(i) = MD5(secret | c(i-1)).  Raises :class:`RadiusError` if
    the value is malformed (the key length then is likely wrong: a bad secret)."""
    key = _secret(secret)
    if len(value) < 2 + 16 or (len(value) - 2) % 16:
        raise RadiusError(f"MPPE key attribute of {len(value)} octets")
    salt, cipher = value[:2], value[2:]
    if not salt[0] & 0x80:
        raise RadiusError("MPPE key salt without its high bit set")
    plain = bytearray()
    previous = bytes(request_authenticator) + salt
    for i in range(0, len(cipher), 16):
        pad = _md5(key, previous)
        block = cipher[i : i + 16]
        plain += bytes(a ^ b for a, b in zip(block, pad))
        previous = block
    length = plain[0]
    if length == 0 or length > len(plain) - 1:
        raise RadiusError("MPPE key with an impossible length (wrong shared secret?)")
    return bytes(plain[1 : 1 + length])


def encrypt_mppe_key(key_material: bytes, secret: bytes | str, request_authenticator: bytes,
                     salt: bytes | None = None) -> bytes:
    """The MS-MPPE-Send/Recv-Key value for ``key_material`` (RFC 2548 section 2.4.2),
    the inverse of :func:`decrypt_mppe_key`; a random salt unless one is given."""
    key = _secret(secret)
    if salt is None:
        salt = bytes([0x80 | os.urandom(1)[0]]) + os.urandom(1)
    if len(salt) != 2 or not salt[0] & 0x80:
        raise RadiusError("MPPE salt must be 2 octets with the high bit set")
    if not 0 < len(key_material) < 240:
        raise RadiusError("MPPE key length out of range")
    plain = bytes([len(key_material)]) + key_material
    plain += bytes(-len(plain) % 16)
    out = bytearray(salt)
    previous = bytes(request_authenticator) + salt
    for i in range(0, len(plain), 16):
        pad = _md5(key, previous)
        block = bytes(a ^ b for a, b in zip(plain[i : i + 16], pad))
        out += block
        previous = block
    return bytes(out)


# -- EAP ---------------------------------------------------------------------------------


def eap_attributes(eap: bytes) -> list[tuple[int, bytes]]:
    """An EAP packet as EAP-Message attributes of at most 253 octets each (RFC 3579
    section 3.1), to extend ``Packet.attributes`` with."""
    if not eap:
        raise RadiusError("empty EAP packet")
    return [(int(Attr.EAP_MESSAGE), bytes(eap[i : i + MAX_VALUE])) for i in range(0, len(eap), MAX_VALUE)]


def join_eap(packet: Packet) -> bytes:
    """The EAP packet carried in ``packet``'s EAP-Message attributes (concatenated in
    order); empty if there is none."""
    return b"".join(packet.get_all(Attr.EAP_MESSAGE))
