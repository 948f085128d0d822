"""The key log of ``ikegate start --keylog`` (ikegate.daemon.keylog), without namespaces.

* The lines: Wireshark 4.0's UAT format and algorithm names, both directions of a CHILD SA,
  comments instead of entries for what Wireshark cannot decrypt.
* The files: a private directory, 0600 files appended to, unsafe places refused.
* The engine hooks: an :class:`IkeSaKeys` event for every IKE SA (IKE_SA_INIT, the client's
  IKE rekey, the gateway's own IKE rekey) whose keys are those the test client derived on
  its own, and none at all unless the gateway was asked to export keys.
* tshark 4.0 reading the files (skipped without tshark): an in-memory session of the test
  client (tests/ike) with AES-CBC/HMAC-SHA2 and with AES-GCM, every encrypted IKE message
  of it both ways, and ESP packets made with the logged CHILD SA keys, all decrypt with
  the key log alone.  The end-to-end version with a real strongSwan client and the
  daemon is tests/interop/test_keylog.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ike.harness import GATEWAY_V4, Network  # noqa: E402
from ike.initiator import WINDOWS10  # noqa: E402
from interop.wireshark import udp_packet, write_pcap  # noqa: E402

from ikegate.config.loader import load_config  # noqa: E402
from ikegate.daemon.builder import build_runtime  # noqa: E402
from ikegate.daemon.keylog import ESP_FILE, IKEV2_FILE, KeyLog, KeyLogError, esp_lines, ikev2_line  # noqa: E402
from ikegate.esp.sa import EspSa  # noqa: E402
from ikegate.ike.events import ChildSaInfo, ChildSaUp, Endpoint, IkeSaKeys, IkeSaUp, Send  # noqa: E402
from ikegate.pki.example import write_example  # noqa: E402
from ikegate.proposal import Proposal  # noqa: E402
from ikegate.wire.constants import EncrId, ExchangeType, IntegId, PrfId, ProtocolId  # noqa: E402

from cryptography import x509  # noqa: E402

KEY = {name: bytes(range(i, i + size)) for i, (name, size) in
       enumerate((("ei", 32), ("er", 32), ("ai", 32), ("ar", 32)), start=1)}


def ike_keys_event(encr=(EncrId.AES_CBC, 256), integ=IntegId.HMAC_SHA2_256_128, *, aead=False) -> IkeSaKeys:
    proposal = Proposal(ProtocolId.IKE, encr=(encr,), integ=() if integ is None else (integ,),
                        prf=(PrfId.HMAC_SHA2_256,), dh=(14,))
    ai, ar = (b"", b"") if aead else (KEY["ai"], KEY["ar"])
    return IkeSaKeys(7, bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8"), proposal,
                     KEY["ei"], KEY["er"], ai, ar)


def child_info(*, encr=EncrId.AES_CBC, bits=128, integ=IntegId.HMAC_SHA2_256_128, v6=False, esn=False,
               encr_len=16, integ_len=32) -> ChildSaInfo:
    local = Endpoint("fd00:99::1" if v6 else "10.99.0.1", 4500)
    remote = Endpoint("fd00:99::10" if v6 else "10.99.0.10", 4500)
    return ChildSaInfo(
        ike_unique_id=3, child_unique_id=4, reqid=1, conn="myvpn", spi_in=0xC1000001, spi_out=0x00A0B0C0,
        protocol=ProtocolId.ESP, encr_id=encr, encr_key_bits=bits, integ_id=integ,
        key_in_encr=bytes([0x11]) * encr_len, key_in_integ=bytes([0x22]) * integ_len,
        key_out_encr=bytes([0x33]) * encr_len, key_out_integ=bytes([0x44]) * integ_len,
        esn=esn, local=local, remote=remote, udp_encap=False, local_ts=(), remote_ts=(),
        virtual_ips=("192.0.2.1",), local_id="CN=vpn.example.org", remote_id="10.99.0.10", eap_id="user1")


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


# -- the lines ---------------------------------------------------------------------------------


def test_ikev2_entry_cbc_hmac():
    text = ikev2_line(ike_keys_event(), stamp="2024-01-01 00:00:00")
    comment, entry = text.splitlines()
    assert comment == ("# 2024-01-01 00:00:00 IKE_SA #7 0102030405060708_i a1a2a3a4a5a6a7a8_r "
                       "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048")
    assert entry == ",".join(["0102030405060708", "a1a2a3a4a5a6a7a8", KEY["ei"].hex(), KEY["er"].hex(),
                              '"AES-CBC-256 [RFC3602]"', KEY["ai"].hex(), KEY["ar"].hex(),
                              '"HMAC_SHA2_256_128 [RFC4868]"'])


@pytest.mark.parametrize("encr, integ, aead, encr_name, integ_name", [
    ((EncrId.AES_GCM_16, 128), None, True, "AES-GCM-128 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"),
    ((EncrId.AES_GCM_8, 256), None, True, "AES-GCM-256 with 8 octet ICV [RFC5282]", "NONE [RFC4306]"),
    ((EncrId.AES_CCM_12, 192), None, True, "AES-CCM-192 with 12 octet ICV [RFC5282]", "NONE [RFC4306]"),
    ((EncrId.AES_CTR, 128), IntegId.HMAC_SHA1_96, False, "AES-CTR-128 [RFC5930]", "HMAC_SHA1_96 [RFC2404]"),
    ((EncrId.TRIPLE_DES, 0), IntegId.HMAC_SHA2_512_256, False, "3DES [RFC2451]", "HMAC_SHA2_512_256 [RFC4868]"),
    # Wireshark has no AES-XCBC: decrypt without checking the 96-bit ICV
    ((EncrId.AES_CBC, 128), IntegId.AES_XCBC_96, False, "AES-CBC-128 [RFC3602]",
     "ANY 96-bits of Authentication [No Checking]"),
])
def test_ikev2_algorithm_names(encr, integ, aead, encr_name, integ_name):
    (entry,) = entries(ikev2_line(ike_keys_event(encr, integ, aead=aead)))
    fields = entry.split(",")
    assert (fields[4], fields[7]) == (f'"{encr_name}"', f'"{integ_name}"')
    if aead:
        assert fields[5:7] == ["", ""]


def test_ikev2_unsupported_cipher_is_only_a_comment():
    text = ikev2_line(ike_keys_event((EncrId.CHACHA20_POLY1305, 0), None, aead=True))
    assert entries(text) == []
    assert "cannot decrypt IKEv2 with encryption CHACHA20_POLY1305" in text
    assert KEY["ei"].hex() not in text


def test_esp_entries_both_directions():
    text = esp_lines(child_info(), stamp="2024-01-01 00:00:00")
    assert text.splitlines()[0] == ("# 2024-01-01 00:00:00 CHILD_SA myvpn{4} of IKE_SA #3: c1000001_i 00a0b0c0_o "
                                    "10.99.0.1[4500]...10.99.0.10[4500]")
    inbound, outbound = entries(text)
    alg = '"AES-CBC [RFC3602]"'
    auth = '"HMAC-SHA-256-128 [RFC4868]"'
    assert inbound == ",".join(['"IPv4"', '"10.99.0.10"', '"10.99.0.1"', '"0xc1000001"', alg,
                                f'"0x{"11" * 16}"', auth, f'"0x{"22" * 32}"'])
    assert outbound == ",".join(['"IPv4"', '"10.99.0.1"', '"10.99.0.10"', '"0x00a0b0c0"', alg,
                                 f'"0x{"33" * 16}"', auth, f'"0x{"44" * 32}"'])


def test_esp_entries_gcm_ipv6():
    text = esp_lines(child_info(encr=EncrId.AES_GCM_16, bits=256, integ=None, v6=True, encr_len=36, integ_len=0))
    inbound, _ = entries(text)
    assert inbound == ",".join(['"IPv6"', '"fd00:99::10"', '"fd00:99::1"', '"0xc1000001"',
                                '"AES-GCM with 16 octet ICV [RFC4106]"', f'"0x{"11" * 36}"', '"NULL"', '""'])


def test_esp_esn_and_unsupported():
    assert "extended sequence numbers" in esp_lines(child_info(esn=True))
    assert len(entries(esp_lines(child_info(esn=True)))) == 2
    chacha = esp_lines(child_info(encr=EncrId.CHACHA20_POLY1305, bits=256, integ=None, encr_len=36, integ_len=0))
    assert entries(chacha) == [] and "cannot decrypt ESP with encryption CHACHA20_POLY1305" in chacha
    xcbc = entries(esp_lines(child_info(integ=IntegId.AES_XCBC_96, integ_len=16)))
    assert all('"ANY 96 bit authentication [no checking]"' in line for line in xcbc)


def test_event_reprs_show_no_key_bytes():
    event = ike_keys_event()
    text = repr(event) + repr(child_info())
    for key in (*KEY.values(), bytes([0x11]) * 16, bytes([0x44]) * 32):
        assert key.hex() not in text and repr(key)[2:-1] not in text
    assert "0102030405060708" in repr(event) or "\\x01\\x02" in repr(event)  # the SPIs are shown


# -- the files ---------------------------------------------------------------------------------


def test_keylog_files_private_and_appended(tmp_path):
    directory = tmp_path / "new" / "keys"
    keylog = KeyLog(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    keylog.record(ike_keys_event())
    keylog.record(ChildSaUp(child_info()))
    keylog.record(IkeSaUp(1, "myvpn", Endpoint("10.99.0.1", 500), Endpoint("10.99.0.10", 500), "a", "b", None, ()))
    keylog.close()
    for name, count in ((IKEV2_FILE, 1), (ESP_FILE, 2)):
        path = directory / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert text.startswith("# ikegate key log") and len(entries(text)) == count
    again = KeyLog(directory)  # a restart appends, never truncates
    again.record(ike_keys_event())
    again.close()
    text = (directory / IKEV2_FILE).read_text()
    assert len(entries(text)) == 2 and text.count("# ikegate key log") == 1


def test_keylog_refuses_unsafe_places(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(KeyLogError, match="others may enter it"):
        KeyLog(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o755  # an existing directory is never changed
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(KeyLogError, match="not a directory"):
        KeyLog(a_file)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / ESP_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyLogError, match="cannot open esp_sa"):
        KeyLog(private)
    assert not (tmp_path / "elsewhere").exists()


def test_off_by_default():
    from ikegate.cli import build_parser
    from ikegate.daemon.main import Daemon

    assert build_parser().parse_args(["start"]).keylog is None
    assert Daemon(None, run_dir=Path("/nonexistent"), dataplane=None).keylog is None


def test_start_refuses_an_unsafe_keylog_directory(seed, tmp_path):
    """``ikegate start --keylog DIR`` with a directory others may enter: exit 1 before
    anything is bound, the reason on stderr, nothing written there."""
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    proc = subprocess.run([sys.executable, "-m", "ikegate", "start", "--confdir", str(seed.directory),
                           "--run-dir", str(tmp_path / "run"), "--foreground", "--keylog", str(loose)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "others may enter it (mode 0755)" in proc.stderr
    assert list(loose.iterdir()) == [] and not (tmp_path / "run").exists()


# -- the engine hooks --------------------------------------------------------------------------


class RecordingNetwork(Network):
    """The in-memory network of tests/ike, also keeping every datagram both ways (for a pcap)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[tuple[Endpoint, Endpoint, bytes]] = []

    def send(self, client, datagrams, *, src=None):
        self.wire += [(src or client.local, client.remote, d) for d in datagrams]
        return super().send(client, datagrams, src=src)

    def _route(self, outputs):
        self.wire += [(item.src, item.dst, item.data) for item in outputs if isinstance(item, Send)]
        super()._route(outputs)


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("seed"), users={}, ntlm_users=())


