"""Demo and test PKIs made with ``cryptography``: CAs, server and client certificates.

The certificates satisfy what the target clients check (client-behaviour.md):
the server certificate has CN = the server name, a dNSName SAN for it (and for
every extra name; IP addresses get both an iPAddress SAN and a dNSName SAN with
the textual address, since Windows only matches dNSNames), the serverAuth and
ikeIntermediate (1.3.6.1.5.5.8.2.2) extended key usages, keyUsage
digitalSignature (+ keyEncipherment for RSA), subject/authority key identifiers,
SHA-256 signatures and 825 days of validity (Apple's limit for TLS server
certificates).  Nothing is written to disk here and no key is cached.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ikegate.der import OCTET_STRING, encode_tlv

#: id-kp-ipsecIKE's sibling "IP Security IKE Intermediate" (RFC 4945 section 5.1.3.12
#: mentions it; Windows and older macOS look for it).
IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")

#: A private, UUID-derived OID (ITU-T X.667 "2.25" arc) for the padding extension
#: that makes certificates big for IKE fragmentation tests.
PADDING_EXTENSION = ObjectIdentifier("2.25.168829667249173612864842598267187304838")

_CLOCK_SKEW = datetime.timedelta(hours=1)
_EC_CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The unencrypted key in the classic format strongSwan's ``: RSA`` / ``: ECDSA``
        lines expect: PKCS#1 for RSA, SEC1 for ECDSA (PKCS#8 for Ed25519)."""
        fmt = (
            serialization.PrivateFormat.PKCS8
            if isinstance(self.key, ed25519.Ed25519PrivateKey)
            else serialization.PrivateFormat.TraditionalOpenSSL
        )
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@dataclass(frozen=True)
class DemoPki:
    """A root CA, the intermediates below it (root side first) and a server credential."""

    root: Credential
    intermediates: list[Credential]
    server: Credential

    @property
    def issuer(self) -> Credential:
        """The CA that issued the server certificate (the last intermediate, or the root)."""
        return self.intermediates[-1] if self.intermediates else self.root

    def chain_to_send(self) -> list[x509.Certificate]:
        """The intermediates as a server sends them: nearest to the leaf first."""
        return [c.cert for c in reversed(self.intermediates)]


