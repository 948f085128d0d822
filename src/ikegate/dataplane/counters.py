"""Traffic and drop counters shared between the data-plane workers and the daemon.

The workers process packets in other processes (or threads); the daemon reads counters
for ``ikegate status``, DPD and logs.  Rather than asking the workers (a round trip that
waits for the worker's GIL), every worker copies its counters into one shared memory
block every :data:`FLUSH_INTERVAL` seconds, from its control thread, so the packet loop
never pays for it; the daemon reads the block whenever it likes.  Each field has exactly
one writer (the inbound worker writes the ``*_in`` fields, the outbound worker the
``*_out`` fields), so no lock is needed; a reader may see a value up to one flush old.

Layout of the block (native byte order, it never leaves the host):

* one row of :data:`REASONS` counters (``Q``) per worker role, :data:`ROLES` order;
* then one 128-byte slot per SA: ``packets_in bytes_in last_in dropped_in seq_in
  packets_out bytes_out last_out dropped_out seq_out`` (``QQdQQ`` twice; times are
  ``time.monotonic()``, 0.0 for never; ``seq_in`` is the highest inbound sequence
  number accepted, ``seq_out`` the last one sent, so a restarted worker can go on from
  there).  Slots are handed out by the daemon (:class:`SlotAllocator`).

The block is a ``memfd`` so spawned worker processes can map it from an inherited file
descriptor.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import deque

from ikegate.dataplane.interface import SaCounters
from ikegate.esp.errors import (
    DROP_DUMMY,
    DROP_ICV,
    DROP_LENGTH,
    DROP_NEXT_HEADER,
    DROP_PADDING,
    DROP_REPLAY,
    DROP_SEQ_OVERFLOW,
    DROP_SHORT,
    DROP_UNKNOWN_SPI,
)

__all__ = [
    "DROP_IKE_BACKLOG",
    "DROP_INTERNAL",
    "DROP_NO_SA",
    "DROP_NOT_IP",
    "DROP_SEND",
    "DROP_SPOOFED",
    "DROP_TOO_BIG",
    "DROP_TUN_WRITE",
    "FLUSH_INTERVAL",
    "REASONS",
    "ROLES",
    "CounterBoard",
    "SlotAllocator",
]

#: Inbound: the inner source address is not one the SA's remote selectors allow (or the
#: inner destination not one its local selectors allow): spoofing through the tunnel.
DROP_SPOOFED = "spoofed"
#: Inbound: writing the decrypted packet to the TUN failed.
DROP_TUN_WRITE = "tun_write"
#: Outbound: no installed SA covers the destination of a packet read from the TUN.
DROP_NO_SA = "no_sa"
#: Outbound: not an IPv4/IPv6 packet.
DROP_NOT_IP = "not_ip"
#: Outbound: larger than the SA can carry and not fragmentable (an ICMP error was sent).
DROP_TOO_BIG = "too_big"
#: Outbound: the socket refused the ESP packet (no route, address gone, buffer full).
DROP_SEND = "send_error"
#: A packet raised an unexpected exception in a worker (a bug; the first ones are logged).
DROP_INTERNAL = "internal_error"
#: Inbound: an IKE datagram on port 4500 not handed to the daemon, which was too far
#: behind (its queue from the worker full): the peer retransmits.
DROP_IKE_BACKLOG = "ike_backlog"
#: Not drops, events worth counting: NAT keepalives received, IKE datagrams handed to the
#: daemon, ICMP "too big" errors sent, IPv4 packets fragmented before encryption.
EVENT_KEEPALIVE = "keepalive"
EVENT_IKE = "ike_forwarded"
EVENT_ICMP = "icmp_too_big_sent"
EVENT_FRAGMENTED = "fragmented"
#: Times the inbound worker woke up with packets to read (packets per wakeup = load).
EVENT_WAKEUPS = "wakeups"
#: Authenticated ESP-in-UDP arrived from a new outer endpoint (a NAT mapping changed).
EVENT_PEER_MOVED = "peer_moved"

#: Every counter name, in block order (append only: the order is the layout).
REASONS = (
    DROP_SHORT,
    DROP_LENGTH,
    DROP_UNKNOWN_SPI,
    DROP_REPLAY,
    DROP_ICV,
    DROP_PADDING,
    DROP_NEXT_HEADER,
    DROP_DUMMY,
    DROP_SEQ_OVERFLOW,
    DROP_SPOOFED,
    DROP_TUN_WRITE,
    DROP_NO_SA,
    DROP_NOT_IP,
    DROP_TOO_BIG,
    DROP_SEND,
    EVENT_KEEPALIVE,
    EVENT_IKE,
    EVENT_ICMP,
    EVENT_FRAGMENTED,
    EVENT_WAKEUPS,
    DROP_INTERNAL,
    DROP_IKE_BACKLOG,
    EVENT_PEER_MOVED,
)
EVENTS = frozenset({EVENT_KEEPALIVE, EVENT_IKE, EVENT_ICMP, EVENT_FRAGMENTED, EVENT_WAKEUPS, EVENT_PEER_MOVED})
ROLES = ("in", "out")
FLUSH_INTERVAL = 0.1  # seconds

_ROW = struct.Struct(f"={len(REASONS)}Q")
_IN = struct.Struct("=QQdQQ")  # packets, bytes, last, dropped, highest sequence number seen
_OUT = struct.Struct("=QQdQQ")  # packets, bytes, last, dropped, last sequence number sent
SLOT_SIZE = 128
_HEADER = len(ROLES) * _ROW.size
_HEADER_PADDED = (_HEADER + SLOT_SIZE - 1) // SLOT_SIZE * SLOT_SIZE


class CounterBoard:
    """The shared counter block (see the module docstring)."""

    def __init__(self, capacity: int, fd: int | None = None) -> None:
        """Create a block for ``capacity`` SAs, or map the one behind ``fd``."""
        self.capacity = capacity
        self.size = _HEADER_PADDED + capacity * SLOT_SIZE
        if fd is None:
            fd = os.memfd_create("ikegate-counters", os.MFD_CLOEXEC)
            os.ftruncate(fd, self.size)
        self.fd = fd
        self.map = mmap.mmap(fd, self.size)

    def close(self) -> None:
        try:
            self.map.close()
        finally:
            os.close(self.fd)

    # -- writers (workers) -------------------------------------------------------------------

    def write_reasons(self, role: str, counts: dict[str, int]) -> None:
        _ROW.pack_into(self.map, ROLES.index(role) * _ROW.size, *(counts.get(r, 0) for r in REASONS))

    def write_in(self, slot: int, packets: int, nbytes: int, last: float | None, dropped: int,
                 seq: int = 0) -> None:
        _IN.pack_into(self.map, self._offset(slot), packets, nbytes, last or 0.0, dropped, seq)

    def write_out(self, slot: int, packets: int, nbytes: int, last: float | None, dropped: int,
                  seq: int = 0) -> None:
        _OUT.pack_into(self.map, self._offset(slot) + _IN.size, packets, nbytes, last or 0.0, dropped, seq)

    def clear_in(self, slot: int) -> None:
        self.write_in(slot, 0, 0, None, 0)

    def clear_out(self, slot: int) -> None:
        self.write_out(slot, 0, 0, None, 0)

    def half(self, slot: int, inbound: bool) -> tuple[int, int, float | None, int, int]:
        """One direction's ``(packets, bytes, last, dropped, sequence number)`` as last
        flushed: what a restarted worker resumes from."""
        offset = self._offset(slot) + (0 if inbound else _IN.size)
        packets, nbytes, last, dropped, seq = _IN.unpack_from(self.map, offset)
        return packets, nbytes, last or None, dropped, seq

    # -- readers (daemon) --------------------------------------------------------------------

    def read(self, slot: int) -> SaCounters:
        offset = self._offset(slot)
        packets_in, bytes_in, last_in, dropped_in, _ = _IN.unpack_from(self.map, offset)
        packets_out, bytes_out, last_out, dropped_out, _ = _OUT.unpack_from(self.map, offset + _IN.size)
        return SaCounters(
            bytes_in=bytes_in,
            packets_in=packets_in,
            bytes_out=bytes_out,
            packets_out=packets_out,
            last_in=last_in or None,
            last_out=last_out or None,
            dropped=dropped_in + dropped_out,
        )

    def reasons(self) -> dict[str, int]:
        """Sum of every worker's counters, by name."""
        totals = dict.fromkeys(REASONS, 0)
        for index in range(len(ROLES)):
            for name, value in zip(REASONS, _ROW.unpack_from(self.map, index * _ROW.size)):
                totals[name] += value
        return totals

    def _offset(self, slot: int) -> int:
        if not 0 <= slot < self.capacity:
            raise IndexError(f"counter slot {slot} out of range")
        return _HEADER_PADDED + slot * SLOT_SIZE


class SlotAllocator:
    """Hands out the SA slots of a :class:`CounterBoard` (daemon side only).

    First in, first out: a slot given back is reused last, so a worker's late flush of a
    removed SA can never land in the slot of a new one (workers also zero their half of
    a slot when they install an SA into it).
    """

    def __init__(self, capacity: int) -> None:
        self._free = deque(range(capacity))

    def take(self) -> int:
        if not self._free:
            raise RuntimeError("too many CHILD SAs for the data plane's counter block")
        return self._free.popleft()

    def give_back(self, slot: int) -> None:
        self._free.append(slot)
