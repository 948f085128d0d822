"""ikegate's kernel data plane (XFRM) end to end, in user-mode Linux (issue 10).

This machine's kernel has no ESP, so ikegate runs *inside* a UML guest (the gateway
guest of :class:`~.uml.KernelLab`), ``ikegate start --dataplane kernel`` on the seed
configuration (demo PKI, EAP-MSCHAPv2 users), and the guest's kernel carries ESP.
Tunnelled traffic goes to the "inner" addresses on the gateway guest's loopback, so
every ping crosses the gateway's inbound and outbound SAs.

* **ESP in UDP**: strongSwan 5.9 in a host namespace (kernel-libipsec, which always
  encapsulates) connects as user1; pings from both virtual IPs (IPv4 and IPv6) pass;
  ``ip xfrm state`` in the guest shows the two SAs (``encap type espinudp``) with
  ikegate's reqid tag and ``ip xfrm policy`` the policies of the virtual IPs, and the
  SAs' packet counters grew; after the client disconnects nothing of ikegate's is
  left in the kernel (SAs, policies, routes in table 220).
* **Native ESP**: strongSwan with kernel-netlink in a second guest: both ends are
  kernel ESP without encapsulation; pings over IPv4 and IPv6.
* **Algorithms by backend**: ``esp=aes128-aesxcbc!`` (AES-XCBC-96 integrity: the kernel has
  it, ikegate's userspace ESP has not) is offered by the kernel backend, on ``ikegate
  reload`` and at start, and a strongSwan client proposing only that connects and pings,
  while ``build_runtime`` without the kernel backend drops the proposal; ``ikegate
  statusall`` names the backend and counts the SAs and policies it holds.
* **MOBIKE over IPv6 outer addresses**: the kernel-netlink client in the guest connects to
  the gateway's IPv6 address (native ESP over IPv6, v4 and v6 inside); its address is
  replaced by another, charon notices and sends UPDATE_SA_ADDRESSES, the gateway's SAs
  in the kernel follow to the new outer address and pings still pass.
* **No leftovers**: a client killed hard is cleared by DPD (``dpddelay=2s`` here,
  fast retransmits) and its SAs go; SIGTERM with a client connected leaves nothing;
  after ``kill -9`` of ikegate with an SA up (the SAs stay in the kernel), a new start
  removes the stale SAs and policies.

The guests, the namespaces and the gateway are module-scoped (two boots, a few
gateway starts); everything is stopped and deleted at the end, also on failure, and
the guests' logs are printed when a test fails.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import json

import pytest

from ikegate.config.loader import load_config
from ikegate.daemon.builder import build_runtime

from .netns import ping
from .seed import write_seed
from .strongswan import StrongSwanClient
from .uml import (LAB_CLIENT_GUEST, LAB_GATEWAY, LAB_INNER, GuestIkegate, GuestStrongSwanClient, KernelLab, UmlGuest,
                  uml_missing, xfrm)

REASON = uml_missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"user-mode Linux unavailable: {REASON}")

VIP4, VIP6 = "192.0.2.1", "2001:db8::1"  # the first leases of the seed's pools
#: ikegate tags every SA and policy it installs: reqid 0x4947xxxx ("IG"), see
#: /work/notes/session14-contracts.md (A) and ikegate.dataplane.xfrm.
TAG_MASK, TAG = 0xFFFF0000, 0x49470000
#: a dead client is given up after 2 s of silence + 3 retransmits 1 s apart
FAST_DPD_CONF = "charon {\n    retransmit_timeout = 1\n    retransmit_base = 1.0\n    retransmit_tries = 2\n}\n"


def _tagged(text: str) -> list[int]:
    """ikegate's reqids in ``ip xfrm state``/``policy`` output."""
    return [int(r) for r in re.findall(r"reqid (\d+)", text) if int(r) & TAG_MASK == TAG]


