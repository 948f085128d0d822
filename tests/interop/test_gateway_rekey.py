"""The gateway's own rekeying with a real strongSwan client (issue 5 item 4): the seed with
``rekey=yes`` and short lifetimes (``lifetime=20s``, ``margintime=5s``, ``ikelifetime=40s``,
``reauth=no``): ikegate rekeys the CHILD SA every 10-15 s and the IKE SA after 30-35 s;
the client (which never rekeys itself) answers as responder, traffic keeps flowing, and
``ikegate status --json`` ends with exactly the SAs the client has.
"""

from __future__ import annotations

import re
import time

import pytest

from .gateway import wait_for
from .netns import ping
from .seed import write_seed

SHORT_LIFETIMES = "rekey=yes\n    lifetime=20s\n    margintime=5s\n    ikelifetime=40s\n    reauth=no"


@pytest.mark.slow
def test_gateway_rekeys_child_and_ike_sas(tmp_path, topology, ikegate_gateway, strongswan_client_factory):
    seed = write_seed(tmp_path / "seed")
    conf = seed.ipsec_conf.read_text()
    assert "rekey=no" in conf
    seed.ipsec_conf.write_text(conf.replace("rekey=no", SHORT_LIFETIMES))
    gateway = ikegate_gateway(topology.gateway, seed.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], ca_certs=[seed.root_cert])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    (first,) = gateway.status()["sas"]
    (first_child,) = first["children"]
    assert 25 < first["rekey_in"] <= 35 and 5 < first_child["rekey_in"] <= 15

    # 45 s of pings, one every half second, across three CHILD rekeys and one IKE rekey;
    # now and then the gateway's table: never more than a rekey's worth of extra SAs
    sent = lost = 0
    most_ike = most_children = 0
    start = time.monotonic()
    while time.monotonic() - start < 45:
        tick = time.monotonic()
        sent += 1
        lost += 1 - ping(client.ns, topology.inner.v4[0], count=1, wait=1)
        if sent % 4 == 0:
            sas = gateway.status()["sas"]
            most_ike = max(most_ike, len(sas))
            most_children = max(most_children, sum(len(sa["children"]) for sa in sas))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - tick)))

    gw_log, client_log = gateway.log_text(), client.log_text()
    assert gw_log.count("rekeying CHILD_SA") >= 3, gw_log[-4000:]
    first_id = first["id"]  # not 1: the client's first IKE_SA_INIT got INVALID_KE_PAYLOAD
    assert f"rekeying IKE_SA myvpn[{first_id}]" in gw_log, gw_log[-4000:]
    assert f"IKE_SA myvpn[{first_id}] rekeyed to myvpn[" in gw_log
    assert "no CHILD_SA built" not in gw_log and "IKE_SA not rekeyed" not in gw_log  # no refusals
    # the client answered as responder: CHILD rekeys with REKEY_SA, the IKE rekey, our Deletes
    assert len(re.findall(r"parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)", client_log)) >= 3
    assert re.search(r"parsed CREATE_CHILD_SA request \d+ \[ SA No KE \]", client_log), client_log[-4000:]
    assert re.search(r"IKE_SA gw\[\d+\] rekeyed between", client_log)
    assert lost <= 1, f"{lost} of {sent} pings lost"
    assert most_ike <= 2 and most_children <= 2, (most_ike, most_children)

    # no leaks: between two rekeys (a replaced inbound SA lingers 5 s, charon.delete_rekeyed_delay)
    # one IKE SA with one CHILD SA on both sides, with the same SPIs
    def settled():
        sas = gateway.status()["sas"]
        if len(sas) != 1 or len(sas[0]["children"]) != 1:
            return None
        theirs = client.list_sas()
        if len(theirs) != 1 or len(theirs[0].get("child-sas", {})) != 1:
            return None
        sa, ike = sas[0], theirs[0]
        (child,), (their_child,) = sa["children"], ike["child-sas"].values()
        if {ike["initiator-spi"], ike["responder-spi"]} != {sa["spi_i"], sa["spi_r"]}:
            return None
        if (their_child["spi-in"], their_child["spi-out"]) != (child["spi_out"], child["spi_in"]):
            return None
        return sa, child

    found = wait_for(settled, 30, 0.3)
    assert found, (gateway.status()["sas"], client.list_sas())
    sa, child = found
    assert sa["state"] == "ESTABLISHED" and child["state"] == "INSTALLED"
    assert (sa["spi_i"], sa["spi_r"]) != (first["spi_i"], first["spi_r"])
    assert child["spi_in"] != first_child["spi_in"]
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    assert ping(client.ns, topology.inner.v6[0], count=2, wait=2) == 2
