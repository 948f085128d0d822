"""Floods against the engine, in memory (``ikegate.ike.throttle`` and the gateway's
defences): failed logins held off per source, IKE_SA_INITs from thousands of spoofed
sources, Encrypted Fragments (RFC 7383) for unknown SAs and for a half-open SA of the
flooder, and the log lines all of this may cost.

The clock is the harness's: hold-offs and windows are crossed with ``net.advance``.
"""

from __future__ import annotations

import logging
import random
import struct
from dataclasses import replace

import pytest

from ikegate.config.strongswan_conf import load_strongswan_conf
from ikegate.ike.events import Endpoint
from ikegate.ike.runtime import Settings
from ikegate.ike.throttle import SA_LOG_BURST, AuthThrottle, LimitedSaLogger, LogBucket
from ikegate.wire.constants import EapCode, EapType, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload, VendorIdPayload

from .harness import GATEWAY_V4, GATEWAY_V6
from .initiator import STRONGSWAN, WINDOWS10

GUESSER = "198.51.100.66"
RETRY_DELAY = 2.0  # the MSCHAPv2 retry delay (ikegate.eap.mschapv2.RETRY_DELAY)
HOLDOFF = "failed authentications within"  # in the line that starts a hold-off


def settings(**changes) -> Settings:
    return replace(Settings(), **changes)


# ------------------------------------------------------------------------------ AuthThrottle alone


def test_limit_failures_within_the_window_hold_the_source_off():
    throttle = AuthThrottle(settings(auth_failure_limit=3, auth_failure_window=60, auth_failure_block=30))
    assert [throttle.failed("192.0.2.7", t) for t in (0, 10, 20)] == [False, False, True]
    assert throttle.held_off("192.0.2.7", 20) == 30
    assert throttle.held_off("192.0.2.7", 49.5) == pytest.approx(0.5)
    assert throttle.held_off("192.0.2.8", 20) is None  # another source
    assert throttle.held_off("192.0.2.7", 50) is None
    # a new start after the hold-off: two more failures are not enough
    assert [throttle.failed("192.0.2.7", t) for t in (51, 52)] == [False, False]
    assert throttle.held_off("192.0.2.7", 52) is None
    assert throttle.stats == {"auth_failures": 5, "auth_holdoffs": 1}


def test_failures_during_a_hold_off_do_not_extend_it():
    """IKE SAs that were under way when the hold-off began may still fail: counted, but
    the hold-off ends when it was due."""
    throttle = AuthThrottle(settings(auth_failure_limit=2, auth_failure_window=60, auth_failure_block=30))
    throttle.failed("192.0.2.7", 0)
    assert throttle.failed("192.0.2.7", 1)
    assert not throttle.failed("192.0.2.7", 5)
    assert throttle.held_off("192.0.2.7", 31) is None


def test_failures_spread_wider_than_the_window_never_hold_off():
    throttle = AuthThrottle(settings(auth_failure_limit=3, auth_failure_window=60, auth_failure_block=30))
    assert not any(throttle.failed("192.0.2.7", t) for t in range(0, 600, 31))
    assert throttle.held_off("192.0.2.7", 600) is None


def test_ipv6_sources_count_per_64():
    throttle = AuthThrottle(settings(auth_failure_limit=3))
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        throttle.failed(host, 0)
    assert throttle.held_off("2001:db8:1:2::99", 1) is not None
    assert throttle.held_off("2001:db8:1:3::1", 1) is None
    assert AuthThrottle.source_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert AuthThrottle.source_of("::ffff:192.0.2.7") == "192.0.2.7"  # an IPv4-mapped address is IPv4
    assert AuthThrottle.source_of("192.0.2.7") == "192.0.2.7"


def test_limit_zero_turns_the_throttle_off():
    throttle = AuthThrottle(settings(auth_failure_limit=0))
    assert not any(throttle.failed("192.0.2.7", t) for t in range(100))
    assert throttle.held_off("192.0.2.7", 100) is None
    assert throttle.stats["auth_failures"] == 100 and len(throttle) == 0


