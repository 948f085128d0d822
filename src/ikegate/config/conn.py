"""From parsed ipsec.conf sections to :mod:`ikegate.config.model` objects.

This is what strongSwan 5.9.8's starter (src/starter/confread.c, args.c) and the
stroke plugin (src/libcharon/plugins/stroke/stroke_config.c, stroke_attribute.c)
make of each ``config setup``, ``conn`` and ``ca`` section:

* every value is checked; a bad one is an error and drops its conn (or ca), other
  conns still load ("ignored conn ... due to N parsing errors");
* errors in ``config setup`` make the whole configuration unusable (the starter
  refuses to start) -- the caller decides, :func:`build_setup` only reports;
* unknown keywords and deprecated ones are warnings.

Where ikegate is stricter than 5.9.8, on purpose, because the strongSwan behaviour
silently changes what the conn does:

* an invalid ``leftsubnet``/``rightsubnet`` token (strongSwan skips it and falls back
  to ``%dynamic`` if none is left) and an invalid ``rightsourceip`` token (strongSwan
  ignores the pool) are errors;
* a ``leftcert`` that cannot be loaded is an error (strongSwan loads the conn without
  certificate);
* ``keyexchange=ikev1``, ``aggressive=yes``, ``ah=``, ``type=beet|transport_proxy`` and
  ``mediation=yes`` are errors: ikegate does not implement them.  ``type=pass|drop``
  (shunt policies) conns are skipped with a warning.

``auto=route`` and ``auto=start`` are treated as ``auto=add`` (ikegate only responds).

Which end is local: like stroke_config.c ``swap_ends`` the ends are swapped when an
address of ``right=`` is local; ikegate asks the ``is_local(address)`` callable given
to :func:`build_conn` (no callable: left is local, as strongSwan assumes when neither
side is), and only for IP address literals (no DNS lookups while loading).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from types import MappingProxyType
from typing import Callable

from ikegate.config import keywords as kw
from ikegate.config.errors import Diagnostics
from ikegate.config.ipsecconf import Section, Setting
from ikegate.config.model import (
    FIREWALL_UPDOWN,
    AuthSpec,
    CaSection,
    Conn,
    End,
    PoolSpec,
    Setup,
    SignatureConstraint,
    TsSpec,
)
from ikegate.config.proposals import ProposalError, parse_proposals
from ikegate.identity import Identity, cert_has_identity
from ikegate.wire.constants import ProtocolId

IsLocal = Callable[[str], bool]

#: charon's debug subsystems (src/charon/charon.c / debug.h) for charondebug warnings
DEBUG_GROUPS = frozenset(
    "dmn mgr ike chd job cfg knl net asn enc tnc imc imv pts tls esp lib any".split()
)

# eap_type_from_string() of src/libstrongswan/eap/eap.c
EAP_TYPES = {
    "identity": 1, "md5": 4, "otp": 5, "gtc": 6, "tls": 13, "ttls": 21, "sim": 18, "aka": 23,
    "peap": 25, "mschapv2": 26, "tnc": 38, "pt": 54, "dynamic": 257, "radius": 256,
}
EAP_RADIUS = 256
PEN_UNASSIGNED = 0xFFFFFE

_CONFIG_POOLS = ("%modeconfig", "%modecfg", "%config", "%cfg", "%config4", "%config6")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_NUMERIC_HOST = re.compile(r"^[0-9.]+$")


class _Collector:
    """Errors and warnings of one section, located at the setting they are about."""

    def __init__(self, section: Section, diagnostics: Diagnostics) -> None:
        self.section = section
        self.diagnostics = diagnostics
        self.errors = 0
        self.context = section.label

    def error(self, setting: Setting | None, message: str, at_value: bool = True) -> None:
        path, line, col = self._where(setting, at_value)
        self.diagnostics.error(path, line, col, message, self.context)
        self.errors += 1

    def warning(self, setting: Setting | None, message: str, at_value: bool = True) -> None:
        path, line, col = self._where(setting, at_value)
        self.diagnostics.warning(path, line, col, message, self.context)

    def _where(self, setting: Setting | None, at_value: bool) -> tuple[str, int, int]:
        if setting is None:
            return self.section.path, self.section.line, self.section.column
        return setting.value_location if at_value else setting.location


def _parse_simple(keyword: kw.Keyword, setting: Setting):
    """Values of the plain args.c kinds; MISC and STR come back as text."""
    key, value = setting.key, setting.value or ""
    if keyword.kind == kw.ENUM:
        return kw.parse_enum(key, value, keyword.choices)
    if keyword.kind == kw.BOOL:
        return kw.parse_bool(key, value)
    if keyword.kind == kw.TIME:
        return kw.parse_time(key, value)
    if keyword.kind == kw.UINT:
        return kw.parse_uint(key, value)
    if keyword.kind == kw.ULLI:
        return kw.parse_ulli(key, value)
    if keyword.kind == kw.PCNT:
        return kw.parse_percent(key, value)
    if keyword.kind == kw.UBIN:
        return kw.parse_binary(key, value)
    return value


# ------------------------------------------------------------------------------------
# config setup


def parse_charondebug(text: str) -> tuple[dict[str, int], str | None]:
    """The starter's ``sscanf(pos, "%3s %d,")`` loop: pairs ``<type> <level>``
    separated by commas; parsing stops at the first malformed pair.  Returns the
    mapping and the unparsed rest (None if everything was used)."""
    result: dict[str, int] = {}
    pos: str | None = text
    while pos is not None:
        # %3s takes up to three non-blanks and never gives any back (atomic group)
        match = re.match(r"\s*(?>(\S{1,3}))\s*([+-]?\d+)", pos)
        if not match:
            rest = pos.strip()
            return result, rest or None
        result[match.group(1)] = int(match.group(2))
        comma = pos.find(",")
        pos = pos[comma + 1 :] if comma >= 0 else None
    return result, None


def build_setup(section: Section, diagnostics: Diagnostics) -> tuple[Setup, int]:
    """The ``config setup`` section and its number of errors (any error is fatal)."""
    out = _Collector(section, diagnostics)
    values: dict[str, object] = {}
    for key, setting in section.effective().items():
        keyword, side = kw.lookup(key)
        if keyword is None:
            out.warning(setting, f"unknown keyword '{key}'", at_value=False)
            continue
        if keyword.scope != kw.SETUP:
            out.error(setting, f"unsupported keyword '{key}' in config setup", at_value=False)
            continue
        if keyword.kind == kw.DEPRECATED:
            out.warning(setting, f"deprecated keyword '{key}' in config setup (ignored)", at_value=False)
            continue
        try:
            values[keyword.name] = _parse_simple(keyword, setting)
        except kw.BadValue as exc:
            out.error(setting, f"{exc} in config setup")
    debug: dict[str, int] = {}
    debug_text = values.get("charondebug")
    if isinstance(debug_text, str):
        debug, rest = parse_charondebug(debug_text)
        setting = section.effective()["charondebug"]
        if rest is not None:
            out.warning(setting, f"charondebug: cannot parse '{rest}' (expected '<type> <level>, ...'); "
                        "the rest is ignored as the starter does")
        unknown = sorted(set(debug) - DEBUG_GROUPS)
        if unknown:
            out.warning(setting, f"charondebug: unknown subsystem(s) {', '.join(unknown)}")
        if any(level >= 4 for level in debug.values()):
            out.warning(setting, "charondebug: level 4 makes strongSwan log secrets (keys, passwords); "
                                 "ikegate never logs them, at any level")
    setup = Setup(
        charondebug=MappingProxyType(debug),
        charondebug_text=debug_text if isinstance(debug_text, str) else None,
        uniqueids=str(values.get("uniqueids", "yes")),
        cachecrls=bool(values.get("cachecrls", False)),
        strictcrlpolicy=str(values.get("strictcrlpolicy", "no")),
    )
    return setup, out.errors


# ------------------------------------------------------------------------------------
# ca sections


def build_ca(section: Section, confdir: Path, diagnostics: Diagnostics,
             load_certificate=None) -> CaSection | None:
    """A ``ca`` section, or None if it has errors (it is then ignored)."""
    out = _Collector(section, diagnostics)
    values: dict[str, object] = {}
    settings = section.effective()
    for key, setting in settings.items():
        keyword, _side = kw.lookup(key)
        if keyword is None:
            out.warning(setting, f"unknown keyword '{key}'", at_value=False)
            continue
        keyword = kw.ca_keyword(key)
        if keyword is None:
            out.error(setting, f"unsupported keyword '{key}' in ca '{section.name}'", at_value=False)
            continue
        if keyword.kind == kw.DEPRECATED:
            out.warning(setting, f"deprecated keyword '{key}' in ca '{section.name}' (ignored)", at_value=False)
            continue
        try:
            values[keyword.name] = _parse_simple(keyword, setting)
        except kw.BadValue as exc:
            out.error(setting, str(exc))
    cacert = cert_object = None
    if "cacert" in values:
        setting = settings.get("cacert")
        cacert = _cert_path(str(values["cacert"]), confdir / "ipsec.d" / "cacerts")
        cert_object = _load_cert(cacert, setting, out, load_certificate)
    if out.errors:
        out.error(None, f"ca '{section.name}' ignored due to {out.errors} error(s)", at_value=False)
        return None
    auto = str(values.get("auto", "ignore"))
    return CaSection(
        name=section.name or "",
        cacert=cacert,
        cacert_object=cert_object,
        crluri=values.get("crluri"),  # type: ignore[arg-type]
        crluri2=values.get("crluri2"),  # type: ignore[arg-type]
        ocspuri=values.get("ocspuri"),  # type: ignore[arg-type]
        ocspuri2=values.get("ocspuri2"),  # type: ignore[arg-type]
        certuribase=values.get("certuribase"),  # type: ignore[arg-type]
        auto="add" if auto in ("route", "start") else auto,
        source=(section.path, section.line),
    )


# ------------------------------------------------------------------------------------
# conn sections


def build_conn(section: Section, confdir: Path, diagnostics: Diagnostics,
               is_local: IsLocal | None = None, load_certificate=None) -> Conn | None:
    """A ``conn`` section as a :class:`Conn`, or None if it has errors (reported to
    ``diagnostics``) or is a shunt (``type=pass|drop``) conn."""
    return _ConnBuilder(section, confdir, diagnostics, is_local, load_certificate).build()


class _ConnBuilder:
    def __init__(self, section, confdir, diagnostics, is_local, load_certificate) -> None:
        self.section = section
        self.name = section.name or ""
        self.confdir = Path(confdir)
        self.out = _Collector(section, diagnostics)
        self.is_local = is_local
        self.load_certificate = load_certificate
        self.conn: dict[str, tuple[Setting, object]] = {}
        self.ends: dict[str, dict[str, tuple[Setting, object]]] = {"left": {}, "right": {}}

    # -- reading the keys ------------------------------------------------------------

    def _collect(self) -> None:
        for key, setting in self.section.effective().items():
            keyword, side = kw.lookup(key)
            if keyword is None:
                self.out.warning(setting, f"unknown keyword '{key}'", at_value=False)
                continue
            if keyword.scope not in (kw.CONN, kw.END):
                self.out.error(setting, f"unsupported keyword '{key}' in conn '{self.name}'", at_value=False)
                continue
            if keyword.kind == kw.DEPRECATED:
                self.out.warning(setting, f"deprecated keyword '{key}' in conn '{self.name}' (ignored)",
                                 at_value=False)
                if key == "pfs" or key == "pfsgroup":
                    self.out.warning(setting, "PFS is enabled by specifying a DH group in the 'esp' "
                                     "cipher suite", at_value=False)
                continue
            try:
                value = _parse_simple(keyword, setting)
            except kw.BadValue as exc:
                self.out.error(setting, str(exc))
                continue
            if keyword.scope == kw.END:
                self.ends[side or "left"][keyword.name] = (setting, value)
            else:
                self.conn[keyword.name] = (setting, value)

    def _get(self, name: str, default=None):
        entry = self.conn.get(name)
        return default if entry is None else entry[1]

    def _setting(self, name: str) -> Setting | None:
        entry = self.conn.get(name)
        return None if entry is None else entry[0]

    # -- the conn ----------------------------------------------------------------------

    def build(self) -> Conn | None:
        self._collect()
        out = self.out
        fields: dict[str, object] = {}

        for name in ("ikelifetime", "lifetime", "margintime", "rekeyfuzz", "lifebytes", "marginbytes",
                     "lifepackets", "marginpackets", "dpddelay", "dpdtimeout", "inactivity", "ikedscp",
                     "reqid", "dpdaction", "closeaction", "fragmentation", "installpolicy",
                     "sha256_96"):
            if name in self.conn:
                fields[name] = self._get(name)
        if "replay_window" in self.conn:
            fields["replay_window"] = self._get("replay_window")

        keyexchange = self._get("keyexchange", "ike")
        fields["keyexchange"] = keyexchange
        if keyexchange == "ikev1":
            out.error(self._setting("keyexchange"), "IKEv1 is not supported (keyexchange=ikev1); "
                      "ikegate speaks IKEv2 only")
        if self._get("aggressive", False):
            out.error(self._setting("aggressive"), "aggressive=yes is IKEv1 Aggressive Mode, which is "
                      "not supported (ikegate speaks IKEv2 only)")
        if self._get("dpdaction", "none") == "restart":
            out.error(self._setting("dpdaction"), "dpdaction=restart would re-initiate toward a dead "
                      "client, but ikegate only responds to clients; use dpdaction=clear (delete the SAs, "
                      "run down-client, take the lease offline) or dpdaction=none")
        if self._get("mediation", False):
            out.error(self._setting("mediation"), "mediation=yes (IKEv2 mediation extension) is not "
                      "supported")
        if "mediated_by" in self.conn:
            out.error(self._setting("mediated_by"), "mediated_by (IKEv2 mediation extension) is not "
                      "supported")

        auto = self._get("auto", "ignore")
        if auto in ("route", "start"):
            out.warning(self._setting("auto"), f"auto={auto} treated as auto=add: ikegate only "
                        "responds to clients")
            auto = "add"
        fields["auto"] = auto

        for flag, yes, no in (("rekey", "yes", "no"), ("reauth", "yes", "no"), ("mobike", "yes", "no"),
                              ("forceencaps", "yes", "no"), ("compress", "yes", "no"),
                              ("modeconfig", "push", "pull"), ("xauth", "server", "client")):
            setting = self._setting(flag)
            if setting is None:
                continue
            try:
                result = kw.parse_yes_no_flag(setting.key, setting.value or "", yes, no)
            except kw.BadValue as exc:
                out.error(setting, str(exc))
                continue
            fields[flag] = result if flag not in ("modeconfig", "xauth") else (yes if result else no)
        if fields.get("compress"):
            out.warning(self._setting("compress"), "compress=yes: IPComp is not supported, ignored")

        skip = self._mode(fields)
        self._keyingtries(fields)
        self._marks(fields)
        self._tfc(fields)

        if "ah" in self.conn:
            out.error(self._setting("ah"), "AH (ah=) is not supported by ikegate; use esp=")
        for name, protocol in (("ike", ProtocolId.IKE), ("esp", ProtocolId.ESP)):
            text = self._get(name)
            try:
                proposals, strict = parse_proposals(text, protocol)
            except ProposalError as exc:
                out.error(self._setting(name), f"{name}={text}: {exc}")
                continue
            fields[name] = proposals
            fields[f"{name}_strict"] = strict
            fields[f"{name}_text"] = text

        for name in ("eap_identity", "aaa_identity", "xauth_identity"):
            text = self._get(name)
            if text is None:
                continue
            if name == "eap_identity":
                fields["eap_identity_text"] = text
            if name == "eap_identity" and text == "%identity":
                fields[name] = Identity.ANY
                continue
            identity = self._identity(self._setting(name), text)
            if identity is not None:
                fields[name] = identity

        left = self._end("left")
        right = self._end("right")
        if left is None or right is None or out.errors:
            self._dropped()
            return None

        local_is_left = True
        if self.is_local is not None and self._any_local(right.hosts):
            local_is_left = False
        local, remote = (left, right) if local_is_left else (right, left)
        local, remote = self._authentication(local, remote)
        local = self._certificate(local, is_local_end=True)
        remote = self._certificate(remote, is_local_end=False)
        if local is None or remote is None or out.errors:
            self._dropped()
            return None
        if local.sourceip:
            out.warning(self.ends[local.side]["sourceip"][0], f"{local.side}sourceip ignored: ikegate "
                        "does not request virtual IPs for itself")
        pools = self._pools(remote)
        if out.errors:
            self._dropped()
            return None
        if pools and fields.get("type", "tunnel") != "tunnel":
            out.warning(self.ends[remote.side]["sourceip"][0], f"{remote.side}sourceip forces tunnel mode")
            fields["type"] = "tunnel"
        if skip:
            return None
        if auto == "ignore":
            out.warning(None, f"conn '{self.name}' has auto=ignore (the default): it is not loaded; "
                        "use auto=add", at_value=False)
        return Conn(name=self.name, local=local, remote=remote, local_is_left=local_is_left, pools=pools,
                    source=(self.section.path, self.section.line), **fields)  # type: ignore[arg-type]

    def _dropped(self) -> None:
        count = self.out.errors
        self.out.error(None, f"conn '{self.name}' ignored due to {count} error{'s' if count > 1 else ''}",
                       at_value=False)

    def _mode(self, fields: dict) -> bool:
        """type=...; True if the conn is a shunt conn to skip."""
        setting = self._setting("type")
        if setting is None:
            return False
        value = setting.value or ""
        mode = {"tunnel": "tunnel", "transport": "transport", "transport_proxy": "transport_proxy",
                "beet": "beet", "passthrough": "pass", "pass": "pass", "drop": "drop",
                "reject": "drop"}.get(value)
        if mode is None:
            self.out.error(setting, f"bad policy value: type={value} (expected tunnel, transport, "
                           "transport_proxy, beet, passthrough, pass, drop or reject)")
            return False
        if mode in ("beet", "transport_proxy"):
            self.out.error(setting, f"type={value} is not supported by ikegate (tunnel or transport only)")
            return False
        if mode in ("pass", "drop"):
            self.out.warning(setting, f"type={value}: shunt conns are not supported by ikegate, conn "
                             f"'{self.name}' skipped")
            fields["type"] = mode
            return True
        fields["type"] = mode
        return False

    def _keyingtries(self, fields: dict) -> None:
        setting = self._setting("keyingtries")
        if setting is None:
            return
        if setting.value == "%forever":
            fields["keyingtries"] = 0
            return
        try:
            fields["keyingtries"] = kw.parse_uint(setting.key, setting.value or "")
        except kw.BadValue as exc:
            self.out.error(setting, str(exc))

    def _marks(self, fields: dict) -> None:
        """mark= sets both directions; mark_in=/mark_out= override one."""
        for name in ("mark", "mark_in", "mark_out"):
            setting = self._setting(name)
            if setting is None:
                continue
            try:
                mark = kw.parse_mark(setting.key, setting.value or "")
            except kw.BadValue as exc:
                self.out.error(setting, str(exc))
                continue
            for target in (("mark_in", "mark_out") if name == "mark" else (name,)):
                fields[target] = mark

    def _tfc(self, fields: dict) -> None:
        setting = self._setting("tfc")
        if setting is None:
            return
        if setting.value == "%mtu":
            fields["tfc"] = -1
            return
        try:
            fields["tfc"] = kw.parse_uint(setting.key, setting.value or "")
        except kw.BadValue as exc:
            self.out.error(setting, str(exc))

    def _identity(self, setting: Setting | None, text: str) -> Identity | None:
        try:
            return Identity.parse(text)
        except ValueError:
            self.out.error(setting, f"bad identity '{text}' (the part after '#' must be hexadecimal)")
            return None

    # -- the ends ------------------------------------------------------------------------

    def _end(self, side: str) -> End | None:
        values = self.ends[side]
        out = self.out
        fields: dict[str, object] = {"side": side}

        host_text = "%any"
        if "host" in values:
            setting, text = values["host"]
            text = str(text)
            if text.startswith("%"):
                if text == "%defaultroute":
                    text = "%any"
                if text not in ("%any", "%any4", "%any6"):
                    fields["allow_any"] = True
                    text = text[1:]
            hosts = tuple(t.strip(" ") for t in text.split(","))
            bad = [h for h in hosts if not _valid_host(h)]
            if bad:
                out.error(setting, f"bad address '{bad[0]}' in {setting.key}= (expected an IP address, "
                          "subnet, range, %any or a DNS name)")
            fields["hosts"] = hosts
            host_text = text
        if "allowany" in values:
            fields["allow_any"] = values["allowany"][1]
        fields["host_text"] = host_text

        for name in ("firewall", "hostaccess"):
            if name in values:
                fields[name] = values[name][1]
        if "ikeport" in values:
            setting, port = values["ikeport"]
            if not 1 <= int(port) <= 0xFFFF:  # type: ignore[call-overload]
                out.error(setting, f"bad port: {setting.key}={setting.value} (expected 1-65535)")
            fields["ikeport"] = port
        if "sendcert" in values:
            sendcert = values["sendcert"][1]
            fields["sendcert"] = {"yes": "always", "no": "never"}.get(sendcert, sendcert)  # type: ignore[arg-type]
        if "updown" in values:
            fields["updown"] = values["updown"][1]
        if fields.get("firewall"):
            if "updown" in values:
                out.error(values["firewall"][0], f"cannot have both {side}firewall and {side}updown",
                          at_value=False)
            else:
                fields["updown"] = FIREWALL_UPDOWN
                fields["firewall"] = False

        if "protoport" in values:
            setting, text = values["protoport"]
            try:
                protocol, low, high = _protoport(str(text), setting.key)
            except kw.BadValue as exc:
                out.error(setting, str(exc))
            else:
                fields.update(protocol=protocol, from_port=low, to_port=high)

        if "subnet" in values:
            setting, text = values["subnet"]
            subnets = []
            for token in (t.strip(" ") for t in str(text).split(",")):
                try:
                    subnets.append(_subnet(token, fields.get("protocol", 0), fields.get("from_port", 0),
                                           fields.get("to_port", 0xFFFF)))
                except kw.BadValue as exc:
                    out.error(setting, f"{setting.key}: {exc}")
            if subnets:
                fields["subnets"] = tuple(subnets)
        else:
            fields["subnets"] = (TsSpec(None, fields.get("protocol", 0), fields.get("from_port", 0),  # type: ignore[arg-type]
                                        fields.get("to_port", 0xFFFF)),)

        if "sourceip" in values:
            fields["sourceip"] = tuple(t.strip(" ") for t in str(values["sourceip"][1]).split(",") if t.strip(" "))
        if "dns" in values:
            setting, text = values["dns"]
            servers = []
            for token in (t.strip(" ") for t in str(text).split(",")):
                try:
                    servers.append(ipaddress.ip_address(token))
                except ValueError:
                    out.warning(setting, f"ignoring invalid DNS address '{token}' (as strongSwan does)")
            fields["dns"] = tuple(servers)

        for name in ("auth", "auth2", "id", "id2", "cert", "cert2", "ca", "ca2", "groups", "groups2",
                     "certpolicy", "sigkey"):
            if name in values:
                fields[f"_{name}"] = values[name]
        return _PartialEnd(fields)  # type: ignore[return-value]

    def _any_local(self, hosts: tuple[str, ...]) -> bool:
        for host in hosts:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                continue
            if self.is_local is not None and self.is_local(str(address)):
                return True
        return False

    def _authentication(self, local: "_PartialEnd", remote: "_PartialEnd"):
        """leftauth/rightauth, or the legacy authby= when neither is set
        (starterstroke.c), into AuthSpecs."""
        authby = self._get("authby")
        local_auth = local.fields.get("_auth")
        remote_auth = remote.fields.get("_auth")
        if local_auth is None and remote_auth is None and authby is not None:
            mapping = {"rsa": "pubkey", "rsasig": "pubkey", "ecdsa": "pubkey", "ecdsasig": "pubkey",
                       "pubkey": "pubkey", "secret": "psk", "psk": "psk", "xauthrsasig": "pubkey",
                       "xauthpsk": "psk"}
            method = mapping.get(str(authby))
            setting = self._setting("authby")
            if method is not None:
                local.fields["_auth"] = (setting, method)
                remote.fields["_auth"] = (setting, method)
                if str(authby).startswith("xauth"):
                    target = remote if self._get("xauth", "client") == "server" else local
                    target.fields["_auth2"] = (setting, "xauth")
        for end in (local, remote):
            entry = end.fields.pop("_auth", None)
            end.fields["auth"] = self._auth(entry) if entry else AuthSpec("pubkey", "pubkey")
            entry = end.fields.pop("_auth2", None)
            if entry:
                end.fields["auth2"] = self._auth(entry)
        return local, remote

    def _auth(self, entry: tuple[Setting, object]) -> AuthSpec:
        setting, text = entry
        spec, warnings = parse_auth(str(text))
        for message in warnings:
            self.out.warning(setting, message)
        return spec

    def _certificate(self, end: "_PartialEnd", is_local_end: bool) -> End | None:
        """Load the certificate, settle the identity (stroke_config.c build_auth_cfg)."""
        fields = end.fields
        out = self.out
        id_entry = fields.pop("_id", None)
        host_text = fields.pop("host_text", "%any")
        id_text = str(id_entry[1]) if id_entry else str(host_text)
        id_setting = id_entry[0] if id_entry else None
        loose = False
        if id_text.startswith("%") and id_text not in ("%any", "%any6"):
            loose = not is_local_end
            id_text = id_text[1:]
        identity = self._identity(id_setting, id_text)
        if identity is None:
            return None
        fields["id_configured"] = str(id_entry[1]) if id_entry else None
        fields["id_loose"] = loose

        cert_entry = fields.pop("_cert", None)
        if cert_entry:
            setting, text = cert_entry
            tokens = [t.strip(" ") for t in str(text).split(",") if t.strip(" ")]
            if tokens and tokens[0].startswith("%smartcard"):
                out.error(setting, "smartcard certificates (%smartcard) are not supported")
                return None
            if len(tokens) > 1:
                out.warning(setting, f"only the first certificate of {setting.key}= is used")
            path = _cert_path(tokens[0] if tokens else "", self.confdir / "ipsec.d" / "certs")
            cert = _load_cert(path, setting, out, self.load_certificate)
            if cert is None:
                return None
            fields["cert"] = path
            fields["cert_object"] = cert
            if identity.is_any or not _cert_contains(cert, identity):
                subject = Identity.from_dn_der(cert.subject.public_bytes())
                if not identity.is_any or id_entry is not None:
                    out.warning(id_setting or setting, f"id '{identity}' not confirmed by certificate, "
                                f"defaulting to '{subject}'")
                identity = subject
                fields["id_from_cert"] = True
        fields["id"] = None if identity.is_any else identity

        cert2 = fields.pop("_cert2", None)
        if cert2:
            fields["cert2"] = _cert_path(str(cert2[1]), self.confdir / "ipsec.d" / "certs")
        id2 = fields.pop("_id2", None)
        if id2:
            fields["id2"] = self._identity(id2[0], str(id2[1]))
        for name in ("ca", "ca2"):
            entry = fields.pop(f"_{name}", None)
            if entry:
                text = str(entry[1])
                if text == "%same":
                    other = self.ends["right" if end.side == "left" else "left"].get(name)
                    if other is None:
                        continue
                    text = str(other[1])
                fields[name] = self._identity(entry[0], text)
        for name in ("groups", "groups2"):
            entry = fields.pop(f"_{name}", None)
            if entry:
                groups = [self._identity(entry[0], t.strip(" ")) for t in str(entry[1]).split(",") if t.strip(" ")]
                fields[name] = tuple(g for g in groups if g is not None)
        entry = fields.pop("_certpolicy", None)
        if entry:
            fields["cert_policy"] = tuple(t.strip(" ") for t in str(entry[1]).split(",") if t.strip(" "))
        entry = fields.pop("_sigkey", None)
        if entry:
            fields["sigkey"] = str(entry[1])
            out.warning(entry[0], f"{entry[0].key}= (raw public keys) is not supported, ignored")
        return End(**fields)  # type: ignore[arg-type]

    def _pools(self, remote: End) -> tuple[PoolSpec, ...]:
        if not remote.sourceip:
            return ()
        setting = self.ends[remote.side]["sourceip"][0]
        pools = []
        for token in remote.sourceip:
            try:
                pools.append(parse_pool(token, self.name))
            except kw.BadValue as exc:
                self.out.error(setting, f"{setting.key}: {exc}")
        return tuple(pools)


class _PartialEnd:
    """An end whose identity, authentication and certificate are not settled yet."""

    def __init__(self, fields: dict) -> None:
        self.fields = fields

    @property
    def side(self) -> str:
        return self.fields["side"]

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.fields.get("hosts", ("%any",))


# ------------------------------------------------------------------------------------
# value helpers


def _valid_host(token: str) -> bool:
    """An address token of left=/right=: IP address, subnet, range, %any or DNS name."""
    if token in ("%any", "%any4", "%any6"):
        return True
    try:
        ipaddress.ip_address(token)
        return True
    except ValueError:
        pass
    if "/" in token:
        try:
            ipaddress.ip_network(token, strict=False)
            return True
        except ValueError:
            return False
    if "-" in token:
        low, high = token.split("-", 1)
        try:
            if ipaddress.ip_address(low).version == ipaddress.ip_address(high).version:
                return True
        except ValueError:
            pass
    if ":" in token or _NUMERIC_HOST.match(token):
        return False
    return bool(_HOSTNAME.match(token))


def _protocol_number(text: str, key: str) -> int:
    if text == "%any":
        return 0
    try:
        return socket.getprotobyname(text)
    except OSError:
        pass
    number, rest = kw._c_number(text)
    if number is None or rest or number > 0xFF:
        raise kw.BadValue(f"bad protocol: {key}={text}")
    return number


def _port_range(text: str, key: str) -> tuple[int, int]:
    if text == "%any":
        return 0, 0xFFFF
    if text == "%opaque":
        return 0xFFFF, 0
    try:
        port = socket.getservbyname(text)
        return port, port
    except OSError:
        pass
    low, rest = kw._c_number(text)
    if low is None or low > 0xFFFF:
        raise kw.BadValue(f"bad port: {key}={text}")
    high = low
    if rest.startswith("-"):
        high, rest = kw._c_number(rest[1:])
        if high is None or high > 0xFFFF:
            raise kw.BadValue(f"bad port: {key}={text}")
    if rest:
        raise kw.BadValue(f"bad port: {key}={text}")
    return low, high


def _protoport(text: str, key: str) -> tuple[int, int, int]:
    """``proto[/port]`` of leftprotoport= (confread.c kw_end KW_PROTOPORT)."""
    proto, _, port = text.partition("/")
    protocol = _protocol_number(proto, key)
    low, high = (0, 0xFFFF) if not port else _port_range(port, key)
    return protocol, low, high


def _subnet(token: str, protocol: int, low: int, high: int) -> TsSpec:
    """One leftsubnet token: ``net[/len]`` or ``%dynamic``, optionally ``[proto/port]``
    (stroke_config.c add_ts)."""
    if "[" in token:
        token, _, spec = token.partition("[")
        if not spec.endswith("]"):
            raise kw.BadValue(f"invalid proto/port: [{spec}")
        try:
            protocol, low, high = _protoport(spec[:-1], "proto/port")
        except kw.BadValue:
            raise kw.BadValue(f"invalid proto/port: [{spec}") from None
    if token == "%dynamic":
        return TsSpec(None, protocol, low, high)
    try:
        network = ipaddress.ip_network(token, strict=False)
    except ValueError:
        raise kw.BadValue(f"invalid subnet '{token}' (expected address/prefix, e.g. 10.0.0.0/8)") from None
    return TsSpec(network, protocol, low, high)


def parse_pool(token: str, conn_name: str) -> PoolSpec:
    """One rightsourceip token (stroke_config.c build_peer_cfg)."""
    if token in _CONFIG_POOLS:
        family = 4 if token == "%config4" else 6 if token == "%config6" else None
        return PoolSpec(token, "config", conn_name, family=family)
    if token.startswith("%"):
        if len(token) == 1:
            raise kw.BadValue("IP pool '%' invalid (expected %<name>)")
        return PoolSpec(token, "named", token[1:])
    if "-" in token and "/" not in token:
        low_text, high_text = token.split("-", 1)
        try:
            low, high = ipaddress.ip_address(low_text.strip()), ipaddress.ip_address(high_text.strip())
        except ValueError:
            raise kw.BadValue(f"IP pool '{token}' invalid (expected a range first-last)") from None
        if low.version != high.version:
            raise kw.BadValue(f"IP pool '{token}' invalid (mixed address families)")
        if int(high) < int(low):
            raise kw.BadValue(f"IP pool '{token}' invalid (the range is empty)")
        if (int(low) ^ int(high)) >> 32:
            raise kw.BadValue(f"IP pool '{token}' invalid (IP address range too large)")
        return PoolSpec(token, "range", token, first=low, last=high, family=low.version)
    try:
        base_text, _, bits = token.partition("/")
        base = ipaddress.ip_address(base_text)
        network = ipaddress.ip_network(token if bits else f"{base}/{base.max_prefixlen}", strict=False)
    except ValueError:
        raise kw.BadValue(f"IP pool '{token}' invalid (expected net/len, first-last, %config or %name)") from None
    return PoolSpec(token, "cidr", token, network=network, base=base, family=base.version)


def parse_auth(text: str) -> tuple[AuthSpec, list[str]]:
    """A leftauth/rightauth value (stroke_config.c build_auth_cfg) and warnings."""
    warnings: list[str] = []
    if text.startswith(("ike:", "pubkey", "rsa", "ecdsa", "bliss")):
        key_type, strength, constraints = _pubkey_constraints(text, ike=True, warnings=warnings)
        return AuthSpec("pubkey", text, key_type=key_type, key_strength=strength,
                        signature_constraints=constraints), warnings
    if text in ("psk", "secret"):
        return AuthSpec("psk", text), warnings
    if text.startswith("xauth"):
        backend = text.split("-", 1)[1] if "-" in text else None
        return AuthSpec("xauth", text, xauth_backend=backend), warnings
    if text.startswith("eap"):
        method_text, _, constraint_text = text.partition(":")
        constraints: tuple[SignatureConstraint, ...] = ()
        key_type = strength = None
        if constraint_text:
            key_type, strength, constraints = _pubkey_constraints(constraint_text, ike=False, warnings=warnings)
        eap_type, vendor = _eap_type(method_text, warnings)
        radius = eap_type == EAP_RADIUS
        return AuthSpec("eap", text, eap_type=None if radius else eap_type, eap_vendor=vendor, radius=radius,
                        key_type=key_type, key_strength=strength, signature_constraints=constraints), warnings
    if text != "any":
        warnings.append(f"authentication method {text} unknown, fallback to any")
    return AuthSpec("any", text), warnings


def _eap_type(text: str, warnings: list[str]) -> tuple[int | None, int | None]:
    """eap_vendor_type_from_string(): ``[eap-]type[-vendor]``, type by name or number."""
    eap_type = 0
    vendor = None
    for part in (p.strip(" ") for p in text.split("-")):
        if not eap_type:
            if part == "eap":
                continue
            eap_type = EAP_TYPES.get(part.lower(), 0)
            if not eap_type:
                number, rest = kw._c_number(part)
                if number is None or rest:
                    warnings.append(f"unknown or invalid EAP method: {part} (any EAP method is accepted)")
                    return None, None
                eap_type = number
            continue
        number, rest = kw._c_number(part)
        if number is None or rest or number >= PEN_UNASSIGNED:
            warnings.append(f"invalid EAP vendor: {part} (any EAP method is accepted)")
            return None, None
        vendor = number
        break
    return (eap_type or None), vendor


_SCHEME_HASHES = {
    "rsa": ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"),
    "ecdsa": ("sha1", "sha256", "sha384", "sha512"),
    "bliss": ("sha256", "sha384", "sha512"),
    "ed25519": ("identity",),
    "ed448": ("identity",),
}
_KEY_TOKENS = {"rsa": "rsa", "rsa/pss": "rsa/pss", "ecdsa": "ecdsa", "ed25519": "ed25519", "ed448": "ed448",
               "bliss": "bliss", "pubkey": "any"}


def _pubkey_constraints(text: str, ike: bool, warnings: list[str]):
    """auth_cfg.c add_pubkey_constraints(), simplified to (key type, key strength,
    signature constraints)."""
    key_token: str | None = None
    key_type: str | None = None
    strength: int | None = None
    expect_strength = False
    constraints: list[SignatureConstraint] = []
    for token in text.split("-"):
        if expect_strength:
            expect_strength = False
            number, rest = kw._strtoul(token)
            if number:
                strength = number
                continue
        bare = token[4:] if token.startswith("ike:") else token
        if bare in _KEY_TOKENS:
            key_token, key_type = token, _KEY_TOKENS[bare]
            expect_strength = bare in ("rsa", "rsa/pss", "ecdsa", "bliss")
            continue
        ike_only = bool(key_token and key_token.startswith("ike:"))
        if ike_only and not ike:
            continue
        current = key_type or "any"
        if current == "rsa/pss":
            found = token in ("sha256", "sha384", "sha512")
        else:
            found = any(token in hashes and current in ("any", key) for key, hashes in _SCHEME_HASHES.items())
            found = found or any(token in hashes for hashes in _SCHEME_HASHES.values())
        if not found:
            warnings.append(f"ignoring invalid auth token: '{token}'")
            continue
        constraints.append(SignatureConstraint(current, token, ike_only))
    return key_type, strength, tuple(constraints)


def _cert_path(text: str, default_dir: Path) -> Path:
    path = Path(text)
    return path if path.is_absolute() else default_dir / path


def _load_cert(path: Path, setting: Setting | None, out: _Collector, load_certificate=None):
    if load_certificate is None:
        from ikegate.pki.keys import load_certificate
    try:
        return load_certificate(path)
    except Exception as exc:  # PkiError and anything an unreadable file raises
        key = setting.key if setting is not None else "cert"
        out.error(setting, f"{key}: {exc}")
        return None


def _cert_contains(cert, identity: Identity) -> bool:
    """Does the certificate contain ``identity`` (x509 has_subject())?  Uses the PKI
    layer's exact comparison when available, plus strongSwan's wildcard matching."""
    try:
        from ikegate.pki.store import cert_matches_identity
    except ImportError:  # pragma: no cover - the PKI layer is part of the project
        cert_matches_identity = None
    if cert_matches_identity is not None:
        try:
            if cert_matches_identity(cert, identity.id_type, identity.data):
                return True
        except Exception:
            pass
    return cert_has_identity(cert, identity) > 0
