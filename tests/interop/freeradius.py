"""A real FreeRADIUS 3.2 (Debian ``freeradius``) in a test namespace, with its own configuration.

:class:`FreeRadius` writes a minimal configuration directory of its own (``radiusd.conf``
and nothing from /etc/freeradius is read; the server's libraries and dictionaries are the
packaged ones) and runs ``freeradius -X -d DIR`` in a namespace:

* ``clients``: the NASes (gateways) by address, each with its shared secret; every
  Access-Request must carry a Message-Authenticator (``require_message_authenticator``);
* ``users``: the ``files`` backend with a ``Cleartext-Password`` per user (what
  EAP-MSCHAPv2 needs); the ``eap`` module has ``default_eap_type = mschapv2`` and no TLS
  sub-module at all, so no certificates are needed; MS-CHAPv2 runs through the ``mschap``
  module (``Auth-Type MS-CHAP``), which returns the MS-MPPE keys;
* accounting goes to the ``detail`` module, one file (:meth:`FreeRadius.detail_records`);
* with ``pool``: ``sqlippool`` over SQLite (a ``radippool`` table in a file of the work
  directory, :meth:`FreeRadius.leases`): post-auth allocates a Framed-IP-Address for every
  Access-Accept, accounting Start/Interim refresh it and Stop releases it.  The packaged
  SQLite queries of 3.2.1 have a syntax error in ``allocate_find`` (a missing ``AND``), so the
  queries are written here.

:func:`radclient` sends any RADIUS packet (e.g. a Disconnect-Request to a gateway's DAE
port) from a namespace with Debian's ``radclient``.  Nothing here touches the host's
FreeRADIUS installation or its service (which stays stopped).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .netns import (FIRST_CLIENT_HOST, OUTER_V4, OUTER_V6, Host, Namespace, NetnsError, Topology,
                    _quiet_ipv6, terminate)

FREERADIUS = "/usr/sbin/freeradius"
RADCLIENT = "/usr/bin/radclient"
LIBDIR = Path("/usr/lib/freeradius")
POOL_NAME = "ikegate"


class FreeRadiusError(RuntimeError):
    """FreeRADIUS did not start, or a radclient exchange failed."""


def freeradius_missing() -> str | None:
    """Why the FreeRADIUS based tests cannot run here, or None."""
    missing = [p for p in (FREERADIUS, RADCLIENT) if not Path(p).exists()]
    missing += [str(LIBDIR / f"{m}.so") for m in ("rlm_eap_mschapv2", "rlm_mschap", "rlm_detail",
                                                     "rlm_sql_sqlite", "rlm_sqlippool")
                if not (LIBDIR / f"{m}.so").exists()]
    if missing:
        return "FreeRADIUS 3.2 (Debian freeradius, freeradius-utils) missing: " + ", ".join(missing)
    return None


def _quote(value: str) -> str:
    """A double-quoted FreeRADIUS string (users file / radclient attribute list)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Lease:
    """One row of the sqlippool table."""

    address: str
    nas: str
    pool_key: str
    username: str
    calling_station: str
    expiry: str
    active: bool  # expiry still in the future


