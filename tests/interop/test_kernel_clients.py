"""Independent IKEv2 clients against ikegate (issue 9): openiked 7.2 and libreswan 4.10,
each in a user-mode Linux guest (a kernel with ESP, :mod:`.uml`), connect to ikegate in a
namespace and carry pings to the host behind it.

The network (:class:`.kernel_clients.Lab`): the gateway and an inner host as in the other
interop tests; the guests sit on a LAN behind a router namespace, with a routed IPv4
subnet (native ESP), a masqueraded one (nftables ``masquerade``: NAT-T) and a routed
IPv6 subnet.  One gateway serves the whole module (conns ``psk-both``, ``gw-rekey``,
``pubkey-pss``, ``psk``, ``pubkey`` of :func:`.kernel_clients.write_confdir`; DPD every
5 s with fast retransmissions), one guest per client program.

Each *session* (a client daemon with one configuration) is a module-scoped fixture,
parametrized indirectly: pytest runs the tests of one session together and tears it
down before the next one starts in the same guest.  Sessions:

==========================  ===============================================================
libreswan ``psk``           PSK, ``leftsubnet=0.0.0.0/0``; short lifetimes (CHILD rekey
                            every 5 s with PFS, IKE rekey after 9 s), liveness every 2 s
libreswan ``nat``           PSK from the masqueraded subnet; no client DPD
libreswan ``mobike``        PSK; the client moves to another address
libreswan ``defaults``      PSK with libreswan's own traffic selectors (TSi = its address)
libreswan ``rsa-pss``       RSA client certificate, RSASSA-PSS signatures, fragmented
libreswan ``gw-rekey``      PSK; the gateway rekeys the CHILD SA (libreswan wants PFS)
openiked ``psk``            PSK both ways (conn ``psk-both``); ``from dynamic``; policies
                            for IPv4 (over IPv4) and IPv6 (over IPv6)
openiked ``cert``           RSA client certificate; ``from dynamic``; IPv4 and IPv6;
                            CHILD rekeys after ~7 s, IKE rekeys after ~13 s
openiked ``nat``            RSA certificate from the masqueraded subnet, IPv4
openiked ``asym``           PSK, but conn ``psk``: the gateway answers with its certificate,
                            which openiked refuses
==========================  ===============================================================

The interop table of the README lists these results.  When a test fails for real, the running sessions' gateway refusals and logs are printed.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .gateway import IkegateGateway, ikegate_daemon_missing
from .kernel_clients import (DNS_SERVERS, INNER_V4, INNER_V6, LIBRESWAN_CERT, LIBRESWAN_GW_REKEY, LIBRESWAN_MOVED,
                             LIBRESWAN_PSK, NATTED_NET, OPENIKED_ASYM, OPENIKED_CERT, OPENIKED_PSK, POOL_V4, POOL_V6,
                             ROUTED_NET, ROUTER_OUTER_V4, Lab, LibreswanSession, OpenikedSession, Pki, Session,
                             make_pki, new_psk, ping_through, wait_until, write_confdir, xfrm_esp_spis)
from .uml import UmlGuest, libreswan_missing, openiked_missing, uml_missing

REASON = uml_missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"user-mode Linux unavailable: {REASON}")

# -- the gateway, the guests -------------------------------------------------------------------------

@dataclass
class World:
    lab: Lab
    gateway: IkegateGateway
    pki: Pki
    psks: dict[str, str]
    workdir: Path
    sessions: list[Session] = field(default_factory=list)  # running now (for failure reports)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    reason = ikegate_daemon_missing()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("kernel-clients")
    pki = make_pki([OPENIKED_CERT.identity, LIBRESWAN_CERT.identity])
    psks = {c.identity: new_psk() for c in (OPENIKED_PSK, OPENIKED_ASYM, LIBRESWAN_PSK, LIBRESWAN_GW_REKEY)}
    confdir = write_confdir(workdir / "confdir", pki, psks)
    lab = Lab()
    gateway = None
    try:
        lab.build()
        gateway = IkegateGateway(lab.gateway_ns, confdir, workdir / "run").start()
        yield World(lab, gateway, pki, psks, workdir)
    finally:
        if gateway is not None:
            gateway.stop()
        lab.destroy()


def _guest(world: World, name: str, client) -> UmlGuest:
    guest = world.lab.guest(world.workdir / name, client)
    try:
        guest.start()
    except BaseException:
        guest.stop()
        raise
    return guest


@pytest.fixture(scope="module")
def libreswan_guest(world):
    reason = libreswan_missing()
    if reason:
        pytest.skip(reason)
    guest = _guest(world, "libreswan", LIBRESWAN_PSK)
    yield guest
    guest.stop()


@pytest.fixture(scope="module")
def openiked_guest(world):
    reason = openiked_missing()
    if reason:
        pytest.skip(reason)
    guest = _guest(world, "openiked", OPENIKED_PSK)
    yield guest
    guest.stop()


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    """When a test fails (not an expected failure), print what the running sessions logged."""
    yield
    report = getattr(request.node, "_interop_rep_call", None)
    if report is not None and report.failed:
        world = request.node.funcargs.get("world")
        for session in (world.sessions if world else []):
            print(session.explain(f"===== session {session.client.name} ====="), file=sys.stderr)


# -- sessions ------------------------------------------------------------------------------------

#: libreswan timers of the "psk" session: CHILD rekey every 5 s (PFS: libreswan's
#: default), IKE rekey after 9 s, liveness checks every 2 s.
LIBRESWAN_TIMERS = "salifetime=10s\nrekeymargin=5s\nrekeyfuzz=0%\nikelifetime=14s\ndpddelay=2s\ndpdtimeout=10s"


def _libreswan_session(world: World, guest: UmlGuest, kind: str) -> LibreswanSession:
    args = dict(gateway=world.gateway, guest=guest, pki=world.pki)
    psk = world.psks[LIBRESWAN_PSK.identity]
    if kind == "psk":
        return LibreswanSession(client=LIBRESWAN_PSK, psk=psk, extra=LIBRESWAN_TIMERS, **args)
    if kind == "nat":
        return LibreswanSession(client=LIBRESWAN_PSK, psk=psk, left=LIBRESWAN_PSK.natted, **args)
    if kind == "mobike":
        return LibreswanSession(client=LIBRESWAN_PSK, psk=psk, **args)
    if kind == "defaults":
        return LibreswanSession(client=LIBRESWAN_PSK, psk=psk, leftsubnet=None, **args)
    if kind == "rsa-pss":
        return LibreswanSession(client=LIBRESWAN_CERT, auth="rsa-pss", **args)
    if kind == "gw-rekey":
        return LibreswanSession(client=LIBRESWAN_GW_REKEY, psk=world.psks[LIBRESWAN_GW_REKEY.identity], **args)
    raise ValueError(kind)


def _openiked_session(world: World, guest: UmlGuest, kind: str) -> OpenikedSession:
    args = dict(gateway=world.gateway, guest=guest, pki=world.pki)
    if kind == "psk":
        return OpenikedSession(client=OPENIKED_PSK, psk=world.psks[OPENIKED_PSK.identity], **args)
    if kind == "cert":
        return OpenikedSession(client=OPENIKED_CERT, lifetime=8, ikelifetime=14, **args)
    if kind == "nat":
        return OpenikedSession(client=OPENIKED_CERT, local=OPENIKED_CERT.natted, ipv6=False, **args)
    if kind == "asym":
        return OpenikedSession(client=OPENIKED_ASYM, psk=world.psks[OPENIKED_ASYM.identity], ipv6=False, **args)
    raise ValueError(kind)


@pytest.fixture(scope="module")
def libreswan(request, world, libreswan_guest):
    """A running libreswan session, by kind (indirect parameter)."""
    session = _libreswan_session(world, libreswan_guest, request.param)
    world.sessions.append(session)
    try:
        yield session.start()
    finally:
        session.close()
        world.sessions.remove(session)
        if request.param == "mobike":  # back to the address the other sessions use
            libreswan_guest.run(f"ip addr add {LIBRESWAN_PSK.routed}/24 dev eth0; "
                                f"ip addr del {LIBRESWAN_MOVED}/24 dev eth0; "
                                f"ip route replace default via {ROUTED_NET[1]}", check=False)


@pytest.fixture(scope="module")
def openiked(request, world, openiked_guest):
    """A running openiked session, by kind (indirect parameter); ``asym`` is only started
    (the client refuses the gateway)."""
    session = _openiked_session(world, openiked_guest, request.param)
    world.sessions.append(session)
    # behind the NAT: the masqueraded subnet's router as the default route (iked takes
    # the source of its route to the gateway as its address, whatever 'local' says)
    router = NATTED_NET[1] if request.param == "nat" else ROUTED_NET[1]
    openiked_guest.run(f"ip route replace default via {router}")
    try:
        yield session.start(expect_refusal=request.param == "asym")
    finally:
        session.close()
        world.sessions.remove(session)
        openiked_guest.run(f"ip route replace default via {ROUTED_NET[1]}")


def _lsw(*kinds, marks=()):
    return pytest.mark.parametrize("libreswan", [pytest.param(k, marks=marks) for k in kinds], indirect=True)


def _oi(*kinds, marks=()):
    return pytest.mark.parametrize("openiked", [pytest.param(k, marks=marks) for k in kinds], indirect=True)


def _only(sas: list[dict] | None, what: str) -> dict:
    assert sas and len(sas) == 1, f"expected one {what}, got {sas}"
    return sas[0]


def _in_pool(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip in ipaddress.ip_network(POOL_V4 if ip.version == 4 else POOL_V6)


#: A DPD request of the gateway and, a few lines further, the answer on the same IKE SA
#: (short lifetimes rekey the IKE SA meanwhile: whichever SA it is).
ANSWERED_DPD = r"<([\w-]+\|\d+)> sending DPD request\n(?:.*\n){0,8}?.*<\1> parsed INFORMATIONAL response"


def _log_has(session: Session, pattern: str, timeout: float) -> re.Match | None:
    return wait_until(lambda: re.search(pattern, session.gateway_log()), timeout)


def _installed(sa: dict) -> list[dict]:
    """The CHILD SAs of ``sa`` in use: a replaced one stays listed (``DELETED``) for
    ``charon.delete_rekeyed_delay`` (5 s) for packets still on their way, as in strongSwan."""
    return [child for child in sa["children"] if child["state"] == "INSTALLED"]


def _one_child(session: Session, old_spis: set[str], timeout: float) -> dict | None:
    """The client's single IKE SA once it has exactly one installed CHILD SA, none of
    ``old_spis``."""
    def settled():
        sas = session.established()
        if sas and len(sas) == 1 and len(_installed(sas[0])) == 1 \
                and _installed(sas[0])[0]["spi_in"] not in old_spis:
            return sas[0]
        return None
    return wait_until(settled, timeout)


# -- libreswan ---------------------------------------------------------------------------------------

@_lsw("psk")
def test_libreswan_psk_virtual_ip_dns_ping(libreswan):
    """PSK client (``leftauth=secret``), the gateway by its certificate (``rightauth=rsasig``):
    a virtual IPv4 address, the DNS servers, native ESP, pings through the tunnel."""
    vip = libreswan.virtual_ip()
    assert _in_pool(vip)
    assert f"received INTERNAL_IP4_DNS {DNS_SERVERS[0]}" in libreswan.up_output
    sa = _only(libreswan.established(), "IKE SA")
    assert sa["conn"] == "psk" and sa["remote"]["host"] == LIBRESWAN_PSK.routed
    assert vip in sa["virtual_ips"] and not sa["nat"]["remote"]
    child = sa["children"][0]
    assert child["remote_ts"] == [f"{vip}/32"] and not child["encap"]
    assert f"authentication of '{LIBRESWAN_PSK.identity}' with pre-shared key successful" in libreswan.gateway_log()
    assert ping_through(libreswan.guest, INNER_V4, vip) == 3


@_lsw("psk")
def test_libreswan_liveness_checks_answered(libreswan):
    """libreswan's DPD (``dpddelay=2s``): empty INFORMATIONAL requests, each answered
    (libreswan starts them some seconds after the tunnel came up)."""
    pattern = r"<psk\|\d+> parsed INFORMATIONAL request \d+ \[ \]"
    assert wait_until(lambda: len(re.findall(pattern, libreswan.gateway_log())) >= 2, 20), \
        libreswan.explain("no liveness checks from libreswan")
    assert len(re.findall(r"<psk\|\d+> generating INFORMATIONAL response \d+ \[ \]", libreswan.gateway_log())) >= 2
    assert "has not responded" not in libreswan.client_log()


@_lsw("psk")
def test_libreswan_child_rekey_with_pfs(libreswan):
    """libreswan rekeys its CHILD SA every 5 s with a KE payload (PFS, its default): the
    gateway answers with one of the ``esp=`` groups, the old SA goes, traffic flows."""
    first = libreswan.first_sas[0]["children"][0]
    assert _log_has(libreswan, r"parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]", 15), \
        libreswan.explain("no CHILD rekey with KE")
    assert _log_has(libreswan, r"selected proposal: ESP:\S+/(MODP|ECP|CURVE)_\d+", 5)
    sa = _one_child(libreswan, {first["spi_in"]}, 10)
    assert sa, libreswan.explain("the rekeyed CHILD SA did not replace the old one")
    assert first["spi_in"] not in xfrm_esp_spis(libreswan.guest)
    assert ping_through(libreswan.guest, INNER_V4, libreswan.virtual_ip()) == 3


@_lsw("psk")
def test_libreswan_ike_rekey(libreswan):
    """libreswan rekeys its IKE SA (``ikelifetime=14s``, margin 5 s): one IKE SA again,
    the same virtual IP, traffic flows."""
    first = libreswan.first_sas[0]
    assert _log_has(libreswan, rf"IKE_SA psk\[{first['id']}\] rekeyed to psk\[\d+\]", 20), \
        libreswan.explain("no IKE rekey")
    sa = wait_until(lambda: (sas := libreswan.established()) and len(libreswan.sas()) == 1
                    and sas[0]["spi_i"] != first["spi_i"] and sas[0], 10)
    assert sa, libreswan.explain("the old IKE SA is still there")
    assert sa["virtual_ips"] == first["virtual_ips"]
    assert ping_through(libreswan.guest, INNER_V4, libreswan.virtual_ip()) == 3


@_lsw("psk")
def test_libreswan_delete(libreswan):
    """``ipsec auto --down``: the client's DELETE ends the IKE SA on the gateway, its
    lease goes offline, the guest's kernel SAs are gone."""
    sa = _only(libreswan.established(), "IKE SA")
    libreswan.swan.down("ikg")
    assert wait_until(lambda: not libreswan.sas(), 10), libreswan.explain("the SA outlived the DELETE")
    log = libreswan.gateway_log()
    assert f"received DELETE for IKE_SA psk[{sa['id']}]" in log
    assert f"lease {', '.join(sa['virtual_ips'])} of '{LIBRESWAN_PSK.identity}' went offline" in log
    assert wait_until(lambda: not xfrm_esp_spis(libreswan.guest), 5)


