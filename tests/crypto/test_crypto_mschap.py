"""MS-CHAPv2 and MPPE/MSK key derivation.

Known answers: RFC 2759 section 9.2 (UserName "User", Password "clientPass") and RFC 3079
section 3.5.3 (128-bit keys from the same exchange), as recorded and re-derived in
/work/shared/spec/test-vectors.md.  The 64-byte MSK is strongSwan's layout
(eap_mschapv2.c GenerateMSK), whose value for these inputs test-vectors.md gives.
Single DES is cross-checked against pycryptodome's DES.
"""

from __future__ import annotations

import os

import pytest
from Crypto.Cipher import DES as PyDES

from ikegate.crypto import mschap

h = bytes.fromhex

# RFC 2759 9.2
USERNAME = b"User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = h("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = h("21402324255E262A28295F2B3A337C7E")
CHALLENGE = h("D02E4386BCE91226")
PASSWORD_HASH = h("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = h("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = h("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 3.5.3
MASTER_KEY = h("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = h("8B7CDC149B993A1BA118CB153F56DCCB")
# test-vectors.md: MSK = MasterReceiveKey | MasterSendKey | 32 zero bytes
MSK = h("D5F0E9521E3EA9589645E86051C82226" "8B7CDC149B993A1BA118CB153F56DCCB") + bytes(32)


def test_rfc2759_nt_password_hash():
    assert mschap.nt_password_hash(PASSWORD) == PASSWORD_HASH


def test_rfc2759_hash_nt_password_hash():
    assert mschap.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH


def test_rfc2759_challenge_hash():
    assert mschap.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USERNAME) == CHALLENGE


def test_rfc2759_challenge_response():
    assert mschap.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE


def test_rfc2759_generate_nt_response():
    nt = mschap.generate_nt_response(AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USERNAME, PASSWORD_HASH)
    assert nt == NT_RESPONSE


def test_rfc2759_authenticator_response():
    response = mschap.generate_authenticator_response(
        PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USERNAME
    )
    assert response == AUTHENTICATOR_RESPONSE
    assert len(response) == 42


def test_verify_nt_response():
    args = (AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USERNAME, PASSWORD_HASH)
    assert mschap.verify_nt_response(*args, NT_RESPONSE)
    assert not mschap.verify_nt_response(*args, NT_RESPONSE[:-1] + b"\x00")
    assert not mschap.verify_nt_response(*args, NT_RESPONSE[:-1])
    assert not mschap.verify_nt_response(
        AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, b"user", PASSWORD_HASH, NT_RESPONSE
    )
    wrong = mschap.nt_password_hash("clientpass")
    assert not mschap.verify_nt_response(AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USERNAME, wrong, NT_RESPONSE)


def test_rfc3079_master_key():
    assert mschap.master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY


def test_rfc3079_send_start_key():
    assert mschap.asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True) == SEND_START_KEY_128
    # the client's receive key is the server's send key, and vice versa
    assert mschap.asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=False) == SEND_START_KEY_128
    assert mschap.asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=False) == MSK[:16]
    # 40/56-bit variants are prefixes of the SHA-1 output (RFC 3079 3.4, SessionKeyLength 8)
    assert mschap.asymmetric_start_key(MASTER_KEY, 8, is_send=True, is_server=True) == SEND_START_KEY_128[:8]


def test_eap_mschapv2_msk():
    msk = mschap.eap_mschapv2_msk(PASSWORD_HASH, NT_RESPONSE)
    assert len(msk) == 64
    assert msk == MSK


def test_unicode_password_is_utf16le():
    from ikegate.crypto.md4 import md4

    assert mschap.nt_password_hash("pässwörd€") == md4("pässwörd€".encode("utf-16-le"))


def test_challenge_response_input_checks():
    with pytest.raises(ValueError):
        mschap.challenge_response(CHALLENGE[:7], PASSWORD_HASH)
    with pytest.raises(ValueError):
        mschap.challenge_response(CHALLENGE, PASSWORD_HASH[:15])


def _pycryptodome_des_response(challenge: bytes, password_hash: bytes) -> bytes:
    z = password_hash + bytes(5)
    out = b""
    for i in (0, 7, 14):
        bits = int.from_bytes(z[i : i + 7], "big")
        key = bytes(((bits >> (49 - 7 * j)) & 0x7F) << 1 for j in range(8))
        out += PyDES.new(key, PyDES.MODE_ECB).encrypt(challenge)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_des_matches_pycryptodome(seed):
    challenge, password_hash = os.urandom(8), os.urandom(16)
    assert mschap.challenge_response(challenge, password_hash) == _pycryptodome_des_response(
        challenge, password_hash
    )
