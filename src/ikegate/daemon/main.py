"""``ikegate start``: the asyncio edge around the sans-IO gateway.

Sockets feed :meth:`Gateway.receive`, a single timer drives :meth:`Gateway.tick`, and the
outputs go out: datagrams to the sockets, CHILD SA events to the data plane and the
updown runner, everything to the log.  A root-only UNIX socket in the run directory
answers the control commands.  SIGTERM deletes every SA (INFORMATIONAL Delete) first.
Secrets files and keys that others may read are refused at start and on reload
(:mod:`ikegate.config.permissions`); ``--user`` drops to an unprivileged user after
binding the IKE ports (:mod:`ikegate.daemon.privileges`).  ``--keylog DIR`` (debugging
only, off by default, announced with a warning on stderr and in the log) writes every SA's
keys as Wireshark decryption tables (:mod:`ikegate.daemon.keylog`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import socket
import sys
from pathlib import Path

from ikegate import log as logmod
from ikegate.config.strongswan_conf import CHOICES
from ikegate.control.server import ControlServer
from ikegate.daemon.builder import build_radius, build_runtime
from ikegate.daemon.sockets import IkeSocket, open_ike_sockets
from ikegate.daemon.updown import UpdownRunner
from ikegate.daemon.wakeup import WakeUp
from ikegate.ike.events import ChildSaDown, ChildSaUp, ChildSaUpdated, IkeSaDown, IkeSaKeys, IkeSaUp, Send
from ikegate.ike.gateway import Gateway
from ikegate.radius.client import RadiusSend
from ikegate.wire.constants import NAT_KEEPALIVE, NON_ESP_MARKER

log = logmod.get_logger("dmn")
DEFAULT_RUN_DIR = "/run/ikegate"
INSTALL_WAIT_MAX = 1.0  # seconds an IKE answer waits for the data plane to install its CHILD SA
DATAPLANE_SETTING = "ikegate.dataplane"  # strongswan.conf: auto | kernel | userspace | none
DATAPLANES = CHOICES[DATAPLANE_SETTING]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confdir", default="/etc", help="strongSwan-style configuration directory (default /etc)")
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="control socket and pid file (default %(default)s)")
    parser.add_argument("--foreground", action="store_true", help="log to stderr instead of syslog")
    parser.add_argument("--pidfile", help="write the process id here (default RUN_DIR/ikegate.pid)")
    parser.add_argument("--user", metavar="NAME",
                        help="after binding the IKE ports, run as this user keeping only CAP_NET_ADMIN, "
                             "CAP_NET_RAW and CAP_NET_BIND_SERVICE (reload then needs the files readable by it)")
    parser.add_argument("--keylog", metavar="DIR",
                        help="DEBUGGING ONLY, defeats the encryption: append the IKE and ESP keys of every SA "
                             "to Wireshark's decryption tables ikev2_decryption_table and esp_sa in DIR "
                             "(made private, mode 0700); e.g. WIRESHARK_CONFIG_DIR=DIR tshark -r CAPTURE "
                             "-o esp.enable_encryption_decode:TRUE")
    parser.add_argument("--dataplane", choices=DATAPLANES, default=None,
                        help="how ESP is carried: kernel (XFRM), userspace (TUN), none, or auto (default: "
                             "strongswan.conf's ikegate.dataplane, else auto = kernel where the kernel has ESP, "
                             "else userspace where /dev/net/tun exists)")
    from ikegate.dataplane.userspace import add_arguments as add_userspace_arguments
    from ikegate.dataplane.xfrm.kernel import add_arguments as add_kernel_arguments

    add_userspace_arguments(parser)
    add_kernel_arguments(parser)
    parser.add_argument("--ike-port", type=int, default=500, help=argparse.SUPPRESS)
    parser.add_argument("--natt-port", type=int, default=4500, help=argparse.SUPPRESS)


def run(args) -> int:
    from ikegate.config.loader import ConfigLoadError, load_config

    log_options = _log_options(args)
    logmod.configure(None, **log_options)
    account = None
    if getattr(args, "user", None):
        from ikegate.daemon.privileges import PrivilegeError, resolve_account

        try:
            account = resolve_account(args.user)
        except PrivilegeError as exc:
            print(f"ikegate: {exc}", file=sys.stderr)
            return 1
    try:
        config, diagnostics = load_config(args.confdir)
    except ConfigLoadError as exc:
        print(f"ikegate: {exc}", file=sys.stderr)
        return 1
    from ikegate.config.permissions import loose_secrets

    problems = loose_secrets(config.secrets, account)
    if problems:
        for problem in problems:
            print(f"ikegate: {problem}", file=sys.stderr)
        print("ikegate: not starting: secrets and private keys must be private to their owner", file=sys.stderr)
        return 1
    setup = config.setup
    logmod.configure(getattr(setup, "charondebug", None), **log_options)
    for item in getattr(diagnostics, "warnings", []):
        logmod.get_logger("cfg").info("%s", item)
    for item in getattr(diagnostics, "errors", []):
        logmod.get_logger("cfg").info("%s", item)
    # the data plane first: the CHILD SA proposals offer what it can carry
    dataplane = make_dataplane(args.dataplane, args, settings=config.settings)
    runtime = build_runtime(config, args.confdir, dataplane=dataplane)
    if not runtime.conns:
        log.info("no connection to serve (auto=add) in %s/ipsec.conf", args.confdir)
    keylog = None
    if getattr(args, "keylog", None):
        keylog = _open_keylog(args.keylog)
        if keylog is None:
            return 1
    daemon = Daemon(runtime, run_dir=Path(args.run_dir), dataplane=dataplane,
                    ports=(args.ike_port, args.natt_port), pidfile=args.pidfile, confdir=args.confdir)
    daemon.log_options = log_options
    daemon.account = account
    daemon.keylog = keylog
    daemon.radius_settings = _radius_settings(config.settings)
    try:
        return asyncio.run(daemon.serve())
    except KeyboardInterrupt:
        return 0
    finally:
        if keylog is not None:
            keylog.close()


def _open_keylog(directory: str):
    """The :class:`~ikegate.daemon.keylog.KeyLog` of ``--keylog``, announced loudly on stderr
    and in the log (at audit level, which no ``charondebug`` silences but -1); None (and
    the reason on stderr) if the directory is unusable."""
    from ikegate.daemon.keylog import WARNING, KeyLog, KeyLogError

    try:
        keylog = KeyLog(directory)
    except KeyLogError as exc:
        print(f"ikegate: {exc}", file=sys.stderr)
        return None
    warning = WARNING.format(directory=keylog.directory)
    print(f"ikegate: {warning}", file=sys.stderr, flush=True)
    log.log(logmod.AUDIT, "%s", warning)
    return keylog


def _log_options(args) -> dict:
    """Where the log goes: syslog (journald reads /dev/log) by default; stderr with
    ``--foreground``, in journald's own format (priority prefix, no timestamp) when stderr
    is a systemd journal stream (``JOURNAL_STREAM``), as under the shipped unit."""
    if not args.foreground:
        return {"syslog": True}
    return {"syslog": False, "journal": bool(os.environ.get("JOURNAL_STREAM"))}


def _radius_settings(conf):
    """strongswan.conf's eap-radius settings (:mod:`ikegate.radius.settings`)."""
    from ikegate.radius.settings import RadiusSettings

    return RadiusSettings.from_strongswan_conf(conf)


