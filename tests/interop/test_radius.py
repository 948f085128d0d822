"""Beyond one gateway: ikegate with ``rightauth=eap-radius`` against a real FreeRADIUS 3.2.

One segment for the whole module: gateway 1 (10.99.0.1, with an inner host behind it),
gateway 2 (10.99.0.2), FreeRADIUS (10.99.0.3, :mod:`.freeradius`: users in its files
backend, accounting to its detail file, an sqlippool over SQLite) and three strongSwan
clients (10.99.0.10-12).  FreeRADIUS runs for the whole module; each test starts the
gateways it needs on a copy of the seed configuration directory whose ipsec.conf says
``rightauth=eap-radius`` and whose strongswan.conf carries strongSwan's
``charon.plugins.eap-radius`` settings (servers, accounting, dae).

The first two tests check the harness alone (``radtest``/``radclient``) and with
strongSwan's own eap-radius plugin as the gateway (the reference implementation of the same
settings).  Then ikegate: EAP-MSCHAPv2 relayed and a wrong password refused (a), two
gateways sharing FreeRADIUS's sqlippool (b), accounting byte counts against known traffic
(c), and a Disconnect-Request from ``radclient`` (d).  About 15-25 s in all.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from .freeradius import FreeRadius, attach_host, freeradius_missing, radclient
from .gateway import wait_for
from .netns import OUTER_V4, Topology, ping
from .seed import server_from_confdir
from .strongswan import SERVER_PLUGINS

SECRET = "radius-s3cret"
DAE_SECRET = "dae-s3cret"
DAE_PORT = 3799
USERS = {"user1": "password1", "user2": "password2", "user3": "password3"}
POOL = ["192.0.2.201", "192.0.2.202", "192.0.2.203", "192.0.2.204"]
INTERIM = 2  # seconds between Interim-Updates


def _radius_support_missing() -> str | None:
    reason = freeradius_missing()
    if reason:
        return reason
    for module in ("ikegate.radius.client", "ikegate.daemon.radius"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} does not exist yet (ikegate's RADIUS support is not written)"
    return None


pytestmark = pytest.mark.skipif(freeradius_missing() is not None, reason=str(freeradius_missing()))
needs_ikegate_radius = pytest.mark.skipif(_radius_support_missing() is not None,
                                          reason=str(_radius_support_missing()))


class World:
    """The module's topology and FreeRADIUS."""

    def __init__(self, topo: Topology, radius_host, gw2, freeradius: FreeRadius) -> None:
        self.topo = topo
        self.gw1 = topo.gateway
        self.gw2 = gw2
        self.radius_host = radius_host
        self.radius = freeradius
        self.clients = topo.clients
        self.inner = topo.inner


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    topo = Topology(3, inner=True).build()
    fr = None
    try:
        gw2 = attach_host(topo, "gw2", 2)
        rad = attach_host(topo, "rad", 3)
        for gw in (topo.gateway, gw2):
            gw.ns.sysctl("net.ipv4.ip_forward", 1)
        fr = FreeRadius(rad.ns, tmp_path_factory.mktemp("freeradius"),
                        clients={topo.gateway.v4[0]: SECRET, gw2.v4[0]: SECRET, "127.0.0.1": SECRET},
                        users=USERS, pool=POOL).start()
        yield World(topo, rad, gw2, fr)
    finally:
        if fr is not None:
            fr.stop()
        topo.destroy()


@pytest.fixture(autouse=True)
def _radius_log_on_failure(request, world):
    """Print the tail of FreeRADIUS's log when a test of this module failed."""
    yield
    failed = any(getattr(getattr(request.node, f"_interop_rep_{w}", None), "failed", False)
                 for w in ("setup", "call"))
    if failed:
        print(f"\n===== freeradius -X (tail) =====\n{world.radius.log_text()[-8000:]}", file=sys.stderr)


