"""Vendor ID payloads: logged by name where we know them (strongSwan's ike_vendor.c table)."""

from __future__ import annotations

from ikegate.ike.exchange import Exchange, Task
from ikegate.wire.constants import PayloadType

KNOWN_VENDOR_IDS = {
    bytes.fromhex("1e2b516905991c7d7c96fcbfb587e46100000009"): "MS NT5 ISAKMPOAKLEY v9",
    bytes.fromhex("1e2b516905991c7d7c96fcbfb587e46100000008"): "MS NT5 ISAKMPOAKLEY v8",
    bytes.fromhex("1e2b516905991c7d7c96fcbfb587e46100000007"): "MS NT5 ISAKMPOAKLEY v7",
    bytes.fromhex("fb1de3cdf341b7ea16b7e5be0855f120"): "MS-Negotiation Discovery Capable",
    bytes.fromhex("26244d38eddb61b3172a36e3d0cfb819"): "Vid-Initial-Contact",
    bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb"): "strongSwan",
}


class IkeVendor(Task):
    def __init__(self, sa) -> None:
        self.sa = sa

    def process_r(self, ex: Exchange) -> None:
        for vid in ex.get_all(PayloadType.VENDOR_ID):
            name = KNOWN_VENDOR_IDS.get(bytes(vid.data))
            if name is None:
                shown = vid.data[:32].hex(":") + ("..." if len(vid.data) > 32 else "")
                self.sa.log.info("received unknown vendor ID: %s", shown)
            else:
                self.sa.log.info("received %s vendor ID", name)
                if name.startswith("MS"):
                    self.sa.peer_is_windows = True
