"""Key exchange methods (transform type 4): MODP, ECP and Curve25519/448 groups.

``get_group(id).generate()`` makes our half of an exchange: ``.public`` is the KE
payload data, ``.compute(peer_public)`` the shared secret g^ir, which raises
:class:`InvalidKeyExchange` on a bad peer value.

MODP (RFC 2409 6, RFC 3526): the primes are computed from the RFCs' formula
``p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k)``, generator 2.  The
private exponent is short, with strongSwan's lengths (``exp_len`` of ``dh_params`` in
src/libstrongswan/crypto/key_exchange.c: 256 bits up to MODP-1536, 384 bits for
2048/3072, 512 bits above; strongSwan itself uses them with
``charon.dh_exponent_ansi_x9_42 = no`` and full-length exponents otherwise), which are
at least twice each group's security strength (RFC 3526 8).
Modular exponentiation goes through a small :class:`ModpBackend`: ``gmpy2.powmod`` (a
dependency: 0.34 ms against pow()'s 3.7 ms per MODP-2048 exponentiation here), with
Python's ``pow()`` as the fallback where gmpy2 cannot be imported.  cryptography's FFDH is
not used: it is deprecated, and it recognises no group for MODP-1024, where it costs
~35 ms per exchange.  The shared secret is
left-padded to the modulus length (RFC 7296 2.14 / RFC 2631).

ECP (RFC 5903 for 19/20/21 and 25/26, RFC 6954 for Brainpool 28-30): KE data is x | y
without the 0x04 point-format byte, the shared secret is the x coordinate; the peer point
is checked to be on the curve by ``cryptography``.  Brainpool 224 (27) is not offered by
``cryptography`` and so is not supported.  Curve25519/448 (RFC 8031): the raw 32/56-byte
keys; an all-zero shared secret (a low-order peer point) is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from ikegate.crypto.errors import InvalidKeyExchange, UnsupportedAlgorithm
from ikegate.proposal import DH_NAMES
from ikegate.wire.constants import DhId

__all__ = [
    "DhGroup",
    "KeyExchange",
    "ModpBackend",
    "PythonPowBackend",
    "Gmpy2Backend",
    "default_modp_backend",
    "get_group",
    "modp_prime",
    "SUPPORTED_GROUPS",
]


# ---------------------------------------------------------------------------------------
# Modular exponentiation backends
# ---------------------------------------------------------------------------------------


class ModpBackend(Protocol):
    """What finite-field DH needs from a big-number library."""

    name: str

    def powmod(self, base: int, exp: int, mod: int) -> int: ...


class PythonPowBackend:
    """Python's built-in three-argument ``pow()``."""

    name = "python"

    @staticmethod
    def powmod(base: int, exp: int, mod: int) -> int:
        return pow(base, exp, mod)


class Gmpy2Backend:
    """GMP through gmpy2 (raises ImportError when gmpy2 is not installed)."""

    name = "gmpy2"

    def __init__(self) -> None:
        import gmpy2  # noqa: PLC0415 - optional accelerator

        self._powmod = gmpy2.powmod

    def powmod(self, base: int, exp: int, mod: int) -> int:
        return int(self._powmod(base, exp, mod))


@lru_cache(maxsize=1)
def default_modp_backend() -> ModpBackend:
    """gmpy2 when importable, else ``pow()``; decided once per process."""
    try:
        return Gmpy2Backend()
    except ImportError:
        return PythonPowBackend()


# ---------------------------------------------------------------------------------------
# MODP parameters
# ---------------------------------------------------------------------------------------

# (modulus bits, k of the RFC formula, private exponent bits)
_MODP_PARAMS: dict[int, tuple[int, int, int]] = {
    DhId.MODP_768: (768, 149686, 256),  # RFC 2409 6.1
    DhId.MODP_1024: (1024, 129093, 256),  # RFC 2409 6.2
    DhId.MODP_1536: (1536, 741804, 256),  # RFC 3526 2
    DhId.MODP_2048: (2048, 124476, 384),  # RFC 3526 3
    DhId.MODP_3072: (3072, 1690314, 384),  # RFC 3526 4
    DhId.MODP_4096: (4096, 240904, 512),  # RFC 3526 5
    DhId.MODP_6144: (6144, 929484, 512),  # RFC 3526 6
    DhId.MODP_8192: (8192, 4743158, 512),  # RFC 3526 7
}
_MODP_GENERATOR = 2


