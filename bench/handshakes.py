"""Handshake rate, connect time, CPU and memory per SA: strongSwan as the gateway, then ikegate.

Run as root from the repository::

    .venv/bin/python bench/handshakes.py --n 100 500 2000 [--json out.json]

For each N and each gateway, N IKE+CHILD SAs (EAP-MSCHAPv2 users, one per SA, each from
its own source address) are started at once and the time until each one is up is
measured.

Topology (``tests/interop``: :class:`Topology` plus extra addresses): a gateway
namespace and ``--clients`` client namespaces on one bridge.  Client ``k`` carries its
share of the N source addresses as /32s in 10.(100+k).0.0/16 on its interface; the
gateway routes that /16 through the client's own address, so the gateway needs one ARP
entry per client namespace rather than one per SA (the kernel's neighbour table
overflows at 1024 entries).  A fresh topology is built for every (N, gateway) run.

Clients: one strongSwan 5.9 charon per client namespace (default one up to N=500, two
above; one or two made no consistent difference at N=200) holding all of its connections (swanctl,
``local_addrs`` and ``eap_id`` per connection, ``--ike-proposal``/``--esp-proposal``;
strongSwan's stock retransmission schedule, 4 s x 1.8^k with 5 retries, instead of the
test harness's shorter one; kernel-libipsec, so the CHILD SAs install; virtual IPs
installed, since kernel-libipsec refuses the CHILD SA without them, but no routes).  The
benchmark talks VICI to each charon (``bench/handshakes_vici.py``): it sends all
``initiate`` commands back to back with ``timeout = -1`` (each returns once that
IKE_SA_INIT request is sent) and timestamps the ``child-updown`` events, i.e. the moment
the client installed the CHILD SA after the last IKE_AUTH response.

Gateways, serving the same seed directory (``tests/interop/seed.py``: the seed's
ipsec.conf/ipsec.secrets with ``max(N)`` extra users; ``rightsourceip``'s IPv4 pool
widened to 10.64.0.0/16 when ``max(N)`` exceeds the seed's /24, printed when done):

* ``strongswan``: strongSwan's starter + charon (kernel-libipsec, the reference; stock
  settings: 16 worker threads, COOKIEs past 30 half-open SAs), logging at the seed's
  ``charondebug="cfg 2"``;
* ``ikegate``: ``python -m ikegate start --foreground --dataplane userspace`` (the
  default; ``--ikegate-dataplane none`` to leave the data plane out).  Userspace is the
  like-for-like choice: strongSwan installs every CHILD SA into its userspace ESP
  (libipsec) and routes it into its TUN, and ikegate then does the same.
  ``--profile`` runs it under cProfile and prints where its main process spent the time.

Both run the seed's ``leftupdown`` script for every CHILD SA (twice: IPv4 and IPv6).

Printed for each N and gateway: SAs up / N, SAs/s (up SAs / time from the first
initiate to the last SA up), median and p99 connect time (initiate sent -> CHILD SA
up, per SA), gateway CPU per SA (utime+stime, children included, of every process in
the gateway namespace: "burst" from the first initiate to the last SA up, "total" also
counting the work left after it, e.g. queued updown scripts, until the gateway is idle;
split by process on the next line), client CPU per SA, gateway resident memory (VmRSS
summed over its processes) idle after start and with the N SAs up, bytes per SA from the
two, and how busy the machine was; then ikegate/strongSwan ratios.  A run that ends with
SAs missing also shows what the gateway's threads were waiting in.  ``--json`` writes
everything (PSS too, and the per-SA times).  Every run has a deadline (``--timeout``,
default 30 s + 75 ms per SA), and namespaces and daemons are removed on failure, Ctrl-C
and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from handshakes_vici import ViciConnection, ViciError, decode  # noqa: E402
from interop.gateway import IkegateGateway, ikegate_daemon_missing  # noqa: E402
from interop.netns import Topology, namespace_pids  # noqa: E402
from interop.seed import SeedSetup, server_from_confdir, write_seed  # noqa: E402
from interop.strongswan import ClientConn, StrongSwanClient, strongswan_missing  # noqa: E402
from throughput import cpu_seconds, machine_busy  # noqa: E402

GATEWAYS = ("strongswan", "ikegate")
SEED_POOL = "rightsourceip=192.0.2.0/24,2001:db8::/96"
WIDE_POOL = "rightsourceip=10.64.0.0/16,2001:db8::/96"
SEED_POOL_SIZE = 254
#: the seed's charondebug="cfg 2" (strongSwan's default level is 1)
SERVER_LOG_LEVELS = {"default": 1, "cfg": 2}
#: the clients log state changes only (their log costs client CPU; "dmn 1" for the
#: start-up line the harness waits for)
CLIENT_LOG_LEVELS = {"default": 0, "dmn": 1, "ike": 1, "knl": 1}
#: strongSwan's stock retransmission schedule (the harness shortens it for tests); no
#: routes installed on the client (it still installs the virtual IPs: without them
#: kernel-libipsec refuses the CHILD SA)
CLIENT_CHARON_EXTRA = """    retransmit_timeout = 4.0
    retransmit_tries = 5
    install_routes = no
