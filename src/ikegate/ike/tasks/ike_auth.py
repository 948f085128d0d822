"""IKE_AUTH, responder side: identities, conn choice, our signature, the peer's EAP or
PSK authentication, and the moment the IKE SA is established.

Rounds (RFC 7296 2.16, EAP):
1. ``IDi [CERTREQ] [IDr] CP SA TSi TSr`` without AUTH  ->  ``IDr CERT+ AUTH EAP(Request)``
2. ``EAP(Response)``  ->  ``EAP(Request)`` ... until ``EAP(Success)``
3. ``AUTH`` (keyed with the EAP MSK)  ->  ``AUTH`` (MSK) + the CP/SA/TS built by later tasks.

``rightauth=eap-radius`` (:mod:`ikegate.eap.radius_relay`): after our EAP-Identity round
(if ``eap_identity`` is set) every EAP response goes to the RADIUS server and the
IKE_AUTH request waits (``Exchange.waiting``) until it answers: its EAP request goes to the
client, its Access-Accept ends in EAP-Success with the MSK from the MPPE keys, an
Access-Reject (a failed login, counted) or no answer (not counted: not the client's
fault) in EAP-Failure and AUTHENTICATION_FAILED, as a local EAP failure.

A client that sends AUTH in round 1 authenticates with a pre-shared key or with a
signature (``rightauth=pubkey``: ``IDi CERT+ [CERTREQ] [IDr] AUTH ...``) and gets
everything in one response.  A signature is accepted when the first CERT is an X.509
certificate that chains to a CA of ``ipsec.d/cacerts`` (the other CERTs may supply
intermediates), is valid now and not revoked by a CRL of ``ipsec.d/crls``, was issued
under ``rightca=`` if set, contains IDi (subject DN or subjectAltName), has the key type
``rightauth=rsa``/``ecdsa`` asks for, and verifies the AUTH over the client's signed
octets: RSA PKCS#1 v1.5 SHA-1 (method 1), ECDSA with SHA-2 on P-256/384/521 (methods
9-11) or an RFC 7427 digital signature (14: PKCS#1 v1.5, RSASSA-PSS, ECDSA, EdDSA).  A
``rightcert=`` configured for the conn is the only certificate accepted, trusted as
configured (sent by the client or not).

The conn (peer config) is chosen here as strongSwan's backend manager ranks peer configs:
among the conns whose ``ike=`` accepted the IKE proposal and whose remote auth class fits
the client's (EAP without AUTH, PSK or signature with it), those whose ``rightid`` and
``leftid`` match IDi and IDr, best identity match first (an exact id beats a wildcard
one, which beats ``%any``; :meth:`Identity.matches`), configuration order among equals.
Beyond strongSwan, an IDr that is not ``leftid`` but is one of our certificate's
subjectAltNames is accepted and answered with that identity (Apple clients send the
server name as IDr while the seed keeps ``leftid`` at the certificate's DN).

Failed client authentications are counted per source, and a source held off for too many
is refused here before we sign or check anything (:mod:`ikegate.ike.throttle`).
"""

from __future__ import annotations

import hmac

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ikegate.crypto.errors import CryptoError
from ikegate.eap import radius_relay
from ikegate.eap.packet import EapPacket
from ikegate.eap.radius_relay import RadiusEapSession, nas_attributes
from ikegate.eap.server import EapServerSession
from ikegate.identity import MATCH_ANY, MATCH_PERFECT, Identity
from ikegate.ike.exchange import Abort, Exchange, Task
from ikegate.pki.keys import PkiError
from ikegate.pki.signature import auth_signature_scheme, choose_signature_scheme, sign_auth, verify_auth
from ikegate.pki.store import cert_matches_identity
from ikegate.pki.verify import CertificateRejected, verify_chain
from ikegate.wire.constants import AuthMethod, CertEncoding, EapType, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import AuthPayload, EapPayload, IdPayload

KEY_PAD = b"Key Pad for IKEv2"

#: AUTH methods of signatures (RFC 7296 3.8, RFC 4754, RFC 7427)
SIGNATURE_METHODS = (AuthMethod.RSA_SIG, AuthMethod.ECDSA_SHA256_P256, AuthMethod.ECDSA_SHA384_P384,
                     AuthMethod.ECDSA_SHA512_P521, AuthMethod.DIGITAL_SIGNATURE)


