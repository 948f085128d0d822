"""Android: a ``.sswan`` profile for the strongSwan VPN Client app.

The format is the app's JSON profile (docs.strongswan.org, os/androidVpnClientProfiles;
read by the app's VpnProfileImportActivity.parseProfile): ``uuid``, ``name``, ``type``
``ikev2-eap`` (user name and password, EAP), ``remote.addr`` (what the app connects
to), ``remote.id`` (the server identity: set, so the app sends it as IDr and checks
the certificate against it instead of against the address), ``remote.cert`` (the CA,
base64 DER, only when private: the app trusts Android's roots otherwise),
``local.eap_id`` (the user), ``ike-proposal`` / ``esp-proposal`` (one strongSwan
proposal each: the conn proposal with the strongest suite, algorithms strongest
first).  A password (``local.shared_secret``) is written only when given; app versions
before its 2025 support for it ignore it and ask.

The profile's UUID is derived from conn, server and user (UUID version 5), so
importing a newer profile for the same user replaces the old one.
"""

from __future__ import annotations

import base64
import json
import uuid

from ikegate.profiles.common import ConnProfile

EXTENSION = ".sswan"
MEDIA_TYPE = "application/vnd.strongswan.profile"

_NAMESPACE = uuid.UUID("0b6f3e0e-1d7e-4c1e-9a3f-52f1c6d8e7a4")


def build(profile: ConnProfile, password: str | None = None) -> bytes:
    """The .sswan JSON document (UTF-8)."""
    ike, esp = profile.strongswan_proposals()
    remote: dict[str, object] = {"addr": profile.server}
    if profile.remote_id is not None:
        remote["id"] = profile.remote_id
    if profile.ca_private:
        remote["cert"] = base64.b64encode(profile.ca_der()).decode("ascii")
    document: dict[str, object] = {
        "uuid": str(uuid.uuid5(_NAMESPACE, "\0".join((profile.conn.name, profile.server, profile.user or "")))),
        "name": profile.name,
        "type": "ikev2-eap",
        "remote": remote,
    }
    local: dict[str, object] = {}
    if profile.user is not None:
        local["eap_id"] = profile.user
    if password is not None:
        local["shared_secret"] = password
    if local:
        document["local"] = local
    document["ike-proposal"] = ike
    document["esp-proposal"] = esp
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
