"""The ipsec.conf reader: strongSwan 5.9.8's lexer and parser, redone in Python.

This module knows the file syntax only (strongswan-semantics.md section 2.1; sources
src/starter/parser/lexer.l, parser.y and conf_parser.c of strongSwan 5.9.8): it turns
a file into sections (``config setup``, ``conn <name>``, ``ca <name>``) holding raw
``key=value`` settings with their file, line and column.  What the keys mean is
:mod:`ikegate.config.conn`'s business.

The rules, as the 5.9.8 starter applies them:

* a section header starts in column 1; every setting line starts with whitespace;
  blank lines and comments (``#`` to the end of the line, also after a value) may
  appear anywhere; a ``version ...`` line is ignored;
* ``key=value`` with optional blanks around ``=``; an unquoted value is one or more
  words joined by a single space; ``"..."`` keeps whitespace and knows the escapes
  ``\\n \\r \\t``, ``\\<char>`` and backslash-newline; ``key=`` with nothing unsets the
  key (hiding inherited values too); a key without ``=`` is an error; the last of
  repeated keys wins; sections with the same type and name are merged;
* ``include <glob>`` (relative to the including file) inserts the matching files
  where it stands; a pattern matching nothing is only a warning, as in strongSwan;
* ``also=<name>`` inherits from another section of the same type; ``conn %default``
  / ``ca %default`` apply to every section of their type wherever they stand; the
  inheritance order is strongSwan's linearisation (own keys first, later also= lines
  before earlier ones, %default last);
* any syntax error, an unknown ``also=`` target or an ``also=`` loop rejects the whole
  file: :class:`~ikegate.config.errors.ConfigError` with ``path:line:column``.

Beyond strongSwan (which recurses until it runs out of file descriptors) an include
loop, or includes nested deeper than :data:`MAX_INCLUDE_DEPTH`, is an error.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ikegate.config.errors import ConfigError, Diagnostics

#: Deepest nesting of ``include`` accepted.
MAX_INCLUDE_DEPTH = 16

SETUP, CONN, CA = "config setup", "conn", "ca"

# token kinds
_SPACES = "SPACES"
_NEWLINE = "NEWLINE"
_EQ = "EQ"
_STRING = "STRING"
_HEADER = "HEADER"  # value: SETUP, CONN or CA
_EOF = "EOF"

_STRING_STOP = frozenset('"#= \t\n')
_BLANKS = " \t"


@dataclass(frozen=True)
class Setting:
    """One ``key=value`` line.  ``value`` is None for ``key=`` (unset)."""

    key: str
    value: str | None
    path: str
    line: int
    column: int
    value_column: int

    @property
    def location(self) -> tuple[str, int, int]:
        return self.path, self.line, self.column

    @property
    def value_location(self) -> tuple[str, int, int]:
        return self.path, self.line, self.value_column


@dataclass
class Section:
    """A ``config setup``, ``conn`` or ``ca`` section (merged over all its headers)."""

    kind: str
    name: str | None
    path: str
    line: int
    column: int
    own: dict[str, Setting] = field(default_factory=dict)
    also: list[Setting] = field(default_factory=list)
    parents: list["Section"] | None = None

    @property
    def label(self) -> str:
        return SETUP if self.kind == SETUP else f"{self.kind} '{self.name}'"

    def effective(self) -> dict[str, Setting]:
        """The settings that apply: own keys, then those of the linearised parents;
        a ``key=`` (unset) hides the key from everything after it."""
        result: dict[str, Setting] = {}
        seen: set[str] = set()
        for section in (self, *(self.parents or ())):
            for key, setting in section.own.items():
                if key in seen:
                    continue
                seen.add(key)
                if setting.value is not None:
                    result[key] = setting
        return result


@dataclass
class IpsecConf:
    """A parsed ipsec.conf: the setup section, conns and cas in file order
    (``%default`` sections excluded), and the files read."""

    path: str
    setup: Section
    conns: list[Section]
    cas: list[Section]
    files: list[str]

    def conn(self, name: str) -> Section | None:
        return next((c for c in self.conns if c.name == name), None)


@dataclass(frozen=True)
class _Token:
    kind: str
    value: str | None
    path: str
    line: int
    column: int


class _Lexer:
    """Tokens of one file and, in place of each include, of the included files."""

    def __init__(self, diagnostics: Diagnostics, files: list[str]) -> None:
        self.diagnostics = diagnostics
        self.files = files

    def tokens(self, path: str, chain: tuple[str, ...] = ()) -> Iterator[_Token]:
        real = os.path.realpath(path)
        try:
            text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise ConfigError(path, 0, 0, f"cannot read file: {exc.strerror}") from None
        self.files.append(path)
        yield from self._scan(text, path, chain + (real,))

    def _scan(self, text: str, path: str, chain: tuple[str, ...]) -> Iterator[_Token]:
        n = len(text)
        i = 0
        line, col = 1, 1
        bol = True

        def advance(count: int) -> None:
            nonlocal i, line, col
            for ch in text[i : i + count]:
                if ch == "\n":
                    line += 1
                    col = 1
                else:
                    col += 1
            i += count

        while i < n:
            c = text[i]
            start_line, start_col = line, col
            if bol:
                j = i
                while j < n and text[j] in _BLANKS:
                    j += 1
                if text.startswith("version", j):
                    # ^[\t ]*"version"[^\n]*$ : a legacy version line, eaten whole
                    end = text.find("\n", j)
                    advance((n if end < 0 else end) - i)
                    bol = False
                    continue
                if j > i:
                    if j < n and text[j] == "#":
                        end = text.find("\n", j)
                        advance((n if end < 0 else end) - i)
                        bol = False
                        continue
                    advance(j - i)
                    bol = False
                    yield _Token(_SPACES, None, path, start_line, start_col)
                    continue
            bol = False
            if c in _BLANKS:
                j = i
                while j < n and text[j] in _BLANKS:
                    j += 1
                if j < n and text[j] == "#":
                    end = text.find("\n", j)
                    advance((n if end < 0 else end) - i)
                else:
                    advance(j - i)
                continue
            if c == "#":
                end = text.find("\n", i)
                advance((n if end < 0 else end) - i)
                continue
            if c == "\n":
                advance(1)
                bol = True
                yield _Token(_NEWLINE, None, path, start_line, start_col)
                continue
            if c == "=":
                advance(1)
                yield _Token(_EQ, None, path, start_line, start_col)
                continue
            # unquoted word (the STRING rule), also the candidate for headers/include
            j = i + 2 if text.startswith("@#", i) and i + 2 < n and text[i + 2] not in _STRING_STOP else i
            while j < n and text[j] not in _STRING_STOP:
                j += 1
            word = text[i:j]
            if start_col == 1 and text.startswith("config setup", i) and len("config setup") >= len(word):
                advance(len("config setup"))
                yield _Token(_HEADER, SETUP, path, start_line, start_col)
                continue
            if start_col == 1 and word in (CONN, CA):
                advance(len(word))
                yield _Token(_HEADER, word, path, start_line, start_col)
                continue
            if text.startswith("include", i):
                k = i + len("include")
                m = k
                while m < n and text[m] in _BLANKS:
                    m += 1
                if m > k and m < n and text[m] != "=":
                    advance(m - i)
                    yield from self._include(text, path, chain, start_line, start_col, advance, lambda: i)
                    continue
            if c == '"':
                value = self._quoted(text, path, start_line, start_col, advance, lambda: i)
                yield _Token(_STRING, value, path, start_line, start_col)
                continue
            if "\r" in word:
                raise ConfigError(path, start_line, start_col + word.index("\r"),
                                  "carriage return found: the file has DOS (CRLF) line endings")
            advance(len(word))
            yield _Token(_STRING, word, path, start_line, start_col)
        if len(chain) == 1:  # end of the main file (included files just end)
            yield _Token(_EOF, None, path, line, col)

    def _quoted(self, text: str, path: str, qline: int, qcol: int, advance, pos) -> str:
        """A quoted string starting at the '"' under ``pos()``; returns its value."""
        n = len(text)
        advance(1)
        out: list[str] = []
        while True:
            i = pos()
            if i >= n:
                raise ConfigError(path, qline, qcol, "unterminated quoted string")
            c = text[i]
            if c == '"':
                advance(1)
                return "".join(out)
            if c == "\\":
                if i + 1 >= n:
                    raise ConfigError(path, qline, qcol, "unterminated quoted string")
                nxt = text[i + 1]
                if nxt == "\n":
                    advance(2)
                elif nxt == "\r" and i + 2 < n and text[i + 2] == "\n":
                    advance(3)
                else:
                    out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                    advance(2)
                continue
            j = i
            while j < n and text[j] not in '\\"':
                j += 1
            out.append(text[i:j])
            advance(j - i)

    def _include(self, text, path, chain, line, col, advance, pos) -> Iterator[_Token]:
        """Read the pattern of an ``include`` (the lexer's inc state) and insert the
        tokens of every matching file."""
        n = len(text)
        pattern: list[str] = []
        while True:
            i = pos()
            if i >= n:
                break
            c = text[i]
            if c in "#\n":
                break
            if c in _BLANKS:
                advance(1)
                break
            if c == '"':
                pattern.append(self._quoted(text, path, *_line_col(text, i), advance, pos))
                break
            if c == "\\":
                if i + 1 < n and text[i + 1] in '"#} ':
                    pattern.append(text[i + 1])
                    advance(2)
                else:
                    pattern.append("\\")
                    advance(1)
                continue
            j = i
            while j < n and text[j] not in '"\\#\n\t ':
                j += 1
            pattern.append(text[i:j])
            advance(j - i)
        yield from self._include_files("".join(pattern), path, chain, line, col)

    def _include_files(self, pattern: str, path: str, chain, line: int, col: int) -> Iterator[_Token]:
        if not pattern:
            self.diagnostics.warning(path, line, col, "no include pattern specified, ignored")
            return
        full = pattern if os.path.isabs(pattern) else os.path.join(os.path.dirname(path) or ".", pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            self.diagnostics.warning(path, line, col, f"include: no files found matching '{full}'")
            return
        for match in matches:
            if not os.path.isfile(match) or not os.access(match, os.R_OK):
                self.diagnostics.warning(path, line, col, f"include: unable to open '{match}'")
                continue
            if os.path.realpath(match) in chain:
                raise ConfigError(path, line, col, f"include loop: '{match}' is already being read")
            if len(chain) > MAX_INCLUDE_DEPTH:
                raise ConfigError(path, line, col, f"includes nested more than {MAX_INCLUDE_DEPTH} deep")
            yield from self.tokens(match, chain)


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class _Parser:
    """parser.y's grammar over the token stream, building sections."""

    def __init__(self, path: str, diagnostics: Diagnostics) -> None:
        self.path = path
        self.diagnostics = diagnostics
        self.files: list[str] = []
        self.setup = Section(SETUP, None, path, 0, 0)
        self.conns: dict[str, Section] = {}
        self.cas: dict[str, Section] = {}
        self.current: Section | None = None

    def parse(self) -> IpsecConf:
        tokens = _Lexer(self.diagnostics, self.files).tokens(self.path)
        lookahead: list[_Token] = []

        def take() -> _Token:
            return lookahead.pop() if lookahead else next(tokens)

        def peek() -> _Token:
            if not lookahead:
                lookahead.append(next(tokens))
            return lookahead[-1]

        while True:
            tok = take()
            if tok.kind == _EOF:
                break
            if tok.kind == _NEWLINE:
                continue
            if tok.kind == _HEADER:
                self._section(tok, take, peek)
            elif tok.kind == _SPACES:
                self._setting(take, peek)
            elif tok.kind == _STRING:
                nxt = peek()
                if nxt.kind == _EQ:
                    raise ConfigError(tok.path, tok.line, tok.column,
                                      f"setting '{tok.value}' is not indented: settings must start with "
                                      "whitespace, column 1 is for 'config setup', 'conn <name>' and "
                                      "'ca <name>'")
                raise ConfigError(tok.path, tok.line, tok.column,
                                  f"unexpected '{tok.value}': expected 'config setup', 'conn <name>', "
                                  "'ca <name>' or an indented setting")
            elif tok.kind == _EQ:
                raise ConfigError(tok.path, tok.line, tok.column, "unexpected '=' at the start of a line")
        return IpsecConf(
            path=self.path,
            setup=self.setup,
            conns=[s for s in self.conns.values() if s.name != "%default"],
            cas=[s for s in self.cas.values() if s.name != "%default"],
            files=self.files,
        )

    def _section(self, header: _Token, take, peek) -> None:
        tok = peek()
        name: str | None = None
        if tok.kind == _STRING:
            name = take().value
            tok = peek()
        if header.value != SETUP and not name:
            raise ConfigError(header.path, header.line, header.column,
                              f"section name missing after '{header.value}'")
        if tok.kind not in (_NEWLINE, _EOF):
            raise ConfigError(tok.path, tok.line, tok.column,
                              f"unexpected {_describe(tok)} after the section header")
        if header.value == SETUP:
            section = self.setup
            if not section.line:
                section.path, section.line, section.column = header.path, header.line, header.column
        else:
            table = self.conns if header.value == CONN else self.cas
            section = table.get(name)
            if section is None:
                section = Section(header.value, name, header.path, header.line, header.column)
                table[name] = section
        self.current = section

    def _setting(self, take, peek) -> None:
        if peek().kind in (_NEWLINE, _EOF, _SPACES, _HEADER):
            # an empty setting (a blank indented line, or an indented include whose
            # file starts a new line); the main loop takes the token
            return
        tok = take()
        if tok.kind == _EQ:
            raise ConfigError(tok.path, tok.line, tok.column, "setting name missing before '='")
        if tok.kind != _STRING:
            raise ConfigError(tok.path, tok.line, tok.column, f"unexpected {_describe(tok)}")
        key_tok = tok
        eq = take()
        if eq.kind != _EQ:
            key = key_tok.value or ""
            if key in (CONN, CA) or (key == "config" and eq.kind == _STRING and eq.value == "setup"):
                raise ConfigError(key_tok.path, key_tok.line, key_tok.column,
                                  f"unexpected indentation: the section header '{key}' must start in column 1")
            raise ConfigError(key_tok.path, key_tok.line, key_tok.column,
                              f"missing value for setting '{key}' (expected 'key=value')")
        if not key_tok.value:
            raise ConfigError(key_tok.path, key_tok.line, key_tok.column, "setting name can't be empty")
        words: list[str] = []
        value_col = eq.column + 1
        while True:
            nxt = peek()
            if nxt.kind == _STRING:
                take()
                if not words:
                    value_col = nxt.column
                words.append(nxt.value or "")
                continue
            if nxt.kind == _EQ:
                raise ConfigError(nxt.path, nxt.line, nxt.column,
                                  f"unexpected '=' in the value of '{key_tok.value}' (quote values that "
                                  "contain '=')")
            break  # NEWLINE or EOF, left for the main loop
        value = " ".join(words) if words else None
        self._add_setting(Setting(key_tok.value, value, key_tok.path, key_tok.line, key_tok.column, value_col))

    def _add_setting(self, setting: Setting) -> None:
        section = self.current
        if section is None:
            self.diagnostics.warning(setting.path, setting.line, setting.column,
                                     f"setting '{setting.key}' outside of any section ignored")
            return
        if setting.key == "also":
            if not setting.value or setting.value == "%default":
                return  # every section inherits from %default anyway
            section.also.append(setting)
            return
        section.own.pop(setting.key, None)
        section.own[setting.key] = setting


def _describe(tok: _Token) -> str:
    if tok.kind == _STRING:
        return f"'{tok.value}'"
    return {
        _EQ: "'='",
        _NEWLINE: "end of line",
        _EOF: "end of file",
        _SPACES: "indentation",
        _HEADER: f"'{tok.value}'",
    }.get(tok.kind, tok.kind)


def _resolve_also(sections: dict[str, Section], kind: str) -> None:
    """conf_parser.c ``resolve_also``: linearise every section's parents."""
    default = sections.get("%default")
    if default is not None:
        default.parents = []
    for section in sections.values():
        if section.parents is None:
            _resolve_single(sections, section, default, [], kind)


def _resolve_single(sections, section: Section, default, stack: list[Section], kind: str) -> None:
    stack.insert(0, section)
    parents: list[Section] = []
    # later also= lines take priority over earlier ones
    for also in reversed(section.also):
        parent = sections.get(also.value)
        if parent is None:
            raise ConfigError(also.path, also.line, also.value_column,
                              f"unknown {kind} in also=: no {kind} '{also.value}' (referenced by "
                              f"{kind} '{section.name}')")
        if any(s.name == parent.name for s in stack):
            raise ConfigError(also.path, also.line, also.value_column,
                              f"also={also.value} in {kind} '{section.name}' creates an also= loop")
        if parent.parents is None:
            _resolve_single(sections, parent, default, stack, kind)
        parents.append(parent)
        parents.extend(parent.parents or ())
    stack.pop(0)
    if default is not None and not parents:
        parents.append(default)
    linear: list[Section] = []
    for index, parent in enumerate(parents):
        if not any(p.name == parent.name for p in parents[index + 1 :]):
            linear.append(parent)  # keep the last occurrence of each
    section.parents = linear


def parse_ipsec_conf(path: str | os.PathLike, diagnostics: Diagnostics | None = None) -> IpsecConf:
    """Parse an ipsec.conf (and the files it includes).

    Raises :class:`ConfigError` if strongSwan would reject the file; non-fatal
    findings (unmatched include patterns, settings outside a section) are added to
    ``diagnostics`` as warnings.
    """
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    parser = _Parser(str(path), diagnostics)
    conf = parser.parse()
    _resolve_also(parser.conns, CONN)
    _resolve_also(parser.cas, CA)
    return conf
