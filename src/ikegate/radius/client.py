"""A sans-IO RADIUS client: identifiers, retransmits, failover, answer checking.

The caller hands requests in (:meth:`RadiusClient.request`), sends the
:class:`RadiusSend` datagrams it gets back, feeds every datagram from a RADIUS server to
:meth:`RadiusClient.receive` and calls :meth:`RadiusClient.tick` at
:meth:`RadiusClient.next_timer`.  What comes out: :class:`RadiusAnswer` (a checked answer)
and :class:`RadiusTimeout` (no server answered).

Retransmits follow strongSwan's eap-radius (radius_socket.c): a request is sent, then
retransmitted ``tries`` times, waiting ``timeout * base ** n`` seconds after the n-th
send (n from 0), the same bytes each time.  When a server stays silent through all of
them it is marked unreachable and the request goes to the next server (new identifier,
new authenticator, that server's secret and NAS-Identifier); when every server failed,
:class:`RadiusTimeout`.  Servers are tried by preference (``preference``, higher first;
equal ones by fewest requests in flight, then configuration order); an unreachable
server comes last until :data:`UNREACHABLE_HOLD` seconds have passed or it answers.
That state is shared through a :class:`Reachability` by the authentication and the
accounting client of one configuration, as strongSwan keeps it per server: a server
that failed Access-Requests is tried last for accounting too, and the other way round.

Identifiers are allocated per server endpoint (address and port), at most 256 requests
in flight to each; more wait in a queue.  An answer is accepted only from the endpoint
the request went to, with its identifier, and only if its Response Authenticator and
Message-Authenticator verify with that server's secret; anything else (late,
duplicate, forged, malformed, wrong secret) is logged without secrets and dropped.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

from ikegate import log as logmod
from ikegate.ike.events import Endpoint
from ikegate.radius.packet import Attr, Code, Packet, RadiusError, encode_request, verify_response

__all__ = ["RadiusAnswer", "RadiusClient", "RadiusSend", "RadiusServer", "RadiusTimeout", "Reachability",
           "UNREACHABLE_HOLD"]

log = logmod.get_logger("cfg")

#: seconds an unreachable server is tried after the others (unless it answers)
UNREACHABLE_HOLD = 60.0

#: the per-server counters of :meth:`RadiusClient.server_status`
SERVER_COUNTERS = ("requests", "retransmits", "answers", "timeouts")


@dataclass(slots=True)
class RadiusSend:
    """A RADIUS datagram to send to ``server`` (from the daemon's RADIUS socket)."""

    data: bytes = field(repr=False)
    server: Endpoint


@dataclass(slots=True)
class RadiusAnswer:
    """A verified answer to the request made with ``context``.  ``request_authenticator``
    and ``secret`` (of the server that answered) decrypt hidden attributes such as
    MS-MPPE-Send/Recv-Key (:func:`ikegate.radius.packet.decrypt_mppe_key`)."""

    context: object
    packet: Packet
    request_authenticator: bytes = field(default=b"", repr=False)
    secret: bytes = field(default=b"", repr=False)
    server: str = ""


@dataclass(slots=True)
class RadiusTimeout:
    """No RADIUS server answered the request made with ``context``."""

    context: object


class Reachability:
    """Which servers are held down after a timeout.  strongSwan keeps one state per
    configured server (radius_config.c: ``reachable``, set by every request's outcome),
    whether the request was an authentication or an accounting one; here the
    authentication and the accounting client of one configuration share one of these
    (:meth:`ikegate.radius.settings.RadiusSettings.client`).  Servers are told apart
    by name, address and ports."""

    def __init__(self) -> None:
        self.until: dict[tuple, float] = {}  # held down until
        self.since: dict[tuple, float] = {}  # found unreachable at

    def is_down(self, server: "RadiusServer", now: float) -> bool:
        return self.until.get(_server_key(server), 0.0) > now

    def timed_out(self, server: "RadiusServer", now: float) -> None:
        key = _server_key(server)
        if self.until.get(key, 0.0) <= now:  # not held down yet (or no longer): a new outage
            self.since[key] = now
        self.until[key] = now + UNREACHABLE_HOLD

    def answered(self, server: "RadiusServer") -> None:
        key = _server_key(server)
        self.until.pop(key, None)
        self.since.pop(key, None)

    def inherit(self, other: "Reachability") -> None:
        """Take over ``other``'s servers that are held down (a reload)."""
        for key, until in other.until.items():
            self.until.setdefault(key, until)
            if key in other.since:
                self.since.setdefault(key, other.since[key])

    def keep(self, keys: set) -> None:
        """Forget every server but ``keys``."""
        self.until = {k: v for k, v in self.until.items() if k in keys}
        self.since = {k: v for k, v in self.since.items() if k in keys}


@dataclass(eq=False)
class RadiusServer:
    """One configured RADIUS server.  ``tries``/``timeout``/``base`` override the
    client's retransmit settings when not None.  The repr hides the secret."""

    name: str
    address: str
    secret: bytes = field(repr=False)
    auth_port: int = 1812
    acct_port: int = 1813
    preference: int = 0
    nas_identifier: str = "strongSwan"
    tries: int | None = None
    timeout: float | None = None
    base: float | None = None

    def endpoint(self, kind: str) -> Endpoint:
        return Endpoint(normal_host(self.address), self.acct_port if kind == "acct" else self.auth_port)


def normal_host(host: str) -> str:
    """An address in its canonical text (IPv6 scope dropped); a name unchanged."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return host


@dataclass(eq=False)
class _Request:
    packet: Packet  # as given (no identifier yet)
    kind: str
    context: object
    untried: list[RadiusServer]
    server: RadiusServer | None = None
    endpoint: Endpoint | None = None
    identifier: int = -1
    sent: Packet | None = None  # the packet as encoded for the current server
    data: bytes = b""
    sends: int = 0
    deadline: float = 0.0


class RadiusClient:
    """RADIUS requests to a set of servers (sans-IO; see the module doc)."""

    def __init__(self, servers: list[RadiusServer], *, tries: int = 4, timeout: float = 2.0,
                 base: float = 1.4, reachability: "Reachability | None" = None) -> None:
        if not servers:
            raise ValueError("a RADIUS client needs at least one server")
        self.servers = list(servers)
        self.tries = tries
        self.timeout = timeout
        self.base = base
        self._in_flight: dict[tuple[Endpoint, int], _Request] = {}
        self._next_id: dict[Endpoint, int] = {}
        self._waiting: deque[_Request] = deque()  # no identifier free at their server
        self.reachability = reachability if reachability is not None else Reachability()
        self._server_stats: dict[tuple, dict[str, int]] = {}  # _server_key(server) -> counters
        self.stats = {"sent": 0, "retransmits": 0, "answers": 0, "dropped": 0, "timeouts": 0}

    def reconfigure(self, servers: list[RadiusServer], *, tries: int = 4, timeout: float = 2.0,
                    base: float = 1.4, reachability: "Reachability | None" = None) -> None:
        """New servers and retransmit settings (a reload).  New requests use them; requests
        in flight finish with the server and the failover list they had, their
        identifiers stay reserved, so nothing in flight is lost or answered twice.  A
        server configured as before (same name, address and ports) stays held down if it
        was unreachable; ``reachability`` (the new configuration's) takes over that state."""
        if not servers:
            raise ValueError("a RADIUS client needs at least one server")
        self.servers = list(servers)
        self.tries, self.timeout, self.base = tries, timeout, base
        kept = {_server_key(s) for s in self.servers}
        if reachability is not None and reachability is not self.reachability:
            reachability.inherit(self.reachability)
            self.reachability = reachability
        self.reachability.keep(kept)

    # -- requests ---------------------------------------------------------------------------

    def request(self, packet: Packet, now: float, *, kind: str = "auth", context=None) -> list:
        """Send ``packet`` (a request without identifier: the client picks one, adds the
        server's NAS-Identifier if the packet has none, and computes the authenticators;
        an Access-Request keeps a 16-octet authenticator it already has, which only a
        User-Password hidden with it needs) to the best server.  Returns the :class:`RadiusSend` (or nothing yet when 256
        requests are already in flight to that server)."""
        if kind not in ("auth", "acct"):
            raise ValueError(f"unknown RADIUS request kind {kind!r}")
        request = _Request(packet, kind, context, self._ranked(now))
        return self._start(request, now)

    def _ranked(self, now: float) -> list[RadiusServer]:
        load: dict[int, int] = {}
        for req in self._in_flight.values():
            if req.server is not None:
                load[id(req.server)] = load.get(id(req.server), 0) + 1

        def key(item):
            index, server = item
            down = self.reachability.is_down(server, now)
            return (down, -server.preference, load.get(id(server), 0), index)

        return [server for _, server in sorted(enumerate(self.servers), key=key)]

    def _start(self, request: _Request, now: float) -> list:
        """Send ``request`` to the next untried server; a timeout if none is left."""
        out: list = []
        while request.untried:
            server = request.untried[0]
            endpoint = server.endpoint(request.kind)
            identifier = self._allocate(endpoint)
            if identifier is None:
                self._waiting.append(request)
                return out
            request.untried.pop(0)
            # a given authenticator is kept (PAP: User-Password is hidden with it); else random
            packet = Packet(request.packet.code, identifier, request.packet.authenticator,
                            list(request.packet.attributes))
            if packet.get(Attr.NAS_IDENTIFIER) is None and server.nas_identifier:
                packet.add(Attr.NAS_IDENTIFIER, server.nas_identifier)
            try:
                data = encode_request(packet, server.secret)
            except RadiusError as exc:
                log.info("RADIUS %s for server '%s' not sent: %s", _code(packet.code), server.name, exc)
                continue
            request.server, request.endpoint, request.identifier = server, endpoint, identifier
            request.sent, request.data, request.sends = packet, data, 1
            request.deadline = now + self._timeout(server, 0)
            self._in_flight[(endpoint, identifier)] = request
            self.stats["sent"] += 1
            self._count(server, "requests")
            log.log(logmod.CTRLMORE, "sending RADIUS %s to server '%s' (%s, id %d)", _code(packet.code),
                    server.name, endpoint, identifier)
            out.append(RadiusSend(data, endpoint))
            return out
        self.stats["timeouts"] += 1
        log.info("RADIUS %s: no server answered", _code(request.packet.code))
        out.append(RadiusTimeout(request.context))
        return out

    def _allocate(self, endpoint: Endpoint) -> int | None:
        start = self._next_id.get(endpoint, 0)
        for offset in range(256):
            identifier = (start + offset) % 256
            if (endpoint, identifier) not in self._in_flight:
                self._next_id[endpoint] = (identifier + 1) % 256
                return identifier
        return None

    def _timeout(self, server: RadiusServer, retransmit: int) -> float:
        timeout = server.timeout if server.timeout is not None else self.timeout
        base = server.base if server.base is not None else self.base
        return timeout * base**retransmit

    def _tries(self, server: RadiusServer) -> int:
        return server.tries if server.tries is not None else self.tries

    def _release(self, request: _Request, now: float) -> list:
        """Free ``request``'s identifier and start requests that waited for one."""
        self._in_flight.pop((request.endpoint, request.identifier), None)
        return self._release_waiting(now)

    def cancel(self, context) -> None:
        """Forget the requests made with ``context`` (their answers will be dropped)."""
        for key, request in list(self._in_flight.items()):
            if request.context is context:
                del self._in_flight[key]
        self._waiting = deque(r for r in self._waiting if r.context is not context)

    def pending(self) -> int:
        """Requests in flight or waiting for an identifier."""
        return len(self._in_flight) + len(self._waiting)

    # -- answers ----------------------------------------------------------------------------

    def receive(self, data: bytes, src: Endpoint, now: float) -> list:
        """A datagram from a RADIUS server: the :class:`RadiusAnswer` if it answers a
        request in flight and verifies, otherwise nothing (logged and dropped)."""
        if len(data) < 20:
            return self._drop(f"RADIUS datagram of {len(data)} octets from {src}, ignored")
        key = (Endpoint(normal_host(src.host), src.port), data[1])
        request = self._in_flight.get(key)
        if request is None:
            return self._drop(f"RADIUS message id {data[1]} from {src} answers no request in flight "
                              "(late or duplicate), ignored", level=logmod.CTRLMORE)
        try:
            packet = verify_response(data, request.sent, request.server.secret)
        except RadiusError as exc:
            return self._drop(f"received invalid RADIUS message from server '{request.server.name}' ({src}): "
                              f"{exc}, ignored")
        self.stats["answers"] += 1
        self.reachability.answered(request.server)
        self._count(request.server, "answers")
        log.log(logmod.CTRLMORE, "received RADIUS %s from server '%s' (id %d)", _code(packet.code),
                request.server.name, packet.identifier)
        answer = RadiusAnswer(request.context, packet, request.sent.authenticator, request.server.secret,
                              request.server.name)
        return [answer] + self._release(request, now)

    def _drop(self, message: str, level: int = logmod.CTRL) -> list:
        self.stats["dropped"] += 1
        log.log(level, "%s", message)
        return []

    # -- time -------------------------------------------------------------------------------

    def tick(self, now: float) -> list:
        """Retransmit what is due, fail over from silent servers, report timeouts."""
        out: list = []
        for request in [r for r in self._in_flight.values() if r.deadline <= now]:
            if (request.endpoint, request.identifier) not in self._in_flight:
                continue
            server = request.server
            if request.sends <= self._tries(server):
                timeout = self._timeout(server, request.sends)
                log.info("retransmit %d of RADIUS %s to server '%s' (timeout: %.1fs)", request.sends,
                         _code(request.sent.code), server.name, timeout)
                request.sends += 1
                request.deadline = now + timeout
                self.stats["retransmits"] += 1
                self._count(server, "retransmits")
                out.append(RadiusSend(request.data, request.endpoint))
                continue
            log.info("RADIUS %s timed out after %d retransmits: server '%s' (%s) is not responding",
                     _code(request.sent.code), request.sends - 1, server.name, request.endpoint)
            self.reachability.timed_out(server, now)
            self._count(server, "timeouts")
            self._in_flight.pop((request.endpoint, request.identifier), None)
            request.server = request.endpoint = request.sent = None
            request.identifier = -1
            out += self._start(request, now)
            out += self._release_waiting(now)
        return out

    def _release_waiting(self, now: float) -> list:
        out: list = []
        waiting, self._waiting = self._waiting, deque()
        for other in waiting:
            out += self._start(other, now)
        return out

    def next_timer(self) -> float | None:
        """When :meth:`tick` has work next (None when nothing is in flight)."""
        return min((r.deadline for r in self._in_flight.values()), default=None)

    # -- status -----------------------------------------------------------------------------

    def _count(self, server: RadiusServer, what: str) -> None:
        counters = self._server_stats.setdefault(_server_key(server), dict.fromkeys(SERVER_COUNTERS, 0))
        counters[what] += 1

    def server_status(self, now: float) -> list[dict]:
        """Each configured server as ``ikegate statusall`` shows it: name, address,
        auth_port, acct_port, preference, ``reachable`` (False while it is held down after
        a timeout), ``down_since`` (the clock value it was found unreachable, or None),
        ``pending`` (requests in flight to it) and its counters (:data:`SERVER_COUNTERS`:
        requests sent, retransmits, answers, timeouts)."""
        pending: dict[tuple, int] = {}
        for request in self._in_flight.values():
            if request.server is not None:
                key = _server_key(request.server)
                pending[key] = pending.get(key, 0) + 1
        out = []
        for server in self.servers:
            key = _server_key(server)
            down = self.reachability.is_down(server, now)
            out.append({
                "name": server.name, "address": server.address, "auth_port": server.auth_port,
                "acct_port": server.acct_port, "preference": server.preference, "reachable": not down,
                "down_since": self.reachability.since.get(key) if down else None,
                "pending": pending.get(key, 0),
                **self._server_stats.get(key, dict.fromkeys(SERVER_COUNTERS, 0)),
            })
        return out


def _server_key(server: RadiusServer) -> tuple:
    return (server.name, normal_host(server.address), server.auth_port, server.acct_port)


def _code(code: int) -> str:
    try:
        return Code(code).name.replace("_", "-").title().replace("Coa", "CoA")
    except ValueError:
        return str(code)
