"""ikegate.radius.packet: encoding, authenticators, hidden values, VSAs, EAP splitting.

Known answers:

* RFC 2865 section 7.1 ("User Telnet to Specified Host"): the Access-Request of user
  "nemo", password "arctangent", secret "xyzzy5461", and its Access-Accept.  The RFC text
  itself could not be retrieved on this machine; the bytes below are those of the RFC's
  example as reproduced in the test suite of the ``radius`` Rust crate (rfc2865 7.1 test),
  and they are cross-checked here against an independent implementation, scapy's
  ``Radius.compute_authenticator`` and MD5/HMAC from pycryptodome.
* Everything else (Message-Authenticator of RFC 3579 section 3.2, the Accounting-Request
  authenticator of RFC 2866 section 3, the RFC 5176 request authenticators, the RFC 2548
  MPPE key encryption) is cross-checked with scapy/pycryptodome here and against a real
  FreeRADIUS in test_freeradius.py.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from Crypto.Hash import HMAC, MD5
from scapy.layers.radius import Radius

from ikegate.radius.packet import (
    MICROSOFT,
    AcctStatusType,
    Attr,
    Code,
    MsAttr,
    Packet,
    RadiusError,
    decode,
    decrypt_mppe_key,
    eap_attributes,
    encode,
    encode_request,
    encode_response,
    encrypt_mppe_key,
    hide_password,
    join_eap,
    unhide_password,
    verify_request,
    verify_response,
)

SECRET = b"xyzzy5461"
# RFC 2865 section 7.1 (see the module docstring for where these bytes come from)
RFC2865_7_1_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110050600000003")
RFC2865_7_1_ACCEPT = bytes.fromhex(
    "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103")


def _md5(data: bytes) -> bytes:
    return MD5.new(data).digest()


def _hmac_md5(key: bytes, data: bytes) -> bytes:
    return HMAC.new(key, data, digestmod=MD5).digest()


# -- RFC 2865 section 7.1 ---------------------------------------------------------------------


def test_rfc2865_7_1_access_request_encodes_byte_for_byte():
    authenticator = RFC2865_7_1_REQUEST[4:20]
    packet = Packet(Code.ACCESS_REQUEST, 0, authenticator)
    packet.add(Attr.USER_NAME, "nemo")
    packet.add(Attr.USER_PASSWORD, hide_password("arctangent", SECRET, authenticator))
    packet.add(Attr.NAS_IP_ADDRESS, ipaddress.ip_address("192.168.1.16"))
    packet.add(Attr.NAS_PORT, 3)
    assert encode(packet) == RFC2865_7_1_REQUEST


def test_rfc2865_7_1_access_request_decodes():
    packet = decode(RFC2865_7_1_REQUEST)
    assert packet.code == Code.ACCESS_REQUEST and packet.identifier == 0
    assert packet.get_str(Attr.USER_NAME) == "nemo"
    assert unhide_password(packet.get(Attr.USER_PASSWORD), SECRET, packet.authenticator) == b"arctangent"
    assert ipaddress.ip_address(packet.get(Attr.NAS_IP_ADDRESS)) == ipaddress.ip_address("192.168.1.16")
    assert packet.get_int(Attr.NAS_PORT) == 3


def test_rfc2865_7_1_access_accept_verifies_and_matches_scapy():
    packet = verify_response(RFC2865_7_1_ACCEPT, RFC2865_7_1_REQUEST, SECRET)
    assert packet.code == Code.ACCESS_ACCEPT
    assert packet.get_int(Attr.SERVICE_TYPE) == 1  # Login-User
    assert packet.get(14) == bytes([192, 168, 1, 3])  # Login-IP-Host
    # rebuilding the answer gives the RFC's bytes (Response Authenticator included)
    answer = Packet(Code.ACCESS_ACCEPT, attributes=list(packet.attributes))
    assert encode_response(answer, RFC2865_7_1_REQUEST, SECRET) == RFC2865_7_1_ACCEPT
    # independent: scapy's authenticator over the same packet
    scapy_auth = Radius(RFC2865_7_1_ACCEPT).compute_authenticator(RFC2865_7_1_REQUEST[4:20], SECRET)
    assert scapy_auth == RFC2865_7_1_ACCEPT[4:20]


def test_rfc2865_7_1_wrong_secret_is_refused():
    with pytest.raises(RadiusError, match="Response Authenticator"):
        verify_response(RFC2865_7_1_ACCEPT, RFC2865_7_1_REQUEST, b"xyzzy5462")


# -- Message-Authenticator (RFC 3579 section 3.2) ---------------------------------------------


def test_access_request_gets_random_authenticator_and_message_authenticator():
    packet = Packet(Code.ACCESS_REQUEST, 42)
    packet.attributes += eap_attributes(b"\x02\x01\x00\x09\x01user")
    data = encode_request(packet, b"s3cret")
    assert data[4:20] == packet.authenticator and len(packet.authenticator) == 16
    assert data[1] == 42
    decoded = decode(data)
    mac = decoded.get(Attr.MESSAGE_AUTHENTICATOR)
    # independent HMAC-MD5 over the packet with the attribute value zeroed
    blank = data.replace(mac, bytes(16))
    assert _hmac_md5(b"s3cret", blank) == mac
    assert verify_request(data, b"s3cret").identifier == 42
    with pytest.raises(RadiusError, match="Message-Authenticator"):
        verify_request(data, b"other")
    other = Packet(Code.ACCESS_REQUEST, 42)
    encode_request(other, b"s3cret")
    assert other.authenticator != packet.authenticator


def test_access_challenge_message_authenticator_uses_request_authenticator():
    request = Packet(Code.ACCESS_REQUEST, 7)
    request.attributes += eap_attributes(b"\x02\x07\x00\x05\x01")
    request_data = encode_request(request, "secret")
    answer = Packet(Code.ACCESS_CHALLENGE)
    answer.attributes += eap_attributes(b"\x01\x08\x00\x06\x1a\x01")
    answer.add(Attr.STATE, b"state")
    answer.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
    data = encode_response(answer, request, "secret")
    # RFC 3579 3.2: HMAC over the answer with the Request Authenticator in the header
    mac = decode(data).get(Attr.MESSAGE_AUTHENTICATOR)
    blank = data[:4] + request_data[4:20] + data[20:].replace(mac, bytes(16))
    assert _hmac_md5(b"secret", blank) == mac
    # RFC 2865 3: Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret)
    assert _md5(data[:4] + request_data[4:20] + data[20:] + b"secret") == data[4:20]
    assert verify_response(data, request_data, "secret").get(Attr.STATE) == b"state"


def test_eap_answer_without_message_authenticator_is_refused():
    request = Packet(Code.ACCESS_REQUEST, 1)
    request.attributes += eap_attributes(b"\x02\x01\x00\x05\x01")
    request_data = encode_request(request, "secret")
    answer = Packet(Code.ACCESS_REJECT)
    data = encode_response(answer, request, "secret")
    with pytest.raises(RadiusError, match="missing"):
        verify_response(data, request_data, "secret")
    assert verify_response(data, request_data, "secret", require_message_authenticator=False).code == Code.ACCESS_REJECT


def test_tampered_answer_is_refused():
    request = Packet(Code.ACCESS_REQUEST, 3)
    request_data = encode_request(request, "secret")
    answer = Packet(Code.ACCESS_ACCEPT)
    answer.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
    answer.add(Attr.SESSION_TIMEOUT, 3600)
    data = bytearray(encode_response(answer, request, "secret"))
    data[-1] ^= 1
    with pytest.raises(RadiusError):
        verify_response(bytes(data), request_data, "secret")
    wrong_id = Packet(Code.ACCESS_ACCEPT, attributes=[(Attr.MESSAGE_AUTHENTICATOR, bytes(16))])
    other = Packet(Code.ACCESS_REQUEST, 4, request.authenticator)
    with pytest.raises(RadiusError, match="identifier"):
        verify_response(encode_response(wrong_id, other, "secret"), request_data, "secret")
    accounting_answer = encode_response(Packet(Code.ACCOUNTING_RESPONSE), request, "secret")
    with pytest.raises(RadiusError, match="no answer"):
        verify_response(accounting_answer, request_data, "secret")


# -- computed request authenticators (RFC 2866 section 3, RFC 5176 section 3.1) ----------------


@pytest.mark.parametrize("code", [Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST])
def test_computed_request_authenticator(code):
    packet = Packet(code, 9)
    packet.add(Attr.ACCT_STATUS_TYPE, AcctStatusType.START)
    packet.add(Attr.ACCT_SESSION_ID, "1700000000-1")
    packet.add(Attr.USER_NAME, "carol")
    data = encode_request(packet, b"acct")
    # MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret)
    assert _md5(data[:4] + bytes(16) + data[20:] + b"acct") == data[4:20]
    # scapy computes the same (its request authenticator argument: 16 zero octets)
    assert Radius(data).compute_authenticator(bytes(16), b"acct") == data[4:20]
    assert verify_request(data, b"acct").get_str(Attr.USER_NAME) == "carol"
    with pytest.raises(RadiusError, match="Request Authenticator"):
        verify_request(data, b"wrong")


def test_disconnect_request_message_authenticator_computed_with_zero_authenticator():
    packet = Packet(Code.DISCONNECT_REQUEST, 1)
    packet.add(Attr.USER_NAME, "dave")
    packet.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
    data = encode_request(packet, b"dae")
    mac = decode(data).get(Attr.MESSAGE_AUTHENTICATOR)
    # RFC 5176 3.1: HMAC first, over the packet with a zero authenticator, then the authenticator
    blank = data[:4] + bytes(16) + data[20:].replace(mac, bytes(16))
    assert _hmac_md5(b"dae", blank) == mac
    assert _md5(data[:4] + bytes(16) + data[20:] + b"dae") == data[4:20]
    assert verify_request(data, b"dae").get_str(Attr.USER_NAME) == "dave"


# -- malformed input ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"\x01" * 19,
    bytes.fromhex("01000013") + bytes(16),  # Length below 20
    bytes.fromhex("01000030") + bytes(16),  # Length beyond the datagram
    bytes.fromhex("01001001") + bytes(4097),  # Length above 4096
    bytes.fromhex("63000014") + bytes(16),  # unknown code 99
    bytes.fromhex("01000016") + bytes(16) + b"\x01\x01",  # attribute length 1
    bytes.fromhex("01000017") + bytes(16) + b"\x01\x05\x00",  # attribute past the end
    bytes.fromhex("01000018") + bytes(16) + b"\x50\x04\x00\x00",  # Message-Authenticator of 2
])
def test_malformed_packets_raise(data):
    with pytest.raises(RadiusError):
        decode(data)


def test_padding_after_length_is_ignored():
    packet = decode(RFC2865_7_1_REQUEST + b"\x00\x00\x00")
    assert packet.get_int(Attr.NAS_PORT) == 3


def test_attribute_values_are_bounded():
    packet = Packet(Code.ACCESS_REQUEST)
    packet.add(Attr.REPLY_MESSAGE, b"x" * 253)
    with pytest.raises(RadiusError):
        packet.add(Attr.REPLY_MESSAGE, b"x" * 254)
    with pytest.raises(RadiusError):
        packet.add(Attr.NAS_PORT, -1)


def test_repr_shows_no_values():
    packet = Packet(Code.ACCESS_REQUEST, 1)
    packet.add(Attr.USER_PASSWORD, b"supersecretvalue")
    assert "supersecret" not in repr(packet)


# -- vendor-specific attributes and MPPE keys (RFC 2865 5.26, RFC 2548 2.4.2) ------------------


def test_vendor_attributes_roundtrip_and_several_in_one_vsa():
    packet = Packet(Code.ACCESS_ACCEPT)
    packet.add_vendor(MICROSOFT, MsAttr.MS_PRIMARY_DNS_SERVER, ipaddress.ip_address("10.0.0.53"))
    # one Vendor-Specific with two sub-attributes, and one of another vendor
    packet.add(Attr.VENDOR_SPECIFIC, struct.pack("!I", MICROSOFT) + b"\x1d\x06\x0a\x00\x00\x36\x1c\x06\x0a\x00\x00\x37")
    packet.add(Attr.VENDOR_SPECIFIC, struct.pack("!I", 9) + b"\x1c\x06\x01\x02\x03\x04")
    packet.add(Attr.VENDOR_SPECIFIC, struct.pack("!I", MICROSOFT) + b"\x1c\x09broken")  # malformed: skipped
    decoded = decode(encode(Packet(Code.ACCESS_ACCEPT, 0, bytes(16), packet.attributes)))
    assert decoded.vendor_attrs(MICROSOFT, MsAttr.MS_PRIMARY_DNS_SERVER) == [bytes([10, 0, 0, 53]), bytes([10, 0, 0, 55])]
    assert decoded.vendor_attrs(MICROSOFT, MsAttr.MS_SECONDARY_DNS_SERVER) == [bytes([10, 0, 0, 54])]
    assert decoded.vendor_attrs(9, 28) == [b"\x01\x02\x03\x04"]


def _reference_mppe_decrypt(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """RFC 2548 2.4.2 written out independently with pycryptodome's MD5."""
    salt, cipher = value[:2], value[2:]
    plain, previous = b"", request_authenticator + salt
    for i in range(0, len(cipher), 16):
        pad = _md5(secret + previous)
        block = cipher[i:i + 16]
        plain += bytes(a ^ b for a, b in zip(block, pad))
        previous = block
    return plain[1:1 + plain[0]]


