"""Defences in front of the IKE SAs: COOKIEs (RFC 7296 2.6) past strongSwan's
``cookie_threshold``/``cookie_threshold_ip``, the per-address ``block_threshold``, and
the half-open timeout."""

from __future__ import annotations

import logging

import pytest

from ikegate.wire.codec import decode_message
from ikegate.wire.constants import EapCode, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload

from .initiator import WINDOWS10, Initiator

FLOODER = "198.51.100.200"
FLOODER2 = "198.51.100.201"


def half_open(net, host: str, port: int) -> Initiator:
    """A client that stops after IKE_SA_INIT (echoing a cookie if asked)."""
    client = net.client(WINDOWS10, host=host, port=port)
    response = client.sa_init(net.transport(client))
    assert response is not None and response.get(PayloadType.SA) is not None, response
    return client


def test_cookie_required_past_the_per_ip_threshold(net):
    """cookie_threshold_ip = 3: the 4th half-open SA from one address must echo a COOKIE;
    the initiator that does gets through, other addresses are not affected."""
    for port in (5001, 5002, 5003):
        client = net.client(WINDOWS10, host=FLOODER, port=port)
        assert net.exchange(client, client.sa_init_request()).get(PayloadType.SA) is not None
    assert net.gateway.stats["cookies_sent"] == 0

    client = net.client(WINDOWS10, host=FLOODER, port=5004)
    (datagram,) = net.send(client, client.sa_init_request())
    challenge = decode_message(datagram)
    assert challenge.spi_r == bytes(8) and challenge.exchange == ExchangeType.IKE_SA_INIT
    (cookie,) = challenge.payloads
    assert cookie.notify_type == NotifyType.COOKIE and 1 <= len(cookie.data) <= 64
    assert len(net.gateway.sas) == 3  # no state for the challenged request
    client.receive(datagram)
    response = net.exchange(client, client.sa_init_request())  # the cookie goes first
    assert response.get(PayloadType.SA) is not None and client.keys is not None
    assert len(net.gateway.sas) == 4

    # the cookied client completes its connection
    response = net.exchange(client, client.auth_request())
    while response.eap.code == EapCode.REQUEST:
        response = net.exchange(client, client.eap_request(response))
    net.exchange(client, client.final_auth_request())
    assert client.established

    # another address is below its threshold: no cookie
    other = net.client(WINDOWS10)
    assert net.exchange(other, other.sa_init_request()).get(PayloadType.SA) is not None


def test_cookie_required_past_the_global_threshold(make_network):
    net = make_network(cookie_threshold=2, cookie_threshold_ip=0)
    half_open(net, "198.51.100.1", 500)
    half_open(net, "198.51.100.2", 500)
    third = net.client(WINDOWS10, host="198.51.100.3")
    assert net.exchange(third, third.sa_init_request()).notify_types == [NotifyType.COOKIE]
    assert net.exchange(third, third.sa_init_request()).get(PayloadType.SA) is not None


@pytest.mark.parametrize("tamper", ["flipped", "other-nonce", "other-spi", "other-address"])
def test_a_wrong_cookie_does_not_get_through(net, tamper):
    """The cookie is an HMAC over Ni, SPIi and the initiator's address: changing any of
    them (or the cookie) earns a new challenge, not an IKE SA."""
    for host in (FLOODER, FLOODER2):
        for port in (5001, 5002, 5003):
            half_open(net, host, port)
    client = net.client(WINDOWS10, host=FLOODER, port=5004)
    net.exchange(client, client.sa_init_request())
    assert client.cookie is not None
    if tamper == "flipped":
        client.cookie = client.cookie[:-1] + bytes([client.cookie[-1] ^ 1])
    elif tamper == "other-nonce":
        client.nonce_i = bytes(32)
    elif tamper == "other-spi":
        client.spi_i = bytes(range(8))
    else:  # the same request replayed from another address that needs a cookie too
        client.local = client.local._replace(host=FLOODER2)
    response = net.exchange(client, client.sa_init_request())
    assert response.notify_types == [NotifyType.COOKIE]
    assert response.get(PayloadType.SA) is None
    assert len(net.gateway.sas) == 6 and net.gateway.stats["cookies_sent"] == 2


def test_cookie_must_be_the_first_payload(net):
    for port in (5001, 5002, 5003):
        half_open(net, FLOODER, port)
    client = net.client(WINDOWS10, host=FLOODER, port=5004)
    net.exchange(client, client.sa_init_request())
    cookie, client.cookie = client.cookie, None
    late = NotifyPayload(notify_type=NotifyType.COOKIE, data=cookie)
    assert net.exchange(client, client.sa_init_request(extra=[late])).notify_types == [NotifyType.COOKIE]


def test_cookie_secret_rotation(make_network):
    """The cookie secret changes every 120 s and the previous one stays valid: a cookie
    survives one rotation, not two."""
    net = make_network(half_open_timeout=1000)
    for port in (5001, 5002, 5003):
        half_open(net, FLOODER, port)
    early, late = (net.client(WINDOWS10, host=FLOODER, port=port) for port in (5004, 5005))
    for client in (early, late):
        assert net.exchange(client, client.sa_init_request()).notify_types == [NotifyType.COOKIE]
    net.advance(125)
    assert net.exchange(early, early.sa_init_request()).get(PayloadType.SA) is not None
    net.advance(125)
    assert net.exchange(late, late.sa_init_request()).notify_types == [NotifyType.COOKIE]
    assert net.exchange(late, late.sa_init_request()).get(PayloadType.SA) is not None  # the fresh one works


