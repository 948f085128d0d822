"""Helpers of :mod:`.test_kernel_clients`: openiked and libreswan (in user-mode Linux
guests, :mod:`.uml`) against ikegate in a namespace.

What is here:

* :func:`make_pki`: a root CA -> intermediate CA -> server certificate chain and RSA
  client certificates (``ikegate.pki.generate``), every certificate padded so that an
  IKE_AUTH carrying a certificate needs IKE fragmentation (RFC 7383) in both directions;
* :func:`write_confdir`: an ikegate configuration directory (strongSwan's ipsec.conf /
  ipsec.secrets layout) with one conn for pre-shared-key clients (``rightauth=psk``)
  and one for certificate clients (``rightauth=pubkey``, the CAs in
  ``ipsec.d/cacerts``); the gateway authenticates itself with its certificate;
* :class:`Lab`: the network: ikegate's namespace and an inner host behind it
  (:class:`~.netns.Topology`), and a router namespace on the gateway's segment with a
  LAN bridge for the guests.  The LAN has a routed subnet (:data:`ROUTED_NET`, the
  gateway routes it back through the router: native ESP) and a masqueraded one
  (:data:`NATTED_NET`, nftables ``masquerade`` on the router: NAT-T);
* client configurations: :func:`openiked_conf` (iked.conf), :func:`libreswan_conf` and
  :func:`libreswan_secrets`, and the certificate installation for each
  (:func:`install_openiked_identity`, :func:`install_libreswan_identity`);
* small queries: the gateway's SAs of one client (:func:`gateway_sas`), ESP states in a
  guest (:func:`xfrm_esp_spis`), :func:`ping_through`, :func:`wait_until`;
* sessions: :class:`LibreswanSession` and :class:`OpenikedSession` run one client daemon
  with one configuration in a guest, wait until the tunnel is up on both sides (or raise
  :class:`ConnectError` with the gateway's refusals and both logs), and leave the guest
  and the gateway clean for the next session.

What the clients need, learnt here (each is in the docstring where it is handled):
libreswan needs ``leftnexthop`` when ``left`` is not on the gateway's link, a fresh NSS
database per start, and ``leftauth=rsasig`` for RSASSA-PSS; openiked accepts only the
AUTH method it uses itself from the responder, needs a separate policy over IPv6 for
IPv6 traffic, and leaves a routing table 210 behind when it exits.

Everything uses test-only secrets generated here; nothing leaves the namespaces.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ikegate.control.client import ControlError, request
from ikegate.der import OCTET_STRING, encode_tlv
from ikegate.pki.generate import PADDING_EXTENSION, Credential, make_ca, make_client_cert, make_server_cert

from .gateway import IkegateGateway
from .netns import Namespace, Topology, add_address
from .uml import GUEST_IFACE, UmlGuest

T = TypeVar("T")

# -- names and addresses ------------------------------------------------------------------

SERVER_NAME = "vpn.example.org"
ORGANIZATION = "ikegate kernel-clients test"

GATEWAY_V4, GATEWAY_V6 = "10.99.0.1", "fd00:99::1"  # the Topology's gateway on the outer segment
ROUTER_OUTER_V4, ROUTER_OUTER_V6 = "10.99.0.20", "fd00:99::20"  # the router's addresses there
INNER_V4, INNER_V6 = "10.99.1.2", "fd00:99:1::2"  # the host behind the gateway

# The guests' LAN behind the router: two IPv4 subnets and one IPv6 subnet on one bridge.
ROUTED_NET = ipaddress.IPv4Network("172.16.1.0/24")  # routed by the gateway: native ESP
NATTED_NET = ipaddress.IPv4Network("172.16.0.0/24")  # masqueraded by the router: NAT-T
ROUTED_NET6 = ipaddress.IPv6Network("fd00:99:2::/64")  # routed by the gateway
LAN_BRIDGE = "lan0"

POOL_V4, POOL_V6 = "192.0.2.0/24", "2001:db8::/96"
DNS_SERVERS = ("198.51.100.53", "2001:db8:8000::53:1")

#: Proposals of the gateway's conns: what both clients offer by default among them
#: (openiked 7.2: AES-GCM/AES-CBC with SHA-2 and curve25519/ECP/MODP; libreswan 4.10:
#: AES-GCM and AES-CBC/SHA-2 with MODP2048 first); ``esp=`` lists DH groups so that
#: CHILD_SA rekeys with a KE payload (PFS) can be accepted.
GATEWAY_IKE = ("aes256gcm16-aes128gcm16-prfsha512-prfsha384-prfsha256-curve25519-ecp256-ecp384-modp2048-modp3072,"
               "aes256-aes128-sha512-sha384-sha256-curve25519-ecp256-ecp384-modp2048-modp3072")
GATEWAY_ESP = ("aes256gcm16-aes128gcm16-curve25519-ecp256-ecp384-modp2048-modp3072,"
               "aes256-aes128-sha512-sha384-sha256-curve25519-ecp256-ecp384-modp2048-modp3072")


@dataclass(frozen=True)
class Client:
    """One client identity: its IKE identity (an FQDN, also its certificate's dNSName)
    and its addresses on the routed and on the masqueraded LAN subnets."""

    name: str
    identity: str
    routed: str
    natted: str
    routed6: str

    @property
    def addresses(self) -> list[str]:
        """The guest's LAN addresses with prefix lengths."""
        return [f"{self.routed}/24", f"{self.natted}/24", f"{self.routed6}/64"]


def _client(program: str, role: str, host: int) -> Client:
    return Client(f"{program}-{role}", f"{program}-{role}.clients.example",
                  str(ROUTED_NET[host]), str(NATTED_NET[host]), str(ROUTED_NET6[host]))


# The openiked guest is host 10 of each LAN subnet, the libreswan guest host 20; one
# identity per role.
OPENIKED_PSK = _client("openiked", "psk", 10)  # conn psk-both
OPENIKED_CERT = _client("openiked", "cert", 10)  # conn pubkey
OPENIKED_ASYM = _client("openiked", "asym", 10)  # a PSK, but conn psk: the gateway signs
LIBRESWAN_PSK = _client("libreswan", "psk", 20)  # conn psk
LIBRESWAN_CERT = _client("libreswan", "cert", 20)  # conn pubkey
LIBRESWAN_GW_REKEY = _client("libreswan", "gwrekey", 20)  # conn gw-rekey
LIBRESWAN_MOVED = str(ROUTED_NET[21])  # where libreswan moves to (MOBIKE)

#: Certificates are padded by this many bytes (a private extension), so the
#: server's chain (two certificates) and a client certificate each make an IKE_AUTH
#: message bigger than 1280 bytes (ikegate's and libreswan's fragment sizes are
#: smaller than that).
CERT_PADDING = 1200


# -- PKI ------------------------------------------------------------------------------------

@dataclass
class Pki:
    root: Credential
    intermediate: Credential
    server: Credential
    clients: dict[str, Credential] = field(default_factory=dict)  # by identity


def make_pki(client_identities: list[str], *, padding: int = CERT_PADDING) -> Pki:
    """Root CA -> intermediate CA -> the server's certificate and one RSA (2048) client
    certificate per identity (CN and dNSName = the identity, EKU clientAuth)."""
    def org(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root = make_ca(org(f"{ORGANIZATION} Root CA"), padding=padding)
    intermediate = make_ca(org(f"{ORGANIZATION} Intermediate CA"), parent=root, padding=padding)
    server = make_server_cert(intermediate, SERVER_NAME, padding=padding)
    clients = {identity: _padded_client_cert(intermediate, identity, padding) for identity in client_identities}
    return Pki(root, intermediate, server, clients)


def _padded_client_cert(ca: Credential, identity: str, padding: int) -> Credential:
    """``make_client_cert`` has no padding option: re-sign its certificate with the same
    key and extensions plus the padding extension ``make_ca`` uses."""
    plain = make_client_cert(ca, identity)
    builder = (x509.CertificateBuilder()
               .subject_name(plain.cert.subject).issuer_name(plain.cert.issuer)
               .public_key(plain.key.public_key()).serial_number(plain.cert.serial_number)
               .not_valid_before(plain.cert.not_valid_before_utc).not_valid_after(plain.cert.not_valid_after_utc))
    for ext in plain.cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    if padding:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PADDING_EXTENSION, encode_tlv(OCTET_STRING, bytes(padding))), critical=False)
    return Credential(builder.sign(ca.key, hashes.SHA256()), plain.key)


