"""IKEv2 redirect (RFC 5685) during IKE_SA_INIT, driven through the sans-IO gateway.

The REDIRECT responses are decoded twice: with ikegate's codec and with scapy's IKEv2
dissector (scapy.contrib.ikev2 knows REDIRECT's GW Ident Type / GW Identity / Nonce
Data layout of RFC 5685 section 9.2), an implementation independent of ours.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from scapy.contrib.ikev2 import IKEv2, IKEv2_Notify

from ikegate.config.errors import Diagnostics
from ikegate.config.strongswan_conf import load_strongswan_conf
from ikegate.ike.runtime import Settings
from ikegate.ike.tasks.ike_redirect import (
    GW_FQDN,
    GW_IPV4,
    GW_IPV6,
    RedirectError,
    RedirectPolicy,
    RedirectTarget,
    decode_redirect_data,
    encode_redirect_data,
    redirect_problems,
)
from ikegate.wire.codec import decode_message
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload

from .harness import GATEWAY_V4
from .initiator import STRONGSWAN, WINDOWS10


def policy(threshold: int = 0, *targets: tuple[str, str, int]) -> RedirectPolicy:
    return RedirectPolicy(threshold, [RedirectTarget(n, a, c) for n, a, c in targets or [("gw2", "192.0.2.2", 1)]])


def sa_init(net, client, extra=()) -> bytes:
    """Send the client's IKE_SA_INIT; the one datagram the gateway answered."""
    (reply,) = net.send(client, client.sa_init_request(extra=extra))
    return reply


def redirect_of(reply: bytes) -> tuple[int, str, bytes]:
    """(GW Ident Type, gateway, nonce) of a REDIRECT-only IKE_SA_INIT response, checked
    with ikegate's decoder and scapy's."""
    msg = decode_message(reply)
    assert msg.exchange == ExchangeType.IKE_SA_INIT and msg.response
    (notify,) = msg.payloads
    assert isinstance(notify, NotifyPayload) and notify.notify_type == NotifyType.REDIRECT
    ours = decode_redirect_data(notify.data)
    pkt = IKEv2(reply)
    theirs = pkt[IKEv2_Notify]
    # RFC 7296 3.1/3.2: the header's Next Payload is Notify (41), the notify's is none (0)
    assert pkt.next_payload == 41 and theirs.type == 16407 and theirs.next_payload == 0
    gw = theirs.gw_id.decode() if isinstance(theirs.gw_id, bytes) else theirs.gw_id
    assert (theirs.gw_id_type, gw, bytes(theirs.nonce)) == ours
    return ours


