"""Adding, changing and removing EAP users in ipsec.secrets and its includes, safely.

This is the file editing behind ``ikegate user add|passwd|del`` (the command line is
``ikegate.config.commands_user``).  A user is an ``EAP``, ``NTLM`` or ``XAUTH`` line
(the secrets EAP-MSCHAPv2 looks up) whose only selector is the user's name, compared as
strongSwan compares identities (so ``Alice`` and ``alice`` are the same user).

Which file
    ``passwd`` and ``del`` edit the file that holds the user's line now, wherever the
    includes of ``CONFDIR/ipsec.secrets`` put it (``SecretEntry.source``).  ``add``
    appends to the file given (``file=``), else to :data:`DEFAULT_USERS_FILE`,
    ``CONFDIR/ipsec.d/secrets/users``: next to the seed guide's
    ``include ipsec.d/secrets/myvpn``, in a directory that holds only secrets (mode
    0700 when it is created here).  If ipsec.secrets does not read that file yet
    (directly or through a glob), an ``include`` line for it is appended to
    ipsec.secrets, relative when the file is below CONFDIR.

What is written
    ``NAME : NTLM 0x<MD4 of the UTF-16LE password>`` by default, so the file holds no
    password; ``NAME : EAP "password"`` with ``plaintext=True`` (single quotes when the
    password holds a double quote).  A name is written bare when it can be, else in
    double quotes (single quotes if it holds a double quote).  Names and passwords that
    ipsec.secrets cannot represent are refused (:func:`check_name`,
    :func:`check_password`), and so are names that would be a wildcard or ``%any``.

How
    One edit at a time per configuration directory (``fcntl.flock`` on
    ``CONFDIR/.ipsec.secrets.lock``, like shadow's ``/etc/.pwd.lock``).  Only the
    user's lines change; every other byte stays.  Each file is written to a temporary
    file in its own directory with mode 0600 and the original's owner, fsynced and
    renamed over the original (``os.replace``; a symlink is followed, not replaced).
    Changing a password replaces the line that is in effect and removes the user's
    other lines (an old NTLM line would otherwise win over a new EAP one).  Afterwards
    the files are read back with :func:`ikegate.config.secrets.load_secrets`: if that
    shows an error that was not there before, or the user's secret is not the one just
    written, every file is restored and :class:`UserError` raised.

A user's line listing several ids (``alice bob : EAP ...``, or a server id and the
user) is not split up: such changes are refused with the line's location, for editing
by hand.  Nothing here prints or logs a password or hash.
"""

from __future__ import annotations

import fcntl
import glob
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ikegate.config.errors import Diagnostics
from ikegate.config.secrets import MAX_SECRETS_RECURSION, SecretEntry, Secrets, load_secrets
from ikegate.crypto.mschap import nt_password_hash
from ikegate.files import atomic_write
from ikegate.identity import ID_ANY, Identity

__all__ = [
    "DEFAULT_USERS_FILE",
    "LOCK_NAME",
    "UserChange",
    "UserError",
    "UserExists",
    "UserNotFound",
    "add_user",
    "check_name",
    "check_password",
    "delete_user",
    "format_name",
    "nt_hash",
    "secret_line",
    "set_password",
    "user_entries",
]

#: Where ``add`` puts new users unless told otherwise (relative to the confdir).
DEFAULT_USERS_FILE = Path("ipsec.d") / "secrets" / "users"
#: The lock file in the confdir that serialises edits.
LOCK_NAME = ".ipsec.secrets.lock"
#: RFC 2759 section 8.1: the password is "0-to-256-unicode-char" (UTF-16 code units).
MAX_PASSWORD_UNITS = 256
#: Secret types whose lines are user credentials (XAUTH secrets are EAP secrets).
USER_KINDS = ("EAP", "NTLM", "XAUTH")
FILE_MODE = 0o600


class UserError(Exception):
    """The change cannot be made; the files are as they were."""


class UserExists(UserError):
    """``add`` of a user who already has a secret."""


class UserNotFound(UserError):
    """``passwd``/``del`` of a user without a secret."""


