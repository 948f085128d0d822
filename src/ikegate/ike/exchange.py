"""One request being answered: the decoded request, the response being built, and the
task protocol every exchange feature follows.

A task (strongSwan's model, src/libcharon/sa/ikev2/tasks/) is one feature of an exchange:
``process_r`` reads what it needs from the request, ``build_r`` adds its payloads to the
response and says whether it is finished.  A task that must refuse raises :class:`Abort`
with the notify to answer; the response then carries only that notify.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ikegate.ike.events import Endpoint
from ikegate.wire.constants import NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload


class Abort(Exception):
    """Answer the request with an error notify (and delete the IKE SA if ``fatal``)."""

    def __init__(self, notify: int, data: bytes = b"", *, fatal: bool = True, reason: str = "", extra=()) -> None:
        super().__init__(reason or NotifyType(notify).name)
        self.notify = notify
        self.data = data
        self.fatal = fatal
        self.reason = reason or NotifyType(notify).name
        self.extra = list(extra)  # payloads to send along (e.g. an EAP-Failure)


class Drop(Exception):
    """Ignore the request: log it, answer nothing, keep the SA as it is."""


@dataclass
class Exchange:
    exchange: int
    message_id: int
    payloads: list  # the request's payloads (decrypted inner payloads for SK messages)
    raw: bytes  # the whole request datagram as received (marker stripped)
    src: Endpoint
    dst: Endpoint
    now: float
    response: list = field(default_factory=list)
    delay: float = 0.0  # hold the response this long (EAP failure back-off)
    fatal_after_send: bool = False  # delete the IKE SA once the response is out
    waiting: bool = False  # a task asked RADIUS: answer once it answers (IkeSa.radius_answer)

    # -- reading the request ---------------------------------------------------------

    def get(self, ptype: int):
        for p in self.payloads:
            if p.type == ptype:
                return p
        return None

    def get_all(self, ptype: int) -> list:
        return [p for p in self.payloads if p.type == ptype]

    def notify(self, ntype: int) -> NotifyPayload | None:
        for p in self.payloads:
            if p.type == PayloadType.NOTIFY and p.notify_type == ntype:
                return p
        return None

    def has_notify(self, ntype: int) -> bool:
        return self.notify(ntype) is not None

    # -- building the response ---------------------------------------------------------

    def add(self, payload) -> None:
        self.response.append(payload)

    def add_notify(self, ntype: int, data: bytes = b"", *, protocol: int = 0, spi: bytes = b"") -> None:
        self.response.append(NotifyPayload(notify_type=ntype, data=data, protocol=protocol, spi=spi))


class Task:
    """Base of the responder tasks; both hooks are optional."""

    def process_r(self, ex: Exchange) -> None:  # pragma: no cover - default does nothing
        pass

    def build_r(self, ex: Exchange) -> bool:
        """Add payloads; True when the task is finished and can be dropped."""
        return True
