"""Invariants of the sans-IO gateway, checked after every call the fuzzers make.

:class:`CheckedGateway` is a :class:`~ikegate.ike.gateway.Gateway` whose ``receive`` and
``tick`` fail the test (:class:`EngineFailure`) when

* any exception escapes (a malformed datagram must be dropped or answered with a
  notify, never raise: the daemon would lose the datagram *and* the caller's loop);
* an output is not a documented one: a :class:`~ikegate.ike.events.Send` whose bytes
  decode (or the one-byte NAT keepalive), or one of the SA events of
  :mod:`ikegate.ike.events`;
* the tables stop being consistent (:func:`check_consistency`) or exceed the bounds a
  test sets (``max_sas``; timers, queues, caches and counters per SA), i.e. memory that
  grows with what a peer sends;
* the events stop making sense to their consumers (:class:`EventLedger`): a Down of what
  is not up, a CHILD SA the ESP layer cannot build, or one whose selectors reach beyond
  the client's virtual IPs.

:func:`check_clean_shutdown` is the leak check at the end of a run: after
``Gateway.shutdown`` every table is empty, no timer is left and no address lease is
online.

A strict log handler (:func:`strict_logging`) formats every record the engine emits, at
every level, so a log call whose arguments do not fit its format fails too instead of
being printed as "--- Logging error ---".
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import traceback
from collections import Counter

from ikegate.esp import EspSa
from ikegate.ike.events import (
    ChildSaDown,
    ChildSaInfo,
    ChildSaUp,
    ChildSaUpdated,
    Endpoint,
    IkeSaDown,
    IkeSaRekeyed,
    IkeSaUp,
    Send,
)
from ikegate.ike.gateway import Gateway
from ikegate.ike.sa import CONNECTING, DEAD, DELETING, ESTABLISHED, REKEYED
from ikegate.log import CharonFormatter
from ikegate.wire.codec import DecodeError, decode_message

__all__ = [
    "EVENTS",
    "CheckedGateway",
    "EventLedger",
    "EngineFailure",
    "KNOWN_BUGS",
    "KnownBug",
    "check_clean_shutdown",
    "check_consistency",
    "check_outputs",
    "strict_logging",
]

EVENTS = (IkeSaUp, IkeSaDown, ChildSaUp, ChildSaDown, IkeSaRekeyed, ChildSaUpdated)
ALL_STATES = (CONNECTING, ESTABLISHED, REKEYED, DELETING, DEAD)

#: Bounds on per-SA state that must not grow with what a peer sends.
MAX_QUEUE = 16  # our requests waiting behind the outstanding one
MAX_RESPONSE_CACHE = 100_000  # bytes of the cached last response
MAX_TIMERS_PER_SA = 16  # heap entries (live or stale) per SA, plus a constant
MAX_STATS_KEYS = 32
MAX_DROP_LOG_KINDS = 16


class EngineFailure(AssertionError):
    """The gateway broke one of its invariants (the fuzzers' only failure)."""


class KnownBug(Exception):
    """An exception escaped the gateway, or an invariant broke, as listed in
    :data:`KNOWN_BUGS`: a bug already reported, with a strict-xfail reproducer in ``test_regressions.py``.  The
    fuzzers end that run quietly (its state is not trusted any more) and go on, so one
    open bug does not hide the others.  Remove the entry once the bug is fixed."""

    def __init__(self, key: tuple[str, str, str], detail: str = "") -> None:
        super().__init__(f"known bug {key}" + (f": {detail}" if detail else ""))
        self.key = key


#: Open bugs in code tests/fuzz may not change: (exception type, file, function) of an
#: exception escaping the gateway, or ("invariant", where, what) of a broken invariant.
KNOWN_BUGS: set[tuple[str, str, str]] = set()  # none open


def _known(exc: BaseException) -> tuple[str, str, str] | None:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    last = frames[-1]
    key = (type(exc).__name__, last.filename.rsplit("/", 1)[-1], last.name)
    return key if key in KNOWN_BUGS else None


class EventLedger:
    """What the gateway's events have installed so far, as the data plane, the pools and
    updown see it: CHILD SAs by inbound SPI, IKE SAs by unique id.  Every event must fit
    (no Down of what is not up, no second Up, no CHILD SA of an IKE SA that is not up),
    every CHILD SA must be installable by the ESP layer (``EspSa`` accepts its keys),
    and after ``shutdown`` nothing may be left up."""

    def __init__(self) -> None:
        self.children: dict[int, ChildSaInfo] = {}
        self.ikes: set[int] = set()

    def feed(self, item) -> None:
        if isinstance(item, IkeSaUp):
            if item.unique_id in self.ikes:
                raise EngineFailure(f"IkeSaUp for IKE SA {item.unique_id}, which is up already")
            self.ikes.add(item.unique_id)
        elif isinstance(item, IkeSaDown):
            if item.unique_id not in self.ikes:
                raise EngineFailure(f"IkeSaDown for IKE SA {item.unique_id}, which is not up")
            self.ikes.discard(item.unique_id)
        elif isinstance(item, IkeSaRekeyed):
            if item.old_unique_id not in self.ikes or item.new_unique_id in self.ikes:
                raise EngineFailure(f"IkeSaRekeyed {item.old_unique_id} -> {item.new_unique_id} does not fit {self.ikes}")
            self.ikes.discard(item.old_unique_id)
            self.ikes.add(item.new_unique_id)
        elif isinstance(item, ChildSaUp):
            info = item.info
            if info.spi_in in self.children:
                raise EngineFailure(f"ChildSaUp for SPI {info.spi_in:08x}, installed already")
            if info.ike_unique_id not in self.ikes:
                raise EngineFailure(f"ChildSaUp of IKE SA {info.ike_unique_id}, which is not up")
            if item.rekey_of is not None and item.rekey_of.spi_in not in self.children:
                raise EngineFailure(f"ChildSaUp replaces SPI {item.rekey_of.spi_in:08x}, which is not installed")
            _installable(info)
            check_selectors(info, rekey=item.rekey_of is not None)
            self.children[info.spi_in] = info
        elif isinstance(item, ChildSaDown):
            if self.children.pop(item.info.spi_in, None) is None:
                raise EngineFailure(f"ChildSaDown for SPI {item.info.spi_in:08x}, which is not installed")
        elif isinstance(item, ChildSaUpdated):
            if item.info.spi_in not in self.children:
                raise EngineFailure(f"ChildSaUpdated for SPI {item.info.spi_in:08x}, which is not installed")

    def check_empty(self) -> None:
        if self.children or self.ikes:
            raise EngineFailure(f"still up after shutdown: CHILD SAs {[f'{s:08x}' for s in self.children]}, "
                                f"IKE SAs {sorted(self.ikes)}")


def _installable(info: ChildSaInfo) -> None:
    """The ESP layer accepts both directions of the CHILD SA (as the data plane builds them)."""
    for spi, encr_key, integ_key in ((info.spi_in, info.key_in_encr, info.key_in_integ),
                                     (info.spi_out, info.key_out_encr, info.key_out_integ)):
        try:
            EspSa(spi, info.encr_id, info.encr_key_bits, encr_key, info.integ_id or None, integ_key or None,
                  esn=info.esn)
        except ValueError as exc:
            raise EngineFailure(f"CHILD SA {info.spi_in:08x} cannot be installed: {exc}") from exc


def check_selectors(info: ChildSaInfo, *, rekey: bool = False) -> None:
    """A road warrior's CHILD SA covers its own virtual IPs on its side, nothing more
    (the seed's ``rightsourceip``: remote selectors are ``%dynamic``); else it could
    draw other clients' traffic into its tunnel."""
    if not info.virtual_ips:
        return
    vips = [int(ipaddress.ip_address(v)) for v in info.virtual_ips]
    for sel in info.remote_ts:
        if not any(sel.start == v == sel.end for v in vips):
            key = ("invariant", "ChildSaUp of a rekey", "remote_ts beyond the virtual IPs")
            broken(key if rekey else ("invariant", "ChildSaUp", "remote_ts beyond the virtual IPs"),
                   f"CHILD SA {info.spi_in:08x} has remote selector {sel!r} beyond the peer's virtual IPs "
                   f"{info.virtual_ips}")


def broken(key: tuple[str, str, str], message: str) -> None:
    """An invariant does not hold: EngineFailure, or KnownBug for a reported one."""
    if key in KNOWN_BUGS:
        raise KnownBug(key, message)
    raise EngineFailure(message)


def check_outputs(outputs: list) -> None:
    """Only documented outputs: Sends of datagrams that decode, keepalives, SA events."""
    if not isinstance(outputs, list):
        raise EngineFailure(f"output is a {type(outputs).__name__}, not a list")
    for item in outputs:
        if isinstance(item, Send):
            if not isinstance(item.data, bytes) or not isinstance(item.src, Endpoint) or not isinstance(item.dst, Endpoint):
                raise EngineFailure(f"malformed Send {item!r}")
            if not item.marker:
                if item.data != b"\xff":
                    raise EngineFailure(f"Send without non-ESP marker that is not a keepalive: {item.data[:40].hex()}")
                continue
            if len(item.data) > 0xFFFF - 8:
                raise EngineFailure(f"a {len(item.data)}-byte datagram does not fit UDP")
            try:
                decode_message(item.data)
            except DecodeError as exc:
                raise EngineFailure(f"the gateway sent a datagram that does not decode: {exc}") from exc
        elif not isinstance(item, EVENTS):
            raise EngineFailure(f"undocumented output {item!r}")


def check_consistency(gw: Gateway, now: float, *, max_sas: int | None = None, status: bool = True) -> None:
    """The gateway's tables agree with each other and with the SAs, and stay bounded;
    with ``status`` also what the control socket shows works and is JSON."""
    live = list(gw.sas.values())
    for spi, sa in gw.sas.items():
        if sa.my_spi != spi:
            raise EngineFailure(f"IKE SA {sa.unique_id} is filed under {spi.hex()}, its SPI is {sa.my_spi.hex()}")
        if sa.state == DEAD:
            raise EngineFailure(f"dead IKE SA {sa.unique_id} still in the SA table")
        if sa.gw is not gw:
            raise EngineFailure(f"IKE SA {sa.unique_id} belongs to another gateway")
        if sa.queue and len(sa.queue) > MAX_QUEUE:
            raise EngineFailure(f"IKE SA {sa.unique_id} queued {len(sa.queue)} requests")
        if sa.last_response is not None and sum(map(len, sa.last_response)) > MAX_RESPONSE_CACHE:
            raise EngineFailure(f"IKE SA {sa.unique_id} caches a response of {sum(map(len, sa.last_response))} bytes")
        r = sa.reassembly
        if r is not None and (r.size > gw.rt.settings.max_packet or len(r.pieces) > gw.rt.settings.max_fragments):
            raise EngineFailure(f"IKE SA {sa.unique_id} holds {len(r.pieces)} fragments of {r.size} bytes")
        for child_spi, child in sa.children.items():
            if child.spi_in != child_spi:
                raise EngineFailure(f"CHILD SA {child.unique_id} filed under {child_spi:08x}")
            if gw.children_by_spi.get(child_spi) is not child or gw.sa_of_child.get(child_spi) is not sa:
                raise EngineFailure(f"CHILD SA {child_spi:08x} of IKE SA {sa.unique_id} not registered with it")
    ids = [sa.unique_id for sa in live]
    if len(set(ids)) != len(ids):
        raise EngineFailure(f"one IKE SA filed twice: {sorted(ids)}")
    if max_sas is not None and len(live) > max_sas:
        raise EngineFailure(f"{len(live)} IKE SAs, more than the {max_sas} this run can make")
    # the IKE_SA_INIT index and the half-open set point at live SAs
    live_ids = {id(sa) for sa in live}
    for key, sa in gw.init_index.items():
        if id(sa) not in live_ids or sa.init_key != key:
            raise EngineFailure(f"IKE_SA_INIT index entry {key} points at a removed SA")
    for sa in gw.half_open:
        if id(sa) not in live_ids or sa.state != CONNECTING:
            raise EngineFailure(f"half-open set holds IKE SA {sa.unique_id} in state {sa.state}")
    expected = Counter(sa.init_key[1] if sa.init_key else sa.remote.host for sa in gw.half_open)
    if Counter(gw.half_open_by_ip) != expected or any(v <= 0 for v in gw.half_open_by_ip.values()):
        raise EngineFailure(f"half-open counts {dict(gw.half_open_by_ip)} but half-open SAs {dict(expected)}")
    counted = Counter(sa.counted_ip for sa in live if sa.counted_ip is not None)
    if Counter(gw.sas_by_ip) != counted or any(v <= 0 for v in gw.sas_by_ip.values()):
        raise EngineFailure(f"per-address counts {dict(gw.sas_by_ip)} but SAs {dict(counted)}")
    # CHILD SA registry: every entry an installed child of a live SA, or a reservation
    rekeying = {task.spi_in for sa in live for task in sa.child_rekeys}
    for spi, child in gw.children_by_spi.items():
        if child is None:
            if spi not in rekeying:
                raise EngineFailure(f"CHILD SPI {spi:08x} reserved by nobody")
            continue
        owner = gw.sa_of_child.get(spi)
        if owner is None or id(owner) not in live_ids or owner.children.get(spi) is not child:
            raise EngineFailure(f"CHILD SA {spi:08x} registered without a live IKE SA holding it")
    if set(gw.sa_of_child) - {spi for spi, c in gw.children_by_spi.items() if c is not None}:
        raise EngineFailure("sa_of_child has entries children_by_spi lacks")
    # address leases: one online reference per virtual IP an IKE SA holds, no more
    refs = sum(sum(getattr(pool, "_online_refs", {}).values()) for pool in gw.rt.pools)
    held = sum(len(sa.vips) for sa in live)
    if refs != held:
        raise EngineFailure(f"{refs} online lease references, but the IKE SAs hold {held} virtual IPs")
    rekey_spis = {sa.ike_rekey.spi for sa in live if sa.ike_rekey is not None}
    if gw.reserved_spis - rekey_spis:
        raise EngineFailure(f"reserved IKE SPIs nobody uses: {[s.hex() for s in gw.reserved_spis - rekey_spis]}")
    # memory that must not grow with garbage
    if len(gw._timers) > MAX_TIMERS_PER_SA * (len(live) + 1) + 64:
        raise EngineFailure(f"{len(gw._timers)} timer entries for {len(live)} IKE SAs")
    if len(gw.stats) > MAX_STATS_KEYS or len(gw._drop_log) > MAX_DROP_LOG_KINDS:
        raise EngineFailure(f"counters grow: {len(gw.stats)} stats, {len(gw._drop_log)} drop-log kinds")
    if status:
        json.dumps(gw.status(now, states=ALL_STATES))


def check_clean_shutdown(gw: Gateway, now: float, pools=None) -> list:
    """``Gateway.shutdown`` leaves nothing behind; returns its (checked) outputs."""
    out = gw.shutdown(now)
    check_outputs(out)
    leftovers = {
        "sas": len(gw.sas),
        "half_open": len(gw.half_open),
        "half_open_by_ip": len(gw.half_open_by_ip),
        "init_index": len(gw.init_index),
        "children_by_spi": len(gw.children_by_spi),
        "sa_of_child": len(gw.sa_of_child),
        "reserved_spis": len(gw.reserved_spis),
        "sas_by_ip": len(gw.sas_by_ip),
    }
    if any(leftovers.values()):
        raise EngineFailure(f"left after shutdown: { {k: v for k, v in leftovers.items() if v} }")
    if gw.next_timer() is not None:
        raise EngineFailure("a timer is left after shutdown")
    for pool in pools or ():
        if pool.online():
            raise EngineFailure(f"{pool.online()} leases of pool {pool} still online after shutdown")
    if isinstance(gw, CheckedGateway):
        gw.ledger.check_empty()
    return out


class CheckedGateway(Gateway):
    """A Gateway whose every ``receive``/``tick`` is checked (see the module docstring).

    ``max_sas`` bounds the IKE SA table (the test knows how many SAs it can have made)."""

    max_sas: int | None = None
    #: ``status()`` (the costly part of the checks) is rendered every this many calls
    status_every: int = 8
    _calls: int = 0
    _ledger: EventLedger | None = None

    @property
    def ledger(self) -> EventLedger:
        if self._ledger is None:
            self._ledger = EventLedger()
        return self._ledger

    def shutdown(self, now: float) -> list:
        out = super().shutdown(now)
        for item in out:
            self.ledger.feed(item)
        return out

    def receive(self, data: bytes, src: Endpoint, dst: Endpoint, now: float) -> list:
        try:
            out = super().receive(data, src, dst, now)
        except Exception as exc:
            if _known(exc):
                raise KnownBug(_known(exc), str(exc)) from exc
            raise EngineFailure(f"Gateway.receive raised {type(exc).__name__}: {exc}") from exc
        self._check(out, now)
        return out

    def tick(self, now: float) -> list:
        try:
            out = super().tick(now)
        except Exception as exc:
            if _known(exc):
                raise KnownBug(_known(exc), str(exc)) from exc
            raise EngineFailure(f"Gateway.tick raised {type(exc).__name__}: {exc}") from exc
        self._check(out, now)
        return out

    def _check(self, out: list, now: float) -> None:
        check_outputs(out)
        for item in out:
            self.ledger.feed(item)
        self._calls += 1
        check_consistency(self, now, max_sas=self.max_sas, status=self._calls % self.status_every == 0)


class _StrictHandler(logging.Handler):
    """Formats every record; a record that cannot be formatted raises at the log call."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.setFormatter(CharonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)  # no try/handleError(): a bad record raises at the log call


@contextlib.contextmanager
def strict_logging():
    """Format every ``ikegate`` log record at every level while the block runs."""
    logger = logging.getLogger("ikegate")
    handler = _StrictHandler()
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(1)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
