"""``rightauth=eap-radius``: the EAP conversation relayed between the test initiator and a
scripted RADIUS server, on the fake clock.

The server (:class:`ScriptedRadius`) is built on ``ikegate.radius.packet``: it checks every
Access-Request's Message-Authenticator with the shared secret, runs EAP-MSCHAPv2 with
``ikegate.eap.mschapv2.MschapV2Server`` over the relayed EAP-Messages (State ties the
rounds together), answers Access-Challenge / Access-Accept (MS-MPPE-Recv/Send-Key hold
the MSK, encrypted as RFC 2548 2.4.2 says) / Access-Reject, and can hold or lose
answers.  The initiator's MS-CHAPv2 side is the test peer of ``initiator.py``, so an
established IKE SA proves the MSK went through RADIUS intact (both AUTH payloads are
keyed with it).
"""

from __future__ import annotations

import ipaddress
import logging
import struct

import pytest

from ikegate.eap.mschapv2 import MschapV2Server
from ikegate.eap.packet import EapPacket
from ikegate.eap.packet import decode as decode_eap
from ikegate.ike.events import ChildSaUp, Endpoint, IkeSaDown, IkeSaUp
from ikegate.radius.client import RadiusClient, RadiusSend, RadiusServer
from ikegate.radius.packet import (
    MICROSOFT,
    Attr,
    Code,
    MsAttr,
    Packet,
    encode_response,
    encrypt_mppe_key,
    eap_attributes,
    join_eap,
    verify_request,
)
from ikegate.wire.constants import CfgAttr, EapCode, EapType, ExchangeType, NotifyType, PayloadType

from .harness import GATEWAY_V4
from .initiator import STRONGSWAN, WINDOWS10

SECRET = b"radius-test-secret"
SERVER = Endpoint("192.0.2.250", 1812)
RADIUS_USERS = {"carol": "carol-password", "dave": "dave-password"}  # not in ipsec.secrets
RADIUS_CONF = {"rightauth=eap-mschapv2": "rightauth=eap-radius"}


