"""Fuzz target for the IKE engine: a whole connection with one step mutated.

A :class:`Session` is one Windows 10 client (the in-memory initiator of the engine tests,
``tests/ike/initiator.py``) against a fresh :class:`~.engine_checks.CheckedGateway`
serving the seed configuration, with short lifetimes and DPD so the gateway also makes
requests of its own (:data:`FUZZ_EDITS`).  :data:`STEPS` is the client's whole life:

* IKE_SA_INIT, IKE_AUTH, the three EAP-MSCHAPv2 rounds, the MSK AUTH;
* on the established SA: an INFORMATIONAL, a CHILD rekey, a new CHILD SA, a CHILD rekey
  with PFS, an IKE rekey and the Delete of the old IKE SA;
* its answers to seven requests of the gateway (DPD, the gateway's rekeys of the CHILD
  SAs with PFS and the Deletes of the old ones, its IKE rekey and the Delete of the old
  IKE SA);
* a CHILD Delete and the IKE Delete.

One fuzz input is ``step | mode | argument``: every step before ``step`` is played as a
real client plays it; at ``step`` the client's message is replaced by a mutation of it
(:data:`MODES`), then the real message is sent too, and the connection goes on for
:data:`CONTINUE_STEPS` more steps as far as the client can follow.  Messages after
IKE_SA_INIT are mutated *before* encryption and sealed with the client's keys (or the
header is changed and the message re-sealed), so the engine's parsing behind the
integrity check is what gets fuzzed, not only the ICV check.  The run ends with
``Gateway.shutdown`` and the leak check.

Every ``Gateway.receive``/``tick`` is checked (no exception, documented outputs,
consistent and bounded tables, events that make sense to the data plane, see
:mod:`.engine_checks`); the client's own troubles (it is a test client, it gives up on
answers it does not expect) only end the run early.

With :func:`deterministic` the run is reproducible bit for bit: the gateway's RNG
(``Runtime.random``), the Diffie-Hellman exponents and the client's SPIs and nonces come
from a seeded generator, so a crash file replays, and the seeds of the corpus (the real
plaintexts) are exactly what the live run would send.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import random
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography import x509

import ikegate.crypto.dh
from ikegate.config.loader import load_config
from ikegate.daemon.builder import build_runtime
from ikegate.ike.events import Endpoint
from ikegate.pki.example import write_example
from ikegate.wire.codec import EncodeError, decode_message, encode_payloads
from ikegate.wire.constants import ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId
from ikegate.wire.payloads import DeletePayload, EapPayload, NotifyPayload

import ike.initiator
from ike.harness import GATEWAY_V4, Network
from ike.initiator import WINDOWS10, Initiator, Received, parse_proposals

from .engine_checks import (
    CheckedGateway,
    EngineFailure,
    KnownBug,
    check_clean_shutdown,
    check_consistency,
    strict_logging,
)
from .mutations import Reader, edit_bytes, mutate_payloads

__all__ = [
    "MODES",
    "STEPS",
    "ClientLost",
    "Env",
    "Session",
    "answer_request",
    "check_engine",
    "deterministic",
    "describe_input",
    "engine_seeds",
    "fuzz_env",
    "recorded_connection",
    "run_case",
]

#: The seed configuration with DPD after 20 s of silence and the gateway's own rekeys
#: (CHILD SAs in (30, 35] s, the IKE SA in (50, 55] s), so it sends requests of every
#: kind for the client to answer: DPD, CHILD rekey, CHILD Delete, IKE rekey, IKE Delete.
#: An ESP proposal with a key exchange is accepted too (last, so the gateway's own
#: rekeys keep the first proposal's "no key exchange"), for the client's PFS rekey.
PFS_ESP = "aes256-sha256-modp2048"
FUZZ_EDITS = {
    "rekey=no": "rekey=yes\n    lifetime=40s\n    margintime=5s\n    ikelifetime=60s\n    reauth=no",
    "dpddelay=2400s": "dpddelay=20s",
    "esp=aes256-aes192-aes128-sha384-sha256-sha1!": f"esp=aes256-aes192-aes128-sha384-sha256-sha1,{PFS_ESP}!",
}
CLIENT_HOST = "198.51.100.10"
MOVED_HOST = "198.51.100.99"


class ClientLost(Exception):
    """The test client cannot follow any more (not a gateway bug): the run ends."""


# --------------------------------------------------------------------------- environment


@dataclass
class Env:
    """A loaded configuration to build gateways on: runtime, users, the clients' CA.

    The runtime is shared by every gateway a process builds; its address pools are not:
    :meth:`fresh_pools` gives each run empty ones, so a run that failed half-way (and
    kept its leases) cannot fail the next."""

    runtime: object
    users: dict
    root: x509.Certificate
    directory: Path
    pristine_pools: object = None

    def fresh_pools(self):
        self.runtime.pools = copy.deepcopy(self.pristine_pools)
        return self.runtime.pools


@lru_cache(maxsize=None)
def _seed_layout():
    """``ikegate example``'s layout (demo PKI, users), written once per process."""
    directory = Path(tempfile.mkdtemp(prefix="ikegate-fuzz-"))
    atexit.register(shutil.rmtree, directory, True)
    return write_example(directory / "seed", users={"user3": "password3"}, ntlm_users=())


