"""Authenticators are compared in constant time (issue 8 item 5).

A MAC, ICV, AUTH payload, COOKIE or MS-CHAPv2 NT-Response compared with ``==`` returns as
soon as a byte differs, so the time of a rejection tells an attacker how many leading
bytes were right, and a forgery can be found a byte at a time.  Every such comparison in
``src/ikegate`` must go through ``hmac.compare_digest`` (or the AEAD's own tag check).

Three checks pin it:

* a scan of the source (``ast``) for ``==``/``!=`` whose operands are named like secret-
  derived values (icv, mac, digest, auth, cookie, response, expected, hash, tag, key,
  secret, password, ...), leaving out comparisons with a constant (``== 0``, ``==
  NotifyType.COOKIE``, ``len(x) == 16``); each hit must be in :data:`REVIEWED` with the
  reason it is not a secret;
* the functions that check the authenticators still call ``compare_digest``
  (:data:`VERIFIERS`);
* EAP-MSCHAPv2 does the same work for an unknown user as for a known one with a wrong
  answer (the time of a failure does not reveal which user names exist).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ikegate"

SECRET_NAME = re.compile(
    r"icv|mac|digest|cookie|tag|authenticator|response|expected|signature|hash|psk|secret|password|"
    r"msk|key|auth|nonce|sk_|prf|integ|verif|challenge|finalize|compute", re.I)

#: (file relative to src/ikegate, the comparison's source text) -> why it is not a secret.
REVIEWED = {
    ("dataplane/gro.py", "signature == run.signature"): "TCP flow signature (header fields) for segment coalescing",
    ("eap/server.py", "response.type != expected_type"): "EAP method type, sent in the clear",
    ("identity.py", "a_tag == b_tag"): "ASN.1 string tags of a DN attribute",
    ("ike/tasks/ike_auth.py", "c.hash == hash_name"): "hash algorithm name of a signature scheme constraint (config)",
    ("ike/informational.py", "dest.data != natd_hash(sa.spi_i, sa.spi_r, ex.dst)"):
        "NAT-D hash of SPIs and addresses: public values (RFC 7296 2.23)",
    ("ike/tasks/ike_natd.py", "dest.data != local_hash"): "NAT-D hash of SPIs and addresses: public values",
    ("ike/sa.py", "mid != self.expected_mid"): "IKE message ID, in the clear header",
    ("ike/sa.py", "mid == self.last_response_mid"): "IKE message ID, in the clear header",
    ("ike/sa.py", "self.own_signature_exchange == ex.message_id"): "IKE message ID",
    ("pki/store.py", "key_hash(cert) == digest"): "SHA-1 of a certificate's public key (CERTREQ matching)",
    ("pki/store.py", "tag_a == tag_b"): "ASN.1 string tags of a DN attribute",
    ("profiles/common.py", "spki_der(c.public_key()) == key"): "public key DER (client profile generation)",
    ("profiles/suites.py", "tuple(derived) != proposal.prf"): "PRF algorithm identifiers",
    ("wire/codec.py", "length != expected"): "a payload length",
}

#: (file, function) that check an authenticator: each must call hmac.compare_digest.
VERIFIERS = [
    ("crypto/mschap.py", "verify_nt_response"),
    ("crypto/transforms.py", "verify"),  # PreparedInteg.verify: every IKE ICV (SK payload)
    ("eap/mschapv2.py", "_process_response"),  # the peer's NT-Response
    ("esp/sa.py", "decapsulate"),  # ESP ICV of non-AEAD SAs
    ("ike/gateway.py", "_cookie_valid"),  # COOKIE (RFC 7296 2.6)
    ("ike/tasks/ike_auth.py", "_verify_psk_auth"),  # AUTH of PSK peers
    ("ike/tasks/ike_auth.py", "_verify_msk_auth"),  # AUTH from the EAP MSK
]


def _leaf(node: ast.AST) -> str:
    """The last name in an operand: ``a.b.icv`` -> ``icv``, ``f(x)[:4]`` -> ``f``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _leaf(node.value)
    if isinstance(node, ast.Call):
        return _leaf(node.func)
    return ""


