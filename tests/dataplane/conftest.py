"""Fixtures of the data-plane tests: skip what needs root, namespaces or /dev/net/tun.

Namespace tests are marked ``netns``; they create their namespaces through
``tests/interop/netns.py`` (names ``ikg-<token>-<role>``), delete them in finalizers,
and the interop sweep removes leftovers of crashed runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The end-to-end tests reuse the interop harness's fixtures (topology, seed, strongSwan
# client, ikegate launcher) as they are.
from interop.conftest import (  # noqa: F401  (fixtures)
    ikegate_gateway,
    seed_setup,
    strongswan_client_factory,
    topology,
    topology_factory,
)
from interop.conftest import environment_problem as interop_problem

HERE = Path(__file__).resolve().parent
NETNS_MODULES = ("test_standalone", "test_end_to_end", "test_gro_kernel")


def netns_problem() -> str | None:
    """Why the namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, TUN, raw sockets)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = netns_problem()
    e2e_reason = reason or interop_problem()
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.parent == HERE and path.stem in NETNS_MODULES:
            item.add_marker(pytest.mark.netns)
            why = e2e_reason if path.stem == "test_end_to_end" else reason
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session", autouse=True)
def _sweep_leftovers():
    """Remove namespaces of earlier crashed runs (only those whose owner is gone)."""
    if netns_problem() is None:
        from interop.netns import sweep

        sweep()
    yield
    if netns_problem() is None:
        from interop.netns import sweep

        sweep()
