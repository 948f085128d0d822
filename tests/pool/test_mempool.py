"""Virtual-IP pools: strongSwan's mem_pool rules (spec/strongswan-semantics.md 2.6)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from ikegate.eap.identity import identity_key
from ikegate.pool.mempool import AcquirePass, Lease, MemPool, PoolError, PoolSet

A = ipaddress.ip_address
PEER1 = ("198.51.100.1", 4500)
PEER2 = ("198.51.100.2", 4500)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("token", "first", "last", "size"),
    [
        # network id and broadcast skipped
        ("10.10.10.0/24", "10.10.10.1", "10.10.10.254", 254),
        ("192.0.2.0/24", "192.0.2.1", "192.0.2.254", 254),
        # base is not the network id: start there, still skip the broadcast
        ("10.0.0.5/24", "10.0.0.5", "10.0.0.254", 250),
        ("10.0.0.254/24", "10.0.0.254", "10.0.0.254", 1),
        ("10.0.0.0/30", "10.0.0.1", "10.0.0.2", 2),
        # /31: both addresses, or only the second if that was given
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1", 2),
        ("10.0.0.1/31", "10.0.0.1", "10.0.0.1", 1),
        # /32 and a bare address: the single address
        ("10.0.0.1/32", "10.0.0.1", "10.0.0.1", 1),
        ("10.0.0.7", "10.0.0.7", "10.0.0.7", 1),
        ("2001:db8::5", "2001:db8::5", "2001:db8::5", 1),
        # IPv6 up to 2^31 addresses behaves like IPv4
        ("fd00::/112", "fd00::1", "fd00::fffe", 65534),
        ("fd00::/127", "fd00::", "fd00::1", 2),
        # larger IPv6 pools are capped at 2^31 addresses (hostbits 31), minus first and last
        ("2001:db8::/96", "2001:db8::1", "2001:db8::7fff:fffe", 2**31 - 2),
        ("fd00:10:10::/64", "fd00:10:10::1", "fd00:10:10::7fff:fffe", 2**31 - 2),
        # IPv4 /0 is capped the same way
        ("0.0.0.0/0", "0.0.0.1", "127.255.255.254", 2**31 - 2),
        # ranges are inclusive, nothing skipped
        ("10.1.0.10-10.1.0.20", "10.1.0.10", "10.1.0.20", 11),
        ("10.1.0.0-10.1.0.255", "10.1.0.0", "10.1.0.255", 256),
        ("10.1.0.9 - 10.1.0.9", "10.1.0.9", "10.1.0.9", 1),
        ("fd00::1:0-fd00::1:ffff", "fd00::1:0", "fd00::1:ffff", 65536),
    ],
)
def test_parse(token: str, first: str, last: str, size: int) -> None:
    pool = MemPool.parse(token)
    assert (pool.first, pool.last, pool.size) == (A(first), A(last), size)
    assert pool.name == token
    assert pool.family == A(first).version


def test_cidr_and_range_constructors() -> None:
    assert MemPool.from_cidr("10.0.0.0/29").size == 6
    assert MemPool.from_range("10.0.0.0-10.0.0.7").size == 8
    with pytest.raises(PoolError):
        MemPool.from_range("10.0.0.0/29")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("10.0.0.255/24", "is empty"),  # only the broadcast address left
        ("10.0.0.3/30", "is empty"),
        ("10.0.0.9-10.0.0.1", "invalid IP address range"),
        ("10.0.0.1-fd00::1", "invalid IP address range"),
        ("fd00::1-fd01::1", "IP address range too large"),
        ("0.0.0.0-255.255.255.255", "IP address range too large"),
        ("vpn.example.org", "invalid IP address"),
        ("10.0.0.0/abc", "invalid prefix length"),
        ("10.0.0/24", "invalid IP address"),
        ("", "invalid IP address"),
    ],
)
def test_parse_errors(token: str, message: str) -> None:
    with pytest.raises(PoolError, match=message):
        MemPool.parse(token)


def test_pool_error_is_value_error() -> None:
    assert issubclass(PoolError, ValueError)


# -------------------------------------------------------------------------- allocation


def test_sequential_allocation_from_first_address() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    got = [pool.acquire(f"user{i}", (f"198.51.100.{i}", 500)) for i in range(5)]
    assert got == [A(f"10.10.10.{i}") for i in range(1, 6)]
    assert pool.online() == pool.in_use == 5
    assert pool.offline() == 0


def test_existing_online_lease_reused_for_same_identity_and_peer() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    first = pool.acquire("alice", PEER1)
    # make-before-break reauthentication from the same endpoint: same address
    assert pool.acquire("alice", PEER1) == first
    assert pool.acquire("alice", PEER1, requested="0.0.0.0") == first
    assert pool.acquire("alice", PEER1, requested=first) == first
    assert pool.online() == 1
    # the lease stays online until every SA using it released it
    for _ in range(3):
        assert pool.release(first, "alice")
        assert pool.online() == 1 and pool.offline() == 0
    assert pool.release(first, "alice")
    assert pool.online() == 0 and pool.offline() == 1
    assert not pool.release(first, "alice")


def test_same_identity_from_other_endpoint_gets_another_address() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    a = pool.acquire("alice", PEER1)
    b = pool.acquire("alice", PEER2)
    c = pool.acquire("alice", ("198.51.100.1", 4501))  # same host, other port
    assert len({a, b, c}) == 3


def test_requested_other_address_does_not_reuse_online_lease() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    first = pool.acquire("alice", PEER1)
    assert pool.acquire("alice", PEER1, requested="10.10.10.77") == A("10.10.10.2")
    # the requested address itself is never handed out just because it was asked for
    assert pool.acquire("bob", PEER2, requested="10.10.10.77") == A("10.10.10.3")
    assert first == A("10.10.10.1")


def test_requested_address_of_other_family_yields_nothing() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    assert pool.acquire("alice", PEER1, requested="::") is None
    assert pool.online() == 0


def test_offline_lease_returned_on_reconnect_oldest_first() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    a = pool.acquire("alice", PEER1)
    b = pool.acquire("alice", PEER2)
    pool.acquire("bob", PEER1)
    assert pool.release(b, "alice")  # b went offline first
    assert pool.release(a, "alice")
    assert pool.offline() == 2
    # reconnect from anywhere: the identity's oldest offline lease
    assert pool.acquire("alice", ("203.0.113.9", 4500)) == b
    assert pool.acquire("alice", ("203.0.113.9", 4501)) == a
    assert pool.acquire("alice", ("203.0.113.9", 4502)) == A("10.10.10.4")


def test_offline_lease_kept_for_its_identity_while_free_addresses_remain() -> None:
    pool = MemPool.parse("10.0.0.0/29")  # .1 - .6
    alice = pool.acquire("alice", PEER1)
    pool.release(alice, "alice")
    # other users get new addresses, not alice's offline one
    others = [pool.acquire(f"u{i}", PEER2) for i in range(5)]
    assert alice not in others
    assert pool.acquire("alice", PEER1) == alice


def test_reassign_offline_lease_when_full() -> None:
    pool = MemPool.parse("10.0.0.0/30")  # .1 and .2
    alice = pool.acquire("alice", PEER1)
    bob = pool.acquire("bob", PEER2)
    assert pool.acquire("carol", PEER1) is None  # full, nothing offline
    pool.release(bob, "bob")
    assert pool.acquire("carol", PEER1) == bob
    assert pool.leases() == [Lease(alice, "alice", True), Lease(bob, "carol", True)]
    # bob's lease is gone: bob cannot get it back, the pool is full again
    assert pool.acquire("bob", PEER2) is None


def test_reassign_takes_the_longest_offline_lease() -> None:
    pool = MemPool.parse("10.0.0.1-10.0.0.3")
    leases = {name: pool.acquire(name, PEER1) for name in ("a", "b", "c")}
    pool.release(leases["b"], "b")
    pool.release(leases["a"], "a")
    assert pool.acquire("d", PEER2) == leases["b"]
    assert pool.acquire("e", PEER2) == leases["a"]


def test_single_pass() -> None:
    pool = MemPool.parse("10.0.0.0/30")
    assert pool.acquire("alice", PEER1, pass_=AcquirePass.EXISTING) is None
    assert pool.acquire("alice", PEER1, pass_=AcquirePass.REASSIGN) is None
    a = pool.acquire("alice", PEER1, pass_=AcquirePass.NEW)
    assert a == A("10.0.0.1")
    assert pool.acquire("alice", PEER1, pass_=AcquirePass.EXISTING) == a


def test_release_checks_identity_and_address() -> None:
    pool = MemPool.parse("10.0.0.0/29")
    a = pool.acquire("alice", PEER1)
    assert not pool.release(a, "bob")
    assert not pool.release("10.0.0.5", "alice")
    assert not pool.release("192.0.2.1", "alice")
    assert not pool.release("fd00::1", "alice")
    assert pool.release(str(a), "alice")


def test_key_function_folds_identities() -> None:
    pool = MemPool.parse("10.0.0.0/29", key=identity_key)
    a = pool.acquire("Alice@Example.ORG", PEER1)
    assert pool.acquire("alice@example.org", PEER1) == a
    assert pool.release(a, "ALICE@example.org")
    # default key: identities compared as given
    plain = MemPool.parse("10.0.0.0/29")
    assert plain.acquire("Alice", PEER1) != plain.acquire("alice", PEER1)


def test_leases_and_counts() -> None:
    pool = MemPool.parse("10.0.0.0/29")
    a = pool.acquire("alice", PEER1)
    pool.acquire("alice", PEER1)  # second SA on the same lease
    b = pool.acquire("bob", PEER2)
    pool.release(b, "bob")
    assert pool.leases() == [Lease(a, "alice", True), Lease(b, "bob", False)]
    assert (pool.online(), pool.offline(), pool.in_use) == (1, 1, 1)
    assert pool.contains("10.0.0.6") and not pool.contains("10.0.0.7") and not pool.contains("10.0.0.0")


def test_fifty_users_get_fifty_distinct_addresses() -> None:
    pool = MemPool.parse("10.10.10.0/24")
    addresses = [pool.acquire(f"user{i}", (f"203.0.113.{i}", 4500)) for i in range(50)]
    assert None not in addresses
    assert len(set(addresses)) == 50
    # and they keep them across a reconnect
    for i, address in enumerate(addresses):
        assert pool.release(address, f"user{i}")
    again = [pool.acquire(f"user{i}", (f"203.0.113.{i}", 4600)) for i in reversed(range(50))]
    assert again == list(reversed(addresses))


def test_full_pool_returns_none() -> None:
    pool = MemPool.parse("10.0.0.1/32")
    assert pool.acquire("alice", PEER1) == A("10.0.0.1")
    assert pool.acquire("bob", PEER2) is None


def test_large_ipv6_pool_is_constant_time() -> None:
    pool = MemPool.parse("fd00::/64")
    start = time.perf_counter()
    addresses = {pool.acquire(f"u{i}", PEER1) for i in range(2000)}
    assert time.perf_counter() - start < 2.0
    assert len(addresses) == 2000
    assert min(addresses) == A("fd00::1") and max(addresses) == A("fd00::7d0")


# ------------------------------------------------------------------------------- sets


def test_poolset_shares_pools_between_connections() -> None:
    pools = PoolSet()
    p1 = pools.add("10.10.10.0/24")
    assert pools.add("10.10.10.0/24") is p1
    # same base and size in another spelling: the same pool (an alias)
    assert pools.add("10.10.10.1-10.10.10.254") is p1
    assert pools.get("10.10.10.1-10.10.10.254") is p1
    assert len(pools) == 1
    a = pools.acquire(["10.10.10.0/24"], 4, "alice", PEER1)
    assert pools.acquire(["10.10.10.1-10.10.10.254"], 4, "bob", PEER2) != a


def test_poolset_families() -> None:
    pools = PoolSet()
    names = ["10.10.10.0/24", "fd00:10:10::/64"]
    for name in names:
        pools.add(name)
    assert pools.acquire(names, 4, "alice", PEER1) == A("10.10.10.1")
    assert pools.acquire(names, 6, "alice", PEER1) == A("fd00:10:10::1")
    assert pools.acquire(names, 6, "alice", PEER1, requested="0.0.0.0") is None
    assert pools.acquire(["10.10.10.0/24"], 6, "alice", PEER1) is None
    assert pools.acquire(["unknown"], 4, "alice", PEER1) is None
    with pytest.raises(ValueError):
        pools.acquire(names, 5, "alice", PEER1)


def test_poolset_existing_pass_spans_all_pools_before_new() -> None:
    pools = PoolSet()
    names = ["10.0.0.0/30", "10.0.1.0/30"]
    for name in names:
        pools.add(name)
    # alice's offline lease lives in the second pool
    pools.acquire(names, 4, "x", PEER1)
    pools.acquire(names, 4, "y", PEER1)
    second = pools.acquire(names, 4, "alice", PEER1)
    assert second == A("10.0.1.1")
    assert pools.release(second, "alice")
    # EXISTING over all pools first: not a NEW address from the first pool
    pools.release("10.0.0.1", "x")
    assert pools.acquire(names, 4, "alice", PEER2) == second


def test_poolset_reassign_in_configured_order() -> None:
    pools = PoolSet()
    names = ["10.0.0.1/32", "10.0.1.1/32"]
    for name in names:
        pools.add(name)
    a = pools.acquire(names, 4, "a", PEER1)
    b = pools.acquire(names, 4, "b", PEER1)
    assert (a, b) == (A("10.0.0.1"), A("10.0.1.1"))
    assert pools.acquire(names, 4, "c", PEER1) is None
    pools.release(b, "b")
    pools.release(a, "a")
    assert pools.acquire(names, 4, "c", PEER1) == a  # first pool first
    assert pools.acquire(list(reversed(names)), 4, "d", PEER1) == b


def test_poolset_release() -> None:
    pools = PoolSet()
    pools.add("10.0.0.0/29")
    pools.add("fd00::/120")
    v6 = pools.acquire(["fd00::/120"], 6, "alice", PEER1)
    assert not pools.release(v6, "bob")
    assert not pools.release(v6, "alice", ["10.0.0.0/29"])
    assert pools.release(v6, "alice")
    assert [pool.offline() for pool in pools] == [0, 1]


def test_poolset_parse_error() -> None:
    with pytest.raises(PoolError):
        PoolSet().add("10.0.0.0/33x")
