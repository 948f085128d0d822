"""Restarts and reloads (issue 8, item 4), with real strongSwan clients in namespaces.

* SIGTERM deletes every SA cleanly (each client sees the Delete, down-client runs for
  each) and the gateway exits 0; started again, it serves the clients at once (they
  reconnect with INITIAL_CONTACT).
* After a crash (SIGKILL: no Deletes, a stale pid file and control socket in the run
  directory) a new gateway starts on the same run directory and serves at once.
* A client that restarts (its old SA still on the gateway) reconnects with
  INITIAL_CONTACT: the gateway deletes the stale SA and the same user keeps one SA and
  one address.
* ``reload-secrets`` (bare, and through ``ikegate user add|del``) over and over while
  three clients connect and disconnect in a loop: no connect fails, no SA is dropped.
* updown scripts that fail, die by a signal or hang, and a pool of two addresses for
  three clients: the gateway keeps serving; the third client gets a clean failure.

The updown runner's time limit (``SCRIPT_TIMEOUT``, 30 s) is checked directly on
:class:`ikegate.daemon.updown.UpdownRunner` with a 1 s limit and a real script: waiting
30 s end to end would cost more than it shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .gateway import IkegateGateway, wait_for
from .netns import ping

# ------------------------------------------------------------------------------------
# helpers


def variant(tmp_path: Path, seed_setup, name: str, *, replace: dict[str, str] | None = None,
            updown: str | None = None, extra_secrets: str = "") -> Path:
    """A copy of the seed confdir: ``replace`` edits in ipsec.conf, ``updown`` as the
    conn's leftupdown script (``{log}`` in it becomes ``DIR/updown.log``), and
    ``extra_secrets`` appended to ipsec.secrets."""
    confdir = tmp_path / name
    shutil.copytree(seed_setup.confdir, confdir)
    secrets = confdir / "ipsec.secrets"
    secrets.write_text(secrets.read_text().replace(str(seed_setup.confdir), str(confdir)) + extra_secrets)
    conf = (confdir / "ipsec.conf").read_text().replace(str(seed_setup.confdir), str(confdir))
    for old, new in (replace or {}).items():
        assert old in conf, old
        conf = conf.replace(old, new)
    if updown is not None:
        script = confdir / "test.updown"
        script.write_text(updown.replace("{log}", str(confdir / "updown.log")))
        script.chmod(0o755)
        conf = re.sub(r"(?m)^(\s*)leftupdown=.*$", rf"\g<1>leftupdown={script}", conf)
    (confdir / "ipsec.conf").write_text(conf)
    return confdir


RECORD_UPDOWN = '#!/bin/sh\necho "$PLUTO_VERB $PLUTO_PEER_CLIENT $PLUTO_XAUTH_ID" >> {log}\n'


def updown_calls(confdir: Path) -> list[str]:
    try:
        return (confdir / "updown.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def ctl(gateway, *args: str) -> subprocess.CompletedProcess:
    """``ikegate ARGS --run-dir RUN`` in the gateway's namespace."""
    return gateway.ns.run([sys.executable, "-m", "ikegate", *args, "--run-dir", str(gateway.run_dir)],
                          check=False)


def ctl_json(gateway, *args: str) -> dict:
    proc = ctl(gateway, *args, "--json")
    return json.loads(proc.stdout)


def deleted_by_gateway(client) -> bool:
    return not client.list_sas() and "received DELETE for IKE_SA" in client.log_text()


def connect(client, timeout: float = 20) -> float:
    """Initiate (asserting success); the seconds it took."""
    started = time.monotonic()
    ok, out = client.initiate(timeout=timeout)
    assert ok, out
    return time.monotonic() - started


@pytest.fixture
def restart(request, tmp_path):
    """``restart(gateway) -> IkegateGateway``: a new daemon on the same namespace,
    confdir and run directory as ``gateway`` (which must have exited); stopped at
    teardown."""
    made: list[IkegateGateway] = []

    def again(old: IkegateGateway) -> IkegateGateway:
        assert not old.running()
        started = time.monotonic()
        gw = IkegateGateway(old.ns, old.confdir, old.run_dir, old.extra_args)
        gw.log_path = old.run_dir / f"ikegate.stderr.{len(made) + 2}"
        made.append(gw)
        gw.start()
        # after a crash the old control socket file is still there, so start()'s check for
        # it passes early: wait until the new daemon answers on it
        assert wait_for(lambda: ctl(gw, "status").returncode == 0, 10), gw.log_text()[-3000:]
        gw.ready_after = time.monotonic() - started
        return gw

    yield again
    for gw in made:
        gw.stop()
        reports = (getattr(request.node, f"_interop_rep_{when}", None) for when in ("setup", "call"))
        if any(getattr(report, "failed", False) for report in reports):
            print(f"\n===== restarted gateway {gw.log_path.name} (tail) =====\n{gw.log_text()[-6000:]}", file=sys.stderr)