def new_key(key_type: str = "rsa", key_size: int | None = None):
    """A fresh private key: ``"rsa"`` (default 2048 bits), ``"ecdsa"`` (curve by
    ``key_size`` 256/384/521, default P-256) or ``"ed25519"``."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size or 2048)
    if key_type == "ecdsa":
        try:
            return ec.generate_private_key(_EC_CURVES[key_size or 256]())
        except KeyError:
            raise ValueError(f"no ECDSA curve of {key_size} bits (use 256, 384 or 521)") from None
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r} (use rsa, ecdsa or ed25519)")


def make_ca(
    name: str | x509.Name,
    key_type: str = "rsa",
    parent: Credential | None = None,
    *,
    days: int = 3650,
    key_size: int | None = None,
    path_length: int | None = None,
    padding: int = 0,
    not_before: datetime.datetime | None = None,
) -> Credential:
    """A CA certificate: self-signed root if ``parent`` is None, else issued by it.

    ``name`` is the CN (or a full ``x509.Name``).  ``padding`` adds a non-critical
    extension of that many bytes (to make big chains).
    """
    key = new_key(key_type, key_size)
    subject = _name(name)
    builder = _builder(subject, key, parent, days, not_before, padding)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    return _sign(builder, key, parent)


def make_server_cert(
    ca: Credential,
    server_name: str,
    sans: Iterable[str] = (),
    key_type: str = "rsa",
    days: int = 825,
    *,
    key_size: int | None = None,
    padding: int = 0,
    not_before: datetime.datetime | None = None,
) -> Credential:
    """A gateway certificate: CN=server_name, SAN DNS:server_name plus ``sans``
    (DNS names, or IP addresses, which get an iPAddress and a dNSName entry),
    EKU serverAuth + ikeIntermediate."""
    return _end_entity(
        ca,
        server_name,
        [server_name, *sans],
        [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE],
        key_type,
        days,
        key_size,
        padding,
        not_before,
    )


def make_client_cert(
    ca: Credential,
    name: str,
    key_type: str = "rsa",
    days: int = 825,
    *,
    sans: Iterable[str] = (),
    key_size: int | None = None,
    not_before: datetime.datetime | None = None,
) -> Credential:
    """A client certificate: CN=name, SAN rfc822Name if ``name`` has an '@', else
    dNSName, plus ``sans``; EKU clientAuth + ikeIntermediate."""
    return _end_entity(
        ca,
        name,
        [name, *sans],
        [ExtendedKeyUsageOID.CLIENT_AUTH, IKE_INTERMEDIATE],
        key_type,
        days,
        key_size,
        0,
        not_before,
    )


def make_demo_pki(
    server_name: str = "vpn.example.org",
    sans: Iterable[str] = (),
    key_type: str = "rsa",
    *,
    intermediates: int = 1,
    key_size: int | None = None,
    padding: int = 0,
    organization: str = "ikegate demo",
) -> DemoPki:
    """Root CA -> ``intermediates`` intermediate CAs -> server certificate."""
    root = make_ca(
        _org_name(organization, f"{organization} Root CA"), key_type, key_size=key_size, padding=padding
    )
    chain: list[Credential] = []
    issuer = root
    for index in range(intermediates):
        label = "Intermediate CA" if intermediates == 1 else f"Intermediate CA {index + 1}"
        issuer = make_ca(
            _org_name(organization, f"{organization} {label}"),
            key_type,
            issuer,
            days=3650,
            key_size=key_size,
            padding=padding,
        )
        chain.append(issuer)
    server = make_server_cert(issuer, server_name, sans, key_type, key_size=key_size, padding=padding)
    return DemoPki(root, chain, server)


def make_large_chain(
    server_name: str = "vpn.example.org",
    *,
    intermediates: int = 4,
    key_type: str = "rsa",
    key_size: int | None = None,
    padding: int = 1500,
) -> DemoPki:
    """A deliberately big chain (for IKE fragmentation tests): several intermediates,
    each certificate padded by ``padding`` bytes; use ``key_size=4096`` for bigger
    keys (slower to generate).  With the defaults the leaf plus the intermediates
    come to about 9 KB of DER."""
    return make_demo_pki(
        server_name,
        key_type=key_type,
        intermediates=intermediates,
        key_size=key_size,
        padding=padding,
        organization="ikegate large-chain test",
    )


# --------------------------------------------------------------------------


def _name(name: str | x509.Name) -> x509.Name:
    if isinstance(name, x509.Name):
        return name
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _org_name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject, key, parent, days, not_before, padding) -> x509.CertificateBuilder:
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - _CLOCK_SKEW
    issuer_name = parent.cert.subject if parent else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer_public = (parent.key if parent else key).public_key()
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False
    )
    if padding > 0:
        # The extension value is a DER OCTET STRING of zero bytes.
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PADDING_EXTENSION, encode_tlv(OCTET_STRING, bytes(padding))),
            critical=False,
        )
    return builder


def _sign(builder: x509.CertificateBuilder, key, parent: Credential | None) -> Credential:
    signer = parent.key if parent else key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Credential(builder.sign(signer, algorithm), key)


def _end_entity(
    ca: Credential,
    common_name: str,
    names: list[str],
    usages: list[ObjectIdentifier],
    key_type: str,
    days: int,
    key_size: int | None,
    padding: int,
    not_before: datetime.datetime | None,
) -> Credential:
    key = new_key(key_type, key_size)
    builder = _builder(_name(common_name), key, ca, days, not_before, padding)
    builder = builder.add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=isinstance(key, rsa.RSAPrivateKey),
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return _sign(builder, key, ca)


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    """SAN entries for names: e-mail addresses, IP addresses (as iPAddress and as
    dNSName, for Windows), DNS names; duplicates dropped, order kept."""
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            address = None
        if address is not None:
            entries: list[x509.GeneralName] = [x509.IPAddress(address), x509.DNSName(str(address))]
        elif "@" in name:
            entries = [x509.RFC822Name(name)]
        else:
            entries = [x509.DNSName(name)]
        for entry in entries:
            if entry not in result:
                result.append(entry)
    return result
