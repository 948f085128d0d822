"""ipsec.secrets: reading it as strongSwan 5.9.8 does, and looking secrets up.

File rules (strongswan-semantics.md section 2.4; src/libcharon/plugins/stroke/
stroke_cred.c ``load_secrets``, ``load_shared``, ``extract_secret``,
``load_from_file``; src/libstrongswan/utils/lexparser.c):

* line by line (``\\r\\n`` accepted); leading blanks skipped; ``#`` starts a comment
  line; ``include <glob>`` (relative to the including file) loads the matches,
  nesting at most 10 deep (deeper includes are ignored with a warning);
* ``[selectors] : TYPE value``: the selectors end at the first literal ``" : "``
  (space, colon, space: tabs do not count), or the line starts with ``": "`` (no
  selectors = any id); TYPE is one of RSA, ECDSA, PKCS8, P12, PIN, PSK, EAP, NTLM, XAUTH
  (case-sensitive) and must be followed by a blank;
* secrets: ``"..."`` or ``'...'`` (no escapes) or an unquoted word; unquoted ``0x..`` is
  hex and ``0s..`` base64; text after the secret is ignored;
* key lines: ``: RSA <file> [passphrase]``, file relative to ``ipsec.d/private``;
* the first malformed line stops reading *that file*; what was read before stays.
  A key file that cannot be loaded is reported and skipped (reading goes on).

Where ikegate is stricter: a ``0x`` value with non-hex characters (strongSwan reads
them as 0) and an NTLM value that is not 16 bytes are malformed lines; an include loop
is skipped with a warning rather than followed ten levels deep.

Secret values never appear in messages, ``repr()`` or the check output.
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ikegate.config.errors import Diagnostics
from ikegate.identity import ID_FQDN, ID_KEY_ID, ID_RFC822_ADDR, MATCH_NONE, MATCH_PERFECT, Identity

#: stroke_cred.c MAX_SECRETS_RECURSION
MAX_SECRETS_RECURSION = 10

KEY_TYPES = ("RSA", "ECDSA", "PKCS8", "BLISS")
SHARED_TYPES = ("PSK", "EAP", "NTLM", "XAUTH")
ALL_TYPES = KEY_TYPES + ("P12", "PIN") + SHARED_TYPES
_TYPE_LIST = "RSA, ECDSA, BLISS, PKCS8 P12, PIN, PSK, EAP, XAUTH or NTLM"
#: shared key classes as strongSwan stores them (XAUTH secrets are EAP secrets)
_SHARED_CLASS = {"PSK": "IKE", "EAP": "EAP", "XAUTH": "EAP", "NTLM": "NTLM"}


@dataclass(frozen=True, repr=False)
class SecretEntry:
    """One secret: its selectors (``(Identity.ANY,)`` when none were given), type,
    value (the secret bytes; empty for key files), key file and passphrase, and where
    it was defined.  ``private_key`` is the loaded key of RSA/ECDSA/PKCS8/P12 lines."""

    selectors: tuple[Identity, ...]
    kind: str
    value: bytes = b""
    key_path: Path | None = None
    passphrase: bytes | None = None
    source: tuple[str, int] = ("", 0)
    selector_text: str = ""
    private_key: Any = field(default=None, compare=False)

    @property
    def shared_class(self) -> str | None:
        """IKE, EAP or NTLM for shared secrets; None for keys."""
        return _SHARED_CLASS.get(self.kind)

    def __repr__(self) -> str:
        ids = ", ".join(str(s) for s in self.selectors)
        where = f"{self.source[0]}:{self.source[1]}"
        extra = f", key_path={str(self.key_path)!r}" if self.key_path else ""
        return f"SecretEntry([{ids}], {self.kind}, value=<hidden>{extra}, source={where!r})"

    __str__ = __repr__


class Secrets:
    """The secrets of an ipsec.secrets file and its includes, and strongSwan's lookups."""

    def __init__(self, entries: list[SecretEntry] | tuple[SecretEntry, ...] = (), files: tuple[str, ...] = ()) -> None:
        self._entries: list[SecretEntry] = []
        self._index: dict | None = None
        for entry in entries:
            self.add(entry)
        self.files = tuple(files)

    def add(self, entry: SecretEntry) -> None:
        """Add an entry; an identical earlier one (same type, value and selectors) is
        replaced, as mem_cred.c add_shared_unique() does."""
        if entry.shared_class is not None:
            for index, old in enumerate(self._entries):
                if (
                    old.shared_class == entry.shared_class
                    and old.value == entry.value
                    and len(old.selectors) == len(entry.selectors)
                    and all(a.equals(b) for a, b in zip(old.selectors, entry.selectors))
                ):
                    del self._entries[index]
                    break
        self._entries.append(entry)
        self._index = None

    @property
    def entries(self) -> tuple[SecretEntry, ...]:
        """All entries in file order (a replaced duplicate at its latest position)."""
        return tuple(self._entries)

    @property
    def private_keys(self) -> list:
        """The private keys loaded from RSA/ECDSA/PKCS8/P12 lines, in file order."""
        return [e.private_key for e in self._entries if e.private_key is not None]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Secrets({len(self._entries)} entries)"

    # -- lookups -------------------------------------------------------------------------

    def find_shared(self, shared_class: str, me: Identity | None, other: Identity | None) -> SecretEntry | None:
        """credential_manager.c get_shared() over mem_cred.c shared_filter().

        An entry qualifies if ``me`` or ``other`` matches one of its selectors (or it
        has none); the best ``other`` match wins, ties go to the best ``me`` match, and
        among equals the entry defined last (strongSwan inserts new secrets at the
        head of its list).
        """
        best: SecretEntry | None = None
        best_me = best_other = MATCH_NONE
        for entry in self._candidates(shared_class, me, other):
            match_me = max((me.matches(s) for s in entry.selectors), default=0) if me is not None else 0
            match_other = max((other.matches(s) for s in entry.selectors), default=0) if other is not None else 0
            if (me is not None or other is not None) and not match_me and not match_other:
                continue
            if match_other > best_other or (match_other == best_other and match_me > best_me):
                best, best_me, best_other = entry, match_me, match_other
            if best_me == MATCH_PERFECT and best_other == MATCH_PERFECT:
                break
        return best

    def _candidates(self, shared_class: str, me: Identity | None, other: Identity | None) -> list[SecretEntry]:
        """The entries of ``shared_class`` that can match ``me`` or ``other``, latest first.

        With thousands of users a scan per lookup would cost milliseconds, so entries whose
        selectors all match only their equals (user names, FQDNs and e-mail addresses
        without a leading ``*``, key ids) are found by :meth:`Identity.key`; the others
        (no selector, ``%any``, wildcards, DNs, addresses) are always tried."""
        if self._index is None:
            self._index = self._build_index()
        always, by_key = self._index.get(shared_class, ([], {}))
        found = dict(always)
        for identity in (me, other):
            if identity is not None:
                found.update(by_key.get(identity.key(), ()))
        return [found[position] for position in sorted(found, reverse=True)]

    def _build_index(self) -> dict:
        index: dict[str, tuple[list, dict]] = {}
        for position, entry in enumerate(self._entries):
            if entry.shared_class is None:
                continue
            always, by_key = index.setdefault(entry.shared_class, ([], {}))
            if entry.selectors and all(_exact(s) for s in entry.selectors):
                for selector in entry.selectors:
                    by_key.setdefault(selector.key(), []).append((position, entry))
            else:
                always.append((position, entry))
        return index

    def find_eap(self, user: str, server: Identity | None = None) -> tuple[str, bytes] | None:
        """The credential EAP-MSCHAPv2 uses for ``user`` (the MS-CHAPv2 Name, e.g.
        ``DOMAIN\\alice``, parsed as an identity) at ``server`` (our IKE id):
        ``("NTLM", nt_hash)`` if an NTLM secret matches, else ``("EAP", password)``
        (eap_mschapv2.c get_nt_hash()), else None."""
        try:
            user_id = Identity.parse(user)
        except ValueError:
            user_id = Identity.from_wire(11, user.encode("utf-8", "surrogateescape"))
        for shared_class in ("NTLM", "EAP"):
            entry = self.find_shared(shared_class, server, user_id)
            if entry is not None:
                return shared_class, entry.value
        return None

    def find_psk(self, me: Identity | None, other: Identity | None) -> bytes | None:
        """The IKE pre-shared key for the identity pair, or None."""
        entry = self.find_shared("IKE", me, other)
        return None if entry is None else entry.value


