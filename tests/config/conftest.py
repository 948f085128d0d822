"""Fixtures of the configuration tests: throwaway certificates and the seed confdir.

The seed configuration is seed-config.md's ipsec.conf and ipsec.secrets, byte for byte
as ``ikegate.pki.example`` writes them (tests/pki/test_pki_example.py checks those
against the seed document), with the absolute paths (server certificate and key, updown
script) moved into the test's directory.  The certificate is a fresh self-signed RSA
certificate made here with ``cryptography`` (CN=vpn.example.org, SAN DNS:vpn.example.org).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ikegate.pki.example import seed_ipsec_conf, seed_ipsec_secrets

#: ipsec.d/secrets/myvpn of the test seed: one more EAP user and one NTLM user (the
#: NTLM value is an arbitrary well-formed 16-byte value, not a real password's hash).
MYVPN_SECRETS = """\
alice : EAP "alice-password"
carol : NTLM 0x000102030405060708090a0b0c0d0e0f
"""

SERVER_NAME = "vpn.example.org"


@dataclass(frozen=True)
class CertKey:
    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate


def make_cert(common_name: str = SERVER_NAME, key_type: str = "rsa", sans: tuple[str, ...] = (SERVER_NAME,),
              extra_subject: tuple[tuple, ...] = ()) -> CertKey:
    """A self-signed certificate and its key (PEM)."""
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(oid, value) for oid, value in extra_subject]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    name = x509.Name(attributes)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert)


@pytest.fixture(scope="session")
def server_cert() -> CertKey:
    """The seed server's certificate: RSA, O=ikegate test, CN=vpn.example.org."""
    return make_cert(extra_subject=((NameOID.COUNTRY_NAME, "CH"), (NameOID.ORGANIZATION_NAME, "ikegate test")))


@pytest.fixture(scope="session")
def ec_cert() -> CertKey:
    return make_cert("ec.example.org", key_type="ecdsa", sans=("ec.example.org",))


@dataclass(frozen=True)
class SeedDir:
    confdir: Path
    cert_path: Path
    key_path: Path
    updown_path: Path
    cert: CertKey


def write_seed(confdir: Path, cert: CertKey) -> SeedDir:
    """The seed configuration in ``confdir`` (created), paths moved into it."""
    ssl_dir = confdir / "ssl" / "private"
    ssl_dir.mkdir(parents=True)
    cert_path, key_path = ssl_dir / "vpn-server.crt", ssl_dir / "vpn-server.key"
    cert_path.write_bytes(cert.cert_pem)
    key_path.write_bytes(cert.key_pem)
    updown = confdir / "strongswan.d" / "proxyndp.updown"
    updown.parent.mkdir()
    updown.write_text("#!/bin/bash\n")
    (confdir / "ipsec.conf").write_text(seed_ipsec_conf(cert_path, updown))
    (confdir / "ipsec.secrets").write_text(seed_ipsec_secrets(key_path))
    (confdir / "ipsec.d" / "secrets").mkdir(parents=True)
    (confdir / "ipsec.d" / "secrets" / "myvpn").write_text(MYVPN_SECRETS)
    (confdir / "ipsec.d" / "cacerts").mkdir()
    (confdir / "ipsec.d" / "cacerts" / "intermediate.crt").write_bytes(cert.cert_pem)
    return SeedDir(confdir, cert_path, key_path, updown, cert)


@pytest.fixture
def seed_dir(tmp_path, server_cert) -> SeedDir:
    return write_seed(tmp_path / "etc", server_cert)