"""


# ----------------------------------------------------------------------------------
# process accounting

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


def pss_bytes(pids: list[int]) -> int:
    """Summed proportional set size (shared pages split between sharers) of ``pids``."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def cpu_split(pids: list[int]) -> dict[int, tuple[float, float]]:
    """Per pid: (own utime+stime, reaped children's cutime+cstime) in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    split = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        split[pid] = ((int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks)
    return split


def cpu_by_process(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]],
                   names: dict[int, str]) -> list[dict]:
    """CPU used between two :func:`cpu_split` snapshots by each long-lived process, its own
    and its reaped children's (e.g. updown scripts)."""
    out = []
    for pid, (own0, children0) in before.items():
        own1, children1 = after.get(pid, (own0, children0))
        out.append({"pid": pid, "name": names.get(pid, "?"), "own_s": round(own1 - own0, 3),
                    "children_s": round(children1 - children0, 3)})
    return out


def stall_snapshot(pids: list[int]) -> dict:
    """What the processes are doing when a run ends before all SAs are up: the process
    names, and per process the kernel function each thread waits in (wchan)."""
    processes: dict[str, int] = {}
    threads: dict[str, dict[str, int]] = {}
    for pid in pids:
        name = process_names([pid]).get(pid)
        if name is None:
            continue
        processes[name] = processes.get(name, 0) + 1
        waits = threads.setdefault(f"{name}[{pid}]", {})
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                wchan = Path(f"/proc/{pid}/task/{tid}/wchan").read_text().strip() or "running"
            except OSError:
                continue
            waits[wchan] = waits.get(wchan, 0) + 1
    return {"processes": processes, "thread_waits": {k: v for k, v in threads.items() if v}}


def process_names(pids: list[int]) -> dict[int, str]:
    names = {}
    for pid in pids:
        try:
            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            pass
    return names


def wait_idle(pids_of, *, window: float = 0.5, threshold: float = 0.03, limit: float = 30.0) -> float:
    """Wait until the processes ``pids_of()`` use less than ``threshold`` of a core over
    two consecutive ``window``s (at most ``limit`` seconds); returns the seconds waited."""
    start = time.monotonic()
    quiet = 0
    last = cpu_seconds(pids_of())
    while time.monotonic() - start < limit:
        time.sleep(window)
        now = cpu_seconds(pids_of())
        quiet = quiet + 1 if now - last < threshold * window else 0
        last = now
        if quiet >= 2:
            break
    return time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ----------------------------------------------------------------------------------
# the load

@dataclass
class ClientPlan:
    """One client namespace's share of the connections."""

    index: int
    addrs: list[str]
    users: list[tuple[str, str]]
    conns: list[ClientConn] = field(default_factory=list)


def plan_clients(n: int, n_clients: int, users: list[tuple[str, str]], gateway_addr: str,
                 ike: str, esp: str) -> list[ClientPlan]:
    """Spread N connections over the client namespaces (round robin), each with its own
    source address 10.(100+k).x.y and user."""
    plans = [ClientPlan(k, [], []) for k in range(n_clients)]
    for i in range(n):
        plan = plans[i % n_clients]
        j = len(plan.addrs)
        plan.addrs.append(f"10.{100 + plan.index}.{j // 200}.{j % 200 + 1}")
        plan.users.append(users[i])
    for plan in plans:
        plan.conns = [ClientConn(remote_addrs=gateway_addr, name=f"k{plan.index}s{j}", local_addrs=addr,
                                 eap_id=user, password=password, proposals=ike, esp_proposals=esp)
                      for j, (addr, (user, password)) in enumerate(zip(plan.addrs, plan.users))]
    return plans


