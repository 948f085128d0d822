"""Dynamic authorisation (RFC 5176), sans-IO: Disconnect-Request and CoA-Request.

:meth:`DaeServer.handle` takes one datagram from the DAE socket and the gateway's
sessions and says what to answer and which IKE SAs to delete.  In order:

1. the source must be an allowed client (``dae.clients``; any when empty, as in
   strongSwan), else the datagram is dropped;
2. a retransmitted request (same source, identifier and authenticator as one already
   answered) gets the same answer again, nothing else happens (RFC 5176 section 2.3;
   strongSwan keeps the last answer per client too);
3. the packet must decode and its Request Authenticator (and Message-Authenticator if
   present) verify with the DAE secret, else it is dropped (RFC 5176 section 3.1: a
   request that fails is silently discarded);
4. a Disconnect-Request names sessions by User-Name (the EAP identity, else the IKE
   identity), Acct-Session-Id and/or Framed-IP-Address / Framed-IPv6-Address; every
   identification attribute present must match.  Matches: Disconnect-ACK and the IKE
   SAs to delete.  None: Disconnect-NAK with Error-Cause 503 Session-Context-Not-Found;
   no identification attribute at all: NAK 402 Missing-Attribute; a NAS-Identifier that
   is not ours: NAK 403 NAS-Identification-Mismatch;
5. a CoA-Request is answered CoA-NAK with Error-Cause 406 Unsupported-Extension: ikegate
   changes no session attributes on the fly (RFC 5176 section 3.5: "lack of support for
   an extension such as Disconnect and/or CoA packets").

Nothing is logged with secrets; a malformed packet or a wrong secret only logs.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

from ikegate import log as logmod
from ikegate.ike.events import Endpoint
from ikegate.radius.client import normal_host
from ikegate.radius.packet import Attr, Code, ErrorCause, Packet, RadiusError, encode_response, verify_request

__all__ = ["DaeResult", "DaeServer", "DaeSession"]

log = logmod.get_logger("cfg")

#: answers kept for retransmitted requests
ANSWER_CACHE = 256


@dataclass(frozen=True)
class DaeSession:
    """What a Disconnect-Request may name an IKE SA by."""

    unique_id: int
    user_name: str | None
    session_id: str | None = None
    framed_ips: tuple[str, ...] = ()


@dataclass
class DaeResult:
    """The answer to send back to ``client`` (None: drop) and the IKE SAs to delete."""

    reply: bytes | None = field(default=None, repr=False)
    client: Endpoint | None = None
    code: int | None = None
    error_cause: int | None = None
    kill: list[int] = field(default_factory=list)


class DaeServer:
    """Checks and answers Disconnect/CoA requests (see the module doc)."""

    def __init__(self, secret: bytes | str, *, clients=(), nas_identifiers=()) -> None:
        if not secret:
            raise ValueError("DAE needs a shared secret")
        self.secret = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        self.clients = frozenset(normal_host(c) for c in clients)
        self.nas_identifiers = frozenset(nas_identifiers)
        self._answers: OrderedDict[tuple, bytes] = OrderedDict()
        self.stats = {"disconnect": 0, "coa": 0, "dropped": 0, "retransmits": 0}

    def handle(self, data: bytes, src: Endpoint, sessions) -> DaeResult:
        """One datagram from ``src``; ``sessions`` are the :class:`DaeSession` of the
        established IKE SAs."""
        host = normal_host(src.host)
        if self.clients and host not in self.clients:
            return self._drop(f"RADIUS DAE request from {src}, not an allowed client, ignored")
        if len(data) >= 20:
            cached = self._answers.get((host, src.port, data[1], bytes(data[4:20])))
            if cached is not None:
                self.stats["retransmits"] += 1
                log.info("received retransmit of RADIUS DAE request from %s, retransmitting the answer", src)
                return DaeResult(cached, src)
        try:
            request = verify_request(data, self.secret)
        except RadiusError as exc:
            return self._drop(f"ignoring invalid RADIUS DAE request from {src}: {exc}")
        if request.code == Code.DISCONNECT_REQUEST:
            self.stats["disconnect"] += 1
            result = self._disconnect(request, src, list(sessions))
        elif request.code == Code.COA_REQUEST:
            self.stats["coa"] += 1
            log.info("received RADIUS CoA-Request from %s: not supported, sending CoA-NAK", src)
            result = DaeResult(code=Code.COA_NAK, error_cause=ErrorCause.UNSUPPORTED_EXTENSION)
        else:
            return self._drop(f"ignoring unsupported RADIUS DAE {Code(request.code).name} message from {src}")
        answer = Packet(result.code)
        if result.error_cause is not None:
            answer.add(Attr.ERROR_CAUSE, int(result.error_cause))
        if request.get(Attr.MESSAGE_AUTHENTICATOR) is not None:
            answer.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
        result.reply = encode_response(answer, request, self.secret)
        result.client = src
        self._answers[(host, src.port, request.identifier, request.authenticator)] = result.reply
        while len(self._answers) > ANSWER_CACHE:
            self._answers.popitem(last=False)
        return result

    def _disconnect(self, request: Packet, src: Endpoint, sessions: list[DaeSession]) -> DaeResult:
        nas_id = request.get_str(Attr.NAS_IDENTIFIER)
        if nas_id is not None and self.nas_identifiers and nas_id not in self.nas_identifiers:
            log.info("RADIUS Disconnect-Request from %s for NAS '%s', not us: sending Disconnect-NAK", src, nas_id)
            return DaeResult(code=Code.DISCONNECT_NAK, error_cause=ErrorCause.NAS_IDENTIFICATION_MISMATCH)
        users = [v.decode("utf-8", "replace") for v in request.get_all(Attr.USER_NAME) if v]
        session_ids = [v.decode("utf-8", "replace") for v in request.get_all(Attr.ACCT_SESSION_ID) if v]
        ips = set()
        for attr in (Attr.FRAMED_IP_ADDRESS, Attr.FRAMED_IPV6_ADDRESS):
            for value in request.get_all(attr):
                if len(value) in (4, 16):
                    ips.add(str(ipaddress.ip_address(value)))
        if not (users or session_ids or ips):
            log.info("RADIUS Disconnect-Request from %s names no session: sending Disconnect-NAK", src)
            return DaeResult(code=Code.DISCONNECT_NAK, error_cause=ErrorCause.MISSING_ATTRIBUTE)
        matches = []
        for session in sessions:
            if users and session.user_name not in users:
                continue
            if session_ids and session.session_id not in session_ids:
                continue
            if ips and not ips.intersection(normal_host(ip) for ip in session.framed_ips):
                continue
            matches.append(session.unique_id)
        what = ", ".join(filter(None, [" ".join(users), " ".join(session_ids), " ".join(sorted(ips))]))
        if not matches:
            log.info("received RADIUS Disconnect-Request for %s from %s: no IKE_SA matches, sending "
                     "Disconnect-NAK", what, src)
            return DaeResult(code=Code.DISCONNECT_NAK, error_cause=ErrorCause.SESSION_CONTEXT_NOT_FOUND)
        log.info("received RADIUS Disconnect-Request for %s from %s: closing %d IKE_SA%s, sending Disconnect-ACK",
                 what, src, len(matches), "s" if len(matches) > 1 else "")
        return DaeResult(code=Code.DISCONNECT_ACK, kill=matches)

    def _drop(self, message: str) -> DaeResult:
        self.stats["dropped"] += 1
        log.info("%s", message)
        return DaeResult()


