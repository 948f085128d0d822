"""Client certificate chains (ikegate.pki.verify) and CRLs (CertStore.load_crls,
is_revoked), with certificates made by ``cryptography`` (tests/ike/pubkey_pki.py)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import pytest

from ikegate.identity import Identity
from ikegate.pki.store import CertStore
from ikegate.pki.verify import CertificateRejected, verify_chain
from tests.ike.pubkey_pki import DAY, NOW, Ca, name, root_ca


@pytest.fixture(scope="module")
def pki():
    root = root_ca(name(O="Example", CN="Client Root"))
    inter = root.issue(name(O="Example", CN="Client Intermediate"), ca=True)
    leaf = inter.issue(name(O="Example", CN="alice"))
    direct = root.issue(name(O="Example", CN="bob"))
    stranger = root_ca(name(O="Evil", CN="Root")).issue(name(O="Example", CN="alice"))
    return root, inter, leaf, direct, stranger


def test_chain_through_a_sent_intermediate(pki):
    root, inter, leaf, direct, _ = pki
    store = CertStore([root.cert])
    assert verify_chain(store, direct.cert) == [direct.cert, root.cert]
    assert verify_chain(store, leaf.cert, [inter.cert]) == [leaf.cert, inter.cert, root.cert]
    with pytest.raises(CertificateRejected, match="no issuer"):
        verify_chain(store, leaf.cert)  # intermediate neither sent nor loaded
    store.add_ca(inter.cert)
    assert verify_chain(store, leaf.cert) == [leaf.cert, inter.cert]  # a loaded CA is an anchor


def test_untrusted_expired_and_sent_root(pki):
    root, inter, leaf, direct, stranger = pki
    store = CertStore([root.cert])
    with pytest.raises(CertificateRejected):
        verify_chain(store, stranger.cert)
    other = root_ca(name(O="Other", CN="Root"))
    with pytest.raises(CertificateRejected, match="not a trusted CA"):
        verify_chain(CertStore([other.cert]), direct.cert, [root.cert])  # a root it sends itself
    expired = root.issue(name(CN="old"), not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    with pytest.raises(CertificateRejected, match="expired"):
        verify_chain(store, expired.cert)
    future = root.issue(name(CN="new"), not_before=NOW + DAY, not_after=NOW + 2 * DAY)
    with pytest.raises(CertificateRejected, match="not valid yet"):
        verify_chain(store, future.cert)
    a_leaf_as_issuer = Ca(direct.cert, direct.key).issue(name(CN="sub"))  # bob is no CA
    with pytest.raises(CertificateRejected):
        verify_chain(store, a_leaf_as_issuer.cert, [direct.cert])


def test_rightca(pki):
    root, inter, leaf, *_ = pki
    store = CertStore([root.cert])
    verify_chain(store, leaf.cert, [inter.cert], ca=Identity.parse("O=Example, CN=Client Intermediate"))
    verify_chain(store, leaf.cert, [inter.cert], ca=Identity.parse("O=Example, CN=*"))
    with pytest.raises(CertificateRejected, match="rightca"):
        verify_chain(store, leaf.cert, [inter.cert], ca=Identity.parse("O=Example, CN=Someone Else"))


def test_crls_loaded_and_checked(pki, tmp_path):
    root, inter, leaf, direct, _ = pki
    crls = tmp_path / "crls"
    crls.mkdir()
    (crls / "root.crl").write_bytes(root.crl([direct.cert]).public_bytes(Encoding.PEM))
    (crls / "inter.der").write_bytes(inter.crl([leaf.cert]).public_bytes(Encoding.DER))
    (crls / "junk.crl").write_bytes(b"not a CRL")
    # a CRL naming the root as issuer but signed by another key: ignored
    (crls / "forged.crl").write_bytes(
        root.crl([inter.cert], signer=inter.key).public_bytes(Encoding.PEM))
    store = CertStore([root.cert])
    warnings = store.load_crls(crls)
    assert len(store.crls) == 3 and warnings == [f"CRL file '{crls / 'junk.crl'}' holds no CRL, skipped"]
    assert store.is_revoked(direct.cert, root.cert)
    assert not store.is_revoked(inter.cert, root.cert)
    with pytest.raises(CertificateRejected, match="revoked"):
        verify_chain(store, direct.cert)
    with pytest.raises(CertificateRejected, match="revoked"):
        verify_chain(store, leaf.cert, [inter.cert])
    assert CertStore().load_crls(tmp_path / "missing") == []


def test_crl_of_another_issuer_does_not_revoke(pki):
    root, inter, leaf, direct, _ = pki
    store = CertStore([root.cert])
    # inter's CRL lists bob's serial, but bob was issued by the root
    store.add_crl(inter.crl([direct.cert]))
    assert verify_chain(store, direct.cert) == [direct.cert, root.cert]
    assert isinstance(store.crls[0], x509.CertificateRevocationList)


def test_auth_signature_scheme_names():
    """The scheme of AUTH data in strongSwan's constraint words, from data we sign."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from ikegate.pki.signature import auth_signature_scheme, sign_auth
    from ikegate.wire.constants import AuthMethod, HashAlgorithm
    from tests.ike.pubkey_pki import rsa_key

    key, p384 = rsa_key(), ec.generate_private_key(ec.SECP384R1())
    sig = AuthMethod.DIGITAL_SIGNATURE
    assert auth_signature_scheme(sig, sign_auth(key, b"x", sig, HashAlgorithm.SHA2_256, True)) == ("rsa/pss", "sha256")
    assert auth_signature_scheme(sig, sign_auth(key, b"x", sig, HashAlgorithm.SHA2_512)) == ("rsa", "sha512")
    assert auth_signature_scheme(sig, sign_auth(p384, b"x", sig, HashAlgorithm.SHA2_384)) == ("ecdsa", "sha384")
    assert auth_signature_scheme(AuthMethod.RSA_SIG, b"anything") == ("rsa", "sha1")
    assert auth_signature_scheme(AuthMethod.ECDSA_SHA384_P384, b"") == ("ecdsa", "sha384")
    assert auth_signature_scheme(sig, b"\x03abc") is None
    assert auth_signature_scheme(AuthMethod.SHARED_KEY_MIC, b"x") is None
