"""``ikegate doctor``: each pitfall flagged on a purpose-built bad setup, none on the seed.

Every bad setup starts from the clean seed setup written by
``ikegate.pki.example.write_example`` and changes one thing (tests/config/doctor_setups.py).
Pitfalls and why they matter: the seed guide (shared/seed/strongswan-ikev2-server-guide.txt),
shared/spec/client-behaviour.md and strongswan-semantics.md.
"""

from __future__ import annotations

import datetime
import json
import shutil

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ikegate.config import doctor
from ikegate.config.doctor import Finding, diagnose

from .doctor_setups import (
    NOW,
    SERVER_NAME,
    codes,
    install_pki,
    line_of,
    make_leaf,
    make_pki,
    remove_option,
    run_doctor,
    seed,
    set_option,
)


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def layout(tmp_path):
    """The clean seed setup, as ``ikegate example`` writes it."""
    return seed(tmp_path / "etc")


@pytest.fixture
def own_layout(layout, pki):
    """The seed setup with our test PKI's intermediate and a good server certificate."""
    install_pki(layout, pki, make_leaf(pki))
    return layout


def only(findings: list[Finding], code: str) -> Finding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


# --------------------------------------------------------------------------------------
# The clean seed and the command line


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_clean_seed_has_no_warning_and_exits_0(tmp_path, key_type):
    from ikegate.pki.example import write_example

    layout = write_example(tmp_path / "etc", key_type=key_type)
    status, out = run_doctor(layout.directory)
    assert status == 0, out
    assert "warning" not in out.split("ikegate doctor:")[0]
    assert out.rstrip().endswith("0 errors, 0 warnings, 2 notes")
    # modp1024 is a note, not a warning: the seed keeps it for Windows on purpose
    assert "note [ike-modp1024] ipsec.conf:24 conn 'myvpn'" in out


def test_clean_seed_with_server_name_is_silent_about_the_certificate(layout):
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    assert codes(findings) == ["ike-modp1024"]


def test_our_pki_installed_is_as_clean_as_the_seed(own_layout):
    """The base of the certificate tests: only the certificate will be spoiled."""
    assert codes(diagnose(own_layout.directory, server_name=SERVER_NAME)) == ["ike-modp1024"]


def test_output_never_shows_a_secret(layout):
    remove_option(layout, "eap_identity")
    layout.ipsec_secrets.chmod(0o644)
    status, out = run_doctor(layout.directory, "--json")
    assert status == 1
    for password in layout.users.values():
        assert password not in out
    for line in layout.user_secrets.read_text().splitlines():
        if " NTLM 0x" in line:
            assert line.split("0x")[1] not in out


def test_warning_gives_exit_1_and_one_line_per_finding(layout):
    set_option(layout, "ike", "3des-aes128-sha1-modp1024!")
    status, out = run_doctor(layout.directory)
    assert status == 1
    lines = out.splitlines()
    warning = next(line for line in lines if line.startswith("warning [ike-3des]"))
    assert warning.startswith(f"warning [ike-3des] ipsec.conf:{line_of(layout, 'ike')} conn 'myvpn': ")
    assert " -> fix: remove 3des from ike=" in warning
    assert lines[-1] == "ikegate doctor: problems found: 0 errors, 1 warning, 2 notes"


def test_json_output_is_a_valid_list(layout):
    remove_option(layout, "eap_identity")
    status, out = run_doctor(layout.directory, "--json", "--server-name", SERVER_NAME)
    assert status == 1
    data = json.loads(out)
    assert isinstance(data, list)
    assert {tuple(sorted(item)) for item in data} == {("code", "fix", "level", "message", "where")}
    assert [item["code"] for item in data] == ["ike-modp1024", "eap-identity-missing"]
    assert data[1]["level"] == "warning"


def test_json_on_the_clean_seed_has_notes_only(layout):
    status, out = run_doctor(layout.directory, "--json")
    assert status == 0
    assert {item["level"] for item in json.loads(out)} == {"note"}


def test_unloadable_config_prints_its_errors_and_exits_2(layout):
    text = layout.ipsec_conf.read_text().replace("conn myvpn", "conn myvpn\nnot a setting")
    layout.ipsec_conf.write_text(text)
    status, out = run_doctor(layout.directory)
    assert status == 2
    assert out.startswith("error [config-error] ipsec.conf:6")
    status, out = run_doctor(layout.directory, "--json")
    assert status == 2
    assert json.loads(out)[0]["where"].startswith("ipsec.conf:6")


