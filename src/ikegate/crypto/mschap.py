"""MS-CHAPv2 (RFC 2759) and its key derivation (RFC 3079), bytes in, bytes out.

Function names follow the RFCs' pseudo-code (section 8 of RFC 2759, section 3 of
RFC 3079).  ``username`` is the MS-CHAPv2 Name as bytes with any ``DOMAIN\\`` prefix
already removed (strongSwan's ``extract_username``); passwords are hashed as UTF-16LE.
Single DES runs as ``TripleDES(k | k | k)`` of ``cryptography`` (identical to DES, and
without the deprecation warning of 8-byte TripleDES keys).  Nothing here logs anything.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ikegate.crypto.md4 import md4

__all__ = [
    "asymmetric_start_key",
    "challenge_hash",
    "challenge_response",
    "eap_mschapv2_msk",
    "generate_authenticator_response",
    "generate_nt_response",
    "hash_nt_password_hash",
    "master_key",
    "nt_password_hash",
    "verify_nt_response",
]

# RFC 2759 8.7 (GenerateAuthenticatorResponse)
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 3.4 (GetMasterKey) and 3.4 (GetAsymmetricStartKey)
_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = b"On the client side, this is the send key; on the server side, it is the receive key."
_KEY_MAGIC3 = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 8.3): MD4 of the UTF-16LE password (16 bytes)."""
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash (RFC 2759 8.4): MD4 of the NT hash."""
    return md4(bytes(password_hash))


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (RFC 2759 8.2): first 8 bytes of SHA1(peer | authenticator | name)."""
    data = bytes(peer_challenge) + bytes(authenticator_challenge) + bytes(username)
    return hashlib.sha1(data).digest()[:8]


def _des_key(seven: bytes) -> bytes:
    """A 56-bit key spread over 8 bytes, 7 bits each (the low parity bit is ignored)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des_encrypt(clear: bytes, seven: bytes) -> bytes:
    key = _des_key(seven)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 8.5): the 8-byte challenge DES-encrypted under the
    three 7-byte thirds of the zero-padded 21-byte password hash (24 bytes)."""
    if len(challenge) != 8 or len(password_hash) != 16:
        raise ValueError("challenge must be 8 bytes and password hash 16 bytes")
    z = bytes(password_hash) + bytes(5)
    return b"".join(_des_encrypt(bytes(challenge), z[i : i + 7]) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: bytes, password_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 8.1), from the NT hash rather than the password."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, password_hash)


def verify_nt_response(
    authenticator_challenge: bytes,
    peer_challenge: bytes,
    username: bytes,
    password_hash: bytes,
    nt_response: bytes,
) -> bool:
    """Whether ``nt_response`` is right for this password hash; constant-time."""
    expected = generate_nt_response(authenticator_challenge, peer_challenge, username, password_hash)
    return hmac.compare_digest(expected, bytes(nt_response))


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: bytes,
) -> str:
    """GenerateAuthenticatorResponse (RFC 2759 8.7): the 42-character "S=<40 hex>"
    string of the Success packet, upper-case hex."""
    password_hash_hash = hash_nt_password_hash(password_hash)
    digest = hashlib.sha1(password_hash_hash + bytes(nt_response) + _AUTH_MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _AUTH_MAGIC2).digest()
    return "S=" + digest.hex().upper()


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 3.4): first 16 bytes of SHA1(hash-hash | NT-Response | magic)."""
    return hashlib.sha1(bytes(password_hash_hash) + bytes(nt_response) + _KEY_MAGIC1).digest()[:16]


def asymmetric_start_key(master_key: bytes, key_len: int, is_send: bool, is_server: bool) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 3.4): ``key_len`` (8 or 16) bytes of
    SHA1(MasterKey | pad1 | magic | pad2); the server's send key is the client's receive
    key and vice versa."""
    if not 0 < key_len <= 20:
        raise ValueError("key length must be 1..20 bytes")
    if is_send:
        magic = _KEY_MAGIC3 if is_server else _KEY_MAGIC2
    else:
        magic = _KEY_MAGIC2 if is_server else _KEY_MAGIC3
    return hashlib.sha1(bytes(master_key) + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:key_len]


def eap_mschapv2_msk(password_hash: bytes, nt_response: bytes) -> bytes:
    """The 64-byte EAP-MSCHAPv2 MSK as strongSwan builds it (eap_mschapv2.c
    ``GenerateMSK``): MasterReceiveKey | MasterSendKey (both as seen by the server,
    128 bits each) | 32 zero bytes.  Both ends compute the same value."""
    master = master_key(hash_nt_password_hash(password_hash), nt_response)
    receive = asymmetric_start_key(master, 16, is_send=False, is_server=True)
    send = asymmetric_start_key(master, 16, is_send=True, is_server=True)
    return receive + send + bytes(32)
