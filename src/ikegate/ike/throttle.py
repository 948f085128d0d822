"""What a flood may cost the gateway beyond COOKIEs: failed logins held off per source,
and log lines limited per IKE SA.

COOKIEs (RFC 7296 2.6), ``block_threshold`` and the half-open and IKE SA limits
(:mod:`ikegate.ike.gateway`) bound what forged IKE_SA_INITs cost: while COOKIEs are
required, a header, two payload headers and a hash per datagram, no key exchange, no
state.  ESP for unknown SPIs costs a table lookup in the data plane's inbound worker
(:mod:`ikegate.dataplane.workers`), never the IKE loop.  This module holds the two
defences against peers that get further than that.

Failed logins (:class:`AuthThrottle`)
-------------------------------------
Whoever guesses passwords must get through IKE_SA_INIT to IKE_AUTH, so from an address
that receives our answers: failures can be pinned on their source, and spoofing cannot
get someone else's address held off.  The rules, fail2ban's (``maxretry``/``findtime``/
``bantime``) applied to IKE, set in strongswan.conf (ikegate's own settings)::

    charon {
        auth_failure_limit = 10    # failures from one source within the window ...
        auth_failure_window = 5m
        auth_failure_block = 5m    # ... hold it off this long (limit 0: never)
    }

* A *failure* is a failed credential check: each wrong password (an EAP-MSCHAPv2
  conversation allows three, each answer to a wrong one held back 2 s:
  :mod:`ikegate.eap.mschapv2`; an unknown user counts the same), an EAP conversation
  that failed before any password was wrong (an EAP identity the conn does not
  accept, an EAP-Nak), a final AUTH that does not match the EAP MSK, a wrong or unknown
  pre-shared key.  A client that gives up after a wrong password (strongSwan's sends
  AUTHENTICATION_FAILED, Windows an MS-CHAPv2 Failure-Response) has made one failure;
  one that tries three passwords, three.
* ``charon.auth_failure_limit`` failures (default 10) from one source within
  ``charon.auth_failure_window`` (default 300 s) *hold it off* for
  ``charon.auth_failure_block`` (default 300 s; both durations take ``s``/``m``/``h``):
  its new IKE_SA_INITs are dropped without an answer, before any key exchange (as
  ``block_threshold`` drops), and its IKE SAs already past IKE_SA_INIT get
  AUTHENTICATION_FAILED at their next IKE_AUTH request, without a signature of ours
  and without their EAP response being checked.  When the hold-off ends, the source
  starts again from zero.  ``auth_failure_limit = 0`` turns all this off.
* A *source* is an IPv4 address, or the /64 of an IPv6 address (what one customer or
  host usually gets: counting single IPv6 addresses would let it rotate through them).
* Not affected: other sources (the same user connects from anywhere else, so a guesser
  can lock out nobody but his own address), IKE SAs that are already established, also
  those from a held-off source (rekeys, DPD, their traffic), and nothing is remembered
  per user.  The price: users behind the same NAT as a guesser share his hold-off;
  raise the limit where many users share one public address.
* Logged: one line when a hold-off starts (source, failures, the identity tried last,
  duration), at most ``LOG_BURST`` such lines in a row and then one per
  ``LOG_INTERVAL`` seconds with the count of those not logged; the dropped
  IKE_SA_INITs through the gateway's rate-limited drop log.  Counted in the gateway's
  stats (``ikegate statusall --json``, "gateway_stats"): ``auth_failures``,
  ``auth_holdoffs`` (hold-offs started), ``auth_blocked`` (IKE_SA_INITs dropped) and
  ``auth_refused`` (IKE_AUTH requests refused).
* Memory: ``MAX_SOURCES`` sources at most, each recorded only after an IKE_SA_INIT
  round trip and an IKE_AUTH; a full table forgets its oldest entry.  Entries whose failures are out
  of the window and whose hold-off is over are swept every ``PRUNE_INTERVAL`` seconds.

Log lines per IKE SA (:class:`LimitedSaLogger`)
-----------------------------------------------
An IKE SA logs each datagram it ignores (a failed integrity check, an unexpected message
ID, a fragment it cannot take).  Whoever knows its SPIs, as the flooder knows those of
its own half-open SA, can send it thousands a second; the log must not take them all.
Each message format of one SA gets a token bucket: ``SA_LOG_BURST`` lines, then one per
``SA_LOG_INTERVAL`` seconds, and the next line logged of that format says how many went
unlogged.  An SA that behaves never comes near it: a handshake logs each of its ~25
formats a few times at most.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, deque
from dataclasses import dataclass, field

from ikegate.eap.mschapv2 import printable
from ikegate.log import SaLogger, get_logger

log = get_logger("ike")

MAX_SOURCES = 16384  # sources tracked by AuthThrottle
PRUNE_INTERVAL = 60.0  # seconds between sweeps of AuthThrottle's table
LOG_BURST, LOG_INTERVAL = 20, 1.0  # hold-off lines: a burst, then one per interval
SA_LOG_BURST, SA_LOG_INTERVAL = 20, 1.0  # per IKE SA and message format
SA_LOG_KEEP = 8  # buckets an SA keeps before it forgets those back at full burst
SA_LOG_MAX = 64  # buckets an SA may have at all


class LogBucket:
    """A token bucket for log lines: ``burst`` lines at once, then one per ``interval``
    seconds; it counts the lines it held back."""

    __slots__ = ("burst", "interval", "tokens", "last", "hidden")

    def __init__(self, burst: int, interval: float, now: float) -> None:
        self.burst, self.interval = burst, interval
        self.tokens, self.last, self.hidden = float(burst), now, 0

    def take(self, now: float) -> int | None:
        """None: do not log this line (it is counted); else log it, together with the
        number of lines held back since the last one logged."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) / self.interval)
        self.last = now
        if self.tokens < 1:
            self.hidden += 1
            return None
        self.tokens -= 1
        hidden, self.hidden = self.hidden, 0
        return hidden

    def full(self, now: float) -> bool:
        """Back at a full burst with nothing held back: as good as a new bucket."""
        return not self.hidden and self.tokens + (now - self.last) / self.interval >= self.burst