def network(seed, tmp_path, edits: dict[str, str] = {}, *, export_keys: bool = True) -> RecordingNetwork:
    confdir = tmp_path / "conf"
    shutil.copytree(seed.directory, confdir)
    conf = (confdir / "ipsec.conf").read_text()
    for old, new in edits.items():
        assert old in conf
        conf = conf.replace(old, new)
    (confdir / "ipsec.conf").write_text(conf)
    config, diagnostics = load_config(confdir)
    assert not diagnostics.errors, diagnostics
    root = x509.load_pem_x509_certificate(Path(seed.root_cert).read_bytes())
    net = RecordingNetwork(build_runtime(config, confdir), dict(seed.users), trusted=[root])
    if export_keys:
        net.gateway.export_keys = True
    return net


def assert_same_keys(event: IkeSaKeys, ike) -> None:
    """The gateway's logged keys are those the test client derived itself."""
    assert (event.spi_i, event.spi_r) == (ike.spi_i, ike.spi_r)
    assert (event.sk_ei, event.sk_er, event.sk_ai, event.sk_ar) == (ike.keys.sk_ei, ike.keys.sk_er,
                                                                    ike.keys.sk_ai, ike.keys.sk_ar)
    assert event.proposal.encr_alg == ike.proposal.encr_alg and event.proposal.integ_alg == ike.proposal.integ_alg