def gateway_confdir(seed_setup, directory: Path, host, world: World, *, radius_pool: bool = False,
                    **settings) -> Path:
    """A copy of the seed configuration with ``rightauth=eap-radius`` (and with
    ``radius_pool`` ``rightsourceip=%radius``), without the users' EAP secrets, and a
    strongswan.conf for ``host``."""
    confdir = directory
    shutil.copytree(seed_setup.confdir, confdir)
    conf = (confdir / "ipsec.conf").read_text()
    conf = conf.replace("rightauth=eap-mschapv2", "rightauth=eap-radius")
    if radius_pool:
        conf = conf.replace("rightsourceip=192.0.2.0/24,2001:db8::/96", "rightsourceip=%radius")
    (confdir / "ipsec.conf").write_text(conf)
    # no local user passwords: every EAP credential is FreeRADIUS's
    (confdir / "ipsec.secrets").write_text("".join(
        line + "\n" for line in (confdir / "ipsec.secrets").read_text().splitlines()
        if " EAP " not in line and not line.startswith("include")))
    (confdir / "ipsec.secrets").chmod(0o600)
    (confdir / "ipsec.d" / "secrets" / "myvpn").unlink()
    (confdir / "strongswan.conf").write_text(eap_radius_settings(host, world, **settings))
    return confdir


def eap_radius_settings(host, world: World, **settings) -> str:
    """A strongswan.conf with strongSwan's eap-radius plugin settings for gateway ``host``."""
    return "charon {\n    plugins {\n" + eap_radius_section(host, world, **settings) + "    }\n}\n"


def eap_radius_section(host, world: World, *, accounting: bool = True, dae: bool = False,
                       dead_server: str | None = None, tries: int = 3, timeout: float = 1.0) -> str:
    """The ``eap-radius { ... }`` section (inside ``charon.plugins``), as charon reads it.
    ``dead_server``: an address where nothing answers, configured first and preferred."""
    dead = f"""                dead {{
                    address = {dead_server}
                    secret = {SECRET}
                    preference = 10
                }}
""" if dead_server else ""
    dae_section = f"""
            dae {{
                enable = yes
                listen = {host.v4[0]}
                port = {DAE_PORT}
                secret = {DAE_SECRET}
            }}""" if dae else ""
    return f"""        eap-radius {{
            servers {{
{dead}                freeradius {{
                    address = {world.radius_host.v4[0]}
                    secret = {SECRET}
                    auth_port = {world.radius.auth_port}
                    acct_port = {world.radius.acct_port}
                }}
            }}
            retransmit_tries = {tries}
            retransmit_timeout = {timeout}
            accounting = {'yes' if accounting else 'no'}
            accounting_interval = {INTERIM}{dae_section}
        }}
"""


def _wait_pool_empty(world: World, timeout: float = 10.0) -> dict:
    """Wait until no lease of the pool is active; returns the active leases ({} then)."""
    wait_for(lambda: not world.radius.active_leases(), timeout)
    return world.radius.active_leases()


# ------------------------------------------------------------------------------------------
# the harness alone (radtest/radclient), then against strongSwan's own eap-radius plugin

def test_freeradius_harness_alone(world):
    """MS-CHAP against the files backend, an address from the sqlippool in the Accept,
    accounting into the detail file, and a Stop that releases the lease."""
    ns = world.radius_host.ns
    ok = ns.run(["radtest", "-t", "mschap", "user3", "password3", "127.0.0.1", "9", SECRET], check=False).stdout
    assert "Received Access-Accept" in ok, ok
    address = next(line.split(" = ")[1] for line in ok.splitlines() if "Framed-IP-Address" in line)
    assert address in POOL and world.radius.active_leases()[address].username == "user3"
    bad = ns.run(["radtest", "-t", "mschap", "user3", "wrong", "127.0.0.1", "9", SECRET], check=False).stdout
    assert "Received Access-Reject" in bad, bad
    before = len(world.radius.detail_records())
    accepted, out = radclient(ns, "127.0.0.1:1813", "acct", SECRET, [
        "Acct-Status-Type = Stop", "User-Name = user3", "NAS-IP-Address = 127.0.0.1",
        f"Framed-IP-Address = {address}", 'Acct-Session-Id = "harness-1"', "Acct-Input-Octets = 1234"])
    assert accepted, out
    (record,) = world.radius.detail_records()[before:]
    assert (record["Acct-Session-Id"], record["Acct-Input-Octets"]) == ("harness-1", "1234")
    assert _wait_pool_empty(world, timeout=2) == {}


