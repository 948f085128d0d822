"""``ikegate config check [--confdir DIR]``: load the configuration and show it.

Prints the effective configuration (config setup; every conn with its ends,
authentication, identities, certificate, traffic selectors, pools, DNS servers, DPD,
rekeying, fragmentation and the expanded proposals in strongSwan's names; the secrets
as user names and types only -- never a secret value; the strongswan.conf settings the
gateway uses), then the warnings and errors as ``path:line:column: severity: message``
(including the eap-radius settings that cannot work, the doctor's RADIUS checks).

Exit status: 0 when there is no error (warnings allowed), 1 when there is any error
(a dropped conn, a malformed secrets line, a key that does not load, a rejected
ipsec.conf), 2 for an unexpected internal failure.  Never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ikegate.config.errors import ConfigLoadError, Diagnostics
from ikegate.config.model import Config, Conn, End
from ikegate.config.proposals import strongswan_text
from ikegate.config.strongswan_conf import DEFAULTS

DEFAULT_CONFDIR = "/etc"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confdir", default=DEFAULT_CONFDIR, metavar="DIR",
                        help="directory with ipsec.conf, ipsec.secrets, ipsec.d/ (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        from ikegate.config.loader import load_config

        try:
            config, diagnostics = load_config(args.confdir)
        except ConfigLoadError as exc:
            print_diagnostics(exc.diagnostics, err)
            print(f"configuration in {args.confdir} rejected", file=err)
            return 1
        add_radius_diagnostics(config, diagnostics)
        print_config(config, out)
        print_diagnostics(diagnostics, err)
        return 1 if diagnostics.has_errors else 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise is: a message, never a traceback
        print(f"ikegate config check: internal error: {type(exc).__name__}: {exc}", file=err)
        return 2


def add_radius_diagnostics(config: Config, diagnostics: Diagnostics) -> None:
    """The doctor's eap-radius checks as errors/warnings (``rightauth=eap-radius`` without
    a server is an error: every login fails), each message ending with its fix."""
    from ikegate.config.doctor import ERROR, NOTE, build_context, check_radius_servers, check_radius_use

    ctx = build_context(config)
    for finding in (*check_radius_servers(ctx), *check_radius_use(ctx)):
        if finding.level == NOTE:  # notes are the doctor's
            continue
        place, _, line = finding.where.rpartition(":")
        if not line.isdigit():
            place, line = finding.where, "0"
        add = diagnostics.error if finding.level == ERROR else diagnostics.warning
        add(str(config.confdir / place), int(line), 0, f"{finding.message} (fix: {finding.fix})", finding.code)


def print_diagnostics(diagnostics: Diagnostics, stream: TextIO) -> None:
    for item in diagnostics:
        print(str(item), file=stream)
    errors, warnings = len(diagnostics.errors), len(diagnostics.warnings)
    print(f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}",
          file=stream)


def print_config(config: Config, stream: TextIO) -> None:
    def p(text: str = "") -> None:
        print(text, file=stream)

    p(f"configuration directory: {config.confdir}")
    setup = config.setup
    p("config setup")
    debug = ", ".join(f"{k} {v}" for k, v in setup.charondebug.items()) or "(default)"
    p(f"  charondebug: {debug}")
    p(f"  uniqueids: {setup.uniqueids}")
    p(f"  cachecrls: {'yes' if setup.cachecrls else 'no'}")
    p(f"  strictcrlpolicy: {setup.strictcrlpolicy}")
    for conn in config.conns:
        p()
        _print_conn(conn, p)
    for ca in config.ca_sections:
        p()
        p(f"ca {ca.name}  (auto={ca.auto})")
        if ca.cacert:
            subject = ca.cacert_object.subject.rfc4514_string() if ca.cacert_object is not None else "?"
            p(f"  cacert: {ca.cacert} ({subject})")
        for name in ("crluri", "crluri2", "ocspuri", "ocspuri2", "certuribase"):
            value = getattr(ca, name)
            if value:
                p(f"  {name}: {value}")
    p()
    p(f"CA certificates in ipsec.d/cacerts: {len(config.cacert_files)}")
    for path in config.cacert_files:
        p(f"  {path}")
    _print_secrets(config, p)
    _print_settings(config, p)


def _print_conn(conn: Conn, p) -> None:
    state = "loaded" if conn.loaded else "not loaded"
    p(f"conn {conn.name}  (auto={conn.auto}, {state}; {conn.source[0]}:{conn.source[1]})")
    p(f"  keyexchange: {conn.keyexchange}")
    _print_end("local", conn.local, p)
    _print_end("remote", conn.remote, p)
    if conn.pools:
        p(f"  pools: {', '.join(f'{pool.token} ({pool.kind})' for pool in conn.pools)}")
    if conn.remote.dns:
        p(f"  dns: {', '.join(str(a) for a in conn.remote.dns)}")
    if conn.eap_identity is not None:
        p(f"  eap_identity: {conn.eap_identity_text} -> {conn.eap_identity}")
    if conn.aaa_identity is not None:
        p(f"  aaa_identity: {conn.aaa_identity}")
    p(f"  mode: {conn.type}")
    p(f"  dpd: action={conn.dpdaction} delay={conn.dpddelay}s timeout={conn.dpdtimeout}s"
      + ("  (disabled: dpdaction=none)" if conn.dpd_interval == 0 and conn.dpdaction == "none" else ""))
    if conn.rekey:
        ike, child = conn.ike_lifetimes, conn.child_lifetimes
        p(f"  rekey: yes  ikelifetime={conn.ikelifetime}s lifetime={conn.lifetime}s "
          f"margintime={conn.margintime}s rekeyfuzz={conn.rekeyfuzz}% reauth={'yes' if conn.reauth else 'no'}")
        p(f"    IKE_SA {'reauth' if conn.reauth else 'rekey'} after "
          f"{ike.reauth_time or ike.rekey_time}s (-0..{ike.jitter_time}s), CHILD_SA rekey after "
          f"{child.rekey_time}s (-0..{child.jitter_time}s), expiry {child.life_time}s")
    else:
        p("  rekey: no  (never initiates rekeying or reauthentication; SAs do not expire)")
    p(f"  fragmentation: {conn.fragmentation}  mobike: {'yes' if conn.mobike else 'no'}  "
      f"forceencaps: {'yes' if conn.forceencaps else 'no'}  keyingtries: {conn.keyingtries or '%forever'}")
    if conn.mark_in or conn.mark_out:
        p(f"  mark: in={_mark(conn.mark_in)} out={_mark(conn.mark_out)}")
    for label, proposals, strict in (("ike", conn.ike, conn.ike_strict), ("esp", conn.esp, conn.esp_strict)):
        p(f"  {label} proposals{' (strict)' if strict else ''}:")
        for proposal in proposals:
            p(f"    {strongswan_text(proposal)}")


def _mark(mark) -> str:
    return "-" if mark is None else f"{mark[0]:#x}/{mark[1]:#x}"


def _print_end(label: str, end: End, p) -> None:
    any_note = " (allowany)" if end.allow_any else ""
    p(f"  {label} ({end.side}): {','.join(end.hosts)}{any_note}  port {end.ikeport}")
    if end.id is None:
        ident = "%any"
    else:
        ident = str(end.id)
        if end.id_from_cert:
            ident += "  (certificate subject)"
    p(f"    id: {ident}{'  (loose)' if end.id_loose else ''}")
    auth = str(end.auth)
    if end.auth.method == "eap" and end.auth.eap_type:
        auth += f" (EAP type {end.auth.eap_type})"
    if end.auth.radius:
        auth += " (via RADIUS)"
    p(f"    auth: {auth}" + (f", then {end.auth2}" if end.auth2 else ""))
    if end.cert is not None:
        subject = end.cert_object.subject.rfc4514_string() if end.cert_object is not None else "?"
        p(f"    cert: {end.cert}  subject: {subject}")
    p(f"    sendcert: {end.sendcert}")
    if end.ca is not None:
        p(f"    ca: {end.ca}")
    p(f"    subnets: {', '.join(str(ts) for ts in end.subnets)}")
    if end.updown:
        p(f"    updown: {end.updown}")


def _print_secrets(config: Config, p) -> None:
    secrets = config.secrets
    p()
    if secrets is None or not secrets.files:
        p("secrets: none")
        return
    p(f"secrets: {len(secrets)} entries from {', '.join(secrets.files)}")
    for entry in secrets.entries:
        where = f"{entry.source[0]}:{entry.source[1]}"
        if entry.key_path is not None:
            key = entry.private_key
            size = getattr(key, "key_size", None) or getattr(getattr(key, "curve", None), "key_size", None)
            kind = type(key).__name__.lstrip("_").replace("PrivateKey", "") if key is not None else "?"
            p(f"  {entry.kind} private key {entry.key_path} ({kind} {size or ''}".rstrip() + f")  [{where}]")
        else:
            who = ", ".join(str(s) for s in entry.selectors)
            p(f"  {entry.kind} {who}  [{where}]")


def _print_settings(config: Config, p) -> None:
    settings = config.settings
    p()
    files = ", ".join(settings.files) if settings is not None and settings.files else "none (defaults)"
    p(f"strongswan.conf: {files}")
    if settings is None:
        return
    getters = {"int": settings.get_int, "float": settings.get_float, "bool": settings.get_bool,
               "time": settings.get_time, "str": settings.get_str}
    for key, (kind, _default) in DEFAULTS.items():
        value = getters[kind](key)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        p(f"  {key} = {value}")
