"""Smoke tests of the user-mode Linux harness (:mod:`.uml`) and of the IKE clients that
need its kernel, against strongSwan as the responder.

* A guest boots with the host's root read-only, its own writable /etc, the IPsec
  modules loaded, and a command channel that reports output and exit codes.
* Ping works both ways between the guest and the namespace its TAP device is in.
* The guest's kernel does ESP: SAs and policies set with ``ip xfrm``; a datagram the
  guest sends leaves as ESP that scapy decrypts with the same key, and an ESP packet
  scapy encrypts is decrypted by the guest's kernel and delivered to a socket there.
* Shutdown leaves no process and no TAP device, also after the UML process was killed.
* openiked (PSK) and libreswan (PSK) in a guest connect as initiators to strongSwan's
  charon (starter, ipsec.conf, kernel-libipsec as in the other interop tests) and a
  ping from their virtual IP crosses the tunnel to the host behind the gateway.

Boot time is recorded as the ``uml_boot_seconds`` property of the tests (JUnit XML)
and printed (``pytest -s``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .netns import Namespace, Topology, ping
from .strongswan import StrongSwanServer
from .uml import (GUEST_IFACE, Libreswan, OpenIked, UmlError, UmlGuest, capture_tap, esp_from, libreswan_missing,
                  openiked_missing, send_ip, uml_missing)

REASON = uml_missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"user-mode Linux unavailable: {REASON}")

# The guest on the outer segment, as a client of the topologies in netns.py.
NS_V4, NS_V6 = "10.99.0.1", "fd00:99::1"
GUEST_V4, GUEST_V6 = "10.99.0.10", "fd00:99::10"
BEHIND_NS_V4 = "10.99.1.1"  # a made-up host "behind" the namespace for the ESP test

PSK = "uml-harness-interop-psk"
GATEWAY_ID, CLIENT_ID = "gw.example", "client.example"

# strongSwan as the responder: PSK both ways, virtual IPs from the seed's pools.
RESPONDER_IPSEC_CONF = f"""config setup

conn psk
    keyexchange=ikev2
    left=%any
    leftid=@{GATEWAY_ID}
    leftauth=psk
    leftsubnet=0.0.0.0/0,::/0
    right=%any
    rightid=%any
    rightauth=psk
    rightsourceip=192.0.2.0/24,2001:db8::/96
    auto=add
