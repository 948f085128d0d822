"""ikegate.identity: parsing, printing, matching as strongSwan 5.9.8 does.

DN encodings and printed forms were cross-checked with strongSwan 5.9.8's own ``pki``
tool on this machine (Debian 5.9.8-5+deb12u6): ``pki --self --dn "<text>"`` encodes the
subject with the same identification_create_from_string()/atodn() as ipsec.conf, and
``pki --print`` prints it with the same dntoa(); the hex below is the certificate's
subject DER it produced.  Match levels follow identification.c (id_match_t: 0 none,
1 any, 2..19 wildcards, 20 perfect).
"""

from __future__ import annotations

import ipaddress

import pytest
from ikegate.identity import (
    ID_ANY,
    ID_DER_ASN1_DN,
    ID_FQDN,
    ID_IPV4_ADDR,
    ID_IPV4_ADDR_RANGE,
    ID_IPV4_ADDR_SUBNET,
    ID_IPV6_ADDR,
    ID_IPV6_ADDR_SUBNET,
    ID_KEY_ID,
    ID_RFC822_ADDR,
    MATCH_ANY,
    MATCH_MAX_WILDCARDS,
    MATCH_NONE,
    MATCH_ONE_WILDCARD,
    MATCH_PERFECT,
    Identity,
    cert_has_identity,
    dn_rdns,
)
from ikegate.wire.constants import IdType

# (text given to `pki --self --dn`, subject DER it wrote, subject `pki --print` showed)
STRONGSWAN_DNS = [
    ("C=CH, O=strongSwan, CN=moon",
     "3031310b300906035504061302434831133011060355040a130a7374726f6e675377616e310d300b060355040313046d6f6f6e",
     "C=CH, O=strongSwan, CN=moon"),
    ("/C=CH/O=x/CN=*",
     "3025310b3009060355040613024348310a3008060355040a130178310a300806035504030c012a",
     "C=CH, O=x, CN=*"),
    ("C=CHX, CN=J\u00f6rg",
     "301e310c300a06035504061303434858310e300c06035504030c054ac3b67267",
     "C=CHX, CN=J??rg"),
    ("E=a@b.c, CN=x",
     "30223114301206092a864886f70d01090116056140622e63310a30080603550403130178",
     "E=a@b.c, CN=x"),
    ("CN = spaced  value  , O==eq",
     "3025311630140603550403130d737061636564202076616c7565310b3009060355040a13026571",
     "CN=spaced  value, O=eq"),
]


@pytest.mark.parametrize("text,der_hex,printed", STRONGSWAN_DNS)
def test_dn_encoding_and_printing_match_strongswan_pki(text, der_hex, printed):
    identity = Identity.parse(text)
    assert identity.id_type == ID_DER_ASN1_DN
    assert identity.data.hex() == der_hex
    assert str(identity) == printed


