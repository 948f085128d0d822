"""Fixtures of the RADIUS tests: a real FreeRADIUS 3.2 on loopback (see test_freeradius.py).

``freeradius`` (module scope): ``freeradius -X`` with a configuration directory of its own
(nothing from /etc/freeradius is read) on 127.0.0.1, random high ports, PAP users, the
``detail`` file for accounting; a dict with ``work``, ``auth``, ``acct`` and ``log``.
:func:`freeradius_missing` says why it cannot run.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

FREERADIUS = "/usr/sbin/freeradius"
RADCLIENT = "/usr/bin/radclient"
LIBDIR = Path("/usr/lib/freeradius")
SECRET = "radius-test-secret"
SEND_KEY = bytes(range(0x10, 0x30))  # 32 octets, as EAP-MSCHAPv2 MPPE keys are
RECV_KEY = bytes(range(0x40, 0x60))

def _config(work: Path, auth_port: int, acct_port: int) -> Path:
    raddb = work / "raddb"
    raddb.mkdir()
    (raddb / "dictionary").write_text("# nothing added\n")
    (raddb / "users").write_text(
        '"alice" Cleartext-Password := "correct horse"\n'
        f"    MS-MPPE-Send-Key = 0x{SEND_KEY.hex()},\n"
        f"    MS-MPPE-Recv-Key = 0x{RECV_KEY.hex()},\n"
        "    Class = 0x67726f75703d7374616666,\n"
        "    Framed-IP-Address = 10.99.0.7,\n"
        "    Session-Timeout = 3600\n")
    (raddb / "radiusd.conf").write_text(f"""
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {work}
raddbdir = {raddb}
radacctdir = {work}
name = freeradius
confdir = {raddb}
modconfdir = {raddb}
run_dir = {work}
db_dir = {work}
libdir = {LIBDIR}
pidfile = {work}/radiusd.pid
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    colourise = no
    auth = yes
}}
security {{
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
proxy_requests = no
client localhost {{
    ipaddr = 127.0.0.1
    secret = "{SECRET}"
    require_message_authenticator = yes
}}
thread pool {{
    start_servers = 1
    max_servers = 2
    min_spare_servers = 1
    max_spare_servers = 1
    max_requests_per_server = 0
}}
modules {{
    files {{
        filename = {raddb}/users
    }}
    pap {{
    }}
    detail {{
        filename = {work}/detail
        permissions = 0600
        header = "%t"
    }}
    always ok {{
        rcode = ok
    }}
}}
server ikegate-radius-test {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acct_port}
    }}
    authorize {{
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
    preacct {{
        ok
    }}
    accounting {{
        detail
        ok
    }}
    post-auth {{
        ok
    }}
}}
""")
    return raddb


def _free_udp_port() -> int:
    while True:
        port = random.randint(20000, 60000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def freeradius(tmp_path_factory):
    work = tmp_path_factory.mktemp("freeradius")
    auth_port = _free_udp_port()
    acct_port = _free_udp_port()
    raddb = _config(work, auth_port, acct_port)
    log_path = work / "radiusd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([FREERADIUS, "-X", "-d", str(raddb), "-n", "radiusd"], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "Ready to process requests" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"freeradius did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield {"work": work, "auth": auth_port, "acct": acct_port, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def freeradius_missing() -> str | None:
    """Why the FreeRADIUS based tests cannot run here, or None."""
    if Path(FREERADIUS).exists() and Path(RADCLIENT).exists() and (LIBDIR / "rlm_pap.so").exists():
        return None
    return "FreeRADIUS 3.2 (Debian freeradius, freeradius-utils) not installed"


def radclient(port: int, kind: str, attributes: str, secret: str = SECRET) -> str:
    """Send one request with FreeRADIUS's radclient to 127.0.0.1:``port`` (1 s, one try);
    its output."""
    proc = subprocess.run([RADCLIENT, "-x", "-t", "1", "-r", "1", f"127.0.0.1:{port}", kind, secret],
                          input=attributes, capture_output=True, text=True, timeout=20)
    return proc.stdout + proc.stderr
