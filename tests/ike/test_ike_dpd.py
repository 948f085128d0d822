"""Dead peer detection (strongswan-semantics.md 2.8): after ``dpddelay`` without anything
received the gateway sends an empty INFORMATIONAL, retransmits it on strongSwan's
schedule (timeout * base**n, n = 0..tries), and with ``dpdaction=clear`` deletes the SAs,
running down-client and taking the leases offline."""

from __future__ import annotations

import pytest

from ikegate.ike.events import ChildSaDown, IkeSaDown
from ikegate.wire.codec import decode_message
from ikegate.wire.constants import ExchangeType

from .initiator import WINDOWS10

DPD = {"dpddelay=2400s": "dpddelay=5s"}


def _requests_to(net, client) -> list[float]:
    """Times at which the gateway sent (new or retransmitted) requests to the client."""
    return [t for t, send in net.sent_log if send.dst == client.local and not decode_message(send.data).response]


@pytest.fixture
def dpd_net(make_network):
    net = make_network(edits=DPD)
    net.sent_log = []
    original = net._route

    def route(outputs):
        from ikegate.ike.events import Send

        net.sent_log.extend((net.now, o) for o in outputs if isinstance(o, Send))
        original(outputs)

    net._route = route
    return net


def test_silent_peer_is_cleared_on_strongswans_schedule(dpd_net):
    net = dpd_net
    client = net.client(WINDOWS10)
    net.connect(client)
    up_at = net.now
    net.advance(4.9)
    assert _requests_to(net, client) == []
    net.advance(0.2)  # dpddelay reached: an empty INFORMATIONAL
    (first,) = _requests_to(net, client)
    sent = net.collect(client)
    msg = decode_message(sent[-1])
    assert msg.exchange == ExchangeType.INFORMATIONAL and not msg.response
    net.advance(300)
    times = [t - up_at for t in _requests_to(net, client)]
    # 1 + 5 retransmits at 4, 7.2, 12.96, 23.3, 42.0 s intervals, then 75.6 s until giving up
    assert len(times) == 6
    gaps = [round(b - a, 1) for a, b in zip(times, times[1:])]
    assert gaps == [4.0, 7.2, 13.0, 23.3, 42.0]
    assert net.sa_of(client) is None
    (down,) = net.events_of(IkeSaDown)
    assert down.reason == "peer not responding"
    assert net.events_of(ChildSaDown)
    total = 5 + sum(4 * 1.8**n for n in range(6))
    assert net.now - up_at >= total  # about 170 s: DPD delay plus the whole schedule


def test_answering_peer_stays(dpd_net):
    net = dpd_net
    client = net.client(WINDOWS10)
    net.connect(client)
    for _ in range(5):
        net.advance(5.1)
        for data in net.collect(client):
            received = client.receive(data)
            if received is not None and not received.is_response:
                net.send(client, client.answer(received))
    assert net.sa_of(client).state == "ESTABLISHED"
    assert len(_requests_to(net, client)) == 5


def test_traffic_from_the_peer_postpones_dpd(dpd_net):
    net = dpd_net
    client = net.client(WINDOWS10)
    net.connect(client)
    for _ in range(4):
        net.advance(3)
        net.exchange(client, client.informational())  # the client's own liveness check
    assert _requests_to(net, client) == []


def test_dpdaction_none_sends_nothing(make_network):
    net = make_network(edits={**DPD, "dpdaction=clear": "dpdaction=none"})
    client = net.client(WINDOWS10)
    net.connect(client)
    net.advance(1000)
    assert net.sa_of(client).state == "ESTABLISHED"
