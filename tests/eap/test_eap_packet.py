"""EAP packet codec (RFC 3748 section 4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ikegate.eap.packet import EapDecodeError, EapPacket, decode
from ikegate.wire.constants import EapCode, EapType


def test_identity_request_layout() -> None:
    # RFC 3748 4.1/5.1: Code 1, Identifier, Length 5, Type 1, no Type-Data
    assert EapPacket(EapCode.REQUEST, 7, EapType.IDENTITY).encode() == bytes.fromhex("0107000501")


def test_success_and_failure_layout() -> None:
    # RFC 3748 4.2: Success/Failure are Code, Identifier, Length=4
    assert EapPacket.success(9).encode() == bytes.fromhex("03090004")
    assert EapPacket.failure(0xFF).encode() == bytes.fromhex("04ff0004")


def test_decode_response() -> None:
    packet = decode(bytes.fromhex("020300090161626364"))
    assert packet == EapPacket(EapCode.RESPONSE, 3, EapType.IDENTITY, b"abcd")
    assert isinstance(packet.type, EapType)


def test_unknown_type_kept_as_number() -> None:
    packet = decode(bytes.fromhex("02030006c8ff"))
    assert packet.type == 200 and not isinstance(packet.type, EapType)
    assert packet.encode() == bytes.fromhex("02030006c8ff")


@pytest.mark.parametrize(
    "hex_packet",
    [
        "",
        "02",
        "020300",
        "02030005",  # length says 5, only 4 bytes
        "0203000401",  # length says 4, 5 bytes (no padding inside IKE)
        "02030004",  # Response without a type
        "03030005ff",  # Success with data
        "0503000401",  # unknown code
        "0003000401",
        "02030008fe000000",  # expanded type truncated
    ],
)
def test_decode_errors(hex_packet: str) -> None:
    with pytest.raises(EapDecodeError):
        decode(bytes.fromhex(hex_packet))


def test_decode_error_is_value_error() -> None:
    assert issubclass(EapDecodeError, ValueError)
    with pytest.raises(EapDecodeError):
        decode("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "packet",
    [
        EapPacket(EapCode.SUCCESS, 1, EapType.IDENTITY),
        EapPacket(EapCode.FAILURE, 1, None, b"x"),
        EapPacket(EapCode.REQUEST, 1, None),
        EapPacket(EapCode.REQUEST, 256, EapType.IDENTITY),
        EapPacket(EapCode.RESPONSE, 1, 300),
        EapPacket(EapCode.RESPONSE, 1, EapType.MD5, bytes(70000)),
    ],
)
def test_encode_rejects_unrepresentable(packet: EapPacket) -> None:
    with pytest.raises(ValueError):
        packet.encode()


@given(st.binary(max_size=64))
def test_decode_random_bytes_raises_only_decode_error(data: bytes) -> None:
    try:
        packet = decode(data)
    except EapDecodeError:
        return
    assert packet.encode() == data


@given(
    code=st.sampled_from([EapCode.REQUEST, EapCode.RESPONSE]),
    identifier=st.integers(0, 255),
    type_=st.integers(1, 253),
    data=st.binary(max_size=300),
)
def test_roundtrip(code: EapCode, identifier: int, type_: int, data: bytes) -> None:
    packet = EapPacket(code, identifier, type_, data)
    decoded = decode(packet.encode())
    assert (decoded.code, decoded.identifier, int(decoded.type), decoded.data) == (code, identifier, type_, data)
