"""``ike=`` / ``esp=`` / ``ah=`` strings to :class:`~ikegate.proposal.Proposal` lists.

strongSwan 5.9.8 semantics (strongswan-semantics.md section 2.9):

* stroke_config.c ``add_proposals``: a comma-separated list of proposals; a ``!`` at the
  very end of the whole string makes it *strict*; otherwise the daemon's default
  proposals (classic, then AEAD) are appended; one invalid proposal rejects the string
  (and so the conn);
* proposal.c ``proposal_create_from_string``: a proposal is ``-``-separated keywords of
  any transform type in any order (blanks around keywords are ignored), looked up in
  proposal_keywords_static.txt (:data:`KEYWORDS`);
* proposal.c ``check_proposal`` normalises it: IKE without PRF gets the PRF of each
  integrity algorithm; IKE needs a PRF and a key exchange method (``none`` is dropped
  from IKE); IKE and ESP need encryption; classic and AEAD ciphers cannot be mixed; AEAD
  proposals lose their integrity algorithms; classic IKE needs integrity; ESP/AH lose
  PRFs; AH turns ``aesXXXgmac`` into the GMAC integrity algorithm and drops ciphers;
  ESP/AH without an ESN keyword get ``noesn``.

The default proposals of 5.9.8 depend on the algorithms its loaded plugins register and
in which order (``proposal_add_supported_ike``).  :data:`DEFAULT_IKE` and
:data:`DEFAULT_IKE_AEAD` are what Debian 12's strongSwan 5.9.8 (package 5.9.8-5+deb12u6,
with the openssl, aesni, xcbc, cmac, ... plugins of ``strongswan`` +
``libcharon-extauth-plugins``) actually produced on this machine (logged by charon as
``configured proposals``), which is also what proposal.c's rounds give for that
registration order.  The ESP/AH defaults are fixed in ``proposal_create_default`` /
``proposal_create_default_aead``.

strongSwan 6.0 changed the defaults (no 3DES/CAMELLIA in IKE, ML-KEM methods, and since
6.0.2 every KE method plus ``none`` in the ESP defaults); ikegate follows 5.9.8.

ChaCha20-Poly1305 has key size 0 (no Key Length attribute) and KE method 0 prints as
``KE_NONE``, as in 5.9.8.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from ikegate.proposal import Proposal
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

ENCR, PRF, INTEG, KE, ESN = (
    TransformType.ENCR,
    TransformType.PRF,
    TransformType.INTEG,
    TransformType.DH,
    TransformType.ESN,
)

# strongSwan-private algorithm identifiers (crypter.h, signer.h, prf.h, key_exchange.h)
ENCR_SERPENT_CBC = 1026
ENCR_TWOFISH_CBC = 1027
AUTH_HMAC_SHA2_256_96 = 1026
AUTH_CAMELLIA_XCBC_96 = 1030
PRF_CAMELLIA128_XCBC = 1028
MODP_NULL = 1024
NTRU_112_BIT, NTRU_128_BIT, NTRU_192_BIT, NTRU_256_BIT = 1030, 1031, 1032, 1033
NH_128_BIT = 1040

#: ChaCha20-Poly1305 has a fixed 256-bit key; strongSwan's keyword table gives it key
#: size 0 (no Key Length attribute, RFC 7634 2), as :class:`Proposal` does.
CHACHA_BITS = 0


def _aes_family(prefix: str, alg: int, suffixes: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    table = {}
    for bits in (128, 192, 256):
        for suffix in suffixes:
            table[f"{prefix}{bits}{suffix}"] = (ENCR, alg, bits)
    return table


#: proposal_keywords_static.txt of strongSwan 5.9.8: keyword -> (type, algorithm, key bits)
KEYWORDS: dict[str, tuple[int, int, int]] = {
    "null": (ENCR, EncrId.NULL, 0),
    "des": (ENCR, EncrId.DES, 0),
    "3des": (ENCR, EncrId.TRIPLE_DES, 0),
    "aes": (ENCR, EncrId.AES_CBC, 128),
    **_aes_family("aes", EncrId.AES_CBC, ("",)),
    **_aes_family("aes", EncrId.AES_CTR, ("ctr",)),
    **_aes_family("aes", EncrId.AES_CCM_8, ("ccm8", "ccm64")),
    **_aes_family("aes", EncrId.AES_CCM_12, ("ccm12", "ccm96")),
    **_aes_family("aes", EncrId.AES_CCM_16, ("ccm16", "ccm128", "ccm")),
    **_aes_family("aes", EncrId.AES_GCM_8, ("gcm8", "gcm64")),
    **_aes_family("aes", EncrId.AES_GCM_12, ("gcm12", "gcm96")),
    **_aes_family("aes", EncrId.AES_GCM_16, ("gcm16", "gcm128", "gcm")),
    **_aes_family("aes", EncrId.NULL_AUTH_AES_GMAC, ("gmac",)),
    "chacha20poly1305": (ENCR, EncrId.CHACHA20_POLY1305, CHACHA_BITS),
    "chacha20poly1305compat": (ENCR, EncrId.CHACHA20_POLY1305, CHACHA_BITS),
    "blowfish": (ENCR, EncrId.BLOWFISH, 128),
    "blowfish128": (ENCR, EncrId.BLOWFISH, 128),
    "blowfish192": (ENCR, EncrId.BLOWFISH, 192),
    "blowfish256": (ENCR, EncrId.BLOWFISH, 256),
    "camellia": (ENCR, EncrId.CAMELLIA_CBC, 128),
    **_aes_family("camellia", EncrId.CAMELLIA_CBC, ("",)),
    **_aes_family("camellia", EncrId.CAMELLIA_CTR, ("ctr",)),
    **_aes_family("camellia", EncrId.CAMELLIA_CCM_8, ("ccm8", "ccm64")),
    **_aes_family("camellia", EncrId.CAMELLIA_CCM_12, ("ccm12", "ccm96")),
    **_aes_family("camellia", EncrId.CAMELLIA_CCM_16, ("ccm16", "ccm128")),
    "cast128": (ENCR, EncrId.CAST, 128),
    "serpent": (ENCR, ENCR_SERPENT_CBC, 128),
    **_aes_family("serpent", ENCR_SERPENT_CBC, ("",)),
    "twofish": (ENCR, ENCR_TWOFISH_CBC, 128),
    **_aes_family("twofish", ENCR_TWOFISH_CBC, ("",)),
    "sha": (INTEG, IntegId.HMAC_SHA1_96, 0),
    "sha1": (INTEG, IntegId.HMAC_SHA1_96, 0),
    "sha1_160": (INTEG, IntegId.HMAC_SHA1_160, 0),
    "sha256": (INTEG, IntegId.HMAC_SHA2_256_128, 0),
    "sha2_256": (INTEG, IntegId.HMAC_SHA2_256_128, 0),
    "sha256_96": (INTEG, AUTH_HMAC_SHA2_256_96, 0),
    "sha2_256_96": (INTEG, AUTH_HMAC_SHA2_256_96, 0),
    "sha384": (INTEG, IntegId.HMAC_SHA2_384_192, 0),
    "sha2_384": (INTEG, IntegId.HMAC_SHA2_384_192, 0),
    "sha512": (INTEG, IntegId.HMAC_SHA2_512_256, 0),
    "sha2_512": (INTEG, IntegId.HMAC_SHA2_512_256, 0),
    "md5": (INTEG, IntegId.HMAC_MD5_96, 0),
    "md5_128": (INTEG, IntegId.HMAC_MD5_128, 0),
    "aesxcbc": (INTEG, IntegId.AES_XCBC_96, 0),
    "camelliaxcbc": (INTEG, AUTH_CAMELLIA_XCBC_96, 0),
    "aescmac": (INTEG, IntegId.AES_CMAC_96, 0),
    "prfsha1": (PRF, PrfId.HMAC_SHA1, 0),
    "prfsha256": (PRF, PrfId.HMAC_SHA2_256, 0),
    "prfsha384": (PRF, PrfId.HMAC_SHA2_384, 0),
    "prfsha512": (PRF, PrfId.HMAC_SHA2_512, 0),
    "prfmd5": (PRF, PrfId.HMAC_MD5, 0),
    "prfaesxcbc": (PRF, PrfId.AES128_XCBC, 0),
    "prfcamelliaxcbc": (PRF, PRF_CAMELLIA128_XCBC, 0),
    "prfaescmac": (PRF, PrfId.AES128_CMAC, 0),
    "none": (KE, DhId.NONE, 0),
    "modpnone": (KE, DhId.NONE, 0),
    "modpnull": (KE, MODP_NULL, 0),
    "modp768": (KE, DhId.MODP_768, 0),
    "modp1024": (KE, DhId.MODP_1024, 0),
    "modp1536": (KE, DhId.MODP_1536, 0),
    "modp2048": (KE, DhId.MODP_2048, 0),
    "modp3072": (KE, DhId.MODP_3072, 0),
    "modp4096": (KE, DhId.MODP_4096, 0),
    "modp6144": (KE, DhId.MODP_6144, 0),
    "modp8192": (KE, DhId.MODP_8192, 0),
    "ecp192": (KE, DhId.ECP_192, 0),
    "ecp224": (KE, DhId.ECP_224, 0),
    "ecp256": (KE, DhId.ECP_256, 0),
    "ecp384": (KE, DhId.ECP_384, 0),
    "ecp521": (KE, DhId.ECP_521, 0),
    "modp1024s160": (KE, DhId.MODP_1024_160, 0),
    "modp2048s224": (KE, DhId.MODP_2048_224, 0),
    "modp2048s256": (KE, DhId.MODP_2048_256, 0),
    "ecp224bp": (KE, DhId.ECP_224_BP, 0),
    "ecp256bp": (KE, DhId.ECP_256_BP, 0),
    "ecp384bp": (KE, DhId.ECP_384_BP, 0),
    "ecp512bp": (KE, DhId.ECP_512_BP, 0),
    "curve25519": (KE, DhId.CURVE_25519, 0),
    "x25519": (KE, DhId.CURVE_25519, 0),
    "curve448": (KE, DhId.CURVE_448, 0),
    "x448": (KE, DhId.CURVE_448, 0),
    "ntru112": (KE, NTRU_112_BIT, 0),
    "ntru128": (KE, NTRU_128_BIT, 0),
    "ntru192": (KE, NTRU_192_BIT, 0),
    "ntru256": (KE, NTRU_256_BIT, 0),
    "newhope128": (KE, NH_128_BIT, 0),
    "noesn": (ESN, EsnId.NO_EXT_SEQ, 0),
    "esn": (ESN, EsnId.EXT_SEQ, 0),
}

#: proposal.c integ_prf_map: the PRF an IKE proposal gets for each integrity algorithm
INTEG_TO_PRF = {
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA1_160: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
    IntegId.HMAC_MD5_96: PrfId.HMAC_MD5,
    IntegId.HMAC_MD5_128: PrfId.HMAC_MD5,
    IntegId.AES_XCBC_96: PrfId.AES128_XCBC,
    AUTH_CAMELLIA_XCBC_96: PRF_CAMELLIA128_XCBC,
    IntegId.AES_CMAC_96: PrfId.AES128_CMAC,
}

_GMAC_INTEG = {128: IntegId.AES_128_GMAC, 192: IntegId.AES_192_GMAC, 256: IntegId.AES_256_GMAC}
_PROTOCOL_NAMES = {ProtocolId.IKE: "IKE", ProtocolId.ESP: "ESP", ProtocolId.AH: "AH"}


def _sizes(alg: int) -> tuple[tuple[int, int], ...]:
    return tuple((alg, bits) for bits in (128, 192, 256))


_DEFAULT_IKE_PRF = (
    PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512,
    PrfId.AES128_XCBC, PrfId.AES128_CMAC, PrfId.HMAC_SHA1,
)
_DEFAULT_IKE_KE = (
    DhId.CURVE_25519, DhId.CURVE_448, DhId.ECP_256, DhId.ECP_384, DhId.ECP_521,
    DhId.ECP_256_BP, DhId.ECP_384_BP, DhId.ECP_512_BP,
    DhId.MODP_3072, DhId.MODP_4096, DhId.MODP_6144, DhId.MODP_8192, DhId.MODP_2048,
)

#: 5.9.8 default IKE proposal (classic ciphers), as charon on Debian 12 logs it:
#: IKE:AES_CBC_128/AES_CBC_192/AES_CBC_256/AES_CTR_128/.../CAMELLIA_CTR_256/3DES_CBC/
#: HMAC_SHA2_256_128/HMAC_SHA2_384_192/HMAC_SHA2_512_256/AES_XCBC_96/AES_CMAC_96/
#: HMAC_SHA1_96/PRF_HMAC_SHA2_256/.../PRF_HMAC_SHA1/CURVE_25519/CURVE_448/ECP_256/
#: ECP_384/ECP_521/ECP_256_BP/ECP_384_BP/ECP_512_BP/MODP_3072/MODP_4096/MODP_6144/
#: MODP_8192/MODP_2048
DEFAULT_IKE = Proposal(
    protocol=ProtocolId.IKE,
    encr=_sizes(EncrId.AES_CBC) + _sizes(EncrId.AES_CTR) + _sizes(EncrId.CAMELLIA_CBC)
    + _sizes(EncrId.CAMELLIA_CTR) + ((EncrId.TRIPLE_DES, 0),),
    integ=(
        IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256,
        IntegId.AES_XCBC_96, IntegId.AES_CMAC_96, IntegId.HMAC_SHA1_96,
    ),
    prf=_DEFAULT_IKE_PRF,
    dh=_DEFAULT_IKE_KE,
)

#: 5.9.8 default IKE proposal (AEAD ciphers) with Debian's stock plugin set (all of
#: ``strongswan-libcharon``/``libstrongswan-extra-plugins`` loaded, as the reference
#: server in tests/interop/test_reference_proposals.py runs it): IKE:AES_CCM_16_*/
#: AES_GCM_16_*/CHACHA20_POLY1305/CAMELLIA_CCM_16_*/AES_CCM_8_*/AES_CCM_12_*/AES_GCM_8_*/
#: AES_GCM_12_*/CAMELLIA_CCM_8_*/CAMELLIA_CCM_12_* + PRFs and KE methods as :data:`DEFAULT_IKE`
DEFAULT_IKE_AEAD = Proposal(
    protocol=ProtocolId.IKE,
    encr=_sizes(EncrId.AES_CCM_16) + _sizes(EncrId.AES_GCM_16)
    + ((EncrId.CHACHA20_POLY1305, CHACHA_BITS),)
    + _sizes(EncrId.CAMELLIA_CCM_16)
    + _sizes(EncrId.AES_CCM_8) + _sizes(EncrId.AES_CCM_12)
    + _sizes(EncrId.AES_GCM_8) + _sizes(EncrId.AES_GCM_12)
    + _sizes(EncrId.CAMELLIA_CCM_8) + _sizes(EncrId.CAMELLIA_CCM_12),
    prf=_DEFAULT_IKE_PRF,
    dh=_DEFAULT_IKE_KE,
)

#: proposal_create_default(PROTO_ESP) of 5.9.8:
#: ESP:AES_CBC_128/AES_CBC_192/AES_CBC_256/HMAC_SHA2_256_128/HMAC_SHA2_384_192/
#: HMAC_SHA2_512_256/HMAC_SHA1_96/AES_XCBC_96/NO_EXT_SEQ
DEFAULT_ESP = Proposal(
    protocol=ProtocolId.ESP,
    encr=_sizes(EncrId.AES_CBC),
    integ=(
        IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256,
        IntegId.HMAC_SHA1_96, IntegId.AES_XCBC_96,
    ),
    esn=(EsnId.NO_EXT_SEQ,),
)

#: proposal_create_default_aead(PROTO_ESP): ESP:AES_GCM_16_128/AES_GCM_16_192/AES_GCM_16_256/NO_EXT_SEQ
DEFAULT_ESP_AEAD = Proposal(protocol=ProtocolId.ESP, encr=_sizes(EncrId.AES_GCM_16), esn=(EsnId.NO_EXT_SEQ,))

#: proposal_create_default(PROTO_AH); there is no AEAD default for AH
DEFAULT_AH = Proposal(protocol=ProtocolId.AH, integ=DEFAULT_ESP.integ, esn=(EsnId.NO_EXT_SEQ,))


class ProposalError(ValueError):
    """An ``ike=``/``esp=``/``ah=`` string strongSwan would reject; the message uses
    strongSwan's wording for the cause."""


