"""The sans-IO gateway: every IKE SA, the tables that find them, and the defences in
front of them.

``receive(data, src, dst, now)`` takes one IKE datagram (non-ESP marker already
stripped) and ``tick(now)`` the clock; both return what to do: :class:`Send` datagrams
and SA events.  Tables: established and half-open SAs by our SPI (SPIr of the SAs
clients set up, SPIi of those we made by rekeying: a message's I flag says which of
its SPIs is ours), half-open SAs by the
initiator's SPI and address for the SA's life (to recognise a retransmitted or replayed IKE_SA_INIT).  In front of
them: COOKIEs (RFC 7296 2.6) once half-open SAs pass ``charon.cookie_threshold`` in
total or ``cookie_threshold_ip`` from one address, and a hard per-address block
(``block_threshold``), so a flood costs a hash per datagram, not a key exchange (while
COOKIEs are required, a request is answered from its header, first payload and Nonce,
before the rest is decoded, as strongSwan's receiver checks cookies before parsing); and
(:mod:`ikegate.ike.throttle`) sources with repeated failed logins held off, and each
IKE SA's log lines limited.

``rightauth=eap-radius``: the gateway owns one sans-IO
:class:`~ikegate.radius.client.RadiusClient` for authentication (``radius``, None when no
server is configured).  An IKE SA that relays EAP asks through :meth:`radius_request`;
``receive``/``tick`` then also return :class:`~ikegate.radius.client.RadiusSend`
datagrams for the daemon to send, whose answers come back through
:meth:`radius_received`; the IKE_AUTH request waits meanwhile (other SAs do not) and is
answered when RADIUS answers or every server timed out.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import socket
import struct
import time
from collections import Counter

from ikegate.eap.radius_relay import RelayOptions
from ikegate.ike.events import Endpoint, Send
from ikegate.ike.sa import CONNECTING, DEAD, ESTABLISHED, IkeSa
from ikegate.ike.throttle import AuthThrottle, LogBucket
from ikegate.log import get_logger
from ikegate.radius.client import RadiusSend, RadiusTimeout
from ikegate.radius.packet import TerminateCause
from ikegate.wire.codec import DecodeError, Message, decode_header, decode_message, describe, encode_message
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload

log = get_logger("net")
mgr = get_logger("mgr")
ZERO_SPI = bytes(8)
COOKIE_SECRET_LIFETIME = 120.0
REPLACE_DELAY = 10.0  # strongSwan delays deleting a duplicate that may be a reauth
DROP_LOG_BURST, DROP_LOG_INTERVAL = 20, 1.0  # a flood of drops: 20 log lines, then one a second


class Gateway:
    def __init__(self, runtime, *, now: float = 0.0, radius=None, radius_options=None,
                 session_prefix: int | None = None) -> None:
        self.rt = runtime
        self.radius = radius  # ikegate.radius.client.RadiusClient for eap-radius, or None
        self.radius_options = radius_options or RelayOptions()  # eap_start, id_prefix, station ids
        self._old_radius = None  # the client a reload replaced, until its requests are over
        # Acct-Session-Id prefix: the wall-clock start time, as strongSwan's accounting
        self.session_prefix = int(time.time()) & 0xFFFFFFFF if session_prefix is None else session_prefix
        self.sas: dict[bytes, IkeSa] = {}  # by our SPI (IkeSa.my_spi)
        self.reserved_spis: set[bytes] = set()  # ours in IKE rekeys still in flight
        self.init_index: dict[tuple, IkeSa] = {}  # (SPIi, host) -> SA, for the SA's life
        self.half_open: set[IkeSa] = set()
        self.half_open_by_ip: Counter = Counter()
        self.children_by_spi: dict[int, object] = {}
        self.sa_of_child: dict[int, IkeSa] = {}
        # the data plane's view of inbound ESP: spi_in -> monotonic time of the last packet
        self.esp_last_in = None
        self._out: list = []
        self._timers: list = []
        self._timer_seq = 0
        self._ike_ids = 0
        self._child_ids = 0
        self._reqids = 0
        self._cookie_version = 0
        self._cookie_secrets = {0: runtime.random(32)}
        self._cookie_rotated = now
        self.stats: Counter = Counter()
        self.sas_by_ip: Counter = Counter()  # IKE SAs (half-open included) by the address they came from
        self._now = now
        self._drop_log: dict[str, LogBucket] = {}  # kind -> its log bucket
        self.auth_throttle = AuthThrottle(runtime.settings, self.stats)  # failed logins per source

    # -- plumbing -------------------------------------------------------------------------

    def emit(self, item) -> None:
        self._out.append(item)

    def _flush(self) -> list:
        out, self._out = self._out, []
        return out

    def schedule(self, sa: IkeSa, when: float) -> None:
        """Make sure ``sa.tick`` runs at ``when`` (one heap entry per SA and deadline: an
        entry due earlier already makes the SA recompute its next deadline)."""
        if sa.timer_at is not None and sa.timer_at <= when:
            return
        sa.timer_at = when
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, sa))

    def next_timer(self) -> float | None:
        while self._timers and self._timers[0][2].state == DEAD:
            heapq.heappop(self._timers)
        times = [self._timers[0][0]] if self._timers else []
        times += [t for t in (c.next_timer() for c in self._radius_clients()) if t is not None]
        return min(times) if times else None

    def session_id(self, sa: IkeSa) -> str:
        """The Acct-Session-Id of a newly established IKE SA (strongSwan: ``<prefix>-<unique
        id>``); IKE SAs made by rekeying inherit their predecessor's."""
        return f"{self.session_prefix}-{sa.unique_id}"

    # -- RADIUS (eap-radius) ----------------------------------------------------------------

    def set_radius(self, client, options: RelayOptions | None = None) -> None:
        """A reloaded configuration's RADIUS client (None: no server) and relay options.
        Requests in flight on the old client are still answered through it."""
        old, self.radius = self.radius, client
        self.radius_options = options or RelayOptions()
        if old is not None and old is not client:
            self._old_radius = old

    def _radius_clients(self) -> list:
        return [c for c in (self.radius, self._old_radius) if c is not None]

    def radius_request(self, sa: IkeSa, packet) -> bool:
        """Send an Access-Request for ``sa`` (the datagram goes out with the outputs of
        the current ``receive``/``tick``); its answer reaches :meth:`IkeSa.radius_answer`
        with the request's number (``sa.radius_request_no``).  False if it could not be
        sent at all (no client, or no server it could be encoded for)."""
        if self.radius is None:
            return False
        sa.radius_request_no += 1
        sa.radius_context = (sa, sa.radius_request_no)
        sent = True
        for item in self.radius.request(packet, self._now, kind="auth", context=sa.radius_context):
            if isinstance(item, RadiusTimeout):
                sent = False
            else:
                self.emit(item)
        return sent

    def radius_cancel(self, sa: IkeSa) -> None:
        """``sa`` no longer waits for its RADIUS request (it is going away)."""
        context = getattr(sa, "radius_context", None)
        if context is not None:
            for client in self._radius_clients():
                client.cancel(context)
            sa.radius_context = None

    def radius_received(self, data: bytes, src: Endpoint, now: float) -> list:
        """A datagram from a RADIUS server (to our authentication socket)."""
        self._now = now
        for client in self._radius_clients():
            for item in client.receive(data, src, now):
                if isinstance(item, RadiusSend):
                    self.emit(item)  # a request that waited for a free identifier
                else:
                    self._radius_answer(item, now)
        self._drop_old_radius()
        return self._flush()

    def _drop_old_radius(self) -> None:
        if self._old_radius is not None and not self._old_radius.pending():
            self._old_radius = None

    def _radius_answer(self, answer, now: float) -> None:
        context = getattr(answer, "context", None)
        if not (isinstance(context, tuple) and len(context) == 2 and isinstance(context[0], IkeSa)):
            return
        sa, number = context
        if sa.radius_context is context:
            sa.radius_context = None
        sa.now = now
        sa.radius_answer(number, answer)

    def _radius_tick(self, now: float) -> None:
        for client in self._radius_clients():
            for item in client.tick(now):
                if isinstance(item, RadiusSend):
                    self.emit(item)
                else:
                    self._radius_answer(item, now)
        self._drop_old_radius()

    def next_ike_id(self) -> int:
        self._ike_ids += 1
        return self._ike_ids

    def next_child_id(self) -> int:
        self._child_ids += 1
        return self._child_ids

    def next_reqid(self) -> int:
        self._reqids += 1
        return self._reqids

    def allocate_child_spi(self) -> int:
        while True:
            spi = int.from_bytes(self.rt.random(4), "big")
            if spi >= 0x100 and spi not in self.children_by_spi:
                self.children_by_spi[spi] = None  # reserved until registered
                return spi

    def release_child_spi(self, spi: int) -> None:
        """Give back an SPI from :meth:`allocate_child_spi` that no CHILD SA uses."""
        if spi in self.children_by_spi and self.children_by_spi[spi] is None:
            del self.children_by_spi[spi]

    def register_child(self, sa: IkeSa, child) -> None:
        self.children_by_spi[child.spi_in] = child
        self.sa_of_child[child.spi_in] = sa

    def unregister_child(self, child) -> None:
        self.children_by_spi.pop(child.spi_in, None)
        self.sa_of_child.pop(child.spi_in, None)

    def last_esp_in(self, spi_in: int) -> float | None:
        """When the data plane last accepted an inbound packet of this SA (for DPD)."""
        return self.esp_last_in(spi_in) if self.esp_last_in is not None else None

    def esp_peer_moved(self, spi_in: int, src: Endpoint, now: float) -> list:
        """Authenticated ESP-in-UDP of this SA came from a new address/port: a NATed peer's
        mapping changed (what the kernel reports as XFRM_MSG_MAPPING); follow it."""
        sa = self.sa_of_child.get(spi_in)
        if sa is not None and sa.state == ESTABLISHED and sa.nat_remote and src != sa.remote:
            sa.now = now
            sa.log.info("NAT mapping of the peer changed: %s -> %s (seen on ESP)", sa.remote, src)
            sa.update_endpoints(sa.local, src)
        return self._flush()

    # -- input ----------------------------------------------------------------------------

    def receive(self, data: bytes, src: Endpoint, dst: Endpoint, now: float) -> list:
        self._now = now
        if len(data) > self.rt.settings.max_packet:
            # strongSwan reads at most charon.max_packet bytes and discards longer datagrams
            self._drop(f"{len(data)} byte datagram from {src} exceeds max_packet {self.rt.settings.max_packet}")
            return self._flush()
        try:
            header = decode_header(data)
        except DecodeError as exc:
            self._drop(f"malformed IKE header from {src}: {exc}")
            return self._flush()
        if header.major_version != 2:
            if header.exchange == ExchangeType.IKE_SA_INIT and not header.response:
                self._reply_plain(header.spi_i, header.spi_r, header.exchange, header.message_id,
                                  NotifyType.INVALID_MAJOR_VERSION, b"", src, dst)
            self._drop(f"IKE version {header.major_version} from {src}")
            return self._flush()
        vetted = None  # what _challenge already found out about a new IKE_SA_INIT
        if (header.exchange == ExchangeType.IKE_SA_INIT and not header.response and header.spi_r == ZERO_SPI
                and (header.spi_i, src.host) not in self.init_index and self._cookie_required(src)):
            vetted = self._challenge(data, header, src, dst, now)
            if vetted == _ANSWERED:
                return self._flush()
        try:
            msg = decode_message(data)
        except DecodeError as exc:
            self._drop(f"malformed message from {src}: {exc}")
            if header.exchange == ExchangeType.IKE_SA_INIT and not header.response and header.spi_r == ZERO_SPI:
                self._reply_plain(header.spi_i, header.spi_r, header.exchange, header.message_id,
                                  NotifyType.INVALID_SYNTAX, b"", src, dst)
            return self._flush()
        if msg.exchange == ExchangeType.IKE_SA_INIT and not msg.response and msg.spi_r == ZERO_SPI:
            sa = self.init_index.get((msg.spi_i, src.host))
            if sa is not None:
                sa.receive(data, msg, src, dst, now)
            else:
                self._new_sa(data, msg, src, dst, now, admitted=vetted is not None, cookie_ok=vetted == _COOKIE_OK)
            return self._flush()
        # the I flag marks the original initiator's messages: then our SPI is SPIr
        ours, theirs = (msg.spi_r, msg.spi_i) if msg.initiator else (msg.spi_i, msg.spi_r)
        sa = self.sas.get(ours)
        if sa is None or sa.peer_spi != theirs or sa.original_initiator == msg.initiator:
            self._drop(f"{describe(msg)} from {src} for unknown IKE SA {msg.spi_i.hex()}_i {msg.spi_r.hex()}_r",
                       kind="unknown SA")
            return self._flush()
        sa.receive(data, msg, src, dst, now)
        return self._flush()

    def tick(self, now: float) -> list:
        self._now = now
        self._rotate_cookie_secret(now)
        self.auth_throttle.prune(now)
        self._radius_tick(now)
        seen = set()
        while self._timers and self._timers[0][0] <= now:
            when, _, sa = heapq.heappop(self._timers)
            if sa.timer_at == when:
                sa.timer_at = None
            if sa.state == DEAD or id(sa) in seen:
                continue
            seen.add(id(sa))
            nxt = sa.next_timer()
            if nxt is not None and nxt <= now:
                sa.tick(now)
            elif nxt is not None:
                self.schedule(sa, nxt)
        return self._flush()

    def _drop(self, why: str, kind: str | None = None) -> None:
        """Count and log a dropped datagram.  Drops of a ``kind`` that can flood (limits,
        blocks, unknown SAs) share a token bucket: a burst of DROP_LOG_BURST lines, then one
        per DROP_LOG_INTERVAL seconds, the next line saying how many went unlogged."""
        self.stats["dropped"] += 1
        if kind is None:
            log.info("%s, dropped", why)
            return
        bucket = self._drop_log.get(kind)
        if bucket is None:
            bucket = self._drop_log[kind] = LogBucket(DROP_LOG_BURST, DROP_LOG_INTERVAL, self._now)
        hidden = bucket.take(self._now)
        if hidden is None:
            return
        more = f" ({hidden} more {kind} drops not logged)" if hidden else ""
        log.info("%s, dropped%s", why, more)

    def _reply_plain(self, spi_i, spi_r, exchange, mid, notify, data, src, dst) -> None:
        msg = Message(spi_i, spi_r, exchange, mid, initiator=False, response=True,
                      payloads=[NotifyPayload(notify_type=notify, data=data)])
        self.emit(Send(encode_message(msg), dst, src))

    # -- new IKE SAs ----------------------------------------------------------------------------

    def _admitted(self, message_id: int, src: Endpoint, now: float) -> bool:
        """The checks a new IKE_SA_INIT request passes before anything else: message ID
        0, its source neither held off nor over a limit (else dropped and counted)."""
        settings = self.rt.settings
        if message_id != 0:
            self._drop(f"IKE_SA_INIT request with message ID {message_id} from {src}")
            return False
        # a source with repeated failed logins is held off (ike/throttle.py): dropped first
        held = self.auth_throttle.held_off(src.host, now)
        if held is not None:
            self.stats["auth_blocked"] += 1
            self._drop(f"IKE_SA_INIT from {src}: held off for {held:.0f}s more after failed authentications",
                       kind="held-off")
            return False
        per_ip = self.half_open_by_ip[src.host]
        if settings.block_threshold and per_ip >= settings.block_threshold:
            self.stats["blocked"] += 1
            self._drop(f"peer {src.host} has {per_ip} half-open IKE SAs (block_threshold)", kind="blocked")
            return False
        if settings.init_limit_half_open and len(self.half_open) >= settings.init_limit_half_open:
            self.stats["limited"] += 1
            self._drop(f"IKE_SA_INIT from {src}: {len(self.half_open)} half-open IKE SAs (init_limit_half_open)",
                       kind="half-open limit")
            return False
        if settings.ikesa_limit and len(self.sas) >= settings.ikesa_limit:
            self.stats["limited"] += 1
            self._drop(f"IKE_SA_INIT from {src}: {len(self.sas)} IKE SAs (ikesa_limit)", kind="IKE SA limit")
            return False
        if settings.ikesa_limit_ip and self.sas_by_ip[src.host] >= settings.ikesa_limit_ip:
            self.stats["limited"] += 1
            self._drop(f"IKE_SA_INIT from {src}: {self.sas_by_ip[src.host]} IKE SAs from {src.host} (ikesa_limit_ip)",
                       kind="per-address limit")
            return False
        return True

    def _new_sa(self, data: bytes, msg: Message, src: Endpoint, dst: Endpoint, now: float, *,
                admitted: bool = False, cookie_ok: bool = False) -> None:
        """A new IKE SA for an IKE_SA_INIT request, behind the limits and the COOKIE check
        (``admitted``/``cookie_ok``: :meth:`_challenge` passed them already)."""
        settings = self.rt.settings
        if not admitted and not self._admitted(msg.message_id, src, now):
            return
        if not cookie_ok and self._cookie_required(src):
            nonce = msg.get(PayloadType.NONCE)
            if nonce is None:
                self._drop(f"IKE_SA_INIT without nonce from {src}")
                return
            first = msg.payloads[0]
            cookie = first.data if isinstance(first, NotifyPayload) and first.notify_type == NotifyType.COOKIE else None
            if not self._cookie_valid(cookie, msg.spi_i, nonce.data, src.host):
                self._send_cookie(msg.spi_i, nonce.data, src, dst)
                return
        conns = self.candidate_conns(dst, src)
        if not conns:
            mgr.info("no IKE config found for %s...%s, sending NO_PROPOSAL_CHOSEN", dst.host, src.host)
            self._reply_plain(msg.spi_i, ZERO_SPI, ExchangeType.IKE_SA_INIT, 0, NotifyType.NO_PROPOSAL_CHOSEN, b"", src, dst)
            return
        spi_r = self._new_spi()
        sa = IkeSa(self, msg.spi_i, spi_r, dst, src, conns, now)
        self.sas[spi_r] = sa
        self.init_index[(msg.spi_i, src.host)] = sa
        self.half_open.add(sa)
        self.half_open_by_ip[src.host] += 1
        sa.init_key = (msg.spi_i, src.host)
        self._count_ip(sa, src.host)
        mgr.log(15, "created IKE_SA (unnamed)[%d] for %s", sa.unique_id, src)
        sa.receive(data, msg, src, dst, now)
        if sa.state != DEAD:
            self.schedule(sa, sa.next_timer() or now + settings.half_open_timeout)

    def new_rekeyed_sa(self, old: IkeSa, *, spi_i: bytes) -> IkeSa:
        """A fresh IKE SA (our new SPI) to take over from ``old`` after the peer's IKE rekey."""
        new = IkeSa(self, spi_i, self._new_spi(), old.local, old.remote, old.candidate_conns, old.now)
        self.sas[new.spi_r] = new
        self._count_ip(new, old.counted_ip)
        return new

    def new_initiated_sa(self, old: IkeSa, *, spi_i: bytes, spi_r: bytes) -> IkeSa:
        """The IKE SA our own rekey of ``old`` made: SPIi (ours, from :meth:`reserve_spi`)
        and the peer's SPIr; we are its original initiator."""
        new = IkeSa(self, spi_i, spi_r, old.local, old.remote, old.candidate_conns, old.now,
                    original_initiator=True)
        self.reserved_spis.discard(spi_i)
        self.sas[spi_i] = new
        self._count_ip(new, old.counted_ip)
        return new

    def reserve_spi(self) -> bytes:
        """An SPI of ours for an IKE rekey we start (kept from others until used or released)."""
        spi = self._new_spi()
        self.reserved_spis.add(spi)
        return spi

    def release_spi(self, spi: bytes) -> None:
        self.reserved_spis.discard(spi)

    def _new_spi(self) -> bytes:
        while True:
            spi = self.rt.random(8)
            if spi != ZERO_SPI and spi not in self.sas and spi not in self.reserved_spis:
                return spi

    def candidate_conns(self, local: Endpoint, remote: Endpoint) -> list:
        """Conns whose left/right hosts accept these addresses, in configuration order."""
        return [c for c in self.rt.conns if _host_ok(c.local, local.host) and _host_ok(c.remote, remote.host)]

    def redirect_target(self, sa: IkeSa):
        """Where to redirect the client of this new IKE SA (RFC 5685; the rule is
        ``ikegate.redirect``, ike/tasks/ike_redirect.py), or None to serve it here.  The
        load is every IKE SA held, half-open ones and this new one included."""
        policy = self.rt.settings.redirect
        target = policy.choose(len(self.sas), local=sa.local.host) if policy is not None else None
        if target is not None:
            self.stats["redirected"] += 1
        return target

    def half_open_done(self, sa: IkeSa) -> None:
        if sa in self.half_open:
            self.half_open.discard(sa)
            host = sa.init_key[1] if sa.init_key else sa.remote.host
            self.half_open_by_ip[host] -= 1
            if self.half_open_by_ip[host] <= 0:
                del self.half_open_by_ip[host]

    def _count_ip(self, sa: IkeSa, host: str | None) -> None:
        if host is not None:
            sa.counted_ip = host
            self.sas_by_ip[host] += 1

    def remove(self, sa: IkeSa) -> None:
        self.half_open_done(sa)
        if sa.counted_ip is not None:
            self.sas_by_ip[sa.counted_ip] -= 1
            if self.sas_by_ip[sa.counted_ip] <= 0:
                del self.sas_by_ip[sa.counted_ip]
            sa.counted_ip = None
        # the IKE_SA_INIT index lives as long as the SA (strongSwan's init hash table): a
        # replayed IKE_SA_INIT of an established SA reaches it and is ignored there
        key = sa.init_key
        if key is not None and self.init_index.get(key) is sa:
            del self.init_index[key]
        if self.sas.get(sa.my_spi) is sa:
            del self.sas[sa.my_spi]

    # -- cookies (RFC 7296 2.6) ------------------------------------------------------------------

    def _cookie_required(self, src: Endpoint) -> bool:
        s = self.rt.settings
        return (s.cookie_threshold and len(self.half_open) >= s.cookie_threshold) or (
            s.cookie_threshold_ip and self.half_open_by_ip[src.host] >= s.cookie_threshold_ip
        )

    def _make_cookie(self, spi_i: bytes, nonce: bytes, host: str, version: int) -> bytes:
        """<version of the secret> | HMAC-SHA-256(secret, Ni | IPi | SPIi), truncated (RFC 7296 2.6)."""
        secret = self._cookie_secrets[version]
        packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        digest = hmac.new(secret, nonce + packed + spi_i, hashlib.sha256).digest()
        return struct.pack(">I", version) + digest[:28]

    def _cookie_valid(self, cookie: bytes | None, spi_i: bytes, nonce: bytes, host: str) -> bool:
        """Is ``cookie`` (the COOKIE notify data that came first, or None) one we made,
        with a secret still valid, for this SPIi, nonce and address?"""
        if cookie is None or len(cookie) != 32:
            return False
        version = struct.unpack_from(">I", cookie)[0]
        if version not in self._cookie_secrets:
            return False
        return hmac.compare_digest(cookie, self._make_cookie(spi_i, nonce, host, version))

    def _send_cookie(self, spi_i: bytes, nonce: bytes, src: Endpoint, dst: Endpoint) -> None:
        self.stats["cookies_sent"] += 1
        cookie = self._make_cookie(spi_i, nonce, src.host, self._cookie_version)
        self._reply_plain(spi_i, ZERO_SPI, ExchangeType.IKE_SA_INIT, 0, NotifyType.COOKIE, cookie, src, dst)

    def _challenge(self, data: bytes, header, src: Endpoint, dst: Endpoint, now: float) -> str:
        """A new IKE_SA_INIT request while COOKIEs are required (a flood, likely): dropped
        or answered with a COOKIE from the header, the first payload and the Nonce alone,
        without decoding the rest (a flood costs a hash, not a decode): :data:`_ANSWERED`.
        Else the full path goes on with what was found: :data:`_COOKIE_OK` (admitted, a
        valid COOKIE) or :data:`_ADMITTED` (payloads that do not even chain up: the full
        path decides)."""
        if not self._admitted(header.message_id, src, now):
            return _ANSWERED
        peeked = _peek_sa_init(data)
        if peeked is None:
            return _ADMITTED
        cookie, nonce = peeked
        if self._cookie_valid(cookie, header.spi_i, nonce, src.host):
            return _COOKIE_OK
        self._send_cookie(header.spi_i, nonce, src, dst)
        return _ANSWERED

    def _rotate_cookie_secret(self, now: float) -> None:
        if now - self._cookie_rotated < COOKIE_SECRET_LIFETIME:
            return
        self._cookie_rotated = now
        self._cookie_version = (self._cookie_version + 1) & 0xFFFFFFFF
        self._cookie_secrets = {
            v: s for v, s in self._cookie_secrets.items() if v == (self._cookie_version - 1) & 0xFFFFFFFF
        }
        self._cookie_secrets[self._cookie_version] = self.rt.random(32)

    # -- uniqueness (uniqueids=, INITIAL_CONTACT) ---------------------------------------------------

    def check_uniqueness(self, sa: IkeSa) -> None:
        """strongSwan's ike_sa_manager ``check_uniqueness``: INITIAL_CONTACT replaces every
        older SA of the same identities (unless ``uniqueids=never``); ``yes``/``replace``
        replace duplicates (delayed when from the same address and port: maybe a reauth);
        ``keep`` refuses a duplicate from another address or port (strongSwan compares
        the peers with host_t ``equals``, which includes the port)."""
        from ikegate.ike.exchange import Abort

        policy = self.rt.uniqueids
        if policy == "never":
            return
        me, other = str(sa.local_id), sa.lease_identity
        duplicates = [
            o for o in self.sas.values()
            if o is not sa and o.state == ESTABLISHED and o.lease_identity == other and str(o.local_id) == me
        ]  # fmt: skip
        if not duplicates:
            return
        if sa.peer_initial_contact:
            for old in duplicates:
                mgr.info("destroying duplicate IKE_SA for peer '%s', received INITIAL_CONTACT", other)
                old.initiate_delete("INITIAL_CONTACT from a new IKE SA")
            return
        if policy in ("yes", "replace"):
            for old in duplicates:
                if old.remote == sa.remote:
                    old.delete_at = sa.now + REPLACE_DELAY
                    self.schedule(old, old.delete_at)
                    mgr.info("schedule delete of duplicate IKE_SA for peer '%s' in %ds", other, int(REPLACE_DELAY))
                else:
                    mgr.info("deleting duplicate IKE_SA for peer '%s' due to uniqueness policy", other)
                    old.initiate_delete("replaced (uniqueids)")
        elif policy == "keep":
            if any(o.remote != sa.remote for o in duplicates):
                mgr.info("cancelling IKE_SA setup due to uniqueness policy")
                raise Abort(NotifyType.AUTHENTICATION_FAILED, reason="uniqueids=keep: duplicate refused")

    # -- control ------------------------------------------------------------------------------------

    def status(self, now: float, *, states=(CONNECTING, ESTABLISHED)) -> list[dict]:
        """The SAs in ``states`` (connecting and established by default), oldest first."""
        return [sa.describe(now) for sa in sorted(self.sas.values(), key=lambda s: s.unique_id)
                if sa.state in states]

    def set_runtime(self, runtime) -> None:
        """A reloaded configuration: new IKE SAs (and those rekeyed from now on) use it;
        established SAs keep the conns and credentials they were made with."""
        self.rt = runtime
        self.auth_throttle.configure(runtime.settings)

    def find(self, target: str) -> list[IkeSa]:
        """SAs a control command names: an SA id (``7`` or ``conn[7]``), a virtual IP, the
        peer's outer address, or a user (EAP identity or IKE identity)."""
        target = target.strip()
        live = [sa for sa in sorted(self.sas.values(), key=lambda s: s.unique_id) if sa.state in (CONNECTING, ESTABLISHED)]
        number = target[target.index("[") + 1 : -1] if target.endswith("]") and "[" in target else target
        if number.isdigit():
            name = target[: target.index("[")] if "[" in target else None
            return [sa for sa in live if sa.unique_id == int(number) and (name is None or sa.name == name)]
        try:
            address = ipaddress.ip_address(target)
        except ValueError:
            return [sa for sa in live if sa.eap_id == target or (sa.remote_id is not None and str(sa.remote_id) == target)]
        return [sa for sa in live
                if address in {ipaddress.ip_address(v) for v in sa.vips}
                or ipaddress.ip_address(sa.remote.host) == address]  # fmt: skip

    def kill(self, sas: list[IkeSa], reason: str, now: float, *,
             cause: int = TerminateCause.ADMIN_RESET) -> list:
        """Delete these IKE SAs (an INFORMATIONAL Delete to established peers); ``cause``
        is the Acct-Terminate-Cause their IkeSaDown reports."""
        for sa in sas:
            sa.now = now
            sa.terminate_cause = cause
            if sa.state == ESTABLISHED:
                sa.initiate_delete(reason)
            else:
                sa.destroy(reason)
        return self._flush()

    def without_secret(self, secrets) -> list[IkeSa]:
        """Established SAs whose peer authenticated with a secret ``secrets`` no longer
        holds: an EAP user who was removed, or a PSK peer without a key (a user RADIUS
        authenticated is RADIUS's business, not ipsec.secrets')."""
        orphans = []
        for sa in self.sas.values():
            if sa.state != ESTABLISHED or sa.radius_attrs is not None:
                continue
            if sa.eap_id is not None:
                if secrets.find_eap(sa.eap_id, sa.local_id) is None:
                    orphans.append(sa)
            elif sa.peer_auth_method == "psk" and not secrets.find_psk(sa.local_id, sa.remote_id):
                orphans.append(sa)
        return sorted(orphans, key=lambda s: s.unique_id)

    def shutdown(self, now: float) -> list:
        """Delete every IKE SA (INFORMATIONAL Delete to established peers), as on SIGTERM."""
        for sa in list(self.sas.values()):
            sa.now = now
            if sa.state == ESTABLISHED:
                sa.initiate_delete("gateway shutting down")
            else:
                sa.destroy("gateway shutting down")
        return self._flush()


