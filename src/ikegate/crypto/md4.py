"""MD4 (RFC 1320) in pure Python.

MS-CHAPv2 needs MD4 for the NT password hash, and the OpenSSL that ``hashlib`` and
``cryptography`` link here ships MD4 only in its "legacy" provider.  The inputs are tiny
(a UTF-16LE password, a 16-byte hash), so speed does not matter.  MD4 is broken as a
general hash: use it for nothing else.
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF

# RFC 1320 3.4: the order in which rounds 2 and 3 visit the message words, and the
# shift amounts of each round (four per round, repeated).
_ROUND2_ORDER = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_ROUND3_ORDER = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_SHIFTS = ((3, 7, 11, 19), (3, 5, 9, 13), (3, 9, 11, 15))
_ROUND2_CONST = 0x5A827999  # sqrt(2) * 2^30
_ROUND3_CONST = 0x6ED9EBA1  # sqrt(3) * 2^30


def _rotl(value: int, count: int) -> int:
    value &= _MASK
    return ((value << count) | (value >> (32 - count))) & _MASK


def _compress(state: list[int], block: bytes) -> None:
    x = struct.unpack("<16I", block)
    a, b, c, d = state

    for i in range(16):  # round 1: F(x, y, z) = xy v (not x)z
        f = (b & c) | (~b & d)
        a, b, c, d = d, _rotl(a + f + x[i], _SHIFTS[0][i % 4]), b, c
    for i in range(16):  # round 2: G(x, y, z) = xy v xz v yz
        g = (b & c) | (b & d) | (c & d)
        k = _ROUND2_ORDER[i]
        a, b, c, d = d, _rotl(a + g + x[k] + _ROUND2_CONST, _SHIFTS[1][i % 4]), b, c
    for i in range(16):  # round 3: H(x, y, z) = x xor y xor z
        h = b ^ c ^ d
        k = _ROUND3_ORDER[i]
        a, b, c, d = d, _rotl(a + h + x[k] + _ROUND3_CONST, _SHIFTS[2][i % 4]), b, c

    state[0] = (state[0] + a) & _MASK
    state[1] = (state[1] + b) & _MASK
    state[2] = (state[2] + c) & _MASK
    state[3] = (state[3] + d) & _MASK


def md4(data: bytes) -> bytes:
    """The 16-byte MD4 digest of ``data`` (RFC 1320)."""
    data = bytes(data)
    # 3.1/3.2: append a 1 bit, zeros up to 448 mod 512 bits, then the 64-bit bit length.
    bit_length = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_length)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]  # 3.3
    for offset in range(0, len(padded), 64):
        _compress(state, padded[offset : offset + 64])
    return struct.pack("<4I", *state)
