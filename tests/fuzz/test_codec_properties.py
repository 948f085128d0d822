"""The codec from the other side: any message the encoder accepts decodes back to itself.

``test_targets.py`` starts from bytes (decode, then re-encode); here hypothesis builds
payload objects of every kind with any field values the wire can carry (RFC 7296
section 3 field widths), and the property is ``decode(encode(m)) == m`` with
``encode(decode(encode(m))) == encode(m)``, for whole messages and for inner chains.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.wire.codec import Message, decode_message, decode_payloads, encode_message, encode_payloads
from ikegate.wire.constants import PayloadType, TsType
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
    SaProposal,
    SkfPayload,
    SkPayload,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TsPayload,
    UnknownPayload,
    VendorIdPayload,
)

FIXED = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
data = st.binary(max_size=40)
critical = st.booleans()

attribute = st.one_of(
    st.builds(TransformAttribute, st.integers(0, 0x7FFF), u16, st.just(True)),
    st.builds(TransformAttribute, st.integers(0, 0x7FFF), data, st.just(False)),
)
transform = st.builds(Transform, u8, u16, st.lists(attribute, max_size=3))


@st.composite
def sa_payload(draw):
    numbers = sorted(draw(st.lists(st.integers(1, 255), max_size=4)))
    proposals = [SaProposal(n, draw(u8), draw(st.binary(max_size=8)), draw(st.lists(transform, max_size=4)))
                 for n in numbers]
    return SaPayload(proposals=proposals, critical=draw(critical))


@st.composite
def selector(draw):
    kind = draw(st.sampled_from(("v4", "v6", "raw")))
    if kind == "raw":  # a type we keep as bytes: ports 0, the rest after the selector header
        ts_type = draw(u8.filter(lambda t: t not in (TsType.IPV4_ADDR_RANGE, TsType.IPV6_ADDR_RANGE)))
        return TrafficSelector(ts_type, draw(u8), 0, 0, draw(st.binary(max_size=20)), b"")
    bits = 32 if kind == "v4" else 128
    make = ipaddress.IPv4Address if kind == "v4" else ipaddress.IPv6Address
    ts_type = TsType.IPV4_ADDR_RANGE if kind == "v4" else TsType.IPV6_ADDR_RANGE
    return TrafficSelector(ts_type, draw(u8), draw(u16), draw(u16),
                           make(draw(st.integers(0, 2**bits - 1))), make(draw(st.integers(0, 2**bits - 1))))


@st.composite
def delete_payload(draw):
    size = draw(st.sampled_from((0, 4, 8, 2)))
    spis = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=5))
    return DeletePayload(protocol=draw(u8), spi_size=size, spis=spis, critical=draw(critical))


@st.composite
def eap_payload(draw):
    body = draw(st.binary(max_size=30))
    packet = bytes((draw(u8), draw(u8))) + (4 + len(body)).to_bytes(2, "big") + body
    return EapPayload(data=packet, critical=draw(critical))


_KNOWN = {int(t) for t in PayloadType}
payload = st.one_of(
    sa_payload(),
    st.builds(KePayload, group=u16, data=data, critical=critical),
    st.builds(NoncePayload, data=data, critical=critical),
    st.builds(IdPayload, id_type=u8, data=data, responder=st.booleans(), critical=critical),
    st.builds(CertPayload, encoding=u8, data=data, critical=critical),
    st.builds(CertReqPayload, encoding=u8, data=data, critical=critical),
    st.builds(AuthPayload, method=u8, data=data, critical=critical),
    st.builds(NotifyPayload, notify_type=u16, data=data, protocol=u8, spi=st.binary(max_size=16),
              critical=critical),
    delete_payload(),
    st.builds(VendorIdPayload, data=data, critical=critical),
    st.builds(TsPayload, selectors=st.lists(selector(), max_size=4), responder=st.booleans(), critical=critical),
    st.builds(CpPayload, cfg_type=u8, attributes=st.lists(st.builds(CpAttribute, st.integers(0, 0x7FFF), data),
                                                            max_size=4), critical=critical),
    eap_payload(),
    st.builds(UnknownPayload, payload_type=u8.filter(lambda t: t and t not in _KNOWN), data=data,
              critical=critical),
)
sealed = st.one_of(
    st.builds(SkPayload, first_inner=u8, body=st.binary(max_size=60), critical=critical),
    st.builds(SkfPayload, first_inner=u8, fragment_number=st.integers(1, 3), total_fragments=st.just(3),
              body=st.binary(max_size=60), critical=critical),
)


@st.composite
def message(draw):
    payloads = draw(st.lists(payload, max_size=6))
    if draw(st.booleans()):
        payloads.append(draw(sealed))
    return Message(draw(st.binary(min_size=8, max_size=8)), draw(st.binary(min_size=8, max_size=8)), draw(u8),
                   draw(st.integers(0, 2**32 - 1)), draw(st.booleans()), draw(st.booleans()), payloads,
                   version=draw(st.integers(0x20, 0x2F)), version_flag=draw(st.booleans()))


@FIXED
@given(msg=message())
def test_any_encodable_message_decodes_to_itself(msg):
    encoded = encode_message(msg)
    decoded = decode_message(encoded)
    assert decoded == msg
    assert encode_message(decoded) == encoded


@FIXED
@given(payloads=st.lists(payload, min_size=1, max_size=8))
def test_any_encodable_inner_chain_decodes_to_itself(payloads):
    first, chain = encode_payloads(payloads)
    assert decode_payloads(first, chain) == payloads