def test_mppe_key_roundtrip_and_independent_decryption():
    authenticator = bytes(range(16))
    key = bytes(range(100, 132))
    value = encrypt_mppe_key(key, b"mppe-secret", authenticator, salt=b"\x83\x21")
    assert len(value) == 2 + 48  # 1 + 32 octets padded to 48
    assert decrypt_mppe_key(value, b"mppe-secret", authenticator) == key
    assert _reference_mppe_decrypt(value, b"mppe-secret", authenticator) == key
    with pytest.raises(RadiusError):
        decrypt_mppe_key(value[:-1], b"mppe-secret", authenticator)
    with pytest.raises(RadiusError):
        decrypt_mppe_key(b"\x03\x21" + value[2:], b"mppe-secret", authenticator)  # salt high bit clear


# -- EAP-Message (RFC 3579 section 3.1) --------------------------------------------------------


def test_eap_message_split_and_join():
    eap = bytes(range(256)) * 3  # 768 octets: 253 + 253 + 253 + 9
    attributes = eap_attributes(eap)
    assert [len(v) for _, v in attributes] == [253, 253, 253, 9]
    packet = Packet(Code.ACCESS_REQUEST, attributes=attributes)
    assert join_eap(decode(encode_request(packet, "s"))) == eap
    assert join_eap(Packet(Code.ACCESS_ACCEPT)) == b""
    with pytest.raises(RadiusError):
        eap_attributes(b"")
