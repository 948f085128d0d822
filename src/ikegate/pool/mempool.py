"""In-memory virtual-IP pools with per-identity leases, as strongSwan's mem_pool.

A pool is a run of consecutive addresses (from ``rightsourceip=`` CIDR or range
tokens).  Addresses are handed out to peers keyed by their EAP identity (falling
back to the IKE identity), and a released address stays *offline* for that
identity so the same user gets the same address back when reconnecting.  The
rules follow strongSwan's ``src/libcharon/attributes/mem_pool.c`` and
``src/libcharon/plugins/stroke/stroke_attribute.c`` (see
``/work/shared/spec/strongswan-semantics.md`` section 2.6):

* CIDR ``net/len``: hostbits are capped at 31 (so at most 2^31 addresses; for
  IPv6 only the low 32 bits ever vary).  With more than two addresses the
  network id and the last (broadcast) address are skipped; a base that is not
  the network id starts the pool at that address.  ``/31`` serves both
  addresses (only the second one if the base is the second one), ``/32`` (and
  ``/128``) the single address.  A bare address means ``/32`` or ``/128``.
* Range ``a-b``: inclusive, nothing skipped, same family, ``a <= b``, only the
  low 32 bits may differ.
* Allocation runs three passes (EXISTING, NEW, REASSIGN), each over all pools
  of a connection in configured order (:meth:`PoolSet.acquire`).

The objects are plain, single-threaded state (the gateway runs one event loop);
nothing here blocks or does I/O.  Every operation is O(1) in the pool size:
never-used addresses are handed out from a counter, leases live in dicts.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "AcquirePass",
    "Lease",
    "MemPool",
    "PoolError",
    "PoolSet",
]

log = logging.getLogger(__name__)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: A peer endpoint as ``(address, port)``; two SAs from the same endpoint may
#: share an online lease (make-before-break reauthentication).
Peer = tuple[IPAddress, int]

#: mem_pool.c ``POOL_LIMIT``: host bits are capped so the size fits an unsigned int.
POOL_LIMIT_BITS = 31
_LOW32 = 0xFFFFFFFF


class PoolError(ValueError):
    """A pool token is malformed or describes no usable address."""


class AcquirePass(enum.Enum):
    """The three allocation passes of strongSwan's ``acquire_address``."""

    #: Reuse an online lease of the same identity from the same peer endpoint,
    #: else take the identity's oldest offline lease.
    EXISTING = "existing"
    #: Hand out the next never-used address (sequential from the first one).
    NEW = "new"
    #: Pool exhausted: take over an offline lease of another identity.
    REASSIGN = "reassign"


PASSES: tuple[AcquirePass, ...] = (AcquirePass.EXISTING, AcquirePass.NEW, AcquirePass.REASSIGN)


@dataclass(frozen=True)
class Lease:
    """One address bound to an identity, for status output."""

    address: IPAddress
    identity: str
    online: bool


@dataclass
class _Entry:
    """Leases of one identity (strongSwan's ``entry_t``)."""

    identity: str
    #: One item per SA using an address: ``(offset, peer)``.  The same offset
    #: appears several times while a reauthenticated SA overlaps the old one.
    online: list[tuple[int, Peer | None]] = field(default_factory=list)
    #: Offsets that went offline, oldest first (dict used as an ordered set).
    offline: dict[int, None] = field(default_factory=dict)


def _parse_address(text: str) -> IPAddress:
    """Parse one IPv4/IPv6 address the way strongSwan's host parser accepts it."""
    if text == "%any":
        return ipaddress.IPv4Address(0)
    if text == "%any6":
        return ipaddress.IPv6Address(0)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PoolError(f"invalid IP address '{text}'") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise PoolError(f"invalid IP address '{text}' (scope ids are not allowed)")
    return address


def _as_address(value: IPAddress | str) -> IPAddress:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    return ipaddress.ip_address(value)


def _normalise_peer(peer: object) -> Peer | None:
    """Turn ``(host, port)`` into a hashable, comparable endpoint."""
    if peer is None:
        return None
    try:
        host, port = peer  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError("peer must be an (address, port) tuple or None") from None
    return (_as_address(host), int(port))


def _is_any(address: IPAddress) -> bool:
    return int(address) == 0


