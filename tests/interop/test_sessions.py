"""Sessions that live (issue 5): NAT traversal, MOBIKE, DPD, rekeying under traffic,
IKE fragmentation with a large chain, and the seed's proxyndp.updown script, each with a
real strongSwan client in namespaces and ikegate's userspace data plane carrying pings."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .gateway import wait_for
from .netns import ping, veth


def test_ping_through_the_tunnel(topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    assert ping(client.ns, topo.inner.v4[0], count=3, wait=2) == 3
    assert ping(client.ns, topo.inner.v6[0], count=3, wait=2) == 3
    (sa,) = gateway.status()["sas"]
    (child,) = sa["children"]
    assert child["packets_in"] >= 6 and child["packets_out"] >= 6


def _nat_topology(topology_factory):
    """The gateway and an inner host as usual; the client sits behind a NAT router
    (nftables masquerade) at 10.99.0.20 on the gateway's segment."""
    topo = topology_factory(0, inner=True)
    router = topo._ns("rt")
    topo._join_bridge(router, "p-rt", ["10.99.0.20"], [])
    client = topo._ns("nc")
    veth(router, client, ["172.16.0.1/24"], ["172.16.0.2/24"], name_a="lan0", name_b="eth0")
    client.run(["ip", "route", "add", "default", "via", "172.16.0.1"])
    router.sysctl("net.ipv4.ip_forward", 1)
    router.run(["nft", "-f", "-"], input=(
        "table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
        '  oifname "eth0" masquerade\n }\n}\n'))
    return topo, router, client


def test_client_behind_nat_and_mapping_change(topology_factory, seed_setup, ikegate_gateway,
                                              strongswan_client_factory):
    topo, router, client_ns = _nat_topology(topology_factory)
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    client = strongswan_client_factory(client_ns, topo.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    (sa,) = gateway.status()["sas"]
    assert sa["nat"]["remote"] and sa["remote"]["host"] == "10.99.0.20" and sa["remote"]["port"] == 4500
    assert sa["children"][0]["encap"]
    assert ping(client_ns, topo.inner.v4[0], count=3, wait=2) == 3

    # the NAT's public address changes: masquerade forgets its mappings, the client's
    # next packets arrive from 10.99.0.21 and the gateway must follow them
    router.sysctl("net.ipv4.conf.eth0.promote_secondaries", 1)
    router.run(["ip", "addr", "add", "10.99.0.21/24", "dev", "eth0"])
    router.run(["ip", "addr", "del", "10.99.0.20/24", "dev", "eth0"])
    replies = sum(ping(client_ns, topo.inner.v4[0], count=1, wait=1) for _ in range(6))
    assert replies >= 4
    (sa,) = gateway.status()["sas"]
    assert sa["remote"]["host"] == "10.99.0.21"


def test_mobike_address_change(topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    topo = topology_factory(1, inner=True)
    host = topo.clients[0]
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    client = strongswan_client_factory(host, topo.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    assert ping(host.ns, topo.inner.v4[0], count=2, wait=2) == 2
    # the laptop moves: a new address appears, the old one goes (promoted, or the kernel
    # would drop the new secondary address together with the old primary)
    host.ns.sysctl("net.ipv4.conf.eth0.promote_secondaries", 1)
    host.run(["ip", "addr", "add", "10.99.0.77/24", "dev", "eth0"])
    host.run(["ip", "addr", "del", f"{host.v4[0]}/24", "dev", "eth0"])
    client.wait_log(r"generating INFORMATIONAL request \d+ \[ N\(UPD_SA_ADDR\)", timeout=15)
    moved_at = time.monotonic()
    got = 0
    while time.monotonic() - moved_at < 1.0 and not got:
        got = ping(host.ns, topo.inner.v4[0], count=1, wait=0.3)
    assert got, "no ping within 1 s of UPDATE_SA_ADDRESSES"
    (sa,) = gateway.status()["sas"]
    assert sa["remote"]["host"] == "10.99.0.77"
    assert ping(host.ns, topo.inner.v6[0], count=2, wait=2) == 2


def _variant(tmp_path: Path, seed_setup, name: str, *, replace: dict[str, str] = {}, strongswan_conf: str = "",
             updown_log: Path | None = None) -> Path:
    """A copy of the seed confdir with ipsec.conf edits, a strongswan.conf, and optionally
    an updown script that records each call's verb and client address."""
    import shutil

    confdir = tmp_path / name
    shutil.copytree(seed_setup.confdir, confdir)
    for name in ("ipsec.secrets",):
        path = confdir / name
        path.write_text(path.read_text().replace(str(seed_setup.confdir), str(confdir)))
    conf = (confdir / "ipsec.conf").read_text().replace(str(seed_setup.confdir), str(confdir))
    for old, new in replace.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    if updown_log is not None:
        script = confdir / "record.updown"
        script.write_text(f'#!/bin/sh\necho "$PLUTO_VERB $PLUTO_PEER_CLIENT $PLUTO_XAUTH_ID" >> {updown_log}\n')
        script.chmod(0o755)
        conf = "\n".join(f"    leftupdown={script}" if line.strip().startswith("leftupdown=") else line
                         for line in conf.splitlines()) + "\n"
    (confdir / "ipsec.conf").write_text(conf)
    if strongswan_conf:
        (confdir / "strongswan.conf").write_text(strongswan_conf)
    return confdir


FAST_RETRANSMIT = "charon {\n    retransmit_timeout = 1\n    retransmit_base = 1.0\n    retransmit_tries = 2\n}\n"


def test_dpd_clears_a_dead_client(tmp_path, topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    """dpddelay=5s, the client killed hard: liveness checks on the (fast, for CI) schedule
    from strongswan.conf, then the SAs are cleared, down-client and down-client-v6 run,
    the lease goes offline."""
    log = tmp_path / "updown.log"
    confdir = _variant(tmp_path, seed_setup, "dpd", replace={"dpddelay=2400s": "dpddelay=5s"},
                       strongswan_conf=FAST_RETRANSMIT, updown_log=log)
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, confdir)
    client = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 2, 5)
    os.kill(client.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_for(lambda: gateway.status()["sas"] == [], 20), gateway.log_text()[-3000:]
    elapsed = time.monotonic() - killed
    assert 5 <= elapsed <= 15  # dpddelay + 1 + 1 + 1 s of retransmissions (+ scheduling)
    text = gateway.log_text()
    assert text.count("sending DPD request") >= 1 and "retransmit 2 of request" in text
    assert "giving up after 2 retransmits" in text
    assert "lease 192.0.2.1, 2001:db8::1 of 'user1' went offline" in text
    calls = wait_for(lambda: log.read_text().splitlines() if len(log.read_text().splitlines()) == 4 else None, 5)
    assert sorted(calls) == sorted([
        "up-client 192.0.2.1/32 user1", "up-client-v6 2001:db8::1/128 user1",
        "down-client 192.0.2.1/32 user1", "down-client-v6 2001:db8::1/128 user1",
    ])


@pytest.mark.slow
def test_rekeys_under_traffic(topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    """The client rekeys its CHILD SA every 10 s and its IKE SA every 30 s for 2 minutes
    while a ping runs: at most one ping lost, no SA leaked."""
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], extra="rekey_time = 30s",
                                       child_extra="rekey_time = 10s")
    ok, out = client.initiate(timeout=20)
    assert ok, out
    sent = lost = 0
    start = time.monotonic()
    while time.monotonic() - start < 120:
        tick = time.monotonic()
        sent += 1
        lost += 1 - ping(client.ns, topo.inner.v4[0], count=1, wait=1)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - tick)))
    log = client.log_text()
    child_rekeys = log.count("generating CREATE_CHILD_SA request") - log.count("generating CREATE_CHILD_SA request 0 [ SA No KE")
    assert child_rekeys >= 10 and log.count("IKE_SA gw[") and "rekeyed" in gateway.log_text()
    assert gateway.log_text().count("rekeyed to myvpn") >= 3
    assert lost <= 1, f"{lost} of {sent} pings lost"
    (sa,) = wait_for(lambda: gateway.status()["sas"] if len(gateway.status()["sas"]) == 1 and len(gateway.status()["sas"][0]["children"]) == 1
                     else None, 15) or gateway.status()["sas"]
    assert len(sa["children"]) == 1
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]


