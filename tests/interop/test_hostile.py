"""Malformed and hostile input against the running ikegate daemon (scapy in a namespace).

One gateway daemon serving the seed configuration takes every test of this module
except the flood, which gets its own: whatever the earlier tests threw at it, the
last test checks that the daemon is still running, logged no traceback, and still
lets a strongSwan client connect.

Messages are built (and answers parsed) with scapy's IKEv2 layer, which shares no
code with ikegate; :mod:`.hostile` has the builders, the prober (which knows that all
answers are in once its sentinel is answered) and the flood.  The expected behaviour
is RFC 7296's and strongSwan 5.9.8's (the seed's reference):

* a datagram that is not a whole IKE header, or whose Length field does not match
  the datagram, is dropped and logged (receiver.c: "invalid IKE header ... ignored");
  so is one longer than ``charon.max_packet`` (10000 bytes);
* an IKE_SA_INIT request whose payloads do not parse, or that lacks SA, KE or Nonce,
  gets INVALID_SYNTAX; a higher major version INVALID_MAJOR_VERSION (2.5); an unknown
  payload marked critical UNSUPPORTED_CRITICAL_PAYLOAD with its type (2.5); proposals
  we do not accept NO_PROPOSAL_CHOSEN; a KE payload of another group than the chosen
  proposal's INVALID_KE_PAYLOAD naming that group (1.2); none of these leaves state;
* an IKE_SA_INIT request with a non-zero message ID, a request for unknown SPIs, a
  response nobody asked for, an SK payload that fails its integrity check and a
  replayed old request are ignored and logged; a retransmitted request gets the
  cached response again, byte for byte (2.1);
* on port 4500 everything without the non-ESP marker is ESP (RFC 3948): a lone 0xFF
  is a NAT keepalive, anything else with an unknown SPI is dropped by the data plane.

Three points where ikegate first differed from strongSwan 5.9.8 are now as strongSwan:
datagrams over ``charon.max_packet`` are dropped, an unusable KE value gets
NO_PROPOSAL_CHOSEN, and a replayed IKE_SA_INIT of an established SA is ignored by it.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from dataclasses import dataclass, field

import pytest
from scapy.contrib.ikev2 import IKEv2_Encrypted, IKEv2_VendorID

from ikegate.control.client import request as control_request

from .gateway import IkegateGateway, ikegate_daemon_missing
from .hostile import (
    ACCEPTABLE,
    IKE_HEADER_LEN,
    IKE_PORT,
    KE_LENGTH,
    MAX_UDP4_PAYLOAD,
    NAT_KEEPALIVE,
    NATT_PORT,
    NOTIFY,
    PT_KE,
    PT_NONCE,
    PT_SA,
    UNACCEPTABLE,
    Answer,
    Datagram,
    Flood,
    LogMark,
    Prober,
    Unknown,
    flip_bit,
    ike_datagrams,
    ke_payload,
    message,
    new_spi,
    only_notify,
    proposal,
    sa_init,
    with_header,
)
from .netns import Capture, Host, Topology, add_address, ping
from .strongswan import StrongSwanClient

# strongSwan defaults the seed does not change (strongswan-semantics.md 2.10, 2.11)
COOKIE_THRESHOLD = 30  # charon.cookie_threshold: half-open IKE SAs before COOKIEs are required
MAX_PACKET = 10000  # charon.max_packet: the largest datagram charon reads
MODP_2048, MODP_3072 = 14, 15  # IANA IKEv2 Transform Type 4 values (RFC 3526)
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20  # RFC 7296 3.1
IKE_SA_INIT, IKE_AUTH, INFORMATIONAL = 34, 35, 37  # RFC 7296 3.1


# ------------------------------------------------------------------------------ helpers


def gateway_sas(gateway: IkegateGateway) -> list[dict]:
    """The IKE SAs of ``gateway`` from the control socket directly (what ``ikegate
    status --json`` asks), without an interpreter start-up: cheap enough to check after
    every probe."""
    reply = control_request(gateway.run_dir, "status")
    assert reply.get("ok"), reply
    return reply["sas"]


def sas_with_spi_i(gateway: IkegateGateway, spi_i: bytes) -> list[dict]:
    return [sa for sa in gateway_sas(gateway) if sa["spi_i"] == spi_i.hex()]


def assert_alive(gateway: IkegateGateway) -> None:
    assert gateway.running(), f"the gateway died:\n{gateway.log_text()[-4000:]}"
    assert "Traceback" not in gateway.log_text(), gateway.log_text()[-6000:]


def assert_dropped(answers: list[Answer], mark: LogMark, *needles: str) -> None:
    """No answer, and a log line (since ``mark``) containing every needle."""
    assert answers == [], [a.describe() for a in answers]
    lines = [line for line in mark.text().splitlines() if all(n in line for n in needles)]
    assert lines, f"no log line with {needles!r} in:\n{mark.text()[-3000:]}"


def assert_error(answers: list[Answer], request: bytes, notify: str, data: bytes = b"") -> None:
    """A single unencrypted answer to ``request`` carrying only Notify ``notify``."""
    ntype, ndata = only_notify(answers)
    assert (ntype, ndata) == (NOTIFY[notify], data), answers[0].describe()
    ike = answers[0].ike
    assert ike.init_SPI == request[:8]
    assert ike.exch_type == request[18] and ike.id == struct.unpack_from("!I", request, 20)[0]
    assert int(ike.flags) & (FLAG_RESPONSE | FLAG_INITIATOR) == FLAG_RESPONSE
    assert ike.version == 0x20  # the version we speak, also to a higher-version peer (RFC 7296 2.5)


def assert_sa_init_response(answers: list[Answer]) -> Answer:
    (answer,) = answers
    assert answer.payload_types[:3] == [PT_SA, PT_KE, PT_NONCE], answer.describe()
    return answer


# ------------------------------------------------------------------------------ the arena


@dataclass
class Arena:
    """The module's gateway and its three clients: the scapy prober (client 1), a
    strongSwan peer with an established, captured IKE SA (client 2) and the final
    legitimate client (client 3)."""

    topology: Topology
    gateway: IkegateGateway
    probers: list[Prober] = field(default_factory=list)
    next_host: int = 100

    def prober(self, family: str = "ipv4", *, own_address: bool = False, host: Host | None = None) -> Prober:
        """A UDP socket on ``host`` (default: the probe client), on its first address
        or on a new one: tests that leave half-open SAs use their own address, as
        those count per address (``cookie_threshold_ip`` 3, ``block_threshold`` 5)."""
        host = host or self.topology.clients[0]
        v6 = family == "ipv6"
        if own_address:
            self.next_host += 1
            addr = f"fd00:99::{self.next_host:x}" if v6 else f"10.99.0.{self.next_host}"
            add_address(host.ns, "eth0", f"{addr}/{64 if v6 else 24}")
        else:
            addr = host.v6[0] if v6 else host.v4[0]
        gw = self.topology.gateway
        prober = Prober(host.ns, addr, gw.v6[0] if v6 else gw.v4[0])
        self.probers.append(prober)
        return prober


@pytest.fixture(scope="module")
def arena(seed_setup, tmp_path_factory):
    reason = ikegate_daemon_missing()
    if reason:
        pytest.skip(reason)
    topology = Topology(3, inner=True)
    gateway = None
    arena = None
    try:
        topology.build()
        gateway = IkegateGateway(topology.gateway.ns, seed_setup.confdir, tmp_path_factory.mktemp("hostile-gw"))
        gateway.start()
        arena = Arena(topology, gateway)
        yield arena
    finally:
        for prober in arena.probers if arena else ():
            prober.close()
        if gateway is not None:
            gateway.stop()
        topology.destroy()


@pytest.fixture(autouse=True)
def _gateway_log_on_failure(request):
    """Print the tail of the module gateway's log when a test using it failed."""
    yield
    rep = getattr(request.node, "_interop_rep_call", None)
    if "arena" in request.fixturenames and rep is not None and rep.failed:
        gw = request.getfixturevalue("arena").gateway
        print(f"\n===== module gateway output (tail) =====\n{gw.log_text()[-6000:]}", file=sys.stderr)


