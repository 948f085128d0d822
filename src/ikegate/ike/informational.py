"""INFORMATIONAL and CREATE_CHILD_SA requests on an IKE SA (RFC 7296 1.4, 1.3).

- An empty INFORMATIONAL is a liveness check (DPD): answered empty.
- AUTHENTICATION_FAILED from an initiator that gave up during IKE_AUTH (e.g. a failed
  EAP method on its side) or refused our AUTH: answered, then the SA goes.
- Delete of the IKE SA: answered empty, then the SA and its CHILD SAs go.
- Delete of CHILD SAs: the payload lists the peer's inbound SPIs (our outbound ones);
  we answer with a Delete of our inbound SPIs of the same CHILD SAs.  As strongSwan's
  child_delete.c: an SA we are deleting ourselves is left out of the answer (our own
  Delete finishes it), one whose Deletes were exchanged is ignored; deleting an SA our
  rekey is in flight for, or the redundant SA of a rekey collision, is reported to
  that rekey (tasks/child_rekey_initiator.py).
- Delete of the IKE SA while our IKE rekey is in flight: a new SA the peer made by
  rekeying meanwhile takes over first (tasks/ike_rekey_initiator.py).
- CREATE_CHILD_SA: rekeying of the IKE SA (tasks/ike_rekey.py) or of a CHILD SA, or a
  new CHILD SA (tasks/child_rekey.py).
"""

from __future__ import annotations

import struct

from ikegate.ike.exchange import Abort, Exchange
from ikegate.wire.constants import NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import DeletePayload


def handle(sa, ex: Exchange) -> None:
    deletes = ex.get_all(PayloadType.DELETE)
    for delete in deletes:
        if delete.protocol == ProtocolId.IKE:
            sa.log.info("received DELETE for IKE_SA %s[%d]", sa.name, sa.unique_id)
            if sa.ike_rekey is not None:
                sa.ike_rekey.peer_deleted()
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
                sa.log.info("received DELETE for %s CHILD_SA with SPI %s", ProtocolId(delete.protocol).name, spi.hex())
                if child.state in ("deleting", "deleted"):
                    continue  # our own Delete of it is in flight or done
                if child.rekey_task is not None:
                    child.rekey_task.peer_deleted()
                for task in list(sa.child_rekeys):
                    if task.redundant_deleted(child):
                        child.superseded = True
                ours.append(struct.pack(">I", child.spi_in))
                sa.remove_child(child, "deleted by peer")
            if ours:
                ex.add(DeletePayload(protocol=delete.protocol, spi_size=4, spis=ours))
    _mobike(sa, ex)
    for notify in ex.get_all(PayloadType.NOTIFY):
        if notify.notify_type < 16384:
            sa.log.info("received %s error notify", _name(notify.notify_type))
            if notify.notify_type == NotifyType.AUTHENTICATION_FAILED:
                # RFC 7296 2.21.2: the initiator refused our authentication (also after our
                # last IKE_AUTH answer, which made the SA established on our side: openiked
                # refusing a signature where it expected a PSK) or gave up on EAP; as
                # strongSwan does, the SA goes.
                ex.fatal_after_send = True
                sa.down_reason = "peer reported AUTHENTICATION_FAILED"


def _mobike(sa, ex: Exchange) -> None:
    """RFC 4555: UPDATE_SA_ADDRESSES moves the IKE and CHILD SAs to the addresses this
    request came from/to; NAT-D payloads are answered and re-evaluated; COOKIE2 echoed."""
    from ikegate.ike.tasks.ike_natd import natd_hash

    update = ex.notify(NotifyType.UPDATE_SA_ADDRESSES)
    sources = [n.data for n in ex.get_all(PayloadType.NOTIFY) if n.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP]
    dest = ex.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    cookie2 = ex.notify(NotifyType.COOKIE2)
    if update is None and not sources and cookie2 is None:
        return
    if not sa.mobike:
        if update is not None:
            sa.log.info("ignoring UPDATE_SA_ADDRESSES: MOBIKE is not enabled on this IKE SA")
        return
    if sources and dest is not None:
        sa.nat_remote = natd_hash(sa.spi_i, sa.spi_r, ex.src) not in sources
        sa.nat_local = dest.data != natd_hash(sa.spi_i, sa.spi_r, ex.dst)
        source = sa.rt.random(20) if sa.nat_faked else natd_hash(sa.spi_i, sa.spi_r, ex.dst)
        ex.add_notify(NotifyType.NAT_DETECTION_SOURCE_IP, source)
        ex.add_notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natd_hash(sa.spi_i, sa.spi_r, ex.src))
    if update is not None:
        sa.log.info("peer moved to %s (UPDATE_SA_ADDRESSES)", ex.src)
        sa.update_endpoints(ex.dst, ex.src)
    if cookie2 is not None:
        ex.add_notify(NotifyType.COOKIE2, cookie2.data)


def create_child_sa(sa, ex: Exchange) -> None:
    from ikegate.ike.tasks.child_rekey import process_child
    from ikegate.ike.tasks.ike_rekey import process_ike_rekey

    offer = ex.get(PayloadType.SA)
    if offer is None or not offer.proposals:
        raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="CREATE_CHILD_SA without SA payload")
    if any(p.protocol == ProtocolId.IKE for p in offer.proposals):
        process_ike_rekey(sa, ex, offer)
    else:
        process_child(sa, ex, offer)


def _name(value: int) -> str:
    try:
        return NotifyType(value).name
    except ValueError:
        return str(value)