def test_missing_confdir_exits_2(tmp_path):
    status, out = run_doctor(tmp_path / "nothing")
    assert status == 2
    assert "error [config-error]" in out


def test_dropped_conn_is_an_error_with_exit_1(layout):
    set_option(layout, "dpddelay", "forty minutes")
    findings = diagnose(layout.directory)
    assert "config-error" in codes(findings, "error")
    assert doctor.exit_code(findings) == 1


def test_a_failing_check_is_reported_not_raised(layout):
    def broken(ctx):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    findings = diagnose(layout.directory, checks=(broken, doctor.check_ike))
    failure = only(findings, "doctor-failure")
    assert failure.level == "error" and "broken" in failure.message
    assert "ike-modp1024" in codes(findings)


# --------------------------------------------------------------------------------------
# One test per pitfall


def test_leftcert_holding_the_whole_chain(own_layout, pki):
    leaf = make_leaf(pki)
    install_pki(own_layout, pki, leaf, extra_pem=pki.intermediate.cert_pem() + pki.root.cert_pem())
    findings = diagnose(own_layout.directory, server_name=SERVER_NAME)
    finding = only(findings, "leftcert-chain")
    assert finding.level == "warning"
    assert finding.where == f"ipsec.conf:{line_of(own_layout, 'leftcert')}"
    assert "holds 3 certificates" in finding.message
    assert "ipsec.d/cacerts/" in finding.fix
    # the intermediate is in cacerts as well here, so nothing else is wrong
    assert codes(findings, "warning") == ["leftcert-chain"]


def test_chain_only_in_leftcert_file_means_intermediate_missing(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki), extra_pem=pki.intermediate.cert_pem())
    own_layout.intermediate_cert.unlink()
    findings = diagnose(own_layout.directory, server_name=SERVER_NAME)
    assert codes(findings, "warning") == ["leftcert-chain", "intermediate-missing"]
    assert "vpn-server.crt after the server certificate" in only(findings, "intermediate-missing").message


def test_intermediate_missing_from_cacerts(layout):
    layout.intermediate_cert.unlink()
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    finding = only(findings, "intermediate-missing")
    assert finding.level == "warning"
    assert "ikegate demo Intermediate CA" in finding.message
    assert finding.where == f"ipsec.conf:{line_of(layout, 'leftcert')}"
    assert doctor.exit_code(findings) == 1


def test_root_in_cacerts_is_a_note(layout):
    shutil.copy(layout.root_cert, layout.cacerts_dir / "root.crt")
    status, out = run_doctor(layout.directory, "--server-name", SERVER_NAME)
    assert status == 0, out
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    finding = only(findings, "root-in-cacerts")
    assert finding.level == "note"
    assert finding.where == "ipsec.d/cacerts/root.crt"
    assert "never sent" in finding.message


def test_root_in_cacerts_instead_of_the_intermediate(layout):
    """The root sits where the intermediate should: a note for the root, a warning for
    the missing intermediate."""
    layout.intermediate_cert.unlink()
    shutil.copy(layout.root_cert, layout.cacerts_dir / "root.crt")
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    assert codes(findings, "warning") == ["intermediate-missing"]
    assert "root-in-cacerts" in codes(findings, "note")


def test_non_ca_certificate_in_cacerts_is_skipped(layout):
    shutil.copy(layout.server_cert, layout.cacerts_dir / "server.crt")
    finding = only(diagnose(layout.directory, server_name=SERVER_NAME), "cacert-skipped")
    assert finding.level == "warning" and "not a CA certificate" in finding.message


def test_leftid_not_in_the_certificate(layout):
    set_option(layout, "leftid", "@vpn.example.net")
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    finding = only(findings, "leftid-mismatch")
    assert finding.level == "warning"
    assert finding.where == f"ipsec.conf:{line_of(layout, 'leftid')}"
    assert "leftid=@vpn.example.org" in finding.fix
    # the loader's own "not confirmed by certificate" warning is not repeated
    assert [f.where for f in findings].count(finding.where) == 1


@pytest.mark.parametrize("leftid", ["@vpn.example.org", "VPN.example.org", '"CN=vpn.example.org"'])
def test_leftid_in_the_certificate_is_fine(layout, leftid):
    set_option(layout, "leftid", leftid)
    assert codes(diagnose(layout.directory), "warning") == []


