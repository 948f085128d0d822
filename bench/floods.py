"""Floods against ikegate at a fixed offered rate: what a legitimate client and the gateway feel.

Run as root from the repository::

    .venv/bin/python bench/floods.py [--rates 2000 10000] [--seconds 5] [--floods sa_init esp fragments eap]
                                     [--rounds 5] [--json out.json]

The floods and their machinery are those of ``tests/interop/test_floods.py`` (which runs
them briefly, with assertions); here they run longer, at the rates given, and the
figures are printed as a table.  One topology: a gateway namespace running ikegate (the
seed configuration, userspace data plane with its ESP worker processes), a flooding
client and a legitimate strongSwan client (user2) on one bridge; the spoofed sources are
10.98.0.0/16, routed from the gateway to the flooder.  Each flood gets a fresh gateway:

* ``sa_init``: IKE_SA_INIT requests, each from its own spoofed address (at most 65534
  per run: rate x seconds), gateway with ``charon.half_open_timeout = 3`` so that the
  COOKIEs go soon after the flood;
* ``esp``: ESP with random unknown SPIs from spoofed addresses, half ESP-in-UDP to port
  4500, half native (IP protocol 50);
* ``fragments``: IKE Encrypted Fragments (RFC 7383), half for IKE SAs that do not exist
  (spoofed sources, ports 500 and 4500), half for a half-open SA of the flooder's own
  (failing their integrity check, or properly sealed and never complete; the SA lives
  30 s, so keep ``--seconds`` under 25);
* ``eap``: a strongSwan client on the flooder's address opens ``--guesses`` connections
  at once, each with a wrong password for user2 (gateway with ``auth_failure_limit =
  3``: the address is held off after three).

For each: the legitimate client connects ``--rounds`` times (after one warm-up connect)
before the flood, ``--rounds`` times under it, and ``--rounds`` times after it (once no
half-open SA is left); "unloaded" is the median of before and after, "flood" the median
under the flood.  The gateway's resident memory (VmRSS summed over the daemon and its
ESP workers) is taken before the flood, sampled every 0.25 s during it (the largest
sample is shown) and taken 1 s after it; so are its half-open IKE SAs (largest sample).
"Gateway CPU" is the CPU time of those processes from the flood's start to its end
(the legitimate client's connects included), in % of one core.
Printed: a line per flood while running, then a table (Markdown, for the README) with
the machine's load average at the start and end.

Two shared cores: the flood sender is a thread of this process, on the same machine as
the gateway and both clients, so what is measured is an upper bound of what the flood
costs the legitimate client.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from interop.conftest import environment_problem  # noqa: E402
from interop.gateway import ikegate_daemon_missing  # noqa: E402
from interop.seed import write_seed  # noqa: E402
from interop.test_floods import build_bed, flooded, teardown_bed  # noqa: E402

MB = 2**20
FLOODS = ("sa_init", "esp", "fragments", "eap")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[2000.0, 10000.0],
                        help="offered packets per second, one run per rate and flood (default 2000 10000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each flood (default 5)")
    parser.add_argument("--floods", nargs="+", choices=FLOODS, default=list(FLOODS))
    parser.add_argument("--guesses", type=int, default=16,
                        help="eap: failing connections the guesser starts at once (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="connects measured before, under, after (default 5)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 25:
        parser.error("--seconds must be in (0, 25]")
    for rate in args.rates:
        if rate <= 0 or rate * args.seconds > 65534:
            parser.error(f"rate {rate:g}: rate x seconds must be in (0, 65534] (one spoofed address per packet)")
    return args


def row(report, plan_unit: str) -> dict:
    return {
        "flood": report.kind,
        "offered": (f"{report.offered_rate:,.0f}/s" if plan_unit == "packets/s"
                    else f"{report.offered_rate:.0f} logins"),
        "sent": f"{report.sent:,} in {report.seconds:.1f} s",
        "unloaded_ms": 1000 * report.unloaded_median,
        "flood_ms": 1000 * report.loaded_median,
        "ratio": report.ratio,
        "rss": f"{report.rss_before / MB:.1f} / {report.rss_during / MB:.1f} / {report.rss_after / MB:.1f}",
        "cpu": 100 * report.cpu / report.seconds if report.seconds else 0.0,
        "half_open": report.half_open_max,
        "notes": notes(report),
    }


def notes(report) -> str:
    """What the gateway did with the flood, from its counters."""
    parts = []
    for name, label in (("cookies_sent", "COOKIEs"), ("unknown_spi", "ESP unknown SPI drops"),
                        ("dropped", "IKE drops"), ("auth_failures", "failed logins"),
                        ("auth_holdoffs", "hold-offs"), ("auth_blocked", "held-off IKE_SA_INITs dropped"),
                        ("auth_refused", "IKE_AUTHs refused"), ("blocked", "over block_threshold"),
                        ("limited", "over a limit"), ("ike_backlog", "IKE backlog drops")):
        grew = report.grew(name)
        if grew:
            parts.append(f"{grew:,} {label}")
    return ", ".join(parts)


HEADER = ("| flood | offered | sent | connect unloaded (ms) | under flood (ms) | ratio "
          "| gateway CPU during flood | gateway RSS MB before / during / after | half-open max "
          "| the gateway's counters |")


def table(rows: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['flood']} | {r['offered']} | {r['sent']} | {r['unloaded_ms']:.0f} | {r['flood_ms']:.0f} "
                     f"| {r['ratio']:.2f} | {r['cpu']:.0f} % | {r['rss']} | {r['half_open']} | {r['notes']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = environment_problem() or ikegate_daemon_missing()
    if problem:
        print(f"floods: cannot run here: {problem}", file=sys.stderr)
        return 2

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    load_start = os.getloadavg()
    rows, reports = [], []
    with tempfile.TemporaryDirectory(prefix="ikegate-floods-") as tmp:
        workdir = Path(tmp)
        seed = write_seed(workdir / "seed")
        bed = build_bed(seed.confdir, seed.root_cert, workdir / "bed")
        try:
            for kind in args.floods:
                rates = [float(args.guesses)] if kind == "eap" else args.rates
                for rate in rates:
                    with flooded(bed, kind, rate, args.seconds, workdir, rounds=args.rounds) as (gateway, report, plan):
                        alive = gateway.running() and "Traceback" not in gateway.log_text()
                    print(report.summary() + ("" if alive else "  ** THE GATEWAY DIED OR LOGGED A TRACEBACK **"),
                          flush=True)
                    rows.append(row(report, plan.unit))
                    reports.append({**vars(report), "unloaded_median": report.unloaded_median,
                                    "loaded_median": report.loaded_median, "ratio": report.ratio,
                                    "gateway_alive": alive})
        finally:
            teardown_bed(bed)
    load_end = os.getloadavg()
    print()
    print(table(rows))
    print(f"\n{os.cpu_count()} CPUs; load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; "
          f"{args.seconds:g} s per flood, {args.rounds} connects before, under and after each.")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()},
                                         "load": [load_start, load_end], "runs": reports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