class ScriptedRadius:
    """A RADIUS server running EAP-MSCHAPv2 for :data:`RADIUS_USERS`.

    ``accept_attributes`` go into every Access-Accept; ``hold`` keeps requests unanswered
    (:meth:`release` answers them); ``lose`` drops that many requests silently."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.requests: list[Packet] = []
        self.answers: list[Packet] = []
        self.accept_attributes: list[tuple[int, bytes]] = []
        self.hold = False
        self.lose = 0
        self.accept_identity = False  # answer the first request with Access-Accept (NPS quirk)
        self.held: list[bytes] = []
        self._sessions: dict[bytes, tuple[MschapV2Server, int]] = {}
        self._states = 0

    def handle(self, data: bytes) -> bytes | None:
        request = verify_request(data, SECRET, require_message_authenticator=True)
        self.requests.append(request)
        if self.lose:
            self.lose -= 1
            return None
        if self.hold:
            self.held.append(data)
            return None
        return self._answer(request)

    def _answer(self, request: Packet) -> bytes:
        eap = decode_eap(join_eap(request))
        state = request.get(Attr.STATE)
        if state is None:  # the first request: the EAP-Identity response
            assert eap.type == EapType.IDENTITY
            if self.accept_identity:
                return self._reply(request, Code.ACCESS_ACCEPT, [])
            method = MschapV2Server(lambda name: ("EAP", self.users[name].encode()) if name in self.users else None)
            identifier = (eap.identifier + 1) & 0xFF
            self._states += 1
            state = f"state-{self._states}".encode()
            self._sessions[state] = (method, identifier)
            return self._challenge(request, state, method.initiate(identifier))
        method, identifier = self._sessions[state]
        step = method.process(eap, (identifier + 1) & 0xFF)
        if step.status == "continue" and not step.delay:
            self._sessions[state] = (method, step.request.identifier)
            return self._challenge(request, state, step.request)
        if step.status == "success":
            recv, send = method.msk[:16], method.msk[16:32]
            auth = request.authenticator
            attributes = [
                (Attr.VENDOR_SPECIFIC, _vsa(MsAttr.MS_MPPE_RECV_KEY, encrypt_mppe_key(recv, SECRET, auth))),
                (Attr.VENDOR_SPECIFIC, _vsa(MsAttr.MS_MPPE_SEND_KEY, encrypt_mppe_key(send, SECRET, auth))),
                *eap_attributes(EapPacket.success(eap.identifier).encode()),
                *self.accept_attributes,
            ]
            return self._reply(request, Code.ACCESS_ACCEPT, attributes)
        # a wrong password (a Failure-Request held back) or any failure: reject at once
        return self._reply(request, Code.ACCESS_REJECT, eap_attributes(EapPacket.failure(eap.identifier).encode()))

    def _challenge(self, request: Packet, state: bytes, eap: EapPacket) -> bytes:
        return self._reply(request, Code.ACCESS_CHALLENGE, [(Attr.STATE, state), *eap_attributes(eap.encode())])

    def _reply(self, request: Packet, code: int, attributes: list) -> bytes:
        answer = Packet(code, attributes=[*attributes, (Attr.MESSAGE_AUTHENTICATOR, bytes(16))])
        self.answers.append(answer)
        return encode_response(answer, request, SECRET)

    def release(self) -> list[bytes]:
        held, self.held = self.held, []
        return [self._answer(verify_request(data, SECRET)) for data in held]


def _vsa(vendor_type: int, value: bytes) -> bytes:
    return struct.pack("!IBB", MICROSOFT, vendor_type, len(value) + 2) + value


class RadiusLink:
    """Carries the gateway's RadiusSend datagrams to the scripted server and its answers
    back (``Gateway.radius_received``), as the daemon's RADIUS edge does."""

    def __init__(self, net, server: ScriptedRadius, *, tries: int = 2, timeout: float = 1.0) -> None:
        self.net = net
        self.server = server
        self.client = RadiusClient([RadiusServer("test", SERVER.host, SECRET)], tries=tries, timeout=timeout, base=1.0)
        net.gateway.set_radius(self.client)
        self.sent: list[RadiusSend] = []

    def pump(self) -> int:
        """Deliver every RadiusSend the gateway emitted so far; how many there were."""
        sends = [e for e in self.net.events if isinstance(e, RadiusSend)]
        self.net.events = [e for e in self.net.events if not isinstance(e, RadiusSend)]
        for item in sends:
            assert item.server == SERVER
            self.sent.append(item)
            answer = self.server.handle(item.data)
            if answer is not None:
                self.answer(answer)
        return len(sends)

    def answer(self, data: bytes) -> None:
        self.net._route(self.net.gateway.radius_received(data, SERVER, self.net.now))

    def relay(self, client, datagrams):
        """A client request whose answer needs RADIUS: nothing comes back before the
        server answered, then the response."""
        assert self.net.send(client, datagrams) == []
        assert self.pump() == 1
        (response,) = self.net.deliver_pending(client)
        return response

    def connect(self, client):
        """IKE_SA_INIT, IKE_AUTH with our EAP-Identity round, the relayed MS-CHAPv2
        rounds and the final AUTH; the last response."""
        assert client.sa_init(self.net.transport(client)).error is None
        identity_request = self.net.exchange(client, client.auth_request())
        assert identity_request.eap.type == EapType.IDENTITY
        response = self.relay(client, client.eap_request(identity_request))
        while response.eap is not None and response.eap.code == EapCode.REQUEST:
            response = self.relay(client, client.eap_request(response))
        if response.eap is None or response.eap.code != EapCode.SUCCESS:
            return response
        return self.net.exchange(client, client.final_auth_request())


@pytest.fixture
def radius():
    return ScriptedRadius(RADIUS_USERS)


@pytest.fixture
def make_radius_net(make_network, radius):
    def make(edits=None, **kwargs):
        net = make_network(edits={**RADIUS_CONF, **(edits or {})}, **kwargs)
        return net, RadiusLink(net, radius)

    return make