# The sqlippool queries (SQLite dialect) of FreeRADIUS 3.2, with allocate_find's missing AND
# restored.  ${...} and %{...} are expanded by FreeRADIUS.
_IPPOOL_QUERIES = r'''
allocate_begin = "BEGIN EXCLUSIVE"
allocate_commit = "COMMIT"
allocate_existing = "SELECT framedipaddress FROM ${ippool_table} \
    WHERE pool_name = '%{control:${pool_name}}' AND nasipaddress = '%{NAS-IP-Address}' \
    AND pool_key = '${pool_key}' ORDER BY expiry_time DESC LIMIT 1"
allocate_find = "SELECT framedipaddress FROM ${ippool_table} \
    WHERE pool_name = '%{control:${pool_name}}' AND expiry_time < datetime('now') \
    ORDER BY expiry_time, id LIMIT 1"
pool_check = "SELECT id FROM ${ippool_table} WHERE pool_name='%{control:${pool_name}}' LIMIT 1"
allocate_update = "UPDATE ${ippool_table} SET nasipaddress = '%{NAS-IP-Address}', \
    pool_key = '${pool_key}', callingstationid = '%{Calling-Station-Id}', \
    username = '%{User-Name}', \
    expiry_time = datetime(strftime('%%s', 'now') + ${lease_duration}, 'unixepoch') \
    WHERE framedipaddress = '%I'"
start_update = "UPDATE ${ippool_table} \
    SET expiry_time = datetime(strftime('%%s', 'now') + ${lease_duration}, 'unixepoch') \
    WHERE nasipaddress = '%{NAS-IP-Address}' AND username = '%{User-Name}' \
    AND framedipaddress = '%{${attribute_name}}'"
alive_update = "UPDATE ${ippool_table} \
    SET expiry_time = datetime(strftime('%%s', 'now') + ${lease_duration}, 'unixepoch') \
    WHERE nasipaddress = '%{NAS-IP-Address}' AND username = '%{User-Name}' \
    AND framedipaddress = '%{${attribute_name}}'"
stop_clear = "UPDATE ${ippool_table} SET expiry_time = datetime('now', '-1 second') \
    WHERE nasipaddress = '%{NAS-IP-Address}' AND username = '%{User-Name}' \
    AND framedipaddress = '%{${attribute_name}}'"
on_clear = "UPDATE ${ippool_table} SET expiry_time = datetime('now', '-1 second') \
    WHERE nasipaddress = '%{NAS-IP-Address}'"
off_clear = "UPDATE ${ippool_table} SET expiry_time = datetime('now', '-1 second') \
    WHERE nasipaddress = '%{NAS-IP-Address}'"
'''

_POOL_SCHEMA = """
CREATE TABLE radippool (
  id                    INTEGER PRIMARY KEY,
  pool_name             varchar(30) NOT NULL,
  framedipaddress       varchar(15) NOT NULL default '',
  nasipaddress          varchar(15) NOT NULL default '',
  calledstationid       VARCHAR(30) NOT NULL default '',
  callingstationid      VARCHAR(30) NOT NULL default '',
  expiry_time           DATETIME NOT NULL default (DATETIME('now', '-1 second')),
  username              varchar(64) NOT NULL default '',
  pool_key              varchar(30) NOT NULL default ''
);
CREATE INDEX radippool_poolname_expire ON radippool(pool_name, expiry_time);
CREATE INDEX radippool_framedipaddress ON radippool(framedipaddress);
"""