def _exact(selector: Identity) -> bool:
    """Does ``selector`` match only identities with the same :meth:`Identity.key`?"""
    if selector.id_type in (ID_FQDN, ID_RFC822_ADDR):
        return not selector.data.startswith(b"*")
    return selector.id_type == ID_KEY_ID


# ------------------------------------------------------------------------------------
# reading


class _Malformed(Exception):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class _Line:
    """A line being taken apart, with the column (1-based) of the current position."""

    def __init__(self, text: str, start: int = 0) -> None:
        self.text = text
        self.pos = start

    @property
    def column(self) -> int:
        return self.pos + 1

    @property
    def rest(self) -> str:
        return self.text[self.pos :]

    def eat_whitespace(self) -> bool:
        """lexparser.c eat_whitespace(): skip blanks; False at the end or at '#'."""
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1
        return self.pos < len(self.text) and self.text[self.pos] != "#"

    def token(self) -> str | None:
        """extract_token(' '): up to the first space or tab (consumed), or None."""
        rest = self.rest
        ends = [i for i in (rest.find(" "), rest.find("\t")) if i >= 0]
        if not ends:
            return None
        end = min(ends)
        self.pos += end + 1
        return rest[:end]

    def value(self) -> tuple[str, bool]:
        """extract_value(): a quoted ('' or "") or blank-terminated value; returns
        (value, was_quoted).  Raises _Malformed for a missing closing quote."""
        if not self.eat_whitespace():
            return "", False
        quote = self.text[self.pos]
        if quote in "'\"":
            start = self.column
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise _Malformed(start, f"missing closing {quote} (unterminated quoted value)")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value, True
        token = self.token()
        if token is None:
            token, self.pos = self.rest, len(self.text)
        return token, False


