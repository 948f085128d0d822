"""IKEv2 AUTH signatures: encodings, independent verification, scheme choice."""

from __future__ import annotations

import subprocess

import pytest
from Crypto.Hash import SHA256, SHA384, SHA512
from Crypto.PublicKey import ECC
from Crypto.Signature import DSS
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.pki.keys import PkiError
from ikegate.pki.signature import (
    algorithm_identifier,
    choose_signature_scheme,
    sign_auth,
    supported_hash_algorithms,
    verify_auth,
)
from ikegate.wire.constants import AuthMethod, HashAlgorithm

OCTETS = b"IKE_SA_INIT message | Nr | prf(SK_pr, IDr')" * 3

# RFC 7427 Appendix A encodings.  The RFC text itself could not be retrieved here; the
# bytes are copied from two independent transcriptions of it: libreswan
# include/ietf_constants.h ("Appendix A. Commonly Used ASN.1 Objects", commit
# 0c4e3eccfbb2) and strongSwan src/libstrongswan/tests/suites/test_signature_params.c
# (tag 6.0.6, "from RFC 7427 ..." entries), which agree byte for byte.
A_1_1_SHA1_WITH_RSA = bytes.fromhex("300d06092a864886f70d0101050500")
A_1_2_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
A_1_3_SHA384_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010c0500")
A_1_4_SHA512_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010d0500")
A_3_1_ECDSA_SHA1 = bytes.fromhex("300906072a8648ce3d0401")
A_3_2_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
A_3_3_ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
A_3_4_ECDSA_SHA512 = bytes.fromhex("300a06082a8648ce3d040304")
# A.4.1 "RSASSA-PSS with empty parameters" (all defaults: SHA-1, MGF1-SHA-1, salt 20)
A_4_1_PSS_EMPTY = bytes.fromhex("300d06092a864886f70d01010a3000")
# A.4.2 "with default parameters" spelled out (strongSwan: "would actually not be
# sent like this, as corrected in errata") -- accepted when parsing
A_4_2_PSS_DEFAULT_EXPLICIT = bytes.fromhex(
    "303e06092a864886f70d01010a3031a00b300906052b0e03021a0500a118301606092a864886f70d010108"
    "300906052b0e03021a0500a203020114a303020101"
)
# A.4.3 RSASSA-PSS with SHA-256 as printed in the RFC (with trailerField) ...
A_4_3_PSS_SHA256_ORIGINAL = bytes.fromhex(
    "304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d"
    "010108300d06096086480165030402010500a203020120a303020101"
)
# ... and its errata form (DER: the DEFAULT trailerField omitted), what we send.
A_4_3_PSS_SHA256_ERRATA = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d"
    "010108300d06096086480165030402010500a203020120"
)
# SHA-384/512 variants: libreswan ASN1_RSASSA_PSS_SHA2_384/512_BLOB; SHA-512 also in
# strongSwan's rsa_pss_build_tests.
PSS_SHA384 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d"
    "010108300d06096086480165030402020500a203020130"
)
PSS_SHA512 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d"
    "010108300d06096086480165030402030500a203020140"
)
# RFC 8420 id-Ed25519 without parameters (libreswan ASN1_EDDSA_IDENTITY_ED25519_BLOB).
ED25519_ALGID = bytes.fromhex("300506032b6570")

# strongSwan's rsa_pss_parse_invalid_tests (test_signature_params.c, 6.0.6).
PSS_INVALID = {
    "unknown hash": "301e06092a864886f70d01010a3011a00f300d06096086480165030402000500",
    "unknown mgf": "302b06092a864886f70d01010a301ea11c301a06092a864886f70d010100300d06096086480165030402010500",
    "unknown mgf-1 hash": "302b06092a864886f70d01010a301ea11c301a06092a864886f70d010108300d06096086480165030402000500",
    "incorrect trailer": "301206092a864886f70d01010a3005a303020102",
    "too long trailer": "301306092a864886f70d01010a3006a30402020101",
    # not from strongSwan: id-RSASSA-PSS without parameters (RFC 4055 3.1: MUST be present)
    "absent parameters": "300b06092a864886f70d01010a",
    "negative salt": "304d06092a864886f70d01010a3040a00f300d06096086480165030402010500a11c301a06092a864886f70d"
    "010108300d06096086480165030402010500a20a0208ffffffffffffffffa303020101",
}

