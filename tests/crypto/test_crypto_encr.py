"""Encryption transforms: sizes, and known answers through the keyed engines.

Vector sources:
* RFC 3602 section 4, cases 1-4 (raw AES-128-CBC); case 1-3 values as quoted by
  M2Crypto's test suite and libreswan's ike_alg_aes.c (both citing RFC 3602), case 4 from
  the latter;
* RFC 3686 section 6, test vectors 1, 5 and 9 (AES-CTR counter blocks), as carried by
  pyca's cryptography_vectors 50.0.2 ciphers/AES/CTR/aes-*-ctr.txt;
* RFC 8439 section 2.8.2 (ChaCha20-Poly1305 AEAD), the same values in many independent
  test suites (e.g. the Rust chacha20poly1305 crate's tests);
* NIST CAVP gcmtestvectors (gcmEncryptExtIV{128,192,256}.rsp, 96-bit IVs, 128/96/64-bit
  tags) and CCM VNT{128,256}.rsp (Nlen = 11), from cryptography_vectors;
* NIST CAVP TDES TCBCMMT3.rsp (3-key TDES CBC).
Short-tag GCM and CCM are also cross-checked against pycryptodome.
"""

from __future__ import annotations

import os

import pytest
from Crypto.Cipher import AES as PyAES
from hypothesis import given, settings
from hypothesis import strategies as st

from ikegate.crypto.errors import CryptoError, IntegrityError, UnsupportedAlgorithm
from ikegate.crypto.transforms import SUPPORTED_ENCR, get_encr, is_supported
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, TransformType

h = bytes.fromhex


@pytest.mark.parametrize(
    "encr_id,bits,aead,key_size,block,iv,icv",
    [
        (EncrId.AES_CBC, 128, False, 16, 16, 16, 0),
        (EncrId.AES_CBC, 192, False, 24, 16, 16, 0),
        (EncrId.AES_CBC, 256, False, 32, 16, 16, 0),
        (EncrId.AES_CTR, 128, False, 20, 1, 8, 0),
        (EncrId.AES_CTR, 256, False, 36, 1, 8, 0),
        (EncrId.TRIPLE_DES, 192, False, 24, 8, 8, 0),
        (EncrId.TRIPLE_DES, 0, False, 24, 8, 8, 0),
        (EncrId.AES_GCM_8, 128, True, 20, 1, 8, 8),
        (EncrId.AES_GCM_12, 192, True, 28, 1, 8, 12),
        (EncrId.AES_GCM_16, 256, True, 36, 1, 8, 16),
        (EncrId.AES_CCM_8, 128, True, 19, 1, 8, 8),
        (EncrId.AES_CCM_16, 256, True, 35, 1, 8, 16),
        (EncrId.CHACHA20_POLY1305, 256, True, 36, 1, 8, 16),
        (EncrId.CHACHA20_POLY1305, 0, True, 36, 1, 8, 16),
    ],
)
def test_sizes(encr_id, bits, aead, key_size, block, iv, icv):
    encr = get_encr(encr_id, bits)
    assert encr.id == encr_id
    assert (encr.aead, encr.key_size, encr.block_size, encr.iv_size, encr.icv_size) == (
        aead, key_size, block, iv, icv,
    )
    assert encr.key_bits == (bits or {EncrId.TRIPLE_DES: 192, EncrId.CHACHA20_POLY1305: 256}[encr_id])


@pytest.mark.parametrize(
    "encr_id,bits",
    [
        (EncrId.AES_CBC, 0),  # AES needs a Key Length attribute
        (EncrId.AES_CBC, 512),
        (EncrId.AES_GCM_16, 64),
        (EncrId.CHACHA20_POLY1305, 128),
        (EncrId.DES, 64),
        (EncrId.NULL, 0),
        (EncrId.CAMELLIA_CBC, 128),
        (EncrId.NULL_AUTH_AES_GMAC, 128),
        (999, 128),
        ("junk", 128),
    ],
)
def test_unsupported(encr_id, bits):
    with pytest.raises(UnsupportedAlgorithm):
        get_encr(encr_id, bits)
    assert not is_supported(TransformType.ENCR, encr_id if isinstance(encr_id, int) else 0, bits)