def add_client_addresses(topo: Topology, plans: list[ClientPlan]) -> None:
    """The /32 source addresses on each client's eth0 and, on the gateway, a route to
    each client's /16 through that client's own address."""
    for plan in plans:
        client = topo.clients[plan.index]
        batch = "".join(f"address add {a}/32 dev eth0\n" for a in plan.addrs)
        client.run(["ip", "-batch", "-"], input=batch, timeout=120)
        topo.gateway.run(["ip", "route", "add", f"10.{100 + plan.index}.0.0/16", "via", client.v4[0]])


class UpWatcher(threading.Thread):
    """Records when each IKE and CHILD SA of one charon comes up (vici events)."""

    def __init__(self, vici_path: str) -> None:
        super().__init__(daemon=True, name=f"vici-events {vici_path}")
        self.conn = ViciConnection(vici_path, timeout=None)
        self.conn.register("ike-updown")
        self.conn.register("child-updown")
        self.ike_up: dict[str, float] = {}
        self.ike_down: dict[str, float] = {}
        self.child_up: dict[str, float] = {}
        self.vips: dict[str, list[str]] = {}
        self.last_event = time.monotonic()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while True:
                name, body = self.conn.next_event()
                now = time.monotonic()
                self.last_event = now
                message = decode(body)
                up = message.get("up") == "yes"
                for conn, section in message.items():
                    if not isinstance(section, dict):
                        continue
                    if name == "child-updown" and up:
                        self.child_up.setdefault(conn, now)
                        self.vips[conn] = section.get("local-vips", [])
                    elif name == "ike-updown":
                        (self.ike_up if up else self.ike_down).setdefault(conn, now)
        except (ViciError, OSError) as exc:
            self.error = exc

    def ike_established(self) -> int:
        return len(self.ike_up) - len(self.ike_down)


class Initiator(threading.Thread):
    """Sends ``initiate`` (no waiting) for each connection of one charon, back to back."""

    def __init__(self, vici_path: str, conns: list[ClientConn], start_event: threading.Event) -> None:
        super().__init__(daemon=True, name=f"vici-initiate {vici_path}")
        self.conn = ViciConnection(vici_path, timeout=30)
        self.conns = conns
        self.start_event = start_event
        self.sent: dict[str, float] = {}
        self.refused: dict[str, str] = {}
        self.done_at: float | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        self.start_event.wait()
        try:
            for conn in self.conns:
                self.sent[conn.name] = time.monotonic()
                reply = self.conn.request("initiate", {"child": conn.child, "ike": conn.name,
                                                       "timeout": "-1"})
                if reply.get("success") != "yes":
                    self.refused[conn.name] = reply.get("errmsg", "?")
        except (ViciError, OSError) as exc:
            self.error = exc
        self.done_at = time.monotonic()

    def stats(self) -> dict:
        return self.conn.request("stats")


# ----------------------------------------------------------------------------------
# one run: N SAs against one gateway

class ProfiledGateway(IkegateGateway):
    """ikegate under cProfile (``--profile``): the statistics go to ``profile_path`` when
    the daemon exits after SIGTERM.  Costs the daemon about 2x in Python time."""

    @property
    def profile_path(self) -> Path:
        return self.run_dir / "ikegate.prof"

    @property
    def argv(self) -> list[str]:
        return [self.python, "-m", "cProfile", "-o", str(self.profile_path), *super().argv[1:]]


def start_gateway(kind: str, topo: Topology, confdir: Path, workdir: Path, args):
    gw = topo.gateway
    if kind == "strongswan":
        daemon = server_from_confdir(gw.ns, workdir / "strongswan", confdir, log_levels=SERVER_LOG_LEVELS)
    else:
        cls = ProfiledGateway if args.profile else IkegateGateway
        daemon = cls(gw.ns, confdir, workdir / "ikegate", ["--dataplane", args.ikegate_dataplane])
    daemon.start(timeout=120)
    return daemon