def test_certificate_without_server_auth_eku(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))
    finding = only(diagnose(own_layout.directory, server_name=SERVER_NAME), "cert-eku")
    assert finding.level == "warning"
    assert "13801" in finding.message and "clientAuth" in finding.message


def test_certificate_without_any_eku(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, eku=[]))
    assert "no extendedKeyUsage" in only(diagnose(own_layout.directory, server_name=SERVER_NAME),
                                         "cert-eku").message


def test_server_name_not_a_dns_san(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, sans=[x509.DNSName("other.example.net")]))
    finding = only(diagnose(own_layout.directory, server_name=SERVER_NAME), "cert-san")
    assert finding.level == "warning"
    assert "other.example.net" in finding.message and "13801" in finding.message
    assert finding.fix == f"reissue the certificate with subjectAltName DNS:{SERVER_NAME}"


def test_ip_server_name_only_as_ip_san(own_layout, pki):
    import ipaddress

    address = "203.0.113.5"
    leaf = make_leaf(pki, sans=[x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address(address))])
    install_pki(own_layout, pki, leaf)
    finding = only(diagnose(own_layout.directory, server_name=address), "cert-san")
    assert "only as an iPAddress SAN" in finding.message


def test_server_name_taken_from_fqdn_leftid(own_layout, pki):
    """Without --server-name, an FQDN leftid is the name clients use."""
    leaf = make_leaf(pki, sans=[x509.DNSName("other.example.net"), x509.RFC822Name("vpn@example.org")])
    install_pki(own_layout, pki, leaf)
    set_option(own_layout, "leftid", "vpn@example.org")  # in the certificate, but not an FQDN
    assert "server-name" in codes(diagnose(own_layout.directory), "note")
    set_option(own_layout, "leftid", "@vpn.example.org")  # an FQDN the certificate lacks
    findings = diagnose(own_layout.directory)
    assert "(leftid)" in only(findings, "cert-san").message


def test_certificate_without_any_san(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, sans=[]))
    finding = only(diagnose(own_layout.directory), "cert-san")
    assert "no DNS subjectAltName" in finding.message


def test_wildcard_certificate(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, cn="*.example.org", sans=[x509.DNSName("*.example.org")]))
    findings = diagnose(own_layout.directory, server_name=SERVER_NAME)
    finding = only(findings, "cert-wildcard")
    assert finding.level == "warning" and "*.example.org" in finding.message
    # the wildcard does cover the name: one problem, one finding
    assert "cert-san" not in codes(findings)


@pytest.mark.parametrize(
    ("not_after", "code"),
    [(NOW + datetime.timedelta(days=10), "cert-expiring"), (NOW - datetime.timedelta(days=1), "cert-expired")],
)
def test_certificate_expiring_or_expired(own_layout, pki, not_after, code):
    leaf = make_leaf(pki, not_before=NOW - datetime.timedelta(days=60), not_after=not_after)
    install_pki(own_layout, pki, leaf)
    findings = diagnose(own_layout.directory, server_name=SERVER_NAME)
    finding = only(findings, code)
    assert finding.level == "warning"
    assert "the server certificate" in finding.message
    assert {"cert-expiring", "cert-expired"} & set(codes(findings)) == {code}


def test_certificate_valid_for_31_days_is_fine(own_layout, pki):
    install_pki(own_layout, pki, make_leaf(pki, not_after=NOW + datetime.timedelta(days=31)))
    assert codes(diagnose(own_layout.directory, server_name=SERVER_NAME), "warning") == []


def test_3des_in_ike(layout):
    set_option(layout, "ike", "aes256-aes128-3des-sha256-sha1-modp2048-modp1024!")
    finding = only(diagnose(layout.directory), "ike-3des")
    assert finding.level == "warning"
    assert "Windows (default settings) will choose IKE:3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024" in finding.message


def test_3des_without_a_windows_dh_group_still_warns(layout):
    set_option(layout, "ike", "aes256-3des-sha256-modp2048!")
    findings = diagnose(layout.directory)
    assert "proposes 3DES first" in only(findings, "ike-3des").message
    # and Windows with default settings cannot connect at all: a note
    assert only(findings, "ike-windows").level == "note"


