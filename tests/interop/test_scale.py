"""200 IKE+CHILD SAs against ikegate at once: all established and listed, then all
deleted cleanly (not a benchmark: nothing here is timed beyond generous deadlines;
``bench/handshakes.py`` measures).

One strongSwan charon in one client namespace holds 200 swanctl connections, each with
its own source address and its own EAP-MSCHAPv2 user, and starts them all back to back
without waiting (``swanctl --initiate --timeout -1``).
"""

from __future__ import annotations

import json
import shlex
import sys

from .gateway import wait_for
from .seed import write_seed
from .strongswan import ClientConn

N = 200
#: strongSwan's stock retransmission schedule (4 s x 1.8^k, 5 retries; the harness's
#: shorter one could give up on a busy shared machine); no routes on the client, which
#: only cost it CPU here (no traffic flows)
CLIENT_CHARON_EXTRA = """    retransmit_timeout = 4.0
    retransmit_tries = 5
    install_routes = no
"""


def control(gateway, command: str) -> dict:
    """``ikegate COMMAND --json`` for the gateway under test."""
    out = gateway.ns.run([sys.executable, "-m", "ikegate", command, "--json", "--run-dir", str(gateway.run_dir)])
    return json.loads(out.stdout)


def swanctl_each(client, conns: list[ClientConn], action: str) -> None:
    """``swanctl --<action> ... --timeout -1`` for every connection, in one shell inside the
    client's namespaces: each returns as soon as its request is sent."""
    child = "--child c " if action == "initiate" else ""
    script = "\n".join(f"swanctl --{action} {child}--ike {shlex.quote(c.name)} --timeout -1 >/dev/null || exit 1"
                       for c in conns)
    client.exec(["sh", "-c", script], timeout=120)


def test_two_hundred_sas_up_listed_and_deleted(topology_factory, tmp_path, ikegate_gateway,
                                               strongswan_client_factory):
    users = {f"scale{i:03d}": f"pw-{i:03d}-scale" for i in range(N)}
    setup = write_seed(tmp_path / "confdir", extra_users=users)
    topo = topology_factory(1, addrs_per_client=N)
    host, gw = topo.clients[0], topo.gateway
    gateway = ikegate_gateway(gw, setup.confdir)
    conns = [ClientConn(remote_addrs=gw.v4[0], name=f"s{i}", local_addrs=addr, eap_id=user, password=pw)
             for i, ((user, pw), addr) in enumerate(zip(users.items(), host.v4))]
    client = strongswan_client_factory(host, conns=conns, ca_certs=[setup.root_cert],
                                       charon_extra=CLIENT_CHARON_EXTRA)

    # all up, as the client sees them
    swanctl_each(client, conns, "initiate")

    def established() -> list[dict]:
        sas = [sa for sa in client.list_sas()
               if sa["state"] == "ESTABLISHED"
               and [c["state"] for c in sa.get("child-sas", {}).values()] == ["INSTALLED"]]
        return sas if len(sas) == N else []

    up = wait_for(established, timeout=45, interval=0.5)
    assert len(up) == N, (f"{len(client.list_sas())} IKE SAs on the client, "
                          f"{sum(1 for sa in client.list_sas() if sa['state'] == 'ESTABLISHED')} established\n"
                          + gateway.log_text()[-3000:])
    assert {sa["name"] for sa in up} == {c.name for c in conns}
    client_v4 = {sa["local-vips"][0] for sa in up}
    assert len(client_v4) == N

    # ... and as the gateway lists them: one SA per user, each with its CHILD SA
    sas = control(gateway, "status")["sas"]
    assert len(sas) == N
    assert all(sa["state"] == "ESTABLISHED" for sa in sas)
    assert sorted(sa["remote"]["eap_id"] for sa in sas) == sorted(users)
    assert sorted(sa["remote"]["host"] for sa in sas) == sorted(host.v4)
    assert all([c["state"] for c in sa["children"]] == ["INSTALLED"] for sa in sas)
    assert {vip for sa in sas for vip in sa["virtual_ips"] if "." in vip} == client_v4
    pools = control(gateway, "leases")["pools"]
    assert pools and all(pool["online"] == N for pool in pools), pools

    # every client deletes its SA; the gateway answers each Delete (a client whose
    # Delete went unanswered would hold its SA until giving up, ~165 s)
    swanctl_each(client, conns, "terminate")
    assert wait_for(lambda: client.list_sas() == [], timeout=45, interval=0.5), f"{len(client.list_sas())} left on the client"
    assert wait_for(lambda: control(gateway, "statusall")["sas"] == [], timeout=15, interval=0.5)
    assert control(gateway, "status")["sas"] == []
    pools = control(gateway, "leases")["pools"]
    assert all(pool["online"] == 0 and pool["offline"] == N for pool in pools), pools
    assert client.log_text().count("IKE_SA deleted") == N  # logged on the Delete's response only

    assert gateway.stop() == 0
    assert "Traceback" not in gateway.log_text()
