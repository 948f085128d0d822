"""Smoke test of the harness itself: strongSwan client <-> strongSwan reference gateway.

The reference gateway (starter + charon) serves the seed configuration unchanged
apart from file paths; the client is charon + swanctl with EAP-MSCHAPv2 (user1).
Both ends use kernel-libipsec (userspace ESP on a TUN device), so a ping from the
client's virtual IP to the inner host behind the gateway crosses a real ESP tunnel.
This proves namespaces, mount isolation, configs and log plumbing, and is the
reference that ikegate's own end-to-end tests and benchmarks are measured against.
"""

from __future__ import annotations

import time

import pytest

from .netns import ping
from .strongswan import ClientConn
from .seed import SEED_DNS


@pytest.mark.parametrize("outer", ["ipv4", "ipv6"])
def test_reference_gateway_tunnel(topology, strongswan_server_factory, strongswan_client_factory, outer):
    timings: dict[str, float] = {}
    gw = topology.gateway
    remote = gw.v4[0] if outer == "ipv4" else gw.v6[0]

    t = time.monotonic()
    server = strongswan_server_factory(gw)
    timings["server_start"] = time.monotonic() - t
    t = time.monotonic()
    client = strongswan_client_factory(topology.clients[0], remote)
    timings["client_start_and_load"] = time.monotonic() - t

    t = time.monotonic()
    ok, out = client.initiate(timeout=20)
    timings["initiate"] = time.monotonic() - t
    assert ok, out
    assert "EAP method EAP_MSCHAPV2 succeeded" in out

    # client view: one IKE_SA with both virtual IPs (first address of each pool)
    (ike,) = client.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert ike["remote-host"] == remote
    assert ike["local-vips"] == ["192.0.2.1", "2001:db8::1"]
    (child,) = ike["child-sas"].values()
    assert child["state"] == "INSTALLED"
    assert child["local-ts"] == ["192.0.2.1/32", "2001:db8::1/128"]
    assert child["remote-ts"] == ["0.0.0.0/0", "::/0"]
    assert sorted(client.dns_servers()) == sorted(SEED_DNS)

    # gateway view: the EAP identity, the leases
    (srv_ike,) = server.list_sas()
    assert srv_ike["name"] == "myvpn"
    assert srv_ike["remote-eap-id"] == "user1"
    assert srv_ike["remote-vips"] == ["192.0.2.1", "2001:db8::1"]

    # traffic through the tunnel, both families, to the host behind the gateway
    t = time.monotonic()
    assert ping(client.ns, topology.inner.v4[0], count=3, wait=2) == 3
    assert ping(client.ns, topology.inner.v6[0], count=3, wait=2) == 3
    timings["ping_6"] = time.monotonic() - t
    (child,) = client.list_sas()[0]["child-sas"].values()
    assert int(child["packets-out"]) >= 6 and int(child["packets-in"]) >= 6

    t = time.monotonic()
    ok, out = client.terminate()
    timings["terminate"] = time.monotonic() - t
    assert ok, out
    server.wait_log(r"deleting IKE_SA myvpn\[\d+\]", timeout=5)
    assert server.list_sas() == []

    print("timings (s):", {k: round(v, 3) for k, v in timings.items()},
          "server ready after", round(server.ready_after, 3), "client ready after", round(client.ready_after, 3))


def test_one_client_many_connections(topology_factory, strongswan_server_factory, strongswan_client_factory):
    """One charon, three connections with their own user and source address (the shape
    of the later load tests): three IKE_SAs, three distinct leases."""
    topo = topology_factory(1, addrs_per_client=3)
    host, gw = topo.clients[0], topo.gateway
    users = ["user1", "user2", "user3"]
    server = strongswan_server_factory(gw)
    conns = [ClientConn(remote_addrs=gw.v4[0], name=f"c{i}", local_addrs=addr, eap_id=user,
                        password=f"password{user[-1]}")
             for i, (user, addr) in enumerate(zip(users, host.v4))]
    client = strongswan_client_factory(host, conns=conns)
    for conn in conns:
        ok, out = client.initiate(ike=conn.name)
        assert ok, out
    sas = {sa["name"]: sa for sa in client.list_sas()}
    assert sorted(sas) == ["c0", "c1", "c2"]
    assert {sa["local-host"] for sa in sas.values()} == set(host.v4)
    v4_leases = sorted(sa["local-vips"][0] for sa in sas.values())
    assert v4_leases == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert sorted(sa["remote-eap-id"] for sa in server.list_sas()) == users