def test_modp1024_is_a_note_not_a_warning(layout):
    set_option(layout, "ike", "aes256-sha256-modp1024!")
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    assert only(findings, "ike-modp1024").level == "note"
    assert doctor.exit_code(findings) == 0
    set_option(layout, "ike", "aes256-sha256-modp2048!")
    assert "ike-modp1024" not in codes(diagnose(layout.directory, server_name=SERVER_NAME))


def test_forceencaps_with_ipv6(layout):
    set_option(layout, "forceencaps", "yes")
    finding = only(diagnose(layout.directory), "forceencaps-ipv6")
    assert finding.level == "warning"
    assert "pool 2001:db8::/96" in finding.message and "leftsubnet ::/0" in finding.message
    assert finding.where == f"ipsec.conf:{line_of(layout, 'forceencaps')}"


def test_forceencaps_ipv4_only_is_fine(layout):
    set_option(layout, "forceencaps", "yes")
    set_option(layout, "rightsourceip", "192.0.2.0/24")
    set_option(layout, "leftsubnet", "0.0.0.0/0")
    assert "forceencaps-ipv6" not in codes(diagnose(layout.directory))


def test_esp_offering_nothing_windows7_accepts(layout):
    set_option(layout, "esp", "aes256gcm16-aes128gcm16!")
    finding = only(diagnose(layout.directory), "esp-windows7")
    assert finding.level == "warning"
    assert finding.where == f"ipsec.conf:{line_of(layout, 'esp')}"


def test_esp_requiring_pfs(layout):
    set_option(layout, "esp", "aes256-sha1-modp2048!")
    findings = diagnose(layout.directory)
    assert only(findings, "esp-pfs-required").level == "warning"
    assert "esp-windows7" not in codes(findings)
    set_option(layout, "esp", "aes256-sha1-modp2048-modpnone!")
    assert "esp-pfs-required" not in codes(diagnose(layout.directory))


def test_esp_with_des_or_null(layout):
    set_option(layout, "esp", "aes256-des-null-sha1!")
    finding = only(diagnose(layout.directory), "esp-weak")
    assert "DES_CBC" in finding.message and "NULL" in finding.message


def test_pool_smaller_than_the_users(layout):
    set_option(layout, "rightsourceip", "192.0.2.0/30,2001:db8::/96")
    finding = only(diagnose(layout.directory), "pool-too-small")
    assert finding.level == "warning"
    # a /30 serves 2 addresses (first and last skipped); user1, user2, alice, bob, carol
    assert "IPv4 pool 192.0.2.0/30 has 2 addresses for 5 users" in finding.message
    assert finding.where == f"ipsec.conf:{line_of(layout, 'rightsourceip')}"


def test_pool_range_as_large_as_the_users_is_fine(layout):
    set_option(layout, "rightsourceip", "192.0.2.10-192.0.2.14")
    assert "pool-too-small" not in codes(diagnose(layout.directory))


@pytest.mark.parametrize("which", ["ipsec_secrets", "user_secrets", "server_key"])
def test_secrets_readable_by_others(layout, which):
    path = getattr(layout, which)
    path.chmod(0o644)
    finding = only(diagnose(layout.directory), "secrets-permissions")
    assert finding.level == "warning"
    assert finding.where == str(path.relative_to(layout.directory))
    assert "0644" in finding.message and "group and others can read" in finding.message
    assert finding.fix == f"chmod 600 {path}"


def test_no_eap_identity_round(layout):
    remove_option(layout, "eap_identity")
    finding = only(diagnose(layout.directory), "eap-identity-missing")
    assert finding.level == "warning"
    assert finding.where == f"ipsec.conf:{line_of(layout, 'rightauth')}"
    assert finding.fix == "add eap_identity=%identity to conn 'myvpn'"


def test_conns_that_do_not_serve_are_not_checked(layout):
    set_option(layout, "auto", "ignore")
    remove_option(layout, "eap_identity")
    findings = diagnose(layout.directory)
    assert "eap-identity-missing" not in codes(findings)
    assert "ike-modp1024" not in codes(findings)


# --------------------------------------------------------------------------------------
# RADIUS (eap-radius in strongswan.conf)

RADIUS_SERVER = """charon {
    plugins {
        eap-radius {
            servers {
                primary {
                    address = 127.0.0.1
                    secret = testing123
                }
            }
%s
        }
    }
}
"""


