"""Anti-replay window (RFC 4303 3.4.3) and ESN inference (RFC 4303 Appendix A2).

No published vectors exist for these: the behaviour is checked case by case and against
a plain reference model (a set of seen numbers) with hypothesis.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikegate.esp import DROP_REPLAY, EspError, EspSa, ReplayWindow
from ikegate.wire.constants import EncrId

WINDOW_SIZES = [32, 128, 1024, 4096]


def accept(window: ReplayWindow, seq_low: int) -> int | None:
    """check + update, as decapsulation does for a packet whose ICV verified."""
    seq = window.check(seq_low)
    if seq is not None:
        window.update(seq)
    return seq


def test_in_order():
    window = ReplayWindow()
    for seq in range(1, 1000):
        assert accept(window, seq) == seq
    assert window.top == 999


def test_zero_is_never_accepted():
    window = ReplayWindow()
    assert window.check(0) is None
    accept(window, 1)
    assert window.check(0) is None


@pytest.mark.parametrize("size", WINDOW_SIZES)
def test_out_of_order_within_window_once(size):
    window = ReplayWindow(size)
    top = 10 * size
    assert accept(window, top) == top
    # Every number still inside the window is accepted exactly once, in any order.
    inside = list(range(top - size + 1, top))
    random.Random(size).shuffle(inside)
    for seq in inside:
        assert accept(window, seq) == seq
    for seq in inside + [top]:
        assert window.check(seq) is None


@pytest.mark.parametrize("size", WINDOW_SIZES)
def test_window_edges(size):
    window = ReplayWindow(size)
    top = 5 * size
    accept(window, top)
    assert window.check(top - size + 1) == top - size + 1  # oldest slot of the window
    assert window.check(top - size) is None  # just outside: too old
    assert window.check(top + 1) == top + 1


def test_duplicates():
    window = ReplayWindow()
    for seq in (1, 2, 5, 3):
        accept(window, seq)
    for seq in (1, 2, 3, 5):
        assert window.check(seq) is None
    assert window.check(4) == 4


def test_check_does_not_move_the_window():
    window = ReplayWindow()
    accept(window, 10)
    assert window.check(500) == 500
    assert window.top == 10
    assert window.check(9) == 9  # still in the window, the 500 was never accepted


@pytest.mark.parametrize("size", WINDOW_SIZES)
def test_jump_far_ahead(size):
    window = ReplayWindow(size)
    for seq in range(1, 50):
        accept(window, seq)
    far = 1_000_000
    assert accept(window, far) == far
    assert window.check(49) is None  # far behind now
    assert window.check(far - size + 1) == far - size + 1  # never seen, inside
    assert window.check(far) is None
    # A jump by exactly the window size keeps only the new top.
    assert accept(window, far + size) == far + size
    assert window.check(far) is None
    assert window.check(far + 1) == far + 1


def test_bad_sizes():
    for size in (0, 31, (1 << 16) + 1):
        with pytest.raises(ValueError):
            ReplayWindow(size)


# --- ESN ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [128, 4096])
def test_esn_wrap_of_low_bits(size):
    window = ReplayWindow(size, esn=True)
    high = 7
    start = (high << 32) | (0xFFFFFFFF - 5)
    window.update(start)
    # The sender crosses into the next 2^32 subspace: low bits restart at 0.
    for seq in range(start + 1, start + 20):
        assert accept(window, seq & 0xFFFFFFFF) == seq
    assert window.top >> 32 == high + 1
    # A late packet from before the wrap (Case B: window straddles the boundary).
    late = (high << 32) | 0xFFFFFFFF - 20
    assert accept(window, late & 0xFFFFFFFF) == late
    assert window.check(late & 0xFFFFFFFF) is None
    # Just below the window, across the wrap: the low bits alone cannot say "too old", so
    # (RFC 4303 A2.2) the number is placed in the current subspace, far ahead.  The real
    # packet carried high bits 7, so its ICV fails; the window stays put.
    below = window.top - size
    assert below >> 32 == high
    assert window.check(below & 0xFFFFFFFF) == ((high + 1) << 32) | (below & 0xFFFFFFFF)


def test_esn_case_a_and_b_inference():
    window = ReplayWindow(128, esn=True)
    # Case A (Tl >= W - 1): numbers below the window belong to the next subspace.
    window.update((3 << 32) | 1000)
    assert window.check(999) == (3 << 32) | 999
    assert window.check(1000 - 127) == (3 << 32) | 873
    assert window.check(1000 - 128) == (4 << 32) | 872  # below the window: next subspace
    assert window.check(5000) == (3 << 32) | 5000
    # Case B (Tl < W - 1): numbers at the top of the low range belong to the previous one.
    window = ReplayWindow(128, esn=True)
    window.update((3 << 32) | 10)
    assert window.check(0xFFFFFFFF) == (2 << 32) | 0xFFFFFFFF
    assert window.check(0xFFFFFFFF - 116) == (2 << 32) | (0xFFFFFFFF - 116)
    assert window.check(0xFFFFFFFF - 117) == (3 << 32) | (0xFFFFFFFF - 117)  # far ahead
    assert window.check(11) == (3 << 32) | 11


def test_esn_end_of_the_64_bit_space():
    window = ReplayWindow(128, esn=True)
    window.update((0xFFFFFFFF << 32) | 1000)
    assert window.check(1001) == (0xFFFFFFFF << 32) | 1001
    assert window.check(5) is None  # would be 2^64 + 5


def test_esn_start_of_sa():
    window = ReplayWindow(128, esn=True)
    # Nothing received: the previous subspace does not exist, and 0 is never sent.
    assert window.check(0xFFFFFFFF) is None
    assert window.check(0) is None
    assert accept(window, 1) == 1


def test_esn_too_old_and_duplicate_across_the_wrap():
    window = ReplayWindow(128, esn=True)
    base = 9 << 32
    window.update(base - 3)  # ...fffffffd in subspace 8
    window.update(base + 2)  # 2 in subspace 9: the window spans the boundary
    assert window.check(0xFFFFFFFD) is None  # seen
    assert window.check(0xFFFFFFFE) == base - 2
    assert window.check(2) is None
    assert window.check(1) == base + 1
    # base + 2 - 127 is the oldest slot, base + 2 - 128 is out.
    assert window.check((base + 2 - 127) & 0xFFFFFFFF) == base + 2 - 127
    # One below: read as the current subspace (far ahead); only the ICV can reject it.
    assert window.check((base + 2 - 128) & 0xFFFFFFFF) == base | ((base + 2 - 128) & 0xFFFFFFFF)


# --- property tests against a reference model ----------------------------------------------


class Model:
    """What RFC 4303 3.4.3 requires, with no cleverness: a set of accepted numbers."""

    def __init__(self, size: int) -> None:
        self.size, self.top, self.seen = size, 0, set()

    def accept(self, seq: int) -> bool:
        if seq == 0 or seq in self.seen or seq <= self.top - self.size:
            return False
        self.seen.add(seq)
        self.top = max(self.top, seq)
        return True


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([32, 128, 1024]),
    seqs=st.lists(st.integers(min_value=0, max_value=3000), max_size=300),
)
def test_matches_model_without_esn(size, seqs):
    window, model = ReplayWindow(size), Model(size)
    for seq in seqs:
        assert (accept(window, seq) is not None) == model.accept(seq)
    assert window.top == model.top


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([32, 128, 1024]),
    start=st.integers(min_value=1, max_value=(1 << 40)),
    steps=st.lists(st.integers(min_value=-40, max_value=40), max_size=300),
)
def test_matches_model_with_esn(size, start, steps):
    """The sender's 64-bit numbers wander around ``start``, by less than the window size
    from the receiver's top; only the low 32 bits are sent, and the receiver must recover
    the full number whenever the model accepts."""
    window, model = ReplayWindow(size, esn=True), Model(size)
    window.update(start)
    model.accept(start)
    seq = start
    for step in steps:
        seq = max(1, min(seq + step, model.top + 40))
        if seq <= model.top - size:
            continue  # inference only promises numbers near the window
        got = window.check(seq & 0xFFFFFFFF)
        expected = model.accept(seq)
        assert (got is not None) == expected
        if expected:
            assert got == seq
            window.update(got)
    assert window.top == model.top


# --- through an SA -------------------------------------------------------------------------


def test_sa_replayed_packet_dropped_without_side_effects():
    keymat = os.urandom(20)
    sender = EspSa(7, EncrId.AES_GCM_16, 128, keymat, None, None)
    receiver = EspSa(7, EncrId.AES_GCM_16, 128, keymat, None, None, replay_window=256)
    inner = b"\x45" + bytes(39)
    packets = [sender.encapsulate(inner, 4) for _ in range(300)]
    for packet in packets[60:]:  # sequence numbers 61..300
        receiver.decapsulate(packet)
    state = (receiver.packets_in, receiver.bytes_in, receiver.last_in, receiver.replay.top)
    # Seen (61, 300), too old (1; 44 is 256 behind 300).
    for packet in (packets[60], packets[299], packets[0], packets[43]):
        with pytest.raises(EspError) as excinfo:
            receiver.decapsulate(packet)
        assert excinfo.value.reason == DROP_REPLAY
    assert (receiver.packets_in, receiver.bytes_in, receiver.last_in, receiver.replay.top) == state
    # 45 is old but inside the 256-packet window and was never received: accepted.
    assert receiver.decapsulate(packets[44]) == (inner, 4)
