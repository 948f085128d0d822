"""Helpers of the standalone data-plane tests: namespaces, the runner, a scapy client.

Topology (three namespaces made with ``tests/interop/netns.py``)::

    client  eth0 10.98.0.2 fd00:98::2  ---  10.98.0.1 fd00:98::1 eth0  gateway
                                                     10.98.1.1 fd00:98:1::1 inner0
                                                                   |
                                            inner  eth0 10.98.1.2 fd00:98:1::2

The gateway runs ``python -m ikegate.dataplane.standalone`` (the data plane without IKE,
driven by JSON lines), with forwarding on.  The "client" is the test process itself,
through sockets opened inside the client namespace, speaking ESP with scapy's own IPsec
implementation (``scapy.layers.ipsec.SecurityAssociation``), not ikegate's.  The client's
virtual IPs are 192.0.2.1 and 2001:db8::1, as the seed pool would hand out.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.packet import Raw, raw

from interop.netns import Namespace, new_token, socket_in, unique_name, veth

warnings.filterwarnings("ignore", module="scapy")

CLIENT4, GATEWAY4 = "10.98.0.2", "10.98.0.1"
CLIENT6, GATEWAY6 = "fd00:98::2", "fd00:98::1"
INNER4, INNER6 = "10.98.1.2", "fd00:98:1::2"
GW_INNER4, GW_INNER6 = "10.98.1.1", "fd00:98:1::1"
VIP4, VIP6 = "192.0.2.1", "2001:db8::1"
CLIENT_UDP_PORT = 4500
IPPROTO_ESP = 50


class Topology:
    """client / gateway / inner namespaces (see the module docstring); always cleaned up."""

    def __init__(self) -> None:
        token = new_token()
        self.client = Namespace(unique_name("dpc", token))
        self.gateway = Namespace(unique_name("dpg", token))
        self.inner = Namespace(unique_name("dpi", token))
        self.namespaces = [self.client, self.gateway, self.inner]

    def build(self) -> "Topology":
        try:
            for ns in self.namespaces:
                ns.create()
                for scope in ("all", "default"):
                    ns.sysctl(f"net.ipv6.conf.{scope}.accept_dad", 0)
            veth(self.client, self.gateway, [f"{CLIENT4}/24", f"{CLIENT6}/64"],
                 [f"{GATEWAY4}/24", f"{GATEWAY6}/64"])
            veth(self.gateway, self.inner, [f"{GW_INNER4}/24", f"{GW_INNER6}/64"],
                 [f"{INNER4}/24", f"{INNER6}/64"], name_a="inner0", name_b="eth0")
            self.inner.run(["ip", "route", "add", "default", "via", GW_INNER4])
            self.inner.run(["ip", "-6", "route", "add", "default", "via", GW_INNER6])
            self.gateway.sysctl("net.ipv4.ip_forward", 1)
            self.gateway.sysctl("net.ipv6.conf.all.forwarding", 1)
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        for ns in reversed(self.namespaces):
            ns.delete()


class Runner:
    """``python -m ikegate.dataplane.standalone`` in a namespace, driven over stdin/stdout."""

    def __init__(self, ns: Namespace, *args: str, log_dir: Path) -> None:
        self.ns = ns
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.stderr_path = Path(log_dir) / f"{ns.name}-standalone.log"

    def start(self, timeout: float = 30.0) -> "Runner":
        self._stderr = open(self.stderr_path, "wb")
        self.proc = self.ns.popen([sys.executable, "-m", "ikegate.dataplane.standalone", "--debug",
                                   *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._stderr)
        self.info = self._read(timeout)
        if not self.info.get("ready"):
            raise RuntimeError(f"standalone data plane did not start: {self.info}\n{self.log()}")
        return self

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer from the data plane\n{self.log()}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the data plane exited ({self.proc.poll()})\n{self.log()}")
        return json.loads(line)

    def command(self, op: str, **kwargs) -> dict:
        self.proc.stdin.write((json.dumps({"op": op, **kwargs}) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._read(30.0)
        if not answer.get("ok"):
            raise RuntimeError(f"{op} failed: {answer}")
        return answer

    def stats(self) -> dict:
        return self.command("stats")["stats"]

    def counters(self, spi_in: int) -> dict | None:
        return self.command("counters", spi_in=spi_in)["counters"]

    def wait_stat(self, name: str, at_least: int, timeout: float = 3.0) -> int:
        """Poll the (0.1 s delayed) counters until ``name`` reaches ``at_least``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.stats()[name]
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def log(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Ask the runner to quit (kill it if it does not); its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self._stderr, self.proc.stdin, self.proc.stdout):
            if not stream.closed:
                stream.close()
        return self.proc.returncode


# ---------------------------------------------------------------------------------------
# the scapy client

# name -> (IKEv2 encr id, key bits, encryption key length with salt, scapy crypt_algo,
#          IKEv2 integ id, integ key length, scapy auth_algo)
ALGORITHMS = {
    "aes128gcm16": (20, 128, 20, "AES-GCM", None, 0, None),
    "aes256-sha256": (12, 256, 32, "AES-CBC", 12, 32, "SHA2-256-128"),
}


@dataclass
class Keys:
    encr_in: bytes
    integ_in: bytes
    encr_out: bytes
    integ_out: bytes


