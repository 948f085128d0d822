"""Apple (iOS, iPadOS, macOS): a ``.mobileconfig`` configuration profile.

The profile (an XML property list written with :mod:`plistlib`) holds a
``com.apple.vpn.managed`` payload with ``VPNType`` ``IKEv2`` and, where the CA is
private, a ``com.apple.security.root`` payload with the CA certificate.  Keys and value
sets are those of Apple's device-management schema (github.com/apple/device-management,
mdm/profiles/com.apple.vpn.managed.yaml, com.apple.security.root.yaml, TopLevel.yaml):

* EAP-only authentication: ``AuthenticationMethod`` ``None`` with
  ``ExtendedAuthEnabled`` 1; ``AuthName`` (the user name), ``LocalIdentifier`` (the
  IKE identity Apple sends; the user name too, ikegate asks for the EAP identity anyway);
* ``RemoteIdentifier``: the server identity (certificate SAN); Apple sends it as IDr
  and validates the certificate against it;
* ``IKESecurityAssociationParameters`` / ``ChildSecurityAssociationParameters``:
  ``EncryptionAlgorithm`` (DES, 3DES, AES-128, AES-256, AES-128-GCM, AES-256-GCM,
  ChaCha20Poly1305), ``IntegrityAlgorithm`` (SHA1-96, SHA1-160, SHA2-256, SHA2-384,
  SHA2-512; the PRF of the same hash for IKE), ``DiffieHellmanGroup`` (1, 2, 5, 14-21,
  31, 32: the IANA numbers), ``LifeTimeInMinutes`` (10-1440): the strongest suite the
  conn accepts, lifetimes those of the conn (``ikelifetime=``, ``lifetime=``);
  ``EnablePFS`` 1 when the conn wants a key exchange on CHILD SA rekeys;
* ``ServerCertificateIssuerCommonName`` only when the gateway sends its certificate
  only on request (``leftsendcert=ifasked``): setting it makes Apple send a CERTREQ
  (Apple sends none otherwise), but it also pins the issuer's name, which breaks the
  profile when a public CA switches intermediates;
* no password unless given (``--password-stdin``): Apple then asks on first connect.

Payload UUIDs are derived from the conn, server and user (UUID version 5), so a profile
written again for the same user replaces the installed one instead of adding another.
"""

from __future__ import annotations

import plistlib
import uuid

from ikegate.profiles.common import ConnProfile, ProfileError
from ikegate.profiles.suites import (
    Candidate,
    best_candidate,
    esp_accepted,
    esp_strength,
    ike_accepted,
    ike_strength,
)
from ikegate.proposal import Proposal
from ikegate.wire.constants import EncrId, EsnId, IntegId, PrfId, ProtocolId

EXTENSION = ".mobileconfig"

#: EncryptionAlgorithm -> cipher (algorithm, key bits)
ENCRYPTION_ALGORITHM = {
    "DES": (EncrId.DES, 0),
    "3DES": (EncrId.TRIPLE_DES, 0),
    "AES-128": (EncrId.AES_CBC, 128),
    "AES-256": (EncrId.AES_CBC, 256),
    "AES-128-GCM": (EncrId.AES_GCM_16, 128),
    "AES-256-GCM": (EncrId.AES_GCM_16, 256),
    "ChaCha20Poly1305": (EncrId.CHACHA20_POLY1305, 0),
}
#: IntegrityAlgorithm -> (integrity, PRF)
INTEGRITY_ALGORITHM = {
    "SHA1-96": (IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1),
    "SHA1-160": (IntegId.HMAC_SHA1_160, PrfId.HMAC_SHA1),
    "SHA2-256": (IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256),
    "SHA2-384": (IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384),
    "SHA2-512": (IntegId.HMAC_SHA2_512_256, PrfId.HMAC_SHA2_512),
}
#: DiffieHellmanGroup values (IANA transform type 4 numbers)
DH_GROUPS = (1, 2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 31, 32)
#: LifeTimeInMinutes range
LIFETIME_RANGE = (10, 1440)

_AEAD = (EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305)
_NAMESPACE = uuid.UUID("7f3c54c2-5a8e-4d0b-9a51-0c1e6b2f4a11")  # ikegate's profile namespace


def _proposal(protocol: int, encr: tuple[int, int], integ: int, prf: int, dh: int | None) -> Proposal:
    aead = encr[0] in _AEAD
    return Proposal(
        protocol=protocol,
        encr=(encr,),
        integ=() if aead else (integ,),
        prf=(prf,) if protocol == ProtocolId.IKE else (),
        dh=() if dh is None else (dh,),
        esn=(EsnId.NO_EXT_SEQ,) if protocol == ProtocolId.ESP else (),
    )


def ike_candidates() -> list[Candidate[tuple[str, str, int]]]:
    return [
        Candidate((enc, integ, group), _proposal(ProtocolId.IKE, encr, i, p, group))
        for enc, encr in ENCRYPTION_ALGORITHM.items()
        for integ, (i, p) in INTEGRITY_ALGORITHM.items()
        for group in DH_GROUPS
    ]


