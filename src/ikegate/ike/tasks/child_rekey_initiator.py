"""The gateway's own rekey of a CHILD SA (RFC 7296 1.3.3, 2.8; strongSwan's child_rekey.c
and child_create.c, initiator side).

Request: ``N(REKEY_SA)`` naming the SA by our inbound SPI, ``SA`` with a fresh SPI and the
CHILD SA's negotiated proposal, ``Ni``, ``[KEi]``, ``TSi`` (ours), ``TSr`` (the peer's).
The key exchange (PFS) follows what the client chose (:func:`rekey_group`): the group of
this CHILD SA's proposal if the client (or an earlier rekey) negotiated one, else the IKE
SA's group if ``esp=`` lists it (what a client without a group of its own for the CHILD SA
uses: libreswan's ``pfs=yes`` takes the IKE SA's group), else the first group ``esp=``
lists, else none.  With a group, the proposal lists it first and then the other groups of ``esp=``
(as strongSwan promotes the group it uses), so the peer may ask for one of those.
KEYMAT = prf+(SK_d, [g^ir] | Ni | Nr) with our nonce first: we initiated, so our
outbound keys are the "i" ones (:attr:`ChildSa.initiator`).

Answers:

- success: the new SA is installed (``ChildSaUp(rekey_of=old)``, no updown) and the old
  one deleted (tasks/child_delete.py);
- INVALID_KE_PAYLOAD: retried once with the group the peer asks for;
- TEMPORARY_FAILURE, NO_PROPOSAL_CHOSEN and any other error: the SA stays as it is and
  the rekey is retried after ``RETRY_INTERVAL - random(RETRY_JITTER)`` seconds;
- NO_ADDITIONAL_SAS: strongSwan would reauthenticate; a responder cannot, so no further
  rekey is tried (the hard lifetime ends the SA);
- CHILD_SA_NOT_FOUND: the peer no longer has the SA; it is removed (updown down).
  strongSwan would then create a new CHILD SA from the configuration; a road-warrior
  gateway cannot choose the client's selectors, so it does not.

Collisions (RFC 7296 2.8.1): while our request is in flight the peer may rekey the same
SA (answering it, ``child_create.build_child`` calls :meth:`ChildRekey.collide`) or delete it
(informational.py calls :meth:`ChildRekey.peer_deleted`).  Both rekeys complete; the
SA made by the exchange holding the lowest of the four nonces is redundant and its
initiator deletes it, and the winner's initiator deletes the old SA.  When we win we
install ours, leave the peer's redundant SA for the peer to delete, and delete the old
one; when we lose we delete ours (never installed) and the peer deletes the old one.  A
peer that deleted the SA meanwhile gets our new SA deleted as well.
"""

from __future__ import annotations

import struct

from ikegate.crypto.dh import get_group
from ikegate.crypto.errors import CryptoError
from ikegate.crypto.keys import derive_child_keys
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.ike.child import ChildSa
from ikegate.ike.tasks.child_create import _selectors
from ikegate.ike.tasks.child_delete import delete_child, send_delete
from ikegate.ike.tasks.lifetimes import retry_delay
from ikegate.ike.ts import narrow
from ikegate.proposal import DH_NAMES, Proposal
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import KePayload, NoncePayload, NotifyPayload, SaPayload, TsPayload


def lower_nonce(a: bytes, b: bytes) -> bytes:
    """The lower of two nonces, compared as strongSwan does (memcmp over the shorter length)."""
    n = min(len(a), len(b))
    return a if a[:n] < b[:n] else b


def nonce_greater(a: bytes, b: bytes) -> bool:
    n = min(len(a), len(b))
    return a[:n] > b[:n]


def configured_groups(proposals) -> list[int]:
    """The key exchange methods of configured proposals, in order, without NONE."""
    groups: list[int] = []
    for proposal in proposals:
        for group in proposal.dh:
            if group and group not in groups:
                groups.append(group)
    return groups


