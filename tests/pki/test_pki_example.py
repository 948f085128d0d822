"""The demo PKI generator and the bundled example (``ikegate example``)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
import subprocess

import pytest
from Crypto.Hash import MD4
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from ikegate.pki import example
from ikegate.pki.generate import IKE_INTERMEDIATE, make_ca, make_client_cert, make_large_chain
from ikegate.pki.keys import load_certificate, load_private_key
from ikegate.pki.store import CertStore, check_server_cert, key_hash, private_key_matches

# The seed files below (and the ipsec.secrets text in test_ipsec_secrets) are this file's
# own copies of seed-config.md, kept on purpose instead of importing example.SEED_*: they
# are the independent oracle that checks ikegate.pki.example against the seed document,
# which every other test (tests/config, tests/interop) now takes from example.py.

# /etc/ipsec.conf from /work/shared/spec/seed-config.md, copied verbatim.
SEED_IPSEC_CONF = """config setup
    charondebug="cfg 2"
    uniqueids=no

conn myvpn
    keyexchange=ikev2
    auto=add
    left=%any
    leftsubnet=0.0.0.0/0,::/0
    leftauth=pubkey
    leftcert=/etc/ssl/private/vpn-server.crt
    leftsendcert=always
    right=%any
    rightsourceip=192.0.2.0/24,2001:db8::/96
    rightauth=eap-mschapv2
    rightsendcert=never
    rightdns=198.51.100.53,198.51.100.54,2001:db8:8000::53:1,2001:db8:8000::53:2
    eap_identity=%any
    leftupdown=/etc/strongswan.d/proxyndp.updown
    dpdaction=clear
    dpddelay=2400s
    rekey=no
    fragmentation=yes
    ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!
    esp=aes256-aes192-aes128-sha384-sha256-sha1!