def id_body(id_type: int, data: bytes) -> bytes:
    """The ID payload without its generic header, as signed (RFC 7296 2.15)."""
    return bytes((id_type, 0, 0, 0)) + data


class IkeAuth(Task):
    def __init__(self, sa) -> None:
        self.sa = sa
        self.round = 0
        self.eap: EapServerSession | None = None
        self.radius: RadiusEapSession | None = None  # rightauth=eap-radius
        self.eap_out: bytes | None = None
        self.eap_done = False
        self.peer_auth: AuthPayload | None = None
        self.send_own_auth = False
        self.expect_final_auth = False
        self.failures = 0  # failed credential checks counted against the source (ike/throttle.py)

    # -- processing ---------------------------------------------------------------------

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange != ExchangeType.IKE_AUTH:
            return
        self.round += 1
        if self.round == 1:
            self._process_first(ex)
            return
        auth = ex.get(PayloadType.AUTH)
        eap = ex.get(PayloadType.EAP)
        if self._eap_running():
            if eap is None:
                raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="expected an EAP payload")
            if self.radius is not None:
                self._process_radius_eap(ex, eap.data)
            else:
                self._process_eap(ex, eap.data)
            return
        if self.expect_final_auth:
            if auth is None:
                raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="expected the final AUTH payload")
            self._verify_msk_auth(auth)
            return
        raise Abort(NotifyType.INVALID_SYNTAX, reason="unexpected IKE_AUTH request")

    def _process_first(self, ex: Exchange) -> None:
        sa = self.sa
        idi = ex.get(PayloadType.IDi)
        if idi is None:
            raise Abort(NotifyType.INVALID_SYNTAX, reason="IKE_AUTH request without IDi")
        idr = ex.get(PayloadType.IDr)
        sa.remote_id_payload = idi
        try:
            sa.remote_id = Identity.from_wire(idi.id_type, idi.data)
            wanted = Identity.from_wire(idr.id_type, idr.data) if idr is not None else None
        except ValueError:
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="malformed identity") from None
        auth = ex.get(PayloadType.AUTH)
        sa.peer_initial_contact = ex.has_notify(NotifyType.INITIAL_CONTACT)
        sa.log.info("received IDi '%s'%s", sa.remote_id, f", IDr '{wanted}'" if wanted else "")
        peer_class = "eap" if auth is None else "pubkey" if auth.method in SIGNATURE_METHODS else "psk"
        conn, local_id = self._select_conn(sa.remote_id, wanted, peer_class=peer_class)
        if conn is None:
            sa.log.info(
                "no matching peer config found for '%s'...'%s'", wanted or "%any", sa.remote_id
            )
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="no matching peer config")
        sa.set_conn(conn, local_id)
        sa.log_cfg.info("selected peer config '%s'", conn.name)
        self._refuse_held_off()
        self.send_own_auth = True
        if peer_class == "pubkey":
            self._verify_signature_auth(auth, ex.get_all(PayloadType.CERT))
        elif auth is not None:
            self._verify_psk_auth(auth)
        elif getattr(sa.conn.remote.auth, "radius", False):
            self._start_radius(ex)
        else:
            self._start_eap()

    def _eap_running(self) -> bool:
        return (self.eap is not None or self.radius is not None) and not self.eap_done

    def _select_conn(self, idi: Identity, idr: Identity | None, *, peer_class: str):
        """The best conn for IDi/IDr and the client's auth class ("eap", "psk",
        "pubkey"), with the local identity to answer with; (None, None) if none fits."""
        sa = self.sa
        ranked = []
        for order, conn in enumerate(sa.auth_candidates()):
            if _auth_method(conn.remote) not in (peer_class, "any"):
                continue
            rule = conn.remote.id
            remote_match = idi.matches(rule) if rule is not None and not rule.is_any else MATCH_ANY
            if not remote_match:
                continue
            local_id = conn.local.id
            local_match = MATCH_ANY
            if idr is not None and not idr.is_any:
                local_match = idr.matches(local_id) if local_id is not None and not local_id.is_any else MATCH_ANY
                if not local_match:
                    creds = sa.rt.credentials_for(conn)
                    if creds is None:
                        continue
                    id_type, data = idr.to_wire()
                    if not cert_matches_identity(creds.cert, id_type, data):
                        continue
                    local_id, local_match = idr, MATCH_PERFECT
            ranked.append((-(remote_match + local_match), order, conn, local_id))
        if not ranked:
            return None, None
        _, _, conn, local_id = min(ranked, key=lambda entry: entry[:2])
        if local_id is not conn.local.id:
            sa.log.info("IDr '%s' is not leftid but is in our certificate: answering with it", idr)
        return conn, local_id

    # -- EAP ---------------------------------------------------------------------------

    def _start_eap(self) -> None:
        sa = self.sa
        conn = sa.conn
        secrets_ = sa.rt.secrets

        def lookup(name: str):
            return secrets_.find_eap(name, sa.local_id)

        self.eap = EapServerSession(
            eap_identity_rule=conn.eap_identity_text,
            method_type=conn.remote.auth.eap_type or EapType.MSCHAPV2,
            lookup=lookup,
            ike_identity=str(sa.remote_id),
            random=sa.rt.random,
        )
        self.eap_out = self.eap.start()

    def _process_eap(self, ex: Exchange, packet: bytes) -> None:
        sa = self.sa
        self._refuse_held_off()
        result = self.eap.process(packet)
        if result.status == "continue":
            if result.delay:  # held back after a wrong password (EapResult): one failure
                self._count_failure()
            self.eap_out = result.send
            ex.delay = result.delay
            if result.reason:
                sa.log.info("EAP: %s", result.reason)
            return
        if result.status == "success":
            self.eap_done = True
            self.eap_out = result.send
            sa.eap_id = self.eap.identity
            sa.msk = self.eap.msk
            self.expect_final_auth = True
            sa.log.info("EAP method %s succeeded, MSK established", self.eap.method)
            return
        sa.log.info("EAP method %s failed for peer %s: %s", self.eap.method, sa.remote_id, result.reason or "failure")
        extra = [EapPayload(data=result.send)] if result.send else []
        ex.delay = result.delay
        # a wrong password (held back) is a failure; so is an EAP failure with none counted yet
        # (rejected identity, Nak), not the client giving up after a counted wrong password
        counted = not result.delay and self.failures > 0
        raise self._failed("EAP authentication failed", extra=extra, counted=counted)

    # -- EAP relayed to RADIUS (rightauth=eap-radius) ------------------------------------------

    def _start_radius(self, ex: Exchange) -> None:
        sa = self.sa
        if sa.gw.radius is None:
            sa.log.info("rightauth=eap-radius in conn '%s' but no RADIUS server is configured "
                        "(charon.plugins.eap-radius.servers)", sa.conn.name)
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="no RADIUS server configured",
                        extra=[EapPayload(data=EapPacket.failure(0).encode())])
        options = sa.gw.radius_options
        if not sa.session_id:  # strongSwan sends the Acct-Session-Id in Access-Requests already
            sa.session_id = sa.gw.session_id(sa)
        nas = nas_attributes(local=sa.local, remote=sa.remote, unique_id=sa.unique_id, conn_name=sa.conn.name,
                             nas_identifier=None, session_id=sa.session_id,
                             station_id_with_port=options.station_id_with_port)
        self.radius = RadiusEapSession(eap_identity_rule=sa.conn.eap_identity_text, ike_identity=str(sa.remote_id),
                                       nas=nas, random=sa.rt.random, id_prefix=options.id_prefix,
                                       eap_start=options.eap_start)
        self._radius_step(ex, self.radius.start())

    def _process_radius_eap(self, ex: Exchange, packet: bytes) -> None:
        self._refuse_held_off()
        self._radius_step(ex, self.radius.process(packet))

    def radius_answer(self, ex: Exchange, answer) -> None:
        """The RADIUS answer (or timeout) the IKE_AUTH request ``ex`` waited for."""
        if self.radius is None:
            return
        packet = getattr(answer, "packet", None)
        if packet is None:
            step = self.radius.timeout()
        else:
            step = self.radius.answer(packet, secret=answer.secret,
                                      request_authenticator=answer.request_authenticator,
                                      server=getattr(answer, "server", ""))
        self._radius_step(ex, step)

    def _radius_step(self, ex: Exchange, step: radius_relay.RelayStep) -> None:
        sa = self.sa
        if step.reason:
            sa.log.info("%s", step.reason)
        if step.status == radius_relay.RADIUS:
            if not sa.gw.radius_request(sa, step.request):
                self._radius_step(ex, self.radius.timeout())
                return
            ex.waiting = True
            return
        if step.status == radius_relay.CONTINUE:
            self.eap_out = step.eap
            return
        if step.status == radius_relay.SUCCESS:
            self.eap_done = True
            self.eap_out = step.eap
            sa.eap_id = self.radius.identity
            sa.msk = step.msk
            sa.radius_attrs = step.attributes
            self.expect_final_auth = True
            sa.log.info("EAP method %s succeeded, MSK established", self.radius.eap_type)
            return
        sa.log.info("EAP method %s failed for peer %s: %s", self.radius.eap_type, sa.remote_id,
                    step.reason or "failure")
        extra = [EapPayload(data=step.eap)] if step.eap else []
        raise self._failed("EAP authentication failed", extra=extra, counted=step.server_fault)

    # -- verifying the peer's AUTH ---------------------------------------------------------

    def _peer_octets(self) -> bytes:
        sa = self.sa
        idi = sa.remote_id_payload
        return sa.init_request + sa.nonce_r + sa.prf(sa.keys.sk_pi, id_body(idi.id_type, idi.data))

    def _own_octets(self) -> bytes:
        sa = self.sa
        id_type, data = sa.local_id.to_wire()
        return sa.init_response + sa.nonce_i + sa.prf(sa.keys.sk_pr, id_body(id_type, data))

    def _verify_msk_auth(self, auth: AuthPayload) -> None:
        sa = self.sa
        if auth.method != AuthMethod.SHARED_KEY_MIC or sa.msk is None:
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason=f"unexpected AUTH method {auth.method}")
        expected = self._shared_key_mic(sa.msk, self._peer_octets())
        if not hmac.compare_digest(expected, auth.data):
            sa.log.info("verification of AUTH payload with EAP MSK failed")
            raise self._failed("EAP MSK AUTH mismatch")
        sa.log.info("authentication of '%s' with EAP successful", sa.remote_id)
        sa.peer_auth_method = "eap"
        self.expect_final_auth = False
        self.peer_auth = auth

    def _verify_psk_auth(self, auth: AuthPayload) -> None:
        sa = self.sa
        if auth.method != AuthMethod.SHARED_KEY_MIC:
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason=f"AUTH method {auth.method} not accepted")
        psk = sa.rt.secrets.find_psk(sa.local_id, sa.remote_id)
        if not psk:
            raise self._failed("no shared key found")
        expected = self._shared_key_mic(psk, self._peer_octets())
        if not hmac.compare_digest(expected, auth.data):
            raise self._failed("pre-shared key AUTH mismatch")
        sa.log.info("authentication of '%s' with pre-shared key successful", sa.remote_id)
        sa.peer_auth_method = "psk"
        self.peer_auth = auth

    def _verify_signature_auth(self, auth: AuthPayload, cert_payloads: list) -> None:
        """``rightauth=pubkey``: the client's certificate, its trust chain, IDi in it and
        the AUTH signature (see the module docstring).  Failures are counted."""
        sa = self.sa
        remote = sa.conn.remote
        certs = []
        for payload in cert_payloads:
            if payload.encoding != CertEncoding.X509_SIGNATURE:
                sa.log.info("ignoring certificate encoding %d", payload.encoding)
                continue
            try:
                certs.append(x509.load_der_x509_certificate(payload.data))
            except ValueError:
                raise self._failed("malformed certificate payload") from None
        pinned = getattr(remote, "cert_object", None)
        if pinned is not None:  # rightcert=: this certificate and no other, trusted as configured
            if certs and certs[0] != pinned:
                sa.log.info("certificate '%s' is not the configured rightcert", certs[0].subject.rfc4514_string())
                raise self._failed("not the configured certificate")
            leaf = pinned
        elif certs:
            leaf = certs[0]
            try:
                verify_chain(sa.rt.cert_store, leaf, certs[1:], ca=remote.ca)
            except CertificateRejected as exc:
                sa.log.info("%s", exc)
                raise self._failed("certificate not trusted") from None
        else:
            sa.log.info("no trusted public key found for '%s': the peer sent no certificate", sa.remote_id)
            raise self._failed("no certificate")
        subject = leaf.subject.rfc4514_string()
        idi = sa.remote_id_payload
        if not cert_matches_identity(leaf, idi.id_type, idi.data):
            sa.log.info("certificate '%s' does not contain IDi '%s'", subject, sa.remote_id)
            raise self._failed("IDi not in the certificate")
        if not _key_type_fits(remote.auth, leaf.public_key()):
            sa.log.info("certificate key of '%s' does not fit rightauth=%s", subject, remote.auth)
            raise self._failed("key type not accepted")
        scheme = auth_signature_scheme(auth.method, auth.data)
        if not _scheme_allowed(remote.auth, scheme):
            sa.log.info("signature scheme %s of '%s' does not fit rightauth=%s",
                        "-".join(scheme) if scheme else "unknown", sa.remote_id, remote.auth)
            raise self._failed("signature scheme not accepted")
        if not verify_auth(leaf, self._peer_octets(), auth.method, auth.data):
            sa.log.info("signature validation failed for '%s' (AUTH method %d)", sa.remote_id, auth.method)
            raise self._failed("signature AUTH mismatch")
        sa.log.info("authentication of '%s' with %s successful", sa.remote_id, AuthMethod(auth.method).name)
        sa.peer_auth_method = "pubkey"
        self.peer_auth = auth

    # -- failed logins, held off per source (ike/throttle.py) --------------------------------

    def _count_failure(self) -> None:
        """A failed credential check (a wrong password, key or MSK), counted against the
        peer's source: too many hold it off."""
        sa = self.sa
        self.failures += 1
        session = self.eap if self.eap is not None else self.radius
        tried = session.identity if session is not None else sa.remote_id
        sa.gw.auth_throttle.failed(sa.remote.host, sa.now, str(tried) if tried is not None else None)

    def _failed(self, reason: str, extra=(), *, counted: bool = False) -> Abort:
        """The Abort for a failed client authentication (counted unless ``counted``)."""
        if not counted:
            self._count_failure()
        return Abort(NotifyType.AUTHENTICATION_FAILED, reason=reason, extra=extra)

    def _refuse_held_off(self) -> None:
        """AUTHENTICATION_FAILED, unchecked, for an IKE SA whose source is held off."""
        sa = self.sa
        held = sa.gw.auth_throttle.held_off(sa.remote.host, sa.now)
        if held is not None:
            sa.gw.stats["auth_refused"] += 1
            raise Abort(NotifyType.AUTHENTICATION_FAILED,
                        reason=f"{sa.remote.host} is held off for {held:.0f}s more after failed authentications")

    # -- building ------------------------------------------------------------------------

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        sa = self.sa
        if self.round == 1:
            id_type, data = sa.local_id.to_wire()
            ex.add(IdPayload(id_type=id_type, data=data, responder=True))
            if _auth_method(sa.conn.local) == "psk":
                ex.add(self._psk_auth())  # leftauth=psk: no certificate goes out
            else:
                ex.add(self._signature_auth())
                sa.own_signature_exchange = ex.message_id
        if self.eap_out is not None:
            ex.add(EapPayload(data=self.eap_out))
            self.eap_out = None
            if self._eap_running():
                return False
        if self.expect_final_auth:
            return False
        if self.peer_auth is None:
            return False
        if sa.msk is not None:
            mic = self._shared_key_mic(sa.msk, self._own_octets())
            ex.add(AuthPayload(method=AuthMethod.SHARED_KEY_MIC, data=mic))
        sa.authenticated(ex)
        return True

    def _wants_pss(self) -> bool:
        """RSASSA-PSS where asked: ``charon.rsa_pss = yes`` or an ``rsa/pss`` constraint in leftauth."""
        return self.sa.rt.settings.rsa_pss or _pss_constraint(self.sa.conn.local)

    def _shared_key_mic(self, key: bytes, octets: bytes) -> bytes:
        """AUTH of a shared key or the EAP MSK: prf(prf(key, "Key Pad for IKEv2"), octets)
        (RFC 7296 2.15), for the peer's AUTH and for ours alike."""
        return self.sa.prf(self.sa.prf(key, KEY_PAD), octets)

    def _psk_auth(self) -> AuthPayload:
        """``leftauth=psk``: our AUTH with the shared key of our and the peer's identities
        (RFC 7296 2.15), as clients that only accept a responder AUTH of their own method
        (openiked) need."""
        sa = self.sa
        psk = sa.rt.secrets.find_psk(sa.local_id, sa.remote_id)
        if not psk:
            sa.log.info("no shared key found for '%s' - '%s'", sa.local_id, sa.remote_id)
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="no pre-shared key for ourselves")
        sa.log.info("authentication of '%s' (myself) with pre-shared key successful", sa.local_id)
        return AuthPayload(method=AuthMethod.SHARED_KEY_MIC, data=self._shared_key_mic(psk, self._own_octets()))

    def _signature_auth(self) -> AuthPayload:
        sa = self.sa
        creds = sa.credentials
        if creds is None:
            sa.log.info("no private key found for '%s'", sa.local_id)
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="no server certificate/key")
        try:
            method, hash_alg, pss = choose_signature_scheme(creds.key, sa.peer_hash_algs, rsa_pss=self._wants_pss())
            data = sign_auth(creds.key, self._own_octets(), method, hash_alg, pss)
        except (PkiError, CryptoError) as exc:
            sa.log.info("signing our AUTH failed: %s", exc)
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="signature failed") from None
        sa.log.info("authentication of '%s' (myself) with %s successful", sa.local_id, _method_name(method, hash_alg))
        return AuthPayload(method=method, data=data)