def rekey_group(sa, child) -> int | None:
    """The key exchange method of our rekey of ``child`` (see the module docstring):
    the CHILD SA's own group, the IKE SA's group if ``esp=`` lists it, ``esp=``'s first
    group, or None (no PFS)."""
    if child.proposal.dh_group:
        return child.proposal.dh_group
    configured = configured_groups(sa.conn.esp)
    ike_group = sa.proposal.dh_group if sa.proposal is not None else None
    if ike_group in configured:
        return ike_group
    return configured[0] if configured else None


def offered_groups(group: int | None, configured: list[int]) -> tuple[int, ...]:
    """The DH transforms of our proposal: the group of our KE first, the others after."""
    if group is None:
        return ()
    return (group, *(g for g in configured if g != group))


def group_name(group: int | None) -> str:
    return "none" if group is None else DH_NAMES.get(group, f"KE_{group}")


class RekeyInitiator:
    """What our CHILD SA and IKE SA rekeys (:class:`ChildRekey`,
    ``ike_rekey_initiator.IkeRekey``) share: reading the CREATE_CHILD_SA answer and the
    one retry with the key exchange method an INVALID_KE_PAYLOAD asks for.

    A subclass has ``sa``, ``group``, ``retried`` and ``proposal`` (what we offered) and
    provides ``_send()`` (the request, again after a retry), ``_new_sa(payloads)`` (the
    new SA, None if the answer is unusable), ``_failed(error)`` and ``_done(new)``;
    ``_REJECTED`` is the log line for an error notify.
    """

    _REJECTED = "received %s notify"

    def response(self, payloads: list) -> None:
        errors = [p for p in payloads if p.type == PayloadType.NOTIFY and p.notify_type < 16384]
        error = errors[0].notify_type if errors else None
        if error == NotifyType.INVALID_KE_PAYLOAD and self._retry_with(errors[0].data):
            return
        if error is not None:
            self.sa.log.info(self._REJECTED, notify_name(error))
            self._failed(error)
            return
        new = self._new_sa(payloads)
        if new is None:
            self._failed(None)
            return
        self._done(new)

    def _retry_with(self, data: bytes) -> bool:
        """Send the request again with the group INVALID_KE_PAYLOAD ``data`` names if
        :meth:`_may_retry`, we proposed it and :meth:`_supports` it; True if sent."""
        sa = self.sa
        wanted = struct.unpack(">H", data)[0] if len(data) == 2 else None
        if wanted is None or not self._may_retry(wanted):
            return False
        if wanted not in self.proposal.dh:
            sa.log.info("peer requested DH group %s, which we did not propose", group_name(wanted))
            return False
        if not self._supports(wanted):
            return False
        sa.log.info("peer didn't accept DH group %s, it requested %s", group_name(self.group), group_name(wanted))
        self.retried = True
        self.group = wanted
        self._send()
        return True

    def _may_retry(self, wanted: int) -> bool:
        """Whether a retry with ``wanted`` is still allowed: once only."""
        return not self.retried

    def _supports(self, group: int) -> bool:
        """Whether we can do ``group``; by default not checked before the retry (an
        unusable group then fails in ``_send``)."""
        return True


