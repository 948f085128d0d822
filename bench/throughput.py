"""Throughput through the tunnel: strongSwan as the gateway, then ikegate, same everything else.

Run as root from the repository::

    .venv/bin/python bench/throughput.py [--runs 3] [--seconds 5] [--json out.json]

The topology and daemons are those of the end-to-end tests (``tests/interop``): a client
namespace, a gateway namespace and an "inner" host behind the gateway.  The client is
strongSwan 5.9 (charon + swanctl, kernel-libipsec: userspace ESP on a TUN device, which
forces UDP encapsulation), user1 with EAP-MSCHAPv2, exactly as in the tests.  The
gateway is, in turn:

* ``strongswan``: strongSwan's starter + charon with kernel-libipsec serving the seed
  configuration (the reference);
* ``ikegate``: ``python -m ikegate start`` serving the same directory with the userspace
  data plane.

Both serve the seed's ipsec.conf with one change: ``esp=`` also offers AES-128-GCM-16
(the seed has no GCM).  For each transform, AES-256-CBC/HMAC-SHA2-256-128 (the seed's
proposals) and AES-128-GCM-16, the client proposes exactly that transform, connects, and
iperf3 (TCP, one stream) runs ``--seconds`` each way between the client's virtual IP and
the inner host: "up" = client -> inner (the gateway decrypts the data), "down" = inner ->
client (the gateway encrypts it).  Rounds alternate the gateway order, so slow drifts of
the shared machine's load hit both alike.  Printed: the median Mbit/s of each cell over
``--runs`` rounds, the ratio ikegate/strongSwan, and the CPU the gateway namespace used
(all its processes, user + system, in percent of one core).

Variants (for the data plane's design choices):

* ``--gateways ikegate --esp-workers threads|single|processes`` compares the worker
  arrangements; ``--dataplane-options '{"offload": false, "udp_gso": false}'`` turns off
  the joining of TCP segments into the TUN and the segmented UDP sends.
* ``--ike-latency`` instead times a second client's whole IKE connection (EAP-MSCHAPv2),
  idle and while the first client saturates the tunnel with iperf3: does the IKE side
  stay responsive?

ikegate is started through a small launcher that builds the data plane from these
options (``ikegate start`` itself builds ``UserspaceDataPlane()`` with its defaults).

``--kernel`` (``.venv/bin/python bench/throughput.py --kernel --runs 4``): the kernel
data plane, in user-mode Linux (this machine's kernel has no ESP; ``tests/interop/uml.py``).
Four identical guests on one bridge: one gateway guest runs strongSwan's starter +
charon with ``kernel-netlink`` serving the seed directory, the other ``ikegate start
--dataplane kernel`` on the same directory, each with a client guest of its own running
strongSwan (charon + swanctl, kernel-netlink), so both ends are kernel ESP (native, no
NAT).  iperf3's servers listen on an address on each gateway guest's loopback, so all
data crosses the gateways' SAs.  Both gateways stay up and the iperf3 runs alternate
between them (the shared machine's load drifts less within a pair).  Same transforms,
directions and table as above; the CPU column is the gateway guest's (its UML
processes), and a second table divides throughput by it: both gateways use the same
kernel data path, so the ratio should be about 1 (bar 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from interop.gateway import IkegateGateway  # noqa: E402
from interop.netns import Topology, namespace_pids, terminate  # noqa: E402
from interop.seed import server_from_confdir, write_seed  # noqa: E402
from interop.strongswan import StrongSwanClient, strongswan_missing  # noqa: E402

TRANSFORMS = {
    "aes256-sha256": "aes256-sha256",
    "aes128gcm16": "aes128gcm16",
}
SEED_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1!"
BENCH_ESP = "esp=aes256-aes192-aes128-sha384-sha256-sha1,aes128gcm16!"
DIRECTIONS = ("up", "down")
KERNEL_BAR = 0.95  # --kernel: ikegate/strongSwan, same kernel ESP path

# ``ikegate start`` with the data plane built from this script's options (until the
# daemon has its own options for it: the daemon builds ``UserspaceDataPlane()``).
_IKEGATE_LAUNCHER = """
import json, sys
import ikegate.daemon.main as daemon_main
from ikegate.dataplane.userspace import UserspaceDataPlane
options = json.loads(sys.argv[1])
daemon_main.make_dataplane = lambda choice, *args, **kwargs: UserspaceDataPlane(**options)
from ikegate.cli import main
sys.exit(main(sys.argv[2:]))
"""


class BenchGateway(IkegateGateway):
    """The test harness's ikegate launcher, with data-plane options."""

    def __init__(self, *args, dataplane_options: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dataplane_options = dataplane_options

    @property
    def argv(self) -> list[str]:
        return [self.python, "-c", _IKEGATE_LAUNCHER, json.dumps(self.dataplane_options), "start",
                "--confdir", str(self.confdir), "--run-dir", str(self.run_dir), "--foreground",
                "--dataplane", "userspace", *self.extra_args]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (and their reaped children) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def iperf(client_ns, server_addr: str, seconds: float, reverse: bool, gateway_ns) -> dict:
    cmd = ["iperf3", "-c", server_addr, "-t", str(seconds), "-J", "-O", "1"]
    if reverse:
        cmd.append("-R")
    pids = namespace_pids(gateway_ns.name)
    client_pids = [p for p in namespace_pids(client_ns.name)]
    cpu0, ccpu0, t0 = cpu_seconds(pids), cpu_seconds(client_pids), time.monotonic()
    busy0, total0 = machine_busy()
    proc = client_ns.run(cmd, check=False, timeout=seconds + 30)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pids) - cpu0
    client_cpu = cpu_seconds(client_pids) - ccpu0
    busy1, total1 = machine_busy()
    machine = (busy1 - busy0) / max(total1 - total0, 1e-9)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"mbps": 0.0, "error": (proc.stderr or proc.stdout)[-500:], "gw_cpu": cpu / wall}
    if "error" in result:
        return {"mbps": 0.0, "error": result["error"], "gw_cpu": cpu / wall}
    end = result["end"]
    received = end["sum_received"]["bits_per_second"] / 1e6
    retransmits = end.get("sum_sent", {}).get("retransmits", 0)
    return {"mbps": received, "retransmits": retransmits, "gw_cpu": cpu / wall,
            "client_cpu": client_cpu / wall, "machine_busy": machine}


