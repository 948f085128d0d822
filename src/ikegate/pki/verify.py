"""Verifying a client's certificate: the chain to a CA of ``ipsec.d/cacerts``, validity,
``rightca=`` and revocation by the CRLs of ``ipsec.d/crls``.

What strongSwan's credential manager does for ``rightauth=pubkey`` (credential_manager.c
``verify_trust_chain``, revocation plugin with local CRLs only), redone on
``cryptography``: the end-entity certificate the client sent first, then issuers taken
from the certificates it sent after it or from the store, each one verified as issuer
(name, key identifiers, signature, CA basicConstraints) and inside its validity period,
up to a CA of the store (the trust anchor; a self-signed root needs no issuer).  At most
:data:`~ikegate.pki.store.MAX_TRUST_PATH_LEN` intermediates.  A certificate listed in a
CRL its issuer signed is refused; without a CRL the certificate is accepted
(``strictcrlpolicy=no``, the default; fetching CRLs or OCSP is not done).

Nothing here does I/O; the CRL files are read by :meth:`CertStore.load_crls`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from cryptography import x509

from ikegate.identity import Identity
from ikegate.pki.store import MAX_TRUST_PATH_LEN, CertStore, is_ca, is_issued_by, is_self_signed


class CertificateRejected(Exception):
    """The client's certificate is not trusted; the message says why (for the log)."""


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def _check_validity(cert: x509.Certificate, now: datetime.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateRejected(f'certificate "{_describe(cert)}" is not valid yet')
    if now > cert.not_valid_after_utc:
        raise CertificateRejected(f'certificate "{_describe(cert)}" has expired')


def _find_issuer(cert: x509.Certificate, candidates: Iterable[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject == cert.issuer and is_ca(candidate) and is_issued_by(cert, candidate):
            return candidate
    return None


def verify_chain(store: CertStore, leaf: x509.Certificate, sent: Iterable[x509.Certificate] = (), *,
                 ca: Identity | None = None, now: datetime.datetime | None = None) -> list[x509.Certificate]:
    """The trust chain of ``leaf``: ``[leaf, intermediates..., anchor]``, the anchor a CA
    of ``store``.  ``sent`` are the other certificates the client sent (intermediates,
    never trusted by themselves).  ``ca`` (``rightca=``) must match the subject of one
    CA of the chain.  Raises :class:`CertificateRejected` with the reason otherwise
    (not trusted, expired, revoked, too long, wrong CA)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    sent = [c for c in sent if c != leaf]
    chain = [leaf]
    current = leaf
    _check_validity(leaf, now)
    while True:
        if current in store.cas:
            break  # a trust anchor reached
        anchor = _find_issuer(current, store.cas)
        if anchor is None and is_self_signed(current):
            raise CertificateRejected(f'root "{_describe(current)}" is not a trusted CA')
        issuer = anchor or _find_issuer(current, sent)
        if issuer is None:
            raise CertificateRejected(f'no issuer certificate found for "{_describe(current)}"')
        if issuer in chain:
            raise CertificateRejected(f'loop in the trust chain of "{_describe(leaf)}"')
        _check_validity(issuer, now)
        if store.is_revoked(current, issuer):
            raise CertificateRejected(f'certificate "{_describe(current)}" is revoked')
        chain.append(issuer)
        if len(chain) > MAX_TRUST_PATH_LEN + 2:
            raise CertificateRejected(f'trust chain of "{_describe(leaf)}" is too long')
        if anchor is not None:
            break
        current = issuer
    if ca is not None and not ca.is_any:
        if not any(Identity.from_dn_der(c.subject.public_bytes()).matches(ca) for c in chain[1:] or chain):
            raise CertificateRejected(f'"{_describe(leaf)}" is not issued by rightca "{ca}"')
    return chain
