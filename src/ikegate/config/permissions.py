"""Refusing secrets that someone else can read: ipsec.secrets, its includes, private keys.

strongSwan reads whatever it is given; ikegate, like OpenSSH with its private keys, refuses
a secrets file or a private key file that its group or other users may read, write or
execute (any of the mode bits ``0o077``), or that belongs to a user other than root or the
gateway's own user (its owner could read it, whatever the mode).  A user's password, an
NT hash or the server's private key leaks to every local account otherwise, without any
sign of it.

The check sits at the daemon's edge (``ikegate start``, ``reload``, ``reload-secrets``,
SIGHUP: :mod:`ikegate.daemon.main` calls :func:`loose_secrets` and :func:`refusals` after
loading), not in the parser, so ``ikegate config check`` and the parser's tests see files as they are.  Each
problem names the file and the command that fixes it (``chmod 600 FILE``).

:func:`unreadable` serves a gateway that dropped to an unprivileged user (``--user``): the
files it loaded as root must still be readable on ``reload``, or the reload is refused
(rather than dropping the users of a file it can no longer open).
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

__all__ = [
    "FileProblem", "LOOSE_BITS", "check_file", "check_secrets", "files_of", "loose_secrets", "refusals", "secret_files",
    "unreadable",
]

#: Mode bits that give the group or other users any access.
LOOSE_BITS = 0o077
_VERBS = ((4, "readable"), (2, "writable"), (1, "executable"))


@dataclass(frozen=True)
class FileProblem:
    """Why ``path`` is refused, and the command that fixes it."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.fix})"


def secret_files(secrets) -> list[tuple[str, str]]:
    """``(path, what)`` for every file a :class:`~ikegate.config.secrets.Secrets` was read
    from: ipsec.secrets and each file it included (``secrets file``), and each private key
    file it loaded (``private key``), without duplicates, in the order they were read."""
    seen: set[str] = set()
    files: list[tuple[str, str]] = []
    for path in getattr(secrets, "files", ()) or ():
        if str(path) not in seen:
            seen.add(str(path))
            files.append((str(path), "secrets file"))
    for entry in getattr(secrets, "entries", ()) or ():
        if entry.key_path is not None and entry.private_key is not None and str(entry.key_path) not in seen:
            seen.add(str(entry.key_path))
            files.append((str(entry.key_path), "private key"))
    return files


def files_of(confdir: str | os.PathLike, secrets, conns: Iterable = ()) -> list[str]:
    """The files a reload reads again: ipsec.conf, strongswan.conf, the secrets files and
    key files, the conns' certificates and the CA certificates.  Listed before dropping
    privileges, checked with :func:`unreadable` after."""
    confdir = Path(confdir)
    paths = [str(confdir / "ipsec.conf"), str(confdir / "strongswan.conf")]
    paths += [path for path, _what in secret_files(secrets)]
    paths += [str(conn.local.cert) for conn in conns if getattr(conn.local, "cert", None)]
    try:
        paths += sorted(str(p) for p in (confdir / "ipsec.d" / "cacerts").iterdir() if p.is_file())
    except OSError:
        pass
    return paths


def check_file(path: str | os.PathLike, what: str = "secrets file", *, owners: Iterable[int] | None = None,
               owner_hint: str = "root") -> FileProblem | None:
    """The problem with ``path`` as a holder of secrets, or None if only its owner can use
    it and that owner is one of ``owners`` (default: root and the effective user).

    A path that cannot be examined (gone since it was read) is not a problem here: the
    loader reports missing files.  ``owner_hint`` is the user named in the ``chown`` fix."""
    path = str(path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    allowed = {0, os.geteuid()} if owners is None else set(owners)
    mode = stat.S_IMODE(st.st_mode)
    if mode & LOOSE_BITS:
        return FileProblem(path, f"{what} is {_describe_access(mode)} (mode {mode:04o}): refused, only its "
                           "owner may have access to it", f"chmod 600 {path}")
    if st.st_uid not in allowed:
        return FileProblem(path, f"{what} belongs to {_user_name(st.st_uid)}, who can read it: refused, it "
                           f"must belong to {owner_hint}", f"chown {owner_hint} {path}")
    return None


def check_secrets(secrets, *, owners: Iterable[int] | None = None, owner_hint: str = "root") -> list[FileProblem]:
    """The problems of every file in :func:`secret_files` (empty: all private)."""
    problems = []
    for path, what in secret_files(secrets):
        problem = check_file(path, what, owners=owners, owner_hint=owner_hint)
        if problem is not None:
            problems.append(problem)
    return problems


def loose_secrets(secrets, account=None) -> list[FileProblem]:
    """:func:`check_secrets` as the daemon applies it: files may belong to root, to the
    effective user or to the ``--user`` ``account`` (a :class:`~ikegate.daemon.privileges.Account`)."""
    owners = {0, os.geteuid()} | ({account.uid} if account is not None else set())
    return check_secrets(secrets, owners=owners, owner_hint=account.name if account is not None else "root")


def refusals(secrets, running_files: Iterable[str | os.PathLike], account=None) -> list[FileProblem]:
    """Why a reload must not use newly loaded ``secrets``: a file of the running
    configuration (``running_files``, see :func:`files_of`) that this process can no longer
    read, whose users the loader would silently leave out; a file others may read."""
    if account is not None:
        user = account.name
    else:
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
    return unreadable(running_files, user) + loose_secrets(secrets, account)


def unreadable(paths: Iterable[str | os.PathLike], user: str) -> list[FileProblem]:
    """The ``paths`` this process can no longer open for reading (permission denied: e.g.
    root-only files after dropping to ``user``), each with the ``chown`` that fixes it (of
    the file, or of the first directory on its way that is closed to ``user``).  Paths
    that are gone are not listed."""
    problems = []
    for path in dict.fromkeys(str(p) for p in paths):
        try:
            with open(path, "rb"):
                pass
        except PermissionError:
            closed = _closed_directory(path)
            if closed is None:
                problems.append(FileProblem(path, f"not readable by user '{user}', whom the gateway runs as",
                                            f"chown {user} {path}"))
            else:
                problems.append(FileProblem(path, f"not reachable by user '{user}', whom the gateway runs as "
                                            f"(directory {closed} is closed to it)", f"chown {user} {closed}"))
        except OSError:
            continue
    return problems


def _closed_directory(path: str) -> str | None:
    """The first directory above ``path`` this process may not search, or None."""
    parts = Path(os.path.abspath(path)).parents
    for directory in reversed(parts):
        if not os.access(directory, os.X_OK):
            return str(directory)
    return None


def _describe_access(mode: int) -> str:
    """``readable by its group and others``, ``writable by others`` ..."""
    parts = []
    for who, shift in (("its group", 3), ("others", 0)):
        verbs = [verb for bit, verb in _VERBS if (mode >> shift) & bit]
        if verbs:
            parts.append((" and ".join(verbs), who))
    if len(parts) == 2 and parts[0][0] == parts[1][0]:
        return f"{parts[0][0]} by its group and others"
    return ", ".join(f"{verbs} by {who}" for verbs, who in parts)


def _user_name(uid: int) -> str:
    try:
        return f"user '{pwd.getpwuid(uid).pw_name}' (uid {uid})"
    except KeyError:
        return f"uid {uid}"
