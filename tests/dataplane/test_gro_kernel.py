"""The kernel takes the coalesced segments :class:`~ikegate.dataplane.gro.TunWriter` writes.

In a namespace of its own, a TUN device opened by :func:`ikegate.dataplane.tun.open_tun`
with the virtio-net header carries a TCP connection between a listening socket of the
kernel (10.97.0.1 / fd00:97::1) and the test, which plays the remote end through the TUN
with scapy-built packets: handshake written as-is, then 40 data segments through the
writer, which joins them.  The listener must receive exactly the bytes sent, and the
kernel must acknowledge the whole run at once (it took it as one packet).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw, raw

from ikegate.dataplane.gro import VNET_HDR_LEN, TunWriter
from ikegate.dataplane.tun import open_tun
from interop.netns import Namespace, call_in, socket_in, unique_name

SEGMENTS = 40
SEGMENT = 1200


def _tun_in(ns: Namespace, name: str) -> int:
    """A TUN device (with virtio-net header) created inside ``ns`` by a setns'd thread."""
    return call_in(ns, lambda: open_tun(name, vnet_hdr=True)[0])


@pytest.fixture
def namespace():
    ns = Namespace(unique_name("gro"))
    ns.create()
    yield ns
    ns.delete()


def _read_tcp(fd: int, family: int, timeout: float = 3.0):
    """The next TCP packet the kernel sends into the TUN (other packets skipped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        data = os.read(fd, 65536)[VNET_HDR_LEN:]
        packet = IP(data) if family == 4 else IPv6(data)
        if TCP in packet:
            return packet
    raise AssertionError("no TCP packet from the kernel")


@pytest.mark.parametrize("family", [4, 6])
def test_kernel_accepts_joined_segments(namespace, family):
    fd = _tun_in(namespace, "grotun0")
    try:
        local, remote = ("10.97.0.1", "10.97.0.2") if family == 4 else ("fd00:97::1", "fd00:97::2")
        prefix = "24" if family == 4 else "64"
        namespace.run(["ip", "addr", "add", f"{local}/{prefix}", "dev", "grotun0"] + (["nodad"] if family == 6 else []))
        namespace.run(["ip", "link", "set", "grotun0", "up"])
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        listener = socket_in(namespace, af, socket.SOCK_STREAM, bind=(local, 5555))
        listener.listen(1)
        received = bytearray()

        def serve() -> None:
            listener.settimeout(10)
            conn, _ = listener.accept()
            conn.settimeout(10)
            while len(received) < SEGMENTS * SEGMENT:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                received.extend(chunk)
            conn.close()

        server = threading.Thread(target=serve)
        server.start()

        ip = IP(src=remote, dst=local) if family == 4 else IPv6(src=remote, dst=local)
        writer = TunWriter(fd, vnet=True)
        writer.write(raw(ip / TCP(sport=40404, dport=5555, flags="S", seq=1000, window=65535,
                                  options=[("MSS", SEGMENT)])))
        synack = _read_tcp(fd, family)
        assert synack[TCP].flags == "SA"
        server_seq = synack[TCP].seq + 1
        writer.write(raw(ip / TCP(sport=40404, dport=5555, flags="A", seq=1001, ack=server_seq, window=65535)))
        data = os.urandom(SEGMENTS * SEGMENT)
        for i in range(SEGMENTS):
            chunk = data[i * SEGMENT : (i + 1) * SEGMENT]
            writer.add(raw(ip / TCP(sport=40404, dport=5555, flags="A", seq=1001 + i * SEGMENT, ack=server_seq,
                                    window=65535) / Raw(chunk)))
        writer.flush()
        assert writer.packets_written == 2 + 1  # SYN, ACK, and one joined segment
        ack = _read_tcp(fd, family)
        assert ack[TCP].ack == 1001 + len(data)  # one ACK for the lot: it was one packet
        server.join(timeout=10)
        assert bytes(received) == data
        listener.close()
    finally:
        os.close(fd)
