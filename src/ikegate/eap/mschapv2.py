"""EAP-MSCHAPv2 server (draft-kamath-pppext-eap-mschapv2-02, RFC 2759).

Type-Data of every EAP-MSCHAPv2 packet (after the EAP type octet 26)::

    OpCode (1) | MS-CHAPv2-ID (1) | MS-Length (2) | ...
    Challenge: Value-Size=16 | Challenge (16) | Name
    Response:  Value-Size=49 | Peer-Challenge (16) | Reserved (8) | NT-Response (24) | Flags (1) | Name
    Success-Request / Failure-Request: message text
    Success-Response / Failure-Response: OpCode only

MS-Length is the length of the Type-Data (EAP length minus 5).  The exchange,
as strongSwan's ``eap_mschapv2.c`` runs it as a server:

1. Challenge with a fresh 16-byte challenge; MS-CHAPv2-ID starts equal to the
   EAP identifier.
2. Response: the secret is looked up by the whole Name (``DOMAIN\\user``
   included), the challenge hash uses the part after the first backslash
   (``extract_username``); the Name is read up to 255 bytes or the first NUL.
   An empty Name, or (with a concrete ``eap_identity``) a Name that does not
   match it, counts as a failed attempt without a secret lookup.
   Right NT-Response -> Success-Request ``S=<authenticator response> M=<msg>``.
   Wrong NT-Response or unknown user (indistinguishable for the peer) ->
   Failure-Request ``E=691 R=1 C=<new challenge> V=3 M=<msg>`` with the
   MS-CHAPv2-ID then incremented, at most ``MAX_RETRIES`` (2) times; the next
   failure ends the exchange with EAP-Failure instead of ``R=0``, which
   Windows 7 handles badly.  strongSwan sleeps ``RETRY_DELAY`` (2 s)
   before each Failure-Request to slow down guessing; this sans-IO server
   returns the delay instead and the caller holds the packet.  It also
   reports the delay for the final EAP-Failure after a wrong password (strongSwan
   answers that one at once), so every wrong guess costs the same time.
3. Success-Response -> done, the MSK is available; Failure-Response (peer
   gives up) at any time -> failure.

Never raises on peer input: every malformed or unexpected packet is a failure step.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ikegate.crypto.mschap import (
    eap_mschapv2_msk,
    generate_authenticator_response,
    generate_nt_response,
    nt_password_hash,
)
from ikegate.eap.packet import EapPacket
from ikegate.wire.constants import EapCode, EapType

__all__ = [
    "CHALLENGE_LEN",
    "MAX_RETRIES",
    "MethodStep",
    "MschapV2Server",
    "OpCode",
    "RETRY_DELAY",
    "SecretLookup",
    "extract_username",
    "printable",
]

#: ``lookup(name)`` -> ``("NTLM", nt_hash16)`` or ``("EAP", password_utf8)`` or None.
SecretLookup = Callable[[str], tuple[str, bytes] | None]

CHALLENGE_LEN = 16
#: Value-Size of a Response: Peer-Challenge 16 + Reserved 8 + NT-Response 24 + Flags 1.
RESPONSE_VALUE_LEN = 49
#: Opcode, MS-CHAPv2-ID, MS-Length, Value-Size, Response value (Name may be empty here).
_RESPONSE_MIN_LEN = 1 + 1 + 2 + 1 + RESPONSE_VALUE_LEN
#: The Name is read into a 256-byte C buffer by strongSwan.
MAX_NAME_LEN = 255
#: strongSwan eap_mschapv2.c: retries after a failed verification, and the delay in seconds.
MAX_RETRIES = 2
RETRY_DELAY = 2.0
ERROR_AUTHENTICATION_FAILURE = 691
#: The authenticator Name in our Challenge (strongSwan sends "strongSwan"; peers ignore it).
SERVER_NAME = b"ikegate"
SUCCESS_MESSAGE = "Welcome2ikegate"
FAILURE_MESSAGE = "Authentication failed"
_HEADER = struct.Struct("!BBH")


class OpCode(enum.IntEnum):
    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


class _State(enum.Enum):
    NEW = "new"
    EXPECT_RESPONSE = "expect-response"
    EXPECT_SUCCESS = "expect-success"
    DONE = "done"


@dataclass(frozen=True)
class MethodStep:
    """Outcome of one response handed to the method.

    ``status`` is "continue" (send ``request``), "success" or "failure" (the
    caller sends EAP-Success / EAP-Failure); ``delay`` is how long to hold the
    answer; ``reason`` is for logs and never contains secrets.
    """

    status: str
    request: EapPacket | None = None
    delay: float = 0.0
    reason: str = ""


def extract_username(name: bytes) -> bytes:
    """The part of an MS-CHAPv2 Name after the first backslash, else the whole
    Name: what the challenge hash is computed over."""
    _domain, backslash, user = name.partition(b"\\")
    return user if backslash else name


def printable(name: str) -> str:
    """A Name or identity safe to put in a log line (non-printables as '?')."""
    return "".join(ch if ch.isprintable() else "?" for ch in name)


class MschapV2Server:
    """Server side of one EAP-MSCHAPv2 conversation.

    ``lookup`` resolves the Name to a secret; ``random(n)`` provides challenges
    (injectable for known-answer tests); ``name_check``, if given, must accept
    the Name (used to enforce a concrete ``eap_identity``), else the attempt
    counts as a failed one without consulting ``lookup``.
    """

    type = EapType.MSCHAPV2

    def __init__(
        self,
        lookup: SecretLookup,
        *,
        random: Callable[[int], bytes] = secrets.token_bytes,
        name_check: Callable[[str], bool] | None = None,
        max_retries: int = MAX_RETRIES,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._lookup = lookup
        self._random = random
        self._name_check = name_check
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._state = _State.NEW
        self._challenge = b""
        self._ms_id = 0
        self._retries = 0
        self._pending_msk: bytes | None = None
        self._msk: bytes | None = None
        self._name: str | None = None

    @property
    def msk(self) -> bytes | None:
        """The 64-byte MSK once the peer acknowledged our Success-Request."""
        return self._msk

    @property
    def name(self) -> str | None:
        """The MS-CHAPv2 Name that was verified (set with the Success-Request)."""
        return self._name

    @property
    def retries(self) -> int:
        return self._retries

    # ---------------------------------------------------------------- packets

    def _new_challenge(self) -> bytes:
        challenge = bytes(self._random(CHALLENGE_LEN))
        if len(challenge) != CHALLENGE_LEN:
            raise ValueError("random source returned a challenge of the wrong length")
        return challenge

    @staticmethod
    def _packet(identifier: int, opcode: OpCode, ms_id: int, body: bytes) -> EapPacket:
        type_data_len = 4 + len(body)
        data = _HEADER.pack(opcode, ms_id, type_data_len) + body
        return EapPacket(EapCode.REQUEST, identifier, EapType.MSCHAPV2, data)

    def initiate(self, identifier: int) -> EapPacket:
        """The Challenge request, sent with EAP identifier ``identifier``."""
        if self._state is not _State.NEW:
            raise RuntimeError("EAP-MSCHAPv2 exchange already initiated")
        self._challenge = self._new_challenge()
        self._ms_id = identifier
        self._state = _State.EXPECT_RESPONSE
        body = bytes((CHALLENGE_LEN,)) + self._challenge + SERVER_NAME
        return self._packet(identifier, OpCode.CHALLENGE, self._ms_id, body)

    # ------------------------------------------------------------- processing

    def process(self, response: EapPacket, next_identifier: int) -> MethodStep:
        """Handle an EAP-MSCHAPv2 Response (identifier and type already checked
        by the caller); a request it returns uses ``next_identifier``."""
        if self._state in (_State.NEW, _State.DONE):
            return self._fail(f"EAP-MSCHAPv2 message in state {self._state.value}")
        data = response.data
        if not data:
            return self._fail("received invalid EAP-MSCHAPv2 message: too short")
        opcode = data[0]
        if self._state is _State.EXPECT_RESPONSE and opcode == OpCode.RESPONSE:
            return self._process_response(data, next_identifier)
        if self._state is _State.EXPECT_SUCCESS and opcode == OpCode.SUCCESS:
            self._msk = self._pending_msk
            self._pending_msk = None
            self._state = _State.DONE
            return MethodStep("success", reason=f"EAP-MSCHAPv2 succeeded for '{printable(self._name or '')}'")
        if opcode == OpCode.FAILURE:
            # the peer may abort with a Failure-Response in any state
            return self._fail("peer aborted EAP-MSCHAPv2 with a Failure-Response")
        try:
            opcode_name = OpCode(opcode).name
        except ValueError:
            opcode_name = str(opcode)
        return self._fail(f"received unexpected EAP-MSCHAPv2 message with OpCode {opcode_name}")

    def _fail(self, reason: str, delay: float = 0.0) -> MethodStep:
        self._state = _State.DONE
        self._pending_msk = None
        return MethodStep("failure", delay=delay, reason=reason)

    def _process_response(self, data: bytes, next_identifier: int) -> MethodStep:
        if len(data) < _RESPONSE_MIN_LEN:
            return self._fail("received invalid EAP-MSCHAPv2 message: too short")
        peer_challenge = data[5:21]
        nt_response = data[29:53]
        raw_name = data[_RESPONSE_MIN_LEN : _RESPONSE_MIN_LEN + MAX_NAME_LEN].split(b"\0", 1)[0]
        name = raw_name.decode("utf-8", "surrogateescape")
        shown = printable(name)

        if not raw_name:
            return self._retry(next_identifier, "EAP-MSCHAPv2 response without a Name")
        if self._name_check is not None and not self._name_check(name):
            return self._retry(next_identifier, f"EAP-MSCHAPv2 Name '{shown}' does not match the EAP identity rule")
        password_hash = self._password_hash(name)
        username = extract_username(raw_name)
        # an unknown user costs the same computation as a wrong password (and see
        # _password_hash): the time of the answer does not tell which user names exist
        expected = generate_nt_response(self._challenge, peer_challenge, username,
                                        password_hash if password_hash is not None else secrets.token_bytes(16))
        verified = hmac.compare_digest(expected, nt_response)
        if password_hash is None:
            return self._retry(next_identifier, f"no usable EAP/NTLM secret for '{shown}'")
        if not verified:
            return self._retry(next_identifier, f"EAP-MSCHAPv2 verification failed for '{shown}'")

        authenticator = generate_authenticator_response(
            password_hash, nt_response, peer_challenge, self._challenge, username
        )
        self._pending_msk = eap_mschapv2_msk(password_hash, nt_response)
        self._name = name
        self._state = _State.EXPECT_SUCCESS
        message = f"{authenticator} M={SUCCESS_MESSAGE}".encode("ascii")
        request = self._packet(next_identifier, OpCode.SUCCESS, self._ms_id, message)
        return MethodStep("continue", request, reason=f"EAP-MSCHAPv2 response of '{shown}' verified")

    def _password_hash(self, name: str) -> bytes | None:
        """The NT hash for ``name``: an NTLM secret as is, an EAP password hashed.

        Every call hashes one password (a throwaway one unless ``name`` has a usable EAP
        password), so that with the NT-Response computed in any case (see
        :meth:`_process_response`) an unknown user, an NTLM user and a password user take
        the same time to answer: the timing does not tell which user names exist."""
        secret = self._lookup(name)
        kind, value = secret if secret is not None else (None, b"")
        password = None
        if kind == "EAP":
            try:
                password = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                password = None
        hashed = nt_password_hash(password if password is not None else secrets.token_hex(8))
        if kind == "NTLM":
            value = bytes(value)
            return value if len(value) == 16 else None
        return hashed if password is not None else None

    def _retry(self, next_identifier: int, reason: str) -> MethodStep:
        """A failed attempt: Failure-Request with a new challenge, or the end."""
        self._retries += 1
        if self._retries > self._max_retries:
            return self._fail(f"{reason}; maximum number of retries reached", delay=self._retry_delay)
        self._challenge = self._new_challenge()
        message = (
            f"E={ERROR_AUTHENTICATION_FAILURE} R=1 C={self._challenge.hex().upper()} "
            f"V=3 M={FAILURE_MESSAGE}"
        ).encode("ascii")
        request = self._packet(next_identifier, OpCode.FAILURE, self._ms_id, message)
        self._ms_id = (self._ms_id + 1) & 0xFF
        return MethodStep(
            "continue",
            request,
            delay=self._retry_delay,
            reason=f"{reason}, retry {self._retries} of {self._max_retries}",
        )
