"""UDP sockets for IKE on ports 500 and 4500, IPv4 and IPv6, on every address.

``left=%any`` means we answer on whatever address a request came to, so each socket
reports the destination address of every datagram (IP_PKTINFO / IPV6_RECVPKTINFO) and
each answer is sent with that address as its source.  Reads are batched (drain until
EAGAIN) from a selector/``add_reader`` callback: asyncio's DatagramProtocol costs 4-7x
per packet here (its 256 KiB recvfrom buffer).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from ikegate.ike.events import Endpoint

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
RECV_SIZE = 65535
ANC_SIZE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(20)


class IkeSocket:
    """One bound UDP socket (family, port) with destination-address reporting."""

    def __init__(self, family: int, port: int, address: str | None = None) -> None:
        self.family = family
        self.port = port
        self.natt = port != 500
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                sock.bind((address or "::", port))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.bind((address or "0.0.0.0", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.local_port = sock.getsockname()[1]

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def recv_batch(self, limit: int = 64) -> list[tuple[bytes, Endpoint, Endpoint]]:
        """Up to ``limit`` datagrams as (data, source, destination)."""
        out = []
        recvmsg = self.sock.recvmsg
        for _ in range(limit):
            try:
                data, anc, _flags, addr = recvmsg(RECV_SIZE, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue  # an ICMP error of an earlier send
                raise
            dst_host = self._destination(anc)
            src = Endpoint(_strip_scope(addr[0]), addr[1])
            dst = Endpoint(dst_host or ("::" if self.family == socket.AF_INET6 else "0.0.0.0"), self.local_port)
            out.append((data, src, dst))
        return out

    def _destination(self, ancillary) -> str | None:
        for level, ctype, cdata in ancillary:
            if level == socket.IPPROTO_IP and ctype == IP_PKTINFO and len(cdata) >= 12:
                return socket.inet_ntop(socket.AF_INET, cdata[8:12])
            if level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO and len(cdata) >= 20:
                return socket.inet_ntop(socket.AF_INET6, cdata[:16])
        return None

    def send(self, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        """Send from ``src``'s address (if it is a concrete one) to ``dst``."""
        anc = []
        try:
            addr = ipaddress.ip_address(src.host)
        except ValueError:
            addr = None
        if addr is not None and not addr.is_unspecified:
            if self.family == socket.AF_INET6:
                anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, addr.packed + struct.pack("I", 0))]
            else:
                anc = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("I", 0) + addr.packed + bytes(4))]
        try:
            self.sock.sendmsg([data], anc, 0, (dst.host, dst.port))
        except (BlockingIOError, InterruptedError):
            pass  # a full send buffer: IKE retransmits
        except OSError as exc:
            if exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EINVAL, errno.EPERM):
                raise


def _strip_scope(host: str) -> str:
    return host.split("%", 1)[0]


def open_ike_sockets(ports=(500, 4500), *, ipv6: bool = True) -> list[IkeSocket]:
    """IPv4 and (where the host has IPv6) IPv6 sockets for each port."""
    sockets = []
    families = [socket.AF_INET] + ([socket.AF_INET6] if ipv6 and socket.has_ipv6 else [])
    for family in families:
        for port in ports:
            try:
                sockets.append(IkeSocket(family, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    break
                for s in sockets:
                    s.close()
                raise
    return sockets
