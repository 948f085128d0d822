"""The kernel data plane (:mod:`ikegate.dataplane.xfrm`) against a real kernel's XFRM.

This machine's kernel has no ESP, so everything kernel-side runs in one user-mode Linux
guest (``tests/interop/uml.py``) shared by the module; our code runs there from the
repository's venv (:data:`GUEST_SCRIPT`, written to the guest's share directory).

* the probe says yes in the guest (and no, with a reason, on this host);
* what :class:`KernelDataPlane` installs is what ``ip xfrm state``/``ip xfrm policy``
  (iproute2, an independent decoder) show: algorithms, keys, ICV/truncation lengths,
  ESP-in-UDP ports, ESN and replay window, tunnel mode, the reqid tag, out/in/fwd policies
  with their templates, the routes in table 220 and the rule;
* SAs and policies made with ``ip xfrm`` decode through our dump to the same fields;
* a new run's ``start()`` removes a "crashed" run's tagged leftovers, ``stop()`` leaves
  nothing, untagged state of others stays;
* traffic: a datagram the guest sends leaves as ESP that scapy (independent AES-GCM ESP)
  decrypts with the key ikegate installed, an ESP packet scapy makes is decrypted by the
  guest kernel and delivered; counters count both and report the last use; a MOBIKE-style
  update (new port, ESP-in-UDP) keeps the sequence numbers; ESP-in-UDP then arrives on a
  port-4500 socket prepared like the daemon's, from a new NAT port, and is opened and
  reported as a mapping change (XFRM_MSG_MAPPING);
* ``ikegate start`` in the guest picks the kernel data plane (auto), logs why, puts bypass
  socket policies on the IKE sockets and leaves nothing at shutdown.
"""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ikegate.config.strongswan_conf import load_strongswan_conf
from ikegate.daemon.main import make_dataplane
from ikegate.dataplane.recording import RecordingDataPlane
from ikegate.dataplane.xfrm.kernel import REQID_TAG, KernelDataPlane, is_tagged, kernel_esp_available, kernel_reqid

from interop.netns import Namespace
from interop.uml import VENV_PYTHON, UmlGuest, capture_tap, esp_from, send_ip, uml_missing

REASON = uml_missing()
needs_uml = pytest.mark.skipif(REASON is not None, reason=f"user-mode Linux unavailable: {REASON}")

GUEST_V4, NS_V4 = "10.99.0.10", "10.99.0.1"
GUEST_V6, NS_V6 = "fd00:99::10", "fd00:99::1"
BEHIND_NS = "10.99.1.1"  # a made-up host behind the namespace, reached through the SA

# -- host-side: tag, probe, backend choice ---------------------------------------------------


def test_reqid_tag():
    assert kernel_reqid(1) == 0x49470001 == 1229389825
    assert kernel_reqid(0x12345) == REQID_TAG | 0x2345
    assert is_tagged(kernel_reqid(7)) and not is_tagged(7) and not is_tagged(0x49480001)


def test_backend_choice_flag_setting_and_probe(tmp_path, caplog):
    conf = tmp_path / "strongswan.conf"
    conf.write_text("ikegate {\n  dataplane = none\n}\n")
    settings = load_strongswan_conf(conf)
    caplog.set_level("INFO", logger="ikegate")
    # the setting decides when the flag is not given; the flag wins when it is
    assert isinstance(make_dataplane(None, None, settings=settings), RecordingDataPlane)
    assert "chosen by ikegate.dataplane in strongswan.conf" in caplog.text
    assert isinstance(make_dataplane("kernel", None, settings=settings), KernelDataPlane)
    assert "data plane: kernel XFRM (chosen by --dataplane)" in caplog.text
    # auto follows the probe
    available, reason = kernel_esp_available()
    assert isinstance(reason, str) and reason
    caplog.clear()
    chosen = make_dataplane("auto", None)
    if available:
        assert chosen.name == "kernel" and "data plane: kernel XFRM (ESP available in the kernel)" in caplog.text
    else:
        assert chosen.name != "kernel"
        assert f"kernel has no ESP: {reason}" in caplog.text


# -- the guest ------------------------------------------------------------------------------

