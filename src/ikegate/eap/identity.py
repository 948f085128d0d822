"""EAP-Identity (RFC 3748 section 5.1), server side, and ``eap_identity=`` matching.

The server sends Request/Identity with no data; the peer answers with its
identity as Type-Data.  Like strongSwan's eap_identity plugin (5.9 and 6.0.3+,
strongswan/strongswan#2833) an empty identity is accepted and means "use the IKE
identity"; strongSwan reads the data as a C string, so it ends at the first NUL.

``eap_identity=`` values (strongSwan's stroke_config.c / identification.c):
``%any``, ``%identity`` and the other ID_ANY spellings accept everything; a
concrete value must match the received identity.  Matching follows
``identification_t.matches`` for the string types: FQDN and RFC822 ids compare
ASCII-case-insensitively and the rule may start with a ``*`` wildcard that
matches any prefix (``*@example.org``); other kinds compare exactly.  A caller
with its own identity model may pass a predicate instead of a string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Union

from ikegate.eap.mschapv2 import printable
from ikegate.eap.packet import EapPacket
from ikegate.wire.constants import EapCode, EapType

__all__ = [
    "ANY_IDENTITY_RULES",
    "IdentityRule",
    "build_identity_request",
    "decode_identity",
    "identity_key",
    "identity_matches",
    "is_any_rule",
    "parse_identity_response",
]

#: An ``eap_identity=`` setting: None (unset: no EAP-Identity round), a string
#: (``%any``/``%identity`` or a concrete identity) or a predicate.
IdentityRule = Union[None, str, Callable[[str], bool]]

#: Strings strongSwan turns into an ID_ANY identity (identification.c), plus
#: ``%identity`` which stroke_config.c maps to ID_ANY for eap_identity.
ANY_IDENTITY_RULES = frozenset({"%any", "%any6", "%identity", "*", "0.0.0.0", "::", "0::0"})


def build_identity_request(identifier: int) -> EapPacket:
    """Request/Identity with no displayable message."""
    return EapPacket(EapCode.REQUEST, identifier, EapType.IDENTITY)


def decode_identity(data: bytes) -> str:
    """Identity bytes as text: up to the first NUL, UTF-8 with undecodable bytes
    kept as surrogate escapes (so distinct byte strings stay distinct)."""
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_identity_response(packet: EapPacket) -> str | None:
    """The identity of a Response/Identity, or None if it is empty (then the
    IKE identity is to be used)."""
    identity = decode_identity(packet.data)
    return identity or None


def identity_of_response(packet: EapPacket, ike_identity: str) -> tuple[str, str]:
    """The EAP identity a Response/Identity gives, or the IKE identity when it is empty
    (strongSwan assumes that one), with the log note saying which."""
    received = parse_identity_response(packet)
    if received is None:
        return ike_identity, f"client did not send an EAP identity, assume IKE identity '{printable(ike_identity)}'"
    return received, f"received EAP identity '{printable(received)}'"


def is_any_rule(rule: IdentityRule) -> bool:
    """True for ``%any``/``%identity`` style rules that accept every identity."""
    return isinstance(rule, str) and rule in ANY_IDENTITY_RULES


def _classify(text: str) -> tuple[str, str | bytes]:
    """Identity kind and comparable value, after strongSwan's string parser."""
    if text.startswith("@@"):
        return "rfc822", text[2:]
    if text.startswith("@#"):
        return "keyid", text[2:].lower()
    if text.startswith("@"):
        return "fqdn", text[1:]
    if "=" in text:
        return "dn", text
    if "@" in text:
        return "rfc822", text
    try:
        return "ip", ipaddress.ip_address(text).packed
    except ValueError:
        pass
    if ":" in text:
        return "keyid", text
    return "fqdn", text


def _ascii_fold(text: str) -> bytes:
    # strncasecmp() in the C locale folds ASCII letters only
    return text.encode("utf-8", "surrogateescape").lower()


def identity_key(identity: str) -> tuple[str, str | bytes]:
    """A key under which identities strongSwan considers equal collide (FQDN
    and RFC822 case-insensitively); usable as the lease key of a pool."""
    kind, value = _classify(identity)
    if kind in ("fqdn", "rfc822") and isinstance(value, str):
        return kind, _ascii_fold(value)
    return kind, value


def identity_matches(identity: str, rule: IdentityRule) -> bool:
    """Does a received EAP identity satisfy the configured ``eap_identity``?"""
    if rule is None or is_any_rule(rule):
        return True
    if callable(rule):
        return bool(rule(identity))
    if "\0" in identity or "\0" in rule:
        return False
    kind, value = _classify(identity)
    rule_kind, rule_value = _classify(rule)
    if kind != rule_kind:
        return False
    if kind in ("fqdn", "rfc822") and isinstance(value, str) and isinstance(rule_value, str):
        folded = _ascii_fold(value)
        if folded == _ascii_fold(rule_value):
            return True
        # a leading '*' matches any prefix; the identity must be at least as
        # long as the whole rule (identification.c matches_string)
        rule_folded = _ascii_fold(rule_value)
        if rule_folded.startswith(b"*") and len(folded) >= len(rule_folded):
            return folded.endswith(rule_folded[1:])
        return False
    return value == rule_value
