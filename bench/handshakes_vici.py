"""A minimal client of strongSwan's VICI protocol, for the handshake benchmark.

``swanctl`` is one process per command; the benchmark instead talks to the client
charons' ``charon.vici`` sockets directly, so it can start thousands of connections
quickly (``initiate`` with ``timeout = -1`` returns as soon as the IKE_SA_INIT request
is on its way) and learn the moment each SA comes up from the ``child-updown`` events
the daemon pushes.

Wire format (strongSwan ``src/libcharon/plugins/vici/README.md``): every packet is a
32-bit big-endian length followed by that many bytes; the first byte is the packet
type, named types carry an 8-bit-length name, and the rest is a message, a sequence of
elements (section start/end, key = value, list start/item/end) whose names have an
8-bit length and whose values a 16-bit one.  Only one command may be outstanding per
connection; events may arrive at any time on a connection registered for them.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

# packet types
CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
# message element types
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6

Message = dict[str, Any]  # values: str, list[str] or a nested Message


class ViciError(RuntimeError):
    """The daemon refused a command or an event registration, or the connection broke."""


def encode(message: Message) -> bytes:
    """Encode a message (str values, lists of str, nested dicts as sections)."""
    out = bytearray()
    for key, value in message.items():
        name = key.encode()
        if isinstance(value, dict):
            out += bytes([SECTION_START, len(name)]) + name + encode(value) + bytes([SECTION_END])
        elif isinstance(value, (list, tuple)):
            out += bytes([LIST_START, len(name)]) + name
            for item in value:
                data = str(item).encode()
                out += bytes([LIST_ITEM]) + struct.pack("!H", len(data)) + data
            out += bytes([LIST_END])
        else:
            data = str(value).encode()
            out += bytes([KEY_VALUE, len(name)]) + name + struct.pack("!H", len(data)) + data
    return bytes(out)


def decode(data: bytes) -> Message:
    """Decode a message into nested dicts (values as str, lists as list[str])."""
    root: Message = {}
    stack = [root]
    current_list: list[str] | None = None
    pos, end = 0, len(data)
    while pos < end:
        kind = data[pos]
        pos += 1
        if kind in (SECTION_START, KEY_VALUE, LIST_START):
            length = data[pos]
            name = data[pos + 1:pos + 1 + length].decode(errors="replace")
            pos += 1 + length
        if kind == SECTION_START:
            section: Message = {}
            stack[-1][name] = section
            stack.append(section)
        elif kind == SECTION_END:
            if len(stack) == 1:
                raise ViciError("unbalanced section end in a vici message")
            stack.pop()
        elif kind in (KEY_VALUE, LIST_ITEM):
            (length,) = struct.unpack_from("!H", data, pos)
            value = data[pos + 2:pos + 2 + length].decode(errors="replace")
            pos += 2 + length
            if kind == KEY_VALUE:
                stack[-1][name] = value
            elif current_list is None:
                raise ViciError("list item outside a list in a vici message")
            else:
                current_list.append(value)
        elif kind == LIST_START:
            current_list = []
            stack[-1][name] = current_list
        elif kind == LIST_END:
            current_list = None
        else:
            raise ViciError(f"unknown vici element type {kind}")
    return root


class ViciConnection:
    """One stream connection to a ``charon.vici`` UNIX socket (blocking)."""

    def __init__(self, path: str, timeout: float | None = 30.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "ViciConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # packets -------------------------------------------------------------------
    def _send(self, kind: int, name: str | None = None, message: Message | None = None) -> None:
        body = bytes([kind])
        if name is not None:
            body += bytes([len(name)]) + name.encode()
        if message:
            body += encode(message)
        self.sock.sendall(struct.pack("!I", len(body)) + body)

    def _recv_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise ViciError(f"vici connection {self.path} closed")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def recv_packet(self) -> tuple[int, str | None, bytes]:
        """(packet type, name or None, raw message bytes) of the next packet."""
        (length,) = struct.unpack("!I", self._recv_exact(4))
        body = self._recv_exact(length)
        kind = body[0]
        if kind in (CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT):
            name_len = body[1]
            return kind, body[2:2 + name_len].decode(), body[2 + name_len:]
        return kind, None, body[1:]

    # commands and events -------------------------------------------------------
    def request(self, command: str, message: Message | None = None) -> Message:
        """Send a command and return its response (events received meanwhile are
        dropped: use a separate connection for events)."""
        self._send(CMD_REQUEST, command, message)
        while True:
            kind, _, body = self.recv_packet()
            if kind == CMD_RESPONSE:
                return decode(body)
            if kind == CMD_UNKNOWN:
                raise ViciError(f"vici command {command!r} unknown to the daemon")
            if kind != EVENT:
                raise ViciError(f"unexpected vici packet type {kind} after {command!r}")

    def register(self, event: str) -> None:
        """Ask for ``event`` messages on this connection."""
        self._send(EVENT_REGISTER, event)
        kind, _, _ = self.recv_packet()
        if kind != EVENT_CONFIRM:
            raise ViciError(f"vici event {event!r} not available (packet type {kind})")

    def next_event(self) -> tuple[str, bytes]:
        """Block for the next event: (name, raw message); decode with :func:`decode`
        (or not at all, when only its arrival matters)."""
        while True:
            kind, name, body = self.recv_packet()
            if kind == EVENT and name is not None:
                return name, body
