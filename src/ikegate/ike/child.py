"""A CHILD SA as the IKE side knows it: proposal, SPIs, keys, selectors, life."""

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
    state: str = "installed"  # installed | rekeyed | deleting
    info: ChildSaInfo | None = None

    @classmethod
    def create(cls, sa, proposal: Proposal, spi_in: int, spi_out: int, keys, local_ts, remote_ts,
               reqid: int | None = None) -> "ChildSa":
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
        )
        child.info = child.make_info(sa)
        return child

    def make_info(self, sa) -> ChildSaInfo:
        alg, bits = self.proposal.encr_alg
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
            key_in_encr=self.keys.encr_i,
            key_in_integ=self.keys.integ_i,
            key_out_encr=self.keys.encr_r,
            key_out_integ=self.keys.integ_r,
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

    def describe(self) -> dict:
        return {
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
