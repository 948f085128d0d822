"""strongswan.conf: the settings file of strongSwan's daemons, read the 5.9.8 way.

Syntax (src/libstrongswan/settings/settings_lexer.l, settings_parser.y)::

    # comment
    charon {
        retransmit_tries = 3
        plugins {
            attr {
                dns = 192.0.2.1, 192.0.2.2
            }
        }
        filelog : other.section { ... }     # inherits from other.section
    }
    include strongswan.d/*.conf

``name { ... }`` sections nest and merge; ``key = value`` (a value runs to the end of the
line, ``#`` or ``}``; words are joined by one space; ``"..."`` keeps blanks and knows
``\\n \\r \\t \\<char>``); ``key =`` with nothing unsets it; ``include <glob>``
(relative to the including file) may appear anywhere and inserts the files there.  A
syntax error rejects the file (:class:`~ikegate.config.errors.ConfigError`).

Values are read with the typed getters, which behave like strongSwan's: a value that
does not parse as the wanted type gives the default.  :data:`DEFAULTS` lists the
settings the gateway uses with strongSwan 5.9.8's defaults (conf/options/charon.opt),
except ``charon.prefer_configured_proposals``: strongSwan's default is ``yes`` (its own
proposal order wins), ikegate's is ``no`` on purpose, because the seed configuration
wants the client's order to decide (strongswan-semantics.md section 2.9).
:meth:`StrongswanConf.check` reports values of those settings that do not parse.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ikegate.config.errors import ConfigError, Diagnostics

#: settings the gateway uses, with their defaults and types
DEFAULTS: dict[str, tuple[str, object]] = {
    "charon.retransmit_tries": ("int", 5),
    "charon.retransmit_timeout": ("float", 4.0),
    "charon.retransmit_base": ("float", 1.8),
    "charon.retransmit_jitter": ("int", 0),
    "charon.retransmit_limit": ("int", 0),
    "charon.half_open_timeout": ("int", 30),
    "charon.cookie_threshold": ("int", 30),
    "charon.cookie_threshold_ip": ("int", 3),
    "charon.block_threshold": ("int", 5),
    "charon.dos_protection": ("bool", True),
    "charon.init_limit_half_open": ("int", 0),
    "charon.ikesa_limit": ("int", 0),
    # ikegate's own: which data plane carries ESP (ikegate start --dataplane overrides it)
    "ikegate.dataplane": ("str", "auto"),
    "charon.ikesa_limit_ip": ("int", 0),  # ikegate's own: IKE SAs per peer address
    # ikegate's own (ikegate.ike.throttle): failed logins per source before a hold-off
    "charon.auth_failure_limit": ("int", 10),
    "charon.auth_failure_window": ("time", 300),
    "charon.auth_failure_block": ("time", 300),
    "charon.fragment_size": ("int", 1280),
    "charon.max_packet": ("int", 10000),
    "charon.prefer_configured_proposals": ("bool", False),  # strongSwan: yes -- see module doc
    "charon.keep_alive": ("time", 20),
    "charon.delete_rekeyed_delay": ("int", 5),
    "charon.make_before_break": ("bool", False),
    "charon.port": ("int", 500),
    "charon.port_nat_t": ("int", 4500),
    "charon.replay_window": ("int", 32),
    "charon.plugins.stroke.allow_swap": ("bool", True),
    # eap-radius (strongSwan 5.9.8 conf/plugins/eap-radius.opt, eap_radius_plugin.c); read by
    # ikegate.radius.settings.RadiusSettings (servers are the sections of ...eap-radius.servers)
    "charon.plugins.eap-radius.port": ("int", 1812),
    "charon.plugins.eap-radius.retransmit_tries": ("int", 4),
    "charon.plugins.eap-radius.retransmit_timeout": ("float", 2.0),
    "charon.plugins.eap-radius.retransmit_base": ("float", 1.4),
    "charon.plugins.eap-radius.accounting": ("bool", False),
    "charon.plugins.eap-radius.accounting_interval": ("time", 0),
    "charon.plugins.eap-radius.accounting_close_on_timeout": ("bool", True),
    "charon.plugins.eap-radius.accounting_requires_vip": ("bool", False),
    "charon.plugins.eap-radius.close_all_on_timeout": ("bool", False),
    "charon.plugins.eap-radius.station_id_with_port": ("bool", True),
    "charon.plugins.eap-radius.class_group": ("bool", False),
    "charon.plugins.eap-radius.eap_start": ("bool", False),
    "charon.plugins.eap-radius.dae.enable": ("bool", False),
    "charon.plugins.eap-radius.dae.port": ("int", 3799),
    # ikegate's own: IKEv2 redirect (RFC 5685, ikegate.ike.tasks.ike_redirect); the targets are
    # the sections of ikegate.redirect.gateways { <name> { address = ...; capacity = ... } }
    "ikegate.redirect.threshold": ("int", 0),
}

#: the values a ``"str"`` setting of :data:`DEFAULTS` may take (anything else: the default)
CHOICES: dict[str, tuple[str, ...]] = {
    "ikegate.dataplane": ("auto", "kernel", "userspace", "none"),
}

_NAME = re.compile(r'[^#{}:.,="\r\n\t ]+')
_VALUE_WORD = re.compile(r'[^#}"\r\n\t ]+')
_MAX_INCLUDE_DEPTH = 16


@dataclass
class _Section:
    settings: dict[str, str | None] = field(default_factory=dict)
    sections: dict[str, "_Section"] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


class StrongswanConf:
    """Parsed strongswan.conf content with typed getters (keys are dotted paths)."""

    def __init__(self, root: _Section | None = None, files: tuple[str, ...] = ()) -> None:
        self._root = root or _Section()
        self.files = files

    # -- raw access ----------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        """The string value at ``key`` (e.g. ``charon.plugins.attr.dns``), following
        section references; ``default`` if unset."""
        value = self._find(self._root, key.split("."), set())
        return default if value is None else value

    def _find(self, section: _Section, parts: list[str], seen: set[int]) -> str | None:
        if id(section) in seen:
            return None
        seen = seen | {id(section)}
        if len(parts) == 1 and parts[0] in section.settings:
            return section.settings[parts[0]]
        if len(parts) > 1 and parts[0] in section.sections:
            value = self._find(section.sections[parts[0]], parts[1:], seen)
            if value is not None:
                return value
        for reference in section.references:
            target = self._section(reference.split("."))
            if target is not None:
                value = self._find(target, parts, seen)
                if value is not None:
                    return value
        return None

    def _section(self, parts: list[str]) -> _Section | None:
        section = self._root
        for part in parts:
            section = section.sections.get(part)
            if section is None:
                return None
        return section

    def subsections(self, key: str) -> list[str]:
        """The names of the sections directly in section ``key`` (e.g. the servers of
        ``charon.plugins.eap-radius.servers``), without references, in file order."""
        section = self._section(key.split(".")) if key else self._root
        return list(section.sections) if section is not None else []

    def section_keys(self, key: str) -> dict[str, str]:
        """The settings directly in section ``key`` (e.g. ``charon.plugins.attr``),
        without references, in file order; unset keys are left out."""
        section = self._section(key.split(".")) if key else self._root
        if section is None:
            return {}
        return {k: v for k, v in section.settings.items() if v is not None}

    # -- typed getters -------------------------------------------------------------------

    def _default(self, key: str, default):
        if default is not None:
            return default
        return DEFAULTS[key][1] if key in DEFAULTS else None

    def get_str(self, key: str, default: str | None = None) -> str | None:
        return self.get(key, default)

    def _parsed(self, key: str, parse, default):
        """``parse`` of the value of ``key``; the default if absent or unparsable."""
        parsed = parse(self.get(key))
        return self._default(key, default) if parsed is None else parsed

    def get_int(self, key: str, default: int | None = None) -> int | None:
        return self._parsed(key, parse_int, default)

    def get_float(self, key: str, default: float | None = None) -> float | None:
        return self._parsed(key, parse_float, default)

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        return self._parsed(key, parse_bool, default)

    def get_time(self, key: str, default: int | None = None) -> int | None:
        """A duration in seconds (``20``, ``20s``, ``5m``, ``1h``, ``2d``)."""
        return self._parsed(key, parse_time, default)

    def check(self, diagnostics: Diagnostics, path: str) -> None:
        """Warn about values of :data:`DEFAULTS` settings that do not parse (strongSwan
        would silently use the default)."""
        parsers = {"int": parse_int, "float": parse_float, "bool": parse_bool, "time": parse_time}
        for key, (kind, default) in DEFAULTS.items():
            value = self.get(key)
            if value is None or key.startswith("ikegate.redirect."):
                continue
            if kind == "str":
                choices = CHOICES.get(key)
                if choices is not None and value.strip().lower() not in choices:  # as the daemon reads it
                    diagnostics.warning(path, 0, 0, f"{key} = {value}: not one of {', '.join(choices)}, "
                                        f"the default {default} is used", "strongswan.conf")
            elif parsers[kind](value) is None:
                diagnostics.warning(path, 0, 0, f"{key} = {value}: not a valid {kind}, the default "
                                    f"{default} is used", "strongswan.conf")
        # ikegate.redirect has rules of its own (a bad threshold turns redirect off)
        from ikegate.ike.tasks.ike_redirect import redirect_problems

        for problem in redirect_problems(self):
            diagnostics.warning(path, 0, 0, problem, "strongswan.conf")


def parse_int(value: str | None) -> int | None:
    """settings_value_as_int(): decimal, or hex with 0x; the whole value."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text[:2] in ("0x", "0X"):
            return int(text[2:], 16)
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text, 10)
    except ValueError:
        return None
    return None


def parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("1", "yes", "true", "enabled"):
        return True
    if lowered in ("0", "no", "false", "disabled"):
        return False
    return None


def parse_time(value: str | None) -> int | None:
    """timespan_from_string(): digits, optional blanks, optional unit d/h/m/s."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([dhms]?)", value)
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


# ------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        self.root = _Section()
        self.files: list[str] = []

    def parse_file(self, path: str, stack: list[_Section], chain: tuple[str, ...]) -> None:
        try:
            text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise ConfigError(path, 0, 0, f"cannot read file: {exc.strerror}") from None
        self.files.append(path)
        chain = chain + (os.path.realpath(path),)
        depth = len(stack)
        pos, line, col = self._statements(text, path, 0, 1, 1, stack, chain, depth)
        if len(stack) != depth:
            raise ConfigError(path, line, col, "unexpected end of file: missing '}'")

    def _statements(self, text, path, pos, line, col, stack, chain, base):
        n = len(text)

        def skip_blank(pos, line, col):
            while pos < n:
                c = text[pos]
                if c == "#":
                    while pos < n and text[pos] != "\n":
                        pos += 1
                    continue
                if c == "\n":
                    pos, line, col = pos + 1, line + 1, 1
                    continue
                if c in " \t\r":
                    pos, col = pos + 1, col + 1
                    continue
                break
            return pos, line, col

        while True:
            pos, line, col = skip_blank(pos, line, col)
            if pos >= n:
                return pos, line, col
            c = text[pos]
            if c == "}":
                if len(stack) <= base:
                    raise ConfigError(path, line, col, "unexpected '}' (no section is open)")
                stack.pop()
                pos, col = pos + 1, col + 1
                continue
            if c == '"':
                raise ConfigError(path, line, col, "unexpected string (quotes are allowed in values only)")
            match = _NAME.match(text, pos)
            if not match:
                raise ConfigError(path, line, col, f"unexpected '{c}'")
            name = match.group(0)
            name_line, name_col = line, col
            if name == "include" and pos + 7 < n and text[pos + 7] in " \t":
                rest = pos + 7
                while rest < n and text[rest] in " \t":
                    rest += 1
                if rest < n and text[rest] != "=":
                    pos, col = rest, col + (rest - pos)
                    pattern, pos, line, col = self._include_pattern(text, path, pos, line, col)
                    self._include(pattern, path, name_line, name_col, stack, chain)
                    continue
            pos, col = match.end(), col + len(name)
            pos, line, col = skip_blank(pos, line, col)
            if pos >= n:
                raise ConfigError(path, line, col, f"unexpected end of file after '{name}' "
                                  "(expected '=', '{' or ':')")
            c = text[pos]
            if c == "=":
                pos, col = pos + 1, col + 1
                value, pos, line, col = self._value(text, path, pos, line, col)
                stack[-1].settings.pop(name, None)
                stack[-1].settings[name] = value
                continue
            references: list[str] = []
            if c == ":":
                pos, col = pos + 1, col + 1
                while True:
                    pos, line, col = skip_blank(pos, line, col)
                    ref = re.compile(r'[^#{}:,="\r\n\t ]+').match(text, pos)
                    if not ref:
                        raise ConfigError(path, line, col, "section reference expected after ':'")
                    references.append(ref.group(0))
                    pos, col = ref.end(), col + len(ref.group(0))
                    pos, line, col = skip_blank(pos, line, col)
                    if pos < n and text[pos] == ",":
                        pos, col = pos + 1, col + 1
                        continue
                    break
                c = text[pos] if pos < n else ""
            if c == "{":
                pos, col = pos + 1, col + 1
                section = stack[-1].sections.setdefault(name, _Section())
                for ref in references:
                    if ref not in section.references:
                        section.references.append(ref)
                stack.append(section)
                continue
            if c == ".":
                raise ConfigError(path, line, col, f"unexpected '.' after '{name}': write sections as "
                                  "'name { key = value }'")
            raise ConfigError(path, name_line, name_col, f"expected '=' or '{{' after '{name}'")

    def _value(self, text, path, pos, line, col):
        """A value after '=': up to newline, '#' or '}'; words joined by one space."""
        n = len(text)
        words: list[str] = []
        while pos < n:
            c = text[pos]
            if c in " \t\r":
                pos, col = pos + 1, col + 1
                continue
            if c in "\n#}":
                break
            if c == '"':
                start_line, start_col = line, col
                pos, col = pos + 1, col + 1
                out: list[str] = []
                while True:
                    if pos >= n:
                        raise ConfigError(path, start_line, start_col, "unterminated quoted string")
                    c = text[pos]
                    if c == '"':
                        pos, col = pos + 1, col + 1
                        break
                    if c == "\r":
                        pos += 1
                        continue
                    if c == "\\":
                        if pos + 1 >= n:
                            raise ConfigError(path, start_line, start_col, "unterminated quoted string")
                        nxt = text[pos + 1]
                        if nxt == "\n":
                            pos, line, col = pos + 2, line + 1, 1
                            continue
                        out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                        pos, col = pos + 2, col + 2
                        continue
                    if c == "\n":
                        line, col = line + 1, 1
                    else:
                        col += 1
                    out.append(c)
                    pos += 1
                words.append("".join(out))
                continue
            match = _VALUE_WORD.match(text, pos)
            words.append(match.group(0))
            pos, col = match.end(), col + len(match.group(0))
        return (" ".join(words) if words else None), pos, line, col

    def _include_pattern(self, text, path, pos, line, col):
        n = len(text)
        parts: list[str] = []
        while pos < n:
            c = text[pos]
            if c in "#}\n":
                break
            if c in " \t":
                pos, col = pos + 1, col + 1
                break
            if c == "\r":
                pos += 1
                continue
            if c == '"':
                end = text.find('"', pos + 1)
                if end < 0:
                    raise ConfigError(path, line, col, "unterminated quoted string")
                parts.append(text[pos + 1 : end])
                col += end + 1 - pos
                pos = end + 1
                break
            if c == "\\" and pos + 1 < n and text[pos + 1] in '"#} ':
                parts.append(text[pos + 1])
                pos, col = pos + 2, col + 2
                continue
            parts.append(c)
            pos, col = pos + 1, col + 1
        return "".join(parts), pos, line, col

    def _include(self, pattern, path, line, col, stack, chain) -> None:
        if not pattern:
            self.diagnostics.warning(path, line, col, "no include pattern specified, ignored", "strongswan.conf")
            return
        full = pattern if os.path.isabs(pattern) else os.path.join(os.path.dirname(path) or ".", pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            self.diagnostics.warning(path, line, col, f"include: no files found matching '{full}'",
                                     "strongswan.conf")
            return
        for match in matches:
            if not os.path.isfile(match):
                continue
            if os.path.realpath(match) in chain:
                raise ConfigError(path, line, col, f"include loop: '{match}' is already being read")
            if len(chain) > _MAX_INCLUDE_DEPTH:
                raise ConfigError(path, line, col, f"includes nested more than {_MAX_INCLUDE_DEPTH} deep")
            depth = len(stack)
            self.parse_file(match, stack, chain)
            del stack[depth:]


def load_strongswan_conf(path: str | os.PathLike, diagnostics: Diagnostics | None = None) -> StrongswanConf:
    """Parse a strongswan.conf (and its includes).  Raises ConfigError on syntax errors."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    parser = _Parser(diagnostics)
    parser.parse_file(str(path), [parser.root], ())
    return StrongswanConf(parser.root, tuple(parser.files))