USERS = {"user1": "password1", "user2": "password2", "user3": "password3"}


#: The gateway's identity (its certificate's subject): a client that knows it sends IDr
#: and, with no other SA to it, INITIAL_CONTACT (strongSwan's ike_auth.c ``build_i`` sends
#: it only toward an identity without wildcards).
GATEWAY_ID = "CN=vpn.example.org"


def clients_for(topo, setup_root, strongswan_client_factory, users=USERS, **kwargs) -> list:
    """One client per topology client host, one user each (in order)."""
    kwargs.setdefault("remote_id", GATEWAY_ID)
    return [strongswan_client_factory(host, topo.gateway.v4[0], ca_certs=[setup_root], eap_id=user,
                                      password=password, **kwargs)
            for host, (user, password) in zip(topo.clients, users.items())]


# ------------------------------------------------------------------------------------
# SIGTERM, crash, restart


def test_sigterm_deletes_every_sa_and_a_restart_serves_at_once(tmp_path, topology_factory, seed_setup,
                                                                ikegate_gateway, strongswan_client_factory,
                                                                restart):
    confdir = variant(tmp_path, seed_setup, "sigterm", updown=RECORD_UPDOWN)
    topo = topology_factory(3, inner=True)
    gateway = ikegate_gateway(topo.gateway, confdir)
    clients = clients_for(topo, seed_setup.root_cert, strongswan_client_factory)
    for client in clients:
        connect(client)
    assert wait_for(lambda: len(updown_calls(confdir)) == 6, 10), updown_calls(confdir)

    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=10) == 0
    for client in clients:
        assert wait_for(lambda: deleted_by_gateway(client), 10), client.log_text()[-2000:]
    log = gateway.log_text()
    assert "shutting down: deleting 3 IKE SA(s)" in log and "Traceback" not in log
    downs = sorted(line for line in updown_calls(confdir) if line.startswith("down"))
    assert downs == sorted(f"down-client{v6} {vip} {user}"
                           for user, n in zip(USERS, (1, 2, 3))
                           for v6, vip in (("", f"192.0.2.{n}/32"), ("-v6", f"2001:db8::{n}/128")))
    assert not (gateway.run_dir / "ikegate.pid").exists()

    again = restart(gateway)
    times = [connect(client) for client in clients]
    assert max(times) < 10, times
    sas = again.status()["sas"]
    assert sorted(sa["remote"]["eap_id"] for sa in sas) == sorted(USERS)
    assert again.log_text().count("N(INIT_CONTACT)") == 3  # each IKE_AUTH request 1 said so
    assert ping(clients[0].ns, topo.inner.v4[0], count=2, wait=2) == 2


def test_crash_leaves_a_run_dir_a_new_gateway_takes_over(tmp_path, topology_factory, seed_setup,
                                                         ikegate_gateway, strongswan_client_factory, restart):
    """SIGKILL: no Deletes, the pid file and control socket stay behind.  A new daemon
    on the same run directory starts, and a client that drops its stale SA (``swanctl
    --terminate --force``: the peer is gone) reconnects at once, with INITIAL_CONTACT."""
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    (client,) = clients_for(topo, seed_setup.root_cert, strongswan_client_factory)
    connect(client)
    os.kill(gateway.proc.pid, signal.SIGKILL)
    gateway.proc.wait(timeout=5)
    assert (gateway.run_dir / "ikegate.pid").exists() and (gateway.run_dir / "ikegate.ctl").exists()
    assert len(client.list_sas()) == 1  # the client did not notice

    again = restart(gateway)
    assert again.ready_after < 10
    assert ctl_json(again, "status") == {"ok": True, "sas": []}
    client.swanctl("--terminate", "--ike", "gw", "--force", "--timeout", "1", check=False)  # no answer: exit 1
    assert wait_for(lambda: not client.list_sas(), 5)
    assert connect(client) < 10
    (sa,) = again.status()["sas"]
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    assert "N(INIT_CONTACT)" in again.log_text()
    assert ping(client.ns, topo.inner.v4[0], count=2, wait=2) == 2


