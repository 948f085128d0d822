"""The gateway's own rekeying and SA lifetimes (strongswan-semantics.md 2.5; RFC 7296 1.3,
2.8, 2.18; RFC 4478): ``rekey=no`` does nothing of it; with lifetimes the gateway rekeys
CHILD SAs and (``reauth=no``) the IKE SA on its schedule with margin and fuzz, announces
AUTH_LIFETIME and deletes at the hard lifetime with ``reauth=yes``, and resolves
simultaneous rekeys by the nonce rule.

The test client answers the gateway's CREATE_CHILD_SA requests as a responder and
derives every key itself (tests/ike/initiator.py); the gateway's keys are checked
against those, and the new IKE SAs are checked by using them both ways.
"""

from __future__ import annotations

import logging
import struct

import pytest

from ikegate.crypto.keys import derive_child_keys
from ikegate.crypto.transforms import get_encr, get_integ
from ikegate.ike.events import ChildSaDown, ChildSaUp, IkeSaDown, IkeSaRekeyed
from ikegate.wire.constants import DhId, ExchangeType, NotifyType, PayloadType, ProtocolId

from .initiator import STRONGSWAN, WINDOWS10, Received, parse_proposals

#: CHILD SAs: lifetime 60 s, margin 10 s, fuzz 100 %: rekey in (40, 50] s, hard expiry at 60 s.
CHILD_LIFE = "rekey=yes\n    lifetime=60s\n    margintime=10s\n    ikelifetime=3h\n    reauth=no"
#: IKE SA: lifetime 100 s, margin 10 s: rekey in (80, 90] s, hard expiry 10 s after it.
IKE_LIFE = "rekey=yes\n    lifetime=1h\n    margintime=10s\n    ikelifetime=100s\n    reauth=no"
#: Both short: IKE rekey in (30, 35], CHILD rekey in (45, 50], margin 5 s.
BOTH_LIFE = "rekey=yes\n    lifetime=50s\n    margintime=5s\n    ikelifetime=40s\n    reauth=no"
#: reauth=yes (strongSwan's default with rekey=yes): reauthentication in (80, 90], delete 10 s later.
REAUTH_LIFE = "rekey=yes\n    lifetime=1h\n    margintime=10s\n    ikelifetime=100s\n    reauth=yes"
ESP_PFS = "esp=aes256-sha256-modp2048-modp3072,aes128-sha1-modp2048-modp3072!"
SEED_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1!"
#: a NONCE_SIZE nonce lower / higher than any random one (short of a 2**-256 chance)
LOW, HIGH = bytes(31) + b"\x01", b"\xff" * 32


def life(text: str, **more) -> dict[str, str]:
    return {"rekey=no": text, **more}


# -- helpers ------------------------------------------------------------------------------


def wait_for_request(net, client, *, within: float = 300.0, step: float = 0.25) -> Received:
    """Move the clock in small steps until the gateway sends ``client`` a request."""
    deadline = net.now + within
    while net.now < deadline:
        net.advance(step)
        requests = [r for r in net.deliver_pending(client) if not r.is_response]
        if requests:
            assert len(requests) == 1, requests
            return requests[0]
    raise AssertionError(f"no request from the gateway within {within}s")


def reply(net, client, datagrams: list) -> list[Received]:
    """Deliver datagrams from the client; what came back at once, decoded."""
    decoded = [client.receive(d) for d in net.send(client, datagrams)]
    return [r for r in decoded if r is not None]


def answer_delete(net, client, request: Received) -> None:
    """Answer the gateway's Delete of a CHILD SA as a peer does: with our SPI of it."""
    (delete,) = request.get_all(PayloadType.DELETE)
    assert delete.protocol == ProtocolId.ESP
    children = [client.child, *client.old_children]
    ours = []
    for spi in delete.spis:
        match = [c for c in children if c.gateway_spi == struct.unpack(">I", spi)[0]]
        ours += [struct.pack(">I", c.client_spi) for c in match]
    assert reply(net, client, client.answer(request, [_esp_delete(ours)])) == []


def _esp_delete(spis: list[bytes]):
    from ikegate.wire.payloads import DeletePayload

    return DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=spis)


def assert_keys(info, child) -> None:
    """The gateway's CHILD SA (ChildSaInfo) is the client's, keys derived on both sides."""
    assert (info.spi_in, info.spi_out) == (child.gateway_spi, child.client_spi)
    assert (info.key_in_encr, info.key_in_integ) == child.client_out
    assert (info.key_out_encr, info.key_out_integ) == child.gateway_out


def gateway_children(net, client) -> list:
    return list(net.sa_of(client).children.values())


def updown_downs(net) -> list:
    """ChildSaDown events that run updown (not rekeys)."""
    return [e for e in net.events_of(ChildSaDown) if not e.replaced]


