"""IKE_SA_INIT, responder side: proposal choice, key exchange, nonces, IKE keys.

The client's first proposal that matches any configured one wins, with the client's
algorithm order (the seed's rule; ``charon.prefer_configured_proposals = no``).  If the
chosen proposal's KE method is not the one the client's KE payload used, the answer is
INVALID_KE_PAYLOAD naming the chosen method, and the client retries (RFC 7296 1.2).
Also here: the IKE fragmentation and signature hash algorithm notifies of this exchange.
"""

from __future__ import annotations

import struct

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError, InvalidKeyExchange
from ikegate.crypto.keys import derive_ike_keys
from ikegate.crypto.transforms import get_encr, get_integ, get_prf
from ikegate.ike.exchange import Abort, Exchange, Task
from ikegate.ike.tasks.ike_redirect import redirect_on_init
from ikegate.log import CTRLMORE
from ikegate.pki.signature import supported_hash_algorithms
from ikegate.proposal import Proposal, format_proposals, select_proposal
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import KePayload, NoncePayload, SaPayload


class IkeInit(Task):
    def __init__(self, sa) -> None:
        self.sa = sa
        self.peer_ke: KePayload | None = None

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return
        sa = self.sa
        sa_payload = ex.get(PayloadType.SA)
        ke = ex.get(PayloadType.KE)
        nonce = ex.get(PayloadType.NONCE)
        if sa_payload is None or ke is None or nonce is None:
            raise Abort(NotifyType.INVALID_SYNTAX, reason="IKE_SA_INIT without SA, KE or Nonce")
        if not 16 <= len(nonce.data) <= 256:
            raise Abort(NotifyType.INVALID_SYNTAX, reason=f"nonce of {len(nonce.data)} bytes")
        offered = [Proposal.from_wire(p) for p in sa_payload.proposals if p.protocol == ProtocolId.IKE]
        chosen, conn = self._select(offered)
        if chosen is None:
            sa.log_cfg.info("received proposals: %s", format_proposals(offered))
            sa.log_cfg.info("configured proposals: %s", format_proposals(self._configured()))
            sa.log.info("received proposals unacceptable")
            raise Abort(NotifyType.NO_PROPOSAL_CHOSEN)
        sa.log_cfg.info("selected proposal: %s", chosen)
        # RFC 5685: an overloaded gateway answers with REDIRECT alone (Abort), before any
        # key exchange, after the proposal check (strongSwan's order in ike_init.c build_r)
        redirect_on_init(sa, ex, nonce.data)
        if chosen.dh_group != ke.group:
            sa.log.info(
                "DH group %s unacceptable, requesting %s",
                _group_name(ke.group),
                _group_name(chosen.dh_group),
            )
            raise Abort(NotifyType.INVALID_KE_PAYLOAD, struct.pack(">H", chosen.dh_group))
        try:
            group = get_group(chosen.dh_group)
            exchange_ = group.generate()
            shared = exchange_.compute(ke.data)
        except InvalidKeyExchange as exc:
            # as strongSwan's ike_init.c build_r: an unusable KE value is NO_PROPOSAL_CHOSEN
            sa.log.info("applying DH public value failed: %s", exc)
            raise Abort(NotifyType.NO_PROPOSAL_CHOSEN, reason="invalid KE payload") from None
        except CryptoError as exc:
            sa.log.info("key exchange %s failed: %s", _group_name(chosen.dh_group), exc)
            raise Abort(NotifyType.NO_PROPOSAL_CHOSEN, reason=str(exc)) from None
        sa.proposal = chosen
        sa.init_conn = conn
        sa.nonce_i = nonce.data
        sa.nonce_r = sa.rt.random(sa.rt.settings.nonce_size)
        self._ke_public = exchange_.public
        self._shared = shared
        # peer capabilities announced in this exchange
        if ex.has_notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED):
            sa.peer_frag = True
        hash_notify = ex.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        if hash_notify is not None:
            data = hash_notify.data
            sa.peer_hash_algs = {struct.unpack_from(">H", data, i)[0] for i in range(0, len(data) - 1, 2)}

    def _configured(self) -> list[Proposal]:
        result: list[Proposal] = []
        for conn in self.sa.candidate_conns:
            for p in conn.ike:
                if p not in result:
                    result.append(p)
        return result

    def _select(self, offered: list[Proposal]):
        """The chosen proposal and the conn whose ike= accepted it (first candidate wins)."""
        sa = self.sa
        prefer = sa.rt.settings.prefer_configured_proposals
        sa.log_cfg.log(CTRLMORE, "received proposals: %s", format_proposals(offered))
        for conn in sa.candidate_conns:
            sa.log_cfg.log(CTRLMORE, "configured proposals: %s", format_proposals(conn.ike))
            chosen = select_proposal(conn.ike, offered, prefer_configured=prefer)
            if chosen is not None:
                return chosen, conn
        return None, None

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return True
        sa = self.sa
        ex.add(SaPayload(proposals=[sa.proposal.to_wire(spi=b"")]))
        ex.add(KePayload(group=sa.proposal.dh_group, data=self._ke_public))
        ex.add(NoncePayload(data=sa.nonce_r))
        # keys: SKEYSEED and the seven SK_* (RFC 7296 2.14)
        p = sa.proposal
        alg, bits = p.encr_alg
        encr = get_encr(alg, bits)
        integ = None if encr.aead else get_integ(p.integ_alg)
        prf = get_prf(p.prf_alg)
        _, keys = derive_ike_keys(prf, encr, integ, sa.nonce_i, sa.nonce_r, self._shared, sa.spi_i, sa.spi_r)
        sa.install_ike_keys(p, prf, keys)
        self._shared = b""
        return True

class IkeInitNotifies(Task):
    """The IKE_SA_INIT response's fragmentation and signature-hash notifies; a task of its
    own so the task order puts them after NAT-D and CERTREQ, where strongSwan puts them."""

    def __init__(self, sa) -> None:
        self.sa = sa

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return True
        sa = self.sa
        frag = getattr(sa.init_conn, "fragmentation", "yes")
        if sa.peer_frag and frag != "no":
            ex.add_notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)
        else:
            sa.peer_frag = False
        if sa.peer_hash_algs is not None:
            ex.add_notify(
                NotifyType.SIGNATURE_HASH_ALGORITHMS,
                b"".join(struct.pack(">H", h) for h in supported_hash_algorithms()),
            )
        return True


def _group_name(group: int | None) -> str:
    from ikegate.proposal import DH_NAMES

    return DH_NAMES.get(group, f"KE_{group}")
