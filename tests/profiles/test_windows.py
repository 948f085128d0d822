"""The Windows PowerShell profile: parsed with a small PowerShell tokenizer, every cmdlet,
parameter and value checked against Microsoft's documentation (tests/profiles/vocab.py),
and the IPsec suite mapped back to IKEv2 and run through the gateway's selection."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization

from ikegate.profiles import windows
from ikegate.profiles.common import ProfileError
from ikegate.proposal import select_proposal

from .conftest import NARROW_AEAD, NARROW_PFS, describe
from .vocab import (
    COMMON_PARAMETERS,
    GENERIC_CMDLETS,
    WINDOWS_CMDLETS,
    WINDOWS_VALUES,
    windows_esp,
    windows_ike,
)

# -- a small PowerShell tokenizer ------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<sq>'(?:[^']|'')*')
  | (?P<dq>"(?:[^"`]|`.)*")
  | (?P<var>\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<param>-[A-Za-z]\w*)
  | (?P<punct>[(){};|=])
  | (?P<word>[^\s(){};|='"]+)
""", re.VERBOSE)
_CMDLET = re.compile(r"^[A-Z][a-z]+-[A-Za-z]+$")


def tokens(line: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    line = line.strip()
    while pos < len(line):
        if line[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(line, pos)
        assert m, f"cannot tokenize {line[pos:]!r}"
        kind = m.lastgroup
        text = m.group()
        if kind == "sq":
            text = text[1:-1].replace("''", "'")
        found.append((kind, text))
        pos = m.end()
    return found


def _skip_group(toks, i) -> int:
    """Index after the balanced parenthesis group starting at ``toks[i]``."""
    depth = 0
    while True:
        depth += {"(": 1, ")": -1}.get(toks[i][1], 0)
        i += 1
        if depth == 0:
            return i


def commands(script: str) -> list[tuple[str, dict[str, object]]]:
    """Every cmdlet invocation: (name, {parameter: value, or True for a switch}).
    A command starts at a Verb-Noun word at the start of a statement (line start, after
    ``( { ; | =``) and runs until ``) } ; |`` or the end of the line; a parenthesised
    value counts as one."""
    found = []
    ends = (")", "}", ";", "|")
    for raw in script.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        toks = tokens(raw)
        i = 0
        while i < len(toks):
            kind, text = toks[i]
            prev = toks[i - 1][1] if i else None
            if not (kind == "word" and _CMDLET.match(text) and (prev is None or prev in "({;|=")):
                i += 1
                continue
            name, params, positional = text, {}, []
            i += 1
            while i < len(toks) and toks[i][1] not in ends:
                kind, text = toks[i]
                if kind == "param":
                    nxt = toks[i + 1] if i + 1 < len(toks) else None
                    if nxt is None or nxt[0] == "param" or nxt[1] in ends:
                        params[text[1:]] = True
                        i += 1
                    elif nxt[1] == "(":
                        params[text[1:]] = "(expr)"
                        i = _skip_group(toks, i + 1)
                    else:
                        params[text[1:]] = nxt[1]
                        i += 2
                elif text == "(":
                    positional.append("(expr)")
                    i = _skip_group(toks, i)
                else:
                    positional.append(text)
                    i += 1
            if positional:
                params["<positional>"] = positional
            found.append((name, params))
    return found


def test_tokenizer_on_a_documented_example():
    # Example 1 of Set-VpnConnectionIPsecConfiguration.md (winserver2025-ps)
    line = ('Set-VpnConnectionIPsecConfiguration -ConnectionName "Contoso" -AuthenticationTransformConstants None '
            '-CipherTransformConstants AES256 -EncryptionMethod AES256 -IntegrityCheckMethod SHA384 -PfsGroup None '
            '-DHGroup ECP384 -PassThru -Force')
    ((name, params),) = commands(line)
    assert name == "Set-VpnConnectionIPsecConfiguration"
    assert params["ConnectionName"] == '"Contoso"' and params["DHGroup"] == "ECP384"
    assert params["PassThru"] is True and params["Force"] is True
    found = commands("if (Get-VpnConnection -Name $N -ErrorAction SilentlyContinue) { Remove-VpnConnection -Name $N -Force }")
    assert [n for n, _ in found] == ["Get-VpnConnection", "Remove-VpnConnection"]
    assert found[0][1] == {"Name": "$N", "ErrorAction": "SilentlyContinue"}


# -- checks ---------------------------------------------------------------------------------


def checked_commands(script: str) -> list[tuple[str, dict[str, object]]]:
    """The script's commands, each checked against the documented parameters and values."""
    found = commands(script)
    for name, params in found:
        assert name in WINDOWS_CMDLETS or name in GENERIC_CMDLETS, name
        if name not in WINDOWS_CMDLETS:
            continue
        for param, value in params.items():
            if param == "<positional>":
                continue
            assert param in WINDOWS_CMDLETS[name] | COMMON_PARAMETERS, (name, param)
            allowed = WINDOWS_VALUES.get((name, param))
            if allowed is not None:
                assert value in allowed, (name, param, value)
    return found


def only(found, name):
    matches = [p for n, p in found if n == name]
    assert len(matches) == 1, (name, matches)
    return matches[0]


def suite_of(found):
    p = only(found, "Set-VpnConnectionIPsecConfiguration")
    for required in ("ConnectionName", "AuthenticationTransformConstants", "CipherTransformConstants",
                     "EncryptionMethod", "IntegrityCheckMethod", "PfsGroup", "DHGroup"):
        assert required in p, required  # all are mandatory in the CustomPolicy parameter set
    ike = windows_ike(p["EncryptionMethod"], p["IntegrityCheckMethod"], p["DHGroup"])
    esp = windows_esp(p["CipherTransformConstants"], p["AuthenticationTransformConstants"], p["PfsGroup"])
    return p, ike, esp


def assert_accepted(profile, ike, esp):
    assert select_proposal(profile.ike, [ike]) is not None
    assert select_proposal(profile.conn.ike, [ike]) is not None
    # the CHILD SA of IKE_AUTH (no KE), and Windows' own rekeys (with KE if PfsGroup is set)
    assert select_proposal(profile.conn.esp, [esp], skip_dh=True) is not None
    assert select_proposal(profile.conn.esp, [esp]) is not None


def script_text(profile) -> str:
    data = windows.build(profile)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    return text.replace("\r\n", "\n")


def test_seed_script(seed, root_cert):
    profile = describe(seed.directory)
    text = script_text(profile)
    found = checked_commands(text)
    names = [n for n, _ in found]
    assert names.index("Import-Certificate") < names.index("Add-VpnConnection") < names.index(
        "Set-VpnConnectionIPsecConfiguration") < names.index("Add-VpnConnectionRoute")

    add = only(found, "Add-VpnConnection")
    assert add["TunnelType"] == "Ikev2" and add["AuthenticationMethod"] == "Eap"
    assert add["Name"] == "$Name" and add["ServerAddress"] == "$Server"
    assert add["EapConfigXmlStream"] == "$Eap.EapConfigXmlStream"
    assert "SplitTunneling" not in add  # leftsubnet=0.0.0.0/0: everything goes through the tunnel
    assert only(found, "New-EapConfiguration") == {}  # the default set: EAP-MSCHAPv2
    assert "$Name = 'vpn.example.org'" in text and "$Server = 'vpn.example.org'" in text

    p, ike, esp = suite_of(found)
    # the strongest suite of the seed's ike=/esp= Windows can send: no modp3072 in
    # Windows' vocabulary, no SHA-384 for ESP
    assert (p["EncryptionMethod"], p["IntegrityCheckMethod"], p["DHGroup"]) == ("AES256", "SHA384", "Group14")
    assert (p["CipherTransformConstants"], p["AuthenticationTransformConstants"], p["PfsGroup"]) == (
        "AES256", "SHA256128", "None")
    assert_accepted(profile, ike, esp)

    routes = [r["DestinationPrefix"] for n, r in found if n == "Add-VpnConnectionRoute"]
    assert routes == ["::/1", "8000::/1"]

    # the private root, embedded and checked
    imp = only(found, "Import-Certificate")
    assert imp["CertStoreLocation"] == "Cert:\\LocalMachine\\Root" and imp["FilePath"] == "$CaFile"
    der = root_cert.public_bytes(serialization.Encoding.DER)
    (b64,) = re.findall(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", text)
    assert base64.b64decode(b64) == der
    assert f"$CaThumbprint = '{hashlib.sha1(der).hexdigest().upper()}'" in text
    assert "#Requires -RunAsAdministrator" in text
    for name, params in found:
        if name in WINDOWS_CMDLETS and name not in ("New-EapConfiguration", "Import-Certificate"):
            assert params.get("AllUserConnection") is True, name


def test_public_ca_no_import_no_admin(seed, root_cert):
    profile = describe(seed.directory, trusted=[root_cert])
    assert not profile.ca_private
    text = script_text(profile)
    found = checked_commands(text)
    assert "Import-Certificate" not in [n for n, _ in found]
    assert "#Requires" not in text and "AllUserConnection" not in text


def test_narrow_aead_conn(variant):
    profile = describe(variant(NARROW_AEAD))
    found = checked_commands(script_text(profile))
    p, ike, esp = suite_of(found)
    assert (p["EncryptionMethod"], p["IntegrityCheckMethod"], p["DHGroup"]) == ("GCMAES128", "SHA256", "ECP256")
    assert (p["CipherTransformConstants"], p["AuthenticationTransformConstants"], p["PfsGroup"]) == (
        "GCMAES128", "GCMAES128", "None")
    assert_accepted(profile, ike, esp)


def test_conn_wanting_pfs(variant):
    profile = describe(variant(NARROW_PFS))
    p, ike, esp = suite_of(checked_commands(script_text(profile)))
    assert (p["EncryptionMethod"], p["IntegrityCheckMethod"], p["DHGroup"]) == ("AES128", "SHA256", "Group14")
    assert (p["CipherTransformConstants"], p["AuthenticationTransformConstants"], p["PfsGroup"]) == (
        "AES128", "SHA196", "PFS2048")
    assert_accepted(profile, ike, esp)
    # without the PFS group, Windows' rekey would be refused
    assert select_proposal(profile.conn.esp, [windows_esp("AES128", "SHA196", "None")]) is None


def test_default_proposals_prefer_cbc_for_ike(variant):
    """No ike=/esp= line: strongSwan's defaults (with AEAD) are accepted; Windows gets the
    strongest, CBC rather than GCM for IKE at equal key size, GCM for ESP."""
    profile = describe(variant({
        "ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!": "",
        "esp=aes256-aes192-aes128-sha384-sha256-sha1!": "",
    }))
    p, ike, esp = suite_of(checked_commands(script_text(profile)))
    assert (p["EncryptionMethod"], p["IntegrityCheckMethod"], p["DHGroup"]) == ("AES256", "SHA384", "ECP384")
    assert (p["CipherTransformConstants"], p["AuthenticationTransformConstants"], p["PfsGroup"]) == (
        "GCMAES256", "GCMAES256", "None")
    assert_accepted(profile, ike, esp)


def test_nothing_windows_can_send(variant):
    profile = describe(variant({
        "ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!":
            "ike=aes256-sha512-curve25519!",
    }))
    with pytest.raises(ProfileError, match="ike= accepts no suite Windows can propose"):
        windows.build(profile)
    profile = describe(variant({"esp=aes256-aes192-aes128-sha384-sha256-sha1!": "esp=chacha20poly1305!"}))
    with pytest.raises(ProfileError, match="esp= accepts no suite Windows can propose"):
        windows.build(profile)


def test_ipv4_only_split_tunnel(variant):
    profile = describe(variant({
        "leftsubnet=0.0.0.0/0,::/0": "leftsubnet=10.1.0.0/16,192.168.7.0/24",
        "rightsourceip=192.0.2.0/24,2001:db8::/96": "rightsourceip=192.0.2.0/24",
    }))
    found = checked_commands(script_text(profile))
    assert only(found, "Add-VpnConnection").get("SplitTunneling") is True
    routes = [r["DestinationPrefix"] for n, r in found if n == "Add-VpnConnectionRoute"]
    assert routes == ["10.1.0.0/16", "192.168.7.0/24"]


def test_names_are_quoted(seed):
    profile = describe(seed.directory, name="Bob's VPN; Remove-Item C:\\")
    text = script_text(profile)
    assert "$Name = 'Bob''s VPN; Remove-Item C:\\'" in text
    # the name stays one string: no extra command appears
    assert "Remove-Item" not in [n for n, p in commands(text) if p.get("Path") != "$CaFile"]
