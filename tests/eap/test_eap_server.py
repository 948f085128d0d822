"""EAP server session: EAP-Identity + EAP-MSCHAPv2 driven by an RFC 2759 client."""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikegate.eap.packet import decode
from ikegate.eap.server import EapResult, EapServerSession
from ikegate.wire.constants import EapCode, EapType

from .mschap_client import (
    EAP_REQUEST,
    EAP_RESPONSE,
    OP_FAILURE,
    OP_SUCCESS,
    TYPE_IDENTITY,
    TYPE_MSCHAPV2,
    TYPE_NAK,
    MschapClient,
    eap,
    mschap_response,
)

# RFC 2759 section 9.2 "Example of DES Key Generation" sample values.
RFC2759_USER = b"User"
RFC2759_PASSWORD = "clientPass"
RFC2759_AUTHENTICATOR_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
RFC2759_PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
RFC2759_PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
RFC2759_NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
RFC2759_AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 section 3.5.3 "Sample Key Derivations" (128-bit), same inputs as above.
RFC3079_MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
RFC3079_SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
# RFC 3079 section 3.4 (GetAsymmetricStartKey) constants
RFC3079_MAGIC2 = b"On the client side, this is the send key; on the server side, it is the receive key."
RFC3079_MAGIC3 = b"On the client side, this is the receive key; on the server side, it is the send key."
RFC3079_SHS_PAD1 = bytes(40)
RFC3079_SHS_PAD2 = b"\xf2" * 40

FAILURE_RE = re.compile(r"^E=691 R=1 C=([0-9A-F]{32}) V=3 M=.+$")

USERS = {"alice": "alice-secret", "CORP\\bob": "bob pässwörd", "User": RFC2759_PASSWORD}


def start_key(master: bytes, magic: bytes) -> bytes:
    """RFC 3079 3.4 GetAsymmetricStartKey, 16 bytes, written out independently here."""
    return hashlib.sha1(master + RFC3079_SHS_PAD1 + magic + RFC3079_SHS_PAD2).digest()[:16]


def expected_rfc_msk() -> bytes:
    """MSK = MasterReceiveKey | MasterSendKey | 32 zero octets ([MS-CHAP] 3.1.5.1,
    strongSwan GenerateMSK), keys as seen by the server, from RFC 3079's MasterKey."""
    send = start_key(RFC3079_MASTER_KEY, RFC3079_MAGIC3)
    # cross-check of this construction against the RFC's printed send key
    assert send == RFC3079_SEND_START_KEY_128
    receive = start_key(RFC3079_MASTER_KEY, RFC3079_MAGIC2)
    return receive + send + bytes(32)


def password_lookup(users: dict[str, str]) -> Callable[[str], tuple[str, bytes] | None]:
    def lookup(name: str) -> tuple[str, bytes] | None:
        password = users.get(name)
        return None if password is None else ("EAP", password.encode())

    return lookup


class Recorder:
    """A lookup that remembers which names it was asked for."""

    def __init__(self, users: dict[str, str]) -> None:
        self.names: list[str] = []
        self._lookup = password_lookup(users)

    def __call__(self, name: str) -> tuple[str, bytes] | None:
        self.names.append(name)
        return self._lookup(name)