_HASH = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA2_256: hashes.SHA256,
    HashAlgorithm.SHA2_384: hashes.SHA384,
    HashAlgorithm.SHA2_512: hashes.SHA512,
}
_OPENSSL_DIGEST = {1: "-sha1", 2: "-sha256", 3: "-sha384", 4: "-sha512"}


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(65537, 2048),
        "rsa4096": rsa.generate_private_key(65537, 4096),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "k256": ec.generate_private_key(ec.SECP256K1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


def _ds(algid: bytes, signature: bytes) -> bytes:
    """AUTH data of method 14 built by hand (RFC 7427 section 3)."""
    return bytes([len(algid)]) + algid + signature


def _split_ds(data: bytes) -> tuple[bytes, bytes]:
    return data[1 : 1 + data[0]], data[1 + data[0] :]


def _pub_pem(tmp_path, key) -> str:
    path = tmp_path / "pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return str(path)


def _priv_pem(tmp_path, key) -> str:
    path = tmp_path / "priv.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def _openssl_dgst_verify(tmp_path, key, digest_opt: str, signature: bytes, *extra: str) -> bool:
    (tmp_path / "data").write_bytes(OCTETS)
    (tmp_path / "sig").write_bytes(signature)
    result = subprocess.run(
        ["openssl", "dgst", digest_opt, *extra, "-verify", _pub_pem(tmp_path, key), "-signature",
         str(tmp_path / "sig"), str(tmp_path / "data")],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and "Verified OK" in result.stdout


def _openssl_dgst_sign(tmp_path, key, digest_opt: str, *extra: str) -> bytes:
    (tmp_path / "data").write_bytes(OCTETS)
    return subprocess.run(
        ["openssl", "dgst", digest_opt, *extra, "-sign", _priv_pem(tmp_path, key), str(tmp_path / "data")],
        check=True,
        capture_output=True,
    ).stdout


# --------------------------------------------------------------------------
# RFC 7427 Appendix A encodings


def test_algorithm_identifiers_rfc7427_appendix_a(keys):
    rsa_key, ec_key = keys["rsa"], keys["p256"]
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA1) == A_1_1_SHA1_WITH_RSA
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_256) == A_1_2_SHA256_WITH_RSA
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_384) == A_1_3_SHA384_WITH_RSA
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_512) == A_1_4_SHA512_WITH_RSA
    assert algorithm_identifier(ec_key, HashAlgorithm.SHA1) == A_3_1_ECDSA_SHA1
    assert algorithm_identifier(ec_key, HashAlgorithm.SHA2_256) == A_3_2_ECDSA_SHA256
    assert algorithm_identifier(ec_key, HashAlgorithm.SHA2_384) == A_3_3_ECDSA_SHA384
    assert algorithm_identifier(ec_key, HashAlgorithm.SHA2_512) == A_3_4_ECDSA_SHA512
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA1, pss=True) == A_4_1_PSS_EMPTY
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_256, pss=True) == A_4_3_PSS_SHA256_ERRATA
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_384, pss=True) == PSS_SHA384
    assert algorithm_identifier(rsa_key, HashAlgorithm.SHA2_512, pss=True) == PSS_SHA512
    assert algorithm_identifier(keys["ed25519"]) == ED25519_ALGID


def test_sign_auth_method14_layout(keys):
    data = sign_auth(keys["rsa"], OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256)
    assert data[0] == 15 and data[1:16] == A_1_2_SHA256_WITH_RSA and len(data) == 16 + 256
    data = sign_auth(keys["rsa"], OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256, pss=True)
    assert data[0] == 67 and data[1:68] == A_4_3_PSS_SHA256_ERRATA and len(data) == 68 + 256


