"""Bugs the fuzzers found, one test each, written out by hand from the fuzz input (both
fixed: a selector ending below its start divided by zero when printed; the answer to the
gateway's own CHILD rekey could widen the client's selectors).  While a found bug is open,
its test is ``xfail(strict=True)`` and ``engine_checks.KNOWN_BUGS`` lets long fuzz runs go
past it."""

from __future__ import annotations

import ipaddress

from ikegate.ike.events import ChildSaUp
from ikegate.ike.sa import ESTABLISHED
from ikegate.wire.codec import encode_payloads
from ikegate.wire.constants import ExchangeType, NotifyType
from ikegate.wire.payloads import TrafficSelector, TsPayload

from .engine_target import STEPS, Header, Session, answer_request, deterministic, fuzz_env, sealed_message

#: IKE_SA_INIT .. AUTH(MSK): the client is established after these steps.
HANDSHAKE = 6


def established_session() -> Session:
    session = Session(fuzz_env())
    for _, play in STEPS[:HANDSHAKE]:
        session.play(play)
    assert session.client.established
    return session


def backwards_selector() -> TrafficSelector:
    """10.0.0.1 .. 10.0.0.0: an IPv4 range whose end is its start minus one."""
    return TrafficSelector(start_addr=ipaddress.IPv4Address("10.0.0.1"),
                           end_addr=ipaddress.IPv4Address("10.0.0.0"))


def test_selector_ending_below_its_start_gets_ts_unacceptable():
    """Found by fuzz_engine (mode struct, TrafficSelector turned around): a client's
    CREATE_CHILD_SA whose only TSi range ends one below its start.  Nothing can be
    narrowed from it: the answer is TS_UNACCEPTABLE and the IKE SA stays up."""
    env = fuzz_env()
    with deterministic(env):
        session = established_session()
        session.client.create_child_sa(rekey=False)  # a new CHILD SA: SA Ni TSi TSr ...
        spec = session.client.last_spec
        payloads = [TsPayload(selectors=[backwards_selector()]) if isinstance(p, TsPayload) and not p.responder
                    else p for p in spec.payloads]  # ... with TSi = [10.0.0.1 .. 10.0.0.0]
        first, chain = encode_payloads(payloads)
        (answer,) = session.send([sealed_message(spec, Header.of(spec), first, chain)])
        assert answer.notify(NotifyType.TS_UNACCEPTABLE) is not None
        assert [sa.state for sa in session.gateway.sas.values()] == [ESTABLISHED]
        session.finish()


def test_answer_to_our_child_rekey_cannot_widen_the_client_selectors():
    """Found by the selector invariant of engine_checks (ChildSaUp beyond the virtual
    IPs): when the gateway rekeys a CHILD SA, the client answers with TSr = 0.0.0.0/0
    instead of its virtual IP.  The new CHILD SA must still cover only the client's
    virtual IPs on its side (or the rekey fails); never all of IPv4."""
    env = fuzz_env()
    with deterministic(env):
        session = established_session()
        client = session.client
        request = session.next_gateway_request()
        while request is not None and request.exchange != ExchangeType.CREATE_CHILD_SA:
            session.send(answer_request(client, request))
            request = session.next_gateway_request()
        assert request is not None, "the gateway did not rekey its CHILD SA"
        everything = TsPayload(selectors=[TrafficSelector()], responder=True)
        real_answer = client.answer
        client.answer = lambda req, payloads=(): real_answer(
            req, [everything if isinstance(p, TsPayload) and p.responder else p for p in payloads])
        before = len(session.net.events_of(ChildSaUp))
        session.send(answer_request(client, request))
        vips = {ipaddress.ip_address(v) for v in client.vips}
        for event in session.net.events_of(ChildSaUp)[before:]:
            for sel in event.info.remote_ts:
                assert sel.start == sel.end and sel.start_address in vips, f"installed {sel}"
        session.finish()