class FreeRadius:
    """``freeradius -X -d WORKDIR/raddb`` in ``ns`` (see the module docstring).

    ``clients`` maps NAS addresses (or networks, ``10.99.0.0/24``) to shared secrets;
    ``users`` maps user names to passwords; ``pool`` lists the addresses of the shared
    sqlippool (none: no sqlippool at all); ``reply`` adds attributes (``Name = value``
    lines) to every Access-Accept."""

    def __init__(self, ns: Namespace, workdir: Path, *, clients: Mapping[str, str],
                 users: Mapping[str, str], pool: Sequence[str] = (), lease_duration: int = 3600,
                 reply: Iterable[str] = (), auth_port: int = 1812, acct_port: int = 1813) -> None:
        self.ns = ns
        self.workdir = Path(workdir)
        self.raddb = self.workdir / "raddb"
        self.clients = dict(clients)
        self.users = dict(users)
        self.pool = list(pool)
        self.lease_duration = lease_duration
        self.reply = list(reply)
        self.auth_port, self.acct_port = auth_port, acct_port
        self.detail_path = self.workdir / "detail"
        self.pool_db = self.workdir / "ippool.sqlite"
        self.log_path = self.workdir / "radiusd.log"
        self.proc: subprocess.Popen | None = None

    # configuration ------------------------------------------------------------------
    def _radiusd_conf(self) -> str:
        d = self.raddb
        with_pool = bool(self.pool)
        clients = "".join(
            f"client nas{i} {{\n    ipaddr = {addr}\n    secret = {_quote(secret)}\n"
            f"    require_message_authenticator = yes\n    nas_type = other\n}}\n"
            for i, (addr, secret) in enumerate(self.clients.items()))
        sql = f"""
    sql {{
        driver = "rlm_sql_sqlite"
        dialect = "sqlite"
        sqlite {{
            filename = "{self.pool_db}"
            busy_timeout = 2000
        }}
        radius_db = "radius"
        read_clients = no
        acct_table1 = "radacct"
        acct_table2 = "radacct"
        postauth_table = "radpostauth"
        authcheck_table = "radcheck"
        groupcheck_table = "radgroupcheck"
        authreply_table = "radreply"
        groupreply_table = "radgroupreply"
        usergroup_table = "radusergroup"
        client_table = "nas"
        group_attribute = "SQL-Group"
        pool {{
            start = 1
            min = 1
            max = 2
            spare = 1
            uses = 0
            retry_delay = 1
            lifetime = 0
            idle_timeout = 0
        }}
    }}
    sqlippool {{
        sql_module_instance = "sql"
        dialect = "sqlite"
        pool_name = "Pool-Name"
        ippool_table = "radippool"
        lease_duration = {self.lease_duration}
        attribute_name = Framed-IP-Address
        req_attribute_name = Framed-IP-Address
        pool_key = "%{{NAS-Port}}"
        $INCLUDE {d}/ippool-queries.conf
    }}
""" if with_pool else ""
        return f"""# written by tests/interop/freeradius.py
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {self.workdir}
raddbdir = {d}
radacctdir = {self.workdir}
name = freeradius
confdir = {d}
modconfdir = {d}/mods-config
run_dir = {self.workdir}
db_dir = {self.workdir}
libdir = {LIBDIR}
pidfile = {self.workdir}/radiusd.pid
max_request_time = 30
cleanup_delay = 2
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    colourise = no
    stripped_names = no
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
proxy_requests = no
{clients}
thread pool {{
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 2
    max_requests_per_server = 0
    auto_limit_acct = no
}}
modules {{
    always reject {{
        rcode = reject
    }}
    always ok {{
        rcode = ok
    }}
    files {{
        filename = {d}/users
    }}
    mschap {{
        use_mppe = yes
        require_encryption = yes
        require_strong = yes
    }}
    eap {{
        default_eap_type = mschapv2
        timer_expire = 60
        ignore_unknown_eap_types = no
        max_sessions = 1024
        mschapv2 {{
            send_error = no
        }}
    }}
    detail {{
        filename = {self.detail_path}
        escape_filenames = no
        permissions = 0600
        header = "%t"
        locking = yes
    }}
{sql}
}}
server ikegate-test {{
    listen {{
        type = auth
        ipaddr = *
        port = {self.auth_port}
    }}
    listen {{
        type = acct
        ipaddr = *
        port = {self.acct_port}
    }}
    authorize {{
        files
        mschap
        eap
    }}
    authenticate {{
        Auth-Type MS-CHAP {{
            mschap
        }}
        eap
    }}
    preacct {{
        ok
    }}
    accounting {{
        detail
        {'sqlippool' if with_pool else ''}
        ok
    }}
    post-auth {{
        {'sqlippool' if with_pool else ''}
        ok
        Post-Auth-Type REJECT {{
            eap
        }}
    }}
}}
"""

    def _users_file(self) -> str:
        reply = [*self.reply]
        lines = []
        for user, password in self.users.items():
            check = f"{_quote(user)} Cleartext-Password := {_quote(password)}"
            if self.pool:
                check += f', Pool-Name := "{POOL_NAME}"'
            lines.append(check + ("\n    " + ",\n    ".join(reply) if reply else "") + "\n")
        return "\n".join(lines)

    def write_config(self) -> None:
        """Write raddb/ (radiusd.conf, users, queries) and, with a pool, the SQLite pool."""
        self.raddb.mkdir(parents=True, exist_ok=True)
        (self.raddb / "mods-config").mkdir(exist_ok=True)
        (self.raddb / "dictionary").write_text("# local dictionary: nothing added\n")
        (self.raddb / "radiusd.conf").write_text(self._radiusd_conf())
        (self.raddb / "users").write_text(self._users_file())
        (self.raddb / "ippool-queries.conf").write_text(_IPPOOL_QUERIES)
        for path in (self.raddb / "radiusd.conf", self.raddb / "users"):
            path.chmod(0o600)
        if self.pool:
            self.pool_db.unlink(missing_ok=True)
            with sqlite3.connect(self.pool_db) as db:
                db.executescript(_POOL_SCHEMA)
                db.executemany("INSERT INTO radippool (pool_name, framedipaddress) VALUES (?, ?)",
                               [(POOL_NAME, a) for a in self.pool])
            db.close()

    # lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "FreeRadius":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with open(self.log_path, "wb") as log:
            self.proc = self.ns.popen([FREERADIUS, "-X", "-d", str(self.raddb), "-n", "radiusd"],
                                      stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while "Ready to process requests" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FreeRadiusError(f"freeradius did not start:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "FreeRadius":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """The log's current length, for :meth:`log_since`."""
        return len(self.log_text())

    def log_since(self, mark: int) -> str:
        return self.log_text()[mark:]

    # what the server recorded -------------------------------------------------------------
    def detail_records(self) -> list[dict[str, str]]:
        """The accounting requests in the detail file, oldest first: attribute -> value
        (quotes removed; repeated attributes keep the last value)."""
        try:
            text = self.detail_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return parse_detail(text)

    def leases(self) -> list[Lease]:
        """The sqlippool table (opened read-only; FreeRADIUS keeps it open)."""
        db = sqlite3.connect(f"file:{self.pool_db}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT framedipaddress, nasipaddress, pool_key, username, callingstationid,"
                              " expiry_time, expiry_time > datetime('now') FROM radippool ORDER BY id").fetchall()
        finally:
            db.close()
        return [Lease(a, n, k, u, c, e, bool(active)) for a, n, k, u, c, e, active in rows]

    def active_leases(self) -> dict[str, Lease]:
        return {lease.address: lease for lease in self.leases() if lease.active}


def parse_detail(text: str) -> list[dict[str, str]]:
    """Parse FreeRADIUS ``detail`` records: a header line (the time), then one
    ``\\tName = value`` line per attribute, records separated by blank lines."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        if not line.startswith("\t"):
            current = {"_time": line.strip()}
            records.append(current)
            continue
        if current is None:
            continue
        name, sep, value = line.strip().partition(" = ")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            current[name] = value
    return records


def radclient(ns: Namespace, server: str, kind: str, secret: str, attributes: Sequence[str], *,
              timeout: float = 2.0, retries: int = 1) -> tuple[bool, str]:
    """``radclient -x SERVER KIND SECRET`` in ``ns`` with ``attributes`` (``Name = value``
    strings) on stdin; ``kind`` is auth, acct, disconnect, coa or status.  Returns
    (an answer was an ACK/Accept, radclient's output)."""
    proc = ns.run([RADCLIENT, "-x", "-t", str(timeout), "-r", str(retries), server, kind, secret],
                  input="\n".join(attributes) + "\n", check=False, timeout=timeout * (retries + 1) + 10)
    out = proc.stdout + proc.stderr
    ok = proc.returncode == 0 and re.search(r"Received (Access-Accept|Accounting-Response|Disconnect-ACK|"
                                             r"CoA-ACK)", out) is not None
    return ok, out


__all__ = ["FreeRadius", "attach_host", "FreeRadiusError", "Lease", "POOL_NAME", "freeradius_missing", "parse_detail",
           "radclient", "NetnsError"]


def attach_host(topology: Topology, role: str, host_number: int) -> Host:
    """Add a namespace ``role`` to a built :class:`Topology`'s segment (its bridge) with the
    outer addresses number ``host_number`` (below the clients' 10...); it is deleted with
    the topology."""
    if not 1 < host_number < FIRST_CLIENT_HOST:
        raise ValueError(f"host numbers 2..{FIRST_CLIENT_HOST - 1} are free below the clients")
    ns = topology._ns(role)  # registered first: deleted with the topology even if the rest fails
    _quiet_ipv6(ns)
    host = Host(ns, [str(OUTER_V4[host_number])], [str(OUTER_V6[host_number])])
    topology._join_bridge(ns, f"p-{role}", host.v4, host.v6)
    return host
