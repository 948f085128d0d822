"""SA lifetimes: when the gateway rekeys, reauthenticates, expires (strongswan-semantics.md
2.5; strongSwan's ike_sa.c ``set_state``/``inherit_post``, child_sa.c ``install``,
child_cfg.c ``apply_jitter``, peer_cfg.c ``get_rekey_time``).

The configuration gives the numbers (:attr:`Conn.ike_lifetimes`, :attr:`Conn.child_lifetimes`,
all zero with ``rekey=no``, so nothing here ever fires then):

- CHILD SA: soft lifetime ``rekey_time - random[0, jitter_time)`` from installation (a
  rekey of our own, tasks/child_rekey_initiator.py), hard lifetime ``life_time`` (an
  INFORMATIONAL Delete and ChildSaDown, tasks/child_delete.py).  A superseded SA that
  reaches its hard lifetime goes quietly, as strongSwan's expired-and-rekeyed case.
- IKE SA, ``reauth=no``: rekey at ``rekey_time - jitter`` (tasks/ike_rekey_initiator.py).
  ``reauth=yes``: a responder cannot reauthenticate an EAP client (or one with virtual
  IPs) itself; strongSwan then announces the deadline with AUTH_LIFETIME
  (tasks/ike_auth_lifetime.py) and, at the reauthentication time, only logs that the
  initiator did not reauthenticate.  Either way the IKE SA is deleted at its hard
  lifetime: the earlier of the two times plus ``over_time``.  The reauthentication
  deadline survives a rekey of the IKE SA; the rekey time does not.
- Our rekeys start only while the IKE SA has no request of ours in flight (one exchange
  at a time, as strongSwan's task manager); a failed one is retried after
  ``RETRY_INTERVAL - random(RETRY_JITTER)`` seconds (ike_sa.h).

Volume limits (``lifebytes``/``lifepackets``) need the data plane's counters and are not
enforced yet.
"""

from __future__ import annotations

from ikegate.log import CTRLMORE

RETRY_INTERVAL = 15  # ike_sa.h: retry a failed rekey after 15 s minus ...
RETRY_JITTER = 10  # ... a random 0..9 s
REDUNDANT_IKE_SA_TIMEOUT = 30  # ike_sa.h HALF_OPEN_IKE_SA_TIMEOUT: wait for the peer's Delete


def _uniform(sa) -> float:
    """A random number in [0, 1) from the runtime's RNG."""
    return int.from_bytes(sa.rt.random(4), "big") / 2**32


def jittered(sa, rekey: float, jitter: float) -> float:
    """``rekey`` minus a random part of ``jitter`` (the man page's margin and fuzz)."""
    return rekey - jitter * _uniform(sa) if jitter else float(rekey)


def retry_delay(sa) -> int:
    return RETRY_INTERVAL - int.from_bytes(sa.rt.random(2), "big") % RETRY_JITTER


# -- computing the times --------------------------------------------------------------------


def child_installed(sa, child) -> None:
    """Soft and hard lifetime of a CHILD SA that was just installed (any origin)."""
    lifetimes = sa.conn.child_lifetimes
    if lifetimes.rekey_time:
        child.rekey_at = sa.now + jittered(sa, lifetimes.rekey_time, lifetimes.jitter_time)
    if lifetimes.life_time:
        child.expire_at = sa.now + lifetimes.life_time
    if child.rekey_at is not None or child.expire_at is not None:
        sa.log.log(CTRLMORE, "CHILD_SA %s{%d} rekeying in %s, expiring in %s", sa.name, child.unique_id,
                   _seconds(child.rekey_at, sa.now), _seconds(child.expire_at, sa.now))