@_lsw("nat")
def test_libreswan_behind_nat(libreswan):
    """From the masqueraded subnet: NAT detected, IKE and ESP on UDP 4500, pings."""
    sa = _only(libreswan.established(), "IKE SA")
    assert sa["remote"]["host"] == ROUTER_OUTER_V4 and sa["local"]["port"] == 4500  # (the NAT may pick any port)
    assert sa["nat"]["remote"] and sa["children"][0]["encap"]
    assert "remote host is behind NAT" in libreswan.gateway_log()
    assert ping_through(libreswan.guest, INNER_V4, libreswan.virtual_ip()) == 3


@_lsw("nat")
def test_libreswan_answers_gateway_dpd(libreswan):
    """The gateway's DPD (``dpddelay=5s``, the client quiet): libreswan answers each."""
    sa = _only(libreswan.established(), "IKE SA")
    assert _log_has(libreswan, ANSWERED_DPD, 15), libreswan.explain("no answered DPD")
    assert f"{libreswan.sa_prefix(sa)} retransmit" not in libreswan.gateway_log()
    assert libreswan.established()


@_lsw("nat")
def test_libreswan_dead_client_cleared(libreswan):
    """pluto killed: the gateway's DPD goes unanswered (5 s, then 3 tries 1 s apart) and
    ``dpdaction=clear`` ends the SA and takes the lease offline."""
    sa = _only(libreswan.established(), "IKE SA")
    libreswan.swan.proc.signal(signal.SIGKILL)
    assert wait_until(lambda: not libreswan.sas(), 25), libreswan.explain("the dead client's SA stays")
    log = libreswan.gateway_log()
    assert f"{libreswan.sa_prefix(sa)} giving up after 2 retransmits" in log
    assert f"lease {', '.join(sa['virtual_ips'])} of '{LIBRESWAN_PSK.identity}' went offline" in log