def run_gateway(kind: str, topo, seed, workdir: Path, args, results: dict, round_no: int) -> None:
    gw_host = topo.gateway
    confdir = workdir / "conf"
    if kind == "strongswan":
        daemon = server_from_confdir(gw_host.ns, workdir / f"sswan-{round_no}", confdir)
        daemon.start()
    else:
        options = {"workers": args.esp_workers, **json.loads(args.dataplane_options)}
        daemon = BenchGateway(gw_host.ns, confdir, workdir / f"ikegate-{round_no}",
                              dataplane_options=options)
        daemon.start()
        time.sleep(1.0)  # the ESP workers start after the sockets are bound
    try:
        for name in args.transforms:
            client = StrongSwanClient(topo.clients[0].ns, workdir / f"client-{kind}-{name}-{round_no}",
                                      ca_certs=[seed.root_cert], remote_addrs=gw_host.v4[0],
                                      esp_proposals=TRANSFORMS[name])
            client.start()
            try:
                ok, out = client.initiate(timeout=30)
                if not ok:
                    raise RuntimeError(f"{kind}/{name}: connection failed:\n{out[-2000:]}")
                for direction in args.directions:
                    r = iperf(client.ns, topo.inner.v4[0], args.seconds, direction == "down", gw_host.ns)
                    results.setdefault((kind, name, direction), []).append(r)
                    print(f"  round {round_no} {kind:10s} {name:14s} {direction:4s} "
                          f"{r['mbps']:8.1f} Mbit/s  gateway CPU {100 * r['gw_cpu']:5.1f}%"
                          f"  client {100 * r.get('client_cpu', 0):5.1f}%"
                          f"  machine busy {100 * r.get('machine_busy', 0):5.1f}%"
                          + (f"  ERROR {r['error']}" if "error" in r else ""), flush=True)
                client.terminate()
            finally:
                client.stop()
    finally:
        if kind == "strongswan":
            daemon.stop()
        else:
            daemon.stop()
            if args.verbose:
                print(daemon.log_text()[-3000:])