@dataclass(frozen=True)
class UserChange:
    """What an edit did.

    ``kind`` is ``"NTLM"`` or ``"EAP"`` for add/passwd (None for del); ``location`` is
    the user's line now, ``(file, line)``; ``files`` the files written, in order;
    ``include_added`` the file an ``include`` line was added to ipsec.secrets for;
    ``notes`` things the administrator should know (never secrets).
    """

    action: str
    name: str
    kind: str | None
    location: tuple[str, int] | None
    files: tuple[Path, ...]
    include_added: Path | None = None
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------
# Names, passwords, lines


def nt_hash(password: str) -> bytes:
    """The NT password hash: MD4 of the UTF-16LE password (RFC 2759 section 8.3)."""
    return nt_password_hash(password)


def check_name(name: str) -> Identity:
    """The identity ``name`` stands for in ipsec.secrets; raises :class:`UserError`
    when the name cannot be written there or would not name one user."""
    if not isinstance(name, str) or not name:
        raise UserError("the user name is empty")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise UserError("the user name contains a control character, line break or undecodable byte")
    if " : " in name:
        raise UserError("the user name cannot contain ' : ' (it ends the ids of an ipsec.secrets line)")
    if '"' in name and "'" in name:
        raise UserError("the user name cannot contain both kinds of quotes (ipsec.secrets has no escapes)")
    if "*" in name:
        raise UserError("'*' is a wildcard in ipsec.secrets: a user name cannot contain it")
    try:
        identity = Identity.parse(name)
    except ValueError:
        raise UserError("the user name is not a valid identity (the part after '#' must be hexadecimal)") from None
    if identity.id_type == ID_ANY:
        raise UserError(f"'{name}' means any identity in ipsec.secrets, not a user")
    return identity


def check_password(password: str, plaintext: bool = False) -> None:
    """Raise :class:`UserError` for a password that cannot be stored or used."""
    if not isinstance(password, str) or not password:
        raise UserError("the password is empty")
    if any(c in password for c in "\n\r\0"):
        raise UserError("the password contains a line break or NUL character")
    try:
        units = len(password.encode("utf-16-le")) // 2
    except UnicodeEncodeError:
        raise UserError("the password is not valid text (undecodable bytes)") from None
    if units > MAX_PASSWORD_UNITS:
        raise UserError(f"the password is longer than MS-CHAPv2's {MAX_PASSWORD_UNITS} characters")
    if plaintext and '"' in password and "'" in password:
        raise UserError("a plaintext password cannot contain both kinds of quotes (ipsec.secrets has no "
                        "escapes); store it as an NT hash instead")


def format_name(name: str) -> str:
    """``name`` as an ipsec.secrets selector: bare when the reader takes it as one word,
    else quoted (``"..."``, or ``'...'`` when it holds a double quote)."""
    bare = name and not (
        any(c.isspace() for c in name)
        or name[0] in "#:"
        or '"' in name
        or "'" in name
        or name.startswith("include")
    )
    if bare:
        return name
    quote = "'" if '"' in name else '"'
    return f"{quote}{name}{quote}"


def secret_line(name: str, password: str, plaintext: bool = False) -> str:
    """The line for ``name`` (without line end): ``NAME : NTLM 0x<hash>`` or, with
    ``plaintext``, ``NAME : EAP "password"``.  Checks name and password first."""
    check_name(name)
    check_password(password, plaintext)
    if not plaintext:
        return f"{format_name(name)} : NTLM 0x{nt_hash(password).hex()}"
    quote = "'" if '"' in password else '"'
    return f"{format_name(name)} : EAP {quote}{password}{quote}"


def _expected(password: str, plaintext: bool) -> tuple[str, bytes]:
    """The (type, value) the secrets reader makes of :func:`secret_line`'s line."""
    return ("EAP", password.encode("utf-8")) if plaintext else ("NTLM", nt_hash(password))


def user_entries(secrets: Secrets, identity: Identity) -> list[SecretEntry]:
    """The user credential entries (EAP, NTLM, XAUTH) with ``identity`` among their
    selectors, in file order."""
    return [
        e for e in secrets.entries
        if e.kind in USER_KINDS and any(s.equals(identity) for s in e.selectors)
    ]  # fmt: skip


def _where(entry: SecretEntry) -> str:
    return f"{entry.source[0]}:{entry.source[1]}"


