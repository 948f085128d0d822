"""Floods against the running ikegate daemon while a real strongSwan client connects.

Four floods, each bounded (a few seconds, a few thousand packets) and each against a
fresh gateway: IKE_SA_INIT from thousands of spoofed sources, ESP with unknown SPIs
(ESP-in-UDP on port 4500 and native IP protocol 50), IKE Encrypted Fragments (RFC 7383)
for unknown SAs and for a half-open SA of the flooder, and failed EAP logins from one
address.  For each, the legitimate client's connect time is measured in the same test
without the flood and under it (:func:`run_flood`: after one connect to warm the gateway
up, seven connects before the flood, seven under it, seven after it): the median under the
flood must stay within twice the median of those before and after.  The gateway's
resident memory (VmRSS of the daemon and its ESP workers) and its half-open IKE SAs are
sampled throughout.

Topology (one per module): the gateway and two clients on one bridge: client 1 floods,
client 2 is the legitimate strongSwan client (user2).  The spoofed sources are
:data:`FLOOD_NET`, routed by the gateway to the flooder (which takes it as local, so the
gateway's answers come back there rather than vanish, as they would for a real spoofer).
Packets are built in advance and written by a thread with a raw socket (IP_HDRINCL) at
a fixed rate (:class:`RawFlood`).  Each flood is a :class:`FloodPlan`; :func:`flooded`
runs one against a fresh gateway.

``bench/floods.py`` runs the same plans at fixed offered rates for longer and prints the
table of the README.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import struct
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ike.initiator import WINDOWS10, Initiator
from ike.test_ike_throttle import skf
from ikegate.control.client import ControlError
from ikegate.control.client import request as control_request
from ikegate.ike.events import Endpoint
from ikegate.wire.constants import ExchangeType
from ikegate.wire.payloads import VendorIdPayload

from .gateway import IkegateGateway, ikegate_daemon_missing, wait_for
from .hostile import IKE_PORT, NATT_PORT, NON_ESP_MARKER, sa_init
from .netns import Namespace, Topology, namespace_pids, socket_in
from .strongswan import ClientConn, StrongSwanClient
from .wireshark import udp_packet

FLOOD_NET = "10.98.0.0/16"  # spoofed sources, routed from the gateway to the flooder
ROUNDS = 7  # connects measured before, under and after the flood (medians: up to 3 outliers)
MAX_RATIO = 2.0  # connect time under a flood / unloaded (medians)
IPPROTO_ESP = 50
#: The legitimate client proposes the seed's first DH group first.  strongSwan 5.9 sends
#: its next IKE_SA_INIT (after INVALID_KE_PAYLOAD or a COOKIE) while it still holds the
#: IKE SA, and drops an answer that comes back before it lets go ("ignoring request with
#: ID 0, already processing"): a retransmission timeout lost.  With strongSwan's default
#: (Curve25519 first) every connect to the seed takes an INVALID_KE_PAYLOAD round, whose
#: answer is immediate, and on a busy machine the race is frequent.  The COOKIE round
#: under a flood still loses it now and then (one connect in 5 to 10 at a load of 4 on
#: the 2 cores), which the medians absorb.  The race is the client's, not the gateway's.
LEGIT_PROPOSALS = "aes256-sha256-modp3072,default"


# ---------------------------------------------------------------------------------- sending floods


class RawFlood:
    """Prebuilt IPv4 packets written from namespace ``ns`` with a raw socket (IP_HDRINCL)
    by a thread, in bursts, at about ``rate`` packets per second, once through.

    The thread runs at the lowest CPU priority (nice 19): a real flood comes from
    elsewhere, and the machine's two cores should go to the gateway and the legitimate
    client first (if the thread falls behind, ``seconds`` shows it).  ``sink_port``: a
    UDP socket bound there in ``ns`` takes the gateway's answers to the spoofed sources
    (which ``ns`` takes as local) and never reads them: once its buffer is full they are
    dropped quietly, where a closed port would have each one answered with an ICMP error."""

    def __init__(self, ns: Namespace, packets: list[bytes], rate: float, burst: int = 50,
                 sink_port: int | None = None) -> None:
        self.ns, self.packets, self.rate, self.burst, self.sink_port = ns, packets, rate, burst, sink_port
        self.sent = 0
        self.seconds = 0.0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._sink: socket.socket | None = None

    def start(self) -> "RawFlood":
        if self.sink_port is not None:
            self._sink = socket_in(self.ns, socket.AF_INET, socket.SOCK_DGRAM, bind=("0.0.0.0", self.sink_port))
        self._sock = socket_in(self.ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self._thread = threading.Thread(target=self._send, daemon=True, name="raw-flood")
        self._thread.start()
        return self

    def _send(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
        sendto, started = self._sock.sendto, time.monotonic()
        interval, next_at = self.burst / self.rate, started
        for i in range(0, len(self.packets), self.burst):
            if self._stop.is_set():
                break
            for pkt in self.packets[i:i + self.burst]:
                try:
                    sendto(pkt, (socket.inet_ntoa(pkt[16:20]), 0))
                    self.sent += 1
                except OSError:  # a full socket buffer: the packet is not sent, nor counted
                    pass
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.seconds = time.monotonic() - started
        self.done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock in (self._sock, self._sink):
            if sock is not None:
                sock.close()
        self._sock = self._sink = None


def spoofed_sources(count: int, seed: int) -> list[str]:
    """``count`` distinct addresses of FLOOD_NET (10.98.0.0/16), in random order."""
    rng = random.Random(seed)
    return [f"10.98.{n >> 8}.{n & 0xFF}" for n in rng.sample(range(1, 65535), count)]


def sa_init_packets(gateway: str, count: int, seed: int = 34) -> list[bytes]:
    """IKE_SA_INIT requests the seed accepts (:func:`hostile.sa_init`, built by scapy),
    each from its own spoofed source with its own SPIi."""
    template = sa_init(bytes(8))
    rng = random.Random(seed)
    return [udp_packet(src, gateway, IKE_PORT, IKE_PORT, rng.randbytes(8) + template[8:])
            for src in spoofed_sources(count, seed)]


def esp_packets(gateway: str, count: int, seed: int = 50) -> list[bytes]:
    """ESP with random unknown SPIs from spoofed sources: half ESP-in-UDP to port 4500
    (no non-ESP marker: RFC 3948), half native (IP protocol 50)."""
    rng = random.Random(seed)
    out = []
    for i, src in enumerate(spoofed_sources(count, seed)):
        spi = rng.randbytes(4).replace(b"\0\0\0\0", b"\0\0\0\1")  # SPI 0 would be the non-ESP marker
        esp = spi + struct.pack("!I", i + 1) + rng.randbytes(96 + i % 128)
        if i % 2:
            out.append(udp_packet(src, gateway, 4500, NATT_PORT, esp))
        else:
            out.append(ipv4_packet(src, gateway, IPPROTO_ESP, esp))
    return out


def ipv4_packet(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    """An IPv4 packet (header checksum filled in) carrying ``payload`` as protocol ``proto``."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + payload


