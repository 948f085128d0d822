"""ikegate.radius.client: retransmits, failover, identifiers and answer checking (sans-IO).

The "servers" answer with :func:`ikegate.radius.packet.encode_response` after checking the
request with :func:`verify_request` (the packet functions themselves are checked against
RFC 2865 and scapy in test_packet.py, and the whole client against FreeRADIUS in
test_freeradius.py)."""

from __future__ import annotations

import pytest

from ikegate.ike.events import Endpoint
from ikegate.radius.client import UNREACHABLE_HOLD, RadiusAnswer, RadiusClient, RadiusSend, RadiusServer, RadiusTimeout
from ikegate.radius.packet import Attr, Code, Packet, decode, eap_attributes, encode_response, verify_request

A = RadiusServer("a", "192.0.2.1", b"secret-a", nas_identifier="gw-a")
B = RadiusServer("b", "192.0.2.2", b"secret-b", preference=10)


def access_request(user: str = "alice") -> Packet:
    packet = Packet(Code.ACCESS_REQUEST)
    packet.add(Attr.USER_NAME, user)
    packet.attributes += eap_attributes(b"\x02\x01\x00\x0a\x01" + user.encode())
    return packet


def answer(send: RadiusSend, secret: bytes, code=Code.ACCESS_ACCEPT, *extra) -> bytes:
    request = verify_request(send.data, secret)
    reply = Packet(code)
    reply.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
    for attr_type, value in extra:
        reply.add(attr_type, value)
    return encode_response(reply, request, secret)


def drive(client: RadiusClient, until: float) -> list[tuple[float, object]]:
    """Run the client's timer up to ``until``: (time, output) pairs."""
    out = []
    while (when := client.next_timer()) is not None and when <= until:
        out += [(when, item) for item in client.tick(when)]
    return out


def test_retransmit_schedule_is_strongswans():
    # strongSwan radius_socket.c: send, then tries retransmits after timeout * base^n
    client = RadiusClient([A], tries=4, timeout=2.0, base=1.4)
    first = client.request(access_request(), 0.0, context="ctx")
    assert len(first) == 1 and first[0].server == Endpoint("192.0.2.1", 1812)
    events = drive(client, 100.0)
    sends = [(t, e) for t, e in events if isinstance(e, RadiusSend)]
    assert [round(t, 4) for t, _ in sends] == [2.0, 4.8, 8.72, 14.208]
    assert all(e.data == first[0].data for _, e in sends)  # the same bytes
    (t, timeout), = [(t, e) for t, e in events if isinstance(e, RadiusTimeout)]
    assert round(t, 4) == 21.8912 and timeout.context == "ctx"
    assert client.next_timer() is None and client.pending() == 0


def test_answer_is_verified_and_delivered_once():
    client = RadiusClient([A])
    send, = client.request(access_request(), 0.0, context="ctx")
    request = decode(send.data)
    assert request.get_str(Attr.NAS_IDENTIFIER) == "gw-a"  # the server's NAS-Identifier
    reply = answer(send, b"secret-a", Code.ACCESS_ACCEPT, (Attr.CLASS, b"group=staff"))
    out = client.receive(reply, Endpoint("192.0.2.1", 1812), 0.5)
    assert len(out) == 1 and isinstance(out[0], RadiusAnswer)
    assert out[0].context == "ctx" and out[0].packet.get(Attr.CLASS) == b"group=staff"
    assert out[0].request_authenticator == request.authenticator and out[0].secret == b"secret-a"
    assert client.receive(reply, Endpoint("192.0.2.1", 1812), 0.6) == []  # duplicate
    assert client.stats["dropped"] == 1 and client.next_timer() is None


