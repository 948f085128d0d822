"""IKEv2 key derivation: prf+, SKEYSEED, the key split, CHILD SA KEYMAT and rekeying.

Known answer: the sample case (SHA-1) of NIST CAVP "SP 800-135 component test vectors,
IKEv2 KDF" (csrc.nist.gov ... 800-135testvectors/ikev2.zip), as recorded in
/work/shared/spec/test-vectors.md.  That file gives the inputs, SKEYSEED, SKEYSEED(Rekey)
and the first bytes of each DKM; the full 132-byte DKMs are the sample's T1..T7 as quoted
by a public Rust KDF test suite citing the same zip (test "test_tpm_ike2"), and they
start with the prefixes of test-vectors.md (checked below).
"""

from __future__ import annotations

import hmac

import pytest

from ikegate.crypto.errors import CryptoError
from ikegate.crypto.keys import (
    ChildKeys,
    IkeKeys,
    derive_child_keys,
    derive_ike_keys,
    derive_ike_rekey_keys,
    prf_plus,
)
from ikegate.crypto.transforms import get_encr, get_integ, get_prf
from ikegate.wire.constants import EncrId, IntegId, PrfId

h = bytes.fromhex

# NIST CAVP IKEv2 KDF sample (SHA-1)
NI = h("3651fef5c9c35e93")
NR = h("c09a8b90a3f04d59")
SPI_I = h("8e5c3ae507221684")
SPI_R = h("b1f201bb155c3acd")
G_IR = h(
    "d084a30166a50fb7325c3960874a839449ef9741c2f4f947d0201dd8c1269273d79509f37e3ca3eb4fa2fe2a28254e28"
    "9cd3f34dad4eb4df1a07685a4b8a94fa61e2491f7598b3ce65547ff133b3f63d1ac4175eaa695033f3cedb026a6873a3"
    "6455172a8540b8a5d23a0143bed0390ee49b168269d75fffee9fb62be965993c"
)
G_IR_NEW = h(
    "52f00ab174c25d5b7139ae5ff4e8e9eddee5992d2e36adf8a559ffd90dab1442e4fbe429d320c0f33552a17d1557fa41"
    "ea70e8fb916c4fa27ed52b5f8ebd8461afa78f1159159a64055ac5f6319e29c28eae58cbc6847770f32c3fed1d047504"
    "84f854790f95e9ec01bc5bc461f24966462e359511329305038e94deb6dd42c2"
)
SKEYSEED = h("cd2e8050137832245f1dbacc6e4f0a92f94d45d6")
DKM = h(
    "6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92dddedbe2436db69f60977c58fa63bbb667f8d369"
    "20b109baae8f6c61a9ac49feda01843225d080ec5539d5881a25521ffb2a0a91874a9c0a27fcc2d717eb8963a9e3a89c"
    "7ab264757284c28cf8c3ca40576f4220b052b1fb8e9ad60ba3c80557323331a8cbb89f20"
)
DKM_CHILD = h(
    "4727dc0ef94eb326ce131cf282fb652faa638ad0ddae3786a11bcc0309876009f8c485de011ad962c5b1ca8a41ff8145"
    "445749079c5686e26ffebbc342f06981f3da745e11ca0976424d1f8caec623d59dc7186deb20a27b411d1dcb70a36544"
    "0bf7de905088b0692e8addc094e18d1939bdb67e89798ca6b239e2ccb81c2409dac0106c"
)
DKM_CHILD_DH = h(
    "b109c21ad4c0797768c1cec9e63554681e48f224bca7f23c20c4ea7041983451e9aa1d5408656c8a975ff1b9d9a12c75"
    "ffeb64bdecb30174664cccb4e14f1c377b7f6d1525af77c7092aac3e47f917ebae8297fb5539d2008ce830823a09cc19"
    "7361d4a289c72745f6ce9fefe812be5bf55b3200fbb82e41a4a40877d3fe106db909707b"
)
SKEYSEED_REKEY = h("3b03bce748c96d5e8306918d2ff89b68f0648da3")

