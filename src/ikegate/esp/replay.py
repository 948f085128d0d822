"""The inbound anti-replay window of an SA (RFC 4303 3.4.3 and Appendix A).

The window remembers the highest sequence number authenticated so far (``top``) and, in an
integer bitmap, which of the ``size`` numbers up to and including it were seen: bit ``i``
stands for ``top - i``.  Processing a packet is two steps, because the window may only move
for packets whose ICV verified:

1. :meth:`ReplayWindow.check` with the 32 bits carried in the packet, before the ICV check.
   With extended sequence numbers (ESN) it also infers the 32 high-order bits, which are
   never sent, as RFC 4303 Appendix A2.2 describes; the ICV covers them, so a wrong guess
   makes the ICV check fail.  It returns the full 64-bit number, or ``None`` for a replay.
2. :meth:`ReplayWindow.update` with that 64-bit number, once the packet is accepted.

A window object belongs to one inbound SA and is not locked: use it from one thread.
"""

from __future__ import annotations

__all__ = ["DEFAULT_WINDOW", "MAX_WINDOW", "MIN_WINDOW", "ReplayWindow"]

DEFAULT_WINDOW = 128
MIN_WINDOW = 32  # RFC 4303 3.4.3: "a minimum window size of 32 packets MUST be supported"
MAX_WINDOW = 1 << 16

_LOW = 0xFFFFFFFF


class ReplayWindow:
    """Sliding anti-replay window of ``size`` packets, optionally with ESN inference."""

    __slots__ = ("size", "esn", "top", "_bitmap", "_mask")

    def __init__(self, size: int = DEFAULT_WINDOW, *, esn: bool = False) -> None:
        if not MIN_WINDOW <= size <= MAX_WINDOW:
            raise ValueError(f"replay window size must be {MIN_WINDOW}..{MAX_WINDOW}, not {size}")
        self.size = size
        self.esn = esn
        #: Highest sequence number accepted so far (0: nothing yet; 0 is never sent).
        self.top = 0
        self._bitmap = 0
        self._mask = (1 << size) - 1

    def check(self, seq_low: int) -> int | None:
        """Full sequence number for the 32 bits ``seq_low`` of a packet, or ``None`` to drop.

        Does not change the window.  ``None`` means: zero, older than the window, or
        already seen.
        """
        top = self.top
        if self.esn:
            # RFC 4303 A2.2: place seq_low in the 2^32 subspace that keeps it closest to
            # the window.  "bottom" is the low half of the window's lowest number.
            top_low = top & _LOW
            top_high = top >> 32
            bottom = (top_low - self.size + 1) & _LOW
            if top_low >= self.size - 1:  # Case A: the window lies inside one subspace
                high = top_high if seq_low >= bottom else top_high + 1
                if high > _LOW:  # beyond 2^64 - 1: the sender cannot have sent it
                    return None
            else:  # Case B: the window straddles the boundary with the previous subspace
                high = top_high - 1 if seq_low >= bottom else top_high
                if high < 0:
                    return None
            seq = (high << 32) | seq_low
        else:
            seq = seq_low
        if seq > top:
            return seq
        if seq == 0:
            return None
        behind = top - seq
        if behind >= self.size or (self._bitmap >> behind) & 1:
            return None
        return seq

    def update(self, seq: int) -> None:
        """Record the 64-bit number ``seq`` of a packet whose ICV verified."""
        top = self.top
        if seq > top:
            shift = seq - top
            self._bitmap = ((self._bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        elif top - seq < self.size:
            self._bitmap |= 1 << (top - seq)

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, esn={self.esn}, top={self.top})"