@_lsw("mobike")
def test_libreswan_mobike_moves_the_sas_in_place(libreswan):
    """The client's address changes: libreswan sends UPDATE_SA_ADDRESSES from the new
    one, the gateway moves the IKE and CHILD SAs (same SPIs, no rekey) and the pings
    resume within seconds."""
    guest, vip = libreswan.guest, libreswan.virtual_ip()
    before = _only(libreswan.established(), "IKE SA")
    assert before["mobike"]
    assert ping_through(guest, INNER_V4, vip) == 3
    # a new address, the old one gone (promoted, or the kernel drops the whole subnet),
    # and the default route back, as DHCP would give it
    guest.run(f"sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1; "
              f"ip addr add {LIBRESWAN_MOVED}/24 dev eth0; ip addr del {LIBRESWAN_PSK.routed}/24 dev eth0; "
              f"ip route replace default via {ROUTED_NET[1]}")
    moved = time.monotonic()
    assert _log_has(libreswan, rf"peer moved to {re.escape(LIBRESWAN_MOVED)}\[500\] \(UPDATE_SA_ADDRESSES\)", 15), \
        libreswan.explain("no UPDATE_SA_ADDRESSES")
    resumed = wait_until(lambda: ping_through(guest, INNER_V4, vip, count=1), 10, interval=0)
    assert resumed, libreswan.explain("no ping after the move")
    print(f"\npings resumed {time.monotonic() - moved:.1f} s after the address change")
    after = _only(libreswan.established(), "IKE SA")
    assert after["id"] == before["id"] and after["remote"]["host"] == LIBRESWAN_MOVED
    assert [c["spi_in"] for c in after["children"]] == [c["spi_in"] for c in before["children"]]
    assert f"src {LIBRESWAN_MOVED} dst" in guest.run(["ip", "xfrm", "state"]).stdout
    assert ping_through(guest, INNER_V4, vip) == 3


