"""``ikegate start --user NAME``: running as an unprivileged user with three capabilities.

The gateway starts as root, reads its configuration and secrets, binds UDP 500 and 4500,
then becomes ``NAME`` (uid, primary gid, no supplementary groups) keeping only

* ``CAP_NET_ADMIN``: the TUN device, its link settings and routes (netlink), socket buffer
  sizes beyond the limits (``SO_RCVBUFFORCE``);
* ``CAP_NET_RAW``: the raw IP-protocol-50 sockets of native ESP;
* ``CAP_NET_BIND_SERVICE``: ports below 1024 (already bound; kept for what a reload or an
  updown script may need, as charon keeps it).

How (Linux, through libc with ctypes; no dependency):

1. every other capability leaves the *bounding* set (``PR_CAPBSET_DROP``), so nothing run
   later, setuid-root programs included, can get it back;
2. ``PR_SET_KEEPCAPS``, then ``setgroups([])``, ``setresgid`` and ``setresuid`` to the user
   (real, effective and saved ids: no way back to root);
3. ``capset``: the three in the permitted, effective and inheritable sets;
4. the three raised in the *ambient* set, so programs the gateway runs keep them: the
   ``leftupdown`` script (``ip route``, ``ip neigh``, nftables work unchanged as the user)
   and the ESP worker processes.  strongSwan's charon keeps the same capabilities
   (``lib->caps->keep``) but no ambient set, so its updown scripts run without them as a
   non-root user; ikegate chooses to let the script do what it did as root *on the
   network*, nothing more: a script that writes root-owned files needs ``sudo`` rules or a
   gateway without ``--user``;
5. a check that root is out of reach (``setresuid(0)`` must fail).

Capabilities belong to a *thread*, not a process: :func:`drop` refuses to run while the
process has more than one thread (a thread started before would keep root's or lose
everything), so the daemon drops right after binding its UDP sockets, before the data
plane starts its netlink thread and ESP workers; the TUN device, the routes, the raw
sockets and the control socket are then opened with the kept capabilities only.  The run
directory (control socket, pid file) is handed to the user first, so the control socket
belongs to it (mode 0600, in a 0700 directory) and removing it at exit works; root's
``ikegate`` commands still connect (root passes file permissions).  Other processes of
the same user could connect too: run the gateway as an account of its own (``useradd
--system ikegate``) rather than a shared one like ``nobody``.

Reloads (``reload``, ``reload-secrets``, SIGHUP) read the files as the user, as charon
does: keeping ``CAP_DAC_READ_SEARCH`` instead would let a compromised gateway read every
file of the machine.  So with ``--user`` the secrets and keys must belong to that user
(mode 0600 still; the permission check accepts root or that user as owner): at start the
daemon logs, for each file a reload could not read, the ``chown`` that fixes it, and a
reload that cannot read a file of the running configuration is refused (rather than
silently losing the users in it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import os
import pwd
from dataclasses import dataclass
from typing import Iterable

__all__ = [
    "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "KEPT_CAPABILITIES", "Account", "PrivilegeError",
    "become", "capability_sets", "drop", "resolve_account",
]

CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
KEPT_CAPABILITIES = (CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE)
CAP_NAMES = {CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE", CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_NET_RAW: "CAP_NET_RAW"}

# <linux/prctl.h>
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
# <linux/capability.h>
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(RuntimeError):
    """The user cannot be found, or dropping to it failed (the message says what to do)."""


@dataclass(frozen=True)
class Account:
    """The user to run as: its name, uid and primary gid."""

    name: str
    uid: int
    gid: int

    def __str__(self) -> str:
        try:
            group = grp.getgrgid(self.gid).gr_name
        except KeyError:
            group = str(self.gid)
        return f"{self.name} (uid {self.uid}, gid {self.gid} {group})"


def resolve_account(name: str) -> Account:
    """The account of a user name (or a numeric uid that has a passwd entry)."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise PrivilegeError(f"--user {name}: no such user") from None
    if entry.pw_uid == 0:
        raise PrivilegeError(f"--user {name}: this is root (uid 0); name an unprivileged user")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _libc.prctl.restype = ctypes.c_int
        for name in ("capget", "capset"):
            getattr(_libc, name).argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
            getattr(_libc, name).restype = ctypes.c_int
    return _libc