def default_proposals(protocol: int) -> tuple[Proposal, ...]:
    """The proposals strongSwan 5.9.8 appends (or uses alone): classic, then AEAD."""
    if protocol == ProtocolId.IKE:
        return (DEFAULT_IKE, DEFAULT_IKE_AEAD)
    if protocol == ProtocolId.ESP:
        return (DEFAULT_ESP, DEFAULT_ESP_AEAD)
    if protocol == ProtocolId.AH:
        return (DEFAULT_AH,)
    raise ValueError(f"no default proposals for protocol {protocol}")


def parse_proposals(text: str | None, protocol: int) -> tuple[tuple[Proposal, ...], bool]:
    """Expand an ``ike=``/``esp=``/``ah=`` value: (proposals, strict).

    ``None`` (option not set) gives the defaults.  Without a trailing ``!`` the
    defaults are appended.  Raises :class:`ProposalError`.
    """
    if text is None:
        return default_proposals(protocol), False
    strict = text.endswith("!")
    body = text[:-1] if strict else text
    proposals = tuple(proposal_from_string(single, protocol) for single in body.split(","))
    if not strict:
        proposals += default_proposals(protocol)
    return proposals, strict


def proposal_from_string(text: str, protocol: int) -> Proposal:
    """One proposal (``aes128-sha256-modp2048``), normalised as check_proposal() does."""
    if not text.strip(" "):
        raise ProposalError("empty proposal")
    transforms: list[tuple[int, int, int]] = []
    for word in text.split("-"):
        word = word.strip(" ")
        entry = KEYWORDS.get(word)
        if entry is None:
            raise ProposalError(f"algorithm '{word}' not recognized (in proposal '{text}')")
        transforms.append(entry)
    try:
        transforms = _check(transforms, protocol)
    except ProposalError as exc:
        raise ProposalError(f"{exc} (in proposal '{text}')") from None
    return Proposal(
        protocol=protocol,
        encr=tuple((alg, bits) for t, alg, bits in transforms if t == ENCR),
        integ=tuple(alg for t, alg, _ in transforms if t == INTEG),
        prf=tuple(alg for t, alg, _ in transforms if t == PRF),
        dh=tuple(alg for t, alg, _ in transforms if t == KE),
        esn=tuple(alg for t, alg, _ in transforms if t == ESN),
    )