def test_reference_strongswan_gateway_through_freeradius(world, seed_setup, tmp_path, strongswan_client_factory):
    """strongSwan 5.9 as the NAS, with the settings the ikegate tests use: EAP-MSCHAPv2 is
    relayed, the address comes from the sqlippool, accounting Start/Stop reach the detail
    file and the Stop releases the lease."""
    confdir = gateway_confdir(seed_setup, tmp_path / "conf", world.gw1, world, radius_pool=True)
    server = server_from_confdir(world.gw1.ns, tmp_path / "strongswan", confdir,
                                 plugin_conf=eap_radius_section(world.gw1, world))
    server.plugins = (*SERVER_PLUGINS, "eap-radius")
    server.start()
    try:
        before = len(world.radius.detail_records())
        client = strongswan_client_factory(world.clients[0], world.gw1.v4[0], eap_id="user1", password="password1")
        ok, out = client.initiate(timeout=20)
        assert ok, out + server.log_text()[-3000:]
        (ike,) = client.list_sas()
        (vip,) = ike["local-vips"]
        leases = world.radius.active_leases()
        assert list(leases) == [vip] and leases[vip].username == "user1" and leases[vip].nas == world.gw1.v4[0]
        assert ping(client.ns, world.inner.v4[0], count=2, wait=2) == 2
        client.terminate()
        assert _wait_pool_empty(world) == {}
        kinds = [r["Acct-Status-Type"] for r in world.radius.detail_records()[before:]]
        assert kinds[0] == "Start" and kinds[-1] == "Stop"
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------
# ikegate

@needs_ikegate_radius
def test_eap_mschapv2_relayed_to_freeradius(world, seed_setup, tmp_path, ikegate_gateway,
                                            strongswan_client_factory):
    """(a) EAP-MSCHAPv2 between a strongSwan client and FreeRADIUS through ikegate, then
    traffic through the tunnel; a wrong password is refused.  The Framed-IP-Address that
    FreeRADIUS's pool sends takes precedence over the local IPv4 pool (the local IPv6 pool
    still serves), and the accounting Stop returns it to the pool."""
    confdir = gateway_confdir(seed_setup, tmp_path / "conf", world.gw1, world)
    gateway = ikegate_gateway(world.gw1, confdir)
    mark = world.radius.log_mark()
    good = strongswan_client_factory(world.clients[0], world.gw1.v4[0], eap_id="user1", password="password1")
    ok, out = good.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-4000:]
    assert "EAP method EAP_MSCHAPV2 succeeded, MSK established" in out
    assert "Login OK: [user1]" in world.radius.log_since(mark)
    (ike,) = good.list_sas()
    assert ike["state"] == "ESTABLISHED"
    v4, v6 = ike["local-vips"]
    leases = world.radius.active_leases()
    assert list(leases) == [v4] and leases[v4].username == "user1", (ike["local-vips"], leases)
    assert v6 == "2001:db8::1"  # the local pool
    assert ping(good.ns, world.inner.v4[0], count=3, wait=2) == 3

    bad = strongswan_client_factory(world.clients[1], world.gw1.v4[0], eap_id="user2", password="wrong")
    ok, out = bad.initiate(timeout=20)
    assert not ok
    bad.wait_log(r"received AUTHENTICATION_FAILED notify error", timeout=10)
    assert "Login incorrect" in world.radius.log_since(mark) and "[user2]" in world.radius.log_since(mark)
    assert bad.list_sas() == []
    assert [sa["remote"]["eap_id"] for sa in gateway.status()["sas"]] == ["user1"]
    log = gateway.log_text()
    assert "Traceback" not in log
    assert "password1" not in log and SECRET not in log
    ok, out = good.terminate()
    assert ok, out
    assert _wait_pool_empty(world) == {}