def test_block_threshold_drops_everything_from_one_address(net):
    """block_threshold = 5 half-open SAs per address: the 6th request is dropped
    silently, even with a valid cookie; other addresses still get in."""
    for port in range(5001, 5006):
        half_open(net, FLOODER, port)
    assert len(net.gateway.half_open) == 5
    client = net.client(WINDOWS10, host=FLOODER, port=5006)
    assert net.send(client, client.sa_init_request()) == []
    assert net.gateway.stats["blocked"] == 1
    other = net.client(WINDOWS10)
    assert net.exchange(other, other.sa_init_request()).get(PayloadType.SA) is not None


def test_half_open_timeout_frees_the_sa(net):
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    assert net.gateway.next_timer() == net.now + 30
    net.advance(29.9)
    assert net.sa_of(client) is not None
    net.advance(0.1)
    assert net.sa_of(client) is None
    assert not net.gateway.half_open and not net.gateway.half_open_by_ip and not net.gateway.init_index
    assert net.send(client, client.auth_request()) == []  # nothing left to answer
    assert net.events == [] and net.gateway.next_timer() is None


def test_half_open_timeout_counts_from_ike_sa_init(net):
    """Still connecting 30 s after IKE_SA_INIT (the user never typed the password): gone."""
    client = net.client(WINDOWS10)
    net.exchange(client, client.sa_init_request())
    net.advance(20)
    assert net.exchange(client, client.auth_request()).eap is not None
    net.advance(10)
    assert net.sa_of(client) is None


def test_timed_out_half_open_sas_lift_the_cookie_requirement(net):
    for port in (5001, 5002, 5003):
        half_open(net, FLOODER, port)
    net.advance(30)
    client = net.client(WINDOWS10, host=FLOODER, port=5004)
    assert net.exchange(client, client.sa_init_request()).get(PayloadType.SA) is not None


def test_established_sas_do_not_count_as_half_open(net):
    for port, user in ((5001, "user1"), (5002, "user2"), (5003, "user3")):
        client = net.client(WINDOWS10, host=FLOODER, port=port, user=user)
        net.connect(client)
        assert client.established
    fourth = net.client(WINDOWS10, host=FLOODER, port=5004)
    assert net.exchange(fourth, fourth.sa_init_request()).get(PayloadType.SA) is not None
    assert net.gateway.stats["cookies_sent"] == 0


def test_ikesa_limit_refuses_new_sas_and_frees_with_deletes(make_network, caplog):
    """charon.ikesa_limit = 3: the 4th IKE_SA_INIT is dropped (strongSwan: "ignoring ...,
    hitting IKE_SA limit"), established SAs are untouched, and a delete makes room."""
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(ikesa_limit=3)
    clients = [net.client(WINDOWS10, user=user) for user in ("user1", "user2", "user3")]
    for client in clients:
        net.connect(client)
        assert client.established
    late = net.client(WINDOWS10, user="user1", initial_contact=False)
    assert net.send(late, late.sa_init_request()) == []
    assert net.gateway.stats["limited"] == 1
    assert "(ikesa_limit)" in caplog.text
    net.exchange(clients[0], clients[0].delete_ike())
    assert net.exchange(late, late.sa_init_request()).get(PayloadType.SA) is not None


def test_ikesa_limit_ip_counts_per_address_and_follows_rekeys(make_network):
    """charon.ikesa_limit_ip = 2: a third SA from one address is refused while other
    addresses connect; an IKE rekey keeps the count (the new SA replaces the old)."""
    net = make_network(ikesa_limit_ip=2)
    first, second = (net.client(WINDOWS10, host=FLOODER, port=port, user=user)
                     for port, user in ((5001, "user1"), (5002, "user2")))
    for client in (first, second):
        net.connect(client)
        assert client.established
    assert net.gateway.sas_by_ip[FLOODER] == 2
    third = net.client(WINDOWS10, host=FLOODER, port=5003, user="user3")
    assert net.send(third, third.sa_init_request()) == []
    other = net.client(WINDOWS10, user="user3")
    net.connect(other)
    assert other.established
    assert net.gateway.sas_by_ip[FLOODER] == 2 and net.gateway.sas_by_ip[other.local.host] == 1
    net.exchange(first, first.delete_ike())
    assert net.gateway.sas_by_ip[FLOODER] == 1
    net.connect(third)
    assert third.established and net.gateway.sas_by_ip[FLOODER] == 2


def test_a_flood_of_drops_is_logged_at_a_bounded_rate(make_network, caplog):
    """Datagrams for unknown IKE SAs: each one is counted; the log takes a burst of 20
    lines, then one a second, and the next line says how many went unlogged, so a flood
    cannot flood the log too."""
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network()
    client = net.client(WINDOWS10)
    net.connect(client)
    request = client.informational()  # an empty INFORMATIONAL (liveness check), answered
    assert net.exchange(client, request) is not None
    net.exchange(client, client.delete_ike())
    assert net.sa_of(client) is None
    caplog.clear()
    for _ in range(50):
        net.send(client, request)
    assert net.gateway.stats["dropped"] >= 50
    assert caplog.text.count("for unknown IKE SA") == 20
    net.advance(1)
    net.send(client, request)
    net.send(client, request)
    lines = [r.getMessage() for r in caplog.records if "for unknown IKE SA" in r.getMessage()]
    assert len(lines) == 21 and lines[-1].endswith("dropped (30 more unknown SA drops not logged)")