class ChildRekey(RekeyInitiator):
    """One rekey of ``child`` initiated by us; lives from request to the old SA's Delete."""

    _REJECTED = "received %s notify, no CHILD_SA built"

    def __init__(self, sa, child: ChildSa) -> None:
        self.sa = sa
        self.old = child
        self.group = rekey_group(sa, child)
        self.retried = False
        self.spi_in = 0
        self.nonce = b""
        self.proposal: Proposal | None = None
        self._dh = None
        self.collision: ChildSa | None = None  # the peer's rekey of the same SA
        self.collision_nonces: tuple[bytes, bytes] = (b"", b"")
        self.collision_gone = False  # the peer deleted its (redundant) SA already
        self.old_deleted = False  # the peer deleted the SA we are rekeying

    # -- starting ------------------------------------------------------------------------------

    def start(self) -> None:
        sa, old = self.sa, self.old
        sa.log.info("rekeying CHILD_SA %s{%d} (SPIs %08x_i %08x_o)", sa.name, old.unique_id, old.spi_in,
                    old.spi_out)
        old.state = "rekeying"
        old.rekey_task = self
        self.spi_in = sa.gw.allocate_child_spi()
        sa.child_rekeys.add(self)
        self._send()

    def _send(self) -> None:
        sa, old = self.sa, self.old
        self.nonce = sa.rt.random(sa.rt.settings.nonce_size)
        groups = offered_groups(self.group, configured_groups(sa.conn.esp))
        self.proposal = old.proposal.with_(dh=groups, number=1)
        payloads = [
            NotifyPayload(notify_type=NotifyType.REKEY_SA, protocol=ProtocolId.ESP, spi=struct.pack(">I", old.spi_in)),
            SaPayload(proposals=[self.proposal.to_wire(number=1, spi=struct.pack(">I", self.spi_in))]),
            NoncePayload(data=self.nonce),
        ]
        if self.group:
            try:
                self._dh = get_group(self.group).generate()
            except CryptoError as exc:
                sa.log.info("DH group %s unusable for the CHILD_SA rekey: %s", group_name(self.group), exc)
                self._failed(None)
                return
            payloads.append(KePayload(group=self.group, data=self._dh.public))
        payloads.append(TsPayload(selectors=[s.to_wire() for s in old.local_ts], responder=False))
        payloads.append(TsPayload(selectors=[s.to_wire() for s in old.remote_ts], responder=True))
        sa.send_request(ExchangeType.CREATE_CHILD_SA, payloads, self.response)

    # -- what happens meanwhile -------------------------------------------------------------------

    def collide(self, child: ChildSa, nonce_i: bytes, nonce_r: bytes) -> None:
        """The peer rekeyed the same SA while our request is in flight (we answered it)."""
        self.sa.log.info("detected CHILD_REKEY collision with CHILD_REKEY")
        self.collision = child
        self.collision_nonces = (nonce_i, nonce_r)
        self.collision_gone = False

    def peer_deleted(self) -> None:
        """The peer deleted the SA we are rekeying (we answered its Delete)."""
        self.sa.log.info("detected CHILD_REKEY collision with CHILD_DELETE")
        self.old_deleted = True

    def redundant_deleted(self, child: ChildSa) -> bool:
        """The peer deletes ``child``: is it the SA of its colliding rekey (then redundant)?"""
        if child is self.collision:
            self.collision_gone = True
            return True
        return False

    # -- the answer ---------------------------------------------------------------------------

    def _may_retry(self, wanted: int) -> bool:
        """Once only, and not once the peer deleted the SA we rekey."""
        if self.retried or self.old_deleted:
            self.sa.log.info("already retried with DH group %s, ignore requested %s", group_name(self.group),
                             group_name(wanted))
            return False
        return True

    def _supports(self, group: int) -> bool:
        """Checked before the retry: an unsupported group is not retried (logged)."""
        try:
            get_group(group)
        except CryptoError:
            self.sa.log.info("peer requested DH group %s, which we do not support", group_name(group))
            return False
        return True

    def _new_sa(self, payloads: list) -> ChildSa | None:
        """The CHILD SA the response describes, keys derived; None if the answer is unusable."""
        sa, old = self.sa, self.old
        found = {p.type: p for p in reversed(payloads)}
        offer, nonce, ke = found.get(PayloadType.SA), found.get(PayloadType.NONCE), found.get(PayloadType.KE)
        if offer is None or len(offer.proposals) != 1 or len(offer.proposals[0].spi) != 4 or nonce is None:
            sa.log.info("CREATE_CHILD_SA response without one proposal, an SPI and a nonce")
            return None
        chosen = Proposal.from_wire(offer.proposals[0])
        if self.proposal.select(chosen) is None or chosen.dh_group != self.group:
            sa.log_cfg.info("peer chose %s, which we did not offer", chosen)
            return None
        # the answer's selectors may only narrow the old SA's (strongSwan's initiator narrows
        # them too): a client answering TSr 0.0.0.0/0 must not draw others' traffic its way
        local_ts = narrow(old.local_ts, _selectors(found.get(PayloadType.TSi)))
        remote_ts = narrow(old.remote_ts, _selectors(found.get(PayloadType.TSr)))
        if not local_ts or not remote_ts:
            sa.log.info("CREATE_CHILD_SA response without traffic selectors within the rekeyed SA's")
            return None
        try:
            shared = None
            if self.group:
                if ke is None or ke.group != self.group:
                    sa.log.info("CREATE_CHILD_SA response without KE payload of group %s", group_name(self.group))
                    return None
                shared = self._dh.compute(ke.data)
            alg, bits = chosen.encr_alg
            encr = get_encr(alg, bits)
            integ = None if encr.aead else get_integ(chosen.integ_alg)
            keys = derive_child_keys(sa.prf, sa.keys.sk_d, self.nonce, nonce.data, encr, integ, shared=shared)
        except (CryptoError, TypeError) as exc:
            sa.log.info("CHILD_SA keys failed: %s", exc)
            return None
        self._dh = None
        self.other_nonce = nonce.data
        sa.log_cfg.info("selected proposal: %s", chosen)
        return ChildSa.create(sa, chosen, self.spi_in, struct.unpack(">I", chosen.spi)[0], keys, tuple(local_ts),
                              tuple(remote_ts), reqid=old.reqid, initiator=True)

    # -- outcomes ---------------------------------------------------------------------------------

    def _end(self) -> None:
        self.sa.child_rekeys.discard(self)
        if self.old.rekey_task is self:
            self.old.rekey_task = None

    def _failed(self, error: int | None) -> None:
        sa, old = self.sa, self.old
        self._end()
        sa.gw.release_child_spi(self.spi_in)
        if self.old_deleted:
            return  # the peer deleted it meanwhile: nothing left to rekey
        if self.collision is not None and not self.collision_gone:
            # the peer's rekey of the same SA stands (it did not see the collision)
            sa.log.info("CHILD_SA rekey collision: keeping the peer's CHILD_SA %s{%d}", sa.name,
                        self.collision.unique_id)
            old.state = "rekeyed"
            return
        if error == NotifyType.CHILD_SA_NOT_FOUND:
            sa.log.info("peer didn't find the CHILD_SA we tried to rekey")
            sa.remove_child(old, "not found by the peer")
            return
        old.state = "installed"
        if error == NotifyType.NO_ADDITIONAL_SAS:
            sa.log.info("peer seems to not support CHILD_SA rekeying, not trying again")
            return
        old.rekey_at = sa.now + retry_delay(sa)
        sa.log.info("CHILD_SA rekeying failed, trying again in %d seconds", int(old.rekey_at - sa.now))

    def _done(self, child: ChildSa) -> None:
        sa, old = self.sa, self.old
        self._end()
        if self.old_deleted:
            sa.log.info("CHILD_SA rekey/delete collision, deleting redundant child %s{%d}", sa.name,
                        child.unique_id)
            self._delete_unused(child)
            return
        if self.collision is not None and not self.collision_gone:
            ours = lower_nonce(self.nonce, self.other_nonce)
            theirs = lower_nonce(*self.collision_nonces)
            if not nonce_greater(ours, theirs):
                sa.log.info("CHILD_SA rekey collision lost, deleting redundant child %s{%d}", sa.name,
                            child.unique_id)
                old.state = "rekeyed"  # the peer, who won, deletes it
                self._delete_unused(child)
                return
            sa.log.info("CHILD_SA rekey collision won, deleting old child %s{%d}", sa.name, old.unique_id)
            self.collision.superseded = True  # the peer deletes its redundant SA
            self.collision.state = "rekeyed"
        old.superseded = True
        old.state = "rekeyed"
        sa.add_child(child, rekey_of=old)
        sa.log.info("outbound CHILD_SA %s{%d} established with SPIs %08x_i %08x_o", sa.name, child.unique_id,
                    child.spi_in, child.spi_out)
        delete_child(sa, old)

    def _delete_unused(self, child: ChildSa) -> None:
        """Delete a CHILD SA that was negotiated but is redundant (never installed)."""
        self.sa.gw.release_child_spi(child.spi_in)
        send_delete(self.sa, child.spi_in)


def notify_name(value: int) -> str:
    try:
        return NotifyType(value).name
    except ValueError:
        return str(value)
