"""Hypothesis state machine for the IKE engine: clients, attackers and time, interleaved.

Several clients (Windows 10, strongSwan, macOS profiles; two of them behind one NAT
address; some with a wrong password) each take their next legitimate step when a rule says so (IKE_SA_INIT, IKE_AUTH,
the EAP rounds, the MSK AUTH, then INFORMATIONALs, CHILD and IKE rekeys, Deletes, and the
answers to the gateway's own DPDs, rekeys and Deletes).  Between their steps the machine
retransmits, duplicates and replays their datagrams, sends mutated versions of their last
message (the engine fuzz target's mutation modes, re-sealed with their keys), garbage
from anywhere, floods of IKE_SA_INIT from spoofed addresses, and moves the clock.

Invariants, after every rule (and inside every ``receive``/``tick``, see
:class:`~fuzz.engine_checks.CheckedGateway`): no exception escapes, only documented
outputs, the tables consistent, the IKE SA table bounded by the IKE_SA_INITs and rekeys
that could have made SAs (garbage makes none), half-open SAs per address bounded by
``block_threshold``, ``status()`` works; at the end ``shutdown`` leaves nothing behind.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ikegate.ike.events import Endpoint, IkeSaRekeyed
from ikegate.wire.constants import EapCode, ExchangeType, NotifyType

from ike.harness import GATEWAY_V4, Network
from ike.initiator import MACOS, STRONGSWAN, WINDOWS10

from .engine_checks import (
    CheckedGateway,
    EngineFailure,
    KnownBug,
    check_clean_shutdown,
    check_consistency,
    strict_logging,
)
from .engine_target import (
    FUZZ_EDITS,
    MODES,
    ClientLost,
    FuzzClient,
    answer_request,
    deterministic,
    fuzz_env,
    note_known_bug,
)
from .mutations import Reader

PROFILES = (WINDOWS10, STRONGSWAN, MACOS)
#: Where clients live: two share an address (a NAT), one is IPv4 of its own.
HOSTS = (Endpoint("198.51.100.20", 500), Endpoint("198.51.100.30", 4500), Endpoint("198.51.100.30", 14500))
SPOOFED = tuple(f"198.18.0.{n}" for n in range(100, 140))  # attackers (RFC 2544 range)
ZERO_SPI = bytes(8)


class Player:
    """One client and what the machine knows of it."""

    def __init__(self, machine: "GatewayMachine", profile, endpoint: Endpoint, *, user: str = "user1",
                 password: str | None = None) -> None:
        env = machine.env
        self.machine = machine
        self.client = FuzzClient(profile, local=endpoint, remote=GATEWAY_V4, user=user,
                                 password=env.users[user] if password is None else password, trusted=[env.root])
        self.auth_sent = False
        self.inits_sent = 0
        self.lost = False
        self.answered: set = set()

    @property
    def history(self) -> list[bytes]:
        return self.machine.history

    def advance(self, seconds: float) -> None:
        self.machine.advance(seconds)

    def next_message(self, choice: int) -> list[bytes]:
        """The client's next legitimate message (raises ClientLost when it has none)."""
        c = self.client
        for req in c.requests:
            key = (req.ike.spi_i, req.ike.spi_r, req.message_id) if req.ike else (b"", b"", req.message_id)
            if key not in self.answered and any(req.ike is ike for ike in c.ike_sas):
                self.answered.add(key)
                return answer_request(c, req)
        if c.keys is None:
            last = c.last
            retry = last is None or last.notify(NotifyType.COOKIE) or last.notify(NotifyType.INVALID_KE_PAYLOAD)
            self.inits_sent += 1
            if not retry or self.inits_sent > 4:
                raise ClientLost(f"IKE_SA_INIT refused: {last}")
            return c.sa_init_request()
        if not self.auth_sent:
            self.auth_sent = True
            return c.auth_request()
        if not c.established:
            last = c.last
            eap = last.eap if last is not None and last.exchange == ExchangeType.IKE_AUTH else None
            if eap is None:
                raise ClientLost(f"no EAP request to answer: {last}")
            if eap.code == EapCode.SUCCESS:
                return c.final_auth_request()
            if eap.code == EapCode.REQUEST:
                return c.eap_request(last)
            raise ClientLost(f"EAP ended with {eap.code}")
        if c.pending_mid is not None:
            return c.retransmit()  # still waiting for an answer: what a client does
        op = choice % 5
        if op == 0:
            return c.informational()
        if op == 1:
            return c.create_child_sa()
        if op == 2:
            self.machine.rekeys += 1
            return c.rekey_ike()
        if op == 3 and c.retired:
            return c.delete_ike(c.retired[0])
        return c.create_child_sa(rekey=False)


