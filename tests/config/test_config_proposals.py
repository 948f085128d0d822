"""ike=/esp= expansion against strongSwan 5.9.8.

Every expected string below was printed by strongSwan 5.9.8's charon (Debian package
5.9.8-5+deb12u6, this machine's plugin set incl. openssl and aesni) while loading
connections with these proposal strings (``charon.filelog ... cfg = 2`` logs each
parsed proposal list), i.e. proposal.c ``proposal_create_from_string`` +
``check_proposal`` and the defaults of ``proposal_create_default[_aead]``.  Error
texts are the ones charon logged for the rejected strings.  Compared with
:func:`strongswan_text`, which prints exactly like 5.9.8 (``%P``).
"""

from __future__ import annotations

import pytest

from ikegate.config.proposals import (
    DEFAULT_ESP,
    ProposalError,
    default_proposals,
    filter_supported,
    parse_proposals,
    proposal_from_string,
    strongswan_text,
    unsupported_algorithms,
)
from ikegate.proposal import Proposal
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType

IKE, ESP, AH = ProtocolId.IKE, ProtocolId.ESP, ProtocolId.AH

# charon 5.9.8 log: "proposals = IKE:..." (classic default, then AEAD default)
STRONGSWAN_DEFAULT_IKE = [
    "IKE:AES_CBC_128/AES_CBC_192/AES_CBC_256/AES_CTR_128/AES_CTR_192/AES_CTR_256/CAMELLIA_CBC_128/"
    "CAMELLIA_CBC_192/CAMELLIA_CBC_256/CAMELLIA_CTR_128/CAMELLIA_CTR_192/CAMELLIA_CTR_256/3DES_CBC/"
    "HMAC_SHA2_256_128/HMAC_SHA2_384_192/HMAC_SHA2_512_256/AES_XCBC_96/AES_CMAC_96/HMAC_SHA1_96/"
    "PRF_HMAC_SHA2_256/PRF_HMAC_SHA2_384/PRF_HMAC_SHA2_512/PRF_AES128_XCBC/PRF_AES128_CMAC/PRF_HMAC_SHA1/"
    "CURVE_25519/CURVE_448/ECP_256/ECP_384/ECP_521/ECP_256_BP/ECP_384_BP/ECP_512_BP/MODP_3072/MODP_4096/"
    "MODP_6144/MODP_8192/MODP_2048",
    "IKE:AES_CCM_16_128/AES_CCM_16_192/AES_CCM_16_256/AES_GCM_16_128/AES_GCM_16_192/AES_GCM_16_256/"
    "CHACHA20_POLY1305/CAMELLIA_CCM_16_128/CAMELLIA_CCM_16_192/CAMELLIA_CCM_16_256/"
    "AES_CCM_8_128/AES_CCM_8_192/AES_CCM_8_256/AES_CCM_12_128/AES_CCM_12_192/"
    "AES_CCM_12_256/AES_GCM_8_128/AES_GCM_8_192/AES_GCM_8_256/AES_GCM_12_128/AES_GCM_12_192/AES_GCM_12_256/"
    "CAMELLIA_CCM_8_128/CAMELLIA_CCM_8_192/CAMELLIA_CCM_8_256/"
    "CAMELLIA_CCM_12_128/CAMELLIA_CCM_12_192/CAMELLIA_CCM_12_256/"
    "PRF_HMAC_SHA2_256/PRF_HMAC_SHA2_384/PRF_HMAC_SHA2_512/PRF_AES128_XCBC/PRF_AES128_CMAC/PRF_HMAC_SHA1/"
    "CURVE_25519/CURVE_448/ECP_256/ECP_384/ECP_521/ECP_256_BP/ECP_384_BP/ECP_512_BP/MODP_3072/MODP_4096/"
    "MODP_6144/MODP_8192/MODP_2048",
]
STRONGSWAN_DEFAULT_ESP = [
    "ESP:AES_CBC_128/AES_CBC_192/AES_CBC_256/HMAC_SHA2_256_128/HMAC_SHA2_384_192/HMAC_SHA2_512_256/"
    "HMAC_SHA1_96/AES_XCBC_96/NO_EXT_SEQ",
    "ESP:AES_GCM_16_128/AES_GCM_16_192/AES_GCM_16_256/NO_EXT_SEQ",
]

SEED_IKE = "aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!"
SEED_ESP = "aes256-aes192-aes128-sha384-sha256-sha1!"


def texts(proposals) -> list[str]:
    return [strongswan_text(p) for p in proposals]


