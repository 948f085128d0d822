"""Turning a loaded configuration into the engine's :class:`Runtime` (the file reading
happens here and in the config loader, never in the engine)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ikegate.config.proposals import filter_supported, unsupported_algorithms
from ikegate.crypto.transforms import is_supported as ike_supported
from ikegate.dataplane.algorithms import userspace_esp_supported

from ikegate.ike.runtime import Runtime, ServerCredentials, Settings
from ikegate.log import get_logger
from ikegate.pki.store import CertStore, private_key_matches
from ikegate.pool.mempool import PoolError, PoolSet

log = get_logger("cfg")
SERVING = ("add", "route", "start")


def build_runtime(config, confdir: str | Path, *, pools: PoolSet | None = None, dataplane=None) -> Runtime:
    """The engine's runtime for ``config``.  ``esp=`` proposals are reduced to what
    ``dataplane`` (the backend that will carry the CHILD SAs, e.g. the kernel's, which has
    AES-XCBC-96) can carry, through its ``esp_supported(ttype, alg, bits)``; without one
    (or one lacking the method), to what the userspace ESP code can carry."""
    confdir = Path(confdir)
    esp_check = getattr(dataplane, "esp_supported", None) or esp_supported
    backend = getattr(dataplane, "name", None)
    store = CertStore()
    cacerts = confdir / "ipsec.d" / "cacerts"
    if cacerts.is_dir():
        for warning in store.load_cacerts(cacerts):
            log.info("%s", warning)
    for warning in store.load_crls(confdir / "ipsec.d" / "crls"):
        log.info("%s", warning)
    pools = pools if pools is not None else PoolSet()
    conns = []
    credentials = {}
    private_keys = list(getattr(config.secrets, "private_keys", []) or [])
    for conn in config.conns:
        if getattr(conn, "auto", "add") not in SERVING:
            continue
        for token in getattr(conn.remote, "sourceip", ()) or ():
            if token == "%radius":  # Framed-IP-Address of the Access-Accept (ike/tasks/ike_config.py)
                continue
            if token.startswith("%"):
                log.info("conn '%s': rightsourceip=%s is not an address pool, ignored", conn.name, token)
                continue
            try:
                pools.add(token)
            except PoolError as exc:
                log.info("conn '%s': %s", conn.name, exc)
        cert = getattr(conn.local, "cert_object", None)
        if cert is not None:
            key = next((k for k in private_keys if private_key_matches(cert, k)), None)
            if key is None:
                log.info("conn '%s': no private key found for certificate '%s'", conn.name,
                         cert.subject.rfc4514_string())
            else:
                credentials[conn.name] = ServerCredentials(cert=cert, key=key, store=store)
        conns.append(_runnable(conn, esp_check, backend))
        log.info("added configuration '%s'", conn.name)
    settings = Settings.from_strongswan_conf(config.settings)
    _check_radius(conns, config.settings)
    return Runtime(
        conns=conns,
        setup=config.setup,
        secrets=config.secrets,
        cert_store=store,
        pools=pools,
        settings=settings,
        credentials=credentials,
    )


def _check_radius(conns, conf) -> None:
    """Log the conns with ``rightauth=eap-radius`` that no RADIUS server can serve (none
    configured in ``charon.plugins.eap-radius``: ``server`` or ``servers { }``)."""
    radius_conns = [c.name for c in conns if getattr(getattr(c.remote, "auth", None), "radius", False)]
    if not radius_conns:
        return
    prefix = "charon.plugins.eap-radius"
    if conf is not None and (conf.get_str(f"{prefix}.server") or conf.subsections(f"{prefix}.servers")):
        return
    for name in radius_conns:
        log.info("conn '%s': rightauth=eap-radius but no RADIUS server is configured "
                 "(charon.plugins.eap-radius.servers): its clients will fail authentication", name)


def build_radius(settings) -> tuple:
    """The engine's RADIUS client for ``rightauth=eap-radius`` and its relay options, from
    :class:`ikegate.radius.settings.RadiusSettings` (or a parsed strongswan.conf, from
    which they are read): ``(RadiusClient | None, RelayOptions)``; no client without a
    configured eap-radius server.  For ``Gateway(runtime, now=..., radius=client,
    radius_options=options)`` and ``Gateway.set_radius(client, options)`` on reload."""
    from ikegate.eap.radius_relay import RelayOptions
    from ikegate.radius.settings import RadiusSettings

    if settings is not None and not isinstance(settings, RadiusSettings):
        settings = RadiusSettings.from_strongswan_conf(settings)
    if settings is None:
        return None, RelayOptions()
    client = settings.client()
    if client is not None:
        log.info("eap-radius: %d RADIUS server(s) for authentication: %s", len(settings.servers),
                 ", ".join(f"{s.name} ({s.address}:{s.auth_port})" for s in settings.servers))
    return client, RelayOptions.from_settings(settings)


#: What the userspace ESP data plane can carry: the default of :func:`build_runtime`.
esp_supported = userspace_esp_supported


def _runnable(conn, esp_check=esp_supported, backend: str | None = None):
    """The conn with its proposals reduced to algorithms we implement (IKE) and the data
    plane carries (ESP) -- strongSwan likewise only proposes what its plugins provide --,
    the rest logged once."""
    for kind, check in (("ike", ike_supported), ("esp", esp_check)):
        missing = unsupported_algorithms(getattr(conn, kind), check)
        if missing:
            where = f" with the {backend} data plane" if kind == "esp" and backend not in (None, "none") else " here"
            log.info("conn '%s': %s= algorithms not available%s, not offered: %s",
                     conn.name, kind, where, ", ".join(missing))
    return dataclasses.replace(conn, ike=filter_supported(conn.ike, ike_supported),
                               esp=filter_supported(conn.esp, esp_check))
