"""The NetworkManager keyfile: read with configparser (GKeyFile's key=value syntax), the
[vpn] data items checked against what charon-nm reads (strongSwan
src/charon-nm/nm/nm_service.c), the ``;``-separated proposals parsed with strongSwan's
grammar and run through the gateway's selection."""

from __future__ import annotations

import configparser
import uuid

import pytest

from ikegate.config.proposals import proposal_from_string
from ikegate.profiles import networkmanager
from ikegate.profiles.common import ProfileError
from ikegate.proposal import select_proposal
from ikegate.wire.constants import ProtocolId

from .conftest import NARROW_AEAD, describe

#: data items charon-nm reads, plus the secret flags NetworkManager keeps beside them
CHARON_NM_ITEMS = {"address", "server-port", "virtual", "encap", "ipcomp", "certificate", "remote-identity",
                   "proposal", "ike", "esp", "method", "cert-source", "usercert", "userkey", "user",
                   "local-identity", "local-ts", "remote-ts", "password-flags", "service-type"}


def load(data: bytes) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # keyfile keys are case-sensitive
    parser.read_string(data.decode("utf-8"))
    assert parser["connection"]["type"] == "vpn"
    uuid.UUID(parser["connection"]["uuid"])
    vpn = parser["vpn"]
    assert vpn["service-type"] == "org.freedesktop.NetworkManager.strongswan"
    assert set(vpn) <= CHARON_NM_ITEMS
    return parser


def accepted(profile, vpn) -> None:
    assert vpn["proposal"] == "yes"
    ike = [proposal_from_string(p, ProtocolId.IKE) for p in vpn["ike"].split(";")]
    esp = [proposal_from_string(p, ProtocolId.ESP) for p in vpn["esp"].split(";")]
    assert select_proposal(profile.conn.ike, ike) is not None
    assert select_proposal(profile.conn.esp, esp, skip_dh=True) is not None
    assert select_proposal(profile.conn.esp, esp) is not None


def test_seed_keyfile(seed):
    profile = describe(seed.directory)
    keyfile = load(networkmanager.build(profile, ca_path="/etc/ipsec.d/cacerts/vpn-ca.pem"))
    vpn = keyfile["vpn"]
    assert (vpn["address"], vpn["method"], vpn["user"], vpn["virtual"]) == ("vpn.example.org", "eap", "user1", "yes")
    assert vpn["remote-identity"] == "vpn.example.org"
    assert vpn["certificate"] == "/etc/ipsec.d/cacerts/vpn-ca.pem"
    assert vpn["password-flags"] == "1" and not keyfile.has_section("vpn-secrets")
    assert keyfile["ipv4"]["method"] == "auto" and keyfile["ipv6"]["method"] == "auto"
    accepted(profile, vpn)


def test_private_ca_needs_a_path(seed):
    with pytest.raises(ProfileError, match="path of the CA"):
        networkmanager.build(describe(seed.directory))


def test_public_ca_and_ipv4_only(variant, root_cert):
    confdir = variant({"rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=192.0.2.0/24"})
    profile = describe(confdir, trusted=[root_cert])
    keyfile = load(networkmanager.build(profile))
    assert "certificate" not in keyfile["vpn"]  # charon-nm falls back to the system's CAs
    assert keyfile["ipv6"]["method"] == "ignore"


def test_narrow_conn_and_password(variant, root_cert):
    profile = describe(variant(NARROW_AEAD), trusted=[root_cert], name=" My VPN\\")
    keyfile = load(networkmanager.build(profile, password="pw 1"))
    assert keyfile["vpn"]["ike"] == "aes128gcm16-prfsha256-ecp256" and keyfile["vpn"]["esp"] == "aes128gcm16"
    accepted(profile, keyfile["vpn"])
    assert keyfile["vpn"]["password-flags"] == "0" and keyfile["vpn-secrets"]["password"] == "pw 1"
    assert keyfile["connection"]["id"] == "\\sMy VPN\\\\"  # GKeyFile escapes


def test_needs_a_user(seed):
    with pytest.raises(ProfileError, match="--user"):
        networkmanager.build(describe(seed.directory, user=None), ca_path="/x")
