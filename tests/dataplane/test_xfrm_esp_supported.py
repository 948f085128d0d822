"""Which ESP algorithms each data plane offers (``esp_supported`` of the backends) and
that ``build_runtime`` filters a conn's ``esp=`` by the backend it is given.

The kernel backend carries what :mod:`ikegate.dataplane.xfrm.kernel` maps to kernel
algorithm names and the engine can key (AES-XCBC-96 among them, which the userspace ESP
code lacks); the userspace and recording backends what :mod:`ikegate.esp` implements.
That the guest kernel really accepts such an SA and carries traffic through it is shown
end to end in tests/interop/test_kernel_dataplane.py
(``test_kernel_only_esp_proposal_is_offered_with_the_kernel_backend``).
"""

from __future__ import annotations

import logging
import shutil

import pytest

from ikegate.config.loader import load_config
from ikegate.daemon.builder import build_runtime, esp_supported
from ikegate.dataplane.algorithms import userspace_esp_supported
from ikegate.dataplane.recording import RecordingDataPlane
from ikegate.dataplane.userspace import UserspaceDataPlane
from ikegate.dataplane.xfrm.kernel import AEAD_NAMES, CIPHER_NAMES, INTEG_NAMES, KernelDataPlane, kernel_esp_supported
from ikegate.pki.example import write_example
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, TransformType

ENCR, INTEG, DH, ESN, PRF = (TransformType.ENCR, TransformType.INTEG, TransformType.DH, TransformType.ESN,
                             TransformType.PRF)

#: (transform type, id, key bits) -> (kernel, userspace)
EXPECTED = {
    (ENCR, EncrId.AES_CBC, 128): (True, True),
    (ENCR, EncrId.AES_CBC, 192): (True, True),
    (ENCR, EncrId.AES_CBC, 256): (True, True),
    (ENCR, EncrId.AES_CBC, 0): (False, False),  # AES needs its Key Length attribute
    (ENCR, EncrId.AES_CBC, 512): (False, False),
    (ENCR, EncrId.TRIPLE_DES, 0): (True, True),
    (ENCR, EncrId.AES_GCM_16, 128): (True, True),
    (ENCR, EncrId.AES_GCM_8, 256): (True, True),
    (ENCR, EncrId.CHACHA20_POLY1305, 0): (True, True),
    (ENCR, EncrId.AES_CTR, 128): (False, False),  # keyed by the engine, mapped by neither backend
    (ENCR, EncrId.AES_CCM_16, 128): (False, False),
    (ENCR, EncrId.NULL, 0): (False, False),  # a kernel name, but the engine derives no keys for it
    (INTEG, IntegId.AES_XCBC_96, 0): (True, False),  # the kernel's xcbc(aes); no userspace code
    (INTEG, IntegId.HMAC_SHA2_256_128, 0): (True, True),
    (INTEG, IntegId.HMAC_SHA1_96, 0): (True, True),
    (INTEG, IntegId.HMAC_MD5_96, 0): (True, True),
    (INTEG, IntegId.AES_CMAC_96, 0): (False, False),
    (INTEG, IntegId.NONE, 0): (False, False),  # AEAD proposals simply lose it (filter_supported)
    (DH, DhId.NONE, 0): (True, True),
    (DH, DhId.MODP_2048, 0): (True, True),
    (DH, DhId.ECP_256, 0): (True, True),
    (DH, 0xFFFF, 0): (False, False),
    (ESN, EsnId.NO_EXT_SEQ, 0): (True, True),
    (ESN, EsnId.EXT_SEQ, 0): (True, True),
    (ESN, 7, 0): (False, False),
    (PRF, 2, 0): (False, False),  # no PRF in ESP
}