@_lsw("defaults")
def test_libreswan_default_traffic_selectors(libreswan):
    """Without ``leftsubnet`` libreswan proposes its own address as TSi: the gateway
    answers with the virtual IP instead."""
    vip = libreswan.virtual_ip()
    sa = _only(libreswan.established(), "IKE SA")
    assert sa["children"][0]["remote_ts"] == [f"{vip}/32"]
    assert ping_through(libreswan.guest, INNER_V4, vip) == 3


@_lsw("rsa-pss")
def test_libreswan_rsa_pss_certificate_fragmented(libreswan):
    """An RSA client certificate: IKE_AUTH is fragmented both ways (padded certificates);
    conn ``pubkey-pss`` takes only an RSASSA-PSS AUTH signature (RFC 7427), so libreswan's
    is one."""
    sa = _only(libreswan.established(), "IKE SA")
    assert sa["conn"] == "pubkey-pss"
    log = libreswan.gateway_log()
    assert "reassembled fragmented IKE message" in log
    assert re.search(r"sending \d+ fragments", log)
    assert re.search(rf"authentication of '{re.escape(LIBRESWAN_CERT.identity)}' .*successful", log)
    assert ping_through(libreswan.guest, INNER_V4, libreswan.virtual_ip()) == 3


@_lsw("gw-rekey")
def test_libreswan_gateway_rekeys_child_with_pfs(libreswan):
    """``rekey=yes``, ``lifetime=10s``, ``margintime=5s``: the gateway rekeys the CHILD SA
    itself, with a KE of the group libreswan wants; the tunnel keeps working."""
    first = libreswan.first_sas[0]["children"][0]
    assert _log_has(libreswan, r"generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]", 10)
    sa = _one_child(libreswan, {first["spi_in"]}, 10)
    assert sa, libreswan.explain("the gateway's rekey did not replace the CHILD SA")
    assert "INVALID_SYNTAX" not in libreswan.client_log()
    assert ping_through(libreswan.guest, INNER_V4, libreswan.virtual_ip()) == 3


