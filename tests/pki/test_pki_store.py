"""CertStore, chain building, CERTREQ key hashes and certificate identities."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from ikegate.pki.generate import Credential, make_ca, make_client_cert, make_server_cert, new_key
from ikegate.pki.keys import PkiError
from ikegate.pki.store import (
    MAX_TRUST_PATH_LEN,
    CertStore,
    cert_identities,
    cert_matches_identity,
    check_server_cert,
    dn_equal,
    dn_to_string,
    is_self_signed,
    key_hash,
    private_key_matches,
)
from ikegate.wire.constants import IdType

# ECDSA keeps key generation cheap; RSA is exercised where it matters.
KT = "ecdsa"


@pytest.fixture(scope="module")
def pki():
    """root -> int1 -> int2 -> leaf, plus a leaf issued directly by the root."""
    root = make_ca("Test Root", KT)
    int1 = make_ca("Test Int 1", KT, root)
    int2 = make_ca("Test Int 2", KT, int1)
    leaf = make_server_cert(int2, "vpn.example.org", ["203.0.113.5", "2001:db8::5"], KT)
    direct = make_server_cert(root, "direct.example.org", key_type=KT)
    return {"root": root, "int1": int1, "int2": int2, "leaf": leaf, "direct": direct}


def _pem(cred: Credential) -> bytes:
    return cred.cert.public_bytes(serialization.Encoding.PEM)


def _der(cred: Credential) -> bytes:
    return cred.cert.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------
# CERTREQ key hashes


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_key_hash_equals_openssl_and_strongswan_pki(tmp_path, key_type):
    ca = make_ca("Hash CA", key_type)
    path = tmp_path / "ca.pem"
    path.write_bytes(_pem(ca))
    # openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha1sum
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-pubkey", "-noout"], check=True, capture_output=True
    ).stdout
    spki = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey, check=True, capture_output=True
    ).stdout
    assert key_hash(ca.cert) == hashlib.sha1(spki).digest()
    # strongSwan's own computation: "keyid (SHA-1 of subjectPublicKeyInfo)"
    out = subprocess.run(
        ["pki", "--keyid", "--type", "x509", "--in", str(path)], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    index = next(i for i, line in enumerate(lines) if "SHA-1 of subjectPublicKeyInfo" in line)
    assert bytes.fromhex(lines[index + 1].strip().replace(":", "")) == key_hash(ca.cert)


def test_ca_key_hashes_and_find_by_key_hash(pki):
    store = CertStore([pki["root"].cert, pki["int1"].cert, pki["int2"].cert])
    hashes = store.ca_key_hashes()
    assert hashes == [key_hash(pki[n].cert) for n in ("root", "int1", "int2")]
    assert all(len(h) == 20 for h in hashes)
    assert store.find_by_key_hash(hashes[1]) == pki["int1"].cert
    assert store.find_by_key_hash(b"\x00" * 20) is None


# --------------------------------------------------------------------------
# Loading ipsec.d/cacerts


def test_load_cacerts_pem_der_first_object_and_warnings(tmp_path, pki):
    d = tmp_path / "cacerts"
    d.mkdir()
    (d / "a-int2.pem").write_bytes(_pem(pki["int2"]))
    (d / "b-root.der").write_bytes(_der(pki["root"]))
    # a "fullchain" file: only its first object (int1) counts, as in strongSwan
    (d / "c-fullchain.pem").write_bytes(_pem(pki["int1"]) + _pem(pki["leaf"]))
    (d / "d-leaf.pem").write_bytes(_pem(pki["leaf"]))  # no CA basicConstraints
    (d / "e-junk.crt").write_bytes(b"this is not a certificate\n")
    (d / "subdir").mkdir()
    (d / "subdir" / "ignored.pem").write_bytes(_pem(pki["root"]))

    store = CertStore()
    warnings = store.load_cacerts(d)

    assert store.cas == [pki["int2"].cert, pki["root"].cert, pki["int1"].cert]
    assert len(warnings) == 2
    assert any("d-leaf.pem" in w and "basic" in w for w in warnings)
    assert any("e-junk.crt" in w for w in warnings)


def test_load_cacerts_missing_directory(tmp_path):
    store = CertStore()
    warnings = store.load_cacerts(tmp_path / "nope")
    assert store.cas == [] and len(warnings) == 1


def test_add_ca_rejects_end_entity(pki):
    with pytest.raises(PkiError):
        CertStore().add_ca(pki["leaf"].cert)


# --------------------------------------------------------------------------
# Chain building


def test_chain_stops_before_root(pki):
    store = CertStore([pki["root"].cert, pki["int1"].cert, pki["int2"].cert])
    assert store.build_chain(pki["leaf"].cert) == [pki["int2"].cert, pki["int1"].cert]


def test_chain_root_absent(pki):
    store = CertStore([pki["int2"].cert, pki["int1"].cert])
    assert store.build_chain(pki["leaf"].cert) == [pki["int2"].cert, pki["int1"].cert]


def test_chain_stops_at_certreq_ca(pki):
    store = CertStore([pki["root"].cert, pki["int1"].cert, pki["int2"].cert])
    leaf = pki["leaf"].cert
    assert store.build_chain(leaf, [key_hash(pki["int1"].cert)]) == [pki["int2"].cert]
    assert store.build_chain(leaf, [key_hash(pki["int2"].cert)]) == []
    # a CERTREQ naming the root or unknown CAs changes nothing
    assert store.build_chain(leaf, [key_hash(pki["root"].cert), b"\x01" * 20]) == [
        pki["int2"].cert,
        pki["int1"].cert,
    ]


def test_leaf_issued_by_root_has_no_intermediates(pki):
    store = CertStore([pki["root"].cert, pki["int1"].cert, pki["int2"].cert])
    assert store.build_chain(pki["direct"].cert) == []


def test_self_signed_leaf_has_no_chain(pki):
    assert is_self_signed(pki["root"].cert)
    assert not is_self_signed(pki["int1"].cert)
    store = CertStore([pki["root"].cert])
    assert store.build_chain(pki["root"].cert) == []


def test_unrelated_and_impostor_cas_ignored(pki):
    """A CA with the right name but another key (loaded first) is skipped: the
    signature decides; unrelated CAs never appear."""
    impostor = make_ca(pki["int2"].cert.subject, KT, pki["int1"])
    unrelated_root = make_ca("Other Root", KT)
    unrelated_int = make_ca("Other Int", KT, unrelated_root)
    store = CertStore(
        [impostor.cert, unrelated_root.cert, unrelated_int.cert, pki["int2"].cert, pki["int1"].cert]
    )
    assert store.build_chain(pki["leaf"].cert) == [pki["int2"].cert, pki["int1"].cert]


def test_chain_loop_terminates():
    """A and B cross-signed: A' (subject A, key A) issued by B, B' (subject B, key B)
    issued by A.  Walking from a leaf of A stops when B' leads back to A'."""
    key_a, key_b = new_key(KT), new_key(KT)
    name_a = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loop A")])
    name_b = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loop B")])
    a_self = _ca_with_key(name_a, key_a, name_a, key_a)
    b_by_a = _ca_with_key(name_b, key_b, name_a, key_a)
    a_by_b = _ca_with_key(name_a, key_a, name_b, key_b)
    leaf = make_server_cert(Credential(a_self, key_a), "loop.example.org", key_type=KT)
    store = CertStore([a_by_b, b_by_a])
    assert store.build_chain(leaf.cert) == [a_by_b, b_by_a]


def _ca_with_key(subject, key, issuer, issuer_key) -> x509.Certificate:
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def test_chain_length_limit():
    root = make_ca("Deep Root", KT)
    cas = []
    issuer = root
    for i in range(MAX_TRUST_PATH_LEN + 1):
        issuer = make_ca(f"Deep {i}", KT, issuer)
        cas.append(issuer)
    ok_leaf = make_server_cert(cas[MAX_TRUST_PATH_LEN - 1], "ok.example.org", key_type=KT)
    deep_leaf = make_server_cert(cas[-1], "deep.example.org", key_type=KT)
    store = CertStore([root.cert] + [c.cert for c in cas])
    assert len(store.build_chain(ok_leaf.cert)) == MAX_TRUST_PATH_LEN
    with pytest.raises(PkiError):
        store.build_chain(deep_leaf.cert)


# --------------------------------------------------------------------------
# Identities


def test_cert_identities(pki):
    ca = pki["int2"]
    cert = make_server_cert(
        ca, "vpn.example.org", ["*.example.org", "2001:db8::5", "198.51.100.7"], KT
    ).cert
    ids = cert_identities(cert)
    assert ids[0] == (IdType.DER_ASN1_DN, cert.subject.public_bytes())
    assert ids[1:] == [
        (IdType.FQDN, b"vpn.example.org"),
        (IdType.FQDN, b"*.example.org"),
        (IdType.IPV6_ADDR, ipaddress.ip_address("2001:db8::5").packed),
        (IdType.FQDN, b"2001:db8::5"),
        (IdType.IPV4_ADDR, bytes([198, 51, 100, 7])),
        (IdType.FQDN, b"198.51.100.7"),
    ]


def test_cert_identities_rfc822(pki):
    cert = make_client_cert(pki["int2"], "Alice@Example.org", KT).cert
    assert (IdType.RFC822_ADDR, b"Alice@Example.org") in cert_identities(cert)
    assert cert_matches_identity(cert, IdType.RFC822_ADDR, b"alice@example.ORG")
    assert not cert_matches_identity(cert, IdType.FQDN, b"alice@example.org")


def test_matches_fqdn_case_insensitive_no_wildcards(pki):
    cert = make_server_cert(pki["int2"], "vpn.example.org", ["*.example.org"], KT).cert
    assert cert_matches_identity(cert, IdType.FQDN, b"VPN.Example.ORG")
    assert cert_matches_identity(cert, IdType.FQDN, b"*.example.org")
    assert not cert_matches_identity(cert, IdType.FQDN, b"other.example.org")
    assert not cert_matches_identity(cert, IdType.FQDN, b"vpn.example.org.")


def test_matches_ip_exact(pki):
    leaf = pki["leaf"].cert
    assert cert_matches_identity(leaf, IdType.IPV4_ADDR, bytes([203, 0, 113, 5]))
    assert not cert_matches_identity(leaf, IdType.IPV4_ADDR, bytes([203, 0, 113, 6]))
    v6 = ipaddress.ip_address("2001:db8::5").packed
    assert cert_matches_identity(leaf, IdType.IPV6_ADDR, v6)
    assert not cert_matches_identity(leaf, IdType.IPV4_ADDR, v6)


def test_matches_key_id(pki):
    leaf = pki["leaf"].cert
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert_matches_identity(leaf, IdType.KEY_ID, ski)
    assert cert_matches_identity(leaf, IdType.KEY_ID, key_hash(leaf))
    assert not cert_matches_identity(leaf, IdType.KEY_ID, b"\x00" * 20)


def _name(*attrs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value, _type=t) for oid, value, t in attrs])


def test_dn_matching_normalised():
    utf8, printable = _ASN1Type.UTF8String, _ASN1Type.PrintableString
    base = _name((NameOID.COUNTRY_NAME, "CH", printable), (NameOID.COMMON_NAME, "vpn.example.org", utf8))
    # the same text in another string type is the same DN (bytes differ)
    other_type = _name(
        (NameOID.COUNTRY_NAME, "CH", printable), (NameOID.COMMON_NAME, "vpn.example.org", printable)
    )
    assert base.public_bytes() != other_type.public_bytes()
    assert dn_equal(base, other_type)
    assert dn_equal(base.public_bytes(), other_type.public_bytes())
    # PrintableStrings compare without case, other strings with case (strongSwan rdn_equals)
    upper_printable = _name(
        (NameOID.COUNTRY_NAME, "ch", printable), (NameOID.COMMON_NAME, "VPN.example.org", printable)
    )
    assert dn_equal(other_type, upper_printable)
    upper_utf8 = _name((NameOID.COUNTRY_NAME, "CH", printable), (NameOID.COMMON_NAME, "VPN.example.org", utf8))
    assert not dn_equal(base, upper_utf8)
    # order and attribute types matter
    swapped = _name((NameOID.COMMON_NAME, "vpn.example.org", utf8), (NameOID.COUNTRY_NAME, "CH", printable))
    assert not dn_equal(base, swapped)
    org = _name((NameOID.COUNTRY_NAME, "CH", printable), (NameOID.ORGANIZATION_NAME, "vpn.example.org", utf8))
    assert not dn_equal(base, org)
    assert not dn_equal(base, _name((NameOID.COUNTRY_NAME, "CH", printable)))
    # junk never matches and never raises
    for junk in (b"", b"\x30", b"\x30\x03\x31\x01", b"\x31\x00", base.public_bytes() + b"\x00"):
        assert not dn_equal(base, junk)
    assert dn_equal(b"\x30\x00", x509.Name([]))


def test_cert_matches_dn(pki):
    leaf = pki["leaf"].cert
    assert cert_matches_identity(leaf, IdType.DER_ASN1_DN, leaf.subject.public_bytes())
    same_in_printable = _name((NameOID.COMMON_NAME, "vpn.example.org", _ASN1Type.PrintableString))
    assert cert_matches_identity(leaf, IdType.DER_ASN1_DN, same_in_printable.public_bytes())
    assert not cert_matches_identity(leaf, IdType.DER_ASN1_DN, pki["int2"].cert.subject.public_bytes())
    assert not cert_matches_identity(leaf, IdType.DER_ASN1_DN, b"\x30\x05junk")


def test_dn_to_string(pki):
    assert dn_to_string(pki["int1"].cert.subject.public_bytes()) == "CN=Test Int 1"
    assert dn_to_string(b"\x01").startswith("<invalid DN")


def test_private_key_matches(pki):
    assert private_key_matches(pki["leaf"].cert, pki["leaf"].key)
    assert not private_key_matches(pki["leaf"].cert, pki["int2"].key)
    rsa_cert = make_ca("RSA CA", "rsa")
    assert private_key_matches(rsa_cert.cert, rsa_cert.key)
    assert not private_key_matches(rsa_cert.cert, pki["leaf"].key)


# --------------------------------------------------------------------------
# Server certificate checks


def test_check_server_cert_clean(pki):
    assert check_server_cert(pki["leaf"].cert) == []


def test_check_server_cert_problems(pki):
    client = make_client_cert(pki["int2"], "alice@example.org", KT).cert
    warnings = check_server_cert(client)
    assert any("serverAuth" in w for w in warnings)
    assert any("DNS" in w for w in warnings)

    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=100)
    expired = make_server_cert(pki["int2"], "vpn.example.org", key_type=KT, days=10, not_before=old).cert
    assert any("expired" in w for w in check_server_cert(expired))
    soon = make_server_cert(pki["int2"], "vpn.example.org", key_type=KT, days=110, not_before=old).cert
    assert any("expires soon" in w for w in check_server_cert(soon))
    assert check_server_cert(soon, now=old + datetime.timedelta(days=1)) == []