@dataclass
class ScapyClient:
    """One road-warrior client speaking ESP through sockets in the client namespace.

    ``spi_in``/``spi_out`` are named from the *gateway's* point of view, as in
    ``ChildSaInfo``: the client sends with ``spi_in`` and receives ``spi_out``.
    """

    ns: Namespace
    algorithm: str
    outer: int  # 4 or 6
    udp: bool
    spi_in: int
    spi_out: int
    keys: Keys = field(repr=False)
    vips: tuple[str, ...] = (VIP4, VIP6)
    udp_port: int = CLIENT_UDP_PORT

    def __post_init__(self) -> None:
        encr_id, bits, _elen, crypt, integ_id, _ilen, auth = ALGORITHMS[self.algorithm]
        self.client_addr = CLIENT4 if self.outer == 4 else CLIENT6
        self.gateway_addr = GATEWAY4 if self.outer == 4 else GATEWAY6
        ip = IP if self.outer == 4 else IPv6
        tunnel = ip(src=self.client_addr, dst=self.gateway_addr)
        self.to_gateway = SecurityAssociation(
            ESP, spi=self.spi_in, crypt_algo=crypt, crypt_key=self.keys.encr_in,
            auth_algo=auth, auth_key=self.keys.integ_in or None, tunnel_header=tunnel)
        self.from_gateway = SecurityAssociation(
            ESP, spi=self.spi_out, crypt_algo=crypt, crypt_key=self.keys.encr_out,
            auth_algo=auth, auth_key=self.keys.integ_out or None,
            tunnel_header=ip(src=self.gateway_addr, dst=self.client_addr))
        family = socket.AF_INET if self.outer == 4 else socket.AF_INET6
        if self.udp:
            self.sock = socket_in(self.ns, family, socket.SOCK_DGRAM,
                                  bind=(self.client_addr, self.udp_port))
        else:
            self.sock = socket_in(self.ns, family, socket.SOCK_RAW, IPPROTO_ESP)
        self.sock.setblocking(False)

    @classmethod
    def make(cls, ns: Namespace, algorithm: str, outer: int, udp: bool, spi_in: int,
             spi_out: int, **kwargs) -> "ScapyClient":
        _e, _b, elen, _c, integ_id, ilen, _a = ALGORITHMS[algorithm]
        keys = Keys(os.urandom(elen), os.urandom(ilen) if integ_id else b"",
                    os.urandom(elen), os.urandom(ilen) if integ_id else b"")
        return cls(ns, algorithm, outer, udp, spi_in, spi_out, keys, **kwargs)

    def close(self) -> None:
        self.sock.close()

    # the gateway's view -------------------------------------------------------------------

    def sa_dict(self, **overrides) -> dict:
        """The SA as the standalone runner takes it (gateway side)."""
        encr_id, bits, _elen, _c, integ_id, _ilen, _a = ALGORITHMS[self.algorithm]
        remote_ts = [f"{v}/{32 if ':' not in v else 128}" for v in self.vips]
        sa = {
            "spi_in": self.spi_in,
            "spi_out": self.spi_out,
            "encr_id": encr_id,
            "key_bits": bits,
            "integ_id": integ_id,
            "key_in_encr": self.keys.encr_in.hex(),
            "key_in_integ": self.keys.integ_in.hex(),
            "key_out_encr": self.keys.encr_out.hex(),
            "key_out_integ": self.keys.integ_out.hex(),
            "local": [self.gateway_addr, 4500 if self.udp else 0],
            "remote": [self.client_addr, self.udp_port if self.udp else 0],
            "udp_encap": self.udp,
            "local_ts": ["0.0.0.0/0", "::/0"],
            "remote_ts": remote_ts,
            "virtual_ips": list(self.vips),
        }
        sa.update(overrides)
        return sa

    # packets -----------------------------------------------------------------------------

    def echo_request(self, dst: str, ident: int, seq: int, src: str | None = None,
                     size: int = 56):
        payload = Raw(bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
        if ":" in dst:
            return IPv6(src=src or self.vips[1], dst=dst) / ICMPv6EchoRequest(id=ident, seq=seq) / payload
        return IP(src=src or self.vips[0], dst=dst) / ICMP(id=ident, seq=seq) / payload

    def encrypt(self, inner) -> bytes:
        """The ESP bytes (from the SPI on) of ``inner`` protected by scapy's SA."""
        return raw(self.to_gateway.encrypt(inner)[ESP])

    def send_esp(self, esp: bytes) -> None:
        port = 4500 if self.udp else 0
        self.sock.sendto(esp, (self.gateway_addr, port))

    def send(self, inner) -> bytes:
        esp = self.encrypt(inner)
        self.send_esp(esp)
        return esp

    def receive(self, timeout: float = 2.0) -> list:
        """Decrypted inner packets received within ``timeout`` (stops at the first)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                continue
            if self.outer == 4 and not self.udp:
                data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets include the IP header
            if self.udp and data[:4] == b"\0\0\0\0":
                continue  # not ESP
            ip = IP if self.outer == 4 else IPv6
            outer = ip(raw(ip(src=self.gateway_addr, dst=self.client_addr) / ESP(data)))
            return [self.from_gateway.decrypt(outer)]
        return []

    def ping(self, dst: str, ident: int, seq: int, timeout: float = 2.0, **kwargs) -> bool:
        """One encrypted echo request to ``dst``; True if the encrypted reply came back."""
        self.send(self.echo_request(dst, ident, seq, **kwargs))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for packet in self.receive(left):
                if _is_reply(packet, dst, ident, seq):
                    return True
        return False


def _is_reply(packet, dst: str, ident: int, seq: int) -> bool:
    if IP in packet and ICMP in packet:
        icmp = packet[ICMP]
        return packet[IP].src == dst and icmp.type == 0 and icmp.id == ident and icmp.seq == seq
    if IPv6 in packet and ICMPv6EchoReply in packet:
        reply = packet[ICMPv6EchoReply]
        return packet[IPv6].src == dst and reply.id == ident and reply.seq == seq
    return False
