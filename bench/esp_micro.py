"""Micro-benchmark of ikegate's ESP packet layer: microseconds per packet, no I/O.

Run: ``python bench/esp_micro.py [--reps N] [--number N]``.  For each transform and inner
packet size (64, 512, 1400 bytes, an IPv4 header in front) it times
``EspSa.encapsulate`` and ``EspSa.decapsulate`` and prints the best of ``--reps`` runs of
``--number`` calls (the minimum is the least disturbed by other load on the machine).
Decapsulation is timed on distinct, in-order packets, so the replay window does real work.

A second table justifies the CBC design: AES-256-CBC/HMAC-SHA2-256-128 with a new
``Cipher(...).encryptor()``/``decryptor()`` per packet (the textbook way), next to
``EspSa``'s one continuous context per SA.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ikegate.esp import EspSa
from ikegate.wire.constants import EncrId, IntegId

SIZES = (64, 512, 1400)

TRANSFORMS = [
    ("AES-128-GCM-16", EncrId.AES_GCM_16, 128, 16 + 4, None, 0),
    ("AES-256-GCM-16", EncrId.AES_GCM_16, 256, 32 + 4, None, 0),
    ("ChaCha20-Poly1305", EncrId.CHACHA20_POLY1305, 256, 32 + 4, None, 0),
    ("AES-256-CBC/HMAC-SHA2-256-128", EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_256_128, 32),
    ("AES-128-CBC/HMAC-SHA1-96", EncrId.AES_CBC, 128, 16, IntegId.HMAC_SHA1_96, 20),
]


def inner_packet(size: int) -> bytes:
    """An IPv4-looking packet of ``size`` bytes (version nibble 4, random rest)."""
    return b"\x45" + os.urandom(size - 1)


def best_us(func, packets, reps: int) -> float:
    """Best-of-``reps`` microseconds per call of ``func`` over ``packets``."""
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for packet in packets:
            func(packet)
        best = min(best, (time.perf_counter() - start) / len(packets))
    return best * 1e6


def bench(name, encr_id, key_bits, encr_len, integ_id, integ_len, size, number, reps):
    encr_key, integ_key = os.urandom(encr_len), os.urandom(integ_len) if integ_id else None

    def make() -> EspSa:
        return EspSa(0x01020304, encr_id, key_bits, encr_key, integ_id, integ_key)

    inner = inner_packet(size)
    sender = make()
    enc_us = best_us(lambda p: sender.encapsulate(p, 4), [inner] * number, reps)
    # Decapsulation needs fresh sequence numbers for every repetition.
    best = float("inf")
    for _ in range(reps):
        receiver, source = make(), make()
        packets = [source.encapsulate(inner, 4) for _ in range(number)]
        best = min(best, best_us(receiver.decapsulate, packets, 1))
    return enc_us, best


def per_packet_cbc(size: int, number: int, reps: int) -> tuple[float, float]:
    """AES-256-CBC/HMAC-SHA2-256-128 ESP with fresh cipher contexts for every packet."""
    key, mac_key = os.urandom(32), os.urandom(32)
    base_mac = crypto_hmac.HMAC(mac_key, hashes.SHA256())
    header = bytes(8)
    inner = inner_packet(size)
    pad = -(size + 2) % 16
    trailer = bytes(range(1, pad + 1)) + bytes((pad, 4))

    def encap(packet: bytes) -> bytes:
        iv = os.urandom(16)
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = header + iv + encryptor.update(packet + trailer) + encryptor.finalize()
        mac = base_mac.copy()
        mac.update(body)
        return body + mac.finalize()[:16]

    def decap(packet: bytes) -> bytes:
        mac = base_mac.copy()
        mac.update(packet[:-16])
        if not hmac.compare_digest(mac.finalize()[:16], packet[-16:]):
            raise ValueError("icv")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(packet[8:24])).decryptor()
        plain = decryptor.update(packet[24:-16]) + decryptor.finalize()
        return plain[: len(plain) - 2 - plain[-2]]

    packets = [encap(inner) for _ in range(number)]
    return best_us(encap, [inner] * number, reps), best_us(decap, packets, reps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--number", type=int, default=5000)
    args = parser.parse_args(argv)
    print(f"# Python {sys.version.split()[0]}, best of {args.reps} x {args.number} packets")
    print(f"{'transform':32s} {'bytes':>6s} {'encap us':>9s} {'decap us':>9s}")
    for name, *params in TRANSFORMS:
        for size in SIZES:
            enc, dec = bench(name, *params, size, args.number, args.reps)
            print(f"{name:32s} {size:6d} {enc:9.2f} {dec:9.2f}")
    print()
    print("# AES-256-CBC/HMAC-SHA2-256-128: new cipher context per packet vs EspSa's")
    print(f"{'variant':32s} {'bytes':>6s} {'encap us':>9s} {'decap us':>9s}")
    cbc = TRANSFORMS[3]
    for size in SIZES:
        enc, dec = per_packet_cbc(size, args.number, args.reps)
        print(f"{'new context per packet':32s} {size:6d} {enc:9.2f} {dec:9.2f}")
        enc, dec = bench(*cbc, size, args.number, args.reps)
        print(f"{'EspSa (continuous context)':32s} {size:6d} {enc:9.2f} {dec:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
