"""Real strongSwan daemons (5.9.x) inside test namespaces: a swanctl client and a
starter/ipsec.conf server.

Two charons on one machine collide on /run (the pid file path is compiled in, so
``STRONGSWAN_CONF`` does not help).  Each daemon therefore runs in its own private
mount namespace inside its network namespace::

    ip netns exec NS unshare -m --propagation private sh -c '
        mount -t tmpfs tmpfs /run
        mount --bind OWN/strongswan.conf /etc/strongswan.conf
        ...
        exec /usr/lib/ipsec/charon'

so /run (pid files, vici and stroke sockets) and every file it reads under /etc are
its own, and nothing of the host is modified.  Commands (``swanctl``, ``stroke``) reach
the daemon with ``nsenter -t PID -m -n``.  The kernel here has no ESP, so both ends use
the ``kernel-libipsec`` plugin (userspace ESP over a TUN device, ``ipsec0``), loaded
before ``kernel-netlink`` (which still provides addresses and routes).

Only the plugins named in ``charon.load`` are loaded (``kdf`` is needed by 5.9.8;
``resolve`` writes to a file in the daemon's work directory, never /etc/resolv.conf;
syslog logging is off, the log goes to ``workdir/charon.log``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .netns import Namespace, NetnsError, terminate

CHARON = Path("/usr/lib/ipsec/charon")
STARTER = Path("/usr/lib/ipsec/starter")
SWANCTL = "swanctl"
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")

# Crypto and credential plugins in the order a stock Debian 12 charon loads them
# ("loaded plugins:" of strongSwan 5.9.8 with the packaged strongswan.d): the default
# proposals depend on which algorithms are registered and in which order, so the
# reference daemons offer and append exactly what a stock installation would.
# Left out: plugins that reach outside the namespace or need hardware/servers
# (test-vectors, ldap, pkcs11, curl, xauth-pam, eap-radius, dhcp, farp, connmark, ...).
STOCK_CRYPTO_PLUGINS = ("aesni aes rc2 sha2 sha1 md5 mgf1 rdrand random nonce x509 revocation constraints "
                        "pubkey pkcs1 pkcs7 pkcs12 pgp dnskey sshkey pem openssl gcrypt pkcs8 fips-prf gmp "
                        "curve25519 agent chapoly xcbc cmac hmac kdf ctr ccm gcm drbg").split()
# kernel-libipsec (userspace ESP on a TUN) must come before kernel-netlink.
COMMON_PLUGINS = (*STOCK_CRYPTO_PLUGINS, "kernel-libipsec", "kernel-netlink", "socket-default", "vici",
                  "updown", "eap-identity", "eap-mschapv2")
CLIENT_PLUGINS = (*COMMON_PLUGINS, "resolve")
SERVER_PLUGINS = (*COMMON_PLUGINS, "attr", "stroke")

# filelog levels asked for by the harness brief (cfg 2 shows proposal selection).
LOG_LEVELS = {"default": 1, "ike": 2, "cfg": 2, "enc": 1, "net": 1}


class StrongSwanError(RuntimeError):
    """A strongSwan daemon did not start or a control command failed."""


def strongswan_missing() -> str | None:
    """Why the strongSwan based tests cannot run here, or None if they can."""
    needed = [CHARON, STARTER, PLUGIN_DIR / "libstrongswan-kernel-libipsec.so",
              PLUGIN_DIR / "libstrongswan-eap-mschapv2.so", PLUGIN_DIR / "libstrongswan-eap-identity.so",
              PLUGIN_DIR / "libstrongswan-kdf.so"]
    missing = [str(p) for p in needed if not p.exists()]
    if shutil.which(SWANCTL) is None:
        missing.append("swanctl")
    for tool in ("ip", "unshare", "nsenter", "ss"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        return "strongSwan 5.9 packages (charon, starter, swanctl, extra plugins) missing: " + ", ".join(missing)
    return None


def _strongswan_conf(plugins: Iterable[str], log_path: Path, *, levels: Mapping[str, int] = LOG_LEVELS,
                     plugin_conf: str = "", charon_extra: str = "") -> str:
    level_lines = "\n".join(f"            {k} = {v}" for k, v in levels.items())
    return f"""# written by tests/interop/strongswan.py
