"""The clients' own vocabularies and what they mean in IKEv2 terms, written for the tests
independently of ikegate.profiles (so a wrong table there is caught here).

Windows: Microsoft's cmdlet reference (MicrosoftDocs/windows-powershell-docs,
docset/winserver2025-ps/vpnclient/Set-VpnConnectionIPsecConfiguration.md, "Accepted
values" of each parameter; Add-VpnConnection.md, Add-VpnConnectionRoute.md,
Get-VpnConnection.md, Remove-VpnConnection.md, New-EapConfiguration.md of
docset/winserver2022-ps/vpnclient; pki/Import-Certificate.md).  The IKEv2 meaning of the
names: IANA "IKEv2 Parameters" transform IDs (RFC 7296 3.3.2; RFC 4106 for AES-GCM with a
16-octet ICV, which Windows 11 proposes as aes128gcm16 per docs.strongswan.org
interop/windowsClients), DH group numbers 1/2/14/19/20/24.

Apple: github.com/apple/device-management mdm/profiles/com.apple.vpn.managed.yaml (IKEv2
dictionary and SecurityAssociationParameters, their types and rangelists),
com.apple.security.root.yaml, TopLevel.yaml.
"""

from __future__ import annotations

from ikegate.proposal import Proposal
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId

# -- Windows -----------------------------------------------------------------------------

#: cmdlet -> documented parameters (common parameters in COMMON_PARAMETERS)
WINDOWS_CMDLETS = {
    "Add-VpnConnection": {
        "Name", "ServerAddress", "TunnelType", "AllUserConnection", "RememberCredential", "SplitTunneling",
        "Force", "PassThru", "L2tpPsk", "UseWinlogonCredential", "ServerList", "DnsSuffix",
        "IdleDisconnectSeconds", "EapConfigXmlStream", "AuthenticationMethod", "EncryptionLevel",
        "MachineCertificateIssuerFilter", "MachineCertificateEKUFilter", "CimSession", "ThrottleLimit",
        "AsJob", "WhatIf", "Confirm",
    },
    "Set-VpnConnectionIPsecConfiguration": {
        "ConnectionName", "AuthenticationTransformConstants", "CipherTransformConstants", "EncryptionMethod",
        "IntegrityCheckMethod", "PfsGroup", "DHGroup", "PassThru", "Force", "AllUserConnection",
        "CimSession", "ThrottleLimit", "AsJob", "WhatIf", "Confirm", "RevertToDefault",
    },
    "Add-VpnConnectionRoute": {
        "ConnectionName", "DestinationPrefix", "RouteMetric", "PassThru", "AllUserConnection", "CimSession",
        "ThrottleLimit", "AsJob", "WhatIf", "Confirm",
    },
    "Get-VpnConnection": {"Name", "AllUserConnection", "CimSession", "ThrottleLimit", "AsJob"},
    "Remove-VpnConnection": {"Name", "Force", "PassThru", "AllUserConnection", "CimSession", "ThrottleLimit",
                             "AsJob", "WhatIf", "Confirm"},
    "New-EapConfiguration": {"UseWinlogonCredential", "CimSession", "ThrottleLimit", "AsJob", "WhatIf", "Confirm",
                             "Ttls", "TunneledNonEapAuthMethod", "TunneledEapAuthMethod", "Tls", "UserCertificate",
                             "VerifyServerIdentity", "Peap", "EnableNap", "FastReconnect"},
    "Import-Certificate": {"FilePath", "CertStoreLocation", "WhatIf", "Confirm"},
}
COMMON_PARAMETERS = {"Debug", "ErrorAction", "ErrorVariable", "InformationAction", "InformationVariable",
                     "OutVariable", "OutBuffer", "PipelineVariable", "Verbose", "WarningAction", "WarningVariable"}
