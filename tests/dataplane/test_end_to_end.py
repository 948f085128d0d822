"""End to end: a strongSwan client's traffic through ikegate's userspace data plane.

The harness of ``tests/interop`` (topology with an inner host behind the gateway, the
seed configuration, strongSwan 5.9 client with kernel-libipsec, ``ikegate start``) is
reused as is.  The client connects, then

* pings the inner host over IPv4 and IPv6 through the tunnel;
* runs iperf3 TCP (3 s) both ways;
* sends 8 MiB of pseudo-random data each way over TCP and both ends compare SHA-256
  digests (iperf3 does not look at its data; this does, through the coalescing of TCP
  segments into the TUN and the UDP segmentation of ESP packets);
* and ``ikegate status`` shows the CHILD SA's byte and packet counters.

Transforms: the seed's ESP proposals as they are (the client proposes AES-256-CBC with
HMAC-SHA2-256-128), and AES-128-GCM-16 through a variant of the seed whose ``esp=`` line
also offers it (the seed has no GCM).  strongSwan's kernel-libipsec only does
ESP-in-UDP (it fakes NAT detection), so these run UDP-encapsulated; native ESP is covered
by ``test_standalone.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from interop.netns import ping

SEED_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1!"
GCM_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1,aes128gcm16!"
TRANSFER_BYTES = 8 << 20
IPERF_SECONDS = 3

# Sink: accept one TCP connection on PORT, hash everything received, print the digest.
_SINK = """
import hashlib, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
print("listening", flush=True)
server.settimeout(60)
conn, _ = server.accept()
conn.settimeout(60)
digest, total = hashlib.sha256(), 0
while True:
    data = conn.recv(1 << 16)
    if not data:
        break
    digest.update(data)
    total += len(data)
print(total, digest.hexdigest(), flush=True)
"""

# Source: connect to HOST PORT, send N pseudo-random bytes (seeded), print their digest.
_SOURCE = """
import hashlib, random, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(4303).randbytes(size)
family = socket.AF_INET6 if ":" in host else socket.AF_INET
sock = socket.create_connection((host, port), timeout=60)
sock.sendall(data)
sock.close()
print(size, hashlib.sha256(data).hexdigest(), flush=True)
"""


def _status(gateway) -> dict:
    out = gateway.ns.run([sys.executable, "-m", "ikegate", "status", "--json", "--run-dir", str(gateway.run_dir)])
    return json.loads(out.stdout)


def _transfer(sender_ns, receiver_ns, receiver_addr: str, port: int) -> tuple[str, str]:
    """Send TRANSFER_BYTES from sender to receiver over TCP; both sides' outputs."""
    sink = receiver_ns.popen([sys.executable, "-c", _SINK, receiver_addr, str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "listening", sink.stderr.read()
        sent = sender_ns.run([sys.executable, "-c", _SOURCE, receiver_addr, str(port), str(TRANSFER_BYTES)],
                             timeout=90).stdout.strip()
        received, _ = sink.communicate(timeout=60)
        return sent, received.strip()
    finally:
        if sink.poll() is None:
            sink.kill()


def _iperf(client_ns, server_addr: str, reverse: bool) -> float:
    cmd = ["iperf3", "-c", server_addr, "-t", str(IPERF_SECONDS), "-J"] + (["-R"] if reverse else [])
    result = json.loads(client_ns.run(cmd, timeout=IPERF_SECONDS + 30).stdout)
    assert "error" not in result, result["error"]
    return result["end"]["sum_received"]["bits_per_second"] / 1e6


@pytest.fixture
def gcm_confdir(seed_setup, tmp_path):
    """The seed directory with AES-128-GCM-16 added to the ESP proposals."""
    confdir = tmp_path / "conf-gcm"
    shutil.copytree(seed_setup.confdir, confdir)
    conf = (confdir / "ipsec.conf").read_text()
    assert SEED_ESP in conf
    (confdir / "ipsec.conf").write_text(conf.replace(SEED_ESP, GCM_ESP))
    return confdir


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
@pytest.mark.parametrize(
    "esp, outer, expected",
    [
        ("aes256-sha256", "ipv4", ("AES_CBC", "256", "HMAC_SHA2_256_128")),
        ("aes128gcm16", "ipv6", ("AES_GCM_16", "128", None)),
    ],
    ids=["seed-aes256-sha256-outer4", "aes128gcm16-outer6"],
)
def test_traffic_through_ikegate(topology, seed_setup, gcm_confdir, ikegate_gateway, strongswan_client_factory,
                                 esp, outer, expected):
    gw = topology.gateway
    confdir = seed_setup.confdir if esp == "aes256-sha256" else gcm_confdir
    gateway = ikegate_gateway(gw, confdir)
    remote = gw.v4[0] if outer == "ipv4" else gw.v6[0]
    client = strongswan_client_factory(topology.clients[0], remote, esp_proposals=esp)
    ok, out = client.initiate(timeout=30)
    assert ok, out + gateway.log_text()[-3000:]
    (ike,) = client.list_sas()
    (child,) = ike["child-sas"].values()
    assert (child["encr-alg"], child["encr-keysize"], child.get("integ-alg")) == expected
    assert child.get("encap") == "yes"  # kernel-libipsec: always ESP-in-UDP

    inner4, inner6 = topology.inner.v4[0], topology.inner.v6[0]
    assert ping(client.ns, inner4, count=3, wait=2) == 3, gateway.log_text()[-3000:]
    assert ping(client.ns, inner6, count=3, wait=2) == 3, gateway.log_text()[-3000:]

    server = topology.inner.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        up = _iperf(client.ns, inner4, reverse=False)
        down = _iperf(client.ns, inner4, reverse=True)
    finally:
        server.kill()
        server.wait()
    print(f"iperf3 through ikegate ({esp}, outer {outer}): up {up:.0f} Mbit/s, down {down:.0f} Mbit/s")
    assert up > 20 and down > 20

    # data integrity, both directions, IPv4 and IPv6 inner
    vip4, vip6 = ike["local-vips"]
    sent, received = _transfer(client.ns, topology.inner.ns, inner6, 5201 + 7)
    assert sent == received == f"{TRANSFER_BYTES} {sent.split()[1]}"
    sent, received = _transfer(topology.inner.ns, client.ns, vip4, 5201 + 8)
    assert sent == received

    (sa,) = _status(gateway)["sas"]
    (status_child,) = sa["children"]
    assert status_child["packets_in"] > 1000 and status_child["packets_out"] > 1000
    assert status_child["bytes_in"] > TRANSFER_BYTES and status_child["bytes_out"] > TRANSFER_BYTES
    assert "Traceback" not in gateway.log_text()