def _prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> None:
    if _c().prctl(option, arg2, arg3, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise PrivilegeError(f"{what} failed: {os.strerror(errno)}")


def _mask(caps: Iterable[int]) -> int:
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    return mask


def capability_sets() -> dict[str, int]:
    """This thread's effective, permitted and inheritable capability masks (capget)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _c().capget(ctypes.byref(header), data) != 0:
        raise PrivilegeError(f"capget failed: {os.strerror(ctypes.get_errno())}")
    return {name: getattr(data[0], name) | (getattr(data[1], name) << 32)
            for name in ("effective", "permitted", "inheritable")}


def _capset(mask: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        word = (mask >> (32 * index)) & 0xFFFFFFFF
        data[index].effective = data[index].permitted = data[index].inheritable = word
    if _c().capset(ctypes.byref(header), data) != 0:
        raise PrivilegeError(f"capset failed: {os.strerror(ctypes.get_errno())}")


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one of Linux 5.9+


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def drop(account: Account, *, keep: Iterable[int] = KEPT_CAPABILITIES, hand_over: Iterable[str | os.PathLike] = ()) -> None:
    """Become ``account`` keeping only the capabilities ``keep`` (see the module docstring).

    ``hand_over`` are paths (the run directory, ...) chowned to the account first.  Must be
    called by root while the process has a single thread.  Raises :class:`PrivilegeError`;
    a failure after the user changed leaves the process unusable: the caller exits."""
    keep = tuple(keep)
    if os.geteuid() != 0:
        raise PrivilegeError(f"--user {account.name} needs ikegate to be started as root")
    threads = _threads()
    if threads != 1:
        raise PrivilegeError(f"cannot drop privileges with {threads} threads running (capabilities are per "
                             "thread): drop before the data plane starts")
    for path in hand_over:
        os.chown(path, account.uid, account.gid)
    for cap in range(_last_capability() + 1):
        if cap not in keep and _c().prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:  # (a unit may have dropped it)
            _prctl(PR_CAPBSET_DROP, cap, what=f"dropping capability {cap} from the bounding set")
    _prctl(PR_SET_KEEPCAPS, 1, what="PR_SET_KEEPCAPS")
    try:
        os.setgroups([])
        os.setresgid(account.gid, account.gid, account.gid)
        os.setresuid(account.uid, account.uid, account.uid)
    except OSError as exc:
        raise PrivilegeError(f"changing to user {account}: {exc.strerror}") from None
    _capset(_mask(keep))
    _prctl(PR_SET_KEEPCAPS, 0, what="clearing PR_SET_KEEPCAPS")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="clearing the ambient capabilities")
    for cap in keep:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, what=f"raising ambient capability {cap}")
    try:
        os.setresuid(0, 0, 0)
    except PermissionError:
        pass
    else:
        raise PrivilegeError("after dropping privileges the process could become root again")
    sets = capability_sets()
    if sets["effective"] != _mask(keep) or sets["permitted"] != _mask(keep):
        raise PrivilegeError(f"capabilities after the drop are {sets}, not {_mask(keep):#x}")


def become(account: Account, run_dir: str | os.PathLike, pidfile: str | os.PathLike,
           reload_inputs: Iterable[str | os.PathLike] = ()) -> None:
    """The daemon's drop: :func:`drop` handing over ``run_dir`` (and a ``pidfile`` left
    there), then checks that the user can write the control socket and ``pidfile``, and
    logs a warning for each of ``reload_inputs`` (the files a reload reads again) it
    cannot read.  Raises :class:`PrivilegeError` with a message for the admin."""
    from ikegate.config.permissions import unreadable
    from ikegate.log import get_logger

    log = get_logger("dmn")
    inputs = list(reload_inputs)
    # a pid file left by an earlier run as root could not be rewritten by the user
    hand_over = [run_dir] + ([pidfile] if os.path.isfile(pidfile) else [])
    try:
        drop(account, hand_over=hand_over)
    except (OSError, PrivilegeError) as exc:
        raise PrivilegeError(f"cannot run as user {account.name}: {exc}") from None
    for directory in dict.fromkeys((os.fspath(run_dir), os.path.dirname(os.fspath(pidfile)) or ".")):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PrivilegeError(f"user {account.name} cannot write to {directory} (control socket, pid file): "
                                 "choose a directory it can reach, such as /run/ikegate")
    log.info("running as user %s, keeping only %s", account, describe())
    for problem in unreadable(inputs, account.name):
        log.info("reload and reload-secrets will be refused until this is fixed: %s", problem)


def describe(keep: Iterable[int] = KEPT_CAPABILITIES) -> str:
    """``CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE``."""
    return ", ".join(CAP_NAMES.get(cap, f"capability {cap}") for cap in keep)
