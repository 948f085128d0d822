"""IKEv2 AUTH payload signatures.

The AUTH payload *data* (what follows the Auth Method and reserved bytes) for the
signature methods:

* ``RSA_SIG`` (1): RSASSA-PKCS1-v1_5 with SHA-1 over the signed octets
  (RFC 7296 section 3.8; SHA-1 is what every implementation uses, RFC 7427 section 1);
* ``ECDSA_SHA256_P256`` / ``ECDSA_SHA384_P384`` / ``ECDSA_SHA512_P521`` (9/10/11):
  RFC 4754, the curve and hash fixed by the method, signature = r || s, each
  left-padded to the curve's byte length;
* ``DIGITAL_SIGNATURE`` (14): RFC 7427 section 3, one length octet, the DER
  AlgorithmIdentifier of the signature algorithm, then the signature (PKCS#1 v1.5,
  RSASSA-PSS with RFC 4055 parameters, ECDSA as DER Ecdsa-Sig-Value, Ed25519/Ed448
  per RFC 8420).

:func:`choose_signature_scheme` picks what strongSwan (5.9 and 6.0,
pubkey_authenticator.c ``build``/``select_signature_schemes``) would: without the
peer's SIGNATURE_HASH_ALGORITHMS notify the classic methods (Windows sends none and
needs method 1), otherwise method 14 with the first hash of a key-size dependent
preference list that the peer announced.
"""

from __future__ import annotations

from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ikegate.der import (
    INTEGER,
    NULL,
    OBJECT_IDENTIFIER,
    SEQUENCE,
    decode_oid,
    encode_integer,
    encode_oid,
    encode_tlv,
    read_tlvs,
)
from ikegate.pki.keys import PkiError
from ikegate.wire.constants import AuthMethod, HashAlgorithm

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA2_256: hashes.SHA256,
    HashAlgorithm.SHA2_384: hashes.SHA384,
    HashAlgorithm.SHA2_512: hashes.SHA512,
}

#: RFC 4754 section 3 (methods 9-11): the curve and hash each method implies.
_CLASSIC_ECDSA: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    AuthMethod.ECDSA_SHA256_P256: (ec.SECP256R1, HashAlgorithm.SHA2_256),
    AuthMethod.ECDSA_SHA384_P384: (ec.SECP384R1, HashAlgorithm.SHA2_384),
    AuthMethod.ECDSA_SHA512_P521: (ec.SECP521R1, HashAlgorithm.SHA2_512),
}

# Object identifiers (RFC 3279, RFC 4055, RFC 5758, RFC 8410).
_OID_HASH = {
    HashAlgorithm.SHA1: "1.3.14.3.2.26",
    HashAlgorithm.SHA2_256: "2.16.840.1.101.3.4.2.1",
    HashAlgorithm.SHA2_384: "2.16.840.1.101.3.4.2.2",
    HashAlgorithm.SHA2_512: "2.16.840.1.101.3.4.2.3",
}
_OID_RSA_PKCS1 = {
    HashAlgorithm.SHA1: "1.2.840.113549.1.1.5",  # sha1WithRSAEncryption
    HashAlgorithm.SHA2_256: "1.2.840.113549.1.1.11",
    HashAlgorithm.SHA2_384: "1.2.840.113549.1.1.12",
    HashAlgorithm.SHA2_512: "1.2.840.113549.1.1.13",
}
_OID_ECDSA = {
    HashAlgorithm.SHA1: "1.2.840.10045.4.1",  # ecdsa-with-SHA1
    HashAlgorithm.SHA2_256: "1.2.840.10045.4.3.2",
    HashAlgorithm.SHA2_384: "1.2.840.10045.4.3.3",
    HashAlgorithm.SHA2_512: "1.2.840.10045.4.3.4",
}
_OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_OID_ED25519 = "1.3.101.112"
_OID_ED448 = "1.3.101.113"

#: What we announce in SIGNATURE_HASH_ALGORITHMS, like strongSwan: every hash for
#: which ``hasher_algorithm_for_ikev2`` is true and a hasher exists (SHA2-256/384/512
#: and, with the openssl plugin's EdDSA support, IDENTITY), sorted by number.
#: SHA-1 is never announced, and a peer's SHA-1 is ignored.
_IKEV2_HASHES = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)


def supported_hash_algorithms() -> list[int]:
    """The hash algorithms for our SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 section 4)."""
    return [int(h) for h in _IKEV2_HASHES]


