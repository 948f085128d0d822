"""Writing decapsulated packets to the TUN, with TCP segments coalesced (userspace GRO).

Each packet written to the TUN costs a system call and a trip through the kernel's
forwarding path, and the TCP receiver behind the gateway answers every second segment
with an ACK that the gateway must encrypt and the client decrypt.  When several segments
of one TCP connection arrive in one batch (the inbound worker reads up to 64 datagrams per
wakeup, and under load it often finds tens waiting), :class:`TunWriter` joins them into one
large segment and hands it to the kernel as a GSO packet (``IFF_VNET_HDR``: a
``virtio_net_hdr`` in front of the packet says "TCP, segment size N, checksum still to do"),
the way a NIC's GRO/LRO does.  The kernel forwards it as one packet and splits it only
where it must (a device without TSO); a local or veth-attached receiver takes it whole and
acknowledges it once.

Coalescing follows the rules of Linux's ``tcp_gro_receive``: same addresses, ports, IP
TOS/TTL/DF (IPv4, no options, not a fragment) or traffic class/flow label/hop limit
(IPv6, no extension headers), same TCP header apart from sequence number, PSH and
checksum (same ACK number, window, options), only ACK/PSH flags, in-order and contiguous
sequence numbers, every segment but the last of the same size, at most 64 KiB.  A PSH
segment ends its run.  Anything else is written as it came, and a flow's run is always
written before a later packet of that flow that cannot join it, so no flow is reordered.

The joined segment's checksum is left for the kernel ("NEEDS_CSUM": the TCP checksum
field holds the pseudo-header sum); the ESP ICV already guaranteed the data's integrity.
"""

from __future__ import annotations

import os
import struct

from ikegate.dataplane.packets import checksum

__all__ = ["VNET_HDR_LEN", "VNET_NONE", "TunWriter"]

VNET_HDR_LEN = 10  # struct virtio_net_hdr (no num_buffers: TUNSETVNETHDRSZ not used)
VNET_F_NEEDS_CSUM = 1
VNET_GSO_TCPV4 = 1
VNET_GSO_TCPV6 = 4
#: The header of a packet that needs nothing (no GSO, checksum complete).
VNET_NONE = bytes(VNET_HDR_LEN)
_VNET = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
_TCP_CSUM_OFFSET = 16
_MAX_IP_PACKET = 65535
MAX_FLOWS = 16  # runs kept open at once; more flows in one batch: the oldest is written

_ACK, _PSH = 0x10, 0x08
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class _Run:
    """Consecutive segments of one flow waiting to be written as one."""

    __slots__ = ("first", "headers_len", "signature", "payloads", "size", "next_seq", "mss",
                 "push", "version")

    def __init__(self, packet: bytes, headers_len: int, signature: bytes, seq: int, version: int) -> None:
        self.first = packet
        self.headers_len = headers_len
        self.signature = signature
        payload = len(packet) - headers_len
        self.payloads = [packet]  # first whole; later ones as payload slices
        self.size = len(packet)
        self.next_seq = (seq + payload) & 0xFFFFFFFF
        self.mss = payload
        self.push = False
        self.version = version