def test_restarted_client_cleans_up_with_initial_contact(tmp_path, topology_factory, seed_setup, ikegate_gateway,
                                                         strongswan_client_factory):
    """The client's charon dies (no Delete); a new one reconnects from the same address
    with INITIAL_CONTACT: the gateway deletes the stale SA (down-client runs), the user
    keeps one SA with the same addresses, and traffic flows."""
    confdir = variant(tmp_path, seed_setup, "contact", updown=RECORD_UPDOWN)
    topo = topology_factory(1, inner=True)
    gateway = ikegate_gateway(topo.gateway, confdir)
    (old,) = clients_for(topo, seed_setup.root_cert, strongswan_client_factory)
    connect(old)
    (stale,) = gateway.status()["sas"]
    os.kill(old.pid, signal.SIGKILL)
    old.proc.wait(timeout=5)

    (new,) = clients_for(topo, seed_setup.root_cert, strongswan_client_factory)
    connect(new)
    assert wait_for(lambda: [sa["id"] for sa in gateway.status()["sas"]] not in ([], [stale["id"]])
                    and len(gateway.status()["sas"]) == 1, 10), gateway.status()
    (sa,) = gateway.status()["sas"]
    assert sa["id"] != stale["id"] and sa["virtual_ips"] == stale["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    log = gateway.log_text()
    assert "destroying duplicate IKE_SA for peer 'user1', received INITIAL_CONTACT" in log
    assert wait_for(lambda: sorted(updown_calls(confdir)) == sorted(
        ["up-client 192.0.2.1/32 user1", "up-client-v6 2001:db8::1/128 user1"] * 2
        + ["down-client 192.0.2.1/32 user1", "down-client-v6 2001:db8::1/128 user1"]), 10), updown_calls(confdir)
    leases = {p["name"]: p["leases"] for p in ctl_json(gateway, "leases")["pools"]}
    assert leases["192.0.2.0/24"] == [{"address": "192.0.2.1", "identity": "user1", "online": True}]
    assert ping(new.ns, topo.inner.v4[0], count=2, wait=2) == 2


# ------------------------------------------------------------------------------------
# reload-secrets under load


RELOAD_ROUNDS = 6  # each: reload-secrets, then ikegate user add or del (which reloads too)


def test_reload_secrets_under_continuous_connects_loses_none(tmp_path, topology_factory, seed_setup,
                                                             ikegate_gateway, strongswan_client_factory):
    """Three clients connect and disconnect in a loop while ``reload-secrets`` runs over
    and over, alternating with ``ikegate user add`` / ``user del`` of other users (each
    rewrites a secrets file and reloads): every connect succeeds, every reload is
    accepted and drops nobody."""
    confdir = variant(tmp_path, seed_setup, "reload")
    topo = topology_factory(3)
    gateway = ikegate_gateway(topo.gateway, confdir)
    clients = clients_for(topo, seed_setup.root_cert, strongswan_client_factory)
    stop = threading.Event()
    outcomes: dict[str, list] = {user: [] for user in USERS}  # (success, swanctl output) per connect

    def churn(client, user: str) -> None:
        while not stop.is_set():
            ok, out = client.initiate(timeout=20)
            outcomes[user].append((ok, out[-1500:]))
            if not ok:
                return
            client.terminate()
            time.sleep(0.1)  # continuous, but leave the reloads some CPU on a shared machine

    threads = [threading.Thread(target=churn, args=(c, u)) for c, u in zip(clients, USERS)]
    for thread in threads:
        thread.start()
    reloads, edits = [], []
    try:
        for n in range(1, RELOAD_ROUNDS + 1):
            reloads.append(ctl_json(gateway, "reload-secrets"))
            verb = ("add", "--password-stdin") if n % 2 else ("del",)
            edits.append(gateway.ns.run([sys.executable, "-m", "ikegate", "user", *verb, f"churn{(n + 1) // 2}",
                                         "--confdir", str(confdir), "--run-dir", str(gateway.run_dir)],
                                        input="pw-churn\n", check=False))
            if not all(ok for results in outcomes.values() for ok, _ in results):
                break
        # let each client finish a connect that overlapped the last reload
        settled = {user: len(results) for user, results in outcomes.items()}
        wait_for(lambda: all(len(outcomes[u]) > settled[u] for u in USERS), 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failed = {user: [out for ok, out in results if not ok] for user, results in outcomes.items()}
    assert not any(failed.values()), failed
    counts = {user: len(results) for user, results in outcomes.items()}
    assert all(n >= 2 for n in counts.values()), counts
    assert len(reloads) == RELOAD_ROUNDS and all(r["ok"] and r["deleted"] == [] for r in reloads), reloads
    assert all(e.returncode == 0 and "gateway reloaded secrets" in e.stderr for e in edits), \
        [e.stderr for e in edits if e.returncode]
    log = gateway.log_text()
    assert log.count("secrets reloaded from") == len(reloads) + len(edits)
    assert "deleted IKE_SA" not in log and "Traceback" not in log
    print(f"connects per user {counts}, {len(reloads)} reload-secrets, {len(edits)} user edits")


# ------------------------------------------------------------------------------------
# updown failures, a full pool

FAILING_UPDOWN = """#!/bin/sh
echo "$PLUTO_VERB $PLUTO_PEER_CLIENT $PLUTO_XAUTH_ID" >> {log}
case "$PLUTO_XAUTH_ID" in
    user1) echo "user1 script fails"; exit 3 ;;
    user2) kill -SEGV $$ ;;
    user3) [ "$PLUTO_VERB" = up-client ] && exec sleep 3600 ;;
esac
exit 0
"""


def test_updown_failures_never_take_the_gateway_down(tmp_path, topology_factory, seed_setup, ikegate_gateway,
                                                     strongswan_client_factory):
    """user1's script exits 3, user2's dies of SIGSEGV, user3's up-client hangs: each
    connect succeeds anyway, a fourth client connects at once and its traffic flows while
    the script hangs (scripts run one after another: its own waits behind the hung one),
    and once the hung script is gone the waiting scripts run: none is lost."""
    confdir = variant(tmp_path, seed_setup, "updown", updown=FAILING_UPDOWN,
                      extra_secrets='user4 : EAP "password4"\n')
    topo = topology_factory(4, inner=True)
    gateway = ikegate_gateway(topo.gateway, confdir)
    users = {**USERS, "user4": "password4"}
    clients = clients_for(topo, seed_setup.root_cert, strongswan_client_factory, users)
    for client in clients[:3]:
        connect(client)
    assert wait_for(lambda: "up-client 192.0.2.3/32 user3" in updown_calls(confdir), 10), updown_calls(confdir)

    assert connect(clients[3]) < 5  # while user3's script hangs
    assert ping(clients[3].ns, topo.inner.v4[0], count=2, wait=2) == 2
    assert ctl_json(gateway, "status")["ok"]
    assert not any("user4" in line for line in updown_calls(confdir))  # queued behind the hung script

    hung = [pid for pid in topo.gateway.ns.pids() if _cmdline(pid) == ["sleep", "3600"]]
    assert len(hung) == 1
    os.kill(hung[0], signal.SIGKILL)
    assert wait_for(lambda: "up-client-v6 2001:db8::4/128 user4" in updown_calls(confdir), 10), updown_calls(confdir)
    log = gateway.log_text()
    assert re.search(r"updown: '\S+' up-client exited with status 3", log)
    assert "updown: user1 script fails" in log
    assert re.search(r"updown: '\S+' up-client exited with status 139", log)  # 128 + SIGSEGV
    assert re.search(r"updown: '\S+' up-client exited with status 137", log)  # 128 + SIGKILL
    assert gateway.running() and "Traceback" not in log
    assert len(ctl_json(gateway, "status")["sas"]) == 4
    assert ping(clients[0].ns, topo.inner.v4[0], count=1, wait=2) == 1


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def test_updown_time_limit(tmp_path):
    """A script that hangs is killed, with everything it started (its process group),
    after the runner's time limit; the next script still runs."""
    from ikegate.daemon.updown import UpdownRunner
    from ikegate.ike.events import ChildSaInfo, Endpoint
    from ikegate.ike.ts import Selector

    log = tmp_path / "calls"
    marker = f"{os.getpid() % 1000}.{time.monotonic_ns() % 1000:03d}"  # a sleep nobody else runs
    script = tmp_path / "hang.updown"
    script.write_text(f'#!/bin/sh\necho "$PLUTO_VERB $PLUTO_XAUTH_ID" >> {log}\n'
                      f'[ "$PLUTO_XAUTH_ID" = hangs ] && sleep {marker} &\nwait\n')
    script.chmod(0o755)

    class End:
        updown = str(script)
        hostaccess = False

    class Conn:
        local = End()

    def info(user: str) -> ChildSaInfo:
        return ChildSaInfo(
            ike_unique_id=1, child_unique_id=1, reqid=1, conn="c", spi_in=0x1000, spi_out=0x2000, protocol=3,
            encr_id=12, encr_key_bits=128, integ_id=12, key_in_encr=b"", key_in_integ=b"", key_out_encr=b"",
            key_out_integ=b"", esn=False, local=Endpoint("10.0.0.1", 4500), remote=Endpoint("10.0.0.2", 4500),
            udp_encap=True, local_ts=(Selector.from_network("0.0.0.0/0"),),
            remote_ts=(Selector.from_address("192.0.2.9"),), virtual_ips=("192.0.2.9",),
            local_id="CN=gw", remote_id="10.0.0.2", eap_id=user)

    def sleeping() -> list[int]:
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(int(p)) == ["sleep", marker]]

    runner = UpdownRunner(timeout=1.0)
    started = time.monotonic()
    runner.child_up(info("hangs"), Conn())
    runner.child_up(info("next"), Conn())
    assert wait_for(sleeping, 5)
    assert runner.wait(10)
    assert 1.0 <= time.monotonic() - started < 5
    assert log.read_text().splitlines() == ["up-client hangs", "up-client next"]
    assert runner.runs == 2 and not sleeping()


@pytest.mark.parametrize("implementation", ["ikegate", "strongswan"])
def test_full_pool_fails_the_third_client_cleanly(tmp_path, topology_factory, seed_setup, ikegate_gateway,
                                                  strongswan_server_factory, strongswan_client_factory,
                                                  implementation):
    """A pool of two addresses and three clients, against ikegate and against strongSwan
    itself for reference: the third client's IKE SA comes up but the gateway answers
    INTERNAL_ADDRESS_FAILURE and builds no CHILD SA (the client keeps the IKE SA, swanctl
    reports the CHILD SA failed); the gateway keeps serving, and once a client leaves
    the third one gets its address."""
    confdir = variant(tmp_path, seed_setup, "pool", replace={
        "rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=192.0.2.0/30"})
    topo = topology_factory(3, inner=True)
    if implementation == "ikegate":
        gateway = ikegate_gateway(topo.gateway, confdir)
    else:
        gateway = strongswan_server_factory(topo.gateway, confdir=confdir)
    clients = clients_for(topo, seed_setup.root_cert, strongswan_client_factory, vips=("0.0.0.0",))
    connect(clients[0])
    connect(clients[1])
    ok, out = clients[2].initiate(timeout=20)
    assert not ok and "received INTERNAL_ADDRESS_FAILURE notify, no CHILD_SA built" in out, out
    (ike,) = clients[2].list_sas()
    assert ike["state"] == "ESTABLISHED" and not ike.get("child-sas")
    assert "no virtual IP found, sending INTERNAL_ADDRESS_FAILURE" in gateway.log_text()

    if implementation == "ikegate":
        everything = ctl_json(gateway, "statusall")
        (pool,) = everything["pools"]
        assert pool["name"] == "192.0.2.0/30" and pool["size"] == 2 and pool["online"] == 2, pool
        by_user = {sa["remote"]["eap_id"]: sa for sa in everything["sas"]}
        assert sorted(by_user) == sorted(USERS)
        assert by_user["user3"]["state"] == "ESTABLISHED" and by_user["user3"]["children"] == []
        assert by_user["user3"]["virtual_ips"] == []
        assert gateway.running() and "Traceback" not in gateway.log_text()
    else:
        text = gateway.stroke("statusall")
        assert "Security Associations (3 up, 0 connecting)" in text and "192.0.2.0/30" in text

    # a client leaves: the third one gets an address (user1's, offline now)
    ok, out = clients[0].terminate()
    assert ok, out
    clients[2].swanctl("--terminate", "--ike", "gw", timeout=15)
    connect(clients[2])
    assert ping(clients[2].ns, topo.inner.v4[0], count=2, wait=2) == 2
