"""A CHILD SA as the IKE side knows it: proposal, SPIs, keys, selectors, life.

``initiator`` says who started the exchange that created the SA (RFC 7296 2.17): the
"i" keys protect the traffic from that exchange's initiator.  The CHILD SAs of IKE_AUTH
and of the client's CREATE_CHILD_SA requests were initiated by the peer, so our inbound
keys are the "i" ones; a CHILD SA made by the gateway's own rekey has them the other
way round.

States (strongSwan's child_sa_state_t, reduced to what a responder gateway needs):

- ``installed``: in use;
- ``rekeying``: our CREATE_CHILD_SA rekeying it is in flight (``rekey_task``);
- ``rekeyed``: a successor exists, the SA waits for its Delete (``superseded``);
- ``deleting``: our INFORMATIONAL Delete of it is in flight;
- ``deleted``: Deletes exchanged; the inbound SA stays installed until
  ``linger_until`` for packets still on the way (``charon.delete_rekeyed_delay``).

``superseded`` marks an SA replaced by a rekey (or the redundant SA of a collision):
its removal is ``ChildSaDown(replaced=True)``, no updown.  ``rekey_at``/``expire_at``
are the soft and hard lifetimes (tasks/lifetimes.py), None for never.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ikegate.ike.events import ChildSaInfo
from ikegate.proposal import Proposal
from ikegate.wire.constants import ProtocolId


@dataclass(eq=False)
class ChildSa:
    unique_id: int
    reqid: int
    proposal: Proposal
    spi_in: int
    spi_out: int
    keys: object = field(repr=False)  # ChildKeys
    local_ts: tuple = ()
    remote_ts: tuple = ()
    created: float = 0.0
    initiator: bool = False  # we initiated the exchange that created it
    state: str = "installed"  # installed | rekeying | rekeyed | deleting | deleted
    superseded: bool = False
    info: ChildSaInfo | None = None
    rekey_at: float | None = None
    expire_at: float | None = None
    linger_until: float | None = None
    rekey_task: object = field(default=None, repr=False)  # tasks.child_rekey_initiator.ChildRekey

    @classmethod
    def create(cls, sa, proposal: Proposal, spi_in: int, spi_out: int, keys, local_ts, remote_ts,
               reqid: int | None = None, *, initiator: bool = False) -> "ChildSa":
        gw = sa.gw
        child = cls(
            unique_id=gw.next_child_id(),
            reqid=reqid if reqid is not None else gw.next_reqid(),
            proposal=proposal,
            spi_in=spi_in,
            spi_out=spi_out,
            keys=keys,
            local_ts=local_ts,
            remote_ts=remote_ts,
            created=sa.now,
            initiator=initiator,
        )
        child.info = child.make_info(sa)
        return child

    @property
    def in_use(self) -> bool:
        """Installed and neither replaced nor on its way out: may be rekeyed."""
        return self.state == "installed" and not self.superseded

    def make_info(self, sa) -> ChildSaInfo:
        alg, bits = self.proposal.encr_alg
        keys = self.keys
        if self.initiator:  # our outbound traffic is the exchange initiator's: the "i" keys
            key_in = (keys.encr_r, keys.integ_r)
            key_out = (keys.encr_i, keys.integ_i)
        else:
            key_in = (keys.encr_i, keys.integ_i)
            key_out = (keys.encr_r, keys.integ_r)
        return ChildSaInfo(
            ike_unique_id=sa.unique_id,
            child_unique_id=self.unique_id,
            reqid=self.reqid,
            conn=sa.conn.name,
            spi_in=self.spi_in,
            spi_out=self.spi_out,
            protocol=ProtocolId.ESP,
            encr_id=alg,
            encr_key_bits=bits,
            integ_id=self.proposal.integ_alg,
            key_in_encr=key_in[0],
            key_in_integ=key_in[1],
            key_out_encr=key_out[0],
            key_out_integ=key_out[1],
            esn=self.proposal.esn_enabled,
            local=sa.local,
            remote=sa.remote,
            udp_encap=sa.udp_encap,
            local_ts=self.local_ts,
            remote_ts=self.remote_ts,
            virtual_ips=tuple(sa.vips),
            local_id=str(sa.local_id),
            remote_id=str(sa.remote_id),
            eap_id=sa.eap_id,
        )

    def describe(self, now: float | None = None) -> dict:
        result = {
            "id": self.unique_id,
            "reqid": self.reqid,
            "state": self.state.upper(),
            "proposal": str(self.proposal),
            "spi_in": f"{self.spi_in:08x}",
            "spi_out": f"{self.spi_out:08x}",
            "local_ts": [str(t) for t in self.local_ts],
            "remote_ts": [str(t) for t in self.remote_ts],
            "encap": bool(self.info and self.info.udp_encap),
        }
        if now is not None:
            result["rekey_in"] = round(self.rekey_at - now, 1) if self.rekey_at is not None else None
            result["expires_in"] = round(self.expire_at - now, 1) if self.expire_at is not None else None
        return result
