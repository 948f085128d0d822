"""What every client profile needs to know about a conn, read from the loaded configuration.

:func:`describe_conn` turns one conn of a loaded :class:`~ikegate.config.model.Config`
into a :class:`ConnProfile`:

* the server identity a client should expect (and, for Apple, send as IDr): ``leftid``
  when it is a name or address the certificate contains, else ``--server`` when it is
  one of the certificate's DNS subjectAltNames, else the first DNS subjectAltName
  (Windows and Apple match the name typed by the user against the SAN, see
  client-behaviour.md 1.2/1.3; ikegate answers an IDr that is one of its SANs);
* the certificate a client must trust: the root of the server certificate's chain,
  built from ``ipsec.d/cacerts``, ``ca`` sections, ``DIR/ca/`` (where ``ikegate
  example`` puts the demo root) and an explicit ``--ca`` file; the CA is *private*
  unless the system trust store (``/etc/ssl/certs``) holds it, and only a private CA
  is put into profiles;
* the IKE and ESP proposals the conn accepts and ikegate implements;
* whether the conn hands out IPv4 and IPv6 addresses and routes which networks.

Problems that make a profile useless raise :class:`ProfileError`; doubtful things
(the server name not in the certificate, a user without a secret) become warnings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ikegate.config.model import Config, Conn
from ikegate.identity import ID_FQDN, ID_IPV4_ADDR, ID_IPV6_ADDR
from ikegate.pki.keys import PkiError, load_certificate
from ikegate.pki.store import is_ca, is_issued_by, is_self_signed, spki_der
from ikegate.profiles.suites import (
    esp_accepted,
    ike_accepted,
    strongswan_proposal,
    strongswan_text,
    supported,
)
from ikegate.proposal import Proposal

#: where Debian-like systems keep the trusted roots (one bundle plus one file per root)
SYSTEM_TRUST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SYSTEM_TRUST_DIR = Path("/etc/ssl/certs")
#: how many CA certificates a chain may climb before we call it a loop
_MAX_CHAIN = 10
#: EAP method number of EAP-MSCHAPv2 (RFC 2759 via draft-kamath-pppext-eap-mschapv2)
_EAP_MSCHAPV2 = 26

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProfileError(Exception):
    """A profile cannot be made for this conn (the message says why and what to do)."""


@dataclass(frozen=True)
class ConnProfile:
    """A conn as client profiles see it.

    ``server`` is what clients connect to (``--server``); ``remote_id`` the server
    identity they check and may send (None when the certificate has no usable name);
    ``ca`` the certificate clients must trust when ``ca_private`` (else None: the
    system's roots suffice); ``ike``/``esp`` the accepted proposals ikegate can select;
    ``v4_routes``/``v6_routes`` the conn's local subnets of each family, empty when no
    address of that family is handed out.
    """

    conn: Conn
    name: str
    server: str
    remote_id: str | None
    user: str | None
    leaf: x509.Certificate
    ca: x509.Certificate | None
    ca_private: bool
    issuer_common_name: str | None
    ike: tuple[Proposal, ...]
    esp: tuple[Proposal, ...]
    v4_routes: tuple[IPNetwork, ...]
    v6_routes: tuple[IPNetwork, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def ipv4(self) -> bool:
        return bool(self.v4_routes)

    @property
    def ipv6(self) -> bool:
        return bool(self.v6_routes)

    @property
    def ike_lifetime_minutes(self) -> int:
        return self.conn.ikelifetime // 60

    @property
    def child_lifetime_minutes(self) -> int:
        return self.conn.lifetime // 60

    @property
    def cert_requested(self) -> bool:
        """True if the gateway sends its certificate only when a CERTREQ asks for it
        (``leftsendcert=ifasked``, the default), which Apple clients send only when told."""
        return self.conn.local.sendcert == "ifasked"

    def ca_der(self) -> bytes:
        return self._ca().public_bytes(serialization.Encoding.DER)

    def ca_pem(self) -> bytes:
        return self._ca().public_bytes(serialization.Encoding.PEM)

    def ca_sha1_thumbprint(self) -> str:
        """The CA's SHA-1 fingerprint in upper-case hex: Windows' certificate Thumbprint."""
        return self._ca().fingerprint(hashes.SHA1()).hex().upper()

    def ca_sha256_hex(self) -> str:
        return self._ca().fingerprint(hashes.SHA256()).hex()

    def ca_display_name(self) -> str:
        ca = self._ca()
        return _common_name(ca.subject) or ca.subject.rfc4514_string()

    def strongswan_proposals(self) -> tuple[str, str]:
        """(IKE, ESP) proposal strings for strongSwan-based clients (Android app,
        NetworkManager): one proposal each, checked to be accepted by the conn."""
        ike = strongswan_proposal(self.ike)
        esp = strongswan_proposal(self.esp)
        if ike is None or ike_accepted(self.ike, ike) is None:
            raise ProfileError(f"conn '{self.conn.name}': no IKE proposal a strongSwan client can send is accepted")
        if esp is None or esp_accepted(self.esp, esp) is None:
            raise ProfileError(f"conn '{self.conn.name}': no ESP proposal a strongSwan client can send is accepted")
        return strongswan_text(ike), strongswan_text(esp)

    def _ca(self) -> x509.Certificate:
        if self.ca is None:
            raise ValueError("no private CA")
        return self.ca


# -- reading the conn ---------------------------------------------------------------------


def describe_conn(
    config: Config,
    conn_name: str,
    server: str,
    *,
    user: str | None = None,
    name: str | None = None,
    ca_file: str | os.PathLike | None = None,
    trusted: Iterable[x509.Certificate] | None = None,
) -> ConnProfile:
    """Read conn ``conn_name`` of ``config`` for a client connecting to ``server``.

    ``trusted`` are the system's trusted roots (default: :func:`system_trust_store`);
    ``ca_file`` names the CA to give clients when the chain cannot be completed from
    the configuration directory.  Raises :class:`ProfileError`.
    """
    conn = config.conn(conn_name)
    if conn is None:
        known = ", ".join(c.name for c in config.conns) or "none"
        raise ProfileError(f"no usable conn '{conn_name}' in {config.confdir / 'ipsec.conf'} (conns loaded: "
                           f"{known}; 'ikegate config check' shows the errors of dropped conns)")
    _check_conn(conn)
    server = server.strip()
    if not server or any(c.isspace() for c in server):
        raise ProfileError(f"--server {server!r} is not a host name or address")
    warnings: list[str] = []
    leaf = conn.local.cert_object
    remote_id = _server_identity(conn, leaf, server, warnings)
    trusted_roots = list(system_trust_store() if trusted is None else trusted)
    ca, private = _trust_anchor(config, leaf, ca_file, trusted_roots)
    if user is not None:
        _check_user(config, conn, user, warnings)

    ike = supported(conn.ike)
    esp = supported(conn.esp)
    if not ike:
        raise ProfileError(f"conn '{conn.name}': ike= accepts nothing ikegate implements")
    if not esp:
        raise ProfileError(f"conn '{conn.name}': esp= accepts nothing ikegate implements")
    v4, v6 = _routes(conn)
    if not v4 and not v6:
        raise ProfileError(f"conn '{conn.name}' hands out no virtual address (rightsourceip) for a "
                           "network in leftsubnet: road-warrior clients need one")
    return ConnProfile(
        conn=conn,
        name=name or server,
        server=server,
        remote_id=remote_id,
        user=user,
        leaf=leaf,
        ca=ca if private else None,
        ca_private=private,
        issuer_common_name=_common_name(leaf.issuer),
        ike=ike,
        esp=esp,
        v4_routes=v4,
        v6_routes=v6,
        warnings=tuple(warnings),
    )


def _check_conn(conn: Conn) -> None:
    if not conn.loaded:
        raise ProfileError(f"conn '{conn.name}' has auto={conn.auto}: it is not loaded, no client can use it")
    if conn.keyexchange == "ikev1":
        raise ProfileError(f"conn '{conn.name}' uses IKEv1 (keyexchange=ikev1); profiles are for IKEv2")
    remote = conn.remote.auth
    if remote.method != "eap" or remote.eap_type not in (None, _EAP_MSCHAPV2):
        raise ProfileError(f"conn '{conn.name}' authenticates clients with rightauth={remote.text}; "
                           "profiles are for EAP-MSCHAPv2 users (rightauth=eap-mschapv2)")
    if conn.local.auth.method != "pubkey" or conn.local.cert_object is None:
        raise ProfileError(f"conn '{conn.name}' has no server certificate (leftcert): clients authenticate "
                           "the gateway by its certificate")


def _san_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """The certificate's DNS and IP subjectAltNames as text."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return [], []
    dns = [n for n in names.get_values_for_type(x509.DNSName)]
    ips = [str(a) for a in names.get_values_for_type(x509.IPAddress)]
    return dns, ips


def _server_identity(conn: Conn, leaf: x509.Certificate, server: str, warnings: list[str]) -> str | None:
    dns, ips = _san_names(leaf)
    lowered = [d.lower() for d in dns]
    if server.lower() not in lowered and server not in ips:
        if any(d.startswith("*.") and server.lower().endswith(d[1:]) for d in lowered):
            warnings.append(f"the certificate covers {server} only by a wildcard; some clients reject "
                            "wildcard certificates and ikegate cannot answer with a wildcard identity")
        else:
            names = ", ".join(dns + ips) or "none"
            warnings.append(f"{server} is not a subjectAltName of the server certificate (SANs: {names}): "
                            "Windows fails with error 13801 and Apple/Android clients refuse the server")
    local = conn.local.id
    if conn.local.id_configured and local is not None and local.id_type in (ID_FQDN, ID_IPV4_ADDR, ID_IPV6_ADDR):
        return str(local)
    if server.lower() in lowered:
        return dns[lowered.index(server.lower())]
    concrete = [d for d in dns if "*" not in d]
    if concrete:
        return concrete[0]
    if server in ips:
        return server
    return None


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _check_user(config: Config, conn: Conn, user: str, warnings: list[str]) -> None:
    if not re.fullmatch(r"[^\s\"']+", user):
        raise ProfileError(f"--user {user!r}: user names cannot contain whitespace or quotes")
    secrets = config.secrets
    if secrets is not None and secrets.find_eap(user, conn.local.id) is None:
        warnings.append(f"user '{user}' has no EAP or NTLM secret in ipsec.secrets: add one "
                        "(ikegate user add) before the client connects")


def _routes(conn: Conn) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    """The conn's local subnets of each family whose addresses it hands out."""
    families = {p.family for p in conn.pools}
    gives_any = None in families  # %config / named pools: whatever family is asked for
    nets = [ts.network for ts in conn.local.subnets if ts.network is not None]
    v4 = tuple(n for n in nets if n.version == 4) if (4 in families or gives_any) else ()
    v6 = tuple(n for n in nets if n.version == 6) if (6 in families or gives_any) else ()
    return v4, v6


# -- the CA clients must trust ----------------------------------------------------------------


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle that loads (one bad entry spoils no others)."""
    certs: list[x509.Certificate] = []
    marker = b"-----END CERTIFICATE-----"
    for block in data.split(marker)[:-1]:
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. old roots with a negative serial number
                certs.append(x509.load_pem_x509_certificate(block[start:] + marker + b"\n"))
        except ValueError:
            continue
    return certs


@lru_cache(maxsize=4)
def _load_trust_store(bundle: Path, directory: Path) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(_pem_certificates(bundle.read_bytes()))
    except OSError:
        pass
    certs: list[x509.Certificate] = []
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".pem", ".crt") or not path.is_file():
                continue
            try:
                certs += _pem_certificates(path.read_bytes())
            except OSError:
                continue
    return tuple(certs)


def system_trust_store(bundle: Path = SYSTEM_TRUST_BUNDLE, directory: Path = SYSTEM_TRUST_DIR
                       ) -> tuple[x509.Certificate, ...]:
    """The roots this system trusts (the bundle, else every .pem/.crt of the directory)."""
    return _load_trust_store(bundle, directory)


def _local_cas(config: Config, extra: list[x509.Certificate]) -> list[x509.Certificate]:
    """CA certificates of the configuration directory: ipsec.d/cacerts, ca sections,
    DIR/ca/ (ikegate example's root) and ``extra``."""
    found: list[x509.Certificate] = list(extra)
    paths = list(config.cacert_files)
    ca_dir = Path(config.confdir) / "ca"
    if ca_dir.is_dir():
        paths += sorted(p for p in ca_dir.iterdir() if p.is_file())
    for path in paths:
        try:
            found.append(load_certificate(path))
        except (PkiError, OSError):
            continue
    found += [s.cacert_object for s in config.ca_sections if s.cacert_object is not None]
    return [c for c in found if is_ca(c)]


def _in_store(cert: x509.Certificate, store: list[x509.Certificate]) -> bool:
    key = spki_der(cert.public_key())
    return any(c.subject == cert.subject and spki_der(c.public_key()) == key for c in store)


def _find_issuer(cert: x509.Certificate, cas: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in cas:
        if candidate.subject == cert.issuer and candidate != cert and is_issued_by(cert, candidate):
            return candidate
    return None


def _trust_anchor(config: Config, leaf: x509.Certificate, ca_file, trusted: list[x509.Certificate]
                  ) -> tuple[x509.Certificate, bool]:
    """(certificate clients must trust, whether it is private)."""
    explicit = None
    if ca_file is not None:
        try:
            explicit = load_certificate(ca_file)
        except PkiError as exc:
            raise ProfileError(f"--ca: {exc}") from None
    local = _local_cas(config, [explicit] if explicit is not None else [])
    chain = [leaf]
    current = leaf
    anchor: x509.Certificate | None = None
    while len(chain) <= _MAX_CHAIN:
        if explicit is not None and current == explicit:
            anchor = explicit
            break
        if is_self_signed(current):
            anchor = current
            break
        issuer = _find_issuer(current, local)
        if issuer is None:
            public_root = _find_issuer(current, trusted)
            if public_root is not None:
                anchor = public_root
                break
            raise ProfileError(
                f'the issuer "{current.issuer.rfc4514_string()}" of "{current.subject.rfc4514_string()}" '
                "is neither in ipsec.d/cacerts nor a trusted root of this system: give the root CA "
                "clients must trust with --ca FILE")
        if issuer in chain:
            raise ProfileError(f'the certificate chain of "{leaf.subject.rfc4514_string()}" loops')
        chain.append(issuer)
        current = issuer
    if anchor is None:
        raise ProfileError(f'the certificate chain of "{leaf.subject.rfc4514_string()}" is longer than '
                           f"{_MAX_CHAIN} certificates")
    if explicit is not None and anchor != explicit:
        raise ProfileError(f'--ca "{explicit.subject.rfc4514_string()}" is not in the chain of the server '
                           f'certificate (which ends at "{anchor.subject.rfc4514_string()}")')
    return anchor, not _in_store(anchor, trusted)
