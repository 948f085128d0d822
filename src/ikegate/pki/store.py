"""The CA certificate store, chain building and certificate identities.

What strongSwan does with ``ipsec.d/cacerts`` and ``leftcert``, redone on
``cryptography``:

* every regular file of ``ipsec.d/cacerts`` is one CA certificate (PEM or DER, the
  first object of the file only); a certificate without CA basicConstraints is
  discarded (strongSwan's stroke_cred.c ``load_ca_cert``);
* the intermediates sent after our own certificate are found by walking issuers
  among those CAs (credential_manager.c ``build_trustchain``): the walk stops at a
  self-signed root, which is never sent, or at a CA the peer named in a CERTREQ
  (that CA and everything above it are not sent either, the peer has them);
* a CERTREQ names CAs by the SHA-1 hash of their SubjectPublicKeyInfo (RFC 7296
  section 3.7), which is what :meth:`CertStore.ca_key_hashes` returns;
* a certificate "contains" an IKE identity if its subject DN or one of its
  subjectAltNames equals it (x509_cert.c ``has_subject``).

Nothing here does I/O except :meth:`CertStore.load_cacerts`.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ikegate.der import OBJECT_IDENTIFIER, SEQUENCE, SET, decode_oid, read_tlvs
from ikegate.pki.keys import PkiError, load_certificate
from ikegate.wire.constants import IdType

#: strongSwan's MAX_TRUST_PATH_LEN: no more intermediates than this are ever sent.
MAX_TRUST_PATH_LEN = 7

#: Days before expiry from which :func:`check_server_cert` warns.
EXPIRY_WARNING_DAYS = 30


# --------------------------------------------------------------------------
# Key hashes and small certificate predicates


def spki_der(public_key) -> bytes:
    """DER of a public key's SubjectPublicKeyInfo."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the certificate's SubjectPublicKeyInfo: how a CERTREQ names a CA."""
    return hashlib.sha1(spki_der(cert.public_key())).digest()


def is_ca(cert: x509.Certificate) -> bool:
    """True if the certificate has basicConstraints with cA set."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return bc.ca


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s name and key issued ``cert``.

    Like strongSwan's x509 ``issued_by``: if both the authorityKeyIdentifier of
    ``cert`` and the subjectKeyIdentifier of ``issuer`` exist they must agree; the
    issuer name must equal the issuer's subject and the signature must verify.
    """
    aki = _key_identifier(cert, x509.AuthorityKeyIdentifier)
    ski = _key_identifier(issuer, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki != ski:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """True if the certificate's own key signed it under its own name (a root)."""
    return is_issued_by(cert, cert)


def private_key_matches(cert: x509.Certificate, private_key) -> bool:
    """True if ``private_key`` belongs to the certificate (same SubjectPublicKeyInfo)."""
    try:
        return spki_der(cert.public_key()) == spki_der(private_key.public_key())
    except (AttributeError, ValueError, UnsupportedAlgorithm):
        return False


def _key_identifier(cert: x509.Certificate, ext_class) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(ext_class).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value.key_identifier if ext_class is x509.AuthorityKeyIdentifier else value.digest


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


# --------------------------------------------------------------------------
# The store


