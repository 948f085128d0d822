"""ikegate.radius.dae: Disconnect-Request / CoA-Request handling (RFC 5176), sans-IO.

The requests here are built with ikegate.radius.packet; test_freeradius.py sends the same
kinds with FreeRADIUS's radclient."""

from __future__ import annotations

import ipaddress

from ikegate.ike.events import Endpoint
from ikegate.radius.dae import DaeServer, DaeSession
from ikegate.radius.packet import Attr, Code, ErrorCause, Packet, decode, encode_request, verify_response

SECRET = b"dae-secret"
DAC = Endpoint("192.0.2.50", 40000)
SESSIONS = [
    DaeSession(1, "carol", "1700000000-1", ("10.10.0.2",)),
    DaeSession(2, "dave", "1700000000-2", ("10.10.0.3", "fd00::3")),
    DaeSession(3, "carol", "1700000000-3", ("10.10.0.4",)),
]


def request(code=Code.DISCONNECT_REQUEST, *attrs, secret=SECRET, identifier=5, mac=False) -> tuple[Packet, bytes]:
    packet = Packet(code, identifier)
    for attr_type, value in attrs:
        packet.add(attr_type, value)
    if mac:
        packet.add(Attr.MESSAGE_AUTHENTICATOR, bytes(16))
    return packet, encode_request(packet, secret)


def reply_of(result, sent: bytes):
    return verify_response(result.reply, sent, SECRET, require_message_authenticator=False)


def test_disconnect_by_user_name_acks_and_kills_every_match():
    dae = DaeServer(SECRET)
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "carol"))
    result = dae.handle(data, DAC, SESSIONS)
    assert sorted(result.kill) == [1, 3]
    answer = reply_of(result, data)
    assert answer.code == Code.DISCONNECT_ACK and answer.identifier == 5 and answer.get(Attr.ERROR_CAUSE) is None
    assert result.client == DAC


def test_disconnect_by_session_id_or_framed_address_and_all_must_match():
    dae = DaeServer(SECRET)
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.ACCT_SESSION_ID, "1700000000-2"))
    assert dae.handle(data, DAC, SESSIONS).kill == [2]
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.FRAMED_IP_ADDRESS, ipaddress.ip_address("10.10.0.4")), identifier=6)
    assert dae.handle(data, DAC, SESSIONS).kill == [3]
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.FRAMED_IPV6_ADDRESS, ipaddress.ip_address("fd00::3")), identifier=7)
    assert dae.handle(data, DAC, SESSIONS).kill == [2]
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "carol"), (Attr.ACCT_SESSION_ID, "1700000000-2"),
                      identifier=8)
    result = dae.handle(data, DAC, SESSIONS)  # carol's sessions are 1 and 3, not 2
    assert result.kill == [] and reply_of(result, data).code == Code.DISCONNECT_NAK


def test_no_match_naks_503_and_no_identification_naks_402():
    dae = DaeServer(SECRET)
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "mallory"))
    result = dae.handle(data, DAC, SESSIONS)
    answer = reply_of(result, data)
    assert result.kill == [] and answer.code == Code.DISCONNECT_NAK
    assert answer.get_int(Attr.ERROR_CAUSE) == ErrorCause.SESSION_CONTEXT_NOT_FOUND
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.REPLY_MESSAGE, "bye"), identifier=9)
    assert reply_of(dae.handle(data, DAC, SESSIONS), data).get_int(Attr.ERROR_CAUSE) == ErrorCause.MISSING_ATTRIBUTE


def test_foreign_nas_identifier_naks_403():
    dae = DaeServer(SECRET, nas_identifiers={"gw1"})
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.NAS_IDENTIFIER, "gw2"), (Attr.USER_NAME, "carol"))
    result = dae.handle(data, DAC, SESSIONS)
    assert result.kill == [] and reply_of(result, data).get_int(Attr.ERROR_CAUSE) == ErrorCause.NAS_IDENTIFICATION_MISMATCH
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.NAS_IDENTIFIER, "gw1"), (Attr.USER_NAME, "dave"), identifier=6)
    assert dae.handle(data, DAC, SESSIONS).kill == [2]


def test_coa_is_naked_406():
    dae = DaeServer(SECRET)
    _, data = request(Code.COA_REQUEST, (Attr.USER_NAME, "carol"), (Attr.SESSION_TIMEOUT, 60))
    result = dae.handle(data, DAC, SESSIONS)
    answer = reply_of(result, data)
    assert result.kill == [] and answer.code == Code.COA_NAK
    assert answer.get_int(Attr.ERROR_CAUSE) == ErrorCause.UNSUPPORTED_EXTENSION


def test_message_authenticator_checked_and_echoed():
    dae = DaeServer(SECRET)
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "dave"), mac=True)
    result = dae.handle(data, DAC, SESSIONS)
    answer = verify_response(result.reply, data, SECRET, require_message_authenticator=True)
    assert answer.code == Code.DISCONNECT_ACK and result.kill == [2]
    # the same request with its Message-Authenticator spoiled (authenticator recomputed) is dropped
    packet = decode(data)
    packet.attributes = [(t, b"\x01" * 16 if t == Attr.MESSAGE_AUTHENTICATOR else v) for t, v in packet.attributes]
    from ikegate.radius import packet as wire

    spoiled = wire.encode(packet)
    spoiled = spoiled[:4] + wire._md5(spoiled[:4], bytes(16), spoiled[20:], SECRET) + spoiled[20:]
    assert dae.handle(spoiled, Endpoint("192.0.2.51", 1), SESSIONS).reply is None


def test_wrong_secret_malformed_and_foreign_clients_are_dropped():
    dae = DaeServer(SECRET, clients=["192.0.2.50"])
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "carol"), secret=b"wrong")
    result = dae.handle(data, DAC, SESSIONS)
    assert result.reply is None and result.kill == []
    assert dae.handle(b"\x28\x00\x00", DAC, SESSIONS).reply is None
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "carol"))
    assert dae.handle(data, Endpoint("192.0.2.99", 40000), SESSIONS).reply is None
    _, acct = request(Code.ACCOUNTING_REQUEST, (Attr.USER_NAME, "carol"))
    assert dae.handle(acct, DAC, SESSIONS).reply is None
    assert dae.stats["dropped"] == 4


def test_retransmitted_request_gets_the_same_answer_without_acting_again():
    dae = DaeServer(SECRET)
    _, data = request(Code.DISCONNECT_REQUEST, (Attr.USER_NAME, "carol"))
    first = dae.handle(data, DAC, SESSIONS)
    again = dae.handle(data, DAC, [])  # the sessions are gone by now
    assert again.reply == first.reply and again.kill == []
    assert dae.stats["retransmits"] == 1
