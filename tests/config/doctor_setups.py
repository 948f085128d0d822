"""Purpose-built setups for the doctor tests: the clean seed setup of
``ikegate.pki.example.write_example`` and ways to spoil it.

``write_example`` does not keep its CA keys, so certificates with defects are issued
here by a small PKI of our own (:class:`DoctorPki`: root -> intermediate, P-256 keys,
fast to make) which :func:`install_pki` puts in place of the example's intermediate and
server certificate.  Everything else is the example's, edited line by line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ikegate.config import doctor
from ikegate.pki.example import ExampleLayout, write_example

SERVER_NAME = "vpn.example.org"
NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Credential:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())


@dataclass(frozen=True)
class DoctorPki:
    root: Credential
    intermediate: Credential


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "doctor test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str, parent: Credential | None) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn)
    signer = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.cert.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    return Credential(builder.sign(signer, hashes.SHA256()), key)


def make_pki() -> DoctorPki:
    root = _ca("doctor test Root CA", None)
    return DoctorPki(root, _ca("doctor test Intermediate CA", root))


def make_leaf(
    pki: DoctorPki,
    *,
    cn: str = SERVER_NAME,
    sans: list[x509.GeneralName] | None = None,
    eku: list | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Credential:
    """A server certificate issued by the test intermediate.  Defaults: CN and SAN DNS:
    the server name, EKU serverAuth, valid from yesterday for a year.  ``sans=[]`` or
    ``eku=[]`` leave the extension out."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(SERVER_NAME)] if sans is None else sans
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if eku is None else eku
    issuer = pki.intermediate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return Credential(builder.sign(issuer.key, hashes.SHA256()), key)


def seed(directory: Path) -> ExampleLayout:
    """The clean seed setup (ECDSA, so the server key can be replaced by our P-256 keys)."""
    return write_example(directory, SERVER_NAME, key_type="ecdsa")


def install_pki(layout: ExampleLayout, pki: DoctorPki, leaf: Credential, *, extra_pem: bytes = b"") -> None:
    """Our intermediate in ipsec.d/cacerts and ``leaf`` (+ ``extra_pem`` appended to its
    file) as the server certificate, with its key."""
    layout.intermediate_cert.write_bytes(pki.intermediate.cert_pem())
    layout.server_cert.write_bytes(leaf.cert_pem() + extra_pem)
    layout.server_key.write_bytes(leaf.key_pem())


def _conf_lines(layout: ExampleLayout) -> list[str]:
    return layout.ipsec_conf.read_text().splitlines()


def set_option(layout: ExampleLayout, key: str, value: str) -> None:
    """Set ``key=value`` in conn myvpn (replacing the line, or appending one)."""
    lines = _conf_lines(layout)
    for index, line in enumerate(lines):
        if line.strip().startswith(f"{key}="):
            lines[index] = f"    {key}={value}"
            break
    else:
        lines.append(f"    {key}={value}")
    layout.ipsec_conf.write_text("\n".join(lines) + "\n")


def remove_option(layout: ExampleLayout, key: str) -> None:
    lines = [line for line in _conf_lines(layout) if not line.strip().startswith(f"{key}=")]
    layout.ipsec_conf.write_text("\n".join(lines) + "\n")


def line_of(layout: ExampleLayout, key: str) -> int:
    """The line number of ``key=`` in ipsec.conf."""
    for number, line in enumerate(_conf_lines(layout), 1):
        if line.strip().startswith(f"{key}="):
            return number
    raise LookupError(key)


def run_doctor(confdir: Path, *args: str) -> tuple[int, str]:
    """``ikegate doctor --confdir DIR ARGS`` through the module's own argparse setup:
    (exit status, standard output)."""
    parser = argparse.ArgumentParser(prog="ikegate doctor")
    doctor.add_arguments(parser)
    parsed = parser.parse_args(["--confdir", str(confdir), *args])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = doctor.run(parsed)
    return status, out.getvalue()


def codes(findings, level: str | None = None) -> list[str]:
    return [f.code for f in findings if level is None or f.level == level]