# -- openiked ----------------------------------------------------------------------------------------

@_oi("psk")
def test_openiked_psk_virtual_addresses_dns_ping(openiked):
    _check_openiked_addresses(openiked)


@_oi("cert")
def test_openiked_certificate_virtual_addresses_dns_ping(openiked):
    _check_openiked_addresses(openiked)


def _check_openiked_addresses(openiked: OpenikedSession) -> None:
    """``from dynamic``: a virtual IPv4 address (policy ikg4) and IPv6 address (ikg6,
    over IPv6), put on eth0 by iked; the DNS server; pings over both."""
    v4, v6 = openiked.virtual_ip(4), openiked.virtual_ip(6)
    assert _in_pool(v4) and _in_pool(v6)
    assert openiked.sa_for(4)["children"][0]["remote_ts"] == [f"{v4}/32"]
    assert openiked.sa_for(6)["children"][0]["remote_ts"] == [f"{v6}/128"]
    addresses = openiked.guest.run(["ip", "addr", "show", "eth0"]).stdout
    assert f"{v4}/32" in addresses and f"{v6}/128" in addresses
    assert f"obtained DNS: {DNS_SERVERS[0]}" in openiked.client_log()
    assert ping_through(openiked.guest, INNER_V4, v4) == 3
    assert ping_through(openiked.guest, INNER_V6, v6) == 3