# Runs in the guest: ``python xfrm_guest.py COMMAND [JSON]``, prints JSON.
GUEST_SCRIPT = r'''
import json, socket, subprocess, sys, time

from ikegate.dataplane.xfrm import messages as xm
from ikegate.dataplane.xfrm.kernel import KernelDataPlane, kernel_esp_available, prepare_ike_socket
from ikegate.dataplane.xfrm.netlink import NetlinkSocket
from ikegate.ike.events import ChildSaInfo, Endpoint
from ikegate.ike.ts import Selector


def info(spec):
    keys = {k: bytes.fromhex(spec.get(k, "")) for k in ("key_in_encr", "key_in_integ", "key_out_encr", "key_out_integ")}
    return ChildSaInfo(
        ike_unique_id=1, child_unique_id=spec.get("child", 1), reqid=spec["reqid"], conn="test",
        spi_in=spec["spi_in"], spi_out=spec["spi_out"], protocol=3, encr_id=spec["encr_id"],
        encr_key_bits=spec["key_bits"], integ_id=spec.get("integ_id"), esn=spec.get("esn", False),
        local=Endpoint(*spec["local"]), remote=Endpoint(*spec["remote"]), udp_encap=spec.get("udp_encap", False),
        local_ts=tuple(Selector.from_network(n) for n in spec["local_ts"]),
        remote_ts=tuple(Selector.from_network(n) for n in spec["remote_ts"]),
        virtual_ips=(), local_id="gw", remote_id="client", eap_id=None, **keys)


def dump():
    out = {"states": [], "policies": []}
    with NetlinkSocket() as sock:
        for m in sock.dump(xm.Message(xm.XFRM_MSG_GETSA)):
            sa = m.body
            aead, crypt, auth = (xm.find(m.attrs, c) for c in (xm.AlgoAead, xm.AlgoCrypt, xm.AlgoAuth))
            encap, esn = xm.find(m.attrs, xm.EncapTmpl), xm.find(m.attrs, xm.ReplayEsn)
            out["states"].append({
                "src": sa.saddr, "dst": sa.daddr, "spi": sa.spi, "proto": sa.proto, "reqid": sa.reqid,
                "mode": sa.mode, "family": sa.family, "replay_window": sa.replay_window, "flags": sa.flags,
                "aead": aead and [aead.name, aead.key.hex(), aead.icv_len],
                "crypt": crypt and [crypt.name, crypt.key.hex()],
                "auth": auth and [auth.name, auth.key.hex(), auth.trunc_len],
                "encap": encap and [encap.type, encap.sport, encap.dport],
                "esn": esn and [esn.replay_window, esn.oseq, esn.seq]})
        for m in sock.dump(xm.Message(xm.XFRM_MSG_GETPOLICY)):
            p = m.body
            tmpls = xm.find(m.attrs, xm.Templates)
            out["policies"].append({
                "src": f"{p.sel.saddr}/{p.sel.prefixlen_s}", "dst": f"{p.sel.daddr}/{p.sel.prefixlen_d}",
                "dir": p.dir, "proto": p.sel.proto, "dport": p.sel.dport, "priority": p.priority,
                "action": p.action,
                "tmpl": [[t.saddr, t.daddr, t.reqid, t.mode, t.proto] for t in tmpls.templates] if tmpls else []})
    return out


def counters(c):
    now = time.monotonic()
    return c and {"packets_in": c.packets_in, "bytes_in": c.bytes_in, "packets_out": c.packets_out,
                  "bytes_out": c.bytes_out, "last_in_age": now - c.last_in if c.last_in else None,
                  "last_out_age": now - c.last_out if c.last_out else None}


def traffic(args):
    dp = KernelDataPlane()
    dp.start()
    sa = info(args["sa"])
    dp.install(sa)
    result = {}
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("0.0.0.0", args["listen_port"]))
    receiver.settimeout(15)
    open(args["ready_file"], "w").write("ready\n")
    time.sleep(0.2)
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(args["payload"].encode(), (args["target"], args["target_port"]))
    try:
        data, peer = receiver.recvfrom(2048)
        result["received"] = [peer[0], data.decode()]
    except socket.timeout:
        result["received"] = None
    result["counters"] = counters(dp.counters(sa.spi_in))
    dp.update(info(dict(args["sa"], remote=args["moved_remote"], udp_encap=True)))
    result["after_update"] = dump()
    result["ip_after_update"] = subprocess.run(["ip", "-s", "xfrm", "state"], capture_output=True, text=True).stdout
    result["counters_after_update"] = counters(dp.counters(sa.spi_in))
    # ESP-in-UDP arriving on a port-4500 socket prepared as the daemon's, from a new port
    natt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    natt.bind(("0.0.0.0", 4500))
    prepare_ike_socket(natt, natt=True)
    dp.listen_mappings()
    open(args["ready_file"] + "2", "w").write("ready\n")
    try:
        data, peer = receiver.recvfrom(2048)
        result["received_encap"] = [peer[0], data.decode()]
    except socket.timeout:
        result["received_encap"] = None
    deadline = time.monotonic() + 5
    moved = []
    while not moved and time.monotonic() < deadline:
        moved = dp.mappings()
        time.sleep(0.05)
    result["mappings"] = [[spi, list(src)] for spi, src in moved]
    natt.close()  # its socket policies go with it
    dp.stop()
    result["after_stop"] = dump()
    print(json.dumps(result))


def main():
    command, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    if command == "probe":
        sockets = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            s = socket.socket(family, socket.SOCK_DGRAM)
            prepare_ike_socket(s, natt=True)
            sockets[int(family)] = s.getsockopt(17, 100)  # SOL_UDP, UDP_ENCAP
        print(json.dumps({"probe": kernel_esp_available(), "udp_encap": sockets}))
    elif command == "install":  # and leave it all behind, as a crashed run would
        dp = KernelDataPlane()
        dp.start()
        for spec in args["sas"]:
            dp.install(info(spec))
        print(json.dumps(dump()))
    elif command == "restart":  # a new run: start() cleans up, stop() leaves nothing
        dp = KernelDataPlane()
        dp.start()
        after_start = dump()
        dp.stop()
        print(json.dumps({"after_start": after_start, "after_stop": dump()}))
    elif command == "refused":  # SAs the kernel refuses: logged, nothing left behind
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        dp = KernelDataPlane()
        dp.start()
        for spec in args["sas"]:
            dp.install(info(spec))
        result = {"installed": list(dp.installed), "dump": dump(),
                  "routes": subprocess.run(["ip", "route", "show", "table", "220"], capture_output=True,
                                           text=True).stdout}
        dp.stop()
        print(json.dumps(result))
    elif command == "reqids":  # live SAs 65536 reqids apart; a full reqid table refuses
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        dp = KernelDataPlane(routes=False)
        dp.start()
        first, second, third = (info(spec) for spec in args["sas"])
        dp.install(first)
        dp.install(second)
        result = {"both": dump()}
        dp.remove(first)
        result["second_only"] = dump()
        for owner in range(len(dp.reqids), 0x10000):  # every other kernel reqid taken
            dp.reqids.acquire(10**6 + owner, owner=owner)
        dp.install(third)
        result["installed"] = list(dp.installed)
        result["refused"] = dump()
        dp.stop()
        result["after_stop"] = dump()
        print(json.dumps(result))
    elif command == "moved":  # the engine moves a peer by changing its ChildSaInfo in place
        dp = KernelDataPlane(routes=False)
        dp.start()
        sa = info(args["sa"])
        dp.install(sa)
        sa.remote, sa.udp_encap = Endpoint(*args["moved_remote"]), True
        dp.update(sa)
        result = {"after_update": dump(), "counters": counters(dp.counters(sa.spi_in))}
        dp.remove(sa)
        result["after_remove"] = dump()
        dp.stop()
        print(json.dumps(result))
    elif command == "algorithms":  # an SA pair of every cipher/integrity the kernel backend offers
        import itertools, logging, os
        from ikegate.crypto.transforms import get_encr, get_integ
        from ikegate.dataplane.xfrm.kernel import AEAD_NAMES, CIPHER_NAMES, INTEG_NAMES, kernel_esp_supported
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        dp = KernelDataPlane(routes=False)
        dp.start()
        combos = []
        for encr_id, bits in itertools.product(list(AEAD_NAMES) + list(CIPHER_NAMES), (0, 128, 192, 256)):
            if not kernel_esp_supported(1, encr_id, bits):
                continue
            aead = encr_id in AEAD_NAMES
            for integ_id in [None] if aead else [i for i in INTEG_NAMES if kernel_esp_supported(3, i, 0)]:
                combos.append((int(encr_id), bits, integ_id and int(integ_id)))
        for n, (encr_id, bits, integ_id) in enumerate(combos):
            encr = get_encr(encr_id, bits)
            integ_len = get_integ(integ_id).key_size if integ_id else 0
            spec = dict(args["sa"], reqid=100 + n, child=100 + n, spi_in=0xD1000000 + n, spi_out=0xD2000000 + n,
                        encr_id=encr_id, key_bits=encr.key_bits, integ_id=integ_id,
                        key_in_encr=os.urandom(encr.key_size).hex(), key_out_encr=os.urandom(encr.key_size).hex(),
                        key_in_integ=os.urandom(integ_len).hex(), key_out_integ=os.urandom(integ_len).hex(),
                        local_ts=[f"10.{n}.0.0/24"], remote_ts=[f"192.0.2.{n}/32"])
            dp.install(info(spec))
        result = {"combos": combos, "installed": len(dp.installed), "states": len(dump()["states"]),
                  "ip": subprocess.run(["ip", "xfrm", "state"], capture_output=True, text=True).stdout}
        dp.stop()
        print(json.dumps(result))
    elif command == "dump":
        print(json.dumps(dump()))
    elif command == "traffic":
        traffic(args)


main()
'''


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """(namespace, guest): the guest's eth0 is GUEST_V4/GUEST_V6, the TAP side in the
    namespace NS_V4/NS_V6; no default route (the data plane's routes must do)."""
    if REASON is not None:
        pytest.skip(f"user-mode Linux unavailable: {REASON}")
    ns = Namespace(role="xfrm")
    vm = None
    try:
        ns.create()
        vm = UmlGuest(ns, tmp_path_factory.mktemp("uml-xfrm"), name="xfrm",
                      addresses=[f"{GUEST_V4}/24", f"{GUEST_V6}/64"], tap_addresses=[f"{NS_V4}/24", f"{NS_V6}/64"])
        vm.start()
        (vm.share / "xfrm_guest.py").write_text(GUEST_SCRIPT)
        yield ns, vm
    finally:
        if vm is not None:
            vm.stop()
        ns.delete()