def test_fragmentation_with_a_large_chain(tmp_path, topology_factory, seed_setup, ikegate_gateway,
                                          strongswan_client_factory):
    """A ~7 KB certificate chain and a client with a small fragment size: the IKE_AUTH
    exchange completes in RFC 7383 fragments both ways, and traffic flows."""
    from ikegate.pki.generate import make_large_chain

    confdir = _variant(tmp_path, seed_setup, "bigchain")
    pki = make_large_chain(intermediates=3, padding=1200)  # ~7 KB: under charon.max_packet (10000)
    (confdir / "ssl/private/vpn-server.crt").write_bytes(pki.server.cert_pem())
    (confdir / "ssl/private/vpn-server.key").write_bytes(pki.server.key_pem())
    for old in (confdir / "ipsec.d/cacerts").iterdir():
        old.unlink()
    for i, ca in enumerate(pki.intermediates):
        (confdir / f"ipsec.d/cacerts/intermediate{i}.crt").write_bytes(ca.cert_pem())
    root = tmp_path / "bigchain-root.crt"
    root.write_bytes(pki.root.cert_pem())
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, confdir)
    client = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], ca_certs=[root],
                                       charon_extra="fragment_size = 300")
    ok, out = client.initiate(timeout=30)
    assert ok, out
    gw_log, client_log = gateway.log_text(), client.log_text()
    assert "reassembled fragmented IKE message" in gw_log  # client -> gateway
    assert "sending 9 fragments" in gw_log or "fragments to" in gw_log  # gateway -> client
    assert "received fragment #" in client_log or "EF(" in client_log
    assert client_log.count("received issuer cert") == 3
    assert ping(client.ns, topo.inner.v4[0], count=2, wait=2) == 2


def test_seed_proxyndp_updown(topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    """The seed's proxyndp.updown, as written (IFACE=eth0 is the gateway's outer
    interface here): proxy ARP/NDP entries for the client's virtual addresses while it is
    connected, gone after it leaves."""
    topo = topology_factory(1, inner=True)
    gw = topo.gateway
    gateway = ikegate_gateway(gw, seed_setup.confdir)
    client = strongswan_client_factory(topo.clients[0], gw.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out

    def proxies() -> str:
        return gw.run(["ip", "neigh", "show", "proxy"]).stdout + gw.run(["ip", "-6", "neigh", "show", "proxy"]).stdout

    shown = wait_for(lambda: "192.0.2.1" in proxies() and "2001:db8::1" in proxies(), 10)
    assert shown, proxies() + gateway.log_text()[-2000:]
    assert "dev eth0" in proxies()
    ok, out = client.terminate()
    assert ok, out
    assert wait_for(lambda: "192.0.2.1" not in proxies() and "2001:db8::1" not in proxies(), 10), proxies()
