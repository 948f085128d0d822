"""``uniqueids=`` and INITIAL_CONTACT (strongswan-semantics.md 2.2; strongSwan's
ike_sa_manager.c ``check_uniqueness``): what happens to an established IKE SA when the
same user (same local id, same EAP identity) authenticates again."""

from __future__ import annotations

import pytest

from ikegate.ike.events import IkeSaDown
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId

from .initiator import WINDOWS10

# where the second session comes from, relative to the first
OTHER_HOST, OTHER_PORT, SAME_ENDPOINT = "other host", "same host, other port", "same endpoint"

KEEP_BOTH, REPLACE_NOW, REPLACE_LATER, REFUSE_NEW, DROP_OLD = (
    "both stay", "old deleted at once", "old deleted after 10 s", "new refused", "old dropped (INITIAL_CONTACT)")


def second_session(net, first, where: str, *, initial_contact: bool, user: str = "user1"):
    if where == OTHER_HOST:
        return net.client(WINDOWS10, user=user, initial_contact=initial_contact)
    port = first.local.port if where == SAME_ENDPOINT else first.local.port + 1
    return net.client(WINDOWS10, user=user, initial_contact=initial_contact, host=first.local.host, port=port)


def deletes_received(net, client) -> list:
    return [r for r in net.deliver_pending(client)
            if r.exchange == ExchangeType.INFORMATIONAL and not r.is_response and r.get(PayloadType.DELETE)]


@pytest.mark.parametrize(
    "policy, initial_contact, where, outcome",
    [
        ("no", False, OTHER_HOST, KEEP_BOTH),
        ("no", True, OTHER_HOST, DROP_OLD),  # INITIAL_CONTACT replaces even under uniqueids=no
        ("no", True, SAME_ENDPOINT, DROP_OLD),
        ("never", True, OTHER_HOST, KEEP_BOTH),  # never: INITIAL_CONTACT ignored
        ("never", False, OTHER_HOST, KEEP_BOTH),
        ("yes", False, OTHER_HOST, REPLACE_NOW),
        ("yes", False, OTHER_PORT, REPLACE_NOW),  # another port is another host (host_t equals)
        ("yes", False, SAME_ENDPOINT, REPLACE_LATER),  # suspected reauthentication
        ("replace", False, OTHER_HOST, REPLACE_NOW),
        ("replace", False, SAME_ENDPOINT, REPLACE_LATER),
        ("yes", True, OTHER_HOST, DROP_OLD),
        ("keep", False, OTHER_HOST, REFUSE_NEW),
        ("keep", False, OTHER_PORT, REFUSE_NEW),
        ("keep", False, SAME_ENDPOINT, KEEP_BOTH),  # potential reauthentication
        ("keep", True, OTHER_HOST, DROP_OLD),
    ],
)
def test_uniqueness_policy(make_network, policy, initial_contact, where, outcome):
    net = make_network(uniqueids=policy)
    first = net.client(WINDOWS10, user="user1")
    net.connect(first)
    old = net.sa_of(first)
    second = second_session(net, first, where, initial_contact=initial_contact)
    final = net.connect(second)

    if outcome == REFUSE_NEW:
        assert final.notify_types == [NotifyType.AUTHENTICATION_FAILED]
        assert not second.established and net.sa_of(second) is None
        assert net.sa_of(first) is old and old.state == "ESTABLISHED"
        return
    assert second.established and net.sa_of(second).state == "ESTABLISHED"
    assert second.vips  # the new session got its addresses

    if outcome == KEEP_BOTH:
        assert net.sa_of(first) is old and old.state == "ESTABLISHED"
        assert deletes_received(net, first) == []
        net.advance(20)
        assert net.sa_of(first) is old
    elif outcome == DROP_OLD:
        assert net.sa_of(first) is None
        (down,) = net.events_of(IkeSaDown)
        assert down.unique_id == old.unique_id
    elif outcome == REPLACE_NOW:
        assert net.sa_of(first) is None
        (delete,) = deletes_received(net, first)
        assert delete.get(PayloadType.DELETE).protocol == ProtocolId.IKE
        (down,) = net.events_of(IkeSaDown)
        assert down.unique_id == old.unique_id
    elif outcome == REPLACE_LATER:
        net.advance(9.9)
        assert net.sa_of(first) is old and old.state == "ESTABLISHED"
        net.advance(0.1)
        assert net.sa_of(first) is None
        (delete,) = deletes_received(net, first)
        assert delete.get(PayloadType.DELETE).protocol == ProtocolId.IKE
    assert net.sa_of(second).state == "ESTABLISHED"


@pytest.mark.parametrize("policy", ["yes", "keep", "no"])
def test_other_users_are_never_duplicates(make_network, policy):
    net = make_network(uniqueids=policy)
    first = net.client(WINDOWS10, user="user1")
    net.connect(first)
    second = net.client(WINDOWS10, user="user2", initial_contact=True)
    net.connect(second)
    assert first.established and second.established
    assert net.sa_of(first).state == net.sa_of(second).state == "ESTABLISHED"
    assert net.events_of(IkeSaDown) == []


def test_replaced_sa_leaves_only_the_new_leases_online(make_network):
    """uniqueids=yes from another device: the old session's leases go offline, the new
    session's are the user's only online ones, and nobody shares an address."""
    net = make_network(uniqueids="yes")
    first = net.client(WINDOWS10, user="user1")
    net.connect(first)
    second = net.client(WINDOWS10, user="user1")
    net.connect(second)
    online = sorted(str(lease.address) for pool in net.runtime.pools for lease in pool.leases() if lease.online)
    assert online == sorted(second.vips)
    assert [sa["virtual_ips"] for sa in net.status()] == [second.vips]