class CertStore:
    """The CA certificates we know: loaded from ``ipsec.d/cacerts`` or added."""

    def __init__(self, cas: Iterable[x509.Certificate] = ()) -> None:
        self.cas: list[x509.Certificate] = []
        self.crls: list[x509.CertificateRevocationList] = []  # ipsec.d/crls
        for cert in cas:
            self.add_ca(cert)

    def add_ca(self, cert: x509.Certificate) -> None:
        """Add a CA certificate (a second copy of the same certificate is ignored).

        Raises :class:`PkiError` if it lacks CA basicConstraints.
        """
        if not is_ca(cert):
            raise PkiError(f'certificate "{_describe(cert)}" lacks the CA basic constraint')
        if cert not in self.cas:
            self.cas.append(cert)

    def load_cacerts(self, directory: str | Path) -> list[str]:
        """Load every regular file of ``directory`` as a CA certificate.

        Returns human-readable warnings for what was skipped: unreadable files,
        files holding no certificate, and certificates without CA basicConstraints
        ("lacks ca basic constraint, discarded", as strongSwan logs).  A missing
        directory gives one warning and loads nothing.  Files are read in name order.
        """
        warnings: list[str] = []
        directory = Path(directory)
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            return [f"CA certificate directory '{directory}' unreadable: {exc.strerror}"]
        for path in entries:
            try:
                if not path.is_file():
                    continue
                cert = load_certificate(path)
            except PkiError as exc:
                warnings.append(f"{exc}, skipped")
                continue
            except OSError as exc:
                warnings.append(f"CA certificate file '{path}' unreadable: {exc.strerror}, skipped")
                continue
            if not is_ca(cert):
                warnings.append(
                    f'CA certificate "{_describe(cert)}" from \'{path}\' lacks the CA basic '
                    "constraint, discarded"
                )
                continue
            self.add_ca(cert)
        return warnings

    def add_crl(self, crl: x509.CertificateRevocationList) -> None:
        """Add a certificate revocation list (checked by :meth:`is_revoked`)."""
        if crl not in self.crls:
            self.crls.append(crl)

    def load_crls(self, directory: str | Path) -> list[str]:
        """Load every regular file of ``directory`` (``ipsec.d/crls``) as a CRL, PEM or
        DER.  Returns warnings for what was skipped; a missing directory loads nothing
        silently (strongSwan's default layout may lack it)."""
        warnings: list[str] = []
        directory = Path(directory)
        try:
            entries = sorted(directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [f"CRL directory '{directory}' unreadable: {exc.strerror}"]
        for path in entries:
            try:
                if not path.is_file():
                    continue
                data = path.read_bytes()
            except OSError as exc:
                warnings.append(f"CRL file '{path}' unreadable: {exc.strerror}, skipped")
                continue
            try:
                if b"-----BEGIN X509 CRL-----" in data:
                    crl = x509.load_pem_x509_crl(data)
                else:
                    crl = x509.load_der_x509_crl(data)
            except ValueError:
                warnings.append(f"CRL file '{path}' holds no CRL, skipped")
                continue
            self.add_crl(crl)
        return warnings

    def is_revoked(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        """True if a CRL that ``issuer`` signed lists ``cert``'s serial number.  CRLs
        signed by someone else, or whose signature fails, are ignored (and so is their
        age: an outdated CRL still revokes, as with strongSwan's default policy)."""
        for crl in self.crls:
            if crl.issuer != issuer.subject:
                continue
            try:
                if not crl.is_signature_valid(issuer.public_key()):
                    continue
            except (TypeError, ValueError, UnsupportedAlgorithm):
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return True
        return False

    def ca_key_hashes(self) -> list[bytes]:
        """SHA-1 SubjectPublicKeyInfo hashes of all CAs, in load order (CERTREQ data)."""
        hashes: list[bytes] = []
        for cert in self.cas:
            h = key_hash(cert)
            if h not in hashes:
                hashes.append(h)
        return hashes

    def find_by_key_hash(self, digest: bytes) -> x509.Certificate | None:
        """The first CA whose SubjectPublicKeyInfo SHA-1 hash is ``digest``, if any."""
        for cert in self.cas:
            if key_hash(cert) == digest:
                return cert
        return None

    def find_issuer(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The first CA (load order) that issued ``cert``, or None."""
        for candidate in self.cas:
            if candidate.subject == cert.issuer and is_issued_by(cert, candidate):
                return candidate
        return None

    def build_chain(
        self, leaf: x509.Certificate, requested_ca_hashes: Iterable[bytes] = ()
    ) -> list[x509.Certificate]:
        """The intermediate CA certificates to send after ``leaf``, nearest first.

        Follows issuers among the loaded CAs.  Stops at a self-signed root (not
        returned), at a CA whose key hash is in ``requested_ca_hashes`` (not
        returned), where no issuer is known (the root need not be loaded), or on a
        loop.  A self-signed leaf has no chain.  Raises :class:`PkiError` if more
        than :data:`MAX_TRUST_PATH_LEN` intermediates would be needed, where
        strongSwan refuses the certificate too.
        """
        requested = set(requested_ca_hashes)
        if is_self_signed(leaf):
            return []
        chain: list[x509.Certificate] = []
        current = leaf
        while True:
            issuer = self.find_issuer(current)
            if issuer is None or issuer == leaf or issuer in chain:
                break
            if requested and key_hash(issuer) in requested:
                break
            if is_self_signed(issuer):
                break
            if len(chain) == MAX_TRUST_PATH_LEN:
                raise PkiError(
                    f'trust chain of "{_describe(leaf)}" is longer than '
                    f"{MAX_TRUST_PATH_LEN} intermediate CAs"
                )
            chain.append(issuer)
            current = issuer
        return chain


# --------------------------------------------------------------------------
# Identities


def cert_identities(cert: x509.Certificate) -> list[tuple[int, bytes]]:
    """The IKE identities a certificate vouches for, as ``(IdType, ID data)``.

    The subject DN first (DER of the Name), then the subjectAltNames in order:
    dNSName -> FQDN, rfc822Name -> RFC822_ADDR, iPAddress -> IPV4_ADDR/IPV6_ADDR
    (packed), directoryName -> DER_ASN1_DN.  Other SAN types are ignored; a
    malformed SAN extension contributes nothing.
    """
    ids: list[tuple[int, bytes]] = [(IdType.DER_ASN1_DN, cert.subject.public_bytes())]
    for name in _subject_alt_names(cert):
        entry = _general_name_identity(name)
        if entry is not None:
            ids.append(entry)
    return ids


def cert_matches_identity(cert: x509.Certificate, id_type: int, data: bytes) -> bool:
    """True if the certificate contains the identity ``(id_type, data)``.

    DNs are compared attribute by attribute (strongSwan's rule: PrintableString
    and emailAddress values case-insensitively, all else exactly; the ASN.1 string
    type itself does not matter); FQDN and RFC822 names case-insensitively; IP
    addresses exactly.  A KEY_ID matches the subjectKeyIdentifier or the
    SubjectPublicKeyInfo SHA-1 hash.  Wildcard SANs are not expanded.
    """
    if id_type == IdType.KEY_ID:
        return data in (_key_identifier(cert, x509.SubjectKeyIdentifier), key_hash(cert))
    for own_type, own_data in cert_identities(cert):
        if own_type != id_type:
            continue
        if id_type == IdType.DER_ASN1_DN:
            if dn_equal(own_data, data):
                return True
        elif id_type in (IdType.FQDN, IdType.RFC822_ADDR):
            if own_data.lower() == data.lower():
                return True
        elif own_data == data:
            return True
    return False


def _subject_alt_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _general_name_identity(name: x509.GeneralName) -> tuple[int, bytes] | None:
    if isinstance(name, (x509.DNSName, x509.RFC822Name)):
        try:
            raw = name.value.encode("ascii")
        except UnicodeEncodeError:
            return None
        return (IdType.FQDN if isinstance(name, x509.DNSName) else IdType.RFC822_ADDR, raw)
    if isinstance(name, x509.IPAddress):
        if isinstance(name.value, ipaddress.IPv4Address):
            return (IdType.IPV4_ADDR, name.value.packed)
        if isinstance(name.value, ipaddress.IPv6Address):
            return (IdType.IPV6_ADDR, name.value.packed)
        return None
    if isinstance(name, x509.DirectoryName):
        return (IdType.DER_ASN1_DN, name.value.public_bytes())
    return None


# --------------------------------------------------------------------------
# Distinguished names from DER

_PRINTABLE_STRING = 0x13
_IA5_STRING = 0x16
_STRING_DECODERS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString (T61), read as Latin-1 like most software
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


def _dn_attributes(der: bytes) -> list[tuple[str, int, str]]:
    """The attributes of a DER Name in order, as (OID, string tag, text)."""
    items = read_tlvs(der)
    if len(items) != 1 or items[0][0] != SEQUENCE:
        raise ValueError("not a DER Name")
    attributes: list[tuple[str, int, str]] = []
    for set_tag, rdn in read_tlvs(items[0][1]):
        if set_tag != SET:
            raise ValueError("RDN is not a SET")
        for seq_tag, atv in read_tlvs(rdn):
            parts = read_tlvs(atv)
            if seq_tag != SEQUENCE or len(parts) != 2 or parts[0][0] != OBJECT_IDENTIFIER:
                raise ValueError("bad AttributeTypeAndValue")
            (_, oid), (value_tag, value) = parts
            encoding = _STRING_DECODERS.get(value_tag)
            text = value.decode(encoding) if encoding else value.hex()
            attributes.append((decode_oid(oid), value_tag, text))
    return attributes


def _as_der(name: bytes | x509.Name) -> bytes:
    return name.public_bytes() if isinstance(name, x509.Name) else bytes(name)


def dn_equal(a: bytes | x509.Name, b: bytes | x509.Name) -> bool:
    """Compare two distinguished names (DER bytes or ``x509.Name``) as strongSwan does.

    Same attributes in the same order with the same OIDs; values equal as text,
    ignoring case where both are PrintableString or both are IA5 emailAddress.
    Malformed DER never matches.
    """
    try:
        left, right = _dn_attributes(_as_der(a)), _dn_attributes(_as_der(b))
    except (ValueError, UnicodeDecodeError):
        return False
    if len(left) != len(right):
        return False
    email = NameOID.EMAIL_ADDRESS.dotted_string
    for (oid_a, tag_a, text_a), (oid_b, tag_b, text_b) in zip(left, right):
        if oid_a != oid_b:
            return False
        caseless = tag_a == tag_b and (
            tag_a == _PRINTABLE_STRING or (tag_a == _IA5_STRING and oid_a == email)
        )
        if caseless:
            if text_a.lower() != text_b.lower():
                return False
        elif text_a != text_b:
            return False
    return True


_SHORT_NAMES = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
}


def dn_to_string(der: bytes) -> str:
    """A readable RFC 4514-like rendering of a DER DN, for logs; never raises."""
    try:
        attributes = _dn_attributes(der)
    except (ValueError, UnicodeDecodeError):
        return f"<invalid DN {der[:32].hex()}>"
    short = {oid.dotted_string: name for name, oid in _SHORT_NAMES.items()}
    return ", ".join(f"{short.get(oid, oid)}={text}" for oid, _tag, text in attributes)


# --------------------------------------------------------------------------
# Checks for a "doctor"


def check_server_cert(cert: x509.Certificate, now: datetime.datetime | None = None) -> list[str]:
    """Human-readable warnings about a server certificate that clients may reject.

    Checks what Windows, Apple and Android require (see client-behaviour.md):
    the serverAuth extended key usage, a dNSName subjectAltName, validity (expired,
    not yet valid, or expiring within 30 days), RSA keys of at least 2048 bits and
    a SHA-2 (not SHA-1/MD5) signature.  An empty list means no complaint.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    warnings: list[str] = []
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            warnings.append(
                "no serverAuth extended key usage: Windows and Apple clients reject the certificate"
            )
    except x509.ExtensionNotFound:
        warnings.append(
            "no extended key usage extension: Apple clients require serverAuth"
        )
    except ValueError:
        warnings.append("malformed extended key usage extension")
    if not any(t == IdType.FQDN for t, _ in cert_identities(cert)):
        warnings.append(
            "no DNS subjectAltName: Windows, Apple and Android clients match the server "
            "name against DNS SANs (use a DNS SAN even for an IP address)"
        )
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        warnings.append(f"certificate expired on {not_after:%Y-%m-%d %H:%M} UTC")
    elif not_after - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        warnings.append(f"certificate expires soon, on {not_after:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        warnings.append(
            f"certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        warnings.append("public key type not supported")
    else:
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            warnings.append(f"RSA key of {key.key_size} bits: Apple clients require 2048 or more")
    try:
        hash_alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        hash_alg = None
    if hash_alg is not None and hash_alg.name in ("sha1", "md5"):
        warnings.append(f"signed with {hash_alg.name.upper()}: Apple clients require SHA-2")
    return warnings