def _secret(line: _Line, what: str = "secret") -> bytes:
    """stroke_cred.c extract_secret(): quoted text verbatim; 0x hex; 0s base64."""
    if not line.eat_whitespace():
        raise _Malformed(line.column, f"malformed {what}: missing {what}")
    start = line.column
    value, quoted = line.value()
    raw = value.encode("utf-8", "surrogateescape")
    if quoted or len(value) <= 2:
        return raw
    prefix = value[:2].lower()
    if prefix == "0x":
        digits = value[2:].replace(":", "")
        if len(digits) % 2:
            digits = "0" + digits
        try:
            return bytes.fromhex(digits)
        except ValueError:
            raise _Malformed(start, f"malformed {what}: 0x value is not hexadecimal") from None
    if prefix == "0s":
        try:
            return base64.b64decode(value[2:], validate=True)
        except (binascii.Error, ValueError):
            raise _Malformed(start, f"malformed {what}: 0s value is not base64") from None
    return raw


class _Reader:
    def __init__(self, private_dir: Path, diagnostics: Diagnostics,
                 load_private_key: Callable | None) -> None:
        self.private_dir = private_dir
        self.diagnostics = diagnostics
        self.load_private_key = load_private_key
        self.secrets = Secrets()
        self.files: list[str] = []

    def read(self, path: str, level: int, chain: tuple[str, ...]) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            self.diagnostics.warning(path, 0, 0, f"opening secrets file failed: {exc.strerror}")
            return
        self.files.append(path)
        text = data.decode("utf-8", "surrogateescape")
        chain = chain + (os.path.realpath(path),)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for number, raw in enumerate(lines, 1):
            if raw.endswith("\r"):
                raw = raw[:-1]
            line = _Line(raw)
            if not line.eat_whitespace():
                continue
            if line.rest.startswith("include ") and len(line.rest) > len("include "):
                self._include(path, number, line, level, chain)
                continue
            try:
                self._entry(path, number, line)
            except _Malformed as exc:
                self.diagnostics.error(path, number, exc.column, exc.message,
                                       "ipsec.secrets (the rest of this file is ignored)")
                break

    def _include(self, path: str, number: int, line: _Line, level: int, chain: tuple[str, ...]) -> None:
        column = line.column
        if level > MAX_SECRETS_RECURSION:
            self.diagnostics.warning(path, number, column,
                                     f"maximum level of {MAX_SECRETS_RECURSION} includes reached, ignored")
            return
        pattern = line.rest[len("include ") :].split(" ")[0]
        full = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(path) or ".", pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            self.diagnostics.warning(path, number, column, f"include: no files found matching '{full}'")
            return
        for match in matches:
            if os.path.realpath(match) in chain:
                self.diagnostics.warning(path, number, column,
                                         f"include loop: '{match}' is already being read, ignored")
                continue
            self.read(match, level + 1, chain)

    def _entry(self, path: str, number: int, line: _Line) -> None:
        rest = line.rest
        selector_start = line.pos
        if rest.startswith(": ") and len(rest) > 2:
            selector_text = ""
            line.pos += 1
        else:
            index = rest.find(" : ")
            if index < 0:
                raise _Malformed(line.column, _separator_hint(rest))
            selector_text = rest[:index]
            line.pos += index + 3
        type_column = line.column
        if not line.eat_whitespace():
            raise _Malformed(type_column, "missing token: expected the secret type (" + _TYPE_LIST + ")")
        type_column = line.column
        kind = line.token()
        if kind is None:
            word = line.rest.strip()
            if word in ALL_TYPES:
                raise _Malformed(line.column + len(line.rest), f"missing value after '{word}'")
            raise _Malformed(type_column, f"missing token: expected the secret type ({_TYPE_LIST}) "
                             "followed by a blank")
        source = (path, number)
        if kind in KEY_TYPES or kind == "P12":
            self._key(kind, line, source)
        elif kind in SHARED_TYPES:
            value = _secret(line)
            if kind == "NTLM" and len(value) != 16:
                raise _Malformed(type_column + len(kind) + 1,
                                 "malformed secret: an NTLM secret is a 16-byte NT hash (0x followed by "
                                 "32 hex digits)")
            selectors = self._selectors(selector_text, selector_start + 1)
            self.secrets.add(SecretEntry(selectors, kind, value, source=source, selector_text=selector_text))
        elif kind == "PIN":
            self.diagnostics.warning(path, number, type_column,
                                     "PIN secrets (smartcards) are not supported, line ignored")
        else:
            raise _Malformed(type_column, f"unknown secret type '{kind}': token must be either {_TYPE_LIST}")

    def _selectors(self, text: str, column: int) -> tuple[Identity, ...]:
        """The blank-separated, optionally quoted selectors before " : "."""
        selectors: list[Identity] = []
        pos = 0
        while pos < len(text):
            if text[pos] in " \t":
                pos += 1
                continue
            start = pos
            if text[pos] in "'\"":
                end = text.find(text[pos], pos + 1)
                if end < 0:
                    raise _Malformed(column + start, f"missing closing {text[pos]} (unterminated quoted selector)")
                value, pos = text[pos + 1 : end], end + 1
            else:
                end = pos
                while end < len(text) and text[end] not in " \t":
                    end += 1
                value, pos = text[pos:end], end
            if not value:
                continue
            try:
                selectors.append(Identity.parse(value))
            except ValueError:
                raise _Malformed(column + start, f"bad selector '{value}': the part after '#' must "
                                 "be hexadecimal") from None
        return tuple(selectors) or (Identity.ANY,)

    def _key(self, kind: str, line: _Line, source: tuple[str, int]) -> None:
        path, number = source
        start = line.column
        filename, _quoted = line.value()
        if not filename:
            raise _Malformed(start, "empty filename")
        key_path = Path(filename) if filename.startswith("/") else self.private_dir / filename
        passphrases: list[bytes] = []
        for what in ("passphrase", "passphrase"):
            if line.eat_whitespace():
                passphrases.append(_secret(line, what))
        passphrase = passphrases[0] if passphrases else None
        entry = SecretEntry((Identity.ANY,), kind, b"", key_path, passphrase, source)
        if passphrase == b"%prompt":
            self.diagnostics.error(path, number, start, f"cannot prompt for the passphrase of '{key_path}' "
                                   "(%prompt): key not loaded")
            return
        if kind == "BLISS":
            self.diagnostics.error(path, number, start, "BLISS keys are not supported: key not loaded")
            return
        try:
            key = self._load(kind, key_path, passphrases)
        except Exception as exc:  # PkiError, ValueError: reported, reading goes on
            self.diagnostics.error(path, number, start, f"loading {kind} private key failed: {exc}")
            return
        self.secrets.add(SecretEntry(entry.selectors, kind, b"", key_path, passphrase, source, private_key=key))

    def _load(self, kind: str, key_path: Path, passphrases: list[bytes]):
        if kind == "P12":
            from cryptography.hazmat.primitives.serialization import pkcs12

            try:
                data = key_path.read_bytes()
            except OSError as exc:
                raise ValueError(f"file '{key_path}' unreadable: {exc.strerror}") from None
            for candidate in passphrases or [None]:
                try:
                    key, _cert, _extra = pkcs12.load_key_and_certificates(data, candidate)
                except ValueError:
                    continue
                if key is None:
                    raise ValueError(f"'{key_path}' holds no private key")
                return key
            raise ValueError(f"'{key_path}' is not a PKCS#12 file or the passphrase is wrong")
        loader = self.load_private_key
        if loader is None:
            from ikegate.pki.keys import load_private_key as loader
        key = loader(key_path, passphrases[0] if passphrases else None)
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if kind == "RSA" and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"'{key_path}' is not an RSA key")
        if kind == "ECDSA" and not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"'{key_path}' is not an ECDSA key")
        return key


