"""Pure-Python MD4 against RFC 1320 and pycryptodome.

RFC 1320 appendix A.5 ("Test suite"), values as listed in pycryptodome's
Crypto/SelfTest/Hash/test_MD4.py under "Test vectors from RFC 1320".
"""

from __future__ import annotations

import pytest
from Crypto.Hash import MD4 as PyMD4
from hypothesis import given, settings
from hypothesis import strategies as st

from ikegate.crypto.md4 import md4

RFC1320_A5 = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize("message,digest", RFC1320_A5)
def test_rfc1320_suite(message, digest):
    assert md4(message) == bytes.fromhex(digest)


@pytest.mark.parametrize("length", [55, 56, 57, 63, 64, 65, 119, 120, 128, 1000])
def test_padding_boundaries_match_pycryptodome(length):
    data = bytes(i % 251 for i in range(length))
    assert md4(data) == PyMD4.new(data).digest()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_inputs_match_pycryptodome(data):
    assert md4(data) == PyMD4.new(data).digest()
