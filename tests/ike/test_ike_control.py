"""The engine's side of the control commands: finding SAs by what an admin types
(``Gateway.find``), deleting them (``kill``), the status filter, and which SAs lose their
footing when secrets are reloaded (``without_secret``)."""

from __future__ import annotations

import ipaddress

import pytest

from ikegate.config.secrets import load_secrets
from ikegate.ike.events import ChildSaDown, IkeSaDown
from ikegate.ike.sa import CONNECTING, ESTABLISHED
from ikegate.wire.constants import ExchangeType, PayloadType

from .initiator import WINDOWS10


@pytest.fixture
def two_users(make_network):
    net = make_network(users={"user4": "password4"})
    one, four = net.client(WINDOWS10, user="user1"), net.client(WINDOWS10, user="user4")
    for client in (one, four):
        assert net.connect(client) is not None
    return net, net.sa_of(one), net.sa_of(four), one, four


def test_find_by_every_handle(two_users):
    net, sa1, sa4, one, four = two_users
    gw = net.gateway
    assert gw.find(str(sa1.unique_id)) == [sa1]
    assert gw.find(f"myvpn[{sa4.unique_id}]") == [sa4]
    assert gw.find(f"other[{sa4.unique_id}]") == []
    assert gw.find("user4") == [sa4]
    assert gw.find(sa1.vips[0]) == [sa1]  # virtual IPv4
    assert gw.find(ipaddress.ip_address(sa1.vips[1]).exploded) == [sa1]  # IPv6, spelled differently
    assert gw.find(one.local.host) == [sa1]  # outer address
    assert gw.find(" user1 ") == [sa1]
    assert gw.find("nobody") == [] and gw.find("192.0.2.250") == [] and gw.find("99") == []


def test_kill_deletes_cleanly(two_users):
    net, sa1, sa4, one, four = two_users
    net._route(net.gateway.kill(net.gateway.find("user1"), "deleted by the administrator", net.now))
    (down,) = net.events_of(IkeSaDown)
    assert down.unique_id == sa1.unique_id
    assert [e.info.eap_id for e in net.events_of(ChildSaDown)] == ["user1"]
    received = net.deliver_pending(one)
    assert [(r.exchange, r.is_response) for r in received] == [(ExchangeType.INFORMATIONAL, False)]
    assert received[0].get(PayloadType.DELETE) is not None
    assert [s["remote"]["eap_id"] for s in net.status()] == ["user4"]
    assert net.deliver_pending(four) == []  # the other user is untouched


def test_status_lists_established_and_connecting(make_network):
    net = make_network()
    client = net.client(WINDOWS10)
    net.connect(client)
    half = net.client(WINDOWS10, user="user2")
    net.send(half, half.sa_init_request())  # IKE_SA_INIT only: half-open
    assert [s["state"] for s in net.gateway.status(net.now)] == [ESTABLISHED, CONNECTING]
    net.sa_of(client).state = "DELETING"
    assert [s["state"] for s in net.gateway.status(net.now)] == [CONNECTING]


def test_without_secret(two_users, tmp_path):
    net, sa1, sa4, one, four = two_users
    gw = net.gateway
    assert gw.without_secret(net.runtime.secrets) == []
    assert sa1.peer_auth_method == sa4.peer_auth_method == "eap"
    path = tmp_path / "ipsec.secrets"
    path.write_text('user1 : EAP "password1"\n')
    assert gw.without_secret(load_secrets(path)) == [sa4]
    path.write_text('user1 : NTLM 0x' + "00" * 16 + "\nuser4 : EAP \"changed\"\n")
    assert gw.without_secret(load_secrets(path)) == []  # a changed password keeps the session
