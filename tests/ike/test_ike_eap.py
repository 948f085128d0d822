"""EAP-MSCHAPv2 failures: strongSwan's retry scheme (two Failure-Requests ``E=691 R=1``,
each held back 2 s, then EAP-Failure with AUTHENTICATION_FAILED) on the fake clock,
and other clients unaffected meanwhile."""

from __future__ import annotations

import logging

import pytest

from ikegate.ike.events import IkeSaDown, IkeSaUp
from ikegate.wire.constants import EapCode, EapType, NotifyType

from .initiator import STRONGSWAN, WINDOWS10

RETRY_DELAY = 2.0  # strongSwan eap_mschapv2.c: sleep before each Failure-Request


def start_eap(net, client):
    """IKE_SA_INIT, IKE_AUTH 1 (-> EAP-Identity), identity (-> MS-CHAPv2 Challenge)."""
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    challenge = net.exchange(client, client.eap_request(identity_request))
    assert challenge.eap.type == EapType.MSCHAPV2 and challenge.eap.data[0] == 1


def held_response(net, client, datagrams):
    """Send a request whose answer the gateway holds back for RETRY_DELAY: nothing
    comes at once, nor just before the delay, nor for a retransmission meanwhile."""
    assert net.send(client, datagrams) == []
    net.advance(RETRY_DELAY / 2)
    assert net.send(client, client.retransmit()) == []  # no early answer from the cache either
    net.advance(RETRY_DELAY / 2 - 0.01)
    assert net.collect(client) == []
    net.advance(0.01)
    (response,) = net.deliver_pending(client)
    return response


@pytest.mark.parametrize("user, password", [("user1", "wrong"), ("nobody", "password1")],
                         ids=["wrong-password", "unknown-user"])
def test_failed_password_is_delayed_and_ends_in_authentication_failed(net, caplog, user, password):
    caplog.set_level(logging.DEBUG, logger="ikegate")
    bad = net.client(WINDOWS10, user=user, password=password)
    other = net.client(STRONGSWAN, user="user2")
    start_eap(net, bad)

    for attempt in (1, 2):
        response = held_response(net, bad, bad.eap_request())
        assert response.eap.code == EapCode.REQUEST and response.eap.type == EapType.MSCHAPV2
        assert response.eap.data[0] == 4  # Failure-Request
        assert response.eap.data[4:].decode().startswith("E=691 R=1 C=")
        assert response.error is None and net.sa_of(bad) is not None
        if attempt == 1:
            # another client connects while the bad one waits
            net.connect(other)
            assert other.established

    # the third wrong answer: EAP-Failure with AUTHENTICATION_FAILED, held back too
    final = held_response(net, bad, bad.eap_request())
    assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert final.eap.code == EapCode.FAILURE
    assert bad.eap_peer.failed and not bad.established
    assert net.sa_of(bad) is None
    assert net.send(bad, bad.retransmit()) == []  # the SA is gone: nothing answers

    (up,) = net.events_of(IkeSaUp)
    assert up.eap_id == "user2"
    assert not net.events_of(IkeSaDown)  # the failed SA was never up
    (sa,) = net.status()
    assert sa["state"] == "ESTABLISHED" and sa["remote"]["eap_id"] == "user2"
    assert password not in caplog.text


def test_right_password_on_the_retry_succeeds(net):
    client = net.client(WINDOWS10, password="typo")
    start_eap(net, client)
    response = held_response(net, client, client.eap_request())
    assert response.eap.data[0] == 4
    client.password = "password1"  # the user types it again, correctly this time
    success_request = net.exchange(client, client.eap_request())
    assert success_request.eap.data[0] == 3
    assert net.exchange(client, client.eap_request(success_request)).eap.code == EapCode.SUCCESS
    net.exchange(client, client.final_auth_request())
    assert client.established
    assert client.vips == ["192.0.2.1", "2001:db8::1"]


def test_client_giving_up_after_a_failure(net):
    """A Failure-Response (the user cancels) ends the exchange with EAP-Failure at once."""
    client = net.client(WINDOWS10, password="typo")
    client.eap_peer.give_up = True
    start_eap(net, client)
    held_response(net, client, client.eap_request())
    final = net.exchange(client, client.eap_request())
    assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert final.eap.code == EapCode.FAILURE
    assert net.sa_of(client) is None


def test_ntlm_hash_user(make_network):
    """A user stored as ``NTLM 0x<MD4 hash>`` logs in with the password."""
    from ikegate.pki.example import nt_hash

    net = make_network(secret_lines=[f"dave : NTLM 0x{nt_hash('s3cret pass').hex()}"])
    client = net.client(WINDOWS10, user="dave", password="s3cret pass")
    net.connect(client)
    assert client.established
    assert net.events[0].eap_id == "dave"


def test_final_auth_with_a_wrong_msk_fails(net):
    client = net.client(WINDOWS10)
    start_eap(net, client)
    success_request = net.exchange(client, client.eap_request())
    assert net.exchange(client, client.eap_request(success_request)).eap.code == EapCode.SUCCESS
    client.eap_peer.msk = bytes(64)  # not the MSK the server derived
    response = net.exchange(client, client.final_auth_request())
    assert response.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert net.sa_of(client) is None and net.events == []
