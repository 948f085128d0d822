"""Robustness: arbitrary input never makes the readers fail with anything but their
documented errors (ConfigError for ipsec.conf/strongswan.conf syntax, diagnostics for
ipsec.secrets, ValueError for identities with bad hex), and whole-config loading
never raises anything but ConfigLoadError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.config.errors import ConfigError, ConfigLoadError, Diagnostics
from ikegate.config.ipsecconf import parse_ipsec_conf
from ikegate.config.loader import load_config
from ikegate.config.proposals import ProposalError, proposal_from_string
from ikegate.config.secrets import load_secrets
from ikegate.config.strongswan_conf import load_strongswan_conf
from ikegate.identity import Identity

# characters that matter to the grammars, plus a few words
CONF_TEXT = st.lists(
    st.sampled_from([
        "conn", "ca", "config setup", " ", "\t", "\n", "=", '"', "\\", "#", "a", "b", "%default", "also",
        "include", "x.conf", "left", "right", "auto", "add", "leftsubnet", "10.0.0.0/8", "ike", "aes128",
        "-", "sha1", "!", ",", "{", "}", ":", "@", "rightsourceip", "%config", "dpddelay", "30s", "\r",
    ]),
    max_size=40,
).map("".join)
SECRETS_TEXT = st.lists(
    st.sampled_from([" : ", ":", " ", "\t", "\n", '"', "'", "#", "EAP", "NTLM", "PSK", "RSA", "XAUTH",
                     "user", "0x", "0s", "ab", "zz", "include", "*", "@#", "k.key", "%prompt"]),
    max_size=30,
).map("".join)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=CONF_TEXT)
def test_ipsec_conf_parser_only_raises_config_error(text):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ipsec.conf"
        path.write_text(text)
        try:
            parse_ipsec_conf(path, Diagnostics())
        except ConfigError as exc:
            assert exc.line >= 0 and str(exc).startswith(str(Path(directory)))


@FUZZ
@given(text=CONF_TEXT)
def test_load_config_only_raises_config_load_error(text):
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "ipsec.conf").write_text(text)
        try:
            config, diagnostics = load_config(directory)
        except ConfigLoadError as exc:
            assert exc.diagnostics.has_errors
        else:
            assert all(conn.name for conn in config.conns)


@FUZZ
@given(text=SECRETS_TEXT)
def test_secrets_reader_never_raises(text):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ipsec.secrets"
        path.write_text(text)
        secrets = load_secrets(path, diagnostics=Diagnostics())
        for entry in secrets.entries:
            assert "<hidden>" in repr(entry)


@FUZZ
@given(text=CONF_TEXT)
def test_strongswan_conf_parser_only_raises_config_error(text):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "strongswan.conf"
        path.write_text(text)
        try:
            load_strongswan_conf(path, Diagnostics())
        except ConfigError:
            pass


@FUZZ
@given(text=st.text(alphabet="aeCN=,/ @#*%:.-01fx", max_size=24))
def test_identity_parse_and_print(text):
    try:
        identity = Identity.parse(text)
    except ValueError:
        return
    str(identity)
    identity.key()
    assert identity.matches(Identity.ANY) == 1
    assert identity.matches(identity) in (0, 1, 20) or identity.contains_wildcards


@FUZZ
@given(text=st.lists(st.sampled_from(["aes128", "aes256gcm16", "sha1", "prfsha256", "modp2048", "none",
                                      "esn", "noesn", "x", ""]), max_size=6).map("-".join))
def test_proposal_parser_only_raises_proposal_error(text):
    for protocol in (1, 2, 3):
        try:
            proposal = proposal_from_string(text, protocol)
        except ProposalError:
            continue
        assert proposal.protocol == protocol
