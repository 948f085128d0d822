"""MOBIKE (RFC 4555), responder side of IKE_AUTH: announce support when the peer does.

``mobike=no`` ignores the peer's MOBIKE_SUPPORTED.  We have no additional addresses to
offer, so the last IKE_AUTH response says NO_ADDITIONAL_ADDRESSES.
"""

from __future__ import annotations

from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import ExchangeType, NotifyType


class IkeMobike(Task):
    def __init__(self, sa) -> None:
        self.sa = sa

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange == ExchangeType.IKE_AUTH and ex.has_notify(NotifyType.MOBIKE_SUPPORTED):
            self.sa.peer_mobike = True

    def build_r(self, ex: Exchange) -> bool:
        sa = self.sa
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        if not sa.auth_done:
            return False
        if sa.peer_mobike and getattr(sa.conn, "mobike", True):
            sa.mobike = True
            ex.add_notify(NotifyType.MOBIKE_SUPPORTED)
            ex.add_notify(NotifyType.NO_ADDITIONAL_ADDRESSES)
        return True