@_oi("cert")
def test_openiked_certificate_fragmented(openiked):
    """The client certificate and the gateway's chain (padded) travel in IKE fragments."""
    log = openiked.gateway_log()
    assert "reassembled fragmented IKE message" in log
    assert re.search(r"sending \d+ fragments", log)
    assert all(sa["conn"] == "pubkey" for sa in openiked.established(2))


@_oi("cert")
def test_openiked_answers_gateway_dpd(openiked):
    """The gateway's DPD (``dpddelay=5s``; iked's own checks are 60 s apart): answered."""
    assert _log_has(openiked, ANSWERED_DPD, 15), openiked.explain("no answered DPD")


@_oi("cert")
def test_openiked_child_rekey(openiked):
    """``lifetime 8``: iked rekeys each CHILD SA (no PFS by default); old SAs go, pings flow."""
    first = {sa["children"][0]["spi_in"] for sa in openiked.first_sas}
    assert _log_has(openiked, r"parsed CREATE_CHILD_SA request \d+ \[ SA No TSi TSr N\(REKEY_SA\) \]", 15), \
        openiked.explain("no CHILD rekey")
    assert wait_until(lambda: not first & {c["spi_in"] for sa in openiked.established(2) or []
                                           for c in _installed(sa)}, 15), openiked.explain("old CHILD SAs stay")
    assert not first & xfrm_esp_spis(openiked.guest)
    assert ping_through(openiked.guest, INNER_V4, openiked.virtual_ip(4)) == 3
    assert ping_through(openiked.guest, INNER_V6, openiked.virtual_ip(6)) == 3