def _separator_hint(rest: str) -> str:
    message = "missing ' : ' separator"
    colon = rest.find(":")
    if colon < 0:
        return message + " (expected '[selectors] : TYPE value')"
    before = rest[colon - 1] if colon > 0 else ""
    after = rest[colon + 1] if colon + 1 < len(rest) else ""
    if "\t" in (before, after):
        return message + " (the ':' needs a space, not a tab, on both sides)"
    return message + " (the ':' needs a space on both sides)"


def load_secrets(path: str | os.PathLike, private_dir: str | os.PathLike | None = None,
                 diagnostics: Diagnostics | None = None, load_private_key: Callable | None = None) -> Secrets:
    """Read an ipsec.secrets file and its includes.

    Relative key files are looked up in ``private_dir`` (default: ``ipsec.d/private``
    next to the file).  Problems go to ``diagnostics``; this never raises for bad
    content.  ``load_private_key(path, passphrase)`` defaults to
    :func:`ikegate.pki.keys.load_private_key`.
    """
    path = str(path)
    if private_dir is None:
        private_dir = Path(os.path.dirname(path) or ".") / "ipsec.d" / "private"
    reader = _Reader(Path(private_dir), diagnostics if diagnostics is not None else Diagnostics(), load_private_key)
    reader.read(path, 0, ())
    reader.secrets.files = tuple(reader.files)
    return reader.secrets
