"""Proposal choice (the client's first acceptable proposal, in the client's algorithm
order, as the seed wants), KE group correction, refusals of the IKE SA and of the
CHILD SA, and traffic selector narrowing."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from ikegate.ike.events import ChildSaUp, IkeSaUp
from ikegate.wire.constants import DhId, ExchangeType, NotifyType, PayloadType, TsType
from ikegate.wire.payloads import TrafficSelector

from .initiator import STRONGSWAN, WINDOWS7, WINDOWS10


@pytest.mark.parametrize(
    "profile, expected, invalid_ke",
    [
        # Windows 10: one proposal aes256-aes128-3des x sha1-sha256-sha384 x modp1024
        (WINDOWS10, "IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024", None),
        # Windows 7 puts 3DES first, which the seed does not allow: AES-128 is next
        (WINDOWS7, "IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024", None),
        # strongSwan's defaults start with curve25519, which the seed lacks: the first
        # common group in the client's order is MODP_3072, asked for with INVALID_KE_PAYLOAD
        (STRONGSWAN, "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_3072", DhId.MODP_3072),
        # several proposals: the first acceptable one wins (its KE group, not the one
        # of the client's KE payload, which belongs to the refused first proposal)
        (WINDOWS10.with_(ike="aes128gcm16-prfsha256-ecp256,aes192-sha256-modp2048,aes256-sha384-modp3072"),
         "IKE:AES_CBC_192/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048", DhId.MODP_2048),
    ],
    ids=["windows10", "windows7", "strongswan-defaults", "first-acceptable"],
)
def test_client_first_proposal_choice(net, profile, expected, invalid_ke):
    client = net.client(profile)
    net.connect(client)
    assert client.established
    assert str(client.proposal) == expected
    inits = [r for r in client.responses if r.exchange == ExchangeType.IKE_SA_INIT]
    if invalid_ke is None:
        assert len(inits) == 1
    else:
        refused, accepted = inits
        assert refused.notify_types == [NotifyType.INVALID_KE_PAYLOAD]
        assert refused.notify(NotifyType.INVALID_KE_PAYLOAD).data == struct.pack(">H", invalid_ke)
        assert refused.get(PayloadType.SA) is None
        assert accepted.get(PayloadType.KE).group == invalid_ke
    assert len(net.gateway.sas) == 1  # the refused attempt left nothing behind


def test_prefer_configured_proposals_changes_the_choice(make_network):
    """With charon.prefer_configured_proposals (strongSwan's default) the configured
    order wins: aes256-sha384-modp3072 for the same strongSwan client."""
    net = make_network(prefer_configured_proposals=True)
    client = net.client(STRONGSWAN)
    net.connect(client)
    assert str(client.proposal) == "IKE:AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072"


@pytest.mark.parametrize("ike", ["aes128gcm16-prfsha256-ecp256", "aes128-sha256-ecp256-curve25519",
                                 "3des-md5-modp1024", "aes128-sha1-modp768"])
def test_no_acceptable_ike_proposal(net, ike):
    client = net.client(WINDOWS10, ike=ike)
    response = net.connect(client)
    assert response.exchange == ExchangeType.IKE_SA_INIT
    assert response.payloads == [response.notify(NotifyType.NO_PROPOSAL_CHOSEN)]
    assert client.keys is None
    assert not net.gateway.sas and not net.gateway.half_open and not net.gateway.init_index


def test_esp_refused_keeps_the_ike_sa(net):
    """GCM-only ESP (the seed allows CBC only): NO_PROPOSAL_CHOSEN in the last IKE_AUTH
    response, no CHILD SA, the IKE SA up (as strongSwan)."""
    client = net.client(WINDOWS10, esp="aes256gcm16-aes128gcm16")
    final = net.connect(client)
    assert client.established  # the MSK AUTH came and verified
    assert final.error == NotifyType.NO_PROPOSAL_CHOSEN
    assert final.get(PayloadType.SA) is None and final.get(PayloadType.TSi) is None
    assert client.vips == ["192.0.2.1", "2001:db8::1"]  # the CP reply still comes
    assert client.child is None
    assert [type(e) for e in net.events] == [IkeSaUp]
    (sa,) = net.status()
    assert sa["state"] == "ESTABLISHED" and sa["children"] == []


def test_esp_choice_follows_the_client_order(net):
    client = net.client(WINDOWS10, esp="aes256gcm16,aes128-sha256,aes256-sha1")
    net.connect(client)
    assert str(client.child.proposal) == "ESP:AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ"
    (child_up,) = net.events_of(ChildSaUp)
    assert (child_up.info.encr_id, child_up.info.encr_key_bits, child_up.info.integ_id) == (12, 128, 12)


def tcp443(network: str) -> TrafficSelector:
    net = ipaddress.ip_network(network)
    return TrafficSelector(ts_type=TsType.IPV4_ADDR_RANGE, ip_protocol=6, start_port=443, end_port=443,
                           start_addr=net.network_address, end_addr=net.broadcast_address)


@pytest.mark.parametrize(
    "tsi, tsr, narrowed_tsi, narrowed_tsr",
    [
        (("0.0.0.0/0", "::/0"), ("0.0.0.0/0", "::/0"),
         ["192.0.2.1/32", "2001:db8::1/128"], ["0.0.0.0/0", "::/0"]),
        (("0.0.0.0/0",), ("10.1.0.0/16",), ["192.0.2.1/32"], ["10.1.0.0/16"]),
        (("192.0.2.0/24", "2001:db8::/32"), ("::/0",), ["192.0.2.1/32", "2001:db8::1/128"], ["::/0"]),
        (("0.0.0.0/0",), (tcp443("198.51.100.0/24"),), ["192.0.2.1/32"], ["198.51.100.0/24[6/443]"]),
    ],
    ids=["everything", "v4-only", "v6-only-tsr", "tcp-443"],
)
def test_child_sa_selectors_are_narrowed(net, tsi, tsr, narrowed_tsi, narrowed_tsr):
    client = net.client(WINDOWS10, tsi=tsi, tsr=tsr)
    net.connect(client)
    (child_up,) = net.events_of(ChildSaUp)
    assert [str(s) for s in child_up.info.remote_ts] == narrowed_tsi
    assert [str(s) for s in child_up.info.local_ts] == narrowed_tsr
    assert len(client.child.tsi) == len(narrowed_tsi) and len(client.child.tsr) == len(narrowed_tsr)


@pytest.mark.parametrize("tsi", [("10.99.0.0/16",), ("192.0.2.2/32", "2001:db8::2/128")])
def test_ts_unacceptable_keeps_the_ike_sa(net, tsi):
    """The client's TSi does not contain its virtual IPs: TS_UNACCEPTABLE, no CHILD SA."""
    client = net.client(WINDOWS10, tsi=tsi)
    final = net.connect(client)
    assert client.established
    assert final.error == NotifyType.TS_UNACCEPTABLE
    assert final.get(PayloadType.SA) is None
    assert client.child is None
    assert [type(e) for e in net.events] == [IkeSaUp]
    assert not net.gateway.children_by_spi