def _check(transforms: list[tuple[int, int, int]], protocol: int) -> list[tuple[int, int, int]]:
    """proposal.c check_proposal() on a list of (type, algorithm, key bits)."""
    name = _PROTOCOL_NAMES.get(protocol, str(protocol))

    def has(ttype: int) -> bool:
        return any(t == ttype for t, _, _ in transforms)

    if protocol == ProtocolId.IKE:
        if not has(PRF):
            for t, alg, _ in list(transforms):
                if t == INTEG and alg in INTEG_TO_PRF:
                    transforms.append((PRF, INTEG_TO_PRF[alg], 0))
        if not has(PRF):
            raise ProposalError("a PRF algorithm is mandatory in IKE proposals")
        transforms = [x for x in transforms if not (x[0] == KE and x[1] == DhId.NONE)]
        if not has(KE):
            raise ProposalError("a DH group is mandatory in IKE proposals")
    else:
        transforms = [x for x in transforms if x[0] != PRF]

    if protocol in (ProtocolId.IKE, ProtocolId.ESP):
        ciphers = [alg for t, alg, _ in transforms if t == ENCR]
        aead = [alg in AEAD_ENCR for alg in ciphers]
        if not ciphers:
            raise ProposalError(f"an encryption algorithm is mandatory in {name} proposals")
        if any(aead) and not all(aead):
            raise ProposalError(
                "classic and combined-mode (AEAD) encryption algorithms can't be contained in the "
                f"same {name} proposal"
            )
        if all(aead):
            transforms = [x for x in transforms if x[0] != INTEG]
        elif protocol == ProtocolId.IKE and not has(INTEG):
            raise ProposalError(
                f"an integrity algorithm is mandatory in {name} proposals with classic (non-AEAD) "
                "encryption algorithms"
            )
    else:
        mapped = []
        for t, alg, bits in transforms:
            if t == ENCR:
                if alg == EncrId.NULL_AUTH_AES_GMAC and bits in _GMAC_INTEG:
                    mapped.append((INTEG, _GMAC_INTEG[bits], 0))
                continue  # other ciphers are dropped from AH
            mapped.append((t, alg, bits))
        transforms = mapped
        if not has(INTEG):
            raise ProposalError("an integrity algorithm is mandatory in AH proposals")

    if protocol in (ProtocolId.AH, ProtocolId.ESP) and not has(ESN):
        transforms.append((ESN, EsnId.NO_EXT_SEQ, 0))
    return transforms