def _blocks(text: str) -> list[str]:
    """The entries of ``ip xfrm`` output: an entry's first line starts with ``src``
    (iproute2 may put a space before it), its other lines are indented by tabs."""
    blocks: list[str] = []
    for line in text.splitlines():
        if line.lstrip(" ").startswith("src "):
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def _ikegate_leftovers(guest: UmlGuest) -> str:
    """What of ikegate's is in the guest's kernel: tagged SAs and policies, routes in
    table 220 (empty string: nothing).  Socket policies of a running daemon's IKE
    sockets are not counted (they go with the sockets)."""
    states = xfrm(guest, "state")
    policies = "\n".join(block for block in _blocks(xfrm(guest, "policy")) if "socket " not in block)
    routes = guest.run("ip route show table 220; ip -6 route show table 220", check=False).stdout.strip()
    found = []
    if states.strip():
        found.append(f"SAs:\n{states}")
    if policies.strip():
        found.append(f"policies:\n{policies}")
    if routes:
        found.append(f"routes in table 220:\n{routes}")
    return "\n".join(found)


def _wait(predicate, timeout: float, what: str, details=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s\n{details()}")
        time.sleep(0.2)


# ----------------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The two guests and the client namespace (see :class:`~.uml.KernelLab`)."""
    with KernelLab(tmp_path_factory.mktemp("kernel-dp")) as built:
        yield built


@pytest.fixture(scope="module")
def seed(lab):
    """The seed configuration in the gateway guest's share directory (visible there
    at the same path), with ``dpddelay=2s`` and fast retransmits for the DPD test."""
    setup = write_seed(lab.gateway.share / "seed")
    conf = setup.ipsec_conf.read_text()
    if "dpddelay=2400s" not in conf:
        raise AssertionError("the seed ipsec.conf has no dpddelay=2400s line")
    setup.ipsec_conf.write_text(conf.replace("dpddelay=2400s", "dpddelay=2s"))
    (setup.confdir / "strongswan.conf").write_text(FAST_DPD_CONF)
    return setup


class Gateway:
    """The gateway guest's ikegate, restarted by the tests that stop or kill it."""

    def __init__(self, lab: KernelLab, seed) -> None:
        self.lab, self.seed = lab, seed
        self.daemon: GuestIkegate | None = None
        self.starts = 0

    def start(self, dataplane: str | None = "kernel") -> GuestIkegate:
        """``--dataplane kernel``, or without the flag when ``dataplane`` is None."""
        self.starts += 1
        self.daemon = GuestIkegate(self.lab.gateway, self.seed.confdir, dataplane=dataplane,
                                   tag=f"ikegate{self.starts}").start()
        return self.daemon

    def running(self) -> GuestIkegate:
        if self.daemon is None or self.daemon.proc.poll() is not None:
            return self.start()
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


@pytest.fixture(scope="module")
def gateway(lab, seed):
    gw = Gateway(lab, seed)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def on_failure(request, lab):
    """Print the guests' logs when the test failed."""
    yield
    if any(getattr(getattr(request.node, f"_interop_rep_{w}", None), "failed", False) for w in ("setup", "call")):
        print(f"\n{lab.logs()}", file=sys.stderr)


@pytest.fixture
def ns_client(request, lab, seed, tmp_path, on_failure):
    """``make()``: strongSwan (kernel-libipsec, ESP in UDP) in the client namespace,
    user1 of the seed; stopped at teardown."""
    made: list[StrongSwanClient] = []

    def make() -> StrongSwanClient:
        client = StrongSwanClient(lab.client_ns, tmp_path / f"client{len(made)}", ca_certs=[seed.root_cert],
                                  remote_addrs=LAB_GATEWAY[0])
        made.append(client)
        return client.start()

    yield make
    failed = any(getattr(getattr(request.node, f"_interop_rep_{w}", None), "failed", False)
                 for w in ("setup", "call"))
    for client in made:
        client.stop()
        if failed:
            print(f"\n===== {client.workdir.name} charon.log =====\n{client.log_text()[-6000:]}", file=sys.stderr)


def _connect(client) -> None:
    ok, out = client.initiate(timeout=30)
    assert ok, out[-3000:]


def _assert_sas_up(guest: UmlGuest, *, encap: bool) -> str:
    """Two ESP SAs of ikegate's (tagged) in the guest's kernel, with or without UDP
    encapsulation, and the policies of the virtual IPs; returns ``ip xfrm state``."""
    states = _wait(lambda: (s := xfrm(guest)).count("proto esp") == 2 and s, 10,
                   "two ESP SAs in the gateway's kernel", lambda: xfrm(guest))
    assert len(_tagged(states)) == 2, states
    assert states.count("encap type espinudp") == (2 if encap else 0), states
    assert f"dst {LAB_GATEWAY[0]}" in states and f"src {LAB_GATEWAY[0]}" in states, states
    policies = xfrm(guest, "policy")
    for vip, prefix in ((VIP4, 32), (VIP6, 128)):
        assert f"dst {vip}/{prefix}" in policies and f"src {vip}/{prefix}" in policies, policies
    assert _tagged(policies), policies
    return states


def _children(status) -> list[dict]:
    """The CHILD SAs in ``ikegate status --json`` output."""
    if isinstance(status, dict):
        if "spi_in" in status:
            return [status]
        return [c for value in status.values() for c in _children(value)]
    if isinstance(status, list):
        return [c for value in status for c in _children(value)]
    return []


def _packets(guest: UmlGuest) -> list[int]:
    """Packet counters of the guest's SAs (``ip -s xfrm state``)."""
    return [int(n) for n in re.findall(r"(\d+)\(packets\)", guest.run(["ip", "-s", "xfrm", "state"]).stdout)]


# ----------------------------------------------------------------------------------
# tests

def test_kernel_backend_is_chosen_and_says_so(gateway, on_failure):
    daemon = gateway.running()
    log = daemon.log_text()
    assert "data plane: kernel XFRM (chosen by --dataplane)" in log, log[-3000:]
    assert daemon.status()  # the control socket answers


def test_esp_in_udp_client_pings_v4_and_v6(gateway, lab, ns_client):
    guest = lab.gateway
    gateway.running()
    client = ns_client()
    _connect(client)
    _assert_sas_up(guest, encap=True)
    before = sum(_packets(guest))
    assert ping(lab.client_ns, LAB_INNER[0], source=VIP4, count=3) == 3
    assert ping(lab.client_ns, LAB_INNER[1], source=VIP6, count=3) == 3
    assert sum(_packets(guest)) >= before + 12  # 6 requests in, 6 replies out, by the kernel
    # ikegate reads the counters back from the kernel (XFRM_MSG_GETSA)
    (child,) = _children(gateway.daemon.status())
    assert child["encap"] and child["packets_in"] >= 6 and child["packets_out"] >= 6, child

    ok, out = client.terminate()
    assert ok, out
    _wait(lambda: not _ikegate_leftovers(guest), 10, "ikegate's SAs, policies and routes gone after the "
          "client disconnected", lambda: _ikegate_leftovers(guest))


def test_native_esp_client_in_a_guest_pings_v4_and_v6(gateway, lab, seed, on_failure):
    guest, peer = lab.gateway, lab.client_guest
    gateway.running()
    client = GuestStrongSwanClient(peer, ca_certs=[seed.root_cert], remote_addrs=LAB_GATEWAY[0])
    try:
        client.start()
        _connect(client)
        _assert_sas_up(guest, encap=False)
        assert "encap" not in xfrm(peer) and xfrm(peer).count("proto esp") == 2
        assert peer.ping(LAB_INNER[0], source=VIP4, count=3) == 3
        assert peer.ping(LAB_INNER[1], source=VIP6, count=3) == 3
        counts = _packets(guest)
        assert len(counts) == 2 and min(counts) >= 6, counts
        ok, out = client.terminate()
        assert ok, out
        _wait(lambda: not _ikegate_leftovers(guest), 10, "ikegate's SAs gone after the native ESP client left",
              lambda: _ikegate_leftovers(guest))
    finally:
        client.stop()


def test_dpd_clears_a_client_killed_hard(gateway, lab, ns_client):
    guest = lab.gateway
    gateway.running()
    client = ns_client()
    _connect(client)
    _assert_sas_up(guest, encap=True)
    os.kill(client.pid, signal.SIGKILL)  # no DELETE: only DPD can tell
    _wait(lambda: not _ikegate_leftovers(guest), 30, "DPD cleared the dead client's SAs",
          lambda: _ikegate_leftovers(guest) + "\n" + gateway.daemon.log_text()[-3000:])
    log = gateway.daemon.log_text()
    assert "sending DPD request" in log and "giving up after" in log, log[-3000:]


def test_sigterm_with_a_client_up_leaves_nothing(gateway, lab, ns_client):
    guest = lab.gateway
    daemon = gateway.running()
    client = ns_client()
    _connect(client)
    _assert_sas_up(guest, encap=True)
    assert daemon.stop() == 0
    assert _ikegate_leftovers(guest) == ""
    assert "lookup 220" not in guest.run(["ip", "rule"]).stdout


def test_new_start_removes_what_a_killed_gateway_left(gateway, lab, ns_client):
    guest = lab.gateway
    daemon = gateway.running()
    client = ns_client()
    _connect(client)
    _assert_sas_up(guest, encap=True)
    daemon.kill()
    stale = _ikegate_leftovers(guest)
    assert "proto esp" in stale and _tagged(stale), "the killed gateway's SAs should still be in the kernel"
    client.stop()  # its DELETE goes nowhere
    # no --dataplane flag: the default (auto) probes the guest's kernel and picks XFRM
    restarted = gateway.start(dataplane=None)
    assert _ikegate_leftovers(guest) == ""
    log = restarted.log_text()
    assert re.search(r"data plane: kernel XFRM \((?!chosen by)", log), log[-3000:]


SEED_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1!"
XCBC_ESP = "esp=aes128-aesxcbc!"  # AES-CBC-128 with AES-XCBC-96: the kernel has it, userspace ESP not
MOVED_V6 = "fd00:99::30"  # the client guest's new address in the MOBIKE test


def _statusall_esp(daemon: GuestIkegate) -> list[str]:
    reply = json.loads(daemon.ikegate("statusall", "--json", "--run-dir", daemon.run_dir).stdout)
    (conn,) = reply["conns"]
    return conn["esp"]


def _vips(client: GuestStrongSwanClient) -> tuple[str, str]:
    vips = client.virtual_ips()
    v4 = next(v for v in vips if ":" not in v)
    v6 = next(v for v in vips if ":" in v)
    return v4, v6


def test_kernel_only_esp_proposal_is_offered_with_the_kernel_backend(gateway, lab, seed, on_failure):
    guest, peer = lab.gateway, lab.client_guest
    original = seed.ipsec_conf.read_text()
    assert SEED_ESP in original
    client = GuestStrongSwanClient(peer, ca_certs=[seed.root_cert], remote_addrs=LAB_GATEWAY[0],
                                   esp_proposals="aes128-aesxcbc")
    try:
        seed.ipsec_conf.write_text(original.replace(SEED_ESP, XCBC_ESP))
        # without the kernel backend (build_runtime's default: userspace ESP) nothing is left to offer
        config, diagnostics = load_config(seed.confdir)
        assert not diagnostics.errors, diagnostics
        assert build_runtime(config, seed.confdir).conns[0].esp == ()
        # the running kernel gateway takes it on reload ...
        daemon = gateway.running()
        reloaded = daemon.ikegate("reload", "--run-dir", daemon.run_dir)
        assert "changed myvpn" in reloaded.stdout, reloaded.stdout + reloaded.stderr
        assert _statusall_esp(daemon) == ["ESP:AES_CBC_128/AES_XCBC_96/NO_EXT_SEQ"]
        client.start()
        _connect(client)
        states = _wait(lambda: (s := xfrm(guest)).count("proto esp") == 2 and s, 10,
                       "two ESP SAs in the gateway's kernel", lambda: xfrm(guest))
        assert states.count("auth-trunc xcbc(aes)") == 2 and states.count("enc cbc(aes)") == 2, states
        vip4, vip6 = _vips(client)
        assert peer.ping(LAB_INNER[0], source=vip4, count=3) == 3
        assert peer.ping(LAB_INNER[1], source=vip6, count=3) == 3
        assert min(_packets(guest)) >= 6
        # ikegate statusall names the backend and counts what it holds in the kernel
        text = daemon.ikegate("statusall", "--run-dir", daemon.run_dir).stdout
        assert "Data plane: kernel XFRM, 2 SAs and 6 policies installed" in text, text
        ok, out = client.terminate()
        assert ok, out
        # ... and a new start (run() chooses the data plane before building the runtime) too
        gateway.stop()
        restarted = gateway.start()
        assert _statusall_esp(restarted) == ["ESP:AES_CBC_128/AES_XCBC_96/NO_EXT_SEQ"]
        text = restarted.ikegate("statusall", "--run-dir", restarted.run_dir).stdout
        assert "Data plane: kernel XFRM, 0 SAs and 0 policies installed" in text, text
        assert "not offered" not in restarted.log_text()
    finally:
        client.stop()
        seed.ipsec_conf.write_text(original)
        daemon = gateway.running()
        daemon.ikegate("reload", "--run-dir", daemon.run_dir, check=False)


def test_mobike_over_ipv6_outer_addresses(gateway, lab, seed, on_failure):
    guest, peer = lab.gateway, lab.client_guest
    gateway.running()
    old = LAB_CLIENT_GUEST[1]
    client = GuestStrongSwanClient(peer, ca_certs=[seed.root_cert], remote_addrs=LAB_GATEWAY[1])
    try:
        client.start()
        _connect(client)
        states = _wait(lambda: (s := xfrm(guest)).count("proto esp") == 2 and s, 10,
                       "two ESP SAs in the gateway's kernel", lambda: xfrm(guest))
        assert f"src {old} dst {LAB_GATEWAY[1]}" in states and f"src {LAB_GATEWAY[1]} dst {old}" in states, states
        assert "encap" not in states and len(_tagged(states)) == 2, states
        vip4, vip6 = _vips(client)
        assert peer.ping(LAB_INNER[0], source=vip4, count=2) == 2
        assert peer.ping(LAB_INNER[1], source=vip6, count=2) == 2
        # the client's address changes: charon (kernel-netlink) notices and sends UPDATE_SA_ADDRESSES
        peer.run(f"ip -6 addr add {MOVED_V6}/64 dev eth0 nodad && ip -6 addr del {old}/64 dev eth0")
        moved = _wait(lambda: (s := xfrm(guest)).count(MOVED_V6) == 2 and old not in s and s, 20,
                      "the gateway's SAs moved to the client's new address",
                      lambda: xfrm(guest) + "\n" + gateway.daemon.log_text()[-3000:])
        assert f"src {MOVED_V6} dst {LAB_GATEWAY[1]}" in moved and f"src {LAB_GATEWAY[1]} dst {MOVED_V6}" in moved
        assert len(_tagged(moved)) == 2 and moved.count("proto esp") == 2, moved
        assert "(UPDATE_SA_ADDRESSES)" in gateway.daemon.log_text()
        before = sum(_packets(guest))
        assert peer.ping(LAB_INNER[0], source=vip4, count=2) == 2
        assert peer.ping(LAB_INNER[1], source=vip6, count=2) == 2
        assert sum(_packets(guest)) >= before + 8
        ok, out = client.terminate()
        assert ok, out
        _wait(lambda: not _ikegate_leftovers(guest), 10, "ikegate's SAs gone after the moved client left",
              lambda: _ikegate_leftovers(guest))
    finally:
        client.stop()
        peer.run(f"ip -6 addr add {old}/64 dev eth0 nodad; ip -6 addr del {MOVED_V6}/64 dev eth0", check=False)
