"""A blocking netlink socket: requests with ACK, dumps, kernel errors as exceptions.

Used for NETLINK_XFRM (SAs and policies) and NETLINK_ROUTE (the routes to virtual IPs).
Every call is a short synchronous exchange with the kernel (microseconds), so the
daemon's event loop calls it directly.  Replies are matched by sequence number; stray
messages (a late reply of an earlier request) are skipped.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket

from ikegate.dataplane.xfrm.messages import (NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE,
                                              NLMSG_ERROR, Message, NetlinkError, decode_all, encode)

__all__ = ["NETLINK_ROUTE", "NETLINK_XFRM", "NetlinkSocket"]

NETLINK_ROUTE = 0
NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
RECV_SIZE = 1 << 16
TIMEOUT = 5.0


class NetlinkSocket:
    """One ``AF_NETLINK`` socket of ``protocol``; ``decode`` parses a datagram into messages
    (default: the XFRM codec), ``encode`` the reverse."""

    def __init__(self, protocol: int = NETLINK_XFRM, *, encoder=encode, decoder=decode_all) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        try:
            self.sock.bind((0, 0))
            self.sock.settimeout(TIMEOUT)
            for option, size in ((socket.SO_SNDBUF, 1 << 20), (socket.SO_RCVBUF, 1 << 20)):
                self.sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            self.sock.close()
            raise
        self._encode = encoder
        self._decode = decoder
        self._seq = itertools.count(int.from_bytes(os.urandom(2), "big") + 1)

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def join(self, group: int) -> None:
        """Receive the multicast ``group``'s notifications (e.g. XFRMNLGRP_MAPPING)."""
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)

    def notifications(self) -> list[Message]:
        """Every message waiting on the socket, without blocking."""
        out = []
        while True:
            try:
                data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return out
            except OSError as exc:  # ENOBUFS: notifications were lost, go on
                if exc.errno == errno.ENOBUFS:
                    continue
                raise
            out.extend(self._decode(data))

    def __enter__(self) -> "NetlinkSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, message: Message) -> int:
        message.seq = next(self._seq) & 0xFFFFFFFF
        self.sock.send(self._encode(message))
        return message.seq

    def _replies(self, seq: int):
        """Messages answering ``seq`` until the exchange ends (the caller stops reading)."""
        while True:
            try:
                data = self.sock.recv(RECV_SIZE)
            except socket.timeout:
                raise NetlinkError(errno.ETIMEDOUT, "no answer from the kernel") from None
            for message in self._decode(data):
                if message.seq == seq:
                    yield message

    def request(self, message: Message) -> None:
        """Send ``message`` with NLM_F_ACK and wait for the ACK; a refusal raises
        :class:`NetlinkError` with the kernel's errno."""
        message.flags |= NLM_F_REQUEST | NLM_F_ACK
        seq = self._send(message)
        for reply in self._replies(seq):
            if reply.type == NLMSG_ERROR:
                if reply.error:
                    raise NetlinkError(-reply.error, os.strerror(-reply.error))
                return

    def query(self, message: Message) -> Message:
        """A GET request answered by one message (e.g. GETSA); errors raise NetlinkError."""
        message.flags |= NLM_F_REQUEST
        seq = self._send(message)
        for reply in self._replies(seq):
            if reply.type == NLMSG_ERROR:
                code = -(reply.error or 0)
                raise NetlinkError(code or errno.EPROTO, os.strerror(code) if code else "unexpected ACK")
            return reply
        raise NetlinkError(errno.EPROTO, "no answer from the kernel")

    def dump(self, message: Message) -> list[Message]:
        """Every message a dump request (NLM_F_DUMP) answers with."""
        message.flags |= NLM_F_REQUEST | NLM_F_DUMP
        seq = self._send(message)
        out = []
        for reply in self._replies(seq):
            if reply.type == NLMSG_DONE:
                return out
            if reply.type == NLMSG_ERROR:
                if reply.error:
                    raise NetlinkError(-reply.error, os.strerror(-reply.error))
                return out
            out.append(reply)
            if not reply.flags & NLM_F_MULTI:
                return out
        return out