def _already_running(run_dir: Path) -> bool:
    """Does a gateway answer on this run directory's control socket?  (UDP sockets with
    SO_REUSEADDR would let a second daemon bind 500 and 4500 beside the first.)"""
    from ikegate.control.client import ControlError, request

    try:
        return bool(request(run_dir, "status", timeout=2.0).get("ok"))
    except (ControlError, OSError, ValueError):
        return False


def make_dataplane(choice: str | None, args=None, *, settings=None):
    """The data plane of ``--dataplane`` (``choice``; None: strongswan.conf's
    ``ikegate.dataplane``, else ``auto``): ``kernel`` (ESP in the kernel over XFRM),
    ``userspace`` (ESP in Python through a TUN device), ``none`` (records SAs, carries
    nothing), or ``auto``: kernel where :func:`~ikegate.dataplane.xfrm.kernel.kernel_esp_available`
    says the kernel does ESP, else userspace where /dev/net/tun exists, else none.  Logs one
    line saying which runs and why."""
    from ikegate.dataplane.recording import RecordingDataPlane
    from ikegate.dataplane.userspace import UserspaceDataPlane
    from ikegate.dataplane.xfrm.kernel import DEFAULT_REPLAY_WINDOW, KernelDataPlane, kernel_esp_available

    source = "--dataplane"
    if choice is None:
        configured = settings.get_str(DATAPLANE_SETTING) if settings is not None else None
        choice, source = "auto", "default"
        if configured:
            if configured.strip().lower() in DATAPLANES:
                choice, source = configured.strip().lower(), f"{DATAPLANE_SETTING} in strongswan.conf"
            else:
                log.info("%s = %s is none of %s: using auto", DATAPLANE_SETTING, configured, ", ".join(DATAPLANES))
    replay_window = DEFAULT_REPLAY_WINDOW
    if settings is not None:
        replay_window = settings.get_int("charon.replay_window", DEFAULT_REPLAY_WINDOW)

    def kernel() -> KernelDataPlane:
        return (KernelDataPlane.from_args(args, replay_window=replay_window) if args is not None
                else KernelDataPlane(replay_window=replay_window))

    def userspace() -> UserspaceDataPlane:
        return UserspaceDataPlane.from_args(args) if args is not None else UserspaceDataPlane()

    if choice == "kernel":
        log.info("data plane: kernel XFRM (chosen by %s)", source)
        return kernel()
    if choice == "userspace":
        log.info("data plane: userspace ESP over TUN (chosen by %s)", source)
        return userspace()
    if choice == "none":
        log.info("data plane: none, SAs are recorded but no ESP is carried (chosen by %s)", source)
        return RecordingDataPlane()
    available, reason = kernel_esp_available()
    if available:
        log.info("data plane: kernel XFRM (%s)", reason)
        return kernel()
    if os.path.exists("/dev/net/tun"):
        log.info("data plane: userspace ESP over TUN (kernel has no ESP: %s)", reason)
        return userspace()
    log.info("data plane: none, no ESP is carried (kernel has no ESP: %s; no /dev/net/tun)", reason)
    return RecordingDataPlane()


