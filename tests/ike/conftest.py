"""Fixtures: the seed configuration (``ikegate example``'s layout, made once per run),
variants of it, and a :class:`~tests.ike.harness.Network` around a fresh runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509

from ikegate.config.loader import load_config
from ikegate.daemon.builder import build_runtime
from ikegate.pki.example import write_example

from .harness import Network

SEED_DNS = ["198.51.100.53", "198.51.100.54", "2001:db8:8000::53:1", "2001:db8:8000::53:2"]


@pytest.fixture(scope="session")
def seed_layout(tmp_path_factory):
    """The seed's configuration directory with a demo PKI, written once."""
    return write_example(tmp_path_factory.mktemp("seed"), users={"user3": "password3"}, ntlm_users=())


@pytest.fixture
def make_network(seed_layout, tmp_path):
    """``make_network(edits={old: new}, users={name: password}, secret_lines=[...],
    uniqueids=..., **settings)``: a Network serving the seed configuration with
    ``ipsec.conf`` text replaced (each ``old`` must occur), extra EAP users and
    ipsec.secrets lines, and strongswan.conf-style settings
    (:class:`ikegate.ike.runtime.Settings` fields) changed."""
    counter = iter(range(1000))

    def make(*, edits: dict[str, str] | None = None, users: dict[str, str] | None = None,
             secret_lines: list[str] = (), uniqueids: str | None = None, **settings) -> Network:
        changes = dict(edits or {})
        if uniqueids is not None:
            changes["uniqueids=no"] = f"uniqueids={uniqueids}"
        confdir = Path(seed_layout.directory)
        if changes or users or secret_lines:
            confdir = tmp_path / f"conf{next(counter)}"
            shutil.copytree(seed_layout.directory, confdir)
            conf = (confdir / "ipsec.conf").read_text()
            for old, new in changes.items():
                assert old in conf, f"{old!r} is not in the seed's ipsec.conf"
                conf = conf.replace(old, new)
            (confdir / "ipsec.conf").write_text(conf)
            with open(confdir / "ipsec.d" / "secrets" / "myvpn", "a") as f:
                f.writelines(f'{name} : EAP "{password}"\n' for name, password in (users or {}).items())
                f.writelines(f"{line}\n" for line in secret_lines)
        config, diagnostics = load_config(confdir)
        assert not diagnostics.errors, diagnostics
        runtime = build_runtime(config, confdir)
        for name, value in settings.items():
            assert hasattr(runtime.settings, name), name
            setattr(runtime.settings, name, value)
        root = x509.load_pem_x509_certificate(Path(seed_layout.root_cert).read_bytes())
        return Network(runtime, {**seed_layout.users, **(users or {})}, trusted=[root])

    return make


@pytest.fixture
def net(make_network) -> Network:
    """The seed configuration, unchanged."""
    return make_network()


@pytest.fixture
def root_cert(seed_layout) -> Path:
    return Path(seed_layout.root_cert)
