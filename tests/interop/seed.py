"""The seed configuration as a configuration directory, for both gateways under test.

:func:`write_seed` writes the layout of ``ikegate example`` (``ikegate.pki.example``:
ipsec.conf/ipsec.secrets of seed-config.md with certificate and updown paths pointing
into the directory, ipsec.d/cacerts/intermediate.crt, ipsec.d/secrets/myvpn,
ssl/private/vpn-server.{crt,key}, ca/root.crt).

The same directory is served by strongSwan (:func:`server_from_confdir`: its files are
overlaid on /etc in the daemon's private mount namespace) and by
``ikegate --confdir DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ikegate.pki.example import write_example

from .strongswan import StrongSwanServer

SEED_DNS = ["198.51.100.53", "198.51.100.54", "2001:db8:8000::53:1", "2001:db8:8000::53:2"]


@dataclass
class SeedSetup:
    confdir: Path
    root_cert: Path
    server_name: str
    users: dict[str, str] = field(default_factory=dict)

    @property
    def ipsec_conf(self) -> Path:
        return self.confdir / "ipsec.conf"


def write_seed(directory: Path, extra_users: dict[str, str] | None = None) -> SeedSetup:
    """Write the seed configuration directory (see module docstring)."""
    extra = dict(extra_users if extra_users is not None else {"user3": "password3"})
    layout = write_example(directory, users=extra, ntlm_users=())
    return SeedSetup(layout.directory, layout.root_cert, layout.server_name, dict(layout.users))


def server_from_confdir(ns, workdir: Path, confdir: Path, *, ipsec_conf: str | None = None,
                        **kwargs) -> StrongSwanServer:
    """A :class:`StrongSwanServer` serving ``confdir`` (ipsec.conf, ipsec.secrets,
    ipsec.d/) as strongSwan's /etc; ``ipsec_conf`` replaces the directory's ipsec.conf."""
    confdir = Path(confdir)
    files = {f"/etc/ipsec.d/{p.relative_to(confdir / 'ipsec.d')}": p
             for p in sorted((confdir / "ipsec.d").rglob("*")) if p.is_file()}
    return StrongSwanServer(
        ns, workdir,
        ipsec_conf=ipsec_conf if ipsec_conf is not None else (confdir / "ipsec.conf").read_text(),
        ipsec_secrets=(confdir / "ipsec.secrets").read_text(),
        files=files, **kwargs)