def _location(entry: SecretEntry) -> tuple[str, int]:
    return os.path.realpath(entry.source[0]), entry.source[1]


def _effective(secrets: Secrets, identity: Identity) -> SecretEntry | None:
    """The entry EAP-MSCHAPv2 would use for ``identity`` (NTLM before EAP, as
    ``Secrets.find_eap`` does)."""
    for shared_class in ("NTLM", "EAP"):
        entry = secrets.find_shared(shared_class, None, identity)
        if entry is not None:
            return entry
    return None


def _refuse_shared(entries: list[SecretEntry], name: str) -> None:
    for entry in entries:
        if len(entry.selectors) > 1:
            raise UserError(f"{name}'s secret at {_where(entry)} is shared with other ids "
                            f"({entry.selector_text}); edit that line by hand")


# ------------------------------------------------------------------------------------
# The edits


def add_user(confdir: str | os.PathLike, name: str, password: str, *, plaintext: bool = False,
             file: str | os.PathLike | None = None) -> UserChange:
    """Add ``name`` with ``password`` to ``file`` (default ``CONFDIR/``
    :data:`DEFAULT_USERS_FILE`), including that file from ipsec.secrets if needed.

    Raises :class:`UserExists` if the user has a secret already, :class:`UserError`
    for anything else that stops the change (the files are then unchanged)."""
    identity = check_name(name)
    line = secret_line(name, password, plaintext)
    with _Edit(confdir) as edit:
        secrets, before = edit.load()
        existing = user_entries(secrets, identity)
        if existing:
            raise UserExists(f"user {name} already exists ({_where(existing[-1])}); "
                             "use 'ikegate user passwd' to change the password")
        target = Path(file) if file is not None else edit.confdir / DEFAULT_USERS_FILE
        target = Path(os.path.realpath(target))
        keep = (str(target), edit.append(target, line))
        include_added = None
        secrets, _ = edit.load()
        if not _reads(secrets, target):
            edit.append(edit.secrets_path, _include_line(target, edit.secrets_path))
            include_added = target
        notes = edit.verify(name, identity, keep, _expected(password, plaintext), before)
        return UserChange("add", name, "EAP" if plaintext else "NTLM", keep, edit.written,
                          include_added, notes)


def set_password(confdir: str | os.PathLike, name: str, password: str, *,
                 plaintext: bool = False) -> UserChange:
    """Give ``name`` a new password, in place of the line in effect; the user's other
    lines go.  Raises :class:`UserNotFound` or :class:`UserError`."""
    identity = check_name(name)
    line = secret_line(name, password, plaintext)
    with _Edit(confdir) as edit:
        secrets, before = edit.load()
        entries = _existing(secrets, identity, name, edit)
        target = _preferred(entries)
        changes: dict[tuple[str, int], str | None] = {_location(e): None for e in entries}
        changes[_location(target)] = line
        keep = edit.apply(changes, _location(target))
        keep = edit.drop_stale(identity, keep)
        notes = edit.verify(name, identity, keep, _expected(password, plaintext), before)
        return UserChange("passwd", name, "EAP" if plaintext else "NTLM", keep, edit.written, None, notes)


def delete_user(confdir: str | os.PathLike, name: str) -> UserChange:
    """Remove every line of ``name``.  Raises :class:`UserNotFound` or :class:`UserError`."""
    identity = check_name(name)
    with _Edit(confdir) as edit:
        secrets, before = edit.load()
        entries = _existing(secrets, identity, name, edit)
        edit.apply({_location(e): None for e in entries}, None)
        edit.drop_stale(identity, None)
        notes = edit.verify(name, identity, None, None, before)
        return UserChange("del", name, None, None, edit.written, None, notes)


def _existing(secrets: Secrets, identity: Identity, name: str, edit: "_Edit") -> list[SecretEntry]:
    entries = user_entries(secrets, identity)
    if not entries:
        where = edit.secrets_path if edit.secrets_path.exists() else f"{edit.secrets_path} (missing)"
        raise UserNotFound(f"no user {name} in {where} or its includes")
    _refuse_shared(entries, name)
    return entries


def _preferred(entries: list[SecretEntry]) -> SecretEntry:
    """Of one user's lines, the one in effect: the last NTLM line, else the last EAP one."""
    ntlm = [e for e in entries if e.kind == "NTLM"]
    return (ntlm or entries)[-1]


