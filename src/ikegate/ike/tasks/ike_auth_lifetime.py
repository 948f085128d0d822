"""AUTH_LIFETIME (RFC 4478), responder side of IKE_AUTH (strongSwan's ike_auth_lifetime.c).

With ``reauth=yes`` the IKE SA has a reauthentication time.  A responder cannot
reauthenticate a client that used EAP or got virtual IPs (ike_sa.c
``ike_sa_can_reauthenticate``), so strongSwan tells the client in the last IKE_AUTH
response how many seconds it has left (a 32-bit AUTH_LIFETIME notify) and deletes the
IKE SA at that time plus ``over_time`` unless the client reauthenticated first
(tasks/lifetimes.py).  ikegate cannot reauthenticate any client itself (it never
initiates IKE_SA_INIT), so it sends the notify whenever there is a reauthentication
time; for the EAP clients of the seed that is exactly strongSwan's behaviour.
``rekey=no`` leaves the time at zero: no notify.
"""

from __future__ import annotations

import struct

from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import ExchangeType, NotifyType


class IkeAuthLifetime(Task):
    def __init__(self, sa) -> None:
        self.sa = sa

    def build_r(self, ex: Exchange) -> bool:
        sa = self.sa
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        if not sa.auth_done:
            return False
        if sa.reauth_at is not None and not sa.original_initiator:
            lifetime = max(int(sa.reauth_at - sa.now), 0)
            ex.add_notify(NotifyType.AUTH_LIFETIME, struct.pack(">I", lifetime))
            sa.log.info("sending AUTH_LIFETIME of %ds", lifetime)
        return True