SHA1 = get_prf(PrfId.HMAC_SHA1)
# SHA-1 PRF (20) + HMAC-SHA1-96 (20) + AES-128-CBC (16): 20 + 2*20 + 2*16 + 2*20 = 132 =
# exactly the sample's DKM length, so the split can be checked against it
AES128 = get_encr(EncrId.AES_CBC, 128)
SHA1_96 = get_integ(IntegId.HMAC_SHA1_96)


def test_test_vector_consistency_with_spec_prefixes():
    # test-vectors.md (re-derived there) gives these prefixes
    assert DKM.startswith(h("6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92"))
    assert DKM_CHILD.startswith(h("4727dc0ef94eb326ce131cf282fb652faa638ad0"))
    assert DKM_CHILD_DH.startswith(h("b109c21ad4c0797768c1cec9e63554681e48f224"))
    assert len(DKM) == len(DKM_CHILD) == len(DKM_CHILD_DH) == 132


def test_nist_skeyseed_and_dkm():
    skeyseed, keys = derive_ike_keys(SHA1, AES128, SHA1_96, NI, NR, G_IR, SPI_I, SPI_R)
    assert skeyseed == SKEYSEED
    assert prf_plus(SHA1, SKEYSEED, NI + NR + SPI_I + SPI_R, 132) == DKM
    # RFC 7296 2.14 order: SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr
    assert keys.sk_d == DKM[0:20]
    assert keys.sk_ai == DKM[20:40]
    assert keys.sk_ar == DKM[40:60]
    assert keys.sk_ei == DKM[60:76]
    assert keys.sk_er == DKM[76:92]
    assert keys.sk_pi == DKM[92:112]
    assert keys.sk_pr == DKM[112:132]


def test_nist_child_dkm_without_dh():
    assert prf_plus(SHA1, DKM[:20], NI + NR, 132) == DKM_CHILD
    keys = derive_child_keys(SHA1, DKM[:20], NI, NR, AES128, SHA1_96)
    # RFC 7296 2.17 order: encr_i | integ_i | encr_r | integ_r
    assert keys.encr_i + keys.integ_i + keys.encr_r + keys.integ_r == DKM_CHILD[:72]
    assert (len(keys.encr_i), len(keys.integ_i)) == (16, 20)


def test_nist_child_dkm_with_dh():
    assert prf_plus(SHA1, DKM[:20], G_IR_NEW + NI + NR, 132) == DKM_CHILD_DH
    aead = get_encr(EncrId.AES_GCM_16, 256)
    keys = derive_child_keys(SHA1, DKM[:20], NI, NR, aead, None, shared=G_IR_NEW)
    assert keys.encr_i == DKM_CHILD_DH[:36]  # AES-256 key + 4-byte salt
    assert keys.encr_r == DKM_CHILD_DH[36:72]
    assert keys.integ_i == keys.integ_r == b""


def test_nist_rekey_skeyseed():
    skeyseed, keys = derive_ike_rekey_keys(
        SHA1, DKM[:20], SHA1, AES128, SHA1_96, G_IR_NEW, NI, NR, SPI_I, SPI_R
    )
    assert skeyseed == SKEYSEED_REKEY
    assert keys.sk_d == prf_plus(SHA1, SKEYSEED_REKEY, NI + NR + SPI_I + SPI_R, 20)


def test_rekey_uses_old_prf_for_skeyseed_and_new_prf_for_prf_plus():
    sha256 = get_prf(PrfId.HMAC_SHA2_256)
    gcm = get_encr(EncrId.AES_GCM_16, 128)
    skeyseed, keys = derive_ike_rekey_keys(SHA1, DKM[:20], sha256, gcm, None, G_IR_NEW, NI, NR, SPI_I, SPI_R)
    assert skeyseed == SKEYSEED_REKEY  # made by the old SA's PRF (SHA-1)
    material = prf_plus(sha256, SKEYSEED_REKEY, NI + NR + SPI_I + SPI_R, 32 + 20 + 20 + 32 + 32)
    assert keys.sk_d == material[:32]
    assert keys.sk_ai == keys.sk_ar == b""
    assert keys.sk_ei == material[32:52] and keys.sk_er == material[52:72]
    assert keys.sk_pr == material[104:136]