# -- the gateway's configuration -------------------------------------------------------------

def new_psk() -> str:
    """A random test-only pre-shared key."""
    return secrets.token_urlsafe(24)


#: Fast retransmissions of the gateway's own requests (DPD, DELETE): a dead client is
#: given up after 1 + 1 + 1 s instead of minutes.
FAST_RETRANSMIT = "charon {\n    retransmit_timeout = 1\n    retransmit_base = 1.0\n    retransmit_tries = 2\n}\n"


def write_confdir(directory: Path, pki: Pki, psks: dict[str, str], *, dpddelay: str = "5s",
                  strongswan_conf: str = FAST_RETRANSMIT) -> Path:
    """The gateway's configuration directory (strongSwan's layout).  Every conn has the
    server certificate (``leftid=@SERVER_NAME``), virtual IPv4 and IPv6 addresses, DNS
    servers, DPD (``dpddelay``, ``dpdaction=clear``), fragmentation, MOBIKE, and
    ``rekey=no`` unless said otherwise; conns in the order they are chosen:

    * ``psk-both``: :data:`OPENIKED_PSK` only; both ends authenticate with the PSK
      (``leftauth=psk``): openiked accepts no other AUTH method from the responder than
      the one it uses itself (``ikev2_auth_verify: unexpected auth method``);
    * ``gw-rekey``: :data:`LIBRESWAN_GW_REKEY` only; PSK client, and the gateway itself
      rekeys the CHILD SA (``rekey=yes``, ``lifetime=10s``, ``margintime=5s``);
    * ``pubkey-pss``: :data:`LIBRESWAN_CERT` only; its AUTH must be an RSASSA-PSS
      signature (``rightauth=ike:rsa/pss-sha256-sha384-sha512``);
    * ``psk``: any PSK client (``rightauth=psk``), the gateway by its certificate;
    * ``pubkey``: client certificates (``rightauth=pubkey``) issued by the CAs in
      ipsec.d/cacerts, identities matching ``@*.clients.example``.

    ``psks`` maps client identities to their keys (``@SERVER_NAME @client : PSK``)."""
    directory = Path(directory)
    for sub in ("ipsec.d/cacerts", "ipsec.d/certs", "ipsec.d/private", "ipsec.d/crls", "ssl/private"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    cert = directory / "ssl/private/vpn-server.crt"
    key = directory / "ssl/private/vpn-server.key"
    cert.write_bytes(pki.server.cert_pem())
    key.write_bytes(pki.server.key_pem())
    key.chmod(0o600)
    (directory / "ipsec.d/cacerts/root.crt").write_bytes(pki.root.cert_pem())
    (directory / "ipsec.d/cacerts/intermediate.crt").write_bytes(pki.intermediate.cert_pem())
    (directory / "ipsec.conf").write_text(f"""config setup
    uniqueids=no

conn %default
    keyexchange=ikev2
    auto=add
    left=%any
    leftsubnet=0.0.0.0/0,::/0
    leftauth=pubkey
    leftcert={cert}
    leftid=@{SERVER_NAME}
    leftsendcert=always
    right=%any
    rightsourceip={POOL_V4},{POOL_V6}
    rightdns={",".join(DNS_SERVERS)}
    dpdaction=clear
    dpddelay={dpddelay}
    rekey=no
    fragmentation=yes
    mobike=yes
    ike={GATEWAY_IKE}
    esp={GATEWAY_ESP}

conn psk-both
    leftauth=psk
    rightauth=psk
    rightid=@{OPENIKED_PSK.identity}

conn gw-rekey
    rightauth=psk
    rightid=@{LIBRESWAN_GW_REKEY.identity}
    rekey=yes
    lifetime=10s
    margintime=5s
    rekeyfuzz=0%

conn pubkey-pss
    rightauth=ike:rsa/pss-sha256-sha384-sha512
    rightid=@{LIBRESWAN_CERT.identity}

conn psk
    rightauth=psk
    rightid=%any

conn pubkey
    rightauth=pubkey
    rightid=@*.clients.example
""")
    lines = [f": RSA {key}"]
    lines += [f'@{SERVER_NAME} @{identity} : PSK "{psk}"' for identity, psk in psks.items()]
    secrets_path = directory / "ipsec.secrets"
    secrets_path.write_text("\n".join(lines) + "\n")
    secrets_path.chmod(0o600)
    if strongswan_conf:
        (directory / "strongswan.conf").write_text(strongswan_conf)
    return directory


# -- the network ------------------------------------------------------------------------------

class Lab:
    """The gateway's :class:`~.netns.Topology` (no client namespaces, an inner host) plus
    a router namespace: ``eth0`` on the gateway's segment at :data:`ROUTER_OUTER_V4` /
    :data:`ROUTER_OUTER_V6`, bridge :data:`LAN_BRIDGE` with ``::1``/``.1`` of
    :data:`ROUTED_NET`, :data:`NATTED_NET` and :data:`ROUTED_NET6`; only
    :data:`NATTED_NET` is masqueraded, the gateway routes the other two back through
    the router.  Guests join the bridge (:meth:`guest`)."""

    def __init__(self) -> None:
        self.topo = Topology(0, inner=True)
        self.router: Namespace | None = None

    def build(self) -> "Lab":
        self.topo.build()
        try:
            router = self.router = self.topo._ns("rt")
            for scope in ("all", "default"):
                router.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
                router.sysctl(f"net.ipv6.conf.{scope}.accept_ra", 0)
            self.topo._join_bridge(router, "p-rt", [ROUTER_OUTER_V4], [ROUTER_OUTER_V6])
            router.run(["ip", "link", "add", LAN_BRIDGE, "type", "bridge", "forward_delay", "0"])
            for net in (ROUTED_NET, NATTED_NET, ROUTED_NET6):
                add_address(router, LAN_BRIDGE, f"{net[1]}/{net.prefixlen}")
            router.run(["ip", "link", "set", LAN_BRIDGE, "up"])
            router.sysctl("net.ipv4.ip_forward", 1)
            router.sysctl("net.ipv6.conf.all.forwarding", 1)
            router.run(["nft", "-f", "-"], input=(
                "table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
                f'  ip saddr {NATTED_NET} oifname "eth0" masquerade\n }}\n}}\n'))
            self.gateway_ns.run(["ip", "route", "add", str(ROUTED_NET), "via", ROUTER_OUTER_V4])
            self.gateway_ns.run(["ip", "-6", "route", "add", str(ROUTED_NET6), "via", ROUTER_OUTER_V6])
        except BaseException:
            self.destroy()
            raise
        return self

    @property
    def gateway_ns(self) -> Namespace:
        return self.topo.gateway.ns

    def guest(self, workdir: Path, client: Client) -> UmlGuest:
        """A guest (not started) on the LAN bridge with the client's addresses, default
        routes through the router's routed addresses."""
        return UmlGuest(self.router, workdir, name=client.name.split("-")[0], bridge=LAN_BRIDGE,
                        addresses=client.addresses,
                        routes=[f"default via {ROUTED_NET[1]}", f"default via {ROUTED_NET6[1]}"])

    def destroy(self) -> None:
        self.topo.destroy()


# -- openiked -----------------------------------------------------------------------------------

def openiked_conf(client: Client, *, local: str, psk: str | None = None, flows: str = "dynamic",
                  ipv6: bool = True, ikelifetime: int | None = None, lifetime: int | None = None) -> str:
    """iked.conf of a road warrior: ``active`` policies to the gateway from ``local``,
    ``srcid`` = the client's identity, ``dstid`` = :data:`SERVER_NAME`; PSK when ``psk``
    is given, else any signature with the certificate of :func:`install_openiked_identity`.

    ``flows="dynamic"`` is openiked's natural road-warrior form, ``from dynamic``
    (TSi 0.0.0.0/32, ::/128 for the address asked for); ``"any"`` proposes ``from any``
    (0.0.0.0/0, ::/0), which a strongSwan-like responder narrows to the virtual address.
    Policy ``ikg4`` (from ``local``) asks for a virtual IPv4 address; with ``ipv6`` a
    second policy ``ikg6`` asks for a virtual IPv6 address over IPv6, from the client's
    ``routed6`` to :data:`GATEWAY_V6`: openiked on Linux installs its SAs through PF_KEY,
    which gives them a selector of the *outer* address family, and every SA reqid 0.
    So over IPv4 a CHILD SA carries IPv4 only (an IPv6 packet makes the kernel ACQUIRE,
    iked logs ``ikev2_child_sa_acquire: flow wasn't found``), and two CHILD SAs to the
    same peer are not told apart.  ``iface eth0`` makes iked put the addresses on the
    interface.  Lifetimes in seconds (None: iked's defaults)."""
    source = "dynamic" if flows == "dynamic" else "any"
    policies = [("ikg4", "0.0.0.0/0", "any" if source == "any" else "dynamic", "request address any",
                 local, GATEWAY_V4)]
    if ipv6:
        policies.append(("ikg6", "::/0", "::/0" if source == "any" else "dynamic", "request address ::",
                         client.routed6, GATEWAY_V6))
    text = ["set fragmentation", "set mobike", ""]
    for name, dst, src, ask, here, peer in policies:
        lines = [f'ikev2 "{name}" active esp \\',
                 f"    from {src} to {dst} \\",
                 f"    local {here} peer {peer} \\",
                 f"    srcid {client.identity} dstid {SERVER_NAME} \\"]
        lifetimes = ([f"ikelifetime {ikelifetime}"] if ikelifetime is not None else []) + (
            [f"lifetime {lifetime}"] if lifetime is not None else [])
        if lifetimes:
            lines.append("    " + " ".join(lifetimes) + " \\")
        if psk is not None:
            lines.append(f'    psk "{psk}" \\')
        lines += [f"    {ask} \\", f"    iface {GUEST_IFACE}", ""]
        text += lines
    return "\n".join(text)


def install_openiked_identity(guest: UmlGuest, pki: Pki, identity: str) -> None:
    """The client certificate in /etc/iked/certs (iked picks it by its dNSName = srcid),
    its key as /etc/iked/private/local.key, both CA certificates in /etc/iked/ca."""
    cred = pki.clients[identity]
    guest.put(f"/etc/iked/certs/{identity}.crt", cred.cert_pem())
    guest.put("/etc/iked/private/local.key", cred.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
    guest.put("/etc/iked/ca/root.crt", pki.root.cert_pem())
    guest.put("/etc/iked/ca/intermediate.crt", pki.intermediate.cert_pem())


def openiked_established(log: str) -> list[str]:
    """iked's ``established peer`` lines."""
    return [line for line in log.splitlines() if "established peer" in line]


# -- libreswan ----------------------------------------------------------------------------------

LIBRESWAN_NSS = "sql:/var/lib/ipsec/nss"
LIBRESWAN_CERT_NICK = "client"


def libreswan_conf(client: Client, *, left: str, auth: str, name: str = "ikg", leftsubnet: str | None = None,
                   extra: str = "") -> str:
    """ipsec.conf of a libreswan road warrior: IKEv2 to the gateway from ``left``, asking
    for a virtual IPv4 address and DNS (``leftmodecfgclient``), MOBIKE allowed, the
    gateway authenticated by its certificate (``rightauth=rsasig``, ``rightid``
    :data:`SERVER_NAME`, CAs from the NSS database).

    ``auth``: ``"psk"`` (``leftauth=secret``) or ``"rsa-pss"`` (``leftauth=rsasig`` with
    the certificate of :func:`install_libreswan_identity`: libreswan 4.10 signs with
    RSASSA-PSS in an RFC 7427 Digital Signature AUTH when the responder announced
    SIGNATURE_HASH_ALGORITHMS, as ikegate does; ``leftauth`` takes no ``rsa-sha2``).
    Without ``leftsubnet`` libreswan proposes its own (outer) address as TSi, its natural
    choice; ``leftsubnet=0.0.0.0/0`` with ``narrowing=yes`` lets a strongSwan-like
    responder narrow TSi to the lease.
    ``extra`` lines go into the conn (lifetimes, dpd, pfs, ...)."""
    leftauth = {"psk": "secret", "rsa-pss": "rsasig"}[auth]
    lines = ["config setup", "    dnssec-enable=no", "    logtime=yes", "", f"conn {name}",
             "    ikev2=insist", f"    leftauth={leftauth}", "    rightauth=rsasig",
             f"    left={left}", f"    leftnexthop={_router_of(left)}", f"    leftid=@{client.identity}",
             "    leftmodecfgclient=yes",
             f"    right={GATEWAY_V4}", f"    rightid=@{SERVER_NAME}",
             "    rightsubnet=0.0.0.0/0", "    narrowing=yes", "    mobike=yes", "    fragmentation=force",
             "    auto=add"]
    if auth != "psk":
        lines += [f"    leftcert={LIBRESWAN_CERT_NICK}", "    leftsendcert=always"]
    if leftsubnet is not None:
        lines.append(f"    leftsubnet={leftsubnet}")
    lines += [f"    {line.strip()}" for line in extra.strip().splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def _router_of(address: str) -> str:
    """The router's address on the LAN subnet of ``address`` (the next hop: without
    ``leftnexthop`` libreswan takes the gateway for directly connected and routes the
    tunnel's 0.0.0.0/1 and 128.0.0.0/1 on the link, without the router)."""
    for net in (ROUTED_NET, NATTED_NET):
        if ipaddress.ip_address(address) in net:
            return str(net[1])
    raise ValueError(f"{address} is on neither LAN subnet")


def libreswan_secrets(client: Client, psk: str | None) -> str:
    return f'@{client.identity} @{SERVER_NAME} : PSK "{psk}"\n' if psk else ""


def install_libreswan_identity(guest: UmlGuest, pki: Pki, identity: str | None) -> None:
    """Trust the two CAs in libreswan's NSS database and, with ``identity``, import its
    client certificate and key (PKCS#12) under the nickname :data:`LIBRESWAN_CERT_NICK`.
    Call after :meth:`~.uml.Libreswan.start` (which creates the database) and before
    ``ipsec auto --add``."""
    guest.put("/tmp/ikg-root.crt", pki.root.cert_pem())
    guest.put("/tmp/ikg-intermediate.crt", pki.intermediate.cert_pem())
    guest.run(["certutil", "-A", "-d", LIBRESWAN_NSS, "-n", "ikg-root", "-t", "CT,,", "-i", "/tmp/ikg-root.crt"])
    guest.run(["certutil", "-A", "-d", LIBRESWAN_NSS, "-n", "ikg-intermediate", "-t", ",,",
               "-i", "/tmp/ikg-intermediate.crt"])
    if identity is None:
        return
    cred = pki.clients[identity]
    password = secrets.token_hex(8).encode()
    p12 = pkcs12.serialize_key_and_certificates(
        LIBRESWAN_CERT_NICK.encode(), cred.key, cred.cert, None,
        serialization.BestAvailableEncryption(password))
    guest.put("/tmp/ikg-client.p12", p12, mode=0o600)
    guest.run(["pk12util", "-i", "/tmp/ikg-client.p12", "-d", LIBRESWAN_NSS, "-W", password.decode()])
    guest.run(["rm", "-f", "/tmp/ikg-client.p12"])


# -- queries ------------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """``predicate()`` every ``interval`` s until it returns something true (returned) or
    ``timeout`` passes (then its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def gateway_sas(gateway: IkegateGateway, identity: str | None = None) -> list[dict]:
    """The gateway's IKE SAs (its control socket's ``status``), those of peer
    ``identity`` only if given."""
    sas = request(gateway.run_dir, "status")["sas"]
    return [sa for sa in sas if identity is None or sa["remote"]["id"] == identity]


def xfrm_esp_spis(guest: UmlGuest) -> set[str]:
    """The SPIs (8 hex digits) of the ESP states in the guest's kernel, larval ones
    (SPI 0, an ACQUIRE) left out."""
    states = guest.run(["ip", "xfrm", "state"]).stdout
    return {f"{int(spi, 16):08x}" for spi in re.findall(r"proto esp spi (0x[0-9a-f]+)", states) if int(spi, 16)}


def ping_through(guest: UmlGuest, dst: str, source: str, count: int = 3) -> int:
    """Echo replies to ``count`` requests from the virtual address ``source`` to ``dst``
    behind the gateway (so through the tunnel)."""
    return guest.ping(dst, count=count, wait=2, source=source)


# -- client sessions ------------------------------------------------------------------------------

class ConnectError(AssertionError):
    """A client did not get its tunnel; the message has the gateway's and the client's
    log lines that say why."""


#: Gateway log lines that end a connection attempt (shown when one fails).
_REFUSALS = ("AUTHENTICATION_FAILED", "unacceptable", "NO_PROPOSAL_CHOSEN", "no matching peer config",
             "no acceptable proposal", "INVALID_SYNTAX", "INVALID_KE")


class Session:
    """One connection of a client daemon in a guest to the gateway: what the tests of one
    feature set share.  :meth:`gateway_log` is the gateway's log since :meth:`start`."""

    def __init__(self, gateway: IkegateGateway, guest: UmlGuest, client: Client) -> None:
        self.gateway, self.guest, self.client = gateway, guest, client
        self._mark = 0
        self.started_at = 0.0
        self.first_sas: list[dict] = []  # the gateway's view once the tunnel was up

    def gateway_log(self) -> str:
        return self.gateway.log_text()[self._mark:]

    def _begin(self) -> None:
        self._mark = len(self.gateway.log_text())
        self.started_at = time.monotonic()

    def refusals(self) -> list[str]:
        """The gateway's log lines since :meth:`start` that refused something."""
        return [line for line in self.gateway_log().splitlines() if any(r in line for r in _REFUSALS)]

    def sas(self) -> list[dict]:
        return gateway_sas(self.gateway, self.client.identity)

    def established(self, count: int = 1) -> list[dict] | None:
        """The client's IKE SAs on the gateway once ``count`` are ESTABLISHED with a CHILD SA."""
        sas = [sa for sa in self.sas() if sa["state"] == "ESTABLISHED" and sa["children"]]
        return sas if len(sas) >= count else None

    def sa_prefix(self, sa: dict) -> str:
        """How the gateway's log lines of this IKE SA start: ``<conn|id>``."""
        return f"<{sa['conn']}|{sa['id']}>"

    def sa_log(self, sa: dict) -> list[str]:
        prefix = self.sa_prefix(sa)
        return [line for line in self.gateway_log().splitlines() if prefix in line]

    def client_log(self) -> str:  # overridden
        return ""

    def explain(self, what: str) -> str:
        """``what`` with the gateway's refusals and the tails of both logs."""
        refusals = "\n".join(self.refusals()) or "(none)"
        return (f"{what}\n--- gateway refusals ---\n{refusals}\n--- gateway log (tail) ---\n"
                f"{self.gateway_log()[-3000:]}\n--- {self.client.name} log (tail) ---\n{self.client_log()[-3000:]}")

    def _wait_gateway(self, count: int, timeout: float) -> list[dict]:
        def check() -> list[dict] | str | None:
            return self.established(count) or ("refused" if self.refusals() else None)

        sas = wait_until(check, timeout)
        if not isinstance(sas, list):
            raise ConnectError(self.explain(f"{self.client.name}: the gateway has no established SA"))
        return sas

    def _forget(self) -> None:
        """Delete what the gateway still holds of this client (after the daemon stopped)."""
        if self.sas():
            try:
                request(self.gateway.run_dir, "kill", target=self.client.identity)
            except ControlError:
                pass
            wait_until(lambda: not self.sas(), 10)

    def _reset_guest(self) -> None:
        """No SA, policy, virtual address or tunnel route left in the guest: libreswan's
        0.0.0.0/1 and 128.0.0.0/1 routes, and iked's routing table 210 and its rule (iked
        leaves ``default via <virtual IP>`` there when it exits, which sends the next
        session's IKE packets nowhere)."""
        self.guest.run("ip xfrm state flush; ip xfrm policy flush; "
                       "ip route del 0.0.0.0/1 2>/dev/null; ip route del 128.0.0.0/1 2>/dev/null; "
                       "for f in -4 -6; do ip $f route flush table 210 2>/dev/null; "
                       "while ip $f rule del table 210 2>/dev/null; do :; done; done; true")
        for line in self.guest.run(["ip", "-o", "addr", "show"]).stdout.splitlines():
            fields = line.split()
            address = fields[3]
            if ipaddress.ip_interface(address).ip in ipaddress.ip_network(POOL_V4) or \
                    ipaddress.ip_interface(address).ip in ipaddress.ip_network(POOL_V6):
                self.guest.run(["ip", "addr", "del", address, "dev", fields[1]], check=False)


class LibreswanSession(Session):
    """libreswan's pluto in ``guest`` with :func:`libreswan_conf` (conn ``ikg``), brought
    up by :meth:`start` (``ipsec auto --up``).  The tunnel is up when whack reports an
    established Child SA and the gateway shows the SA."""

    def __init__(self, gateway: IkegateGateway, guest: UmlGuest, pki: Pki, client: Client, *,
                 psk: str | None = None, auth: str = "psk", left: str | None = None,
                 leftsubnet: str | None = "0.0.0.0/0", extra: str = "") -> None:
        super().__init__(gateway, guest, client)
        self.pki, self.psk, self.auth = pki, psk, auth
        self.left = left or client.routed
        self.conf = libreswan_conf(client, left=self.left, auth=auth, leftsubnet=leftsubnet, extra=extra)
        self.swan = None
        self.up_output = ""

    def start(self, timeout: float = 40) -> "LibreswanSession":
        from .uml import Libreswan

        self._begin()
        # a fresh NSS database (Libreswan.start creates it; a guest's earlier session left one)
        self.guest.run(["rm", "-rf", "/var/lib/ipsec/nss"])
        (self.guest.share / "pluto.log").unlink(missing_ok=True)  # an earlier session's
        self.swan = Libreswan(self.guest, self.conf, libreswan_secrets(self.client, self.psk)).start()
        install_libreswan_identity(self.guest, self.pki, self.client.identity if self.auth != "psk" else None)
        self.swan.add("ikg")
        ok, self.up_output = self.swan.up("ikg", timeout=timeout)
        if not ok or "established Child SA" not in self.up_output:
            raise ConnectError(self.explain(f"libreswan ({self.client.name}): no Child SA\n{self.up_output}"))
        self.first_sas = self._wait_gateway(1, 10)
        return self

    def virtual_ip(self) -> str:
        match = re.search(r"received INTERNAL_IP4_ADDRESS (\S+)", self.up_output)
        if not match:
            raise AssertionError(f"libreswan got no virtual IPv4 address:\n{self.up_output}")
        return match.group(1)

    def client_log(self) -> str:
        return (self.swan.log_text() if self.swan else "") + self.up_output

    def close(self) -> None:
        if self.swan is not None:
            self.swan.stop()
        self._reset_guest()
        self._forget()


class OpenikedSession(Session):
    """iked in ``guest`` with :func:`openiked_conf` (policy ``ikg4``, and ``ikg6`` with
    ``ipv6``), which initiates by itself about 5 s after it starts."""

    def __init__(self, gateway: IkegateGateway, guest: UmlGuest, pki: Pki, client: Client, *,
                 psk: str | None = None, local: str | None = None, flows: str = "dynamic",
                 ipv6: bool = True, ikelifetime: int | None = None, lifetime: int | None = None) -> None:
        super().__init__(gateway, guest, client)
        self.pki, self.psk, self.ipv6 = pki, psk, ipv6
        self.policies = 2 if ipv6 else 1
        self.conf = openiked_conf(client, local=local or client.routed, psk=psk, flows=flows, ipv6=ipv6,
                                  ikelifetime=ikelifetime, lifetime=lifetime)
        self.iked = None

    def start(self, timeout: float = 30, *, expect_refusal: bool = False) -> "OpenikedSession":
        """Start iked and wait for all its policies' SAs (or, with ``expect_refusal``,
        only until the gateway has logged a refusal)."""
        from .uml import OpenIked

        self._begin()
        (self.guest.share / "iked.log").unlink(missing_ok=True)  # an earlier session's
        self.guest.run("rm -f /etc/iked/certs/*")  # (iked needs some local.key even with PSKs: kept)
        if self.psk is None:
            install_openiked_identity(self.guest, self.pki, self.client.identity)
        self.iked = OpenIked(self.guest, self.conf).start()
        if expect_refusal:
            return self

        def done() -> bool:
            if self.refusals() or "authentication failed" in self.client_log():
                return True
            return len(openiked_established(self.client_log())) >= self.policies

        wait_until(done, timeout)
        if len(openiked_established(self.client_log())) < self.policies:
            raise ConnectError(self.explain(f"openiked ({self.client.name}): not all policies established"))
        self.first_sas = self._wait_gateway(self.policies, 10)
        return self

    def sa_for(self, family: int) -> dict:
        """The gateway's SA of policy ``ikg4`` (family 4) or ``ikg6`` (6): the one whose
        virtual IP is of that family."""
        for sa in self.established(1) or []:
            if any(ipaddress.ip_address(v).version == family for v in sa["virtual_ips"]):
                return sa
        raise AssertionError(self.explain(f"no SA with a virtual IPv{family} address"))

    def virtual_ip(self, family: int = 4) -> str:
        sa = self.sa_for(family)
        return next(v for v in sa["virtual_ips"] if ipaddress.ip_address(v).version == family)

    def client_log(self) -> str:
        return self.iked.log_text() if self.iked else ""

    def close(self) -> None:
        if self.iked is not None:
            self.iked.stop()
        self._reset_guest()
        self._forget()


__all__ = [
    "CERT_PADDING", "Client", "ConnectError", "DNS_SERVERS", "FAST_RETRANSMIT", "GATEWAY_V4", "GATEWAY_V6",
    "INNER_V4", "INNER_V6", "LIBRESWAN_CERT", "LIBRESWAN_GW_REKEY", "LIBRESWAN_MOVED", "LIBRESWAN_PSK", "Lab",
    "LibreswanSession", "NATTED_NET", "OPENIKED_ASYM", "OPENIKED_CERT", "OPENIKED_PSK", "OpenikedSession",
    "POOL_V4", "POOL_V6", "Pki", "ROUTED_NET", "ROUTED_NET6", "ROUTER_OUTER_V4", "ROUTER_OUTER_V6",
    "SERVER_NAME", "Session", "gateway_sas", "install_libreswan_identity", "install_openiked_identity",
    "libreswan_conf", "libreswan_secrets", "make_pki", "new_psk", "openiked_conf", "openiked_established",
    "ping_through", "wait_until", "write_confdir", "xfrm_esp_spis",
]
