"""The indexed secret lookup must pick exactly what strongSwan's linear best-match scan
picks (credential_manager.c get_shared over mem_cred.c shared_filter): the scan is
written out here as the oracle and both run on random tables of users, wildcards,
%any, DNs, addresses and key ids."""

from __future__ import annotations

import random

import pytest

from ikegate.config.secrets import Secrets, SecretEntry
from ikegate.identity import MATCH_NONE, MATCH_PERFECT, Identity

SELECTORS = ["user1", "User1", "user2", "alice@example.org", "*@example.org", "*.example.org",
             "vpn.example.org", "VPN.example.org", "%any", "CN=vpn.example.org", "CN=*", "192.0.2.1",
             "192.0.2.0/24", "keyid:0a0b", "@#0a0b", "carol", "*"]  # fmt: skip
LOOKUPS = ["user1", "USER1", "user2", "alice@example.org", "bob@example.org", "vpn.example.org",
           "CN=vpn.example.org", "192.0.2.1", "192.0.2.7", "carol", "dave", "keyid:0a0b", "%any"]  # fmt: skip


def brute_force(entries, shared_class, me, other):
    best, best_me, best_other = None, MATCH_NONE, MATCH_NONE
    for entry in reversed(entries):
        if entry.shared_class != shared_class:
            continue
        match_me = max((me.matches(s) for s in entry.selectors), default=0) if me is not None else 0
        match_other = max((other.matches(s) for s in entry.selectors), default=0) if other is not None else 0
        if (me is not None or other is not None) and not match_me and not match_other:
            continue
        if match_other > best_other or (match_other == best_other and match_me > best_me):
            best, best_me, best_other = entry, match_me, match_other
        if best_me == MATCH_PERFECT and best_other == MATCH_PERFECT:
            break
    return best


@pytest.mark.parametrize("seed", range(40))
def test_index_agrees_with_the_scan(seed):
    rng = random.Random(seed)
    entries = []
    for n in range(rng.randint(1, 25)):
        selectors = tuple(Identity.parse(rng.choice(SELECTORS)) for _ in range(rng.choice((0, 1, 1, 1, 2))))
        kind = rng.choice(("EAP", "NTLM", "PSK"))
        entries.append(SecretEntry(selectors, kind, value=f"secret{n}".encode(), source=("t", n + 1)))
    secrets = Secrets(entries)
    kept = list(secrets.entries)  # after add()'s de-duplication
    for _ in range(60):
        me = None if rng.random() < 0.2 else Identity.parse(rng.choice(LOOKUPS))
        other = None if rng.random() < 0.2 else Identity.parse(rng.choice(LOOKUPS))
        for shared_class in ("EAP", "NTLM", "IKE"):
            assert secrets.find_shared(shared_class, me, other) is brute_force(kept, shared_class, me, other)


def test_many_users_found():
    entries = [SecretEntry((Identity.parse(f"user{n}"),), "EAP", value=f"pw{n}".encode()) for n in range(5000)]
    entries.append(SecretEntry((Identity.parse("*@example.org"),), "EAP", value=b"domain"))
    secrets = Secrets(entries)
    server = Identity.parse("CN=vpn.example.org")
    assert secrets.find_eap("user4321", server) == ("EAP", b"pw4321")
    assert secrets.find_eap("USER17", server) == ("EAP", b"pw17")  # FQDN-type names: case-insensitive
    assert secrets.find_eap("zoe@example.org", server) == ("EAP", b"domain")
    assert secrets.find_eap("nobody", server) is None
    secrets.add(SecretEntry((Identity.parse("nobody"),), "NTLM", value=bytes(16)))
    assert secrets.find_eap("nobody", server) == ("NTLM", bytes(16))  # the index follows add()
