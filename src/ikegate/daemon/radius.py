"""The daemon's RADIUS edge: sockets to the RADIUS servers, accounting, the DAE listener.

The sans-IO parts live in :mod:`ikegate.radius`; this module owns their sockets and
clock, on the daemon's event loop:

* **authentication**: the engine's :class:`~ikegate.radius.client.RadiusClient` returns
  :class:`~ikegate.radius.client.RadiusSend` among its outputs; :meth:`RadiusEdge.send`
  sends them from an unconnected UDP socket (one per address family, ephemeral port) and
  every datagram read there goes to ``gateway.radius_received`` (the client checks it);
* **accounting** (``accounting = yes``): :class:`~ikegate.radius.accounting.Accounting`
  sees every engine output (:meth:`RadiusEdge.event`, called by ``Daemon.process``
  before the data plane removes a CHILD SA, so its last counters can be read) and its
  Accounting-Requests go through a second RadiusClient (``kind="acct"``) on sockets of
  their own.  A Start nobody answers deletes the IKE SA, as does an Interim-Update with
  ``accounting_close_on_timeout`` (strongSwan's eap_radius_handle_timeout; with
  ``close_all_on_timeout`` every IKE SA);
* **DAE** (``dae.enable`` with a ``dae.secret``): a socket on ``dae.listen:dae.port``;
  :class:`~ikegate.radius.dae.DaeServer` checks each request and the IKE SAs a
  Disconnect-Request names are deleted through ``Gateway.kill`` (Acct-Terminate-Cause
  Admin-Reset), like ``ikegate kill``.

* **reload** (``ikegate reload``, SIGHUP): :meth:`RadiusEdge.reload` applies new
  accounting servers and interval to new and running sessions and moves, re-keys or
  closes the DAE listener (a new port is bound with the capabilities ``--user`` keeps;
  when binding fails the old listener stays, and the log says why).

A wrong secret, a malformed packet or a dead server only logs and drops.  Sockets are
non-blocking and read in batches from ``loop.add_reader`` callbacks, as the IKE sockets
(:mod:`ikegate.daemon.sockets`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from ikegate import log as logmod
from ikegate.daemon.wakeup import WakeUp
from ikegate.ike.events import Endpoint
from ikegate.ike.sa import ESTABLISHED
from ikegate.radius.accounting import Accounting, AccountingRecord
from ikegate.radius.client import RadiusAnswer, RadiusSend, RadiusTimeout
from ikegate.radius.dae import DaeServer, DaeSession
from ikegate.radius.packet import AcctStatusType, Code, TerminateCause

__all__ = ["RadiusEdge"]

log = logmod.get_logger("cfg")

RECV_SIZE = 4096
BATCH = 64
#: at most this long at shutdown for the accounting Stops to be answered
STOP_DRAIN = 3.0


class _UdpSockets:
    """Unconnected UDP sockets, one per address family, created on first use."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_datagram, what: str) -> None:
        self.loop = loop
        self.on_datagram = on_datagram
        self.what = what
        self.sockets: dict[int, socket.socket] = {}

    def _socket(self, family: int) -> socket.socket | None:
        sock = self.sockets.get(family)
        if sock is not None:
            return sock
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        except OSError as exc:
            log.info("cannot open a RADIUS %s socket: %s", self.what, exc.strerror)
            return None
        self.sockets[family] = sock
        self.loop.add_reader(sock.fileno(), self._readable, sock)
        return sock

    def send(self, data: bytes, dst: Endpoint) -> None:
        family = socket.AF_INET6 if ":" in dst.host else socket.AF_INET
        sock = self._socket(family)
        if sock is None:
            return
        try:
            sock.sendto(data, (dst.host, dst.port))
        except (BlockingIOError, InterruptedError):
            pass  # the client retransmits
        except OSError as exc:
            log.info("sending RADIUS %s message to %s failed: %s", self.what, dst, exc.strerror)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue  # an ICMP error of an earlier send: the server is down
                log.info("receiving RADIUS %s message failed: %s", self.what, exc.strerror)
                break
            self.on_datagram(data, Endpoint(addr[0].split("%", 1)[0], addr[1]))

    def close(self) -> None:
        for sock in self.sockets.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets.clear()