@pytest.mark.parametrize(
    "algid, hash_alg, mgf_hash, salt",
    [
        (A_4_1_PSS_EMPTY, HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
        (A_4_2_PSS_DEFAULT_EXPLICIT, HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
        (A_4_3_PSS_SHA256_ORIGINAL, HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 32),
        (A_4_3_PSS_SHA256_ERRATA, HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 32),
        # strongSwan rsa_pss_parse_tests: "only hash specified", "only mgf", "only salt", "no salt"
        (bytes.fromhex("301e06092a864886f70d01010a3011a00f300d06096086480165030402010500"),
         HashAlgorithm.SHA2_256, HashAlgorithm.SHA1, 20),
        (bytes.fromhex("302b06092a864886f70d01010a301ea11c301a06092a864886f70d010108300d06096086480165030402010500"),
         HashAlgorithm.SHA1, HashAlgorithm.SHA2_256, 20),
        (bytes.fromhex("301206092a864886f70d01010a3005a203020120"), HashAlgorithm.SHA1, HashAlgorithm.SHA1, 32),
        (bytes.fromhex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d"
                       "010108300d06096086480165030402010500a203020100"),
         HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 0),
    ],
)
def test_verify_pss_parameter_variants(keys, algid, hash_alg, mgf_hash, salt):
    """A PSS signature made by cryptography with the parameters the AlgorithmIdentifier
    states verifies; the same signature under different parameters does not."""
    key = keys["rsa"]
    pad = padding.PSS(mgf=padding.MGF1(_HASH[mgf_hash]()), salt_length=salt)
    signature = key.sign(OCTETS, pad, _HASH[hash_alg]())
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, signature))
    sha256_32 = (hash_alg, mgf_hash, salt) == (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 32)
    other = PSS_SHA512 if sha256_32 else A_4_3_PSS_SHA256_ERRATA
    assert not verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(other, signature))


# The parameters each invalid AlgorithmIdentifier would otherwise mean, so that the
# signature itself is valid and only the parameter check can reject it.
_PSS_INVALID_SIGNING = {
    "unknown hash": (HashAlgorithm.SHA2_256, HashAlgorithm.SHA1, 20),
    "unknown mgf": (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
    "unknown mgf-1 hash": (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
    "incorrect trailer": (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
    "too long trailer": (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
    "negative salt": (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 32),
    "absent parameters": (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20),
    # not from strongSwan: DER fields out of order ([2] salt before [0] hash)
    "fields out of order": (HashAlgorithm.SHA2_256, HashAlgorithm.SHA1, 32),
}
PSS_INVALID["fields out of order"] = (
    "302306092a864886f70d01010a3016a203020120a00f300d06096086480165030402010500"
)


@pytest.mark.parametrize("name", sorted(PSS_INVALID))
def test_verify_rejects_invalid_pss_params(keys, name):
    key = keys["rsa"]
    hash_alg, mgf_hash, salt = _PSS_INVALID_SIGNING[name]
    pad = padding.PSS(mgf=padding.MGF1(_HASH[mgf_hash]()), salt_length=salt)
    signature = key.sign(OCTETS, pad, _HASH[hash_alg]())
    algid = bytes.fromhex(PSS_INVALID[name])
    assert not verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, signature))
    if name == "fields out of order":  # the same fields in order are accepted
        ordered = bytes.fromhex("302306092a864886f70d01010a3016a00f300d06096086480165030402010500a203020120")
        assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(ordered, signature))


# --------------------------------------------------------------------------
# Independent verification of what we sign


def test_rsa_sig_method1_verified_by_openssl(tmp_path, keys):
    key = keys["rsa"]
    data = sign_auth(key, OCTETS, AuthMethod.RSA_SIG)
    assert len(data) == 256
    assert _openssl_dgst_verify(tmp_path, key, "-sha1", data)
    assert not _openssl_dgst_verify(tmp_path, key, "-sha256", data)
    # and an openssl-made signature verifies with us
    foreign = _openssl_dgst_sign(tmp_path, key, "-sha1")
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.RSA_SIG, foreign)


