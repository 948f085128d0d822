"""The loaded configuration: immutable, typed, with strongSwan 5.9.8's defaults applied.

Built by :mod:`ikegate.config.conn` from ipsec.conf and by :mod:`ikegate.config.loader`
from the whole configuration directory.  Everything is a frozen dataclass or tuple;
mappings are read-only views.  Times are in seconds.

Default values are those of strongSwan 5.9.8's starter (src/starter/confread.c
``conn_defaults`` and the constants above it); how they become IKE/CHILD SA lifetimes
is src/starter/starterstroke.c plus src/libcharon/plugins/stroke/stroke_config.c
(see :attr:`Conn.ike_lifetimes` and :attr:`Conn.child_lifetimes`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ikegate.identity import Identity
from ikegate.proposal import Proposal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# confread.c defaults
IKE_LIFETIME_DEFAULT = 10800  # 3h
IPSEC_LIFETIME_DEFAULT = 3600  # 1h
SA_REPLACEMENT_MARGIN_DEFAULT = 540  # 9m
SA_REPLACEMENT_FUZZ_DEFAULT = 100  # percent of the margin
SA_REPLACEMENT_RETRIES_DEFAULT = 3
DPD_DELAY_DEFAULT = 30
DPD_TIMEOUT_DEFAULT = 150
IKE_PORT_DEFAULT = 500
#: what ``leftfirewall=yes`` sets as updown command (confread.c firewall_defaults)
FIREWALL_UPDOWN = "ipsec _updown iptables"


@dataclass(frozen=True)
class TsSpec:
    """A configured traffic selector: a network (None = ``%dynamic``, i.e. the IKE or
    virtual address of that end), an IP protocol (0 = any) and a port range."""

    network: IPNetwork | None
    protocol: int = 0
    from_port: int = 0
    to_port: int = 0xFFFF

    @property
    def dynamic(self) -> bool:
        return self.network is None

    def __str__(self) -> str:
        base = "%dynamic" if self.network is None else str(self.network)
        if self.protocol == 0 and self.from_port == 0 and self.to_port == 0xFFFF:
            return base
        if self.from_port == 0 and self.to_port == 0xFFFF:
            port = ""
        elif self.from_port == 0xFFFF and self.to_port == 0:
            port = "/%opaque"
        elif self.from_port == self.to_port:
            port = f"/{self.from_port}"
        else:
            port = f"/{self.from_port}-{self.to_port}"
        return f"{base}[{self.protocol}{port}]"


@dataclass(frozen=True)
class PoolSpec:
    """One ``rightsourceip`` token (strongswan-semantics.md section 2.6 says how the
    address pools built from it hand out addresses).

    ``kind``: ``"cidr"`` (``net/len``, ``base`` is the address as written, e.g.
    ``10.0.0.5`` of ``10.0.0.5/24``), ``"range"`` (``first-last`` inclusive),
    ``"config"`` (``%config``, ``%config4``... : hand out what the client asks for; the
    pool is named after the conn) or ``"named"`` (``%name``: an external pool such as
    ``%dhcp`` or ``%radius``).  ``name`` is the pool's name: the token itself for
    in-memory pools, as strongSwan names them (pools with the same name are shared).
    """

    token: str
    kind: str
    name: str
    network: IPNetwork | None = None
    base: IPAddress | None = None
    first: IPAddress | None = None
    last: IPAddress | None = None
    family: int | None = None  # 4, 6, or None for %config/%name

    def __str__(self) -> str:
        return self.token


@dataclass(frozen=True)
class SignatureConstraint:
    """A signature scheme constraint from e.g. ``pubkey-sha256`` / ``rsa/pss-sha384`` /
    ``ike:ecdsa-sha256``: ``key`` is rsa, rsa/pss, ecdsa, ed25519, ed448, bliss or any;
    ``hash`` is md5, sha1, sha224, sha256, sha384, sha512 or identity; ``ike_only``
    marks an ``ike:`` constraint (for the IKE AUTH signature, not the certificates)."""

    key: str
    hash: str
    ike_only: bool = False

    def __str__(self) -> str:
        prefix = "ike:" if self.ike_only else ""
        return f"{prefix}{self.key}-{self.hash}"


@dataclass(frozen=True)
class AuthSpec:
    """An authentication round (``leftauth``/``rightauth``/``...auth2``).

    ``method``: ``pubkey`` (RSA/ECDSA/EdDSA signatures, also ``rsa``/``ecdsa``/``ike:``
    forms), ``psk``, ``eap``, ``xauth`` or ``any`` (no constraint).  For EAP,
    ``eap_type`` is the method number (26 for ``eap-mschapv2``, None for plain ``eap``:
    any method), ``eap_vendor`` the vendor of an expanded type, ``radius`` True for
    ``eap-radius`` (delegate to RADIUS).
    """

    method: str
    text: str
    eap_type: int | None = None
    eap_vendor: int | None = None
    radius: bool = False
    xauth_backend: str | None = None
    key_type: str | None = None
    key_strength: int | None = None
    signature_constraints: tuple[SignatureConstraint, ...] = ()

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class End:
    """One end of a conn (after deciding which is local).

    ``hosts`` are the address tokens of ``left=``/``right=`` (``("%any",)`` if unset);
    ``id`` is the effective IKE identity: the configured one, or the address, replaced
    by the certificate's subject DN when a certificate is configured and does not
    contain it (``id_from_cert`` is then True); None only for ID_ANY ("any peer").
    ``cert_object`` is the loaded ``cryptography`` certificate of ``cert``.
    """

    side: str  # "left" | "right"
    hosts: tuple[str, ...] = ("%any",)
    allow_any: bool = False
    id: Identity | None = None
    id_configured: str | None = None
    id_loose: bool = False
    id_from_cert: bool = False
    auth: AuthSpec = AuthSpec("pubkey", "pubkey")
    auth2: AuthSpec | None = None
    id2: Identity | None = None
    cert: Path | None = None
    cert_object: Any = field(default=None, compare=False, repr=False)
    cert2: Path | None = None
    sendcert: str = "ifasked"
    subnets: tuple[TsSpec, ...] = (TsSpec(None),)
    protocol: int = 0
    from_port: int = 0
    to_port: int = 0xFFFF
    sourceip: tuple[str, ...] = ()
    dns: tuple[IPAddress, ...] = ()
    updown: str | None = None
    firewall: bool = False
    hostaccess: bool = False
    ikeport: int = IKE_PORT_DEFAULT
    ca: Identity | None = None
    ca2: Identity | None = None
    groups: tuple[Identity, ...] = ()
    groups2: tuple[Identity, ...] = ()
    cert_policy: tuple[str, ...] = ()
    sigkey: str | None = None


@dataclass(frozen=True)
class IkeLifetimes:
    """IKE_SA timing as stroke_config.c build_peer_cfg() derives it (0 = never)."""

    rekey_time: int
    reauth_time: int
    over_time: int
    jitter_time: int


@dataclass(frozen=True)
class ChildLifetimes:
    """CHILD_SA limits as stroke_config.c build_child_cfg() derives them (0 = none)."""

    life_time: int
    rekey_time: int
    jitter_time: int
    life_bytes: int
    rekey_bytes: int
    jitter_bytes: int
    life_packets: int
    rekey_packets: int
    jitter_packets: int


@dataclass(frozen=True)
class Conn:
    """One loaded ``conn`` section."""

    name: str
    local: End
    remote: End
    local_is_left: bool = True
    keyexchange: str = "ike"
    auto: str = "ignore"
    ike: tuple[Proposal, ...] = ()
    esp: tuple[Proposal, ...] = ()
    ike_strict: bool = False
    esp_strict: bool = False
    ike_text: str | None = None
    esp_text: str | None = None
    dpdaction: str = "none"
    dpddelay: int = DPD_DELAY_DEFAULT
    dpdtimeout: int = DPD_TIMEOUT_DEFAULT
    closeaction: str = "none"
    inactivity: int = 0
    rekey: bool = True
    reauth: bool = True
    ikelifetime: int = IKE_LIFETIME_DEFAULT
    lifetime: int = IPSEC_LIFETIME_DEFAULT
    margintime: int = SA_REPLACEMENT_MARGIN_DEFAULT
    rekeyfuzz: int = SA_REPLACEMENT_FUZZ_DEFAULT
    lifebytes: int = 0
    marginbytes: int = 0
    lifepackets: int = 0
    marginpackets: int = 0
    keyingtries: int = SA_REPLACEMENT_RETRIES_DEFAULT
    fragmentation: str = "yes"
    forceencaps: bool = False
    mobike: bool = True
    eap_identity: Identity | None = None
    eap_identity_text: str | None = None
    aaa_identity: Identity | None = None
    xauth_identity: Identity | None = None
    type: str = "tunnel"
    compress: bool = False
    installpolicy: bool = True
    sha256_96: bool = False
    ikedscp: int = 0
    modeconfig: str = "pull"
    xauth: str = "client"
    mark_in: tuple[int, int] | None = None
    mark_out: tuple[int, int] | None = None
    reqid: int = 0
    replay_window: int | None = None
    tfc: int = 0  # -1 for %mtu
    pools: tuple[PoolSpec, ...] = ()
    source: tuple[str, int] = ("", 0)

    @property
    def loaded(self) -> bool:
        """strongSwan loads only conns with auto=add, route or start."""
        return self.auto != "ignore"

    @property
    def dpd_interval(self) -> int:
        """Seconds between liveness checks; 0 = none (``dpdaction=none`` disables DPD
        whatever ``dpddelay`` says, stroke_config.c)."""
        return 0 if self.dpdaction == "none" else self.dpddelay

    @property
    def no_certreq(self) -> bool:
        """``rightsendcert=never`` also means: send no CERTREQ (stroke_config.c)."""
        return self.remote.sendcert == "never"

    @property
    def ike_lifetimes(self) -> IkeLifetimes:
        """With ``rekey=no`` the starter sends no lifetimes: all zero."""
        if not self.rekey:
            return IkeLifetimes(0, 0, 0, 0)
        over = self.margintime
        jitter = self.margintime * self.rekeyfuzz // 100
        remaining = max(self.ikelifetime - over, 0)
        if self.reauth:
            return IkeLifetimes(0, remaining, over, jitter)
        return IkeLifetimes(remaining, 0, over, jitter)

    @property
    def child_lifetimes(self) -> ChildLifetimes:
        if not self.rekey:
            return ChildLifetimes(0, 0, 0, 0, 0, 0, 0, 0, 0)
        fuzz = self.rekeyfuzz
        return ChildLifetimes(
            life_time=self.lifetime,
            rekey_time=max(self.lifetime - self.margintime, 0),
            jitter_time=self.margintime * fuzz // 100,
            life_bytes=self.lifebytes,
            rekey_bytes=max(self.lifebytes - self.marginbytes, 0),
            jitter_bytes=self.marginbytes * fuzz // 100,
            life_packets=self.lifepackets,
            rekey_packets=max(self.lifepackets - self.marginpackets, 0),
            jitter_packets=self.marginpackets * fuzz // 100,
        )


@dataclass(frozen=True)
class Setup:
    """``config setup``.  ``charondebug`` maps subsystem to level as the starter passes
    them to charon (``sscanf("%3s %d,")`` pairs, stopping at the first bad one)."""

    charondebug: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    charondebug_text: str | None = None
    uniqueids: str = "yes"
    cachecrls: bool = False
    strictcrlpolicy: str = "no"


@dataclass(frozen=True)
class CaSection:
    """A ``ca`` section (CA certificate plus revocation URIs)."""

    name: str
    cacert: Path | None = None
    cacert_object: Any = field(default=None, compare=False, repr=False)
    crluri: str | None = None
    crluri2: str | None = None
    ocspuri: str | None = None
    ocspuri2: str | None = None
    certuribase: str | None = None
    auto: str = "ignore"
    source: tuple[str, int] = ("", 0)


@dataclass(frozen=True)
class Config:
    """The whole configuration of a configuration directory."""

    setup: Setup
    conns: tuple[Conn, ...]
    ca_sections: tuple[CaSection, ...] = ()
    confdir: Path = Path("/etc")
    secrets: Any = field(default=None, repr=False)  # ikegate.config.secrets.Secrets
    settings: Any = field(default=None, repr=False)  # ikegate.config.strongswan_conf.StrongswanConf
    cacert_files: tuple[Path, ...] = ()

    def conn(self, name: str) -> Conn | None:
        return next((c for c in self.conns if c.name == name), None)

    @property
    def loaded_conns(self) -> tuple[Conn, ...]:
        """The conns strongSwan would load (auto != ignore), in file order."""
        return tuple(c for c in self.conns if c.loaded)