# ------------------------------------------------------------------------------ malformed datagrams


def _set_length(data: bytes, length: int) -> bytes:
    return data[:24] + struct.pack("!I", length) + data[28:]


def _payload_offsets(data: bytes) -> list[int]:
    """Offsets of the payloads of a well-formed message."""
    offsets, pos, nxt = [], IKE_HEADER_LEN, data[16]
    while nxt:
        offsets.append(pos)
        nxt = data[pos]
        pos += struct.unpack_from("!H", data, pos + 2)[0]
    return offsets


def _payload_length(index: int, *, delta: int = 0, value: int | None = None):
    """An acceptable IKE_SA_INIT whose ``index``-th payload has a wrong Payload Length."""

    def build() -> bytes:
        buf = bytearray(sa_init())
        pos = _payload_offsets(bytes(buf))[index]
        old = struct.unpack_from("!H", buf, pos + 2)[0]
        struct.pack_into("!H", buf, pos + 2, old + delta if value is None else value)
        return bytes(buf)

    return build


def _garbage_after_header() -> bytes:
    """A header announcing no payload (and counting the garbage in its length)."""
    return _set_length(message(new_spi(), payloads=[]), IKE_HEADER_LEN + 64) + os.urandom(64)


def _truncated_payload_header() -> bytes:
    head = bytearray(message(new_spi(), payloads=[]))
    head[16] = PT_SA
    return _set_length(bytes(head) + b"\x00\x00", IKE_HEADER_LEN + 2)


