"""No secret in the gateway's log, at any level (issue 8 item 5).

A full session against ikegate with every ``charondebug`` subsystem at level 4 (charon's
"private" level, where strongSwan itself dumps keys): a real strongSwan client logs in
with EAP-MSCHAPv2 (a password user and an NT-hash user), sends traffic, rekeys its CHILD
SA and its IKE SA, fails a login with a wrong password, and disconnects; the gateway is
reloaded (SIGHUP) on the way.  Then the gateway's whole output is searched for every
secret it held or derived:

* the users' passwords (the wrong one too) and NT hashes; the PSK of an unused ``: PSK``
  line; the server's private key (PEM body lines, DER, private numbers);
* every IKE and ESP key of every SA, learnt from the *client's* log, which strongSwan
  writes at ``ike 4``/``chd 4`` (the client's log is only used to learn them).

Binary secrets are searched as hex (either case, with or without separators, any 8-byte
stretch), base64 and Python ``repr`` escapes.  Lives at the top of ``tests/`` (it checks
the whole gateway) but uses the end-to-end harness of ``tests/interop``.
"""

from __future__ import annotations

import base64
import re
import signal
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interop.conftest import environment_problem  # noqa: E402
from interop.gateway import IkegateGateway, ikegate_daemon_missing, wait_for  # noqa: E402
from interop.netns import Topology, ping  # noqa: E402
from interop.strongswan import ClientConn, StrongSwanClient  # noqa: E402

from ikegate.crypto.mschap import nt_password_hash  # noqa: E402
from ikegate.pki.example import write_example  # noqa: E402

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(environment_problem() is not None or ikegate_daemon_missing() is not None,
                       reason=str(environment_problem() or ikegate_daemon_missing())),
]

ALL_LEVELS = "dmn 4, mgr 4, ike 4, chd 4, job 4, cfg 4, knl 4, net 4, asn 4, enc 4, lib 4, esp 4, tls 4"
CLIENT_LEVELS = {"default": 1, "ike": 4, "chd": 4, "cfg": 2, "enc": 1, "net": 1}
PSK = "psk-that-must-never-show-9f2c"
WRONG_PASSWORD = "wrong-password-5d1e"
USERS = {"dora": "dora-password-71a3", "erin": "erin-password-c40b"}  # erin: stored as an NT hash


def _hexdumps(log: str) -> dict[str, bytes]:
    """strongSwan's ``%B`` dumps in a charon log: ``<label> => N bytes @ 0x...`` followed by
    lines ``   0: 01 02 ...  ascii``; returns label -> bytes (later dumps get a suffix)."""
    found: dict[str, bytes] = {}
    lines = log.splitlines()
    for index, line in enumerate(lines):
        match = re.search(r"\] (?:<[^>]*> )?(.+?) => (\d+) bytes @ (?:0x)?[0-9a-fA-F]+", line)
        if not match:
            continue
        label, size = match.group(1), int(match.group(2))
        data = bytearray()
        for follow in lines[index + 1:]:
            dump = re.search(r"\]\s+(?:<[^>]*> )?\s*\d+: ((?:[0-9A-F]{2} ){1,16})", follow)
            if not dump or len(data) >= size:
                break
            data += bytes.fromhex(dump.group(1).replace(" ", ""))
        if len(data) == size:
            key = label
            n = 2
            while key in found:
                key = f"{label} #{n}"
                n += 1
            found[key] = bytes(data)
    return found


def _forms(secret: bytes) -> list[str]:
    """How a binary secret could appear in a text log: any 8-byte stretch as hex (the log is
    searched with separators removed and in lower case), base64, and repr escapes."""
    hexed = secret.hex()
    forms = [hexed[i:i + 16] for i in range(0, max(1, len(hexed) - 15), 2)]
    forms.append(base64.b64encode(secret).decode())
    forms += [repr(secret[i:i + 8])[2:-1] for i in range(0, max(1, len(secret) - 7))]
    return forms