def _pss_constraint(end) -> bool:
    """``leftauth=rsa/pss-sha256`` (or ``ike:rsa/pss-...``) asks for RSASSA-PSS signatures."""
    auth = getattr(end, "auth", None)
    return any(c.key == "rsa/pss" for c in getattr(auth, "signature_constraints", ()) or ())


def _key_type_fits(auth, public_key) -> bool:
    """``rightauth=rsa``/``ecdsa``/``ed25519``/``ed448`` (``key_type``) restricts the
    certificate's key; ``pubkey`` takes any, a type we cannot verify none."""
    wanted = getattr(auth, "key_type", None)
    if not wanted or wanted == "any":
        return True
    kinds = {"rsa": rsa.RSAPublicKey, "rsa/pss": rsa.RSAPublicKey, "ecdsa": ec.EllipticCurvePublicKey,
             "ed25519": ed25519.Ed25519PublicKey, "ed448": ed448.Ed448PublicKey}
    kind = kinds.get(wanted)
    return kind is not None and isinstance(public_key, kind)


def _scheme_allowed(auth, scheme: tuple[str, str] | None) -> bool:
    """Whether the AUTH signature scheme fits ``rightauth=``'s signature constraints
    (``rsa/pss-sha256``, ``ike:ecdsa-sha384``, ``pubkey-sha512``; any if there are none).
    Here they constrain the AUTH signature only, not the certificates' own signatures."""
    constraints = getattr(auth, "signature_constraints", ()) or ()
    if not constraints:
        return True
    if scheme is None:
        return False
    key, hash_name = scheme
    return any(c.key in (key, "any") and c.hash == hash_name for c in constraints)


def _auth_method(end) -> str:
    auth = getattr(end, "auth", None)
    method = getattr(auth, "method", None) or (auth if isinstance(auth, str) else "any")
    if method.startswith("eap"):
        return "eap"
    return method


def _method_name(method: int, hash_alg: int | None) -> str:
    from ikegate.wire.constants import HashAlgorithm

    if method == AuthMethod.DIGITAL_SIGNATURE and hash_alg is not None:
        return f"RFC 7427 signature scheme ({HashAlgorithm(hash_alg).name})"
    return AuthMethod(method).name

