"""A data plane that carries nothing: it records the SAs it is given.

Used where no packet has to move (configuration checks, tests of the IKE side, hosts
where neither the kernel nor the userspace backend can run); ``ikegate status`` still
shows every CHILD SA.
"""

from __future__ import annotations

from ikegate.dataplane.algorithms import userspace_esp_supported
from ikegate.dataplane.interface import SaCounters
from ikegate.ike.events import ChildSaInfo
from ikegate.log import get_logger

log = get_logger("knl")


class RecordingDataPlane:
    name = "none"
    description = "none, SAs are recorded but no ESP is carried"  # for ikegate statusall

    def __init__(self) -> None:
        self.installed: dict[int, ChildSaInfo] = {}
        self.history: list[tuple[str, int]] = []

    @staticmethod
    def esp_supported(ttype: int, alg: int, bits: int) -> bool:
        """Proposals as if the userspace backend ran (what a gateway without ESP would
        negotiate if it had one), :func:`~ikegate.dataplane.algorithms.userspace_esp_supported`."""
        return userspace_esp_supported(ttype, alg, bits)

    def start(self) -> None:
        log.info("data plane 'none': CHILD SAs are recorded, no packet is carried")

    def install(self, info: ChildSaInfo) -> None:
        self.installed[info.spi_in] = info
        self.history.append(("install", info.spi_in))

    def update(self, info: ChildSaInfo) -> None:
        self.installed[info.spi_in] = info
        self.history.append(("update", info.spi_in))

    def remove(self, info: ChildSaInfo) -> None:
        self.installed.pop(info.spi_in, None)
        self.history.append(("remove", info.spi_in))

    def counters(self, spi_in: int) -> SaCounters | None:
        return SaCounters() if spi_in in self.installed else None

    def stop(self) -> None:
        self.installed.clear()