@pytest.mark.parametrize(
    "method, curve_key, hash_mod, size",
    [
        (AuthMethod.ECDSA_SHA256_P256, "p256", SHA256, 32),
        (AuthMethod.ECDSA_SHA384_P384, "p384", SHA384, 48),
        (AuthMethod.ECDSA_SHA512_P521, "p521", SHA512, 66),
    ],
)
def test_ecdsa_classic_verified_by_pycryptodome(keys, method, curve_key, hash_mod, size):
    """RFC 4754: fixed-length r || s; pycryptodome's DSS 'binary' encoding is exactly that."""
    key = keys[curve_key]
    data = sign_auth(key, OCTETS, method)
    assert len(data) == 2 * size
    pub = ECC.import_key(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    DSS.new(pub, "fips-186-3", encoding="binary").verify(hash_mod.new(OCTETS), data)  # raises if invalid
    # the other direction: pycryptodome signs, we verify
    priv = ECC.import_key(
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    foreign = DSS.new(priv, "fips-186-3", encoding="binary").sign(hash_mod.new(OCTETS))
    assert verify_auth(key.public_key(), OCTETS, method, foreign)
    assert not verify_auth(key.public_key(), OCTETS + b"!", method, foreign)


@pytest.mark.parametrize("hash_alg", [HashAlgorithm.SHA1, HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                                      HashAlgorithm.SHA2_512])
def test_ds_rsa_pkcs1_verified_by_openssl(tmp_path, keys, hash_alg):
    key = keys["rsa"]
    algid, signature = _split_ds(sign_auth(key, OCTETS, AuthMethod.DIGITAL_SIGNATURE, hash_alg))
    assert _openssl_dgst_verify(tmp_path, key, _OPENSSL_DIGEST[hash_alg], signature)
    foreign = _openssl_dgst_sign(tmp_path, key, _OPENSSL_DIGEST[hash_alg])
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, foreign))


@pytest.mark.parametrize("hash_alg", [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512])
def test_ds_rsa_pss_verified_by_openssl_and_cryptography(tmp_path, keys, hash_alg):
    key = keys["rsa"]
    algid, signature = _split_ds(sign_auth(key, OCTETS, AuthMethod.DIGITAL_SIGNATURE, hash_alg, pss=True))
    hasher = _HASH[hash_alg]()
    key.public_key().verify(signature, OCTETS, padding.PSS(padding.MGF1(hasher), hasher.digest_size), hasher)
    with pytest.raises(InvalidSignature):  # salt length is really the hash length
        key.public_key().verify(signature, OCTETS, padding.PSS(padding.MGF1(hasher), 0), hasher)
    pss_opts = ("-sigopt", "rsa_padding_mode:pss", "-sigopt", f"rsa_pss_saltlen:{hasher.digest_size}",
                "-sigopt", f"rsa_mgf1_md:{hasher.name}")
    assert _openssl_dgst_verify(tmp_path, key, _OPENSSL_DIGEST[hash_alg], signature, *pss_opts)
    foreign = _openssl_dgst_sign(tmp_path, key, _OPENSSL_DIGEST[hash_alg], *pss_opts)
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, foreign))


@pytest.mark.parametrize("hash_alg", [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512])
@pytest.mark.parametrize("curve_key", ["p256", "p384"])
def test_ds_ecdsa_der_verified_by_openssl(tmp_path, keys, hash_alg, curve_key):
    key = keys[curve_key]
    algid, signature = _split_ds(sign_auth(key, OCTETS, AuthMethod.DIGITAL_SIGNATURE, hash_alg))
    assert signature[0] == 0x30  # DER Ecdsa-Sig-Value
    assert _openssl_dgst_verify(tmp_path, key, _OPENSSL_DIGEST[hash_alg], signature)
    foreign = _openssl_dgst_sign(tmp_path, key, _OPENSSL_DIGEST[hash_alg])
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, foreign))


