"""EAP-Identity helpers and eap_identity= matching (strongSwan identification.c semantics)."""

from __future__ import annotations

import pytest

from ikegate.eap.identity import (
    build_identity_request,
    identity_key,
    identity_matches,
    is_any_rule,
    parse_identity_response,
)
from ikegate.eap.packet import EapPacket
from ikegate.wire.constants import EapCode, EapType


def test_request() -> None:
    assert build_identity_request(0x42).encode() == bytes.fromhex("0142000501")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"alice", "alice"),
        (b"CORP\\alice", "CORP\\alice"),
        (b"", None),  # empty: use the IKE identity
        (b"\x00", None),  # strongSwan reads a C string
        (b"bob\x00junk", "bob"),
        ("jürgen".encode(), "jürgen"),
    ],
)
def test_parse_response(data: bytes, expected: str | None) -> None:
    assert parse_identity_response(EapPacket(EapCode.RESPONSE, 1, EapType.IDENTITY, data)) == expected


def test_undecodable_identity_bytes_stay_distinct() -> None:
    a = parse_identity_response(EapPacket(EapCode.RESPONSE, 1, EapType.IDENTITY, b"\xff"))
    b = parse_identity_response(EapPacket(EapCode.RESPONSE, 1, EapType.IDENTITY, b"\xfe"))
    assert a != b
    assert a.encode("utf-8", "surrogateescape") == b"\xff"


@pytest.mark.parametrize("rule", [None, "%any", "%identity", "%any6", "*"])
def test_any_rules(rule: str | None) -> None:
    assert identity_matches("whoever", rule)
    assert identity_matches("192.0.2.1", rule)
    assert is_any_rule(rule) == (rule is not None)


@pytest.mark.parametrize(
    ("identity", "rule", "expected"),
    [
        ("alice", "alice", True),
        ("ALICE", "alice", True),  # FQDN ids compare case-insensitively
        ("Alice@Example.org", "alice@example.ORG", True),  # RFC822 too
        ("alice", "bob", False),
        ("alice@example.org", "*@example.org", True),  # leading wildcard
        ("bob@EXAMPLE.org", "*@example.org", True),
        ("@example.org", "*@example.org", False),  # shorter than the rule
        ("alice@example.com", "*@example.org", False),
        ("host.example.org", "*.example.org", True),
        ("alice@host.example.org", "*.example.org", False),  # RFC822 vs FQDN
        ("alice", "@alice", True),  # '@' prefix forces FQDN
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("2001:db8::1", "2001:DB8:0::1", True),
        ("192.0.2.1", "alice", False),  # Windows' IKE id is its IP address
        ("CN=alice", "CN=alice", True),
        ("j\u00fcrgen", "J\u00dcRGEN", False),  # only ASCII is folded, like strncasecmp
        ("al\x00ice", "al\x00ice", False),
    ],
)
def test_concrete_rules(identity: str, rule: str, expected: bool) -> None:
    assert identity_matches(identity, rule) is expected


def test_predicate_rule() -> None:
    assert identity_matches("alice", lambda identity: identity.startswith("a"))
    assert not identity_matches("bob", lambda identity: identity.startswith("a"))


def test_identity_key() -> None:
    assert identity_key("Alice@Example.org") == identity_key("alice@example.org")
    assert identity_key("ALICE") == identity_key("alice")
    assert identity_key("alice") != identity_key("alice@x")
    assert identity_key("192.0.2.1") != identity_key("192.0.2.2")
