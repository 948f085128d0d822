"""``ikegate start --user nobody``: the gateway drops to an unprivileged user keeping only
CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, and everything still works (issue 8
item 5): a real strongSwan client connects and pings through the tunnel (TUN, routes, ESP
workers), the updown script runs as the user with the three capabilities and changes a
route, a killed ESP worker is replaced, the control commands answer root, reload-secrets is refused (and nobody dropped)
while the secrets are root-only and works once they belong to the user, SIGTERM ends it
cleanly.

The user must be able to run the interpreter: where it lives in a directory closed to
other users (``/root/.pyenv`` on the project's machines), the daemon is started through
a wrapper that, in a private mount namespace, covers that directory with a world-readable
tmpfs and mounts back just the entries needed (nothing outside the namespace changes).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import ikegate
from ikegate.daemon.privileges import PrivilegeError, resolve_account

from .gateway import IkegateGateway, wait_for
from .netns import ping
from .seed import write_seed
from .test_control import ctl_json

NOBODY = resolve_account("nobody")
KEPT = f"{(1 << 10) | (1 << 12) | (1 << 13):016x}"  # NET_BIND_SERVICE, NET_ADMIN, NET_RAW
BLACKHOLE = "203.0.113.7"  # TEST-NET-3, a route in the gateway's namespace only

UPDOWN = f"""#!/bin/sh
# what the gateway runs on up/down: who it runs as, with which capabilities; a route change
{{
  echo "verb=$PLUTO_VERB uid=$(id -u) gid=$(id -g) groups=$(id -G)"
  grep -E '^Cap(Eff|Amb):' /proc/self/status
  case "$PLUTO_VERB" in
    up-client) ip route add blackhole {BLACKHOLE}/32 && echo "route added" ;;
    down-client) ip route del blackhole {BLACKHOLE}/32 && echo "route deleted" ;;
  esac
}} >> OUT/updown.log 2>&1
"""


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _closed_directories(paths) -> dict[Path, set[str]]:
    """Directories on the way to ``paths`` that other users may not search, each with the
    names below it that lead to the paths."""
    closed: dict[Path, set[str]] = {}
    for path in paths:
        path = Path(path)
        for directory in reversed(path.parents):
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                closed.setdefault(directory, set()).add(path.relative_to(directory).parts[0])
                break
    return closed


def _python_for_others(workdir: Path) -> str:
    """The interpreter, or a wrapper that makes it reachable by other users (see the module
    docstring)."""
    needed = [os.path.realpath(sys.executable), sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
              Path(ikegate.__file__).parent]
    closed = _closed_directories(needed)
    if not closed:
        return sys.executable
    hidden = workdir / "hidden"
    hidden.mkdir(mode=0o700)
    lines = ["set -e"]
    for index, (directory, names) in enumerate(sorted(closed.items())):
        keep = hidden / str(index)
        lines += [f"mkdir -p {keep}", f"mount --bind {directory} {keep}",
                  f"mount -t tmpfs -o mode=0755 tmpfs {directory}"]
        for name in sorted(names):
            lines += [f"mkdir -p {directory / name}", f"mount --bind {keep / name} {directory / name}"]
    lines.append(f'exec {sys.executable} "$@"')
    wrapper = workdir / "python"
    script = "\n".join(lines)
    wrapper.write_text(f"#!/bin/sh\nexec unshare --mount --propagation private sh -c '{script}' python \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def _control_as(uid: int, gid: int, path: Path) -> bytes:
    """Send a status request to the control socket from a child running as uid/gid; what
    came back (nothing when the gateway refuses the peer)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(str(path))
                sock.sendall(b'{"command": "status"}\n')
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            os.write(write_end, answer)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


