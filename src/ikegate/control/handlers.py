"""What each control command does inside the running gateway.

Each handler takes the daemon and the request (a dict) and returns the JSON reply:
``{"ok": true, ...}`` or ``{"ok": false, "error": "...", ...}``.  Handlers run on the
event loop's thread, between packets, so they see and change the engine consistently;
whatever the engine emits (Deletes, CHILD SA events) goes out through the daemon.
"""

from __future__ import annotations

import socket
import time

from ikegate.ike.sa import CONNECTING, DELETING, ESTABLISHED
from ikegate.radius.client import SERVER_COUNTERS


def status(daemon, request: dict) -> dict:
    """Established and connecting IKE SAs with their CHILD SAs and traffic counters."""
    return {"ok": True, "sas": _sas(daemon, (CONNECTING, ESTABLISHED))}


def statusall(daemon, request: dict) -> dict:
    """``ipsec statusall``: listening sockets, conns, pools with their use, RADIUS (servers,
    accounting, DAE), every SA."""
    now = daemon.loop.time()
    listening = [
        {"family": "IPv6" if s.family == socket.AF_INET6 else "IPv4", "port": s.local_port,
         "natt": s.natt}
        for s in daemon.sockets
    ]  # fmt: skip
    conns = []
    for conn in daemon.runtime.conns:
        creds = daemon.runtime.credentials_for(conn)
        conns.append({
            "name": conn.name,
            "local": {"hosts": list(conn.local.hosts), "id": str(conn.local.id) if conn.local.id else None,
                      "auth": str(conn.local.auth),
                      "cert": creds.cert.subject.rfc4514_string() if creds is not None else None,
                      "subnets": [str(s) for s in conn.local.subnets]},
            "remote": {"hosts": list(conn.remote.hosts), "id": str(conn.remote.id) if conn.remote.id else None,
                       "auth": str(conn.remote.auth), "sourceip": list(conn.remote.sourceip)},
            "ike": [str(p) for p in conn.ike],
            "esp": [str(p) for p in conn.esp],
        })  # fmt: skip
    stats = getattr(daemon.dataplane, "stats", None)
    return {
        "ok": True,
        "uptime": round(now - daemon.started_at, 1),
        "confdir": str(daemon.confdir),
        "listening": listening,
        "conns": conns,
        "pools": _pools(daemon, with_leases=False),
        "sas": _sas(daemon, (CONNECTING, ESTABLISHED, DELETING)),
        "dataplane": daemon.dataplane.name,
        "dataplane_description": getattr(daemon.dataplane, "description", daemon.dataplane.name),
        "dataplane_stats": stats() if stats is not None else {},
        "gateway_stats": dict(daemon.gateway.stats),
        "radius": _radius(daemon, now),
    }


def leases(daemon, request: dict) -> dict:
    """Every pool with every lease, online and offline."""
    return {"ok": True, "pools": _pools(daemon, with_leases=True)}


def kill(daemon, request: dict) -> dict:
    """Delete the IKE SAs an SA id, user name, virtual IP or peer address names."""
    target = request.get("target")
    if not isinstance(target, str) or not target.strip():
        return {"ok": False, "error": "kill needs a target: an SA id, a user name, a virtual IP or a peer address"}
    gw = daemon.gateway
    sas = gw.find(target)
    if not sas:
        return {"ok": False, "error": f"no IKE SA matches '{target}'", "killed": []}
    killed = [{"id": sa.unique_id, "conn": sa.name, "remote": sa.remote.host,
               "user": sa.eap_id or (str(sa.remote_id) if sa.remote_id else None)} for sa in sas]
    daemon.process(gw.kill(sas, "deleted by the administrator (ikegate kill)", daemon.loop.time()))
    return {"ok": True, "killed": killed}


def reload_secrets(daemon, request: dict) -> dict:
    return daemon.reload_secrets()


def reload(daemon, request: dict) -> dict:
    return daemon.reload_config()


