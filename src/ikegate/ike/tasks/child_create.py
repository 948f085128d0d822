"""CHILD SA creation, responder side (RFC 7296 1.3 and 2.9; strongSwan's child_create.c).

The first CHILD SA rides on IKE_AUTH: its SA/TSi/TSr arrive in the first IKE_AUTH
request and are answered in the response that completes authentication.  ESP proposals
are chosen by the same rule as IKE ones (client's first acceptable proposal), ignoring KE
methods (no PFS in IKE_AUTH).  Selectors are narrowed: ours (``leftsubnet``) against the
client's TSr; for the client's side its virtual IPs (``rightsubnet`` unset = ``%dynamic``)
against its TSi, leniently: a client holding virtual IPs that proposes a single host
standing for itself (``0.0.0.0/32``, ``::/128``, its own address) gets its virtual IP back
(:func:`ikegate.ike.ts.narrow_to_virtual_ips`; strongSwan refuses those).  A refused
CHILD SA answers NO_PROPOSAL_CHOSEN or TS_UNACCEPTABLE and leaves the IKE SA up, as
strongSwan does.
"""

from __future__ import annotations

import struct

from ikegate.crypto.errors import CryptoError
from ikegate.crypto.keys import derive_child_keys
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.ike.child import ChildSa
from ikegate.ike.exchange import Exchange, Task
from ikegate.ike.runtime import end_selectors
from ikegate.ike.ts import Selector, narrow, narrow_to_virtual_ips
from ikegate.proposal import Proposal, format_proposals, select_proposal
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import SaPayload, TsPayload


class ChildCreate(Task):
    """The CHILD SA of IKE_AUTH."""

    def __init__(self, sa) -> None:
        self.sa = sa
        self.offer: SaPayload | None = None
        self.tsi: list[Selector] = []
        self.tsr: list[Selector] = []

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange != ExchangeType.IKE_AUTH or self.offer is not None:
            return
        self.offer = ex.get(PayloadType.SA)
        tsi, tsr = ex.get(PayloadType.TSi), ex.get(PayloadType.TSr)
        self.tsi = _selectors(tsi)
        self.tsr = _selectors(tsr)

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        sa = self.sa
        if not sa.auth_done:
            return False
        if self.offer is None:
            return True  # childless IKE SA (RFC 6023)
        if sa.vip_failed:
            return True
        build_child(sa, ex, self.offer, self.tsi, self.tsr, nonce_i=sa.nonce_i, nonce_r=sa.nonce_r, skip_dh=True)
        return True


def _selectors(payload: TsPayload | None) -> list[Selector]:
    if payload is None:
        return []
    result = []
    for ts in payload.selectors:
        sel = Selector.from_wire(ts)
        if sel is not None:
            result.append(sel)
    return result


def build_child(sa, ex: Exchange, offer: SaPayload, tsi: list[Selector], tsr: list[Selector], *,
                nonce_i: bytes, nonce_r: bytes, skip_dh: bool, shared: bytes | None = None,
                rekeyed: ChildSa | None = None, chosen: Proposal | None = None) -> ChildSa | None:
    """Choose the ESP proposal (unless the caller did), narrow the selectors, derive keys,
    add SA/TSi/TSr to the response and install the CHILD SA (replacing ``rekeyed``).
    Refusals add their notify and return None."""
    conn = sa.conn
    offered = [Proposal.from_wire(p) for p in offer.proposals if p.protocol == ProtocolId.ESP]
    if chosen is None:
        chosen = select_proposal(conn.esp, offered, prefer_configured=sa.rt.settings.prefer_configured_proposals,
                                 skip_dh=skip_dh)
    if chosen is None or len(chosen.spi) != 4:
        sa.log_cfg.info("received proposals: %s", format_proposals(offered))
        sa.log_cfg.info("configured proposals: %s", format_proposals(conn.esp))
        sa.log.info("no acceptable proposal found")
        ex.add_notify(NotifyType.NO_PROPOSAL_CHOSEN)
        return None
    sa.log_cfg.log(15, "received proposals: %s", format_proposals(offered))
    sa.log_cfg.log(15, "configured proposals: %s", format_proposals(conn.esp))
    sa.log_cfg.info("selected proposal: %s", chosen)
    local_cfg = end_selectors(conn.local) or [Selector.from_address(sa.local.host)]
    remote_cfg = end_selectors(conn.remote)
    local_ts = narrow(local_cfg, tsr)
    if remote_cfg is None and sa.vips:
        remote_ts = narrow_to_virtual_ips(sa.vips, tsi, peer_hosts=[sa.remote.host], any_host=sa.nat_remote)
        strict = narrow([Selector.from_address(a) for a in sa.vips], tsi)
        if remote_ts != strict:
            sa.log.info("TSi %s stands for the client itself: narrowed to its virtual IPs %s",
                        ", ".join(map(str, tsi)) or "none", ", ".join(map(str, remote_ts)))
    else:
        if remote_cfg is None:
            remote_cfg = [Selector.from_address(sa.remote.host)]
        remote_ts = narrow(remote_cfg, tsi)
    if not local_ts or not remote_ts:
        sa.log.info(
            "traffic selectors %s === %s unacceptable",
            ", ".join(map(str, tsr)) or "none",
            ", ".join(map(str, tsi)) or "none",
        )
        ex.add_notify(NotifyType.TS_UNACCEPTABLE)
        return None
    try:
        alg, bits = chosen.encr_alg
        encr = get_encr(alg, bits)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        keys = derive_child_keys(sa.prf, sa.keys.sk_d, nonce_i, nonce_r, encr, integ, shared=shared)
    except (CryptoError, TypeError) as exc:
        sa.log.info("CHILD SA keys failed: %s", exc)
        ex.add_notify(NotifyType.NO_PROPOSAL_CHOSEN)
        return None
    spi_in = sa.gw.allocate_child_spi()
    spi_out = struct.unpack(">I", chosen.spi)[0]
    child = ChildSa.create(sa, chosen, spi_in, spi_out, keys, tuple(local_ts), tuple(remote_ts),
                           reqid=rekeyed.reqid if rekeyed else None)
    ex.add(SaPayload(proposals=[chosen.to_wire(spi=struct.pack(">I", spi_in))]))
    ex.add(TsPayload(selectors=[s.to_wire() for s in remote_ts], responder=False))
    ex.add(TsPayload(selectors=[s.to_wire() for s in local_ts], responder=True))
    if rekeyed is not None:
        rekeyed.superseded = True
        if rekeyed.rekey_task is not None:  # our own rekey of it is in flight: a collision
            rekeyed.rekey_task.collide(child, nonce_i, nonce_r)
        else:
            rekeyed.state = "rekeyed"
    sa.add_child(child, rekey_of=rekeyed)
    return child