def child_candidates() -> list[Candidate[tuple[str, str, int | None]]]:
    """Child SA settings; a DH group of None means ``EnablePFS`` 0."""
    return [
        Candidate((enc, integ, group), _proposal(ProtocolId.ESP, encr, i, p, group))
        for enc, encr in ENCRYPTION_ALGORITHM.items()
        for integ, (i, p) in INTEGRITY_ALGORITHM.items()
        for group in (None, *DH_GROUPS)
    ]


def _lifetime(minutes: int) -> int:
    low, high = LIFETIME_RANGE
    return max(low, min(high, minutes)) if minutes > 0 else high


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\0".join(parts))).upper()


def _identifier(profile: ConnProfile) -> str:
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in profile.server.lower())
    return f"org.ikegate.profile.{host}.{profile.conn.name}"


def build(profile: ConnProfile, password: str | None = None) -> bytes:
    """The .mobileconfig (XML plist).  ``password`` is stored as ``AuthPassword`` only
    when given."""
    if profile.user is None:
        raise ProfileError("Apple profiles need --user: it is the LocalIdentifier Apple sends")
    if profile.remote_id is None:
        raise ProfileError("the server certificate has no DNS or IP subjectAltName to use as "
                           "RemoteIdentifier: Apple clients (iOS 13+, macOS 10.15+) require one")
    ike = best_candidate(ike_candidates(), lambda p: ike_accepted(profile.ike, p), ike_strength)
    if ike is None:
        raise ProfileError(f"conn '{profile.conn.name}': ike= accepts no suite Apple devices can propose "
                           "(AES-128/256 CBC or GCM, ChaCha20-Poly1305, 3DES with SHA1/SHA2 and a group of "
                           f"{', '.join(map(str, DH_GROUPS))})")
    child = best_candidate(child_candidates(), lambda p: esp_accepted(profile.esp, p), esp_strength)
    if child is None:
        raise ProfileError(f"conn '{profile.conn.name}': esp= accepts no suite Apple devices can propose "
                           "(AES-128/256 CBC or GCM, ChaCha20-Poly1305, 3DES with SHA1/SHA2)")

    ike_enc, ike_integ, ike_group = ike.setting
    child_enc, child_integ, child_group = child.setting
    key = (profile.conn.name, profile.server, profile.user)
    ike_params = {
        "EncryptionAlgorithm": ike_enc,
        "IntegrityAlgorithm": ike_integ,
        "DiffieHellmanGroup": ike_group,
        "LifeTimeInMinutes": _lifetime(profile.ike_lifetime_minutes),
    }
    child_params = {
        "EncryptionAlgorithm": child_enc,
        "IntegrityAlgorithm": child_integ,
        "DiffieHellmanGroup": child_group if child_group is not None else ike_group,
        "LifeTimeInMinutes": _lifetime(profile.child_lifetime_minutes),
    }
    ikev2 = {
        "RemoteAddress": profile.server,
        "RemoteIdentifier": profile.remote_id,
        "LocalIdentifier": profile.user,
        "AuthenticationMethod": "None",
        "ExtendedAuthEnabled": 1,
        "AuthName": profile.user,
        "IKESecurityAssociationParameters": ike_params,
        "ChildSecurityAssociationParameters": child_params,
        "EnablePFS": 1 if child_group is not None else 0,
        "DeadPeerDetectionRate": "Medium",
        "DisableMOBIKE": 0,
        "DisableRedirect": 0,
        "EnableCertificateRevocationCheck": 0,
        "UseConfigurationAttributeInternalIPSubnet": 0,
    }
    if password is not None:
        ikev2["AuthPassword"] = password
    if profile.cert_requested and profile.issuer_common_name:
        ikev2["ServerCertificateIssuerCommonName"] = profile.issuer_common_name

    identifier = _identifier(profile)
    vpn_payload = {
        "PayloadType": "com.apple.vpn.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.vpn",
        "PayloadUUID": _uuid("vpn", *key),
        "PayloadDisplayName": f"VPN {profile.name}",
        "PayloadDescription": f"IKEv2 VPN to {profile.server} (EAP-MSCHAPv2)",
        "UserDefinedName": profile.name,
        "VPNType": "IKEv2",
        "IKEv2": ikev2,
    }
    payloads = [vpn_payload]
    if profile.ca_private:
        payloads.insert(0, {
            "PayloadType": "com.apple.security.root",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"{identifier}.ca",
            "PayloadUUID": _uuid("ca", profile.ca_sha256_hex()),
            "PayloadDisplayName": profile.ca_display_name(),
            "PayloadCertificateFileName": "ca.cer",
            "PayloadContent": profile.ca_der(),
        })
    top = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": _uuid("profile", *key),
        "PayloadDisplayName": f"VPN {profile.name}",
        "PayloadDescription": f"IKEv2 VPN to {profile.server} for {profile.user}, written by ikegate",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": payloads,
    }
    return plistlib.dumps(top, fmt=plistlib.FMT_XML, sort_keys=True)