def test_mschapv2_relayed_through_radius(make_radius_net, radius, caplog):
    caplog.set_level(logging.DEBUG, logger="ikegate")
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    final = link.connect(client)
    assert client.established and final.error is None
    assert client.vips and client.vips[0].startswith("192.0.2.")  # the conn's local pool
    (up,) = net.events_of(IkeSaUp)
    assert up.eap_id == "carol" and up.radius and up.radius_class == ()
    assert up.session_id == f"{net.gateway.session_prefix}-{up.unique_id}"
    assert all(c.info.session_id == up.session_id for c in net.events_of(ChildSaUp))

    first, *later = radius.requests
    assert len(later) == 2  # the MS-CHAPv2 Response, the acknowledgement of its Success-Request
    # the first Access-Request: our EAP-Identity response for the identity the client gave
    identity = decode_eap(join_eap(first))
    assert (identity.code, identity.type, identity.data) == (EapCode.RESPONSE, EapType.IDENTITY, b"carol")
    assert first.get(Attr.STATE) is None
    for request in radius.requests:
        assert request.code == Code.ACCESS_REQUEST
        assert request.get(Attr.USER_NAME) == b"carol"
        assert request.get_int(Attr.NAS_PORT_TYPE) == 5  # Virtual
        assert request.get_int(Attr.SERVICE_TYPE) == 2  # Framed
        assert request.get(Attr.NAS_IP_ADDRESS) == ipaddress.ip_address(GATEWAY_V4.host).packed
        assert request.get_str(Attr.CALLED_STATION_ID) == f"{GATEWAY_V4.host}[{GATEWAY_V4.port}]"
        assert request.get_str(Attr.CALLING_STATION_ID) == f"{client.local.host}[{client.local.port}]"
        assert request.get_str(Attr.NAS_IDENTIFIER) == "strongSwan"
        assert request.get_str(Attr.NAS_PORT_ID) == "myvpn"
        assert request.get_str(Attr.ACCT_SESSION_ID) == up.session_id
        assert len(request.get_all(Attr.MESSAGE_AUTHENTICATOR)) == 1  # checked by verify_request
    # the server's State is echoed in every later request
    assert [r.get(Attr.STATE) for r in later] == [b"state-1"] * 2
    assert "carol-password" not in caplog.text
    assert "RADIUS authentication of 'carol' successful" in caplog.text


def test_long_eap_messages_are_split_and_joined(make_radius_net, radius):
    """EAP-MSCHAPv2 Responses with a long Name exceed one 253-octet EAP-Message."""
    name = "x" * 220  # a Response of 278 octets
    radius.users[name] = "long-name-password"
    net, link = make_radius_net()
    client = net.client(STRONGSWAN, user=name, password="long-name-password")
    link.connect(client)
    assert client.established
    response = radius.requests[1]
    chunks = response.get_all(Attr.EAP_MESSAGE)
    assert len(chunks) == 2 and len(chunks[0]) == 253


def test_access_reject_is_authentication_failed_and_counted(make_radius_net, radius, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="wrong")
    final = link.connect(client)
    assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert final.eap.code == EapCode.FAILURE
    assert radius.answers[-1].code == Code.ACCESS_REJECT
    assert not client.established and net.sa_of(client) is None
    assert net.gateway.stats["auth_failures"] == 1
    assert not net.events_of(IkeSaUp)
    assert "RADIUS authentication of 'carol' failed" in caplog.text
    assert "EAP method EAP_MSCHAPV2 failed for peer" in caplog.text