def _public(node: ast.AST) -> bool:
    """A constant, an UPPER_CASE name (enum members, module constants), ``len()`` and the
    like: comparing with one of these reveals nothing secret."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Name, ast.Attribute)) and _leaf(node).isupper():
        return True
    if isinstance(node, ast.Call) and _leaf(node.func) in ("len", "type", "id", "isinstance"):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_public(e) for e in node.elts)
    return False


def suspicious_comparisons(root: Path = SRC) -> list[tuple[str, int, str]]:
    """(file, line, source) of every ``==``/``!=`` between non-constant operands one of
    which is named like a secret-derived value."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(_public(o) for o in operands):
                continue
            if any(SECRET_NAME.search(_leaf(o)) for o in operands):
                found.append((str(path.relative_to(root)), node.lineno, ast.get_source_segment(source, node)))
    return found


def test_no_unreviewed_comparison_of_secret_derived_values():
    unreviewed = [f"src/ikegate/{file}:{line}: {text}" for file, line, text in suspicious_comparisons()
                  if (file, text) not in REVIEWED]
    assert not unreviewed, ("compare authenticators with hmac.compare_digest, or add the comparison to REVIEWED "
                            "with the reason it is not secret:\n" + "\n".join(unreviewed))


def test_the_scan_finds_a_timing_leak(tmp_path):
    (tmp_path / "leaky.py").write_text(
        "def check(expected, icv, mac, packet, end):\n"
        "    if mac.finalize()[:12] != packet[end:]:\n"
        "        return False\n"
        "    return expected == icv\n"
        "def fine(auth, n):\n"
        "    return auth.method == AuthMethod.PSK or len(auth.data) == n or auth.kind == 'x'\n")
    assert [(line, text) for _file, line, text in suspicious_comparisons(tmp_path)] == [
        (2, "mac.finalize()[:12] != packet[end:]"), (4, "expected == icv")]


def test_verifiers_use_compare_digest():
    missing = []
    for file, function in VERIFIERS:
        tree = ast.parse((SRC / file).read_text())
        bodies = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function]
        assert bodies, f"{file}: no function {function}"
        calls = {_leaf(n.func) for body in bodies for n in ast.walk(body) if isinstance(n, ast.Call)}
        if "compare_digest" not in calls:
            missing.append(f"{file}:{function}")
    assert not missing, missing


def test_unknown_users_cost_what_known_users_cost(monkeypatch):
    """EAP-MSCHAPv2: an unknown user, a password user and an NT-hash user with a wrong
    answer each cost one password hash, one NT-Response and one constant-time comparison,
    so the time of the Failure-Request does not tell which user names exist."""
    import hmac

    from eap.mschap_client import MschapClient  # tests/eap: an independent EAP-MSCHAPv2 peer

    from ikegate.crypto.mschap import nt_password_hash
    from ikegate.eap import mschapv2
    from ikegate.eap.server import EapServerSession

    calls: list[str] = []

    def spy(name, real):
        def counted(*args):
            calls.append(name)
            return real(*args)
        return counted

    for name in ("nt_password_hash", "generate_nt_response"):
        monkeypatch.setattr(mschapv2, name, spy(name, getattr(mschapv2, name)))
    monkeypatch.setattr(hmac, "compare_digest", spy("compare_digest", hmac.compare_digest))
    secrets = {"pat": ("EAP", b"pat-password"), "nick": ("NTLM", nt_password_hash("nick-password"))}
    work = {}
    for user in ("pat", "nick", "nobody-here"):
        server = EapServerSession(eap_identity_rule="%any", lookup=secrets.get, ike_identity="192.0.2.10")
        client = MschapClient(name=user.encode(), password="a wrong guess")
        challenge = server.process(client.respond(server.start())).send
        calls.clear()
        result = server.process(client.respond(challenge))
        assert result.status == "continue" and result.delay > 0  # a Failure-Request, after the delay
        work[user] = sorted(calls)
    assert work == dict.fromkeys(work, ["compare_digest", "generate_nt_response", "nt_password_hash"])