def test_forged_and_misdirected_answers_are_dropped():
    client = RadiusClient([A])
    send, = client.request(access_request(), 0.0, context=1)
    genuine = answer(send, b"secret-a")
    wrong_secret = encode_response(Packet(Code.ACCESS_ACCEPT, attributes=[(Attr.MESSAGE_AUTHENTICATOR, bytes(16))]),
                                   send.data, b"not-the-secret")
    assert client.receive(wrong_secret, Endpoint("192.0.2.1", 1812), 0.1) == []
    assert client.receive(genuine, Endpoint("192.0.2.99", 1812), 0.1) == []  # from elsewhere
    assert client.receive(genuine, Endpoint("192.0.2.1", 1813), 0.1) == []  # other port
    assert client.receive(genuine[:10], Endpoint("192.0.2.1", 1812), 0.1) == []  # malformed
    assert client.receive(b"\x02" + genuine[1:3] + b"\xff" + genuine[4:], Endpoint("192.0.2.1", 1812), 0.1) == []
    assert client.stats["dropped"] == 5
    out = client.receive(genuine, Endpoint("192.0.2.1", 1812), 0.2)  # the real one still counts
    assert [type(o) for o in out] == [RadiusAnswer]


def test_failover_by_preference_and_unreachable_server_tried_last():
    client = RadiusClient([A, B], tries=1, timeout=1.0, base=2.0)
    send, = client.request(access_request(), 0.0, context="first")
    assert send.server.host == "192.0.2.2"  # B: preference 10
    events = drive(client, 3.0)
    failover = [e for _, e in events if isinstance(e, RadiusSend) and e.server.host == "192.0.2.1"]
    assert len(failover) == 1  # after 1 + 2 s without answer from B: A, re-encoded for A
    assert verify_request(failover[0].data, b"secret-a").get_str(Attr.USER_NAME) == "alice"
    out = client.receive(answer(failover[0], b"secret-a"), Endpoint("192.0.2.1", 1812), 3.5)
    assert [o.context for o in out] == ["first"] and out[0].server == "a"
    # B timed out: the next request goes to A first, for a while
    send2, = client.request(access_request("bob"), 4.0)
    assert send2.server.host == "192.0.2.1"
    client.receive(answer(send2, b"secret-a"), Endpoint("192.0.2.1", 1812), 4.1)
    send3, = client.request(access_request("carol"), 3.0 + UNREACHABLE_HOLD + 1)
    assert send3.server.host == "192.0.2.2"  # B gets another chance


def test_every_server_silent_gives_one_timeout():
    client = RadiusClient([A, B], tries=0, timeout=1.0, base=1.0)
    client.request(access_request(), 0.0, context="x")
    events = drive(client, 10.0)
    assert [type(e) for _, e in events] == [RadiusSend, RadiusTimeout]
    assert events[-1][0] == 2.0 and events[-1][1].context == "x"


def test_accounting_goes_to_the_accounting_port():
    client = RadiusClient([A])
    packet = Packet(Code.ACCOUNTING_REQUEST)
    packet.add(Attr.ACCT_STATUS_TYPE, 1)
    send, = client.request(packet, 0.0, kind="acct", context="acct")
    assert send.server == Endpoint("192.0.2.1", 1813)
    request = verify_request(send.data, b"secret-a")
    reply = encode_response(Packet(Code.ACCOUNTING_RESPONSE), request, b"secret-a")
    out = client.receive(reply, Endpoint("192.0.2.1", 1813), 0.1)
    assert [o.packet.code for o in out] == [Code.ACCOUNTING_RESPONSE]
    with pytest.raises(ValueError):
        client.request(packet, 0.0, kind="other")


def test_identifiers_per_server_and_queue_beyond_256():
    client = RadiusClient([A], tries=0, timeout=5.0)
    sends = []
    for i in range(260):
        sends += client.request(access_request(f"u{i}"), 0.0, context=i)
    assert len(sends) == 256 and len({s.data[1] for s in sends}) == 256
    assert client.pending() == 260
    # an answer frees an identifier: a waiting request goes out with it
    out = client.receive(answer(sends[0], b"secret-a"), Endpoint("192.0.2.1", 1812), 1.0)
    assert isinstance(out[0], RadiusAnswer) and out[0].context == 0
    assert len(out) == 2 and isinstance(out[1], RadiusSend) and out[1].data[1] == sends[0].data[1]
    assert verify_request(out[1].data, b"secret-a").get_str(Attr.USER_NAME) == "u256"