# --------------------------------------------------------------------------
# Choosing a scheme


def choose_signature_scheme(
    private_key, peer_hash_algs: set[int] | None, *, rsa_pss: bool = False
) -> tuple[int, int | None, bool]:
    """``(auth method, hash algorithm, pss)`` to sign our AUTH with, as strongSwan does.

    ``peer_hash_algs`` is the content of the peer's SIGNATURE_HASH_ALGORITHMS
    notify, or None if it sent none.  Only SHA2-256/384/512 and IDENTITY count (a
    notify with nothing else, e.g. only SHA-1, is treated as absent, as strongSwan's
    ``handle_supported_hash_algorithms`` does); then:

    * no usable notify: RSA -> method 1 (PKCS#1 v1.5 SHA-1); ECDSA -> 9/10/11 by
      curve (P-256/P-384/P-521 only);
    * otherwise method 14 with the first hash the peer supports from the list
      strongSwan's ``signature_schemes_for_key`` gives (public_key.c ``scheme_map``):
      RSA up to 3072 bits SHA2-256, 384, 512; up to 7680 bits SHA2-384, 512, 256;
      larger SHA2-512, 384, 256.  ECDSA up to 256 bits SHA2-256, 384, 512; up to 384
      bits SHA2-384, 512; larger SHA2-512 only.  EdDSA: IDENTITY.
      ``rsa_pss=True`` (strongSwan's ``charon.rsa_pss``) puts RSASSA-PSS with the
      key-size list first; the RSA fallbacks to SHA2-384/256 stay PKCS#1 v1.5.

    Raises :class:`PkiError` if no scheme fits (strongSwan then fails the
    authentication: "no common hash algorithm found").
    """
    usable = {h for h in (peer_hash_algs or ()) if h in _IKEV2_HASHES}
    if not usable:
        return _classic_scheme(private_key), None, False
    for hash_alg, pss in _scheme_candidates(private_key, rsa_pss):
        if hash_alg in usable:
            return AuthMethod.DIGITAL_SIGNATURE, hash_alg, pss
    raise PkiError(
        f"no common hash algorithm to sign with a {_key_description(private_key)} "
        f"(peer supports {sorted(usable)})"
    )


def _classic_scheme(private_key) -> int:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return AuthMethod.RSA_SIG
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        for method, (curve, _hash) in _CLASSIC_ECDSA.items():
            if isinstance(private_key.curve, curve):
                return method
    raise PkiError(
        f"a {_key_description(private_key)} can only sign with RFC 7427 signature "
        "authentication, which the peer did not announce"
    )


def _scheme_candidates(private_key, rsa_pss: bool) -> list[tuple[int, bool]]:
    """(hash, pss) in strongSwan's order of preference for this key (see
    :func:`choose_signature_scheme`): the key-size dependent list, PSS first if
    enabled, then for RSA the PKCS#1 v1.5 SHA2-384 and SHA2-256 fallbacks."""
    sha256, sha384, sha512 = HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512
    if isinstance(private_key, rsa.RSAPrivateKey):
        size = private_key.key_size
        if size <= 3072:
            base = [sha256, sha384, sha512]
        elif size <= 7680:
            base = [sha384, sha512]
        else:
            base = [sha512]
        candidates = [(h, True) for h in base] if rsa_pss else []
        candidates += [(h, False) for h in base]
        candidates += [(h, False) for h in (sha384, sha256) if h not in base]
        return candidates
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        size = private_key.curve.key_size
        if size <= 256:
            return [(sha256, False), (sha384, False), (sha512, False)]
        if size <= 384:
            return [(sha384, False), (sha512, False)]
        return [(sha512, False)]
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return [(HashAlgorithm.IDENTITY, False)]
    return []


def _key_description(key) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"{key.key_size}-bit RSA key"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ECDSA {key.curve.name} key"
    return f"{type(key).__name__}"


# --------------------------------------------------------------------------
# Signing


