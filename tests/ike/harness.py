"""The gateway, a fake clock and the clients, wired together in memory.

:class:`Network` owns a sans-IO :class:`~ikegate.ike.gateway.Gateway` and the time.
Datagrams a client sends go straight into ``Gateway.receive``; what the gateway emits
is routed by destination: ``Send`` datagrams into a mailbox per client endpoint, events
(``IkeSaUp``, ``ChildSaUp``, ...) into :attr:`Network.events`.  Time only moves when a
test calls :meth:`Network.advance`, which fires the gateway's timers in order, as the
daemon's event loop would.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import count

from ikegate.ike.events import Endpoint, Send
from ikegate.ike.gateway import Gateway

from .initiator import WINDOWS10, Initiator, Profile, Received

GATEWAY_V4 = Endpoint("203.0.113.1", 500)
GATEWAY_V6 = Endpoint("2001:db8:ffff::1", 500)
START = 1000.0


class Network:
    def __init__(self, runtime, users: dict[str, str], *, trusted=(), now: float = START) -> None:
        self.runtime = runtime
        self.users = dict(users)
        self.trusted = list(trusted)  # the clients' CA store (the seed's root)
        self.now = now
        self.gateway = Gateway(runtime, now=now)
        self.events: list = []
        self.sent: list[Send] = []  # every datagram the gateway sent, in order
        self.mailbox: dict[Endpoint, list[bytes]] = defaultdict(list)
        self._hosts = count(10)

    # -- clients -----------------------------------------------------------------------------

    def client(self, profile: Profile = WINDOWS10, *, user: str = "user1", password: str | None = None,
               host: str | None = None, port: int = 500, server: Endpoint = GATEWAY_V4, **changes) -> Initiator:
        """A new initiator at its own address (198.51.100.x or 2001:db8:1::x by the
        server's family); ``changes`` modify the profile."""
        if host is None:
            n = next(self._hosts)
            host = f"198.51.100.{n}" if ":" not in server.host else f"2001:db8:1::{n:x}"
        if changes:
            profile = profile.with_(**changes)
        password = self.users.get(user, "no such user") if password is None else password
        return Initiator(profile, local=Endpoint(host, port), remote=server, user=user, password=password,
                         trusted=self.trusted)

    def transport(self, client: Initiator):
        return lambda datagrams: self.send(client, datagrams)

    def connect(self, client: Initiator) -> Received | None:
        return client.connect(self.transport(client))

    def exchange(self, client: Initiator, datagrams: list) -> Received | None:
        return client.exchange(self.transport(client), datagrams)

    # -- moving datagrams and time ----------------------------------------------------------------

    def send(self, client: Initiator, datagrams: list, *, src: Endpoint | None = None) -> list[bytes]:
        """Deliver datagrams from ``client`` and return what the gateway sent back to it now."""
        for data in datagrams:
            self._route(self.gateway.receive(data, src or client.local, client.remote, self.now))
        return self.collect(client)

    def collect(self, client: Initiator) -> list[bytes]:
        """The datagrams waiting for ``client``'s IKE SA (and forget them); two clients
        may share an address and port (a reauthentication, a NAT)."""
        waiting = self.mailbox.get(client.local, [])
        mine = [d for d in waiting if client.owns(d)]
        self.mailbox[client.local] = [d for d in waiting if not client.owns(d)]
        return mine

    def deliver_pending(self, client: Initiator) -> list[Received]:
        """Hand the waiting datagrams to ``client``; the complete messages it decoded."""
        decoded = [client.receive(d) for d in self.collect(client)]
        return [r for r in decoded if r is not None]

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer that falls due on the way, in order."""
        target = self.now + seconds
        for _ in range(100_000):
            due = self.gateway.next_timer()
            if due is None or due > target:
                break
            self.now = max(self.now, due)
            self._route(self.gateway.tick(self.now))
        else:  # pragma: no cover - a timer that never goes away
            raise AssertionError("gateway timers keep firing without the clock moving")
        self.now = target
        self._route(self.gateway.tick(self.now))

    def shutdown(self) -> None:
        """The daemon's SIGTERM: ``Gateway.shutdown`` and its datagrams and events routed."""
        self._route(self.gateway.shutdown(self.now))

    def _route(self, outputs: list) -> None:
        for item in outputs:
            if isinstance(item, Send):
                self.sent.append(item)
                self.mailbox[item.dst].append(item.data)
            else:
                self.events.append(item)

    # -- looking at the gateway ------------------------------------------------------------------

    def events_of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def sa_of(self, client: Initiator, ike=None):
        """The gateway's IKE SA for ``client``'s IKE SA in use (or ``ike``, one of its
        :class:`IkeSaState`), by SPIs, or None."""
        ike = ike or client.ike
        ours = ike.spi_r if ike.initiator else ike.spi_i
        sa = self.gateway.sas.get(ours)
        return sa if sa is not None and (sa.spi_i, sa.spi_r) == (ike.spi_i, ike.spi_r) else None

    def status(self) -> list[dict]:
        return self.gateway.status(self.now)