def test_prf_plus_definition():
    # RFC 7296 2.13, written out with the standard library
    key, seed = b"k" * 20, b"seed"
    t1 = hmac.new(key, seed + b"\x01", "sha1").digest()
    t2 = hmac.new(key, t1 + seed + b"\x02", "sha1").digest()
    t3 = hmac.new(key, t2 + seed + b"\x03", "sha1").digest()
    assert prf_plus(SHA1, key, seed, 50) == (t1 + t2 + t3)[:50]
    assert prf_plus(SHA1, key, seed, 0) == b""


def test_prf_plus_limit():
    assert len(prf_plus(SHA1, b"k", b"s", 255 * 20)) == 255 * 20
    with pytest.raises(CryptoError):
        prf_plus(SHA1, b"k", b"s", 255 * 20 + 1)
    with pytest.raises(CryptoError):
        prf_plus(SHA1, b"k", b"s", -1)


@pytest.mark.parametrize("prf_id", [PrfId.AES128_XCBC, PrfId.AES128_CMAC])
def test_skeyseed_of_aes_prfs_uses_64_bits_of_each_nonce(prf_id):
    """RFC 7296 2.14: with PRFs that take a fixed-size key, SKEYSEED = prf(Ni[0:8] |
    Nr[0:8], g^ir)."""
    prf = get_prf(prf_id)
    ni, nr = bytes(range(32)), bytes(range(100, 132))
    skeyseed, keys = derive_ike_keys(prf, AES128, get_integ(IntegId.AES_XCBC_96), ni, nr, G_IR, SPI_I, SPI_R)
    assert skeyseed == prf(ni[:8] + nr[:8], G_IR)
    assert skeyseed != prf(ni + nr, G_IR)  # the full nonces would be reduced differently
    assert len(keys.sk_d) == len(keys.sk_pi) == 16
    # prf+ still runs over the full nonces
    assert keys.sk_d == prf_plus(prf, skeyseed, ni + nr + SPI_I + SPI_R, 16)


def test_key_sizes_for_aead():
    prf = get_prf(PrfId.HMAC_SHA2_384)
    chacha = get_encr(EncrId.CHACHA20_POLY1305, 256)
    _, keys = derive_ike_keys(prf, chacha, None, NI, NR, G_IR, SPI_I, SPI_R)
    assert [len(k) for k in (keys.sk_d, keys.sk_ai, keys.sk_ar, keys.sk_ei, keys.sk_er, keys.sk_pi, keys.sk_pr)] == [
        48, 0, 0, 36, 36, 48, 48,
    ]


def test_integrity_required_exactly_for_non_aead():
    with pytest.raises(CryptoError):
        derive_ike_keys(SHA1, AES128, None, NI, NR, G_IR, SPI_I, SPI_R)
    with pytest.raises(CryptoError):
        derive_ike_keys(SHA1, get_encr(EncrId.AES_GCM_16, 128), SHA1_96, NI, NR, G_IR, SPI_I, SPI_R)
    with pytest.raises(CryptoError):
        derive_child_keys(SHA1, DKM[:20], NI, NR, AES128, None)


def test_repr_shows_no_key_bytes():
    _, keys = derive_ike_keys(SHA1, AES128, SHA1_96, NI, NR, G_IR, SPI_I, SPI_R)
    text = repr(keys) + str(keys)
    assert isinstance(keys, IkeKeys)
    assert "sk_d=20B" in text
    for value in (keys.sk_d, keys.sk_ei, keys.sk_pr):
        assert value.hex() not in text and repr(value) not in text
    child = derive_child_keys(SHA1, keys.sk_d, NI, NR, AES128, SHA1_96)
    assert isinstance(child, ChildKeys)
    assert child.encr_i.hex() not in repr(child) and repr(child.encr_i) not in repr(child)
    with pytest.raises(AttributeError):
        keys.sk_d = b""  # frozen
