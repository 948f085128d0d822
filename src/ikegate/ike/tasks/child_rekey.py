"""CREATE_CHILD_SA for CHILD SAs, responder side: rekeying (RFC 7296 1.3.3) and
additional CHILD SAs (1.3.1); strongSwan's child_rekey.c / child_create.c.

- ``N(REKEY_SA)`` names the SA being rekeyed by the initiator's inbound SPI (our outbound
  one).  The new SA keeps the old one's reqid; the old one stays installed until the
  initiator deletes it.  Rekeying an SA that was already rekeyed is allowed: Windows has
  been seen to rekey the same CHILD SA twice before deleting it (strongSwan 84a5208d98).
- With a KE payload the DH group of the chosen ESP proposal must be the KE's, else
  INVALID_KE_PAYLOAD names the group we want; KEYMAT then includes the new g^ir.
- Without REKEY_SA it is a new CHILD SA, narrowed like the first one.
- While our own rekey of the IKE SA is in flight: TEMPORARY_FAILURE ("unable to create
  CHILD_SA while rekeying IKE_SA"); an SA we are deleting: TEMPORARY_FAILURE; one whose
  Deletes were exchanged (kept for late packets): CHILD_SA_NOT_FOUND.  If our own rekey
  of the same CHILD SA is in flight both complete and the collision is resolved when our
  answer arrives (tasks/child_rekey_initiator.py).
"""

from __future__ import annotations

import struct

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError, InvalidKeyExchange
from ikegate.ike.exchange import Abort, Exchange
from ikegate.ike.tasks.child_create import _selectors, build_child
from ikegate.proposal import Proposal, select_proposal
from ikegate.wire.constants import NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import KePayload, NoncePayload


def process_child(sa, ex: Exchange, offer) -> None:
    nonce = ex.get(PayloadType.NONCE)
    if nonce is None or not 16 <= len(nonce.data) <= 256:
        raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="CREATE_CHILD_SA without a valid nonce")
    tsi, tsr = _selectors(ex.get(PayloadType.TSi)), _selectors(ex.get(PayloadType.TSr))
    if sa.ike_rekey is not None:
        raise Abort(NotifyType.TEMPORARY_FAILURE, fatal=False, reason="unable to create CHILD_SA while rekeying IKE_SA")
    old = None
    rekey = ex.notify(NotifyType.REKEY_SA)
    if rekey is not None:
        if rekey.protocol not in (ProtocolId.ESP, ProtocolId.AH) or len(rekey.spi) != 4:
            raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="malformed REKEY_SA notify")
        old = sa.child_by_spi_out(struct.unpack(">I", rekey.spi)[0])
        if old is None or old.state == "deleted":
            sa.log.info("CHILD_SA %s to rekey not found", rekey.spi.hex())
            ex.add_notify(NotifyType.CHILD_SA_NOT_FOUND, protocol=rekey.protocol, spi=rekey.spi)
            return
        if old.state == "deleting":
            raise Abort(NotifyType.TEMPORARY_FAILURE, fatal=False,
                        reason="unable to rekey, we are deleting the CHILD_SA")
        sa.log.info("rekeying CHILD_SA %s{%d}", sa.name, old.unique_id)
    offered = [Proposal.from_wire(p) for p in offer.proposals if p.protocol == ProtocolId.ESP]
    prefer = sa.rt.settings.prefer_configured_proposals
    chosen = select_proposal(sa.conn.esp, offered, prefer_configured=prefer)
    shared = None
    ke_public = None
    if chosen is not None and chosen.dh_group is not None:
        ke = ex.get(PayloadType.KE)
        if ke is None or ke.group != chosen.dh_group:
            sa.log.info("DH group %s unacceptable for the CHILD SA, requesting %d",
                        ke.group if ke else "none", chosen.dh_group)
            raise Abort(NotifyType.INVALID_KE_PAYLOAD, struct.pack(">H", chosen.dh_group), fatal=False)
        try:
            exchange = get_group(chosen.dh_group).generate()
            shared = exchange.compute(ke.data)
            ke_public = exchange.public
        except InvalidKeyExchange:
            raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="invalid KE payload") from None
        except CryptoError as exc:
            raise Abort(NotifyType.NO_PROPOSAL_CHOSEN, fatal=False, reason=str(exc)) from None
    nonce_r = sa.rt.random(sa.rt.settings.nonce_size)
    child = build_child(sa, ex, offer, tsi, tsr, nonce_i=nonce.data, nonce_r=nonce_r,
                        skip_dh=False, shared=shared, rekeyed=old, chosen=chosen)
    if child is None:
        return
    ex.add(NoncePayload(data=nonce_r))
    if ke_public is not None:
        ex.add(KePayload(group=chosen.dh_group, data=ke_public))
