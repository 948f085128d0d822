"""``ikegate user add|passwd|del NAME``: manage EAP users, then tell the gateway.

The files are edited by :mod:`ikegate.config.users` (which file, format, safety).  The
password never comes from the command line: ``--password-stdin`` reads one line from
standard input, ``--generate`` makes a random one and prints it (alone, on stdout),
else it is asked twice on the terminal.  After a change the running gateway is asked
to ``reload-secrets`` over its control socket.

Exit codes::

    0  done (also when no gateway runs: it reads the files when it starts)
    1  not done: the user exists / does not exist, a bad name or password, a file problem
    2  usage: no sub-command, no way to get a password
    4  the files were changed but the gateway refused to reload them

Messages go to stderr; stdout carries only a ``--generate``d password.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys

from ikegate.config.users import (
    DEFAULT_USERS_FILE,
    UserChange,
    UserError,
    add_user,
    delete_user,
    format_name,
    set_password,
)
from ikegate.control.client import DEFAULT_RUN_DIR, ControlError, request

SUBCOMMANDS = ("add", "passwd", "del")
EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_RELOAD = 0, 1, 2, 4

#: --generate: letters and digits without the look-alikes 0/O, 1/l/I (57 symbols);
#: 20 of them are about 116 bits, easy to type on a phone.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
GENERATED_LENGTH = 20


class _Usage(Exception):
    pass


def generate_password(length: int = GENERATED_LENGTH) -> str:
    """A random password from the ``secrets`` module."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``user add``, ``user passwd`` and ``user del`` (chosen by the last
    word of ``parser.prog``; a parser with another name gets all of them)."""
    word = parser.prog.split()[-1] if parser.prog else ""
    command = word if word in SUBCOMMANDS else None
    parser.add_argument("name", metavar="NAME", help="the user's name (EAP identity)")
    parser.add_argument("--confdir", default="/etc", metavar="DIR",
                        help="directory with ipsec.secrets (default /etc)")
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, metavar="DIR",
                        help=f"the gateway's run directory with its control socket (default {DEFAULT_RUN_DIR})")
    if command in (None, "add"):
        parser.add_argument("--file", metavar="PATH",
                            help=f"secrets file to add the user to (default DIR/{DEFAULT_USERS_FILE}; "
                                 "an include line is added to ipsec.secrets if needed)")
    if command in (None, "add", "passwd"):
        parser.add_argument("--plaintext", action="store_true",
                            help='store EAP "password" instead of the NT hash (NTLM 0x...)')
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of standard input")
        source.add_argument("--generate", action="store_true",
                            help="make a random password and print it on standard output")


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "user_command", None)
    if command not in SUBCOMMANDS:
        print("ikegate user: say add, passwd or del", file=sys.stderr)
        return EXIT_USAGE
    prog = f"ikegate user {command}"
    plaintext = bool(getattr(args, "plaintext", False))
    generated = False
    try:
        if command == "del":
            if getattr(args, "password_stdin", False) or getattr(args, "generate", False):
                raise _Usage("del takes no password")
            change = delete_user(args.confdir, args.name)
        else:
            password, generated = _password(args, command)
            if command == "add":
                change = add_user(args.confdir, args.name, password, plaintext=plaintext,
                                  file=getattr(args, "file", None))
            else:
                change = set_password(args.confdir, args.name, password, plaintext=plaintext)
    except _Usage as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USER
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{prog}:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER
    except (EOFError, KeyboardInterrupt):
        print(f"{prog}: aborted, nothing changed", file=sys.stderr)
        return EXIT_USER
    if generated:
        print(password, flush=True)
    _report(prog, change)
    return _reload(prog, args.run_dir)


def _password(args: argparse.Namespace, command: str) -> tuple[str, bool]:
    """The new password and whether it was generated."""
    if getattr(args, "generate", False):
        return generate_password(), True
    if getattr(args, "password_stdin", False):
        return _read_stdin_line(), False
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(f"New password for {args.name}: ")
        if getpass.getpass("Repeat it: ") != first:
            raise UserError("the passwords do not match")
        return first, False
    raise _Usage("no password: use --password-stdin, --generate, or run it on a terminal")


def _read_stdin_line() -> str:
    """One line of standard input without its line end (strict UTF-8)."""
    if sys.stdin is None:
        raise UserError("no standard input to read the password from")
    raw = getattr(sys.stdin, "buffer", None)
    if raw is not None:
        data = raw.readline()
        if not data:
            raise UserError("no password on standard input")
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the password on standard input is not UTF-8") from None
    else:
        line = sys.stdin.readline()
        if not line:
            raise UserError("no password on standard input")
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _report(prog: str, change: UserChange) -> None:
    where = f"{change.location[0]}:{change.location[1]}" if change.location else ""
    name = format_name(change.name)
    stored = {"NTLM": "as an NT hash", "EAP": "in plaintext"}.get(change.kind or "", "")
    if change.action == "add":
        print(f"{prog}: added {name} ({stored}) at {where}", file=sys.stderr)
    elif change.action == "passwd":
        print(f"{prog}: new password for {name} ({stored}) at {where}", file=sys.stderr)
    else:
        print(f"{prog}: removed {name} from {', '.join(map(str, change.files))}", file=sys.stderr)
    if change.include_added is not None:
        print(f"{prog}: ipsec.secrets now includes {change.include_added}", file=sys.stderr)
    for note in change.notes:
        print(f"{prog}: note: {note}", file=sys.stderr)


def _reload(prog: str, run_dir: str) -> int:
    """Ask the gateway at ``run_dir`` to re-read the secrets."""
    try:
        reply = request(run_dir, "reload-secrets")
    except ControlError as exc:
        print(f"{prog}: note: {exc}; it will read the change when it starts", file=sys.stderr)
        return EXIT_OK
    if reply.get("ok"):
        deleted = reply.get("deleted") or []
        closed = f"; closed IKE_SA(s) {', '.join(map(str, deleted))}" if deleted else ""
        print(f"{prog}: gateway reloaded secrets ({reply.get('users', '?')} users){closed}", file=sys.stderr)
        return EXIT_OK
    print(f"{prog}: the files were changed, but the gateway refused to reload them: "
          f"{reply.get('error', 'no reason given')}", file=sys.stderr)
    for error in reply.get("errors") or []:
        print(f"  {error}", file=sys.stderr)
    print(f"{prog}: fix that and run 'ikegate reload-secrets'", file=sys.stderr)
    return EXIT_RELOAD