@needs_ikegate_radius
def test_two_gateways_share_the_freeradius_pool(world, seed_setup, tmp_path, ikegate_gateway,
                                                strongswan_client_factory):
    """(b) ``rightsourceip=%radius`` on two gateways: clients of both get distinct addresses
    from FreeRADIUS's one sqlippool, recorded against each gateway; the addresses return
    to the pool when the clients disconnect."""
    assert _wait_pool_empty(world) == {}
    gateways = []
    for i, host in enumerate((world.gw1, world.gw2), 1):
        confdir = gateway_confdir(seed_setup, tmp_path / f"conf{i}", host, world, radius_pool=True)
        gateways.append(ikegate_gateway(host, confdir))
    placement = [(world.clients[0], world.gw1, "user1"), (world.clients[1], world.gw2, "user2"),
                 (world.clients[2], world.gw1, "user3")]
    clients, vips = [], {}
    for where, gw, user in placement:
        client = strongswan_client_factory(where, gw.v4[0], eap_id=user, password=USERS[user])
        ok, out = client.initiate(timeout=20)
        assert ok, out
        (ike,) = client.list_sas()
        v4 = [a for a in ike["local-vips"] if ":" not in a]
        assert len(v4) == 1, ike["local-vips"]
        vips[user] = (v4[0], gw)
        clients.append(client)
    addresses = [a for a, _ in vips.values()]
    assert len(set(addresses)) == 3 and set(addresses) <= set(POOL)
    leases = world.radius.active_leases()
    assert set(leases) == set(addresses)
    for user, (address, gw) in vips.items():
        assert leases[address].username == user
        assert leases[address].nas == gw.v4[0]
    # the gateways agree with the clients
    for gateway in gateways:
        for sa in gateway.status()["sas"]:
            assert sa["virtual_ips"][0] == vips[sa["remote"]["eap_id"]][0]

    for client in clients:
        ok, out = client.terminate()
        assert ok, out
    assert _wait_pool_empty(world) == {}, world.radius.leases()
    # and a fresh connection takes one of them again (a new charon: the old one leaves the ports)
    clients[0].stop()
    again = strongswan_client_factory(world.clients[0], world.gw2.v4[0], eap_id="user1", password="password1")
    ok, out = again.initiate(timeout=20)
    assert ok, out
    (ike,) = again.list_sas()
    assert [a for a in ike["local-vips"] if ":" not in a][0] in POOL
    again.terminate()
    assert _wait_pool_empty(world) == {}


_PING_SIZED = r"""
import os, select, socket, struct, sys, time
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF; got = 0
for seq in range(1, count + 1):
    body = bytes(size)
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    sock.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + body), ident, seq) + body, (dst, 0))
    deadline = time.monotonic() + 2
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        data = sock.recv(65535); data = data[(data[0] & 0x0F) * 4:]
        t, _, _, i, s = struct.unpack("!BBHHH", data[:8])
        if t == 0 and i == ident and s == seq:
            got += 1
            break
print(got)
"""


