"""Fixtures of the client-profile tests: the seed setup and variants of its ipsec.conf.

The seed directory is what ``ikegate example`` writes (seed-config.md's ipsec.conf with a
root -> intermediate -> server PKI for vpn.example.org; the root in ``ca/``, not in
``ipsec.d/cacerts``).  A variant is a copy of it whose ``ipsec.conf`` has some lines
replaced.  Profiles are read with ``trusted=()`` (an empty system trust store) unless a
test says otherwise, so the demo root counts as private whatever the machine trusts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from ikegate.config.loader import load_config
from ikegate.pki.example import ExampleLayout, write_example
from ikegate.pki.keys import load_certificate
from ikegate.profiles.common import ConnProfile, describe_conn

SERVER = "vpn.example.org"

#: a conn that accepts only AEAD ciphers and elliptic curves
NARROW_AEAD = {
    "ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!":
        "ike=aes128gcm16-prfsha256-ecp256!",
    "esp=aes256-aes192-aes128-sha384-sha256-sha1!": "esp=aes128gcm16!",
}
#: a conn that accepts one classic suite and wants PFS on CHILD SA rekeys
NARROW_PFS = {
    "ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!":
        "ike=aes128-sha256-modp2048!",
    "esp=aes256-aes192-aes128-sha384-sha256-sha1!": "esp=aes128-sha1-modp2048!",
}


@pytest.fixture(scope="session")
def seed(tmp_path_factory) -> ExampleLayout:
    return write_example(tmp_path_factory.mktemp("profiles") / "seed", users={"user3": "password3"},
                         ntlm_users=())


@pytest.fixture(scope="session")
def root_cert(seed):
    return load_certificate(seed.root_cert)


@pytest.fixture
def variant(seed, tmp_path) -> Callable[[dict[str, str]], Path]:
    """``make(replacements) -> confdir``: the seed directory with ipsec.conf lines replaced
    (each key must occur in it; a value of "" deletes the line)."""
    count = [0]

    def make(replacements: dict[str, str]) -> Path:
        count[0] += 1
        target = tmp_path / f"variant{count[0]}"
        shutil.copytree(seed.directory, target)
        conf = target / "ipsec.conf"
        text = conf.read_text()
        for old, new in replacements.items():
            assert old in text, old
            text = text.replace(f"    {old}\n", f"    {new}\n" if new else "")
        conf.write_text(text)
        return target

    return make


def describe(confdir: Path, *, conn: str = "myvpn", server: str = SERVER, user: str | None = "user1",
             trusted=(), **kwargs) -> ConnProfile:
    config, _ = load_config(confdir)
    return describe_conn(config, conn, server, user=user, trusted=trusted, **kwargs)