def fixed_random(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)

    def random(n: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == n
        return value

    return random


def session(rule: object = "%any", users: dict | None = None, lookup=None, ike_identity="192.0.2.10", **kw):
    return EapServerSession(
        eap_identity_rule=rule,
        lookup=lookup if lookup is not None else password_lookup(USERS if users is None else users),
        ike_identity=ike_identity,
        **kw,
    )


def run(server: EapServerSession, client: MschapClient, limit: int = 10) -> list[EapResult]:
    results = []
    packet = server.start()
    for _ in range(limit):
        result = server.process(client.respond(packet))
        results.append(result)
        if result.status != "continue":
            return results
        packet = result.send
    raise AssertionError("EAP exchange did not finish")


def mschap_fields(packet: bytes) -> tuple[int, int, int, int, bytes]:
    """(eap identifier, opcode, ms-chapv2-id, ms-length, rest) of an EAP-MSCHAPv2 request."""
    code, identifier, length = struct.unpack_from("!BBH", packet)
    assert code == EAP_REQUEST and packet[4] == TYPE_MSCHAPV2 and length == len(packet)
    opcode, ms_id, ms_length = struct.unpack_from("!BBH", packet, 5)
    return identifier, opcode, ms_id, ms_length, packet[9:]


# --------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    "secret",
    [("EAP", RFC2759_PASSWORD.encode()), ("NTLM", RFC2759_PASSWORD_HASH)],
    ids=["plaintext", "ntlm"],
)
def test_rfc2759_vector(secret: tuple[str, bytes]) -> None:
    server = session(
        lookup=lambda name: secret if name == "User" else None,
        random=fixed_random(b"\x10", RFC2759_AUTHENTICATOR_CHALLENGE),
    )
    client = MschapClient(name=RFC2759_USER, password=RFC2759_PASSWORD, peer_challenges=[RFC2759_PEER_CHALLENGE])

    identity_request = server.start()
    assert identity_request == bytes.fromhex("0110000501")
    challenge = server.process(client.respond(identity_request))
    assert challenge.status == "continue" and challenge.delay == 0
    identifier, opcode, ms_id, ms_length, rest = mschap_fields(challenge.send)
    assert (identifier, opcode, ms_id, ms_length) == (0x11, 1, 0x11, len(challenge.send) - 5)
    assert rest[0] == 16 and rest[1:17] == RFC2759_AUTHENTICATOR_CHALLENGE

    response = client.respond(challenge.send)
    assert client.nt_response == RFC2759_NT_RESPONSE  # the test client agrees with the RFC
    success_request = server.process(response)
    identifier, opcode, ms_id, ms_length, rest = mschap_fields(success_request.send)
    assert (identifier, opcode, ms_id, ms_length) == (0x12, OP_SUCCESS, 0x11, len(success_request.send) - 5)
    message = rest.decode("ascii")
    assert message.startswith(RFC2759_AUTHENTICATOR_RESPONSE + " M=")
    assert server.msk is None  # not before the peer acknowledged

    done = server.process(client.respond(success_request.send))
    assert done == EapResult("success", bytes.fromhex("03120004"), 0.0, done.reason)
    assert client.server_verified
    assert server.msk == expected_rfc_msk() == client.msk()
    assert len(server.msk) == 64
    assert server.identity == "User"
    assert server.status == "success"
    assert server.method == "EAP_MSCHAPV2"


# ---------------------------------------------------------------------- happy paths


def test_plaintext_secret_and_identity_round() -> None:
    server = session("%any")
    client = MschapClient(name=b"alice", password="alice-secret")
    results = run(server, client)
    assert [r.status for r in results] == ["continue", "continue", "success"]
    assert all(r.delay == 0 for r in results)
    assert server.msk == client.msk()
    assert server.identity == "alice"


def test_domain_user_lookup_uses_full_name_hash_uses_user_part() -> None:
    lookup = Recorder(USERS)
    server = session("%any", lookup=lookup)
    client = MschapClient(name=b"CORP\\bob", password="bob pässwörd")
    results = run(server, client)
    assert results[-1].status == "success"
    assert lookup.names == ["CORP\\bob"]
    assert server.identity == "CORP\\bob"


def test_domain_user_hashing_the_full_name_fails() -> None:
    class FullNameClient(MschapClient):
        @property
        def username(self) -> bytes:
            return self.name

    results = run(session("%any"), FullNameClient(name=b"CORP\\bob", password="bob pässwörd"))
    assert [r.status for r in results] == ["continue", "continue", "continue", "failure"]


def test_no_identity_round_when_eap_identity_unset() -> None:
    server = session(None, ike_identity="alice@example.org")
    first = server.start()
    identifier, opcode, ms_id, _len, _rest = mschap_fields(first)
    assert opcode == 1 and ms_id == identifier
    assert server.identity == "alice@example.org"
    client = MschapClient(name=b"alice", password="alice-secret")
    result = server.process(client.respond(first))
    result = server.process(client.respond(result.send))
    assert result.status == "success"
    assert server.identity == "alice"  # the MS-CHAPv2 Name wins


