"""The message layer every exchange shares (RFC 7296 2.1-2.5, RFC 7383): the
response cache for retransmissions, the message ID window, integrity failures,
fragmentation both ways, unknown payloads and malformed ones."""

from __future__ import annotations

import pytest

from ikegate.wire.codec import decode_message, encode_message
from ikegate.wire.constants import EapCode, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import CertReqPayload, SkfPayload, UnknownPayload

from .harness import GATEWAY_V6
from .initiator import WINDOWS7, WINDOWS10

# -- retransmissions ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", [WINDOWS10, WINDOWS7], ids=["fragmenting", "not-fragmenting"])
def test_every_retransmitted_request_is_answered_from_the_cache(net, profile):
    """Each request of a whole connection, sent twice: the second answer is the first
    one byte for byte (fragments included) and changes nothing on the gateway."""
    client = net.client(profile)
    transport = net.transport(client)

    def twice(datagrams):
        first = transport(datagrams)
        state = (len(net.gateway.sas), len(net.events))
        again = transport(client.retransmit())
        assert again == first
        assert (len(net.gateway.sas), len(net.events)) == state
        return first

    client.connect(lambda datagrams: twice(datagrams))
    assert client.established
    assert client.responses[1].fragmented == (profile is WINDOWS10)
    # and once established, an INFORMATIONAL too
    net.exchange(client, client.informational())
    assert twice(client.retransmit()) == transport(client.retransmit())
    assert len(net.gateway.sas) == 1


def test_retransmitted_ike_sa_init_gets_the_same_response(net):
    client = net.client(WINDOWS10)
    request = client.sa_init_request()
    first = net.send(client, request)
    again = net.send(client, request)
    assert again == first and len(first) == 1
    assert len(net.gateway.sas) == 1 and len(net.gateway.half_open) == 1
    # a new SPI from the same client is a new IKE SA, not a retransmission
    other = net.client(WINDOWS10, host=client.local.host)
    net.send(other, other.sa_init_request())
    assert len(net.gateway.sas) == 2


def test_replayed_ike_sa_init_of_an_established_sa_is_ignored(net):
    """As strongSwan's init hash table: the IKE_SA_INIT stays known for the SA's life."""
    client = net.client(WINDOWS10)
    net.connect(client)
    assert net.send(client, [client.init_request]) == []
    assert len(net.gateway.sas) == 1 and not net.gateway.half_open


def test_retransmitted_fragmented_request_is_answered_once(net):
    """A retransmitted fragmented request is answered on its first fragment only."""
    client = net.client(WINDOWS10, fragment_size=200)
    net.exchange(client, client.sa_init_request())
    request = client.auth_request()
    assert len(request) > 1
    first = net.send(client, request)
    assert first
    assert net.send(client, request[1:]) == []
    assert net.send(client, request[:1]) == first


# -- message IDs -----------------------------------------------------------------------------


