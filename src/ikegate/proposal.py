"""Proposals: the algorithm sets of one SA offer, their strongSwan names, and selection.

A :class:`Proposal` is what ``ike=``/``esp=`` expand to (see :mod:`ikegate.config.proposals`)
and what an SA payload offers.  Selection follows strongSwan's ``proposal_select``/
``select_algos`` (src/libstrongswan/crypto/proposal/proposal.c): every transform type
present in either proposal must have a common algorithm (same id and key length); an
AEAD cipher makes integrity irrelevant; a missing key-exchange method is acceptable for
ESP/AH when the other side offers NONE.  The seed guide wants the client's first
acceptable proposal to win and the client's algorithm order within it
(``charon.prefer_configured_proposals = no``), which is the default here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from ikegate.wire.constants import (
    AEAD_ENCR,
    DhId,
    EncrId,
    EsnId,
    IntegId,
    PrfId,
    ProtocolId,
    TransformType,
)

# strongSwan's printable names (encryption_algorithm_names, integrity_algorithm_names,
# pseudo_random_function_names, key_exchange_method_names, extended_sequence_numbers_names)
ENCR_NAMES = {
    EncrId.DES_IV64: "DES_IV64",
    EncrId.DES: "DES_CBC",
    EncrId.TRIPLE_DES: "3DES_CBC",
    EncrId.RC5: "RC5_CBC",
    EncrId.IDEA: "IDEA_CBC",
    EncrId.CAST: "CAST_CBC",
    EncrId.BLOWFISH: "BLOWFISH_CBC",
    EncrId.THREE_IDEA: "3IDEA",
    EncrId.DES_IV32: "DES_IV32",
    EncrId.NULL: "NULL",
    EncrId.AES_CBC: "AES_CBC",
    EncrId.AES_CTR: "AES_CTR",
    EncrId.AES_CCM_8: "AES_CCM_8",
    EncrId.AES_CCM_12: "AES_CCM_12",
    EncrId.AES_CCM_16: "AES_CCM_16",
    EncrId.AES_GCM_8: "AES_GCM_8",
    EncrId.AES_GCM_12: "AES_GCM_12",
    EncrId.AES_GCM_16: "AES_GCM_16",
    EncrId.NULL_AUTH_AES_GMAC: "NULL_AES_GMAC",
    EncrId.CAMELLIA_CBC: "CAMELLIA_CBC",
    EncrId.CAMELLIA_CTR: "CAMELLIA_CTR",
    EncrId.CAMELLIA_CCM_8: "CAMELLIA_CCM_8",
    EncrId.CAMELLIA_CCM_12: "CAMELLIA_CCM_12",
    EncrId.CAMELLIA_CCM_16: "CAMELLIA_CCM_16",
    EncrId.CHACHA20_POLY1305: "CHACHA20_POLY1305",
}
INTEG_NAMES = {
    IntegId.NONE: "NONE",
    IntegId.HMAC_MD5_96: "HMAC_MD5_96",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96",
    IntegId.DES_MAC: "DES_MAC",
    IntegId.KPDK_MD5: "KPDK_MD5",
    IntegId.AES_XCBC_96: "AES_XCBC_96",
    IntegId.HMAC_MD5_128: "HMAC_MD5_128",
    IntegId.HMAC_SHA1_160: "HMAC_SHA1_160",
    IntegId.AES_CMAC_96: "AES_CMAC_96",
    IntegId.AES_128_GMAC: "AES_128_GMAC",
    IntegId.AES_192_GMAC: "AES_192_GMAC",
    IntegId.AES_256_GMAC: "AES_256_GMAC",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256",
}
PRF_NAMES = {
    PrfId.HMAC_MD5: "PRF_HMAC_MD5",
    PrfId.HMAC_SHA1: "PRF_HMAC_SHA1",
    PrfId.HMAC_TIGER: "PRF_HMAC_TIGER",
    PrfId.AES128_XCBC: "PRF_AES128_XCBC",
    PrfId.HMAC_SHA2_256: "PRF_HMAC_SHA2_256",
    PrfId.HMAC_SHA2_384: "PRF_HMAC_SHA2_384",
    PrfId.HMAC_SHA2_512: "PRF_HMAC_SHA2_512",
    PrfId.AES128_CMAC: "PRF_AES128_CMAC",
}
DH_NAMES = {
    DhId.NONE: "KE_NONE",  # strongSwan 5.9 (key_exchange_method_names)
    DhId.MODP_768: "MODP_768",
    DhId.MODP_1024: "MODP_1024",
    DhId.MODP_1536: "MODP_1536",
    DhId.MODP_2048: "MODP_2048",
    DhId.MODP_3072: "MODP_3072",
    DhId.MODP_4096: "MODP_4096",
    DhId.MODP_6144: "MODP_6144",
    DhId.MODP_8192: "MODP_8192",
    DhId.ECP_256: "ECP_256",
    DhId.ECP_384: "ECP_384",
    DhId.ECP_521: "ECP_521",
    DhId.MODP_1024_160: "MODP_1024_160",
    DhId.MODP_2048_224: "MODP_2048_224",
    DhId.MODP_2048_256: "MODP_2048_256",
    DhId.ECP_192: "ECP_192",
    DhId.ECP_224: "ECP_224",
    DhId.ECP_224_BP: "ECP_224_BP",
    DhId.ECP_256_BP: "ECP_256_BP",
    DhId.ECP_384_BP: "ECP_384_BP",
    DhId.ECP_512_BP: "ECP_512_BP",
    DhId.CURVE_25519: "CURVE_25519",
    DhId.CURVE_448: "CURVE_448",
    DhId.ML_KEM_512: "ML_KEM_512",
    DhId.ML_KEM_768: "ML_KEM_768",
    DhId.ML_KEM_1024: "ML_KEM_1024",
}
ESN_NAMES = {EsnId.NO_EXT_SEQ: "NO_EXT_SEQ", EsnId.EXT_SEQ: "EXT_SEQ"}
PROTOCOL_NAMES = {ProtocolId.IKE: "IKE", ProtocolId.AH: "AH", ProtocolId.ESP: "ESP"}

# Ciphers with a fixed key size carry no Key Length attribute (RFC 7634 2 for
# ChaCha20-Poly1305); strongSwan keeps their key size 0 and prints no size.  A peer that
# sends the attribute anyway (256) is read as 0 so the proposals still match.
NO_KEY_LENGTH = frozenset({EncrId.CHACHA20_POLY1305, EncrId.TRIPLE_DES, EncrId.DES, EncrId.NULL})


def encr_name(alg: int, key_bits: int = 0) -> str:
    name = ENCR_NAMES.get(alg, f"ENCR_{alg}")
    return f"{name}_{key_bits}" if key_bits else name


def _name(table: dict, prefix: str, alg: int) -> str:
    return table.get(alg, f"{prefix}_{alg}")


@dataclass(frozen=True)
class Proposal:
    """One proposal.  Algorithms of each type in preference order.

    ``encr`` holds (algorithm id, key length in bits or 0) pairs.
    ``number`` and ``spi`` are those of the SA payload the proposal came from (or is
    sent in); they take no part in comparison of algorithms.
    """

    protocol: int
    encr: tuple[tuple[int, int], ...] = ()
    integ: tuple[int, ...] = ()
    prf: tuple[int, ...] = ()
    dh: tuple[int, ...] = ()
    esn: tuple[int, ...] = ()
    number: int = field(default=0, compare=False)
    spi: bytes = field(default=b"", compare=False)

    # -- properties of a selected (single-algorithm) proposal -------------------------

    @property
    def is_aead(self) -> bool:
        return bool(self.encr) and all(alg in AEAD_ENCR for alg, _ in self.encr)

    @property
    def encr_alg(self) -> tuple[int, int] | None:
        return self.encr[0] if self.encr else None

    @property
    def integ_alg(self) -> int | None:
        return self.integ[0] if self.integ else None

    @property
    def prf_alg(self) -> int | None:
        return self.prf[0] if self.prf else None

    @property
    def dh_group(self) -> int | None:
        """The first real key-exchange method (NONE is skipped), or None."""
        for g in self.dh:
            if g != DhId.NONE:
                return g
        return None

    @property
    def esn_enabled(self) -> bool:
        return bool(self.esn) and self.esn[0] == EsnId.EXT_SEQ

    def by_type(self, ttype: int) -> tuple:
        return {
            TransformType.ENCR: self.encr,
            TransformType.INTEG: self.integ,
            TransformType.PRF: self.prf,
            TransformType.DH: self.dh,
            TransformType.ESN: self.esn,
        }[ttype]

    def with_(self, **changes) -> "Proposal":
        return replace(self, **changes)

    # -- strongSwan's text form ----------------------------------------------------------

    def __str__(self) -> str:
        parts = [encr_name(a, k) for a, k in self.encr]
        parts += [_name(INTEG_NAMES, "INTEG", a) for a in self.integ]
        parts += [_name(PRF_NAMES, "PRF", a) for a in self.prf]
        parts += [_name(DH_NAMES, "KE", a) for a in self.dh]
        parts += [_name(ESN_NAMES, "ESN", a) for a in self.esn]
        return f"{PROTOCOL_NAMES.get(self.protocol, str(self.protocol))}:" + "/".join(parts)

    # -- wire form -------------------------------------------------------------------------

    @classmethod
    def from_wire(cls, sa_proposal) -> "Proposal":
        """From a :class:`ikegate.wire.payloads.SaProposal` (transforms kept in order)."""
        encr: list[tuple[int, int]] = []
        integ: list[int] = []
        prf: list[int] = []
        dh: list[int] = []
        esn: list[int] = []
        for t in sa_proposal.transforms:
            if t.type == TransformType.ENCR:
                bits = 0 if t.id in NO_KEY_LENGTH else (t.key_length or 0)
                encr.append((t.id, bits))
            elif t.type == TransformType.INTEG:
                integ.append(t.id)
            elif t.type == TransformType.PRF:
                prf.append(t.id)
            elif t.type == TransformType.DH:
                dh.append(t.id)
            elif t.type == TransformType.ESN:
                esn.append(t.id)
        if sa_proposal.protocol in (ProtocolId.ESP, ProtocolId.AH) and not esn:
            # RFC 7296 3.3.3 makes ESN mandatory for ESP/AH; a peer that omits it
            # cannot do ESN, so read it as "no ESN" rather than refusing it.
            esn.append(EsnId.NO_EXT_SEQ)
        return cls(
            protocol=sa_proposal.protocol,
            encr=tuple(encr),
            integ=tuple(integ),
            prf=tuple(prf),
            dh=tuple(dh),
            esn=tuple(esn),
            number=sa_proposal.number,
            spi=bytes(sa_proposal.spi),
        )

    def to_wire(self, number: int | None = None, spi: bytes | None = None):
        """To a :class:`ikegate.wire.payloads.SaProposal`."""
        from ikegate.wire.payloads import SaProposal, Transform

        transforms = []
        for alg, bits in self.encr:
            transforms.append(Transform.make(TransformType.ENCR, alg, bits or None))
        transforms += [Transform.make(TransformType.PRF, a) for a in self.prf]
        transforms += [Transform.make(TransformType.INTEG, a) for a in self.integ]
        transforms += [Transform.make(TransformType.DH, a) for a in self.dh]
        transforms += [Transform.make(TransformType.ESN, a) for a in self.esn]
        return SaProposal(
            number=self.number if number is None else number,
            protocol=self.protocol,
            spi=self.spi if spi is None else spi,
            transforms=transforms,
        )

    # -- selection ----------------------------------------------------------------------

    def select(self, other: "Proposal", *, skip_dh: bool = False) -> "Proposal | None":
        """The common single-algorithm proposal of ``self`` and ``other``, or None.

        Algorithm order of ``self`` is preferred; number and SPI come from ``self``.
        ``skip_dh`` ignores key-exchange methods (the CHILD SA created in IKE_AUTH).
        """
        if self.protocol != other.protocol:
            return None
        chosen: dict[int, tuple] = {}
        encr = _select_algo(self.encr, other.encr, optional_none=False)
        if encr is None:
            return None
        chosen[TransformType.ENCR] = encr
        aead = bool(encr) and encr[0][0] in AEAD_ENCR
        if not aead:
            integ = _select_algo(self.integ, other.integ, optional_none=False)
            if integ is None:
                return None
            chosen[TransformType.INTEG] = integ
        else:
            chosen[TransformType.INTEG] = ()
        prf = _select_algo(self.prf, other.prf, optional_none=False)
        if prf is None:
            return None
        chosen[TransformType.PRF] = prf
        if skip_dh:
            chosen[TransformType.DH] = ()
        else:
            optional = self.protocol in (ProtocolId.ESP, ProtocolId.AH)
            dh = _select_algo(self.dh, other.dh, optional_none=optional)
            if dh is None:
                return None
            chosen[TransformType.DH] = dh
        esn = _select_algo(self.esn, other.esn, optional_none=False)
        if esn is None:
            return None
        chosen[TransformType.ESN] = esn
        return Proposal(
            protocol=self.protocol,
            encr=chosen[TransformType.ENCR],
            integ=chosen[TransformType.INTEG],
            prf=chosen[TransformType.PRF],
            dh=chosen[TransformType.DH],
            esn=chosen[TransformType.ESN],
            number=self.number,
            spi=self.spi,
        )


def _select_algo(mine: tuple, theirs: tuple, *, optional_none: bool) -> tuple | None:
    """First algorithm of ``mine`` also in ``theirs``: a 1-tuple, () if neither has one,
    None when there is no match.  With ``optional_none`` (KE methods of ESP/AH), a side
    without any method matches a side that offers NONE, and the result is ()."""
    if not mine and not theirs:
        return ()
    if not mine or not theirs:
        present = theirs if not mine else mine
        if optional_none and DhId.NONE in present:
            return ()
        return None
    for alg in mine:
        if alg in theirs:
            if optional_none and alg == DhId.NONE:
                return ()
            return (alg,)
    return None


def select_proposal(
    configured: Sequence[Proposal],
    offered: Sequence[Proposal],
    *,
    prefer_configured: bool = False,
    skip_dh: bool = False,
) -> Proposal | None:
    """Choose among ``offered`` proposals.

    By default the first offered proposal that matches any configured one wins, with
    the offered algorithm order (strongSwan with ``prefer_configured_proposals = no``).
    With ``prefer_configured`` the loops are swapped (strongSwan's default).  The result
    carries the offered proposal's number and SPI either way.
    """
    if prefer_configured:
        for mine in configured:
            for theirs in offered:
                chosen = mine.select(theirs, skip_dh=skip_dh)
                if chosen is not None:
                    return replace(chosen, number=theirs.number, spi=theirs.spi)
        return None
    for theirs in offered:
        for mine in configured:
            chosen = theirs.select(mine, skip_dh=skip_dh)
            if chosen is not None:
                return chosen
    return None


def format_proposals(proposals: Iterable[Proposal]) -> str:
    return ", ".join(str(p) for p in proposals)