def no_leaks(net) -> None:
    gw = net.gateway
    assert not gw.reserved_spis
    registered = {spi for sa in gw.sas.values() for spi in sa.children}
    assert set(gw.children_by_spi) == registered
    assert all(sa.ike_rekey is None and not sa.child_rekeys for sa in gw.sas.values())


@pytest.fixture
def child_net(make_network):
    return make_network(edits=life(CHILD_LIFE))


@pytest.fixture
def up(child_net):
    client = child_net.client(WINDOWS10)
    child_net.connect(client)
    assert client.established
    return client


# -- rekey=no (the seed) ------------------------------------------------------------------------


def test_rekey_no_starts_nothing_and_sends_no_lifetime(net):
    client = net.client(STRONGSWAN, user="user3")
    final = net.connect(client)
    assert client.established
    assert final.notify(NotifyType.AUTH_LIFETIME) is None
    sa = net.sa_of(client)
    assert (sa.rekey_at, sa.reauth_at, sa.expire_at) == (None, None, None)
    assert all(c.rekey_at is None and c.expire_at is None for c in sa.children.values())
    status = net.status()[0]
    assert (status["rekey_in"], status["reauth_in"], status["expires_in"]) == (None, None, None)
    # a day: the gateway sends nothing but its DPD liveness checks (dpddelay=2400s), all answered
    for _ in range(24 * 60):
        net.advance(60)
        for request in [r for r in net.deliver_pending(client) if not r.is_response]:
            assert request.exchange == ExchangeType.INFORMATIONAL and request.payloads == []
            net.send(client, client.answer(request))
    assert net.sa_of(client) is sa and sa.state == "ESTABLISHED" and len(sa.children) == 1
    assert not [r for r in client.requests if r.exchange == ExchangeType.CREATE_CHILD_SA]
    assert not net.events_of(ChildSaDown) and not net.events_of(IkeSaDown)


# -- the schedule -------------------------------------------------------------------------------


def test_child_and_ike_schedules_have_margin_and_fuzz(make_network):
    """lifetime=60s margintime=10s rekeyfuzz=100%: CHILD rekey at 60 - 10 - [0, 10) s, hard
    expiry at 60 s; ikelifetime=100s, reauth=no: IKE rekey at 90 - [0, 10) s, deleted at most
    10 s (over_time = margintime) after it."""
    net = make_network(edits=life(IKE_LIFE.replace("lifetime=1h", "lifetime=60s")))
    clients = [net.client(WINDOWS10) for _ in range(6)]
    child_times, ike_times = [], []
    for client in clients:
        final = net.connect(client)
        assert final.notify(NotifyType.AUTH_LIFETIME) is None  # reauth=no: nothing to announce
        sa = net.sa_of(client)
        (child,) = sa.children.values()
        assert 40 < child.rekey_at - child.created <= 50
        assert child.expire_at - child.created == 60
        assert 80 < sa.rekey_at - sa.established_at <= 90
        assert sa.expire_at == sa.rekey_at + 10 and sa.reauth_at is None
        child_times.append(child.rekey_at - child.created)
        ike_times.append(sa.rekey_at - sa.established_at)
    assert len(set(child_times)) == 6 and len(set(ike_times)) == 6  # fuzzed, not fixed


def test_rekeyfuzz_zero_rekeys_exactly_at_the_margin(make_network):
    net = make_network(edits=life(CHILD_LIFE + "\n    rekeyfuzz=0%"))
    client = net.client(WINDOWS10)
    net.connect(client)
    (child,) = gateway_children(net, client)
    assert child.rekey_at - child.created == 50
    start = net.now
    request = wait_for_request(net, client)
    assert request.exchange == ExchangeType.CREATE_CHILD_SA
    assert net.now - start == pytest.approx(50, abs=0.26)


# -- CHILD SA rekeying ---------------------------------------------------------------------------


