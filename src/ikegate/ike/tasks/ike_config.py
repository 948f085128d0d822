"""Configuration payload (RFC 7296 3.15): virtual IPs from the pools, DNS servers.

As strongSwan's ike_config.c (responder) with its mem-pool and stroke attribute
providers: a requested INTERNAL_IP4/6_ADDRESS gets a lease of that family from the conn's
``rightsourceip`` pools (the requested value only helps to find the client's own lease);
``rightdns`` goes out in every reply whatever was asked; the other requested attributes
(NBNS, DHCP, Microsoft's SRV 23456/23457, DOMAIN ...) are ignored.  The reply is built
only when the IKE SA is established.  Client asked for addresses but got none:
INTERNAL_ADDRESS_FAILURE; pools configured but no address asked for (no CP, or a CP
without INTERNAL_IP4/6_ADDRESS): FAILED_CP_REQUIRED.

A client authenticated through RADIUS (``rightauth=eap-radius``, strongSwan's
eap_radius_provider.c): a Framed-IP-Address / Framed-IPv6-Address of the Access-Accept is
its virtual IP of that family, before any local pool, and is never leased from nor
released into a local pool (strongSwan hands it out only to conns whose ``rightsourceip``
names the pool ``%radius``; ikegate whenever RADIUS sends one, as the issue asks);
``rightsourceip=%radius`` alone hands out RADIUS addresses only (no Framed-IP: no address,
INTERNAL_ADDRESS_FAILURE).  A Framed-Pool (which strongSwan ignores) that names one of
our pools (a ``rightsourceip`` token) is asked instead of the conn's pools, another name
is logged and ignored.  DNS servers from RADIUS go
out before the conn's ``rightdns`` (strongSwan sends both providers' attributes).
"""

from __future__ import annotations

import ipaddress

from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import CfgAttr, CfgType, ExchangeType, NotifyType, PayloadType
from ikegate.wire.payloads import CpAttribute, CpPayload

IPV6_PREFIX_LEN = 64  # what strongSwan's build_vip sends with INTERNAL_IP6_ADDRESS
MS_SERVER_ATTRS = (CfgAttr.INTERNAL_IP4_SERVER, CfgAttr.INTERNAL_IP6_SERVER)


class IkeConfig(Task):
    def __init__(self, sa) -> None:
        self.sa = sa
        self.requested: dict[int, object] = {}  # family -> requested address or None
        self.request_seen = False

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange != ExchangeType.IKE_AUTH:
            return
        cp = ex.get(PayloadType.CP)
        if cp is None or cp.cfg_type != CfgType.CFG_REQUEST:
            return
        self.request_seen = True
        names = []
        for attr in cp.attributes:
            names.append(_attr_name(attr.type))
            if attr.type == CfgAttr.INTERNAL_IP4_ADDRESS:
                self.requested[4] = _address(attr.value[:4], 4)
            elif attr.type == CfgAttr.INTERNAL_IP6_ADDRESS:
                self.requested[6] = _address(attr.value[:16], 6)
            elif attr.type in MS_SERVER_ATTRS:
                self.sa.peer_is_windows = True
        self.sa.log.log(15, "processing CP request attributes: %s", " ".join(names))

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_AUTH:
            return False
        sa = self.sa
        if not sa.auth_done:
            return False
        conn_pools = tuple(getattr(sa.conn.remote, "sourceip", ()) or ())
        if conn_pools and not self.requested:  # no CP, or a CP asking for no address (ike_config.c)
            sa.log.info("expected a virtual IP request, sending FAILED_CP_REQUIRED")
            ex.add_notify(NotifyType.FAILED_CP_REQUIRED)
            sa.vip_failed = True
            return True
        if not self.request_seen:
            return True
        attributes: list[CpAttribute] = []
        identity = sa.lease_identity
        radius = sa.radius_attrs
        framed = {ipaddress.ip_address(a).version: a for a in reversed(radius.framed_ips)} if radius else {}
        pools = self._local_pools(conn_pools)
        for family, requested in sorted(self.requested.items()):
            if family in framed:
                address = framed[family]
                sa.log.info("assigning virtual IP %s from RADIUS to peer '%s'", address, identity)
            elif not pools:
                continue
            else:
                address = sa.rt.pools.acquire(pools, family, identity, (sa.remote.host, sa.remote.port), requested)
                if address is None:
                    sa.log.info("no virtual IP of family IPv%d found for '%s'", family, identity)
                    continue
                sa.log.info("assigning virtual IP %s to peer '%s'", address, identity)
            sa.vips.append(str(address))
            packed = ipaddress.ip_address(address).packed
            if family == 4:
                attributes.append(CpAttribute(CfgAttr.INTERNAL_IP4_ADDRESS, packed))
            else:
                attributes.append(CpAttribute(CfgAttr.INTERNAL_IP6_ADDRESS, packed + bytes((IPV6_PREFIX_LEN,))))
        if self.requested and not sa.vips and conn_pools:
            sa.log.info("no virtual IP found, sending INTERNAL_ADDRESS_FAILURE")
            ex.add_notify(NotifyType.INTERNAL_ADDRESS_FAILURE)
            sa.vip_failed = True
            return True
        servers = list(radius.dns) if radius is not None else []
        servers += [d for d in getattr(sa.conn.remote, "dns", ()) or () if d not in servers]
        for dns in servers:
            addr = ipaddress.ip_address(dns)
            kind = CfgAttr.INTERNAL_IP4_DNS if addr.version == 4 else CfgAttr.INTERNAL_IP6_DNS
            attributes.append(CpAttribute(kind, addr.packed))
        if attributes:
            ex.add(CpPayload(cfg_type=CfgType.CFG_REPLY, attributes=attributes))
        return True

    def _local_pools(self, pools: tuple) -> tuple:
        """The local pools to lease from: a RADIUS Framed-Pool naming one of ours instead
        of the conn's (strongSwan asks the pool of that name), else the conn's."""
        sa = self.sa
        radius = sa.radius_attrs
        name = radius.framed_pool if radius is not None else None
        if not name:
            return pools
        if sa.rt.pools.get(name) is not None:
            sa.log.info("using pool '%s' named by RADIUS (Framed-Pool)", name)
            return (name,)
        sa.log.info("RADIUS Framed-Pool '%s' is not a local pool, ignored", name)
        return pools


def _address(value: bytes, family: int):
    """The address a client asked for, or None for 'any' (empty or all zero)."""
    size = 4 if family == 4 else 16
    if len(value) != size or not any(value):
        return None
    return ipaddress.ip_address(value)


def _attr_name(value: int) -> str:
    try:
        return CfgAttr(value).name
    except ValueError:
        return str(value)