@_oi("cert")
def test_openiked_ike_rekey(openiked):
    """``ikelifetime 14``: iked rekeys both IKE SAs; the virtual addresses stay."""
    first = {sa["id"]: sa for sa in openiked.first_sas}
    for sa_id in first:
        assert _log_has(openiked, rf"IKE_SA pubkey\[{sa_id}\] rekeyed to pubkey\[\d+\]", 20), \
            openiked.explain("no IKE rekey")
    sas = wait_until(lambda: (sas := openiked.established(2)) and len(openiked.sas()) == 2
                     and not {sa["id"] for sa in sas} & set(first) and sas, 10)
    assert sas, openiked.explain("old IKE SAs stay")
    assert sorted(v for sa in sas for v in sa["virtual_ips"]) == sorted(v for sa in first.values()
                                                                         for v in sa["virtual_ips"])
    assert ping_through(openiked.guest, INNER_V4, openiked.virtual_ip(4)) == 3
    assert ping_through(openiked.guest, INNER_V6, openiked.virtual_ip(6)) == 3


@_oi("cert")
def test_openiked_gateway_delete(openiked):
    """``ikegate kill``: the gateway sends DELETE for both IKE SAs, iked answers and
    removes their kernel SAs (and, its policies being ``active``, connects again)."""
    from ikegate.control.client import request

    sas = openiked.established(2)
    spis = {c["spi_in"] for sa in sas for c in sa["children"]}
    seen = len(openiked.client_log())
    assert request(openiked.gateway.run_dir, "kill", target=OPENIKED_CERT.identity)["ok"]
    for sa in sas:
        prefix = re.escape(openiked.sa_prefix(sa))
        assert _log_has(openiked, rf"{prefix} generating INFORMATIONAL request \d+ \[ D \]", 5)
    assert wait_until(lambda: openiked.client_log()[seen:].count("ikev2_ikesa_recv_delete: received delete") >= 2,
                      10), \
        openiked.explain("iked did not answer both DELETEs")
    assert wait_until(lambda: not spis & xfrm_esp_spis(openiked.guest), 10), openiked.explain("kernel SAs stay")
    assert not {sa["id"] for sa in sas} & {sa["id"] for sa in openiked.sas()}


@_oi("nat")
def test_openiked_behind_nat(openiked):
    sa = openiked.sa_for(4)
    assert sa["remote"]["host"] == ROUTER_OUTER_V4 and sa["local"]["port"] == 4500  # (the NAT may pick any port)
    assert sa["nat"]["remote"] and sa["children"][0]["encap"]
    assert ping_through(openiked.guest, INNER_V4, openiked.virtual_ip(4)) == 3


@_oi("asym")
def test_openiked_refusing_our_auth_ends_the_sa(openiked):
    """openiked with a PSK refuses the gateway's certificate AUTH (it wants a PSK back)
    and says so in an INFORMATIONAL AUTHENTICATION_FAILED: the gateway deletes that IKE
    SA at once and takes its lease offline, as strongSwan does."""
    match = _log_has(openiked, r"<psk\|(\d+)> received AUTHENTICATION_FAILED error notify", 20)
    assert match, openiked.explain("openiked sent no AUTHENTICATION_FAILED")
    sa_id = int(match.group(1))
    assert wait_until(lambda: sa_id not in {sa["id"] for sa in openiked.sas()}, 3), \
        openiked.explain(f"IKE SA {sa_id} outlived the AUTHENTICATION_FAILED notify")
    assert re.search(rf"<psk\|{sa_id}> lease \S+ of '{re.escape(OPENIKED_ASYM.identity)}' went offline",
                     openiked.gateway_log())