def test_gateway_rekeys_the_child_sa_without_pfs(child_net, up):
    net = child_net
    old = up.child
    (old_sa,) = gateway_children(net, up)
    request = wait_for_request(net, up, within=51)
    # N(REKEY_SA) with our inbound SPI, SA (the negotiated proposal, a fresh SPI), Ni, TSi, TSr
    assert request.exchange == ExchangeType.CREATE_CHILD_SA and not request.message.initiator
    assert request.types[0] == PayloadType.NOTIFY
    rekey = request.notify(NotifyType.REKEY_SA)
    assert (rekey.protocol, rekey.spi) == (ProtocolId.ESP, struct.pack(">I", old.gateway_spi))
    (proposal,) = request.get(PayloadType.SA).proposals
    assert proposal.protocol == ProtocolId.ESP and len(proposal.spi) == 4 and proposal.spi != struct.pack(
        ">I", old.gateway_spi)
    assert request.get(PayloadType.KE) is None
    assert [str(t.start_addr) for t in request.get(PayloadType.TSi).selectors] == ["0.0.0.0", "::"]
    assert [str(t.start_addr) for t in request.get(PayloadType.TSr).selectors] == ["192.0.2.1", "2001:db8::1"]
    assert request.types == [PayloadType.NOTIFY, PayloadType.SA, PayloadType.NONCE, PayloadType.TSi,
                             PayloadType.TSr]
    # the client answers and derives KEYMAT = prf+(SK_d, Ni | Nr) itself
    (delete,) = reply(net, up, up.answer_create_child_sa(request))
    new = up.child
    assert new.keys != old.keys and not new.client_initiated
    (new_up,) = net.events_of(ChildSaUp)[1:]
    assert new_up.rekey_of.child_unique_id == old_sa.unique_id  # a rekey: installed, no updown
    assert_keys(new_up.info, new)
    assert new_up.info.reqid == old_sa.reqid
    # then the old SA is deleted, by our inbound SPI
    assert delete.exchange == ExchangeType.INFORMATIONAL
    assert delete.get(PayloadType.DELETE).spis == [struct.pack(">I", old.gateway_spi)]
    answer_delete(net, up, delete)
    assert sorted(c.state for c in gateway_children(net, up)) == ["deleted", "installed"]
    net.advance(5)  # charon.delete_rekeyed_delay: the old inbound SA stays for late packets
    (down,) = net.events_of(ChildSaDown)
    assert down.replaced and down.info.spi_in == old.gateway_spi
    assert [c.spi_in for c in gateway_children(net, up)] == [new.gateway_spi]
    assert len(net.status()[0]["children"]) == 1
    no_leaks(net)
    # the new SA has its own schedule: rekeyed again about 45 s later
    again = wait_for_request(net, up, within=51)
    assert again.notify(NotifyType.REKEY_SA).spi == struct.pack(">I", new.gateway_spi)


def test_gateway_rekeys_with_pfs_from_esp(make_network):
    net = make_network(edits=life(CHILD_LIFE, **{SEED_ESP: ESP_PFS}))
    client = net.client(WINDOWS10, esp="aes256-sha256-modp2048")
    net.connect(client)
    request = wait_for_request(net, client, within=51)
    ke = request.get(PayloadType.KE)
    assert ke.group == DhId.MODP_2048  # what esp= lists first (the IKE_AUTH CHILD had none)
    (proposal,) = request.get(PayloadType.SA).proposals
    assert [t.id for t in proposal.transforms if t.type == 4] == [DhId.MODP_2048, DhId.MODP_3072]
    assert request.types == [PayloadType.NOTIFY, PayloadType.SA, PayloadType.NONCE, PayloadType.KE,
                             PayloadType.TSi, PayloadType.TSr]
    (delete,) = reply(net, client, client.answer_create_child_sa(request))
    new = client.child
    (new_up,) = net.events_of(ChildSaUp)[1:]
    assert_keys(new_up.info, new)
    # KEYMAT = prf+(SK_d, g^ir | Ni | Nr): not what the same nonces give without the DH secret
    encr, integ = get_encr(*new.proposal.encr_alg), get_integ(new.proposal.integ_alg)
    without_dh = derive_child_keys(client.prf, client.keys.sk_d, new.nonce_i, new.nonce_r, encr, integ)
    assert without_dh != new.keys
    answer_delete(net, client, delete)
    assert net.sa_of(client).children[new.gateway_spi].proposal.dh_group == DhId.MODP_2048


def test_gateway_follows_the_group_the_client_rekeyed_with(make_network):
    """The client rekeyed its CHILD SA with modp3072: the gateway's own rekey of it uses
    that group, not esp='s first one."""
    net = make_network(edits=life(CHILD_LIFE, **{SEED_ESP: ESP_PFS}))
    client = net.client(WINDOWS10, esp="aes256-sha256-modp3072-modp2048")
    net.connect(client)
    response = net.exchange(client, client.create_child_sa(rekey=True, ke_group=DhId.MODP_3072))
    assert response.error is None and response.get(PayloadType.KE).group == DhId.MODP_3072
    (client_rekeyed,) = net.events_of(ChildSaUp)[1:]
    assert_keys(client_rekeyed.info, client.child)
    net.exchange(client, client.delete_child([struct.pack(">I", client.old_children[-1].client_spi)]))
    request = wait_for_request(net, client, within=51)
    assert request.get(PayloadType.KE).group == DhId.MODP_3072
    (delete,) = reply(net, client, client.answer_create_child_sa(request))
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)