def print_profile(path: Path, limit: int = 25) -> None:
    """The functions ikegate's main process spent most time in (own time, then with callees)."""
    import io
    import pstats

    if not path.exists():
        print(f"       (no profile at {path}: the daemon did not exit cleanly)")
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(order).print_stats(limit)
        text = out.getvalue()
        print(f"--- ikegate profile by {order} ---")
        print(text[text.find("   ncalls"):].rstrip(), flush=True)


def gateway_sa_count(kind: str, daemon) -> int | None:
    """How many IKE SAs the gateway itself lists (None if it could not say)."""
    try:
        if kind == "ikegate":
            return len(daemon.status()["sas"])
        out = daemon.swanctl("--stats", timeout=60).stdout
        m = re.search(r"IKE_SAs:\s*(\d+) total", out)
        return int(m.group(1)) if m else None
    except Exception:  # reported as unknown, the measurement stands without it
        return None


def run_one(kind: str, n: int, seed: SeedSetup, users: list[tuple[str, str]], confdir: Path,
            workdir: Path, args) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    n_clients = args.clients or (1 if n <= 500 else 2)
    result: dict = {"gateway": kind, "n": n, "clients": n_clients}
    daemon = None
    clients: list[StrongSwanClient] = []
    watchers: list[UpWatcher] = []
    initiators: list[Initiator] = []
    with Topology(n_clients) as topo:
        try:
            plans = plan_clients(n, n_clients, users, topo.gateway.v4[0], args.ike_proposal, args.esp_proposal)
            add_client_addresses(topo, plans)
            # the clients first (loading thousands of connections takes a while), idle
            for plan in plans:
                client = StrongSwanClient(topo.clients[plan.index].ns, workdir / f"client{plan.index}",
                                          conns=plan.conns, ca_certs=[seed.root_cert],
                                          charon_extra=CLIENT_CHARON_EXTRA, log_levels=CLIENT_LOG_LEVELS)
                clients.append(client)
                client.start(timeout=60)
            vici_paths = [f"/proc/{c.pid}/root/run/charon.vici" for c in clients]

            daemon = start_gateway(kind, topo, confdir, workdir, args)
            result["gateway_ready_s"] = daemon.ready_after
            time.sleep(args.settle)
            gw_ns = topo.gateway.ns.name
            daemon_pids = namespace_pids(gw_ns)
            names = process_names(daemon_pids)
            result["gateway_processes"] = list(names.values())
            result["rss_idle"] = rss_bytes(daemon_pids)
            result["pss_idle"] = pss_bytes(daemon_pids)

            go = threading.Event()
            for path, plan in zip(vici_paths, plans):
                watcher = UpWatcher(path)
                watcher.start()
                watchers.append(watcher)
                initiators.append(Initiator(path, plan.conns, go))
            for initiator in initiators:
                initiator.start()
            client_pids = [pid for c in clients for pid in namespace_pids(c.ns.name)]
            gw_cpu0, client_cpu0 = cpu_seconds(namespace_pids(gw_ns)), cpu_seconds(client_pids)
            split0 = cpu_split(daemon_pids)
            busy0, total0 = machine_busy()
            t0 = time.monotonic()
            go.set()

            deadline = t0 + (args.timeout or 30 + 0.075 * n)
            next_check = t0 + 2
            while True:
                ups = sum(len(w.child_up) for w in watchers)
                now = time.monotonic()
                if ups >= n or now > deadline:
                    break
                if now > next_check and all(i.done_at for i in initiators) \
                        and now - max(w.last_event for w in watchers) > 3:
                    # nothing came up for 3 s: is anything still in progress on the clients?
                    next_check = now + 2
                    total = sum(int(i.stats().get("ikesas", {}).get("total", 0)) for i in initiators)
                    if total <= sum(w.ike_established() for w in watchers):
                        break  # every SA left is up; the others failed and are gone
                time.sleep(0.02)
            gw_cpu1, client_cpu1 = cpu_seconds(namespace_pids(gw_ns)), cpu_seconds(client_pids)
            split1 = cpu_split(daemon_pids)
            busy1, total1 = machine_busy()
            result["timed_out"] = ups < n and time.monotonic() > deadline
            if ups < n:
                result["gateway_at_end"] = stall_snapshot(namespace_pids(gw_ns))

            sent = {name: t for i in initiators for name, t in i.sent.items()}
            up = {name: t for w in watchers for name, t in w.child_up.items()}
            times = [up[name] - sent[name] for name in up if name in sent]
            last_up = max(up.values()) if up else t0
            result.update({
                "up": len(up),
                "ike_up": sum(len(w.ike_up) for w in watchers),
                "refused_initiates": sum(len(i.refused) for i in initiators),
                "initiate_burst_s": max((i.done_at or time.monotonic()) for i in initiators) - t0,
                "elapsed_s": last_up - t0,
                "sas_per_s": len(up) / (last_up - t0) if up and last_up > t0 else 0.0,
                "connect_median_s": statistics.median(times) if times else float("nan"),
                "connect_p99_s": percentile(times, 0.99),
                "connect_max_s": max(times) if times else float("nan"),
                "gw_cpu_burst_s": gw_cpu1 - gw_cpu0,
                "client_cpu_s": client_cpu1 - client_cpu0,
                "machine_busy": (busy1 - busy0) / max(total1 - total0, 1e-9),
                "connect_times_s": sorted(times),
                "distinct_v4_vips": len({v[0] for v in up_vips(watchers) if v}),
            })
            result["settle_s"] = wait_idle(lambda: namespace_pids(gw_ns), limit=args.settle_max)
            result["gw_cpu_total_s"] = cpu_seconds(namespace_pids(gw_ns)) - gw_cpu0
            result["gw_cpu_by_process_burst"] = cpu_by_process(split0, split1, names)
            result["gw_cpu_by_process_total"] = cpu_by_process(split0, cpu_split(daemon_pids), names)
            alive = [p for p in daemon_pids if Path(f"/proc/{p}").exists()]
            result["rss_loaded"] = rss_bytes(alive)
            result["pss_loaded"] = pss_bytes(alive)
            result["gateway_lists"] = gateway_sa_count(kind, daemon)
            result["event_errors"] = [str(w.error) for w in watchers if w.error]
            if args.verbose and result["up"] < n:
                print(f"--- {kind} log tail ---\n{daemon.log_text()[-3000:]}", file=sys.stderr)
        finally:
            for thread in (*watchers, *initiators):
                thread.conn.close()
            if daemon is not None:
                daemon.stop(timeout=60 if args.profile else 5)
                if args.profile and kind == "ikegate":
                    print_profile(daemon.profile_path)
            for client in clients:
                client.stop()
    return result