def unknown_sa_fragments(gateway: str, count: int, seed: int = 53) -> list[bytes]:
    """Fragments for IKE SAs that do not exist, from spoofed sources, to 500 and 4500."""
    rng = random.Random(seed)
    out = []
    for i, src in enumerate(spoofed_sources(count, seed)):
        data = skf(rng.randbytes(8), rng.randbytes(8), rng, number=1 + i % 4, total=4, size=300)
        if i % 2:
            out.append(udp_packet(src, gateway, NATT_PORT, NATT_PORT, NON_ESP_MARKER + data))
        else:
            out.append(udp_packet(src, gateway, IKE_PORT, IKE_PORT, data))
    return out


class HalfOpenFlooder:
    """An IKE SA of the flooder's own, left half-open: the in-memory initiator of the
    engine tests (``tests/ike/initiator.py``) over a UDP socket in the flooder's
    namespace runs IKE_SA_INIT with the gateway; then :meth:`fragments` builds the
    flood for that SA: fragments that fail their integrity check, and properly sealed
    fragments of ever new messages, never the last one."""

    def __init__(self, ns: Namespace, host: str, gateway: str) -> None:
        self.sock = socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM, bind=(host, 0))
        self.host, self.port, self.gateway = host, self.sock.getsockname()[1], gateway
        self.initiator = Initiator(WINDOWS10, local=Endpoint(host, self.port), remote=Endpoint(gateway, IKE_PORT),
                                   user="user1", password="not tried")

    def _transport(self, datagrams: list[bytes]) -> list[bytes]:
        for data in datagrams:
            self.sock.sendto(data, (self.gateway, IKE_PORT))
        self.sock.settimeout(5)
        answers = [self.sock.recv(65535)]
        self.sock.settimeout(0.05)
        try:
            while True:
                answers.append(self.sock.recv(65535))
        except socket.timeout:
            return answers

    def sa_init(self) -> None:
        response = self.initiator.sa_init(self._transport)
        if response is None or self.initiator.keys is None:
            raise AssertionError(f"the flooder's IKE_SA_INIT failed: {response}")

    def fragments(self, count: int, seed: int = 54) -> list[bytes]:
        rng = random.Random(seed)
        init = self.initiator
        out: list[bytes] = []
        n = 0
        while len(out) < count:
            if n % 2:
                datagrams = [skf(init.spi_i, init.spi_r, rng, number=k, total=8, size=300) for k in range(1, 8)]
            else:
                big = [VendorIdPayload(data=rng.randbytes(3000 + 40 * (n % 100)))]
                datagrams = init.seal(ExchangeType.IKE_AUTH, big, message_id=1, fragment_size=500 + n % 300)[:-1]
            out += [udp_packet(self.host, self.gateway, self.port, IKE_PORT, d) for d in datagrams]
            n += 1
        return out[:count]

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------- measuring