def _dae_server(settings) -> DaeServer | None:
    """The DAE request checker of ``settings`` (None when DAE is off or has no secret)."""
    if not settings.dae.active:
        return None
    return DaeServer(settings.dae.secret, clients=settings.dae.clients,
                     nas_identifiers={s.nas_identifier for s in settings.servers} or {settings.nas_identifier})


class RadiusEdge:
    """RADIUS sockets, accounting and DAE for a :class:`~ikegate.daemon.main.Daemon`."""

    def __init__(self, daemon, settings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.auth: _UdpSockets | None = None
        self.acct: _UdpSockets | None = None
        self.acct_client = settings.client() if settings.accounting else None
        self.accounting = (Accounting.from_settings(settings, self._counters)
                           if self.acct_client is not None else None)
        self.dae = _dae_server(settings)
        self.dae_socket: socket.socket | None = None
        self.dae_bound: tuple[str, int] | None = None  # (listen, port) of dae_socket
        self._wakeup = WakeUp(self._on_timer)

    # -- life -------------------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the sockets (the DAE one bound now, as root, before privileges drop)."""
        self.loop = loop
        self.auth = _UdpSockets(loop, self._auth_datagram, "authentication")
        self.acct = _UdpSockets(loop, self._acct_datagram, "accounting")
        self._open_server_sockets()
        if self.dae is not None:
            self._open_dae()
        if self.accounting is not None:
            log.info("RADIUS accounting enabled%s", f", Interim-Updates every {self.settings.accounting_interval}s"
                     if self.settings.accounting_interval else "")

    def _open_server_sockets(self) -> None:
        """A socket per address family of the servers (at start: bound before privileges
        are dropped; on a reload, for a family no server had before)."""
        for family in (socket.AF_INET, socket.AF_INET6):
            if any((":" in s.address) == (family == socket.AF_INET6) for s in self.settings.servers):
                self.auth._socket(family)
                if self.acct_client is not None:
                    self.acct._socket(family)

    def _bind_dae(self, listen: str, port: int) -> socket.socket:
        """A DAE socket bound to ``listen:port`` (OSError when that is impossible)."""
        family = socket.AF_INET6 if ":" in listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((listen, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _open_dae(self) -> None:
        dae = self.settings.dae
        try:
            sock = self._bind_dae(dae.listen, dae.port)
        except OSError as exc:
            log.info("unable to bind RADIUS DAE socket to %s port %d: %s", dae.listen, dae.port, exc.strerror)
            self.dae = None
            return
        self._use_dae_socket(sock, (dae.listen, dae.port))
        log.info("listening for RADIUS DAE requests on %s port %d", dae.listen, dae.port)

    def _use_dae_socket(self, sock: socket.socket | None, bound: tuple[str, int] | None) -> None:
        """Make ``sock`` the DAE socket (None: no listener), closing the one before."""
        if self.dae_socket is not None:
            self.loop.remove_reader(self.dae_socket.fileno())
            self.dae_socket.close()
        self.dae_socket, self.dae_bound = sock, bound
        if sock is not None:
            self.loop.add_reader(sock.fileno(), self._dae_readable)

    # -- reload -----------------------------------------------------------------------------

    def reload(self, settings) -> None:
        """New eap-radius settings (``ikegate reload``, SIGHUP).  Accounting: the new
        servers, interval and options for new sessions and the running ones (which keep
        their Acct-Session-Id; requests in flight finish where they were sent); turned
        off, the sessions already accounted go on to their Stop and no new one starts.
        DAE: a new secret or client list applies at once; a new listen address or port
        is bound now (if that fails, e.g. an address not on this host, the old listener
        stays and the log says why); disabled, the listener closes.  Authentication
        servers are the engine's (``Gateway.set_radius``)."""
        # servers configured as before stay held down, for authentication (whose new client
        # shares settings.reachability) and accounting alike
        settings.reachability.inherit(self.settings.reachability)
        self.settings = settings
        now = self.loop.time()
        self._reload_accounting(settings, now)
        self._reload_dae(settings)
        self._open_server_sockets()
        self._arm()

    def _reload_accounting(self, settings, now: float) -> None:
        running = len(self.accounting.sessions) if self.accounting is not None else 0
        if not settings.servers:
            if self.accounting is not None:
                log.info("RADIUS accounting disabled: no RADIUS server configured (%d running session%s get "
                         "no Stop)", running, "" if running == 1 else "s")
            self.accounting = None
            if self.acct_client is not None and not self.acct_client.pending():
                self.acct_client = None
            return
        if self.acct_client is None:
            if not settings.accounting:
                return
            self.acct_client = settings.client()
        else:
            self.acct_client.reconfigure(list(settings.servers), tries=settings.tries, timeout=settings.timeout,
                                         base=settings.base, reachability=settings.reachability)
        if self.accounting is None:
            if not settings.accounting:
                return
            self.accounting = Accounting.from_settings(settings, self._counters)
            log.info("RADIUS accounting enabled%s (for IKE SAs established from now on)",
                     f", Interim-Updates every {settings.accounting_interval}s" if settings.accounting_interval else "")
            return
        self.accounting.configure(settings, now)
        self.accounting.new_sessions = settings.accounting
        if settings.accounting:
            log.info("RADIUS accounting: %d server%s, Interim-Updates %s (running sessions included)",
                     len(settings.servers), "" if len(settings.servers) == 1 else "s",
                     f"every {settings.accounting_interval}s" if settings.accounting_interval else "off")
        else:
            log.info("RADIUS accounting disabled for new IKE SAs; %d running session%s accounted until "
                     "%s end", running, "" if running == 1 else "s", "it" if running == 1 else "they")

    def _reload_dae(self, settings) -> None:
        dae = settings.dae
        if not dae.active:
            if self.dae_socket is not None:
                log.info("RADIUS DAE disabled: listener on %s port %d closed", *self.dae_bound)
            self._use_dae_socket(None, None)
            self.dae = None
            return
        self.dae = _dae_server(settings)
        wanted = (dae.listen, dae.port)
        if self.dae_bound == wanted:
            return
        try:
            sock = self._bind_dae(*wanted)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.EACCES and os.geteuid() != 0:
                why += f" (running as uid {os.geteuid()} after --user: restart ikegate to bind it)"
            if self.dae_socket is not None:
                log.info("cannot listen for RADIUS DAE requests on %s port %d: %s; keeping the listener on "
                         "%s port %d", *wanted, why, *self.dae_bound)
            else:
                log.info("unable to bind RADIUS DAE socket to %s port %d: %s", *wanted, why)
                self.dae = None
            return
        self._use_dae_socket(sock, wanted)
        log.info("listening for RADIUS DAE requests on %s port %d", *wanted)

    async def drain(self, timeout: float = STOP_DRAIN) -> None:
        """Wait (at most ``timeout``) for accounting requests in flight, the Stops of a
        shutdown above all."""
        if self.acct_client is None:
            return
        deadline = self.loop.time() + timeout
        while self.acct_client.pending() and self.loop.time() < deadline:
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self._wakeup.cancel()
        for sockets in (self.auth, self.acct):
            if sockets is not None:
                sockets.close()
        if self.dae_socket is not None:
            self._use_dae_socket(None, None)

    # -- authentication ---------------------------------------------------------------------

    def send(self, item: RadiusSend) -> None:
        """An Access-Request (or its retransmit) from the engine."""
        if self.auth is not None:
            self.auth.send(item.data, item.server)

    def _auth_datagram(self, data: bytes, src: Endpoint) -> None:
        gateway = self.daemon.gateway
        radius_received = getattr(gateway, "radius_received", None)
        if radius_received is None:
            return
        self.daemon.process(radius_received(data, src, self.loop.time()))

    # -- accounting -------------------------------------------------------------------------

    def _counters(self, spi_in: int):
        counters = getattr(self.daemon.dataplane, "counters", None)
        return counters(spi_in) if counters is not None else None

    def event(self, item) -> None:
        """One engine output (before the daemon acts on it)."""
        if self.accounting is None:
            return
        now = self.loop.time()
        records = self.accounting.event(item, now)
        if records:
            self._request(records, now)

    def _request(self, records: list[AccountingRecord], now: float) -> None:
        for record in records:
            self._carry_out(self.acct_client.request(record.packet, now, kind="acct", context=record))
        self._arm()

    def _acct_datagram(self, data: bytes, src: Endpoint) -> None:
        self._carry_out(self.acct_client.receive(data, src, self.loop.time()))
        # an answer moves no Interim-Update (a timeout's deletes re-arm through event()):
        # only the client's retransmit deadline may have changed
        self._wakeup.at(self.loop, self.acct_client.next_timer())

    def _carry_out(self, items: list) -> None:
        for item in items:
            if isinstance(item, RadiusSend):
                self.acct.send(item.data, item.server)
            elif isinstance(item, RadiusAnswer):
                if item.packet.code != Code.ACCOUNTING_RESPONSE:
                    log.info("RADIUS accounting request answered with %s, ignored", item.packet.code)
            elif isinstance(item, RadiusTimeout):
                self._acct_timeout(item.context)

    def _acct_timeout(self, record: AccountingRecord) -> None:
        """strongSwan: a Start (or, with accounting_close_on_timeout, an Interim-Update)
        nobody answered deletes the IKE SA; close_all_on_timeout deletes them all."""
        if record.status == AcctStatusType.STOP:
            log.info("RADIUS accounting Stop of session %s not answered", record.session_id)
            return
        if record.status == AcctStatusType.INTERIM_UPDATE and not self.settings.accounting_close_on_timeout:
            return
        gateway = self.daemon.gateway
        if self.settings.close_all_on_timeout:
            log.info("deleting all IKE_SAs after RADIUS timeout")
            victims = [sa for sa in gateway.sas.values() if sa.unique_id is not None]
        else:
            log.info("deleting IKE_SA %d after RADIUS timeout", record.unique_id)
            victims = [sa for sa in gateway.sas.values() if sa.unique_id == record.unique_id]
        if victims:
            self._kill(victims, "RADIUS accounting server not responding", TerminateCause.NAS_ERROR)

    # -- DAE --------------------------------------------------------------------------------

    def _dae_readable(self) -> None:
        sock = self.dae_socket
        for _ in range(BATCH):
            if sock is None:
                return
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.info("receiving RADIUS DAE request failed: %s", exc.strerror)
                return
            src = Endpoint(addr[0].split("%", 1)[0], addr[1])
            result = self.dae.handle(data, src, self._dae_sessions())
            if result.kill:
                wanted = set(result.kill)
                victims = [sa for sa in self.daemon.gateway.sas.values() if sa.unique_id in wanted]
                self._kill(victims, "disconnected by RADIUS (Disconnect-Request)", TerminateCause.ADMIN_RESET)
            if result.reply is not None:
                try:
                    sock.sendto(result.reply, addr)
                except OSError as exc:
                    log.info("sending RADIUS DAE response to %s failed: %s", src, exc.strerror)

    def _dae_sessions(self):
        """The established SAs as :class:`DaeSession`, made only if a Disconnect-Request
        gets that far (a generator: datagrams dropped earlier cost nothing per SA)."""
        for sa in list(self.daemon.gateway.sas.values()):
            if sa.state != ESTABLISHED:
                continue
            session_id = getattr(sa, "session_id", None) or (
                self.accounting.session_of(sa.unique_id) if self.accounting is not None else None)
            user = sa.eap_id or (str(sa.remote_id) if sa.remote_id else None)
            yield DaeSession(sa.unique_id, user, session_id, tuple(str(v) for v in sa.vips))

    def _kill(self, sas: list, reason: str, cause: int) -> None:
        if self.accounting is not None:
            for sa in sas:
                self.accounting.set_cause(sa.unique_id, cause)
        self.daemon.process(self.daemon.gateway.kill(sas, reason, self.loop.time(), cause=cause))

    # -- the clock --------------------------------------------------------------------------

    def _next(self) -> float | None:
        times = []
        if self.acct_client is not None:
            times.append(self.acct_client.next_timer())
        if self.accounting is not None:
            times.append(self.accounting.next_timer())
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def _arm(self) -> None:
        if self.loop is not None:
            self._wakeup.at(self.loop, self._next())

    def _on_timer(self) -> None:
        now = self.loop.time()
        if self.accounting is not None:
            records = self.accounting.tick(now)
            if records:
                self._request(records, now)
        if self.acct_client is not None:
            self._carry_out(self.acct_client.tick(now))
        self._arm()
