"""``ikegate config check`` as a subprocess: the seed, and a corpus of broken configs.

Each directory under ``data/broken/`` is a configuration directory plus an ``expect``
file::

    exit: 1                         # expected exit status (0: only warnings)
    severity: error                 # of the expected diagnostic (default error)
    location: ipsec.conf:7:14       # path relative to the confdir, line, column
    message: bad duration value     # substring(s) of that diagnostic line (repeatable)
    present: text                   # must appear in the output (repeatable)
    absent: text                    # must not appear in the output (repeatable)

Exit status convention: 1 if anything is an error (a rejected ipsec.conf, a dropped
conn, a malformed secrets line, a key that does not load), 0 with warnings only.
Where strongSwan 5.9.8 itself only logs and goes on (missing include, invalid rightdns
token, unknown keyword, include depth), the case expects a warning and exit 0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "broken"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "expect").is_file())
SECRET_VALUES = ("password1", "password2", "password3", "sharedsecret", "alice-password", "SuperSecret")


def run_check(confdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ikegate", "config", "check", "--confdir", str(confdir)],
                          capture_output=True, text=True, timeout=120)


def parse_expect(path: Path) -> dict[str, list[str]]:
    expect: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, _, value = line.partition(": ")
            expect.setdefault(key, []).append(value)
    return expect


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Run every case once (a few at a time: each is a fresh interpreter)."""
    base = tmp_path_factory.mktemp("broken")
    dirs = {}
    for name in CASES:
        dirs[name] = base / name
        shutil.copytree(DATA / name, dirs[name], ignore=shutil.ignore_patterns("expect"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(CASES, pool.map(run_check, (dirs[n] for n in CASES))))
    return {name: (dirs[name], results[name]) for name in CASES}


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert sum(1 for c in CASES if c.startswith("secrets-")) >= 10


@pytest.mark.parametrize("name", CASES)
def test_broken_config(corpus, name):
    confdir, proc = corpus[name]
    expect = parse_expect(DATA / name / "expect")
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == int(expect["exit"][0]), output
    severity = expect.get("severity", ["error"])[0]
    prefix = f"{confdir}/{expect['location'][0]}: {severity}: "
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert lines, f"no line starting with {prefix!r} in:\n{output}"
    assert any(all(m in line for m in expect["message"]) for line in lines), output
    for text in expect.get("present", []):
        assert text in output, output
    for text in expect.get("absent", []):
        assert text not in output, output
    for secret in SECRET_VALUES:
        assert secret not in output


def test_seed_check_output(seed_dir):
    proc = run_check(seed_dir.confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    assert "conn myvpn  (auto=add, loaded" in out
    assert "    id: C=CH, O=ikegate test, CN=vpn.example.org  (certificate subject)" in out
    assert "    auth: eap-mschapv2 (EAP type 26)" in out
    assert "  pools: 192.0.2.0/24 (cidr), 2001:db8::/96 (cidr)" in out
    assert "  dns: 198.51.100.53, 198.51.100.54, 2001:db8:8000::53:1, 2001:db8:8000::53:2" in out
    assert "  dpd: action=clear delay=2400s timeout=150s" in out
    assert "  rekey: no" in out
    assert "  fragmentation: yes" in out
    assert "    subnets: 0.0.0.0/0, ::/0" in out
    assert "  charondebug: cfg 2" in out and "  uniqueids: no" in out
    # the expanded proposals, one per line, in strongSwan's names
    proposals = re.findall(r"^    ((?:IKE|ESP):\S+)$", out, re.M)
    assert proposals == [
        "IKE:AES_CBC_256/AES_CBC_192/AES_CBC_128/HMAC_SHA2_384_192/HMAC_SHA2_256_128/HMAC_SHA1_96/"
        "PRF_HMAC_SHA2_384/PRF_HMAC_SHA2_256/PRF_HMAC_SHA1/MODP_3072/MODP_2048/MODP_1536/MODP_1024",
        "ESP:AES_CBC_256/AES_CBC_192/AES_CBC_128/HMAC_SHA2_384_192/HMAC_SHA2_256_128/HMAC_SHA1_96/NO_EXT_SEQ",
    ]
    # secrets: names and types only
    assert "  EAP user1  [" in out and "  NTLM carol  [" in out
    assert f"  RSA private key {seed_dir.key_path} (RSA 2048)" in out
    for secret in SECRET_VALUES + ("000102030405060708090a0b0c0d0e0f",):
        assert secret not in out + proc.stderr
    assert proc.stderr.strip().endswith("0 errors, 0 warnings")


def test_one_bad_conn_does_not_hide_the_others(tmp_path, seed_dir):
    conf = seed_dir.confdir / "ipsec.conf"
    conf.write_text(conf.read_text() + "\nconn broken\n    also=myvpn\n    dpddelay=10x\n    auto=add\n")
    proc = run_check(seed_dir.confdir)
    assert proc.returncode == 1
    assert "conn myvpn  (auto=add, loaded" in proc.stdout
    assert "conn broken" not in proc.stdout
    assert f"{conf}:29:14: error: bad duration value: dpddelay=10x" in proc.stderr
    assert f"{conf}:27:1: error: conn 'broken' ignored due to 1 error" in proc.stderr


def test_missing_confdir(tmp_path):
    proc = run_check(tmp_path / "nothere")
    assert proc.returncode == 1
    assert "ipsec.conf: error: file not found" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