def rss_bytes(pids: list[int]) -> int:
    """Summed VmRSS of ``pids`` (those still alive)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def daemon_pids(gateway: IkegateGateway) -> list[int]:
    """The daemon's processes: the IKE daemon (``ip netns exec`` execs it: the pid it
    was started with) and its ESP worker processes.  Not the updown scripts it starts
    now and then: until their exec, those are forks sharing (and showing) the daemon's
    pages."""
    pids = [gateway.proc.pid]
    for pid in namespace_pids(gateway.ns.name):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ikegate.dataplane.workers" in cmdline:
            pids.append(pid)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14 and 15)
    return total / tick


def gateway_rss(gateway: IkegateGateway) -> int:
    """VmRSS of the daemon's processes (:func:`daemon_pids`)."""
    return rss_bytes(daemon_pids(gateway))


def control(gateway: IkegateGateway, command: str) -> dict:
    reply = control_request(gateway.run_dir, command)
    assert reply.get("ok"), reply
    return reply


def half_open(gateway: IkegateGateway) -> int:
    return sum(sa["state"] == "CONNECTING" for sa in control(gateway, "status")["sas"])


def connect_time(client: StrongSwanClient, conn: str | None = None) -> float:
    """Seconds for ``swanctl --initiate`` to bring the client's IKE and CHILD SA up;
    the SA is closed again afterwards."""
    started = time.monotonic()
    ok, out = client.initiate(ike=conn, timeout=20)
    took = time.monotonic() - started
    assert ok, f"the legitimate client did not connect:\n{out}\n{client.log_text()[-3000:]}"
    client.terminate(ike=conn)
    return took


@dataclass
class FloodReport:
    """What one flood did to the gateway, and to the legitimate client."""

    kind: str
    offered_rate: float = 0.0  # packets per second (failed logins: connections at once)
    unit: str = "packets/s"
    sent: int = 0
    seconds: float = 0.0
    unloaded: list[float] = field(default_factory=list)  # connect times without the flood
    loaded: list[float] = field(default_factory=list)  # and under it
    rss_before: int = 0
    rss_during: int = 0  # the largest sample
    rss_after: int = 0
    half_open_max: int = 0
    cpu: float = 0.0  # the daemon's CPU seconds from the flood's start to its end
    stats_before: dict = field(default_factory=dict)  # gateway_stats + dataplane_stats
    stats_after: dict = field(default_factory=dict)

    @property
    def unloaded_median(self) -> float:
        return statistics.median(self.unloaded)

    @property
    def loaded_median(self) -> float:
        return statistics.median(self.loaded)

    @property
    def ratio(self) -> float:
        return self.loaded_median / self.unloaded_median

    def grew(self, name: str) -> int:
        """How much a gateway or data plane counter grew during the flood."""
        return self.stats_after.get(name, 0) - self.stats_before.get(name, 0)

    def summary(self) -> str:
        mb = 2**20
        offered = (f"offered {self.offered_rate:.0f}/s" if self.unit == "packets/s"
                   else f"{self.offered_rate:.0f} {self.unit} at once")
        what = "packets" if self.unit == "packets/s" else self.unit
        return (f"{self.kind}: {self.sent} {what} in {self.seconds:.1f}s ({offered}); "
                f"connect unloaded {[round(t, 3) for t in self.unloaded]}, under flood "
                f"{[round(t, 3) for t in self.loaded]} (ratio {self.ratio:.2f}); RSS MB before "
                f"{self.rss_before / mb:.1f} during {self.rss_during / mb:.1f} after {self.rss_after / mb:.1f}; "
                f"half-open max {self.half_open_max}")


