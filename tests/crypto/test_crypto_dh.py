"""Key exchange methods: MODP primes and exchanges, ECP and Curve25519/448 known answers,
and refusal of bad peer values.

Vector sources:
* RFC 3526 primes: tests/crypto/data/rfc3526_modp_primes.txt (see its header); RFC 2409
  groups 1/2 are checked through their formula and the safe-prime property;
* RFC 5903 section 8.1-8.3 (ECP 256/384/521: i, g^i, r, g^r, girx), as transcribed in
  Mbed TLS tests/suites/test_suite_ecdh.data ("ECDH primitive rfc 5903 p256/p384/p521");
  the test derives g^i and g^r from i and r itself, so a transcription error cannot pass;
* RFC 7748 section 5.2 (X25519/X448 scalar multiplication) from pyca's
  cryptography_vectors asymmetric/X25519|X448/rfc7748.txt, and 6.1/6.2 (the
  Diffie-Hellman examples) as listed in pycryptodome's SelfTest/Protocol/test_ecdh.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ikegate.crypto.dh import (
    SUPPORTED_GROUPS,
    Gmpy2Backend,
    PythonPowBackend,
    default_modp_backend,
    get_group,
    modp_prime,
)
from ikegate.crypto.errors import InvalidKeyExchange, UnsupportedAlgorithm
from ikegate.wire.constants import DhId

h = bytes.fromhex

MODP_GROUPS = [
    DhId.MODP_768, DhId.MODP_1024, DhId.MODP_1536, DhId.MODP_2048,
    DhId.MODP_3072, DhId.MODP_4096, DhId.MODP_6144, DhId.MODP_8192,
]
MODP_BITS = {1: 768, 2: 1024, 5: 1536, 14: 2048, 15: 3072, 16: 4096, 17: 6144, 18: 8192}
OTHER_GROUPS = [
    DhId.ECP_256, DhId.ECP_384, DhId.ECP_521, DhId.ECP_192, DhId.ECP_224,
    DhId.ECP_256_BP, DhId.ECP_384_BP, DhId.ECP_512_BP, DhId.CURVE_25519, DhId.CURVE_448,
]


def _rfc3526_primes() -> dict[int, int]:
    primes = {}
    for line in (Path(__file__).parent / "data" / "rfc3526_modp_primes.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            group, _section, prime = line.split()
            primes[int(group)] = int(prime, 16)
    return primes


def _strong_probable_prime(n: int, base: int) -> bool:
    """Miller-Rabin round for one base."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    x = pow(base, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


# --- MODP primes ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", [5, 14, 15, 16, 17, 18])
def test_modp_primes_match_rfc3526(group):
    assert modp_prime(group) == _rfc3526_primes()[group]


@pytest.mark.parametrize("group", MODP_GROUPS)
def test_modp_primes_are_safe_primes(group):
    p = modp_prime(group)
    bits = MODP_BITS[group]
    assert p.bit_length() == bits
    # RFC 2409 6 / RFC 3526: the first and last 64 bits are all ones
    assert p >> (bits - 64) == 2**64 - 1 and p % 2**64 == 2**64 - 1
    q = (p - 1) // 2
    # q: strong probable prime to base 2 (one Miller-Rabin round; these are published
    # primes, the point is to catch a wrong formula constant)
    assert _strong_probable_prime(q, 2)
    # p: Pocklington with the prime factor q of p-1 (q > sqrt(p)): 2^(p-1) = 1 mod p and
    # gcd(2^2 - 1, p) = 1 prove p prime given q prime
    assert pow(2, p - 1, p) == 1 and p % 3 != 0


# --- MODP exchanges --------------------------------------------------------------------------


@pytest.mark.parametrize("group_id", MODP_GROUPS)
def test_modp_two_party_agreement(group_id):
    group = get_group(group_id)
    alice, bob = group.generate(), group.generate()
    assert len(alice.public) == len(bob.public) == group.public_len == MODP_BITS[group_id] // 8
    secret = alice.compute(bob.public)
    assert secret == bob.compute(alice.public)
    assert len(secret) == group.public_len


def test_modp_private_exponent_length():
    # strongSwan's exp_len (key_exchange.c dh_params): 32 bytes up to MODP-1536, 48 for
    # 2048/3072, 64 above; never below 256 bits
    assert get_group(DhId.MODP_1024).exponent_bits == 256
    assert get_group(DhId.MODP_2048).exponent_bits == 384
    assert get_group(DhId.MODP_8192).exponent_bits == 512
    for _ in range(3):
        exchange = get_group(DhId.MODP_1024).generate()
        assert exchange._x.bit_length() == 256


