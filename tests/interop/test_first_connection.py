"""First connection: a real strongSwan client authenticates to ikegate serving the seed.

The gateway serves the seed configuration unchanged (paths aside) with a generated
root -> intermediate -> server PKI; the client (charon + swanctl, kernel-libipsec,
EAP-MSCHAPv2) trusts only the root.
"""

from __future__ import annotations

import sys
import time

import pytest

from .seed import SEED_DNS
from .strongswan import ClientConn


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
    status = gateway.status()
    (sa,) = status["sas"]
    assert sa["state"] == "ESTABLISHED"
    assert sa["remote"]["eap_id"] == "user1"
    assert sa["virtual_ips"] == ["192.0.2.1", "2001:db8::1"]
    assert len(sa["children"]) == 1


def _ike_algorithms(ike: dict) -> tuple:
    return ike.get("encr-alg"), ike.get("encr-keysize"), ike.get("integ-alg"), ike.get("prf-alg"), ike.get("dh-group")


def test_chain_and_proposal_choice(topology, seed_setup, ikegate_gateway, strongswan_client_factory):
    """The client gets leaf + intermediate (never the root); strongSwan's default
    proposals get INVALID_KE_PAYLOAD and end on MODP_3072, the client's first acceptable
    proposal with the client's algorithm order."""
    gateway = ikegate_gateway(topology.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    log = client.log_text()
    assert 'received end entity cert "CN=vpn.example.org"' in log
    assert "received issuer cert" in log and "Intermediate" in log
    assert "Root" not in "\n".join(line for line in log.splitlines() if "received issuer cert" in line)
    assert "peer didn't accept DH group CURVE_25519, it requested MODP_3072" in log
    (ike,) = client.list_sas()
    assert _ike_algorithms(ike) == ("AES_CBC", "128", "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "MODP_3072")
    assert "selected proposal: IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_3072" in gateway.log_text()


@pytest.mark.parametrize(
    "proposals, expected",
    [
        # Windows 10's default list (one proposal, client order): ends on aes256-sha1-modp1024
        ("aes256-aes128-3des-sha1-sha256-sha384-modp1024",
         ("AES_CBC", "256", "HMAC_SHA1_96", "PRF_HMAC_SHA1", "MODP_1024")),
        # Windows 7 orders AES-128 first
        ("3des-aes128-aes192-aes256-sha1-sha256-sha384-modp1024",
         ("AES_CBC", "128", "HMAC_SHA1_96", "PRF_HMAC_SHA1", "MODP_1024")),
    ],
    ids=["windows10", "windows7"],
)
def test_windows_proposal_order(topology, seed_setup, ikegate_gateway, strongswan_client_factory, proposals, expected):
    ikegate_gateway(topology.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], proposals=proposals,
                                       esp_proposals="aes256-aes128-3des-sha1")
    ok, out = client.initiate(timeout=20)
    assert ok, out
    (ike,) = client.list_sas()
    assert _ike_algorithms(ike) == expected
    (child,) = ike["child-sas"].values()
    assert (child["encr-alg"], child["encr-keysize"], child["integ-alg"]) == ("AES_CBC", "256", "HMAC_SHA1_96")


def test_wrong_password_fails_while_other_client_connects(topology_factory, seed_setup, ikegate_gateway,
                                                          strongswan_client_factory):
    topo = topology_factory(2)
    gateway = ikegate_gateway(topo.gateway, seed_setup.confdir)
    bad = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], eap_id="user1", password="wrong")
    good = strongswan_client_factory(topo.clients[1], topo.gateway.v4[0], eap_id="user2", password="password2")
    pending = bad.initiate_nowait()
    ok, out = good.initiate(timeout=20)
    assert ok, out
    bad.wait_log(r"EAP_MSCHAPV2 method failed|received AUTHENTICATION_FAILED|EAP_FAILURE", timeout=30)
    gateway_log_wait = time.monotonic() + 10
    while "peer reported AUTHENTICATION_FAILED" not in gateway.log_text() and time.monotonic() < gateway_log_wait:
        time.sleep(0.1)
    assert all(sa["remote"]["eap_id"] != "user1" for sa in gateway.status()["sas"])
    (ike,) = good.list_sas()
    assert ike["state"] == "ESTABLISHED"
    log = gateway.log_text()
    assert "EAP-MSCHAPv2 verification failed for 'user1'" in log
    assert "password" not in log.lower().replace("password_", "")
    assert "Traceback" not in log
    pending.wait(timeout=10)


def test_esp_refused_keeps_ike_sa(topology, seed_setup, ikegate_gateway, strongswan_client_factory):
    """GCM-only ESP: the CHILD SA fails with NO_PROPOSAL_CHOSEN, the IKE SA stays (as strongSwan)."""
    gateway = ikegate_gateway(topology.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0],
                                       esp_proposals="aes256gcm16-aes128gcm16")
    ok, out = client.initiate(timeout=20)
    assert not ok
    assert "NO_PROPOSAL_CHOSEN" in client.log_text()
    (ike,) = client.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert not ike.get("child-sas")
    (sa,) = gateway.status()["sas"]
    assert sa["state"] == "ESTABLISHED" and sa["children"] == []