def test_ds_ed25519_verified_by_openssl(tmp_path, keys):
    key = keys["ed25519"]
    algid, signature = _split_ds(sign_auth(key, OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.IDENTITY))
    assert algid == ED25519_ALGID and len(signature) == 64
    (tmp_path / "data").write_bytes(OCTETS)
    (tmp_path / "sig").write_bytes(signature)
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", _pub_pem(tmp_path, key), "-rawin",
         "-in", str(tmp_path / "data"), "-sigfile", str(tmp_path / "sig")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0 and "Success" in result.stdout
    assert verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, _ds(algid, signature))


# --------------------------------------------------------------------------
# Rejection


@pytest.mark.parametrize(
    "key_name, method, hash_alg, pss",
    [
        ("rsa", AuthMethod.RSA_SIG, None, False),
        ("p256", AuthMethod.ECDSA_SHA256_P256, None, False),
        ("p521", AuthMethod.ECDSA_SHA512_P521, None, False),
        ("rsa", AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256, False),
        ("rsa", AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_384, True),
        ("p384", AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_512, False),
        ("ed25519", AuthMethod.DIGITAL_SIGNATURE, None, False),
    ],
)
def test_tampering_is_detected(keys, key_name, method, hash_alg, pss):
    key = keys[key_name]
    public = key.public_key()
    data = sign_auth(key, OCTETS, method, hash_alg, pss)
    assert verify_auth(public, OCTETS, method, data)
    assert not verify_auth(public, OCTETS[:-1] + b"?", method, data)
    for index in (0, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[index] ^= 0x01
        assert not verify_auth(public, OCTETS, method, bytes(flipped))
    assert not verify_auth(public, OCTETS, method, data[:-1])
    assert not verify_auth(public, OCTETS, method, data + b"\x00")
    assert not verify_auth(public, OCTETS, method, b"")
    other_method = AuthMethod.ECDSA_SHA384_P384 if method != AuthMethod.ECDSA_SHA384_P384 else AuthMethod.RSA_SIG
    assert not verify_auth(public, OCTETS, other_method, data)
    assert not verify_auth(public, OCTETS, AuthMethod.SHARED_KEY_MIC, data)


def test_key_type_and_oid_mismatch_rejected(keys):
    rsa_key, ec_key = keys["rsa"], keys["p256"]
    # an RSA signature labelled with an ECDSA OID, and an ECDSA signature with an RSA OID
    rsa_sig = rsa_key.sign(OCTETS, padding.PKCS1v15(), hashes.SHA256())
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(A_3_2_ECDSA_SHA256, rsa_sig))
    ec_sig = ec_key.sign(OCTETS, ec.ECDSA(hashes.SHA256()))
    assert not verify_auth(ec_key.public_key(), OCTETS, 14, _ds(A_1_2_SHA256_WITH_RSA, ec_sig))
    assert not verify_auth(ec_key.public_key(), OCTETS, 14, _ds(A_4_3_PSS_SHA256_ERRATA, ec_sig))
    # correctly labelled but verified with the other key type
    assert not verify_auth(ec_key.public_key(), OCTETS, 14, _ds(A_1_2_SHA256_WITH_RSA, rsa_sig))
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(A_3_2_ECDSA_SHA256, ec_sig))
    # wrong hash in the label
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(A_1_3_SHA384_WITH_RSA, rsa_sig))
    # classic methods: curve must match the method
    p384_data = sign_auth(keys["p384"], OCTETS, AuthMethod.ECDSA_SHA384_P384)
    assert not verify_auth(keys["p384"].public_key(), OCTETS, AuthMethod.ECDSA_SHA256_P256, p384_data)
    assert not verify_auth(ec_key.public_key(), OCTETS, AuthMethod.RSA_SIG, rsa_sig)
    # unknown OIDs (md5WithRSAEncryption, sha224WithRSAEncryption) and parameters where none belong
    md5_rsa = bytes.fromhex("300d06092a864886f70d0101040500")
    sha224_rsa = bytes.fromhex("300d06092a864886f70d01010e0500")
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(md5_rsa, rsa_sig))
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(sha224_rsa, rsa_sig))
    ecdsa_with_null = bytes.fromhex("300c06082a8648ce3d0403020500")
    assert verify_auth(ec_key.public_key(), OCTETS, 14, _ds(ecdsa_with_null, ec_sig))  # NULL tolerated
    ecdsa_with_int = bytes.fromhex("300d06082a8648ce3d040302020100")
    assert not verify_auth(ec_key.public_key(), OCTETS, 14, _ds(ecdsa_with_int, ec_sig))
    # RSA PKCS#1 without the NULL parameters is tolerated (strongSwan parses either)
    rsa_no_null = bytes.fromhex("300b06092a864886f70d01010b")
    assert verify_auth(rsa_key.public_key(), OCTETS, 14, _ds(rsa_no_null, rsa_sig))
    # length octet not matching the AlgorithmIdentifier
    good = _ds(A_1_2_SHA256_WITH_RSA, rsa_sig)
    assert verify_auth(rsa_key.public_key(), OCTETS, 14, good)
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, bytes([14]) + good[1:])
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, bytes([16]) + good[1:])
    assert not verify_auth(rsa_key.public_key(), OCTETS, 14, good[:16])  # no signature at all


