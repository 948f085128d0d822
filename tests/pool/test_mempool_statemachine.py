"""Random acquire/release sequences never break the pool's invariants."""

from __future__ import annotations

import ipaddress

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ikegate.pool.mempool import MemPool

IDENTITIES = ["alice", "bob", "carol", "dave", "eve", "frank", "grace", "heidi"]
PEERS = [("198.51.100.1", 500), ("198.51.100.1", 4500), ("198.51.100.2", 4500), ("2001:db8::1", 4500)]
TOKENS = ["10.0.0.0/29", "10.0.0.5/29", "10.9.0.0/31", "10.0.0.3-10.0.0.8", "fd00::/125", "fd00::1:0/32"]


class PoolMachine(RuleBasedStateMachine):
    """Model: the list of SAs holding an address, as (address, identity, peer)."""

    @initialize(token=st.sampled_from(TOKENS))
    def make_pool(self, token: str) -> None:
        self.pool = MemPool.parse(token)
        self.sas: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str, tuple[str, int]]] = []
        if "/" in token:
            network = ipaddress.ip_network(token, strict=False)
            self.forbidden = (
                {network.network_address, network.broadcast_address}
                if network.num_addresses > 2 and network.prefixlen >= network.max_prefixlen - 31
                else set()
            )
        else:
            self.forbidden = set()

    def online_addresses(self) -> set:
        return {address for address, _identity, _peer in self.sas}

    @rule(identity=st.sampled_from(IDENTITIES), peer=st.sampled_from(PEERS), ask_any=st.booleans())
    def acquire(self, identity: str, peer: tuple[str, int], ask_any: bool) -> None:
        requested = ("0.0.0.0" if self.pool.family == 4 else "::") if ask_any else None
        had_same_endpoint = [a for a, i, p in self.sas if i == identity and p == peer]
        address = self.pool.acquire(identity, peer, requested)
        if address is None:
            # full: every address is held by a connected peer
            assert len(self.online_addresses()) == self.pool.size
            assert not had_same_endpoint
            return
        if had_same_endpoint:
            assert address in had_same_endpoint
        else:
            # never hand out an address another identity (or SA) holds
            assert address not in self.online_addresses()
        self.sas.append((address, identity, peer))

    @precondition(lambda self: self.sas)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.sas) - 1))
        address, identity, _peer = self.sas.pop(index)
        assert self.pool.release(address, identity)

    @rule(identity=st.sampled_from(IDENTITIES), offset=st.integers(0, 7))
    def release_not_held(self, identity: str, offset: int) -> None:
        address = self.pool.first + min(offset, self.pool.size - 1)
        if any(a == address and i == identity for a, i, _p in self.sas):
            return
        assert not self.pool.release(address, identity)

    @invariant()
    def no_address_online_twice(self) -> None:
        owners: dict = {}
        for lease in self.pool.leases():
            if lease.online:
                assert lease.address not in owners, "address online for two identities"
                owners[lease.address] = lease.identity
        assert owners == {address: identity for address, identity, _peer in self.sas}
        assert self.pool.online() == self.pool.in_use == len(owners)

    @invariant()
    def addresses_inside_pool(self) -> None:
        for lease in self.pool.leases():
            assert self.pool.first <= lease.address <= self.pool.last
            assert lease.address not in self.forbidden
        addresses = [lease.address for lease in self.pool.leases()]
        assert len(addresses) == len(set(addresses)), "address leased twice"
        assert self.pool.offline() == sum(1 for lease in self.pool.leases() if not lease.online)


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolMachine = PoolMachine.TestCase
