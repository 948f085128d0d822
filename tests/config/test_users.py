"""``ikegate user add|passwd|del``: editing ipsec.secrets and its includes safely.

Every test starts from the seed setup ``ikegate.pki.example.write_example`` writes
(ipsec.secrets with user1/user2 and ``include ipsec.d/secrets/myvpn``; alice and bob
in plaintext and carol as an NT hash in myvpn) and checks the result by reading the
files back with the project's secrets reader.  NT hashes are cross-checked against
pycryptodome's independent MD4 (``Crypto.Hash.MD4``) of the UTF-16LE password.

The gateway's side (reload-secrets after an edit, a real client connecting with the new
password, a refused reload as exit 4) is tested end to end in
tests/interop/test_control.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from Crypto.Hash import MD4

from ikegate.config import commands_user
from ikegate.config.errors import Diagnostics
from ikegate.config.secrets import load_secrets
from ikegate.config.users import (
    DEFAULT_USERS_FILE,
    UserError,
    UserExists,
    UserNotFound,
    add_user,
    delete_user,
    format_name,
    set_password,
)
from ikegate.pki.example import write_example


def md4_nt_hash(password: str) -> bytes:
    """The NT hash per pycryptodome (independent of ikegate.crypto.md4)."""
    return MD4.new(password.encode("utf-16-le")).digest()


@pytest.fixture(scope="module")
def seed_template(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("users-template") / "etc")


@pytest.fixture
def seed(tmp_path, seed_template):
    """A fresh copy of the seed setup (written once per module: the demo PKI takes time),
    with the server key line pointing into the copy."""
    confdir = tmp_path / "etc"
    shutil.copytree(seed_template.directory, confdir, symlinks=True)
    secrets_file = confdir / "ipsec.secrets"
    secrets_file.write_bytes(secrets_file.read_bytes().replace(
        str(seed_template.directory).encode(), str(confdir).encode()))
    return dataclasses.replace(
        seed_template, directory=confdir,
        user_secrets=confdir / seed_template.user_secrets.relative_to(seed_template.directory))


def load(confdir: Path):
    diagnostics = Diagnostics()
    secrets = load_secrets(confdir / "ipsec.secrets", confdir / "ipsec.d" / "private", diagnostics)
    return secrets, diagnostics


def snapshot(confdir: Path) -> dict[str, bytes]:
    """Every file below ``confdir`` (bar the lock file), path -> bytes."""
    return {
        str(p.relative_to(confdir)): p.read_bytes()
        for p in sorted(confdir.rglob("*"))
        if p.is_file() and p.name != ".ipsec.secrets.lock"
    }


def all_bytes(confdir: Path) -> bytes:
    return b"".join(snapshot(confdir).values())


def user(confdir: Path, command: str, *argv: str, stdin: bytes | None = None, monkeypatch, capsys,
         run_dir: Path | None = None) -> tuple[int, str, str]:
    """Run ``ikegate user COMMAND`` through commands_user.run as the lead's tests would:
    a Namespace from add_arguments with ``user_command`` set."""
    parser = argparse.ArgumentParser(prog=f"ikegate user {command}")
    commands_user.add_arguments(parser)
    args = parser.parse_args(["--confdir", str(confdir),
                              "--run-dir", str(run_dir or confdir.parent / "no-gateway"), *argv])
    args.user_command = command
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
    capsys.readouterr()
    code = commands_user.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def lines_without(data: bytes, *drop: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line not in drop]


# ------------------------------------------------------------------------------------
# add


def test_add_stores_nt_hash_in_included_users_file(seed, monkeypatch, capsys):
    confdir = seed.directory
    before = snapshot(confdir)
    code, out, err = user(confdir, "add", "--password-stdin", "dave", stdin=b"s3cret dave\n",
                          monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert out == ""  # the password is never printed
    assert "s3cret" not in err
    assert "no gateway is running" in err and "it will read the change when it starts" in err

    users_file = confdir / DEFAULT_USERS_FILE
    secrets, diagnostics = load(confdir)
    assert not diagnostics.errors
    assert secrets.find_eap("dave") == ("NTLM", md4_nt_hash("s3cret dave"))
    entry = [e for e in secrets.entries if str(e.selectors[0]) == "dave"][0]
    assert entry.source == (str(users_file), 1)
    assert users_file.read_bytes() == f"dave : NTLM 0x{md4_nt_hash('s3cret dave').hex()}\n".encode()
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((confdir / "ipsec.secrets").stat().st_mode) == 0o600
    # no plaintext anywhere
    assert b"s3cret" not in all_bytes(confdir)
    assert "s3cret dave".encode("utf-16-le") not in all_bytes(confdir)
    # ipsec.secrets: the old bytes plus one include line; nothing else changed
    after = snapshot(confdir)
    assert after["ipsec.secrets"] == before["ipsec.secrets"] + b"include ipsec.d/secrets/users\n"
    assert {k: v for k, v in after.items() if k not in ("ipsec.secrets", str(DEFAULT_USERS_FILE))} == {
        k: v for k, v in before.items() if k != "ipsec.secrets"}
    # the seed's users are untouched
    for name, password in seed.users.items():
        expected = ("NTLM", md4_nt_hash(password)) if name in seed.ntlm_users else ("EAP", password.encode())
        assert secrets.find_eap(name) == expected


def test_include_line_added_once(seed, monkeypatch, capsys):
    confdir = seed.directory
    for name in ("dave", "erin", "frank"):
        code, _, err = user(confdir, "add", "--password-stdin", name, stdin=f"pw-{name}\n".encode(),
                            monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
    text = (confdir / "ipsec.secrets").read_text()
    assert text.count("include ipsec.d/secrets/users") == 1
    assert (confdir / DEFAULT_USERS_FILE).read_text().splitlines() == [
        f"{n} : NTLM 0x{md4_nt_hash('pw-' + n).hex()}" for n in ("dave", "erin", "frank")]
    secrets, _ = load(confdir)
    assert secrets.find_eap("erin") == ("NTLM", md4_nt_hash("pw-erin"))


def test_no_include_when_a_glob_already_reads_the_file(seed):
    confdir = seed.directory
    secrets_file = confdir / "ipsec.secrets"
    secrets_file.write_bytes(secrets_file.read_bytes().replace(b"include ipsec.d/secrets/myvpn",
                                                               b"include ipsec.d/secrets/*"))
    before = secrets_file.read_bytes()
    change = add_user(confdir, "dave", "pw")
    assert change.include_added is None
    assert secrets_file.read_bytes() == before
    assert load(confdir)[0].find_eap("dave") == ("NTLM", md4_nt_hash("pw"))


def test_add_to_a_file_already_included_keeps_its_lines(seed):
    confdir = seed.directory
    myvpn = seed.user_secrets
    before = myvpn.read_bytes()
    secrets_before = (confdir / "ipsec.secrets").read_bytes()
    change = add_user(confdir, "dave", "pw", file=myvpn)
    assert change.include_added is None and change.location == (str(myvpn), 5)
    assert myvpn.read_bytes() == before + f"dave : NTLM 0x{md4_nt_hash('pw').hex()}\n".encode()
    assert (confdir / "ipsec.secrets").read_bytes() == secrets_before
    assert not (confdir / DEFAULT_USERS_FILE).exists()


def test_add_to_a_file_outside_confdir_includes_it_by_absolute_path(seed, tmp_path):
    target = tmp_path / "elsewhere" / "vpn-users"
    change = add_user(seed.directory, "dave", "pw", file=target)
    assert change.include_added == target
    assert (seed.directory / "ipsec.secrets").read_text().endswith(f"include {target}\n")
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash("pw"))


def test_add_plaintext(seed, monkeypatch, capsys):
    confdir = seed.directory
    code, _, err = user(confdir, "add", "--plaintext", "--password-stdin", "dave", stdin=b'say "hi"\n',
                        monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert (confdir / DEFAULT_USERS_FILE).read_text() == "dave : EAP 'say \"hi\"'\n"
    assert load(confdir)[0].find_eap("dave") == ("EAP", b'say "hi"')


def test_add_refuses_an_existing_user(seed, monkeypatch, capsys):
    confdir = seed.directory
    before = snapshot(confdir)
    for name in ("alice", "carol", "user1", "ALICE"):  # FQDN ids compare case-insensitively
        code, _, err = user(confdir, "add", "--password-stdin", name, stdin=b"pw\n",
                            monkeypatch=monkeypatch, capsys=capsys)
        assert code == 1
        assert "already exists" in err and "ikegate user passwd" in err
    assert snapshot(confdir) == before


def test_add_on_empty_confdir_creates_secrets_and_include(tmp_path):
    confdir = tmp_path / "etc"
    confdir.mkdir()
    add_user(confdir, "dave", "pw")
    assert (confdir / "ipsec.secrets").read_text() == "include ipsec.d/secrets/users\n"
    assert stat.S_IMODE((confdir / "ipsec.secrets").stat().st_mode) == 0o600
    assert load(confdir)[0].find_eap("dave") == ("NTLM", md4_nt_hash("pw"))


# ------------------------------------------------------------------------------------
# passwd


def test_passwd_replaces_the_line_in_place(seed, monkeypatch, capsys):
    confdir = seed.directory
    myvpn = seed.user_secrets
    old = myvpn.read_bytes()
    old_password = seed.users["alice"].encode()
    code, out, err = user(confdir, "passwd", "--password-stdin", "alice", stdin=b"new alice pw\n",
                          monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert out == ""
    new = myvpn.read_bytes()
    assert old_password not in new and b"new alice pw" not in new
    old_lines, new_lines = old.split(b"\n"), new.split(b"\n")
    assert len(old_lines) == len(new_lines)
    assert [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b] == [1]  # line 2 only
    assert new_lines[1] == f"alice : NTLM 0x{md4_nt_hash('new alice pw').hex()}".encode()
    assert stat.S_IMODE(myvpn.stat().st_mode) == 0o600
    secrets, diagnostics = load(confdir)
    assert not diagnostics.errors
    assert secrets.find_eap("alice") == ("NTLM", md4_nt_hash("new alice pw"))
    assert secrets.find_eap("bob") == ("EAP", seed.users["bob"].encode())
    assert not (confdir / DEFAULT_USERS_FILE).exists()


def test_passwd_in_ipsec_secrets_itself(seed):
    confdir = seed.directory
    before = (confdir / "ipsec.secrets").read_bytes()
    change = set_password(confdir, "user2", "pw2", plaintext=True)
    assert change.location == (str(confdir / "ipsec.secrets"), 5)
    after = (confdir / "ipsec.secrets").read_bytes()
    assert after == before.replace(b'user2 : EAP "password2"', b'user2 : EAP "pw2"')
    assert load(confdir)[0].find_eap("user2") == ("EAP", b"pw2")


def test_passwd_of_an_ntlm_user(seed):
    set_password(seed.directory, "carol", "carol's new")
    assert load(seed.directory)[0].find_eap("carol") == ("NTLM", md4_nt_hash("carol's new"))


def test_passwd_removes_the_users_other_lines(seed):
    """An old NTLM line would win over a new one elsewhere, and a line identical to a
    later one is hidden by the reader: every one of them goes."""
    confdir = seed.directory
    secrets_file = confdir / "ipsec.secrets"
    old_ntlm = f"bob : NTLM 0x{md4_nt_hash('old').hex()}\n".encode()
    secrets_file.write_bytes(secrets_file.read_bytes() + old_ntlm + b'bob : EAP "dup"\n')
    seed.user_secrets.write_bytes(seed.user_secrets.read_bytes() + b'bob : EAP "dup"\nbob : XAUTH "x"\n')
    set_password(confdir, "bob", "fresh")
    secrets, diagnostics = load(confdir)
    assert not diagnostics.errors
    bobs = [e for e in secrets.entries if str(e.selectors[0]) == "bob"]
    assert len(bobs) == 1 and (bobs[0].kind, bobs[0].value) == ("NTLM", md4_nt_hash("fresh"))
    everything = all_bytes(confdir)
    assert b"dup" not in everything and b'"x"' not in everything and old_ntlm not in everything
    assert secrets.find_eap("bob") == ("NTLM", md4_nt_hash("fresh"))


def test_passwd_of_unknown_user(seed, monkeypatch, capsys):
    before = snapshot(seed.directory)
    code, _, err = user(seed.directory, "passwd", "--password-stdin", "nobody", stdin=b"pw\n",
                        monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and "no user nobody" in err
    assert snapshot(seed.directory) == before


def test_passwd_keeps_owner_and_crlf(seed):
    myvpn = seed.user_secrets
    myvpn.write_bytes(myvpn.read_bytes().replace(b"\n", b"\r\n"))
    os.chown(myvpn, 4321, 4322)
    set_password(seed.directory, "bob", "pw")
    st = myvpn.stat()
    assert (st.st_uid, st.st_gid) == (4321, 4322)
    lines = myvpn.read_bytes().split(b"\r\n")
    assert lines[2] == f"bob : NTLM 0x{md4_nt_hash('pw').hex()}".encode()
    assert b"\n" not in myvpn.read_bytes().replace(b"\r\n", b"")
    assert load(seed.directory)[0].find_eap("bob") == ("NTLM", md4_nt_hash("pw"))


def test_edit_through_a_symlink_keeps_the_link(seed, tmp_path):
    real = tmp_path / "real-myvpn"
    seed.user_secrets.rename(real)
    seed.user_secrets.symlink_to(real)
    set_password(seed.directory, "alice", "pw")
    assert seed.user_secrets.is_symlink()
    assert f"alice : NTLM 0x{md4_nt_hash('pw').hex()}" in real.read_text()


# ------------------------------------------------------------------------------------
# del


def test_del_removes_only_the_users_line(seed, monkeypatch, capsys):
    confdir = seed.directory
    before = snapshot(confdir)
    bob_line = f'bob : EAP "{seed.users["bob"]}"'.encode()
    code, out, err = user(confdir, "del", "bob", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert out == ""
    after = snapshot(confdir)
    myvpn = str(seed.user_secrets.relative_to(confdir))
    assert after[myvpn] == before[myvpn].replace(bob_line + b"\n", b"")
    assert {k: v for k, v in after.items() if k != myvpn} == {k: v for k, v in before.items() if k != myvpn}
    secrets, _ = load(confdir)
    assert secrets.find_eap("bob") is None
    assert secrets.find_eap("alice") == ("EAP", seed.users["alice"].encode())

    code, _, err = user(confdir, "del", "bob", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and "no user bob" in err


def test_del_refuses_a_line_shared_with_other_ids(seed):
    confdir = seed.directory
    secrets_file = confdir / "ipsec.secrets"
    secrets_file.write_bytes(secrets_file.read_bytes() + b'dave erin : EAP "shared"\n')
    before = snapshot(confdir)
    with pytest.raises(UserError, match="shared with other ids"):
        delete_user(confdir, "dave")
    with pytest.raises(UserExists):
        add_user(confdir, "erin", "pw")
    assert snapshot(confdir) == before


def test_del_notes_a_secret_for_several_ids_that_still_matches(seed):
    secrets_file = seed.directory / "ipsec.secrets"
    secrets_file.write_bytes(secrets_file.read_bytes() + b': EAP "for anybody"\n')
    change = delete_user(seed.directory, "bob")
    assert any("still matches" in note for note in change.notes)


# ------------------------------------------------------------------------------------
# names and passwords


@pytest.mark.parametrize("name, written", [
    ("john doe", '"john doe"'),
    ('say "hi"', "'say \"hi\"'"),
    ("o'brien", "\"o'brien\""),
    ("#hash", '"#hash"'),
    ("include", '"include"'),
    (":colon", '":colon"'),
    ("DOMAIN\\user", "DOMAIN\\user"),
    ("dave@example.org", "dave@example.org"),
    ("jürgen", "jürgen"),
])
def test_names_round_trip(seed, name, written):
    confdir = seed.directory
    assert format_name(name) == written
    add_user(confdir, name, "pw1")
    users_file = (confdir / DEFAULT_USERS_FILE).read_text(encoding="utf-8")
    assert users_file == f"{written} : NTLM 0x{md4_nt_hash('pw1').hex()}\n"
    assert load(confdir)[0].find_eap(name) == ("NTLM", md4_nt_hash("pw1"))
    set_password(confdir, name, "pw2")
    secrets, diagnostics = load(confdir)
    assert not diagnostics.errors
    assert secrets.find_eap(name) == ("NTLM", md4_nt_hash("pw2"))
    delete_user(confdir, name)
    assert load(confdir)[0].find_eap(name) is None
    assert (confdir / DEFAULT_USERS_FILE).read_bytes() == b""


@pytest.mark.parametrize("name", [
    "", "a : b", "both \" and '", "line\nbreak", "tab\there", "%any", "*", "*@example.org", "@#zz",
])
def test_unrepresentable_names_are_refused(seed, monkeypatch, capsys, name):
    before = snapshot(seed.directory)
    code, _, err = user(seed.directory, "add", "--password-stdin", name, stdin=b"pw\n",
                        monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and err
    assert snapshot(seed.directory) == before


@pytest.mark.parametrize("stdin, extra, message", [
    (b"\n", (), "empty"),
    (b"", (), "no password"),
    (b"x" * 257 + b"\n", (), "longer than"),
    (b"\xff\xfe\n", (), "not UTF-8"),
    (b"both \" and '\n", ("--plaintext",), "both kinds of quotes"),
])
def test_bad_passwords_are_refused(seed, monkeypatch, capsys, stdin, extra, message):
    before = snapshot(seed.directory)
    code, _, err = user(seed.directory, "add", "--password-stdin", *extra, "dave", stdin=stdin,
                        monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and message in err
    assert snapshot(seed.directory) == before


def test_password_stdin_takes_one_line_without_its_end(seed, monkeypatch, capsys):
    code, _, err = user(seed.directory, "add", "--password-stdin", "dave", stdin=b"p\xc3\xa4ss \r\nsecond line\n",
                        monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash("päss "))


def test_password_of_256_characters_is_fine(seed):
    add_user(seed.directory, "dave", "ä" * 256)
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash("ä" * 256))


def test_no_password_source_is_a_usage_error(seed, monkeypatch, capsys):
    code, _, err = user(seed.directory, "add", "dave", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "--password-stdin" in err


def test_generate_prints_the_password_once(seed, monkeypatch, capsys):
    code, out, err = user(seed.directory, "add", "--generate", "dave", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    password = out.strip()
    assert out == password + "\n" and len(password) == 20 and password.isalnum()
    assert password not in err
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash(password))
    assert password.encode() not in all_bytes(seed.directory)


def test_missing_subcommand_is_a_usage_error(seed, capsys):
    parser = argparse.ArgumentParser()
    commands_user.add_arguments(parser)
    args = parser.parse_args(["--confdir", str(seed.directory), "dave"])
    assert commands_user.run(args) == 2


# ------------------------------------------------------------------------------------
# read-back verification and undo


def test_a_line_the_reader_would_not_reach_is_undone(seed):
    """An appended line after a malformed one is never read: refused, files restored."""
    target = seed.user_secrets
    target.write_bytes(target.read_bytes() + b"broken line without separator\n")
    before = snapshot(seed.directory)
    with pytest.raises(UserError, match="not read back"):
        add_user(seed.directory, "dave", "pw", file=target)
    assert snapshot(seed.directory) == before


def test_a_secret_that_takes_precedence_is_reported_and_undone(seed):
    """An NTLM secret for any id wins over a plaintext EAP one (get_nt_hash() order)."""
    secrets_file = seed.directory / "ipsec.secrets"
    secrets_file.write_bytes(secrets_file.read_bytes() + f": NTLM 0x{'00' * 16}\n".encode())
    before = snapshot(seed.directory)
    with pytest.raises(UserError, match="takes precedence"):
        add_user(seed.directory, "dave", "pw", plaintext=True)
    assert snapshot(seed.directory) == before
    add_user(seed.directory, "dave", "pw")  # as an NT hash it is the user's own that counts
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash("pw"))


def test_unknown_user_errors_are_distinct(seed):
    with pytest.raises(UserNotFound):
        delete_user(seed.directory, "nobody")
    with pytest.raises(UserExists):
        add_user(seed.directory, "bob", "pw")


# ------------------------------------------------------------------------------------
# concurrency


_ADDER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from ikegate.config.users import add_user
    confdir, prefix, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    for i in range(6):
        add_user(confdir, f"{prefix}{i}", f"pw-{prefix}{i}")
""")