def test_the_table_is_bounded_and_swept():
    throttle = AuthThrottle(settings(auth_failure_limit=3, auth_failure_window=60), max_sources=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0)
    assert len(throttle) == 100  # the oldest are forgotten
    throttle.prune(61)
    assert len(throttle) == 0  # nothing left to remember once the window is over


def test_a_reload_takes_new_thresholds():
    throttle = AuthThrottle(settings(auth_failure_limit=5))
    throttle.failed("192.0.2.7", 0)
    throttle.configure(settings(auth_failure_limit=2))
    assert throttle.failed("192.0.2.7", 1)


def test_hold_offs_are_logged_at_a_bounded_rate(caplog):
    """50 sources held off at once: 20 lines, then one a second saying how many went
    unlogged."""
    caplog.set_level(logging.INFO, logger="ikegate")
    throttle = AuthThrottle(settings(auth_failure_limit=1, auth_failure_block=300))
    for i in range(50):
        assert throttle.failed(f"192.0.2.{i}", 0, identity="user1")
    assert caplog.text.count(HOLDOFF) == 20
    assert throttle.failed("192.0.2.200", 1)
    lines = [r.getMessage() for r in caplog.records if HOLDOFF in r.getMessage()]
    assert len(lines) == 21
    assert lines[0] == ("192.0.2.0: 1 failed authentications within 300s (the last as 'user1'), "
                        "its IKE_SA_INITs are dropped for 300s")
    assert lines[-1].endswith("(30 more hold-offs not logged)")
    assert throttle.stats["auth_holdoffs"] == 51


