"""The `ikegate` command: one thin dispatcher; each subcommand lives with its layer.

Every subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words, module, help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("start",), "ikegate.daemon.main", "run the gateway"),
    (("status",), "ikegate.control.commands", "show established and connecting SAs"),
    (("statusall",), "ikegate.control.commands", "show listening sockets, conns, pools and every SA"),
    (("leases",), "ikegate.control.commands", "show virtual IP leases, online and offline"),
    (("kill",), "ikegate.control.commands", "delete the SAs of an SA id, user, virtual IP or peer address"),
    (("reload",), "ikegate.control.commands", "re-read the configuration (established SAs stay)"),
    (("reload-secrets",), "ikegate.control.commands", "re-read ipsec.secrets (removed users' SAs go)"),
    (("config", "check"), "ikegate.config.check", "load the configuration and print it, or its errors"),
    (("user", "add"), "ikegate.config.commands_user", "add a VPN user (NT hash in an included secrets file)"),
    (("user", "passwd"), "ikegate.config.commands_user", "change a VPN user's password"),
    (("user", "del"), "ikegate.config.commands_user", "remove a VPN user (their SAs are closed)"),
    (("profile", "windows"), "ikegate.profiles.command", "write a Windows PowerShell script for a conn"),
    (("profile", "apple"), "ikegate.profiles.command", "write an Apple .mobileconfig for a conn"),
    (("profile", "android"), "ikegate.profiles.command", "write a strongSwan Android .sswan profile for a conn"),
    (("profile", "networkmanager"), "ikegate.profiles.command", "write a NetworkManager-strongswan keyfile for a conn"),
    (("doctor",), "ikegate.config.doctor", "check the configuration for known pitfalls, each with a fix"),
    (("example",), "ikegate.pki.example", "write the bundled example: seed config, demo PKI, users"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ikegate", description="An IKEv2/IPsec VPN gateway serving strongSwan's ipsec.conf and ipsec.secrets.",
        epilog="Control commands exit 0 when done, 1 when refused or nothing matched, 3 when no gateway answers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, help_text in COMMANDS:
        target = sub
        for word in words[:-1]:
            if word not in groups:
                p = sub.add_parser(word, help=f"{word} commands")
                groups[word] = p.add_subparsers(dest=f"{word}_command", metavar="SUBCOMMAND")
            target = groups[word]
        p = target.add_parser(words[-1], help=help_text)
        p.set_defaults(_module=module)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ikegate"):
                p.set_defaults(_missing=str(exc))
                continue
            raise
        mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "_missing", None):
        print(f"ikegate: {' '.join(sys.argv[1:3])}: not available ({args._missing})", file=sys.stderr)
        return 2
    return importlib.import_module(module).run(args)


if __name__ == "__main__":
    raise SystemExit(main())
