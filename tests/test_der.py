"""The minimal DER reader/writer (ikegate.der): known encodings, long lengths, malformed input.

Known encodings and their sources:
- 1.3.6.1.4.1.311.21.20 = 06 09 2b 06 01 04 01 82 37 15 14: Microsoft's "About OBJECT
  IDENTIFIER" (learn.microsoft.com, win32/seccertenroll), the ClientId attribute example;
- 2.16.840.1.101.3.4.2.1 (id-sha256) = 06 09 60 86 48 01 65 03 04 02 01: RFC 9090's
  example of that OID in DER (read in tech-invite.com's copy of the RFC);
- RFC 7427 A.1.2 sha256WithRSAEncryption, as copied in tests/pki/test_pki_signature.py.
The two OIDs above were also reproduced with openssl (below).
Every other encoding below was produced by an independent implementation,
``openssl asn1parse -genstr ... -out`` (OpenSSL 3.0.19), e.g. ``-genstr OID:2.999.3``,
``-genstr INTEGER:128``, ``-genstr FORMAT:HEX,OCTETSTRING:<300 zero bytes>``; and the
property test checks the writer against ``cryptography``'s DER for X.501 names.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ikegate.der import (
    NULL,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    SEQUENCE,
    SET,
    DerError,
    decode_oid,
    encode_integer,
    encode_oid,
    encode_tlv,
    read_tlvs,
)

OIDS = [
    ("1.3.6.1.4.1.311.21.20", "06092b0601040182371514"),  # Microsoft example
    ("2.16.840.1.101.3.4.2.1", "0609608648016503040201"),  # RFC 9090 example
    ("2.5.4.3", "0603550403"),  # openssl
    ("1.2.840.113549.1.1.11", "06092a864886f70d01010b"),  # openssl
    ("2.999.3", "0603883703"),  # openssl: first two arcs above one octet
]


@pytest.mark.parametrize(("dotted", "der"), OIDS)
def test_oid_known_encodings(dotted, der):
    encoded = bytes.fromhex(der)
    assert encode_oid(dotted) == encoded
    assert read_tlvs(encoded) == [(OBJECT_IDENTIFIER, encoded[2:])]
    assert decode_oid(encoded[2:]) == dotted


@pytest.mark.parametrize(
    ("value", "der"),
    [(0, "020100"), (127, "02017f"), (128, "02020080"), (256, "02020100")],  # openssl
)
def test_integer_known_encodings(value, der):
    assert encode_integer(value) == bytes.fromhex(der)


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, "0400"), (127, "047f"), (128, "048180"), (200, "0481c8"), (300, "0482012c")],  # openssl
)
def test_length_short_and_long_form(size, header):
    content = bytes(size)
    encoded = bytes.fromhex(header) + content
    assert encode_tlv(OCTET_STRING, content) == encoded
    assert read_tlvs(encoded) == [(OCTET_STRING, content)]


def test_reads_a_nested_structure_in_order():
    # RFC 7427 A.1.2: SEQUENCE { sha256WithRSAEncryption, NULL }
    der = bytes.fromhex("300d06092a864886f70d01010b0500")
    [(tag, body)] = read_tlvs(der)
    assert tag == SEQUENCE
    (oid_tag, oid), null = read_tlvs(body)
    assert oid_tag == OBJECT_IDENTIFIER
    assert decode_oid(oid) == "1.2.840.113549.1.1.11"
    assert null == (NULL, b"")
    assert encode_tlv(SEQUENCE, encode_oid("1.2.840.113549.1.1.11") + encode_tlv(NULL, b"")) == der
    assert read_tlvs(b"") == []


def test_non_minimal_length_and_the_length_octet_limit():
    # openssl asn1parse reads 04 83 00 00 03 'abc' as a 3-byte OCTET STRING.
    der = bytes.fromhex("0483000003") + b"abc"
    assert read_tlvs(der) == [(OCTET_STRING, b"abc")]
    with pytest.raises(DerError, match="bad DER length"):
        read_tlvs(der, max_length_octets=2)


@pytest.mark.parametrize(
    ("der", "message"),
    [
        ("30", "truncated DER"),  # a tag without a length
        ("0405616263", "truncated DER"),  # value shorter than its length
        ("3003020101" "04", "truncated DER"),  # a good TLV, then a truncated one
        ("0480", "bad DER length"),  # indefinite form: not DER
        ("04850000000001" "00", "bad DER length"),  # five length octets
        ("048201", "bad DER length"),  # length octets cut short
    ],
)
def test_malformed_tlvs_raise_der_error(der, message):
    with pytest.raises(DerError, match=message):
        read_tlvs(bytes.fromhex(der))


@pytest.mark.parametrize("body", ["", "2b86", "2b0681"])
def test_malformed_oid_raises_der_error(body):
    with pytest.raises(DerError, match="bad OID"):
        decode_oid(bytes.fromhex(body))


def test_der_error_is_a_value_error():
    # Callers that catch ValueError (dn_equal, verify_auth) keep working.
    assert issubclass(DerError, ValueError)


_OID_STRATEGY = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39)),
    st.tuples(st.just(2), st.integers(0, 10**6)),
).flatmap(
    lambda head: st.lists(st.integers(0, 2**40), max_size=8).map(
        lambda tail: ".".join(str(a) for a in (*head, *tail))
    )
)


@settings(max_examples=200, deadline=None)
@given(dotted=_OID_STRATEGY, value=st.text(min_size=1, max_size=200))
def test_writer_matches_cryptography_name_der(dotted, value):
    """A one-attribute X.501 Name written here is byte for byte cryptography's, and reads back."""
    try:
        der = x509.Name([x509.NameAttribute(ObjectIdentifier(dotted), value)]).public_bytes()
    except ValueError:  # e.g. countryName must be two characters
        assume(False)
    [(name_tag, rdns)] = read_tlvs(der)
    [(set_tag, rdn)] = read_tlvs(rdns)
    [(atv_tag, atv)] = read_tlvs(rdn)
    (oid_tag, oid), (string_tag, text) = read_tlvs(atv)
    assert (name_tag, set_tag, atv_tag, oid_tag) == (SEQUENCE, SET, SEQUENCE, OBJECT_IDENTIFIER)
    assert decode_oid(oid) == dotted
    written = encode_oid(dotted) + encode_tlv(string_tag, text)
    assert encode_tlv(SEQUENCE, encode_tlv(SET, encode_tlv(SEQUENCE, written))) == der