def test_invalid_ke_payload_is_retried_with_the_requested_group(make_network):
    net = make_network(edits=life(CHILD_LIFE, **{SEED_ESP: ESP_PFS}))
    client = net.client(WINDOWS10, esp="aes256-sha256-modp3072")  # the client wants modp3072
    net.connect(client)
    first = wait_for_request(net, client, within=51)
    assert first.get(PayloadType.KE).group == DhId.MODP_2048
    (retry,) = reply(net, client, client.answer_create_child_sa(first))
    # INVALID_KE_PAYLOAD(modp3072): the same rekey again, KE of the requested group
    assert retry.exchange == ExchangeType.CREATE_CHILD_SA and not retry.is_response
    assert retry.get(PayloadType.KE).group == DhId.MODP_3072
    assert retry.notify(NotifyType.REKEY_SA).spi == first.notify(NotifyType.REKEY_SA).spi
    assert retry.get(PayloadType.NONCE).data != first.get(PayloadType.NONCE).data
    (delete,) = reply(net, client, client.answer_create_child_sa(retry))
    assert delete.exchange == ExchangeType.INFORMATIONAL
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)
    assert client.child.proposal.dh_group == DhId.MODP_3072


@pytest.mark.parametrize("error", [NotifyType.TEMPORARY_FAILURE, NotifyType.NO_PROPOSAL_CHOSEN])
def test_refused_rekey_is_retried_later(make_network, error):
    # rekey in (87, 90] s, hard expiry at 120 s: the retry comes before the expiry
    net = make_network(edits=life("rekey=yes\n    lifetime=120s\n    margintime=30s\n    rekeyfuzz=10%"))
    up = net.client(WINDOWS10)
    net.connect(up)
    (old,) = gateway_children(net, up)
    first = wait_for_request(net, up, within=91)
    assert reply(net, up, up.answer_create_child_sa(first, error=error)) == []
    assert old.state == "installed" and old.rekey_task is None
    refused_at = net.now
    second = wait_for_request(net, up, within=20)
    assert 6 - 0.3 <= net.now - refused_at <= 15 + 0.3  # RETRY_INTERVAL - random(RETRY_JITTER)
    assert second.notify(NotifyType.REKEY_SA).spi == first.notify(NotifyType.REKEY_SA).spi
    (delete,) = reply(net, up, up.answer_create_child_sa(second))
    assert_keys(net.events_of(ChildSaUp)[-1].info, up.child)
    assert updown_downs(net) == []


def test_child_sa_not_found_removes_the_child(child_net, up):
    net = child_net
    request = wait_for_request(net, up, within=51)
    assert reply(net, up, up.answer_create_child_sa(request, error=NotifyType.CHILD_SA_NOT_FOUND)) == []
    (down,) = net.events_of(ChildSaDown)
    assert not down.replaced  # the SA is gone from the peer: updown runs
    sa = net.sa_of(up)
    assert sa.state == "ESTABLISHED" and sa.children == {}
    net.advance(100)
    assert net.deliver_pending(up) == []
    no_leaks(net)


def test_hard_expiry_deletes_the_child_sa(child_net, up):
    """The client refuses every rekey: at 60 s the CHILD SA expires and is deleted."""
    net = child_net
    (child,) = gateway_children(net, up)
    while True:
        request = wait_for_request(net, up, within=51)
        if request.exchange == ExchangeType.INFORMATIONAL:
            break
        reply(net, up, up.answer_create_child_sa(request, error=NotifyType.TEMPORARY_FAILURE))
    assert net.now - child.created == pytest.approx(60, abs=0.26)
    (delete,) = request.get_all(PayloadType.DELETE)
    assert delete.spis == [struct.pack(">I", child.spi_in)]
    (down,) = net.events_of(ChildSaDown)
    assert not down.replaced and down.reason == "expired"
    answer_delete(net, up, request)
    sa = net.sa_of(up)
    assert sa.state == "ESTABLISHED" and sa.children == {}  # the IKE SA stays
    no_leaks(net)


def test_the_old_sa_expiring_before_the_peer_deletes_it_goes_quietly(child_net, up):
    """The client rekeyed (its new SA installed), never deleted the old one: at the old
    one's hard lifetime it goes without a Delete and without updown."""
    net = child_net
    net.advance(30)
    net.exchange(up, up.create_child_sa(rekey=True))
    old_id = net.events_of(ChildSaUp)[-1].rekey_of.child_unique_id
    net.advance(30.1)
    (down,) = net.events_of(ChildSaDown)
    assert down.replaced and down.info.child_unique_id == old_id
    assert [r for r in net.deliver_pending(up) if r.exchange == ExchangeType.INFORMATIONAL] == []


# -- IKE SA rekeying -------------------------------------------------------------------------------


