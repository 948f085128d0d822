"""``ikegate profile KIND``: output files, standard output, passwords, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import plistlib
import stat

from ikegate.profiles import command

def run(kind: str, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.profile_command = kind  # what the ikegate dispatcher sets for "profile KIND"
    return command.run(args)

def test_default_file_then_force(seed, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ("--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(seed.directory))
    assert run("windows", *base, "--user", "user1") == 0
    out = tmp_path / "myvpn-user1.ps1"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"Add-VpnConnection" in out.read_bytes()
    assert "wrote windows profile" in capsys.readouterr().out
    assert run("windows", *base, "--user", "user1") == 1
    assert "exists; use --force" in capsys.readouterr().err
    assert run("windows", *base, "--user", "user1", "--force") == 0
    assert run("android", *base) == 0 and (tmp_path / "myvpn.sswan").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary files left

def test_stdout(seed, capsysbinary):
    assert run("android", "--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(seed.directory),
               "--user", "user1", "-o", "-") == 0
    out = capsysbinary.readouterr().out
    assert json.loads(out)["local"]["eap_id"] == "user1"

def test_password_stdin(seed, tmp_path, monkeypatch, capsys):
    base = ("--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(seed.directory), "--user", "user1")
    monkeypatch.setattr("sys.stdin", io.StringIO("pa ss\n"))
    assert run("apple", *base, "-o", str(tmp_path / "p.mobileconfig"), "--password-stdin") == 0
    profile = plistlib.loads((tmp_path / "p.mobileconfig").read_bytes())
    vpn = [p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.vpn.managed"][0]
    assert vpn["IKEv2"]["AuthPassword"] == "pa ss"
    assert "pa ss" not in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("pass\n"))
    assert run("windows", *base, "-o", "-", "--password-stdin") == 1
    assert "cannot hold a password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("apple", *base, "-o", "-", "--password-stdin") == 1
    assert "no password" in capsys.readouterr().err

def test_networkmanager_writes_the_ca_beside(seed, tmp_path, capsys):
    base = ("--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(seed.directory), "--user", "user1")
    target = tmp_path / "vpn.nmconnection"
    assert run("networkmanager", *base, "-o", str(target)) == 0
    ca = tmp_path / "vpn-ca.pem"
    assert ca.read_bytes() == seed.root_cert.read_bytes()
    assert f"certificate={ca}" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert run("networkmanager", *base, "-o", "-") == 1
    assert "--ca-path" in capsys.readouterr().err
    assert run("networkmanager", *base, "-o", "-", "--ca-path", "/etc/vpn-ca.pem") == 0
    assert "certificate=/etc/vpn-ca.pem" in capsys.readouterr().out

def test_errors(seed, variant, tmp_path, capsys):
    assert run("apple", "--conn", "nope", "--server", "vpn.example.org", "--confdir", str(seed.directory)) == 1
    assert "no usable conn 'nope'" in capsys.readouterr().err
    assert run("apple", "--conn", "myvpn", "--server", "x", "--confdir", str(tmp_path / "missing")) == 1
    assert "ipsec.conf" in capsys.readouterr().err
    confdir = variant({"ike=aes256-aes192-aes128-sha384-sha256-sha1-modp3072-modp2048-modp1536-modp1024!":
                       "ike=aes256-sha512-curve25519!"})
    assert run("windows", "--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(confdir), "-o", "-") == 1
    err = capsys.readouterr().err
    assert "ike= accepts no suite Windows can propose" in err
    assert run("apple", "--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(seed.directory),
               "-o", "-") == 1
    assert "need --user" in capsys.readouterr().err
    # a conn the loader dropped: its error is shown
    confdir = variant({"keyexchange=ikev2": "keyexchange=ikev1"})
    assert run("android", "--conn", "myvpn", "--server", "vpn.example.org", "--confdir", str(confdir), "-o", "-") == 1
    err = capsys.readouterr().err
    assert "no usable conn 'myvpn'" in err and err.count("ikegate profile:") >= 2

def test_warnings_on_stderr(seed, capsys):
    assert run("android", "--conn", "myvpn", "--server", "vpn.wrong.org", "--confdir", str(seed.directory),
               "-o", "-") == 0
    captured = capsys.readouterr()
    assert "warning: vpn.wrong.org is not a subjectAltName" in captured.err
    assert "warning" not in captured.out


def test_through_the_ikegate_dispatcher(seed, monkeypatch, capsysbinary):
    """Registered as the lead will (``profile KIND`` words in ikegate.cli.COMMANDS), the
    dispatcher hands the kind over in ``args.profile_command``."""
    from ikegate import cli

    words = {entry[0] for entry in cli.COMMANDS}
    extra = [(("profile", kind), "ikegate.profiles.command", f"write a {kind} profile")
             for kind in ("windows", "apple", "android", "networkmanager") if ("profile", kind) not in words]
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, *extra])
    assert cli.main(["profile", "android", "--conn", "myvpn", "--server", "vpn.example.org",
                     "--confdir", str(seed.directory), "-o", "-"]) == 0
    assert json.loads(capsysbinary.readouterr().out)["remote"]["addr"] == "vpn.example.org"
