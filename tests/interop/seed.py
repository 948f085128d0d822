"""The seed configuration as a configuration directory, for both gateways under test.

:func:`write_seed` writes the layout of ``ikegate example`` (``ikegate.pki.example``:
ipsec.conf/ipsec.secrets of seed-config.md with certificate and updown paths pointing
into the directory, ipsec.d/cacerts/intermediate.crt, ipsec.d/secrets/myvpn,
ssl/private/vpn-server.{crt,key}, ca/root.crt).  If that module is not importable, an
equivalent layout is written here with :mod:`.certs`.

The same directory is served by strongSwan (:func:`server_from_confdir`: its files are
overlaid on /etc in the daemon's private mount namespace) and by
``ikegate --confdir DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .strongswan import StrongSwanServer

SEED_USERS = {"user1": "password1", "user2": "password2"}

# seed-config.md, /etc/ipsec.conf (fallback when ikegate.pki.example is missing)
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
SEED_DNS = ["198.51.100.53", "198.51.100.54", "2001:db8:8000::53:1", "2001:db8:8000::53:2"]


@dataclass
class SeedSetup:
    confdir: Path
    root_cert: Path
    server_name: str
    users: dict[str, str] = field(default_factory=dict)
    source: str = "ikegate.pki.example"

    @property
    def ipsec_conf(self) -> Path:
        return self.confdir / "ipsec.conf"


def write_seed(directory: Path, extra_users: dict[str, str] | None = None) -> SeedSetup:
    """Write the seed configuration directory (see module docstring)."""
    extra = dict(extra_users if extra_users is not None else {"user3": "password3"})
    try:
        from ikegate.pki.example import write_example
    except ImportError:
        return _write_fallback(Path(directory), extra)
    layout = write_example(directory, users=extra, ntlm_users=())
    return SeedSetup(layout.directory, layout.root_cert, layout.server_name, dict(layout.users))


def _write_fallback(directory: Path, extra: dict[str, str]) -> SeedSetup:
    from .certs import write_demo_pki

    directory = directory.absolute()
    for sub in ("ipsec.d/cacerts", "ipsec.d/certs", "ipsec.d/private", "ipsec.d/secrets", "ssl/private",
                "ca", "strongswan.d"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    pki = write_demo_pki(directory / "pki")
    (directory / "ssl/private/vpn-server.crt").write_bytes(pki.server_cert.read_bytes())
    (directory / "ssl/private/vpn-server.key").write_bytes(pki.server_key.read_bytes())
    (directory / "ipsec.d/cacerts/intermediate.crt").write_bytes(pki.intermediate_cert.read_bytes())
    (directory / "ca/root.crt").write_bytes(pki.root_cert.read_bytes())
    updown = directory / "strongswan.d/proxyndp.updown"
    updown.write_text(SEED_UPDOWN)
    updown.chmod(0o755)
    conf = SEED_IPSEC_CONF.replace("/etc/ssl/private/vpn-server.crt", str(directory / "ssl/private/vpn-server.crt"))
    conf = conf.replace("/etc/strongswan.d/proxyndp.updown", str(updown))
    (directory / "ipsec.conf").write_text(conf)
    (directory / "ipsec.secrets").write_text(
        "# SSL private key\n"
        f": RSA {directory / 'ssl/private/vpn-server.key'}\n"
        "# Clients' credentials (plaintext)\n"
        + "".join(f'{u} : EAP "{p}"\n' for u, p in SEED_USERS.items())
        + "# whitespace either side of the ':' is significant\n"
        "include ipsec.d/secrets/myvpn\n")
    (directory / "ipsec.d/secrets/myvpn").write_text("".join(f'{u} : EAP "{p}"\n' for u, p in extra.items()))
    return SeedSetup(directory, directory / "ca/root.crt", pki.server_name, {**SEED_USERS, **extra},
                     source="tests/interop/certs.py")


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