class MemPool:
    """A pool of consecutive addresses with per-identity leases.

    Build one with :meth:`parse` (any ``rightsourceip`` address token),
    :meth:`from_cidr` or :meth:`from_range`.  ``key`` maps an identity string
    to the value leases are keyed by (strongSwan compares identification_t
    objects: FQDN and RFC822 ids case-insensitively, others exactly); the
    default keys by the string as is.
    """

    def __init__(
        self,
        name: str,
        base: IPAddress,
        size: int,
        *,
        key: Callable[[str], Hashable] | None = None,
    ) -> None:
        if not isinstance(base, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise TypeError("base must be an IPv4Address or IPv6Address")
        if size < 1:
            raise PoolError(f"virtual IP pool {name} is empty")
        if (int(base) & _LOW32) + size - 1 > _LOW32:
            raise PoolError(f"virtual IP pool {name} exceeds the low 32 bits of its base address")
        self.name = name
        self.base = base
        self.size = size
        self._key: Callable[[str], Hashable] = key if key is not None else (lambda identity: identity)
        self._entries: dict[Hashable, _Entry] = {}
        #: offset -> number of SAs currently using it (an offset here is online).
        self._online_refs: dict[int, int] = {}
        #: offset -> owner key of every offline lease, in the order they went offline.
        self._offline_owner: dict[int, Hashable] = {}
        #: Offsets 0 .. _unused-1 have been handed out at least once.
        self._unused = 0

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(cls, token: str, *, key: Callable[[str], Hashable] | None = None) -> MemPool:
        """Build a pool from a ``rightsourceip`` token: a range ``a-b``, a CIDR
        ``net/len`` or a single address (strongSwan tries the range form first)."""
        if "-" in token:
            return cls.from_range(token, key=key)
        return cls.from_cidr(token, key=key)

    @classmethod
    def from_cidr(cls, text: str, *, key: Callable[[str], Hashable] | None = None) -> MemPool:
        """Build a pool from ``net/len`` (or a bare address) with mem_pool.c's rules."""
        address_text, slash, bits_text = text.partition("/")
        base = _parse_address(address_text)
        addr_bits = base.max_prefixlen
        if slash:
            if not bits_text.isdigit() or not bits_text.isascii():
                raise PoolError(f"invalid prefix length in virtual IP pool '{text}'")
            # strongSwan clamps the prefix length into 0..addr_bits
            prefix = max(0, min(int(bits_text), addr_bits))
        else:
            prefix = addr_bits
        hostbits = addr_bits - prefix
        if hostbits > POOL_LIMIT_BITS:
            hostbits = POOL_LIMIT_BITS
            log.info("virtual IP pool too large, limiting to %s/%d", base, addr_bits - hostbits)
        size = 1 << hostbits
        # offset of the base inside its (capped) subnet: zero means it is the network id
        diff = int(base) & ((1 << hostbits) - 1)
        if size > 2:
            if diff == 0:
                base = base + 1  # skip the network id
                size -= 1
            else:
                size -= diff  # start at the given address
            size -= 1  # skip the last (broadcast) address of the subnet
        elif diff:
            size -= 1  # /31 given with its second address: serve only that one
        if size <= 0:
            raise PoolError(f"virtual IP pool {base}/{addr_bits - hostbits} is empty")
        return cls(text, base, size, key=key)

    @classmethod
    def from_range(cls, text: str, *, key: Callable[[str], Hashable] | None = None) -> MemPool:
        """Build a pool from an inclusive range ``from-to`` with mem_pool.c's rules."""
        from_text, sep, to_text = text.partition("-")
        if not sep:
            raise PoolError(f"invalid IP address range '{text}' (no '-')")
        # host_create_from_range() trims spaces around the dash
        start = _parse_address(from_text.rstrip(" "))
        end = _parse_address(to_text.lstrip(" "))
        if start.version != end.version or int(start) > int(end):
            raise PoolError(f"invalid IP address range: {start}-{end}")
        if (int(start) >> 32) != (int(end) >> 32):
            raise PoolError(f"IP address range too large: {start}-{end}")
        size = int(end) - int(start) + 1
        if size > _LOW32:
            # strongSwan's unsigned size wraps to 0 here (an "echo" pool); refuse instead
            raise PoolError(f"IP address range too large: {start}-{end}")
        return cls(text, start, size, key=key)

    # --------------------------------------------------------------- properties

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.base.version

    @property
    def first(self) -> IPAddress:
        return self.base

    @property
    def last(self) -> IPAddress:
        return self.base + (self.size - 1)

    @property
    def in_use(self) -> int:
        """Number of addresses currently held by connected peers (same as :meth:`online`)."""
        return len(self._online_refs)

    def __repr__(self) -> str:
        return f"MemPool({self.name!r}, {self.first}-{self.last}, size={self.size})"

    def contains(self, address: IPAddress | str) -> bool:
        """True if ``address`` is one this pool can hand out."""
        return self._offset(_as_address(address)) is not None

    def _offset(self, address: IPAddress) -> int | None:
        if address.version != self.base.version:
            return None
        offset = int(address) - int(self.base)
        if 0 <= offset < self.size:
            return offset
        return None

    def _address(self, offset: int) -> IPAddress:
        return self.base + offset

    # --------------------------------------------------------------- allocation

    def acquire(
        self,
        identity: str,
        peer: tuple[IPAddress | str, int] | None,
        requested: IPAddress | str | None = None,
        *,
        pass_: AcquirePass | None = None,
    ) -> IPAddress | None:
        """Lease an address to ``identity`` connecting from ``peer``.

        With ``pass_`` only that pass runs (what :class:`PoolSet` does across
        several pools); without it the three passes run on this pool alone.
        ``requested`` (the client's CFG_REQUEST address, ``None`` or the any
        address for "anything") only selects among the identity's online
        leases; a requested address of the other family yields ``None``.
        Returns ``None`` if this pass (or the pool) has nothing to offer.
        """
        requested_address = None if requested is None else _as_address(requested)
        if requested_address is not None and requested_address.version != self.family:
            return None
        peer_key = _normalise_peer(peer)
        key = self._key(identity)
        passes = PASSES if pass_ is None else (pass_,)
        for current in passes:
            if current is AcquirePass.EXISTING:
                offset = self._get_existing(key, identity, requested_address, peer_key)
            elif current is AcquirePass.NEW:
                offset = self._get_new(key, identity, peer_key)
            else:
                offset = self._get_reassigned(key, identity, peer_key)
                if offset is None:
                    log.info("pool '%s' is full, unable to assign address", self.name)
            if offset is not None:
                return self._address(offset)
        return None

    def _get_existing(
        self,
        key: Hashable,
        identity: str,
        requested: IPAddress | None,
        peer: Peer | None,
    ) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if peer is not None:
            # make-before-break reauthentication: share the online lease of the
            # same identity from the same endpoint (also when any address is requested)
            any_requested = requested is None or _is_any(requested)
            wanted = None if any_requested else self._offset(requested)
            for offset, lease_peer in entry.online:
                if lease_peer == peer and (any_requested or offset == wanted):
                    entry.online.append((offset, peer))
                    self._online_refs[offset] += 1
                    log.info("reassigning online lease to '%s'", identity)
                    return offset
        if entry.offline:
            offset = next(iter(entry.offline))  # the oldest offline lease
            del entry.offline[offset]
            del self._offline_owner[offset]
            entry.online.append((offset, peer))
            self._online_refs[offset] = 1
            log.info("reassigning offline lease to '%s'", identity)
            return offset
        return None

    def _get_new(self, key: Hashable, identity: str, peer: Peer | None) -> int | None:
        if self._unused >= self.size:
            return None
        offset = self._unused
        self._unused += 1
        self._entry(key, identity).online.append((offset, peer))
        self._online_refs[offset] = 1
        log.info("assigning new lease to '%s'", identity)
        return offset

    def _get_reassigned(self, key: Hashable, identity: str, peer: Peer | None) -> int | None:
        if not self._offline_owner:
            return None
        # strongSwan takes the first offline lease in hash-table order; we take
        # the one that has been offline longest, which is just as valid and keeps
        # recently disconnected users' addresses for them a little longer.
        offset, owner_key = next(iter(self._offline_owner.items()))
        del self._offline_owner[offset]
        owner = self._entries[owner_key]
        del owner.offline[offset]
        if not owner.online and not owner.offline:
            del self._entries[owner_key]
        log.info("reassigning existing offline lease by '%s' to '%s'", owner.identity, identity)
        self._entry(key, identity).online.append((offset, peer))
        self._online_refs[offset] = 1
        return offset

    def _entry(self, key: Hashable, identity: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(identity)
        return entry

    def release(self, address: IPAddress | str, identity: str) -> bool:
        """Drop one SA's use of ``address``; when no SA of ``identity`` uses it
        any more the lease goes offline (kept for that identity).  Returns
        False if ``identity`` holds no online lease of that address here."""
        entry = self._entries.get(self._key(identity))
        if entry is None:
            return False
        offset = self._offset(_as_address(address))
        if offset is None:
            return False
        for index, (lease_offset, _peer) in enumerate(entry.online):
            if lease_offset == offset:
                del entry.online[index]
                break
        else:
            return False
        self._online_refs[offset] -= 1
        if self._online_refs[offset] == 0:
            del self._online_refs[offset]
            entry.offline[offset] = None
            self._offline_owner[offset] = self._key(identity)
            log.info("lease %s by '%s' went offline", address, entry.identity)
        return True

    # ------------------------------------------------------------------ queries

    def online(self) -> int:
        """Number of addresses currently online."""
        return len(self._online_refs)

    def offline(self) -> int:
        """Number of offline leases (addresses remembered for a disconnected identity)."""
        return len(self._offline_owner)

    def leases(self) -> list[Lease]:
        """Every lease, online ones of an identity first, for status output."""
        result: list[Lease] = []
        for entry in self._entries.values():
            seen: set[int] = set()
            for offset, _peer in entry.online:
                if offset not in seen:
                    seen.add(offset)
                    result.append(Lease(self._address(offset), entry.identity, True))
            for offset in entry.offline:
                result.append(Lease(self._address(offset), entry.identity, False))
        return result


class PoolSet:
    """All in-memory pools of the gateway, looked up by the connections' tokens.

    A token is parsed once; a later token describing the same base and size
    (e.g. the same ``rightsourceip`` in two conns, or a reload) reuses the
    existing pool and its leases, as strongSwan's ``add_pool`` does.  Unlike
    strongSwan, a differently spelled token for the same addresses (``/24`` vs.
    the equivalent range) becomes an alias of that pool instead of a name that
    no pool answers to.
    """

    def __init__(self, *, key: Callable[[str], Hashable] | None = None) -> None:
        self._key = key
        self._by_name: dict[str, MemPool] = {}
        self._pools: list[MemPool] = []

    def add(self, token: str) -> MemPool:
        """Parse ``token`` (raising :class:`PoolError`) and register it, reusing
        an existing pool with the same base address and size."""
        existing = self._by_name.get(token)
        if existing is not None:
            return existing
        pool = MemPool.parse(token, key=self._key)
        for current in self._pools:
            if current.base == pool.base and current.size == pool.size:
                log.info("reusing virtual IP address pool %s", current.name)
                self._by_name[token] = current
                return current
        log.info("adding virtual IP address pool %s", pool.name)
        self._pools.append(pool)
        self._by_name[token] = pool
        return pool

    def get(self, name: str) -> MemPool | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[MemPool]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    def acquire(
        self,
        pool_names: Iterable[str],
        family: int,
        identity: str,
        peer: tuple[IPAddress | str, int] | None,
        requested: IPAddress | str | None = None,
    ) -> IPAddress | None:
        """Lease an address of ``family`` (4 or 6) from a connection's pools.

        Runs EXISTING over all of them, then NEW, then REASSIGN, pools in the
        given (configured) order; unknown names and pools of the other family
        are skipped.  ``None`` means every pool is full (or none fits).
        """
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        requested_address = None if requested is None else _as_address(requested)
        if requested_address is not None and requested_address.version != family:
            return None
        pools = [pool for pool in (self._by_name.get(name) for name in pool_names) if pool is not None]
        pools = [pool for pool in pools if pool.family == family]
        for current in PASSES:
            for pool in pools:
                address = pool.acquire(identity, peer, requested_address, pass_=current)
                if address is not None:
                    return address
        return None

    def release(
        self,
        address: IPAddress | str,
        identity: str,
        pool_names: Iterable[str] | None = None,
    ) -> bool:
        """Release ``address`` of ``identity`` in the first of the given pools
        (default: all pools) that holds it online."""
        if pool_names is None:
            pools: Iterable[MemPool] = self._pools
        else:
            pools = [pool for pool in (self._by_name.get(name) for name in pool_names) if pool is not None]
        for pool in pools:
            if pool.release(address, identity):
                return True
        return False