def test_redirect_over_threshold_only_notify_and_no_sa(make_network, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(redirect=policy(0, ("gw2", "192.0.2.2", 500)))
    client = net.client(STRONGSWAN)
    gw_type, gateway, nonce = redirect_of(sa_init(net, client))
    # RFC 5685 4.2: the new gateway and the Nonce Data of the client's Ni
    assert (gw_type, gateway, nonce) == (GW_IPV4, "192.0.2.2", client.nonce_i)
    assert net.gateway.sas == {} and net.gateway.half_open == set() and not net.gateway.init_index
    assert net.gateway.stats["redirected"] == 1
    assert "redirecting peer 198.51.100.10 to 192.0.2.2 (gateway 'gw2', capacity 500): 1 IKE SAs here, threshold 0" \
        in caplog.text
    # the client tries again (a retransmit): answered again, still nothing kept
    assert redirect_of(sa_init(net, client))[1] == "192.0.2.2"
    assert net.gateway.sas == {}


def test_redirect_before_invalid_ke(make_network):
    """strongSwan's default KE (curve25519) is not what the seed picks: REDIRECT comes
    first, no INVALID_KE_PAYLOAD round trip, no key exchange computed."""
    net = make_network(redirect=policy(0))
    client = net.client(STRONGSWAN)
    assert client.ke_group != 3072 and redirect_of(sa_init(net, client))[1] == "192.0.2.2"


def test_client_without_redirect_supported_is_served(make_network):
    net = make_network(redirect=policy(0))
    client = net.client(WINDOWS10)  # Windows does not send REDIRECT_SUPPORTED
    net.connect(client)
    assert client.established
    assert net.gateway.stats["redirected"] == 0


def test_below_threshold_stays_then_redirected(make_network):
    net = make_network(redirect=policy(1, ("gw3", "vpn3.example.com", 10)))
    first = net.client(STRONGSWAN)
    net.connect(first)
    assert first.established  # 1 IKE SA (its own): not more than the threshold
    second = net.client(STRONGSWAN, user="user2")
    assert redirect_of(sa_init(net, second)) == (GW_FQDN, "vpn3.example.com", second.nonce_i)
    assert len(net.gateway.sas) == 1


def test_half_open_sas_count(make_network):
    net = make_network(redirect=policy(2), cookie_threshold=0, block_threshold=0, cookie_threshold_ip=0)
    for _ in range(2):  # two half-open IKE SAs of clients that went silent after IKE_SA_INIT
        windows = net.client(WINDOWS10)
        assert decode_message(sa_init(net, windows)).get(PayloadType.SA) is not None
    assert redirect_of(sa_init(net, net.client(STRONGSWAN)))[0] == GW_IPV4


def test_weighted_round_robin_by_capacity(make_network):
    net = make_network(redirect=policy(0, ("a", "192.0.2.2", 1), ("b", "2001:db8:2::2", 3),
                                       ("off", "192.0.2.9", 0)))
    picks = [redirect_of(sa_init(net, net.client(STRONGSWAN)))[1] for _ in range(8)]
    assert Counter(picks) == {"192.0.2.2": 2, "2001:db8:2::2": 6}
    # smooth: the small one is not starved to the end of a cycle
    assert picks[:4].count("192.0.2.2") == 1 and picks[4:].count("192.0.2.2") == 1
    gw_type, _, _ = redirect_of(sa_init(net, net.client(STRONGSWAN)))
    assert gw_type in (GW_IPV4, GW_IPV6)


def test_own_address_is_never_a_target(make_network):
    net = make_network(redirect=policy(0, ("me", GATEWAY_V4.host, 5)))
    client = net.client(STRONGSWAN)
    net.connect(client)
    assert client.established


def test_redirected_client_is_not_redirected_again(make_network, caplog):
    caplog.set_level(logging.INFO, logger="ikegate")
    net = make_network(redirect=policy(0))
    # what strongSwan sends after a redirect: REDIRECTED_FROM (no nonce) instead of REDIRECT_SUPPORTED
    client = net.client(STRONGSWAN.with_(redirect_supported=False))
    came_from = NotifyPayload(notify_type=NotifyType.REDIRECTED_FROM, data=encode_redirect_data("10.0.0.1"))
    reply = sa_init(net, client, extra=[came_from])
    assert decode_message(reply).notify(NotifyType.REDIRECT) is None
    assert "client got redirected here from 10.0.0.1" in caplog.text
    assert net.gateway.stats["redirected"] == 0


def test_unacceptable_proposal_wins_over_redirect(make_network):
    net = make_network(redirect=policy(0))
    client = net.client(STRONGSWAN.with_(ike="camellia128-md5-modp768"))
    msg = decode_message(sa_init(net, client))
    assert [p.notify_type for p in msg.payloads] == [NotifyType.NO_PROPOSAL_CHOSEN]


# -- the notify data ----------------------------------------------------------------------------


def test_notify_data_layout_matches_scapy():
    """Our encoding of each GW Ident Type, built into a notify by scapy and read back."""
    nonce = bytes(range(32))
    for address, gw_type in (("192.0.2.2", GW_IPV4), ("2001:db8::2", GW_IPV6), ("vpn3.example.com", GW_FQDN)):
        data = encode_redirect_data(address, nonce)
        built = bytes(IKEv2_Notify(type=16407, gw_id_type=gw_type, gw_id=address, nonce=nonce))
        assert built[8:] == data
        assert decode_redirect_data(data) == (gw_type, address, nonce)
    # REDIRECTED_FROM: no nonce
    assert decode_redirect_data(encode_redirect_data("10.0.0.1")) == (GW_IPV4, "10.0.0.1", b"")


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x04\x0a\x00", b"\x01\x03\x0a\x00\x00", b"\x04\x01a",
                                  b"\x03\x00", b"\x03\x01\xff", b"\x02\x04\x00\x00\x00\x00"])