COMMANDS = {
    "status": status,
    "statusall": statusall,
    "leases": leases,
    "kill": kill,
    "reload-secrets": reload_secrets,
    "reload": reload,
}


# -- helpers -----------------------------------------------------------------------------------


def _sas(daemon, states) -> list[dict]:
    sas = daemon.gateway.status(daemon.loop.time(), states=states)
    _add_radius(daemon, sas)
    counters = getattr(daemon.dataplane, "counters", None)
    if counters is not None:
        for sa in sas:
            for child in sa["children"]:
                c = counters(int(child["spi_in"], 16))
                if c is not None:
                    child.update(bytes_in=c.bytes_in, bytes_out=c.bytes_out, packets_in=c.packets_in,
                                 packets_out=c.packets_out)
    return sas


def _add_radius(daemon, sas: list[dict]) -> None:
    """``radius`` of each SA authenticated through RADIUS: its Acct-Session-Id and the
    server that accepted it (None for the others)."""
    by_id = {sa.unique_id: sa for sa in daemon.gateway.sas.values()}
    edge = getattr(daemon, "radius", None)
    accounting = edge.accounting if edge is not None else None
    for entry in sas:
        sa = by_id.get(entry["id"])
        attrs = getattr(sa, "radius_attrs", None)
        if attrs is None:
            entry["radius"] = None
            continue
        session = getattr(sa, "session_id", "") or (
            accounting.session_of(sa.unique_id) if accounting is not None else None)
        entry["radius"] = {"session_id": session or None, "server": getattr(attrs, "server", "") or None}


def _radius(daemon, now: float) -> dict | None:
    """The eap-radius part of statusall (None when no RADIUS server or DAE is configured):
    each server with its reachability (shared by authentication and accounting, as
    strongSwan), the requests in flight and counted for each use, accounting on/off with
    its interval, and where DAE listens.  Times are Unix times."""
    settings = getattr(daemon, "radius_settings", None)
    edge = getattr(daemon, "radius", None)
    if settings is None or (not settings.servers and edge is None):
        return None
    to_wall = time.time() - now  # the loop's clock -> Unix time
    clients = {"auth": getattr(daemon.gateway, "radius", None),
               "acct": edge.acct_client if edge is not None else None}
    status = {use: {s["name"]: s for s in client.server_status(now)} if client is not None else {}
              for use, client in clients.items()}
    servers = []
    for server in settings.servers:
        mine = [status[use].get(server.name) for use in ("auth", "acct")]
        known = next((m for m in mine if m is not None), None)
        down_since = known["down_since"] if known is not None else None
        servers.append({
            "name": server.name, "address": server.address, "auth_port": server.auth_port,
            "acct_port": server.acct_port, "preference": server.preference,
            "reachable": known["reachable"] if known is not None else True,
            "down_since": round(down_since + to_wall, 1) if down_since is not None else None,
            **{use: {k: m[k] for k in ("pending", *SERVER_COUNTERS)} if m is not None else None
               for use, m in zip(("auth", "acct"), mine)},
        })  # fmt: skip
    accounting = edge is not None and edge.accounting is not None
    dae = edge.dae_bound if edge is not None and edge.dae is not None else None
    return {
        "servers": servers,
        "accounting": accounting,
        "accounting_interval": settings.accounting_interval if accounting else None,
        "accounting_sessions": len(edge.accounting.sessions) if accounting else 0,
        "dae": {"listen": dae[0], "port": dae[1]} if dae is not None else None,
    }


def _pools(daemon, *, with_leases: bool) -> list[dict]:
    result = []
    for pool in daemon.runtime.pools:
        entry = {"name": pool.name, "first": str(pool.first), "last": str(pool.last), "size": pool.size,
                 "online": pool.online(), "offline": pool.offline()}
        if with_leases:
            entry["leases"] = [
                {"address": str(lease.address), "identity": lease.identity, "online": lease.online}
                for lease in pool.leases()
            ]  # fmt: skip
        result.append(entry)
    return result