"""

# /etc/strongswan.d/proxyndp.updown from seed-config.md, copied verbatim.
SEED_UPDOWN = """#!/bin/bash
IFACE=eth0 # configure me
ADDR=${PLUTO_PEER_CLIENT%/*}
case $PLUTO_VERB in
  up-client-v6)   ip -6 neigh add proxy $ADDR dev $IFACE ;;
  down-client-v6) ip -6 neigh delete proxy $ADDR dev $IFACE ;;
  up-client)      ip neigh add proxy $ADDR dev $IFACE ;;
  down-client)    ip neigh delete proxy $ADDR dev $IFACE ;;
esac 2>&1 | logger -t proxyndp.updown
"""


@pytest.fixture(scope="module")
def rsa_example(tmp_path_factory):
    return example.write_example(tmp_path_factory.mktemp("rsa") / "conf", sans=["203.0.113.10"])


@pytest.fixture(scope="module")
def ecdsa_example(tmp_path_factory):
    return example.write_example(
        tmp_path_factory.mktemp("ecdsa") / "conf", server_name="gw.example.net", key_type="ecdsa"
    )


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _pki(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pki", *args], capture_output=True, text=True)


# --------------------------------------------------------------------------
# Files and their contents


def test_ipsec_conf_is_the_seed_modulo_two_paths(rsa_example):
    layout = rsa_example
    expected = SEED_IPSEC_CONF.replace(
        "leftcert=/etc/ssl/private/vpn-server.crt", f"leftcert={layout.directory}/ssl/private/vpn-server.crt"
    ).replace(
        "leftupdown=/etc/strongswan.d/proxyndp.updown",
        f"leftupdown={layout.directory}/strongswan.d/proxyndp.updown",
    )
    assert layout.ipsec_conf.read_bytes() == expected.encode()
    assert layout.directory.is_absolute()


def test_ipsec_secrets(rsa_example, ecdsa_example):
    assert rsa_example.ipsec_secrets.read_text() == (
        "# SSL private key\n"
        f": RSA {rsa_example.directory}/ssl/private/vpn-server.key\n"
        "# Clients' credentials (plaintext)\n"
        'user1 : EAP "password1"\n'
        'user2 : EAP "password2"\n'
        "# whitespace either side of the ':' is significant\n"
        "include ipsec.d/secrets/myvpn\n"
    )
    assert f": ECDSA {ecdsa_example.directory}/ssl/private/vpn-server.key\n" in ecdsa_example.ipsec_secrets.read_text()


def test_user_secrets_and_ntlm_hash(rsa_example):
    layout = rsa_example
    lines = [line for line in layout.user_secrets.read_text().splitlines() if not line.startswith("#")]
    assert layout.ntlm_users == ("carol",)
    assert set(layout.users) == {"user1", "user2", "alice", "bob", "carol"}
    for name in ("alice", "bob"):
        assert f'{name} : EAP "{layout.users[name]}"' in lines
    ntlm = [line for line in lines if line.startswith("carol : NTLM 0x")]
    assert len(ntlm) == 1
    # independent MD4 (pycryptodome) of the UTF-16LE password
    expected = MD4.new(layout.users["carol"].encode("utf-16-le")).hexdigest()
    assert ntlm[0] == f"carol : NTLM 0x{expected}"
    assert layout.users["carol"] not in layout.user_secrets.read_text()


def test_layout_files_and_modes(rsa_example):
    layout = rsa_example
    assert layout.updown.read_text() == SEED_UPDOWN
    assert _mode(layout.updown) == 0o755
    for secret in (layout.ipsec_secrets, layout.user_secrets, layout.server_key, layout.readme):
        assert _mode(secret) == 0o600, secret
    assert _mode(layout.server_key.parent) == 0o700
    assert layout.certs_dir.is_dir() and not any(layout.certs_dir.iterdir())
    assert layout.private_dir.is_dir() and not any(layout.private_dir.iterdir())
    assert [p.name for p in layout.cacerts_dir.iterdir()] == ["intermediate.crt"]
    assert layout.root_cert == layout.directory / "ca" / "root.crt"
    # the server certificate file holds the leaf only, not the chain
    assert layout.server_cert.read_bytes().count(b"-----BEGIN CERTIFICATE-----") == 1


def test_readme_lists_users(rsa_example):
    text = rsa_example.readme.read_text()
    for name, password in rsa_example.users.items():
        assert name in text and password in text
    assert "ca/root.crt" in text


# --------------------------------------------------------------------------
# The certificate chain


def test_chain_verifies_with_cryptography_webpki_policy(rsa_example, ecdsa_example):
    for layout in (rsa_example, ecdsa_example):
        root = load_certificate(layout.root_cert)
        intermediate = load_certificate(layout.intermediate_cert)
        leaf = load_certificate(layout.server_cert)
        verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(layout.server_name))
        chain = verifier.verify(leaf, [intermediate])
        assert chain == [leaf, intermediate, root]


def test_chain_verifies_with_openssl(rsa_example, ecdsa_example):
    for layout in (rsa_example, ecdsa_example):
        result = subprocess.run(
            ["openssl", "verify", "-CAfile", str(layout.root_cert), "-untrusted", str(layout.intermediate_cert),
             "-purpose", "sslserver", str(layout.server_cert)],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # the intermediate alone does not verify the leaf to the root
        alone = subprocess.run(
            ["openssl", "verify", "-CAfile", str(layout.root_cert), str(layout.server_cert)],
            capture_output=True, text=True,
        )
        assert alone.returncode != 0


def test_strongswan_pki_parses_everything(rsa_example, ecdsa_example):
    for layout, key_type in ((rsa_example, "rsa"), (ecdsa_example, "ecdsa")):
        for cert in (layout.server_cert, layout.intermediate_cert, layout.root_cert):
            result = _pki("--print", "--type", "x509", "--in", str(cert))
            assert result.returncode == 0 and "subject:" in result.stdout, result.stderr
        leaf = _pki("--print", "--type", "x509", "--in", str(layout.server_cert)).stdout
        assert "serverAuth" in leaf and "ikeIntermediate" in leaf
        assert f"altNames:  {layout.server_name}" in leaf
        key = _pki("--print", "--type", key_type, "--in", str(layout.server_key))
        assert key.returncode == 0 and "privkey:" in key.stdout, key.stderr
        # strongSwan builds and trusts the chain leaf -> intermediate -> root, and not
        # without the intermediate
        verified = _pki("--verify", "--in", str(layout.server_cert), "--cacert", str(layout.intermediate_cert),
                        "--cacert", str(layout.root_cert))
        assert verified.returncode == 0 and "certificate trusted" in verified.stdout
        unverified = _pki("--verify", "--in", str(layout.server_cert), "--cacert", str(layout.root_cert))
        assert unverified.returncode != 0


def test_server_cert_contents(rsa_example):
    leaf = load_certificate(rsa_example.server_cert)
    key = load_private_key(rsa_example.server_key)
    assert private_key_matches(leaf, key)
    assert check_server_cert(leaf) == []
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["vpn.example.org", "203.0.113.10"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("203.0.113.10")]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]
    assert leaf.subject.rfc4514_string() == "CN=vpn.example.org"


def test_cacerts_store_builds_chain(rsa_example):
    store = CertStore()
    assert store.load_cacerts(rsa_example.cacerts_dir) == []
    intermediate = load_certificate(rsa_example.intermediate_cert)
    leaf = load_certificate(rsa_example.server_cert)
    assert store.build_chain(leaf) == [intermediate]
    assert store.build_chain(leaf, [key_hash(intermediate)]) == []
    root = load_certificate(rsa_example.root_cert)
    assert store.build_chain(leaf, [key_hash(root)]) == [intermediate]


# --------------------------------------------------------------------------
# Options and errors


def test_custom_users(tmp_path):
    layout = example.write_example(tmp_path / "c", users={"dave": "pw dave#1"}, ntlm_users=[])
    assert layout.users == {"user1": "password1", "user2": "password2", "dave": "pw dave#1"}
    assert 'dave : EAP "pw dave#1"' in layout.user_secrets.read_text()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": {"bad name": "x"}},
        {"users": {"quote": 'a"b'}},
        {"users": {"user1": "x"}},
        {"users": {"eve": "x"}, "ntlm_users": ["mallory"]},
        {"key_type": "dsa"},
    ],
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        example.write_example(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_directory_with_space_refused(tmp_path):
    with pytest.raises(ValueError):
        example.write_example(tmp_path / "with space")


def _cli_args(directory, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    example.add_arguments(parser)
    return parser.parse_args(["--dir", str(directory), *extra])


def test_cli_run(tmp_path, capsys):
    target = tmp_path / "cli"
    assert example.run(_cli_args(target, "--server-name", "vpn.test.example", "--san", "vpn2.test.example")) == 0
    out = capsys.readouterr().out
    assert str(target) in out and "README.txt" in out
    # passwords are never printed
    readme = (target / "README.txt").read_text()
    assert "password1" not in out
    for line in (target / "ipsec.d" / "secrets" / "myvpn").read_text().splitlines():
        if ' : EAP "' in line:
            assert line.split('"')[1] not in out and line.split('"')[1] in readme
    leaf = load_certificate(target / "ssl" / "private" / "vpn-server.crt")
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["vpn.test.example", "vpn2.test.example"]
    # an existing example is not overwritten without --force
    before = (target / "ssl" / "private" / "vpn-server.key").read_bytes()
    assert example.run(_cli_args(target)) == 1
    assert "--force" in capsys.readouterr().err
    assert (target / "ssl" / "private" / "vpn-server.key").read_bytes() == before
    assert example.run(_cli_args(target, "--force", "--key-type", "ecdsa")) == 0
    assert (target / "ssl" / "private" / "vpn-server.key").read_bytes() != before
    assert ": ECDSA " in (target / "ipsec.secrets").read_text()


def test_cli_dispatcher_knows_example(tmp_path):
    from ikegate.cli import main

    assert main(["example", "--dir", str(tmp_path / "via-cli")]) == 0
    assert (tmp_path / "via-cli" / "ipsec.conf").is_file()


# --------------------------------------------------------------------------
# generate.py details


def test_client_cert():
    ca = make_ca("Client CA", "ecdsa")
    cred = make_client_cert(ca, "alice@example.org", "ecdsa")
    san = cred.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@example.org"]
    eku = cred.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert private_key_matches(cred.cert, cred.key)


def test_large_chain(tmp_path):
    pki = make_large_chain(intermediates=4, key_type="ecdsa", padding=1500)
    assert len(pki.intermediates) == 4
    sent = [pki.server.cert, *pki.chain_to_send()]
    total = sum(len(c.public_bytes(serialization.Encoding.DER)) for c in sent)
    assert total > 5 * 1500
    store = CertStore([pki.root.cert, *(c.cert for c in pki.intermediates)])
    assert store.build_chain(pki.server.cert) == pki.chain_to_send()
    # openssl accepts the padded chain
    (tmp_path / "root.pem").write_bytes(pki.root.cert_pem())
    (tmp_path / "untrusted.pem").write_bytes(b"".join(c.cert_pem() for c in pki.intermediates))
    (tmp_path / "leaf.pem").write_bytes(pki.server.cert_pem())
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "untrusted.pem"),
         str(tmp_path / "leaf.pem")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # and strongSwan parses a padded certificate
    (tmp_path / "int.pem").write_bytes(pki.intermediates[0].cert_pem())
    assert _pki("--print", "--in", str(tmp_path / "int.pem")).returncode == 0
