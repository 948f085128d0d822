"""Certificates: our CERTREQ, the peer's CERTREQs, and our CERT chain.

- IKE_SA_INIT response: a CERTREQ with the SHA-1 key hashes of our CAs, unless the remote
  end has ``sendcert=never`` (strongSwan's ``no_certreq``).
- IKE_AUTH request: the CA hashes the peer asks for (they cut our chain short) and any
  certificate it sends (kept for pubkey client authentication).
- IKE_AUTH response carrying our signature AUTH: the leaf and the intermediates from
  ``ipsec.d/cacerts`` up to, not including, a self-signed root or a CA the peer named;
  ``leftsendcert=always`` sends them unasked, ``ifasked`` only after a CERTREQ, ``never``
  not at all.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding

from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import CertEncoding, ExchangeType, PayloadType
from ikegate.wire.payloads import CertPayload, CertReqPayload


class IkeCertPre(Task):
    """Reads CERTREQ and CERT payloads of the peer; sends our CERTREQ in IKE_SA_INIT."""

    def __init__(self, sa) -> None:
        self.sa = sa

    def process_r(self, ex: Exchange) -> None:
        sa = self.sa
        for req in ex.get_all(PayloadType.CERTREQ):
            if req.encoding == CertEncoding.X509_SIGNATURE:
                sa.peer_certreqs.extend(req.ca_hashes)
        if ex.exchange == ExchangeType.IKE_AUTH:
            for cert in ex.get_all(PayloadType.CERT):
                if cert.encoding == CertEncoding.X509_SIGNATURE:
                    sa.peer_certs.append(cert.data)
            if sa.peer_certreqs:
                known = sum(1 for h in sa.peer_certreqs if sa.rt.cert_store.find_by_key_hash(h) is not None)
                unknown = len(sa.peer_certreqs) - known
                if unknown:
                    sa.log.info("received %d cert requests for an unknown ca", unknown)

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return ex.exchange == ExchangeType.IKE_AUTH
        sa = self.sa
        conn = sa.init_conn
        if conn is None or getattr(conn.remote, "sendcert", "ifasked") == "never":
            return False
        hashes = sa.rt.cert_store.ca_key_hashes()
        if hashes:
            ex.add(CertReqPayload(encoding=CertEncoding.X509_SIGNATURE, data=b"".join(hashes)))
        return False


class IkeCertPost(Task):
    """Adds our certificate chain to the response that carries our signature AUTH."""

    def __init__(self, sa) -> None:
        self.sa = sa

    def build_r(self, ex: Exchange) -> bool:
        sa = self.sa
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        if not sa.own_signature_sent_in(ex):
            return sa.auth_done
        creds = sa.credentials
        sendcert = getattr(sa.conn.local, "sendcert", "ifasked")
        if creds is None or sendcert == "never":
            return True
        if sendcert == "ifasked" and not sa.peer_certreqs:
            return True
        chain = creds.store.build_chain(creds.cert, sa.peer_certreqs) if creds.store is not None else []
        ex.add(CertPayload(encoding=CertEncoding.X509_SIGNATURE, data=creds.cert.public_bytes(Encoding.DER)))
        sa.log.info('sending end entity cert "%s"', creds.cert.subject.rfc4514_string())
        for ca in chain:
            ex.add(CertPayload(encoding=CertEncoding.X509_SIGNATURE, data=ca.public_bytes(Encoding.DER)))
            sa.log.info('sending issuer cert "%s"', ca.subject.rfc4514_string())
        return True
