"""Which ESP algorithms a data plane can carry, for filtering CHILD SA proposals.

The IKE engine derives keys for every algorithm :mod:`ikegate.crypto.transforms` knows,
but a CHILD SA is only useful if the backend that carries its packets has the
algorithm: the userspace ESP code (:mod:`ikegate.esp.algorithms`) has fewer than the
Linux kernel (e.g. no AES-XCBC-96).  Each backend exposes ``esp_supported(ttype, alg,
bits) -> bool``; the daemon builds the runtime's ``esp=`` proposals with the predicate of
the backend it runs (:func:`ikegate.daemon.builder.build_runtime`), as strongSwan only
proposes what its plugins provide.

This module holds the predicate of the userspace backend (also used by the recording
backend, and by ``build_runtime`` when no data plane is given) and the parts every
backend shares: key exchange methods (none, or a group the engine computes) and ESN.
The kernel's is :func:`ikegate.dataplane.xfrm.kernel.kernel_esp_supported`.
"""

from __future__ import annotations

from ikegate.crypto.transforms import is_supported as engine_supported
from ikegate.esp.algorithms import ENCRYPTION, INTEGRITY
from ikegate.wire.constants import DhId, EsnId, TransformType

__all__ = ["common_esp_supported", "userspace_esp_supported"]


def common_esp_supported(ttype: int, alg: int) -> bool | None:
    """The answer for the transform types that do not depend on the backend (key
    exchange: none or a group the engine computes; ESN: both values), None for the
    others (encryption, integrity), which the backend decides."""
    if ttype == TransformType.DH:
        return alg == DhId.NONE or engine_supported(ttype, alg, 0)
    if ttype == TransformType.ESN:
        return alg in (EsnId.NO_EXT_SEQ, EsnId.EXT_SEQ)
    if ttype in (TransformType.ENCR, TransformType.INTEG):
        return None
    return False


def userspace_esp_supported(ttype: int, alg: int, bits: int) -> bool:
    """What the userspace ESP code (:mod:`ikegate.esp`) can carry."""
    common = common_esp_supported(ttype, alg)
    if common is not None:
        return common
    if ttype == TransformType.ENCR:
        algorithm = ENCRYPTION.get(alg)
        return algorithm is not None and (bits in algorithm.key_bits or (algorithm.fixed_key and bits == 0))
    return alg in INTEGRITY
