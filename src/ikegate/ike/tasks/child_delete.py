"""Our INFORMATIONAL Delete of a CHILD SA (RFC 7296 1.4.1; strongSwan's child_delete.c,
initiator side).

Two reasons to send one:

- the SA reached its hard lifetime: it is removed at once (ChildSaDown, updown down)
  and the peer is told; an SA that was already superseded by a rekey (the peer should
  have deleted it) goes quietly, without a Delete, as strongSwan's expired-and-rekeyed
  case;
- it was replaced by our own rekey (or is the redundant SA of a rekey collision): the
  Delete lists our inbound SPI; once the peer answered, the inbound SA is kept for
  ``charon.delete_rekeyed_delay`` seconds for packets still on the way, then removed
  with ``replaced=True`` (no updown).

The answer (the peer's Delete of its inbound SPIs) needs nothing more from us.
"""

from __future__ import annotations

import struct

from ikegate.wire.constants import ExchangeType, ProtocolId
from ikegate.wire.payloads import DeletePayload


def send_delete(sa, spi_in: int, on_response=None) -> None:
    """Send the Delete for one of our inbound ESP SPIs."""
    sa.log.info("sending DELETE for ESP CHILD_SA with SPI %08x", spi_in)
    payload = DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=[struct.pack(">I", spi_in)])
    sa.send_request(ExchangeType.INFORMATIONAL, [payload], on_response)


def delete_child(sa, child, *, expired: bool = False) -> None:
    """Delete ``child``: expired (hard lifetime) or replaced by a rekey."""
    if expired:
        if child.superseded:
            sa.log.info("CHILD_SA %s{%d} expired before the peer deleted it, removing it", sa.name,
                        child.unique_id)
            sa.remove_child(child, "expired")
            return
        sa.log.info("closing expired CHILD_SA %s{%d} with SPIs %08x_i %08x_o", sa.name, child.unique_id,
                    child.spi_in, child.spi_out)
        sa.remove_child(child, "expired")
        send_delete(sa, child.spi_in)
        return
    child.state = "deleting"

    def answered(_payloads) -> None:
        if sa.children.get(child.spi_in) is not child:
            return
        sa.log.info("CHILD_SA closed")
        delay = sa.rt.settings.delete_rekeyed_delay
        if delay > 0:
            child.state = "deleted"
            child.linger_until = sa.now + delay
            return
        sa.remove_child(child, "rekeyed")

    send_delete(sa, child.spi_in, answered)
