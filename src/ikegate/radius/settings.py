"""strongSwan's eap-radius settings (``charon.plugins.eap-radius.*`` in strongswan.conf).

Read the way strongSwan 5.9.8 reads them (src/libcharon/plugins/eap_radius/
eap_radius_plugin.c ``load_configs``, conf/plugins/eap-radius.opt):

* ``server`` (the legacy single server) with ``secret``, ``port`` (1812), accounting
  on 1813, ``nas_identifier`` (``strongSwan``); a ``server`` without ``secret`` means
  no server at all;
* otherwise every section of ``servers { <name> { ... } }``: ``address`` and ``secret``
  (a server missing either is skipped), ``auth_port`` (else its ``port``, else the
  global ``port``), ``acct_port`` (1813), ``preference`` (0), ``nas_identifier`` and
  ``retransmit_tries``/``_timeout``/``_base``, each falling back to the global one;
* ``retransmit_tries`` (4), ``retransmit_timeout`` (2.0 s), ``retransmit_base`` (1.4);
* ``accounting`` (no), ``accounting_interval`` (0: no Interim-Update unless the
  Access-Accept asks), ``accounting_close_on_timeout`` (yes), ``accounting_requires_vip``
  (no), ``close_all_on_timeout`` (no), ``station_id_with_port`` (yes), ``class_group``
  (no), ``eap_start`` (no), ``id_prefix`` (none);
* ``dae { enable (no)  listen (0.0.0.0)  port (3799)  secret }``, plus ikegate's own
  ``dae.clients``: a comma list of addresses allowed to send Disconnect/CoA requests
  (empty: whoever knows the secret, as strongSwan).

Host names are resolved once, when the settings are read (strongSwan does the same);
a server whose name does not resolve is skipped with a log line.  Secrets never appear
in a repr or a log line.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from ikegate import log as logmod
from ikegate.radius.client import RadiusClient, RadiusServer, Reachability

__all__ = ["DaeSettings", "RadiusSettings", "PREFIX"]

log = logmod.get_logger("cfg")

PREFIX = "charon.plugins.eap-radius"


@dataclass(frozen=True)
class DaeSettings:
    """Dynamic authorisation (RFC 5176): where to listen and the secret to check with."""

    enable: bool = False
    listen: str = "0.0.0.0"
    port: int = 3799
    secret: bytes | None = field(default=None, repr=False)
    clients: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Enabled and usable (strongSwan disables DAE without a secret)."""
        return self.enable and bool(self.secret)


