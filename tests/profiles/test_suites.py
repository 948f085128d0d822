"""Suite strength, acceptance by the conn, and strongSwan proposal strings."""

from __future__ import annotations

import pytest

from ikegate.config.proposals import DEFAULT_ESP, DEFAULT_ESP_AEAD, DEFAULT_IKE, DEFAULT_IKE_AEAD, proposal_from_string
from ikegate.profiles.suites import (
    Candidate,
    best_candidate,
    esp_accepted,
    ike_accepted,
    ike_strength,
    strongswan_proposal,
    strongswan_text,
    supported,
)
from ikegate.proposal import Proposal
from ikegate.wire.constants import DhId, EncrId, IntegId, PrfId, ProtocolId

IKE, ESP = ProtocolId.IKE, ProtocolId.ESP


@pytest.mark.parametrize("text, protocol", [
    ("aes256-sha384-modp3072", IKE),
    ("aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024", IKE),
    ("aes128gcm16-prfsha256-ecp256", IKE),
    ("aes256gcm16-chacha20poly1305-prfsha512-prfsha256-curve25519-ecp384", IKE),
    ("aes128-sha256-prfsha1-modp2048", IKE),  # a PRF that is not the integrity's own
    ("3des-md5-modp1024", IKE),
    ("aes128-sha256-modp2048-esn-noesn", ESP),
    ("aes256-sha1-modp2048-none", ESP),
    ("aes128gcm16-aes256gcm16", ESP),
])
def test_strongswan_text_round_trip(text, protocol):
    """strongSwan's parser (ikegate.config.proposals) reads back what we write."""
    proposal = proposal_from_string(text, protocol)
    written = strongswan_text(proposal)
    assert written == text  # the canonical keywords, in the order given
    assert proposal_from_string(written, protocol) == proposal


@pytest.mark.parametrize("proposal", [DEFAULT_IKE, DEFAULT_IKE_AEAD, DEFAULT_ESP, DEFAULT_ESP_AEAD])
def test_strongswan_text_of_the_defaults(proposal):
    assert proposal_from_string(strongswan_text(proposal), proposal.protocol) == proposal


def test_strongest_first_picks_the_aead_default():
    conn = supported((DEFAULT_IKE, DEFAULT_IKE_AEAD))
    chosen = strongswan_proposal(conn)
    assert chosen.encr[0] == (EncrId.AES_GCM_16, 256)
    assert chosen.prf[0] == PrfId.HMAC_SHA2_512 and chosen.dh[0] == DhId.ECP_521
    assert ike_accepted(conn, chosen) is not None
    assert str(ike_accepted(conn, chosen)) == "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_512/ECP_521"


def test_esp_pfs_must_match_on_rekey():
    required = (proposal_from_string("aes128-sha256-modp2048", ESP),)
    optional = (proposal_from_string("aes128-sha256-modp2048-none", ESP),)
    without = proposal_from_string("aes128-sha256", ESP)
    with_pfs = proposal_from_string("aes128-sha256-modp2048", ESP)
    assert esp_accepted(required, without) is None  # the client's rekey without KE is refused
    assert esp_accepted(required, with_pfs) is not None
    assert esp_accepted(optional, without) is not None and esp_accepted(optional, with_pfs) is not None
    assert esp_accepted((proposal_from_string("aes128-sha256", ESP),), with_pfs) is None


def _ike(encr, integ, dh):
    return Proposal(IKE, encr=(encr,), integ=(integ,), prf=(PrfId.HMAC_SHA2_256,), dh=(dh,))


def test_strength_order():
    aes = (EncrId.AES_CBC, 256)
    ordered = [
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.MODP_1024),
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.MODP_2048),
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.MODP_3072),
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.ECP_256),
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.CURVE_25519),
        _ike(aes, IntegId.HMAC_SHA2_256_128, DhId.ECP_384),
    ]
    assert sorted(ordered, key=ike_strength) == ordered
    # the weakest part counts first: 3DES with ECP-384 is weaker than AES-128 with MODP-2048
    assert ike_strength(_ike((EncrId.TRIPLE_DES, 0), IntegId.HMAC_SHA2_256_128, DhId.ECP_384)) < ike_strength(
        _ike((EncrId.AES_CBC, 128), IntegId.HMAC_SHA2_256_128, DhId.MODP_2048))


def test_best_candidate_strongest_accepted_first_on_ties():
    conn = (proposal_from_string("aes128-sha256-modp2048", IKE),)
    candidates = [
        Candidate("strong", proposal_from_string("aes256-sha384-ecp384", IKE)),
        Candidate("ok", proposal_from_string("aes128-sha256-modp2048", IKE)),
        Candidate("same", proposal_from_string("aes128-sha256-modp2048", IKE)),
    ]
    chosen = best_candidate(candidates, lambda p: ike_accepted(conn, p), ike_strength)
    assert chosen.setting == "ok"
    assert best_candidate(candidates[:1], lambda p: ike_accepted(conn, p), ike_strength) is None


def test_supported_drops_what_ikegate_lacks():
    conn = (proposal_from_string("camellia256-sha256-modp2048", IKE), proposal_from_string("aes256-sha256-modp2048", IKE))
    assert supported(conn) == conn[1:]