def test_message_ids_outside_the_window_are_dropped(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    expected = client.next_mid  # 6 after IKE_SA_INIT and five IKE_AUTH rounds
    for mid in (expected + 1, expected + 100, 2, 0xFFFFFFFF):
        assert net.send(client, client.seal(ExchangeType.INFORMATIONAL, [], message_id=mid)) == []
    response = net.exchange(client, client.informational())
    assert response is not None and response.message_id == expected
    assert response.payloads == []


def test_ike_auth_before_ike_sa_init_completed_is_ignored(net):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    client.next_mid = 2  # skip message ID 1
    assert net.send(client, client.auth_request()) == []
    client.next_mid = 1
    assert net.exchange(client, client.auth_request()).eap is not None


# -- integrity --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [-1, 40], ids=["icv", "iv"])
def test_request_failing_integrity_is_dropped_silently(net, where):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    (request,) = client.auth_request()
    tampered = bytearray(request)
    tampered[where] ^= 0x01
    assert net.send(client, [bytes(tampered)]) == []
    sa = net.sa_of(client)
    assert sa is not None and sa.state == "CONNECTING" and sa.expected_mid == 1
    # the genuine request still works afterwards
    assert net.exchange(client, [request]).eap.code == EapCode.REQUEST


def test_fragment_failing_integrity_is_dropped(net):
    client = net.client(WINDOWS10, fragment_size=200)
    net.exchange(client, client.sa_init_request())
    request = client.auth_request()
    tampered = bytearray(request[1])
    tampered[-3] ^= 0xFF
    assert net.send(client, [request[0], bytes(tampered)] + request[2:]) == []
    assert net.exchange(client, request[1:2]).eap is not None  # the genuine piece completes it


# -- fragmentation (RFC 7383) ----------------------------------------------------------------------


@pytest.mark.parametrize("order", ["in-order", "reversed"])
@pytest.mark.parametrize("profile", [WINDOWS10, WINDOWS7], ids=["announced", "not-announced"])
def test_fragmented_requests_are_reassembled(net, order, profile):
    """Windows fragments its big IKE_AUTH (dozens of CA hashes in CERTREQ).  Fragments
    are accepted even from a peer that did not announce IKEV2_FRAGMENTATION_SUPPORTED."""
    client = net.client(profile, fragment_size=576)
    net.exchange(client, client.sa_init_request())
    certreq = CertReqPayload(data=bytes(range(20)) * 41)  # 41 unknown CAs, as Windows sends
    request = client.auth_request(extra=[certreq])
    assert len(request) >= 3
    assert all(len(d) + 28 <= 576 for d in request)
    response = net.exchange(client, request if order == "in-order" else request[::-1])
    assert response.eap.code == EapCode.REQUEST
    # the rest of the connection, fragmented where needed
    client.profile = client.profile.with_(fragment_size=200)
    while response.eap is not None and response.eap.code == EapCode.REQUEST:
        response = net.exchange(client, client.eap_request(response))
    net.exchange(client, client.final_auth_request())
    assert client.established


@pytest.mark.parametrize(
    "profile, server, fragmented",
    [(WINDOWS10, None, True), (WINDOWS7, None, False), (WINDOWS10, GATEWAY_V6, True)],
    ids=["frag-supported", "no-frag-support", "frag-supported-ipv6"],
)
def test_responses_fragmented_only_for_peers_that_support_it(net, profile, server, fragmented):
    """The IKE_AUTH response with two certificates is bigger than 1280 bytes: split
    into fragments that each fit charon.fragment_size (the whole IP datagram) only if
    the client announced IKEV2_FRAGMENTATION_SUPPORTED."""
    client = net.client(profile, **({"server": server} if server else {}))
    net.exchange(client, client.sa_init_request())
    assert client.peer_fragmentation == fragmented
    datagrams = net.send(client, client.auth_request())
    ip_udp = 48 if server is GATEWAY_V6 else 28
    if fragmented:
        assert len(datagrams) > 1
        assert all(len(d) + ip_udp <= 1280 for d in datagrams)
        frags = [decode_message(d).sealed for d in datagrams]
        assert all(isinstance(f, SkfPayload) for f in frags)
        assert [f.fragment_number for f in frags] == list(range(1, len(frags) + 1))
        assert {f.total_fragments for f in frags} == {len(frags)}
    else:
        assert len(datagrams) == 1 and len(datagrams[0]) + ip_udp > 1280
    decoded = [client.receive(d) for d in datagrams]
    response = decoded[-1]
    assert decoded[:-1] == [None] * (len(datagrams) - 1)
    assert response.types == [PayloadType.IDr, PayloadType.CERT, PayloadType.CERT, PayloadType.AUTH,
                              PayloadType.EAP]


def test_fragmentation_no_in_the_conn_means_no_fragments(make_network):
    net = make_network(edits={"fragmentation=yes": "fragmentation=no"})
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    assert not client.peer_fragmentation
    assert len(net.send(client, client.auth_request())) == 1


# -- unknown and malformed payloads ---------------------------------------------------------------


def critical_unknown(critical: bool = True) -> UnknownPayload:
    return UnknownPayload(payload_type=200, data=b"private", critical=critical)


def test_unknown_critical_payload_in_ike_sa_init(net):
    client = net.client(WINDOWS10)
    response = net.exchange(client, client.sa_init_request(extra=[critical_unknown()]))
    assert response.payloads == [response.notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)]
    assert response.notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD).data == bytes([200])
    assert not net.gateway.sas and not net.gateway.half_open