def all_stats(gateway: IkegateGateway) -> dict:
    reply = control(gateway, "statusall")
    return {**reply["dataplane_stats"], **reply["gateway_stats"]}


class Sampler:
    """Samples the gateway's VmRSS and half-open SAs every ``interval`` s from a thread."""

    def __init__(self, gateway: IkegateGateway, interval: float = 0.25) -> None:
        self.gateway, self.interval = gateway, interval
        self.rss_max = 0
        self.half_open_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="flood-sampler")

    def _run(self) -> None:
        pids = daemon_pids(self.gateway)
        while not self._stop.is_set():
            self.sample(pids)
            self._stop.wait(self.interval)

    def sample(self, pids: list[int] | None = None) -> None:
        self.rss_max = max(self.rss_max, rss_bytes(pids or daemon_pids(self.gateway)))
        try:
            self.half_open_max = max(self.half_open_max, half_open(self.gateway))
        except (ControlError, AssertionError):  # a busy gateway may answer late: the next sample counts
            pass

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.sample()


@dataclass
class FloodPlan:
    """One flood, ready to go: what it offers (``unit``: packets/s, or failing logins
    at once), how to start it, how to stop it (-> packets or logins sent, seconds)."""

    kind: str
    offered: float
    unit: str
    start: Callable[[], None]
    stop: Callable[[], tuple[int, float]]
    drain: float = 10.0  # after the flood, wait at most this long for no half-open SA
    warmup: float = 0.3
    cleanup: Callable[[], None] = lambda: None
    again: Callable[[], None] = lambda: None  # the failed logins: another round


def run_flood(plan: FloodPlan, gateway: IkegateGateway, connect: Callable[[], float], *, rounds: int = ROUNDS,
              settle: float = 1.0) -> FloodReport:
    """Connect ``rounds`` times without the flood (after one connect not measured), start
    it, connect ``rounds`` times under it, stop it, wait (at most ``plan.drain`` s) until
    no half-open IKE SA is left, connect ``rounds`` times again without it.  The unloaded
    times are those before and after: they bracket the flood, so that the machine's
    other load (2 shared cores) weighs on both sides alike.  The gateway's memory and
    half-open SAs are sampled throughout, its CPU time taken over the flood."""
    report = FloodReport(plan.kind, plan.offered, plan.unit)
    connect()  # the first connect to a fresh gateway pays for imports and caches: not measured
    report.unloaded = [connect() for _ in range(rounds)]
    report.rss_before = gateway_rss(gateway)
    report.stats_before = all_stats(gateway)
    pids = daemon_pids(gateway)
    with Sampler(gateway) as sampler:
        cpu = cpu_seconds(pids)
        plan.start()
        try:
            time.sleep(plan.warmup)
            report.loaded = [connect() for _ in range(rounds)]
        finally:
            report.sent, report.seconds = plan.stop()
            report.cpu = cpu_seconds(pids) - cpu
    report.rss_during, report.half_open_max = sampler.rss_max, sampler.half_open_max
    time.sleep(settle)
    report.rss_after = gateway_rss(gateway)
    report.stats_after = all_stats(gateway)
    if plan.drain:
        wait_for(lambda: half_open(gateway) == 0, timeout=plan.drain, interval=0.2)
    report.unloaded += [connect() for _ in range(rounds)]
    return report


# ---------------------------------------------------------------------------------- the bed