"""
RESPONDER_SECRETS = f'@{GATEWAY_ID} : PSK "{PSK}"\n'


def _boot_report(record_property, guest: UmlGuest) -> None:
    record_property("uml_boot_seconds", round(guest.boot_time, 3))
    print(f"\nUML guest {guest.name}: booted in {guest.boot_time:.2f} s "
          f"(guest uptime {guest.guest_uptime_at_ready:.2f} s when the agent answered)")


# ----------------------------------------------------------------------------------
# a guest on its own namespace, shared by the plain tests of this module

@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """(namespace, guest): the guest's eth0 is GUEST_V4/GUEST_V6, the TAP side in
    the namespace NS_V4/NS_V6; default routes point at the namespace."""
    ns = Namespace(role="uml")
    guest = None
    try:
        ns.create()
        for scope in ("all", "default"):
            ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
        guest = UmlGuest(ns, tmp_path_factory.mktemp("uml-plain"), name="plain",
                         addresses=[f"{GUEST_V4}/24", f"{GUEST_V6}/64"],
                         tap_addresses=[f"{NS_V4}/24", f"{NS_V6}/64"],
                         routes=[f"default via {NS_V4}", f"default via {NS_V6}"])
        guest.start()
        yield ns, guest
    finally:
        if guest is not None:
            guest.stop()
        ns.delete()


def test_guest_boots_with_modules_and_a_command_channel(plain, record_property):
    ns, guest = plain
    _boot_report(record_property, guest)
    assert guest.boot_time < 30

    # a kernel of its own: the UML 6.1 kernel, not the host's
    release = guest.run(["uname", "-r"]).stdout.strip()
    assert release.startswith("6.1.") and release != os.uname().release
    modules = {line.split()[0] for line in guest.read_text("/proc/modules").splitlines()}
    assert {"af_key", "xfrm_user", "esp4", "esp6", "ipv6"} <= modules

    # exit codes, stdout and stderr apart, input, bytes that are not UTF-8
    proc = guest.run("echo out; echo err >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    with pytest.raises(UmlError, match="-> 3"):
        guest.run("exit 3")
    assert guest.run(["cat"], input="line one\nline two\n").stdout == "line one\nline two\n"
    assert guest.run(["printf", r"\377ok"]).stdout.encode("utf-8", "surrogateescape") == b"\xffok"

    # a timeout kills the command and the channel stays usable
    with pytest.raises(subprocess.TimeoutExpired):
        guest.run(["sleep", "30"], timeout=0.5)
    assert guest.run(["true"]).returncode == 0

    # requests run concurrently
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: guest.run(["sleep", "1"]).returncode, range(3)))
    assert results == [0, 0, 0] and time.monotonic() - started < 2.8

    # large requests and replies, and a burst of requests, do not stall the serial
    # line (UML's tty stops for good when more than 4 KiB are queued towards it)
    assert guest.run(["wc", "-c"], input="x" * 200_000).stdout.strip() == "200000"
    assert len(guest.run("head -c 1000000 /dev/zero | tr '\\0' a").stdout) == 1_000_000
    with ThreadPoolExecutor(16) as pool:
        echoed = list(pool.map(lambda i: guest.run(["echo", f"{i}" * 900]).stdout, range(32)))
    assert echoed == [f"{i}" * 900 + "\n" for i in range(32)]

    # the host's root is read-only; /etc is writable for the guest only
    assert guest.run(["touch", "/opt/uml-probe"], check=False).returncode != 0
    guest.put("/etc/ikg-uml-probe/file", "guest only\n", mode=0o600)
    assert guest.read_text("/etc/ikg-uml-probe/file") == "guest only\n"
    assert guest.run(["stat", "-c", "%a", "/etc/ikg-uml-probe/file"]).stdout.strip() == "600"
    assert not Path("/etc/ikg-uml-probe").exists()

    # the share directory works in both directions
    guest.run(["sh", "-c", f"uname -n > {guest.share}/from-guest"])
    assert (guest.share / "from-guest").read_text() == "plain\n"

    # background processes: spawned, polled, signalled
    sleeper = guest.spawn(["sleep", "60"])
    assert sleeper.poll() is None
    sleeper.signal(signal.SIGTERM)
    assert sleeper.wait(5) == -signal.SIGTERM


def test_ping_between_guest_and_namespace(plain):
    ns, guest = plain
    assert guest.ping(NS_V4, count=2) == 2
    assert guest.ping(NS_V6, count=2) == 2
    assert ping(ns, GUEST_V4, count=2) == 2
    assert ping(ns, GUEST_V6, count=2) == 2


# Prints what one datagram to UDP port argv[1] carried, and from where.
_RECEIVE_ONE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
data, peer = s.recvfrom(2048)
print(peer[0], data.decode())
"""