def _proposal_length_wrong() -> bytes:
    buf = bytearray(sa_init())
    prop = _payload_offsets(bytes(buf))[0] + 4  # first proposal: last(1) reserved(1) length(2)
    struct.pack_into("!H", buf, prop + 2, struct.unpack_from("!H", buf, prop + 2)[0] + 8)
    return bytes(buf)


def _transform_count_wrong() -> bytes:
    buf = bytearray(sa_init())
    buf[_payload_offsets(bytes(buf))[0] + 4 + 7] += 1  # "Num Transforms" of the first proposal
    return bytes(buf)


def _padded_sa_init(size: int) -> bytes:
    """An otherwise acceptable IKE_SA_INIT padded with a Vendor ID to ``size`` bytes."""
    base = len(sa_init(extra=[IKEv2_VendorID(vendorID=b"")]))
    return sa_init(extra=[IKEv2_VendorID(vendorID=os.urandom(size - base))])


DROP = "drop"
# (name, builder, DROP or the notify of the answer)
MALFORMED = [
    ("empty", lambda: b"", DROP),
    ("one byte", lambda: b"\x00", DROP),
    ("truncated header", lambda: sa_init()[:27], DROP),
    ("header alone", lambda: sa_init()[:28], DROP),
    ("cut short", lambda: sa_init()[:200], DROP),
    ("length field too short", lambda: (lambda m: _set_length(m, len(m) - 40))(sa_init()), DROP),
    ("length field too long", lambda: _set_length(sa_init(), 0xFFFFFFFF), DROP),
    ("length field zero", lambda: _set_length(sa_init(), 0), DROP),
    ("garbage after the message", lambda: sa_init() + os.urandom(64), DROP),
    ("max-size random bytes", lambda: os.urandom(MAX_UDP4_PAYLOAD), DROP),
    ("garbage after the header", _garbage_after_header, "INVALID_SYNTAX"),
    ("payload length past the end", _payload_length(1, delta=100), "INVALID_SYNTAX"),
    ("payload length short", _payload_length(1, delta=-16), "INVALID_SYNTAX"),
    ("payload length below 4", _payload_length(0, value=3), "INVALID_SYNTAX"),
    ("payload header truncated", _truncated_payload_header, "INVALID_SYNTAX"),
    ("proposal length wrong", _proposal_length_wrong, "INVALID_SYNTAX"),
    ("transform count wrong", _transform_count_wrong, "INVALID_SYNTAX"),
]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("port", [IKE_PORT, NATT_PORT])
@pytest.mark.parametrize("build,expected", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed(arena, family, port, build, expected):
    """Broken datagrams to port 500, and to 4500 behind the non-ESP marker (the
    largest ones 4 bytes shorter there, to fit the marker)."""
    prober = arena.prober(family)
    data = build()
    if port == NATT_PORT:
        data = data[: MAX_UDP4_PAYLOAD - 4]
    mark = LogMark(arena.gateway)
    answers = prober.exchange(data, port)
    if expected == DROP:
        assert_dropped(answers, mark, prober.endpoint, "dropped")
    else:
        assert_error(answers, data, expected)
        assert answers[0].port == port
        assert not sas_with_spi_i(arena.gateway, data[:8])
    assert_alive(arena.gateway)


def test_sa_init_of_max_packet_size_is_accepted(arena):
    """An acceptable IKE_SA_INIT of exactly charon.max_packet bytes is answered."""
    prober = arena.prober(own_address=True)
    assert_sa_init_response(prober.exchange(_padded_sa_init(MAX_PACKET)))


@pytest.mark.parametrize("port,size", [(IKE_PORT, MAX_PACKET + 1), (IKE_PORT, MAX_UDP4_PAYLOAD),
                                       (NATT_PORT, MAX_UDP4_PAYLOAD - 4)])
def test_oversized_sa_init_is_dropped(arena, port, size):
    """An otherwise acceptable IKE_SA_INIT longer than charon.max_packet, up to the
    largest IPv4 UDP datagram (65507 bytes, with the marker on 4500): dropped
    unread, as strongSwan does, and logged."""
    prober = arena.prober(own_address=True)
    mark = LogMark(arena.gateway)
    answers = prober.exchange(_padded_sa_init(size), port)
    assert_alive(arena.gateway)
    assert_dropped(answers, mark, prober.endpoint)


# ------------------------------------------------------------------------------ IKE_SA_INIT errors


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("port", [IKE_PORT, NATT_PORT])
def test_higher_major_version(arena, family, port):
    prober = arena.prober(family)
    request = sa_init(version=0x30)
    assert_error(prober.exchange(request, port), request, "INVALID_MAJOR_VERSION")
    assert not sas_with_spi_i(arena.gateway, request[:8])


def test_ikev1_main_mode_is_dropped(arena):
    """An IKEv1 Main Mode message (version 1.0, exchange 2): no IKEv1 here, dropped."""
    prober = arena.prober()
    request = with_header(message(new_spi(), payloads=[], version=0x10), exchange=2, flags=0)
    mark = LogMark(arena.gateway)
    assert_dropped(prober.exchange(request), mark, prober.endpoint, "version 1")


def test_higher_minor_version_is_accepted(arena):
    """RFC 7296 3.1: the minor version of received messages MUST be ignored."""
    prober = arena.prober(own_address=True)
    assert_sa_init_response(prober.exchange(sa_init(version=0x2F)))


@pytest.mark.parametrize("omit", [("SA",), ("KE",), ("Nonce",), ("SA", "KE", "Nonce")],
                         ids=lambda o: "without " + "+".join(o))
def test_sa_init_without_required_payloads(arena, omit):
    prober = arena.prober()
    request = sa_init(omit=omit)
    assert_error(prober.exchange(request), request, "INVALID_SYNTAX")
    assert not sas_with_spi_i(arena.gateway, request[:8])


def test_unknown_critical_payload(arena):
    prober = arena.prober()
    request = sa_init(extra=[Unknown(200, critical=True)])
    assert_error(prober.exchange(request), request, "UNSUPPORTED_CRITICAL_PAYLOAD", bytes([200]))
    assert not sas_with_spi_i(arena.gateway, request[:8])


def test_unknown_noncritical_payload_is_skipped(arena):
    """RFC 7296 2.5: an unknown payload without the critical bit is skipped."""
    prober = arena.prober(own_address=True)
    assert_sa_init_response(prober.exchange(sa_init(extra=[Unknown(200, critical=False)])))


@pytest.mark.parametrize("offer", ["unacceptable algorithms", "ESP proposal only"])
def test_no_proposal_chosen(arena, offer):
    prober = arena.prober()
    if offer == "ESP proposal only":
        esp = (("Encryption", "AES-CBC", 256), ("Integrity", "SHA2-256-128"), ("Extended Sequence Number", "No ESN"))
        prop = proposal(esp, proto="ESP")
        prop.SPI, prop.SPIsize = b"\x01\x02\x03\x04", 4
        request = sa_init(proposals=[prop])
    else:
        request = sa_init(proposals=[proposal(UNACCEPTABLE)], ke=ke_payload("768MODPgr"))
    assert_error(prober.exchange(request), request, "NO_PROPOSAL_CHOSEN")
    assert not sas_with_spi_i(arena.gateway, request[:8])


@pytest.mark.parametrize("groups,ke_group,wanted", [
    (("256randECPgr", "3072MODPgr"), "256randECPgr", MODP_3072),  # ECP-256 is not in the seed's ike=
    (("2048MODPgr",), "1024MODPgr", MODP_2048),
], ids=["ecp256-not-configured", "ke-group-not-offered"])
def test_invalid_ke_payload(arena, groups, ke_group, wanted):
    prober = arena.prober()
    specs = ACCEPTABLE[:3] + tuple(("GroupDesc", g) for g in groups)
    request = sa_init(proposals=[proposal(specs)], ke=ke_payload(ke_group))
    assert_error(prober.exchange(request), request, "INVALID_KE_PAYLOAD", struct.pack("!H", wanted))
    assert not sas_with_spi_i(arena.gateway, request[:8])


@pytest.mark.parametrize("value", ["one", "too short"])
def test_unusable_ke_value(arena, value):
    """A MODP-2048 KE payload with the value 1 or one byte short."""
    prober = arena.prober()
    size = KE_LENGTH["2048MODPgr"]
    data = (1).to_bytes(size, "big") if value == "one" else b"\x7f" * (size - 1)
    request = sa_init(ke=ke_payload("2048MODPgr", data))
    answers = prober.exchange(request)
    assert not sas_with_spi_i(arena.gateway, request[:8])
    assert_error(answers, request, "NO_PROPOSAL_CHOSEN")


def test_sa_init_with_nonzero_message_id(arena):
    prober = arena.prober()
    mark = LogMark(arena.gateway)
    assert_dropped(prober.exchange(sa_init(mid=1)), mark, prober.endpoint, "message ID 1")


@pytest.mark.parametrize("port", [IKE_PORT, NATT_PORT])
def test_ike_auth_for_unknown_spis(arena, port):
    prober = arena.prober()
    request = message(new_spi(), new_spi(), "IKE_AUTH", [IKEv2_Encrypted(load=os.urandom(96))], mid=1)
    mark = LogMark(arena.gateway)
    assert_dropped(prober.exchange(request, port), mark, prober.endpoint, "unknown IKE SA")


@pytest.mark.parametrize("kind", ["IKE_SA_INIT response", "IKE_SA_INIT response from an initiator",
                                  "INFORMATIONAL response"])
def test_unsolicited_responses(arena, kind):
    """Responses (R flag) nobody asked for, for no SA at all: dropped."""
    prober = arena.prober()
    if kind == "IKE_SA_INIT response":
        request = sa_init(new_spi(), flags="Response")
    elif kind == "IKE_SA_INIT response from an initiator":
        request = sa_init(new_spi(), flags="Initiator+Response")
    else:
        request = message(new_spi(), new_spi(), "INFORMATIONAL", [IKEv2_Encrypted(load=os.urandom(64))],
                          flags="Response")
    mark = LogMark(arena.gateway)
    assert_dropped(prober.exchange(request), mark, prober.endpoint, "dropped")
    assert not sas_with_spi_i(arena.gateway, request[:8])


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("port", [IKE_PORT, NATT_PORT])
def test_sa_init_replay_answered_from_cache(arena, family, port):
    """The same IKE_SA_INIT again while its SA is half-open is a retransmission: the
    same answer, byte for byte, and still one SA."""
    prober = arena.prober(family, own_address=True)
    request = sa_init()
    first = assert_sa_init_response(prober.exchange(request, port))
    mark = LogMark(arena.gateway)
    (again,) = prober.exchange(request, port)
    assert again.data == first.data
    assert "received retransmit of request with ID 0" in mark.text()
    (sa,) = sas_with_spi_i(arena.gateway, request[:8])
    assert (sa["spi_r"], sa["state"]) == (first.ike.resp_SPI.hex(), "CONNECTING")


# ------------------------------------------------------------------------------ port 4500: ESP


@pytest.mark.parametrize("kind", ["keepalive", "empty", "short", "random ESP", "IKE without marker"])
def test_natt_port_non_ike(arena, kind):
    """Without the non-ESP marker, port 4500 carries ESP: none of this is answered."""
    prober = arena.prober()
    data = {
        "keepalive": NAT_KEEPALIVE,
        "empty": b"",
        "short": b"\x01\x02\x03",
        "random ESP": os.urandom(4) + struct.pack("!I", 1) + os.urandom(120),
        "IKE without marker": b"\x01" + sa_init()[1:],  # an SPIi that cannot pass for the marker
    }[kind]
    answers = prober.exchange(data, NATT_PORT, marker=False)
    assert answers == [], [a.describe() for a in answers]
    assert_alive(arena.gateway)


def test_natt_port_burst_of_random_esp(arena):
    """A thousand random ESP-like datagrams in one go: dropped, the daemon stays."""
    prober = arena.prober()
    datagrams = [os.urandom(4) + struct.pack("!I", i + 1) + os.urandom(64 + i % 200) for i in range(1000)]
    assert prober.exchange(datagrams, NATT_PORT, marker=False) == []
    assert_alive(arena.gateway)


# ------------------------------------------------------------------------------ an established SA


@dataclass
class Peer:
    """A strongSwan client with an IKE SA up, and the IKE messages of its setup."""

    client: StrongSwanClient
    host: Host
    datagrams: list[Datagram]
    spi_i: bytes
    spi_r: bytes

    def requests(self, exchange: int) -> list[Datagram]:
        return [d for d in self.datagrams if d.exchange == exchange and not d.response and d.data[:8] == self.spi_i]

    def responses(self, exchange: int, mid: int) -> list[Datagram]:
        return [d for d in self.datagrams
                if d.exchange == exchange and d.response and d.message_id == mid and d.data[:8] == self.spi_i]


@pytest.fixture(scope="module")
def peer(arena, seed_setup, tmp_path_factory):
    host = arena.topology.clients[1]
    workdir = tmp_path_factory.mktemp("hostile-peer")
    # no MOBIKE: an address update the client may send once its TUN is up (late under load)
    # would be a request after the captured ones, and the tests count message IDs
    client = StrongSwanClient(host.ns, workdir / "charon", ca_certs=[seed_setup.root_cert],
                              remote_addrs=arena.topology.gateway.v4[0], mobike=False)
    try:
        client.start()
        with Capture(host.ns, "eth0", workdir / "ike.pcapng", bpf="udp port 500 or udp port 4500") as cap:
            ok, out = client.initiate(timeout=20)
        assert ok, out + client.log_text()[-3000:]
        datagrams = ike_datagrams(cap.path)
        auth = next(d for d in datagrams if d.exchange == IKE_AUTH and not d.response)
        yield Peer(client, host, datagrams, auth.data[:8], auth.data[8:16])
    finally:
        client.stop()


def assert_peer_intact(arena: Arena, peer: Peer) -> None:
    """The peer's IKE SA is up on both ends, with its CHILD SA."""
    sas = [sa for sa in gateway_sas(arena.gateway) if sa["spi_r"] == peer.spi_r.hex()]
    assert [(sa["spi_i"], sa["state"], len(sa["children"])) for sa in sas] == [(peer.spi_i.hex(), "ESTABLISHED", 1)]
    (ike,) = peer.client.list_sas()
    assert ike["state"] == "ESTABLISHED"


def test_established_sa_old_ike_auth_replayed(arena, peer):
    """The client's first IKE_AUTH request again: an old message ID, ignored."""
    auth = peer.requests(IKE_AUTH)
    assert len(auth) >= 3, "several IKE_AUTH round trips expected (EAP)"
    mark = LogMark(arena.gateway)
    assert arena.prober(host=peer.host).exchange(auth[0].data, NATT_PORT) == []
    assert f"received message ID {auth[0].message_id}, expected {auth[-1].message_id + 1}, ignored" in mark.text()
    assert_peer_intact(arena, peer)


def test_established_sa_last_request_retransmitted(arena, peer):
    """The client's last IKE_AUTH request again is a retransmission (RFC 7296 2.1):
    the response the client got comes again, identical."""
    last = peer.requests(IKE_AUTH)[-1]
    captured = [d.data for d in peer.responses(IKE_AUTH, last.message_id)]
    assert captured
    answers = arena.prober(host=peer.host).exchange(last.data, NATT_PORT)
    assert [a.data for a in answers] == captured
    assert_peer_intact(arena, peer)


@pytest.mark.parametrize("exchange", [IKE_AUTH, INFORMATIONAL], ids=["IKE_AUTH", "INFORMATIONAL"])
def test_established_sa_bit_flipped_sk(arena, peer, exchange):
    """A request with the next message ID whose SK payload has one bit flipped fails
    the integrity check: ignored."""
    last = peer.requests(IKE_AUTH)[-1]
    forged = with_header(last.data, exchange=exchange, mid=last.message_id + 1)
    forged = flip_bit(forged, len(forged) - 40)  # in the encrypted part (IV or ciphertext), before the ICV
    mark = LogMark(arena.gateway)
    assert arena.prober(host=peer.host).exchange(forged, NATT_PORT) == []
    assert f"integrity check of {'IKE_AUTH' if exchange == IKE_AUTH else 'INFORMATIONAL'} request" in mark.text()
    assert_peer_intact(arena, peer)


def test_established_sa_unsolicited_response(arena, peer):
    """A response on the SA although the gateway asked nothing: ignored."""
    last = peer.requests(IKE_AUTH)[-1]
    forged = with_header(last.data, exchange=INFORMATIONAL, flags=FLAG_INITIATOR | FLAG_RESPONSE, mid=0)
    mark = LogMark(arena.gateway)
    assert arena.prober(host=peer.host).exchange(forged, NATT_PORT) == []
    assert "received unexpected response 0, ignored" in mark.text()
    assert_peer_intact(arena, peer)


def test_established_sa_sa_init_replayed(arena, peer):
    """The client's IKE_SA_INIT again, byte for byte, after its SA is up: ignored,
    no new half-open SA; the established SA untouched."""
    init = [d for d in peer.requests(IKE_SA_INIT) if d.data[8:16] == bytes(8)][-1]
    answers = arena.prober(host=peer.host).exchange(init.data, IKE_PORT)
    assert_peer_intact(arena, peer)
    assert answers == [], [a.describe() for a in answers]
    assert [sa["state"] for sa in sas_with_spi_i(arena.gateway, peer.spi_i)] == ["ESTABLISHED"]


def test_established_sa_still_works(arena, peer):
    """After all that the SA still carries traffic, and its message IDs are in step:
    the client's Delete is answered and the gateway removes the SA."""
    assert ping(peer.host.ns, arena.topology.inner.v4[0], count=2, wait=2) == 2
    mark = LogMark(arena.gateway)
    ok, out = peer.client.terminate(timeout=10)
    assert ok, out
    assert "received DELETE for IKE_SA" in mark.text()
    assert not [sa for sa in gateway_sas(arena.gateway) if sa["spi_r"] == peer.spi_r.hex()]


# ------------------------------------------------------------------------------ still standing


def test_gateway_survived_everything(arena, seed_setup, strongswan_client_factory):
    """The daemon is running, logged no traceback, and a legitimate client connects."""
    assert_alive(arena.gateway)
    client = strongswan_client_factory(arena.topology.clients[2], arena.topology.gateway.v4[0])
    ok, out = client.initiate(timeout=20)
    assert ok, out
    (ike,) = client.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert_alive(arena.gateway)


# ------------------------------------------------------------------------------ the flood


FLOOD_NET = "10.98.0.0/16"  # the spoofed sources: routed from the gateway to the flooding client
FLOOD_COUNT = 10_000


def test_half_open_flood(topology_factory, seed_setup, ikegate_gateway, strongswan_client_factory):
    """10,000 IKE_SA_INIT requests from 10,000 spoofed addresses while a strongSwan
    client connects: COOKIEs engage, the half-open table stays bounded, the client
    gets through the COOKIE round trip within seconds, the daemon survives."""
    topo = topology_factory(2)
    gw_host, flooder, legit = topo.gateway, topo.clients[0], topo.clients[1]
    gw_host.run(["ip", "route", "add", FLOOD_NET, "via", flooder.v4[0]])
    flooder.run(["ip", "route", "add", "local", FLOOD_NET, "dev", "lo"])  # accept the answers
    gateway = ikegate_gateway(gw_host, seed_setup.confdir)
    client = strongswan_client_factory(legit, gw_host.v4[0])

    with Flood(flooder.ns, FLOOD_NET, gw_host.v4[0], FLOOD_COUNT, rate=4000) as flood:
        deadline = time.monotonic() + 15
        while flood.result.cookies == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flood.result.cookies > 0, f"no COOKIE after {flood.result.sent} requests: {flood.result}"
        started = time.monotonic()
        ok, out = client.initiate(timeout=20)
        took = time.monotonic() - started
        still_flooding = not flood.done.is_set()
        half_open_during = sum(sa["state"] == "CONNECTING" for sa in gateway.status()["sas"])
        flood.wait(timeout=30)
        result = flood.stop()
    print(f"flood: {result}; client connected in {took:.2f}s (flood still running: {still_flooding}); "
          f"half-open SAs during the flood: {half_open_during}")
    assert ok, out
    assert took < 10
    assert "received COOKIE notify" in client.log_text()
    assert result.sent == FLOOD_COUNT
    sample = Answer(result.cookie_sample, IKE_PORT)  # scapy's view of one COOKIE answer
    (ntype, cookie) = only_notify([sample])
    assert ntype == NOTIFY["COOKIE"] and 1 <= len(cookie) <= 64  # RFC 7296 3.10.1
    assert sample.ike.resp_SPI == bytes(8) and sample.ike.exch_type == IKE_SA_INIT
    # the first COOKIE_THRESHOLD requests get a full answer, then (nearly) all the
    # rest a COOKIE: cheap answers, no state
    assert set(result.other) <= {"SA_INIT response"}, result
    assert result.other.get("SA_INIT response", 0) <= COOKIE_THRESHOLD, result
    assert result.cookies >= 0.5 * FLOOD_COUNT, result
    sas = gateway.status()["sas"]
    half_open = sum(sa["state"] == "CONNECTING" for sa in sas)
    assert max(half_open, half_open_during) <= COOKIE_THRESHOLD + 1, (half_open, half_open_during)
    assert [sa["state"] for sa in sas if sa["state"] != "CONNECTING"] == ["ESTABLISHED"]
    assert_alive(gateway)
