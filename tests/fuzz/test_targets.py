"""The three fuzz targets, in process, with hypothesis (fixed: ``derandomize=True``).

These run whether or not atheris is installed: the seed corpora (real messages, every
mutation mode at every step of a connection) and a fixed number of hypothesis inputs
per target.  The coverage-guided runs are in ``test_atheris.py``.  Plus the checks that
keep the fuzzing honest: the recorded connection really reaches every step, and the
codec oracle catches what it is meant to catch.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.ike.events import IkeSaRekeyed, IkeSaUp
from ikegate.wire.codec import decode_message, describe, encode_message
from ikegate.wire.constants import ExchangeType

from .codec_target import _same_but_reserved, check_codec, check_message, reserved_mask
from .engine_target import MODES, STEPS, check_engine, engine_seeds, recorded_connection
from .esp_target import CONFIGS, check_esp, esp_seeds
from .mutations import Reader, edit_bytes
from .seeds import codec_seeds

def fixed(max_examples: int) -> settings:
    """Reproducible runs: no random seed, no example database, no deadline."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def connection():
    return recorded_connection()


# -- the harness reaches what it claims to ---------------------------------------------------


def test_recorded_connection_reaches_every_step(connection):
    """Every step of the scripted connection happens for real (else its mutations would
    test nothing): the client establishes, rekeys (with PFS once), answers seven gateway
    requests (DPD, the gateway's CHILD rekeys with PFS, its IKE rekey, its Deletes) and
    deletes."""
    specs, session = connection
    assert [step for step, _ in specs] == list(range(len(STEPS)))
    exchanges = [spec.exchange for _, spec in specs]
    assert exchanges[:6] == [ExchangeType.IKE_SA_INIT] + [ExchangeType.IKE_AUTH] * 5
    answers = [spec.response for step, spec in specs if STEPS[step][0].startswith("gateway request")]
    assert answers == [True] * 7
    assert session.client.established
    assert session.net.events_of(IkeSaUp) and len(session.net.events_of(IkeSaRekeyed)) == 2
    requests = [describe(r.message, r.payloads) for r in session.client.requests]
    assert any("CREATE_CHILD_SA request" in r and "N(REKEY_SA)" in r and " KE " in r for r in requests), requests
    assert any("CREATE_CHILD_SA request" in r and "REKEY_SA" not in r for r in requests), requests
    # everything after IKE_SA_INIT went encrypted: mutations are re-sealed with real keys
    assert all(spec.encrypted for _, spec in specs[1:])


def test_engine_seeds():
    """The seed corpus: each step's real plaintext in place of itself, and every mode at
    a few steps."""
    seeds = engine_seeds()
    assert len([s for s in seeds if s[1] == 0]) == len(STEPS)
    assert {s[1] for s in seeds} == set(range(len(MODES)))
    for seed in seeds:
        check_engine(seed)


@pytest.mark.parametrize("step", range(len(STEPS)), ids=[name.replace(" ", "-") for name, _ in STEPS])
@fixed(10)
@given(mode=st.integers(0, len(MODES) - 1), argument=st.binary(max_size=96))
def test_engine_mutation_at_every_step(step, mode, argument):
    check_engine(bytes((step, mode)) + argument)


# -- codec ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codec_corpus():
    return codec_seeds()


def test_codec_seed_corpus(codec_corpus):
    """Every real datagram decodes and re-encodes byte for byte (their reserved bits
    are zero), every real plaintext too."""
    datagrams = [s for s in codec_corpus if len(s) >= 28 and s[17] == 0x20]
    assert len(datagrams) > 20
    for seed in codec_corpus:
        check_codec(seed)
    for datagram in datagrams:
        assert encode_message(check_message(datagram)) == datagram


@fixed(300)
@given(data=st.binary(max_size=700))
def test_codec_any_bytes(data):
    check_codec(data)


@fixed(300)
@given(pick=st.integers(0, 10**6), edits=st.binary(min_size=1, max_size=40))
def test_codec_edited_real_messages(codec_corpus, pick, edits):
    seed = codec_corpus[pick % len(codec_corpus)]
    check_codec(edit_bytes(seed, Reader(edits)))