def test_is_supported():
    assert is_supported(TransformType.ENCR, EncrId.AES_GCM_16, 256)
    assert is_supported(TransformType.ENCR, EncrId.TRIPLE_DES)
    assert is_supported(TransformType.PRF, PrfId.HMAC_SHA2_256)
    assert not is_supported(TransformType.PRF, PrfId.HMAC_TIGER)
    assert is_supported(TransformType.INTEG, IntegId.NONE)
    assert is_supported(TransformType.INTEG, IntegId.HMAC_SHA1_96)
    assert not is_supported(TransformType.INTEG, IntegId.KPDK_MD5)
    assert is_supported(TransformType.DH, DhId.MODP_1024)
    assert is_supported(TransformType.DH, DhId.CURVE_25519)
    assert not is_supported(TransformType.DH, DhId.ECP_224_BP)
    assert not is_supported(TransformType.DH, DhId.MODP_2048_256)
    assert is_supported(TransformType.ESN, EsnId.EXT_SEQ)
    assert not is_supported(TransformType.ESN, 7)
    assert not is_supported(99, 1)
    for encr_id, bits in SUPPORTED_ENCR:
        assert is_supported(TransformType.ENCR, encr_id, bits)


def test_key_material_length_is_checked():
    with pytest.raises(CryptoError):
        get_encr(EncrId.AES_GCM_16, 128).keyed(bytes(16))  # salt missing


# --- RFC 3602 section 4 -----------------------------------------------------------------

RFC3602 = [
    # (case, key, IV, plaintext, ciphertext)
    (1, "06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
     b"Single block msg", "e353779c1079aeb82708942dbe77181a"),
    (2, "c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
     h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
     "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
    (3, "6c3ea0477630ce21a2ce334aa746c2cd", "c782dc4c098c66cbd9cd27d825682c81",
     b"This is a 48-byte message (exactly 3 AES blocks)",
     "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684"),
    (4, "56e47a38c5598974bc46903dba290349", "8ce82eefbea0da3c44699ed7db51b7d9",
     h("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
       "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"),
     "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e"
     "35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55"),
]


@pytest.mark.parametrize("case,key,iv,plaintext,ciphertext", RFC3602)
def test_rfc3602_aes_cbc(case, key, iv, plaintext, ciphertext):
    engine = get_encr(EncrId.AES_CBC, 128).keyed(h(key))
    assert engine.encrypt(h(iv), plaintext) == h(ciphertext)
    assert engine.decrypt(h(iv), h(ciphertext)) == plaintext


# --- RFC 3686 section 6 (AES-CTR) -----------------------------------------------------------

RFC3686 = [
    # (vector, key, counter block = nonce | IV | 00000001, plaintext, ciphertext)
    (1, "ae6852f8121067cc4bf7a5765577f39e", "00000030" "0000000000000000",
     "53696e676c6520626c6f636b206d7367", "e4095d4fb7a7b3792d6175a3261311b8"),
    (5, "7c5cb2401b3dc33c19e7340819e0f69c678c3db8e6f6a91a", "0096b03b" "020c6eadc2cb500d",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "453243fc609b23327edfaafa7131cd9f8490701c5ad4a79cfc1fe0ff42f4fb00"),
    (9, "ff7a617ce69148e4f1726e2f43581de2aa62d9f805532edff1eed687fb54153d", "001cc5b7" "51a51d70a1c11148",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223",
     "eb6c52821d0bbbf7ce7594462aca4faab407df866569fd07f48cc0b583d6071f1ec0e6b8"),
]


@pytest.mark.parametrize("vector,key,nonce_iv,plaintext,ciphertext", RFC3686)
def test_rfc3686_aes_ctr(vector, key, nonce_iv, plaintext, ciphertext):
    key, nonce_iv = h(key), h(nonce_iv)
    encr = get_encr(EncrId.AES_CTR, len(key) * 8)
    engine = encr.keyed(key + nonce_iv[:4])  # KEYMAT = key | 4-byte nonce (RFC 5930 2)
    assert engine.encrypt(nonce_iv[4:], h(plaintext)) == h(ciphertext)
    assert engine.decrypt(nonce_iv[4:], h(ciphertext)) == h(plaintext)


# --- RFC 8439 2.8.2 (ChaCha20-Poly1305) ---------------------------------------------------

RFC8439_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)


def test_rfc8439_chacha20_poly1305():
    key = bytes(range(0x80, 0xA0))
    nonce = h("070000004041424344454647")
    aad = h("50515253c0c1c2c3c4c5c6c7")
    expected = h(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
        "3ff4def08e4b7a9de576d26586cec64b6116"
        "1ae10b594f09e26a7e902ecbd0600691"  # tag
    )
    # RFC 7634 2: KEYMAT = 32-byte key | 4-byte salt; nonce = salt | 8-byte IV
    engine = get_encr(EncrId.CHACHA20_POLY1305, 256).keyed(key + nonce[:4])
    assert engine.seal(nonce[4:], aad, RFC8439_PLAINTEXT) == expected
    assert engine.open(nonce[4:], aad, expected) == RFC8439_PLAINTEXT
    with pytest.raises(IntegrityError):
        engine.open(nonce[4:], aad + b"x", expected)


