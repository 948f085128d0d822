"""The engine's view of the loaded configuration: conns, credentials, pools, settings.

Built once by the daemon from files (the only I/O is there); the engine reads it but
never touches a file.  A reload builds a new Runtime; established SAs keep the conn
objects they were made with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Callable

from ikegate.ike.ts import Selector
from ikegate.log import get_logger

log = get_logger("cfg")


@dataclass
class Settings:
    """Daemon-wide settings, named and defaulted as strongSwan's ``charon.*`` options."""

    retransmit_tries: int = 5
    retransmit_timeout: float = 4.0
    retransmit_base: float = 1.8
    half_open_timeout: float = 30.0
    cookie_threshold: int = 30  # half-open SAs in total before COOKIEs are required
    cookie_threshold_ip: int = 3  # half-open SAs from one IP before COOKIEs are required
    block_threshold: int = 5  # half-open SAs from one IP before its requests are dropped
    init_limit_half_open: int = 0  # 0 = unlimited
    ikesa_limit: int = 0  # IKE SAs in total before new IKE_SA_INITs are dropped (0 = unlimited)
    ikesa_limit_ip: int = 0  # ikegate's: IKE SAs from one address before its IKE_SA_INITs are dropped
    fragment_size: int = 1280  # whole IP datagram (IPv6 minimum MTU)
    max_packet: int = 10000
    max_fragments: int = 64
    prefer_configured_proposals: bool = False  # the seed wants the client's order
    keep_alive: float = 20.0
    delete_rekeyed_delay: float = 5.0
    nonce_size: int = 32
    rsa_pss: bool = False  # charon.rsa_pss: sign with RSASSA-PSS where RFC 7427 is used
    # ikegate's own (ikegate.ike.throttle): failed credential checks (wrong passwords) from one
    # source within auth_failure_window before it is held off for auth_failure_block (0 = off)
    auth_failure_limit: int = 10
    auth_failure_window: float = 300.0
    auth_failure_block: float = 300.0
    # ikegate.redirect (RFC 5685): a ikegate.ike.tasks.ike_redirect.RedirectPolicy, None = never redirect
    redirect: object = None

    @classmethod
    def from_strongswan_conf(cls, conf) -> "Settings":
        """From a parsed strongswan.conf (``ikegate.config.strongswan_conf``), or defaults."""
        s = cls()
        if conf is None:
            return s
        ints = ("retransmit_tries", "cookie_threshold", "cookie_threshold_ip", "block_threshold",
                "init_limit_half_open", "ikesa_limit", "ikesa_limit_ip", "fragment_size", "max_packet", "nonce_size",
                "auth_failure_limit")  # fmt: skip
        floats = ("retransmit_timeout", "retransmit_base", "half_open_timeout", "keep_alive",
                  "delete_rekeyed_delay")  # fmt: skip
        times = ("auth_failure_window", "auth_failure_block")  # durations: 300, 300s, 5m
        for name in ints:
            setattr(s, name, conf.get_int(f"charon.{name}", getattr(s, name)))
        for name in floats:
            setattr(s, name, conf.get_float(f"charon.{name}", getattr(s, name)))
        for name in times:
            setattr(s, name, float(conf.get_time(f"charon.{name}", int(getattr(s, name)))))
        s.prefer_configured_proposals = conf.get_bool(
            "charon.prefer_configured_proposals", s.prefer_configured_proposals
        )
        s.rsa_pss = conf.get_bool("charon.rsa_pss", s.rsa_pss)
        from ikegate.ike.tasks.ike_redirect import RedirectPolicy

        s.redirect = RedirectPolicy.from_strongswan_conf(conf)
        return s

    def retransmit_delays(self) -> list[float]:
        """Waits after each transmission: timeout * base**n for n = 0..tries."""
        return [self.retransmit_timeout * self.retransmit_base**n for n in range(self.retransmit_tries + 1)]


@dataclass
class ServerCredentials:
    """Our certificate, its chain source and private key for one conn."""

    cert: object  # x509.Certificate
    key: object  # private key
    store: object  # ikegate.pki.store.CertStore


@dataclass
class Runtime:
    conns: list  # config Conn objects that serve (auto=add/route/start)
    setup: object
    secrets: object  # ikegate.config.secrets.Secrets
    cert_store: object  # ikegate.pki.store.CertStore
    pools: object  # ikegate.pool.mempool.PoolSet
    settings: Settings = field(default_factory=Settings)
    credentials: dict = field(default_factory=dict)  # conn name -> ServerCredentials
    random: Callable[[int], bytes] = secrets.token_bytes

    def credentials_for(self, conn) -> ServerCredentials | None:
        return self.credentials.get(conn.name)

    @property
    def uniqueids(self) -> str:
        return getattr(self.setup, "uniqueids", "yes") or "yes"


def end_selectors(end) -> list[Selector] | None:
    """The selectors of a conn end's ``*subnet=``, or None for ``%dynamic``."""
    subnets = getattr(end, "subnets", None)
    if not subnets:
        return None
    result = []
    for spec in subnets:
        if spec.network is None:  # %dynamic: the peer's virtual IPs (or our address)
            return None
        result.append(Selector.from_network(spec.network, spec.protocol, spec.from_port, spec.to_port))
    return result