def _message_with_reserved_bits() -> tuple[bytes, bytes]:
    """A message whose every kind of reserved field is non-zero, and the same message
    with them zeroed by hand (RFC 7296 3.1, 3.2, 3.3.1, 3.3.2, 3.4, 3.5, 3.13, 3.15)."""
    def payload(next_type: int, flags: int, body: bytes) -> bytes:
        return struct.pack("!BBH", next_type, flags, 4 + len(body)) + body

    transform = struct.pack("!BBHBBH", 0, 0x5A, 8, 1, 0xA5, 12)  # ENCR AES-CBC, reserved 0x5A, 0xA5
    proposal = struct.pack("!BBHBBBB", 0, 0x77, 8 + len(transform), 1, 1, 0, 1) + transform
    ke = struct.pack("!HH", 2, 0xBEEF) + bytes(8)
    idi = bytes((1, 9, 9, 9)) + bytes(4)
    ts = bytes((1, 7, 7, 7)) + struct.pack("!BBHHH", 7, 0, 16, 0, 65535) + bytes(4) + b"\xff" * 4
    cp = bytes((1, 3, 3, 3)) + struct.pack("!HH", 0x8001, 0)  # R bit on INTERNAL_IP4_ADDRESS
    chain = (payload(34, 0x01, proposal) + payload(35, 0x7F, ke) + payload(44, 0x80 | 0x40, idi)
             + payload(47, 0x02, ts) + payload(0, 0x10, cp))
    header = struct.pack("!8s8sBBBBII", b"i" * 8, bytes(8), 33, 0x20, 34, 0x08 | 0x01 | 0x80, 0, 28 + len(chain))
    data = header + chain
    zeroed = bytearray(data)
    zeroed[19] = 0x08
    pos = 28
    for body_offsets in ((1, 8 + 1, 8 + 5), (2, 3), (1, 2, 3), (1, 2, 3), (1, 2, 3)):
        length = struct.unpack_from("!H", data, pos + 2)[0]
        zeroed[pos + 1] &= 0x80  # keep only the critical bit
        for offset in body_offsets:
            zeroed[pos + 4 + offset] = 0
        if pos + length == len(data):  # the CP payload: the R bit of its attribute
            zeroed[pos + 8] &= 0x7F
        pos += length
    return data, bytes(zeroed)


def test_codec_zeroes_reserved_bits_and_keeps_the_rest():
    """The codec docstring's promise, checked by hand on one message: the re-encoding
    equals the input with exactly its reserved bits cleared; the fuzz oracle agrees."""
    data, zeroed = _message_with_reserved_bits()
    msg = decode_message(data)
    assert encode_message(msg) == zeroed
    assert check_message(data) == msg  # the oracle accepts this difference ...
    mask = reserved_mask(data)
    assert bytes(b & ~m & 0xFF for b, m in zip(data, mask)) == zeroed


def test_codec_oracle_catches_changed_bits():
    """... and refuses any other: the critical bit, a length, a flag, a type."""
    data, zeroed = _message_with_reserved_bits()
    mask = reserved_mask(data)
    for position, bit in ((28 + 1, 0x80), (19, 0x20), (18, 0x01), (28 + 3, 0x01), (16, 0x04)):
        changed = bytearray(zeroed)
        changed[position] ^= bit
        with pytest.raises(AssertionError):
            _same_but_reserved(data, bytes(changed), mask, "message")
    with pytest.raises(AssertionError):
        _same_but_reserved(data, zeroed + b"\0", mask, "message")


# -- ESP -----------------------------------------------------------------------------------------


def test_esp_seed_corpus():
    seeds = esp_seeds()
    assert {s[0] for s in seeds} == set(range(len(CONFIGS)))
    for seed in seeds:
        check_esp(seed)


@fixed(300)
@given(data=st.binary(max_size=600))
def test_esp_any_input(data):
    check_esp(data)
