"""Reference behaviour of strongSwan 5.9.8 for the IDr a client may send (Apple's
RemoteIdentifier), with the seed configuration (no ``leftid``: the gateway's identity
is its certificate's subject DN).

Observed: an IDr equal to the subject DN selects the connection; an IDr naming the
certificate's DNS SAN as FQDN finds "no matching peer config" and the client gets
AUTHENTICATION_FAILED.  ikegate serving the same files should decide the same way.
"""

from __future__ import annotations

import pytest
from cryptography import x509


def strongswan_dn(cert_path) -> str:
    """The subject as strongSwan prints an ID_DER_ASN1_DN identity: RDNs in
    certificate order, ``", "``-separated (e.g. ``C=CH, O=Example, CN=vpn``)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return ", ".join(attr.rfc4514_string() for rdn in cert.subject.rdns for attr in rdn)


@pytest.mark.parametrize("idr", ["subject-dn", "fqdn"])
def test_client_idr_against_seed(topology, strongswan_server_factory, strongswan_client_factory, seed_setup, idr):
    dn = strongswan_dn(seed_setup.confdir / "ssl/private/vpn-server.crt")
    remote_id = dn if idr == "subject-dn" else seed_setup.server_name
    server = strongswan_server_factory(topology.gateway)
    client = strongswan_client_factory(topology.clients[0], topology.gateway.v4[0], remote_id=remote_id)
    ok, out = client.initiate(timeout=10)
    if idr == "subject-dn":
        assert ok, out
        (sa,) = server.list_sas()
        assert sa["local-id"] == dn
    else:
        assert not ok
        assert "N(AUTH_FAILED)" in out
        server.wait_log(r"no matching peer config found", timeout=5)
        assert server.list_sas() == []