def test_seed_ike_expansion():
    proposals, strict = parse_proposals(SEED_IKE, IKE)
    assert strict
    assert texts(proposals) == [
        "IKE:AES_CBC_256/AES_CBC_192/AES_CBC_128/HMAC_SHA2_384_192/HMAC_SHA2_256_128/HMAC_SHA1_96/"
        "PRF_HMAC_SHA2_384/PRF_HMAC_SHA2_256/PRF_HMAC_SHA1/MODP_3072/MODP_2048/MODP_1536/MODP_1024"
    ]
    # the same through the shared model's own printing
    assert str(proposals[0]) == texts(proposals)[0]


def test_seed_esp_expansion():
    proposals, strict = parse_proposals(SEED_ESP, ESP)
    assert strict
    assert texts(proposals) == [
        "ESP:AES_CBC_256/AES_CBC_192/AES_CBC_128/HMAC_SHA2_384_192/HMAC_SHA2_256_128/HMAC_SHA1_96/NO_EXT_SEQ"
    ]
    assert proposals[0].encr == ((EncrId.AES_CBC, 256), (EncrId.AES_CBC, 192), (EncrId.AES_CBC, 128))
    assert proposals[0].esn == (EsnId.NO_EXT_SEQ,)
    assert proposals[0].dh == () and proposals[0].prf == ()


@pytest.mark.parametrize("text,expected", [
    ("aes128-sha256-modp2048", "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"),
    ("aes256-sha1-modp1024", "IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"),
    ("3des-sha1-modp1024", "IKE:3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"),
    ("aes256gcm16-prfsha256-ecp256", "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256"),
    ("chacha20poly1305-prfsha256-x25519", "IKE:CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519"),
    ("aes128-sha256-modp2048-none", "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"),
    ("aes128-md5-modp1024", "IKE:AES_CBC_128/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024"),
    ("aes128-aesxcbc-modp2048", "IKE:AES_CBC_128/AES_XCBC_96/PRF_AES128_XCBC/MODP_2048"),
    ("aes128-sha256-prfsha384-ecp384", "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_384/ECP_384"),
    ("aes128gcm16-sha256-prfsha256-modp2048", "IKE:AES_GCM_16_128/PRF_HMAC_SHA2_256/MODP_2048"),
    ("aes-sha-modp1536", "IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1536"),
    ("aes128-sha1_160-modp2048", "IKE:AES_CBC_128/HMAC_SHA1_160/PRF_HMAC_SHA1/MODP_2048"),
    ("aes128-sha256-modp2048-esn", "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048/EXT_SEQ"),
    ("camellia192ccm12-prfsha1-ecp256bp", "IKE:CAMELLIA_CCM_12_192/PRF_HMAC_SHA1/ECP_256_BP"),
])
def test_single_ike_proposals(text, expected):
    assert strongswan_text(proposal_from_string(text, IKE)) == expected


@pytest.mark.parametrize("text,expected", [
    ("aes256-sha256-modp2048-modpnone", "ESP:AES_CBC_256/HMAC_SHA2_256_128/MODP_2048/KE_NONE/NO_EXT_SEQ"),
    ("aes128gcm16", "ESP:AES_GCM_16_128/NO_EXT_SEQ"),
    ("aes128gcm16-sha256", "ESP:AES_GCM_16_128/NO_EXT_SEQ"),
    ("chacha20poly1305", "ESP:CHACHA20_POLY1305/NO_EXT_SEQ"),
    ("aes128-sha256-esn", "ESP:AES_CBC_128/HMAC_SHA2_256_128/EXT_SEQ"),
    ("aes128-sha1-esn-noesn", "ESP:AES_CBC_128/HMAC_SHA1_96/EXT_SEQ/NO_EXT_SEQ"),
    ("aes128", "ESP:AES_CBC_128/NO_EXT_SEQ"),
    ("aes128-prfsha256-sha1", "ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ"),
    ("aes128gmac", "ESP:NULL_AES_GMAC_128/NO_EXT_SEQ"),
    ("null-sha1", "ESP:NULL/HMAC_SHA1_96/NO_EXT_SEQ"),
    ("3des-md5", "ESP:3DES_CBC/HMAC_MD5_96/NO_EXT_SEQ"),
    ("aes128gcm16-aes256gcm12-modp2048", "ESP:AES_GCM_16_128/AES_GCM_12_256/MODP_2048/NO_EXT_SEQ"),
])
def test_single_esp_proposals(text, expected):
    assert strongswan_text(proposal_from_string(text, ESP)) == expected


def test_ah_proposal_maps_gmac_to_integrity():
    proposal = proposal_from_string("sha256-aes128gmac-modp2048", AH)
    assert strongswan_text(proposal) == "AH:HMAC_SHA2_256_128/AES_128_GMAC/MODP_2048/NO_EXT_SEQ"


