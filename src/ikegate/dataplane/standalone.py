"""Run the userspace data plane without the IKE daemon (tests, benchmarks, debugging).

``python -m ikegate.dataplane.standalone [--port 4500] [--tun-name ...] [...]`` opens its
own UDP sockets on the NAT-T port (IPv4 and IPv6, like the daemon's), starts a
:class:`~ikegate.dataplane.userspace.UserspaceDataPlane` and attaches to a minimal host
object standing in for the daemon.  It then reads one JSON command per line on stdin
and answers one JSON object per line on stdout:

* ``{"op": "install", "sa": SA}`` / ``{"op": "update", "sa": SA}`` - SA as made by
  :func:`sa_to_dict` (keys in hex, selectors as CIDR strings or ``a-b`` ranges); the
  answer to ``install`` comes once the workers have the SA and its routes are in place
  (:meth:`~ikegate.dataplane.userspace.UserspaceDataPlane.when_ready`);
* ``{"op": "remove", "spi_in": N}``;
* ``{"op": "counters", "spi_in": N}`` -> ``{"ok": true, "counters": {...}}``;
* ``{"op": "stats"}`` -> ``{"ok": true, "stats": {...}, "ike": N, "workers": {...}}``
  (N: IKE datagrams that reached the host; worker process ids by role);
* ``{"op": "quit"}``.

The first line written is ``{"ready": true, "pid": ..., "tun": name}``.  Keys travel in
these JSON lines because the runner has no IKE to derive them: use it with test keys only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import os
import sys

from ikegate import log as logmod
from ikegate.dataplane.userspace import UserspaceDataPlane, add_arguments
from ikegate.ike.events import ChildSaInfo, Endpoint
from ikegate.ike.ts import Selector
from ikegate.wire.constants import ProtocolId

__all__ = ["main", "sa_from_dict", "sa_to_dict"]


def _selector(text: str) -> Selector:
    if "-" in text:
        first, last = (ipaddress.ip_address(x) for x in text.split("-", 1))
        return Selector(first.version, int(first), int(last))
    return Selector.from_network(text)


def _selector_text(selector: Selector) -> str:
    return f"{selector.start_address}-{selector.end_address}"


def sa_from_dict(data: dict) -> ChildSaInfo:
    """A :class:`ChildSaInfo` from the JSON form (see the module docstring)."""
    return ChildSaInfo(
        ike_unique_id=data.get("ike_unique_id", 1),
        child_unique_id=data.get("child_unique_id", 1),
        reqid=data.get("reqid", 1),
        conn=data.get("conn", "standalone"),
        spi_in=data["spi_in"],
        spi_out=data["spi_out"],
        protocol=ProtocolId.ESP,
        encr_id=data["encr_id"],
        encr_key_bits=data["key_bits"],
        integ_id=data.get("integ_id"),
        key_in_encr=bytes.fromhex(data["key_in_encr"]),
        key_in_integ=bytes.fromhex(data.get("key_in_integ", "")),
        key_out_encr=bytes.fromhex(data["key_out_encr"]),
        key_out_integ=bytes.fromhex(data.get("key_out_integ", "")),
        esn=data.get("esn", False),
        local=Endpoint(*data["local"]),
        remote=Endpoint(*data["remote"]),
        udp_encap=data.get("udp_encap", False),
        local_ts=tuple(_selector(t) for t in data.get("local_ts", ["0.0.0.0/0", "::/0"])),
        remote_ts=tuple(_selector(t) for t in data["remote_ts"]),
        virtual_ips=tuple(data.get("virtual_ips", ())),
        local_id=data.get("local_id", ""),
        remote_id=data.get("remote_id", ""),
        eap_id=data.get("eap_id"),
    )


def sa_to_dict(info: ChildSaInfo) -> dict:
    """The JSON form of ``info`` (inverse of :func:`sa_from_dict`)."""
    return {
        "ike_unique_id": info.ike_unique_id,
        "child_unique_id": info.child_unique_id,
        "reqid": info.reqid,
        "conn": info.conn,
        "spi_in": info.spi_in,
        "spi_out": info.spi_out,
        "encr_id": int(info.encr_id),
        "key_bits": info.encr_key_bits,
        "integ_id": int(info.integ_id) if info.integ_id else None,
        "key_in_encr": info.key_in_encr.hex(),
        "key_in_integ": info.key_in_integ.hex(),
        "key_out_encr": info.key_out_encr.hex(),
        "key_out_integ": info.key_out_integ.hex(),
        "esn": info.esn,
        "local": list(info.local),
        "remote": list(info.remote),
        "udp_encap": info.udp_encap,
        "local_ts": [_selector_text(s) for s in info.local_ts],
        "remote_ts": [_selector_text(s) for s in info.remote_ts],
        "virtual_ips": list(info.virtual_ips),
    }


class StandaloneHost:
    """Stands in for the daemon: the loop, the NAT-T sockets, somewhere for IKE to go."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list) -> None:
        self.loop = loop
        self.sockets = sockets
        self.ike_datagrams = 0

    def ike_received(self, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        self.ike_datagrams += 1


async def _serve(args: argparse.Namespace) -> int:
    from ikegate.daemon.sockets import open_ike_sockets

    loop = asyncio.get_running_loop()
    sockets = open_ike_sockets((args.port,))
    host = StandaloneHost(loop, sockets)
    dataplane = UserspaceDataPlane.from_args(args)
    dataplane.start()
    done = asyncio.Event()

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def command(line: str) -> None:
        try:
            request = json.loads(line)
            op = request["op"]
            if op == "install":
                dataplane.install(sa_from_dict(request["sa"]))
                # the answer means ready for traffic both ways: the workers have the SA and its
                # routes are in (what the daemon waits for before its IKE_AUTH response)
                if not dataplane.when_ready(lambda: reply({"ok": True})):
                    dataplane.netlink.sync()
                    reply({"ok": True})
            elif op == "update":
                dataplane.update(sa_from_dict(request["sa"]))
                reply({"ok": True})
            elif op == "remove":
                installed = dataplane.installed.get(request["spi_in"])
                if installed is not None:
                    dataplane.remove(installed.info)
                reply({"ok": True})
            elif op == "counters":
                counters = dataplane.counters(request["spi_in"])
                reply({"ok": True, "counters": dataclasses.asdict(counters) if counters else None})
            elif op == "stats":
                reply({"ok": True, "stats": dataplane.stats(), "ike": host.ike_datagrams,
                       "workers": dataplane.workers_pids()})
            elif op == "quit":
                reply({"ok": True})
                done.set()
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # report, keep serving
            reply({"ok": False, "error": repr(exc)})

    buffer = b""

    def readable() -> None:
        nonlocal buffer
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            done.set()
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                command(line.decode())

    try:
        dataplane.attach(host)
        loop.add_reader(sys.stdin.fileno(), readable)
        reply({"ready": True, "pid": os.getpid(), "tun": dataplane.tun_name})
        await done.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        dataplane.stop()
        for sock in sockets:
            sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ikegate.dataplane.standalone",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4500, help="NAT-T port to open (default 4500)")
    parser.add_argument("--debug", action="store_true", help="log at level 2 to stderr")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logmod.configure({"esp": 2, "knl": 2} if args.debug else None, stream=sys.stderr)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
