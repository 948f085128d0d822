"""The ipsec.conf keywords of strongSwan 5.9.8 and the value syntax of each.

Sources: src/starter/keywords.txt (the names), keywords.h.in (which section each
belongs to), args.c (value types: ``ARG_ENUM`` lists, ``ARG_TIME``, ``ARG_UINT``,
``ARG_PCNT`` ...) and confread.c (deprecated keywords, ``conn_defaults``).

How confread.c treats a keyword, and so how we do:

* unknown keyword: a warning ("# unknown keyword"), the section still loads;
* deprecated keyword: a warning, the value is ignored;
* keyword of another section type (``uniqueids`` in a conn, ``cacert`` in a conn, a
  conn keyword in ``config setup``): an error ("unsupported keyword");
* bad value: an error.  Errors drop the conn (or ca); in ``config setup`` they make the
  starter refuse the whole configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

# keyword scopes
SETUP = "setup"
CONN = "conn"
CA = "ca"
END = "end"  # left*/right* keywords; the key without its side prefix is in `name`

# value kinds (args.c arg_t plus the keywords handled by hand in confread.c)
STR = "str"
ENUM = "enum"
BOOL = "bool"
TIME = "time"
UINT = "uint"
ULLI = "ulli"
PCNT = "pcnt"
UBIN = "ubin"
MISC = "misc"  # parsed by confread.c's handle_keyword()/kw_end() rules
DEPRECATED = "deprecated"

LST_BOOL = ("no", "yes")
LST_SENDCERT = ("always", "ifasked", "never", "yes", "no")
LST_UNIQUE = ("no", "yes", "replace", "keep", "never")
LST_STRICT = ("no", "yes", "ifuri")
LST_DPD_ACTION = ("none", "clear", "hold", "restart")
LST_STARTUP = ("ignore", "add", "route", "start")
LST_KEYEXCHANGE = ("ike", "ikev1", "ikev2")
LST_AUTHBY = ("psk", "secret", "pubkey", "rsa", "rsasig", "ecdsa", "ecdsasig", "xauthpsk", "xauthrsasig", "never")
LST_FRAGMENTATION = ("no", "accept", "yes", "force")


@dataclass(frozen=True)
class Keyword:
    """One ipsec.conf keyword: its ``scope``, canonical ``name`` (for ``END`` keywords
    the name without ``left``/``right``; aliases map to one name) and value ``kind``."""

    scope: str
    name: str
    kind: str
    choices: tuple[str, ...] = ()


def _k(scope: str, name: str, kind: str, choices: tuple[str, ...] = ()) -> Keyword:
    return Keyword(scope, name, kind, choices)


_SETUP_KEYWORDS = {
    "charondebug": _k(SETUP, "charondebug", STR),
    "uniqueids": _k(SETUP, "uniqueids", ENUM, LST_UNIQUE),
    "cachecrls": _k(SETUP, "cachecrls", BOOL, LST_BOOL),
    "strictcrlpolicy": _k(SETUP, "strictcrlpolicy", ENUM, LST_STRICT),
}
_SETUP_DEPRECATED = (
    "interfaces", "dumpdir", "charonstart", "plutostart", "klipsdebug", "plutodebug", "prepluto",
    "postpluto", "plutostderrlog", "fragicmp", "packetdefault", "hidetos", "overridemtu",
    "crlcheckinterval", "nocrsend", "nat_traversal", "keep_alive", "force_keepalive", "virtual_private",
    "pkcs11module", "pkcs11initargs", "pkcs11keepstate", "pkcs11proxy",
)

_CONN_KEYWORDS = {
    "auto": _k(CONN, "auto", ENUM, LST_STARTUP),
    "keyexchange": _k(CONN, "keyexchange", ENUM, LST_KEYEXCHANGE),
    "type": _k(CONN, "type", MISC),
    "compress": _k(CONN, "compress", MISC),
    "installpolicy": _k(CONN, "installpolicy", BOOL, LST_BOOL),
    "aggressive": _k(CONN, "aggressive", BOOL, LST_BOOL),
    "authby": _k(CONN, "authby", ENUM, LST_AUTHBY),
    "eap_identity": _k(CONN, "eap_identity", STR),
    "aaa_identity": _k(CONN, "aaa_identity", STR),
    "mobike": _k(CONN, "mobike", MISC),
    "forceencaps": _k(CONN, "forceencaps", MISC),
    "fragmentation": _k(CONN, "fragmentation", ENUM, LST_FRAGMENTATION),
    "ikedscp": _k(CONN, "ikedscp", UBIN),
    "ikelifetime": _k(CONN, "ikelifetime", TIME),
    "lifetime": _k(CONN, "lifetime", TIME),
    "keylife": _k(CONN, "lifetime", TIME),
    "rekeymargin": _k(CONN, "margintime", TIME),
    "margintime": _k(CONN, "margintime", TIME),
    "lifebytes": _k(CONN, "lifebytes", ULLI),
    "marginbytes": _k(CONN, "marginbytes", ULLI),
    "lifepackets": _k(CONN, "lifepackets", ULLI),
    "marginpackets": _k(CONN, "marginpackets", ULLI),
    "keyingtries": _k(CONN, "keyingtries", MISC),
    "rekeyfuzz": _k(CONN, "rekeyfuzz", PCNT),
    "rekey": _k(CONN, "rekey", MISC),
    "reauth": _k(CONN, "reauth", MISC),
    "ike": _k(CONN, "ike", STR),
    "esp": _k(CONN, "esp", STR),
    "ah": _k(CONN, "ah", STR),
    "dpddelay": _k(CONN, "dpddelay", TIME),
    "dpdtimeout": _k(CONN, "dpdtimeout", TIME),
    "dpdaction": _k(CONN, "dpdaction", ENUM, LST_DPD_ACTION),
    "closeaction": _k(CONN, "closeaction", ENUM, LST_DPD_ACTION),
    "sha256_96": _k(CONN, "sha256_96", BOOL, LST_BOOL),
    "inactivity": _k(CONN, "inactivity", TIME),
    "modeconfig": _k(CONN, "modeconfig", MISC),
    "xauth": _k(CONN, "xauth", MISC),
    "xauth_identity": _k(CONN, "xauth_identity", STR),
    "mediation": _k(CONN, "mediation", BOOL, LST_BOOL),
    "mediated_by": _k(CONN, "mediated_by", STR),
    "me_peerid": _k(CONN, "me_peerid", STR),
    "reqid": _k(CONN, "reqid", UINT),
    "replay_window": _k(CONN, "replay_window", UINT),
    "mark": _k(CONN, "mark", MISC),
    "mark_in": _k(CONN, "mark_in", MISC),
    "mark_out": _k(CONN, "mark_out", MISC),
    "tfc": _k(CONN, "tfc", MISC),
}
_CONN_DEPRECATED = ("pfs", "pfsgroup", "eap")

_CA_KEYWORDS = {
    "auto": _k(CA, "auto", ENUM, LST_STARTUP),
    "cacert": _k(CA, "cacert", STR),
    "crluri": _k(CA, "crluri", STR),
    "crluri1": _k(CA, "crluri", STR),
    "crluri2": _k(CA, "crluri2", STR),
    "ocspuri": _k(CA, "ocspuri", STR),
    "ocspuri1": _k(CA, "ocspuri", STR),
    "ocspuri2": _k(CA, "ocspuri2", STR),
    "certuribase": _k(CA, "certuribase", STR),
}
_CA_DEPRECATED = ("ldaphost", "ldapbase")

_END_KEYWORDS = {
    "": _k(END, "host", MISC),
    "ikeport": _k(END, "ikeport", UINT),
    "subnet": _k(END, "subnet", STR),
    "subnetwithin": _k(END, "subnet", STR),
    "protoport": _k(END, "protoport", MISC),
    "sourceip": _k(END, "sourceip", STR),
    "dns": _k(END, "dns", STR),
    "firewall": _k(END, "firewall", BOOL, LST_BOOL),
    "hostaccess": _k(END, "hostaccess", BOOL, LST_BOOL),
    "allowany": _k(END, "allowany", BOOL, LST_BOOL),
    "updown": _k(END, "updown", STR),
    "auth": _k(END, "auth", STR),
    "auth2": _k(END, "auth2", STR),
    "id": _k(END, "id", STR),
    "id2": _k(END, "id2", STR),
    "sigkey": _k(END, "sigkey", STR),
    "rsasigkey": _k(END, "sigkey", STR),
    "cert": _k(END, "cert", STR),
    "cert2": _k(END, "cert2", STR),
    "certpolicy": _k(END, "certpolicy", STR),
    "sendcert": _k(END, "sendcert", ENUM, LST_SENDCERT),
    "ca": _k(END, "ca", STR),
    "ca2": _k(END, "ca2", STR),
    "groups": _k(END, "groups", STR),
    "groups2": _k(END, "groups2", STR),
}
_END_DEPRECATED = ("nexthop",)


def lookup(key: str) -> tuple[Keyword | None, str | None]:
    """The keyword for ``key`` and, for left/right keywords, the side.

    Returns ``(None, None)`` for an unknown key; deprecated keys come back with kind
    :data:`DEPRECATED`.  (``also`` never gets here: the parser consumes it.)
    """
    for side in ("left", "right"):
        if key.startswith(side):
            rest = key[len(side) :]
            if rest in _END_KEYWORDS:
                return _END_KEYWORDS[rest], side
            if rest in _END_DEPRECATED:
                return Keyword(END, rest, DEPRECATED), side
    if key in _SETUP_KEYWORDS:
        return _SETUP_KEYWORDS[key], None
    if key in _SETUP_DEPRECATED:
        return Keyword(SETUP, key, DEPRECATED), None
    if key in _CONN_KEYWORDS and key != "auto":
        return _CONN_KEYWORDS[key], None
    if key in _CONN_DEPRECATED:
        return Keyword(CONN, key, DEPRECATED), None
    if key in _CA_KEYWORDS and key != "auto":
        return _CA_KEYWORDS[key], None
    if key in _CA_DEPRECATED:
        return Keyword(CA, key, DEPRECATED), None
    if key == "auto":
        return _CONN_KEYWORDS["auto"], None  # valid in conn and ca sections
    return None, None


def ca_keyword(key: str) -> Keyword | None:
    """The ca-section meaning of ``key`` (``auto`` differs from the conn one only in
    scope), or None."""
    if key in _CA_KEYWORDS:
        return _CA_KEYWORDS[key]
    if key in _CA_DEPRECATED:
        return Keyword(CA, key, DEPRECATED)
    return None


# ------------------------------------------------------------------------------------
# args.c value parsing


class BadValue(ValueError):
    """A bad value; the message says what was expected."""


def _strtoul(text: str, base: int = 10) -> tuple[int | None, str]:
    """C strtoul() on ``text``: (number or None if no digits, unparsed rest).
    A leading '-' is refused (strtoul would wrap it around)."""
    stripped = text.lstrip(" \t\n\r\f\v")
    if stripped.startswith("+"):
        stripped = stripped[1:]
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    if base == 16 and stripped[:2].lower() == "0x":
        stripped = stripped[2:]
    count = 0
    while count < len(stripped) and stripped[count].lower() in digits:
        count += 1
    if count == 0:
        return None, text
    return int(stripped[:count], base), stripped[count:]


def parse_enum(key: str, value: str, choices: tuple[str, ...]) -> str:
    """An ``ARG_ENUM`` value: one of ``choices`` exactly (case-sensitive)."""
    if value in choices:
        return value
    raise BadValue(f"bad value: {key}={value} (expected {', '.join(choices)})")


def parse_bool(key: str, value: str) -> bool:
    return parse_enum(key, value, LST_BOOL) == "yes"


def parse_time(key: str, value: str) -> int:
    """``ARG_TIME``: an unsigned integer with an optional unit s, m, h or d (seconds)."""
    number, rest = _strtoul(value)
    if number is not None and value.strip()[:1] != "-":
        factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}.get(rest)
        if factor is not None:
            return number * factor
    raise BadValue(f"bad duration value: {key}={value} (expected an integer with an optional "
                      "unit s, m, h or d)")


def parse_uint(key: str, value: str, limit: int = 2**32 - 1) -> int:
    number, rest = _strtoul(value)
    if number is None or rest or number > limit:
        raise BadValue(f"bad integer value: {key}={value}")
    return number


def parse_ulli(key: str, value: str) -> int:
    return parse_uint(key, value, 2**64 - 1)


def parse_percent(key: str, value: str) -> int:
    """``ARG_PCNT``: an integer followed by '%'."""
    number, rest = _strtoul(value)
    if number is None or rest != "%":
        raise BadValue(f"bad percent value: {key}={value} (expected e.g. 100%)")
    return number


def parse_binary(key: str, value: str) -> int:
    """``ARG_UBIN`` (ikedscp): binary digits."""
    number, rest = _strtoul(value, 2)
    if number is None or rest:
        raise BadValue(f"bad binary value: {key}={value} (expected e.g. 000000)")
    return number


def parse_yes_no_flag(key: str, value: str, yes: str = "yes", no: str = "no") -> bool:
    """confread.c KW_SA_OPTION_FLAG: True for ``yes``, False for ``no``."""
    if value == yes:
        return True
    if value == no:
        return False
    raise BadValue(f"bad option value: {key}={value} (expected {yes} or {no})")


MARK_UNIQUE = 0xFFFFFFFF
MARK_UNIQUE_DIR = 0xFFFFFFFE


def parse_mark(key: str, value: str) -> tuple[int, int]:
    """mark_from_string() with unique marks allowed: ``value[/mask]``, ``%unique``,
    ``%unique-dir``; numbers in C notation (0x.., 0.., decimal).  -> (value, mask)"""
    lowered = value.lower()
    if lowered.startswith("%unique"):
        rest = value[len("%unique") :]
        if rest.lower().startswith("-dir"):
            mark, rest = MARK_UNIQUE_DIR, rest[4:]
        elif not rest or rest.startswith("/"):
            mark = MARK_UNIQUE
        else:
            raise BadValue(f"invalid mark value: {key}={value}")
    else:
        mark_value, rest = _c_number(value)
        if mark_value is None:
            raise BadValue(f"invalid mark value: {key}={value}")
        mark = mark_value
    if not rest:
        return mark & 0xFFFFFFFF, 0xFFFFFFFF
    if not rest.startswith("/"):
        raise BadValue(f"invalid mark value: {key}={value}")
    mask, tail = _c_number(rest[1:])
    if mask is None or tail:
        raise BadValue(f"invalid mark mask: {key}={value}")
    return mark & 0xFFFFFFFF, mask & 0xFFFFFFFF


def _c_number(text: str) -> tuple[int | None, str]:
    """strtoul(text, &end, 0): hex with 0x, octal with a leading 0, else decimal."""
    if text[:2].lower() == "0x":
        return _strtoul(text, 16)
    if text[:1] == "0" and len(text) > 1 and text[1].isdigit():
        return _strtoul(text, 8)
    return _strtoul(text, 10)
