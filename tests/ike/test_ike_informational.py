"""Exchanges on an established IKE SA: INFORMATIONAL (liveness checks, Delete of CHILD
and IKE SAs, RFC 7296 1.4), CREATE_CHILD_SA, and the gateway's own Deletes on shutdown."""

from __future__ import annotations

import importlib.util
import struct

import pytest

from ikegate.ike.events import ChildSaDown, ChildSaUp, IkeSaDown
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import NotifyPayload

from .initiator import STRONGSWAN, WINDOWS7, WINDOWS10

#: CREATE_CHILD_SA was refused with NO_ADDITIONAL_SAS until CHILD SA rekeying
#: (tasks/child_rekey.py) landed; test_create_child_sa checks whichever applies.
CHILD_REKEY_SUPPORTED = importlib.util.find_spec("ikegate.ike.tasks.child_rekey") is not None


@pytest.fixture
def up(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    assert client.established
    return client


def test_empty_informational_is_answered_empty(net, up):
    for _ in range(3):
        response = net.exchange(up, up.informational())
        assert response.exchange == ExchangeType.INFORMATIONAL and response.payloads == []
    assert net.sa_of(up).state == "ESTABLISHED"


def test_liveness_check_after_a_quiet_hour(net, up):
    """The client's own liveness check (below the seed's dpddelay=2400s) is answered."""
    net.advance(2000)
    assert net.exchange(up, up.informational()).payloads == []
    assert net.sa_of(up).state == "ESTABLISHED"


def test_delete_child_is_answered_with_our_spis(net, up):
    response = net.exchange(up, up.delete_child())
    (delete,) = response.get_all(PayloadType.DELETE)
    assert delete.protocol == ProtocolId.ESP and delete.spi_size == 4
    assert delete.spis == [struct.pack(">I", up.child.spi_r)]
    (down,) = net.events_of(ChildSaDown)
    assert (down.info.spi_in, down.info.spi_out) == (up.child.spi_r, up.child.spi_i)
    assert down.reason == "deleted by peer"
    sa = net.sa_of(up)
    assert sa.state == "ESTABLISHED" and sa.children == {}
    assert not net.gateway.children_by_spi
    assert net.status()[0]["children"] == []
    # the VIPs stay with the IKE SA
    assert net.status()[0]["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]


def test_delete_of_unknown_child_spis_is_answered_empty(net, up):
    response = net.exchange(up, up.delete_child([b"\x00\x00\x12\x34", b"\xff\xff\xff\xff"]))
    assert response.payloads == []
    assert net.events_of(ChildSaDown) == [] and len(net.sa_of(up).children) == 1


def test_delete_ike_ends_the_sa_and_puts_leases_offline(net, up):
    response = net.exchange(up, up.delete_ike())
    assert response.payloads == []
    assert net.sa_of(up) is None and not net.gateway.sas
    child_down, ike_down = net.events[2:]
    assert isinstance(child_down, ChildSaDown) and isinstance(ike_down, IkeSaDown)
    assert ike_down.reason == "deleted by peer"
    leases = [(str(lease.address), lease.identity, lease.online) for pool in net.runtime.pools
              for lease in pool.leases()]
    assert sorted(leases) == [("192.0.2.1", "user1", False), ("2001:db8::1", "user1", False)]
    assert net.send(up, up.informational()) == []  # nothing answers for that SA any more


def test_notify_only_informational_is_answered(net, up):
    response = net.exchange(up, up.informational([NotifyPayload(notify_type=NotifyType.INVALID_SPI)]))
    assert response.payloads == []
    assert net.sa_of(up).state == "ESTABLISHED"


def test_create_child_sa(net, up):
    old_spi = up.child.spi_r
    response = net.exchange(up, up.create_child_sa(rekey=True))
    assert response.exchange == ExchangeType.CREATE_CHILD_SA
    if not CHILD_REKEY_SUPPORTED:
        assert response.notify_types == [NotifyType.NO_ADDITIONAL_SAS]
        assert [type(e) for e in net.events] == [type(net.events[0]), ChildSaUp]
        assert list(net.sa_of(up).children) == [old_spi]
        return
    # rekeying: a new CHILD SA with fresh SPIs and KEYMAT from this exchange's nonces,
    # the old one installed until the client deletes it
    assert response.error is None
    assert response.get(PayloadType.SA) is not None and response.get(PayloadType.NONCE) is not None
    (new_up,) = net.events_of(ChildSaUp)[1:]
    assert (new_up.info.spi_in, new_up.info.spi_out) == (up.child.spi_r, up.child.spi_i)
    assert new_up.info.spi_in != old_spi
    assert (new_up.info.key_in_encr, new_up.info.key_out_encr) == (up.child.keys.encr_i, up.child.keys.encr_r)
    assert up.child.keys != up.old_children[0].keys
    assert old_spi in net.sa_of(up).children
    net.exchange(up, up.delete_child([struct.pack(">I", up.old_children[0].spi_i)]))
    assert list(net.sa_of(up).children) == [new_up.info.spi_in]


def test_create_child_sa_before_establishment_is_ignored(net):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    assert net.send(client, client.create_child_sa(rekey=False)) == []


def test_shutdown_deletes_every_established_sa(net):
    profiles = (WINDOWS10, WINDOWS7, STRONGSWAN)
    clients = [net.client(p, user=u) for p, u in zip(profiles, ("user1", "user2", "user3"))]
    for client in clients:
        net.connect(client)
    half = net.client(WINDOWS10)
    net.exchange(half, half.sa_init_request())
    net.shutdown()
    for client in clients:
        (request,) = net.deliver_pending(client)
        assert request.exchange == ExchangeType.INFORMATIONAL and not request.is_response
        (delete,) = request.get_all(PayloadType.DELETE)
        assert delete.protocol == ProtocolId.IKE
        assert request.message_id == 0  # the gateway's first request on that SA
        client.answer(request)  # the client's answer reaches nobody: the SA is gone
    assert net.collect(half) == []  # half-open SAs go without a word
    assert not net.gateway.sas and not net.gateway.half_open
    downs = net.events_of(IkeSaDown)
    assert len(downs) == 3 and {d.reason for d in downs} == {"gateway shutting down"}
    assert len(net.events_of(ChildSaDown)) == 3
    assert net.gateway.next_timer() is None