def test_unknown_critical_payload_in_ike_auth(net):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    response = net.exchange(client, client.auth_request(extra=[critical_unknown()]))
    assert response.notify_types == [NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD]
    assert response.notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD).data == bytes([200])
    assert response.get(PayloadType.IDr) is None


def test_unknown_critical_payload_in_informational_keeps_the_sa(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    response = net.exchange(client, client.informational([critical_unknown()]))
    assert response.notify_types == [NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD]
    assert net.sa_of(client).state == "ESTABLISHED"
    assert net.exchange(client, client.informational()).payloads == []


def test_unknown_non_critical_payloads_are_ignored(net):
    client = net.client(WINDOWS10)
    transport = net.transport(client)
    assert client.sa_init(lambda d: transport(client.sa_init_request(extra=[critical_unknown(False)])))
    response = net.exchange(client, client.auth_request(extra=[critical_unknown(False)]))
    while response.eap.code == EapCode.REQUEST:
        response = net.exchange(client, client.eap_request(response))
    net.exchange(client, client.final_auth_request())
    assert client.established
    assert net.exchange(client, client.informational([critical_unknown(False)])).payloads == []


@pytest.mark.parametrize(
    "first, plaintext",
    [
        (PayloadType.IDi, b"\x00\x00\x00\x02"),  # payload length below the generic header
        (PayloadType.IDi, b"\x00\x00\x00\x40\x02\x00\x00\x00"),  # length beyond the data
        (PayloadType.SA, b"\x00\x00\x00\x0c\x00\x00\x00\x08\x01\x01\x00\x00"),  # proposal count/length wrong
        (PayloadType.SK, b"\x00\x00\x00\x04"),  # an SK payload inside SK
    ],
    ids=["short-length", "overlong-length", "bad-proposal", "nested-sk"],
)
def test_malformed_inner_payloads_get_invalid_syntax(net, first, plaintext):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    response = net.exchange(client, client.seal_raw(ExchangeType.IKE_AUTH, first, plaintext))
    assert response is not None and response.message_id == 1
    assert response.notify_types == [NotifyType.INVALID_SYNTAX]
    # strongSwan (send_invalid_syntax) destroys the IKE SA of a peer that sends garbage
    # under valid integrity protection
    assert net.sa_of(client) is None and not net.gateway.half_open


def test_malformed_informational_ends_an_established_sa(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    response = net.exchange(client, client.seal_raw(ExchangeType.INFORMATIONAL, PayloadType.DELETE, b"\x00\x00"))
    assert response.notify_types == [NotifyType.INVALID_SYNTAX]
    assert net.sa_of(client) is None
    assert [type(e).__name__ for e in net.events] == ["IkeSaUp", "ChildSaUp", "ChildSaDown", "IkeSaDown"]


def test_malformed_ike_sa_init_gets_invalid_syntax(net):
    client = net.client(WINDOWS10)
    (request,) = client.sa_init_request()
    # cut the message inside the last payload and fix the header length to match
    broken = bytearray(request[:-3])
    broken[24:28] = len(broken).to_bytes(4, "big")
    (response,) = net.send(client, [bytes(broken)])
    message = decode_message(response)
    assert [p.notify_type for p in message.payloads] == [NotifyType.INVALID_SYNTAX]
    assert not net.gateway.sas


def test_ike_sa_init_without_nonce_gets_invalid_syntax(net):
    client = net.client(WINDOWS10)
    (request,) = client.sa_init_request()
    message = decode_message(request)
    message.payloads = [p for p in message.payloads if p.type != PayloadType.NONCE]
    response = net.exchange(client, [encode_message(message)])
    assert response.notify_types == [NotifyType.INVALID_SYNTAX]
    assert not net.gateway.sas