charon {{
    load = {' '.join(plugins)}
    # do not retry forever on a dead peer in tests
    retransmit_tries = 3
    retransmit_timeout = 2.0
    install_virtual_ip = yes
    filelog {{
        testlog {{
            path = {log_path}
            time_format = %H:%M:%S
            ike_name = yes
            append = no
            flush_line = yes
{level_lines}
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    plugins {{
{plugin_conf}
    }}
{charon_extra}
}}
starter {{
    load_warning = no
}}
"""


# ------------------------------------------------------------------------------------
# vici output parser (swanctl --pretty)

def parse_vici_pretty(text: str) -> list[tuple[str, dict]]:
    """Parse swanctl ``--pretty`` output into ``[(message_name, section_dict), ...]``.

    The pretty form has one item per line: ``name {`` opens a section, ``}`` closes
    it, ``key = [`` opens a list whose items follow one per line up to ``]``, and
    ``key = value`` is a value (which may contain spaces, e.g. DNs).  Sections become
    dicts, lists become lists of strings.
    """
    messages: list[tuple[str, dict]] = []
    stack: list[dict] = []
    current_list: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if current_list is not None:
            if line == "]":
                current_list = None
            else:
                current_list.append(line)
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            section: dict = {}
            if stack:
                stack[-1][name] = section
            else:
                messages.append((name, section))
            stack.append(section)
        elif line == "}":
            if stack:
                stack.pop()
        elif " = " in line or line.endswith(" ="):
            key, _, value = line.partition(" =")
            value = value.strip()
            if value == "[":
                current_list = []
                if stack:
                    stack[-1][key.strip()] = current_list
            elif stack:
                stack[-1][key.strip()] = value
    return messages


# ------------------------------------------------------------------------------------

class _Daemon:
    """Common mechanics: private mount namespace, files overlaid on /etc, logs, control."""

    plugins: tuple[str, ...] = COMMON_PLUGINS

    def __init__(self, ns: Namespace, workdir: Path, *, plugin_conf: str = "", charon_extra: str = "",
                 log_levels: Mapping[str, int] = LOG_LEVELS) -> None:
        self.ns = ns
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = self.workdir / "root"  # mirror of the files overlaid on the host paths
        self.log_path = self.workdir / "charon.log"
        self.stdout_path = self.workdir / "daemon.out"
        self.plugin_conf = plugin_conf
        self.charon_extra = charon_extra
        self.log_levels = dict(log_levels)
        self.proc: subprocess.Popen | None = None
        self._helpers: list[subprocess.Popen] = []  # control commands left running
        self._mnt_ns: str | None = None
        self.started_at: float | None = None
        self.ready_after: float | None = None

    # files -------------------------------------------------------------------------
    def put(self, target: str, content: str | bytes | Path, mode: int = 0o644) -> Path:
        """Place a file that the daemon will see at absolute path ``target``."""
        if not target.startswith("/"):
            raise ValueError("target must be absolute")
        dest = self.root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            data = content.read_bytes()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        dest.write_bytes(data)
        dest.chmod(mode)
        return dest

    replaced_dirs: tuple[str, ...] = ()

    def _mounts(self) -> list[tuple[Path, str]]:
        """(source, target) bind mounts: whole replaced dirs, existing files file-by-file,
        missing files by replacing their nearest existing parent directory (never /etc)."""
        mounts: dict[str, Path] = {}
        for d in self.replaced_dirs:
            (self.root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
            mounts[d] = self.root / d.lstrip("/")
        for src in sorted(p for p in self.root.rglob("*") if p.is_file()):
            target = "/" + str(src.relative_to(self.root))
            if any(target.startswith(m + "/") for m in mounts):
                continue
            if os.path.isfile(target):
                mounts[target] = src
                continue
            parent = os.path.dirname(target)
            while not os.path.isdir(parent):
                parent = os.path.dirname(parent)
            if parent.count("/") < 2 or parent in ("/etc", "/usr", "/var"):
                raise StrongSwanError(f"cannot overlay {target}: nearest existing directory is {parent}")
            mounts[parent] = self.root / parent.lstrip("/")
        # outer mounts first, and drop mounts hidden by an outer directory mount
        ordered = sorted(mounts.items(), key=lambda kv: kv[0].count("/"))
        result: list[tuple[Path, str]] = []
        for target, src in ordered:
            if any(target.startswith(t + "/") and s.is_dir() for s, t in result):
                continue
            result.append((src, target))
        return result

    def _script(self, exe: str) -> str:
        lines = ["set -e", "mount -t tmpfs -o mode=755 tmpfs /run"]
        for src, target in self._mounts():
            lines.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(target)}")
        lines.append(f"exec {exe} >{shlex.quote(str(self.stdout_path))} 2>&1")
        return "\n".join(lines)

    def _write_files(self) -> None:
        raise NotImplementedError

    def _exe(self) -> str:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    # lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "_Daemon":
        self._write_files()
        self.put("/etc/strongswan.conf", _strongswan_conf(
            self.plugins, self.log_path, levels=self.log_levels, plugin_conf=self.plugin_conf,
            charon_extra=self.charon_extra))
        script = self._script(self._exe())
        (self.workdir / "start.sh").write_text(script + "\n")
        self.started_at = time.monotonic()
        self.proc = self.ns.popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise StrongSwanError(f"{self.__class__.__name__} exited ({self.proc.returncode}): {err}\n"
                                      f"{self.output_text()[-2000:]}\n{self.log_text()[-3000:]}")
            if self._mnt_ns is None:
                try:
                    mnt = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
                    if mnt != os.readlink("/proc/self/ns/mnt") and self._in_own_mounts("/run/"):
                        self._mnt_ns = mnt
                except OSError:
                    pass
            if self._mnt_ns is not None and self._ready():
                self.ready_after = time.monotonic() - self.started_at
                return self
            time.sleep(0.05)
        self.stop()
        raise StrongSwanError(f"{self.__class__.__name__} not ready within {timeout}s\n"
                              f"{self.output_text()[-2000:]}\n{self.log_text()[-3000:]}")

    def _in_own_mounts(self, path: str) -> bool:
        """True once the daemon's private /run is mounted (its /run differs from ours)."""
        try:
            theirs = os.stat(f"/proc/{self.proc.pid}/root{path}")
            return theirs.st_dev != os.stat(path).st_dev
        except OSError:
            return False

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists as the daemon sees it (through its mount namespace)."""
        return self.proc is not None and os.path.exists(f"/proc/{self.proc.pid}/root{path}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise StrongSwanError("daemon not started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _mount_ns_pids(self) -> list[int]:
        pids = []
        if self._mnt_ns is None:
            return pids
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == self._mnt_ns:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL: the daemon and anything left in its mount namespace."""
        for helper in self._helpers:
            terminate(helper, timeout=timeout)
        self._helpers.clear()
        if self.proc is None:
            return
        leftovers = self._mount_ns_pids()
        terminate(self.proc, timeout=timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [p for p in leftovers if os.path.exists(f"/proc/{p}")]
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.proc.stderr:
            self.proc.stderr.close()

    # control -----------------------------------------------------------------------
    def exec(self, cmd: list[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside the daemon's mount and network namespaces."""
        argv = ["nsenter", "-t", str(self.pid), "-m", "-n", *cmd]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise StrongSwanError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        return proc

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.exec([SWANCTL, *args], check=check, timeout=timeout)

    def list_sas(self) -> list[dict]:
        """IKE_SAs as dicts (vici ``list-sa`` events): each ``{'name': conn, **fields}``
        with ``child-sas`` a dict of CHILD_SA dicts."""
        out = self.swanctl("--list-sas", "--pretty").stdout
        sas = []
        for event, body in parse_vici_pretty(out):
            if event != "list-sa event":
                continue
            for name, fields in body.items():
                if isinstance(fields, dict):
                    sas.append({"name": name, **fields})
        return sas

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def output_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            m = rx.search(self.log_text())
            if m:
                return m
            if time.monotonic() > deadline:
                raise StrongSwanError(f"log never matched {pattern!r}:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)


# ------------------------------------------------------------------------------------

@dataclass
class ClientConn:
    """One swanctl connection of a road-warrior client (EAP-MSCHAPv2 to a cert gateway)."""

    remote_addrs: str
    name: str = "gw"
    child: str = "c"
    local_addrs: str | None = None
    eap_id: str = "user1"
    password: str = "password1"
    local_id: str | None = None
    remote_id: str | None = None  # set to send IDr (what Apple clients do)
    proposals: str = "default"
    esp_proposals: str = "default"
    vips: tuple[str, ...] = ("0.0.0.0", "::")
    remote_ts: str = "0.0.0.0/0,::/0"
    fragmentation: str = "yes"
    send_certreq: bool = True
    mobike: bool = True
    encap: bool = False
    remote_port: int | None = None
    extra: str = ""  # raw lines inside the connection section
    child_extra: str = ""

    def swanctl_section(self) -> str:
        conn = ["version = 2", f"remote_addrs = {self.remote_addrs}"]
        if self.local_addrs:
            conn.append(f"local_addrs = {self.local_addrs}")
        if self.remote_port:
            conn.append(f"remote_port = {self.remote_port}")
        if self.vips:
            conn.append(f"vips = {', '.join(self.vips)}")
        conn += [
            f"proposals = {self.proposals}",
            f"fragmentation = {self.fragmentation}",
            f"send_certreq = {'yes' if self.send_certreq else 'no'}",
            f"mobike = {'yes' if self.mobike else 'no'}",
            f"encap = {'yes' if self.encap else 'no'}",
            "rekey_time = 0",
            "dpd_delay = 0",
            "keyingtries = 1",
        ]
        local = ["auth = eap-mschapv2", f"eap_id = {self.eap_id}"]
        if self.local_id:
            local.append(f"id = {self.local_id}")
        remote = ["auth = pubkey"]
        if self.remote_id:
            remote.append(f'id = "{self.remote_id}"')
        child = [f"remote_ts = {self.remote_ts}", f"esp_proposals = {self.esp_proposals}",
                 "rekey_time = 0", "start_action = none"]

        def block(name: str, lines: list[str], indent: int) -> str:
            pad = " " * indent
            return f"{pad}{name} {{\n" + "".join(f"{pad}    {line}\n" for line in lines) + f"{pad}}}\n"

        children = block("children", [], 8).replace(
            "{\n", "{\n" + block(self.child, child + self.child_extra.splitlines(), 12), 1)
        return (f"    {self.name} {{\n" + "".join(f"        {line}\n" for line in conn)
                + block("local", local, 8) + block("remote", remote, 8) + children
                + "".join(f"        {line}\n" for line in self.extra.splitlines()) + "    }\n")


class StrongSwanClient(_Daemon):
    """A charon + swanctl road-warrior client in ``ns``.

    ``conns`` holds one or more :class:`ClientConn`; with ``remote_addrs`` (and other
    ClientConn keywords) a single connection is built.  ``ca_certs`` are trusted in
    swanctl/x509ca.  DNS servers received are written to ``workdir/resolv.conf``.
    """

    plugins = CLIENT_PLUGINS
    replaced_dirs = ("/etc/swanctl",)

    def __init__(self, ns: Namespace, workdir: Path, *, conns: list[ClientConn] | None = None,
                 ca_certs: Iterable[Path] = (), plugin_conf: str = "", charon_extra: str = "",
                 log_levels: Mapping[str, int] = LOG_LEVELS, **conn_kwargs) -> None:
        self.resolv_conf = Path(workdir) / "resolv.conf"
        plugin_conf = (f"        resolve {{\n            file = {self.resolv_conf}\n        }}\n" + plugin_conf)
        super().__init__(ns, workdir, plugin_conf=plugin_conf, charon_extra=charon_extra, log_levels=log_levels)
        if conns is None:
            conns = [ClientConn(**conn_kwargs)]
        elif conn_kwargs:
            raise TypeError("give either conns or ClientConn keywords")
        if len({c.name for c in conns}) != len(conns):
            raise ValueError("connection names must be unique")
        self.conns = conns
        self.ca_certs = list(ca_certs)

    def swanctl_conf(self) -> str:
        secrets = {}
        for c in self.conns:
            secrets[c.eap_id] = c.password
        secret_lines = "".join(
            f"    eap-{i} {{\n        id = {user}\n        secret = \"{pw}\"\n    }}\n"
            for i, (user, pw) in enumerate(secrets.items()))
        return ("connections {\n" + "".join(c.swanctl_section() for c in self.conns) + "}\n"
                "secrets {\n" + secret_lines + "}\n")

    def _write_files(self) -> None:
        for sub in ("x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "x509aa",
                    "x509ocsp", "x509crl", "x509ac", "pubkey", "conf.d"):
            (self.root / "etc/swanctl" / sub).mkdir(parents=True, exist_ok=True)
        for i, cert in enumerate(self.ca_certs):
            self.put(f"/etc/swanctl/x509ca/ca{i}.pem", Path(cert))
        self.put("/etc/swanctl/swanctl.conf", self.swanctl_conf(), mode=0o600)
        self.resolv_conf.write_text("")

    def _exe(self) -> str:
        return str(CHARON)

    def _ready(self) -> bool:
        return self.exists("/run/charon.vici") and "charon" in self.log_text()

    def start(self, timeout: float = 15.0) -> "StrongSwanClient":
        super().start(timeout)
        self.load()
        return self

    def load(self) -> str:
        return self.swanctl("--load-all", "--noprompt").stdout

    def initiate(self, child: str | None = None, *, ike: str | None = None,
                 timeout: float = 20) -> tuple[bool, str]:
        """``swanctl --initiate``; returns (success, swanctl output)."""
        conn = self.conns[0] if ike is None else next(c for c in self.conns if c.name == ike)
        args = ["--initiate", "--child", child or conn.child, "--ike", conn.name,
                "--timeout", str(int(timeout))]
        proc = self.swanctl(*args, check=False, timeout=timeout + 10)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def initiate_nowait(self, child: str | None = None, *, ike: str | None = None) -> subprocess.Popen:
        """Start ``swanctl --initiate`` without waiting for the result (e.g. toward a
        peer that never answers); the process is killed by :meth:`stop`."""
        conn = self.conns[0] if ike is None else next(c for c in self.conns if c.name == ike)
        argv = ["nsenter", "-t", str(self.pid), "-m", "-n", SWANCTL, "--initiate", "--child",
                child or conn.child, "--ike", conn.name]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self._helpers.append(proc)
        return proc

    def terminate(self, ike: str | None = None, timeout: float = 10) -> tuple[bool, str]:
        conn = self.conns[0] if ike is None else next(c for c in self.conns if c.name == ike)
        proc = self.swanctl("--terminate", "--ike", conn.name, "--timeout", str(int(timeout)),
                            check=False, timeout=timeout + 10)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def dns_servers(self) -> list[str]:
        """Name servers the resolve plugin recorded (from the gateway's CFG_REPLY)."""
        try:
            text = self.resolv_conf.read_text()
        except FileNotFoundError:
            return []
        return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]


class StrongSwanServer(_Daemon):
    """The reference gateway: strongSwan's starter serving an ipsec.conf unchanged.

    ``ipsec_conf``/``ipsec_secrets`` become /etc/ipsec.conf and /etc/ipsec.secrets,
    ``files`` maps further absolute paths (``/etc/ipsec.d/cacerts/x.pem``,
    ``/etc/ssl/private/vpn-server.crt``, an updown script, ...) to their contents; all
    are visible only to this daemon.  The starter runs in the foreground
    (``--nofork``) and starts charon itself.
    """

    plugins = SERVER_PLUGINS
    replaced_dirs = ("/etc/ipsec.d", "/etc/swanctl")

    def __init__(self, ns: Namespace, workdir: Path, *, ipsec_conf: str, ipsec_secrets: str,
                 files: Mapping[str, str | bytes | Path] | None = None, plugin_conf: str = "",
                 charon_extra: str = "", log_levels: Mapping[str, int] = LOG_LEVELS) -> None:
        super().__init__(ns, workdir, plugin_conf=plugin_conf, charon_extra=charon_extra, log_levels=log_levels)
        self.ipsec_conf = ipsec_conf
        self.ipsec_secrets = ipsec_secrets
        self.files = dict(files or {})
        self.conn_names = [m.group(1) for m in re.finditer(r"^conn\s+(\S+)", ipsec_conf, re.M)
                           if m.group(1) != "%default"]

    def _write_files(self) -> None:
        for sub in ("cacerts", "certs", "private", "crls", "ocspcerts", "aacerts", "acerts", "reqs"):
            (self.root / "etc/ipsec.d" / sub).mkdir(parents=True, exist_ok=True)
        self.put("/etc/ipsec.conf", self.ipsec_conf)
        self.put("/etc/ipsec.secrets", self.ipsec_secrets, mode=0o600)
        for target, content in self.files.items():
            mode = 0o755 if target.endswith(".updown") or target.endswith(".sh") else 0o600
            self.put(target, content, mode=mode)

    def _exe(self) -> str:
        return f"{STARTER} --nofork"

    def _ready(self) -> bool:
        if not self.exists("/run/charon.ctl"):
            return False
        log = self.log_text()
        return all(f"added configuration '{name}'" in log for name in self.conn_names)

    def stroke(self, *args: str, check: bool = True) -> str:
        return self.exec(["/usr/lib/ipsec/stroke", *args], check=check).stdout

    def charon_pid(self) -> int | None:
        try:
            return int((Path(f"/proc/{self.pid}/root/run/charon.pid")).read_text().strip())
        except (OSError, ValueError):
            return None


__all__ = ["CLIENT_PLUGINS", "SERVER_PLUGINS", "ClientConn", "StrongSwanClient", "StrongSwanError",
           "StrongSwanServer", "parse_vici_pretty", "strongswan_missing", "NetnsError"]