@pytest.mark.parametrize("text,protocol,message", [
    ("aes257-sha256-modp2048", IKE, "algorithm 'aes257' not recognized"),
    ("aes128ctr-camellia256-sha512-curve448-ecp521bp", IKE, "algorithm 'ecp521bp' not recognized"),
    ("aes128gcm16", IKE, "a PRF algorithm is mandatory in IKE proposals"),
    ("aes128-modp2048", IKE, "a PRF algorithm is mandatory in IKE proposals"),
    ("aes128gcm16-prfsha256", IKE, "a DH group is mandatory in IKE proposals"),
    ("aes128-sha256-modpnone", IKE, "a DH group is mandatory in IKE proposals"),
    ("aes128-aes128gcm16-sha256-modp2048", IKE,
     "classic and combined-mode (AEAD) encryption algorithms can't be contained in the same IKE proposal"),
    ("sha256", ESP, "an encryption algorithm is mandatory in ESP proposals"),
    ("aes128-aes128gcm16", ESP,
     "classic and combined-mode (AEAD) encryption algorithms can't be contained in the same ESP proposal"),
    ("aes128", AH, "an integrity algorithm is mandatory in AH proposals"),
    ("aes128--sha1", ESP, "algorithm '' not recognized"),
])
def test_rejected_proposals(text, protocol, message):
    with pytest.raises(ProposalError) as info:
        proposal_from_string(text, protocol)
    assert message in str(info.value)


def test_classic_ike_needs_integrity():
    with pytest.raises(ProposalError, match="an integrity algorithm is mandatory in IKE proposals"):
        proposal_from_string("aes128-prfsha256-modp2048", IKE)


def test_defaults_when_unset_and_appended_when_not_strict():
    proposals, strict = parse_proposals(None, IKE)
    assert not strict and texts(proposals) == STRONGSWAN_DEFAULT_IKE
    proposals, strict = parse_proposals(None, ESP)
    assert not strict and texts(proposals) == STRONGSWAN_DEFAULT_ESP
    proposals, strict = parse_proposals("aes128-sha256-modp2048,aes256-sha1-modp1024", IKE)
    assert not strict
    assert texts(proposals) == [
        "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        "IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        *STRONGSWAN_DEFAULT_IKE,
    ]
    proposals, _ = parse_proposals("aes256gcm16,aes256-sha256", ESP)
    assert texts(proposals) == ["ESP:AES_GCM_16_256/NO_EXT_SEQ", "ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ",
                                *STRONGSWAN_DEFAULT_ESP]


def test_strict_only_at_the_end_and_any_bad_proposal_rejects_the_list():
    with pytest.raises(ProposalError, match="algorithm 'aes128!' not recognized"):
        parse_proposals("aes128!,aes256", ESP)
    with pytest.raises(ProposalError, match="algorithm 'bogus' not recognized"):
        parse_proposals("aes128-sha1,bogus", ESP)
    with pytest.raises(ProposalError, match="empty proposal"):
        parse_proposals("aes128-sha1,", ESP)


def test_blanks_around_keywords_are_ignored():
    assert proposal_from_string(" aes128 - sha1 ", ESP) == proposal_from_string("aes128-sha1", ESP)


def test_model_values_of_a_proposal():
    proposal = proposal_from_string("aes256gcm16-aes128gcm16-prfsha384-ecp384-modp2048", IKE)
    assert proposal == Proposal(
        protocol=IKE,
        encr=((EncrId.AES_GCM_16, 256), (EncrId.AES_GCM_16, 128)),
        prf=(PrfId.HMAC_SHA2_384,),
        dh=(DhId.ECP_384, DhId.MODP_2048),
    )
    chacha = proposal_from_string("chacha20poly1305", ESP)
    assert chacha.encr == ((EncrId.CHACHA20_POLY1305, 0),)  # fixed key size: no Key Length, as strongSwan
    assert default_proposals(AH)[0].integ[0] == IntegId.HMAC_SHA2_256_128


def test_unsupported_algorithms_hook():
    def only_aes_cbc_sha256(ttype, alg, bits):
        if ttype == TransformType.ENCR:
            return alg == EncrId.AES_CBC
        if ttype == TransformType.INTEG:
            return alg == IntegId.HMAC_SHA2_256_128
        return True

    proposals, _ = parse_proposals("aes128-3des-sha256-sha1", ESP)
    assert unsupported_algorithms(proposals[:1], only_aes_cbc_sha256) == ["3DES_CBC", "HMAC_SHA1_96"]
    filtered = filter_supported([DEFAULT_ESP, default_proposals(ESP)[1]], only_aes_cbc_sha256)
    assert texts(filtered) == ["ESP:AES_CBC_128/AES_CBC_192/AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ"]