def _pi_times_power_of_two(bits: int) -> int:
    """floor(pi * 2^bits), by Machin's formula pi = 16 atan(1/5) - 4 atan(1/239) in
    fixed point with 64 guard bits (the series' truncation error stays far below them)."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inverse(x: int) -> int:
        term = one // x
        total = term
        x_squared = x * x
        divisor = 1
        sign = -1
        while term:
            term //= x_squared
            divisor += 2
            total += sign * (term // divisor)
            sign = -sign
        return total

    return (16 * arctan_inverse(5) - 4 * arctan_inverse(239)) >> guard


@lru_cache(maxsize=None)
def modp_prime(group_id: int) -> int:
    """The prime of a MODP group of RFC 2409/3526, from the RFCs' formula."""
    try:
        bits, k, _ = _MODP_PARAMS[group_id]
    except KeyError:
        raise UnsupportedAlgorithm(f"no MODP group {group_id}") from None
    return 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_times_power_of_two(bits - 130) + k)


# ---------------------------------------------------------------------------------------
# Groups and exchanges
# ---------------------------------------------------------------------------------------


class KeyExchange(Protocol):
    """Our half of one key exchange."""

    @property
    def public(self) -> bytes:
        """The Key Exchange Data of our KE payload."""
        ...

    def compute(self, peer_public: bytes) -> bytes:
        """The shared secret g^ir from the peer's KE data; InvalidKeyExchange if bad."""
        ...


class DhGroup(Protocol):
    id: int
    name: str
    public_len: int

    def generate(self) -> KeyExchange: ...

    def from_private(self, private_value: bytes) -> KeyExchange: ...


class _Exchange:
    """What the MODP, ECP and Montgomery exchanges share: the group and our public value."""

    __slots__ = ("_group", "public")

    def _check_length(self, peer_public: bytes) -> None:
        """The peer's KE data must be exactly the group's length (RFC 7296 3.4)."""
        group = self._group
        if len(peer_public) != group.public_len:
            raise InvalidKeyExchange(
                f"{group.name} KE data must be {group.public_len} bytes, got {len(peer_public)}"
            )

    def __repr__(self) -> str:
        return f"<{self._group.name} key exchange>"


class _ModpExchange(_Exchange):
    __slots__ = ("_x",)

    def __init__(self, group: "_ModpGroup", x: int):
        self._group = group
        self._x = x
        y = group.backend.powmod(_MODP_GENERATOR, x, group.prime)
        self.public = y.to_bytes(group.public_len, "big")

    def compute(self, peer_public: bytes) -> bytes:
        group = self._group
        self._check_length(peer_public)
        y = int.from_bytes(peer_public, "big")
        # 1 and p-1 generate subgroups of order 1 and 2; 0 and >= p are not group elements.
        if not 1 < y < group.prime - 1:
            raise InvalidKeyExchange(f"{group.name} peer value out of range")
        z = group.backend.powmod(y, self._x, group.prime)
        return z.to_bytes(group.public_len, "big")


@dataclass(frozen=True, eq=False)
class _ModpGroup:
    id: int
    name: str
    prime: int
    exponent_bits: int
    backend: ModpBackend

    @property
    def public_len(self) -> int:
        return (self.prime.bit_length() + 7) // 8

    def generate(self) -> KeyExchange:
        # uniformly random with the top bit set, so the exponent has its full length
        x = secrets.randbits(self.exponent_bits - 1) | (1 << (self.exponent_bits - 1))
        return _ModpExchange(self, x)

    def from_private(self, private_value: bytes) -> KeyExchange:
        x = int.from_bytes(private_value, "big")
        if not 1 < x < self.prime - 1:
            raise ValueError("private exponent out of range")
        return _ModpExchange(self, x)


class _EcpExchange(_Exchange):
    __slots__ = ("_key",)

    def __init__(self, group: "_EcpGroup", key: ec.EllipticCurvePrivateKey):
        self._group = group
        self._key = key
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public = point[1:]  # RFC 5903 7: x | y, no point-format byte

    def compute(self, peer_public: bytes) -> bytes:
        group = self._group
        self._check_length(peer_public)
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(group.curve, b"\x04" + peer_public)
            return self._key.exchange(ec.ECDH(), peer)
        except ValueError:
            raise InvalidKeyExchange(f"{group.name} peer value is not a point on the curve") from None


