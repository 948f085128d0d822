"""IKEv2 redirect (RFC 5685), the gateway's side, during IKE_SA_INIT only.

A gateway carrying more IKE SAs than it should sends a new client elsewhere: the
IKE_SA_INIT response then carries nothing but a REDIRECT notify naming the new gateway
(with the client's Ni as Nonce Data, which the client checks: strongSwan drops a REDIRECT
whose nonce is not its own), and
the IKE SA is dropped before any key exchange is computed.  Only clients that announced
REDIRECT_SUPPORTED are redirected; others are served as if redirect were off.  A client
that arrives with REDIRECTED_FROM (already redirected once) is served here, never sent on
again, so two gateways over their thresholds cannot bounce a client between them.
strongSwan 5.9.8 checks proposals first, then redirects, then checks the KE group
(``ike_init.c`` ``build_r``); so does :func:`redirect_on_init`.

strongSwan has no configuration-file redirect provider (only a plugin interface), so the
rule lives in ikegate's own strongswan.conf section::

    ikegate {
        redirect {
            threshold = 100        # redirect when this gateway has more IKE SAs than this
            gateways {
                gw2 {
                    address = 192.0.2.2
                    capacity = 500
                }
                gw3 {
                    address = vpn3.example.com
                    capacity = 1000
                }
            }
        }
    }

The load is every IKE SA the gateway holds (half-open, established, being rekeyed or
deleted; the new client's own half-open SA included), the number ``charon.ikesa_limit``
is compared with too.  ``threshold = 0`` (the default) redirects every supporting client:
a gateway being drained for maintenance.  Targets are chosen by smooth weighted round
robin, ``capacity`` being the weight (``capacity = 0`` lists a gateway that gets nobody);
a target whose address is the one the request arrived on is skipped.  Without any valid
gateway, redirect is off; an unparsable or negative threshold also turns it off (a typo
must not redirect everyone), reported by :func:`redirect_problems`.

Notify data (RFC 5685 section 9; the layout scapy, strongSwan and libreswan share)::

    GW Ident Type (1 octet: 1 IPv4, 2 IPv6, 3 FQDN) | GW Ident Len (1 octet)
    | New Responder GW Identity | Nonce Data (REDIRECT in IKE_SA_INIT: Ni; else empty)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ikegate.ike.exchange import Abort, Exchange
from ikegate.log import get_logger
from ikegate.wire.constants import NotifyType

log = get_logger("cfg")

GW_IPV4, GW_IPV6, GW_FQDN = 1, 2, 3
SECTION = "ikegate.redirect"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class RedirectError(ValueError):
    """Malformed redirect notify data, or a gateway address that cannot be sent."""


# -- the notify data ----------------------------------------------------------------------


def gateway_identity(address: str) -> tuple[int, bytes]:
    """(GW Ident Type, identity bytes) of an IP address or a host name."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        name = address.rstrip(".")
        labels = name.split(".")
        if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise RedirectError(f"'{address}' is neither an IP address nor a host name") from None
        return GW_FQDN, name.encode("ascii")
    return (GW_IPV4 if ip.version == 4 else GW_IPV6), ip.packed


def encode_redirect_data(address: str, nonce: bytes = b"") -> bytes:
    """REDIRECT / REDIRECTED_FROM notify data: the gateway, then ``nonce`` (Ni or empty)."""
    gw_type, identity = gateway_identity(address)
    return bytes([gw_type, len(identity)]) + identity + bytes(nonce)


def decode_redirect_data(data: bytes) -> tuple[int, str, bytes]:
    """(GW Ident Type, gateway as text, Nonce Data) of REDIRECT / REDIRECTED_FROM data."""
    if len(data) < 2 or len(data) < 2 + data[1]:
        raise RedirectError(f"redirect data of {len(data)} bytes is truncated")
    gw_type, length = data[0], data[1]
    identity, nonce = data[2 : 2 + length], data[2 + length :]
    if gw_type == GW_IPV4 and length == 4 or gw_type == GW_IPV6 and length == 16:
        return gw_type, str(ipaddress.ip_address(identity)), nonce
    if gw_type == GW_FQDN and length:
        try:
            return gw_type, identity.decode("ascii"), nonce
        except UnicodeDecodeError:
            raise RedirectError("FQDN gateway identity is not ASCII") from None
    raise RedirectError(f"gateway identity type {gw_type} with {length} bytes")


# -- the rule -------------------------------------------------------------------------------


@dataclass
class RedirectTarget:
    """One gateway clients may be sent to; ``current`` is its round-robin credit."""

    name: str
    address: str
    capacity: int
    current: int = 0


