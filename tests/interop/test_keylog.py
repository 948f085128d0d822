"""``ikegate start --keylog DIR`` checked by Wireshark: a captured session decrypts with it.

ikegate serves the seed with ``--keylog``; a real strongSwan 5.9.8 client connects
(IKE_SA_INIT, IKE_AUTH with the server certificate and EAP-MSCHAPv2), pings the inner host
behind the gateway over IPv4 and IPv6, rekeys its CHILD SA and its IKE SA (the AES-CBC case:
the keys of SAs made by a rekey are logged too), pings again and disconnects.  dumpcap
captures all of it on the gateway's outer interface.  tshark 4.0, reading nothing but
the two tables ikegate wrote (``WIRESHARK_CONFIG_DIR``), must then

* open every encrypted IKE message, both ways, with its integrity check passing, and
  show what is inside: IDi, IDr, CERT, AUTH, EAP (with the EAP identity), CP (with the
  virtual IP), SA, TSi/TSr, the Delete;
* open every ESP packet, with its ICV correct, to the ICMP and ICMPv6 echoes between the
  client's virtual IPs and the inner host.

Wireshark shares no code with ikegate or strongSwan, so this checks our IKE and ESP
encryption, and the key log, independently.  Two suites: AES-CBC + HMAC-SHA2 (the
seed's, with the rekeys) and AES-GCM for IKE and ESP.  ESP is carried in UDP on port 4500
in both (Wireshark decodes that port as UDP-encapsulated IPsec by default): the client's
kernel-libipsec (this kernel has no ESP) can only do UDP encapsulation and fakes a NAT to
get it (strongSwan 5.9.8 has no ``raw_esp`` option yet).  Native ESP (IP protocol 50) is
decoded from the key log in tests/test_keylog_format.py, with packets made by
:class:`ikegate.esp.EspSa`.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from .gateway import wait_for
from .netns import Capture, ping
from .seed import write_seed

GCM_EDITS = {"ike=aes256-": "ike=aes256gcm16-prfsha384-modp3072,aes256-",
             "esp=aes256-": "esp=aes256gcm16,aes256-"}

CASES = {
    "aes-cbc-hmac-sha2": dict(edits={}, client={}, rekey=True, ike="AES-CBC-", esp="AES-CBC [RFC3602]"),
    "aes-gcm": dict(edits=GCM_EDITS, client=dict(proposals="aes256gcm16-prfsha384-modp3072",
                                                  esp_proposals="aes256gcm16"),
                    rekey=False, ike="AES-GCM-256 with 16 octet ICV", esp="AES-GCM with 16 octet ICV [RFC4106]"),
}

# IKEv2 payload types (RFC 7296 3.2) tshark must find inside the Encrypted payloads
INNER = {"IDi": "35", "IDr": "36", "CERT": "37", "AUTH": "39", "CP": "47", "EAP": "48", "SA": "33",
         "TSi": "44", "TSr": "45", "D": "42"}


def tshark_rows(pcap: Path, keylog: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    """One row of ``fields`` per frame matching ``display_filter``, decoded by tshark with
    the key log directory as its whole configuration (a table it cannot load fails)."""
    args = ["tshark", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
            "-o", "esp.enable_authentication_check:TRUE", "-Y", display_filter, "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in fields:
        args += ["-e", name]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WIRESHARK_CONFIG_DIR": str(keylog)})
    assert proc.returncode == 0 and "Error loading table" not in proc.stderr, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


def child_spis(gateway) -> list[str]:
    return [child["spi_in"] for sa in gateway.status()["sas"] for child in sa["children"]]


def entries(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("case", list(CASES))
def test_captured_session_decrypts_with_the_key_log(case, tmp_path, topology, ikegate_gateway,
                                                    strongswan_client_factory):
    spec = CASES[case]
    started = time.monotonic()
    seed = write_seed(tmp_path / "seed")
    conf = seed.ipsec_conf.read_text()
    for old, new in spec["edits"].items():
        assert old in conf
        conf = conf.replace(old, new)
    seed.ipsec_conf.write_text(conf)
    keylog = tmp_path / "keylog"
    gw = topology.gateway
    gateway = ikegate_gateway(gw, seed.confdir, ["--keylog", str(keylog)])
    assert f"WARNING: --keylog {keylog}: the IKE and ESP keys of every SA" in gateway.log_text()
    vip4, vip6 = "192.0.2.1", "2001:db8::1"
    inner4, inner6 = topology.inner.v4[0], topology.inner.v6[0]

    with Capture(gw.ns, "eth0", tmp_path / "session.pcapng") as capture:
        client = strongswan_client_factory(topology.clients[0], gw.v4[0], ca_certs=[seed.root_cert],
                                           **spec["client"])
        ok, out = client.initiate(timeout=30)
        assert ok, out + gateway.log_text()[-3000:]
        assert ping(client.ns, inner4, count=3, wait=2) == 3
        assert ping(client.ns, inner6, count=3, wait=2) == 3
        if spec["rekey"]:  # the client rekeys: new keys for the CHILD SA, then for the IKE SA
            (old_child,) = child_spis(gateway)
            client.swanctl("--rekey", "--child", "c")
            assert wait_for(lambda: child_spis(gateway) not in ([], [old_child]), 15), gateway.log_text()[-3000:]
            (old_ike,) = [sa["spi_r"] for sa in gateway.status()["sas"]]
            client.swanctl("--rekey", "--ike", "gw")
            assert wait_for(lambda: [sa["spi_r"] for sa in gateway.status()["sas"]] not in ([], [old_ike]), 15), \
                gateway.log_text()[-3000:]
            assert ping(client.ns, inner4, count=2, wait=2) == 2
            assert ping(client.ns, inner6, count=2, wait=2) == 2
        ok, out = client.terminate()
        assert ok, out
        assert wait_for(lambda: gateway.status()["sas"] == [], 10)
    pcap = capture.path
    session = time.monotonic() - started

    # the key log: private, one entry per IKE SA, two per CHILD SA, the expected algorithms
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o700
    ike_table, esp_table = keylog / "ikev2_decryption_table", keylog / "esp_sa"
    for path in (ike_table, esp_table):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ike_sas, child_sas = (2, 2) if spec["rekey"] else (1, 1)
    assert len(entries(ike_table)) == ike_sas and all(spec["ike"] in e for e in entries(ike_table))
    assert len(entries(esp_table)) == 2 * child_sas and all(spec["esp"] in e for e in entries(esp_table))

    # IKE: every encrypted message (IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, both ways) opens,
    # its integrity check passing
    sealed = tshark_rows(pcap, keylog, "isakmp.exchangetype != 34", ["frame.number", "isakmp.exchangetype"])
    assert {row[1] for row in sealed} >= {"35", "37"} | ({"36"} if spec["rekey"] else set())
    opened = tshark_rows(pcap, keylog,
                         "isakmp.exchangetype != 34 && isakmp.enc.decrypted && !isakmp.ikev2.integrity_checksum",
                         ["frame.number", "isakmp.typepayload", "eap.identity",
                          "isakmp.cfg.attr.internal_ip4_address", "isakmp.cfg.attr.internal_ip6_address"])
    assert [row[0] for row in opened] == [row[0] for row in sealed], (sealed, opened)
    types = set(",".join(row[1] for row in opened).split(","))
    missing = [name for name, number in INNER.items() if number not in types]
    assert not missing, f"tshark shows no {missing} inside the Encrypted payloads"
    assert "user1" in {row[2] for row in opened}
    assert vip4 in {row[3] for row in opened} and vip6 in {row[4] for row in opened}

    # ESP: every packet opens, ICV correct, to the echoes between the virtual IPs and the inner host
    carried = tshark_rows(pcap, keylog, "esp", ["frame.number", "esp.icv_good", "ip.src", "ipv6.src",
                                                "icmp.type", "icmpv6.type", "ip.proto", "udp.port"])
    assert carried, "no ESP captured"
    echoes = []
    for number, good, ip_src, ipv6_src, icmp, icmpv6, protocols, udp_ports in carried:
        assert good == "1", f"frame {number}: ESP ICV not confirmed by tshark"
        assert protocols.split(",")[0] == "17" and "4500" in udp_ports.split(","), f"frame {number}: not ESP-in-UDP"
        inner_src = (ipv6_src or ip_src).split(",")[-1]
        echoes.append((inner_src, icmp or icmpv6))
    rounds = 5 if spec["rekey"] else 3
    for src, kind in ((vip4, "8"), (inner4, "0"), (vip6, "128"), (inner6, "129")):
        assert echoes.count((src, kind)) == rounds, (src, kind, echoes)
    assert len(echoes) == 4 * rounds, echoes
    print(f"{case}: session {session:.1f}s, {len(sealed)} encrypted IKE messages and {len(carried)} ESP "
          "packets decrypted by tshark")
