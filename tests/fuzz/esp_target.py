"""Fuzz target for the ESP input path, :meth:`ikegate.esp.EspSa.decapsulate`.

One input is ``configuration | mode | argument``:

* the configuration picks one of :data:`CONFIGS` (AES-GCM with 8/12/16-byte ICVs,
  ChaCha20-Poly1305, AES-CBC and 3DES with HMACs, with and without ESN and tunnel mode);
* ``raw``: the argument is a list of length-prefixed packets, decapsulated in order;
* ``forged``: a list of (sequence number, plaintext) pairs, each sealed *validly* with
  the SA's inbound keys by :func:`seal_raw` (an independent sealer over
  ``cryptography``'s primitives, RFC 4303/4106/7634 layouts), so the plaintext checks
  behind the ICV (padding, Pad Length, Next Header, the inner IP version) and the replay
  window get fuzzed; for 32-bit sequence numbers the outcome is compared with
  :func:`expected_outcome`, a reference model of RFC 4303 2.4, 2.6, 3.4.3;
* ``flipped``: real packets of the peer's ``encapsulate``, with byte edits.

Invariants: ``decapsulate`` raises only :class:`~ikegate.esp.EspError` with a documented
``reason``; a packet is never accepted twice; a dropped packet changes neither the
counters nor the replay window; the window's bitmap stays within its size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ikegate.esp import (
    DROP_DUMMY,
    DROP_NEXT_HEADER,
    DROP_PADDING,
    DROP_REASONS,
    DROP_REPLAY,
    DROP_SHORT,
    EspError,
    EspSa,
)
from ikegate.wire.constants import EncrId, IntegId

from .mutations import Reader, edit_bytes

__all__ = ["CONFIGS", "Config", "check_esp", "esp_seeds", "expected_outcome", "make_sa", "seal_raw"]


@dataclass(frozen=True)
class Config:
    encr: int
    key_bits: int
    integ: int | None
    esn: bool = False
    tunnel: bool = True
    window: int = 32

    @property
    def aead(self) -> bool:
        return self.integ is None

    @property
    def encr_key_len(self) -> int:
        return self.key_bits // 8 + (4 if self.aead else 0)

    @property
    def integ_key_len(self) -> int:
        return {IntegId.HMAC_MD5_96: 16, IntegId.HMAC_SHA1_96: 20, IntegId.HMAC_SHA2_256_128: 32,
                IntegId.HMAC_SHA2_384_192: 48, IntegId.HMAC_SHA2_512_256: 64}.get(self.integ, 0)

    @property
    def block(self) -> int:
        return {EncrId.AES_CBC: 16, EncrId.TRIPLE_DES: 8}.get(self.encr, 4)


CONFIGS = (
    Config(EncrId.AES_GCM_16, 128, None),
    Config(EncrId.AES_GCM_16, 256, None, esn=True),
    Config(EncrId.AES_GCM_8, 128, None, tunnel=False),
    Config(EncrId.AES_GCM_12, 192, None),
    Config(EncrId.CHACHA20_POLY1305, 256, None, esn=True),
    Config(EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
    Config(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128, esn=True, window=64),
    Config(EncrId.TRIPLE_DES, 192, IntegId.HMAC_MD5_96, tunnel=False),
    Config(EncrId.AES_CBC, 192, IntegId.HMAC_SHA2_512_256, window=128),
)

SPI = 0xC0FFEE01
_HASHES = {IntegId.HMAC_MD5_96: (hashes.MD5, 12), IntegId.HMAC_SHA1_96: (hashes.SHA1, 12),
           IntegId.HMAC_SHA2_256_128: (hashes.SHA256, 16), IntegId.HMAC_SHA2_384_192: (hashes.SHA384, 24),
           IntegId.HMAC_SHA2_512_256: (hashes.SHA512, 32)}  # fmt: skip
_AEAD_ICV = {EncrId.AES_GCM_8: 8, EncrId.AES_GCM_12: 12, EncrId.AES_GCM_16: 16, EncrId.CHACHA20_POLY1305: 16}


def _keys(config: Config) -> tuple[bytes, bytes | None]:
    encr = bytes((i * 7 + 1) & 0xFF for i in range(config.encr_key_len))
    integ = bytes((i * 13 + 5) & 0xFF for i in range(config.integ_key_len)) if config.integ else None
    return encr, integ


def make_sa(config: Config) -> EspSa:
    encr_key, integ_key = _keys(config)
    return EspSa(SPI, config.encr, config.key_bits, encr_key, config.integ, integ_key, esn=config.esn,
                 replay_window=config.window, tunnel=config.tunnel)


def seal_raw(config: Config, seq: int, plaintext: bytes, *, iv: bytes = bytes(16), spi: int = SPI) -> bytes:
    """An ESP packet carrying ``plaintext`` (payload | padding | Pad Length | Next Header,
    as given: anything) with a valid ICV, built independently of ``ikegate.esp``."""
    encr_key, integ_key = _keys(config)
    header = struct.pack("!II", spi, seq & 0xFFFFFFFF)
    if config.aead:
        key, salt = encr_key[:-4], encr_key[-4:]
        explicit = iv[:8].ljust(8, b"\0")
        aad = struct.pack("!IQ", spi, seq) if config.esn else header
        if config.encr == EncrId.CHACHA20_POLY1305:
            sealed = ChaCha20Poly1305(key).encrypt(salt + explicit, plaintext, aad)
        else:
            sealed = AESGCM(key).encrypt(salt + explicit, plaintext, aad)
            sealed = sealed[: len(sealed) - 16 + _AEAD_ICV[config.encr]]  # a truncated tag (SP 800-38D 5.2.1.2)
        return header + explicit + sealed
    block = config.block
    algorithm = TripleDES(encr_key) if config.encr == EncrId.TRIPLE_DES else algorithms.AES(encr_key)
    first = iv[:block].ljust(block, b"\0")
    encryptor = Cipher(algorithm, modes.CBC(first)).encryptor()
    body = first + encryptor.update(plaintext) + encryptor.finalize()
    hash_cls, icv_len = _HASHES[config.integ]
    mac = hmac.HMAC(integ_key, hash_cls())
    mac.update(header + body)
    if config.esn:
        mac.update(struct.pack("!I", seq >> 32))
    return header + body + mac.finalize()[:icv_len]


def expected_outcome(config: Config, plaintext: bytes, seq: int, seen: set[int], top: int) -> str | None:
    """What RFC 4303 says happens to a validly sealed packet (32-bit sequence numbers):
    None if accepted, else the drop reason.  ``seen``/``top``: numbers accepted so far."""
    if len(plaintext) < 2:  # shorter than the smallest packet: dropped before anything else
        return DROP_SHORT
    if seq == 0 or seq in seen or (top and seq <= top - config.window):
        return DROP_REPLAY
    pad, next_header = plaintext[-2], plaintext[-1]
    end = len(plaintext) - 2 - pad
    if end < 0 or plaintext[end:-2] != bytes(range(1, pad + 1)):
        return DROP_PADDING
    if next_header == 59:
        return DROP_DUMMY
    if config.tunnel and (end == 0 or {4: 4, 41: 6}.get(next_header) != plaintext[0] >> 4):
        return DROP_NEXT_HEADER
    return None


def _decap(sa: EspSa, packet: bytes):
    """decapsulate, checking that a drop changes nothing; (result or None, reason)."""
    before = (sa.packets_in, sa.bytes_in, sa.replay.top, sa.replay._bitmap)
    try:
        inner, next_header = sa.decapsulate(packet)
    except EspError as exc:
        if exc.reason not in DROP_REASONS:
            raise AssertionError(f"undocumented drop reason {exc.reason!r}") from exc
        if (sa.packets_in, sa.bytes_in, sa.replay.top, sa.replay._bitmap) != before:
            raise AssertionError(f"a packet dropped for {exc.reason} changed the SA") from exc
        return None, exc.reason
    if sa.packets_in != before[0] + 1 or sa.bytes_in != before[1] + len(inner):
        raise AssertionError("counters do not count the accepted packet")
    if not isinstance(inner, bytes) or not 0 <= next_header <= 255:
        raise AssertionError(f"decapsulate returned {type(inner).__name__}, {next_header!r}")
    if sa.replay._bitmap >> sa.replay.size:
        raise AssertionError("replay bitmap grew beyond the window")
    return (inner, next_header), None


def _packets(reader: Reader) -> list[bytes]:
    packets = []
    while reader.left and len(packets) < 64:
        packets.append(reader.take(reader.u16() % 2048))
    return packets


def check_esp(data: bytes) -> None:
    """One fuzz input (see the module docstring)."""
    reader = Reader(bytes(data))
    config = CONFIGS[reader.below(len(CONFIGS))]
    mode = reader.u8() % 3
    sa = make_sa(config)
    accepted: set[int] = set()
    if mode == 0:
        for packet in _packets(reader):
            if len(packet) >= 8 and reader.u8() & 1:
                packet = struct.pack("!I", SPI) + packet[4:]
            _decap(sa, packet)
        return
    if mode == 1:
        seen: set[int] = set()
        top = 0
        for _ in range(32):
            if not reader.left:
                break
            seq = reader.u32() if not config.esn else (reader.u8() % 3) << 32 | reader.u32()
            plaintext = reader.take(reader.u8() % 160)
            if not config.aead:  # CBC: whole blocks (the trailer is still the input's)
                plaintext = plaintext[: len(plaintext) - len(plaintext) % config.block] or bytes(config.block)
            packet = seal_raw(config, seq, plaintext, iv=reader.take(16))
            result, reason = _decap(sa, packet)
            if result is not None:
                if seq in accepted:  # (with ESN, accepted means the high bits were inferred right)
                    raise AssertionError(f"sequence number {seq} accepted twice")
                accepted.add(seq)
            if not config.esn:
                expected = expected_outcome(config, plaintext, seq, seen, top)
                if (reason, result is None) != (expected, expected is not None):
                    raise AssertionError(f"seq {seq} plaintext {plaintext.hex()}: got {reason}, RFC 4303 says {expected}")
                if result is not None:
                    end = len(plaintext) - 2 - plaintext[-2]
                    if result != (plaintext[:end], plaintext[-1]):
                        raise AssertionError("decapsulate returned another payload than was sealed")
                    seen.add(seq)
                    top = max(top, seq)
        return
    peer = make_sa(config)
    inner = bytes((0x45,)) + reader.take(reader.u8() % 100) if config.tunnel else reader.take(reader.u8() % 100)
    for _ in range(1 + reader.u8() % 8):
        packet = peer.encapsulate(inner, 4 if config.tunnel else reader.u8())
        edited = edit_bytes(packet, reader, max_edits=3) if reader.u8() % 4 else packet
        result, reason = _decap(sa, edited)
        if result is not None and edited != packet:
            # an edit that still verifies can only be one the ICV does not cover: none
            raise AssertionError(f"an edited packet was accepted ({reason})")
        if result is None and edited == packet and reason != DROP_DUMMY:
            raise AssertionError(f"a real packet was dropped: {reason}")


def esp_seeds() -> list[bytes]:
    """A few inputs per configuration and mode: real packets, forged ones, edits."""
    seeds = []
    for index, config in enumerate(CONFIGS):
        peer = make_sa(config)
        inner = bytes.fromhex("4500001c000000004011000000000000000000000000000000000000")
        packets = [peer.encapsulate(inner, 4) for _ in range(3)]
        raw = b"".join(struct.pack("!H", len(p)) + p + b"\1" for p in packets)
        seeds.append(bytes((index, 0)) + raw)
        pad = -(len(inner) + 2) % config.block
        plain = inner + bytes(range(1, pad + 1)) + bytes((pad, 4))
        forged = b"".join(struct.pack("!I", seq) + bytes((len(plain),)) + plain + bytes(16) for seq in (1, 3, 2, 3))
        if config.esn:
            forged = b"".join(b"\0" + struct.pack("!I", seq) + bytes((len(plain),)) + plain + bytes(16)
                              for seq in (1, 3, 2))
        seeds.append(bytes((index, 1)) + forged)
        seeds.append(bytes((index, 2, 20)) + inner[1:21] + bytes((4, 0, 3, 1, 0, 5)))
    return seeds