@needs_ikegate_radius
def test_accounting_records_with_byte_counts(world, seed_setup, tmp_path, ikegate_gateway,
                                             strongswan_client_factory):
    """(c) Start, Interim-Update(s) and Stop in FreeRADIUS's detail file for one session,
    one Acct-Session-Id across an IKE rekey, and octet counts within 5 % of the traffic the
    session carried (echo requests of a fixed size: IP packets of 20 + 8 + size bytes each way)."""
    confdir = gateway_confdir(seed_setup, tmp_path / "conf", world.gw1, world)
    ikegate_gateway(world.gw1, confdir)
    before = len(world.radius.detail_records())
    client = strongswan_client_factory(world.clients[0], world.gw1.v4[0], eap_id="user1", password="password1")
    ok, out = client.initiate(timeout=20)
    assert ok, out
    count, size = 100, 972  # 100 packets of 1000 bytes each way
    replies = int(world.clients[0].run([sys.executable, "-c", _PING_SIZED, world.inner.v4[0], str(count),
                                        str(size)], timeout=60).stdout.strip())
    assert replies >= count - 2  # the userspace data plane may lose one now and then
    expected = count * (20 + 8 + size)
    # an IKE rekey keeps the accounting session (one Acct-Session-Id, counts carried over)
    client.swanctl("--rekey", "--ike", "gw")
    client.wait_log(r"IKE_SA gw\[\d+\] rekeyed|rekeying IKE_SA .* completed|IKE_SA rekeyed", timeout=10)
    time.sleep(INTERIM + 1)  # at least one Interim-Update after the traffic
    ok, out = client.terminate()
    assert ok, out

    def records():
        recs = [r for r in world.radius.detail_records()[before:] if r.get("User-Name") == "user1"]
        return recs if recs and recs[-1].get("Acct-Status-Type") == "Stop" else None

    recs = wait_for(records, 10)
    assert recs, world.radius.detail_records()[before:]
    kinds = [r["Acct-Status-Type"] for r in recs]
    assert kinds[0] == "Start" and kinds[-1] == "Stop" and "Interim-Update" in kinds, kinds
    assert len({r["Acct-Session-Id"] for r in recs}) == 1
    stop = recs[-1]
    for attr in ("Acct-Input-Octets", "Acct-Output-Octets"):
        octets = int(stop[attr]) + (int(stop.get(attr.replace("Octets", "Gigawords"), 0)) << 32)
        assert abs(octets - expected) <= 0.05 * expected, (attr, octets, expected, stop)
    assert int(stop["Acct-Input-Packets"]) >= count and int(stop["Acct-Output-Packets"]) >= count
    assert "Acct-Terminate-Cause" in stop
    interim = [r for r in recs if r["Acct-Status-Type"] == "Interim-Update"]
    last = interim[-1]
    assert abs(int(last["Acct-Input-Octets"]) - expected) <= 0.05 * expected, last


@needs_ikegate_radius
def test_disconnect_request_ends_session(world, seed_setup, tmp_path, ikegate_gateway, strongswan_client_factory):
    """(d) A Disconnect-Request (RFC 5176) from ``radclient`` naming the session (User-Name
    and the Acct-Session-Id of its accounting Start) is ACKed and the client sees the Delete
    of its IKE_SA within 1 s; an unknown user gets a Disconnect-NAK, a CoA-Request a CoA-NAK,
    a request with the wrong secret no answer."""
    confdir = gateway_confdir(seed_setup, tmp_path / "conf", world.gw1, world, dae=True)
    gateway = ikegate_gateway(world.gw1, confdir)
    before = len(world.radius.detail_records())
    client = strongswan_client_factory(world.clients[0], world.gw1.v4[0], eap_id="user1", password="password1")
    ok, out = client.initiate(timeout=20)
    assert ok, out
    server = f"{world.gw1.v4[0]}:{DAE_PORT}"

    ok, out = radclient(world.radius_host.ns, server, "disconnect", DAE_SECRET, ["User-Name = nobody"])
    assert not ok and "Disconnect-NAK" in out and "Session-Context-Not-Found" in out, out
    ok, out = radclient(world.radius_host.ns, server, "coa", DAE_SECRET, ["User-Name = user1", "Session-Timeout = 60"])
    assert not ok and "CoA-NAK" in out, out
    assert len(client.list_sas()) == 1
    starts = wait_for(lambda: [r for r in world.radius.detail_records()[before:]
                               if r.get("Acct-Status-Type") == "Start" and r.get("User-Name") == "user1"], 5)
    assert len(starts) == 1, world.radius.detail_records()[before:]
    session_id = starts[0]["Acct-Session-Id"]

    started = time.monotonic()
    ok, out = radclient(world.radius_host.ns, server, "disconnect", DAE_SECRET,
                        ["User-Name = user1", f'Acct-Session-Id = "{session_id}"'])
    assert ok and "Received Disconnect-ACK" in out, out
    deleted = wait_for(lambda: "received DELETE for IKE_SA" in client.log_text(), 2.0, interval=0.02)
    elapsed = time.monotonic() - started
    assert deleted, client.log_text()[-3000:]
    assert elapsed <= 1.0, elapsed
    assert wait_for(lambda: client.list_sas() == [], 2)
    assert wait_for(lambda: gateway.status()["sas"] == [], 2)
    stop = wait_for(lambda: [r for r in world.radius.detail_records()[before:]
                             if r.get("Acct-Status-Type") == "Stop" and r.get("Acct-Session-Id") == session_id], 5)
    assert stop and stop[0]["Acct-Terminate-Cause"] == "Admin-Reset", stop
    assert _wait_pool_empty(world) == {}

    # a wrong DAE secret is ignored (no answer at all)
    ok, out = radclient(world.radius_host.ns, server, "disconnect", "not-the-secret", ["User-Name = user1"],
                        timeout=1, retries=1)
    assert not ok and "Disconnect-ACK" not in out


