"""The control socket: a root-only UNIX socket in the run directory.

One JSON object per line in each direction: ``{"command": "status"}`` ->
``{"ok": true, ...}``.  Commands are looked up in :data:`ikegate.control.handlers.COMMANDS`;
each gets the daemon.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from pathlib import Path

from ikegate.control.handlers import COMMANDS
from ikegate.log import get_logger

log = get_logger("dmn")
MAX_REQUEST = 64 * 1024


class ControlServer:
    def __init__(self, daemon, path: Path, *, allowed_uids: frozenset[int] | None = None) -> None:
        self.daemon = daemon
        self.path = Path(path)
        self.allowed_uids = allowed_uids if allowed_uids is not None else frozenset({0, os.getuid()})
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        old = os.umask(0o077)
        try:
            self.server = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = _peer_uid(writer)
        if uid not in self.allowed_uids:
            # the socket file is 0600 already; this also shuts out other processes of the
            # account the daemon dropped to (--user): only root (or the starting user) controls it
            log.info("control connection from uid %s refused", uid)
            writer.close()
            return
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            if len(line) > MAX_REQUEST:
                reply = {"ok": False, "error": "request too large"}
            else:
                reply = self._dispatch(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _dispatch(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "malformed request"}
        handler = COMMANDS.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command '{command}'"}
        try:
            return handler(self.daemon, request)
        except Exception as exc:  # a control command must never take the daemon down
            log.exception("control command '%s' failed", command)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    sock = writer.get_extra_info("socket")
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (OSError, AttributeError):
        return None
    return uid