def _wait_udp_port(guest: UmlGuest, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while f":{port} " not in guest.run(["ss", "-H", "-u", "-l", "-n"]).stdout:
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on UDP {port} in the guest")
        time.sleep(0.05)


def test_guest_kernel_does_esp(plain):
    """ESP tunnel mode in the guest's kernel with AES-GCM-128 (rfc4106): checked against
    scapy's independent implementation in both directions."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    from scapy.packet import Raw

    ns, guest = plain
    # RFC 4106 keying material: a 16-byte AES key followed by the 4-byte salt; the
    # kernel's rfc4106(gcm(aes)) and scapy's AES-GCM take it in this same form.
    key_out, key_in = os.urandom(20), os.urandom(20)
    spi_out, spi_in = 0x1000 + os.urandom(1)[0], 0x2000 + os.urandom(1)[0]
    aead = "aead 'rfc4106(gcm(aes))' 0x{} 128"
    try:
        guest.run(f"ip xfrm state add src {GUEST_V4} dst {NS_V4} proto esp spi {spi_out} reqid 7 "
                  f"mode tunnel {aead.format(key_out.hex())}")
        guest.run(f"ip xfrm state add src {NS_V4} dst {GUEST_V4} proto esp spi {spi_in} reqid 7 "
                  f"mode tunnel {aead.format(key_in.hex())}")
        guest.run(f"ip xfrm policy add src {GUEST_V4}/32 dst {BEHIND_NS_V4}/32 dir out "
                  f"tmpl src {GUEST_V4} dst {NS_V4} proto esp reqid 7 mode tunnel")
        guest.run(f"ip xfrm policy add src {BEHIND_NS_V4}/32 dst {GUEST_V4}/32 dir in "
                  f"tmpl src {NS_V4} dst {GUEST_V4} proto esp reqid 7 mode tunnel")
        states = guest.run(["ip", "xfrm", "state"]).stdout
        assert f"spi 0x{spi_out:08x}" in states and "rfc4106(gcm(aes))" in states

        # guest -> namespace: a datagram to the host behind the namespace leaves as ESP
        capture = capture_tap(guest)
        try:
            guest.run(["python3", "-c", "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                       ".sendto(b'sealed by the guest kernel', (sys.argv[1], 4242))", BEHIND_NS_V4])
            esp_frame = esp_from(capture, GUEST_V4, 5)
        finally:
            capture.close()
        assert esp_frame is not None, "no ESP packet left the guest"
        assert esp_frame[ESP].spi == spi_out and b"sealed by" not in bytes(esp_frame)
        sa_out = SecurityAssociation(ESP, spi=spi_out, crypt_algo="AES-GCM", crypt_key=key_out,
                                     tunnel_header=IP(src=GUEST_V4, dst=NS_V4))
        inner = sa_out.decrypt(esp_frame)
        assert (inner[IP].src, inner[IP].dst, inner[UDP].dport) == (GUEST_V4, BEHIND_NS_V4, 4242)
        assert bytes(inner[UDP].payload) == b"sealed by the guest kernel"

        # namespace -> guest: ESP made by scapy is opened by the guest kernel
        sa_in = SecurityAssociation(ESP, spi=spi_in, crypt_algo="AES-GCM", crypt_key=key_in,
                                    tunnel_header=IP(src=NS_V4, dst=GUEST_V4))
        esp_packet = sa_in.encrypt(IP(src=BEHIND_NS_V4, dst=GUEST_V4) / UDP(sport=4243, dport=4244)
                                   / Raw(b"opened by the guest kernel"))
        with ThreadPoolExecutor(1) as pool:
            received = pool.submit(guest.run, ["python3", "-c", _RECEIVE_ONE, "4244", "10"], timeout=20)
            _wait_udp_port(guest, 4244)
            send_ip(ns, esp_packet, GUEST_V4)
            assert received.result().stdout.strip() == f"{BEHIND_NS_V4} opened by the guest kernel"
        counters = guest.run(["ip", "-s", "xfrm", "state"]).stdout
        assert counters.count("1(packets)") >= 2, counters
    finally:
        guest.run("ip xfrm policy flush; ip xfrm state flush", check=False)


def test_shutdown_leaves_nothing_even_after_a_crash(tmp_path):
    """Two guests in one namespace: one halts cleanly, the other's UML process is
    killed; afterwards no process of either session and no TAP device remain."""

    def session_alive(sid: int) -> list[int]:
        alive = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
                except OSError:
                    continue
                if int(fields[3]) == sid and fields[0] != "Z":
                    alive.append(int(entry))
        return alive

    with Namespace(role="umlx") as ns:
        clean = UmlGuest(ns, tmp_path / "clean", name="clean", addresses=["10.99.0.21/24"])
        crashed = UmlGuest(ns, tmp_path / "crashed", name="crashed", addresses=["10.99.0.22/24"])
        try:
            clean.start()
            crashed.start()
            for guest in (clean, crashed):
                guest.spawn(["sleep", "600"])
            links = ns.run(["ip", "-br", "link"]).stdout
            assert "tap-clean" in links and "tap-crashed" in links

            clean.stop()
            assert clean.proc.returncode == 0  # the agent powered the guest off
            assert session_alive(clean.proc.pid) == []

            os.kill(crashed.proc.pid, signal.SIGKILL)
            with pytest.raises(UmlError, match="died|gone|not running"):
                crashed.run(["true"])
            crashed.stop()
            assert session_alive(crashed.proc.pid) == []
            links = ns.run(["ip", "-br", "link"]).stdout
            assert "tap-" not in links
        finally:
            clean.stop()
            crashed.stop()


# ----------------------------------------------------------------------------------
# IKE clients in a guest against strongSwan

@pytest.fixture
def psk_setup(request, tmp_path):
    """A topology (gateway, inner host, bridge), strongSwan's starter serving
    RESPONDER_IPSEC_CONF on the gateway, and ``make_guest(name)`` for a guest on the
    bridge at GUEST_V4/GUEST_V6 with the gateway as default route.  Everything is
    stopped at teardown; on failure the logs are printed."""
    topo = Topology(0, inner=True).build()
    server = StrongSwanServer(topo.gateway.ns, tmp_path / "strongswan",
                              ipsec_conf=RESPONDER_IPSEC_CONF, ipsec_secrets=RESPONDER_SECRETS)
    guests: list[UmlGuest] = []

    def make_guest(name: str) -> UmlGuest:
        guest = UmlGuest(topo.bridge, tmp_path / name, name=name, bridge="br0",
                         addresses=[f"{GUEST_V4}/24", f"{GUEST_V6}/64"],
                         routes=[f"default via {topo.gateway.v4[0]}", f"default via {topo.gateway.v6[0]}"])
        guests.append(guest)
        return guest.start()

    try:
        server.start()
        yield topo, server, make_guest
    finally:
        failed = any(getattr(getattr(request.node, f"_interop_rep_{w}", None), "failed", False)
                     for w in ("setup", "call"))
        for guest in guests:
            if failed:
                print(f"\n===== guest {guest.name} =====\n{guest.log_text()}")
                for log in sorted(guest.share.glob("*.log")):
                    print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-6000:]}")
            guest.stop()
        if failed:
            print(f"\n===== strongSwan responder charon.log =====\n{server.log_text()[-6000:]}")
        server.stop()
        topo.destroy()


def _assert_responder_view(server: StrongSwanServer) -> None:
    (ike,) = server.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert ike["remote-host"] == GUEST_V4
    assert ike["remote-id"] == CLIENT_ID
    assert "192.0.2.1" in ike["remote-vips"]
    (child,) = ike["child-sas"].values()
    assert child["state"] == "INSTALLED"
    assert child["remote-ts"] == ["192.0.2.1/32"]


def _assert_kernel_esp_sas(guest: UmlGuest) -> None:
    """Two ESP SAs in the guest's kernel, UDP-encapsulated: strongSwan's libipsec
    responder fakes a NAT to force encapsulation."""
    states = guest.run(["ip", "xfrm", "state"]).stdout
    assert states.count("proto esp") == 2, states
    assert states.count("encap type espinudp") == 2, states


@pytest.mark.skipif(openiked_missing() is not None, reason=str(openiked_missing()))
def test_openiked_psk_initiator_to_strongswan(psk_setup, record_property):
    topo, server, make_guest = psk_setup
    guest = make_guest("iked")
    _boot_report(record_property, guest)
    # "from any" (0.0.0.0/0), not "from dynamic": openiked proposes TSi 0.0.0.0/32 for
    # "dynamic", which strongSwan 5.9 answers with TS_UNACCEPTABLE; 0.0.0.0/0 is
    # narrowed by strongSwan to the virtual IP.
    iked = OpenIked(guest, f"""ikev2 "ikg" active esp \\
    from 0.0.0.0/0 to 0.0.0.0/0 \\
    peer {topo.gateway.v4[0]} \\
    srcid {CLIENT_ID} dstid {GATEWAY_ID} \\
    psk "{PSK}" \\
    request address any \\
    iface {GUEST_IFACE}
""").start()
    line = iked.wait_established(timeout=40)
    assert "policy 'ikg' as initiator" in line
    _assert_responder_view(server)
    # iked put the leased address on eth0
    assert "192.0.2.1/32" in guest.run(["ip", "-4", "addr", "show", GUEST_IFACE]).stdout
    _assert_kernel_esp_sas(guest)
    assert "ESTABLISHED" in iked.show_sa()
    assert guest.ping(topo.inner.v4[0], source="192.0.2.1", count=3, wait=2) == 3
    iked.stop()


@pytest.mark.skipif(libreswan_missing() is not None, reason=str(libreswan_missing()))
def test_libreswan_psk_initiator_to_strongswan(psk_setup, record_property):
    topo, server, make_guest = psk_setup
    guest = make_guest("lsw")
    _boot_report(record_property, guest)
    # leftsubnet=0.0.0.0/0 so that strongSwan narrows TSi to the virtual IP; with the
    # default (its own address) libreswan's TSi would not contain the lease.
    swan = Libreswan(guest, f"""config setup
    dnssec-enable=no
    logtime=yes

conn ikg
    ikev2=insist
    authby=secret
    left={GUEST_V4}
    leftid=@{CLIENT_ID}
    leftmodecfgclient=yes
    leftsubnet=0.0.0.0/0
    right={topo.gateway.v4[0]}
    rightid=@{GATEWAY_ID}
    rightsubnet=0.0.0.0/0
    narrowing=yes
    auto=add
""", f'@{CLIENT_ID} @{GATEWAY_ID} : PSK "{PSK}"\n').start()
    swan.add("ikg")
    ok, out = swan.up("ikg", timeout=40)
    assert ok, out
    assert "established Child SA" in out or "IPsec SA established" in out, out
    _assert_responder_view(server)
    _assert_kernel_esp_sas(guest)
    assert "192.0.2.1" in swan.traffic_status()
    assert guest.ping(topo.inner.v4[0], source="192.0.2.1", count=3, wait=2) == 3
    swan.stop()