def up_vips(watchers: list[UpWatcher]):
    for w in watchers:
        yield from w.vips.values()


# ----------------------------------------------------------------------------------
# output

COLUMNS = (
    ("N", "{n:>5d}"),
    ("gateway", "{gateway:<10s}"),
    ("up", "{up:>5d}"),
    ("SAs/s", "{sas_per_s:>7.1f}"),
    ("median ms", "{median_ms:>9.0f}"),
    ("p99 ms", "{p99_ms:>7.0f}"),
    ("CPU ms/SA burst", "{cpu_burst_ms:>15.2f}"),
    ("CPU ms/SA total", "{cpu_total_ms:>15.2f}"),
    ("client CPU ms/SA", "{client_cpu_ms:>16.2f}"),
    ("RSS idle MB", "{rss_idle_mb:>11.1f}"),
    ("RSS N MB", "{rss_loaded_mb:>8.1f}"),
    ("bytes/SA", "{bytes_per_sa:>8.0f}"),
    ("busy %", "{busy:>6.0f}"),
)


def row(r: dict) -> dict:
    up = max(r["up"], 1)
    return {
        "n": r["n"], "gateway": r["gateway"], "up": r["up"], "sas_per_s": r["sas_per_s"],
        "median_ms": 1000 * r["connect_median_s"], "p99_ms": 1000 * r["connect_p99_s"],
        "cpu_burst_ms": 1000 * r["gw_cpu_burst_s"] / up, "cpu_total_ms": 1000 * r["gw_cpu_total_s"] / up,
        "client_cpu_ms": 1000 * r["client_cpu_s"] / up,
        "rss_idle_mb": r["rss_idle"] / 2**20, "rss_loaded_mb": r["rss_loaded"] / 2**20,
        "bytes_per_sa": (r["rss_loaded"] - r["rss_idle"]) / up, "busy": 100 * r["machine_busy"],
    }


def print_header() -> None:
    print("  ".join(f"{title:>{len(fmt.format(**_EXAMPLE))}s}" for title, fmt in COLUMNS), flush=True)