class Haystack:
    """The gateway's log, as text and as its hex digits only (lower case, per line)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hex = "\n".join(re.sub(r"[^0-9a-f]", "", line.lower()) for line in text.splitlines())

    def find_text(self, needle: str) -> bool:
        return needle in self.text

    def find_binary(self, secret: bytes) -> str | None:
        """The first form of ``secret`` found, or None."""
        for form in _forms(secret):
            if re.fullmatch(r"[0-9a-f]+", form):
                if form in self.hex:
                    return form
            elif form in self.text:
                return form
        return None


def _private_numbers(key) -> list[bytes]:
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        values = [numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp]
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        values = [key.private_numbers().private_value]
    else:
        return []
    return [v.to_bytes((v.bit_length() + 7) // 8, "big") for v in values]


@pytest.fixture
def session(tmp_path):
    topo = Topology(1, inner=True).build()
    made = []
    try:
        yield topo, made
    finally:
        for daemon in reversed(made):
            daemon.stop()
        topo.destroy()


def test_no_secret_in_gateway_log(tmp_path, session):
    topo, made = session
    layout = write_example(tmp_path / "conf", users=USERS, ntlm_users=("erin",))
    conf = layout.ipsec_conf.read_text()
    conf = re.sub(r'charondebug="[^"]*"', f'charondebug="{ALL_LEVELS}"', conf)
    assert ALL_LEVELS in conf
    layout.ipsec_conf.write_text(conf)
    with open(layout.ipsec_secrets, "a") as secrets:
        secrets.write(f': PSK "{PSK}"\n')

    gateway = IkegateGateway(topo.gateway.ns, layout.directory, tmp_path / "run")
    made.append(gateway)
    gateway.start()

    def client(name: str, user: str, password: str) -> StrongSwanClient:
        conns = [ClientConn(topo.gateway.v4[0], eap_id=user, password=password)]
        c = StrongSwanClient(topo.clients[0].ns, tmp_path / name, conns=conns, ca_certs=[layout.root_cert],
                             log_levels=CLIENT_LEVELS)
        made.append(c)
        return c.start()

    # a password user: connect, traffic, CHILD rekey, IKE rekey, traffic, SIGHUP, disconnect
    dora = client("dora", "dora", USERS["dora"])
    ok, out = dora.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-3000:]
    assert ping(dora.ns, topo.inner.v4[0], count=2, wait=2) == 2
    dora.swanctl("--rekey", "--child", "c")
    assert wait_for(lambda: "outbound CHILD_SA c{2} established" in dora.log_text(), 10), dora.log_text()[-2000:]
    dora.swanctl("--rekey", "--ike", "gw")
    assert wait_for(lambda: "IKE_SA gw[2] rekeyed" in dora.log_text(), 10), dora.log_text()[-3000:]
    assert ping(dora.ns, topo.inner.v4[0], count=2, wait=2) == 2
    gateway.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "secrets reloaded" in gateway.log_text(), 10), gateway.log_text()[-2000:]
    ok, out = dora.terminate()
    assert ok, out
    dora.stop()

    # an NT-hash user, then the same user with a wrong password
    erin = client("erin", "erin", USERS["erin"])
    ok, out = erin.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-3000:]
    assert ping(erin.ns, topo.inner.v4[0], count=1, wait=2) == 1
    ok, out = erin.terminate()
    assert ok, out
    erin.stop()
    wrong = client("wrong", "erin", WRONG_PASSWORD)
    ok, out = wrong.initiate(timeout=30)
    assert not ok
    wrong.stop()
    gateway.stop()

    log = gateway.log_text()
    assert "EAP-MSCHAPv2 verification failed" in log  # the failed login is in the log searched
    haystack = Haystack(log)
    client_logs = "\n".join(c.log_text() for c in made if isinstance(c, StrongSwanClient))
    keys = _hexdumps(client_logs)
    labels = sorted(keys)
    # the client's level-4 log gave us the keys of both IKE SAs and all CHILD SAs
    assert sum(1 for label in labels if label.startswith("Sk_ei secret")) >= 3, labels
    assert sum(1 for label in labels if "encryption initiator key" in label) >= 3, labels

    # the search works: it finds every one of those keys in the client's own log
    interesting = re.compile(r"secret|key|MSK", re.I)
    derived = {f"client's {label}": value for label, value in keys.items()
               if interesting.search(label) and "public" not in label.lower() and len(value) >= 8}
    assert len(derived) >= 40 and all(Haystack(client_logs).find_binary(v) for v in derived.values())

    leaks = []
    for text in [*USERS.values(), WRONG_PASSWORD, PSK]:
        if haystack.find_text(text):
            leaks.append(f"password/PSK {text!r}")
    for password in [*USERS.values(), WRONG_PASSWORD]:
        if haystack.find_binary(nt_password_hash(password)):
            leaks.append(f"NT hash of {password!r}")
    key = serialization.load_pem_private_key(layout.server_key.read_bytes(), None)
    pem_lines = [line for line in layout.server_key.read_text().splitlines() if not line.startswith("-----")]
    leaks += [f"private key PEM line {line[:20]}..." for line in pem_lines if haystack.find_text(line[8:56])]
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    secrets = {"private key DER": der}
    secrets.update({f"private number {i}": v for i, v in enumerate(_private_numbers(key))})
    secrets.update(derived)
    for what, secret in secrets.items():
        form = haystack.find_binary(secret)
        if form is not None:
            leaks.append(f"{what} (as {form!r})")
    assert not leaks, "secrets in the gateway's log:\n" + "\n".join(leaks)
