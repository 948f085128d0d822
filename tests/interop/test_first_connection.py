"""First connection: a real strongSwan client authenticates to ikegate serving the seed.

The gateway serves the seed configuration unchanged (paths aside) with a generated
root -> intermediate -> server PKI; the client (charon + swanctl, kernel-libipsec,
EAP-MSCHAPv2) trusts only the root.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .seed import SEED_DNS


def ikegate_status(gateway) -> dict:
    out = gateway.ns.run([sys.executable, "-m", "ikegate", "status", "--json", "--run-dir", str(gateway.run_dir)])
    return json.loads(out.stdout)


@pytest.mark.parametrize("outer", ["ipv4", "ipv6"])
def test_seed_client_connects(topology, seed_setup, ikegate_gateway, strongswan_client_factory, outer):
    gw_ns = topology.gateway
    gateway = ikegate_gateway(gw_ns, seed_setup.confdir)
    remote = gw_ns.v4[0] if outer == "ipv4" else gw_ns.v6[0]
    client = strongswan_client_factory(topology.clients[0], remote)
    ok, out = client.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-4000:]
    assert "EAP method EAP_MSCHAPV2 succeeded" in out
    (ike,) = client.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert ike["local-vips"] == ["192.0.2.1", "2001:db8::1"]
    (child,) = ike["child-sas"].values()
    assert child["state"] == "INSTALLED"
    assert child["local-ts"] == ["192.0.2.1/32", "2001:db8::1/128"]
    assert child["remote-ts"] == ["0.0.0.0/0", "::/0"]
    assert sorted(client.dns_servers()) == sorted(SEED_DNS)
    status = ikegate_status(gateway)
    (sa,) = status["sas"]
    assert sa["state"] == "ESTABLISHED"
    assert sa["remote"]["eap_id"] == "user1"
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    assert len(sa["children"]) == 1