class GatewayMachine(RuleBasedStateMachine):
    #: ipsec.conf edits on top of the engine fuzz target's (None: those alone)
    edits: dict[str, str] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.env = fuzz_env(None if self.edits is None else {**FUZZ_EDITS, **self.edits})
        self.env.fresh_pools()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(deterministic(self.env, seed=7))
        self._stack.enter_context(strict_logging())
        self.net = Network(self.env.runtime, self.env.users, trusted=[self.env.root])
        self.net.gateway = CheckedGateway(self.env.runtime, now=self.net.now)
        self.players: list[Player | None] = [None] * len(HOSTS)
        self.history: list[bytes] = []
        self.inits = 0  # datagrams that could make an IKE SA (IKE_SA_INIT requests)
        self.rekeys = 0  # IKE rekeys the clients started
        self.created = 0
        self.tainted = False

    @property
    def gw(self) -> CheckedGateway:
        return self.net.gateway

    def sa_bound(self) -> int:
        gateway_rekeys = len(self.net.events_of(IkeSaRekeyed))
        return self.inits + 2 * (self.rekeys + gateway_rekeys) + 2

    # -- plumbing ---------------------------------------------------------------------------

    def deliver(self, datagrams: list[bytes], src: Endpoint) -> None:
        if self.tainted:
            return
        try:
            self._deliver(datagrams, src)
        except KnownBug as bug:
            self.taint(bug)

    def taint(self, bug: KnownBug) -> None:
        """A reported bug was hit: the gateway's state is not trusted from here on."""
        note_known_bug(bug)
        self.tainted = True

    def _deliver(self, datagrams: list[bytes], src: Endpoint) -> None:
        for data in datagrams:
            if len(data) >= 28 and data[18] == ExchangeType.IKE_SA_INIT and data[8:16] == ZERO_SPI:
                self.inits += 1
            self.history.append(data)
            self.gw.max_sas = self.sa_bound()
            self.net._route(self.gw.receive(data, src, GATEWAY_V4, self.net.now))
        self.distribute()

    def distribute(self) -> None:
        """Hand every client what the gateway sent it; a client that chokes is lost."""
        for player in self.players:
            if player is None:
                continue
            for data in self.net.collect(player.client):
                try:
                    player.client.receive(data)
                except (EngineFailure, KnownBug):
                    raise
                except Exception:  # the test client gave up on it: not the gateway's fault
                    player.lost = True
        for endpoint in list(self.net.mailbox):  # answers to spoofed sources and lost clients
            if not any(p is not None and p.client.local == endpoint for p in self.players):
                self.net.mailbox.pop(endpoint, None)

    def advance(self, seconds: float) -> None:
        if self.tainted:
            return
        self.gw.max_sas = self.sa_bound()
        try:
            self.net.advance(seconds)
        except KnownBug as bug:
            self.taint(bug)
            return
        self.distribute()

    def player(self, index: int) -> Player:
        slot = index % len(HOSTS)
        player = self.players[slot]
        if player is None or player.lost:
            self.created += 1
            profile = PROFILES[self.created % len(PROFILES)]
            # every fourth client is user2 with a wrong password: EAP failures, retries,
            # the failure delay and the per-source throttle
            wrong = {"user": "user2", "password": "wrong"} if self.created % 4 == 3 else {}
            player = self.players[slot] = Player(self, profile, HOSTS[slot], **wrong)
        return player

    # -- rules ------------------------------------------------------------------------------

    @initialize(slot=st.integers(0, len(HOSTS) - 1))
    def first_client_connects(self, slot: int) -> None:
        """One client gets established first, so that later rules meet a live IKE SA."""
        self.client_steps(slot, 0, 8)
        assert self.players[slot].client.established or self.tainted

    @rule(index=st.integers(0, 5), choice=st.integers(0, 9), steps=st.integers(1, 6))
    def client_steps(self, index: int, choice: int, steps: int) -> None:
        """A client takes its next ``steps`` legitimate steps (a new client if it was lost)."""
        player = self.player(index)
        for n in range(steps):
            if player.lost:
                return
            try:
                datagrams = player.next_message(choice + n)
            except (EngineFailure, KnownBug):
                raise
            except Exception:
                player.lost = True
                return
            self.deliver(datagrams, player.client.local)

    @rule(index=st.integers(0, 5))
    def retransmit(self, index: int) -> None:
        player = self.player(index)
        self.deliver(player.client.retransmit(), player.client.local)

    @rule(count=st.integers(2, 4))
    @precondition(lambda self: self.history)
    def duplicate(self, count: int) -> None:
        """The last datagram again, several times (a duplicating link)."""
        data = self.history[-1]
        src = next((p.client.local for p in self.players if p is not None and p.client.owns(data)), HOSTS[0])
        self.deliver([data] * count, src)

    @rule(pick=st.integers(0, 2**16))
    @precondition(lambda self: self.history)
    def replay(self, pick: int) -> None:
        """Any earlier datagram again, from its sender or from an attacker."""
        data = self.history[pick % len(self.history)]
        src = HOSTS[pick % len(HOSTS)] if pick & 1 else Endpoint(SPOOFED[pick % len(SPOOFED)], 500)
        self.deliver([data], src)

    @rule(index=st.integers(0, 5), mode=st.integers(0, len(MODES) - 1), argument=st.binary(max_size=48))
    def mutated(self, index: int, mode: int, argument: bytes) -> None:
        """The client's last message, mutated as the engine fuzz target does."""
        player = self.player(index)
        spec = player.client.last_spec
        if spec is None:
            return
        _, mutate = MODES[mode]
        datagrams = mutate(player, spec, Reader(argument))
        self.deliver(datagrams, player.client.local)

    @rule(data=st.binary(max_size=200), aim=st.integers(0, 255), src=st.integers(0, len(SPOOFED) - 1))
    def garbage(self, data: bytes, aim: int, src: int) -> None:
        """Bytes from anywhere; with a client's SPIs and a matching length they reach its SA."""
        before = len(self.gw.sas)
        data = bytearray(data)
        player = self.players[aim % len(HOSTS)]
        if aim & 1 and player is not None and len(data) >= 16:
            data[0:16] = player.client.spi_i + player.client.spi_r
        if aim & 2 and len(data) >= 28:
            data[24:28] = len(data).to_bytes(4, "big")
            data[17] = 0x20
        self.deliver([bytes(data)], Endpoint(SPOOFED[src], 500 if aim & 4 else 4500))
        if self.tainted:
            return
        could_init = len(data) >= 28 and data[18] == ExchangeType.IKE_SA_INIT and bytes(data[8:16]) == ZERO_SPI
        assert len(self.gw.sas) <= before + (1 if could_init else 0), "garbage made IKE SAs"

    @rule(count=st.integers(1, 8), hosts=st.integers(1, 3), start=st.integers(0, len(SPOOFED) - 1))
    def spoofed_inits(self, count: int, hosts: int, start: int) -> None:
        """A burst of IKE_SA_INITs from a few spoofed addresses (cookies, blocks engage)."""
        for n in range(count):
            host = SPOOFED[(start + n % hosts) % len(SPOOFED)]
            flooder = FuzzClient(WINDOWS10, local=Endpoint(host, 500 + n), remote=GATEWAY_V4)
            self.deliver(flooder.sa_init_request(), flooder.local)

    @rule(seconds=st.sampled_from((0.5, 2.0, 5.0, 15.0, 31.0, 61.0, 300.0, 3600.0)))
    def time_passes(self, seconds: float) -> None:
        self.advance(seconds)

    @rule(index=st.integers(0, 5))
    def client_deletes(self, index: int) -> None:
        player = self.player(index)
        if player.client.keys is None:
            return
        try:
            datagrams = player.client.delete_ike()
        except Exception:
            player.lost = True
            return
        self.deliver(datagrams, player.client.local)
        player.lost = True  # its IKE SA is gone: a new client takes the slot

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def tables_consistent_and_bounded(self) -> None:
        if self.tainted:
            return
        gw = self.gw
        check_consistency(gw, self.net.now, max_sas=self.sa_bound())
        block = gw.rt.settings.block_threshold
        assert all(count <= block for count in gw.half_open_by_ip.values()), dict(gw.half_open_by_ip)
        assert len(gw.half_open_by_ip) <= len(SPOOFED) + len(HOSTS)

    def teardown(self) -> None:
        try:
            if not self.tainted:
                check_clean_shutdown(self.gw, self.net.now, self.env.runtime.pools)
        finally:
            self._stack.close()


class ReplacingGatewayMachine(GatewayMachine):
    """The same with ``uniqueids=replace``: every client is user1, so each new IKE SA
    replaces the others (at once from another address, after a delay from the same
    one, strongSwan's check_uniqueness), racing with everything else."""

    edits = {"uniqueids=no": "uniqueids=replace"}


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


GatewayMachine.TestCase.settings = _settings(50)
ReplacingGatewayMachine.TestCase.settings = _settings(25)
test_gateway_machine = GatewayMachine.TestCase
test_gateway_machine_uniqueids_replace = ReplacingGatewayMachine.TestCase
