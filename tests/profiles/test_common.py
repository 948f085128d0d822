"""Reading a conn for client profiles: server identity, the CA to trust, routes, errors."""

from __future__ import annotations

import ipaddress
import shutil

import pytest
from cryptography.hazmat.primitives import serialization

from ikegate.pki.generate import make_demo_pki
from ikegate.profiles.common import ProfileError, system_trust_store

from .conftest import describe


def test_seed(seed, root_cert):
    profile = describe(seed.directory)
    assert profile.remote_id == "vpn.example.org" and profile.server == "vpn.example.org"
    assert profile.ca_private and profile.ca == root_cert  # the root, not the intermediate of cacerts
    assert profile.issuer_common_name == "ikegate demo Intermediate CA"
    assert profile.v4_routes == (ipaddress.ip_network("0.0.0.0/0"),)
    assert profile.v6_routes == (ipaddress.ip_network("::/0"),)
    assert profile.warnings == ()
    assert not profile.cert_requested
    assert len(profile.ca_sha1_thumbprint()) == 40


def test_root_in_the_system_store_is_public(seed, root_cert):
    profile = describe(seed.directory, trusted=[root_cert])
    assert not profile.ca_private and profile.ca is None


def test_intermediate_issued_by_a_system_root(seed, root_cert, tmp_path):
    """The chain is leaf -> intermediate (cacerts) -> a root only the system store has."""
    confdir = tmp_path / "conf"
    shutil.copytree(seed.directory, confdir)
    shutil.rmtree(confdir / "ca")
    profile = describe(confdir, trusted=[root_cert])
    assert not profile.ca_private


def test_root_missing_then_given(seed, root_cert, tmp_path):
    confdir = tmp_path / "conf"
    shutil.copytree(seed.directory, confdir)
    shutil.move(confdir / "ca" / "root.crt", tmp_path / "root.pem")
    with pytest.raises(ProfileError, match="--ca FILE"):
        describe(confdir)
    profile = describe(confdir, ca_file=tmp_path / "root.pem")
    assert profile.ca_private and profile.ca == root_cert


def test_unrelated_ca_refused(seed, tmp_path):
    other = make_demo_pki("other.example.org", key_type="ecdsa")
    (tmp_path / "other.pem").write_bytes(other.root.cert_pem())
    with pytest.raises(ProfileError, match="not in the chain"):
        describe(seed.directory, ca_file=tmp_path / "other.pem")


def test_warnings(seed):
    profile = describe(seed.directory, server="vpn.other.org", user="nobody")
    assert any("vpn.other.org is not a subjectAltName" in w and "13801" in w for w in profile.warnings)
    assert any("user 'nobody' has no EAP or NTLM secret" in w for w in profile.warnings)
    assert profile.remote_id == "vpn.example.org"  # still the certificate's name


@pytest.mark.parametrize("replacements, message", [
    ({"rightauth=eap-mschapv2": "rightauth=pubkey"}, "rightauth=pubkey"),
    ({"auto=add": "auto=ignore"}, "not loaded"),
    ({"keyexchange=ikev2": "keyexchange=ikev1"}, "no usable conn 'myvpn'"),
    ({"rightsourceip=192.0.2.0/24,2001:db8::/96": ""}, "no virtual address"),
])
def test_unusable_conns(variant, replacements, message):
    with pytest.raises(ProfileError, match=message):
        describe(variant(replacements))


def test_unknown_conn_and_bad_arguments(seed):
    with pytest.raises(ProfileError, match="no usable conn 'nope'.*myvpn"):
        describe(seed.directory, conn="nope")
    with pytest.raises(ProfileError, match="user names"):
        describe(seed.directory, user="a b")
    with pytest.raises(ProfileError, match="--server"):
        describe(seed.directory, server="vpn example")


def test_ipv6_only_when_pooled(variant):
    profile = describe(variant({"rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=192.0.2.0/24"}))
    assert profile.ipv4 and not profile.ipv6


def test_system_trust_store_reads_a_bundle(seed, root_cert, tmp_path):
    bundle = tmp_path / "bundle.crt"
    pem = root_cert.public_bytes(serialization.Encoding.PEM)
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n" + pem)
    assert system_trust_store(bundle, tmp_path / "none") == (root_cert,)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "root.pem").write_bytes(pem)
    assert system_trust_store(tmp_path / "missing", tmp_path / "dir") == (root_cert,)
