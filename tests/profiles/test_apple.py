"""The Apple .mobileconfig: loaded with plistlib, keys, types and ranges checked against
Apple's device-management schema (tests/profiles/vocab.py), its suites mapped back to
IKEv2 and run through the gateway's selection."""

from __future__ import annotations

import plistlib
import uuid

import pytest
from cryptography import x509

from ikegate.profiles import apple
from ikegate.profiles.common import ProfileError
from ikegate.proposal import select_proposal
from ikegate.wire.constants import ProtocolId

from .conftest import NARROW_AEAD, NARROW_PFS, describe
from .vocab import (
    APPLE_IKEV2_KEYS,
    APPLE_LIFETIME,
    APPLE_PAYLOAD_KEYS,
    APPLE_RANGES,
    APPLE_SA_KEYS,
    APPLE_SA_RANGES,
    apple_proposal,
)


def check_payload(payload: dict) -> None:
    for key, kind in APPLE_PAYLOAD_KEYS.items():
        assert isinstance(payload[key], kind), key
    uuid.UUID(payload["PayloadUUID"])


def load(data: bytes) -> dict:
    """The profile, checked against the schema; returns the IKEv2 dictionary's payload."""
    assert data.startswith(b"<?xml")
    top = plistlib.loads(data)
    assert top["PayloadType"] == "Configuration"
    check_payload(top)
    types = [p["PayloadType"] for p in top["PayloadContent"]]
    assert types.count("com.apple.vpn.managed") == 1
    assert set(types) <= {"com.apple.vpn.managed", "com.apple.security.root"}
    uuids = [top["PayloadUUID"], *(p["PayloadUUID"] for p in top["PayloadContent"])]
    assert len(set(uuids)) == len(uuids)
    for payload in top["PayloadContent"]:
        check_payload(payload)
    vpn = next(p for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.vpn.managed")
    assert vpn["VPNType"] == "IKEv2" and isinstance(vpn["UserDefinedName"], str)
    ikev2 = vpn["IKEv2"]
    for key, value in ikev2.items():
        assert key in APPLE_IKEV2_KEYS, key
        kind, _ = APPLE_IKEV2_KEYS[key]
        assert isinstance(value, kind) and not isinstance(value, bool), key
        if key in APPLE_RANGES:
            assert value in APPLE_RANGES[key], (key, value)
    for key, (_, required) in APPLE_IKEV2_KEYS.items():
        assert key in ikev2 or not required, key
    for sa in ("IKESecurityAssociationParameters", "ChildSecurityAssociationParameters"):
        params = ikev2[sa]
        assert set(params) == set(APPLE_SA_KEYS)
        for key, kind in APPLE_SA_KEYS.items():
            assert isinstance(params[key], kind), key
            if key in APPLE_SA_RANGES:
                assert params[key] in APPLE_SA_RANGES[key], (key, params[key])
        assert APPLE_LIFETIME[0] <= params["LifeTimeInMinutes"] <= APPLE_LIFETIME[1]
    return top


def suites(ikev2: dict):
    ike = apple_proposal(ikev2["IKESecurityAssociationParameters"], ProtocolId.IKE)
    child = apple_proposal(ikev2["ChildSecurityAssociationParameters"], ProtocolId.ESP,
                           pfs=bool(ikev2.get("EnablePFS")))
    return ike, child


def assert_accepted(profile, ike, child):
    assert select_proposal(profile.conn.ike, [ike]) is not None
    assert select_proposal(profile.conn.esp, [child], skip_dh=True) is not None
    assert select_proposal(profile.conn.esp, [child]) is not None


def vpn_of(top):
    return next(p for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.vpn.managed")


def test_seed_profile(seed, root_cert):
    profile = describe(seed.directory)
    top = load(apple.build(profile))
    ikev2 = vpn_of(top)["IKEv2"]
    assert ikev2["RemoteAddress"] == "vpn.example.org"
    assert ikev2["RemoteIdentifier"] == "vpn.example.org"  # the certificate's SAN
    assert ikev2["LocalIdentifier"] == "user1" and ikev2["AuthName"] == "user1"
    assert ikev2["AuthenticationMethod"] == "None" and ikev2["ExtendedAuthEnabled"] == 1  # EAP only
    assert "AuthPassword" not in ikev2
    assert "ServerCertificateIssuerCommonName" not in ikev2  # leftsendcert=always
    ike_params = ikev2["IKESecurityAssociationParameters"]
    assert (ike_params["EncryptionAlgorithm"], ike_params["IntegrityAlgorithm"],
            ike_params["DiffieHellmanGroup"]) == ("AES-256", "SHA2-384", 15)
    assert ike_params["LifeTimeInMinutes"] == 180  # ikelifetime default 3h
    child = ikev2["ChildSecurityAssociationParameters"]
    assert (child["EncryptionAlgorithm"], child["IntegrityAlgorithm"]) == ("AES-256", "SHA2-384")
    assert child["LifeTimeInMinutes"] == 60 and ikev2["EnablePFS"] == 0
    assert_accepted(profile, *suites(ikev2))

    (root,) = [p for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.security.root"]
    assert isinstance(root["PayloadContent"], bytes)
    assert x509.load_der_x509_certificate(root["PayloadContent"]) == root_cert
    # written again: the same UUIDs (the installed profile is replaced, not duplicated)
    assert plistlib.loads(apple.build(profile)) == top


def test_public_ca_has_no_root_payload(seed, root_cert):
    top = load(apple.build(describe(seed.directory, trusted=[root_cert])))
    assert [p["PayloadType"] for p in top["PayloadContent"]] == ["com.apple.vpn.managed"]


def test_narrow_aead_conn(variant):
    profile = describe(variant(NARROW_AEAD))
    ikev2 = vpn_of(load(apple.build(profile)))["IKEv2"]
    ike_params, child = ikev2["IKESecurityAssociationParameters"], ikev2["ChildSecurityAssociationParameters"]
    assert (ike_params["EncryptionAlgorithm"], ike_params["IntegrityAlgorithm"],
            ike_params["DiffieHellmanGroup"]) == ("AES-128-GCM", "SHA2-256", 19)
    assert child["EncryptionAlgorithm"] == "AES-128-GCM" and ikev2["EnablePFS"] == 0
    assert_accepted(profile, *suites(ikev2))


def test_conn_wanting_pfs(variant):
    profile = describe(variant(NARROW_PFS))
    ikev2 = vpn_of(load(apple.build(profile)))["IKEv2"]
    child = ikev2["ChildSecurityAssociationParameters"]
    assert ikev2["EnablePFS"] == 1 and child["DiffieHellmanGroup"] == 14
    assert (child["EncryptionAlgorithm"], child["IntegrityAlgorithm"]) == ("AES-128", "SHA1-96")
    assert_accepted(profile, *suites(ikev2))


def test_lifetimes_follow_the_conn_within_apples_range(variant):
    profile = describe(variant({"rekey=no": "ikelifetime=5m\n    lifetime=30h"}))
    ikev2 = vpn_of(load(apple.build(profile)))["IKEv2"]
    assert ikev2["IKESecurityAssociationParameters"]["LifeTimeInMinutes"] == 10
    assert ikev2["ChildSecurityAssociationParameters"]["LifeTimeInMinutes"] == 1440


def test_issuer_named_when_the_gateway_waits_for_a_certreq(variant):
    profile = describe(variant({"leftsendcert=always": "leftsendcert=ifasked"}))
    ikev2 = vpn_of(load(apple.build(profile)))["IKEv2"]
    assert ikev2["ServerCertificateIssuerCommonName"] == "ikegate demo Intermediate CA"


def test_password_only_when_given(seed):
    profile = describe(seed.directory)
    ikev2 = vpn_of(load(apple.build(profile, password="s3cret pass")))["IKEv2"]
    assert ikev2["AuthPassword"] == "s3cret pass"


def test_needs_a_user(seed):
    with pytest.raises(ProfileError, match="--user"):
        apple.build(describe(seed.directory, user=None))


def test_leftid_is_the_remote_identifier(variant):
    profile = describe(variant({"leftsendcert=always": "leftsendcert=always\n    leftid=@vpn.example.org"}),
                       server="192.0.2.99")
    assert any("192.0.2.99 is not a subjectAltName" in w for w in profile.warnings)
    ikev2 = vpn_of(load(apple.build(profile)))["IKEv2"]
    assert ikev2["RemoteAddress"] == "192.0.2.99" and ikev2["RemoteIdentifier"] == "vpn.example.org"

