"""Traffic-selector leniency for clients that ask for a virtual address but propose a
single host standing for themselves as TSi: openiked's ``from dynamic`` (``0.0.0.0/32``,
``::/128``) and libreswan (its own outer address, hidden behind a NAT).  They get their
assigned virtual address back as TSi where strongSwan answers TS_UNACCEPTABLE; anything
else keeps strongSwan's narrowing."""

from __future__ import annotations

import ipaddress

import pytest

from ikegate.ike.events import ChildSaUp, Endpoint
from ikegate.ike.ts import Selector, narrow_to_virtual_ips
from ikegate.wire.constants import CfgAttr, NotifyType, PayloadType

from .initiator import STRONGSWAN, WINDOWS10

VIPS = ["192.0.2.1", "2001:db8::1"]


def ts_text(selectors) -> list[str]:
    return [str(next(ipaddress.summarize_address_range(s.start_addr, s.end_addr))) for s in selectors]


# -- the narrowing itself ---------------------------------------------------------------------


def sel(text: str) -> Selector:
    return Selector.from_network(text)


@pytest.mark.parametrize("proposed, expected", [
    (["0.0.0.0/32"], ["192.0.2.1/32"]),
    (["::/128"], ["2001:db8::1/128"]),
    (["0.0.0.0/32", "::/128"], ["192.0.2.1/32", "2001:db8::1/128"]),
    (["198.51.100.7/32"], ["192.0.2.1/32"]),  # the address its IKE messages come from
    (["0.0.0.0/0", "::/128"], ["192.0.2.1/32", "2001:db8::1/128"]),  # usual narrowing first
    (["10.1.2.3/32"], []),  # someone else's address, no NAT
    (["0.0.0.0/31"], []),  # not a single host
    (["192.0.2.2/32"], []),  # another client's virtual address
])
def test_narrow_to_virtual_ips(proposed, expected):
    result = narrow_to_virtual_ips(VIPS, [sel(p) for p in proposed], peer_hosts=["198.51.100.7"])
    assert [str(s) for s in result] == expected


def test_any_host_behind_a_nat_and_ports_kept():
    udp_dns = Selector(4, int(ipaddress.IPv4Address("10.1.2.3")), int(ipaddress.IPv4Address("10.1.2.3")), 17, 53, 53)
    assert narrow_to_virtual_ips(VIPS, [udp_dns], peer_hosts=["198.51.100.7"]) == []
    (result,) = narrow_to_virtual_ips(VIPS, [udp_dns], peer_hosts=["198.51.100.7"], any_host=True)
    assert (str(result), result.protocol, result.start_port, result.end_port) == ("192.0.2.1/32[17/53]", 17, 53, 53)


# -- in IKE_AUTH and CREATE_CHILD_SA, with the in-memory initiator ---------------------------------


def test_openiked_from_dynamic_gets_its_virtual_addresses(net):
    client = net.client(STRONGSWAN, tsi=("0.0.0.0/32", "::/128"))
    final = net.connect(client)
    assert client.established and final.error is None
    assert client.vips == VIPS
    assert ts_text(client.child.tsi) == ["192.0.2.1/32", "2001:db8::1/128"]
    assert ts_text(client.child.tsr) == ["0.0.0.0/0", "::/0"]
    (up,) = net.events_of(ChildSaUp)
    assert [str(s) for s in up.info.remote_ts] == ["192.0.2.1/32", "2001:db8::1/128"]


def test_libreswan_own_address_gets_its_virtual_address(net):
    client = net.client(STRONGSWAN, host="198.51.100.77", tsi=("198.51.100.77/32",), tsr=("0.0.0.0/0",))
    final = net.connect(client)
    assert client.established and final.error is None
    assert ts_text(client.child.tsi) == ["192.0.2.1/32"]
    assert ts_text(client.child.tsr) == ["0.0.0.0/0"]


def test_own_private_address_behind_a_nat(net):
    """Behind a NAT the client proposes its private address, which we never see."""
    client = net.client(STRONGSWAN, host="10.0.0.5", tsi=("10.0.0.5/32",), tsr=("0.0.0.0/0",))
    public = Endpoint("198.51.100.200", 31000)

    def through_nat(datagrams):
        for data in datagrams:
            net._route(net.gateway.receive(data, public, client.remote, net.now))
        waiting = net.mailbox.pop(public, [])
        return [d for d in waiting if client.owns(d)]

    final = client.connect(through_nat)
    assert client.established and final.error is None
    assert client.nat_local is True  # the gateway's NAT-D hashes told the client
    assert ts_text(client.child.tsi) == ["192.0.2.1/32"]


def test_strict_for_another_host_without_nat(net):
    """Another host's address, the client not behind a NAT: TS_UNACCEPTABLE, as strongSwan."""
    client = net.client(STRONGSWAN, tsi=("198.51.100.200/32",), tsr=("0.0.0.0/0",))
    final = net.connect(client)
    assert client.established
    assert final.error == NotifyType.TS_UNACCEPTABLE
    assert client.child is None


def test_only_families_with_a_virtual_address(net):
    """An IPv4 address only asked for: ``::/128`` has nothing to stand for and is dropped."""
    client = net.client(STRONGSWAN, tsi=("0.0.0.0/32", "::/128"), cp=(CfgAttr.INTERNAL_IP4_ADDRESS,))
    final = net.connect(client)
    assert client.established and final.error is None
    assert client.vips == ["192.0.2.1"]
    assert ts_text(client.child.tsi) == ["192.0.2.1/32"]


def test_child_rekey_with_from_dynamic(net):
    client = net.client(WINDOWS10, tsi=("0.0.0.0/32", "::/128"))
    net.connect(client)
    first = client.child
    response = net.exchange(client, client.create_child_sa())
    assert response.error is None and response.get(PayloadType.SA) is not None
    assert ts_text(response.get(PayloadType.TSi).selectors) == ["192.0.2.1/32", "2001:db8::1/128"]
    assert client.child is not first
    (_, rekeyed) = net.events_of(ChildSaUp)
    assert rekeyed.rekey_of is not None
    assert [str(s) for s in rekeyed.info.remote_ts] == ["192.0.2.1/32", "2001:db8::1/128"]