@pytest.mark.parametrize("transform", sorted(EXPECTED), ids=lambda t: f"{t[0].name}-{t[1]}-{t[2]}")
def test_each_backend_predicate(transform):
    kernel, userspace = EXPECTED[transform]
    assert kernel_esp_supported(*transform) is kernel
    assert KernelDataPlane().esp_supported(*transform) is kernel
    assert userspace_esp_supported(*transform) is userspace
    assert UserspaceDataPlane().esp_supported(*transform) is userspace
    assert RecordingDataPlane().esp_supported(*transform) is userspace  # "none": as userspace
    assert esp_supported(*transform) is userspace  # build_runtime's default, unchanged


def test_the_kernel_predicate_covers_exactly_what_kernel_py_maps():
    """Every cipher/integrity algorithm the kernel backend accepts has a kernel name, and
    every mapped one the engine can key is accepted (ENCR_NULL is the one it cannot)."""
    encr = {e for e in EncrId if any(kernel_esp_supported(ENCR, e, b) for b in (0, 128, 192, 256))}
    assert encr == (set(AEAD_NAMES) | set(CIPHER_NAMES)) - {EncrId.NULL}
    integ = {i for i in IntegId if kernel_esp_supported(INTEG, i, 0)}
    assert integ == set(INTEG_NAMES)


@pytest.fixture(scope="module")
def xcbc_confdir(tmp_path_factory):
    """The seed configuration with ``esp=aes128-aesxcbc!``: a proposal only the kernel carries."""
    layout = write_example(tmp_path_factory.mktemp("seed"), users={}, ntlm_users=())
    confdir = tmp_path_factory.mktemp("xcbc") / "conf"
    shutil.copytree(layout.directory, confdir)
    conf = (confdir / "ipsec.conf").read_text()
    assert "esp=aes256-aes192-aes128-sha384-sha256-sha1!" in conf
    (confdir / "ipsec.conf").write_text(conf.replace("esp=aes256-aes192-aes128-sha384-sha256-sha1!",
                                                     "esp=aes128-aesxcbc!"))
    return confdir


def _esp_text(runtime) -> list[str]:
    (conn,) = runtime.conns
    return [str(p) for p in conn.esp]


def test_build_runtime_filters_esp_by_the_backend(xcbc_confdir, caplog):
    config, diagnostics = load_config(xcbc_confdir)
    assert not diagnostics.errors, diagnostics
    caplog.set_level(logging.INFO, logger="ikegate")
    # default (other callers) and userspace: nothing of the proposal is left
    assert _esp_text(build_runtime(config, xcbc_confdir)) == []
    assert "esp= algorithms not available here, not offered: AES_XCBC_96" in caplog.text
    assert _esp_text(build_runtime(config, xcbc_confdir, dataplane=UserspaceDataPlane())) == []
    assert _esp_text(build_runtime(config, xcbc_confdir, dataplane=RecordingDataPlane())) == []
    caplog.clear()
    # the kernel backend carries it: offered as configured
    (proposal,) = build_runtime(config, xcbc_confdir, dataplane=KernelDataPlane()).conns[0].esp
    assert proposal.encr == ((EncrId.AES_CBC, 128),) and proposal.integ == (IntegId.AES_XCBC_96,)
    assert "not offered" not in caplog.text


def test_build_runtime_names_the_kernel_backend_for_what_it_lacks(tmp_path, caplog):
    layout = write_example(tmp_path / "seed", users={}, ntlm_users=())
    conf = (layout.directory / "ipsec.conf").read_text()
    (layout.directory / "ipsec.conf").write_text(conf.replace("esp=aes256-aes192-aes128-sha384-sha256-sha1!",
                                                              "esp=aes128ctr-sha256,aes128-sha256!"))
    config, _ = load_config(layout.directory)
    caplog.set_level(logging.INFO, logger="ikegate")
    (proposal,) = build_runtime(config, layout.directory, dataplane=KernelDataPlane()).conns[0].esp
    assert proposal.encr == ((EncrId.AES_CBC, 128),)
    assert "esp= algorithms not available with the kernel data plane, not offered: AES_CTR" in caplog.text