def _ours(vm: UmlGuest, command: str, args: dict | None = None, timeout: float = 60) -> dict:
    """Run the guest script; its JSON output."""
    argv = ["sh", "-c", f'exec {VENV_PYTHON} {vm.share}/xfrm_guest.py {command} "$0"', json.dumps(args or {})]
    proc = vm.run(argv, check=False, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _sh(vm: UmlGuest, script: str) -> str:
    return vm.run(["sh", "-c", script]).stdout


SA_GCM = {"reqid": 1, "child": 1, "spi_in": 0xC1000001, "spi_out": 0xC2000001, "encr_id": 20, "key_bits": 128,
          "key_in_encr": "11" * 20, "key_out_encr": "22" * 20, "local": [GUEST_V4, 4500], "remote": [NS_V4, 4501],
          "udp_encap": True, "local_ts": ["0.0.0.0/0", "::/0"], "remote_ts": ["192.0.2.1/32", "2001:db8::1/128"]}
SA_CBC_ESN = {"reqid": 2, "child": 2, "spi_in": 0xC1000002, "spi_out": 0xC2000002, "encr_id": 12, "key_bits": 256,
              "integ_id": 12, "esn": True, "key_in_encr": "33" * 32, "key_out_encr": "44" * 32,
              "key_in_integ": "55" * 32, "key_out_integ": "66" * 32, "local": [GUEST_V6, 500],
              "remote": [NS_V6, 500], "local_ts": ["10.0.0.0/24"], "remote_ts": ["192.0.2.2/32"]}
SA_CHACHA_SHA1 = {"reqid": 3, "child": 3, "spi_in": 0xC1000003, "spi_out": 0xC2000003, "encr_id": 28,
                  "key_bits": 256, "key_in_encr": "77" * 36, "key_out_encr": "88" * 36, "local": [GUEST_V4, 500],
                  "remote": ["10.99.0.3", 500], "local_ts": ["10.99.0.10/32"], "remote_ts": ["198.51.100.0/30"]}


def _blocks(text: str) -> list[str]:
    """``ip xfrm`` output split into one string per state/policy."""
    blocks: list[str] = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def _block(blocks: list[str], *needles: str) -> str:
    found = [b for b in blocks if all(n in b for n in needles)]
    assert len(found) == 1, (needles, blocks)
    return found[0]


@needs_uml
def test_probe_and_socket_options_in_the_guest(guest):
    _ns, vm = guest
    result = _ours(vm, "probe")
    assert result["probe"] == [True, "ESP available in the kernel"]
    assert result["udp_encap"] == {str(int(socket.AF_INET)): 2, str(int(socket.AF_INET6)): 2}  # UDP_ENCAP_ESPINUDP
    assert _sh(vm, "ip xfrm state; ip xfrm policy") == ""  # the probe SA is gone


@needs_uml
def test_installed_state_as_ip_xfrm_shows_it_and_a_restart_cleans_up(guest):
    _ns, vm = guest
    # someone else's SA and policy (untagged) must survive our clean-up
    _sh(vm, f"ip xfrm state add src {NS_V4} dst {GUEST_V4} proto esp spi 0x5000 reqid 5 mode tunnel "
            "aead 'rfc4106(gcm(aes))' 0x" + "99" * 20 + " 128; "
            f"ip xfrm policy add src 10.5.0.0/16 dst 10.6.0.0/16 dir out tmpl src {GUEST_V4} dst {NS_V4} "
            "proto esp reqid 5 mode tunnel")
    try:
        ours = _ours(vm, "install", {"sas": [SA_GCM, SA_CBC_ESN, SA_CHACHA_SHA1]})
        assert len(ours["states"]) == 7 and len(ours["policies"]) == 1 + 3 * (2 + 1 + 1)

        states = _blocks(_sh(vm, "ip xfrm state"))
        gcm_in = _block(states, f"src {NS_V4} dst {GUEST_V4}", "spi 0xc1000001")
        assert "reqid 1229389825 mode tunnel" in gcm_in and "replay-window 32 flag af-unspec" in gcm_in
        assert "aead rfc4106(gcm(aes)) 0x" + "11" * 20 + " 128" in gcm_in
        assert "encap type espinudp sport 4501 dport 4500 addr 0.0.0.0" in gcm_in
        gcm_out = _block(states, f"src {GUEST_V4} dst {NS_V4}", "spi 0xc2000001")
        assert "aead rfc4106(gcm(aes)) 0x" + "22" * 20 + " 128" in gcm_out
        assert "encap type espinudp sport 4500 dport 4501" in gcm_out
        cbc_out = _block(states, f"src {GUEST_V6} dst {NS_V6}", "spi 0xc2000002")
        assert "enc cbc(aes) 0x" + "44" * 32 in cbc_out
        assert "auth-trunc hmac(sha256) 0x" + "66" * 32 + " 128" in cbc_out
        assert "flag af-unspec esn" in cbc_out and "replay_window 32" in cbc_out and "encap" not in cbc_out
        chacha_in = _block(states, "spi 0xc1000003")
        assert "aead rfc7539esp(chacha20,poly1305) 0x" + "77" * 36 + " 128" in chacha_in
        assert "reqid 1229389827" in chacha_in

        policies = _blocks(_sh(vm, "ip xfrm policy"))
        out = _block(policies, "src 0.0.0.0/0 dst 192.0.2.1/32", "dir out")
        assert f"tmpl src {GUEST_V4} dst {NS_V4}\n\t\tproto esp reqid 1229389825 mode tunnel" in out
        for direction in ("in", "fwd"):
            policy = _block(policies, "src 192.0.2.1/32 dst 0.0.0.0/0", f"dir {direction}")
            assert f"tmpl src {NS_V4} dst {GUEST_V4}\n\t\tproto esp reqid 1229389825 mode tunnel" in policy
        _block(policies, "src ::/0 dst 2001:db8::1/128", "dir out")
        v6_over_v6 = _block(policies, "src 10.0.0.0/24 dst 192.0.2.2/32", "dir out")
        assert f"tmpl src {GUEST_V6} dst {NS_V6}" in v6_over_v6
        _block(policies, "src 198.51.100.0/30 dst 10.99.0.10/32", "dir fwd")

        routes = _sh(vm, "ip route show table 220; ip -6 route show table 220")
        assert f"192.0.2.1 dev eth0 proto 105 scope link src {GUEST_V4}" in routes
        assert "2001:db8::1 dev eth0 proto 105" in routes and "198.51.100.0/30 dev eth0 proto 105" in routes
        assert "220:\tfrom all lookup 220" in _sh(vm, "ip rule")

        # a new run finds everything tagged, deletes it at start, and leaves nothing at stop
        restart = _ours(vm, "restart")
        for phase in ("after_start", "after_stop"):
            assert [s["spi"] for s in restart[phase]["states"]] == [0x5000], phase
            assert [p["src"] for p in restart[phase]["policies"]] == ["10.5.0.0/16"], phase
        assert _sh(vm, "ip route show table 220; ip -6 route show table 220") == ""
        assert "lookup 220" not in _sh(vm, "ip rule")
    finally:
        vm.run(["sh", "-c", "ip xfrm policy flush; ip xfrm state flush"], check=False)


@needs_uml
def test_a_refused_sa_is_logged_and_leaves_nothing(guest):
    _ns, vm = guest
    short_out_key = dict(SA_GCM, key_out_encr="22" * 10)  # the inbound SA gets in, the outbound not
    no_integrity = dict(SA_CBC_ESN, integ_id=None)  # refused before the kernel is asked
    argv = ["sh", "-c", f'exec {VENV_PYTHON} {vm.share}/xfrm_guest.py refused "$0"',
            json.dumps({"sas": [short_out_key, no_integrity]})]
    proc = vm.run(argv, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result == {"installed": [], "dump": {"states": [], "policies": []}, "routes": ""}
    assert "cannot install CHILD SA test{1} in the kernel: cannot add SA c2000001" in proc.stderr
    assert "cannot install CHILD SA test{2} in the kernel: ENCR 12 needs an integrity algorithm" in proc.stderr


@needs_uml
def test_reqids_65536_apart_in_the_kernel(guest):
    """Two live SAs whose engine reqids are 65536 apart get distinct tagged kernel reqids
    (SAs and policy templates); a freed one is reused; with the tag range full a new SA
    is refused loudly and leaves nothing."""
    _ns, vm = guest
    second = dict(SA_GCM, reqid=1 + 0x10000, child=2, spi_in=0xC1000011, spi_out=0xC2000011,
                  remote_ts=["192.0.2.9/32"])
    third = dict(SA_GCM, reqid=5, child=3, spi_in=0xC1000021, spi_out=0xC2000021, remote_ts=["192.0.2.10/32"])
    argv = ["sh", "-c", f'exec {VENV_PYTHON} {vm.share}/xfrm_guest.py reqids "$0"',
            json.dumps({"sas": [SA_GCM, second, third]})]
    proc = vm.run(argv, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    by_spi = {s["spi"]: s["reqid"] for s in result["both"]["states"]}
    assert by_spi[0xC1000001] == by_spi[0xC2000001] == kernel_reqid(1) == 0x49470001
    other = by_spi[0xC1000011]
    assert by_spi[0xC2000011] == other and is_tagged(other) and other != kernel_reqid(1)
    templates = {p["dst"] if p["dir"] == 1 else p["src"]: p["tmpl"][0][2] for p in result["both"]["policies"]}
    assert templates["192.0.2.1/32"] == kernel_reqid(1) and templates["192.0.2.9/32"] == other
    assert {s["reqid"] for s in result["second_only"]["states"]} == {other}
    assert result["installed"] == [0xC1000011]  # the third refused: no free kernel reqid
    assert {s["spi"] for s in result["refused"]["states"]} == {0xC1000011, 0xC2000011}
    assert "refusing CHILD SA test{3}: all 65536 kernel reqids of ikegate" in proc.stderr
    assert result["after_stop"] == {"states": [], "policies": []}


@needs_uml
def test_update_after_the_engine_changed_the_info_in_place(guest):
    """MOBIKE/NAT moves reach the data plane as the SAME ChildSaInfo with new addresses:
    the SAs at the old peer address still go (none left behind), remove() then finds
    the new ones."""
    _ns, vm = guest
    native = dict(SA_GCM, udp_encap=False, local=[GUEST_V4, 500], remote=[NS_V4, 500])
    result = _ours(vm, "moved", {"sa": native, "moved_remote": ["10.99.0.77", 4500]})
    states = {(s["src"], s["dst"], s["spi"]) for s in result["after_update"]["states"]}
    assert states == {("10.99.0.77", GUEST_V4, 0xC1000001), (GUEST_V4, "10.99.0.77", 0xC2000001)}
    assert all(s["encap"] is not None for s in result["after_update"]["states"])
    assert {p["tmpl"][0][0] if p["dir"] != 1 else p["tmpl"][0][1] for p in result["after_update"]["policies"]} \
        == {"10.99.0.77"}
    assert result["counters"] is not None
    assert result["after_remove"] == {"states": [], "policies": []}


@needs_uml
def test_every_algorithm_the_kernel_backend_offers_is_accepted_by_the_kernel(guest):
    """What ``KernelDataPlane.esp_supported`` lets into CHILD SA proposals (e.g.
    AES-XCBC-96, which userspace ESP lacks) the guest kernel really installs."""
    _ns, vm = guest
    base = dict(SA_CHACHA_SHA1, remote=[NS_V4, 500])
    result = _ours(vm, "algorithms", {"sa": base})
    combos = result["combos"]
    assert [12, 128, 5] in combos and [20, 256, None] in combos  # AES-CBC + AES-XCBC-96, AES-GCM-16
    assert result["installed"] == len(combos) and result["states"] == 2 * len(combos), result["ip"][-3000:]
    assert result["ip"].count("auth-trunc xcbc(aes)") == 2 * sum(1 for c in combos if c[2] == 5)


@needs_uml
def test_dump_decodes_what_ip_xfrm_installed(guest):
    _ns, vm = guest
    key_cbc, key_sha1, key_gcm = "0a" * 16, "0b" * 20, "0c" * 36
    key_3des, key_sha512 = "0d" * 24, "0e" * 64
    try:
        _sh(vm, "; ".join([
            f"ip xfrm state add src {GUEST_V4} dst {NS_V4} proto esp spi 0x1001 reqid 0x49470009 mode tunnel "
            f"enc 'cbc(aes)' 0x{key_cbc} auth-trunc 'hmac(sha1)' 0x{key_sha1} 96 "
            "encap espinudp 4500 4600 0.0.0.0 replay-window 32",
            f"ip xfrm state add src {NS_V6} dst {GUEST_V6} proto esp spi 0x1002 reqid 77 mode tunnel "
            f"aead 'rfc4106(gcm(aes))' 0x{key_gcm} 96 flag esn replay-window 64",
            f"ip xfrm state add src {NS_V4} dst {GUEST_V4} proto esp spi 0x1003 reqid 78 mode tunnel "
            f"enc 'cbc(des3_ede)' 0x{key_3des} auth-trunc 'hmac(sha512)' 0x{key_sha512} 256",
            "ip xfrm policy add src 192.0.2.7/32 dst 10.0.0.0/8 proto tcp dport 443 dir fwd priority 1234 "
            f"tmpl src {NS_V4} dst {GUEST_V4} proto esp reqid 0x49470009 mode tunnel",
        ]))
        dump = _ours(vm, "dump")
        states = {s["spi"]: s for s in dump["states"]}
        cbc = states[0x1001]
        assert (cbc["src"], cbc["dst"], cbc["proto"], cbc["mode"], cbc["reqid"]) == (GUEST_V4, NS_V4, 50, 1, 0x49470009)
        assert cbc["crypt"] == ["cbc(aes)", key_cbc] and cbc["auth"] == ["hmac(sha1)", key_sha1, 96]
        assert cbc["encap"] == [2, 4500, 4600] and cbc["replay_window"] == 32 and cbc["esn"] is None
        gcm = states[0x1002]
        assert (gcm["src"], gcm["dst"], gcm["family"]) == (NS_V6, GUEST_V6, socket.AF_INET6)
        assert gcm["aead"] == ["rfc4106(gcm(aes))", key_gcm, 96] and gcm["flags"] & 128  # XFRM_STATE_ESN
        assert gcm["esn"][0] == 64
        des = states[0x1003]
        assert des["crypt"] == ["cbc(des3_ede)", key_3des] and des["auth"] == ["hmac(sha512)", key_sha512, 256]
        (policy,) = dump["policies"]
        assert (policy["src"], policy["dst"], policy["dir"], policy["proto"], policy["dport"], policy["priority"]) == (
            "192.0.2.7/32", "10.0.0.0/8", 2, 6, 443, 1234)
        assert policy["tmpl"] == [[NS_V4, GUEST_V4, 0x49470009, 1, 50]]
        # tagged: a restart of ours removes exactly the tagged ones
        restart = _ours(vm, "restart")
        assert sorted(s["spi"] for s in restart["after_start"]["states"]) == [0x1002, 0x1003]
        assert restart["after_start"]["policies"] == []
    finally:
        vm.run(["sh", "-c", "ip xfrm policy flush; ip xfrm state flush"], check=False)


@needs_uml
def test_traffic_counters_update_and_stop(guest):
    """ESP both ways through SAs ikegate installed, checked by scapy's ESP; counters; a
    MOBIKE-style update to ESP-in-UDP on a new port keeps the sequence numbers."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    from scapy.packet import Raw

    ns, vm = guest
    key_in, key_out = os.urandom(20), os.urandom(20)  # AES-128 key + 4-byte salt (RFC 4106)
    spi_in = 0xD1000000 | int.from_bytes(os.urandom(2), "big")
    spi_out = 0xD2000000 | int.from_bytes(os.urandom(2), "big")
    ready = vm.share / "traffic-ready"
    ready.unlink(missing_ok=True)
    spec = {"reqid": 7, "spi_in": spi_in, "spi_out": spi_out, "encr_id": 20, "key_bits": 128,
            "key_in_encr": key_in.hex(), "key_out_encr": key_out.hex(), "local": [GUEST_V4, 4500],
            "remote": [NS_V4, 4500], "local_ts": [f"{GUEST_V4}/32"], "remote_ts": [f"{BEHIND_NS}/32"]}
    args = {"sa": spec, "listen_port": 4244, "ready_file": str(ready), "payload": "sealed by ikegate's kernel SA",
            "target": BEHIND_NS, "target_port": 4242, "moved_remote": [NS_V4, 4501]}
    capture = capture_tap(vm)
    try:
        with ThreadPoolExecutor(1) as pool:
            argv = ["sh", "-c", f'exec {VENV_PYTHON} {vm.share}/xfrm_guest.py traffic "$0"', json.dumps(args)]
            running = pool.submit(vm.run, argv, check=False, timeout=60)
            deadline = time.monotonic() + 30
            while not ready.exists() and not running.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            esp = esp_from(capture, GUEST_V4, 10, stop=running.done)
            assert esp is not None, "no ESP left the guest"
            assert esp[ESP].spi == spi_out and b"sealed by" not in bytes(esp)
            sa_out = SecurityAssociation(ESP, spi=spi_out, crypt_algo="AES-GCM", crypt_key=key_out,
                                         tunnel_header=IP(src=GUEST_V4, dst=NS_V4))
            inner = sa_out.decrypt(esp)
            assert (inner[IP].src, inner[IP].dst, inner[UDP].dport) == (GUEST_V4, BEHIND_NS, 4242)
            assert bytes(inner[UDP].payload) == b"sealed by ikegate's kernel SA"

            sa_in = SecurityAssociation(ESP, spi=spi_in, crypt_algo="AES-GCM", crypt_key=key_in,
                                        tunnel_header=IP(src=NS_V4, dst=GUEST_V4))
            packet = sa_in.encrypt(IP(src=BEHIND_NS, dst=GUEST_V4) / UDP(sport=4243, dport=4244)
                                   / Raw(b"opened by the guest kernel"))
            send_ip(ns, packet, GUEST_V4)
            # after the update: ESP-in-UDP from a new NAT port, opened by the guest kernel
            # on the port-4500 socket, and reported as a mapping change
            ready2 = vm.share / "traffic-ready2"
            deadline = time.monotonic() + 30
            while not ready2.exists() and not running.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            sa_in_udp = SecurityAssociation(ESP, spi=spi_in, crypt_algo="AES-GCM", crypt_key=key_in,
                                            tunnel_header=IP(src=NS_V4, dst=GUEST_V4),
                                            nat_t_header=UDP(sport=4502, dport=4500), seq_num=2)
            packet = sa_in_udp.encrypt(IP(src=BEHIND_NS, dst=GUEST_V4) / UDP(sport=4243, dport=4244)
                                       / Raw(b"opened after the update"))
            send_ip(ns, packet, GUEST_V4)
            proc = running.result()
    finally:
        capture.close()
        for name in ("traffic-ready", "traffic-ready2"):
            (vm.share / name).unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["received"] == [BEHIND_NS, "opened by the guest kernel"]
    counters = result["counters"]
    assert (counters["packets_in"], counters["packets_out"]) == (1, 1)
    assert counters["bytes_in"] > 0 and counters["bytes_out"] > 0
    assert 0 <= counters["last_in_age"] < 10 and 0 <= counters["last_out_age"] < 10

    # the update: ESP-in-UDP to the new port, the same SPIs, sequence numbers kept
    states = {s["spi"]: s for s in result["after_update"]["states"]}
    assert states[spi_out]["encap"] == [2, 4500, 4501] and states[spi_in]["encap"] == [2, 4501, 4500]
    blocks = _blocks(result["ip_after_update"])
    assert "oseq 0x1," in _block(blocks, f"spi 0x{spi_out:08x}")
    assert "seq 0x1, oseq 0x0" in _block(blocks, f"spi 0x{spi_in:08x}")
    assert {p["tmpl"][0][2] for p in result["after_update"]["policies"]} == {kernel_reqid(7)}
    assert result["counters_after_update"]["packets_in"] == 1  # carried over the re-added SAs
    assert result["received_encap"] == [BEHIND_NS, "opened after the update"]
    assert result["mappings"] == [[spi_in, [NS_V4, 4502]]]
    assert result["after_stop"] == {"states": [], "policies": []}


@needs_uml
def test_ikegate_start_in_the_guest_picks_the_kernel(guest):
    _ns, vm = guest
    confdir = vm.share / "conf"
    confdir.mkdir(exist_ok=True)
    (confdir / "ipsec.conf").write_text("config setup\n\nconn rw\n  left=%any\n  leftid=@gw.example\n"
                                        "  leftauth=psk\n  right=%any\n  rightauth=psk\n  auto=add\n")
    secrets = confdir / "ipsec.secrets"
    secrets.write_text('@gw.example : PSK "xfrm-kernel-test-psk"\n')
    secrets.chmod(0o600)
    (confdir / "strongswan.conf").write_text("ikegate {\n  dataplane = auto\n}\n")
    daemon = vm.spawn(["sh", "-c", f"exec {VENV_PYTHON} -m ikegate start --confdir {confdir} --foreground "
                                   "--run-dir /run/ikegate-xfrm"], log="ikegate-xfrm.log")
    log_file = vm.share / "ikegate-xfrm.log"
    try:
        deadline = time.monotonic() + 30
        while "ikegate ready" not in (log_file.read_text() if log_file.exists() else ""):
            assert daemon.poll() is None and time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        log = log_file.read_text()
        assert "data plane: kernel XFRM (ESP available in the kernel)" in log
        policies = _sh(vm, "ip xfrm policy")
        assert policies.count("socket in") == 4 and policies.count("socket out") == 4  # 500/4500, v4/v6
        assert "220:\tfrom all lookup 220" in _sh(vm, "ip rule")
    finally:
        daemon.signal()
        assert daemon.wait(10) == 0
    assert _sh(vm, "ip xfrm state; ip xfrm policy") == ""  # socket policies went with the sockets
    assert "lookup 220" not in _sh(vm, "ip rule")