#: parameter -> accepted values ("Accepted values" of the docs)
WINDOWS_VALUES = {
    ("Add-VpnConnection", "TunnelType"): {"Pptp", "L2tp", "Sstp", "Ikev2", "Automatic"},
    ("Add-VpnConnection", "AuthenticationMethod"): {"Pap", "Chap", "MSChapv2", "Eap", "MachineCertificate"},
    ("Add-VpnConnection", "EncryptionLevel"): {"NoEncryption", "Optional", "Required", "Maximum", "Custom"},
    ("Set-VpnConnectionIPsecConfiguration", "AuthenticationTransformConstants"):
        {"MD596", "SHA196", "SHA256128", "GCMAES128", "GCMAES192", "GCMAES256", "None"},
    ("Set-VpnConnectionIPsecConfiguration", "CipherTransformConstants"):
        {"DES", "DES3", "AES128", "AES192", "AES256", "GCMAES128", "GCMAES192", "GCMAES256", "None"},
    ("Set-VpnConnectionIPsecConfiguration", "DHGroup"):
        {"None", "Group1", "Group2", "Group14", "ECP256", "ECP384", "Group24"},
    ("Set-VpnConnectionIPsecConfiguration", "EncryptionMethod"):
        {"DES", "DES3", "AES128", "AES192", "AES256", "GCMAES128", "GCMAES256"},
    ("Set-VpnConnectionIPsecConfiguration", "IntegrityCheckMethod"): {"MD5", "SHA1", "SHA256", "SHA384"},
    ("Set-VpnConnectionIPsecConfiguration", "PfsGroup"):
        {"None", "PFS1", "PFS2", "PFS2048", "ECP256", "ECP384", "PFSMM", "PFS24"},
}
#: other cmdlets the script may use (PowerShell's own, not checked further)
GENERIC_CMDLETS = {"Write-Host", "Join-Path", "Remove-Item"}

_WIN_ENCR = {"DES": (EncrId.DES, 0), "DES3": (EncrId.TRIPLE_DES, 0), "AES128": (EncrId.AES_CBC, 128),
             "AES192": (EncrId.AES_CBC, 192), "AES256": (EncrId.AES_CBC, 256),
             "GCMAES128": (EncrId.AES_GCM_16, 128), "GCMAES192": (EncrId.AES_GCM_16, 192),
             "GCMAES256": (EncrId.AES_GCM_16, 256)}
_WIN_HASH = {"MD5": (IntegId.HMAC_MD5_96, PrfId.HMAC_MD5), "SHA1": (IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1),
             "SHA256": (IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256),
             "SHA384": (IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384)}
_WIN_DH = {"Group1": 1, "Group2": 2, "Group14": 14, "ECP256": 19, "ECP384": 20, "Group24": 24}
_WIN_ESP_INTEG = {"MD596": IntegId.HMAC_MD5_96, "SHA196": IntegId.HMAC_SHA1_96,
                  "SHA256128": IntegId.HMAC_SHA2_256_128}
_WIN_PFS = {"None": None, "PFS1": 1, "PFS2": 2, "PFS2048": 14, "ECP256": 19, "ECP384": 20, "PFS24": 24}


def windows_ike(encryption_method: str, integrity_check_method: str, dh_group: str) -> Proposal:
    encr = _WIN_ENCR[encryption_method]
    integ, prf = _WIN_HASH[integrity_check_method]
    aead = encr[0] == EncrId.AES_GCM_16
    return Proposal(ProtocolId.IKE, encr=(encr,), integ=() if aead else (integ,), prf=(prf,),
                    dh=(DhId(_WIN_DH[dh_group]),))


def windows_esp(cipher: str, authentication: str, pfs_group: str) -> Proposal:
    encr = _WIN_ENCR[cipher]
    if encr[0] == EncrId.AES_GCM_16:
        assert authentication == cipher, "a GCM cipher goes with the GCM authentication constant of its size"
        integ: tuple = ()
    else:
        integ = (_WIN_ESP_INTEG[authentication],)
    pfs = _WIN_PFS[pfs_group]
    return Proposal(ProtocolId.ESP, encr=(encr,), integ=integ, dh=() if pfs is None else (DhId(pfs),),
                    esn=(EsnId.NO_EXT_SEQ,))


