"""Malformed or hostile datagrams only log and drop: no exception escapes the parts that
read from the network (decode raises RadiusError only; the client and the DAE server
return nothing)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ikegate.ike.events import Endpoint
from ikegate.radius.client import RadiusClient, RadiusServer
from ikegate.radius.dae import DaeServer, DaeSession
from ikegate.radius.packet import Attr, Code, Packet, RadiusError, decode, encode_request

SERVER = RadiusServer("a", "192.0.2.1", b"secret")
SESSIONS = [DaeSession(1, "carol", "1-1", ("10.0.0.1",))]


def _header_like(data: bytes) -> bytes:
    """Random bytes with a plausible header half the time (so parsing goes deeper)."""
    if len(data) >= 20 and data[0] & 1:
        code = [1, 2, 3, 4, 5, 11, 40, 41, 42, 43, 44, 45][data[1] % 12]
        return bytes([code, data[2]]) + len(data).to_bytes(2, "big") + data[4:]
    return data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(_header_like))
def test_decode_raises_only_radius_error(data):
    try:
        decode(data)
    except RadiusError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(_header_like))
def test_client_and_dae_drop_garbage(data):
    client = RadiusClient([SERVER])
    packet = Packet(Code.ACCESS_REQUEST)
    packet.add(Attr.USER_NAME, "carol")
    send, = client.request(packet, 0.0, context="c")
    # garbage with the identifier of the request in flight, from the server's endpoint
    forged = data[:1] + send.data[1:2] + data[2:] if len(data) >= 2 else data
    assert client.receive(forged, Endpoint("192.0.2.1", 1812), 0.1) == []
    dae = DaeServer(b"secret")
    result = dae.handle(data, Endpoint("192.0.2.9", 3799), SESSIONS)
    assert result.reply is None and result.kill == []


def test_truncated_valid_request_is_dropped():
    packet = Packet(Code.DISCONNECT_REQUEST, 1)
    packet.add(Attr.USER_NAME, "carol")
    data = encode_request(packet, b"secret")
    dae = DaeServer(b"secret")
    for cut in range(len(data)):
        assert dae.handle(data[:cut], Endpoint("192.0.2.9", 3799), SESSIONS).reply is None