def ike_latency(topo, seed, workdir: Path, args) -> dict:
    """Time IKE connections of a second client, idle and while the first one runs iperf3
    through the gateway (the data plane saturated): does the IKE side stay responsive?"""
    results: dict = {}
    gw_host = topo.gateway
    confdir = workdir / "conf"
    for kind in args.gateways:
        if kind == "strongswan":
            daemon = server_from_confdir(gw_host.ns, workdir / "sswan-lat", confdir)
        else:
            daemon = BenchGateway(gw_host.ns, confdir, workdir / f"ikegate-lat-{args.esp_workers}",
                                  dataplane_options={"workers": args.esp_workers})
        daemon.start()
        time.sleep(1.0)
        loaded = StrongSwanClient(topo.clients[0].ns, workdir / f"lat-load-{kind}", ca_certs=[seed.root_cert],
                                  remote_addrs=gw_host.v4[0], esp_proposals="aes128gcm16")
        probe = StrongSwanClient(topo.clients[1].ns, workdir / f"lat-probe-{kind}", ca_certs=[seed.root_cert],
                                 remote_addrs=gw_host.v4[0], esp_proposals="aes128gcm16",
                                 eap_id="user2", password="password2")
        loaded.start()
        probe.start()
        try:
            ok, out = loaded.initiate(timeout=30)
            if not ok:
                raise RuntimeError(out[-2000:])
            for state in ("idle", "loaded"):
                iperf_proc = None
                if state == "loaded":
                    iperf_proc = loaded.ns.popen(["iperf3", "-c", topo.inner.v4[0], "-t", "30"],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(2)
                times = []
                for _ in range(args.runs):
                    t0 = time.monotonic()
                    ok, out = probe.initiate(timeout=30)
                    times.append(time.monotonic() - t0 if ok else float("inf"))
                    probe.terminate()
                    time.sleep(0.3)
                if iperf_proc is not None:
                    terminate(iperf_proc)
                results[(kind, state)] = times
                print(f"  {kind:10s} {state:6s} connect times (s): " + " ".join(f"{t:.3f}" for t in times),
                      flush=True)
        finally:
            probe.stop()
            loaded.stop()
            daemon.stop()
    print()
    for kind in args.gateways:
        idle = statistics.median(results[(kind, "idle")])
        loaded_median = statistics.median(results[(kind, "loaded")])
        print(f"{kind:10s} IKE connection (EAP-MSCHAPv2, 4 round trips): idle {1000 * idle:.0f} ms,"
              f" with the tunnel saturated {1000 * loaded_median:.0f} ms")
    return results


# -- the kernel data plane, in user-mode Linux -------------------------------------------

def guest_cpu_seconds(guest) -> float:
    """CPU seconds (user + system) used so far by a UML guest's live host processes
    (the kernel's and those of the guest's processes; reaped children not counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in {guest.proc.pid, *guest._session_pids()}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def kernel_iperf(client_guest, gateway_guest, seconds: float, reverse: bool) -> dict:
    """iperf3 from a client guest's virtual IP to its gateway guest's inner address."""
    from interop.uml import LAB_INNER

    cmd = ["iperf3", "-c", LAB_INNER[0], "-B", "192.0.2.1", "-t", str(seconds), "-J", "-O", "1"]
    if reverse:
        cmd.append("-R")
    cpu0, t0 = guest_cpu_seconds(gateway_guest), time.monotonic()
    busy0, total0 = machine_busy()
    proc = client_guest.run(cmd, check=False, timeout=seconds + 30)
    wall = time.monotonic() - t0
    cpu = guest_cpu_seconds(gateway_guest) - cpu0
    busy1, total1 = machine_busy()
    machine = (busy1 - busy0) / max(total1 - total0, 1e-9)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"mbps": 0.0, "error": (proc.stderr or proc.stdout)[-500:], "gw_cpu": cpu / wall}
    if "error" in result:
        return {"mbps": 0.0, "error": result["error"], "gw_cpu": cpu / wall}
    end = result["end"]
    return {"mbps": end["sum_received"]["bits_per_second"] / 1e6,
            "retransmits": end.get("sum_sent", {}).get("retransmits", 0),
            "gw_cpu": cpu / wall, "machine_busy": machine}


def kernel_bench(args) -> dict:
    """``--kernel``: both gateways side by side in user-mode Linux (see the module
    docstring).  Each gateway has a guest of its own and a client guest of its own
    (identical guests, the same bridge), both stay up the whole run, and the iperf3
    runs alternate between them (the order swapped every round): on a shared machine
    whose load drifts, each pair of measurements sees nearly the same conditions."""
    from interop.uml import (LAB_GATEWAY, LAB_GATEWAY2, LAB_INNER, GuestIkegate, GuestStrongSwanClient,
                             GuestStrongSwanServer, KernelLab)

    workdir = Path(tempfile.mkdtemp(prefix="ikegate-bench-kernel-"))
    results: dict = {}
    print(f"ikegate bench (kernel data plane, user-mode Linux): {args.runs} rounds x {args.seconds:g} s, "
          f"transforms {args.transforms}; work dir {workdir}", flush=True)
    with KernelLab(workdir, client_ns=False, second_pair=True, mem=args.guest_mem) as lab:
        sides = {}  # kind -> (gateway guest, client guest, gateway address, seed, daemon)
        daemons, servers = [], []
        try:
            for kind, gateway, client_guest, address in (
                    ("strongswan", lab.gateway, lab.client_guest, LAB_GATEWAY[0]),
                    ("ikegate", lab.gateway2, lab.client_guest2, LAB_GATEWAY2[0])):
                # the seed in the gateway guest's share directory: its paths must be visible there
                seed = write_seed(gateway.share / "seed")
                conf = seed.ipsec_conf.read_text()
                if SEED_ESP not in conf:
                    raise SystemExit(f"the seed ipsec.conf has no {SEED_ESP!r} line")
                seed.ipsec_conf.write_text(conf.replace(SEED_ESP, BENCH_ESP))
                if kind == "strongswan":
                    daemon = GuestStrongSwanServer(gateway, seed.confdir, tag="sswan")
                else:
                    daemon = GuestIkegate(gateway, seed.confdir, dataplane="kernel", tag="ikegate")
                daemons.append(daemon.start())
                servers.append(gateway.spawn(["iperf3", "-s", "-B", LAB_INNER[0]], log="iperf3-server.log"))
                sides[kind] = (gateway, client_guest, address, seed, daemon)
            for name in args.transforms:
                clients = {}
                try:
                    for kind, (gateway, client_guest, address, seed, daemon) in sides.items():
                        client = GuestStrongSwanClient(client_guest, ca_certs=[seed.root_cert], remote_addrs=address,
                                                       esp_proposals=TRANSFORMS[name], tag=f"client-{name}")
                        clients[kind] = client.start()
                        ok, out = client.initiate(timeout=30)
                        if not ok:
                            raise RuntimeError(f"{kind}/{name}: connection failed:\n{out[-2000:]}\n"
                                               f"{daemon.log_text()[-3000:]}")
                        states = gateway.run(["ip", "xfrm", "state"]).stdout
                        if states.count("proto esp") != 2 or "encap" in states:
                            raise RuntimeError(f"{kind}/{name}: expected two native ESP SAs in the gateway's "
                                               f"kernel:\n{states}")
                    for round_no in range(args.runs):
                        order = args.gateways if round_no % 2 == 0 else list(reversed(args.gateways))
                        for direction in args.directions:
                            for kind in order:
                                gateway, client_guest = sides[kind][:2]
                                r = kernel_iperf(client_guest, gateway, args.seconds, direction == "down")
                                results.setdefault((kind, name, direction), []).append(r)
                                print(f"  round {round_no} {kind:10s} {name:14s} {direction:4s} "
                                      f"{r['mbps']:8.1f} Mbit/s  gateway guest CPU {100 * r['gw_cpu']:5.1f}%"
                                      f"  machine busy {100 * r.get('machine_busy', 0):5.1f}%"
                                      + (f"  ERROR {r['error']}" if "error" in r else ""), flush=True)
                finally:
                    for client in clients.values():
                        client.terminate()
                        client.stop()
        finally:
            for server in servers:
                server.stop()
            for daemon in daemons:
                daemon.stop()
                if args.verbose:
                    print(daemon.log_text()[-3000:])
            for kind, (gateway, *_rest) in sides.items():
                left = gateway.run("ip xfrm state; ip xfrm policy | grep -v socket", check=False).stdout
                if "proto esp" in left:
                    print(f"  WARNING: {kind} left SAs in its guest's kernel:\n{left}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=5, help="iperf3 duration (default 5)")
    parser.add_argument("--gateways", default="strongswan,ikegate")
    parser.add_argument("--transforms", default=",".join(TRANSFORMS))
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--esp-workers", default="processes", choices=("processes", "threads", "single"))
    parser.add_argument("--dataplane-options", default="{}",
                        help='more UserspaceDataPlane keywords as JSON, e.g. \'{"offload": false, "udp_gso": false}\'')
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--ike-latency", action="store_true",
                        help="instead: time a second client's IKE connection, idle and under load")
    parser.add_argument("--kernel", action="store_true",
                        help="the kernel data plane (XFRM) of both gateways, in user-mode Linux guests")
    parser.add_argument("--guest-mem", default="256M", help="memory of each UML guest with --kernel")
    args = parser.parse_args(argv)
    args.gateways = args.gateways.split(",")
    args.transforms = args.transforms.split(",")
    args.directions = args.directions.split(",")
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    problem = strongswan_missing() or (None if shutil.which("iperf3") else "iperf3 missing")
    if problem:
        print(problem, file=sys.stderr)
        return 2

    if args.kernel:
        from interop.uml import uml_missing

        problem = uml_missing()
        if problem:
            print(problem, file=sys.stderr)
            return 2
        results = kernel_bench(args)
        report(args, results)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="ikegate-bench-"))
    seed = write_seed(workdir / "seed")
    confdir = workdir / "conf"
    shutil.copytree(seed.confdir, confdir)
    conf = (confdir / "ipsec.conf").read_text()
    if SEED_ESP not in conf:
        raise SystemExit(f"the seed ipsec.conf has no {SEED_ESP!r} line")
    (confdir / "ipsec.conf").write_text(conf.replace(SEED_ESP, BENCH_ESP))

    if args.ike_latency:
        with Topology(2, inner=True) as topo:
            server = topo.inner.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                ike_latency(topo, seed, workdir, args)
            finally:
                terminate(server)
        return 0

    results: dict = {}
    print(f"ikegate bench: {args.runs} rounds x {args.seconds:g} s, transforms {args.transforms}, "
          f"ESP workers: {args.esp_workers} {args.dataplane_options}; work dir {workdir}", flush=True)
    with Topology(1, inner=True) as topo:
        server = topo.inner.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            for round_no in range(args.runs):
                order = args.gateways if round_no % 2 == 0 else list(reversed(args.gateways))
                for kind in order:
                    run_gateway(kind, topo, seed, workdir, args, results, round_no)
        finally:
            terminate(server)
    report(args, results)
    return 0


def report(args, results: dict) -> None:
    """The table of medians and ratios (and ``--json``)."""
    print()
    print(f"{'transform':16s} {'dir':5s} " + " ".join(f"{g + ' Mbit/s':>18s}" for g in args.gateways)
          + ("   ratio" if len(args.gateways) == 2 else "") + "   gateway CPU %")
    summary = {}
    for name in args.transforms:
        for direction in args.directions:
            medians, cpus = [], []
            for kind in args.gateways:
                runs = results.get((kind, name, direction), [])
                medians.append(statistics.median(r["mbps"] for r in runs) if runs else 0.0)
                cpus.append(statistics.median(100 * r["gw_cpu"] for r in runs) if runs else 0.0)
            ratio = medians[1] / medians[0] if len(medians) == 2 and medians[0] else None
            summary[f"{name}/{direction}"] = {"median_mbps": dict(zip(args.gateways, medians)),
                                              "ratio": ratio, "gateway_cpu": dict(zip(args.gateways, cpus))}
            print(f"{name:16s} {direction:5s} " + " ".join(f"{m:18.1f}" for m in medians)
                  + (f"   {ratio:5.2f}" if ratio is not None else "")
                  + "   " + " / ".join(f"{c:.0f}" for c in cpus))
    ratios = [cell["ratio"] for cell in summary.values() if cell["ratio"] is not None]
    if args.kernel and ratios:
        # On a shared machine the guests get what the other jobs leave: throughput per
        # CPU second of the gateway guest shows whether the gateway itself costs more.
        print(f"\n{'transform':16s} {'dir':5s} " + " ".join(f"{g + ' Mbit/CPU-s':>22s}" for g in args.gateways)
              + ("   ratio" if len(args.gateways) == 2 else ""))
        for name in args.transforms:
            for direction in args.directions:
                effs = []
                for kind in args.gateways:
                    runs = [r for r in results.get((kind, name, direction), []) if r["gw_cpu"] > 0]
                    effs.append(statistics.median(r["mbps"] / r["gw_cpu"] for r in runs) if runs else 0.0)
                ratio = effs[1] / effs[0] if len(effs) == 2 and effs[0] else None
                summary[f"{name}/{direction}"]["mbps_per_gateway_cpu"] = dict(zip(args.gateways, effs))
                summary[f"{name}/{direction}"]["efficiency_ratio"] = ratio
                print(f"{name:16s} {direction:5s} " + " ".join(f"{e:22.1f}" for e in effs)
                      + (f"   {ratio:5.2f}" if ratio is not None else ""))
        print(f"\nkernel data plane: lowest throughput ratio {args.gateways[1]}/{args.gateways[0]} "
              f"{min(ratios):.2f} (bar {KERNEL_BAR}): {'met' if min(ratios) >= KERNEL_BAR else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items()},
            "runs": {"/".join(k): v for k, v in results.items()},
            "summary": summary,
        }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