def test_identities_are_logged_printable(caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    throttle = AuthThrottle(settings(auth_failure_limit=1))
    throttle.failed("192.0.2.7", 0, identity="evil\nFeb 30 00[IKE] forged line")
    assert "evil?Feb 30" in caplog.text


def test_log_bucket():
    bucket = LogBucket(3, 1.0, now=0)
    assert [bucket.take(0) for _ in range(5)] == [0, 0, 0, None, None]
    assert bucket.take(0.5) is None
    assert bucket.take(1.0) == 3  # one token back after a second: the held-back lines are reported
    assert not bucket.full(1.0) and bucket.full(4.0)


# ------------------------------------------------------------------------------ settings


def test_settings_from_strongswan_conf(tmp_path):
    path = tmp_path / "strongswan.conf"
    path.write_text("charon {\n  auth_failure_limit = 3\n  auth_failure_window = 2m\n  auth_failure_block = 45s\n}\n")
    s = Settings.from_strongswan_conf(load_strongswan_conf(path))
    assert (s.auth_failure_limit, s.auth_failure_window, s.auth_failure_block) == (3, 120.0, 45.0)
    defaults = Settings.from_strongswan_conf(None)
    assert (defaults.auth_failure_limit, defaults.auth_failure_window, defaults.auth_failure_block) == (10, 300, 300)
    path.write_text("charon {\n  auth_failure_window = soon\n}\n")
    assert Settings.from_strongswan_conf(load_strongswan_conf(path)).auth_failure_window == 300


# ------------------------------------------------------------------------------ failed logins, end to end


def start_eap(net, client):
    """IKE_SA_INIT (with a COOKIE round if asked), IKE_AUTH 1, the EAP-Identity round:
    the client holds an MS-CHAPv2 challenge."""
    response = client.sa_init(net.transport(client))
    assert response is not None and client.keys is not None, response
    identity_request = net.exchange(client, client.auth_request())
    assert identity_request.eap is not None, identity_request
    challenge = net.exchange(client, client.eap_request(identity_request))
    assert challenge.eap.type == EapType.MSCHAPV2 and challenge.eap.data[0] == 1  # Challenge


def fail_login(net, client, kind: str = "wrong-password"):
    """One failed connection of ``client`` (its IKE SA ends in AUTHENTICATION_FAILED): one
    wrong password, then the user cancels (or a wrong MSK in the final AUTH)."""
    start_eap(net, client)
    if kind == "wrong-msk":
        success_request = net.exchange(client, client.eap_request())
        assert net.exchange(client, client.eap_request(success_request)).eap.code == EapCode.SUCCESS
        client.eap_peer.msk = bytes(64)
        final = net.exchange(client, client.final_auth_request())
    else:
        client.eap_peer.give_up = True  # the user cancels after the first Failure-Request
        assert net.send(client, client.eap_request()) == []  # held back RETRY_DELAY
        net.advance(RETRY_DELAY)
        (failure_request,) = net.deliver_pending(client)
        assert failure_request.eap.data[0] == 4  # Failure-Request
        final = net.exchange(client, client.eap_request())
    assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert net.sa_of(client) is None


def guesser(net, port: int, password: str = "wrong", user: str = "user1", host: str = GUESSER, **kw):
    return net.client(WINDOWS10, user=user, password=password, host=host, port=port, **kw)


def test_failed_logins_hold_their_source_off_and_nobody_else(make_network, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(auth_failure_limit=3, auth_failure_window=60, auth_failure_block=120)
    for port in (5001, 5002, 5003):
        fail_login(net, guesser(net, port))
    assert net.gateway.stats["auth_failures"] == 3 and net.gateway.stats["auth_holdoffs"] == 1
    (line,) = [r.getMessage() for r in caplog.records if HOLDOFF in r.getMessage()]
    assert line.startswith(f"{GUESSER}: 3 failed authentications within 60s (the last as 'user1')")
    assert "wrong" not in caplog.text

    # held off since the third wrong password, before the client gave up
    left = net.gateway.auth_throttle.held_off(GUESSER, net.now)
    assert left == pytest.approx(120 - RETRY_DELAY)

    # the guesser's next IKE_SA_INIT, from any port and even with the right password: no answer
    for port in (5004, 500):
        late = guesser(net, port, password="password1")
        assert net.send(late, late.sa_init_request()) == []
    assert net.gateway.stats["auth_blocked"] == 2
    assert not net.gateway.half_open

    # the same user from elsewhere, and another user, connect at once
    for user in ("user1", "user2"):
        other = net.client(STRONGSWAN, user=user)
        net.connect(other)
        assert other.established, user

    # the hold-off ends: the guesser's address is served again
    net.advance(left - 0.5)
    early = guesser(net, 5005, password="password1")
    assert net.send(early, early.sa_init_request()) == []
    net.advance(0.5)
    back = guesser(net, 5006, password="password1")
    net.connect(back)
    assert back.established


@pytest.mark.parametrize("kind", ["wrong-password", "unknown-user", "wrong-msk"])
def test_each_kind_of_failure_counts(make_network, kind):
    net = make_network(auth_failure_limit=1)
    user = "nobody" if kind == "unknown-user" else "user1"
    password = "password1" if kind == "wrong-msk" else "wrong"
    fail_login(net, guesser(net, 5001, password=password, user=user), kind)
    assert net.gateway.stats["auth_failures"] == 1
    assert net.gateway.auth_throttle.held_off(GUESSER, net.now) > 290


def test_every_wrong_password_counts(make_network):
    """A client that tries three passwords in one EAP-MSCHAPv2 conversation (Windows
    asks the user again) has made three failures."""
    net = make_network(auth_failure_limit=3)
    client = guesser(net, 5001)
    start_eap(net, client)
    for attempt in (1, 2, 3):
        assert net.send(client, client.eap_request()) == []  # each answer held back RETRY_DELAY
        net.advance(RETRY_DELAY)
        (answer,) = net.deliver_pending(client)
    assert answer.notify_types == [NotifyType.AUTHENTICATION_FAILED] and answer.eap.code == EapCode.FAILURE
    assert net.gateway.stats["auth_failures"] == 3 and net.gateway.stats["auth_holdoffs"] == 1


def test_a_client_aborting_after_a_wrong_password_made_one_failure(net):
    """strongSwan's client answers a Failure-Request with an INFORMATIONAL carrying
    AUTHENTICATION_FAILED: its wrong password was counted when it was checked."""
    client = guesser(net, 5001)
    start_eap(net, client)
    assert net.send(client, client.eap_request()) == []
    net.advance(RETRY_DELAY)
    net.deliver_pending(client)
    net.exchange(client, client.informational([NotifyPayload(notify_type=NotifyType.AUTHENTICATION_FAILED)]))
    assert net.sa_of(client) is None
    assert net.gateway.stats["auth_failures"] == 1


def test_an_sa_under_way_when_the_hold_off_starts_is_refused_unchecked(make_network):
    """An IKE SA of the guesser that got past IKE_SA_INIT before the hold-off: its next
    IKE_AUTH request gets AUTHENTICATION_FAILED, the right password notwithstanding, and
    no Success-Request (the EAP response is not even looked at)."""
    net = make_network(auth_failure_limit=2)
    waiting = guesser(net, 5000, password="password1")
    start_eap(net, waiting)
    for port in (5001, 5002):
        fail_login(net, guesser(net, port))
    response = net.exchange(waiting, waiting.eap_request())
    assert response.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert response.eap is None
    assert net.sa_of(waiting) is None and not waiting.established
    # refused: the second guesser's Failure-Response (the hold-off began with its wrong
    # password) and the waiting SA's right one
    assert net.gateway.stats["auth_refused"] == 2


def test_established_sas_of_a_held_off_source_keep_working(make_network):
    net = make_network(auth_failure_limit=2)
    legit = net.client(STRONGSWAN, user="user2", host=GUESSER, port=4999)
    net.connect(legit)
    assert legit.established
    for port in (5001, 5002):
        fail_login(net, guesser(net, port))
    assert net.gateway.auth_throttle.held_off(GUESSER, net.now) is not None
    assert net.exchange(legit, legit.informational()) is not None  # liveness check answered
    rekeyed = net.exchange(legit, legit.create_child_sa())
    assert rekeyed.get(PayloadType.SA) is not None  # a CHILD SA rekey too
    (sa,) = net.status()
    assert sa["state"] == "ESTABLISHED" and sa["remote"]["eap_id"] == "user2"


def test_ipv6_guessers_are_held_off_per_64(make_network):
    net = make_network(auth_failure_limit=2)
    for n, host in enumerate(("2001:db8:1:2::a", "2001:db8:1:2::b")):
        fail_login(net, guesser(net, 5001 + n, host=host, server=GATEWAY_V6))
    same_64 = guesser(net, 5003, host="2001:db8:1:2::c", password="password1", server=GATEWAY_V6)
    assert net.send(same_64, same_64.sa_init_request()) == []
    other_64 = guesser(net, 5004, host="2001:db8:1:3::c", password="password1", server=GATEWAY_V6)
    net.connect(other_64)
    assert other_64.established


def test_limit_zero_never_holds_off(make_network):
    net = make_network(auth_failure_limit=0)
    for port in range(5001, 5007):
        fail_login(net, guesser(net, port))
    back = guesser(net, 5010, password="password1")
    net.connect(back)
    assert back.established and net.gateway.stats["auth_failures"] == 6


# ------------------------------------------------------------------------------ IKE_SA_INIT floods


def test_sa_init_flood_from_spoofed_sources(net):
    """3000 IKE_SA_INITs, each from its own address (none will ever answer): COOKIEs
    from the 31st on, half-open state stays at cookie_threshold, and a client that
    echoes its COOKIE connects in the middle of it."""
    template = net.client(WINDOWS10).sa_init_request()[0]
    legit = net.client(STRONGSWAN, user="user2")
    answers = []
    for i in range(3000):
        src = Endpoint(f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}", 500)
        forged = i.to_bytes(8, "big") + template[8:]
        answers += net.gateway.receive(forged, src, GATEWAY_V4, net.now)
        if i == 1500:
            net.connect(legit)
            assert legit.established and legit.cookie is not None
    assert len(answers) == 3000
    assert net.gateway.stats["cookies_sent"] == 2970 + 1  # and one for the legitimate client
    assert len(net.gateway.half_open) == 30 and len(net.gateway.init_index) == 31
    # the forged SAs time out, the cookies are not needed any longer
    net.advance(30)
    assert not net.gateway.half_open and [sa["state"] for sa in net.status()] == ["ESTABLISHED"]
    late = net.client(WINDOWS10, user="user3")
    net.connect(late)
    assert late.established and late.cookie is None


def _break_first_proposal(request: bytes, sa_offset: int) -> bytes:
    """``request`` with the transform count of the SA payload's first proposal (at
    ``sa_offset``) off by one: the payload chain holds, the SA payload does not parse."""
    broken = bytearray(request)
    broken[sa_offset + 4 + 7] += 1  # SA header (4), then the proposal's "Num Transforms" (RFC 7296 3.3.1)
    return bytes(broken)


def test_with_cookies_required_a_request_is_challenged_before_it_is_parsed(make_network):
    """While COOKIEs are required, a new IKE_SA_INIT is answered from its header, its
    first payload and its Nonce (as strongSwan's receiver checks the cookie before the
    parser runs): an SA payload that does not parse earns a COOKIE, and INVALID_SYNTAX
    once the COOKIE comes back with it; a payload chain that does not hold together
    gets INVALID_SYNTAX at once."""
    net = make_network(cookie_threshold=1)
    first = net.client(WINDOWS10)
    assert first.sa_init(net.transport(first)).get(PayloadType.SA) is not None
    client = net.client(WINDOWS10)
    broken = _break_first_proposal(client.sa_init_request()[0], 28)
    (answer,) = net.send(client, [broken])
    challenge = client.receive(answer)
    assert challenge.notify_types == [NotifyType.COOKIE] and client.cookie is not None
    with_cookie = client.sa_init_request()[0]
    cookie_len = struct.unpack_from("!H", with_cookie, 28 + 2)[0]
    (answer,) = net.send(client, [_break_first_proposal(with_cookie, 28 + cookie_len)])
    assert client.receive(answer).notify_types == [NotifyType.INVALID_SYNTAX]
    # a payload length running past the end: no COOKIE for that
    other = net.client(WINDOWS10)
    truncated = bytearray(other.sa_init_request()[0])
    struct.pack_into("!H", truncated, 28 + 2, len(truncated))
    (answer,) = net.send(other, [bytes(truncated)])
    assert other.receive(answer).notify_types == [NotifyType.INVALID_SYNTAX]
    assert len(net.gateway.sas) == 1


def test_a_cookie_echoing_flood_is_bounded_by_init_limit_half_open(make_network):
    """A flooder that sees the answers and echoes the COOKIEs (from 300 addresses) is
    not stopped by them; ``charon.init_limit_half_open`` bounds its half-open SAs, and
    each address stays within block_threshold."""
    net = make_network(init_limit_half_open=100)
    for n in range(40):
        for port in range(500, 507):
            flooder = net.client(WINDOWS10, host=f"10.200.0.{n}", port=port)
            flooder.sa_init(net.transport(flooder))
    assert len(net.gateway.half_open) == 100
    assert max(net.gateway.half_open_by_ip.values()) == net.runtime.settings.block_threshold
    assert net.gateway.stats["blocked"] > 0 and net.gateway.stats["limited"] > 0


# ------------------------------------------------------------------------------ fragment floods


def skf(spi_i: bytes, spi_r: bytes, rng: random.Random, *, number: int = 1, total: int = 2, mid: int = 1,
        size: int = 256) -> bytes:
    """An IKE_AUTH request carrying an Encrypted Fragment payload (RFC 7383 2.5) of
    ``size`` random bytes (IV, ciphertext and ICV that no key opens)."""
    body = rng.randbytes(size)
    first = PayloadType.IDi if number == 1 else PayloadType.NONE
    payload = struct.pack("!BBHHH", first, 0, 8 + len(body), number, total) + body
    header = spi_i + spi_r + bytes((PayloadType.SKF, 0x20, ExchangeType.IKE_AUTH, 0x08))
    return header + struct.pack("!II", mid, 28 + len(payload)) + payload


def test_fragments_for_unknown_sas(net, caplog):
    """5000 Encrypted Fragments for IKE SAs that do not exist, from 5000 addresses:
    dropped unanswered, the log takes 20 lines and then one a second."""
    caplog.set_level(logging.INFO, logger="ikegate")
    rng = random.Random(8)
    out = []
    for i in range(5000):
        src = Endpoint(f"10.101.{i // 256}.{i % 256}", 4500)
        data = skf(rng.randbytes(8), rng.randbytes(8), rng, number=1 + i % 3, total=3)
        out += net.gateway.receive(data, src, GATEWAY_V4._replace(port=4500), net.now)
    assert out == [] and not net.gateway.sas
    assert net.gateway.stats["dropped"] == 5000
    assert caplog.text.count("for unknown IKE SA") == 20
    legit = net.client(WINDOWS10)
    net.connect(legit)
    assert legit.established


def test_garbage_fragments_for_the_flooders_half_open_sa(net, caplog):
    """The flooder sets up a half-open SA and sends 5000 fragments for it that fail
    their integrity check: nothing answered, nothing kept, and the SA logs 20 lines of
    it, then one a second (a normal client meanwhile logs in full)."""
    caplog.set_level(logging.INFO, logger="ikegate")
    flooder = net.client(WINDOWS10, host=GUESSER)
    assert flooder.sa_init(net.transport(flooder)).get(PayloadType.SA) is not None
    rng = random.Random(9)
    legit = net.client(STRONGSWAN, user="user2")
    for i in range(5000):
        data = skf(flooder.spi_i, flooder.spi_r, rng, number=1 + i % 4, total=4)
        assert net.send(flooder, [data]) == []
        if i == 2500:
            net.connect(legit)
            assert legit.established
        if i % 1000 == 999:
            net.advance(1)
    sa = net.sa_of(flooder)
    assert sa is not None and sa.state == "CONNECTING"
    assert sa.reassembly is None or not sa.reassembly.pieces  # nothing kept
    lines = [r.getMessage() for r in caplog.records if "integrity check of IKE_AUTH request 1 failed" in r.getMessage()]
    assert SA_LOG_BURST <= len(lines) <= SA_LOG_BURST + 5
    assert lines[-1].endswith("more such lines not logged)")
    # the other client's lines are all there
    assert sum(f"IKE_SA myvpn[{net.sa_of(legit).unique_id}] established" in r.getMessage() for r in caplog.records) == 1
    net.advance(30)
    assert net.sa_of(flooder) is None  # the half-open timeout still applies


def test_valid_fragments_that_never_complete_hold_at_most_max_packet(net):
    """The flooder, with the keys of its half-open SA, sends properly sealed fragments
    of ever new messages, never the last one: the SA holds at most charon.max_packet
    bytes of them, and a complete message still goes through afterwards."""
    flooder = net.client(WINDOWS10, host=GUESSER, fragment_size=300)
    assert flooder.sa_init(net.transport(flooder)).get(PayloadType.SA) is not None
    sa = net.sa_of(flooder)
    max_packet = net.runtime.settings.max_packet
    held = 0
    for n in range(60):
        big = [VendorIdPayload(data=bytes(3000 + 150 * n))]
        fragments = flooder.seal(ExchangeType.IKE_AUTH, big, message_id=1, fragment_size=576 + n)
        assert len(fragments) > 2
        assert net.send(flooder, fragments[:-1]) == []
        if sa.reassembly is not None:
            held = max(held, sa.reassembly.size)
    assert 0 < held <= max_packet
    # the real IKE_AUTH request, fragmented too, is reassembled and answered
    request = flooder.auth_request()
    assert len(request) > 1
    response = net.exchange(flooder, request)
    assert response is not None and response.eap is not None


def test_a_normal_handshake_is_never_limited(net, caplog):
    caplog.set_level(1, logger="ikegate")
    client = net.client(STRONGSWAN)
    net.connect(client)
    assert client.established
    assert isinstance(net.sa_of(client).log, LimitedSaLogger)
    assert "not logged" not in caplog.text
