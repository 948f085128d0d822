"""A small demo PKI for the end-to-end tests: root CA -> intermediate CA -> server cert.

The shape follows the seed guide: the server holds its own certificate only
(``vpn-server.crt``), the intermediate goes to ``ipsec.d/cacerts``, clients trust the
root.  Keys are RSA-2048 (what Windows and Apple clients accept everywhere); the server
certificate carries the DNS name in the SAN and the serverAuth + ikeIntermediate EKUs
that macOS/iOS and Windows look for.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
SERVER_NAME = "vpn.example.org"


@dataclass(frozen=True)
class DemoPki:
    root_cert: Path
    intermediate_cert: Path
    server_cert: Path
    server_key: Path
    server_dn: str  # strongSwan's rendering of the subject, e.g. "C=CH, O=..., CN=..."
    server_name: str = SERVER_NAME


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikegate interop"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _cert(subject: x509.Name, issuer: x509.Name, key, issuer_key, *, ca: bool, path_len: int | None = None,
          san: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = (
            builder.add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(san or SERVER_NAME)]), critical=False)
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_demo_pki(directory: Path, server_name: str = SERVER_NAME) -> DemoPki:
    """Write root.crt, intermediate.crt, vpn-server.crt and vpn-server.key (PKCS#1 PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name, inter_name = _name("ikegate interop Root CA"), _name("ikegate interop Intermediate CA")
    server_subject = _name(server_name)
    root = _cert(root_name, root_name, root_key, root_key, ca=True)
    inter = _cert(inter_name, root_name, inter_key, root_key, ca=True, path_len=0)
    server = _cert(server_subject, inter_name, server_key, inter_key, ca=False, san=server_name)
    paths = DemoPki(directory / "root.crt", directory / "intermediate.crt",
                    directory / "vpn-server.crt", directory / "vpn-server.key",
                    f"C=CH, O=ikegate interop, CN={server_name}", server_name)
    paths.root_cert.write_bytes(_pem(root))
    paths.intermediate_cert.write_bytes(_pem(inter))
    paths.server_cert.write_bytes(_pem(server))
    paths.server_key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    paths.server_key.chmod(0o600)
    return paths