@pytest.mark.parametrize("text,id_type,data,printed", [
    ("%any", ID_ANY, b"", "%any"),
    ("%any6", ID_ANY, b"", "%any"),
    ("", ID_ANY, b"", "%any"),
    ("*", ID_ANY, b"", "%any"),
    ("0.0.0.0", ID_ANY, b"", "%any"),
    ("::", ID_ANY, b"", "%any"),
    ("0::0", ID_ANY, b"", "%any"),
    ("@vpn.example.org", ID_FQDN, b"vpn.example.org", "vpn.example.org"),
    ("vpn.example.org", ID_FQDN, b"vpn.example.org", "vpn.example.org"),
    ("alice", ID_FQDN, b"alice", "alice"),  # plain names are FQDN ids in strongSwan
    ("DOMAIN\\alice", ID_FQDN, b"DOMAIN\\alice", "DOMAIN\\alice"),
    ("alice@example.org", ID_RFC822_ADDR, b"alice@example.org", "alice@example.org"),
    ("@@alice", ID_RFC822_ADDR, b"alice", "alice"),
    ("192.0.2.1", ID_IPV4_ADDR, bytes([192, 0, 2, 1]), "192.0.2.1"),
    ("2001:db8::1", ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed, "2001:db8::1"),
    ("10.1.2.3/8", ID_IPV4_ADDR_SUBNET, bytes([10, 0, 0, 0, 255, 0, 0, 0]), "10.0.0.0/8"),
    ("10.0.0.1-10.0.0.9", ID_IPV4_ADDR_RANGE, bytes([10, 0, 0, 1, 10, 0, 0, 9]), "10.0.0.1-10.0.0.9"),
    ("fd00::/64", ID_IPV6_ADDR_SUBNET, bytes.fromhex("fd00" + "00" * 14 + "ff" * 8 + "00" * 8), "fd00::/64"),
    ("@#0a0b0c", ID_KEY_ID, b"\x0a\x0b\x0c", "0a:0b:0c"),
    ("keyid:#0102", ID_KEY_ID, b"\x01\x02", "01:02"),
    ("keyid:abc", ID_KEY_ID, b"abc", "abc"),  # printable KEY_IDs print as text
    ("fqdn:192.0.2.1", ID_FQDN, b"192.0.2.1", "192.0.2.1"),
    ("email:bob", ID_RFC822_ADDR, b"bob", "bob"),
    ("rfc822:bob@x", ID_RFC822_ADDR, b"bob@x", "bob@x"),
    ("ipv4:#c0000201", ID_IPV4_ADDR, bytes([192, 0, 2, 1]), "192.0.2.1"),
    ("ipv4:192.0.2.1", ID_IPV4_ADDR, bytes([192, 0, 2, 1]), "192.0.2.1"),
    ("ipv6:2001:db8::2", ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::2").packed, "2001:db8::2"),
    ("{2}:host", ID_FQDN, b"host", "host"),
    ("a:b:c:zz", ID_KEY_ID, b"a:b:c:zz", "a:b:c:zz"),  # ':' but no IPv6 -> KEY_ID
    ("CN=a, X=b", ID_KEY_ID, b"CN=a, X=b", "CN=a, X=b"),  # unknown RDN keyword -> KEY_ID
])
def test_parse_rules(text, id_type, data, printed):
    identity = Identity.parse(text)
    assert identity.id_type == id_type
    assert identity.data == data
    assert str(identity) == printed


def test_keyid_of_20_bytes_prints_as_hex_even_if_printable():
    identity = Identity(ID_KEY_ID, b"A" * 20)
    assert str(identity) == ":".join(["41"] * 20)


def test_bad_hex_raises_value_error():
    with pytest.raises(ValueError):
        Identity.parse("@#zz")


def test_any_and_wire_form():
    assert Identity.parse(None).is_any
    assert Identity.ANY == Identity(0, b"")
    fqdn = Identity.parse("@vpn.example.org")
    assert fqdn.to_wire() == (IdType.FQDN, b"vpn.example.org")
    assert Identity.from_wire(IdType.FQDN, b"vpn.example.org") == fqdn
    assert not fqdn.is_any


def test_dn_rdns_and_invalid_dn_printing():
    identity = Identity.parse("C=CH, CN=moon")
    rdns = dn_rdns(identity.data)
    assert [(value, tag) for _oid, tag, value in rdns] == [(b"CH", 0x13), (b"moon", 0x13)]
    assert str(Identity(ID_DER_ASN1_DN, b"\x30\x05\x31")) == "(invalid ID_DER_ASN1_DN)"
    assert dn_rdns(b"garbage") is None


@pytest.mark.parametrize("concrete,pattern,level", [
    ("vpn.example.org", "vpn.example.org", MATCH_PERFECT),
    ("VPN.Example.ORG", "vpn.example.org", MATCH_PERFECT),  # case-insensitive FQDN
    ("vpn.example.org", "*.example.org", MATCH_ONE_WILDCARD),
    ("vpn.example.org", "*.example.com", MATCH_NONE),
    ("alice@example.org", "*@example.org", MATCH_ONE_WILDCARD),
    ("Alice@Example.org", "alice@example.org", MATCH_PERFECT),
    ("alice@example.org", "bob@example.org", MATCH_NONE),
    ("alice", "%any", MATCH_ANY),
    ("alice@example.org", "@example.org", MATCH_NONE),  # FQDN pattern, RFC822 id: types differ
    ("C=CH, O=strongSwan, CN=moon", "C=CH, O=strongSwan, CN=moon", MATCH_PERFECT),
    ("C=CH, O=strongSwan, CN=moon", "c=ch, o=STRONGSWAN, cn=MOON", MATCH_PERFECT),  # PrintableString: no case
    ("C=CH, O=strongSwan, CN=moon", "C=CH, O=strongSwan, CN=*", MATCH_PERFECT - 1),
    ("C=CH, O=strongSwan, CN=moon", "C=*, O=*, CN=*", MATCH_PERFECT - 3),
    ("C=CH, O=strongSwan, CN=moon", "O=strongSwan, C=CH, CN=moon", MATCH_NONE),  # order matters
    ("C=CH, O=strongSwan, CN=moon", "C=CH, CN=moon", MATCH_NONE),
    ("192.0.2.7", "192.0.2.7", MATCH_PERFECT),
    ("192.0.2.7", "192.0.2.0/24", MATCH_ONE_WILDCARD),
    ("192.0.2.7", "192.0.2.7/32", MATCH_PERFECT),
    ("192.0.2.7", "0.0.0.0/0", MATCH_MAX_WILDCARDS),
    ("192.0.2.7", "198.51.100.0/24", MATCH_NONE),
    ("192.0.2.7", "192.0.2.1-192.0.2.9", MATCH_ONE_WILDCARD),
    ("192.0.2.7", "192.0.2.8-192.0.2.9", MATCH_NONE),
    ("2001:db8::5", "2001:db8::/32", MATCH_ONE_WILDCARD),
    ("@#0102", "@#0102", MATCH_PERFECT),
    ("@#0102", "@#0103", MATCH_NONE),
])
def test_matches_levels(concrete, pattern, level):
    assert Identity.parse(concrete).matches(Identity.parse(pattern)) == level


def test_many_dn_wildcards_floor_at_three():
    rdns = ", ".join(f"OU=u{i}" for i in range(20))
    stars = ", ".join("OU=*" for _ in range(20))
    assert Identity.parse(rdns).matches(Identity.parse(stars)) == MATCH_PERFECT - 17


def test_key_normalises_case_and_dns():
    assert Identity.parse("Alice@Example.org").key() == Identity.parse("alice@example.org").key()
    assert Identity.parse("@VPN.example.org").key() == Identity.parse("vpn.example.org").key()
    assert Identity.parse("C=ch, CN=MOON").key() == Identity.parse("C=CH, CN=moon").key()
    assert Identity.parse("alice").key() != Identity.parse("alice@x").key()
    table = {Identity.parse("Bob@x.org").key(): 1}
    assert table[Identity.parse("bob@X.org").key()] == 1


def test_equals_is_strongswan_equality():
    assert Identity.parse("Bob@x.org").equals(Identity.parse("bob@X.ORG"))
    assert not Identity.parse("bob@x.org").equals(Identity.parse("*@x.org"))
    assert Identity.parse("C=CH, CN=moon").equals(Identity.parse("C=ch, CN=MOON"))


def test_contains_wildcards():
    assert Identity.parse("*@example.org").contains_wildcards
    assert Identity.parse("C=CH, CN=*").contains_wildcards
    assert Identity.ANY.contains_wildcards
    assert not Identity.parse("C=CH, CN=moon").contains_wildcards
    assert not Identity.parse("192.0.2.1").contains_wildcards


def test_certificate_contains_subject_and_sans(server_cert):
    cert = server_cert.cert
    subject = Identity.from_dn_der(cert.subject.public_bytes())
    assert str(subject) == "C=CH, O=ikegate test, CN=vpn.example.org"
    assert cert_has_identity(cert, subject) == MATCH_PERFECT
    assert cert_has_identity(cert, Identity.parse("C=CH, O=ikegate test, CN=vpn.example.org")) == MATCH_PERFECT
    assert cert_has_identity(cert, Identity.parse("@vpn.example.org")) == MATCH_PERFECT
    assert cert_has_identity(cert, Identity.parse("*.example.org")) == MATCH_ONE_WILDCARD
    assert cert_has_identity(cert, Identity.parse("@other.example.org")) == MATCH_NONE
    assert cert_has_identity(cert, Identity.parse("192.0.2.1")) == MATCH_NONE


def test_key_id_names_the_certificate(server_cert):
    from cryptography.hazmat.primitives import hashes, serialization

    spki = server_cert.cert.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(spki)
    key_id = Identity(ID_KEY_ID, digest.finalize())
    assert key_id.key_id_matches_cert(server_cert.cert)
    assert cert_has_identity(server_cert.cert, key_id) == MATCH_PERFECT
    assert not Identity(ID_KEY_ID, b"\x00" * 20).key_id_matches_cert(server_cert.cert)