@needs_ikegate_radius
def test_failover_to_the_next_server(world, seed_setup, tmp_path, ikegate_gateway, strongswan_client_factory):
    """Several servers: the preferred one is silent, so after its retransmits the
    Access-Request goes to the next one (FreeRADIUS) and the client connects; the next
    authentication asks the answering server first (the silent one is now tried last)."""
    dead = str(OUTER_V4[9])  # on the test segment, but no namespace has it
    confdir = gateway_confdir(seed_setup, tmp_path / "conf", world.gw1, world, dead_server=dead,
                              tries=1, timeout=0.5)
    gateway = ikegate_gateway(world.gw1, confdir)
    first = strongswan_client_factory(world.clients[0], world.gw1.v4[0], eap_id="user1", password="password1")
    started = time.monotonic()
    ok, out = first.initiate(timeout=20)
    first_took = time.monotonic() - started
    assert ok, out + gateway.log_text()[-3000:]
    log = gateway.log_text()
    assert "server 'dead'" in log and "is not responding" in log, log[-3000:]
    mark = len(log)

    second = strongswan_client_factory(world.clients[1], world.gw1.v4[0], eap_id="user2", password="password2")
    started = time.monotonic()
    ok, out = second.initiate(timeout=20)
    second_took = time.monotonic() - started
    assert ok, out
    assert "Access-Request to server 'dead'" not in gateway.log_text()[mark:]
    assert second_took < first_took, (first_took, second_took)
    # ikegate statusall / status: 'dead' held down since the first login, for accounting too
    # (one reachability per server, as strongSwan: no accounting request went to it);
    # each SA names the server that accepted it and its Acct-Session-Id
    from .test_control import ctl, ctl_json

    servers = {s["name"]: s for s in ctl_json(gateway, "statusall")["radius"]["servers"]}
    assert servers["dead"]["reachable"] is False and servers["dead"]["auth"]["timeouts"] == 1, servers
    assert servers["dead"]["acct"]["requests"] == 0, servers
    assert servers["freeradius"]["reachable"] is True and servers["freeradius"]["acct"]["answers"] >= 2, servers
    sas = gateway.status()["sas"]
    assert [sa["radius"]["server"] for sa in sas] == ["freeradius", "freeradius"], sas
    assert len({sa["radius"]["session_id"] for sa in sas}) == 2
    text = ctl(gateway, "statusall")[1]
    assert re.search(r"dead: \S+ auth port \d+, acct port \d+, preference 10: not responding, tried last since ",
                     text), text
    for client in (first, second):
        client.terminate()
    assert _wait_pool_empty(world) == {}
