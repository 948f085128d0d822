"""The control commands against a running gateway with real strongSwan clients connected:
status, statusall, leases, kill (by id, user, virtual IP and peer address), reload-secrets
and reload, each through the ``ikegate`` command line as an admin or a script would run it."""

from __future__ import annotations

import json
import re
import signal
import sys

from .gateway import wait_for
from .netns import ping
from .seed import SEED_DNS, write_seed


def ctl(gateway, *args: str, check: int | None = 0):
    """``ikegate ARGS --run-dir RUN`` in the gateway's namespace -> (exit code, stdout, stderr)."""
    proc = gateway.ns.run([sys.executable, "-m", "ikegate", *args, "--run-dir", str(gateway.run_dir)], check=False)
    if check is not None:
        assert proc.returncode == check, f"ikegate {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.returncode, proc.stdout, proc.stderr


def ctl_json(gateway, *args: str, check: int | None = 0) -> dict:
    return json.loads(ctl(gateway, *args, "--json", check=check)[1])


def deleted_by_gateway(client) -> bool:
    return not client.list_sas() and "received DELETE for IKE_SA" in client.log_text()


def test_status_leases_and_kill(topology, seed_setup, ikegate_gateway, strongswan_client_factory):
    gateway = ikegate_gateway(topology.gateway, seed_setup.confdir)
    assert ctl_json(gateway, "status") == {"ok": True, "sas": []}  # valid JSON, an empty list
    assert ctl_json(gateway, "leases")["pools"][0]["leases"] == []
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0])
    client_addr = topology.clients[0].v4[0]

    def connect() -> dict:
        ok, out = client.initiate(timeout=20)
        assert ok, out
        (sa,) = ctl_json(gateway, "status")["sas"]
        assert sa["state"] == "ESTABLISHED" and sa["remote"]["eap_id"] == "user1"
        return sa

    # status shows it, as text and JSON; statusall adds sockets, conns and pools
    sa = connect()
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    assert sa["remote"]["host"] == client_addr
    text = ctl(gateway, "status")[1]
    assert f"myvpn[{sa['id']}]: ESTABLISHED" in text and "(EAP: user1)" in text
    everything = ctl_json(gateway, "statusall")
    assert [c["name"] for c in everything["conns"]] == ["myvpn"]
    assert {(s["family"], s["port"]) for s in everything["listening"]} >= {("IPv4", 500), ("IPv4", 4500)}
    pools = {p["name"]: p for p in everything["pools"]}
    assert pools["192.0.2.0/24"]["online"] == 1 and pools["2001:db8::/96"]["online"] == 1
    text = ctl(gateway, "statusall")[1]
    assert "Listening on UDP:" in text and "myvpn:" in text and "192.0.2.0/24: 254/1/0" in text
    leases = {p["name"]: p["leases"] for p in ctl_json(gateway, "leases")["pools"]}
    assert leases["192.0.2.0/24"] == [{"address": "192.0.2.1", "identity": "user1", "online": True}]

    # kill by SA id: a clean delete the client sees, down-client in the log, lease offline
    assert ctl(gateway, "kill", str(sa["id"]))[1].startswith(f"deleted IKE_SA myvpn[{sa['id']}] of user1")
    assert wait_for(lambda: deleted_by_gateway(client), 5), client.log_text()[-2000:]
    assert ctl_json(gateway, "status") == {"ok": True, "sas": []}
    leases = {p["name"]: p["leases"] for p in ctl_json(gateway, "leases")["pools"]}
    assert leases["192.0.2.0/24"] == [{"address": "192.0.2.1", "identity": "user1", "online": False}]

    # by user name, by virtual IP, by the peer's outer address, by conn[id]
    for target in ("user1", "192.0.2.1", "2001:db8::1", client_addr, "myvpn[{id}]"):
        sa = connect()
        reply = ctl_json(gateway, "kill", target.format(id=sa["id"]))
        assert reply["killed"] == [{"id": sa["id"], "conn": "myvpn", "remote": client_addr, "user": "user1"}]
        assert wait_for(lambda: not client.list_sas(), 5), target
        assert ctl_json(gateway, "status")["sas"] == []

    # nothing to kill: exit 1 and a message a script can rely on
    code, out, err = ctl(gateway, "kill", "nobody", check=1)
    assert "no IKE SA matches 'nobody'" in err
    assert ctl_json(gateway, "kill", "192.0.2.99", check=1)["ok"] is False
    log = gateway.log_text()
    assert "deleted by the administrator (ikegate kill)" in log


def test_no_gateway_exit_code(tmp_path):
    """A control command without a running gateway: exit 3 and says why."""
    from ikegate.cli import main

    assert main(["status", "--run-dir", str(tmp_path)]) == 3


