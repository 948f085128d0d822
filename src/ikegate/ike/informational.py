"""INFORMATIONAL and CREATE_CHILD_SA requests on an IKE SA (RFC 7296 1.4, 1.3).

- An empty INFORMATIONAL is a liveness check (DPD): answered empty.
- AUTHENTICATION_FAILED from an initiator that gave up during IKE_AUTH (e.g. a failed
  EAP method on its side): answered, then the half-open SA goes.
- Delete of the IKE SA: answered empty, then the SA and its CHILD SAs go.
- Delete of CHILD SAs: the payload lists the peer's inbound SPIs (our outbound ones);
  we answer with a Delete of our inbound SPIs of the same CHILD SAs.
- CREATE_CHILD_SA: rekeying arrives with a later issue; until then we refuse politely
  with NO_ADDITIONAL_SAS, which leaves the IKE SA and its CHILD SAs as they are.
"""

from __future__ import annotations

import struct

from ikegate.ike.exchange import Exchange
from ikegate.wire.constants import NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import DeletePayload


def handle(sa, ex: Exchange) -> None:
    deletes = ex.get_all(PayloadType.DELETE)
    for delete in deletes:
        if delete.protocol == ProtocolId.IKE:
            sa.log.info("received DELETE for IKE_SA %s[%d]", sa.name, sa.unique_id)
            ex.fatal_after_send = True
            sa.down_reason = "deleted by peer"
            ex.response.clear()
            return
        if delete.protocol in (ProtocolId.ESP, ProtocolId.AH):
            ours = []
            for spi in delete.spis:
                if len(spi) != 4:
                    continue
                child = sa.child_by_spi_out(struct.unpack(">I", spi)[0])
                if child is None:
                    sa.log.info("received DELETE for unknown %s CHILD_SA with SPI %s", ProtocolId(delete.protocol).name, spi.hex())
                    continue
                ours.append(struct.pack(">I", child.spi_in))
                sa.remove_child(child, "deleted by peer")
            if ours:
                ex.add(DeletePayload(protocol=delete.protocol, spi_size=4, spis=ours))
    for notify in ex.get_all(PayloadType.NOTIFY):
        if notify.notify_type < 16384:
            sa.log.info("received %s error notify", _name(notify.notify_type))
            if notify.notify_type == NotifyType.AUTHENTICATION_FAILED and not sa.auth_done:
                # RFC 7296 2.21.2: the initiator refused our authentication (or gave up on
                # EAP); the half-open SA is of no further use.
                ex.fatal_after_send = True
                sa.down_reason = "peer reported AUTHENTICATION_FAILED"


def create_child_sa(sa, ex: Exchange) -> None:
    sa.log.info("CREATE_CHILD_SA not supported yet, sending NO_ADDITIONAL_SAS")
    ex.add_notify(NotifyType.NO_ADDITIONAL_SAS)


def _name(value: int) -> str:
    try:
        return NotifyType(value).name
    except ValueError:
        return str(value)
