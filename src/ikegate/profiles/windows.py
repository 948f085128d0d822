"""Windows: a PowerShell script that adds the IKEv2 connection with the conn's suite.

The script (Windows 8.1 / Server 2012 R2 or later: the VpnClient module) runs, in order:

* ``Import-Certificate`` of the CA into ``Cert:\\LocalMachine\\Root`` when the CA is
  private (Windows only trusts a gateway CA from the computer store, client-behaviour.md
  1.2); the certificate is embedded (base64 DER) and its SHA-1 thumbprint checked after
  the import.  This needs an elevated PowerShell, so the script then declares
  ``#Requires -RunAsAdministrator`` and adds the connection for all users
  (``-AllUserConnection``); without a CA to import it needs no rights and adds the
  connection for the current user;
* ``Add-VpnConnection -TunnelType Ikev2 -AuthenticationMethod Eap`` with the
  EAP-MSCHAPv2 configuration of ``New-EapConfiguration`` (its default parameter set);
* ``Set-VpnConnectionIPsecConfiguration`` with the strongest suite the conn accepts in
  Windows' vocabulary, so Windows no longer offers 3DES and modp1024 first;
* ``Add-VpnConnectionRoute`` for ``::/1`` and ``8000::/1`` when the conn gives IPv6 to
  everything (the seed guide's workaround: Windows sets no IPv6 default route and the
  cmdlet refuses ``::/0``), and for each subnet of a split tunnel.

Value sets are those Microsoft documents for the cmdlets (docset winserver2025-ps,
vpnclient/Set-VpnConnectionIPsecConfiguration.md, Add-VpnConnection.md,
Add-VpnConnectionRoute.md; pki/Import-Certificate.md); their IKEv2 meaning:

* ``EncryptionMethod`` (IKE cipher): DES, DES3, AES128/192/256 (CBC), GCMAES128/256
  (AES-GCM with 16-byte ICV, what Windows 11 proposes as ``aes128gcm16``);
* ``IntegrityCheckMethod`` (IKE integrity and PRF): MD5, SHA1, SHA256, SHA384;
* ``DHGroup``: Group1/2/14/24 (MODP 768/1024/2048/2048-256), ECP256, ECP384;
* ``CipherTransformConstants`` (ESP cipher): DES, DES3, AES128/192/256,
  GCMAES128/192/256, None; ``AuthenticationTransformConstants`` (ESP integrity): MD596,
  SHA196, SHA256128, GCMAES128/192/256 (paired with the GCM cipher), None;
* ``PfsGroup`` (KE of CHILD SA rekeys): None, PFS1, PFS2, PFS2048, ECP256, ECP384, PFS24
  (PFSMM, "same as the IKE group", is never written).

For the IKE SA a CBC cipher is preferred to GCM of the same key size: Windows proposes
GCM for IKE by default only since Windows 11 (docs.strongswan.org interop/windowsClients),
so CBC is the choice that works on older Windows 10 releases too, and with HMAC-SHA384 it
is as strong for IKE's few messages.  If the conn accepts no suite Windows can send,
:class:`ProfileError` says so.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass

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
from ikegate.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId

EXTENSION = ".ps1"

#: EncryptionMethod -> IKE cipher (algorithm, key bits)
ENCRYPTION_METHOD = {
    "DES": (EncrId.DES, 0),
    "DES3": (EncrId.TRIPLE_DES, 0),
    "AES128": (EncrId.AES_CBC, 128),
    "AES192": (EncrId.AES_CBC, 192),
    "AES256": (EncrId.AES_CBC, 256),
    "GCMAES128": (EncrId.AES_GCM_16, 128),
    "GCMAES256": (EncrId.AES_GCM_16, 256),
}
#: IntegrityCheckMethod -> (IKE integrity, PRF)
INTEGRITY_CHECK_METHOD = {
    "MD5": (IntegId.HMAC_MD5_96, PrfId.HMAC_MD5),
    "SHA1": (IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1),
    "SHA256": (IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256),
    "SHA384": (IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384),
}
#: DHGroup -> IKE key exchange ("None" is no valid IKE group)
DH_GROUP = {
    "Group1": DhId.MODP_768,
    "Group2": DhId.MODP_1024,
    "Group14": DhId.MODP_2048,
    "ECP256": DhId.ECP_256,
    "ECP384": DhId.ECP_384,
    "Group24": DhId.MODP_2048_256,
}
#: CipherTransformConstants -> ESP cipher
CIPHER_TRANSFORM = {
    "DES": (EncrId.DES, 0),
    "DES3": (EncrId.TRIPLE_DES, 0),
    "AES128": (EncrId.AES_CBC, 128),
    "AES192": (EncrId.AES_CBC, 192),
    "AES256": (EncrId.AES_CBC, 256),
    "GCMAES128": (EncrId.AES_GCM_16, 128),
    "GCMAES192": (EncrId.AES_GCM_16, 192),
    "GCMAES256": (EncrId.AES_GCM_16, 256),
}
#: AuthenticationTransformConstants -> ESP integrity (for classic ciphers)
AUTHENTICATION_TRANSFORM = {
    "MD596": IntegId.HMAC_MD5_96,
    "SHA196": IntegId.HMAC_SHA1_96,
    "SHA256128": IntegId.HMAC_SHA2_256_128,
}
#: PfsGroup -> key exchange of CHILD SA rekeys (None: no PFS)
PFS_GROUP = {
    "None": None,
    "PFS1": DhId.MODP_768,
    "PFS2": DhId.MODP_1024,
    "PFS2048": DhId.MODP_2048,
    "ECP256": DhId.ECP_256,
    "ECP384": DhId.ECP_384,
    "PFS24": DhId.MODP_2048_256,
}


@dataclass(frozen=True)
class WindowsSuite:
    """The six values of ``Set-VpnConnectionIPsecConfiguration``."""

    encryption_method: str
    integrity_check_method: str
    dh_group: str
    cipher_transform_constants: str
    authentication_transform_constants: str
    pfs_group: str


def ike_candidates() -> list[Candidate[tuple[str, str, str]]]:
    """Every IKE suite Windows can be set to, with the proposal it then sends."""
    found = []
    for enc_name, encr in ENCRYPTION_METHOD.items():
        for integ_name, (integ, prf) in INTEGRITY_CHECK_METHOD.items():
            for dh_name, dh in DH_GROUP.items():
                aead = encr[0] == EncrId.AES_GCM_16
                proposal = Proposal(protocol=ProtocolId.IKE, encr=(encr,), integ=() if aead else (integ,),
                                    prf=(prf,), dh=(dh,))
                found.append(Candidate((enc_name, integ_name, dh_name), proposal))
    return found


def esp_candidates() -> list[Candidate[tuple[str, str, str]]]:
    """Every usable ESP suite (a cipher with its integrity: no NULL cipher, no cipher
    without integrity) and PFS group, with the proposal Windows then sends."""
    found = []
    for cipher_name, encr in CIPHER_TRANSFORM.items():
        if encr[0] == EncrId.AES_GCM_16:
            pairs = [(cipher_name, ())]  # GCM: the authentication constant names the same GCM
        else:
            pairs = [(auth_name, (integ,)) for auth_name, integ in AUTHENTICATION_TRANSFORM.items()]
        for auth_name, integ in pairs:
            for pfs_name, pfs in PFS_GROUP.items():
                proposal = Proposal(protocol=ProtocolId.ESP, encr=(encr,), integ=integ,
                                    dh=() if pfs is None else (pfs,), esn=(EsnId.NO_EXT_SEQ,))
                found.append(Candidate((cipher_name, auth_name, pfs_name), proposal))
    return found


def _ike_strength_for_windows(proposal: Proposal) -> tuple:
    """:func:`ike_strength`, but CBC before GCM of the same key size (module docstring)."""
    key = ike_strength(proposal)
    is_gcm = proposal.encr[0][0] == EncrId.AES_GCM_16
    return key[:3] + (not is_gcm,) + key[3:]


def choose_suite(profile: ConnProfile) -> WindowsSuite:
    """The strongest suite Windows can express that the conn accepts."""
    ike = best_candidate(ike_candidates(), lambda p: ike_accepted(profile.ike, p), _ike_strength_for_windows)
    if ike is None:
        raise ProfileError(
            f"conn '{profile.conn.name}': ike= accepts no suite Windows can propose (Windows knows "
            "DES/3DES/AES-CBC/AES-GCM, MD5/SHA1/SHA256/SHA384 and MODP 768/1024/2048, ECP 256/384); "
            f"add e.g. aes256-sha256-modp2048 to ike=")
    esp = best_candidate(esp_candidates(), lambda p: esp_accepted(profile.esp, p), esp_strength)
    if esp is None:
        raise ProfileError(
            f"conn '{profile.conn.name}': esp= accepts no suite Windows can propose (Windows knows "
            "DES/3DES/AES-CBC with MD5/SHA1/SHA256-128, AES-GCM, and PFS groups MODP 768/1024/2048, "
            "ECP 256/384 or none); add e.g. aes256-sha256 or aes256gcm16 to esp=")
    enc, integ, dh = ike.setting
    cipher, auth, pfs = esp.setting
    return WindowsSuite(enc, integ, dh, cipher, auth, pfs)


# -- the script ---------------------------------------------------------------------------


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted (verbatim) string literal."""
    return "'" + text.replace("'", "''") + "'"