def test_no_server_answering_fails_without_counting(make_radius_net, radius, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    radius.lose = 100
    assert net.send(client, client.eap_request(identity_request)) == []
    for _ in range(3):  # the first send and two retransmits, one second apart
        assert link.pump() == 1
        assert net.collect(client) == []
        net.advance(1.0)
    link.pump()
    (response,) = net.deliver_pending(client)
    assert response.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert response.eap.code == EapCode.FAILURE
    assert len(radius.requests) == 3 and len({r.authenticator for r in radius.requests}) == 1
    assert net.sa_of(client) is None
    assert net.gateway.stats["auth_failures"] == 0  # not the client's fault
    assert "no RADIUS server answered" in caplog.text


def test_lost_answer_is_retransmitted_by_the_radius_client(make_radius_net, radius):
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="dave", password="dave-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    radius.lose = 1
    assert net.send(client, client.eap_request(identity_request)) == []
    assert link.pump() == 1 and net.collect(client) == []
    net.advance(1.0)  # the RADIUS client retransmits the same Access-Request
    assert link.pump() == 1
    (challenge,) = net.deliver_pending(client)
    assert challenge.eap.type == EapType.MSCHAPV2
    assert radius.requests[0].authenticator == radius.requests[1].authenticator


def test_retransmitted_ike_auth_while_waiting_is_not_relayed_again(make_radius_net, radius, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    radius.hold = True
    assert net.send(client, client.eap_request(identity_request)) == []
    assert link.pump() == 1
    for _ in range(3):
        assert net.send(client, client.retransmit()) == []
        assert link.pump() == 0  # nothing new goes to RADIUS
    assert "waiting for RADIUS, ignored" in caplog.text
    radius.hold = False
    (answer,) = radius.release()
    link.answer(answer)
    (challenge,) = net.deliver_pending(client)
    assert challenge.eap.type == EapType.MSCHAPV2
    # the response is now cached: a retransmit gets it again, still without RADIUS
    assert net.send(client, client.retransmit()) and link.pump() == 0


def test_second_client_is_not_blocked_by_a_pending_request(make_radius_net, radius):
    net, link = make_radius_net()
    slow = net.client(WINDOWS10, user="carol", password="carol-password")
    fast = net.client(STRONGSWAN, user="dave", password="dave-password")
    assert slow.sa_init(net.transport(slow)).error is None
    identity_request = net.exchange(slow, slow.auth_request())
    radius.hold = True
    assert net.send(slow, slow.eap_request(identity_request)) == []
    assert link.pump() == 1
    radius.hold = False
    link.connect(fast)  # meanwhile another client goes all the way through RADIUS
    assert fast.established
    (held_answer,) = radius.release()
    link.answer(held_answer)
    (challenge,) = net.deliver_pending(slow)
    assert challenge.eap.type == EapType.MSCHAPV2
    response = link.relay(slow, slow.eap_request(challenge))
    response = link.relay(slow, slow.eap_request(response))
    assert response.eap.code == EapCode.SUCCESS
    assert net.exchange(slow, slow.final_auth_request()).error is None
    assert slow.established
    assert sorted(e.eap_id for e in net.events_of(IkeSaUp)) == ["carol", "dave"]


def test_answer_for_a_dead_sa_is_ignored(make_network, radius):
    net = make_network(edits=RADIUS_CONF)
    link = RadiusLink(net, radius, tries=1, timeout=20.0)  # slower than the half-open timeout
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    radius.hold = True
    assert net.send(client, client.eap_request(identity_request)) == []
    assert link.pump() == 1
    net.advance(net.runtime.settings.half_open_timeout)  # the half-open SA times out meanwhile
    assert net.sa_of(client) is None
    radius.hold = False
    (answer,) = radius.release()
    link.answer(answer)  # dropped by the RADIUS client (cancelled)
    assert net.collect(client) == []
    assert link.client.pending() == 0


def test_framed_ip_and_dns_from_radius_take_precedence(make_radius_net, radius):
    radius.accept_attributes = [
        (Attr.FRAMED_IP_ADDRESS, ipaddress.IPv4Address("10.99.0.7").packed),
        (Attr.FRAMED_IPV6_ADDRESS, ipaddress.IPv6Address("2001:db8:99::7").packed),
        (Attr.VENDOR_SPECIFIC, _vsa(MsAttr.MS_PRIMARY_DNS_SERVER, ipaddress.IPv4Address("10.99.0.53").packed)),
        (Attr.DNS_SERVER_IPV6_ADDRESS, ipaddress.IPv6Address("2001:db8:99::53").packed),
        (Attr.CLASS, b"group=staff"),
        (Attr.CLASS, b"tag-2"),
    ]
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    link.connect(client)
    assert client.established
    assert client.vips == ["10.99.0.7", "2001:db8:99::7"]
    assert client.dns[0] == "10.99.0.53" and "2001:db8:99::53" in client.dns
    assert "198.51.100.53" in client.dns  # rightdns still goes out after RADIUS's
    pools = list(net.runtime.pools)
    assert sum(p.online() for p in pools) == 0  # nothing leased from the local pools
    (up,) = net.events_of(IkeSaUp)
    assert up.virtual_ips == ("10.99.0.7", "2001:db8:99::7")
    assert up.radius_class == (b"group=staff", b"tag-2")
    assert all(c.info.radius_class == up.radius_class for c in net.events_of(ChildSaUp))
    net.send(client, client.delete_ike())
    (down,) = net.events_of(IkeSaDown)
    assert down.terminate_cause == 1 and down.session_id == up.session_id
    assert sum(p.online() for p in pools) == 0 and sum(p.offline() for p in pools) == 0  # nothing released


def test_radius_pool_only_without_framed_ip_is_address_failure(make_radius_net, radius):
    net, link = make_radius_net(edits={"rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=%radius"})
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    final = link.connect(client)
    assert NotifyType.INTERNAL_ADDRESS_FAILURE in final.notify_types
    radius.accept_attributes = [(Attr.FRAMED_IP_ADDRESS, ipaddress.IPv4Address("10.99.0.8").packed)]
    other = net.client(WINDOWS10, user="dave", password="dave-password")
    link.connect(other)
    assert other.established and other.vips == ["10.99.0.8"]


def test_framed_pool_names_a_local_pool_or_is_ignored(make_radius_net, radius, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    radius.accept_attributes = [(Attr.FRAMED_POOL, b"no-such-pool")]
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    link.connect(client)
    assert client.established and client.vips[0].startswith("192.0.2.")
    assert "RADIUS Framed-Pool 'no-such-pool' is not a local pool, ignored" in caplog.text


def test_session_timeout_deletes_the_ike_sa(make_radius_net, radius):
    radius.accept_attributes = [(Attr.SESSION_TIMEOUT, struct.pack("!I", 120))]
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    final = link.connect(client)
    assert client.established
    lifetime = final.notify(NotifyType.AUTH_LIFETIME)
    assert lifetime is not None and struct.unpack("!I", lifetime.data)[0] <= 120
    net.advance(119)
    assert not net.events_of(IkeSaDown)
    net.advance(1.5)
    (down,) = net.events_of(IkeSaDown)
    assert down.terminate_cause == 5  # Session-Timeout
    requests = [client.receive(d) for d in net.collect(client)]
    assert any(r is not None and r.exchange == ExchangeType.INFORMATIONAL and r.get(PayloadType.DELETE)
               for r in requests)


def test_access_accept_to_the_first_request_is_a_reject(make_radius_net, radius):
    radius.accept_identity = True
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    final = link.connect(client)
    assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert not client.established


def test_without_eap_identity_the_first_ike_auth_waits_for_radius(make_radius_net, radius):
    """No eap_identity: no EAP-Identity round of ours, the IKE identity goes to RADIUS in
    the first IKE_AUTH round, whose response (IDr, CERT, AUTH, EAP) waits for the answer."""
    net, link = make_radius_net(edits={"    eap_identity=%any\n": ""})
    client = net.client(WINDOWS10, user="carol", password="carol-password", idi="carol")
    assert net.exchange(client, client.sa_init_request()).error is None
    first = link.relay(client, client.auth_request())
    assert first.get(PayloadType.AUTH) is not None and first.eap.type == EapType.MSCHAPV2
    assert decode_eap(join_eap(radius.requests[0])).data == b"carol"
    response = link.relay(client, client.eap_request(first))
    response = link.relay(client, client.eap_request(response))
    assert response.eap.code == EapCode.SUCCESS
    assert net.exchange(client, client.final_auth_request()).error is None and client.established


def test_eap_radius_without_a_server_fails_with_a_clear_log(make_network, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(edits=RADIUS_CONF)
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    response = net.exchange(client, client.auth_request())
    assert response.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert "rightauth=eap-radius in conn 'myvpn' but no RADIUS server is configured" in caplog.text
    assert not [e for e in net.events if isinstance(e, RadiusSend)]


def test_cp_attributes_of_windows_clients_get_radius_dns(make_radius_net, radius):
    radius.accept_attributes = [
        (Attr.VENDOR_SPECIFIC, _vsa(MsAttr.MS_PRIMARY_DNS_SERVER, ipaddress.IPv4Address("10.99.0.53").packed)),
        (Attr.VENDOR_SPECIFIC, _vsa(MsAttr.MS_SECONDARY_DNS_SERVER, ipaddress.IPv4Address("10.99.0.54").packed)),
    ]
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    link.connect(client)
    dns4 = [str(ipaddress.IPv4Address(a.value)) for a in client.cp_reply if a.type == CfgAttr.INTERNAL_IP4_DNS]
    assert dns4[:2] == ["10.99.0.53", "10.99.0.54"]


def test_reload_secrets_keeps_users_radius_authenticated(make_radius_net):
    net, link = make_radius_net()
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    link.connect(client)
    assert client.established
    assert net.gateway.without_secret(net.runtime.secrets) == []  # carol is in no ipsec.secrets


def test_session_and_radius_state_survive_an_ike_rekey(make_radius_net, radius):
    radius.accept_attributes = [(Attr.FRAMED_IP_ADDRESS, ipaddress.IPv4Address("10.99.0.9").packed),
                                (Attr.CLASS, b"c1"), (Attr.SESSION_TIMEOUT, struct.pack("!I", 600))]
    net, link = make_radius_net()
    client = net.client(STRONGSWAN, user="carol", password="carol-password")
    link.connect(client)
    (up,) = net.events_of(IkeSaUp)
    old = net.sa_of(client)
    net.advance(10)
    assert net.exchange(client, client.rekey_ike()).error is None
    new = net.sa_of(client)
    assert new is not old and new.session_id == up.session_id and new.radius_class == (b"c1",)
    assert new.vips == ["10.99.0.9", "2001:db8::1"] and [a for a in new.vips if a in new.radius_attrs.framed_ips] == ["10.99.0.9"]  # IPv6: local pool
    assert new.expire_at == pytest.approx(old.established_at + 600)  # Session-Timeout kept
    net.exchange(client, client.delete_ike(client.retired[0]))
    net.send(client, client.delete_ike())
    (down,) = net.events_of(IkeSaDown)
    assert down.unique_id == new.unique_id and down.session_id == up.session_id
    leases = [(lease.address, lease.online) for p in net.runtime.pools for lease in p.leases()]
    assert [(str(a), online) for a, online in leases] == [("2001:db8::1", False)]  # only the pool's one released


def test_eap_start_sends_an_empty_eap_message_first(make_radius_net, radius):
    """``charon.plugins.eap-radius.eap_start = yes``: the first Access-Request carries an
    empty EAP-Message (EAP-Start) instead of our EAP-Identity response."""
    from ikegate.eap.radius_relay import RelayOptions

    net, link = make_radius_net()
    net.gateway.set_radius(link.client, RelayOptions(eap_start=True, id_prefix="vpn/"))
    client = net.client(WINDOWS10, user="carol", password="carol-password")
    assert net.exchange(client, client.sa_init_request()).error is None
    identity_request = net.exchange(client, client.auth_request())
    radius.hold = True
    assert net.send(client, client.eap_request(identity_request)) == []
    assert link.pump() == 1
    (first,) = radius.requests
    assert first.get_all(Attr.EAP_MESSAGE) == [b""]
    assert first.get(Attr.USER_NAME) == b"vpn/carol"
