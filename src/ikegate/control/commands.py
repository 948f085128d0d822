"""The control commands: ``ikegate status|statusall|leases|kill|reload|reload-secrets``.

Each asks the running gateway over its control socket (``--run-dir``, as given to
``ikegate start``) and prints the answer, or with ``--json`` the answer as JSON.  Exit codes
a script can rely on:

    0  done
    1  the gateway refused or found nothing (kill without a match, reload of a broken file)
    3  no gateway answers on that run directory (not running, or not root)
"""

from __future__ import annotations

import json
import sys
import time

from ikegate.control.client import DEFAULT_RUN_DIR, ControlError, request

EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 3


def add_arguments(parser) -> None:
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="the gateway's run directory (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
    if parser.prog.split()[-1] == "kill":
        parser.add_argument("target", help="an SA id (7 or conn[7]), a user name, a virtual IP or a peer's address")


def run(args) -> int:
    command = args.command
    fields = {"target": args.target} if command == "kill" else {}
    try:
        reply = request(args.run_dir, command, **fields)
    except ControlError as exc:
        print(f"ikegate: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        json.dump(reply, sys.stdout, indent=2)
        print()
    elif reply.get("ok"):
        PRINTERS[command](reply)
    if not reply.get("ok"):
        print(f"ikegate {command}: {reply.get('error', 'failed')}", file=sys.stderr)
        for error in reply.get("errors", []):
            print(f"  {error}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


# -- text output ---------------------------------------------------------------------------------


def print_sas(sas: list[dict]) -> None:
    up = sum(1 for s in sas if s["state"] == "ESTABLISHED")
    connecting = sum(1 for s in sas if s["state"] == "CONNECTING")
    print(f"Security Associations ({up} up, {connecting} connecting):")
    if not sas:
        print("  none")
    for sa in sas:
        name = f"{sa['conn']}[{sa['id']}]"
        age = sa["established_for"] if sa["established_for"] is not None else sa["age"]
        remote = sa["remote"]
        who = remote["id"] or "%any"
        if remote.get("eap_id"):
            who += f" (EAP: {remote['eap_id']})"
        print(f"{name:>14}: {sa['state']} {_ago(age)}, {sa['local']['host']}[{sa['local']['id']}]"
              f"...{remote['host']}[{who}]")
        if sa["proposal"]:
            print(f"{name:>14}: {sa['proposal']}")
        if sa["virtual_ips"]:
            print(f"{name:>14}: virtual IPs {', '.join(sa['virtual_ips'])}")
        radius = sa.get("radius")
        if radius:
            print(f"{name:>14}: RADIUS: Acct-Session-Id {radius['session_id'] or '-'}, accepted by server "
                  f"'{radius['server'] or '?'}'")
        for child in sa["children"]:
            cname = f"{sa['conn']}{{{child['id']}}}"
            encap = ", UDP encapsulated" if child["encap"] else ""
            print(f"{cname:>14}: {child['state']}, reqid {child['reqid']}, ESP{encap} SPIs: "
                  f"{child['spi_in']}_i {child['spi_out']}_o")
            print(f"{cname:>14}: {child['proposal']}")
            traffic = ""
            if "bytes_in" in child:
                traffic = (f", {child['bytes_in']} bytes_i ({child['packets_in']} pkts), "
                           f"{child['bytes_out']} bytes_o ({child['packets_out']} pkts)")
            print(f"{cname:>14}:   {' '.join(child['local_ts'])} === {' '.join(child['remote_ts'])}{traffic}")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes ago"
    return f"{seconds / 3600:.1f} hours ago"


def _status(reply: dict) -> None:
    print_sas(reply["sas"])


def _statusall(reply: dict) -> None:
    print(f"Status of ikegate, up {_ago(reply['uptime']).removesuffix(' ago')}, configuration {reply['confdir']}, "
          f"data plane {reply['dataplane']}:")
    print(f"Data plane: {_dataplane_line(reply)}")
    print("Listening on UDP:")
    for item in reply["listening"]:
        print(f"  {item['family']} port {item['port']}{' (NAT-T and ESP-in-UDP)' if item['natt'] else ''}")
    print("Connections:")
    if not reply["conns"]:
        print("  none")
    for conn in reply["conns"]:
        n, local, remote = conn["name"], conn["local"], conn["remote"]
        print(f"{n:>14}:  {','.join(local['hosts'])}...{','.join(remote['hosts'])}  IKEv2")
        print(f"{n:>14}:   local:  [{local['id'] or '%any'}] uses {local['auth']} authentication")
        if local["cert"]:
            print(f"{n:>14}:    cert:  \"{local['cert']}\"")
        print(f"{n:>14}:   remote: [{remote['id'] or '%any'}] uses {remote['auth']} authentication")
        if remote["sourceip"]:
            print(f"{n:>14}:   pools:  {', '.join(remote['sourceip'])}")
        print(f"{n:>14}:   child:  {' '.join(local['subnets'])} === dynamic")
        print(f"{n:>14}:   ike:    {', '.join(conn['ike'])}")
        print(f"{n:>14}:   esp:    {', '.join(conn['esp'])}")
    print("Virtual IP pools (size/online/offline):")
    if not reply["pools"]:
        print("  none")
    for pool in reply["pools"]:
        print(f"  {pool['name']}: {pool['size']}/{pool['online']}/{pool['offline']}")
    if reply.get("radius"):
        _print_radius(reply["radius"])
    print_sas(reply["sas"])


def _print_radius(radius: dict) -> None:
    print("RADIUS (eap-radius):")
    for server in radius["servers"]:
        if server["reachable"]:
            state = "reachable"
        else:
            since = server["down_since"]
            when = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since is not None else "?")
            state = f"not responding, tried last since {when}"
        print(f"  {server['name']}: {server['address']} auth port {server['auth_port']}, acct port "
              f"{server['acct_port']}, preference {server['preference']}: {state}")
        for use, label in (("auth", "authentication"), ("acct", "accounting")):
            counts = server.get(use)
            if counts:
                print(f"    {label}: {counts['pending']} pending, {counts['requests']} requests, "
                      f"{counts['retransmits']} retransmits, {counts['answers']} answers, "
                      f"{counts['timeouts']} timeouts")
    if radius["accounting"]:
        interval = radius["accounting_interval"]
        print(f"  accounting: on, Interim-Updates {f'every {interval}s' if interval else 'off'}, "
              f"{radius['accounting_sessions']} session(s)")
    else:
        print("  accounting: off")
    dae = radius["dae"]
    print(f"  DAE: listening on {dae['listen']} port {dae['port']}" if dae else "  DAE: off")


def _dataplane_line(reply: dict) -> str:
    """``kernel XFRM, 2 SAs and 6 policies installed`` (what the backend holds, for the kernel)."""
    line = reply.get("dataplane_description") or reply.get("dataplane", "?")
    stats = reply.get("dataplane_stats") or {}
    if reply.get("dataplane") == "kernel" and "sas" in stats:
        line += f", {stats['sas']} SAs and {stats['policies']} policies installed"
    return line


def _leases(reply: dict) -> None:
    if not reply["pools"]:
        print("no virtual IP pools")
    for pool in reply["pools"]:
        print(f"Leases in pool '{pool['name']}', usage: {pool['online']}/{pool['size']}, "
              f"{pool['online']} online, {pool['offline']} offline")
        for lease in pool["leases"]:
            print(f"  {lease['address']:<39} {'online ' if lease['online'] else 'offline'}  '{lease['identity']}'")


def _kill(reply: dict) -> None:
    for sa in reply["killed"]:
        print(f"deleted IKE_SA {sa['conn']}[{sa['id']}] of {sa['user'] or '%any'} at {sa['remote']}")


def _reload(reply: dict) -> None:
    parts = [f"{k} {', '.join(reply[k])}" for k in ("added", "changed", "removed") if reply.get(k)]
    print(f"configuration reloaded: {'; '.join(parts) if parts else 'no conn changed'}")
    for warning in reply.get("warnings", []):
        print(f"  warning: {warning}")


def _reload_secrets(reply: dict) -> None:
    deleted = reply.get("deleted") or []
    extra = f"; deleted IKE_SA(s) {', '.join(map(str, deleted))} whose secret is gone" if deleted else ""
    print(f"secrets reloaded: {reply['users']} user secret(s){extra}")


PRINTERS = {
    "status": _status,
    "statusall": _statusall,
    "leases": _leases,
    "kill": _kill,
    "reload": _reload,
    "reload-secrets": _reload_secrets,
}
