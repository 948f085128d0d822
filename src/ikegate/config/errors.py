"""Configuration errors and warnings, each with the place in the file it is about.

Every problem found while reading ipsec.conf, ipsec.secrets or strongswan.conf is
reported as ``path:line:column: message`` (line and column counted from 1; a
message about a whole file has line 0 and prints as ``path: message``).
:class:`ConfigError` is raised where the reader cannot go on; :class:`Diagnostics`
collects errors and warnings where it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


def format_location(path: str, line: int, column: int) -> str:
    if not line:
        return str(path)
    if not column:
        return f"{path}:{line}"
    return f"{path}:{line}:{column}"


class ConfigError(Exception):
    """A configuration problem at ``path:line:column``."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.path = str(path)
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        return f"{format_location(self.path, self.line, self.column)}: {self.message}"


class ConfigLoadError(Exception):
    """The configuration as a whole cannot be used (e.g. ipsec.conf was rejected).

    ``diagnostics`` holds everything found up to that point, errors first among
    them; ``str()`` is the first error.
    """

    def __init__(self, diagnostics: "Diagnostics") -> None:
        self.diagnostics = diagnostics
        first = diagnostics.errors[0] if diagnostics.errors else None
        super().__init__(str(first) if first else "configuration rejected")


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning.  ``context`` names what it concerns (e.g. ``conn myvpn``)."""

    severity: str  # "error" | "warning"
    path: str
    line: int
    column: int
    message: str
    context: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def location(self) -> str:
        return format_location(self.path, self.line, self.column)

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


class Diagnostics:
    """An ordered collection of errors and warnings."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []

    def error(self, path: str, line: int, column: int, message: str, context: str = "") -> Diagnostic:
        item = Diagnostic("error", str(path), line, column, message, context)
        self._items.append(item)
        return item

    def warning(self, path: str, line: int, column: int, message: str, context: str = "") -> Diagnostic:
        item = Diagnostic("warning", str(path), line, column, message, context)
        self._items.append(item)
        return item

    def add_error(self, exc: ConfigError, context: str = "") -> Diagnostic:
        return self.error(exc.path, exc.line, exc.column, exc.message, context)

    def extend(self, other: "Diagnostics") -> None:
        self._items.extend(other)

    @property
    def items(self) -> tuple[Diagnostic, ...]:
        return tuple(self._items)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self._items if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self._items if not d.is_error)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self._items)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return f"Diagnostics({len(self.errors)} errors, {len(self.warnings)} warnings)"