@lru_cache(maxsize=None)
def _env(edits: tuple) -> Env:
    layout = _seed_layout()
    base = Path(layout.directory).parent
    confdir = base / f"conf{abs(hash(edits)) % 10**8}"
    if not confdir.exists():
        shutil.copytree(base / "seed", confdir)
        conf = (confdir / "ipsec.conf").read_text()
        for old, new in edits:
            if old not in conf:
                raise ValueError(f"{old!r} is not in the seed's ipsec.conf")
            conf = conf.replace(old, new)
        (confdir / "ipsec.conf").write_text(conf)
    config, diagnostics = load_config(confdir)
    if diagnostics.errors:
        raise ValueError(f"fuzz configuration does not load: {diagnostics.errors}")
    runtime = build_runtime(config, confdir)
    root = x509.load_pem_x509_certificate((confdir / "ca" / "root.crt").read_bytes())
    return Env(runtime, dict(layout.users), root, confdir, copy.deepcopy(runtime.pools))


def fuzz_env(edits: dict[str, str] | None = None) -> Env:
    """The seed configuration with ``edits`` (default :data:`FUZZ_EDITS`), loaded once per process."""
    return _env(tuple(sorted((FUZZ_EDITS if edits is None else edits).items())))


class _SeededSecrets:
    """What ``ikegate.crypto.dh`` and the test initiator take from :mod:`secrets`."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def token_bytes(self, n: int = 32) -> bytes:
        return self._rng.randbytes(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)


@contextlib.contextmanager
def deterministic(env: Env, seed: int = 0):
    """Make a run reproducible: seeded ``Runtime.random``, DH exponents and client
    randomness while the block runs (restored afterwards)."""
    rng = random.Random(seed)
    fake = _SeededSecrets(rng)
    saved = (env.runtime.random, ikegate.crypto.dh.secrets, ike.initiator.secrets)
    env.runtime.random = fake.token_bytes
    ikegate.crypto.dh.secrets = fake
    ike.initiator.secrets = fake
    try:
        yield
    finally:
        env.runtime.random, ikegate.crypto.dh.secrets, ike.initiator.secrets = saved


# ------------------------------------------------------------------------------- the client


@dataclass
class Spec:
    """One message the client sent, before encryption: enough to mutate and re-seal it.
    ``ike`` is the client's IKE SA state (None for the unencrypted IKE_SA_INIT)."""

    exchange: int
    message_id: int
    payloads: list
    response: bool
    ike: object | None
    spi_i: bytes
    spi_r: bytes
    initiator: bool = True
    datagrams: list = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return self.ike is not None


class FuzzClient(Initiator):
    """The engine tests' initiator, remembering the plaintext of what it sends last."""

    last_spec: Spec | None = None

    def sa_init_request(self, *, extra=()) -> list[bytes]:
        datagrams = super().sa_init_request(extra=extra)
        msg = decode_message(datagrams[0])
        self.last_spec = Spec(ExchangeType.IKE_SA_INIT, 0, list(msg.payloads), False, None, msg.spi_i, msg.spi_r,
                              datagrams=datagrams)
        return datagrams

    def seal(self, exchange, payloads, *, message_id, fragment_size=None, response=False, ike=None):
        state = ike or self.ike
        datagrams = super().seal(exchange, payloads, message_id=message_id, fragment_size=fragment_size,
                                 response=response, ike=ike)
        self.last_spec = Spec(exchange, message_id, list(payloads), response, state, state.spi_i, state.spi_r,
                              state.initiator, datagrams)
        return datagrams

    def answer(self, request: Received, payloads=()) -> list[bytes]:
        state = request.ike or self.ike
        datagrams = super().answer(request, payloads)
        self.last_spec = Spec(request.exchange, request.message_id, list(payloads), True, state, state.spi_i,
                              state.spi_r, state.initiator, datagrams)
        return datagrams