@dataclass(frozen=True)
class RadiusSettings:
    servers: tuple[RadiusServer, ...] = ()
    tries: int = 4
    timeout: float = 2.0
    base: float = 1.4
    nas_identifier: str = "strongSwan"
    accounting: bool = False
    accounting_interval: int = 0
    accounting_close_on_timeout: bool = True
    accounting_requires_vip: bool = False
    close_all_on_timeout: bool = False
    station_id_with_port: bool = True
    class_group: bool = False
    eap_start: bool = False
    id_prefix: str = ""
    dae: DaeSettings = DaeSettings()
    #: the servers' reachability, shared by every client of these settings (authentication
    #: and accounting, as strongSwan); not part of the settings' value
    reachability: Reachability = field(default_factory=Reachability, compare=False, repr=False)

    @property
    def enabled(self) -> bool:
        """At least one RADIUS server is configured."""
        return bool(self.servers)

    def client(self) -> RadiusClient | None:
        """A new :class:`RadiusClient` for these servers (None without servers).  Each
        user (authentication, accounting) gets its own, with its own identifiers; they
        share which servers are held down (:attr:`reachability`)."""
        if not self.servers:
            return None
        return RadiusClient(list(self.servers), tries=self.tries, timeout=self.timeout, base=self.base,
                            reachability=self.reachability)

    @classmethod
    def from_strongswan_conf(cls, conf, *, resolve=None) -> "RadiusSettings":
        """The eap-radius settings of a :class:`~ikegate.config.strongswan_conf.StrongswanConf`.
        ``resolve(name) -> address | None`` turns host names into addresses (default:
        the system resolver)."""
        resolve = resolve or _resolve
        tries = conf.get_int(f"{PREFIX}.retransmit_tries")
        timeout = conf.get_float(f"{PREFIX}.retransmit_timeout")
        base = conf.get_float(f"{PREFIX}.retransmit_base")
        nas_identifier = conf.get_str(f"{PREFIX}.nas_identifier", "strongSwan")
        port = conf.get_int(f"{PREFIX}.port")
        servers: list[RadiusServer] = []
        legacy = conf.get_str(f"{PREFIX}.server")
        if legacy:
            secret = conf.get_str(f"{PREFIX}.secret")
            if not secret:
                log.info("no RADIUS secret defined")
            else:
                server = _server(legacy, legacy, secret, port, 1813, 0, nas_identifier, None, None, None, resolve)
                if server is not None:
                    servers.append(server)
        else:
            for name in conf.subsections(f"{PREFIX}.servers"):
                key = f"{PREFIX}.servers.{name}"
                address = conf.get_str(f"{key}.address")
                if not address:
                    log.info("RADIUS server '%s' misses address, skipped", name)
                    continue
                secret = conf.get_str(f"{key}.secret")
                if not secret:
                    log.info("RADIUS server '%s' misses secret, skipped", name)
                    continue
                auth_port = conf.get_int(f"{key}.auth_port", conf.get_int(f"{key}.port", port))
                server = _server(
                    name, address, secret, auth_port, conf.get_int(f"{key}.acct_port", 1813),
                    conf.get_int(f"{key}.preference", 0),
                    conf.get_str(f"{key}.nas_identifier", nas_identifier),
                    conf.get_int(f"{key}.retransmit_tries", tries),
                    conf.get_float(f"{key}.retransmit_timeout", timeout),
                    conf.get_float(f"{key}.retransmit_base", base),
                    resolve,
                )
                if server is not None:
                    servers.append(server)
            if servers:
                log.info("loaded %d RADIUS server configuration%s", len(servers), "" if len(servers) == 1 else "s")
        dae_secret = conf.get_str(f"{PREFIX}.dae.secret")
        clients = tuple(c.strip() for c in (conf.get_str(f"{PREFIX}.dae.clients") or "").split(",") if c.strip())
        dae = DaeSettings(
            enable=conf.get_bool(f"{PREFIX}.dae.enable"),
            listen=conf.get_str(f"{PREFIX}.dae.listen", "0.0.0.0"),
            port=conf.get_int(f"{PREFIX}.dae.port"),
            secret=dae_secret.encode("utf-8") if dae_secret else None,
            clients=clients,
        )
        if dae.enable and not dae.secret:
            log.info("missing RADIUS DAE secret, disabled")
        return cls(
            servers=tuple(servers),
            tries=tries,
            timeout=timeout,
            base=base,
            nas_identifier=nas_identifier,
            accounting=conf.get_bool(f"{PREFIX}.accounting"),
            accounting_interval=conf.get_time(f"{PREFIX}.accounting_interval"),
            accounting_close_on_timeout=conf.get_bool(f"{PREFIX}.accounting_close_on_timeout"),
            accounting_requires_vip=conf.get_bool(f"{PREFIX}.accounting_requires_vip"),
            close_all_on_timeout=conf.get_bool(f"{PREFIX}.close_all_on_timeout"),
            station_id_with_port=conf.get_bool(f"{PREFIX}.station_id_with_port"),
            class_group=conf.get_bool(f"{PREFIX}.class_group"),
            eap_start=conf.get_bool(f"{PREFIX}.eap_start"),
            id_prefix=conf.get_str(f"{PREFIX}.id_prefix", "") or "",
            dae=dae,
        )


def _server(name, address, secret, auth_port, acct_port, preference, nas_identifier, tries, timeout, base,
            resolve) -> RadiusServer | None:
    resolved = resolve(address)
    if resolved is None:
        log.info("loading RADIUS server '%s' failed (cannot resolve %s), skipped", name, address)
        return None
    return RadiusServer(name=name, address=resolved, secret=secret.encode("utf-8"), auth_port=auth_port,
                        acct_port=acct_port, preference=preference, nas_identifier=nas_identifier,
                        tries=tries, timeout=timeout, base=base)


def _resolve(host: str) -> str | None:
    """An address literal as it is; a name through the system resolver (first answer)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    return infos[0][4][0] if infos else None
