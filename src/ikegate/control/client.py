"""Talking to a running gateway over its control socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path

DEFAULT_RUN_DIR = "/run/ikegate"


class ControlError(Exception):
    pass


def request(run_dir: str | Path, command: str, timeout: float = 10.0, **fields) -> dict:
    path = Path(run_dir) / "ikegate.ctl"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"no gateway is running with run directory {run_dir} ({path} missing)") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path} (the control socket is root-only)") from None
        sock.sendall(json.dumps({"command": command, **fields}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise ControlError("the gateway did not answer in time") from None
    finally:
        sock.close()
    try:
        return json.loads(data)
    except ValueError:
        raise ControlError("malformed answer from the gateway") from None
