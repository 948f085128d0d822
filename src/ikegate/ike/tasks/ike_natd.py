"""NAT detection (RFC 7296 2.23): NAT_DETECTION_SOURCE_IP / _DESTINATION_IP.

Each hash is SHA-1(SPIi | SPIr | IP | port); in the IKE_SA_INIT request SPIr is zero.
A source hash that does not match the address the request came from means the peer is
behind a NAT; a destination hash that does not match our address means we are.  With
``forceencaps=yes`` our source hash is deliberately wrong, as strongSwan does, so the
peer sees a NAT and both sides use UDP encapsulation.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct

from ikegate.ike.events import Endpoint
from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import ExchangeType, NotifyType, PayloadType

ZERO_SPI = bytes(8)


def natd_hash(spi_i: bytes, spi_r: bytes, endpoint: Endpoint) -> bytes:
    address = ipaddress.ip_address(endpoint.host).packed
    return hashlib.sha1(spi_i + spi_r + address + struct.pack(">H", endpoint.port)).digest()


class IkeNatd(Task):
    def __init__(self, sa) -> None:
        self.sa = sa
        self.seen = False

    def process_r(self, ex: Exchange) -> None:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return
        sa = self.sa
        sources = [n.data for n in ex.payloads if n.type == PayloadType.NOTIFY and n.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP]
        dest = ex.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if not sources or dest is None:
            return  # peer does not do NAT-T
        self.seen = True
        sa.peer_natt = True
        remote_hash = natd_hash(sa.spi_i, ZERO_SPI, ex.src)
        local_hash = natd_hash(sa.spi_i, ZERO_SPI, ex.dst)
        sa.nat_remote = remote_hash not in sources
        sa.nat_local = dest.data != local_hash
        if sa.nat_remote:
            sa.log.info("remote host is behind NAT")
        if sa.nat_local:
            sa.log.info("local host is behind NAT, sending keep alives")

    def build_r(self, ex: Exchange) -> bool:
        if ex.exchange != ExchangeType.IKE_SA_INIT:
            return True
        if not self.seen:
            return True
        sa = self.sa
        if getattr(sa.init_conn, "forceencaps", False):
            source = sa.rt.random(20)  # faked: the peer must believe we are behind a NAT
            sa.nat_faked = True
        else:
            source = natd_hash(sa.spi_i, sa.spi_r, ex.dst)
        ex.add_notify(NotifyType.NAT_DETECTION_SOURCE_IP, source)
        ex.add_notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natd_hash(sa.spi_i, sa.spi_r, ex.src))
        return True
