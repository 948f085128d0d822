"""NetworkManager: a keyfile (``.nmconnection``) for NetworkManager-strongswan.

The ``[vpn]`` section carries the data items charon-nm reads (strongSwan
src/charon-nm/nm/nm_service.c, ``initiate`` and ``add_auth_cfg_pw``):

* ``address`` (gateway), ``method=eap`` with ``user`` (EAP identity, and IKE identity
  since no ``local-identity`` is set), ``virtual=yes`` (request an inner IPv4 and IPv6
  address), ``encap=no``, ``ipcomp=no``;
* ``certificate``: a *file path* of the CA on the client, only when the CA is private
  (charon-nm then trusts only that certificate; without it, the system's CA directory);
* ``remote-identity``: the server identity (certificate SAN): charon-nm sends it as IDr
  and checks the certificate against it, instead of against the address;
* ``proposal=yes`` with ``ike`` and ``esp`` (``;``-separated proposals; one here: the
  conn proposal with the strongest suite, algorithms strongest first);
* ``password-flags``: 1 (agent-owned: the desktop keyring asks and keeps it) unless a
  password is given, which is then stored in ``[vpn-secrets]`` with flags 0.

The file must be owned by root with mode 0600 in /etc/NetworkManager/system-connections/
(``nmcli connection reload`` picks it up).  Values are written in GKeyFile syntax
(``key=value``; backslash, line breaks and leading blanks escaped).
"""

from __future__ import annotations

import uuid

from ikegate.profiles.common import ConnProfile, ProfileError

EXTENSION = ".nmconnection"
SERVICE_TYPE = "org.freedesktop.NetworkManager.strongswan"

_NAMESPACE = uuid.UUID("5d0a9f3b-8c2e-4f61-b7d4-1a9e3c6f2b80")


def keyfile_escape(value: str) -> str:
    """A GKeyFile value: backslash, newline, tab, carriage return and a leading blank escaped."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if out.startswith(" "):
        out = "\\s" + out[1:]
    return out


def build(profile: ConnProfile, ca_path: str | None = None, password: str | None = None) -> bytes:
    """The keyfile.  ``ca_path`` is where the CA will be on the client; required when the
    CA is private."""
    if profile.user is None:
        raise ProfileError("NetworkManager profiles need --user: charon-nm uses it as EAP identity")
    if profile.ca_private and not ca_path:
        raise ProfileError("the CA is private: NetworkManager needs the path of the CA file on the client")
    ike, esp = profile.strongswan_proposals()
    vpn = {
        "service-type": SERVICE_TYPE,
        "address": profile.server,
        "method": "eap",
        "user": profile.user,
        "virtual": "yes",
        "encap": "no",
        "ipcomp": "no",
        "proposal": "yes",
        "ike": ike,
        "esp": esp,
        "password-flags": "0" if password is not None else "1",
    }
    if profile.remote_id is not None:
        vpn["remote-identity"] = profile.remote_id
    if profile.ca_private:
        vpn["certificate"] = ca_path
    sections: list[tuple[str, dict[str, str]]] = [
        ("connection", {
            "id": profile.name,
            "uuid": str(uuid.uuid5(_NAMESPACE, "\0".join((profile.conn.name, profile.server, profile.user)))),
            "type": "vpn",
            "autoconnect": "false",
        }),
        ("vpn", vpn),
    ]
    if password is not None:
        sections.append(("vpn-secrets", {"password": password}))
    sections.append(("ipv4", {"method": "auto"}))
    sections.append(("ipv6", {"method": "auto" if profile.ipv6 else "ignore"}))
    lines = [f"# ikegate profile for NetworkManager-strongswan: conn '{profile.conn.name}', "
             f"server {profile.server}"]
    for title, items in sections:
        lines.append(f"\n[{title}]")
        lines += [f"{key}={keyfile_escape(value)}" for key, value in items.items()]
    return ("\n".join(lines) + "\n").encode("utf-8")