def test_verify_accepts_certificate(keys):
    from ikegate.pki.generate import make_ca

    ca = make_ca("Verifier CA", "ecdsa")
    data = sign_auth(ca.key, OCTETS, AuthMethod.ECDSA_SHA256_P256)
    assert verify_auth(ca.cert, OCTETS, AuthMethod.ECDSA_SHA256_P256, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from([1, 2, 9, 10, 11, 14, 255]), data=st.binary(max_size=600))
def test_verify_never_raises_on_junk(keys, method, data):
    for name in ("rsa", "p256", "ed25519"):
        assert verify_auth(keys[name].public_key(), OCTETS, method, data) is False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=80), tail=st.binary(max_size=40))
def test_verify_never_raises_on_junk_algorithm_identifier(keys, body, tail):
    """Junk inside a well-formed-looking length + SEQUENCE wrapper."""
    algid = bytes([0x30, len(body)]) + body if len(body) < 128 else body
    data = bytes([len(algid) & 0xFF]) + algid + tail
    for name in ("rsa", "p256"):
        assert verify_auth(keys[name].public_key(), OCTETS, 14, data) is False


def test_sign_auth_refuses_impossible_combinations(keys):
    with pytest.raises(PkiError):
        sign_auth(keys["p256"], OCTETS, AuthMethod.RSA_SIG)
    with pytest.raises(PkiError):
        sign_auth(keys["rsa"], OCTETS, AuthMethod.ECDSA_SHA256_P256)
    with pytest.raises(PkiError):
        sign_auth(keys["p384"], OCTETS, AuthMethod.ECDSA_SHA256_P256)
    with pytest.raises(PkiError):
        sign_auth(keys["p256"], OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256, pss=True)
    with pytest.raises(PkiError):
        sign_auth(keys["rsa"], OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.IDENTITY)
    with pytest.raises(PkiError):
        sign_auth(keys["ed25519"], OCTETS, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256)
    with pytest.raises(PkiError):
        sign_auth(keys["rsa"], OCTETS, AuthMethod.SHARED_KEY_MIC)


def test_default_hash_is_sha256(keys):
    data = sign_auth(keys["rsa"], OCTETS, AuthMethod.DIGITAL_SIGNATURE)
    assert _split_ds(data)[0] == A_1_2_SHA256_WITH_RSA


# --------------------------------------------------------------------------
# Scheme choice (strongSwan pubkey_authenticator.c / public_key.c scheme_map)