class RedirectPolicy:
    """When to redirect (``threshold``) and where (``targets``, by weight = capacity)."""

    def __init__(self, threshold: int, targets: list[RedirectTarget]) -> None:
        self.threshold = threshold
        self.targets = targets

    @classmethod
    def from_strongswan_conf(cls, conf) -> "RedirectPolicy | None":
        """The rule of ``ikegate.redirect``, or None when redirect is off."""
        if conf is None:
            return None
        threshold, targets, _ = _read(conf)
        if threshold is None or not any(t.capacity > 0 for t in targets):
            return None
        log.info("IKEv2 redirect: while more than %d IKE SAs are held, new clients sending "
                 "REDIRECT_SUPPORTED go to %s", threshold,
                 ", ".join(f"{t.name} {t.address} (capacity {t.capacity})" for t in targets))
        return cls(threshold, targets)

    def choose(self, load: int, local: str | None = None) -> RedirectTarget | None:
        """Where to send a new client when the gateway holds ``load`` IKE SAs (None: stay).
        Smooth weighted round robin: every eligible target earns its capacity, the
        richest is chosen and pays the total, so picks interleave in proportion."""
        if load <= self.threshold:
            return None
        eligible = [t for t in self.targets if t.capacity > 0 and t.address != local]
        if not eligible:
            return None
        for target in eligible:
            target.current += target.capacity
        chosen = max(eligible, key=lambda t: t.current)
        chosen.current -= sum(t.capacity for t in eligible)
        return chosen


def redirect_problems(conf) -> list[str]:
    """What is wrong in ``ikegate.redirect`` (each message names the key), for the check."""
    return _read(conf)[2] if conf is not None else []


def _read(conf) -> tuple[int | None, list[RedirectTarget], list[str]]:
    """(threshold or None if invalid, valid targets, problems) of ``ikegate.redirect``."""
    problems: list[str] = []
    targets: list[RedirectTarget] = []
    names = conf.subsections(f"{SECTION}.gateways")
    raw = conf.get(f"{SECTION}.threshold")
    threshold: int | None = 0
    if raw is not None:
        threshold = _non_negative(raw)
        if threshold is None:
            problems.append(f"{SECTION}.threshold = {raw}: not a number >= 0, redirect is off")
    for name in names:
        key = f"{SECTION}.gateways.{name}"
        address = conf.get(f"{key}.address")
        if not address:
            problems.append(f"{key}: no address, gateway ignored")
            continue
        try:
            gateway_identity(address)
        except RedirectError as exc:
            problems.append(f"{key}.address = {address}: {exc}, gateway ignored")
            continue
        raw_capacity = conf.get(f"{key}.capacity")
        capacity = 1 if raw_capacity is None else _non_negative(raw_capacity)
        if capacity is None:
            problems.append(f"{key}.capacity = {raw_capacity}: not a number >= 0, gateway ignored")
            continue
        targets.append(RedirectTarget(name, str(address), capacity))
    if conf.get(f"{SECTION}.threshold") is not None and not names:
        problems.append(f"{SECTION}.threshold is set but {SECTION}.gateways lists no gateway")
    return threshold, targets, problems


def _non_negative(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


# -- the hook in IKE_SA_INIT ----------------------------------------------------------------


def redirect_on_init(sa, ex: Exchange, nonce_i: bytes) -> None:
    """Note what the client announced about redirect; if the gateway wants it elsewhere,
    raise :class:`Abort` with the REDIRECT notify (the response carries only that, and
    the half-open IKE SA is dropped)."""
    supported = ex.has_notify(NotifyType.REDIRECT_SUPPORTED)
    came_from = ex.notify(NotifyType.REDIRECTED_FROM)
    if came_from is not None:
        try:
            _, origin, _ = decode_redirect_data(came_from.data)
            sa.log.info("client got redirected here from %s", origin)
        except RedirectError as exc:
            sa.log.info("received invalid REDIRECTED_FROM notify (%s), ignored", exc)
    sa.peer_redirect = supported or came_from is not None
    if not supported:
        return  # a client that cannot follow, or one already redirected once: served here
    target = sa.gw.redirect_target(sa)
    if target is None:
        return
    policy = sa.gw.rt.settings.redirect
    load = len(sa.gw.sas)
    sa.log.info("redirecting peer %s to %s (gateway '%s', capacity %d): %d IKE SAs here, threshold %d",
                sa.remote.host, target.address, target.name, target.capacity, load, policy.threshold)
    raise Abort(NotifyType.REDIRECT, encode_redirect_data(target.address, nonce_i),
                reason=f"redirected to {target.address} ({load} IKE SAs > threshold {policy.threshold})")