@pytest.mark.parametrize("remote_id, connects", [("vpn.example.org", True), ("other.example.org", False)])
def test_client_sending_idr(topology, seed_setup, ikegate_gateway, strongswan_client_factory, remote_id, connects):
    """macOS/iOS send IDr = the server name; the seed keeps leftid at the cert's DN.
    strongSwan refuses them; ikegate accepts an IDr that is one of the cert's SANs."""
    ikegate_gateway(topology.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], remote_id=remote_id)
    ok, out = client.initiate(timeout=20)
    assert ok == connects, out
    if connects:
        (ike,) = client.list_sas()
        assert ike["remote-id"] == remote_id
    else:
        assert "AUTHENTICATION_FAILED" in client.log_text()


def test_fifty_clients_distinct_leases_and_reconnect(topology_factory, tmp_path, ikegate_gateway,
                                                     strongswan_client_factory):
    """50 users connecting at once all get distinct addresses (COOKIEs engage past 30
    half-open SAs); reconnecting users get theirs back."""
    from .seed import write_seed

    n = 50
    users = {f"u{i:02d}": f"pw-{i:02d}" for i in range(n)}
    setup = write_seed(tmp_path / "confdir", extra_users=users)
    topo = topology_factory(1, addrs_per_client=n)
    host, gw = topo.clients[0], topo.gateway
    gateway = ikegate_gateway(gw, setup.confdir)
    conns = [ClientConn(remote_addrs=gw.v4[0], name=f"c{i}", local_addrs=addr, eap_id=user, password=pw)
             for i, ((user, pw), addr) in enumerate(zip(users.items(), host.v4))]
    # each waiting `swanctl --initiate` holds a charon thread: give it enough
    client = strongswan_client_factory(host, conns=conns, ca_certs=[setup.root_cert], charon_extra="threads = 128")

    def connect_all() -> dict[str, list[str]]:
        procs = [client.initiate_nowait(ike=conn.name) for conn in conns]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sas = [sa for sa in client.list_sas() if sa["state"] == "ESTABLISHED" and sa.get("child-sas")]
            if len(sas) == n:
                break
            time.sleep(0.5)
        for proc in procs:
            proc.wait(timeout=30)
        return {sa["name"]: sa["local-vips"] for sa in client.list_sas()}

    first = connect_all()
    assert len(first) == n, gateway.log_text()[-3000:]
    v4 = [vips[0] for vips in first.values()]
    v6 = [vips[1] for vips in first.values()]
    assert len(set(v4)) == n and len(set(v6)) == n
    assert all(a.startswith("192.0.2.") and a not in ("192.0.2.0", "192.0.2.255") for a in v4)
    status = gateway.status()
    assert len(status["sas"]) == n
    assert {sa["remote"]["eap_id"] for sa in status["sas"]} == set(users)

    for conn in conns:
        ok, out = client.terminate(ike=conn.name)
        assert ok, out
    deadline = time.monotonic() + 10
    while gateway.status()["sas"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gateway.status()["sas"] == []

    second = connect_all()
    assert second == first


def test_sigterm_deletes_every_sa(topology, seed_setup, ikegate_gateway, strongswan_client_factory):
    """SIGTERM: the gateway sends an INFORMATIONAL Delete to each peer before exiting;
    `ikegate status` (text) shows the SA while it is up."""
    gateway = ikegate_gateway(topology.gateway, seed_setup.confdir)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    text = gateway.ns.run([sys.executable, "-m", "ikegate", "status", "--run-dir", str(gateway.run_dir)]).stdout
    assert "ESTABLISHED" in text and "user1" in text and "192.0.2.1" in text
    assert gateway.stop() == 0
    client.wait_log(r"received DELETE for IKE_SA gw\[\d+\]", timeout=10)
    assert client.list_sas() == []
    assert "Traceback" not in gateway.log_text()


def test_ecdsa_server_and_ntlm_user(topology, tmp_path, ikegate_gateway, strongswan_client_factory):
    """An ECDSA server certificate (RFC 7427 signature with the strongSwan client) and a
    user whose secret is stored as an NT hash (NTLM 0x...) instead of plaintext."""
    from ikegate.pki.example import write_example

    layout = write_example(tmp_path / "ecdsa", key_type="ecdsa", users={"carol": "s3cret-pw"}, ntlm_users=["carol"])
    assert "s3cret-pw" not in (tmp_path / "ecdsa" / "ipsec.d/secrets/myvpn").read_text()
    gateway = ikegate_gateway(topology.gateway, layout.directory)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], ca_certs=[layout.root_cert],
                                       eap_id="carol", password="s3cret-pw")
    ok, out = client.initiate(timeout=20)
    assert ok, out
    assert "ECDSA" in client.log_text() or "ecdsa" in client.log_text().lower()
    (sa,) = gateway.status()["sas"]
    assert sa["remote"]["eap_id"] == "carol"
