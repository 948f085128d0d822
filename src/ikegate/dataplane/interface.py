"""The data-plane interface the IKE side drives.

The engine emits ``ChildSaUp``/``ChildSaDown``/``ChildSaUpdated`` events; the daemon hands
them to a backend implementing :class:`DataPlane`: the userspace ESP backend (TUN device
and sockets) or the kernel's XFRM.  The engine knows nothing else about how packets move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ikegate.ike.events import ChildSaInfo


@dataclass
class SaCounters:
    bytes_in: int = 0
    packets_in: int = 0
    bytes_out: int = 0
    packets_out: int = 0
    last_in: float | None = None  # monotonic time of the last inbound packet
    last_out: float | None = None
    dropped: int = 0

    def plus(self, older: "SaCounters") -> "SaCounters":
        """These counts added to ``older``'s (an SA's earlier incarnation), the last-use
        times taken from these where set."""
        return SaCounters(bytes_in=self.bytes_in + older.bytes_in, packets_in=self.packets_in + older.packets_in,
                          bytes_out=self.bytes_out + older.bytes_out, packets_out=self.packets_out + older.packets_out,
                          last_in=self.last_in or older.last_in, last_out=self.last_out or older.last_out,
                          dropped=self.dropped + older.dropped)


class DataPlane(Protocol):
    name: str

    def start(self) -> None:
        """Bring up devices/sockets (called once, before any SA is installed)."""

    def install(self, info: ChildSaInfo) -> None:
        """Install both directions of a CHILD SA and route its remote selectors."""

    def update(self, info: ChildSaInfo) -> None:
        """The outer addresses/ports or the encapsulation of an SA changed."""

    def remove(self, info: ChildSaInfo) -> None:
        """Remove both directions of a CHILD SA (and routes nobody else needs)."""

    def counters(self, spi_in: int) -> SaCounters | None:
        """Traffic counters of the SA with this inbound SPI."""

    def stop(self) -> None:
        """Remove everything this backend installed."""

    def esp_supported(self, ttype: int, alg: int, bits: int) -> bool:
        """Can this backend carry ESP with this transform (type, id, key bits)?  The
        daemon offers only those in CHILD SA proposals (:mod:`ikegate.dataplane.algorithms`)."""
