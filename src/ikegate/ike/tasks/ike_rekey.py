"""CREATE_CHILD_SA for the IKE SA itself, responder side (RFC 7296 1.3.2, 2.18;
strongSwan's ike_rekey.c).

The initiator offers IKE proposals carrying its new SPI, a nonce and a KE.  We answer
with our new SPI, nonce and KE; the new IKE SA gets SKEYSEED = prf_old(SK_d_old,
g^ir | Ni | Nr) and fresh keys, message IDs start again at 0, and every CHILD SA, lease
and identity moves over.  The old SA waits for the initiator's Delete (or goes quietly
after a while): its CHILD SAs are no longer its own, so nothing is torn down with it.

As strongSwan: TEMPORARY_FAILURE while one of our CHILD SA exchanges (rekey, delete)
is in flight ("a child is half-open").  If our own IKE rekey is in flight the new SA is
made and answered but not switched to: the collision is resolved when our answer
arrives (tasks/ike_rekey_initiator.py).
"""

from __future__ import annotations

import struct

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError, InvalidKeyExchange
from ikegate.crypto.keys import derive_ike_rekey_keys
from ikegate.crypto.transforms import get_encr, get_integ, get_prf
from ikegate.ike.exchange import Abort, Exchange
from ikegate.proposal import Proposal, format_proposals, select_proposal
from ikegate.wire.constants import NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import KePayload, NoncePayload, SaPayload

REKEYED_SA_GRACE = 30.0  # seconds the replaced IKE SA waits for the initiator's Delete


def process_ike_rekey(sa, ex: Exchange, offer: SaPayload) -> None:
    nonce, ke = ex.get(PayloadType.NONCE), ex.get(PayloadType.KE)
    if nonce is None or ke is None or not 16 <= len(nonce.data) <= 256:
        raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="IKE rekey without nonce or KE")
    if any(c.rekey_task is not None or c.state == "deleting" for c in sa.children.values()):
        sa.log.info("peer initiated rekeying, but a child is half-open")
        raise Abort(NotifyType.TEMPORARY_FAILURE, fatal=False, reason="a CHILD_SA exchange is in flight")
    offered = [Proposal.from_wire(p) for p in offer.proposals if p.protocol == ProtocolId.IKE]
    chosen = select_proposal(sa.conn.ike, offered, prefer_configured=sa.rt.settings.prefer_configured_proposals)
    if chosen is None:
        sa.log_cfg.info("received proposals: %s", format_proposals(offered))
        sa.log_cfg.info("configured proposals: %s", format_proposals(sa.conn.ike))
        raise Abort(NotifyType.NO_PROPOSAL_CHOSEN, fatal=False, reason="no acceptable IKE rekey proposal")
    if len(chosen.spi) != 8 or chosen.spi == bytes(8):
        raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="IKE rekey proposal without an 8-byte SPI")
    if chosen.dh_group != ke.group:
        raise Abort(NotifyType.INVALID_KE_PAYLOAD, struct.pack(">H", chosen.dh_group), fatal=False)
    try:
        exchange = get_group(chosen.dh_group).generate()
        shared = exchange.compute(ke.data)
        alg, bits = chosen.encr_alg
        encr = get_encr(alg, bits)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        prf = get_prf(chosen.prf_alg)
    except InvalidKeyExchange:
        raise Abort(NotifyType.INVALID_SYNTAX, fatal=False, reason="invalid KE payload") from None
    except CryptoError as exc:
        raise Abort(NotifyType.NO_PROPOSAL_CHOSEN, fatal=False, reason=str(exc)) from None
    nonce_r = sa.rt.random(sa.rt.settings.nonce_size)
    new = sa.gw.new_rekeyed_sa(sa, spi_i=chosen.spi)
    _, keys = derive_ike_rekey_keys(sa.prf, sa.keys.sk_d, prf, encr, integ, shared,
                                    nonce.data, nonce_r, new.spi_i, new.spi_r)
    new.nonce_i, new.nonce_r = nonce.data, nonce_r
    new.install_ike_keys(chosen, prf, keys)
    sa.log_cfg.info("selected proposal: %s", chosen)
    ex.add(SaPayload(proposals=[chosen.to_wire(spi=new.spi_r)]))
    ex.add(NoncePayload(data=nonce_r))
    ex.add(KePayload(group=chosen.dh_group, data=exchange.public))
    if sa.ike_rekey is not None:  # ours is in flight: it decides which new SA stays
        sa.inherit_identity(new)
        sa.ike_rekey.collide(new, nonce.data, nonce_r)
        nxt = new.next_timer()
        if nxt is not None:
            sa.gw.schedule(new, nxt)
        return
    sa.hand_over(new, grace=REKEYED_SA_GRACE)