def test_reload_secrets_drops_only_removed_user(topology_factory, tmp_path, ikegate_gateway,
                                                strongswan_client_factory):
    topo = topology_factory(2, inner=True)
    setup = write_seed(tmp_path / "seed", extra_users={"user3": "password3"})
    gateway = ikegate_gateway(topo.gateway, setup.confdir)
    trust = [setup.root_cert]
    one = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], ca_certs=trust, eap_id="user1",
                                    password="password1")
    three = strongswan_client_factory(topo.clients[1], topo.gateway.v4[0], ca_certs=trust, eap_id="user3",
                                      password="password3")
    for client in (one, three):
        ok, out = client.initiate(timeout=20)
        assert ok, out
    # user3 goes (its line is in the included file), user4 comes in ipsec.secrets
    included = setup.confdir / "ipsec.d" / "secrets" / "myvpn"
    included.write_text(re.sub(r"(?m)^user3 : .*\n", "", included.read_text()))
    secrets = setup.confdir / "ipsec.secrets"
    secrets.write_text(secrets.read_text() + 'user4 : EAP "password4"\n')
    (sa3,) = [sa for sa in ctl_json(gateway, "status")["sas"] if sa["remote"]["eap_id"] == "user3"]
    reply = ctl_json(gateway, "reload-secrets")
    assert reply["ok"] and reply["deleted"] == [sa3["id"]]
    assert wait_for(lambda: deleted_by_gateway(three), 5), three.log_text()[-2000:]
    (sa,) = ctl_json(gateway, "status")["sas"]
    assert sa["remote"]["eap_id"] == "user1"
    assert ping(one.ns, topo.inner.v4[0], count=2, wait=2) == 2  # user1's tunnel still carries traffic
    # user3 is refused now; user4 gets in without a restart
    ok, out = three.initiate(timeout=20)
    assert not ok
    three.stop()
    four = strongswan_client_factory(topo.clients[1], topo.gateway.v4[0], ca_certs=trust, eap_id="user4",
                                     password="password4")
    ok, out = four.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-3000:]
    assert sorted(s["remote"]["eap_id"] for s in ctl_json(gateway, "status")["sas"]) == ["user1", "user4"]

    # a broken secrets file is refused with file:line, and nobody is dropped
    secrets.write_text(secrets.read_text() + "user5 :EAP broken\n")
    code, out, err = ctl(gateway, "reload-secrets", check=1)
    assert f"{secrets}:" in err and "the running secrets is kept" in err
    assert len(ctl_json(gateway, "status")["sas"]) == 2


def test_reload_refuses_broken_file_and_applies_changes(topology_factory, tmp_path, ikegate_gateway,
                                                         strongswan_client_factory):
    topo = topology_factory(2)
    setup = write_seed(tmp_path / "seed")
    trust = [setup.root_cert]
    gateway = ikegate_gateway(topo.gateway, setup.confdir)
    first = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], ca_certs=trust)
    ok, out = first.initiate(timeout=20)
    assert ok, out
    conf = setup.ipsec_conf
    good = conf.read_text()

    # a broken file: refused with its file:line errors, the running configuration kept
    conf.write_text(good + "    dpdaction=explode\n")
    line = len(good.splitlines()) + 1
    code, out, err = ctl(gateway, "reload", check=1)
    assert "configuration has errors: not loaded, the running configuration is kept" in err
    assert f"{conf}:{line}" in err and "explode" in err
    assert ctl_json(gateway, "reload", check=1)["errors"]
    second = strongswan_client_factory(topo.clients[1], topo.gateway.v4[0], ca_certs=trust, eap_id="user2",
                                       password="password2")
    ok, out = second.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-3000:]  # still serving
    assert sorted(second.dns_servers()) == sorted(SEED_DNS)
    second.swanctl("--terminate", "--ike", "gw")

    # a changed conn: new SAs get the new settings, the established one stays
    conf.write_text(good.replace("rightdns=198.51.100.53,198.51.100.54,", "rightdns=198.51.100.99,"))
    reply = ctl_json(gateway, "reload")
    assert reply["ok"] and reply["changed"] == ["myvpn"] and not reply["removed"]
    ok, out = second.initiate(timeout=20)
    assert ok, out
    assert "198.51.100.99" in second.dns_servers() and "198.51.100.53" not in second.dns_servers()
    assert len(first.list_sas()) == 1
    assert sorted(s["remote"]["eap_id"] for s in ctl_json(gateway, "status")["sas"]) == ["user1", "user2"]

    # SIGHUP (systemd's ExecReload) does the same
    conf.write_text(good)
    gateway.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: gateway.log_text().count("configuration reloaded from") == 2, 5)
    assert gateway.running()


def test_user_add_then_connect(topology, tmp_path, ikegate_gateway, strongswan_client_factory):
    """``ikegate user add`` writes an NT hash (no plaintext), the running gateway reloads,
    and a real client logs in with the password; ``user del`` closes that user's SA; a
    gateway that refuses the reload makes the command exit 4."""
    setup = write_seed(tmp_path / "seed")
    gateway = ikegate_gateway(topology.gateway, setup.confdir)
    ns = topology.gateway.ns

    def user(*args: str, password: str | None = None):
        return ns.run([sys.executable, "-m", "ikegate", "user", *args, "--confdir", str(setup.confdir),
                       "--run-dir", str(gateway.run_dir)], input=password, check=False)

    proc = user("add", "--password-stdin", "dave", password="correct horse battery\n")
    assert proc.returncode == 0, proc.stderr
    assert "gateway reloaded secrets" in proc.stderr
    files = b"".join(p.read_bytes() for p in setup.confdir.rglob("*") if p.is_file())
    assert b"correct horse battery" not in files and b"dave : NTLM 0x" in files
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], ca_certs=[setup.root_cert],
                                       eap_id="dave", password="correct horse battery")
    ok, out = client.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-3000:]
    assert [s["remote"]["eap_id"] for s in ctl_json(gateway, "status")["sas"]] == ["dave"]

    proc = user("del", "dave")
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: deleted_by_gateway(client), 5), client.log_text()[-2000:]
    assert ctl_json(gateway, "status")["sas"] == []

    # a line the gateway refuses (written by hand while it ran) makes the next edit's reload fail
    secrets = setup.confdir / "ipsec.secrets"
    secrets.write_text(secrets.read_text() + "eve :EAP broken\n")
    proc = user("add", "--password-stdin", "frank", password="pw-frank\n")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"{secrets}:" in proc.stderr
