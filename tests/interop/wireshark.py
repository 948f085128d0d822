"""tshark as an independent IKE decoder, and a minimal pcap writer to feed it.

Wireshark's ISAKMP dissector shares no code with ikegate (or strongSwan), so
agreement between its view of a datagram and ours is a cheap cross-check of the
codec.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
from pathlib import Path

LINKTYPE_RAW = 101  # raw IPv4/IPv6 packets, no link layer


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 or IPv6 packet carrying one UDP datagram (checksums filled in)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    length = 8 + len(payload)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 17, length)
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", length, 17)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    if s.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0, s.packed, d.packed)
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        return hdr + udp
    return struct.pack("!IHBB16s16s", 0x60000000, length, 17, 64, s.packed, d.packed) + udp


def write_pcap(path: Path, packets: list[bytes]) -> Path:
    """Classic little-endian pcap with raw-IP link type."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for i, pkt in enumerate(packets):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(pkt), len(pkt)))
            f.write(pkt)
    return path


def tshark(*args: str, timeout: float = 60) -> str:
    proc = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
    return proc.stdout


def isakmp_details(pcap: Path, frame: int = 1) -> str:
    """``tshark -V -O isakmp`` text of the ISAKMP layer of one frame (other layers cut)."""
    out = tshark("-r", str(pcap), "-V", "-O", "isakmp", "-Y", f"frame.number == {frame}")
    start = out.find("Internet Security Association and Key Management Protocol")
    if start < 0:
        raise RuntimeError(f"tshark shows no ISAKMP layer in frame {frame} of {pcap}:\n{out}")
    return out[start:].strip()


def isakmp_fields(pcap: Path, fields: list[str], frame: int = 1) -> dict[str, list[str]]:
    """Values of tshark fields in one frame, every occurrence, in order."""
    args = ["-r", str(pcap), "-Y", f"frame.number == {frame}", "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=|", "-E", "separator=\t"]
    for name in fields:
        args += ["-e", name]
    line = tshark(*args).rstrip("\n").split("\n")[0]
    values = line.split("\t")
    return {name: [v for v in value.split("|") if v != ""] for name, value in zip(fields, values)}
