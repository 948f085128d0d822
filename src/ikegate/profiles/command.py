"""``ikegate profile windows|apple|android|networkmanager``: write a client's settings.

::

    ikegate profile KIND --conn NAME --server HOST [--user NAME] [--name TEXT]
                         [--confdir DIR] [--output FILE|-] [--force] [--ca FILE]
                         [--ca-path PATH] [--password-stdin]

The profile is written to ``--output`` (``-``: standard output); by default to
``CONN[-USER].EXT`` in the current directory (``.ps1``, ``.mobileconfig``, ``.sswan``,
``.nmconnection``), mode 0600, never over an existing file without ``--force``.  A
NetworkManager profile for a private CA also writes the CA next to it
(``CONN[-USER]-ca.pem``) and points ``certificate=`` at that file unless ``--ca-path``
names where it will be on the client.

``--password-stdin`` reads the user's password from the first line of standard input
and stores it in the profile (Apple ``AuthPassword``, Android ``local.shared_secret``,
NetworkManager ``[vpn-secrets]``); without it no profile holds a password and the
client asks.  Windows profiles never hold one (``Add-VpnConnection`` takes none).

Exit status: 0 written; 1 the configuration or conn cannot give a profile (the message
says why), or the output exists; 2 usage errors.  Warnings go to standard error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ikegate.files import atomic_write
from ikegate.profiles import KINDS, build_profile
from ikegate.profiles.common import ProfileError, describe_conn

_PASSWORD_KINDS = ("apple", "android", "networkmanager")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conn", required=True, metavar="NAME", help="the conn of ipsec.conf the client uses")
    parser.add_argument("--server", required=True, metavar="HOST",
                        help="what clients connect to: the DNS name in the server certificate")
    parser.add_argument("--user", metavar="NAME", help="the EAP user name (required for apple and networkmanager)")
    parser.add_argument("--name", metavar="TEXT", help="the connection's display name (default: the server)")
    parser.add_argument("--confdir", default="/etc", metavar="DIR",
                        help="directory with ipsec.conf, ipsec.secrets, ipsec.d/ (default /etc)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="where to write ('-' for standard output; default CONN[-USER].EXT here)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--ca", metavar="FILE",
                        help="the CA certificate clients must trust, when the chain of the server "
                             "certificate cannot be completed from the configuration directory")
    parser.add_argument("--ca-path", metavar="PATH",
                        help="networkmanager: path of the CA file on the client (default: the CA file "
                             "written next to the output)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the user's password from standard input and store it in the profile "
                             "(apple, android, networkmanager)")


def _kind(args: argparse.Namespace) -> str:
    kind = getattr(args, "profile_command", None) or getattr(args, "kind", None)
    if kind not in KINDS:
        raise ProfileError(f"unknown profile kind {kind!r} (one of {', '.join(KINDS)})")
    return kind


def _read_password() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise ProfileError("--password-stdin: no password on standard input")
    return password


def _default_output(args: argparse.Namespace, extension: str) -> Path:
    stem = args.conn + (f"-{args.user}" if args.user else "")
    stem = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in stem)
    return Path(stem + extension)


def run(args: argparse.Namespace) -> int:
    from ikegate.config.errors import ConfigLoadError
    from ikegate.config.loader import load_config

    try:
        kind = _kind(args)
        module = KINDS[kind]
        if args.password_stdin and kind not in _PASSWORD_KINDS:
            raise ProfileError(f"{kind} profiles cannot hold a password (--password-stdin is for "
                               f"{', '.join(_PASSWORD_KINDS)})")
        try:
            config, diagnostics = load_config(args.confdir)
        except ConfigLoadError as exc:
            for item in exc.diagnostics.errors:
                print(f"ikegate profile: {item}", file=sys.stderr)
            return 1
        try:
            profile = describe_conn(config, args.conn, args.server, user=args.user, name=args.name, ca_file=args.ca)
        except ProfileError:
            for item in diagnostics.errors:
                print(f"ikegate profile: {item}", file=sys.stderr)
            raise
        password = _read_password() if args.password_stdin else None

        to_stdout = args.output == "-"
        output = None if to_stdout else Path(args.output) if args.output else _default_output(args, module.EXTENSION)
        extra: list[tuple[Path, bytes]] = []
        options: dict[str, object] = {}
        if kind == "networkmanager" and profile.ca_private:
            ca_path = args.ca_path
            if output is not None:
                ca_file = output.with_name(output.name.removesuffix(module.EXTENSION) + "-ca.pem")
                extra.append((ca_file, profile.ca_pem()))
                ca_path = ca_path or str(ca_file.absolute())
            elif not ca_path:
                raise ProfileError("the CA is private: write the profile to a file (--output FILE, the CA is "
                                   "written next to it) or give the CA's path on the client with --ca-path")
            options["ca_path"] = ca_path
        data = build_profile(kind, profile, password=password, **options)

        for warning in profile.warnings:
            print(f"ikegate profile: warning: {warning}", file=sys.stderr)
        if to_stdout:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return 0
        if not args.force:
            for path in [output, *(p for p, _ in extra)]:
                if path.exists():
                    raise ProfileError(f"{path} exists; use --force to overwrite it")
        for path, content in extra:
            atomic_write(path, content, 0o644)
        atomic_write(output, data, 0o600)
    except ProfileError as exc:
        print(f"ikegate profile: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ikegate profile: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {kind} profile for conn '{profile.conn.name}' to {output}")
    for path, _ in extra:
        print(f"  the CA certificate to install with it: {path}")
    return 0
