"""``ikegate example``: write the bundled example configuration with a demo PKI.

The directory becomes a strongSwan-style configuration directory holding the seed
configuration (seed-config.md) with a freshly made root CA -> intermediate CA ->
server certificate chain and a few EAP users::

    DIR/ipsec.conf                    the seed's, with leftcert/leftupdown pointing into DIR
    DIR/ipsec.secrets                 the seed's: server key line, user1/user2, include
    DIR/ipsec.d/secrets/myvpn         more users (one stored as an NTLM hash)
    DIR/ipsec.d/cacerts/intermediate.crt
    DIR/ipsec.d/certs/  DIR/ipsec.d/private/   (empty)
    DIR/ssl/private/vpn-server.crt    the server certificate only (no chain)
    DIR/ssl/private/vpn-server.key    its private key (mode 0600)
    DIR/ca/root.crt                   the root CA, to install on clients (not in cacerts)
    DIR/strongswan.d/proxyndp.updown  the seed's updown script (mode 0755)
    DIR/README.txt                    what is where, and the demo users' passwords

The CA private keys are not kept.  Passwords are never printed; they are in the
secrets files and README.txt only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ikegate.pki.generate import make_demo_pki

DEFAULT_SERVER_NAME = "vpn.example.org"

#: /etc/ipsec.conf of seed-config.md, byte for byte; only the two paths are replaced.
SEED_IPSEC_CONF = """\
config setup
    charondebug="cfg 2"
    uniqueids=no

conn myvpn
    keyexchange=ikev2
    auto=add
    left=%any
    leftsubnet=0.0.0.0/0,::/0
    leftauth=pubkey
    leftcert=/etc/ssl/private/vpn-server.crt
    leftsendcert=always
    right=%any
    rightsourceip=192.0.2.0/24,2001:db8::/96
    rightauth=eap-mschapv2
    rightsendcert=never
    rightdns=198.51.100.53,198.51.100.54,2001:db8:8000::53:1,2001:db8:8000::53:2
    eap_identity=%any
    leftupdown=/etc/strongswan.d/proxyndp.updown
    dpdaction=clear
    dpddelay=2400s
    rekey=no
    fragmentation=yes
    ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!
    esp=aes256-aes192-aes128-sha384-sha256-sha1!
