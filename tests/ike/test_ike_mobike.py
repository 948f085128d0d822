"""MOBIKE in place (RFC 4555 3.5, 3.8): UPDATE_SA_ADDRESSES from a new address moves the
IKE SA and its CHILD SAs there without a rekey (same SPIs and keys, ``ChildSaUpdated``),
NAT-D in it is answered and re-evaluated (UDP encapsulation follows), COOKIE2 is echoed,
and the gateway's later requests (DPD) go to the new address.  Without MOBIKE negotiated
the notify is ignored."""

from __future__ import annotations

from ikegate.ike.events import ChildSaDown, ChildSaUp, ChildSaUpdated, Endpoint
from ikegate.wire.constants import NotifyType, PayloadType
from ikegate.wire.payloads import NotifyPayload

from .initiator import STRONGSWAN, natd_hash


def update_sa_addresses(client, *, nat: bool = False, cookie2: bytes | None = None):
    """The client's INFORMATIONAL announcing its current address; ``nat`` makes its
    NAT_DETECTION_SOURCE_IP hash another address (it sits behind a NAT)."""
    ike = client.ike
    source = Endpoint("10.0.0.99", 4500) if nat else client.local
    payloads = [NotifyPayload(notify_type=NotifyType.UPDATE_SA_ADDRESSES),
                NotifyPayload(notify_type=NotifyType.NAT_DETECTION_SOURCE_IP,
                              data=natd_hash(ike.spi_i, ike.spi_r, source)),
                NotifyPayload(notify_type=NotifyType.NAT_DETECTION_DESTINATION_IP,
                              data=natd_hash(ike.spi_i, ike.spi_r, client.remote))]
    if cookie2 is not None:
        payloads.append(NotifyPayload(notify_type=NotifyType.COOKIE2, data=cookie2))
    return client.informational(payloads)


def test_update_sa_addresses_moves_the_sas_without_rekey(make_network):
    net = make_network(edits={"dpddelay=2400s": "dpddelay=30s"})
    client = net.client(STRONGSWAN)
    net.connect(client)
    (up,) = net.events_of(ChildSaUp)
    spis, keys = (up.info.spi_in, up.info.spi_out), (up.info.key_in_encr, up.info.key_out_encr)
    client.local = Endpoint("198.51.100.222", 4500)  # the client's new address (libreswan moving)
    response = net.exchange(client, update_sa_addresses(client, cookie2=b"c2" * 8))
    assert response is not None and response.error is None
    ike = client.ike
    # NAT-D answered for the new addresses, COOKIE2 echoed (RFC 4555 3.5, 3.8)
    (src,) = [n for n in response.notifies if n.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP]
    assert src.data == natd_hash(ike.spi_i, ike.spi_r, client.remote)
    assert response.notify(NotifyType.NAT_DETECTION_DESTINATION_IP).data == natd_hash(ike.spi_i, ike.spi_r,
                                                                                     client.local)
    assert response.notify(NotifyType.COOKIE2).data == b"c2" * 8
    (updated,) = net.events_of(ChildSaUpdated)
    assert updated.info.remote == client.local and updated.info.udp_encap is False
    assert (updated.info.spi_in, updated.info.spi_out) == spis
    assert (updated.info.key_in_encr, updated.info.key_out_encr) == keys
    assert len(net.events_of(ChildSaUp)) == 1 and not net.events_of(ChildSaDown)  # no rekey
    assert net.sa_of(client).remote == client.local
    # the gateway's next request (DPD) goes to the new address and is answered from there
    net.advance(31)
    (dpd,) = [r for r in net.deliver_pending(client) if not r.is_response]
    assert dpd.get(PayloadType.NOTIFY) is None
    net.send(client, client.answer(dpd))
    assert net.sa_of(client) is not None


def test_moving_behind_a_nat_turns_on_udp_encapsulation(net):
    client = net.client(STRONGSWAN)
    net.connect(client)
    client.local = Endpoint("198.51.100.223", 4500)
    response = net.exchange(client, update_sa_addresses(client, nat=True))
    assert response.error is None
    (updated,) = net.events_of(ChildSaUpdated)
    assert updated.info.udp_encap is True and updated.info.remote == client.local
    assert net.sa_of(client).nat_remote is True


def test_update_ignored_without_mobike(net):
    client = net.client(STRONGSWAN, mobike=False)
    net.connect(client)
    old = client.local
    client.local = Endpoint("198.51.100.224", 500)
    response = net.exchange(client, update_sa_addresses(client))
    assert response is not None and response.notify(NotifyType.NAT_DETECTION_SOURCE_IP) is None
    assert not net.events_of(ChildSaUpdated)
    assert net.sa_of(client).remote == old