@dataclass
class Bed:
    """The module's topology, its seed copy and the strongSwan clients."""

    topology: Topology
    confdir_template: Path
    workdir: Path
    legit: StrongSwanClient
    gateways: list[IkegateGateway] = field(default_factory=list)

    @property
    def gateway_addr(self) -> str:
        return self.topology.gateway.v4[0]

    @property
    def flooder(self):
        return self.topology.clients[0]

    def start_gateway(self, strongswan_conf: str = "") -> IkegateGateway:
        """A fresh ikegate (the seed, plus ``strongswan_conf`` if given); the previous
        one is stopped first (they share the namespace's TUN device)."""
        for old in self.gateways:
            old.stop()
        n = len(self.gateways) + 1
        confdir = self.workdir / f"conf{n}"
        shutil.copytree(self.confdir_template, confdir)
        if strongswan_conf:
            (confdir / "strongswan.conf").write_text(strongswan_conf)
        gateway = IkegateGateway(self.topology.gateway.ns, confdir, self.workdir / f"gw{n}")
        self.gateways.append(gateway)
        return gateway.start()

    def connect(self) -> float:
        return connect_time(self.legit)


def build_bed(seed_confdir: Path, root_cert: Path, workdir: Path) -> Bed:
    """Topology (gateway, flooder, legitimate client), routes for FLOOD_NET, the
    legitimate strongSwan client (user2) started."""
    topology = Topology(2)
    topology.build()
    try:
        gw, flooder = topology.gateway, topology.clients[0]
        gw.run(["ip", "route", "add", FLOOD_NET, "via", flooder.v4[0]])
        flooder.run(["ip", "route", "add", "local", FLOOD_NET, "dev", "lo"])
        legit = StrongSwanClient(topology.clients[1].ns, workdir / "legit", ca_certs=[root_cert],
                                 conns=[ClientConn(remote_addrs=gw.v4[0], eap_id="user2", password="password2",
                                                   proposals=LEGIT_PROPOSALS)])
        legit.start()
        return Bed(topology, seed_confdir, workdir, legit)
    except BaseException:
        topology.destroy()
        raise


def teardown_bed(bed: Bed) -> None:
    bed.legit.stop()
    for gateway in bed.gateways:
        gateway.stop()
    bed.topology.destroy()


@pytest.fixture(scope="module")
def bed(seed_setup, tmp_path_factory):
    reason = ikegate_daemon_missing()
    if reason:
        pytest.skip(reason)
    bed = build_bed(seed_setup.confdir, seed_setup.root_cert, tmp_path_factory.mktemp("floods"))
    try:
        yield bed
    finally:
        teardown_bed(bed)


@pytest.fixture(autouse=True)
def _gateway_log_on_failure(request):
    yield
    rep = getattr(request.node, "_interop_rep_call", None)
    if "bed" in request.fixturenames and rep is not None and rep.failed:
        for gateway in request.getfixturevalue("bed").gateways[-1:]:
            print(f"\n===== gateway output (tail) =====\n{gateway.log_text()[-6000:]}", file=sys.stderr)


def assert_alive(gateway: IkegateGateway) -> None:
    assert gateway.running(), f"the gateway died:\n{gateway.log_text()[-4000:]}"
    assert "Traceback" not in gateway.log_text(), gateway.log_text()[-6000:]


def assert_within_ratio(report: FloodReport) -> None:
    print(report.summary())
    assert report.ratio <= MAX_RATIO, report.summary()


def log_lines(gateway: IkegateGateway, needle: str) -> int:
    return sum(needle in line for line in gateway.log_text().splitlines())


# ---------------------------------------------------------------------------------- the floods


SHORT_HALF_OPEN_CONF = """charon {
    half_open_timeout = 3
}
"""
HOLDOFF_CONF = """charon {
    auth_failure_limit = 3
    auth_failure_window = 60
    auth_failure_block = 30
}
"""


def _raw_plan(kind: str, bed: Bed, packets: list[bytes], rate: float, *, sink_port: int | None = None,
              **kw) -> FloodPlan:
    flood = RawFlood(bed.flooder.ns, packets, rate, sink_port=sink_port)

    def stop() -> tuple[int, float]:
        flood.done.wait(timeout=len(packets) / rate + 10)
        flood.stop()
        return flood.sent, flood.seconds

    return FloodPlan(kind, rate, "packets/s", flood.start, stop, **kw)