def test_final_identity_is_the_mschapv2_name() -> None:
    server = session("%any")
    client = MschapClient(name=b"alice", password="alice-secret", identity=b"anonymous")
    results = run(server, client)
    assert results[0].status == "continue" and "anonymous" in results[0].reason
    assert results[-1].status == "success"
    assert server.identity == "alice"


def test_concrete_eap_identity_matches_case_insensitively() -> None:
    server = session("alice")
    results = run(server, MschapClient(name=b"alice", password="alice-secret", identity=b"ALICE"))
    assert results[-1].status == "success"


def test_concrete_eap_identity_mismatch_fails_at_once() -> None:
    server = session("alice")
    first = server.start()
    result = server.process(eap(EAP_RESPONSE, first[1], TYPE_IDENTITY, b"bob"))
    assert result.status == "failure" and result.delay == 0
    assert result.send == bytes((4, first[1], 0, 4))
    assert "does not match" in result.reason
    assert server.msk is None


def test_concrete_eap_identity_also_constrains_the_name() -> None:
    lookup = Recorder({"alice": "alice-secret", "bob": "bob-secret"})
    server = session("alice", lookup=lookup)
    client = MschapClient(name=b"bob", password="bob-secret", identity=b"alice")
    results = run(server, client)
    assert [r.status for r in results] == ["continue", "continue", "continue", "failure"]
    assert lookup.names == []
    assert server.identity == "alice"


@pytest.mark.parametrize(("ike_identity", "status"), [("alice", "continue"), ("192.0.2.10", "failure")])
def test_empty_identity_response_assumes_ike_identity(ike_identity: str, status: str) -> None:
    server = session("alice", ike_identity=ike_identity)
    first = server.start()
    result = server.process(eap(EAP_RESPONSE, first[1], TYPE_IDENTITY))
    assert result.status == status
    assert "did not send an EAP identity" in result.reason


def test_identifiers_increment_and_wrap() -> None:
    server = session("%any", random=fixed_random(b"\xfe", bytes(16)))
    client = MschapClient(name=b"alice", password="alice-secret")
    first = server.start()
    assert first[1] == 0xFE
    challenge = server.process(client.respond(first)).send
    assert challenge[1] == 0xFF
    success_request = server.process(client.respond(challenge)).send
    assert success_request[1] == 0x00
    done = server.process(client.respond(success_request))
    assert done.status == "success" and done.send == bytes.fromhex("03000004")


# ---------------------------------------------------------------- failures and retries


def test_wrong_password_two_retries_then_failure() -> None:
    server = session("%any")
    client = MschapClient(name=b"alice", password="wrong")
    results = run(server, client)
    assert [r.status for r in results] == ["continue", "continue", "continue", "failure"]
    assert [r.delay for r in results] == [0.0, 2.0, 2.0, 2.0]
    challenges = []
    ms_ids = []
    identifiers = []
    for result in results[1:3]:
        identifier, opcode, ms_id, ms_length, rest = mschap_fields(result.send)
        assert opcode == OP_FAILURE and ms_length == len(result.send) - 5
        match = FAILURE_RE.match(rest.decode("ascii"))
        assert match, rest
        challenges.append(match.group(1))
        ms_ids.append(ms_id)
        identifiers.append(identifier)
    assert challenges[0] != challenges[1]
    assert ms_ids[1] == (ms_ids[0] + 1) & 0xFF
    assert identifiers[1] == (identifiers[0] + 1) & 0xFF
    final = decode(results[-1].send)
    assert final.code == EapCode.FAILURE and final.identifier == identifiers[1]
    assert "maximum number of retries" in results[-1].reason
    assert server.msk is None and server.status == "failure"
    assert all("wrong" not in r.reason for r in results)