class TunWriter:
    """Writes inner packets to the TUN ``fd``; with ``vnet`` (the device was opened with
    ``IFF_VNET_HDR``) TCP segments added between two :meth:`flush` calls are coalesced.

    Not thread-safe: one writer per thread (the inbound worker's packet thread).
    """

    def __init__(self, fd: int, vnet: bool) -> None:
        self.fd = fd
        self.vnet = vnet
        self.runs: dict[bytes, _Run] = {}
        self.packets_written = 0  # write() calls, for statistics
        self.segments_joined = 0  # segments that went into a larger one

    def write(self, packet: bytes) -> None:
        """Write one packet now, as it is (no coalescing)."""
        if self.vnet:
            os.writev(self.fd, (VNET_NONE, packet))
        else:
            os.write(self.fd, packet)
        self.packets_written += 1

    def add(self, packet: bytes) -> None:
        """Queue ``packet`` for the next :meth:`flush` (or write it now if it cannot be
        joined with anything).  Raises ``OSError`` if a write fails."""
        if not self.vnet:
            self.write(packet)
            return
        first = packet[0]
        if first == 0x45:  # IPv4 without options
            if packet[9] != 6 or packet[6] & 0x3F or packet[7] or len(packet) < 40:
                self.write(packet)  # not TCP, or a fragment
                return
            tcp = 20
            key = packet[12:24]  # addresses and ports
            ip_sig = packet[1:2] + bytes((packet[6] & 0x40, packet[8]))  # TOS, DF, TTL
            version = 4
        elif first >> 4 == 6:
            if packet[6] != 6 or len(packet) < 60:
                self.write(packet)  # not TCP right after the header
                return
            tcp = 40
            key = packet[8:44]
            ip_sig = packet[0:4] + packet[7:8]  # traffic class, flow label, hop limit
            version = 6
        else:
            self.write(packet)
            return
        offset = packet[tcp + 12]
        headers_len = tcp + (offset >> 4) * 4
        flags = packet[tcp + 13]
        payload = len(packet) - headers_len
        runs = self.runs
        if flags & ~(_ACK | _PSH) or payload <= 0 or headers_len > len(packet):
            run = runs.pop(key, None)  # SYN/FIN/RST/URG/ECE/CWR or a bare ACK
            if run is not None:
                self._write_run(run)
            self.write(packet)
            return
        seq = _U32.unpack_from(packet, tcp + 4)[0]
        # everything of the TCP header that must match: ACK number, offset, window, options
        signature = ip_sig + packet[tcp + 8 : tcp + 13] + packet[tcp + 14 : tcp + 16] + packet[tcp + 20 : headers_len]
        run = runs.get(key)
        if run is not None:
            if (seq == run.next_seq and signature == run.signature and payload <= run.mss
                    and run.size + payload <= _MAX_IP_PACKET):
                run.payloads.append(packet[headers_len:])
                run.size += payload
                run.next_seq = (seq + payload) & 0xFFFFFFFF
                if flags & _PSH:
                    run.push = True
                    del runs[key]
                    self._write_run(run)
                elif payload < run.mss:  # a short segment ends the run
                    del runs[key]
                    self._write_run(run)
                return
            del runs[key]
            self._write_run(run)
        if flags & _PSH:
            self.write(packet)
            return
        if len(runs) >= MAX_FLOWS:
            self._write_run(runs.pop(next(iter(runs))))
        runs[key] = _Run(packet, headers_len, signature, seq, version)

    def flush(self) -> None:
        """Write every queued run (call at the end of each batch)."""
        if self.runs:
            runs = list(self.runs.values())
            self.runs.clear()
            for run in runs:
                self._write_run(run)

    def _write_run(self, run: _Run) -> None:
        payloads = run.payloads
        if len(payloads) == 1:
            self.write(run.first)
            return
        first = run.first
        headers_len = run.headers_len
        tcp = 20 if run.version == 4 else 40
        tcp_len = run.size - tcp
        header = bytearray(first[:headers_len])
        if run.version == 4:
            _U16.pack_into(header, 2, run.size)
            header[10:12] = b"\0\0"
            _U16.pack_into(header, 10, checksum(bytes(header[:20])))
            pseudo = bytes(header[12:20]) + b"\0\x06" + _U16.pack(tcp_len)
            gso_type = VNET_GSO_TCPV4
        else:
            _U16.pack_into(header, 4, tcp_len)
            pseudo = bytes(header[8:40]) + _U32.pack(tcp_len) + b"\0\0\0\x06"
            gso_type = VNET_GSO_TCPV6
        if run.push:
            header[tcp + 13] |= _PSH
        # NEEDS_CSUM: the checksum field holds the (uncomplemented) pseudo-header sum
        _U16.pack_into(header, tcp + 16, ~checksum(pseudo) & 0xFFFF)
        vnet = _VNET.pack(VNET_F_NEEDS_CSUM, gso_type, headers_len, run.mss, tcp, _TCP_CSUM_OFFSET)
        payloads[0] = memoryview(first)[headers_len:]
        os.writev(self.fd, [vnet, header, *payloads])
        self.packets_written += 1
        self.segments_joined += len(payloads)