# -- Apple ---------------------------------------------------------------------------------

#: key -> (type, required) of the IKEv2 dictionary (the keys ikegate may write)
APPLE_IKEV2_KEYS = {
    "RemoteAddress": (str, True), "LocalIdentifier": (str, True), "RemoteIdentifier": (str, True),
    "AuthenticationMethod": (str, True), "ExtendedAuthEnabled": (int, False), "AuthName": (str, False),
    "AuthPassword": (str, False), "DeadPeerDetectionRate": (str, False),
    "ServerCertificateIssuerCommonName": (str, False), "ServerCertificateCommonName": (str, False),
    "UseConfigurationAttributeInternalIPSubnet": (int, False), "DisableMOBIKE": (int, False),
    "DisableRedirect": (int, False), "EnablePFS": (int, False), "EnableCertificateRevocationCheck": (int, False),
    "MTU": (int, False), "IKESecurityAssociationParameters": (dict, False),
    "ChildSecurityAssociationParameters": (dict, False),
}
APPLE_RANGES = {
    "AuthenticationMethod": {"None", "SharedSecret", "Certificate"},
    "ExtendedAuthEnabled": {0, 1}, "DeadPeerDetectionRate": {"None", "Low", "Medium", "High"},
    "UseConfigurationAttributeInternalIPSubnet": {0, 1}, "DisableMOBIKE": {0, 1}, "DisableRedirect": {0, 1},
    "EnablePFS": {0, 1}, "EnableCertificateRevocationCheck": {0, 1},
}
APPLE_SA_KEYS = {"EncryptionAlgorithm": str, "IntegrityAlgorithm": str, "DiffieHellmanGroup": int,
                 "LifeTimeInMinutes": int}
APPLE_SA_RANGES = {
    "EncryptionAlgorithm": {"DES", "3DES", "AES-128", "AES-256", "AES-128-GCM", "AES-256-GCM", "ChaCha20Poly1305"},
    "IntegrityAlgorithm": {"SHA1-96", "SHA1-160", "SHA2-256", "SHA2-384", "SHA2-512"},
    "DiffieHellmanGroup": {1, 2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 31, 32},
}
APPLE_LIFETIME = (10, 1440)
#: payload keys every payload carries (TopLevel.yaml / CommonPayloadKeys)
APPLE_PAYLOAD_KEYS = {"PayloadType": str, "PayloadVersion": int, "PayloadIdentifier": str, "PayloadUUID": str}

_APPLE_ENCR = {"DES": (EncrId.DES, 0), "3DES": (EncrId.TRIPLE_DES, 0), "AES-128": (EncrId.AES_CBC, 128),
               "AES-256": (EncrId.AES_CBC, 256), "AES-128-GCM": (EncrId.AES_GCM_16, 128),
               "AES-256-GCM": (EncrId.AES_GCM_16, 256), "ChaCha20Poly1305": (EncrId.CHACHA20_POLY1305, 0)}
_APPLE_HASH = {"SHA1-96": (IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1),
               "SHA1-160": (IntegId.HMAC_SHA1_160, PrfId.HMAC_SHA1),
               "SHA2-256": (IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256),
               "SHA2-384": (IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384),
               "SHA2-512": (IntegId.HMAC_SHA2_512_256, PrfId.HMAC_SHA2_512)}


def apple_proposal(params: dict, protocol: int, pfs: bool = True) -> Proposal:
    encr = _APPLE_ENCR[params["EncryptionAlgorithm"]]
    integ, prf = _APPLE_HASH[params["IntegrityAlgorithm"]]
    aead = encr[0] in (EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305)
    ike = protocol == ProtocolId.IKE
    return Proposal(protocol, encr=(encr,), integ=() if aead else (integ,), prf=(prf,) if ike else (),
                    dh=(DhId(params["DiffieHellmanGroup"]),) if (ike or pfs) else (),
                    esn=() if ike else (EsnId.NO_EXT_SEQ,))
