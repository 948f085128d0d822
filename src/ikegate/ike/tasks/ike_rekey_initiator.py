"""The gateway's own rekey of the IKE SA (RFC 7296 1.3.2, 2.8, 2.18; strongSwan's
ike_rekey.c, initiator side), with ``reauth=no``.

Request: ``SA`` (the IKE SA's negotiated proposal, carrying our new SPI; its group first,
then the other groups of ``ike=``), ``Ni``, ``KEi`` of the same group (strongSwan's
``prefer_previous_dh_group``).  The answer's SA carries
the peer's new SPI.  The new IKE SA's initiator is then us: its SPIi is ours, our
messages carry the I flag and its SK keys are the initiator's
(``IkeSa.original_initiator``); SKEYSEED = prf_old(SK_d_old, g^ir | Ni | Nr).  Identities,
leases and CHILD SAs move over (``IkeSa.hand_over``) and the old IKE SA is deleted with
an INFORMATIONAL Delete sent on it.

Failures: INVALID_KE_PAYLOAD is retried once with the requested group if ``ike=``
allows it; TEMPORARY_FAILURE, NO_PROPOSAL_CHOSEN and other errors retry after
``RETRY_INTERVAL - random(RETRY_JITTER)`` seconds; NO_ADDITIONAL_SAS gives up (strongSwan
would reauthenticate; a responder cannot), leaving the hard lifetime to end the SA.

Collisions (RFC 7296 2.8.2): if the peer rekeys the IKE SA while our request is in
flight, tasks/ike_rekey.py answers it but does not switch over; it hands us the new SA
(:meth:`IkeRekey.collide`).  When our answer arrives, the exchange with the lowest of
the four nonces made the redundant SA: if that is ours we delete it (a Delete sent on
it) and switch to the peer's, whose initiator then deletes the old SA; otherwise we
switch to ours, wait for the peer to delete its redundant SA (and drop it after 30 s),
and delete the old one.  If our rekey fails or the peer deletes the old SA meanwhile,
the peer's new SA takes over ("peer did not notice IKE_SA rekey collision").
"""

from __future__ import annotations

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError
from ikegate.crypto.keys import derive_ike_rekey_keys
from ikegate.crypto.transforms import get_encr, get_integ, get_prf
from ikegate.ike.tasks.child_rekey_initiator import (
    RekeyInitiator,
    configured_groups,
    group_name,
    lower_nonce,
    nonce_greater,
    offered_groups,
)
from ikegate.ike.tasks.ike_rekey import REKEYED_SA_GRACE
from ikegate.ike.tasks.lifetimes import REDUNDANT_IKE_SA_TIMEOUT, retry_delay
from ikegate.proposal import Proposal
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import DeletePayload, KePayload, NoncePayload, SaPayload


