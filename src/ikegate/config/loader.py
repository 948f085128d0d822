"""Loading a whole configuration directory (``/etc`` by default), as strongSwan would.

``load_config(confdir)`` reads:

* ``ipsec.conf`` (required): a syntax error, an ``also=`` problem or an error in
  ``config setup`` rejects the configuration (:class:`ConfigLoadError`), as the
  starter refuses to start; a bad conn (or ca) is dropped and reported, the others load;
* ``ipsec.secrets`` (optional, with a warning when missing): keys relative to
  ``ipsec.d/private``;
* ``ipsec.d/cacerts``: only listed here (:attr:`Config.cacert_files`); the PKI layer
  (``ikegate.pki.store.CertStore.load_cacerts``) loads them;
* ``strongswan.conf`` (optional): settings with strongSwan's defaults.

It returns the :class:`~ikegate.config.model.Config` and the
:class:`~ikegate.config.errors.Diagnostics` (errors of dropped conns, secrets lines,
key files; warnings).  Callers decide what errors mean for them: ``ikegate config
check`` exits 1 on any error; a daemon may serve the conns that loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from ikegate.config.conn import IsLocal, build_ca, build_conn, build_setup
from ikegate.config.errors import ConfigError, ConfigLoadError, Diagnostics
from ikegate.config.ipsecconf import parse_ipsec_conf
from ikegate.config.model import Config, Conn
from ikegate.config.proposals import unsupported_algorithms
from ikegate.config.secrets import Secrets, load_secrets
from ikegate.config.strongswan_conf import StrongswanConf, load_strongswan_conf

__all__ = ["load_config", "ConfigLoadError"]


def load_config(confdir: str | os.PathLike = "/etc", *, is_local: IsLocal | None = None) -> tuple[Config, Diagnostics]:
    """Load ``confdir``'s ipsec.conf, ipsec.secrets, ipsec.d/cacerts and strongswan.conf.

    ``is_local(address)`` tells whether an IP address belongs to this machine; with it,
    a conn whose ``right=`` is local has its ends swapped (strongSwan's swap_ends).
    Raises :class:`ConfigLoadError` when ipsec.conf itself is rejected.
    """
    confdir = Path(confdir)
    diagnostics = Diagnostics()

    settings = StrongswanConf()
    settings_path = confdir / "strongswan.conf"
    if settings_path.is_file():
        try:
            settings = load_strongswan_conf(settings_path, diagnostics)
        except ConfigError as exc:
            diagnostics.add_error(exc, "strongswan.conf (defaults are used)")
        else:
            settings.check(diagnostics, str(settings_path))
    if not settings.get_bool("charon.plugins.stroke.allow_swap"):
        is_local = None

    conf_path = confdir / "ipsec.conf"
    if not conf_path.is_file():
        diagnostics.error(str(conf_path), 0, 0, "file not found" if not conf_path.exists() else "not a file")
        raise ConfigLoadError(diagnostics)
    try:
        parsed = parse_ipsec_conf(conf_path, diagnostics)
    except ConfigError as exc:
        diagnostics.add_error(exc, "ipsec.conf rejected")
        raise ConfigLoadError(diagnostics) from None

    setup, setup_errors = build_setup(parsed.setup, diagnostics)
    ca_sections = tuple(
        ca for ca in (build_ca(section, confdir, diagnostics) for section in parsed.cas) if ca is not None
    )
    conns = tuple(
        conn
        for conn in (build_conn(section, confdir, diagnostics, is_local) for section in parsed.conns)
        if conn is not None
    )
    if setup_errors:
        diagnostics.error(parsed.setup.path, parsed.setup.line, parsed.setup.column,
                          f"config setup has {setup_errors} error(s): the configuration is rejected "
                          "(strongSwan's starter refuses to start)", "config setup")
        raise ConfigLoadError(diagnostics)

    secrets = Secrets()
    secrets_path = confdir / "ipsec.secrets"
    if secrets_path.exists():
        secrets = load_secrets(secrets_path, confdir / "ipsec.d" / "private", diagnostics)
    else:
        diagnostics.warning(str(secrets_path), 0, 0, "file not found: no private keys and no user secrets")

    cacerts_dir = confdir / "ipsec.d" / "cacerts"
    cacert_files: tuple[Path, ...] = ()
    if cacerts_dir.is_dir():
        cacert_files = tuple(sorted(p for p in cacerts_dir.iterdir() if p.is_file()))

    config = Config(
        setup=setup,
        conns=conns,
        ca_sections=ca_sections,
        confdir=confdir,
        secrets=secrets,
        settings=settings,
        cacert_files=cacert_files,
    )
    _cross_checks(config, diagnostics)
    return config, diagnostics


def _cross_checks(config: Config, diagnostics: Diagnostics) -> None:
    """Warnings about things that will fail at run time although each file is fine."""
    if not config.loaded_conns:
        diagnostics.warning(str(config.confdir / "ipsec.conf"), 0, 0,
                            "no conn is loaded (none has auto=add): no client can connect")
    try:
        from ikegate.crypto.transforms import is_supported
    except ImportError:  # pragma: no cover - the crypto layer is part of the project
        is_supported = None
    for conn in config.loaded_conns:
        path, line = conn.source
        context = f"conn '{conn.name}'"
        if conn.local.auth.method == "pubkey" and conn.local.cert_object is not None:
            if not any(_key_matches(conn.local.cert_object, key) for key in config.secrets.private_keys):
                diagnostics.warning(path, line, 1, f"conn '{conn.name}': no private key in ipsec.secrets "
                                    f"matches the certificate {conn.local.cert}", context)
        if conn.remote.auth.method == "eap" and not conn.remote.auth.radius:
            if not any(e.shared_class in ("EAP", "NTLM") for e in config.secrets.entries):
                diagnostics.warning(path, line, 1, f"conn '{conn.name}': EAP authentication but no EAP or "
                                    "NTLM secrets in ipsec.secrets", context)
        if is_supported is not None:
            for name, text, proposals in (("ike", conn.ike_text, conn.ike), ("esp", conn.esp_text, conn.esp)):
                if text is None:
                    continue
                configured = proposals if text.endswith("!") else proposals[: len(text.split(","))]
                missing = unsupported_algorithms(configured, is_supported)
                if missing:
                    diagnostics.warning(path, line, 1, f"conn '{conn.name}': {name}= has algorithms ikegate "
                                        f"cannot use, they are never chosen: {', '.join(missing)}", context)


def _key_matches(cert, key) -> bool:
    try:
        from ikegate.pki.store import private_key_matches
    except ImportError:  # pragma: no cover
        private_key_matches = None
    if private_key_matches is not None:
        try:
            return bool(private_key_matches(cert, key))
        except Exception:
            return False
    from cryptography.hazmat.primitives import serialization

    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)
    except Exception:
        return False


def conn_summary(conn: Conn) -> str:
    """A one-line description of a conn, for logs."""
    return (f"{conn.name}: {','.join(conn.local.hosts)}...{','.join(conn.remote.hosts)} "
            f"{conn.local.auth}/{conn.remote.auth}")