def _reads(secrets: Secrets, path: Path) -> bool:
    real = os.path.realpath(path)
    return any(os.path.realpath(f) == real for f in secrets.files)


def _include_line(target: Path, secrets_path: Path) -> str:
    """``include <target>``, relative to ipsec.secrets' directory when below it."""
    base = Path(os.path.realpath(secrets_path.parent))
    try:
        text = str(target.relative_to(base))
    except ValueError:
        text = str(target)
    if any(c.isspace() for c in text):
        raise UserError(f"{target} cannot be included from ipsec.secrets (an include path cannot contain "
                        "blanks); choose another --file")
    return f"include {glob.escape(text)}"


# ------------------------------------------------------------------------------------
# One locked, undoable editing session


class _Edit:
    """Holds the lock, writes files atomically, remembers the originals to undo."""

    def __init__(self, confdir: str | os.PathLike) -> None:
        self.confdir = Path(confdir).absolute()
        self.secrets_path = self.confdir / "ipsec.secrets"
        self._originals: dict[Path, tuple[bytes, os.stat_result] | None] = {}
        self._lock_fd: int | None = None
        self._keys: dict[tuple[str, bytes | None], tuple[object, Exception | None]] = {}

    @property
    def written(self) -> tuple[Path, ...]:
        return tuple(self._originals)

    def __enter__(self) -> "_Edit":
        if not self.confdir.is_dir():
            raise UserError(f"{self.confdir} is not a directory")
        try:
            fd = os.open(self.confdir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise UserError(f"cannot create the lock file {self.confdir / LOCK_NAME}: {exc.strerror}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self._rollback(exc)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    # -- reading ----------------------------------------------------------------------

    def load(self) -> tuple[Secrets, Diagnostics]:
        diagnostics = Diagnostics()
        if not self.secrets_path.exists():
            return Secrets(), diagnostics
        secrets = load_secrets(self.secrets_path, self.confdir / "ipsec.d" / "private", diagnostics,
                               self._load_key)
        return secrets, diagnostics

    def _load_key(self, path: Path, passphrase: bytes | None):
        """The private keys of key lines, loaded once per session (the edits never
        touch them, and loading an RSA key is the slow part of reading the files)."""
        from ikegate.pki.keys import load_private_key

        cache_key = (str(path), passphrase)
        if cache_key not in self._keys:
            try:
                self._keys[cache_key] = (load_private_key(path, passphrase), None)
            except Exception as exc:  # reported by the reader as the line's error, every time
                self._keys[cache_key] = (None, exc)
        key, error = self._keys[cache_key]
        if error is not None:
            raise error
        return key

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return b""

    # -- writing ----------------------------------------------------------------------

    def append(self, path: Path, line: str) -> int:
        """Append ``line`` to ``path`` (created if missing); returns its line number."""
        path = Path(os.path.realpath(path))
        data = self._read(path)
        eol = b"\r\n" if data.endswith(b"\r\n") else b"\n"
        if data and not data.endswith(b"\n"):
            data += eol
        data += line.encode("utf-8") + eol
        self._write(path, data)
        return len(data.split(b"\n")) - 1

    def apply(self, changes: dict[tuple[str, int], str | None],
              keep: tuple[str, int] | None) -> tuple[str, int] | None:
        """Replace (str) or remove (None) lines, given as (real path, line number);
        returns where the line at ``keep`` is afterwards."""
        by_file: dict[str, dict[int, str | None]] = {}
        for (path, number), line in changes.items():
            by_file.setdefault(path, {})[number] = line
        # the file with the kept line first: a user is never without a secret in between
        order = sorted(by_file, key=lambda p: keep is None or p != keep[0])
        for path in order:
            edits = by_file[path]
            lines = self._read(Path(path)).split(b"\n")
            if max(edits) > len(lines):
                raise UserError(f"{path} changed while it was being edited; try again")
            for number in sorted(edits, reverse=True):
                old = lines[number - 1]
                new = edits[number]
                if new is None:
                    del lines[number - 1]
                else:
                    lines[number - 1] = new.encode("utf-8") + (b"\r" if old.endswith(b"\r") else b"")
            self._write(Path(path), b"\n".join(lines))
            if keep is not None and keep[0] == path:
                removed = sum(1 for n, line in edits.items() if line is None and n < keep[1])
                keep = (path, keep[1] - removed)
        return keep

    def drop_stale(self, identity: Identity, keep: tuple[str, int] | None) -> tuple[str, int] | None:
        """Remove the user's lines other than ``keep`` until none shows up on reading.

        A line identical to a later one is hidden by the reader (strongSwan keeps
        one copy), so it appears only once the later one is gone."""
        for _ in range(4 * MAX_SECRETS_RECURSION):
            secrets, _ = self.load()
            stale = [e for e in user_entries(secrets, identity) if _location(e) != keep]
            if not stale:
                return keep
            _refuse_shared(stale, str(identity))
            keep = self.apply({_location(e): None for e in stale}, keep)
        raise UserError("the user's lines keep reappearing; edit the secrets files by hand")

    def verify(self, name: str, identity: Identity, keep: tuple[str, int] | None,
               expected: tuple[str, bytes] | None, before: Diagnostics) -> tuple[str, ...]:
        """Read the files back: no new errors, and the user's secret is the one written
        (or gone).  Raises :class:`UserError` (the caller's ``with`` restores)."""
        secrets, after = self.load()
        new = _new_errors(before, after)
        if new:
            raise UserError("the change would break the secrets files: " + "; ".join(map(str, new)))
        entries = user_entries(secrets, identity)
        notes: list[str] = []
        if expected is None:
            if entries:
                raise UserError(f"{name} still has a secret at {_where(entries[0])}")
            left = _effective(secrets, identity)
            if left is not None:
                notes.append(f"{name} still matches the secret at {_where(left)} "
                             f"({left.selector_text or '%any'}), which is not the user's own")
            return tuple(notes)
        kind, value = expected
        ours = [e for e in entries if _location(e) == keep and e.kind == kind and e.value == value]
        if len(entries) != 1 or not ours or keep is None:
            errors = [str(d) for d in after.errors]
            raise UserError(f"the new line for {name} is not read back as written"
                            + (f" ({'; '.join(errors)})" if errors else ""))
        effective = _effective(secrets, identity)
        if effective is not ours[0]:
            where = _where(effective) if effective is not None else "?"
            raise UserError(f"the secret at {where} ({effective.selector_text if effective else ''}) "
                            f"takes precedence over {name}'s own; change or remove it first")
        return tuple(notes)

    def _write(self, path: Path, data: bytes) -> None:
        path = Path(os.path.realpath(path))
        if path not in self._originals:
            try:
                self._originals[path] = (path.read_bytes(), path.stat())
            except FileNotFoundError:
                self._originals[path] = None
        original = self._originals[path]
        if original is not None:
            owner = (original[1].st_uid, original[1].st_gid)
        elif self.secrets_path.exists():
            st = self.secrets_path.stat()
            owner = (st.st_uid, st.st_gid)
        else:
            owner = None
        if original is None and not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True)
            path.parent.chmod(0o700)  # mkdir's mode is filtered by the umask
        # an edit killed mid-way leaves its temporary file (the new secret line, 0600; the
        # reader never includes dot files); under the lock nobody else is writing one
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write(path, data, FILE_MODE, owner)

    def _rollback(self, cause: BaseException | None) -> None:
        failures = []
        for path, original in reversed(list(self._originals.items())):
            try:
                if original is None:
                    path.unlink(missing_ok=True)
                else:
                    data, st = original
                    atomic_write(path, data, st.st_mode & 0o7777, (st.st_uid, st.st_gid))
            except OSError as exc:
                failures.append(f"{path}: {exc.strerror}")
        self._originals.clear()
        if failures:
            raise UserError(f"{cause}; restoring the original files FAILED: {', '.join(failures)}") from cause


def _new_errors(before: Diagnostics, after: Diagnostics) -> list:
    """Errors of ``after`` not in ``before`` (by file and message: lines may move)."""
    def key(d) -> tuple[str, str]:
        return os.path.realpath(d.path), d.message

    seen = Counter(key(d) for d in before.errors)
    new = []
    for d in after.errors:
        if seen[key(d)]:
            seen[key(d)] -= 1
        else:
            new.append(d)
    return new


