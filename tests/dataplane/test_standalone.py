"""The userspace data plane without IKE, against scapy's independent IPsec.

A gateway namespace runs the standalone data plane (``ikegate.dataplane.standalone``);
the test installs hand-made SAs and, from a client namespace, exchanges encrypted pings
with a host behind the gateway using ``scapy.layers.ipsec.SecurityAssociation`` (its own
ESP code: padding, ICV, AEAD; random IVs).  Every combination of outer IP version,
encapsulation (native ESP, IP protocol 50, or ESP-in-UDP on port 4500) and transform
(AES-128-GCM-16, AES-256-CBC/HMAC-SHA2-256-128), with IPv4 and IPv6 inner packets.

Then the hostile packets: tampered, replayed, badly padded (valid ICV, padding bytes not
1, 2, 3, ...), unknown SPI, inner source not the client's virtual IP (spoofing): each is
dropped and counted under its reason, and a good ping right after still works (the
replay window and the SA are undisturbed).  Also: NAT keepalives and IKE datagrams on
port 4500, MTU handling (ICMP "too big" with the SA's MTU), routes following the SAs.
"""

from __future__ import annotations

import itertools
import struct
import time

import pytest
from scapy.layers.ipsec import _ESPPlain
from scapy.packet import raw

from .harness import (
    GATEWAY4,
    INNER4,
    INNER6,
    VIP4,
    VIP6,
    Runner,
    ScapyClient,
    Topology,
)

ALGORITHMS = ["aes128gcm16", "aes256-sha256"]
OUTERS = [4, 6]
ENCAPS = ["native", "udp"]
_spis = itertools.count(0x1000)


@pytest.fixture(scope="module")
def topo():
    topology = Topology().build()
    yield topology
    topology.destroy()


@pytest.fixture(scope="module")
def runner(topo, tmp_path_factory):
    runner = Runner(topo.gateway, log_dir=tmp_path_factory.mktemp("standalone"))
    try:
        runner.start()
    except BaseException:
        runner.stop()
        raise
    yield runner
    code = runner.stop()
    assert code == 0, runner.log()


@pytest.fixture
def make_client(topo, runner):
    """``make(algorithm, outer, encap, install=True, **sa_overrides) -> ScapyClient``;
    the SA is removed and the sockets closed at teardown."""
    made = []

    def make(algorithm: str, outer: int, encap: str, *, install: bool = True, **overrides):
        spi_in, spi_out = next(_spis) << 8 | 0xA1, next(_spis) << 8 | 0xB2
        client = ScapyClient.make(topo.client, algorithm, outer, encap == "udp", spi_in, spi_out)
        made.append(client)
        if install:
            runner.command("install", sa=client.sa_dict(**overrides))
        return client

    yield make
    for client in made:
        runner.command("remove", spi_in=client.spi_in)
        client.close()


_idents = itertools.count(0x100)


def _ping(client: ScapyClient, dst: str, tries: int = 3) -> bool:
    ident = next(_idents)
    return any(client.ping(dst, ident, seq, timeout=1.0) for seq in range(1, tries + 1))