def sign_auth(
    private_key, octets: bytes, method: int, hash_alg: int | None = None, pss: bool = False
) -> bytes:
    """Sign ``octets`` (RFC 7296 section 2.15) and return the AUTH payload data.

    For ``DIGITAL_SIGNATURE`` ``hash_alg`` (a :class:`HashAlgorithm`) selects the
    hash (default SHA2-256, IDENTITY for EdDSA) and ``pss`` selects RSASSA-PSS
    (salt length = hash length, MGF1 with the same hash) over PKCS#1 v1.5 for RSA
    keys.  Raises :class:`PkiError` if the key cannot make that signature.
    """
    if method == AuthMethod.RSA_SIG:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise PkiError(f"auth method RSA_SIG needs an RSA key, not a {_key_description(private_key)}")
        return private_key.sign(octets, padding.PKCS1v15(), hashes.SHA1())
    if method in _CLASSIC_ECDSA:
        curve, hash_id = _CLASSIC_ECDSA[method]
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, curve
        ):
            raise PkiError(
                f"auth method {AuthMethod(method).name} needs an ECDSA {curve.name} key, "
                f"not a {_key_description(private_key)}"
            )
        der = private_key.sign(octets, ec.ECDSA(_HASHES[hash_id]()))
        r, s = decode_dss_signature(der)
        size = (private_key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if method == AuthMethod.DIGITAL_SIGNATURE:
        return _sign_digital_signature(private_key, octets, hash_alg, pss)
    raise PkiError(f"auth method {method} is not a signature method we can create")


def _sign_digital_signature(private_key, octets: bytes, hash_alg: int | None, pss: bool) -> bytes:
    algorithm = algorithm_identifier(private_key, hash_alg, pss)
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        signature = private_key.sign(octets)
    else:
        hasher = _HASHES[_default_hash(private_key, hash_alg)]()
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            signature = private_key.sign(octets, ec.ECDSA(hasher))
        elif pss:
            signature = private_key.sign(octets, _pss_padding(hasher, hasher.digest_size), hasher)
        else:
            signature = private_key.sign(octets, padding.PKCS1v15(), hasher)
    return bytes([len(algorithm)]) + algorithm + signature


def _default_hash(private_key, hash_alg: int | None) -> int:
    if hash_alg is not None:
        return hash_alg
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return HashAlgorithm.IDENTITY
    return HashAlgorithm.SHA2_256


def algorithm_identifier(private_key, hash_alg: int | None = None, pss: bool = False) -> bytes:
    """The DER AlgorithmIdentifier of a method-14 signature by ``private_key``.

    ``hash_alg`` defaults as in :func:`sign_auth`.  The encodings are those of
    RFC 7427 Appendix A (PKCS#1 v1.5 with NULL parameters, ECDSA and EdDSA without
    parameters, RSASSA-PSS with explicit RFC 4055 parameters).  Raises
    :class:`PkiError` for a combination the key cannot sign.
    """
    hash_alg = _default_hash(private_key, hash_alg)
    if isinstance(private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        if hash_alg != HashAlgorithm.IDENTITY or pss:
            raise PkiError("EdDSA signs with the IDENTITY hash only")
        oid = _OID_ED25519 if isinstance(private_key, ed25519.Ed25519PrivateKey) else _OID_ED448
        return _sequence(encode_oid(oid))
    if hash_alg not in _HASHES:
        raise PkiError(f"hash algorithm {hash_alg} cannot be used with a {_key_description(private_key)}")
    if isinstance(private_key, rsa.RSAPrivateKey):
        if pss:
            return _pss_algorithm_identifier(hash_alg)
        return _sequence(encode_oid(_OID_RSA_PKCS1[hash_alg]) + _NULL_TLV)
    if pss:
        raise PkiError(f"RSASSA-PSS needs an RSA key, not a {_key_description(private_key)}")
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return _sequence(encode_oid(_OID_ECDSA[hash_alg]))
    raise PkiError(f"cannot sign with a {_key_description(private_key)}")


def _pss_padding(mgf_hasher, salt_length: int) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(mgf_hasher), salt_length=salt_length)


def _pss_algorithm_identifier(hash_alg: int) -> bytes:
    """id-RSASSA-PSS with RFC 4055 parameters: the hash, MGF1 with the same hash and
    salt length = hash length.  Fields equal to their DEFAULT (SHA-1, MGF1-SHA-1,
    20, trailerField 1) are omitted as DER requires, so SHA-1 gives an empty
    SEQUENCE (RFC 7427 A.4.1 and its errata form of A.4.3)."""
    params = b""
    if hash_alg != HashAlgorithm.SHA1:
        hash_id = _sequence(encode_oid(_OID_HASH[hash_alg]) + _NULL_TLV)
        params += encode_tlv(0xA0, hash_id) + encode_tlv(0xA1, _sequence(encode_oid(_OID_MGF1) + hash_id))
    salt_length = _HASHES[hash_alg].digest_size
    if salt_length != 20:
        params += encode_tlv(0xA2, encode_integer(salt_length))
    return _sequence(encode_oid(_OID_RSASSA_PSS) + _sequence(params))


# --------------------------------------------------------------------------
# Verifying


class _Scheme(NamedTuple):
    """A parsed RFC 7427 AlgorithmIdentifier."""

    kind: str  # "pkcs1", "pss", "ecdsa", "ed25519", "ed448"
    hash_alg: int | None = None
    mgf_hash: int | None = None
    salt_length: int = 0


def verify_auth(public_key, octets: bytes, method: int, data: bytes) -> bool:
    """True if ``data`` (AUTH payload data) is a valid ``method`` signature of ``octets``.

    ``public_key`` is the peer's public key (an ``x509.Certificate`` is accepted
    too).  Never raises: malformed data, an unknown AlgorithmIdentifier, a key of
    the wrong type for the method or OID (an RSA key with an ECDSA OID, a P-384 key
    with method 9, ...) all give False.
    """
    try:
        if isinstance(public_key, x509.Certificate):
            public_key = public_key.public_key()
        return _verify(public_key, bytes(octets), method, bytes(data))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm, OverflowError, IndexError):
        return False


