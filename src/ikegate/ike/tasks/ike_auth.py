"""IKE_AUTH, responder side: identities, conn choice, our signature, the peer's EAP or
PSK authentication, and the moment the IKE SA is established.

Rounds (RFC 7296 2.16, EAP):
1. ``IDi [CERTREQ] [IDr] CP SA TSi TSr`` without AUTH  ->  ``IDr CERT+ AUTH EAP(Request)``
2. ``EAP(Response)``  ->  ``EAP(Request)`` ... until ``EAP(Success)``
3. ``AUTH`` (keyed with the EAP MSK)  ->  ``AUTH`` (MSK) + the CP/SA/TS built by later tasks.

A client that sends AUTH in round 1 authenticates with a pre-shared key (pubkey client
certificates come with a later issue) and gets everything in one response.

The conn (peer config) is chosen here as strongSwan's backend manager does: among the
conns whose ``ike=`` accepted the IKE proposal, the first whose remote auth class, remote
id and local id fit.  Beyond strongSwan, an IDr that is not ``leftid`` but is one of our
certificate's subjectAltNames is accepted and answered with that identity (Apple clients
send the server name as IDr while the seed keeps ``leftid`` at the certificate's DN).

Failed client authentications are counted per source, and a source held off for too many
is refused here before we sign or check anything (:mod:`ikegate.ike.throttle`).
"""

from __future__ import annotations

import hmac

from ikegate.identity import Identity
from ikegate.crypto.errors import CryptoError
from ikegate.eap.server import EapServerSession
from ikegate.ike.exchange import Abort, Exchange, Task
from ikegate.pki.keys import PkiError
from ikegate.pki.signature import choose_signature_scheme, sign_auth
from ikegate.pki.store import cert_matches_identity
from ikegate.wire.constants import AuthMethod, EapType, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import AuthPayload, EapPayload, IdPayload

KEY_PAD = b"Key Pad for IKEv2"


def id_body(id_type: int, data: bytes) -> bytes:
    """The ID payload without its generic header, as signed (RFC 7296 2.15)."""
    return bytes((id_type, 0, 0, 0)) + data


class IkeAuth(Task):
    def __init__(self, sa) -> None:
        self.sa = sa
        self.round = 0
        self.eap: EapServerSession | None = None
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
        if self.eap is not None and not self.eap_done:
            if eap is None:
                raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="expected an EAP payload")
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
        conn, local_id = self._select_conn(sa.remote_id, wanted, has_auth=auth is not None)
        if conn is None:
            sa.log.info(
                "no matching peer config found for '%s'...'%s'", wanted or "%any", sa.remote_id
            )
            raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="no matching peer config")
        sa.set_conn(conn, local_id)
        sa.log_cfg.info("selected peer config '%s'", conn.name)
        self._refuse_held_off()
        self.send_own_auth = True
        if auth is not None:
            self._verify_psk_auth(auth)
        else:
            self._start_eap()

    def _select_conn(self, idi: Identity, idr: Identity | None, *, has_auth: bool):
        sa = self.sa
        for conn in sa.auth_candidates():
            method = _auth_method(conn.remote)
            if has_auth and method not in ("psk", "any"):
                continue
            if not has_auth and method not in ("eap", "any"):
                continue
            rule = conn.remote.id
            if rule is not None and not rule.is_any and not idi.matches(rule):
                continue
            local_id = conn.local.id
            if idr is not None and not idr.is_any:
                if local_id is not None and not local_id.is_any and idr.matches(local_id):
                    pass
                else:
                    creds = sa.rt.credentials_for(conn)
                    if creds is None:
                        continue
                    id_type, data = idr.to_wire()
                    if not cert_matches_identity(creds.cert, id_type, data):
                        continue
                    sa.log.info("IDr '%s' is not leftid but is in our certificate: answering with it", idr)
                    local_id = idr
            return conn, local_id
        return None, None

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
        expected = sa.prf(sa.prf(sa.msk, KEY_PAD), self._peer_octets())
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
        psk = sa.rt.secrets.find_psk(sa.local_id, sa.remote_id) if hasattr(sa.rt.secrets, "find_psk") else None
        if not psk:
            raise self._failed("no shared key found")
        expected = sa.prf(sa.prf(psk, KEY_PAD), self._peer_octets())
        if not hmac.compare_digest(expected, auth.data):
            raise self._failed("pre-shared key AUTH mismatch")
        sa.log.info("authentication of '%s' with pre-shared key successful", sa.remote_id)
        sa.peer_auth_method = "psk"
        self.peer_auth = auth

    # -- failed logins, held off per source (ike/throttle.py) --------------------------------

    def _count_failure(self) -> None:
        """A failed credential check (a wrong password, key or MSK), counted against the
        peer's source: too many hold it off."""
        sa = self.sa
        self.failures += 1
        tried = self.eap.identity if self.eap is not None else sa.remote_id
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
            ex.add(self._signature_auth())
            sa.own_signature_exchange = ex.message_id
        if self.eap_out is not None:
            ex.add(EapPayload(data=self.eap_out))
            self.eap_out = None
            if self.eap is not None and not self.eap_done:
                return False
        if self.expect_final_auth:
            return False
        if self.peer_auth is None:
            return False
        if sa.msk is not None:
            mic = sa.prf(sa.prf(sa.msk, KEY_PAD), self._own_octets())
            ex.add(AuthPayload(method=AuthMethod.SHARED_KEY_MIC, data=mic))
        sa.authenticated(ex)
        return True

    def _wants_pss(self) -> bool:
        """RSASSA-PSS where asked: ``charon.rsa_pss = yes`` or an ``rsa/pss`` constraint in leftauth."""
        return self.sa.rt.settings.rsa_pss or _pss_constraint(self.sa.conn.local)

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

