"""Server-side options around authentication and encapsulation: RSASSA-PSS where asked
(``leftauth=rsa/pss-sha256`` or ``charon.rsa_pss``) and ``forceencaps=yes`` (a faked
NAT_DETECTION_SOURCE_IP, so the client sees a NAT and both sides use UDP encapsulation)."""

from __future__ import annotations

import pytest

from ikegate.ike.events import ChildSaUp
from ikegate.wire.constants import AuthMethod, PayloadType

from .initiator import STRONGSWAN, WINDOWS10

PSS_OID = bytes.fromhex("06092a864886f70d01010a")  # id-RSASSA-PSS (RFC 4055)


def _server_auth(client):
    (first_auth_response,) = [r for r in client.responses if r.get(PayloadType.IDr) is not None]
    return first_auth_response.get(PayloadType.AUTH)


@pytest.mark.parametrize("how", ["leftauth", "strongswan.conf"])
def test_rsa_pss_where_asked(make_network, how):
    if how == "leftauth":
        net = make_network(edits={"leftauth=pubkey": "leftauth=rsa/pss-sha256"})
    else:
        net = make_network(rsa_pss=True)
    client = net.client(STRONGSWAN)  # announces RFC 7427 hash algorithms
    net.connect(client)
    assert client.established  # the initiator verified the PSS signature independently
    auth = _server_auth(client)
    assert auth.method == AuthMethod.DIGITAL_SIGNATURE
    algorithm_identifier = auth.data[1:1 + auth.data[0]]
    assert PSS_OID in algorithm_identifier


def test_pkcs1_by_default_and_sha1_for_windows(net):
    modern = net.client(STRONGSWAN)
    net.connect(modern)
    auth = _server_auth(modern)
    assert auth.method == AuthMethod.DIGITAL_SIGNATURE and PSS_OID not in auth.data[1:1 + auth.data[0]]
    windows = net.client(WINDOWS10)  # no SIGNATURE_HASH_ALGORITHMS: RSA PKCS#1 v1.5 SHA-1
    net.connect(windows)
    assert _server_auth(windows).method == AuthMethod.RSA_SIG


@pytest.mark.parametrize("forceencaps", [False, True])
def test_forceencaps_fakes_the_nat_detection(make_network, forceencaps):
    edits = {"    rekey=no": "    rekey=no\n    forceencaps=yes"} if forceencaps else {}
    net = make_network(edits=edits)
    client = net.client(WINDOWS10)
    net.connect(client)
    assert client.established
    assert client.nat_remote is forceencaps  # the client believes the gateway is behind a NAT
    (up,) = net.events_of(ChildSaUp)
    assert up.info.udp_encap is forceencaps