#: strongSwan's names of the schemes (``rightauth=rsa/pss-sha256`` and the like)
_KIND_NAMES = {"pkcs1": "rsa", "pss": "rsa/pss", "ecdsa": "ecdsa", "ed25519": "ed25519", "ed448": "ed448"}
_HASH_NAMES = {HashAlgorithm.SHA1: "sha1", HashAlgorithm.SHA2_256: "sha256", HashAlgorithm.SHA2_384: "sha384",
               HashAlgorithm.SHA2_512: "sha512", HashAlgorithm.IDENTITY: "identity"}


def auth_signature_scheme(method: int, data: bytes) -> tuple[str, str] | None:
    """The signature scheme of AUTH payload data as strongSwan names its parts in
    ``rightauth=`` constraints: ``(key, hash)`` such as ``("rsa/pss", "sha256")``,
    ``("rsa", "sha1")`` for method 1, ``("ecdsa", "sha384")`` for method 10; None for
    data that is no signature we know.  Says nothing about whether it verifies."""
    if method == AuthMethod.RSA_SIG:
        return "rsa", "sha1"
    if method in _CLASSIC_ECDSA:
        return "ecdsa", _HASH_NAMES[_CLASSIC_ECDSA[method][1]]
    if method != AuthMethod.DIGITAL_SIGNATURE or not data:
        return None
    try:
        scheme = _parse_algorithm_identifier(bytes(data[1 : 1 + data[0]]))
    except (ValueError, IndexError):  # DerError is a ValueError
        return None
    if scheme is None or scheme.hash_alg not in _HASH_NAMES:
        return None
    return _KIND_NAMES[scheme.kind], _HASH_NAMES[scheme.hash_alg]


def _verify(public_key, octets: bytes, method: int, data: bytes) -> bool:
    if method == AuthMethod.RSA_SIG:
        if not isinstance(public_key, rsa.RSAPublicKey):
            return False
        public_key.verify(data, octets, padding.PKCS1v15(), hashes.SHA1())
        return True
    if method in _CLASSIC_ECDSA:
        curve, hash_id = _CLASSIC_ECDSA[method]
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, curve):
            return False
        size = (public_key.curve.key_size + 7) // 8
        if len(data) != 2 * size:
            return False
        r, s = int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
        public_key.verify(encode_dss_signature(r, s), octets, ec.ECDSA(_HASHES[hash_id]()))
        return True
    if method == AuthMethod.DIGITAL_SIGNATURE:
        if not data:
            return False
        length = data[0]
        scheme = _parse_algorithm_identifier(data[1 : 1 + length])
        if scheme is None or len(data) <= 1 + length:
            return False
        return _verify_scheme(public_key, scheme, octets, data[1 + length :])
    return False


def _verify_scheme(public_key, scheme: _Scheme, octets: bytes, signature: bytes) -> bool:
    if scheme.kind in ("pkcs1", "pss"):
        if not isinstance(public_key, rsa.RSAPublicKey):
            return False
        hasher = _HASHES[scheme.hash_alg]()
        if scheme.kind == "pkcs1":
            pad = padding.PKCS1v15()
        else:
            pad = _pss_padding(_HASHES[scheme.mgf_hash](), scheme.salt_length)
        public_key.verify(signature, octets, pad, hasher)
        return True
    if scheme.kind == "ecdsa":
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return False
        public_key.verify(signature, octets, ec.ECDSA(_HASHES[scheme.hash_alg]()))
        return True
    expected = ed25519.Ed25519PublicKey if scheme.kind == "ed25519" else ed448.Ed448PublicKey
    if not isinstance(public_key, expected):
        return False
    public_key.verify(signature, octets)
    return True


