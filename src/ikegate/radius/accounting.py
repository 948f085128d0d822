"""RADIUS accounting (RFC 2866), sans-IO: the engine's SA events in, Accounting-Requests out.

What strongSwan's eap-radius accounting does (eap_radius_accounting.c, 5.9.8), fed the
events the daemon sees:

* **Start** when the IKE SA is up with its CHILD SAs (strongSwan sends it with the
  IKE_AUTH response; here on the first :class:`~ikegate.ike.events.ChildSaUp` of an IKE
  SA announced by :class:`~ikegate.ike.events.IkeSaUp`), unless
  ``accounting_requires_vip`` and the peer has no virtual IP;
* **Interim-Update** every ``accounting_interval`` seconds (or the Acct-Interim-Interval
  of the Access-Accept, ``IkeSaUp.interim_interval``), counted from the last update;
* **Stop** when the IKE SA goes down, with ``IkeSaDown.terminate_cause`` (or a cause
  guessed from the reason) and Acct-Session-Time.

Interim and Stop carry Acct-Input/Output-Octets (+ -Gigawords above 4 GiB) and
-Packets: the sum over the IKE SA's CHILD SAs, those still installed (read from the
data plane) and those already gone (rekeyed or deleted: their last counters, read just
before they were removed).  Input is what the peer sent us.  Every record carries
Acct-Session-Id (``IkeSaUp.session_id``, the same across IKE rekeys; strongSwan's
``<start time>-<unique id>`` if the event has none), the Class attributes of the
Access-Accept, User-Name (EAP identity, else the IKE identity), NAS-Port-Type Virtual,
Service-Type Framed, NAS-Port (the IKE SA's unique id), NAS-Port-Id (the conn),
NAS-IP(v6)-Address, Called/Calling-Station-Id (``address[port]`` with
``station_id_with_port``) and Framed-IP(v6)-Address.  The RADIUS client adds the
server's NAS-Identifier.

The caller must hand :meth:`Accounting.event` a ChildSaDown *before* it removes the SA
from the data plane, so its final counters can still be read.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Callable

from ikegate import log as logmod
from ikegate.ike.events import ChildSaDown, ChildSaUp, IkeSaDown, IkeSaRekeyed, IkeSaUp
from ikegate.radius.packet import AcctStatusType, Attr, Code, Packet, TerminateCause

__all__ = ["AccountingRecord", "Accounting", "Usage", "cause_from_reason"]

log = logmod.get_logger("cfg")

NAS_PORT_TYPE_VIRTUAL = 5
SERVICE_TYPE_FRAMED = 2


@dataclass
class Usage:
    """Octets and packets each way (in: from the peer)."""

    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0

    def add(self, other: "Usage") -> None:
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.packets_in += other.packets_in
        self.packets_out += other.packets_out


@dataclass(frozen=True)
class AccountingRecord:
    """An Accounting-Request to send (through a RADIUS client, ``kind="acct"``) for the
    IKE SA ``unique_id`` (its current one; the session outlives IKE rekeys)."""

    unique_id: int
    status: AcctStatusType
    session_id: str
    packet: Packet


@dataclass(eq=False)
class _Session:
    up: IkeSaUp
    unique_id: int
    session_id: str
    created: float
    interval: int
    children: dict[int, int] = field(default_factory=dict)  # child unique id -> spi_in
    gone: Usage = field(default_factory=Usage)  # CHILD SAs already removed
    started: bool = False
    last_interim: float = 0.0
    next_interim: float | None = None
    cause: int | None = None


def cause_from_reason(reason: str) -> int:
    """An Acct-Terminate-Cause for an ``IkeSaDown`` reason, when the event has none."""
    text = reason.lower()
    if "not responding" in text:
        return TerminateCause.LOST_SERVICE  # strongSwan: ALERT_RETRANSMIT_SEND_TIMEOUT
    if "lifetime expired" in text or "session-timeout" in text:
        return TerminateCause.SESSION_TIMEOUT  # ALERT_IKE_SA_EXPIRED
    if "administrator" in text or "disconnect-request" in text or "secret was removed" in text:
        return TerminateCause.ADMIN_RESET
    if "shutting down" in text:
        return TerminateCause.ADMIN_REBOOT
    return TerminateCause.USER_REQUEST  # strongSwan's default


class Accounting:
    """Accounting sessions of the IKE SAs (sans-IO; see the module doc).

    ``counters(spi_in)`` returns the data plane's
    :class:`~ikegate.dataplane.interface.SaCounters` of a CHILD SA (None if unknown)."""

    def __init__(self, counters: Callable[[int], object], *, interval: int = 0, station_id_with_port: bool = True,
                 requires_vip: bool = False, session_prefix: int | None = None) -> None:
        self.counters = counters
        self.interval = interval
        self.station_id_with_port = station_id_with_port
        self.requires_vip = requires_vip
        self.prefix = int(time.time()) if session_prefix is None else session_prefix
        self.sessions: dict[int, _Session] = {}  # by the current IKE SA unique id
        #: False after a reload turned accounting off: sessions already accounted go on to
        #: their Stop (so the RADIUS server's records and leases stay right), no new ones
        self.new_sessions = True
        self._child_session: dict[int, _Session] = {}  # child unique id -> session

    @classmethod
    def from_settings(cls, settings, counters) -> "Accounting":
        """From :class:`~ikegate.radius.settings.RadiusSettings`."""
        return cls(counters, interval=settings.accounting_interval,
                   station_id_with_port=settings.station_id_with_port,
                   requires_vip=settings.accounting_requires_vip)

    def configure(self, settings, now: float) -> None:
        """New settings (``ikegate reload``): the interval, the station id form and the
        virtual IP requirement apply to new sessions and to the running ones, which keep
        their Acct-Session-Id; a running session's next Interim-Update comes one new
        interval after its last one (at once if that is past).  A session whose
        Access-Accept sent Acct-Interim-Interval keeps that interval, as at its start."""
        self.interval = settings.accounting_interval
        self.station_id_with_port = settings.station_id_with_port
        self.requires_vip = settings.accounting_requires_vip
        for session in self.sessions.values():
            if getattr(session.up, "interim_interval", None):
                continue
            session.interval = int(self.interval or 0)
            if not session.started:
                continue
            session.next_interim = (max(now, session.last_interim + session.interval)
                                    if session.interval else None)

    # -- events -----------------------------------------------------------------------------

    def event(self, item, now: float) -> list[AccountingRecord]:
        """Take one engine output; returns the Accounting-Requests it causes."""
        if isinstance(item, IkeSaUp):
            if not self.new_sessions:
                return []
            session_id = getattr(item, "session_id", "") or f"{self.prefix}-{item.unique_id}"
            interval = getattr(item, "interim_interval", None) or self.interval
            self.sessions[item.unique_id] = _Session(item, item.unique_id, session_id, now, int(interval or 0))
            return []
        if isinstance(item, ChildSaUp):
            return self._child_up(item, now)
        if isinstance(item, ChildSaDown):
            self._child_down(item)
            return []
        if isinstance(item, IkeSaRekeyed):
            session = self.sessions.pop(item.old_unique_id, None)
            if session is not None:
                session.unique_id = item.new_unique_id
                self.sessions[item.new_unique_id] = session
            return []
        if isinstance(item, IkeSaDown):
            return self._ike_down(item, now)
        return []

    def _child_up(self, item: ChildSaUp, now: float) -> list[AccountingRecord]:
        info = item.info
        session = self.sessions.get(info.ike_unique_id)
        if session is None and item.rekey_of is not None:
            session = self._child_session.get(item.rekey_of.child_unique_id)
        if session is None:
            return []
        session.children[info.child_unique_id] = info.spi_in
        self._child_session[info.child_unique_id] = session
        if session.started:
            return []
        if self.requires_vip and not session.up.virtual_ips:
            return []
        session.started = True
        session.last_interim = now
        if session.interval:
            session.next_interim = now + session.interval
            log.info("scheduling RADIUS Interim-Updates every %ds", session.interval)
        return [self._record(session, AcctStatusType.START, now)]

    def _child_down(self, item: ChildSaDown) -> None:
        session = self._child_session.pop(item.info.child_unique_id, None)
        if session is None:
            return
        spi_in = session.children.pop(item.info.child_unique_id, None)
        if spi_in is not None:
            session.gone.add(self._read(spi_in))

    def _ike_down(self, item: IkeSaDown, now: float) -> list[AccountingRecord]:
        session = self.sessions.pop(item.unique_id, None)
        if session is None:
            return []
        for child_id, spi_in in list(session.children.items()):
            session.gone.add(self._read(spi_in))
            self._child_session.pop(child_id, None)
        session.children.clear()
        if not session.started:
            return []
        cause = session.cause
        if cause is None:
            cause = getattr(item, "terminate_cause", None) or cause_from_reason(item.reason)
        return [self._record(session, AcctStatusType.STOP, now, cause=cause)]

    def set_cause(self, unique_id: int, cause: int) -> None:
        """The Acct-Terminate-Cause of the coming Stop of this IKE SA (e.g. Admin-Reset
        before a Disconnect-Request deletes it), whatever its IkeSaDown says."""
        session = self.sessions.get(unique_id)
        if session is not None:
            session.cause = int(cause)

    # -- time -------------------------------------------------------------------------------

    def tick(self, now: float) -> list[AccountingRecord]:
        """Interim-Updates that are due."""
        out = []
        for session in list(self.sessions.values()):
            if session.next_interim is not None and session.next_interim <= now:
                session.last_interim = now
                session.next_interim = now + session.interval
                out.append(self._record(session, AcctStatusType.INTERIM_UPDATE, now))
        return out

    def next_timer(self) -> float | None:
        return min((s.next_interim for s in self.sessions.values() if s.next_interim is not None), default=None)

    def session_of(self, unique_id: int) -> str | None:
        """The Acct-Session-Id of an IKE SA (None if it has no session)."""
        session = self.sessions.get(unique_id)
        return session.session_id if session is not None else None

    # -- records ----------------------------------------------------------------------------

    def _read(self, spi_in: int) -> Usage:
        counters = self.counters(spi_in)
        if counters is None:
            return Usage()
        return Usage(counters.bytes_in, counters.bytes_out, counters.packets_in, counters.packets_out)

    def _usage(self, session: _Session) -> Usage:
        total = Usage()
        total.add(session.gone)
        for spi_in in session.children.values():
            total.add(self._read(spi_in))
        return total

    def _station(self, endpoint) -> str:
        return f"{endpoint.host}[{endpoint.port}]" if self.station_id_with_port else endpoint.host

    def _record(self, session: _Session, status: AcctStatusType, now: float, *, cause: int | None = None) -> AccountingRecord:
        up = session.up
        packet = Packet(Code.ACCOUNTING_REQUEST)
        packet.add(Attr.ACCT_STATUS_TYPE, int(status))
        packet.add(Attr.ACCT_SESSION_ID, session.session_id)
        for value in getattr(up, "radius_class", ()) or ():
            packet.add(Attr.CLASS, value)
        packet.add(Attr.NAS_PORT_TYPE, NAS_PORT_TYPE_VIRTUAL)
        packet.add(Attr.SERVICE_TYPE, SERVICE_TYPE_FRAMED)
        packet.add(Attr.NAS_PORT, session.unique_id)
        packet.add(Attr.NAS_PORT_ID, up.conn[:253])
        try:
            local = ipaddress.ip_address(up.local.host)
        except ValueError:
            local = None
        if isinstance(local, ipaddress.IPv4Address):
            packet.add(Attr.NAS_IP_ADDRESS, local)
        elif isinstance(local, ipaddress.IPv6Address):
            packet.add(Attr.NAS_IPV6_ADDRESS, local)
        packet.add(Attr.CALLED_STATION_ID, self._station(up.local))
        packet.add(Attr.CALLING_STATION_ID, self._station(up.remote))
        user = up.eap_id or up.remote_id
        if user:
            packet.add(Attr.USER_NAME, user.encode("utf-8")[:253])
        for vip in up.virtual_ips:
            try:
                address = ipaddress.ip_address(str(vip))
            except ValueError:
                continue
            if isinstance(address, ipaddress.IPv4Address):
                packet.add(Attr.FRAMED_IP_ADDRESS, address)
            else:
                packet.add(Attr.FRAMED_IPV6_ADDRESS, address)
        if status != AcctStatusType.START:
            usage = self._usage(session)
            _add_octets(packet, Attr.ACCT_OUTPUT_OCTETS, Attr.ACCT_OUTPUT_GIGAWORDS, usage.bytes_out)
            packet.add(Attr.ACCT_OUTPUT_PACKETS, usage.packets_out & 0xFFFFFFFF)
            _add_octets(packet, Attr.ACCT_INPUT_OCTETS, Attr.ACCT_INPUT_GIGAWORDS, usage.bytes_in)
            packet.add(Attr.ACCT_INPUT_PACKETS, usage.packets_in & 0xFFFFFFFF)
            packet.add(Attr.ACCT_SESSION_TIME, max(0, int(now - session.created)))
        if status == AcctStatusType.STOP:
            packet.add(Attr.ACCT_TERMINATE_CAUSE, int(cause if cause is not None else TerminateCause.USER_REQUEST))
        log.log(logmod.CTRLMORE, "RADIUS accounting %s for IKE_SA %d (session %s)", status.name,
                session.unique_id, session.session_id)
        return AccountingRecord(session.unique_id, status, session.session_id, packet)


def _add_octets(packet: Packet, attr: int, giga_attr: int, value: int) -> None:
    """Octets modulo 2^32, and the 2^32 multiples as Gigawords when there are any (RFC 2869 5.1)."""
    packet.add(attr, value & 0xFFFFFFFF)
    if value >> 32:
        packet.add(giga_attr, (value >> 32) & 0xFFFFFFFF)