# ---------------------------------------------------------------------------------- failed logins


@dataclass(slots=True)
class _Source:
    failures: deque = field(default_factory=deque)  # times of the failures in the window
    held_until: float = 0.0
    last: float = 0.0  # the last failure


class AuthThrottle:
    """Failed client authentications per source, and the hold-offs they earn (see the
    module docstring).  Sans-IO: every call takes the time; ``settings`` is a
    :class:`~ikegate.ike.runtime.Settings` (``auth_failure_limit``, ``_window``,
    ``_block``); ``stats`` the gateway's counters."""

    def __init__(self, settings, stats: Counter | None = None, *, max_sources: int = MAX_SOURCES) -> None:
        self.stats = stats if stats is not None else Counter()
        self.max_sources = max_sources
        self._sources: dict[str, _Source] = {}
        self._pruned = float("-inf")
        self._log: LogBucket | None = None
        self.configure(settings)

    def configure(self, settings) -> None:
        """Take (new) thresholds, as on a reload; the failures recorded so far stay."""
        self.limit = max(0, int(settings.auth_failure_limit))
        self.window = max(0.0, float(settings.auth_failure_window))
        self.block = max(0.0, float(settings.auth_failure_block))

    def __len__(self) -> int:
        return len(self._sources)

    @staticmethod
    def source_of(host: str) -> str:
        """The key failures count under: the IPv4 address, or the IPv6 address's /64."""
        if ":" not in host:
            return host
        try:
            addr = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return host
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))

    def held_off(self, host: str, now: float) -> float | None:
        """Seconds left of the hold-off of ``host``'s source, or None if it has none.
        (On every IKE_SA_INIT: costs a dict lookup once anyone failed, nothing before.)"""
        if not self._sources or not self.limit:
            return None
        entry = self._sources.get(self.source_of(host))
        if entry is None or entry.held_until <= now:
            return None
        return entry.held_until - now

    def failed(self, host: str, now: float, identity: str | None = None) -> bool:
        """Record a failed authentication from ``host`` (``identity``: the one it tried,
        for the log); True if this failure started a hold-off."""
        self.stats["auth_failures"] += 1
        if not self.limit:
            return False
        self.prune(now)
        key = self.source_of(host)
        entry = self._sources.get(key)
        if entry is None:
            if len(self._sources) >= self.max_sources:
                del self._sources[next(iter(self._sources))]  # the oldest entry
            entry = self._sources[key] = _Source()
        entry.last = now
        if entry.held_until > now:
            return False  # an IKE SA that was already under way when the hold-off began
        failures = entry.failures
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        failures.append(now)
        if len(failures) < self.limit:
            return False
        failures.clear()
        entry.held_until = now + self.block
        self.stats["auth_holdoffs"] += 1
        self._log_holdoff(key, now, identity)
        return True

    def _log_holdoff(self, key: str, now: float, identity: str | None) -> None:
        if self._log is None:
            self._log = LogBucket(LOG_BURST, LOG_INTERVAL, now)
        hidden = self._log.take(now)
        if hidden is None:
            return
        tried = f" (the last as '{printable(identity)[:64]}')" if identity else ""
        more = f" ({hidden} more hold-offs not logged)" if hidden else ""
        log.info("%s: %d failed authentications within %ds%s, its IKE_SA_INITs are dropped for %ds%s",
                 key, self.limit, int(self.window), tried, int(self.block), more)

    def prune(self, now: float) -> None:
        """Forget sources with nothing left to remember (at most every PRUNE_INTERVAL s)."""
        if now - self._pruned < PRUNE_INTERVAL:
            return
        self._pruned = now
        stale = [key for key, e in self._sources.items()
                 if e.held_until <= now and e.last <= now - self.window]  # fmt: skip
        for key in stale:
            del self._sources[key]


# ---------------------------------------------------------------------------------- log lines per SA


class LimitedSaLogger(SaLogger):
    """An IKE SA's logger (strongSwan's ``<conn|id>`` prefix) with a token bucket per
    message format (see the module docstring).  The SA's own clock (``sa.now``) drives
    the buckets, so it stays sans-IO."""

    def __init__(self, logger, sa) -> None:
        super().__init__(logger, sa)
        self._buckets: dict[str, LogBucket] = {}

    def log(self, level, msg, *args, **kwargs) -> None:
        if not self.isEnabledFor(level):
            return
        now = self.sa.now
        buckets = self._buckets
        bucket = buckets.get(msg)
        if bucket is None:
            if len(buckets) >= SA_LOG_KEEP:
                for key in [k for k, b in buckets.items() if b.full(now)]:
                    del buckets[key]
                if len(buckets) >= SA_LOG_MAX:  # (formats are constants in the code: not reached)
                    del buckets[next(iter(buckets))]
            bucket = buckets[msg] = LogBucket(SA_LOG_BURST, SA_LOG_INTERVAL, now)
        hidden = bucket.take(now)
        if hidden is None:
            return
        if hidden:
            msg = f"{msg} ({hidden} more such lines not logged)"
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the caller's line, not ours
        super().log(level, msg, *args, **kwargs)
