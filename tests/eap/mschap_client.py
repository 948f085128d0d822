"""A minimal EAP peer for the tests: answers EAP-Identity and runs the client
side of EAP-MSCHAPv2 with the RFC 2759 formulas (section 8, via
ikegate.crypto.mschap), the way Windows does, including retries after a
Failure-Request ``E=691 R=1 C=...`` (RFC 2759 section 6 and 9.1.2: the new
Response answers the challenge C from the Failure packet)."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field

from ikegate.crypto.mschap import (
    eap_mschapv2_msk,
    generate_authenticator_response,
    generate_nt_response,
    nt_password_hash,
)

EAP_REQUEST, EAP_RESPONSE, EAP_SUCCESS, EAP_FAILURE = 1, 2, 3, 4
TYPE_IDENTITY, TYPE_NAK, TYPE_MSCHAPV2 = 1, 3, 26
OP_CHALLENGE, OP_RESPONSE, OP_SUCCESS, OP_FAILURE = 1, 2, 3, 4


def eap(code: int, identifier: int, type_: int | None = None, data: bytes = b"") -> bytes:
    """Build an EAP packet by hand (independent of ikegate.eap.packet)."""
    body = b"" if type_ is None else bytes((type_,)) + data
    return struct.pack("!BBH", code, identifier, 4 + len(body)) + body


def mschap_response(identifier: int, ms_id: int, peer_challenge: bytes, nt_response: bytes, name: bytes) -> bytes:
    value = peer_challenge + bytes(8) + nt_response + b"\x00"
    type_data_len = 4 + 1 + len(value) + len(name)
    type_data = struct.pack("!BBHB", OP_RESPONSE, ms_id, type_data_len, len(value)) + value + name
    return eap(EAP_RESPONSE, identifier, TYPE_MSCHAPV2, type_data)


@dataclass
class MschapClient:
    """``name`` is what goes into the Name field (maybe ``DOMAIN\\user``); the
    challenge hash uses the part after the backslash, as Windows does."""

    name: bytes
    password: str
    identity: bytes | None = None
    peer_challenges: list[bytes] = field(default_factory=list)
    # filled while running
    authenticator_challenge: bytes = b""
    peer_challenge: bytes = b""
    nt_response: bytes = b""
    server_verified: bool = False
    failure_messages: list[str] = field(default_factory=list)

    @property
    def username(self) -> bytes:
        return self.name.split(b"\\", 1)[1] if b"\\" in self.name else self.name

    def _respond_to_challenge(self, identifier: int, ms_id: int, challenge: bytes) -> bytes:
        self.authenticator_challenge = challenge
        self.peer_challenge = self.peer_challenges.pop(0) if self.peer_challenges else secrets.token_bytes(16)
        self.nt_response = generate_nt_response(
            challenge, self.peer_challenge, self.username, nt_password_hash(self.password)
        )
        return mschap_response(identifier, ms_id, self.peer_challenge, self.nt_response, self.name)

    def expected_authenticator_response(self) -> str:
        return generate_authenticator_response(
            nt_password_hash(self.password),
            self.nt_response,
            self.peer_challenge,
            self.authenticator_challenge,
            self.username,
        )

    def msk(self) -> bytes:
        return eap_mschapv2_msk(nt_password_hash(self.password), self.nt_response)

    def respond(self, packet: bytes) -> bytes:
        code, identifier, length = struct.unpack_from("!BBH", packet)
        if length != len(packet) or code != EAP_REQUEST:
            raise AssertionError(f"client got an unexpected packet {packet.hex()}")
        type_ = packet[4]
        data = packet[5:]
        if type_ == TYPE_IDENTITY:
            return eap(EAP_RESPONSE, identifier, TYPE_IDENTITY, self.name if self.identity is None else self.identity)
        if type_ != TYPE_MSCHAPV2:
            return eap(EAP_RESPONSE, identifier, TYPE_NAK, bytes((TYPE_MSCHAPV2,)))
        opcode, ms_id, ms_length = struct.unpack_from("!BBH", data)
        if ms_length != len(data):
            raise AssertionError("MS-Length is not the length of the EAP-MSCHAPv2 data")
        if opcode == OP_CHALLENGE:
            if data[4] != 16:
                raise AssertionError("Value-Size of a Challenge must be 16")
            return self._respond_to_challenge(identifier, ms_id, data[5:21])
        message = data[4:].decode("ascii")
        if opcode == OP_SUCCESS:
            tokens = message.split(" ")
            self.server_verified = tokens[0] == self.expected_authenticator_response()
            if not self.server_verified:
                raise AssertionError(f"server authenticator response {tokens[0]!r} is wrong")
            return eap(EAP_RESPONSE, identifier, TYPE_MSCHAPV2, bytes((OP_SUCCESS,)))
        if opcode == OP_FAILURE:
            self.failure_messages.append(message)
            fields = dict(token.split("=", 1) for token in message.split(" ") if "=" in token)
            # a retry answers the new challenge; the MS-CHAPv2-ID follows the failure's + 1
            return self._respond_to_challenge(identifier, (ms_id + 1) & 0xFF, bytes.fromhex(fields["C"]))
        raise AssertionError(f"unexpected opcode {opcode}")
