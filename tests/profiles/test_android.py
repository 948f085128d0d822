"""The Android .sswan profile: parsed as JSON, checked against the app's import rules
(docs.strongswan.org os/androidVpnClientProfiles; VpnProfileImportActivity.parseProfile:
``uuid`` must parse as a UUID, ``name``, ``type`` and ``remote.addr`` are required,
``remote.cert`` is base64), its proposals parsed with strongSwan's grammar
(ikegate.config.proposals) and run through the gateway's selection."""

from __future__ import annotations

import base64
import json
import uuid

from cryptography import x509

from ikegate.config.proposals import proposal_from_string
from ikegate.profiles import android
from ikegate.proposal import select_proposal
from ikegate.wire.constants import ProtocolId

from .conftest import NARROW_AEAD, NARROW_PFS, describe

#: keys the app reads (parseProfile), by object
APP_KEYS = {
    None: {"uuid", "name", "type", "remote", "local", "ike-proposal", "esp-proposal", "dns-servers", "mtu",
           "nat-keepalive", "ipv6-transport", "proxy", "split-tunneling", "apps", "excluded-apps"},
    "remote": {"addr", "port", "id", "cert", "certreq", "revocation"},
    "local": {"id", "eap_id", "shared_secret", "p12", "rsa-pss"},
}
TYPES = {"ikev2-eap", "ikev2-cert", "ikev2-cert-eap", "ikev2-eap-tls", "ikev2-byod-eap"}


def load(data: bytes) -> dict:
    document = json.loads(data.decode("utf-8"))
    assert set(document) <= APP_KEYS[None]
    for required in ("uuid", "name", "type", "remote"):
        assert required in document, required
    uuid.UUID(document["uuid"])
    assert document["type"] in TYPES
    assert set(document["remote"]) <= APP_KEYS["remote"] and isinstance(document["remote"]["addr"], str)
    assert set(document.get("local", {})) <= APP_KEYS["local"]
    return document


def accepted(profile, document) -> tuple:
    # one proposal each, in strongSwan's syntax (the app validates with proposal_create_from_string)
    ike = proposal_from_string(document["ike-proposal"], ProtocolId.IKE)
    esp = proposal_from_string(document["esp-proposal"], ProtocolId.ESP)
    chosen_ike = select_proposal(profile.conn.ike, [ike])
    chosen_esp = select_proposal(profile.conn.esp, [esp], skip_dh=True)
    assert chosen_ike is not None and chosen_esp is not None
    assert select_proposal(profile.conn.esp, [esp]) is not None  # the app's rekeys
    return chosen_ike, chosen_esp


def test_seed_profile(seed, root_cert):
    profile = describe(seed.directory)
    document = load(android.build(profile))
    assert document["type"] == "ikev2-eap"
    assert document["remote"]["addr"] == "vpn.example.org" and document["remote"]["id"] == "vpn.example.org"
    assert x509.load_der_x509_certificate(base64.b64decode(document["remote"]["cert"])) == root_cert
    assert document["local"] == {"eap_id": "user1"}
    # the seed's own lists, strongest first
    assert document["ike-proposal"] == "aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024"
    assert document["esp-proposal"] == "aes256-aes192-aes128-sha384-sha256-sha1"
    ike, esp = accepted(profile, document)
    assert str(ike) == "IKE:AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072"
    assert str(esp) == "ESP:AES_CBC_256/HMAC_SHA2_384_192/NO_EXT_SEQ"
    assert load(android.build(profile))["uuid"] == document["uuid"]


def test_public_ca_no_cert(seed, root_cert):
    document = load(android.build(describe(seed.directory, trusted=[root_cert])))
    assert "cert" not in document["remote"]


def test_narrow_conns(variant):
    profile = describe(variant(NARROW_AEAD))
    document = load(android.build(profile))
    assert document["ike-proposal"] == "aes128gcm16-prfsha256-ecp256"
    assert document["esp-proposal"] == "aes128gcm16"
    accepted(profile, document)
    profile = describe(variant(NARROW_PFS))
    document = load(android.build(profile))
    assert document["esp-proposal"] == "aes128-sha1-modp2048"
    accepted(profile, document)


def test_no_user_no_local_and_password_when_given(seed):
    document = load(android.build(describe(seed.directory, user=None)))
    assert "local" not in document
    document = load(android.build(describe(seed.directory), password="pw"))
    assert document["local"] == {"eap_id": "user1", "shared_secret": "pw"}