def write_strongswan_conf(layout, text: str) -> None:
    (layout.directory / "strongswan.conf").write_text(text)


def test_radius_setup_that_works_is_silent(layout):
    set_option(layout, "rightauth", "eap-radius")
    set_option(layout, "rightsourceip", "%radius")
    write_strongswan_conf(layout, RADIUS_SERVER % "accounting = yes\ndae {\nenable = yes\nsecret = daesecret\n}")
    findings = diagnose(layout.directory, server_name=SERVER_NAME)
    assert [c for c in codes(findings) if c.startswith("radius")] == []


def test_eap_radius_without_a_server_is_an_error(layout):
    set_option(layout, "rightauth", "eap-radius")
    finding = only(diagnose(layout.directory), "radius-no-server")
    assert finding.level == "error"
    assert finding.where == f"ipsec.conf:{line_of(layout, 'rightauth')}"
    assert "conn 'myvpn': rightauth=eap-radius but no usable RADIUS server" in finding.message
    assert "every login will fail" in finding.message
    assert "servers { <name> { address = ...  secret = ... } }" in finding.fix
    status, out = run_doctor(layout.directory)
    assert status == 1 and "error [radius-no-server]" in out


def test_radius_server_without_secret(layout):
    set_option(layout, "rightauth", "eap-radius")
    write_strongswan_conf(layout, RADIUS_SERVER.replace("secret = testing123", "") % "")
    findings = diagnose(layout.directory)
    finding = only(findings, "radius-server-no-secret")
    assert finding.level == "warning" and finding.where == "strongswan.conf"
    assert finding.message == "the RADIUS server 'primary' has no secret: it is skipped"
    assert finding.fix.startswith("add secret = ... to charon.plugins.eap-radius.servers.primary")
    # its only server skipped: the conn has none
    assert only(findings, "radius-no-server").level == "error"


def test_legacy_radius_server_without_secret(layout):
    write_strongswan_conf(layout, "charon {\nplugins {\neap-radius {\nserver = 192.0.2.9\n}\n}\n}\n")
    finding = only(diagnose(layout.directory), "radius-server-no-secret")
    assert "192.0.2.9 (charon.plugins.eap-radius.server) has no secret" in finding.message


def test_radius_pool_without_eap_radius(layout):
    set_option(layout, "rightsourceip", "%radius")
    write_strongswan_conf(layout, RADIUS_SERVER % "")
    finding = only(diagnose(layout.directory), "radius-pool-without-radius")
    assert finding.level == "warning"
    assert finding.where == f"ipsec.conf:{line_of(layout, 'rightsourceip')}"
    assert "rightsourceip=%radius but rightauth=eap-mschapv2 does not authenticate through RADIUS" \
        in finding.message


def test_dae_enabled_without_secret(layout):
    write_strongswan_conf(layout, RADIUS_SERVER % "dae {\nenable = yes\n}")
    finding = only(diagnose(layout.directory), "radius-dae-no-secret")
    assert finding.level == "warning" and finding.where == "strongswan.conf"
    assert "dynamic authorisation is disabled" in finding.message


def test_accounting_without_a_server(layout):
    write_strongswan_conf(layout, "charon {\nplugins {\neap-radius {\naccounting = yes\n}\n}\n}\n")
    finding = only(diagnose(layout.directory), "radius-accounting-no-server")
    assert finding.level == "warning" and finding.where == "strongswan.conf"
    assert finding.fix == "add a server to charon.plugins.eap-radius.servers, or set accounting = no"


def test_radius_findings_never_show_the_secret(layout):
    set_option(layout, "rightsourceip", "%radius")
    write_strongswan_conf(layout, RADIUS_SERVER % "dae {\nenable = yes\n}")
    status, out = run_doctor(layout.directory, "--json")
    assert "radius-pool-without-radius" in out and "testing123" not in out


def test_radius_pool_without_accounting_is_a_note(layout):
    set_option(layout, "rightauth", "eap-radius")
    set_option(layout, "rightsourceip", "%radius")
    write_strongswan_conf(layout, RADIUS_SERVER % "")
    finding = only(diagnose(layout.directory), "radius-pool-without-accounting")
    assert finding.level == "note" and "sqlippool" in finding.message
    assert finding.where == f"ipsec.conf:{line_of(layout, 'rightsourceip')}"