def sa_init_plan(bed: Bed, gateway: IkegateGateway, rate: float, seconds: float, workdir: Path) -> FloodPlan:
    """IKE_SA_INIT requests, each from its own spoofed address."""
    packets = sa_init_packets(bed.gateway_addr, int(rate * seconds))
    return _raw_plan("IKE_SA_INIT, spoofed sources", bed, packets, rate, sink_port=IKE_PORT)


def esp_plan(bed: Bed, gateway: IkegateGateway, rate: float, seconds: float, workdir: Path) -> FloodPlan:
    """ESP with unknown SPIs, spoofed sources, half to UDP 4500, half native."""
    return _raw_plan("ESP, unknown SPIs", bed, esp_packets(bed.gateway_addr, int(rate * seconds)), rate)


def fragment_plan(bed: Bed, gateway: IkegateGateway, rate: float, seconds: float, workdir: Path) -> FloodPlan:
    """Encrypted Fragments: half for unknown SAs (spoofed), half for the flooder's own
    half-open SA (set up here: it lives charon.half_open_timeout, 30 s)."""
    half = int(rate * seconds) // 2
    flooder = HalfOpenFlooder(bed.flooder.ns, bed.flooder.v4[0], bed.gateway_addr)
    try:
        flooder.sa_init()
        packets = [p for pair in zip(unknown_sa_fragments(bed.gateway_addr, half), flooder.fragments(half))
                   for p in pair]
    except BaseException:
        flooder.close()
        raise
    # (the flooder's half-open SA stays for its 30 s: no use waiting for it to go)
    return _raw_plan("IKE fragments", bed, packets, rate, drain=0, cleanup=flooder.close)


def eap_plan(bed: Bed, gateway: IkegateGateway, guesses: float, seconds: float, workdir: Path) -> FloodPlan:
    """A guesser (strongSwan) tries user2's password from one address over ``guesses``
    connections started at once (charon.reuse_ikesa off: one IKE SA each)."""
    n = int(guesses)
    guesser = StrongSwanClient(
        bed.flooder.ns, workdir / f"guesser{len(bed.gateways)}", ca_certs=[bed.legit.ca_certs[0]],
        conns=[ClientConn(remote_addrs=bed.gateway_addr, name=f"g{i}", eap_id="user2", password=f"guess{i}",
                          proposals=LEGIT_PROPOSALS) for i in range(n)],
        charon_extra="    reuse_ikesa = no\n")
    guesser.start()
    started = []

    def guess_all() -> None:
        # --timeout -1: swanctl returns once the IKE_SA_INIT is out (a blocking initiate
        # holds one of the client charon's threads for each connection)
        for i in range(n):
            guesser.swanctl("--initiate", "--child", "c", "--ike", f"g{i}", "--timeout", "-1")

    def start() -> None:
        started.append(time.monotonic())
        guess_all()

    def stop() -> tuple[int, float]:
        # the flood is over once the address is held off (each guess takes the 2 s retry delay)
        wait_for(lambda: all_stats(gateway).get("auth_holdoffs"), timeout=15, interval=0.2)
        return n, time.monotonic() - started[0]

    return FloodPlan("EAP failures, one address", n, "logins", start, stop, warmup=1.0, cleanup=guesser.stop,
                     again=guess_all)


#: kind -> (plan factory, strongswan.conf of the gateway)
PLANS = {
    "sa_init": (sa_init_plan, SHORT_HALF_OPEN_CONF),
    "esp": (esp_plan, ""),
    "fragments": (fragment_plan, ""),
    "eap": (eap_plan, HOLDOFF_CONF),
}


@contextmanager
def flooded(bed: Bed, kind: str, rate: float, seconds: float, workdir: Path, rounds: int = ROUNDS
            ) -> Iterator[tuple[IkegateGateway, FloodReport, FloodPlan]]:
    """A fresh gateway (with the flood's settings), the flood run against it while the
    legitimate client connects (:func:`run_flood`); yields the gateway, the report and
    the plan, and cleans up after the block."""
    factory, conf = PLANS[kind]
    gateway = bed.start_gateway(conf)
    plan = factory(bed, gateway, rate, seconds, workdir)
    try:
        report = run_flood(plan, gateway, bed.connect, rounds=rounds)
        yield gateway, report, plan
    finally:
        plan.cleanup()