def ike_established(sa, *, inherit_from=None) -> None:
    """Rekey, reauthentication and hard lifetime of an IKE SA that was just established
    (by IKE_AUTH, or by a rekey of ``inherit_from``)."""
    lifetimes = sa.conn.ike_lifetimes
    now = sa.now
    sa.rekey_at = sa.reauth_at = sa.expire_at = None
    sa.reauth_noted = False
    if lifetimes.rekey_time:
        sa.rekey_at = now + jittered(sa, lifetimes.rekey_time, lifetimes.jitter_time)
        sa.log.info("scheduling rekeying in %ds", int(sa.rekey_at - now))
    inherited = inherit_from.reauth_at if inherit_from is not None else None
    if inherited is not None:
        sa.reauth_at = inherited
        sa.expire_at = max(inherited, now) + lifetimes.over_time
        sa.log.info("rescheduling reauthentication in %ds after rekeying, lifetime reduced to %ds",
                    int(max(inherited - now, 0)), int(sa.expire_at - now))
        return
    if lifetimes.reauth_time:
        sa.reauth_at = now + jittered(sa, lifetimes.reauth_time, lifetimes.jitter_time)
        sa.log.info("scheduling reauthentication in %ds", int(sa.reauth_at - now))
    soft = [t for t in (sa.rekey_at, sa.reauth_at) if t is not None]
    if soft:
        sa.expire_at = min(soft) + lifetimes.over_time
        sa.log.info("maximum IKE_SA lifetime %ds", int(sa.expire_at - now))


def _seconds(when: float | None, now: float) -> str:
    return "never" if when is None else f"{int(when - now)}s"


# -- what falls due --------------------------------------------------------------------------


def _idle(sa) -> bool:
    return sa.pending is None and not sa.queue and sa.held is None and sa.ike_rekey is None


def _rekey_candidates(sa) -> list[tuple[float, object]]:
    """(due time, CHILD SA or None for the IKE SA) of the rekeys we may start now."""
    from ikegate.ike.sa import ESTABLISHED

    if sa.state != ESTABLISHED or not _idle(sa):
        return []
    result = []
    if sa.rekey_at is not None:
        result.append((sa.rekey_at, None))
    for child in sa.children.values():
        if child.rekey_at is not None and child.in_use and child.rekey_task is None:
            result.append((child.rekey_at, child))
    return result


def deadlines(sa) -> list[float]:
    """Every lifetime event of this IKE SA and its CHILD SAs still ahead (for the timer)."""
    from ikegate.ike.sa import ESTABLISHED

    times = [when for when, _ in _rekey_candidates(sa)]
    for child in sa.children.values():
        if child.linger_until is not None:
            times.append(child.linger_until)
        elif child.expire_at is not None and child.state in ("installed", "rekeyed"):
            times.append(child.expire_at)
    if sa.state == ESTABLISHED:
        if sa.expire_at is not None:
            times.append(sa.expire_at)
        if sa.reauth_at is not None and not sa.reauth_noted:
            times.append(sa.reauth_at)
    return times


def run_due(sa, now: float) -> None:
    """Act on what is due: lingering SAs go, expired ones are deleted, the IKE SA's hard
    lifetime ends it, and the earliest rekey due starts."""
    from ikegate.ike.sa import DEAD, ESTABLISHED
    from ikegate.ike.tasks.child_delete import delete_child
    from ikegate.ike.tasks.child_rekey_initiator import ChildRekey
    from ikegate.ike.tasks.ike_rekey_initiator import IkeRekey

    for child in list(sa.children.values()):
        if child.linger_until is not None and child.linger_until <= now:
            sa.remove_child(child, "rekeyed")
    if sa.state == ESTABLISHED and sa.expire_at is not None and sa.expire_at <= now:
        sa.log.info("IKE_SA %s[%d] reached its hard lifetime, deleting", sa.name, sa.unique_id)
        sa.initiate_delete("IKE_SA lifetime expired")
        return
    for child in list(sa.children.values()):
        if child.expire_at is not None and child.expire_at <= now and child.state in ("installed", "rekeyed"):
            delete_child(sa, child, expired=True)
            if sa.state == DEAD:
                return
    if sa.state == ESTABLISHED and sa.reauth_at is not None and sa.reauth_at <= now and not sa.reauth_noted:
        sa.reauth_noted = True
        remaining = int(sa.expire_at - now) if sa.expire_at is not None else 0
        sa.log.info("initiator did not reauthenticate as requested, IKE_SA %s[%d] will timeout in %ds",
                    sa.name, sa.unique_id, remaining)
    due = [(when, child) for when, child in _rekey_candidates(sa) if when <= now]
    if not due:
        return
    _, child = min(due, key=lambda item: item[0])
    if child is None:
        sa.rekey_at = None
        IkeRekey(sa).start()
    else:
        child.rekey_at = None
        ChildRekey(sa, child).start()