def _route_prefixes(profile: ConnProfile) -> tuple[bool, list[str]]:
    """(split tunneling, routes to add) for the conn's subnets."""
    everything_v4 = any(n.prefixlen == 0 for n in profile.v4_routes)
    split = profile.ipv4 and not everything_v4
    routes: list[str] = []
    if split:
        routes += [str(n) for n in profile.v4_routes]
    if any(n.prefixlen == 0 for n in profile.v6_routes):
        routes += ["::/1", "8000::/1"]
    else:
        routes += [str(n) for n in profile.v6_routes]
    if not profile.ipv4:
        split = True  # IPv6 only: IPv4 traffic must not be sent into the tunnel
    return split, routes


def build(profile: ConnProfile) -> bytes:
    """The PowerShell script (UTF-8 with a BOM, which Windows PowerShell 5.1 needs to
    read non-ASCII names; CRLF line ends)."""
    suite = choose_suite(profile)
    name = ps_quote(profile.name)
    admin = profile.ca_private
    scope = " -AllUserConnection" if admin else ""
    split, routes = _route_prefixes(profile)
    lines = [
        f"# ikegate profile for Windows: IKEv2 + EAP-MSCHAPv2 to {profile.server}",
        f"# conn '{profile.conn.name}'; written by 'ikegate profile windows'. Run in PowerShell:",
        "#   powershell -ExecutionPolicy Bypass -File <this file>",
    ]
    if admin:
        lines.append("#Requires -RunAsAdministrator")
    lines += [
        "$ErrorActionPreference = 'Stop'",
        f"$Name = {name}",
        f"$Server = {ps_quote(profile.server)}",
    ]
    if admin:
        lines += [
            "",
            f"# the private CA of the gateway's certificate ({profile.ca.subject.rfc4514_string()}),",
            "# trusted for the whole computer as Windows requires",
            f"$CaDer = [Convert]::FromBase64String({ps_quote(base64.b64encode(profile.ca_der()).decode())})",
            f"$CaThumbprint = {ps_quote(profile.ca_sha1_thumbprint())}",
            "$CaFile = Join-Path ([IO.Path]::GetTempPath()) ('ikegate-ca-' + [Guid]::NewGuid() + '.cer')",
            "[IO.File]::WriteAllBytes($CaFile, $CaDer)",
            "$Imported = Import-Certificate -FilePath $CaFile -CertStoreLocation 'Cert:\\LocalMachine\\Root'",
            "Remove-Item -Path $CaFile",
            "if ($Imported.Thumbprint -ne $CaThumbprint) { throw 'imported CA certificate has the wrong thumbprint' }",
        ]
    lines += [
        "",
        "# replace an earlier connection of the same name",
        f"if (Get-VpnConnection -Name $Name{scope} -ErrorAction SilentlyContinue) "
        f"{{ Remove-VpnConnection -Name $Name{scope} -Force }}",
        "$Eap = New-EapConfiguration",
        "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod Eap "
        "-EapConfigXmlStream $Eap.EapConfigXmlStream -EncryptionLevel Required"
        + (" -SplitTunneling" if split else "") + scope,
        "",
        "# the strongest suite the gateway accepts (Windows' defaults start with 3DES and modp1024)",
        "Set-VpnConnectionIPsecConfiguration -ConnectionName $Name"
        f" -EncryptionMethod {suite.encryption_method}"
        f" -IntegrityCheckMethod {suite.integrity_check_method}"
        f" -DHGroup {suite.dh_group}"
        f" -CipherTransformConstants {suite.cipher_transform_constants}"
        f" -AuthenticationTransformConstants {suite.authentication_transform_constants}"
        f" -PfsGroup {suite.pfs_group}"
        f"{scope} -Force",
    ]
    if routes:
        lines += ["", "# routes Windows does not derive from the gateway's traffic selectors"]
        if any(r in ("::/1", "8000::/1") for r in routes):
            lines.append("# (::/1 + 8000::/1 stand for ::/0, which Add-VpnConnectionRoute refuses)")
        for prefix in routes:
            ipaddress.ip_network(prefix)  # only well-formed prefixes reach the script
            lines.append(f"Add-VpnConnectionRoute -ConnectionName $Name -DestinationPrefix {ps_quote(prefix)}{scope}")
    lines += ["", "Write-Host \"VPN connection '$Name' added: connect with your user name and password\""]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