# ---------------------------------------------------------------------- building datagrams

_IKE_HEADER = struct.Struct("!8s8sBBBBII")


def _flags(spec: Spec) -> int:
    return (HeaderFlag.INITIATOR if spec.initiator else 0) | (HeaderFlag.RESPONSE if spec.response else 0)


@dataclass
class Header:
    """Header fields of a message to build (any values, also invalid ones)."""

    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    message_id: int
    version: int = 0x20

    @classmethod
    def of(cls, spec: Spec) -> "Header":
        return cls(spec.spi_i, spec.spi_r, spec.exchange, _flags(spec), spec.message_id)

    def pack(self, next_payload: int, length: int) -> bytes:
        return _IKE_HEADER.pack(self.spi_i[:8].ljust(8, b"\0"), self.spi_r[:8].ljust(8, b"\0"), next_payload & 0xFF,
                                self.version & 0xFF, self.exchange & 0xFF, self.flags & 0xFF,
                                self.message_id & 0xFFFFFFFF, length & 0xFFFFFFFF)


def plain_message(header: Header, first: int, chain: bytes) -> bytes:
    return header.pack(first, 28 + len(chain)) + chain


def sealed_message(spec: Spec, header: Header, first: int, plaintext: bytes) -> bytes:
    """An SK message around ``plaintext`` sealed with the client's keys: a valid ICV over
    whatever header it has (RFC 7296 3.14)."""
    cipher = spec.ike.sk_out
    body_len = cipher.overhead(len(plaintext))
    aad = header.pack(PayloadType.SK, 28 + 4 + body_len) + struct.pack("!BBH", first & 0xFF, 0, (4 + body_len) & 0xFFFF)
    return aad + cipher.seal(aad, plaintext)


def sealed_fragment(spec: Spec, header: Header, number: int, total: int, first: int, piece: bytes) -> bytes:
    """One Encrypted Fragment message (RFC 7383 2.5) with any numbers, validly sealed."""
    cipher = spec.ike.sk_out
    body_len = cipher.overhead(len(piece))
    aad = header.pack(PayloadType.SKF, 28 + 8 + body_len) + struct.pack(
        "!BBHHH", first & 0xFF, 0, (8 + body_len) & 0xFFFF, number & 0xFFFF, total & 0xFFFF)
    return aad + cipher.seal(aad, piece)


def _build(spec: Spec, header: Header, first: int, chain: bytes) -> bytes:
    return sealed_message(spec, header, first, chain) if spec.encrypted else plain_message(header, first, chain)


# -------------------------------------------------------------------------------- mutations


