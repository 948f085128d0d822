"""Which algorithm suites a conn accepts, how strong each is, and their strongSwan text.

Client profiles must propose something the conn's ``ike=``/``esp=`` accept, and should
propose the strongest such suite first (Windows, left alone, offers 3DES and modp1024
first).  This module answers three questions for the profile writers:

* is a client's proposal accepted by the conn?  (:func:`ike_accepted`,
  :func:`esp_accepted`: the gateway's own :func:`ikegate.proposal.select_proposal`,
  client first, as ikegate runs it);
* which of a client's possible settings is strongest?  (:func:`best_candidate` with
  :func:`ike_strength` / :func:`esp_strength`);
* what does a strongSwan-based client (Android app, NetworkManager) put in its
  proposal string?  (:func:`strongswan_proposal`, :func:`strongswan_text`).

Strength is an ordering, not a security claim.  Key-exchange methods are ranked by the
symmetric-equivalent strengths of NIST SP 800-57 Part 1 Rev. 5, Table 2 (FFC/IFC 1024
-> 80, 2048 -> 112, 3072 -> 128, 7680 -> 192, 15360 -> 256 bits; ECC 224 -> 112,
256 -> 128, 384 -> 192, 512+ -> 256); sizes between those rows are interpolated (1536
-> 96, 4096 -> 152, 6144 -> 176, 8192 -> 200) only to order them.  At equal strength
elliptic curves come before MODP groups (smaller and faster, which matters on phones).
A suite is ranked first by its weakest part among cipher and key exchange, then by the
cipher, the key exchange, the cipher's mode (AEAD with a 16-byte ICV, then classic,
then shorter ICVs), and last by integrity and PRF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Sequence, TypeVar

from ikegate.config.proposals import KEYWORDS, filter_supported
from ikegate.proposal import Proposal, select_proposal
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType

T = TypeVar("T")

# -- strength tables ------------------------------------------------------------------

#: symmetric-equivalent bits of each key-exchange method (see the module docstring)
DH_BITS: dict[int, int] = {
    DhId.MODP_768: 64,
    DhId.MODP_1024: 80,
    DhId.MODP_1024_160: 80,
    DhId.MODP_1536: 96,
    DhId.MODP_2048: 112,
    DhId.MODP_2048_224: 112,
    DhId.MODP_2048_256: 112,
    DhId.MODP_3072: 128,
    DhId.MODP_4096: 152,
    DhId.MODP_6144: 176,
    DhId.MODP_8192: 200,
    DhId.ECP_192: 96,
    DhId.ECP_224: 112,
    DhId.ECP_224_BP: 112,
    DhId.ECP_256: 128,
    DhId.ECP_256_BP: 128,
    DhId.CURVE_25519: 128,
    DhId.ECP_384: 192,
    DhId.ECP_384_BP: 192,
    DhId.CURVE_448: 224,
    DhId.ECP_512_BP: 256,
    DhId.ECP_521: 256,
}
_MODP = frozenset({
    DhId.MODP_768, DhId.MODP_1024, DhId.MODP_1024_160, DhId.MODP_1536, DhId.MODP_2048,
    DhId.MODP_2048_224, DhId.MODP_2048_256, DhId.MODP_3072, DhId.MODP_4096, DhId.MODP_6144,
    DhId.MODP_8192,
})
#: among curves of equal strength: Curve25519/448 first, then NIST, then Brainpool
_CURVE_PREFERENCE = {DhId.CURVE_25519: 3, DhId.CURVE_448: 3, DhId.ECP_256: 2, DhId.ECP_384: 2,
                     DhId.ECP_521: 2, DhId.ECP_224: 2, DhId.ECP_192: 2}

#: ciphers with a fixed key size: their strength in bits
_FIXED_CIPHER_BITS = {EncrId.TRIPLE_DES: 112, EncrId.DES: 56, EncrId.NULL: 0, EncrId.CHACHA20_POLY1305: 256}
#: cipher mode ranks: AEAD with a 16-byte ICV > classic > 12-byte ICV > 8-byte ICV
_MODE_RANK = {
    EncrId.AES_GCM_16: 6, EncrId.CHACHA20_POLY1305: 5, EncrId.AES_CCM_16: 4, EncrId.CAMELLIA_CCM_16: 4,
    EncrId.AES_CBC: 3, EncrId.AES_CTR: 3, EncrId.CAMELLIA_CBC: 3, EncrId.CAMELLIA_CTR: 3,
    EncrId.AES_GCM_12: 2, EncrId.AES_CCM_12: 2, EncrId.CAMELLIA_CCM_12: 2,
    EncrId.AES_GCM_8: 1, EncrId.AES_CCM_8: 1, EncrId.CAMELLIA_CCM_8: 1,
}
#: integrity algorithms, strongest first
INTEG_ORDER: tuple[int, ...] = (
    IntegId.HMAC_SHA2_512_256, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_256_128,
    IntegId.HMAC_SHA1_160, IntegId.AES_CMAC_96, IntegId.AES_XCBC_96, IntegId.HMAC_SHA1_96,
    IntegId.HMAC_MD5_128, IntegId.HMAC_MD5_96,
)
#: PRFs, strongest first
PRF_ORDER: tuple[int, ...] = (
    PrfId.HMAC_SHA2_512, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_256, PrfId.AES128_CMAC,
    PrfId.AES128_XCBC, PrfId.HMAC_SHA1, PrfId.HMAC_MD5,
)


def encr_bits(alg: int, bits: int) -> int:
    """The strength in bits of a cipher with key length ``bits``."""
    return _FIXED_CIPHER_BITS.get(alg, bits)


def encr_strength(alg: int, bits: int) -> tuple[int, int]:
    return encr_bits(alg, bits), _MODE_RANK.get(alg, 0)


def dh_strength(group: int) -> tuple[int, int]:
    """(bits, preference); KE method NONE (no PFS) is weakest."""
    if group == DhId.NONE:
        return 0, 0
    pref = 0 if group in _MODP else _CURVE_PREFERENCE.get(group, 1)
    return DH_BITS.get(group, 0), pref


def _order_rank(order: Sequence[int], alg: int) -> int:
    return len(order) - order.index(alg) if alg in order else 0


def integ_strength(alg: int) -> int:
    return _order_rank(INTEG_ORDER, alg)


def prf_strength(alg: int) -> int:
    return _order_rank(PRF_ORDER, alg)


def ike_strength(suite: Proposal) -> tuple:
    """Sort key of a single-algorithm IKE proposal (larger is stronger)."""
    alg, bits = suite.encr[0]
    cipher = encr_strength(alg, bits)
    dh = dh_strength(suite.dh[0]) if suite.dh else (0, 0)
    integ = integ_strength(suite.integ[0]) if suite.integ else 0
    prf = prf_strength(suite.prf[0]) if suite.prf else 0
    return min(cipher[0], dh[0]), cipher[0], dh[0], cipher[1], dh[1], prf, integ


def esp_strength(suite: Proposal) -> tuple:
    """Sort key of a single-algorithm ESP proposal: cipher, mode, integrity, then the
    key exchange used on rekeying (PFS beats none)."""
    alg, bits = suite.encr[0]
    cipher = encr_strength(alg, bits)
    integ = integ_strength(suite.integ[0]) if suite.integ else 0
    dh = dh_strength(suite.dh[0]) if suite.dh else (0, 0)
    return cipher[0], cipher[1], integ, dh


# -- acceptance -----------------------------------------------------------------------


def supported(proposals: Iterable[Proposal]) -> tuple[Proposal, ...]:
    """The conn's proposals restricted to what ikegate implements: only those can ever
    be selected by the gateway."""
    from ikegate.crypto.transforms import is_supported

    return filter_supported(tuple(proposals), is_supported)


def ike_accepted(conn_ike: Sequence[Proposal], offered: Proposal) -> Proposal | None:
    """The suite the gateway would select if a client offered ``offered`` for the IKE SA."""
    return select_proposal(conn_ike, [offered])


def esp_accepted(conn_esp: Sequence[Proposal], offered: Proposal) -> Proposal | None:
    """The suite the gateway would select for the CHILD SA made in IKE_AUTH (no KE), if
    the same proposal is also accepted when the client rekeys the CHILD SA with its
    key-exchange method (PFS) or without one; else None."""
    first = select_proposal(conn_esp, [offered], skip_dh=True)
    if first is None:
        return None
    if select_proposal(conn_esp, [offered]) is None:
        return None
    return first


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """A client setting (``setting``, in the client's own vocabulary) and the IKEv2
    proposal it makes the client send."""

    setting: T
    proposal: Proposal


def best_candidate(
    candidates: Iterable[Candidate[T]],
    accepted: Callable[[Proposal], Proposal | None],
    strength: Callable[[Proposal], tuple],
) -> Candidate[T] | None:
    """The strongest candidate whose proposal ``accepted`` returns a suite for; ties go to
    the earliest candidate."""
    best: Candidate[T] | None = None
    best_key: tuple | None = None
    for candidate in candidates:
        if accepted(candidate.proposal) is None:
            continue
        key = strength(candidate.proposal)
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best


# -- strongSwan proposal strings (Android app, NetworkManager) -------------------------


def _strongest_first(proposal: Proposal) -> Proposal:
    dh = sorted((g for g in proposal.dh if g != DhId.NONE), key=dh_strength, reverse=True)
    if DhId.NONE in proposal.dh:
        dh.append(DhId.NONE)  # optional PFS stays optional, after the real groups
    return proposal.with_(
        encr=tuple(sorted(proposal.encr, key=lambda e: encr_strength(*e), reverse=True)),
        integ=tuple(sorted(proposal.integ, key=integ_strength, reverse=True)),
        prf=tuple(sorted(proposal.prf, key=prf_strength, reverse=True)),
        dh=tuple(dh),
    )


def _first_suite(proposal: Proposal) -> Proposal:
    return proposal.with_(encr=proposal.encr[:1], integ=proposal.integ[:1], prf=proposal.prf[:1],
                          dh=proposal.dh[:1], esn=proposal.esn[:1])


def strongswan_proposal(conn_proposals: Sequence[Proposal]) -> Proposal | None:
    """One proposal for a strongSwan-based client: the conn proposal whose strongest
    suite is strongest, its algorithms ordered strongest first (so the client's first
    choice, and the KE payload it guesses, is the strongest the conn accepts).  None if
    ``conn_proposals`` is empty."""
    best: Proposal | None = None
    best_key: tuple | None = None
    for proposal in conn_proposals:
        ordered = _strongest_first(proposal)
        first = _first_suite(ordered)
        key = ike_strength(first) if proposal.protocol == ProtocolId.IKE else esp_strength(first)
        if best_key is None or key > best_key:
            best, best_key = ordered, key
    return best


def _keyword_table() -> dict[tuple[int, int, int], str]:
    """(transform type, algorithm, key bits) -> the keyword strongSwan prints for it.

    The first keyword of strongSwan's table wins, except that ciphers keep their size
    (``aes128``, not ``aes``) and SHA-1 integrity is ``sha1`` (not ``sha``)."""
    table: dict[tuple[int, int, int], str] = {}
    for word, entry in KEYWORDS.items():
        if word in ("aes", "camellia", "serpent", "twofish", "blowfish", "sha", "modpnone"):
            continue
        table.setdefault(entry, word)
    return table


_KEYWORD_OF = _keyword_table()


def _keyword(ttype: int, alg: int, bits: int = 0) -> str:
    try:
        return _KEYWORD_OF[(ttype, alg, bits)]
    except KeyError:
        raise ValueError(f"no strongSwan keyword for transform {ttype} algorithm {alg} ({bits} bits)") from None


def strongswan_text(proposal: Proposal) -> str:
    """``proposal`` as a strongSwan proposal string (``aes256-sha384-modp3072``).

    IKE PRFs are written only where strongSwan would not derive the same ones from the
    integrity algorithms (always for AEAD); ``noesn`` alone (the default) is left out."""
    from ikegate.config.proposals import INTEG_TO_PRF

    words = [_keyword(TransformType.ENCR, alg, bits) for alg, bits in proposal.encr]
    words += [_keyword(TransformType.INTEG, alg) for alg in proposal.integ]
    if proposal.protocol == ProtocolId.IKE:
        derived: list[int] = []
        for alg in proposal.integ:
            prf = INTEG_TO_PRF.get(alg)
            if prf is not None and prf not in derived:
                derived.append(prf)
        if tuple(derived) != proposal.prf:
            words += [_keyword(TransformType.PRF, alg) for alg in proposal.prf]
    words += [_keyword(TransformType.DH, group) for group in proposal.dh]
    if proposal.esn and proposal.esn != (EsnId.NO_EXT_SEQ,):
        words += [_keyword(TransformType.ESN, esn) for esn in proposal.esn]
    return "-".join(words)

