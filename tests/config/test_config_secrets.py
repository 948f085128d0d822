"""ipsec.secrets reading and lookups (strongswan-semantics.md 2.4).

Syntax per strongSwan 5.9.8 stroke_cred.c/lexparser.c; lookups per
credential_manager.c get_shared() + mem_cred.c shared_filter() (best match of the
user id first, then of the server id; among equals the secret defined last) and
eap_mschapv2.c get_nt_hash() (NTLM secrets before EAP passwords).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ikegate.config.errors import Diagnostics
from ikegate.config.secrets import MAX_SECRETS_RECURSION, SecretEntry, load_secrets
from ikegate.identity import Identity

NT_A = bytes.fromhex("00112233445566778899aabbccddeeff")
NT_B = bytes.fromhex("ffeeddccbbaa99887766554433221100")


def read(tmp_path: Path, text: str, files: dict[str, str | bytes] | None = None):
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path = tmp_path / "ipsec.secrets"
    path.write_bytes(text.encode())
    diagnostics = Diagnostics()
    return load_secrets(path, diagnostics=diagnostics), diagnostics


def test_value_syntax(tmp_path):
    secrets, diagnostics = read(tmp_path, (
        '# comment\n'
        '   \n'
        'a : EAP "with space # and hash"   # trailing comment\n'
        "b : EAP 'single quoted \"x\"'\n"
        'c : EAP unquoted trailing words are ignored\n'
        'd : PSK 0x0102:03\n'
        f'e : EAP 0s{base64.b64encode(b"b64!").decode()}\n'
        'f : EAP "0x41"\n'
        'g : EAP 0x\n'
        'h : EAP\ttabs-after-type\r\n'
        '  "user with space" \'x@y\' plain : XAUTH pw\n'
        ': PSK "no selectors"\n'
    ))
    assert not list(diagnostics)
    values = {str(e.selectors[0]): e.value for e in secrets.entries}
    assert values == {
        "a": b"with space # and hash",
        "b": b'single quoted "x"',
        "c": b"unquoted",
        "d": b"\x01\x02\x03",
        "e": b"b64!",
        "f": b"0x41",  # quoted values are never decoded
        "g": b"0x",  # too short for a prefix
        "h": b"tabs-after-type",
        "user with space": b"pw",
        "%any": b"no selectors",
    }
    xauth = secrets.entries[-2]
    assert xauth.kind == "XAUTH" and xauth.shared_class == "EAP"
    assert [str(s) for s in xauth.selectors] == ["user with space", "x@y", "plain"]
    assert xauth.selectors[1] == Identity.parse("x@y")


def test_include_relative_glob_and_depth(tmp_path):
    files = {"secrets.d/10-a": 'a : EAP "1"\ninclude ../more/*\n', "secrets.d/20-b": 'b : EAP "2"\n',
             "more/c": 'c : EAP "3"\n'}
    secrets, diagnostics = read(tmp_path, 'include secrets.d/*\nz : EAP "4"\n', files)
    assert [str(e.selectors[0]) for e in secrets.entries] == ["a", "c", "b", "z"]
    assert not list(diagnostics)
    assert len(secrets.files) == 4


def test_include_depth_limit(tmp_path):
    depth = MAX_SECRETS_RECURSION + 3
    files = {f"l{i}": f'u{i} : EAP "p"\ninclude l{i + 1}\n' for i in range(1, depth)}
    secrets, diagnostics = read(tmp_path, "include l1\n", files)
    # ipsec.secrets is level 0; files down to level 11 are read, their includes ignored
    assert [str(e.selectors[0]) for e in secrets.entries] == [f"u{i}" for i in range(1, MAX_SECRETS_RECURSION + 2)]
    assert [d.message for d in diagnostics] == ["maximum level of 10 includes reached, ignored"]


def test_include_loop_is_skipped(tmp_path):
    secrets, diagnostics = read(tmp_path, 'a : EAP "1"\ninclude ipsec.secrets\n')
    assert len(secrets) == 1
    assert "include loop" in diagnostics.warnings[0].message


def test_first_malformed_line_stops_that_file_only(tmp_path):
    files = {"inc": 'i1 : EAP "1"\ni2 EAP "2"\ni3 : EAP "3"\n'}
    secrets, diagnostics = read(tmp_path, 'a : EAP "1"\ninclude inc\nb : EAP "2"\nc :EAP "3"\nd : EAP "4"\n', files)
    assert [str(e.selectors[0]) for e in secrets.entries] == ["a", "i1", "b"]
    assert [(d.path.rsplit("/", 1)[1], d.line, d.column) for d in diagnostics.errors] == [("inc", 2, 1),
                                                                                         ("ipsec.secrets", 4, 1)]


@pytest.mark.parametrize("line,column,message", [
    ('user\t:\tEAP "x"', 1, "missing ' : ' separator (the ':' needs a space, not a tab, on both sides)"),
    ('user: EAP "x"', 1, "missing ' : ' separator (the ':' needs a space on both sides)"),
    ('user :EAP "x"', 1, "missing ' : ' separator"),
    ("user : EAP", 11, "missing value after 'EAP'"),
    ("user : EAP   ", 14, "malformed secret: missing secret"),
    ("user : EAP # just a comment", 12, "malformed secret: missing secret"),
    ("user : ", 8, "missing token"),
    ('user : eap "x"', 8, "unknown secret type 'eap'"),
    ('user : EAP "x', 12, 'missing closing " (unterminated quoted value)'),
    ("user : EAP 0xabcg", 12, "malformed secret: 0x value is not hexadecimal"),
    ("user : EAP 0s!!", 12, "malformed secret: 0s value is not base64"),
    ("user : NTLM 0x0011", 13, "an NTLM secret is a 16-byte NT hash"),
    ("user : NTLM 'not-sixteen'", 13, "an NTLM secret is a 16-byte NT hash"),
    ('"user : EAP "x"', 1, "missing closing \" (unterminated quoted selector)"),
    ('@#zz : EAP "x"', 1, "bad selector '@#zz'"),
    (": RSA", 6, "missing value after 'RSA'"),
    (': RSA ""', 7, "empty filename"),
])
def test_malformed_lines(tmp_path, line, column, message):
    secrets, diagnostics = read(tmp_path, line + "\nlater : EAP y\n")
    assert len(secrets) == 0
    (error,) = diagnostics.errors
    assert (error.line, error.column) == (1, column)
    assert message in error.message


def test_private_keys(tmp_path, server_cert, ec_cert):
    key = serialization.load_pem_private_key(ec_cert.key_pem, None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pass phrase"))
    p12 = pkcs12.serialize_key_and_certificates(b"x", key, ec_cert.cert, None,
                                                serialization.BestAvailableEncryption(b"p12pass"))
    files = {"ipsec.d/private/rsa.key": server_cert.key_pem, "ipsec.d/private/enc.key": encrypted,
             "abs.key": ec_cert.key_pem, "ipsec.d/private/x.p12": p12}
    secrets, diagnostics = read(tmp_path, (
        ": RSA rsa.key\n"
        ': ECDSA enc.key "pass phrase"\n'
        f": PKCS8 {tmp_path / 'abs.key'}\n"
        ": P12 x.p12 p12pass\n"
        ": ECDSA rsa.key\n"
        ": RSA enc.key wrong\n"
        ": RSA enc.key %prompt\n"
    ), files)
    assert [e.kind for e in secrets.entries] == ["RSA", "ECDSA", "PKCS8", "P12"]
    assert len(secrets.private_keys) == 4
    assert secrets.entries[0].key_path == tmp_path / "ipsec.d" / "private" / "rsa.key"
    assert [d.line for d in diagnostics.errors] == [5, 6, 7]
    assert "is not an ECDSA key" in diagnostics.errors[0].message
    assert "passphrase is wrong" in diagnostics.errors[1].message
    assert "%prompt" in diagnostics.errors[2].message
    for entry in secrets.entries:
        assert "pass" not in repr(entry)


def test_repr_never_shows_values(tmp_path):
    secrets, _ = read(tmp_path, 'alice : EAP "SuperSecret123"\n')
    (entry,) = secrets.entries
    assert "SuperSecret123" not in repr(entry) and "SuperSecret123" not in str(entry)
    assert "<hidden>" in repr(entry)
    assert "SuperSecret123" not in repr(secrets)


def test_identical_lines_are_merged(tmp_path):
    secrets, _ = read(tmp_path, 'alice : EAP "x"\nbob : EAP "y"\nALICE : EAP "x"\n')
    assert [str(e.selectors[0]) for e in secrets.entries] == ["bob", "ALICE"]


# ------------------------------------------------------------------------------------
# lookups


def eap(secrets, user: str, server: str | None = None):
    return secrets.find_eap(user, Identity.parse(server) if server else None)


def test_best_user_match_wins(tmp_path):
    secrets, _ = read(tmp_path, (
        ': EAP "wildcard"\n'
        'alice : EAP "alice"\n'
        '*@example.org : EAP "domain"\n'
        'bob@example.org : EAP "bob"\n'
    ))
    assert eap(secrets, "alice") == ("EAP", b"alice")
    assert eap(secrets, "ALICE") == ("EAP", b"alice")  # FQDN ids compare case-insensitively
    assert eap(secrets, "carol") == ("EAP", b"wildcard")
    assert eap(secrets, "bob@example.org") == ("EAP", b"bob")
    assert eap(secrets, "Bob@Example.ORG") == ("EAP", b"bob")
    assert eap(secrets, "dave@example.org") == ("EAP", b"domain")
    assert eap(secrets, "dave@example.com") == ("EAP", b"wildcard")


def test_ntlm_before_eap(tmp_path):
    secrets, _ = read(tmp_path, f'alice : EAP "alice"\n: NTLM 0x{NT_A.hex()}\n')
    # a wildcard NTLM entry beats a user's own EAP password (NTLM is looked up first)
    assert eap(secrets, "alice") == ("NTLM", NT_A)
    secrets, _ = read(tmp_path, f'alice : EAP "alice"\nbob : NTLM 0x{NT_B.hex()}\n')
    assert eap(secrets, "alice") == ("EAP", b"alice")
    assert eap(secrets, "bob") == ("NTLM", NT_B)
    assert eap(secrets, "carol") is None


def test_domain_user_needs_the_full_name(tmp_path):
    secrets, _ = read(tmp_path, '"CORP\\alice" : EAP "corp"\nalice : EAP "plain"\n')
    assert eap(secrets, "CORP\\alice") == ("EAP", b"corp")
    assert eap(secrets, "corp\\ALICE") == ("EAP", b"corp")
    assert eap(secrets, "alice") == ("EAP", b"plain")
    assert eap(secrets, "OTHER\\alice") is None


def test_server_id_breaks_ties(tmp_path):
    secrets, _ = read(tmp_path, (
        'vpn.example.org alice : EAP "for-vpn"\n'
        'alice : EAP "generic"\n'
        'vpn.example.org : EAP "any-user-of-vpn"\n'
    ))
    assert eap(secrets, "alice", "@vpn.example.org") == ("EAP", b"for-vpn")
    # at another server both alice entries tie: the one defined last wins
    assert eap(secrets, "alice", "@other.example.org") == ("EAP", b"generic")
    assert eap(secrets, "alice") == ("EAP", b"generic")
    # a server-only selector serves every user of that server
    assert eap(secrets, "bob", "@vpn.example.org") == ("EAP", b"any-user-of-vpn")
    assert eap(secrets, "bob", "@other.example.org") is None


def test_xauth_secrets_are_eap_secrets(tmp_path):
    secrets, _ = read(tmp_path, 'alice : XAUTH "x"\n')
    assert eap(secrets, "alice") == ("EAP", b"x")


def test_psk_lookup(tmp_path):
    secrets, _ = read(tmp_path, (
        ': PSK "default"\n'
        '192.0.2.1 @peer.example.org : PSK "pair"\n'
        '10.0.0.0/8 : PSK "subnet"\n'
    ))
    me = Identity.parse("192.0.2.1")
    assert secrets.find_psk(me, Identity.parse("@peer.example.org")) == b"pair"
    assert secrets.find_psk(Identity.parse("@gw"), Identity.parse("10.1.2.3")) == b"subnet"
    assert secrets.find_psk(Identity.parse("@gw"), Identity.parse("@nobody")) == b"default"
    assert secrets.find_eap("anyone") is None  # PSKs are not EAP secrets


def test_secret_entry_hides_value():
    entry = SecretEntry((Identity.parse("bob"),), "EAP", b"hunter2", source=("f", 3))
    assert "hunter2" not in repr(entry) and "bob" in repr(entry)
