"""``rightauth=pubkey``: clients authenticating with certificates (RFC 7296 2.15, RFC 4754,
RFC 7427), several conns on one gateway chosen by identities and auth method, and CRLs.

The gateway serves the seed conn (EAP) plus conns for certificate and PSK clients; the
client CA is in ``ipsec.d/cacerts``.  The in-memory initiator signs its AUTH with the
client key (``Initiator.signature_auth_request``) and checks the gateway's answer; each
conn has its own address pool, so the virtual IP shows which conn was chosen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ikegate.config.loader import load_config
from ikegate.daemon.builder import build_runtime
from ikegate.ike.events import ChildSaUp, IkeSaUp
from ikegate.wire.constants import AuthMethod, HashAlgorithm, NotifyType, PayloadType

from .harness import Network
from .initiator import STRONGSWAN, WINDOWS10
from .pubkey_pki import DAY, NOW, name, root_ca, rsa_key

BASE = """
    keyexchange=ikev2
    auto=add
    left=%any
    leftsubnet=0.0.0.0/0
    leftauth=pubkey
    leftcert={leftcert}
    leftsendcert=always
    right=%any
    rekey=no
"""
CONNS = """
conn certs
{base}    rightauth=pubkey
    rightsourceip=10.10.1.0/24

conn admins
{base}    rightauth=pubkey
    rightid="O=Example, OU=Admins, CN=*"
    rightsourceip=10.10.3.0/24

conn alice
{base}    rightauth=pubkey
    rightid="O=Example, OU=Admins, CN=alice"
    rightsourceip=10.10.5.0/24

conn ecdsa-phones
{base}    rightauth=ecdsa
    rightid=@*.phones.example.org
    rightsourceip=10.10.4.0/24

conn intranet
{base}    rightauth=pubkey
    rightca="O=Example, CN=Intranet CA"
    rightid=@*.intranet.example.org
    rightsourceip=10.10.6.0/24

conn pss-only
{base}    rightauth=rsa/pss-sha256
    rightid=@*.pss.example.org
    rightsourceip=10.10.7.0/24

conn pinned
{base}    rightauth=pubkey
    rightcert={pinned}
    rightsourceip=10.10.8.0/24

conn psk
{base}    rightauth=psk
    rightid=@psk.example.org
    rightsourceip=10.10.2.0/24