def test_modp_shared_secret_is_left_padded():
    group = get_group(DhId.MODP_1024, backend=PythonPowBackend())
    p = group.prime
    # find a tiny private value whose g^x has leading zero bytes, so padding matters
    x = next(x for x in range(2, 5000) if pow(2, x, p).bit_length() <= 1024 - 8)
    ours = group.from_private(x.to_bytes(2, "big"))
    assert len(ours.public) == 128 and ours.public[0] == 0
    peer = group.from_private((12345).to_bytes(2, "big"))
    secret = peer.compute(ours.public)
    assert secret == pow(pow(2, x, p), 12345, p).to_bytes(128, "big")


def test_modp_matches_cryptography_ffdh():
    """Group 14 against cryptography's (deprecated) FFDH with the same prime."""
    from cryptography.hazmat.primitives.asymmetric import dh
    from cryptography.utils import CryptographyDeprecationWarning

    group = get_group(DhId.MODP_2048)
    ours = group.from_private(bytes(range(1, 49)))  # a 384-bit private value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        numbers = dh.DHParameterNumbers(group.prime, 2)
        theirs = numbers.parameters().generate_private_key()
        our_public = dh.DHPublicNumbers(int.from_bytes(ours.public, "big"), numbers).public_key()
        expected = theirs.exchange(our_public)
        their_public = theirs.public_key().public_numbers().y.to_bytes(256, "big")
    assert ours.compute(their_public) == expected


def test_gmpy2_absent_python_backend_works():
    group = get_group(DhId.MODP_1536, backend=PythonPowBackend())
    a = group.from_private(h("11" * 32))
    b = group.from_private(h("22" * 32))
    p = group.prime
    assert a.public == pow(2, int("11" * 32, 16), p).to_bytes(192, "big")
    assert a.compute(b.public) == b.compute(a.public)


def test_gmpy2_backend():
    """gmpy2 is a dependency: the default backend, agreeing with pow()."""
    python_group = get_group(DhId.MODP_2048, backend=PythonPowBackend())
    gmp_group = get_group(DhId.MODP_2048, backend=Gmpy2Backend())
    x, y = h("5a" * 48), h("a5" * 48)
    assert python_group.from_private(x).public == gmp_group.from_private(x).public
    peer = python_group.from_private(y).public
    assert python_group.from_private(x).compute(peer) == gmp_group.from_private(x).compute(peer)
    assert default_modp_backend().name == "gmpy2"


def test_default_backend_choice():
    try:
        import gmpy2  # noqa: F401

        expected = "gmpy2"
    except ImportError:
        expected = "python"
    assert default_modp_backend().name == expected
    assert get_group(DhId.MODP_2048).backend.name == expected


@pytest.mark.parametrize("group_id", [DhId.MODP_1024, DhId.MODP_2048])
def test_modp_bad_peer_values(group_id):
    group = get_group(group_id)
    p, n = group.prime, group.public_len
    ours = group.generate()
    for bad in (0, 1, p - 1, p, p + 1, 2**(8 * n) - 1):
        with pytest.raises(InvalidKeyExchange):
            ours.compute(bad.to_bytes(n, "big"))
    for bad in (ours.public[1:], ours.public + b"\x00", b"", b"\x02"):
        with pytest.raises(InvalidKeyExchange):
            ours.compute(bad)
    # the boundaries just inside the range are fine
    assert len(ours.compute((2).to_bytes(n, "big"))) == n
    assert len(ours.compute((p - 2).to_bytes(n, "big"))) == n


# --- ECP: RFC 5903 section 8 ----------------------------------------------------------------

RFC5903 = {
    # group: (i, gix, giy, r, grx, gry, girx)
    DhId.ECP_256: (
        "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
        "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
        "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
        "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
        "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
        "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
        "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
    ),
    DhId.ECP_384: (
        "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
        "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA",
        "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
        "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
        "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571",
        "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
        "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
    ),
    DhId.ECP_521: (
        "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B"
        "2639BAB072462F68C27A57382D4A52",
        "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564941885"
        "942AF5A7F4601723C4195D176CED3E",
        "017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6CF2261A"
        "6A7F1507438BF01BEB6CA3926F9582",
        "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CC"
        "A7458AA4A4EFFC311F5CB151685EB9",
        "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6C2912D"
        "4EF2D0433CED2B6171640012D9460F",
        "015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE49CB57"
        "091F4732296579AB44FCD17F0FC56A",
        "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06B3C715"
        "A3A8CC3151F2BEE417996D19F3DDEA",
    ),
}