def test_sa_init_flood_from_spoofed_sources(bed, tmp_path):
    """6000 IKE_SA_INITs from 6000 spoofed addresses in 3 s: COOKIEs engage at once,
    half-open SAs stay at charon.cookie_threshold, the client connects (through a
    COOKIE round trip) within twice its unloaded time.  (A 3 s half_open_timeout lets
    the forged SAs go, and the COOKIEs with them, soon after the flood.)"""
    with flooded(bed, "sa_init", 2000, 3, tmp_path) as (gateway, report, _):
        assert_within_ratio(report)
        assert report.sent == 6000
        assert report.grew("cookies_sent") >= 0.9 * 6000  # the first 30 got a full answer, the rest COOKIEs
        assert report.half_open_max <= 30 + 1  # cookie_threshold, and the client's own
        assert "received COOKIE notify" in bed.legit.log_text()
        assert report.rss_during - report.rss_before < 32 * 2**20
        assert_alive(gateway)


def test_esp_flood_with_unknown_spis(bed, tmp_path):
    """8000 ESP packets with unknown SPIs from spoofed addresses in 3 s, half of them
    ESP-in-UDP to port 4500 (where the client's IKE goes too), half native ESP: the
    data plane drops them all as unknown_spi, without a log line or an IKE SA."""
    with flooded(bed, "esp", 2700, 3, tmp_path) as (gateway, report, _):
        assert_within_ratio(report)
        assert report.sent == 8100
        assert report.grew("unknown_spi") >= 0.95 * 8100, (report.stats_before, report.stats_after)
        assert report.half_open_max <= 1
        assert log_lines(gateway, "10.98.") == 0  # not a line about the flood
        assert report.rss_during - report.rss_before < 32 * 2**20
        assert_alive(gateway)


def test_fragment_flood(bed, tmp_path):
    """6000 Encrypted Fragments in 3 s: half for IKE SAs that do not exist (spoofed
    sources, ports 500 and 4500), half for a half-open IKE SA of the flooder (failing
    their integrity check, or sealed properly and never complete: the engine tests show
    that such an SA holds at most charon.max_packet bytes of them).  Nothing answers
    them, the log takes a bounded number of lines, memory stays flat, the client
    connects within twice its time."""
    with flooded(bed, "fragments", 2000, 3, tmp_path) as (gateway, report, _):
        assert_within_ratio(report)
        assert report.sent == 6000
        assert report.grew("dropped") >= 0.95 * 3000  # the unknown SAs' fragments
        assert report.half_open_max <= 2  # the flooder's own, and the client's while it connects
        # 1500 fragments failed their integrity check: 20 lines, then one a second
        assert 20 <= log_lines(gateway, "integrity check of IKE_AUTH request 1 failed") <= 20 + 10
        assert log_lines(gateway, "for unknown IKE SA") <= 20 + 10
        assert report.rss_during - report.rss_before < 32 * 2**20
        assert_alive(gateway)


def test_eap_failure_flood_from_one_address(bed, tmp_path):
    """A guesser tries user2's password from one address, 8 connections at a time: after
    3 wrong passwords (charon.auth_failure_limit here) the address is held off: one log
    line, its further IKE_SA_INITs dropped and its SAs under way refused.  user2 connects
    meanwhile from its own address within twice its unloaded time."""
    with flooded(bed, "eap", 8, 0, tmp_path) as (gateway, report, plan):
        assert report.grew("auth_holdoffs") == 1, report.stats_after
        plan.again()  # another round from the held-off address: dropped before any work
        assert wait_for(lambda: all_stats(gateway).get("auth_blocked", 0) >= 1, timeout=10), all_stats(gateway)
        assert_within_ratio(report)
        stats = all_stats(gateway)
        assert stats["auth_holdoffs"] == 1 and stats["auth_failures"] >= 3, stats
        (line,) = [x for x in gateway.log_text().splitlines() if "failed authentications within" in x]
        assert f"{bed.flooder.v4[0]}: 3 failed authentications within 60s (the last as 'user2')" in line
        assert "guess" not in gateway.log_text()  # no password in the log
        assert_alive(gateway)
