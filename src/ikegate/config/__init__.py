"""The configuration layer: strongSwan's ipsec.conf, ipsec.secrets and strongswan.conf.

* :mod:`~ikegate.config.ipsecconf` -- the ipsec.conf lexer/parser (sections, include, also=)
* :mod:`~ikegate.config.keywords` -- the keyword table and value syntax
* :mod:`~ikegate.config.conn` -- sections to the typed :mod:`~ikegate.config.model`
* :mod:`~ikegate.config.proposals` -- ``ike=``/``esp=`` expansion and strongSwan's defaults
* :mod:`~ikegate.config.secrets` -- ipsec.secrets and the secret lookups
* :mod:`~ikegate.config.strongswan_conf` -- strongswan.conf and its typed getters
* :mod:`~ikegate.config.loader` -- :func:`load_config` for a whole configuration directory
* :mod:`~ikegate.config.check` -- the ``ikegate config check`` command
* :mod:`~ikegate.config.errors` -- errors and warnings with ``path:line:column``
"""

from __future__ import annotations


def __getattr__(name: str):
    # `from ikegate.config import load_config` without importing everything eagerly
    if name in ("load_config", "ConfigLoadError"):
        from ikegate.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'ikegate.config' has no attribute {name!r}")