class IkeRekey(RekeyInitiator):
    """One rekey of the IKE SA ``sa`` initiated by us (``sa.ike_rekey`` while in flight)."""

    _REJECTED = "received %s notify, IKE_SA not rekeyed"

    def __init__(self, sa) -> None:
        self.sa = sa
        self.group = sa.proposal.dh_group
        self.retried = False
        self.spi = b""
        self.nonce = b""
        self.proposal: Proposal | None = None
        self._dh = None
        self.collision = None  # the peer's new IKE SA, answered but not yet in use
        self.collision_nonces: tuple[bytes, bytes] = (b"", b"")

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        sa = self.sa
        sa.log.info("rekeying IKE_SA %s[%d]", sa.name, sa.unique_id)
        sa.ike_rekey = self
        self.spi = sa.gw.reserve_spi()
        self._send()

    def _send(self) -> None:
        sa = self.sa
        try:
            self._dh = get_group(self.group).generate()
        except CryptoError as exc:
            sa.log.info("DH group %s unusable for the IKE_SA rekey: %s", group_name(self.group), exc)
            self._failed(None)
            return
        self.nonce = sa.rt.random(sa.rt.settings.nonce_size)
        self.proposal = sa.proposal.with_(dh=offered_groups(self.group, configured_groups(sa.conn.ike)), number=1)
        payloads = [
            SaPayload(proposals=[self.proposal.to_wire(number=1, spi=self.spi)]),
            NoncePayload(data=self.nonce),
            KePayload(group=self.group, data=self._dh.public),
        ]
        sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, self.response)

    # -- what happens meanwhile ------------------------------------------------------------------

    def collide(self, new, nonce_i: bytes, nonce_r: bytes) -> None:
        """The peer rekeyed the IKE SA while our request is in flight; ``new`` is its SA."""
        self.sa.log.info("detected IKE_REKEY collision with IKE_REKEY")
        if self.collision is not None and self.collision is not new:
            self.collision.destroy("superseded by another colliding rekey")
        self.collision = new
        self.collision_nonces = (nonce_i, nonce_r)

    def _collision_alive(self) -> bool:
        from ikegate.ike.sa import DEAD

        return self.collision is not None and self.collision.state != DEAD

    def peer_deleted(self) -> None:
        """The peer deletes the old IKE SA while our request is in flight."""
        sa = self.sa
        sa.log.info("detected IKE_REKEY collision with IKE_DELETE")
        self._end()
        if self._collision_alive():
            sa.log.info("peer did not notice IKE_SA rekey collision, abort active rekeying")
            sa.hand_over(self.collision, grace=None)

    # -- the answer ------------------------------------------------------------------------------

    def response(self, payloads: list) -> None:
        if self.sa.ike_rekey is self:  # else this rekey ended meanwhile (e.g. the peer deleted the old SA)
            super().response(payloads)

    def _new_sa(self, payloads: list):
        sa = self.sa
        found = {p.type: p for p in reversed(payloads)}
        offer, nonce, ke = found.get(PayloadType.SA), found.get(PayloadType.NONCE), found.get(PayloadType.KE)
        if offer is None or len(offer.proposals) != 1 or nonce is None or ke is None:
            sa.log.info("IKE rekey response without one proposal, a nonce and a KE payload")
            return None
        chosen = Proposal.from_wire(offer.proposals[0])
        if (chosen.protocol != ProtocolId.IKE or len(chosen.spi) != 8 or chosen.spi == bytes(8)
                or self.proposal.select(chosen) is None or chosen.dh_group != self.group or ke.group != self.group):
            sa.log_cfg.info("peer chose %s (SPI %s), which we did not offer", chosen, chosen.spi.hex())
            return None
        try:
            shared = self._dh.compute(ke.data)
            alg, bits = chosen.encr_alg
            encr = get_encr(alg, bits)
            integ = None if encr.aead else get_integ(chosen.integ_alg)
            prf = get_prf(chosen.prf_alg)
            _, keys = derive_ike_rekey_keys(sa.prf, sa.keys.sk_d, prf, encr, integ, shared, self.nonce, nonce.data,
                                            self.spi, chosen.spi)
        except CryptoError as exc:
            sa.log.info("IKE rekey keys failed: %s", exc)
            return None
        self._dh = None
        self.other_nonce = nonce.data
        new = sa.gw.new_initiated_sa(sa, spi_i=self.spi, spi_r=chosen.spi)
        sa.inherit_identity(new)
        new.nonce_i, new.nonce_r = self.nonce, nonce.data
        new.install_ike_keys(chosen, prf, keys)  # we are its original initiator
        sa.log_cfg.info("selected proposal: %s", chosen)
        return new

    # -- outcomes ------------------------------------------------------------------------------------

    def _end(self) -> None:
        self.sa.gw.release_spi(self.spi)  # used by now, or not needed any more
        if self.sa.ike_rekey is self:
            self.sa.ike_rekey = None

    def _failed(self, error: int | None) -> None:
        sa = self.sa
        self._end()
        if self._collision_alive():
            sa.log.info("peer did not notice IKE_SA rekey collision, abort active rekeying")
            sa.hand_over(self.collision, grace=REKEYED_SA_GRACE)
            return
        if error == NotifyType.NO_ADDITIONAL_SAS:
            sa.log.info("peer seems to not support IKE rekeying, not trying again")
            return
        sa.rekey_at = sa.now + retry_delay(sa)
        sa.log.info("IKE_SA rekeying failed, trying again in %d seconds", int(sa.rekey_at - sa.now))

    def _done(self, new) -> None:
        sa = self.sa
        self._end()
        if self._collision_alive():
            other = self.collision
            ours = lower_nonce(self.nonce, self.other_nonce)
            theirs = lower_nonce(*self.collision_nonces)
            if nonce_greater(theirs, ours):  # the lowest nonce is ours: our new SA is redundant
                sa.log.info("IKE_SA rekey collision lost, deleting redundant IKE_SA %s[%d]", new.name, new.unique_id)
                delete_redundant(new)
                sa.hand_over(other, grace=REKEYED_SA_GRACE)  # the peer deletes the old SA
                return
            sa.log.info("IKE_SA rekey collision won, waiting for delete for redundant IKE_SA %s[%d]", other.name,
                        other.unique_id)
            other.mark_redundant(REDUNDANT_IKE_SA_TIMEOUT)
        sa.hand_over(new, grace=None)
        sa.log.info("deleting IKE_SA %s[%d] after rekeying", sa.name, sa.unique_id)
        sa.send_request(ExchangeType.INFORMATIONAL, [DeletePayload(protocol=ProtocolId.IKE)],
                        lambda _payloads: sa.destroy("rekeyed"))


def delete_redundant(new) -> None:
    """Delete ``new``, an IKE SA made by a collision that lost, with a Delete sent on it."""
    new.mark_redundant(None)
    new.send_request(ExchangeType.INFORMATIONAL, [DeletePayload(protocol=ProtocolId.IKE)],
                     lambda _payloads: new.destroy("redundant IKE_SA deleted"))