def test_no_key_events_unless_asked(seed, tmp_path):
    net = network(seed, tmp_path, export_keys=False)
    client = net.client(WINDOWS10)
    net.connect(client)
    net.exchange(client, client.rekey_ike())
    assert client.established and net.events_of(IkeSaUp)
    assert net.events_of(IkeSaKeys) == []


def test_key_events_of_client_made_and_rekeyed_sas(seed, tmp_path):
    net = network(seed, tmp_path)
    client = net.client(WINDOWS10)
    net.connect(client)
    (first,) = net.events_of(IkeSaKeys)
    assert_same_keys(first, client.ike)
    assert first.unique_id == net.sa_of(client).unique_id
    net.exchange(client, client.rekey_ike())  # the client rekeys: tasks/ike_rekey.py
    second = net.events_of(IkeSaKeys)[1]
    assert_same_keys(second, client.ike)
    assert (second.spi_i, second.spi_r) != (first.spi_i, first.spi_r)


def test_key_event_of_the_gateways_own_ike_rekey(seed, tmp_path):
    net = network(seed, tmp_path, {"rekey=no": "rekey=yes\n    lifetime=1h\n    margintime=5s\n"
                                               "    ikelifetime=40s\n    reauth=no"})
    client = net.client(WINDOWS10)
    net.connect(client)
    request = None
    while request is None and net.now < 2000:
        net.advance(0.5)
        request = next((r for r in net.deliver_pending(client) if not r.is_response), None)
    assert request is not None and request.exchange == ExchangeType.CREATE_CHILD_SA
    net.send(client, client.answer_create_child_sa(request))  # tasks/ike_rekey_initiator.py
    first, second = net.events_of(IkeSaKeys)
    assert not client.ike.initiator  # the gateway is the new SA's original initiator
    assert_same_keys(second, client.ike)


