"""One IKE SA, the sans-IO engine: fed datagrams and clock ticks, it emits datagrams and
events through its :class:`~ikegate.ike.gateway.Gateway`.

What lives here is the message machinery every exchange shares (RFC 7296 2.1-2.3):
message IDs with a window of one, the response cache for retransmitted requests, SK
encryption and RFC 7383 fragmentation both ways, our own requests with strongSwan's
retransmission schedule, and the SA's life (half-open timeout, establishment, deletion).
The exchanges themselves are tasks in :mod:`ikegate.ike.tasks`, one file per feature.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from ikegate.crypto.errors import IntegrityError
from ikegate.crypto.sk import make_sk_ciphers
from ikegate.ike import informational
from ikegate.ike.child import ChildSa
from ikegate.ike.events import (
    ChildSaDown,
    ChildSaUp,
    ChildSaUpdated,
    Endpoint,
    IkeSaDown,
    IkeSaKeys,
    IkeSaRekeyed,
    IkeSaUp,
    Send,
)
from ikegate.ike.exchange import Abort, Drop, Exchange
from ikegate.ike.tasks import lifetimes
from ikegate.ike.tasks.child_create import ChildCreate
from ikegate.ike.tasks.ike_auth import IkeAuth
from ikegate.ike.tasks.ike_auth_lifetime import IkeAuthLifetime
from ikegate.ike.tasks.ike_cert import IkeCertPost, IkeCertPre
from ikegate.ike.tasks.ike_config import IkeConfig
from ikegate.ike.tasks.ike_init import IkeInit, IkeInitNotifies
from ikegate.ike.tasks.ike_mobike import IkeMobike
from ikegate.ike.tasks.ike_natd import IkeNatd
from ikegate.ike.tasks.ike_vendor import IkeVendor
from ikegate.ike.throttle import LimitedSaLogger
from ikegate.log import RAW, SaLogger, get_logger
from ikegate.radius.packet import TerminateCause
from ikegate.wire.codec import (
    DecodeError,
    EncodeError,
    Message,
    decode_payloads,
    decrypt_message,
    describe,
    encode_encrypted,
    encode_fragments,
    encode_message,
    encode_payloads,
    open_sealed,
)
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload, SkfPayload, UnknownPayload

CONNECTING, ESTABLISHED, REKEYED, DELETING, DEAD = "CONNECTING", "ESTABLISHED", "REKEYED", "DELETING", "DEAD"

# response payload order of strongSwan's message rules for IKE_AUTH/CREATE_CHILD_SA
_RANK = {
    PayloadType.IDr: 1,
    PayloadType.CERT: 2,
    PayloadType.AUTH: 3,
    PayloadType.EAP: 4,
    PayloadType.CP: 5,
    PayloadType.SA: 6,
    PayloadType.NONCE: 7,
    PayloadType.KE: 8,
    PayloadType.TSi: 9,
    PayloadType.TSr: 10,
    PayloadType.DELETE: 11,
    PayloadType.NOTIFY: 12,
}


def _rank(payload) -> int:
    if isinstance(payload, NotifyPayload) and payload.notify_type < 16384:
        return 0  # errors first
    return _RANK.get(payload.type, 13)


@dataclass
class _Pending:
    """Our outstanding request (window size 1)."""

    message_id: int
    datagrams: list
    on_response: Callable | None
    sent_at: float
    tries: int = 0
    next_at: float = 0.0
    retransmit: bool = True


@dataclass
class _Reassembly:
    message_id: int
    total: int
    first_inner: int = 0
    pieces: dict = None
    size: int = 0
    started: float = 0.0
    refused: bool = False  # over max_packet: later fragments of this message are ignored


REASSEMBLY_TIMEOUT = 30.0  # a fragmented message must be complete within this time

#: Acct-Terminate-Cause of the reasons an established IKE SA goes down (strongSwan's
#: eap_radius_accounting.c: User-Request unless the SA expired or the peer went silent)
_TERMINATE_CAUSES = {
    "peer not responding": TerminateCause.LOST_SERVICE,
    "IKE_SA lifetime expired": TerminateCause.SESSION_TIMEOUT,
    "gateway shutting down": TerminateCause.ADMIN_REBOOT,
}


class IkeSa:
    """One IKE SA.  ``original_initiator`` (RFC 7296 2.2, 2.18) is False for every SA a
    client set up and for SAs the client made by rekeying; it is True for an SA the
    gateway made by its own rekey: then SPIi is ours, our messages carry the I flag and
    the SK keys are the initiator's."""

    def __init__(self, gw, spi_i: bytes, spi_r: bytes, local: Endpoint, remote: Endpoint,
                 candidate_conns: list, now: float, *, original_initiator: bool = False) -> None:
        self.gw = gw
        self.rt = gw.rt
        self.unique_id = gw.next_ike_id()
        self.spi_i, self.spi_r = spi_i, spi_r
        self.original_initiator = original_initiator
        self.local, self.remote = local, remote
        self.state = CONNECTING
        self.created = self.now = self.last_in = self.last_out = now
        self.established_at: float | None = None
        self.candidate_conns = candidate_conns
        self.init_key: tuple | None = None  # (SPIi, host) in the gateway's IKE_SA_INIT index
        self.counted_ip: str | None = None  # where the gateway counts it (Gateway.sas_by_ip)
        self.timer_at: float | None = None  # our entry in the gateway's timer heap
        self.init_conn = None
        self.conn = None
        self.credentials = None
        self.local_id = None
        self.remote_id = None
        self.remote_id_payload = None
        self.eap_id: str | None = None
        self.peer_auth_method: str | None = None  # how the peer proved itself: "eap", "psk" or "pubkey"
        self.msk: bytes | None = None
        # eap-radius: the Access-Accept's attributes, the virtual IPs RADIUS assigned (not
        # leased from a local pool), the IKE_AUTH request waiting for RADIUS's answer and
        # the number of our last RADIUS request (older answers are stale)
        self.radius_attrs = None  # ikegate.eap.radius_relay.RadiusAttributes
        self.deferred: Exchange | None = None
        self.radius_request_no = 0
        self.radius_context: tuple | None = None  # the context of our request in flight
        # accounting: the session this SA belongs to (kept across IKE rekeys), and the
        # Acct-Terminate-Cause to report when it goes down if the reason does not say
        self.session_id = ""
        self.terminate_cause: int | None = None
        # keys
        self.proposal = None
        self.prf = None
        self.keys = None
        self.sk_in = None
        self.sk_out = None
        self.nonce_i = self.nonce_r = b""
        self.init_request = self.init_response = b""
        # what the peer announced and what we detected
        self.peer_frag = False
        self.peer_hash_algs: set[int] | None = None
        self.peer_redirect = False
        self.peer_natt = False
        self.nat_local = self.nat_remote = self.nat_faked = False
        self.peer_mobike = self.mobike = False
        self.peer_initial_contact = False
        self.peer_is_windows = False
        self.peer_certreqs: list[bytes] = []
        self.peer_certs: list[bytes] = []
        self.vips: list[str] = []
        self.vip_failed = False
        self.children: dict[int, ChildSa] = {}  # by our inbound SPI
        self.auth_done = False
        self.own_signature_exchange: int | None = None
        self._just_established = False
        self.tasks = [IkeVendor(self), IkeInit(self), IkeNatd(self), IkeCertPre(self), IkeInitNotifies(self),
                      IkeAuth(self),
                      IkeCertPost(self), IkeConfig(self), ChildCreate(self),
                      IkeAuthLifetime(self),  # before MOBIKE's notifies, as strongSwan encodes them
                      IkeMobike(self)]  # fmt: skip
        # message IDs: requests from the peer
        self.expected_mid = 0
        self.last_response: list[bytes] | None = None
        self.last_response_mid = -1
        self.held: tuple[float, list[bytes], Endpoint, Endpoint] | None = None
        self.closing = False  # a fatal answer is being held back: destroy once it is out
        self.reassembly: _Reassembly | None = None
        # our requests
        self.mid_out = 0
        self.pending: _Pending | None = None
        self.queue: deque = deque()
        self.delete_at: float | None = None
        self.down_reason = ""
        # lifetimes (tasks/lifetimes.py) and our IKE rekey in flight (tasks/ike_rekey_initiator.py)
        self.rekey_at: float | None = None
        self.reauth_at: float | None = None
        self.reauth_noted = False
        self.expire_at: float | None = None
        self.ike_rekey = None
        self.child_rekeys: set = set()  # our CHILD rekeys in flight (tasks/child_rekey_initiator.py)
        # a per-format token bucket: whoever knows its SPIs must not flood the log through it
        self.log = LimitedSaLogger(get_logger("ike"), self)
        self.log_cfg = SaLogger(get_logger("cfg"), self)

    # -- naming --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        conn = self.conn or self.init_conn
        return conn.name if conn is not None else "(unnamed)"

    @property
    def log_tag(self) -> str:
        return f"{self.name}|{self.unique_id}"

    @property
    def my_spi(self) -> bytes:
        """Our SPI: the gateway's table key."""
        return self.spi_i if self.original_initiator else self.spi_r

    @property
    def peer_spi(self) -> bytes:
        return self.spi_r if self.original_initiator else self.spi_i

    @property
    def udp_encap(self) -> bool:
        return self.nat_local or self.nat_remote or self.nat_faked

    @property
    def lease_identity(self) -> str:
        """Whose leases these are: the EAP identity, else the IKE identity."""
        return self.eap_id if self.eap_id else str(self.remote_id)

    def emit(self, item) -> None:
        self.gw.emit(item)

    # -- keys ------------------------------------------------------------------------------

    def install_ike_keys(self, proposal, prf, keys) -> None:
        """Take the selected ``proposal``, its PRF and the derived :class:`IkeKeys`, and
        build the SK ciphers of our side (initiator keys if we are the original
        initiator).  Only when the gateway was asked to export keys (``ikegate start
        --keylog``, ``Gateway.export_keys``) does an :class:`IkeSaKeys` event carry the
        SK_e/SK_a keys out, for the key log and nothing else."""
        self.proposal, self.prf, self.keys = proposal, prf, keys
        self.sk_in, self.sk_out = make_sk_ciphers(proposal, keys, initiator=self.original_initiator)
        if getattr(self.gw, "export_keys", False):
            self.emit(IkeSaKeys(self.unique_id, self.spi_i, self.spi_r, proposal,
                                keys.sk_ei, keys.sk_er, keys.sk_ai, keys.sk_ar))

    # -- receiving -----------------------------------------------------------------------

    def receive(self, raw: bytes, msg: Message, src: Endpoint, dst: Endpoint, now: float) -> None:
        self.now = now
        if self.state == DEAD or self.closing:
            return
        self._receive(raw, msg, src, dst)
        if self.state != DEAD:
            nxt = self.next_timer()
            if nxt is not None:
                self.gw.schedule(self, nxt)

    def _receive(self, raw: bytes, msg: Message, src: Endpoint, dst: Endpoint) -> None:
        if msg.response:
            self._receive_response(raw, msg, src, dst)
            return
        mid = msg.message_id
        if mid == self.last_response_mid and self.last_response is not None:
            self._retransmitted(msg, src, dst)
            return
        if self.deferred is not None and mid == self.deferred.message_id:
            # its answer waits for the RADIUS server: a retransmit is not relayed again
            self.log.info("received retransmit of request with ID %d, waiting for RADIUS, ignored", mid)
            return
        if mid != self.expected_mid:
            self.log.info("received message ID %d, expected %d, ignored", mid, self.expected_mid)
            return
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            if self.init_request:
                return
            payloads = msg.payloads
        else:
            if self.sk_in is None:
                self.log.info("%s request before IKE_SA_INIT completed, ignored", _xname(msg.exchange))
                return
            payloads = self._open(raw, msg)
            if payloads is None:
                return
        self.last_in = self.now
        self._follow_peer(src, dst, msg)
        self._handle_request(msg, payloads, raw, src, dst)

    def _retransmitted(self, msg: Message, src: Endpoint, dst: Endpoint) -> None:
        if self.held is not None:
            return  # the answer is being held back on purpose (EAP failure delay)
        sealed = msg.sealed
        if isinstance(sealed, SkfPayload) and sealed.fragment_number != 1:
            return  # answer a retransmitted fragmented request once, on its first fragment
        self.log.info("received retransmit of request with ID %d, retransmitting response", msg.message_id)
        for data in self.last_response:
            self.emit(Send(data, dst, src))

    def _open(self, raw: bytes, msg: Message) -> list | None:
        """Decrypt an SK message or collect an SKF fragment; None until complete or on failure."""
        sealed = msg.sealed
        try:
            if sealed is None:
                self.log.info("unencrypted %s request, ignored", _xname(msg.exchange))
                return None
            if isinstance(sealed, SkfPayload) and sealed.total_fragments != 1:
                return self._reassemble(raw, msg, sealed)
            return decrypt_message(raw, msg, self.sk_in)
        except IntegrityError:
            self.log.info("integrity check of %s request %d failed, ignored", _xname(msg.exchange), msg.message_id)
        except DecodeError as exc:
            kind = "response" if msg.response else "request"
            self.log.info("%s %s %d has a malformed inner payload: %s", _xname(msg.exchange), kind, msg.message_id, exc)
            if not msg.response:
                # as strongSwan (task_manager_v2.c send_invalid_syntax): answer, then give up
                # on a peer that sends garbage under valid integrity protection
                self._answer_error(msg, NotifyType.INVALID_SYNTAX)
                self.destroy("invalid syntax")
        return None

    def _reassemble(self, raw: bytes, msg: Message, frag: SkfPayload) -> list | None:
        settings = self.rt.settings
        if not 1 <= frag.fragment_number <= frag.total_fragments or frag.total_fragments > settings.max_fragments:
            self.log.info("fragment %d/%d out of bounds, ignored", frag.fragment_number, frag.total_fragments)
            return None
        r = self.reassembly
        if r is not None and self.now - r.started > REASSEMBLY_TIMEOUT:
            self.log.info("fragments of message %d not complete after %ds, dropped", r.message_id,
                          int(REASSEMBLY_TIMEOUT))
            r = None
        if r is None or r.message_id != msg.message_id or r.total != frag.total_fragments:
            r = self.reassembly = _Reassembly(msg.message_id, frag.total_fragments, pieces={}, started=self.now)
        if r.refused or frag.fragment_number in r.pieces:
            return None
        piece = open_sealed(raw, self.sk_in)  # IntegrityError handled by the caller
        if r.size + len(piece) > settings.max_packet:
            self.log.info("reassembled message would exceed %d bytes, dropping its fragments", settings.max_packet)
            r.refused, r.pieces, r.size = True, {}, 0
            return None
        r.pieces[frag.fragment_number] = piece
        r.size += len(piece)
        if frag.fragment_number == 1:
            r.first_inner = frag.first_inner
        self.log.log(RAW, "received fragment #%d of %d", frag.fragment_number, frag.total_fragments)
        if len(r.pieces) < r.total:
            return None
        self.reassembly = None
        data = b"".join(r.pieces[i] for i in range(1, r.total + 1))
        self.log.info("reassembled fragmented IKE message (%d bytes)", len(data))
        return decode_payloads(r.first_inner, data)

    def _follow_peer(self, src: Endpoint, dst: Endpoint, msg: Message) -> None:
        """Track the peer's endpoint: the port switch to 4500 always, an address change only
        when the peer is behind a NAT (RFC 7296 2.23; MOBIKE peers use UPDATE_SA_ADDRESSES)."""
        if src == self.remote and dst == self.local:
            return
        same_hosts = src.host == self.remote.host and dst.host == self.local.host
        if msg.exchange == ExchangeType.IKE_SA_INIT or same_hosts or self.nat_remote:
            self.update_endpoints(dst, src)

    def update_endpoints(self, local: Endpoint, remote: Endpoint) -> None:
        if local == self.local and remote == self.remote:
            return
        self.log.log(15, "peer endpoint %s -> %s, local %s -> %s", self.remote, remote, self.local, local)
        self.local, self.remote = local, remote
        for child in self.children.values():
            child.info.local, child.info.remote = local, remote
            child.info.udp_encap = self.udp_encap
            if self.state == ESTABLISHED:
                self.emit(ChildSaUpdated(child.info))

    # -- answering requests ------------------------------------------------------------------

    def _handle_request(self, msg: Message, payloads: list, raw: bytes, src: Endpoint, dst: Endpoint) -> None:
        ex = Exchange(msg.exchange, msg.message_id, payloads, raw, src, dst, self.now)
        self.log.info("parsed %s", describe(msg, payloads))
        try:
            critical = [p.payload_type for p in payloads if isinstance(p, UnknownPayload) and p.critical]
            if critical:
                raise Abort(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([critical[0] & 0xFF]),
                            fatal=msg.exchange in (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH))
            if msg.exchange in (ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH):
                if self.state != CONNECTING or (msg.exchange == ExchangeType.IKE_AUTH and self.auth_done):
                    raise Drop(f"{_xname(msg.exchange)} request on an established IKE SA")
                if msg.exchange == ExchangeType.IKE_SA_INIT:
                    self.init_request = raw
                for task in self.tasks:
                    task.process_r(ex)
                if ex.waiting:  # a task asked RADIUS: the answer is built when it answers
                    self.deferred = ex
                    return
                self._build_tasks(ex)
            elif msg.exchange == ExchangeType.INFORMATIONAL:
                informational.handle(self, ex)
            elif msg.exchange == ExchangeType.CREATE_CHILD_SA:
                if self.state in (REKEYED, DELETING):
                    raise Abort(NotifyType.TEMPORARY_FAILURE, fatal=False,
                                reason="IKE_SA is rekeyed or being deleted")
                if self.state != ESTABLISHED:
                    raise Drop("CREATE_CHILD_SA before the IKE SA is established")
                informational.create_child_sa(self, ex)
            else:
                raise Drop(f"unsupported exchange {msg.exchange}")
        except Drop as why:
            self.log.info("ignoring request: %s", why)
            return
        except Abort as abort:
            self._aborted(ex, abort)
        self._finish(ex)

    def radius_answer(self, number: int, answer) -> None:
        """The RADIUS answer (``RadiusAnswer``, or ``RadiusTimeout`` when no server
        answered) to our request ``number``: the auth task takes it and the IKE_AUTH
        request that waited for it is answered now."""
        ex = self.deferred
        if ex is None or number != self.radius_request_no or self.state == DEAD or self.closing:
            self.log.info("RADIUS answer for a request no longer waited for, ignored")
            return
        self.deferred = None
        ex.waiting = False
        try:
            for task in self.tasks:
                if isinstance(task, IkeAuth):
                    task.radius_answer(ex, answer)
            self._build_tasks(ex)
        except Drop as why:  # pragma: no cover - no task drops after processing
            self.log.info("ignoring request: %s", why)
            return
        except Abort as abort:
            self._aborted(ex, abort)
        self._finish(ex)
        if self.state != DEAD:
            nxt = self.next_timer()
            if nxt is not None:
                self.gw.schedule(self, nxt)

    def _aborted(self, ex: Exchange, abort: Abort) -> None:
        """The response becomes the error notify of ``abort`` (and its extra payloads)."""
        self.log.info("sending %s: %s", NotifyType(abort.notify).name, abort.reason)
        ex.waiting = False
        self.deferred = None
        ex.response = [NotifyPayload(notify_type=abort.notify, data=abort.data)] + abort.extra
        if abort.fatal:
            ex.fatal_after_send = True
            self.down_reason = abort.reason

    def _finish(self, ex: Exchange) -> None:
        """Send the response to a request and act on what it did (an SA to delete after
        it, an SA just established)."""
        self._respond(ex)
        if ex.fatal_after_send:
            if self.held is not None:
                self.closing = True  # the EAP failure back-off: the answer goes out first
                return
            self.destroy(self.down_reason or "closed")
            return
        if self._just_established:
            self._just_established = False
            attrs = self.radius_attrs
            self.emit(IkeSaUp(self.unique_id, self.name, self.local, self.remote, str(self.local_id),
                              str(self.remote_id), self.eap_id, tuple(self.vips), session_id=self.session_id,
                              radius_class=self.radius_class, radius=attrs is not None,
                              interim_interval=attrs.interim_interval if attrs is not None else None))
            for child in self.children.values():
                self.emit(ChildSaUp(child.info))

    @property
    def radius_class(self) -> tuple:
        """The Class attributes of the Access-Accept (for accounting), empty without RADIUS."""
        return self.radius_attrs.classes if self.radius_attrs is not None else ()

    def _build_tasks(self, ex: Exchange) -> None:
        for task in list(self.tasks):
            if task.build_r(ex):
                self.tasks.remove(task)

    def _respond(self, ex: Exchange) -> None:
        header = Message(self.spi_i, self.spi_r, ex.exchange, ex.message_id, initiator=self.original_initiator,
                         response=True)
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            ex.response.sort(key=_rank)
        try:
            if ex.exchange == ExchangeType.IKE_SA_INIT:
                header.payloads = ex.response
                datagrams = [encode_message(header)]
                self.init_response = datagrams[0]
            else:
                datagrams = self._seal(header, ex.response, ex.dst, ex.src)
        except (EncodeError, ValueError) as exc:
            self.log.info("generating %s response failed: %s", _xname(ex.exchange), exc)
            ex.fatal_after_send = True
            self.down_reason = "response could not be encoded"
            return
        self.log.info("generating %s", describe(header, ex.response))
        self.last_response = datagrams
        self.last_response_mid = ex.message_id
        self.expected_mid = ex.message_id + 1
        if ex.delay > 0:
            self.held = (self.now + ex.delay, datagrams, ex.dst, ex.src)
            self.gw.schedule(self, self.now + ex.delay)
            return
        self._send_all(datagrams, ex.dst, ex.src)

    def _send_all(self, datagrams: list[bytes], src: Endpoint, dst: Endpoint) -> None:
        self.last_out = self.now
        if len(datagrams) > 1:
            self.log.info("sending %d fragments to %s", len(datagrams), dst)
        for data in datagrams:
            self.emit(Send(data, src, dst))

    def _seal(self, header: Message, inner: list, local: Endpoint, remote: Endpoint) -> list[bytes]:
        """Encrypt, fragmenting when the peer supports it and the datagram would be too big."""
        settings = self.rt.settings
        frag_mode = getattr(self.conn or self.init_conn, "fragmentation", "yes")
        if self.peer_frag and frag_mode in ("yes", "force"):
            _, plain = encode_payloads(inner)
            ip_overhead = (20 if ":" not in remote.host else 40) + 8 + (4 if local.port != 500 else 0)
            size = 28 + 4 + self.sk_out.overhead(len(plain)) + ip_overhead
            if size > settings.fragment_size:
                return encode_fragments(header, inner, self.sk_out, settings.fragment_size, ip_overhead=ip_overhead)
        return [encode_encrypted(header, inner, self.sk_out)]

    def _answer_error(self, msg: Message, notify: int) -> None:
        ex = Exchange(msg.exchange, msg.message_id, [], b"", self.remote, self.local, self.now)
        ex.add_notify(notify)
        self._respond(ex)

    def own_signature_sent_in(self, ex: Exchange) -> bool:
        return self.own_signature_exchange == ex.message_id

    # -- the conn and the moment of establishment --------------------------------------------

    def auth_candidates(self) -> list:
        """Conns that may serve this SA: those whose ike= accepts the chosen proposal."""
        result = []
        for conn in self.candidate_conns:
            if conn is self.init_conn or any(p.select(self.proposal) or self.proposal.select(p) for p in conn.ike):
                result.append(conn)
        return result

    def set_conn(self, conn, local_id) -> None:
        self.conn = conn
        self.local_id = local_id
        self.credentials = self.rt.credentials_for(conn)

    def authenticated(self, ex: Exchange) -> None:
        """Called by the auth task once both sides are authenticated."""
        self.auth_done = True
        self.gw.check_uniqueness(self)  # may raise Abort (uniqueids=keep)
        self.state = ESTABLISHED
        self.established_at = self.now
        if not self.session_id:
            self.session_id = self.gw.session_id(self)
        self.gw.half_open_done(self)
        self._just_established = True
        eap = f" (EAP identity '{self.eap_id}')" if self.eap_id else ""
        self.log.info(
            "IKE_SA %s[%d] established between %s[%s]...%s[%s]%s",
            self.name, self.unique_id, self.local.host, self.local_id, self.remote.host, self.remote_id, eap,
        )
        lifetimes.ike_established(self)
        self._apply_session_timeout()

    def _apply_session_timeout(self) -> None:
        """RADIUS Session-Timeout: as strongSwan's ``set_auth_lifetime``, the
        reauthentication time (announced with AUTH_LIFETIME) becomes the timeout minus
        ``over_time`` if that is earlier, and the IKE SA is deleted at the timeout."""
        timeout = self.radius_attrs.session_timeout if self.radius_attrs is not None else None
        if not timeout:
            return
        hard = self.now + timeout
        soft = max(self.now, hard - self.conn.ike_lifetimes.over_time)
        if self.reauth_at is None or self.reauth_at > soft:
            self.reauth_at = soft
        if self.expire_at is None or self.expire_at > hard:
            self.expire_at = hard
        self.log.info("RADIUS Session-Timeout of %ds: reauthentication in %ds, deleting the IKE_SA in %ds",
                      timeout, int(self.reauth_at - self.now), timeout)

    # -- children --------------------------------------------------------------------------

    def add_child(self, child: ChildSa, rekey_of: ChildSa | None = None) -> None:
        if child.info is not None:
            child.info.session_id = self.session_id
            child.info.radius_class = self.radius_class
        self.children[child.spi_in] = child
        self.gw.register_child(self, child)
        lifetimes.child_installed(self, child)
        self.log.info(
            "CHILD_SA %s{%d} established with SPIs %08x_i %08x_o and TS %s === %s",
            self.name, child.unique_id, child.spi_in, child.spi_out,
            " ".join(map(str, child.local_ts)), " ".join(map(str, child.remote_ts)),
        )
        if self.state == ESTABLISHED and not self._just_established:
            self.emit(ChildSaUp(child.info, rekey_of=rekey_of.info if rekey_of is not None else None))

    def child_by_spi_out(self, spi_out: int) -> ChildSa | None:
        for child in self.children.values():
            if child.spi_out == spi_out:
                return child
        return None

    def remove_child(self, child: ChildSa, reason: str) -> None:
        if self.children.pop(child.spi_in, None) is None:
            return
        self.gw.unregister_child(child)
        self.log.info("CHILD_SA %s{%d} closed: %s", self.name, child.unique_id, reason)
        if child.info is not None and self.state in (ESTABLISHED, DELETING):
            self.emit(ChildSaDown(child.info, reason, replaced=child.superseded))

    # -- IKE rekeying ----------------------------------------------------------------------------

    _INHERITED = ("init_conn", "conn", "credentials", "local_id", "remote_id", "remote_id_payload", "eap_id",
                  "peer_auth_method", "session_id", "radius_attrs",
                  "peer_frag", "peer_hash_algs", "peer_redirect", "peer_natt", "nat_local", "nat_remote",
                  "nat_faked", "peer_mobike", "mobike", "peer_is_windows")

    def inherit_identity(self, new: "IkeSa") -> None:
        """Give an IKE SA made by rekeying this one our conn, identities and what the peer
        announced (not the leases nor the CHILD SAs: :meth:`hand_over` moves those)."""
        for name in self._INHERITED:
            setattr(new, name, getattr(self, name))
        new.tasks = []
        new.auth_done = True

    def hand_over(self, new: "IkeSa", *, grace: float | None) -> None:
        """Move identities, leases and CHILD SAs to the IKE SA that replaces this one.
        With ``grace`` this SA waits that long for the peer's Delete (the peer rekeyed);
        without, the caller deletes it (we rekeyed)."""
        self.inherit_identity(new)
        new.vips = self.vips
        new.state = ESTABLISHED
        new.created = new.established_at = new.last_in = self.now
        new.delete_at = None
        new.children = self.children
        for child in new.children.values():
            child.info.ike_unique_id = new.unique_id
            self.gw.register_child(new, child)
        self.children, self.vips = {}, []
        self.state = REKEYED
        if grace is not None:
            self.delete_at = self.now + grace
            self.gw.schedule(self, self.delete_at)
        self.log.info("IKE_SA %s[%d] rekeyed to %s[%d] (%s_i %s_r)", self.name, self.unique_id, new.name,
                      new.unique_id, new.spi_i.hex(), new.spi_r.hex())
        self.emit(IkeSaRekeyed(self.unique_id, new.unique_id))
        lifetimes.ike_established(new, inherit_from=self)
        self.rekey_at = self.reauth_at = self.expire_at = None
        nxt = new.next_timer()
        if nxt is not None:
            self.gw.schedule(new, nxt)

    def mark_redundant(self, timeout: float | None) -> None:
        """This SA, made by a rekey collision, will not be used: it waits (at most
        ``timeout``) for a Delete, carrying no CHILD SAs and no leases."""
        self.state = REKEYED
        self.auth_done = True
        self.tasks = []
        self.delete_at = self.now + timeout if timeout is not None else None
        if self.delete_at is not None:
            self.gw.schedule(self, self.delete_at)

    # -- our own requests -----------------------------------------------------------------------

    def send_request(self, exchange: int, payloads: list, on_response: Callable | None = None,
                     *, retransmit: bool = True) -> None:
        if self.pending is not None:
            self.queue.append((exchange, payloads, on_response, retransmit))
            return
        header = Message(self.spi_i, self.spi_r, exchange, self.mid_out, initiator=self.original_initiator,
                         response=False)
        datagrams = self._seal(header, payloads, self.local, self.remote)
        self.log.info("generating %s", describe(header, payloads))
        delays = self.rt.settings.retransmit_delays()
        self.pending = _Pending(self.mid_out, datagrams, on_response, self.now, 0,
                                self.now + delays[0], retransmit)
        self.mid_out += 1
        self._send_all(datagrams, self.local, self.remote)
        self.gw.schedule(self, self.pending.next_at)

    def _receive_response(self, raw: bytes, msg: Message, src: Endpoint, dst: Endpoint) -> None:
        pending = self.pending
        if pending is None or msg.message_id != pending.message_id:
            self.log.info("received unexpected response %d, ignored", msg.message_id)
            return
        payloads = self._open(raw, msg) if msg.sealed is not None else None
        if payloads is None:
            return
        self.last_in = self.now
        self.log.info("parsed %s", describe(msg, payloads))
        self.pending = None
        if pending.on_response is not None:
            pending.on_response(payloads)
        if self.queue and self.state != DEAD:
            exchange, payloads, cb, retransmit = self.queue.popleft()
            self.send_request(exchange, payloads, cb, retransmit=retransmit)

    # -- timers ------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        times = []
        if self.state == CONNECTING:
            times.append(self.created + self.rt.settings.half_open_timeout)
        if self.held is not None:
            times.append(self.held[0])
        if self.pending is not None:
            times.append(self.pending.next_at)
        if self.delete_at is not None:
            times.append(self.delete_at)
        if self.state == ESTABLISHED:
            dpd = self._dpd_due()
            if dpd is not None and self.pending is None:
                times.append(dpd)
            if self.nat_local:
                times.append(self.last_out + self.rt.settings.keep_alive)
        if self.state in (ESTABLISHED, REKEYED):
            times += lifetimes.deadlines(self)
        return min(times) if times else None

    # -- liveness -----------------------------------------------------------------------------

    @property
    def dpd_delay(self) -> int:
        return getattr(self.conn, "dpd_interval", 0) if self.conn is not None else 0

    def last_activity(self) -> float:
        """The last packet received on this IKE SA or any of its CHILD SAs."""
        last = self.last_in
        for child in self.children.values():
            esp = self.gw.last_esp_in(child.spi_in)
            if esp is not None and esp > last:
                last = esp
        return last

    def _dpd_due(self) -> float | None:
        if not self.dpd_delay:
            return None
        return self.last_activity() + self.dpd_delay

    def _liveness(self, now: float) -> None:
        """DPD (an empty INFORMATIONAL after ``dpddelay`` of silence) and NAT keepalives."""
        if self.state != ESTABLISHED:
            return
        due = self._dpd_due()
        if due is not None and due <= now and self.pending is None:
            self.log.info("sending DPD request")
            self.send_request(ExchangeType.INFORMATIONAL, [])
        if self.nat_local and now - self.last_out >= self.rt.settings.keep_alive:
            self.last_out = now
            self.emit(Send(b"\xff", self.local, self.remote, marker=False))

    def tick(self, now: float) -> None:
        self.now = now
        if self.state == DEAD:
            return
        if self.held is not None and self.held[0] <= now:
            _, datagrams, src, dst = self.held
            self.held = None
            self._send_all(datagrams, src, dst)
            if self.closing:
                self.destroy(self.down_reason or "closed")
                return
        if self.state == CONNECTING and now >= self.created + self.rt.settings.half_open_timeout:
            self.log.info("IKE_SA %s[%d] not established after %ds, deleting", self.name, self.unique_id,
                          int(self.rt.settings.half_open_timeout))
            self.destroy("half-open timeout")
            return
        if self.delete_at is not None and now >= self.delete_at:
            self.delete_at = None
            self.initiate_delete("replaced by a newer IKE SA")
            return
        lifetimes.run_due(self, now)
        if self.state == DEAD:
            return
        self._liveness(now)
        pending = self.pending
        if pending is not None and pending.next_at <= now:
            delays = self.rt.settings.retransmit_delays()
            if not pending.retransmit or pending.tries >= len(delays) - 1:
                self.log.info("giving up after %d retransmits", pending.tries)
                self.pending = None
                self.destroy("peer not responding")
                return
            pending.tries += 1
            pending.next_at = now + delays[pending.tries]
            self.log.info("retransmit %d of request with message ID %d", pending.tries, pending.message_id)
            self._send_all(pending.datagrams, self.local, self.remote)
        nxt = self.next_timer()
        if nxt is not None:
            self.gw.schedule(self, nxt)

    # -- ending ----------------------------------------------------------------------------------

    def initiate_delete(self, reason: str) -> None:
        """Tell the peer (INFORMATIONAL with Delete) and tear down at once, as strongSwan does."""
        from ikegate.wire.constants import ProtocolId
        from ikegate.wire.payloads import DeletePayload

        if self.state == ESTABLISHED and self.sk_out is not None:
            self.state = DELETING
            self.pending = None
            self.queue.clear()
            self.log.info("deleting IKE_SA %s[%d]: %s", self.name, self.unique_id, reason)
            self.send_request(ExchangeType.INFORMATIONAL, [DeletePayload(protocol=ProtocolId.IKE)], retransmit=False)
        self.destroy(reason)

    def destroy(self, reason: str) -> None:
        if self.state == DEAD:
            return
        was_up = self.state in (ESTABLISHED, DELETING)
        if was_up:
            self.state = DELETING
        for child in list(self.children.values()):
            self.remove_child(child, reason)
        framed = self.radius_attrs.framed_ips if self.radius_attrs is not None else ()
        for address in self.vips:
            if address not in framed:  # RADIUS's addresses are not ours to release
                self.rt.pools.release(address, self.lease_identity)
        if self.vips:
            self.log.info("lease %s of '%s' went offline", ", ".join(self.vips), self.lease_identity)
        self.state = DEAD
        self.pending = None
        self.held = None
        self.deferred = None
        self.gw.radius_cancel(self)
        self._release_reserved()
        if was_up:
            self.log.info("IKE_SA %s[%d] state change: ESTABLISHED => DESTROYING (%s)", self.name, self.unique_id, reason)
            cause = self.terminate_cause or _TERMINATE_CAUSES.get(reason, TerminateCause.USER_REQUEST)
            self.emit(IkeSaDown(self.unique_id, self.name, reason, terminate_cause=int(cause),
                                session_id=self.session_id))
        self.gw.remove(self)

    def _release_reserved(self) -> None:
        """SPIs reserved by our rekeys still in flight go back to the gateway."""
        if self.ike_rekey is not None:
            self.gw.release_spi(self.ike_rekey.spi)
            self.ike_rekey = None
        for task in self.child_rekeys:
            self.gw.release_child_spi(task.spi_in)
        self.child_rekeys.clear()

    # -- status --------------------------------------------------------------------------------

    def describe(self, now: float) -> dict:
        return {
            "id": self.unique_id,
            "conn": self.name,
            "state": self.state,
            "local": {"host": self.local.host, "port": self.local.port, "id": str(self.local_id) if self.local_id else None},
            "remote": {
                "host": self.remote.host,
                "port": self.remote.port,
                "id": str(self.remote_id) if self.remote_id else None,
                "eap_id": self.eap_id,
            },
            "spi_i": self.spi_i.hex(),
            "spi_r": self.spi_r.hex(),
            "proposal": str(self.proposal) if self.proposal else None,
            "nat": {"local": self.nat_local, "remote": self.nat_remote, "faked": self.nat_faked},
            "mobike": self.mobike,
            "virtual_ips": list(self.vips),
            "age": round(now - self.created, 1),
            "established_for": round(now - self.established_at, 1) if self.established_at is not None else None,
            "rekey_in": _until(self.rekey_at, now),
            "reauth_in": _until(self.reauth_at, now),
            "expires_in": _until(self.expire_at, now),
            "children": [c.describe(now) for c in self.children.values()],
        }


def _until(when: float | None, now: float) -> float | None:
    return round(when - now, 1) if when is not None else None


def _xname(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return f"EXCHANGE_{exchange}"
