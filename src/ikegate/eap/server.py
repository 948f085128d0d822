"""One EAP conversation of the gateway with a peer, as strongSwan's eap_authenticator runs it.

The IKE layer puts :meth:`EapServerSession.start`'s packet into the first
IKE_AUTH response and feeds every EAP payload the client sends to
:meth:`EapServerSession.process`, which says what to send back (and how long
to hold it).  Sans-IO: nothing here sleeps, logs or touches the network.

``eap_identity`` handling (strongSwan ``server_initiate_eap``/``apply_eap_identity``,
spec/strongswan-semantics.md section 2.3):

* ``%any``/``%identity``: an EAP-Identity round first, any identity accepted;
* a concrete identity: an EAP-Identity round whose answer must match it; the
  MS-CHAPv2 Name must match it too (strongSwan rejects a mismatching final EAP
  identity later, in the auth-config constraint check);
* unset (None): no EAP-Identity round, the IKE identity stands in.

An empty Identity response means "use the IKE identity" (strongSwan 5.9 and
6.0.3+).  After success :attr:`identity` is the MS-CHAPv2 Name (what strongSwan
stores as the EAP identity and uses for leases, uniqueness and PLUTO_XAUTH_ID).

Error handling follows ``server_process_eap``: a non-Response, a response of
the wrong type, an EAP-Nak (we offer one method only) or a wrong identifier
ends the conversation with EAP-Failure.  strongSwan does not check the
identifier of the Identity response; we do, for every response.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ikegate.eap.identity import (
    IdentityRule,
    build_identity_request,
    identity_matches,
    identity_of_response,
    is_any_rule,
)
from ikegate.eap.mschapv2 import MschapV2Server, SecretLookup
from ikegate.eap.packet import EapDecodeError, EapPacket, decode
from ikegate.wire.constants import EapCode, EapType

__all__ = ["EapResult", "EapServerSession"]

CONTINUE = "continue"
SUCCESS = "success"
FAILURE = "failure"


@dataclass(frozen=True)
class EapResult:
    """What to do after a client's EAP packet.

    ``status``: "continue" (``send`` is the next request), "success" (``send``
    is EAP-Success; the MSK is ready) or "failure" (``send`` is EAP-Failure, or
    None when nothing is to be sent).  ``delay``: seconds to hold ``send``
    before sending it (anti-guessing delay after a wrong password).
    ``reason``: a log line, free of secrets.
    """

    status: str
    send: bytes | None
    delay: float = 0.0
    reason: str = ""


class _Phase(enum.Enum):
    NEW = "new"
    IDENTITY = "identity"
    METHOD = "method"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EapServerSession:
    """Server side of one EAP authentication (one IKE_AUTH exchange).

    ``random(n)`` must return ``n`` random bytes; it is called with 1 for the
    first EAP identifier and with 16 for each MS-CHAPv2 challenge (inject it
    for known-answer tests).
    """

    def __init__(
        self,
        *,
        eap_identity_rule: IdentityRule,
        method_type: EapType | int = EapType.MSCHAPV2,
        lookup: SecretLookup,
        ike_identity: str,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if method_type != EapType.MSCHAPV2:
            raise ValueError(f"unsupported EAP method {method_type!r}: only EAP-MSCHAPv2 is implemented")
        self._rule = eap_identity_rule
        self._random = random
        self._ike_identity = ike_identity
        self._identity = ike_identity
        concrete = eap_identity_rule is not None and not is_any_rule(eap_identity_rule)
        name_check = (lambda name: identity_matches(name, eap_identity_rule)) if concrete else None
        self._method = MschapV2Server(lookup, random=random, name_check=name_check)
        self._method_type = EapType.MSCHAPV2
        self._phase = _Phase.NEW
        self._identifier = 0
        self._msk: bytes | None = None

    # -------------------------------------------------------------- properties

    @property
    def method(self) -> str:
        """Name of the EAP method, as strongSwan logs it ("EAP_MSCHAPV2")."""
        return f"EAP_{self._method_type.name}"

    @property
    def identity(self) -> str:
        """The peer's EAP identity so far: the IKE identity, then the EAP-Identity
        answer, and after success the MS-CHAPv2 Name."""
        return self._identity

    @property
    def msk(self) -> bytes | None:
        """The 64-byte MSK after success, else None."""
        return self._msk

    @property
    def status(self) -> str:
        """"new", "continue", "success" or "failure"."""
        if self._phase is _Phase.NEW:
            return "new"
        if self._phase is _Phase.SUCCEEDED:
            return SUCCESS
        if self._phase is _Phase.FAILED:
            return FAILURE
        return CONTINUE

    # ---------------------------------------------------------------- exchange

    def _next_identifier(self) -> int:
        return (self._identifier + 1) & 0xFF

    def start(self) -> bytes:
        """The first EAP request (EAP-Identity, or the method's if ``eap_identity`` is unset)."""
        if self._phase is not _Phase.NEW:
            raise RuntimeError("EAP session already started")
        first = bytes(self._random(1))
        self._identifier = first[0] if first else 0
        if self._rule is not None:
            self._phase = _Phase.IDENTITY
            return build_identity_request(self._identifier).encode()
        self._phase = _Phase.METHOD
        return self._method.initiate(self._identifier).encode()

    def _failure(self, identifier: int, reason: str, delay: float = 0.0) -> EapResult:
        self._phase = _Phase.FAILED
        return EapResult(FAILURE, EapPacket.failure(identifier).encode(), delay, reason)

    def process(self, packet: bytes) -> EapResult:
        """Handle one EAP packet from the client; never raises on bad input."""
        if self._phase is _Phase.NEW:
            raise RuntimeError("EAP session not started")
        if self._phase in (_Phase.SUCCEEDED, _Phase.FAILED):
            return EapResult(FAILURE, None, reason="EAP exchange already finished")
        try:
            response = decode(packet)
        except EapDecodeError as exc:
            return self._failure(self._identifier, f"received invalid EAP packet: {exc}")
        if response.code != EapCode.RESPONSE:
            return self._failure(response.identifier, f"received EAP {response.code.name}, expected a Response")
        if response.identifier != self._identifier:
            return self._failure(
                response.identifier,
                f"received EAP response with identifier {response.identifier}, expected {self._identifier}",
            )
        expected_type = EapType.IDENTITY if self._phase is _Phase.IDENTITY else self._method_type
        if response.type != expected_type:
            if response.type == EapType.NAK:
                wanted = ", ".join(str(b) for b in response.data) or "none"
                return self._failure(response.identifier, f"received EAP_NAK (peer wants types: {wanted})")
            shown = getattr(response.type, "name", response.type)
            return self._failure(
                response.identifier,
                f"received EAP response of type {shown}, expected {expected_type.name}",
            )
        if self._phase is _Phase.IDENTITY:
            return self._process_identity(response)
        return self._process_method(response)

    def _process_identity(self, response: EapPacket) -> EapResult:
        identity, note = identity_of_response(response, self._ike_identity)
        if not identity_matches(identity, self._rule):
            return self._failure(response.identifier, f"{note}, which does not match the configured eap_identity")
        self._identity = identity
        self._identifier = self._next_identifier()
        self._phase = _Phase.METHOD
        request = self._method.initiate(self._identifier)
        return EapResult(CONTINUE, request.encode(), reason=f"{note}; initiating {self.method}")

    def _process_method(self, response: EapPacket) -> EapResult:
        next_identifier = self._next_identifier()
        step = self._method.process(response, next_identifier)
        if step.status == CONTINUE and step.request is not None:
            self._identifier = next_identifier
            return EapResult(CONTINUE, step.request.encode(), step.delay, step.reason)
        if step.status == SUCCESS and self._method.msk is not None:
            self._phase = _Phase.SUCCEEDED
            self._msk = self._method.msk
            self._identity = self._method.name or self._identity
            return EapResult(
                SUCCESS,
                EapPacket.success(response.identifier).encode(),
                reason=f"EAP method {self.method} succeeded, MSK established",
            )
        return self._failure(response.identifier, step.reason or f"EAP method {self.method} failed", step.delay)
