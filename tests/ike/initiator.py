"""A minimal IKEv2 initiator for the engine tests: a road-warrior client, sans-IO.

It plays the client side of the seed's VPN against ikegate's responder engine
(:class:`ikegate.ike.gateway.Gateway`) in memory.  Like the engine it does no I/O:
its methods return the datagrams to send and :meth:`Initiator.receive` takes the
datagrams that come back.  :meth:`Initiator.connect` runs a whole connection over a
*transport* (any callable that delivers a list of datagrams and returns the datagrams
the responder answered with right away); the tests' :class:`~tests.ike.harness.Network`
provides one with a fake clock.

The protocol flow it implements (RFC 7296 1.2 and 2.16, EAP-only responder auth by
certificate, as every client of the seed does)::

    IKE_SA_INIT  [N(COOKIE)] SA KEi Ni N(NAT_D_S) N(NAT_D_D) [N(FRAG_SUP)] [N(HASH_ALG)] [V...]  -->
                 <--  SA KEr Nr N(NAT_D_S) N(NAT_D_D) [CERTREQ] [N(FRAG_SUP)] [N(HASH_ALG)]
                 or   <--  N(COOKIE)              (repeat, the cookie first; RFC 7296 2.6)
                 or   <--  N(INVALID_KE_PAYLOAD)  (repeat with the group it names; 1.2)
    IKE_AUTH 1   SK{ IDi [CERTREQ] [N(INITIAL_CONTACT)] [IDr] [CP(REQUEST)] SA TSi TSr
                     [N(MOBIKE_SUP)] [N(EAP_ONLY)] }  -->
                 <--  SK{ IDr CERT+ AUTH(signature) EAP(Request/Identity) }
    IKE_AUTH 2.. SK{ EAP(Response) }  -->  <--  SK{ EAP(next Request, or Success/Failure) }
    IKE_AUTH n   SK{ AUTH(MSK) }  -->
                 <--  SK{ AUTH(MSK) CP(REPLY) SA TSi TSr N(...) }   (the CHILD SA)

To test the engine rather than repeat it, the initiator uses only the layers below the
engine, each with its own known-answer tests (wire codec, crypto suite, EAP packet
codec, signature verification, proposal model), and writes out by itself what the
engine computes: NAT-D hashes (RFC 7296 2.23), the signed AUTH octets (2.15), the
CHILD SA KEYMAT split (2.17) and the EAP-MSCHAPv2 peer (RFC 2759, RFC 3079,
draft-kamath-pppext-eap-mschapv2).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import struct
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ikegate.config.proposals import default_proposals, proposal_from_string
from ikegate.crypto.dh import get_group
from ikegate.crypto.keys import ChildKeys, IkeKeys, derive_child_keys, derive_ike_keys, derive_ike_rekey_keys, prf_plus
from ikegate.crypto.mschap import (
    eap_mschapv2_msk,
    generate_authenticator_response,
    generate_nt_response,
    nt_password_hash,
)
from ikegate.crypto.sk import make_sk_ciphers
from ikegate.crypto.transforms import Prf, get_encr, get_integ, get_prf
from ikegate.eap.packet import EapPacket
from ikegate.eap.packet import decode as decode_eap
from ikegate.identity import Identity
from ikegate.ike.events import Endpoint
from ikegate.pki.signature import sign_auth, verify_auth
from ikegate.proposal import Proposal
from ikegate.wire.codec import (
    Message,
    decode_header,
    decode_message,
    decode_payloads,
    decrypt_message,
    describe,
    encode_encrypted,
    encode_fragments,
    encode_message,
    encode_payloads,
    open_sealed,
)
from ikegate.wire.constants import (
    AuthMethod,
    CfgAttr,
    CfgType,
    EapCode,
    EapType,
    ExchangeType,
    HashAlgorithm,
    NotifyType,
    PayloadType,
    ProtocolId,
    TsType,
)
from ikegate.wire.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DeletePayload,
    EapPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    TsPayload,
    VendorIdPayload,
)

__all__ = [
    "ChildSaKeys",
    "IkeSaState",
    "Initiator",
    "InitiatorError",
    "MACOS",
    "MschapV2Peer",
    "Profile",
    "Received",
    "STRONGSWAN",
    "Transport",
    "WINDOWS10",
    "WINDOWS7",
]

ZERO_SPI = bytes(8)
KEY_PAD = b"Key Pad for IKEv2"  # RFC 7296 2.15
NONCE_SIZE = 32
# EAP-MSCHAPv2 OpCodes (draft-kamath-pppext-eap-mschapv2-02 2)
MS_CHALLENGE, MS_RESPONSE, MS_SUCCESS, MS_FAILURE = 1, 2, 3, 4

#: Delivers request datagrams to the responder and returns what it answered at once.
Transport = Callable[[list], list]

# Vendor IDs as Windows sends them (client-behaviour.md 1.2)
VID_MS_NT5_V9 = bytes.fromhex("1e2b516905991c7d7c96fcbfb587e46100000009")
VID_MS_NEGOTIATION_DISCOVERY = bytes.fromhex("fb1de3cdf341b7ea16b7e5be0855f120")
VID_MS_UNKNOWN = bytes.fromhex("01528bbbc00696121849ab9a1c5b2a5100000002")

_A = CfgAttr
#: CP request attributes of the clients in client-behaviour.md 1.1
CP_WINDOWS = (_A.INTERNAL_IP4_ADDRESS, _A.INTERNAL_IP4_DNS, _A.INTERNAL_IP4_NBNS, _A.INTERNAL_IP4_SERVER,
              _A.INTERNAL_IP6_ADDRESS, _A.INTERNAL_IP6_DNS, _A.INTERNAL_IP6_SERVER)  # fmt: skip
CP_APPLE = (_A.INTERNAL_IP4_ADDRESS, _A.INTERNAL_IP4_NETMASK, _A.INTERNAL_IP4_DHCP, _A.INTERNAL_IP4_DNS,
            _A.INTERNAL_IP6_ADDRESS, _A.INTERNAL_IP6_DHCP, _A.INTERNAL_IP6_DNS, _A.INTERNAL_DNS_DOMAIN)  # fmt: skip
CP_STRONGSWAN = (_A.INTERNAL_IP4_ADDRESS, _A.INTERNAL_IP6_ADDRESS, _A.INTERNAL_IP4_DNS, _A.INTERNAL_IP6_DNS)


class InitiatorError(Exception):
    """The responder sent something a correct responder never sends (a bad signature,
    a wrong MSK AUTH or MS-CHAPv2 authenticator response, a malformed answer)."""


# ------------------------------------------------------------------------- client profiles


@dataclass(frozen=True)
class Profile:
    """What a client sends.  ``ike``/``esp`` are strongSwan proposal strings (comma
    separated proposals, ``default`` for strongSwan's default proposals).  Identities
    are text as in ipsec.conf (``user1``, ``@fqdn``, ``CN=...``, an IP address) or an
    ``(IdType, bytes)`` pair; ``idi=None`` means the client's own IP address (Windows).
    ``cp`` lists the CP request attributes (sent empty; a :class:`CpAttribute` is sent
    as given), None for no CP payload.  ``certreq``: send a CERTREQ naming the CAs the
    client trusts (:attr:`Initiator.trusted`).  ``fragment_size``: split our own encrypted
    requests bigger than this whole IP datagram size (RFC 7383), None never."""

    name: str = "client"
    ike: str = "aes256-aes128-3des-sha1-sha256-sha384-modp1024"
    esp: str = "aes256-aes128-3des-sha1"
    ke_group: int | None = None  # KE payload group; None: the first group of the first proposal
    nat_detection: bool = True
    fragmentation: bool = True  # announce IKEV2_FRAGMENTATION_SUPPORTED
    hash_algorithms: tuple = ()  # SIGNATURE_HASH_ALGORITHMS (RFC 7427); () sends none
    redirect_supported: bool = False
    vendor_ids: tuple = ()
    idi: str | tuple | None = None
    idr: str | tuple | None = None
    certreq: bool = True
    initial_contact: bool = False
    mobike: bool = True
    eap_only: bool = False
    cp: tuple | None = CP_WINDOWS
    tsi: tuple = ("0.0.0.0/0", "::/0")
    tsr: tuple = ("0.0.0.0/0", "::/0")
    eap_identity: str | None = None  # what EAP-Identity answers; None: the MS-CHAPv2 user name
    fragment_size: int | None = None

    def with_(self, **changes) -> "Profile":
        return replace(self, **changes)


#: Windows 10/11 "Agile VPN" defaults (client-behaviour.md 1.2): one IKE proposal ending
#: on modp1024, IP address as IDi, no IDr, CERTREQ, FRAG_SUP, no HASH_ALG, MOBIKE.
WINDOWS10 = Profile(
    name="windows10",
    ike="aes256-aes128-3des-sha1-sha256-sha384-modp1024",
    esp="aes256-aes128-3des-sha1",
    vendor_ids=(VID_MS_NT5_V9, VID_MS_NEGOTIATION_DISCOVERY, VID_MS_UNKNOWN),
)
#: Windows 7: 3DES first, and no IKEv2 fragmentation.
WINDOWS7 = WINDOWS10.with_(name="windows7", ike="3des-aes128-aes192-aes256-sha1-sha256-sha384-modp1024",
                           fragmentation=False)
#: strongSwan (swanctl/NetworkManager/Android) with its default proposals.
STRONGSWAN = Profile(
    name="strongswan",
    ike="default",
    esp="default",
    hash_algorithms=(HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512,
                     HashAlgorithm.IDENTITY),
    redirect_supported=True,
    idi="user1",
    initial_contact=True,
    cp=CP_STRONGSWAN,
)
#: macOS/iOS built-in client: IDr = the server name, no CERTREQ, INITIAL_CONTACT.
MACOS = Profile(
    name="macos",
    ike="aes256-sha256-modp2048,aes128-sha1-modp1024,3des-sha1-modp1024",
    esp="aes256-sha256,aes128-sha1,3des-sha1",
    redirect_supported=True,
    idi="user1",
    idr="vpn.example.org",
    certreq=False,
    initial_contact=True,
    cp=CP_APPLE,
)


def parse_proposals(text: str | Sequence[Proposal], protocol: int) -> list[Proposal]:
    if not isinstance(text, str):
        return list(text)
    result: list[Proposal] = []
    for part in text.rstrip("!").split(","):
        if part == "default":
            result.extend(default_proposals(protocol))
        else:
            result.append(proposal_from_string(part, protocol))
    return result


def identity_wire(spec, own_address: str) -> tuple[int, bytes]:
    """``(IdType, data)`` of an identity given as text, a pair, or None (own address)."""
    if spec is None:
        spec = own_address
    if isinstance(spec, tuple):
        return int(spec[0]), bytes(spec[1])
    id_type, data = Identity.parse(spec).to_wire()
    return int(id_type), data


def selector(spec) -> TrafficSelector:
    """A traffic selector from ``a.b.c.d/n`` (any protocol and port) or as given."""
    if isinstance(spec, TrafficSelector):
        return spec
    net = ipaddress.ip_network(spec, strict=False)
    return TrafficSelector(
        ts_type=TsType.IPV4_ADDR_RANGE if net.version == 4 else TsType.IPV6_ADDR_RANGE,
        start_addr=net.network_address,
        end_addr=net.broadcast_address,
    )


def natd_hash(spi_i: bytes, spi_r: bytes, endpoint: Endpoint) -> bytes:
    """RFC 7296 2.23: SHA-1(SPIi | SPIr | IP | port)."""
    packed = ipaddress.ip_address(endpoint.host).packed
    return hashlib.sha1(spi_i + spi_r + packed + struct.pack(">H", endpoint.port)).digest()


def ca_key_hash(cert: x509.Certificate) -> bytes:
    """What a CERTREQ names a CA by: SHA-1 of its subjectPublicKeyInfo (RFC 7296 3.7)."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha1(spki).digest()


def id_body(id_type: int, data: bytes) -> bytes:
    """An ID payload without its generic header: what the AUTH octets hash (RFC 7296 2.15)."""
    return bytes((id_type, 0, 0, 0)) + data


# ---------------------------------------------------------------------------- received messages


@dataclass
class Received:
    """One decoded message from the responder: the header, the (decrypted) payloads
    and the datagrams it came in (several when fragmented)."""

    message: Message
    payloads: list
    datagrams: list
    ike: "IkeSaState | None" = None  # the IKE SA it came on

    @property
    def exchange(self) -> int:
        return self.message.exchange

    @property
    def message_id(self) -> int:
        return self.message.message_id

    @property
    def is_response(self) -> bool:
        return self.message.response

    @property
    def fragmented(self) -> bool:
        return len(self.datagrams) > 1

    def get(self, ptype: int):
        return next((p for p in self.payloads if p.type == ptype), None)

    def get_all(self, ptype: int) -> list:
        return [p for p in self.payloads if p.type == ptype]

    def notify(self, ntype: int) -> NotifyPayload | None:
        return next((p for p in self.notifies if p.notify_type == ntype), None)

    @property
    def notifies(self) -> list[NotifyPayload]:
        return [p for p in self.payloads if isinstance(p, NotifyPayload)]

    @property
    def notify_types(self) -> list[int]:
        return [p.notify_type for p in self.notifies]

    @property
    def error(self) -> int | None:
        """The first error notify (type below 16384), or None."""
        return next((n.notify_type for n in self.notifies if n.notify_type < 16384), None)

    @property
    def eap(self) -> EapPacket | None:
        payload = self.get(PayloadType.EAP)
        return decode_eap(payload.data) if payload is not None else None

    @property
    def types(self) -> list[int]:
        return [p.type for p in self.payloads]

    def __repr__(self) -> str:
        return f"<Received {describe(self.message, self.payloads)}>"


@dataclass
class ChildSaKeys:
    """A CHILD SA as the client sees it.  ``spi_i`` is the SPI the initiator of the
    exchange that made it offered (the responder sends with it), ``spi_r`` the one the
    responder chose; ``keys.*_i`` protect initiator-to-responder traffic (RFC 7296 2.17).
    ``client_initiated`` is False for an SA the gateway made by rekeying: then the
    gateway is the "i" side.  ``nonce_i``/``nonce_r`` are the exchange's nonces (for the
    collision rule of RFC 7296 2.8.1)."""

    proposal: Proposal
    spi_i: int
    spi_r: int
    keys: ChildKeys
    tsi: list
    tsr: list
    client_initiated: bool = True
    nonce_i: bytes = b""
    nonce_r: bytes = b""

    @property
    def client_spi(self) -> int:
        """The client's inbound SPI (what the gateway sends with)."""
        return self.spi_i if self.client_initiated else self.spi_r

    @property
    def gateway_spi(self) -> int:
        """The gateway's inbound SPI (what the client sends with)."""
        return self.spi_r if self.client_initiated else self.spi_i

    @property
    def client_out(self) -> tuple[bytes, bytes]:
        """(encryption, integrity) keys of client-to-gateway traffic."""
        k = self.keys
        return (k.encr_i, k.integ_i) if self.client_initiated else (k.encr_r, k.integ_r)

    @property
    def gateway_out(self) -> tuple[bytes, bytes]:
        k = self.keys
        return (k.encr_r, k.integ_r) if self.client_initiated else (k.encr_i, k.integ_i)


@dataclass
class IkeSaState:
    """One IKE SA of the client: SPIs, keys and message IDs of its own requests.
    ``initiator`` is whether the client is the SA's original initiator (sets the I flag,
    uses SK_ei/SK_ai outbound): true for the SA it set up and those it made by rekeying,
    false for one the gateway made by rekeying (RFC 7296 2.18)."""

    spi_i: bytes
    spi_r: bytes
    initiator: bool = True
    proposal: Proposal | None = None
    prf: Prf | None = None
    keys: IkeKeys | None = field(default=None, repr=False)
    sk_in: object = field(default=None, repr=False)
    sk_out: object = field(default=None, repr=False)
    nonce_i: bytes = b""  # of the exchange that made it
    nonce_r: bytes = b""
    next_mid: int = 0
    pending_mid: int | None = None
    last_request: list = field(default_factory=list, repr=False)

    def owns(self, header: Message) -> bool:
        return header.spi_i == self.spi_i and ZERO_SPI in (self.spi_r, header.spi_r) or (
            header.spi_i == self.spi_i and header.spi_r == self.spi_r)


# ---------------------------------------------------------------------------- the EAP peer


class MschapV2Peer:
    """Client side of EAP-Identity (RFC 3748 5.1) and EAP-MSCHAPv2.

    EAP-MSCHAPv2 packets (Type-Data after the EAP type 26, draft-kamath 2)::

        OpCode | MS-CHAPv2-ID | MS-Length (OpCode to end) | ...
        Challenge (1):  Value-Size=16 | Challenge | Name
        Response (2):   Value-Size=49 | Peer-Challenge(16) Reserved(8) NT-Response(24) Flags(1) | Name
        Success (3), Failure (4): message text from the server; one OpCode octet back

    The NT-Response is GenerateNTResponse of RFC 2759 8.1 over the user name after the
    first backslash; the Success-Request's ``S=`` must be the authenticator response
    of RFC 2759 8.7 (else :class:`InitiatorError`).  A Failure-Request ``E=691 R=1
    C=<challenge>`` is answered with a new Response to challenge C (RFC 2759 9.1.2),
    using :attr:`password` as it is then (tests may change it between attempts);
    ``give_up=True`` answers it with a Failure-Response instead.
    """

    def __init__(self, identity: str | None, name: str, password: str, *, give_up: bool = False) -> None:
        self.identity = identity
        self.name = name
        self.password = password
        self.give_up = give_up
        self.msk: bytes | None = None
        self.succeeded = False
        self.failed = False
        self.failure_messages: list[str] = []
        self.success_message = ""
        self._nt_response = b""
        self._peer_challenge = b""
        self._challenge = b""

    @property
    def username(self) -> bytes:
        raw = self.name.encode()
        return raw.partition(b"\\")[2] if b"\\" in raw else raw

    def respond(self, packet: bytes) -> bytes | None:
        """The EAP response to a request (None after Success/Failure)."""
        request = decode_eap(packet)
        if request.code == EapCode.SUCCESS:
            if self.msk is None:
                raise InitiatorError("EAP-Success before MS-CHAPv2 succeeded")
            self.succeeded = True
            return None
        if request.code == EapCode.FAILURE:
            self.failed = True
            return None
        if request.code != EapCode.REQUEST:
            raise InitiatorError(f"unexpected EAP code {request.code}")
        if request.type == EapType.IDENTITY:
            identity = self.name if self.identity is None else self.identity
            return EapPacket(EapCode.RESPONSE, request.identifier, EapType.IDENTITY, identity.encode()).encode()
        if request.type != EapType.MSCHAPV2:
            return EapPacket(EapCode.RESPONSE, request.identifier, EapType.NAK, bytes((EapType.MSCHAPV2,))).encode()
        data = request.data
        opcode, ms_id = data[0], data[1]
        if opcode == MS_CHALLENGE:
            if data[4] != 16:
                raise InitiatorError("MS-CHAPv2 challenge is not 16 bytes")
            return self._answer(request.identifier, ms_id, data[5:21])
        if opcode == MS_SUCCESS:  # Success-Request: "S=<40 hex> M=<message>"
            text = data[4:].decode("ascii", "replace")
            expected = generate_authenticator_response(
                nt_password_hash(self.password), self._nt_response, self._peer_challenge, self._challenge,
                self.username,
            )
            if not text.startswith(expected):
                raise InitiatorError(f"MS-CHAPv2 authenticator response mismatch: {text!r}")
            self.success_message = text
            self.msk = eap_mschapv2_msk(nt_password_hash(self.password), self._nt_response)
            return EapPacket(EapCode.RESPONSE, request.identifier, EapType.MSCHAPV2, bytes((MS_SUCCESS,))).encode()
        if opcode == MS_FAILURE:  # Failure-Request: "E=691 R=1 C=<32 hex> V=3 M=<message>"
            text = data[4:].decode("ascii", "replace")
            self.failure_messages.append(text)
            retry = re.search(r"\bR=1\b", text)
            challenge = re.search(r"\bC=([0-9A-Fa-f]{32})\b", text)
            if self.give_up or not retry or not challenge:
                return EapPacket(EapCode.RESPONSE, request.identifier, EapType.MSCHAPV2, bytes((MS_FAILURE,))).encode()
            return self._answer(request.identifier, (ms_id + 1) & 0xFF, bytes.fromhex(challenge.group(1)))
        raise InitiatorError(f"unexpected MS-CHAPv2 OpCode {opcode}")

    def _answer(self, identifier: int, ms_id: int, challenge: bytes) -> bytes:
        self._challenge = challenge
        self._peer_challenge = secrets.token_bytes(16)
        self._nt_response = generate_nt_response(
            challenge, self._peer_challenge, self.username, nt_password_hash(self.password)
        )
        value = self._peer_challenge + bytes(8) + self._nt_response + b"\x00"
        name = self.name.encode()
        header = struct.pack(">BBHB", MS_RESPONSE, ms_id, 4 + 1 + len(value) + len(name), len(value))
        type_data = header + value + name
        return EapPacket(EapCode.RESPONSE, identifier, EapType.MSCHAPV2, type_data).encode()


# ---------------------------------------------------------------------------- the initiator


class Initiator:
    """One client IKE SA.  ``local`` is the client's address and port, ``remote`` the
    gateway's.  Everything received stays available for assertions: :attr:`received`
    (every decoded message in order), :attr:`responses`, :attr:`requests` (requests the
    gateway sent us), the keys, the server's certificates, the virtual IPs, ..."""

    def __init__(self, profile: Profile = WINDOWS10, *, local: Endpoint, remote: Endpoint,
                 user: str = "user1", password: str = "password1", give_up: bool = False,
                 trusted: Sequence[x509.Certificate] = ()) -> None:
        self.profile = profile
        self.trusted = list(trusted)  # the client's CA store: named in CERTREQ, anchors the chain
        self.local, self.remote = local, remote
        self.ike_proposals = parse_proposals(profile.ike, ProtocolId.IKE)
        self.esp_proposals = parse_proposals(profile.esp, ProtocolId.ESP)
        self.ke_group = profile.ke_group or self.ike_proposals[0].dh_group
        self.eap_peer = MschapV2Peer(profile.eap_identity, user, password, give_up=give_up)
        # the IKE SA in use, and older ones still answering (after rekeys)
        self.ike = IkeSaState(spi_i=secrets.token_bytes(8), spi_r=ZERO_SPI)
        self.retired: list[IkeSaState] = []
        # IKE_SA_INIT state
        self.nonce_i = secrets.token_bytes(NONCE_SIZE)
        self.nonce_r = b""
        self.cookie: bytes | None = None
        self._dh = None
        self._dh_group: int | None = None
        self.init_request = b""
        self.init_response = b""
        # what the responder announced
        self.peer_fragmentation = False
        self.peer_hash_algorithms: list[int] | None = None
        self.peer_certreq: list[bytes] = []
        self.nat_local = self.nat_remote = None  # NAT-D verdicts, None if not compared
        # IKE_AUTH results
        self.idi = identity_wire(profile.idi, local.host)
        self.server_id: tuple[int, bytes] | None = None
        self.server_certs: list[x509.Certificate] = []
        self.server_auth_method: int | None = None
        self.chain_verified = False  # leaf -> sent intermediates -> a trusted CA
        self.own_auth: str = "eap"  # how we authenticate: "eap", or "psk"/"pubkey" (AUTH in round 1)
        self.established = False
        self.child_spi = secrets.token_bytes(4)
        self.child: ChildSaKeys | None = None
        self.old_children: list[ChildSaKeys] = []  # replaced by CREATE_CHILD_SA
        self._child_nonce = b""
        self.vips: list[str] = []
        self.dns: list[str] = []
        self.cp_reply: list[CpAttribute] = []
        # rekeys in flight (CREATE_CHILD_SA requests of ours); nonces a test imposes, in
        # order, on our next CREATE_CHILD_SA requests and answers (to decide collisions)
        self.forced_nonces: list[bytes] = []
        self._rekey_dh = None
        self._ike_rekey: tuple | None = None  # (new SPI, nonce, proposals) of our IKE rekey
        # what went over the wire
        self.received: list[Received] = []
        self.requests: list[Received] = []
        self._fragments: dict[int, bytes] = {}
        self._fragments_total = 0
        self._fragments_first = 0
        self._fragments_mid = -1
        self._fragment_datagrams: list[bytes] = []

    # -- the IKE SA in use (delegated to :attr:`ike`) ------------------------------------------

    def _delegate(name: str):  # noqa: N805 - a property factory used in the class body
        return property(lambda self: getattr(self.ike, name), lambda self, value: setattr(self.ike, name, value))

    spi_i = _delegate("spi_i")
    spi_r = _delegate("spi_r")
    proposal = _delegate("proposal")
    prf = _delegate("prf")
    keys = _delegate("keys")
    sk_in = _delegate("sk_in")
    sk_out = _delegate("sk_out")
    next_mid = _delegate("next_mid")
    pending_mid = _delegate("pending_mid")
    last_request = _delegate("last_request")
    del _delegate

    @property
    def ike_sas(self) -> list[IkeSaState]:
        """Every IKE SA the client still knows, the one in use first."""
        return [self.ike, *self.retired]

    def owns(self, data: bytes) -> bool:
        """Is this datagram for one of our IKE SAs?"""
        return any(data[:8] == ike.spi_i for ike in self.ike_sas)

    # -- convenience ------------------------------------------------------------------------

    @property
    def password(self) -> str:
        return self.eap_peer.password

    @password.setter
    def password(self, value: str) -> None:
        self.eap_peer.password = value

    @property
    def responses(self) -> list[Received]:
        return [r for r in self.received if r.is_response]

    @property
    def last(self) -> Received | None:
        responses = self.responses
        return responses[-1] if responses else None

    def __repr__(self) -> str:
        return f"<Initiator {self.profile.name} {self.local} spi {self.spi_i.hex()}>"

    # -- IKE_SA_INIT -------------------------------------------------------------------------

    def sa_init_request(self, *, extra: Iterable = ()) -> list[bytes]:
        """The IKE_SA_INIT request: with the cookie first if the responder asked for one,
        the same SPI and nonce on a retry (the cookie is bound to them, RFC 7296 2.6)."""
        p = self.profile
        if self._dh is None or self._dh_group != self.ke_group:
            self._dh = get_group(self.ke_group).generate()
            self._dh_group = self.ke_group
        payloads: list = []
        if self.cookie is not None:
            payloads.append(NotifyPayload(notify_type=NotifyType.COOKIE, data=self.cookie))
        payloads += [
            SaPayload(proposals=[prop.to_wire(number=n, spi=b"") for n, prop in enumerate(self.ike_proposals, 1)]),
            KePayload(group=self.ke_group, data=self._dh.public),
            NoncePayload(data=self.nonce_i),
        ]
        if p.nat_detection:
            payloads.append(NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP,
                                          data=natd_hash(self.spi_i, ZERO_SPI, self.local)))
            payloads.append(NotifyPayload(notify_type=NotifyType.NAT_DETECTION_DESTINATION_IP,
                                          data=natd_hash(self.spi_i, ZERO_SPI, self.remote)))
        if p.fragmentation:
            payloads.append(NotifyPayload(notify_type=NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        if p.hash_algorithms:
            data = b"".join(struct.pack(">H", h) for h in p.hash_algorithms)
            payloads.append(NotifyPayload(notify_type=NotifyType.SIGNATURE_HASH_ALGORITHMS, data=data))
        if p.redirect_supported:
            payloads.append(NotifyPayload(notify_type=NotifyType.REDIRECT_SUPPORTED))
        payloads += [VendorIdPayload(data=vid) for vid in p.vendor_ids]
        payloads += list(extra)
        msg = Message(self.spi_i, ZERO_SPI, ExchangeType.IKE_SA_INIT, 0, initiator=True, response=False,
                      payloads=payloads)
        self.init_request = encode_message(msg)
        self.pending_mid = 0
        self.next_mid = 1
        self.last_request = [self.init_request]
        return [self.init_request]

    def _init_response(self, rec: Received, data: bytes) -> None:
        cookie = rec.notify(NotifyType.COOKIE)
        if cookie is not None:
            self.cookie = cookie.data
            return
        invalid_ke = rec.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            self.ke_group = struct.unpack(">H", invalid_ke.data)[0]
            return
        if rec.error is not None:
            return
        sa, ke, nonce = rec.get(PayloadType.SA), rec.get(PayloadType.KE), rec.get(PayloadType.NONCE)
        if sa is None or ke is None or nonce is None or len(sa.proposals) != 1:
            raise InitiatorError(f"IKE_SA_INIT response without one proposal, KE and nonce: {rec}")
        if ke.group != self.ke_group:
            raise InitiatorError(f"responder answered KE group {ke.group}, we sent {self.ke_group}")
        self.spi_r = rec.message.spi_r
        self.nonce_r = nonce.data
        self.init_response = data
        self.proposal = chosen = Proposal.from_wire(sa.proposals[0])
        if not any(chosen.select(mine) == chosen for mine in self.ike_proposals):
            raise InitiatorError(f"responder chose {chosen}, which we did not offer")
        # SKEYSEED and the SK_* keys (RFC 7296 2.14)
        shared = self._dh.compute(ke.data)
        encr = get_encr(*chosen.encr_alg)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        self.prf = get_prf(chosen.prf_alg)
        _, self.keys = derive_ike_keys(self.prf, encr, integ, self.nonce_i, self.nonce_r, shared, self.spi_i,
                                       self.spi_r)
        self.sk_in, self.sk_out = make_sk_ciphers(chosen, self.keys, initiator=True)
        # what the responder announced and what its NAT-D hashes say
        self.peer_fragmentation = rec.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is not None
        hash_algs = rec.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        if hash_algs is not None:
            self.peer_hash_algorithms = [struct.unpack_from(">H", hash_algs.data, i)[0]
                                         for i in range(0, len(hash_algs.data) - 1, 2)]
        for req in rec.get_all(PayloadType.CERTREQ):
            self.peer_certreq.extend(req.ca_hashes)
        sources = [n.data for n in rec.notifies if n.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP]
        dest = rec.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if sources and dest is not None:
            self.nat_remote = natd_hash(self.spi_i, self.spi_r, self.remote) not in sources
            self.nat_local = dest.data != natd_hash(self.spi_i, self.spi_r, self.local)

    # -- IKE_AUTH --------------------------------------------------------------------------------

    def auth_request(self, *, extra: Iterable = (), payloads: list | None = None) -> list[bytes]:
        """The first IKE_AUTH request (no AUTH: EAP follows), in strongSwan's order;
        ``payloads`` replaces the whole list (``extra`` is appended)."""
        p = self.profile
        if payloads is None:
            payloads = [IdPayload(id_type=self.idi[0], data=self.idi[1])]
            if p.certreq and self.trusted:
                payloads.append(CertReqPayload(data=b"".join(ca_key_hash(ca) for ca in self.trusted)))
            if p.initial_contact:
                payloads.append(NotifyPayload(notify_type=NotifyType.INITIAL_CONTACT))
            if p.idr is not None:
                id_type, data = identity_wire(p.idr, self.remote.host)
                payloads.append(IdPayload(id_type=id_type, data=data, responder=True))
            if p.cp is not None:
                attrs = [a if isinstance(a, CpAttribute) else CpAttribute(int(a)) for a in p.cp]
                payloads.append(CpPayload(cfg_type=CfgType.CFG_REQUEST, attributes=attrs))
            payloads += [self.child_sa_payload(), self.ts_payload(p.tsi), self.ts_payload(p.tsr, responder=True)]
            if p.mobike:
                payloads.append(NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED))
            if p.eap_only:
                payloads.append(NotifyPayload(notify_type=NotifyType.EAP_ONLY_AUTHENTICATION))
        return self.request(ExchangeType.IKE_AUTH, list(payloads) + list(extra))

    def signature_auth_request(self, key, certs: Sequence[x509.Certificate] = (), *, method: int | None = None,
                               hash_alg: int | None = None, pss: bool = False,
                               auth_data: bytes | None = None) -> list[bytes]:
        """The IKE_AUTH request of a client authenticating with a signature
        (``rightauth=pubkey``): ``IDi CERT* [CERTREQ] [N(INITIAL_CONTACT)] [IDr] AUTH
        [CP] SA TSi TSr ...`` (strongSwan's order), AUTH signed with ``key`` over our
        signed octets (RFC 7296 2.15) by ``method`` (default: RFC 7427 digital signature,
        ``hash_alg`` default SHA2-256, ``pss`` for RSASSA-PSS); ``auth_data`` replaces
        the signature (a forged one)."""
        method = AuthMethod.DIGITAL_SIGNATURE if method is None else method
        data = auth_data if auth_data is not None else sign_auth(key, self.initiator_octets(), method, hash_alg, pss)
        self.own_auth = "pubkey"
        return self._round_one([CertPayload(data=c.public_bytes(Encoding.DER)) for c in certs],
                               AuthPayload(method=method, data=data))

    def psk_auth_request(self, psk: bytes) -> list[bytes]:
        """The IKE_AUTH request of a client with a pre-shared key: AUTH =
        prf(prf(PSK, "Key Pad for IKEv2"), <InitiatorSignedOctets>) (RFC 7296 2.15)."""
        self.own_auth = "psk"
        mic = self.prf(self.prf(psk, KEY_PAD), self.initiator_octets())
        return self._round_one([], AuthPayload(method=AuthMethod.SHARED_KEY_MIC, data=mic))

    def _round_one(self, certs: list, auth: AuthPayload) -> list[bytes]:
        """:meth:`auth_request`'s payloads with CERTs after IDi and AUTH before CP/SA."""
        p = self.profile
        payloads = [IdPayload(id_type=self.idi[0], data=self.idi[1]), *certs]
        if p.certreq and self.trusted:
            payloads.append(CertReqPayload(data=b"".join(ca_key_hash(ca) for ca in self.trusted)))
        if p.initial_contact:
            payloads.append(NotifyPayload(notify_type=NotifyType.INITIAL_CONTACT))
        if p.idr is not None:
            id_type, data = identity_wire(p.idr, self.remote.host)
            payloads.append(IdPayload(id_type=id_type, data=data, responder=True))
        payloads.append(auth)
        if p.cp is not None:
            attrs = [a if isinstance(a, CpAttribute) else CpAttribute(int(a)) for a in p.cp]
            payloads.append(CpPayload(cfg_type=CfgType.CFG_REQUEST, attributes=attrs))
        payloads += [self.child_sa_payload(), self.ts_payload(p.tsi), self.ts_payload(p.tsr, responder=True)]
        if p.mobike:
            payloads.append(NotifyPayload(notify_type=NotifyType.MOBIKE_SUPPORTED))
        return self.request(ExchangeType.IKE_AUTH, payloads)

    def child_sa_payload(self) -> SaPayload:
        return SaPayload(proposals=[prop.to_wire(number=n, spi=self.child_spi)
                                    for n, prop in enumerate(self.esp_proposals, 1)])

    @staticmethod
    def ts_payload(specs: Iterable, *, responder: bool = False) -> TsPayload:
        return TsPayload(selectors=[selector(s) for s in specs], responder=responder)

    def eap_request(self, response: Received | None = None) -> list[bytes]:
        """The IKE_AUTH request answering the EAP request of ``response`` (default: the last)."""
        response = response or self.last
        payload = response.get(PayloadType.EAP) if response is not None else None
        if payload is None:
            raise InitiatorError(f"no EAP payload to answer in {response}")
        answer = self.eap_peer.respond(payload.data)
        if answer is None:
            raise InitiatorError(f"nothing to answer to {response.eap}")
        return self.request(ExchangeType.IKE_AUTH, [EapPayload(data=answer)])

    def final_auth_request(self) -> list[bytes]:
        """AUTH with the EAP MSK: prf(prf(MSK, "Key Pad for IKEv2"), <InitiatorSignedOctets>)
        (RFC 7296 2.16)."""
        if self.eap_peer.msk is None:
            raise InitiatorError("no MSK: EAP has not succeeded")
        return self.request(ExchangeType.IKE_AUTH, [AuthPayload(method=AuthMethod.SHARED_KEY_MIC,
                                                                data=self.msk_auth(self.initiator_octets()))])

    def initiator_octets(self) -> bytes:
        """RealMessage1 | NonceRData | prf(SK_pi, IDi') (RFC 7296 2.15)."""
        return self.init_request + self.nonce_r + self.prf(self.keys.sk_pi, id_body(*self.idi))

    def responder_octets(self, id_type: int, data: bytes) -> bytes:
        """RealMessage2 | NonceIData | prf(SK_pr, IDr')."""
        return self.init_response + self.nonce_i + self.prf(self.keys.sk_pr, id_body(id_type, data))

    def msk_auth(self, octets: bytes) -> bytes:
        return self.prf(self.prf(self.eap_peer.msk, KEY_PAD), octets)

    def _auth_response(self, rec: Received) -> None:
        idr, auth = rec.get(PayloadType.IDr), rec.get(PayloadType.AUTH)
        if idr is not None:
            self.server_id = (idr.id_type, idr.data)
            self.server_certs = [x509.load_der_x509_certificate(c.data) for c in rec.get_all(PayloadType.CERT)]
        if auth is not None and self.eap_peer.msk is None:
            # the responder's signature over RealMessage2 | Ni | prf(SK_pr, IDr')
            if self.server_id is None or not self.server_certs:
                raise InitiatorError("signature AUTH without IDr and certificate")
            octets = self.responder_octets(*self.server_id)
            if not verify_auth(self.server_certs[0], octets, auth.method, auth.data):
                raise InitiatorError(f"responder's AUTH (method {auth.method}) does not verify")
            self.server_auth_method = auth.method
            self.chain_verified = self._verify_chain()
            if self.own_auth != "eap":  # no EAP: this response completes IKE_AUTH
                self.established = True
                self._config_reply(rec)
                self._child_response(rec)
        elif auth is not None:
            if auth.method != AuthMethod.SHARED_KEY_MIC:
                raise InitiatorError(f"final AUTH with method {auth.method}")
            if not hmac.compare_digest(auth.data, self.msk_auth(self.responder_octets(*self.server_id))):
                raise InitiatorError("responder's MSK AUTH does not verify")
            self.established = True
            self._config_reply(rec)
            self._child_response(rec)
        if rec.get(PayloadType.EAP) is not None and rec.eap.code in (EapCode.SUCCESS, EapCode.FAILURE):
            self.eap_peer.respond(rec.get(PayloadType.EAP).data)

    def _verify_chain(self) -> bool:
        """Whether the received certificates, in order, lead to one of :attr:`trusted`
        (a CA the client trusts may also be one it received)."""
        if not self.trusted:
            return False
        chain = list(self.server_certs)
        for cert, issuer in zip(chain, chain[1:]):
            cert.verify_directly_issued_by(issuer)  # raises if not
        last = chain[-1]
        for anchor in self.trusted:
            if last == anchor:
                return True
            if last.issuer == anchor.subject:
                last.verify_directly_issued_by(anchor)
                return True
        return False

    def _config_reply(self, rec: Received) -> None:
        cp = rec.get(PayloadType.CP)
        if cp is None:
            return
        if cp.cfg_type != CfgType.CFG_REPLY:
            raise InitiatorError(f"CP of type {cp.cfg_type} in a response")
        self.cp_reply = list(cp.attributes)
        for attr in cp.attributes:
            if attr.type == CfgAttr.INTERNAL_IP4_ADDRESS:
                self.vips.append(str(ipaddress.IPv4Address(attr.value[:4])))
            elif attr.type == CfgAttr.INTERNAL_IP6_ADDRESS:
                self.vips.append(str(ipaddress.IPv6Address(attr.value[:16])))
            elif attr.type == CfgAttr.INTERNAL_IP4_DNS:
                self.dns.append(str(ipaddress.IPv4Address(attr.value)))
            elif attr.type == CfgAttr.INTERNAL_IP6_DNS:
                self.dns.append(str(ipaddress.IPv6Address(attr.value)))

    def _child_response(self, rec: Received, nonce_i: bytes | None = None, nonce_r: bytes | None = None,
                        shared: bytes | None = None) -> None:
        sa = rec.get(PayloadType.SA)
        if sa is None:
            return
        if len(sa.proposals) != 1 or len(sa.proposals[0].spi) != 4:
            raise InitiatorError(f"CHILD SA response without one proposal and a 4-byte SPI: {rec}")
        chosen = Proposal.from_wire(sa.proposals[0])
        encr = get_encr(*chosen.encr_alg)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        nonce_i, nonce_r = nonce_i or self.nonce_i, nonce_r or self.nonce_r
        keys = derive_child_keys(self.prf, self.keys.sk_d, nonce_i, nonce_r, encr, integ, shared=shared)
        self.child = ChildSaKeys(
            proposal=chosen,
            spi_i=struct.unpack(">I", self.child_spi)[0],
            spi_r=struct.unpack(">I", sa.proposals[0].spi)[0],
            keys=keys,
            tsi=list(rec.get(PayloadType.TSi).selectors),
            tsr=list(rec.get(PayloadType.TSr).selectors),
            nonce_i=nonce_i,
            nonce_r=nonce_r,
        )

    def keymat(self, length: int) -> bytes:
        """KEYMAT = prf+(SK_d, Ni | Nr) of the IKE_AUTH CHILD SA (RFC 7296 2.17), unsplit."""
        return prf_plus(self.prf, self.keys.sk_d, self.nonce_i + self.nonce_r, length)

    # -- INFORMATIONAL, CREATE_CHILD_SA ---------------------------------------------------------------

    def informational(self, payloads: Iterable = ()) -> list[bytes]:
        return self.request(ExchangeType.INFORMATIONAL, list(payloads))

    def delete_ike(self, ike: IkeSaState | None = None) -> list[bytes]:
        """Delete of an IKE SA: the one in use, or ``ike`` (an old one after a rekey)."""
        return self.request(ExchangeType.INFORMATIONAL, [DeletePayload(protocol=ProtocolId.IKE)], ike=ike)

    def delete_child(self, spis: Iterable[bytes] | None = None) -> list[bytes]:
        """Delete of our inbound SPIs (the ones we offered; RFC 7296 3.11)."""
        spis = list(spis) if spis is not None else [self.child_spi]
        return self.informational([DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=spis)])

    def create_child_sa(self, *, rekey: bool = True, ke_group: int | None = None) -> list[bytes]:
        """A CHILD SA rekey (N(REKEY_SA) SA Ni [KEi] TSi TSr, RFC 7296 1.3.3) or a new
        CHILD SA; ``ke_group`` adds a KE payload (PFS) of that group."""
        payloads: list = []
        if rekey:
            payloads.append(NotifyPayload(notify_type=NotifyType.REKEY_SA, protocol=ProtocolId.ESP,
                                          spi=self.child_spi))
        self.child_spi = secrets.token_bytes(4)
        self._child_nonce = self._fresh_nonce()
        payloads += [self.child_sa_payload(), NoncePayload(data=self._child_nonce)]
        self._rekey_dh = None
        if ke_group is not None:
            self._rekey_dh = get_group(ke_group).generate()
            payloads.append(KePayload(group=ke_group, data=self._rekey_dh.public))
        payloads += [self.ts_payload(self.profile.tsi), self.ts_payload(self.profile.tsr, responder=True)]
        return self.request(ExchangeType.CREATE_CHILD_SA, payloads)

    def rekey_ike(self, *, ke_group: int | None = None) -> list[bytes]:
        """Our rekey of the IKE SA in use (RFC 7296 1.3.2): SA (our IKE proposals with a
        new SPI) Ni KEi.  On the answer the new SA is in use (:attr:`ike`) and the old one
        in :attr:`retired`, to be deleted with ``delete_ike(old)``."""
        group = ke_group or self.proposal.dh_group
        spi = secrets.token_bytes(8)
        nonce = self._fresh_nonce()
        self._rekey_dh = get_group(group).generate()
        self._ike_rekey = (spi, nonce)
        proposals = [prop.to_wire(number=n, spi=spi) for n, prop in enumerate(self.ike_proposals, 1)]
        return self.request(ExchangeType.CREATE_CHILD_SA, [SaPayload(proposals=proposals), NoncePayload(data=nonce),
                                                           KePayload(group=group, data=self._rekey_dh.public)])

    def _fresh_nonce(self) -> bytes:
        return self.forced_nonces.pop(0) if self.forced_nonces else secrets.token_bytes(NONCE_SIZE)

    def _ike_rekey_response(self, rec: Received) -> None:
        """SKEYSEED = prf_old(SK_d_old, g^ir | Ni | Nr), keys over Ni | Nr | SPIi | SPIr
        of the new SA (RFC 7296 2.18); the new SA goes into use, the old one is retired."""
        spi, nonce = self._ike_rekey
        self._ike_rekey = None
        sa, ke, nonce_r = rec.get(PayloadType.SA), rec.get(PayloadType.KE), rec.get(PayloadType.NONCE)
        if sa is None or ke is None or nonce_r is None or len(sa.proposals) != 1 or len(sa.proposals[0].spi) != 8:
            raise InitiatorError(f"IKE rekey response without one proposal, an SPI, KE and nonce: {rec}")
        chosen = Proposal.from_wire(sa.proposals[0])
        shared = self._rekey_dh.compute(ke.data)
        self._adopt_ike(rec.ike, chosen, shared, nonce, nonce_r.data, spi, chosen.spi, initiator=True)

    def _adopt_ike(self, old: IkeSaState, chosen: Proposal, shared: bytes, nonce_i: bytes, nonce_r: bytes,
                   spi_i: bytes, spi_r: bytes, *, initiator: bool) -> IkeSaState:
        """The IKE SA made by rekeying ``old`` goes into use; the one in use is retired."""
        encr = get_encr(*chosen.encr_alg)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        prf = get_prf(chosen.prf_alg)
        _, keys = derive_ike_rekey_keys(old.prf, old.keys.sk_d, prf, encr, integ, shared, nonce_i, nonce_r,
                                        spi_i, spi_r)
        sk_in, sk_out = make_sk_ciphers(chosen, keys, initiator=initiator)
        new = IkeSaState(spi_i=spi_i, spi_r=spi_r, initiator=initiator, proposal=chosen, prf=prf, keys=keys,
                         sk_in=sk_in, sk_out=sk_out, nonce_i=nonce_i, nonce_r=nonce_r)
        self.retired.insert(0, self.ike)
        self.ike = new
        return new

    def answer(self, request: Received, payloads: Iterable = ()) -> list[bytes]:
        """Our response to a request the gateway sent (a DPD, a Delete), on the IKE SA it
        came on."""
        ike = request.ike or self.ike
        header = Message(ike.spi_i, ike.spi_r, request.exchange, request.message_id, initiator=ike.initiator,
                         response=True)
        return [encode_encrypted(header, list(payloads), ike.sk_out)]

    def answer_create_child_sa(self, request: Received, *, error: int | None = None,
                               error_data: bytes = b"") -> list[bytes]:
        """Answer the gateway's CREATE_CHILD_SA request as a responder (RFC 7296 1.3.2,
        1.3.3): pick from its proposal with our own ``esp``/``ike`` proposals (the
        gateway's algorithm order), INVALID_KE_PAYLOAD if its KE is not of the group that
        picks, else our SPI, Nr, [KEr] (and TSi/TSr for a CHILD SA) with the keys derived
        here.  A CHILD SA answered becomes :attr:`child` (the old one joins
        :attr:`old_children`); an IKE SA becomes :attr:`ike` (the old one
        :attr:`retired`).  ``error`` answers with that notify instead."""
        ike = request.ike or self.ike
        if error is not None:
            return self.answer(request, [NotifyPayload(notify_type=error, data=error_data)])
        sa, nonce, ke = request.get(PayloadType.SA), request.get(PayloadType.NONCE), request.get(PayloadType.KE)
        if sa is None or nonce is None or len(sa.proposals) < 1:
            raise InitiatorError(f"CREATE_CHILD_SA request without SA and nonce: {request}")
        ike_rekey = sa.proposals[0].protocol == ProtocolId.IKE
        mine = self.ike_proposals if ike_rekey else self.esp_proposals
        chosen = None
        for offered in (Proposal.from_wire(p) for p in sa.proposals):
            for own in mine:
                chosen = offered.select(own)
                if chosen is not None:
                    break
            if chosen is not None:
                break
        if chosen is None:
            return self.answer(request, [NotifyPayload(notify_type=NotifyType.NO_PROPOSAL_CHOSEN)])
        group = chosen.dh_group
        if group is not None and (ke is None or ke.group != group):
            return self.answer(request, [NotifyPayload(notify_type=NotifyType.INVALID_KE_PAYLOAD,
                                                       data=struct.pack(">H", group))])
        if group is None and ke is not None and not ike_rekey:
            raise InitiatorError(f"KE payload without a key exchange in the chosen proposal: {request}")
        shared, reply_ke = None, []
        if group is not None:
            dh = get_group(group).generate()
            shared = dh.compute(ke.data)
            reply_ke = [KePayload(group=group, data=dh.public)]
        my_nonce = self._fresh_nonce()
        if ike_rekey:
            my_spi = secrets.token_bytes(8)
            payloads = [SaPayload(proposals=[chosen.to_wire(spi=my_spi)]), NoncePayload(data=my_nonce), *reply_ke]
            response = self.answer(request, payloads)
            self._adopt_ike(ike, chosen, shared, nonce.data, my_nonce, chosen.spi, my_spi, initiator=False)
            return response
        rekey = request.notify(NotifyType.REKEY_SA)
        tsi, tsr = request.get(PayloadType.TSi), request.get(PayloadType.TSr)
        if rekey is None or tsi is None or tsr is None:
            raise InitiatorError(f"CHILD SA request without REKEY_SA, TSi or TSr: {request}")
        my_spi = secrets.token_bytes(4)
        encr = get_encr(*chosen.encr_alg)
        integ = None if encr.aead else get_integ(chosen.integ_alg)
        keys = derive_child_keys(ike.prf, ike.keys.sk_d, nonce.data, my_nonce, encr, integ, shared=shared)
        child = ChildSaKeys(proposal=chosen, spi_i=struct.unpack(">I", chosen.spi)[0],
                            spi_r=struct.unpack(">I", my_spi)[0], keys=keys, tsi=list(tsi.selectors),
                            tsr=list(tsr.selectors), client_initiated=False, nonce_i=nonce.data, nonce_r=my_nonce)
        payloads = [SaPayload(proposals=[chosen.to_wire(spi=my_spi)]), NoncePayload(data=my_nonce), *reply_ke,
                    tsi, tsr]
        if self.child is not None:
            self.old_children.append(self.child)
        self.child = child
        self.child_spi = my_spi
        return self.answer(request, payloads)

    # -- sealing and sending ----------------------------------------------------------------------

    def request(self, exchange: int, payloads: list, *, fragment_size: int | None = None,
                ike: IkeSaState | None = None) -> list[bytes]:
        """Seal a request with the next message ID (window of one, RFC 7296 2.3), on the
        IKE SA in use or on ``ike``."""
        ike = ike or self.ike
        datagrams = self.seal(exchange, payloads, message_id=ike.next_mid, fragment_size=fragment_size, ike=ike)
        ike.pending_mid = ike.next_mid
        ike.next_mid += 1
        ike.last_request = datagrams
        return datagrams

    def seal(self, exchange: int, payloads: list, *, message_id: int, fragment_size: int | None = None,
             response: bool = False, ike: IkeSaState | None = None) -> list[bytes]:
        """Encrypt without touching the message ID counter; split into Encrypted
        Fragments (RFC 7383 2.5) when the datagram would exceed ``fragment_size`` (or
        the profile's), which counts the whole IP datagram like charon.fragment_size."""
        ike = ike or self.ike
        header = Message(ike.spi_i, ike.spi_r, exchange, message_id, initiator=ike.initiator, response=response)
        limit = fragment_size or self.profile.fragment_size
        if limit:
            overhead = (20 if ":" not in self.remote.host else 40) + 8 + (4 if self.remote.port != 500 else 0)
            _, plain = encode_payloads(payloads)
            if 28 + 4 + ike.sk_out.overhead(len(plain)) + overhead > limit:
                return encode_fragments(header, payloads, ike.sk_out, limit, ip_overhead=overhead)
        return [encode_encrypted(header, payloads, ike.sk_out)]

    def seal_raw(self, exchange: int, first_payload: int, plaintext: bytes, *,
                 message_id: int | None = None) -> list[bytes]:
        """An SK message around arbitrary plaintext (to send malformed inner payloads)."""
        mid = self.next_mid if message_id is None else message_id
        placeholder = SkPayload(first_inner=first_payload, body=bytes(self.sk_out.overhead(len(plaintext))))
        header = Message(self.spi_i, self.spi_r, exchange, mid, initiator=self.ike.initiator, response=False,
                         payloads=[placeholder])
        aad = encode_message(header)[:32]  # IKE header + SK generic header (RFC 7296 3.14)
        datagram = aad + self.sk_out.seal(aad, plaintext)
        if message_id is None:
            self.pending_mid = mid
            self.next_mid += 1
            self.last_request = [datagram]
        return [datagram]

    def retransmit(self) -> list[bytes]:
        """The last request again, byte for byte (RFC 7296 2.1)."""
        return list(self.last_request)

    # -- receiving ---------------------------------------------------------------------------------

    def receive(self, data: bytes) -> Received | None:
        """Take one datagram from the responder; the decoded message once complete
        (None for a fragment still waiting for the others or a stray response)."""
        header = decode_header(data)
        ike = next((st for st in self.ike_sas if st.owns(header)), None)
        if ike is None:
            raise InitiatorError(f"datagram for IKE SA {header.spi_i.hex()}_i {header.spi_r.hex()}_r reached {self}")
        if header.exchange != ExchangeType.IKE_SA_INIT and header.initiator == ike.initiator:
            raise InitiatorError(f"I flag {header.initiator} on a message from the gateway, IKE SA {ike}")
        msg = decode_message(data)
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            rec = Received(msg, list(msg.payloads), [data], ike)
            self.received.append(rec)
            if msg.response:
                self._init_response(rec, data)
            return rec
        if msg.response and msg.message_id != ike.pending_mid:
            return None
        payloads = self._open(data, msg, ike)
        if payloads is None:
            return None
        fragmented = isinstance(msg.sealed, SkfPayload) and msg.sealed.total_fragments > 1
        rec = Received(msg, payloads, list(self._fragment_datagrams) if fragmented else [data], ike)
        self.received.append(rec)
        if not msg.response:
            self.requests.append(rec)
            return rec
        ike.pending_mid = None
        sa = rec.get(PayloadType.SA)
        if msg.exchange == ExchangeType.IKE_AUTH:
            self._auth_response(rec)
        elif msg.exchange == ExchangeType.CREATE_CHILD_SA and self._ike_rekey is not None:
            if sa is not None:
                self._ike_rekey_response(rec)
            self._ike_rekey = None
        elif msg.exchange == ExchangeType.CREATE_CHILD_SA and sa is not None:
            # KEYMAT = prf+(SK_d, [g^ir] | Ni | Nr) with this exchange's nonces
            if self.child is not None:
                self.old_children.append(self.child)
            ke = rec.get(PayloadType.KE)
            shared = self._rekey_dh.compute(ke.data) if self._rekey_dh is not None and ke is not None else None
            self._child_response(rec, self._child_nonce, rec.get(PayloadType.NONCE).data, shared)
        return rec

    def _open(self, data: bytes, msg: Message, ike: IkeSaState | None = None) -> list | None:
        ike = ike or self.ike
        sealed = msg.sealed
        if sealed is None:
            return list(msg.payloads)  # unencrypted error notify
        if isinstance(sealed, SkfPayload) and sealed.total_fragments > 1:
            if msg.message_id != self._fragments_mid:
                self._fragments, self._fragment_datagrams = {}, []
                self._fragments_mid, self._fragments_total = msg.message_id, sealed.total_fragments
            self._fragments[sealed.fragment_number] = open_sealed(data, ike.sk_in)
            self._fragment_datagrams.append(data)
            if sealed.fragment_number == 1:
                self._fragments_first = sealed.first_inner
            if len(self._fragments) < self._fragments_total:
                return None
            plain = b"".join(self._fragments[i] for i in range(1, self._fragments_total + 1))
            self._fragments_mid = -1
            return decode_payloads(self._fragments_first, plain)
        return decrypt_message(data, msg, ike.sk_in)

    # -- whole exchanges over a transport -------------------------------------------------------------

    def exchange(self, transport: Transport, datagrams: list) -> Received | None:
        """Send a request and return its response (None if none came back at once)."""
        result = None
        for data in transport(datagrams):
            rec = self.receive(data)
            if rec is not None and rec.is_response:
                result = rec
        return result

    def sa_init(self, transport: Transport, *, tries: int = 3) -> Received | None:
        """IKE_SA_INIT, repeated after a COOKIE or INVALID_KE_PAYLOAD (bounded)."""
        response = None
        for _ in range(tries):
            response = self.exchange(transport, self.sa_init_request())
            if response is None or self.keys is not None:
                return response
            if response.notify(NotifyType.COOKIE) is None and response.notify(NotifyType.INVALID_KE_PAYLOAD) is None:
                return response
        return response

    def connect(self, transport: Transport) -> Received | None:
        """The whole connection: IKE_SA_INIT, IKE_AUTH with the EAP rounds, the final
        AUTH.  Returns the last response (check :attr:`established`), None if the
        responder went silent (held back or dropped)."""
        response = self.sa_init(transport)
        if response is None or self.keys is None:
            return response
        response = self.exchange(transport, self.auth_request())
        while response is not None and response.error is None and response.eap is not None:
            if response.eap.code == EapCode.SUCCESS:
                return self.exchange(transport, self.final_auth_request())
            if response.eap.code != EapCode.REQUEST:
                return response
            response = self.exchange(transport, self.eap_request(response))
        return response