def complete_ike_rekey(net, client, request: Received):
    """The client answers the gateway's IKE rekey; the gateway deletes the old IKE SA on it.
    Returns the client's (old, new) IKE SA states."""
    old = client.ike
    assert request.exchange == ExchangeType.CREATE_CHILD_SA and request.ike is old
    (delete,) = reply(net, client, client.answer_create_child_sa(request))
    new = client.ike
    assert client.retired[0] is old and not new.initiator
    assert delete.ike is old and delete.exchange == ExchangeType.INFORMATIONAL
    assert [(d.protocol, d.spis) for d in delete.get_all(PayloadType.DELETE)] == [(ProtocolId.IKE, [])]
    assert reply(net, client, client.answer(delete)) == []
    return old, new


def leases_online(net) -> list[str]:
    return sorted(str(lease.address) for pool in net.runtime.pools for lease in pool.leases() if lease.online)


def test_gateway_rekeys_the_ike_sa(make_network):
    net = make_network(edits=life(BOTH_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    old_sa = net.sa_of(client)
    request = wait_for_request(net, client, within=36)
    assert 30 - 0.3 <= net.now - old_sa.established_at <= 35
    # SA (the negotiated IKE proposal with our new 8-byte SPI), Ni, KEi of the same group
    assert request.types == [PayloadType.SA, PayloadType.NONCE, PayloadType.KE]
    (proposal,) = request.get(PayloadType.SA).proposals
    assert proposal.protocol == ProtocolId.IKE and len(proposal.spi) == 8
    assert request.get(PayloadType.KE).group == DhId.MODP_1024
    old, new = complete_ike_rekey(net, client, request)
    # the gateway is the new SA's original initiator: SPIi is its own
    assert new.spi_i == proposal.spi
    new_sa = net.sa_of(client)
    assert new_sa.original_initiator and new_sa.my_spi == new.spi_i and new_sa.state == "ESTABLISHED"
    assert net.sa_of(client, old) is None and list(net.gateway.sas) == [new.spi_i]
    (rekeyed,) = net.events_of(IkeSaRekeyed)
    assert (rekeyed.old_unique_id, rekeyed.new_unique_id) == (old_sa.unique_id, new_sa.unique_id)
    assert [c.spi_in for c in new_sa.children.values()] == [client.child.gateway_spi]
    assert new_sa.vips == ["192.0.2.1", "2001:db8::1"] and leases_online(net) == ["192.0.2.1", "2001:db8::1"]
    assert 30 < new_sa.rekey_at - net.now <= 35  # a fresh schedule
    # an INFORMATIONAL from the client on the new SA: the gateway answers with the I flag
    response = net.exchange(client, client.informational())
    assert response is not None and response.ike is new and response.message.initiator
    # the gateway's next requests (the CHILD rekey, then its Delete) come on the new SA too
    child_rekey = wait_for_request(net, client, within=20)
    assert child_rekey.ike is new and child_rekey.message.initiator
    assert child_rekey.notify(NotifyType.REKEY_SA) is not None
    (delete,) = reply(net, client, client.answer_create_child_sa(child_rekey))
    assert delete.ike is new and delete.exchange == ExchangeType.INFORMATIONAL
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)  # KEYMAT from the new SK_d
    answer_delete(net, client, delete)
    # the old SA is gone: nothing answers on it
    assert net.send(client, client.request(ExchangeType.INFORMATIONAL, [], ike=old)) == []
    assert not net.events_of(IkeSaDown) and updown_downs(net) == []
    no_leaks(net)


def test_client_rekeys_an_ike_sa_the_gateway_made(make_network):
    """Roles inverted: on the SA the gateway made, the client is the responder; its own
    rekey of that SA makes it the initiator again."""
    net = make_network(edits=life(BOTH_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    _, gateway_made = complete_ike_rekey(net, client, wait_for_request(net, client, within=36))
    gw_sa = net.sa_of(client)
    response = net.exchange(client, client.rekey_ike())
    assert response.error is None and response.message.initiator  # the gateway is that SA's initiator
    newest = client.ike
    assert newest.initiator and client.retired[0] is gateway_made
    newest_sa = net.sa_of(client)
    assert not newest_sa.original_initiator and newest_sa.my_spi == newest.spi_r
    assert gw_sa.state == "REKEYED" and newest_sa.children and not gw_sa.children
    # the client deletes the SA it rekeyed, on that SA (without the I flag)
    assert net.exchange(client, client.delete_ike(gateway_made)).payloads == []
    assert list(net.gateway.sas) == [newest.spi_r]
    response = net.exchange(client, client.informational())
    assert response.ike is newest and not response.message.initiator
    child_rekey = wait_for_request(net, client, within=20)
    assert child_rekey.ike is newest and not child_rekey.message.initiator
    reply(net, client, client.answer_create_child_sa(child_rekey))
    assert_keys(net.events_of(ChildSaUp)[-1].info, client.child)
    assert not net.events_of(IkeSaDown)
    no_leaks(net)


def test_ike_rekey_retried_with_the_group_the_client_asks_for(make_network):
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)  # negotiates modp1024
    net.connect(client)
    client.ike_proposals = parse_proposals("aes256-sha1-modp2048", ProtocolId.IKE)  # now it wants modp2048
    first = wait_for_request(net, client, within=91)
    (proposal,) = first.get(PayloadType.SA).proposals
    groups = [t.id for t in proposal.transforms if t.type == 4]
    assert groups == [DhId.MODP_1024, DhId.MODP_3072, DhId.MODP_2048, DhId.MODP_1536]  # ours first, then ike='s
    (retry,) = reply(net, client, client.answer_create_child_sa(first))  # INVALID_KE_PAYLOAD(modp2048)
    assert retry.exchange == ExchangeType.CREATE_CHILD_SA and retry.get(PayloadType.KE).group == DhId.MODP_2048
    old, new = complete_ike_rekey(net, client, retry)
    assert net.sa_of(client).proposal.dh_group == DhId.MODP_2048
    assert net.exchange(client, client.informational()).payloads == []
    no_leaks(net)


def test_refused_ike_rekeys_end_at_the_hard_lifetime(make_network):
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    sa = net.sa_of(client)
    rekey_at, expire_at = sa.rekey_at, sa.expire_at
    assert expire_at == rekey_at + 10
    tries = 0
    while True:
        request = wait_for_request(net, client, within=91)
        if request.exchange == ExchangeType.INFORMATIONAL:
            break
        tries += 1
        assert request.get(PayloadType.SA).proposals[0].protocol == ProtocolId.IKE
        reply(net, client, client.answer_create_child_sa(request, error=NotifyType.TEMPORARY_FAILURE))
    assert tries >= 1 and net.now == pytest.approx(expire_at, abs=0.26)
    assert [d.protocol for d in request.get_all(PayloadType.DELETE)] == [ProtocolId.IKE]
    (down,) = net.events_of(IkeSaDown)
    assert down.reason == "IKE_SA lifetime expired"
    assert len(updown_downs(net)) == 1 and leases_online(net) == []
    assert not net.gateway.sas
    no_leaks(net)


# -- reauth=yes ---------------------------------------------------------------------------------


def test_reauth_sends_auth_lifetime_then_deletes_after_over_time(make_network, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(edits=life(REAUTH_LIFE))
    client = net.client(WINDOWS10)
    final = net.connect(client)
    sa = net.sa_of(client)
    assert sa.rekey_at is None and 80 < sa.reauth_at - net.now <= 90
    assert sa.expire_at == sa.reauth_at + 10
    notify = final.notify(NotifyType.AUTH_LIFETIME)
    (lifetime,) = struct.unpack(">I", notify.data)
    # in strongSwan's order for IKE_AUTH responses: after SA/TS, before MOBIKE_SUPPORTED
    order = [n.notify_type for n in final.notifies]
    assert order.index(NotifyType.AUTH_LIFETIME) < order.index(NotifyType.MOBIKE_SUPPORTED)
    assert final.types.index(PayloadType.TSr) < final.payloads.index(notify)
    assert lifetime == int(sa.reauth_at - net.now)
    # at the reauthentication time the gateway cannot reauthenticate an EAP client: it waits
    net.advance(sa.reauth_at - net.now + 0.1)
    assert net.deliver_pending(client) == [] and sa.state == "ESTABLISHED"
    assert "initiator did not reauthenticate as requested" in caplog.text
    request = wait_for_request(net, client, within=11)
    assert net.now == pytest.approx(sa.expire_at, abs=0.26)
    assert [d.protocol for d in request.get_all(PayloadType.DELETE)] == [ProtocolId.IKE]
    assert net.events_of(IkeSaDown) and len(updown_downs(net)) == 1 and leases_online(net) == []


def test_reauth_deadline_survives_an_ike_rekey(make_network):
    net = make_network(edits=life(REAUTH_LIFE))
    client = net.client(STRONGSWAN, user="user3")
    net.connect(client)
    old_sa = net.sa_of(client)
    deadline, expiry = old_sa.reauth_at, old_sa.expire_at
    net.advance(20)
    response = net.exchange(client, client.rekey_ike())
    assert response.error is None and response.notify(NotifyType.AUTH_LIFETIME) is None
    new_sa = net.sa_of(client)
    assert new_sa is not old_sa and new_sa.rekey_at is None
    assert (new_sa.reauth_at, new_sa.expire_at) == (deadline, expiry)
    net.exchange(client, client.delete_ike(client.retired[0]))
    request = wait_for_request(net, client, within=100)
    assert [d.protocol for d in request.get_all(PayloadType.DELETE)] == [ProtocolId.IKE]
    assert net.now == pytest.approx(new_sa.expire_at, abs=0.26)


# -- collisions (RFC 7296 2.8.1, 2.8.2) -------------------------------------------------------------


@pytest.mark.parametrize("winner", ["gateway", "client"])
def test_simultaneous_child_rekeys_follow_the_nonce_rule(child_net, up, winner):
    """Both sides rekey the same CHILD SA at once.  The SA made by the exchange holding the
    lowest of the four nonces is redundant and deleted by that exchange's initiator; the
    winner's initiator deletes the old SA.  One SA survives, no updown runs."""
    net = child_net
    x = up.child
    request_a = wait_for_request(net, up, within=51)  # the gateway's rekey of X, in flight
    # the client's nonces: Ni of its own exchange B, then Nr of its answer to A
    up.forced_nonces = [LOW, HIGH] if winner == "gateway" else [HIGH, LOW]
    response_b = net.exchange(up, up.create_child_sa(rekey=True))
    assert response_b.error is None  # answered although our own rekey of X is in flight
    b = up.child
    b_up = net.events_of(ChildSaUp)[-1]
    assert_keys(b_up.info, b)
    assert [c.state for c in gateway_children(net, up)].count("rekeying") == 1
    (then,) = reply(net, up, up.answer_create_child_sa(request_a))
    a = up.child
    assert then.exchange == ExchangeType.INFORMATIONAL
    (delete,) = then.get_all(PayloadType.DELETE)
    if winner == "gateway":
        # B (the client's) is redundant: the gateway installs A and deletes X
        a_up = net.events_of(ChildSaUp)[-1]
        assert a_up.rekey_of.spi_in == x.gateway_spi
        assert_keys(a_up.info, a)
        assert delete.spis == [struct.pack(">I", x.gateway_spi)]
        answer_delete(net, up, then)
        response = net.exchange(up, up.delete_child([struct.pack(">I", b.client_spi)]))
        assert response.get(PayloadType.DELETE).spis == [struct.pack(">I", b.gateway_spi)]
        survivor = a
    else:
        # A (the gateway's) is redundant: deleted at once, never installed; the client deletes X
        assert delete.spis == [struct.pack(">I", a.gateway_spi)]
        assert len(net.events_of(ChildSaUp)) == 2
        answer_delete(net, up, then)
        response = net.exchange(up, up.delete_child([struct.pack(">I", x.client_spi)]))
        assert response.get(PayloadType.DELETE).spis == [struct.pack(">I", x.gateway_spi)]
        survivor = b
    net.advance(5)
    assert [c.spi_in for c in gateway_children(net, up)] == [survivor.gateway_spi]
    assert gateway_children(net, up)[0].state == "installed"
    assert updown_downs(net) == []
    assert all(e.rekey_of is not None for e in net.events_of(ChildSaUp)[1:])
    no_leaks(net)


def test_client_rekey_after_ours_completed_gets_temporary_failure(child_net, up):
    """Our rekey completed first and our Delete of X is in flight: the client's late rekey
    of X is refused (strongSwan: "unable to rekey, we are deleting the CHILD_SA")."""
    net = child_net
    x = up.child
    (delete,) = reply(net, up, up.answer_create_child_sa(wait_for_request(net, up, within=51)))
    up.child_spi = struct.pack(">I", x.client_spi)
    response = net.exchange(up, up.create_child_sa(rekey=True))
    assert response.notify_types == [NotifyType.TEMPORARY_FAILURE]
    answer_delete(net, up, delete)
    net.advance(5)
    assert len(gateway_children(net, up)) == 1 and updown_downs(net) == []


@pytest.mark.parametrize("answer", ["not found", "created"])
def test_client_deletes_the_child_sa_we_are_rekeying(child_net, up, answer):
    net = child_net
    x = up.child
    request = wait_for_request(net, up, within=51)
    response = net.exchange(up, up.delete_child([struct.pack(">I", x.client_spi)]))
    assert response.get(PayloadType.DELETE).spis == [struct.pack(">I", x.gateway_spi)]
    (down,) = net.events_of(ChildSaDown)
    assert not down.replaced  # the client closed it: updown down
    if answer == "not found":
        assert reply(net, up, up.answer_create_child_sa(request, error=NotifyType.CHILD_SA_NOT_FOUND)) == []
    else:  # a peer that still created the new SA: it is redundant and deleted at once
        (delete,) = reply(net, up, up.answer_create_child_sa(request))
        assert delete.get(PayloadType.DELETE).spis == [struct.pack(">I", up.child.gateway_spi)]
        answer_delete(net, up, delete)
    assert len(net.events_of(ChildSaUp)) == 1  # nothing new was installed
    net.advance(100)
    assert net.deliver_pending(up) == []  # and no retry
    sa = net.sa_of(up)
    assert sa.state == "ESTABLISHED" and sa.children == {}
    no_leaks(net)


def test_client_ike_rekey_while_our_child_rekey_is_pending(child_net, up):
    net = child_net
    request = wait_for_request(net, up, within=51)
    response = net.exchange(up, up.rekey_ike())
    assert response.notify_types == [NotifyType.TEMPORARY_FAILURE]  # "a child is half-open"
    (delete,) = reply(net, up, up.answer_create_child_sa(request))
    answer_delete(net, up, delete)
    response = net.exchange(up, up.rekey_ike())  # now it works
    assert response.error is None and net.sa_of(up).children
    no_leaks(net)


def test_client_child_rekey_while_our_ike_rekey_is_pending(make_network):
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    request = wait_for_request(net, client, within=91)
    response = net.exchange(client, client.create_child_sa(rekey=True))
    assert response.notify_types == [NotifyType.TEMPORARY_FAILURE]  # "unable to create CHILD_SA while rekeying IKE_SA"
    client.child_spi = struct.pack(">I", client.child.client_spi)
    complete_ike_rekey(net, client, request)
    assert net.exchange(client, client.create_child_sa(rekey=True)).error is None
    no_leaks(net)


@pytest.mark.parametrize("winner", ["gateway", "client"])
def test_simultaneous_ike_rekeys_follow_the_nonce_rule(make_network, winner):
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    original = client.ike
    vips = list(net.sa_of(client).vips)
    request_a = wait_for_request(net, client, within=91)  # the gateway's IKE rekey, in flight
    client.forced_nonces = [LOW, HIGH] if winner == "gateway" else [HIGH, LOW]
    response_b = net.exchange(client, client.rekey_ike())
    assert response_b.error is None
    b = client.ike
    b_sa = net.sa_of(client, b)
    assert b_sa is not None and b_sa.state == "CONNECTING" and not net.events_of(IkeSaRekeyed)
    (then,) = reply(net, client, client.answer_create_child_sa(request_a))
    a = client.ike
    assert then.exchange == ExchangeType.INFORMATIONAL
    assert [d.protocol for d in then.get_all(PayloadType.DELETE)] == [ProtocolId.IKE]
    (rekeyed,) = net.events_of(IkeSaRekeyed)
    if winner == "gateway":
        # the gateway switched to A and deletes the original SA; the client deletes its B
        assert then.ike is original and rekeyed.new_unique_id == net.sa_of(client, a).unique_id
        assert reply(net, client, client.answer(then)) == []
        assert net.exchange(client, client.delete_ike(b)).payloads == []
        survivor = a
    else:
        # A is redundant: the gateway deletes it (on A) and switches to B; the client deletes the original
        assert then.ike is a and rekeyed.new_unique_id == b_sa.unique_id
        assert reply(net, client, client.answer(then)) == []
        assert net.exchange(client, client.delete_ike(original)).payloads == []
        survivor = b
    sa = net.sa_of(client, survivor)
    assert list(net.gateway.sas.values()) == [sa]
    assert sa.state == "ESTABLISHED" and sa.vips == vips and len(sa.children) == 1
    # the survivor works both ways
    client.retired = [s for s in client.ike_sas if s is not survivor]
    client.ike = survivor
    assert net.exchange(client, client.informational()).payloads == []
    following = wait_for_request(net, client, within=91)  # the gateway rekeys the survivor in time
    assert following.ike is survivor and following.exchange == ExchangeType.CREATE_CHILD_SA
    assert not net.events_of(IkeSaDown) and updown_downs(net) == []


def test_peer_that_misses_the_ike_collision_keeps_its_sa(make_network):
    """The client rekeys while ours is in flight, then refuses ours: its new SA takes over
    ("peer did not notice IKE_SA rekey collision") and it deletes the original."""
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    original = client.ike
    request_a = wait_for_request(net, client, within=91)
    assert net.exchange(client, client.rekey_ike()).error is None
    b = client.ike
    assert reply(net, client, client.answer_create_child_sa(request_a, error=NotifyType.TEMPORARY_FAILURE)) == []
    assert net.events_of(IkeSaRekeyed) and net.sa_of(client, b).state == "ESTABLISHED"
    assert net.exchange(client, client.delete_ike(original)).payloads == []
    assert list(net.gateway.sas) == [b.spi_r]
    assert net.exchange(client, client.informational()).payloads == []
    no_leaks(net)


def test_delete_of_the_ike_sa_while_our_rekey_is_pending(make_network):
    net = make_network(edits=life(IKE_LIFE))
    client = net.client(WINDOWS10)
    net.connect(client)
    request = wait_for_request(net, client, within=91)
    assert net.exchange(client, client.delete_ike()).payloads == []
    assert not net.gateway.sas and net.events_of(IkeSaDown)
    assert net.send(client, client.answer_create_child_sa(request)) == []  # reaches nobody
    no_leaks(net)