@pytest.mark.parametrize("group_id", list(RFC5903))
def test_rfc5903_full_exchange(group_id):
    i, gix, giy, r, grx, gry, girx = (h(v) for v in RFC5903[group_id])
    group = get_group(group_id)
    initiator = group.from_private(i)
    responder = group.from_private(r)
    # RFC 5903 7: the KE payload carries x | y (no 0x04 byte)
    assert initiator.public == gix + giy
    assert responder.public == grx + gry
    assert group.public_len == len(gix) * 2
    # ... and the shared secret is the x coordinate of g^ir
    assert initiator.compute(responder.public) == girx
    assert responder.compute(initiator.public) == girx


@pytest.mark.parametrize("group_id", list(RFC5903) + [DhId.ECP_192, DhId.ECP_224, DhId.ECP_256_BP])
def test_ecp_bad_peer_values(group_id):
    group = get_group(group_id)
    ours = group.generate()
    peer = group.generate().public
    half = group.public_len // 2
    off_curve = peer[:-1] + bytes([peer[-1] ^ 1])  # y changed: not on the curve
    for bad in (off_curve, bytes(group.public_len), b"\xff" * group.public_len, peer[:-1], peer + b"\x00",
                peer[:half]):
        with pytest.raises(InvalidKeyExchange):
            ours.compute(bad)


@pytest.mark.parametrize("group_id", OTHER_GROUPS)
def test_ec_two_party_agreement(group_id):
    group = get_group(group_id)
    alice, bob = group.generate(), group.generate()
    assert len(alice.public) == group.public_len
    assert alice.compute(bob.public) == bob.compute(alice.public)


# --- Curve25519 / Curve448: RFC 7748 --------------------------------------------------------

RFC7748_5_2 = [
    (DhId.CURVE_25519,
     "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    (DhId.CURVE_25519,
     "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    (DhId.CURVE_448,
     "3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3",
     "06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086",
     "ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f"),
    (DhId.CURVE_448,
     "203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c538345dd77c3e4806e25f46d3315c44e0a5b4371282dd2c8d5be3095f",
     "0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b165d015894e56c4d3570bee52fe205e28a78b91cdfbde71ce8d157db",
     "884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7ad1b3ee3a5700df34321d62077e63633c575c1c954514e99da7c179d"),
]


@pytest.mark.parametrize("group_id,scalar,u,out", RFC7748_5_2)
def test_rfc7748_5_2_scalar_multiplication(group_id, scalar, u, out):
    assert get_group(group_id).from_private(h(scalar)).compute(h(u)) == h(out)


RFC7748_DH = [
    # RFC 7748 6.1 (X25519) and 6.2 (X448): Alice's private/public, Bob's private/public, K
    (DhId.CURVE_25519,
     "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
     "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
     "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
     "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
     "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
    (DhId.CURVE_448,
     "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b",
     "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0",
     "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d",
     "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609",
     "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"),
]


@pytest.mark.parametrize("group_id,a_priv,a_pub,b_priv,b_pub,shared", RFC7748_DH)
def test_rfc7748_6_diffie_hellman(group_id, a_priv, a_pub, b_priv, b_pub, shared):
    group = get_group(group_id)
    alice, bob = group.from_private(h(a_priv)), group.from_private(h(b_priv))
    assert alice.public == h(a_pub)
    assert bob.public == h(b_pub)
    assert alice.compute(bob.public) == h(shared)
    assert bob.compute(alice.public) == h(shared)


@pytest.mark.parametrize("group_id", [DhId.CURVE_25519, DhId.CURVE_448])
def test_montgomery_bad_peer_values(group_id):
    group = get_group(group_id)
    n = group.public_len
    ours = group.generate()
    # u = 0 and u = 1 are low-order points: the result would be all zero (RFC 7748 6)
    for bad in (bytes(n), (1).to_bytes(n, "little")):
        with pytest.raises(InvalidKeyExchange):
            ours.compute(bad)
    for bad in (b"", ours.public[:-1], ours.public + b"\x00"):
        with pytest.raises(InvalidKeyExchange):
            ours.compute(bad)


# --- registry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group_id",
    [DhId.NONE, DhId.MODP_1024_160, DhId.MODP_2048_256, DhId.ECP_224_BP, DhId.ML_KEM_768, 3, 999],
)
def test_unsupported_groups(group_id):
    with pytest.raises(UnsupportedAlgorithm):
        get_group(group_id)
    assert group_id not in SUPPORTED_GROUPS


def test_group_names_and_ids():
    assert get_group(DhId.MODP_2048).name == "MODP_2048"
    assert get_group(DhId.CURVE_25519).name == "CURVE_25519"
    assert get_group(DhId.ECP_256).id == DhId.ECP_256
    assert get_group(DhId.ECP_256) is get_group(19)  # cached
    assert "key exchange" in repr(get_group(DhId.ECP_256).generate())
