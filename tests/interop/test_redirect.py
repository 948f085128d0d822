"""Spreading load (issue 11): IKEv2 redirect (RFC 5685) between two ikegate gateways.

Two ikegate gateways on one segment, each with an inner host behind it (same inner
addresses, separate namespaces): gw1 (10.99.0.1) redirects when it holds more than one
IKE SA, to gw2 (10.99.0.2).  Real strongSwan 5.9.8 clients follow redirects by default
(``charon.follow_redirects``): the first client stays on gw1, the second is redirected
and ends up established on gw2, a third with ``follow_redirects = no`` (so no
REDIRECT_SUPPORTED) is served by gw1 although it is over its threshold.  Each client
pings the inner host through its tunnel.
"""

from __future__ import annotations

import shutil

from .netns import INNER_V4, INNER_V6, OUTER_V4, OUTER_V6, Host, ping, veth


def _second_gateway(topo) -> tuple[Host, Host]:
    """gw2 at 10.99.0.2 / fd00:99::2 on the topology's segment, with its own inner host."""
    gw2 = topo._ns("gw2")
    for scope in ("all", "default"):
        gw2.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
        gw2.sysctl(f"net.ipv6.conf.{scope}.accept_ra", 0)
    host = Host(gw2, [str(OUTER_V4[2])], [str(OUTER_V6[2])])
    topo._join_bridge(gw2, "p-gw2", host.v4, host.v6)
    inner = topo._ns("in2")
    veth(gw2, inner, [f"{INNER_V4[1]}/24", f"{INNER_V6[1]}/64"], [f"{INNER_V4[2]}/24", f"{INNER_V6[2]}/64"],
         name_a="inner0", name_b="eth0")
    inner.run(["ip", "route", "add", "default", "via", str(INNER_V4[1])])
    gw2.sysctl("net.ipv4.ip_forward", 1)
    gw2.sysctl("net.ipv6.conf.all.forwarding", 1)
    return host, Host(inner, [str(INNER_V4[2])], [str(INNER_V6[2])])


def test_over_threshold_client_is_redirected_to_second_gateway(topology_factory, seed_setup, ikegate_gateway,
                                                               strongswan_client_factory, tmp_path):
    topo = topology_factory(3, inner=True)
    gw2_host, _ = _second_gateway(topo)
    conf1 = tmp_path / "gw1conf"
    shutil.copytree(seed_setup.confdir, conf1)
    (conf1 / "strongswan.conf").write_text(f"""
ikegate {{
    redirect {{
        threshold = 1
        gateways {{
            gw2 {{
                address = {gw2_host.v4[0]}
                capacity = 10
            }}
        }}
    }}
}}
""")
    gw1 = ikegate_gateway(topo.gateway, conf1)
    gw2 = ikegate_gateway(gw2_host, seed_setup.confdir)
    users = sorted(seed_setup.users.items())
    gw1_addr = topo.gateway.v4[0]

    # below the threshold: the first client stays on gw1
    first = strongswan_client_factory(topo.clients[0], gw1_addr, eap_id=users[0][0], password=users[0][1])
    ok, out = first.initiate(timeout=20)
    assert ok, out
    (ike,) = first.list_sas()
    assert ike["remote-host"] == gw1_addr

    # over it: the second is redirected and connects to gw2
    second = strongswan_client_factory(topo.clients[1], gw1_addr, eap_id=users[1][0], password=users[1][1])
    ok, out = second.initiate(timeout=20)
    assert ok, out + second.log_text()[-3000:]
    (ike,) = second.list_sas()
    assert ike["state"] == "ESTABLISHED" and ike["remote-host"] == gw2_host.v4[0]
    log = second.log_text()
    assert f"redirected to {gw2_host.v4[0]}" in log
    assert ping(second.ns, INNER_V4[2].compressed, count=2, wait=2) == 2
    assert ping(first.ns, INNER_V4[2].compressed, count=2, wait=2) == 2

    # a client that does not follow redirects (no REDIRECT_SUPPORTED) is served by gw1
    third = strongswan_client_factory(topo.clients[2], gw1_addr, eap_id=users[2][0], password=users[2][1],
                                      charon_extra="    follow_redirects = no\n")
    ok, out = third.initiate(timeout=20)
    assert ok, out
    assert third.list_sas()[0]["remote-host"] == gw1_addr

    on_gw1 = {sa["remote"]["host"] for sa in gw1.status()["sas"]}
    on_gw2 = {sa["remote"]["host"] for sa in gw2.status()["sas"]}
    assert on_gw1 == {topo.clients[0].v4[0], topo.clients[2].v4[0]}
    assert on_gw2 == {topo.clients[1].v4[0]}
    assert len(gw2.status()["sas"]) == 1
    text = gw1.log_text()
    assert (f"redirecting peer {topo.clients[1].v4[0]} to {gw2_host.v4[0]} (gateway 'gw2', capacity 10): "
            "2 IKE SAs here, threshold 1") in text
    assert f"client got redirected here from {gw1_addr}" in gw2.log_text()