def test_correct_password_on_retry_succeeds() -> None:
    server = session("%any")
    client = MschapClient(name=b"alice", password="typo")
    challenge = server.process(client.respond(server.start())).send
    failure = server.process(client.respond(challenge))
    assert failure.status == "continue" and failure.delay == 2.0
    client.password = "alice-secret"
    success_request = server.process(client.respond(failure.send))
    assert success_request.status == "continue" and success_request.delay == 0
    _id, opcode, _ms_id, _len, _rest = mschap_fields(success_request.send)
    assert opcode == OP_SUCCESS
    done = server.process(client.respond(success_request.send))
    assert done.status == "success"
    assert client.server_verified and server.msk == client.msk()


def test_unknown_user_looks_like_wrong_password() -> None:
    results = run(session("%any"), MschapClient(name=b"mallory", password="x"))
    assert [r.status for r in results] == ["continue", "continue", "continue", "failure"]
    assert [r.delay for r in results] == [0.0, 2.0, 2.0, 2.0]
    assert "no usable EAP/NTLM secret for 'mallory'" in results[1].reason


@pytest.mark.parametrize(
    "secret",
    [("NTLM", bytes(15)), ("EAP", b"\xff\xfe"), ("XAUTH", b"secret")],
    ids=["short-ntlm", "non-utf8-password", "unknown-kind"],
)
def test_unusable_secret_counts_as_failed_attempt(secret: tuple[str, bytes]) -> None:
    server = session(lookup=lambda name: secret)
    client = MschapClient(name=b"alice", password="whatever")
    challenge = server.process(client.respond(server.start())).send
    result = server.process(client.respond(challenge))
    assert result.status == "continue" and result.delay == 2.0


def test_name_is_read_up_to_255_bytes() -> None:
    lookup = Recorder({})
    server = session(None, lookup=lookup)
    client = MschapClient(name=b"a" * 300, password="x")
    server.process(client.respond(server.start()))
    assert lookup.names == ["a" * 255]


def test_empty_name_is_a_failed_attempt() -> None:
    lookup = Recorder({"": "x"})
    server = session(None, lookup=lookup)
    first = server.start()
    result = server.process(mschap_response(first[1], first[1], bytes(16), bytes(24), b""))
    assert result.status == "continue" and result.delay == 2.0
    assert lookup.names == []


# ------------------------------------------------------------------ protocol errors


def _at_challenge(rule: object = "%any") -> tuple[EapServerSession, bytes]:
    server = session(rule)
    client = MschapClient(name=b"alice", password="alice-secret")
    return server, server.process(client.respond(server.start())).send


def test_nak_to_mschapv2_is_failure() -> None:
    server, challenge = _at_challenge()
    result = server.process(eap(EAP_RESPONSE, challenge[1], TYPE_NAK, bytes((EapType.MD5,))))
    assert result.status == "failure"
    assert result.send == bytes((4, challenge[1], 0, 4))
    assert "EAP_NAK" in result.reason


def test_nak_to_identity_is_failure() -> None:
    server = session("%any")
    first = server.start()
    result = server.process(eap(EAP_RESPONSE, first[1], TYPE_NAK, b"\x00"))
    assert result.status == "failure"


@pytest.mark.parametrize("stage", ["identity", "challenge"])
def test_wrong_identifier_is_failure(stage: str) -> None:
    if stage == "identity":
        server = session("%any")
        request = server.start()
        response = eap(EAP_RESPONSE, (request[1] + 5) & 0xFF, TYPE_IDENTITY, b"alice")
    else:
        server, request = _at_challenge()
        response = MschapClient(name=b"alice", password="alice-secret").respond(request)
        response = response[:1] + bytes(((request[1] - 1) & 0xFF,)) + response[2:]
    result = server.process(response)
    assert result.status == "failure"
    assert decode(result.send).code == EapCode.FAILURE
    assert decode(result.send).identifier == response[1]
    assert "identifier" in result.reason


def test_wrong_type_is_failure() -> None:
    server, challenge = _at_challenge()
    result = server.process(eap(EAP_RESPONSE, challenge[1], EapType.MD5, bytes(17)))
    assert result.status == "failure" and "MD5" in result.reason