"""
SEED_LEFTCERT = "/etc/ssl/private/vpn-server.crt"
SEED_LEFTUPDOWN = "/etc/strongswan.d/proxyndp.updown"

#: /etc/strongswan.d/proxyndp.updown of seed-config.md.
SEED_UPDOWN = """\
#!/bin/bash
IFACE=eth0 # configure me
ADDR=${PLUTO_PEER_CLIENT%/*}
case $PLUTO_VERB in
  up-client-v6)   ip -6 neigh add proxy $ADDR dev $IFACE ;;
  down-client-v6) ip -6 neigh delete proxy $ADDR dev $IFACE ;;
  up-client)      ip neigh add proxy $ADDR dev $IFACE ;;
  down-client)    ip neigh delete proxy $ADDR dev $IFACE ;;
esac 2>&1 | logger -t proxyndp.updown
"""

#: The seed's own users (written to ipsec.secrets exactly as the seed has them).
SEED_USERS = {"user1": "password1", "user2": "password2"}

#: Extra demo users written to ipsec.d/secrets/myvpn (passwords generated).
DEFAULT_EXTRA_USERS = ("alice", "bob", "carol")
#: Which of them is stored as an NT hash instead of a plaintext password.
DEFAULT_NTLM_USERS = ("carol",)


@dataclass(frozen=True)
class ExampleLayout:
    """Where :func:`write_example` put everything, and the users it created."""

    directory: Path
    ipsec_conf: Path
    ipsec_secrets: Path
    user_secrets: Path
    server_cert: Path
    server_key: Path
    cacerts_dir: Path
    intermediate_cert: Path
    root_cert: Path
    updown: Path
    certs_dir: Path
    private_dir: Path
    readme: Path
    server_name: str
    key_type: str
    #: every user that can log in, name -> password
    users: dict[str, str] = field(default_factory=dict)
    #: the users stored as NTLM hashes in ``user_secrets``
    ntlm_users: tuple[str, ...] = ()


def write_example(
    directory: str | Path,
    server_name: str = DEFAULT_SERVER_NAME,
    sans: Iterable[str] = (),
    key_type: str = "rsa",
    users: Mapping[str, str] | None = None,
    ntlm_users: Iterable[str] | None = None,
) -> ExampleLayout:
    """Write the example configuration into ``directory`` (created if needed).

    ``users`` are the users of ``ipsec.d/secrets/myvpn`` (name -> password; the
    default is alice, bob and carol with random passwords); ``ntlm_users`` names
    those stored as ``NTLM 0x<MD4 hash>`` (default: carol, when ``users`` is not
    given and ``ikegate.crypto.md4`` is available).  user1/user2 always come from the seed's ipsec.secrets.  Existing files
    are overwritten.  Raises ValueError for an unusable user name or password
    (whitespace or quotes in a name, a double quote or newline in a password, an
    NTLM user without MD4 support), an unknown key type, or a directory path with
    whitespace, quotes, '#' or '=' (it must appear unquoted in the config files).
    """
    if key_type not in ("rsa", "ecdsa"):
        raise ValueError(f"key type must be rsa or ecdsa, not {key_type!r}")
    if users is None:
        extra = {name: secrets.token_urlsafe(12) for name in DEFAULT_EXTRA_USERS}
        if ntlm_users is not None:
            ntlm = tuple(ntlm_users)
        else:  # the NTLM demo line only where the project's MD4 is there
            ntlm = DEFAULT_NTLM_USERS if _md4_available() else ()
    else:
        extra = dict(users)
        ntlm = tuple(ntlm_users or ())
    _check_users(extra, ntlm)

    root = Path(directory).absolute()
    if any(c.isspace() or c in "\"'#=" for c in str(root)):
        raise ValueError(
            f"directory {str(root)!r} has whitespace, a quote, '#' or '=': such paths "
            "cannot be written unquoted into ipsec.conf and ipsec.secrets"
        )
    layout = ExampleLayout(
        directory=root,
        ipsec_conf=root / "ipsec.conf",
        ipsec_secrets=root / "ipsec.secrets",
        user_secrets=root / "ipsec.d" / "secrets" / "myvpn",
        server_cert=root / "ssl" / "private" / "vpn-server.crt",
        server_key=root / "ssl" / "private" / "vpn-server.key",
        cacerts_dir=root / "ipsec.d" / "cacerts",
        intermediate_cert=root / "ipsec.d" / "cacerts" / "intermediate.crt",
        root_cert=root / "ca" / "root.crt",
        updown=root / "strongswan.d" / "proxyndp.updown",
        certs_dir=root / "ipsec.d" / "certs",
        private_dir=root / "ipsec.d" / "private",
        readme=root / "README.txt",
        server_name=server_name,
        key_type=key_type,
        users={**SEED_USERS, **extra},
        ntlm_users=ntlm,
    )

    pki = make_demo_pki(server_name, sans, key_type)
    for path, mode in (
        (root, 0o755),
        (root / "ipsec.d", 0o755),
        (layout.cacerts_dir, 0o755),
        (layout.certs_dir, 0o755),
        (layout.private_dir, 0o700),
        (layout.user_secrets.parent, 0o700),
        (layout.server_key.parent.parent, 0o755),
        (layout.server_key.parent, 0o700),
        (layout.root_cert.parent, 0o755),
        (layout.updown.parent, 0o755),
    ):
        _make_directory(path, mode)

    _write(layout.ipsec_conf, seed_ipsec_conf(layout.server_cert, layout.updown).encode(), 0o644)
    _write(layout.ipsec_secrets, seed_ipsec_secrets(layout.server_key, key_type).encode(), 0o600)
    _write(layout.user_secrets, _user_secrets(extra, ntlm).encode(), 0o600)
    _write(layout.server_cert, pki.server.cert_pem(), 0o644)
    _write(layout.server_key, pki.server.key_pem(), 0o600)
    _write(layout.intermediate_cert, pki.intermediates[0].cert_pem(), 0o644)
    _write(layout.root_cert, pki.root.cert_pem(), 0o644)
    _write(layout.updown, SEED_UPDOWN.encode(), 0o755)
    _write(layout.readme, _readme(layout, pki.root.cert.subject.rfc4514_string()).encode(), 0o600)
    return layout


# --------------------------------------------------------------------------
# File contents


def seed_ipsec_conf(leftcert: str | Path, leftupdown: str | Path) -> str:
    """/etc/ipsec.conf of seed-config.md with its ``leftcert`` and ``leftupdown`` paths replaced."""
    text = SEED_IPSEC_CONF.replace(f"leftcert={SEED_LEFTCERT}\n", f"leftcert={leftcert}\n")
    return text.replace(f"leftupdown={SEED_LEFTUPDOWN}\n", f"leftupdown={leftupdown}\n")


def seed_ipsec_secrets(server_key: str | Path, key_type: str = "rsa") -> str:
    """/etc/ipsec.secrets of seed-config.md with the server key line pointing at
    ``server_key`` (an ``ECDSA`` line for ``key_type="ecdsa"``, else ``RSA``)."""
    key_word = "RSA" if key_type == "rsa" else "ECDSA"
    return (
        "# SSL private key\n"
        f": {key_word} {server_key}\n"
        "# Clients' credentials (plaintext)\n"
        + "".join(f'{name} : EAP "{password}"\n' for name, password in SEED_USERS.items())
        + "# whitespace either side of the ':' is significant\n"
        "include ipsec.d/secrets/myvpn\n"
    )


def _user_secrets(users: Mapping[str, str], ntlm_users: tuple[str, ...]) -> str:
    lines = ["# Demo users of the ikegate example (included from ipsec.secrets)"]
    for name, password in users.items():
        if name in ntlm_users:
            lines.append(f"{name} : NTLM 0x{nt_hash(password).hex()}")
        else:
            lines.append(f'{name} : EAP "{password}"')
    return "\n".join(lines) + "\n"


def nt_hash(password: str) -> bytes:
    """The NT password hash MD4(UTF-16LE(password)) of an ``NTLM`` secret line.

    Raises ValueError if the project's MD4 (``ikegate.crypto.md4``) is unavailable.
    """
    try:
        from ikegate.crypto.md4 import md4
    except ImportError:
        raise ValueError("NTLM secrets need ikegate.crypto.md4, which is not available") from None
    return md4(password.encode("utf-16-le"))


def _md4_available() -> bool:
    try:
        nt_hash("")
    except ValueError:
        return False
    return True


def _readme(layout: ExampleLayout, root_subject: str) -> str:
    def rel(path: Path) -> Path:
        return path.relative_to(layout.directory)

    width = max(len(name) for name in layout.users)
    user_lines = []
    for name, password in layout.users.items():
        where = rel(layout.ipsec_secrets) if name in SEED_USERS else rel(layout.user_secrets)
        how = "NT hash" if name in layout.ntlm_users else "plaintext"
        user_lines.append(f"  {name:<{width}}  {password}   ({how} in {where})")
    return f"""\
ikegate example configuration (DEMO ONLY: the keys and passwords below are not secret)

This directory is a strongSwan-style configuration directory: ipsec.conf and
ipsec.secrets are the seed configuration, with certificate and updown paths
pointing here.

Server name:   {layout.server_name}
Server cert:   {rel(layout.server_cert)}  (leaf only; its key: {rel(layout.server_key)})
Intermediate:  {rel(layout.intermediate_cert)}  (sent after the leaf)
Root CA:       {rel(layout.root_cert)}  ({root_subject})
               Install the root CA on clients as a trusted root (Windows: the
               computer's "Trusted Root Certification Authorities" store) and
               connect to "{layout.server_name}".  The CA private keys were not kept.

EAP-MSCHAPv2 users (name, password):
{chr(10).join(user_lines)}

Replace the demo users and certificate before any real use.
"""


# --------------------------------------------------------------------------
# Helpers


def _check_users(users: Mapping[str, str], ntlm_users: tuple[str, ...]) -> None:
    for name, password in users.items():
        if not name or any(c.isspace() or c in "\"':#" for c in name):
            raise ValueError(f"user name {name!r} cannot be written unquoted to ipsec.secrets")
        if name in SEED_USERS:
            raise ValueError(f"user {name!r} is already one of the seed's users")
        if '"' in password or "\n" in password or "\r" in password:
            raise ValueError(f"the password of {name!r} contains a double quote or a line break")
    for name in ntlm_users:
        if name not in users:
            raise ValueError(f"NTLM user {name!r} is not among the users")
    if ntlm_users:
        nt_hash("")  # fail early if MD4 is unavailable


def _make_directory(path: Path, mode: int) -> None:
    """Create ``path`` (and parents) with ``mode``; an existing directory is left as it is."""
    if path.is_dir():
        return
    _make_directory(path.parent, 0o755)
    path.mkdir(mode=mode)
    path.chmod(mode)  # mkdir's mode is filtered by the umask


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode``, never leaving it readable wider than ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, help="directory to write the example into")
    parser.add_argument(
        "--server-name",
        default=DEFAULT_SERVER_NAME,
        help=f"the server's DNS name, in the certificate's CN and SAN (default {DEFAULT_SERVER_NAME})",
    )
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP address for the server certificate (repeatable)",
    )
    parser.add_argument(
        "--key-type", choices=("rsa", "ecdsa"), default="rsa", help="key type of the demo PKI (default rsa)"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing example in the directory"
    )


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if (directory / "ipsec.conf").exists() and not args.force:
        print(
            f"ikegate example: {directory / 'ipsec.conf'} exists; use --force to overwrite",
            file=sys.stderr,
        )
        return 1
    try:
        layout = write_example(directory, args.server_name, args.san, args.key_type)
    except (OSError, ValueError) as exc:
        print(f"ikegate example: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the example configuration to {layout.directory}")
    print(f"  server certificate for {layout.server_name}: {layout.server_cert}")
    print(f"  root CA for the clients: {layout.root_cert}")
    print(f"  {len(layout.users)} demo users; their passwords are in {layout.readme}")
    return 0
