"""Hypothesis state machine for the ESP input path: a sender, a lossy reordering link,
an attacker, and the receiving :class:`~ikegate.esp.EspSa`.

The sender (a second SA with the same keys) encapsulates packets that the link holds;
rules deliver any held packet (reordering), lose the rest, skip sequence numbers (up to
2**30 at a time, so extended sequence numbers cross the 2**32 boundary), replay accepted
packets, deliver edited packets and packets forged with a valid ICV around arbitrary
plaintext (bad padding, dummy packets, wrong Next Header).

The model: a packet is accepted exactly when its sequence number was not accepted
before and lies inside the window (RFC 4303 3.4.3), and its plaintext is well formed
(:func:`~fuzz.esp_target.expected_outcome`); a dropped packet changes nothing.
Invariants: the receiver's counters and replay window match the model, its bitmap
stays within the window size, and only :class:`~ikegate.esp.EspError` comes out.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ikegate.esp import DROP_REASONS, DROP_REPLAY, DROP_SEQ_OVERFLOW, EspError

from .esp_target import CONFIGS, expected_outcome, make_sa, seal_raw
from .mutations import Reader, edit_bytes

_MAX32 = 0xFFFFFFFF


class EspMachine(RuleBasedStateMachine):
    @initialize(index=st.integers(0, len(CONFIGS) - 1))
    def setup(self, index: int) -> None:
        self.config = CONFIGS[index]
        self.sender = make_sa(self.config)
        self.receiver = make_sa(self.config)
        self.held: list[tuple[int, bytes, bytes]] = []  # (full seq, packet, inner) on the link
        self.accepted: dict[int, bytes] = {}  # full seq -> packet
        self.top = 0
        self.inner_bytes = 0

    # -- the model ----------------------------------------------------------------------------

    def expect_accept(self, seq: int) -> bool:
        return seq != 0 and seq not in self.accepted and seq > self.top - self.config.window

    def decap(self, packet: bytes):
        """Decapsulate; a drop must leave the receiver as it was."""
        r = self.receiver
        before = (r.packets_in, r.bytes_in, r.replay.top, r.replay._bitmap)
        try:
            return r.decapsulate(packet), None
        except EspError as exc:
            assert exc.reason in DROP_REASONS, exc.reason
            assert (r.packets_in, r.bytes_in, r.replay.top, r.replay._bitmap) == before, exc.reason
            return None, exc.reason

    def record(self, seq: int, packet: bytes, inner: bytes) -> None:
        self.accepted[seq] = packet
        self.top = max(self.top, seq)
        self.inner_bytes += len(inner)

    # -- rules ----------------------------------------------------------------------------------

    @rule(size=st.integers(0, 300), first=st.sampled_from((0x45, 0x60)))
    def send(self, size: int, first: int) -> None:
        """The sender encapsulates one packet (IPv4 or IPv6 inside); the link holds it."""
        if self.config.tunnel:
            inner = bytes((first,)) + bytes(range(size % 256))[:size]
            next_header = 4 if first == 0x45 else 41
        else:
            inner, next_header = bytes(size), 6
        at_end = self.sender.seq_out >= (2**64 - 1 if self.config.esn else _MAX32)
        try:
            packet = self.sender.encapsulate(inner, next_header)
        except EspError as exc:
            assert at_end and exc.reason == DROP_SEQ_OVERFLOW
            return
        assert not at_end, "the sequence number cycled (RFC 4303 3.3.3)"
        self.held.append((self.sender.seq_out, packet, inner))

    @rule(pick=st.integers(0, 2**16))
    @precondition(lambda self: self.held)
    def deliver(self, pick: int) -> None:
        """Any held packet arrives (the link reorders)."""
        seq, packet, inner = self.held.pop(pick % len(self.held))
        result, reason = self.decap(packet)
        if self.expect_accept(seq):
            assert result is not None, f"packet {seq} dropped ({reason}), top {self.top}"
            assert result[0] == inner
            self.record(seq, packet, inner)
        else:
            assert result is None, f"packet {seq} accepted, top {self.top}, window {self.config.window}"

    @rule(keep=st.integers(0, 3))
    def lose(self, keep: int) -> None:
        """The link drops what it holds but the newest ``keep`` packets."""
        self.held = self.held[len(self.held) - keep :] if keep < len(self.held) else self.held

    @rule(jump=st.sampled_from((1, 2, 31, 32, 33, 127, 128, 129, 1000, 2**20, 2**30)))
    def skip(self, jump: int) -> None:
        """Sequence numbers lost in a row (stays within 2**31 of the receiver, where ESN
        inference is defined, RFC 4303 A2.2; 32-bit numbers stop short of the end)."""
        limit = self.top + 2**31 if self.config.esn else _MAX32 - 1
        if self.sender.seq_out + jump <= limit:
            self.sender.seq_out += jump

    @rule()
    @precondition(lambda self: self.config.esn)
    def leap(self) -> None:
        """ESN: the sender goes as far as inference allows towards the next 2**32 boundary
        and the packet arrives at once, so a few leaps cross the boundary."""
        boundary = (self.sender.seq_out >> 32) + 1 << 32
        self.sender.seq_out = max(self.sender.seq_out, min(self.top + 2**31 - 1, boundary - 3))
        self.send(40, 0x45)
        self.deliver(len(self.held) - 1)

    @rule(pick=st.integers(0, 2**16))
    @precondition(lambda self: self.accepted)
    def replay(self, pick: int) -> None:
        seqs = sorted(self.accepted)
        packet = self.accepted[seqs[pick % len(seqs)]]
        result, reason = self.decap(packet)
        assert result is None
        if not self.config.esn:  # (ESN: one out of the window can also fail its ICV)
            assert reason == DROP_REPLAY, reason

    @rule(pick=st.integers(0, 2**16), edits=st.binary(min_size=1, max_size=24))
    @precondition(lambda self: self.held or self.accepted)
    def tampered(self, pick: int, edits: bytes) -> None:
        """An attacker's edit of a packet on the link or seen before: never accepted."""
        packets = [p for _, p, _ in self.held] + list(self.accepted.values())
        original = packets[pick % len(packets)]
        packet = edit_bytes(original, Reader(edits), max_edits=3)
        if packet == original:
            return
        result, _ = self.decap(packet)
        assert result is None, "an edited packet was accepted"

    @rule(plaintext=st.binary(max_size=80), ahead=st.integers(0, 40), iv=st.binary(min_size=16, max_size=16))
    def forged(self, plaintext: bytes, ahead: int, iv: bytes) -> None:
        """A packet with a valid ICV around any plaintext (the peer holds the keys, or a
        broken peer): padding, Pad Length and Next Header are checked behind the ICV."""
        if self.config.esn:
            return  # the model of expected_outcome is for 32-bit sequence numbers
        if not self.config.aead:
            block = self.config.block
            plaintext = plaintext[: len(plaintext) - len(plaintext) % block] or bytes(block)
        seq = max(0, self.top - 20) + ahead
        if seq > _MAX32:
            return
        packet = seal_raw(self.config, seq, plaintext, iv=iv)
        expected = expected_outcome(self.config, plaintext, seq, set(self.accepted), self.top)
        result, reason = self.decap(packet)
        assert reason == expected, f"seq {seq} {plaintext.hex()}: {reason}, expected {expected}"
        if result is not None:
            self.record(seq, packet, result[0])

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def receiver_matches_the_model(self) -> None:
        if not hasattr(self, "receiver"):
            return
        r = self.receiver
        assert r.packets_in == len(self.accepted)
        assert r.bytes_in == self.inner_bytes
        assert r.replay.top == self.top
        assert r.replay._bitmap >> r.replay.size == 0
        for seq in self.accepted:
            if self.top - seq < r.replay.size:
                assert (r.replay._bitmap >> (self.top - seq)) & 1, f"accepted {seq} not in the window"


EspMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_esp_machine = EspMachine.TestCase