_EXAMPLE = {"n": 0, "gateway": "", "up": 0, "sas_per_s": 0.0, "median_ms": 0.0, "p99_ms": 0.0,
            "cpu_burst_ms": 0.0, "cpu_total_ms": 0.0, "client_cpu_ms": 0.0, "rss_idle_mb": 0.0,
            "rss_loaded_mb": 0.0, "bytes_per_sa": 0.0, "busy": 0.0}


def print_row(r: dict) -> None:
    if "error" in r:
        print(f"{r['n']:>5d}  {r['gateway']:<10s}  FAILED: {r['error'][-1500:]}", flush=True)
        return
    values = row(r)
    print("  ".join(fmt.format(**values) for _, fmt in COLUMNS), flush=True)


def cpu_split_line(r: dict) -> str:
    """Where the gateway's CPU went (whole run, per SA): the daemon processes themselves,
    the child processes they ran and reaped (updown scripts), anything else in the
    gateway namespace."""
    up = max(r["up"], 1)
    per = r.get("gw_cpu_by_process_total", [])
    own = sorted(((p["name"], p["own_s"]) for p in per if p["own_s"] > 0), key=lambda x: -x[1])
    children = sum(p["children_s"] for p in per)
    other = r["gw_cpu_total_s"] - sum(p["own_s"] for p in per) - children
    parts = [f"{name} {1000 * s / up:.2f}" for name, s in own]
    parts.append(f"child processes (updown) {1000 * children / up:.2f}")
    if abs(other) >= 0.005 * up:
        parts.append(f"other {1000 * other / up:.2f}")
    return f"       {r['gateway']} CPU ms/SA by process: " + ", ".join(parts)


def ratios(a: dict, b: dict) -> dict:
    """ikegate (b) / strongSwan (a) for each headline figure."""
    ra, rb = row(a), row(b)

    def div(x: float, y: float) -> float | None:
        return x / y if y else None

    return {
        "sas_per_s": div(rb["sas_per_s"], ra["sas_per_s"]),
        "median": div(rb["median_ms"], ra["median_ms"]),
        "p99": div(rb["p99_ms"], ra["p99_ms"]),
        "cpu_per_sa_burst": div(rb["cpu_burst_ms"], ra["cpu_burst_ms"]),
        "cpu_per_sa_total": div(rb["cpu_total_ms"], ra["cpu_total_ms"]),
        "bytes_per_sa": div(rb["bytes_per_sa"], ra["bytes_per_sa"]),
        "rss_loaded": div(rb["rss_loaded_mb"], ra["rss_loaded_mb"]),
    }