# what Gateway._challenge found out about a new IKE_SA_INIT
_ANSWERED, _ADMITTED, _COOKIE_OK = "answered", "admitted", "cookie ok"


def _peek_sa_init(data: bytes) -> tuple[bytes | None, bytes] | None:
    """(the data of the COOKIE notify if it is the first payload, else None; the Nonce
    data) of a whole IKE_SA_INIT request, found by walking the generic payload headers
    only (RFC 7296 3.2, 3.10), as strongSwan's receiver checks cookies on the raw
    datagram before its parser runs; None if the chain is broken or has no Nonce."""
    nxt, pos, end = data[16], 28, len(data)
    cookie = nonce = None
    first = True
    while nxt:
        if pos + 4 > end:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 4 or pos + length > end:
            return None
        if first and nxt == PayloadType.NOTIFY and length >= 8:
            spi_size = data[pos + 5]
            if int.from_bytes(data[pos + 6 : pos + 8], "big") == NotifyType.COOKIE and 8 + spi_size <= length:
                cookie = data[pos + 8 + spi_size : pos + length]
        elif nxt == PayloadType.NONCE and nonce is None:
            nonce = data[pos + 4 : pos + length]
        first = False
        nxt, pos = data[pos], pos + length
    return None if nonce is None else (cookie, nonce)


def _host_ok(end, host: str) -> bool:
    """Does a conn end (``left=``/``right=``) accept this address?"""
    hosts = getattr(end, "hosts", None) or ("%any",)
    if isinstance(hosts, str):
        hosts = (hosts,)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    for h in hosts:
        h = str(h).strip()
        if h in ("%any", "%any4", "%any6", "%defaultroute", "") or getattr(end, "allow_any", False):
            if h == "%any4" and addr.version != 4 or h == "%any6" and addr.version != 6:
                continue
            return True
        try:
            if "-" in h:
                lo, hi = (ipaddress.ip_address(x) for x in h.split("-", 1))
                if lo.version == addr.version and lo <= addr <= hi:
                    return True
            elif addr in ipaddress.ip_network(h, strict=False):
                return True
        except ValueError:
            continue  # a host name: resolved by the daemon, not here
    return False