@dataclass(frozen=True, eq=False)
class _EcpGroup:
    id: int
    name: str
    curve: ec.EllipticCurve

    @property
    def public_len(self) -> int:
        return 2 * ((self.curve.key_size + 7) // 8)

    def generate(self) -> KeyExchange:
        return _EcpExchange(self, ec.generate_private_key(self.curve))

    def from_private(self, private_value: bytes) -> KeyExchange:
        scalar = int.from_bytes(private_value, "big")
        return _EcpExchange(self, ec.derive_private_key(scalar, self.curve))


class _MontgomeryExchange(_Exchange):
    __slots__ = ("_key",)

    def __init__(self, group: "_MontgomeryGroup", key):
        self._group = group
        self._key = key
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        self.public = key.public_key().public_bytes(*raw)

    def compute(self, peer_public: bytes) -> bytes:
        group = self._group
        self._check_length(peer_public)
        try:
            peer = group.public_class.from_public_bytes(bytes(peer_public))
            shared = self._key.exchange(peer)
        except ValueError:  # cryptography refuses low-order points (all-zero result)
            raise InvalidKeyExchange(f"{group.name} peer value gives no usable secret") from None
        if not any(shared):  # RFC 7748 6.1 / RFC 8031 2.3: MUST check for all-zero
            raise InvalidKeyExchange(f"{group.name} shared secret is all zero")
        return shared


@dataclass(frozen=True, eq=False)
class _MontgomeryGroup:
    id: int
    name: str
    public_len: int
    private_class: type
    public_class: type

    def generate(self) -> KeyExchange:
        return _MontgomeryExchange(self, self.private_class.generate())

    def from_private(self, private_value: bytes) -> KeyExchange:
        return _MontgomeryExchange(self, self.private_class.from_private_bytes(bytes(private_value)))


_ECP_CURVES: dict[int, type] = {
    DhId.ECP_256: ec.SECP256R1,
    DhId.ECP_384: ec.SECP384R1,
    DhId.ECP_521: ec.SECP521R1,
    DhId.ECP_192: ec.SECP192R1,
    DhId.ECP_224: ec.SECP224R1,
    DhId.ECP_256_BP: ec.BrainpoolP256R1,
    DhId.ECP_384_BP: ec.BrainpoolP384R1,
    DhId.ECP_512_BP: ec.BrainpoolP512R1,
}

SUPPORTED_GROUPS = frozenset(
    set(_MODP_PARAMS) | set(_ECP_CURVES) | {DhId.CURVE_25519, DhId.CURVE_448}
)

_GROUPS: dict[tuple[int, str], DhGroup] = {}


def get_group(group_id: int, *, backend: ModpBackend | None = None) -> DhGroup:
    """The key exchange method with this transform ID, or :class:`UnsupportedAlgorithm`.

    ``backend`` chooses the MODP exponentiation (default: :func:`default_modp_backend`);
    it is ignored by the elliptic-curve groups.
    """
    if backend is None:
        backend = default_modp_backend()
    cache_key = (group_id, backend.name)
    group = _GROUPS.get(cache_key)
    if group is not None:
        return group
    try:
        group_id = DhId(group_id)
    except ValueError:
        raise UnsupportedAlgorithm(f"key exchange method {group_id} is not supported") from None
    name = DH_NAMES.get(group_id, group_id.name)
    if group_id in _MODP_PARAMS:
        group = _ModpGroup(group_id, name, modp_prime(group_id), _MODP_PARAMS[group_id][2], backend)
    elif group_id in _ECP_CURVES:
        group = _EcpGroup(group_id, name, _ECP_CURVES[group_id]())
    elif group_id == DhId.CURVE_25519:
        group = _MontgomeryGroup(group_id, name, 32, x25519.X25519PrivateKey, x25519.X25519PublicKey)
    elif group_id == DhId.CURVE_448:
        group = _MontgomeryGroup(group_id, name, 56, x448.X448PrivateKey, x448.X448PublicKey)
    else:
        raise UnsupportedAlgorithm(f"key exchange method {name} is not supported")
    _GROUPS[cache_key] = group
    return group