def test_concurrent_adds_all_land(seed, tmp_path):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", _ADDER, str(seed.directory), prefix, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for prefix in ("left", "right")
    ]
    time.sleep(0.3)  # let both import and wait
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    secrets, diagnostics = load(seed.directory)
    assert not diagnostics.errors
    for prefix in ("left", "right"):
        for i in range(6):
            assert secrets.find_eap(f"{prefix}{i}") == ("NTLM", md4_nt_hash(f"pw-{prefix}{i}"))
    assert (seed.directory / "ipsec.secrets").read_text().count("include ipsec.d/secrets/users") == 1
    assert len((seed.directory / DEFAULT_USERS_FILE).read_text().splitlines()) == 12
    assert not [p for p in seed.directory.rglob(".*.tmp")]  # no temporary files left


# ------------------------------------------------------------------------------------
# the command line


def test_cli_dispatch(seed, monkeypatch, capsys):
    from ikegate import cli

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"pw\n")))
    code = cli.main(["user", "add", "--confdir", str(seed.directory), "--run-dir", str(seed.directory / "none"),
                     "--password-stdin", "dave"])
    assert code == 0
    assert load(seed.directory)[0].find_eap("dave") == ("NTLM", md4_nt_hash("pw"))


def test_a_killed_edits_temporary_file_is_removed_by_the_next(seed):
    """A temporary file left by an edit killed before its rename (it holds the new line) is
    cleaned up by the next edit of that file."""
    users_file = seed.directory / "ipsec.d" / "secrets" / "myvpn"
    stale = users_file.parent / ".myvpn.k1ll3d.tmp"
    stale.write_bytes(b'bob : EAP "half-written"\n')
    set_password(seed.directory, "bob", "new-password")
    assert not stale.exists()
    assert load(seed.directory)[0].find_eap("bob") == ("NTLM", md4_nt_hash("new-password"))
