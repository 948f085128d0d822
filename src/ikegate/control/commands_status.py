"""``ikegate status [--json]``: IKE and CHILD SAs of the running gateway."""

from __future__ import annotations

import json
import sys

from ikegate.control.client import DEFAULT_RUN_DIR, ControlError, request


def add_arguments(parser) -> None:
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="the gateway's run directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    try:
        reply = request(args.run_dir, "status")
    except ControlError as exc:
        print(f"ikegate: {exc}", file=sys.stderr)
        return 3
    if not reply.get("ok"):
        print(f"ikegate: {reply.get('error', 'failed')}", file=sys.stderr)
        return 1
    sas = reply["sas"]
    if args.json:
        json.dump({"sas": sas}, sys.stdout, indent=2)
        print()
        return 0
    print(f"Security Associations ({sum(1 for s in sas if s['state'] == 'ESTABLISHED')} up, "
          f"{sum(1 for s in sas if s['state'] == 'CONNECTING')} connecting):")
    for sa in sas:
        name = f"{sa['conn']}[{sa['id']}]"
        age = sa["established_for"] if sa["established_for"] is not None else sa["age"]
        remote = sa["remote"]
        who = remote["id"] or "%any"
        if remote.get("eap_id"):
            who += f" (EAP: {remote['eap_id']})"
        print(f"{name:>14}: {sa['state']} {age:.0f}s ago, {sa['local']['host']}[{sa['local']['id']}]...{remote['host']}[{who}]")
        if sa["proposal"]:
            print(f"{name:>14}: {sa['proposal']}")
        if sa["virtual_ips"]:
            print(f"{name:>14}: virtual IPs {', '.join(sa['virtual_ips'])}")
        for child in sa["children"]:
            cname = f"{sa['conn']}{{{child['id']}}}"
            encap = ", UDP encapsulated" if child["encap"] else ""
            print(f"{cname:>14}: {child['state']}, reqid {child['reqid']}, ESP{encap} SPIs: {child['spi_in']}_i {child['spi_out']}_o")
            print(f"{cname:>14}: {child['proposal']}")
            traffic = ""
            if "bytes_in" in child:
                traffic = f", {child['bytes_in']} bytes_i ({child['packets_in']} pkts), {child['bytes_out']} bytes_o ({child['packets_out']} pkts)"
            print(f"{cname:>14}:   {' '.join(child['local_ts'])} === {' '.join(child['remote_ts'])}{traffic}")
    return 0