def fmt_ratio(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


# ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 500, 2000], help="SA counts (default 100 500 2000)")
    parser.add_argument("--gateways", default=",".join(GATEWAYS))
    parser.add_argument("--clients", type=int, default=0,
                        help="client charons (namespaces); default 1 up to N=500, else 2")
    parser.add_argument("--ike-proposal", default="aes256-sha256-modp2048",
                        help="the clients' IKE proposal (default %(default)s, one IKE_SA_INIT round trip "
                             "with the seed; 'default' = strongSwan's stock proposal, which the seed answers "
                             "with INVALID_KE_PAYLOAD -> MODP-3072)")
    parser.add_argument("--esp-proposal", default="aes256-sha256")
    parser.add_argument("--ikegate-dataplane", default="userspace", choices=("userspace", "none"))
    parser.add_argument("--timeout", type=float, default=0, help="deadline per run in s (default 30 + 0.075*N)")
    parser.add_argument("--settle", type=float, default=1.0, help="s between gateway start and the idle snapshot")
    parser.add_argument("--settle-max", type=float, default=60.0,
                        help="at most this long for the gateway to go idle after the last SA")
    parser.add_argument("--profile", action="store_true",
                        help="run ikegate under cProfile and print where its main process spent the time")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    gateways = [g for g in args.gateways.split(",") if g]
    if any(g not in GATEWAYS for g in gateways):
        parser.error(f"gateways are {GATEWAYS}")
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    problem = strongswan_missing() or ("ikegate" in gateways and ikegate_daemon_missing())
    if problem:
        print(problem, file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so every finally block (daemons, namespaces) runs
    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)

    workdir = Path(tempfile.mkdtemp(prefix="ikegate-handshakes-"))
    max_n = max(args.n)
    users = [(f"load{i:05d}", f"pw-{i:05d}-load") for i in range(max_n)]
    results: list[dict] = []
    try:
        seed = write_seed(workdir / "seed", extra_users=dict(users))
        confdir = seed.confdir
        conf = (confdir / "ipsec.conf").read_text()
        if SEED_POOL not in conf:
            raise SystemExit(f"the seed ipsec.conf has no {SEED_POOL!r} line")
        pool_note = "the seed's pools (192.0.2.0/24, 2001:db8::/96)"
        if max_n > SEED_POOL_SIZE - 2:  # user1/user2 may hold leases too
            (confdir / "ipsec.conf").write_text(conf.replace(SEED_POOL, WIDE_POOL))
            pool_note = f"ipsec.conf edited: {WIDE_POOL} (the seed's /24 holds 254)"
        print(f"handshakes: N = {args.n}, gateways {gateways}, client IKE {args.ike_proposal} / ESP "
              f"{args.esp_proposal}, EAP-MSCHAPv2, ikegate --dataplane {args.ikegate_dataplane}; "
              f"{max_n} extra users, {pool_note}; work dir {workdir}", flush=True)
        print_header()
        for index, n in enumerate(args.n):
            order = gateways if index % 2 == 0 else list(reversed(gateways))
            for kind in order:
                try:
                    r = run_one(kind, n, seed, users, confdir, workdir / f"n{n}-{kind}", args)
                except Exception as exc:  # noqa: BLE001 - reported, and the other runs go on
                    r = {"gateway": kind, "n": n, "error": f"{type(exc).__name__}: {exc}"}
                results.append(r)
                print_row(r)
                if "error" in r:
                    continue
                print(cpu_split_line(r), flush=True)
                notes = []
                if r["up"] < n:
                    notes.append(f"only {r['up']} of {n} up ({r['ike_up']} IKE SAs)"
                                 + (", deadline reached" if r["timed_out"] else ""))
                if r["refused_initiates"]:
                    notes.append(f"{r['refused_initiates']} initiates refused by the client")
                if r["gateway_lists"] is not None and r["gateway_lists"] != r["up"]:
                    notes.append(f"the gateway lists {r['gateway_lists']} IKE SAs")
                if "gateway_at_end" in r:
                    notes.append(f"gateway threads then: {r['gateway_at_end']}")
                if r["settle_s"] >= args.settle_max:
                    notes.append(f"the gateway was still busy {args.settle_max:g} s after the last SA")
                if notes:
                    print("       ! " + "; ".join(notes), flush=True)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        if args.json and results:
            write_json(Path(args.json), args, gateways, results)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_header()
    for r in results:
        print_row(r)
    for r in results:
        if "error" not in r:
            print(cpu_split_line(r).replace("       ", f"  N={r['n']:<5d} ", 1))
    if set(gateways) == set(GATEWAYS):
        print()
        print("ikegate / strongSwan (SAs/s: above 1 is better; the others: below 1 is better):")
        print("                          SAs/s  median  p99   CPU/SA burst  CPU/SA total  bytes/SA  RSS with N")
        for n in args.n:
            pair = {r["gateway"]: r for r in results if r["n"] == n and "error" not in r}
            if len(pair) != 2:
                continue
            q = ratios(pair["strongswan"], pair["ikegate"])
            print(f"  N={n:<5d}                {fmt_ratio(q['sas_per_s'])}  {fmt_ratio(q['median'])}  "
                  f"{fmt_ratio(q['p99'])}  {fmt_ratio(q['cpu_per_sa_burst']):>12s}  "
                  f"{fmt_ratio(q['cpu_per_sa_total']):>12s}  {fmt_ratio(q['bytes_per_sa']):>8s}  "
                  f"{fmt_ratio(q['rss_loaded']):>10s}")
    return 0


def write_json(path: Path, args, gateways: list[str], results: list[dict]) -> None:
    summary = {}
    for n in args.n:
        pair = {r["gateway"]: r for r in results if r["n"] == n and "error" not in r}
        entry = {g: row(r) for g, r in pair.items()}
        if len(pair) == 2 and set(pair) == set(GATEWAYS):
            entry["ratio_ikegate_strongswan"] = ratios(pair["strongswan"], pair["ikegate"])
        summary[str(n)] = entry
    path.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "gateways": gateways,
                                "summary": summary, "runs": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