@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("outer", OUTERS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encrypted_pings(make_client, runner, algorithm, outer, encap):
    client = make_client(algorithm, outer, encap)
    assert _ping(client, INNER4), runner.log()
    assert _ping(client, INNER6), runner.log()
    deadline = time.monotonic() + 3
    while True:
        counters = runner.counters(client.spi_in)
        if counters["packets_out"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counters["packets_in"] >= 2 and counters["packets_out"] >= 2
    assert counters["bytes_in"] > 0 and counters["bytes_out"] > 0
    assert counters["last_in"] and counters["last_out"]


def _bad_padding(client: ScapyClient, inner) -> bytes:
    """ESP with a valid ICV whose padding is zeros instead of 1, 2, 3, ... (scapy's own
    encryption and signing, only the padding chosen by us)."""
    sa = client.to_gateway
    algo = sa.crypt_algo
    tunnel = sa.tunnel_header.copy()
    payload = raw(tunnel.__class__(raw(tunnel / inner)))
    next_header = 4 if tunnel.version == 4 else 41
    align = algo.block_size if algo.block_size > 1 else 4
    pad = (-(len(payload) + 2)) % align + align  # one alignment unit more than needed
    plain = _ESPPlain(spi=sa.spi, seq=sa.seq_num, iv=algo.generate_iv(), data=payload,
                      padding=bytes(pad), padlen=pad, nh=next_header)
    sa.seq_num += 1
    esp = algo.encrypt(sa, plain, sa.crypt_key, sa.crypt_icv_size)
    sa.auth_algo.sign(esp, sa.auth_key)
    return raw(esp)


@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("outer", OUTERS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hostile_packets_are_dropped_and_counted(make_client, runner, algorithm, outer, encap):
    client = make_client(algorithm, outer, encap)
    assert _ping(client, INNER4), runner.log()
    before = runner.stats()

    def expect(reason: str, extra: int = 1) -> None:
        got = runner.wait_stat(reason, before[reason] + extra)
        assert got == before[reason] + extra, (reason, got, before[reason], runner.stats())
        before[reason] = got

    # tampered: one ciphertext byte flipped
    esp = bytearray(client.encrypt(client.echo_request(INNER4, 1, 1)))
    esp[30] ^= 0x01
    client.send_esp(bytes(esp))
    expect("icv")

    # replayed: a packet that was accepted, sent again
    esp = client.encrypt(client.echo_request(INNER4, next(_idents), 1))
    client.send_esp(esp)
    assert client.receive(timeout=2.0), "the original was not answered"
    client.send_esp(esp)
    expect("replay")
    assert client.receive(timeout=0.3) == []

    # badly padded, with a valid ICV
    client.send_esp(_bad_padding(client, client.echo_request(INNER4, 2, 1)))
    expect("padding")

    # unknown SPI
    esp = bytearray(client.encrypt(client.echo_request(INNER4, 3, 1)))
    esp[0:4] = struct.pack("!I", client.spi_in ^ 0x5A5A0000)
    client.send_esp(bytes(esp))
    expect("unknown_spi")

    # spoofed inner source: well protected, but not from the client's virtual IP
    client.send(client.echo_request(INNER4, 4, 1, src="192.0.2.77"))
    client.send(client.echo_request(INNER6, 4, 2, src="2001:db8::77"))
    expect("spoofed", 2)
    assert client.receive(timeout=0.3) == []

    # nothing else moved, and good traffic still flows
    after = runner.stats()
    for reason in ("short", "bad_length", "next_header", "tun_write", "no_sa", "send_error"):
        assert after[reason] == before[reason], reason
    assert _ping(client, INNER4) and _ping(client, INNER6)
    counters = runner.counters(client.spi_in)
    assert counters["dropped"] >= 4  # icv, replay, padding, spoofed x2 (unknown SPI has no SA)


def test_keepalive_and_ike_on_port_4500(make_client, runner):
    client = make_client("aes128gcm16", 4, "udp")
    before = runner.command("stats")
    client.sock.sendto(b"\xff", (GATEWAY4, 4500))
    client.sock.sendto(b"\0\0\0\0" + bytes(28), (GATEWAY4, 4500))  # non-ESP marker + IKE
    runner.wait_stat("ike_forwarded", before["stats"]["ike_forwarded"] + 1)
    after = runner.command("stats")
    assert after["stats"]["keepalive"] == before["stats"]["keepalive"] + 1
    assert after["stats"]["ike_forwarded"] == before["stats"]["ike_forwarded"] + 1
    assert after["ike"] == before["ike"] + 1  # reached the daemon stand-in
    assert after["stats"]["unknown_spi"] == before["stats"]["unknown_spi"]
    assert _ping(client, INNER4)


def test_routes_follow_the_sas(topo, runner, make_client):
    def routes() -> str:
        return topo.gateway.run(["ip", "route", "show", "proto", "105"]).stdout + \
            topo.gateway.run(["ip", "-6", "route", "show", "proto", "105"]).stdout

    first = make_client("aes128gcm16", 4, "native")
    second = make_client("aes128gcm16", 4, "native")  # same virtual IPs (a rekey overlap)
    assert VIP4 in routes() and VIP6 in routes()
    runner.command("remove", spi_in=first.spi_in)
    assert VIP4 in routes()  # still needed by the second SA
    assert _ping(second, INNER4)
    runner.command("remove", spi_in=second.spi_in)
    assert VIP4 not in routes() and VIP6 not in routes()


@pytest.fixture
def small_path_mtu(topo):
    """A path MTU of 1400 between gateway and client: less room than the TUN's 1400."""
    for ns in (topo.gateway, topo.client):
        ns.run(["ip", "link", "set", "eth0", "mtu", "1400"])
    yield
    for ns in (topo.gateway, topo.client):
        ns.run(["ip", "link", "set", "eth0", "mtu", "1500"])
    topo.inner.run(["ip", "route", "flush", "cache"], check=False)
    topo.inner.run(["ip", "-6", "route", "flush", "cache"], check=False)


# Inner-host side of the MTU tests: send a datagram of SIZE bytes of UDP payload to DST
# with DF (IPv4: IP_PMTUDISC_DO; IPv6 never fragments in transit), wait, and print the
# path MTU the kernel then holds for DST (IP_MTU / IPV6_MTU).
_PMTU_SCRIPT = """
import socket, sys, time
dst, size = sys.argv[1], int(sys.argv[2])
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, 23, 2)   # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
else:
    s.setsockopt(socket.IPPROTO_IP, 10, 2)     # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect((dst, 9))
s.send(bytes(size))
time.sleep(0.5)
print(s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14))
"""


@pytest.mark.parametrize("inner", [4, 6])
def test_too_big_gets_icmp_with_the_sa_mtu(topo, runner, make_client, small_path_mtu, inner):
    """A DF packet (or any IPv6 packet over 1280 bytes) from the inner host that fits the
    TUN but not the SA gets "fragmentation needed"/"packet too big" with the SA's MTU,
    and the sender's kernel learns that MTU."""
    client = make_client("aes128gcm16", 4, "native")
    # outer IPv4: 1400 - 20 (IPv4) - 8 (SPI, seq) - 8 (IV) - 16 (ICV) = 1348, of which
    # payload + Pad Length + Next Header, 4-byte aligned: 1346 bytes of inner packet
    before = runner.stats()
    dst = VIP4 if inner == 4 else VIP6
    size = 1400 - (28 if inner == 4 else 48)  # a packet of 1400 bytes: fits the TUN
    out = topo.inner.run(["python3", "-c", _PMTU_SCRIPT, dst, str(size)]).stdout.split()
    assert out == ["1346"], out
    assert runner.wait_stat("icmp_too_big_sent", before["icmp_too_big_sent"] + 1) == before["icmp_too_big_sent"] + 1
    assert runner.stats()["too_big"] == before["too_big"] + 1
    assert _ping(client, INNER4)


@pytest.mark.parametrize("inner", [4, 6])
def test_bigger_than_the_tun_mtu_is_answered_by_the_kernel(topo, runner, make_client, inner):
    """A DF packet (any IPv6 packet) bigger than the TUN's MTU never reaches the data
    plane: the kernel routing it into the TUN answers "too big" with the TUN MTU."""
    make_client("aes128gcm16", 4, "native")
    dst = VIP4 if inner == 4 else VIP6
    size = 1450 - (28 if inner == 4 else 48)
    out = topo.inner.run(["python3", "-c", _PMTU_SCRIPT, dst, str(size)]).stdout.split()
    topo.inner.run(["ip", "route", "flush", "cache"] if inner == 4 else ["ip", "-6", "route", "flush", "cache"],
                   check=False)
    assert out == ["1400"], out


def test_ipv4_without_df_is_fragmented_before_encryption(topo, runner, make_client, small_path_mtu):
    client = make_client("aes128gcm16", 4, "native")
    before = runner.stats()
    script = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
              "s.setsockopt(socket.IPPROTO_IP, 10, 0);"  # IP_PMTUDISC_DONT: no DF
              f"s.sendto(bytes(range(256)) * 5 + bytes(92), ('{VIP4}', 9))")
    topo.inner.run(["python3", "-c", script])
    fragments = []
    while len(fragments) < 2:
        got = client.receive(timeout=2.0)
        if not got:
            break
        fragments.extend(got)
    assert len(fragments) == 2, fragments
    assert all(len(raw(f)) <= 1346 for f in fragments)
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet import defragment

    whole = defragment([f[IP] for f in fragments])[0]
    assert whole[UDP].dport == 9 and len(whole[UDP].payload) == 1372
    assert runner.wait_stat("fragmented", before["fragmented"] + 1) == before["fragmented"] + 1


@pytest.mark.parametrize("options", [["--esp-workers", "threads"], ["--esp-workers", "single"],
                                     ["--no-tun-offload"]], ids=["threads", "single", "no-offload"])
def test_other_worker_arrangements(options, tmp_path):
    """The same traffic and drops with the workers as threads, as one process for both
    directions, and without the TUN's virtio-net header."""
    topology = Topology().build()
    runner = Runner(topology.gateway, *options, log_dir=tmp_path)
    try:
        runner.start()
        client = ScapyClient.make(topology.client, "aes128gcm16", 4, True, 0x7001, 0x7002)
        try:
            runner.command("install", sa=client.sa_dict())
            assert _ping(client, INNER4) and _ping(client, INNER6), runner.log()
            esp = client.encrypt(client.echo_request(INNER4, 9, 1))
            client.send_esp(esp)
            assert client.receive(timeout=2.0)
            client.send_esp(esp)
            assert runner.wait_stat("replay", 1) == 1
            native = ScapyClient.make(topology.client, "aes256-sha256", 6, False, 0x7003, 0x7004,
                                      vips=("192.0.2.9", "2001:db8::9"))
            try:
                runner.command("install", sa=native.sa_dict())
                assert _ping(native, INNER4) and _ping(native, INNER6), runner.log()
            finally:
                native.close()
        finally:
            client.close()
        assert runner.stop() == 0, runner.log()
    finally:
        runner.stop()
        topology.destroy()


def test_a_killed_worker_is_replaced_and_goes_on(make_client, runner):
    """kill -9 of both workers: the data plane starts new ones with every SA; sequence
    numbers go on (a packet accepted before is still a replay, the gateway's own numbers
    jump ahead) and the counters are not reset."""
    import os
    import signal

    client = make_client("aes128gcm16", 4, "udp")
    esp = client.encrypt(client.echo_request(INNER4, next(_idents), 1))
    client.send_esp(esp)
    (reply,) = client.receive(timeout=2.0)
    assert _ping(client, INNER4)
    time.sleep(0.3)  # let the workers flush their counters and sequence numbers
    before = runner.counters(client.spi_in)
    answer = runner.command("stats")
    old = answer["workers"]
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = runner.command("stats")
        if set(answer["workers"]) == set(old) and not set(answer["workers"].values()) & set(old.values()):
            break
        time.sleep(0.2)
    assert not set(answer["workers"].values()) & set(old.values()), (answer, runner.log())
    replays = answer["stats"]["replay"]
    client.send_esp(esp)  # accepted by the old worker: still a replay for the new one
    assert runner.wait_stat("replay", replays + 1) == replays + 1
    client.send(client.echo_request(INNER4, next(_idents), 1))  # read the reply's header:
    data = None
    deadline = time.monotonic() + 3
    while data is None and time.monotonic() < deadline:
        try:
            data = client.sock.recv(65535)
        except BlockingIOError:
            time.sleep(0.02)
    assert data is not None
    assert struct.unpack("!I", data[4:8])[0] > (1 << 20)  # resumed past the flushed number
    assert _ping(client, INNER4)
    time.sleep(0.3)
    after = runner.counters(client.spi_in)
    assert after["packets_in"] >= before["packets_in"] + 2
    assert after["packets_out"] >= before["packets_out"] + 2
    assert "restarting it" in runner.log()


def test_leftover_routes_are_flushed_at_start(tmp_path):
    """Routes of ours (protocol 105) left by a crashed run are removed when the data
    plane starts; other routes are not touched."""
    from interop.netns import Namespace, unique_name

    ns = Namespace(unique_name("dpr")).create()
    try:
        ns.run(["ip", "route", "add", "198.51.100.0/24", "dev", "lo", "proto", "105"])
        ns.run(["ip", "route", "add", "203.0.113.0/24", "dev", "lo", "proto", "static"])
        runner = Runner(ns, "--no-native-esp", log_dir=tmp_path)
        try:
            runner.start()
            routes = ns.run(["ip", "route", "show"]).stdout
            assert "198.51.100.0/24" not in routes and "203.0.113.0/24" in routes
            assert "removed 1 route(s) left by an earlier run" in runner.log()
        finally:
            assert runner.stop() == 0, runner.log()
        assert "ipsec0" not in ns.run(["ip", "link"]).stdout  # the TUN went with the runner
    finally:
        ns.delete()
