"""PFS on CHILD SA rekeys (RFC 7296 1.3.3, 2.17): a client's CREATE_CHILD_SA carrying KE
(libreswan's default) is accepted with the groups ``esp=`` lists, KEYMAT then includes
g^ir; a group ``esp=`` does not list is answered INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN;
the gateway's own rekeys follow what the client used (tasks/child_rekey_initiator.py).

The client derives every key itself (tests/ike/initiator.py), so ``assert_keys`` checks
the gateway's ESP keys against an independent derivation including the DH secret."""

from __future__ import annotations

import struct

import pytest

from ikegate.crypto.keys import derive_child_keys
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.ike.events import ChildSaUp
from ikegate.wire.constants import DhId, NotifyType, PayloadType

from .initiator import WINDOWS10
from .test_ike_lifetimes import CHILD_LIFE, ESP_PFS, SEED_ESP, answer_delete, assert_keys, life, reply, wait_for_request

#: proposals in the style of libreswan (AES-GCM, ECP-256 first; PFS with the IKE SA's
#: group for the CHILD SA rekeys), written as strongSwan strings.
LIBRESWAN_IKE = "aes256gcm16-prfsha512-prfsha256-ecp256-modp2048"
LIBRESWAN_ESP = "aes256gcm16-ecp256-modp2048"


def rekey(net, client, group):
    return net.exchange(client, client.create_child_sa(rekey=True, ke_group=group))


@pytest.mark.parametrize("group", [DhId.MODP_2048, DhId.MODP_3072])
def test_client_rekey_with_ke_accepted_with_esp_groups(make_network, group):
    net = make_network(edits={SEED_ESP: ESP_PFS})
    other = DhId.MODP_3072 if group == DhId.MODP_2048 else DhId.MODP_2048
    client = net.client(WINDOWS10, esp=f"aes256-sha256-{group.name.lower().replace('_', '')}"
                                        f"-{other.name.lower().replace('_', '')}")
    net.connect(client)
    response = rekey(net, client, group)
    assert response.error is None
    assert response.get(PayloadType.KE).group == group
    (proposal,) = response.get(PayloadType.SA).proposals
    assert [t.id for t in proposal.transforms if t.type == 4] == [group]
    (rekeyed,) = net.events_of(ChildSaUp)[1:]
    assert rekeyed.rekey_of is not None
    assert_keys(rekeyed.info, client.child)  # the client's keys include g^ir
    new = client.child
    encr, integ = get_encr(*new.proposal.encr_alg), get_integ(new.proposal.integ_alg)
    assert derive_child_keys(client.prf, client.keys.sk_d, new.nonce_i, new.nonce_r, encr, integ) != new.keys
    # and again: a second PFS rekey of the rekeyed SA
    response = rekey(net, client, group)
    assert response.error is None
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)


def test_ke_of_another_listed_group_gets_invalid_ke_payload(make_network):
    """The client proposes modp2048 first but sends a modp3072 KE: INVALID_KE_PAYLOAD(modp2048),
    the IKE SA and the old CHILD SA stay; the retry with modp2048 works."""
    net = make_network(edits={SEED_ESP: ESP_PFS})
    client = net.client(WINDOWS10, esp="aes256-sha256-modp2048-modp3072")
    net.connect(client)
    old_spi = client.child_spi
    refused = rekey(net, client, DhId.MODP_3072)
    assert refused.notify_types == [NotifyType.INVALID_KE_PAYLOAD]
    assert refused.notify(NotifyType.INVALID_KE_PAYLOAD).data == struct.pack(">H", DhId.MODP_2048)
    assert len(net.events_of(ChildSaUp)) == 1
    client.child_spi = old_spi  # the REKEY_SA of the retry names the SA still in use
    response = rekey(net, client, DhId.MODP_2048)
    assert response.error is None
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)


def test_unlisted_group_is_refused(make_network):
    """``esp=`` lists modp2048/modp3072 only: a rekey proposing ecp256 alone is refused."""
    net = make_network(edits={SEED_ESP: ESP_PFS})
    client = net.client(WINDOWS10, esp="aes256-sha256-ecp256")
    net.connect(client)
    response = rekey(net, client, DhId.ECP_256)
    assert response.error == NotifyType.NO_PROPOSAL_CHOSEN
    assert len(net.events_of(ChildSaUp)) == 1
    assert net.sa_of(client) is not None


def test_seed_without_groups_refuses_a_pfs_only_rekey(net):
    """The seed's ``esp=`` lists no group: a rekey whose only proposal carries one has no
    group to agree on and gets NO_PROPOSAL_CHOSEN (PFS needs ``esp=`` to list the
    client's group); without KE it works."""
    client = net.client(WINDOWS10, esp="aes256-sha256-modp2048")
    net.connect(client)
    assert rekey(net, client, DhId.MODP_2048).error == NotifyType.NO_PROPOSAL_CHOSEN
    plain = net.client(WINDOWS10, esp="aes256-sha256")
    net.connect(plain)
    assert rekey(net, plain, None).error is None


def test_gateway_rekey_follows_the_ike_group(make_network):
    """No group negotiated for the CHILD SA yet (IKE_AUTH has none): the gateway's rekey
    uses the IKE SA's group when ``esp=`` lists it (libreswan's PFS default), not the
    first group of ``esp=``."""
    net = make_network(edits=life(CHILD_LIFE, **{SEED_ESP: ESP_PFS}))
    client = net.client(WINDOWS10, ike="aes256-sha256-modp3072", esp="aes256-sha256-modp3072-modp2048")
    net.connect(client)
    assert client.proposal.dh_group == DhId.MODP_3072
    request = wait_for_request(net, client, within=51)
    assert request.get(PayloadType.KE).group == DhId.MODP_3072
    (proposal,) = request.get(PayloadType.SA).proposals
    assert [t.id for t in proposal.transforms if t.type == 4] == [DhId.MODP_3072, DhId.MODP_2048]
    (delete,) = reply(net, client, client.answer_create_child_sa(request))
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)
    answer_delete(net, client, delete)
    assert client.child.proposal.dh_group == DhId.MODP_3072


def test_gateway_rekey_after_client_pfs_rekey_uses_its_group(make_network):
    """libreswan-like: ECP-256 for IKE and for its own PFS rekey; the gateway's later rekey
    offers ECP-256 first."""
    esp = "esp=aes256gcm16-ecp256-modp2048!"
    net = make_network(edits=life(CHILD_LIFE, **{SEED_ESP: esp, "ike=": f"ike={LIBRESWAN_IKE},"}))
    client = net.client(WINDOWS10, ike=LIBRESWAN_IKE, esp=LIBRESWAN_ESP)
    net.connect(client)
    response = rekey(net, client, DhId.ECP_256)
    assert response.error is None and response.get(PayloadType.KE).group == DhId.ECP_256
    net.exchange(client, client.delete_child([struct.pack(">I", client.old_children[-1].client_spi)]))
    request = wait_for_request(net, client, within=51)
    assert request.get(PayloadType.KE).group == DhId.ECP_256
    (delete,) = reply(net, client, client.answer_create_child_sa(request))
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)