def unsupported_algorithms(
    proposals: Sequence[Proposal], is_supported: Callable[[int, int, int], bool]
) -> list[str]:
    """Names of the algorithms in ``proposals`` that ``is_supported(type, alg, bits)``
    rejects (e.g. :func:`ikegate.crypto.transforms.is_supported`), without repeats."""
    from ikegate.proposal import DH_NAMES, ESN_NAMES, INTEG_NAMES, PRF_NAMES, encr_name

    found: list[str] = []
    for proposal in proposals:
        checks = [(ENCR, alg, bits, encr_name(alg, bits)) for alg, bits in proposal.encr]
        checks += [(INTEG, a, 0, INTEG_NAMES.get(a, f"INTEG_{a}")) for a in proposal.integ]
        checks += [(PRF, a, 0, PRF_NAMES.get(a, f"PRF_{a}")) for a in proposal.prf]
        checks += [(KE, a, 0, DH_NAMES.get(a, f"KE_{a}")) for a in proposal.dh]
        checks += [(ESN, a, 0, ESN_NAMES.get(a, f"ESN_{a}")) for a in proposal.esn]
        for ttype, alg, bits, label in checks:
            if not is_supported(ttype, alg, bits) and label not in found:
                found.append(label)
    return found


def filter_supported(
    proposals: Sequence[Proposal], is_supported: Callable[[int, int, int], bool]
) -> tuple[Proposal, ...]:
    """``proposals`` without the algorithms ``is_supported`` rejects; a proposal left
    without a mandatory transform type (encryption; integrity for classic ciphers;
    PRF and KE for IKE) is dropped."""
    result = []
    for p in proposals:
        encr = tuple((a, b) for a, b in p.encr if is_supported(ENCR, a, b))
        integ = tuple(a for a in p.integ if is_supported(INTEG, a, 0))
        prf = tuple(a for a in p.prf if is_supported(PRF, a, 0))
        dh = tuple(a for a in p.dh if a == DhId.NONE or is_supported(KE, a, 0))
        esn = tuple(a for a in p.esn if is_supported(ESN, a, 0))
        if p.encr and not encr:
            continue
        if p.integ and not integ and not all(a in AEAD_ENCR for a, _ in encr):
            continue
        if (p.prf and not prf) or (p.dh and not dh) or (p.esn and not esn):
            continue
        result.append(p.with_(encr=encr, integ=integ, prf=prf, dh=dh, esn=esn))
    return tuple(result)


def strongswan_text(proposal: Proposal) -> str:
    """The proposal as strongSwan 5.9.8 prints it (``%P``); :class:`Proposal` uses 5.9.8's
    names, so this is its text."""
    return str(proposal)