@pytest.mark.parametrize("code", [EapCode.REQUEST, EapCode.SUCCESS, EapCode.FAILURE])
def test_non_response_code_is_failure(code: EapCode) -> None:
    server, challenge = _at_challenge()
    if code == EapCode.REQUEST:
        packet = eap(code, challenge[1], TYPE_MSCHAPV2, b"\x02")
    else:
        packet = eap(code, challenge[1])
    result = server.process(packet)
    assert result.status == "failure" and result.send is not None


def test_success_response_before_success_request_is_failure() -> None:
    server, challenge = _at_challenge()
    result = server.process(eap(EAP_RESPONSE, challenge[1], TYPE_MSCHAPV2, bytes((OP_SUCCESS,))))
    assert result.status == "failure" and server.msk is None


def test_failure_response_aborts() -> None:
    server, challenge = _at_challenge()
    result = server.process(eap(EAP_RESPONSE, challenge[1], TYPE_MSCHAPV2, bytes((OP_FAILURE,))))
    assert result.status == "failure" and result.delay == 0
    assert "aborted" in result.reason


@pytest.mark.parametrize("cut", [5, 6, 9, 20, 58])
def test_truncated_response_is_failure(cut: int) -> None:
    server, challenge = _at_challenge()
    full = MschapClient(name=b"alice", password="alice-secret").respond(challenge)
    truncated = full[:cut]
    truncated = truncated[:2] + struct.pack("!H", len(truncated)) + truncated[4:]
    result = server.process(truncated)
    assert result.status == "failure"


def test_garbage_is_failure_with_current_identifier() -> None:
    server, challenge = _at_challenge()
    result = server.process(b"\x02")
    assert result.status == "failure"
    assert result.send == bytes((4, challenge[1], 0, 4))
    assert "invalid EAP packet" in result.reason


def test_process_after_finish_sends_nothing() -> None:
    server = session("%any")
    run(server, MschapClient(name=b"alice", password="alice-secret"))
    late = server.process(eap(EAP_RESPONSE, 0, TYPE_MSCHAPV2, bytes((OP_SUCCESS,))))
    assert late.status == "failure" and late.send is None
    assert server.status == "success" and server.msk is not None


def test_api_misuse() -> None:
    server = session("%any")
    with pytest.raises(RuntimeError):
        server.process(b"")
    server.start()
    with pytest.raises(RuntimeError):
        server.start()
    with pytest.raises(ValueError):
        session("%any", method_type=EapType.MD5)


# ------------------------------------------------------------------------ robustness


def _check_result(result: EapResult) -> None:
    assert result.status in ("continue", "success", "failure")
    assert isinstance(result.reason, str)
    if result.send is not None:
        packet = decode(result.send)
        assert packet.code in (EapCode.REQUEST, EapCode.SUCCESS, EapCode.FAILURE)


def _session_at(stage: int) -> tuple[EapServerSession, bytes]:
    """A session waiting for: 0 the Identity response, 1 the MS-CHAPv2 Response,
    2 the Success-Response; plus the valid answer to mutate."""
    server = session("%any")
    client = MschapClient(name=b"alice", password="alice-secret")
    request = server.start()
    for _ in range(stage):
        request = server.process(client.respond(request)).send
    return server, client.respond(request)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stage=st.integers(0, 2), data=st.binary(max_size=120))
def test_random_bytes_never_raise(stage: int, data: bytes) -> None:
    server, _valid = _session_at(stage)
    _check_result(server.process(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stage=st.integers(0, 2), data=st.data())
def test_mutated_responses_never_raise(stage: int, data: st.DataObject) -> None:
    server, valid = _session_at(stage)
    mutated = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    if data.draw(st.booleans()) and len(mutated) >= 4:
        mutated[2:4] = struct.pack("!H", len(mutated))  # keep the EAP length consistent
    result = server.process(bytes(mutated))
    _check_result(result)
    if result.status == "success":
        assert server.msk is not None and len(server.msk) == 64