"""
PSK = b"a pre-shared key of some length"


@pytest.fixture(scope="module")
def pki():
    root = root_ca(name(O="Example", CN="Client Root"))
    inter = root.issue(name(O="Example", CN="Intranet CA"), ca=True)
    rsa = rsa_key()
    return {
        "root": root,
        "inter": inter,
        "rsa": root.issue(name(O="Example", CN="rsa.example.org"), rsa,
                          sans=[x509.DNSName("rsa.example.org"), x509.RFC822Name("rsa@example.org")]),
        "p256": root.issue(name(O="Example", CN="p256"), sans=[x509.DNSName("tab.phones.example.org")]),
        "p384": root.issue(name(O="Example", CN="p384"), ec.generate_private_key(ec.SECP384R1())),
        "rsa-phone": root.issue(name(O="Example", CN="rsa-phone"), rsa,
                                sans=[x509.DNSName("old.phones.example.org")]),
        "pss": root.issue(name(O="Example", CN="pss"), rsa, sans=[x509.DNSName("vpn.pss.example.org")]),
        "pinned": root_ca(name(O="Lab", CN="self-signed device")),
        "admin": root.issue(name(O="Example", OU="Admins", CN="bob")),
        "alice": root.issue(name(O="Example", OU="Admins", CN="alice")),
        "intranet": inter.issue(name(O="Example", CN="host"), sans=[x509.DNSName("pc.intranet.example.org")]),
        "expired": root.issue(name(O="Example", CN="expired"), not_before=NOW - 9 * DAY, not_after=NOW - DAY),
        "stranger": root_ca(name(O="Evil", CN="Root")).issue(name(O="Example", CN="rsa.example.org")),
        "revoked": root.issue(name(O="Example", CN="revoked")),
    }


@pytest.fixture
def gateway(seed_layout, tmp_path, pki, root_cert):
    """``gateway(crls=[...])``: the seed's directory with the conns above, the client root
    in ipsec.d/cacerts and the CRLs in ipsec.d/crls (loaded as the daemon is asked to)."""

    made = iter(range(100))

    def make(crls=()) -> Network:
        confdir = tmp_path / f"conf{next(made)}"
        shutil.copytree(seed_layout.directory, confdir)
        conf = (confdir / "ipsec.conf").read_text()
        base = BASE.format(leftcert=seed_layout.server_cert).lstrip("\n")
        pinned = confdir / "ipsec.d" / "certs" / "device.crt"
        pinned.parent.mkdir(exist_ok=True)
        pinned.write_bytes(pki["pinned"].cert.public_bytes(Encoding.PEM))
        (confdir / "ipsec.conf").write_text(conf + CONNS.format(base=base, pinned=pinned))
        (confdir / "ipsec.d" / "cacerts" / "client-root.crt").write_bytes(pki["root"].cert.public_bytes(Encoding.PEM))
        crl_dir = confdir / "ipsec.d" / "crls"
        crl_dir.mkdir(exist_ok=True)
        for n, crl in enumerate(crls):
            (crl_dir / f"{n}.crl").write_bytes(crl.public_bytes(Encoding.DER))
        with open(confdir / "ipsec.d" / "secrets" / "myvpn", "a") as f:
            f.write(f'@psk.example.org : PSK "{PSK.decode()}"\n')
        config, diagnostics = load_config(confdir)
        assert not diagnostics.errors, diagnostics
        runtime = build_runtime(config, confdir)
        if not runtime.cert_store.crls:  # until the daemon's builder loads ipsec.d/crls itself
            runtime.cert_store.load_crls(crl_dir)
        root = x509.load_pem_x509_certificate(Path(root_cert).read_bytes())
        return Network(runtime, seed_layout.users, trusted=[root])

    return make


def connect(net, client, issued, *, certs=None, **sign):
    """IKE_SA_INIT and the one IKE_AUTH exchange of a certificate client."""
    client.sa_init(net.transport(client))
    assert client.keys is not None
    certs = [issued.cert] if certs is None else certs
    return net.exchange(client, client.signature_auth_request(issued.key, certs, **sign))


def conn_of(net, client) -> str:
    return net.sa_of(client).conn.name


def assert_up(net, client, final, conn: str, pool: str) -> None:
    assert final.error is None, final
    assert client.established and client.chain_verified
    assert conn_of(net, client) == conn
    assert client.vips and client.vips[0].startswith(pool)
    (up,) = net.events_of(ChildSaUp)
    assert [str(s) for s in up.info.remote_ts] == [f"{client.vips[0]}/32"]
    assert net.events_of(IkeSaUp)[0].remote_id == str(net.sa_of(client).remote_id)


def assert_refused(net, client, final) -> None:
    assert final.error == NotifyType.AUTHENTICATION_FAILED
    assert not client.established
    assert all(up.remote.host != client.local.host for up in net.events_of(IkeSaUp))


# -- signature schemes ------------------------------------------------------------------------------


@pytest.mark.parametrize("cert, idi, sign", [
    ("rsa", "@rsa.example.org", {"method": AuthMethod.RSA_SIG}),
    ("rsa", "rsa@example.org", {"hash_alg": HashAlgorithm.SHA2_256}),
    ("rsa", "@rsa.example.org", {"hash_alg": HashAlgorithm.SHA2_256, "pss": True}),  # libreswan's RSA-PSS
    ("rsa", "O=Example, CN=rsa.example.org", {"hash_alg": HashAlgorithm.SHA2_512, "pss": True}),
    ("p256", "O=Example, CN=p256", {"method": AuthMethod.ECDSA_SHA256_P256}),
    ("p384", "O=Example, CN=p384", {"method": AuthMethod.ECDSA_SHA384_P384}),
    ("p384", "O=Example, CN=p384", {"hash_alg": HashAlgorithm.SHA2_384}),
], ids=["rsa-method1", "rsa-pkcs1-sha256", "rsa-pss-sha256", "rsa-pss-sha512-dn", "ecdsa-method9",
        "ecdsa-method10", "ecdsa-rfc7427"])
def test_client_certificate_signatures(gateway, pki, cert, idi, sign):
    net = gateway()
    client = net.client(STRONGSWAN, idi=idi, cp=(1, 8))  # INTERNAL_IP4_ADDRESS, INTERNAL_IP6_ADDRESS
    final = connect(net, client, pki[cert], **sign)
    assert_up(net, client, final, "certs", "10.10.1.")
    assert net.sa_of(client).peer_auth_method == "pubkey"
    assert final.get(PayloadType.AUTH) is not None and client.server_auth_method is not None


def test_certificate_request_in_fragments(gateway, pki):
    """A client certificate chain in an IKE_AUTH request split into RFC 7383 fragments
    (libreswan and openiked fragment theirs when the peer supports it)."""
    net = gateway()
    client = net.client(STRONGSWAN, idi="@pc.intranet.example.org", fragment_size=400)
    client.sa_init(net.transport(client))
    datagrams = client.signature_auth_request(pki["intranet"].key, [pki["intranet"].cert, pki["inter"].cert])
    assert len(datagrams) > 2 and all(len(d) <= 400 - 28 for d in datagrams)
    assert_up(net, client, net.exchange(client, datagrams), "intranet", "10.10.6.")


@pytest.mark.parametrize("problem", ["forged", "idi-not-in-cert", "untrusted-ca", "expired", "no-cert",
                                     "method-key-mismatch"])
def test_refused_certificates(gateway, pki, problem):
    net = gateway()
    idi, issued, sign, certs = "@rsa.example.org", pki["rsa"], {}, None
    if problem == "forged":  # the certificate of rsa, AUTH signed by another (ECDSA) key
        issued = type(issued)(issued.cert, ec.generate_private_key(ec.SECP256R1()))
        sign = {"hash_alg": HashAlgorithm.SHA2_256}
    elif problem == "idi-not-in-cert":
        idi = "@someone.example.org"
    elif problem == "untrusted-ca":
        idi, issued = "O=Example, CN=rsa.example.org", pki["stranger"]
    elif problem == "expired":
        idi, issued = "O=Example, CN=expired", pki["expired"]
    elif problem == "no-cert":
        certs = []
    elif problem == "method-key-mismatch":  # an ECDSA method over an RSA key's certificate
        from ikegate.pki.signature import sign_auth

        sign = {"method": AuthMethod.ECDSA_SHA256_P256,
                "auth_data": sign_auth(ec.generate_private_key(ec.SECP256R1()), b"x", AuthMethod.ECDSA_SHA256_P256)}
    client = net.client(STRONGSWAN, idi=idi)
    assert_refused(net, client, connect(net, client, issued, certs=certs, **sign))


def test_intermediate_sent_by_the_client_and_rightca(gateway, pki):
    """The intermediate is not in cacerts: the client sends it after its certificate;
    ``rightca=`` and the FQDN wildcard pick the intranet conn."""
    net = gateway()
    client = net.client(STRONGSWAN, idi="@pc.intranet.example.org")
    final = connect(net, client, pki["intranet"], certs=[pki["intranet"].cert, pki["inter"].cert])
    assert_up(net, client, final, "intranet", "10.10.6.")
    alone = net.client(STRONGSWAN, idi="@pc.intranet.example.org")
    assert_refused(net, alone, connect(net, alone, pki["intranet"]))


def test_rightca_refuses_another_ca(gateway, pki):
    """An FQDN of the intranet conn in a certificate from the root, not the Intranet CA."""
    root = pki["root"]
    issued = root.issue(name(O="Example", CN="x"), sans=[x509.DNSName("fake.intranet.example.org")])
    net = gateway()
    client = net.client(STRONGSWAN, idi="@fake.intranet.example.org")
    assert_refused(net, client, connect(net, client, issued))


# -- choosing among conns ---------------------------------------------------------------------------


def test_exact_rightid_beats_wildcard_beats_any(gateway, pki):
    net = gateway()
    alice = net.client(STRONGSWAN, idi="O=Example, OU=Admins, CN=alice")
    assert_up(net, alice, connect(net, alice, pki["alice"]), "alice", "10.10.5.")
    net = gateway()
    bob = net.client(STRONGSWAN, idi="O=Example, OU=Admins, CN=bob")
    assert_up(net, bob, connect(net, bob, pki["admin"]), "admins", "10.10.3.")


def test_key_type_constraint(gateway, pki):
    """``rightauth=ecdsa`` with ``rightid=@*.phones.example.org``: an ECDSA phone gets in,
    an RSA one is refused (the wildcard conn is the better match, its key type does not fit)."""
    net = gateway()
    phone = net.client(STRONGSWAN, idi="@tab.phones.example.org")
    assert_up(net, phone, connect(net, phone, pki["p256"]), "ecdsa-phones", "10.10.4.")
    net = gateway()
    old = net.client(STRONGSWAN, idi="@old.phones.example.org")
    assert_refused(net, old, connect(net, old, pki["rsa-phone"], hash_alg=HashAlgorithm.SHA2_256))


def test_auth_class_chooses_the_conn(gateway, pki):
    """EAP clients still get the seed conn; a PSK client its PSK conn; a certificate
    client never lands on the EAP conn."""
    net = gateway()
    eap = net.client(WINDOWS10)
    net.connect(eap)
    assert eap.established and conn_of(net, eap) == "myvpn" and eap.vips[0].startswith("192.0.2.")
    psk = net.client(STRONGSWAN, idi="@psk.example.org")
    psk.sa_init(net.transport(psk))
    final = net.exchange(psk, psk.psk_auth_request(PSK))
    assert final.error is None and psk.established and conn_of(net, psk) == "psk"
    assert psk.vips[0].startswith("10.10.2.")
    wrong = net.client(STRONGSWAN, idi="@psk.example.org")
    wrong.sa_init(net.transport(wrong))
    assert net.exchange(wrong, wrong.psk_auth_request(b"wrong")).error == NotifyType.AUTHENTICATION_FAILED


@pytest.mark.parametrize("pss, accepted", [(True, True), (False, False)], ids=["rsa-pss", "pkcs1"])
def test_rsa_pss_signature_constraint(gateway, pki, pss, accepted):
    """``rightauth=rsa/pss-sha256``: the AUTH must be RSASSA-PSS with SHA-256."""
    net = gateway()
    client = net.client(STRONGSWAN, idi="@vpn.pss.example.org")
    final = connect(net, client, pki["pss"], hash_alg=HashAlgorithm.SHA2_256, pss=pss)
    if accepted:
        assert_up(net, client, final, "pss-only", "10.10.7.")
    else:
        assert_refused(net, client, final)


@pytest.mark.parametrize("send_cert", [True, False])
def test_rightcert_is_trusted_as_configured(gateway, pki, send_cert):
    """``rightcert=`` (a self-signed device certificate, no CA in cacerts): its subject is
    the conn's rightid, and the certificate is trusted whether the client sends it or not."""
    net = gateway()
    device = pki["pinned"]
    client = net.client(STRONGSWAN, idi="O=Lab, CN=self-signed device")
    final = connect(net, client, device, certs=[device.cert] if send_cert else [],
                    hash_alg=HashAlgorithm.SHA2_256)
    assert_up(net, client, final, "pinned", "10.10.8.")


def test_rightcert_refuses_another_certificate(gateway, pki):
    """Another certificate with the same subject, even one from a trusted CA, is refused."""
    impostor = pki["root"].issue(name(O="Lab", CN="self-signed device"))
    net = gateway()
    client = net.client(STRONGSWAN, idi="O=Lab, CN=self-signed device")
    assert_refused(net, client, connect(net, client, impostor))


# -- CRLs --------------------------------------------------------------------------------------------


def test_revoked_client_certificate_is_refused(gateway, pki):
    crl = pki["root"].crl([pki["revoked"].cert])
    net = gateway(crls=[crl])
    assert net.runtime.cert_store.crls == [crl]
    client = net.client(STRONGSWAN, idi="O=Example, CN=revoked")
    assert_refused(net, client, connect(net, client, pki["revoked"]))
    other = net.client(STRONGSWAN, idi="O=Example, CN=p256")
    final = connect(net, other, pki["p256"])
    assert final.error is None and other.established