# --- AES-GCM: NIST CAVP gcmEncryptExtIV*.rsp ------------------------------------------

NIST_GCM = [
    # (file / section, key, IV, PT, AAD, CT, Tag); Count = 0 of each section
    ("128 PTlen=408 AADlen=160 Taglen=128", "fe47fcce5fc32665d2ae399e4eec72ba", "5adb9609dbaeb58cbd6e7275",
     "7c0e88c88899a779228465074797cd4c2e1498d259b54390b85e3eef1c02df60e743f1b840382c4bccaf3bafb4ca8429bea063",
     "88319d6e1d3ffa5f987199166c8a9b56c2aeba5a",
     "98f4826f05a265e6dd2be82db241c0fbbbf9ffb1c173aa83964b7cf5393043736365253ddbc5db8778371495da76d269e5db3e",
     "291ef1982e4defedaa2249f898556b47"),
    ("128 PTlen=408 AADlen=160 Taglen=96", "c476bd4e3ecff8c2f8a8fee734526574", "1e46088fbabc814f69655c02",
     "99fd4cfd8f44659f18d8fe70ddfa5d3d069ddc0059a3328c442d09d08554ac39233cd700c4820007b5091e57220ee1da1db301",
     "f74f0a8b09ea6dcf92aae8fe1de010da392e62cd",
     "ab538de082910ad59ab524643f497cc1920e1c4ffcb13861f931583b4bd92d01b4ceecb8684ffef8221dcdf3836c761a9cfe36",
     "f813dc70f36471c543e20d68"),
    ("128 PTlen=408 AADlen=160 Taglen=64", "a23fa086472b1e881e5f31d05db3450a", "903110cea4b8b4ec66eedd08",
     "b8d92413ca9a7c219280c3bf0d65356b682ce5737d216c314fa973812e37d565db716f51f10c3fdb109f2c3683c2130e7df35b",
     "0659b0ed2203a803d3102f049ced636f18da4614",
     "efde6f2a64f0f593993f42a6d023eda00e10a7ed2ab33a633739a570163cfd1f1b252b50e7cbe486cf198e234854c7d240bb2f",
     "ef1c6117eeb86e09"),
    ("192 PTlen=128 AADlen=128 Taglen=128", "6f44f52c2f62dae4e8684bd2bc7d16ee7c557330305a790d",
     "9ae35825d7c7edc9a39a0732", "37222d30895eb95884bbbbaee4d9cae1", "1b4236b846fc2a0f782881ba48a067e9",
     "a54b5da33fc1196a8ef31a5321bfcaeb", "1c198086450ae1834dd6c2636796bce2"),
    ("256 PTlen=128 AADlen=128 Taglen=96", "7bb92a5dc2456789e565c0d825382fb76d551d97a804d18706348b62a09b1ec6",
     "322085c51ddc5b46a1accac2", "1cc55a95e925ff93b6cfd5ac99240abd", "001db4ea21c94f46fdd0e2c4a3b5c692",
     "509c643c32504945b72bc5a911d5c300", "405126600df3b7f2ac44ce4d"),
    ("256 PTlen=128 AADlen=384 Taglen=64", "ba3ecf8e55bddc31ea8dfb3941adb58d7689f4a79fe77553f54e0975141524d3",
     "e38e3d70fb6b4de74c1d375a", "eb023ef789788968bf1ec93606feaa75",
     "a4057a5a892e1d6abdb535db4d4ff5d92ecfcc1e59ae3f7db8c69d6257fc56fdcaf4b40a98ff9c0ae74d2f577f360ccf",
     "5188bdf71d017dbf299c4a2d1ce65fb1", "3bea77fe856bc38a"),
]
_GCM_BY_TAG = {16: EncrId.AES_GCM_16, 12: EncrId.AES_GCM_12, 8: EncrId.AES_GCM_8}