def _parse_algorithm_identifier(der: bytes) -> _Scheme | None:
    """Parse a signature AlgorithmIdentifier we accept; None for anything else."""
    outer = _read_tlvs(der)
    if len(outer) != 1 or outer[0][0] != SEQUENCE:
        return None
    fields = _read_tlvs(outer[0][1])
    if not fields or fields[0][0] != OBJECT_IDENTIFIER or len(fields) > 2:
        return None
    oid = decode_oid(fields[0][1])
    params = fields[1] if len(fields) == 2 else None
    absent_or_null = params is None or params == (NULL, b"")
    for hash_alg, known in _OID_RSA_PKCS1.items():
        if oid == known:
            return _Scheme("pkcs1", hash_alg) if absent_or_null else None
    for hash_alg, known in _OID_ECDSA.items():
        if oid == known:
            return _Scheme("ecdsa", hash_alg) if absent_or_null else None
    if oid in (_OID_ED25519, _OID_ED448):
        if params is not None:
            return None
        return _Scheme("ed25519" if oid == _OID_ED25519 else "ed448", HashAlgorithm.IDENTITY)
    if oid == _OID_RSASSA_PSS:
        # RFC 4055 section 3.1: a signature's RSASSA-PSS-params must be present
        # (possibly as an empty SEQUENCE meaning all defaults).
        if params is None or params[0] != SEQUENCE:
            return None
        return _parse_pss_params(params[1])
    return None


def _parse_pss_params(body: bytes) -> _Scheme | None:
    """RFC 4055 RSASSA-PSS-params; absent fields take their DEFAULT (SHA-1, MGF1-SHA-1, 20, 1)."""
    hash_alg, mgf_hash, salt_length, trailer = HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20, 1
    last_tag = 0
    for tag, value in _read_tlvs(body):
        if tag <= last_tag:  # fields are ordered and unique
            return None
        last_tag = tag
        inner = _read_tlvs(value)
        if len(inner) != 1:
            return None
        if tag == 0xA0:
            hash_alg = _parse_hash_identifier(inner[0])
        elif tag == 0xA1:
            mgf = _read_tlvs(inner[0][1]) if inner[0][0] == SEQUENCE else []
            if len(mgf) != 2 or mgf[0][0] != OBJECT_IDENTIFIER or decode_oid(mgf[0][1]) != _OID_MGF1:
                return None
            mgf_hash = _parse_hash_identifier(mgf[1])
        elif tag == 0xA2:
            salt_length = _parse_integer(inner[0])
        elif tag == 0xA3:
            trailer = _parse_integer(inner[0])
        else:
            return None
        if hash_alg is None or mgf_hash is None or salt_length is None:
            return None
    if trailer != 1:
        return None
    return _Scheme("pss", hash_alg, mgf_hash, salt_length)


def _parse_hash_identifier(tlv: tuple[int, bytes]) -> int | None:
    if tlv[0] != SEQUENCE:
        return None
    fields = _read_tlvs(tlv[1])
    if not fields or fields[0][0] != OBJECT_IDENTIFIER or len(fields) > 2:
        return None
    if len(fields) == 2 and fields[1] != (NULL, b""):
        return None
    oid = decode_oid(fields[0][1])
    for hash_alg, known in _OID_HASH.items():
        if oid == known:
            return hash_alg
    return None


def _parse_integer(tlv: tuple[int, bytes]) -> int | None:
    tag, value = tlv
    if tag != INTEGER or not value or len(value) > 4 or value[0] & 0x80:
        return None
    return int.from_bytes(value, "big")


# --------------------------------------------------------------------------
# DER helpers

_NULL_TLV = encode_tlv(NULL, b"")


def _sequence(content: bytes) -> bytes:
    return encode_tlv(SEQUENCE, content)


def _read_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """:func:`ikegate.der.read_tlvs` allowing long-form lengths of at most two octets.

    An AlgorithmIdentifier here is at most 255 bytes (RFC 7427's one-octet length
    prefix), so a longer length field is malformed: DerError.
    """
    return read_tlvs(data, max_length_octets=2)
