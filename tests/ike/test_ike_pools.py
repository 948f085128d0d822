"""Virtual IPs from ``rightsourceip`` pools (strongswan-semantics.md 2.6): one address per
user, the same one back on reconnection, no duplicates ever, and the refusals."""

from __future__ import annotations

import ipaddress

import pytest

from ikegate.ike.events import ChildSaUp, IkeSaUp
from ikegate.wire.constants import CfgAttr, NotifyType, PayloadType
from ikegate.wire.payloads import CpAttribute

from .initiator import STRONGSWAN, WINDOWS10

SMALL_POOL = {"rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=10.9.0.0/30"}  # 10.9.0.1, 10.9.0.2


def leases(net) -> dict[str, tuple[str, bool]]:
    """address -> (identity, online) over every pool."""
    return {str(lease.address): (lease.identity, lease.online) for pool in net.runtime.pools for lease in pool.leases()}


def test_fifty_users_get_fifty_distinct_addresses(make_network):
    users = {f"u{i:02d}": f"pw-{i}" for i in range(50)}
    net = make_network(users=users)
    clients = [net.client(WINDOWS10, user=name) for name in users]
    for client in clients:
        net.connect(client)
        assert client.established, client.received
    v4 = [c.vips[0] for c in clients]
    v6 = [c.vips[1] for c in clients]
    assert len(set(v4)) == len(set(v6)) == 50
    # sequential from the first address of each pool, network address skipped
    assert v4 == [str(ipaddress.ip_address("192.0.2.1") + i) for i in range(50)]
    assert v6 == [str(ipaddress.ip_address("2001:db8::1") + i) for i in range(50)]
    ups = net.events_of(IkeSaUp)
    assert {u.eap_id: u.virtual_ips for u in ups} == {c.eap_peer.name: tuple(c.vips) for c in clients}
    # every CHILD SA is narrowed to its own addresses
    for child_up, client in zip(net.events_of(ChildSaUp), clients):
        assert [str(s) for s in child_up.info.remote_ts] == [f"{client.vips[0]}/32", f"{client.vips[1]}/128"]


def test_reconnecting_user_gets_the_same_address(net):
    first = net.client(WINDOWS10, user="user1")
    net.connect(first)
    assert first.vips == ["192.0.2.1", "2001:db8::1"]
    net.exchange(first, first.delete_ike())
    assert leases(net)["192.0.2.1"] == ("user1", False)  # offline, kept for user1
    other = net.client(WINDOWS10, user="user2")
    net.connect(other)
    assert other.vips == ["192.0.2.2", "2001:db8::2"]
    again = net.client(STRONGSWAN, user="user1")  # another device, another address
    net.connect(again)
    assert again.vips == ["192.0.2.1", "2001:db8::1"]


def test_two_sessions_of_one_user_get_two_addresses(net):
    """uniqueids=no: both sessions stay, each with its own lease."""
    a, b = net.client(WINDOWS10, user="user1"), net.client(WINDOWS10, user="user1")
    net.connect(a)
    net.connect(b)
    assert a.vips == ["192.0.2.1", "2001:db8::1"] and b.vips == ["192.0.2.2", "2001:db8::2"]


def test_a_full_pool_refuses_and_never_hands_out_a_duplicate(make_network):
    net = make_network(edits=SMALL_POOL)
    one, two, three = (net.client(WINDOWS10, user=u) for u in ("user1", "user2", "user3"))
    for client in (one, two):
        net.connect(client)
    assert (one.vips, two.vips) == (["10.9.0.1"], ["10.9.0.2"])  # no v6 pool: v6 silently omitted

    final = net.connect(three)
    assert three.established  # the IKE SA is up, without a CHILD SA (as strongSwan)
    assert final.notify_types[0] == NotifyType.INTERNAL_ADDRESS_FAILURE
    assert final.get(PayloadType.CP) is None and final.get(PayloadType.SA) is None
    assert three.vips == [] and three.child is None

    # user1 leaves: its lease goes offline but stays user1's while others are online...
    net.exchange(one, one.delete_ike())
    assert leases(net) == {"10.9.0.1": ("user1", False), "10.9.0.2": ("user2", True)}
    # ...and a full pool reassigns an offline lease of someone else rather than fail
    net.exchange(three, three.delete_ike())
    again = net.client(WINDOWS10, user="user3")
    net.connect(again)
    assert again.vips == ["10.9.0.1"]
    # user1 comes back: nothing is free, so a refusal, not a second 10.9.0.1
    back = net.client(WINDOWS10, user="user1")
    assert net.connect(back).notify_types[0] == NotifyType.INTERNAL_ADDRESS_FAILURE
    online = [sa["virtual_ips"] for sa in net.status()]
    flat = [ip for ips in online for ip in ips]
    assert sorted(flat) == ["10.9.0.1", "10.9.0.2"]


@pytest.mark.parametrize("cp", [None, (CfgAttr.INTERNAL_IP4_DNS, CfgAttr.INTERNAL_IP6_DNS)],
                         ids=["no-cp", "cp-without-address"])
def test_no_address_request_with_pools_configured_is_failed_cp_required(net, cp):
    """strongSwan's ike_config.c: pools configured but no address requested ->
    FAILED_CP_REQUIRED, no CHILD SA."""
    client = net.client(WINDOWS10, cp=cp)
    final = net.connect(client)
    assert client.established
    assert final.notify_types[0] == NotifyType.FAILED_CP_REQUIRED
    assert final.get(PayloadType.SA) is None and client.child is None
    assert not any(lease[1] for lease in leases(net).values())


def test_requested_address_only_helps_to_find_the_own_lease(net):
    """A client asking for a specific address gets the pool's next one (the requested
    value is ignored unless it is the client's own lease)."""
    wanted = ipaddress.ip_address("192.0.2.77").packed
    client = net.client(WINDOWS10, cp=(CpAttribute(CfgAttr.INTERNAL_IP4_ADDRESS, wanted),))
    net.connect(client)
    assert client.vips == ["192.0.2.1"]
    assert client.dns == ["198.51.100.53", "198.51.100.54", "2001:db8:8000::53:1", "2001:db8:8000::53:2"]


def test_only_one_family_requested(net):
    client = net.client(WINDOWS10, cp=(CfgAttr.INTERNAL_IP6_ADDRESS,), tsi=("::/0",), tsr=("::/0",))
    net.connect(client)
    assert client.vips == ["2001:db8::1"]
    (child_up,) = net.events_of(ChildSaUp)
    assert [str(s) for s in child_up.info.remote_ts] == ["2001:db8::1/128"]
