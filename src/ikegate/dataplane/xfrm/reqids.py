"""Kernel reqids for the engine's reqids, inside ikegate's tag range.

Every SA and policy template ikegate installs carries a kernel reqid ``0x4947xxxx``
("IG" in the high half) so that a new run finds and deletes what a crashed one left
(:func:`ikegate.dataplane.xfrm.kernel.is_tagged`).  That leaves 65536 kernel reqids for
the engine's, which are an ever-growing counter: a plain ``reqid & 0xffff`` would give
two live SAs 65536 reqids apart the same kernel reqid (and so each other's policies).

:class:`ReqidTable` maps instead: an engine reqid gets a free slot of the range (its own
low 16 bits when free, so that ``ip xfrm state`` shows 1229389824 + reqid in the usual
case; else the next free one), kept while any SA uses it (a CHILD SA and its rekeyed
successor share their reqid) and freed with the last.  When all 65536 are in use the
table refuses (:class:`ReqidsExhausted`) rather than share one.
"""

from __future__ import annotations

__all__ = ["REQID_SLOTS", "ReqidTable", "ReqidsExhausted"]

REQID_SLOTS = 0x10000


class ReqidsExhausted(RuntimeError):
    """Every kernel reqid of the tag range is in use."""


class ReqidTable:
    """Engine reqid -> kernel reqid (``tag | slot``), reference-counted by owner (an
    installed SA pair, named by its inbound SPI)."""

    def __init__(self, tag: int, slots: int = REQID_SLOTS) -> None:
        self.tag = tag
        self.slots = slots
        self._slot_of: dict[int, int] = {}  # engine reqid -> slot
        self._users: dict[int, set[int]] = {}  # engine reqid -> owners
        self._owner_reqid: dict[int, int] = {}  # owner -> engine reqid
        self._taken: set[int] = set()  # slots in use
        self._next = 0  # where the search for a free slot goes on

    def __len__(self) -> int:
        """Kernel reqids in use."""
        return len(self._taken)

    def get(self, reqid: int) -> int | None:
        """The kernel reqid of the engine's ``reqid``, None if no SA holds one."""
        slot = self._slot_of.get(reqid)
        return None if slot is None else self.tag | slot

    def acquire(self, reqid: int, owner: int) -> int:
        """The kernel reqid for ``owner``'s SAs with the engine's ``reqid`` (the one other
        SAs of that reqid already use, else a free slot).  An owner holds one reqid: acquiring
        again for another reqid releases the first.  :class:`ReqidsExhausted` if none is free."""
        held = self._owner_reqid.get(owner)
        if held is not None and held != reqid:
            self.release(owner)
        slot = self._slot_of.get(reqid)
        if slot is None:
            slot = self._free_slot(reqid)
            self._slot_of[reqid] = slot
            self._taken.add(slot)
        self._users.setdefault(reqid, set()).add(owner)
        self._owner_reqid[owner] = reqid
        return self.tag | slot

    def release(self, owner: int) -> None:
        """``owner`` no longer uses its reqid; the slot is freed with its last owner."""
        reqid = self._owner_reqid.pop(owner, None)
        if reqid is None:
            return
        users = self._users.get(reqid)
        if users is not None:
            users.discard(owner)
            if users:
                return
            del self._users[reqid]
        slot = self._slot_of.pop(reqid, None)
        if slot is not None:
            self._taken.discard(slot)

    def clear(self) -> None:
        self._slot_of.clear()
        self._users.clear()
        self._owner_reqid.clear()
        self._taken.clear()

    def _free_slot(self, reqid: int) -> int:
        preferred = reqid % self.slots
        if preferred not in self._taken:
            return preferred
        if len(self._taken) >= self.slots:
            raise ReqidsExhausted(f"all {self.slots} kernel reqids of ikegate (0x{self.tag:08x}-"
                                  f"0x{self.tag | (self.slots - 1):08x}) are in use: reqid {reqid} gets none")
        for step in range(self.slots):
            slot = (self._next + step) % self.slots
            if slot not in self._taken:
                self._next = (slot + 1) % self.slots
                return slot
        raise ReqidsExhausted("no free kernel reqid")  # not reached: fewer taken than slots