ALL_SHA2 = {2, 3, 4}


@pytest.mark.parametrize(
    "key_name, peer, expected",
    [
        # no SIGNATURE_HASH_ALGORITHMS (Windows): classic methods
        ("rsa", None, (1, None, False)),
        ("rsa4096", None, (1, None, False)),
        ("p256", None, (9, None, False)),
        ("p384", None, (10, None, False)),
        ("p521", None, (11, None, False)),
        # a notify with only SHA-1 (or nothing usable) counts as absent
        ("rsa", {1}, (1, None, False)),
        ("rsa", set(), (1, None, False)),
        ("p256", {1, 99}, (9, None, False)),
        # RFC 7427: first of the key's preference list that the peer supports
        ("rsa", ALL_SHA2, (14, 2, False)),
        ("rsa", {3, 4}, (14, 3, False)),
        ("rsa", {4}, (14, 4, False)),
        ("rsa", {1, 2, 3, 4, 5}, (14, 2, False)),
        ("rsa4096", ALL_SHA2, (14, 3, False)),
        ("rsa4096", {2, 4}, (14, 4, False)),
        ("rsa4096", {2}, (14, 2, False)),
        ("p256", ALL_SHA2, (14, 2, False)),
        ("p256", {4}, (14, 4, False)),
        ("p384", ALL_SHA2, (14, 3, False)),
        ("p384", {2, 4}, (14, 4, False)),
        ("p521", ALL_SHA2, (14, 4, False)),
        ("ed25519", {2, 5}, (14, 5, False)),
    ],
)
def test_choose_signature_scheme(keys, key_name, peer, expected):
    assert choose_signature_scheme(keys[key_name], peer) == expected


def test_choose_signature_scheme_rsa_pss(keys):
    assert choose_signature_scheme(keys["rsa"], ALL_SHA2, rsa_pss=True) == (14, 2, True)
    assert choose_signature_scheme(keys["rsa4096"], ALL_SHA2, rsa_pss=True) == (14, 3, True)
    # strongSwan's SHA-256 fallback for big RSA keys is PKCS#1 v1.5, even with rsa_pss
    assert choose_signature_scheme(keys["rsa4096"], {2}, rsa_pss=True) == (14, 2, False)
    assert choose_signature_scheme(keys["rsa"], None, rsa_pss=True) == (1, None, False)
    assert choose_signature_scheme(keys["p256"], ALL_SHA2, rsa_pss=True) == (14, 2, False)


@pytest.mark.parametrize(
    "key_name, peer",
    [
        ("p384", {2}),  # strongSwan offers P-384 keys SHA-384/512 only
        ("p521", {2, 3}),
        ("rsa", {5}),  # only IDENTITY
        ("ed25519", None),  # EdDSA has no classic method
        ("ed25519", {2}),
        ("k256", None),  # no classic method for secp256k1
    ],
)
def test_choose_signature_scheme_impossible(keys, key_name, peer):
    with pytest.raises(PkiError):
        choose_signature_scheme(keys[key_name], peer)


@pytest.mark.parametrize(
    "key_name, peer",
    [(k, p) for k in ("rsa", "rsa4096", "p256", "p384", "p521") for p in (None, {2, 3, 4, 5})]
    + [("ed25519", {2, 3, 4, 5})],
)
def test_chosen_scheme_signs_and_verifies(keys, key_name, peer):
    key = keys[key_name]
    method, hash_alg, pss = choose_signature_scheme(key, peer)
    data = sign_auth(key, OCTETS, method, hash_alg, pss)
    assert verify_auth(key.public_key(), OCTETS, method, data)


def test_supported_hash_algorithms():
    # strongSwan 5.9/6.0 announce every hash hasher_algorithm_for_ikev2() accepts that a
    # plugin provides, sorted: SHA2-256/384/512 and IDENTITY (openssl plugin), never SHA-1.
    assert supported_hash_algorithms() == [2, 3, 4, 5]