@pytest.fixture
def workdir():
    """A directory every user can search (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ikg-priv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_runs_as_user_with_three_capabilities(workdir, topology_factory, strongswan_client_factory):
    topo = topology_factory(1, inner=True)
    setup = write_seed(workdir / "conf")
    out = workdir / "out"
    out.mkdir()
    os.chown(out, NOBODY.uid, NOBODY.gid)
    updown = setup.confdir / "strongswan.d" / "proxyndp.updown"
    assert f"leftupdown={updown}" in setup.ipsec_conf.read_text()
    updown.write_text(UPDOWN.replace("OUT", str(out)))
    run_dir = workdir / "run"
    run_dir.mkdir()
    (run_dir / "ikegate.pid").write_text("99999\n")  # left by an earlier run as root
    gateway = IkegateGateway(topo.gateway.ns, setup.confdir, run_dir, ["--user", "nobody"],
                             python=_python_for_others(workdir))
    try:
        gateway.start()
        pid = int((run_dir / "ikegate.pid").read_text())
        status = _status(pid)
        assert status["Uid"].split() == [str(NOBODY.uid)] * 4 and status["Gid"].split() == [str(NOBODY.gid)] * 4
        assert status["Groups"] == ""
        assert {k: status[k] for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == dict.fromkeys(
            ("CapEff", "CapPrm", "CapBnd", "CapAmb"), KEPT)
        # the ESP workers were started after the drop: the same user and capabilities
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert children
        for child in children:
            assert _status(child)["Uid"].split()[0] == str(NOBODY.uid) and _status(child)["CapEff"] == KEPT
        # the run directory and the control socket belong to the user; root's commands work
        for path, mode in ((run_dir, 0o700), (run_dir / "ikegate.ctl", 0o600)):
            st = os.stat(path)
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY.uid, mode), path
        assert ctl_json(gateway, "status") == {"ok": True, "sas": []}
        log = gateway.log_text()
        assert "running as user nobody (uid 65534, gid 65534 nogroup), keeping only CAP_NET_ADMIN, CAP_NET_RAW, " \
               "CAP_NET_BIND_SERVICE" in log
        secrets = setup.confdir / "ipsec.secrets"
        assert ("reload and reload-secrets will be refused until this is fixed: "
                f"{secrets}: not readable by user 'nobody', whom the gateway runs as (fix: chown nobody {secrets})") in log

        # a client connects and pings through the TUN (routes, raw sockets, workers)
        client = strongswan_client_factory(topo.clients[0], topo.gateway.v4[0], ca_certs=[setup.root_cert])
        ok, text = client.initiate(timeout=20)
        assert ok, text + gateway.log_text()[-3000:]
        assert ping(client.ns, topo.inner.v4[0], count=3, wait=2) == 3
        assert ping(client.ns, topo.inner.v6[0], count=2, wait=2) == 2
        # updown ran as the user with the three capabilities, and changed a route
        assert wait_for(lambda: "route added" in (out / "updown.log").read_text(), 10), gateway.log_text()[-2000:]
        record = (out / "updown.log").read_text()
        assert f"verb=up-client uid={NOBODY.uid} gid={NOBODY.gid} groups={NOBODY.gid}" in record
        assert f"CapEff:\t{KEPT}" in record and f"CapAmb:\t{KEPT}" in record
        assert "blackhole" in topo.gateway.run(["ip", "route", "show", f"{BLACKHOLE}/32"]).stdout
        # an ESP worker that dies is replaced by one started as the user, and traffic goes on
        os.kill(children[0], signal.SIGKILL)
        assert wait_for(lambda: "worker exited (status -9): restarting it" in gateway.log_text(), 10)
        assert wait_for(lambda: ping(client.ns, topo.inner.v4[0], count=1, wait=1) == 1, 15)
        replaced = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert children[0] not in replaced and all(_status(c)["Uid"].split()[0] == str(NOBODY.uid) for c in replaced)

        # root-only secrets: reload-secrets is refused with the fix, nobody is dropped
        secrets.write_text(secrets.read_text() + 'user4 : EAP "password4"\n')
        reply = ctl_json(gateway, "reload-secrets", check=1)
        assert reply["ok"] is False and f"{secrets}: not readable by user 'nobody', whom the gateway runs as " \
                                        f"(fix: chown nobody {secrets})" in reply["errors"]
        private = setup.confdir / "ssl" / "private"
        assert any(f"(directory {private} is closed to it) (fix: chown nobody {private})" in e for e in reply["errors"])
        assert len(ctl_json(gateway, "status")["sas"]) == 1
        # the admin follows the hints: reload-secrets and reload work
        included = setup.confdir / "ipsec.d" / "secrets"
        for path in (secrets, included, included / "myvpn", private, *private.iterdir()):
            os.chown(path, NOBODY.uid, NOBODY.gid)
        reply = ctl_json(gateway, "reload-secrets")
        assert reply["ok"] and reply["users"] == 4 and reply["deleted"] == []
        assert ctl_json(gateway, "reload")["ok"]
        assert ctl_json(gateway, "reload-secrets")["users"] == 4

        # the control socket answers root only, not other processes of the user it runs as
        assert _control_as(NOBODY.uid, NOBODY.gid, run_dir / "ikegate.ctl") == b""
        assert "control connection from uid %d refused" % NOBODY.uid in gateway.log_text()

        # kill through the control socket: a clean delete, down-client runs as the user
        assert ctl_json(gateway, "kill", "user1")["killed"]
        assert wait_for(lambda: not client.list_sas(), 10)
        assert wait_for(lambda: "route deleted" in (out / "updown.log").read_text(), 10), gateway.log_text()[-2000:]
        assert topo.gateway.run(["ip", "route", "show", f"{BLACKHOLE}/32"]).stdout.strip() == ""
    finally:
        code = gateway.stop()
    assert code == 0, gateway.log_text()[-3000:]
    assert "Traceback" not in gateway.log_text()
    assert not (run_dir / "ikegate.ctl").exists() and not (run_dir / "ikegate.pid").exists()


def test_user_needs_a_reachable_run_directory(tmp_path, topology_factory, seed_setup):
    """A run directory under a root-only parent (pytest's tmp_path): the drop is refused
    with the reason, exit 1, before anything is served."""
    topo = topology_factory(0)
    proc = topo.gateway.ns.run([sys.executable, "-m", "ikegate", "start", "--confdir", str(seed_setup.confdir),
                                "--run-dir", str(tmp_path / "run"), "--foreground", "--user", "nobody"], check=False)
    assert proc.returncode == 1
    assert f"ikegate: user nobody cannot write to {tmp_path / 'run'} (control socket, pid file): choose a " \
           "directory it can reach, such as /run/ikegate" in proc.stderr


def test_unknown_user_and_root_are_refused(tmp_path, seed_setup):
    with pytest.raises(PrivilegeError, match="no such user"):
        resolve_account("ikegate-no-such-user")
    with pytest.raises(PrivilegeError, match="this is root"):
        resolve_account("root")
    proc = subprocess.run([sys.executable, "-m", "ikegate", "start", "--confdir", str(seed_setup.confdir),
                           "--run-dir", str(tmp_path), "--user", "ikegate-no-such-user"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "ikegate: --user ikegate-no-such-user: no such user" in proc.stderr


def test_drop_refuses_a_second_thread():
    """Capabilities belong to threads: with one running, drop() refuses (in a child process)."""
    code = ("import threading, time\n"
            "from ikegate.daemon.privileges import PrivilegeError, drop, resolve_account\n"
            "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
            "try:\n    drop(resolve_account('nobody'))\nexcept PrivilegeError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "cannot drop privileges with 2 threads running" in proc.stdout, proc.stdout + proc.stderr
