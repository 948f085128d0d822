"""``ikegate doctor [--confdir DIR] [--server-name HOST] [--json]``: known pitfalls, each with a fix.

``ikegate config check`` says whether a configuration *loads*; the doctor says whether
clients will *connect* to it.  It loads the configuration directory as the gateway does
and runs a list of checks over the conns that serve (``auto=add``, ``route`` or
``start``), the certificates, ``ipsec.d/cacerts`` and the secrets files.  The pitfalls
are those the seed guide (``shared/seed/strongswan-ikev2-server-guide.txt``) ran into and
those client-behaviour.md records: a ``leftcert`` file holding the whole chain, an
intermediate missing from ``ipsec.d/cacerts``, a root there as if it were sent, a
``leftid`` the certificate does not contain, a certificate Windows (error 13801) or
Apple reject (no serverAuth, the server name not a DNS subjectAltName, a wildcard,
expiry), 3DES in ``ike=`` (Windows proposes it first and the client's first acceptable
proposal wins), modp1024 (Logjam, but Windows' default: a note), ``forceencaps=yes``
with IPv6, an ``esp=`` that Windows 7 cannot match, a pool smaller than the user list,
secrets readable by others, no EAP-Identity round for Windows clients, eap-radius
settings that cannot work (``rightauth=eap-radius`` without a server, a server without a
secret, ``rightsourceip=%radius`` without eap-radius, DAE without a secret, accounting
without a server).

Every check is a small function ``check(context) -> iterable of Finding``; a
:class:`Finding` has a level (``error``: the configuration does not load or a conn was
dropped, or no client of a conn can ever log in; ``warning``: clients will fail or
security suffers; ``note``: worth knowing, no action needed), a code, a message, a
one-line fix and where (``ipsec.conf:12``).
Findings print one per line, then a summary; ``--json`` prints them as a JSON list only.

Exit status: 0 when there is no warning (notes allowed), 1 when there is a warning or an
error in a configuration that loads, 2 when the configuration cannot be loaded (its
errors are printed with their ``file:line``) or the doctor itself fails.  No secret is
ever printed: user names yes, passwords and hashes never.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ikegate.config.errors import ConfigLoadError, Diagnostic, Diagnostics
from ikegate.config.ipsecconf import Setting, parse_ipsec_conf
from ikegate.config.model import Config, Conn
from ikegate.config.proposals import proposal_from_string
from ikegate.identity import Identity, cert_has_identity
from ikegate.pki.keys import PkiError, load_certificate
from ikegate.pki.store import CertStore, cert_matches_identity, is_ca, is_self_signed
from ikegate.proposal import Proposal, encr_name, select_proposal
from ikegate.wire.constants import DhId, EncrId, IdType, IntegId, ProtocolId

DEFAULT_CONFDIR = "/etc"

#: Days before a certificate's expiry from which the doctor warns.
EXPIRY_WARNING_DAYS = 30

ERROR, WARNING, NOTE = "error", "warning", "note"

#: Windows 10's default IKE offer with "Optional encryption", in its order (the seed
#: guide; client-behaviour.md 1.2: 3DES/AES × SHA1/SHA256/SHA384, all with modp1024).
WINDOWS_IKE_OFFER = tuple(
    f"{cipher}-{integ}-modp1024"
    for cipher in ("3des", "aes128", "aes192", "aes256")
    for integ in ("sha1", "sha256", "sha384")
)
#: Windows 10/11 with the registry value NegotiateDH2048_AES256 (client-behaviour.md 1.2).
WINDOWS_DH2048_IKE_OFFER = ("aes256-sha1-sha256-sha384-modp2048",)
#: Windows 7's ESP offer: AES-256, AES-128, 3DES, DES, each with HMAC-SHA1, no PFS
#: (client-behaviour.md 1.1/1.2).
WINDOWS7_ESP_OFFER = ("aes256-sha1", "aes128-sha1", "3des-sha1", "des-sha1")

#: Names of the extended key usages a VPN server certificate may carry, for messages.
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.IPSEC_IKE.dotted_string: "ipsecIKE",
    "1.3.6.1.5.5.8.2.2": "ikeIntermediate",
}

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found.

    ``level`` is ``error``, ``warning`` or ``note``; ``code`` a short stable name
    (``leftcert-chain``); ``where`` the place it is about (``ipsec.conf:12``, a
    certificate file, or empty); ``fix`` one line saying what to do.
    """

    level: str
    code: str
    message: str
    fix: str
    where: str = ""

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"{self.level} [{self.code}]{where} {self.message} -> fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Context:
    """What the checks look at: the loaded configuration and what it refers to."""

    config: Config
    server_name: str | None = None
    now: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))
    #: conn name -> its effective ipsec.conf settings (key -> Setting with file and line)
    settings: dict[str, dict[str, Setting]] = field(default_factory=dict)
    #: the CA certificates of ipsec.d/cacerts and ``ca`` sections, as the gateway loads them
    store: CertStore = field(default_factory=CertStore)
    #: CA certificate fingerprint -> the file it came from
    ca_files: dict[bytes, Path] = field(default_factory=dict)
    #: cacerts files that were skipped, with the reason
    skipped_cacerts: list[tuple[Path, str]] = field(default_factory=list)

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the configuration directory when it lies inside it."""
        path = Path(path)
        try:
            return str(path.relative_to(self.config.confdir))
        except ValueError:
            try:
                return str(path.resolve().relative_to(self.config.confdir.resolve()))
            except (ValueError, OSError):
                return str(path)

    def where(self, conn: Conn, *keys: str) -> str:
        """``file:line`` of the first of ``keys`` set in ``conn`` (with inheritance), else
        of the conn header."""
        settings = self.settings.get(conn.name, {})
        for key in keys:
            setting = settings.get(key)
            if setting is not None:
                return f"{self.rel(setting.path)}:{setting.line}"
        path, line = conn.source
        return f"{self.rel(path)}:{line}" if path else ""

    def server_name_for(self, conn: Conn) -> str | None:
        """The name clients connect to: ``--server-name``, else ``leftid`` if it is an FQDN."""
        if self.server_name:
            return self.server_name
        identity = _configured_id(conn)
        if identity is not None and identity.id_type == IdType.FQDN:
            return identity.data.decode("utf-8", "replace")
        return None


Check = Callable[[Context], Iterable[Finding]]


# --------------------------------------------------------------------------------------
# Helpers


def _conn_label(conn: Conn) -> str:
    return f"conn '{conn.name}'"


def _configured_id(conn: Conn) -> Identity | None:
    """The local identity as written in ``leftid=`` (None when unset or %any)."""
    text = conn.local.id_configured
    if text is None:
        return None
    if text.startswith("%") and text not in ("%any", "%any6"):
        text = text[1:]
    try:
        identity = Identity.parse(text)
    except ValueError:
        return None
    return None if identity.is_any else identity


def _cert_key(conn: Conn) -> str:
    return f"{conn.local.side}cert"


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return san.get_values_for_type(x509.DNSName)


def _ip_sans(cert: x509.Certificate) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [a for a in san.get_values_for_type(x509.IPAddress)
            if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))]


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _dns_name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or a ``*`` as the whole leftmost label
    standing for exactly one label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*.") and "." in name:
        return name.split(".", 1)[1] == pattern[2:] and "*" not in pattern[2:]
    return False


def _configured_part(proposals: tuple[Proposal, ...], text: str | None) -> tuple[Proposal, ...]:
    """The proposals written in ``ike=``/``esp=`` (the defaults strongSwan appends to a
    list without ``!`` are left out); () when the option is unset."""
    if text is None:
        return ()
    return proposals if text.endswith("!") else proposals[: len(text.split(","))]


def _offer(texts: Iterable[str], protocol: int) -> list[Proposal]:
    return [proposal_from_string(text, protocol) for text in texts]


def _pool_size(token: str) -> int | None:
    """How many addresses a ``rightsourceip`` token hands out (mem_pool.c rules), or
    None for pools whose size is not known here (%config, %dhcp, ...)."""
    from ikegate.pool.mempool import MemPool, PoolError

    try:
        return MemPool.parse(token).size
    except (PoolError, ValueError):
        return None


def _user_ids(config: Config) -> set[tuple]:
    """The distinct EAP users named in the secrets (EAP, NTLM and XAUTH lines), compared
    as strongSwan compares identities; a line without selectors names nobody."""
    users: set[tuple] = set()
    for entry in config.secrets.entries if config.secrets is not None else ():
        if entry.shared_class in ("EAP", "NTLM"):
            users.update(selector.key() for selector in entry.selectors if not selector.is_any)
    return users


def _is_ipv6_host(token: str) -> bool:
    if token == "%any6":
        return True
    try:
        return ipaddress.ip_network(token.split("-")[0], strict=False).version == 6
    except ValueError:
        return False


# --------------------------------------------------------------------------------------
# Certificate checks (the local end's leftcert)


def check_leftcert_chain(ctx: Context) -> Iterator[Finding]:
    """A leftcert file with more than one certificate: only the first is used
    (strongSwan's PEM reader stops at the first END line), the chain is not sent."""
    for conn in ctx.config.loaded_conns:
        path = conn.local.cert
        if path is None or conn.local.cert_object is None:
            continue
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        count = len(_PEM_CERTIFICATE.findall(data))
        if count <= 1:
            continue
        first = conn.local.cert_object
        detail = ""
        if is_ca(first):
            detail = (f"; its first certificate ({_describe(first)}) is a CA certificate, not the "
                      "server's, and is what the gateway would use")
        yield Finding(
            WARNING, "leftcert-chain",
            f"{_conn_label(conn)}: {_cert_key(conn)} {ctx.rel(path)} holds {count} certificates: only the "
            f"first is read, the others are never sent{detail}",
            f"keep only the server certificate in {ctx.rel(path)} and put each intermediate CA in its "
            "own file in ipsec.d/cacerts/ (not the root)",
            ctx.where(conn, _cert_key(conn)),
        )


def check_intermediate(ctx: Context) -> Iterator[Finding]:
    """The server certificate's issuer must be among the CA certificates (ipsec.d/cacerts)
    or the intermediate cannot be sent after it; a self-signed server certificate has
    none."""
    for conn in ctx.config.loaded_conns:
        cert = conn.local.cert_object
        if cert is None or is_self_signed(cert) or ctx.store.find_issuer(cert) is not None:
            continue
        issuer = cert.issuer.rfc4514_string() or "<empty name>"
        in_file = ""
        if conn.local.cert is not None:
            in_file = _issuer_in_leftcert_file(conn.local.cert, cert)
        yield Finding(
            WARNING, "intermediate-missing",
            f"{_conn_label(conn)}: the issuer of the server certificate ({issuer}) is not in "
            f"ipsec.d/cacerts{in_file}: the chain cannot be sent and clients that only trust the root "
            "reject the server (Windows error 13801, Apple, Android)",
            f"put the certificate of '{issuer}' in ipsec.d/cacerts/ (if it is the root itself, putting it "
            "there is harmless: a root is never sent)",
            ctx.where(conn, _cert_key(conn)),
        )


def _issuer_in_leftcert_file(path: Path, cert: x509.Certificate) -> str:
    try:
        extra = x509.load_pem_x509_certificates(Path(path).read_bytes())[1:]
    except (OSError, ValueError):
        return ""
    if any(c.subject == cert.issuer for c in extra):
        return f" (it is in {path.name} after the server certificate, where it is ignored)"
    return ""


def check_cacerts(ctx: Context) -> Iterator[Finding]:
    """Files of ipsec.d/cacerts the gateway skips, and roots placed there.  A root is never
    sent (the chain stops below it): clients must trust it themselves."""
    for path, reason in ctx.skipped_cacerts:
        yield Finding(
            WARNING, "cacert-skipped", f"ipsec.d/cacerts/{path.name} is skipped: {reason}",
            f"remove {ctx.rel(path)} or replace it with a CA certificate (one per file, PEM or DER)",
            ctx.rel(path),
        )
    for cert in ctx.store.cas:
        if not is_self_signed(cert):
            continue
        path = ctx.ca_files.get(_fingerprint(cert))
        yield Finding(
            NOTE, "root-in-cacerts",
            f"the root CA '{_describe(cert)}' in {ctx.rel(path) if path else 'the CA certificates'} is "
            "never sent to clients: only the intermediates below it are",
            "install this root as trusted on every client (Windows: the computer's 'Trusted Root "
            "Certification Authorities'); keeping it in ipsec.d/cacerts does no harm",
            ctx.rel(path) if path else "",
        )


def check_leftid(ctx: Context) -> Iterator[Finding]:
    """``leftid`` must be one of the certificate's identities (subject DN or a SAN), or the
    gateway silently uses the subject DN and clients that send an IDr (Apple) mismatch."""
    for conn in ctx.config.loaded_conns:
        cert = conn.local.cert_object
        identity = _configured_id(conn)
        if cert is None or identity is None:
            continue
        if cert_matches_identity(cert, identity.id_type, identity.data):
            continue
        if cert_has_identity(cert, identity) > 0:  # strongSwan's wildcard matching
            continue
        names = ", ".join([f"DNS:{n}" for n in _dns_names(cert)] + [f"IP:{a}" for a in _ip_sans(cert)])
        suggestion = f"leftid=@{_dns_names(cert)[0]}" if _dns_names(cert) else "no leftid (the subject DN)"
        yield Finding(
            WARNING, "leftid-mismatch",
            f"{_conn_label(conn)}: {conn.local.side}id={conn.local.id_configured} is not in the certificate "
            f"(subject '{_describe(cert)}'{', SANs ' + names if names else ', no SANs'}): the gateway uses "
            "the subject DN instead, and Apple clients whose RemoteIdentifier is the leftid fail",
            f"set {suggestion.replace('leftid', conn.local.side + 'id')} or get a certificate that contains "
            f"{identity}",
            ctx.where(conn, f"{conn.local.side}id"),
        )


def check_server_cert(ctx: Context) -> Iterator[Finding]:
    """What Windows (13801), Apple (iOS 13+) and Android check in the server certificate:
    serverAuth EKU, the server name as a DNS subjectAltName, no wildcard; and its key and
    signature strength."""
    for conn in ctx.config.loaded_conns:
        cert = conn.local.cert_object
        if cert is None:
            continue
        where = ctx.where(conn, _cert_key(conn))
        label = f"{_conn_label(conn)}: the server certificate ({_describe(cert)})"
        yield from _eku(cert, label, where)
        yield from _san(ctx, conn, cert, label, where)
        yield from _wildcard(cert, label, where)
        yield from _strength(cert, label, where)


def _eku(cert: x509.Certificate, label: str, where: str) -> Iterator[Finding]:
    fix = ("reissue it with extendedKeyUsage serverAuth (1.3.6.1.5.5.7.3.1), ikeIntermediate "
           "(1.3.6.1.5.5.8.2.2) does not hurt (strongSwan pki: --flag serverAuth --flag ikeIntermediate)")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        yield Finding(WARNING, "cert-eku", f"{label} has no extendedKeyUsage: Windows (error 13801) and "
                      "Apple clients require serverAuth", fix, where)
        return
    except ValueError:
        yield Finding(WARNING, "cert-eku", f"{label} has a malformed extendedKeyUsage extension", fix, where)
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        usages = ", ".join(_EKU_NAMES.get(oid.dotted_string, oid.dotted_string) for oid in eku) or "none"
        yield Finding(WARNING, "cert-eku", f"{label} lacks the serverAuth extendedKeyUsage (it has: "
                      f"{usages}): Windows rejects it with error 13801, Apple clients too", fix, where)


def _san(ctx: Context, conn: Conn, cert: x509.Certificate, label: str, where: str) -> Iterator[Finding]:
    dns_names = _dns_names(cert)
    name = ctx.server_name_for(conn)
    if name is None:
        if not dns_names:
            yield Finding(
                WARNING, "cert-san",
                f"{label} has no DNS subjectAltName: Windows (error 13801), iOS 13+/macOS 10.15+ and "
                "Android match the server name against DNS SANs",
                "reissue it with the server's name as a DNS SAN (for an IP address too: DNS:203.0.113.1)",
                where)
        else:
            yield Finding(
                NOTE, "server-name",
                f"{_conn_label(conn)}: clients must connect to a name in the certificate's DNS SANs "
                f"({', '.join(dns_names)}); no --server-name given and {conn.local.side}id is not an FQDN, "
                "so the name itself was not checked",
                "run ikegate doctor --server-name HOST with the name clients use", where)
        return
    if any(_dns_name_matches(pattern, name) for pattern in dns_names):
        return
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    source = "--server-name" if ctx.server_name else f"{conn.local.side}id"
    if address is not None and address in _ip_sans(cert):
        detail = ("only as an iPAddress SAN: Windows matches dNSName entries only (error 13801), "
                  "the IP address must be a DNS SAN too")
    else:
        have = ", ".join(dns_names) if dns_names else "none"
        detail = (f"not among its DNS subjectAltNames ({have}): Windows fails with error 13801, "
                  "iOS 13+/macOS 10.15+ and Android reject it too")
    yield Finding(
        WARNING, "cert-san", f"{label}: the server name {name} ({source}) is {detail}",
        f"reissue the certificate with subjectAltName DNS:{name}", where)


def _wildcard(cert: x509.Certificate, label: str, where: str) -> Iterator[Finding]:
    wild = [n for n in _dns_names(cert) if "*" in n] + [n for n in _common_names(cert) if "*" in n]
    if wild:
        yield Finding(
            WARNING, "cert-wildcard",
            f"{label} is a wildcard certificate ({', '.join(dict.fromkeys(wild))}): some IKEv2 clients do "
            "not accept wildcard certificates for the VPN server",
            "use a certificate that names the server exactly (e.g. DNS:vpn.example.org)", where)


def _strength(cert: x509.Certificate, label: str, where: str) -> Iterator[Finding]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        yield Finding(WARNING, "cert-weak", f"{label} has an RSA key of {key.key_size} bits: Apple clients "
                      "require 2048 or more", "reissue it with an RSA key of at least 2048 bits or ECDSA",
                      where)
    try:
        hash_alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        hash_alg = None
    if hash_alg is not None and hash_alg.name in ("sha1", "md5"):
        yield Finding(WARNING, "cert-weak", f"{label} is signed with {hash_alg.name.upper()}: Apple clients "
                      "require SHA-2 signatures", "reissue it signed with SHA-256", where)


def check_validity(ctx: Context) -> Iterator[Finding]:
    """The server certificate and the intermediates sent with it: expired, not yet valid,
    or expiring within :data:`EXPIRY_WARNING_DAYS` days."""
    for conn in ctx.config.loaded_conns:
        cert = conn.local.cert_object
        if cert is None:
            continue
        where = ctx.where(conn, _cert_key(conn))
        try:
            chain = ctx.store.build_chain(cert)
        except PkiError:
            chain = []
        for index, current in enumerate([cert, *chain]):
            what = "the server certificate" if index == 0 else "the intermediate CA certificate"
            if index:
                path = ctx.ca_files.get(_fingerprint(current))
                if path is not None:
                    what += f" {ctx.rel(path)}"
            label = f"{_conn_label(conn)}: {what} ({_describe(current)})"
            yield from _validity(ctx.now, current, label, where)


def _validity(now: datetime.datetime, cert: x509.Certificate, label: str, where: str) -> Iterator[Finding]:
    not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
    renew = "renew it and replace the file (then ikegate reload)"
    if not_after <= now:
        yield Finding(WARNING, "cert-expired", f"{label} expired on {not_after:%Y-%m-%d %H:%M} UTC: every "
                      "client rejects it", renew, where)
    elif not_after - now < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        days = (not_after - now).days
        yield Finding(WARNING, "cert-expiring", f"{label} expires on {not_after:%Y-%m-%d %H:%M} UTC, in "
                      f"{days} day{'s' if days != 1 else ''}", renew, where)
    if not_before > now:
        yield Finding(WARNING, "cert-not-yet-valid", f"{label} is not valid before "
                      f"{not_before:%Y-%m-%d %H:%M} UTC", "check the clock of this machine, or reissue the "
                      "certificate", where)


# --------------------------------------------------------------------------------------
# Proposal checks


def check_ike(ctx: Context) -> Iterator[Finding]:
    """3DES in ``ike=`` (Windows proposes it first, so Windows clients use it), modp1024 (a
    note: Logjam, but Windows' default), and an ``ike=`` Windows' defaults cannot match."""
    windows = _offer(WINDOWS_IKE_OFFER, ProtocolId.IKE)
    windows_dh2048 = _offer(WINDOWS_DH2048_IKE_OFFER, ProtocolId.IKE)
    for conn in ctx.config.loaded_conns:
        where = ctx.where(conn, "ike")
        configured = _configured_part(conn.ike, conn.ike_text)
        chosen = select_proposal(conn.ike, windows)
        windows_3des = chosen is not None and chosen.encr_alg is not None and chosen.encr_alg[0] == EncrId.TRIPLE_DES
        if windows_3des or any(alg == EncrId.TRIPLE_DES for p in configured for alg, _ in p.encr):
            if windows_3des:
                detail = f"Windows (default settings) will choose {chosen}"
            else:
                detail = "Windows proposes 3DES first, so Windows clients use it whenever their DH group matches"
            yield Finding(
                WARNING, "ike-3des",
                f"{_conn_label(conn)}: ike= accepts 3DES (64-bit blocks, Sweet32): the client's first "
                f"acceptable proposal wins and {detail}",
                "remove 3des from ike= (e.g. ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-"
                "modp1536-modp1024!)",
                where)
        if any(DhId.MODP_1024 in p.dh for p in configured):
            yield Finding(
                NOTE, "ike-modp1024",
                f"{_conn_label(conn)}: ike= accepts modp1024, a 1024-bit DH group weak against Logjam-style "
                "precomputation; it is Windows' default group and without it Windows clients with default "
                "settings cannot connect (the seed keeps it on purpose)",
                "keep it while Windows clients use default settings; drop it once they use a stronger "
                "group (ikegate profile windows, or NegotiateDH2048_AES256=1)",
                where)
        if chosen is None:
            also = "" if select_proposal(conn.ike, windows_dh2048) is None else (
                " (only with the registry value NegotiateDH2048_AES256)")
            yield Finding(
                NOTE, "ike-windows",
                f"{_conn_label(conn)}: no ike= proposal matches Windows' default offer (3DES/AES with "
                f"SHA1/SHA2 and modp1024): Windows clients cannot connect with default settings{also}",
                "give Windows clients a custom IPsec policy (ikegate profile windows) or add an "
                "aes256-sha256-modp1024 proposal to ike=",
                where)


def check_esp(ctx: Context) -> Iterator[Finding]:
    """``esp=`` against Windows 7's offer (AES-256/AES-128/3DES/DES with SHA1, no PFS): no
    match means no CHILD_SA; PFS required means Windows' rekeys (no KE) fail.  DES, NULL
    or MD5 in ``esp=`` could be chosen, since Windows offers them."""
    windows7 = _offer(WINDOWS7_ESP_OFFER, ProtocolId.ESP)
    for conn in ctx.config.loaded_conns:
        where = ctx.where(conn, "esp")
        if select_proposal(conn.esp, windows7, skip_dh=True) is None:
            yield Finding(
                WARNING, "esp-windows7",
                f"{_conn_label(conn)}: esp= offers nothing Windows 7 accepts (it proposes only "
                "aes256/aes128/3des/des with sha1): its CHILD_SA fails with NO_PROPOSAL_CHOSEN",
                "add aes256-sha1 and aes128-sha1 to esp= (e.g. esp=aes256-aes128-sha256-sha1!)",
                where)
        elif select_proposal(conn.esp, windows7) is None:
            yield Finding(
                WARNING, "esp-pfs-required",
                f"{_conn_label(conn)}: every esp= proposal requires a DH group (PFS): Windows rekeys its "
                "CHILD_SA without one, the rekey is refused and the tunnel drops after about an hour",
                "make PFS optional by adding modpnone to the DH groups of esp= (e.g. "
                "esp=aes256-sha256-sha1-modp2048-modpnone!) or drop the DH group",
                where)
        configured = _configured_part(conn.esp, conn.esp_text)
        weak = []
        for proposal in configured:
            weak += [encr_name(alg, bits) for alg, bits in proposal.encr if alg in (EncrId.DES, EncrId.NULL)]
            weak += ["HMAC_MD5_96" for alg in proposal.integ if alg == IntegId.HMAC_MD5_96]
        if weak:
            yield Finding(
                WARNING, "esp-weak",
                f"{_conn_label(conn)}: esp= accepts {', '.join(dict.fromkeys(weak))}: Windows offers single "
                "DES and NULL encryption, so a tunnel can end up unprotected or trivially breakable",
                "remove des, null and md5 from esp=", where)


# --------------------------------------------------------------------------------------
# Conn checks


def check_forceencaps(ctx: Context) -> Iterator[Finding]:
    """``forceencaps=yes`` where clients may come over IPv6 or get IPv6 addresses: Windows
    refuses UDP encapsulation over IPv6 and data does not flow (client-behaviour.md 1.2;
    the seed guide leaves it off for this reason)."""
    for conn in ctx.config.loaded_conns:
        if not conn.forceencaps:
            continue
        reasons = [f"pool {p.token}" for p in conn.pools if p.family == 6]
        for end in (conn.local, conn.remote):
            reasons += [f"{end.side}subnet {ts.network}" for ts in end.subnets
                        if ts.network is not None and ts.network.version == 6]
            reasons += [f"{end.side}={h}" for h in end.hosts if _is_ipv6_host(h)]
        if not reasons:
            continue
        yield Finding(
            WARNING, "forceencaps-ipv6",
            f"{_conn_label(conn)}: forceencaps=yes with IPv6 ({', '.join(reasons)}): IPv6 clients do not "
            "use UDP encapsulation (Windows refuses it over IPv6 and data stops flowing)",
            "remove forceencaps=yes: NAT detection switches to UDP encapsulation where it is needed",
            ctx.where(conn, "forceencaps"))


def check_pool_size(ctx: Context) -> Iterator[Finding]:
    """A pool (``rightsourceip``) with fewer addresses than users: when it is exhausted the
    next client gets no address (INTERNAL_ADDRESS_FAILURE); offline leases of other users
    are only reassigned then, so users also lose their usual address."""
    users = _user_ids(ctx.config)
    if not users:
        return
    for conn in ctx.config.loaded_conns:
        if not conn.pools or conn.remote.auth.method != "eap":
            continue
        sizes: dict[int, int] = {}
        tokens: dict[int, list[str]] = {}
        unknown = False
        for pool in conn.pools:
            size = _pool_size(pool.token) if pool.kind in ("cidr", "range") else None
            if size is None or pool.family is None:
                unknown = True
                break
            sizes[pool.family] = sizes.get(pool.family, 0) + size
            tokens.setdefault(pool.family, []).append(pool.token)
        if unknown:
            continue
        for family in sorted(sizes):
            if sizes[family] >= len(users):
                continue
            yield Finding(
                WARNING, "pool-too-small",
                f"{_conn_label(conn)}: the IPv{family} pool {', '.join(tokens[family])} has {sizes[family]} "
                f"address{'es' if sizes[family] != 1 else ''} for {len(users)} users in the secrets: once "
                f"{sizes[family]} are connected the next gets no address (INTERNAL_ADDRESS_FAILURE)",
                f"use a larger {conn.remote.side}sourceip subnet (at least {len(users)} addresses)",
                ctx.where(conn, f"{conn.remote.side}sourceip"))


def check_eap_identity(ctx: Context) -> Iterator[Finding]:
    """EAP without ``eap_identity``: no EAP-Identity round, the IKE identity is used as the
    EAP identity; Windows sends its IP address there and expects an EAP-Identity request."""
    for conn in ctx.config.loaded_conns:
        rounds = [a for a in (conn.remote.auth, conn.remote.auth2) if a is not None and a.method == "eap"]
        if not rounds or conn.eap_identity_text is not None:
            continue
        side = conn.remote.side
        yield Finding(
            WARNING, "eap-identity-missing",
            f"{_conn_label(conn)}: {side}auth={rounds[0].text} without eap_identity: no EAP-Identity round, "
            "so the IKE identity is taken as the user name; Windows sends its IP address there and expects "
            "an EAP-Identity request, so its logins fail",
            f"add eap_identity=%identity to {_conn_label(conn)}",
            ctx.where(conn, f"{side}auth", f"{side}auth2"))


# --------------------------------------------------------------------------------------
# Secrets


def check_secrets_permissions(ctx: Context) -> Iterator[Finding]:
    """ipsec.secrets, the files it includes and the private keys it loads must not be
    readable (or writable) by group or others."""
    secrets = ctx.config.secrets
    if secrets is None:
        return
    files: list[tuple[str, str]] = [(f, "secrets file") for f in secrets.files]
    files += [(str(e.key_path), "private key") for e in secrets.entries if e.key_path is not None]
    seen: set[str] = set()
    for path, what in files:
        if path in seen:
            continue
        seen.add(path)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & 0o077:
            who = " and ".join(w for w, bits in (("group", 0o070), ("others", 0o007)) if mode & bits)
            yield Finding(
                WARNING, "secrets-permissions",
                f"{what} {ctx.rel(path)} has mode {mode:04o}: {who} can "
                f"{'read' if mode & 0o044 else 'write'} it",
                f"chmod 600 {path}",
                ctx.rel(path))


# --------------------------------------------------------------------------------------
# RADIUS (eap-radius in strongswan.conf)

_RADIUS = "charon.plugins.eap-radius"
_RADIUS_FILE = "strongswan.conf"


def _radius_conns(ctx: Context) -> list[Conn]:
    """The serving conns that authenticate their clients through RADIUS."""
    return [conn for conn in ctx.config.loaded_conns
            if any(a is not None and a.radius for a in (conn.remote.auth, conn.remote.auth2))]


def _radius_servers(ctx: Context):
    """The eap-radius servers the gateway would use (host names are not resolved here)."""
    from ikegate.radius.settings import RadiusSettings

    return RadiusSettings.from_strongswan_conf(ctx.config.settings, resolve=lambda address: address)


def check_radius_servers(ctx: Context) -> Iterator[Finding]:
    """eap-radius servers strongSwan skips: a ``servers { name { } }`` section without
    ``secret`` or ``address``, a legacy ``server`` without ``secret``."""
    conf = ctx.config.settings
    if conf is None:
        return
    legacy = conf.get_str(f"{_RADIUS}.server")
    if legacy:
        if not conf.get_str(f"{_RADIUS}.secret"):
            yield Finding(
                WARNING, "radius-server-no-secret",
                f"the RADIUS server {legacy} (charon.plugins.eap-radius.server) has no secret: it is not used",
                "add secret = <the shared secret of this NAS in the RADIUS server's clients.conf> to "
                "charon.plugins.eap-radius",
                _RADIUS_FILE)
        return
    for name in conf.subsections(f"{_RADIUS}.servers"):
        key = f"{_RADIUS}.servers.{name}"
        missing = [what for what in ("address", "secret") if not conf.get_str(f"{key}.{what}")]
        if not missing:
            continue
        yield Finding(
            WARNING, f"radius-server-no-{missing[-1]}",
            f"the RADIUS server '{name}' has no {' and no '.join(missing)}: it is skipped",
            f"add {' and '.join(f'{m} = ...' for m in missing)} to {key}"
            + (" (the shared secret of this NAS in the RADIUS server's clients.conf)" if "secret" in missing else ""),
            _RADIUS_FILE)


def check_radius_use(ctx: Context) -> Iterator[Finding]:
    """eap-radius settings that cannot work together: ``rightauth=eap-radius`` without a
    server (every login fails), ``rightsourceip=%radius`` without eap-radius (nobody gets
    an address), DAE enabled without a secret (strongSwan disables it), accounting
    without a server (no record is ever sent)."""
    if ctx.config.settings is None:
        return
    radius = _radius_servers(ctx)
    for conn in _radius_conns(ctx):
        if radius.servers:
            continue
        side = conn.remote.side
        yield Finding(
            ERROR, "radius-no-server",
            f"{_conn_label(conn)}: {side}auth=eap-radius but no usable RADIUS server in strongswan.conf "
            "(charon.plugins.eap-radius.servers): every login will fail",
            "add charon.plugins.eap-radius { servers { <name> { address = ...  secret = ... } } } "
            "to strongswan.conf",
            ctx.where(conn, f"{side}auth", f"{side}auth2"))
    radius_conn_names = {conn.name for conn in _radius_conns(ctx)}
    for conn in ctx.config.loaded_conns:
        if conn.name in radius_conn_names:
            continue
        if any(pool.kind == "named" and pool.name.lower() == "radius" for pool in conn.pools):
            side = conn.remote.side
            yield Finding(
                WARNING, "radius-pool-without-radius",
                f"{_conn_label(conn)}: {side}sourceip=%radius but {side}auth={conn.remote.auth.text} does not "
                "authenticate through RADIUS: no Framed-IP-Address ever arrives, so clients get no address "
                "(INTERNAL_ADDRESS_FAILURE)",
                f"use {side}auth=eap-radius, or an address pool ({side}sourceip=10.10.10.0/24)",
                ctx.where(conn, f"{side}sourceip"))
    pool_conns = [conn for conn in _radius_conns(ctx)
                  if any(pool.kind == "named" and pool.name.lower() == "radius" for pool in conn.pools)]
    if pool_conns and radius.servers and not radius.accounting:
        conn = pool_conns[0]
        yield Finding(
            NOTE, "radius-pool-without-accounting",
            f"{_conn_label(conn)}: {conn.remote.side}sourceip=%radius with accounting = no: a RADIUS server "
            "that hands out addresses from a pool (FreeRADIUS sqlippool) frees them only on an "
            "Accounting-Request Stop, so its leases stay taken until they expire",
            "set accounting = yes in charon.plugins.eap-radius if the RADIUS server's pool needs it",
            ctx.where(conn, f"{conn.remote.side}sourceip"))
    if radius.dae.enable and not radius.dae.secret:
        yield Finding(
            WARNING, "radius-dae-no-secret",
            "charon.plugins.eap-radius.dae.enable = yes without dae.secret: dynamic authorisation is "
            "disabled (Disconnect-Requests get no answer)",
            "add secret = <the secret radclient uses> to charon.plugins.eap-radius.dae",
            _RADIUS_FILE)
    if radius.accounting and not radius.servers:
        yield Finding(
            WARNING, "radius-accounting-no-server",
            "charon.plugins.eap-radius.accounting = yes but no usable RADIUS server: no accounting record "
            "is ever sent",
            "add a server to charon.plugins.eap-radius.servers, or set accounting = no",
            _RADIUS_FILE)


#: The checks, in the order their findings are listed.
CHECKS: tuple[Check, ...] = (
    check_leftcert_chain,
    check_intermediate,
    check_cacerts,
    check_leftid,
    check_server_cert,
    check_validity,
    check_ike,
    check_esp,
    check_forceencaps,
    check_pool_size,
    check_eap_identity,
    check_secrets_permissions,
    check_radius_servers,
    check_radius_use,
)


# --------------------------------------------------------------------------------------
# Running the checks


def build_context(config: Config, *, server_name: str | None = None,
                  now: datetime.datetime | None = None) -> Context:
    """The :class:`Context` of a loaded configuration: setting locations (ipsec.conf read
    again, it parsed a moment ago) and the CA certificates."""
    ctx = Context(config=config, server_name=server_name or None)
    if now is not None:
        ctx.now = now
    try:
        parsed = parse_ipsec_conf(config.confdir / "ipsec.conf", Diagnostics())
    except Exception:  # it loaded a moment ago; without locations the conn headers are used
        parsed = None
    if parsed is not None:
        ctx.settings = {section.name or "": section.effective() for section in parsed.conns}
    for path in config.cacert_files:
        try:
            cert = load_certificate(path)
        except PkiError as exc:
            ctx.skipped_cacerts.append((path, str(exc)))
            continue
        if not is_ca(cert):
            ctx.skipped_cacerts.append(
                (path, f"'{_describe(cert)}' is not a CA certificate (no CA basicConstraints), so it is "
                       "discarded"))
            continue
        ctx.store.add_ca(cert)
        ctx.ca_files.setdefault(_fingerprint(cert), path)
    for section in config.ca_sections:
        cert = section.cacert_object
        if cert is not None and is_ca(cert):
            ctx.store.add_ca(cert)
            if section.cacert is not None:
                ctx.ca_files.setdefault(_fingerprint(cert), section.cacert)
    return ctx


def run_checks(ctx: Context, checks: Iterable[Check] = CHECKS) -> list[Finding]:
    """All findings of ``checks`` in order, without repeats.  A check that fails is
    reported as an error finding instead of stopping the others."""
    findings: list[Finding] = []
    for check in checks:
        try:
            found = list(check(ctx))
        except Exception as exc:
            found = [Finding(ERROR, "doctor-failure",
                             f"the check {check.__name__} failed: {type(exc).__name__}: {exc}",
                             "report this as an ikegate bug")]
        for finding in found:
            if finding not in findings:
                findings.append(finding)
    return findings


def diagnostic_findings(diagnostics: Iterable[Diagnostic], confdir: str | os.PathLike) -> list[Finding]:
    """The loader's own errors and warnings as findings (code ``config-error`` /
    ``config-warning``)."""
    base = Path(confdir)
    findings = []
    for item in diagnostics:
        path = Path(item.path)
        try:
            shown = str(path.relative_to(base))
        except ValueError:
            shown = str(path)
        where = shown if not item.line else f"{shown}:{item.line}"
        if item.is_error:
            findings.append(Finding(ERROR, "config-error", item.message,
                                    "correct this line (ikegate config check lists every error)", where))
        else:
            findings.append(Finding(WARNING, "config-warning", item.message,
                                    "correct this line, or see ikegate config check for the effective "
                                    "configuration", where))
    return findings


def diagnose(confdir: str | os.PathLike = DEFAULT_CONFDIR, *, server_name: str | None = None,
             now: datetime.datetime | None = None, checks: Iterable[Check] = CHECKS) -> list[Finding]:
    """Load ``confdir`` and return every finding: the loader's errors and warnings, then
    the checks'.  Raises :class:`~ikegate.config.errors.ConfigLoadError` when the
    configuration cannot be loaded at all."""
    from ikegate.config.loader import load_config

    config, diagnostics = load_config(confdir)
    ctx = build_context(config, server_name=server_name, now=now)
    found = run_checks(ctx, checks)
    # The loader's "id ... not confirmed by certificate" is what leftid-mismatch says, with a fix.
    covered = {f.where for f in found if f.code == "leftid-mismatch"}
    loaded = [f for f in diagnostic_findings(diagnostics, config.confdir)
              if not (f.level == WARNING and f.where in covered)]
    return loaded + found


def exit_code(findings: Iterable[Finding]) -> int:
    """0 without warnings or errors (notes allowed), else 1."""
    return 1 if any(f.level in (ERROR, WARNING) for f in findings) else 0


def summary(findings: list[Finding]) -> str:
    counts = {level: sum(1 for f in findings if f.level == level) for level in (ERROR, WARNING, NOTE)}
    parts = [f"{n} {level}{'s' if n != 1 else ''}" for level, n in counts.items()]
    verdict = "no problems found" if not counts[ERROR] and not counts[WARNING] else "problems found"
    return f"ikegate doctor: {verdict}: {', '.join(parts)}"


def print_findings(findings: list[Finding], stream: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        json.dump([f.as_dict() for f in findings], stream, indent=2)
        stream.write("\n")
        return
    for finding in findings:
        print(str(finding), file=stream)
    print(summary(findings), file=stream)


# --------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confdir", default=DEFAULT_CONFDIR, metavar="DIR",
                        help="directory with ipsec.conf, ipsec.secrets, ipsec.d/ (default: %(default)s)")
    parser.add_argument("--server-name", metavar="HOST", default=None,
                        help="the name (or address) clients connect to; default: leftid when it is an FQDN")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    as_json = bool(getattr(args, "json", False))
    try:
        try:
            findings = diagnose(args.confdir, server_name=getattr(args, "server_name", None))
        except ConfigLoadError as exc:
            findings = [f for f in diagnostic_findings(exc.diagnostics, args.confdir) if f.level == ERROR]
            if not findings:
                findings = [Finding(ERROR, "config-error", str(exc), "correct the configuration")]
            print_findings(findings, out, as_json=as_json)
            if not as_json:
                print(f"ikegate doctor: the configuration in {args.confdir} cannot be loaded", file=sys.stderr)
            return 2
        print_findings(findings, out, as_json=as_json)
        return exit_code(findings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a message, never a traceback
        print(f"ikegate doctor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