def test_cancel_forgets_the_request():
    client = RadiusClient([A])
    send, = client.request(access_request(), 0.0, context="gone")
    client.cancel("gone")
    assert client.receive(answer(send, b"secret-a"), Endpoint("192.0.2.1", 1812), 0.1) == []
    assert client.next_timer() is None


def test_ipv6_server_endpoint_is_normalised():
    server = RadiusServer("v6", "2001:DB8::0:1", b"s6")
    client = RadiusClient([server])
    send, = client.request(access_request(), 0.0, context="v6")
    assert send.server == Endpoint("2001:db8::1", 1812)
    out = client.receive(answer(send, b"s6"), Endpoint("2001:db8:0::1", 1812), 0.1)
    assert [o.context for o in out] == ["v6"]


def test_secret_not_in_repr():
    assert "secret-a" not in repr(A)


def test_reconfigure_keeps_requests_in_flight_and_held_down_servers():
    client = RadiusClient([A, B], tries=0, timeout=1.0)
    to_b, = client.request(access_request(), 0.0, context="first")  # B: higher preference
    assert to_b.server.host == "192.0.2.2"
    to_a, = [e for _, e in drive(client, 1.0) if isinstance(e, RadiusSend)]  # B silent: on to A
    assert to_a.server.host == "192.0.2.1"
    status = {s["name"]: s for s in client.server_status(1.0)}
    assert status["b"]["reachable"] is False and status["b"]["down_since"] == 1.0
    assert status["b"]["timeouts"] == 1 and status["a"]["pending"] == 1 and status["a"]["reachable"]
    # a reload: B configured again (a new object, same settings), C added, A removed
    b_again = RadiusServer("b", "192.0.2.2", b"secret-b", preference=10)
    c = RadiusServer("c", "192.0.2.3", b"secret-c", preference=5)
    client.reconfigure([b_again, c], tries=0, timeout=1.0)
    to_c, = client.request(access_request("bob"), 1.5, context="second")
    assert to_c.server.host == "192.0.2.3"  # B is still held down
    # the request in flight at A (no longer configured) is still answered and delivered
    delivered, = client.receive(answer(to_a, b"secret-a"), to_a.server, 1.6)
    assert isinstance(delivered, RadiusAnswer) and delivered.context == "first"
    status = client.server_status(1.6)
    assert [s["name"] for s in status] == ["b", "c"]
    assert status[1]["requests"] == 1 and status[1]["pending"] == 1 and client.pending() == 1


def test_authentication_and_accounting_share_reachability():
    """strongSwan keeps one reachable flag per server config (radius_config.c put_socket),
    whatever the request: a server that failed Access-Requests is tried last for
    Accounting-Requests too."""
    from ikegate.radius.settings import RadiusSettings

    settings = RadiusSettings(servers=(A, B), tries=0, timeout=1.0)
    auth, acct = settings.client(), settings.client()
    assert auth is not acct and auth.reachability is acct.reachability
    to_b, = auth.request(access_request(), 0.0, context="auth")
    assert to_b.server.host == "192.0.2.2"
    drive(auth, 1.0)  # B silent: held down for both
    start = Packet(Code.ACCOUNTING_REQUEST)
    start.add(Attr.ACCT_STATUS_TYPE, 1)
    first, = acct.request(start, 2.0, kind="acct", context="acct")
    assert first.server == Endpoint("192.0.2.1", 1813)  # A, although B is preferred
    assert [s["reachable"] for s in acct.server_status(2.0)] == [True, False]
    # B answers an accounting request later: reachable again for authentication too
    assert auth.reachability.until  # B's outage is still on record
    to_b2, = acct.request(start, 70.0, kind="acct", context="acct2")  # the hold is over
    assert to_b2.server.host == "192.0.2.2"
    response = Packet(Code.ACCOUNTING_RESPONSE)
    acct.receive(encode_response(response, verify_request(to_b2.data, b"secret-b"), b"secret-b"), to_b2.server, 70.1)
    assert auth.reachability.until == {} and all(s["reachable"] for s in auth.server_status(70.1))
