"""The seed flow end to end, in memory: IKE_SA_INIT, IKE_AUTH with the server's
certificate chain and signature, EAP-Identity, EAP-MSCHAPv2, the MSK AUTH, the
virtual IPs, DNS servers and the narrowed CHILD SA, as each kind of client sees it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ikegate.ike.events import ChildSaUp, IkeSaUp
from ikegate.pki.generate import make_ca
from ikegate.wire.constants import AuthMethod, CfgAttr, EapCode, EapType, IdType, NotifyType, PayloadType

from .conftest import SEED_DNS
from .harness import GATEWAY_V4, GATEWAY_V6
from .initiator import MACOS, STRONGSWAN, WINDOWS7, WINDOWS10, InitiatorError

VIPS = ["192.0.2.1", "2001:db8::1"]


def ts_text(selectors) -> list[str]:
    """Selectors as ``net/len`` text (every one here is a subnet)."""
    return [str(next(ipaddress.summarize_address_range(s.start_addr, s.end_addr))) for s in selectors]


@pytest.mark.parametrize("server", [GATEWAY_V4, GATEWAY_V6], ids=["ipv4", "ipv6"])
def test_seed_flow_windows(net, root_cert, server):
    client = net.client(WINDOWS10, server=server)
    final = net.connect(client)

    # IKE_SA_INIT: client's proposal chosen, NAT-D says no NAT, FRAG_SUP echoed, no
    # CERTREQ (rightsendcert=never)
    init = client.responses[0]
    assert init.types == [PayloadType.SA, PayloadType.KE, PayloadType.NONCE] + [PayloadType.NOTIFY] * 3
    assert init.notify_types == [NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP,
                                 NotifyType.IKEV2_FRAGMENTATION_SUPPORTED]
    assert (client.nat_local, client.nat_remote) == (False, False)
    assert str(client.proposal) == "IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"

    # IKE_AUTH 1: IDr = leftid (the certificate's DN), leaf + intermediate, never the
    # root; a PKCS#1 SHA-1 signature (Windows sends no SIGNATURE_HASH_ALGORITHMS)
    # that the initiator verified; then EAP-Identity
    first = client.responses[1]
    assert first.types == [PayloadType.IDr, PayloadType.CERT, PayloadType.CERT, PayloadType.AUTH,
                           PayloadType.EAP]
    root = x509.load_pem_x509_certificate(root_cert.read_bytes())
    leaf, intermediate = client.server_certs
    assert client.server_id == (IdType.DER_ASN1_DN, leaf.subject.public_bytes())
    assert leaf.subject.rfc4514_string() == "CN=vpn.example.org"
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    assert root.public_bytes(Encoding.DER) not in [c.data for c in first.get_all(PayloadType.CERT)]
    assert client.server_auth_method == AuthMethod.RSA_SIG
    assert client.chain_verified
    assert (first.eap.code, first.eap.type) == (EapCode.REQUEST, EapType.IDENTITY)

    # the EAP rounds: Identity -> MS-CHAPv2 Challenge -> Success-Request -> EAP-Success
    eaps = [r.eap for r in client.responses[1:5]]
    assert [(e.code, e.type) for e in eaps] == [
        (EapCode.REQUEST, EapType.IDENTITY), (EapCode.REQUEST, EapType.MSCHAPV2),
        (EapCode.REQUEST, EapType.MSCHAPV2), (EapCode.SUCCESS, None)]
    assert client.eap_peer.succeeded and client.eap_peer.success_message.endswith("M=Welcome2ikegate")

    # the final response: MSK AUTH (verified), CP with the VIPs and the four DNS servers,
    # the CHILD SA narrowed to the VIPs, MOBIKE
    assert client.established
    assert final.error is None
    assert final.types[:6] == [PayloadType.AUTH, PayloadType.CP, PayloadType.SA, PayloadType.TSi,
                               PayloadType.TSr, PayloadType.NOTIFY]
    assert client.vips == VIPS
    assert client.dns == SEED_DNS
    addr6 = next(a for a in client.cp_reply if a.type == CfgAttr.INTERNAL_IP6_ADDRESS)
    assert addr6.value[16] == 64  # prefix length strongSwan sends
    assert ts_text(client.child.tsi) == ["192.0.2.1/32", "2001:db8::1/128"]
    assert ts_text(client.child.tsr) == ["0.0.0.0/0", "::/0"]
    assert str(client.child.proposal) == "ESP:AES_CBC_256/HMAC_SHA1_96/NO_EXT_SEQ"
    assert {NotifyType.MOBIKE_SUPPORTED, NotifyType.NO_ADDITIONAL_ADDRESSES} <= set(final.notify_types)

    # the gateway's events: the IKE SA, then the CHILD SA with the initiator's KEYMAT
    ike_up, child_up = net.events
    assert isinstance(ike_up, IkeSaUp) and isinstance(child_up, ChildSaUp)
    assert (ike_up.conn, ike_up.local_id, ike_up.remote_id, ike_up.eap_id) == (
        "myvpn", "CN=vpn.example.org", client.local.host, "user1")
    assert ike_up.virtual_ips == tuple(VIPS)
    assert (ike_up.local, ike_up.remote) == (server, client.local)
    info = child_up.info
    keys = client.child.keys
    assert (info.spi_in, info.spi_out) == (client.child.spi_r, client.child.spi_i)
    assert (info.encr_id, info.encr_key_bits, info.integ_id, info.esn) == (12, 256, 2, False)
    assert (info.key_in_encr, info.key_in_integ) == (keys.encr_i, keys.integ_i)
    assert (info.key_out_encr, info.key_out_integ) == (keys.encr_r, keys.integ_r)
    # KEYMAT = prf+(SK_d, Ni | Nr), split encr_i | integ_i | encr_r | integ_r (RFC 7296 2.17)
    assert client.keymat(2 * (32 + 20)) == keys.encr_i + keys.integ_i + keys.encr_r + keys.integ_r
    assert [str(s) for s in info.local_ts] == ["0.0.0.0/0", "::/0"]
    assert [str(s) for s in info.remote_ts] == ["192.0.2.1/32", "2001:db8::1/128"]
    assert info.virtual_ips == tuple(VIPS) and info.eap_id == "user1" and not info.udp_encap

    # nothing half-open is left
    assert not net.gateway.half_open and not net.gateway.half_open_by_ip


@pytest.mark.parametrize(
    "profile, auth_method",
    [(WINDOWS10, AuthMethod.RSA_SIG), (WINDOWS7, AuthMethod.RSA_SIG), (STRONGSWAN, AuthMethod.DIGITAL_SIGNATURE),
     (MACOS, AuthMethod.RSA_SIG)],
    ids=lambda v: getattr(v, "name", None),
)
def test_each_client_profile_connects(net, profile, auth_method):
    """RFC 7427 signatures only for clients that sent SIGNATURE_HASH_ALGORITHMS."""
    client = net.client(profile)
    net.connect(client)
    assert client.established, client.received
    assert client.server_auth_method == auth_method
    assert client.vips == VIPS
    assert client.dns == SEED_DNS
    assert client.child is not None
    if profile.hash_algorithms:
        assert client.peer_hash_algorithms  # announced back in IKE_SA_INIT
    else:
        assert client.peer_hash_algorithms is None
    assert [type(e) for e in net.events] == [IkeSaUp, ChildSaUp]


@pytest.mark.parametrize("idi", ["user1", "alice@example.org", "198.51.100.77", "2001:db8:1::77",
                                 "CN=laptop,O=example", (IdType.KEY_ID, b"\x01\x02")])
def test_any_idi_type_is_accepted(net, idi):
    """rightid is unset (%any): the IKE identity may be of any type; the EAP identity
    (the MS-CHAPv2 name) is what counts."""
    client = net.client(WINDOWS10, idi=idi)
    net.connect(client)
    assert client.established
    (sa,) = net.status()
    assert sa["remote"]["eap_id"] == "user1"


def test_empty_eap_identity_falls_back_to_ike_identity(net):
    """An empty EAP-Identity response means "use the IKE identity" (strongSwan 6.0.3);
    the MS-CHAPv2 name decides the final EAP identity."""
    client = net.client(STRONGSWAN, eap_identity="")
    net.connect(client)
    assert client.established
    assert net.events[0].eap_id == "user1"


@pytest.mark.parametrize("idr, answered", [
    ("vpn.example.org", (IdType.FQDN, b"vpn.example.org")),
    ("CN=vpn.example.org", (IdType.DER_ASN1_DN, None)),
])
def test_idr_of_the_server_is_answered_with_that_identity(net, idr, answered):
    """Apple clients send IDr = the server name; the seed's leftid is the certificate's
    DN.  An IDr that is in the certificate (SAN) is accepted and answered as sent."""
    client = net.client(MACOS, idr=idr)
    net.connect(client)
    assert client.established
    id_type, data = client.server_id
    assert id_type == answered[0]
    if answered[1] is not None:
        assert data == answered[1]
    assert net.events[0].local_id == idr


@pytest.mark.parametrize("idr", ["other.example.org", "CN=other.example.org", "203.0.113.1"])
def test_idr_naming_someone_else_fails(net, idr):
    client = net.client(MACOS, idr=idr)
    response = net.connect(client)
    assert response.message_id == 1
    assert response.notify_types == [NotifyType.AUTHENTICATION_FAILED]
    assert response.get(PayloadType.AUTH) is None
    assert net.sa_of(client) is None
    assert net.events == []


def test_status_reports_established_and_half_open_sas(net):
    client = net.client(WINDOWS10)
    net.connect(client)
    half = net.client(STRONGSWAN, ke_group=15)  # stops after IKE_SA_INIT
    net.exchange(half, half.sa_init_request())
    net.advance(5)
    up, connecting = net.status()
    assert up["state"] == "ESTABLISHED" and connecting["state"] == "CONNECTING"
    assert up["conn"] == "myvpn"
    assert up["local"] == {"host": "203.0.113.1", "port": 500, "id": "CN=vpn.example.org"}
    assert up["remote"] == {"host": client.local.host, "port": 500, "id": client.local.host, "eap_id": "user1"}
    assert (up["spi_i"], up["spi_r"]) == (client.spi_i.hex(), client.spi_r.hex())
    assert up["proposal"] == "IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
    assert up["virtual_ips"] == VIPS
    assert up["nat"] == {"local": False, "remote": False, "faked": False}
    assert up["mobike"] is True
    assert (up["age"], up["established_for"]) == (5.0, 5.0)
    (child,) = up["children"]
    assert child["spi_in"] == f"{client.child.spi_r:08x}" and child["spi_out"] == f"{client.child.spi_i:08x}"
    assert child["proposal"] == "ESP:AES_CBC_256/HMAC_SHA1_96/NO_EXT_SEQ"
    assert child["local_ts"] == ["0.0.0.0/0", "::/0"]
    assert child["remote_ts"] == ["192.0.2.1/32", "2001:db8::1/128"]
    assert child["state"] == "INSTALLED" and child["encap"] is False
    assert connecting["conn"] == "myvpn" and connecting["established_for"] is None
    assert connecting["remote"]["eap_id"] is None and connecting["children"] == []


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@pytest.mark.parametrize(
    "trusted, certreq, sent",
    [
        ("root", True, ["leaf", "intermediate"]),  # the usual client: trusts the root
        ("intermediate", True, ["leaf"]),  # names the intermediate: the chain stops before it
        ("unrelated", True, ["leaf", "intermediate"]),  # an unknown CA changes nothing
        ("root", False, ["leaf", "intermediate"]),  # no CERTREQ (Apple): leftsendcert=always
    ],
)
def test_certreq_and_the_certificate_chain(net, seed_layout, trusted, certreq, sent):
    certs = {"root": load(seed_layout.root_cert), "intermediate": load(seed_layout.intermediate_cert),
             "leaf": load(seed_layout.server_cert)}
    unrelated = make_ca("Somebody Else's CA").cert
    client = net.client(WINDOWS10, certreq=certreq)
    client.trusted = [unrelated, certs["root"]] if trusted == "unrelated" else [certs[trusted]]
    net.connect(client)
    assert client.established
    assert client.server_certs == [certs[name] for name in sent]
    assert client.chain_verified


@pytest.mark.parametrize("certreq, certs_sent", [(True, 2), (False, 0)])
def test_leftsendcert_ifasked(make_network, certreq, certs_sent):
    net = make_network(edits={"leftsendcert=always": "leftsendcert=ifasked"})
    client = net.client(WINDOWS10, certreq=certreq)
    net.exchange(client, client.sa_init_request())
    datagrams = net.send(client, client.auth_request())
    if certs_sent:
        response = [client.receive(d) for d in datagrams][-1]
        assert len(response.get_all(PayloadType.CERT)) == certs_sent
    else:
        with pytest.raises(InitiatorError, match="without IDr and certificate"):
            [client.receive(d) for d in datagrams]
        assert client.received[-1].get_all(PayloadType.CERT) == []
        assert client.received[-1].get(PayloadType.AUTH) is not None


def test_eap_only_notify_changes_nothing(net):
    """RFC 5998 EAP_ONLY_AUTHENTICATION: the gateway signs anyway (as strongSwan does
    unless configured otherwise), the client still verifies."""
    client = net.client(STRONGSWAN, eap_only=True)
    net.connect(client)
    assert client.established and client.server_auth_method == AuthMethod.DIGITAL_SIGNATURE