# -- tshark reads the key log ------------------------------------------------------------------

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Wireshark 4.0) not installed")


def ipv4_esp(src: str, dst: str, esp: bytes) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(esp), 0, 0x4000, 64, 50, 0, s, d)
    checksum = _checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + esp


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def icmp_echo(src: str, dst: str, kind: int) -> bytes:
    """An IPv4 ICMP echo request (8) or reply (0) with a fixed payload."""
    body = b"keylog-check"
    icmp = struct.pack("!BBHHH", kind, 0, 0, 0x4B4C, 1) + body
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, s, d)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + icmp


def tshark_rows(pcap: Path, keylog: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    """``tshark`` with the key log as its configuration directory: one row per frame that
    matches; a table it cannot load fails the test."""
    args = ["tshark", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
            "-o", "esp.enable_authentication_check:TRUE", "-Y", display_filter, "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in fields:
        args += ["-e", name]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "WIRESHARK_CONFIG_DIR": str(keylog)})
    assert proc.returncode == 0 and "Error loading table" not in proc.stderr, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


@needs_tshark
@pytest.mark.parametrize("ike, esp, edits", [
    ("aes256-sha256-modp2048", "aes128-sha256", {}),
    ("aes256gcm16-prfsha256-modp2048", "aes128gcm16",
     {"ike=aes256-": "ike=aes256gcm16-prfsha256-modp2048,aes256-", "esp=aes256-": "esp=aes128gcm16,aes256-"}),
], ids=["cbc-sha2", "gcm"])
def test_tshark_decrypts_with_the_key_log(seed, tmp_path, ike, esp, edits):
    net = network(seed, tmp_path, edits)
    client = net.client(WINDOWS10.with_(ike=ike, esp=esp))
    net.connect(client)
    assert client.established
    net.exchange(client, client.informational())
    keylog = KeyLog(tmp_path / "keylog")
    for event in net.events:
        keylog.record(event)
    keylog.close()
    (up,) = net.events_of(ChildSaUp)
    info = up.info
    inbound = EspSa(info.spi_in, info.encr_id, info.encr_key_bits, info.key_in_encr, info.integ_id, info.key_in_integ)
    outbound = EspSa(info.spi_out, info.encr_id, info.encr_key_bits, info.key_out_encr, info.integ_id,
                     info.key_out_integ)
    packets = [udp_packet(src.host, dst.host, src.port, dst.port, data) for src, dst, data in net.wire]
    client_ip, gateway_ip, vip, inner = client.local.host, GATEWAY_V4.host, client.vips[0], "10.99.1.2"
    packets.append(ipv4_esp(client_ip, gateway_ip, inbound.encapsulate(icmp_echo(vip, inner, 8), 4)))
    packets.append(ipv4_esp(gateway_ip, client_ip, outbound.encapsulate(icmp_echo(inner, vip, 0), 4)))
    pcap = write_pcap(tmp_path / "session.pcap", packets)

    sealed = tshark_rows(pcap, tmp_path / "keylog", "isakmp.exchangetype != 34",
                         ["frame.number", "isakmp.exchangetype", "isakmp.flag_r"])
    assert len(sealed) >= 8  # IKE_AUTH x 4 both ways (EAP), INFORMATIONAL both ways
    opened = tshark_rows(pcap, tmp_path / "keylog",
                         "isakmp.exchangetype != 34 && isakmp.enc.decrypted && !isakmp.ikev2.integrity_checksum",
                         ["frame.number", "isakmp.typepayload", "eap.identity",
                          "isakmp.cfg.attr.internal_ip4_address"])
    assert [row[0] for row in opened] == [row[0] for row in sealed]
    payloads = ",".join(row[1] for row in opened).split(",")
    for inner_type in ("35", "36", "37", "39", "47", "48", "33", "44", "45"):  # IDi IDr CERT AUTH CP EAP SA TSi TSr
        assert inner_type in payloads
    assert "user1" in {row[2] for row in opened}
    assert vip in {row[3] for row in opened}
    esp_rows = tshark_rows(pcap, tmp_path / "keylog", "esp", ["esp.spi", "esp.icv_good", "ip.src", "icmp.type"])
    assert [(row[1], row[2].split(",")[-1], row[3]) for row in esp_rows] == [
        ("1", vip, "8"), ("1", inner, "0")]
