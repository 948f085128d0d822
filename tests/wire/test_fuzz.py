"""Property tests: the decoder never fails in any way but DecodeError, and round trips hold.

Inputs: random bytes, mutated valid messages (bit flips, truncation, length-field
changes, payload-type swaps), and random payload objects.  Seeds are fixed
(``derandomize=True``) and example counts small so the normal run stays short.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.wire import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpAttribute,
    CpPayload,
    DecodeError,
    DeletePayload,
    EapPayload,
    IdPayload,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TsPayload,
    UnknownPayload,
    VendorIdPayload,
    decode_message,
    decode_payloads,
    describe,
    encode_message,
    encode_payloads,
    sealed_aad,
)
from ikegate.wire.constants import PayloadType

from .test_messages import WINDOWS_SA_INIT

FAST = settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PAYLOAD_TYPES = [int(t) for t in PayloadType] + [1, 2, 99, 255]
KNOWN = {33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53}


def _corpus() -> list[bytes]:
    v4 = ipaddress.IPv4Address
    header = dict(spi_i=b"\x01" * 8, spi_r=b"\x02" * 8, message_id=1, initiator=True, response=False)
    auth = Message(
        exchange=35,
        payloads=[
            IdPayload(id_type=1, data=v4("192.0.2.10").packed),
            CertReqPayload(data=bytes(40)),
            NotifyPayload(notify_type=16396),
            CpPayload(attributes=[CpAttribute(t) for t in (1, 3, 4, 23456, 8, 10, 23457)]),
            SaPayload(proposals=[SaProposal(1, 3, b"abcd", [Transform.make(1, 12, 256), Transform.make(3, 2), Transform.make(5, 0)])]),
            TsPayload(selectors=[TrafficSelector(), TrafficSelector(8, 0, 0, 65535, ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))]),
            TsPayload(selectors=[TrafficSelector(10, 0, 0, 0, b"label", b"")], responder=True),
            AuthPayload(method=2, data=bytes(20)),
            EapPayload(data=bytes.fromhex("0201000a01") + b"alice"),
            DeletePayload(protocol=3, spi_size=4, spis=[b"1234", b"5678"]),
            UnknownPayload(payload_type=99, data=b"zz", critical=True),
        ],
        **header,
    )
    sealed = Message(exchange=35, payloads=[NoncePayload(data=b"n" * 16), SkPayload(first_inner=35, body=bytes(48))], **header)
    fragment = Message(exchange=35, payloads=[SkfPayload(first_inner=35, fragment_number=2, total_fragments=3, body=bytes(40))], **header)
    return [WINDOWS_SA_INIT, encode_message(auth), encode_message(sealed), encode_message(fragment)]


CORPUS = _corpus()


def _header_offsets(data: bytes) -> list[int]:
    """Offsets of the generic payload headers of a (valid) message."""
    if len(data) < 28:
        return []
    offsets, pos, ptype = [], 28, data[16]
    while ptype and pos + 4 <= len(data):
        offsets.append(pos)
        if ptype in (46, 53):
            break
        ptype, length = data[pos], int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += max(length, 4)
    return offsets


def _check_decode(data: bytes) -> None:
    """Decoding raises only DecodeError; a decoded message re-encodes and is stable."""
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    wire = encode_message(msg)
    assert decode_message(wire) == msg
    describe(msg)
    if msg.sealed is not None:
        aad, body = sealed_aad(data)
        assert aad + body == data


@FAST
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _check_decode(data)


@FAST
@given(st.binary(min_size=24, max_size=600))
def test_random_bytes_with_a_consistent_header(data):
    # valid SPIs/version/length so the payload decoders see the random part
    data = data[:16] + bytes((data[16], 0x20)) + data[18:24] + (len(data) + 4).to_bytes(4, "big") + data[24:]
    _check_decode(data)


@FAST
@given(st.sampled_from(PAYLOAD_TYPES), st.binary(max_size=400), st.booleans())
def test_random_payload_chains(first, data, allow_sealed):
    try:
        payloads = decode_payloads(first, data, allow_sealed=allow_sealed)
    except DecodeError:
        return
    again = encode_payloads(payloads)
    assert decode_payloads(*again, allow_sealed=allow_sealed) == payloads


def _fix_length(data: bytearray) -> bytes:
    if len(data) >= 28:
        data[24:28] = len(data).to_bytes(4, "big")
    return bytes(data)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.booleans()),
    st.tuples(st.just("length"), st.integers(0, 100), st.integers(0, 0xFFFF)),
    st.tuples(st.just("length_delta"), st.integers(0, 100), st.integers(-8, 8)),
    st.tuples(st.just("type"), st.integers(0, 100), st.sampled_from(PAYLOAD_TYPES)),
    st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(0, 255)),
)


@settings(derandomize=True, max_examples=600, deadline=None)
@given(st.sampled_from(range(len(CORPUS))), st.lists(mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_messages(index, mutations, fix_length):
    data = bytearray(CORPUS[index])
    for kind, where, value in mutations:
        offsets = _header_offsets(bytes(data)) or [28]
        if kind == "flip" and data:
            data[where % len(data)] ^= 1 << value
        elif kind == "truncate" and data:
            del data[where % len(data) :]
        elif kind == "byte" and data:
            data[where % len(data)] = value
        elif kind in ("length", "length_delta") and len(data) >= 32:
            pos = offsets[where % len(offsets)]
            if pos + 4 <= len(data):
                old = int.from_bytes(data[pos + 2 : pos + 4], "big")
                new = value if kind == "length" else min(max(old + value, 0), 0xFFFF)
                data[pos + 2 : pos + 4] = new.to_bytes(2, "big")
        elif kind == "type" and len(data) >= 28:
            pos = ([16] + offsets)[where % (len(offsets) + 1)]
            if pos < len(data):
                data[pos] = value
    _check_decode(_fix_length(data) if fix_length else bytes(data))


# ------------------------------------------------------- objects -> bytes -> objects

small = st.binary(max_size=24)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
critical = st.booleans()

attribute = st.one_of(
    st.builds(TransformAttribute, st.integers(0, 0x7FFF), u16, st.just(True)),
    st.builds(TransformAttribute, st.integers(0, 0x7FFF), small, st.just(False)),
)
transform = st.builds(Transform, u8, u16, st.lists(attribute, max_size=3))


@st.composite
def sa_payloads(draw):
    numbers = sorted(draw(st.lists(st.integers(1, 255), max_size=4)))
    proposals = [SaProposal(n, draw(u8), draw(st.binary(max_size=8)), draw(st.lists(transform, max_size=4))) for n in numbers]
    return SaPayload(proposals=proposals, critical=draw(critical))


@st.composite
def delete_payloads(draw):
    size = draw(st.integers(0, 8))
    spis = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=4))
    return DeletePayload(protocol=draw(u8), spi_size=size, spis=spis, critical=draw(critical))


v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
v6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
selector = st.one_of(
    st.builds(TrafficSelector, st.just(7), u8, u16, u16, v4, v4),
    st.builds(TrafficSelector, st.just(8), u8, u16, u16, v6, v6),
    st.builds(TrafficSelector, u8.filter(lambda t: t not in (7, 8)), u8, st.just(0), st.just(0), small, st.just(b"")),
)


@st.composite
def eap_payloads(draw):
    body = bytes((draw(u8), draw(u8)))
    rest = draw(st.binary(max_size=30))
    return EapPayload(data=body + (4 + len(rest)).to_bytes(2, "big") + rest, critical=draw(critical))


plain_payload = st.one_of(
    sa_payloads(),
    st.builds(KePayload, group=u16, data=small, critical=critical),
    st.builds(NoncePayload, data=small, critical=critical),
    st.builds(IdPayload, id_type=u8, data=small, responder=st.booleans(), critical=critical),
    st.builds(CertPayload, encoding=u8, data=small, critical=critical),
    st.builds(CertReqPayload, encoding=u8, data=small, critical=critical),
    st.builds(AuthPayload, method=u8, data=small, critical=critical),
    st.builds(NotifyPayload, notify_type=u16, data=small, protocol=u8, spi=st.binary(max_size=8), critical=critical),
    delete_payloads(),
    st.builds(VendorIdPayload, data=small, critical=critical),
    st.builds(TsPayload, selectors=st.lists(selector, max_size=3), responder=st.booleans(), critical=critical),
    st.builds(CpPayload, cfg_type=u8, attributes=st.lists(st.builds(CpAttribute, st.integers(0, 0x7FFF), small), max_size=5), critical=critical),
    eap_payloads(),
    st.builds(UnknownPayload, payload_type=st.integers(1, 255).filter(lambda t: t not in KNOWN), data=small, critical=critical),
)


@st.composite
def sealed_payloads(draw):
    if draw(st.booleans()):
        return SkPayload(first_inner=draw(u8), body=draw(small), critical=draw(critical))
    total = draw(st.integers(1, 0xFFFF))
    number = draw(st.integers(1, total))
    return SkfPayload(first_inner=draw(u8), fragment_number=number, total_fragments=total, body=draw(small), critical=draw(critical))


@st.composite
def messages(draw):
    payloads = draw(st.lists(plain_payload, max_size=6))
    if draw(st.booleans()):
        payloads.append(draw(sealed_payloads()))
    return Message(
        spi_i=draw(st.binary(min_size=8, max_size=8)),
        spi_r=draw(st.binary(min_size=8, max_size=8)),
        exchange=draw(u8),
        message_id=draw(st.integers(0, 2**32 - 1)),
        initiator=draw(st.booleans()),
        response=draw(st.booleans()),
        payloads=payloads,
        version=draw(st.integers(0x20, 0x2F)),
        version_flag=draw(st.booleans()),
    )


@FAST
@given(messages())
def test_object_round_trip(msg):
    wire = encode_message(msg)
    decoded = decode_message(wire)
    assert decoded == msg
    assert encode_message(decoded) == wire