@pytest.mark.parametrize("section,key,iv,pt,aad,ct,tag", NIST_GCM, ids=[v[0] for v in NIST_GCM])
def test_nist_gcm(section, key, iv, pt, aad, ct, tag):
    key, iv, tag = h(key), h(iv), h(tag)
    encr = get_encr(_GCM_BY_TAG[len(tag)], len(key) * 8)
    engine = encr.keyed(key + iv[:4])  # salt = first 4 bytes of the 12-byte GCM IV
    sealed = engine.seal(iv[4:], h(aad), h(pt))
    assert sealed == h(ct) + tag
    assert engine.open(iv[4:], h(aad), sealed) == h(pt)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 0x80])
    with pytest.raises(IntegrityError):
        engine.open(iv[4:], h(aad), tampered)


# --- AES-CCM: NIST CAVP VNT*.rsp (Nlen = 11, Tlen = 16) ---------------------------------

NIST_CCM = [
    ("VNT128 Count=40", "e6ab9e70a4fb51b01c2e262233e64c0d", "74e689eb5af9441dd690a6",
     "42f6518ee0fbe42f28e13b4bb2eb60517b37c9744394d9143393a879c3e107c7",
     "ba15916733550d7aa82b2f6b117cd3f54c83ddc16cd0288a",
     "dcc151443288f35d39ed8fae6f0ce1d1eb656f4f7fd65c0b16f322ce85d7c54e71ac560fd4da9651"),
    ("VNT256 Count=40", "97bc7482a87ba005475dfa3448f59d4b3f9c4c969d08b39b1b21ef965c0f5125",
     "0bcf78103ec52d6df28887", "049c10f0cb37ae08eae2d0766563b7c5a8454f841c2061a4f71a0a2158ae6ce5",
     "b99bf4dc781795fc4d3a8467b06e1665d4e543657f23129f",
     "0d3891fa0caac1f7ebe41b480920ffd34d4155064c24f3b17a483163dd8f228d1f20cd4f86cf38fd"),
]


@pytest.mark.parametrize("section,key,nonce,aad,pt,ct", NIST_CCM, ids=[v[0] for v in NIST_CCM])
def test_nist_ccm(section, key, nonce, aad, pt, ct):
    key, nonce = h(key), h(nonce)
    engine = get_encr(EncrId.AES_CCM_16, len(key) * 8).keyed(key + nonce[:3])  # RFC 4309: 3-byte salt
    assert engine.seal(nonce[3:], h(aad), h(pt)) == h(ct)
    assert engine.open(nonce[3:], h(aad), h(ct)) == h(pt)


@pytest.mark.parametrize(
    "encr_id,tag,mode",
    [
        (EncrId.AES_GCM_8, 8, PyAES.MODE_GCM),
        (EncrId.AES_GCM_12, 12, PyAES.MODE_GCM),
        (EncrId.AES_CCM_8, 8, PyAES.MODE_CCM),
        (EncrId.AES_CCM_12, 12, PyAES.MODE_CCM),
    ],
)
@settings(max_examples=15, deadline=None)
@given(pt=st.binary(max_size=70), aad=st.binary(max_size=40))
def test_short_tag_aead_matches_pycryptodome(encr_id, tag, mode, pt, aad):
    encr = get_encr(encr_id, 256)
    keymat = os.urandom(encr.key_size)
    iv = os.urandom(8)
    key, salt = keymat[:32], keymat[32:]
    reference = PyAES.new(key, mode, nonce=salt + iv, mac_len=tag)
    reference.update(aad)
    ct, ref_tag = reference.encrypt_and_digest(pt)
    engine = encr.keyed(keymat)
    assert engine.seal(iv, aad, pt) == ct + ref_tag
    assert engine.open(iv, aad, ct + ref_tag) == pt
    with pytest.raises(IntegrityError):
        engine.open(iv, aad, ct + bytes(tag))
    with pytest.raises(IntegrityError):
        engine.open(iv, aad, ref_tag[: tag - 1])  # shorter than a tag


# --- 3DES: NIST CAVP TCBCMMT3.rsp ----------------------------------------------------------


def test_nist_tdes_cbc():
    # [ENCRYPT] COUNT = 1
    key = h("a49d7564199e97cb" "529d2c9d97bf2f98" "d35edf57ba1f7358")
    iv = h("c2e999cb6249023c")
    plaintext = h("c689aee38a301bb316da75db36f110b5")
    ciphertext = h("e9afaba5ec75ea1bbe65506655bb4ecb")
    engine = get_encr(EncrId.TRIPLE_DES, 192).keyed(key)
    assert engine.encrypt(iv, plaintext) == ciphertext
    assert engine.decrypt(iv, ciphertext) == plaintext
