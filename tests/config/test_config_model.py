"""Loading whole configuration directories into the typed model.

The seed configuration (seed-config.md) must come out as strongswan-semantics.md says
strongSwan 5.9.8 reads it; the defaults are those of 5.9.8's confread.c
``conn_defaults`` and the lifetime arithmetic that of starterstroke.c/stroke_config.c.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from ikegate.config.errors import ConfigLoadError
from ikegate.config.loader import load_config
from ikegate.config.model import PoolSpec, TsSpec
from ikegate.identity import ID_DER_ASN1_DN, Identity
from ikegate.wire.constants import EncrId, ProtocolId

BASE = "conn rw\n    auto=add\n    leftauth=psk\n    rightauth=psk\n"
PSK = ': PSK "sharedsecret"\n'


def write(confdir: Path, conf: str, secrets: str | None = PSK, files: dict[str, str | bytes] | None = None) -> Path:
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / "ipsec.conf").write_text(conf)
    if secrets is not None:
        (confdir / "ipsec.secrets").write_text(secrets)
    for name, content in (files or {}).items():
        path = confdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return confdir


def load(tmp_path: Path, conf: str, **kwargs):
    return load_config(write(tmp_path / "etc", conf, **{k: v for k, v in kwargs.items() if k != "is_local"}),
                       is_local=kwargs.get("is_local"))


def messages(diagnostics, severity=None) -> list[str]:
    return [d.message for d in diagnostics if severity is None or d.severity == severity]


# ------------------------------------------------------------------------------------
# the seed


def test_seed_configuration(seed_dir):
    config, diagnostics = load_config(seed_dir.confdir)
    assert not diagnostics.errors, [str(d) for d in diagnostics]
    assert not diagnostics.warnings, [str(d) for d in diagnostics]

    assert dict(config.setup.charondebug) == {"cfg": 2}
    assert config.setup.uniqueids == "no"

    (conn,) = config.conns
    assert conn.name == "myvpn" and conn.loaded and conn.auto == "add"
    assert conn.keyexchange == "ikev2"
    assert conn.local_is_left and conn.local.side == "left"
    local, remote = conn.local, conn.remote

    # leftid defaults to the certificate's subject DN (no leftid, left=%any)
    assert local.id == Identity.from_dn_der(seed_dir.cert.cert.subject.public_bytes())
    assert local.id.id_type == ID_DER_ASN1_DN
    assert str(local.id) == "C=CH, O=ikegate test, CN=vpn.example.org"
    assert local.id_from_cert and local.id_configured is None
    assert local.cert == seed_dir.cert_path
    assert local.cert_object == seed_dir.cert.cert
    assert local.auth.method == "pubkey"
    assert local.sendcert == "always"
    assert local.hosts == ("%any",) and not local.allow_any
    assert local.subnets == (TsSpec(ipaddress.ip_network("0.0.0.0/0")), TsSpec(ipaddress.ip_network("::/0")))
    assert local.updown == str(seed_dir.updown_path)

    assert remote.id is None  # right=%any, no rightid: any peer
    assert remote.auth.method == "eap" and remote.auth.eap_type == 26 and not remote.auth.radius
    assert remote.sendcert == "never" and conn.no_certreq
    assert remote.subnets == (TsSpec(None),)  # %dynamic
    assert remote.sourceip == ("192.0.2.0/24", "2001:db8::/96")
    assert conn.pools == (
        PoolSpec("192.0.2.0/24", "cidr", "192.0.2.0/24", network=ipaddress.ip_network("192.0.2.0/24"),
                 base=ipaddress.ip_address("192.0.2.0"), family=4),
        PoolSpec("2001:db8::/96", "cidr", "2001:db8::/96", network=ipaddress.ip_network("2001:db8::/96"),
                 base=ipaddress.ip_address("2001:db8::"), family=6),
    )
    assert [str(a) for a in remote.dns] == ["198.51.100.53", "198.51.100.54", "2001:db8:8000::53:1",
                                            "2001:db8:8000::53:2"]
    assert conn.eap_identity == Identity.ANY and conn.eap_identity_text == "%any"

    assert conn.dpdaction == "clear" and conn.dpddelay == 2400 and conn.dpd_interval == 2400
    assert conn.dpdtimeout == 150
    assert conn.rekey is False
    assert conn.ike_lifetimes.rekey_time == conn.ike_lifetimes.reauth_time == 0  # never rekeys
    assert conn.child_lifetimes.life_time == conn.child_lifetimes.rekey_time == 0  # never expires
    assert conn.fragmentation == "yes" and conn.mobike and not conn.forceencaps
    assert conn.type == "tunnel"

    assert conn.ike_strict and conn.esp_strict
    assert len(conn.ike) == 1 and len(conn.esp) == 1
    assert conn.ike[0].encr == ((EncrId.AES_CBC, 256), (EncrId.AES_CBC, 192), (EncrId.AES_CBC, 128))
    assert conn.esp[0].protocol == ProtocolId.ESP

    secrets = config.secrets
    assert [(e.kind, [str(s) for s in e.selectors]) for e in secrets.entries] == [
        ("RSA", ["%any"]), ("EAP", ["user1"]), ("EAP", ["user2"]), ("EAP", ["alice"]), ("NTLM", ["carol"]),
    ]
    assert len(secrets.private_keys) == 1
    assert secrets.find_eap("user1", local.id) == ("EAP", b"password1")
    assert secrets.find_eap("carol", local.id) == ("NTLM", bytes(range(16)))
    assert config.cacert_files == (seed_dir.confdir / "ipsec.d" / "cacerts" / "intermediate.crt",)
    assert config.settings.get_bool("charon.prefer_configured_proposals") is False


def test_seed_from_the_bundled_example(tmp_path):
    example = pytest.importorskip("ikegate.pki.example")
    layout = example.write_example(tmp_path / "ex")
    config, diagnostics = load_config(layout.directory)
    assert not diagnostics.errors, [str(d) for d in diagnostics]
    (conn,) = config.conns
    assert conn.local.id_from_cert
    assert conn.local.id == Identity.from_dn_der(conn.local.cert_object.subject.public_bytes())
    users = {str(e.selectors[0]) for e in config.secrets.entries if e.kind in ("EAP", "NTLM")}
    assert set(layout.users) == users


# ------------------------------------------------------------------------------------
# defaults and values


def test_conn_defaults(tmp_path):
    config, _ = load(tmp_path, BASE)
    conn = config.conns[0]
    assert (conn.ikelifetime, conn.lifetime, conn.margintime, conn.rekeyfuzz) == (10800, 3600, 540, 100)
    assert (conn.keyingtries, conn.dpddelay, conn.dpdtimeout, conn.dpdaction) == (3, 30, 150, "none")
    assert conn.dpd_interval == 0  # dpdaction=none disables DPD
    assert (conn.fragmentation, conn.mobike, conn.installpolicy, conn.rekey, conn.reauth) == ("yes", True, True,
                                                                                               True, True)
    assert conn.keyexchange == "ike" and conn.type == "tunnel" and conn.closeaction == "none"
    assert conn.local.sendcert == conn.remote.sendcert == "ifasked"
    assert conn.local.ikeport == conn.remote.ikeport == 500
    assert conn.local.subnets == conn.remote.subnets == (TsSpec(None),)
    assert conn.local.updown is None  # no default updown script in charon
    assert conn.ike_lifetimes.reauth_time == 10800 - 540 and conn.ike_lifetimes.rekey_time == 0
    assert conn.ike_lifetimes.jitter_time == 540
    child = conn.child_lifetimes
    assert (child.life_time, child.rekey_time, child.jitter_time) == (3600, 3060, 540)
    assert len(conn.ike) == 2 and len(conn.esp) == 2  # strongSwan's default proposals


def test_times_and_numbers(tmp_path):
    config, diagnostics = load(tmp_path, BASE + (
        "    ikelifetime=2h\n    keylife=30m\n    rekeymargin=90s\n    rekeyfuzz=50%\n    reauth=no\n"
        "    dpddelay=1d\n    keyingtries=%forever\n    mark=0x10/0xff\n    mark_out=7\n    tfc=%mtu\n"
        "    lifebytes=1000000\n    marginbytes=1000\n    closeaction=restart\n"
    ))
    assert not diagnostics.errors
    conn = config.conns[0]
    assert (conn.ikelifetime, conn.lifetime, conn.margintime, conn.rekeyfuzz) == (7200, 1800, 90, 50)
    assert conn.dpddelay == 86400 and conn.keyingtries == 0 and conn.tfc == -1
    assert conn.mark_in == (0x10, 0xFF) and conn.mark_out == (7, 0xFFFFFFFF)
    assert conn.ike_lifetimes == type(conn.ike_lifetimes)(7200 - 90, 0, 90, 45)  # reauth=no: rekey
    assert conn.child_lifetimes.rekey_bytes == 999000 and conn.child_lifetimes.jitter_bytes == 500


def test_end_values(tmp_path):
    config, diagnostics = load(tmp_path, BASE + (
        "    left=%192.0.2.1\n    leftid=@gw.example.org\n    leftsubnet=10.0.0.0/8[tcp/80],%dynamic[udp]\n"
        "    right=198.51.100.0/24,vpn.example.net\n    rightid=\"%alice@example.org\"\n"
        "    rightprotoport=17/%any\n"
        "    rightsourceip=%config,%dhcp,10.3.0.10-10.3.0.20,10.4.0.5/24\n"
        "    rightdns=192.0.2.53\n    rightca=\"C=CH, CN=Root\"\n    leftfirewall=yes\n"
        "    rightgroups=staff,admins\n"
    ))
    assert not diagnostics.errors, [str(d) for d in diagnostics]
    conn = config.conns[0]
    local, remote = conn.local, conn.remote
    assert local.hosts == ("192.0.2.1",) and local.allow_any
    assert local.id == Identity.parse("@gw.example.org") and not local.id_from_cert
    assert [str(ts) for ts in local.subnets] == ["10.0.0.0/8[6/80]", "%dynamic[17]"]
    assert remote.hosts == ("198.51.100.0/24", "vpn.example.net")
    assert remote.id == Identity.parse("alice@example.org") and remote.id_loose
    assert remote.subnets == (TsSpec(None, 17, 0, 0xFFFF),)
    assert [p.kind for p in conn.pools] == ["config", "named", "range", "cidr"]
    assert conn.pools[0].name == "rw" and conn.pools[1].name == "dhcp"
    assert (str(conn.pools[2].first), str(conn.pools[2].last)) == ("10.3.0.10", "10.3.0.20")
    assert str(conn.pools[3].base) == "10.4.0.5" and str(conn.pools[3].network) == "10.4.0.0/24"
    assert remote.ca == Identity.parse("C=CH, CN=Root")
    assert local.updown == "ipsec _updown iptables" and not local.firewall
    assert [str(g) for g in remote.groups] == ["staff", "admins"]


@pytest.mark.parametrize("auth,method,eap_type,radius", [
    ("eap-mschapv2", "eap", 26, False),
    ("eap-tls", "eap", 13, False),
    ("eap", "eap", None, False),
    ("eap-radius", "eap", None, True),
    ("eap-26", "eap", 26, False),
    ("pubkey", "pubkey", None, False),
    ("rsa-sha256", "pubkey", None, False),
    ("psk", "psk", None, False),
    ("secret", "psk", None, False),
    ("xauth-pam", "xauth", None, False),
    ("any", "any", None, False),
])
def test_auth_methods(tmp_path, auth, method, eap_type, radius):
    config, diagnostics = load(tmp_path, f"conn rw\n    auto=add\n    leftauth=psk\n    rightauth={auth}\n")
    assert not diagnostics.errors
    spec = config.conns[0].remote.auth
    assert (spec.method, spec.eap_type, spec.radius, spec.text) == (method, eap_type, radius, auth)


def test_signature_constraints_and_unknown_auth(tmp_path):
    config, diagnostics = load(tmp_path, (
        "conn rw\n    auto=add\n    leftauth=rsa/pss-sha384\n    rightauth=eap-mschapv3\n"
        "conn other\n    auto=add\n    leftauth=pubkey-sha256-bogus\n    rightauth=magic\n"
    ), secrets=None)
    rw, other = config.conns
    assert [str(c) for c in rw.local.auth.signature_constraints] == ["rsa/pss-sha384"]
    assert rw.remote.auth.method == "eap" and rw.remote.auth.eap_type is None  # any EAP method
    assert [str(c) for c in other.local.auth.signature_constraints] == ["any-sha256"]
    assert other.remote.auth.method == "any"
    warnings = messages(diagnostics, "warning")
    assert "unknown or invalid EAP method: mschapv3 (any EAP method is accepted)" in warnings
    assert "ignoring invalid auth token: 'bogus'" in warnings
    assert "authentication method magic unknown, fallback to any" in warnings


def test_authby_legacy_mapping(tmp_path):
    config, _ = load(tmp_path, "conn a\n    auto=add\n    authby=secret\n"
                               "conn b\n    auto=add\n    authby=xauthpsk\n    xauth=server\n")
    a, b = config.conns
    assert a.local.auth.method == a.remote.auth.method == "psk"
    assert b.remote.auth2 is not None and b.remote.auth2.method == "xauth" and b.local.auth2 is None


def test_ends_swap_when_right_is_local(tmp_path):
    conf = BASE + "    left=198.51.100.7\n    right=192.0.2.10\n    leftid=@client\n    rightid=@gateway\n"
    config, _ = load(tmp_path, conf, is_local=lambda address: address == "192.0.2.10")
    conn = config.conns[0]
    assert not conn.local_is_left
    assert conn.local.side == "right" and conn.local.id == Identity.parse("@gateway")
    assert conn.remote.side == "left" and conn.remote.hosts == ("198.51.100.7",)
    config, _ = load(tmp_path / "2", conf)  # without is_local: left is local
    assert config.conns[0].local_is_left


def test_default_id_is_the_address(tmp_path):
    config, _ = load(tmp_path, BASE + "    left=192.0.2.1\n")
    assert config.conns[0].local.id == Identity.parse("192.0.2.1")


def test_leftid_kept_if_in_certificate_else_subject(tmp_path, server_cert):
    files = {"ipsec.d/certs/vpn.crt": server_cert.cert_pem, "ipsec.d/private/vpn.key": server_cert.key_pem}
    conf = ("conn ok\n    auto=add\n    leftcert=vpn.crt\n    leftid=@vpn.example.org\n    rightauth=psk\n"
            "conn mismatch\n    auto=add\n    leftcert=vpn.crt\n    leftid=@other.example.org\n    rightauth=psk\n")
    config, diagnostics = load(tmp_path, conf, secrets=": RSA vpn.key\n", files=files)
    ok, mismatch = config.conns
    assert ok.local.id == Identity.parse("@vpn.example.org") and not ok.local.id_from_cert
    subject = Identity.from_dn_der(server_cert.cert.subject.public_bytes())
    assert mismatch.local.id == subject and mismatch.local.id_from_cert
    assert ("id 'other.example.org' not confirmed by certificate, defaulting to "
            "'C=CH, O=ikegate test, CN=vpn.example.org'") in messages(diagnostics, "warning")
    assert not diagnostics.errors


def test_private_key_cross_check(tmp_path, server_cert, ec_cert):
    files = {"ipsec.d/certs/vpn.crt": server_cert.cert_pem, "ipsec.d/private/other.key": ec_cert.key_pem}
    config, diagnostics = load(tmp_path, "conn a\n    auto=add\n    leftcert=vpn.crt\n    rightauth=psk\n",
                               secrets=": ECDSA other.key\n", files=files)
    assert any("no private key in ipsec.secrets matches the certificate" in m for m in messages(diagnostics))


def test_auto_values(tmp_path):
    config, diagnostics = load(tmp_path, (
        "conn started\n    auto=start\n    leftauth=psk\n    rightauth=psk\n"
        "conn ignored\n    leftauth=psk\n    rightauth=psk\n"
    ))
    started, ignored = config.conns
    assert started.auto == "add" and started.loaded
    assert ignored.auto == "ignore" and not ignored.loaded
    assert config.loaded_conns == (started,)
    warnings = messages(diagnostics, "warning")
    assert "auto=start treated as auto=add: ikegate only responds to clients" in warnings
    assert any("auto=ignore (the default)" in w for w in warnings)


def test_deprecated_and_unknown_keywords_are_warnings(tmp_path):
    config, diagnostics = load(tmp_path, "config setup\n    plutodebug=all\n    bogus=1\n" + BASE +
                               "    pfs=yes\n    leftnexthop=%direct\n    frobnicate=yes\n")
    assert config.conns and not diagnostics.errors
    assert messages(diagnostics, "warning")[:3] == [
        "deprecated keyword 'plutodebug' in config setup (ignored)",
        "unknown keyword 'bogus'",
        "deprecated keyword 'pfs' in conn 'rw' (ignored)",
    ]
    assert "deprecated keyword 'leftnexthop' in conn 'rw' (ignored)" in messages(diagnostics)
    assert "unknown keyword 'frobnicate'" in messages(diagnostics)


def test_shunt_conns_are_skipped(tmp_path):
    config, diagnostics = load(tmp_path, BASE + "conn lan\n    type=passthrough\n    auto=route\n"
                               "    leftsubnet=192.168.0.0/16\n    rightsubnet=192.168.0.0/16\n")
    assert [c.name for c in config.conns] == ["rw"]
    assert not diagnostics.errors


def test_charondebug_parsing(tmp_path):
    config, diagnostics = load(tmp_path, 'config setup\n    charondebug="ike 1, knl 2,cfg 3, bad, net 1"\n' + BASE)
    assert dict(config.setup.charondebug) == {"ike": 1, "knl": 2, "cfg": 3}  # stops at "bad"
    assert any("cannot parse 'bad, net 1'" in m for m in messages(diagnostics, "warning"))


def test_setup_errors_reject_everything(tmp_path):
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "config setup\n    strictcrlpolicy=maybe\n" + BASE)
    assert "bad value: strictcrlpolicy=maybe" in str(info.value)


def test_missing_ipsec_conf(tmp_path):
    tmp_path.joinpath("etc").mkdir()
    with pytest.raises(ConfigLoadError, match="file not found"):
        load_config(tmp_path / "etc")


def test_ca_section(tmp_path, server_cert):
    config, diagnostics = load(tmp_path, BASE + "ca root\n    cacert=root.pem\n    crluri=http://crl.example\n"
                               "    auto=add\n", files={"ipsec.d/cacerts/root.pem": server_cert.cert_pem})
    assert not diagnostics.errors
    (ca,) = config.ca_sections
    assert ca.cacert.name == "root.pem" and ca.cacert_object == server_cert.cert
    assert ca.crluri == "http://crl.example" and ca.auto == "add"


def test_strongswan_conf_is_read(tmp_path):
    config, diagnostics = load(tmp_path, BASE, files={"strongswan.conf": (
        "charon {\n    retransmit_tries = 3\n    prefer_configured_proposals = yes\n"
        "    plugins {\n        stroke {\n            allow_swap = no\n        }\n    }\n}\n")})
    assert config.settings.get_int("charon.retransmit_tries") == 3
    assert config.settings.get_bool("charon.prefer_configured_proposals") is True
    assert not diagnostics.errors