class Daemon:
    def __init__(self, runtime, *, run_dir: Path, dataplane, ports=(500, 4500), pidfile=None,
                 confdir: str | Path = "/etc") -> None:
        self.runtime = runtime
        self.confdir = Path(confdir)
        self.started_at = 0.0
        self.log_options: dict = {}  # how run() configured logging, reused on reload
        self._child_conns: dict[int, object] = {}  # CHILD SA unique id -> the conn it was made with
        self.run_dir = run_dir
        self.dataplane = dataplane
        self.ports = ports
        self.pidfile = Path(pidfile) if pidfile else run_dir / "ikegate.pid"
        self.sockets: list[IkeSocket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gateway: Gateway | None = None
        self.updown = UpdownRunner()
        self._wakeup = WakeUp(self._on_timer)
        self._stopping: asyncio.Event | None = None
        self.account = None  # --user: whom to run as after binding the IKE ports (privileges.Account)
        self.start_uid = os.getuid()  # who may use the control socket besides root (not the --user account)
        self.keylog = None  # --keylog: the KeyLog that SA keys go to (ikegate.daemon.keylog)
        self.radius_settings = None  # eap-radius settings (ikegate.radius.settings.RadiusSettings)
        self.radius = None  # the RadiusEdge (ikegate.daemon.radius) when RADIUS is configured

    # -- life -----------------------------------------------------------------------------

    async def serve(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.started_at = self.loop.time()
        self._stopping = asyncio.Event()
        client, options = build_radius(self.radius_settings)
        self.gateway = Gateway(self.runtime, now=self.loop.time(), radius=client, radius_options=options)
        self.gateway.esp_last_in = self._esp_last_in
        self.gateway.export_keys = self.keylog is not None  # IkeSaKeys events only for the key log
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        if _already_running(self.run_dir):
            log.info("another ikegate already answers on %s/ikegate.ctl: not starting", self.run_dir)
            print(f"ikegate: already running with run directory {self.run_dir}", file=sys.stderr)
            return 1
        self.sockets = open_ike_sockets(self.ports)
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._readable, sock)
        self._open_radius()  # RADIUS and DAE sockets, bound before privileges are dropped
        if self.account is not None and not self._drop_privileges():
            return 1
        self.dataplane.start()
        attach = getattr(self.dataplane, "attach", None)
        if attach is not None:
            attach(self)
        control = ControlServer(self, self.run_dir / "ikegate.ctl", allowed_uids=frozenset({0, self.start_uid}))
        await control.start()
        self.pidfile.write_text(f"{os.getpid()}\n")
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._stopping.set)
        self.loop.add_signal_handler(signal.SIGHUP, self._sighup)
        listening = ", ".join(f"{'IPv6' if s.family == socket.AF_INET6 else 'IPv4'}:{s.local_port}" for s in self.sockets)
        log.info("ikegate ready, listening on %s, serving %s", listening,
                 ", ".join(c.name for c in self.runtime.conns) or "nothing")
        await self._stopping.wait()
        log.info("shutting down: deleting %d IKE SA(s)", len(self.gateway.sas))
        self.process(self.gateway.shutdown(self.loop.time()))
        if self.radius is not None:
            await self.radius.drain()  # the accounting Stops
            self.radius.close()
        await asyncio.sleep(0.05)
        await control.stop()
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.dataplane.stop()
        await self.updown.drain()
        try:
            self.pidfile.unlink()
        except FileNotFoundError:
            pass
        return 0

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _sighup(self) -> None:
        """SIGHUP (systemd's ExecReload, ``kill -HUP``): re-read ipsec.conf and ipsec.secrets."""
        reply = self.reload_config()
        if reply["ok"]:
            self.reload_secrets()

    # -- reloading -----------------------------------------------------------------------------

    def reload_config(self) -> dict:
        """``ikegate reload``: re-read the configuration directory.  New and changed conns
        apply to new IKE SAs; established SAs keep theirs.  A file with errors is refused
        and the running configuration kept."""
        from ikegate.config.loader import ConfigLoadError, load_config

        try:
            config, diagnostics = load_config(self.confdir)
        except ConfigLoadError as exc:
            errors = [str(e) for e in exc.diagnostics.errors] or [str(exc)]
            return self._refused("configuration", errors)
        errors = [str(e) for e in diagnostics.errors] or self._secrets_refused(config.secrets)
        if errors:
            return self._refused("configuration", errors)
        runtime = build_runtime(config, self.confdir, pools=self.runtime.pools, dataplane=self.dataplane)
        old = {c.name: c for c in self.runtime.conns}
        new = {c.name: c for c in runtime.conns}
        changes = {
            "added": [n for n in new if n not in old],
            "changed": [n for n in new if n in old and new[n] != old[n]],
            "unchanged": [n for n in new if n in old and new[n] == old[n]],
            "removed": [n for n in old if n not in new],
        }
        self.runtime = runtime
        self.gateway.set_runtime(runtime)
        self._reload_radius(config.settings)
        logmod.configure(getattr(config.setup, "charondebug", None), **self.log_options)
        log.info("configuration reloaded from %s: %s", self.confdir,
                 "; ".join(f"{k} {', '.join(v)}" for k, v in changes.items() if v) or "no conns")
        return {"ok": True, **changes, "warnings": [str(w) for w in diagnostics.warnings]}

    def reload_secrets(self) -> dict:
        """``ikegate reload-secrets``: re-read ipsec.secrets (and its includes) for user and
        PSK secrets.  Users added can connect at once; established SAs of users whose
        secret is gone are deleted; nobody else is touched.  A file with errors is refused."""
        from ikegate.config.errors import Diagnostics
        from ikegate.config.secrets import load_secrets

        path = self.confdir / "ipsec.secrets"
        diagnostics = Diagnostics()
        if not path.exists():
            return self._refused("secrets", [f"{path}: file not found"])
        secrets = load_secrets(path, self.confdir / "ipsec.d" / "private", diagnostics)
        errors = [str(e) for e in diagnostics.errors] or self._secrets_refused(secrets, whole=False)
        if errors:
            return self._refused("secrets", errors)
        runtime = dataclasses.replace(self.runtime, secrets=secrets)
        self.runtime = runtime
        self.gateway.set_runtime(runtime)
        orphans = self.gateway.without_secret(secrets)
        deleted = [sa.unique_id for sa in orphans]
        self.process(self.gateway.kill(orphans, "its secret was removed (reload-secrets)", self.loop.time()))
        users = sum(1 for e in secrets.entries if e.shared_class in ("EAP", "NTLM"))
        log.info("secrets reloaded from %s: %d user secret(s)%s", path, users,
                 f", deleted IKE_SA(s) {', '.join(map(str, deleted))}" if deleted else "")
        return {"ok": True, "users": users, "deleted": deleted}

    def _open_radius(self) -> None:
        """The RADIUS edge (sockets, accounting, DAE) when eap-radius servers or DAE are configured."""
        radius = self.radius_settings
        if self.radius is None and radius is not None and (radius.enabled or radius.dae.active):
            from ikegate.daemon.radius import RadiusEdge

            self.radius = RadiusEdge(self, radius)
            self.radius.open(self.loop)

    def _reload_radius(self, conf) -> None:
        """New eap-radius settings from strongswan.conf ``conf``: new servers for new
        authentications (requests in flight finish with the old ones); accounting (servers,
        interval, running sessions included) and DAE (secret, listener) follow at once
        (:meth:`ikegate.daemon.radius.RadiusEdge.reload`)."""
        self.radius_settings = _radius_settings(conf)
        self.gateway.set_radius(*build_radius(self.radius_settings))
        if self.radius is not None:
            self.radius.reload(self.radius_settings)
        self._open_radius()

    def _secrets_refused(self, secrets, *, whole: bool = True) -> list[str]:
        """Why newly loaded ``secrets`` must not be used (:func:`ikegate.config.permissions.refusals`):
        files of the running configuration (``whole``) or secrets no longer readable, secrets
        others may read."""
        from ikegate.config.permissions import files_of, refusals, secret_files

        running = (files_of(self.confdir, self.runtime.secrets, self.runtime.conns) if whole
                   else [path for path, _what in secret_files(self.runtime.secrets)])
        return [str(p) for p in refusals(secrets, running, self.account)]

    def _drop_privileges(self) -> bool:
        """``--user``: become that user with three capabilities (:mod:`ikegate.daemon.privileges`)."""
        from ikegate.config.permissions import files_of
        from ikegate.daemon.privileges import PrivilegeError, become

        inputs = files_of(self.confdir, self.runtime.secrets, self.runtime.conns)
        try:
            become(self.account, self.run_dir, self.pidfile, inputs)
        except PrivilegeError as exc:
            print(f"ikegate: {exc}", file=sys.stderr)
            return False
        return True

    def _refused(self, what: str, errors: list[str]) -> dict:
        log.info("%s reload refused, the running %s is kept: %s", what, what, "; ".join(errors))
        return {"ok": False, "error": f"{what} has errors: not loaded, the running {what} is kept", "errors": errors}

    # -- packets in --------------------------------------------------------------------------

    def _readable(self, sock: IkeSocket) -> None:
        for data, src, dst in sock.recv_batch():
            self.datagram_received(sock, data, src, dst)
        self._arm_timer()

    def datagram_received(self, sock: IkeSocket, data: bytes, src, dst) -> None:
        """One UDP datagram from port 500 or 4500 (where ESP-in-UDP shares the port)."""
        if sock.natt:
            if data[:4] == NON_ESP_MARKER:
                data = data[4:]
            elif data == NAT_KEEPALIVE:
                return
            else:
                handler = getattr(self.dataplane, "esp_in_udp", None)
                if handler is not None:
                    handler(data, src, dst)
                return
        self.ike_received(data, src, dst)

    def ike_received(self, data: bytes, src, dst) -> None:
        """One IKE message (non-ESP marker stripped); safe to call only from the loop's thread
        (a data plane reading port 4500 in another thread uses ``loop.call_soon_threadsafe``)."""
        self.process(self.gateway.receive(data, src, dst, self.loop.time()))

    # -- outputs -------------------------------------------------------------------------------

    def process(self, outputs: list) -> None:
        """Carry out what the engine returned: datagrams out (IKE, and RADIUS through the
        RADIUS edge, which also sees every event first for accounting), CHILD SAs to the
        data plane and the updown script (with the conn the SA was made with, even after a
        reload), SA keys to the key log if there is one.  IKE datagrams go out last, so a
        CHILD SA is in the data plane before the IKE_AUTH response that completes it leaves
        (the client may send ESP at once; strongSwan installs first too): a data plane
        that installs asynchronously (the userspace workers, routes queued to netlink) is
        waited for through its ``when_ready``, at most :data:`INSTALL_WAIT_MAX` seconds."""
        keylog = self.keylog
        radius = self.radius
        sends = []
        installed = False
        for item in outputs:
            if isinstance(item, Send):
                sends.append(item)
                continue
            if isinstance(item, RadiusSend):  # an Access-Request of eap-radius
                if radius is not None:
                    radius.send(item)
                continue
            if radius is not None:
                radius.event(item)  # accounting: before the data plane forgets a CHILD SA's counters
            if keylog is not None:
                keylog.record(item)
            if isinstance(item, ChildSaUp):
                self.dataplane.install(item.info)
                installed = True
                conn = self._child_conns.get(item.rekey_of.child_unique_id) if item.rekey_of is not None else None
                conn = conn or self._conn(item.info.conn)
                self._child_conns[item.info.child_unique_id] = conn
                if item.rekey_of is None:  # strongSwan runs updown on up/down, not on rekeys
                    self.updown.child_up(item.info, conn)
            elif isinstance(item, ChildSaDown):
                self.dataplane.remove(item.info)
                conn = self._child_conns.pop(item.info.child_unique_id, None) or self._conn(item.info.conn)
                if not item.replaced:
                    self.updown.child_down(item.info, conn)
            elif isinstance(item, ChildSaUpdated):
                self.dataplane.update(item.info)
            elif isinstance(item, (IkeSaUp, IkeSaDown, IkeSaKeys)):
                pass  # logged by the engine; keys went to the key log above
        if sends and not (installed and self._send_when_installed(sends)):
            for item in sends:
                self.send(item)
        self._arm_timer()

    def _send_when_installed(self, sends: list) -> bool:
        """Send ``sends`` once the data plane has applied the installs before them (or after
        :data:`INSTALL_WAIT_MAX` seconds in any case); False if it installs synchronously."""
        when_ready = getattr(self.dataplane, "when_ready", None)
        if when_ready is None:
            return False
        done = False

        def release(late: bool = False) -> None:
            nonlocal done
            if done:
                return
            done = True
            timer.cancel()
            if late:
                log.info("data plane slow to install a CHILD SA: answering after %.1f s anyway", INSTALL_WAIT_MAX)
            for item in sends:
                self.send(item)

        timer = self.loop.call_later(INSTALL_WAIT_MAX, release, True)
        if not when_ready(release):
            timer.cancel()
            return False
        return True

    def _esp_last_in(self, spi_in: int) -> float | None:
        counters = self.dataplane.counters(spi_in)
        return counters.last_in if counters is not None else None

    def esp_peer_moved(self, spi_in: int, src, now: float | None = None) -> None:
        """The data plane saw authenticated ESP-in-UDP of ``spi_in`` from a new source (loop thread)."""
        self.process(self.gateway.esp_peer_moved(spi_in, src, self.loop.time() if now is None else now))

    def _conn(self, name: str):
        for conn in self.runtime.conns:
            if conn.name == name:
                return conn
        return None

    def send(self, item: Send) -> None:
        family = socket.AF_INET6 if ":" in item.dst.host else socket.AF_INET
        port = item.src.port
        for sock in self.sockets:
            if sock.family == family and sock.local_port == port:
                data = NON_ESP_MARKER + item.data if sock.natt and item.marker else item.data
                sock.send(data, item.src, item.dst)
                return
        log.info("no socket for %s -> %s, datagram dropped", item.src, item.dst)

    def socket_for(self, family: int, natt: bool = True) -> IkeSocket | None:
        for sock in self.sockets:
            if sock.family == family and sock.natt == natt:
                return sock
        return None

    # -- the clock ---------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        self._wakeup.at(self.loop, self.gateway.next_timer())

    def _on_timer(self) -> None:
        self.process(self.gateway.tick(self.loop.time()))