def test_malformed_redirect_data(data):
    with pytest.raises(RedirectError):
        decode_redirect_data(data)


@pytest.mark.parametrize("address", ["", "-bad.example", "a..b", "x" * 64 + ".example", "under_score.example"])
def test_unsendable_addresses(address):
    with pytest.raises(RedirectError):
        encode_redirect_data(address)


# -- configuration ------------------------------------------------------------------------------


def conf_of(tmp_path, text: str):
    path = tmp_path / "strongswan.conf"
    path.write_text(text)
    return load_strongswan_conf(path), str(path)


def test_settings_from_strongswan_conf(tmp_path):
    conf, _ = conf_of(tmp_path, """
ikegate {
    redirect {
        threshold = 100
        gateways {
            gw2 { address = 192.0.2.2
                  capacity = 500 }
            gw3 {
                address = vpn3.example.com
                capacity = 1000
            }
        }
    }
}
""")
    settings = Settings.from_strongswan_conf(conf)
    rule = settings.redirect
    assert rule.threshold == 100
    assert [(t.name, t.address, t.capacity) for t in rule.targets] == [
        ("gw2", "192.0.2.2", 500), ("gw3", "vpn3.example.com", 1000)]
    assert redirect_problems(conf) == []
    assert rule.choose(100) is None and rule.choose(101).name == "gw3"


def test_redirect_off_without_gateways(tmp_path):
    assert Settings.from_strongswan_conf(conf_of(tmp_path, "charon { }\n")[0]).redirect is None
    assert Settings().redirect is None


def test_bad_values_are_reported_and_safe(tmp_path):
    conf, path = conf_of(tmp_path, """
ikegate {
    redirect {
        threshold = 1OO
        gateways {
            nowhere { capacity = 3 }
            bad { address = not_a_host
                  capacity = 1 }
            heavy { address = 192.0.2.3
                    capacity = lots }
            ok { address = 192.0.2.4 }
        }
    }
}
""")
    problems = redirect_problems(conf)
    assert problems == [
        "ikegate.redirect.threshold = 1OO: not a number >= 0, redirect is off",
        "ikegate.redirect.gateways.nowhere: no address, gateway ignored",
        "ikegate.redirect.gateways.bad.address = not_a_host: 'not_a_host' is neither an IP address nor "
        "a host name, gateway ignored",
        "ikegate.redirect.gateways.heavy.capacity = lots: not a number >= 0, gateway ignored",
    ]
    # a typo in the threshold must not redirect everybody: redirect is off
    assert Settings.from_strongswan_conf(conf).redirect is None
    diagnostics = Diagnostics()
    conf.check(diagnostics, path)
    text = "\n".join(str(d) for d in diagnostics)
    assert f"{path}" in text and "threshold = 1OO: not a number >= 0, redirect is off" in text
    assert "the default 0 is used" not in text  # the generic int warning would contradict it


def test_threshold_without_gateways_is_reported(tmp_path):
    conf, _ = conf_of(tmp_path, "ikegate {\n  redirect {\n    threshold = 5\n  }\n}\n")
    assert redirect_problems(conf) == [
        "ikegate.redirect.threshold is set but ikegate.redirect.gateways lists no gateway"]
    assert Settings.from_strongswan_conf(conf).redirect is None