def _mode_replace(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """The whole plaintext (or IKE_SA_INIT payload chain) from the fuzz input."""
    first = r.u8()
    return [_build(spec, Header.of(spec), first, r.rest())]


def _mode_edit(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Byte edits of the encoded plaintext chain."""
    first, chain = encode_payloads(spec.payloads)
    if r.u8() % 8 == 0:
        first = r.u8()
    return [_build(spec, Header.of(spec), first, edit_bytes(chain, r))]


def _mode_struct(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Payload-level edits; mutations the encoder refuses send nothing."""
    payloads = mutate_payloads(spec.payloads, r)
    try:
        first, chain = encode_payloads(payloads)
    except EncodeError:
        return []
    return [_build(spec, Header.of(spec), first, chain)]


_EXCHANGES = (0, 1, 33, 34, 35, 36, 37, 38, 43, 255)


def _mode_header(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Header fields changed; re-sealed (valid ICV) or changed in the sealed datagram."""
    header = Header.of(spec)
    first, chain = encode_payloads(spec.payloads)
    for _ in range(1 + r.u8() % 3):
        which = r.u8() % 7
        if which == 0:
            header.exchange = _EXCHANGES[r.below(len(_EXCHANGES))] if r.u8() & 1 else r.u8()
        elif which == 1:
            header.flags ^= 1 << (r.u8() % 8)
        elif which == 2:
            mid = spec.message_id
            header.message_id = (mid + 1, mid - 1, mid + 2, 0, 0xFFFFFFFF, r.u32())[r.u8() % 6] & 0xFFFFFFFF
        elif which == 3:
            header.version = (0x21, 0x2F, 0x30, 0x10, r.u8())[r.u8() % 5]
        elif which == 4:
            choice = r.u8() % 4
            if choice == 0:
                header.spi_i, header.spi_r = header.spi_r, header.spi_i
            elif choice == 1:
                header.spi_r = bytes(8)
            elif choice == 2:
                header.spi_i = r.take(8).ljust(8, b"\0")
            else:
                header.spi_r = r.take(8).ljust(8, b"\0")
        elif which == 5:
            first = r.u8()
        else:
            header.flags ^= HeaderFlag.RESPONSE
    if spec.encrypted and r.u8() & 1:  # keep the legitimate sealed body: the ICV fails
        return [header.pack(spec.datagrams[0][16], len(spec.datagrams[0])) + spec.datagrams[0][28:]]
    return [_build(spec, header, first, chain)]


def _mode_fragment(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """The (maybe edited) plaintext as Encrypted Fragments, with numbering edits."""
    if not spec.encrypted:
        return _mode_edit(session, spec, r)
    first, chain = encode_payloads(spec.payloads)
    if r.u8() & 1:
        chain = edit_bytes(chain, r)
    chunk = 1 + r.u16() % max(1, len(chain))
    pieces = [chain[i : i + chunk] for i in range(0, len(chain), chunk)] or [b""]
    frags = [[n + 1, len(pieces), first if n == 0 else 0, piece] for n, piece in enumerate(pieces)]
    for _ in range(r.u8() % 4):
        op, i = r.u8() % 6, r.below(len(frags)) if frags else 0
        if not frags:
            break
        if op == 0:
            del frags[i]
        elif op == 1:
            frags.insert(i, list(frags[i]))
        elif op == 2:
            j = r.below(len(frags))
            frags[i], frags[j] = frags[j], frags[i]
        elif op == 3:
            frags[i][1] = r.u16() if r.u8() & 1 else frags[i][1] + 1
        elif op == 4:
            frags[i][0] = r.u16() if r.u8() & 1 else frags[i][0] + 1
        else:
            frags[i][2] = r.u8()
    header = Header.of(spec)
    return [sealed_fragment(spec, header, *frag) for frag in frags[:64]]


def _mode_raw(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Raw bytes, optionally with this SA's SPIs and a correct length field."""
    options = r.u8()
    data = bytearray(r.rest())
    if options & 1:
        data[0:16] = spec.spi_i + spec.spi_r
    if options & 2 and len(data) >= 28:
        data[24:28] = struct.pack("!I", len(data))
    if options & 4 and len(data) >= 18:
        data[17] = 0x20
    return [bytes(data)]


def _mode_replay(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """An earlier datagram of the client again, before the real message."""
    history = session.history
    old = [history[r.below(len(history))]] if history else []
    return old + list(spec.datagrams)


def _mode_delay(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Time passes (timers fire) before the real message goes out."""
    seconds = (0.5, 5.0, 29.0, 31.0, 45.0, 61.0, 300.0, float(r.u16() % 4000))[r.u8() % 8]
    session.advance(seconds)
    return list(spec.datagrams)


def _mode_duplicate(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """The real message twice (reversed when fragmented), after the previous one again."""
    again = list(spec.datagrams)
    previous = [session.history[-1]] if session.history and r.u8() & 1 else []
    return previous + again + again[::-1]


def _mode_moved(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """The client moves (NAT-T port float, a NAT rebinding, a new address) and sends the
    real message from there; it stays there for the rest of the run."""
    host, port = session.client.local
    session.client.local = (
        Endpoint(host, 4500),
        Endpoint(host, 1024 + r.u16() % 60000),
        Endpoint(MOVED_HOST, port),
        Endpoint(MOVED_HOST, 4500),
    )[r.u8() % 4]
    return list(spec.datagrams)


#: Notifies a peer may send (status and error), each with a way to make its data.
_NOTIFY_CHOICES = (
    NotifyType.UPDATE_SA_ADDRESSES, NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP,
    NotifyType.COOKIE2, NotifyType.REKEY_SA, NotifyType.INITIAL_CONTACT, NotifyType.AUTH_LIFETIME,
    NotifyType.MOBIKE_SUPPORTED, NotifyType.NO_ADDITIONAL_ADDRESSES, NotifyType.ADDITIONAL_IP4_ADDRESS,
    NotifyType.ADDITIONAL_IP6_ADDRESS, NotifyType.SIGNATURE_HASH_ALGORITHMS, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,
    NotifyType.REDIRECT_SUPPORTED, NotifyType.USE_TRANSPORT_MODE, NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED,
    NotifyType.NON_FIRST_FRAGMENTS_ALSO, NotifyType.EAP_ONLY_AUTHENTICATION, NotifyType.MULTIPLE_AUTH_SUPPORTED,
    NotifyType.ANOTHER_AUTH_FOLLOWS, NotifyType.COOKIE, NotifyType.INVALID_KE_PAYLOAD, NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TEMPORARY_FAILURE, NotifyType.CHILD_SA_NOT_FOUND, NotifyType.AUTHENTICATION_FAILED,
    NotifyType.INVALID_SYNTAX, NotifyType.TS_UNACCEPTABLE, NotifyType.NO_ADDITIONAL_SAS,
    NotifyType.INTERNAL_ADDRESS_FAILURE, NotifyType.FAILED_CP_REQUIRED, NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.INVALID_SPI, NotifyType.INVALID_MESSAGE_ID, NotifyType.INVALID_IKE_SPI,
    NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
)  # fmt: skip


def _notify_data(session: "Session", notify_type: int, r: Reader) -> tuple[int, bytes, bytes]:
    """(protocol, SPI, data) for a notify: the right shape, an empty one, or fuzz."""
    c = session.client
    shape = r.u8() % 4
    if shape == 0:
        return 0, b"", b""
    if shape == 1:
        return r.u8() % 5, r.take(r.u8() % 9), r.take(r.u8() % 40)
    if notify_type == NotifyType.REKEY_SA or notify_type == NotifyType.INVALID_SPI:
        children = [ch for ch in (c.child, *c.old_children) if ch is not None]
        spi = struct.pack(">I", children[r.below(len(children))].client_spi) if children else r.take(4)
        return ProtocolId.ESP, spi, b""
    if notify_type == NotifyType.INVALID_KE_PAYLOAD:
        return 0, b"", struct.pack(">H", (2, 14, 19, 31, 0, 0xFFFF)[r.u8() % 6])
    if notify_type == NotifyType.SIGNATURE_HASH_ALGORITHMS:
        return 0, b"", r.take(r.u8() % 12)
    if notify_type == NotifyType.AUTH_LIFETIME:
        return 0, b"", r.take(4).ljust(4, b"\0")
    if notify_type == NotifyType.ADDITIONAL_IP4_ADDRESS:
        return 0, b"", r.take(4).ljust(4, b"\0")
    if notify_type == NotifyType.ADDITIONAL_IP6_ADDRESS:
        return 0, b"", r.take(16).ljust(16, b"\0")
    if notify_type in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP):
        return 0, b"", r.take(20).ljust(20, b"\0")
    return 0, b"", r.take(r.u8() % 64)


def _mode_notify(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """Notifies a peer may send, added (anywhere) or instead of the payloads (an error
    answer): UPDATE_SA_ADDRESSES, REKEY_SA, INVALID_KE_PAYLOAD, NAT-D, COOKIE2, ..."""
    payloads = [] if r.u8() % 4 == 0 else list(spec.payloads)
    for _ in range(1 + r.u8() % 3):
        notify_type = _NOTIFY_CHOICES[r.below(len(_NOTIFY_CHOICES))]
        protocol, spi, data = _notify_data(session, notify_type, r)
        payloads.insert(r.below(len(payloads) + 1),
                        NotifyPayload(notify_type=notify_type, protocol=protocol, spi=spi, data=data))
    try:
        first, chain = encode_payloads(payloads)
    except EncodeError:
        return []
    return [_build(spec, Header.of(spec), first, chain)]


def _mode_eap(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """A crafted EAP packet instead of (or besides) the real one: any code, identifier,
    type and EAP-MSCHAPv2 fields, lengths right or wrong."""
    real = next((p.data for p in spec.payloads if isinstance(p, EapPayload)), bytes((2, 1, 0, 5, 1)))
    code = (1, 2, 3, 4, r.u8())[r.u8() % 5] if r.u8() & 1 else real[0]
    identifier = real[1] if r.u8() & 1 else r.u8()
    eap_type = (1, 3, 26, 254, 2, 4, r.u8())[r.u8() % 7] if r.u8() % 3 == 0 else (real[4] if len(real) > 4 else 1)
    if eap_type == 26:  # MS-CHAPv2: OpCode, MS-CHAPv2-ID, MS-Length, then by OpCode
        opcode = (1, 2, 3, 4, r.u8())[r.u8() % 5]
        ms_id = real[6] if len(real) > 6 and r.u8() & 1 else r.u8()
        value = r.take(r.u8() % 60) if r.u8() & 1 else bytes(49)
        name = (b"user1", b"DOMAIN\\user1", b"", b"\\", b"\xff\x00name", r.take(r.u8() % 40))[r.u8() % 6]
        body = bytes((len(value) if r.u8() & 1 else r.u8(),)) + value + name
        ms_length = 4 + len(body) if r.u8() % 4 else r.u16()
        type_data = struct.pack("!BBH", opcode, ms_id, ms_length & 0xFFFF) + (body if opcode == 2 else body[:r.u8()])
    elif eap_type == 3:  # NAK: the types the peer wants
        type_data = r.take(r.u8() % 4)
    else:
        type_data = r.take(r.u8() % 64)
    packet = bytes((code & 0xFF, identifier)) + b"\0\0" + (bytes((eap_type,)) + type_data if r.u8() % 8 else b"")
    length = len(packet) if r.u8() % 4 else r.u16()
    packet = packet[:2] + struct.pack("!H", length & 0xFFFF) + packet[4:]
    payloads = [p for p in spec.payloads if not isinstance(p, EapPayload)] if r.u8() % 4 else list(spec.payloads)
    payloads.insert(r.below(len(payloads) + 1), EapPayload(data=packet))
    first, chain = encode_payloads(payloads)
    return [_build(spec, Header.of(spec), first, chain)]


def _mode_interleave(session: "Session", spec: Spec, r: Reader) -> list[bytes]:
    """A request of the client's own first (a CHILD or IKE rekey, a new CHILD SA, a
    Delete, a DPD), then the real message: collisions with the gateway's exchanges."""
    c = session.client
    saved = c.last_spec
    try:
        choice = r.u8() % 6
        if choice == 0:
            extra = c.create_child_sa()
        elif choice == 1:
            extra = c.rekey_ike()
        elif choice == 2:
            extra = c.create_child_sa(rekey=False)
        elif choice == 3:
            extra = c.delete_child()
        elif choice == 4:
            extra = c.informational()
        else:
            extra = c.delete_ike()
    except (EngineFailure, KnownBug, ClientLost):
        raise
    except Exception:  # no keys yet (IKE_SA_INIT): nothing to interleave
        extra = []
    finally:
        c.last_spec = saved
    return list(extra) + list(spec.datagrams)


MODES = (
    ("replace", _mode_replace),
    ("edit", _mode_edit),
    ("struct", _mode_struct),
    ("header", _mode_header),
    ("fragment", _mode_fragment),
    ("raw", _mode_raw),
    ("replay", _mode_replay),
    ("delay", _mode_delay),
    ("duplicate", _mode_duplicate),
    ("moved", _mode_moved),
    ("notify", _mode_notify),
    ("eap", _mode_eap),
    ("interleave", _mode_interleave),
)


# --------------------------------------------------------------------------------- session


class Session:
    """One client's connection against a fresh checked gateway (see the module docstring)."""

    def __init__(self, env: Env, *, profile=WINDOWS10, host: str = CLIENT_HOST, max_sas: int = 8) -> None:
        self.env = env
        env.fresh_pools()
        self.net = Network(env.runtime, env.users, trusted=[env.root])
        gateway = CheckedGateway(env.runtime, now=self.net.now)
        gateway.max_sas = max_sas
        self.net.gateway = gateway
        self.client = FuzzClient(profile, local=Endpoint(host, 500), remote=GATEWAY_V4, user="user1",
                                 password=env.users["user1"], trusted=[env.root])
        self.history: list[bytes] = []
        self.answered: set = set()

    @property
    def gateway(self) -> CheckedGateway:
        return self.net.gateway

    # -- moving datagrams ------------------------------------------------------------------

    def send(self, datagrams: list[bytes], *, strict: bool = True) -> list[Received]:
        """Deliver client datagrams; hand what comes back to the client.  ``strict``: a
        client that cannot take an answer is lost (:class:`ClientLost`); otherwise the
        answer is skipped."""
        for data in datagrams:
            self.history.append(data)
        replies = self.net.send(self.client, list(datagrams))
        return self.take(replies, strict=strict)

    def take(self, replies: list[bytes], *, strict: bool) -> list[Received]:
        received = []
        for data in replies:
            try:
                rec = self.client.receive(data)
            except (EngineFailure, KnownBug):
                raise
            except Exception as exc:
                if strict:
                    raise ClientLost(f"client cannot take {data[:32].hex()}...: {exc!r}") from exc
                continue
            if rec is not None:
                received.append(rec)
        return received

    def advance(self, seconds: float) -> None:
        self.net.advance(seconds)
        self.take(self.net.collect(self.client), strict=False)

    # -- the gateway's requests ----------------------------------------------------------------

    def next_gateway_request(self, *, rounds: int = 40) -> Received | None:
        """The next request of the gateway not answered yet, moving the clock from timer to
        timer until one comes (None if the gateway has nothing more to say)."""
        for _ in range(rounds):
            for req in self.client.requests:
                key = (req.ike.spi_i if req.ike else b"", req.ike.spi_r if req.ike else b"", req.message_id)
                if key not in self.answered:
                    self.answered.add(key)
                    return req
            due = self.gateway.next_timer()
            if due is None:
                return None
            self.advance(max(0.0, due - self.net.now) + 0.01)
        return None

    def answer(self, req: Received) -> list[bytes]:
        return answer_request(self.client, req)

    # -- running ---------------------------------------------------------------------------------

    def legit(self, step) -> tuple[list[bytes], Spec | None]:
        """The client's real message for a step (``[]`` if the step does not apply)."""
        self.client.last_spec = None
        try:
            datagrams = step(self) or []
        except (EngineFailure, KnownBug):
            raise
        except Exception as exc:
            raise ClientLost(f"client cannot make its next message: {exc!r}") from exc
        return list(datagrams), self.client.last_spec

    def play(self, step) -> None:
        datagrams, _ = self.legit(step)
        if datagrams:
            self.send(datagrams)

    def play_mutated(self, step, mode: int, reader: Reader) -> None:
        datagrams, spec = self.legit(step)
        if not datagrams or spec is None:
            return
        name, mutate = MODES[mode % len(MODES)]
        mutated = mutate(self, spec, reader)
        init = spec.exchange == ExchangeType.IKE_SA_INIT and not spec.encrypted
        if init and len(mutated) == 1:
            self.client.init_request = mutated[0]  # what the client signs, if the gateway takes it
        self.send(mutated, strict=False)
        if init and self.client.keys is None:
            self.client.init_request = datagrams[0]
        if name not in ("replay", "delay", "duplicate", "moved", "interleave"):  # sent the real one already
            self.send(datagrams, strict=False)

    def finish(self) -> None:
        """The tables and status once more, then shutdown and the leak check."""
        check_consistency(self.gateway, self.net.now, max_sas=self.gateway.max_sas)
        check_clean_shutdown(self.gateway, self.net.now, self.env.runtime.pools)


def answer_request(client: Initiator, req: Received) -> list[bytes]:
    """A client's answer to a gateway request, as a peer gives it: the CREATE_CHILD_SA
    answered as a responder, a Delete of CHILD SAs with our SPIs of them, else empty."""
    if req.exchange == ExchangeType.CREATE_CHILD_SA:
        with with_pfs(client):
            return client.answer_create_child_sa(req)
    payloads = []
    for delete in req.get_all(PayloadType.DELETE):
        if delete.protocol == ProtocolId.ESP:
            children = [ch for ch in (client.child, *client.old_children) if ch is not None]
            gateway_spis = {int.from_bytes(spi, "big") for spi in delete.spis}
            ours = [struct.pack(">I", ch.client_spi) for ch in children if ch.gateway_spi in gateway_spis]
            if ours:
                payloads.append(DeletePayload(protocol=ProtocolId.ESP, spi_size=4, spis=ours))
    return client.answer(req, payloads)


def _gateway_request(session: Session) -> list[bytes]:
    req = session.next_gateway_request()
    return session.answer(req) if req is not None else []


@contextlib.contextmanager
def with_pfs(client: Initiator):
    """The client's ESP proposals with MODP-2048 added while the block runs: for its PFS
    rekey and its answers to the gateway's rekeys, which carry the configuration's
    first key exchange method (RFC 7296 1.3.3)."""
    saved = client.esp_proposals
    client.esp_proposals = parse_proposals(f"{client.profile.esp}-modp2048,{PFS_ESP}", ProtocolId.ESP)
    try:
        yield
    finally:
        client.esp_proposals = saved


def _pfs_rekey(session: Session) -> list[bytes]:
    """A CHILD rekey with a key exchange (PFS)."""
    with with_pfs(session.client):
        return session.client.create_child_sa(ke_group=14)


def _delete_old_ike(session: Session) -> list[bytes]:
    c = session.client
    return c.delete_ike(c.retired[0]) if c.retired else []


#: The client's life, step by step (name, what the client sends).
STEPS = (
    ("IKE_SA_INIT", lambda s: s.client.sa_init_request()),
    ("IKE_AUTH", lambda s: s.client.auth_request()),
    ("EAP-Identity", lambda s: s.client.eap_request()),
    ("EAP-MSCHAPv2 Response", lambda s: s.client.eap_request()),
    ("EAP-MSCHAPv2 Success", lambda s: s.client.eap_request()),
    ("AUTH(MSK)", lambda s: s.client.final_auth_request()),
    ("INFORMATIONAL", lambda s: s.client.informational()),
    ("CHILD rekey", lambda s: s.client.create_child_sa()),
    ("new CHILD SA", lambda s: s.client.create_child_sa(rekey=False)),
    ("PFS CHILD rekey", _pfs_rekey),
    ("IKE rekey", lambda s: s.client.rekey_ike()),
    ("Delete old IKE SA", _delete_old_ike),
    ("gateway request 1", _gateway_request),
    ("gateway request 2", _gateway_request),
    ("gateway request 3", _gateway_request),
    ("gateway request 4", _gateway_request),
    ("gateway request 5", _gateway_request),
    ("gateway request 6", _gateway_request),
    ("gateway request 7", _gateway_request),
    ("Delete CHILD SA", lambda s: s.client.delete_child()),
    ("Delete IKE SA", lambda s: s.client.delete_ike()),
)


#: Steps played after the mutated one (then the gateway shuts down): enough to see the
#: engine recover or fail later, without paying for the whole rest of the connection.
CONTINUE_STEPS = 4


def run_case(env: Env, step: int, mode: int, argument: bytes, *, continue_steps: int = CONTINUE_STEPS) -> Session:
    """Play the connection with ``mode`` applied at ``step``; checks everything."""
    session = Session(env)
    reader = Reader(argument)
    try:
        for index, (_, play) in enumerate(STEPS[: step + 1 + continue_steps]):
            if index == step:
                session.play_mutated(play, mode, reader)
            else:
                session.play(play)
    except ClientLost:
        pass
    except KnownBug as bug:
        note_known_bug(bug)
        return session
    session.finish()
    return session


_noted: set[tuple] = set()


def note_known_bug(bug: KnownBug) -> None:
    """Say once per process and bug that a run hit an already reported one (KNOWN_BUGS)."""
    if bug.key not in _noted:
        _noted.add(bug.key)
        print(f"fuzz: a run ended on a {bug} (reported, see tests/fuzz/test_regressions.py)", file=sys.stderr)


def check_engine(data: bytes, *, env: Env | None = None, seed: int = 0) -> None:
    """One fuzz input: ``step (1 byte) | mode (1 byte) | argument``."""
    env = env or fuzz_env()
    data = bytes(data)
    step = data[0] % len(STEPS) if data else 0
    mode = data[1] % len(MODES) if len(data) > 1 else 0
    with deterministic(env, seed), strict_logging():
        run_case(env, step, mode, data[2:])


def recorded_connection(env: Env | None = None, seed: int = 0) -> tuple[list[tuple[int, Spec]], Session]:
    """The messages of one real (deterministic) run of :data:`STEPS`: (step, Spec) pairs."""
    env = env or fuzz_env()
    specs = []
    with deterministic(env, seed):
        session = Session(env)
        for index, (_, play) in enumerate(STEPS):
            try:
                datagrams, spec = session.legit(play)
                if datagrams:
                    specs.append((index, spec))
                    session.send(datagrams)
            except ClientLost:
                break
        session.finish()
    return specs, session


def engine_seeds(env: Env | None = None) -> list[bytes]:
    """Seed inputs: every step's real plaintext in ``replace`` mode (libFuzzer mutates
    real messages from there), and every other mode at a few steps spread over the run
    (the fuzzer finds the other steps by changing the first byte)."""
    specs, _ = recorded_connection(env)
    seeds = [bytes((step, mode)) + bytes(8) for mode in range(1, len(MODES))
             for step in (mode % len(STEPS), (mode * 7) % len(STEPS), (mode * 13 + 5) % len(STEPS))]
    for step, spec in specs:
        first, chain = encode_payloads(spec.payloads)
        seeds.append(bytes((step, 0, first)) + chain)
    return seeds


def describe_input(data: bytes) -> str:
    """Human-readable meaning of an engine fuzz input (for failure reports)."""
    step = data[0] % len(STEPS) if data else 0
    mode = data[1] % len(MODES) if len(data) > 1 else 0
    return f"step {step} ({STEPS[step][0]}), mode {MODES[mode][0]}, argument {data[2:50].hex()}"

