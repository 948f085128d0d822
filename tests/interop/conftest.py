"""Fixtures of the end-to-end tests: namespaces, strongSwan clients and servers, ikegate.

Every test in this folder is marked ``netns`` and skipped, with the reason, when not
run as root or when the strongSwan packages are missing (CI installs them, so there
they run).  Namespaces are deleted by fixture finalizers, and leftovers of earlier
crashed runs (``ikg-*`` whose owning process is gone) are swept at the start and end
of the session.  When a test fails, the tail of each daemon's log is printed in the
test's report.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import pytest

from .gateway import IkegateGateway, ikegate_daemon_missing
from .netns import Host, Namespace, Topology, sweep
from .seed import SeedSetup, server_from_confdir, write_seed
from .strongswan import StrongSwanClient, StrongSwanServer, strongswan_missing

HERE = Path(__file__).resolve().parent


def environment_problem() -> str | None:
    """Why these tests cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "end-to-end tests need root (network namespaces, mounts)"
    if not Path("/dev/net/tun").exists():
        return "end-to-end tests need /dev/net/tun (strongSwan kernel-libipsec)"
    if shutil.which("dumpcap") is None or shutil.which("tshark") is None:
        return "end-to-end tests need tshark/dumpcap (Debian package tshark)"
    return strongswan_missing()


def pytest_collection_modifyitems(config, items):
    reason = environment_problem()
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.netns)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionfinish(session, exitstatus):
    if os.geteuid() == 0 and shutil.which("ip"):
        sweep()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_interop_rep_{rep.when}", rep)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, f"_interop_rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


def _stop_all(request, daemons: list, heading: Callable[[object], str]) -> None:
    """Stop ``daemons`` (at teardown); if the test failed, print the tail of each one's
    log under ``heading(daemon)``."""
    failed = _failed(request)
    for daemon in daemons:
        daemon.stop()
        if failed:
            print(f"\n===== {heading(daemon)} (tail) =====\n{daemon.log_text()[-6000:]}", file=sys.stderr)


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_namespaces():
    if environment_problem() is None:
        sweep()
    yield


def _ns_of(where: Host | Namespace) -> Namespace:
    return where.ns if isinstance(where, Host) else where


@pytest.fixture
def topology_factory() -> Callable[..., Topology]:
    """``make(n_clients=1, inner=False, addrs_per_client=1) -> Topology`` (built);
    all are destroyed at teardown, also when the test failed."""
    made: list[Topology] = []

    def make(n_clients: int = 1, *, inner: bool = False, addrs_per_client: int = 1) -> Topology:
        topo = Topology(n_clients, inner=inner, addrs_per_client=addrs_per_client)
        made.append(topo)
        return topo.build()

    yield make
    for topo in reversed(made):
        topo.destroy()


@pytest.fixture
def topology(topology_factory) -> Topology:
    """A gateway, one client and an inner host behind the gateway."""
    return topology_factory(1, inner=True)


@pytest.fixture(scope="session")
def seed_setup(tmp_path_factory) -> SeedSetup:
    """The seed configuration directory with a demo PKI (see :mod:`.seed`)."""
    return write_seed(tmp_path_factory.mktemp("seed"))


@pytest.fixture
def strongswan_client_factory(request, tmp_path, seed_setup):
    """``make(where, remote_addrs=..., *, ca_certs=None, start=True, **kw) -> StrongSwanClient``.

    ``where`` is a topology Host or a Namespace; ``kw`` are :class:`StrongSwanClient`
    / :class:`ClientConn` keywords; the seed's root CA is trusted unless ``ca_certs``
    is given.  Clients are stopped at teardown."""
    made: list[StrongSwanClient] = []

    def make(where, remote_addrs: str | None = None, *, ca_certs=None, start: bool = True,
             **kwargs) -> StrongSwanClient:
        if remote_addrs is not None:
            kwargs["remote_addrs"] = remote_addrs
        certs = [seed_setup.root_cert] if ca_certs is None else list(ca_certs)
        client = StrongSwanClient(_ns_of(where), tmp_path / f"client{len(made) + 1}", ca_certs=certs, **kwargs)
        made.append(client)
        return client.start() if start else client

    yield make
    _stop_all(request, made, lambda client: f"{client.workdir.name} charon.log")


@pytest.fixture
def strongswan_server_factory(request, tmp_path, seed_setup):
    """``make(where, *, confdir=None, ipsec_conf=None, start=True, **kw) -> StrongSwanServer``:
    strongSwan's starter serving ``confdir`` (default: the seed directory).  Stopped at
    teardown."""
    made: list[StrongSwanServer] = []

    def make(where, *, confdir: Path | None = None, ipsec_conf: str | None = None, start: bool = True,
             **kwargs) -> StrongSwanServer:
        server = server_from_confdir(_ns_of(where), tmp_path / f"server{len(made) + 1}",
                                     confdir or seed_setup.confdir, ipsec_conf=ipsec_conf, **kwargs)
        made.append(server)
        return server.start() if start else server

    yield make
    _stop_all(request, made, lambda server: f"{server.workdir.name} charon.log")


@pytest.fixture
def ikegate_gateway(request, tmp_path):
    """``start(where, confdir, extra_args=()) -> IkegateGateway``: ikegate as the gateway
    daemon in a namespace, ready once UDP 500 is bound there.  Skips the test (with the
    reason) while ``ikegate.daemon.main`` does not exist."""
    reason = ikegate_daemon_missing()
    if reason:
        pytest.skip(reason)
    made: list[IkegateGateway] = []

    def start(where, confdir: Path, extra_args=(), *, timeout: float = 20.0) -> IkegateGateway:
        gw = IkegateGateway(_ns_of(where), confdir, tmp_path / f"ikegate{len(made) + 1}", extra_args)
        made.append(gw)
        return gw.start(timeout=timeout)

    yield start
    _stop_all(request, made, lambda gw: f"{gw.run_dir.name} output")
