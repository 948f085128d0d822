"""One event-loop timer at the earliest time a sans-IO object asked for.

The engine and the RADIUS client each say when they next need a tick
(``next_timer()``); the daemon keeps one loop timer per such object, moved earlier
when a new deadline comes before it, left alone when a later one is asked for (the
tick then re-arms with whatever is due next).
"""

from __future__ import annotations

import asyncio
from typing import Callable


class WakeUp:
    """Calls ``callback`` at the earliest time given to :meth:`at` since it last fired."""

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._when: float | None = None

    def at(self, loop: asyncio.AbstractEventLoop, when: float | None) -> None:
        """Fire at ``when`` (loop time) unless already due as early; None: nothing new."""
        if when is None:
            return
        if self._handle is not None and self._when is not None and self._when <= when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._when = None

    def _fire(self) -> None:
        self._handle = self._when = None
        self.callback()
